/*
 * t_snapshot.c - stream snapshots: engine state export and import, the
 * byte format (daemon/snapshot.c, docs/snapshot-format.md) and durable
 * files.
 *
 * A round trip is bit-exact (export, encode, decode, import, export again
 * gives the same bytes) and a restored stream continues exactly like the
 * original, in the same engine and in a fresh one, mid-segment and at a
 * segment boundary, with and without the separate unrotated-k cache.  Every
 * corruption (bit flips, truncations) is refused and never fills the output;
 * another model's snapshot and a newer format are refused with their own
 * codes, and so is every field that disagrees with the model or the
 * invariants (a position near 2^63, another vocab_size, unknown section
 * flags, NaN or infinity in the state).  Files: FIFOs, symlinks and files
 * over the model's largest snapshot are refused unread; stale temp files
 * are cleaned.  Writes are atomic: faults injected at every file operation, a
 * writer killed with SIGKILL, a full tmpfs and a read-only one all leave the
 * previous snapshot intact.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "gpu_test.h"
#include "snapshot.h"

#define CONT 30                 /* tokens run after a restore */

static uint64_t rng_s = 0x9e3779b97f4a7c15ull;

static uint64_t
rnd(void)
{
	rng_s ^= rng_s << 13;
	rng_s ^= rng_s >> 7;
	rng_s ^= rng_s << 17;
	return (rng_s);
}

static void
fill_tokens(int32_t *t, int n, int vocab, uint64_t s)
{
	for (int i = 0; i < n; i++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		t[i] = (int32_t)((s >> 33) % (uint64_t)vocab);
	}
}

/* run feeds n tokens to slot; out (may be NULL) gets [n, H] embeddings. */
static int
run(struct eng *e, int slot, const int32_t *t, int n, float *out)
{
	char err[256];
	struct eng_job j = { .slot = slot, .n = n, .tokens = t,
	    .out = out ? ENG_OUT_EMBED : ENG_OUT_NONE, .result = out };
	int rv = eng_run(e, &j, 1, err, sizeof(err));
	if (rv != 0)
		tap_diag("eng_run: %s", err);
	return (rv);
}

/* snap_of exports slot and encodes it as stream id. */
static int
snap_of(struct eng *e, const struct eng_model *m, int slot, const char *id,
    uint8_t **buf, size_t *len)
{
	struct eng_stream_state st;
	struct snap_meta meta;
	int rv;

	if ((rv = eng_stream_export(e, slot, &st)) != 0)
		return (rv);
	if ((rv = snap_meta_init(&meta, m, id)) == 0)
		rv = snap_encode(&meta, &st, buf, len);
	eng_stream_state_fini(&st);
	return (rv);
}

/* restore decodes buf and imports it into a fresh slot of e. */
static int
restore(struct eng *e, uint64_t fp, const uint8_t *buf, size_t len,
    int *slot)
{
	struct eng_stream_state st;
	struct snap_meta meta;
	char err[256];
	int rv;

	if ((rv = snap_decode(buf, len, fp, &meta, &st, err,
	    sizeof(err))) != 0) {
		tap_diag("decode: %s", err);
		return (rv);
	}
	if ((rv = eng_stream_alloc(e, slot)) == 0 &&
	    (rv = eng_stream_import(e, *slot, &st)) != 0)
		eng_stream_free(e, *slot);
	eng_stream_state_fini(&st);
	return (rv);
}

/* ---- engine round trips ---- */

static void
test_roundtrip(struct gt *g)
{
	struct eng *e = g->e;
	const struct eng_config *c = eng_config(e);
	struct eng_stream_state s1, s2, s3;
	struct snap_meta m1, m2;
	uint8_t *b1 = NULL, *b3 = NULL;
	size_t l1 = 0, l3 = 0, hd = (size_t)c->head_dim;
	int32_t t[21];
	int a, b, rv;
	char err[256];

	fill_tokens(t, 21, c->vocab_size, 1);
	rv = eng_stream_alloc(e, &a);
	rv |= run(e, a, t, 21, NULL);
	eng_stream_set_sample_step(e, a, 7);
	rv |= eng_stream_export(e, a, &s1);
	rv |= snap_meta_init(&m1, g->m, "stream-1");
	rv |= snap_encode(&m1, &s1, &b1, &l1);
	rv |= snap_decode(b1, l1, g->m->fingerprint, &m2, &s2, err, sizeof(err));
	ok(rv == 0 && m2.version == SNAP_VERSION &&
	    strcmp(m2.stream_id, "stream-1") == 0 &&
	    m2.fingerprint == g->m->fingerprint && m2.created_ms == m1.created_ms &&
	    m2.n_layers == c->n_layers && m2.vocab_size == c->vocab_size &&
	    s2.pos == 21 && s2.sample_step == 7 && s2.rows == 21 % c->segment_size &&
	    s2.has_kmem,
	    "a mid-segment snapshot decodes with its metadata (%zu bytes)", l1);

	rv = eng_stream_alloc(e, &b);
	rv |= eng_stream_import(e, b, &s2);
	ok(rv == 0 && eng_stream_pos(e, b) == 21 &&
	    eng_stream_sample_step(e, b) == 7,
	    "import into a fresh slot sets position and sample step");
	ok(s1.n_last == c->hidden_size && s2.n_last == c->hidden_size &&
	    memcmp(s1.last, s2.last, (size_t)c->hidden_size * 4) == 0 &&
	    eng_stream_has_last(e, b),
	    "the last input's hidden state travels with the snapshot");

	rv = eng_stream_export(e, b, &s3);
	rv |= snap_encode(&m1, &s3, &b3, &l3);
	ok(rv == 0 && l1 == l3 && memcmp(b1, b3, l1) == 0,
	    "export -> encode -> decode -> import -> export is byte-exact");

	float *Ma = malloc(hd * hd * 4), *Mb = malloc(hd * hd * 4);
	float za[256], zb[256];
	bool same = true;
	for (int l = 0; l < c->n_layers; l++)
		for (int h = 0; h < c->n_kv_heads; h++) {
			rv = eng_stream_read_mem(e, a, l, h, Ma, za);
			rv |= eng_stream_read_mem(e, b, l, h, Mb, zb);
			same = same && rv == 0 && memcmp(Ma, Mb, hd * hd * 4) == 0 &&
			    memcmp(za, zb, hd * 4) == 0;
		}
	ok(same, "M and z read back from the restored slot equal the original");
	free(Ma);
	free(Mb);
	free(b1);
	free(b3);
	eng_stream_state_fini(&s1);
	eng_stream_state_fini(&s2);
	eng_stream_state_fini(&s3);
	eng_stream_free(e, a);
	eng_stream_free(e, b);
}

