/*
 * t_spill.c - streams that outlive their device slot and the daemon.
 *
 * infinid runs as a child process (as in t_daemon.c) with a resident budget
 * far below the number of streams.  Checks: the OWNER section round trip;
 * 1,000 streams pushed round robin under a budget of 50 (nearly every push
 * pages a stream in) end bit for bit where the same tokens pushed without
 * interleaving end; SIGTERM writes every stream and a new daemon on the
 * same state_dir continues them exactly, owners kept; after SIGKILL a
 * stream comes back at its last autosnapshot; with the disk full nothing is
 * evicted and the request that needed room gets RESOURCE_EXHAUSTED.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon_proc.h"
#include "fixture.h"
#include "infini.h"
#include "snapshot.h"
#include "tap.h"

#define NSTREAMS 1000
#define BUDGET "50"
#define H 64                        /* the fixture's hidden size */

static char dir[256], model[512], state[300];
static struct dproc dp;

/* start_daemon runs infinid on state_dir sd with extra flags (NULL-ended)
 * and waits until it answers. */
static int
start_daemon(const char *sd, const char *const *extra)
{
	return (dproc_start(&dp, dir, model, sd, extra, NULL));
}

/* stop_daemon sends sig and returns the exit status (-1: not a clean exit). */
static int
stop_daemon(int sig)
{
	int st = dproc_wait(&dp, sig, 60000);
	return (st >= 0 && st < 128 ? st : -1);
}

/* toks: chunk k of stream i, distinct across streams and chunks. */
static void
toks(int i, int k, int32_t *t, int n)
{
	for (int j = 0; j < n; j++)
		t[j] = (i * 131 + k * 17 + j * 7 + 1) % 256;
}

static const int chunk_len[] = { 5, 6, 5, 7 };

/* push_chunk pushes chunk k of seed i to id; with last, copies LAST out. */
static int
push_chunk(infini_client *c, const char *id, int i, int k, float *last)
{
	int32_t t[16];
	struct infini_result r = { 0 };
	int rv;

	toks(i, k, t, chunk_len[k]);
	rv = infini_push_tokens(c, id, t, chunk_len[k],
	    last ? INFINI_OUT_LAST : INFINI_OUT_NONE, &r);
	if (rv == 0 && last != NULL) {
		if (r.cols == H)
			memcpy(last, r.data, H * sizeof(float));
		else
			rv = INFINI_EPROTO;
	}
	infini_result_free(&r);
	if (rv != 0 && rv != INFINI_EFULL)
		tap_diag("push %s chunk %d: %s", id, k, infini_errmsg());
	return (rv);
}

/* serial pushes chunks [0, k] of seed i to a new stream id in one go and
 * returns the last chunk's LAST. */
static int
serial(infini_client *c, const char *id, int i, int k, float *last)
{
	int rv = infini_open(c, id, false, NULL, NULL);
	for (int j = 0; j <= k && rv == 0; j++)
		rv = push_chunk(c, id, i, j, j == k ? last : NULL);
	return (rv);
}

static int
count_files(const char *d)
{
	DIR *dp = opendir(d);
	struct dirent *e;
	int n = 0;

	if (dp == NULL)
		return (-1);
	while ((e = readdir(dp)) != NULL)
		n += strstr(e->d_name, ".snap") != NULL;
	closedir(dp);
	return (n);
}

/* find looks id up in a listing; NULL if absent. */
static const struct infini_stream_info *
find(const struct infini_stream_info *ls, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(ls[i].id, id) == 0)
			return (&ls[i]);
	return (NULL);
}

/* ---- the OWNER section ---- */

static void
test_owner_section(void)
{
	struct eng_stream_state st, st2;
	struct snap_meta m, m2;
	struct eng_model md;
	uint8_t *buf = NULL;
	size_t len = 0;
	char err[256] = "";
	int rv;

	memset(&md, 0, sizeof(md));
	md.cfg.n_layers = 2;
	md.cfg.n_kv_heads = 2;
	md.cfg.head_dim = 16;
	md.cfg.segment_size = 8;
	md.cfg.hidden_size = 64;
	md.cfg.vocab_size = 300;
	md.fingerprint = 77;
	rv = eng_stream_state_init(&st, 2, 2, 16, 8, false, 13);
	if (rv == 0)
		rv = snap_meta_init(&m, &md, "owned");
	m.has_owner = true;
	m.owner = 4242;
	if (rv == 0)
		rv = snap_encode(&m, &st, &buf, &len);
	if (rv == 0)
		rv = snap_decode(buf, len, 77, &m2, &st2, err, sizeof(err));
	ok(rv == 0 && m2.has_owner && m2.owner == 4242 && st2.pos == 13,
	    "the OWNER section round-trips (%s)", err);
	if (rv == 0) {
		eng_stream_state_fini(&st2);
	}
	free(buf);
	m.has_owner = false;
	rv = snap_encode(&m, &st, &buf, &len);
	if (rv == 0)
		rv = snap_decode(buf, len, 77, &m2, &st2, err, sizeof(err));
	ok(rv == 0 && !m2.has_owner, "a snapshot without one decodes with no "
	    "owner");
	if (rv == 0) {
		eng_stream_state_fini(&st2);
	}
	free(buf);
	eng_stream_state_fini(&st);
}

