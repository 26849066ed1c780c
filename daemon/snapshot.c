/*
 * snapshot.c - encoding, decoding and durable storage of stream snapshots.
 *
 * The byte layout is documented in docs/snapshot-format.md; the constants
 * below are its tables.  Everything is little-endian, written and read byte
 * by byte, so the format does not depend on the host.  Decoding checks, in
 * order: magic and version (so a newer file is refused for being newer, not
 * for looking corrupt), the header checksum, the whole-file trailer
 * checksum, every field and section length against the shape the header
 * declares, and each section's own checksum; only then does it allocate and
 * fill the caller's structures.
 *
 * Files are written like Redis writes its RDB: a temp file in the same
 * directory, fsync, rename over the target, fsync the directory.  All paths
 * are resolved relative to an O_DIRECTORY descriptor, and names are checked
 * so that a snapshot cannot land outside its directory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "infini_err.h"
#include "snapshot.h"

/* ---- format constants (docs/snapshot-format.md) ---- */

#define HDR_SIZE 240u              /* v1 header, checksum included */
#define HDR_SUM_OFF 232u           /* header checksum covers [0, 232) */
#define SEC_HDR 24u                /* checksum, type, flags, length */
#define TRAILER 16u                /* "INFSEND\0", file checksum */
#define ENDIAN_MARK 0x01020304u
#define FLAG_KMEM 1u               /* header flag: segment holds km */
#define SEC_OPTIONAL 1u            /* section flag: skip if unknown */

enum snap_sec {
	SEC_MEMORY = 1,            /* per layer, kv head: M [hd][hd], z [hd] */
	SEC_SEGMENT = 2,           /* per layer, kv head: k, v (, km) [rows][hd] */
	SEC_LOGITS = 3,            /* [n_logits] */
	SEC_OWNER = 4,             /* optional: u32 owner UID, u32 zero */
	SEC_HIDDEN = 5,            /* optional: last input's hidden [hidden] */
};
#define OWNER_LEN 8u

static const char trailer_magic[8] = "INFSEND";

/* ---- little-endian helpers ---- */

static void
put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void
put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t
get32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return (v);
}

static uint64_t
get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return (v);
}

/* put_f32s / get_f32s copy n floats as little-endian binary32. */
static uint8_t *
put_f32s(uint8_t *p, const float *f, size_t n)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	memcpy(p, f, n * 4);
#else
	for (size_t i = 0; i < n; i++) {
		uint32_t u;
		memcpy(&u, &f[i], 4);
		put32(p + 4 * i, u);
	}
#endif
	return (p + n * 4);
}

static const uint8_t *
get_f32s(const uint8_t *p, float *f, size_t n)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	memcpy(f, p, n * 4);
#else
	for (size_t i = 0; i < n; i++) {
		uint32_t u = get32(p + 4 * i);
		memcpy(&f[i], &u, 4);
	}
#endif
	return (p + n * 4);
}

static size_t
pad8(size_t n)
{
	return ((n + 7) & ~(size_t)7);
}

/* ---- metadata ---- */

int
snap_meta_init(struct snap_meta *m, const struct eng_model *md,
    const char *stream_id)
{
	const struct eng_config *c = &md->cfg;
	struct timespec ts;
	size_t n = stream_id ? strlen(stream_id) : 0;

	if (n > SNAP_ID_MAX)
		return (INFINI_EINVAL);
	memset(m, 0, sizeof(*m));
	m->version = SNAP_VERSION;
	m->fingerprint = md->fingerprint;
	m->n_layers = c->n_layers;
	m->n_kv_heads = c->n_kv_heads;
	m->head_dim = c->head_dim;
	m->segment_size = c->segment_size;
	m->hidden_size = c->hidden_size;
	m->vocab_size = c->vocab_size;
	if (n > 0)
		memcpy(m->stream_id, stream_id, n);
	clock_gettime(CLOCK_REALTIME, &ts);
	m->created_ms = (uint64_t)ts.tv_sec * 1000 +
	    (uint64_t)ts.tv_nsec / 1000000;
	return (0);
}

void
snap_meta_fini(struct snap_meta *m)
{
	if (m == NULL)
		return;
	free(m->last_logits);
	m->last_logits = NULL;
	m->n_logits = 0;
}

/* ---- encoding ---- */

/* sec_put writes a section header at p for a payload already at p+24 and
 * returns the end of the padded section. */
static uint8_t *
sec_put(uint8_t *p, uint32_t type, uint32_t flags, size_t len)
{
	put32(p + 8, type);
	put32(p + 12, flags);
	put64(p + 16, len);
	put64(p, XXH3_64bits(p + 8, 16 + len));
	return (p + SEC_HDR + pad8(len));
}

