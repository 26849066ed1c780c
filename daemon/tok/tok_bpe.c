/*
 * tok_bpe.c - the Hugging Face encode pipeline: added tokens matched in the
 * raw text (leftmost-longest), each stretch between them normalized and
 * pre-tokenized, each piece merged by the BPE model.
 *
 * The BPE merge loop is Hugging Face's: symbols in a linked list, candidate
 * merges in a min-heap ordered by (rank, position), a popped merge that no
 * longer matches its pair is skipped.  Ranks and merged ids sit in a hash
 * table keyed by the two ids, so a piece of n symbols costs O(n log n).
 * Nothing here writes to the tokenizer: many threads may encode at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>
#include <xxhash.h>

#include "infini_err.h"
#include "tok_impl.h"

#define ERR(...) do { if (err != NULL) snprintf(err, errlen, __VA_ARGS__); \
	} while (0)

uint64_t
tok_hash(const void *p, size_t n)
{
	return (XXH3_64bits(p, n));
}

/* ------------------------------------------------------------------ */
/* Hash tables                                                         */

static uint32_t
pow2_for(size_t n)
{
	uint32_t c = 16;
	while (c < n * 2)
		c <<= 1;
	return (c);
}

int
tok_strmap_init(struct tok_strmap *m, size_t n)
{
	uint32_t c = pow2_for(n);
	m->slot = calloc(c, sizeof(*m->slot));
	m->tag = calloc(c, sizeof(*m->tag));
	m->mask = c - 1;
	if (m->slot == NULL || m->tag == NULL) {
		tok_strmap_fini(m);
		return (INFINI_ENOMEM);
	}
	return (0);
}

void
tok_strmap_fini(struct tok_strmap *m)
{
	free(m->slot);
	free(m->tag);
	m->slot = NULL;
	m->tag = NULL;
}

void
tok_strmap_put(struct tok_strmap *m, const struct tok *t, int32_t id)
{
	const struct tok_piece *pc = &t->pieces[id];
	const char *key = t->arena + pc->off;
	uint64_t h = tok_hash(key, pc->len);
	uint32_t i = (uint32_t)h & m->mask;

	for (; m->slot[i] != 0; i = (i + 1) & m->mask) {
		const struct tok_piece *o = &t->pieces[m->slot[i] - 1];
		if (m->tag[i] == (uint32_t)(h >> 32) && o->len == pc->len &&
		    memcmp(t->arena + o->off, key, pc->len) == 0)
			return;
	}
	m->slot[i] = (uint32_t)id + 1;
	m->tag[i] = (uint32_t)(h >> 32);
}

int32_t
tok_strmap_get(const struct tok_strmap *m, const struct tok *t,
    const void *key, size_t n)
{
	uint64_t h = tok_hash(key, n);
	uint32_t i = (uint32_t)h & m->mask;

	for (; m->slot[i] != 0; i = (i + 1) & m->mask) {
		const struct tok_piece *o = &t->pieces[m->slot[i] - 1];
		if (m->tag[i] == (uint32_t)(h >> 32) && o->len == n &&
		    memcmp(t->arena + o->off, key, n) == 0)
			return ((int32_t)m->slot[i] - 1);
	}
	return (-1);
}

int
tok_mergemap_init(struct tok_mergemap *m, size_t n)
{
	uint32_t c = pow2_for(n);
	if ((m->slot = calloc(c, sizeof(*m->slot))) == NULL)
		return (INFINI_ENOMEM);
	m->mask = c - 1;
	return (0);
}

void
tok_mergemap_fini(struct tok_mergemap *m)
{
	free(m->slot);
	m->slot = NULL;
}

static inline uint32_t
mix64(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	return ((uint32_t)k);
}

void
tok_mergemap_put(struct tok_mergemap *m, int32_t a, int32_t b, uint32_t rank,
    int32_t id)
{
	uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
	uint32_t i = mix64(key) & m->mask;

	for (; m->slot[i].key != 0; i = (i + 1) & m->mask)
		if (m->slot[i].key == key)
			return;   /* the first (lowest) rank wins, as in HF */
	m->slot[i].key = key;
	m->slot[i].rank = rank;
	m->slot[i].id = id;
}

static inline const struct tok_merge *
merge_get(const struct tok_mergemap *m, int32_t a, int32_t b)
{
	uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
	uint32_t i = mix64(key) & m->mask;

	for (; m->slot[i].key != 0; i = (i + 1) & m->mask)
		if (m->slot[i].key == key)
			return (&m->slot[i]);
	return (NULL);
}

