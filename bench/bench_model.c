/*
 * bench_model.c - bench-model: prefill and decode throughput of the engine on
 * one model, one stream at a time.
 *
 * Protocol (bench/torch_infini.py bench follows the same one, so the two can
 * be compared line by line):
 *   - one untimed warm-up: a fresh stream, min(P, segment_size) prompt
 *     tokens (a segment fills and compresses), then min(D, 4) decode steps
 *     (pipelines compile on their first dispatch);
 *   - per repetition: a fresh stream; prefill = P prompt tokens in ONE
 *     eng_run with ENG_OUT_LAST (final hidden of the last token, no logits);
 *     then D decode steps, each one token per eng_run with
 *     ENG_OUT_LAST_LOGITS (logits copied back to the host), timed one by one;
 *   - prefill tok/s = P / median(prefill time); decode tok/s = 1 /
 *     median(per-token time over all repetitions).
 * Token ids are a fixed pseudo-random sequence (an LCG shared with
 * torch_infini.py), not sampled: the sampler is not what is measured.
 *
 * Output: a markdown table row and a "RESULT key=value ..." line for scripts.
 * Does not check correctness (tests/ and torch_infini.py check do that).
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "engine/engine.h"
#include "engine/model.h"
#include "infini_err.h"

static void
usage(FILE *f)
{
	fprintf(f,
"usage: bench-model --model DIR [options]\n"
"\n"
"Measures prefill and decode tokens/s of the engine on one stream.\n"
"\n"
"  --model DIR      model directory (required)\n"
"  --prefill P      prompt tokens pushed in one eng_run (default 512)\n"
"  --decode D       decode steps, one token per eng_run (default 32)\n"
"  --reps R         timed repetitions, each on a fresh stream (default 3)\n"
"  --batch B        engine max_batch, rows per submission (default: engine's)\n"
"  --device SEL     Vulkan device index or name substring\n"
"                   (default $INFINI_DEVICE, else the best device)\n"
"  --profile        print per-op device time to stderr at the end\n"
"  -h, --help       this text\n");
}

/* bench_tokens fills t[0..n) with ids < vocab; the same LCG as
 * torch_infini.py's bench_tokens. */
static void
bench_tokens(int32_t *t, int n, int vocab, uint64_t seed)
{
	uint64_t s = seed;
	for (int i = 0; i < n; i++) {
		s = s * 6364136223846793005ULL + 1442695040888963407ULL;
		t[i] = (int32_t)((s >> 33) % (uint64_t)vocab);
	}
}

static uint64_t
count_params(const struct eng_model *m)
{
	const struct eng_config *c = &m->cfg;
	uint64_t n = eng_tensor_numel(m->embed) + eng_tensor_numel(m->norm);
	if (!c->tie_word_embeddings)
		n += eng_tensor_numel(m->lm_head);
	for (int l = 0; l < c->n_layers; l++) {
		const struct eng_layer *y = &m->layers[l];
		const struct eng_tensor *t[] = { y->attn_norm, y->wq, y->wk,
		    y->wv, y->wo, y->gate, y->mlp_norm, y->w_gate, y->w_up,
		    y->w_down };
		for (size_t k = 0; k < sizeof(t) / sizeof(t[0]); k++)
			n += eng_tensor_numel(t[k]);
	}
	return (n);
}

static const char *
dtype_name(enum eng_dtype d)
{
	static const char *const n[] = { "f32", "f16", "bf16", "q8_0", "q4_0" };
	return (d >= 0 && d < ENG_DTYPE_COUNT ? n[d] : "?");
}

/* one_rep runs a fresh stream: prefill (time into *pre), then ndec decode
 * steps (times into dec[0..ndec)).  Returns 0 or an INFINI_E* code. */