/* ---- 1,000 streams under a budget of 50 ---- */

static void
test_round_robin(infini_client *c)
{
	static float got[NSTREAMS][H], want[H];
	char id[32], sd[400];
	int rv = 0, bad = 0, wrong_pos = 0;
	size_t n = 0;
	struct infini_stream_info *ls = NULL;

	for (int i = 0; i < NSTREAMS && rv == 0; i++) {
		snprintf(id, sizeof(id), "s%d", i);
		rv = infini_open(c, id, false, NULL, NULL);
	}
	/* Round robin: each push finds its stream spilled. */
	for (int k = 0; k < 3 && rv == 0; k++)
		for (int i = 0; i < NSTREAMS && rv == 0; i++) {
			snprintf(id, sizeof(id), "s%d", i);
			rv = push_chunk(c, id, i, k, k == 2 ? got[i] : NULL);
		}
	ok(rv == 0, "%d streams pushed 3 chunks round robin under a resident "
	    "budget of %s", NSTREAMS, BUDGET);
	/* Rounds 2 and 3 find all but at most the budget's streams spilled;
	 * every load beyond the budget's slots evicted one. */
	struct infini_stats st = { 0 };
	long budget = atol(BUDGET), lo = 2L * (NSTREAMS - budget);
	int nres = 0;
	rv = rv ? rv : infini_stats(c, &st);
	rv = rv ? rv : infini_list(c, &ls, &n);
	for (size_t i = 0; i < n; i++)
		nres += ls[i].resident;
	free(ls);
	ls = NULL;
	ok(rv == 0 && (long)st.page_ins >= lo &&
	    (long)st.evictions >= (long)st.page_ins - budget &&
	    st.spill_errors == 0 && st.resident_streams == (uint32_t)nres &&
	    nres > 0 && nres <= budget, "Stats: %llu page-ins (>= %ld), %llu "
	    "evictions, %llu spill errors; %u resident, as ListStreams shows "
	    "(%d)", (unsigned long long)st.page_ins, lo,
	    (unsigned long long)st.evictions,
	    (unsigned long long)st.spill_errors, st.resident_streams, nres);
	snprintf(sd, sizeof(sd), "%s/streams", state);
	int files = count_files(sd);
	ok(files >= NSTREAMS - 50, "%d of them were spilled to %s", files, sd);
	/* The same tokens without interleaving: the stream stays resident. */
	for (int i = 0; i < NSTREAMS && rv == 0; i++) {
		snprintf(id, sizeof(id), "r%d", i);
		rv = serial(c, id, i, 2, want);
		bad += rv == 0 && memcmp(want, got[i], sizeof(want)) != 0;
		rv |= infini_close_stream(c, id);
	}
	ok(rv == 0 && bad == 0, "every LAST output equals the uninterrupted "
	    "stream's exactly (%d differ)", bad);
	rv = infini_list(c, &ls, &n);
	for (int i = 0; i < NSTREAMS && rv == 0; i++) {
		snprintf(id, sizeof(id), "s%d", i);
		const struct infini_stream_info *s = find(ls, n, id);
		wrong_pos += s == NULL || s->position != 16;
	}
	ok(rv == 0 && n == NSTREAMS && wrong_pos == 0, "ListStreams shows all "
	    "%zu streams at position 16 (%d wrong)", n, wrong_pos);
	free(ls);
}

/* ---- restart ---- */

#define NRESTART 10

