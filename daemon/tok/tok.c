/*
 * tok.c - the tokenizer interface: loading (a model directory or one
 * tokenizer.json), the byte tokenizer, decoding (whole and streaming) and
 * the UTF-8 rules both implementations share.  Hugging Face's encode
 * pipeline is in tok_bpe.c, its file format in tok_hf.c.
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "infini_err.h"
#include "tok_impl.h"

#define ERR(...) do { if (err != NULL) snprintf(err, errlen, __VA_ARGS__); \
	} while (0)

int tok_hf_token_id(const struct tok *t, const char *s);

/* Byte tokenizer defaults (infinid's models): bytes, then BOS, EOS. */
#define BYTES_BOS 256
#define BYTES_EOS 257
#define FILE_MAX ((size_t)1 << 30)

/* ------------------------------------------------------------------ */
/* UTF-8                                                               */

/* Bounds of the second byte after a lead byte (Unicode table 3-7). */
static bool
second_ok(uint8_t lead, uint8_t c)
{
	switch (lead) {
	case 0xe0: return (c >= 0xa0 && c <= 0xbf);
	case 0xed: return (c >= 0x80 && c <= 0x9f);
	case 0xf0: return (c >= 0x90 && c <= 0xbf);
	case 0xf4: return (c >= 0x80 && c <= 0x8f);
	default: return ((c & 0xc0) == 0x80);
	}
}

static int
seq_len(uint8_t c)
{
	if (c < 0x80)
		return (1);
	if (c >= 0xc2 && c <= 0xdf)
		return (2);
	if (c >= 0xe0 && c <= 0xef)
		return (3);
	if (c >= 0xf0 && c <= 0xf4)
		return (4);
	return (0);
}

/* valid_prefix: how many bytes from p (n available) belong to a
 * well-formed start of a character (its maximal subpart). */
static int
valid_prefix(const uint8_t *p, size_t n, int *need)
{
	int l = seq_len(p[0]), k = 1;
	*need = l;
	if (l == 0)
		return (0);
	if (l > 1 && n > 1) {
		if (!second_ok(p[0], p[1]))
			return (1);
		k = 2;
		while (k < l && (size_t)k < n && (p[k] & 0xc0) == 0x80)
			k++;
	}
	return (k);
}

int
tok_utf8_len(const uint8_t *p, size_t n)
{
	int need, k;
	if (n == 0)
		return (0);
	if (p[0] < 0x80)
		return (1);
	k = valid_prefix(p, n, &need);
	return (need > 0 && k == need ? need : 0);
}

size_t
tok_utf8_check(const char *text, size_t len)
{
	const uint8_t *p = (const uint8_t *)text;
	for (size_t i = 0; i < len;) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		int l = tok_utf8_len(p + i, len - i);
		if (l == 0)
			return (i);
		i += (size_t)l;
	}
	return (len);
}

size_t
tok_lossy(const uint8_t *p, size_t n, char *out)
{
	size_t k = 0;
	for (size_t i = 0; i < n;) {
		int need, l = p[i] < 0x80 ? 1 : valid_prefix(p + i, n - i, &need);
		if (p[i] < 0x80 || (need > 0 && l == need)) {
			memcpy(out + k, p + i, (size_t)l);
			k += (size_t)l;
			i += (size_t)l;
		} else {
			memcpy(out + k, "\xef\xbf\xbd", 3);
			k += 3;
			i += l > 0 ? (size_t)l : 1;
		}
	}
	return (k);
}

/* ------------------------------------------------------------------ */
/* Loading                                                             */

static int
read_all(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	char *buf;

	if (f == NULL)
		return (errno == ENOENT ? INFINI_ENOENT : INFINI_EIO);
	if (fstat(fileno(f), &st) != 0 || st.st_size < 0 ||
	    (size_t)st.st_size > FILE_MAX) {
		fclose(f);
		return (INFINI_EIO);
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		fclose(f);
		return (INFINI_ENOMEM);
	}
	if (fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
		free(buf);
		fclose(f);
		return (INFINI_EIO);
	}
	fclose(f);
	buf[st.st_size] = '\0';
	*out = buf;
	*len = (size_t)st.st_size;
	return (0);
}