int
snap_encode(const struct snap_meta *m, const struct eng_stream_state *st,
    uint8_t **buf, size_t *len)
{
	size_t memn, cachen, idlen, memlen, seglen, loglen, hidlen, total, lh;
	size_t hd, nr;
	uint8_t *b, *p;
	int nsec;

	idlen = strnlen(m->stream_id, sizeof(m->stream_id));
	if (idlen > SNAP_ID_MAX || m->n_layers != st->n_layers ||
	    m->n_kv_heads != st->n_kv_heads || m->head_dim != st->head_dim ||
	    m->segment_size != st->segment_size || st->segment_size <= 0 ||
	    m->hidden_size <= 0 || m->vocab_size <= 0 || st->pos < 0 ||
	    st->rows != (int)(st->pos % st->segment_size) ||
	    (st->has_kmem && st->km == NULL) ||
	    (m->n_logits != 0 && (m->n_logits != (uint32_t)m->vocab_size ||
	    m->last_logits == NULL)) ||
	    (st->n_last != 0 && (st->n_last != m->hidden_size ||
	    st->last == NULL)))
		return (INFINI_EINVAL);
	eng_stream_state_floats(st, &memn, &cachen);
	memlen = memn * 4;
	seglen = cachen * 4 * (st->has_kmem ? 3 : 2);
	loglen = (size_t)m->n_logits * 4;
	hidlen = (size_t)st->n_last * 4;
	nsec = 2 + (m->n_logits ? 1 : 0) + (m->has_owner ? 1 : 0) +
	    (hidlen ? 1 : 0);
	total = HDR_SIZE + SEC_HDR + pad8(memlen) + SEC_HDR + pad8(seglen) +
	    (m->n_logits ? SEC_HDR + pad8(loglen) : 0) +
	    (m->has_owner ? SEC_HDR + OWNER_LEN : 0) +
	    (hidlen ? SEC_HDR + pad8(hidlen) : 0) + TRAILER;
	if ((b = calloc(total, 1)) == NULL)
		return (INFINI_ENOMEM);

	/* Header. */
	memcpy(b, SNAP_MAGIC, 8);
	put32(b + 8, SNAP_VERSION);
	put32(b + 12, ENDIAN_MARK);
	put32(b + 16, HDR_SIZE);
	put32(b + 20, st->has_kmem ? FLAG_KMEM : 0);
	put64(b + 24, m->fingerprint);
	put32(b + 32, (uint32_t)m->n_layers);
	put32(b + 36, (uint32_t)m->n_kv_heads);
	put32(b + 40, (uint32_t)m->head_dim);
	put32(b + 44, (uint32_t)m->segment_size);
	put32(b + 48, (uint32_t)m->hidden_size);
	put32(b + 52, (uint32_t)m->vocab_size);
	put64(b + 56, (uint64_t)st->pos);
	put64(b + 64, (uint64_t)(st->pos / st->segment_size));
	put64(b + 72, st->sample_step);
	put64(b + 80, m->created_ms);
	put32(b + 88, m->n_logits);
	put32(b + 92, (uint32_t)nsec);
	put32(b + 96, (uint32_t)idlen);
	memcpy(b + 100, m->stream_id, idlen);
	put32(b + 228, 0);
	put64(b + HDR_SUM_OFF, XXH3_64bits(b, HDR_SUM_OFF));
	p = b + HDR_SIZE;

	/* Memory: per layer and kv head, M then z. */
	lh = (size_t)st->n_layers * st->n_kv_heads;
	hd = (size_t)st->head_dim;
	nr = (size_t)st->rows * hd;
	uint8_t *q = p + SEC_HDR;
	for (size_t i = 0; i < lh; i++) {
		q = put_f32s(q, st->M + i * hd * hd, hd * hd);
		q = put_f32s(q, st->z + i * hd, hd);
	}
	p = sec_put(p, SEC_MEMORY, 0, memlen);

	/* The unfinished segment: per layer and kv head, k, v (, km) rows. */
	q = p + SEC_HDR;
	for (size_t i = 0; i < lh && nr > 0; i++) {
		q = put_f32s(q, st->kc + i * nr, nr);
		q = put_f32s(q, st->vc + i * nr, nr);
		if (st->has_kmem)
			q = put_f32s(q, st->km + i * nr, nr);
	}
	p = sec_put(p, SEC_SEGMENT, 0, seglen);

	if (m->n_logits) {
		put_f32s(p + SEC_HDR, m->last_logits, m->n_logits);
		p = sec_put(p, SEC_LOGITS, 0, loglen);
	}
	if (m->has_owner) {
		/* Optional, so version-1 readers that predate it skip it. */
		put32(p + SEC_HDR, m->owner);
		put32(p + SEC_HDR + 4, 0);
		p = sec_put(p, SEC_OWNER, SEC_OPTIONAL, OWNER_LEN);
	}
	if (hidlen) {
		/* Optional too: an older reader restores the stream and only
		 * loses Generate-without-a-prompt right after. */
		put_f32s(p + SEC_HDR, st->last, (size_t)st->n_last);
		p = sec_put(p, SEC_HIDDEN, SEC_OPTIONAL, hidlen);
	}

	/* Trailer: a checksum over everything before it. */
	memcpy(p, trailer_magic, 8);
	put64(p + 8, XXH3_64bits(b, (size_t)(p + 8 - b)));
	*buf = b;
	*len = total;
	return (0);
}

/* ---- decoding ---- */

#define FAIL(code, ...)                                                    \
	do {                                                               \
		snprintf(err, errlen, __VA_ARGS__);                        \
		rv = (code);                                               \
		goto fail;                                                 \
	} while (0)