/*
 * test_continue: prefix tokens, snapshot, restore into a fresh slot and into
 * a fresh engine on the same model (loaded again), then CONT more tokens on
 * all three: the embeddings are identical.
 */
static void
test_continue(struct gt *g, int prefix, const char *what)
{
	struct eng *e = g->e, *e2 = NULL;
	struct eng_model *m2 = NULL;
	const struct eng_config *c = eng_config(e);
	size_t n = (size_t)CONT * c->hidden_size;
	float *oa = calloc(n, 4), *ob = calloc(n, 4), *oc = calloc(n, 4);
	int32_t t[64];
	uint8_t *buf = NULL;
	size_t len = 0;
	int a, b, s2, rv;
	char err[512];
	struct eng_opts eo = { .max_streams = 2, .max_batch = 64,
	    .device = getenv("INFINI_DEVICE") };

	fill_tokens(t, prefix + CONT, c->vocab_size, 100 + prefix);
	rv = eng_stream_alloc(e, &a);
	rv |= run(e, a, t, prefix, NULL);
	rv |= snap_of(e, g->m, a, "cont", &buf, &len);
	rv |= restore(e, g->m->fingerprint, buf, len, &b);
	rv |= run(e, a, t + prefix, CONT, oa);
	rv |= run(e, b, t + prefix, CONT, ob);
	ok(rv == 0 && eng_stream_pos(e, b) == prefix + CONT &&
	    memcmp(oa, ob, n * 4) == 0,
	    "%s: restored after %d tokens, the next %d outputs equal the "
	    "original's exactly", what, prefix, CONT);

	rv = eng_model_load(g->dir, &m2, err, sizeof(err));
	if (rv == 0 && m2->fingerprint != g->m->fingerprint)
		rv = INFINI_EINTERNAL;
	if (rv == 0)
		rv = eng_open(m2, &eo, &e2, err, sizeof(err));
	if (rv == 0)
		rv = restore(e2, m2->fingerprint, buf, len, &s2);
	if (rv == 0)
		rv = run(e2, s2, t + prefix, CONT, oc);
	if (rv != 0)
		tap_diag("fresh engine: %s (%s)", infini_strerror(rv), err);
	ok(rv == 0 && memcmp(oa, oc, n * 4) == 0,
	    "%s: restored into a fresh engine, the outputs equal exactly",
	    what);
	eng_close(e2);
	eng_model_free(m2);
	eng_stream_free(e, a);
	eng_stream_free(e, b);
	free(buf);
	free(oa);
	free(ob);
	free(oc);
}

/* ---- the format ---- */

/* refix recomputes the header checksum and the trailer of a buffer. */
static void
refix(uint8_t *b, size_t len)
{
	uint64_t h = XXH3_64bits(b, 232), f;
	for (int i = 0; i < 8; i++)
		b[232 + i] = (uint8_t)(h >> (8 * i));
	f = XXH3_64bits(b, len - 8);
	for (int i = 0; i < 8; i++)
		b[len - 8 + i] = (uint8_t)(f >> (8 * i));
}

/* refused: decode must fail and leave both outputs untouched. */
static bool
refused(const uint8_t *b, size_t len, uint64_t fp, int *code)
{
	struct snap_meta m;
	struct eng_stream_state st;
	unsigned char pm[sizeof(m)], ps[sizeof(st)];

	memset(&m, 0x5a, sizeof(m));
	memset(&st, 0x5a, sizeof(st));
	memcpy(pm, &m, sizeof(m));
	memcpy(ps, &st, sizeof(st));
	*code = snap_decode(b, len, fp, &m, &st, NULL, 0);
	if (*code == 0) {
		eng_stream_state_fini(&st);
		return (false);
	}
	return (memcmp(pm, &m, sizeof(m)) == 0 &&
	    memcmp(ps, &st, sizeof(st)) == 0);
}

