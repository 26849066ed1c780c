/*
 * soak.c - long-stream soak of a running infinid: one stream fed N tokens
 * (default 1,000,000) in pushes of one segment each, asking for the LAST
 * output every time.  Records the time of every push and, every --every
 * segments, the daemon's resident set (VmRSS of --pid); fails on any
 * error or on a NaN/Inf output.  Writes a CSV (segment, tokens, ms per
 * segment over the window, tokens/s, RSS in KiB, |LAST|) and prints the
 * first and last windows side by side.  bench/soak.sh starts a daemon,
 * runs this and plots the CSV with bench/soak.gp.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "infini.h"

static double
now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (ts.tv_sec + ts.tv_nsec * 1e-9);
}

/* rss_kb returns the VmRSS of pid in KiB, or -1. */
static long
rss_kb(long pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	if ((f = fopen(path, "r")) == NULL)
		return (-1);
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return (kb);
}

struct win {
	long seg;
	double ms;      /* mean push time over the window */
	double tps;
	long rss;
	double norm;
};

int
main(int argc, char **argv)
{
	const char *url = NULL, *csv = "soak.csv";
	long ntok = 1000000, every = 100, pid = 0;
	uint64_t rng = 0x9e3779b97f4a7c15ull;
	infini_client *c;
	struct infini_health h;
	struct infini_result r = { 0 };
	int32_t *toks;
	FILE *f;
	int rv;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--socket") && i + 1 < argc)
			url = argv[++i];
		else if (!strcmp(argv[i], "--tokens") && i + 1 < argc)
			ntok = atol(argv[++i]);
		else if (!strcmp(argv[i], "--every") && i + 1 < argc)
			every = atol(argv[++i]);
		else if (!strcmp(argv[i], "--pid") && i + 1 < argc)
			pid = atol(argv[++i]);
		else if (!strcmp(argv[i], "--csv") && i + 1 < argc)
			csv = argv[++i];
		else {
			fprintf(stderr, "usage: soak --socket URL --pid PID "
			    "[--tokens N] [--every SEGMENTS] [--csv FILE]\n");
			return (2);
		}
	}
	if (url == NULL || pid <= 0 || every <= 0 || ntok <= 0) {
		fprintf(stderr, "soak: --socket and --pid are required\n");
		return (2);
	}
	if ((rv = infini_connect(url, 10000, &c)) != 0 ||
	    (rv = infini_health(c, &h)) != 0) {
		fprintf(stderr, "soak: %s\n", infini_errmsg());
		return (1);
	}
	int seg = (int)h.segment_size;
	long nseg = (ntok + seg - 1) / seg;
	if ((toks = malloc((size_t)seg * sizeof(*toks))) == NULL ||
	    (f = fopen(csv, "w")) == NULL) {
		perror("soak");
		return (1);
	}
	if ((rv = infini_open(c, "soak", false, NULL, NULL)) != 0) {
		fprintf(stderr, "soak: open: %s\n", infini_errmsg());
		return (1);
	}
	printf("soak: %ld tokens = %ld segments of %d, model %s (hidden %u), "
	    "daemon pid %ld, RSS at start %ld KiB\n", nseg * seg, nseg, seg,
	    h.model, h.hidden_size, pid, rss_kb(pid));
	fprintf(f, "segment,tokens,ms_per_segment,tokens_per_s,rss_kb,last_norm\n");

	struct win first = { 0 }, last = { 0 };
	double t0 = now(), wstart = t0, wmax = 0;
	long bad = 0;
	for (long s = 1; s <= nseg; s++) {
		for (int i = 0; i < seg; i++) {
			rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
			toks[i] = (int32_t)(rng % h.vocab_size);
		}
		double p0 = now();
		if ((rv = infini_push_tokens(c, "soak", toks, (size_t)seg,
		    INFINI_OUT_LAST, &r)) != 0) {
			fprintf(stderr, "soak: push %ld: %s\n", s, infini_errmsg());
			return (1);
		}
		double dt = now() - p0;
		if (dt > wmax)
			wmax = dt;
		double norm = 0;
		for (uint32_t i = 0; i < r.rows * r.cols; i++) {
			if (!isfinite(r.data[i]))
				bad++;
			norm += (double)r.data[i] * r.data[i];
		}
		infini_result_free(&r);
		if (bad) {
			fprintf(stderr, "soak: NaN/Inf in LAST after segment %ld\n",
			    s);
			return (1);
		}
		if (s % every == 0 || s == nseg) {
			double t = now();
			long n = s % every ? s % every : every;
			struct win w = { s, (t - wstart) * 1e3 / n,
			    n * seg / (t - wstart), rss_kb(pid), sqrt(norm) };
			fprintf(f, "%ld,%ld,%.3f,%.1f,%ld,%.4f\n", w.seg,
			    w.seg * seg, w.ms, w.tps, w.rss, w.norm);
			fflush(f);
			if (first.seg == 0)
				first = w;
			last = w;
			wstart = now();
		}
	}
	double total = now() - t0;
	printf("\n| %-10s | %10s | %12s | %10s | %10s |\n", "window",
	    "tokens", "ms/segment", "tokens/s", "RSS KiB");
	printf("|------------|------------|--------------|------------|"
	    "------------|\n");
	printf("| %-10s | %10ld | %12.3f | %10.0f | %10ld |\n", "first",
	    first.seg * seg, first.ms, first.tps, first.rss);
	printf("| %-10s | %10ld | %12.3f | %10.0f | %10ld |\n", "last",
	    last.seg * seg, last.ms, last.tps, last.rss);
	printf("\nsoak: %ld tokens in %.1f s (%.0f tokens/s), slowest push "
	    "%.1f ms, no NaN/Inf, RSS %+ld KiB start to end; CSV %s\n",
	    nseg * seg, total, nseg * seg / total, wmax * 1e3,
	    last.rss - first.rss, csv);
	infini_close_stream(c, "soak");
	infini_close(c);
	fclose(f);
	free(toks);
	return (0);
}