/* A section as found by the walk: payload and length. */
struct sec_ref {
	const uint8_t *data;
	size_t len;
	bool seen;
};

/* all_finite: no NaN or infinity among f[0..n). */
static bool
all_finite(const float *f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isfinite(f[i]))
			return (false);
	return (true);
}

/* mul_ok: *r = a * b, false on overflow. */
static bool
mul_ok(size_t a, size_t b, size_t *r)
{
	return (!__builtin_mul_overflow(a, b, r));
}

int
snap_decode(const uint8_t *buf, size_t len, uint64_t expected_fp,
    struct snap_meta *meta, struct eng_stream_state *out, char *err,
    size_t errlen)
{
	struct snap_meta m;
	struct eng_stream_state st;
	struct sec_ref sec[SEC_HIDDEN + 1] = { { 0 } };
	uint32_t version, mark, hsize, flags, nsec, idlen, dims[6];
	uint64_t pos, segs;
	size_t end, p, lh, memlen, seglen, t;
	char dummy[8];
	int rv, last = 0;

	if (err == NULL) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	memset(&m, 0, sizeof(m));
	memset(&st, 0, sizeof(st));
	if (len < 16)
		FAIL(INFINI_ECORRUPT, "snapshot truncated: %zu bytes", len);
	if (memcmp(buf, SNAP_MAGIC, 8) != 0)
		FAIL(INFINI_EUNSUPPORTED, "not an infinid snapshot (bad magic)");
	version = get32(buf + 8);
	mark = get32(buf + 12);
	if (version > SNAP_VERSION)
		FAIL(INFINI_EUNSUPPORTED, "snapshot format version %u is newer "
		    "than this infinid reads (%d)", version, SNAP_VERSION);
	if (version < SNAP_VERSION_MIN)
		FAIL(INFINI_EUNSUPPORTED, "snapshot format version %u is older "
		    "than this infinid reads (%d..%d)", version,
		    SNAP_VERSION_MIN, SNAP_VERSION);
	if (mark == 0x04030201u)
		FAIL(INFINI_EUNSUPPORTED, "big-endian snapshot");
	if (mark != ENDIAN_MARK)
		FAIL(INFINI_ECORRUPT, "bad endianness marker %08x", mark);
	/* Version 1 is the only version so far; a migration for an older
	 * version would branch here (docs/snapshot-format.md, Versions). */
	if (len < HDR_SIZE + TRAILER)
		FAIL(INFINI_ECORRUPT, "snapshot truncated: %zu bytes", len);
	if (get64(buf + HDR_SUM_OFF) != XXH3_64bits(buf, HDR_SUM_OFF))
		FAIL(INFINI_ECORRUPT, "header checksum mismatch");
	hsize = get32(buf + 16);
	if (hsize != HDR_SIZE)
		FAIL(INFINI_ECORRUPT, "header size %u, want %u", hsize,
		    HDR_SIZE);
	end = len - TRAILER;
	if (memcmp(buf + end, trailer_magic, 8) != 0)
		FAIL(INFINI_ECORRUPT, "no trailer: truncated or corrupt");
	if (get64(buf + end + 8) != XXH3_64bits(buf, end + 8))
		FAIL(INFINI_ECORRUPT, "file checksum mismatch");

	/* Header fields. */
	m.version = version;
	flags = get32(buf + 20);
	m.fingerprint = get64(buf + 24);
	for (int i = 0; i < 6; i++) {
		dims[i] = get32(buf + 32 + 4 * i);
		if (dims[i] == 0 || dims[i] > INT_MAX)
			FAIL(INFINI_ECORRUPT, "bad model shape field %d: %u", i,
			    dims[i]);
	}
	m.n_layers = (int)dims[0];
	m.n_kv_heads = (int)dims[1];
	m.head_dim = (int)dims[2];
	m.segment_size = (int)dims[3];
	m.hidden_size = (int)dims[4];
	m.vocab_size = (int)dims[5];
	pos = get64(buf + 56);
	segs = get64(buf + 64);
	m.created_ms = get64(buf + 80);
	m.n_logits = get32(buf + 88);
	nsec = get32(buf + 92);
	idlen = get32(buf + 96);
	if ((flags & ~FLAG_KMEM) != 0)
		FAIL(INFINI_ECORRUPT, "unknown header flags %08x", flags);
	if (pos > (uint64_t)ENG_POS_MAX)
		FAIL(INFINI_ECORRUPT, "position %llu is past the largest a "
		    "stream can reach (%lld)", (unsigned long long)pos,
		    (long long)ENG_POS_MAX);
	if (segs != pos / m.segment_size)
		FAIL(INFINI_ECORRUPT, "position %llu and %llu segments disagree",
		    (unsigned long long)pos, (unsigned long long)segs);
	if (m.n_logits != 0 && m.n_logits != dims[5])
		FAIL(INFINI_ECORRUPT, "%u last logits for vocab %u", m.n_logits,
		    dims[5]);
	if (idlen > SNAP_ID_MAX || memchr(buf + 100, 0, idlen) != NULL)
		FAIL(INFINI_ECORRUPT, "bad stream id (length %u)", idlen);
	for (t = 100 + idlen; t < 232; t++)
		if (buf[t] != 0)
			FAIL(INFINI_ECORRUPT, "nonzero reserved header byte %zu",
			    t);
	memcpy(m.stream_id, buf + 100, idlen);

	/* Sections: MEMORY, SEGMENT, then LOGITS, OWNER and HIDDEN when
	 * present, in that order; an unknown section marked optional is
	 * skipped. */
	p = HDR_SIZE;
	for (uint32_t i = 0; i < nsec; i++) {
		uint32_t type, sflags;
		uint64_t slen;
		if (end - p < SEC_HDR)
			FAIL(INFINI_ECORRUPT, "section %u truncated", i);
		type = get32(buf + p + 8);
		sflags = get32(buf + p + 12);
		slen = get64(buf + p + 16);
		if (slen > end - p - SEC_HDR ||
		    pad8((size_t)slen) > end - p - SEC_HDR)
			FAIL(INFINI_ECORRUPT, "section %u (type %u) length %llu "
			    "runs past the end", i, type,
			    (unsigned long long)slen);
		if (get64(buf + p) != XXH3_64bits(buf + p + 8, 16 + slen))
			FAIL(INFINI_ECORRUPT, "section %u (type %u) checksum "
			    "mismatch", i, type);
		for (t = p + SEC_HDR + slen; t < p + SEC_HDR + pad8(slen); t++)
			if (buf[t] != 0)
				FAIL(INFINI_ECORRUPT, "nonzero section padding");
		if (type >= SEC_MEMORY && type <= SEC_HIDDEN) {
			/* Known sections carry only the flags this code
			 * writes: none, or SEC_OPTIONAL on the optional
			 * ones. */
			uint32_t known = type >= SEC_OWNER ? SEC_OPTIONAL : 0;
			if ((sflags & ~known) != 0)
				FAIL(INFINI_ECORRUPT, "section %u (type %u) has "
				    "unknown flags %08x", i, type, sflags);
			if ((int)type <= last)
				FAIL(INFINI_ECORRUPT, "section type %u out of "
				    "order", type);
			last = (int)type;
			sec[type] = (struct sec_ref){ buf + p + SEC_HDR,
			    (size_t)slen, true };
		} else if (!(sflags & SEC_OPTIONAL)) {
			FAIL(INFINI_EUNSUPPORTED, "unknown required section "
			    "type %u", type);
		}
		p += SEC_HDR + pad8((size_t)slen);
	}
	if (p != end)
		FAIL(INFINI_ECORRUPT, "%zu stray bytes after the sections",
		    end - p);
	if (!sec[SEC_MEMORY].seen || !sec[SEC_SEGMENT].seen ||
	    sec[SEC_LOGITS].seen != (m.n_logits != 0))
		FAIL(INFINI_ECORRUPT, "missing or unexpected section");

	/* Lengths the shape implies (overflow means they cannot match). */
	lh = (size_t)dims[0] * dims[1];
	if (!mul_ok(lh, dims[2], &t) || !mul_ok(t, (size_t)dims[2] + 1, &t) ||
	    !mul_ok(t, 4, &memlen) || memlen != sec[SEC_MEMORY].len)
		FAIL(INFINI_ECORRUPT, "memory section is %zu bytes, the shape "
		    "needs another size", sec[SEC_MEMORY].len);
	if (!mul_ok(lh, dims[2], &t) ||
	    !mul_ok(t, (size_t)(pos % dims[3]), &t) ||
	    !mul_ok(t, (flags & FLAG_KMEM) ? 12 : 8, &seglen) ||
	    seglen != sec[SEC_SEGMENT].len)
		FAIL(INFINI_ECORRUPT, "segment section is %zu bytes, the "
		    "position and shape need another size",
		    sec[SEC_SEGMENT].len);
	if (m.n_logits && sec[SEC_LOGITS].len != (size_t)m.n_logits * 4)
		FAIL(INFINI_ECORRUPT, "logits section length mismatch");
	if (sec[SEC_OWNER].seen) {
		if (sec[SEC_OWNER].len != OWNER_LEN ||
		    get32(sec[SEC_OWNER].data + 4) != 0)
			FAIL(INFINI_ECORRUPT, "bad owner section");
		m.has_owner = true;
		m.owner = get32(sec[SEC_OWNER].data);
	}
	if (sec[SEC_HIDDEN].seen &&
	    sec[SEC_HIDDEN].len != (size_t)m.hidden_size * 4)
		FAIL(INFINI_ECORRUPT, "hidden section is %zu bytes, not "
		    "hidden_size floats", sec[SEC_HIDDEN].len);

	if (expected_fp != SNAP_ANY_MODEL && m.fingerprint != expected_fp)
		FAIL(INFINI_ESTATE, "snapshot is of another model (fingerprint "
		    "%016llx, serving %016llx)",
		    (unsigned long long)m.fingerprint,
		    (unsigned long long)expected_fp);

	/* Everything checks out: fill. */
	if ((rv = eng_stream_state_init(&st, m.n_layers, m.n_kv_heads,
	    m.head_dim, m.segment_size, (flags & FLAG_KMEM) != 0,
	    (int64_t)pos)) != 0) {
		snprintf(err, errlen, "cannot allocate the stream state");
		rv = rv == INFINI_EINVAL ? INFINI_ECORRUPT : rv;
		goto fail;
	}
	st.sample_step = get64(buf + 72);
	{
		size_t hd = (size_t)m.head_dim, nr = (size_t)st.rows * hd;
		const uint8_t *q = sec[SEC_MEMORY].data;
		for (size_t i = 0; i < lh; i++) {
			q = get_f32s(q, st.M + i * hd * hd, hd * hd);
			q = get_f32s(q, st.z + i * hd, hd);
		}
		q = sec[SEC_SEGMENT].data;
		for (size_t i = 0; i < lh && nr > 0; i++) {
			q = get_f32s(q, st.kc + i * nr, nr);
			q = get_f32s(q, st.vc + i * nr, nr);
			if (st.has_kmem)
				q = get_f32s(q, st.km + i * nr, nr);
		}
	}
	if (!all_finite(st.M, (size_t)lh * m.head_dim * m.head_dim) ||
	    !all_finite(st.z, (size_t)lh * m.head_dim))
		FAIL(INFINI_ECORRUPT, "the memory (M or z) holds NaN or "
		    "infinity");
	{
		size_t nc = (size_t)lh * st.rows * m.head_dim;
		if (!all_finite(st.kc, nc) || !all_finite(st.vc, nc) ||
		    (st.has_kmem && !all_finite(st.km, nc)))
			FAIL(INFINI_ECORRUPT, "the segment's K/V rows hold NaN "
			    "or infinity");
	}
	if (sec[SEC_HIDDEN].seen) {
		if ((st.last = malloc(sec[SEC_HIDDEN].len)) == NULL) {
			snprintf(err, errlen, "cannot allocate the hidden state");
			rv = INFINI_ENOMEM;
			goto fail;
		}
		st.n_last = m.hidden_size;
		get_f32s(sec[SEC_HIDDEN].data, st.last, (size_t)st.n_last);
		if (!all_finite(st.last, (size_t)st.n_last))
			FAIL(INFINI_ECORRUPT, "the last hidden state holds NaN "
			    "or infinity");
	}
	if (m.n_logits) {
		if ((m.last_logits = malloc((size_t)m.n_logits * 4)) == NULL) {
			snprintf(err, errlen, "cannot allocate the logits");
			rv = INFINI_ENOMEM;
			goto fail;
		}
		get_f32s(sec[SEC_LOGITS].data, m.last_logits, m.n_logits);
		if (!all_finite(m.last_logits, m.n_logits))
			FAIL(INFINI_ECORRUPT, "the last logits hold NaN or "
			    "infinity");
	}
	*meta = m;
	*out = st;
	return (0);
fail:
	snap_meta_fini(&m);
	eng_stream_state_fini(&st);
	return (rv);
}

