/*
 * t_scale.c - several daemons serving one namespace of streams on a Redis
 * state store (docs/scale-out.md), as real processes: redis-server and
 * three infinid on loopback ports of their own, and a fourth infinid on a
 * directory store as the single-daemon reference.
 *
 * 48 streams are opened and fed through one libinfini client given all
 * three endpoints, which places them by rendezvous hashing.  Then the
 * daemon holding the most streams is killed with SIGKILL while the client
 * goes on feeding every stream.  Checked: the dead daemon's streams are
 * served by the others again (the time from the kill is measured and
 * printed, and bounded by the lease TTL plus a restore budget); each of
 * them lost at most the autosnapshot window (one segment here); and every
 * stream's output, on the daemons that took over as on the others, is bit
 * for bit what the reference daemon gives for the same inputs.
 *
 * Last, the same 48 streams on three fresh daemons whose store is
 * redis-sentinel:// (a master, a replica, a Sentinel): the master is killed
 * with SIGKILL half way through a round of pushes.  Checked as after the
 * daemon kill: every stream served, at most the autosnapshot window lost,
 * bit for bit the reference's; and the time until the daemons' writes to
 * the store resume (a named snapshot written in a loop from another thread
 * from the moment of the kill) is measured and printed.
 *
 * Before the kill, named snapshots: one written through the daemon that
 * holds its stream is listed, restored and deleted through the others,
 * which share it through Redis, and one whose owner is another UID is
 * neither listed nor restorable.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon_proc.h"
#include "infini.h"
#include "redis_proc.h"
#include "tcp_proxy.h"

#define NDAEMONS 3
#define NSTREAMS 48
#define ROUNDS 6                /* pushes per stream before the kill */
#define TTL_MS 2000
/* Client back-off, takeover and restore, times INFINI_TEST_TIMEOUT_MULTIPLIER
 * (sanitizer builds run the daemons several times slower). */
#define RESTORE_BUDGET_MS (15000 * tap_mult())

/* Who a tcp:// caller is to a daemon: no peer credentials, so the
 * anonymous UID (UID_ANON in daemon/state.h), which owns what it writes. */
#define TCP_UID 0xfffffffeu

static char top[512], model[600];

static long
tap_mult(void)
{
	const char *m = getenv("INFINI_TEST_TIMEOUT_MULTIPLIER");
	long v = m != NULL ? atol(m) : 1;

	return (v > 0 ? v : 1);
}
static struct dproc dp[NDAEMONS], ref;
static int port[NDAEMONS];     /* where each listens */
static char adv[NDAEMONS][64]; /* where clients reach each (member IDs) */
/* Member 0 reaches Redis, and its clients reach it, through proxies the
 * partition phase cuts. */
static struct tproxy *to_redis, *to_member0;
static int seg;                 /* the model's segment size */

/* tokens_of fills the k-th chunk (seg tokens) of stream i. */
static void
tokens_of(int i, int k, int32_t *t)
{
	uint64_t s = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1) + (uint64_t)k;

	for (int j = 0; j < seg; j++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		t[j] = (int32_t)((s >> 33) % 256);
	}
}

/* start_member starts member i in top/PREFIX<i> on store redis_url. */
static int
start_member(int i, const char *prefix, const char *redis_url)
{
	char dir[700], state[720], listen[900], ttl[16];

	snprintf(dir, sizeof(dir), "%s/%s%d", top, prefix, i);
	snprintf(state, sizeof(state), "%s/state", dir);
	mkdir(dir, 0700);
	mkdir(state, 0700);
	snprintf(listen, sizeof(listen), "ipc://%s/s.sock,tcp://127.0.0.1:%d",
	    dir, port[i]);
	snprintf(ttl, sizeof(ttl), "%d", TTL_MS);
	const char *extra[] = { "--listen", listen, "--state-store", redis_url,
	    "--advertise-url", adv[i], "--lease-ttl-ms", ttl,
	    "--autosnapshot-segments", "1", NULL };
	return (dproc_start(&dp[i], dir, model, state, extra, NULL));
}

