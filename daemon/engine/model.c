/*
 * model.c - loading an Infini-attention model directory: config.json, the
 * safetensors weights (one file or an indexed set of shards), the tensor table
 * and the per-layer view of it.  (The F16/BF16 conversions declared in
 * model.h are in safetensors.c, with the other dtype code.)
 *
 * Weights are mapped read-only and never copied: struct eng_tensor points into
 * the mappings, which live as long as the model.  Every tensor the forward
 * pass needs is resolved and shape-checked here, once, so later code can index
 * weights without checking them again.  Nothing here touches the GPU.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "engine/model.h"
#include "engine/quant.h"
#include "engine/safetensors.h"
#include "infini_err.h"

#define ERR(...)                                                           \
	do {                                                               \
		if (err != NULL && errlen > 0)                             \
			snprintf(err, errlen, __VA_ARGS__);                \
	} while (0)

/* Caps that refuse absurd configs before anything is sized from them. */
#define SIZE_MAX_CFG (1 << 20)
#define LAYERS_MAX 4096
#define HEADS_MAX 4096
#define SEGMENT_MAX 65536
#define CONFIG_MAX ((size_t)1 << 20)
#define INDEX_MAX ((size_t)64 << 20)

/* ------------------------------------------------------------------ */
/* config.json                                                         */

struct enum_name {
	const char *s;
	int v;
};

static const struct enum_name arch_names[] = {
	{ "llama", ENG_ARCH_LLAMA }, { "gemma", ENG_ARCH_GEMMA }, { NULL, 0 }
};
/* gelu_new is Hugging Face's name for the tanh approximation too. */
static const struct enum_name act_names[] = {
	{ "silu", ENG_ACT_SILU }, { "gelu", ENG_ACT_GELU },
	{ "gelu_pytorch_tanh", ENG_ACT_GELU_TANH },
	{ "gelu_new", ENG_ACT_GELU_TANH }, { NULL, 0 }
};
static const struct enum_name update_names[] = {
	{ "linear", ENG_UPDATE_LINEAR }, { "delta", ENG_UPDATE_DELTA },
	{ NULL, 0 }
};
static const struct enum_name gate_names[] = {
	{ "memory", ENG_GATE_MEMORY }, { "local", ENG_GATE_LOCAL }, { NULL, 0 }
};
static const struct enum_name pos_names[] = {
	{ "rope", 1 }, { "none", 0 }, { NULL, 0 }
};
static const struct enum_name tok_names[] = {
	{ "bytes", 1 }, { NULL, 0 }
};

/* cfg_get returns root[key], treating JSON null as absent as HF does. */
static const cJSON *
cfg_get(const cJSON *root, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
	return (cJSON_IsNull(v) ? NULL : v);
}

static int
cfg_int(const cJSON *root, const char *key, bool required, int def, int lo,
    int hi, int *out, char *err, size_t errlen)
{
	const cJSON *v = cfg_get(root, key);
	double d;

	if (v == NULL) {
		if (required) {
			ERR("%s: missing", key);
			return (INFINI_EINVAL);
		}
		*out = def;
		return (0);
	}
	if (!cJSON_IsNumber(v) || floor(v->valuedouble) != v->valuedouble) {
		ERR("%s: not an integer", key);
		return (INFINI_EINVAL);
	}
	d = v->valuedouble;
	if (d < lo || d > hi) {
		ERR("%s: %.17g out of range [%d, %d]", key, d, lo, hi);
		return (INFINI_EINVAL);
	}
	*out = (int)d;
	return (0);
}

/* cfg_real reads a positive finite number not above hi. */
static int
cfg_real(const cJSON *root, const char *key, double def, double hi,
    double *out, char *err, size_t errlen)
{
	const cJSON *v = cfg_get(root, key);

	if (v == NULL) {
		*out = def;
		return (0);
	}
	if (!cJSON_IsNumber(v) || !(v->valuedouble > 0) ||
	    !(v->valuedouble <= hi)) {
		ERR("%s: want a number in (0, %g]", key, hi);
		return (INFINI_EINVAL);
	}
	*out = v->valuedouble;
	return (0);
}

