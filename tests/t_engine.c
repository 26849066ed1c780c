/*
 * t_engine.c - whole models on the device against the double-precision
 * reference (tests/ref.c), and the properties the Infini-attention design
 * promises: causality, chunking invariance, GQA head mapping, constant state
 * size, batched streams equal to separate ones; a slot's rows never reach
 * another slot, whatever position it was given.
 *
 * Tolerances: the engine computes in fp32 with the same (fp32, bf16, f16,
 * or Q8_0/Q4_0 blocks) weights the reference reads exactly; with these tiny widths the error is a
 * few ulps of fp32 accumulation, so hidden states and logits must agree to
 * 2e-4 absolute (values are O(1)) and the memory M, z to 2e-4 relative.
 */
#include <dirent.h>
#include <math.h>
#include <string.h>

#include "gpu_test.h"
#include "ref.h"

#define NTOK 36 /* 4.5 segments of 8 */

static int32_t toks[NTOK];

static void
make_tokens(int vocab, uint64_t seed)
{
	for (int i = 0; i < NTOK; i++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		toks[i] = (int32_t)((seed >> 33) % (uint64_t)vocab);
	}
}

/* run_engine pushes toks in chunks of `chunk` and collects hidden and logits. */
static int
run_engine(struct eng *e, int chunk, float *hid, float *logits)
{
	const struct eng_config *c = eng_config(e);
	int slot, rv;
	char err[256];

	if ((rv = eng_stream_alloc(e, &slot)) != 0)
		return (rv);
	for (int at = 0; at < NTOK; at += chunk) {
		int n = NTOK - at < chunk ? NTOK - at : chunk;
		struct eng_job j = { .slot = slot, .n = n, .tokens = toks + at,
		    .out = ENG_OUT_EMBED, .result = hid + (size_t)at * c->hidden_size };
		if ((rv = eng_run(e, &j, 1, err, sizeof(err))) != 0) {
			tap_diag("eng_run: %s", err);
			break;
		}
		if (logits != NULL) {
			/* Logits of the same inputs come from a forked stream so
			 * the main stream is pushed once. */
		}
	}
	if (rv == 0 && logits != NULL) {
		int s2;
		struct eng_job j = { .n = NTOK, .tokens = toks,
		    .out = ENG_OUT_LOGITS, .result = logits };
		if ((rv = eng_stream_alloc(e, &s2)) != 0)
			return (rv);
		j.slot = s2;
		rv = eng_run(e, &j, 1, err, sizeof(err));
		eng_stream_free(e, s2);
	}
	if (rv == 0)
		return (-slot - 1); /* caller frees */
	eng_stream_free(e, slot);
	return (rv);
}

struct cmp {
	double hid, logit, mem;
};

/* compare_to_ref_tol opens o's model, pushes NTOK tokens and checks hidden
 * states and logits (absolute) and the memory (relative) against the
 * reference within tol: three checks.  An engine that refuses the kernels
 * INFINI_KERNELS forces (INFINI_EUNSUPPORTED) skips them. */
