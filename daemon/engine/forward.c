/*
 * forward.c - one batched forward pass, recorded as one command buffer.
 *
 * eng_run splits the work of all jobs into rounds.  In a round every stream
 * contributes the inputs up to the end of its current segment (and the batch
 * limit), so within a round no stream crosses a segment boundary: memory
 * retrieval reads the state from before the segment, and a stream whose
 * segment fills is compressed into memory at the end of each layer, exactly
 * once.  Chunking therefore never changes results.
 *
 * Per layer (the paper's Infini-attention block inside a Llama/Gemma layer):
 *
 *   xn  = rmsnorm(x)                            rmsnorm
 *   qkv = xn Wqkv^T                             matmul
 *   q~, k~ = rope(q, k); cache k~, v (and k)    rope
 *   A_dot = softmax(q~ K~^T / sqrt(d)) V        attention
 *   A_mem = s(q) M / (s(q) . z + eps)           retrieve
 *   A = mix(A_mem, A_dot; sigmoid(beta))        gate
 *   x += A Wo^T                                 matmul (accumulate)
 *   x += W_down (act(xn W_gate) * xn W_up)      rmsnorm, matmul, glu, matmul
 *   if segment full: M, z += s(K)^T V ...       memupd, memz
 *
 * After the last layer: the final norm, the lm_head rows that some job
 * needs, and, for jobs with a sampler, one sample dispatch over all of
 * them (each draws with the slot's own RNG step, which then advances).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/engine_impl.h"
#include "infini_err.h"

#include "attention_pc.h"
#include "embed_pc.h"
#include "gate_pc.h"
#include "glu_pc.h"
#include "memupd_pc.h"
#include "retrieve_pc.h"
#include "rmsnorm_pc.h"
#include "rope_pc.h"
#include "sample_pc.h"

/* A job's rows in the current round. */
struct eng_chunk {
	int job;
	int row;        /* first row in the batch */
	int n;
	int first;      /* index of the first input within the job */
	int lrow;       /* first row in the logits batch, or -1 */
	int nlog;
	int srow;       /* row in the sample batch, or -1 */
};

/* What one round holds: T batch rows from nch chunks, nfill streams whose
 * segment fills, nlog logits rows, nsamp sampled rows. */
struct round {
	int T, nch, nfill, nlog, nsamp;
	bool any_vec;   /* some row is a vector input (upload vecs) */
};

#define ARG(b) gpu_arg_of((b), 0, 0)

/* grid1 covers n invocations of 64-wide groups within the x-count limit. */
static void
grid1(const struct eng *e, uint64_t n, uint32_t *gx, uint32_t *gy)
{
	uint64_t groups = (n + 63) / 64;
	uint64_t maxx = gpu_dev_info(e->dev)->max_groups_x;
	*gx = (uint32_t)(groups < maxx ? groups : maxx);
	*gy = *gx ? (uint32_t)((groups + *gx - 1) / *gx) : 0;
}

/* texel_view: an RGBA32F view of all of b, or fails when too big. */
static int
texel_view(struct eng *e, const struct gpu_buf *b, VkBufferView *v)
{
	VkDeviceSize range = b->size / 16 * 16;

	if (range == 0 || range / 16 > gpu_dev_info(e->dev)->max_texel_elems)
		return (INFINI_EUNSUPPORTED);
	return (gpu_view_create(e->dev, b, 0, range,
	    VK_FORMAT_R32G32B32A32_SFLOAT, v));
}

int
eng_ops_open(struct eng *e)
{
	const char *s = getenv("INFINI_OPS");
	bool portable = s != NULL && strcasecmp(s, "portable") == 0;
	int rv = 0;

	/* The coop matmuls bring the coop attention side where it builds
	 * for this head_dim (eng_kernel_fits). */
	e->coop_ops = e->mm == ENG_MM_COOP && !portable &&
	    e->pipe[ENG_K_ATTENTION_COOP] != NULL &&
	    e->pipe[ENG_K_RETRIEVE_COOP] != NULL;
	e->texel_ops = eng_mm_is_texel(e->mm) && e->c.head_dim % 16 == 0 &&
	    !portable;
	if (!e->texel_ops)
		return (0);
	if ((rv = texel_view(e, &e->qr, &e->qrv)) != 0 ||
	    (rv = texel_view(e, &e->qkv, &e->qkvv)) != 0)
		goto fail;
	for (int l = 0; l < e->c.n_layers; l++) {
		struct eng_dlayer *d = &e->L[l];
		if ((rv = texel_view(e, &d->kc, &d->kcv)) != 0 ||
		    (rv = texel_view(e, &d->vc, &d->vcv)) != 0 ||
		    (e->sep_kmem && (rv = texel_view(e, &d->km, &d->kmv)) != 0) ||
		    (rv = texel_view(e, &d->M, &d->Mv)) != 0 ||
		    (rv = texel_view(e, &d->z, &d->zv)) != 0)
			goto fail;
	}
	return (0);
fail:
	eng_ops_close(e);
	/* Too big for a view: the portable kernels need none. */
	return (rv == INFINI_EUNSUPPORTED ? 0 : rv);
}

