/*
 * rconn.c - a Redis connection for the state store: URL parsing, Sentinel
 * master discovery, reconnection, bounded command timeouts and scripts
 * (rconn.h).  hiredis does the protocol; this file decides when to
 * connect, where, and what a failure means.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "clock.h"
#include "infini_err.h"
#include "rconn.h"
#include "store_impl.h"

#define RCONN_MAX_HOSTS 8

struct rhost {
	char host[256];
	int port;
};

struct rconn {
	pthread_mutex_t mu;
	bool sentinel;
	struct rhost hosts[RCONN_MAX_HOSTS];   /* the server, or sentinels */
	int nhosts;
	char master[128];                      /* sentinel: the master name */
	char user[128], password[256];         /* AUTH; empty: none */
	long db;
	int timeout_ms;                        /* per command, and connect */
	redisContext *c;                       /* NULL: not connected */
	struct rhost cur;                      /* where c goes */
	int64_t holdoff_until_ms;              /* no connect before this */
};


static struct timeval tv_of(int ms);

/* ---- parsing ---- */

/* parse_host reads HOST[:PORT] or [V6][:PORT] from s[0..n). */
static int
parse_host(const char *s, size_t n, struct rhost *h)
{
	const char *colon = NULL, *hs = s, *he;
	char port[8];

	if (n == 0)
		return (INFINI_EINVAL);
	if (s[0] == '[') {
		if ((he = memchr(s, ']', n)) == NULL)
			return (INFINI_EINVAL);
		hs = s + 1;
		if (he + 1 < s + n) {
			if (he[1] != ':')
				return (INFINI_EINVAL);
			colon = he + 1;
		}
	} else {
		colon = memchr(s, ':', n);
		he = colon != NULL ? colon : s + n;
	}
	if (he == hs || (size_t)(he - hs) >= sizeof(h->host))
		return (INFINI_EINVAL);
	memcpy(h->host, hs, he - hs);
	h->host[he - hs] = '\0';
	h->port = 6379;
	if (colon != NULL) {
		size_t pl = s + n - (colon + 1);
		char *end;
		long p;
		if (pl == 0 || pl >= sizeof(port))
			return (INFINI_EINVAL);
		memcpy(port, colon + 1, pl);
		port[pl] = '\0';
		p = strtol(port, &end, 10);
		if (*end != '\0' || p < 1 || p > 65535)
			return (INFINI_EINVAL);
		h->port = (int)p;
	}
	return (0);
}

/* parse_db reads a database number. */
static int
parse_db(const char *s, long *db)
{
	char *end;

	if (*s == '\0')
		return (0);
	errno = 0;
	*db = strtol(s, &end, 10);
	return (*end != '\0' || errno != 0 || *db < 0 || *db > 1000000 ?
	    INFINI_EINVAL : 0);
}

/* parse_auth takes [USER]:PASSWORD@ off the front of *s, if there. */
static int
parse_auth(struct rconn *rc, const char **s)
{
	const char *at = strchr(*s, '@'), *slash = strchr(*s, '/'), *colon;

	if (at == NULL || (slash != NULL && slash < at))
		return (0);
	if ((colon = memchr(*s, ':', at - *s)) == NULL ||
	    (size_t)(colon - *s) >= sizeof(rc->user) ||
	    (size_t)(at - colon - 1) >= sizeof(rc->password))
		return (INFINI_EINVAL);
	memcpy(rc->user, *s, colon - *s);
	memcpy(rc->password, colon + 1, at - colon - 1);
	*s = at + 1;
	return (0);
}

