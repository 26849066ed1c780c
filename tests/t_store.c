/*
 * t_store.c - the state store interface (daemon/store/store.h), the same
 * checks against the directory store and a real redis-server started on a
 * loopback port: round trips of snapshot bytes, replace, create-only,
 * stat and owners, listing, deletion, bad names and URLs; for the
 * directory, that the files are exactly snap_write_file's; for Redis, a
 * server that is down (a clear error, fast), a SIGKILL and restart in the
 * middle (the client reconnects, nothing is lost or corrupted), the
 * script cache emptied under it (EVALSHA falls back to EVAL), and a
 * Sentinel failover from a master to its replica.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon_proc.h"
#include "infini_err.h"
#include "redis_proc.h"
#include "snapshot.h"
#include "store/store.h"

/* A real snapshot (so the directory store can stat its owner): a tiny
 * state of made-up shape whose numbers depend on seed. */
static int
make_snap(const char *id, uint32_t owner, int seed, uint8_t **buf,
    size_t *len)
{
	struct eng_stream_state st;
	struct snap_meta m = { .fingerprint = 0x1234, .n_layers = 2,
	    .n_kv_heads = 1, .head_dim = 4, .segment_size = 4,
	    .hidden_size = 8, .vocab_size = 16, .has_owner = true,
	    .owner = owner };
	int rv;

	snprintf(m.stream_id, sizeof(m.stream_id), "%s", id);
	if ((rv = eng_stream_state_init(&st, 2, 1, 4, 4, false, 6)) != 0)
		return (rv);
	for (int i = 0; i < 2 * 4 * 4; i++)
		st.M[i] = (float)(seed * 100 + i) / 7.0f;
	for (int i = 0; i < 2 * 4; i++)
		st.z[i] = (float)(seed + i);
	for (int i = 0; i < 2 * 2 * 4; i++)
		st.kc[i] = st.vc[i] = (float)(i - seed);
	rv = snap_encode(&m, &st, buf, len);
	eng_stream_state_fini(&st);
	return (rv);
}

static bool
has_name(char **v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], name) == 0)
			return (true);
	return (false);
}

/* The interface checks, the same for every store. */
static void
interface(struct sst *st, const char *what)
{
	struct sst_fence f = { .lease = "a", .member = "m1", .epoch = 0 };
	const struct sst_fence *fp = NULL;
	uint8_t *a = NULL, *b = NULL, *got = NULL;
	size_t la = 0, lb = 0, lg = 0, n = 0;
	struct sst_info in;
	char err[512], **names = NULL;
	int rv;

	/* A shared store wants the stream's lease on stream writes. */
	if (sst_shared(st)) {
		rv = sst_lease_acquire(st, "a", "m1", 60000, &f.epoch, NULL, 0,
		    NULL, err, sizeof(err));
		ok(rv == 0, "%s: lease for the stream writes (%s)", what,
		    rv ? err : "ok");
		fp = &f;
	}
	ok(make_snap("a", 1001, 1, &a, &la) == 0 &&
	    make_snap("a", 1001, 2, &b, &lb) == 0, "%s: two snapshots of "
	    "stream a (%zu bytes)", what, la);

	rv = sst_put(st, SST_STREAM, "a.snap", fp, 1001, a, la, 0, err,
	    sizeof(err));
	ok(rv == 0, "%s: put a.snap (%s)", what, rv ? err : "ok");
	rv = sst_get(st, SST_STREAM, "a.snap", la, &got, &lg, err,
	    sizeof(err));
	ok(rv == 0 && lg == la && memcmp(got, a, la) == 0, "%s: get gives "
	    "the same %zu bytes back", what, la);
	free(got);
	got = NULL;
	rv = sst_get(st, SST_STREAM, "a.snap", la - 1, &got, &lg, err,
	    sizeof(err));
	is_int(rv, INFINI_ECORRUPT, "%s: an entry longer than max is refused "
	    "unread (%s)", what, err);
	rv = sst_get(st, SST_NAMED, "a.snap", la, &got, &lg, err, sizeof(err));
	is_int(rv, INFINI_ENOENT, "%s: the two kinds are separate namespaces",
	    what);

