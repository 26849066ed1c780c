/*
 * bench_quant.c - bench-quant: how far a quantized model's logits are from
 * the same model's f32 logits, token by token.
 *
 * Both model directories are opened in one process; the same tokens (the
 * bytes of a text file, cut to --tokens N) are pushed into one stream of
 * each, a segment at a time, with every input's logits returned.  Reported:
 * max and mean |logit_q - logit_ref| over all tokens and vocabulary, and
 * top-1 agreement (the fraction of tokens whose argmax is the same).
 * Output: a markdown table row and a RESULT line for scripts.
 */
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/model.h"
#include "infini_err.h"

static int
argmax(const float *x, int n)
{
	int b = 0;
	for (int i = 1; i < n; i++)
		if (x[i] > x[b])
			b = i;
	return (b);
}

static int
open_one(const char *dir, struct eng_model **m, struct eng **e)
{
	struct eng_opts eo = { .max_streams = 1,
	    .device = getenv("INFINI_DEVICE") };
	char err[512];

	if (eng_model_load(dir, m, err, sizeof(err)) != 0 ||
	    eng_open(*m, &eo, e, err, sizeof(err)) != 0) {
		fprintf(stderr, "bench-quant: %s: %s\n", dir, err);
		return (1);
	}
	return (0);
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "ref", 1, 0, 'r' }, { "model", 1, 0, 'm' },
		{ "text", 1, 0, 't' }, { "tokens", 1, 0, 'n' },
		{ "help", 0, 0, 'h' }, { 0, 0, 0, 0 },
	};
	const char *ref = NULL, *dir = NULL, *text = NULL;
	struct eng_model *mr = NULL, *mq = NULL;
	struct eng *er = NULL, *eq = NULL;
	int32_t *tok = NULL;
	float *lr = NULL, *lq = NULL;
	int N = 10000, opt, rv = 1, sr, sq;
	double dmax = 0, dsum = 0;
	long agree = 0;
	char err[512];

	while ((opt = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (opt) {
		case 'r': ref = optarg; break;
		case 'm': dir = optarg; break;
		case 't': text = optarg; break;
		case 'n': N = atoi(optarg); break;
		default:
			fprintf(opt == 'h' ? stdout : stderr, "usage: bench-quant "
			    "--ref F32_DIR --model QUANT_DIR --text FILE "
			    "[--tokens N (10000)]\n");
			return (opt == 'h' ? 0 : 2);
		}
	}
	if (ref == NULL || dir == NULL || text == NULL || N < 1) {
		fprintf(stderr, "bench-quant: need --ref, --model, --text\n");
		return (2);
	}
	FILE *f = fopen(text, "rb");
	if (f == NULL || (tok = malloc(sizeof(*tok) * (size_t)N)) == NULL) {
		fprintf(stderr, "bench-quant: %s: cannot read\n", text);
		return (1);
	}
	int n = 0, ch;
	while (n < N && (ch = fgetc(f)) != EOF)
		tok[n++] = ch;
	fclose(f);
	N = n;
	if (open_one(ref, &mr, &er) != 0 || open_one(dir, &mq, &eq) != 0)
		goto out;
	const int V = mr->cfg.vocab_size, S = mr->cfg.segment_size;
	if (mq->cfg.vocab_size != V) {
		fprintf(stderr, "bench-quant: vocabularies differ\n");
		goto out;
	}
	lr = malloc(sizeof(float) * (size_t)S * V);
	lq = malloc(sizeof(float) * (size_t)S * V);
	if (lr == NULL || lq == NULL || eng_stream_alloc(er, &sr) != 0 ||
	    eng_stream_alloc(eq, &sq) != 0)
		goto out;
	for (int at = 0; at < N; at += S) {
		int k = N - at < S ? N - at : S;
		struct eng_job jr = { .slot = sr, .n = k, .tokens = tok + at,
		    .out = ENG_OUT_LOGITS, .result = lr };
		struct eng_job jq = jr;
		jq.slot = sq;
		jq.result = lq;
		if (eng_run(er, &jr, 1, err, sizeof(err)) != 0 ||
		    eng_run(eq, &jq, 1, err, sizeof(err)) != 0) {
			fprintf(stderr, "bench-quant: %s\n", err);
			goto out;
		}
		for (int i = 0; i < k; i++) {
			const float *a = lr + (size_t)i * V, *b = lq + (size_t)i * V;
			for (int v = 0; v < V; v++) {
				double d = fabs((double)a[v] - b[v]);
				dmax = fmax(dmax, d);
				dsum += d;
			}
			agree += argmax(a, V) == argmax(b, V);
		}
	}
	printf("| %s | %d | %.4f | %.5f | %.2f%% |\n", dir, N, dmax,
	    dsum / ((double)N * V), 100.0 * (double)agree / N);
	printf("RESULT tokens=%d max_abs=%.6f mean_abs=%.7f top1=%.5f\n", N,
	    dmax, dsum / ((double)N * V), (double)agree / N);
	rv = 0;
out:
	free(tok);
	free(lr);
	free(lq);
	if (er != NULL)
		eng_close(er);
	if (eq != NULL)
		eng_close(eq);
	eng_model_free(mr);
	eng_model_free(mq);
	return (rv);
}
