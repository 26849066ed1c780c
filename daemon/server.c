/*
 * server.c - the NNG side: one REP socket listening on every configured URL,
 * served by a pool of contexts each running the RECV -> serve -> SEND state
 * machine of NNG's async demo server.  A context whose request waits on the
 * scheduler or on a long-poll just holds its request (W_WAIT) while the other
 * contexts keep serving.  Peer credentials on ipc:// give each request its
 * caller's UID; a pipe that closes takes its queued requests with it and
 * cancels the generations it started.  Health is answered here without
 * d->mu, and connections past max_connections are closed on arrival.
 */
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "infinid.h"

#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/util/platform.h>
#include <nng/transport/ipc/ipc.h>
#include <nng/supplemental/tls/tls.h>
#include "log.h"
#include "metrics.h"

#define SRV_DRAIN_MS 2000       /* srv_stop: longest wait for replies in flight */
#define SRV_FD_RESERVE 64       /* descriptors never given to connections */

static void work_cb(void *arg);

/* A work's state is written by whichever thread moves it on (NNG's
 * callbacks, the scheduler's replies) and read by srv_stop's drain loop:
 * every access is atomic. */
static inline void
set_state(struct work *w, int state)
{
	__atomic_store_n(&w->state, state, __ATOMIC_RELEASE);
}

void
srv_reply(struct work *w, int code, const char *msg,
    const ProtobufCMessage *body)
{
	struct infinid *d = w->d;
	nng_msg *m;
	uint8_t *buf;
	size_t len;

	if (code != 0) {
		/* Every error reply is sent with d->mu held (Health, the one
		 * call served without it, never fails). */
		struct uacct *a = acct_get(d, w->uid);
		d->st.errors++;
		if (a != NULL)
			a->errors++;
		LOG(LOG_DEBUG, "reply %s: %s", wire_code_name(code), msg);
	}
	metrics_rpc(w->method, code, w->t0_us);
	if (w->local != NULL) {
		buf = wire_pack_reply(w->call_id, code, msg, body, &len);
		w->local(w, buf, len);
		return;
	}
	/* Packed straight into the message NNG sends: no copy of the body
	 * (a logits reply can be tens of MiB) besides protobuf-c's own. */
	struct wire_reply rp;
	wire_reply_init(&rp, w->call_id, code, msg, body);
	if (w->redirect != NULL)
		wire_reply_redirect(&rp, w->redirect);
	if (nng_msg_alloc(&m, rp.len) != 0) {
		/* Nothing can be sent; free the context for the next request. */
		set_state(w, W_RECV);
		nng_ctx_recv(w->ctx, w->aio);
		return;
	}
	wire_reply_pack(&rp, nng_msg_body(m));
	set_state(w, W_SEND);
	nng_aio_set_msg(w->aio, m);
	nng_ctx_send(w->ctx, w->aio);
}

void
srv_drop(struct work *w)
{
	set_state(w, W_RECV);
	nng_ctx_recv(w->ctx, w->aio);
}

bool
srv_pipe_alive(uint32_t pipe)
{
	nng_pipe p = NNG_PIPE_INITIALIZER;
	nng_sockaddr sa;

	/* 0 is no NNG connection: a call from the HTTP gateway, which
	 * notices its own clients leaving (http.c) and cancels their work. */
	if (pipe == 0)
		return (true);
	/* NNG looks the pipe up by id: a closed one is gone (NNG_ENOENT);
	 * any other answer means it is still there. */
	p.id = pipe;
	return (nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) != NNG_ENOENT);
}

void
srv_replyf(struct work *w, int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	srv_reply(w, code, msg, NULL);
}

void
srv_wake_polls(struct infinid *d, struct gen *g)
{
	struct work *w, *next;

	for (w = g->waiters; w != NULL; w = next) {
		next = w->pnext;
		w->pgen = NULL;
		w->pnext = NULL;
		methods_poll_reply(d, w, g, w->pafter);
	}
	g->waiters = NULL;
}

/*
 * sweeper: answers parked polls whose wait ran out, every 20 ms.  A thread
 * of its own (rather than an NNG timer per context) means a poll can be
 * answered from exactly one place at a time: whoever unlinks it from its
 * generation's waiters under d->mu replies.
 */
