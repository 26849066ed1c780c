/*
 * t_props.c - properties of streams on the engine that hold for any weights:
 * causality across segment boundaries, chunking invariance, batched streams
 * equal to separate ones, forks, constant state size, input validation that
 * leaves streams untouched, and tensors larger than one storage binding.
 *
 * The GQA head mapping (query head h reads kv head h / (nh / nkv) in both
 * branches) is pinned by t_engine's GQA models matching tests/ref.c, whose
 * own test proves the mapping against an MHA model with copied kv heads.
 */
#include <math.h>
#include <string.h>

#include "gpu_test.h"
#include "ref.h"

#define NT 36

static double
maxdiff(const float *a, const float *b, size_t n)
{
	double d = 0;
	for (size_t i = 0; i < n; i++)
		d = fmax(d, fabs((double)a[i] - b[i]));
	return (d);
}

static void
fill_tokens(int32_t *t, int n, int vocab, uint64_t s)
{
	for (int i = 0; i < n; i++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		t[i] = (int32_t)((s >> 33) % (uint64_t)vocab);
	}
}

/* push runs n tokens through a fresh slot in chunks, results [n, H]. */
static int
push(struct eng *e, const int32_t *t, int n, int chunk, float *out, int *slotp)
{
	int H = eng_config(e)->hidden_size, slot, rv;
	char err[256];

	if ((rv = eng_stream_alloc(e, &slot)) != 0)
		return (rv);
	for (int at = 0; at < n && rv == 0; at += chunk) {
		int k = n - at < chunk ? n - at : chunk;
		struct eng_job j = { .slot = slot, .n = k, .tokens = t + at,
		    .out = ENG_OUT_EMBED, .result = out + (size_t)at * H };
		if ((rv = eng_run(e, &j, 1, err, sizeof(err))) != 0)
			tap_diag("%s", err);
	}
	if (slotp != NULL && rv == 0)
		*slotp = slot;
	else
		eng_stream_free(e, slot);
	return (rv);
}

static void
test_causality(struct eng *e)
{
	int H = eng_config(e)->hidden_size;
	int32_t a[NT], b[NT];
	float *oa = calloc((size_t)NT * H, 4), *ob = calloc((size_t)NT * H, 4);
	const int t = 13; /* in the second segment */

	fill_tokens(a, NT, eng_config(e)->vocab_size, 11);
	memcpy(b, a, sizeof(a));
	b[t] = (a[t] + 1) % eng_config(e)->vocab_size;
	push(e, a, NT, NT, oa, NULL);
	push(e, b, NT, NT, ob, NULL);
	ok(maxdiff(oa, ob, (size_t)t * H) == 0.0,
	    "causality: changing token %d leaves outputs 0..%d unchanged", t,
	    t - 1);
	double later = 0;
	for (int r = 24; r < NT; r++)
		later = fmax(later, maxdiff(oa + (size_t)r * H, ob + (size_t)r * H,
		    (size_t)H));
	ok(later > 1e-4, "causality: the change reaches later segments "
	    "through memory (diff %.3g)", later);
	free(oa);
	free(ob);
}

static void
test_chunking(struct eng *e)
{
	int H = eng_config(e)->hidden_size, N = eng_config(e)->segment_size;
	int32_t t[NT];
	int chunks[3] = { 1, 7, N };
	float *all = calloc((size_t)NT * H, 4), *got = calloc((size_t)NT * H, 4);

	fill_tokens(t, NT, eng_config(e)->vocab_size, 12);
	push(e, t, NT, NT, all, NULL);
	for (int i = 0; i < 3; i++) {
		memset(got, 0, (size_t)NT * H * 4);
		push(e, t, NT, chunks[i], got, NULL);
		double d = maxdiff(all, got, (size_t)NT * H);
		ok(d <= 1e-5, "chunks of %d agree with one push (max diff %.2g)",
		    chunks[i], d);
	}
	free(all);
	free(got);
}

