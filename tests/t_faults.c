/*
 * t_faults.c - what infinid does when the disk or the device fails under
 * it.  The daemon runs as a child process (daemon_proc.h) on a fixture
 * model; every check of a stream compares it, bit for bit, with a twin
 * stream that was fed the same tokens in the same pushes and met no fault.
 *
 *  1. Snapshot into a full state_dir (a small tmpfs): RESOURCE_EXHAUSTED
 *     naming the cause, the previous snapshot and every other file
 *     unchanged, the stream intact, the daemon serving.
 *  2. The same with the state_dir remounted read-only: PERMISSION_DENIED;
 *     once writable again a snapshot works and restores exactly.
 *  3. The device runs out of memory in the middle of a Push
 *     ($INFINID_FAULT=oom:...): the Push fails with RESOURCE_EXHAUSTED and
 *     says how far it got; the stream holds exactly the inputs before the
 *     failed round, the rest can be pushed again, the daemon serves on.
 *  4. The device is lost in the middle of a Push (lost:...): the Push fails
 *     with UNAVAILABLE, the daemon exits with status 1 (systemd restarts
 *     it), no file in state_dir changes, and a new daemon brings every
 *     stream back at its last saved state.
 *
 * 1 and 2 need root (mount); 3 and 4 need a daemon built with
 * INFINI_FAULT_INJECTION.  Parts that cannot run are skipped.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon_proc.h"
#include "fixture.h"
#include "infini.h"
#include "tap.h"

#define H 64                    /* the fixture's hidden size */
#define SEG 8                   /* the fixture's segment size */
#define NTOK 64

static char dir[256], model[512];
static struct dproc dp;
static infini_client *cl;

/* tokens of sequence k: distinct per sequence, < 256 (bytes). */
static int32_t
tok(int k, int i)
{
	return ((k * 131 + i * 7 + 1) % 256);
}

/* push sends tokens [off, off + n) of sequence k to id and copies LAST into
 * last (may be NULL).  Returns the client's code. */
static int
push(const char *id, int k, int off, int n, float *last)
{
	int32_t t[NTOK];
	struct infini_result r = { 0 };
	int rv;

	for (int i = 0; i < n; i++)
		t[i] = tok(k, off + i);
	rv = infini_push_tokens(cl, id, t, (size_t)n,
	    last ? INFINI_OUT_LAST : INFINI_OUT_NONE, &r);
	if (rv == 0 && last != NULL) {
		if (r.rows == 1 && r.cols == H)
			memcpy(last, r.data, H * sizeof(float));
		else
			rv = INFINI_EPROTO;
	}
	infini_result_free(&r);
	return (rv);
}

/* alike pushes [off, off + n) of sequence k to each stream of ids (NULL-
 * ended); true when all succeed and their LAST outputs are the same bits. */
static bool
alike(const char *const *ids, int k, int off, int n)
{
	float first[H], last[H];
	bool same = true;

	for (int i = 0; ids[i] != NULL; i++) {
		int rv = push(ids[i], k, off, n, i ? last : first);
		if (rv != 0) {
			tap_diag("push %s: %s", ids[i], infini_errmsg());
			return (false);
		}
		if (i > 0 && memcmp(first, last, sizeof(last)) != 0) {
			tap_diag("%s differs from %s", ids[i], ids[0]);
			same = false;
		}
	}
	return (same);
}

static bool
twins(const char *a, const char *b, int k, int off, int n)
{
	const char *ids[] = { a, b, NULL };
	return (alike(ids, k, off, n));
}

/* position returns id's position from ListStreams, or -1. */
static int64_t
position(const char *id)
{
	struct infini_stream_info *ls = NULL;
	size_t n = 0;
	int64_t pos = -1;

	if (infini_list(cl, &ls, &n) != 0)
		return (-1);
	for (size_t i = 0; i < n; i++)
		if (strcmp(ls[i].id, id) == 0)
			pos = (int64_t)ls[i].position;
	free(ls);
	return (pos);
}

static bool
serving(void)
{
	struct infini_health h;
	return (infini_health(cl, &h) == 0);
}

/*
 * digest appends to *buf every regular file of d, d/streams and
 * d/snapshots: its name, size and bytes, in name order, so two digests are
 * equal exactly when the files are.  Returns 0 or -1.
 */