/* owner_of reads which member holds stream id's lease (-1: none). */
static int
owner_of(redisContext *rc, const char *id)
{
	redisReply *r = redisCommand(rc, "GET infini:lease:%s", id);
	int who = -1;

	for (int i = 0; r != NULL && r->type == REDIS_REPLY_STRING &&
	    i < NDAEMONS; i++)
		if (strcmp(r->str, adv[i]) == 0)
			who = i;
	if (r != NULL)
		freeReplyObject(r);
	return (who);
}

/*
 * named_snapshots: a named snapshot of stream s00 written through its
 * holder is seen by the other two daemons (each dialled alone): listed with
 * its stream and position, restored as a new stream at that position, and
 * deleted through a third.  Then one whose recorded owner is changed to
 * another UID in Redis is refused by a daemon that did not write it.
 */
static void
named_snapshots(infini_client *c, redisContext *rc, const int *owner)
{
	infini_client *one[NDAEMONS] = { NULL };
	struct infini_snapshot_info *v = NULL;
	uint64_t pos = 0;
	size_t n = 0;
	int w = owner[0], rv = 0, seen = 0;

	for (int i = 0; i < NDAEMONS; i++)
		rv |= infini_connect(adv[i], 5000, &one[i]);
	ok(rv == 0 && w >= 0, "a client for each daemon alone");
	if (rv != 0 || w < 0)
		goto out;
	int a = (w + 1) % NDAEMONS, b = (w + 2) % NDAEMONS;
	rv = infini_snapshot(one[w], "s00", "shared-1", NULL, NULL);
	ok(rv == 0, "named snapshot shared-1 of s00 written through daemon %d "
	    "(%s)", w, rv ? infini_errmsg() : "ok");
	int64_t t0 = fx_now_ms();
	rv = infini_list_snapshots(one[a], &v, &n);
	int64_t list_ms = fx_now_ms() - t0;
	for (size_t i = 0; rv == 0 && i < n; i++)
		if (strcmp(v[i].name, "shared-1") == 0 &&
		    strcmp(v[i].stream_id, "s00") == 0 &&
		    v[i].position == (uint64_t)(ROUNDS * seg) &&
		    v[i].owner_uid == TCP_UID && v[i].bytes > 0 &&
		    v[i].created_ms > 0)
			seen++;
	infini_snapshot_list_free(v);
	v = NULL;
	ok(rv == 0 && seen == 1, "daemon %d lists it with its stream, "
	    "position %d and owner (%zu listed in %lld ms)", a, ROUNDS * seg,
	    n, (long long)list_ms);
	/* Restored under new IDs until one is placed on another daemon
	 * than the writer (rendezvous hashing decides; 2 in 3 are). */
	char cid[32];
	int by = w;
	rv = 0;
	for (int k = 0; rv == 0 && by == w && k < 12; k++) {
		snprintf(cid, sizeof(cid), "s00-copy%d", k);
		rv = infini_restore(c, cid, "shared-1", NULL, 0, &pos);
		by = owner_of(rc, cid);
	}
	ok(rv == 0 && by >= 0 && by != w && pos == (uint64_t)(ROUNDS * seg),
	    "restored as %s by daemon %d, at position %llu (%s)", cid, by,
	    (unsigned long long)pos, rv ? infini_errmsg() : "ok");
	rv = infini_delete_snapshot(one[b], "shared-1");
	ok(rv == 0, "deleted through daemon %d (%s)", b,
	    rv ? infini_errmsg() : "ok");
	/* An ID the loop above never used: it stops at the first copy placed
	 * off the writer, so any of s00-copy0..11 may exist. */
	rv = infini_restore(one[a], "s00-gone", "shared-1", NULL, 0, NULL);
	is_int(rv, INFINI_ENOENT, "and gone for daemon %d", a);

	/* Another user's: the owner Redis keeps beside the bytes is what
	 * the daemons check (every tcp caller is the same UID, so the entry
	 * is given another one behind the daemons' back). */
	rv = infini_snapshot(one[w], "s00", "theirs", NULL, NULL);
	redisReply *r = redisCommand(rc, "HSET infini:sn:theirs owner 4242");
	if (r != NULL)
		freeReplyObject(r);
	int rr = infini_restore(one[a], "s00-theirs", "theirs", NULL, 0, NULL);
	ok(rv == 0 && rr == INFINI_EPERM && strstr(infini_errmsg(),
	    "another user") != NULL, "another user's snapshot is refused "
	    "by daemon %d (%s)", a, infini_errmsg());
	seen = 0;
	rv = infini_list_snapshots(one[b], &v, &n);
	for (size_t i = 0; rv == 0 && i < n; i++)
		seen += strcmp(v[i].name, "theirs") == 0;
	infini_snapshot_list_free(v);
	ok(rv == 0 && seen == 0, "and not listed by daemon %d", b);
out:
	for (int i = 0; i < NDAEMONS; i++)
		infini_close(one[i]);
}

