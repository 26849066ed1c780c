/*
 * acct.c - what each user (UID) has in the daemon right now and has done:
 * requests in flight, inputs queued, and the counters Stats reports to
 * that user.  The fair-share limits (max_requests_per_uid,
 * max_queued_tokens_per_uid) are checked against these records by
 * methods.c before anything is queued, so one user's flood is refused at
 * the door instead of filling the NNG contexts that everyone shares.
 *
 * Users are few (the UIDs allowed on the socket), so the records are a list
 * that lives until shutdown: an item can keep a pointer to its record.
 * All functions expect d->mu held.
 */
#include <stdlib.h>

#include "state.h"

struct uacct *
acct_get(struct infinid *d, uint32_t uid)
{
	struct uacct *a;

	for (a = d->accts; a != NULL; a = a->next)
		if (a->uid == uid)
			return (a);
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return (NULL);
	a->uid = uid;
	a->next = d->accts;
	d->accts = a;
	return (a);
}

void
acct_take(struct item *it, struct uacct *a)
{
	if (it->acct != NULL || a == NULL)
		return;
	it->acct = a;
	a->inflight++;
	a->queued_tokens += it->n;
}

void
acct_went(struct item *it, int n)
{
	if (it->acct != NULL)
		it->acct->queued_tokens -= n;
}

void
acct_release(struct item *it)
{
	struct uacct *a = it->acct;

	if (a == NULL)
		return;
	a->inflight--;
	a->queued_tokens -= it->n - it->done;
	it->acct = NULL;
}

void
acct_free_all(struct infinid *d)
{
	struct uacct *a, *next;

	for (a = d->accts; a != NULL; a = next) {
		next = a->next;
		free(a);
	}
	d->accts = NULL;
}
