/*
 * infinid.h - the daemon's shared state: the stream table, per-stream request
 * queues, generations, and the counters.  One mutex (d->mu) guards all of it;
 * the engine is touched only by the scheduler thread (sched.c), and NNG
 * callbacks (server.c, methods.c) only queue work and read the table, so no
 * callback ever waits for the device.
 *
 * A stream is known (in d->streams) or not; a known stream is resident (it
 * holds an engine slot) or spilled (its state is a file under
 * state_dir/streams, or it has never run and has no state).  spill.c moves
 * streams between the two; only the scheduler thread does.
 */
#ifndef INFINID_H
#define INFINID_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <nng/nng.h>

#include "clock.h"
#include "config.h"
#include "engine/engine.h"
#include "engine/model.h"
#include "infini_err.h"
#include "tok/tok.h"
#include "wire.h"

#define UID_ANON 0xfffffffeu   /* peers without credentials (tcp) */

struct work;
struct stream;
struct uacct;

enum item_kind { IT_OPEN, IT_PUSH, IT_GENERATE, IT_FORK, IT_CLOSE,
	IT_SNAPSHOT, IT_RESTORE };

/* A request waiting for the scheduler. */
struct item {
	struct item *next;
	enum item_kind kind;
	struct work *w;            /* where the reply goes */
	uint32_t uid;              /* the caller */
	uint32_t pipe;             /* the caller's connection */
	struct uacct *acct;        /* counted in this user's record, or NULL */
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
	char name[WIRE_ID_MAX + 1]; /* snapshot / restore: a named snapshot */
	bool export_bytes;         /* snapshot: return the bytes */
	bool overwrite;            /* snapshot: replace an existing name */
	struct eng_stream_state *state; /* restore: decoded state (owned) */
	uint8_t *data;             /* restore: snapshot bytes (owned) */
	size_t data_len;
	uint64_t seq;              /* arrival order; a sliced push re-queues */
};

struct gen {
	struct gen *next;          /* in d->gens */
	uint64_t id;
	struct stream *s;          /* NULL once the stream is gone */
	uint32_t owner;
	uint32_t pipe;             /* the client's pipe; closing it cancels */
	int32_t *prompt;
	int nprompt;
	int pdone;                 /* prompt inputs run so far (in slices) */
	bool started;
	struct eng_sampler smp;
	uint32_t max;
	int32_t *toks;             /* generated, [max] */
	uint32_t ntok;
	char *text;                /* the text of toks, whole characters */
	size_t tlen, tcap;
	size_t *tend;              /* [max]: tlen after each token */
	struct tok_stream ts;      /* bytes of a character not yet whole */
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
	int slot;                  /* engine slot; -1: not resident */
	uint32_t owner;
	int64_t pos;               /* position while not resident */
	char file[WIRE_ID_MAX + 8]; /* its state file under d->spill_dir */
	bool saved;                /* that file exists */
	bool dirty;                /* state changed since the file was written */
	int64_t dirty_ms;          /* when it became dirty */
	int64_t saved_segs;        /* compressed segments at the last save */
	int64_t retry_ms;          /* autosnapshot: no retry before this */
	struct item *head, *tail;
	int nqueued;
	struct gen *gen;           /* the generation running now */
	bool busy;                 /* in the device batch now */
	int64_t last_used_ms;
	int rank, uix;             /* scheduler scratch: turn order, user */
};

/* The scheduler's view of one user within a turn (sched.c, gather). */
struct sched_user {
	uint32_t uid;
	int n;                     /* streams with work */
	long used;                 /* batch inputs taken */
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
	/* A call from the HTTP gateway (http.c) has no NNG context: srv_reply
	 * hands its packed Reply to local instead, which takes the buffer
	 * (NULL when packing failed).  Called with d->mu held. */
	void (*local)(struct work *w, uint8_t *reply, size_t len);
	int method;                /* the infini.v1.Method served (metrics) */
	int64_t t0_us;             /* its arrival, now_us() */
	struct uacct *pacct;       /* a parked poll counted here, or NULL */
	uint32_t uid;              /* the request's caller, for its counters */
	/* Set around a srv_reply by cluster.c: the member that holds the
	 * stream (Status.redirect); NULL otherwise. */
	const char *redirect;
};

/* One user's share (acct.c): what it has queued now and what Stats tells
 * it about its own traffic. */
