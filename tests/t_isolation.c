/*
 * t_isolation.c - users of one daemon kept apart, and what a hostile local
 * user can put in front of it.
 *
 * infinid runs as root with socket_mode 0666 (daemon_proc.c); clients are
 * children (this program run again) that drop to two unprivileged UIDs
 * (setresgid/setresuid) before they connect, so the daemon sees their real
 * peer credentials.
 * Checks:
 *  - named snapshots belong to their writer: the other UID cannot restore,
 *    replace, delete or list them (PERMISSION_DENIED, no server path in the
 *    message); the writer needs overwrite to replace its own; root sees
 *    all; the owners survive a restart; ListSnapshots shows owner, size,
 *    position and time; DeleteSnapshot removes;
 *  - a string holding a NUL byte ("victim\0junk") is refused before use
 *    and the stream "victim" is untouched; libinfini refuses bad names
 *    before sending;
 *  - named snapshots live in state_dir/snapshots: a FIFO or a 2 GB sparse
 *    file under a name is refused at once while Health keeps answering, a
 *    temp file left by a killed writer is gone after a start;
 *  - a crafted snapshot (position near 2^63, checksums recomputed; another
 *    vocab_size) is refused with its reason;
 *  - the CLI: snapshot --force, snapshots, rm-snapshot.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <xxhash.h>

#include "daemon_proc.h"
#include "fixture.h"
#include "infini.h"
#include "tap.h"
#include "wire.h"

#define UID_A 60001
#define UID_B 60002
#define NPUSH 7

static char dir[256], model[512], state[300], snaps[400];
static struct dproc dp;

static void
start(void)
{
	static const char *const extra[] = { "--autosnapshot-segments", "0",
	    NULL };
	if (dproc_start(&dp, dir, model, state, extra, NULL) != 0) {
		printf("Bail out! infinid did not start (log: %s)\n", dp.log);
		exit(1);
	}
}

/* ---- clients as other users ---- */

/* What a child reports: up to 16 return codes and messages, and numbers. */
struct res {
	int n;
	int rv[16];
	char msg[16][200];
	uint64_t v[8];
};

static void
note(struct res *r, int rv)
{
	if (r->n < 16) {
		r->rv[r->n] = rv;
		snprintf(r->msg[r->n], sizeof(r->msg[0]), "%s",
		    rv ? infini_errmsg() : "");
		r->n++;
	}
}

/* A scenario a child runs, by name (the child is this program, exec'd
 * afresh: NNG does not survive a fork). */
struct scenario {
	const char *name;
	void (*fn)(infini_client *, struct res *);
};
static const struct scenario scenarios[];

/*
 * as_user runs scenario name in a child that drops to uid (and gid uid, no
 * supplementary groups) before it connects to the daemon; *r gets what the
 * scenario noted.  Returns 0, or -1 when the child could not run.
 */
static int
as_user(uint32_t uid, const char *name, struct res *r)
{
	char us[16];
	int p[2], st = -1;
	pid_t pid;

	memset(r, 0, sizeof(*r));
	snprintf(us, sizeof(us), "%u", uid);
	if (pipe(p) != 0)
		return (-1);
	if ((pid = fork()) == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execl("/proc/self/exe", "t_isolation", "--child", us, dp.url,
		    name, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	ssize_t got = 0, k;
	while (pid > 0 && got < (ssize_t)sizeof(*r) &&
	    (k = read(p[0], (char *)r + got, sizeof(*r) - (size_t)got)) > 0)
		got += k;
	close(p[0]);
	if (pid > 0)
		waitpid(pid, &st, 0);
	if (got != (ssize_t)sizeof(*r)) {
		tap_diag("child as uid %u failed (status %d)", uid,
		    pid > 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1);
		return (-1);
	}
	return (0);
}

/* child_main is the child's side of as_user. */
static int
child_main(char **argv)
{
	uint32_t uid = (uint32_t)strtoul(argv[2], NULL, 10);
	struct res out;
	infini_client *c;

	memset(&out, 0, sizeof(out));
	if (setgroups(0, NULL) != 0 || setresgid(uid, uid, uid) != 0 ||
	    setresuid(uid, uid, uid) != 0 || getuid() != uid)
		return (3);
	if (infini_connect(argv[3], 5000, &c) != 0)
		return (4);
	for (const struct scenario *s = scenarios; s->name != NULL; s++)
		if (strcmp(s->name, argv[4]) == 0)
			s->fn(c, &out);
	infini_close(c);
	return (write(1, &out, sizeof(out)) == sizeof(out) ? 0 : 5);
}

static int
push_n(infini_client *c, const char *id, int n)
{
	int32_t t[64];
	for (int i = 0; i < n && i < 64; i++)
		t[i] = (i * 37 + 11) % 200;
	return (infini_push_tokens(c, id, t, (size_t)n, INFINI_OUT_NONE, NULL));
}

/* find looks name up in a listing: its index or -1. */
static int
find(const struct infini_snapshot_info *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].name, name) == 0)
			return ((int)i);
	return (-1);
}