static void
test_format(struct gt *g)
{
	struct eng *e = g->e;
	const struct eng_config *c = eng_config(e);
	struct eng_stream_state st, s2;
	struct snap_meta m, m2;
	uint8_t *buf = NULL, *cp;
	size_t len = 0;
	uint64_t fp = g->m->fingerprint;
	int32_t t[21];
	int a, rv, code, bad = 0, codes[INFINI_ERR_COUNT] = { 0 };
	char err[256];

	fill_tokens(t, 21, c->vocab_size, 5);
	rv = eng_stream_alloc(e, &a);
	rv |= run(e, a, t, 21, NULL);
	rv |= eng_stream_export(e, a, &st);
	rv |= snap_meta_init(&m, g->m, "format");
	rv |= snap_encode(&m, &st, &buf, &len);
	rv |= snap_decode(buf, len, fp, &m2, &s2, err, sizeof(err));
	ok(rv == 0 && strcmp(m2.stream_id, "format") == 0 && s2.pos == 21,
	    "a snapshot decodes (%s)", rv ? err : "ok");
	eng_stream_state_fini(&s2);

	cp = malloc(len);
	for (int i = 0; i < 200; i++) {
		size_t off = rnd() % len;
		memcpy(cp, buf, len);
		cp[off] ^= (uint8_t)(1u << (rnd() % 8));
		if (!refused(cp, len, fp, &code)) {
			bad++;
			tap_diag("bit flip at %zu accepted or partial", off);
		}
		codes[code < INFINI_ERR_COUNT ? code : 0]++;
	}
	ok(bad == 0, "200 random bit flips are all refused, output untouched "
	    "(%d ECORRUPT, %d EUNSUPPORTED)", codes[INFINI_ECORRUPT],
	    codes[INFINI_EUNSUPPORTED]);
	bad = 0;
	for (int i = 0; i < 100; i++) {
		size_t n = rnd() % len;
		if (!refused(buf, n, fp, &code)) {
			bad++;
			tap_diag("truncation to %zu accepted or partial", n);
		}
	}
	ok(bad == 0, "100 random truncations are all refused");

	ok(refused(buf, len, fp ^ 1, &code) && code == INFINI_ESTATE &&
	    snap_decode(buf, len, fp ^ 1, &m2, &s2, err, sizeof(err)) ==
	    INFINI_ESTATE && strstr(err, "another model") != NULL,
	    "another model's fingerprint is refused with ESTATE: %s", err);

	memcpy(cp, buf, len);
	cp[8] = SNAP_VERSION + 1;
	refix(cp, len);
	ok(snap_decode(cp, len, fp, &m2, &s2, err, sizeof(err)) ==
	    INFINI_EUNSUPPORTED && strstr(err, "newer") != NULL,
	    "a newer format version is refused with EUNSUPPORTED: %s", err);
	memcpy(cp, buf, len);
	cp[8] = 0;
	refix(cp, len);
	rv = snap_decode(cp, len, fp, &m2, &s2, err, sizeof(err));
	memcpy(cp, buf, len);
	cp[0] = 'X';
	ok(rv == INFINI_EUNSUPPORTED && refused(cp, len, fp, &code) &&
	    code == INFINI_EUNSUPPORTED,
	    "version 0 and a wrong magic are refused with EUNSUPPORTED");

	/* The engine checks a state against its own shape. */
	int64_t pos = eng_stream_pos(e, a);
	st.rows++;
	rv = eng_stream_import(e, a, &st);
	st.rows--;
	st.head_dim *= 2;
	rv = rv == INFINI_EINVAL ? eng_stream_import(e, a, &st) : 0;
	st.head_dim /= 2;
	st.has_kmem = !st.has_kmem;
	rv = rv == INFINI_EINVAL ? eng_stream_import(e, a, &st) : 0;
	st.has_kmem = !st.has_kmem;
	ok(rv == INFINI_EINVAL && eng_stream_pos(e, a) == pos &&
	    eng_stream_import(e, 99, &st) == INFINI_EINVAL,
	    "import refuses a wrong row count, head_dim, km layout or slot");

	free(cp);
	free(buf);
	eng_stream_state_fini(&st);
	eng_stream_state_fini(&s2);
	eng_stream_free(e, a);
}

/* ---- every field checked against the model and the invariants ---- */

static uint32_t
get_u32(const uint8_t *p)
{
	return ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24);
}

