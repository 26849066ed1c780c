/*
 * ref.c - the double-precision oracle for the whole model (see ref.h).
 *
 * Written from the equations below, not from the engine; the only thing it
 * shares with the engine is reading weights with eng_tensor_get().  Every
 * sum is accumulated in double, in plain index order.
 *
 * Semantics (the engine implements the same):
 *
 * Stream state: position p; per layer l and kv head g: M[l][g] (hd x hd, zero
 * at start), z[l][g] (hd, zero); the unfinished segment's cache: for its
 * positions 0..j-1 the roped K (local attention), the raw K (memory) and V.
 * N = segment_size, j = p mod N.
 *
 * Input x[H]: token t -> E[t] (embed_tokens row), times sqrt(H) for gemma; a
 * raw vector is used as given (no scaling).
 *
 * rmsnorm(x, w) = x / sqrt(mean(x^2) + rms_norm_eps) * w  (gemma: * (1 + w)).
 *
 * Per layer:
 *   xn = rmsnorm(x, attn_norm); q = Wq xn, k = Wk xn, v = Wv xn
 *     (W [out][in] row-major: q_i = sum_c Wq[i][c] xn[c]).
 *   Head h of q is q[h*hd ..]; its kv head is g = h / (nh / nkv).
 *   RoPE (cfg.rope only), HF rotate_half at the position j WITHIN the segment
 *     (restarts at 0 each segment): for i < hd/2, f = theta^(-2i/hd), a = j f,
 *     out[i] = x[i] cos a - x[i+hd/2] sin a,
 *     out[i+hd/2] = x[i+hd/2] cos a + x[i] sin a.
 *     Applied to q and k for the local branch; without rope roped = raw.
 *   Local: store (k_roped, k_raw, v) at cache position j; for head h,
 *     s_t = q_roped . kroped_t / sqrt(hd), t = 0..j; p = softmax(s);
 *     A_dot = sum_t p_t v_t (kv head g).
 *   Memory (state before this segment's update): qm = memory_rope ? q_roped :
 *     q_raw; sq = sigma(qm), sigma(x) = ELU(x) + 1 (x > 0 ? x + 1 : e^x);
 *     A_mem[b] = (sum_a sq[a] M[a][b]) / (sum_a sq[a] z[a] + memory_eps).
 *     In the first segment M = z = 0, so A_mem = 0.
 *   Gate: gs = sigmoid(beta_h), beta = self_attn.gate element h (flat order).
 *     gate_on memory: A = gs A_mem + (1 - gs) A_dot;
 *     gate_on local:  A = gs A_dot + (1 - gs) A_mem.
 *   x += Wo concat_h(A_h).
 *   MLP: xn = rmsnorm(x, mlp_norm); hmid = act(Wg xn) * (Wu xn); x += Wd hmid.
 *     silu(x) = x / (1 + e^-x); gelu(x) = 0.5 x (1 + erf(x / sqrt2));
 *     gelu_tanh(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
 * After the layers: hidden = rmsnorm(x, model.norm) (the "embedding"),
 * logits = LM hidden, LM = lm_head or embed when tied.
 *
 * When the token filled the segment (j == N-1), after its full forward, each
 * layer and kv head compresses the segment with km_t = memory_rope ? kroped_t
 * : kraw_t, sk_t = sigma(km_t), t = 0..N-1:
 *   linear: M[a][b] += sum_t sk_t[a] v_t[b]; z += sum_t sk_t.
 *   delta:  with the OLD M, z first vhat_t[b] = (sum_a sk_t[a] M[a][b]) /
 *           (sk_t . z + memory_eps) for all t; then
 *           M[a][b] += sum_t sk_t[a] (v_t[b] - vhat_t[b]); z += sum_t sk_t.
 * Then the cache is cleared.  p advances by one per input.
 */
#include "ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "infini_err.h"

#define REF_PI 3.14159265358979323846