static int
cfg_bool(const cJSON *root, const char *key, bool def, bool *out, char *err,
    size_t errlen)
{
	const cJSON *v = cfg_get(root, key);

	if (v == NULL) {
		*out = def;
		return (0);
	}
	if (!cJSON_IsBool(v)) {
		ERR("%s: not a boolean", key);
		return (INFINI_EINVAL);
	}
	*out = cJSON_IsTrue(v);
	return (0);
}

/* cfg_enum maps a string value through names; unknown strings are a model
 * this engine does not implement, hence EUNSUPPORTED rather than EINVAL. */
static int
cfg_enum(const cJSON *root, const char *key, const struct enum_name *names,
    int def, int *out, char *err, size_t errlen)
{
	const cJSON *v = cfg_get(root, key);
	char want[128];
	size_t w = 0;

	if (v == NULL) {
		*out = def;
		return (0);
	}
	if (!cJSON_IsString(v)) {
		ERR("%s: not a string", key);
		return (INFINI_EINVAL);
	}
	want[0] = '\0';
	for (const struct enum_name *n = names; n->s != NULL; n++) {
		if (strcmp(v->valuestring, n->s) == 0) {
			*out = n->v;
			return (0);
		}
		if (w < sizeof(want))
			w += (size_t)snprintf(want + w, sizeof(want) - w,
			    "%s%s", w ? "|" : "", n->s);
	}
	ERR("%s: unknown value \"%.64s\" (want %s)", key, v->valuestring, want);
	return (INFINI_EUNSUPPORTED);
}

