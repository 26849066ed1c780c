/*
 * pbjson.c - protobuf-c messages to and from cJSON, driven by the message
 * descriptors, so the HTTP gateway's plain JSON endpoints accept and return
 * exactly the fields of infini.proto (proto3 JSON names: the .proto field
 * names; enums by name or number; bytes in base64) without a hand-written
 * converter per method.  Unknown fields, wrong types and two members of one
 * oneof are refused with the field's name.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pbjson.h"

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *
pbj_base64(const uint8_t *p, size_t n)
{
	char *o = malloc(4 * ((n + 2) / 3) + 1), *q = o;

	if (o == NULL)
		return (NULL);
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		*q++ = b64[v >> 18 & 63];
		*q++ = b64[v >> 12 & 63];
		*q++ = i + 1 < n ? b64[v >> 6 & 63] : '=';
		*q++ = i + 2 < n ? b64[v & 63] : '=';
	}
	*q = '\0';
	return (o);
}

/* unbase64 decodes s into a malloc'd buffer; NULL when s is not base64. */
static uint8_t *
unbase64(const char *s, size_t *len)
{
	size_t n = strlen(s), k = 0;
	uint8_t *o = malloc(n / 4 * 3 + 3);
	uint32_t v = 0;
	int bits = 0;

	if (o == NULL)
		return (NULL);
	for (size_t i = 0; i < n; i++) {
		const char *c;
		if (s[i] == '=')
			break;
		if ((c = strchr(b64, s[i])) == NULL || s[i] == '\0') {
			free(o);
			return (NULL);
		}
		v = v << 6 | (uint32_t)(c - b64);
		if ((bits += 6) >= 8) {
			bits -= 8;
			o[k++] = (uint8_t)(v >> bits);
		}
	}
	*len = k;
	return (o);
}

static void
fail(struct pbj_err *e, const char *field, const char *fmt, const char *what)
{
	snprintf(e->param, sizeof(e->param), "%s", field);
	snprintf(e->msg, sizeof(e->msg), fmt, field, what);
}

static int
enum_value(const ProtobufCEnumDescriptor *ed, const cJSON *v, int *out)
{
	size_t pl = strlen(ed->short_name);

	if (cJSON_IsNumber(v)) {
		if (protobuf_c_enum_descriptor_get_value(ed, v->valueint) == NULL ||
		    v->valuedouble != (double)v->valueint)
			return (-1);
		*out = v->valueint;
		return (0);
	}
	if (!cJSON_IsString(v))
		return (-1);
	for (unsigned i = 0; i < ed->n_values; i++) {
		const char *nm = ed->values[i].name;
		/* OUTPUT_MEAN may be written "mean" */
		if (strcasecmp(nm, v->valuestring) == 0 ||
		    (strncasecmp(nm, ed->short_name, pl) == 0 && nm[pl] == '_' &&
		    strcasecmp(nm + pl + 1, v->valuestring) == 0)) {
			*out = ed->values[i].value;
			return (0);
		}
	}
	return (-1);
}

static size_t
elem_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64: case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_DOUBLE:
		return (8);
	case PROTOBUF_C_TYPE_STRING: case PROTOBUF_C_TYPE_MESSAGE:
		return (sizeof(void *));
	case PROTOBUF_C_TYPE_BYTES:
		return (sizeof(ProtobufCBinaryData));
	default:
		return (4);
	}
}