/* read_json parses dir/name; NULL when missing or malformed (side files
 * are optional: a bad one only loses BOS / EOS, which the caller checks). */
static cJSON *
read_json(const char *dir, const char *name)
{
	char path[4096], *text;
	size_t len;
	cJSON *j;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (read_all(path, &text, &len) != 0)
		return (NULL);
	j = cJSON_ParseWithLength(text, len);
	free(text);
	return (j);
}

static void
add_eos(struct tok *t, int32_t id)
{
	if (id < 0 || id >= t->vocab_size || t->neos == 8)
		return;
	for (int i = 0; i < t->neos; i++)
		if (t->eos[i] == id)
			return;
	t->eos[t->neos++] = id;
}

/* eos_ids adds the ids of key (a number or a list of numbers). */
static void
eos_ids(struct tok *t, const cJSON *j, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key), *e;
	if (cJSON_IsNumber(v))
		add_eos(t, v->valueint);
	else
		cJSON_ArrayForEach(e, v)
			if (cJSON_IsNumber(e))
				add_eos(t, e->valueint);
}

/* named_token: tokenizer_config.json's "eos_token": "..." or {content}. */
static int32_t
named_token(const struct tok *t, const cJSON *j, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
	if (cJSON_IsObject(v))
		v = cJSON_GetObjectItemCaseSensitive(v, "content");
	if (!cJSON_IsString(v) || t->kind != TOK_HF)
		return (-1);
	return (tok_hf_token_id(t, v->valuestring));
}

static void
special_ids(struct tok *t, const char *dir)
{
	cJSON *cfg = read_json(dir, "config.json");
	cJSON *gen = read_json(dir, "generation_config.json");
	cJSON *tc = read_json(dir, "tokenizer_config.json");
	const cJSON *b = cJSON_GetObjectItemCaseSensitive(cfg, "bos_token_id");

	t->bos = cJSON_IsNumber(b) && b->valueint >= 0 &&
	    b->valueint < t->vocab_size ? b->valueint : -1;
	if (t->bos < 0)
		t->bos = named_token(t, tc, "bos_token");
	if (t->bos < 0 && t->kind == TOK_HF && t->npost_pre > 0)
		t->bos = t->post_pre[0];
	eos_ids(t, cfg, "eos_token_id");
	eos_ids(t, gen, "eos_token_id");
	if (t->neos == 0)
		add_eos(t, named_token(t, tc, "eos_token"));
	cJSON_Delete(cfg);
	cJSON_Delete(gen);
	cJSON_Delete(tc);
}

int
tok_load_file(const char *path, struct tok **out, char *err, size_t errlen)
{
	struct tok *t;
	char *text = NULL, dir[4096];
	size_t len;
	int rv;

	if ((rv = read_all(path, &text, &len)) != 0) {
		ERR("%s: %s", path, rv == INFINI_ENOENT ? "no such file" :
		    rv == INFINI_ENOMEM ? "out of memory" : "cannot read");
		return (rv);
	}
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		free(text);
		return (INFINI_ENOMEM);
	}
	rv = tok_hf_load(t, text, len, err, errlen);
	free(text);
	/* The parsed JSON was many times the size of what is kept: give the
	 * freed heap back rather than keep it resident. */
	malloc_trim(0);
	if (rv != 0) {
		tok_free(t);
		return (rv);
	}
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash != NULL)
		*slash = '\0';
	else
		snprintf(dir, sizeof(dir), ".");
	special_ids(t, dir);
	*out = t;
	return (0);
}

int
tok_load_dir(const char *dir, struct tok **out, char *err, size_t errlen)
{
	char path[4096];
	struct stat st;
	cJSON *cfg;
	const cJSON *v;
	struct tok *t;

	snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
	if (stat(path, &st) == 0)
		return (tok_load_file(path, out, err, errlen));
	cfg = read_json(dir, "config.json");
	v = cJSON_GetObjectItemCaseSensitive(cfg, "tokenizer");
	if (!cJSON_IsString(v) || strcmp(v->valuestring, "bytes") != 0) {
		cJSON_Delete(cfg);
		*out = NULL;
		return (0);
	}
	cJSON_Delete(cfg);
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return (INFINI_ENOMEM);
	t->kind = TOK_BYTES;
	t->vocab_size = BYTES_EOS + 1;
	special_ids(t, dir);
	if (t->bos < 0)
		t->bos = BYTES_BOS;
	if (t->neos == 0)
		add_eos(t, BYTES_EOS);
	*out = t;
	return (0);
}

