/*
 * bench_load.c - load test of a running infinid: C concurrent clients
 * (default 64), each running R (default 1000) mixed requests on a stream of
 * its own (Push, greedy Generate, Snapshot export, Restore of the last
 * export into a new stream, Fork into a new stream, Close and reopen),
 * chosen by a generator seeded with the client's number.  Then the same
 * scripts again one client at a time (the serial replay; --replay N does
 * only the first N clients, since a serial run is slow).  Checks: no
 * request fails; each client's generated tokens and its final state (the
 * LAST output of a fixed final push) match its serial replay; the daemon's
 * RSS (--pid) comes back near its baseline once every stream is closed.
 * Prints latency per request kind and the checks as tables.
 * bench/run_load.sh starts a daemon on a generated model and runs this.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "infini.h"

enum op { OP_PUSH, OP_GENERATE, OP_SNAPSHOT, OP_RESTORE, OP_FORK, OP_CLOSE,
	OP_N };
static const char *op_name[OP_N] = { "push", "generate", "snapshot (export)",
	"restore", "fork", "close+open" };

static const char *url;
static int nclients = 64, nreq = 1000, nreplay = -1;
static long daemon_pid;
static struct infini_health health;

static long
rss_kb(void)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", daemon_pid);
	if (daemon_pid <= 0 || (f = fopen(path, "r")) == NULL)
		return (-1);
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return (kb);
}

static uint64_t
next(uint64_t *s)
{
	*s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
	return (*s);
}

/* One client's run of its script. */
struct run {
	int client;
	char prefix;            /* 'L' concurrent, 'R' serial replay */
	infini_client *c;
	char cur[INFINI_ID_MAX + 1];
	int nid;
	uint8_t *snap;
	size_t snaplen;
	uint64_t tokhash;       /* FNV-1a over generated tokens */
	long ntok;
	long errors, count[OP_N];
	double *lat[OP_N];      /* us, [nreq] each */
	float *last;            /* final LAST output [hidden] */
	uint32_t nlast;
};

static int
on_token(void *arg, int32_t tok, const char *bytes, size_t len)
{
	struct run *r = arg;
	(void)bytes;
	(void)len;

	if (tok >= 0) {
		r->tokhash = (r->tokhash ^ (uint32_t)tok) * 0x100000001b3ull;
		r->ntok++;
	}
	return (0);
}

static void
fail(struct run *r, const char *what, int rv)
{
	if (r->errors++ < 3)
		fprintf(stderr, "bench-load: %c%d %s: %d %s\n", r->prefix,
		    r->client, what, rv, infini_errmsg());
}

static void
new_id(struct run *r, char *out)
{
	snprintf(out, INFINI_ID_MAX + 1, "%c%d-%d", r->prefix, r->client,
	    r->nid++);
}

