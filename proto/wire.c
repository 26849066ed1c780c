/*
 * wire.c - envelope packing, the bounded unpack allocator and shared checks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

/* Each block carries its size in front so free can return it to the
 * budget. */
static void *
balloc(void *data, size_t size)
{
	struct wire_alloc *a = data;
	size_t *p;

	if (size > a->budget - a->used || size + sizeof(size_t) < size)
		return (NULL);
	if ((p = malloc(size + sizeof(size_t))) == NULL)
		return (NULL);
	p[0] = size;
	a->used += size;
	return (p + 1);
}

static void
bfree(void *data, void *ptr)
{
	struct wire_alloc *a = data;
	size_t *p = ptr;

	if (p == NULL)
		return;
	a->used -= p[-1];
	free(p - 1);
}

void
wire_alloc_init(struct wire_alloc *a, size_t budget)
{
	a->pa.alloc = balloc;
	a->pa.free = bfree;
	a->pa.allocator_data = a;
	a->budget = budget;
	a->used = 0;
}

const ProtobufCMethodDescriptor *
wire_method(int m)
{
	if (m < 1 || (unsigned)m > infini__v1__infini__descriptor.n_methods)
		return (NULL);
	return (&infini__v1__infini__descriptor.methods[m - 1]);
}

static uint8_t *
pack_body(const ProtobufCMessage *body, size_t *len)
{
	uint8_t *buf;

	*len = body ? protobuf_c_message_get_packed_size(body) : 0;
	if ((buf = malloc(*len ? *len : 1)) == NULL)
		return (NULL);
	if (body != NULL)
		protobuf_c_message_pack(body, buf);
	return (buf);
}

/* The tag of Reply.body: field 3, length-delimited. */
#define REPLY_BODY_TAG ((3u << 3) | 2u)

static size_t
varint_len(size_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return (n);
}

void
wire_reply_init(struct wire_reply *p, uint64_t call_id, int code,
    const char *msg, const ProtobufCMessage *body)
{
	infini__v1__reply__init(&p->r);
	infini__v1__status__init(&p->st);
	p->st.code = code;
	p->st.message = (char *)(msg ? msg : "");
	p->r.call_id = call_id;
	p->r.status = &p->st;
	p->body = code == 0 ? body : NULL;
	p->blen = p->body ? protobuf_c_message_get_packed_size(p->body) : 0;
	/* An empty bytes field is not written (proto3), so neither is an
	 * empty body. */
	if (p->blen == 0)
		p->body = NULL;
	p->head = infini__v1__reply__get_packed_size(&p->r);
	p->len = p->head + (p->body ? 1 + varint_len(p->blen) + p->blen : 0);
}

void
wire_reply_redirect(struct wire_reply *p, const char *url)
{
	p->st.redirect = (char *)url;
	p->head = infini__v1__reply__get_packed_size(&p->r);
	p->len = p->head + (p->body ? 1 + varint_len(p->blen) + p->blen : 0);
}

void
wire_reply_pack(const struct wire_reply *p, uint8_t *out)
{
	size_t v = p->blen;

	infini__v1__reply__pack(&p->r, out);
	if (p->body == NULL)
		return;
	out += p->head;
	*out++ = REPLY_BODY_TAG;
	while (v >= 0x80) {
		*out++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*out++ = (uint8_t)v;
	protobuf_c_message_pack(p->body, out);
}

uint8_t *
wire_pack_reply(uint64_t call_id, int code, const char *msg,
    const ProtobufCMessage *body, size_t *len)
{
	struct wire_reply p;
	uint8_t *out;

	wire_reply_init(&p, call_id, code, msg, body);
	*len = p.len;
	if ((out = malloc(p.len ? p.len : 1)) != NULL)
		wire_reply_pack(&p, out);
	return (out);
}

uint8_t *
wire_pack_request(int method, uint64_t call_id, const ProtobufCMessage *body,
    size_t *len)
{
	Infini__V1__Request q = INFINI__V1__REQUEST__INIT;
	uint8_t *b, *out;
	size_t blen;

	if ((b = pack_body(body, &blen)) == NULL)
		return (NULL);
	q.version = WIRE_VERSION;
	q.method = method;
	q.call_id = call_id;
	q.body.data = b;
	q.body.len = blen;
	*len = infini__v1__request__get_packed_size(&q);
	if ((out = malloc(*len ? *len : 1)) != NULL)
		infini__v1__request__pack(&q, out);
	free(b);
	return (out);
}

const char *
wire_code_name(int code)
{
	const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
	    &infini__v1__code__descriptor, code);
	return (v ? v->name : "UNKNOWN");
}