static void
compare_to_ref_tol(const char *name, const struct fx_opts *o, double tol)
{
	struct gt g;
	struct ref_state *rs = NULL;
	const struct eng_config *c;
	float *hid = NULL, *lg = NULL, *M = NULL, *z = NULL;
	double *rh = NULL, *rl = NULL;
	struct cmp err = { 0, 0, 0 };
	int rv, slot = -1;

	if ((rv = gt_open(&g, o, 4, 64)) == INFINI_EUNSUPPORTED &&
	    getenv("INFINI_KERNELS") != NULL) {
		tap_skip(3, "the device has no such kernels");
		gt_close(&g);
		return;
	}
	if (rv != 0) {
		ok(0, "%s: open (%s)", name, infini_strerror(rv));
		ok(0, "%s: logits", name);
		ok(0, "%s: memory", name);
		gt_close(&g);
		return;
	}
	c = eng_config(g.e);
	make_tokens(c->vocab_size, o->seed);
	hid = calloc((size_t)NTOK * c->hidden_size, sizeof(float));
	lg = calloc((size_t)NTOK * c->vocab_size, sizeof(float));
	rh = calloc((size_t)c->hidden_size, sizeof(double));
	rl = calloc((size_t)c->vocab_size, sizeof(double));
	M = calloc((size_t)c->head_dim * c->head_dim, sizeof(float));
	z = calloc((size_t)c->head_dim, sizeof(float));
	rv = run_engine(g.e, 5, hid, lg);
	if (rv < 0)
		slot = -rv - 1;
	if (slot < 0 || ref_state_alloc(g.m, &rs) != 0) {
		ok(0, "%s: run", name);
		ok(0, "%s: logits", name);
		ok(0, "%s: memory", name);
		goto out;
	}
	for (int t = 0; t < NTOK; t++) {
		ref_step(rs, toks[t], NULL, rh, rl);
		for (int k = 0; k < c->hidden_size; k++)
			err.hid = fmax(err.hid, fabs(rh[k] -
			    hid[(size_t)t * c->hidden_size + k]));
		for (int k = 0; k < c->vocab_size; k++)
			err.logit = fmax(err.logit, fabs(rl[k] -
			    lg[(size_t)t * c->vocab_size + k]));
	}
	for (int l = 0; l < c->n_layers; l++)
		for (int g2 = 0; g2 < c->n_kv_heads; g2++) {
			const double *rM = ref_M(rs, l, g2), *rz = ref_z(rs, l, g2);
			double scale = 1e-30;
			eng_stream_read_mem(g.e, slot, l, g2, M, z);
			for (int i = 0; i < c->head_dim * c->head_dim; i++)
				scale = fmax(scale, fabs(rM[i]));
			for (int i = 0; i < c->head_dim * c->head_dim; i++)
				err.mem = fmax(err.mem, fabs(rM[i] - M[i]) / scale);
			scale = 1e-30;
			for (int i = 0; i < c->head_dim; i++)
				scale = fmax(scale, fabs(rz[i]));
			for (int i = 0; i < c->head_dim; i++)
				err.mem = fmax(err.mem, fabs(rz[i] - z[i]) / scale);
		}
	ok(err.hid <= tol, "%s: hidden states over 4.5 segments (max err %.2g)",
	    name, err.hid);
	ok(err.logit <= tol, "%s: logits (max err %.2g)", name, err.logit);
	ok(err.mem <= tol && eng_validation_errors(g.e) == 0,
	    "%s: memory M, z (max rel err %.2g), validation silent", name,
	    err.mem);
out:
	ref_state_free(rs);
	free(hid);
	free(lg);
	free(rh);
	free(rl);
	free(M);
	free(z);
	gt_close(&g);
}

static void
compare_to_ref(const char *name, const struct fx_opts *o)
{
	compare_to_ref_tol(name, o, 2e-4);
}

/* choice_of opens o's model and writes the engine's kernel choice line to
 * buf; returns the open's result. */
static int
choice_of(const struct fx_opts *o, char *buf, size_t n)
{
	struct gt g;
	int rv = gt_open(&g, o, 4, 64);

	buf[0] = '\0';
	if (rv == 0)
		eng_kernel_choice(g.e, buf, n);
	gt_close(&g);
	return (rv);
}

/*
 * test_kernel_families runs two models (bf16 weights, linear rule; f16
 * weights, delta rule) on each matmul family forced by INFINI_KERNELS,
 * whatever the device would choose: portable and texel run everywhere,
 * coop where the device has cooperative matrices (else skipped), once with
 * its own attention and retrieval kernels (attention_coop.comp,
 * retrieve_coop.comp) and once with the portable ones (INFINI_OPS).  The
 * coop family feeds the matmuls, attention and retrieval f16 operands
 * (rounded to nearest, a relative error of 2^-12 per element), which
 * reaches the outputs of these 2-layer models as about 1e-3; the bound is
 * 5e-3, still far below what a wrong tile or stride gives (O(1)).  The
 * engine's kernel choice line must name the coop attention.
 */
