/*
 * t_matmul.c - every matmul kernel variant (portable; texel auto, tile, m4,
 * m1; coop) for every weight dtype (f32, f16, bf16, q8_0, q4_0) against a
 * double-precision loop, on shapes that are not multiples of any tile: m in
 * {1, 3, 17, 64, 130}, (n, k) in {(36, 20), (100, 260)} (block dtypes:
 * {(36, 64), (100, 288)}), accumulate on and off.  X has a
 * row stride larger than k, Y one larger than n, and W is split into two
 * parts, so the second part writes at a y_col offset; Y columns outside the
 * product must stay untouched.
 *
 * Weights are random bit patterns of their own dtype (for the block dtypes,
 * random quants and f16 scales in GGUF's block layout), decoded exactly here
 * for the reference, so the only error is fp32 accumulation: NMSE over the
 * written outputs must be <= 1e-10 (it is ~1e-14 in practice).  The
 * validation layer is on and must report nothing.
 *
 * The cooperative-matrix variant multiplies in f16: its contract is X and
 * W rounded to f16 (to nearest even), products and sums in f32.  The test's
 * f16 and bf16 weights lie in f16's normal range, so for them the rounding
 * is exact; a block weight (quant times scale) is rounded.  Its reference
 * is the same double loop over X and W rounded here, with the same bound;
 * the NMSE against the unrounded reference is printed too.  On f32 it runs
 * the portable kernel, checked as such.  A device without
 * VK_KHR_cooperative_matrix (or a build without those kernels) skips its
 * cases.
 */
#include <math.h>
#include <string.h>

#include "engine/engine_impl.h"
#include "engine/quant.h"
#include "gpu_test.h"

#define NMSE_TOL 1e-10

static const uint32_t Ms[] = { 1, 3, 17, 64, 130 };
static const uint32_t NKs[][2] = { { 36, 20 }, { 100, 260 } };
/* Block dtypes need k in whole blocks of 32. */
static const uint32_t NKq[][2] = { { 36, 64 }, { 100, 288 } };
static const enum eng_mm_var vars[] = { ENG_MM_PORTABLE, ENG_MM_TEXEL,
    ENG_MM_TEXEL_TILE, ENG_MM_TEXEL_M4, ENG_MM_TEXEL_M1, ENG_MM_COOP };
static const char *const dtnames[] = { "f32", "f16", "bf16", "q8_0",
    "q4_0" };

#define NM (sizeof(Ms) / sizeof(Ms[0]))
#define NNK (sizeof(NKs) / sizeof(NKs[0]))
#define NVAR (sizeof(vars) / sizeof(vars[0]))

static uint64_t rng = 88172645463325252ull;

static uint32_t
rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return ((uint32_t)(rng >> 16));
}

/* uniform in [-1, 1) */
static float
rndf(void)
{
	return ((float)(rnd() & 0xffffff) / 8388608.0f - 1.0f);
}

static float
half_to_float(uint16_t h)
{
	uint32_t s = (uint32_t)(h >> 15), e = (h >> 10) & 31, f = h & 1023;
	float v = ldexpf((float)(e ? f + 1024 : f), (e ? (int)e : 1) - 25);
	return (s ? -v : v);
}

/* rnd_weight draws one weight of dtype dt, stores its bits at dst[i], and
 * returns its exact value.  Magnitudes span 2^-4 .. 2^1. */
/* rnd_block draws block b of a Q8_0/Q4_0 row set at dst and writes its 32
 * exact values to v[32], decoding GGUF's layout independently of the
 * engine: f16 scale d, then int8 q (x = d q) or nibbles (low nibble of byte
 * j is value j, high nibble value j + 16; x = d (q - 8)). */
static void
rnd_block(enum eng_dtype dt, void *dst, size_t b, float *v)
{
	size_t bb = dt == ENG_Q8_0 ? 34 : 18;
	unsigned char *p = (unsigned char *)dst + b * bb;
	uint16_t h = (uint16_t)((rnd() & 1) << 15 | (9 + rnd() % 5) << 10 |
	    (rnd() & 1023));
	float d = half_to_float(h);

	memcpy(p, &h, 2);
	for (int j = 0; j < 32; j++) {
		if (dt == ENG_Q8_0) {
			int8_t q = (int8_t)(rnd() & 0xff);
			p[2 + j] = (unsigned char)q;
			v[j] = d * (float)q;
		} else if (j < 16) {
			p[2 + j] = (unsigned char)(rnd() & 0xff);
			v[j] = d * (float)((p[2 + j] & 15) - 8);
		} else {
			v[j] = d * (float)((p[2 + j - 16] >> 4) - 8);
		}
	}
}