int
snap_check_model(const struct snap_meta *m,
    const struct eng_stream_state *st, const struct eng_model *md, char *err,
    size_t errlen)
{
	const struct eng_config *c = &md->cfg;
	static const char *const what[] = { "n_layers", "n_kv_heads",
	    "head_dim", "segment_size", "hidden_size", "vocab_size" };
	const int got[] = { m->n_layers, m->n_kv_heads, m->head_dim,
	    m->segment_size, m->hidden_size, m->vocab_size };
	const int want[] = { c->n_layers, c->n_kv_heads, c->head_dim,
	    c->segment_size, c->hidden_size, c->vocab_size };

	if (m->fingerprint != md->fingerprint) {
		snprintf(err, errlen, "snapshot is of another model (fingerprint "
		    "%016llx, serving %016llx)",
		    (unsigned long long)m->fingerprint,
		    (unsigned long long)md->fingerprint);
		return (INFINI_ESTATE);
	}
	for (int i = 0; i < 6; i++)
		if (got[i] != want[i]) {
			snprintf(err, errlen, "snapshot's %s is %d, the model's "
			    "%d", what[i], got[i], want[i]);
			return (INFINI_ESTATE);
		}
	if (st->has_kmem != (c->rope && !c->memory_rope)) {
		snprintf(err, errlen, "snapshot %s unrotated keys, the model "
		    "needs %s", st->has_kmem ? "holds" : "lacks",
		    st->has_kmem ? "none" : "them");
		return (INFINI_ESTATE);
	}
	return (0);
}