	rv = sst_put(st, SST_STREAM, "a.snap", fp, 1001, b, lb, 0, err,
	    sizeof(err));
	ok(rv == 0, "%s: put replaces (%s)", what, rv ? err : "ok");
	rv = sst_get(st, SST_STREAM, "a.snap", SIZE_MAX, &got, &lg, err,
	    sizeof(err));
	ok(rv == 0 && lg == lb && memcmp(got, b, lb) == 0 &&
	    memcmp(b, a, la) != 0, "%s: get gives the new bytes", what);
	free(got);
	got = NULL;

	rv = sst_stat(st, SST_STREAM, "a.snap", &in, err, sizeof(err));
	ok(rv == 0 && in.bytes == lb && in.has_owner && in.owner == 1001,
	    "%s: stat: %llu bytes, owner %u", what,
	    (unsigned long long)in.bytes, in.owner);
	if (sst_shared(st))
		is_int(in.epoch, f.epoch, "%s: the entry records its fencing "
		    "epoch", what);

	/* Named snapshots: create-only and owners. */
	rv = sst_put(st, SST_NAMED, "keep-1", NULL, 1002, a, la, SST_PUT_NEW,
	    err, sizeof(err));
	ok(rv == 0, "%s: create named snapshot keep-1 (%s)", what,
	    rv ? err : "ok");
	rv = sst_put(st, SST_NAMED, "keep-1", NULL, 1002, b, lb, SST_PUT_NEW,
	    err, sizeof(err));
	is_int(rv, INFINI_EEXIST, "%s: create-only refuses an existing name "
	    "(%s)", what, err);
	rv = sst_get(st, SST_NAMED, "keep-1", SIZE_MAX, &got, &lg, err,
	    sizeof(err));
	ok(rv == 0 && lg == la && memcmp(got, a, la) == 0, "%s: and the "
	    "snapshot is unchanged", what);
	free(got);
	got = NULL;
	if (sst_shared(st)) {
		/* Daemons sharing the store: an overwrite checks the owner in
		 * the same step as the write. */
		rv = sst_put(st, SST_NAMED, "keep-1", NULL, 1009, b, lb,
		    SST_PUT_OWNED, err, sizeof(err));
		is_int(rv, INFINI_EPERM, "%s: another user's overwrite is "
		    "refused in the write itself (%s)", what, err);
		rv = sst_put(st, SST_NAMED, "keep-1", NULL, 1002, a, la,
		    SST_PUT_OWNED, err, sizeof(err));
		rv |= sst_get(st, SST_NAMED, "keep-1", SIZE_MAX, &got, &lg, err,
		    sizeof(err));
		ok(rv == 0 && lg == la && memcmp(got, a, la) == 0, "%s: its "
		    "owner's overwrite goes through", what);
		free(got);
		got = NULL;
	}
	/* The owner goes beside the bytes (Redis) and inside them (the
	 * snapshot's OWNER section, which the directory store reads). */
	uint8_t *c = NULL;
	size_t lc = 0;
	rv = make_snap("k", 1003, 3, &c, &lc);
	rv |= sst_put(st, SST_NAMED, "keep-2", NULL, 1003, c, lc, 0, err,
	    sizeof(err));
	free(c);
	rv |= sst_stat(st, SST_NAMED, "keep-2", &in, err, sizeof(err));
	ok(rv == 0 && in.owner == 1003, "%s: named snapshots carry their "
	    "owner", what);