static int
digest_dir(const char *d, char **buf, size_t *len)
{
	struct dirent **ents;
	int n = scandir(d, &ents, NULL, alphasort), rv = 0;

	if (n < 0)
		return (errno == ENOENT ? 0 : -1);
	for (int i = 0; i < n; i++) {
		char path[1024], *data = NULL;
		size_t sz = 0;
		struct stat sb;
		snprintf(path, sizeof(path), "%s/%s", d, ents[i]->d_name);
		if (rv == 0 && lstat(path, &sb) == 0 && S_ISREG(sb.st_mode) &&
		    strcmp(ents[i]->d_name, "infinid.log") != 0) {
			if (fx_read_file(path, &data, &sz) != 0)
				rv = -1;
			size_t nl = strlen(path) + 1;
			char *nb = realloc(*buf, *len + nl + sizeof(sz) + sz);
			if (rv == 0 && nb != NULL) {
				*buf = nb;
				memcpy(*buf + *len, path, nl);
				memcpy(*buf + *len + nl, &sz, sizeof(sz));
				memcpy(*buf + *len + nl + sizeof(sz), data, sz);
				*len += nl + sizeof(sz) + sz;
			} else
				rv = -1;
			free(data);
		}
		free(ents[i]);
	}
	free(ents);
	return (rv);
}

struct digest {
	char *buf;
	size_t len;
};

static int
digest(const char *state, struct digest *dg)
{
	char sub[600];

	dg->buf = NULL;
	dg->len = 0;
	char snaps[600];

	snprintf(sub, sizeof(sub), "%s/streams", state);
	snprintf(snaps, sizeof(snaps), "%s/snapshots", state);
	return (digest_dir(state, &dg->buf, &dg->len) == 0 &&
	    digest_dir(sub, &dg->buf, &dg->len) == 0 &&
	    digest_dir(snaps, &dg->buf, &dg->len) == 0 ? 0 : -1);
}

static bool
digest_same(const struct digest *a, const struct digest *b)
{
	return (a->len == b->len && a->len > 0 &&
	    memcmp(a->buf, b->buf, a->len) == 0);
}

static int
start(const char *state, const char *const *extra, const char *const *env)
{
	if (dproc_start(&dp, dir, model, state, extra, env) != 0 ||
	    infini_connect(dp.url, 5000, &cl) != 0) {
		printf("Bail out! infinid did not start (log: %s)\n", dp.log);
		exit(1);
	}
	return (0);
}

/* start_fresh starts a daemon on a new state directory dir/name, whose
 * path it leaves in state[n]. */
static int
start_fresh(char *state, size_t n, const char *name,
    const char *const *extra, const char *const *env)
{
	snprintf(state, n, "%s/%s", dir, name);
	mkdir(state, 0700);
	return (start(state, extra, env));
}

static void
stop(void)
{
	infini_close(cl);
	cl = NULL;
	dproc_wait(&dp, SIGKILL, 10000);
}

/* fill writes to dir/filler until the file system is full. */
static int
fill(const char *d)
{
	char path[600], block[4096];
	int fd;

	memset(block, 0x5a, sizeof(block));
	snprintf(path, sizeof(path), "%s/filler", d);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0)
		return (-1);
	while (write(fd, block, sizeof(block)) > 0)
		;
	/* Fill the last partial block too. */
	while (write(fd, block, 1) > 0)
		;
	int e = errno;
	close(fd);
	return (e == ENOSPC ? 0 : -1);
}

/* ---- 1 and 2: snapshots against a full and a read-only state_dir ---- */

#define N_DISK 11

