/*
 * fuzz_envelope.c - libFuzzer target for the request envelope and every
 * method's body, decoded the way infinid decodes them (proto/wire.h).
 *
 * Each input is unpacked as an infini.v1.Request with the daemon's bounded
 * allocator; when the method is known its body is unpacked as that method's
 * input message and put through the checks the daemon applies that need no
 * daemon state (stream IDs, snapshot names, enum ranges, finite floats).
 * The raw input is also unpacked directly as every method's input message,
 * so body decoding is fuzzed even where the envelope is broken.  Properties:
 * no crash or sanitizer report, the allocator's budget returns to zero after
 * each free, and a decoded message packs to bytes that decode and pack again
 * to the same bytes.  The daemon itself is not linked.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot.h"
#include "wire.h"

#define CHECK(x) do { if (!(x)) abort(); } while (0)

/* repack: pack m, unpack the bytes, pack again; both packings must match. */
static void
repack(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	size_t n = protobuf_c_message_get_packed_size(m), n2;
	uint8_t *b = malloc(n ? n : 1), *b2;
	ProtobufCMessage *again;

	CHECK(b != NULL);
	CHECK(protobuf_c_message_pack(m, b) == n);
	again = protobuf_c_message_unpack(d, NULL, n, b);
	CHECK(again != NULL);
	n2 = protobuf_c_message_get_packed_size(again);
	CHECK(n2 == n);
	CHECK((b2 = malloc(n2 ? n2 : 1)) != NULL);
	CHECK(protobuf_c_message_pack(again, b2) == n2);
	CHECK(memcmp(b, b2, n) == 0);
	free(b2);
	protobuf_c_message_free_unpacked(again, NULL);
	free(b);
}

static volatile size_t sink;

static void
check_tokens(const Infini__V1__Tokens *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n_ids; i++)
		sink += t->ids[i] >= 0;
}

static void
check_vectors(const Infini__V1__Vectors *v)
{
	if (v == NULL)
		return;
	if (v->dim != 0)
		sink += v->n_data % v->dim;
	for (size_t i = 0; i < v->n_data; i++)
		sink += isfinite(v->data[i]);
}

/* validate runs the daemon's stateless checks on a method's body. */
static void
validate(int method, const ProtobufCMessage *in)
{
	switch (method) {
	case INFINI__V1__METHOD__OPEN_STREAM: {
		const Infini__V1__OpenStreamRequest *q = (const void *)in;
		sink += q->stream_id[0] && wire_valid_id(q->stream_id);
		break;
	}
	case INFINI__V1__METHOD__PUSH: {
		const Infini__V1__PushRequest *q = (const void *)in;
		sink += wire_valid_id(q->stream_id);
		sink += (unsigned)q->output > INFINI__V1__OUTPUT__OUTPUT_LAST_LOGITS;
		if (q->input_case == INFINI__V1__PUSH_REQUEST__INPUT_TOKENS)
			check_tokens(q->tokens);
		else if (q->input_case == INFINI__V1__PUSH_REQUEST__INPUT_TEXT)
			sink += strlen(q->text);
		else if (q->input_case == INFINI__V1__PUSH_REQUEST__INPUT_VECTORS)
			check_vectors(q->vectors);
		break;
	}
	case INFINI__V1__METHOD__GENERATE: {
		const Infini__V1__GenerateRequest *q = (const void *)in;
		sink += wire_valid_id(q->stream_id);
		if (q->prompt_case == INFINI__V1__GENERATE_REQUEST__PROMPT_TOKENS)
			check_tokens(q->tokens);
		else if (q->prompt_case == INFINI__V1__GENERATE_REQUEST__PROMPT_TEXT)
			sink += strlen(q->text);
		if (q->sampling != NULL)
			sink += isfinite(q->sampling->temperature) &&
			    isfinite(q->sampling->top_p);
		for (size_t i = 0; i < q->n_stop; i++)
			sink += strlen(q->stop[i]);
		break;
	}
	case INFINI__V1__METHOD__FORK: {
		const Infini__V1__ForkRequest *q = (const void *)in;
		sink += wire_valid_id(q->stream_id);
		sink += q->new_stream_id[0] && wire_valid_id(q->new_stream_id);
		break;
	}
	case INFINI__V1__METHOD__CLOSE_STREAM: {
		const Infini__V1__CloseStreamRequest *q = (const void *)in;
		sink += wire_valid_id(q->stream_id);
		break;
	}
	case INFINI__V1__METHOD__SNAPSHOT: {
		const Infini__V1__SnapshotRequest *q = (const void *)in;
		sink += wire_valid_id(q->stream_id);
		sink += q->name[0] && snap_name_ok(q->name);
		break;
	}
	case INFINI__V1__METHOD__RESTORE: {
		const Infini__V1__RestoreRequest *q = (const void *)in;
		sink += wire_valid_id(q->stream_id);
		if (q->source_case == INFINI__V1__RESTORE_REQUEST__SOURCE_NAME)
			sink += snap_name_ok(q->name);
		break;
	}
	case INFINI__V1__METHOD__DELETE_SNAPSHOT: {
		const Infini__V1__DeleteSnapshotRequest *q = (const void *)in;
		sink += snap_name_ok(q->name);
		break;
	}
	default:
		break;
	}
}

/* body decodes len bytes as method m's input as the daemon does. */
static void
body(int m, const uint8_t *data, size_t len)
{
	const ProtobufCMethodDescriptor *md = wire_method(m);
	ProtobufCMessage *in;
	struct wire_alloc a;

	if (md == NULL)
		return;
	wire_alloc_init(&a, 4 * len + (1u << 16));
	if ((in = wire_unpack(md->input, &a, len, data)) == NULL) {
		CHECK(a.used == 0);
		return;
	}
	validate(m, in);
	repack(in);
	protobuf_c_message_free_unpacked(in, &a.pa);
	CHECK(a.used == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Infini__V1__Request *req;
	struct wire_alloc a;

	/* The envelope, with the server's budget for a 64 KiB message cap. */
	wire_alloc_init(&a, 4 * (size_t)(64u << 10) + (1u << 20));
	req = (Infini__V1__Request *)wire_unpack(&infini__v1__request__descriptor,
	    &a, size, data);
	if (req != NULL) {
		if (req->version == WIRE_VERSION)
			body((int)req->method, req->body.data, req->body.len);
		sink += wire_code_name((int)req->method)[0];
		repack(&req->base);
		infini__v1__request__free_unpacked(req, &a.pa);
	}
	CHECK(a.used == 0);

	/* Every method's body straight from the input. */
	for (int m = -1; m <= (int)infini__v1__infini__descriptor.n_methods + 1;
	    m++)
		body(m, data, size);
	return (0);
}
