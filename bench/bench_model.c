/*
 * bench_model.c - bench-model: prefill and decode throughput of the engine on
 * one model, one stream at a time or S streams batched (--streams).
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
 * With --streams S, each repetition opens S fresh streams (stream s's
 * tokens come from seeds 1 + 1000 s and 2 + 1000 s), prefills them in one
 * eng_run of S jobs, and each decode step is one eng_run of S one-token
 * jobs, so every weight read serves S rows; tok/s are aggregates (S P /
 * prefill time, S / step time).
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
"  --streams S      streams decoding together, batched (default 1)\n"
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

/* one_rep runs S fresh streams: prefill all of them in one eng_run (time
 * into *pre), then ndec decode steps of one token each, all S streams per
 * eng_run (times into dec[0..ndec)).  prompt holds S rows of P tokens,
 * dtok S rows of ndec (row stride dstride); hbuf S hidden rows, lbuf S
 * logits rows.  Returns 0 or an INFINI_E* code. */
static int
one_rep(struct eng *e, int S, const int32_t *prompt, int P,
    const int32_t *dtok, int dstride, int ndec, float *hbuf, float *lbuf,
    struct eng_job *jobs, int *slots, double *pre, double *dec, char *err,
    size_t errlen)
{
	const struct eng_config *c = eng_config(e);
	int rv = 0, n = 0;

	for (; n < S; n++)
		if ((rv = eng_stream_alloc(e, &slots[n])) != 0) {
			snprintf(err, errlen, "eng_stream_alloc: %s",
			    infini_strerror(rv));
			goto out;
		}
	for (int s = 0; s < S; s++)
		jobs[s] = (struct eng_job){ .slot = slots[s], .n = P,
		    .tokens = prompt + (size_t)s * P, .out = ENG_OUT_LAST,
		    .result = hbuf + (size_t)s * c->hidden_size };
	double t0 = bench_now();
	if ((rv = eng_run(e, jobs, S, err, errlen)) != 0)
		goto out;
	*pre = bench_now() - t0;
	for (int i = 0; i < ndec; i++) {
		for (int s = 0; s < S; s++)
			jobs[s] = (struct eng_job){ .slot = slots[s], .n = 1,
			    .tokens = dtok + (size_t)s * dstride + i,
			    .out = ENG_OUT_LAST_LOGITS,
			    .result = lbuf + (size_t)s * c->vocab_size };
		t0 = bench_now();
		if ((rv = eng_run(e, jobs, S, err, errlen)) != 0)
			goto out;
		dec[i] = bench_now() - t0;
	}
out:
	while (n > 0)
		eng_stream_free(e, slots[--n]);
	return (rv);
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "model", 1, 0, 'm' }, { "prefill", 1, 0, 'p' },
		{ "decode", 1, 0, 'd' }, { "reps", 1, 0, 'r' },
		{ "batch", 1, 0, 'b' }, { "device", 1, 0, 'D' },
		{ "streams", 1, 0, 'S' },
		{ "profile", 0, 0, 'P' }, { "help", 0, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	const char *dir = NULL, *device = getenv("INFINI_DEVICE");
	int P = 512, D = 32, R = 3, S = 1, batch = 0, opt, rv = 1;
	bool profile = false;
	struct eng_model *m = NULL;
	struct eng *e = NULL;
	int32_t *prompt = NULL, *dtok = NULL;
	float *hbuf = NULL, *lbuf = NULL;
	struct eng_job *jobs = NULL;
	int *slots = NULL;
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
		case 'S': S = atoi(optarg); break;
		case 'P': profile = true; break;
		case 'h': usage(stdout); return (0);
		default: usage(stderr); return (2);
		}
	}
	if (optind != argc || dir == NULL || P < 1 || D < 1 || R < 1 ||
	    S < 1 || batch < 0) {
		fprintf(stderr, "bench-model: need --model DIR and positive "
		    "--prefill, --decode, --reps, --streams (see --help)\n");
		return (2);
	}
	double load0 = bench_now();
	if (eng_model_load(dir, &m, err, sizeof(err)) != 0) {
		fprintf(stderr, "bench-model: model %s: %s\n", dir, err);
		return (1);
	}
	const struct eng_config *c = &m->cfg;
	struct eng_opts eo = { .device = device, .max_streams = S,
	    .max_batch = batch, .profile = profile };
	if (eng_open(m, &eo, &e, err, sizeof(err)) != 0) {
		fprintf(stderr, "bench-model: %s\n", err);
		goto out;
	}
	double load_s = bench_now() - load0;
	prompt = malloc(sizeof(*prompt) * (size_t)S * P);
	dtok = malloc(sizeof(*dtok) * (size_t)S * D);
	hbuf = malloc(sizeof(*hbuf) * (size_t)S * c->hidden_size);
	lbuf = malloc(sizeof(*lbuf) * (size_t)S * c->vocab_size);
	pre = malloc(sizeof(*pre) * (size_t)R);
	dec = malloc(sizeof(*dec) * (size_t)R * D);
	jobs = malloc(sizeof(*jobs) * (size_t)S);
	slots = malloc(sizeof(*slots) * (size_t)S);
	if (!prompt || !dtok || !hbuf || !lbuf || !pre || !dec || !jobs ||
	    !slots) {
		fprintf(stderr, "bench-model: out of memory\n");
		goto out;
	}
	for (int s = 0; s < S; s++) {
		bench_tokens(prompt + (size_t)s * P, P, c->vocab_size,
		    1 + 1000 * (uint64_t)s);
		bench_tokens(dtok + (size_t)s * D, D, c->vocab_size,
		    2 + 1000 * (uint64_t)s);
	}

	/* Warm-up: compiles the prefill and decode pipelines, untimed. */
	if (one_rep(e, S, prompt, P < c->segment_size ? P : c->segment_size,
	    dtok, D, D < 4 ? D : 4, hbuf, lbuf, jobs, slots, &scratch,
	    dec, err, sizeof(err)) != 0)
		goto fail_run;
	for (int r = 0; r < R; r++)
		if (one_rep(e, S, prompt, P, dtok, D, D, hbuf, lbuf, jobs,
		    slots, &pre[r], dec + (size_t)r * D, err,
		    sizeof(err)) != 0)
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
	    (double)S * P / pm, D, dm * 1e3, S / dm);
	printf("RESULT backend=engine params=%llu prefill=%d decode=%d reps=%d "
	    "streams=%d prefill_tok_s=%.3f decode_tok_s=%.3f prefill_ms=%.3f "
	    "decode_ms=%.4f weights_mib=%.1f dtype=%s load_s=%.2f\n", np, P, D,
	    R, S, (double)S * P / pm, S / dm, pm * 1e3, dm * 1e3,
	    (double)wbytes / (1 << 20), dtype_name(m->layers[0].wq->dtype),
	    load_s);
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
	free(jobs);
	free(slots);
	return (rv);
}