static void
test_batch(struct eng *e)
{
	int H = eng_config(e)->hidden_size, V = eng_config(e)->vocab_size;
	int lens[3] = { 5, 36, 17 }, slots[3];
	int32_t t[3][NT];
	float *sep = calloc((size_t)3 * NT * H, 4), *bat = calloc((size_t)3 * NT * H, 4);
	struct eng_job j[3];
	char err[256];
	int rv = 0;

	for (int s = 0; s < 3; s++) {
		fill_tokens(t[s], NT, V, 20 + s);
		push(e, t[s], lens[s], lens[s], sep + (size_t)s * NT * H, NULL);
		rv |= eng_stream_alloc(e, &slots[s]);
		j[s] = (struct eng_job){ .slot = slots[s], .n = lens[s],
		    .tokens = t[s], .out = ENG_OUT_EMBED,
		    .result = bat + (size_t)s * NT * H };
	}
	if (rv == 0)
		rv = eng_run(e, j, 3, err, sizeof(err));
	double d = 0;
	for (int s = 0; s < 3; s++)
		d = fmax(d, maxdiff(sep + (size_t)s * NT * H,
		    bat + (size_t)s * NT * H, (size_t)lens[s] * H));
	ok(rv == 0 && d <= 1e-5, "three streams in one run equal separate runs "
	    "(max diff %.2g)", d);
	for (int s = 0; s < 3; s++) {
		ok(eng_stream_pos(e, slots[s]) == lens[s],
		    "stream %d position is %d", s, lens[s]);
		eng_stream_free(e, slots[s]);
	}
	free(sep);
	free(bat);
}

/*
 * pooled runs the NT tokens t through a new stream in two jobs of 7 and
 * NT - 7 inputs, as the daemon slices a push, with one pooled output of
 * kind (ENG_OUT_MEAN or ENG_OUT_LAST) copied to out[H]: the mean must be
 * over all NT inputs and the last the last input's, whatever the slicing.
 */
static int
pooled(struct eng *e, const int32_t *t, enum eng_out kind, float *out)
{
	struct eng_output o;
	char err[256];
	int slot, rv;

	if ((rv = eng_stream_alloc(e, &slot)) != 0)
		return (rv);
	rv = eng_output_init(&o, eng_config(e), kind, NT);
	for (int at = 0, k; rv == 0 && at < NT; at += k) {
		k = at == 0 ? 7 : NT - at;
		struct eng_job j = { .slot = slot, .n = k, .tokens = t + at };
		eng_output_job(&o, at, &j);
		rv = eng_run(e, &j, 1, err, sizeof(err));
	}
	eng_output_finish(&o);
	if (rv == 0)
		memcpy(out, o.data, (size_t)o.cols * sizeof(float));
	eng_output_fini(&o);
	eng_stream_free(e, slot);
	return (rv);
}

static void
test_outputs_and_fork(struct eng *e)
{
	int H = eng_config(e)->hidden_size;
	int32_t t[NT];
	float *emb = calloc((size_t)NT * H, 4), *tail = calloc((size_t)NT * H, 4);
	float *fork_tail = calloc((size_t)NT * H, 4);
	float mean[512], last[512];
	double m[512] = { 0 };
	int slot, child, rv;
	char err[256];

	fill_tokens(t, NT, eng_config(e)->vocab_size, 30);
	push(e, t, NT, NT, emb, NULL);

	/* mean and last of the same input. */
	rv = pooled(e, t, ENG_OUT_MEAN, mean);
	rv |= pooled(e, t, ENG_OUT_LAST, last);
	for (int r = 0; r < NT; r++)
		for (int k = 0; k < H; k++)
			m[k] += emb[(size_t)r * H + k] / NT;
	double dm = 0;
	for (int k = 0; k < H; k++)
		dm = fmax(dm, fabs(m[k] - mean[k]));
	ok(rv == 0 && dm <= 1e-5, "mean pooling equals the mean of embeddings "
	    "(%.2g)", dm);
	ok(maxdiff(last, emb + (size_t)(NT - 1) * H, (size_t)H) <= 1e-5,
	    "last pooling equals the last embedding");

	/* Fork mid-segment (after 11 tokens), then both continue alike. */
	rv = push(e, t, 11, 11, tail, &slot);
	rv |= eng_stream_alloc(e, &child);
	rv |= eng_stream_copy(e, slot, child);
	struct eng_job a = { .slot = slot, .n = NT - 11, .tokens = t + 11,
	    .out = ENG_OUT_EMBED, .result = tail };
	struct eng_job b = { .slot = child, .n = NT - 11, .tokens = t + 11,
	    .out = ENG_OUT_EMBED, .result = fork_tail };
	rv |= eng_run(e, &a, 1, err, sizeof(err));
	rv |= eng_run(e, &b, 1, err, sizeof(err));
	ok(rv == 0 && maxdiff(tail, emb + (size_t)11 * H,
	    (size_t)(NT - 11) * H) <= 1e-5 &&
	    maxdiff(fork_tail, tail, (size_t)(NT - 11) * H) == 0.0,
	    "a fork taken mid-segment continues exactly like its parent");
	eng_stream_free(e, slot);
	eng_stream_free(e, child);
	free(emb);
	free(tail);
	free(fork_tail);
}

