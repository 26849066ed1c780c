/*
 * t_lease.c - ownership in a shared store (daemon/store/lease.c) against a
 * real redis-server on a loopback port: one holder per stream, fencing
 * epochs that only grow, expiry and takeover, a cut-off holder's writes
 * refused by Redis itself, member heartbeats; and rendezvous hashing
 * (proto/hrw.c), which places streams over the live members.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon_proc.h"
#include "hrw.h"
#include "infini_err.h"
#include "redis_proc.h"
#include "store/store.h"

#define TTL 400                 /* ms: short, so expiry is quick to see */

static const uint8_t bytes_a[] = "state written by A";
static const uint8_t bytes_b[] = "state written by B";

/* wait_free waits (up to 5 s) until nobody holds id; its time in ms. */
static int64_t
wait_free(struct sst *st, const char *id)
{
	char owner[SST_MEMBER_MAX + 1], err[256];
	int64_t t0 = fx_now_ms();
	uint64_t ep;

	while (fx_now_ms() - t0 < 5000) {
		if (sst_lease_owner(st, id, owner, sizeof(owner), &ep, err,
		    sizeof(err)) == INFINI_ENOENT)
			return (fx_now_ms() - t0);
		usleep(20 * 1000);
	}
	return (-1);
}

static void
leases(struct sst *A, struct sst *B)
{
	char owner[SST_MEMBER_MAX + 1] = "", err[512];
	uint64_t e1 = 0, e1b = 0, e2 = 0, e3 = 0, ep = 0;
	struct sst_info in;
	uint8_t *got = NULL;
	size_t lg = 0;
	int64_t left = -1, waited;
	int rv;

	rv = sst_lease_acquire(A, "s1", "A", TTL, &e1, NULL, 0, NULL, err,
	    sizeof(err));
	ok(rv == 0 && e1 >= 1, "A takes stream s1 at epoch %" PRIu64, e1);
	rv = sst_lease_acquire(B, "s1", "B", TTL, &ep, owner, sizeof(owner),
	    &left, err, sizeof(err));
	ok(rv == INFINI_EEXIST && strcmp(owner, "A") == 0 && left > 0 &&
	    left <= TTL, "B is refused: held by %s for %lld ms more", owner,
	    (long long)left);
	rv = sst_lease_acquire(A, "s1", "A", TTL, &e1b, NULL, 0, NULL, err,
	    sizeof(err));
	ok(rv == 0 && e1b == e1, "A asking again extends its lease, same "
	    "epoch (a retried call is harmless)");
	rv = sst_lease_owner(B, "s1", owner, sizeof(owner), &ep, err,
	    sizeof(err));
	ok(rv == 0 && strcmp(owner, "A") == 0 && ep == e1, "anyone can see "
	    "the owner and its epoch");

	struct sst_fence fa = { "s1", "A", e1 }, fb = { "s1", "B", 0 };
	rv = sst_put(A, SST_STREAM, "s1.snap", &fa, 1, bytes_a,
	    sizeof(bytes_a), 0, err, sizeof(err));
	ok(rv == 0, "A writes s1 with its epoch (%s)", rv ? err : "ok");
	fb.epoch = e1;
	rv = sst_put(B, SST_STREAM, "s1.snap", &fb, 1, bytes_b,
	    sizeof(bytes_b), 0, err, sizeof(err));
	is_int(rv, INFINI_ESTATE, "B writing with A's epoch is refused: not "
	    "its lease (%s)", err);

	/* Keep A's lease alive past several TTLs by renewing. */
	int renewed = 1;
	for (int i = 0; i < 8; i++) {
		usleep(TTL / 4 * 1000);
		renewed &= sst_lease_renew(A, "s1", "A", e1, TTL, err,
		    sizeof(err)) == 0;
	}
	ok(renewed && sst_lease_owner(B, "s1", owner, sizeof(owner), &ep,
	    err, sizeof(err)) == 0 && strcmp(owner, "A") == 0, "renewals "
	    "keep A's lease for %d ms, past its TTL of %d", 8 * TTL / 4, TTL);

	/* A is cut off: it stops renewing; the lease lapses. */
	waited = wait_free(B, "s1");
	ok(waited >= 0 && waited <= TTL + 200, "A's lease lapses %lld ms "
	    "after its last renewal (TTL %d)", (long long)waited, TTL);
	rv = sst_lease_acquire(B, "s1", "B", TTL * 10, &e2, NULL, 0, NULL,
	    err, sizeof(err));
	ok(rv == 0 && e2 > e1, "B takes s1 over at epoch %" PRIu64 " > %"
	    PRIu64, e2, e1);
	fb.epoch = e2;
	rv = sst_put(B, SST_STREAM, "s1.snap", &fb, 1, bytes_b,
	    sizeof(bytes_b), 0, err, sizeof(err));
	ok(rv == 0, "B writes s1 with its epoch");

	/* A comes back, unaware: every stale call is refused by Redis. */
	rv = sst_put(A, SST_STREAM, "s1.snap", &fa, 1, bytes_a,
	    sizeof(bytes_a), 0, err, sizeof(err));
	is_int(rv, INFINI_ESTATE, "A's write with its old epoch is refused "
	    "(%s)", err);
	rv = sst_del(A, SST_STREAM, "s1.snap", &fa, err, sizeof(err));
	is_int(rv, INFINI_ESTATE, "A's delete with its old epoch is refused");
	rv = sst_lease_renew(A, "s1", "A", e1, TTL, err, sizeof(err));
	is_int(rv, INFINI_ESTATE, "A's renewal fails: it learns it lost s1 "
	    "(%s)", err);
	rv = sst_lease_release(A, "s1", "A", e1, err, sizeof(err));
	is_int(rv, INFINI_ESTATE, "A's release does not end B's lease");
	rv = sst_get(A, SST_STREAM, "s1.snap", SIZE_MAX, &got, &lg, err,
	    sizeof(err));
	ok(rv == 0 && lg == sizeof(bytes_b) && memcmp(got, bytes_b, lg) == 0,
	    "s1 holds B's state: the cut-off writer overwrote nothing");
	free(got);
	rv = sst_stat(A, SST_STREAM, "s1.snap", &in, err, sizeof(err));
	ok(rv == 0 && in.epoch == e2, "the entry records B's epoch");

	/* A lease that lapsed with nobody taking it: the old epoch still
	 * cannot write once it is re-taken, even by the same member. */
	rv = sst_lease_release(B, "s1", "B", e2, err, sizeof(err));
	/* Its TTL was 10 x TTL: free within one TTL means released. */
	int64_t freed = wait_free(A, "s1");
	ok(rv == 0 && freed >= 0 && freed < TTL, "B releases s1: free at once "
	    "(%lld ms), not when its lease of %d ms would lapse",
	    (long long)freed, TTL * 10);
	rv = sst_lease_acquire(B, "s1", "B", TTL, &e3, NULL, 0, NULL, err,
	    sizeof(err));
	ok(rv == 0 && e3 > e2, "taking it again gives a new epoch %" PRIu64
	    " (epochs are never reused)", e3);
	rv = sst_put(B, SST_STREAM, "s1.snap", &fb, 1, bytes_b,
	    sizeof(bytes_b), 0, err, sizeof(err));
	is_int(rv, INFINI_ESTATE, "even B's own older epoch is refused now");
	rv = sst_lease_renew(B, "s1", "B", e3, 1, err, sizeof(err));
	ok(rv == 0 && wait_free(A, "s1") >= 0, "a lease renewed with 1 ms "
	    "lapses at once");
	rv = sst_lease_acquire(A, "s1", "A", 0, &ep, NULL, 0, NULL, err,
	    sizeof(err));
	is_int(rv, INFINI_EINVAL, "a TTL of 0 is refused");
}