/* Each stream's inputs so far, as chunk numbers (tokens_of). */
#define HIST_MAX 64
static int hist[NSTREAMS][HIST_MAX], nhist[NSTREAMS];

/* replay feeds the reference daemon a new stream id with stream i's
 * history; the last push's mean goes to out.  0 or an error. */
static int
replay(infini_client *c, int i, const char *id, float *out, size_t h)
{
	int32_t t[64];
	struct infini_result r = { 0 };
	int rv = infini_open(c, id, false, NULL, NULL);

	for (int k = 0; rv == 0 && k < nhist[i]; k++) {
		bool last = k == nhist[i] - 1;
		tokens_of(i, hist[i][k], t);
		rv = infini_push_tokens(c, id, t, (size_t)seg,
		    last ? INFINI_OUT_MEAN : INFINI_OUT_NONE, &r);
		if (rv == 0 && last && r.cols == h)
			memcpy(out, r.data, h * sizeof(float));
		else if (rv == 0 && last)
			rv = INFINI_EPROTO;
		infini_result_free(&r);
	}
	return (rv);
}

/* What one round of pushes to every stream found. */
struct round {
	int served, exact, ref_ok, lost_max, lost_streams;
	int64_t worst_ms;          /* the last of who's streams served, from t0 */
	int64_t wait_ms;           /* the longest one push waited */
	int lost_by[NDAEMONS + 1]; /* lost work, by holder before (or -1) */
	int lost_of[NSTREAMS];     /* segments each stream lost */
};

/*
 * push_round pushes chunk k to every stream, each retried until served
 * (at most budget_ms after t0; worst_ms is when the last stream held by
 * member who before was served), checks what each stream had lost against
 * its history and its output against the reference daemon (a new stream
 * there named PREFIX-ID), and calls mid() (may be NULL) half way.
 */
static void
push_round(infini_client *c, infini_client *ref_c, int k, int64_t t0,
    int64_t budget_ms, const char *prefix, const int *owner, int who,
    void (*mid)(void), struct round *out)
{
	size_t h = 64;
	float got[64], want[64];
	int32_t t[64];
	char id[32], rid[64], err[256] = "";

	memset(out, 0, sizeof(*out));
	for (int i = 0; i < NSTREAMS; i++) {
		struct infini_result res = { 0 };
		int rv = -1;
		if (i == NSTREAMS / 2 && mid != NULL)
			mid();
		snprintf(id, sizeof(id), "s%02d", i);
		tokens_of(i, k, t);
		int64_t t1 = fx_now_ms();
		while (fx_now_ms() - t0 < budget_ms) {
			rv = infini_push_tokens(c, id, t, (size_t)seg,
			    INFINI_OUT_MEAN, &res);
			if (rv == 0)
				break;
			snprintf(err, sizeof(err), "%s", infini_errmsg());
			usleep(50 * 1000);
		}
		if (rv != 0) {
			tap_diag("%s not served: %s", id, err);
			continue;
		}
		out->served++;
		if (fx_now_ms() - t1 > out->wait_ms)
			out->wait_ms = fx_now_ms() - t1;
		if (owner[i] == who && fx_now_ms() - t0 > out->worst_ms)
			out->worst_ms = fx_now_ms() - t0;
		/* Chunks the stream had before this push, by its position:
		 * fewer than its history when a save was lost. */
		int had = (int)(res.position / seg) - 1;
		int lost = nhist[i] - had;
		if (res.position % seg != 0 || lost < 0)
			lost = 1000;
		if (lost > 0) {
			out->lost_streams++;
			out->lost_by[owner[i] + 1]++;
		}
		if (lost > out->lost_max)
			out->lost_max = lost;
		out->lost_of[i] = lost;
		if (lost >= 0 && lost < 1000)
			nhist[i] = had;
		hist[i][nhist[i]++] = k;
		h = res.cols <= 64 ? res.cols : 64;
		memcpy(got, res.data, h * sizeof(float));
		infini_result_free(&res);
		snprintf(rid, sizeof(rid), "%s-%s", prefix, id);
		if (replay(ref_c, i, rid, want, h) == 0) {
			out->ref_ok++;
			out->exact += memcmp(got, want, h * sizeof(float)) == 0;
		}
	}
}

