/*
 * t_convert.c - infini-convert on tiny Hugging Face checkpoints of every
 * supported layout (written by tools/hf_tiny.py in the families' exact
 * naming, shapes and config keys): infini-run's logits on the converted
 * directory must equal PyTorch's on the source checkpoint (tests/
 * convert_ref.py, reading the source directly) within CV_TOL relative, in
 * f32, over NTOK tokens = five segments and a half, pushed in chunks of 5.
 *
 * With the default gate (-100), a later segment must be the plain model
 * over that segment alone.  Then the block dtypes (the converted model
 * loads with the dtypes the documentation promises and stays close to
 * f32), and the refusals: model types whose blocks the engine lacks, an
 * existing DST, a plain model without a segment size, a truncated source
 * (no DST and no partial directory may be left behind).
 *
 * Skips when python3 cannot import torch and numpy.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/model.h"
#include "fixture.h"
#include "gpu_test.h"
#include "npy.h"
#include "tap.h"

#define NTOK 44
#define VOCAB_MIN 160
#define CV_TOL 1e-4

static char tmp[512];
static int toks[NTOK];

/* sh runs a command with stderr to tmp/log; returns its exit status. */
static int
sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	int rv;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	strncat(cmd, " 2>", sizeof(cmd) - strlen(cmd) - 1);
	strncat(cmd, tmp, sizeof(cmd) - strlen(cmd) - 1);
	strncat(cmd, "/log", sizeof(cmd) - strlen(cmd) - 1);
	rv = system(cmd);
	return (WIFEXITED(rv) ? WEXITSTATUS(rv) : -1);
}

/* log_has reports whether the last command's stderr holds s. */
static bool
log_has(const char *s)
{
	char p[600], *d;
	size_t n;
	bool found;

	snprintf(p, sizeof(p), "%s/log", tmp);
	if (fx_read_file(p, &d, &n) != 0)
		return (false);
	found = strstr(d, s) != NULL;
	if (!found)
		tap_diag("log: %.*s", (int)strcspn(d, "\n"), d);
	free(d);
	return (found);
}

static void
write_tokens(void)
{
	char p[600];
	FILE *f;
	uint64_t s = 12345;

	snprintf(p, sizeof(p), "%s/tok.txt", tmp);
	if ((f = fopen(p, "w")) == NULL)
		return;
	for (int i = 0; i < NTOK; i++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		toks[i] = (int)((s >> 33) % VOCAB_MIN);
		fprintf(f, "%d ", toks[i]);
	}
	fclose(f);
}

/* max_rel returns max |a - b| / max |b| of two .npy files, or -1. */
static double
max_rel(const char *pa, const char *pb)
{
	float *a = NULL, *b = NULL;
	size_t ra, ca, rb, cb;
	char err[256];
	double d = 0, m = 1e-30;

	if (npy_read(pa, &a, &ra, &ca, err, sizeof(err)) != 0 ||
	    npy_read(pb, &b, &rb, &cb, err, sizeof(err)) != 0 || ra != rb ||
	    ca != cb || ra != NTOK) {
		tap_diag("npy: %s", err);
		free(a);
		free(b);
		return (-1);
	}
	for (size_t i = 0; i < ra * ca; i++) {
		d = fmax(d, fabs((double)a[i] - b[i]));
		m = fmax(m, fabs((double)b[i]));
	}
	free(a);
	free(b);
	return (d / m);
}

/*
 * round_trip writes layout's checkpoint, converts it with cargs, runs
 * infini-run and the PyTorch reference (rargs), and returns the max
 * relative logit difference (-1 on failure).
 */