static void *
sweeper(void *arg)
{
	struct infinid *d = arg;
	struct timespec ts = { 0, 20 * 1000 * 1000 };

	pthread_mutex_lock(&d->mu);
	while (!d->sweep_stop) {
		int64_t t = now_ms();
		for (struct gen *g = d->gens; g != NULL; g = g->next)
			for (struct work **pp = &g->waiters; *pp != NULL;) {
				struct work *w = *pp;
				if (w->pdeadline_ms > t) {
					pp = &w->pnext;
					continue;
				}
				*pp = w->pnext;
				w->pgen = NULL;
				w->pnext = NULL;
				methods_poll_reply(d, w, g, w->pafter);
			}
		pthread_mutex_unlock(&d->mu);
		nanosleep(&ts, NULL);
		pthread_mutex_lock(&d->mu);
	}
	pthread_mutex_unlock(&d->mu);
	return (NULL);
}

static bool
in_admin_group(struct infinid *d, uint32_t uid, uint32_t gid)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	gid_t groups[256];
	int n = 256;

	if (!d->have_admin)
		return (false);
	if (gid == d->admin_gid)
		return (true);
	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) != 0 || res == NULL)
		return (false);
	if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &n) < 0)
		return (false);
	for (int i = 0; i < n; i++)
		if (groups[i] == d->admin_gid)
			return (true);
	return (false);
}

/* caller_uid reads the peer's credentials; root and the admin group map to
 * uid 0 (they may use every stream). */
static uint32_t
caller_uid(struct infinid *d, nng_msg *m, uint32_t *pipe_id)
{
	nng_pipe p = nng_msg_get_pipe(m);
	uint64_t uid, gid;

	*pipe_id = nng_pipe_id(p);
	if (nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_UID, &uid) != 0)
		return (UID_ANON);
	if (nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_GID, &gid) != 0)
		gid = (uint64_t)-1;
	if (uid != 0 && in_admin_group(d, (uint32_t)uid, (uint32_t)gid))
		return (0);
	return ((uint32_t)uid);
}

static void
serve(struct work *w, nng_msg *m)
{
	struct infinid *d = w->d;
	Infini__V1__Request *req;
	struct wire_alloc a;
	uint32_t uid, pipe;

	uid = caller_uid(d, m, &pipe);
	w->t0_us = now_us();
	w->method = 0;
	wire_alloc_init(&a, 4 * (size_t)d->cfg.max_message_bytes + (1u << 20));
	req = (Infini__V1__Request *)wire_unpack(&infini__v1__request__descriptor,
	    &a, nng_msg_len(m), nng_msg_body(m));
	nng_msg_free(m);
	w->uid = uid;
	__atomic_fetch_add(&d->st.requests, 1, __ATOMIC_RELAXED);
	/* Health is answered without d->mu, so that it never waits for the
	 * scheduler, whatever the scheduler is doing. */
	if (req != NULL && req->version == WIRE_VERSION &&
	    req->method == INFINI__V1__METHOD__HEALTH) {
		w->call_id = req->call_id;
		methods_health(d, w);
		infini__v1__request__free_unpacked(req, &a.pa);
		return;
	}
	struct mbody b = { 0 };
	if (req != NULL && req->version == WIRE_VERSION)
		methods_decode(req, &b);
	/* Daemons sharing a state store: take the stream's lease, or
	 * redirect to its holder (cluster.c), before d->mu. */
	if (req != NULL && clu_route(d, w, req, &b)) {
		methods_body_free(&b);
		infini__v1__request__free_unpacked(req, &a.pa);
		return;
	}
	pthread_mutex_lock(&d->mu);
	w->call_id = req ? req->call_id : 0;
	if (req != NULL)
		w->method = (int)req->method;
	if (req == NULL)
		srv_replyf(w, INFINI__V1__CODE__INVALID_ARGUMENT,
		    "request is not a valid infini.v1.Request envelope");
	else if (req->version != WIRE_VERSION)
		srv_replyf(w, INFINI__V1__CODE__FAILED_PRECONDITION,
		    "protocol version %u not supported (this daemon speaks %d)",
		    req->version, WIRE_VERSION);
	else
		methods_dispatch(d, w, uid, pipe, req, &b);
	pthread_mutex_unlock(&d->mu);
	methods_body_free(&b);
	if (req != NULL)
		infini__v1__request__free_unpacked(req, &a.pa);
}

