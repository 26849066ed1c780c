/*
 * bench_snapshot.c - what stream snapshots and spilling cost on one model.
 *
 * Part 1, in process: S streams are filled to mid-segment, then each is
 * snapshotted (eng_stream_export + snap_encode), written durably
 * (snap_write_file: temp file, fsync, rename, fsync dir) and restored
 * (snap_read_file + snap_decode + eng_stream_import); medians per stream
 * and MB/s of snapshot bytes.
 *
 * Part 2, against infinid (started here on a temporary state_dir): N idle
 * streams under a resident budget R, each pushed one token round robin so
 * every push pages a stream in (and spills another); the median push
 * latency beside a push to a resident stream, and the daemon's RSS.
 *
 * usage: bench-snapshot --model DIR [--streams S] [--idle N] [--resident R]
 *                       [--device SEL]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "engine/engine.h"
#include "engine/model.h"
#include "infini.h"
#include "infini_err.h"
#include "snapshot.h"

static void
row(const char *what, double *sec, int n, size_t bytes)
{
	double m = bench_median(sec, n);
	printf("| %-34s | %6d | %10.3f | %9.1f |\n", what, n, m * 1e3,
	    bytes && m > 0 ? bytes / m / 1e6 : 0.0);
}

/* ---- part 1: in process ---- */

static int
part1(const char *model, const char *device, int S, const char *dir)
{
	struct eng_model *m = NULL;
	struct eng *e = NULL;
	char err[512];
	int *slot = calloc((size_t)S, sizeof(int)), rv;
	double *t_exp = calloc((size_t)S, sizeof(double));
	double *t_wr = calloc((size_t)S, sizeof(double));
	double *t_rd = calloc((size_t)S, sizeof(double));
	double *t_im = calloc((size_t)S, sizeof(double));
	size_t bytes = 0;

	if ((rv = eng_model_load(model, &m, err, sizeof(err))) != 0) {
		fprintf(stderr, "model: %s\n", err);
		return (rv);
	}
	struct eng_opts o = { .device = device, .max_streams = S + 1 };
	if ((rv = eng_open(m, &o, &e, err, sizeof(err))) != 0) {
		fprintf(stderr, "engine: %s\n", err);
		eng_model_free(m);
		return (rv);
	}
	const struct eng_config *c = eng_config(e);
	int n = c->segment_size + c->segment_size / 2;   /* mid-segment */
	int32_t *tok = calloc((size_t)n, sizeof(int32_t));
	for (int i = 0; i < n; i++)
		tok[i] = (i * 7 + 3) % c->vocab_size;
	printf("model %s on %s: %llu bytes of device state per stream, "
	    "streams at position %d\n\n", model, eng_device_name(e),
	    (unsigned long long)eng_state_bytes(e), n);
	for (int s = 0; s < S; s++) {
		struct eng_job j = { .n = n, .tokens = tok, .out = ENG_OUT_NONE };
		if ((rv = eng_stream_alloc(e, &slot[s])) != 0)
			goto out;
		j.slot = slot[s];
		if ((rv = eng_run(e, &j, 1, err, sizeof(err))) != 0) {
			fprintf(stderr, "run: %s\n", err);
			goto out;
		}
	}
	for (int s = 0; s < S; s++) {
		struct eng_stream_state st;
		struct snap_meta meta;
		uint8_t *buf = NULL;
		size_t len = 0;
		char name[32];
		double t0 = bench_now();
		rv = eng_stream_export(e, slot[s], &st);
		if (rv == 0 && (rv = snap_meta_init(&meta, m, "bench")) == 0)
			rv = snap_encode(&meta, &st, &buf, &len);
		eng_stream_state_fini(&st);
		double t1 = bench_now();
		snprintf(name, sizeof(name), "b%d.snap", s);
		if (rv == 0)
			rv = snap_write_file(dir, name, buf, len, err, sizeof(err));
		double t2 = bench_now();
		free(buf);
		buf = NULL;
		if (rv == 0)
			rv = snap_read_file(dir, name, &buf, &len, err, sizeof(err));
		if (rv == 0)
			rv = snap_decode(buf, len, m->fingerprint, &meta, &st, err,
			    sizeof(err));
		double t3 = bench_now();
		free(buf);
		if (rv == 0) {
			eng_stream_free(e, slot[s]);
			if ((rv = eng_stream_alloc(e, &slot[s])) == 0)
				rv = eng_stream_import(e, slot[s], &st);
			eng_stream_state_fini(&st);
		}
		double t4 = bench_now();
		if (rv != 0) {
			fprintf(stderr, "stream %d: %s (%s)\n", s,
			    infini_strerror(rv), err);
			goto out;
		}
		t_exp[s] = t1 - t0;
		t_wr[s] = t2 - t1;
		t_rd[s] = t3 - t2;
		t_im[s] = t4 - t3;
		bytes = len;
		char path[512];
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		unlink(path);
	}
	printf("snapshot of %zu bytes per stream:\n\n", bytes);
	printf("| %-34s | %6s | %10s | %9s |\n", "step (median per stream)",
	    "n", "ms", "MB/s");
	printf("|%s|%s|%s|%s|\n", "------------------------------------",
	    "--------", "------------", "-----------");
	row("export + encode", t_exp, S, bytes);
	row("write file (fsync, rename)", t_wr, S, bytes);
	row("read file + decode", t_rd, S, bytes);
	row("import into a slot", t_im, S, bytes);
	for (int s = 0; s < S; s++)
		t_exp[s] += t_wr[s];
	row("snapshot total (export..write)", t_exp, S, bytes);
	for (int s = 0; s < S; s++)
		t_rd[s] += t_im[s];
	row("restore total (read..import)", t_rd, S, bytes);
out:
	eng_close(e);
	eng_model_free(m);
	free(tok);
	free(slot);
	free(t_exp);
	free(t_wr);
	free(t_rd);
	free(t_im);
	return (rv);
}