int
eng_config_parse(const char *json, size_t len, struct eng_config *cfg,
    char *err, size_t errlen)
{
	struct eng_config c;
	cJSON *root;
	const char *actkey;
	int rv, e, hd_def;

	memset(&c, 0, sizeof(c));
	if ((root = cJSON_ParseWithLength(json, len)) == NULL) {
		ERR("malformed JSON near byte %ld",
		    (long)(cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() - json : 0));
		return (INFINI_ECORRUPT);
	}
	if (!cJSON_IsObject(root)) {
		ERR("not a JSON object");
		rv = INFINI_ECORRUPT;
		goto fail;
	}

	if ((rv = cfg_enum(root, "model_type", arch_names, ENG_ARCH_LLAMA, &e,
	    err, errlen)) != 0)
		goto fail;
	c.arch = (enum eng_arch)e;
	if ((rv = cfg_int(root, "vocab_size", true, 0, 1, SIZE_MAX_CFG,
	    &c.vocab_size, err, errlen)) != 0 ||
	    (rv = cfg_int(root, "hidden_size", true, 0, 1, SIZE_MAX_CFG,
	    &c.hidden_size, err, errlen)) != 0 ||
	    (rv = cfg_int(root, "intermediate_size", true, 0, 1, SIZE_MAX_CFG,
	    &c.intermediate_size, err, errlen)) != 0 ||
	    (rv = cfg_int(root, "num_hidden_layers", true, 0, 1, LAYERS_MAX,
	    &c.n_layers, err, errlen)) != 0 ||
	    (rv = cfg_int(root, "num_attention_heads", true, 0, 1, HEADS_MAX,
	    &c.n_heads, err, errlen)) != 0 ||
	    (rv = cfg_int(root, "num_key_value_heads", false, c.n_heads, 1,
	    HEADS_MAX, &c.n_kv_heads, err, errlen)) != 0)
		goto fail;
	if (c.n_heads % c.n_kv_heads != 0) {
		ERR("num_attention_heads %d not divisible by "
		    "num_key_value_heads %d", c.n_heads, c.n_kv_heads);
		rv = INFINI_EINVAL;
		goto fail;
	}
	if (cfg_get(root, "head_dim") == NULL &&
	    c.hidden_size % c.n_heads != 0) {
		ERR("head_dim: missing and hidden_size %d not divisible by "
		    "num_attention_heads %d", c.hidden_size, c.n_heads);
		rv = INFINI_EINVAL;
		goto fail;
	}
	hd_def = c.hidden_size / c.n_heads;
	if ((rv = cfg_int(root, "head_dim", false, hd_def, 1, SIZE_MAX_CFG,
	    &c.head_dim, err, errlen)) != 0)
		goto fail;
	if ((int64_t)c.n_heads * c.head_dim > SIZE_MAX_CFG) {
		ERR("head_dim: num_attention_heads * head_dim = %lld too large",
		    (long long)c.n_heads * c.head_dim);
		rv = INFINI_EINVAL;
		goto fail;
	}
	if ((rv = cfg_real(root, "rms_norm_eps", 1e-6, 1.0, &c.rms_norm_eps,
	    err, errlen)) != 0 ||
	    (rv = cfg_real(root, "rope_theta", 10000.0, 1e12, &c.rope_theta,
	    err, errlen)) != 0 ||
	    (rv = cfg_real(root, "memory_eps", 1e-6, 1.0, &c.memory_eps, err,
	    errlen)) != 0)
		goto fail;

	/* Gemma names its activation hidden_activation and lets it win. */
	actkey = cfg_get(root, "hidden_activation") ? "hidden_activation" :
	    "hidden_act";
	if ((rv = cfg_enum(root, actkey, act_names, ENG_ACT_SILU, &e, err,
	    errlen)) != 0)
		goto fail;
	c.act = (enum eng_act)e;

	/* Gemma checkpoints ship without lm_head.weight: HF's GemmaConfig
	 * ties by default, so we do too. */
	if ((rv = cfg_bool(root, "tie_word_embeddings",
	    c.arch == ENG_ARCH_GEMMA, &c.tie_word_embeddings, err,
	    errlen)) != 0)
		goto fail;
	if ((rv = cfg_int(root, "segment_size", true, 0, 1, SEGMENT_MAX,
	    &c.segment_size, err, errlen)) != 0)
		goto fail;
	if ((rv = cfg_enum(root, "memory_update", update_names,
	    ENG_UPDATE_LINEAR, &e, err, errlen)) != 0)
		goto fail;
	c.memory_update = (enum eng_update)e;
	if ((rv = cfg_enum(root, "gate_on", gate_names, ENG_GATE_MEMORY, &e,
	    err, errlen)) != 0)
		goto fail;
	c.gate_on = (enum eng_gate_on)e;
	if ((rv = cfg_enum(root, "position_embedding", pos_names, 1, &e, err,
	    errlen)) != 0)
		goto fail;
	c.rope = e != 0;
	if ((rv = cfg_bool(root, "memory_rope", false, &c.memory_rope, err,
	    errlen)) != 0)
		goto fail;
	if ((rv = cfg_enum(root, "tokenizer", tok_names, 0, &e, err,
	    errlen)) != 0)
		goto fail;
	c.byte_tokenizer = e != 0;

	if (c.rope && c.head_dim % 2 != 0) {
		ERR("head_dim: %d is odd, rope rotates pairs", c.head_dim);
		rv = INFINI_EINVAL;
		goto fail;
	}
	if (c.memory_rope && !c.rope) {
		ERR("memory_rope: true needs position_embedding \"rope\"");
		rv = INFINI_EINVAL;
		goto fail;
	}
	if (c.byte_tokenizer && c.vocab_size < ENG_TOK_BYTES_VOCAB_MIN) {
		ERR("vocab_size: %d too small for tokenizer \"bytes\" "
		    "(need %d)", c.vocab_size, ENG_TOK_BYTES_VOCAB_MIN);
		rv = INFINI_EINVAL;
		goto fail;
	}
	cJSON_Delete(root);
	*cfg = c;
	return (0);

fail:
	cJSON_Delete(root);
	return (rv);
}

/* ------------------------------------------------------------------ */
/* Reading files                                                       */

/* read_text reads a whole small file into a NUL-terminated buffer. */
static int
read_text(const char *path, size_t max, char **out, size_t *outlen,
    char *err, size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd, rv;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		rv = errno == ENOENT ? INFINI_ENOENT : INFINI_EIO;
		ERR("%s: %s", path, strerror(errno));
		return (rv);
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		ERR("%s: not a readable regular file", path);
		rv = INFINI_EIO;
		goto fail;
	}
	if ((size_t)st.st_size > max) {
		ERR("%s: %lld bytes, larger than %zu", path,
		    (long long)st.st_size, max);
		rv = INFINI_ECORRUPT;
		goto fail;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		rv = INFINI_ENOMEM;
		goto fail;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ERR("%s: read: %s", path, n ? strerror(errno) :
			    "file shrank");
			rv = INFINI_EIO;
			goto fail;
		}
		got += (size_t)n;
	}
	buf[got] = '\0';
	close(fd);
	*out = buf;
	*outlen = got;
	return (0);

