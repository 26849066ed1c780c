/*
 * t_sample.c - token sampling on the device (shaders/sample.comp) and
 * generation through the engine, against ref_sample in tests/ref.c.
 *
 * The kernel computes the softmax in float-float arithmetic and finds the
 * top-k / top-p thresholds exactly on the logits' bit patterns, so on the
 * same float logits it must pick exactly the reference's token: every row is
 * checked for equality, no tolerance.  (A mismatch could only come from the
 * reference's double running sum landing within ~1e-12 of the draw; none is
 * expected in these runs.)  Generation compares whole token sequences with a
 * loop over the double reference model; there the engine's logits differ
 * from the reference's by ~1e-6, so a flip would need a near-tie that close.
 * The validation layer is on and must stay silent.
 */
#include <math.h>
#include <string.h>

#include "engine/kernels.h"
#include "gpu/gpu.h"
#include "gpu_test.h"
#include "ref.h"

#include "sample_pc.h"

static struct gpu_dev *dev;
static struct gpu_pipe *spipe;
static uint64_t rng = 0x2545f4914f6cdd1dull;

static double
unif(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return ((double)(rng >> 11) / 9007199254740992.0);
}

static double
gauss(void)
{
	double u = unif(), v = unif();
	return (sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v));
}

/*
 * kernel_sample runs the sampler once over n rows of logits lg[n, V], row r
 * with prm[r], and writes the ids to tok.  Returns 0 or an error code.
 */
static int
kernel_sample(const float *lg, int n, int V, const struct sample_row *prm,
    int32_t *tok)
{
	struct gpu_buf b[4];
	struct gpu_arg a[4];
	struct gpu_cmd *c = NULL;
	struct sample_pc pc = { (uint32_t)n, (uint32_t)V };
	int rv;

	memset(b, 0, sizeof(b));
	if ((rv = gpu_buf_alloc(dev, GPU_POOL_ACT, (size_t)n * V * 4, &b[0])) ||
	    (rv = gpu_buf_alloc(dev, GPU_POOL_ACT, (size_t)n * 32, &b[1])) ||
	    (rv = gpu_buf_alloc(dev, GPU_POOL_ACT, (size_t)n * V * 8, &b[2])) ||
	    (rv = gpu_buf_alloc(dev, GPU_POOL_ACT, (size_t)n * 4, &b[3])) ||
	    (rv = gpu_buf_write(dev, &b[0], 0, lg, (size_t)n * V * 4)) ||
	    (rv = gpu_buf_write(dev, &b[1], 0, prm, (size_t)n * 32)) ||
	    (rv = gpu_cmd_alloc(dev, &c)) || (rv = gpu_cmd_begin(c)))
		goto out;
	for (int i = 0; i < 4; i++)
		a[i] = gpu_arg_of(&b[i], 0, 0);
	gpu_cmd_dispatch(c, spipe, a, (1u << 2) | (1u << 3), &pc, (uint32_t)n,
	    1, 1, "sample");
	if ((rv = gpu_cmd_submit(c)) == 0)
		rv = gpu_buf_read(dev, &b[3], 0, tok, (size_t)n * 4);
out:
	gpu_cmd_free(c);
	for (int i = 0; i < 4; i++)
		gpu_buf_free(dev, &b[i]);
	return (rv);
}

struct mode {
	const char *name;
	float temperature;
	int top_k;
	float top_p;
	double scale;           /* logits ~ N(0, scale^2) */
	double quant;           /* > 0: logits rounded to multiples (ties) */
};

static const struct mode modes[] = {
	{ "greedy", 0, 0, 1, 3, 0 },
	{ "greedy with ties", 0, 0, 1, 2, 0.5 },
	{ "temperature 0.7", 0.7f, 0, 1, 2, 0 },
	{ "temperature 1.5", 1.5f, 0, 1, 4, 0 },
	{ "top-k 40", 1.0f, 40, 1, 2, 0 },
	{ "top-k 1", 1.3f, 1, 1, 2, 0 },
	{ "top-p 0.9", 1.0f, 0, 0.9f, 2, 0 },
	{ "top-p 0.3", 0.6f, 0, 0.3f, 3, 0 },
	{ "top-k 20 top-p 0.9 T 0.8", 0.8f, 20, 0.9f, 2, 0 },
	{ "top-k 300 top-p 0.95 T 1.2", 1.2f, 300, 0.95f, 1, 0 },
	{ "ties at the thresholds", 1.0f, 10, 0.5f, 2, 0.25 },
};
#define NMODES ((int)(sizeof(modes) / sizeof(modes[0])))

