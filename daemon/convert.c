/*
 * convert.c - infini-convert: a Hugging Face model directory (config.json,
 * safetensors shards, tokenizer files) to a directory infinid serves.
 *
 * Tensors keep their Hugging Face names, which is what the engine loads;
 * conversion is choosing each tensor's output dtype (projections take
 * --dtype, embedding and lm_head stay float, norms and gates float), adding
 * the Infini keys to config.json, and giving a plain model its gate betas.
 * Everything is written into DST.partial-XXXXXX next to DST, fsynced, loaded
 * back with the engine's own loader, and only then renamed to DST: a failed
 * or interrupted run leaves no DST and removes its partial directory.
 * docs/convert.md describes the options, layouts and what is refused.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "convert.h"
#include "engine/quant.h"
#include "engine/safetensors.h"
#include "infini_err.h"

#define ERR(...)                                                           \
	do {                                                               \
		if (err != NULL && errlen > 0)                             \
			snprintf(err, errlen, __VA_ARGS__);                \
	} while (0)

/* A plain model's gates: sigmoid(-100) is 4e-44, so memory adds nothing
 * and each segment is the plain model over that segment. */
#define GATE_INIT_DEFAULT (-100.0)

static const char *const tokenizer_files[] = { "tokenizer.json",
    "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
    "added_tokens.json", "vocab.json", "merges.txt",
    "generation_config.json", NULL };

struct cv_opts {
	const char *src, *dst;
	enum eng_dtype dtype;
	double gate_init;
	bool gate_init_set;
	int segment_size;          /* 0: from the source config */
	const char *memory_update; /* NULL: from the source, else linear */
	enum cv_layout layout;
	bool quiet;
};

/* One output tensor. */
struct cv_out {
	char name[160];
	enum cv_role role;
	enum eng_dtype odt;
	int ndim;
	int64_t shape[2];
	struct eng_tensor src;     /* data NULL: a generated gate */
	size_t obytes;
};

static volatile sig_atomic_t interrupted;

static void
on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static const char *
dtype_opt_name(enum eng_dtype t)
{
	static const char *const n[] = { "f32", "f16", "bf16", "q8_0", "q4" };
	return (n[t]);
}

/* ------------------------------------------------------------------ */
/* Planning: which tensors, in which dtypes                            */

/* emb_dtype: the embedding and lm_head keep a float dtype; under a block
 * dtype they keep bf16 sources as they are and store the rest as f16. */
static enum eng_dtype
emb_dtype(const struct cv_opts *o, enum eng_dtype src)
{
	if (!ENG_DTYPE_QUANT(o->dtype))
		return (o->dtype);
	return (src == ENG_BF16 ? ENG_BF16 : ENG_F16);
}

static int
plan_add(struct cv_out **v, int *n, int *cap, struct cv_out *t)
{
	if (*n == *cap) {
		int nc = *cap ? *cap * 2 : 64;
		struct cv_out *p = realloc(*v, (size_t)nc * sizeof(*p));
		if (p == NULL)
			return (INFINI_ENOMEM);
		*v = p;
		*cap = nc;
	}
	(*v)[(*n)++] = *t;
	return (0);
}

static int
cfg_int(const cJSON *c, const char *key, int def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, key);
	return (cJSON_IsNumber(v) ? (int)v->valuedouble : def);
}

/*
 * plan lists the output tensors of source s: every source tensor the engine
 * uses, in source order, then generated gates for a plain model.
 */