fail:
	free(buf);
	close(fd);
	return (rv);
}

static char *
path_join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);

	if (p != NULL)
		snprintf(p, n, "%s/%s", dir, name);
	return (p);
}

/* plain_name accepts a file name that cannot leave the model directory. */
static bool
plain_name(const char *s)
{
	return (s[0] != '\0' && strchr(s, '/') == NULL &&
	    strstr(s, "..") == NULL && strcmp(s, ".") != 0);
}

/*
 * read_index collects the distinct shard file names of
 * model.safetensors.index.json, in first-seen order, into *files.
 */
static int
read_index(const char *dir, cJSON **index, const char ***files, int *nfiles,
    char *err, size_t errlen)
{
	char *path = NULL, *text = NULL;
	size_t len;
	cJSON *root = NULL;
	const cJSON *wm, *v;
	const char **f = NULL;
	int n = 0, rv;

	if ((path = path_join(dir, "model.safetensors.index.json")) == NULL)
		return (INFINI_ENOMEM);
	if ((rv = read_text(path, INDEX_MAX, &text, &len, err, errlen)) != 0) {
		if (rv == INFINI_ENOENT)
			ERR("%s: neither model.safetensors nor "
			    "model.safetensors.index.json", dir);
		goto fail;
	}
	if ((root = cJSON_ParseWithLength(text, len)) == NULL) {
		ERR("%s: malformed JSON", path);
		rv = INFINI_ECORRUPT;
		goto fail;
	}
	wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
	if (!cJSON_IsObject(wm) || cJSON_GetArraySize(wm) == 0) {
		ERR("%s: no weight_map object", path);
		rv = INFINI_ECORRUPT;
		goto fail;
	}
	if ((f = calloc((size_t)cJSON_GetArraySize(wm), sizeof(*f))) == NULL) {
		rv = INFINI_ENOMEM;
		goto fail;
	}
	cJSON_ArrayForEach(v, wm) {
		int i;
		if (!cJSON_IsString(v) || !plain_name(v->valuestring)) {
			ERR("%s: %s: shard \"%.64s\" is not a plain file name",
			    path, v->string, cJSON_IsString(v) ?
			    v->valuestring : "?");
			rv = INFINI_ECORRUPT;
			goto fail;
		}
		for (i = 0; i < n && strcmp(f[i], v->valuestring) != 0; i++)
			;
		if (i == n)
			f[n++] = v->valuestring;
	}
	free(path);
	free(text);
	*index = root;
	*files = f;
	*nfiles = n;
	return (0);

fail:
	free(f);
	cJSON_Delete(root);
	free(text);
	free(path);
	return (rv);
}

/* ------------------------------------------------------------------ */
/* Tensor table                                                        */

static int
tensor_cmp(const void *a, const void *b)
{
	return (strcmp(((const struct eng_tensor *)a)->name,
	    ((const struct eng_tensor *)b)->name));
}

static int
key_cmp(const void *key, const void *t)
{
	return (strcmp(key, ((const struct eng_tensor *)t)->name));
}

const struct eng_tensor *
eng_model_find(const struct eng_model *m, const char *name)
{
	if (m == NULL || m->tensors == NULL)
		return (NULL);
	return (bsearch(name, m->tensors, (size_t)m->n_tensors,
	    sizeof(m->tensors[0]), key_cmp));
}

size_t
eng_tensor_numel(const struct eng_tensor *t)
{
	size_t n = 1;

	for (int i = 0; i < t->ndim; i++)
		n *= (size_t)t->shape[i];
	return (n);
}

float
eng_tensor_get(const struct eng_tensor *t, size_t i)
{
	const unsigned char *p = t->data;
	uint16_t h;
	float f;

	/* memcpy: safetensors data need not be aligned for its dtype. */
	switch (t->dtype) {
	case ENG_F32:
		memcpy(&f, p + i * 4, 4);
		return (f);
	case ENG_F16:
		memcpy(&h, p + i * 2, 2);
		return (eng_f16_to_f32(h));
	case ENG_BF16:
		memcpy(&h, p + i * 2, 2);
		return (eng_bf16_to_f32(h));
	case ENG_Q8_0:
	case ENG_Q4_0:
		return (eng_q_get(t->dtype, p, i));
	default:
		break;
	}
	return (NAN);
}