static void
test_kernel_families(void)
{
	static const struct {
		const char *fam, *ops;
		double tol;
	} fams[] = {
		{ "portable", "", 2e-4 }, { "texel", "", 2e-4 },
		{ "coop", "", 5e-3 }, { "coop", "portable", 5e-3 },
	};
	char name[96], choice[256];
	struct fx_opts o;

	for (size_t i = 0; i < sizeof(fams) / sizeof(fams[0]); i++) {
		setenv("INFINI_KERNELS", fams[i].fam, 1);
		setenv("INFINI_OPS", fams[i].ops, 1);
		if (strcmp(fams[i].fam, "coop") == 0 && *fams[i].ops == '\0') {
			fx_opts_default(&o);
			if (choice_of(&o, choice, sizeof(choice)) != 0)
				tap_skip(1, "the device has no coop kernels");
			else
				ok(strstr(choice, "attention coop") != NULL,
				    "coop family: %s", choice);
		}
		fx_opts_default(&o);
		o.dtype = ENG_BF16;
		o.seed = 21;
		snprintf(name, sizeof(name), "%s kernels%s%s, bf16",
		    fams[i].fam, *fams[i].ops ? ", attention " : "",
		    fams[i].ops);
		compare_to_ref_tol(name, &o, fams[i].tol);
		fx_opts_default(&o);
		o.dtype = ENG_F16;
		o.cfg.memory_update = ENG_UPDATE_DELTA;
		o.seed = 22;
		snprintf(name, sizeof(name), "%s kernels%s%s, f16 delta",
		    fams[i].fam, *fams[i].ops ? ", attention " : "",
		    fams[i].ops);
		compare_to_ref_tol(name, &o, fams[i].tol);
	}
	unsetenv("INFINI_KERNELS");
	unsetenv("INFINI_OPS");
}

/* thresholds: the "up to m A, 4-row up to B" part of a choice line. */
static void
thresholds(const char *choice, char *buf, size_t n)
{
	const char *a = strstr(choice, "up to m "), *b;

	buf[0] = '\0';
	if (a != NULL && (b = strchr(a, ',')) != NULL &&
	    (b = strchr(b + 1, ',')) != NULL)
		snprintf(buf, n, "%.*s", (int)(b - a), a);
}

/*
 * test_tune: with INFINI_TUNE_DIR, the texel family measures its shape
 * thresholds on the first open, writes them to one file, reads the same
 * ones back on the next, measures again over a file that is not valid, and
 * a model run with the measured choice still matches the reference.
 * Devices that do not take the texel family skip.
 */
static void
test_tune(void)
{
	char dir[256], path[512], c1[256], c2[256], t1[96], t2[96];
	struct fx_opts o;
	struct dirent *de;
	DIR *d;
	int nfile = 0;
	FILE *f;

	fx_opts_default(&o);
	if (choice_of(&o, c1, sizeof(c1)) != 0 || strncmp(c1, "matmul texel",
	    12) != 0 || fx_tmpdir(dir, sizeof(dir)) != 0) {
		tap_skip(6, "the device does not take the texel kernels");
		return;
	}
	setenv("INFINI_TUNE_DIR", dir, 1);
	choice_of(&o, c1, sizeof(c1));
	path[0] = '\0';
	if ((d = opendir(dir)) != NULL) {
		while ((de = readdir(d)) != NULL)
			if (strstr(de->d_name, ".tune") != NULL) {
				nfile++;
				snprintf(path, sizeof(path), "%s/%s", dir,
				    de->d_name);
			}
		closedir(d);
	}
	ok(strstr(c1, "measured now") != NULL && nfile == 1,
	    "autotune: measured and cached in one file (%s)", c1);
	choice_of(&o, c2, sizeof(c2));
	thresholds(c1, t1, sizeof(t1));
	thresholds(c2, t2, sizeof(t2));
	ok(strstr(c2, "cached") != NULL && t1[0] != '\0' &&
	    strcmp(t1, t2) == 0, "autotune: the next open reads the same "
	    "thresholds back (%s)", t2);
	if ((f = fopen(path, "w")) != NULL) {
		fputs("infinid-tune 1\nm1_max=9 m4_max=3\n", f);
		fclose(f);
	}
	choice_of(&o, c2, sizeof(c2));
	ok(strstr(c2, "measured now") != NULL, "autotune: a file that is "
	    "not valid (m4_max < m1_max) is measured over (%s)", c2);
	o.seed = 31;
	compare_to_ref("autotuned texel shapes", &o);
	unsetenv("INFINI_TUNE_DIR");
	fx_rmtree(dir);
}

