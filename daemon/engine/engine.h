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
	int matmul_variant;     /* -1: pick per device; else kernel index (tests) */
};

enum eng_out {
	ENG_OUT_NONE,
	ENG_OUT_EMBED,          /* result: [n, H] final-norm hidden per input */
	ENG_OUT_MEAN,           /* result: [H] mean over this job's inputs */
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
	int n;                          /* inputs, >= 1 */
	const int32_t *tokens;          /* [n] token ids, or NULL and ... */
	const float *vectors;           /* [n, H] raw input vectors */
	enum eng_out out;
	float *result;                  /* caller-owned, sized per out */
	const struct eng_sampler *sample; /* non-NULL: sample after the last input */
	int32_t *token;                 /* receives the sampled token */
};

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
/* Bytes of one stream's device state: constant, whatever its length. */
uint64_t eng_state_bytes(const struct eng *e);
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
 * eng_run processes jobs (each slot at most once per call).  Token ids must be
 * < vocab_size and vectors finite; a bad job fails the whole call with
 * INFINI_EINVAL before anything runs, so no stream changes.  Returns 0,
 * INFINI_EINVAL or INFINI_EDEVICE.
 */
int eng_run(struct eng *e, struct eng_job *jobs, int njobs, char *err,
    size_t errlen);

/* eng_profile_print writes accumulated per-op device time to f. */
void eng_profile_print(const struct eng *e, FILE *f);

/* Counters of the last submission, for tests of the recorder. */
void eng_last_counts(const struct eng *e, uint32_t *dispatches,
    uint32_t *barriers);

#endif /* ENG_ENGINE_H */
