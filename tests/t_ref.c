/*
 * t_ref.c - checks the oracle itself (tests/ref.c) before anything is judged
 * by it.  Every expected value is worked out here independently: by hand
 * arithmetic on tiny inputs, by the explicit formulas written out for 2-wide
 * vectors, or by properties (rope keeps the norm, the delta rule does not
 * store a pair twice, the state does not grow with the stream).  The models
 * are built in memory from F32 arrays, so no file or GPU is involved.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model.h"
#include "infini_err.h"
#include "ref.h"
#include "tap.h"

#define TOL 1e-12

/* ---------------------------------------------------------- tiny models */

/* A hand-made model: its tensors point into arrays owned by the test. */
struct tmodel {
	struct eng_model m;
	struct eng_layer layers[2];
	struct eng_tensor t[32];
	int nt;
};

static const struct eng_tensor *
tensor(struct tmodel *tm, int rows, int cols, const float *data)
{
	struct eng_tensor *t = &tm->t[tm->nt++];
	memset(t, 0, sizeof(*t));
	t->name = "test";
	t->dtype = ENG_F32;
	t->ndim = rows > 1 ? 2 : 1;
	t->shape[0] = rows > 1 ? rows : cols;
	t->shape[1] = rows > 1 ? cols : 0;
	t->data = data;
	t->nbytes = sizeof(float) * (size_t)rows * cols;
	return (t);
}

static void
base_config(struct eng_config *c)
{
	memset(c, 0, sizeof(*c));
	c->arch = ENG_ARCH_LLAMA;
	c->rms_norm_eps = 1e-5;
	c->rope_theta = 10000;
	c->act = ENG_ACT_SILU;
	c->memory_eps = 1e-6;
	c->memory_update = ENG_UPDATE_LINEAR;
	c->gate_on = ENG_GATE_MEMORY;
}

/* Weights of the 2-wide hand model: identity projections, so q = k = v =
 * the normed input, and an MLP whose down projection is zero. */
static const float E3[] = { 3, 4, 1, -2, 0.5f, 0.5f };   /* [3][2] */
static const float ID2[] = { 1, 0, 0, 1 };
static const float ONES2[] = { 1, 1 };
static const float ZEROS2[] = { 0, 0 };
static const float MLP_G[] = { 1, 0 };                  /* [1][2] */
static const float MLP_U[] = { 0, 1 };                  /* [1][2] */
static const float ZERO_D[] = { 0, 0 };                 /* [2][1] */

/* hand_model: H = 2, one head of size 2, V = 3, N = 2, no rope. */
static void
hand_model(struct tmodel *tm, bool gemma, const float *beta,
    enum eng_gate_on gate_on, enum eng_update upd, const float *wo,
    const float *wdown)
{
	memset(tm, 0, sizeof(*tm));
	struct eng_config *c = &tm->m.cfg;
	base_config(c);
	c->arch = gemma ? ENG_ARCH_GEMMA : ENG_ARCH_LLAMA;
	c->vocab_size = 3;
	c->hidden_size = 2;
	c->intermediate_size = 1;
	c->n_layers = 1;
	c->n_heads = 1;
	c->n_kv_heads = 1;
	c->head_dim = 2;
	c->tie_word_embeddings = true;
	c->segment_size = 2;
	c->memory_update = upd;
	c->gate_on = gate_on;
	c->rope = false;
	/* gemma's norms multiply by (1 + w): w = 0 is the same as llama's 1 */
	const float *nw = gemma ? ZEROS2 : ONES2;
	tm->m.embed = tensor(tm, 3, 2, E3);
	tm->m.lm_head = tm->m.embed;
	tm->m.norm = tensor(tm, 1, 2, nw);
	struct eng_layer *l = &tm->layers[0];
	l->attn_norm = tensor(tm, 1, 2, nw);
	l->wq = tensor(tm, 2, 2, ID2);
	l->wk = tensor(tm, 2, 2, ID2);
	l->wv = tensor(tm, 2, 2, ID2);
	l->wo = tensor(tm, 2, 2, wo);
	l->gate = tensor(tm, 1, 1, beta);
	l->mlp_norm = tensor(tm, 1, 2, nw);
	l->w_gate = tensor(tm, 1, 2, MLP_G);
	l->w_up = tensor(tm, 1, 2, MLP_U);
	l->w_down = tensor(tm, 2, 1, wdown);
	tm->m.layers = tm->layers;
}

/* nrm2 is the 2-wide rmsnorm with unit weight, written out. */
static void
nrm2(const double x[2], double eps, double out[2])
{
	double r = sqrt((x[0] * x[0] + x[1] * x[1]) / 2 + eps);
	out[0] = x[0] / r;
	out[1] = x[1] / r;
}

