/*
 * engine.c - engine set-up and stream slots.
 *
 * eng_open opens the device, uploads the weights (weights.c), builds the
 * pipelines, and allocates the per-layer state arenas and the activation
 * scratch.  Stream state is laid out slot-major inside each layer's arena so
 * that one dispatch can serve every stream in a batch with a single binding
 * per layer.  The forward pass itself is in forward.c.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_impl.h"
#include "infini_err.h"

static int
make_pipes(struct eng *e, char *err, size_t errlen)
{
	const struct gpu_info *gi = gpu_dev_info(e->dev);

	for (int k = 0; k < ENG_K_COUNT; k++) {
		uint32_t spec[GPU_MAX_SPEC];
		/* Left NULL, the engine takes another kernel (forward.c). */
		if (!eng_kernel_fits(gi, (enum eng_kernel_id)k,
		    (uint32_t)e->c.head_dim))
			continue;
		uint32_t nspec = eng_kernel_spec(gi, (enum eng_kernel_id)k,
		    (uint32_t)e->c.head_dim, spec);
		int rv = gpu_pipe_create(e->dev, &eng_kernels[k], spec, nspec,
		    &e->pipe[k]);
		/* Kernels the binary or the device lacks stay NULL; the
		 * kernel choice (matmul.c) never picks them. */
		if (rv == INFINI_EUNSUPPORTED && eng_kernels[k].need != 0)
			continue;
		if (rv != 0) {
			snprintf(err, errlen, "cannot build pipeline %s",
			    eng_kernels[k].name);
			return (rv);
		}
	}
	return (0);
}

static int
alloc_act(struct eng *e, struct gpu_buf *b, size_t floats)
{
	return (gpu_buf_alloc(e->dev, GPU_POOL_ACT, floats * sizeof(float), b));
}

static int
alloc_state(struct eng *e, char *err, size_t errlen)
{
	const struct eng_config *c = &e->c;
	uint64_t S = (uint64_t)e->max_streams;
	int rv;

	e->kv_stride = (uint32_t)(c->n_kv_heads * c->segment_size * c->head_dim);
	e->m_stride = (uint32_t)(c->n_kv_heads * c->head_dim * c->head_dim);
	e->z_stride = (uint32_t)(c->n_kv_heads * c->head_dim);
	if (S * e->kv_stride * 4 > e->binding_limit ||
	    S * e->m_stride * 4 > e->binding_limit) {
		snprintf(err, errlen, "%d stream slots do not fit one binding "
		    "per layer (%llu bytes); lower max_streams", e->max_streams,
		    (unsigned long long)e->binding_limit);
		return (INFINI_EINVAL);
	}
	for (int l = 0; l < c->n_layers; l++) {
		struct eng_dlayer *d = &e->L[l];
		if ((rv = gpu_buf_alloc(e->dev, GPU_POOL_STATE,
		    S * e->kv_stride * 4, &d->kc)) != 0 ||
		    (rv = gpu_buf_alloc(e->dev, GPU_POOL_STATE,
		    S * e->kv_stride * 4, &d->vc)) != 0 ||
		    (e->sep_kmem && (rv = gpu_buf_alloc(e->dev, GPU_POOL_STATE,
		    S * e->kv_stride * 4, &d->km)) != 0) ||
		    (rv = gpu_buf_alloc(e->dev, GPU_POOL_STATE,
		    S * e->m_stride * 4, &d->M)) != 0 ||
		    (rv = gpu_buf_alloc(e->dev, GPU_POOL_STATE,
		    S * e->z_stride * 4, &d->z)) != 0) {
			snprintf(err, errlen, "out of device memory for stream "
			    "state (%d slots)", e->max_streams);
			return (rv);
		}
	}
	if ((rv = gpu_buf_alloc(e->dev, GPU_POOL_STATE,
	    S * (uint64_t)c->hidden_size * 4, &e->last_hid)) != 0) {
		snprintf(err, errlen, "out of device memory for stream state");
		return (rv);
	}
	return (0);
}