static void
fill_row(float *row, double *drow, int V, const struct mode *md)
{
	for (int i = 0; i < V; i++) {
		double x = gauss() * md->scale;
		if (md->quant > 0)
			x = round(x / md->quant) * md->quant;
		row[i] = (float)x;
		drow[i] = row[i];
	}
}

static struct sample_row
make_row(int r, const struct mode *md, uint64_t seed, uint64_t step)
{
	struct sample_row p = { (uint32_t)r, md->temperature,
	    (uint32_t)md->top_k, md->top_p, (uint32_t)seed,
	    (uint32_t)(seed >> 32), (uint32_t)step, (uint32_t)(step >> 32) };
	return (p);
}

/* One mode at one vocabulary size: n rows, each with its own seed and step
 * (some steps beyond 2^32), every id equal to the reference's. */
static void
test_vs_ref(int V, int n, const struct mode *md)
{
	float *lg = malloc(sizeof(float) * (size_t)n * V);
	double *dl = malloc(sizeof(double) * (size_t)n * V);
	struct sample_row *prm = calloc((size_t)n, sizeof(*prm));
	int32_t *tok = calloc((size_t)n, sizeof(*tok));
	int bad = 0, rv = INFINI_ENOMEM;

	if (lg && dl && prm && tok) {
		for (int r = 0; r < n; r++) {
			uint64_t seed = (uint64_t)r * 0x9e3779b97f4a7c15ull + 7;
			uint64_t step = r % 3 == 0 ? (uint64_t)r << 33 : (uint64_t)r;
			fill_row(lg + (size_t)r * V, dl + (size_t)r * V, V, md);
			prm[r] = make_row(r, md, seed, step);
		}
		rv = kernel_sample(lg, n, V, prm, tok);
	}
	for (int r = 0; rv == 0 && r < n; r++) {
		uint64_t seed = prm[r].seed_lo | (uint64_t)prm[r].seed_hi << 32;
		uint64_t step = prm[r].step_lo | (uint64_t)prm[r].step_hi << 32;
		int want = ref_sample(dl + (size_t)r * V, V, md->temperature,
		    md->top_k, md->top_p, seed, step);
		if (tok[r] != want) {
			if (bad++ < 5)
				tap_diag("  row %d: got %d, want %d", r, tok[r],
				    want);
		}
	}
	ok(rv == 0 && bad == 0, "V %d, %s: %d rows equal to ref_sample (%d "
	    "differ)", V, md->name, n, bad);
	free(lg);
	free(dl);
	free(prm);
	free(tok);
}

/* Same seed and step: same ids; another seed or step: other ids. */
static void
test_repro(void)
{
	enum { N = 64, V = 300 };
	static float lg[N * V];
	static double dl[N * V];
	struct sample_row p[N];
	int32_t a[N], b[N], c[N], d[N];
	const struct mode md = { "flat", 1.0f, 0, 1, 0.5, 0 };
	int rv, same = 1, dseed = 0, dstep = 0;

	for (int r = 0; r < N; r++) {
		fill_row(lg + r * V, dl + r * V, V, &md);
		p[r] = make_row(r, &md, 42, 0);
	}
	rv = kernel_sample(lg, N, V, p, a);
	if (rv == 0)
		rv = kernel_sample(lg, N, V, p, b);
	for (int r = 0; r < N; r++)
		p[r] = make_row(r, &md, 43, 0);
	if (rv == 0)
		rv = kernel_sample(lg, N, V, p, c);
	for (int r = 0; r < N; r++)
		p[r] = make_row(r, &md, 42, 1);
	if (rv == 0)
		rv = kernel_sample(lg, N, V, p, d);
	for (int r = 0; r < N; r++) {
		same &= a[r] == b[r];
		dseed += a[r] != c[r];
		dstep += a[r] != d[r];
	}
	ok(rv == 0 && same, "same seed and step: same tokens");
	ok(rv == 0 && dseed >= N / 2 && dstep >= N / 2, "another seed changes "
	    "%d of %d tokens, another step %d", dseed, N, dstep);
}

