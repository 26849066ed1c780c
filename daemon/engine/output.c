/*
 * output.c - the one owner of an output's shape and pooling.
 *
 * A request's inputs may run as several eng_run jobs (the daemon serves a
 * long Push in slices so that it holds no other stream back; infini-run
 * feeds in chunks).  eng_output says how large the output of a kind is,
 * where each job's rows land, and keeps the mean's running sum in double
 * precision across the jobs, so that the mean is divided exactly once, at
 * the end, whatever the slicing.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "infini_err.h"

void
eng_output_shape(const struct eng_config *c, enum eng_out kind, int n,
    int *rows, int *cols)
{
	*rows = 0;
	*cols = 0;
	switch (kind) {
	case ENG_OUT_EMBED: *rows = n; *cols = c->hidden_size; break;
	case ENG_OUT_MEAN:
	case ENG_OUT_LAST: *rows = 1; *cols = c->hidden_size; break;
	case ENG_OUT_LOGITS: *rows = n; *cols = c->vocab_size; break;
	case ENG_OUT_LAST_LOGITS: *rows = 1; *cols = c->vocab_size; break;
	default: break;
	}
}

int
eng_output_init(struct eng_output *o, const struct eng_config *c,
    enum eng_out kind, int n)
{
	size_t len;

	memset(o, 0, sizeof(*o));
	o->kind = kind;
	o->n = n;
	eng_output_shape(c, kind, n, &o->rows, &o->cols);
	len = (size_t)o->rows * (size_t)o->cols;
	if ((len > 0 && (o->data = calloc(len, sizeof(float))) == NULL) ||
	    (kind == ENG_OUT_MEAN &&
	    (o->sum = calloc((size_t)o->cols, sizeof(double))) == NULL)) {
		eng_output_fini(o);
		return (INFINI_ENOMEM);
	}
	return (0);
}

void
eng_output_fini(struct eng_output *o)
{
	free(o->data);
	free(o->sum);
	memset(o, 0, sizeof(*o));
}

void
eng_output_job(const struct eng_output *o, int done, struct eng_job *j)
{
	bool last = done + j->n >= o->n;

	j->out = o->kind;
	j->result = o->data;
	j->sum = NULL;
	switch (o->kind) {
	case ENG_OUT_EMBED:
	case ENG_OUT_LOGITS:
		j->result = o->data + (size_t)done * (size_t)o->cols;
		break;
	case ENG_OUT_MEAN:
		j->result = NULL;
		j->sum = o->sum;
		break;
	case ENG_OUT_LAST:
	case ENG_OUT_LAST_LOGITS:
		/* Only the job that holds the last input has it. */
		if (!last) {
			j->out = ENG_OUT_NONE;
			j->result = NULL;
		}
		break;
	default:
		j->result = NULL;
		break;
	}
}

void
eng_output_finish(struct eng_output *o)
{
	if (o->kind != ENG_OUT_MEAN || o->n <= 0)
		return;
	for (int k = 0; k < o->cols; k++)
		o->data[k] = (float)(o->sum[k] / o->n);
}