	rv = sst_list(st, SST_NAMED, &names, &n, err, sizeof(err));
	ok(rv == 0 && n == 2 && has_name(names, n, "keep-1") &&
	    has_name(names, n, "keep-2"), "%s: list of named snapshots "
	    "(%zu)", what, n);
	sst_names_free(names, n);
	/* Listing with owners and headers: what ListSnapshots shows. */
	struct sst_entry *ev = NULL;
	size_t ne = 0;
	int good = 0;
	rv = sst_list_info(st, SST_NAMED, &ev, &ne, err, sizeof(err));
	for (size_t i = 0; rv == 0 && i < ne; i++) {
		const struct sst_info *x = &ev[i].info;
		/* keep-1 holds a's bytes, whose OWNER section says 1001:
		 * the directory reads that, Redis the owner put beside. */
		if (strcmp(ev[i].name, "keep-1") == 0)
			good += x->owner == (sst_shared(st) ? 1002u : 1001u) &&
			    x->has_head &&
			    x->bytes == la && x->position == 6 &&
			    strcmp(x->stream_id, "a") == 0;
		if (strcmp(ev[i].name, "keep-2") == 0)
			good += x->owner == 1003 && x->has_head &&
			    x->bytes == lc && strcmp(x->stream_id, "k") == 0;
	}
	free(ev);
	ok(rv == 0 && ne == 2 && good == 2, "%s: list_info gives each named "
	    "snapshot's owner, size, stream and position (%zu, %d right; %s)",
	    what, ne, good, rv ? err : "ok");
	rv = sst_list(st, SST_STREAM, &names, &n, err, sizeof(err));
	ok(rv == 0 && n == 1 && has_name(names, n, "a.snap"), "%s: list of "
	    "stream states (%zu)", what, n);
	sst_names_free(names, n);

	rv = sst_del(st, SST_NAMED, "keep-1", NULL, err, sizeof(err));
	ok(rv == 0, "%s: delete keep-1", what);
	rv = sst_get(st, SST_NAMED, "keep-1", SIZE_MAX, &got, &lg, err,
	    sizeof(err));
	is_int(rv, INFINI_ENOENT, "%s: a deleted entry is gone (%s)", what,
	    err);
	rv = sst_del(st, SST_NAMED, "keep-1", NULL, err, sizeof(err));
	is_int(rv, INFINI_ENOENT, "%s: deleting it again: not found", what);
	rv = sst_stat(st, SST_NAMED, "nothing", &in, err, sizeof(err));
	is_int(rv, INFINI_ENOENT, "%s: stat of an unknown name", what);
	rv = sst_list(st, SST_NAMED, &names, &n, err, sizeof(err));
	ok(rv == 0 && n == 1 && has_name(names, n, "keep-2"), "%s: the list "
	    "follows", what);
	sst_names_free(names, n);

	static const char *bad[] = { "", ".hidden", "../x", "a/b", "sp ace" };
	int refused = 0;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		refused += sst_put(st, SST_NAMED, bad[i], NULL, 0, a, la, 0,
		    err, sizeof(err)) == INFINI_EINVAL &&
		    sst_get(st, SST_NAMED, bad[i], SIZE_MAX, &got, &lg, err,
		    sizeof(err)) == INFINI_EINVAL;
	is_int(refused, 5, "%s: bad names are refused by put and get", what);

	/* Leave the stores empty for the next part. */
	(void)sst_del(st, SST_NAMED, "keep-2", NULL, err, sizeof(err));
	rv = sst_del(st, SST_STREAM, "a.snap", fp, err, sizeof(err));
	ok(rv == 0, "%s: delete the stream state (%s)", what, rv ? err : "ok");
	if (fp != NULL)
		(void)sst_lease_release(st, "a", "m1", f.epoch, err,
		    sizeof(err));
	free(a);
	free(b);
}

