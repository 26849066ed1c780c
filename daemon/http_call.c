/*
 * http_call.c - the gateway's answers and calls: a request's JSON turned
 * into the infini.v1.Request the socket carries and handed to
 * methods_dispatch under d->mu; the packed Reply parked by hr_local (under
 * d->mu) and decoded on the request's own aio, away from the lock; HTTP
 * statuses and OpenAI's error shape for gRPC codes; and the plain JSON
 * methods (any message of infini.proto through pbjson.c).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_gw.h"
#include "pbjson.h"

/* ------------------------------------------------------------ answers */

/* status_of maps a gRPC code onto an HTTP status. */
static int
status_of(int code)
{
	switch (code) {
	case INFINI__V1__CODE__OK: return (200);
	case INFINI__V1__CODE__INVALID_ARGUMENT:
	case INFINI__V1__CODE__OUT_OF_RANGE:
	case INFINI__V1__CODE__FAILED_PRECONDITION: return (400);
	case INFINI__V1__CODE__UNAUTHENTICATED: return (401);
	case INFINI__V1__CODE__PERMISSION_DENIED: return (403);
	case INFINI__V1__CODE__NOT_FOUND:
	case INFINI__V1__CODE__UNIMPLEMENTED: return (404);
	case INFINI__V1__CODE__ALREADY_EXISTS:
	case INFINI__V1__CODE__ABORTED: return (409);
	case INFINI__V1__CODE__RESOURCE_EXHAUSTED: return (429);
	case INFINI__V1__CODE__UNAVAILABLE: return (503);
	case INFINI__V1__CODE__DEADLINE_EXCEEDED: return (504);
	default: return (500);
	}
}

/* type_of: the OpenAI error type for an HTTP status. */
static const char *
type_of(int status)
{
	switch (status) {
	case 401: return ("authentication_error");
	case 403: return ("permission_error");
	case 404: return ("not_found_error");
	case 429: return ("rate_limit_error");
	case 503: return ("service_unavailable");
	default: return (status >= 500 ? "server_error" : "invalid_request_error");
	}
}

/* take_haio claims the handler's aio for answering it: NULL when it was
 * answered already or the client left. */
nng_aio *
hr_take_haio(struct hreq *h)
{
	nng_aio *a;

	pthread_mutex_lock(&h->gw->mx);
	a = h->haio;
	h->haio = NULL;
	pthread_mutex_unlock(&h->gw->mx);
	return (a);
}

/* finish answers haio with status and body (Content-Type type); close asks
 * for the connection to end (a body left unread).  res_out: the server
 * takes the response. */
void
hr_finish(nng_aio *haio, int status, const char *type, const char *body,
    size_t len, bool close)
{
	nng_http_res *res;

	if (nng_http_res_alloc(&res) != 0) {
		nng_aio_finish(haio, NNG_ENOMEM);
		return;
	}
	nng_http_res_set_status(res, (uint16_t)status);
	nng_http_res_set_header(res, "Content-Type", type);
	if (close)
		nng_http_res_set_header(res, "Connection", "close");
	if (nng_http_res_copy_data(res, body, len) != 0) {
		nng_http_res_free(res);
		nng_aio_finish(haio, NNG_ENOMEM);
		return;
	}
	nng_aio_set_output(haio, 0, res);
	nng_aio_finish(haio, 0);
}

/* err_body renders the OpenAI error object; malloc'd. */
char *
hr_err_body(int status, const char *code, const char *param, const char *msg)
{
	cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
	char *s;

	cJSON_AddStringToObject(e, "message", msg);
	cJSON_AddStringToObject(e, "type", type_of(status));
	if (param != NULL && param[0])
		cJSON_AddStringToObject(e, "param", param);
	else
		cJSON_AddNullToObject(e, "param");
	if (code != NULL)
		cJSON_AddStringToObject(e, "code", code);
	else
		cJSON_AddNullToObject(e, "code");
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return (s);
}

/* early_error answers a request that has no hreq (yet). */
void
hr_early_error(nng_aio *haio, nng_http_req *req, enum mx_ep ep, int64_t t0,
    int status, const char *code, const char *msg)
{
	char *b = hr_err_body(status, code, NULL, msg);

	/* A body we did not read would be taken for the next request. */
	hr_finish(haio, status, "application/json", b ? b : "{}",
	    b ? strlen(b) : 2, nng_http_req_get_header(req,
	    "Content-Length") != NULL);
	free(b);
	metrics_http(ep, status, t0);
}

/* hr_json answers h with a JSON document (consumed) and ends h. */
void
hr_json(struct hreq *h, int status, cJSON *doc)
{
	nng_aio *a = hr_take_haio(h);
	char *s = doc ? cJSON_PrintUnformatted(doc) : NULL;

	cJSON_Delete(doc);
	if (a != NULL) {
		if (s == NULL)
			nng_aio_finish(a, NNG_ENOMEM);
		else
			hr_finish(a, status, "application/json", s, strlen(s),
			    h->watched);
	}
	free(s);
	metrics_http(h->ep, s ? status : 500, h->t0);
	hr_end(h);
}

/* hr_fail: see http_gw.h. */
void
hr_fail(struct hreq *h, int status, const char *code, const char *param,
    const char *fmt, ...)
{
	char msg[600], *b;
	nng_aio *a = hr_take_haio(h);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	b = hr_err_body(status, code, param, msg);
	if (a != NULL)
		hr_finish(a, status, "application/json", b ? b : "{}",
		    b ? strlen(b) : 2, h->step == S_BODY || h->watched);
	free(b);
	metrics_http(h->ep, status, h->t0);
	hr_end(h);
}

/* ------------------------------------------------------------ calls */

