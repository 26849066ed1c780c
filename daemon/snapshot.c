/*
 * snapshot.c - encoding, decoding and durable storage of stream snapshots.
 *
 * The byte layout is documented in docs/snapshot-format.md; the constants
 * below are its tables.  Everything is little-endian, written and read byte
 * by byte, so the format does not depend on the host.  Decoding checks, in
 * order: magic and version (so a newer file is refused for being newer, not
 * for looking corrupt), the header checksum, the whole-file trailer
 * checksum, every field and section length against the shape the header
 * declares, and each section's own checksum; only then does it allocate and
 * fill the caller's structures.
 *
 * Files are written like Redis writes its RDB: a temp file in the same
 * directory, fsync, rename over the target, fsync the directory.  All paths
 * are resolved relative to an O_DIRECTORY descriptor, and names are checked
 * so that a snapshot cannot land outside its directory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "infini_err.h"
#include "snapshot.h"

/* ---- format constants (docs/snapshot-format.md) ---- */

#define HDR_SIZE SNAP_HEAD_SIZE     /* v1 header, checksum included */
#define SEC_HDR 24u                /* checksum, type, flags, length */
#define TRAILER 16u                /* "INFSEND\0", file checksum */
#define ENDIAN_MARK 0x01020304u
#define FLAG_KMEM 1u               /* header flag: segment holds km */
#define SEC_OPTIONAL 1u            /* section flag: skip if unknown */

enum snap_sec {
	SEC_MEMORY = 1,            /* per layer, kv head: M [hd][hd], z [hd] */
	SEC_SEGMENT = 2,           /* per layer, kv head: k, v (, km) [rows][hd] */
	SEC_RETIRED = 3,           /* was LOGITS: never written, refused */
	SEC_OWNER = 4,             /* optional: u32 owner UID, u32 zero */
	SEC_HIDDEN = 5,            /* optional: last input's hidden [hidden] */
};
#define OWNER_LEN 8u

/* Header fields: byte offsets of the version 1 header. */
enum hdr_off {
	H_MAGIC = 0,               /* 8 bytes, SNAP_MAGIC */
	H_VERSION = 8,
	H_ENDIAN = 12,
	H_SIZE = 16,               /* HDR_SIZE */
	H_FLAGS = 20,
	H_FINGERPRINT = 24,        /* u64 */
	H_SHAPE = 32,              /* 6 x u32: layers, kv heads, head_dim,
	                            * segment_size, hidden_size, vocab_size */
	H_POSITION = 56,           /* u64 */
	H_SEGMENTS = 64,           /* u64 */
	H_SAMPLE_STEP = 72,        /* u64 */
	H_CREATED = 80,            /* u64, ms */
	H_RESERVED0 = 88,          /* u32 0 (was n_logits, never written) */
	H_NSECTIONS = 92,
	H_IDLEN = 96,
	H_ID = 100,                /* SNAP_ID_MAX bytes, zero-padded */
	H_RESERVED = 228,          /* u32 0 */
	H_SUM = 232,               /* u64: XXH3 of [0, H_SUM) */
};
#define H_NSHAPE 6

/* Section header fields. */
enum sec_off {
	S_SUM = 0,                 /* u64: XXH3 of [S_TYPE, SEC_HDR + len) */
	S_TYPE = 8,
	S_FLAGS = 12,
	S_LEN = 16,                /* u64, payload bytes before padding */
};

_Static_assert(H_ID + SNAP_ID_MAX == H_RESERVED, "stream id field size");
_Static_assert(H_SUM + 8 == HDR_SIZE, "header size");
_Static_assert(S_LEN + 8 == SEC_HDR, "section header size");

static const char trailer_magic[8] = "INFSEND";

/* ---- little-endian helpers ---- */

static void
put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void
put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t
get32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return (v);
}

static uint64_t
get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return (v);
}

/* put_f32s / get_f32s copy n floats as little-endian binary32. */
static uint8_t *
put_f32s(uint8_t *p, const float *f, size_t n)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	memcpy(p, f, n * 4);
#else
	for (size_t i = 0; i < n; i++) {
		uint32_t u;
		memcpy(&u, &f[i], 4);
		put32(p + 4 * i, u);
	}
#endif
	return (p + n * 4);
}

static const uint8_t *
get_f32s(const uint8_t *p, float *f, size_t n)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	memcpy(f, p, n * 4);
#else
	for (size_t i = 0; i < n; i++) {
		uint32_t u = get32(p + 4 * i);
		memcpy(&f[i], &u, 4);
	}
#endif
	return (p + n * 4);
}

static size_t
pad8(size_t n)
{
	return ((n + 7) & ~(size_t)7);
}

/* ---- metadata ---- */

int
snap_meta_init(struct snap_meta *m, const struct eng_model *md,
    const char *stream_id)
{
	const struct eng_config *c = &md->cfg;
	struct timespec ts;
	size_t n = stream_id ? strlen(stream_id) : 0;

	if (n > SNAP_ID_MAX)
		return (INFINI_EINVAL);
	memset(m, 0, sizeof(*m));
	m->version = SNAP_VERSION;
	m->fingerprint = md->fingerprint;
	m->n_layers = c->n_layers;
	m->n_kv_heads = c->n_kv_heads;
	m->head_dim = c->head_dim;
	m->segment_size = c->segment_size;
	m->hidden_size = c->hidden_size;
	m->vocab_size = c->vocab_size;
	if (n > 0)
		memcpy(m->stream_id, stream_id, n);
	clock_gettime(CLOCK_REALTIME, &ts);
	m->created_ms = (uint64_t)ts.tv_sec * 1000 +
	    (uint64_t)ts.tv_nsec / 1000000;
	return (0);
}

