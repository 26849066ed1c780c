/*
 * tok_hf.c - reads a Hugging Face tokenizer.json into a struct tok: the BPE
 * vocabulary and merges (into hash tables), the added tokens (into a byte
 * trie), and the normalizer, pre-tokenizer, post-processor and decoder
 * steps.  A component this code does not implement is a load error that
 * names it, never a silent approximation.
 *
 * Byte-level vocabularies (GPT-2 style, a ByteLevel pre-tokenizer) spell
 * bytes as printable characters; their keys are turned back into raw bytes
 * here, so encoding works on the text's bytes directly.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "infini_err.h"
#include "tok_impl.h"

#define ERR(...) do { if (err != NULL) snprintf(err, errlen, __VA_ARGS__); \
	} while (0)

/* Ids above this are refused: real vocabularies stay far below it, and a
 * hostile file must not make the loader allocate gigabytes. */
#define ID_MAX (1 << 24)

/* GPT-2's pattern, used by ByteLevel with use_regex. */
static const char gpt2_re[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|"
    "\\s+(?!\\S)|\\s+";

/* ------------------------------------------------------------------ */
/* The byte-level alphabet (GPT-2's bytes_to_unicode)                  */

static int16_t cp_to_byte[324];

static void
byte_level_init(void)
{
	int n = 0;
	for (int i = 0; i < 324; i++)
		cp_to_byte[i] = -1;
	for (int b = 0; b < 256; b++) {
		bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) ||
		    (b >= 174);
		cp_to_byte[printable ? b : 256 + n++] = (int16_t)b;
	}
}

/* unbyte turns a byte-level string into raw bytes in out (room for n);
 * returns the length, or -1 when a character is outside the alphabet. */
static long
unbyte(const char *s, size_t n, char *out)
{
	long k = 0;
	for (size_t i = 0; i < n;) {
		uint8_t c = (uint8_t)s[i];
		int cp;
		if (c < 0x80) {
			cp = c;
			i++;
		} else if ((c & 0xe0) == 0xc0 && i + 1 < n) {
			cp = ((c & 0x1f) << 6) | (s[i + 1] & 0x3f);
			i += 2;
		} else {
			return (-1);
		}
		if (cp >= 324 || cp_to_byte[cp] < 0)
			return (-1);
		out[k++] = (char)cp_to_byte[cp];
	}
	return (k);
}

/* ------------------------------------------------------------------ */
/* Small JSON helpers                                                  */

static const char *
jstr(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return (cJSON_IsString(v) ? v->valuestring : NULL);
}

static bool
jbool(const cJSON *o, const char *key, bool dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return (cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt);
}

static bool
jnull(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return (v == NULL || cJSON_IsNull(v));
}

static int
arena_add(struct tok *t, const void *p, size_t n, uint32_t *off)
{
	/* Allocated even for an empty piece: lookups form arena + off. */
	if (t->arena == NULL || t->arena_len + n > t->arena_cap) {
		size_t c = t->arena_cap ? t->arena_cap : 1 << 20;
		while (c < t->arena_len + n)
			c *= 2;
		if (c > UINT32_MAX)
			return (INFINI_ENOMEM);
		char *na = realloc(t->arena, c);
		if (na == NULL)
			return (INFINI_ENOMEM);
		t->arena = na;
		t->arena_cap = c;
	}
	if (n > 0)
		memcpy(t->arena + t->arena_len, p, n);
	*off = (uint32_t)t->arena_len;
	t->arena_len += n;
	return (0);
}

/* ------------------------------------------------------------------ */
/* Normalizer, pre-tokenizer                                           */

typedef int (*add_fn)(struct tok *, const cJSON *, char *, size_t);

/* add_each adds every member of a Sequence component's list key with
 * add, in order. */
static int
add_each(struct tok *t, const cJSON *n, const char *key, add_fn add,
    char *err, size_t errlen)
{
	const cJSON *e;
	int rv;

	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(n, key))
		if ((rv = add(t, e, err, errlen)) != 0)
			return (rv);
	return (0);
}