/* The directory store writes what snap_write_file writes. */
static void
dir_checks(const char *top)
{
	char state[600], path[700], err[512], **names = NULL;
	struct sst *st = NULL;
	uint8_t *a = NULL;
	size_t la = 0, n = 0, lf = 0;
	char *file = NULL;
	struct stat sb;
	uint64_t ep;
	int rv;

	snprintf(state, sizeof(state), "%s/state", top);
	mkdir(state, 0700);
	snprintf(path, sizeof(path), "%s/streams", state);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/snapshots", state);
	mkdir(path, 0700);
	rv = sst_open("", state, &st, err, sizeof(err));
	ok(rv == 0 && !sst_shared(st), "dir: open (%s)", rv ? err :
	    sst_describe(st));
	if (rv != 0)
		return;
	interface(st, "dir");

	make_snap("b", 7, 3, &a, &la);
	rv = sst_put(st, SST_STREAM, "b.snap", NULL, 7, a, la, 0, err,
	    sizeof(err));
	snprintf(path, sizeof(path), "%s/streams/b.snap", state);
	ok(rv == 0 && fx_read_file(path, &file, &lf) == 0 && lf == la &&
	    memcmp(file, a, la) == 0, "dir: the file is the snapshot, byte "
	    "for byte");
	ok(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600, "dir: mode "
	    "0600 as snap_write_file makes it");
	free(file);
	/* What the daemon never stores: temp files, other names. */
	snprintf(path, sizeof(path), "%s/streams/.b.snap.tmp.1.2", state);
	fx_write_file(path, "x", 1);
	snprintf(path, sizeof(path), "%s/streams/notes.txt", state);
	fx_write_file(path, "x", 1);
	snprintf(path, sizeof(path), "%s/streams/d.snap", state);
	mkdir(path, 0700);
	rv = sst_list(st, SST_STREAM, &names, &n, err, sizeof(err));
	ok(rv == 0 && n == 1 && strcmp(names[0], "b.snap") == 0, "dir: the "
	    "stream list holds state files only (%zu)", n);
	sst_names_free(names, n);
	rv = sst_lease_acquire(st, "b", "m", 1000, &ep, NULL, 0, NULL, err,
	    sizeof(err));
	is_int(rv, INFINI_EUNSUPPORTED, "dir: no leases (%s)", err);
	free(a);
	sst_close(st);

	snprintf(path, sizeof(path), "%s/none", top);
	rv = sst_open("dir", path, &st, err, sizeof(err));
	rv = rv ? rv : sst_list(st, SST_NAMED, &names, &n, err, sizeof(err));
	is_int(rv, INFINI_ENOENT, "dir: a missing directory says so (%s)",
	    err);
	sst_close(st);
}

static void
url_checks(void)
{
	static const char *bad[] = { "redis://", "redis://h:0/0",
	    "redis://h:99999/0", "redis://h:1/abc", "redis://h:1,g:2/0",
	    "redis-sentinel://h:1", "redis-sentinel://h:1/", "ftp://h/",
	    "redis://[::1/0", "redis://pw@h:1/0" };
	static const char *good[] = { "redis://127.0.0.1:6379/0",
	    "redis://localhost", "redis://[::1]:7000/3",
	    "redis://:secret@h:1/2", "redis-sentinel://a:1,b:2,c/mymaster/1",
	    "redis-sentinel://a/m" };
	struct sst *st;
	char err[512];
	int n = 0;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rv = sst_open(bad[i], "/nonexistent", &st, err,
		    sizeof(err));
		if (rv == INFINI_EINVAL)
			n++;
		else {
			tap_diag("accepted %s", bad[i]);
			sst_close(st);
		}
	}
	is_int(n, 10, "state_store URLs that do not parse are refused (%s)",
	    err);
	n = 0;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (sst_open(good[i], "/nonexistent", &st, err,
		    sizeof(err)) == 0) {
			n++;
			sst_close(st);
		} else
			tap_diag("refused %s: %s", good[i], err);
	}
	is_int(n, 6, "the documented URL forms parse, without connecting");
}

/* listing_time: how long listing LIST_N named snapshots with owners and
 * headers takes, in one sst_list_info call against a stat per name. */
