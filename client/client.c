/*
 * client.c - libinfini's connection, its single call path and the simple
 * request/reply methods (health, streams, stats, snapshots).
 *
 * Every method builds its protobuf-c request, hands it to cl_call and copies
 * what the caller asked for out of the decoded reply; nothing here keeps
 * state between calls except the socket and the call-id counter, which is
 * why one client may be shared by threads.  Push and generation live in
 * generate.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include "client_impl.h"

static _Thread_local char cl_errbuf[1024];

int
cl_err(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cl_errbuf, sizeof(cl_errbuf), fmt, ap);
	va_end(ap);
	return (err);
}

const char *
infini_errmsg(void)
{
	return (cl_errbuf);
}

int
cl_check_id(const char *what, const char *id)
{
	if (!wire_valid_id(id))
		return (cl_err(INFINI_EINVAL, "invalid %s '%.*s': use 1-%d of "
		    "[A-Za-z0-9._:-]", what, 200, id ? id : "", WIRE_ID_MAX));
	return (0);
}

int
cl_timeout(infini_client *c)
{
	return (atomic_load(&c->timeout_ms));
}

/* nng_err maps an NNG failure to our codes; the caller words the message
 * because only it knows which step failed. */
static int
nng_err(int rv)
{
	switch (rv) {
	case NNG_ENOMEM: return (INFINI_ENOMEM);
	case NNG_ETIMEDOUT: return (INFINI_ETIMEDOUT);
	case NNG_ECLOSED: return (INFINI_ESTATE);
	case NNG_ECANCELED: return (INFINI_ECANCELED);
	case NNG_EPERM: return (INFINI_EPERM);
	case NNG_EINVAL:
	case NNG_EADDRINVAL:
	case NNG_ENOTSUP: return (INFINI_EINVAL);
	case NNG_ECONNREFUSED:
	case NNG_ENOENT:
	case NNG_ECONNRESET:
	case NNG_ECONNSHUT:
	case NNG_ECONNABORTED:
	case NNG_EUNREACHABLE: return (INFINI_EUNAVAILABLE);
	case NNG_EMSGSIZE: return (INFINI_EPROTO);
	default: return (INFINI_EIO);
	}
}

static const char *
method_name(int method)
{
	const ProtobufCMethodDescriptor *m = wire_method(method);
	return (m ? m->name : "?");
}

/* decode unpacks the Reply envelope in msg and its body. */
static int
decode(infini_client *c, int method, uint64_t id, nng_msg *msg,
    const ProtobufCMessageDescriptor *rdesc, struct cl_reply *rep)
{
	Infini__V1__Reply *r;
	size_t len = nng_msg_len(msg);
	int code, err = 0;

	(void)c;
	/* Unpacking can cost several times the wire size (one allocation
	 * per repeated submessage); the cap keeps a broken daemon from
	 * making us allocate without bound. */
	wire_alloc_init(&rep->a, 16 * len + (1u << 20));
	rep->body = NULL;
	r = infini__v1__reply__unpack(&rep->a.pa, len, nng_msg_body(msg));
	if (r == NULL)
		return (cl_err(INFINI_EPROTO, "%s: malformed reply (%zu bytes)",
		    method_name(method), len));
	if (r->call_id != id) {
		err = cl_err(INFINI_EPROTO, "%s: reply is for call %llu, "
		    "expected %llu", method_name(method),
		    (unsigned long long)r->call_id, (unsigned long long)id);
		goto fail;
	}
	code = r->status ? (int)r->status->code : 0;
	cl_last.replied = true;
	if (r->status != NULL && r->status->redirect != NULL)
		snprintf(cl_last.redirect, sizeof(cl_last.redirect), "%s",
		    r->status->redirect);
	if (code != 0) {
		const char *m = r->status->message ? r->status->message : "";
		err = infini_err_from_status(code);
		if (m[0] != '\0')
			cl_err(err, "%s: %s", wire_code_name(code), m);
		else
			cl_err(err, "%s", wire_code_name(code));
		goto fail;
	}
	rep->body = protobuf_c_message_unpack(rdesc, &rep->a.pa, r->body.len,
	    r->body.data);
	if (rep->body == NULL)
		err = cl_err(INFINI_EPROTO, "%s: malformed reply body",
		    method_name(method));
fail:
	infini__v1__reply__free_unpacked(r, &rep->a.pa);
	return (err);
}