/* fmt_shape writes "[a,b]" into buf. */
static void
fmt_shape(char *buf, size_t n, int ndim, const int64_t *shape)
{
	size_t w = (size_t)snprintf(buf, n, "[");
	for (int i = 0; i < ndim && w < n; i++)
		w += (size_t)snprintf(buf + w, n - w, "%s%lld", i ? "," : "",
		    (long long)shape[i]);
	if (w < n)
		snprintf(buf + w, n - w, "]");
}

/* need resolves name with exactly the given shape; ndim 0 with want_numel
 * accepts any shape holding that many elements (the gate).  Block dtypes
 * are accepted where quant_ok says the tensor feeds a matmul kernel. */
static int
need(const struct eng_model *m, const char *name, int ndim, int64_t d0,
    int64_t d1, size_t want_numel, bool quant_ok,
    const struct eng_tensor **out, char *err, size_t errlen)
{
	const struct eng_tensor *t = eng_model_find(m, name);
	int64_t want[2] = { d0, d1 };
	char got_s[96], want_s[64];

	if (t == NULL) {
		ERR("%s: missing", name);
		return (INFINI_ENOENT);
	}
	if (ENG_DTYPE_QUANT(t->dtype) && !quant_ok) {
		ERR("%s: dtype %s is only for projection matrices and an "
		    "untied lm_head (store it as F32, F16 or BF16)", name,
		    st_dtype_name(t->dtype));
		return (INFINI_EUNSUPPORTED);
	}
	fmt_shape(got_s, sizeof(got_s), t->ndim, t->shape);
	if (ndim == 0) {
		if (eng_tensor_numel(t) != want_numel) {
			ERR("%s: shape %s, want %zu values", name, got_s,
			    want_numel);
			return (INFINI_EINVAL);
		}
	} else if (t->ndim != ndim || t->shape[0] != d0 ||
	    (ndim == 2 && t->shape[1] != d1)) {
		fmt_shape(want_s, sizeof(want_s), ndim, want);
		ERR("%s: shape %s, want %s", name, got_s, want_s);
		return (INFINI_EINVAL);
	}
	*out = t;
	return (0);
}

static int
resolve(struct eng_model *m, char *err, size_t errlen)
{
	const struct eng_config *c = &m->cfg;
	const int64_t H = c->hidden_size, I = c->intermediate_size;
	const int64_t V = c->vocab_size;
	const int64_t Q = (int64_t)c->n_heads * c->head_dim;
	const int64_t KV = (int64_t)c->n_kv_heads * c->head_dim;
	char nm[128];
	int rv;

	/* The embedding is gathered, not multiplied: it keeps a float dtype
	 * (and so does lm_head when it is the embedding). */
	if ((rv = need(m, "model.embed_tokens.weight", 2, V, H, 0, false,
	    &m->embed, err, errlen)) != 0 ||
	    (rv = need(m, "model.norm.weight", 1, H, 0, 0, false, &m->norm,
	    err, errlen)) != 0)
		return (rv);
	if (c->tie_word_embeddings)
		m->lm_head = m->embed;
	else if ((rv = need(m, "lm_head.weight", 2, V, H, 0, true,
	    &m->lm_head, err, errlen)) != 0)
		return (rv);

	if ((m->layers = calloc((size_t)c->n_layers,
	    sizeof(m->layers[0]))) == NULL)
		return (INFINI_ENOMEM);
	for (int i = 0; i < c->n_layers; i++) {
		struct eng_layer *L = &m->layers[i];
		const struct {
			const char *suffix;
			int ndim;
			int64_t d0, d1;
			const struct eng_tensor **out;
		} want[] = {	/* ndim 2: projections, quantizable */
			{ "input_layernorm.weight", 1, H, 0, &L->attn_norm },
			{ "self_attn.q_proj.weight", 2, Q, H, &L->wq },
			{ "self_attn.k_proj.weight", 2, KV, H, &L->wk },
			{ "self_attn.v_proj.weight", 2, KV, H, &L->wv },
			{ "self_attn.o_proj.weight", 2, H, Q, &L->wo },
			{ "self_attn.gate", 0, 0, 0, &L->gate },
			{ "post_attention_layernorm.weight", 1, H, 0,
			    &L->mlp_norm },
			{ "mlp.gate_proj.weight", 2, I, H, &L->w_gate },
			{ "mlp.up_proj.weight", 2, I, H, &L->w_up },
			{ "mlp.down_proj.weight", 2, H, I, &L->w_down },
		};
		for (size_t k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
			snprintf(nm, sizeof(nm), "model.layers.%d.%s", i,
			    want[k].suffix);
			if ((rv = need(m, nm, want[k].ndim, want[k].d0,
			    want[k].d1, (size_t)c->n_heads, want[k].ndim == 2,
			    want[k].out, err, errlen)) != 0)
				return (rv);
		}
	}
	return (0);
}