static void
test_restart(infini_client **cp)
{
	static const char *const extra[] = { "--max-resident-streams", BUDGET,
	    "--autosnapshot-interval-s", "1", NULL };
	float a[H], b[H];
	char id[32], ref[32];
	int rv = 0, bad = 0, lost = 0, st;
	struct infini_stream_info *ls = NULL;
	size_t n = 0;

	for (int i = 0; i < NRESTART && rv == 0; i++) {
		snprintf(id, sizeof(id), "a%d", i);
		rv = serial(*cp, id, i + 5000, 1, NULL);
	}
	infini_close(*cp);
	*cp = NULL;
	st = stop_daemon(SIGTERM);
	ok(rv == 0 && st == 0, "SIGTERM with %d streams holding unsaved work: clean exit",
	    NRESTART);
	if (start_daemon(state, extra) != 0 ||
	    infini_connect(dp.url, 5000, cp) != 0) {
		printf("Bail out! the daemon did not restart\n");
		exit(1);
	}
	rv = infini_list(*cp, &ls, &n);
	for (int i = 0; i < NRESTART && rv == 0; i++) {
		snprintf(id, sizeof(id), "a%d", i);
		const struct infini_stream_info *s = find(ls, n, id);
		lost += s == NULL || s->position != 11 ||
		    s->owner_uid != geteuid();
	}
	for (int i = 0; i < NSTREAMS && rv == 0; i++) {
		snprintf(id, sizeof(id), "s%d", i);
		const struct infini_stream_info *s = find(ls, n, id);
		lost += s == NULL || s->position != 16;
	}
	ok(rv == 0 && lost == 0, "the new daemon knows all %zu streams with "
	    "their positions and owners (%d wrong)", n, lost);
	free(ls);
	for (int i = 0; i < NRESTART && rv == 0; i++) {
		snprintf(id, sizeof(id), "a%d", i);
		snprintf(ref, sizeof(ref), "b%d", i);
		rv = push_chunk(*cp, id, i + 5000, 2, a);
		if (rv == 0)
			rv = serial(*cp, ref, i + 5000, 2, b);
		bad += rv == 0 && memcmp(a, b, sizeof(a)) != 0;
	}
	ok(rv == 0 && bad == 0, "streams continued after the restart equal "
	    "never-restarted ones exactly (%d differ)", bad);
	/* And one spilled by the first daemon, continued by this one. */
	rv = push_chunk(*cp, "s7", 7, 3, a);
	rv |= serial(*cp, "r7", 7, 3, b);
	ok(rv == 0 && memcmp(a, b, sizeof(a)) == 0, "a stream spilled before "
	    "the restart continues exactly too");
	char path[512];
	snprintf(path, sizeof(path), "%s/streams/a0.snap", state);
	rv = access(path, F_OK);
	rv = rv == 0 ? infini_close_stream(*cp, "a0") : -1;
	ok(rv == 0 && access(path, F_OK) != 0 && errno == ENOENT,
	    "CloseStream deletes the stream's file");
}

/* ---- crash ---- */

static void
test_crash(infini_client **cp)
{
	static const char *const extra[] = { "--max-resident-streams", BUDGET,
	    NULL };
	float a[H], b[H];
	int rv;
	struct infini_stream_info *ls = NULL;
	size_t n = 0;

	/* This daemon autosnapshots after 1 s of unsaved work. */
	rv = serial(*cp, "crash", 9000, 1, NULL);     /* 11 tokens */
	usleep(2500000);
	rv |= push_chunk(*cp, "crash", 9000, 2, NULL); /* 16, not saved */
	stop_daemon(SIGKILL);
	infini_close(*cp);
	*cp = NULL;
	if (start_daemon(state, extra) != 0 ||
	    infini_connect(dp.url, 5000, cp) != 0) {
		printf("Bail out! the daemon did not restart\n");
		exit(1);
	}
	rv |= infini_list(*cp, &ls, &n);
	const struct infini_stream_info *s = rv == 0 ? find(ls, n, "crash") :
	    NULL;
	ok(s != NULL && s->position == 11, "after SIGKILL the stream is back "
	    "at its last autosnapshot (position %lld, want 11)",
	    s ? (long long)s->position : -1LL);
	free(ls);
	rv = push_chunk(*cp, "crash", 9000, 2, a);
	rv |= serial(*cp, "crash-ref", 9000, 2, b);
	ok(rv == 0 && memcmp(a, b, sizeof(a)) == 0, "pushing the lost chunk "
	    "again gives the uninterrupted stream's output exactly");
}

/* ---- disk full ---- */