/* A writes "secret" of a stream at NPUSH, tries to write it again without
 * and with overwrite, lists and restores it. */
static void
a_first(infini_client *c, struct res *r)
{
	struct infini_snapshot_info *v = NULL;
	size_t n = 0;
	uint64_t pos = 0;

	note(r, infini_open(c, "a1", false, NULL, NULL) ||
	    push_n(c, "a1", NPUSH));
	note(r, infini_snapshot(c, "a1", "secret", NULL, NULL));
	note(r, infini_snapshot(c, "a1", "secret", NULL, NULL));
	note(r, infini_snapshot_ex(c, "a1", "secret", INFINI_SNAP_OVERWRITE,
	    NULL, NULL));
	note(r, infini_list_snapshots(c, &v, &n));
	int i = v ? find(v, n, "secret") : -1;
	if (i >= 0) {
		r->v[0] = v[i].owner_uid;
		r->v[1] = v[i].position;
		r->v[2] = v[i].bytes;
		r->v[3] = v[i].created_ms;
		r->v[4] = strcmp(v[i].stream_id, "a1") == 0;
	}
	r->v[5] = (uint64_t)i + 1;
	free(v);
	note(r, infini_restore(c, "a2", "secret", NULL, 0, &pos));
	r->v[6] = pos;
}

/* B tries A's snapshot every way, and writes one of its own. */
static void
b_first(infini_client *c, struct res *r)
{
	struct infini_snapshot_info *v = NULL;
	size_t n = 0;

	note(r, infini_open(c, "b1", false, NULL, NULL) || push_n(c, "b1", 3));
	note(r, infini_restore(c, "b2", "secret", NULL, 0, NULL));
	note(r, infini_snapshot_ex(c, "b1", "secret", INFINI_SNAP_OVERWRITE,
	    NULL, NULL));
	note(r, infini_delete_snapshot(c, "secret"));
	note(r, infini_list_snapshots(c, &v, &n));
	r->v[0] = v ? (uint64_t)(find(v, n, "secret") + 1) : 99;
	free(v);
	note(r, infini_snapshot(c, "b1", "bsnap", NULL, NULL));
}

/* After the restart: B still cannot, A still owns and then deletes. */
static void
b_again(infini_client *c, struct res *r)
{
	note(r, infini_restore(c, "b3", "secret", NULL, 0, NULL));
	note(r, infini_delete_snapshot(c, "secret"));
}

static void
a_again(infini_client *c, struct res *r)
{
	struct infini_snapshot_info *v = NULL;
	size_t n = 0;

	note(r, infini_list_snapshots(c, &v, &n));
	int i = v ? find(v, n, "secret") : -1;
	r->v[0] = i >= 0 ? v[i].owner_uid : 0;
	r->v[1] = v ? (uint64_t)(find(v, n, "bsnap") + 1) : 99;
	free(v);
	note(r, infini_delete_snapshot(c, "secret"));
	note(r, infini_restore(c, "a3", "secret", NULL, 0, NULL));
	note(r, infini_list_snapshots(c, &v, &n));
	r->v[2] = v ? (uint64_t)(find(v, n, "secret") + 1) : 99;
	free(v);
}

/* Under a quota of one and a half snapshots: one fits, a second does not,
 * replacing the first does, and deleting it makes room.  v[0]: bytes of
 * the first. */