static struct rproc r;

/* redis_restart kills Redis and starts it again on its append-only file,
 * in the middle of a round. */
static void
redis_restart(void)
{
	rproc_stop(&r, SIGKILL);
	if (rproc_restart(&r, true) != 0)
		tap_diag("redis-server did not restart");
}

/*
 * partition cuts member 0 off from Redis while a client of its own keeps
 * pushing to one of its streams, then from its clients too, while the
 * shared client feeds every stream; then heals the links.
 */
static void
partition(infini_client *c, infini_client *ref_c)
{
	/* A connection of its own: Redis was restarted since main's. */
	redisContext *rc = rproc_connect(&r);
	int owner[NSTREAMS], x = -1, acc = 0, k = ROUNDS + 2;
	infini_client *direct = NULL;
	char url[64], id[32];
	int32_t t[64];
	int64_t last_ok = -1, refused = -1;

	for (int i = 0; i < NSTREAMS; i++) {
		snprintf(id, sizeof(id), "s%02d", i);
		owner[i] = owner_of(rc, id);
		if (owner[i] == 0 && x < 0)
			x = i;
	}
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port[0]);
	if (rc == NULL || x < 0 || infini_connect(url, 5000, &direct) != 0) {
		ok(0, "partition: redis %s, member 0 holds stream %d, %s",
		    rc ? "up" : "down", x, infini_errmsg());
		tap_skip(5, "no partition test");
		if (rc != NULL)
			redisFree(rc);
		return;
	}
	infini_set_timeout(direct, 15000);
	snprintf(id, sizeof(id), "s%02d", x);

	/* Cut off from Redis, member 0 serves its streams only while its
	 * lease, renewed for the last time before the cut, lasts. */
	tproxy_cut(to_redis, true);
	int64_t t0 = fx_now_ms();
	while (fx_now_ms() - t0 < TTL_MS + 5000 && nhist[x] < HIST_MAX - 4) {
		struct infini_result res = { 0 };
		int64_t sent = fx_now_ms() - t0;
		tokens_of(x, k, t);
		if (infini_push_tokens(direct, id, t, (size_t)seg,
		    INFINI_OUT_NONE, &res) != 0) {
			refused = fx_now_ms() - t0;
			break;
		}
		last_ok = sent;
		hist[x][nhist[x]++] = k++;
		acc++;
		infini_result_free(&res);
		usleep(100 * 1000);
	}
	/* A push is admitted when it arrives (its lease checked then), so
	 * the last one taken was sent within the lease. */
	ok(last_ok >= 0 && last_ok <= TTL_MS && refused > 0, "cut off from "
	    "Redis, member 0 took its client's pushes to %s sent up to %lld ms "
	    "after the cut (%d pushes) and refused the next (answered at %lld "
	    "ms): within its lease of %d ms", id, (long long)last_ok, acc,
	    (long long)refused, TTL_MS);

	/* Now from its clients too: its streams move to the others. */
	tproxy_cut(to_member0, true);
	struct round k3;
	int64_t t1 = fx_now_ms();
	push_round(c, ref_c, k++, t1, TTL_MS + RESTORE_BUDGET_MS + 20000, "p",
	    owner, 0, NULL, &k3);
	ok(k3.served == NSTREAMS && k3.worst_ms <= TTL_MS + RESTORE_BUDGET_MS,
	    "partitioned: all %d streams served, member 0's by the others "
	    "within %lld ms", k3.served, (long long)k3.worst_ms);
	tap_diag("partition: member 0's streams served by the others within "
	    "%lld ms of cutting it off from its clients", (long long)k3.worst_ms);
	int others_ok = 1;
	for (int i = 0; i < NSTREAMS; i++)
		if (i != x && (k3.lost_of[i] > 1 ||
		    (k3.lost_of[i] > 0 && owner[i] != 0)))
			others_ok = 0;
	ok(k3.lost_of[x] >= acc && k3.lost_of[x] <= acc + 1 && others_ok,
	    "lost: the %d push%s member 0 took while cut off from Redis (%s "
	    "lost %d segments), and no more than the autosnapshot window of "
	    "its other streams (%d of them lost one)", acc, acc == 1 ? "" :
	    "es", id, k3.lost_of[x], k3.lost_by[1] - (k3.lost_of[x] > 0));
	is_int(k3.exact, NSTREAMS, "every stream is bit for bit the "
	    "single-daemon replay's: no stale write got through");

	/* Healed: member 0 learns it lost the streams, and redirects. */
	tproxy_cut(to_redis, false);
	tproxy_cut(to_member0, false);
	int64_t t2 = fx_now_ms();
	int learnt = 0;
	while (fx_now_ms() - t2 < 10000 && learnt == 0) {
		learnt = dproc_log_count(dp[0].log, "lost its lease");
		usleep(100 * 1000);
	}
	struct infini_result res = { 0 };
	tokens_of(x, k, t);
	int rv = infini_push_tokens(direct, id, t, (size_t)seg,
	    INFINI_OUT_NONE, &res);
	infini_result_free(&res);
	ok(learnt > 0 && rv == INFINI_EUNAVAILABLE &&
	    strstr(infini_errmsg(), "served by") != NULL, "healed: member 0 "
	    "found its leases taken (%d logged) and sends %s's client to the "
	    "new holder (%s)", learnt, id, infini_errmsg());
	int stale = dproc_log_count(dp[0].log, "stale fencing epoch");
	tap_diag("member 0 logged %d refused stale write%s", stale,
	    stale == 1 ? "" : "s");
	ok(owner_of(rc, id) > 0, "%s is held by member %d now", id,
	    owner_of(rc, id));
	infini_close(direct);
	redisFree(rc);
}

