/*
 * streams.c - the stream table (lookup by ID, ownership checks, unlinking)
 * and the lifetime of the items and generations queued on streams.
 * Streams are a few thousand at most (max_streams), and every scheduler turn
 * walks them anyway, so a list is enough.  All functions expect d->mu held.
 *
 * Items are answered through the ops their queuer gave them (state.h), so
 * the scheduler and the snapshot thread finish requests with an error code
 * or a typed result and never see how the answer travels.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"

struct stream *
strm_find(struct infinid *d, const char *id)
{
	for (struct stream *s = d->streams; s != NULL; s = s->next)
		if (strcmp(s->id, id) == 0)
			return (s);
	return (NULL);
}

/* strm_may_use: the owner, root and the admin group may use a stream. */
bool
strm_may_use(struct infinid *d, uint32_t uid, uint32_t owner)
{
	(void)d;
	return (uid == owner || uid == 0);
}

int
strm_new(struct infinid *d, const char *id, uint32_t owner,
    struct stream **out)
{
	struct stream *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return (INFINI_ENOMEM);
	snprintf(s->id, sizeof(s->id), "%s", id);
	spill_file_for(id, s->file);
	s->slot = -1;
	s->owner = owner;
	s->last_used_ms = now_ms();
	s->next = d->streams;
	d->streams = s;
	__atomic_fetch_add(&d->nstreams, 1, __ATOMIC_RELAXED);
	*out = s;
	return (0);
}

int
strm_open(struct infinid *d, const char *id, uint32_t owner,
    struct stream **out, char *err, size_t errlen)
{
	char file[WIRE_ID_MAX + 8];
	struct stream *s;
	long mine = 0;

	snprintf(err, errlen, "%s", infini_strerror(INFINI_EEXIST));
	if (d->nstreams >= d->cfg.max_streams) {
		snprintf(err, errlen, "%d of %ld streams open (max_streams)",
		    d->nstreams, d->cfg.max_streams);
		return (INFINI_EFULL);
	}
	spill_file_for(id, file);
	for (s = d->streams; s != NULL; s = s->next) {
		if (strcmp(s->file, file) == 0)
			return (INFINI_EEXIST);
		mine += s->owner == owner;
	}
	if (owner != 0 && mine >= d->cfg.max_streams_per_uid) {
		snprintf(err, errlen, "you own %ld streams "
		    "(max_streams_per_uid %ld): close some first", mine,
		    d->cfg.max_streams_per_uid);
		return (INFINI_EFULL);
	}
	return (strm_new(d, id, owner, out));
}

void
strm_free(struct infinid *d, struct stream *s)
{
	strm_unlink(d, s);
	free(s);
}

void
strm_unlink(struct infinid *d, struct stream *s)
{
	for (struct stream **pp = &d->streams; *pp != NULL; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			__atomic_fetch_sub(&d->nstreams, 1, __ATOMIC_RELAXED);
			return;
		}
}

void
strm_wake(struct infinid *d)
{
	d->wakes++;
	pthread_cond_signal(&d->cv);
}

int64_t
strm_pos(struct infinid *d, const struct stream *s)
{
	return (s->slot >= 0 ? eng_stream_pos(d->eng, s->slot) : s->pos);
}

struct item *
item_new(enum item_kind k, uint32_t uid, uint32_t pipe,
    const struct item_ops *ops, struct rpc_call *call)
{
	struct item *it = calloc(1, sizeof(*it));

	if (it != NULL) {
		it->kind = k;
		it->uid = uid;
		it->pipe = pipe;
		it->ops = ops;
		it->call = call;
	}
	return (it);
}

void
item_answer(struct infinid *d, struct item *it, int err,
    const struct item_result *res, const char *fmt, ...)
{
	char msg[768] = "";
	va_list ap;

	if (it->ops == NULL)
		return;
	if (err != 0 && fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
	}
	it->ops->answer(d, it, err, msg, err == 0 ? res : NULL);
}

bool
item_gone(const struct item *it)
{
	return (it->ops != NULL && it->ops->gone(it));
}

void
item_drop(struct item *it)
{
	if (it->ops != NULL)
		it->ops->drop(it);
}

void
item_free(struct item *it)
{
	if (it == NULL)
		return;
	acct_release(it);
	free(it->tokens);
	free(it->vectors);
	eng_output_fini(&it->out);
	free(it->data);
	if (it->state != NULL) {
		eng_stream_state_fini(it->state);
		free(it->state);
	}
	free(it);
}

struct gen *
gen_new(struct infinid *d, struct stream *s, uint32_t max,
    const char *const *stop, int nstop)
{
	struct gen *g;

	if ((g = calloc(1, sizeof(*g))) == NULL ||
	    (g->toks = calloc(max, sizeof(int32_t))) == NULL ||
	    (g->tend = calloc(max, sizeof(size_t))) == NULL ||
	    (g->text = calloc(g->tcap = 256, 1)) == NULL ||
	    (nstop > 0 && (g->stop = calloc((size_t)nstop,
	    sizeof(char *))) == NULL)) {
		if (g != NULL)
			gen_free(g);
		return (NULL);
	}
	for (int i = 0; i < nstop; i++)
		if ((g->stop[g->nstop] = strdup(stop[i])) != NULL)
			g->nstop++;
	g->id = ++d->next_gen;
	g->s = s;
	g->owner = s->owner;
	g->max = max;
	tok_stream_init(&g->ts);
	g->last_poll_ms = now_ms();
	g->next = d->gens;
	d->gens = g;
	return (g);
}

void
gen_free(struct gen *g)
{
	free(g->prompt);
	free(g->toks);
	free(g->text);
	free(g->tend);
	for (int i = 0; i < g->nstop; i++)
		free(g->stop[i]);
	free(g->stop);
	free(g);
}

void
strm_free_all(struct infinid *d)
{
	struct stream *s, *sn;
	struct gen *g, *gn;
	struct item *it, *in;

	for (s = d->streams; s != NULL; s = sn) {
		sn = s->next;
		for (it = s->head; it != NULL; it = in) {
			in = it->next;
			item_free(it);
		}
		free(s);
	}
	d->streams = NULL;
	__atomic_store_n(&d->nstreams, 0, __ATOMIC_RELAXED);
	for (it = d->ctl_head; it != NULL; it = in) {
		in = it->next;
		item_free(it);
	}
	d->ctl_head = d->ctl_tail = NULL;
	for (g = d->gens; g != NULL; g = gn) {
		gn = g->next;
		gen_free(g);
	}
	d->gens = NULL;
	acct_free_all(d);
}
