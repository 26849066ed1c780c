/*
 * redis_proc.c - redis-server and redis-sentinel for tests (redis_proc.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon_proc.h"
#include "redis_proc.h"

bool
rproc_have(void)
{
	return (system("command -v redis-server >/dev/null 2>&1") == 0);
}

redisContext *
rproc_connect(const struct rproc *r)
{
	struct timeval tv = { .tv_sec = 1 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);

	if (c != NULL && (c->err != 0 || redisSetTimeout(c, tv) != REDIS_OK)) {
		redisFree(c);
		c = NULL;
	}
	return (c);
}

/* spawn runs argv with output to r->log; the child dies with the test. */
static int
spawn(struct rproc *r, char *const *argv)
{
	if ((r->pid = fork()) < 0)
		return (-1);
	if (r->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int fd = open(r->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		if (chdir(r->dir) != 0)
			_exit(126);
		execvp(argv[0], argv);
		_exit(127);
	}
	return (0);
}

/* answers: does r answer a command whose reply satisfies good, within
 * 10 s? */
static bool
answers(struct rproc *r, const char *cmd, bool (*good)(redisReply *))
{
	for (int i = 0; i < 100; i++) {
		redisContext *c = rproc_connect(r);
		redisReply *rep = c ? redisCommand(c, cmd) : NULL;
		bool yes = rep != NULL && good(rep);
		if (rep != NULL)
			freeReplyObject(rep);
		if (c != NULL)
			redisFree(c);
		if (yes)
			return (true);
		if (waitpid(r->pid, NULL, WNOHANG) == r->pid) {
			r->pid = -1;
			return (false);
		}
		usleep(100000);
	}
	return (false);
}

static bool
pong(redisReply *rep)
{
	return (rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "PONG") == 0);
}

static bool
master_known(redisReply *rep)
{
	return (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2);
}

/* argv_add splits words on spaces into argv from *n (at most max). */
static void
argv_add(char **argv, int *n, int max, char *words)
{
	for (char *w = strtok(words, " "); w != NULL && *n < max;
	    w = strtok(NULL, " "))
		argv[(*n)++] = w;
}

int
rproc_restart(struct rproc *r, bool persist)
{
	char port[16], extra[sizeof(r->extra)];
	char *argv[48] = { "redis-server", "--port", port, "--bind",
	    "127.0.0.1", "--daemonize", "no", "--save", "",
	    "--appendonly", persist ? "yes" : "no", "--appendfsync", "always",
	    "--protected-mode", "yes", "--dir", r->dir };
	int n = 17;

	snprintf(port, sizeof(port), "%d", r->port);
	snprintf(extra, sizeof(extra), "%s", r->extra);
	argv_add(argv, &n, 46, extra);
	argv[n] = NULL;
	if (spawn(r, argv) != 0)
		return (-1);
	if (!answers(r, "PING", pong)) {
		rproc_stop(r, SIGKILL);
		return (-1);
	}
	return (0);
}

int
rproc_start(struct rproc *r, const char *dir, int port, bool persist,
    const char *extra)
{
	memset(r, 0, sizeof(*r));
	r->pid = -1;
	r->port = port > 0 ? port : dproc_free_port();
	snprintf(r->dir, sizeof(r->dir), "%s", dir);
	snprintf(r->log, sizeof(r->log), "%s/redis-%d.log", dir, r->port);
	snprintf(r->extra, sizeof(r->extra), "%s", extra ? extra : "");
	if (r->port <= 0)
		return (-1);
	return (rproc_restart(r, persist));
}

int
rproc_sentinel(struct rproc *r, const char *dir, const char *name,
    int master_port)
{
	char conf[700], cmd[200];
	char *argv[] = { "redis-sentinel", conf, NULL };
	FILE *f;

	memset(r, 0, sizeof(*r));
	r->pid = -1;
	r->sentinel = true;
	if ((r->port = dproc_free_port()) <= 0)
		return (-1);
	snprintf(r->dir, sizeof(r->dir), "%s", dir);
	snprintf(r->log, sizeof(r->log), "%s/sentinel-%d.log", dir, r->port);
	snprintf(conf, sizeof(conf), "%s/sentinel-%d.conf", dir, r->port);
	if ((f = fopen(conf, "w")) == NULL)
		return (-1);
	fprintf(f, "port %d\nbind 127.0.0.1\ndaemonize no\ndir %s\n"
	    "sentinel monitor %s 127.0.0.1 %d 1\n"
	    "sentinel down-after-milliseconds %s 1000\n"
	    "sentinel failover-timeout %s 5000\n", r->port, dir, name,
	    master_port, name, name);
	fclose(f);
	if (spawn(r, argv) != 0)
		return (-1);
	snprintf(cmd, sizeof(cmd), "SENTINEL get-master-addr-by-name %s", name);
	if (!answers(r, cmd, master_known)) {
		rproc_stop(r, SIGKILL);
		return (-1);
	}
	return (0);
}

int
rproc_sentinel_set(struct rproc *m, struct rproc *rep, struct rproc *sen,
    const char *dir, const char *name)
{
	char extra[64];

	/* Disk-based sync: the replica is in sync at once, not after the
	 * diskless sync's 5 s delay. */
	if (rproc_start(m, dir, 0, true, "--repl-diskless-sync no") != 0)
		return (-1);
	snprintf(extra, sizeof(extra), "--replicaof 127.0.0.1 %d", m->port);
	if (rproc_start(rep, dir, 0, true, extra) != 0)
		return (-1);
	return (rproc_sentinel(sen, dir, name, m->port));
}

bool
rproc_sentinel_knows(const struct rproc *s, const char *name, int timeout_ms)
{
	bool known = false;

	for (int waited = 0; !known && waited <= timeout_ms; waited += 200) {
		redisContext *sc = rproc_connect(s);
		redisReply *q = sc ? redisCommand(sc, "SENTINEL replicas %s",
		    name) : NULL;
		known = q != NULL && q->type == REDIS_REPLY_ARRAY &&
		    q->elements > 0;
		if (q != NULL)
			freeReplyObject(q);
		if (sc != NULL)
			redisFree(sc);
		if (!known)
			usleep(200 * 1000);
	}
	return (known);
}

int
rproc_stop(struct rproc *r, int sig)
{
	int st;

	if (r->pid <= 0)
		return (0);
	kill(r->pid, sig);
	for (int i = 0; i < 100; i++) {
		if (waitpid(r->pid, &st, WNOHANG) == r->pid) {
			r->pid = -1;
			return (0);
		}
		usleep(100000);
	}
	kill(r->pid, SIGKILL);
	waitpid(r->pid, &st, 0);
	r->pid = -1;
	return (-1);
}