static double
sig1(double x)
{
	return x > 0 ? x + 1 : exp(x);
}

static double
maxdiff(const double *a, const double *b, int n)
{
	double d = 0;
	for (int i = 0; i < n; i++)
		if (fabs(a[i] - b[i]) > d)
			d = fabs(a[i] - b[i]);
	return (d);
}

/* A random model for property tests: every weight from a fixed LCG. */
struct rmodel {
	struct tmodel tm;
	float *buf;
};

static uint64_t lcg_state;

static float
lcg(void)
{
	lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
	return ((float)((lcg_state >> 40) / 16777216.0) - 0.5f);
}

static int
random_model(struct rmodel *rm, int L, int H, int nh, int nkv, int hd,
    int I, int V, int N, bool rope, float beta)
{
	struct tmodel *tm = &rm->tm;
	memset(tm, 0, sizeof(*tm));
	struct eng_config *c = &tm->m.cfg;
	base_config(c);
	c->vocab_size = V;
	c->hidden_size = H;
	c->intermediate_size = I;
	c->n_layers = L;
	c->n_heads = nh;
	c->n_kv_heads = nkv;
	c->head_dim = hd;
	c->segment_size = N;
	c->rope = rope;
	c->rope_theta = 100;
	size_t per_layer = 2 * (size_t)H + (size_t)nh * hd * H * 2 +
	    (size_t)nkv * hd * H * 2 + nh + 3 * (size_t)I * H;
	size_t n = (size_t)V * H * 2 + H + L * per_layer;
	rm->buf = malloc(sizeof(float) * n);
	if (rm->buf == NULL)
		return (INFINI_ENOMEM);
	lcg_state = 12345;
	for (size_t i = 0; i < n; i++)
		rm->buf[i] = lcg();
	float *p = rm->buf;
#define TAKE(rows, cols) (p += (size_t)(rows) * (cols), \
	    tensor(tm, (rows), (cols), p - (size_t)(rows) * (cols)))
	tm->m.embed = TAKE(V, H);
	tm->m.lm_head = TAKE(V, H);
	float *normw = p;
	tm->m.norm = TAKE(1, H);
	for (int i = 0; i < H; i++)
		normw[i] += 1;
	for (int l = 0; l < L; l++) {
		struct eng_layer *ly = &tm->layers[l];
		float *an = p;
		ly->attn_norm = TAKE(1, H);
		ly->wq = TAKE(nh * hd, H);
		ly->wk = TAKE(nkv * hd, H);
		ly->wv = TAKE(nkv * hd, H);
		ly->wo = TAKE(H, nh * hd);
		float *g = p;
		ly->gate = TAKE(1, nh);
		for (int h = 0; h < nh; h++)
			g[h] = beta;
		float *mn = p;
		ly->mlp_norm = TAKE(1, H);
		ly->w_gate = TAKE(I, H);
		ly->w_up = TAKE(I, H);
		ly->w_down = TAKE(H, I);
		for (int i = 0; i < H; i++) {
			an[i] += 1;
			mn[i] += 1;
		}
	}
#undef TAKE
	tm->m.layers = tm->layers;
	return (0);
}

/* ------------------------------------------------------------------ ops */