/* ---- encoding ---- */

/* sec_put writes a section header at p for a payload already at p+24 and
 * returns the end of the padded section. */
static uint8_t *
sec_put(uint8_t *p, uint32_t type, uint32_t flags, size_t len)
{
	put32(p + S_TYPE, type);
	put32(p + S_FLAGS, flags);
	put64(p + S_LEN, len);
	put64(p + S_SUM, XXH3_64bits(p + S_TYPE, SEC_HDR - S_TYPE + len));
	return (p + SEC_HDR + pad8(len));
}

int
snap_encode(const struct snap_meta *m, const struct eng_stream_state *st,
    uint8_t **buf, size_t *len)
{
	size_t memn, cachen, idlen, memlen, seglen, hidlen, total, lh;
	size_t hd, nr;
	uint8_t *b, *p;
	int nsec;

	idlen = strnlen(m->stream_id, sizeof(m->stream_id));
	if (idlen > SNAP_ID_MAX || m->n_layers != st->n_layers ||
	    m->n_kv_heads != st->n_kv_heads || m->head_dim != st->head_dim ||
	    m->segment_size != st->segment_size || st->segment_size <= 0 ||
	    m->hidden_size <= 0 || m->vocab_size <= 0 || st->pos < 0 ||
	    st->rows != (int)(st->pos % st->segment_size) ||
	    (st->has_kmem && st->km == NULL) ||
	    (st->n_last != 0 && (st->n_last != m->hidden_size ||
	    st->last == NULL)))
		return (INFINI_EINVAL);
	eng_stream_state_floats(st, &memn, &cachen);
	memlen = memn * 4;
	seglen = cachen * 4 * (st->has_kmem ? 3 : 2);
	hidlen = (size_t)st->n_last * 4;
	nsec = 2 + (m->has_owner ? 1 : 0) + (hidlen ? 1 : 0);
	total = HDR_SIZE + SEC_HDR + pad8(memlen) + SEC_HDR + pad8(seglen) +
	    (m->has_owner ? SEC_HDR + OWNER_LEN : 0) +
	    (hidlen ? SEC_HDR + pad8(hidlen) : 0) + TRAILER;
	if ((b = calloc(total, 1)) == NULL)
		return (INFINI_ENOMEM);

	/* Header. */
	const int shape[H_NSHAPE] = { m->n_layers, m->n_kv_heads,
	    m->head_dim, m->segment_size, m->hidden_size, m->vocab_size };
	memcpy(b + H_MAGIC, SNAP_MAGIC, 8);
	put32(b + H_VERSION, SNAP_VERSION);
	put32(b + H_ENDIAN, ENDIAN_MARK);
	put32(b + H_SIZE, HDR_SIZE);
	put32(b + H_FLAGS, st->has_kmem ? FLAG_KMEM : 0);
	put64(b + H_FINGERPRINT, m->fingerprint);
	for (int i = 0; i < H_NSHAPE; i++)
		put32(b + H_SHAPE + 4 * i, (uint32_t)shape[i]);
	put64(b + H_POSITION, (uint64_t)st->pos);
	put64(b + H_SEGMENTS, (uint64_t)(st->pos / st->segment_size));
	put64(b + H_SAMPLE_STEP, st->sample_step);
	put64(b + H_CREATED, m->created_ms);
	put32(b + H_RESERVED0, 0);
	put32(b + H_NSECTIONS, (uint32_t)nsec);
	put32(b + H_IDLEN, (uint32_t)idlen);
	memcpy(b + H_ID, m->stream_id, idlen);
	put32(b + H_RESERVED, 0);
	put64(b + H_SUM, XXH3_64bits(b, H_SUM));
	p = b + HDR_SIZE;

	/* Memory: per layer and kv head, M then z. */
	lh = (size_t)st->n_layers * st->n_kv_heads;
	hd = (size_t)st->head_dim;
	nr = (size_t)st->rows * hd;
	uint8_t *q = p + SEC_HDR;
	for (size_t i = 0; i < lh; i++) {
		q = put_f32s(q, st->M + i * hd * hd, hd * hd);
		q = put_f32s(q, st->z + i * hd, hd);
	}
	p = sec_put(p, SEC_MEMORY, 0, memlen);

	/* The unfinished segment: per layer and kv head, k, v (, km) rows. */
	q = p + SEC_HDR;
	for (size_t i = 0; i < lh && nr > 0; i++) {
		q = put_f32s(q, st->kc + i * nr, nr);
		q = put_f32s(q, st->vc + i * nr, nr);
		if (st->has_kmem)
			q = put_f32s(q, st->km + i * nr, nr);
	}
	p = sec_put(p, SEC_SEGMENT, 0, seglen);

	if (m->has_owner) {
		/* Optional, so version-1 readers that predate it skip it. */
		put32(p + SEC_HDR, m->owner);
		put32(p + SEC_HDR + 4, 0);
		p = sec_put(p, SEC_OWNER, SEC_OPTIONAL, OWNER_LEN);
	}
	if (hidlen) {
		/* Optional too: an older reader restores the stream and only
		 * loses Generate-without-a-prompt right after. */
		put_f32s(p + SEC_HDR, st->last, (size_t)st->n_last);
		p = sec_put(p, SEC_HIDDEN, SEC_OPTIONAL, hidlen);
	}

	/* Trailer: a checksum over everything before it. */
	memcpy(p, trailer_magic, 8);
	put64(p + 8, XXH3_64bits(b, (size_t)(p + 8 - b)));
	*buf = b;
	*len = total;
	return (0);
}

/* ---- decoding ---- */

