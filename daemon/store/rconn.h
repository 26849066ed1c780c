/*
 * rconn.h - one connection to the Redis server of a state store (prefix
 * rconn_): the URL, finding the master through Sentinel, (re)connecting,
 * commands with bounded timeouts, and Lua scripts run by EVALSHA with an
 * EVAL fallback.  Used by store_redis.c and lease.c only.
 *
 * Every call takes the connection's mutex, so a connection may be shared
 * by threads; a command waits at most its timeout (RCONN_CMD_TIMEOUT_MS
 * unless set) for its reply.  A command that finds the connection lost,
 * or reaches a server that is no longer the master (READONLY after a
 * Sentinel failover), is sent once more on a fresh connection: every
 * command and script of the store is idempotent, so a reply lost on the
 * way is never applied twice.  One that timed out is not: a server that
 * does not answer would only make the caller wait twice as long.
 */
#ifndef SST_RCONN_H
#define SST_RCONN_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#define RCONN_CONNECT_TIMEOUT_MS 1000   /* at most; never above the next */
#define RCONN_CMD_TIMEOUT_MS 2000       /* the default (rconn_set_timeout) */
#define RCONN_HOLDOFF_MS 200    /* after a failed connect, fail fast */

struct rconn;

/* A Lua script: its source, and its SHA1 once the server told it. */
struct rscript {
	const char *src;
	char sha[41];
};

/*
 * rconn_alloc parses url (redis://[:PASSWORD@]HOST[:PORT][/DB] or
 * redis-sentinel://[:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/MASTER[/DB];
 * HOST may be [IPv6]) without connecting.  *out is the caller's
 * (rconn_free).  Returns 0, INFINI_EINVAL with err saying what is wrong,
 * or INFINI_ENOMEM.
 */
int rconn_alloc(const char *url, struct rconn **out, char *err,
    size_t errlen);
/* rconn_set_timeout sets how long a command (and a connect) may wait,
 * in ms (> 0), from the next call on. */
void rconn_set_timeout(struct rconn *rc, int ms);
/* rconn_free closes and frees rc; rc may be NULL. */
void rconn_free(struct rconn *rc);
/* rconn_describe writes "redis HOST:PORT db N" (or the sentinel form)
 * into buf; no password. */
void rconn_describe(const struct rconn *rc, char *buf, size_t len);

/*
 * rconn_cmd sends argv[0..argc) (binary-safe, lengths in lens) and returns
 * the reply in *out (the caller's: freeReplyObject), which may be a Redis
 * error reply for the caller to read.  Returns 0, INFINI_EUNAVAILABLE (no
 * server: refused, timed out, still loading its data, no master known)
 * or INFINI_ENOMEM; err says what happened.
 */
int rconn_cmd(struct rconn *rc, int argc, const char **argv,
    const size_t *lens, redisReply **out, char *err, size_t errlen);

/*
 * rconn_eval runs script s with nkeys of argv as KEYS and the rest as
 * ARGV: EVALSHA, or EVAL when the server does not know the script (it was
 * restarted or flushed).  Returns as rconn_cmd.
 */
int rconn_eval(struct rconn *rc, struct rscript *s, int nkeys, int argc,
    const char **argv, const size_t *lens, redisReply **out, char *err,
    size_t errlen);

/*
 * rconn_err_is: is r an error reply whose code (first word) is code?
 * Our scripts' refusals are "CODE message"; a server may put "ERR "
 * before a script's error, which is skipped.  rconn_err_text is the
 * message after the code ("" when none).
 */
bool rconn_err_is(const redisReply *r, const char *code);
const char *rconn_err_text(const redisReply *r);

#endif /* SST_RCONN_H */