/* script runs client r->client's requests; the same choices every time. */
static void
script(struct run *r)
{
	uint64_t s = 0x9e3779b97f4a7c15ull ^ ((uint64_t)r->client * 7919 + 1);
	int seg = (int)health.segment_size, rv;
	int32_t toks[512];
	char id[INFINI_ID_MAX + 1];
	struct infini_sampling greedy = { 0 };
	struct infini_result res = { 0 };

	r->tokhash = 0xcbf29ce484222325ull;
	new_id(r, r->cur);
	if ((rv = infini_open(r->c, r->cur, false, NULL, NULL)) != 0)
		fail(r, "open", rv);
	for (int i = 0; i < nreq; i++) {
		uint64_t pick = next(&s) % 100;
		enum op op = pick < 55 ? OP_PUSH : pick < 59 ? OP_GENERATE :
		    pick < 77 ? OP_SNAPSHOT : pick < 85 ? OP_RESTORE :
		    pick < 95 ? OP_FORK : OP_CLOSE;
		double t0 = bench_now();
		switch (op) {
		case OP_PUSH: {
			int n = 1 + (int)(next(&s) % (uint64_t)seg);
			if (n > 512)
				n = 512;
			for (int k = 0; k < n; k++)
				toks[k] = (int32_t)(next(&s) % health.vocab_size);
			if ((rv = infini_push_tokens(r->c, r->cur, toks, (size_t)n,
			    INFINI_OUT_NONE, NULL)) != 0)
				fail(r, "push", rv);
			break;
		}
		case OP_GENERATE: {
			int n = 1 + (int)(next(&s) % 4);
			uint32_t max = 1 + (uint32_t)(next(&s) % 4);
			for (int k = 0; k < n; k++)
				toks[k] = (int32_t)(next(&s) % health.vocab_size);
			struct infini_gen_opts go = { .prompt = toks,
			    .nprompt = (size_t)n, .max_tokens = max,
			    .sampling = &greedy, .on_token = on_token,
			    .arg = r };
			if ((rv = infini_generate(r->c, r->cur, &go,
			    NULL)) != 0)
				fail(r, "generate", rv);
			break;
		}
		case OP_SNAPSHOT:
			free(r->snap);
			r->snap = NULL;
			if ((rv = infini_snapshot(r->c, r->cur, NULL, &r->snap,
			    &r->snaplen)) != 0)
				fail(r, "snapshot", rv);
			break;
		case OP_RESTORE:
			if (r->snap == NULL)
				break;
			new_id(r, id);
			if ((rv = infini_restore(r->c, id, NULL, r->snap,
			    r->snaplen, NULL)) != 0) {
				fail(r, "restore", rv);
				break;
			}
			if ((rv = infini_close_stream(r->c, r->cur)) != 0)
				fail(r, "close after restore", rv);
			snprintf(r->cur, sizeof(r->cur), "%s", id);
			break;
		case OP_FORK:
			new_id(r, id);
			if ((rv = infini_fork(r->c, r->cur, id, NULL)) != 0) {
				fail(r, "fork", rv);
				break;
			}
			if ((rv = infini_close_stream(r->c, r->cur)) != 0)
				fail(r, "close after fork", rv);
			snprintf(r->cur, sizeof(r->cur), "%s", id);
			break;
		case OP_CLOSE:
			if ((rv = infini_close_stream(r->c, r->cur)) != 0)
				fail(r, "close", rv);
			new_id(r, r->cur);
			if ((rv = infini_open(r->c, r->cur, false, NULL, NULL)) != 0)
				fail(r, "open", rv);
			break;
		default:
			break;
		}
		r->lat[op][r->count[op]++] = (bench_now() - t0) * 1e6;
	}
	/* The final state, seen through a fixed push. */
	for (int k = 0; k < 4; k++)
		toks[k] = 1 + k;
	if ((rv = infini_push_tokens(r->c, r->cur, toks, 4, INFINI_OUT_LAST,
	    &res)) != 0) {
		fail(r, "final push", rv);
	} else {
		r->last = res.data;
		r->nlast = res.rows * res.cols;
	}
	if ((rv = infini_close_stream(r->c, r->cur)) != 0)
		fail(r, "final close", rv);
	free(r->snap);
	r->snap = NULL;
}

static void *
thread_main(void *arg)
{
	script(arg);
	return (NULL);
}

static int
run_init(struct run *r, int client, char prefix, infini_client *shared)
{
	memset(r, 0, sizeof(*r));
	r->client = client;
	r->prefix = prefix;
	for (int k = 0; k < OP_N; k++)
		if ((r->lat[k] = calloc((size_t)nreq, sizeof(double))) == NULL)
			return (-1);
	if (shared != NULL) {
		r->c = shared;
		return (0);
	}
	if (infini_connect(url, 10000, &r->c) != 0) {
		fprintf(stderr, "bench-load: connect: %s\n", infini_errmsg());
		return (-1);
	}
	return (0);
}

static void
lat_table(struct run *runs, const char *title, double wall)
{
	long total = 0, errors = 0;

	printf("\n%s: %d clients x %d requests in %.1f s\n", title, nclients,
	    nreq, wall);
	printf("| %-18s | %7s | %9s | %9s | %9s |\n", "request", "count",
	    "p50 ms", "p99 ms", "max ms");
	printf("|--------------------|---------|-----------|-----------|"
	    "-----------|\n");
	for (int k = 0; k < OP_N; k++) {
		long n = 0;
		for (int i = 0; i < nclients; i++)
			n += runs[i].count[k];
		double *all = malloc((size_t)(n ? n : 1) * sizeof(double));
		long j = 0;
		for (int i = 0; i < nclients; i++)
			for (long q = 0; q < runs[i].count[k]; q++)
				all[j++] = runs[i].lat[k][q];
		bench_sort(all, (size_t)n);
		if (n)
			printf("| %-18s | %7ld | %9.2f | %9.2f | %9.2f |\n",
			    op_name[k], n, all[n / 2] / 1e3,
			    all[(long)(n * 0.99)] / 1e3, all[n - 1] / 1e3);
		free(all);
		total += n;
	}
	for (int i = 0; i < nclients; i++)
		errors += runs[i].errors;
	printf("| %-18s | %7ld | %9.0f req/s, %ld errors\n", "all", total,
	    total / wall, errors);
}

