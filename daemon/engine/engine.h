/*
 * engine.h - running an Infini-attention model on a Vulkan device for many
 * streams at once.
 *
 * An engine owns the device copy of a model's weights, a fixed number of
 * stream slots (each slot: per layer and kv head the memory M and z, and the
 * K/V cache of the unfinished segment), and activation scratch.  eng_run takes
 * work for several streams and runs it in batched submissions: the tokens of
 * all streams go through each projection together; a segment is compressed
 * into memory exactly once, when it fills.
 *
 * The engine is not thread-safe: one thread (the daemon's scheduler) drives it.
 */
#ifndef ENG_ENGINE_H
#define ENG_ENGINE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/model.h"

struct eng;

struct eng_opts {
	const char *device;     /* gpu_dev_open selector; NULL: best */
	int max_streams;        /* stream slots; 0: 16 */
	int max_batch;          /* rows per submission; 0: 256 */
	bool profile;           /* per-dispatch timestamps */
	/* Kernel variants are chosen per device (INFINI_KERNELS forces one;
	 * docs/kernels.md). */
};

enum eng_out {
	ENG_OUT_NONE,
	ENG_OUT_EMBED,          /* result: [n, H] final-norm hidden per input */
	ENG_OUT_MEAN,           /* sum: [H] each input's hidden added to it */
	ENG_OUT_LAST,           /* result: [H] hidden of the last input */
	ENG_OUT_LOGITS,         /* result: [n, V] */
	ENG_OUT_LAST_LOGITS,    /* result: [V] logits of the last input */
};

/*
 * A sampler, applied on the device to a job's last logits row with exactly
 * the semantics of ref_sample (tests/ref.c): softmax(logits / temperature),
 * keep the tokens at or above the top-k and top-p cutoffs, draw with the
 * counter-based RNG at (seed, the slot's sample step).  Each sampled token
 * advances the slot's step by one (eng_stream_sample_step).
 */
struct eng_sampler {
	float temperature;      /* <= 0: greedy argmax (lowest id on ties) */
	int top_k;              /* 0 or >= vocab: off; < 0: INFINI_EINVAL */
	float top_p;            /* >= 1 or <= 0: off */
	uint64_t seed;
};

/* One stream's share of an eng_run call. */
struct eng_job {
	int slot;
	int n;                          /* inputs, >= 1; or 0 with a sampler:
	                                 * sample again from the last input */
	const int32_t *tokens;          /* [n] token ids, or NULL and ... */
	const float *vectors;           /* [n, H] raw input vectors */
	enum eng_out out;
	float *result;                  /* caller-owned, sized per out */
	double *sum;                    /* ENG_OUT_MEAN: [H], added to */
	const struct eng_sampler *sample; /* non-NULL: sample after the last input */
	int32_t *token;                 /* receives the sampled token */
};

/*
 * An output assembled over the jobs of one request (output.c): its shape,
 * where each job's rows go, and the mean's running sum.  Every user of
 * eng_run that serves inputs in several jobs goes through it.
 */
struct eng_output {
	enum eng_out kind;
	int n;                          /* inputs in all */
	int rows, cols;                 /* the shape of data */
	float *data;                    /* [rows, cols] (owned) */
	double *sum;                    /* ENG_OUT_MEAN: [cols] (owned) */
};

/* eng_output_shape: the rows and columns of an output of kind over n
 * inputs (0 and 0 for ENG_OUT_NONE). */
void eng_output_shape(const struct eng_config *c, enum eng_out kind, int n,
    int *rows, int *cols);
/* eng_output_init sizes and allocates o for n inputs: 0 or INFINI_ENOMEM
 * (o then empty).  o owns its buffers until eng_output_fini. */
int eng_output_init(struct eng_output *o, const struct eng_config *c,
    enum eng_out kind, int n);
void eng_output_fini(struct eng_output *o);
/* eng_output_job points job j, which runs inputs [done, done + j->n), at
 * its part of o (out, result, sum). */
void eng_output_job(const struct eng_output *o, int done, struct eng_job *j);
/* eng_output_finish completes o after its last job (divides the mean). */
void eng_output_finish(struct eng_output *o);