static void
kernel_tests(void)
{
	char err[256];
	int rv;

	if ((rv = gpu_dev_open(getenv("INFINI_DEVICE"), &dev, err,
	    sizeof(err))) != 0 ||
	    (rv = gpu_pipe_create(dev, &eng_kernels[ENG_K_SAMPLE], NULL, 0,
	    &spipe)) != 0) {
		tap_diag("device: %s", err);
		tap_skip(2 * NMODES + 3, "no sampler pipeline");
		gpu_dev_free(dev);
		dev = NULL;
		return;
	}
	for (int m = 0; m < NMODES; m++)
		test_vs_ref(300, 96, &modes[m]);
	for (int m = 0; m < NMODES; m++)
		test_vs_ref(50000, 12, &modes[m]);
	test_repro();
	ok(gpu_dev_validation_errors(dev) == 0, "kernel: validation silent "
	    "(%u messages)", gpu_dev_validation_errors(dev));
	gpu_pipe_free(dev, spipe);
	gpu_dev_free(dev);
}

/* ------------------------------------------------------ generation */

#define NPROMPT 13
#define NGEN 20

static const int32_t prompt[NPROMPT] = { 72, 101, 108, 108, 111, 44, 32, 105,
	110, 102, 105, 110, 105 };

/* ref_generate: the prompt, then n tokens each sampled from the previous
 * step's logits with step = its index, each fed back once. */
static int
ref_generate(const struct eng_model *m, const struct eng_sampler *s, int n,
    int32_t *out)
{
	int V = m->cfg.vocab_size, rv;
	struct ref_state *rs = NULL;
	double *lg = malloc(sizeof(double) * (size_t)V);

	if (lg == NULL || (rv = ref_state_alloc(m, &rs)) != 0) {
		free(lg);
		return (INFINI_ENOMEM);
	}
	for (int i = 0; i < NPROMPT && rv == 0; i++)
		rv = ref_step(rs, prompt[i], NULL, NULL, lg);
	for (int g = 0; g < n && rv == 0; g++) {
		out[g] = ref_sample(lg, V, s->temperature, s->top_k, s->top_p,
		    s->seed, (uint64_t)g);
		if (g + 1 < n)
			rv = ref_step(rs, out[g], NULL, NULL, lg);
	}
	ref_state_free(rs);
	free(lg);
	return (rv);
}

/*
 * eng_generate drives ns streams together: one eng_run for all prompts,
 * then one per generated token with every stream's 1-token job.  Tokens go
 * to out[s * n + g].
 */
static int
eng_generate(struct eng *e, const int *slot, const struct eng_sampler *s,
    int ns, int n, int32_t *out)
{
	struct eng_job j[4];
	char err[256];
	int rv = 0;

	for (int g = 0; g < n && rv == 0; g++) {
		for (int k = 0; k < ns; k++)
			j[k] = (struct eng_job){ .slot = slot[k],
			    .n = g ? 1 : NPROMPT,
			    .tokens = g ? &out[k * n + g - 1] : prompt,
			    .out = ENG_OUT_NONE, .sample = &s[k],
			    .token = &out[k * n + g] };
		if ((rv = eng_run(e, j, ns, err, sizeof(err))) != 0)
			tap_diag("eng_run: %s", err);
	}
	return (rv);
}

static int
first_diff(const int32_t *a, const int32_t *b, int n)
{
	for (int i = 0; i < n; i++)
		if (a[i] != b[i])
			return (i);
	return (-1);
}

static void
check_seq(const char *name, int rv, const int32_t *got, const int32_t *want)
{
	int d = first_diff(got, want, NGEN);
	ok(rv == 0 && d < 0, "%s: %d tokens equal to the reference", name,
	    NGEN);
	if (rv == 0 && d >= 0)
		tap_diag("  first difference at %d: got %d, want %d", d, got[d],
		    want[d]);
}

