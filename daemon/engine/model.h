/*
 * model.h - an Infini-attention model as read from disk.
 *
 * A model is a directory holding config.json and model.safetensors (or shards
 * model-0000N-of-0000M.safetensors listed by model.safetensors.index.json).
 * eng_model_load parses the config, maps the safetensors files read-only and
 * checks every tensor the architecture needs for presence, dtype and shape.
 * Nothing here touches the GPU: gpu upload lives in engine/weights.c.
 *
 * Tensor layouts follow Hugging Face Llama: a projection weight is
 * [out_features, in_features], row-major.
 */
#ifndef ENG_MODEL_H
#define ENG_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum eng_arch { ENG_ARCH_LLAMA, ENG_ARCH_GEMMA };
enum eng_act { ENG_ACT_SILU, ENG_ACT_GELU, ENG_ACT_GELU_TANH };
enum eng_update { ENG_UPDATE_LINEAR, ENG_UPDATE_DELTA };
enum eng_gate_on { ENG_GATE_MEMORY, ENG_GATE_LOCAL };
/* Storage dtypes.  Q8_0 and Q4_0 are GGUF's block formats (docs/quant.md):
 * blocks of ENG_QBLOCK values along a row, each with an f16 scale; they are
 * allowed for projection matrices only (and an untied lm_head). */
enum eng_dtype { ENG_F32, ENG_F16, ENG_BF16, ENG_Q8_0, ENG_Q4_0,
	ENG_DTYPE_COUNT };
#define ENG_QBLOCK 32
#define ENG_DTYPE_QUANT(t) ((t) == ENG_Q8_0 || (t) == ENG_Q4_0)

/* Byte tokenizer: ids 0..255 are bytes, then these specials. */
#define ENG_TOK_BOS 256
#define ENG_TOK_EOS 257
#define ENG_TOK_BYTES_VOCAB_MIN 258

struct eng_config {
	enum eng_arch arch;        /* model_type: "llama" | "gemma" */
	int vocab_size;
	int hidden_size;
	int intermediate_size;
	int n_layers;              /* num_hidden_layers */
	int n_heads;               /* num_attention_heads */
	int n_kv_heads;            /* num_key_value_heads, default n_heads */
	int head_dim;              /* default hidden_size / n_heads */
	double rms_norm_eps;       /* default 1e-6 */
	double rope_theta;         /* default 10000 */
	enum eng_act act;          /* hidden_act, default silu */
	bool tie_word_embeddings;  /* default false */
	int segment_size;          /* Infini: tokens per segment (required) */
	enum eng_update memory_update; /* "linear" | "delta", default linear */
	double memory_eps;         /* default 1e-6 */
	enum eng_gate_on gate_on;  /* "memory" | "local", default memory */
	bool rope;                 /* position_embedding: "rope" (default) | "none" */
	bool memory_rope;          /* default false */
	bool byte_tokenizer;       /* tokenizer: "bytes" */
};

struct eng_tensor {
	const char *name;          /* points into the model's name storage */
	enum eng_dtype dtype;
	int ndim;
	int64_t shape[4];
	const void *data;          /* little-endian, inside a read-only mapping */
	size_t nbytes;
};

struct eng_layer {
	const struct eng_tensor *attn_norm; /* input_layernorm.weight     [H]      */
	const struct eng_tensor *wq;        /* self_attn.q_proj.weight    [nh*hd, H] */
	const struct eng_tensor *wk;        /* self_attn.k_proj.weight    [nkv*hd, H] */
	const struct eng_tensor *wv;        /* self_attn.v_proj.weight    [nkv*hd, H] */
	const struct eng_tensor *wo;        /* self_attn.o_proj.weight    [H, nh*hd] */
	const struct eng_tensor *gate;      /* self_attn.gate (beta), nh values, any shape */
	const struct eng_tensor *mlp_norm;  /* post_attention_layernorm.weight [H] */
	const struct eng_tensor *w_gate;    /* mlp.gate_proj.weight       [I, H]   */
	const struct eng_tensor *w_up;      /* mlp.up_proj.weight         [I, H]   */
	const struct eng_tensor *w_down;    /* mlp.down_proj.weight       [H, I]   */
};

struct eng_model {
	struct eng_config cfg;
	const struct eng_tensor *embed;     /* model.embed_tokens.weight  [V, H]   */
	const struct eng_tensor *norm;      /* model.norm.weight          [H]      */
	const struct eng_tensor *lm_head;   /* lm_head.weight [V, H]; == embed when tied */
	struct eng_layer *layers;           /* [n_layers] */
	char *dir;                          /* the model directory, as given */
	uint64_t fingerprint;               /* hash over config.json and tensor bytes */
	/* private: tensor table and mappings */
	struct eng_tensor *tensors;
	int n_tensors;
	void **maps;
	size_t *map_sizes;
	int n_maps;
	char *names;
};

/*
 * eng_config_parse parses the text of a config.json into *cfg, applying the
 * documented defaults.  Returns 0, INFINI_ECORRUPT for malformed JSON or
 * INFINI_EINVAL / INFINI_EUNSUPPORTED for bad values; err (may be NULL)
 * receives a message naming the key.
 */
int eng_config_parse(const char *json, size_t len, struct eng_config *cfg,
    char *err, size_t errlen);

/*
 * eng_model_load reads the model in directory dir.  On success *out owns the
 * mappings; release it with eng_model_free.  Errors: INFINI_ENOENT (missing
 * file or tensor), INFINI_ECORRUPT (bad header, truncated data, offsets past
 * the end), INFINI_EINVAL (wrong shape), INFINI_EUNSUPPORTED (dtype); err
 * receives a message naming the file or tensor.
 */
int eng_model_load(const char *dir, struct eng_model **out, char *err,
    size_t errlen);

/*
 * eng_model_drop_pages tells the kernel the mapped weights are not needed
 * in memory now (they were copied to the device): their pages leave the
 * process's resident set and are read back from the file if touched again.
 * The tensors stay valid.
 */
void eng_model_drop_pages(const struct eng_model *m);

/* eng_model_free releases a model; NULL is a no-op. */
void eng_model_free(struct eng_model *m);

/* eng_model_find returns the tensor named name, or NULL. */
const struct eng_tensor *eng_model_find(const struct eng_model *m,
    const char *name);

/* eng_tensor_get returns element i of t converted to float (dequantized
 * for the block dtypes). */
float eng_tensor_get(const struct eng_tensor *t, size_t i);

/* eng_tensor_numel returns the number of elements of t. */
size_t eng_tensor_numel(const struct eng_tensor *t);

/* Conversions shared with the fixture writer and the tests. */
float eng_bf16_to_f32(uint16_t h);
uint16_t eng_f32_to_bf16(float f);   /* round to nearest even */
float eng_f16_to_f32(uint16_t h);
uint16_t eng_f32_to_f16(float f);    /* round to nearest even */

#endif /* ENG_MODEL_H */