static void
test_ops(void)
{
	/* act */
	is_close(ref_act(0, ENG_ACT_SILU), 0, TOL, "silu(0) = 0");
	is_close(ref_act(1, ENG_ACT_SILU), 1 / (1 + exp(-1.0)), TOL,
	    "silu(1)");
	is_close(ref_act(1, ENG_ACT_GELU), 0.8413447460685429, 1e-12,
	    "gelu(1) = Phi(1)");
	is_close(ref_act(1, ENG_ACT_GELU_TANH), 0.8411919906082768, 1e-12,
	    "gelu_tanh(1)");
	is_close(ref_act(-30, ENG_ACT_GELU), 0, 1e-12, "gelu(-30) ~ 0");

	/* rmsnorm of (3, 4): mean square 12.5 */
	double x[2] = { 3, 4 }, w[2] = { 1, 2 }, o[2];
	ref_rmsnorm(x, w, 2, 0, false, o);
	ok(fabs(o[0] - 3 / sqrt(12.5)) < TOL && fabs(o[1] - 8 / sqrt(12.5)) <
	    TOL, "rmsnorm (3,4) * (1,2)");
	double wg[2] = { 0, 1 };
	ref_rmsnorm(x, wg, 2, 0, true, o);
	ok(fabs(o[0] - 3 / sqrt(12.5)) < TOL && fabs(o[1] - 8 / sqrt(12.5)) <
	    TOL, "gemma rmsnorm multiplies by 1 + w");
	ref_rmsnorm(x, w, 2, 0.5, false, o);
	is_close(o[0], 3 / sqrt(13.0), TOL, "rmsnorm eps inside the root");

	/* rope: hd 4, pos 1: pair 0 turns by 1 rad, pair 1 by 0.01 rad */
	double r[4] = { 1, 0, 0, 0 };
	ref_rope(r, 4, 1, 10000);
	ok(fabs(r[0] - cos(1.0)) < TOL && fabs(r[2] - sin(1.0)) < TOL &&
	    r[1] == 0 && r[3] == 0, "rope pair 0 at pos 1: (cos 1, sin 1)");
	double r2[4] = { 0, 1, 0, 0 };
	ref_rope(r2, 4, 1, 10000);
	ok(fabs(r2[1] - cos(0.01)) < TOL && fabs(r2[3] - sin(0.01)) < TOL,
	    "rope pair 1 at pos 1 turns by theta^-1/2 = 0.01");
	double r3[4] = { 0, 0, 1, 0 };
	ref_rope(r3, 4, 1, 10000);
	ok(fabs(r3[0] + sin(1.0)) < TOL && fabs(r3[2] - cos(1.0)) < TOL,
	    "rope second half: (-sin 1, cos 1)");
	double v8[8], n0 = 0, n1 = 0;
	for (int i = 0; i < 8; i++) {
		v8[i] = sin(i * 1.3 + 0.2) * (i + 1);
		n0 += v8[i] * v8[i];
	}
	double v8c[8];
	memcpy(v8c, v8, sizeof(v8));
	ref_rope(v8, 8, 37, 500);
	for (int i = 0; i < 8; i++)
		n1 += v8[i] * v8[i];
	is_close(n1, n0, 1e-10, "rope keeps the norm");
	ref_rope(v8c, 8, 0, 500);
	ok(fabs(v8c[3] - sin(3 * 1.3 + 0.2) * 4) < TOL,
	    "rope at position 0 is the identity");

	/* sigma = ELU + 1 */
	double sx[3] = { -1, 0, 2 }, so[3];
	ref_sigma(sx, 3, so);
	ok(fabs(so[0] - exp(-1.0)) < TOL && so[1] == 1 && so[2] == 3,
	    "sigma(-1, 0, 2) = (1/e, 1, 3)");

	/* retrieval: sq (1,2), M [[1,2],[3,4]], z (1,1), eps 0:
	 * num = (1+6, 2+8) = (7, 10), den = 3 */
	double sq[2] = { 1, 2 }, M[4] = { 1, 2, 3, 4 }, z[2] = { 1, 1 }, a[2];
	ref_retrieve(sq, M, z, 2, 0, a);
	ok(fabs(a[0] - 7.0 / 3) < TOL && fabs(a[1] - 10.0 / 3) < TOL,
	    "retrieve hand 2x2: (7/3, 10/3)");
	ref_retrieve(sq, M, z, 2, 1, a);
	ok(fabs(a[0] - 7.0 / 4) < TOL, "retrieve: eps adds to the dot product");
	double Mz[4] = { 0 }, zz[2] = { 0 };
	ref_retrieve(sq, Mz, zz, 2, 1e-6, a);
	ok(a[0] == 0 && a[1] == 0, "retrieve from empty memory is 0");

	/* attention */
	double q[2] = { sqrt(2.0) * log(3.0), 0 };
	double K[4] = { 0, 0, 1, 0 }, Vv[4] = { 1, 2, 5, 6 }, ao[2];
	ref_attention(q, K, Vv, 1, 2, ao);
	ok(ao[0] == 1 && ao[1] == 2, "attention over one row returns V_0");
	/* scores 0 and ln 3 -> weights 1/4, 3/4 */
	ref_attention(q, K, Vv, 2, 2, ao);
	ok(fabs(ao[0] - (0.25 * 1 + 0.75 * 5)) < TOL &&
	    fabs(ao[1] - (0.25 * 2 + 0.75 * 6)) < TOL,
	    "attention weights 1/4, 3/4 for scores 0, ln 3");
	double qbig[2] = { 2000, 0 };
	ref_attention(qbig, K, Vv, 2, 2, ao);
	ok(isfinite(ao[0]) && fabs(ao[0] - 5) < 1e-9,
	    "attention is stable for huge scores");
}