#define LIST_N 2000
static void
listing_time(struct sst *st)
{
	struct sst_entry *ev = NULL;
	struct sst_info in;
	char err[512], name[32];
	uint8_t *b = NULL;
	size_t lb = 0, ne = 0, good = 0;
	int rv = make_snap("many", 7, 6, &b, &lb);

	for (int i = 0; rv == 0 && i < LIST_N; i++) {
		snprintf(name, sizeof(name), "many-%04d", i);
		rv = sst_put(st, SST_NAMED, name, NULL, 7, b, lb, 0, err,
		    sizeof(err));
	}
	free(b);
	int64_t t0 = fx_now_ms();
	rv = rv ? rv : sst_list_info(st, SST_NAMED, &ev, &ne, err,
	    sizeof(err));
	int64_t one = fx_now_ms() - t0;
	for (size_t i = 0; rv == 0 && i < ne; i++)
		good += strncmp(ev[i].name, "many-", 5) == 0 &&
		    ev[i].info.owner == 7 && ev[i].info.has_head &&
		    strcmp(ev[i].info.stream_id, "many") == 0;
	t0 = fx_now_ms();
	for (size_t i = 0; rv == 0 && i < ne; i++)
		rv = sst_stat(st, SST_NAMED, ev[i].name, &in, err, sizeof(err));
	int64_t each = fx_now_ms() - t0;
	free(ev);
	ok(rv == 0 && good == LIST_N, "redis: %d named snapshots listed with "
	    "owners and headers in %lld ms (a stat per name: %lld ms) (%s)",
	    LIST_N, (long long)one, (long long)each, rv ? err : "ok");
	tap_diag("listing %d named snapshots: %lld ms in one call, %lld ms "
	    "as a stat per name", LIST_N, (long long)one, (long long)each);
}