/* ------------------------------------------------------------------ */
/* Growing buffers                                                     */

struct ids { int32_t *v; size_t n, cap; bool oom; };

static void
ids_push(struct ids *b, int32_t id)
{
	if (b->n == b->cap) {
		size_t c = b->cap ? b->cap * 2 : 256;
		int32_t *nv = realloc(b->v, c * sizeof(*nv));
		if (nv == NULL) {
			b->oom = true;
			return;
		}
		b->v = nv;
		b->cap = c;
	}
	b->v[b->n++] = id;
}

/* ------------------------------------------------------------------ */
/* BPE                                                                 */

struct sym { int32_t id, prev, next; uint32_t len; };
struct cand { uint32_t rank, pos; int32_t id; };

static inline bool
cand_less(const struct cand *a, const struct cand *b)
{
	return (a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos));
}

static void
heap_push(struct cand *h, size_t *n, struct cand c)
{
	size_t i = (*n)++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!cand_less(&c, &h[p]))
			break;
		h[i] = h[p];
		i = p;
	}
	h[i] = c;
}

static struct cand
heap_pop(struct cand *h, size_t *n)
{
	struct cand top = h[0], last = h[--*n];
	size_t i = 0;
	for (;;) {
		size_t l = 2 * i + 1, s;
		if (l >= *n)
			break;
		s = (l + 1 < *n && cand_less(&h[l + 1], &h[l])) ? l + 1 : l;
		if (!cand_less(&h[s], &last))
			break;
		h[i] = h[s];
		i = s;
	}
	if (*n > 0)
		h[i] = last;
	return (top);
}

static void
try_pair(const struct tok *t, const struct sym *s, int32_t pos,
    struct cand *h, size_t *nh)
{
	int32_t nx = s[pos].next;
	const struct tok_merge *m;
	if (nx < 0)
		return;
	if ((m = merge_get(&t->merges, s[pos].id, s[nx].id)) != NULL)
		heap_push(h, nh, (struct cand){ m->rank, (uint32_t)pos, m->id });
}

/* bpe_piece encodes one pre-token of n bytes. */
static int
bpe_piece(const struct tok *t, const char *p, size_t n, struct ids *out)
{
	struct sym sbuf[128], *s = sbuf;
	struct cand hbuf[3 * 128], *h = hbuf;
	size_t ns = 0, nh = 0;
	int32_t id;

	if (n == 0)
		return (0);
	if (t->ignore_merges &&
	    (id = tok_strmap_get(&t->vocab, t, p, n)) >= 0) {
		ids_push(out, id);
		return (0);
	}
	/* At most one symbol per byte; each merge pops one candidate and
	 * pushes at most two, so the heap never holds more than 2n. */
	if (n > 128) {
		s = malloc(n * sizeof(*s));
		h = malloc(3 * n * sizeof(*h));
		if (s == NULL || h == NULL) {
			free(s == sbuf ? NULL : s);
			free(h == hbuf ? NULL : h);
			return (INFINI_ENOMEM);
		}
	}
	if (t->byte_level) {
		for (size_t i = 0; i < n; i++)
			s[ns++] = (struct sym){ t->byte_id[(uint8_t)p[i]], -1, -1,
			    1 };
	} else {
		int32_t unk_at = -1;   /* the symbol holding a fused unk run */
		for (size_t i = 0; i < n;) {
			int l = tok_utf8_len((const uint8_t *)p + i, n - i);
			if (l == 0)
				l = 1;   /* checked by the caller; stay safe */
			if ((id = tok_strmap_get(&t->vocab, t, p + i,
			    (size_t)l)) >= 0) {
				s[ns++] = (struct sym){ id, -1, -1, (uint32_t)l };
				unk_at = -1;
			} else {
				bool fb = t->byte_fallback;
				for (int k = 0; fb && k < l; k++)
					fb = t->fallback_id[(uint8_t)p[i + k]] >= 0;
				if (fb) {
					for (int k = 0; k < l; k++)
						s[ns++] = (struct sym){
						    t->fallback_id[(uint8_t)p[i + k]],
						    -1, -1, 1 };
					unk_at = -1;
				} else if (t->unk < 0) {
					/* No unk token: Hugging Face drops it. */
				} else if (t->fuse_unk && unk_at >= 0) {
					s[unk_at].len += (uint32_t)l;
				} else {
					unk_at = (int32_t)ns;
					s[ns++] = (struct sym){ t->unk, -1, -1,
					    (uint32_t)l };
				}
			}
			i += (size_t)l;
		}
	}
	for (size_t i = 0; i < ns; i++) {
		s[i].prev = (int32_t)i - 1;
		s[i].next = i + 1 < ns ? (int32_t)i + 1 : -1;
	}
	for (size_t i = 0; i + 1 < ns; i++)
		try_pair(t, s, (int32_t)i, h, &nh);
	while (nh > 0) {
		struct cand c = heap_pop(h, &nh);
		struct sym *a = &s[c.pos];
		const struct tok_merge *m;
		if (a->len == 0 || a->next < 0)
			continue;
		struct sym *b = &s[a->next];
		if ((m = merge_get(&t->merges, a->id, b->id)) == NULL ||
		    m->id != c.id)
			continue;
		a->id = c.id;
		a->len += b->len;
		b->len = 0;
		a->next = b->next;
		if (a->next >= 0)
			s[a->next].prev = (int32_t)c.pos;
		if (a->prev >= 0)
			try_pair(t, s, a->prev, h, &nh);
		try_pair(t, s, (int32_t)c.pos, h, &nh);
	}
	for (int32_t i = ns ? 0 : -1; i >= 0; i = s[i].next)
		ids_push(out, s[i].id);
	if (s != sbuf) {
		free(s);
		free(h);
	}
	return (0);
}