/*
 * eng_open uploads model m to a device and prepares slots and pipelines.
 * m must outlive the engine.  Returns 0, INFINI_ENODEV, INFINI_ENOMEM,
 * INFINI_EUNSUPPORTED; err gets the reason.  *out owned by the caller.
 */
int eng_open(const struct eng_model *m, const struct eng_opts *o,
    struct eng **out, char *err, size_t errlen);
void eng_close(struct eng *e);

const struct eng_config *eng_config(const struct eng *e);
const char *eng_device_name(const struct eng *e);
/* eng_kernel_choice writes which kernel variants the engine chose for its
 * device (INFINI_KERNELS forces one; docs/kernels.md) as one line to
 * buf[n], e.g. "matmul coop (f16 16x16x16 tiles), attention portable". */
void eng_kernel_choice(const struct eng *e, char *buf, size_t n);
/* eng_validation_errors: messages from the validation layer so far. */
unsigned eng_validation_errors(const struct eng *e);

/* eng_stream_alloc takes a free slot with zeroed memory at position 0.
 * Returns 0 or INFINI_EFULL. */
int eng_stream_alloc(struct eng *e, int *slot);
void eng_stream_free(struct eng *e, int slot);
int64_t eng_stream_pos(const struct eng *e, int slot);
/*
 * eng_stream_sample_step: tokens sampled from the slot so far, the counter
 * the sampler's RNG draws with (ref_uniform(seed, step)); 0 after
 * eng_stream_alloc, copied by eng_stream_copy.  eng_stream_set_sample_step
 * restores it (snapshots).
 */
uint64_t eng_stream_sample_step(const struct eng *e, int slot);
void eng_stream_set_sample_step(struct eng *e, int slot, uint64_t step);
/* eng_stream_copy copies src's whole state into dst (fork). */
int eng_stream_copy(struct eng *e, int src, int dst);
/* eng_stream_has_last: can a job without inputs sample this stream (it has
 * processed an input since it was allocated or imported)? */
bool eng_stream_has_last(const struct eng *e, int slot);

/* Bytes of one stream's device state: constant, whatever its length. */
uint64_t eng_state_bytes(const struct eng *e);
/* eng_state_bytes_of: the same for a model's config, before any engine
 * exists (the daemon sizes its slot pool with it). */
uint64_t eng_state_bytes_of(const struct eng_config *c);
/* eng_device_bytes: device memory the engine holds now, by purpose. */
void eng_device_bytes(const struct eng *e, uint64_t *weights, uint64_t *state,
    uint64_t *act);

/*
 * eng_stream_read_mem copies layer/kv-head memory of a slot to the host:
 * M is [hd, hd] (row a, column b), z is [hd].  Either may be NULL.
 */
int eng_stream_read_mem(struct eng *e, int slot, int layer, int kvh,
    float *M, float *z);

/*
 * ENG_POS_MAX bounds a stream's position (tokens consumed): eng_stream_import
 * refuses a state past it and eng_run a job that would pass it, so the row
 * offsets computed from a position can never wrap into another slot.  At a
 * million tokens a second it lasts nine years.
 */
#define ENG_POS_MAX (INT64_C(1) << 48)

/*
 * One stream's whole state on the host, for snapshots.  Only the first
 * rows = pos mod segment_size rows of the unfinished segment's cache matter
 * (later rows are never read before they are rewritten), so only those are
 * kept.  Floats are as the device holds them (fp32).
 */
struct eng_stream_state {
	int64_t pos;            /* tokens consumed */
	uint64_t sample_step;   /* tokens sampled (RNG counter) */
	int n_layers, n_kv_heads, head_dim, segment_size;
	bool has_kmem;          /* km present: memory reads unrotated k */
	int rows;               /* pos mod segment_size */
	float *M;               /* [n_layers][nkv][hd][hd] */
	float *z;               /* [n_layers][nkv][hd] */
	float *kc;              /* [n_layers][nkv][rows][hd] k as local attn sees it */
	float *vc;              /* [n_layers][nkv][rows][hd] */
	float *km;              /* [n_layers][nkv][rows][hd] unrotated k, or NULL */
	/* The final hidden state of the last input, from which a Generate
	 * without a prompt samples: n_last is hidden_size, or 0 when the
	 * stream has had no input (last is then NULL). */
	int n_last;
	float *last;
};