void
eng_ops_close(struct eng *e)
{
	gpu_view_free(e->dev, e->qrv);
	gpu_view_free(e->dev, e->qkvv);
	e->qrv = e->qkvv = VK_NULL_HANDLE;
	for (int l = 0; l < e->c.n_layers && e->L != NULL; l++) {
		struct eng_dlayer *d = &e->L[l];
		VkBufferView *v[5] = { &d->kcv, &d->vcv, &d->kmv, &d->Mv,
		    &d->zv };
		for (int i = 0; i < 5; i++) {
			gpu_view_free(e->dev, *v[i]);
			*v[i] = VK_NULL_HANDLE;
		}
	}
	e->texel_ops = false;
	e->coop_ops = false;
}

/* targ: a whole-buffer binding read through view v. */
static struct gpu_arg
targ(const struct gpu_buf *b, VkBufferView v)
{
	struct gpu_arg a = gpu_arg_of(b, 0, 0);
	a.view = v;
	return (a);
}

static void
rec_rmsnorm(struct eng *e, const struct gpu_buf *x, const struct gpu_buf *w,
    const struct gpu_buf *out, uint32_t T)
{
	struct rmsnorm_pc pc = { T, (uint32_t)e->c.hidden_size,
	    (float)e->c.rms_norm_eps, e->c.arch == ENG_ARCH_GEMMA ? 1.0f : 0.0f };
	struct gpu_arg a[3] = { ARG(x), ARG(w), ARG(out) };
	gpu_cmd_dispatch(e->cmd, e->pipe[e->rms_sg ? ENG_K_RMSNORM_SG :
	    ENG_K_RMSNORM], a, 1u << 2, &pc, T, 1, 1, "rmsnorm");
}

/* Rows per invocation of attention_texel (its RB in variants.cmake). */
#define ENG_ATT_RB 4

