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

/*
 * fuzz_tok's input: a tokenizer.json, FUZZ_TOK_SEP, then text to encode.
 * An input without the separator is all text, under fuzz_tok_json(0, ...).
 */
#define FUZZ_TOK_SEP "\n--text--\n"

#include <stdio.h>
#include <string.h>

/*
 * fuzz_tok_json writes a small but complete tokenizer.json into buf (room
 * for 64 KiB): kind 0 SentencePiece-style (Prepend / Replace U+2581, byte
 * fallback, Strip decoder, <s> added), kind 1 byte-level (Llama-3's split
 * regex, ByteLevel, ignore_merges, NFC, <|eot|> added).  Returns the length.
 */
static inline size_t
fuzz_tok_json(int kind, char *buf, size_t cap)
{
	size_t n = 0;
	int id = 0;
#define FT_PUT(...) (n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, \
	__VA_ARGS__))
	FT_PUT("{\"added_tokens\":[{\"id\":%d,\"content\":\"%s\",\"special\":"
	    "true,\"lstrip\":false,\"rstrip\":false,\"single_word\":false,"
	    "\"normalized\":false}],", kind ? 300 : 0, kind ? "<|eot|>" : "<s>");
	if (kind == 0) {
		FT_PUT("\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":["
		    "{\"type\":\"Prepend\",\"prepend\":\"\\u2581\"},{\"type\":"
		    "\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":"
		    "\"\\u2581\"}]},\"pre_tokenizer\":null,\"post_processor\":"
		    "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":"
		    "{\"id\":\"<s>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\","
		    "\"type_id\":0}}],\"pair\":[{\"Sequence\":{\"id\":\"A\","
		    "\"type_id\":0}},{\"Sequence\":{\"id\":\"B\",\"type_id\":1}}],"
		    "\"special_tokens\":{\"<s>\":{\"id\":\"<s>\","
		    "\"ids\":[0],\"tokens\":[\"<s>\"]}}},\"decoder\":{\"type\":"
		    "\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":"
		    "{\"String\":\"\\u2581\"},\"content\":\" \"},{\"type\":"
		    "\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\","
		    "\"content\":\" \",\"start\":1,\"stop\":0}]},\"model\":{\"type\":"
		    "\"BPE\",\"unk_token\":\"<unk>\",\"byte_fallback\":true,"
		    "\"fuse_unk\":true,\"vocab\":{\"<s>\":0,\"<unk>\":1,");
		id = 2;
		for (int b = 0; b < 256; b++)
			FT_PUT("\"<0x%02X>\":%d,", b, id++);
		FT_PUT("\"\\u2581\":%d,\"a\":%d,\"b\":%d,\"ab\":%d,\"\\u2581a\":%d,"
		    "\"\\u2581ab\":%d,\"\\u00e9\":%d},\"merges\":[\"a b\","
		    "\"\\u2581 a\",\"\\u2581a b\"]}}", id, id + 1, id + 2, id + 3,
		    id + 4, id + 5, id + 6);
	} else {
		FT_PUT("\"normalizer\":{\"type\":\"NFC\"},\"pre_tokenizer\":{"
		    "\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\","
		    "\"pattern\":{\"Regex\":\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|"
		    "[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| ?"
		    "[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|"
		    "\\\\s+(?!\\\\S)|\\\\s+\"},\"behavior\":\"Isolated\","
		    "\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\":"
		    "false,\"trim_offsets\":false,\"use_regex\":false}]},"
		    "\"post_processor\":null,\"decoder\":{\"type\":\"ByteLevel\","
		    "\"add_prefix_space\":false,\"trim_offsets\":false,"
		    "\"use_regex\":false},\"model\":{\"type\":"
		    "\"BPE\",\"ignore_merges\":true,\"vocab\":{");
		/* GPT-2's byte alphabet: printable bytes stand for themselves,
		 * the others for U+0100 onwards. */
		int extra = 0;
		for (int b = 0; b < 256; b++) {
			int cp = ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) ||
			    b >= 174) ? b : 256 + extra++;
			if (cp == '"' || cp == '\\')
				FT_PUT("\"\\%c\":%d,", cp, b);
			else if (cp < 0x80)
				FT_PUT("\"%c\":%d,", cp, b);
			else
				FT_PUT("\"\\u%04x\":%d,", cp, b);
		}
		FT_PUT("\"\\u0120a\":256,\"\\u0120ab\":257,\"ab\":258},\"merges\":"
		    "[[\"\\u0120\",\"a\"],[\"a\",\"b\"],[\"\\u0120a\",\"b\"]]}}");
	}
#undef FT_PUT
	return (n);
}

#endif /* FUZZ_H */