static void
members(struct sst *A, struct sst *B)
{
	struct sst_member *v = NULL;
	char err[512];
	size_t n = 0;
	int rv;

	rv = sst_member_beat(A, "tcp://127.0.0.1:7481", TTL, err, sizeof(err));
	rv |= sst_member_beat(B, "tcp://127.0.0.1:7480", TTL, err,
	    sizeof(err));
	rv |= sst_members(A, &v, &n, err, sizeof(err));
	ok(rv == 0 && n == 2 && strcmp(v[0].id, "tcp://127.0.0.1:7480") == 0 &&
	    strcmp(v[1].id, "tcp://127.0.0.1:7481") == 0, "two members beat; "
	    "the list is sorted (%zu)", n);
	free(v);
	/* A keeps beating, B stops. */
	for (int i = 0; i < 6; i++) {
		usleep(TTL / 3 * 1000);
		(void)sst_member_beat(A, "tcp://127.0.0.1:7481", TTL, err,
		    sizeof(err));
	}
	rv = sst_members(B, &v, &n, err, sizeof(err));
	ok(rv == 0 && n == 1 && strcmp(v[0].id, "tcp://127.0.0.1:7481") == 0,
	    "a member whose heartbeat lapsed drops out (%zu left)", n);
	free(v);
	rv = sst_member_leave(A, "tcp://127.0.0.1:7481", err, sizeof(err));
	rv |= sst_members(B, &v, &n, err, sizeof(err));
	ok(rv == 0 && n == 0, "a member that leaves is gone at once");
	free(v);
	rv = sst_member_beat(A, "", TTL, err, sizeof(err));
	is_int(rv, INFINI_EINVAL, "an empty member ID is refused");
}