static void
test_disk_full(infini_client **cp)
{
	static const char *const extra[] = { "--max-resident-streams", "2",
	    NULL };
	char mnt[300], id[32], msg[512] = "";
	int rv = 0, full = 0, wrong = 0;
	int64_t pos[40];
	struct infini_stream_info *ls = NULL;
	size_t n = 0;

	snprintf(mnt, sizeof(mnt), "%s/full", dir);
	mkdir(mnt, 0700);
	infini_close(*cp);
	*cp = NULL;
	stop_daemon(SIGKILL);
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=64k,mode=0700") != 0) {
		tap_skip(2, "cannot mount a tmpfs (needs root)");
		return;
	}
	if (start_daemon(mnt, extra) != 0 ||
	    infini_connect(dp.url, 5000, cp) != 0) {
		printf("Bail out! the daemon did not start on the tmpfs\n");
		exit(1);
	}
	/* Each file is about 8 KiB: the tmpfs fills after a few. */
	for (int i = 0; i < 40; i++) {
		snprintf(id, sizeof(id), "f%d", i);
		pos[i] = 0;
		if (infini_open(*cp, id, false, NULL, NULL) != 0) {
			rv = -1;
			break;
		}
		int r = push_chunk(*cp, id, i, 3, NULL);
		if (r == 0)
			pos[i] = 7;
		else if (r == INFINI_EFULL) {
			if (!full++)
				snprintf(msg, sizeof(msg), "%s", infini_errmsg());
		} else
			rv = r;
	}
	ok(rv == 0 && full > 0 && strstr(msg, "could not be saved") != NULL,
	    "disk full: %d pushes answered RESOURCE_EXHAUSTED (%s)", full, msg);
	rv = infini_list(*cp, &ls, &n);
	for (int i = 0; i < 40 && rv == 0; i++) {
		snprintf(id, sizeof(id), "f%d", i);
		const struct infini_stream_info *s = find(ls, n, id);
		wrong += s == NULL || (int64_t)s->position != pos[i];
	}
	struct infini_health h;
	ok(rv == 0 && wrong == 0 && infini_health(*cp, &h) == 0,
	    "nothing was lost: every stream is where its last good push left "
	    "it (%d wrong), and the daemon answers", wrong);
	free(ls);
	infini_close(*cp);
	*cp = NULL;
	stop_daemon(SIGKILL);
	umount2(mnt, MNT_DETACH);
}

/* ---- state_memory_mb: the resident budget in bytes ---- */

static void
test_memory_budget(infini_client **cp, const struct fx_opts *o)
{
	static const char *const extra[] = { "--max-resident-streams", "1000",
	    "--state-memory-mb", "1", NULL };
	const struct eng_config *c = &o->cfg;
	char sd[300];
	struct infini_stats st = { 0 };

	/* Per stream, from the model's shape: per layer and kv head a
	 * segment of K, V and unrotated K (RoPE, memory without it), M and
	 * z; and the last hidden state. */
	long per = (long)c->n_layers * c->n_kv_heads *
	    (3L * c->segment_size * c->head_dim +
	    (long)c->head_dim * c->head_dim + c->head_dim) * 4 +
	    (long)c->hidden_size * 4;
	long want = (1L << 20) / per;

	/* test_disk_full stopped the daemon. */
	snprintf(sd, sizeof(sd), "%s/budget", dir);
	mkdir(sd, 0700);
	int rv = start_daemon(sd, extra);
	if (rv == 0)
		rv = infini_connect(dp.url, 5000, cp);
	if (rv == 0)
		rv = infini_stats(*cp, &st);
	ok(rv == 0 && c->rope && !c->memory_rope &&
	    (long)st.max_resident_streams == want &&
	    (long)st.state_bytes_per_stream == per,
	    "state_memory_mb 1: %u resident streams of %llu bytes (want %ld "
	    "of %ld)", st.max_resident_streams,
	    (unsigned long long)st.state_bytes_per_stream, want, per);
	infini_close(*cp);
	*cp = NULL;
	stop_daemon(SIGKILL);
}

int
main(void)
{
	static const char *const extra[] = { "--max-resident-streams", BUDGET,
	    NULL };
	struct fx_opts o;
	infini_client *c = NULL;

	tap_plan(18);
	signal(SIGPIPE, SIG_IGN);
	setenv("INFINI_VALIDATION", "1", 0);
	if (fx_tmpdir(dir, sizeof(dir)) != 0)
		return (1);
	snprintf(model, sizeof(model), "%s/model", dir);
	snprintf(state, sizeof(state), "%s/state", dir);
	mkdir(state, 0700);
	fx_opts_default(&o);
	test_owner_section();
	if (fx_write_model(model, &o) != 0 || start_daemon(state, extra) != 0 ||
	    infini_connect(dp.url, 5000, &c) != 0) {
		printf("Bail out! daemon did not start\n");
		return (1);
	}
	test_round_robin(c);
	test_restart(&c);
	test_crash(&c);
	test_disk_full(&c);
	test_memory_budget(&c, &o);
	return (dproc_tap_done(dir, dp.log));
}