int
main(int argc, char **argv)
{
	struct run *L, *R;
	pthread_t *th;
	infini_client *c;
	int rv, status = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--socket") && i + 1 < argc)
			url = argv[++i];
		else if (!strcmp(argv[i], "--clients") && i + 1 < argc)
			nclients = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--requests") && i + 1 < argc)
			nreq = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--pid") && i + 1 < argc)
			daemon_pid = atol(argv[++i]);
		else if (!strcmp(argv[i], "--replay") && i + 1 < argc)
			nreplay = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: bench-load --socket URL [--pid PID]"
			    " [--clients N] [--requests N] [--replay N]\n");
			return (2);
		}
	}
	if (nclients <= 0 || nreq <= 0)
		return (2);
	if (nreplay < 0 || nreplay > nclients)
		nreplay = nclients;
	if ((rv = infini_connect(url, 10000, &c)) != 0 ||
	    (rv = infini_health(c, &health)) != 0) {
		fprintf(stderr, "bench-load: %s\n", infini_errmsg());
		return (1);
	}
	L = calloc((size_t)nclients, sizeof(*L));
	R = calloc((size_t)nclients, sizeof(*R));
	th = calloc((size_t)nclients, sizeof(*th));
	long rss0 = rss_kb(), rss_peak = rss0;

	/* Concurrent. */
	for (int i = 0; i < nclients; i++)
		if (run_init(&L[i], i, 'L', NULL) != 0)
			return (1);
	double t0 = bench_now();
	for (int i = 0; i < nclients; i++)
		pthread_create(&th[i], NULL, thread_main, &L[i]);
	for (int i = 0; i < nclients; i++) {
		long k;
		pthread_join(th[i], NULL);
		if ((k = rss_kb()) > rss_peak)
			rss_peak = k;
	}
	double wall_l = bench_now() - t0;
	long rss_l = rss_kb();

	/* Serial replay on one connection. */
	for (int i = 0; i < nclients; i++)
		if (run_init(&R[i], i, 'R', c) != 0)
			return (1);
	t0 = bench_now();
	for (int i = 0; i < nreplay; i++)
		script(&R[i]);
	double wall_r = bench_now() - t0;
	long rss_r = rss_kb();

	lat_table(L, "concurrent", wall_l);
	lat_table(R, "serial replay", wall_r);
	printf("(serial replay of %d of the %d clients)\n", nreplay, nclients);

	/* Compare. */
	int same_tok = 0, same_bits = 0, close_enough = 0;
	double maxdiff = 0;
	long errors = 0;
	for (int i = 0; i < nclients; i++)
		errors += L[i].errors + R[i].errors;
	for (int i = 0; i < nreplay; i++) {
		same_tok += L[i].tokhash == R[i].tokhash && L[i].ntok == R[i].ntok;
		if (L[i].last == NULL || R[i].last == NULL ||
		    L[i].nlast != R[i].nlast)
			continue;
		double d = 0, ref = 0;
		for (uint32_t k = 0; k < L[i].nlast; k++) {
			d = fmax(d, fabs((double)L[i].last[k] - R[i].last[k]));
			ref = fmax(ref, fabs((double)R[i].last[k]));
		}
		same_bits += memcmp(L[i].last, R[i].last,
		    L[i].nlast * sizeof(float)) == 0;
		close_enough += d <= 1e-4 * (ref > 1 ? ref : 1);
		maxdiff = fmax(maxdiff, d);
	}
	struct infini_stats st;
	uint32_t left = 0;
	if (infini_stats(c, &st) == 0)
		left = st.streams;
	printf("\n| %-44s | %-24s |\n", "check", "result");
	printf("|----------------------------------------------|"
	    "--------------------------|\n");
	printf("| %-44s | %-24ld |\n", "requests failed (both runs)", errors);
	printf("| %-44s | %3d / %-18d |\n", "generated tokens equal to serial replay",
	    same_tok, nreplay);
	printf("| %-44s | %3d / %-18d |\n", "final LAST bit-identical to replay",
	    same_bits, nreplay);
	printf("| %-44s | %3d / %-18d |\n", "final LAST within 1e-4 (max |diff|)",
	    close_enough, nreplay);
	printf("| %-44s | %-24.3g |\n", "max |diff| of final LAST", maxdiff);
	printf("| %-44s | %-24u |\n", "streams open at the end", left);
	printf("| %-44s | %-24ld |\n", "daemon RSS KiB: baseline", rss0);
	printf("| %-44s | %-24ld |\n", "daemon RSS KiB: peak (sampled)", rss_peak);
	printf("| %-44s | %-24ld |\n", "daemon RSS KiB: after concurrent, closed",
	    rss_l);
	printf("| %-44s | %-24ld |\n", "daemon RSS KiB: after serial, closed",
	    rss_r);
	if (errors || close_enough != nreplay || same_tok != nreplay || left)
		status = 1;
	for (int i = 0; i < nclients; i++) {
		infini_close(L[i].c);
		free(L[i].last);
		free(R[i].last);
		for (int k = 0; k < OP_N; k++) {
			free(L[i].lat[k]);
			free(R[i].lat[k]);
		}
	}
	infini_close(c);
	free(L);
	free(R);
	free(th);
	printf("\nbench-load: %s\n", status ? "FAILED" : "ok");
	return (status);
}