struct ref_state {
	const struct eng_model *m;
	int L, H, I, V, nh, nkv, hd, N;
	long pos;
	size_t n_doubles;  /* length of blk */
	double *blk;       /* everything below lives in this one block */
	/* persistent state */
	double *M;         /* [L][nkv][hd][hd] */
	double *z;         /* [L][nkv][hd] */
	double *kro;       /* [L][N][nkv*hd] roped K of the partial segment */
	double *kraw;      /* [L][N][nkv*hd] raw K */
	double *vc;        /* [L][N][nkv*hd] V */
	/* scratch, meaningless between calls */
	double *x;         /* [H] residual stream */
	double *xn;        /* [H] normed input of a block */
	double *q;         /* [nh*hd] raw query */
	double *qr;        /* [nh*hd] roped query */
	double *k;         /* [nkv*hd] raw key */
	double *kr;        /* [nkv*hd] roped key */
	double *v;         /* [nkv*hd] */
	double *att;       /* [nh*hd] gated attention output, heads concatenated */
	double *sq;        /* [hd] sigma(q) of one head */
	double *amem;      /* [hd] */
	double *adot;      /* [hd] */
	double *gt;        /* [I] gate projection */
	double *up;        /* [I] up projection */
	double *tmp;       /* [max(H, N*hd, hd*hd)] */
	double *kseg;      /* [N][hd] one kv head's keys, gathered */
	double *vseg;      /* [N][hd] one kv head's values, gathered */
	double *nw;        /* [H] a norm weight read as double */
};

/* ------------------------------------------------------------------- ops */

void
ref_rmsnorm(const double *x, const double *w, int n, double eps, bool gemma,
    double *out)
{
	double ss = 0;
	for (int i = 0; i < n; i++)
		ss += x[i] * x[i];
	double r = 1.0 / sqrt(ss / n + eps);
	for (int i = 0; i < n; i++)
		out[i] = x[i] * r * (gemma ? 1.0 + w[i] : w[i]);
}

void
ref_rope(double *x, int hd, int pos, double theta)
{
	int half = hd / 2;
	for (int i = 0; i < half; i++) {
		double f = pow(theta, -2.0 * i / hd);
		double a = (double)pos * f, c = cos(a), s = sin(a);
		double x0 = x[i], x1 = x[i + half];
		x[i] = x0 * c - x1 * s;
		x[i + half] = x1 * c + x0 * s;
	}
}

void
ref_sigma(const double *x, int n, double *out)
{
	for (int i = 0; i < n; i++)
		out[i] = x[i] > 0 ? x[i] + 1.0 : exp(x[i]);
}

void
ref_retrieve(const double *sq, const double *M, const double *z, int hd,
    double eps, double *out)
{
	double den = 0;
	for (int a = 0; a < hd; a++)
		den += sq[a] * z[a];
	den += eps;
	for (int b = 0; b < hd; b++) {
		double num = 0;
		for (int a = 0; a < hd; a++)
			num += sq[a] * M[a * hd + b];
		out[b] = num / den;
	}
}

void
ref_mem_update(double *M, double *z, const double *K, const double *V, int T,
    int hd, double eps, bool delta)
{
	/* sigma(K) and, for delta, V - vhat are computed for all rows before
	 * M or z change, so every row sees the old state. */
	double *sk = malloc(sizeof(double) * (size_t)T * hd);
	double *dv = malloc(sizeof(double) * (size_t)T * hd);
	if (sk == NULL || dv == NULL) {
		/* The op has no error path, and an oracle that silently
		 * skipped work would mislead a test: stop loudly. */
		abort();
	}
	ref_sigma(K, T * hd, sk);
	for (int t = 0; t < T; t++) {
		const double *s = sk + (size_t)t * hd;
		double *d = dv + (size_t)t * hd;
		if (delta) {
			ref_retrieve(s, M, z, hd, eps, d);
			for (int b = 0; b < hd; b++)
				d[b] = V[(size_t)t * hd + b] - d[b];
		} else {
			memcpy(d, V + (size_t)t * hd, sizeof(double) * hd);
		}
	}
	for (int a = 0; a < hd; a++)
		for (int b = 0; b < hd; b++) {
			double acc = 0;
			for (int t = 0; t < T; t++)
				acc += sk[(size_t)t * hd + a] *
				    dv[(size_t)t * hd + b];
			M[a * hd + b] += acc;
		}
	for (int a = 0; a < hd; a++) {
		double acc = 0;
		for (int t = 0; t < T; t++)
			acc += sk[(size_t)t * hd + a];
		z[a] += acc;
	}
	free(sk);
	free(dv);
}

