/*
 * bench_flood.c - service under a flood: N connections each send P pushes
 * of T tokens and close at once, while a well-behaved client measures the
 * round trip of Health and of a 1-token Push before, during and after.
 *
 *   bench-flood [--socket URL] [--conns N] [--pushes P] [--tokens T]
 *               [--flooder-uid UID] [--waves-s S | --hog-s S] [--runs R]
 *
 * The flood comes from a child process (this program run again with
 * --flood-child): as UID when --flooder-uid is given (needs root), so that
 * one user floods while another measures.  One wave by default; with
 * --waves-s the child sends waves back to back for S seconds (a sustained
 * flood).  With --hog-s the child instead keeps N clients connected for S
 * seconds, each pushing T tokens again as soon as its last push is answered
 * (a user saturating the device without vanishing).  Each run measures 2 s idle, the flood and 1 s after it, then 2 s
 * more ("after"); the table gives the median over the runs of each p50 and
 * p99 (bench/run_flood.sh starts a daemon and runs the scenarios).
 */
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "bench.h"
#include "infini.h"
#include "wire.h"

#define IDLE_S 2.0
#define AFTER_S 2.0
#define GRACE_S 1.0     /* "during" runs until this long after the flood */
#define MAXS 100000
#define MAXRUNS 15

/* ------------------------------------------------------ the flooder */

/* one_wave: conns connections, each with pushes contexts sending a push of
 * ntok tokens to stream fl-<i>, all closed as soon as the sends are out. */
static void
one_wave(const char *url, int conns, int pushes, int ntok)
{
	Infini__V1__PushRequest q = INFINI__V1__PUSH_REQUEST__INIT;
	Infini__V1__Tokens t = INFINI__V1__TOKENS__INIT;
	nng_socket *s = calloc((size_t)conns, sizeof(*s));
	nng_aio **aio = calloc((size_t)conns * pushes, sizeof(*aio));
	nng_ctx *ctx = calloc((size_t)conns * pushes, sizeof(*ctx));
	int32_t *ids = calloc((size_t)ntok, sizeof(*ids));
	char id[32];
	bool *up = calloc((size_t)conns, sizeof(*up));

	if (s == NULL || aio == NULL || ctx == NULL || ids == NULL || up == NULL)
		exit(1);
	for (int i = 0; i < ntok; i++)
		ids[i] = (i * 7) % 256;
	t.ids = ids;
	t.n_ids = (size_t)ntok;
	q.input_case = INFINI__V1__PUSH_REQUEST__INPUT_TOKENS;
	q.tokens = &t;
	for (int i = 0; i < conns; i++) {
		if (nng_req0_open(&s[i]) != 0 || nng_dial(s[i], url, NULL, 0)
		    != 0)
			continue;
		up[i] = true;
		snprintf(id, sizeof(id), "fl-%d", i);
		q.stream_id = id;
		for (int k = 0; k < pushes; k++) {
			size_t len;
			uint8_t *b = wire_pack_request(INFINI__V1__METHOD__PUSH,
			    (uint64_t)k + 1, &q.base, &len);
			nng_msg *m;
			int j = i * pushes + k;
			if (b == NULL || nng_msg_alloc(&m, 0) != 0 ||
			    nng_msg_append(m, b, len) != 0 ||
			    nng_aio_alloc(&aio[j], NULL, NULL) != 0 ||
			    nng_ctx_open(&ctx[j], s[i]) != 0) {
				free(b);
				continue;
			}
			free(b);
			nng_aio_set_msg(aio[j], m);
			nng_ctx_send(ctx[j], aio[j]);
		}
	}
	for (int j = 0; j < conns * pushes; j++)
		if (aio[j] != NULL) {
			nng_aio_wait(aio[j]);
			if (nng_aio_result(aio[j]) != 0)
				nng_msg_free(nng_aio_get_msg(aio[j]));
		}
	for (int i = 0; i < conns; i++)
		if (up[i])
			nng_close(s[i]);
	for (int j = 0; j < conns * pushes; j++)
		nng_aio_free(aio[j]);
	free(s);
	free(aio);
	free(ctx);
	free(ids);
	free(up);
}

struct hog {
	const char *url;
	int i, ntok;
	double end;
};

static void *
hog_thread(void *arg)
{
	struct hog *h = arg;
	infini_client *c;
	int32_t *t = calloc((size_t)h->ntok, sizeof(*t));
	char id[32];

	if (t == NULL || infini_connect(h->url, 10000, &c) != 0) {
		free(t);
		return (NULL);
	}
	for (int k = 0; k < h->ntok; k++)
		t[k] = (k * 7 + h->i) % 256;
	snprintf(id, sizeof(id), "fl-%d", h->i);
	while (bench_now() < h->end)
		if (infini_push_tokens(c, id, t, (size_t)h->ntok,
		    INFINI_OUT_NONE, NULL) != 0)
			usleep(10000);   /* refused: over this user's share */
	infini_close(c);
	free(t);
	return (NULL);
}