static void
a_quota(infini_client *c, struct res *r)
{
	size_t bytes = 0;

	note(r, infini_open(c, "qa", false, NULL, NULL) ||
	    push_n(c, "qa", NPUSH));
	note(r, infini_snapshot(c, "qa", "q1", NULL, &bytes));
	r->v[0] = bytes;
	note(r, infini_snapshot(c, "qa", "q2", NULL, NULL));
	note(r, infini_snapshot_ex(c, "qa", "q1", INFINI_SNAP_OVERWRITE, NULL,
	    NULL));
	note(r, infini_delete_snapshot(c, "q1"));
	note(r, infini_snapshot(c, "qa", "q2", NULL, NULL));
}

/* Another user's quota is their own: with its earlier "bsnap" deleted,
 * it has room for one while a_quota's snapshot stays. */
static void
b_quota(infini_client *c, struct res *r)
{
	note(r, infini_delete_snapshot(c, "bsnap"));
	note(r, infini_open(c, "qb", false, NULL, NULL) ||
	    push_n(c, "qb", NPUSH));
	note(r, infini_snapshot(c, "qb", "qb1", NULL, NULL));
}

static const struct scenario scenarios[] = {
	{ "a_first", a_first }, { "b_first", b_first },
	{ "a_again", a_again }, { "b_again", b_again },
	{ "a_quota", a_quota }, { "b_quota", b_quota }, { NULL, NULL },
};

static bool
no_path(const struct res *r)
{
	for (int i = 0; i < r->n; i++)
		if (strstr(r->msg[i], state) != NULL ||
		    strstr(r->msg[i], dir) != NULL)
			return (false);
	return (true);
}

#define N_OWNERS 12

