/*
 * redis_proc.h - redis-server (and redis-sentinel) as child processes of a
 * test, on loopback ports of their own: start, wait until they answer,
 * stop (gracefully or with SIGKILL) and start again on the same port and
 * files.  Shared by t_store, t_lease and t_scale.
 */
#ifndef REDIS_PROC_H
#define REDIS_PROC_H

#include <stdbool.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>

struct rproc {
	pid_t pid;
	int port;
	bool sentinel;
	char dir[512];           /* its working directory (data, config) */
	char log[600];           /* DIR/redis-PORT.log */
	char extra[512];         /* more "--key value" words, space-separated */
};

/* rproc_have: is redis-server on $PATH? (tests skip without it) */
bool rproc_have(void);

/*
 * rproc_start runs redis-server on 127.0.0.1:port (0: a free port, kept in
 * r->port for restarts) with its files in dir.  persist: append-only file
 * with an fsync per write, so the data outlives a restart or a SIGKILL;
 * otherwise nothing is saved (--save "" --appendonly no).  extra (may be
 * NULL) adds settings, e.g. "--replicaof 127.0.0.1 6380".  The child dies
 * with the test.  Waits up to 10 s for PING.  Returns 0 or -1.
 */
int rproc_start(struct rproc *r, const char *dir, int port, bool persist,
    const char *extra);
/* rproc_restart starts r again after rproc_stop, same port and files. */
int rproc_restart(struct rproc *r, bool persist);

/*
 * rproc_sentinel runs redis-sentinel on a free port watching the master
 * named name at 127.0.0.1:master_port, quorum 1, down-after 1000 ms,
 * failover-timeout 5000 ms.  Waits up to 10 s for it to know the master.
 */
int rproc_sentinel(struct rproc *r, const char *dir, const char *name,
    int master_port);

/*
 * rproc_sentinel_set starts, with their files in dir, a master m
 * (append-only), its replica rep and a Sentinel sen watching it as name
 * (rproc_sentinel).  Returns 0 or -1 (what started is left running, for
 * rproc_stop).
 */
int rproc_sentinel_set(struct rproc *m, struct rproc *rep, struct rproc *sen,
    const char *dir, const char *name);

/* rproc_sentinel_knows: does Sentinel s list a replica of the master
 * called name?  It learns replicas from the master's INFO every 10 s, and
 * one it does not know cannot be promoted.  Polls up to timeout_ms. */
bool rproc_sentinel_knows(const struct rproc *s, const char *name,
    int timeout_ms);

/* rproc_stop sends sig (SIGTERM: a clean shutdown; SIGKILL: a crash) and
 * waits up to 10 s for the exit (then SIGKILL).  Returns 0 or -1. */
int rproc_stop(struct rproc *r, int sig);

/* rproc_connect opens a hiredis connection to r for the test's own
 * checks (the caller's: redisFree), or NULL. */
redisContext *rproc_connect(const struct rproc *r);

#endif /* REDIS_PROC_H */