void
tok_free(struct tok *t)
{
	if (t == NULL)
		return;
	for (int i = 0; i < t->nnorm; i++) {
		free(t->norm[i].from);
		free(t->norm[i].to);
	}
	for (int i = 0; i < t->npre; i++) {
		if (t->pre[i].re)
			pcre2_code_free(t->pre[i].re);
		free(t->pre[i].str);
	}
	free(t->norm);
	free(t->pre);
	free(t->arena);
	free(t->pieces);
	tok_strmap_fini(&t->vocab);
	tok_mergemap_fini(&t->merges);
	free(t->tnodes);
	free(t->tedges);
	free(t);
}

int tok_vocab_size(const struct tok *t) { return (t->vocab_size); }
int32_t tok_bos(const struct tok *t) { return (t->bos); }

const char *
tok_kind(const struct tok *t)
{
	return (t->kind == TOK_BYTES ? "bytes" : "hf");
}

bool
tok_is_eos(const struct tok *t, int32_t id)
{
	for (int i = 0; i < t->neos; i++)
		if (t->eos[i] == id)
			return (true);
	return (false);
}

/* ------------------------------------------------------------------ */
/* Encode                                                              */

int
tok_encode(const struct tok *t, const char *text, size_t len,
    unsigned flags, int32_t **ids, size_t *n, char *err, size_t errlen)
{
	int32_t *v;
	size_t k = 0;

	if (t->kind == TOK_HF)
		return (tok_hf_encode(t, text, len, flags, ids, n, err, errlen));
	/* Bytes: one id per byte; BOS first when asked. */
	if ((v = malloc((len + 1) * sizeof(*v))) == NULL)
		return (INFINI_ENOMEM);
	if ((flags & TOK_ADD_SPECIAL) && t->bos >= 0)
		v[k++] = t->bos;
	for (size_t i = 0; i < len; i++)
		v[k++] = (uint8_t)text[i];
	*ids = v;
	*n = k;
	return (0);
}

/* ------------------------------------------------------------------ */
/* Decode                                                              */

bool
tok_buf_add(struct tok_buf *b, const void *p, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		size_t c = b->cap ? b->cap : 256;
		while (c < b->n + n + 1)
			c *= 2;
		char *np = realloc(b->p, c);
		if (np == NULL) {
			b->oom = true;
			return (false);
		}
		b->p = np;
		b->cap = c;
	}
	memcpy(b->p + b->n, p, n);
	b->n += n;
	return (true);
}

int
tok_decode(const struct tok *t, const int32_t *ids, size_t n,
    bool skip_special, char **out, size_t *len)
{
	struct tok_buf o = { 0 }, r = { 0 };
	bool ok = true;

	for (size_t i = 0; i < n; i++)
		if (ids[i] < 0 || ids[i] >= t->vocab_size)
			return (INFINI_ERANGE);
	/* Raw bytes first (r), then the UTF-8 rule of the decoder. */
	for (size_t i = 0; i < n && ok; i++) {
		int32_t id = ids[i];
		if (t->kind == TOK_BYTES) {
			if (id < 256) {
				uint8_t b = (uint8_t)id;
				ok = tok_buf_add(&r, &b, 1);
			}
			continue;
		}
		const struct tok_piece *pc = &t->pieces[id];
		if (skip_special && pc->special)
			continue;
		if (t->dec_byte_level || pc->byte < 0) {
			ok = tok_buf_add(&r, t->arena + pc->doff, pc->dlen);
			continue;
		}
		/* A byte-fallback run: valid UTF-8 as a whole, or one U+FFFD
		 * per byte (Hugging Face's ByteFallback). */
		size_t j = i, at = r.n;
		while (j < n && ok && t->pieces[ids[j]].byte >= 0 &&
		    !(skip_special && t->pieces[ids[j]].special)) {
			uint8_t b = (uint8_t)t->pieces[ids[j++]].byte;
			ok = tok_buf_add(&r, &b, 1);
		}
		i = j - 1;
		if (ok && tok_utf8_check(r.p + at, r.n - at) != r.n - at) {
			size_t nr = r.n - at;
			r.n = at;
			for (size_t k = 0; k < nr && ok; k++)
				ok = tok_buf_add(&r, "\xef\xbf\xbd", 3);
		}
	}
	/* Lossy UTF-8 (byte-level and bytes); SentencePiece-style text is
	 * valid by construction and passes through unchanged. */
	if (ok && r.n > 0) {
		char *buf = malloc(r.n * 3 + 1);
		if ((ok = buf != NULL)) {
			size_t k = tok_lossy((const uint8_t *)r.p, r.n, buf);
			ok = tok_buf_add(&o, buf, k);
			free(buf);
		}
	}
	free(r.p);
	if (ok && o.p == NULL)
		ok = tok_buf_add(&o, "", 0);
	if (!ok) {
		free(o.p);
		return (INFINI_ENOMEM);
	}
	if (t->kind == TOK_HF) {
		size_t s = 0;
		while ((int)s < t->dec_strip_start && s < o.n && o.p[s] == ' ')
			s++;
		memmove(o.p, o.p + s, o.n - s);
		o.n -= s;
		for (int k = 0; k < t->dec_strip_stop && o.n > 0 &&
		    o.p[o.n - 1] == ' '; k++)
			o.n--;
	}
	o.p[o.n] = '\0';
	*out = o.p;
	*len = o.n;
	return (0);
}