int
cl_call(infini_client *c, int method, const ProtobufCMessage *req,
    const ProtobufCMessageDescriptor *rdesc, int timeout_ms,
    struct cl_reply *rep)
{
	uint64_t id = atomic_fetch_add(&c->next_id, 1);
	nng_ctx ctx = NNG_CTX_INITIALIZER;
	nng_aio *aio = NULL;
	nng_msg *msg = NULL;
	nng_time deadline = 0;
	uint8_t *buf;
	size_t len;
	unsigned limit;
	int rv, err = 0;

	rep->body = NULL;
	if (c->members != NULL)
		return (cl_route_call(c, method, req, rdesc, timeout_ms, rep));
	memset(&cl_last, 0, sizeof(cl_last));
	if ((buf = wire_pack_request(method, id, req, &len)) == NULL)
		return (cl_err(INFINI_ENOMEM, "out of memory packing %s",
		    method_name(method)));
	if (len > WIRE_MAX_MSG) {
		free(buf);
		return (cl_err(INFINI_EINVAL, "%s: request of %zu bytes is over "
		    "the %u byte message limit", method_name(method), len,
		    WIRE_MAX_MSG));
	}
	/* The daemon drops an oversize request with its connection: the
	 * caller would see only a timeout.  The message carries a 4-byte
	 * request ID besides. */
	limit = atomic_load(&c->max_msg);
	if (limit > 0 && len + 4 > limit) {
		free(buf);
		return (cl_err(INFINI_EINVAL, "%s: request of %zu bytes is over "
		    "the daemon's max_message_bytes (%u)", method_name(method),
		    len, limit));
	}
	if ((rv = nng_msg_alloc(&msg, len)) != 0) {
		free(buf);
		return (cl_err(INFINI_ENOMEM, "out of memory sending %s",
		    method_name(method)));
	}
	memcpy(nng_msg_body(msg), buf, len);
	free(buf);
	if ((rv = nng_ctx_open(&ctx, c->sock)) != 0 ||
	    (rv = nng_aio_alloc(&aio, NULL, NULL)) != 0) {
		err = cl_err(nng_err(rv), "%s: %s", method_name(method),
		    nng_strerror(rv));
		goto fail;
	}
	if (timeout_ms > 0)
		deadline = nng_clock() + (nng_time)timeout_ms;

	/* The send completes when the request is handed to a pipe, so a
	 * timeout here means no daemon is connected, not a slow one. */
	nng_aio_set_msg(aio, msg);
	msg = NULL;
	nng_aio_set_timeout(aio, timeout_ms > 0 ? timeout_ms :
	    NNG_DURATION_INFINITE);
	nng_ctx_send(ctx, aio);
	nng_aio_wait(aio);
	if ((rv = nng_aio_result(aio)) != 0) {
		msg = nng_aio_get_msg(aio);
		if (rv == NNG_ETIMEDOUT)
			err = cl_err(INFINI_EUNAVAILABLE, "%s: no connection to "
			    "the daemon at %s within %d ms", method_name(method),
			    c->url, timeout_ms);
		else
			err = cl_err(nng_err(rv), "%s: send to %s: %s",
			    method_name(method), c->url, nng_strerror(rv));
		goto fail;
	}
	cl_last.sent = true;

	if (timeout_ms > 0) {
		nng_time now = nng_clock();
		nng_aio_set_timeout(aio, now < deadline ?
		    (nng_duration)(deadline - now) : 1);
	}
	nng_ctx_recv(ctx, aio);
	nng_aio_wait(aio);
	if ((rv = nng_aio_result(aio)) != 0) {
		if (rv == NNG_ETIMEDOUT)
			err = cl_err(INFINI_ETIMEDOUT, "%s: no reply from %s "
			    "within %d ms", method_name(method), c->url,
			    timeout_ms);
		else if (nng_err(rv) == INFINI_EUNAVAILABLE)
			err = cl_err(INFINI_EUNAVAILABLE, "%s: connection to %s "
			    "lost (%s)", method_name(method), c->url,
			    nng_strerror(rv));
		else
			err = cl_err(nng_err(rv), "%s: receive from %s: %s",
			    method_name(method), c->url, nng_strerror(rv));
		goto fail;
	}
	msg = nng_aio_get_msg(aio);
	err = decode(c, method, id, msg, rdesc, rep);
fail:
	if (msg != NULL)
		nng_msg_free(msg);
	if (aio != NULL)
		nng_aio_free(aio);
	/* Closing the context abandons a request still in flight: a late
	 * reply to it is dropped by NNG. */
	if (nng_ctx_id(ctx) > 0)
		nng_ctx_close(ctx);
	return (err);
}

