/*
 * infinid.h - the daemon's shared state: the stream table, per-stream request
 * queues, generations, and the counters.  One mutex (d->mu) guards all of it;
 * the engine is touched only by the scheduler thread (sched.c), and NNG
 * callbacks (server.c, methods.c) only queue work and read the table, so no
 * callback ever waits for the device.
 */
#ifndef INFINID_H
#define INFINID_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <nng/nng.h>

#include "config.h"
#include "engine/engine.h"
#include "engine/model.h"
#include "infini_err.h"
#include "wire.h"

#define UID_ANON 0xfffffffeu   /* peers without credentials (tcp) */

struct work;
struct stream;

enum item_kind { IT_OPEN, IT_PUSH, IT_GENERATE, IT_FORK, IT_CLOSE,
	IT_SNAPSHOT, IT_RESTORE };

/* A request waiting for the scheduler. */
struct item {
	struct item *next;
	enum item_kind kind;
	struct work *w;            /* where the reply goes */
	uint32_t uid;              /* the caller */
	char id[WIRE_ID_MAX + 1];  /* open: the new id; fork: the new id */
	bool reuse;
	int32_t *tokens;           /* push: inputs (owned) */
	float *vectors;            /* push: [n, H] (owned) */
	int n, done;
	enum eng_out out;
	float *result;             /* push: output being assembled (owned) */
	size_t result_len;
	double *mean;              /* push: running mean for ENG_OUT_MEAN */
	struct gen *gen;           /* generate */
	char name[WIRE_ID_MAX + 1]; /* snapshot / restore: file under state_dir */
	bool export_bytes;         /* snapshot: return the bytes */
	uint8_t *data;             /* restore: snapshot bytes (owned) */
	size_t data_len;
};

struct gen {
	struct gen *next;          /* in d->gens */
	uint64_t id;
	struct stream *s;          /* NULL once the stream is gone */
	uint32_t owner;
	uint32_t pipe;             /* the client's pipe; closing it cancels */
	int32_t *prompt;
	int nprompt;
	bool started;
	struct eng_sampler smp;
	uint32_t max;
	int32_t *toks;             /* generated, [max] */
	uint32_t ntok;
	char *text;                /* bytes of toks (byte tokenizer) */
	size_t tlen;
	char **stop;
	int nstop;
	bool done, cancel;
	bool flush;                /* last token still to be pushed */
	char finish[16];
	int64_t last_poll_ms;
	int64_t done_ms;
	struct work *waiters;      /* parked polls */
};

struct stream {
	struct stream *next;       /* in d->streams */
	char id[WIRE_ID_MAX + 1];
	int slot;
	uint32_t owner;
	struct item *head, *tail;
	int nqueued;
	struct gen *gen;           /* the generation running now */
	bool busy;                 /* in the device batch now */
	int64_t last_used_ms;
};

/* One NNG context and its state machine (the shape of NNG's async demo
 * server): RECV a request, serve it or park it (WAIT), SEND the reply. */
struct work {
	enum { W_INIT, W_RECV, W_WAIT, W_SEND } state;
	struct infinid *d;
	nng_aio *aio;
	int64_t pdeadline_ms;      /* a parked poll's deadline */
	nng_ctx ctx;
	uint64_t call_id;
	struct gen *pgen;          /* parked on this generation, or NULL */
	uint64_t pafter;
	struct work *pnext;
};

struct stats {
	uint64_t requests, errors, tokens_in, tokens_out, submissions;
	uint64_t device_busy_us;
};

struct infinid {
	struct cfg cfg;
	struct eng_model *model;
	struct eng *eng;
	nng_socket sock;
	struct work **works;
	int nworks;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t sched;
	pthread_t sweeper;          /* answers parked polls at their deadline */
	bool have_sweeper, sweep_stop;
	bool stopping;
	struct stream *streams;
	int nstreams;
	struct item *ctl_head, *ctl_tail;  /* opens, in arrival order */
	struct gen *gens;
	uint64_t next_gen, next_auto_id;
	gid_t admin_gid;
	bool have_admin;
	int64_t start_ms;
	/* now_ms() at the top of every scheduler turn; the watchdog pings
	 * (service.c) stop when it grows old.  Read without d->mu. */
	_Atomic int64_t sched_beat_ms;
	struct stats st;
	char device_name[256];
};

int64_t now_ms(void);

/* streams.c */
struct stream *strm_find(struct infinid *d, const char *id);
bool strm_may_use(struct infinid *d, uint32_t uid, uint32_t owner);
void strm_unlink(struct infinid *d, struct stream *s);
void item_free(struct item *it);

/* sched.c */
int sched_start(struct infinid *d);
void sched_stop(struct infinid *d);
/* sched_enqueue queues it on stream s (NULL: the control queue) and wakes the
 * scheduler.  Called with d->mu held. */
void sched_enqueue(struct infinid *d, struct stream *s, struct item *it);

/* server.c */
int srv_start(struct infinid *d, char *err, size_t errlen);
void srv_stop(struct infinid *d);
/* srv_reply sends a reply for w (body may be NULL); code is a gRPC code. */
void srv_reply(struct work *w, int code, const char *msg,
    const ProtobufCMessage *body);
void srv_replyf(struct work *w, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* srv_wake_polls answers every poll parked on g.  d->mu held. */
void srv_wake_polls(struct infinid *d, struct gen *g);

/* methods.c: decode and serve one request (called from server.c). */
void methods_dispatch(struct infinid *d, struct work *w, uint32_t uid,
    uint32_t pipe, const Infini__V1__Request *req);
/* methods_poll_reply answers a parked or ready poll from g's state. */
void methods_poll_reply(struct infinid *d, struct work *w, struct gen *g,
    uint64_t after);

#endif
