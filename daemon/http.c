/*
 * http.c - the HTTP gateway (http_listen): OpenAI-compatible
 * /v1/completions and /v1/embeddings, plain JSON endpoints mirroring the
 * NNG methods, and /metrics, on NNG's own HTTP server.  This file holds the
 * server, the bearer tokens, routing and each request's lifetime;
 * http_call.c the calls and answers, http_openai.c the OpenAI endpoints.
 *
 * Every call is translated into the body of the same infini.v1 method the
 * socket carries and handed to rpc_serve_body, so the checks, ownership
 * rules, queueing and errors are the socket's.  The request is its own
 * rpc_call: hr_transport parks the packed Reply and wakes the request's
 * own aio; decoding the reply and writing JSON happen on that aio's
 * callback, away from d->mu.
 *
 * A request (struct hreq) is a small state machine with at most one thing
 * outstanding at a time: a body read, a dispatched call, or a write of
 * server-sent events.  Completions chain OpenStream(reuse) -> Generate ->
 * Poll...; embeddings chain OpenStream(reuse) -> Push(mean) per input.  A
 * streamed completion hijacks the connection after Generate succeeds and
 * writes the events itself (chunked).  A client that leaves cancels its
 * generation.
 *
 * Callers are identified by a bearer token (http_tokens_file: "TOKEN USER"
 * lines, readable by the daemon's user only); a token's user owns the
 * streams it opens as a socket peer with that UID would.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "http_gw.h"
#include "log.h"

static void hr_cb(void *arg);

/* ------------------------------------------------------------ tokens */

static int
tokens_load(struct http_gw *gw, const char *path, char *err, size_t errlen)
{
	FILE *f;
	struct stat sb;
	char line[1024];
	int lineno = 0;

	if (path[0] == '\0') {
		snprintf(err, errlen, "http_listen needs http_tokens_file (lines "
		    "of 'TOKEN USER')");
		return (INFINI_EINVAL);
	}
	if ((f = fopen(path, "re")) == NULL) {
		snprintf(err, errlen, "http_tokens_file %s: %s", path,
		    strerror(errno));
		return (INFINI_EIO);
	}
	/* Anyone who can read the file can be anyone in it. */
	if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode) ||
	    (sb.st_uid != geteuid() && sb.st_uid != 0) ||
	    (sb.st_mode & 077) != 0) {
		snprintf(err, errlen, "http_tokens_file %s: must be a regular "
		    "file owned by the daemon's user or root with no group or "
		    "other access (chmod 600)", path);
		fclose(f);
		return (INFINI_EPERM);
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char *save = NULL, *tok, *user, *end;
		struct token *nt;
		unsigned long uid;

		lineno++;
		tok = strtok_r(line, " \t\r\n", &save);
		if (tok == NULL || tok[0] == '#')
			continue;
		user = strtok_r(NULL, " \t\r\n", &save);
		if (user == NULL || strlen(tok) < TOKEN_MIN) {
			snprintf(err, errlen, "%s:%d: expected 'TOKEN USER' with a "
			    "token of at least %d characters", path, lineno,
			    TOKEN_MIN);
			goto fail;
		}
		errno = 0;
		uid = strtoul(user, &end, 10);
		if (*end != '\0' || errno != 0 || uid >= UID_ANON) {
			struct passwd pw, *res = NULL;
			char buf[4096];
			if (getpwnam_r(user, &pw, buf, sizeof(buf), &res) != 0 ||
			    res == NULL) {
				snprintf(err, errlen, "%s:%d: no user '%s'", path,
				    lineno, user);
				goto fail;
			}
			uid = pw.pw_uid;
		}
		nt = realloc(gw->toks, (size_t)(gw->ntoks + 1) * sizeof(*nt));
		if (nt == NULL)
			goto nomem;
		gw->toks = nt;
		if ((nt[gw->ntoks].tok = strdup(tok)) == NULL)
			goto nomem;
		nt[gw->ntoks++].uid = (uint32_t)uid;
	}
	fclose(f);
	LOG(LOG_INFO, "http: %d bearer tokens from %s", gw->ntoks, path);
	return (0);
nomem:
	snprintf(err, errlen, "http_tokens_file: out of memory");
fail:
	fclose(f);
	return (INFINI_EINVAL);
}

/* token_uid finds the Authorization header's bearer token; every entry is
 * compared in full so the time taken says nothing about near misses. */