static void
test_owners(void)
{
	struct res a, b;
	int64_t now = 0;
	struct timespec ts;

	if (getuid() != 0) {
		tap_skip(N_OWNERS, "two-UID checks need root");
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	now = (int64_t)ts.tv_sec * 1000;
	if (as_user(UID_A, "a_first", &a) != 0 || as_user(UID_B, "b_first",
	    &b) != 0) {
		tap_skip(N_OWNERS, "cannot run clients as other users");
		return;
	}
	ok(a.rv[0] == 0 && a.rv[1] == 0, "uid %d writes snapshot 'secret' of "
	    "its stream (%s)", UID_A, a.msg[1]);
	ok(a.rv[2] == INFINI_EEXIST && a.rv[3] == 0, "writing it again needs "
	    "overwrite: ALREADY_EXISTS without (%s), OK with", a.msg[2]);
	ok(a.rv[4] == 0 && a.v[5] > 0 && a.v[0] == UID_A &&
	    a.v[1] == NPUSH && a.v[2] > 240 && a.v[4] == 1 &&
	    (int64_t)a.v[3] >= now - 60000 && (int64_t)a.v[3] <= now + 60000,
	    "ListSnapshots shows it: owner %llu, position %llu, %llu bytes, "
	    "taken of a1 just now", (unsigned long long)a.v[0],
	    (unsigned long long)a.v[1], (unsigned long long)a.v[2]);
	ok(a.rv[5] == 0 && a.v[6] == NPUSH, "its owner restores it (position "
	    "%llu)", (unsigned long long)a.v[6]);
	ok(b.rv[0] == 0 && b.rv[1] == INFINI_EPERM && b.rv[2] == INFINI_EPERM &&
	    b.rv[3] == INFINI_EPERM, "uid %d may not restore, overwrite or "
	    "delete it: PERMISSION_DENIED (%s)", UID_B, b.msg[1]);
	ok(b.rv[4] == 0 && b.v[0] == 0, "nor sees it listed");
	ok(no_path(&a) && no_path(&b), "no message names a server path");

	/* Root sees everything. */
	infini_client *c;
	struct infini_snapshot_info *v = NULL;
	size_t n = 0;
	int rv = infini_connect(dp.url, 5000, &c);
	rv = rv ? rv : infini_list_snapshots(c, &v, &n);
	int ia = v ? find(v, n, "secret") : -1, ib = v ? find(v, n, "bsnap") :
	    -1;
	ok(rv == 0 && b.rv[5] == 0 && ia >= 0 && ib >= 0 &&
	    v[ia].owner_uid == UID_A && v[ib].owner_uid == UID_B,
	    "root lists both users' snapshots with their owners");
	free(v);
	infini_close(c);

	/* Owners are kept in the files: a restart changes nothing. */
	ok(dproc_wait(&dp, SIGTERM, 60000) == 0, "the daemon stops cleanly");
	start();
	if (as_user(UID_B, "b_again", &b) != 0 || as_user(UID_A, "a_again",
	    &a) != 0) {
		tap_skip(3, "cannot run clients as other users");
		return;
	}
	ok(b.rv[0] == INFINI_EPERM && b.rv[1] == INFINI_EPERM,
	    "after a restart uid %d still may not restore or delete it (%s)",
	    UID_B, b.msg[0]);
	ok(a.rv[0] == 0 && a.v[0] == UID_A && a.v[1] == 0, "uid %d still owns "
	    "it and does not see uid %d's", UID_A, UID_B);
	ok(a.rv[1] == 0 && a.rv[2] == INFINI_ENOENT && a.rv[3] == 0 &&
	    a.v[2] == 0, "its owner deletes it: gone from the list, restore "
	    "says NOT_FOUND (%s)", a.msg[2]);
}

/* ---- NUL bytes and names outside the character set ---- */

/* raw_call sends a Request around body bytes and returns the reply's
 * status code (-1: no reply), its message in msg. */
static int
raw_call(int method, const uint8_t *body, size_t blen, char *msg,
    size_t msglen)
{
	Infini__V1__Request q = INFINI__V1__REQUEST__INIT;
	Infini__V1__Reply *r;
	nng_socket s;
	uint8_t *buf, *rb = NULL;
	size_t len, rlen = 0;
	int code = -1;

	msg[0] = '\0';
	if (nng_req0_open(&s) != 0)
		return (-1);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 10000);
	q.version = WIRE_VERSION;
	q.method = method;
	q.call_id = 7;
	q.body.data = (uint8_t *)body;
	q.body.len = blen;
	len = infini__v1__request__get_packed_size(&q);
	buf = malloc(len);
	infini__v1__request__pack(&q, buf);
	if (nng_dial(s, dp.url, NULL, 0) == 0 &&
	    nng_send(s, buf, len, 0) == 0 &&
	    nng_recv(s, &rb, &rlen, NNG_FLAG_ALLOC) == 0) {
		r = infini__v1__reply__unpack(NULL, rlen, rb);
		if (r != NULL) {
			code = r->status ? (int)r->status->code : 0;
			snprintf(msg, msglen, "%s", r->status &&
			    r->status->message ? r->status->message : "");
			infini__v1__reply__free_unpacked(r, NULL);
		}
		nng_free(rb, rlen);
	}
	free(buf);
	nng_close(s);
	return (code);
}

/* put_str appends string field f of n bytes (n < 128) at b. */
static size_t
put_str(uint8_t *b, int f, const char *s, size_t n)
{
	b[0] = (uint8_t)(f << 3 | 2);
	b[1] = (uint8_t)n;
	memcpy(b + 2, s, n);
	return (n + 2);
}

#define N_NUL 5