/* has_field0: does m, or a message inside it, carry a field numbered 0? */
static bool
has_field0(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;

	for (unsigned i = 0; i < m->n_unknown_fields; i++)
		if (m->unknown_fields[i].tag == 0)
			return (true);
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *at = (const char *)m + f->offset;
		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)((const char *)m +
			    f->quantifier_offset);
			ProtobufCMessage *const *v =
			    *(ProtobufCMessage *const *const *)at;
			for (size_t k = 0; k < n; k++)
				if (v[k] != NULL && has_field0(v[k]))
					return (true);
		} else {
			const ProtobufCMessage *sub =
			    *(const ProtobufCMessage *const *)at;
			/* A oneof member's pointer is only valid when the
			 * oneof holds it. */
			if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
			    *(const uint32_t *)((const char *)m +
			    f->quantifier_offset) != f->id)
				continue;
			if (sub != NULL && has_field0(sub))
				return (true);
		}
	}
	return (false);
}

/* varint reads a base-128 varint at *p (below end); false when cut. */
static bool
varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	*v = 0;
	for (int shift = 0; *p < end && shift < 64; shift += 7) {
		uint8_t b = *(*p)++;
		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return (true);
	}
	return (false);
}

const char *
wire_nul_field(const ProtobufCMessageDescriptor *d, size_t len,
    const uint8_t *data)
{
	const uint8_t *p, *end;

	if (len == 0)
		return (NULL);   /* an empty body (data may be NULL) */
	p = data;
	end = data + len;
	while (p < end) {
		uint64_t key, n;
		const ProtobufCFieldDescriptor *f;
		const char *bad;
		if (!varint(&p, end, &key))
			return (NULL);
		switch (key & 7) {
		case 0:
			if (!varint(&p, end, &n))
				return (NULL);
			continue;
		case 1:
			p += (size_t)(end - p) < 8 ? (size_t)(end - p) : 8;
			continue;
		case 5:
			p += (size_t)(end - p) < 4 ? (size_t)(end - p) : 4;
			continue;
		case 2:
			break;
		default:
			return (NULL);   /* groups: unpack decides */
		}
		if (!varint(&p, end, &n) || n > (uint64_t)(end - p))
			return (NULL);
		f = key >> 3 <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(
		    d, (unsigned)(key >> 3)) : NULL;
		if (f != NULL && f->type == PROTOBUF_C_TYPE_STRING &&
		    memchr(p, 0, (size_t)n) != NULL)
			return (f->name);
		if (f != NULL && f->type == PROTOBUF_C_TYPE_MESSAGE &&
		    (bad = wire_nul_field(f->descriptor, (size_t)n, p)) != NULL)
			return (bad);
		p += n;
	}
	return (NULL);
}

ProtobufCMessage *
wire_unpack(const ProtobufCMessageDescriptor *d, struct wire_alloc *a,
    size_t len, const uint8_t *data)
{
	ProtobufCMessage *m = protobuf_c_message_unpack(d, &a->pa, len, data);

	if (m != NULL && (has_field0(m) || wire_nul_field(d, len, data))) {
		protobuf_c_message_free_unpacked(m, &a->pa);
		return (NULL);
	}
	return (m);
}