/* hr_local is srv_reply's hook for gateway calls (d->mu held): it keeps the
 * packed reply and runs the next step on h's aio. */
void
hr_local(struct work *w, uint8_t *buf, size_t len)
{
	struct hreq *h = (struct hreq *)w;

	h->reply = buf;
	h->rlen = len;
	if (nng_aio_begin(h->aio))
		nng_aio_finish(h->aio, 0);
}

/* hr_local_gone answers for a request the gateway already let go of
 * (shutdown). */
void
hr_local_gone(struct work *w, uint8_t *buf, size_t len)
{
	(void)w;
	(void)len;
	free(buf);
}

/* hr_call dispatches method with body.  h is not touched after: its next
 * step may already be running on another thread. */
void
hr_call(struct hreq *h, enum step next, int method, const ProtobufCMessage *body)
{
	struct infinid *d = h->gw->d;
	Infini__V1__Request rq = INFINI__V1__REQUEST__INIT;
	size_t n = protobuf_c_message_get_packed_size(body);
	uint8_t *p = malloc(n ? n : 1);

	if (p == NULL) {
		hr_fail(h, 500, "internal", NULL, "out of memory");
		return;
	}
	protobuf_c_message_pack(body, p);
	rq.version = WIRE_VERSION;
	rq.method = (Infini__V1__Method)method;
	rq.body.data = p;
	rq.body.len = n;
	h->step = next;
	h->w.method = method;
	h->w.t0_us = now_us();
	struct mbody b;
	methods_decode(&rq, &b);
	if (clu_route(d, &h->w, &rq, &b)) {
		methods_body_free(&b);
		free(p);
		return;
	}
	pthread_mutex_lock(&d->mu);
	d->st.requests++;
	methods_dispatch(d, &h->w, h->uid, 0, &rq, &b);
	pthread_mutex_unlock(&d->mu);
	methods_body_free(&b);
	free(p);
}

/* take_reply unpacks the parked Reply: its code, message and the body
 * unpacked as md (NULL: not wanted or failed).  Returns the code, or -1
 * when the reply could not be read. */
int
hr_take_reply(struct hreq *h, const ProtobufCMessageDescriptor *md,
    ProtobufCMessage **body, char *msg, size_t msglen)
{
	struct wire_alloc a;
	Infini__V1__Reply *r;
	int code;

	*body = NULL;
	wire_alloc_init(&a, 4 * h->rlen + (1u << 16));
	r = (Infini__V1__Reply *)wire_unpack(&infini__v1__reply__descriptor, &a,
	    h->rlen, h->reply);
	free(h->reply);
	h->reply = NULL;
	if (r == NULL) {
		snprintf(msg, msglen, "the daemon could not encode its reply");
		return (-1);
	}
	code = r->status ? (int)r->status->code : 0;
	snprintf(msg, msglen, "%s", r->status && r->status->message ?
	    r->status->message : "");
	if (code == 0 && md != NULL)
		*body = protobuf_c_message_unpack(md, NULL, r->body.len,
		    r->body.data);
	infini__v1__reply__free_unpacked(r, &a.pa);
	if (code == 0 && md != NULL && *body == NULL) {
		snprintf(msg, msglen, "malformed reply body");
		return (-1);
	}
	return (code);
}

/* reply_or_fail: take_reply, answering h with the error when the call
 * failed.  Returns true with *body set when it succeeded. */
bool
hr_reply_or_fail(struct hreq *h, const ProtobufCMessageDescriptor *md,
    ProtobufCMessage **body)
{
	char msg[600];
	int code = hr_take_reply(h, md, body, msg, sizeof(msg));
	char cname[32];

	if (code == 0)
		return (true);
	if (code < 0) {
		hr_fail(h, 500, "internal", NULL, "%s", msg);
		return (false);
	}
	snprintf(cname, sizeof(cname), "%s", wire_code_name(code));
	for (char *c = cname; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	hr_fail(h, status_of(code), cname, NULL, "%s", msg);
	return (false);
}

/* ------------------------------------------------------------ plain JSON */

void
hr_rpc_begin(struct hreq *h)
{
	const ProtobufCMethodDescriptor *md = wire_method(h->method);
	ProtobufCMessage *m;
	struct pbj_err e = { "", "" };
	cJSON *in = h->json ? h->json : cJSON_CreateObject();

	h->json = in;
	if (in == NULL) {
		hr_fail(h, 500, "internal", NULL, "out of memory");
		return;
	}
	/* The path's id wins over one in the body. */
	if (h->pid[0] && h->idfield != NULL) {
		bool gen = strcmp(h->idfield, "generation_id") == 0;
		char *end;
		unsigned long long g = strtoull(h->pid, &end, 10);
		cJSON_DeleteItemFromObject(in, h->idfield);
		if (gen && (*end != '\0' || g == 0)) {
			hr_fail(h, 404, "not_found", NULL, "no generation '%s'",
			    h->pid);
			return;
		}
		if ((gen ? cJSON_AddNumberToObject(in, h->idfield, (double)g) :
		    cJSON_AddStringToObject(in, h->idfield, h->pid)) == NULL) {
			hr_fail(h, 500, "internal", NULL, "out of memory");
			return;
		}
	}
	if (pbj_from_json(md->input, in, &m, &e) != 0) {
		hr_fail(h, 400, "invalid_argument", e.param, "%s", e.msg);
		return;
	}
	hr_call(h, S_RPC, h->method, m);
	protobuf_c_message_free_unpacked(m, NULL);
}

void
hr_rpc_done(struct hreq *h)
{
	ProtobufCMessage *b;

	if (!hr_reply_or_fail(h, wire_method(h->method)->output, &b))
		return;
	hr_json(h, 200, pbj_to_json(b));
	protobuf_c_message_free_unpacked(b, NULL);
}
