/*
 * wire.h - the wire format shared by infinid and libinfini: the generated
 * protobuf-c messages (infini.pb-c.h), the envelope, a bounded allocator
 * for unpacking untrusted bytes, and the checks both sides apply.
 *
 * Nothing here does I/O; the daemon's server and the client library move
 * the packed bytes over NNG.
 */
#ifndef WIRE_H
#define WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ids.h"
#include "infini.pb-c.h"

#define WIRE_VERSION 1

/* Largest request or reply the two sides exchange by default. */
#define WIRE_MAX_MSG (64u << 20)

/*
 * A ProtobufCAllocator that refuses to hand out more than `budget` bytes in
 * total, so a hostile message cannot make unpacking allocate without bound:
 * protobuf_c_message_unpack then returns NULL cleanly.
 */
struct wire_alloc {
	ProtobufCAllocator pa;
	size_t budget;
	size_t used;
};

/* wire_alloc_init prepares a with a budget in bytes. */
void wire_alloc_init(struct wire_alloc *a, size_t budget);

/*
 * wire_unpack unpacks len bytes of data as a message of type d, allocating
 * from a, and also refuses what libprotobuf-c lets through but no encoder
 * writes: a field numbered 0 at any depth.  (libprotobuf-c 1.4 refuses tag
 * 0 written as one byte but accepts it written as a longer varint, keeping
 * it as an unknown field that no longer unpacks once packed again), and a
 * string field holding a NUL byte (the C string would end there, so
 * "victim\0junk" would read as "victim").  Returns
 * the message (free with protobuf_c_message_free_unpacked and a) or NULL
 * when the bytes are malformed or a's budget runs out.
 */
ProtobufCMessage *wire_unpack(const ProtobufCMessageDescriptor *d,
    struct wire_alloc *a, size_t len, const uint8_t *data);

/*
 * wire_method returns the service method descriptor for a Method value, or
 * NULL when m is outside the service (the index is range-checked here
 * because protobuf-c only asserts it).
 */
const ProtobufCMethodDescriptor *wire_method(int m);

/*
 * wire_nul_field returns the name of the first string field, at any depth
 * of the len bytes of a message of type d, whose bytes hold a NUL, or NULL
 * when there is none (or the bytes do not parse: unpacking reports that).
 */
const char *wire_nul_field(const ProtobufCMessageDescriptor *d, size_t len,
    const uint8_t *data);

/*
 * A Reply envelope to pack in place: wire_reply_init sizes it (len, the
 * bytes wire_reply_pack writes), so the caller can pack it straight into
 * the buffer it sends (an NNG message) instead of into a copy of a copy.
 * The body (NULL: none; only sent when code is 0) is packed last, as
 * field 3, by protobuf-c directly into that buffer: the bytes are those
 * protobuf-c would give for the whole Reply.  The struct points into
 * itself: do not copy it.
 */
struct wire_reply {
	Infini__V1__Reply r;
	Infini__V1__Status st;
	const ProtobufCMessage *body;
	size_t head, blen, len;
};
void wire_reply_init(struct wire_reply *p, uint64_t call_id, int code,
    const char *msg, const ProtobufCMessage *body);
void wire_reply_pack(const struct wire_reply *p, uint8_t *out);
/* wire_reply_redirect adds a redirect URL (Status.redirect; url is
 * borrowed until the pack) to p, made by wire_reply_init. */
void wire_reply_redirect(struct wire_reply *p, const char *url);

/*
 * wire_pack_reply packs a Reply envelope with the given status and, when
 * body is non-NULL, the packed body message.  Returns a malloc'd buffer
 * (caller frees) and its length, or NULL on allocation failure.
 */
uint8_t *wire_pack_reply(uint64_t call_id, int code, const char *msg,
    const ProtobufCMessage *body, size_t *len);

/* wire_pack_request packs a Request envelope around body (may be NULL for an
 * empty body).  Returns a malloc'd buffer or NULL. */
uint8_t *wire_pack_request(int method, uint64_t call_id,
    const ProtobufCMessage *body, size_t *len);

/* wire_code_name returns the canonical name of a gRPC code ("NOT_FOUND"). */
const char *wire_code_name(int code);

#include "sampling.h"

#endif /* WIRE_H */