static float
rnd_weight(enum eng_dtype dt, void *dst, size_t i)
{
	uint32_t r = rnd(), e = 11 + r % 6, sgn = (r >> 8) & 1;
	if (dt == ENG_F32) {
		float v = rndf() * 2.0f;
		((float *)dst)[i] = v;
		return (v);
	}
	if (dt == ENG_F16) {
		uint16_t h = (uint16_t)(sgn << 15 | e << 10 | (rnd() & 1023));
		((uint16_t *)dst)[i] = h;
		return (half_to_float(h));
	}
	uint32_t u = sgn << 31 | (e + 112) << 23 | (rnd() & 0x7f) << 16;
	float v;
	memcpy(&v, &u, 4);
	((uint16_t *)dst)[i] = (uint16_t)(u >> 16);
	return (v);
}

struct fix {
	struct gpu_dev *d;
	struct gpu_cmd *c;
	struct gpu_pipe *pipe[ENG_K_COUNT];
	bool coop;                 /* the coop variant can run here */
};

/* to_half: x rounded to the nearest f16 (ties to even), as a float. */
static float
to_half(float x)
{
	return ((float)(_Float16)x);
}

/* wmat_make uploads w[n, k] (dtype dt, stored layout) as two parts split
 * at row `split`, each with texel views, through the engine's part upload
 * (which converts block dtypes to the device layout). */
static int
wmat_make(struct fix *f, enum eng_dtype dt, const void *w, int n, int k,
    int split, struct eng_wmat *out)
{
	size_t rowb = eng_q_row_bytes(dt, k);
	int rv;

	memset(out, 0, sizeof(*out));
	out->dt = dt;
	out->rows = n;
	out->cols = k;
	out->nparts = 2;
	if ((out->parts = calloc(2, sizeof(*out->parts))) == NULL)
		return (INFINI_ENOMEM);
	for (int p = 0; p < 2; p++) {
		struct eng_wpart *pt = &out->parts[p];
		pt->row0 = p == 0 ? 0 : split;
		if ((rv = eng_wpart_alloc(f->d, ENG_MM_TEXEL, dt, p == 0 ?
		    split : n - split, k, pt)) != 0 ||
		    (rv = eng_wpart_write(f->d, pt, dt, k, 0, (const char *)w +
		    (size_t)pt->row0 * rowb, pt->rows)) != 0)
			return (rv);
	}
	return (0);
}

static void
wmat_free(struct fix *f, struct eng_wmat *w)
{
	for (int p = 0; p < w->nparts && w->parts != NULL; p++)
		eng_wpart_free(f->d, &w->parts[p]);
	free(w->parts);
}

/* check_case runs every variant on one (dtype, m, n, k, acc) case. */
static void
check_case(struct fix *f, enum eng_dtype dt, uint32_t m, uint32_t n,
    uint32_t k, bool acc)
{
	uint32_t ldx = k + 8, ldy = n + 12;
	float *x = malloc(sizeof(float) * m * ldx);
	float *wv = malloc(sizeof(float) * n * k);
	void *wb = malloc(eng_q_row_bytes(dt, k) * n);
	float *y0 = malloc(sizeof(float) * m * ldy);
	float *y = malloc(sizeof(float) * m * ldy);
	double *ref = malloc(sizeof(double) * m * n);
	double *refh = malloc(sizeof(double) * m * n);   /* X, W in f16 */
	struct gpu_buf X = { 0 }, Y = { 0 };
	struct eng_wmat w = { 0 };
	struct eng_mm_in in = { &X, VK_NULL_HANDLE, ldx };
	int rv;

	if (!x || !wv || !wb || !y0 || !y || !ref || !refh) {
		rv = INFINI_ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < (size_t)m * ldx; i++)
		x[i] = rndf();
	if (ENG_DTYPE_QUANT(dt))
		for (size_t b = 0; b < (size_t)n * k / 32; b++)
			rnd_block(dt, wb, b, wv + b * 32);
	else
		for (size_t i = 0; i < (size_t)n * k; i++)
			wv[i] = rnd_weight(dt, wb, i);
	for (size_t i = 0; i < (size_t)m * ldy; i++)
		y0[i] = rndf();
	for (uint32_t i = 0; i < m; i++)
		for (uint32_t j = 0; j < n; j++) {
			double s = acc ? y0[i * ldy + j] : 0.0, sh = s;
			for (uint32_t q = 0; q < k; q++) {
				s += (double)x[i * ldx + q] * wv[j * k + q];
				sh += (double)to_half(x[i * ldx + q]) *
				    to_half(wv[j * k + q]);
			}
			ref[i * n + j] = s;
			refh[i * n + j] = sh;
		}
	if ((rv = gpu_buf_alloc(f->d, GPU_POOL_ACT, sizeof(float) * m * ldx,
	    &X)) != 0 ||
	    (rv = gpu_buf_alloc(f->d, GPU_POOL_ACT, sizeof(float) * m * ldy,
	    &Y)) != 0 ||
	    (rv = gpu_buf_write(f->d, &X, 0, x, sizeof(float) * m * ldx)) != 0 ||
	    (rv = gpu_view_create(f->d, &X, 0, sizeof(float) * m * ldx,
	    VK_FORMAT_R32G32B32A32_SFLOAT, &in.view)) != 0 ||
	    (rv = wmat_make(f, dt, wb, (int)n, (int)k, (int)(n / 8 * 4),
	    &w)) != 0)
		goto fail;

	for (size_t v = 0; v < NVAR; v++) {
		double e2 = 0, r2 = 0, x2 = 0, stray = 0;
		bool half = vars[v] == ENG_MM_COOP && dt != ENG_F32;
		const double *want = half ? refh : ref;
		if (vars[v] == ENG_MM_COOP && !f->coop) {
			tap_skip(1, "no cooperative-matrix kernel on this device "
			    "or in this build");
			continue;
		}
		if ((rv = gpu_buf_write(f->d, &Y, 0, y0,
		    sizeof(float) * m * ldy)) != 0 ||
		    (rv = gpu_cmd_begin(f->c)) != 0)
			goto fail;
		eng_mm_record(f->c, f->pipe, vars[v], &in, &w, &Y, ldy, m, acc);
		if ((rv = gpu_cmd_submit(f->c)) != 0 ||
		    (rv = gpu_buf_read(f->d, &Y, 0, y,
		    sizeof(float) * m * ldy)) != 0)
			goto fail;
		for (uint32_t i = 0; i < m; i++) {
			for (uint32_t j = 0; j < n; j++) {
				double dd = y[i * ldy + j] - want[i * n + j];
				double dx = y[i * ldy + j] - ref[i * n + j];
				e2 += dd * dd;
				x2 += dx * dx;
				r2 += want[i * n + j] * want[i * n + j];
			}
			for (uint32_t j = n; j < ldy; j++)
				stray += fabs(y[i * ldy + j] - y0[i * ldy + j]);
		}
		ok(e2 / r2 <= NMSE_TOL && stray == 0, "%s %s m %u n %u k %u%s: "
		    "nmse %.2g%s%s", eng_mm_var_name(vars[v]), dtnames[dt], m,
		    n, k, acc ? " acc" : "", e2 / r2,
		    half ? " against X, W in f16" : "",
		    stray != 0 ? ", wrote outside its columns" : "");
		if (half)
			tap_diag("  against exact X: nmse %.2g", x2 / r2);
	}
	rv = 0;
fail:
	if (rv != 0)
		ok(0, "%s m %u n %u k %u: error %d", dtnames[dt], m, n, k, rv);
	wmat_free(f, &w);
	gpu_view_free(f->d, in.view);
	gpu_buf_free(f->d, &X);
	gpu_buf_free(f->d, &Y);
	free(x);
	free(wv);
	free(wb);
	free(y0);
	free(y);
	free(ref);
	free(refh);
}