void
cl_reply_fini(struct cl_reply *rep)
{
	if (rep->body != NULL)
		protobuf_c_message_free_unpacked(rep->body, &rep->a.pa);
	rep->body = NULL;
}

/* ---- connection ---------------------------------------------------- */

/* Local transports fail at once when nothing listens, so they are dialled
 * synchronously to report "no daemon" without waiting; a tcp dial may hang
 * on an unreachable host, so it runs in the background and the Health
 * deadline bounds it. */
static bool
local_url(const char *url)
{
	return (strncmp(url, "ipc://", 6) == 0 ||
	    strncmp(url, "inproc://", 9) == 0 ||
	    strncmp(url, "abstract://", 11) == 0);
}

/*
 * dial_tls dials a tls+tcp:// URL.  The daemon's certificate is checked
 * against the CA file in $INFINI_TLS_CA (required: an unchecked TLS
 * connection would only look secure), for the host named in the URL.
 */
static int
dial_tls(struct infini_client *c, const char *url)
{
	const char *ca = getenv("INFINI_TLS_CA");
	nng_tls_config *tls = NULL;
	nng_dialer d;
	char host[256];
	const char *h = url + 10, *colon = strrchr(h, ':');
	int rv;

	if (ca == NULL || *ca == '\0')
		return (NNG_EINVAL);
	snprintf(host, sizeof(host), "%.*s", colon ? (int)(colon - h) :
	    (int)strlen(h), h);
	if ((rv = nng_dialer_create(&d, c->sock, url)) != 0)
		return (rv);
	if ((rv = nng_tls_config_alloc(&tls, NNG_TLS_MODE_CLIENT)) != 0 ||
	    (rv = nng_tls_config_ca_file(tls, ca)) != 0 ||
	    (rv = nng_tls_config_server_name(tls, host)) != 0 ||
	    (rv = nng_tls_config_auth_mode(tls, NNG_TLS_AUTH_MODE_REQUIRED)) != 0 ||
	    (rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, tls)) != 0 ||
	    (rv = nng_dialer_start(d, NNG_FLAG_NONBLOCK)) != 0) {
		if (tls != NULL)
			nng_tls_config_free(tls);
		nng_dialer_close(d);
		return (rv);
	}
	nng_tls_config_free(tls);   /* the dialer holds its own reference */
	return (0);
}