static int
add_norm(struct tok *t, const cJSON *n, char *err, size_t errlen)
{
	const char *type = jstr(n, "type");
	struct tok_norm st = { 0 };

	if (type == NULL) {
		ERR("tokenizer.json: normalizer without a type");
		return (INFINI_ECORRUPT);
	}
	if (strcmp(type, "Sequence") == 0)
		return (add_each(t, n, "normalizers", add_norm, err, errlen));
	if (strcmp(type, "NFC") == 0) {
		st.kind = TN_NFC;
	} else if (strcmp(type, "NFKC") == 0) {
		st.kind = TN_NFKC;
	} else if (strcmp(type, "Prepend") == 0 && jstr(n, "prepend")) {
		st.kind = TN_PREPEND;
		st.to = strdup(jstr(n, "prepend"));
	} else if (strcmp(type, "Replace") == 0 && jstr(n, "content") &&
	    jstr(cJSON_GetObjectItemCaseSensitive(n, "pattern"), "String")) {
		st.kind = TN_REPLACE;
		st.from = strdup(jstr(cJSON_GetObjectItemCaseSensitive(n,
		    "pattern"), "String"));
		st.to = strdup(jstr(n, "content"));
		if (st.from && st.from[0] == '\0') {
			free(st.from);
			free(st.to);
			ERR("tokenizer.json: normalizer Replace with an empty "
			    "pattern is not supported");
			return (INFINI_EUNSUPPORTED);
		}
	} else {
		ERR("tokenizer.json: normalizer \"%s\" is not supported "
		    "(supported: NFC, NFKC, Prepend, Replace with a string "
		    "pattern, Sequence)", type);
		return (INFINI_EUNSUPPORTED);
	}
	st.nfrom = st.from ? strlen(st.from) : 0;
	st.nto = st.to ? strlen(st.to) : 0;
	struct tok_norm *nv = realloc(t->norm, (t->nnorm + 1) * sizeof(*nv));
	if (nv == NULL || (st.kind == TN_REPLACE && (!st.from || !st.to)) ||
	    (st.kind == TN_PREPEND && !st.to)) {
		if (nv)
			t->norm = nv;
		free(st.from);
		free(st.to);
		return (INFINI_ENOMEM);
	}
	t->norm = nv;
	t->norm[t->nnorm++] = st;
	return (0);
}

static int
compile_re(const char *pat, pcre2_code **out, char *err, size_t errlen)
{
	int ec;
	PCRE2_SIZE eo;
	/* No PCRE2_NO_UTF_CHECK: the pattern is the file's bytes. */
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
	    PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
	if (re == NULL) {
		PCRE2_UCHAR msg[256];
		pcre2_get_error_message(ec, msg, sizeof(msg));
		ERR("tokenizer.json: pre-tokenizer regex does not compile at "
		    "%zu: %s", (size_t)eo, (char *)msg);
		return (INFINI_EUNSUPPORTED);
	}
	/* Without JIT pcre2_jit_match fails; fall back is not worth it here:
	 * Debian's PCRE2 has JIT on x86-64 and arm64. */
	if (pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) != 0) {
		pcre2_code_free(re);
		ERR("tokenizer.json: PCRE2 JIT is not available");
		return (INFINI_EUNSUPPORTED);
	}
	*out = re;
	return (0);
}