static int
alloc_acts(struct eng *e, char *err, size_t errlen)
{
	const struct eng_config *c = &e->c;
	size_t R = (size_t)e->max_batch, H = (size_t)c->hidden_size;
	size_t A = (size_t)c->n_heads * c->head_dim;
	size_t QKV = (size_t)(c->n_heads + 2 * c->n_kv_heads) * c->head_dim;
	size_t I = (size_t)c->intermediate_size, V = (size_t)c->vocab_size;
	size_t lr = e->binding_limit / (V * 4);
	int rv;

	e->logit_rows = (int)(lr < R ? lr : R);
	if (e->logit_rows < 1) {
		snprintf(err, errlen, "one row of logits exceeds a binding");
		return (INFINI_EUNSUPPORTED);
	}
	/* One sampled row per stream per submission; the sampler's scratch
	 * row is two floats per logit. */
	lr = e->binding_limit / (V * 8);
	e->samp_rows = e->max_streams < e->logit_rows ? e->max_streams :
	    e->logit_rows;
	if ((size_t)e->samp_rows > lr)
		e->samp_rows = (int)lr;
	if (e->samp_rows < 1) {
		snprintf(err, errlen, "one sampler row exceeds a binding");
		return (INFINI_EUNSUPPORTED);
	}
	if ((rv = alloc_act(e, &e->ids, R)) != 0 ||
	    (rv = alloc_act(e, &e->rows, 2 * R)) != 0 ||
	    (rv = alloc_act(e, &e->vecs, R * H)) != 0 ||
	    (rv = alloc_act(e, &e->x, R * H)) != 0 ||
	    (rv = alloc_act(e, &e->xn, R * (H > A ? H : A))) != 0 ||
	    (rv = alloc_act(e, &e->qkv, R * QKV)) != 0 ||
	    (rv = alloc_act(e, &e->qr, R * A)) != 0 ||
	    (rv = alloc_act(e, &e->ad, R * A)) != 0 ||
	    (rv = alloc_act(e, &e->am, R * A)) != 0 ||
	    (rv = alloc_act(e, &e->gu, R * 2 * I)) != 0 ||
	    (rv = alloc_act(e, &e->hm, R * I)) != 0 ||
	    (rv = alloc_act(e, &e->hid, R * H)) != 0 ||
	    (rv = alloc_act(e, &e->lrows, (size_t)e->logit_rows * H)) != 0 ||
	    (rv = alloc_act(e, &e->logits, (size_t)e->logit_rows * V)) != 0 ||
	    (rv = alloc_act(e, &e->slots, (size_t)e->max_streams)) != 0 ||
	    (rv = alloc_act(e, &e->samp_par, (size_t)e->samp_rows * 8)) != 0 ||
	    (rv = alloc_act(e, &e->samp_e, (size_t)e->samp_rows * V * 2)) != 0 ||
	    (rv = alloc_act(e, &e->samp_tok, (size_t)e->samp_rows)) != 0) {
		snprintf(err, errlen, "out of device memory for activations "
		    "(max_batch %d)", e->max_batch);
		return (rv);
	}
	return (0);
}

int
eng_open(const struct eng_model *m, const struct eng_opts *o,
    struct eng **out, char *err, size_t errlen)
{
	struct eng *e;
	const struct gpu_info *gi;
	const char *lim;
	char dummy[8];
	int rv;