static void
test_models(void)
{
	struct fx_opts o;

	fx_opts_default(&o);
	compare_to_ref("llama f32 rope linear gqa", &o);

	fx_opts_default(&o);
	o.cfg.memory_update = ENG_UPDATE_DELTA;
	o.seed = 2;
	compare_to_ref("delta rule", &o);

	fx_opts_default(&o);
	o.cfg.rope = false;
	o.seed = 3;
	compare_to_ref("no rope", &o);

	fx_opts_default(&o);
	o.cfg.arch = ENG_ARCH_GEMMA;
	o.cfg.act = ENG_ACT_GELU_TANH;
	o.cfg.memory_update = ENG_UPDATE_DELTA;
	o.seed = 4;
	compare_to_ref("gemma gelu_tanh delta", &o);

	fx_opts_default(&o);
	o.dtype = ENG_BF16;
	o.seed = 5;
	compare_to_ref("bf16 weights", &o);

	fx_opts_default(&o);
	o.dtype = ENG_F16;
	o.cfg.memory_update = ENG_UPDATE_DELTA;
	o.seed = 6;
	compare_to_ref("f16 weights delta", &o);

	fx_opts_default(&o);
	o.cfg.gate_on = ENG_GATE_LOCAL;
	o.cfg.memory_rope = true;
	o.cfg.tie_word_embeddings = true;
	o.seed = 7;
	compare_to_ref("gate on local, memory_rope, tied", &o);

	fx_opts_default(&o);
	o.cfg.n_heads = 8;
	o.cfg.n_kv_heads = 2;
	o.cfg.head_dim = 8;
	o.cfg.act = ENG_ACT_GELU;
	o.seed = 8;
	compare_to_ref("gqa 8:2 gelu", &o);

	fx_opts_default(&o);
	o.cfg.n_kv_heads = 4;
	o.cfg.head_dim = 32;
	o.cfg.n_heads = 2;
	o.cfg.n_kv_heads = 2;
	o.seed = 9;
	compare_to_ref("mha head_dim 32", &o);

	/* Every matrix split into parts of a few rows, as tensors beyond
	 * maxStorageBufferRange are on a real device. */
	setenv("INFINI_MAX_BINDING_BYTES", "4096", 1);
	fx_opts_default(&o);
	o.dtype = ENG_BF16;
	o.seed = 10;
	compare_to_ref("weights split across bindings", &o);

	/* Block-quantized projections and lm_head: the reference reads the
	 * same blocks dequantized, so the tolerance is fp32's again. */
	fx_opts_default(&o);
	o.quant = ENG_Q8_0;
	o.seed = 11;
	compare_to_ref("q8_0 projections split across bindings", &o);
	unsetenv("INFINI_MAX_BINDING_BYTES");

	fx_opts_default(&o);
	o.quant = ENG_Q4_0;
	o.dtype = ENG_F16;
	o.cfg.memory_update = ENG_UPDATE_DELTA;
	o.seed = 12;
	compare_to_ref("q4_0 projections, f16 rest, delta", &o);

	fx_opts_default(&o);
	o.quant = ENG_Q8_0;
	o.dtype = ENG_BF16;
	o.cfg.arch = ENG_ARCH_GEMMA;
	o.cfg.act = ENG_ACT_GELU_TANH;
	o.cfg.tie_word_embeddings = true;
	o.seed = 13;
	compare_to_ref("q8_0 gemma, tied bf16 embedding", &o);

	setenv("INFINI_KERNELS", "portable", 1);
	fx_opts_default(&o);
	o.quant = ENG_Q4_0;
	o.seed = 14;
	compare_to_ref("q4_0 on the portable matmul", &o);
	unsetenv("INFINI_KERNELS");
}

/* same_state: do two exported states hold the same bytes? */
static bool
same_state(const struct eng_stream_state *a, const struct eng_stream_state *b)
{
	size_t mem, cache, lh = (size_t)a->n_layers * a->n_kv_heads;
	size_t hd = (size_t)a->head_dim;

	eng_stream_state_floats(a, &mem, &cache);
	return (a->pos == b->pos && a->rows == b->rows &&
	    memcmp(a->M, b->M, lh * hd * hd * sizeof(float)) == 0 &&
	    memcmp(a->z, b->z, lh * hd * sizeof(float)) == 0 &&
	    (cache == 0 || (memcmp(a->kc, b->kc, cache * sizeof(float)) == 0 &&
	    memcmp(a->vc, b->vc, cache * sizeof(float)) == 0)));
}

