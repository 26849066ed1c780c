/*
 * fuzz.h - what the fuzz targets and make_corpus agree on.
 */
#ifndef FUZZ_H
#define FUZZ_H

/* The model fingerprint fuzz_snapshot checks against, and that
 * make_corpus writes into its snapshot seeds. */
#define FUZZ_SNAP_FP 0x1f2e3d4c5b6a7988ull

/*
 * fuzz_model's input: config.json text, FUZZ_MODEL_SEP, safetensors bytes.
 * An input without the separator is all safetensors, loaded with
 * FUZZ_MODEL_CONFIG (the shape make_corpus's smallest seed model has).
 */
#define FUZZ_MODEL_SEP "\n--safetensors--\n"
#define FUZZ_MODEL_CONFIG \
	"{\"model_type\":\"llama\",\"vocab_size\":32,\"hidden_size\":16," \
	"\"intermediate_size\":32,\"num_hidden_layers\":1," \
	"\"num_attention_heads\":2,\"num_key_value_heads\":1,\"head_dim\":8," \
	"\"segment_size\":4,\"tie_word_embeddings\":false}"

#endif /* FUZZ_H */
