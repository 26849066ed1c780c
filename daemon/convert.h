/*
 * convert.h - infini-convert's parts: reading a Hugging Face model directory
 * (convert_src.c) and writing the directory infinid serves (convert.c).
 */
#ifndef INFINI_CONVERT_H
#define INFINI_CONVERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/model.h"

struct cJSON;

/* Published source layouts (docs/convert.md). */
enum cv_layout {
	CV_LAYOUT_HF,             /* HF Llama/Mistral/Gemma names; an Infini
	                           * source's self_attn.gate (any shape with
	                           * num_attention_heads values) is kept */
	CV_LAYOUT_GEMMA_2B_10M,   /* mustafaaljadery/gemma-2B-10M: gate
	                           * (1, H, 1, 1), no RoPE in its attention */
	CV_LAYOUT_COUNT
};
extern const char *const cv_layout_names[CV_LAYOUT_COUNT];

/* What a source tensor is to the engine. */
enum cv_role { CV_EMBED, CV_LM_HEAD, CV_NORM, CV_PROJ, CV_GATE, CV_SKIP,
	CV_REFUSE };

/* An opened source: config.json and the mapped safetensors files. */
struct cv_src {
	const char *dir;
	struct cJSON *config;
	const char *model_type;    /* points into config */
	char **files;              /* shard names, in index order */
	int nfiles;
	void **maps;
	size_t *sizes;
	struct cJSON **hdrs;
	size_t *data_off;
};

/*
 * cv_src_open reads config.json in dir, refuses model types and features
 * the engine does not implement (naming the key and why), and maps
 * model.safetensors or the shards model.safetensors.index.json names.
 * Returns 0 or an INFINI_E* code with err set; call cv_src_close either way.
 */
int cv_src_open(struct cv_src *s, const char *dir, char *err, size_t errlen);
void cv_src_close(struct cv_src *s);

/* cv_classify returns a tensor's role from its name; CV_REFUSE with *why
 * set for tensors the engine has no place for (biases, q/k norms...). */
enum cv_role cv_classify(const char *name, const char **why);

/* cv_layer_of returns N of "model.layers.N.*", or -1. */
int cv_layer_of(const char *name);

#endif /* INFINI_CONVERT_H */