static void
test_mem_update(void)
{
	/* K = [[1,-1],[0,2]] -> sigma = [[2, 1/e],[1, 3]], V = [[1,2],[3,4]] */
	const double K[4] = { 1, -1, 0, 2 }, V[4] = { 1, 2, 3, 4 };
	const double e1 = exp(-1.0);
	double M[4] = { 0 }, z[2] = { 0 };
	ref_mem_update(M, z, K, V, 2, 2, 1e-6, false);
	double wantM[4] = { 2 * 1 + 1 * 3, 2 * 2 + 1 * 4, e1 * 1 + 3 * 3,
		e1 * 2 + 3 * 4 };
	ok(maxdiff(M, wantM, 4) < TOL, "linear update, 2x2 by hand");
	ok(fabs(z[0] - 3) < TOL && fabs(z[1] - (e1 + 3)) < TOL,
	    "linear update of z: sum of sigma(K)");

	/* delta from empty memory is the linear rule */
	double Md[4] = { 0 }, zd[2] = { 0 };
	ref_mem_update(Md, zd, K, V, 2, 2, 1e-6, true);
	ok(maxdiff(Md, wantM, 4) < TOL && maxdiff(zd, z, 2) < TOL,
	    "delta update from empty memory equals linear");

	/* delta from M0 = I, z0 = (1,1): vhat_t = sk_t / (sk_t0 + sk_t1 + eps)
	 * with the OLD state for both rows. */
	double eps = 1e-6;
	double M1[4] = { 1, 0, 0, 1 }, z1[2] = { 1, 1 };
	ref_mem_update(M1, z1, K, V, 2, 2, eps, true);
	double s0[2] = { 2, e1 }, s1[2] = { 1, 3 };
	double d0 = s0[0] + s0[1] + eps, d1 = s1[0] + s1[1] + eps;
	double u0[2] = { 1 - s0[0] / d0, 2 - s0[1] / d0 };
	double u1[2] = { 3 - s1[0] / d1, 4 - s1[1] / d1 };
	double wantD[4] = {
		1 + s0[0] * u0[0] + s1[0] * u1[0],
		0 + s0[0] * u0[1] + s1[0] * u1[1],
		0 + s0[1] * u0[0] + s1[1] * u1[0],
		1 + s0[1] * u0[1] + s1[1] * u1[1],
	};
	ok(maxdiff(M1, wantD, 4) < TOL, "delta update from M = I, by hand");
	ok(fabs(z1[0] - 4) < TOL && fabs(z1[1] - (1 + e1 + 3)) < TOL,
	    "delta update of z is the linear one");

	/* storing the same (k, v) twice: the second delta step is ~ 0 */
	const double k1[2] = { 0.3, 0.9 }, v1[2] = { -1, 2 };
	double Ma[4] = { 0 }, za[2] = { 0 }, Mb[4];
	ref_mem_update(Ma, za, k1, v1, 1, 2, 1e-9, true);
	memcpy(Mb, Ma, sizeof(Ma));
	ref_mem_update(Ma, za, k1, v1, 1, 2, 1e-9, true);
	ok(maxdiff(Ma, Mb, 4) < 1e-6,
	    "delta rule does not store a known pair again");
	double Ml[4] = { 0 }, zl[2] = { 0 };
	ref_mem_update(Ml, zl, k1, v1, 1, 2, 1e-9, false);
	ref_mem_update(Ml, zl, k1, v1, 1, 2, 1e-9, false);
	ok(fabs(Ml[1] - 2 * Mb[1]) < TOL, "linear rule stores it twice");
}

/* ------------------------------------------------------------- sampling */

static uint32_t
pcg_t(uint32_t v)
{
	uint32_t s = v * 747796405u + 2891336453u;
	uint32_t w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
	return ((w >> 22u) ^ w);
}