static void
generation_tests(void)
{
	struct fx_opts o;
	struct gt g;
	struct eng_sampler greedy = { 0, 0, 1, 0 };
	struct eng_sampler smp[2] = { { 0.8f, 20, 0.9f, 42 },
	    { 1.0f, 0, 1, 7 } };
	int32_t got[2 * NGEN], want[2 * NGEN], fork[NGEN];
	int slot[2], rv;
	char err[256];

	fx_opts_default(&o);
	if ((rv = gt_open(&g, &o, 4, 64)) != 0) {
		ok(0, "generation: open (%s)", infini_strerror(rv));
		tap_skip(6, "no engine");
		gt_close(&g);
		return;
	}

	/* Greedy, one stream. */
	rv = eng_stream_alloc(g.e, &slot[0]);
	if (rv == 0)
		rv = eng_generate(g.e, slot, &greedy, 1, NGEN, got);
	if (rv == 0)
		rv = ref_generate(g.m, &greedy, NGEN, want);
	check_seq("greedy", rv, got, want);
	eng_stream_free(g.e, slot[0]);

	/* Two sampled streams batched in each eng_run. */
	rv = eng_stream_alloc(g.e, &slot[0]);
	if (rv == 0)
		rv = eng_stream_alloc(g.e, &slot[1]);
	if (rv == 0)
		rv = eng_generate(g.e, slot, smp, 2, NGEN, got);
	for (int k = 0; k < 2 && rv == 0; k++)
		rv = ref_generate(g.m, &smp[k], NGEN, want + k * NGEN);
	check_seq("T 0.8 top-k 20 top-p 0.9 seed 42", rv, got, want);
	check_seq("T 1 seed 7, batched with it", rv, got + NGEN, want + NGEN);
	ok(rv == 0 && eng_stream_sample_step(g.e, slot[0]) == NGEN &&
	    eng_stream_sample_step(g.e, slot[1]) == NGEN,
	    "sample step advanced once per token (%llu)",
	    (unsigned long long)eng_stream_sample_step(g.e, slot[0]));

	/* A fork carries the step: both continue with the same tokens. */
	int32_t a = got[NGEN - 1], b = got[NGEN - 1];
	int src = slot[0], dst = slot[1];
	rv = eng_stream_copy(g.e, src, dst);
	for (int i = 0; i < NGEN / 2 && rv == 0; i++) {
		int32_t na, nb;
		struct eng_job j[2] = {
			{ .slot = src, .n = 1, .tokens = &a, .sample = &smp[0],
			    .token = &na },
			{ .slot = dst, .n = 1, .tokens = &b, .sample = &smp[0],
			    .token = &nb },
		};
		if ((rv = eng_run(g.e, j, 2, err, sizeof(err))) != 0)
			break;
		fork[i] = na == nb;
		a = na;
		b = nb;
	}
	int agree = rv == 0;
	for (int i = 0; i < NGEN / 2 && agree; i++)
		agree = fork[i];
	ok(agree && eng_stream_sample_step(g.e, dst) ==
	    eng_stream_sample_step(g.e, src), "forked stream samples the same "
	    "continuation");

	struct eng_sampler badk = { 1.0f, -1, 1, 0 };
	int32_t t;
	struct eng_job jb = { .slot = src, .n = 1, .tokens = &a,
	    .sample = &badk, .token = &t };
	int64_t pos = eng_stream_pos(g.e, src);
	rv = eng_run(g.e, &jb, 1, err, sizeof(err));
	ok(rv == INFINI_EINVAL && eng_stream_pos(g.e, src) == pos,
	    "negative top_k: INFINI_EINVAL, stream unchanged");
	ok(eng_validation_errors(g.e) == 0, "engine: validation silent (%u "
	    "messages)", eng_validation_errors(g.e));
	gt_close(&g);
}

int
main(void)
{
	gt_env();
	if (!gt_have_device()) {
		tap_plan_skip_all("no Vulkan device");
		return (0);
	}
	tap_plan(2 * NMODES + 3 + 7);
	kernel_tests();
	generation_tests();
	return (tap_done());
}