static uint64_t
get_u64(const uint8_t *p)
{
	return ((uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32);
}

static void
put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void
put_u64(uint8_t *p, uint64_t v)
{
	put_u32(p, (uint32_t)v);
	put_u32(p + 4, (uint32_t)(v >> 32));
}

/* sec_off finds the section of type t in b: its offset, or 0. */
static size_t
sec_off(const uint8_t *b, size_t len, uint32_t t)
{
	size_t p = 240;
	uint32_t nsec = get_u32(b + 92);

	for (uint32_t i = 0; i < nsec && p + 24 <= len; i++) {
		uint64_t sl = get_u64(b + p + 16);
		if (get_u32(b + p + 8) == t)
			return (p);
		p += 24 + ((sl + 7) & ~(uint64_t)7);
	}
	return (0);
}

/* resum recomputes the checksum of the section at off, then refixes. */
static void
resum(uint8_t *b, size_t len, size_t off)
{
	uint64_t h = XXH3_64bits(b + off + 8, 16 + get_u64(b + off + 16));
	put_u64(b + off, h);
	refix(b, len);
}

/* refused_why decodes for model md and returns the code, err the reason. */
static int
refused_why(const uint8_t *b, size_t len, const struct eng_model *md,
    char *err, size_t errlen)
{
	struct snap_meta m;
	struct eng_stream_state st;
	int rv = snap_decode_model(b, len, md, &m, &st, err, errlen);
	if (rv == 0) {
		eng_stream_state_fini(&st);
	}
	return (rv);
}

static void
test_validate(struct gt *g)
{
	struct eng *e = g->e;
	const struct eng_config *c = eng_config(e);
	struct eng_stream_state st;
	struct snap_meta m;
	uint8_t *buf = NULL, *cp;
	size_t len = 0, off;
	int32_t t[21];
	int a, rv, N = c->segment_size;
	char err[256];
	const float nan = NAN, inf = INFINITY;

	fill_tokens(t, 21, c->vocab_size, 9);
	rv = eng_stream_alloc(e, &a);
	rv |= run(e, a, t, 21, NULL);
	rv |= eng_stream_export(e, a, &st);
	rv |= snap_meta_init(&m, g->m, "v");
	m.has_owner = true;
	m.owner = 1234;
	rv |= snap_encode(&m, &st, &buf, &len);
	eng_stream_free(e, a);
	ok(rv == 0 && refused_why(buf, len, g->m, err, sizeof(err)) == 0 &&
	    len <= snap_max_size(g->m), "the original decodes for its model "
	    "and is within snap_max_size (%zu <= %zu)", len,
	    snap_max_size(g->m));
	cp = malloc(len);

	/* A position near 2^63 with the same rows and a matching segment
	 * count, every checksum recomputed. */
	uint64_t far = (uint64_t)st.pos +
	    ((uint64_t)(INT64_MAX - st.pos) / (uint64_t)N) * (uint64_t)N;
	memcpy(cp, buf, len);
	put_u64(cp + 56, far);
	put_u64(cp + 64, far / (uint64_t)N);
	refix(cp, len);
	err[0] = '\0';
	rv = refused_why(cp, len, g->m, err, sizeof(err));
	ok(rv == INFINI_ECORRUPT && strstr(err, "position") != NULL,
	    "a position of %llu is refused: %s", (unsigned long long)far, err);

	/* The right position with one segment more than it holds. */
	memcpy(cp, buf, len);
	put_u64(cp + 64, (uint64_t)st.pos / (uint64_t)N + 1);
	refix(cp, len);
	err[0] = '\0';
	rv = refused_why(cp, len, g->m, err, sizeof(err));
	ok(rv == INFINI_ECORRUPT && strstr(err, "segments disagree") != NULL,
	    "a segment count the position does not give is refused: %s", err);

	memcpy(cp, buf, len);
	put_u32(cp + 52, (uint32_t)c->vocab_size + 1);
	refix(cp, len);
	err[0] = '\0';
	rv = refused_why(cp, len, g->m, err, sizeof(err));
	ok(rv == INFINI_ESTATE && strstr(err, "vocab_size") != NULL,
	    "another vocab_size with the right fingerprint is refused: %s",
	    err);

	memcpy(cp, buf, len);
	off = sec_off(cp, len, 1);
	put_u32(cp + off + 12, 2);
	resum(cp, len, off);
	err[0] = '\0';
	rv = refused_why(cp, len, g->m, err, sizeof(err));
	ok(off > 0 && rv == INFINI_ECORRUPT && strstr(err, "flags") != NULL,
	    "an unknown flag on the memory section is refused: %s", err);
	memcpy(cp, buf, len);
	off = sec_off(cp, len, 4);
	put_u32(cp + off + 12, 3);
	resum(cp, len, off);
	err[0] = '\0';
	rv = refused_why(cp, len, g->m, err, sizeof(err));
	ok(off > 0 && rv == INFINI_ECORRUPT && strstr(err, "flags") != NULL,
	    "an unknown flag on the owner section is refused: %s", err);

	/* A last-logits section (type 3) and its count at header offset 88
	 * were never written by any version: a file with either is crafted
	 * and refused. */
	memcpy(cp, buf, len);
	off = sec_off(cp, len, 4);
	put_u32(cp + off + 8, 3);
	put_u32(cp + off + 12, 0);
	resum(cp, len, off);
	err[0] = '\0';
	rv = refused_why(cp, len, g->m, err, sizeof(err));
	ok(off > 0 && rv == INFINI_ECORRUPT && strstr(err, "retired") != NULL,
	    "a section of the retired type 3 is refused: %s", err);
	memcpy(cp, buf, len);
	put_u32(cp + 88, (uint32_t)c->vocab_size);
	refix(cp, len);
	err[0] = '\0';
	rv = refused_why(cp, len, g->m, err, sizeof(err));
	ok(rv == INFINI_ECORRUPT && strstr(err, "reserved header") != NULL,
	    "a last-logits count in the header is refused: %s", err);

	/* NaN in M, infinity in z, NaN in a K row, infinity in a V row. */
	size_t lh = (size_t)c->n_layers * c->n_kv_heads;
	size_t hd = (size_t)c->head_dim, nr = (size_t)st.rows * hd;
	struct { uint32_t sec; size_t at; float v; const char *what; } hit[] = {
		{ 1, 5, nan, "M" },
		{ 1, hd * hd + 1, inf, "z" },
		{ 2, (lh - 1) * nr * (st.has_kmem ? 3 : 2) + 2, nan, "K" },
		{ 2, nr + 3, -inf, "V" },
	};
	int nbad = 0;
	for (size_t i = 0; i < sizeof(hit) / sizeof(hit[0]); i++) {
		memcpy(cp, buf, len);
		off = sec_off(cp, len, hit[i].sec);
		memcpy(cp + off + 24 + 4 * hit[i].at, &hit[i].v, 4);
		resum(cp, len, off);
		err[0] = '\0';
		rv = refused_why(cp, len, g->m, err, sizeof(err));
		if (rv != INFINI_ECORRUPT || strstr(err, "NaN") == NULL) {
			nbad++;
			tap_diag("%s: %s (%d)", hit[i].what, err, rv);
		}
	}
	ok(nbad == 0 && st.rows > 0, "NaN or infinity in M, z, K or V is "
	    "refused (%s)", err);

	free(cp);
	free(buf);
	eng_stream_state_fini(&st);
}

/* test_file_checks: what snap_read_file_max, snap_stat_file and
 * snap_clean_temps do with what may lie in a snapshot directory. */
static void
test_file_checks(struct gt *g)
{
	char dir[256], path[600], err[256];
	uint8_t *buf = NULL, *got = NULL;
	size_t len = 0, n = 0;
	struct snap_info in;
	int slot, rv, removed = -1;
	int32_t t[11];

	fx_tmpdir(dir, sizeof(dir));
	fill_tokens(t, 11, eng_config(g->e)->vocab_size, 3);
	eng_stream_alloc(g->e, &slot);
	run(g->e, slot, t, 11, NULL);
	{
		struct eng_stream_state st;
		struct snap_meta m;
		eng_stream_export(g->e, slot, &st);
		snap_meta_init(&m, g->m, "stat-me");
		m.has_owner = true;
		m.owner = 4242;
		snap_encode(&m, &st, &buf, &len);
		eng_stream_state_fini(&st);
	}
	eng_stream_free(g->e, slot);
	rv = snap_write_file(dir, "ok", buf, len, err, sizeof(err));
	rv |= snap_stat_file(dir, "ok", snap_max_size(g->m), &in, err,
	    sizeof(err));
	ok(rv == 0 && in.has_owner && in.owner == 4242 && in.position == 11 &&
	    in.bytes == len && strcmp(in.stream_id, "stat-me") == 0,
	    "snap_stat_file reads owner, position, size and stream id");

	/* A FIFO: opened without blocking and refused. */
	snprintf(path, sizeof(path), "%s/fifo", dir);
	mkfifo(path, 0600);
	alarm(20);
	int64_t t0 = fx_now_ms();
	rv = snap_read_file_max(dir, "fifo", snap_max_size(g->m), &got, &n,
	    err, sizeof(err));
	int64_t dt = fx_now_ms() - t0;
	tap_timeout(600);
	ok(rv == INFINI_EINVAL && strstr(err, "regular") != NULL && dt < 1000,
	    "a FIFO is refused at once (%lld ms): %s", (long long)dt, err);

	/* A sparse file one byte over the largest snapshot. */
	snprintf(path, sizeof(path), "%s/huge", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	rv = fd >= 0 && ftruncate(fd, (off_t)snap_max_size(g->m) + 1) == 0;
	if (fd >= 0)
		close(fd);
	rv = rv ? snap_read_file_max(dir, "huge", snap_max_size(g->m), &got,
	    &n, err, sizeof(err)) : -1;
	ok(rv == INFINI_ECORRUPT && strstr(err, "more than") != NULL &&
	    strstr(err, dir) == NULL, "a file over the model's largest "
	    "snapshot is refused unread, without the path: %s", err);

	snprintf(path, sizeof(path), "%s/link", dir);
	rv = symlink("ok", path) == 0 ? snap_read_file_max(dir, "link",
	    snap_max_size(g->m), &got, &n, err, sizeof(err)) : -1;
	ok(rv == INFINI_EINVAL && strstr(err, "symbolic") != NULL,
	    "a symlink is refused: %s", err);

	/* Stale temp files go; look-alikes stay. */
	static const char *const stale[] = { ".ok.tmp.123.4",
	    ".a.tmp.b.tmp.9.0" };
	static const char *const keep[] = { ".ok.tmp.12x.4", ".ok.tmp.1",
	    ".notes", "ok" };
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, stale[i]);
		fx_write_file(path, "x", 1);
	}
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, keep[i]);
		fx_write_file(path, "x", 1);
	}
	rv = snap_clean_temps(dir, &removed);
	int left = 0, kept = 0;
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, stale[i]);
		left += access(path, F_OK) == 0;
	}
	for (int i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, keep[i]);
		kept += access(path, F_OK) == 0;
	}
	ok(rv == 0 && removed == 2 && left == 0 && kept == 4,
	    "snap_clean_temps removes the 2 stale temp files and keeps the "
	    "rest (%d removed, %d of 4 kept)", removed, kept);
	free(buf);
	fx_rmtree(dir);
}