static int
add_pre(struct tok *t, const cJSON *n, char *err, size_t errlen)
{
	const char *type = jstr(n, "type");
	struct tok_pre st = { 0 };
	int rv = 0;

	if (type == NULL) {
		ERR("tokenizer.json: pre_tokenizer without a type");
		return (INFINI_ECORRUPT);
	}
	if (strcmp(type, "Sequence") == 0)
		return (add_each(t, n, "pretokenizers", add_pre, err, errlen));
	if (strcmp(type, "Split") == 0) {
		const cJSON *pat = cJSON_GetObjectItemCaseSensitive(n, "pattern");
		const char *b = jstr(n, "behavior");
		if (jbool(n, "invert", false)) {
			ERR("tokenizer.json: pre_tokenizer Split with invert is "
			    "not supported");
			return (INFINI_EUNSUPPORTED);
		}
		if (b == NULL || strcmp(b, "Isolated") == 0)
			st.behavior = TS_ISOLATED;
		else if (strcmp(b, "Removed") == 0)
			st.behavior = TS_REMOVED;
		else if (strcmp(b, "MergedWithPrevious") == 0)
			st.behavior = TS_MERGED_PREV;
		else if (strcmp(b, "MergedWithNext") == 0)
			st.behavior = TS_MERGED_NEXT;
		else {
			ERR("tokenizer.json: Split behavior \"%s\" is not "
			    "supported", b);
			return (INFINI_EUNSUPPORTED);
		}
		if (jstr(pat, "Regex") != NULL) {
			st.kind = TP_REGEX;
			if ((rv = compile_re(jstr(pat, "Regex"), &st.re, err,
			    errlen)) != 0)
				return (rv);
		} else if (jstr(pat, "String") != NULL) {
			st.kind = TP_STRING;
			if ((st.str = strdup(jstr(pat, "String"))) == NULL)
				return (INFINI_ENOMEM);
			st.nstr = strlen(st.str);
		} else {
			ERR("tokenizer.json: Split without a pattern");
			return (INFINI_ECORRUPT);
		}
	} else if (strcmp(type, "ByteLevel") == 0) {
		st.kind = TP_BYTELEVEL;
		st.behavior = TS_ISOLATED;
		st.add_prefix_space = jbool(n, "add_prefix_space", true);
		if (jbool(n, "use_regex", true) &&
		    (rv = compile_re(gpt2_re, &st.re, err, errlen)) != 0)
			return (rv);
		t->byte_level = true;
	} else if (strcmp(type, "Metaspace") == 0) {
		const char *r = jstr(n, "replacement"), *ps =
		    jstr(n, "prepend_scheme");
		st.kind = TP_METASPACE;
		st.behavior = TS_MERGED_NEXT;
		st.split = jbool(n, "split", true);
		if (ps == NULL)
			st.add_prefix_space = jbool(n, "add_prefix_space", true);
		else if (strcmp(ps, "always") == 0)
			st.add_prefix_space = true;
		else if (strcmp(ps, "first") == 0)
			st.prepend_first = true;
		else if (strcmp(ps, "never") != 0) {
			ERR("tokenizer.json: Metaspace prepend_scheme \"%s\" is "
			    "not supported", ps);
			return (INFINI_EUNSUPPORTED);
		}
		if ((st.str = strdup(r ? r : "\xe2\x96\x81")) == NULL)
			return (INFINI_ENOMEM);
		st.nstr = strlen(st.str);
	} else {
		ERR("tokenizer.json: pre_tokenizer \"%s\" is not supported "
		    "(supported: ByteLevel, Metaspace, Split, Sequence)", type);
		return (INFINI_EUNSUPPORTED);
	}
	struct tok_pre *nv = realloc(t->pre, (t->npre + 1) * sizeof(*nv));
	if (nv == NULL) {
		if (st.re)
			pcre2_code_free(st.re);
		free(st.str);
		return (INFINI_ENOMEM);
	}
	t->pre = nv;
	t->pre[t->npre++] = st;
	return (0);
}

/* ------------------------------------------------------------------ */
/* Post-processor, decoder                                             */

static int
token_id(const struct tok *t, const char *s)
{
	size_t n = strlen(s);
	for (int i = 0; i < t->vocab_size; i++)
		if (t->pieces[i].added && t->pieces[i].len == n &&
		    memcmp(t->arena + t->pieces[i].off, s, n) == 0)
			return (i);
	return (tok_strmap_get(&t->vocab, t, s, n));
}