	if (err == NULL) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	if (m->cfg.head_dim > 256 || m->cfg.hidden_size % 4 != 0 ||
	    m->cfg.intermediate_size % 4 != 0) {
		snprintf(err, errlen, "unsupported shape: head_dim must be <= 256, "
		    "hidden and intermediate sizes multiples of 4");
		return (INFINI_EUNSUPPORTED);
	}
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return (INFINI_ENOMEM);
	e->m = m;
	e->c = m->cfg;
	e->max_streams = o && o->max_streams > 0 ? o->max_streams : 16;
	e->max_batch = o && o->max_batch > 0 ? o->max_batch : 256;
	e->sep_kmem = e->c.rope && !e->c.memory_rope;
	if ((e->L = calloc((size_t)e->c.n_layers, sizeof(*e->L))) == NULL ||
	    (e->used = calloc((size_t)e->max_streams, sizeof(bool))) == NULL ||
	    (e->pos = calloc((size_t)e->max_streams, sizeof(int64_t))) == NULL ||
	    (e->sample_step = calloc((size_t)e->max_streams,
	    sizeof(uint64_t))) == NULL ||
	    (e->has_last = calloc((size_t)e->max_streams, sizeof(bool))) == NULL) {
		rv = INFINI_ENOMEM;
		goto fail;
	}
	if ((rv = gpu_dev_open(o ? o->device : NULL, &e->dev, err, errlen)) != 0)
		goto fail;
	gi = gpu_dev_info(e->dev);
	e->binding_limit = gi->max_storage_range;
	e->wpart_limit = e->binding_limit;
	/* Tests lower the weight part size to exercise split tensors on tiny
	 * models. */
	if ((lim = getenv("INFINI_MAX_BINDING_BYTES")) != NULL &&
	    strtoull(lim, NULL, 10) > 0 &&
	    strtoull(lim, NULL, 10) < e->wpart_limit)
		e->wpart_limit = strtoull(lim, NULL, 10);
	if ((e->mm = eng_mm_choose(gi)) == ENG_MM_COUNT) {
		snprintf(err, errlen, "INFINI_KERNELS=%s: no such kernel family "
		    "on %s (portable, texel, texel-tile, texel-m4, texel-m1, "
		    "coop where the device has cooperative matrices)",
		    getenv("INFINI_KERNELS"), gi->name);
		rv = INFINI_EUNSUPPORTED;
		goto fail;
	}
	/* Subgroup reductions where the device has them: one barrier per
	 * row instead of a shared-memory tree (a coroutine switch each on
	 * llvmpipe, a stall each on a GPU). */
	e->rms_sg = gi->subgroup_arith;
	switch (m->embed->dtype) {
	case ENG_F16: e->k_embed = ENG_K_EMBED_F16; break;
	case ENG_BF16: e->k_embed = ENG_K_EMBED_BF16; break;
	default: e->k_embed = ENG_K_EMBED_F32; break;
	}
	if ((rv = gpu_cmd_alloc(e->dev, &e->cmd)) != 0)
		goto fail;
	gpu_cmd_profile(e->cmd, o && o->profile);
	if ((rv = make_pipes(e, err, errlen)) != 0 ||
	    (rv = eng_weights_upload(e, err, errlen)) != 0 ||
	    (rv = alloc_state(e, err, errlen)) != 0 ||
	    (rv = alloc_acts(e, err, errlen)) != 0)
		goto fail;
	if ((rv = eng_run_buf_init(e)) != 0) {
		snprintf(err, errlen, "out of host memory for run scratch");
		goto fail;
	}
	if ((rv = eng_mm_open(e)) != 0 || (rv = eng_ops_open(e)) != 0) {
		snprintf(err, errlen, "cannot make texel views");
		goto fail;
	}
	if ((rv = eng_tune_open(e)) != 0) {
		snprintf(err, errlen, "the device failed while timing the "
		    "matmul shapes");
		goto fail;
	}
	gpu_cmd_profile(e->cmd, o && o->profile);
	/* The device holds its own copy of every weight now; on CPU drivers
	 * the mapped file would otherwise count twice in the RSS. */
	eng_model_drop_pages(m);
	*out = e;
	return (0);
fail:
	eng_close(e);
	return (rv);
}

void
eng_close(struct eng *e)
{
	if (e == NULL)   /* before the array below takes member addresses */
		return;
	struct gpu_buf *acts[] = { &e->ids, &e->rows, &e->vecs, &e->x, &e->xn,
	    &e->qkv, &e->qr, &e->ad, &e->am, &e->gu, &e->hm, &e->hid,
	    &e->lrows, &e->logits, &e->slots, &e->samp_par, &e->samp_e,
	    &e->samp_tok };

	if (e->dev != NULL) {
		eng_mm_close(e);
		eng_ops_close(e);
		eng_weights_free(e);
		for (int l = 0; l < e->c.n_layers && e->L != NULL; l++) {
			gpu_buf_free(e->dev, &e->L[l].kc);
			gpu_buf_free(e->dev, &e->L[l].vc);
			gpu_buf_free(e->dev, &e->L[l].km);
			gpu_buf_free(e->dev, &e->L[l].M);
			gpu_buf_free(e->dev, &e->L[l].z);
		}
		gpu_buf_free(e->dev, &e->last_hid);
		for (size_t i = 0; i < sizeof(acts) / sizeof(acts[0]); i++)
			gpu_buf_free(e->dev, acts[i]);
		for (int k = 0; k < ENG_K_COUNT; k++)
			gpu_pipe_free(e->dev, e->pipe[k]);
		gpu_cmd_free(e->cmd);
		gpu_dev_free(e->dev);
	}
	eng_run_buf_fini(e);
	free(e->L);
	free(e->used);
	free(e->pos);
	free(e->sample_step);
	free(e->has_last);
	free(e);
}