static int
plan(const struct cv_src *s, const struct cv_opts *o, bool tied,
    struct cv_out **out, int *nout, bool *gates_made, char *err,
    size_t errlen)
{
	int nh = cfg_int(s->config, "num_attention_heads", 0);
	int nl = cfg_int(s->config, "num_hidden_layers", 0);
	struct cv_out *v = NULL;
	int n = 0, cap = 0, ngates = 0, rv;
	bool *has_gate = NULL;

	if (nh < 1 || nl < 1) {
		ERR("config.json: num_attention_heads / num_hidden_layers "
		    "missing");
		return (INFINI_EINVAL);
	}
	if ((has_gate = calloc((size_t)nl, sizeof(bool))) == NULL)
		return (INFINI_ENOMEM);
	for (int f = 0; f < s->nfiles; f++) {
		const cJSON *it;
		cJSON_ArrayForEach(it, s->hdrs[f]) {
			struct st_entry e;
			struct cv_out t;
			const char *why;
			char msg[300];
			int l;

			if (strcmp(it->string, "__metadata__") == 0)
				continue;
			if ((rv = st_entry(it, s->sizes[f] - s->data_off[f], &e,
			    msg, sizeof(msg))) != 0) {
				ERR("%s: %s", s->files[f], msg);
				goto fail;
			}
			if (ENG_DTYPE_QUANT(e.dtype)) {
				ERR("%s: already %s; convert from a float "
				    "checkpoint", e.name, st_dtype_name(e.dtype));
				rv = INFINI_EUNSUPPORTED;
				goto fail;
			}
			memset(&t, 0, sizeof(t));
			t.role = cv_classify(e.name, &why);
			if (t.role == CV_SKIP || (t.role == CV_LM_HEAD && tied))
				continue;
			if (t.role == CV_REFUSE) {
				ERR("%s: %s (model_type %s)", e.name, why,
				    s->model_type);
				rv = INFINI_EUNSUPPORTED;
				goto fail;
			}
			if (snprintf(t.name, sizeof(t.name), "%s", e.name) >=
			    (int)sizeof(t.name)) {
				ERR("%s: name too long", e.name);
				rv = INFINI_EINVAL;
				goto fail;
			}
			t.src.name = t.name;
			t.src.dtype = e.dtype;
			t.src.ndim = e.ndim;
			memcpy(t.src.shape, e.shape, sizeof(t.src.shape));
			t.src.data = (const char *)s->maps[f] + s->data_off[f] +
			    e.offset;
			t.src.nbytes = e.nbytes;
			t.ndim = e.ndim;
			t.shape[0] = e.ndim > 0 ? e.shape[0] : 1;
			t.shape[1] = e.ndim > 1 ? e.shape[1] : 0;
			switch (t.role) {
			case CV_PROJ:
				t.odt = o->dtype;
				if (e.ndim != 2) {
					ERR("%s: a projection must be 2-D",
					    e.name);
					rv = INFINI_EINVAL;
					goto fail;
				}
				if (ENG_DTYPE_QUANT(t.odt) &&
				    e.shape[1] % ENG_QBLOCK != 0) {
					ERR("%s: %lld columns are not whole "
					    "blocks of %d for --dtype %s", e.name,
					    (long long)e.shape[1], ENG_QBLOCK,
					    dtype_opt_name(o->dtype));
					rv = INFINI_EUNSUPPORTED;
					goto fail;
				}
				break;
			case CV_EMBED:
			case CV_LM_HEAD:
				t.odt = emb_dtype(o, e.dtype);
				break;
			case CV_NORM:
				t.odt = ENG_DTYPE_QUANT(o->dtype) ? ENG_F32 :
				    o->dtype;
				break;
			default:   /* CV_GATE */
				l = cv_layer_of(e.name);
				if (o->layout == CV_LAYOUT_GEMMA_2B_10M &&
				    (e.ndim != 4 || e.shape[0] != 1 ||
				    e.shape[1] != nh || e.shape[2] != 1 ||
				    e.shape[3] != 1)) {
					ERR("%s: layout gemma-2b-10m wants a gate "
					    "of shape (1, %d, 1, 1)", e.name, nh);
					rv = INFINI_EINVAL;
					goto fail;
				}
				if (l < 0 || l >= nl) {
					ERR("%s: no such layer", e.name);
					rv = INFINI_EINVAL;
					goto fail;
				}
				has_gate[l] = true;
				ngates++;
				/* Betas are per head: one row of nh f32. */
				t.odt = ENG_F32;
				t.ndim = 1;
				t.shape[0] = nh;
				t.shape[1] = 0;
				break;
			}
			if ((rv = plan_add(&v, &n, &cap, &t)) != 0)
				goto fail;
		}
	}
	if (ngates > 0 && ngates != nl) {
		int l;
		for (l = 0; l < nl && has_gate[l]; l++)
			;
		ERR("model.layers.%d.self_attn.gate: missing, while other "
		    "layers have gates", l);
		rv = INFINI_EINVAL;
		goto fail;
	}
	if (o->layout == CV_LAYOUT_GEMMA_2B_10M && ngates == 0) {
		ERR("layout gemma-2b-10m: the source has no self_attn.gate "
		    "tensors");
		rv = INFINI_EINVAL;
		goto fail;
	}
	*gates_made = ngates == 0;
	for (int l = 0; ngates == 0 && l < nl; l++) {
		struct cv_out t;
		memset(&t, 0, sizeof(t));
		snprintf(t.name, sizeof(t.name), "model.layers.%d.self_attn.gate",
		    l);
		t.role = CV_GATE;
		t.odt = ENG_F32;
		t.ndim = 1;
		t.shape[0] = nh;
		if ((rv = plan_add(&v, &n, &cap, &t)) != 0)
			goto fail;
	}
	for (int i = 0; i < n; i++)
		v[i].obytes = (size_t)(v[i].ndim == 2 ? v[i].shape[0] : 1) *
		    eng_q_row_bytes(v[i].odt, v[i].ndim == 2 ? v[i].shape[1] :
		    v[i].shape[0]);
	free(has_gate);
	*out = v;
	*nout = n;
	return (0);

fail:
	free(has_gate);
	free(v);
	return (rv);
}

