/*
 * state.h - the daemon's state and the store layer below the scheduler:
 * the stream table, per-stream request queues, generations, per-user
 * accounting, residency (spill.c) and named snapshots (snapio.c).  One mutex
 * (d->mu) guards all of it; the engine is touched only by the scheduler
 * thread (scheduler.c), and the transports' callbacks (server.c, http.c, through
 * rpc.c) only queue work and read the table, so no callback ever waits for
 * the device.
 *
 * Nothing here knows how a request arrived or how it is answered: whoever
 * queues an item gives it item_ops, and the layers below rpc.c finish items
 * with an error code or a typed item_result through them.  The layering
 * (docs/architecture.md, tools/check-layers.sh): server -> rpc -> sched ->
 * store -> engine -> gpu.
 *
 * A stream is known (in d->streams) or not; a known stream is resident (it
 * holds an engine slot) or spilled (its state is a file under
 * state_dir/streams, or it has never run and has no state).  spill.c moves
 * streams between the two; only the scheduler thread does.
 */
#ifndef INFINI_STATE_H
#define INFINI_STATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "clock.h"
#include "config.h"
#include "engine/engine.h"
#include "engine/model.h"
#include "ids.h"
#include "infini_err.h"
#include "snapshot.h"
#include "tok/tok.h"

#define UID_ANON 0xfffffffeu   /* peers without credentials (tcp) */

struct stream;
struct uacct;
struct item;
struct infinid;
struct rpc_call;
struct srv;
struct http_gw;

enum item_kind { IT_OPEN, IT_PUSH, IT_GENERATE, IT_FORK, IT_CLOSE,
	IT_SNAPSHOT, IT_RESTORE, IT_LIST_SNAPSHOTS, IT_DELETE_SNAPSHOT };

/* One named snapshot as ListSnapshots tells it (snapio.c). */
struct snap_entry {
	char name[WIRE_ID_MAX + 1];
	char stream_id[WIRE_ID_MAX + 1]; /* "" when the file's is not valid */
	uint32_t owner;
	uint64_t bytes;
	int64_t position;
	int64_t created_ms;
};

/*
 * What a finished request hands back to whoever queued it, typed: the
 * queuer (rpc.c) turns it into a reply.  Pointers are valid only during
 * the answer call.
 */
struct item_result {
	const char *id;             /* open, fork, restore: the stream */
	bool created;               /* open: a new stream */
	int64_t position;           /* open, push, restore: its position */
	int64_t segments;           /* push: segments compressed so far */
	const struct eng_output *out; /* push: the output */
	const char *name;           /* snapshot: its name ("" unnamed) */
	uint64_t bytes;             /* snapshot: its size */
	const uint8_t *data;        /* snapshot: the bytes, when asked for */
	const struct snap_entry *list; /* list: the caller's snapshots */
	size_t nlist;
};

/*
 * How an item is answered, given by whoever queued it (rpc.c).  The layers
 * below finish every item through these (item_answer, item_gone, item_drop
 * in streams.c) and never build a reply themselves.  All with d->mu held.
 */
struct item_ops {
	/* answer: it is done: err 0 with res, or an INFINI_E* code and a
	 * message for the caller.  The item is freed by whoever answered. */
	void (*answer)(struct infinid *d, struct item *it, int err,
	    const char *msg, const struct item_result *res);
	/* gone: has the caller left, so that nobody would read an answer? */
	bool (*gone)(const struct item *it);
	/* drop: let the caller's call go without an answer (it left). */
	void (*drop)(struct item *it);
	/* loaded: the snapshot thread read and checked the named snapshot
	 * of an IT_RESTORE (it->state is set): takes it on to the scheduler,
	 * which creates the stream.  it is owned by the callee from here. */
	void (*loaded)(struct infinid *d, struct item *it);
};