int
infini_connect(const char *url, int timeout_ms, infini_client **out)
{
	struct infini_health h;
	infini_client *c;
	int rv, err;

	if (url == NULL || url[0] == '\0')
		url = getenv("INFINI_SOCKET");
	if (url == NULL || url[0] == '\0')
		url = INFINI_DEFAULT_SOCKET;
	if (out == NULL)
		return (cl_err(INFINI_EINVAL, "infini_connect: out is NULL"));
	if (timeout_ms <= 0)
		timeout_ms = CL_DEFAULT_TIMEOUT;
	if (strchr(url, ',') != NULL)
		return (cl_route_connect(url, timeout_ms, out));
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return (cl_err(INFINI_ENOMEM, "out of memory"));
	if (strlen(url) >= sizeof(c->url)) {
		free(c);
		return (cl_err(INFINI_EINVAL, "socket URL too long"));
	}
	strcpy(c->url, url);
	atomic_init(&c->timeout_ms, CL_DEFAULT_TIMEOUT);
	atomic_init(&c->next_id, 1);
	atomic_init(&c->max_msg, 0);
	if ((rv = nng_req0_open(&c->sock)) != 0) {
		free(c);
		return (cl_err(nng_err(rv), "cannot open socket: %s",
		    nng_strerror(rv)));
	}
	/* Replies as large as the protocol allows, and no larger: an
	 * oversize reply must fail rather than exhaust memory. */
	if ((rv = nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ,
	    WIRE_MAX_MSG + 4096)) != 0 ||
	    /* Calls are not idempotent (a resent Push would feed the
	     * tokens twice), so REQ must never resend on its own. */
	    (rv = nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME,
	    NNG_DURATION_INFINITE)) != 0) {
		err = cl_err(nng_err(rv), "cannot set socket options: %s",
		    nng_strerror(rv));
		goto fail;
	}
	if (strncmp(url, "tls+tcp://", 10) == 0 &&
	    (getenv("INFINI_TLS_CA") == NULL || !*getenv("INFINI_TLS_CA"))) {
		err = cl_err(INFINI_EINVAL, "%s: set INFINI_TLS_CA to the CA "
		    "file that signed the daemon's certificate", url);
		goto fail;
	}
	if (strncmp(url, "tls+tcp://", 10) == 0)
		rv = dial_tls(c, url);
	else
		rv = nng_dial(c->sock, url, NULL, local_url(url) ? 0 :
		    NNG_FLAG_NONBLOCK);
	if (rv != 0) {
		err = nng_err(rv);
		if (err == INFINI_EUNAVAILABLE)
			cl_err(err, "no daemon at %s (%s)", url,
			    nng_strerror(rv));
		else if (err == INFINI_EPERM)
			cl_err(err, "cannot connect to %s: permission denied",
			    url);
		else
			cl_err(err, "cannot connect to %s: %s", url,
			    nng_strerror(rv));
		goto fail;
	}
	if ((err = cl_call_health(c, timeout_ms, &h)) != 0) {
		if (err == INFINI_ETIMEDOUT || err == INFINI_EUNAVAILABLE)
			err = cl_err(INFINI_EUNAVAILABLE, "no daemon at %s (no "
			    "answer within %d ms)", url, timeout_ms);
		goto fail;
	}
	*out = c;
	return (0);
fail:
	nng_close(c->sock);
	free(c);
	return (err);
}

void
infini_close(infini_client *c)
{
	if (c == NULL)
		return;
	if (c->members != NULL)
		cl_route_free(c->members);
	else
		nng_close(c->sock);
	free(c);
}

void
infini_set_text_flags(infini_client *c, unsigned flags)
{
	atomic_store(&c->text_flags, flags);
}

void
infini_set_timeout(infini_client *c, int timeout_ms)
{
	atomic_store(&c->timeout_ms, timeout_ms);
}

/* ---- simple methods ------------------------------------------------ */

/* copy_str copies a reply string into a fixed buffer, truncating. */
static void
copy_str(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src ? src : "");
}

int
cl_call_health(infini_client *c, int timeout_ms, struct infini_health *out)
{
	Infini__V1__HealthRequest q = INFINI__V1__HEALTH_REQUEST__INIT;
	Infini__V1__HealthReply *r;
	struct cl_reply rep;
	int err;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if ((err = cl_call(c, INFINI__V1__METHOD__HEALTH, &q.base,
	    &infini__v1__health_reply__descriptor, timeout_ms, &rep)) != 0)
		return (err);
	r = (Infini__V1__HealthReply *)rep.body;
	atomic_store(&c->max_msg, r->max_message_bytes);
	if (out != NULL) {
		copy_str(out->version, sizeof(out->version), r->version);
		copy_str(out->model, sizeof(out->model), r->model);
		copy_str(out->device, sizeof(out->device), r->device);
		out->uptime_ms = r->uptime_ms;
		out->streams = r->streams;
		out->model_fingerprint = r->model_fingerprint;
		out->hidden_size = r->hidden_size;
		out->vocab_size = r->vocab_size;
		out->segment_size = r->segment_size;
	}
	cl_reply_fini(&rep);
	return (0);
}

int
infini_health(infini_client *c, struct infini_health *out)
{
	return (cl_call_health(c, cl_timeout(c), out));
}