struct uacct {
	struct uacct *next;
	uint32_t uid;
	int inflight;               /* queued or running requests, parked polls */
	int64_t queued_tokens;      /* inputs queued and not yet run */
	uint64_t requests, errors, tokens_in, tokens_out;
};

struct stats {
	/* requests is counted atomically: Health counts it without d->mu. */
	uint64_t requests, errors, tokens_in, tokens_out, submissions;
	uint64_t device_busy_us;
	uint64_t page_ins, evictions, autosnapshots, spill_errors;
};

struct infinid {
	struct cfg cfg;
	struct eng_model *model;
	/* The model's tokenizer (NULL: none; text is refused).  Read-only,
	 * shared by every thread; encoding takes no lock. */
	struct tok *tok;
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
	bool sched_again;          /* the scheduler has more to do at once */
	uint64_t wakes;             /* sched_wake calls, under mu */
	struct stream *streams;
	int nstreams;
	int nresident;              /* streams holding an engine slot */
	int max_resident;           /* min(max_resident_streams, max_streams) */
	char spill_dir[1100];       /* state_dir/streams */
	char snap_dir[1100];        /* state_dir/snapshots: named snapshots */
	size_t snap_max;            /* snap_max_size of the model */
	/* snapio.c: named-snapshot file work, served by its own thread. */
	struct sio_job *sio_head, *sio_tail;
	pthread_cond_t sio_cv;
	pthread_t sio;
	bool have_sio, sio_stopping;
	struct item *ctl_head, *ctl_tail;  /* opens, in arrival order */
	struct gen *gens;
	uint64_t next_gen, next_auto_id;
	uint64_t next_seq;          /* item.seq */
	struct stream **cand;       /* scheduler: streams with work this turn */
	struct sched_user *users;   /* scheduler: their users, [ncand_cap] */
	int ncand_cap;
	gid_t admin_gid;
	bool have_admin;
	int64_t start_ms;
	/* now_ms() at the top of every scheduler turn; the watchdog pings
	 * (service.c) stop when it grows old.  Read without d->mu. */
	_Atomic int64_t sched_beat_ms;
	struct stats st;
	struct uacct *accts;        /* acct.c */
	_Atomic int nconns;         /* connections open now (max_connections) */
	int max_fds;                /* connections the fd limit allows */
	char device_name[256];
	/* Set by the scheduler when the device is lost: from then on every
	 * request fails with UNAVAILABLE, nothing is written from the device,
	 * and main exits with status 1 for the service manager to restart
	 * the daemon on its saved streams. */
	_Atomic bool device_lost;
	/* $INFINID_FAULT (builds with INFINI_FAULT_INJECTION): the device
	 * fault to inject into the rounds of stream fault_id, see main.c. */
	enum eng_fault fault;
	int fault_skip;
	char fault_id[WIRE_ID_MAX + 1];
	struct http_gw *http;       /* http.c; NULL when http_listen is off */
	struct sst *store;          /* stream states: store/store.h (cluster.c) */
	struct clu *clu;            /* cluster.c; NULL unless the store is shared */
};

/* streams.c */
struct stream *strm_find(struct infinid *d, const char *id);
/* strm_may_use: may uid use what owner owns (a stream, a generation, a
 * named snapshot)?  It reads nothing shared, so snapio.c calls it without
 * d->mu. */
bool strm_may_use(struct infinid *d, uint32_t uid, uint32_t owner);
void strm_unlink(struct infinid *d, struct stream *s);
/* strm_pos: the stream's position, resident or not. */
int64_t strm_pos(struct infinid *d, const struct stream *s);
void item_free(struct item *it);
/* gen_free releases a generation and what it owns. */
void gen_free(struct gen *g);
/* strm_free_all frees every stream record, queued item and generation
 * (shutdown, after the scheduler and the server have stopped). */
void strm_free_all(struct infinid *d);

/* acct.c: per-user records, d->mu held.  acct_get finds or makes uid's
 * record (NULL: out of memory).  acct_take counts a queued item in a (its
 * inputs as queued tokens); acct_went says n of its inputs ran;
 * acct_release uncounts it (item_free calls it). */
struct uacct *acct_get(struct infinid *d, uint32_t uid);
void acct_take(struct item *it, struct uacct *a);
void acct_went(struct item *it, int n);
void acct_release(struct item *it);
void acct_free_all(struct infinid *d);

