/*
 * pbjson.h - protobuf-c messages to and from JSON (cJSON) by descriptor,
 * for the HTTP gateway's plain JSON endpoints (see docs/protocol.md).
 */
#ifndef INFINI_PBJSON_H
#define INFINI_PBJSON_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <protobuf-c/protobuf-c.h>

/* Why a conversion failed: a message, and the offending field ("" if none). */
struct pbj_err {
	char msg[256];
	char param[64];
};

/* pbj_from_json builds a message of type md from the JSON object obj.
 * Every part is malloc'd: free it with protobuf_c_message_free_unpacked(m,
 * NULL).  Returns 0, or -1 with e set (unknown field, wrong type, bad enum
 * name, two members of one oneof, out of memory). */
int pbj_from_json(const ProtobufCMessageDescriptor *md, const cJSON *obj,
    ProtobufCMessage **out, struct pbj_err *e);

/* pbj_to_json renders m with every field (proto3 defaults included,
 * oneof members only when set).  Returns a new object or NULL (no memory). */
cJSON *pbj_to_json(const ProtobufCMessage *m);

/* pbj_float renders a float with the digits it has (null if not finite). */
cJSON *pbj_float(float x);

/* pbj_base64 encodes n bytes; returns a malloc'd string or NULL. */
char *pbj_base64(const uint8_t *p, size_t n);

#endif /* INFINI_PBJSON_H */