const struct eng_config *
eng_config(const struct eng *e)
{
	return (&e->c);
}

const char *
eng_device_name(const struct eng *e)
{
	return (gpu_dev_info(e->dev)->name);
}

void
eng_kernel_choice(const struct eng *e, char *buf, size_t n)
{
	const struct gpu_info *gi = gpu_dev_info(e->dev);

	if (e->mm == ENG_MM_COOP)
		snprintf(buf, n, "matmul coop (f16 %ux%ux%u tiles; f32 weights "
		    "portable), attention %s, rmsnorm %s", gi->coop_m,
		    gi->coop_n, gi->coop_k, e->coop_ops ? "coop" : "portable",
		    e->rms_sg ? "subgroup" : "portable");
	else if (e->mm == ENG_MM_TEXEL)
		snprintf(buf, n, "matmul texel (1-row shape up to m %u, 4-row up "
		    "to %u, %s), attention %s, rmsnorm %s", e->tune.m1_max,
		    e->tune.m4_max, e->tune.measured ? "measured now" :
		    e->tune.cached ? "cached" : "defaults",
		    e->texel_ops ? "texel" : "portable",
		    e->rms_sg ? "subgroup" : "portable");
	else
		snprintf(buf, n, "matmul %s, attention %s, rmsnorm %s",
		    eng_mm_var_name(e->mm), e->texel_ops ? "texel" : "portable",
		    e->rms_sg ? "subgroup" : "portable");
}

unsigned
eng_validation_errors(const struct eng *e)
{
	return (gpu_dev_validation_errors(e->dev));
}

bool
eng_lost(const struct eng *e)
{
	return (gpu_lost(e->dev));
}

void
eng_fault_arm(struct eng *e, int slot, enum eng_fault f, int skip)
{
	e->fault = f;
	e->fault_slot = slot;
	e->fault_skip = skip;
}

int
eng_fault_left(const struct eng *e)
{
	return (e->fault == ENG_FAULT_NONE ? -1 : e->fault_skip);
}

uint64_t
eng_state_bytes_of(const struct eng_config *c)
{
	/* Per layer: K and V (and the unrotated K when the memory reads
	 * keys without RoPE) of one segment, M and z; and the last hidden. */
	uint64_t nkv = (uint64_t)c->n_kv_heads, hd = (uint64_t)c->head_dim;
	uint64_t kv = nkv * (uint64_t)c->segment_size * hd *
	    (c->rope && !c->memory_rope ? 3 : 2);
	return ((kv + nkv * hd * hd + nkv * hd) * 4 * (uint64_t)c->n_layers +
	    (uint64_t)c->hidden_size * 4);
}

uint64_t
eng_state_bytes(const struct eng *e)
{
	return (eng_state_bytes_of(&e->c));
}

void
eng_device_bytes(const struct eng *e, uint64_t *weights, uint64_t *state,
    uint64_t *act)
{
	*weights = gpu_pool_bytes(e->dev, GPU_POOL_WEIGHTS);
	*state = gpu_pool_bytes(e->dev, GPU_POOL_STATE);
	*act = gpu_pool_bytes(e->dev, GPU_POOL_ACT);
}

/* slot_zero clears every arena range of a slot. */
static int
slot_zero(struct eng *e, int s)
{
	int rv = 0;
	for (int l = 0; l < e->c.n_layers && rv == 0; l++) {
		struct eng_dlayer *d = &e->L[l];
		size_t kv = (size_t)e->kv_stride * 4;
		if ((rv = gpu_buf_zero(e->dev, &d->kc, s * kv, kv)) != 0 ||
		    (rv = gpu_buf_zero(e->dev, &d->vc, s * kv, kv)) != 0 ||
		    (e->sep_kmem &&
		    (rv = gpu_buf_zero(e->dev, &d->km, s * kv, kv)) != 0))
			break;
		rv = gpu_buf_zero(e->dev, &d->M, (size_t)s * e->m_stride * 4,
		    (size_t)e->m_stride * 4);
		if (rv == 0)
			rv = gpu_buf_zero(e->dev, &d->z,
			    (size_t)s * e->z_stride * 4, (size_t)e->z_stride * 4);
	}
	return (rv);
}