/*
 * spill.c: residency.  Called by the scheduler with d->mu held; the file
 * I/O runs with d->mu released (the scheduler is the only thread that
 * changes a stream's state or residency, so nothing moves meanwhile).
 */
#define SPILL_WAIT (-1)   /* no slot now: every resident stream is busy */
/* spill_init makes state_dir/streams and registers the streams saved there
 * (not resident).  Bad files are logged and left alone.  Returns 0 (a
 * missing state_dir is only logged: nothing spills until it exists). */
int spill_init(struct infinid *d);
/* spill_file_for writes id's state file name into out (WIRE_ID_MAX + 8). */
void spill_file_for(const char *id, char *out);
/* spill_ensure makes s resident: frees a slot (evicting the least recently
 * used idle stream other than keep, saving it first if dirty) and loads s's
 * file.  Returns 0, SPILL_WAIT, or an INFINI_E* code with err set: EFULL
 * and others when the eviction could not be saved (nothing is evicted),
 * ECORRUPT/ESTATE/EIO when s's file cannot be loaded (s stays spilled). */
int spill_ensure(struct infinid *d, struct stream *s, struct stream *keep,
    char *err, size_t errlen);
/* spill_room frees a slot as spill_ensure does without loading anything:
 * 0 (a slot is free), SPILL_WAIT or an error with err set. */
int spill_room(struct infinid *d, struct stream *keep, char *err,
    size_t errlen);
/* spill_save writes resident s to its file; 0 or an error with err set. */
int spill_save(struct infinid *d, struct stream *s, char *err, size_t errlen);
/* spill_write_state writes st as s's file (s not resident): 0 or error. */
int spill_write_state(struct infinid *d, struct stream *s,
    const struct eng_stream_state *st, char *err, size_t errlen);
/* spill_forget drops s's slot and file (the stream is closing). */
void spill_forget(struct infinid *d, struct stream *s);
/* spill_dirty marks s changed (after device work on it). */
void spill_dirty(struct stream *s);
/* spill_autosave saves the resident streams whose autosnapshot is due. */
void spill_autosave(struct infinid *d);
/* spill_drain saves every stream with unsaved work (shutdown). */
void spill_drain(struct infinid *d);
/* spill_adopt registers the stream saved in the store as name, not
 * resident (bad entries are logged and left alone). */
void spill_adopt(struct infinid *d, const char *name);

/*
 * cluster.c: the state store, and this daemon as a member of several
 * sharing one (docs/scale-out.md).  clu_start opens state_store (before
 * the scheduler starts) and, when it is shared, starts the heartbeat and
 * lease thread: 0 or an INFINI_E* code with err set.  clu_stop releases
 * the leases and closes the store (after sched_stop wrote the streams).
 * clu_route, without d->mu, takes the lease of the stream(s) the request
 * names or answers it (a redirect to the holder, UNAVAILABLE): true when
 * it answered.  clu_put_state / clu_del_state write / remove a stream's
 * state in the store, fenced by its lease (d->mu not needed).  clu_sweep
 * (scheduler, d->mu held) drops, unsaved, the idle streams whose lease
 * another member took.
 */
struct clu;
struct mbody;
int clu_start(struct infinid *d, char *err, size_t errlen);
void clu_stop(struct infinid *d);
bool clu_route(struct infinid *d, struct work *w, const Infini__V1__Request *req,
    const struct mbody *b);
int clu_put_state(struct infinid *d, const struct stream *s, const uint8_t *buf,
    size_t len, char *err, size_t errlen);
int clu_del_state(struct infinid *d, const struct stream *s, char *err,
    size_t errlen);
void clu_sweep(struct infinid *d);

/*
 * snapio.c: named snapshots (state_dir/snapshots).  Their file I/O runs on
 * a thread of its own with d->mu released, so a slow disk, a huge file or
 * a FIFO under a snapshot's name never holds up the scheduler or Health.
 * The sio_* calls queue a job and return; the thread answers w.  Ownership:
 * a named snapshot carries its writer's UID (an OWNER section); a file
 * without one belongs to root.  All take d->mu held.
 */
struct sio_job;
/* sio_start makes the snapshot directory, removes temp files a killed
 * writer left there and starts the thread.  0 or INFINI_ENOMEM. */