int
infini_open(infini_client *c, const char *id, bool reuse, char *id_out,
    bool *created)
{
	Infini__V1__OpenStreamRequest q = INFINI__V1__OPEN_STREAM_REQUEST__INIT;
	Infini__V1__OpenStreamReply *r;
	struct cl_reply rep;
	int err;

	if (id_out != NULL)
		id_out[0] = '\0';
	if (created != NULL)
		*created = false;
	if (id != NULL && id[0] != '\0' &&
	    (err = cl_check_id("stream id", id)) != 0)
		return (err);
	q.stream_id = (char *)(id ? id : "");
	q.reuse = reuse;
	if ((err = cl_call(c, INFINI__V1__METHOD__OPEN_STREAM, &q.base,
	    &infini__v1__open_stream_reply__descriptor, cl_timeout(c),
	    &rep)) != 0)
		return (err);
	r = (Infini__V1__OpenStreamReply *)rep.body;
	if (!wire_valid_id(r->stream_id)) {
		cl_reply_fini(&rep);
		return (cl_err(INFINI_EPROTO, "OpenStream: daemon returned an "
		    "invalid stream id"));
	}
	if (id_out != NULL)
		copy_str(id_out, INFINI_ID_MAX + 1, r->stream_id);
	if (created != NULL)
		*created = r->created;
	cl_reply_fini(&rep);
	return (0);
}

int
infini_close_stream(infini_client *c, const char *id)
{
	Infini__V1__CloseStreamRequest q =
	    INFINI__V1__CLOSE_STREAM_REQUEST__INIT;
	struct cl_reply rep;
	int err;

	if ((err = cl_check_id("stream id", id)) != 0)
		return (err);
	q.stream_id = (char *)id;
	if ((err = cl_call(c, INFINI__V1__METHOD__CLOSE_STREAM, &q.base,
	    &infini__v1__close_stream_reply__descriptor, cl_timeout(c),
	    &rep)) != 0)
		return (err);
	cl_reply_fini(&rep);
	return (0);
}

int
infini_fork(infini_client *c, const char *id, const char *new_id,
    char *id_out)
{
	Infini__V1__ForkRequest q = INFINI__V1__FORK_REQUEST__INIT;
	Infini__V1__ForkReply *r;
	struct cl_reply rep;
	int err;

	if (id_out != NULL)
		id_out[0] = '\0';
	if ((err = cl_check_id("stream id", id)) != 0)
		return (err);
	if (new_id != NULL && new_id[0] != '\0' &&
	    (err = cl_check_id("new stream id", new_id)) != 0)
		return (err);
	q.stream_id = (char *)id;
	q.new_stream_id = (char *)(new_id ? new_id : "");
	if ((err = cl_call(c, INFINI__V1__METHOD__FORK, &q.base,
	    &infini__v1__fork_reply__descriptor, cl_timeout(c), &rep)) != 0)
		return (err);
	r = (Infini__V1__ForkReply *)rep.body;
	if (!wire_valid_id(r->stream_id)) {
		cl_reply_fini(&rep);
		return (cl_err(INFINI_EPROTO, "Fork: daemon returned an "
		    "invalid stream id"));
	}
	if (id_out != NULL)
		copy_str(id_out, INFINI_ID_MAX + 1, r->stream_id);
	cl_reply_fini(&rep);
	return (0);
}

int
infini_list(infini_client *c, struct infini_stream_info **out, size_t *n)
{
	Infini__V1__ListStreamsRequest q =
	    INFINI__V1__LIST_STREAMS_REQUEST__INIT;
	Infini__V1__ListStreamsReply *r;
	struct infini_stream_info *v;
	struct cl_reply rep;
	int err;

	*out = NULL;
	*n = 0;
	if ((err = cl_call(c, INFINI__V1__METHOD__LIST_STREAMS, &q.base,
	    &infini__v1__list_streams_reply__descriptor, cl_timeout(c),
	    &rep)) != 0)
		return (err);
	r = (Infini__V1__ListStreamsReply *)rep.body;
	if ((v = calloc(r->n_streams ? r->n_streams : 1, sizeof(*v))) == NULL) {
		cl_reply_fini(&rep);
		return (cl_err(INFINI_ENOMEM, "out of memory"));
	}
	for (size_t i = 0; i < r->n_streams; i++) {
		const Infini__V1__StreamInfo *s = r->streams[i];
		copy_str(v[i].id, sizeof(v[i].id), s->stream_id);
		v[i].position = s->position;
		v[i].segments = s->segments;
		v[i].idle_ms = s->idle_ms;
		v[i].owner_uid = s->owner_uid;
		v[i].generating = s->generating;
		v[i].resident = s->resident;
	}
	*out = v;
	*n = r->n_streams;
	cl_reply_fini(&rep);
	return (0);
}