static bool
token_uid(struct http_gw *gw, nng_http_req *req, uint32_t *uid)
{
	const char *a = nng_http_req_get_header(req, "Authorization");
	bool found = false;
	size_t n;

	if (a == NULL || strncasecmp(a, "Bearer ", 7) != 0)
		return (false);
	a += 7;
	while (*a == ' ')
		a++;
	n = strlen(a);
	for (int i = 0; i < gw->ntoks; i++) {
		const char *t = gw->toks[i].tok;
		size_t tn = strlen(t);
		unsigned char diff = tn != n;
		for (size_t k = 0; k < tn; k++)
			diff |= (unsigned char)(t[k] ^ a[k < n ? k : 0]);
		if (diff == 0 && !found) {
			*uid = gw->toks[i].uid;
			found = true;
		}
	}
	return (found);
}

/* ------------------------------------------------------------ requests */

/* hr_begin starts h once its body is in. */
static void
hr_begin(struct hreq *h)
{
	if (h->blen > 0) {
		h->json = cJSON_ParseWithLength(h->body, h->blen);
		if (h->json == NULL) {
			hr_fail(h, 400, "invalid_json", NULL, "the body is not "
			    "valid JSON");
			return;
		}
	}
	h->step = S_RPC;
	switch (h->kind) {
	case K_RPC: hr_rpc_begin(h); break;
	case K_COMPLETIONS: oai_completions_begin(h); break;
	case K_EMBEDDINGS: oai_embeddings_begin(h); break;
	default: hr_fail(h, 500, "internal", NULL, "bad route"); break;
	}
}

/* hr_cb: h's aio finished a body read, a call, or a write. */
static void
hr_cb(void *arg)
{
	struct hreq *h = arg;
	int rv = nng_aio_result(h->aio);
	bool gone;

	switch (h->step) {
	case S_BODY:
		if (rv != 0) {
			nng_aio *a = hr_take_haio(h);
			if (a != NULL)
				nng_aio_finish(a, rv);
			hr_free(h);
			return;
		}
		h->body[h->blen] = '\0';
		hr_begin(h);
		return;
	case S_HEAD:
	case S_CHUNK:
		if (rv != 0) {
			metrics_http(h->ep, 499, h->t0);
			oai_cancel_gen(h);
			return;
		}
		if (h->step == S_CHUNK && h->gen_done)
			oai_sse_end(h);
		else
			oai_poll_gen(h);
		return;
	case S_END:
		hr_free(h);
		return;
	case S_CANCEL:
		free(h->reply);
		h->reply = NULL;
		hr_free(h);
		return;
	default:
		break;
	}
	pthread_mutex_lock(&h->gw->mx);
	gone = h->gone;
	pthread_mutex_unlock(&h->gw->mx);
	if (gone) {
		/* The client left: learn the generation to cancel, if any. */
		if (h->step == S_GENERATE) {
			ProtobufCMessage *b;
			char msg[64];
			if (hr_take_reply(h, &infini__v1__generate_reply__descriptor,
			    &b, msg, sizeof(msg)) == 0 && b != NULL) {
				h->gen = ((Infini__V1__GenerateReply *)b)->generation_id;
				protobuf_c_message_free_unpacked(b, NULL);
			}
		}
		free(h->reply);
		h->reply = NULL;
		metrics_http(h->ep, 499, h->t0);
		oai_cancel_gen(h);
		return;
	}
	switch (h->step) {
	case S_RPC: hr_rpc_done(h); break;
	case S_OPEN: oai_open_done(h); break;
	case S_GENERATE: oai_generate_done(h); break;
	case S_POLL: oai_poll_done(h); break;
	case S_PUSH: oai_push_done(h); break;
	default: break;
	}
}

/* hr_abort is the handler aio's cancel routine: the connection closed
 * under a request still being served. */
static void
hr_abort(nng_aio *aio, void *arg, int rv)
{
	struct http_gw *gw = nng_http_handler_get_data(nng_aio_get_input(aio, 1));
	struct hreq *h;

	pthread_mutex_lock(&gw->mx);
	for (h = gw->live; h != NULL; h = h->next)
		if (h == arg && h->haio == aio)
			break;
	if (h != NULL) {
		h->haio = NULL;
		h->gone = true;
	}
	pthread_mutex_unlock(&gw->mx);
	if (h != NULL)
		nng_aio_finish(aio, rv);
}