static void
work_cb(void *arg)
{
	struct work *w = arg;
	int rv;

	switch (__atomic_load_n(&w->state, __ATOMIC_ACQUIRE)) {
	case W_INIT:
		set_state(w, W_RECV);
		nng_ctx_recv(w->ctx, w->aio);
		break;
	case W_RECV:
		if ((rv = nng_aio_result(w->aio)) != 0) {
			if (rv != NNG_ECLOSED && rv != NNG_ECANCELED) {
				nng_ctx_recv(w->ctx, w->aio);
			}
			break;
		}
		set_state(w, W_WAIT);
		serve(w, nng_aio_get_msg(w->aio));
		break;
	case W_SEND:
		if ((rv = nng_aio_result(w->aio)) != 0) {
			nng_msg_free(nng_aio_get_msg(w->aio));
			if (rv == NNG_ECLOSED)
				break;
		}
		set_state(w, W_RECV);
		nng_ctx_recv(w->ctx, w->aio);
		break;
	default:
		break;
	}
}

/* drop_gone removes from q the requests of pipe id, except one in the
 * device now (the scheduler stops it after its slice), and frees their
 * contexts.  A request not started leaves no trace; a push stopped between
 * two slices leaves the slices that ran in the stream, as a shorter push
 * would.  Returns how many.  d->mu held. */
static int
drop_gone(struct stream *s, struct item **head, struct item **tail,
    uint32_t id)
{
	struct item **pp = head, *prev = NULL;
	int n = 0;

	while (*pp != NULL) {
		struct item *it = *pp;
		bool running = s != NULL && s->busy && it == s->head;
		if (it->pipe != id || it->w == NULL || running) {
			prev = it;
			pp = &it->next;
			continue;
		}
		*pp = it->next;
		if (s != NULL)
			s->nqueued--;
		if (it->done > 0)
			LOG(LOG_INFO, "client left: its push to %s stopped after "
			    "%d of %d inputs", s->id, it->done, it->n);
		srv_drop(it->w);
		item_free(it);
		n++;
	}
	*tail = prev;
	return (n);
}

/* on_pipe_add: counts connections; closes one over max_connections or
 * one that would eat into the descriptors kept for state files. */
static void
on_pipe_add(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct infinid *d = arg;
	int n = atomic_fetch_add(&d->nconns, 1) + 1;
	(void)ev;

	if (n > d->cfg.max_connections || n > d->max_fds) {
		static _Atomic int64_t last_log;
		int64_t t = now_ms(), l = atomic_load(&last_log);
		/* Logged at most once a second: a flood must not flood the log. */
		if (t - l >= 1000 && atomic_compare_exchange_strong(&last_log,
		    &l, t))
			LOG(LOG_WARNING, "connection refused: %d open, limit %ld "
			    "(max_connections) or %d (file descriptors)", n - 1,
			    d->cfg.max_connections, d->max_fds);
		nng_pipe_close(p);
	}
}

/* on_pipe_rem: a client went away: its queued requests are dropped
 * (drop_gone; nothing more of them reaches the device), and the
 * generations it started are stopped. */
static void
on_pipe_rem(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct infinid *d = arg;
	uint32_t id = nng_pipe_id(p);
	int n;
	(void)ev;

	atomic_fetch_sub(&d->nconns, 1);
	pthread_mutex_lock(&d->mu);
	n = drop_gone(NULL, &d->ctl_head, &d->ctl_tail, id);
	for (struct stream *s = d->streams; s != NULL; s = s->next)
		if (s->head != NULL)
			n += drop_gone(s, &s->head, &s->tail, id);
	if (n > 0)
		LOG(LOG_INFO, "client left: %d queued request%s dropped", n,
		    n == 1 ? "" : "s");
	for (struct gen *g = d->gens; g != NULL; g = g->next)
		if (g->pipe == id && !g->done && !g->cancel) {
			LOG(LOG_INFO, "client left: generation %llu cancelled",
			    (unsigned long long)g->id);
			g->cancel = true;
			sched_wake(d);
		}
	pthread_mutex_unlock(&d->mu);
}

/*
 * ipc_claim makes url's socket path free for this daemon's listener, or
 * says why it cannot be.  A socket file that still answers belongs to a
 * running daemon (a second infinid started by mistake must not take its
 * clients: before this check it unlinked the live socket and served in its
 * place); one that refuses connections was left by a daemon that died, and
 * is removed.  Returns 0, or INFINI_EEXIST / INFINI_EIO with err set.
 */