/* ------------------------------------------------------------------ */
/* Pre-tokenizers                                                      */

struct seg { size_t a, b; bool match; };
struct segs { struct seg *v; size_t n, cap; bool oom; };

static void
segs_push(struct segs *g, size_t a, size_t b, bool match)
{
	if (a == b)
		return;
	if (g->n == g->cap) {
		size_t c = g->cap ? g->cap * 2 : 64;
		struct seg *nv = realloc(g->v, c * sizeof(*nv));
		if (nv == NULL) {
			g->oom = true;
			return;
		}
		g->v = nv;
		g->cap = c;
	}
	g->v[g->n++] = (struct seg){ a, b, match };
}

/* find_matches fills g with the matches of step st in p[0..n) and the gaps
 * between them, in order. */
static int
find_matches(const struct tok_pre *st, const char *p, size_t n,
    pcre2_match_data *md, struct segs *g)
{
	size_t at = 0, last = 0;

	g->n = 0;
	if (st->re != NULL) {
		while (at < n) {
			int rc = pcre2_jit_match(st->re, (PCRE2_SPTR)p, n, at,
			    PCRE2_NO_UTF_CHECK, md, NULL);
			if (rc == PCRE2_ERROR_NOMATCH)
				break;
			if (rc < 0)
				return (INFINI_EINTERNAL);
			PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
			if (ov[1] == ov[0]) {   /* empty: step one character */
				int l = tok_utf8_len((const uint8_t *)p + ov[0],
				    n - ov[0]);
				at = ov[0] + (l ? (size_t)l : 1);
				continue;
			}
			segs_push(g, last, ov[0], false);
			segs_push(g, ov[0], ov[1], true);
			at = last = ov[1];
		}
	} else if (st->nstr > 0) {
		const char *q;
		while (at < n && (q = memmem(p + at, n - at, st->str,
		    st->nstr)) != NULL) {
			size_t m = (size_t)(q - p);
			segs_push(g, last, m, false);
			segs_push(g, m, m + st->nstr, true);
			at = last = m + st->nstr;
		}
	}
	segs_push(g, last, n, false);
	return (g->oom ? INFINI_ENOMEM : 0);
}

/* apply_behavior rewrites g's segments into the pieces st keeps. */
static void
apply_behavior(enum tok_split b, struct segs *g)
{
	size_t k = 0;
	bool prev_match = false;

	switch (b) {
	case TS_ISOLATED:
		break;
	case TS_REMOVED:
		for (size_t i = 0; i < g->n; i++)
			if (!g->v[i].match)
				g->v[k++] = g->v[i];
		g->n = k;
		break;
	case TS_MERGED_PREV:
		for (size_t i = 0; i < g->n; i++) {
			if (g->v[i].match && !prev_match && k > 0)
				g->v[k - 1].b = g->v[i].b;
			else
				g->v[k++] = g->v[i];
			prev_match = g->v[i].match;
		}
		g->n = k;
		break;
	case TS_MERGED_NEXT:
		/* Walk from the end: a match absorbs the piece after it. */
		k = g->n;
		for (size_t i = g->n; i-- > 0;) {
			if (g->v[i].match && !prev_match && k < g->n)
				g->v[k].a = g->v[i].a;
			else
				g->v[--k] = g->v[i];
			prev_match = g->v[i].match;
		}
		memmove(g->v, g->v + k, (g->n - k) * sizeof(*g->v));
		g->n -= k;
		break;
	}
}

