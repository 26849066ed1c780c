/*
 * bench_tok.c - the tokenizer alone: load time of a tokenizer.json, the
 * resident memory it adds, and single-thread encode MB/s over a corpus
 * (a JSON array of documents, tools/tok-oracle/gen_text.py).  Prints one
 * line of key=value pairs; bench/run_tok.sh runs it beside Hugging Face
 * tokenizers (bench/tok_hf.js) and prints the table.
 *
 *   bench-tok TOKENIZER.json DOCS.json [REPEAT]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "tok/tok.h"

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (ts.tv_sec + ts.tv_nsec * 1e-9);
}

/* rss_bytes: the process's resident set now (/proc/self/statm). */
static long
rss_bytes(void)
{
	long pages = 0, res = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f != NULL) {
		if (fscanf(f, "%ld %ld", &pages, &res) != 2)
			res = 0;
		fclose(f);
	}
	return (res * sysconf(_SC_PAGESIZE));
}

int
main(int argc, char **argv)
{
	struct tok *t = NULL;
	char err[512] = "", *text;
	cJSON *docs, *d;
	FILE *f;
	long n;
	int repeat = argc > 3 ? atoi(argv[3]) : 3;

	if (argc < 3) {
		fprintf(stderr, "usage: bench-tok TOKENIZER.json DOCS.json "
		    "[REPEAT]\n");
		return (2);
	}
	if ((f = fopen(argv[2], "rb")) == NULL)
		return (1);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	text = malloc((size_t)n + 1);
	if (text == NULL || fread(text, 1, (size_t)n, f) != (size_t)n)
		return (1);
	fclose(f);
	docs = cJSON_ParseWithLength(text, (size_t)n);
	free(text);
	if (docs == NULL)
		return (1);

	long rss0 = rss_bytes();
	double t0 = now_s();
	if (tok_load_file(argv[1], &t, err, sizeof(err)) != 0) {
		fprintf(stderr, "bench-tok: %s\n", err);
		return (1);
	}
	double load = now_s() - t0;
	long rss1 = rss_bytes();

	/* Best of repeat passes over the whole corpus. */
	double best = 1e30;
	size_t bytes = 0, ntok = 0;
	for (int r = 0; r < repeat; r++) {
		double a = now_s();
		bytes = ntok = 0;
		cJSON_ArrayForEach(d, docs) {
			int32_t *ids;
			size_t k, len = strlen(d->valuestring);
			if (tok_encode(t, d->valuestring, len, 0, &ids, &k, err,
			    sizeof(err)) != 0) {
				fprintf(stderr, "bench-tok: %s\n", err);
				return (1);
			}
			free(ids);
			bytes += len;
			ntok += k;
		}
		double el = now_s() - a;
		if (el < best)
			best = el;
	}
	printf("impl=infinid load_s=%.3f rss_mb=%.1f encode_mb_s=%.2f "
	    "bytes=%zu tokens=%zu\n", load, (rss1 - rss0) / 1048576.0,
	    bytes / best / 1e6, bytes, ntok);
	tok_free(t);
	cJSON_Delete(docs);
	return (0);
}