int
snap_err(int rv)
{
	/* A file of a newer format is not "unimplemented": the request
	 * could succeed against another daemon, or once the file is
	 * converted. */
	return (rv == INFINI_EUNSUPPORTED ? INFINI_ESTATE : rv);
}

/* A section as found by the walk: payload and length. */
struct sec_ref {
	const uint8_t *data;
	size_t len;
	bool seen;
};

/* all_finite: no NaN or infinity among f[0..n). */
static bool
all_finite(const float *f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isfinite(f[i]))
			return (false);
	return (true);
}

/* mul_ok: *r = a * b, false on overflow. */
static bool
mul_ok(size_t a, size_t b, size_t *r)
{
	return (!__builtin_mul_overflow(a, b, r));
}

/* What the header declares that decoding needs past the header. */
struct hdr {
	uint32_t flags, nsec;
	uint64_t pos;
	size_t end;                /* where the trailer starts */
};

#define REFUSE(code, ...)                                                  \
	do {                                                               \
		snprintf(err, errlen, __VA_ARGS__);                        \
		return (code);                                             \
	} while (0)

/* check_frame: magic, version (a newer file is refused for being newer,
 * not for looking corrupt), byte order, header size and the header's and
 * the whole file's checksums. */
static int
check_frame(const uint8_t *buf, size_t len, struct snap_meta *m,
    struct hdr *h, char *err, size_t errlen)
{
	uint32_t version, mark, hsize;

	if (len < 16)
		REFUSE(INFINI_ECORRUPT, "snapshot truncated: %zu bytes", len);
	if (memcmp(buf + H_MAGIC, SNAP_MAGIC, 8) != 0)
		REFUSE(INFINI_EUNSUPPORTED, "not an infinid snapshot (bad "
		    "magic)");
	version = get32(buf + H_VERSION);
	mark = get32(buf + H_ENDIAN);
	if (version > SNAP_VERSION)
		REFUSE(INFINI_EUNSUPPORTED, "snapshot format version %u is "
		    "newer than this infinid reads (%d)", version, SNAP_VERSION);
	if (version < SNAP_VERSION_MIN)
		REFUSE(INFINI_EUNSUPPORTED, "snapshot format version %u is "
		    "older than this infinid reads (%d..%d)", version,
		    SNAP_VERSION_MIN, SNAP_VERSION);
	if (mark == 0x04030201u)
		REFUSE(INFINI_EUNSUPPORTED, "big-endian snapshot");
	if (mark != ENDIAN_MARK)
		REFUSE(INFINI_ECORRUPT, "bad endianness marker %08x", mark);
	/* Version 1 is the only version so far; a migration for an older
	 * version would branch here (docs/snapshot-format.md, Versions). */
	if (len < HDR_SIZE + TRAILER)
		REFUSE(INFINI_ECORRUPT, "snapshot truncated: %zu bytes", len);
	if (get64(buf + H_SUM) != XXH3_64bits(buf, H_SUM))
		REFUSE(INFINI_ECORRUPT, "header checksum mismatch");
	hsize = get32(buf + H_SIZE);
	if (hsize != HDR_SIZE)
		REFUSE(INFINI_ECORRUPT, "header size %u, want %u", hsize,
		    HDR_SIZE);
	h->end = len - TRAILER;
	if (memcmp(buf + h->end, trailer_magic, 8) != 0)
		REFUSE(INFINI_ECORRUPT, "no trailer: truncated or corrupt");
	if (get64(buf + h->end + 8) != XXH3_64bits(buf, h->end + 8))
		REFUSE(INFINI_ECORRUPT, "file checksum mismatch");
	m->version = version;
	return (0);
}

/* read_header: the header's fields into m and h, each checked alone and
 * against the others. */
static int
read_header(const uint8_t *buf, struct snap_meta *m, struct hdr *h,
    char *err, size_t errlen)
{
	uint32_t dims[H_NSHAPE], idlen;
	uint64_t segs;

	h->flags = get32(buf + H_FLAGS);
	m->fingerprint = get64(buf + H_FINGERPRINT);
	for (int i = 0; i < H_NSHAPE; i++) {
		dims[i] = get32(buf + H_SHAPE + 4 * i);
		if (dims[i] == 0 || dims[i] > INT_MAX)
			REFUSE(INFINI_ECORRUPT, "bad model shape field %d: %u",
			    i, dims[i]);
	}
	m->n_layers = (int)dims[0];
	m->n_kv_heads = (int)dims[1];
	m->head_dim = (int)dims[2];
	m->segment_size = (int)dims[3];
	m->hidden_size = (int)dims[4];
	m->vocab_size = (int)dims[5];
	h->pos = get64(buf + H_POSITION);
	segs = get64(buf + H_SEGMENTS);
	m->created_ms = get64(buf + H_CREATED);
	h->nsec = get32(buf + H_NSECTIONS);
	idlen = get32(buf + H_IDLEN);
	if ((h->flags & ~FLAG_KMEM) != 0)
		REFUSE(INFINI_ECORRUPT, "unknown header flags %08x", h->flags);
	if (h->pos > (uint64_t)ENG_POS_MAX)
		REFUSE(INFINI_ECORRUPT, "position %llu is past the largest a "
		    "stream can reach (%lld)", (unsigned long long)h->pos,
		    (long long)ENG_POS_MAX);
	if (segs != h->pos / (uint64_t)m->segment_size)
		REFUSE(INFINI_ECORRUPT, "position %llu and %llu segments "
		    "disagree", (unsigned long long)h->pos,
		    (unsigned long long)segs);
	if (get32(buf + H_RESERVED0) != 0)
		REFUSE(INFINI_ECORRUPT, "nonzero reserved header field at %d "
		    "(a last-logits count: never part of a written snapshot)",
		    H_RESERVED0);
	if (idlen > SNAP_ID_MAX || memchr(buf + H_ID, 0, idlen) != NULL)
		REFUSE(INFINI_ECORRUPT, "bad stream id (length %u)", idlen);
	for (size_t t = H_ID + idlen; t < H_SUM; t++)
		if (buf[t] != 0)
			REFUSE(INFINI_ECORRUPT, "nonzero reserved header byte "
			    "%zu", t);
	memcpy(m->stream_id, buf + H_ID, idlen);
	return (0);
}

