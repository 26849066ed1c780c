/*
 * bench_matmul.c - GFLOP/s of the projection matmul Y = X W^T, every kernel
 * variant and weight dtype, on 1024^3 and the shapes of a small model
 * (m = 1, 16, 512 against W of 768x768, 2048x768, 768x2048, 32000x768).
 *
 * Each cell is the median over several repetitions (after one warm-up run
 * that also compiles the pipeline) of the GPU timestamps around the
 * dispatches (gpu_cmd_profile), so submit overhead is left out; the
 * "wall" column is the auto-selected texel variant timed by wall clock
 * around record+submit+wait, which includes it.  "sgemm" is OpenBLAS
 * cblas_sgemm on the same f32 shapes, when libopenblas.so.0 can be
 * dlopen()ed.  The forced matrix-vector shapes (m4, m1) are only timed for
 * m <= 16, where they could be chosen, and on CPU devices the portable
 * kernel (well under 1 GFLOP/s there) only up to 4 GFLOP per call.  The
 * coop column (cooperative matrices, f16 and bf16 weights) is timed where
 * the device has them.
 *
 * Usage: bench-matmul [reps [m n k]]   (one shape instead of the list;
 * INFINI_DEVICE picks the device)
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "engine/engine_impl.h"
#include "engine/quant.h"
#include "infini_err.h"

struct shape {
	uint32_t m, n, k;
};

static const struct shape shapes[] = {
	{ 1024, 1024, 1024 },
	{ 1, 768, 768 }, { 1, 2048, 768 }, { 1, 768, 2048 }, { 1, 32000, 768 },
	{ 16, 768, 768 }, { 16, 2048, 768 }, { 16, 768, 2048 },
	{ 16, 32000, 768 },
	{ 512, 768, 768 }, { 512, 2048, 768 }, { 512, 768, 2048 },
	{ 512, 32000, 768 },
};

static const enum eng_mm_var cols[] = { ENG_MM_PORTABLE, ENG_MM_TEXEL,
    ENG_MM_TEXEL_TILE, ENG_MM_TEXEL_M4, ENG_MM_TEXEL_M1, ENG_MM_COOP };
#define NCOL (sizeof(cols) / sizeof(cols[0]))

static const char *const dtnames[] = { "f32", "f16", "bf16", "q8_0",
    "q4_0" };

/* cblas_sgemm(order, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta,
 * c, ldc) with CblasRowMajor = 101, CblasNoTrans = 111, CblasTrans = 112. */
typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *,
    int, const float *, int, float, float *, int);

struct bench {
	struct gpu_dev *d;
	struct gpu_cmd *c;
	struct gpu_pipe *pipe[ENG_K_COUNT];
	int reps;
	sgemm_fn sgemm;
};

static void
add_ns(void *arg, const char *label, double ns)
{
	(void)label;
	*(double *)arg += ns;
}

/* reps_for: fewer repetitions for slow cells (about 2 s per cell). */
static int
reps_for(const struct bench *b, double first_s)
{
	int r = first_s > 0 ? (int)(2.0 / first_s) : b->reps;
	return (r < 1 ? 1 : r > b->reps ? b->reps : r);
}

/* time_var: median seconds of one matmul with variant v (GPU timestamps),
 * and the wall-clock median in *wall; negative on error. */
static double
time_var(struct bench *b, enum eng_mm_var v, const struct eng_mm_in *X,
    const struct eng_wmat *w, const struct gpu_buf *Y, uint32_t ldy,
    uint32_t m, double *wall)
{
	double gpu[64], wl[64];
	int n = 0, reps = 1;

	for (int r = -1; r < reps; r++) {
		double t0 = bench_now(), ns = 0;
		if (gpu_cmd_begin(b->c) != 0)
			return (-1);
		eng_mm_record(b->c, b->pipe, v, X, w, Y, ldy, m, false);
		if (gpu_cmd_submit(b->c) != 0)
			return (-1);
		double t1 = bench_now();
		gpu_cmd_timings(b->c, add_ns, &ns);
		if (r < 0) {
			reps = reps_for(b, t1 - t0);
			continue;
		}
		gpu[n] = ns * 1e-9;
		wl[n++] = t1 - t0;
	}
	*wall = bench_median(wl, n);
	return (bench_median(gpu, n));
}

static float
rndf(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return ((float)((*s >> 40) & 0xffff) / 32768.0f - 1.0f);
}

