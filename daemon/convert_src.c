/*
 * convert_src.c - the source side of infini-convert: a Hugging Face model
 * directory's config.json checked against what the engine implements, and
 * its safetensors tensors (one file, or the shards an index names) mapped
 * and classified by name into the roles the engine knows.
 *
 * Anything the engine cannot run is refused here, before a byte of the
 * destination is written, with the key or tensor named and the reason.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "convert.h"
#include "engine/safetensors.h"
#include "infini_err.h"

#define ERR(...)                                                           \
	do {                                                               \
		if (err != NULL && errlen > 0)                             \
			snprintf(err, errlen, __VA_ARGS__);                \
	} while (0)

const char *const cv_layout_names[CV_LAYOUT_COUNT] = {
	[CV_LAYOUT_HF] = "hf",
	[CV_LAYOUT_GEMMA_2B_10M] = "gemma-2b-10m",
};

/* Model types the engine's blocks do not fit, and why. */
static const struct {
	const char *type, *why;
} refused_types[] = {
	{ "qwen2", "Qwen2 has q/k/v projection biases, which the engine's "
	    "attention does not add" },
	{ "qwen2_moe", "mixture-of-experts MLPs are not implemented" },
	{ "qwen3", "Qwen3 normalizes q and k per head (q_norm, k_norm) before "
	    "RoPE, which the engine's attention does not do" },
	{ "gemma2", "Gemma 2 has logit soft-capping, sandwich norms and "
	    "alternating sliding windows" },
	{ "gemma3", "Gemma 3 has q/k norms, sandwich norms and alternating "
	    "sliding windows" },
	{ "gemma3_text", "Gemma 3 has q/k norms, sandwich norms and "
	    "alternating sliding windows" },
	{ "mixtral", "mixture-of-experts MLPs are not implemented" },
	{ NULL, NULL }
};

static char *
read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (f == NULL)
		return (NULL);
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
	    n < (64L << 20) && fseek(f, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)n + 1)) != NULL) {
		if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		} else {
			buf[n] = '\0';
			*len = (size_t)n;
		}
	}
	fclose(f);
	return (buf);
}

static bool
json_true(const cJSON *root, const char *key)
{
	return (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, key)));
}

static bool
json_present(const cJSON *root, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
	return (v != NULL && !cJSON_IsNull(v));
}

/* check_config refuses configurations whose blocks the engine does not
 * implement; *type gets the model_type. */
static int
check_config(const cJSON *c, const char **type, char *err, size_t errlen)
{
	const cJSON *mt = cJSON_GetObjectItemCaseSensitive(c, "model_type");
	const cJSON *sw;

	if (!cJSON_IsString(mt)) {
		ERR("config.json: model_type missing");
		return (INFINI_EINVAL);
	}
	*type = mt->valuestring;
	for (int i = 0; refused_types[i].type != NULL; i++)
		if (strcmp(*type, refused_types[i].type) == 0) {
			ERR("config.json: model_type \"%s\" is not supported: %s",
			    *type, refused_types[i].why);
			return (INFINI_EUNSUPPORTED);
		}
	if (strcmp(*type, "llama") != 0 && strcmp(*type, "mistral") != 0 &&
	    strcmp(*type, "gemma") != 0) {
		ERR("config.json: model_type \"%.64s\" is not supported (want "
		    "llama, mistral or gemma)", *type);
		return (INFINI_EUNSUPPORTED);
	}
	if (json_present(c, "rope_scaling")) {
		ERR("config.json: rope_scaling is set; the engine implements "
		    "plain RoPE only (Llama 3.1+ scale their frequencies)");
		return (INFINI_EUNSUPPORTED);
	}
	if (json_true(c, "attention_bias") || json_true(c, "mlp_bias")) {
		ERR("config.json: attention_bias/mlp_bias is true; the engine's "
		    "projections have no biases");
		return (INFINI_EUNSUPPORTED);
	}
	/* A window at least a segment long never cuts the local branch,
	 * which only sees its own segment. */
	sw = cJSON_GetObjectItemCaseSensitive(c, "sliding_window");
	if (cJSON_IsNumber(sw) && json_present(c, "segment_size") &&
	    sw->valuedouble < cJSON_GetObjectItemCaseSensitive(c,
	    "segment_size")->valuedouble) {
		ERR("config.json: sliding_window %g is shorter than "
		    "segment_size", sw->valuedouble);
		return (INFINI_EUNSUPPORTED);
	}
	return (0);
}