/* ------------------------------------------------------------------ */
/* config.json                                                         */

static int
set_item(cJSON *c, const char *key, cJSON *v)
{
	if (v == NULL)
		return (INFINI_ENOMEM);
	cJSON_DeleteItemFromObjectCaseSensitive(c, key);
	return (cJSON_AddItemToObject(c, key, v) ? 0 : INFINI_ENOMEM);
}

/*
 * make_config returns the destination config.json text: the source's keys,
 * with the Infini keys the engine reads set from the options and layout,
 * checked by the engine's own parser.
 */
static int
make_config(const struct cv_src *s, const struct cv_opts *o, bool gates_made,
    enum eng_dtype emb, char **text, char *err, size_t errlen)
{
	cJSON *c = cJSON_Duplicate(s->config, 1), *note;
	const cJSON *seg = cJSON_GetObjectItemCaseSensitive(s->config,
	    "segment_size");
	const cJSON *upd = cJSON_GetObjectItemCaseSensitive(s->config,
	    "memory_update");
	bool gemma = strcmp(s->model_type, "gemma") == 0;
	const char *update = o->memory_update;
	struct eng_config ec;
	char msg[300];
	int rv = INFINI_ENOMEM;

	if (c == NULL)
		return (INFINI_ENOMEM);
	if (o->segment_size == 0 && !cJSON_IsNumber(seg)) {
		ERR("the source has no segment_size: give --segment-size");
		rv = INFINI_EINVAL;
		goto fail;
	}
	if (update == NULL)
		update = cJSON_IsString(upd) ? upd->valuestring : "linear";
	if ((rv = set_item(c, "model_type", cJSON_CreateString(gemma ?
	    "gemma" : "llama"))) != 0 ||
	    (o->segment_size != 0 && (rv = set_item(c, "segment_size",
	    cJSON_CreateNumber(o->segment_size))) != 0) ||
	    (rv = set_item(c, "memory_update",
	    cJSON_CreateString(update))) != 0 ||
	    (rv = set_item(c, "position_embedding", cJSON_CreateString(
	    o->layout == CV_LAYOUT_GEMMA_2B_10M ? "none" : "rope"))) != 0 ||
	    (rv = set_item(c, "torch_dtype", cJSON_CreateString(
	    o->dtype == ENG_F32 ? "float32" : o->dtype == ENG_F16 ?
	    "float16" : "bfloat16"))) != 0)
		goto fail;
	/* Both published Infini layouts weigh memory by sigmoid(beta) and
	 * read it without RoPE, as the paper does. */
	if (cJSON_GetObjectItemCaseSensitive(c, "gate_on") == NULL &&
	    (rv = set_item(c, "gate_on", cJSON_CreateString("memory"))) != 0)
		goto fail;
	if (cJSON_GetObjectItemCaseSensitive(c, "memory_rope") == NULL &&
	    (rv = set_item(c, "memory_rope", cJSON_CreateFalse())) != 0)
		goto fail;
	/* HF's GemmaMLP uses the tanh GELU when hidden_activation is unset,
	 * whatever hidden_act says. */
	if (gemma && cJSON_GetObjectItemCaseSensitive(c,
	    "hidden_activation") == NULL && (rv = set_item(c,
	    "hidden_activation", cJSON_CreateString("gelu_pytorch_tanh"))) != 0)
		goto fail;
	if ((note = cJSON_CreateObject()) == NULL ||
	    !cJSON_AddStringToObject(note, "source_model_type",
	    s->model_type) ||
	    !cJSON_AddStringToObject(note, "layout",
	    cv_layout_names[o->layout]) ||
	    !cJSON_AddStringToObject(note, "dtype", dtype_opt_name(o->dtype)) ||
	    !cJSON_AddStringToObject(note, "embedding_dtype",
	    dtype_opt_name(emb)) ||
	    (gates_made && !cJSON_AddNumberToObject(note, "gate_init",
	    o->gate_init))) {
		cJSON_Delete(note);
		rv = INFINI_ENOMEM;
		goto fail;
	}
	if ((rv = set_item(c, "infini_convert", note)) != 0)
		goto fail;
	if ((*text = cJSON_Print(c)) == NULL) {
		rv = INFINI_ENOMEM;
		goto fail;
	}
	if ((rv = eng_config_parse(*text, strlen(*text), &ec, msg,
	    sizeof(msg))) != 0) {
		ERR("the engine refuses the resulting config.json: %s", msg);
		free(*text);
		*text = NULL;
		goto fail;
	}
	cJSON_Delete(c);
	return (0);

fail:
	cJSON_Delete(c);
	return (rv);
}