int
infini_stats(infini_client *c, struct infini_stats *out)
{
	Infini__V1__StatsRequest q = INFINI__V1__STATS_REQUEST__INIT;
	Infini__V1__StatsReply *r;
	struct cl_reply rep;
	int err;

	memset(out, 0, sizeof(*out));
	if ((err = cl_call(c, INFINI__V1__METHOD__STATS, &q.base,
	    &infini__v1__stats_reply__descriptor, cl_timeout(c), &rep)) != 0)
		return (err);
	r = (Infini__V1__StatsReply *)rep.body;
	out->requests = r->requests;
	out->errors = r->errors;
	out->tokens_in = r->tokens_in;
	out->tokens_out = r->tokens_out;
	out->submissions = r->submissions;
	out->device_busy_us = r->device_busy_us;
	out->state_bytes_per_stream = r->state_bytes_per_stream;
	out->uptime_ms = r->uptime_ms;
	out->streams = r->streams;
	out->max_streams = r->max_streams;
	out->max_resident_streams = r->max_resident_streams;
	out->resident_streams = r->resident_streams;
	out->page_ins = r->page_ins;
	out->evictions = r->evictions;
	out->autosnapshots = r->autosnapshots;
	out->spill_errors = r->spill_errors;
	cl_reply_fini(&rep);
	return (0);
}

/* check_name: a snapshot name as the daemon accepts it. */
static int
check_name(const char *name)
{
	if (!wire_valid_name(name))
		return (cl_err(INFINI_EINVAL, "invalid snapshot name '%.*s': "
		    "use 1-%d of [A-Za-z0-9._:-], not starting with '.'", 200,
		    name ? name : "", WIRE_ID_MAX));
	return (0);
}

int
infini_snapshot(infini_client *c, const char *id, const char *name,
    uint8_t **data, size_t *len)
{
	return (infini_snapshot_ex(c, id, name, 0, data, len));
}

int
infini_snapshot_ex(infini_client *c, const char *id, const char *name,
    unsigned flags, uint8_t **data, size_t *len)
{
	Infini__V1__SnapshotRequest q = INFINI__V1__SNAPSHOT_REQUEST__INIT;
	Infini__V1__SnapshotReply *r;
	struct cl_reply rep;
	uint8_t *copy = NULL;
	int err;

	if (data != NULL)
		*data = NULL;
	if (len != NULL)
		*len = 0;
	if ((err = cl_check_id("stream id", id)) != 0)
		return (err);
	if (name == NULL && data == NULL)
		return (cl_err(INFINI_EINVAL, "snapshot: give a name, ask for "
		    "the data, or both"));
	if (name != NULL && (err = check_name(name)) != 0)
		return (err);
	if ((flags & ~INFINI_SNAP_OVERWRITE) != 0)
		return (cl_err(INFINI_EINVAL, "snapshot: unknown flags %#x",
		    flags));
	q.stream_id = (char *)id;
	q.name = (char *)(name ? name : "");
	q.export = data != NULL;
	q.overwrite = (flags & INFINI_SNAP_OVERWRITE) != 0;
	if ((err = cl_call(c, INFINI__V1__METHOD__SNAPSHOT, &q.base,
	    &infini__v1__snapshot_reply__descriptor, cl_timeout(c),
	    &rep)) != 0)
		return (err);
	r = (Infini__V1__SnapshotReply *)rep.body;
	if (data != NULL) {
		if ((copy = malloc(r->data.len ? r->data.len : 1)) == NULL) {
			cl_reply_fini(&rep);
			return (cl_err(INFINI_ENOMEM, "out of memory"));
		}
		if (r->data.len)
			memcpy(copy, r->data.data, r->data.len);
		*data = copy;
	}
	if (len != NULL)
		*len = data != NULL ? r->data.len : (size_t)r->bytes;
	cl_reply_fini(&rep);
	return (0);
}