/*
 * walk_sections finds the sections between the header and the trailer:
 * MEMORY, SEGMENT, then OWNER and HIDDEN when present, in that
 * order, each with its checksum, zero padding and only the flags its type
 * carries; an unknown section marked optional is skipped.  sec[type]
 * receives each known one.
 */
static int
walk_sections(const uint8_t *buf, const struct hdr *h, struct sec_ref *sec,
    char *err, size_t errlen)
{
	size_t p = HDR_SIZE, end = h->end;
	int last = 0;

	for (uint32_t i = 0; i < h->nsec; i++) {
		uint32_t type, sflags;
		uint64_t slen;
		if (end - p < SEC_HDR)
			REFUSE(INFINI_ECORRUPT, "section %u truncated", i);
		type = get32(buf + p + S_TYPE);
		sflags = get32(buf + p + S_FLAGS);
		slen = get64(buf + p + S_LEN);
		if (slen > end - p - SEC_HDR ||
		    pad8((size_t)slen) > end - p - SEC_HDR)
			REFUSE(INFINI_ECORRUPT, "section %u (type %u) length "
			    "%llu runs past the end", i, type,
			    (unsigned long long)slen);
		if (get64(buf + p + S_SUM) != XXH3_64bits(buf + p + S_TYPE,
		    SEC_HDR - S_TYPE + slen))
			REFUSE(INFINI_ECORRUPT, "section %u (type %u) checksum "
			    "mismatch", i, type);
		for (size_t t = p + SEC_HDR + slen; t < p + SEC_HDR +
		    pad8(slen); t++)
			if (buf[t] != 0)
				REFUSE(INFINI_ECORRUPT, "nonzero section "
				    "padding");
		if (type == SEC_RETIRED)
			REFUSE(INFINI_ECORRUPT, "section %u has the retired "
			    "type %u (last logits), which no snapshot holds", i,
			    type);
		if (type >= SEC_MEMORY && type <= SEC_HIDDEN) {
			/* Known sections carry only the flags this code
			 * writes: none, or SEC_OPTIONAL on the optional
			 * ones. */
			uint32_t known = type >= SEC_OWNER ? SEC_OPTIONAL : 0;
			if ((sflags & ~known) != 0)
				REFUSE(INFINI_ECORRUPT, "section %u (type %u) "
				    "has unknown flags %08x", i, type, sflags);
			if ((int)type <= last)
				REFUSE(INFINI_ECORRUPT, "section type %u out "
				    "of order", type);
			last = (int)type;
			sec[type] = (struct sec_ref){ buf + p + SEC_HDR,
			    (size_t)slen, true };
		} else if (!(sflags & SEC_OPTIONAL)) {
			REFUSE(INFINI_EUNSUPPORTED, "unknown required section "
			    "type %u", type);
		}
		p += SEC_HDR + pad8((size_t)slen);
	}
	if (p != end)
		REFUSE(INFINI_ECORRUPT, "%zu stray bytes after the sections",
		    end - p);
	return (0);
}

/* check_lengths: every section's length is the one the shape and the
 * position imply (an overflow means it cannot match); reads the owner. */
static int
check_lengths(const struct hdr *h, struct snap_meta *m,
    const struct sec_ref *sec, char *err, size_t errlen)
{
	size_t lh = (size_t)m->n_layers * (size_t)m->n_kv_heads;
	size_t hd = (size_t)m->head_dim, rows, t, memlen, seglen;

	if (!sec[SEC_MEMORY].seen || !sec[SEC_SEGMENT].seen)
		REFUSE(INFINI_ECORRUPT, "missing or unexpected section");
	rows = (size_t)(h->pos % (uint64_t)m->segment_size);
	if (!mul_ok(lh, hd, &t) || !mul_ok(t, hd + 1, &t) ||
	    !mul_ok(t, 4, &memlen) || memlen != sec[SEC_MEMORY].len)
		REFUSE(INFINI_ECORRUPT, "memory section is %zu bytes, the "
		    "shape needs another size", sec[SEC_MEMORY].len);
	if (!mul_ok(lh, hd, &t) || !mul_ok(t, rows, &t) ||
	    !mul_ok(t, (h->flags & FLAG_KMEM) ? 12 : 8, &seglen) ||
	    seglen != sec[SEC_SEGMENT].len)
		REFUSE(INFINI_ECORRUPT, "segment section is %zu bytes, the "
		    "position and shape need another size",
		    sec[SEC_SEGMENT].len);
	if (sec[SEC_OWNER].seen) {
		if (sec[SEC_OWNER].len != OWNER_LEN ||
		    get32(sec[SEC_OWNER].data + 4) != 0)
			REFUSE(INFINI_ECORRUPT, "bad owner section");
		m->has_owner = true;
		m->owner = get32(sec[SEC_OWNER].data);
	}
	if (sec[SEC_HIDDEN].seen &&
	    sec[SEC_HIDDEN].len != (size_t)m->hidden_size * 4)
		REFUSE(INFINI_ECORRUPT, "hidden section is %zu bytes, not "
		    "hidden_size floats", sec[SEC_HIDDEN].len);
	return (0);
}