/* watch_cb: the watched connection closed (or the client sent more):
 * a completion still unanswered is abandoned, and the next step sees
 * h->gone and cancels its generation. */
static void
watch_cb(void *arg)
{
	struct watch *w = arg;
	nng_aio *a = NULL;

	pthread_mutex_lock(&w->gw->mx);
	if (w->h != NULL) {
		w->h->watch = NULL;
		if ((a = w->h->haio) != NULL) {
			w->h->haio = NULL;
			w->h->gone = true;
		}
	}
	pthread_mutex_unlock(&w->gw->mx);
	if (a != NULL)
		nng_aio_finish(a, NNG_ECLOSED);
	/* Last touch of gw: http_stop waits for nwatch to reach 0. */
	pthread_mutex_lock(&w->gw->mx);
	w->gw->nwatch--;
	pthread_cond_broadcast(&w->gw->cv);
	pthread_mutex_unlock(&w->gw->mx);
	nng_aio_reap(w->aio);
	free(w);
}

/* watch_start begins watching h's connection for the client leaving. */
void
hr_watch_start(struct hreq *h)
{
	struct watch *w = calloc(1, sizeof(*w));
	nng_iov iov;

	if (w == NULL || nng_aio_alloc(&w->aio, watch_cb, w) != 0) {
		free(w);
		return;
	}
	w->gw = h->gw;
	w->h = h;
	iov.iov_buf = &w->byte;
	iov.iov_len = 1;
	h->watch = w;
	h->watched = true;
	pthread_mutex_lock(&h->gw->mx);
	h->gw->nwatch++;
	pthread_mutex_unlock(&h->gw->mx);
	nng_aio_set_iov(w->aio, 1, &iov);
	nng_http_conn_read(h->conn, w->aio);
}

/* hr_destroy frees h (unlinked, nothing outstanding on its aio). */
static void
hr_destroy(struct hreq *h)
{
	pthread_mutex_lock(&h->gw->mx);
	if (h->watch != NULL)
		h->watch->h = NULL;
	pthread_mutex_unlock(&h->gw->mx);
	if (h->hijacked) {
		nng_http_conn_close(h->conn);
		nng_http_req_free(h->req);
	}
	free(h->body);
	free(h->reply);
	free(h->text);
	free(h->wbuf);
	cJSON_Delete(h->json);
	cJSON_Delete(h->data);
	free(h);
}

void
hr_free(struct hreq *h)
{
	struct http_gw *gw = h->gw;
	nng_aio *a;

	pthread_mutex_lock(&gw->mx);
	if (h->prevp == NULL) {
		/* http_stop took it over and frees it. */
		pthread_mutex_unlock(&gw->mx);
		return;
	}
	if ((*h->prevp = h->next) != NULL)
		h->next->prevp = h->prevp;
	h->prevp = NULL;
	a = h->haio;
	h->haio = NULL;
	pthread_mutex_unlock(&gw->mx);
	if (a != NULL)
		nng_aio_finish(a, NNG_ECLOSED);
	/* Called from the aio's own callback: free it from NNG's reaper. */
	nng_aio_reap(h->aio);
	hr_destroy(h);
}

/* hr_end ends h, first cancelling a generation still running. */
void
hr_end(struct hreq *h)
{
	if (h->gen != 0 && !h->gen_done)
		oai_cancel_gen(h);
	else
		hr_free(h);
}

struct route {
	const char *verb, *path;  /* '*' matches one path segment */
	enum kind kind;
	int method;
	enum mx_ep ep;
	const char *idfield;      /* the request field the '*' fills */
};

#define SID "stream_id"
#define GID "generation_id"