/* fingerprint hashes config.json and every tensor (already sorted by name)
 * with its name, dtype and shape, so a renamed or reshaped tensor changes
 * the fingerprint as surely as changed bytes do. */
static int
fingerprint(struct eng_model *m, const char *cfg, size_t cfglen)
{
	XXH3_state_t *st = XXH3_createState();

	if (st == NULL)
		return (INFINI_ENOMEM);
	XXH3_64bits_reset(st);
	XXH3_64bits_update(st, cfg, cfglen);
	for (int i = 0; i < m->n_tensors; i++) {
		const struct eng_tensor *t = &m->tensors[i];
		unsigned char meta[2 + 8 * 4];
		size_t w = 0;

		meta[w++] = (unsigned char)t->dtype;
		meta[w++] = (unsigned char)t->ndim;
		for (int d = 0; d < t->ndim; d++)
			for (int b = 0; b < 8; b++)
				meta[w++] = (unsigned char)((uint64_t)t->shape[d]
				    >> (8 * b));
		XXH3_64bits_update(st, t->name, strlen(t->name) + 1);
		XXH3_64bits_update(st, meta, w);
		XXH3_64bits_update(st, t->data, t->nbytes);
	}
	m->fingerprint = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	return (0);
}

/* ------------------------------------------------------------------ */
/* Loading                                                             */