void
ref_attention(const double *q, const double *K, const double *V, int n,
    int hd, double *out)
{
	/* Two passes (max, then exp-sum) so no buffer is needed; the dot
	 * products are simply computed twice. */
	double scale = 1.0 / sqrt((double)hd), mx = -INFINITY, sum = 0;
	for (int t = 0; t < n; t++) {
		double d = 0;
		for (int i = 0; i < hd; i++)
			d += q[i] * K[(size_t)t * hd + i];
		if (d * scale > mx)
			mx = d * scale;
	}
	for (int i = 0; i < hd; i++)
		out[i] = 0;
	for (int t = 0; t < n; t++) {
		double d = 0;
		for (int i = 0; i < hd; i++)
			d += q[i] * K[(size_t)t * hd + i];
		double e = exp(d * scale - mx);
		sum += e;
		for (int i = 0; i < hd; i++)
			out[i] += e * V[(size_t)t * hd + i];
	}
	for (int i = 0; i < hd; i++)
		out[i] /= sum;
}

double
ref_act(double x, enum eng_act a)
{
	switch (a) {
	case ENG_ACT_GELU:
		return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
	case ENG_ACT_GELU_TANH: {
		double u = sqrt(2.0 / REF_PI) * (x + 0.044715 * x * x * x);
		return 0.5 * x * (1.0 + tanh(u));
	}
	case ENG_ACT_SILU:
	default:
		return x / (1.0 + exp(-x));
	}
}

/* ----------------------------------------------------------------- state */

int
ref_state_alloc(const struct eng_model *m, struct ref_state **out)
{
	const struct eng_config *c = &m->cfg;
	if (c->hidden_size <= 0 || c->n_layers <= 0 || c->n_heads <= 0 ||
	    c->n_kv_heads <= 0 || c->head_dim <= 0 || c->vocab_size <= 0 ||
	    c->intermediate_size <= 0 || c->segment_size <= 0 ||
	    c->n_heads % c->n_kv_heads != 0 || (c->rope && c->head_dim % 2))
		return (INFINI_EINVAL);

	struct ref_state *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return (INFINI_ENOMEM);
	s->m = m;
	s->L = c->n_layers;
	s->H = c->hidden_size;
	s->I = c->intermediate_size;
	s->V = c->vocab_size;
	s->nh = c->n_heads;
	s->nkv = c->n_kv_heads;
	s->hd = c->head_dim;
	s->N = c->segment_size;

	size_t L = s->L, H = s->H, I = s->I, nh = s->nh, nkv = s->nkv,
	       hd = s->hd, N = s->N;
	size_t tmpn = H;
	if (N * hd > tmpn)
		tmpn = N * hd;
	if (hd * hd > tmpn)
		tmpn = hd * hd;
	/* Carve the block in a fixed order; ref_state_clone relies on it. */
	size_t sizes[] = {
		L * nkv * hd * hd, L * nkv * hd, L * N * nkv * hd,
		L * N * nkv * hd, L * N * nkv * hd,
		H, H, nh * hd, nh * hd, nkv * hd, nkv * hd, nkv * hd, nh * hd,
		hd, hd, hd, I, I, tmpn, N * hd, N * hd, H,
	};
	double **ptrs[] = {
		&s->M, &s->z, &s->kro, &s->kraw, &s->vc,
		&s->x, &s->xn, &s->q, &s->qr, &s->k, &s->kr, &s->v, &s->att,
		&s->sq, &s->amem, &s->adot, &s->gt, &s->up, &s->tmp, &s->kseg,
		&s->vseg, &s->nw,
	};
	_Static_assert(sizeof(sizes) / sizeof(sizes[0]) ==
	    sizeof(ptrs) / sizeof(ptrs[0]), "sizes and ptrs must match");
	size_t total = 0;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		total += sizes[i];
	s->blk = calloc(total, sizeof(double));
	if (s->blk == NULL) {
		free(s);
		return (INFINI_ENOMEM);
	}
	s->n_doubles = total;
	size_t off = 0;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		*ptrs[i] = s->blk + off;
		off += sizes[i];
	}
	*out = s;
	return (0);
}

