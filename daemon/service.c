/*
 * service.c - what the main thread does while the daemon serves.
 *
 * SIGTERM, SIGINT and SIGHUP are blocked in every thread (svc_block_signals
 * runs before any thread exists) and taken here with sigtimedwait, so no
 * handler ever runs in async-signal context and a reload is ordinary code.
 * The wait times out at the next watchdog ping or status line.
 *
 * The watchdog pings carry the scheduler's liveness, not just this
 * thread's: the scheduler stamps d->sched_beat_ms every turn of its loop
 * (at least once a second when idle, once per device submission when busy).
 * A stamp older than the watchdog interval means the device or the table
 * lock is stuck, and the pings stop.
 *
 * A reload compares the running settings with freshly built ones by their
 * cfg_print text, key by key, so a key added to config.c later is handled
 * (as "needs a restart") without a change here.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "state.h"
#include "log.h"
#include "service.h"

#define SVC_STATUS_MS 5000      /* STATUS= period */
#define SVC_STALE_MIN_MS 3000   /* the idle scheduler stamps once a second */

/* The settings a reload applies to the running daemon; every other key
 * needs a restart.  All are read under d->mu. */
static const char *const live_keys[] = {
	"log_level", "max_queue", "max_request_tokens", "max_generate",
	"poll_max_ms", "generate_idle_s", "autosnapshot_segments",
	"autosnapshot_interval_s", "max_requests_per_uid",
	"max_queued_tokens_per_uid", "max_streams_per_uid", "max_stop_strings",
};

int
svc_block_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
		return (INFINI_EINTERNAL);
	return (0);
}

static bool
is_live(const char *key)
{
	for (size_t i = 0; i < sizeof(live_keys) / sizeof(live_keys[0]); i++)
		if (strcmp(key, live_keys[i]) == 0)
			return (true);
	return (false);
}

/* print_cfg renders c as cfg_print does into a malloc'd string. */
static char *
print_cfg(const struct cfg *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (f == NULL)
		return (NULL);
	cfg_print(c, f);
	if (fclose(f) != 0) {
		free(buf);
		return (NULL);
	}
	return (buf);
}

/* next_setting advances *p past the next "key = value" line of a cfg_print
 * text, cutting it into key and value in place.  False at the end. */
static bool
next_setting(char **p, char **key, char **value)
{
	while (**p != '\0') {
		char *line = *p, *nl = strchr(line, '\n'), *eq;
		if (nl != NULL) {
			*nl = '\0';
			*p = nl + 1;
		} else
			*p = line + strlen(line);
		if (line[0] == '#' || (eq = strstr(line, " = ")) == NULL)
			continue;
		*eq = '\0';
		*key = line;
		*value = eq + 3;
		return (true);
	}
	return (false);
}

static void
reload(struct infinid *d, struct notify *n, svc_load_fn load, void *arg)
{
	struct cfg old, nc;
	char err[1024], *ot = NULL, *nt = NULL, *op, *np, *ok, *ov, *nk, *nv;
	int level, applied = 0, held = 0;

	notify_reloading(n);
	notify_status(n, "reloading the configuration");
	LOG(LOG_NOTICE, "SIGHUP: reloading the configuration");
	if (load(arg, &nc, err, sizeof(err)) != 0) {
		LOG(LOG_ERR, "reload failed, settings unchanged: %s", err);
		goto done;
	}
	if ((level = log_parse_level(nc.log_level)) < 0) {
		LOG(LOG_ERR, "reload failed, settings unchanged: log_level: "
		    "unknown level '%s'", nc.log_level);
		goto done;
	}
	pthread_mutex_lock(&d->mu);
	old = d->cfg;
	pthread_mutex_unlock(&d->mu);
	if ((ot = print_cfg(&old)) == NULL || (nt = print_cfg(&nc)) == NULL) {
		LOG(LOG_ERR, "reload failed, settings unchanged: out of memory");
		goto done;
	}
	op = ot;
	np = nt;
	/* Both texts list the same keys in the same (table) order. */
	while (next_setting(&op, &ok, &ov) && next_setting(&np, &nk, &nv)) {
		if (strcmp(ok, nk) != 0 || strcmp(ov, nv) == 0)
			continue;
		if (!is_live(nk)) {
			LOG(LOG_WARNING, "%s: %s -> %s needs a restart; keeping "
			    "%s", nk, ov, nv, ov);
			held++;
			continue;
		}
		pthread_mutex_lock(&d->mu);
		int rv = cfg_set(&d->cfg, nk, nv, err, sizeof(err));
		pthread_mutex_unlock(&d->mu);
		if (rv != 0) {
			LOG(LOG_ERR, "%s: cannot apply: %s", nk, err);
			continue;
		}
		if (strcmp(nk, "log_level") == 0)
			log_level = level;
		LOG(LOG_NOTICE, "%s: %s -> %s", nk, ov, nv);
		applied++;
	}
	LOG(LOG_NOTICE, "reloaded: %d setting%s changed, %d need%s a restart",
	    applied, applied == 1 ? "" : "s", held, held == 1 ? "s" : "");
done:
	free(ot);
	free(nt);
	notify_ready(n);
}