int
eng_model_load(const char *dir, struct eng_model **out, char *err,
    size_t errlen)
{
	static const char *single[] = { "model.safetensors" };
	struct eng_model *m = NULL;
	char *cfgtext = NULL, *path = NULL, msg[512];
	size_t cfglen, names_len = 0, names_w = 0;
	cJSON *index = NULL, **hdrs = NULL;
	const char **files = NULL;
	size_t *data_off = NULL;
	int nfiles = 0, ntensors = 0, rv;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if ((m = calloc(1, sizeof(*m))) == NULL ||
	    (m->dir = strdup(dir)) == NULL ||
	    (path = path_join(dir, "config.json")) == NULL) {
		rv = INFINI_ENOMEM;
		goto fail;
	}
	if ((rv = read_text(path, CONFIG_MAX, &cfgtext, &cfglen, err,
	    errlen)) != 0)
		goto fail;
	if ((rv = eng_config_parse(cfgtext, cfglen, &m->cfg, msg,
	    sizeof(msg))) != 0) {
		ERR("%s: %s", path, msg);
		goto fail;
	}
	free(path);

	/* One file, or the shards an index names. */
	if ((path = path_join(dir, single[0])) == NULL) {
		rv = INFINI_ENOMEM;
		goto fail;
	}
	if (access(path, F_OK) == 0) {
		files = single;
		nfiles = 1;
	} else if ((rv = read_index(dir, &index, &files, &nfiles, err,
	    errlen)) != 0)
		goto fail;

	if ((m->maps = calloc((size_t)nfiles, sizeof(*m->maps))) == NULL ||
	    (m->map_sizes = calloc((size_t)nfiles,
	    sizeof(*m->map_sizes))) == NULL ||
	    (hdrs = calloc((size_t)nfiles, sizeof(*hdrs))) == NULL ||
	    (data_off = calloc((size_t)nfiles, sizeof(*data_off))) == NULL) {
		rv = INFINI_ENOMEM;
		goto fail;
	}
	m->n_maps = nfiles;
	for (int f = 0; f < nfiles; f++) {
		const cJSON *it;
		free(path);
		if ((path = path_join(dir, files[f])) == NULL) {
			rv = INFINI_ENOMEM;
			goto fail;
		}
		if ((rv = st_map(path, &m->maps[f], &m->map_sizes[f], err,
		    errlen)) != 0 ||
		    (rv = st_header(path, m->maps[f], m->map_sizes[f],
		    &hdrs[f], &data_off[f], err, errlen)) != 0)
			goto fail;
		cJSON_ArrayForEach(it, hdrs[f]) {
			if (strcmp(it->string, "__metadata__") == 0)
				continue;
			ntensors++;
			names_len += strlen(it->string) + 1;
		}
	}

	/* Names are copied so the headers can go once the table exists. */
	if ((m->tensors = calloc((size_t)ntensors + 1,
	    sizeof(*m->tensors))) == NULL ||
	    (m->names = malloc(names_len + 1)) == NULL) {
		rv = INFINI_ENOMEM;
		goto fail;
	}
	for (int f = 0; f < nfiles; f++) {
		const cJSON *it;
		cJSON_ArrayForEach(it, hdrs[f]) {
			struct eng_tensor *t = &m->tensors[m->n_tensors];
			struct st_entry e;
			size_t nl;
			if (strcmp(it->string, "__metadata__") == 0)
				continue;
			if ((rv = st_entry(it, m->map_sizes[f] - data_off[f],
			    &e, msg, sizeof(msg))) != 0) {
				ERR("%s: %s", files[f], msg);
				goto fail;
			}
			nl = strlen(e.name) + 1;
			memcpy(m->names + names_w, e.name, nl);
			t->name = m->names + names_w;
			names_w += nl;
			t->dtype = e.dtype;
			t->ndim = e.ndim;
			memcpy(t->shape, e.shape, sizeof(t->shape));
			t->data = (const unsigned char *)m->maps[f] +
			    data_off[f] + e.offset;
			t->nbytes = e.nbytes;
			m->n_tensors++;
		}
	}
	qsort(m->tensors, (size_t)m->n_tensors, sizeof(*m->tensors),
	    tensor_cmp);
	for (int i = 1; i < m->n_tensors; i++) {
		if (strcmp(m->tensors[i - 1].name, m->tensors[i].name) == 0) {
			ERR("%s: %s: stored more than once", dir,
			    m->tensors[i].name);
			rv = INFINI_ECORRUPT;
			goto fail;
		}
	}

	/* An index that points at the wrong shard is a corrupt download. */
	if (index != NULL) {
		const cJSON *wm = cJSON_GetObjectItemCaseSensitive(index,
		    "weight_map"), *v;
		cJSON_ArrayForEach(v, wm) {
			const struct eng_tensor *t = eng_model_find(m,
			    v->string);
			int f;
			for (f = 0; f < nfiles &&
			    strcmp(files[f], v->valuestring) != 0; f++)
				;
			if (f == nfiles || t == NULL ||
			    (const char *)t->data <
			    (const char *)m->maps[f] || (const char *)t->data >
			    (const char *)m->maps[f] + m->map_sizes[f]) {
				ERR("%s: index places it in %s, which lacks it",
				    v->string, v->valuestring);
				rv = INFINI_ECORRUPT;
				goto fail;
			}
		}
	}

	if ((rv = resolve(m, err, errlen)) == 0)
		rv = fingerprint(m, cfgtext, cfglen);

fail:
	if (rv == INFINI_ENOMEM)
		ERR("%s: out of memory", dir);
	for (int f = 0; hdrs != NULL && f < nfiles; f++)
		cJSON_Delete(hdrs[f]);
	free(hdrs);
	free(data_off);
	if (files != single)
		free(files);
	cJSON_Delete(index);
	free(cfgtext);
	free(path);
	if (rv != 0) {
		eng_model_free(m);
		return (rv);
	}
	*out = m;
	return (0);
}

void
eng_model_drop_pages(const struct eng_model *m)
{
	/* Private read-only file mappings: dropped pages are clean, so the
	 * next access faults them in from the file unchanged. */
	for (int i = 0; m != NULL && m->maps != NULL && i < m->n_maps; i++)
		if (m->maps[i] != NULL)
			madvise(m->maps[i], m->map_sizes[i], MADV_DONTNEED);
}

void
eng_model_free(struct eng_model *m)
{
	if (m == NULL)
		return;
	for (int i = 0; m->maps != NULL && i < m->n_maps; i++)
		st_unmap(m->maps[i], m->map_sizes[i]);
	free(m->maps);
	free(m->map_sizes);
	free(m->layers);
	free(m->tensors);
	free(m->names);
	free(m->dir);
	free(m);
}