void
ref_state_free(struct ref_state *s)
{
	if (s == NULL)
		return;
	free(s->blk);
	free(s);
}

int
ref_state_clone(const struct ref_state *s, struct ref_state **out)
{
	struct ref_state *c;
	int rv = ref_state_alloc(s->m, &c);
	if (rv != 0)
		return (rv);
	memcpy(c->blk, s->blk, sizeof(double) * s->n_doubles);
	c->pos = s->pos;
	*out = c;
	return (0);
}

long
ref_position(const struct ref_state *s)
{
	return (s->pos);
}

const double *
ref_M(const struct ref_state *s, int layer, int kvh)
{
	return (s->M + ((size_t)layer * s->nkv + kvh) * s->hd * s->hd);
}

const double *
ref_z(const struct ref_state *s, int layer, int kvh)
{
	return (s->z + ((size_t)layer * s->nkv + kvh) * s->hd);
}

size_t
ref_state_bytes(const struct ref_state *s)
{
	return (sizeof(*s) + sizeof(double) * s->n_doubles);
}

/* --------------------------------------------------------------- forward */

/* matvec: out[rows] = W x, W [rows][cols] read element by element. */
static void
matvec(const struct eng_tensor *W, const double *x, int rows, int cols,
    double *out)
{
	for (int i = 0; i < rows; i++) {
		double acc = 0;
		size_t base = (size_t)i * cols;
		for (int c = 0; c < cols; c++)
			acc += (double)eng_tensor_get(W, base + c) * x[c];
		out[i] = acc;
	}
}

/* norm: out = rmsnorm(x, w) with w read from the tensor. */
static void
norm(struct ref_state *s, const struct eng_tensor *w, const double *x,
    double *out)
{
	for (int i = 0; i < s->H; i++)
		s->nw[i] = eng_tensor_get(w, i);
	ref_rmsnorm(x, s->nw, s->H, s->m->cfg.rms_norm_eps,
	    s->m->cfg.arch == ENG_ARCH_GEMMA, out);
}

/* attention_block runs layer l's attention for position j of the segment and
 * adds its output to s->x. */
static void
attention_block(struct ref_state *s, int l, int j)
{
	const struct eng_config *c = &s->m->cfg;
	const struct eng_layer *ly = &s->m->layers[l];
	int hd = s->hd, nh = s->nh, nkv = s->nkv, H = s->H, N = s->N;
	int kvd = nkv * hd, group = nh / nkv;

	norm(s, ly->attn_norm, s->x, s->xn);
	matvec(ly->wq, s->xn, nh * hd, H, s->q);
	matvec(ly->wk, s->xn, kvd, H, s->k);
	matvec(ly->wv, s->xn, kvd, H, s->v);
	memcpy(s->qr, s->q, sizeof(double) * nh * hd);
	memcpy(s->kr, s->k, sizeof(double) * kvd);
	if (c->rope) {
		for (int h = 0; h < nh; h++)
			ref_rope(s->qr + h * hd, hd, j, c->rope_theta);
		for (int g = 0; g < nkv; g++)
			ref_rope(s->kr + g * hd, hd, j, c->rope_theta);
	}

	/* Append this token to the segment cache. */
	size_t row = ((size_t)l * N + j) * kvd;
	memcpy(s->kro + row, s->kr, sizeof(double) * kvd);
	memcpy(s->kraw + row, s->k, sizeof(double) * kvd);
	memcpy(s->vc + row, s->v, sizeof(double) * kvd);

	for (int h = 0; h < nh; h++) {
		int g = h / group;
		/* Local branch over cache rows 0..j of kv head g. */
		for (int t = 0; t <= j; t++) {
			size_t r = ((size_t)l * N + t) * kvd + (size_t)g * hd;
			memcpy(s->kseg + (size_t)t * hd, s->kro + r,
			    sizeof(double) * hd);
			memcpy(s->vseg + (size_t)t * hd, s->vc + r,
			    sizeof(double) * hd);
		}
		ref_attention(s->qr + h * hd, s->kseg, s->vseg, j + 1, hd,
		    s->adot);

		/* Memory branch, state from before this segment. */
		const double *qm = (c->memory_rope ? s->qr : s->q) + h * hd;
		ref_sigma(qm, hd, s->sq);
		ref_retrieve(s->sq, ref_M(s, l, g), ref_z(s, l, g), hd,
		    c->memory_eps, s->amem);

		double beta = eng_tensor_get(ly->gate, h);
		double gs = 1.0 / (1.0 + exp(-beta));
		const double *a = c->gate_on == ENG_GATE_LOCAL ? s->adot :
		    s->amem;
		const double *b = c->gate_on == ENG_GATE_LOCAL ? s->amem :
		    s->adot;
		for (int i = 0; i < hd; i++)
			s->att[h * hd + i] = gs * a[i] + (1.0 - gs) * b[i];
	}

	matvec(ly->wo, s->att, H, nh * hd, s->tmp);
	for (int i = 0; i < H; i++)
		s->x[i] += s->tmp[i];
}