/* set_value stores JSON v as one value of field f at p. */
static int
set_value(const ProtobufCFieldDescriptor *f, void *p, const cJSON *v,
    struct pbj_err *e)
{
	double x = v->valuedouble;
	bool integral = cJSON_IsNumber(v) && isfinite(x) && x == floor(x);

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		if (!integral || x < -2147483648.0 || x > 2147483647.0)
			goto type;
		*(int32_t *)p = (int32_t)x;
		return (0);
	case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
		if (!integral || x < 0 || x > 4294967295.0)
			goto type;
		*(uint32_t *)p = (uint32_t)x;
		return (0);
	case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		if (!integral || fabs(x) > 9007199254740992.0)
			goto type;
		*(int64_t *)p = (int64_t)x;
		return (0);
	case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
		if (cJSON_IsString(v) && v->valuestring[0] >= '0' &&
		    v->valuestring[0] <= '9') {
			char *end;
			errno = 0;
			*(uint64_t *)p = strtoull(v->valuestring, &end, 10);
			if (*end != '\0' || errno != 0)
				goto type;
			return (0);
		}
		if (!integral || x < 0 || x > 9007199254740992.0)
			goto type;
		*(uint64_t *)p = (uint64_t)x;
		return (0);
	case PROTOBUF_C_TYPE_FLOAT:
		if (!cJSON_IsNumber(v))
			goto type;
		*(float *)p = (float)x;
		return (0);
	case PROTOBUF_C_TYPE_DOUBLE:
		if (!cJSON_IsNumber(v))
			goto type;
		*(double *)p = x;
		return (0);
	case PROTOBUF_C_TYPE_BOOL:
		if (!cJSON_IsBool(v))
			goto type;
		*(protobuf_c_boolean *)p = cJSON_IsTrue(v);
		return (0);
	case PROTOBUF_C_TYPE_ENUM:
		if (enum_value(f->descriptor, v, (int *)p) != 0) {
			fail(e, f->name, "'%s' is not a value of %s",
			    ((const ProtobufCEnumDescriptor *)f->descriptor)->name);
			return (-1);
		}
		return (0);
	case PROTOBUF_C_TYPE_STRING:
		if (!cJSON_IsString(v))
			goto type;
		if ((*(char **)p = strdup(v->valuestring)) == NULL)
			goto nomem;
		return (0);
	case PROTOBUF_C_TYPE_BYTES: {
		ProtobufCBinaryData *b = p;
		if (!cJSON_IsString(v))
			goto type;
		if ((b->data = unbase64(v->valuestring, &b->len)) == NULL) {
			fail(e, f->name, "'%s' must be %s", "base64");
			return (-1);
		}
		return (0);
	}
	case PROTOBUF_C_TYPE_MESSAGE:
		if (!cJSON_IsObject(v))
			goto type;
		return (pbj_from_json(f->descriptor, v, (ProtobufCMessage **)p, e));
	}
type:
	fail(e, f->name, "'%s' has the wrong type (%s expected)",
	    f->type == PROTOBUF_C_TYPE_STRING ? "a string" :
	    f->type == PROTOBUF_C_TYPE_BOOL ? "a boolean" :
	    f->type == PROTOBUF_C_TYPE_MESSAGE ? "an object" :
	    f->type == PROTOBUF_C_TYPE_FLOAT || f->type == PROTOBUF_C_TYPE_DOUBLE ?
	    "a number" : "an integer in range");
	return (-1);
nomem:
	fail(e, f->name, "'%s': %s", "out of memory");
	return (-1);
}

int
pbj_from_json(const ProtobufCMessageDescriptor *md, const cJSON *obj,
    ProtobufCMessage **out, struct pbj_err *e)
{
	ProtobufCMessage *m;
	const cJSON *v;

	if (!cJSON_IsObject(obj)) {
		snprintf(e->msg, sizeof(e->msg), "expected a JSON object for %s",
		    md->short_name);
		e->param[0] = '\0';
		return (-1);
	}
	if ((m = calloc(1, md->sizeof_message)) == NULL) {
		snprintf(e->msg, sizeof(e->msg), "out of memory");
		return (-1);
	}
	md->message_init(m);
	cJSON_ArrayForEach(v, obj) {
		const ProtobufCFieldDescriptor *f =
		    protobuf_c_message_descriptor_get_field_by_name(md, v->string);
		uint8_t *base = (uint8_t *)m;

		if (f == NULL) {
			fail(e, v->string, "unknown field '%s' in %s", md->short_name);
			goto fail;
		}
		if (cJSON_IsNull(v))
			continue;
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			uint32_t *cs = (uint32_t *)(base + f->quantifier_offset);
			if (*cs != 0) {
				fail(e, v->string, "'%s' and another member of its "
				    "oneof are both set%s", "");
				goto fail;
			}
			*cs = f->id;
		}
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = (size_t)cJSON_GetArraySize(v), i = 0, es;
			const cJSON *x;
			void *arr;

			if (!cJSON_IsArray(v)) {
				fail(e, f->name, "'%s' must be %s", "an array");
				goto fail;
			}
			es = elem_size(f->type);
			if ((arr = calloc(n ? n : 1, es)) == NULL) {
				fail(e, f->name, "'%s': %s", "out of memory");
				goto fail;
			}
			*(void **)(base + f->offset) = arr;
			cJSON_ArrayForEach(x, v) {
				if (set_value(f, (uint8_t *)arr + i * es, x, e) != 0) {
					*(size_t *)(base + f->quantifier_offset) = i;
					goto fail;
				}
				i++;
			}
			*(size_t *)(base + f->quantifier_offset) = n;
		} else if (set_value(f, base + f->offset, v, e) != 0) {
			goto fail;
		}
	}
	*out = m;
	return (0);