/* ---- files ---- */

/* big_snapshot encodes a synthetic 4 MiB state (8 layers, 8 kv heads,
 * head_dim 64, segment 64, 63 cached rows), values from seed. */
static int
big_snapshot(uint64_t seed, uint8_t **buf, size_t *len)
{
	struct eng_stream_state st;
	struct snap_meta m;
	size_t mem, cache;
	int rv;

	if ((rv = eng_stream_state_init(&st, 8, 8, 64, 64, true,
	    64 * 5 + 63)) != 0)
		return (rv);
	eng_stream_state_floats(&st, &mem, &cache);
	for (size_t i = 0; i < mem - (size_t)8 * 8 * 64; i++)
		st.M[i] = (float)((seed + i) % 977);
	for (size_t i = 0; i < cache; i++) {
		st.kc[i] = (float)((seed * 3 + i) % 101);
		st.vc[i] = (float)i;
		st.km[i] = -(float)i;
	}
	st.sample_step = seed;
	memset(&m, 0, sizeof(m));
	m.fingerprint = 0x5eed;
	m.n_layers = m.n_kv_heads = 8;
	m.head_dim = m.segment_size = 64;
	m.hidden_size = 512;
	m.vocab_size = 1000;
	snprintf(m.stream_id, sizeof(m.stream_id), "big-%llu",
	    (unsigned long long)seed);
	rv = snap_encode(&m, &st, buf, len);
	eng_stream_state_fini(&st);
	return (rv);
}