static void
test_disk(void)
{
	static const char *const extra[] = { "--autosnapshot-segments", "0",
	    "--autosnapshot-interval-s", "0", NULL };
	char mnt[300], msg[512];
	struct digest before, after;
	int rv;

	snprintf(mnt, sizeof(mnt), "%s/small", dir);
	mkdir(mnt, 0700);
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=256k,mode=0700") != 0) {
		tap_skip(N_DISK, "cannot mount a tmpfs (needs root)");
		return;
	}
	start(mnt, extra, NULL);
	rv = infini_open(cl, "s", false, NULL, NULL);
	if (rv == 0)
		rv = infini_open(cl, "twin", false, NULL, NULL);
	ok(rv == 0 && twins("s", "twin", 1, 0, 13) &&
	    infini_snapshot(cl, "s", "good", NULL, NULL) == 0,
	    "a stream and its twin, fed alike; snapshot 'good' written");

	/* 1. Full. */
	ok(fill(mnt) == 0 && digest(mnt, &before) == 0,
	    "the state_dir's file system is full");
	rv = infini_snapshot_ex(cl, "s", "good", INFINI_SNAP_OVERWRITE, NULL,
	    NULL);
	snprintf(msg, sizeof(msg), "%s", infini_errmsg());
	ok(rv == INFINI_EFULL && strstr(msg, "No space left") != NULL,
	    "snapshot into the full state_dir: RESOURCE_EXHAUSTED (%s)", msg);
	rv = infini_snapshot(cl, "s", "other", NULL, NULL);
	ok(rv == INFINI_EFULL, "a new name fails the same way (%s)",
	    infini_errmsg());
	ok(digest(mnt, &after) == 0 && digest_same(&before, &after),
	    "no file changed: 'good' is the old snapshot, no temporary left");
	free(after.buf);
	ok(serving() && position("s") == 13 && twins("s", "twin", 1, 13, 9),
	    "the daemon serves and the stream goes on exactly like its twin");

	/* 2. Read-only. */
	char filler[600];
	snprintf(filler, sizeof(filler), "%s/filler", mnt);
	unlink(filler);
	free(before.buf);
	if (mount(NULL, mnt, NULL, MS_REMOUNT | MS_RDONLY, NULL) != 0) {
		tap_skip(5, "cannot remount the tmpfs read-only");
		stop();
		umount2(mnt, MNT_DETACH);
		return;
	}
	digest(mnt, &before);
	rv = infini_snapshot_ex(cl, "s", "good", INFINI_SNAP_OVERWRITE, NULL,
	    NULL);
	snprintf(msg, sizeof(msg), "%s", infini_errmsg());
	ok(rv == INFINI_EPERM && strstr(msg, "Read-only") != NULL,
	    "snapshot into the read-only state_dir: PERMISSION_DENIED (%s)",
	    msg);
	ok(digest(mnt, &after) == 0 && digest_same(&before, &after),
	    "no file changed");
	free(after.buf);
	free(before.buf);
	ok(serving() && position("s") == 22 && twins("s", "twin", 1, 22, 5),
	    "the daemon serves and the stream goes on exactly like its twin");
	ok(mount(NULL, mnt, NULL, MS_REMOUNT, NULL) == 0 &&
	    infini_snapshot(cl, "s", "later", NULL, NULL) == 0,
	    "writable again: the snapshot is written");
	uint64_t pos = 0;
	rv = infini_restore(cl, "s2", "later", NULL, 0, &pos);
	ok(rv == 0 && pos == 27 && twins("s2", "twin", 1, 27, 11),
	    "restored from it, the stream goes on exactly like its twin");
	stop();
	umount2(mnt, MNT_DETACH);
}

/* ---- 3: the device runs out of memory mid-push ---- */

#define N_OOM 4

static void
test_oom(void)
{
	static const char *const env[] = { "INFINID_FAULT=oom:victim:1", NULL };
	char state[300], msg[512], want[128];
	int rv;

	start_fresh(state, sizeof(state), "state-oom", NULL, env);
	rv = infini_open(cl, "victim", false, NULL, NULL);
	if (rv == 0)
		rv = infini_open(cl, "twin", false, NULL, NULL);
	/* Three segments in one Push: three rounds; the second fails. */
	rv = rv ? rv : push("victim", 2, 0, 3 * SEG, NULL);
	snprintf(msg, sizeof(msg), "%s", infini_errmsg());
	snprintf(want, sizeof(want), "%d of its %d inputs went in, the stream "
	    "is at position %d", SEG, 3 * SEG, SEG);
	ok(rv == INFINI_EFULL && strstr(msg, "out of memory") != NULL &&
	    strstr(msg, want) != NULL,
	    "Push of 3 segments, the device out of memory in the 2nd: "
	    "RESOURCE_EXHAUSTED (%s)", msg);
	ok(position("victim") == SEG, "the stream holds the first segment");
	ok(push("twin", 2, 0, SEG, NULL) == 0 &&
	    twins("victim", "twin", 2, SEG, 2 * SEG + 3),
	    "the rest pushed again: the stream equals its twin bit for bit");
	int st;
	ok(serving() && infini_open(cl, "other", false, NULL, NULL) == 0 &&
	    push("other", 3, 0, 20, NULL) == 0 &&
	    waitpid(dp.pid, &st, WNOHANG) == 0,
	    "the daemon is running and serves other streams");
	stop();
}

/* ---- 4: the device is lost mid-push ---- */

#define N_LOST 7

