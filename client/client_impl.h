/*
 * client_impl.h - what the libinfini sources share and callers never see:
 * the client structure, the one call path every method goes through
 * (cl_call) and the thread-local error text behind infini_errmsg().
 *
 * Not installed; the public API is include/infini.h.
 */
#ifndef CLIENT_IMPL_H
#define CLIENT_IMPL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <nng/nng.h>

#include "infini.h"
#include "wire.h"

/* Default per-call deadline (ms), see infini_set_timeout. */
#define CL_DEFAULT_TIMEOUT 60000

struct infini_client {
	nng_socket sock;
	atomic_int timeout_ms;       /* per-call deadline; <= 0: none */
	atomic_uint_fast64_t next_id; /* call ids, unique per client */
	atomic_uint max_msg;         /* the daemon's request limit; 0: unknown */
	atomic_uint text_flags;      /* INFINI_TEXT_* for Push / Generate text */
	char url[256];
	/* Several daemons sharing a state store (route.c): the calls go to
	 * their clients and sock is unused.  NULL: one daemon, at sock. */
	struct cl_members *members;
};

/* What the calling thread's last cl_call learnt, for route.c: whether
 * the request left (a connection took it), whether a reply came, and the
 * reply's Status.redirect. */
struct cl_last {
	bool sent, replied;
	char redirect[256];
};
extern _Thread_local struct cl_last cl_last;


/*
 * A decoded reply body.  The body was unpacked with the bounded allocator
 * inside this struct, so the struct must stay put (on the caller's stack)
 * until cl_reply_fini.
 */
struct cl_reply {
	struct wire_alloc a;
	ProtobufCMessage *body;
};

/*
 * cl_call sends one request (method, body req) and waits up to timeout_ms
 * (<= 0: forever) for the reply, then checks its call id and status and
 * unpacks the body as rdesc into rep->body.  Returns 0, the INFINI_E* code
 * mapped from a non-OK status (infini_errmsg then holds "CODE: message"),
 * INFINI_ETIMEDOUT, INFINI_EUNAVAILABLE when no daemon took the request or
 * the connection dropped, INFINI_EPROTO for a malformed reply or
 * INFINI_ENOMEM.  On success the caller must call cl_reply_fini.
 */
int cl_call(infini_client *c, int method, const ProtobufCMessage *req,
    const ProtobufCMessageDescriptor *rdesc, int timeout_ms,
    struct cl_reply *rep);
void cl_reply_fini(struct cl_reply *rep);

/* route.c.  cl_route_connect makes a client over the comma-separated
 * urls (at least one must answer); cl_route_call is cl_call for it;
 * cl_route_free closes the members (ms may be NULL). */
struct cl_members;
int cl_route_connect(const char *urls, int timeout_ms, infini_client **out);
int cl_route_call(infini_client *c, int method, const ProtobufCMessage *req,
    const ProtobufCMessageDescriptor *rdesc, int timeout_ms,
    struct cl_reply *rep);
void cl_route_free(struct cl_members *ms);

/* cl_call_health is infini_health with an explicit deadline, used by
 * infini_connect. */
int cl_call_health(infini_client *c, int timeout_ms,
    struct infini_health *out);

/* cl_timeout returns the client's current per-call deadline. */
int cl_timeout(infini_client *c);

/* cl_err records fmt as this thread's error text and returns err, so
 * failures read `return (cl_err(INFINI_EINVAL, "..."))`. */
int cl_err(int err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* cl_check_id validates a stream id argument before it goes on the wire. */
int cl_check_id(const char *what, const char *id);

#endif /* CLIENT_IMPL_H */