/* A point on the load curve, for the rates in STATUS=. */
struct mark {
	int64_t ms;
	uint64_t requests, tokens;
	int nstreams;
};

static void
take_mark(struct infinid *d, struct mark *m)
{
	pthread_mutex_lock(&d->mu);
	m->ms = now_ms();
	m->requests = d->st.requests;
	m->tokens = d->st.tokens_in + d->st.tokens_out;
	m->nstreams = d->nstreams;
	pthread_mutex_unlock(&d->mu);
}

static void
send_status(struct infinid *d, struct notify *n, struct mark *last)
{
	struct mark m;
	double dt;

	take_mark(d, &m);
	dt = (double)(m.ms - last->ms) / 1000.0;
	if (dt <= 0)
		dt = 1;
	notify_status(n, "%d stream%s, %.0f requests/s, %.0f tokens/s",
	    m.nstreams, m.nstreams == 1 ? "" : "s",
	    (double)(m.requests - last->requests) / dt,
	    (double)(m.tokens - last->tokens) / dt);
	*last = m;
}

/* watchdog pings the manager if the scheduler stamped its heartbeat
 * recently enough; *stalled remembers what was logged. */
static void
watchdog(struct infinid *d, struct notify *n, int64_t stale_ms,
    bool *stalled)
{
	int64_t age = now_ms() - atomic_load(&d->sched_beat_ms);

	if (age <= stale_ms) {
		if (*stalled)
			LOG(LOG_NOTICE, "scheduler alive again; watchdog "
			    "pings resume");
		*stalled = false;
		notify_watchdog(n);
		return;
	}
	if (!*stalled) {
		LOG(LOG_ERR, "scheduler silent for %lld ms (device hung?); "
		    "withholding watchdog pings", (long long)age);
		notify_status(n, "scheduler stalled for %lld s",
		    (long long)(age / 1000));
	}
	*stalled = true;
}

int
svc_run(struct infinid *d, struct notify *n, svc_load_fn load, void *arg)
{
	uint64_t wd_us = notify_watchdog_usec(n);
	int64_t ping_ms = 0, stale_ms = 0, next_ping, next_status;
	struct mark last;
	bool stalled = false;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (wd_us > 0) {
		ping_ms = (int64_t)(wd_us / 2000) > 0 ? (int64_t)(wd_us / 2000) : 1;
		stale_ms = (int64_t)(wd_us / 1000);
		if (stale_ms < SVC_STALE_MIN_MS)
			stale_ms = SVC_STALE_MIN_MS;
		LOG(LOG_INFO, "watchdog: pinging every %lld ms while the "
		    "scheduler is alive", (long long)ping_ms);
	}
	take_mark(d, &last);
	next_ping = next_status = now_ms();
	for (;;) {
		int64_t t = now_ms(), wait;
		struct timespec ts;
		int sig;

		if (ping_ms > 0 && t >= next_ping) {
			watchdog(d, n, stale_ms, &stalled);
			next_ping = t + ping_ms;
		}
		if (t >= next_status) {
			if (!stalled)
				send_status(d, n, &last);
			next_status = t + SVC_STATUS_MS;
		}
		wait = next_status;
		if (ping_ms > 0 && next_ping < wait)
			wait = next_ping;
		wait -= now_ms();
		if (wait < 1)
			wait = 1;
		ts.tv_sec = (time_t)(wait / 1000);
		ts.tv_nsec = (long)(wait % 1000) * 1000000L;
		sig = sigtimedwait(&set, NULL, &ts);
		if (sig < 0)
			continue;       /* EAGAIN: time for a ping or a status */
		if (sig == SIGHUP) {
			reload(d, n, load, arg);
			next_status = 0;
			continue;
		}
		return (sig);
	}
}
