/*
 * streams.c - the stream table: lookup by ID, ownership checks, unlinking.
 * Streams are few (bounded by max_streams and the engine's slots), so a list
 * is enough.  All functions expect d->mu held.
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
			d->nstreams--;
			return;
		}
}

void
item_free(struct item *it)
{
	if (it == NULL)
		return;
	free(it->tokens);
	free(it->vectors);
	free(it->result);
	free(it->mean);
	free(it->data);
	free(it);
}