static int
ipc_claim(const char *url, char *err, size_t errlen)
{
	const char *path = url + 6;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat sb;
	int fd, rv = 0;

	if (lstat(path, &sb) != 0)
		return (0);
	if (!S_ISSOCK(sb.st_mode)) {
		snprintf(err, errlen, "listen %s: the path exists and is not a "
		    "socket", url);
		return (INFINI_EEXIST);
	}
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "listen %s: path too long", url);
		return (INFINI_EINVAL);
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		snprintf(err, errlen, "listen %s: socket: %s", url,
		    strerror(errno));
		return (INFINI_EIO);
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		struct ucred cr;
		socklen_t n = sizeof(cr);

		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &n) == 0 &&
		    cr.pid > 0)
			snprintf(err, errlen, "another infinid is serving %s "
			    "(pid %ld)", url, (long)cr.pid);
		else
			snprintf(err, errlen, "another infinid is serving %s",
			    url);
		rv = INFINI_EEXIST;
	} else if (errno == ECONNREFUSED) {
		LOG(LOG_NOTICE, "removing the stale socket %s", path);
		if (unlink(path) != 0 && errno != ENOENT) {
			snprintf(err, errlen, "listen %s: removing the stale "
			    "socket: %s", url, strerror(errno));
			rv = INFINI_EIO;
		}
	} else {
		snprintf(err, errlen, "listen %s: probing the existing socket: "
		    "%s", url, strerror(errno));
		rv = INFINI_EIO;
	}
	close(fd);
	return (rv);
}

/* claim_one is srv_claim's step for one URL. */
static int
claim_one(struct infinid *d, const char *url, char *err, size_t errlen)
{
	(void)d;
	return (strncmp(url, "ipc://", 6) == 0 ? ipc_claim(url, err, errlen) : 0);
}

static int
listen_one(struct infinid *d, const char *url, char *err, size_t errlen)
{
	nng_listener l;
	int rv;

	if ((rv = nng_listener_create(&l, d->sock, url)) != 0) {
		snprintf(err, errlen, "listen %s: %s", url, nng_strerror(rv));
		return (INFINI_EINVAL);
	}
	if (strncmp(url, "tls+", 4) == 0) {
		nng_tls_config *tls = NULL;
		if (d->cfg.tls_cert_key_file[0] == '\0') {
			snprintf(err, errlen, "listen %s: set tls_cert_key_file to "
			    "the PEM certificate and key to present", url);
			return (INFINI_EINVAL);
		}
		if ((rv = nng_tls_config_alloc(&tls, NNG_TLS_MODE_SERVER)) != 0 ||
		    (rv = nng_tls_config_cert_key_file(tls,
		    d->cfg.tls_cert_key_file, NULL)) != 0 ||
		    (rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, tls)) != 0) {
			snprintf(err, errlen, "listen %s: %s: %s", url,
			    d->cfg.tls_cert_key_file, nng_strerror(rv));
			if (tls != NULL)
				nng_tls_config_free(tls);
			return (INFINI_EINVAL);
		}
		nng_tls_config_free(tls);   /* the listener keeps a reference */
	}
	if (strncmp(url, "ipc://", 6) == 0) {
		(void)nng_listener_set_int(l, NNG_OPT_IPC_PERMISSIONS,
		    (int)d->cfg.socket_mode);
	}
	if ((rv = nng_listener_start(l, 0)) != 0) {
		snprintf(err, errlen, "listen %s: %s", url, nng_strerror(rv));
		return (INFINI_EIO);
	}
	if (strncmp(url, "ipc://", 6) == 0)
		chmod(url + 6, (mode_t)d->cfg.socket_mode);
	LOG(LOG_INFO, "listening on %s", url);
	return (0);
}

/* each_url calls fn for every URL of the listen setting, in order, and
 * returns the first error. */
static int
each_url(struct infinid *d,
    int (*fn)(struct infinid *, const char *, char *, size_t),
    char *err, size_t errlen)
{
	char urls[sizeof(d->cfg.listen)], *save = NULL, *u;
	int rv;

	snprintf(urls, sizeof(urls), "%s", d->cfg.listen);
	for (u = strtok_r(urls, ",", &save); u != NULL;
	    u = strtok_r(NULL, ",", &save)) {
		while (*u == ' ')
			u++;
		if (*u && (rv = fn(d, u, err, errlen)) != 0)
			return (rv);
	}
	return (0);
}