/* Redis: down, killed and restarted, script cache flushed. */
static void
redis_checks(const char *top)
{
	char url[128], err[512], dir[600];
	struct sst *st = NULL;
	struct rproc r;
	struct sst_fence f = { .lease = "s", .member = "m1" };
	uint8_t *a = NULL, *got = NULL;
	size_t la = 0, lg = 0;
	int64_t t0;
	int rv;

	snprintf(dir, sizeof(dir), "%s/redis", top);
	mkdir(dir, 0700);
	rv = rproc_start(&r, dir, 0, true, NULL);
	ok(rv == 0, "redis-server on 127.0.0.1:%d (append-only, fsync "
	    "always)", r.port);
	if (rv != 0)
		return;
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d/2", r.port);
	rv = sst_open(url, top, &st, err, sizeof(err));
	ok(rv == 0 && sst_shared(st), "redis: open %s (%s)", url,
	    rv ? err : sst_describe(st));
	if (rv != 0)
		goto out;
	interface(st, "redis");

	make_snap("s", 5, 4, &a, &la);
	rv = sst_put(st, SST_STREAM, "s.snap", NULL, 5, a, la, 0, err,
	    sizeof(err));
	is_int(rv, INFINI_EINVAL, "redis: a stream write without a lease is "
	    "refused (%s)", err);
	rv = sst_lease_acquire(st, "s", "m1", 60000, &f.epoch, NULL, 0, NULL,
	    err, sizeof(err));
	rv = rv ? rv : sst_put(st, SST_STREAM, "s.snap", &f, 5, a, la, 0,
	    err, sizeof(err));
	ok(rv == 0, "redis: fenced write before the crash (%s)",
	    rv ? err : "ok");

	/* Kill -9 Redis: calls fail fast and clearly meanwhile. */
	rproc_stop(&r, SIGKILL);
	t0 = fx_now_ms();
	rv = sst_get(st, SST_STREAM, "s.snap", SIZE_MAX, &got, &lg, err,
	    sizeof(err));
	is_int(rv, INFINI_EUNAVAILABLE, "redis down: unavailable (%s)", err);
	rv = sst_put(st, SST_STREAM, "s.snap", &f, 5, a, la, 0, err,
	    sizeof(err));
	is_int(rv, INFINI_EUNAVAILABLE, "redis down: a write is refused, "
	    "not lost silently (%s)", err);
	ok(fx_now_ms() - t0 < 3000, "redis down: both answered in %lld ms",
	    (long long)(fx_now_ms() - t0));

	/* Back on the same port and files: the same handle reconnects. */
	rv = rproc_restart(&r, true);
	ok(rv == 0, "redis-server restarted on its append-only file");
	usleep(300 * 1000);     /* past the connect hold-off */
	rv = sst_get(st, SST_STREAM, "s.snap", SIZE_MAX, &got, &lg, err,
	    sizeof(err));
	ok(rv == 0 && lg == la && memcmp(got, a, la) == 0, "redis: after the "
	    "restart the handle reconnects and the snapshot is intact (%s)",
	    rv ? err : "ok");
	free(got);
	got = NULL;
	rv = sst_lease_renew(st, "s", "m1", f.epoch, 60000, err, sizeof(err));
	rv = rv ? rv : sst_put(st, SST_STREAM, "s.snap", &f, 5, a, la / 2, 0,
	    err, sizeof(err));
	ok(rv == 0, "redis: lease and fenced writes go on after the restart "
	    "(%s)", rv ? err : "ok");

	/* The server forgets its scripts: EVALSHA falls back to EVAL. */
	redisContext *c = rproc_connect(&r);
	redisReply *rep = c ? redisCommand(c, "SCRIPT FLUSH") : NULL;
	ok(rep != NULL && rep->type == REDIS_REPLY_STATUS, "SCRIPT FLUSH");
	if (rep != NULL)
		freeReplyObject(rep);
	rv = sst_get(st, SST_STREAM, "s.snap", SIZE_MAX, &got, &lg, err,
	    sizeof(err));
	ok(rv == 0 && lg == la / 2 && memcmp(got, a, la / 2) == 0,
	    "redis: a flushed script cache is reloaded (%s)", rv ? err : "ok");
	free(got);
	got = NULL;
	/* Garbage under our key is an error, not a crash or a snapshot. */
	rep = c ? redisCommand(c, "SELECT 2") : NULL;
	if (rep != NULL)
		freeReplyObject(rep);
	rep = c ? redisCommand(c, "SET infini:sn:junk notahash") : NULL;
	if (rep != NULL)
		freeReplyObject(rep);
	rv = sst_get(st, SST_NAMED, "junk", SIZE_MAX, &got, &lg, err,
	    sizeof(err));
	is_int(rv, INFINI_EIO, "redis: a key of the wrong type is a clear "
	    "error (%s)", err);
	rep = c ? redisCommand(c, "SADD infini:idx:sn junk") : NULL;
	if (rep != NULL)
		freeReplyObject(rep);
	struct sst_entry *ev = NULL;
	size_t ne = 0, junk = 0;
	rv = sst_list_info(st, SST_NAMED, &ev, &ne, err, sizeof(err));
	for (size_t i = 0; rv == 0 && i < ne; i++)
		junk += strcmp(ev[i].name, "junk") == 0;
	free(ev);
	ok(rv == 0 && junk == 0, "redis: the listing skips it and "
	    "does not fail (%zu listed; %s)", ne, rv ? err : "ok");
	if (c != NULL)
		redisFree(c);
	listing_time(st);
	free(a);
out:
	sst_close(st);
	rproc_stop(&r, SIGTERM);
}