/* feed_all opens streams s00.. anew through c and feeds each ROUNDS
 * chunks, recording them in hist.  Returns how many were fed whole. */
static int
feed_all(infini_client *c)
{
	char id[32];
	int32_t t[64];
	int fed = 0;

	for (int i = 0; i < NSTREAMS; i++) {
		struct infini_result res = { 0 };
		snprintf(id, sizeof(id), "s%02d", i);
		nhist[i] = 0;
		int rv = infini_open(c, id, false, NULL, NULL);
		for (int k = 0; rv == 0 && k < ROUNDS; k++) {
			tokens_of(i, k, t);
			rv = infini_push_tokens(c, id, t, (size_t)seg,
			    INFINI_OUT_NONE, &res);
			infini_result_free(&res);
			if (rv == 0)
				hist[i][nhist[i]++] = k;
		}
		if (rv != 0)
			tap_diag("%s: %s", id, infini_errmsg());
		fed += rv == 0;
	}
	return (fed);
}

/* The Sentinel phase: master, replica and Sentinel, and the probe that
 * times how long after the master's kill the daemons write again. */
static struct rproc sm, sr, ss;
static pthread_t probe_th;
static char probe_url[300];
static int64_t kill_ms, resumed_ms = -1;
static int probe_err = -1;      /* the probe's first refusal */
static char probe_msg[256];

/* probe writes a named snapshot of s00 through the daemons until one is
 * accepted (the store took a write again), for at most 30 s. */
static void *
probe(void *arg)
{
	infini_client *pc = NULL;

	(void)arg;
	if (infini_connect(probe_url, 5000, &pc) != 0)
		return (NULL);
	infini_set_timeout(pc, 1000);
	while (fx_now_ms() - kill_ms < 30000 * tap_mult()) {
		int rv = infini_snapshot_ex(pc, "s00", "failover-probe",
		    INFINI_SNAP_OVERWRITE, NULL, NULL);
		if (rv == 0) {
			resumed_ms = fx_now_ms() - kill_ms;
			break;
		}
		if (probe_err < 0) {
			probe_err = rv;
			snprintf(probe_msg, sizeof(probe_msg), "%s",
			    infini_errmsg());
		}
		usleep(50 * 1000);
	}
	infini_close(pc);
	return (NULL);
}

/* master_kill: push_round's mid() for the Sentinel phase. */
static void
master_kill(void)
{
	rproc_stop(&sm, SIGKILL);
	kill_ms = fx_now_ms();
	if (pthread_create(&probe_th, NULL, probe, NULL) != 0)
		tap_diag("cannot start the probe thread");
}