static int
add_post(struct tok *t, const cJSON *n, char *err, size_t errlen)
{
	const char *type = jstr(n, "type");
	if (type == NULL)
		return (0);
	if (strcmp(type, "Sequence") == 0)
		return (add_each(t, n, "processors", add_post, err, errlen));
	if (strcmp(type, "ByteLevel") == 0)
		return (0);   /* it only adjusts offsets */
	if (strcmp(type, "TemplateProcessing") != 0) {
		ERR("tokenizer.json: post_processor \"%s\" is not supported "
		    "(supported: TemplateProcessing, ByteLevel, Sequence)", type);
		return (INFINI_EUNSUPPORTED);
	}
	const cJSON *e, *sp = cJSON_GetObjectItemCaseSensitive(n,
	    "special_tokens");
	bool seen_seq = false;
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(n, "single")) {
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(e,
		    "SpecialToken"), *ids, *x;
		if (cJSON_GetObjectItemCaseSensitive(e, "Sequence") != NULL) {
			seen_seq = true;
			continue;
		}
		ids = cJSON_GetObjectItemCaseSensitive(
		    cJSON_GetObjectItemCaseSensitive(sp, jstr(st, "id") ?
		    jstr(st, "id") : ""), "ids");
		if (st == NULL || ids == NULL) {
			ERR("tokenizer.json: TemplateProcessing names an unknown "
			    "special token");
			return (INFINI_ECORRUPT);
		}
		cJSON_ArrayForEach(x, ids) {
			int32_t *a = seen_seq ? t->post_post : t->post_pre;
			int *k = seen_seq ? &t->npost_post : &t->npost_pre;
			if (*k == 4 || !cJSON_IsNumber(x)) {
				ERR("tokenizer.json: TemplateProcessing too long");
				return (INFINI_EUNSUPPORTED);
			}
			a[(*k)++] = (int32_t)x->valuedouble;
		}
	}
	return (0);
}

static int
add_dec(struct tok *t, const cJSON *n, char *err, size_t errlen)
{
	const char *type = jstr(n, "type");
	if (type == NULL)
		return (0);
	if (strcmp(type, "Sequence") == 0)
		return (add_each(t, n, "decoders", add_dec, err, errlen));
	if (strcmp(type, "ByteLevel") == 0) {
		t->dec_byte_level = true;
	} else if (strcmp(type, "ByteFallback") == 0) {
		t->dec_byte_fallback = true;
	} else if (strcmp(type, "Fuse") == 0) {
		/* Joining is what decoding ends with anyway. */
	} else if (strcmp(type, "Replace") == 0 &&
	    jstr(cJSON_GetObjectItemCaseSensitive(n, "pattern"), "String") &&
	    strcmp(jstr(cJSON_GetObjectItemCaseSensitive(n, "pattern"),
	    "String"), "\xe2\x96\x81") == 0 && jstr(n, "content") &&
	    strcmp(jstr(n, "content"), " ") == 0) {
		/* U+2581 -> ' ': applied per token when pieces are built. */
		t->dec_replace = true;
	} else if (strcmp(type, "Strip") == 0 && jstr(n, "content") &&
	    strcmp(jstr(n, "content"), " ") == 0) {
		const cJSON *a = cJSON_GetObjectItemCaseSensitive(n, "start");
		const cJSON *b = cJSON_GetObjectItemCaseSensitive(n, "stop");
		t->dec_strip_start = cJSON_IsNumber(a) ? a->valueint : 0;
		t->dec_strip_stop = cJSON_IsNumber(b) ? b->valueint : 0;
	} else if (strcmp(type, "Metaspace") == 0) {
		/* U+2581 -> ' ', then the first token's leading space goes. */
		const char *ps = jstr(n, "prepend_scheme");
		t->dec_replace = true;
		if (ps == NULL ? jbool(n, "add_prefix_space", true) :
		    strcmp(ps, "never") != 0)
			t->dec_strip_start = 1;
	} else {
		ERR("tokenizer.json: decoder \"%s\" is not supported "
		    "(supported: ByteLevel, ByteFallback, Fuse, Metaspace, "
		    "Replace U+2581 -> ' ', Strip ' ', Sequence)", type);
		return (INFINI_EUNSUPPORTED);
	}
	return (0);
}

/* ------------------------------------------------------------------ */
/* Model and added tokens                                              */