static const struct route routes[] = {
	{ "GET", "/metrics", K_METRICS, 0, MX_EP_METRICS, NULL },
	{ "GET", "/v1/models", K_MODELS, 0, MX_EP_API, NULL },
	{ "POST", "/v1/completions", K_COMPLETIONS, 0, MX_EP_COMPLETIONS,
	  NULL },
	{ "POST", "/v1/embeddings", K_EMBEDDINGS, 0, MX_EP_EMBEDDINGS, NULL },
	{ "GET", "/v1/health", K_RPC, M(HEALTH), MX_EP_API, NULL },
	{ "GET", "/v1/stats", K_RPC, M(STATS), MX_EP_API, NULL },
	{ "GET", "/v1/streams", K_RPC, M(LIST_STREAMS), MX_EP_API, NULL },
	{ "POST", "/v1/streams", K_RPC, M(OPEN_STREAM), MX_EP_API, NULL },
	{ "DELETE", "/v1/streams/*", K_RPC, M(CLOSE_STREAM), MX_EP_API, SID },
	{ "POST", "/v1/streams/*/push", K_RPC, M(PUSH), MX_EP_API, SID },
	{ "POST", "/v1/streams/*/generate", K_RPC, M(GENERATE), MX_EP_API, SID },
	{ "POST", "/v1/streams/*/fork", K_RPC, M(FORK), MX_EP_API, SID },
	{ "POST", "/v1/streams/*/snapshot", K_RPC, M(SNAPSHOT), MX_EP_API, SID },
	{ "POST", "/v1/restore", K_RPC, M(RESTORE), MX_EP_API, NULL },
	{ "GET", "/v1/snapshots", K_RPC, M(LIST_SNAPSHOTS), MX_EP_API, NULL },
	{ "DELETE", "/v1/snapshots/*", K_RPC, M(DELETE_SNAPSHOT), MX_EP_API,
	  "name" },
	{ "POST", "/v1/generations/*/poll", K_RPC, M(POLL), MX_EP_API, GID },
	{ "POST", "/v1/generations/*/cancel", K_RPC, M(CANCEL), MX_EP_API, GID },
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

/* path_match: does path fit pattern?  The '*' segment goes to id. */
static bool
path_match(const char *pat, const char *path, char *id, size_t idlen)
{
	while (*pat && *path) {
		if (*pat == '*') {
			size_t n = strcspn(path, "/");
			if (n == 0 || n >= idlen)
				return (false);
			memcpy(id, path, n);
			id[n] = '\0';
			path += n;
			pat++;
			continue;
		}
		if (*pat++ != *path++)
			return (false);
	}
	return (*pat == '\0' && *path == '\0');
}

/* route_for finds the route of verb and path; *wrong_verb when only the
 * verb differs. */
static const struct route *
route_for(const char *verb, const char *path, char *id, size_t idlen,
    bool *wrong_verb)
{
	*wrong_verb = false;
	for (size_t i = 0; i < NROUTES; i++) {
		id[0] = '\0';
		if (!path_match(routes[i].path, path, id, idlen))
			continue;
		if (strcmp(routes[i].verb, verb) == 0)
			return (&routes[i]);
		*wrong_verb = true;
	}
	id[0] = '\0';
	return (NULL);
}

static void
serve_metrics(struct http_gw *gw, nng_aio *haio, int64_t t0)
{
	size_t len;
	char *text = metrics_render(gw->d, &len);

	if (text == NULL) {
		nng_aio_finish(haio, NNG_ENOMEM);
		return;
	}
	hr_finish(haio, 200, "text/plain; version=0.0.4; charset=utf-8", text,
	    len, false);
	free(text);
	metrics_http(MX_EP_METRICS, 200, t0);
}

/* serve_models answers OpenAI's model list: the one model served (some
 * clients ask before anything else). */
static void
serve_models(struct http_gw *gw, nng_aio *haio, int64_t t0)
{
	cJSON *o = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(o, "data");
	cJSON *m = cJSON_CreateObject();
	char *s;

	cJSON_AddStringToObject(o, "object", "list");
	cJSON_AddStringToObject(m, "id", gw->d->cfg.model);
	cJSON_AddStringToObject(m, "object", "model");
	/* when the daemon started, in Unix seconds */
	cJSON_AddNumberToObject(m, "created", (double)(time(NULL) -
	    (now_ms() - gw->d->start_ms) / 1000));
	cJSON_AddStringToObject(m, "owned_by", "infinid");
	if (!cJSON_AddItemToArray(list, m))
		cJSON_Delete(m);
	if ((s = cJSON_PrintUnformatted(o)) == NULL) {
		cJSON_Delete(o);
		nng_aio_finish(haio, NNG_ENOMEM);
		return;
	}
	hr_finish(haio, 200, "application/json", s, strlen(s), false);
	metrics_http(MX_EP_API, 200, t0);
	free(s);
	cJSON_Delete(o);
}

/* hr_handle is NNG's handler for every path. */
static void
hr_handle(nng_aio *haio)
{
	nng_http_req *req = nng_aio_get_input(haio, 0);
	nng_http_conn *conn = nng_aio_get_input(haio, 2);
	struct http_gw *gw = nng_http_handler_get_data(nng_aio_get_input(haio, 1));
	int64_t t0 = now_us();
	const char *uri = nng_http_req_get_uri(req), *cl;
	const struct route *r;
	char path[512], id[WIRE_ID_MAX + 1];
	unsigned long long len = 0;
	struct hreq *h;
	bool wrong_verb;
	uint32_t uid = UID_ANON;

	snprintf(path, sizeof(path), "%.*s", (int)strcspn(uri, "?"), uri);
	r = route_for(nng_http_req_get_method(req), path, id, sizeof(id),
	    &wrong_verb);
	if (r == NULL) {
		hr_early_error(haio, req, MX_EP_API, t0, wrong_verb ? 405 : 404,
		    wrong_verb ? "method_not_allowed" : "not_found",
		    wrong_verb ? "method not allowed here" : "no such endpoint");
		return;
	}
	if (!token_uid(gw, req, &uid)) {
		hr_early_error(haio, req, r->ep, t0, 401, "invalid_api_key",
		    "a valid bearer token is required (Authorization: Bearer "
		    "TOKEN)");
		return;
	}
	if (r->kind == K_MODELS) {
		serve_models(gw, haio, t0);
		return;
	}
	if (r->kind == K_METRICS) {
		serve_metrics(gw, haio, t0);
		return;
	}
	if ((cl = nng_http_req_get_header(req, "Content-Length")) != NULL) {
		char *end;
		errno = 0;
		len = strtoull(cl, &end, 10);
		if (*cl == '\0' || *end != '\0' || errno != 0) {
			hr_early_error(haio, req, r->ep, t0, 400, "invalid_request",
			    "bad Content-Length");
			return;
		}
	} else if (nng_http_req_get_header(req, "Transfer-Encoding") != NULL) {
		hr_early_error(haio, req, r->ep, t0, 411, "length_required",
		    "send the body with a Content-Length");
		return;
	}
	if (len > (unsigned long long)gw->d->cfg.http_max_body_bytes) {
		hr_early_error(haio, req, r->ep, t0, 413, "request_too_large",
		    "the body is larger than http_max_body_bytes");
		return;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL ||
	    (h->body = malloc((size_t)len + 1)) == NULL ||
	    nng_aio_alloc(&h->aio, hr_cb, h) != 0) {
		if (h != NULL)
			free(h->body);
		free(h);
		hr_early_error(haio, req, r->ep, t0, 500, "internal",
		    "out of memory");
		return;
	}
	h->gw = gw;
	h->call.d = gw->d;
	h->call.tr = &hr_transport;
	h->req = req;
	h->conn = conn;
	h->kind = r->kind;
	h->ep = r->ep;
	h->method = r->method;
	h->uid = uid;
	h->t0 = t0;
	h->blen = (size_t)len;
	snprintf(h->pid, sizeof(h->pid), "%s", id);
	h->idfield = r->idfield;
	pthread_mutex_lock(&gw->mx);
	if (gw->stopping) {
		pthread_mutex_unlock(&gw->mx);
		nng_aio_free(h->aio);
		free(h->body);
		free(h);
		hr_early_error(haio, req, r->ep, t0, 503, "unavailable",
		    "the daemon is stopping");
		return;
	}
	h->haio = haio;
	if ((h->next = gw->live) != NULL)
		gw->live->prevp = &h->next;
	gw->live = h;
	h->prevp = &gw->live;
	pthread_mutex_unlock(&gw->mx);
	nng_aio_defer(haio, hr_abort, h);
	if (len > 0) {
		nng_iov iov = { .iov_buf = h->body, .iov_len = (size_t)len };
		h->step = S_BODY;
		nng_aio_set_iov(h->aio, 1, &iov);
		nng_http_conn_read_all(conn, h->aio);
		return;
	}
	hr_begin(h);
}

/* ------------------------------------------------------------ lifetime */

int
http_prepare(struct infinid *d, char *err, size_t errlen)
{
	struct http_gw *gw;

	if (d->cfg.http_listen[0] == '\0' || d->http != NULL)
		return (0);
	if ((gw = calloc(1, sizeof(*gw))) == NULL)
		return (INFINI_ENOMEM);
	gw->d = d;
	pthread_mutex_init(&gw->mx, NULL);
	clk_cond_init(&gw->cv);
	d->http = gw;
	return (tokens_load(gw, d->cfg.http_tokens_file, err, errlen));
}

int
http_start(struct infinid *d, char *err, size_t errlen)
{
	struct http_gw *gw;
	char url[300];
	nng_url *u = NULL;
	int rv;

	if (d->cfg.http_listen[0] == '\0')
		return (0);
	if ((rv = http_prepare(d, err, errlen)) != 0)
		return (rv);
	gw = d->http;
	snprintf(url, sizeof(url), "http://%s", d->cfg.http_listen);
	if ((rv = nng_url_parse(&u, url)) != 0 ||
	    (rv = nng_http_server_hold(&gw->srv, u)) != 0) {
		snprintf(err, errlen, "http_listen %s: %s", d->cfg.http_listen,
		    nng_strerror(rv));
		nng_url_free(u);
		return (INFINI_EINVAL);
	}
	nng_url_free(u);
	if ((rv = nng_http_handler_alloc(&gw->h, "/", hr_handle)) != 0 ||
	    (rv = nng_http_handler_set_method(gw->h, NULL)) != 0 ||
	    (rv = nng_http_handler_set_tree(gw->h)) != 0 ||
	    (rv = nng_http_handler_collect_body(gw->h, false, 0)) != 0 ||
	    (rv = nng_http_handler_set_data(gw->h, gw, NULL)) != 0 ||
	    (rv = nng_http_server_add_handler(gw->srv, gw->h)) != 0) {
		snprintf(err, errlen, "http: %s", nng_strerror(rv));
		if (gw->h != NULL)
			nng_http_handler_free(gw->h);
		gw->h = NULL;
		return (INFINI_ENOMEM);
	}
	if ((rv = nng_http_server_start(gw->srv)) != 0) {
		snprintf(err, errlen, "http_listen %s: %s", d->cfg.http_listen,
		    nng_strerror(rv));
		return (INFINI_EIO);
	}
	LOG(LOG_INFO, "http: listening on %s", url);
	return (0);
}

void
http_stop(struct infinid *d)
{
	struct http_gw *gw = d->http;
	struct hreq *h;
	bool leak;

	if (gw == NULL)
		return;
	pthread_mutex_lock(&gw->mx);
	gw->stopping = true;
	pthread_mutex_unlock(&gw->mx);
	if (gw->srv != NULL)
		nng_http_server_stop(gw->srv);
	/* Nothing of the daemon answers a gateway call from now on. */
	pthread_mutex_lock(&d->mu);
	rpc_unpark(d, &hr_transport);
	pthread_mutex_lock(&gw->mx);
	for (h = gw->live; h != NULL; h = h->next)
		h->call.tr = &hr_gone_transport;
	pthread_mutex_unlock(&gw->mx);
	pthread_mutex_unlock(&d->mu);
	for (;;) {
		nng_aio *a;

		pthread_mutex_lock(&gw->mx);
		if ((h = gw->live) != NULL) {
			if ((gw->live = h->next) != NULL)
				h->next->prevp = &gw->live;
			h->prevp = NULL;
		}
		pthread_mutex_unlock(&gw->mx);
		if (h == NULL)
			break;
		nng_aio_stop(h->aio);
		pthread_mutex_lock(&gw->mx);
		a = h->haio;
		h->haio = NULL;
		pthread_mutex_unlock(&gw->mx);
		if (a != NULL)
			nng_aio_finish(a, NNG_ECLOSED);
		nng_aio_free(h->aio);
		hr_destroy(h);
	}
	/* Every watched connection is closed now; their reads end at once.
	 * Should one not, gw stays allocated rather than freed under it. */
	{
		int64_t end = now_ms() + 2000, left;
		pthread_mutex_lock(&gw->mx);
		while (gw->nwatch > 0 && (left = end - now_ms()) > 0)
			clk_timedwait(&gw->cv, &gw->mx, left);
		leak = gw->nwatch > 0;
		pthread_mutex_unlock(&gw->mx);
	}
	if (gw->srv != NULL)
		nng_http_server_release(gw->srv);   /* frees the handler */
	else if (gw->h != NULL)
		nng_http_handler_free(gw->h);
	for (int i = 0; i < gw->ntoks; i++)
		free(gw->toks[i].tok);
	free(gw->toks);
	d->http = NULL;
	if (leak) {
		LOG(LOG_WARNING, "http: %d connection reads did not end at "
		    "shutdown", gw->nwatch);
		return;
	}
	pthread_cond_destroy(&gw->cv);
	pthread_mutex_destroy(&gw->mx);
	free(gw);
}