/* Sentinel: the store follows the master through a failover. */
static void
sentinel_checks(const char *top)
{
	char url[200], err[512], dir[600];
	struct rproc m = { .pid = -1 }, rep = { .pid = -1 }, sen = { .pid = -1 };
	struct sst *st = NULL;
	uint8_t *a = NULL, *got = NULL;
	size_t la = 0, lg = 0;
	int64_t t0;
	int rv, moved = 0;

	snprintf(dir, sizeof(dir), "%s/sentinel", top);
	mkdir(dir, 0700);
	rv = rproc_sentinel_set(&m, &rep, &sen, dir, "mymaster");
	ok(rv == 0, "master, replica and sentinel started");
	if (rv != 0) {
		tap_skip(4, "no sentinel setup");
		rproc_stop(&sen, SIGKILL);
		rproc_stop(&rep, SIGKILL);
		rproc_stop(&m, SIGKILL);
		return;
	}
	snprintf(url, sizeof(url), "redis-sentinel://127.0.0.1:%d/mymaster/0",
	    sen.port);
	make_snap("n", 9, 5, &a, &la);
	rv = sst_open(url, top, &st, err, sizeof(err));
	rv = rv ? rv : sst_put(st, SST_NAMED, "before", NULL, 9, a, la, 0,
	    err, sizeof(err));
	/* WAIT: the replica has the write before the master goes (its
	 * first sync may still be under way: up to 10 s). */
	redisContext *c = rproc_connect(&m);
	long long acked = 0;
	for (int i = 0; i < 20 && c != NULL && acked < 1; i++) {
		redisReply *r = redisCommand(c, "WAIT 1 500");
		acked = r != NULL && r->type == REDIS_REPLY_INTEGER ?
		    r->integer : 0;
		if (r != NULL)
			freeReplyObject(r);
	}
	ok(rv == 0 && acked == 1, "sentinel: written through the master, "
	    "replicated (%s)", rv ? err : "ok");
	if (c != NULL)
		redisFree(c);

	/* The sentinel learns of replicas from the master's INFO, every 10
	 * s: a replica it does not know yet cannot be promoted. */
	if (!rproc_sentinel_knows(&sen, "mymaster", 15000))
		tap_diag("the sentinel did not list the replica in 15 s");

	/* Kill the master: the sentinel promotes the replica. */
	rproc_stop(&m, SIGKILL);
	t0 = fx_now_ms();
	while (fx_now_ms() - t0 < 30000) {
		rv = sst_put(st, SST_NAMED, "after", NULL, 9, a, la, 0, err,
		    sizeof(err));
		if (rv == 0) {
			moved = 1;
			break;
		}
		usleep(200 * 1000);
	}
	ok(moved, "sentinel: writes resume on the promoted replica after %lld "
	    "ms (%s)", (long long)(fx_now_ms() - t0), moved ? "ok" : err);
	tap_diag("sentinel failover: writes resumed %lld ms after the master "
	    "was killed", (long long)(fx_now_ms() - t0));
	rv = sst_get(st, SST_NAMED, "before", SIZE_MAX, &got, &lg, err,
	    sizeof(err));
	ok(rv == 0 && lg == la && memcmp(got, a, la) == 0, "sentinel: the "
	    "snapshot written before the failover is intact (%s)",
	    rv ? err : "ok");
	free(got);
	got = NULL;
	rv = sst_get(st, SST_NAMED, "after", SIZE_MAX, &got, &lg, err,
	    sizeof(err));
	ok(rv == 0 && lg == la, "sentinel: and the one written after");
	free(got);
	free(a);
	sst_close(st);
	rproc_stop(&sen, SIGTERM);
	rproc_stop(&rep, SIGTERM);
}

int
main(void)
{
	char top[512];

	if (!rproc_have()) {
		tap_plan_skip_all("no redis-server (tools/setup-debian.sh "
		    "installs it)");
		return (0);
	}
	tap_plan(76);
	tap_timeout(240);
	if (fx_tmpdir(top, sizeof(top)) != 0)
		return (1);
	dir_checks(top);
	url_checks();
	redis_checks(top);
	sentinel_checks(top);
	if (tap_failed == 0)
		fx_rmtree(top);
	else
		tap_diag("kept %s", top);
	return (tap_done());
}