/* ---- part 2: a daemon holding many idle streams ---- */

static long
rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return (-1);
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld", &kib) == 1)
			break;
	fclose(f);
	return (kib);
}

static int
part2(const char *model, const char *device, int N, int R, const char *dir)
{
	char url[300], res[16], maxs[16], state[300];
	infini_client *c = NULL;
	pid_t pid;
	int rv = -1, st;
	double *t = calloc((size_t)N, sizeof(double)), *tr = NULL;

	snprintf(url, sizeof(url), "ipc://%s/b.sock", dir);
	snprintf(state, sizeof(state), "%s/state", dir);
	mkdir(state, 0700);
	snprintf(res, sizeof(res), "%d", R);
	snprintf(maxs, sizeof(maxs), "%d", N + 16);
	if ((pid = fork()) == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int fd = open("/dev/null", O_WRONLY);
		dup2(fd, 1);
		dup2(fd, 2);
		execl(INFINID_PATH, "infinid", "--model", model, "--listen", url,
		    "--state-dir", state, "--max-resident-streams", res,
		    "--max-streams", maxs, "--log-level", "warning",
		    "--device", device ? device : "", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 600 && infini_connect(url, 1000, &c) != 0; i++)
		usleep(100000);
	if (c == NULL) {
		fprintf(stderr, "the daemon did not start\n");
		goto out;
	}
	long rss0 = rss_kib(pid);
	char id[32];
	int32_t tok = 65;
	for (int i = 0; i < N; i++) {
		snprintf(id, sizeof(id), "idle%d", i);
		if (infini_open(c, id, false, NULL, NULL) != 0 ||
		    infini_push_tokens(c, id, &tok, 1, INFINI_OUT_NONE, NULL) != 0) {
			fprintf(stderr, "%s: %s\n", id, infini_errmsg());
			goto out;
		}
	}
	long rss1 = rss_kib(pid);
	/* Round robin again: every push finds its stream spilled. */
	for (int i = 0; i < N; i++) {
		snprintf(id, sizeof(id), "idle%d", i);
		double t0 = bench_now();
		if (infini_push_tokens(c, id, &tok, 1, INFINI_OUT_NONE, NULL) != 0)
			goto out;
		t[i] = bench_now() - t0;
	}
	int nr = 200;
	tr = calloc((size_t)nr, sizeof(double));
	for (int i = 0; i < nr; i++) {
		double t0 = bench_now();
		if (infini_push_tokens(c, "idle0", &tok, 1, INFINI_OUT_NONE,
		    NULL) != 0)
			goto out;
		tr[i] = bench_now() - t0;
	}
	long rss2 = rss_kib(pid);
	printf("\ninfinid with %d streams, %d resident (state_dir %s):\n\n",
	    N, R, state);
	printf("| %-34s | %6s | %10s |\n", "measure", "n", "value");
	printf("|%s|%s|%s|\n", "------------------------------------",
	    "--------", "------------");
	printf("| %-34s | %6d | %7.3f ms |\n", "1-token push, resident stream",
	    nr, bench_median(tr, nr) * 1e3);
	printf("| %-34s | %6d | %7.3f ms |\n", "1-token push with page-in+spill",
	    N, bench_median(t, N) * 1e3);
	printf("| %-34s | %6s | %7.1f MiB |\n", "daemon RSS, no streams", "",
	    rss0 / 1024.0);
	printf("| %-34s | %6d | %7.1f MiB |\n", "daemon RSS, streams known", N,
	    rss1 / 1024.0);
	printf("| %-34s | %6d | %7.1f MiB |\n", "daemon RSS after page-ins", N,
	    rss2 / 1024.0);
	rv = 0;
out:
	if (c != NULL)
		infini_close(c);
	kill(pid, SIGTERM);
	waitpid(pid, &st, 0);
	free(t);
	free(tr);
	return (rv);
}

int
main(int argc, char **argv)
{
	const char *model = NULL, *device = NULL;
	int S = 32, N = 2000, R = 64, rv;
	char dir[] = "/tmp/bench-snapshot-XXXXXX", cmd[300];

	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--model") == 0)
			model = argv[i + 1];
		else if (strcmp(argv[i], "--streams") == 0)
			S = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--idle") == 0)
			N = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--resident") == 0)
			R = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--device") == 0)
			device = argv[i + 1];
	}
	if (model == NULL || S < 1 || N < 1 || R < 1) {
		fprintf(stderr, "usage: bench-snapshot --model DIR [--streams S] "
		    "[--idle N] [--resident R] [--device SEL]\n");
		return (2);
	}
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return (1);
	}
	rv = part1(model, device, S, dir);
	if (rv == 0)
		rv = part2(model, device, N, R, dir);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	(void)!system(cmd);
	return (rv ? 1 : 0);
}