/* A request waiting for the scheduler or the snapshot thread. */
struct item {
	struct item *next;
	enum item_kind kind;
	const struct item_ops *ops; /* NULL: nobody waits for an answer */
	struct rpc_call *call;     /* the ops' own: the call to answer */
	uint32_t uid;              /* the caller */
	uint32_t pipe;             /* the caller's connection (0: none) */
	struct uacct *acct;        /* counted in this user's record, or NULL */
	char id[WIRE_ID_MAX + 1];  /* open, fork, restore: the new stream */
	bool reuse;                /* open: an existing stream will do */
	int32_t *tokens;           /* push: inputs (owned) */
	float *vectors;            /* push: [n, H] (owned) */
	int n, done;               /* push: inputs, and those run so far */
	struct eng_output out;     /* push: its output (owned) */
	struct gen *gen;           /* generate */
	char name[WIRE_ID_MAX + 1]; /* a named snapshot */
	bool export_bytes;         /* snapshot: return the bytes */
	bool overwrite;            /* snapshot: replace an existing name */
	struct eng_stream_state *state; /* restore: decoded state (owned) */
	uint8_t *data;             /* restore: snapshot bytes; snapshot: the
	                            * encoded state to write (owned) */
	size_t data_len;
	uint64_t seq;              /* arrival order; a sliced push re-queues */
};

/* A generation: its tokens and text so far, read by polls. */
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
	/* Told of every new token and of the end (the scheduler calls it,
	 * d->mu held): rpc.c answers the polls parked on the generation. */
	void (*progress)(struct infinid *d, struct gen *g);
	struct rpc_call *waiters;  /* parked polls (rpc.c's) */
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