static void
test_nul(infini_client *c)
{
	uint8_t body[256];
	char msg[512], path[600];
	size_t n;
	int code;

	ok(infini_open(c, "victim", false, NULL, NULL) == 0 &&
	    push_n(c, "victim", 5) == 0, "stream 'victim' open at 5");
	n = put_str(body, 1, "victim\0junk", 11);
	code = raw_call(INFINI__V1__METHOD__CLOSE_STREAM, body, n, msg,
	    sizeof(msg));
	struct infini_stream_info *v = NULL;
	size_t nv = 0;
	bool still = false;
	if (infini_list(c, &v, &nv) == 0)
		for (size_t i = 0; i < nv; i++)
			still |= strcmp(v[i].id, "victim") == 0 &&
			    v[i].position == 5;
	free(v);
	ok(code == INFINI__V1__CODE__INVALID_ARGUMENT &&
	    strstr(msg, "NUL") != NULL && still, "Close(\"victim\\0junk\") "
	    "is INVALID_ARGUMENT (%s) and 'victim' is still there", msg);

	n = put_str(body, 1, "victim", 6);
	n += put_str(body + n, 2, "victim\0../../evil", 17);
	code = raw_call(INFINI__V1__METHOD__SNAPSHOT, body, n, msg,
	    sizeof(msg));
	snprintf(path, sizeof(path), "%s/victim", snaps);
	ok(code == INFINI__V1__CODE__INVALID_ARGUMENT &&
	    access(path, F_OK) != 0, "a snapshot named \"victim\\0../../evil\" "
	    "is refused and writes nothing (%s)", msg);

	n = put_str(body, 1, "vic tim", 7);
	code = raw_call(INFINI__V1__METHOD__OPEN_STREAM, body, n, msg,
	    sizeof(msg));
	ok(code == INFINI__V1__CODE__INVALID_ARGUMENT, "an id with a space is "
	    "refused (%s)", msg);

	ok(infini_snapshot(c, "victim", "../evil", NULL, NULL) ==
	    INFINI_EINVAL && infini_delete_snapshot(c, ".hidden") ==
	    INFINI_EINVAL && infini_restore(c, "x", "a/b", NULL, 0, NULL) ==
	    INFINI_EINVAL, "libinfini refuses bad snapshot names before "
	    "sending (%s)", infini_errmsg());
}

/* ---- the snapshot directory ---- */

#define N_DIR 5

static bool
healthy_within(infini_client *c, int64_t ms)
{
	struct infini_health h;
	int64_t t0 = fx_now_ms();
	return (infini_health(c, &h) == 0 && fx_now_ms() - t0 <= ms);
}

static void
test_dir(infini_client *c)
{
	char path[600], msg[512];
	struct stat sb;
	int64_t t0, dt;
	int rv, fd;

	snprintf(path, sizeof(path), "%s/.old.tmp.77.1", snaps);
	ok(access(path, F_OK) != 0 && lstat(snaps, &sb) == 0 &&
	    S_ISDIR(sb.st_mode), "named snapshots have their own directory; "
	    "the temp file a killed writer left there is gone after a start");

	snprintf(path, sizeof(path), "%s/fifo", snaps);
	mkfifo(path, 0600);
	t0 = fx_now_ms();
	rv = infini_restore(c, "f", "fifo", NULL, 0, NULL);
	dt = fx_now_ms() - t0;
	snprintf(msg, sizeof(msg), "%s", infini_errmsg());
	ok(rv == INFINI_EINVAL && strstr(msg, "regular") != NULL &&
	    dt < 2000 && healthy_within(c, 1000), "a FIFO under a snapshot "
	    "name is refused in %lld ms and Health answers (%s)",
	    (long long)dt, msg);

	snprintf(path, sizeof(path), "%s/huge", snaps);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	rv = fd >= 0 && ftruncate(fd, (off_t)2 << 30) == 0 ? 0 : -1;
	if (fd >= 0)
		close(fd);
	t0 = fx_now_ms();
	rv = rv == 0 ? infini_restore(c, "h", "huge", NULL, 0, NULL) : -1;
	dt = fx_now_ms() - t0;
	snprintf(msg, sizeof(msg), "%s", infini_errmsg());
	ok(rv == INFINI_ECORRUPT && dt < 1000 && strstr(msg, state) == NULL,
	    "a 2 GB sparse file is refused unread in %lld ms (%s)",
	    (long long)dt, msg);

	/* A name that is another file's name in state_dir. */
	snprintf(path, sizeof(path), "%s/streams", snaps);
	rv = infini_snapshot(c, "victim", "streams", NULL, NULL);
	char sd[600];
	snprintf(sd, sizeof(sd), "%s/streams", state);
	struct stat s2;
	ok(rv == 0 && lstat(path, &sb) == 0 && S_ISREG(sb.st_mode) &&
	    lstat(sd, &s2) == 0 && S_ISDIR(s2.st_mode), "a snapshot named "
	    "'streams' lands in the snapshot directory, not over state_dir's "
	    "streams/");
	ok(infini_delete_snapshot(c, "streams") == 0 &&
	    access(path, F_OK) != 0, "and is deleted from there");
}