/* fill_state allocates st and copies the floats in, refusing NaN and
 * infinity anywhere.  On error the caller frees st. */
static int
fill_state(const uint8_t *buf, const struct hdr *h, struct snap_meta *m,
    const struct sec_ref *sec, struct eng_stream_state *st, char *err,
    size_t errlen)
{
	size_t lh = (size_t)m->n_layers * (size_t)m->n_kv_heads;
	size_t hd = (size_t)m->head_dim, nr;
	const uint8_t *q;
	int rv;

	if ((rv = eng_stream_state_init(st, m->n_layers, m->n_kv_heads,
	    m->head_dim, m->segment_size, (h->flags & FLAG_KMEM) != 0,
	    (int64_t)h->pos)) != 0)
		REFUSE(rv == INFINI_EINVAL ? INFINI_ECORRUPT : rv, "cannot "
		    "allocate the stream state");
	st->sample_step = get64(buf + H_SAMPLE_STEP);
	nr = (size_t)st->rows * hd;
	q = sec[SEC_MEMORY].data;
	for (size_t i = 0; i < lh; i++) {
		q = get_f32s(q, st->M + i * hd * hd, hd * hd);
		q = get_f32s(q, st->z + i * hd, hd);
	}
	q = sec[SEC_SEGMENT].data;
	for (size_t i = 0; i < lh && nr > 0; i++) {
		q = get_f32s(q, st->kc + i * nr, nr);
		q = get_f32s(q, st->vc + i * nr, nr);
		if (st->has_kmem)
			q = get_f32s(q, st->km + i * nr, nr);
	}
	if (!all_finite(st->M, lh * hd * hd) || !all_finite(st->z, lh * hd))
		REFUSE(INFINI_ECORRUPT, "the memory (M or z) holds NaN or "
		    "infinity");
	if (!all_finite(st->kc, lh * nr) || !all_finite(st->vc, lh * nr) ||
	    (st->has_kmem && !all_finite(st->km, lh * nr)))
		REFUSE(INFINI_ECORRUPT, "the segment's K/V rows hold NaN or "
		    "infinity");
	if (sec[SEC_HIDDEN].seen) {
		if ((st->last = malloc(sec[SEC_HIDDEN].len)) == NULL)
			REFUSE(INFINI_ENOMEM, "cannot allocate the hidden "
			    "state");
		st->n_last = m->hidden_size;
		get_f32s(sec[SEC_HIDDEN].data, st->last, (size_t)st->n_last);
		if (!all_finite(st->last, (size_t)st->n_last))
			REFUSE(INFINI_ECORRUPT, "the last hidden state holds "
			    "NaN or infinity");
	}
	return (0);
}

int
snap_decode(const uint8_t *buf, size_t len, uint64_t expected_fp,
    struct snap_meta *meta, struct eng_stream_state *out, char *err,
    size_t errlen)
{
	struct snap_meta m;
	struct eng_stream_state st;
	struct sec_ref sec[SEC_HIDDEN + 1] = { { 0 } };
	struct hdr h = { 0 };
	char dummy[8];
	int rv;

	if (err == NULL) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	memset(&m, 0, sizeof(m));
	memset(&st, 0, sizeof(st));
	if ((rv = check_frame(buf, len, &m, &h, err, errlen)) != 0 ||
	    (rv = read_header(buf, &m, &h, err, errlen)) != 0 ||
	    (rv = walk_sections(buf, &h, sec, err, errlen)) != 0 ||
	    (rv = check_lengths(&h, &m, sec, err, errlen)) != 0)
		goto fail;
	if (expected_fp != SNAP_ANY_MODEL && m.fingerprint != expected_fp) {
		snprintf(err, errlen, "snapshot is of another model "
		    "(fingerprint %016llx, serving %016llx)",
		    (unsigned long long)m.fingerprint,
		    (unsigned long long)expected_fp);
		rv = INFINI_ESTATE;
		goto fail;
	}
	if ((rv = fill_state(buf, &h, &m, sec, &st, err, errlen)) != 0)
		goto fail;
	*meta = m;
	*out = st;
	return (0);
fail:
	eng_stream_state_fini(&st);
	return (rv);
}

int
snap_check_model(const struct snap_meta *m,
    const struct eng_stream_state *st, const struct eng_model *md, char *err,
    size_t errlen)
{
	const struct eng_config *c = &md->cfg;
	static const char *const what[] = { "n_layers", "n_kv_heads",
	    "head_dim", "segment_size", "hidden_size", "vocab_size" };
	const int got[] = { m->n_layers, m->n_kv_heads, m->head_dim,
	    m->segment_size, m->hidden_size, m->vocab_size };
	const int want[] = { c->n_layers, c->n_kv_heads, c->head_dim,
	    c->segment_size, c->hidden_size, c->vocab_size };

	if (m->fingerprint != md->fingerprint) {
		snprintf(err, errlen, "snapshot is of another model (fingerprint "
		    "%016llx, serving %016llx)",
		    (unsigned long long)m->fingerprint,
		    (unsigned long long)md->fingerprint);
		return (INFINI_ESTATE);
	}
	for (int i = 0; i < 6; i++)
		if (got[i] != want[i]) {
			snprintf(err, errlen, "snapshot's %s is %d, the model's "
			    "%d", what[i], got[i], want[i]);
			return (INFINI_ESTATE);
		}
	if (st->has_kmem != (c->rope && !c->memory_rope)) {
		snprintf(err, errlen, "snapshot %s unrotated keys, the model "
		    "needs %s", st->has_kmem ? "holds" : "lacks",
		    st->has_kmem ? "none" : "them");
		return (INFINI_ESTATE);
	}
	return (0);
}