static int
trie_add(struct tok *t, const char *s, size_t n, int32_t id)
{
	uint32_t node = 0;
	if (t->ntnodes == 0) {
		t->captn = 1024;
		t->capte = 1024;
		t->tnodes = malloc(t->captn * sizeof(*t->tnodes));
		t->tedges = malloc(t->capte * sizeof(*t->tedges));
		if (!t->tnodes || !t->tedges)
			return (INFINI_ENOMEM);
		t->tnodes[0] = (struct tok_trie_node){ 0, -1 };
		t->ntnodes = 1;
		t->ntedges = 1;   /* edge 0 means "none" */
	}
	for (size_t i = 0; i < n; i++) {
		uint32_t e = t->tnodes[node].first;
		while (e != 0 && t->tedges[e].byte != (uint8_t)s[i])
			e = t->tedges[e].next;
		if (e == 0) {
			if (t->ntnodes == t->captn) {
				void *p = realloc(t->tnodes, 2 * t->captn *
				    sizeof(*t->tnodes));
				if (p == NULL)
					return (INFINI_ENOMEM);
				t->tnodes = p;
				t->captn *= 2;
			}
			if (t->ntedges == t->capte) {
				void *p = realloc(t->tedges, 2 * t->capte *
				    sizeof(*t->tedges));
				if (p == NULL)
					return (INFINI_ENOMEM);
				t->tedges = p;
				t->capte *= 2;
			}
			e = t->ntedges++;
			t->tedges[e] = (struct tok_trie_edge){
			    t->tnodes[node].first, t->ntnodes, (uint8_t)s[i] };
			t->tnodes[node].first = e;
			t->tnodes[t->ntnodes++] = (struct tok_trie_node){ 0, -1 };
		}
		node = t->tedges[e].node;
	}
	if (t->tnodes[node].id < 0)
		t->tnodes[node].id = id;
	return (0);
}

/* trie_get: the id of the added token whose content is exactly s, or -1. */
static int32_t
trie_get(const struct tok *t, const char *s)
{
	uint32_t node = 0;
	if (t->ntnodes == 0)
		return (-1);
	for (; *s; s++) {
		uint32_t e = t->tnodes[node].first;
		while (e != 0 && t->tedges[e].byte != (uint8_t)*s)
			e = t->tedges[e].next;
		if (e == 0)
			return (-1);
		node = t->tedges[e].node;
	}
	return (t->tnodes[node].id);
}

/* model_id: the model vocabulary's id of token text s, or -1. */
static int32_t
model_id(const struct tok *t, const char *s)
{
	size_t n = strlen(s);
	char stackbuf[256], *buf = n <= sizeof(stackbuf) ? stackbuf : malloc(n);
	long k;
	int32_t id = -1;

	if (!t->byte_level)
		return (tok_strmap_get(&t->vocab, t, s, n));
	if (buf != NULL && (k = unbyte(s, n, buf)) >= 0)
		id = tok_strmap_get(&t->vocab, t, buf, (size_t)k);
	if (buf != stackbuf)
		free(buf);
	return (id);
}