int
snap_decode_model(const uint8_t *buf, size_t len, const struct eng_model *md,
    struct snap_meta *meta, struct eng_stream_state *st, char *err,
    size_t errlen)
{
	struct snap_meta m;
	struct eng_stream_state s;
	int rv;

	if ((rv = snap_decode(buf, len, md->fingerprint, &m, &s, err,
	    errlen)) != 0)
		return (rv);
	if ((rv = snap_check_model(&m, &s, md, err, errlen)) != 0) {
		snap_meta_fini(&m);
		eng_stream_state_fini(&s);
		return (rv);
	}
	*meta = m;
	*st = s;
	return (0);
}

size_t
snap_max_size(const struct eng_model *md)
{
	const struct eng_config *c = &md->cfg;
	size_t lh = (size_t)c->n_layers * c->n_kv_heads;
	size_t hd = (size_t)c->head_dim, N = (size_t)c->segment_size;

	/* Every section at its largest: a segment one row short of full,
	 * with unrotated keys, logits, the owner and the hidden state. */
	return (HDR_SIZE + SEC_HDR + pad8(lh * hd * (hd + 1) * 4) +
	    SEC_HDR + pad8(lh * (N - 1) * hd * 12) +
	    SEC_HDR + pad8((size_t)c->vocab_size * 4) + SEC_HDR + OWNER_LEN +
	    SEC_HDR + pad8((size_t)c->hidden_size * 4) + TRAILER);
}