/* ------------------------------------------------------------------ */
/* Writing                                                             */

static int
write_file(const char *path, const void *data, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	const char *p = data;
	int rv = 0;

	if (fd < 0)
		return (INFINI_EIO);
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			rv = INFINI_EIO;
			break;
		}
		p += w;
		n -= (size_t)w;
	}
	if (rv == 0 && fsync(fd) != 0)
		rv = INFINI_EIO;
	if (close(fd) != 0 && rv == 0)
		rv = INFINI_EIO;
	return (rv);
}

static int
copy_file(const char *from, const char *to)
{
	FILE *f = fopen(from, "rb");
	char *buf;
	long n;
	int rv;

	if (f == NULL)
		return (INFINI_EIO);
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0 || (buf = malloc((size_t)n + 1)) == NULL) {
		fclose(f);
		return (INFINI_EIO);
	}
	rv = fread(buf, 1, (size_t)n, f) == (size_t)n ?
	    write_file(to, buf, (size_t)n) : INFINI_EIO;
	free(buf);
	fclose(f);
	return (rv);
}

/* encode writes n floats of x in dtype t to out; returns the bytes. */
static size_t
encode(enum eng_dtype t, const float *x, size_t n, unsigned char *out)
{
	if (ENG_DTYPE_QUANT(t)) {
		eng_q_quantize(t, x, n, out);
		return (eng_q_row_bytes(t, (int64_t)n));
	}
	for (size_t i = 0; i < n; i++) {
		uint16_t h;
		if (t == ENG_F32) {
			memcpy(out + 4 * i, &x[i], 4);
			continue;
		}
		h = t == ENG_F16 ? eng_f32_to_f16(x[i]) : eng_f32_to_bf16(x[i]);
		memcpy(out + 2 * i, &h, 2);
	}
	return (n * (t == ENG_F32 ? 4 : 2));
}

/* put_tensor writes t's data: the source bytes when the dtype is kept,
 * else row by row through f32. */
static int
put_tensor(FILE *f, const struct cv_out *t, double gate_init)
{
	int64_t rows = t->ndim == 2 ? t->shape[0] : 1;
	int64_t cols = t->ndim == 2 ? t->shape[1] : t->shape[0];
	float *x;
	unsigned char *b;
	int rv = 0;

	if (t->src.data != NULL && t->src.dtype == t->odt)
		return (fwrite(t->src.data, 1, t->obytes, f) == t->obytes ? 0 :
		    INFINI_EIO);
	x = malloc((size_t)cols * sizeof(float));
	b = malloc((size_t)cols * sizeof(float) + 64);
	if (x == NULL || b == NULL) {
		rv = INFINI_ENOMEM;
		goto out;
	}
	for (int64_t r = 0; r < rows && !interrupted; r++) {
		size_t nb;
		for (int64_t c = 0; c < cols; c++)
			x[c] = t->src.data != NULL ? eng_tensor_get(&t->src,
			    (size_t)(r * cols + c)) : (float)gate_init;
		nb = encode(t->odt, x, (size_t)cols, b);
		if (fwrite(b, 1, nb, f) != nb) {
			rv = INFINI_EIO;
			break;
		}
	}
	if (interrupted)
		rv = INFINI_ECANCELED;
out:
	free(x);
	free(b);
	return (rv);
}