/* set_piece stores id's key and decoded bytes. */
static int
set_piece(struct tok *t, int32_t id, const char *s, size_t n, bool added)
{
	struct tok_piece *pc = &t->pieces[id];
	char stackbuf[256], *buf = n <= sizeof(stackbuf) ? stackbuf : malloc(n);
	long k = -1;
	int rv;

	if (buf == NULL)
		return (INFINI_ENOMEM);
	pc->byte = -1;
	pc->added = added;
	if (t->byte_level && !added)
		k = unbyte(s, n, buf);
	pc->set = true;
	pc->raw = t->byte_level && !added && k < 0;
	if (k >= 0) {
		rv = arena_add(t, buf, (size_t)k, &pc->off);
		pc->len = (uint32_t)k;
	} else {
		rv = arena_add(t, s, n, &pc->off);
		pc->len = (uint32_t)n;
	}
	/* Decoded bytes: byte-level maps each token whose characters are
	 * all in the alphabet (added ones too), others stay as written;
	 * SentencePiece-style vocabularies turn U+2581 into ' '. */
	if (rv == 0 && t->dec_byte_level && k >= 0 && !added) {
		/* The key is the decoded bytes already: share them. */
		pc->doff = pc->off;
		pc->dlen = pc->len;
	} else if (rv == 0 && t->dec_byte_level) {
		if (added)
			k = unbyte(s, n, buf);
		if (k >= 0)
			rv = arena_add(t, buf, (size_t)k, &pc->doff);
		else
			rv = arena_add(t, s, n, &pc->doff);
		pc->dlen = (uint32_t)(k >= 0 ? k : (long)n);
	} else if (rv == 0) {
		size_t d = 0;
		pc->doff = (uint32_t)t->arena_len;
		for (size_t i = 0; i < n && rv == 0;) {
			uint32_t off;
			if (i + 3 <= n && memcmp(s + i, "\xe2\x96\x81", 3) == 0 &&
			    t->dec_replace) {
				rv = arena_add(t, " ", 1, &off);
				i += 3;
				d++;
			} else {
				rv = arena_add(t, s + i, 1, &off);
				i++;
				d++;
			}
		}
		pc->dlen = (uint32_t)d;
		if (t->dec_byte_fallback && n == 6 && memcmp(s, "<0x", 3) == 0 &&
		    s[5] == '>') {
			unsigned v;
			char hex[3] = { s[3], s[4], 0 }, *end;
			v = (unsigned)strtoul(hex, &end, 16);
			if (*end == '\0')
				pc->byte = (int16_t)v;
		}
	}
	if (pc->dlen > t->max_dlen)
		t->max_dlen = pc->dlen;
	if (buf != stackbuf)
		free(buf);
	return (rv);
}