int sio_start(struct infinid *d);
/* sio_stop answers queued jobs UNAVAILABLE and joins the thread. */
void sio_stop(struct infinid *d);
/* sio_write writes buf (taken; an encoded snapshot of the caller's
 * stream) as name, honouring ownership and overwrite, and answers
 * Snapshot (with the bytes too when export_bytes). */
void sio_write(struct infinid *d, struct work *w, uint32_t uid,
    const char *name, bool overwrite, bool export_bytes, uint8_t *buf,
    size_t len);
/* sio_restore reads and checks snapshot name for uid, then queues the
 * Restore of stream id on the scheduler (which answers, unless the
 * caller's connection, pipe, has closed by then). */
void sio_restore(struct infinid *d, struct work *w, uint32_t uid,
    uint32_t pipe, const char *id, const char *name);
/* sio_list answers ListSnapshots; sio_delete DeleteSnapshot. */
void sio_list(struct infinid *d, struct work *w, uint32_t uid);
void sio_delete(struct infinid *d, struct work *w, uint32_t uid,
    const char *name);

/* sched.c */
int sched_start(struct infinid *d);
void sched_stop(struct infinid *d);
/* sched_enqueue queues it on stream s (NULL: the control queue) and wakes the
 * scheduler.  Called with d->mu held. */
void sched_enqueue(struct infinid *d, struct stream *s, struct item *it);
/* sched_wake tells the scheduler there is something new (a cancel, a
 * departed client); d->mu held. */
void sched_wake(struct infinid *d);

/* server.c */
/* srv_claim checks, before anything else starts, that every ipc:// path of
 * the listen setting is free: it removes a socket left by a daemon that
 * died, and refuses one that still answers ("another infinid is serving
 * URL (pid N)").  Returns 0 or an INFINI_E* code with err set. */
int srv_claim(struct infinid *d, char *err, size_t errlen);
int srv_start(struct infinid *d, char *err, size_t errlen);
void srv_stop(struct infinid *d);
/* srv_reply sends a reply for w (body may be NULL); code is a gRPC code. */
void srv_reply(struct work *w, int code, const char *msg,
    const ProtobufCMessage *body);
void srv_replyf(struct work *w, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* srv_drop puts w back to receiving without a reply: its client has
 * gone, so nobody would read one. */
void srv_drop(struct work *w);
/* srv_pipe_alive: is the connection with that pipe id still open? */
bool srv_pipe_alive(uint32_t pipe);
/* srv_wake_polls answers every poll parked on g.  d->mu held. */
void srv_wake_polls(struct infinid *d, struct gen *g);

/* methods_health answers a Health request without d->mu: it reads nothing
 * the scheduler changes except the stream count (atomic). */
void methods_health(struct infinid *d, struct work *w);
/* http.c: the HTTP/JSON gateway (http_listen), served by NNG's HTTP
 * server; its calls go through methods_dispatch like the socket's.
 * http_prepare reads http_tokens_file (before the model loads, so a bad
 * file stops the daemon at once); http_start starts listening.  Both
 * return 0 (nothing to do when http_listen is empty) or an INFINI_E* code
 * with err set; http_stop answers what is still open and frees everything
 * (after sched_stop, before srv_stop; also after a failed start). */
int http_prepare(struct infinid *d, char *err, size_t errlen);
int http_start(struct infinid *d, char *err, size_t errlen);
void http_stop(struct infinid *d);

/* methods.c: one request's body, unpacked for its method by methods_decode
 * before d->mu is taken (a 60 MiB body costs the one who sent it, not
 * everyone waiting for the lock), then served by methods_dispatch. */
struct mbody {
	ProtobufCMessage *msg;      /* NULL: refused, code and why say why */
	struct wire_alloc a;
	int code;
	char why[256];
};
/* methods_decode fills b from req (a well-formed envelope of our
 * version); no lock needed.  Release b with methods_body_free. */
void methods_decode(const Infini__V1__Request *req, struct mbody *b);
void methods_body_free(struct mbody *b);
/* methods_dispatch serves req with its body b, or sends b's refusal.
 * d->mu held. */
void methods_dispatch(struct infinid *d, struct work *w, uint32_t uid,
    uint32_t pipe, const Infini__V1__Request *req, const struct mbody *b);
/* methods_poll_reply answers a parked or ready poll from g's state. */
void methods_poll_reply(struct infinid *d, struct work *w, struct gen *g,
    uint64_t after);

#endif