static char *
make_header(const struct cv_out *v, int n, size_t *len)
{
	cJSON *h = cJSON_CreateObject(), *meta, *e;
	size_t off = 0;
	char *text = NULL, *pad;
	size_t tl, pl;

	if (h == NULL || (meta = cJSON_AddObjectToObject(h,
	    "__metadata__")) == NULL ||
	    !cJSON_AddStringToObject(meta, "format", "pt") ||
	    !cJSON_AddStringToObject(meta, "writer", "infini-convert"))
		goto out;
	for (int i = 0; i < n; i++) {
		double shape[2] = { (double)v[i].shape[0],
		    (double)v[i].shape[1] };
		double offs[2] = { (double)off, (double)(off + v[i].obytes) };
		off += v[i].obytes;
		if ((e = cJSON_AddObjectToObject(h, v[i].name)) == NULL ||
		    !cJSON_AddStringToObject(e, "dtype",
		    st_dtype_name(v[i].odt)) ||
		    !cJSON_AddItemToObject(e, "shape",
		    cJSON_CreateDoubleArray(shape, v[i].ndim)) ||
		    !cJSON_AddItemToObject(e, "data_offsets",
		    cJSON_CreateDoubleArray(offs, 2)))
			goto out;
	}
	if ((text = cJSON_PrintUnformatted(h)) == NULL)
		goto out;
	/* Pad with spaces so the data section starts 8-byte aligned. */
	tl = strlen(text);
	pl = (tl + 7) / 8 * 8;
	if ((pad = realloc(text, pl + 1)) == NULL) {
		free(text);
		text = NULL;
		goto out;
	}
	text = pad;
	memset(text + tl, ' ', pl - tl);
	text[pl] = '\0';
	*len = pl;
out:
	cJSON_Delete(h);
	return (text);
}

static void
progress(const struct cv_opts *o, int i, int n, uint64_t done, uint64_t total,
    const char *name)
{
	if (o->quiet || !isatty(2))
		return;
	fprintf(stderr, "\r\033[Kinfini-convert: %3d%% [%d/%d] %.60s",
	    total ? (int)(100 * done / total) : 100, i, n, name);
	if (i == n)
		fputc('\n', stderr);
	fflush(stderr);
}

static int
write_weights(const char *path, const struct cv_out *v, int n,
    const struct cv_opts *o, char *err, size_t errlen)
{
	size_t hl;
	char *hdr = make_header(v, n, &hl);
	unsigned char len[8];
	uint64_t total = 0, done = 0;
	FILE *f;
	int rv = 0;

	if (hdr == NULL)
		return (INFINI_ENOMEM);
	for (int i = 0; i < n; i++)
		total += v[i].obytes;
	if ((f = fopen(path, "wbx")) == NULL) {
		ERR("%s: %s", path, strerror(errno));
		free(hdr);
		return (INFINI_EIO);
	}
	for (int i = 0; i < 8; i++)
		len[i] = (unsigned char)((uint64_t)hl >> (8 * i));
	if (fwrite(len, 1, 8, f) != 8 || fwrite(hdr, 1, hl, f) != hl)
		rv = INFINI_EIO;
	for (int i = 0; i < n && rv == 0; i++) {
		progress(o, i, n, done, total, v[i].name);
		if ((rv = put_tensor(f, &v[i], o->gate_init)) != 0)
			break;
		done += v[i].obytes;
	}
	if (rv == 0)
		progress(o, n, n, total, total, "done");
	if (rv == 0 && (fflush(f) != 0 || fsync(fileno(f)) != 0))
		rv = INFINI_EIO;
	if (fclose(f) != 0 && rv == 0)
		rv = INFINI_EIO;
	if (rv == INFINI_EIO)
		ERR("%s: write: %s", path, strerror(errno));
	else if (rv == INFINI_ECANCELED)
		ERR("interrupted");
	free(hdr);
	return (rv);
}

/* rm_partial removes what this run put in dir, then dir. */
static void
rm_partial(const char *dir)
{
	char p[4300];

	snprintf(p, sizeof(p), "%s/config.json", dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/model.safetensors", dir);
	unlink(p);
	for (int i = 0; tokenizer_files[i] != NULL; i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, tokenizer_files[i]);
		unlink(p);
	}
	rmdir(dir);
}