static int
load_model(struct tok *t, const cJSON *model, const cJSON *added,
    char *err, size_t errlen)
{
	const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
	const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
	const cJSON *e;
	const char *type = jstr(model, "type"), *s;
	size_t nvocab = 0, nadded = 0;
	int maxid = -1, rv;
	int32_t max_added = -1;
	char *ka = NULL, *kb = NULL, *kab = NULL;

	if (type == NULL || strcmp(type, "BPE") != 0) {
		ERR("tokenizer.json: model \"%s\" is not supported (supported: "
		    "BPE)", type ? type : "?");
		return (INFINI_EUNSUPPORTED);
	}
	if (((s = jstr(model, "continuing_subword_prefix")) && s[0]) ||
	    ((s = jstr(model, "end_of_word_suffix")) && s[0])) {
		ERR("tokenizer.json: BPE continuing_subword_prefix / "
		    "end_of_word_suffix are not supported");
		return (INFINI_EUNSUPPORTED);
	}
	e = cJSON_GetObjectItemCaseSensitive(model, "dropout");
	if (e != NULL && !cJSON_IsNull(e) && !(cJSON_IsNumber(e) &&
	    e->valuedouble == 0)) {
		ERR("tokenizer.json: BPE dropout is not supported");
		return (INFINI_EUNSUPPORTED);
	}
	if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges)) {
		ERR("tokenizer.json: BPE model without vocab or merges");
		return (INFINI_ECORRUPT);
	}
	t->byte_fallback = jbool(model, "byte_fallback", false);
	t->fuse_unk = jbool(model, "fuse_unk", false);
	t->ignore_merges = jbool(model, "ignore_merges", false);
	cJSON_ArrayForEach(e, vocab) {
		if (!cJSON_IsNumber(e) || e->valuedouble < 0 ||
		    e->valuedouble >= ID_MAX) {
			ERR("tokenizer.json: vocab entry \"%.40s\" has a bad id",
			    e->string);
			return (INFINI_ECORRUPT);
		}
		nvocab++;
		if (e->valueint > maxid)
			maxid = e->valueint;
	}
	cJSON_ArrayForEach(e, added) {
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
		if (!cJSON_IsNumber(id) || id->valuedouble < 0 ||
		    id->valuedouble >= ID_MAX || jstr(e, "content") == NULL) {
			ERR("tokenizer.json: added token without id or content");
			return (INFINI_ECORRUPT);
		}
		nadded++;
	}
	/* Room for every id an added token can get (see below); the real
	 * vocab_size is set once they are known. */
	t->vocab_size = (maxid + 1 > (int)nvocab ? maxid + 1 : (int)nvocab) +
	    (int)nadded;
	if ((t->pieces = calloc((size_t)t->vocab_size, sizeof(*t->pieces)))
	    == NULL || (rv = tok_strmap_init(&t->vocab, nvocab)) != 0)
		return (INFINI_ENOMEM);
	cJSON_ArrayForEach(e, vocab) {
		if ((rv = set_piece(t, e->valueint, e->string,
		    strlen(e->string), false)) != 0)
			return (rv);
		if (!t->pieces[e->valueint].raw)
			tok_strmap_put(&t->vocab, t, e->valueint);
	}
	cJSON_ArrayForEach(e, added) {
		const char *c = jstr(e, "content");
		int32_t id;
		if (jbool(e, "lstrip", false) || jbool(e, "rstrip", false) ||
		    jbool(e, "single_word", false)) {
			ERR("tokenizer.json: added token \"%.60s\": lstrip, "
			    "rstrip and single_word are not supported", c);
			return (INFINI_EUNSUPPORTED);
		}
		if (jbool(e, "normalized", false) && t->nnorm > 0) {
			ERR("tokenizer.json: added token \"%.60s\": normalized "
			    "added tokens with a normalizer are not supported", c);
			return (INFINI_EUNSUPPORTED);
		}
		if (c[0] == '\0')
			continue;
		/* Hugging Face gives an added token the id its content has
		 * already (an earlier added token, then the model vocabulary),
		 * else the next one after the vocabulary and the added tokens
		 * so far, whatever id the file writes: so do we. */
		if ((id = trie_get(t, c)) < 0 && (id = model_id(t, c)) < 0)
			id = max_added >= (int32_t)nvocab ? max_added + 1 :
			    (int32_t)nvocab;
		if (id > max_added)
			max_added = id;
		if (!t->pieces[id].set &&
		    (rv = set_piece(t, id, c, strlen(c), true)) != 0)
			return (rv);
		t->pieces[id].added = true;
		t->pieces[id].special = jbool(e, "special", false);
		if ((rv = trie_add(t, c, strlen(c), id)) != 0)
			return (rv);
	}
	t->vocab_size = maxid > max_added ? maxid + 1 : max_added + 1;
	/* Merges: "a b" strings (older files) or ["a", "b"] pairs. */
	if ((rv = tok_mergemap_init(&t->merges, (size_t)cJSON_GetArraySize(
	    merges))) != 0)
		return (rv);
	uint32_t rank = 0;
	size_t cap = 0;
	cJSON_ArrayForEach(e, merges) {
		const char *a, *b;
		size_t na, nb;
		if (cJSON_IsString(e)) {
			const char *sp = strchr(e->valuestring, ' ');
			if (sp == NULL || strchr(sp + 1, ' ') != NULL)
				goto bad_merge;
			a = e->valuestring;
			na = (size_t)(sp - a);
			b = sp + 1;
			nb = strlen(b);
		} else if (cJSON_GetArraySize(e) == 2 &&
		    cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
		    cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
			a = cJSON_GetArrayItem(e, 0)->valuestring;
			b = cJSON_GetArrayItem(e, 1)->valuestring;
			na = strlen(a);
			nb = strlen(b);
		} else
			goto bad_merge;
		if (na + nb + 1 > cap) {
			cap = (na + nb + 1) * 2;
			free(ka);
			free(kb);
			free(kab);
			ka = malloc(cap);
			kb = malloc(cap);
			kab = malloc(cap);
			if (!ka || !kb || !kab) {
				rv = INFINI_ENOMEM;
				goto out;
			}
		}
		long la = (long)na, lb = (long)nb;
		if (t->byte_level) {
			la = unbyte(a, na, ka);
			lb = unbyte(b, nb, kb);
			if (la < 0 || lb < 0)
				goto bad_merge;
		} else {
			memcpy(ka, a, na);
			memcpy(kb, b, nb);
		}
		memcpy(kab, ka, (size_t)la);
		memcpy(kab + la, kb, (size_t)lb);
		int32_t ia = tok_strmap_get(&t->vocab, t, ka, (size_t)la);
		int32_t ib = tok_strmap_get(&t->vocab, t, kb, (size_t)lb);
		int32_t iab = tok_strmap_get(&t->vocab, t, kab,
		    (size_t)(la + lb));
		if (ia < 0 || ib < 0 || iab < 0)
			goto bad_merge;
		tok_mergemap_put(&t->merges, ia, ib, rank++, iab);
	}
	/* Each byte's own symbol (byte-level), each <0xXX> (byte fallback). */
	for (int b = 0; b < 256; b++) {
		char k[8];
		uint8_t c = (uint8_t)b;
		t->byte_id[b] = tok_strmap_get(&t->vocab, t, &c, 1);
		if (t->byte_level && t->byte_id[b] < 0) {
			ERR("tokenizer.json: the byte-level vocabulary has no "
			    "token for byte 0x%02X", b);
			rv = INFINI_ECORRUPT;
			goto out;
		}
		snprintf(k, sizeof(k), "<0x%02X>", b);
		t->fallback_id[b] = tok_strmap_get(&t->vocab, t, k, 6);
	}
	t->unk = -1;
	if ((s = jstr(model, "unk_token")) != NULL &&
	    (t->unk = model_id(t, s)) < 0) {
		/* Hugging Face fails every encode that needs it. */
		ERR("tokenizer.json: unk_token \"%.60s\" is not in the "
		    "vocabulary", s);
		rv = INFINI_ECORRUPT;
		goto out;
	}
	rv = 0;
	goto out;