static void
test_vectors(struct gt *g)
{
	struct eng *e = g->e;
	int H = eng_config(e)->hidden_size;
	int32_t t[8];
	float *vec = calloc((size_t)8 * H, 4), *a = calloc((size_t)8 * H, 4);
	float *b = calloc((size_t)8 * H, 4);
	int slot, rv;
	char err[256];

	fill_tokens(t, 8, eng_config(e)->vocab_size, 40);
	for (int r = 0; r < 8; r++)
		for (int k = 0; k < H; k++)
			vec[(size_t)r * H + k] = eng_tensor_get(g->m->embed,
			    (size_t)t[r] * H + k);
	push(e, t, 8, 8, a, NULL);
	rv = eng_stream_alloc(e, &slot);
	struct eng_job j = { .slot = slot, .n = 8, .vectors = vec,
	    .out = ENG_OUT_EMBED, .result = b };
	rv |= eng_run(e, &j, 1, err, sizeof(err));
	ok(rv == 0 && maxdiff(a, b, (size_t)8 * H) == 0.0,
	    "raw vectors equal to embedding rows give the token outputs");

	/* Bad inputs fail before anything runs; the stream is untouched. */
	int64_t pos = eng_stream_pos(e, slot);
	vec[3 * H + 5] = NAN;
	rv = eng_run(e, &j, 1, err, sizeof(err));
	ok(rv == INFINI_EINVAL && strstr(err, "non-finite") != NULL &&
	    eng_stream_pos(e, slot) == pos, "a NaN vector is refused: %s", err);
	vec[3 * H + 5] = INFINITY;
	ok(eng_run(e, &j, 1, err, sizeof(err)) == INFINI_EINVAL,
	    "an Inf vector is refused");
	int32_t bad[2] = { 1, eng_config(e)->vocab_size };
	struct eng_job k = { .slot = slot, .n = 2, .tokens = bad,
	    .out = ENG_OUT_NONE };
	rv = eng_run(e, &k, 1, err, sizeof(err));
	ok(rv == INFINI_EINVAL && eng_stream_pos(e, slot) == pos,
	    "token id == vocab_size is refused: %s", err);
	struct eng_job two[2] = { k, k };
	two[0].tokens = two[1].tokens = t;
	ok(eng_run(e, two, 2, err, sizeof(err)) == INFINI_EINVAL,
	    "one slot twice in a run is refused");
	k.slot = 99;
	ok(eng_run(e, &k, 1, err, sizeof(err)) == INFINI_EINVAL,
	    "an unknown slot is refused");
	eng_stream_free(e, slot);
	free(vec);
	free(a);
	free(b);
}

/* A job without inputs samples from the stream's last input, exactly as if
 * the sampler had been attached to that input. */
static void
test_sample_only(struct eng *e)
{
	struct eng_sampler smp = { 0.9f, 20, 0.95f, 1234 };
	int32_t t[13], ta = -1, tb = -2;
	int a, b, rv;
	char err[256];

	fill_tokens(t, 13, eng_config(e)->vocab_size, 60);
	rv = eng_stream_alloc(e, &a);
	rv |= eng_stream_alloc(e, &b);
	struct eng_job ja = { .slot = a, .n = 13, .tokens = t, .out = ENG_OUT_NONE };
	rv |= eng_run(e, &ja, 1, err, sizeof(err));
	struct eng_job za = { .slot = a, .n = 0, .sample = &smp, .token = &ta };
	rv |= eng_run(e, &za, 1, err, sizeof(err));
	struct eng_job jb = { .slot = b, .n = 13, .tokens = t, .out = ENG_OUT_NONE,
	    .sample = &smp, .token = &tb };
	rv |= eng_run(e, &jb, 1, err, sizeof(err));
	ok(rv == 0 && ta == tb && eng_stream_pos(e, a) == 13 &&
	    eng_stream_sample_step(e, a) == 1,
	    "a sample-only job equals sampling after the last input (%d, %d)",
	    ta, tb);
	eng_stream_free(e, a);
	eng_stream_free(e, b);
	rv = eng_stream_alloc(e, &a);
	za.slot = a;
	ok(rv == 0 && eng_run(e, &za, 1, err, sizeof(err)) == INFINI_ESTATE,
	    "a sample-only job on an empty stream is refused: %s", err);
	eng_stream_free(e, a);
}