static int
parse(struct rconn *rc, const char *url)
{
	const char *s, *slash, *p;
	char path[256];

	rc->sentinel = strncmp(url, "redis-sentinel://", 17) == 0;
	s = url + (rc->sentinel ? 17 : 8);
	if (parse_auth(rc, &s) != 0)
		return (INFINI_EINVAL);
	slash = strchr(s, '/');
	for (p = s; p < (slash ? slash : s + strlen(s));) {
		const char *e = strchr(p, ',');
		if (e == NULL || (slash != NULL && e > slash))
			e = slash ? slash : s + strlen(s);
		if (rc->nhosts == RCONN_MAX_HOSTS ||
		    parse_host(p, e - p, &rc->hosts[rc->nhosts]) != 0)
			return (INFINI_EINVAL);
		rc->nhosts++;
		p = *e == ',' ? e + 1 : e;
	}
	if (rc->nhosts == 0 || (!rc->sentinel && rc->nhosts != 1))
		return (INFINI_EINVAL);
	if (slash == NULL || strlen(slash + 1) >= sizeof(path))
		return (rc->sentinel ? INFINI_EINVAL : 0);
	snprintf(path, sizeof(path), "%s", slash + 1);
	if (!rc->sentinel)
		return (parse_db(path, &rc->db));
	char *m = path, *d = strchr(path, '/');
	if (d != NULL)
		*d++ = '\0';
	if (*m == '\0' || strlen(m) >= sizeof(rc->master))
		return (INFINI_EINVAL);
	snprintf(rc->master, sizeof(rc->master), "%s", m);
	return (d != NULL ? parse_db(d, &rc->db) : 0);
}

int
rconn_alloc(const char *url, struct rconn **out, char *err, size_t errlen)
{
	struct rconn *rc;

	if ((rc = calloc(1, sizeof(*rc))) == NULL)
		return (sst_errf(INFINI_ENOMEM, err, errlen, "out of memory"));
	if (strlen(url) > 1024 || parse(rc, url) != 0) {
		free(rc);
		return (sst_errf(INFINI_EINVAL, err, errlen, "state_store: cannot "
		    "parse \"%.200s\": use redis://[:PASSWORD@]HOST:PORT/DB or "
		    "redis-sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT...]/"
		    "MASTER/DB", url));
	}
	pthread_mutex_init(&rc->mu, NULL);
	rc->timeout_ms = RCONN_CMD_TIMEOUT_MS;
	*out = rc;
	return (0);
}

void
rconn_free(struct rconn *rc)
{
	if (rc == NULL)
		return;
	if (rc->c != NULL)
		redisFree(rc->c);
	pthread_mutex_destroy(&rc->mu);
	free(rc);
}

void
rconn_set_timeout(struct rconn *rc, int ms)
{
	pthread_mutex_lock(&rc->mu);
	rc->timeout_ms = ms > 0 ? ms : RCONN_CMD_TIMEOUT_MS;
	if (rc->c != NULL)
		(void)redisSetTimeout(rc->c, tv_of(rc->timeout_ms));
	pthread_mutex_unlock(&rc->mu);
}

void
rconn_describe(const struct rconn *rc, char *buf, size_t len)
{
	if (!rc->sentinel) {
		snprintf(buf, len, "redis %s:%d db %ld", rc->hosts[0].host,
		    rc->hosts[0].port, rc->db);
		return;
	}
	snprintf(buf, len, "redis master '%s' of %d sentinel%s (first %s:%d) "
	    "db %ld", rc->master, rc->nhosts, rc->nhosts == 1 ? "" : "s",
	    rc->hosts[0].host, rc->hosts[0].port, rc->db);
}

/* ---- connecting ---- */

static struct timeval
tv_of(int ms)
{
	return ((struct timeval){ .tv_sec = ms / 1000,
	    .tv_usec = (ms % 1000) * 1000 });
}

