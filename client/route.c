/*
 * route.c - one libinfini client over several daemons that share a Redis
 * state store (INFINI_SOCKET=tcp://a:7480,tcp://b:7480; docs/scale-out.md).
 *
 * Each endpoint is a member: a client of its own (client.c), connected
 * when first needed.  A call that names a stream (its request has a
 * stream_id field) goes to the member rendezvous hashing (proto/hrw.c)
 * picks for that ID among the members not known to be down; the daemons
 * use the endpoint URLs as their member IDs, so both sides agree while
 * the member set is stable.  When they do not (a member died or joined),
 * the daemon holding the stream answers UNAVAILABLE with a redirect to
 * itself, which is followed once.  Calls without a stream (Health, Poll,
 * Cancel, lists) go where this thread's last call went, so that a
 * Generate's Polls reach the daemon that runs it.
 *
 * A member whose connection fails is skipped for CL_DOWN_MS.  A call is
 * sent again to another member only when it never left (no connection):
 * a request that was sent may have run, and Push is not idempotent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/supplemental/util/platform.h>

#include "client_impl.h"
#include "hrw.h"

#define CL_MAX_MEMBERS 16
#define CL_DOWN_MS 2000

struct cl_member {
	char url[256];
	infini_client *c;             /* NULL: not connected yet */
	nng_time down_until;          /* skipped until then */
};

struct cl_members {
	nng_mtx *mu;                  /* guards connecting and down_until */
	int n;
	struct cl_member m[CL_MAX_MEMBERS];
};

/* Where this thread's last call went, for calls without a stream. */
static _Thread_local struct {
	const infini_client *c;
	int i;
} sticky;

/* What the last cl_call of this thread learnt (client.c sets it). */
_Thread_local struct cl_last cl_last;

/* stream_of: the request's stream_id, or "" when it has none. */
static const char *
stream_of(const ProtobufCMessage *req)
{
	const ProtobufCFieldDescriptor *f =
	    protobuf_c_message_descriptor_get_field_by_name(req->descriptor,
	    "stream_id");
	const char *s;

	if (f == NULL || f->type != PROTOBUF_C_TYPE_STRING ||
	    f->label == PROTOBUF_C_LABEL_REPEATED)
		return ("");
	s = *(const char *const *)((const char *)req + f->offset);
	return (s != NULL ? s : "");
}

/* pick chooses a member not in tried and not down: by hashing id, or
 * (id "") the sticky one, else the first.  -1: none left. */
static int
pick(infini_client *c, const char *id, unsigned tried)
{
	struct cl_members *ms = c->members;
	const char *urls[CL_MAX_MEMBERS];
	int idx[CL_MAX_MEMBERS], n = 0;
	nng_time now = nng_clock();

	nng_mtx_lock(ms->mu);
	for (int i = 0; i < ms->n; i++)
		if (!(tried & (1u << i)) && ms->m[i].down_until <= now) {
			urls[n] = ms->m[i].url;
			idx[n++] = i;
		}
	nng_mtx_unlock(ms->mu);
	if (n == 0)
		return (-1);
	if (id[0] != '\0')
		return (idx[hrw_pick(urls, (size_t)n, id)]);
	for (int k = 0; k < n; k++)
		if (sticky.c == c && idx[k] == sticky.i)
			return (sticky.i);
	return (idx[0]);
}

static void
mark_down(struct cl_members *ms, int i)
{
	nng_mtx_lock(ms->mu);
	ms->m[i].down_until = nng_clock() + CL_DOWN_MS;
	nng_mtx_unlock(ms->mu);
}

static bool
is_down(struct cl_members *ms, int i)
{
	bool down;

	nng_mtx_lock(ms->mu);
	down = ms->m[i].down_until > nng_clock();
	nng_mtx_unlock(ms->mu);
	return (down);
}

/* member connects member i if needed; its client, or NULL (marked down,
 * error set). */
static infini_client *
member(infini_client *c, int i, int timeout_ms)
{
	struct cl_members *ms = c->members;
	infini_client *mc;

	nng_mtx_lock(ms->mu);
	mc = ms->m[i].c;
	nng_mtx_unlock(ms->mu);
	if (mc != NULL)
		return (mc);
	if (infini_connect(ms->m[i].url, timeout_ms > 0 && timeout_ms <
	    CL_DOWN_MS ? timeout_ms : CL_DOWN_MS, &mc) != 0) {
		mark_down(ms, i);
		return (NULL);
	}
	nng_mtx_lock(ms->mu);
	if (ms->m[i].c == NULL)
		ms->m[i].c = mc;
	else {
		infini_close(mc);      /* another thread was first */
		mc = ms->m[i].c;
	}
	nng_mtx_unlock(ms->mu);
	return (mc);
}