static void
rec_layer(struct eng *e, int l, uint32_t T, uint32_t nfill, bool blocked)
{
	const struct eng_config *c = &e->c;
	struct eng_dlayer *d = &e->L[l];
	uint32_t H = (uint32_t)c->hidden_size, nh = (uint32_t)c->n_heads;
	uint32_t nkv = (uint32_t)c->n_kv_heads, hd = (uint32_t)c->head_dim;
	uint32_t A = nh * hd, QKV = (nh + 2 * nkv) * hd;
	uint32_t I = (uint32_t)c->intermediate_size, N = (uint32_t)c->segment_size;
	const struct gpu_buf *km = e->sep_kmem ? &d->km : &d->kc;
	uint32_t gx, gy;

	rec_rmsnorm(e, &e->x, &d->attn_norm, &e->xn, T);
	eng_rec_matmul(e, &e->xn, H, &d->wqkv, &e->qkv, QKV, T, false);

	struct rope_pc rp = { T, nh, nkv, hd, N, e->kv_stride, c->rope,
	    e->sep_kmem, (float)c->rope_theta };
	struct gpu_arg ra[6] = { ARG(&e->qkv), ARG(&e->rows), ARG(&e->qr),
	    ARG(&d->kc), ARG(&d->vc), ARG(km) };
	/* Four pairs per invocation where head_dim allows. */
	bool r4 = hd % 8 == 0;
	grid1(e, (uint64_t)T * (nh + 2 * nkv) * (hd / (r4 ? 8 : 2)), &gx, &gy);
	gpu_cmd_dispatch(e->cmd, e->pipe[r4 ? ENG_K_ROPE_V4 : ENG_K_ROPE], ra,
	    (1u << 2) | (1u << 3) | (1u << 4) | (e->sep_kmem ? 1u << 5 : 0), &rp,
	    gx, gy, 1, "rope");

	/* Memory reads the unrotated query unless memory_rope says otherwise. */
	bool rq = c->rope && c->memory_rope;
	struct attention_pc ap = { T, nh, nkv, hd, N, e->kv_stride,
	    (float)(1.0 / sqrt((double)hd)) };
	struct retrieve_pc qp = { T, nh, nkv, hd, rq ? A : QKV, e->m_stride,
	    e->z_stride, (float)c->memory_eps, c->gate_on == ENG_GATE_LOCAL };
	if (e->coop_ops) {
		/* A workgroup per tile of rows and head (attention_coop.comp),
		 * the tile's rows the device's coop_m. */
		uint32_t tm = gpu_dev_info(e->dev)->coop_m;
		struct gpu_arg aa[5] = { ARG(&e->qr), ARG(&e->rows),
		    ARG(&d->kc), ARG(&d->vc), ARG(&e->ad) };
		gpu_cmd_dispatch(e->cmd, e->pipe[ENG_K_ATTENTION_COOP], aa,
		    1u << 4, &ap, (T + tm - 1) / tm, nh, 1, "attention");
		struct gpu_arg qa[6] = { ARG(rq ? &e->qr : &e->qkv),
		    ARG(&e->rows), ARG(&d->M), ARG(&d->z), ARG(&d->beta),
		    ARG(&e->ad) };
		gpu_cmd_dispatch(e->cmd, e->pipe[ENG_K_RETRIEVE_COOP], qa,
		    1u << 5, &qp, (T + tm - 1) / tm, nh, 1, "retrieve+gate");
	} else if (e->texel_ops) {
		/* Row blocks pay off when streams bring several rows each. */
		uint32_t rba = blocked ? ENG_ATT_RB : 1, rbq = blocked ? 4 : 1;
		struct gpu_arg aa[5] = { targ(&e->qr, e->qrv), ARG(&e->rows),
		    targ(&d->kc, d->kcv), targ(&d->vc, d->vcv), ARG(&e->ad) };
		grid1(e, (uint64_t)(T + rba - 1) / rba * nh, &gx, &gy);
		gpu_cmd_dispatch(e->cmd, e->pipe[blocked ?
		    ENG_K_ATTENTION_TEXEL : ENG_K_ATTENTION_TEXEL_R1], aa,
		    1u << 4, &ap, gx, gy, 1, "attention");
		struct gpu_arg qa[6] = { rq ? targ(&e->qr, e->qrv) :
		    targ(&e->qkv, e->qkvv), ARG(&e->rows), targ(&d->M, d->Mv),
		    targ(&d->z, d->zv), ARG(&d->beta), ARG(&e->ad) };
		grid1(e, (uint64_t)(T + rbq - 1) / rbq * nh * (hd / 16), &gx,
		    &gy);
		gpu_cmd_dispatch(e->cmd, e->pipe[blocked ?
		    ENG_K_RETRIEVE_TEXEL : ENG_K_RETRIEVE_TEXEL_R1], qa,
		    1u << 5, &qp, gx, gy, 1, "retrieve+gate");
	} else {
		struct gpu_arg aa[5] = { ARG(&e->qr), ARG(&e->rows),
		    ARG(&d->kc), ARG(&d->vc), ARG(&e->ad) };
		grid1(e, (uint64_t)T * nh, &gx, &gy);
		gpu_cmd_dispatch(e->cmd, e->pipe[ENG_K_ATTENTION], aa, 1u << 4,
		    &ap, gx, gy, 1, "attention");
		struct gpu_arg qa[5] = { ARG(rq ? &e->qr : &e->qkv),
		    ARG(&e->rows), ARG(&d->M), ARG(&d->z), ARG(&e->am) };
		grid1(e, (uint64_t)T * A, &gx, &gy);
		gpu_cmd_dispatch(e->cmd, e->pipe[ENG_K_RETRIEVE], qa, 1u << 4,
		    &qp, gx, gy, 1, "retrieve");
		struct gate_pc gp = { T, nh, hd, c->gate_on == ENG_GATE_LOCAL };
		struct gpu_arg ga[3] = { ARG(&e->am), ARG(&d->beta),
		    ARG(&e->ad) };
		gpu_cmd_dispatch(e->cmd, e->pipe[ENG_K_GATE], ga, 1u << 2, &gp,
		    gx, gy, 1, "gate");
	}

	eng_rec_matmul(e, &e->ad, A, &d->wo, &e->x, H, T, true);

	rec_rmsnorm(e, &e->x, &d->mlp_norm, &e->xn, T);
	eng_rec_matmul(e, &e->xn, H, &d->wgu, &e->gu, 2 * I, T, false);
	struct glu_pc up = { T, I, (uint32_t)c->act };
	struct gpu_arg ua[2] = { ARG(&e->gu), ARG(&e->hm) };
	grid1(e, (uint64_t)T * (I / 4), &gx, &gy);
	gpu_cmd_dispatch(e->cmd, e->pipe[ENG_K_GLU], ua, 1u << 1, &up, gx, gy,
	    1, "glu");
	eng_rec_matmul(e, &e->hm, I, &d->wdown, &e->x, H, T, true);

	if (nfill == 0)
		return;
	struct memupd_pc mp = { nfill, nkv, hd, N, e->kv_stride, e->m_stride,
	    e->z_stride, c->memory_update == ENG_UPDATE_DELTA,
	    (float)c->memory_eps };
	if (e->texel_ops && !mp.delta) {
		struct gpu_arg ma[4] = { targ(km, e->sep_kmem ? d->kmv : d->kcv),
		    targ(&d->vc, d->vcv), ARG(&d->M), ARG(&e->slots) };
		grid1(e, (uint64_t)nfill * nkv * (hd / 8) * (hd / 16), &gx, &gy);
		gpu_cmd_dispatch(e->cmd, e->pipe[ENG_K_MEMUPD_TEXEL], ma,
		    1u << 2, &mp, gx, gy, 1, "memupd");
	} else {
		struct gpu_arg ma[5] = { ARG(km), ARG(&d->vc), ARG(&d->M),
		    ARG(&d->z), ARG(&e->slots) };
		gpu_cmd_dispatch(e->cmd, e->pipe[ENG_K_MEMUPD], ma, 1u << 2,
		    &mp, hd, nkv, nfill, "memupd");
	}
	struct gpu_arg za[3] = { ARG(km), ARG(&d->z), ARG(&e->slots) };
	grid1(e, (uint64_t)nfill * nkv * hd, &gx, &gy);
	gpu_cmd_dispatch(e->cmd, e->pipe[ENG_K_MEMZ], za, 1u << 1, &mp, gx, gy,
	    1, "memz");
}