/* wmat_make uploads n x k weights of dtype dt as one part with a texel view. */
static int
wmat_make(struct bench *b, enum eng_dtype dt, uint32_t n, uint32_t k,
    uint64_t *seed, struct eng_wmat *w)
{
	size_t esz = dt == ENG_F32 ? 4 : 2, bytes = esz * n * k;
	uint16_t *h;
	int rv;

	memset(w, 0, sizeof(*w));
	if (ENG_DTYPE_QUANT(dt)) {
		/* Block dtypes: quantize the f32 values, upload as the engine
		 * does (quants and scales split). */
		float *v = malloc(sizeof(float) * n * k);
		void *q = malloc(eng_q_row_bytes(dt, k) * n);
		if ((w->parts = calloc(1, sizeof(*w->parts))) == NULL ||
		    v == NULL || q == NULL) {
			free(v);
			free(q);
			return (INFINI_ENOMEM);
		}
		for (size_t i = 0; i < (size_t)n * k; i++)
			v[i] = rndf(seed) * 0.05f;
		eng_q_quantize(dt, v, (size_t)n * k, q);
		w->dt = dt;
		w->rows = (int)n;
		w->cols = (int)k;
		w->nparts = 1;
		if ((rv = eng_wpart_alloc(b->d, ENG_MM_TEXEL, dt, (int)n, (int)k,
		    &w->parts[0])) == 0)
			rv = eng_wpart_write(b->d, &w->parts[0], dt, (int)k, 0, q,
			    (int)n);
		free(v);
		free(q);
		return (rv);
	}
	if ((w->parts = calloc(1, sizeof(*w->parts))) == NULL ||
	    (h = malloc(bytes)) == NULL)
		return (INFINI_ENOMEM);
	/* Normal numbers of magnitude 2^-8 .. 2^-5, random sign and mantissa. */
	for (size_t i = 0; i < (size_t)n * k; i++) {
		uint32_t r = (uint32_t)(rndf(seed) * 32768.0f + 32768.0f);
		if (dt == ENG_F32)
			((float *)h)[i] = rndf(seed) * 0.05f;
		else if (dt == ENG_F16)
			h[i] = (uint16_t)((r & 1) << 15 | (7 + (r >> 1) % 4) << 10 |
			    (r >> 3 & 1023));
		else
			h[i] = (uint16_t)((r & 1) << 15 | (119 + (r >> 1) % 4) << 7 |
			    (r >> 3 & 127));
	}
	w->dt = dt;
	w->rows = (int)n;
	w->cols = (int)k;
	w->nparts = 1;
	w->parts[0].rows = (int)n;
	if ((rv = gpu_buf_alloc(b->d, GPU_POOL_WEIGHTS, bytes,
	    &w->parts[0].buf)) == 0 &&
	    (rv = gpu_buf_write(b->d, &w->parts[0].buf, 0, h, bytes)) == 0)
		rv = gpu_view_create(b->d, &w->parts[0].buf, 0, bytes,
		    eng_mm_wformat(ENG_MM_TEXEL, dt), &w->parts[0].view);
	free(h);
	return (rv);
}

static void
wmat_free(struct bench *b, struct eng_wmat *w)
{
	if (w->parts != NULL)
		eng_wpart_free(b->d, &w->parts[0]);
	free(w->parts);
}

/* sgemm_gflops: OpenBLAS on the same shape, median GFLOP/s; 0 if absent. */
static double
sgemm_gflops(struct bench *b, const struct shape *s, const float *x)
{
	double t[64], first;
	float *w, *y;
	uint64_t seed = 7;
	int n = 0, reps;

	if (b->sgemm == NULL)
		return (0);
	w = malloc(sizeof(float) * s->n * s->k);
	y = malloc(sizeof(float) * s->m * s->n);
	if (w == NULL || y == NULL) {
		free(w);
		free(y);
		return (0);
	}
	for (size_t i = 0; i < (size_t)s->n * s->k; i++)
		w[i] = rndf(&seed) * 0.05f;
	first = bench_now();
	b->sgemm(101, 111, 112, (int)s->m, (int)s->n, (int)s->k, 1.0f, x,
	    (int)s->k, w, (int)s->k, 0.0f, y, (int)s->n);
	reps = reps_for(b, bench_now() - first);
	while (n < reps) {
		double t0 = bench_now();
		b->sgemm(101, 111, 112, (int)s->m, (int)s->n, (int)s->k, 1.0f,
		    x, (int)s->k, w, (int)s->k, 0.0f, y, (int)s->n);
		t[n++] = bench_now() - t0;
	}
	free(w);
	free(y);
	return (2.0 * s->m * s->n * s->k / bench_median(t, n) * 1e-9);
}