fail:
	protobuf_c_message_free_unpacked(m, NULL);
	return (-1);
}

cJSON *
pbj_float(float x)
{
	char s[32];

	if (!isfinite(x))
		return (cJSON_CreateNull());
	/* Nine significant digits give the float back exactly. */
	snprintf(s, sizeof(s), "%.9g", x);
	return (cJSON_CreateRaw(s));
}

static cJSON *
value_json(const ProtobufCFieldDescriptor *f, const void *p)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		return (cJSON_CreateNumber(*(const int32_t *)p));
	case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
		return (cJSON_CreateNumber(*(const uint32_t *)p));
	case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		return (cJSON_CreateNumber((double)*(const int64_t *)p));
	case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64: {
		/* Past 2^53 a JSON number loses digits: a string, as proto3's
		 * JSON mapping writes every 64-bit integer. */
		uint64_t v = *(const uint64_t *)p;
		char s[24];
		if (v <= (1ull << 53))
			return (cJSON_CreateNumber((double)v));
		snprintf(s, sizeof(s), "%llu", (unsigned long long)v);
		return (cJSON_CreateString(s));
	}
	case PROTOBUF_C_TYPE_FLOAT:
		return (pbj_float(*(const float *)p));
	case PROTOBUF_C_TYPE_DOUBLE:
		return (cJSON_CreateNumber(*(const double *)p));
	case PROTOBUF_C_TYPE_BOOL:
		return (cJSON_CreateBool(*(const protobuf_c_boolean *)p));
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(
		    f->descriptor, *(const int *)p);
		return (ev ? cJSON_CreateString(ev->name) :
		    cJSON_CreateNumber(*(const int *)p));
	}
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(char *const *)p;
		return (cJSON_CreateString(s ? s : ""));
	}
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *b = p;
		char *s = pbj_base64(b->data, b->len);
		cJSON *j = s ? cJSON_CreateString(s) : NULL;
		free(s);
		return (j);
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
		return (sub ? pbj_to_json(sub) : cJSON_CreateNull());
	}
	}
	return (NULL);
}

cJSON *
pbj_to_json(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *md = m->descriptor;
	const uint8_t *base = (const uint8_t *)m;
	cJSON *o = cJSON_CreateObject();

	for (unsigned i = 0; o != NULL && i < md->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &md->fields[i];
		cJSON *j;

		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(const uint32_t *)(base + f->quantifier_offset) != f->id)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + f->quantifier_offset);
			const uint8_t *arr = *(const uint8_t *const *)(base +
			    f->offset);
			size_t es = elem_size(f->type);

			if ((j = cJSON_CreateArray()) == NULL)
				goto fail;
			for (size_t k = 0; k < n; k++) {
				cJSON *x = value_json(f, arr + k * es);
				if (x == NULL || !cJSON_AddItemToArray(j, x)) {
					cJSON_Delete(x);
					cJSON_Delete(j);
					goto fail;
				}
			}
		} else if ((j = value_json(f, base + f->offset)) == NULL) {
			goto fail;
		}
		if (!cJSON_AddItemToObject(o, f->name, j)) {
			cJSON_Delete(j);
			goto fail;
		}
	}
	return (o);
fail:
	cJSON_Delete(o);
	return (NULL);
}