static void
rec_embed(struct eng *e, uint32_t T)
{
	uint32_t H = (uint32_t)e->c.hidden_size, gx, gy;
	float scale = e->c.arch == ENG_ARCH_GEMMA ? sqrtf((float)H) : 1.0f;

	grid1(e, (uint64_t)T * H, &gx, &gy);
	for (int i = 0; i < e->embed.nparts; i++) {
		const struct eng_wpart *pt = &e->embed.parts[i];
		struct embed_pc pc = { T, H, (uint32_t)pt->row0,
		    (uint32_t)(pt->row0 + pt->rows), scale, i == 0 };
		struct gpu_arg a[4] = { ARG(&e->ids), ARG(&pt->buf),
		    ARG(&e->vecs), ARG(&e->x) };
		gpu_cmd_dispatch(e->cmd, e->pipe[e->k_embed], a, 1u << 3, &pc,
		    gx, gy, 1, "embed");
	}
}

static void
add_prof(void *arg, const char *label, double ns)
{
	struct eng *e = arg;
	int i;
	for (i = 0; i < e->nprof; i++)
		if (e->prof[i].label == label)
			break;
	if (i == e->nprof) {
		if (e->nprof == (int)(sizeof(e->prof) / sizeof(e->prof[0])))
			return;
		e->prof[e->nprof++] = (struct eng_prof){ label, 0, 0 };
	}
	e->prof[i].ns += ns;
	e->prof[i].calls++;
}

