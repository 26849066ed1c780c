/*
 * tok_impl.h - the tokenizer's private structures, shared by tok.c (the
 * interface, the byte tokenizer, decoding), tok_hf.c (reading
 * tokenizer.json) and tok_bpe.c (the BPE model and the encode pipeline).
 */
#ifndef TOK_IMPL_H
#define TOK_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tok.h"

enum tok_kind { TOK_BYTES, TOK_HF };

/* Open-addressing table of byte strings -> id (the vocabulary and the
 * added tokens).  Keys live in the tokenizer's piece arena. */
struct tok_strmap {
	uint32_t *slot;            /* id + 1, 0 = empty */
	uint32_t *tag;             /* low 32 bits of the key's hash */
	uint32_t mask;
};

/* Open-addressing table of (left id, right id) -> (rank, merged id). */
struct tok_merge {
	uint64_t key;              /* (left << 32 | right) + 1; 0 = empty */
	uint32_t rank;
	int32_t id;
};

struct tok_mergemap {
	struct tok_merge *slot;
	uint32_t mask;
};

/* Normalizer steps, applied in order to each text segment between added
 * tokens. */
enum tok_norm_kind { TN_NFC, TN_NFKC, TN_REPLACE, TN_PREPEND };
struct tok_norm {
	enum tok_norm_kind kind;
	char *from, *to;           /* replace: from -> to; prepend: to */
	size_t nfrom, nto;
};

/* Pre-tokenizer steps: each splits every piece it is given. */
enum tok_pre_kind { TP_REGEX, TP_STRING, TP_BYTELEVEL, TP_METASPACE };
enum tok_split { TS_ISOLATED, TS_REMOVED, TS_MERGED_PREV, TS_MERGED_NEXT };
struct tok_pre {
	enum tok_pre_kind kind;
	enum tok_split behavior;
	pcre2_code *re;            /* regex (also ByteLevel's use_regex) */
	char *str;                 /* string pattern; metaspace replacement */
	size_t nstr;
	bool add_prefix_space;     /* ByteLevel; Metaspace prepend "always" */
	bool prepend_first;        /* Metaspace prepend_scheme "first" */
	bool split;                /* Metaspace split */
};

/* One id's text: its bytes in the arena (raw bytes for byte-level vocab
 * entries, the UTF-8 string otherwise) and what decoding makes of it. */
struct tok_piece {
	uint32_t off, len;         /* encode key (arena) */
	uint32_t doff, dlen;       /* decoded bytes (arena) */
	int16_t byte;              /* <0xXX> byte-fallback token: XX, else -1 */
	bool special;              /* an added token marked special */
	bool added;
	bool set;                  /* the id exists */
	bool raw;                  /* byte-level entry outside the alphabet */
};

/* Byte trie over the added tokens' contents, for leftmost-longest
 * matching in raw text. */
struct tok_trie_node {
	uint32_t first;            /* first child edge */
	int32_t id;                /* token ending here, or -1 */
};
struct tok_trie_edge {
	uint32_t next;             /* sibling edge, 0 = none */
	uint32_t node;
	uint8_t byte;
};

struct tok {
	enum tok_kind kind;
	int vocab_size;
	int32_t bos;
	int32_t eos[8];
	int neos;
	/* HF */
	char *arena;
	size_t arena_len, arena_cap;
	struct tok_piece *pieces;  /* [vocab_size] */
	size_t max_dlen;
	struct tok_strmap vocab;   /* model vocabulary (encode keys) */
	struct tok_mergemap merges;
	int32_t byte_id[256];      /* byte-level: the id of each single byte */
	int32_t fallback_id[256];  /* byte fallback: id of <0xXX>, or -1 */
	int32_t unk;               /* -1: none */
	bool byte_level;           /* the model works on byte-level symbols */
	bool byte_fallback, fuse_unk, ignore_merges;
	struct tok_norm *norm;
	int nnorm;
	struct tok_pre *pre;
	int npre;
	/* added tokens */
	struct tok_trie_node *tnodes;
	struct tok_trie_edge *tedges;
	uint32_t ntnodes, ntedges, captn, capte;
	/* post-processor (TemplateProcessing, single sequence) */
	int32_t post_pre[4], post_post[4];
	int npost_pre, npost_post;
	/* decoder */
	bool dec_byte_level;       /* join, map bytes, lossy UTF-8 */
	bool dec_byte_fallback;    /* <0xXX> runs -> bytes */
	bool dec_replace;          /* U+2581 -> ' ' per token */
	int dec_strip_start;       /* Strip: leading spaces removed */
	int dec_strip_stop;
};

/* tok_hash hashes n bytes (xxh3). */
uint64_t tok_hash(const void *p, size_t n);

/* Strings -> id, in tok_bpe.c. */
/* A growing byte buffer that keeps room for a NUL; oom is sticky, so a
 * run of adds is checked once at its end. */
struct tok_buf { char *p; size_t n, cap; bool oom; };
/* tok_buf_add appends n bytes of p; false (oom set) when out of memory. */
bool tok_buf_add(struct tok_buf *b, const void *p, size_t n);

int tok_strmap_init(struct tok_strmap *m, size_t n);
void tok_strmap_fini(struct tok_strmap *m);
/* tok_strmap_put adds key id (its bytes are pieces[id].off/len); a key
 * already present keeps its first id. */
void tok_strmap_put(struct tok_strmap *m, const struct tok *t, int32_t id);
int32_t tok_strmap_get(const struct tok_strmap *m, const struct tok *t,
    const void *key, size_t n);
int tok_mergemap_init(struct tok_mergemap *m, size_t n);
void tok_mergemap_fini(struct tok_mergemap *m);
void tok_mergemap_put(struct tok_mergemap *m, int32_t a, int32_t b,
    uint32_t rank, int32_t id);

/* tok_hf_load parses tokenizer.json text into t (kind TOK_HF). */
int tok_hf_load(struct tok *t, const char *json, size_t len, char *err,
    size_t errlen);

/* tok_hf_encode: see tok_encode. */
int tok_hf_encode(const struct tok *t, const char *text, size_t len,
    unsigned flags, int32_t **ids, size_t *n, char *err, size_t errlen);

/* tok_lossy_append appends n bytes to out as UTF-8, each maximal invalid
 * subpart replaced by U+FFFD (Rust's from_utf8_lossy); out has room for
 * 3 * n bytes.  Returns the bytes written. */
size_t tok_lossy(const uint8_t *p, size_t n, char *out);


#endif /* TOK_IMPL_H */