/* mlp_block runs layer l's MLP and adds its output to s->x. */
static void
mlp_block(struct ref_state *s, int l)
{
	const struct eng_layer *ly = &s->m->layers[l];
	int H = s->H, I = s->I;

	norm(s, ly->mlp_norm, s->x, s->xn);
	matvec(ly->w_gate, s->xn, I, H, s->gt);
	matvec(ly->w_up, s->xn, I, H, s->up);
	for (int i = 0; i < I; i++)
		s->gt[i] = ref_act(s->gt[i], s->m->cfg.act) * s->up[i];
	matvec(ly->w_down, s->gt, H, I, s->tmp);
	for (int i = 0; i < H; i++)
		s->x[i] += s->tmp[i];
}

/* compress folds the full segment cache of every layer and kv head into
 * M, z, then empties the cache. */
static void
compress(struct ref_state *s)
{
	const struct eng_config *c = &s->m->cfg;
	int hd = s->hd, nkv = s->nkv, N = s->N, kvd = nkv * hd;
	const double *kc = c->memory_rope ? s->kro : s->kraw;

	for (int l = 0; l < s->L; l++)
		for (int g = 0; g < nkv; g++) {
			for (int t = 0; t < N; t++) {
				size_t r = ((size_t)l * N + t) * kvd +
				    (size_t)g * hd;
				memcpy(s->kseg + (size_t)t * hd, kc + r,
				    sizeof(double) * hd);
				memcpy(s->vseg + (size_t)t * hd, s->vc + r,
				    sizeof(double) * hd);
			}
			ref_mem_update((double *)ref_M(s, l, g),
			    (double *)ref_z(s, l, g), s->kseg, s->vseg, N, hd,
			    c->memory_eps,
			    c->memory_update == ENG_UPDATE_DELTA);
		}
	size_t cache = (size_t)s->L * N * kvd;
	memset(s->kro, 0, sizeof(double) * cache);
	memset(s->kraw, 0, sizeof(double) * cache);
	memset(s->vc, 0, sizeof(double) * cache);
}

int
ref_step(struct ref_state *s, int tok, const float *vec, double *hidden,
    double *logits)
{
	const struct eng_model *m = s->m;
	int H = s->H;

	if (tok >= s->V || (tok < 0 && vec == NULL))
		return (INFINI_EINVAL);
	int j = (int)(s->pos % s->N);

	/* Input. */
	if (tok >= 0) {
		double sc = m->cfg.arch == ENG_ARCH_GEMMA ? sqrt((double)H) :
		    1.0;
		for (int i = 0; i < H; i++)
			s->x[i] = eng_tensor_get(m->embed,
			    (size_t)tok * H + i) * sc;
	} else {
		for (int i = 0; i < H; i++)
			s->x[i] = vec[i];
	}

	for (int l = 0; l < s->L; l++) {
		attention_block(s, l, j);
		mlp_block(s, l);
	}

	norm(s, m->norm, s->x, s->xn);
	if (hidden != NULL)
		memcpy(hidden, s->xn, sizeof(double) * H);
	if (logits != NULL) {
		const struct eng_tensor *lm =
		    (m->cfg.tie_word_embeddings || m->lm_head == NULL) ?
		    m->embed : m->lm_head;
		matvec(lm, s->xn, s->V, H, logits);
	}

	if (j == s->N - 1)
		compress(s);
	s->pos++;
	return (0);
}