int
snap_decode_model(const uint8_t *buf, size_t len, const struct eng_model *md,
    struct snap_meta *meta, struct eng_stream_state *st, char *err,
    size_t errlen)
{
	struct snap_meta m;
	struct eng_stream_state s;
	int rv;

	if ((rv = snap_decode(buf, len, md->fingerprint, &m, &s, err,
	    errlen)) != 0)
		return (rv);
	if ((rv = snap_check_model(&m, &s, md, err, errlen)) != 0) {
		eng_stream_state_fini(&s);
		return (rv);
	}
	*meta = m;
	*st = s;
	return (0);
}

size_t
snap_max_size(const struct eng_model *md)
{
	const struct eng_config *c = &md->cfg;
	size_t lh = (size_t)c->n_layers * c->n_kv_heads;
	size_t hd = (size_t)c->head_dim, N = (size_t)c->segment_size;

	/* Every section at its largest: a segment one row short of full,
	 * with unrotated keys, the owner and the hidden state. */
	return (HDR_SIZE + SEC_HDR + pad8(lh * hd * (hd + 1) * 4) +
	    SEC_HDR + pad8(lh * (N - 1) * hd * 12) + SEC_HDR + OWNER_LEN +
	    SEC_HDR + pad8((size_t)c->hidden_size * 4) + TRAILER);
}

/* ---- files ---- */

static int fault_n = -1, fault_err;

void
snap_fault(int nth, int err)
{
	fault_n = nth;
	fault_err = err;
}

bool
snap_fault_pending(void)
{
	return (fault_n >= 0);
}

/* fault_fire: should this file operation fail (errno set)? */
static bool
fault_fire(void)
{
	if (fault_n < 0 || fault_n-- > 0)
		return (false);
	errno = fault_err;
	return (true);
}

static int
f_openat(int dfd, const char *path, int flags, mode_t mode)
{
	return (fault_fire() ? -1 : openat(dfd, path, flags, mode));
}

static ssize_t
f_write(int fd, const void *b, size_t n)
{
	return (fault_fire() ? -1 : write(fd, b, n));
}

static ssize_t
f_read(int fd, void *b, size_t n)
{
	return (fault_fire() ? -1 : read(fd, b, n));
}

static int
f_fsync(int fd)
{
	return (fault_fire() ? -1 : fsync(fd));
}

/* f_close always releases fd; a fault only changes the result. */
static int
f_close(int fd)
{
	int rv = close(fd);
	if (fault_fire())
		return (-1);
	return (rv);
}

static int
f_renameat(int dfd, const char *from, const char *to)
{
	return (fault_fire() ? -1 : renameat(dfd, from, dfd, to));
}

bool
snap_name_ok(const char *name)
{
	size_t n;

	if (name == NULL || name[0] == '\0' || name[0] == '.')
		return (false);
	for (n = 0; name[n] != '\0'; n++) {
		char c = name[n];
		if (n >= SNAP_NAME_MAX)
			return (false);
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		    c == ':' || c == '-'))
			return (false);
	}
	return (true);
}

/* map_errno turns a file error into an INFINI_E* code. */
static int
map_errno(int e)
{
	switch (e) {
	case ENOSPC:
	case EDQUOT:
		return (INFINI_EFULL);
	case EACCES:
	case EPERM:
	case EROFS:
		return (INFINI_EPERM);
	case ENOENT:
	case ENOTDIR:
		return (INFINI_ENOENT);
	case ENOMEM:
		return (INFINI_ENOMEM);
	default:
		return (INFINI_EIO);
	}
}

/* io_fail records "snapshot 'NAME': step: strerror" and returns the mapped
 * code.  The message never names the directory: it goes back to clients,
 * who have no business knowing the server's paths (callers that log add
 * the directory themselves). */
static int
io_fail(char *err, size_t errlen, const char *step, const char *name, int e)
{
	if (err != NULL)
		snprintf(err, errlen, "snapshot '%s': %s: %s", name ? name : "",
		    step, strerror(e));
	return (map_errno(e));
}

static int
open_dir(const char *dir, char *err, size_t errlen, int *dfd)
{
	if ((*dfd = f_openat(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC,
	    0)) < 0) {
		int e = errno;
		if (err != NULL)
			snprintf(err, errlen, "snapshot: cannot open the "
			    "snapshot directory: %s", strerror(e));
		return (map_errno(e));
	}
	return (0);
}

static int
write_file(const char *dir, const char *name, const uint8_t *buf,
    size_t len, char *err, size_t errlen)
{
	static atomic_uint seq;
	char tmp[SNAP_NAME_MAX + 64];
	int dfd = -1, fd = -1, rv, e;
	bool made = false;

	if (!snap_name_ok(name)) {
		if (err != NULL)
			snprintf(err, errlen, "snapshot: bad name (1-%d of "
			    "[A-Za-z0-9._:-], not starting with '.')",
			    SNAP_NAME_MAX);
		return (INFINI_EINVAL);
	}
	if ((rv = open_dir(dir, err, errlen, &dfd)) != 0)
		return (rv);
	/* The temp name starts with '.', which no snapshot name may. */
	for (int tries = 0; fd < 0; tries++) {
		snprintf(tmp, sizeof(tmp), ".%s.tmp.%ld.%u", name,
		    (long)getpid(), atomic_fetch_add(&seq, 1));
		fd = f_openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		    0600);
		if (fd < 0 && (errno != EEXIST || tries >= 100)) {
			rv = io_fail(err, errlen, "create a temporary file",
			    name, errno);
			goto fail;
		}
	}
	made = true;
	for (size_t off = 0; off < len;) {
		size_t n = len - off > (1u << 20) ? (1u << 20) : len - off;
		ssize_t w = f_write(fd, buf + off, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			rv = io_fail(err, errlen, "write", name,
			    w < 0 ? errno : EIO);
			goto fail;
		}
		off += (size_t)w;
	}
	if (f_fsync(fd) != 0) {
		rv = io_fail(err, errlen, "fsync", name, errno);
		goto fail;
	}
	e = f_close(fd) != 0 ? errno : 0;
	fd = -1;
	if (e != 0) {
		rv = io_fail(err, errlen, "close", name, e);
		goto fail;
	}
	if (f_renameat(dfd, tmp, name) != 0) {
		rv = io_fail(err, errlen, "rename into place", name, errno);
		goto fail;
	}
	made = false;
	/* The new name is in place; make it survive a crash.  EINVAL: the
	 * file system cannot sync directories at all. */
	if (f_fsync(dfd) != 0 && errno != EINVAL) {
		rv = io_fail(err, errlen, "fsync the directory (snapshot "
		    "renamed, durability unknown)", name, errno);
		goto fail;
	}
	close(dfd);
	return (0);
