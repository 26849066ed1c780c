/*
 * t_ops.c - each compute kernel alone against the double-precision oracle
 * ops of tests/ref.c, by normalised mean squared error
 * NMSE = sum (ref - got)^2 / sum ref^2, which must be <= 1e-10 (fp32 kernels;
 * inputs O(1)).  The matmul variants have their own test (t_matmul.c).
 *
 * The cooperative-matrix attention and retrieval multiply in f16: their
 * rows served on cooperative matrices must be within NMSE 1e-6 of the
 * oracle (f16 rounding of the operands gives ~1e-7), and the rows they
 * serve one by one in f32 (tiles that mix streams) within 1e-10, which also
 * shows that each row took the path it should.  A device or build without
 * those kernels skips them; INFINI_REQUIRE_COOP makes that a failure.
 */
#include <math.h>
#include <string.h>

#include "engine/kernels.h"
#include "gpu/gpu.h"
#include "gpu_test.h"
#include "ref.h"

#include "attention_pc.h"
#include "embed_pc.h"
#include "gate_pc.h"
#include "glu_pc.h"
#include "memupd_pc.h"
#include "retrieve_pc.h"
#include "rmsnorm_pc.h"
#include "rope_pc.h"

#define TOL 1e-10
#define TOL_F16 1e-6

