/*
 * fuzz_snapshot.c - libFuzzer target for snap_decode (daemon/snapshot.h).
 *
 * Each input is decoded twice: with SNAP_ANY_MODEL, and with the fixed
 * fingerprint FUZZ_SNAP_FP that make_corpus writes into its seeds (so the
 * model check passes for them and refuses the rest).  A snapshot that
 * decodes is encoded again, and that encoding must decode to the same
 * meta and state (a round trip); every refusal must be one of the codes
 * snap_decode documents.
 */
#include <stdlib.h>
#include <string.h>

#include "infini_err.h"
#include "snapshot.h"

#include "fuzz.h"

#define CHECK(x) do { if (!(x)) abort(); } while (0)

static bool
same_state(const struct eng_stream_state *a, const struct eng_stream_state *b)
{
	size_t memn, cachen;

	if (a->pos != b->pos || a->sample_step != b->sample_step ||
	    a->n_layers != b->n_layers || a->n_kv_heads != b->n_kv_heads ||
	    a->head_dim != b->head_dim || a->segment_size != b->segment_size ||
	    a->has_kmem != b->has_kmem || a->rows != b->rows)
		return (false);
	eng_stream_state_floats(a, &memn, &cachen);
	/* memn counts M and z together. */
	size_t zn = (size_t)a->n_layers * a->n_kv_heads * a->head_dim;
	if (memcmp(a->M, b->M, (memn - zn) * 4) != 0 ||
	    memcmp(a->z, b->z, zn * 4) != 0)
		return (false);
	if (cachen && (memcmp(a->kc, b->kc, cachen * 4) != 0 ||
	    memcmp(a->vc, b->vc, cachen * 4) != 0))
		return (false);
	if (a->has_kmem && cachen && memcmp(a->km, b->km, cachen * 4) != 0)
		return (false);
	if (a->n_last != b->n_last || (a->n_last &&
	    memcmp(a->last, b->last, (size_t)a->n_last * 4) != 0))
		return (false);
	return (true);
}

static void
decode(const uint8_t *data, size_t size, uint64_t fp)
{
	struct snap_meta m, m2;
	struct eng_stream_state st, st2;
	char err[256];
	uint8_t *buf;
	size_t len;
	int rv;

	rv = snap_decode(data, size, fp, &m, &st, err, sizeof(err));
	if (rv != 0) {
		CHECK(rv == INFINI_ECORRUPT || rv == INFINI_EUNSUPPORTED ||
		    rv == INFINI_ESTATE || rv == INFINI_ENOMEM);
		CHECK(memchr(err, '\0', sizeof(err)) != NULL);
		return;
	}
	CHECK(fp == SNAP_ANY_MODEL || m.fingerprint == fp);
	rv = snap_encode(&m, &st, &buf, &len);
	CHECK(rv == 0 || rv == INFINI_ENOMEM);
	if (rv == 0) {
		CHECK(snap_decode(buf, len, m.fingerprint, &m2, &st2, err,
		    sizeof(err)) == 0);
		CHECK(same_state(&st, &st2));
		CHECK(m2.fingerprint == m.fingerprint &&
		    m2.has_owner == m.has_owner &&
		    (!m.has_owner || m2.owner == m.owner) &&
		    strcmp(m2.stream_id, m.stream_id) == 0);
		eng_stream_state_fini(&st2);
		free(buf);
	}
	eng_stream_state_fini(&st);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	decode(data, size, SNAP_ANY_MODEL);
	decode(data, size, FUZZ_SNAP_FP);
	return (0);
}