/* dir_clean removes temp files (names starting with '.') and returns how
 * many there were, and in *others the count of other entries. */
static int
dir_clean(const char *dir, int *others)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char p[512];
	int n = 0;

	*others = 0;
	while (d != NULL && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (de->d_name[0] == '.') {
			snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
			unlink(p);
			n++;
		} else
			(*others)++;
	}
	if (d != NULL)
		closedir(d);
	return (n);
}

/* file_is: dir/name decodes and equals one of two buffers (b may be NULL). */
static bool
file_is(const char *dir, const char *name, uint64_t fp, const uint8_t *a,
    size_t la, const uint8_t *b, size_t lb)
{
	uint8_t *got = NULL;
	size_t n = 0;
	struct snap_meta m;
	struct eng_stream_state st;
	bool r = false;

	if (snap_read_file(dir, name, &got, &n, NULL, 0) != 0)
		return (false);
	if (snap_decode(got, n, fp, &m, &st, NULL, 0) == 0) {
		r = (n == la && memcmp(got, a, n) == 0) ||
		    (b != NULL && n == lb && memcmp(got, b, n) == 0);
		eng_stream_state_fini(&st);
	}
	free(got);
	return (r);
}

static void
test_names(const char *dir, const uint8_t *buf, size_t len)
{
	char long129[130], long128[129], err[256];
	const char *bad[] = { "../x", "/abs", ".hidden", "", "a/b", "a b",
	    "x\n", "..", long129 };
	bool all = true;
	uint8_t *got;
	size_t n;

	memset(long129, 'a', 129);
	long129[129] = '\0';
	memset(long128, 'b', 128);
	long128[128] = '\0';
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		all = all && !snap_name_ok(bad[i]) &&
		    snap_write_file(dir, bad[i], buf, len, err, sizeof(err)) ==
		    INFINI_EINVAL &&
		    snap_read_file(dir, bad[i], &got, &n, NULL, 0) ==
		    INFINI_EINVAL;
	ok(all, "names ../x, /abs, .hidden, empty, a/b, 129 chars ... are "
	    "refused with EINVAL");
	ok(snap_name_ok("stream-1_v2.snap:x") &&
	    snap_write_file(dir, long128, buf, len, err, sizeof(err)) == 0 &&
	    file_is(dir, long128, SNAP_ANY_MODEL, buf, len, NULL, 0),
	    "a 128-character name and [A-Za-z0-9._:-] are accepted");
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, long128);
	unlink(p);
}