static void
hog(const char *url, int conns, int ntok, double secs)
{
	pthread_t *th = calloc((size_t)conns, sizeof(*th));
	struct hog *h = calloc((size_t)conns, sizeof(*h));
	double end = bench_now() + secs;

	if (th == NULL || h == NULL)
		exit(1);
	for (int i = 0; i < conns; i++) {
		h[i] = (struct hog){ url, i, ntok, end };
		pthread_create(&th[i], NULL, hog_thread, &h[i]);
	}
	for (int i = 0; i < conns; i++)
		pthread_join(th[i], NULL);
	free(th);
	free(h);
}

static int
flood_child(const char *url, int conns, int pushes, int ntok, double waves_s)
{
	infini_client *c;
	char id[32];

	/* The streams first, so the flood is all pushes. */
	if (infini_connect(url, 10000, &c) != 0) {
		fprintf(stderr, "bench-flood: flooder: %s\n", infini_errmsg());
		return (1);
	}
	for (int i = 0; i < conns; i++) {
		snprintf(id, sizeof(id), "fl-%d", i);
		infini_open(c, id, true, NULL, NULL);
	}
	infini_close(c);
	printf("ready\n");
	fflush(stdout);
	/* Wait for the go (a byte on stdin). */
	char go;
	if (read(0, &go, 1) != 1)
		return (1);
	if (waves_s < 0) {
		hog(url, conns, ntok, -waves_s);
		return (0);
	}
	double end = bench_now() + waves_s;
	do
		one_wave(url, conns, pushes, ntok);
	while (bench_now() < end);
	return (0);
}

/* ------------------------------------------------------ the measurer */

struct sample {
	double at;            /* seconds since the flood started */
	double health_ms, push_ms;
	bool err;
};

static struct sample smp[MAXS];
static int nsmp;

/* measure samples Health then a 1-token Push until the clock passes end
 * (or stop says so), with 5 ms between pairs. */
static void
measure(infini_client *c, double t0, double end, volatile sig_atomic_t *stop)
{
	int32_t tok = 65;
	struct infini_health h;

	while (bench_now() < end && nsmp < MAXS && (stop == NULL || !*stop)) {
		struct sample *s = &smp[nsmp++];
		double a = bench_now();
		s->at = a - t0;
		s->err = infini_health(c, &h) != 0;
		double b = bench_now();
		s->err |= infini_push_tokens(c, "probe", &tok, 1,
		    INFINI_OUT_NONE, NULL) != 0;
		double e = bench_now();
		s->health_ms = (b - a) * 1e3;
		s->push_ms = (e - b) * 1e3;
		usleep(5000);
	}
}

struct phase {
	double p50h, p99h, p50p, p99p;
	int n, errors;
};

static double
pct(double *v, int n, double p)
{
	if (n == 0)
		return (0);
	bench_sort(v, (size_t)n);
	return (v[(int)(p * (n - 1) + 0.5)]);
}

/* summarise the samples with from <= at < to. */
static struct phase
summarise(double from, double to)
{
	static double h[MAXS], p[MAXS];
	struct phase r = { 0 };

	for (int i = 0; i < nsmp; i++)
		if (smp[i].at >= from && smp[i].at < to) {
			h[r.n] = smp[i].health_ms;
			p[r.n] = smp[i].push_ms;
			r.errors += smp[i].err;
			r.n++;
		}
	r.p50h = pct(h, r.n, 0.5);
	r.p99h = pct(h, r.n, 0.99);
	r.p50p = pct(p, r.n, 0.5);
	r.p99p = pct(p, r.n, 0.99);
	return (r);
}

static pid_t
spawn_flooder(const char *self, const char *url, int uid, int conns,
    int pushes, int ntok, double waves_s, int *to, FILE **from)
{
	int in[2], out[2];
	char a[4][32];
	pid_t pid;

	if (pipe(in) != 0 || pipe(out) != 0)
		return (-1);
	snprintf(a[0], sizeof(a[0]), "%d", conns);
	snprintf(a[1], sizeof(a[1]), "%d", pushes);
	snprintf(a[2], sizeof(a[2]), "%d", ntok);
	snprintf(a[3], sizeof(a[3]), "%g", waves_s);
	if ((pid = fork()) == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[1]);
		close(out[0]);
		if (uid >= 0 && (setgroups(0, NULL) != 0 ||
		    setresgid((gid_t)uid, (gid_t)uid, (gid_t)uid) != 0 ||
		    setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) != 0))
			_exit(100);
		execl(self, self, "--flood-child", url, a[0], a[1], a[2], a[3],
		    (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	*to = in[1];
	*from = fdopen(out[0], "r");
	return (pid);
}

static volatile sig_atomic_t child_done;

static void
on_chld(int sig)
{
	(void)sig;
	child_done = 1;
}

static int
cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return ((x > y) - (x < y));
}

static double
median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_d);
	return (n ? v[n / 2] : 0);
}