int
infini_restore(infini_client *c, const char *id, const char *name,
    const uint8_t *data, size_t len, uint64_t *position)
{
	Infini__V1__RestoreRequest q = INFINI__V1__RESTORE_REQUEST__INIT;
	Infini__V1__RestoreReply *r;
	struct cl_reply rep;
	int err;

	if (position != NULL)
		*position = 0;
	if ((err = cl_check_id("stream id", id)) != 0)
		return (err);
	q.stream_id = (char *)id;
	if (name != NULL && data == NULL) {
		if ((err = check_name(name)) != 0)
			return (err);
		q.source_case = INFINI__V1__RESTORE_REQUEST__SOURCE_NAME;
		q.name = (char *)name;
	} else if (name == NULL && data != NULL) {
		q.source_case = INFINI__V1__RESTORE_REQUEST__SOURCE_DATA;
		q.data.data = (uint8_t *)data;
		q.data.len = len;
	} else {
		return (cl_err(INFINI_EINVAL, "restore: give exactly one of a "
		    "name or snapshot data"));
	}
	if ((err = cl_call(c, INFINI__V1__METHOD__RESTORE, &q.base,
	    &infini__v1__restore_reply__descriptor, cl_timeout(c),
	    &rep)) != 0)
		return (err);
	r = (Infini__V1__RestoreReply *)rep.body;
	if (position != NULL)
		*position = r->position;
	cl_reply_fini(&rep);
	return (0);
}

int
infini_list_snapshots(infini_client *c, struct infini_snapshot_info **out,
    size_t *n)
{
	Infini__V1__ListSnapshotsRequest q =
	    INFINI__V1__LIST_SNAPSHOTS_REQUEST__INIT;
	Infini__V1__ListSnapshotsReply *r;
	struct infini_snapshot_info *v;
	struct cl_reply rep;
	int err;

	*out = NULL;
	*n = 0;
	if ((err = cl_call(c, INFINI__V1__METHOD__LIST_SNAPSHOTS, &q.base,
	    &infini__v1__list_snapshots_reply__descriptor, cl_timeout(c),
	    &rep)) != 0)
		return (err);
	r = (Infini__V1__ListSnapshotsReply *)rep.body;
	if ((v = calloc(r->n_snapshots ? r->n_snapshots : 1,
	    sizeof(*v))) == NULL) {
		cl_reply_fini(&rep);
		return (cl_err(INFINI_ENOMEM, "out of memory"));
	}
	for (size_t i = 0; i < r->n_snapshots; i++) {
		const Infini__V1__SnapshotInfo *s = r->snapshots[i];
		copy_str(v[i].name, sizeof(v[i].name), s->name);
		copy_str(v[i].stream_id, sizeof(v[i].stream_id), s->stream_id);
		v[i].owner_uid = s->owner_uid;
		v[i].bytes = s->bytes;
		v[i].position = s->position;
		v[i].created_ms = s->created_ms;
	}
	*out = v;
	*n = r->n_snapshots;
	cl_reply_fini(&rep);
	return (0);
}

int
infini_delete_snapshot(infini_client *c, const char *name)
{
	Infini__V1__DeleteSnapshotRequest q =
	    INFINI__V1__DELETE_SNAPSHOT_REQUEST__INIT;
	struct cl_reply rep;
	int err;

	if ((err = check_name(name)) != 0)
		return (err);
	q.name = (char *)name;
	if ((err = cl_call(c, INFINI__V1__METHOD__DELETE_SNAPSHOT, &q.base,
	    &infini__v1__delete_snapshot_reply__descriptor, cl_timeout(c),
	    &rep)) != 0)
		return (err);
	cl_reply_fini(&rep);
	return (0);
}

/* The results are plain malloc'd memory; these exist so that a caller never
 * frees with an allocator other than the library's (another libc, a
 * language runtime, a preloaded malloc). */
void
infini_list_free(struct infini_stream_info *v)
{
	free(v);
}

void
infini_snapshot_list_free(struct infini_snapshot_info *v)
{
	free(v);
}

void
infini_data_free(uint8_t *data)
{
	free(data);
}