/* member_at: the index of the member whose URL is url, or -1. */
static int
member_at(const struct cl_members *ms, const char *url)
{
	for (int i = 0; i < ms->n; i++)
		if (strcmp(ms->m[i].url, url) == 0)
			return (i);
	return (-1);
}

int
cl_route_call(infini_client *c, int method, const ProtobufCMessage *req,
    const ProtobufCMessageDescriptor *rdesc, int timeout_ms,
    struct cl_reply *rep)
{
	struct cl_members *ms = c->members;
	const char *id = stream_of(req);
	char redirect[sizeof(cl_last.redirect)];
	unsigned tried = 0;
	int err = INFINI_EUNAVAILABLE, next = -1;
	bool redirected = false;

	cl_err(err, "no daemon of %d is reachable", ms->n);
	for (int round = 0; round <= ms->n; round++) {
		int i = next >= 0 ? next : pick(c, id, tried);
		infini_client *mc;
		next = -1;
		if (i < 0)
			break;
		tried |= 1u << i;
		if ((mc = member(c, i, timeout_ms)) == NULL) {
			err = INFINI_EUNAVAILABLE;
			continue;
		}
		err = cl_call(mc, method, req, rdesc, timeout_ms, rep);
		if (err == 0) {
			sticky.c = c;
			sticky.i = i;
			return (0);
		}
		snprintf(redirect, sizeof(redirect), "%s", cl_last.redirect);
		if (cl_last.replied) {
			int j;
			/* The daemon answered: an error to return, unless it
			 * says another member holds the stream. */
			if (redirect[0] == '\0' || redirected ||
			    (j = member_at(ms, redirect)) < 0 || j == i ||
			    is_down(ms, j))
				return (err);
			redirected = true;
			next = j;
			tried &= ~(1u << j);
			continue;
		}
		mark_down(ms, i);
		if (cl_last.sent)
			return (err);    /* it may have run: not sent again */
	}
	return (err);
}

int
cl_route_connect(const char *urls, int timeout_ms, infini_client **out)
{
	struct cl_members *ms;
	infini_client *c;
	const char *p = urls;
	int up = 0, err = 0;

	if ((ms = calloc(1, sizeof(*ms))) == NULL ||
	    (c = calloc(1, sizeof(*c))) == NULL) {
		free(ms);
		return (cl_err(INFINI_ENOMEM, "out of memory"));
	}
	while (*p != '\0') {
		size_t n = strcspn(p, ",");
		if (n == 0 || n >= sizeof(ms->m[0].url) ||
		    ms->n == CL_MAX_MEMBERS) {
			err = cl_err(INFINI_EINVAL, "socket list: 1-%d URLs of "
			    "at most %zu bytes, separated by commas",
			    CL_MAX_MEMBERS, sizeof(ms->m[0].url) - 1);
			goto fail;
		}
		memcpy(ms->m[ms->n].url, p, n);
		ms->m[ms->n++].url[n] = '\0';
		p += n + (p[n] == ',');
	}
	if (nng_mtx_alloc(&ms->mu) != 0) {
		err = cl_err(INFINI_ENOMEM, "out of memory");
		goto fail;
	}
	snprintf(c->url, sizeof(c->url), "%s", urls);
	atomic_init(&c->timeout_ms, CL_DEFAULT_TIMEOUT);
	atomic_init(&c->next_id, 1);
	atomic_init(&c->max_msg, 0);
	c->members = ms;
	/* Every member is tried now; one that answers is enough. */
	for (int i = 0; i < ms->n; i++)
		up += member(c, i, timeout_ms) != NULL;
	if (up == 0) {
		err = cl_err(INFINI_EUNAVAILABLE, "no daemon at any of %s",
		    urls);
		goto fail;
	}
	*out = c;
	return (0);
fail:
	c->members = NULL;
	cl_route_free(ms);
	free(c);
	return (err);
}

void
cl_route_free(struct cl_members *ms)
{
	if (ms == NULL)
		return;
	for (int i = 0; i < ms->n; i++)
		infini_close(ms->m[i].c);
	if (ms->mu != NULL)
		nng_mtx_free(ms->mu);
	free(ms);
}
