/*
 * ref.h - the test oracle: a plain double-precision CPU implementation of an
 * Infini-attention model, written straight from the equations (see ref.c for
 * the exact semantics) and sharing no code with the engine beyond reading
 * weights through eng_tensor_get().  The tests run it beside the GPU engine
 * and compare.  It is slow on purpose: clarity over speed.
 *
 * Besides the whole-model stream (ref_state, ref_step) it exposes each op on
 * its own so that the shader tests can check one kernel at a time.  All arrays
 * are double, row-major; shapes are given in the comments.
 */
#ifndef REF_H
#define REF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/model.h"

/* ---------------------------------------------------------------- stream */

/* One stream: position, per layer and kv head M and z, the partial-segment
 * K/V cache and scratch.  Its size is fixed at allocation. */
struct ref_state;

/*
 * ref_state_alloc creates a stream at position 0 (M = z = 0, empty cache) for
 * model m, which must outlive it.  Returns 0, INFINI_EINVAL for a config the
 * oracle cannot run (non-positive sizes, n_heads not a multiple of
 * n_kv_heads, odd head_dim with rope) or INFINI_ENOMEM.  *out is written only
 * on success; release it with ref_state_free.
 */
int ref_state_alloc(const struct eng_model *m, struct ref_state **out);

/* ref_state_free releases a stream; NULL is a no-op. */
void ref_state_free(struct ref_state *s);

/* ref_state_clone makes an independent copy of s (same model).  Returns 0 or
 * INFINI_ENOMEM. */
int ref_state_clone(const struct ref_state *s, struct ref_state **out);

/*
 * ref_step feeds one input at the stream's position: tok >= 0 a token id, or
 * tok < 0 and vec (float[H]) a raw input vector.  hidden (double[H], the
 * final-normed hidden state, i.e. the "embedding") and logits (double[V]) may
 * each be NULL.  If the token fills the segment the segment is compressed into
 * M, z afterwards.  Returns 0 or INFINI_EINVAL (token out of range, no input);
 * on error the state is unchanged.
 */
int ref_step(struct ref_state *s, int tok, const float *vec, double *hidden,
    double *logits);

/* ref_position returns the number of inputs the stream has seen. */
long ref_position(const struct ref_state *s);

/* ref_M returns the memory of (layer, kvh): hd*hd doubles, M[a*hd + b]. */
const double *ref_M(const struct ref_state *s, int layer, int kvh);

/* ref_z returns the normaliser of (layer, kvh): hd doubles. */
const double *ref_z(const struct ref_state *s, int layer, int kvh);

/* ref_state_bytes returns the bytes the stream holds (constant over its
 * life, whatever its length). */
size_t ref_state_bytes(const struct ref_state *s);

/* ------------------------------------------------------------------- ops */

/* ref_rmsnorm: out[n] = x / sqrt(mean(x^2) + eps) * w  (gemma: * (1 + w)).
 * out may equal x. */
void ref_rmsnorm(const double *x, const double *w, int n, double eps,
    bool gemma, double *out);

/* ref_rope rotates x[hd] in place (HF rotate_half) for position pos. */
void ref_rope(double *x, int hd, int pos, double theta);

/* ref_sigma: out[n] = ELU(x) + 1.  out may equal x. */
void ref_sigma(const double *x, int n, double *out);

/* ref_retrieve: out[hd] = (sq M) / (sq . z + eps), sq = sigma(q) [hd],
 * M [hd][hd], z [hd]. */
void ref_retrieve(const double *sq, const double *M, const double *z, int hd,
    double eps, double *out);

/* ref_mem_update compresses T rows of K [T][hd] (raw or roped as the model
 * chooses; sigma is applied here) and V [T][hd] into M [hd][hd] and z [hd],
 * by the linear or (delta) the delta rule. */
void ref_mem_update(double *M, double *z, const double *K, const double *V,
    int T, int hd, double eps, bool delta);

/* ref_attention: out[hd] = softmax_t(q . K_t / sqrt(hd)) V over rows
 * t = 0..n-1 of K [n][hd] and V [n][hd] (the caller passes only the causal
 * prefix).  n >= 1. */
void ref_attention(const double *q, const double *K, const double *V, int n,
    int hd, double *out);

/* ref_act applies the MLP activation a to x. */
double ref_act(double x, enum eng_act a);

/* ------------------------------------------------------------- sampling */

/* ref_rng_u32 is the counter-based generator the engine uses (PCG hash). */
uint32_t ref_rng_u32(uint64_t seed, uint64_t step);

/* ref_uniform returns (ref_rng_u32 >> 8) * 2^-24, in [0, 1). */
double ref_uniform(uint64_t seed, uint64_t step);

/*
 * ref_sample picks a token from logits[V].  temperature <= 0: argmax (lowest
 * id on ties).  Otherwise softmax(logits / temperature) restricted by top_k
 * (> 0 and < V to apply) and top_p (in (0, 1) to apply), drawn with
 * ref_uniform(seed, step); see ref.c.  Returns the token id, or -1 for
 * V <= 0, NULL logits or out of memory.
 */
int ref_sample(const double *logits, int V, double temperature, int top_k,
    double top_p, uint64_t seed, uint64_t step);

#endif /* REF_H */