static void
test_state_size(struct eng *e)
{
	uint64_t w0, s0, a0, w1, s1, a1;
	int32_t t[256];
	int slot, rv = 0;
	char err[256];

	eng_device_bytes(e, &w0, &s0, &a0);
	uint64_t per = eng_state_bytes(e);
	rv = eng_stream_alloc(e, &slot);
	fill_tokens(t, 256, eng_config(e)->vocab_size, 50);
	for (int i = 0; i < 4 && rv == 0; i++) {
		struct eng_job j = { .slot = slot, .n = 256, .tokens = t,
		    .out = ENG_OUT_NONE };
		rv = eng_run(e, &j, 1, err, sizeof(err));
	}
	eng_device_bytes(e, &w1, &s1, &a1);
	ok(rv == 0 && eng_stream_pos(e, slot) == 1024 && s1 == s0 &&
	    eng_state_bytes(e) == per && a1 == a0,
	    "after 1024 tokens the state is still %llu bytes per stream and "
	    "device memory is unchanged", (unsigned long long)per);
	eng_stream_free(e, slot);
}

/* A tied embedding of 33000 x 1024 fp32 (129 MiB) exceeds lavapipe's
 * 128 MiB maxStorageBufferRange; it must be split and still agree. */
static void
test_large_tensor(void)
{
	struct fx_opts o;
	struct gt g;
	struct ref_state *rs = NULL;
	int32_t t[6] = { 5, 32999, 17000, 16500, 1, 32768 };
	float *lg = NULL;
	double *rl = NULL, d = 0, mx = 1e-30;
	int slot, rv;
	char err[256];

	fx_opts_default(&o);
	o.cfg.vocab_size = 33000;
	o.cfg.hidden_size = 1024;
	o.cfg.n_layers = 1;
	o.cfg.n_heads = 8;
	o.cfg.n_kv_heads = 8;
	o.cfg.head_dim = 16;
	o.cfg.intermediate_size = 64;
	o.cfg.tie_word_embeddings = true;
	o.cfg.byte_tokenizer = false;
	if ((rv = gt_open(&g, &o, 1, 8)) != 0) {
		ok(0, "large tensor model opens (%s)", infini_strerror(rv));
		gt_close(&g);
		return;
	}
	lg = calloc((size_t)6 * 33000, 4);
	rl = calloc(33000, sizeof(double));
	rv = eng_stream_alloc(g.e, &slot);
	struct eng_job j = { .slot = slot, .n = 6, .tokens = t,
	    .out = ENG_OUT_LOGITS, .result = lg };
	rv |= eng_run(g.e, &j, 1, err, sizeof(err));
	rv |= ref_state_alloc(g.m, &rs);
	for (int i = 0; i < 6 && rv == 0; i++) {
		ref_step(rs, t[i], NULL, NULL, rl);
		for (int v = 0; v < 33000; v++) {
			d = fmax(d, fabs(rl[v] - lg[(size_t)i * 33000 + v]));
			mx = fmax(mx, fabs(rl[v]));
		}
	}
	/* Logits here are dot products over 1024 columns: compare relative to
	 * the largest logit, 1e-5 (fp32 accumulation over 1024 terms). */
	ok(rv == 0 && d / mx <= 1e-5 && eng_validation_errors(g.e) == 0,
	    "a 129 MiB embedding (over one binding) gathers and projects "
	    "correctly (max logit err %.2g of %.3g)", d, mx);
	ref_state_free(rs);
	free(lg);
	free(rl);
	gt_close(&g);
}

int
main(void)
{
	struct fx_opts o;
	struct gt g;

	gt_env();
	if (!gt_have_device()) {
		tap_plan_skip_all("no Vulkan device");
		return (0);
	}
	tap_plan(23);
	fx_opts_default(&o);
	o.cfg.memory_update = ENG_UPDATE_DELTA;
	if (gt_open(&g, &o, 8, 64) != 0)
		return (1);
	test_causality(g.e);
	test_chunking(g.e);
	test_batch(g.e);
	test_outputs_and_fork(g.e);
	test_vectors(&g);
	test_sample_only(g.e);
	test_state_size(g.e);
	ok(eng_validation_errors(g.e) == 0, "validation layer silent");
	gt_close(&g);
	test_large_tensor();
	return (tap_done());
}