struct enc {
	const struct tok *t;
	struct ids *out;
	pcre2_match_data *md;
	bool at_start;             /* the piece starts the whole input */
};

static int pre_step(struct enc *e, int k, const char *p, size_t n,
    bool first);

/* split_and_recurse splits p by step k and hands each piece on. */
static int
split_and_recurse(struct enc *e, int k, const char *p, size_t n,
    bool first)
{
	const struct tok_pre *st = &e->t->pre[k];
	struct segs g = { 0 };
	int rv;

	if ((rv = find_matches(st, p, n, e->md, &g)) == 0) {
		apply_behavior(st->behavior, &g);
		for (size_t i = 0; i < g.n && rv == 0; i++)
			rv = pre_step(e, k + 1, p + g.v[i].a,
			    g.v[i].b - g.v[i].a, first && g.v[i].a == 0);
	}
	free(g.v);
	return (rv);
}

static int
pre_step(struct enc *e, int k, const char *p, size_t n, bool first)
{
	const struct tok *t = e->t;
	const struct tok_pre *st;
	struct tok_buf b = { 0 };
	int rv = 0;

	if (n == 0)
		return (0);
	if (k == t->npre)
		return (bpe_piece(t, p, n, e->out));
	st = &t->pre[k];
	switch (st->kind) {
	case TP_REGEX:
	case TP_STRING:
		return (split_and_recurse(e, k, p, n, first));
	case TP_BYTELEVEL:
		if (st->add_prefix_space && p[0] != ' ') {
			tok_buf_add(&b, " ", 1);
			tok_buf_add(&b, p, n);
			if (b.oom)
				return (INFINI_ENOMEM);
			p = b.p;
			n = b.n;
		}
		rv = st->re != NULL ? split_and_recurse(e, k, p, n, first) :
		    pre_step(e, k + 1, p, n, first);
		free(b.p);
		return (rv);
	case TP_METASPACE:
		/* ' ' -> replacement, then maybe a leading replacement. */
		if ((st->add_prefix_space || (st->prepend_first && first &&
		    e->at_start)) && (n < st->nstr ||
		    memcmp(p, st->str, st->nstr) != 0) && p[0] != ' ')
			tok_buf_add(&b, st->str, st->nstr);
		for (size_t i = 0; i < n; i++)
			if (p[i] == ' ')
				tok_buf_add(&b, st->str, st->nstr);
			else
				tok_buf_add(&b, p + i, 1);
		if (b.oom) {
			free(b.p);
			return (INFINI_ENOMEM);
		}
		rv = st->split ? split_and_recurse(e, k, b.p, b.n, first) :
		    pre_step(e, k + 1, b.p, b.n, first);
		free(b.p);
		return (rv);
	}
	return (INFINI_EINTERNAL);
}

/* ------------------------------------------------------------------ */
/* Normalizers                                                         */

static bool
all_ascii(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] >= 0x80)
			return (false);
	return (true);
}

/* normalize runs the normalizer steps over p, leaving the result in *b
 * (b->p may be p itself when nothing changed: then b->cap is 0). */