static struct gpu_dev *dev;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static double
rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return ((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static void
fill(float *x, size_t n, double scale)
{
	for (size_t i = 0; i < n; i++)
		x[i] = (float)(rnd() * scale);
}

static struct gpu_buf
up(const void *data, size_t bytes)
{
	struct gpu_buf b;
	memset(&b, 0, sizeof(b));
	if (gpu_buf_alloc(dev, GPU_POOL_ACT, bytes, &b) == 0) {
		if (data != NULL)
			gpu_buf_write(dev, &b, 0, data, bytes);
		else
			gpu_buf_zero(dev, &b, 0, bytes);
	}
	return (b);
}

static void
down(struct gpu_buf *b, float *out, size_t n)
{
	gpu_buf_read(dev, b, 0, out, n * sizeof(float));
}

/* run dispatches kernel k once over the given buffers; texel bindings
 * read the whole buffer through an RGBA32F view. */
static void
run(enum eng_kernel_id k, uint32_t hd, struct gpu_buf **bufs, uint32_t writes,
    const void *pc, uint32_t gx, uint32_t gy, uint32_t gz)
{
	struct gpu_pipe *p = NULL;
	struct gpu_cmd *c = NULL;
	struct gpu_arg a[GPU_MAX_BINDS];
	uint32_t spec[GPU_MAX_SPEC];
	uint32_t nspec = eng_kernel_spec(gpu_dev_info(dev), k, hd, spec);

	for (uint32_t i = 0; i < eng_kernels[k].nbind; i++) {
		a[i] = gpu_arg_of(bufs[i], 0, 0);
		if (eng_kernels[k].bind[i] == GPU_TEXEL &&
		    gpu_view_create(dev, bufs[i], 0, bufs[i]->size / 16 * 16,
		    VK_FORMAT_R32G32B32A32_SFLOAT, &a[i].view) != 0)
			tap_diag("cannot make a view for %s",
			    eng_kernels[k].name);
	}
	if (gpu_pipe_create(dev, &eng_kernels[k], spec, nspec, &p) != 0 ||
	    gpu_cmd_alloc(dev, &c) != 0 || gpu_cmd_begin(c) != 0) {
		tap_diag("cannot run %s", eng_kernels[k].name);
	} else {
		gpu_cmd_dispatch(c, p, a, writes, pc, gx, gy, gz, NULL);
		if (gpu_cmd_submit(c) != 0)
			tap_diag("submit failed for %s", eng_kernels[k].name);
	}
	gpu_cmd_free(c);
	gpu_pipe_free(dev, p);
	for (uint32_t i = 0; i < eng_kernels[k].nbind; i++)
		if (eng_kernels[k].bind[i] == GPU_TEXEL)
			gpu_view_free(dev, a[i].view);
}

static uint32_t
groups(size_t n)
{
	return ((uint32_t)((n + 63) / 64));
}

static double
nmse(const double *ref, const float *got, size_t n)
{
	double num = 0, den = 1e-300;
	for (size_t i = 0; i < n; i++) {
		num += (ref[i] - got[i]) * (ref[i] - got[i]);
		den += ref[i] * ref[i];
	}
	return (num / den);
}

static void
free_all(struct gpu_buf *b, int n)
{
	for (int i = 0; i < n; i++)
		gpu_buf_free(dev, &b[i]);
}

static void
test_rmsnorm(enum eng_kernel_id kid, bool gemma)
{
	enum { R = 5, N = 520 };   /* 130 vec4s: a partial third pass */
	float x[R * N], w[N], got[R * N];
	double xd[N], wd[N], ref[R * N];

	fill(x, R * N, 2.0);
	fill(w, N, 1.0);
	struct gpu_buf b[3] = { up(x, sizeof(x)), up(w, sizeof(w)),
	    up(NULL, sizeof(got)) };
	struct gpu_buf *bp[3] = { &b[0], &b[1], &b[2] };
	struct rmsnorm_pc pc = { R, N, 1e-5f, gemma ? 1.0f : 0.0f };
	run(kid, 0, bp, 4, &pc, R, 1, 1);
	down(&b[2], got, R * N);
	for (int j = 0; j < N; j++)
		wd[j] = w[j];
	for (int r = 0; r < R; r++) {
		for (int j = 0; j < N; j++)
			xd[j] = x[r * N + j];
		ref_rmsnorm(xd, wd, N, 1e-5, gemma, ref + r * N);
	}
	double e = nmse(ref, got, R * N);
	ok(e <= TOL, "%s (%s): nmse %.2g", eng_kernels[kid].name,
	    gemma ? "gemma 1+w" : "llama", e);
	free_all(b, 3);
}

/* Cache geometry shared by rope, attention, memupd tests. */
enum { NH = 4, NKV = 2, HD = 32, SEG = 8, SLOTS = 3 };
#define KVS (NKV * SEG * HD)

static void
test_rope(enum eng_kernel_id kid, uint32_t pairs, bool rope)
{
	enum { T = 3, NQKV = (NH + 2 * NKV) * HD };
	float qkv[T * NQKV], qr[T * NH * HD], kc[SLOTS * KVS], vc[SLOTS * KVS];
	float km[SLOTS * KVS];
	uint32_t rows[2 * T] = { 1, 0, 1, 5, 2, 7 };
	double ref[HD], worst = 0;

	fill(qkv, T * NQKV, 1.0);
	struct gpu_buf b[6] = { up(qkv, sizeof(qkv)), up(rows, sizeof(rows)),
	    up(NULL, sizeof(qr)), up(NULL, sizeof(kc)), up(NULL, sizeof(vc)),
	    up(NULL, sizeof(km)) };
	struct gpu_buf *bp[6] = { &b[0], &b[1], &b[2], &b[3], &b[4], &b[5] };
	struct rope_pc pc = { T, NH, NKV, HD, SEG, KVS, rope, 1, 10000.0f };
	run(kid, 0, bp, 0x3c, &pc,
	    groups(T * (NH + 2 * NKV) * HD / (2 * pairs)), 1, 1);
	down(&b[2], qr, T * NH * HD);
	down(&b[3], kc, SLOTS * KVS);
	down(&b[4], vc, SLOTS * KVS);
	down(&b[5], km, SLOTS * KVS);
	for (int r = 0; r < T; r++) {
		uint32_t slot = rows[2 * r], pos = rows[2 * r + 1];
		for (int h = 0; h < NH + 2 * NKV; h++) {
			const float *src = qkv + r * NQKV + h * HD;
			const float *got;
			for (int i = 0; i < HD; i++)
				ref[i] = src[i];
			if (h < NH + NKV && rope)
				ref_rope(ref, HD, (int)pos, 10000.0);
			if (h < NH)
				got = qr + (r * NH + h) * HD;
			else if (h < NH + NKV)
				got = kc + slot * KVS + ((h - NH) * SEG + pos) * HD;
			else
				got = vc + slot * KVS + ((h - NH - NKV) * SEG + pos) * HD;
			worst = fmax(worst, nmse(ref, got, HD));
			if (h >= NH && h < NH + NKV) {
				/* The memory's copy of k is never rotated. */
				for (int i = 0; i < HD; i++)
					ref[i] = src[i];
				worst = fmax(worst, nmse(ref, km + slot * KVS +
				    ((h - NH) * SEG + pos) * HD, HD));
			}
		}
	}
	ok(worst <= TOL, "%s %s: q, cached k, raw k and v (worst nmse %.2g)",
	    eng_kernels[kid].name, rope ? "on" : "off", worst);
	free_all(b, 6);
}

/* ref_attention_rows: the oracle's attention for T rows (slot, pos) over
 * caches of seg positions per kv head, into ref [T][NH][HD]. */
static void
ref_attention_rows(const float *qr, const float *kc, const float *vc,
    const uint32_t *rows, int T, int seg, double *ref)
{
	double q[HD], *K = malloc(sizeof(double) * seg * HD);
	double *V = malloc(sizeof(double) * seg * HD);
	size_t kvs = (size_t)NKV * seg * HD;

	if (K == NULL || V == NULL)
		abort();
	for (int r = 0; r < T; r++) {
		uint32_t slot = rows[2 * r], pos = rows[2 * r + 1];
		for (int h = 0; h < NH; h++) {
			int g = h / (NH / NKV);
			for (int i = 0; i < HD; i++)
				q[i] = qr[(r * NH + h) * HD + i];
			for (uint32_t t = 0; t <= pos; t++)
				for (int i = 0; i < HD; i++) {
					size_t o = slot * kvs +
					    (g * seg + t) * HD + i;
					K[t * HD + i] = kc[o];
					V[t * HD + i] = vc[o];
				}
			ref_attention(q, K, V, (int)pos + 1, HD,
			    ref + (r * NH + h) * HD);
		}
	}
	free(K);
	free(V);
}

/* ref_retrieve_rows: the oracle's memory read for T rows (query rows
 * strided ldq), mixed into the local branch ad with the gate when gate is
 * set, into ref [T][NH][HD]. */
static void
ref_retrieve_rows(const float *q, int ldq, const float *M, const float *z,
    const uint32_t *rows, int T, bool gate, bool on_local,
    const float *beta, const float *ad, double *ref)
{
	enum { MS = NKV * HD * HD, ZS = NKV * HD };
	static double sq[HD], Md[HD * HD], zd[HD];

	for (int r = 0; r < T; r++)
		for (int h = 0; h < NH; h++) {
			int g = h / (NH / NKV), slot = (int)rows[2 * r];
			double *o = ref + (r * NH + h) * HD;
			for (int i = 0; i < HD; i++) {
				sq[i] = q[r * ldq + h * HD + i];
				zd[i] = z[slot * ZS + g * HD + i];
			}
			for (int i = 0; i < HD * HD; i++)
				Md[i] = M[slot * MS + g * HD * HD + i];
			ref_sigma(sq, HD, sq);
			ref_retrieve(sq, Md, zd, HD, 1e-6, o);
			if (!gate)
				continue;
			double gt = 1.0 / (1.0 + exp(-(double)beta[h]));
			for (int i = 0; i < HD; i++) {
				double loc = ad[(r * NH + h) * HD + i];
				o[i] = on_local ? gt * loc + (1 - gt) * o[i] :
				    gt * o[i] + (1 - gt) * loc;
			}
		}
}

/* Seven rows: a block of four in one stream, then a block of three rows of
 * two streams (the 4-row texel variant serves those in two passes). */
static void
test_attention(enum eng_kernel_id kid, uint32_t rb)
{
	enum { T = 7 };
	float qr[T * NH * HD], kc[SLOTS * KVS], vc[SLOTS * KVS], got[T * NH * HD];
	uint32_t rows[2 * T] = { 2, 0, 2, 1, 2, 2, 2, 3, 0, 7, 1, 6, 0, 2 };
	double ref[T * NH * HD];

	fill(qr, T * NH * HD, 2.0);
	fill(kc, SLOTS * KVS, 2.0);
	fill(vc, SLOTS * KVS, 1.0);
	struct gpu_buf b[5] = { up(qr, sizeof(qr)), up(rows, sizeof(rows)),
	    up(kc, sizeof(kc)), up(vc, sizeof(vc)), up(NULL, sizeof(got)) };
	struct gpu_buf *bp[5] = { &b[0], &b[1], &b[2], &b[3], &b[4] };
	struct attention_pc pc = { T, NH, NKV, HD, SEG, KVS,
	    (float)(1.0 / sqrt((double)HD)) };
	run(kid, HD, bp, 1u << 4, &pc, groups((T + rb - 1) / rb * NH), 1, 1);
	down(&b[4], got, T * NH * HD);
	ref_attention_rows(qr, kc, vc, rows, T, SEG, ref);
	double e = nmse(ref, got, T * NH * HD);
	ok(e <= TOL, "%s: causal prefix, kv head h/(nh/nkv) (nmse %.2g)",
	    eng_kernels[kid].name, e);
	free_all(b, 5);
}

/* The query rows are strided like qkv (ldq > nh hd).  The texel variants
 * also mix the result into the local branch (gate on memory and on
 * local); rows as in test_attention. */
static void
test_retrieve(enum eng_kernel_id kid, uint32_t rb, bool on_local)
{
	enum { T = 7, LDQ = (NH + 2 * NKV) * HD, MS = NKV * HD * HD,
	    ZS = NKV * HD, A = NH * HD };
	float q[T * LDQ], M[SLOTS * MS], z[SLOTS * ZS], got[T * A], ad[T * A];
	float beta[NH] = { -2.0f, -0.5f, 0.7f, 3.0f };
	uint32_t rows[2 * T] = { 1, 0, 1, 1, 1, 2, 1, 3, 2, 4, 0, 1, 2, 5 };
	double ref[T * A];
	bool texel = rb > 0;

	fill(q, T * LDQ, 2.0);
	fill(M, SLOTS * MS, 3.0);
	fill(ad, T * A, 1.0);
	for (int i = 0; i < SLOTS * ZS; i++)
		z[i] = (float)(2.0 + rnd());
	struct gpu_buf b[6] = { up(q, sizeof(q)), up(rows, sizeof(rows)),
	    up(M, sizeof(M)), up(z, sizeof(z)), up(NULL, sizeof(got)),
	    up(ad, sizeof(ad)) };
	struct gpu_buf *bp[6] = { &b[0], &b[1], &b[2], &b[3], &b[4], &b[5] };
	struct retrieve_pc pc = { T, NH, NKV, HD, LDQ, MS, ZS, 1e-6f,
	    on_local };
	if (texel) {
		/* binding 4 is beta, 5 the local branch updated in place */
		gpu_buf_write(dev, &b[4], 0, beta, sizeof(beta));
		run(kid, HD, bp, 1u << 5, &pc,
		    groups((T + rb - 1) / rb * NH * (HD / 16)), 1, 1);
		down(&b[5], got, T * A);
	} else {
		run(kid, 0, bp, 1u << 4, &pc, groups(T * A), 1, 1);
		down(&b[4], got, T * A);
	}
	ref_retrieve_rows(q, LDQ, M, z, rows, T, texel, on_local, beta, ad,
	    ref);
	double e = nmse(ref, got, T * A);
	ok(e <= TOL, "%s%s: sigma(q) M / (sigma(q) . z + eps) (nmse %.2g)",
	    eng_kernels[kid].name, !texel ? "" : on_local ?
	    " + gate on local" : " + gate on memory", e);
	free_all(b, 6);
}

/* Rows for the cooperative-matrix kernels: a run of 24 positions of one
 * stream (whole tiles of 8 and 16), two rows of other streams, then a run
 * of 10 that a tile of 8 or 16 rows splits, ending in a partial tile. */
enum { CSEG = 40, CT = 36 };
#define CKVS (NKV * CSEG * HD)

static void
coop_rows(uint32_t *rows)
{
	for (int r = 0; r < CT; r++) {
		uint32_t slot = r < 24 ? 2 : r == 24 ? 0 : 1;
		uint32_t pos = r < 24 ? 5 + (uint32_t)r : r == 24 ? 39 :
		    r == 25 ? 3 : 30 + (uint32_t)r - 26;
		rows[2 * r] = slot;
		rows[2 * r + 1] = pos;
	}
}

/* coop_tiled: does the tile of rows holding row r run on cooperative
 * matrices (one stream, and for attention consecutive positions)? */
static bool
coop_tiled(const uint32_t *rows, int r, uint32_t tm, bool need_pos)
{
	int r0 = r / (int)tm * (int)tm;
	for (int i = r0; i < r0 + (int)tm && i < CT; i++)
		if (rows[2 * i] != rows[2 * r0] || (need_pos &&
		    rows[2 * i + 1] != rows[2 * r0 + 1] + (uint32_t)(i - r0)))
			return (false);
	return (true);
}

/* coop_skip: true (and the case skipped) where kernel k cannot run. */
static bool
coop_skip(enum eng_kernel_id k, int count)
{
	if (gpu_dev_info(dev)->coopmat && eng_kernel_built(k))
		return (false);
	tap_skip(count, "no cooperative-matrix kernel on this device or in "
	    "this build");
	return (true);
}

/* coop_check: NMSE of the rows on cooperative matrices (bound TOL_F16) and
 * of those served one by one (bound TOL), each row n floats. */
static void
coop_check(const char *what, const uint32_t *rows, bool need_pos,
    const double *ref, const float *got, size_t n)
{
	uint32_t tm = gpu_dev_info(dev)->coop_m;
	double e[2][2] = { { 0, 1e-300 }, { 0, 1e-300 } };
	int cnt[2] = { 0, 0 };

	for (int r = 0; r < CT; r++) {
		int c = coop_tiled(rows, r, tm, need_pos);
		cnt[c]++;
		for (size_t i = r * n; i < (r + 1) * n; i++) {
			e[c][0] += (ref[i] - got[i]) * (ref[i] - got[i]);
			e[c][1] += ref[i] * ref[i];
		}
	}
	ok(e[1][0] / e[1][1] <= TOL_F16 && cnt[1] > 0, "%s: %d rows on "
	    "cooperative matrices (nmse %.2g)", what, cnt[1],
	    e[1][0] / e[1][1]);
	ok(e[0][0] / e[0][1] <= TOL && cnt[0] > 0, "%s: %d rows one by one "
	    "in f32 (nmse %.2g)", what, cnt[0], e[0][0] / e[0][1]);
}

static void
test_attention_coop(void)
{
	float qr[CT * NH * HD], kc[SLOTS * CKVS], vc[SLOTS * CKVS];
	float got[CT * NH * HD];
	uint32_t rows[2 * CT];
	double ref[CT * NH * HD];

	if (coop_skip(ENG_K_ATTENTION_COOP, 2))
		return;
	coop_rows(rows);
	fill(qr, CT * NH * HD, 2.0);
	fill(kc, SLOTS * CKVS, 2.0);
	fill(vc, SLOTS * CKVS, 1.0);
	struct gpu_buf b[5] = { up(qr, sizeof(qr)), up(rows, sizeof(rows)),
	    up(kc, sizeof(kc)), up(vc, sizeof(vc)), up(NULL, sizeof(got)) };
	struct gpu_buf *bp[5] = { &b[0], &b[1], &b[2], &b[3], &b[4] };
	struct attention_pc pc = { CT, NH, NKV, HD, CSEG, CKVS,
	    (float)(1.0 / sqrt((double)HD)) };
	uint32_t tm = gpu_dev_info(dev)->coop_m;
	run(ENG_K_ATTENTION_COOP, HD, bp, 1u << 4, &pc, (CT + tm - 1) / tm,
	    NH, 1);
	down(&b[4], got, CT * NH * HD);
	ref_attention_rows(qr, kc, vc, rows, CT, CSEG, ref);
	coop_check("attention_coop", rows, true, ref, got, NH * HD);
	free_all(b, 5);
}

/* mscale sets M's magnitude: 3e5 passes f16's range (65504), so the
 * kernel's power-of-two scaling is what keeps it finite. */
static void
test_retrieve_coop(bool on_local, double mscale)
{
	enum { LDQ = (NH + 2 * NKV) * HD, MS = NKV * HD * HD,
	    ZS = NKV * HD, A = NH * HD };
	static float q[CT * LDQ], M[SLOTS * MS], z[SLOTS * ZS], got[CT * A];
	static float ad[CT * A];
	float beta[NH] = { -2.0f, -0.5f, 0.7f, 3.0f };
	uint32_t rows[2 * CT];
	static double ref[CT * A];
	char what[64];

	if (coop_skip(ENG_K_RETRIEVE_COOP, 2))
		return;
	coop_rows(rows);
	fill(q, CT * LDQ, 2.0);
	fill(M, SLOTS * MS, mscale);
	fill(ad, CT * A, 1.0);
	for (int i = 0; i < SLOTS * ZS; i++)
		z[i] = (float)((2.0 + rnd()) * mscale / 3.0);
	struct gpu_buf b[6] = { up(q, sizeof(q)), up(rows, sizeof(rows)),
	    up(M, sizeof(M)), up(z, sizeof(z)), up(beta, sizeof(beta)),
	    up(ad, sizeof(ad)) };
	struct gpu_buf *bp[6] = { &b[0], &b[1], &b[2], &b[3], &b[4], &b[5] };
	struct retrieve_pc pc = { CT, NH, NKV, HD, LDQ, MS, ZS, 1e-6f,
	    on_local };
	uint32_t tm = gpu_dev_info(dev)->coop_m;
	run(ENG_K_RETRIEVE_COOP, HD, bp, 1u << 5, &pc, (CT + tm - 1) / tm,
	    NH, 1);
	down(&b[5], got, CT * A);
	ref_retrieve_rows(q, LDQ, M, z, rows, CT, true, on_local, beta, ad,
	    ref);
	snprintf(what, sizeof(what), "retrieve_coop + gate on %s, |M| ~ %g",
	    on_local ? "local" : "memory", mscale);
	coop_check(what, rows, false, ref, got, A);
	free_all(b, 6);
}

static void
test_gate(bool on_local)
{
	enum { T = 3, A = NH * HD };
	float am[T * A], ad[T * A], beta[NH] = { -2.0f, -0.5f, 0.7f, 3.0f };
	float got[T * A];
	double ref[T * A];

	fill(am, T * A, 1.0);
	fill(ad, T * A, 1.0);
	struct gpu_buf b[3] = { up(am, sizeof(am)), up(beta, sizeof(beta)),
	    up(ad, sizeof(ad)) };
	struct gpu_buf *bp[3] = { &b[0], &b[1], &b[2] };
	struct gate_pc pc = { T, NH, HD, on_local };
	run(ENG_K_GATE, 0, bp, 1u << 2, &pc, groups(T * A), 1, 1);
	down(&b[2], got, T * A);
	for (int i = 0; i < T * A; i++) {
		double g = 1.0 / (1.0 + exp(-(double)beta[(i / HD) % NH]));
		ref[i] = on_local ? g * ad[i] + (1 - g) * am[i] :
		    g * am[i] + (1 - g) * ad[i];
	}
	double e = nmse(ref, got, T * A);
	ok(e <= TOL, "gate on %s (nmse %.2g)", on_local ? "local" : "memory", e);
	free_all(b, 3);
}

static void
test_glu(enum eng_act act, const char *name)
{
	enum { T = 3, I = 40 };
	float gu[T * 2 * I], got[T * I];
	double ref[T * I];

	fill(gu, T * 2 * I, 4.0);
	struct gpu_buf b[2] = { up(gu, sizeof(gu)), up(NULL, sizeof(got)) };
	struct gpu_buf *bp[2] = { &b[0], &b[1] };
	struct glu_pc pc = { T, I, (uint32_t)act };
	run(ENG_K_GLU, 0, bp, 2, &pc, groups(T * I / 4), 1, 1);
	down(&b[1], got, T * I);
	for (int r = 0; r < T; r++)
		for (int i = 0; i < I; i++)
			ref[r * I + i] = ref_act(gu[r * 2 * I + i], act) *
			    gu[r * 2 * I + I + i];
	double e = nmse(ref, got, T * I);
	ok(e <= TOL, "glu %s (nmse %.2g)", name, e);
	free_all(b, 2);
}

static void
test_memupd(bool delta, bool texel)
{
	enum { MS = NKV * HD * HD, ZS = NKV * HD };
	float k[SLOTS * KVS], v[SLOTS * KVS], M[SLOTS * MS], z[SLOTS * ZS];
	float gM[SLOTS * MS], gz[SLOTS * ZS];
	uint32_t slots[2] = { 2, 0 };
	double Md[HD * HD], zd[HD], K[SEG * HD], V[SEG * HD], worst = 0;

	fill(k, SLOTS * KVS, 1.5);
	fill(v, SLOTS * KVS, 1.0);
	fill(M, SLOTS * MS, 1.0);
	for (int i = 0; i < SLOTS * ZS; i++)
		z[i] = (float)(4.0 + rnd());
	struct gpu_buf b[5] = { up(k, sizeof(k)), up(v, sizeof(v)),
	    up(M, sizeof(M)), up(z, sizeof(z)), up(slots, sizeof(slots)) };
	struct memupd_pc pc = { 2, NKV, HD, SEG, KVS, MS, ZS, delta, 1e-6f };
	struct gpu_buf *bp[5] = { &b[0], &b[1], &b[2], &b[3], &b[4] };
	if (texel) {
		struct gpu_buf *bt[4] = { &b[0], &b[1], &b[2], &b[4] };
		run(ENG_K_MEMUPD_TEXEL, HD, bt, 1u << 2, &pc,
		    groups(2 * NKV * (HD / 8) * (HD / 16)), 1, 1);
	} else {
		run(ENG_K_MEMUPD, 0, bp, 1u << 2, &pc, HD, NKV, 2);
	}
	struct gpu_buf *bz[3] = { &b[0], &b[3], &b[4] };
	run(ENG_K_MEMZ, 0, bz, 1u << 1, &pc, groups(2 * NKV * HD), 1, 1);
	down(&b[2], gM, SLOTS * MS);
	down(&b[3], gz, SLOTS * ZS);
	for (int s = 0; s < SLOTS; s++)
		for (int g = 0; g < NKV; g++) {
			bool listed = s == 0 || s == 2;
			for (int i = 0; i < HD * HD; i++)
				Md[i] = M[s * MS + g * HD * HD + i];
			for (int i = 0; i < HD; i++)
				zd[i] = z[s * ZS + g * HD + i];
			for (int i = 0; i < SEG * HD; i++) {
				K[i] = k[s * KVS + g * SEG * HD + i];
				V[i] = v[s * KVS + g * SEG * HD + i];
			}
			if (listed)
				ref_mem_update(Md, zd, K, V, SEG, HD, 1e-6, delta);
			worst = fmax(worst, nmse(Md, gM + s * MS + g * HD * HD,
			    HD * HD));
			worst = fmax(worst, nmse(zd, gz + s * ZS + g * HD, HD));
		}
	ok(worst <= TOL, "memory update %s%s: listed streams updated, others "
	    "untouched (worst nmse %.2g)", delta ? "delta" : "linear",
	    texel ? " (texel)" : "", worst);
	free_all(b, 5);
}

static void
test_embed(enum eng_dtype dt, enum eng_kernel_id kid, const char *name)
{
	enum { V = 50, H = 24, T = 5 };
	float table[V * H], vecs[T * H], got[T * H];
	uint16_t half[V * H];
	int32_t ids[T] = { 3, -1, 49, 20, 0 };
	double ref[T * H];

	fill(table, V * H, 1.0);
	fill(vecs, T * H, 1.0);
	for (int i = 0; i < V * H; i++) {
		half[i] = dt == ENG_F16 ? eng_f32_to_f16(table[i]) :
		    eng_f32_to_bf16(table[i]);
		if (dt == ENG_F16)
			table[i] = eng_f16_to_f32(half[i]);
		else if (dt == ENG_BF16)
			table[i] = eng_bf16_to_f32(half[i]);
	}
	/* The table in two parts, as a split tensor is dispatched. */
	size_t es = dt == ENG_F32 ? 4 : 2;
	const char *src = dt == ENG_F32 ? (const char *)table : (const char *)half;
	struct gpu_buf b[5] = { up(ids, sizeof(ids)), up(src, 30 * H * es),
	    up(src + 30 * H * es, 20 * H * es), up(vecs, sizeof(vecs)),
	    up(NULL, sizeof(got)) };
	struct gpu_buf *p0[4] = { &b[0], &b[1], &b[3], &b[4] };
	struct gpu_buf *p1[4] = { &b[0], &b[2], &b[3], &b[4] };
	struct embed_pc pc0 = { T, H, 0, 30, 2.0f, 1 };
	struct embed_pc pc1 = { T, H, 30, 50, 2.0f, 0 };
	run(kid, 0, p0, 1u << 3, &pc0, groups(T * H), 1, 1);
	run(kid, 0, p1, 1u << 3, &pc1, groups(T * H), 1, 1);
	down(&b[4], got, T * H);
	for (int r = 0; r < T; r++)
		for (int c = 0; c < H; c++)
			ref[r * H + c] = ids[r] < 0 ? vecs[r * H + c] :
			    2.0 * table[ids[r] * H + c];
	double e = nmse(ref, got, T * H);
	ok(e <= TOL, "embed %s over two table parts, vector rows (nmse %.2g)",
	    name, e);
	free_all(b, 5);
}

int
main(void)
{
	char err[256];

	gt_env();
	if (gpu_dev_open(getenv("INFINI_DEVICE"), &dev, err, sizeof(err)) != 0) {
		tap_plan_skip_all(err);
		return (0);
	}
	if (getenv("INFINI_REQUIRE_COOP") != NULL &&
	    (!gpu_dev_info(dev)->coopmat ||
	    !eng_kernel_built(ENG_K_ATTENTION_COOP))) {
		printf("Bail out! INFINI_REQUIRE_COOP is set, but %s has no "
		    "cooperative-matrix kernel\n", gpu_dev_info(dev)->name);
		return (1);
	}
	tap_plan(33);
	test_rmsnorm(ENG_K_RMSNORM, false);
	test_rmsnorm(ENG_K_RMSNORM, true);
	test_rmsnorm(ENG_K_RMSNORM_SG, false);
	test_rmsnorm(ENG_K_RMSNORM_SG, true);
	test_rope(ENG_K_ROPE, 1, true);
	test_rope(ENG_K_ROPE, 1, false);
	test_rope(ENG_K_ROPE_V4, 4, true);
	test_rope(ENG_K_ROPE_V4, 4, false);
	test_attention(ENG_K_ATTENTION, 1);
	test_attention(ENG_K_ATTENTION_TEXEL, 4);
	test_attention(ENG_K_ATTENTION_TEXEL_R1, 1);
	test_retrieve(ENG_K_RETRIEVE, 0, false);
	test_retrieve(ENG_K_RETRIEVE_TEXEL, 4, false);
	test_retrieve(ENG_K_RETRIEVE_TEXEL, 4, true);
	test_retrieve(ENG_K_RETRIEVE_TEXEL_R1, 1, true);
	test_attention_coop();
	test_retrieve_coop(false, 3e5);
	test_retrieve_coop(true, 3.0);
	test_gate(false);
	test_gate(true);
	test_glu(ENG_ACT_SILU, "silu");
	test_glu(ENG_ACT_GELU, "gelu");
	test_glu(ENG_ACT_GELU_TANH, "gelu_tanh");
	test_memupd(false, false);
	test_memupd(true, false);
	test_memupd(false, true);
	test_embed(ENG_F32, ENG_K_EMBED_F32, "f32");
	test_embed(ENG_F16, ENG_K_EMBED_F16, "f16");
	test_embed(ENG_BF16, ENG_K_EMBED_BF16, "bf16");
	ok(gpu_dev_validation_errors(dev) == 0, "validation layer silent (%u)",
	    gpu_dev_validation_errors(dev));
	gpu_dev_free(dev);
	return (tap_done());
}