fail:
	if (fd >= 0)
		close(fd);
	if (made)
		unlinkat(dfd, tmp, 0);
	close(dfd);
	return (rv);
}

/*
 * open_regular opens dfd/name for reading without following a symlink and
 * without blocking (a FIFO or a device opens at once and is then refused),
 * and checks it is a regular file of at most max bytes.  0 with *fd and *sb
 * set, or an error with err set (no path in it).
 */
static int
open_regular(int dfd, const char *name, size_t max, int *fd, struct stat *sb,
    char *err, size_t errlen)
{
	int e;

	if ((*fd = f_openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_NOCTTY | O_CLOEXEC, 0)) < 0) {
		e = errno;
		if (e == ELOOP) {
			if (err != NULL)
				snprintf(err, errlen, "snapshot '%s' is a "
				    "symbolic link", name);
			return (INFINI_EINVAL);
		}
		if (e == ENOENT) {
			if (err != NULL)
				snprintf(err, errlen, "no snapshot '%s'", name);
			return (INFINI_ENOENT);
		}
		return (io_fail(err, errlen, "open", name, e));
	}
	if (fstat(*fd, sb) != 0) {
		e = errno;
		close(*fd);
		*fd = -1;
		return (io_fail(err, errlen, "stat", name, e));
	}
	if (!S_ISREG(sb->st_mode)) {
		if (err != NULL)
			snprintf(err, errlen, "snapshot '%s' is not a regular "
			    "file", name);
		close(*fd);
		*fd = -1;
		return (INFINI_EINVAL);
	}
	if ((uint64_t)sb->st_size > (uint64_t)max) {
		if (err != NULL)
			snprintf(err, errlen, "snapshot '%s' is %lld bytes, more "
			    "than any snapshot of this model (%zu)", name,
			    (long long)sb->st_size, max);
		close(*fd);
		*fd = -1;
		return (INFINI_ECORRUPT);
	}
	return (0);
}

/* open_snapshot opens snapshot name of dir for reading: a regular file
 * (not a link) of at most max bytes, as *fd with its *sb. */
static int
open_snapshot(const char *dir, const char *name, size_t max, int *fd,
    struct stat *sb, char *err, size_t errlen)
{
	int dfd, rv;

	*fd = -1;
	if (!snap_name_ok(name)) {
		if (err != NULL)
			snprintf(err, errlen, "snapshot: bad name");
		return (INFINI_EINVAL);
	}
	if ((rv = open_dir(dir, err, errlen, &dfd)) != 0)
		return (rv);
	rv = open_regular(dfd, name, max, fd, sb, err, errlen);
	close(dfd);
	return (rv);
}

/* Files written, their bytes and failed writes, for the daemon's metrics:
 * atomics, as spills, autosnapshots and Snapshot calls may write at once. */
static atomic_uint_fast64_t n_writes, n_bytes, n_failures;

int
snap_write_file(const char *dir, const char *name, const uint8_t *buf,
    size_t len, char *err, size_t errlen)
{
	int rv = write_file(dir, name, buf, len, err, errlen);

	if (rv == 0) {
		atomic_fetch_add_explicit(&n_writes, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&n_bytes, len, memory_order_relaxed);
	} else {
		atomic_fetch_add_explicit(&n_failures, 1, memory_order_relaxed);
	}
	return (rv);
}

void
snap_counters(uint64_t *writes, uint64_t *bytes, uint64_t *failures)
{
	*writes = atomic_load_explicit(&n_writes, memory_order_relaxed);
	*bytes = atomic_load_explicit(&n_bytes, memory_order_relaxed);
	*failures = atomic_load_explicit(&n_failures, memory_order_relaxed);
}

int
snap_read_file(const char *dir, const char *name, uint8_t **buf,
    size_t *len, char *err, size_t errlen)
{
	return (snap_read_file_max(dir, name, SIZE_MAX, buf, len, err, errlen));
}

int
snap_read_file_max(const char *dir, const char *name, size_t max,
    uint8_t **buf, size_t *len, char *err, size_t errlen)
{
	struct stat sb;
	uint8_t *b = NULL;
	size_t got = 0;
	int fd = -1, rv;

	if ((rv = open_snapshot(dir, name, max, &fd, &sb, err, errlen)) != 0)
		return (rv);
	if ((b = malloc(sb.st_size > 0 ? (size_t)sb.st_size : 1)) == NULL) {
		rv = INFINI_ENOMEM;
		goto fail;
	}
	while (got < (size_t)sb.st_size) {
		ssize_t r = f_read(fd, b + got, (size_t)sb.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rv = io_fail(err, errlen, "read", name, errno);
			goto fail;
		}
		if (r == 0)
			break;          /* shrank under us: decode will tell */
		got += (size_t)r;
	}
	close(fd);
	*buf = b;
	*len = got;
	return (0);
fail:
	free(b);
	close(fd);
	return (rv);
}