static int
bench_shape(struct bench *b, const struct shape *s)
{
	double flop = 2.0 * s->m * s->n * s->k;
	struct gpu_buf X = { 0 }, Y = { 0 };
	struct eng_mm_in in = { &X, VK_NULL_HANDLE, s->k };
	float *x = malloc(sizeof(float) * s->m * s->k);
	uint64_t seed = 1;
	int rv;

	if (x == NULL)
		return (INFINI_ENOMEM);
	for (size_t i = 0; i < (size_t)s->m * s->k; i++)
		x[i] = rndf(&seed);
	if ((rv = gpu_buf_alloc(b->d, GPU_POOL_ACT, sizeof(float) * s->m * s->k,
	    &X)) != 0 ||
	    (rv = gpu_buf_alloc(b->d, GPU_POOL_ACT, sizeof(float) * s->m * s->n,
	    &Y)) != 0 ||
	    (rv = gpu_buf_write(b->d, &X, 0, x, sizeof(float) * s->m * s->k)) != 0 ||
	    (rv = gpu_view_create(b->d, &X, 0, sizeof(float) * s->m * s->k,
	    VK_FORMAT_R32G32B32A32_SFLOAT, &in.view)) != 0)
		goto out;
	for (int dt = ENG_F32; dt <= ENG_Q4_0; dt++) {
		struct eng_wmat w;
		if (ENG_DTYPE_QUANT(dt) && s->k % ENG_QBLOCK != 0)
			continue;
		double wall = 0, gf;
		if ((rv = wmat_make(b, (enum eng_dtype)dt, s->n, s->k, &seed,
		    &w)) != 0) {
			wmat_free(b, &w);
			goto out;
		}
		printf("%5u %5u %5u  %-4s", s->m, s->n, s->k, dtnames[dt]);
		for (size_t c = 0; c < NCOL; c++) {
			double wl = 0, t;
			if ((cols[c] == ENG_MM_COOP && (!eng_mm_usable(
			    gpu_dev_info(b->d), ENG_MM_COOP) ||
			    (dt != ENG_F16 && dt != ENG_BF16))) ||
			    ((cols[c] == ENG_MM_TEXEL_M4 ||
			    cols[c] == ENG_MM_TEXEL_M1) && s->m > 16) ||
			    (cols[c] == ENG_MM_PORTABLE && flop > 4e9 &&
			    gpu_dev_info(b->d)->type ==
			    VK_PHYSICAL_DEVICE_TYPE_CPU)) {
				printf(" %8s", "-");
				continue;
			}
			t = time_var(b, cols[c], &in, &w, &Y, s->n, s->m, &wl);
			printf(" %8.2f", t > 0 ? flop / t * 1e-9 : 0.0);
			if (cols[c] == ENG_MM_TEXEL)
				wall = wl;
			fflush(stdout);
		}
		printf(" %8.2f", wall > 0 ? flop / wall * 1e-9 : 0.0);
		gf = dt == ENG_F32 ? sgemm_gflops(b, s, x) : 0;
		if (gf > 0)
			printf(" %8.2f\n", gf);
		else
			printf(" %8s\n", "-");
		wmat_free(b, &w);
	}
out:
	gpu_view_free(b->d, in.view);
	gpu_buf_free(b->d, &X);
	gpu_buf_free(b->d, &Y);
	free(x);
	return (rv);
}

int
main(int argc, char **argv)
{
	struct bench b = { .reps = argc > 1 ? atoi(argv[1]) : 7 };
	char err[256];
	void *blas;
	int rv;

	if (b.reps < 1 || b.reps > 64)
		b.reps = 7;
	if ((rv = gpu_dev_open(getenv("INFINI_DEVICE"), &b.d, err,
	    sizeof(err))) != 0) {
		fprintf(stderr, "bench-matmul: %s\n", err);
		return (1);
	}
	if ((blas = dlopen("libopenblas.so.0", RTLD_NOW)) != NULL)
		*(void **)&b.sgemm = dlsym(blas, "cblas_sgemm");
	if ((rv = gpu_cmd_alloc(b.d, &b.c)) != 0)
		return (1);
	gpu_cmd_profile(b.c, true);
	if ((rv = eng_mm_pipes_create(b.d, b.pipe, err, sizeof(err))) != 0) {
		fprintf(stderr, "bench-matmul: %s\n", err);
		return (1);
	}
	printf("# %s, subgroup %u; GFLOP/s, median of up to %d runs "
	    "(GPU timestamps; 'wall' = texel incl. submit)\n",
	    gpu_dev_info(b.d)->name, gpu_dev_info(b.d)->subgroup_size, b.reps);
	printf("%5s %5s %5s  %-4s %8s %8s %8s %8s %8s %8s %8s %8s\n", "m",
	    "n", "k", "W", "portable", "texel", "t-tile", "t-m4", "t-m1",
	    "coop", "wall", "sgemm");
	struct shape one = { 0 };
	size_t nshape = sizeof(shapes) / sizeof(shapes[0]);
	if (argc > 4) {
		one = (struct shape){ (uint32_t)atoi(argv[2]),
		    (uint32_t)atoi(argv[3]), (uint32_t)atoi(argv[4]) / 4 * 4 };
		nshape = one.m && one.n && one.k ? 1 : 0;
	}
	for (size_t i = 0; i < nshape; i++)
		if ((rv = bench_shape(&b, argc > 4 ? &one : &shapes[i])) != 0) {
			fprintf(stderr, "bench-matmul: error %d\n", rv);
			break;
		}
	eng_mm_pipes_free(b.d, b.pipe);
	gpu_cmd_free(b.c);
	gpu_dev_free(b.d);
	if (blas != NULL)
		dlclose(blas);
	return (rv != 0);
}
