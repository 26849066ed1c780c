/*
 * streams.c - the stream table: lookup by ID, ownership checks, unlinking.
 * Streams are a few thousand at most (max_streams), and every scheduler turn
 * walks them anyway, so a list is enough.  All functions expect d->mu held.
 */
#include <stdlib.h>
#include <string.h>

#include "infinid.h"

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

int64_t
strm_pos(struct infinid *d, const struct stream *s)
{
	return (s->slot >= 0 ? eng_stream_pos(d->eng, s->slot) : s->pos);
}

void
item_free(struct item *it)
{
	if (it == NULL)
		return;
	acct_release(it);
	free(it->tokens);
	free(it->vectors);
	free(it->result);
	free(it->mean);
	free(it->data);
	if (it->state != NULL) {
		eng_stream_state_fini(it->state);
		free(it->state);
	}
	free(it);
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