static int
fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rv = 0;

	if (fd < 0)
		return (INFINI_EIO);
	if (fsync(fd) != 0)
		rv = INFINI_EIO;
	close(fd);
	return (rv);
}

static int
convert(const struct cv_opts *o, char *err, size_t errlen)
{
	struct cv_src s;
	struct cv_out *v = NULL;
	struct eng_model *m = NULL;
	char tmp[4200], p[4300], *cfg = NULL, *pdir = NULL, msg[512];
	bool gates_made = false, tied, made_tmp = false;
	enum eng_dtype emb = o->dtype;
	const cJSON *tw;
	int n = 0, rv;

	if (strlen(o->dst) > 4000) {
		ERR("%s: path too long", o->dst);
		return (INFINI_EINVAL);
	}
	if (access(o->dst, F_OK) == 0) {
		ERR("%s: exists; remove it or choose another destination",
		    o->dst);
		return (INFINI_EEXIST);
	}
	if ((rv = cv_src_open(&s, o->src, err, errlen)) != 0)
		goto out;
	tw = cJSON_GetObjectItemCaseSensitive(s.config, "tie_word_embeddings");
	tied = cJSON_IsBool(tw) ? cJSON_IsTrue(tw) :
	    strcmp(s.model_type, "gemma") == 0;
	if ((rv = plan(&s, o, tied, &v, &n, &gates_made, err, errlen)) != 0)
		goto out;
	for (int i = 0; i < n; i++)
		if (v[i].role == CV_EMBED)
			emb = v[i].odt;
	if (!gates_made && o->gate_init_set && !o->quiet)
		fprintf(stderr, "infini-convert: the source has gates; "
		    "--gate-init is not used\n");
	if ((rv = make_config(&s, o, gates_made, emb, &cfg, err,
	    errlen)) != 0)
		goto out;

	snprintf(tmp, sizeof(tmp), "%s.partial-XXXXXX", o->dst);
	if (mkdtemp(tmp) == NULL) {
		ERR("%s: cannot make a directory next to it: %s", o->dst,
		    strerror(errno));
		rv = INFINI_EIO;
		goto out;
	}
	made_tmp = true;
	snprintf(p, sizeof(p), "%s/config.json", tmp);
	if ((rv = write_file(p, cfg, strlen(cfg))) != 0) {
		ERR("%s: write failed", p);
		goto out;
	}
	for (int i = 0; tokenizer_files[i] != NULL; i++) {
		char from[4300];
		snprintf(from, sizeof(from), "%s/%s", o->src,
		    tokenizer_files[i]);
		if (access(from, F_OK) != 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", tmp, tokenizer_files[i]);
		if ((rv = copy_file(from, p)) != 0) {
			ERR("%s: copy to %s failed", from, tmp);
			goto out;
		}
	}
	snprintf(p, sizeof(p), "%s/model.safetensors", tmp);
	if ((rv = write_weights(p, v, n, o, err, errlen)) != 0)
		goto out;
	/* The engine's loader is the judge of what was written. */
	if ((rv = eng_model_load(tmp, &m, msg, sizeof(msg))) != 0) {
		ERR("the engine refuses the result: %s", msg);
		goto out;
	}
	eng_model_free(m);
	if (interrupted) {
		ERR("interrupted");
		rv = INFINI_ECANCELED;
		goto out;
	}
	if ((rv = fsync_dir(tmp)) != 0 || rename(tmp, o->dst) != 0) {
		ERR("%s: cannot rename into place: %s", o->dst,
		    strerror(errno));
		rv = INFINI_EIO;
		goto out;
	}
	made_tmp = false;
	if ((pdir = strdup(o->dst)) != NULL)
		fsync_dir(dirname(pdir));
	if (!o->quiet) {
		uint64_t total = 0;
		for (int i = 0; i < n; i++)
			total += v[i].obytes;
		fprintf(stderr, "infini-convert: %s -> %s: %d tensors, %.1f MiB, "
		    "projections %s, embedding %s%s\n", o->src, o->dst, n,
		    (double)total / (1 << 20), dtype_opt_name(o->dtype),
		    dtype_opt_name(emb), gates_made ? ", gates generated" :
		    ", gates kept");
	}
out:
	if (made_tmp)
		rm_partial(tmp);
	free(pdir);
	free(cfg);
	free(v);
	cv_src_close(&s);
	return (rv);
}

/* ------------------------------------------------------------------ */
/* Command line                                                        */

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: infini-convert [options] SRC DST\n"
	    "Converts the Hugging Face model directory SRC (config.json,\n"
	    "safetensors, tokenizer files) to the directory DST that infinid\n"
	    "serves.  DST must not exist; it appears only when complete.\n"
	    "  --dtype f32|f16|bf16|q8_0|q4   projection weights (bf16); q8_0\n"
	    "                       and q4 (Q4_0) are GGUF's 32-value blocks;\n"
	    "                       embedding and lm_head then stay bf16/f16\n"
	    "  --segment-size N     tokens per segment (required unless the\n"
	    "                       source config has segment_size)\n"
	    "  --gate-init BETA     initial gate of a plain model (-100:\n"
	    "                       the plain model within each segment);\n"
	    "                       Infini sources keep their gates\n"
	    "  --memory-update linear|delta   (source's, else linear)\n"
	    "  --layout hf|gemma-2b-10m       source layout (hf)\n"
	    "  --quiet              no progress or summary\n"
	    "  --help               this text\n"
	    "See docs/convert.md for the supported families and layouts.\n");
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "dtype", required_argument, NULL, 'd' },
		{ "segment-size", required_argument, NULL, 's' },
		{ "gate-init", required_argument, NULL, 'g' },
		{ "memory-update", required_argument, NULL, 'u' },
		{ "layout", required_argument, NULL, 'l' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct cv_opts o = { .dtype = ENG_BF16,
	    .gate_init = GATE_INIT_DEFAULT, .layout = CV_LAYOUT_HF };
	struct sigaction sa;
	char err[8800] = "", *end;
	int c, rv;

	while ((c = getopt_long(argc, argv, "hq", lo, NULL)) != -1) {
		switch (c) {
		case 'd': {
			static const char *const n[] = { "f32", "f16", "bf16",
			    "q8_0", "q4" };
			int i;
			for (i = 0; i < 5 && strcmp(optarg, n[i]) != 0; i++)
				;
			if (i == 5 && strcmp(optarg, "q4_0") == 0)
				i = 4;
			if (i == 5) {
				fprintf(stderr, "infini-convert: --dtype %s: want "
				    "f32, f16, bf16, q8_0 or q4\n", optarg);
				return (2);
			}
			o.dtype = (enum eng_dtype)i;
			break;
		}
		case 's':
			o.segment_size = (int)strtol(optarg, &end, 10);
			if (*end != '\0' || o.segment_size < 1 ||
			    o.segment_size > 65536) {
				fprintf(stderr, "infini-convert: --segment-size "
				    "%s: want 1..65536\n", optarg);
				return (2);
			}
			break;
		case 'g':
			o.gate_init = strtod(optarg, &end);
			if (*end != '\0' || !isfinite(o.gate_init)) {
				fprintf(stderr, "infini-convert: --gate-init %s: "
				    "want a number\n", optarg);
				return (2);
			}
			o.gate_init_set = true;
			break;
		case 'u':
			if (strcmp(optarg, "linear") != 0 &&
			    strcmp(optarg, "delta") != 0) {
				fprintf(stderr, "infini-convert: --memory-update "
				    "%s: want linear or delta\n", optarg);
				return (2);
			}
			o.memory_update = optarg;
			break;
		case 'l': {
			int i;
			for (i = 0; i < CV_LAYOUT_COUNT &&
			    strcmp(optarg, cv_layout_names[i]) != 0; i++)
				;
			if (i == CV_LAYOUT_COUNT) {
				fprintf(stderr, "infini-convert: --layout %s: want "
				    "hf or gemma-2b-10m\n", optarg);
				return (2);
			}
			o.layout = (enum cv_layout)i;
			break;
		}
		case 'q':
			o.quiet = true;
			break;
		case 'h':
			usage(stdout);
			return (0);
		default:
			usage(stderr);
			return (2);
		}
	}
	if (argc - optind != 2) {
		usage(stderr);
		return (2);
	}
	o.src = argv[optind];
	o.dst = argv[optind + 1];
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if ((rv = convert(&o, err, sizeof(err))) != 0) {
		fprintf(stderr, "%sinfini-convert: %s: %s\n",
		    !o.quiet && isatty(2) ? "\n" : "", infini_strerror(rv), err);
		return (rv == INFINI_ECANCELED ? 130 : 1);
	}
	return (0);
}