static void
test_sampling(void)
{
	/* RNG: the formula as specified, and determinism */
	uint64_t seed = 0x123456789abcdef0ull, step = 0x100000007ull;
	uint32_t k = pcg_t(0x9abcdef0u ^ pcg_t(0x12345678u));
	uint32_t want = pcg_t(k + pcg_t(7u ^ pcg_t(1u)));
	is_int(ref_rng_u32(seed, step), want, "rng_u32 matches the spec");
	is_int(ref_rng_u32(seed, step), ref_rng_u32(seed, step),
	    "rng is deterministic");
	ok(ref_uniform(seed, step) == (want >> 8) / 16777216.0,
	    "uniform is the top 24 bits");
	int distinct = 0, inrange = 1;
	for (uint64_t s = 0; s < 1000; s++) {
		double u = ref_uniform(42, s);
		if (u < 0 || u >= 1)
			inrange = 0;
		if (ref_rng_u32(42, s) != ref_rng_u32(42, s + 1))
			distinct++;
		if (ref_rng_u32(42, s) == ref_rng_u32(43, s))
			distinct--;
	}
	ok(inrange && distinct >= 998, "uniform in [0,1), steps and seeds differ");

	/* argmax, ties to the lowest id */
	double lg[5] = { 0.5, 2, -1, 2, 1.5 };
	is_int(ref_sample(lg, 5, 0, 0, 1, 1, 1), 1, "greedy: lowest id of ties");
	is_int(ref_sample(lg, 5, -1, 3, 0.5, 1, 1), 1,
	    "negative temperature is greedy");
	double lg2[4] = { 0.1, 0.2, 3, 0.3 };
	int all_top = 1;
	for (uint64_t s = 0; s < 200; s++)
		if (ref_sample(lg2, 4, 1.0, 1, 1.0, 7, s) != 2 ||
		    ref_sample(lg2, 4, 5.0, 0, 1e-9, 7, s) != 2)
			all_top = 0;
	ok(all_top, "top_k = 1 and tiny top_p always pick the argmax");

	/* two equal logits: pick 1 exactly when u >= 1/2 */
	double eq[2] = { 0.7, 0.7 };
	int match = 1;
	for (uint64_t s = 0; s < 200; s++)
		if (ref_sample(eq, 2, 1, 0, 1, 9, s) !=
		    (ref_uniform(9, s) >= 0.5 ? 1 : 0))
			match = 0;
	ok(match, "the walk over ids: equal pair splits at u = 1/2");

	/* logits (0, ln 3): p = (1/4, 3/4); over 20000 draws ~ 0.75 */
	double lt[2] = { 0, log(3.0) };
	int ones = 0;
	for (uint64_t s = 0; s < 20000; s++)
		ones += ref_sample(lt, 2, 1, 0, 1, 3, s);
	is_close(ones / 20000.0, 0.75, 0.02, "frequencies follow softmax");

	/* top_k = 2 of 4 never picks the two smallest */
	double l4[4] = { 1, 0, 1.2, -1 };
	int bad = 0, seen0 = 0, seen2 = 0;
	for (uint64_t s = 0; s < 2000; s++) {
		int t = ref_sample(l4, 4, 1, 2, 1, 5, s);
		bad += t == 1 || t == 3;
		seen0 += t == 0;
		seen2 += t == 2;
	}
	ok(!bad && seen0 && seen2, "top_k = 2 keeps exactly the top two");

	/* top_p: p ~ (0.5, 0.3, 0.2) from logits ln p; top_p 0.8 keeps
	 * {0, 1}, 0.81 keeps all three. */
	double l3[3] = { log(0.5), log(0.3), log(0.2) };
	int got2 = 0, got2b = 0;
	for (uint64_t s = 0; s < 2000; s++) {
		got2 += ref_sample(l3, 3, 1, 0, 0.79, 11, s) == 2;
		got2b += ref_sample(l3, 3, 1, 0, 0.81, 11, s) == 2;
	}
	ok(got2 == 0 && got2b > 0, "top_p keeps the smallest prefix reaching p");
	is_int(ref_sample(NULL, 3, 1, 0, 1, 0, 0), -1, "NULL logits: -1");
}

/* --------------------------------------------------------------- models */

/* scenario checks three tokens through the hand model against the
 * formulas written out: token 0, token 1 (same segment), compression, then
 * token 2 reading memory in the second segment. */