static int
check_jobs(struct eng *e, const struct eng_job *jobs, int njobs, char *err,
    size_t errlen)
{
	int H = e->c.hidden_size;

	for (int j = 0; j < njobs; j++) {
		const struct eng_job *b = &jobs[j];
		if (b->slot < 0 || b->slot >= e->max_streams || !e->used[b->slot]) {
			snprintf(err, errlen, "job %d: no such stream slot %d", j,
			    b->slot);
			return (INFINI_EINVAL);
		}
		for (int k = 0; k < j; k++)
			if (jobs[k].slot == b->slot) {
				snprintf(err, errlen, "job %d: slot %d appears "
				    "twice in one run", j, b->slot);
				return (INFINI_EINVAL);
			}
		/* Rows of a slot are found from its position: one that is
		 * negative or would pass ENG_POS_MAX could index outside the
		 * slot, so it is refused before anything runs. */
		if (e->pos[b->slot] < 0 || b->n < 0 ||
		    e->pos[b->slot] > ENG_POS_MAX - b->n) {
			snprintf(err, errlen, "job %d: slot %d at position %lld "
			    "cannot take %d more inputs (limit %lld)", j,
			    b->slot, (long long)e->pos[b->slot], b->n,
			    (long long)ENG_POS_MAX);
			return (INFINI_EINVAL);
		}
		if (b->n == 0 && b->sample != NULL && b->token != NULL &&
		    (b->out == ENG_OUT_NONE || b->out == ENG_OUT_LAST_LOGITS)) {
			/* Sample again from the stream's last input. */
			if (!e->has_last[b->slot]) {
				snprintf(err, errlen, "job %d: the stream has no "
				    "last input to sample from", j);
				return (INFINI_ESTATE);
			}
		} else if (b->n < 1 || (b->tokens == NULL && b->vectors == NULL) ||
		    (b->out == ENG_OUT_MEAN ? b->sum == NULL :
		    b->out != ENG_OUT_NONE && b->result == NULL) ||
		    (b->sample != NULL && b->token == NULL)) {
			snprintf(err, errlen, "job %d: no inputs or no output "
			    "buffer", j);
			return (INFINI_EINVAL);
		}
		if (b->sample != NULL && (isnan(b->sample->temperature) ||
		    isinf(b->sample->temperature) || b->sample->top_k < 0 ||
		    isnan(b->sample->top_p))) {
			snprintf(err, errlen, "job %d: bad sampler (temperature "
			    "%g, top_k %d, top_p %g)", j,
			    (double)b->sample->temperature, b->sample->top_k,
			    (double)b->sample->top_p);
			return (INFINI_EINVAL);
		}
		if (b->tokens != NULL) {
			for (int i = 0; i < b->n; i++)
				if (b->tokens[i] < 0 ||
				    b->tokens[i] >= e->c.vocab_size) {
					snprintf(err, errlen, "token %d at %d is "
					    "outside the vocabulary [0, %d)",
					    b->tokens[i], i, e->c.vocab_size);
					return (INFINI_EINVAL);
				}
		} else {
			for (size_t i = 0; i < (size_t)b->n * H; i++)
				if (!isfinite(b->vectors[i])) {
					snprintf(err, errlen, "vector %zu has a "
					    "non-finite value at column %zu",
					    i / H, i % H);
					return (INFINI_EINVAL);
				}
		}
	}
	return (0);
}

static bool
wants_logits(const struct eng_job *b, int first, int n)
{
	if (b->out == ENG_OUT_LOGITS)
		return (true);
	return ((b->out == ENG_OUT_LAST_LOGITS || b->sample != NULL) &&
	    first + n == b->n);
}

/* sample_row: the sampler's row of the sample kernel's table, reading
 * logits row lrow at RNG step step. */
static struct sample_row
sample_row(const struct eng_sampler *s, uint64_t step, int lrow)
{
	return ((struct sample_row){ (uint32_t)lrow, s->temperature,
	    s->top_k > 0 ? (uint32_t)s->top_k : 0, s->top_p,
	    (uint32_t)s->seed, (uint32_t)(s->seed >> 32), (uint32_t)step,
	    (uint32_t)(step >> 32) });
}

/* fault_check arms the device fault when this round includes the armed
 * slot and its skips are used up. */
static void
fault_check(struct eng *e, const struct eng_job *jobs,
    const struct eng_chunk *ch, int nch)
{
	if (e->fault == ENG_FAULT_NONE)
		return;
	for (int i = 0; i < nch; i++) {
		if (jobs[ch[i].job].slot != e->fault_slot)
			continue;
		if (e->fault_skip-- > 0)
			return;
		gpu_fault_arm(e->dev, e->fault == ENG_FAULT_OOM ?
		    GPU_FAULT_OOM : e->fault == ENG_FAULT_LOST ?
		    GPU_FAULT_LOST : GPU_FAULT_HANG);
		e->fault = ENG_FAULT_NONE;
		return;
	}
}

/* ---- the run driver: per round, gather -> upload -> record -> submit ->
 * read back.  Its host scratch lives in e->run (eng_run_buf_init). */

int
eng_run_buf_init(struct eng *e)
{
	struct eng_run_buf *b = &e->run;
	size_t R = (size_t)e->max_batch, H = (size_t)e->c.hidden_size;

	if ((b->ids = calloc(R, sizeof(*b->ids))) == NULL ||
	    (b->rows = calloc(R * 2, sizeof(*b->rows))) == NULL ||
	    (b->vecs = calloc(R * H, sizeof(*b->vecs))) == NULL ||
	    (b->slots = calloc((size_t)e->max_streams,
	    sizeof(*b->slots))) == NULL ||
	    (b->row = calloc(H, sizeof(*b->row))) == NULL ||
	    (b->sp = calloc((size_t)e->samp_rows, sizeof(*b->sp))) == NULL ||
	    (b->stok = calloc((size_t)e->samp_rows, sizeof(*b->stok))) == NULL)
		return (INFINI_ENOMEM);
	return (0);
}

void
eng_run_buf_fini(struct eng *e)
{
	struct eng_run_buf *b = &e->run;

	free(b->ids);
	free(b->rows);
	free(b->vecs);
	free(b->slots);
	free(b->row);
	free(b->sp);
	free(b->stok);
	free(b->done);
	free(b->zdone);
	free(b->ch);
	memset(b, 0, sizeof(*b));
}

