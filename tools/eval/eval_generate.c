/*
 * eval_generate.c - greedy generation for many prompts through the engine in
 * one process (tools/eval/eval.py's pass-key trials through the engine).
 *
 *     eval-generate --model DIR [--gen N] [--streams S] PROMPTS
 *
 * PROMPTS holds one prompt per line: token ids separated by spaces.  Each
 * prompt runs in its own fresh stream (S at a time, batched into the same
 * eng_run calls, as the daemon batches streams); after its last token the
 * engine samples greedily N times (ENG_SAMPLE with temperature 0, exactly
 * infini-run --generate).  Prints one line per prompt, in order: the N
 * generated token ids.  infini-run would pay the device start-up (seconds on
 * lavapipe) once per prompt; this pays it once.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/model.h"

#define MAX_STREAMS 64
#define PUSH_CHUNK 256

struct prompt {
	int32_t *tok;
	int n;
	int at;         /* tokens pushed */
	int32_t gen[64];
	int ngen;
};

static int
read_prompts(const char *path, struct prompt **out, int *count)
{
	FILE *f = fopen(path, "r");
	struct prompt *p = NULL;
	int np = 0, cap = 0;
	char *line = NULL;
	size_t lcap = 0;

	if (f == NULL) {
		perror(path);
		return (-1);
	}
	while (getline(&line, &lcap, f) > 0) {
		int tcap = 256, n = 0;
		int32_t *t = malloc(sizeof(*t) * tcap);
		char *s = line, *e;
		for (;;) {
			long v = strtol(s, &e, 10);
			if (e == s)
				break;
			if (n == tcap)
				t = realloc(t, sizeof(*t) * (tcap *= 2));
			t[n++] = (int32_t)v;
			s = e;
		}
		if (n == 0) {
			free(t);
			continue;
		}
		if (np == cap)
			p = realloc(p, sizeof(*p) * (cap = cap ? cap * 2 : 16));
		memset(&p[np], 0, sizeof(*p));
		p[np].tok = t;
		p[np].n = n;
		np++;
	}
	free(line);
	fclose(f);
	*out = p;
	*count = np;
	return (0);
}

int
main(int argc, char **argv)
{
	const char *model = NULL, *path = NULL;
	int gen = 5, streams = 16;
	char err[512];

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--model") == 0 && i + 1 < argc)
			model = argv[++i];
		else if (strcmp(argv[i], "--gen") == 0 && i + 1 < argc)
			gen = atoi(argv[++i]);
		else if (strcmp(argv[i], "--streams") == 0 && i + 1 < argc)
			streams = atoi(argv[++i]);
		else
			path = argv[i];
	}
	if (model == NULL || path == NULL || gen < 1 || gen > 64 ||
	    streams < 1 || streams > MAX_STREAMS) {
		fprintf(stderr, "usage: eval-generate --model DIR [--gen N<=64] "
		    "[--streams S<=%d] PROMPTS\n", MAX_STREAMS);
		return (2);
	}
	struct prompt *p;
	int np;
	if (read_prompts(path, &p, &np) != 0)
		return (1);
	struct eng_model *m;
	if (eng_model_load(model, &m, err, sizeof(err)) != 0) {
		fprintf(stderr, "eval-generate: %s\n", err);
		return (1);
	}
	struct eng_opts eo = { .max_streams = streams,
	    .device = getenv("INFINI_DEVICE") };
	struct eng *e;
	if (eng_open(m, &eo, &e, err, sizeof(err)) != 0) {
		fprintf(stderr, "eval-generate: %s\n", err);
		return (1);
	}
	struct eng_sampler smp = { .temperature = 0 };
	int slot_of[MAX_STREAMS], who[MAX_STREAMS];
	struct eng_job jobs[MAX_STREAMS];
	int32_t last[MAX_STREAMS];
	int next = 0, active = 0, rv = 0;

	for (int s = 0; s < streams; s++)
		who[s] = -1;
	while ((next < np || active > 0) && rv == 0) {
		/* Fill free lanes with new prompts. */
		for (int s = 0; s < streams && next < np; s++) {
			if (who[s] >= 0)
				continue;
			if ((rv = eng_stream_alloc(e, &slot_of[s])) != 0)
				break;
			who[s] = next++;
			active++;
		}
		int nj = 0;
		for (int s = 0; s < streams; s++) {
			if (who[s] < 0)
				continue;
			struct prompt *q = &p[who[s]];
			struct eng_job *j = &jobs[nj++];
			memset(j, 0, sizeof(*j));
			j->slot = slot_of[s];
			j->out = ENG_OUT_NONE;
			if (q->at < q->n) {
				int n = q->n - q->at;
				j->n = n > PUSH_CHUNK ? PUSH_CHUNK : n;
				j->tokens = q->tok + q->at;
				q->at += j->n;
				if (q->at == q->n) {
					j->sample = &smp;
					j->token = &last[s];
				}
			} else {
				j->n = 1;
				j->tokens = &q->gen[q->ngen - 1];
				j->sample = &smp;
				j->token = &last[s];
			}
		}
		if ((rv = eng_run(e, jobs, nj, err, sizeof(err))) != 0) {
			fprintf(stderr, "eval-generate: %s\n", err);
			break;
		}
		for (int s = 0; s < streams; s++) {
			if (who[s] < 0)
				continue;
			struct prompt *q = &p[who[s]];
			if (q->at < q->n)
				continue;
			bool sampled = false;
			for (int k = 0; k < nj; k++)
				sampled |= jobs[k].slot == slot_of[s] &&
				    jobs[k].sample != NULL;
			if (!sampled)
				continue;
			q->gen[q->ngen++] = last[s];
			if (q->ngen == gen) {
				eng_stream_free(e, slot_of[s]);
				who[s] = -1;
				active--;
			}
		}
	}
	for (int i = 0; i < np && rv == 0; i++) {
		for (int k = 0; k < p[i].ngen; k++)
			printf("%s%d", k ? " " : "", p[i].gen[k]);
		printf("\n");
	}
	eng_close(e);
	eng_model_free(m);
	for (int i = 0; i < np; i++)
		free(p[i].tok);
	free(p);
	return (rv != 0);
}