/* ------------------------------------------------------------------ */
/* Streaming decode                                                    */

void
tok_stream_init(struct tok_stream *s)
{
	memset(s, 0, sizeof(*s));
}

size_t
tok_stream_room(const struct tok *t)
{
	/* Held bytes plus the piece, each byte at worst one U+FFFD. */
	return ((sizeof(((struct tok_stream *)0)->hold) + t->max_dlen + 1) * 3);
}

size_t
tok_stream_put(const struct tok *t, struct tok_stream *s, int32_t id,
    char *buf)
{
	const uint8_t *p;
	uint8_t b;
	size_t n, k = 0, cut;
	uint8_t tmp[sizeof(s->hold)];

	if (id < 0 || id >= t->vocab_size)
		return (0);
	if (t->kind == TOK_BYTES) {
		if (id >= 256)
			return (0);
		b = (uint8_t)id;
		p = &b;
		n = 1;
	} else {
		const struct tok_piece *pc = &t->pieces[id];
		if (pc->special)
			return (0);
		if (!t->dec_byte_level && pc->byte >= 0) {
			b = (uint8_t)pc->byte;
			p = &b;
			n = 1;
		} else {
			p = (const uint8_t *)t->arena + pc->doff;
			n = pc->dlen;
		}
		/* The decoder's Strip takes up to dec_strip_start spaces off
		 * the start of the whole text, across tokens. */
		while (!s->started && s->nstrip < t->dec_strip_start && n > 0 &&
		    p[0] == ' ') {
			p++;
			n--;
			s->nstrip++;
		}
		if (n > 0 || s->nstrip >= t->dec_strip_start)
			s->started = true;
	}
	if (n == 0)
		return (0);
	/* Held bytes and the new ones: emit all but a trailing incomplete
	 * character, which waits for the next token. */
	size_t tot = (size_t)s->nhold + n;
	uint8_t *all = malloc(tot);
	if (all == NULL)
		return (0);
	memcpy(all, s->hold, (size_t)s->nhold);
	memcpy(all + s->nhold, p, n);
	cut = tot;
	for (size_t back = 1; back <= 3 && back <= tot; back++) {
		int need;
		size_t at = tot - back;
		if ((all[at] & 0xc0) == 0x80)
			continue;
		if (seq_len(all[at]) > (int)back &&
		    valid_prefix(all + at, back, &need) == (int)back)
			cut = at;
		break;
	}
	k = tok_lossy(all, cut, buf);
	s->nhold = (int)(tot - cut);
	memcpy(tmp, all + cut, (size_t)s->nhold);
	memcpy(s->hold, tmp, (size_t)s->nhold);
	free(all);
	return (k);
}

size_t
tok_stream_flush(struct tok_stream *s, char *buf)
{
	size_t k = tok_lossy(s->hold, (size_t)s->nhold, buf);
	s->nhold = 0;
	return (k);
}