/* grow: *p holds have elements of size sz; make room for want.  On failure
 * *p is unchanged. */
static int
grow(void **p, size_t sz, size_t want)
{
	void *q = realloc(*p, want * sz);

	if (q == NULL)
		return (INFINI_ENOMEM);
	*p = q;
	return (0);
}

/* run_reserve makes the per-job scratch hold njobs jobs and clears it. */
static int
run_reserve(struct eng *e, int njobs)
{
	struct eng_run_buf *b = &e->run;
	size_t n = (size_t)njobs;
	int rv;

	if (njobs > b->cap_jobs) {
		if ((rv = grow((void **)&b->done, sizeof(*b->done), n)) != 0 ||
		    (rv = grow((void **)&b->zdone, sizeof(*b->zdone), n)) != 0 ||
		    (rv = grow((void **)&b->ch, sizeof(*b->ch), n)) != 0)
			return (rv);
		b->cap_jobs = njobs;
	}
	if (njobs > 0) {
		memset(b->done, 0, n * sizeof(*b->done));
		memset(b->zdone, 0, n * sizeof(*b->zdone));
	}
	return (0);
}

/* gather picks this round's rows: each stream up to the end of its segment,
 * at most R rows and the logits and sampler rows the device holds.  Fills
 * e->run and *r; r->T == 0 && r->nlog == 0 means every job is done.
 * Returns 0 or INFINI_EINVAL (a row would fall outside its slot). */
static int
gather(struct eng *e, struct eng_job *jobs, int njobs, int R, struct round *r,
    char *err, size_t errlen)
{
	struct eng_run_buf *rb = &e->run;
	const int H = e->c.hidden_size, N = e->c.segment_size;

	*r = (struct round){ 0 };
	for (int j = 0; j < njobs && r->T < R; j++) {
		struct eng_job *b = &jobs[j];
		int64_t p = e->pos[b->slot];
		int k = b->n - rb->done[j];
		int room = N - (int)(p % N);
		if (b->n == 0 && !rb->zdone[j]) {
			/* Only a sample, from the stored last hidden. */
			if (r->nlog == e->logit_rows ||
			    r->nsamp == e->samp_rows)
				break;
			struct eng_chunk *c = &rb->ch[r->nch++];
			*c = (struct eng_chunk){ j, -1, 0, 0, r->nlog, 1,
			    r->nsamp };
			rb->sp[r->nsamp++] = sample_row(b->sample,
			    e->sample_step[b->slot], r->nlog);
			r->nlog++;
			rb->zdone[j] = true;
			continue;
		}
		if (k <= 0)
			continue;
		if (k > room)
			k = room;
		if (k > R - r->T)
			k = R - r->T;
		struct eng_chunk *c = &rb->ch[r->nch++];
		bool samp = b->sample != NULL && rb->done[j] + k == b->n;
		*c = (struct eng_chunk){ j, r->T, k, rb->done[j], -1, 0, -1 };
		if (wants_logits(b, rb->done[j], k)) {
			int need = b->out == ENG_OUT_LOGITS ? k : 1;
			if (r->nlog + need > e->logit_rows ||
			    (samp && r->nsamp == e->samp_rows)) {
				r->nch--;
				break;
			}
			c->lrow = r->nlog;
			c->nlog = need;
			r->nlog += need;
		}
		if (samp) {
			/* The job's last input is the chunk's last logits
			 * row. */
			c->srow = r->nsamp;
			rb->sp[r->nsamp++] = sample_row(b->sample,
			    e->sample_step[b->slot], c->lrow + c->nlog - 1);
		}
		/* Every row written must lie inside this slot's segment: the
		 * last line of defence for its neighbours' state. */
		if (p < 0 || p % N + k > N || b->slot < 0 ||
		    b->slot >= e->max_streams) {
			snprintf(err, errlen, "job %d: rows %lld..+%d fall "
			    "outside slot %d's segment", j, (long long)(p % N),
			    k, b->slot);
			return (INFINI_EINVAL);
		}
		for (int i = 0; i < k; i++) {
			int in = rb->done[j] + i, t = r->T + i;
			rb->ids[t] = b->tokens ? b->tokens[in] : -1;
			if (b->tokens == NULL) {
				memcpy(rb->vecs + (size_t)t * H,
				    b->vectors + (size_t)in * H,
				    (size_t)H * sizeof(float));
				r->any_vec = true;
			}
			rb->rows[2 * t] = (uint32_t)b->slot;
			rb->rows[2 * t + 1] = (uint32_t)(p % N) + i;
		}
		if ((p % N) + k == N)
			rb->slots[r->nfill++] = (uint32_t)b->slot;
		r->T += k;
	}
	return (0);
}