/* pread_all reads n bytes at off; false on error or a short file. */
static bool
pread_all(int fd, void *b, size_t n, uint64_t off)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = pread(fd, (uint8_t *)b + got, n - got,
		    (off_t)(off + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return (false);
		got += (size_t)r;
	}
	return (true);
}

int
snap_info_head(const uint8_t *h, size_t hlen, uint64_t bytes,
    struct snap_info *out)
{
	uint32_t version, idlen;

	if (hlen < HDR_SIZE || memcmp(h + H_MAGIC, SNAP_MAGIC, 8) != 0 ||
	    (version = get32(h + H_VERSION)) > SNAP_VERSION ||
	    version < SNAP_VERSION_MIN || get32(h + H_ENDIAN) != ENDIAN_MARK ||
	    get64(h + H_SUM) != XXH3_64bits(h, H_SUM) ||
	    (idlen = get32(h + H_IDLEN)) > SNAP_ID_MAX)
		return (INFINI_ECORRUPT);
	memset(out, 0, sizeof(*out));
	out->bytes = bytes;
	out->position = get64(h + H_POSITION);
	out->created_ms = get64(h + H_CREATED);
	memcpy(out->stream_id, h + H_ID, idlen);
	out->stream_id[idlen] = '\0';
	return (0);
}

int
snap_stat_file(const char *dir, const char *name, size_t max,
    struct snap_info *out, char *err, size_t errlen)
{
	struct snap_info in;
	struct stat sb;
	uint8_t h[HDR_SIZE], sh[SEC_HDR + OWNER_LEN];
	uint64_t off, end;
	uint32_t nsec;
	int fd = -1, rv;

	memset(&in, 0, sizeof(in));
	if ((rv = open_snapshot(dir, name, max, &fd, &sb, err, errlen)) != 0)
		return (rv);
	rv = INFINI_ECORRUPT;
	if ((uint64_t)sb.st_size < HDR_SIZE + TRAILER ||
	    !pread_all(fd, h, HDR_SIZE, 0) ||
	    snap_info_head(h, HDR_SIZE, (uint64_t)sb.st_size, &in) != 0) {
		if (err != NULL)
			snprintf(err, errlen, "snapshot '%s' has no valid "
			    "header", name);
		goto out;
	}
	/* The owner section, found by walking the section headers; its
	 * checksum is verified (it decides who may replace the file). */
	nsec = get32(h + H_NSECTIONS);
	end = in.bytes - TRAILER;
	off = HDR_SIZE;
	for (uint32_t i = 0; i < nsec && off + SEC_HDR <= end; i++) {
		uint64_t slen;
		if (!pread_all(fd, sh, SEC_HDR, off))
			break;
		slen = get64(sh + S_LEN);
		if (slen > end - off - SEC_HDR)
			break;
		if (get32(sh + S_TYPE) == SEC_OWNER) {
			if (slen == OWNER_LEN &&
			    pread_all(fd, sh + SEC_HDR, OWNER_LEN,
			    off + SEC_HDR) &&
			    get64(sh + S_SUM) == XXH3_64bits(sh + S_TYPE,
			    SEC_HDR - S_TYPE + OWNER_LEN)) {
				in.has_owner = true;
				in.owner = get32(sh + SEC_HDR);
			} else {
				if (err != NULL)
					snprintf(err, errlen, "snapshot '%s' "
					    "has a damaged owner section",
					    name);
				goto out;
			}
			break;
		}
		off += SEC_HDR + pad8((size_t)slen);
	}
	rv = 0;
	*out = in;
out:
	close(fd);
	return (rv);
}

/* temp_name_ok: is e a temp file name that snap_write_file makes,
 * ".NAME.tmp.PID.N"? */
static bool
temp_name_ok(const char *e)
{
	char name[SNAP_NAME_MAX + 1];
	const char *p, *q, *t;
	size_t n = strlen(e);

	if (n < 2 || e[0] != '.')
		return (false);
	/* N, then PID, from the end: digits after the last two dots. */
	if ((p = strrchr(e, '.')) == NULL || p[1] == '\0' ||
	    strspn(p + 1, "0123456789") != strlen(p + 1))
		return (false);
	for (q = p - 1; q > e && *q != '.'; q--)
		;
	if (q <= e || q + 1 == p || strspn(q + 1, "0123456789") !=
	    (size_t)(p - q - 1))
		return (false);
	if ((size_t)(q - e) < 5 || memcmp(q - 4, ".tmp", 4) != 0)
		return (false);
	t = q - 4;
	if ((size_t)(t - e - 1) > SNAP_NAME_MAX || t - e - 1 < 1)
		return (false);
	memcpy(name, e + 1, (size_t)(t - e - 1));
	name[t - e - 1] = '\0';
	return (snap_name_ok(name));
}

int
snap_clean_temps(const char *dir, int *removed)
{
	struct dirent *de;
	struct stat sb;
	DIR *dp;
	int dfd, n = 0;

	*removed = 0;
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) < 0)
		return (map_errno(errno));
	if ((dp = fdopendir(dfd)) == NULL) {
		int e = errno;
		close(dfd);
		return (map_errno(e));
	}
	while ((de = readdir(dp)) != NULL)
		if (temp_name_ok(de->d_name) &&
		    fstatat(dfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(sb.st_mode) && unlinkat(dfd, de->d_name, 0) == 0)
			n++;
	closedir(dp);
	*removed = n;
	return (0);
}