/*
 * sentinel_phase runs the 48 streams again on three fresh daemons on a
 * redis-sentinel:// store and kills the Redis master mid-round (see the
 * top of the file).  4 checks.
 */
static void
sentinel_phase(infini_client *ref_c)
{
	char dir[600], u[200], id[32];
	infini_client *c = NULL;
	redisContext *rc = NULL;
	int owner[NSTREAMS], rv, fed = 0;

	snprintf(dir, sizeof(dir), "%s/sentinel", top);
	mkdir(dir, 0700);
	rv = rproc_sentinel_set(&sm, &sr, &ss, dir, "mymaster");
	snprintf(u, sizeof(u), "redis-sentinel://127.0.0.1:%d/mymaster/0",
	    ss.port);
	probe_url[0] = '\0';
	for (int i = 0; rv == 0 && i < NDAEMONS; i++) {
		port[i] = dproc_free_port();
		snprintf(adv[i], sizeof(adv[i]), "tcp://127.0.0.1:%d", port[i]);
		rv |= start_member(i, "f", u);
		snprintf(probe_url + strlen(probe_url), sizeof(probe_url) -
		    strlen(probe_url), "%s%s", i ? "," : "", adv[i]);
	}
	rv = rv ? rv : infini_connect(probe_url, 5000, &c);
	ok(rv == 0, "sentinel: master, replica, Sentinel and three daemons "
	    "on %s", u);
	if (rv != 0) {
		tap_skip(4, "no Sentinel setup");
		goto out;
	}
	infini_set_timeout(c, 1000);
	fed = feed_all(c);
	rc = rproc_connect(&sm);
	for (int i = 0; i < NSTREAMS; i++) {
		snprintf(id, sizeof(id), "s%02d", i);
		owner[i] = rc != NULL ? owner_of(rc, id) : -1;
	}
	if (rc != NULL)
		redisFree(rc);
	if (!rproc_sentinel_knows(&ss, "mymaster", 15000))
		tap_diag("the Sentinel did not list the replica in 15 s");

	struct round k3;
	push_round(c, ref_c, ROUNDS, fx_now_ms(), 60000 * tap_mult(), "f",
	    owner, -2, master_kill, &k3);
	if (kill_ms > 0)
		pthread_join(probe_th, NULL);
	ok(fed == NSTREAMS && k3.served == NSTREAMS && k3.lost_max <= 1,
	    "sentinel: master killed under load: all %d streams served "
	    "(longest push waited %lld ms), at most the autosnapshot window "
	    "lost (%d streams lost a segment)", k3.served,
	    (long long)k3.wait_ms, k3.lost_streams);
	is_int(k3.exact, NSTREAMS, "sentinel: every stream is bit for bit "
	    "the single-daemon replay's");
	ok(resumed_ms > 0, "sentinel: the daemons write to the store again "
	    "%lld ms after the master was killed", (long long)resumed_ms);
	ok(probe_err == INFINI_EUNAVAILABLE, "sentinel: meanwhile a named "
	    "snapshot is refused as unavailable, not lost (%s)", probe_msg);
	tap_diag("sentinel failover under load: store writes resumed %lld ms "
	    "after the master's kill; the longest push waited %lld ms",
	    (long long)resumed_ms, (long long)k3.wait_ms);
out:
	infini_close(c);
	for (int i = 0; i < NDAEMONS; i++)
		if (dp[i].pid > 0)
			dproc_wait(&dp[i], SIGTERM, 20000);
	rproc_stop(&ss, SIGTERM);
	rproc_stop(&sr, SIGTERM);
	if (sm.pid > 0)
		rproc_stop(&sm, SIGKILL);
}