/* ---- files ---- */

static int fault_n = -1, fault_err;

void
snap_fault(int nth, int err)
{
	fault_n = nth;
	fault_err = err;
}

bool
snap_fault_pending(void)
{
	return (fault_n >= 0);
}

/* fault_fire: should this file operation fail (errno set)? */
static bool
fault_fire(void)
{
	if (fault_n < 0 || fault_n-- > 0)
		return (false);
	errno = fault_err;
	return (true);
}

static int
f_openat(int dfd, const char *path, int flags, mode_t mode)
{
	return (fault_fire() ? -1 : openat(dfd, path, flags, mode));
}

static ssize_t
f_write(int fd, const void *b, size_t n)
{
	return (fault_fire() ? -1 : write(fd, b, n));
}

static ssize_t
f_read(int fd, void *b, size_t n)
{
	return (fault_fire() ? -1 : read(fd, b, n));
}

static int
f_fsync(int fd)
{
	return (fault_fire() ? -1 : fsync(fd));
}

/* f_close always releases fd; a fault only changes the result. */
static int
f_close(int fd)
{
	int rv = close(fd);
	if (fault_fire())
		return (-1);
	return (rv);
}

static int
f_renameat(int dfd, const char *from, const char *to)
{
	return (fault_fire() ? -1 : renameat(dfd, from, dfd, to));
}

bool
snap_name_ok(const char *name)
{
	size_t n;

	if (name == NULL || name[0] == '\0' || name[0] == '.')
		return (false);
	for (n = 0; name[n] != '\0'; n++) {
		char c = name[n];
		if (n >= SNAP_NAME_MAX)
			return (false);
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		    c == ':' || c == '-'))
			return (false);
	}
	return (true);
}

/* map_errno turns a file error into an INFINI_E* code. */
static int
map_errno(int e)
{
	switch (e) {
	case ENOSPC:
	case EDQUOT:
		return (INFINI_EFULL);
	case EACCES:
	case EPERM:
	case EROFS:
		return (INFINI_EPERM);
	case ENOENT:
	case ENOTDIR:
		return (INFINI_ENOENT);
	case ENOMEM:
		return (INFINI_ENOMEM);
	default:
		return (INFINI_EIO);
	}
}

/* io_fail records "snapshot 'NAME': step: strerror" and returns the mapped
 * code.  The message never names the directory: it goes back to clients,
 * who have no business knowing the server's paths (callers that log add
 * the directory themselves). */
static int
io_fail(char *err, size_t errlen, const char *step, const char *name, int e)
{
	if (err != NULL)
		snprintf(err, errlen, "snapshot '%s': %s: %s", name ? name : "",
		    step, strerror(e));
	return (map_errno(e));
}

static int
open_dir(const char *dir, char *err, size_t errlen, int *dfd)
{
	if ((*dfd = f_openat(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC,
	    0)) < 0) {
		int e = errno;
		if (err != NULL)
			snprintf(err, errlen, "snapshot: cannot open the "
			    "snapshot directory: %s", strerror(e));
		return (map_errno(e));
	}
	return (0);
}

static int
write_file(const char *dir, const char *name, const uint8_t *buf,
    size_t len, char *err, size_t errlen)
{
	static atomic_uint seq;
	char tmp[SNAP_NAME_MAX + 64];
	int dfd = -1, fd = -1, rv, e;
	bool made = false;

	if (!snap_name_ok(name)) {
		if (err != NULL)
			snprintf(err, errlen, "snapshot: bad name (1-%d of "
			    "[A-Za-z0-9._:-], not starting with '.')",
			    SNAP_NAME_MAX);
		return (INFINI_EINVAL);
	}
	if ((rv = open_dir(dir, err, errlen, &dfd)) != 0)
		return (rv);
	/* The temp name starts with '.', which no snapshot name may. */
	for (int tries = 0; fd < 0; tries++) {
		snprintf(tmp, sizeof(tmp), ".%s.tmp.%ld.%u", name,
		    (long)getpid(), atomic_fetch_add(&seq, 1));
		fd = f_openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		    0600);
		if (fd < 0 && (errno != EEXIST || tries >= 100)) {
			rv = io_fail(err, errlen, "create a temporary file",
			    name, errno);
			goto fail;
		}
	}
	made = true;
	for (size_t off = 0; off < len;) {
		size_t n = len - off > (1u << 20) ? (1u << 20) : len - off;
		ssize_t w = f_write(fd, buf + off, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			rv = io_fail(err, errlen, "write", name,
			    w < 0 ? errno : EIO);
			goto fail;
		}
		off += (size_t)w;
	}
	if (f_fsync(fd) != 0) {
		rv = io_fail(err, errlen, "fsync", name, errno);
		goto fail;
	}
	e = f_close(fd) != 0 ? errno : 0;
	fd = -1;
	if (e != 0) {
		rv = io_fail(err, errlen, "close", name, e);
		goto fail;
	}
	if (f_renameat(dfd, tmp, name) != 0) {
		rv = io_fail(err, errlen, "rename into place", name, errno);
		goto fail;
	}
	made = false;
	/* The new name is in place; make it survive a crash.  EINVAL: the
	 * file system cannot sync directories at all. */
	if (f_fsync(dfd) != 0 && errno != EINVAL) {
		rv = io_fail(err, errlen, "fsync the directory (snapshot "
		    "renamed, durability unknown)", name, errno);
		goto fail;
	}
	close(dfd);
	return (0);