int
eng_stream_alloc(struct eng *e, int *slot)
{
	int rv;
	for (int s = 0; s < e->max_streams; s++) {
		if (e->used[s])
			continue;
		if ((rv = slot_zero(e, s)) != 0)
			return (rv);
		e->used[s] = true;
		e->pos[s] = 0;
		e->sample_step[s] = 0;
		e->has_last[s] = false;
		*slot = s;
		return (0);
	}
	return (INFINI_EFULL);
}

void
eng_stream_free(struct eng *e, int slot)
{
	if (slot >= 0 && slot < e->max_streams)
		e->used[slot] = false;
}

int64_t
eng_stream_pos(const struct eng *e, int slot)
{
	return (e->pos[slot]);
}

uint64_t
eng_stream_sample_step(const struct eng *e, int slot)
{
	return (e->sample_step[slot]);
}

void
eng_stream_set_sample_step(struct eng *e, int slot, uint64_t step)
{
	if (slot >= 0 && slot < e->max_streams)
		e->sample_step[slot] = step;
}

bool
eng_stream_has_last(const struct eng *e, int slot)
{
	return (slot >= 0 && slot < e->max_streams && e->has_last[slot]);
}

int
eng_stream_copy(struct eng *e, int src, int dst)
{
	int rv;

	if (src < 0 || src >= e->max_streams || dst < 0 ||
	    dst >= e->max_streams || !e->used[src] || !e->used[dst])
		return (INFINI_EINVAL);
	if ((rv = gpu_cmd_begin(e->cmd)) != 0)
		return (rv);
	for (int l = 0; l < e->c.n_layers; l++) {
		struct eng_dlayer *d = &e->L[l];
		struct gpu_buf *bufs[5] = { &d->kc, &d->vc, &d->km, &d->M, &d->z };
		uint32_t strides[5] = { e->kv_stride, e->kv_stride, e->kv_stride,
		    e->m_stride, e->z_stride };
		for (int i = 0; i < 5; i++) {
			VkDeviceSize n = (VkDeviceSize)strides[i] * 4;
			if (bufs[i]->buf == VK_NULL_HANDLE)
				continue;
			struct gpu_arg a = gpu_arg_of(bufs[i], src * n, n);
			struct gpu_arg b = gpu_arg_of(bufs[i], dst * n, n);
			gpu_cmd_copy(e->cmd, &a, &b, n);
		}
	}
	VkDeviceSize hb = (VkDeviceSize)e->c.hidden_size * 4;
	struct gpu_arg ha = gpu_arg_of(&e->last_hid, src * hb, hb);
	struct gpu_arg hb2 = gpu_arg_of(&e->last_hid, dst * hb, hb);
	gpu_cmd_copy(e->cmd, &ha, &hb2, hb);
	if ((rv = gpu_cmd_submit(e->cmd)) != 0)
		return (rv);
	e->pos[dst] = e->pos[src];
	e->sample_step[dst] = e->sample_step[src];
	e->has_last[dst] = e->has_last[src];
	return (0);
}

int
eng_stream_read_mem(struct eng *e, int slot, int layer, int kvh, float *M,
    float *z)
{
	struct eng_dlayer *d;
	size_t hd = (size_t)e->c.head_dim;
	int rv = 0;

	if (slot < 0 || slot >= e->max_streams || layer < 0 ||
	    layer >= e->c.n_layers || kvh < 0 || kvh >= e->c.n_kv_heads)
		return (INFINI_EINVAL);
	d = &e->L[layer];
	if (M != NULL)
		rv = gpu_buf_read(e->dev, &d->M,
		    ((size_t)slot * e->m_stride + kvh * hd * hd) * 4, M,
		    hd * hd * 4);
	if (rv == 0 && z != NULL)
		rv = gpu_buf_read(e->dev, &d->z,
		    ((size_t)slot * e->z_stride + kvh * hd) * 4, z, hd * 4);
	return (rv);
}

/* ---- state export and import (snapshots) ---- */

/* mul_ok: *r = a * b, false on size_t overflow. */
static bool
mul_ok(size_t a, size_t b, size_t *r)
{
	return (!__builtin_mul_overflow(a, b, r));
}

