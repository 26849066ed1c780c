/*
 * wire.c - envelope packing, the bounded unpack allocator and shared checks.
 */
#include <float.h>
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

bool
wire_valid_id(const char *id)
{
	size_t n = 0;

	if (id == NULL)
		return (false);
	for (; id[n] != '\0'; n++) {
		char c = id[n];
		if (n >= WIRE_ID_MAX)
			return (false);
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
		    c == '-'))
			return (false);
	}
	return (n > 0);
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

uint8_t *
wire_pack_reply(uint64_t call_id, int code, const char *msg,
    const ProtobufCMessage *body, size_t *len)
{
	Infini__V1__Reply r = INFINI__V1__REPLY__INIT;
	Infini__V1__Status st = INFINI__V1__STATUS__INIT;
	uint8_t *b, *out;
	size_t blen;

	if ((b = pack_body(code == 0 ? body : NULL, &blen)) == NULL)
		return (NULL);
	st.code = code;
	st.message = (char *)(msg ? msg : "");
	r.call_id = call_id;
	r.status = &st;
	r.body.data = b;
	r.body.len = blen;
	*len = infini__v1__reply__get_packed_size(&r);
	if ((out = malloc(*len)) != NULL)
		infini__v1__reply__pack(&r, out);
	free(b);
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

ProtobufCMessage *
wire_unpack(const ProtobufCMessageDescriptor *d, struct wire_alloc *a,
    size_t len, const uint8_t *data)
{
	ProtobufCMessage *m = protobuf_c_message_unpack(d, &a->pa, len, data);

	if (m != NULL && has_field0(m)) {
		protobuf_c_message_free_unpacked(m, &a->pa);
		return (NULL);
	}
	return (m);
}

bool
wire_check_sampling(float temperature, uint32_t top_k, float top_p,
    char *err, size_t errlen)
{
	/* Written so that NaN fails every test. */
	if (!(temperature >= 0.0f && temperature <= FLT_MAX)) {
		snprintf(err, errlen, "sampling.temperature %g is out of range: "
		    "give a finite value >= 0 (0: greedy)", (double)temperature);
		return (false);
	}
	if (top_k > (uint32_t)INT32_MAX) {
		snprintf(err, errlen, "sampling.top_k %lld is out of range: give "
		    "0 (off) or a count in [1, %d]", (long long)(int32_t)top_k,
		    INT32_MAX);
		return (false);
	}
	if (!(top_p >= 0.0f && top_p <= 1.0f)) {
		snprintf(err, errlen, "sampling.top_p %g is out of range: give a "
		    "value in (0, 1], or 0 for off", (double)top_p);
		return (false);
	}
	return (true);
}