int
main(void)
{
	struct fix f = { 0 };
	char err[256];
	int rv;

	gt_env();
	rv = gpu_dev_open(getenv("INFINI_DEVICE"), &f.d, err, sizeof(err));
	if (rv == INFINI_ENODEV) {
		tap_plan_skip_all("no Vulkan device");
		return (0);
	}
	tap_plan(5 * (int)(NM * NNK * 2 * NVAR) + 1);
	if (rv != 0) {
		tap_diag("device: %s", err);
		return (1);
	}
	tap_diag("device %s, subgroup size %u", gpu_dev_info(f.d)->name,
	    gpu_dev_info(f.d)->subgroup_size);
	if ((rv = gpu_cmd_alloc(f.d, &f.c)) != 0)
		return (1);
	if ((rv = eng_mm_pipes_create(f.d, f.pipe, err, sizeof(err))) != 0) {
		tap_diag("%s", err);
		return (1);
	}
	f.coop = eng_mm_usable(gpu_dev_info(f.d), ENG_MM_COOP);
	/* tools/test.sh's pass on a driver with cooperative matrices sets
	 * this, so that their cases cannot quietly turn into skips. */
	if (!f.coop && getenv("INFINI_REQUIRE_COOP") != NULL) {
		printf("Bail out! INFINI_REQUIRE_COOP is set, but %s has no "
		    "cooperative-matrix kernel\n", gpu_dev_info(f.d)->name);
		return (1);
	}
	if (f.coop)
		tap_diag("cooperative matrices: f16 %ux%ux%u tiles",
		    gpu_dev_info(f.d)->coop_m, gpu_dev_info(f.d)->coop_n,
		    gpu_dev_info(f.d)->coop_k);

	for (int dt = ENG_F32; dt <= ENG_Q4_0; dt++)
		for (size_t mi = 0; mi < NM; mi++)
			for (size_t nk = 0; nk < NNK; nk++)
				for (int acc = 0; acc < 2; acc++) {
					const uint32_t *s = ENG_DTYPE_QUANT(dt) ?
					    NKq[nk] : NKs[nk];
					check_case(&f, (enum eng_dtype)dt, Ms[mi],
					    s[0], s[1], acc);
				}

	ok(gpu_dev_validation_enabled(f.d) &&
	    gpu_dev_validation_errors(f.d) == 0,
	    "validation layer on and silent (%u messages)",
	    gpu_dev_validation_errors(f.d));
	eng_mm_pipes_free(f.d, f.pipe);
	gpu_cmd_free(f.c);
	gpu_dev_free(f.d);
	return (tap_done());
}