int
main(int argc, char **argv)
{
	const char *url = NULL;
	int conns = 631, pushes = 4, ntok = 1000, uid = -1, runs = 3;
	double waves_s = 0;
	char self[4096];
	ssize_t sl;

	signal(SIGPIPE, SIG_IGN);
	if (argc == 7 && strcmp(argv[1], "--flood-child") == 0)
		return (flood_child(argv[2], atoi(argv[3]), atoi(argv[4]),
		    atoi(argv[5]), atof(argv[6])));
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc)
			url = argv[++i];
		else if (strcmp(argv[i], "--conns") == 0 && i + 1 < argc)
			conns = atoi(argv[++i]);
		else if (strcmp(argv[i], "--pushes") == 0 && i + 1 < argc)
			pushes = atoi(argv[++i]);
		else if (strcmp(argv[i], "--tokens") == 0 && i + 1 < argc)
			ntok = atoi(argv[++i]);
		else if (strcmp(argv[i], "--flooder-uid") == 0 && i + 1 < argc)
			uid = atoi(argv[++i]);
		else if (strcmp(argv[i], "--waves-s") == 0 && i + 1 < argc)
			waves_s = atof(argv[++i]);
		else if (strcmp(argv[i], "--hog-s") == 0 && i + 1 < argc)
			waves_s = -atof(argv[++i]);   /* the child's sign */
		else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
			runs = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: bench-flood [--socket URL] "
			    "[--conns N] [--pushes P] [--tokens T] "
			    "[--flooder-uid UID] [--waves-s S | --hog-s S] "
			    "[--runs R]\n");
			return (2);
		}
	}
	if (runs < 1 || runs > MAXRUNS || conns < 1 || pushes < 1 || ntok < 1)
		return (2);
	if ((sl = readlink("/proc/self/exe", self, sizeof(self) - 1)) < 0)
		return (1);
	self[sl] = '\0';

	infini_client *c;
	if (infini_connect(url, 10000, &c) != 0 ||
	    infini_open(c, "probe", true, NULL, NULL) != 0) {
		fprintf(stderr, "bench-flood: %s\n", infini_errmsg());
		return (1);
	}
	/* A call that waits this long counts as an error (and is one). */
	infini_set_timeout(c, 5000);
	signal(SIGCHLD, on_chld);

	double v[4][8][MAXRUNS];      /* phase, column, run */
	int errs[4] = { 0 }, ns[4] = { 0 };
	double flood_s[MAXRUNS];
	for (int r = 0; r < runs; r++) {
		int to;
		FILE *from;
		char line[64];
		child_done = 0;
		pid_t pid = spawn_flooder(self, url, uid, conns, pushes, ntok,
		    waves_s, &to, &from);
		if (pid < 0 || from == NULL || fgets(line, sizeof(line), from)
		    == NULL) {
			fprintf(stderr, "bench-flood: the flooder did not start\n");
			return (1);
		}
		nsmp = 0;
		double t0 = bench_now() + IDLE_S;
		measure(c, t0, t0, NULL);
		if (write(to, "g", 1) != 1)
			return (1);
		t0 = bench_now();
		measure(c, t0, t0 + 600, &child_done);
		int st;
		waitpid(pid, &st, 0);
		double end = bench_now() - t0;
		flood_s[r] = end;
		measure(c, t0, t0 + end + GRACE_S + AFTER_S, NULL);
		close(to);
		fclose(from);
		struct phase ph[4] = {
			summarise(-IDLE_S - 1, 0),
			summarise(0, end + GRACE_S),
			summarise(end, end + GRACE_S),
			summarise(end + GRACE_S, end + GRACE_S + AFTER_S),
		};
		for (int k = 0; k < 4; k++) {
			v[k][0][r] = ph[k].p50h;
			v[k][1][r] = ph[k].p99h;
			v[k][2][r] = ph[k].p50p;
			v[k][3][r] = ph[k].p99p;
			errs[k] += ph[k].errors;
			ns[k] += ph[k].n;
		}
	}
	static const char *names[4] = { "idle", "flood (+1 s)",
		"first second after", "after" };
	if (waves_s < 0)
		printf("%d clients each pushing %d tokens again as soon as "
		    "answered, for %.1f s", conns, ntok, median(flood_s, runs));
	else
		printf("%d connections x %d pushes of %d tokens, %s for %.1f s",
		    conns, pushes, ntok, waves_s > 0 ? "waves back to back" :
		    "one wave", median(flood_s, runs));
	printf(" (median), from %s; median of %d runs\n\n", uid >= 0 ?
	    "another UID" : "the same UID", runs);
	printf("| phase | samples | Health p50 ms | Health p99 ms | Push p50 ms "
	    "| Push p99 ms | errors |\n");
	printf("|---|---|---|---|---|---|---|\n");
	for (int k = 0; k < 4; k++)
		printf("| %s | %d | %.1f | %.1f | %.1f | %.1f | %d |\n",
		    names[k], ns[k], median(v[k][0], runs),
		    median(v[k][1], runs), median(v[k][2], runs),
		    median(v[k][3], runs), errs[k]);
	infini_close(c);
	return (0);
}