static void
scenario(const char *what, bool gemma, float beta, enum eng_gate_on on)
{
	static const float WO_ID[] = { 1, 0, 0, 1 };
	float b[1] = { beta };
	struct tmodel tm;
	hand_model(&tm, gemma, b, on, ENG_UPDATE_LINEAR, WO_ID, ZERO_D);
	struct ref_state *s = NULL;
	int rv = ref_state_alloc(&tm.m, &s);
	is_int(rv, 0, "%s: alloc", what);
	if (rv != 0) {
		tap_skip(5, "no state");
		return;
	}
	const double eps = 1e-5, meps = 1e-6;
	const double sc = gemma ? sqrt(2.0) : 1.0;
	const double gs = 1 / (1 + exp(-(double)beta));
	/* weight of A_mem and of A_dot in the mix */
	const double wm = on == ENG_GATE_MEMORY ? gs : 1 - gs;
	const double wd = 1 - wm;
	double hid[2], lg[3], want[2], x[2], e[2];

	/* token 0: A_dot = v0 = k0 = xn0, A_mem = 0 */
	double k0[2];
	e[0] = 3 * sc, e[1] = 4 * sc;
	nrm2(e, eps, k0);
	x[0] = e[0] + wd * k0[0];
	x[1] = e[1] + wd * k0[1];
	nrm2(x, eps, want);
	ref_step(s, 0, NULL, hid, lg);
	ok(maxdiff(hid, want, 2) < 1e-12, "%s: token 0 hidden", what);
	double wl[3];
	for (int v = 0; v < 3; v++)
		wl[v] = E3[2 * v] * want[0] + E3[2 * v + 1] * want[1];
	ok(maxdiff(lg, wl, 3) < 1e-12, "%s: tied logits = E hidden", what);

	/* token 1: softmax over k0, k1 with q = k1 */
	double k1[2];
	e[0] = 1 * sc, e[1] = -2 * sc;
	nrm2(e, eps, k1);
	double s0 = (k1[0] * k0[0] + k1[1] * k0[1]) / sqrt(2.0);
	double s1 = (k1[0] * k1[0] + k1[1] * k1[1]) / sqrt(2.0);
	double p0 = 1 / (1 + exp(s1 - s0)), p1 = 1 - p0;
	x[0] = e[0] + wd * (p0 * k0[0] + p1 * k1[0]);
	x[1] = e[1] + wd * (p0 * k0[1] + p1 * k1[1]);
	nrm2(x, eps, want);
	ref_step(s, 1, NULL, hid, NULL);
	ok(maxdiff(hid, want, 2) < 1e-12, "%s: token 1 attends causally", what);

	/* the segment (N = 2) is full: M = sum sigma(k)^T v with v = k */
	double M[4], z[2];
	for (int a = 0; a < 2; a++) {
		for (int c = 0; c < 2; c++)
			M[a * 2 + c] = sig1(k0[a]) * k0[c] + sig1(k1[a]) * k1[c];
		z[a] = sig1(k0[a]) + sig1(k1[a]);
	}
	ok(maxdiff(ref_M(s, 0, 0), M, 4) < 1e-12 &&
	    maxdiff(ref_z(s, 0, 0), z, 2) < 1e-12,
	    "%s: segment compressed into M, z", what);

	/* token 2, first of segment 2: local sees only itself, memory M */
	double k2[2], sq[2], am[2];
	e[0] = 0.5 * sc, e[1] = 0.5 * sc;
	nrm2(e, eps, k2);
	sq[0] = sig1(k2[0]), sq[1] = sig1(k2[1]);
	double den = sq[0] * z[0] + sq[1] * z[1] + meps;
	am[0] = (sq[0] * M[0] + sq[1] * M[2]) / den;
	am[1] = (sq[0] * M[1] + sq[1] * M[3]) / den;
	x[0] = e[0] + wm * am[0] + wd * k2[0];
	x[1] = e[1] + wm * am[1] + wd * k2[1];
	nrm2(x, eps, want);
	ref_step(s, 2, NULL, hid, NULL);
	ok(maxdiff(hid, want, 2) < 1e-12, "%s: token 2 reads memory", what);
	ref_state_free(s);
}

/* test_mlp: attention off (Wo = 0); hmid = act(xn0) * xn1, down (1, 2). */
static void
test_mlp(void)
{
	static const float WO0[] = { 0, 0, 0, 0 }, WD[] = { 1, 2 };
	static const enum eng_act acts[] = { ENG_ACT_SILU, ENG_ACT_GELU,
		ENG_ACT_GELU_TANH };
	float b[1] = { 0 };
	for (int i = 0; i < 3; i++) {
		struct tmodel tm;
		hand_model(&tm, false, b, ENG_GATE_MEMORY, ENG_UPDATE_LINEAR,
		    WO0, WD);
		tm.m.cfg.act = acts[i];
		struct ref_state *s;
		if (ref_state_alloc(&tm.m, &s) != 0) {
			ok(0, "alloc");
			continue;
		}
		double e[2] = { 1, -2 }, xn[2], x[2], want[2], hid[2];
		nrm2(e, 1e-5, xn);
		double g = xn[0], act;
		if (acts[i] == ENG_ACT_SILU)
			act = g / (1 + exp(-g));
		else if (acts[i] == ENG_ACT_GELU)
			act = 0.5 * g * (1 + erf(g / sqrt(2.0)));
		else
			act = 0.5 * g * (1 + tanh(sqrt(2 / 3.14159265358979323846) *
			    (g + 0.044715 * g * g * g)));
		double hm = act * xn[1];
		x[0] = e[0] + hm;
		x[1] = e[1] + 2 * hm;
		nrm2(x, 1e-5, want);
		ref_step(s, 1, NULL, hid, NULL);
		ok(maxdiff(hid, want, 2) < 1e-12, "mlp with act %d", i);
		ref_state_free(s);
	}
}