int
eng_stream_state_init(struct eng_stream_state *st, int n_layers,
    int n_kv_heads, int head_dim, int segment_size, bool has_kmem,
    int64_t pos)
{
	size_t lh, mem, z, cache, b;

	memset(st, 0, sizeof(*st));
	if (n_layers <= 0 || n_kv_heads <= 0 || head_dim <= 0 ||
	    segment_size <= 0 || pos < 0)
		return (INFINI_EINVAL);
	st->rows = (int)(pos % segment_size);
	if (!mul_ok((size_t)n_layers, (size_t)n_kv_heads, &lh) ||
	    !mul_ok(lh, (size_t)head_dim, &z) ||
	    !mul_ok(z, (size_t)head_dim, &mem) ||
	    !mul_ok(z, (size_t)st->rows, &cache) ||
	    !mul_ok(mem, sizeof(float), &b) ||
	    !mul_ok(cache, 3 * sizeof(float), &b))
		return (INFINI_EINVAL);
	st->pos = pos;
	st->n_layers = n_layers;
	st->n_kv_heads = n_kv_heads;
	st->head_dim = head_dim;
	st->segment_size = segment_size;
	st->has_kmem = has_kmem;
	/* Never zero-sized, so a valid state has no NULL arrays but km. */
	if ((st->M = calloc(mem, sizeof(float))) == NULL ||
	    (st->z = calloc(z, sizeof(float))) == NULL ||
	    (st->kc = calloc(cache ? cache : 1, sizeof(float))) == NULL ||
	    (st->vc = calloc(cache ? cache : 1, sizeof(float))) == NULL ||
	    (has_kmem &&
	    (st->km = calloc(cache ? cache : 1, sizeof(float))) == NULL)) {
		eng_stream_state_fini(st);
		return (INFINI_ENOMEM);
	}
	return (0);
}

void
eng_stream_state_fini(struct eng_stream_state *st)
{
	if (st == NULL)
		return;
	free(st->M);
	free(st->z);
	free(st->kc);
	free(st->vc);
	free(st->km);
	free(st->last);
	memset(st, 0, sizeof(*st));
}

void
eng_stream_state_floats(const struct eng_stream_state *st, size_t *mem,
    size_t *cache)
{
	size_t lh = (size_t)st->n_layers * st->n_kv_heads;
	*mem = lh * st->head_dim * (st->head_dim + 1);
	*cache = lh * st->rows * st->head_dim;
}

int
eng_stream_export(struct eng *e, int slot, struct eng_stream_state *out)
{
	const struct eng_config *c = &e->c;
	size_t hd = (size_t)c->head_dim, N = (size_t)c->segment_size;
	size_t nkv = (size_t)c->n_kv_heads;
	struct eng_stream_state st;
	int rv;

	if (slot < 0 || slot >= e->max_streams || !e->used[slot])
		return (INFINI_EINVAL);
	if ((rv = eng_stream_state_init(&st, c->n_layers, c->n_kv_heads,
	    c->head_dim, c->segment_size, e->sep_kmem, e->pos[slot])) != 0)
		return (rv);
	st.sample_step = e->sample_step[slot];
	if (e->has_last[slot]) {
		size_t hb = (size_t)c->hidden_size * 4;
		if ((st.last = malloc(hb)) == NULL) {
			rv = INFINI_ENOMEM;
			goto fail;
		}
		st.n_last = c->hidden_size;
		if ((rv = gpu_buf_read(e->dev, &e->last_hid, (size_t)slot * hb,
		    st.last, hb)) != 0)
			goto fail;
	}
	for (int l = 0; l < c->n_layers; l++) {
		struct eng_dlayer *d = &e->L[l];
		size_t nr = (size_t)st.rows * hd;
		if ((rv = gpu_buf_read(e->dev, &d->M,
		    (size_t)slot * e->m_stride * 4,
		    st.M + (size_t)l * e->m_stride,
		    (size_t)e->m_stride * 4)) != 0 ||
		    (rv = gpu_buf_read(e->dev, &d->z,
		    (size_t)slot * e->z_stride * 4,
		    st.z + (size_t)l * e->z_stride,
		    (size_t)e->z_stride * 4)) != 0)
			goto fail;
		for (size_t h = 0; h < nkv && nr > 0; h++) {
			size_t src = ((size_t)slot * e->kv_stride + h * N * hd) * 4;
			size_t dst = ((size_t)l * nkv + h) * nr;
			if ((rv = gpu_buf_read(e->dev, &d->kc, src, st.kc + dst,
			    nr * 4)) != 0 ||
			    (rv = gpu_buf_read(e->dev, &d->vc, src, st.vc + dst,
			    nr * 4)) != 0 ||
			    (e->sep_kmem && (rv = gpu_buf_read(e->dev, &d->km,
			    src, st.km + dst, nr * 4)) != 0))
				goto fail;
		}
	}
	*out = st;
	return (0);
fail:
	eng_stream_state_fini(&st);
	return (rv);
}