/* ------------------------------------------------------------- sampling */

static uint32_t
pcg(uint32_t v)
{
	uint32_t st = v * 747796405u + 2891336453u;
	uint32_t w = ((st >> ((st >> 28u) + 4u)) ^ st) * 277803737u;
	return ((w >> 22u) ^ w);
}

uint32_t
ref_rng_u32(uint64_t seed, uint64_t step)
{
	uint32_t k = pcg((uint32_t)seed ^ pcg((uint32_t)(seed >> 32)));
	return (pcg(k + pcg((uint32_t)step ^ pcg((uint32_t)(step >> 32)))));
}

double
ref_uniform(uint64_t seed, uint64_t step)
{
	return ((double)(ref_rng_u32(seed, step) >> 8) * (1.0 / 16777216.0));
}

static int
cmp_desc(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x < y) - (x > y);
}

/*
 * Sampling: p = softmax(logits / temperature).  The kept set is
 * S = {i : p_i >= thr}, thr = max(p_(k) if 0 < top_k < V,
 * p_(m) if 0 < top_p < 1, with p_(1) >= p_(2) >= ... and m the smallest
 * count whose prefix sum reaches top_p).  S always holds the largest p.
 * With u = ref_uniform(seed, step), walk ids upwards over S accumulating p_i
 * and return the first id whose running sum exceeds u * sum_S p.
 */
int
ref_sample(const double *logits, int V, double temperature, int top_k,
    double top_p, uint64_t seed, uint64_t step)
{
	if (logits == NULL || V <= 0)
		return (-1);
	if (temperature <= 0) {
		int best = 0;
		for (int i = 1; i < V; i++)
			if (logits[i] > logits[best])
				best = i;
		return (best);
	}

	double *p = malloc(sizeof(double) * (size_t)V);
	double *srt = malloc(sizeof(double) * (size_t)V);
	if (p == NULL || srt == NULL) {
		free(p);
		free(srt);
		return (-1);
	}
	double mx = -INFINITY, sum = 0;
	for (int i = 0; i < V; i++)
		if (logits[i] / temperature > mx)
			mx = logits[i] / temperature;
	for (int i = 0; i < V; i++) {
		p[i] = exp(logits[i] / temperature - mx);
		sum += p[i];
	}
	for (int i = 0; i < V; i++) {
		p[i] /= sum;
		srt[i] = p[i];
	}
	qsort(srt, (size_t)V, sizeof(double), cmp_desc);

	double thr = 0;
	if (top_k > 0 && top_k < V && srt[top_k - 1] > thr)
		thr = srt[top_k - 1];
	if (top_p > 0 && top_p < 1) {
		double cum = 0;
		int mi = V - 1; /* if rounding never reaches top_p: keep all */
		for (int i = 0; i < V; i++) {
			cum += srt[i];
			if (cum >= top_p) {
				mi = i;
				break;
			}
		}
		if (srt[mi] > thr)
			thr = srt[mi];
	}

	double ssum = 0;
	int last = -1;
	for (int i = 0; i < V; i++)
		if (p[i] >= thr) {
			ssum += p[i];
			last = i;
		}
	double target = ref_uniform(seed, step) * ssum, cum = 0;
	int pick = last;
	for (int i = 0; i < V; i++) {
		if (p[i] < thr)
			continue;
		cum += p[i];
		if (cum > target) {
			pick = i;
			break;
		}
	}
	free(p);
	free(srt);
	return (pick);
}