/* upload copies the round's inputs, rows, filled slots and sampler rows to
 * the device.  Returns 0 or a device error. */
static int
upload(struct eng *e, const struct round *r)
{
	const struct eng_run_buf *b = &e->run;
	size_t H = (size_t)e->c.hidden_size;
	int rv;

	if ((rv = gpu_buf_write(e->dev, &e->ids, 0, b->ids,
	    (size_t)r->T * 4)) != 0 ||
	    (rv = gpu_buf_write(e->dev, &e->rows, 0, b->rows,
	    (size_t)r->T * 8)) != 0 ||
	    (r->any_vec && (rv = gpu_buf_write(e->dev, &e->vecs, 0, b->vecs,
	    (size_t)r->T * H * 4)) != 0) ||
	    (r->nfill && (rv = gpu_buf_write(e->dev, &e->slots, 0, b->slots,
	    (size_t)r->nfill * 4)) != 0) ||
	    (r->nsamp && (rv = gpu_buf_write(e->dev, &e->samp_par, 0, b->sp,
	    (size_t)r->nsamp * sizeof(*b->sp))) != 0))
		return (rv);
	return (0);
}

/* record_logits copies the hidden rows that need logits next to each other
 * (a sample-only job reads its stored last hidden) and records lm_head over
 * them. */
static void
record_logits(struct eng *e, const struct eng_job *jobs, const struct round *r)
{
	const int H = e->c.hidden_size;
	VkDeviceSize rb = (VkDeviceSize)H * 4;

	for (int i = 0; i < r->nch; i++) {
		const struct eng_chunk *c = &e->run.ch[i];
		int from = c->row + c->n - c->nlog;
		if (c->lrow < 0)
			continue;
		struct gpu_arg s = c->n > 0 ?
		    gpu_arg_of(&e->hid, from * rb, c->nlog * rb) :
		    gpu_arg_of(&e->last_hid,
		    (VkDeviceSize)jobs[c->job].slot * rb, rb);
		struct gpu_arg t = gpu_arg_of(&e->lrows, c->lrow * rb,
		    c->nlog * rb);
		gpu_cmd_copy(e->cmd, &s, &t, c->nlog * rb);
	}
	eng_rec_matmul(e, &e->lrows, (uint32_t)H, &e->lm_head, &e->logits,
	    (uint32_t)e->c.vocab_size, (uint32_t)r->nlog, false);
}

/* record records the round into e->cmd: embedding, the layers, the final
 * norm, logits, sampling, and each stream's last hidden kept for later. */
static int
record(struct eng *e, const struct eng_job *jobs, const struct round *r)
{
	VkDeviceSize rb = (VkDeviceSize)e->c.hidden_size * 4;
	int rv;

	if ((rv = gpu_cmd_begin(e->cmd)) != 0)
		return (rv);
	if (r->T > 0) {
		rec_embed(e, (uint32_t)r->T);
		for (int l = 0; l < e->c.n_layers; l++)
			rec_layer(e, l, (uint32_t)r->T, (uint32_t)r->nfill,
			    r->T >= ENG_ATT_RB * r->nch);
		rec_rmsnorm(e, &e->x, &e->norm, &e->hid, (uint32_t)r->T);
	}
	if (r->nlog > 0)
		record_logits(e, jobs, r);
	if (r->nsamp > 0) {
		struct sample_pc pc = { (uint32_t)r->nsamp,
		    (uint32_t)e->c.vocab_size };
		struct gpu_arg a[4] = { ARG(&e->logits), ARG(&e->samp_par),
		    ARG(&e->samp_e), ARG(&e->samp_tok) };
		gpu_cmd_dispatch(e->cmd, e->pipe[ENG_K_SAMPLE], a,
		    (1u << 2) | (1u << 3), &pc, (uint32_t)r->nsamp, 1, 1,
		    "sample");
	}
	/* Keep each stream's last hidden for a later sample-only job. */
	for (int i = 0; i < r->nch; i++) {
		const struct eng_chunk *c = &e->run.ch[i];
		if (c->n == 0)
			continue;
		struct gpu_arg s = gpu_arg_of(&e->hid,
		    (VkDeviceSize)(c->row + c->n - 1) * rb, rb);
		struct gpu_arg t = gpu_arg_of(&e->last_hid,
		    (VkDeviceSize)jobs[c->job].slot * rb, rb);
		gpu_cmd_copy(e->cmd, &s, &t, rb);
	}
	return (0);
}