int
main(void)
{
	char url[600], id[32];
	struct fx_opts o;
	infini_client *c = NULL, *rc_ref = NULL;
	redisContext *rc = NULL;
	int owner[NSTREAMS], count[NDAEMONS] = { 0 }, victim, rv;

	if (!rproc_have()) {
		tap_plan_skip_all("no redis-server (tools/setup-debian.sh "
		    "installs it)");
		return (0);
	}
	tap_plan(37);
	tap_timeout(300);
	signal(SIGPIPE, SIG_IGN);
	setenv("INFINI_VALIDATION", "1", 0);
	if (fx_tmpdir(top, sizeof(top)) != 0)
		return (1);
	snprintf(model, sizeof(model), "%s/model", top);
	fx_opts_default(&o);
	seg = o.cfg.segment_size;
	rv = fx_write_model(model, &o);
	rv = rv ? rv : rproc_start(&r, top, 0, true, NULL);
	ok(rv == 0, "model written, redis-server on 127.0.0.1:%d", r.port);
	if (rv != 0)
		return (tap_done());
	url[0] = '\0';
	rv = 0;
	int rport = 0, cport = 0;
	for (int i = 0; i < NDAEMONS; i++)
		port[i] = dproc_free_port();
	rv |= tproxy_start(r.port, &rport, &to_redis);
	rv |= tproxy_start(port[0], &cport, &to_member0);
	for (int i = 0; i < NDAEMONS; i++) {
		char u[64];
		snprintf(adv[i], sizeof(adv[i]), "tcp://127.0.0.1:%d",
		    i == 0 ? cport : port[i]);
		snprintf(u, sizeof(u), "redis://127.0.0.1:%d/0",
		    i == 0 ? rport : r.port);
		rv |= start_member(i, "d", u);
		snprintf(url + strlen(url), sizeof(url) - strlen(url), "%s%s",
		    i ? "," : "", adv[i]);
	}
	char rdir[700], rstate[720];
	snprintf(rdir, sizeof(rdir), "%s/ref", top);
	snprintf(rstate, sizeof(rstate), "%s/state", rdir);
	mkdir(rdir, 0700);
	mkdir(rstate, 0700);
	rv |= dproc_start(&ref, rdir, model, rstate, NULL, NULL);
	ok(rv == 0, "three daemons on one Redis store and a reference daemon "
	    "started");
	if (rv != 0)
		goto out;
	rv = infini_connect(url, 5000, &c);
	rv = rv ? rv : infini_connect(ref.url, 5000, &rc_ref);
	ok(rv == 0, "one client over %s", url);
	if (rv != 0)
		goto out;
	infini_set_timeout(c, 1000);
	rc = rproc_connect(&r);

	/* Open and feed every stream. */
	int fed = feed_all(c);
	is_int(fed, NSTREAMS, "%d streams opened and fed %d segments each",
	    NSTREAMS, ROUNDS);
	/* An ID a daemon would pick is unique on that daemon only. */
	rv = infini_open(c, NULL, false, NULL, NULL);
	ok(rv == INFINI_EINVAL && strstr(infini_errmsg(), "name the stream"),
	    "a stream the daemon would name is refused (%s)", infini_errmsg());
	int placed = 0;
	for (int i = 0; i < NSTREAMS; i++) {
		snprintf(id, sizeof(id), "s%02d", i);
		owner[i] = owner_of(rc, id);
		if (owner[i] >= 0) {
			count[owner[i]]++;
			placed++;
		}
	}
	/* The busiest of members 1 and 2 dies; member 0 is partitioned. */
	victim = count[1] >= count[2] ? 1 : 2;
	ok(placed == NSTREAMS && count[0] > 0 && count[1] > 0 && count[2] > 0,
	    "every stream has one holder; spread %d/%d/%d", count[0],
	    count[1], count[2]);

	named_snapshots(c, rc, owner);

	/* Kill the busiest daemon and go on feeding every stream. */
	int64_t t0 = fx_now_ms();
	is_int(dproc_wait(&dp[victim], SIGKILL, 5000), 128 + SIGKILL,
	    "daemon %d (%d streams) killed with SIGKILL", victim,
	    count[victim]);
	struct round k1;
	push_round(c, rc_ref, ROUNDS, t0, TTL_MS + RESTORE_BUDGET_MS + 10000,
	    "k", owner, victim, NULL, &k1);
	is_int(k1.served, NSTREAMS, "all %d streams are served after the kill",
	    NSTREAMS);
	ok(k1.worst_ms > 0 && k1.worst_ms <= TTL_MS + RESTORE_BUDGET_MS,
	    "the dead daemon's streams were served again %lld ms after the "
	    "kill (lease TTL %d ms + restore budget %d ms)",
	    (long long)k1.worst_ms, TTL_MS, (int)RESTORE_BUDGET_MS);
	tap_diag("failover: %d streams of the killed daemon served again "
	    "within %lld ms of the kill (lease TTL %d ms)", count[victim],
	    (long long)k1.worst_ms, TTL_MS);
	ok(k1.lost_max <= 1 && k1.lost_streams == k1.lost_by[victim + 1],
	    "no stream lost more than the autosnapshot window (1 segment of "
	    "%d tokens; %d of the dead daemon's streams lost one); the others "
	    "lost nothing", seg, k1.lost_streams);
	is_int(k1.ref_ok, NSTREAMS, "the reference daemon replayed every "
	    "stream");
	is_int(k1.exact, NSTREAMS, "every stream's output is bit for bit the "
	    "single-daemon replay's");

	partition(c, rc_ref);

	/* Redis killed and restarted (on its append-only file) in the
	 * middle of a round: no stream lost or corrupted. */
	struct round k2;
	int64_t t2 = fx_now_ms();
	push_round(c, rc_ref, ROUNDS + 1, t2, 30000 * tap_mult(), "r", owner, -2,
	    redis_restart, &k2);
	ok(k2.served == NSTREAMS && k2.lost_max <= 1, "Redis killed and "
	    "restarted under load: all %d streams served (longest wait %lld "
	    "ms), at most the autosnapshot window lost (%d streams lost a "
	    "segment)", k2.served, (long long)k2.wait_ms, k2.lost_streams);
	is_int(k2.exact, NSTREAMS, "and every stream is bit for bit the "
	    "single-daemon replay's");
	tap_diag("redis restart: the longest push waited %lld ms",
	    (long long)k2.wait_ms);


	/* The CLI takes a list too: one of the dead daemon's streams, now
	 * held by one of the two live daemons, through --socket with both.
	 * (The dead endpoint is left out: a process that gives up on a TCP
	 * dial still resolving can hit NNG 1.x's resolver race on close,
	 * nanomsg/nng#2110, and abort.) */
	int vs = -1;
	for (int i = 0; i < NSTREAMS && vs < 0; i++)
		if (owner[i] == victim)
			vs = i;
	char cmd[1200], live[300] = "", *out = NULL;
	for (int i = 0; i < NDAEMONS; i++)
		if (i != victim)
			snprintf(live + strlen(live), sizeof(live) - strlen(live),
			    "%s%s", live[0] ? "," : "", adv[i]);
	snprintf(cmd, sizeof(cmd), "%s --socket %s push s%02d --tokens 1,2,3 "
	    "2>&1", INFINI_CLI_PATH, live, vs);
	rv = fx_run(cmd, &out);
	char want_pos[64];
	snprintf(want_pos, sizeof(want_pos), "position %llu,",
	    (unsigned long long)(vs >= 0 ? nhist[vs] * seg + 3 : 0));
	ok(rv == 0 && out != NULL && strstr(out, want_pos) != NULL,
	    "infini --socket LIST reaches the new holder of s%02d (%s)", vs,
	    out ? strtok(out, "\n") : "no output");
	free(out);
	infini_close(c);
	c = NULL;
	/* The survivors stop cleanly: their streams are written, leases
	 * released. */
	int clean = 1;
	for (int i = 0; i < NDAEMONS; i++)
		if (i != victim)
			clean &= dproc_wait(&dp[i], SIGTERM, 20000) == 0;
	ok(clean, "the other daemons shut down cleanly");
	sentinel_phase(rc_ref);
out:
	infini_close(c);
	infini_close(rc_ref);
	if (rc != NULL)
		redisFree(rc);
	for (int i = 0; i < NDAEMONS; i++)
		if (dp[i].pid > 0)
			dproc_wait(&dp[i], SIGKILL, 5000);
	tproxy_stop(to_redis);
	tproxy_stop(to_member0);
	if (ref.pid > 0)
		dproc_wait(&ref, SIGTERM, 20000);
	rproc_stop(&r, SIGTERM);
	/* Every daemon logged to its own directory. */
	int nval = 0;
	for (int i = 0; i < NDAEMONS; i++)
		nval += dproc_log_count(dp[i].log, "vulkan validation:") > 0;
	ok(nval == 0, "the validation layer reported nothing in the members");
	return (dproc_tap_done(top, ref.log));
}