static void
rendezvous(void)
{
	const char *m3[] = { "tcp://a:7480", "tcp://b:7480", "tcp://c:7480" };
	const char *r3[] = { "tcp://c:7480", "tcp://a:7480", "tcp://b:7480" };
	const char *m2[] = { "tcp://a:7480", "tcp://c:7480" };
	int count[3] = { 0 }, same = 1, moved_ok = 1, kept = 0, n = 3000;
	char id[32];

	ok(hrw_pick(m3, 0, "x") == -1, "no members: no placement");
	for (int i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "stream-%d", i);
		int p = hrw_pick(m3, 3, id), q = hrw_pick(r3, 3, id);
		int t = hrw_pick(m2, 2, id);
		count[p]++;
		same &= strcmp(m3[p], r3[q]) == 0;
		/* b leaves: only b's streams move. */
		if (p != 1) {
			moved_ok &= strcmp(m3[p], m2[t]) == 0;
			kept++;
		}
	}
	ok(same, "the choice does not depend on the members' order");
	ok(moved_ok, "when a member leaves, the %d streams of the others stay "
	    "where they were", kept);
	ok(count[0] > n / 3 * 0.85 && count[0] < n / 3 * 1.15 &&
	    count[1] > n / 3 * 0.85 && count[1] < n / 3 * 1.15 &&
	    count[2] > n / 3 * 0.85 && count[2] < n / 3 * 1.15,
	    "%d streams spread %d/%d/%d over 3 members", n, count[0],
	    count[1], count[2]);
	/* A fixed function: these values are part of the protocol. */
	ok(hrw_weight("tcp://a:7480", "s") == hrw_weight("tcp://a:7480", "s") &&
	    hrw_weight("tcp://a:7480", "s") != hrw_weight("tcp://b:7480", "s"),
	    "weights are deterministic and differ by member");
}

int
main(void)
{
	char top[512], url[128], err[512];
	struct sst *A = NULL, *B = NULL;
	struct rproc r;
	int rv;

	if (!rproc_have()) {
		tap_plan_skip_all("no redis-server (tools/setup-debian.sh "
		    "installs it)");
		return (0);
	}
	tap_plan(32);
	tap_timeout(60);
	if (fx_tmpdir(top, sizeof(top)) != 0)
		return (1);
	rv = rproc_start(&r, top, 0, false, NULL);
	ok(rv == 0, "redis-server on 127.0.0.1:%d", r.port);
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", r.port);
	/* Two handles, as two daemons would have. */
	rv = rv ? rv : sst_open(url, top, &A, err, sizeof(err));
	rv = rv ? rv : sst_open(url, top, &B, err, sizeof(err));
	ok(rv == 0, "two members connect (%s)", rv ? err : url);
	if (rv == 0) {
		leases(A, B);
		members(A, B);
	} else
		tap_skip(25, "no redis");
	rendezvous();
	sst_close(A);
	sst_close(B);
	rproc_stop(&r, SIGTERM);
	if (tap_failed == 0)
		fx_rmtree(top);
	else
		tap_diag("kept %s", top);
	return (tap_done());
}