fail:
	if (fd >= 0)
		close(fd);
	if (made)
		unlinkat(dfd, tmp, 0);
	close(dfd);
	return (rv);
}

/*
 * open_regular opens dfd/name for reading without following a symlink and
 * without blocking (a FIFO or a device opens at once and is then refused),
 * and checks it is a regular file of at most max bytes.  0 with *fd and *sb
 * set, or an error with err set (no path in it).
 */
static int
open_regular(int dfd, const char *name, size_t max, int *fd, struct stat *sb,
    char *err, size_t errlen)
{
	int e;

	if ((*fd = f_openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_NOCTTY | O_CLOEXEC, 0)) < 0) {
		e = errno;
		if (e == ELOOP) {
			if (err != NULL)
				snprintf(err, errlen, "snapshot '%s' is a "
				    "symbolic link", name);
			return (INFINI_EINVAL);
		}
		if (e == ENOENT) {
			if (err != NULL)
				snprintf(err, errlen, "no snapshot '%s'", name);
			return (INFINI_ENOENT);
		}
		return (io_fail(err, errlen, "open", name, e));
	}
	if (fstat(*fd, sb) != 0) {
		e = errno;
		close(*fd);
		*fd = -1;
		return (io_fail(err, errlen, "stat", name, e));
	}
	if (!S_ISREG(sb->st_mode)) {
		if (err != NULL)
			snprintf(err, errlen, "snapshot '%s' is not a regular "
			    "file", name);
		close(*fd);
		*fd = -1;
		return (INFINI_EINVAL);
	}
	if ((uint64_t)sb->st_size > (uint64_t)max) {
		if (err != NULL)
			snprintf(err, errlen, "snapshot '%s' is %lld bytes, more "
			    "than any snapshot of this model (%zu)", name,
			    (long long)sb->st_size, max);
		close(*fd);
		*fd = -1;
		return (INFINI_ECORRUPT);
	}
	return (0);
}

/* Files written, their bytes and failed writes, for the daemon's metrics:
 * atomics, as spills, autosnapshots and Snapshot calls may write at once. */
static atomic_uint_fast64_t n_writes, n_bytes, n_failures;

int
snap_write_file(const char *dir, const char *name, const uint8_t *buf,
    size_t len, char *err, size_t errlen)
{
	int rv = write_file(dir, name, buf, len, err, errlen);

	if (rv == 0) {
		atomic_fetch_add_explicit(&n_writes, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&n_bytes, len, memory_order_relaxed);
	} else {
		atomic_fetch_add_explicit(&n_failures, 1, memory_order_relaxed);
	}
	return (rv);
}

void
snap_counters(uint64_t *writes, uint64_t *bytes, uint64_t *failures)
{
	*writes = atomic_load_explicit(&n_writes, memory_order_relaxed);
	*bytes = atomic_load_explicit(&n_bytes, memory_order_relaxed);
	*failures = atomic_load_explicit(&n_failures, memory_order_relaxed);
}

int
snap_read_file(const char *dir, const char *name, uint8_t **buf,
    size_t *len, char *err, size_t errlen)
{
	return (snap_read_file_max(dir, name, SIZE_MAX, buf, len, err, errlen));
}

int
snap_read_file_max(const char *dir, const char *name, size_t max,
    uint8_t **buf, size_t *len, char *err, size_t errlen)
{
	struct stat sb;
	uint8_t *b = NULL;
	size_t got = 0;
	int dfd = -1, fd = -1, rv;

	if (!snap_name_ok(name)) {
		if (err != NULL)
			snprintf(err, errlen, "snapshot: bad name");
		return (INFINI_EINVAL);
	}
	if ((rv = open_dir(dir, err, errlen, &dfd)) != 0)
		return (rv);
	if ((rv = open_regular(dfd, name, max, &fd, &sb, err, errlen)) != 0)
		goto fail;
	if ((b = malloc(sb.st_size > 0 ? (size_t)sb.st_size : 1)) == NULL) {
		rv = INFINI_ENOMEM;
		goto fail;
	}
	while (got < (size_t)sb.st_size) {
		ssize_t r = f_read(fd, b + got, (size_t)sb.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rv = io_fail(err, errlen, "read", name, errno);
			goto fail;
		}
		if (r == 0)
			break;          /* shrank under us: decode will tell */
		got += (size_t)r;
	}
	close(fd);
	close(dfd);
	*buf = b;
	*len = got;
	return (0);
fail:
	free(b);
	if (fd >= 0)
		close(fd);
	close(dfd);
	return (rv);
}