int
srv_claim(struct infinid *d, char *err, size_t errlen)
{
	return (each_url(d, claim_one, err, errlen));
}

/* fd_room: how many connections the descriptor limit allows, keeping
 * SRV_FD_RESERVE free for state files, snapshots and the log. */
static int
fd_room(void)
{
	struct rlimit rl;
	DIR *dir;
	int used = 0;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur > INT32_MAX)
		return (INT32_MAX);
	if ((dir = opendir("/proc/self/fd")) != NULL) {
		while (readdir(dir) != NULL)
			used++;
		closedir(dir);
	}
	/* Each listener and NNG's own pollers take a few more.  A limit too
	 * low for any reserve still lets a few clients in. */
	used += 16;
	int room = (int)rl.rlim_cur - used - SRV_FD_RESERVE;
	return (room < 8 ? 8 : room);
}

int
srv_start(struct infinid *d, char *err, size_t errlen)
{
	int rv;

	d->max_fds = fd_room();
	if ((rv = nng_rep0_open(&d->sock)) != 0) {
		snprintf(err, errlen, "nng_rep0_open: %s", nng_strerror(rv));
		return (INFINI_EIO);
	}
	nng_socket_set_size(d->sock, NNG_OPT_RECVMAXSZ,
	    (size_t)d->cfg.max_message_bytes);
	nng_pipe_notify(d->sock, NNG_PIPE_EV_ADD_PRE, on_pipe_add, d);
	nng_pipe_notify(d->sock, NNG_PIPE_EV_REM_POST, on_pipe_rem, d);
	d->nworks = (int)d->cfg.workers;
	if ((d->works = calloc((size_t)d->nworks, sizeof(*d->works))) == NULL)
		return (INFINI_ENOMEM);
	for (int i = 0; i < d->nworks; i++) {
		struct work *w = calloc(1, sizeof(*w));
		if (w == NULL)
			return (INFINI_ENOMEM);
		d->works[i] = w;
		w->d = d;
		if (nng_aio_alloc(&w->aio, work_cb, w) != 0 ||
		    nng_ctx_open(&w->ctx, d->sock) != 0) {
			snprintf(err, errlen, "cannot set up NNG contexts");
			return (INFINI_ENOMEM);
		}
	}
	if ((rv = each_url(d, listen_one, err, errlen)) != 0)
		return (rv);
	if (pthread_create(&d->sweeper, NULL, sweeper, d) != 0)
		return (INFINI_ENOMEM);
	d->have_sweeper = true;
	for (int i = 0; i < d->nworks; i++)
		work_cb(d->works[i]);
	return (0);
}

void
srv_stop(struct infinid *d)
{
	if (d->have_sweeper) {
		pthread_mutex_lock(&d->mu);
		d->sweep_stop = true;
		pthread_mutex_unlock(&d->mu);
		pthread_join(d->sweeper, NULL);
		d->have_sweeper = false;
	}
	if (d->works == NULL)
		return;
	/* Replies already handed to NNG go out first (a request answered just
	 * before the stop, such as the one that met a lost device), for at
	 * most SRV_DRAIN_MS.  The state is written by NNG's callback thread. */
	for (int64_t end = now_ms() + SRV_DRAIN_MS; now_ms() < end;) {
		bool sending = false;
		for (int i = 0; i < d->nworks && !sending; i++)
			sending = d->works[i] != NULL && __atomic_load_n(
			    &d->works[i]->state, __ATOMIC_ACQUIRE) == W_SEND;
		if (!sending)
			break;
		nng_msleep(10);
	}
	nng_close(d->sock);
	/* No callback of ours runs after this. */
	for (int i = 0; i < d->nworks; i++) {
		struct work *w = d->works[i];
		if (w == NULL)
			continue;
		if (w->aio)
			nng_aio_stop(w->aio);
	}
	for (int i = 0; i < d->nworks; i++) {
		struct work *w = d->works[i];
		if (w == NULL)
			continue;
		nng_aio_free(w->aio);
		free(w);
	}
	free(d->works);
	d->works = NULL;
}