/* dial connects to h with rc's timeouts; NULL with err set. */
static redisContext *
dial(const struct rconn *rc, const struct rhost *h, char *err,
    size_t errlen)
{
	redisContext *c = redisConnectWithTimeout(h->host, h->port,
	    tv_of(rc->timeout_ms < RCONN_CONNECT_TIMEOUT_MS ? rc->timeout_ms :
	    RCONN_CONNECT_TIMEOUT_MS));

	if (c == NULL) {
		sst_errf(0, err, errlen, "redis %s:%d: out of memory", h->host,
		    h->port);
		return (NULL);
	}
	if (c->err != 0 || redisSetTimeout(c,
	    tv_of(rc->timeout_ms)) != REDIS_OK) {
		sst_errf(0, err, errlen, "redis %s:%d: %s", h->host, h->port,
		    c->errstr);
		redisFree(c);
		return (NULL);
	}
	return (c);
}

/* simple runs a command on c and says whether its reply has type want
 * (then *out, if asked for, gets it). */
static bool
simple(redisContext *c, redisReply **out, int want, int argc,
    const char **argv, char *err, size_t errlen)
{
	redisReply *r = redisCommandArgv(c, argc, argv, NULL);
	bool good = r != NULL && r->type == want;

	if (!good)
		sst_errf(0, err, errlen, "%s: %s", argv[0], r == NULL ? c->errstr :
		    r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
	if (good && out != NULL)
		*out = r;
	else if (r != NULL)
		freeReplyObject(r);
	return (good);
}

/* ask_sentinel asks the sentinel at h where the master is. */
static bool
ask_sentinel(struct rconn *rc, const struct rhost *h, struct rhost *m,
    char *err, size_t errlen)
{
	const char *argv[] = { "SENTINEL", "get-master-addr-by-name",
	    rc->master };
	redisContext *c = dial(rc, h, err, errlen);
	redisReply *r = NULL;
	bool good = false;

	if (c == NULL)
		return (false);
	if (simple(c, &r, REDIS_REPLY_ARRAY, 3, argv, err, errlen)) {
		good = r->elements == 2 &&
		    r->element[0]->type == REDIS_REPLY_STRING &&
		    r->element[1]->type == REDIS_REPLY_STRING &&
		    strlen(r->element[0]->str) < sizeof(m->host);
		if (good) {
			snprintf(m->host, sizeof(m->host), "%s",
			    r->element[0]->str);
			m->port = atoi(r->element[1]->str);
		} else
			sst_errf(0, err, errlen, "sentinel %s:%d does not know "
			    "master '%s'", h->host, h->port, rc->master);
		freeReplyObject(r);
	} else if (err != NULL && errlen > 0)
		/* A nil reply: the sentinel does not monitor that name. */
		sst_errf(0, err, errlen, "sentinel %s:%d does not know master "
		    "'%s'", h->host, h->port, rc->master);
	redisFree(c);
	return (good);
}

/* setup authenticates, selects the database and, behind Sentinel, checks
 * that the server is the master now (it may be a demoted one). */
static bool
setup(struct rconn *rc, redisContext *c, char *err, size_t errlen)
{
	char db[24];
	/* AUTH PASSWORD, or AUTH USER PASSWORD (Redis 6 ACLs). */
	bool named = rc->user[0] != '\0';
	const char *auth[] = { "AUTH", named ? rc->user : rc->password,
	    rc->password };
	const char *sel[] = { "SELECT", db };
	const char *role[] = { "ROLE" };
	redisReply *r = NULL;
	bool good;

	if (rc->password[0] != '\0' && !simple(c, NULL, REDIS_REPLY_STATUS,
	    named ? 3 : 2, auth, err, errlen))
		return (false);
	snprintf(db, sizeof(db), "%ld", rc->db);
	if (rc->db != 0 &&
	    !simple(c, NULL, REDIS_REPLY_STATUS, 2, sel, err, errlen))
		return (false);
	if (!rc->sentinel)
		return (true);
	if (!simple(c, &r, REDIS_REPLY_ARRAY, 1, role, err, errlen))
		return (false);
	good = r->elements > 0 && r->element[0]->type == REDIS_REPLY_STRING &&
	    strcmp(r->element[0]->str, "master") == 0;
	freeReplyObject(r);
	if (!good)
		sst_errf(0, err, errlen, "the server Sentinel named is not a "
		    "master (a failover is under way)");
	return (good);
}

/* connect_locked makes rc->c; rc->mu held. */
static int
connect_locked(struct rconn *rc, char *err, size_t errlen)
{
	int64_t t = now_ms();

	if (t < rc->holdoff_until_ms)
		return (sst_errf(INFINI_EUNAVAILABLE, err, errlen, "redis is "
		    "unreachable (last try %lld ms ago)", (long long)(t -
		    (rc->holdoff_until_ms - RCONN_HOLDOFF_MS))));
	for (int i = 0; i < rc->nhosts; i++) {
		struct rhost m = rc->hosts[i];
		redisContext *c;
		if (rc->sentinel && !ask_sentinel(rc, &rc->hosts[i], &m, err,
		    errlen))
			continue;
		if ((c = dial(rc, &m, err, errlen)) == NULL)
			continue;
		if (!setup(rc, c, err, errlen)) {
			redisFree(c);
			continue;
		}
		rc->c = c;
		rc->cur = m;
		return (0);
	}
	rc->holdoff_until_ms = now_ms() + RCONN_HOLDOFF_MS;
	return (INFINI_EUNAVAILABLE);
}

static void
drop(struct rconn *rc)
{
	if (rc->c != NULL) {
		redisFree(rc->c);
		rc->c = NULL;
	}
}

/* gone: does error reply r say this server cannot serve us now? */
static bool
gone(const redisReply *r)
{
	return (r->type == REDIS_REPLY_ERROR &&
	    (strncmp(r->str, "READONLY", 8) == 0 ||
	    strncmp(r->str, "LOADING", 7) == 0 ||
	    strncmp(r->str, "MASTERDOWN", 10) == 0));
}

/* cmd_locked is rconn_cmd with rc->mu held. */
static int
cmd_locked(struct rconn *rc, int argc, const char **argv,
    const size_t *lens, redisReply **out, char *err, size_t errlen)
{
	int rv = INFINI_EUNAVAILABLE;

	for (int attempt = 0; attempt < 2; attempt++) {
		redisReply *r;
		if (rc->c == NULL &&
		    (rv = connect_locked(rc, err, errlen)) != 0)
			return (rv);
		if ((r = redisCommandArgv(rc->c, argc, argv, lens)) == NULL) {
			int en = errno;
			bool slow = rc->c->err == REDIS_ERR_IO &&
			    (en == EAGAIN || en == EWOULDBLOCK ||
			    en == ETIMEDOUT);
			rv = rc->c->err == REDIS_ERR_OOM ? INFINI_ENOMEM :
			    INFINI_EUNAVAILABLE;
			sst_errf(0, err, errlen, "redis %s:%d: %s (%s)",
			    rc->cur.host, rc->cur.port, slow ? "no answer "
			    "in time" : rc->c->errstr, argv[0]);
			drop(rc);
			if (rv == INFINI_ENOMEM)
				return (rv);
			if (slow) {
				/* Not again now, nor for a moment. */
				rc->holdoff_until_ms = now_ms() +
				    RCONN_HOLDOFF_MS;
				return (rv);
			}
			continue;
		}
		if (gone(r)) {
			sst_errf(0, err, errlen, "redis %s:%d: %s", rc->cur.host,
			    rc->cur.port, r->str);
			freeReplyObject(r);
			drop(rc);
			rv = INFINI_EUNAVAILABLE;
			continue;
		}
		*out = r;
		return (0);
	}
	return (rv);
}

int
rconn_cmd(struct rconn *rc, int argc, const char **argv, const size_t *lens,
    redisReply **out, char *err, size_t errlen)
{
	int rv;

	pthread_mutex_lock(&rc->mu);
	rv = cmd_locked(rc, argc, argv, lens, out, err, errlen);
	pthread_mutex_unlock(&rc->mu);
	return (rv);
}

/* The scripts' SHA1s are the same on every server (they are the SHA1 of
 * the source), so one cache serves every connection; this guards it. */
static pthread_mutex_t script_mu = PTHREAD_MUTEX_INITIALIZER;

/* load_script learns s's SHA1 (into sha) from the server: SCRIPT LOAD. */
static int
load_script(struct rconn *rc, const struct rscript *s, char *sha, char *err,
    size_t errlen)
{
	const char *argv[] = { "SCRIPT", "LOAD", s->src };
	redisReply *r;
	int rv;

	if ((rv = cmd_locked(rc, 3, argv, NULL, &r, err, errlen)) != 0)
		return (rv);
	if (r->type != REDIS_REPLY_STRING || r->len != 40) {
		rv = sst_errf(INFINI_EIO, err, errlen, "SCRIPT LOAD: %s",
		    r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
	} else
		memcpy(sha, r->str, 41);
	freeReplyObject(r);
	return (rv);
}

int
rconn_eval(struct rconn *rc, struct rscript *s, int nkeys, int argc,
    const char **argv, const size_t *lens, redisReply **out, char *err,
    size_t errlen)
{
	const char **av = NULL;
	size_t *al = NULL;
	char nk[16], sha[41];
	redisReply *r = NULL;
	int rv;

	if ((av = calloc(argc + 3, sizeof(*av))) == NULL ||
	    (al = calloc(argc + 3, sizeof(*al))) == NULL) {
		free(av);
		return (sst_errf(INFINI_ENOMEM, err, errlen, "out of memory"));
	}
	snprintf(nk, sizeof(nk), "%d", nkeys);
	av[2] = nk;
	al[2] = strlen(nk);
	for (int i = 0; i < argc; i++) {
		av[i + 3] = argv[i];
		al[i + 3] = lens != NULL ? lens[i] : strlen(argv[i]);
	}
	pthread_mutex_lock(&rc->mu);
	pthread_mutex_lock(&script_mu);
	memcpy(sha, s->sha, sizeof(sha));
	pthread_mutex_unlock(&script_mu);
	if (sha[0] == '\0') {
		if ((rv = load_script(rc, s, sha, err, errlen)) != 0)
			goto out;
		pthread_mutex_lock(&script_mu);
		memcpy(s->sha, sha, sizeof(sha));
		pthread_mutex_unlock(&script_mu);
	}
	av[0] = "EVALSHA";
	av[1] = sha;
	al[0] = 7;
	al[1] = 40;
	if ((rv = cmd_locked(rc, argc + 3, av, al, &r, err, errlen)) != 0)
		goto out;
	if (r->type == REDIS_REPLY_ERROR &&
	    strncmp(r->str, "NOSCRIPT", 8) == 0) {
		/* The server lost its script cache (a restart): EVAL loads
		 * the script again as it runs it. */
		freeReplyObject(r);
		r = NULL;
		av[0] = "EVAL";
		av[1] = s->src;
		al[0] = 4;
		al[1] = strlen(s->src);
		if ((rv = cmd_locked(rc, argc + 3, av, al, &r, err,
		    errlen)) != 0)
			goto out;
	}
	*out = r;
out:
	pthread_mutex_unlock(&rc->mu);
	free(av);
	free(al);
	return (rv);
}

/* code_of skips the "ERR " a server may put before a script's error. */
static const char *
code_of(const redisReply *r)
{
	return (strncmp(r->str, "ERR ", 4) == 0 ? r->str + 4 : r->str);
}

bool
rconn_err_is(const redisReply *r, const char *code)
{
	size_t n = strlen(code);
	const char *s;

	if (r->type != REDIS_REPLY_ERROR)
		return (false);
	s = code_of(r);
	return (strncmp(s, code, n) == 0 && (s[n] == ' ' || s[n] == '\0'));
}

const char *
rconn_err_text(const redisReply *r)
{
	const char *s = code_of(r), *sp = strchr(s, ' ');

	return (sp != NULL ? sp + 1 : "");
}