static void
test_files(const char *dir, const uint8_t *a, size_t la, const uint8_t *b,
    size_t lb)
{
	struct stat sb;
	char p[512], err[256];
	uint8_t *got = NULL;
	size_t n = 0;
	int others, rv;

	rv = snap_write_file(dir, "s1", a, la, err, sizeof(err));
	snprintf(p, sizeof(p), "%s/s1", dir);
	ok(rv == 0 && stat(p, &sb) == 0 && (sb.st_mode & 0777) == 0600 &&
	    file_is(dir, "s1", SNAP_ANY_MODEL, a, la, NULL, 0) &&
	    dir_clean(dir, &others) == 0 && others == 1,
	    "write then read gives the same bytes, mode 0600, no temp left");
	rv = snap_write_file(dir, "s1", b, lb, err, sizeof(err));
	ok(rv == 0 && file_is(dir, "s1", SNAP_ANY_MODEL, b, lb, NULL, 0),
	    "a second write replaces the snapshot");
	ok(snap_write_file("/nonexistent-infini", "s1", a, la, err,
	    sizeof(err)) == INFINI_ENOENT &&
	    snap_read_file(dir, "missing", &got, &n, err, sizeof(err)) ==
	    INFINI_ENOENT && strstr(err, "missing") != NULL,
	    "a missing directory or file gives ENOENT: %s", err);

	/* Fail the Nth file operation, N = 0, 1, ... until none fires. */
	int errs[2] = { EIO, ENOSPC }, want[2] = { INFINI_EIO, INFINI_EFULL };
	for (int k = 0; k < 2; k++) {
		bool good = true;
		int nth;
		for (nth = 0; nth < 100; nth++) {
			snap_write_file(dir, "s1", a, la, NULL, 0);
			snap_fault(nth, errs[k]);
			rv = snap_write_file(dir, "s1", b, lb, err, sizeof(err));
			if (snap_fault_pending()) {
				snap_fault(-1, 0);
				good = good && rv == 0 &&
				    file_is(dir, "s1", SNAP_ANY_MODEL, b, lb,
				    NULL, 0);
				break;
			}
			/* Faults before the rename keep the old file; one
			 * at the directory fsync comes after it. */
			if (rv != want[k] ||
			    !file_is(dir, "s1", SNAP_ANY_MODEL, a, la, b, lb) ||
			    dir_clean(dir, &others) != 0 || others != 1) {
				tap_diag("fault %d: rv %d (%s)", nth, rv, err);
				good = false;
			}
		}
		ok(good && nth > 4, "%s at each of the %d file operations of a "
		    "write: %s, the old snapshot intact, no temp left",
		    strerror(errs[k]), nth, infini_errname(want[k]));
	}
	bool good = true;
	int nth;
	for (nth = 0; nth < 100; nth++) {
		snap_fault(nth, EIO);
		rv = snap_read_file(dir, "s1", &got, &n, err, sizeof(err));
		if (snap_fault_pending()) {
			snap_fault(-1, 0);
			good = good && rv == 0;
			free(got);
			break;
		}
		good = good && rv == INFINI_EIO;
	}
	ok(good && nth >= 3, "EIO at each of the %d operations of a read "
	    "is a clean INFINI_EIO", nth);
}

/* test_kill: over a valid snapshot A, a child writes 4 MiB snapshots B, A,
 * B, ... in a loop and is killed with SIGKILL after 0-20 ms, 100 times; the
 * target always decodes, as A or B. */
static void
test_kill(void)
{
	uint8_t *a = NULL, *b = NULL;
	size_t la = 0, lb = 0;
	int bad = 0, temps = 0, others, olds = 0;
	char dir[256] = "";

	if (fx_tmpdir(dir, sizeof(dir)) != 0 ||
	    big_snapshot(1, &a, &la) != 0 || big_snapshot(2, &b, &lb) != 0 ||
	    snap_write_file(dir, "big", a, la, NULL, 0) != 0) {
		ok(0, "big snapshots encode and write");
		goto done;
	}
	for (int i = 0; i < 100; i++) {
		pid_t pid;
		if (snap_write_file(dir, "big", a, la, NULL, 0) != 0)
			bad++;
		if ((pid = fork()) == 0) {
			for (;;) {
				snap_write_file(dir, "big", b, lb, NULL, 0);
				snap_write_file(dir, "big", a, la, NULL, 0);
			}
		}
		if (pid < 0) {
			bad++;
			continue;
		}
		struct timespec ts = { 0, (long)(rnd() % 20001) * 1000 };
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		if (!file_is(dir, "big", 0x5eed, a, la, b, lb))
			bad++;
		if (file_is(dir, "big", 0x5eed, a, la, NULL, 0))
			olds++;
		temps += dir_clean(dir, &others);
		if (others != 1)
			bad++;
	}
	tap_diag("kill -9: %d of 100 left snapshot A (the one before the "
	    "child started, or its second write), %d B, %d with a temp file "
	    "left behind", olds, 100 - olds, temps);
	ok(bad == 0, "100 writers killed with SIGKILL mid-loop: the target "
	    "always decodes as the old or the new snapshot");
done:
	if (dir[0])
		fx_rmtree(dir);
	free(a);
	free(b);
}

/* mount_tmpfs mounts a 64 KiB tmpfs on a fresh directory; false if it
 * cannot (not root, no mount namespace). */
static bool
mount_tmpfs(char *dir, size_t n)
{
	if (fx_tmpdir(dir, n) != 0)
		return (false);
	if (mount("tmpfs", dir, "tmpfs", 0, "size=64k,mode=0700") != 0) {
		rmdir(dir);
		return (false);
	}
	return (true);
}