int
cv_src_open(struct cv_src *s, const char *dir, char *err, size_t errlen)
{
	char path[4200];
	char *text = NULL;
	size_t len;
	cJSON *idx = NULL;
	int rv;

	memset(s, 0, sizeof(*s));
	s->dir = dir;
	snprintf(path, sizeof(path), "%s/config.json", dir);
	if ((text = read_all(path, &len)) == NULL) {
		ERR("%s: cannot read", path);
		return (INFINI_ENOENT);
	}
	s->config = cJSON_ParseWithLength(text, len);
	free(text);
	if (!cJSON_IsObject(s->config)) {
		ERR("%s: not a JSON object", path);
		return (INFINI_ECORRUPT);
	}
	if ((rv = check_config(s->config, &s->model_type, err, errlen)) != 0)
		return (rv);

	/* One file, or the distinct shards of the index in order. */
	snprintf(path, sizeof(path), "%s/model.safetensors", dir);
	if (access(path, F_OK) == 0) {
		if ((s->files = calloc(1, sizeof(char *))) == NULL ||
		    (s->files[0] = strdup("model.safetensors")) == NULL)
			return (INFINI_ENOMEM);
		s->nfiles = 1;
	} else {
		const cJSON *wm, *v;
		snprintf(path, sizeof(path), "%s/model.safetensors.index.json",
		    dir);
		if ((text = read_all(path, &len)) == NULL) {
			ERR("%s: neither model.safetensors nor "
			    "model.safetensors.index.json", dir);
			return (INFINI_ENOENT);
		}
		idx = cJSON_ParseWithLength(text, len);
		free(text);
		wm = cJSON_GetObjectItemCaseSensitive(idx, "weight_map");
		if (!cJSON_IsObject(wm)) {
			ERR("%s: no weight_map", path);
			cJSON_Delete(idx);
			return (INFINI_ECORRUPT);
		}
		if ((s->files = calloc((size_t)cJSON_GetArraySize(wm),
		    sizeof(char *))) == NULL) {
			cJSON_Delete(idx);
			return (INFINI_ENOMEM);
		}
		cJSON_ArrayForEach(v, wm) {
			int i;
			if (!cJSON_IsString(v) || strchr(v->valuestring, '/') ||
			    strstr(v->valuestring, "..")) {
				ERR("%s: %s: not a plain shard file name", path,
				    v->string);
				cJSON_Delete(idx);
				return (INFINI_ECORRUPT);
			}
			for (i = 0; i < s->nfiles &&
			    strcmp(s->files[i], v->valuestring) != 0; i++)
				;
			if (i == s->nfiles)
				s->files[s->nfiles++] = strdup(v->valuestring);
			if (s->files[i] == NULL) {
				cJSON_Delete(idx);
				return (INFINI_ENOMEM);
			}
		}
		cJSON_Delete(idx);
	}
	if ((s->maps = calloc((size_t)s->nfiles, sizeof(*s->maps))) == NULL ||
	    (s->sizes = calloc((size_t)s->nfiles, sizeof(*s->sizes))) == NULL ||
	    (s->hdrs = calloc((size_t)s->nfiles, sizeof(*s->hdrs))) == NULL ||
	    (s->data_off = calloc((size_t)s->nfiles,
	    sizeof(*s->data_off))) == NULL)
		return (INFINI_ENOMEM);
	for (int f = 0; f < s->nfiles; f++) {
		snprintf(path, sizeof(path), "%s/%s", dir, s->files[f]);
		if ((rv = st_map(path, &s->maps[f], &s->sizes[f], err,
		    errlen)) != 0 ||
		    (rv = st_header(path, s->maps[f], s->sizes[f], &s->hdrs[f],
		    &s->data_off[f], err, errlen)) != 0)
			return (rv);
	}
	return (0);
}

void
cv_src_close(struct cv_src *s)
{
	for (int f = 0; f < s->nfiles; f++) {
		if (s->maps != NULL)
			st_unmap(s->maps[f], s->sizes[f]);
		if (s->hdrs != NULL)
			cJSON_Delete(s->hdrs[f]);
		free(s->files[f]);
	}
	free(s->files);
	free(s->maps);
	free(s->sizes);
	free(s->hdrs);
	free(s->data_off);
	cJSON_Delete(s->config);
	memset(s, 0, sizeof(*s));
}

/* ends reports whether s ends with suffix. */
static bool
ends(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return (a >= b && strcmp(s + a - b, suffix) == 0);
}

/* classify names a tensor's role from its Hugging Face name, or returns
 * CV_REFUSE with the reason in why. */
enum cv_role
cv_classify(const char *name, const char **why)
{
	static const char *const proj[] = { ".self_attn.q_proj.weight",
	    ".self_attn.k_proj.weight", ".self_attn.v_proj.weight",
	    ".self_attn.o_proj.weight", ".mlp.gate_proj.weight",
	    ".mlp.up_proj.weight", ".mlp.down_proj.weight", NULL };
	bool layer = strncmp(name, "model.layers.", 13) == 0;

	*why = NULL;
	if (strcmp(name, "model.embed_tokens.weight") == 0)
		return (CV_EMBED);
	if (strcmp(name, "lm_head.weight") == 0)
		return (CV_LM_HEAD);
	if (strcmp(name, "model.norm.weight") == 0)
		return (CV_NORM);
	if (ends(name, ".rotary_emb.inv_freq"))
		return (CV_SKIP);          /* derived from rope_theta */
	if (layer && (ends(name, ".input_layernorm.weight") ||
	    ends(name, ".post_attention_layernorm.weight")))
		return (CV_NORM);
	for (int i = 0; layer && proj[i] != NULL; i++)
		if (ends(name, proj[i]))
			return (CV_PROJ);
	if (layer && ends(name, ".self_attn.gate"))
		return (CV_GATE);
	if (ends(name, ".bias"))
		*why = "biases are not part of the engine's blocks";
	else if (ends(name, "q_norm.weight") || ends(name, "k_norm.weight"))
		*why = "per-head q/k norms are not part of the engine's "
		    "attention";
	else if (ends(name, "feedforward_layernorm.weight"))
		*why = "sandwich norms are not part of the engine's blocks";
	else
		*why = "no tensor of that name in a Llama/Gemma block";
	return (CV_REFUSE);
}

/* layer_of returns N of "model.layers.N.", or -1. */
int
cv_layer_of(const char *name)
{
	char *end;
	long l;

	if (strncmp(name, "model.layers.", 13) != 0)
		return (-1);
	l = strtol(name + 13, &end, 10);
	return (*end == '.' && l >= 0 && l < 1 << 20 ? (int)l : -1);
}
