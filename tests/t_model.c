/*
 * t_model.c - tests for the model loader (engine/model.c, safetensors.c),
 * the fixture writer and the half-precision conversions.
 *
 * Each error case starts from a valid fixture and breaks exactly one thing,
 * then checks the code, that the message names the culprit, and that *out
 * was left alone.  Run under valgrind --leak-check=full to check the error
 * paths free everything.
 */
#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/model.h"
#include "fixture.h"
#include "infini_err.h"
#include "tap.h"

static char root[512];

static void
mkpath(char *buf, size_t n, const char *sub, const char *file)
{
	if (file != NULL)
		snprintf(buf, n, "%s/%s/%s", root, sub, file);
	else
		snprintf(buf, n, "%s/%s", root, sub);
}

/* write_fx writes a fixture under root/sub; returns its path in buf. */
static int
write_fx(const char *sub, const struct fx_opts *o, char *buf, size_t n)
{
	mkpath(buf, n, sub, NULL);
	return (fx_write_model(buf, o));
}

static struct eng_model *
load_ok(const char *dir, const char *what)
{
	struct eng_model *m = NULL;
	char err[512] = "";
	int rv = eng_model_load(dir, &m, err, sizeof(err));

	if (!ok(rv == 0 && m != NULL, "%s loads", what))
		tap_diag("  %s: %s", infini_errname(rv), err);
	return (rv == 0 ? m : NULL);
}

/* expect_err loads dir, wanting code want and a message holding s1 and s2. */
static void
expect_err(const char *dir, int want, const char *s1, const char *s2,
    const char *what)
{
	struct eng_model *sentinel = (struct eng_model *)&root, *m = sentinel;
	char err[512] = "";
	int rv = eng_model_load(dir, &m, err, sizeof(err));

	if (!ok(rv == want && m == sentinel && strstr(err, s1) != NULL &&
	    (s2 == NULL || strstr(err, s2) != NULL), "%s: %s", what,
	    infini_errname(want)))
		tap_diag("  got %s, message \"%s\"", infini_errname(rv), err);
	if (getenv("T_MODEL_VERBOSE"))
		tap_diag("  %s", err);
	if (rv == 0 && m != sentinel)
		eng_model_free(m);
}

/* ------------------------------------------------------------------ */
/* Reference conversions, from the definitions, in double arithmetic.   */

static double
ref_f16_decode(uint16_t h)
{
	int e = (h >> 10) & 31, mant = h & 1023;
	double s = (h & 0x8000) ? -1.0 : 1.0;

	if (e == 31)
		return (mant ? NAN : s * INFINITY);
	if (e == 0)
		return (s * ldexp(mant, -24));
	return (s * ldexp(1024 + mant, e - 25));
}

/* ref_round rounds |x| to a float format with p mantissa bits (implicit
 * bit included), minimum normal exponent emin and largest finite max,
 * ties to even, as nearbyint() does in the default rounding mode. */
static double
ref_round(double x, int p, int emin, double max)
{
	double a = fabs(x), q, r;
	int e;

	if (a == 0)
		return (x);
	frexp(a, &e);             /* a in [2^(e-1), 2^e) */
	if (e - 1 < emin)
		e = emin + 1;
	q = ldexp(1.0, e - p);    /* spacing of representable values */
	r = nearbyint(a / q) * q;
	/* Past max + half an ulp of max rounds to infinity. */
	if (r > max)
		r = INFINITY;
	return (x < 0 ? -r : r);
}

static float
bits_f(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return (f);
}

static uint32_t
f_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return (u);
}