/*
 * eng_stream_state_init sizes st for a stream of that shape at position pos
 * and allocates its arrays, zeroed.  Returns 0, INFINI_EINVAL (a dimension
 * <= 0, pos < 0, or sizes that overflow) or INFINI_ENOMEM; on error st is
 * left empty.  Release with eng_stream_state_fini.
 */
int eng_stream_state_init(struct eng_stream_state *st, int n_layers,
    int n_kv_heads, int head_dim, int segment_size, bool has_kmem,
    int64_t pos);
/* eng_stream_state_fini frees st's arrays and clears it; a cleared or
 * zeroed st is a no-op. */
void eng_stream_state_fini(struct eng_stream_state *st);
/* eng_stream_state_floats: floats in st's M+z and in its cache arrays. */
void eng_stream_state_floats(const struct eng_stream_state *st,
    size_t *mem, size_t *cache);

/*
 * eng_stream_export copies slot's state to the host.  *out is initialised
 * here and owned by the caller (eng_stream_state_fini), written only on
 * success.  Returns 0, INFINI_EINVAL (no such slot in use), INFINI_ENOMEM
 * or INFINI_EDEVICE.
 */
int eng_stream_export(struct eng *e, int slot, struct eng_stream_state *out);
/*
 * eng_stream_import replaces the state of slot (allocated, in use) with st:
 * memory, the cache rows, position, sample step and last hidden state;
 * later cache rows are zeroed.  st's shape must match the engine (layers,
 * kv heads, head_dim, segment size, has_kmem, n_last 0 or hidden_size) and
 * rows must equal pos mod segment_size, pos must be in [0, ENG_POS_MAX], else
 * INFINI_EINVAL and the slot is unchanged.  INFINI_EDEVICE leaves the slot's
 * state undefined (free it).  st stays the caller's.
 */
int eng_stream_import(struct eng *e, int slot,
    const struct eng_stream_state *st);

/*
 * eng_run processes jobs (each slot at most once per call).  Token ids must be
 * < vocab_size and vectors finite; a bad job fails the whole call with
 * INFINI_EINVAL before anything runs, so no stream changes.  Returns 0,
 * INFINI_EINVAL, INFINI_ENOMEM (host memory, or the device ran out of memory
 * for a submission) or INFINI_EDEVICE.
 *
 * The work runs in rounds, one submission each; a round never crosses the
 * end of a stream's segment.  When a round fails, every stream is left at
 * the end of its last completed round: its position (eng_stream_pos) tells
 * how many of its inputs went in, and its state is exactly that of those
 * inputs.  The exception is a lost device (eng_lost): then no slot's state
 * can be trusted and every later call fails.
 */
int eng_run(struct eng *e, struct eng_job *jobs, int njobs, char *err,
    size_t errlen);

/* eng_lost: has the device been lost?  Nothing on it can be trusted. */
bool eng_lost(const struct eng *e);

/*
 * Fault injection for tests: eng_fault_arm makes the (skip+1)-th round from
 * now that includes slot fail as if the device ran out of memory
 * (ENG_FAULT_OOM: the round has no effect), was lost while running it
 * (ENG_FAULT_LOST) or hung for a while (ENG_FAULT_HANG).  eng_fault_left returns how many such rounds are still
 * to be skipped, or -1 when the fault has fired or none is armed.
 */
enum eng_fault {
	ENG_FAULT_NONE,
	ENG_FAULT_OOM,
	ENG_FAULT_LOST,
	ENG_FAULT_HANG,         /* the round takes GPU_HANG_MS longer */
};
void eng_fault_arm(struct eng *e, int slot, enum eng_fault f, int skip);
int eng_fault_left(const struct eng *e);

/* eng_profile_print writes accumulated per-op device time to f. */
void eng_profile_print(const struct eng *e, FILE *f);

#endif /* ENG_ENGINE_H */