bad_merge:
	ERR("tokenizer.json: merge %u (%.80s) is malformed or names tokens "
	    "outside the vocabulary", rank, cJSON_IsString(e) ?
	    e->valuestring : "[...]");
	rv = INFINI_ECORRUPT;
out:
	free(ka);
	free(kb);
	free(kab);
	return (rv);
}

int
tok_hf_load(struct tok *t, const char *json, size_t len, char *err,
    size_t errlen)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	cJSON *root;
	const cJSON *n;
	int rv = 0;

	pthread_once(&once, byte_level_init);
	t->kind = TOK_HF;
	if ((root = cJSON_ParseWithLength(json, len)) == NULL) {
		ERR("tokenizer.json: malformed JSON near byte %zu",
		    cJSON_GetErrorPtr() ? (size_t)(cJSON_GetErrorPtr() - json) :
		    0);
		return (INFINI_ECORRUPT);
	}
	if (!jnull(root, "truncation") || !jnull(root, "padding")) {
		/* Both only matter for batches of fixed length: ignored. */
	}
	n = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
	if (n != NULL && !cJSON_IsNull(n) && (rv = add_norm(t, n, err,
	    errlen)) != 0)
		goto out;
	n = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
	if (n != NULL && !cJSON_IsNull(n) && (rv = add_pre(t, n, err,
	    errlen)) != 0)
		goto out;
	n = cJSON_GetObjectItemCaseSensitive(root, "decoder");
	if (n != NULL && !cJSON_IsNull(n) && (rv = add_dec(t, n, err,
	    errlen)) != 0)
		goto out;
	if ((rv = load_model(t, cJSON_GetObjectItemCaseSensitive(root,
	    "model"), cJSON_GetObjectItemCaseSensitive(root, "added_tokens"),
	    err, errlen)) != 0)
		goto out;
	n = cJSON_GetObjectItemCaseSensitive(root, "post_processor");
	if (n != NULL && !cJSON_IsNull(n) && (rv = add_post(t, n, err,
	    errlen)) != 0)
		goto out;
	for (int k = 0; k < t->npost_pre + t->npost_post; k++) {
		int32_t id = k < t->npost_pre ? t->post_pre[k] :
		    t->post_post[k - t->npost_pre];
		if (id < 0 || id >= t->vocab_size) {
			ERR("tokenizer.json: post_processor id %d is outside "
			    "the vocabulary", id);
			rv = INFINI_ECORRUPT;
			goto out;
		}
	}
out:
	cJSON_Delete(root);
	return (rv);
}

/* tok_hf_token_id returns the id of token text s (added tokens first),
 * or -1. */
int
tok_hf_token_id(const struct tok *t, const char *s)
{
	return (token_id(t, s));
}