static void
test_model_props(void)
{
	struct rmodel rm;
	if (random_model(&rm, 2, 8, 4, 2, 4, 6, 11, 3, true, -60) != 0) {
		tap_skip(12, "out of memory");
		return;
	}
	const struct eng_model *m = &rm.tm.m;
	struct ref_state *s, *c;
	is_int(ref_state_alloc(m, &s), 0, "random model: alloc");
	size_t bytes = ref_state_bytes(s);

	/* Gate -60 shuts the memory branch (sigmoid ~ 1e-26), so with rope
	 * restarting per segment, a repeated segment gives the same output. */
	const int toks[3] = { 4, 9, 1 };
	double h1[3][8], lg1[11], lg2[11], hv[8];
	for (int i = 0; i < 3; i++)
		ref_step(s, toks[i], NULL, h1[i], i == 2 ? lg1 : NULL);
	double d = 0;
	for (int i = 0; i < 3; i++) {
		double h2[8];
		ref_step(s, toks[i], NULL, h2, i == 2 ? lg2 : NULL);
		d = fmax(d, maxdiff(h1[i], h2, 8));
	}
	ok(d < 1e-12 && maxdiff(lg1, lg2, 11) < 1e-12,
	    "positions restart per segment and the cache is cleared");
	is_int(ref_position(s), 6, "position counts inputs");
	double zs = 0;
	for (int a = 0; a < 4; a++)
		zs += ref_z(s, 1, 1)[a];
	ok(zs > 0, "z grew after two segments");

	/* clone: same future as the original, and independent of it */
	is_int(ref_state_clone(s, &c), 0, "clone");
	ref_step(s, 3, NULL, h1[0], lg1);
	ref_step(c, 3, NULL, h1[1], lg2);
	ok(maxdiff(lg1, lg2, 11) == 0 && ref_position(c) == 7,
	    "clone continues identically");
	ref_step(s, 5, NULL, NULL, NULL);
	ok(ref_position(c) == 7, "stepping the original leaves the clone");

	/* raw vector input = embedding row (llama: no scaling) */
	float vec[8];
	for (int i = 0; i < 8; i++)
		vec[i] = eng_tensor_get(m->embed, 10 * 8 + i);
	struct ref_state *c2;
	ref_state_clone(c, &c2);
	ref_step(c, 10, NULL, h1[0], NULL);
	ref_step(c2, -1, vec, hv, NULL);
	ok(maxdiff(h1[0], hv, 8) == 0, "vector input = embedding row");
	is_int(ref_step(c2, 11, NULL, NULL, NULL), INFINI_EINVAL,
	    "token >= V is EINVAL");

	/* a long stream does not grow the state */
	for (int i = 0; i < 500; i++)
		ref_step(s, i % 11, NULL, NULL, NULL);
	ok(ref_state_bytes(s) == bytes && ref_position(s) == 508,
	    "state size constant over 500 tokens (%zu bytes)", bytes);
	ref_state_free(s);
	ref_state_free(c);
	ref_state_free(c2);
	free(rm.buf);

	/* delta and linear agree on the first segment's M, then differ */
	struct rmodel ra;
	if (random_model(&ra, 1, 8, 2, 2, 4, 6, 11, 3, false, 0) != 0) {
		tap_skip(2, "out of memory");
		return;
	}
	struct ref_state *sl, *sd;
	ref_state_alloc(&ra.tm.m, &sl);
	ra.tm.m.cfg.memory_update = ENG_UPDATE_DELTA;
	ref_state_alloc(&ra.tm.m, &sd);
	/* the model's config is read at every step: run each in turn */
	for (int i = 0; i < 3; i++) {
		ra.tm.m.cfg.memory_update = ENG_UPDATE_LINEAR;
		ref_step(sl, i + 2, NULL, NULL, NULL);
		ra.tm.m.cfg.memory_update = ENG_UPDATE_DELTA;
		ref_step(sd, i + 2, NULL, NULL, NULL);
	}
	ok(maxdiff(ref_M(sl, 0, 1), ref_M(sd, 0, 1), 16) < 1e-12,
	    "delta = linear for the first segment");
	for (int i = 0; i < 3; i++) {
		ra.tm.m.cfg.memory_update = ENG_UPDATE_LINEAR;
		ref_step(sl, i + 2, NULL, NULL, NULL);
		ra.tm.m.cfg.memory_update = ENG_UPDATE_DELTA;
		ref_step(sd, i + 2, NULL, NULL, NULL);
	}
	ok(maxdiff(ref_M(sl, 0, 1), ref_M(sd, 0, 1), 16) > 1e-3,
	    "delta differs once memory is not empty");
	ref_state_free(sl);
	ref_state_free(sd);
	free(ra.buf);
}

