/*
 * infini.h - libinfini, the C client of the infinid daemon.
 *
 * A client holds one NNG REQ socket to the daemon; every call opens its own
 * NNG context, so one client may be used from several threads at once.
 * Every function returns 0 or a positive INFINI_E* code (infini_err.h);
 * the daemon's message for the last failed call on this thread is available
 * from infini_errmsg().
 *
 * Outputs on failure: every output a call is given is emptied on entry,
 * before anything is checked or sent (results and structs zeroed, pointers
 * NULL, counts 0, id buffers ""), and filled only on success.  So a result
 * may be freed after any return, error or not, without being initialised
 * first; nothing else the caller passed is touched.  Results are released
 * with this library's *_free functions, never the caller's own free().
 */
#ifndef INFINI_H
#define INFINI_H

#ifdef __cplusplus
extern "C" {
#endif

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "infini_err.h"

#define INFINI_VERSION "0.1.0"
#define INFINI_DEFAULT_SOCKET "ipc:///run/infinid/infinid.sock"
#define INFINI_ID_MAX 128

typedef struct infini_client infini_client;

enum infini_output {
	INFINI_OUT_NONE = 0,
	INFINI_OUT_EMBEDDINGS = 1,   /* [n, hidden] */
	INFINI_OUT_MEAN = 2,         /* [1, hidden] */
	INFINI_OUT_LAST = 3,         /* [1, hidden] */
	INFINI_OUT_LOGITS = 4,       /* [n, vocab] */
	INFINI_OUT_LAST_LOGITS = 5,  /* [1, vocab] */
};

struct infini_health {
	char version[32];
	char model[256];
	char device[256];
	uint64_t uptime_ms;
	uint32_t streams;
	uint64_t model_fingerprint;
	uint32_t hidden_size, vocab_size, segment_size;
};

/* The outcome of a push: the stream's position afterwards and, when an
 * output was asked for, data[rows * cols] (owned by the caller: free with
 * infini_result_free; NULL with rows = cols = 0 when there is none).  res
 * may be NULL in the push calls when nothing is wanted back. */
struct infini_result {
	uint64_t position;
	uint64_t segments;
	uint32_t rows, cols;
	float *data;
};

/* Sampling values out of range make infini_generate fail with
 * INFINI_EINVAL, naming the field, before anything is sent. */
struct infini_sampling {
	float temperature;           /* >= 0, finite; 0: greedy */
	uint32_t top_k;              /* < 2^31; 0: off */
	float top_p;                 /* in (0, 1]; 0 or 1: off */
	uint64_t seed;
};

struct infini_stream_info {
	char id[INFINI_ID_MAX + 1];
	uint64_t position, segments, idle_ms;
	uint32_t owner_uid;
	bool generating;
	bool resident;               /* holds a device slot; else spilled */
};

struct infini_stats {
	uint64_t requests, errors, tokens_in, tokens_out, submissions;
	uint64_t device_busy_us, state_bytes_per_stream, uptime_ms;
	uint32_t streams, max_streams;
	uint32_t max_resident_streams;  /* streams on the device at once */
	uint32_t resident_streams;      /* streams holding a device slot now */
	uint64_t page_ins;              /* spilled streams loaded back */
	uint64_t evictions;             /* idle streams spilled for room */
	uint64_t autosnapshots;
	uint64_t spill_errors;          /* failed spill writes or loads */
};

/*
 * infini_on_token is called for each generated token, in order, with the
 * token id and its text: whole UTF-8 characters only, so a token that ends
 * inside a character gives len 0 and the token completing it carries its
 * bytes; special tokens give len 0.  bytes is NULL (len 0) when the model
 * has no tokenizer.
 * Heartbeat: while the daemon has no new token (about once a second) it is
 * also called with token -1, bytes NULL, len 0, so a caller can cancel
 * while waiting; ignore -1 otherwise.  Return nonzero to cancel the
 * generation: infini_generate then sends Cancel and returns
 * INFINI_ECANCELED.
 */
typedef int (*infini_on_token)(void *arg, int32_t token, const char *bytes,
    size_t len);

/*
 * infini_connect dials url (NULL or "": $INFINI_SOCKET, else the default
 * socket; ipc://PATH or tcp://HOST:PORT) and checks the daemon answers
 * Health within timeout_ms (<= 0: 60000).  Local URLs (ipc, inproc) with no
 * listener fail at once.  Returns 0, INFINI_EUNAVAILABLE ("no daemon at
 * URL ..." in infini_errmsg), INFINI_EPERM, INFINI_EINVAL for a bad URL or
 * the daemon's own Health error.  *out is owned by the caller: release with
 * infini_close.  The client reconnects by itself if the daemon restarts.
 */
int infini_connect(const char *url, int timeout_ms, infini_client **out);
/* infini_close closes the socket and frees c (NULL: no-op).  No call on c
 * may be running or start afterwards. */
void infini_close(infini_client *c);

/* infini_set_timeout sets the per-call deadline (ms; default 60000; <= 0:
 * wait forever).  A call past it returns INFINI_ETIMEDOUT; one that found
 * no connection to the daemon returns INFINI_EUNAVAILABLE.  A Poll's own
 * wait inside infini_generate is added to it. */
void infini_set_timeout(infini_client *c, int timeout_ms);

/* Text flags (infini_set_text_flags). */
#define INFINI_TEXT_PLAIN_SPECIAL 1u  /* special-token strings are plain text */

/* infini_set_text_flags sets how the daemon tokenizes the text of the
 * Push and Generate requests c sends from now on (sent with each request;
 * default 0: special-token strings such as "<|im_start|>" written in the
 * text become their tokens, as Hugging Face tokenizers do). */
void infini_set_text_flags(infini_client *c, unsigned flags);

/* infini_errmsg: the text for this thread's last failure: a daemon error
 * reads "CODE: message" ("NOT_FOUND: no stream 'x'"), a local one says
 * what failed ("Push: no reply from ipc://... within 5000 ms").  Not
 * cleared by successful calls. */
const char *infini_errmsg(void);

int infini_health(infini_client *c, struct infini_health *out);

/* infini_open opens stream id (NULL or "": the daemon picks one).  The
 * stream's id is written to id_out (may be NULL; INFINI_ID_MAX + 1 bytes)
 * and whether it was new to *created (may be NULL).  reuse: an existing
 * stream is fine, else it is INFINI_EEXIST.  Stream ids are 1-128 of
 * [A-Za-z0-9._:-]; others give INFINI_EINVAL before anything is sent. */
int infini_open(infini_client *c, const char *id, bool reuse, char *id_out,
    bool *created);
int infini_close_stream(infini_client *c, const char *id);
int infini_fork(infini_client *c, const char *id, const char *new_id,
    char *id_out);
/* infini_list returns *n infos in an array owned by the caller: release
 * it with infini_list_free (non-NULL even when *n is 0). */
int infini_list(infini_client *c, struct infini_stream_info **out, size_t *n);
void infini_list_free(struct infini_stream_info *v);
int infini_stats(infini_client *c, struct infini_stats *out);

int infini_push_tokens(infini_client *c, const char *id, const int32_t *tokens,
    size_t n, enum infini_output want, struct infini_result *res);
int infini_push_text(infini_client *c, const char *id, const char *text,
    size_t len, enum infini_output want, struct infini_result *res);
int infini_push_vectors(infini_client *c, const char *id, const float *data,
    size_t n, uint32_t dim, enum infini_output want,
    struct infini_result *res);
void infini_result_free(struct infini_result *res);

/* What infini_generate is to do; zero what you do not set (a designated
 * initializer does).  Nothing here is kept after the call returns. */
struct infini_gen_opts {
	const int32_t *prompt;       /* prompt tokens, nprompt of them, or */
	size_t nprompt;
	const char *text;            /* prompt text (NUL-terminated); not both */
	uint32_t max_tokens;         /* 1..the daemon's max_generate */
	const struct infini_sampling *sampling;  /* NULL: greedy */
	const char *const *stop;     /* NULL-terminated stop strings, or NULL */
	infini_on_token on_token;    /* NULL: tokens are not reported */
	void *arg;                   /* on_token's first argument */
};

/*
 * infini_generate pushes o's prompt (none: the generation continues the
 * stream; on a stream holding no token it ends at once, finish "error")
 * and generates up to o->max_tokens, calling
 * o->on_token as tokens arrive (long-polling the daemon).  Returns 0 when
 * the generation ended (length, stop, eos), INFINI_ECANCELED when
 * on_token stopped it (see the heartbeat above) or the daemon cancelled
 * it, INFINI_EINVAL for o NULL, both prompts or bad sampling values
 * (naming the field, before anything is sent), or the error of the
 * failing call; after a Poll fails the daemon reaps the generation itself
 * 30 s later.  finish (may be NULL, 16 bytes) receives the finish reason
 * ("cancelled" after a cancel; "" when nothing was started).
 */
int infini_generate(infini_client *c, const char *id,
    const struct infini_gen_opts *o, char *finish);

/* A named snapshot, as infini_list_snapshots reports it. */
struct infini_snapshot_info {
	char name[INFINI_ID_MAX + 1];
	char stream_id[INFINI_ID_MAX + 1]; /* the stream it was taken of */
	uint32_t owner_uid;
	uint64_t bytes;              /* file size */
	uint64_t position;           /* the stream's position then */
	uint64_t created_ms;         /* Unix time, ms */
};

/* infini_snapshot flags. */
#define INFINI_SNAP_OVERWRITE 1u  /* replace an existing name (yours) */

/* infini_snapshot writes the stream's snapshot as the named snapshot name
 * (may be NULL) and/or returns its bytes in *data (owned by the caller:
 * release with infini_data_free; data may be NULL to skip export; not
 * both NULL).  *len (may be NULL) receives the
 * snapshot's size in bytes.  A name that exists is INFINI_EEXIST
 * (infini_snapshot_ex with INFINI_SNAP_OVERWRITE replaces it), one of
 * another user's INFINI_EPERM.  Names are 1-128 of [A-Za-z0-9._:-], not
 * starting with '.'; others give INFINI_EINVAL before anything is sent. */
int infini_snapshot(infini_client *c, const char *id, const char *name,
    uint8_t **data, size_t *len);
/* infini_snapshot_ex is infini_snapshot with flags (INFINI_SNAP_*). */
int infini_snapshot_ex(infini_client *c, const char *id, const char *name,
    unsigned flags, uint8_t **data, size_t *len);
/* infini_list_snapshots returns the named snapshots the caller may use
 * (all for root and admin_group), in name order: *n infos in an array
 * owned by the caller, released with infini_snapshot_list_free (non-NULL
 * even when *n is 0). */
int infini_list_snapshots(infini_client *c,
    struct infini_snapshot_info **out, size_t *n);
void infini_snapshot_list_free(struct infini_snapshot_info *v);
/* infini_data_free releases the bytes infini_snapshot exported (NULL:
 * no-op). */
void infini_data_free(uint8_t *data);
/* infini_delete_snapshot deletes a named snapshot of the caller's:
 * INFINI_ENOENT when there is none, INFINI_EPERM when it is another
 * user's. */
int infini_delete_snapshot(infini_client *c, const char *name);
/* infini_restore creates stream id from a named snapshot (data NULL) or
 * from exported bytes (name NULL); *position (may be NULL) receives the
 * restored stream's position. */
int infini_restore(infini_client *c, const char *id, const char *name,
    const uint8_t *data, size_t len, uint64_t *position);

#ifdef __cplusplus
}
#endif
#endif /* INFINI_H */