/*
 * test_slot_bounds: a position near 2^63 used to wrap when a few tokens
 * were pushed, and the K/V rows landed in the neighbouring slot.  The engine
 * refuses such a state on import and a job that would pass ENG_POS_MAX, and
 * the neighbour's state stays byte for byte what it was.
 */
static void
test_slot_bounds(void)
{
	struct fx_opts o;
	struct gt g;
	struct eng_stream_state st, nb0, nb1, a0, a1;
	int a, b, rv;
	char err[256] = "";

	fx_opts_default(&o);
	if (gt_open(&g, &o, 2, 64) != 0) {
		tap_skip(4, "no engine");
		return;
	}
	const struct eng_config *c = eng_config(g.e);
	int N = c->segment_size;
	make_tokens(c->vocab_size, 11);
	/* b below a: a negative row offset in a reaches back into b. */
	eng_stream_alloc(g.e, &b);
	eng_stream_alloc(g.e, &a);
	struct eng_job jb = { .slot = b, .n = 5, .tokens = toks };
	struct eng_job ja = { .slot = a, .n = 3, .tokens = toks + 5 };
	eng_run(g.e, &jb, 1, err, sizeof(err));
	eng_run(g.e, &ja, 1, err, sizeof(err));
	eng_stream_export(g.e, b, &nb0);
	eng_stream_export(g.e, a, &a0);

	/* A state at 2^63 - 3 (rows consistent with it). */
	int64_t far = INT64_MAX - 2;
	eng_stream_state_init(&st, c->n_layers, c->n_kv_heads, c->head_dim,
	    N, a0.has_kmem, far);
	rv = eng_stream_import(g.e, a, &st);
	ok(rv == INFINI_EINVAL, "a state at position 2^63-3 is refused on "
	    "import (%s)", infini_strerror(rv));
	eng_stream_state_fini(&st);
	/* Whatever the import did, pushing must not reach slot b: 3 inputs
	 * take 2^63-3 to the wrap, 1 more makes the offset in the segment
	 * negative, then a long push. */
	static const int steps[] = { 3, 1, 1, 12 };
	rv = 0;
	for (int i = 0; i < 4; i++) {
		ja.n = steps[i];
		ja.tokens = toks;
		rv |= eng_run(g.e, &ja, 1, err, sizeof(err));
	}
	eng_stream_export(g.e, b, &nb1);
	ok(same_state(&nb0, &nb1), "pushing 3, 1, 1 and 12 tokens into it "
	    "leaves the neighbouring slot unchanged (run: %s)",
	    rv ? err : "ran");
	eng_stream_state_fini(&nb1);

	/* At ENG_POS_MAX - 1: one more input is fine, two are not. */
	eng_stream_state_init(&st, c->n_layers, c->n_kv_heads, c->head_dim,
	    N, a0.has_kmem, ENG_POS_MAX - 1);
	rv = eng_stream_import(g.e, a, &st);
	eng_stream_state_fini(&st);
	eng_stream_state_fini(&a0);
	eng_stream_export(g.e, a, &a0);
	ja.n = 2;
	rv = rv == 0 ? eng_run(g.e, &ja, 1, err, sizeof(err)) : rv;
	eng_stream_export(g.e, a, &a1);
	err[0] = rv ? err[0] : 0;
	ok(rv == INFINI_EINVAL && same_state(&a0, &a1), "a job that would "
	    "pass ENG_POS_MAX is refused before it runs (%s)", err);
	eng_stream_state_fini(&a1);
	eng_stream_export(g.e, b, &nb1);
	ok(same_state(&nb0, &nb1), "the neighbour is still unchanged");
	eng_stream_state_fini(&nb1);
	eng_stream_state_fini(&nb0);
	eng_stream_state_fini(&a0);
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
	tap_plan(46 + 18 + 6 + 7);
	test_models();
	test_kernel_families();
	test_tune();
	test_slot_bounds();
	return (tap_done());
}