/* test_gqa: query head h must read kv head h / (nh / nkv) in both branches.
 * The same model with each kv head copied per query head (nkv = nh, the
 * repeat_interleave layout written out) must give the same outputs. */
static void
test_gqa(void)
{
	enum { H = 8, NH = 4, NKV = 2, HD = 4, V = 11 };
	struct rmodel rm;
	if (random_model(&rm, 1, H, NH, NKV, HD, 6, V, 2, true, 0.3f) != 0) {
		tap_skip(2, "out of memory");
		return;
	}
	struct tmodel wide = rm.tm;
	static float wk[NH * HD * H], wv[NH * HD * H];
	const struct eng_layer *l = &rm.tm.layers[0];
	for (int h = 0; h < NH; h++) {
		int g = h / (NH / NKV);
		for (int i = 0; i < HD * H; i++) {
			wk[h * HD * H + i] = eng_tensor_get(l->wk, g * HD * H + i);
			wv[h * HD * H + i] = eng_tensor_get(l->wv, g * HD * H + i);
		}
	}
	wide.nt = 0;
	wide.layers[0].wk = tensor(&wide, NH * HD, H, wk);
	wide.layers[0].wv = tensor(&wide, NH * HD, H, wv);
	wide.m.layers = wide.layers;
	wide.m.cfg.n_kv_heads = NH;
	struct ref_state *a, *b;
	ref_state_alloc(&rm.tm.m, &a);
	ref_state_alloc(&wide.m, &b);
	double la[V], lb[V], d = 0;
	for (int i = 0; i < 7; i++) {
		ref_step(a, (i * 5) % V, NULL, NULL, la);
		ref_step(b, (i * 5) % V, NULL, NULL, lb);
		d = fmax(d, maxdiff(la, lb, V));
	}
	ok(d < 1e-12, "GQA: grouped heads = heads with copied kv weights");
	ok(maxdiff(ref_M(a, 0, 1), ref_M(b, 0, 3), HD * HD) < 1e-12,
	    "GQA: kv head 1 memory = copy for query head 3");
	ref_state_free(a);
	ref_state_free(b);
	free(rm.buf);
}

/* test_memory_rope: with memory_rope the memory stores roped keys, whose
 * positions restart per segment: a repeated segment (memory branch shut by
 * the gate) adds exactly what the first one added. */
static void
test_memory_rope(void)
{
	struct rmodel rm;
	if (random_model(&rm, 2, 8, 2, 1, 4, 6, 11, 3, true, -60) != 0) {
		tap_skip(2, "out of memory");
		return;
	}
	struct ref_state *a, *b;
	ref_state_alloc(&rm.tm.m, &a);
	rm.tm.m.cfg.memory_rope = true;
	ref_state_alloc(&rm.tm.m, &b);
	double z1[4], z2[4];
	for (int i = 0; i < 6; i++) {
		rm.tm.m.cfg.memory_rope = false;
		ref_step(a, 2 + i % 3, NULL, NULL, NULL);
		rm.tm.m.cfg.memory_rope = true;
		ref_step(b, 2 + i % 3, NULL, NULL, NULL);
		if (i == 2)
			memcpy(z1, ref_z(b, 1, 0), sizeof(z1));
	}
	memcpy(z2, ref_z(b, 1, 0), sizeof(z2));
	for (int i = 0; i < 4; i++)
		z1[i] *= 2;
	ok(maxdiff(z1, z2, 4) < 1e-9,
	    "memory_rope: keys roped at in-segment positions");
	ok(maxdiff(ref_z(a, 1, 0), z2, 4) > 1e-6,
	    "memory_rope changes what memory stores");
	ref_state_free(a);
	ref_state_free(b);
	free(rm.buf);
}

int
main(void)
{
	tap_plan(76);
	test_ops();
	test_mem_update();
	test_sampling();
	scenario("llama gate on memory", false, 0.7f, ENG_GATE_MEMORY);
	scenario("llama gate on local", false, -0.4f, ENG_GATE_LOCAL);
	scenario("gemma", true, 1.3f, ENG_GATE_MEMORY);
	test_mlp();
	test_model_props();
	test_gqa();
	test_memory_rope();
	return (tap_done());
}