/* The scheduler's view of one user within a turn (scheduler.c, gather). */
struct sched_user {
	uint32_t uid;
	int n;                     /* streams with work */
	long used;                 /* batch inputs taken */
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
	struct srv *srv;            /* server.c: the NNG socket and contexts */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t sched;
	pthread_t sweeper;          /* rpc.c: answers parked polls on time */
	bool have_sweeper, sweep_stop;
	bool stopping;
	bool sched_again;          /* the scheduler has more to do at once */
	uint64_t wakes;             /* strm_wake calls, under mu */
	struct stream *streams;
	int nstreams;
	int nresident;              /* streams holding an engine slot */
	int max_resident;           /* min(max_resident_streams, max_streams) */
	char spill_dir[1100];       /* state_dir/streams */
	char snap_dir[1100];        /* state_dir/snapshots: named snapshots */
	size_t snap_max;            /* snap_max_size of the model */
	/* snapio.c: named-snapshot file work, served by its own thread. */
	struct item *sio_head, *sio_tail;
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
/* strm_new registers a stream record for id (not resident, position 0):
 * 0 or INFINI_ENOMEM.  No limit is checked: strm_open does that. */
int strm_new(struct infinid *d, const char *id, uint32_t owner,
    struct stream **out);
/* strm_open registers a new stream for a caller: INFINI_EFULL with err set
 * past max_streams or the owner's max_streams_per_uid (root and
 * admin_group are bound only by max_streams); INFINI_EEXIST when another
 * stream's file name (spill_file_for) is the one this ID would use. */
int strm_open(struct infinid *d, const char *id, uint32_t owner,
    struct stream **out, char *err, size_t errlen);
/* strm_free unlinks s and frees its record (its queue must be empty and
 * its slot and file released, spill_forget). */
void strm_free(struct infinid *d, struct stream *s);
/* strm_may_use: may uid use what owner owns (a stream, a generation, a
 * named snapshot)?  It reads nothing shared, so snapio.c calls it without
 * d->mu. */
bool strm_may_use(struct infinid *d, uint32_t uid, uint32_t owner);
void strm_unlink(struct infinid *d, struct stream *s);
/* strm_wake tells the scheduler, waiting on d->cv, that it has something
 * new to look at: queued work, a cancel, a departed client, a lost lease. */
void strm_wake(struct infinid *d);
/* strm_pos: the stream's position, resident or not. */
int64_t strm_pos(struct infinid *d, const struct stream *s);
/* item_new allocates an item of kind k for uid, answered through ops with
 * call (ops NULL: nobody waits).  NULL when out of memory.  Free it with
 * item_free, which uncounts it from its user's record. */
struct item *item_new(enum item_kind k, uint32_t uid, uint32_t pipe,
    const struct item_ops *ops, struct rpc_call *call);
void item_free(struct item *it);
/* item_answer answers it (if anyone waits) with err and a message made
 * from fmt, or with res when err is 0; it is not freed. */
void item_answer(struct infinid *d, struct item *it, int err,
    const struct item_result *res, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* item_gone: has its caller left?  item_drop lets the call go unanswered. */
bool item_gone(const struct item *it);
void item_drop(struct item *it);
/* gen_new starts a generation of at most max tokens on s, with copies of
 * the nstop stop strings, linked into d->gens: NULL when out of memory.
 * The caller sets its prompt, sampler and progress hook. */
struct gen *gen_new(struct infinid *d, struct stream *s, uint32_t max,
    const char *const *stop, int nstop);
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
 * clu_hold, without d->mu, makes sure this daemon holds stream id's lease,
 * taking it when it is free (and then adopting the stream's last saved
 * state): 0, at once when the store is not shared (clu_shared false), or
 * INFINI_EUNAVAILABLE with msg set and, when another member holds the
 * stream, that member's URL in owner (SST_MEMBER_MAX + 1 bytes; else ""),
 * or INFINI_ENOMEM.  clu_put_state / clu_del_state write / remove a stream's
 * state in the store, fenced by its lease (d->mu not needed).  clu_sweep
 * (scheduler, d->mu held) drops, unsaved, the idle streams whose lease
 * another member took.
 */
struct clu;
int clu_start(struct infinid *d, char *err, size_t errlen);
void clu_stop(struct infinid *d);
bool clu_shared(const struct infinid *d);
int clu_hold(struct infinid *d, const char *id, char *owner, char *msg,
    size_t msglen);
int clu_put_state(struct infinid *d, const struct stream *s, const uint8_t *buf,
    size_t len, char *err, size_t errlen);
int clu_del_state(struct infinid *d, const struct stream *s, char *err,
    size_t errlen);
void clu_sweep(struct infinid *d);

/*
 * snapio.c: named snapshots (state_dir/snapshots, or the SST_NAMED entries
 * of a shared state store, so that daemons sharing it share them).  Their
 * I/O runs on a thread of its own with d->mu released, so a slow disk or
 * Redis, a huge file or a FIFO under a snapshot's name never holds up the
 * scheduler or Health.  Ownership: a named snapshot carries its writer's
 * UID (an OWNER section, and beside the bytes in a shared store); a file
 * without one belongs to root.  All take d->mu held.
 */
/* sio_start makes the snapshot directory, removes temp files a killed
 * writer left there (unless named snapshots live in a shared store, d->store
 * from clu_start, which must run first) and starts the thread.  0 or
 * INFINI_ENOMEM. */
int sio_start(struct infinid *d);
/* sio_stop answers queued items UNAVAILABLE and joins the thread. */
void sio_stop(struct infinid *d);
/*
 * sio_queue takes it (owned from here) and answers it from the snapshot
 * thread:
 *   IT_SNAPSHOT  writes it->data (the encoded state of the caller's stream)
 *                as it->name, honouring ownership, overwrite and the quota;
 *   IT_RESTORE   reads and checks snapshot it->name for it->uid, and
 *                answers 0 with it->state set: the caller then hands the
 *                item to the scheduler, which creates the stream;
 *   IT_LIST_SNAPSHOTS, IT_DELETE_SNAPSHOT  as their names say.
 */
void sio_queue(struct infinid *d, struct item *it);

#endif /* INFINI_STATE_H */