static int
one_rep(struct eng *e, const int32_t *prompt, int P, const int32_t *dtok,
    int ndec, float *hbuf, float *lbuf, double *pre, double *dec, char *err,
    size_t errlen)
{
	int slot, rv;

	if ((rv = eng_stream_alloc(e, &slot)) != 0) {
		snprintf(err, errlen, "eng_stream_alloc: %s",
		    infini_strerror(rv));
		return (rv);
	}
	struct eng_job j = { .slot = slot, .n = P, .tokens = prompt,
	    .out = ENG_OUT_LAST, .result = hbuf };
	double t0 = bench_now();
	if ((rv = eng_run(e, &j, 1, err, errlen)) != 0)
		goto out;
	*pre = bench_now() - t0;
	for (int i = 0; i < ndec; i++) {
		struct eng_job d = { .slot = slot, .n = 1, .tokens = dtok + i,
		    .out = ENG_OUT_LAST_LOGITS, .result = lbuf };
		t0 = bench_now();
		if ((rv = eng_run(e, &d, 1, err, errlen)) != 0)
			goto out;
		dec[i] = bench_now() - t0;
	}
out:
	eng_stream_free(e, slot);
	return (rv);
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "model", 1, 0, 'm' }, { "prefill", 1, 0, 'p' },
		{ "decode", 1, 0, 'd' }, { "reps", 1, 0, 'r' },
		{ "batch", 1, 0, 'b' }, { "device", 1, 0, 'D' },
		{ "profile", 0, 0, 'P' }, { "help", 0, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	const char *dir = NULL, *device = getenv("INFINI_DEVICE");
	int P = 512, D = 32, R = 3, batch = 0, opt, rv = 1;
	bool profile = false;
	struct eng_model *m = NULL;
	struct eng *e = NULL;
	int32_t *prompt = NULL, *dtok = NULL;
	float *hbuf = NULL, *lbuf = NULL;
	double *pre = NULL, *dec = NULL, scratch;
	char err[512] = "";

	while ((opt = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (opt) {
		case 'm': dir = optarg; break;
		case 'p': P = atoi(optarg); break;
		case 'd': D = atoi(optarg); break;
		case 'r': R = atoi(optarg); break;
		case 'b': batch = atoi(optarg); break;
		case 'D': device = optarg; break;
		case 'P': profile = true; break;
		case 'h': usage(stdout); return (0);
		default: usage(stderr); return (2);
		}
	}
	if (optind != argc || dir == NULL || P < 1 || D < 1 || R < 1 ||
	    batch < 0) {
		fprintf(stderr, "bench-model: need --model DIR and positive "
		    "--prefill, --decode, --reps (see --help)\n");
		return (2);
	}
	double load0 = bench_now();
	if (eng_model_load(dir, &m, err, sizeof(err)) != 0) {
		fprintf(stderr, "bench-model: model %s: %s\n", dir, err);
		return (1);
	}
	const struct eng_config *c = &m->cfg;
	struct eng_opts eo = { .device = device, .max_streams = 1,
	    .max_batch = batch, .profile = profile, .matmul_variant = -1 };
	if (eng_open(m, &eo, &e, err, sizeof(err)) != 0) {
		fprintf(stderr, "bench-model: %s\n", err);
		goto out;
	}
	double load_s = bench_now() - load0;
	prompt = malloc(sizeof(*prompt) * (size_t)P);
	dtok = malloc(sizeof(*dtok) * (size_t)D);
	hbuf = malloc(sizeof(*hbuf) * (size_t)c->hidden_size);
	lbuf = malloc(sizeof(*lbuf) * (size_t)c->vocab_size);
	pre = malloc(sizeof(*pre) * (size_t)R);
	dec = malloc(sizeof(*dec) * (size_t)R * D);
	if (!prompt || !dtok || !hbuf || !lbuf || !pre || !dec) {
		fprintf(stderr, "bench-model: out of memory\n");
		goto out;
	}
	bench_tokens(prompt, P, c->vocab_size, 1);
	bench_tokens(dtok, D, c->vocab_size, 2);

	/* Warm-up: compiles the prefill and decode pipelines, untimed. */
	if (one_rep(e, prompt, P < c->segment_size ? P : c->segment_size,
	    dtok, D < 4 ? D : 4, hbuf, lbuf, &scratch,
	    dec, err, sizeof(err)) != 0)
		goto fail_run;
	for (int r = 0; r < R; r++)
		if (one_rep(e, prompt, P, dtok, D, hbuf, lbuf, &pre[r],
		    dec + (size_t)r * D, err, sizeof(err)) != 0)
			goto fail_run;

	double pm = bench_median(pre, (size_t)R);
	double dm = bench_median(dec, (size_t)R * D);
	unsigned long long np = (unsigned long long)count_params(m);
	uint64_t wbytes, sbytes, abytes;
	eng_device_bytes(e, &wbytes, &sbytes, &abytes);
	printf("| backend | params | prefill P | prefill ms (median) | "
	    "prefill tok/s | decode D | decode ms/token (median) | "
	    "decode tok/s |\n");
	printf("|---|---|---|---|---|---|---|---|\n");
	printf("| engine %s (%s) | %llu | %d | %.1f | %.1f | %d | %.2f | %.1f |\n",
	    eng_device_name(e), dtype_name(m->layers[0].wq->dtype), np, P,
	    pm * 1e3,
	    P / pm, D, dm * 1e3, 1.0 / dm);
	printf("RESULT backend=engine params=%llu prefill=%d decode=%d reps=%d "
	    "prefill_tok_s=%.3f decode_tok_s=%.3f prefill_ms=%.3f "
	    "decode_ms=%.4f weights_mib=%.1f dtype=%s load_s=%.2f\n", np, P, D, R,
	    P / pm, 1.0 / dm, pm * 1e3, dm * 1e3, (double)wbytes / (1 << 20),
	    dtype_name(m->layers[0].wq->dtype), load_s);
	if (profile)
		eng_profile_print(e, stderr);
	rv = 0;
	goto out;
fail_run:
	fprintf(stderr, "bench-model: %s\n", err);
out:
	eng_close(e);
	eng_model_free(m);
	free(prompt);
	free(dtok);
	free(hbuf);
	free(lbuf);
	free(pre);
	free(dec);
	return (rv);
}