static double
round_trip(const char *layout, const char *cargs, const char *rargs)
{
	char src[600], dst[600];

	snprintf(src, sizeof(src), "%s/src_%s", tmp, layout);
	snprintf(dst, sizeof(dst), "%s/dst_%s_%d", tmp, layout, rand());
	if (access(src, F_OK) != 0 && sh("%s %s %s %s", PYTHON, HF_TINY,
	    layout, src) != 0)
		return (-1);
	if (sh("%s -q %s %s %s", CONVERT, cargs, src, dst) != 0) {
		log_has("(convert)");
		return (-1);
	}
	if (sh("%s --model %s --tokens %s/tok.txt --output logits --chunk 5 "
	    "--out %s/engine.npy", RUN, dst, tmp, tmp) != 0 ||
	    sh("%s %s %s %s/tok.txt %s/torch.npy %s", PYTHON, CONVERT_REF, src,
	    tmp, tmp, rargs) != 0) {
		log_has("(run)");
		return (-1);
	}
	char a[600], b[600];
	snprintf(a, sizeof(a), "%s/engine.npy", tmp);
	snprintf(b, sizeof(b), "%s/torch.npy", tmp);
	return (max_rel(a, b));
}

static void
test_layouts(void)
{
	static const struct {
		const char *layout, *cargs, *rargs, *what;
	} cases[] = {
		{ "llama", "--dtype f32 --segment-size 8 --gate-init 0.5 "
		    "--memory-update delta", "--segment-size 8 --gate-init 0.5 "
		    "--memory-update delta", "Llama (MHA, inv_freq buffers)" },
		{ "llama", "--dtype f32 --segment-size 8", "--segment-size 8",
		    "Llama, default gate -100" },
		{ "llama3", "--dtype f32 --segment-size 8 --gate-init -1",
		    "--segment-size 8 --gate-init -1",
		    "Llama-3 (GQA 4:1, tied, bf16 source, 2 shards)" },
		{ "mistral", "--dtype f32 --segment-size 8 --gate-init 0",
		    "--segment-size 8 --gate-init 0", "Mistral (GQA, window)" },
		{ "gemma", "--dtype f32 --segment-size 8 --gate-init 1 "
		    "--memory-update delta", "--segment-size 8 --gate-init 1 "
		    "--memory-update delta", "Gemma (1 kv head, head_dim 32)" },
		{ "infini-llama", "--dtype f32", "",
		    "Infini Llama source: gates (1,H,1,1) kept" },
		{ "gemma-2b-10m", "--dtype f32 --layout gemma-2b-10m",
		    "--layout gemma-2b-10m", "gemma-2B-10M layout (no RoPE)" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		double r = round_trip(cases[i].layout, cases[i].cargs,
		    cases[i].rargs);
		ok(r >= 0 && r <= CV_TOL, "%s: logits equal PyTorch's on the "
		    "source over 5.5 segments (max rel %.2g)", cases[i].what, r);
	}
}

/*
 * test_plain: with the default beta (-100) each segment is the plain model
 * over that segment's tokens alone.  The engine's logits for the second
 * segment of the converted Llama must equal PyTorch's on those 8 tokens as
 * one long segment (the plain causal model: no memory is ever read).
 */
static void
test_plain(void)
{
	char dst[600], p[600];
	float *a = NULL, *b = NULL;
	size_t ra, ca, rb, cb;
	double d = 0, m = 1e-30;
	FILE *f;
	int rv = -1;

	snprintf(dst, sizeof(dst), "%s/plain", tmp);
	snprintf(p, sizeof(p), "%s/tok2.txt", tmp);
	if ((f = fopen(p, "w")) != NULL) {
		for (int i = 8; i < 16; i++)
			fprintf(f, "%d ", toks[i]);
		fclose(f);
	}
	if (sh("%s -q --dtype f32 --segment-size 8 %s/src_llama %s", CONVERT,
	    tmp, dst) == 0 &&
	    sh("%s --model %s --tokens %s/tok.txt --output logits --out "
	    "%s/plain_e.npy", RUN, dst, tmp, tmp) == 0 &&
	    sh("%s %s %s/src_llama %s %s/plain_t.npy --segment-size 1000",
	    PYTHON, CONVERT_REF, tmp, p, tmp) == 0) {
		char err[256];
		snprintf(p, sizeof(p), "%s/plain_e.npy", tmp);
		if (npy_read(p, &a, &ra, &ca, err, sizeof(err)) == 0) {
			snprintf(p, sizeof(p), "%s/plain_t.npy", tmp);
			if (npy_read(p, &b, &rb, &cb, err, sizeof(err)) == 0 &&
			    ra == NTOK && rb == 8 && ca == cb)
				rv = 0;
		}
	}
	for (size_t i = 0; rv == 0 && i < 8 * cb; i++) {
		d = fmax(d, fabs((double)a[8 * ca + i] - b[i]));
		m = fmax(m, fabs((double)b[i]));
	}
	ok(rv == 0 && d / m <= CV_TOL, "gate -100: segment 2 equals the plain "
	    "model on its tokens alone (max rel %.2g)", rv == 0 ? d / m : -1);
	free(a);
	free(b);
}

/* dtype_of returns the dtype of tensor name in the converted dir, or -1. */
static int
dtype_of(const struct eng_model *m, const char *name)
{
	const struct eng_tensor *t = eng_model_find(m, name);
	return (t == NULL ? -1 : (int)t->dtype);
}

static void
test_quant(void)
{
	char dst[600], err[512];
	struct eng_model *m = NULL;
	double r;

	/* q8_0 projections stay close to the f32 source; the tolerance is
	 * the format's, not fp32's. */
	r = round_trip("llama", "--dtype q8_0 --segment-size 8 --gate-init 0.5",
	    "--segment-size 8 --gate-init 0.5");
	ok(r >= 0 && r <= 2e-2, "q8_0 conversion within 2e-2 of f32 PyTorch "
	    "(max rel %.2g)", r);
	snprintf(dst, sizeof(dst), "%s/q4", tmp);
	if (sh("%s -q --dtype q4 --segment-size 8 %s/src_llama3 %s", CONVERT,
	    tmp, dst) == 0 && eng_model_load(dst, &m, err, sizeof(err)) == 0) {
		ok(dtype_of(m, "model.layers.0.mlp.up_proj.weight") ==
		    ENG_Q4_0 && dtype_of(m, "model.layers.1.self_attn."
		    "o_proj.weight") == ENG_Q4_0 &&
		    dtype_of(m, "model.embed_tokens.weight") == ENG_BF16 &&
		    dtype_of(m, "model.norm.weight") == ENG_F32 &&
		    dtype_of(m, "model.layers.0.self_attn.gate") == ENG_F32,
		    "q4 of a bf16 source: projections Q4_0, embedding kept "
		    "bf16, norms and gates f32");
		eng_model_free(m);
	} else {
		ok(0, "q4 conversion loads");
	}
}

/* count_partials counts DST.partial-* entries left in tmp. */
static int
count_partials(void)
{
	DIR *d = opendir(tmp);
	struct dirent *e;
	int n = 0;

	while (d != NULL && (e = readdir(d)) != NULL)
		if (strstr(e->d_name, ".partial-") != NULL)
			n++;
	if (d != NULL)
		closedir(d);
	return (n);
}

static void
set_kv2(cJSON *r, void *arg)
{
	(void)arg;
	cJSON_ReplaceItemInObject(r, "num_key_value_heads",
	    cJSON_CreateNumber(2));
}

static void
set_rope_scaling(cJSON *r, void *arg)
{
	cJSON *o = cJSON_CreateObject();
	(void)arg;
	cJSON_AddStringToObject(o, "rope_type", "llama3");
	cJSON_AddNumberToObject(o, "factor", 8);
	cJSON_ReplaceItemInObject(r, "rope_scaling", o);
}

/* as_llama relabels a Qwen2 config, so its biases meet the tensor check. */
static void
as_llama(cJSON *r, void *arg)
{
	(void)arg;
	cJSON_ReplaceItemInObject(r, "model_type", cJSON_CreateString("llama"));
}

static void
test_refusals(void)
{
	char src[600], dst[600], p[700], *data;
	size_t n;

	snprintf(dst, sizeof(dst), "%s/never", tmp);
	snprintf(src, sizeof(src), "%s/src_qwen2", tmp);
	sh("%s %s qwen2 %s", PYTHON, HF_TINY, src);
	ok(sh("%s --segment-size 8 %s %s", CONVERT, src, dst) == 1 &&
	    log_has("qwen2") && log_has("biases") && access(dst, F_OK) != 0,
	    "Qwen2 refused: q/k/v biases");
	snprintf(src, sizeof(src), "%s/src_qwen3", tmp);
	sh("%s %s qwen3 %s", PYTHON, HF_TINY, src);
	ok(sh("%s --segment-size 8 %s %s", CONVERT, src, dst) == 1 &&
	    log_has("q_norm") && access(dst, F_OK) != 0,
	    "Qwen3 refused: q/k norms");

	snprintf(src, sizeof(src), "%s/src_llama", tmp);
	ok(sh("%s %s %s", CONVERT, src, dst) == 1 &&
	    log_has("--segment-size") && access(dst, F_OK) != 0,
	    "plain model without --segment-size refused");
	ok(sh("%s --segment-size 8 %s %s", CONVERT, src, tmp) == 1 &&
	    log_has("exists"), "existing DST refused");
	ok(sh("%s --segment-size 8 --layout gemma-2b-10m %s %s", CONVERT, src,
	    dst) == 1 && log_has("self_attn.gate") && access(dst, F_OK) != 0,
	    "gemma-2b-10m layout on a source without gates refused");

	/* A truncated shard: the source is refused, naming the tensor, and
	 * nothing is left behind. */
	snprintf(src, sizeof(src), "%s/src_trunc", tmp);
	sh("%s %s gemma %s", PYTHON, HF_TINY, src);
	snprintf(p, sizeof(p), "%s/model.safetensors", src);
	if (fx_read_file(p, &data, &n) == 0) {
		fx_write_file(p, data, n - 100);
		free(data);
	}
	ok(sh("%s --segment-size 8 %s %s", CONVERT, src, dst) == 1 &&
	    log_has("past end") && access(dst, F_OK) != 0 &&
	    count_partials() == 0,
	    "truncated source refused; no DST, no partial directory");

	snprintf(src, sizeof(src), "%s/src_rs", tmp);
	sh("%s %s llama %s", PYTHON, HF_TINY, src);
	snprintf(p, sizeof(p), "%s/config.json", src);
	fx_edit_json(p, set_rope_scaling, NULL);
	ok(sh("%s --segment-size 8 %s %s", CONVERT, src, dst) == 1 &&
	    log_has("rope_scaling") && access(dst, F_OK) != 0,
	    "rope_scaling (Llama 3.1+) refused");

	snprintf(src, sizeof(src), "%s/src_qwen2", tmp);
	snprintf(p, sizeof(p), "%s/config.json", src);
	fx_edit_json(p, as_llama, NULL);
	ok(sh("%s --segment-size 8 %s %s", CONVERT, src, dst) == 1 &&
	    log_has("self_attn.q_proj.bias") && log_has("biases") &&
	    access(dst, F_OK) != 0,
	    "a bias tensor is refused by name whatever model_type says");

	/* A config that disagrees with the tensors is caught by the engine's
	 * loader after everything was written: the partial directory goes. */
	snprintf(src, sizeof(src), "%s/src_kv", tmp);
	sh("%s %s gemma %s", PYTHON, HF_TINY, src);
	snprintf(p, sizeof(p), "%s/config.json", src);
	fx_edit_json(p, set_kv2, NULL);
	ok(sh("%s --segment-size 8 %s %s", CONVERT, src, dst) == 1 &&
	    log_has("k_proj.weight: shape") && access(dst, F_OK) != 0 &&
	    count_partials() == 0,
	    "config/tensor mismatch found after writing: tensor named, "
	    "partial directory removed");
}

int
main(void)
{
	char probe[700];

	if (fx_tmpdir(tmp, sizeof(tmp)) != 0) {
		tap_plan(1);
		ok(0, "make a temporary directory");
		return (tap_done());
	}
	snprintf(probe, sizeof(probe), "%s -c 'import torch, numpy' "
	    ">/dev/null 2>&1", PYTHON);
	if (system(probe) != 0) {
		tap_plan_skip_all("python3 cannot import torch and numpy");
		fx_rmtree(tmp);
		return (0);
	}
	gt_env();
	if (!gt_have_device()) {
		tap_plan_skip_all("no Vulkan device");
		fx_rmtree(tmp);
		return (0);
	}
	tap_plan(19);
	write_tokens();
	test_layouts();
	test_plain();
	test_quant();
	test_refusals();
	fx_rmtree(tmp);
	return (tap_done());
}