static void
test_conversions(void)
{
	static const struct {
		uint32_t in;
		uint16_t want;
		const char *what;
	} bf[] = {
		{ 0x3f800000, 0x3f80, "1.0" },
		{ 0xbf800000, 0xbf80, "-1.0" },
		{ 0x80000000, 0x8000, "-0" },
		{ 0x3f808000, 0x3f80, "tie, even stays" },
		{ 0x3f818000, 0x3f82, "tie, odd rounds up" },
		{ 0x3f808001, 0x3f81, "just above tie" },
		{ 0x3f807fff, 0x3f80, "just below tie" },
		{ 0x7f7fffff, 0x7f80, "FLT_MAX rounds to inf" },
		{ 0x7f7f7fff, 0x7f7f, "below bf16 max stays" },
		{ 0x7f800000, 0x7f80, "inf" },
		{ 0xff800000, 0xff80, "-inf" },
		{ 0x7fc00000, 0x7fc0, "qNaN" },
		{ 0x00000001, 0x0000, "smallest f32 subnormal" },
		{ 0x00010000, 0x0001, "f32 subnormal kept" },
	};
	static const struct {
		float in;
		uint16_t want;
		const char *what;
	} hf[] = {
		{ 1.0f, 0x3c00, "1.0" },
		{ -2.0f, 0xc000, "-2" },
		{ 0.1f, 0x2e66, "0.1" },
		{ 1.0f / 3.0f, 0x3555, "1/3" },
		{ 65504.0f, 0x7bff, "65504 max" },
		{ 65519.0f, 0x7bff, "65519 rounds down" },
		{ 65520.0f, 0x7c00, "65520 rounds to inf" },
		{ 0x1p-14f, 0x0400, "min normal" },
		{ 0x1p-24f, 0x0001, "min subnormal" },
		{ 0x1p-25f, 0x0000, "half min subnormal ties to 0" },
		{ 0x1.8p-25f, 0x0001, "0.75 ulp rounds up" },
		{ 0x3p-25f, 0x0002, "1.5 ulp ties to 2" },
		{ 0x5p-25f, 0x0002, "2.5 ulp ties to 2" },
		{ 0x1.ffcp-15f, 0x0400, "max subnormal + half rounds to normal" },
		{ 1.0f + 0x1p-11f, 0x3c00, "tie above 1, even" },
		{ 1.0f + 0x3p-11f, 0x3c02, "tie above 1+ulp, odd up" },
		{ -0.0f, 0x8000, "-0" },
		{ INFINITY, 0x7c00, "inf" },
		{ -INFINITY, 0xfc00, "-inf" },
		{ 1e-30f, 0x0000, "tiny to 0" },
	};
	int bad = 0;
	uint16_t h;

	for (size_t i = 0; i < sizeof(bf) / sizeof(bf[0]); i++)
		is_int(eng_f32_to_bf16(bits_f(bf[i].in)), bf[i].want,
		    "f32->bf16 %s", bf[i].what);
	h = eng_f32_to_bf16(bits_f(0x7f800001));
	ok((h & 0x7f80) == 0x7f80 && (h & 0x7f) != 0,
	    "f32->bf16 signalling NaN stays NaN (0x%04x)", h);
	h = eng_f32_to_bf16(bits_f(0xffc12345));
	ok(h == 0xffc1, "f32->bf16 NaN keeps sign and payload (0x%04x)", h);
	is_int(f_bits(eng_bf16_to_f32(0x3f80)), 0x3f800000, "bf16->f32 1.0");
	is_int(f_bits(eng_bf16_to_f32(0xc049)), 0xc0490000, "bf16->f32 -3.14");

	for (size_t i = 0; i < sizeof(hf) / sizeof(hf[0]); i++)
		is_int(eng_f32_to_f16(hf[i].in), hf[i].want, "f32->f16 %s",
		    hf[i].what);
	h = eng_f32_to_f16(NAN);
	ok((h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0, "f32->f16 NaN (0x%04x)",
	    h);
	h = eng_f32_to_f16(bits_f(0x7f800001));
	ok((h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0,
	    "f32->f16 signalling NaN stays NaN (0x%04x)", h);
	is_close(eng_f16_to_f32(0x7bff), 65504.0, 0, "f16->f32 max");
	is_close(eng_f16_to_f32(0x0001), 0x1p-24, 0, "f16->f32 min subnormal");
	is_close(eng_f16_to_f32(0x83ff), -1023 * 0x1p-24, 0,
	    "f16->f32 -max subnormal");
	ok(signbit(eng_f16_to_f32(0x8000)) && eng_f16_to_f32(0x8000) == 0,
	    "f16->f32 -0");
	ok(isnan(eng_f16_to_f32(0x7e00)) && isinf(eng_f16_to_f32(0xfc00)),
	    "f16->f32 NaN and -inf");

	/* Every half against the definition, and back. */
	for (uint32_t i = 0; i < 65536; i++) {
		double want = ref_f16_decode((uint16_t)i);
		float got = eng_f16_to_f32((uint16_t)i);
		if (isnan(want) ? !isnan(got) : (got != want ||
		    !signbit(got) != !signbit(want) ||
		    eng_f32_to_f16(got) != i))
			bad++;
	}
	is_int(bad, 0, "all 65536 halves decode and round-trip");

	/* Random floats over the whole exponent range against rounding done
	 * in double, where every quotient below is exact. */
	bad = 0;
	uint64_t s = 0x1234567;
	for (int i = 0; i < 2000000; i++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		uint32_t u = (uint32_t)(s >> 32);
		float x = bits_f(u);
		double w16, w16b, wbf;
		if (isnan(x) || isinf(x))
			continue;
		/* half: 11 bits, emin -14, max 65504 + half ulp 16 */
		w16 = ref_round(x, 11, -14, 65504.0);
		if (fabs(x) >= 65520.0)
			w16 = copysign(INFINITY, x);
		w16b = eng_f16_to_f32(eng_f32_to_f16(x));
		/* bf16: 8 bits, emin -126, max (2 - 2^-7) 2^127 */
		wbf = ref_round(x, 8, -126, ldexp(2.0 - ldexp(1, -7), 127));
		if (w16b != w16 || !signbit(w16b) != !signbit(x) ||
		    eng_bf16_to_f32(eng_f32_to_bf16(x)) != wbf)
			bad++;
		/* Also the interesting range of half precision. */
		x = bits_f(0x33000000u + (u % (0x47800000u - 0x33000000u)));
		if (eng_f16_to_f32(eng_f32_to_f16(x)) !=
		    (fabs(x) >= 65520.0 ? INFINITY : ref_round(x, 11, -14,
		    65504.0)))
			bad++;
	}
	is_int(bad, 0, "random floats round to nearest even (f16, bf16)");
}

/* ------------------------------------------------------------------ */
/* Config                                                              */

static const char *min_cfg =
    "\"vocab_size\":300,\"hidden_size\":64,\"intermediate_size\":128,"
    "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"segment_size\":8";

static int
parse(const char *extra, struct eng_config *c, char *err, size_t n)
{
	char buf[1024];
	/* extra goes first: cJSON keeps the first of duplicate keys. */
	snprintf(buf, sizeof(buf), "{%s%s%s}", extra, *extra ? "," : "",
	    min_cfg);
	return (eng_config_parse(buf, strlen(buf), c, err, n));
}

static void
expect_cfg_err(const char *extra, int want, const char *key,
    const char *what)
{
	struct eng_config c;
	char err[256] = "";
	int rv = parse(extra, &c, err, sizeof(err));

	if (!ok(rv == want && strstr(err, key) != NULL, "config %s: %s", what,
	    infini_errname(want)))
		tap_diag("  got %s, \"%s\"", infini_errname(rv), err);
}

static void
test_config(void)
{
	struct eng_config c;
	char err[256] = "";
	int rv;

	rv = parse("", &c, err, sizeof(err));
	is_int(rv, 0, "minimal config parses");
	ok(c.arch == ENG_ARCH_LLAMA && c.n_kv_heads == 4 && c.head_dim == 16 &&
	    c.rms_norm_eps == 1e-6 && c.rope_theta == 10000.0 &&
	    c.act == ENG_ACT_SILU && !c.tie_word_embeddings &&
	    c.memory_update == ENG_UPDATE_LINEAR && c.memory_eps == 1e-6 &&
	    c.gate_on == ENG_GATE_MEMORY && c.rope && !c.memory_rope &&
	    !c.byte_tokenizer, "defaults applied");
	rv = parse("\"model_type\":\"gemma\",\"hidden_act\":\"gelu\","
	    "\"hidden_activation\":\"gelu_pytorch_tanh\",\"head_dim\":null,"
	    "\"memory_update\":\"delta\",\"gate_on\":\"local\","
	    "\"position_embedding\":\"none\",\"tokenizer\":\"bytes\"", &c, err,
	    sizeof(err));
	ok(rv == 0 && c.arch == ENG_ARCH_GEMMA && c.act == ENG_ACT_GELU_TANH &&
	    c.tie_word_embeddings && c.head_dim == 16 &&
	    c.memory_update == ENG_UPDATE_DELTA && c.gate_on == ENG_GATE_LOCAL &&
	    !c.rope && c.byte_tokenizer,
	    "gemma: hidden_activation wins, tied by default, null = absent");

	expect_cfg_err("\"memory_update\":\"quadratic\"", INFINI_EUNSUPPORTED,
	    "quadratic", "unknown memory_update");
	expect_cfg_err("\"hidden_act\":\"relu\"", INFINI_EUNSUPPORTED,
	    "hidden_act", "unknown hidden_act");
	expect_cfg_err("\"model_type\":\"mistral\"", INFINI_EUNSUPPORTED,
	    "model_type", "unknown model_type");
	expect_cfg_err("\"num_key_value_heads\":3", INFINI_EINVAL,
	    "num_key_value_heads", "heads % kv_heads");
	expect_cfg_err("\"head_dim\":15", INFINI_EINVAL, "head_dim",
	    "odd head_dim with rope");
	expect_cfg_err("\"tokenizer\":\"bytes\",\"vocab_size\":100",
	    INFINI_EINVAL, "vocab_size", "byte tokenizer, small vocab");
	expect_cfg_err("\"hidden_size\":-4", INFINI_EINVAL, "hidden_size",
	    "negative size");
	expect_cfg_err("\"segment_size\":1000000", INFINI_EINVAL,
	    "segment_size", "absurd segment_size");
	expect_cfg_err("\"rms_norm_eps\":\"small\"", INFINI_EINVAL,
	    "rms_norm_eps", "eps not a number");
	expect_cfg_err("\"tie_word_embeddings\":1", INFINI_EINVAL,
	    "tie_word_embeddings", "bool as number");
	rv = eng_config_parse("{\"segment_size\":8}", 18, &c, err, sizeof(err));
	ok(rv == INFINI_EINVAL && strstr(err, "vocab_size"),
	    "config missing vocab_size: INFINI_EINVAL");
	rv = eng_config_parse("[1,2]", 5, &c, NULL, 0);
	is_int(rv, INFINI_ECORRUPT, "config not an object, err NULL");
}

/* ------------------------------------------------------------------ */
/* Loading good models                                                 */

static double
max_diff(const struct eng_tensor *a, const struct eng_tensor *b)
{
	double d = 0;
	for (size_t i = 0; i < eng_tensor_numel(a); i++)
		d = fmax(d, fabs(eng_tensor_get(a, i) - eng_tensor_get(b, i)));
	return (d);
}

static void
test_load(void)
{
	struct fx_opts o;
	struct eng_model *m, *m2;
	char dir[600], dir2[600];
	uint64_t fp;
	bool distinct = true;

	fx_opts_default(&o);
	write_fx("f32", &o, dir, sizeof(dir));
	if ((m = load_ok(dir, "f32 fixture")) == NULL) {
		tap_skip(9, "no model");
		return;
	}
	ok(m->cfg.vocab_size == 300 && m->cfg.hidden_size == 64 &&
	    m->cfg.n_layers == 2 && m->cfg.n_heads == 4 &&
	    m->cfg.n_kv_heads == 2 && m->cfg.head_dim == 16 &&
	    m->cfg.segment_size == 8 && m->cfg.byte_tokenizer &&
	    strcmp(m->dir, dir) == 0, "config round-trips through the fixture");
	is_int(m->n_tensors, 23, "23 tensors");
	ok(m->embed->shape[0] == 300 && m->layers[1].wk->shape[0] == 32 &&
	    m->layers[1].wo->shape[1] == 64 && m->lm_head != m->embed &&
	    m->layers[0].w_down->shape[1] == 128,
	    "layer tensors resolved with their shapes");
	for (int l = 0; l < 2; l++)
		for (int i = 0; i < 4; i++)
			for (int j = 0; j < i; j++)
				if (fabs(eng_tensor_get(m->layers[l].gate, i) -
				    eng_tensor_get(m->layers[l].gate, j)) < 0.2 ||
				    fabs(eng_tensor_get(m->layers[l].gate, i)) > 2)
					distinct = false;
	ok(distinct, "gate betas distinct per head, within [-2, 2]");
	ok(fabs(eng_tensor_get(m->norm, 5) - 1.0) <= 0.1 &&
	    eng_model_find(m, "model.norm.weight") == m->norm &&
	    eng_model_find(m, "no.such.tensor") == NULL, "norms near 1, find");
	fp = m->fingerprint;

	/* Same bytes in three shards: same tensors, same fingerprint. */
	o.shards = 3;
	write_fx("sharded", &o, dir2, sizeof(dir2));
	if ((m2 = load_ok(dir2, "3 shards")) != NULL) {
		ok(m2->n_maps == 3 && m2->n_tensors == 23 &&
		    m2->fingerprint == fp &&
		    max_diff(m->layers[1].w_up, m2->layers[1].w_up) == 0,
		    "shards hold the same tensors, same fingerprint");
		eng_model_free(m2);
	} else {
		tap_skip(1, "no model");
	}
	o.shards = 1;
	o.seed = 2;
	write_fx("seed2", &o, dir2, sizeof(dir2));
	if ((m2 = load_ok(dir2, "seed 2")) != NULL) {
		ok(m2->fingerprint != fp, "another seed, another fingerprint");
		eng_model_free(m2);
	} else {
		tap_skip(1, "no model");
	}
	o.seed = 1;

	for (int dt = ENG_F16; dt <= ENG_BF16; dt++) {
		const char *name = dt == ENG_F16 ? "f16" : "bf16";
		o.dtype = (enum eng_dtype)dt;
		write_fx(name, &o, dir2, sizeof(dir2));
		if ((m2 = load_ok(dir2, name)) != NULL) {
			double d = max_diff(m->layers[0].wq, m2->layers[0].wq);
			double tol = dt == ENG_F16 ? 1e-3 : 1e-2;
			ok((int)m2->layers[0].wq->dtype == dt &&
			    (int)m2->norm->dtype == dt && d <= tol && d > 0,
			    "%s values match f32 within rounding (%g)", name, d);
			eng_model_free(m2);
		} else {
			tap_skip(1, "no model");
		}
	}
	eng_model_free(m);
	fx_opts_default(&o);

	o.cfg.tie_word_embeddings = true;
	write_fx("tied", &o, dir, sizeof(dir));
	if ((m = load_ok(dir, "tied")) != NULL) {
		ok(m->lm_head == m->embed &&
		    eng_model_find(m, "lm_head.weight") == NULL &&
		    m->n_tensors == 22, "tied: lm_head is embed, not stored");
		eng_model_free(m);
	} else {
		tap_skip(1, "no model");
	}

	fx_opts_default(&o);
	o.cfg.arch = ENG_ARCH_GEMMA;
	o.cfg.act = ENG_ACT_GELU_TANH;
	o.cfg.n_kv_heads = 1;
	o.cfg.head_dim = 32;   /* gemma: heads * head_dim != hidden */
	o.dtype = ENG_BF16;
	write_fx("gemma", &o, dir, sizeof(dir));
	if ((m = load_ok(dir, "gemma")) != NULL) {
		ok(m->cfg.arch == ENG_ARCH_GEMMA &&
		    m->cfg.act == ENG_ACT_GELU_TANH &&
		    m->layers[0].wq->shape[0] == 128 &&
		    m->layers[0].wk->shape[0] == 32 &&
		    fabs(eng_tensor_get(m->layers[1].mlp_norm, 3)) <= 0.1,
		    "gemma: shapes from head_dim, norms near 0");
		eng_model_free(m);
	} else {
		tap_skip(1, "no model");
	}
}

/* ------------------------------------------------------------------ */
/* Broken models                                                       */

static void
set_str(cJSON *r, void *arg)
{
	const char **kv = arg;
	cJSON_DeleteItemFromObject(r, kv[0]);
	cJSON_AddStringToObject(r, kv[0], kv[1]);
}

static void
set_kv3(cJSON *r, void *arg)
{
	(void)arg;
	cJSON_ReplaceItemInObject(r, "num_key_value_heads",
	    cJSON_CreateNumber(3));
}

static void
drop_tensor(cJSON *h, void *arg)
{
	cJSON_DeleteItemFromObject(h, arg);
}

static void
swap_shape(cJSON *h, void *arg)
{
	cJSON *shape = cJSON_GetObjectItem(cJSON_GetObjectItem(h, arg),
	    "shape");
	double a = cJSON_GetArrayItem(shape, 0)->valuedouble;
	double b = cJSON_GetArrayItem(shape, 1)->valuedouble;
	cJSON_ReplaceItemInArray(shape, 0, cJSON_CreateNumber(b));
	cJSON_ReplaceItemInArray(shape, 1, cJSON_CreateNumber(a));
}

static void
set_dtype_i8(cJSON *h, void *arg)
{
	cJSON *e = cJSON_GetObjectItem(h, arg);
	cJSON_ReplaceItemInObject(e, "dtype", cJSON_CreateString("I8"));
}

static void
far_offsets(cJSON *h, void *arg)
{
	cJSON *e = cJSON_GetObjectItem(h, arg);
	double offs[2] = { 1 << 30, (1 << 30) + 256 };
	cJSON_ReplaceItemInObject(e, "data_offsets",
	    cJSON_CreateDoubleArray(offs, 2));
}

static void
evil_shard(cJSON *r, void *arg)
{
	cJSON *wm = cJSON_GetObjectItem(r, "weight_map");
	(void)arg;
	cJSON_ReplaceItemInObject(wm, "model.norm.weight",
	    cJSON_CreateString("../model-00001-of-00002.safetensors"));
}

static void
set_dtype(cJSON *h, void *arg)
{
	const char **kv = arg;
	cJSON_ReplaceItemInObject(cJSON_GetObjectItem(h, kv[0]), "dtype",
	    cJSON_CreateString(kv[1]));
}

static void
set_shape_256x16(cJSON *h, void *arg)
{
	double shape[2] = { 256, 16 };
	cJSON_ReplaceItemInObject(cJSON_GetObjectItem(h, arg), "shape",
	    cJSON_CreateDoubleArray(shape, 2));
}

/* swap_embed_head gives the embedding lm_head's (same-shaped) entry. */
static void
swap_embed_head(cJSON *h, void *arg)
{
	cJSON *e = cJSON_DetachItemFromObject(h, "model.embed_tokens.weight");
	cJSON *l = cJSON_DetachItemFromObject(h, "lm_head.weight");
	(void)arg;
	cJSON_AddItemToObject(h, "model.embed_tokens.weight", l);
	cJSON_AddItemToObject(h, "lm_head.weight", e);
}

/* fresh_q writes a default fixture with projections in block dtype q. */
static void
fresh_q(const char *sub, int q, char *dir, char *st, size_t n)
{
	struct fx_opts o;
	fx_opts_default(&o);
	o.quant = q;
	write_fx(sub, &o, dir, n);
	snprintf(st, n, "%s/model.safetensors", dir);
}

/* test_quant: block-dtype models load with values within the format's
 * rounding of the f32 ones, and inconsistent block tensors are refused
 * with the tensor named. */
static void
test_quant(void)
{
	char dir[600], st[600], dir2[600];
	struct eng_model *m, *mq;
	struct fx_opts o;
	const char *kv[2];

	fx_opts_default(&o);
	write_fx("q_f32", &o, dir, sizeof(dir));
	if ((m = load_ok(dir, "f32 for the block dtypes")) == NULL) {
		tap_skip(2, "no model");
	} else {
		for (int q = ENG_Q8_0; q <= ENG_Q4_0; q++) {
			const char *name = q == ENG_Q8_0 ? "q8_0" : "q4_0";
			/* Per block: half a step of amax / 127; for 4 bits
			 * one step of amax / 8, as values of the sign opposite
			 * the extreme clamp at +7 steps.  Weights here are
			 * below 0.22. */
			double tol = q == ENG_Q8_0 ? 1e-3 : 0.03, d;
			o.quant = q;
			write_fx(name, &o, dir2, sizeof(dir2));
			if ((mq = load_ok(dir2, name)) == NULL)
				continue;
			d = fmax(max_diff(m->layers[1].w_down,
			    mq->layers[1].w_down), max_diff(m->lm_head,
			    mq->lm_head));
			ok((int)mq->layers[0].wq->dtype == q &&
			    (int)mq->lm_head->dtype == q &&
			    mq->embed->dtype == ENG_F32 &&
			    mq->norm->dtype == ENG_F32 && d <= tol && d > 0,
			    "%s: projections and lm_head in blocks, values "
			    "within %g of f32 (%g)", name, tol, d);
			eng_model_free(mq);
		}
		eng_model_free(m);
	}

	fresh_q("eq_embed", ENG_Q8_0, dir, st, sizeof(dir));
	fx_edit_header(st, swap_embed_head, NULL);
	expect_err(dir, INFINI_EUNSUPPORTED, "model.embed_tokens.weight",
	    "Q8_0", "block-quantized embedding");

	fresh_q("eq_norm", ENG_Q8_0, dir, st, sizeof(dir));
	kv[0] = "model.norm.weight";
	kv[1] = "Q8_0";
	fx_edit_header(st, set_dtype, kv);
	expect_err(dir, INFINI_ECORRUPT, "model.norm.weight", "2-D",
	    "block dtype on a 1-D tensor");

	fresh_q("eq_cols", ENG_Q4_0, dir, st, sizeof(dir));
	fx_edit_header(st, set_shape_256x16,
	    "model.layers.0.self_attn.q_proj.weight");
	expect_err(dir, INFINI_ECORRUPT,
	    "model.layers.0.self_attn.q_proj.weight", "multiple of 32",
	    "block rows not whole blocks");

	fresh_q("eq_bytes", ENG_Q8_0, dir, st, sizeof(dir));
	kv[0] = "model.layers.1.mlp.up_proj.weight";
	kv[1] = "Q4_0";
	fx_edit_header(st, set_dtype, kv);
	expect_err(dir, INFINI_ECORRUPT, "model.layers.1.mlp.up_proj.weight",
	    "Q4_0 need", "Q8_0 bytes declared Q4_0");
}

/* fresh writes a default fixture into root/sub and returns its paths. */
static void
fresh(const char *sub, int shards, char *dir, char *st, size_t n)
{
	struct fx_opts o;
	fx_opts_default(&o);
	o.shards = shards;
	write_fx(sub, &o, dir, n);
	snprintf(st, n, "%s/model.safetensors", dir);
}

static void
test_errors(void)
{
	char dir[600], st[600], p[700];
	const char *kv[2];
	unsigned char len[8];
	char *data;
	size_t n;

	mkpath(dir, sizeof(dir), "nonexistent", NULL);
	expect_err(dir, INFINI_ENOENT, "config.json", NULL, "no directory");

	fresh("e_nocfg", 1, dir, st, sizeof(dir));
	snprintf(p, sizeof(p), "%s/config.json", dir);
	unlink(p);
	expect_err(dir, INFINI_ENOENT, "config.json", NULL,
	    "missing config.json");

	fresh("e_json", 1, dir, st, sizeof(dir));
	snprintf(p, sizeof(p), "%s/config.json", dir);
	fx_write_file(p, "{\"vocab_size\": ", 15);
	expect_err(dir, INFINI_ECORRUPT, "config.json", "malformed",
	    "malformed config.json");

	fresh("e_update", 1, dir, st, sizeof(dir));
	kv[0] = "memory_update";
	kv[1] = "quadratic";
	snprintf(p, sizeof(p), "%s/config.json", dir);
	fx_edit_json(p, set_str, kv);
	expect_err(dir, INFINI_EUNSUPPORTED, "memory_update", "quadratic",
	    "unknown memory_update");

	fresh("e_kv", 1, dir, st, sizeof(dir));
	snprintf(p, sizeof(p), "%s/config.json", dir);
	fx_edit_json(p, set_kv3, NULL);
	expect_err(dir, INFINI_EINVAL, "num_key_value_heads", NULL,
	    "heads not divisible by kv heads");

	fresh("e_missing", 1, dir, st, sizeof(dir));
	fx_edit_header(st, drop_tensor, "model.layers.1.mlp.up_proj.weight");
	expect_err(dir, INFINI_ENOENT, "model.layers.1.mlp.up_proj.weight",
	    "missing", "missing tensor");

	fresh("e_lmhead", 1, dir, st, sizeof(dir));
	fx_edit_header(st, drop_tensor, "lm_head.weight");
	expect_err(dir, INFINI_ENOENT, "lm_head.weight", NULL,
	    "untied model without lm_head");

	fresh("e_shape", 1, dir, st, sizeof(dir));
	fx_edit_header(st, swap_shape, "model.layers.1.self_attn.k_proj.weight");
	expect_err(dir, INFINI_EINVAL,
	    "model.layers.1.self_attn.k_proj.weight: shape [64,32], "
	    "want [32,64]", NULL, "wrong shape");

	fresh("e_dtype", 1, dir, st, sizeof(dir));
	fx_edit_header(st, set_dtype_i8, "model.layers.0.self_attn.gate");
	expect_err(dir, INFINI_EUNSUPPORTED, "model.layers.0.self_attn.gate",
	    "I8", "unknown dtype");

	fresh("e_trunc", 1, dir, st, sizeof(dir));
	if (fx_read_file(st, &data, &n) == 0) {
		fx_write_file(st, data, n / 2);
		free(data);
	}
	expect_err(dir, INFINI_ECORRUPT, "past end", "model.", "truncated file");

	fresh("e_short", 1, dir, st, sizeof(dir));
	fx_write_file(st, "\x10\0\0", 3);
	expect_err(dir, INFINI_ECORRUPT, "model.safetensors", "truncated",
	    "file shorter than the header length");

	fresh("e_hlen", 1, dir, st, sizeof(dir));
	if (fx_read_file(st, &data, &n) == 0) {
		for (int i = 0; i < 8; i++)
			len[i] = (unsigned char)((uint64_t)(n + 1) >> (8 * i));
		memcpy(data, len, 8);
		fx_write_file(st, data, n);
		free(data);
	}
	expect_err(dir, INFINI_ECORRUPT, "header length", "past end",
	    "header length past end of file");

	fresh("e_offs", 1, dir, st, sizeof(dir));
	fx_edit_header(st, far_offsets, "model.norm.weight");
	expect_err(dir, INFINI_ECORRUPT, "model.norm.weight", "data_offsets",
	    "data_offsets past end");

	fresh("e_nofiles", 1, dir, st, sizeof(dir));
	unlink(st);
	expect_err(dir, INFINI_ENOENT, "model.safetensors", NULL,
	    "no weights at all");

	fresh("e_shard", 2, dir, st, sizeof(dir));
	snprintf(p, sizeof(p), "%s/model-00002-of-00002.safetensors", dir);
	unlink(p);
	expect_err(dir, INFINI_ENOENT, "model-00002-of-00002", NULL,
	    "missing shard");

	fresh("e_evil", 2, dir, st, sizeof(dir));
	snprintf(p, sizeof(p), "%s/model.safetensors.index.json", dir);
	fx_edit_json(p, evil_shard, NULL);
	expect_err(dir, INFINI_ECORRUPT, "../model-00001", "model.norm.weight",
	    "shard name with ../");
}

int
main(void)
{
	tap_plan(105);
	if (fx_tmpdir(root, sizeof(root)) != 0) {
		ok(0, "make a temporary directory");
		return (tap_done());
	}
	test_conversions();
	test_config();
	test_load();
	test_errors();
	test_quant();
	fx_rmtree(root);
	return (tap_done());
}