/* pread_all reads n bytes at off; false on error or a short file. */
static bool
pread_all(int fd, void *b, size_t n, uint64_t off)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = pread(fd, (uint8_t *)b + got, n - got,
		    (off_t)(off + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return (false);
		got += (size_t)r;
	}
	return (true);
}

int
snap_stat_file(const char *dir, const char *name, size_t max,
    struct snap_info *out, char *err, size_t errlen)
{
	struct snap_info in;
	struct stat sb;
	uint8_t h[HDR_SIZE], sh[SEC_HDR + OWNER_LEN];
	uint64_t off, end;
	uint32_t version, nsec, idlen;
	int dfd = -1, fd = -1, rv;

	memset(&in, 0, sizeof(in));
	if (!snap_name_ok(name)) {
		if (err != NULL)
			snprintf(err, errlen, "snapshot: bad name");
		return (INFINI_EINVAL);
	}
	if ((rv = open_dir(dir, err, errlen, &dfd)) != 0)
		return (rv);
	if ((rv = open_regular(dfd, name, max, &fd, &sb, err, errlen)) != 0)
		goto out;
	rv = INFINI_ECORRUPT;
	in.bytes = (uint64_t)sb.st_size;
	if (in.bytes < HDR_SIZE + TRAILER || !pread_all(fd, h, HDR_SIZE, 0) ||
	    memcmp(h, SNAP_MAGIC, 8) != 0 ||
	    (version = get32(h + 8)) > SNAP_VERSION ||
	    version < SNAP_VERSION_MIN || get32(h + 12) != ENDIAN_MARK ||
	    get64(h + HDR_SUM_OFF) != XXH3_64bits(h, HDR_SUM_OFF) ||
	    (idlen = get32(h + 96)) > SNAP_ID_MAX) {
		if (err != NULL)
			snprintf(err, errlen, "snapshot '%s' has no valid "
			    "header", name);
		goto out;
	}
	in.position = get64(h + 56);
	in.created_ms = get64(h + 80);
	memcpy(in.stream_id, h + 100, idlen);
	in.stream_id[idlen] = '\0';
	/* The owner section, found by walking the section headers; its
	 * checksum is verified (it decides who may replace the file). */
	nsec = get32(h + 92);
	end = in.bytes - TRAILER;
	off = HDR_SIZE;
	for (uint32_t i = 0; i < nsec && off + SEC_HDR <= end; i++) {
		uint64_t slen;
		if (!pread_all(fd, sh, SEC_HDR, off))
			break;
		slen = get64(sh + 16);
		if (slen > end - off - SEC_HDR)
			break;
		if (get32(sh + 8) == SEC_OWNER) {
			if (slen == OWNER_LEN &&
			    pread_all(fd, sh + SEC_HDR, OWNER_LEN,
			    off + SEC_HDR) &&
			    get64(sh) == XXH3_64bits(sh + 8, 16 + OWNER_LEN)) {
				in.has_owner = true;
				in.owner = get32(sh + SEC_HDR);
			} else {
				if (err != NULL)
					snprintf(err, errlen, "snapshot '%s' "
					    "has a damaged owner section",
					    name);
				goto out;
			}
			break;
		}
		off += SEC_HDR + pad8((size_t)slen);
	}
	rv = 0;
	*out = in;
out:
	if (fd >= 0)
		close(fd);
	close(dfd);
	return (rv);
}

/* temp_name_ok: is e a temp file name that snap_write_file makes,
 * ".NAME.tmp.PID.N"? */
static bool
temp_name_ok(const char *e)
{
	char name[SNAP_NAME_MAX + 1];
	const char *p, *q, *t;
	size_t n = strlen(e);

	if (n < 2 || e[0] != '.')
		return (false);
	/* N, then PID, from the end: digits after the last two dots. */
	if ((p = strrchr(e, '.')) == NULL || p[1] == '\0' ||
	    strspn(p + 1, "0123456789") != strlen(p + 1))
		return (false);
	for (q = p - 1; q > e && *q != '.'; q--)
		;
	if (q <= e || q + 1 == p || strspn(q + 1, "0123456789") !=
	    (size_t)(p - q - 1))
		return (false);
	if ((size_t)(q - e) < 5 || memcmp(q - 4, ".tmp", 4) != 0)
		return (false);
	t = q - 4;
	if ((size_t)(t - e - 1) > SNAP_NAME_MAX || t - e - 1 < 1)
		return (false);
	memcpy(name, e + 1, (size_t)(t - e - 1));
	name[t - e - 1] = '\0';
	return (snap_name_ok(name));
}

int
snap_clean_temps(const char *dir, int *removed)
{
	struct dirent *de;
	struct stat sb;
	DIR *dp;
	int dfd, n = 0;

	*removed = 0;
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) < 0)
		return (map_errno(errno));
	if ((dp = fdopendir(dfd)) == NULL) {
		int e = errno;
		close(dfd);
		return (map_errno(e));
	}
	while ((de = readdir(dp)) != NULL)
		if (temp_name_ok(de->d_name) &&
		    fstatat(dfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(sb.st_mode) && unlinkat(dfd, de->d_name, 0) == 0)
			n++;
	closedir(dp);
	*removed = n;
	return (0);
}
