/*
 * rpc.h - the rpc layer (rpc.c): the only part of the daemon that speaks
 * protobuf.  A transport (server.c for NNG, the HTTP gateway for its JSON
 * calls) receives a call's bytes and hands them to rpc_serve with a
 * struct rpc_call that names the transport's operations; rpc.c unpacks and
 * checks the request outside any lock, serves it under d->mu (queueing work
 * on the scheduler, or on the snapshot thread), turns the typed results the
 * layers below finish items with into Reply messages, and packs each Reply
 * straight into the buffer the transport sends.
 *
 * Layering: transports -> rpc -> sched -> store -> engine; rpc.c calls
 * nothing above itself, and nothing below it includes this header.
 */
#ifndef INFINI_RPC_H
#define INFINI_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scheduler.h"

struct rpc_call;

/* What a transport does for rpc.c.  Called with d->mu held, except for a
 * Health reply (answered without it). */
struct rpc_transport {
	/* buffer: room for len bytes of packed Reply, inside what will be
	 * sent (an NNG message), or NULL when there is none; the call is
	 * then dropped. */
	uint8_t *(*buffer)(struct rpc_call *c, size_t len);
	/* send: the Reply is packed into the buffer: send it. */
	void (*send)(struct rpc_call *c);
	/* drop: let the call go without a reply (its client has left). */
	void (*drop)(struct rpc_call *c);
	/* alive: is the caller's connection still open? */
	bool (*alive)(const struct rpc_call *c);
};

/* One call in progress, embedded in the transport's own context.  The
 * transport sets tr, d, uid and pipe before rpc_serve; the rest is
 * rpc.c's. */
struct rpc_call {
	const struct rpc_transport *tr;
	struct infinid *d;
	uint32_t uid;              /* the caller (0: root or admin_group) */
	uint32_t pipe;             /* its connection (0: none) */
	uint64_t call_id;
	int method;                /* the infini.v1.Method served (metrics) */
	int64_t t0_us;             /* its arrival, now_us() */
	/* A parked Poll: answered when its generation moves, or when its
	 * wait runs out (the sweeper), by whoever unlinks it under d->mu. */
	struct gen *pgen;
	uint64_t pafter;
	struct rpc_call *pnext;
	int64_t pdeadline_ms;
	struct uacct *pacct;       /* a parked Poll counted here, or NULL */
};

/* rpc_serve serves one packed infini.v1.Request envelope (len bytes of
 * data, read before it returns).  The reply goes out through c->tr exactly
 * once, now or later.  Takes d->mu itself (not for Health). */
void rpc_serve(struct rpc_call *c, const uint8_t *data, size_t len);
/* rpc_serve_body serves method with its packed body, as rpc_serve does a
 * whole envelope (the HTTP gateway builds bodies, not envelopes). */
void rpc_serve_body(struct rpc_call *c, int method, const uint8_t *body,
    size_t len);
/* rpc_start starts the sweeper, which answers parked Polls when their wait
 * runs out: 0 or INFINI_ENOMEM.  rpc_stop stops it. */
int rpc_start(struct infinid *d);
void rpc_stop(struct infinid *d);
/* rpc_unpark forgets every parked Poll of transport tr, unanswered (its
 * transport is stopping).  d->mu held. */
void rpc_unpark(struct infinid *d, const struct rpc_transport *tr);

#endif /* INFINI_RPC_H */