/* wait_file waits up to 10 s for path to exist. */
static bool
wait_file(const char *path)
{
	struct stat sb;
	for (int i = 0; i < 500; i++) {
		if (stat(path, &sb) == 0)
			return (true);
		usleep(20000);
	}
	return (false);
}

static void
test_lost(void)
{
	static const char *const env[] = { "INFINID_FAULT=lost:victim:2", NULL };
	static const char *const extra[] = { "--autosnapshot-segments", "1",
	    "--autosnapshot-interval-s", "0", NULL };
	char state[300], path[600], msg[512];
	struct digest before, after;
	int rv;

	start_fresh(state, sizeof(state), "state-lost", extra, env);
	/* Saved state: keep at 16 (autosnapshot and a named snapshot), victim
	 * at 8 (autosnapshot after its first round).  Then victim takes 3
	 * more tokens, not saved: a daemon that wrote its state after the
	 * loss would save what the lost round left in its memory. */
	rv = infini_open(cl, "keep", false, NULL, NULL);
	rv = rv ? rv : push("keep", 4, 0, 2 * SEG, NULL);
	rv = rv ? rv : infini_snapshot(cl, "keep", "keep-named", NULL, NULL);
	rv = rv ? rv : infini_open(cl, "victim", false, NULL, NULL);
	rv = rv ? rv : push("victim", 5, 0, SEG, NULL);
	snprintf(path, sizeof(path), "%s/streams/victim.snap", state);
	bool saved = wait_file(path);
	snprintf(path, sizeof(path), "%s/streams/keep.snap", state);
	saved = saved && wait_file(path);
	usleep(300000);         /* let any write in progress finish */
	rv = rv ? rv : push("victim", 5, SEG, 3, NULL);
	ok(rv == 0 && saved && digest(state, &before) == 0,
	    "two streams saved by autosnapshot, one by Snapshot; victim has "
	    "3 unsaved tokens");

	rv = push("victim", 5, SEG + 3, 2 * SEG, NULL);
	snprintf(msg, sizeof(msg), "%s", infini_errmsg());
	ok(rv == INFINI_EUNAVAILABLE && strstr(msg, "lost") != NULL,
	    "Push when the device is lost: UNAVAILABLE (%s)", msg);
	infini_close(cl);
	cl = NULL;
	int st = dproc_wait(&dp, 0, 30000);
	ok(st == 1, "the daemon exits with status 1 for a restart (%d)", st);
	ok(digest(state, &after) == 0 && digest_same(&before, &after),
	    "no file in state_dir changed");
	free(before.buf);
	free(after.buf);

	start(state, NULL, NULL);
	ok(position("keep") == 2 * SEG && position("victim") == SEG,
	    "restarted: the streams are back at their saved positions");
	/* Twins fed from scratch on the new daemon. */
	uint64_t pos = 0;
	rv = infini_open(cl, "keep-twin", false, NULL, NULL);
	rv = rv ? rv : infini_open(cl, "victim-twin", false, NULL, NULL);
	rv = rv ? rv : push("keep-twin", 4, 0, 2 * SEG, NULL);
	rv = rv ? rv : push("victim-twin", 5, 0, SEG, NULL);
	rv = rv ? rv : infini_restore(cl, "keep-copy", "keep-named", NULL, 0,
	    &pos);
	const char *keeps[] = { "keep", "keep-copy", "keep-twin", NULL };
	ok(rv == 0 && pos == 2 * SEG && alike(keeps, 4, 2 * SEG, 11),
	    "keep, its named snapshot and a twin go on alike, bit for bit");
	ok(twins("victim", "victim-twin", 5, SEG, 2 * SEG),
	    "the victim goes on from its last save like a twin");
	stop();
}

int
main(void)
{
	struct fx_opts o;

	tap_plan(N_DISK + N_OOM + N_LOST + 1);
	setenv("INFINI_VALIDATION", "1", 0);
	tap_timeout(600);
	signal(SIGPIPE, SIG_IGN);
	if (fx_tmpdir(dir, sizeof(dir)) != 0)
		return (1);
	snprintf(model, sizeof(model), "%s/model", dir);
	fx_opts_default(&o);
	if (fx_write_model(model, &o) != 0) {
		printf("Bail out! cannot write the fixture model\n");
		return (1);
	}
	test_disk();
#ifdef INFINI_FAULT_INJECTION
	test_oom();
	test_lost();
#else
	tap_skip(N_OOM + N_LOST,
	    "infinid built without INFINI_FAULT_INJECTION");
#endif
	return (dproc_tap_done(dir, dp.log));
}