/* submit runs the recorded round and advances the streams it touched.  The
 * round is in the streams' state once it ran, so positions advance before
 * anything is read back: a failed read-back leaves every position true to
 * its state.  Returns 0 or a device error. */
static int
submit(struct eng *e, const struct eng_job *jobs, const struct round *r)
{
	int rv;

	fault_check(e, jobs, e->run.ch, r->nch);
	if ((rv = gpu_cmd_submit(e->cmd)) != 0)
		return (rv);
	gpu_cmd_timings(e->cmd, add_prof, e);
	for (int i = 0; i < r->nch; i++) {
		const struct eng_chunk *c = &e->run.ch[i];
		const struct eng_job *b = &jobs[c->job];
		if (c->srow >= 0)
			e->sample_step[b->slot]++;
		if (c->n > 0)
			e->has_last[b->slot] = true;
		e->pos[b->slot] += c->n;
	}
	return (0);
}

/* readback hands the round's results to its jobs: hidden rows (embeddings,
 * the last one, or added to the job's sum for the mean), logits, sampled
 * tokens.  Returns 0 or a device error. */
static int
readback(struct eng *e, struct eng_job *jobs, const struct round *r)
{
	struct eng_run_buf *rb = &e->run;
	const int H = e->c.hidden_size, V = e->c.vocab_size;
	size_t hb = (size_t)H * 4;
	int rv;

	if (r->nsamp > 0 && (rv = gpu_buf_read(e->dev, &e->samp_tok, 0,
	    rb->stok, (size_t)r->nsamp * sizeof(*rb->stok))) != 0)
		return (rv);
	for (int i = 0; i < r->nch; i++) {
		const struct eng_chunk *c = &rb->ch[i];
		struct eng_job *b = &jobs[c->job];
		for (int k = 0; k < c->n && b->out >= ENG_OUT_EMBED &&
		    b->out <= ENG_OUT_LAST; k++) {
			int in = c->first + k;
			if (b->out == ENG_OUT_LAST && in != b->n - 1)
				continue;
			if ((rv = gpu_buf_read(e->dev, &e->hid,
			    (size_t)(c->row + k) * hb, rb->row, hb)) != 0)
				return (rv);
			if (b->out == ENG_OUT_EMBED)
				memcpy(b->result + (size_t)in * H, rb->row, hb);
			else if (b->out == ENG_OUT_LAST)
				memcpy(b->result, rb->row, hb);
			else
				for (int q = 0; q < H; q++)
					b->sum[q] += rb->row[q];
		}
		if (c->lrow >= 0 && b->out == ENG_OUT_LOGITS) {
			if ((rv = gpu_buf_read(e->dev, &e->logits,
			    (size_t)c->lrow * V * 4,
			    b->result + (size_t)c->first * V,
			    (size_t)c->nlog * V * 4)) != 0)
				return (rv);
		} else if (c->lrow >= 0 && b->out == ENG_OUT_LAST_LOGITS) {
			if ((rv = gpu_buf_read(e->dev, &e->logits,
			    (size_t)c->lrow * V * 4, b->result,
			    (size_t)V * 4)) != 0)
				return (rv);
		}
		if (c->srow >= 0)
			*b->token = rb->stok[c->srow];
		rb->done[c->job] += c->n;
	}
	return (0);
}

int
eng_run(struct eng *e, struct eng_job *jobs, int njobs, char *err,
    size_t errlen)
{
	struct round r;
	int R = e->max_batch, rv;
	char dummy[8];

	if (err == NULL) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	if ((rv = check_jobs(e, jobs, njobs, err, errlen)) != 0)
		return (rv);
	for (int j = 0; j < njobs; j++)
		if (jobs[j].out == ENG_OUT_LOGITS && R > e->logit_rows)
			R = e->logit_rows;
	if ((rv = run_reserve(e, njobs)) != 0)
		return (rv);

	for (;;) {
		if ((rv = gather(e, jobs, njobs, R, &r, err, errlen)) != 0)
			return (rv);
		if (r.T == 0 && r.nlog == 0)
			break;
		if ((rv = upload(e, &r)) != 0 ||
		    (rv = record(e, jobs, &r)) != 0 ||
		    (rv = submit(e, jobs, &r)) != 0 ||
		    (rv = readback(e, jobs, &r)) != 0)
			goto devfail;
	}
	return (0);
devfail:
	if (rv == INFINI_ENOMEM)
		snprintf(err, errlen, "the device ran out of memory");
	else if (gpu_lost(e->dev))
		snprintf(err, errlen, "the device was lost");
	else
		snprintf(err, errlen, "device submission failed");
	return (rv);
}