/* ---- the CLI ---- */

#define N_CLI 4

/* cli runs the infini CLI with args (as uid when uid >= 0), its stdout
 * and stderr in dir/cli.out; returns its exit status. */
static int
cli(int uid, const char *args)
{
	char cmd[2048], out[400];
	int st;
	pid_t pid;

	snprintf(out, sizeof(out), "%s/cli.out", dir);
	fx_write_file(out, "", 0);
	chmod(out, 0666);
	snprintf(cmd, sizeof(cmd), "exec %s --socket %s %s >%s 2>&1",
	    INFINI_CLI_PATH, dp.url, args, out);
	if ((pid = fork()) == 0) {
		if (uid >= 0 && (setgroups(0, NULL) != 0 ||
		    setgid((gid_t)uid) != 0 || setuid((uid_t)uid) != 0))
			_exit(100);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	waitpid(pid, &st, 0);
	return (WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

/* cli_said: does the last cli output contain needle? */
static bool
cli_said(const char *needle)
{
	char path[400], *buf = NULL;
	size_t n;
	bool found = false;

	snprintf(path, sizeof(path), "%s/cli.out", dir);
	if (fx_read_file(path, &buf, &n) == 0)
		found = strstr(buf, needle) != NULL;
	free(buf);
	return (found);
}

static void
test_cli(void)
{
	int a = cli(-1, "snapshot victim --name clisnap");
	int b = cli(-1, "snapshot victim --name clisnap");
	bool exists = cli_said("ALREADY_EXISTS") && cli_said("--force");
	int f = cli(-1, "snapshot victim --name clisnap --force");
	ok(a == 0 && b == 1 && exists && f == 0, "infini snapshot --name: a "
	    "second time is refused (exit %d, suggesting --force), with "
	    "--force it replaces (exit %d)", b, f);
	ok(cli(-1, "snapshots") == 0 && cli_said("clisnap") &&
	    cli_said("OWNER") && cli_said("POSITION"), "infini snapshots lists "
	    "it with owner, size, position and time");
	if (getuid() == 0)
		ok(cli(UID_B, "rm-snapshot clisnap") == 1 &&
		    cli_said("PERMISSION_DENIED"), "infini rm-snapshot of "
		    "root's snapshot as uid %d: PERMISSION_DENIED", UID_B);
	else
		tap_skip(1, "needs root");
	ok(cli(-1, "rm-snapshot clisnap") == 0 && cli(-1, "snapshots") == 0 &&
	    !cli_said("clisnap"), "infini rm-snapshot deletes it");
}

/* ---- crafted snapshots ---- */

#define N_CRAFT 3

static void
put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* refix recomputes the header checksum and the trailer. */
static void
refix(uint8_t *b, size_t len)
{
	put64(b + 232, XXH3_64bits(b, 232));
	put64(b + len - 8, XXH3_64bits(b, len - 8));
}

static void
test_crafted(infini_client *c)
{
	struct infini_health h;
	uint8_t *data = NULL, *cp;
	size_t len = 0;
	int rv;

	rv = infini_health(c, &h);
	rv = rv ? rv : infini_snapshot(c, "victim", NULL, &data, &len);
	ok(rv == 0 && len > 240, "the victim's snapshot exported");
	if (rv != 0)
		return;
	cp = malloc(len);
	uint64_t N = h.segment_size, pos = 5;
	uint64_t far = pos + ((uint64_t)INT64_MAX - pos) / N * N;
	memcpy(cp, data, len);
	put64(cp + 56, far);
	put64(cp + 64, far / N);
	refix(cp, len);
	rv = infini_restore(c, "evil", NULL, cp, len, NULL);
	ok(rv == INFINI_ECORRUPT && strstr(infini_errmsg(), "position") !=
	    NULL, "a snapshot at position %llu (checksums recomputed) is "
	    "refused: %s", (unsigned long long)far, infini_errmsg());
	memcpy(cp, data, len);
	cp[52] ^= 1;                 /* vocab_size */
	refix(cp, len);
	rv = infini_restore(c, "evil", NULL, cp, len, NULL);
	ok(rv == INFINI_ESTATE && strstr(infini_errmsg(), "vocab_size") !=
	    NULL, "one with another vocab_size is refused saying so: %s",
	    infini_errmsg());
	free(cp);
	free(data);
}

#define N_QUOTA 4

/*
 * test_quota restarts the daemon with max_snapshot_bytes_per_uid at one
 * and a half of the fixture's snapshots (the size a root snapshot of the
 * same pushes gives) and runs a_quota and b_quota.
 */
static void
test_quota(void)
{
	char lim[32];
	const char *extra[] = { "--autosnapshot-segments", "0",
	    "--max-snapshot-bytes-per-uid", lim, NULL };
	infini_client *c = NULL;
	size_t bytes = 0;
	struct res a, b;

	if (getuid() != 0) {
		tap_skip(N_QUOTA, "two-UID checks need root");
		return;
	}
	if (infini_connect(dp.url, 5000, &c) != 0 ||
	    infini_open(c, "qroot", false, NULL, NULL) != 0 ||
	    push_n(c, "qroot", NPUSH) != 0 ||
	    infini_snapshot(c, "qroot", "qroot", NULL, &bytes) != 0) {
		infini_close(c);
		tap_diag("cannot measure a snapshot: %s", infini_errmsg());
		tap_skip(N_QUOTA, "no snapshot to measure");
		return;
	}
	infini_close(c);
	dproc_wait(&dp, SIGTERM, 60000);
	snprintf(lim, sizeof(lim), "%zu", bytes * 3 / 2);
	if (dproc_start(&dp, dir, model, state, extra, NULL) != 0) {
		printf("Bail out! infinid did not start (log: %s)\n", dp.log);
		exit(1);
	}
	if (as_user(UID_A, "a_quota", &a) != 0 ||
	    as_user(UID_B, "b_quota", &b) != 0) {
		tap_skip(N_QUOTA, "cannot run clients as other users");
		return;
	}
	ok(a.rv[0] == 0 && a.rv[1] == 0 && a.v[0] == bytes,
	    "under a quota of %s bytes uid %d keeps one snapshot of %llu bytes",
	    lim, UID_A, (unsigned long long)a.v[0]);
	ok(a.rv[2] == INFINI_EFULL && strstr(a.msg[2],
	    "max_snapshot_bytes_per_uid") != NULL, "a second is "
	    "RESOURCE_EXHAUSTED naming the setting: %s", a.msg[2]);
	ok(a.rv[3] == 0 && a.rv[4] == 0 && a.rv[5] == 0, "replacing the first "
	    "fits, and deleting it makes room for another");
	ok(b.rv[0] == 0 && b.rv[1] == 0 && b.rv[2] == 0, "uid %d has a quota "
	    "of its own (%s)", UID_B, b.msg[2]);
}

int
main(int argc, char **argv)
{
	char path[600];
	infini_client *c;

	if (argc == 5 && strcmp(argv[1], "--child") == 0)
		return (child_main(argv));
	tap_plan(N_OWNERS + N_NUL + N_DIR + N_CRAFT + N_CLI + N_QUOTA + 1);
	if (fx_tmpdir(dir, sizeof(dir)) != 0)
		return (1);
	/* Other users reach the socket in dir (mode 0666) through it. */
	chmod(dir, 0711);
	snprintf(model, sizeof(model), "%s/model", dir);
	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(snaps, sizeof(snaps), "%s/snapshots", state);
	struct fx_opts o;
	fx_opts_default(&o);
	if (mkdir(model, 0700) != 0 || fx_write_model(model, &o) != 0 ||
	    mkdir(state, 0700) != 0 || mkdir(snaps, 0700) != 0) {
		printf("Bail out! cannot write the fixture\n");
		return (1);
	}
	snprintf(path, sizeof(path), "%s/.old.tmp.77.1", snaps);
	fx_write_file(path, "partial", 7);
	start();
	if (infini_connect(dp.url, 5000, &c) != 0) {
		printf("Bail out! cannot connect\n");
		return (1);
	}
	test_nul(c);
	test_dir(c);
	test_crafted(c);
	test_cli();
	infini_close(c);
	test_owners();
	test_quota();
	dproc_wait(&dp, SIGTERM, 60000);
	return (dproc_tap_done(dir, dp.log));
}
