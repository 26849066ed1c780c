/*
 * tok.h - text <-> token ids, behind one interface with two implementations:
 * the byte tokenizer of infinid's own models (ids 0..255 are bytes, then
 * BOS and EOS) and Hugging Face tokenizer.json files (byte-level BPE with
 * regex pre-tokenization as in GPT-2 / Llama-3 / Qwen, SentencePiece-style
 * BPE with U+2581 and byte fallback as in Llama-2 / Mistral / Gemma).
 *
 * A loaded tokenizer is read-only and shared by every thread and stream:
 * encode and decode take their scratch from the caller's stack or heap, so
 * nothing is copied per stream.  The only per-stream state is a struct
 * tok_stream (a few bytes of a UTF-8 character split across tokens).
 *
 * Nothing here knows about the engine, streams or sockets.
 */
#ifndef TOK_H
#define TOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tok;

/* tok_load_dir loads the tokenizer of the model in dir: tokenizer.json when
 * there is one (with tokenizer_config.json and config.json for BOS / EOS),
 * else the byte tokenizer when config.json says "tokenizer": "bytes".
 * *out is NULL (and 0 returned) when the model has neither.  Errors:
 * INFINI_EIO, INFINI_ECORRUPT (malformed JSON), INFINI_EUNSUPPORTED (a
 * component this code does not implement; err names it), INFINI_ENOMEM. */
int tok_load_dir(const char *dir, struct tok **out, char *err, size_t errlen);

/* tok_load_file loads one tokenizer.json (BOS / EOS from the
 * tokenizer_config.json and config.json beside it, when they exist).
 * Errors as tok_load_dir. */
int tok_load_file(const char *path, struct tok **out, char *err,
    size_t errlen);

/* tok_free releases a tokenizer; NULL is a no-op. */
void tok_free(struct tok *t);

/* tok_vocab_size: one more than the largest id the tokenizer can produce. */
int tok_vocab_size(const struct tok *t);

/* tok_kind: "bytes" or "hf" (for logs). */
const char *tok_kind(const struct tok *t);

/* tok_is_eos: id ends a generation (the model's EOS ids). */
bool tok_is_eos(const struct tok *t, int32_t id);

/* tok_bos: the BOS id, or -1 when the tokenizer names none. */
int32_t tok_bos(const struct tok *t);

/* Flags for tok_encode. */
#define TOK_ADD_SPECIAL   1u  /* apply the post-processor (BOS / EOS) */
#define TOK_PLAIN_SPECIAL 2u  /* special-token strings are plain text */

/*
 * tok_encode turns len bytes of UTF-8 text into ids.  Added and special
 * tokens written in the text are recognised as Hugging Face does by default
 * (TOK_PLAIN_SPECIAL turns that off for special tokens).  On success
 * *ids (malloc'd, caller frees; never NULL) holds *n ids.  Errors:
 * INFINI_EINVAL (text is not valid UTF-8; err gives the byte offset),
 * INFINI_ENOMEM, INFINI_EINTERNAL (a regex engine failure).
 */
int tok_encode(const struct tok *t, const char *text, size_t len,
    unsigned flags, int32_t **ids, size_t *n, char *err, size_t errlen);

/*
 * tok_decode turns ids into text the way Hugging Face's decoder does
 * (invalid UTF-8 becomes U+FFFD).  skip_special drops special tokens.
 * *out (malloc'd, NUL-terminated, caller frees) holds *len bytes.  Errors:
 * INFINI_ERANGE (an id outside the vocabulary), INFINI_ENOMEM.
 */
int tok_decode(const struct tok *t, const int32_t *ids, size_t n,
    bool skip_special, char **out, size_t *len);

/*
 * Streaming decode for generated tokens: only whole UTF-8 characters come
 * out; the bytes of a character split across tokens are held until it is
 * complete.  Special tokens produce no text.
 */
struct tok_stream {
	uint8_t hold[8];
	int nhold;
	int nstrip;                /* leading spaces stripped so far */
	bool started;              /* past the decoder's leading Strip */
};

/* tok_stream_init resets s for a new generation. */
void tok_stream_init(struct tok_stream *s);

/* tok_stream_room: the most bytes one tok_stream_put or tok_stream_flush
 * can write. */
size_t tok_stream_room(const struct tok *t);

/* tok_stream_put appends the text of id to buf (tok_stream_room bytes of
 * room) and returns the number of bytes written. */
size_t tok_stream_put(const struct tok *t, struct tok_stream *s, int32_t id,
    char *buf);

/* tok_stream_flush writes what is still held (as U+FFFD: it can no longer
 * become a character) and returns its length (at most 24 bytes). */
size_t tok_stream_flush(struct tok_stream *s, char *buf);

/* tok_utf8_check returns the offset of the first byte of text that is not
 * valid UTF-8, or len when all of it is. */
size_t tok_utf8_check(const char *text, size_t len);

/* tok_utf8_len: length of the valid UTF-8 character at p (n bytes left),
 * or 0 when p does not start one. */
int tok_utf8_len(const uint8_t *p, size_t n);

#endif /* TOK_H */