int
eng_stream_import(struct eng *e, int slot, const struct eng_stream_state *st)
{
	const struct eng_config *c = &e->c;
	size_t hd = (size_t)c->head_dim, N = (size_t)c->segment_size;
	size_t nkv = (size_t)c->n_kv_heads;
	int rv;

	if (slot < 0 || slot >= e->max_streams || !e->used[slot] ||
	    st->n_layers != c->n_layers || st->n_kv_heads != c->n_kv_heads ||
	    st->head_dim != c->head_dim ||
	    st->segment_size != c->segment_size ||
	    st->has_kmem != e->sep_kmem || st->pos < 0 ||
	    st->pos > ENG_POS_MAX ||
	    st->rows != (int)(st->pos % c->segment_size) ||
	    st->M == NULL || st->z == NULL || st->kc == NULL ||
	    st->vc == NULL || (st->has_kmem && st->km == NULL) ||
	    (st->n_last != 0 && (st->n_last != c->hidden_size ||
	    st->last == NULL)))
		return (INFINI_EINVAL);
	if ((rv = slot_zero(e, slot)) != 0)
		return (rv);
	e->has_last[slot] = false;
	if (st->n_last != 0) {
		size_t hb = (size_t)c->hidden_size * 4;
		if ((rv = gpu_buf_write(e->dev, &e->last_hid, (size_t)slot * hb,
		    st->last, hb)) != 0)
			return (rv);
		e->has_last[slot] = true;
	}
	for (int l = 0; l < c->n_layers; l++) {
		struct eng_dlayer *d = &e->L[l];
		size_t nr = (size_t)st->rows * hd;
		if ((rv = gpu_buf_write(e->dev, &d->M,
		    (size_t)slot * e->m_stride * 4,
		    st->M + (size_t)l * e->m_stride,
		    (size_t)e->m_stride * 4)) != 0 ||
		    (rv = gpu_buf_write(e->dev, &d->z,
		    (size_t)slot * e->z_stride * 4,
		    st->z + (size_t)l * e->z_stride,
		    (size_t)e->z_stride * 4)) != 0)
			return (rv);
		for (size_t h = 0; h < nkv && nr > 0; h++) {
			size_t dst = ((size_t)slot * e->kv_stride + h * N * hd) * 4;
			size_t src = ((size_t)l * nkv + h) * nr;
			if ((rv = gpu_buf_write(e->dev, &d->kc, dst, st->kc + src,
			    nr * 4)) != 0 ||
			    (rv = gpu_buf_write(e->dev, &d->vc, dst, st->vc + src,
			    nr * 4)) != 0 ||
			    (e->sep_kmem && (rv = gpu_buf_write(e->dev, &d->km,
			    dst, st->km + src, nr * 4)) != 0))
				return (rv);
		}
	}
	e->pos[slot] = st->pos;
	e->sample_step[slot] = st->sample_step;
	return (0);
}

void
eng_profile_print(const struct eng *e, FILE *f)
{
	double total = 0;
	for (int i = 0; i < e->nprof; i++)
		total += e->prof[i].ns;
	fprintf(f, "%-16s %10s %12s %6s\n", "op", "calls", "ms", "%");
	for (int i = 0; i < e->nprof; i++)
		fprintf(f, "%-16s %10llu %12.3f %6.1f\n", e->prof[i].label,
		    (unsigned long long)e->prof[i].calls, e->prof[i].ns / 1e6,
		    total > 0 ? 100.0 * e->prof[i].ns / total : 0.0);
}