static void
unmount_tmpfs(const char *dir)
{
	umount2(dir, MNT_DETACH);
	rmdir(dir);
}

static void
test_full(const uint8_t *small, size_t ls)
{
	char dir[256], err[256] = "";
	uint8_t *big = NULL;
	size_t lb = 0;
	int rv, others;

	if (!mount_tmpfs(dir, sizeof(dir))) {
		tap_skip(1, "cannot mount a tmpfs (needs root)");
		return;
	}
	rv = snap_write_file(dir, "s", small, ls, err, sizeof(err));
	if (rv == 0 && (rv = big_snapshot(3, &big, &lb)) == 0)
		rv = snap_write_file(dir, "s", big, lb, err, sizeof(err));
	ok(rv == INFINI_EFULL && strstr(err, "No space") != NULL &&
	    file_is(dir, "s", SNAP_ANY_MODEL, small, ls, NULL, 0) &&
	    dir_clean(dir, &others) == 0 && others == 1,
	    "a full disk gives EFULL, the old snapshot intact, no temp left: "
	    "%s", err);
	free(big);
	unmount_tmpfs(dir);
}

static void
test_readonly(const uint8_t *a, size_t la, const uint8_t *b, size_t lb)
{
	char dir[256], err[256] = "";
	int rv;

	if (geteuid() != 0) {
		if (fx_tmpdir(dir, sizeof(dir)) != 0) {
			ok(0, "tmpdir");
			return;
		}
		rv = snap_write_file(dir, "s", a, la, err, sizeof(err));
		chmod(dir, 0500);
		rv = rv == 0 ? snap_write_file(dir, "s", b, lb, err,
		    sizeof(err)) : rv;
		ok(rv == INFINI_EPERM &&
		    file_is(dir, "s", SNAP_ANY_MODEL, a, la, NULL, 0),
		    "a directory without write permission gives EPERM: %s", err);
		chmod(dir, 0700);
		fx_rmtree(dir);
		return;
	}
	/* Root bypasses permissions: use a read-only mount instead. */
	if (!mount_tmpfs(dir, sizeof(dir))) {
		tap_skip(1, "cannot mount a tmpfs");
		return;
	}
	rv = snap_write_file(dir, "s", a, la, err, sizeof(err));
	if (rv == 0 && mount("tmpfs", dir, "tmpfs", MS_REMOUNT | MS_RDONLY,
	    "size=64k") != 0) {
		tap_skip(1, "cannot remount the tmpfs read-only");
		unmount_tmpfs(dir);
		return;
	}
	rv = rv == 0 ? snap_write_file(dir, "s", b, lb, err, sizeof(err)) : rv;
	ok(rv == INFINI_EPERM && strstr(err, "Read-only") != NULL &&
	    file_is(dir, "s", SNAP_ANY_MODEL, a, la, NULL, 0),
	    "a read-only file system gives EPERM, the old snapshot readable: "
	    "%s", err);
	unmount_tmpfs(dir);
}

static void
test_file_suite(struct gt *g)
{
	char dir[256];
	uint8_t *a = NULL, *b = NULL;
	size_t la = 0, lb = 0;
	int32_t t[13];
	int s;

	fill_tokens(t, 13, eng_config(g->e)->vocab_size, 9);
	if (fx_tmpdir(dir, sizeof(dir)) != 0 ||
	    eng_stream_alloc(g->e, &s) != 0 || run(g->e, s, t, 5, NULL) != 0 ||
	    snap_of(g->e, g->m, s, "files", &a, &la) != 0 ||
	    run(g->e, s, t + 5, 8, NULL) != 0 ||
	    snap_of(g->e, g->m, s, "files", &b, &lb) != 0) {
		ok(0, "file test set-up");
		return;
	}
	eng_stream_free(g->e, s);
	test_names(dir, a, la);
	test_files(dir, a, la, b, lb);
	test_kill();
	test_full(a, la);
	test_readonly(a, la, b, lb);
	fx_rmtree(dir);
	free(a);
	free(b);
}

int
main(void)
{
	struct fx_opts o;
	struct gt g, g2;

	gt_env();
	if (!gt_have_device()) {
		tap_plan_skip_all("no Vulkan device");
		return (0);
	}
	tap_plan(44);
	fx_opts_default(&o);            /* rope, unrotated k for memory */
	if (gt_open(&g, &o, 4, 64) != 0)
		return (1);
	test_roundtrip(&g);
	test_continue(&g, 21, "mid-segment");
	test_continue(&g, 16, "segment boundary");
	test_format(&g);
	test_validate(&g);
	test_file_checks(&g);
	test_file_suite(&g);
	ok(eng_validation_errors(g.e) == 0, "validation layer silent");
	gt_close(&g);

	/* No rope, delta rule: no separate km cache. */
	fx_opts_default(&o);
	o.cfg.rope = false;
	o.cfg.memory_update = ENG_UPDATE_DELTA;
	if (gt_open(&g2, &o, 4, 64) != 0)
		return (1);
	test_continue(&g2, 21, "no km, delta rule");
	gt_close(&g2);
	return (tap_done());
}