static int
normalize(const struct tok *t, const char *p, size_t n, struct tok_buf *b)
{
	b->p = (char *)p;
	b->n = n;
	b->cap = 0;
	for (int k = 0; k < t->nnorm; k++) {
		const struct tok_norm *st = &t->norm[k];
		struct tok_buf o = { 0 };
		if (b->n == 0)
			return (0);
		switch (st->kind) {
		case TN_NFC:
		case TN_NFKC: {
			utf8proc_uint8_t *r = NULL;
			utf8proc_ssize_t rl;
			if (all_ascii(b->p, b->n))
				continue;
			rl = utf8proc_map((const utf8proc_uint8_t *)b->p,
			    (utf8proc_ssize_t)b->n, &r, UTF8PROC_STABLE |
			    UTF8PROC_COMPOSE | (st->kind == TN_NFKC ?
			    UTF8PROC_COMPAT : 0));
			if (rl < 0)
				return (rl == UTF8PROC_ERROR_NOMEM ?
				    INFINI_ENOMEM : INFINI_EINVAL);
			tok_buf_add(&o, r, (size_t)rl);
			free(r);
			break;
		}
		case TN_PREPEND:
			tok_buf_add(&o, st->to, st->nto);
			tok_buf_add(&o, b->p, b->n);
			break;
		case TN_REPLACE: {
			size_t at = 0;
			const char *q;
			if (memmem(b->p, b->n, st->from, st->nfrom) == NULL)
				continue;
			while ((q = memmem(b->p + at, b->n - at, st->from,
			    st->nfrom)) != NULL) {
				tok_buf_add(&o, b->p + at, (size_t)(q - b->p) - at);
				tok_buf_add(&o, st->to, st->nto);
				at = (size_t)(q - b->p) + st->nfrom;
			}
			tok_buf_add(&o, b->p + at, b->n - at);
			break;
		}
		}
		if (b->cap)
			free(b->p);
		if (o.oom) {
			free(o.p);
			b->cap = 0;
			return (INFINI_ENOMEM);
		}
		*b = o;
		if (b->p == NULL) {   /* replaced by nothing at all */
			b->p = (char *)"";
			b->cap = 0;
		}
	}
	return (0);
}

/* encode_text encodes a stretch of text holding no added token. */
static int
encode_text(struct enc *e, const char *p, size_t n)
{
	struct tok_buf b;
	int rv;

	if (n == 0)
		return (0);
	if ((rv = normalize(e->t, p, n, &b)) == 0)
		rv = pre_step(e, 0, b.p, b.n, true);
	if (b.cap)
		free(b.p);
	return (rv);
}

/* added_at returns the id of the longest added token starting at p[0]
 * and its length in *len, or -1. */
static int32_t
added_at(const struct tok *t, const char *p, size_t n, size_t *len)
{
	uint32_t node = 0;
	int32_t best = -1;

	if (t->ntnodes == 0)
		return (-1);
	for (size_t i = 0; i < n; i++) {
		uint32_t e = t->tnodes[node].first;
		while (e != 0 && t->tedges[e].byte != (uint8_t)p[i])
			e = t->tedges[e].next;
		if (e == 0)
			break;
		node = t->tedges[e].node;
		if (t->tnodes[node].id >= 0) {
			best = t->tnodes[node].id;
			*len = i + 1;
		}
	}
	return (best);
}

int
tok_hf_encode(const struct tok *t, const char *text, size_t len,
    unsigned flags, int32_t **ids, size_t *n, char *err, size_t errlen)
{
	struct ids out = { 0 };
	struct enc e = { t, &out, NULL, true };
	size_t pos = 0, i = 0, bad;
	int rv = 0;

	if ((bad = tok_utf8_check(text, len)) != len) {
		ERR("text is not valid UTF-8 (byte %zu)", bad);
		return (INFINI_EINVAL);
	}
	if ((e.md = pcre2_match_data_create(4, NULL)) == NULL)
		return (INFINI_ENOMEM);
	if (flags & TOK_ADD_SPECIAL)
		for (int k = 0; k < t->npost_pre; k++)
			ids_push(&out, t->post_pre[k]);
	while (i < len && rv == 0) {
		size_t ml = 0;
		int32_t id = -1;
		/* Only a lead byte may start a token (all are valid UTF-8). */
		if (((uint8_t)text[i] & 0xc0) != 0x80)
			id = added_at(t, text + i, len - i, &ml);
		if (id < 0) {
			i++;
			continue;
		}
		if ((flags & TOK_PLAIN_SPECIAL) && t->pieces[id].special) {
			/* Skipped whole, as Hugging Face skips the match. */
			i += ml;
			continue;
		}
		rv = encode_text(&e, text + pos, i - pos);
		e.at_start = false;
		ids_push(&out, id);
		pos = i = i + ml;
	}
	if (rv == 0)
		rv = encode_text(&e, text + pos, len - pos);
	if (rv == 0 && (flags & TOK_ADD_SPECIAL))
		for (int k = 0; k < t->npost_post; k++)
			ids_push(&out, t->post_post[k]);
	pcre2_match_data_free(e.md);
	if (rv == 0 && out.oom)
		rv = INFINI_ENOMEM;
	if (rv != 0) {
		if (rv == INFINI_EINTERNAL)
			ERR("the pre-tokenizer's regex failed");
		free(out.v);
		return (rv);
	}
	if (out.v == NULL && (out.v = malloc(sizeof(int32_t))) == NULL)
		return (INFINI_ENOMEM);
	*ids = out.v;
	*n = out.n;
	return (0);
}
