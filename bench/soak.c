/*
 * soak.c - long-stream soak of a running infinid: one stream fed N tokens
 * (default 1,000,000) in pushes of one segment each, asking for the LAST
 * output every time.  Records the time of every push and, every --every
 * segments, the daemon's resident set (VmRSS of --pid); fails on any
 * error or on a NaN/Inf output.  Writes a CSV (segment, tokens, ms per
 * segment over the window, tokens/s, RSS in KiB, |LAST|) and prints the
 * first and last windows side by side.  Because the machine's speed drifts
 * over minutes, the end is also compared with the start head to head: the
 * long stream and a fresh one get --compare segments each, interleaved
 * (the order alternating), and the medians are compared.  At the end of
 * every window the
 * stream's state is exported (Snapshot with no name), decoded with
 * daemon/snapshot.c and scanned: M, z and the K/V cache must be finite.
 * bench/soak.sh starts a daemon, runs this and plots the CSV with
 * bench/soak.gp.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "infini.h"
#include "snapshot.h"

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

/* state_check exports stream id and counts the non-finite floats of its
 * memory (M, z) and unfinished segment (K/V); *mmax gets max |M|.  Returns
 * the count, or -1 when the export or the decode fails. */
static long
state_check(infini_client *c, const char *id, double *mmax)
{
	struct eng_stream_state st = { 0 };
	struct snap_meta meta;
	uint8_t *buf = NULL;
	size_t len = 0;
	char err[256];
	long bad = 0;

	if (infini_snapshot(c, id, NULL, &buf, &len) != 0) {
		fprintf(stderr, "soak: snapshot: %s\n", infini_errmsg());
		return (-1);
	}
	if (snap_decode(buf, len, SNAP_ANY_MODEL, &meta, &st, err,
	    sizeof(err)) != 0) {
		fprintf(stderr, "soak: decode: %s\n", err);
		free(buf);
		return (-1);
	}
	size_t nm = (size_t)st.n_layers * st.n_kv_heads * st.head_dim *
	    st.head_dim;
	size_t nz = (size_t)st.n_layers * st.n_kv_heads * st.head_dim;
	size_t nkv = (size_t)st.n_layers * st.n_kv_heads * st.rows *
	    st.head_dim;
	*mmax = 0;
	for (size_t i = 0; i < nm; i++) {
		bad += !isfinite(st.M[i]);
		if (fabs(st.M[i]) > *mmax)
			*mmax = fabs(st.M[i]);
	}
	for (size_t i = 0; i < nz; i++)
		bad += !isfinite(st.z[i]);
	for (size_t i = 0; i < nkv; i++)
		bad += !isfinite(st.kc[i]) + !isfinite(st.vc[i]) +
		    (st.km != NULL && !isfinite(st.km[i]));
	eng_stream_state_fini(&st);
	free(buf);
	return (bad);
}

/* timed_push pushes one segment of random tokens to id and returns the
 * milliseconds it took, or -1 after a failed push or a NaN/Inf in the LAST
 * output (said on stderr).  *norm gets |LAST|. */
static double
timed_push(infini_client *c, const char *id, int32_t *toks, int seg,
    uint32_t vocab, uint64_t *rng, double *norm)
{
	struct infini_result r = { 0 };
	double ms, sq = 0;

	for (int i = 0; i < seg; i++) {
		*rng ^= *rng << 13, *rng ^= *rng >> 7, *rng ^= *rng << 17;
		toks[i] = (int32_t)(*rng % vocab);
	}
	double p0 = bench_now();
	if (infini_push_tokens(c, id, toks, (size_t)seg, INFINI_OUT_LAST,
	    &r) != 0) {
		fprintf(stderr, "soak: push to %s: %s\n", id, infini_errmsg());
		return (-1);
	}
	ms = (bench_now() - p0) * 1e3;
	for (uint32_t i = 0; i < r.rows * r.cols; i++) {
		if (!isfinite(r.data[i])) {
			fprintf(stderr, "soak: NaN/Inf in LAST of %s\n", id);
			ms = -1;
		}
		sq += (double)r.data[i] * r.data[i];
	}
	infini_result_free(&r);
	*norm = sqrt(sq);
	return (ms);
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
	long ntok = 1000000, every = 100, pid = 0, ncmp = 400;
	uint64_t rng = 0x9e3779b97f4a7c15ull;
	infini_client *c;
	struct infini_health h;
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
		else if (!strcmp(argv[i], "--compare") && i + 1 < argc)
			ncmp = atol(argv[++i]);
		else {
			fprintf(stderr, "usage: soak --socket URL --pid PID "
			    "[--tokens N] [--every SEGMENTS] [--csv FILE] "
			    "[--compare SEGMENTS]\n");
			return (2);
		}
	}
	if (url == NULL || pid <= 0 || every <= 0 || ntok <= 0 || ncmp < 0) {
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
	double t0 = bench_now(), wstart = t0, wmax = 0, mmax = 0;
	long nchecks = 0;
	for (long s = 1; s <= nseg; s++) {
		double norm, ms = timed_push(c, "soak", toks, seg, h.vocab_size,
		    &rng, &norm);
		if (ms < 0) {
			fprintf(stderr, "soak: failed at segment %ld\n", s);
			return (1);
		}
		if (ms > wmax)
			wmax = ms;
		if (s % every == 0 || s == nseg) {
			double t = bench_now();
			long n = s % every ? s % every : every;
			struct win w = { s, (t - wstart) * 1e3 / n,
			    n * seg / (t - wstart), rss_kb(pid), norm };
			fprintf(f, "%ld,%ld,%.3f,%.1f,%ld,%.4f\n", w.seg,
			    w.seg * seg, w.ms, w.tps, w.rss, w.norm);
			fflush(f);
			if (first.seg == 0)
				first = w;
			last = w;
			long sbad = state_check(c, "soak", &mmax);
			if (sbad != 0) {
				if (sbad > 0)
					fprintf(stderr, "soak: %ld NaN/Inf in "
					    "the state after segment %ld\n",
					    sbad, s);
				return (1);
			}
			nchecks++;
			wstart = bench_now();
		}
	}
	double total = bench_now() - t0;

	/* Head to head: the long stream against a fresh one. */
	double *tl = calloc((size_t)ncmp + 1, sizeof(double));
	double *tf = calloc((size_t)ncmp + 1, sizeof(double));
	double mlong = 0, mfresh = 0;
	if (tl == NULL || tf == NULL) {
		perror("soak");
		return (1);
	}
	if (ncmp > 0 && infini_open(c, "soak-fresh", false, NULL, NULL) != 0) {
		fprintf(stderr, "soak: open: %s\n", infini_errmsg());
		return (1);
	}
	for (long i = 0; i < ncmp; i++) {
		const char *a = i % 2 ? "soak" : "soak-fresh";
		const char *b = i % 2 ? "soak-fresh" : "soak";
		double na, nb;
		double ta = timed_push(c, a, toks, seg, h.vocab_size, &rng, &na);
		double tb = timed_push(c, b, toks, seg, h.vocab_size, &rng, &nb);
		if (ta < 0 || tb < 0)
			return (1);
		tl[i] = i % 2 ? ta : tb;
		tf[i] = i % 2 ? tb : ta;
	}
	if (ncmp > 0) {
		mlong = bench_median(tl, ncmp);
		mfresh = bench_median(tf, ncmp);
		infini_close_stream(c, "soak-fresh");
	}

	printf("\n| %-10s | %10s | %12s | %10s | %10s |\n", "window",
	    "tokens", "ms/segment", "tokens/s", "RSS KiB");
	printf("|------------|------------|--------------|------------|"
	    "------------|\n");
	printf("| %-10s | %10ld | %12.3f | %10.0f | %10ld |\n", "first",
	    first.seg * seg, first.ms, first.tps, first.rss);
	printf("| %-10s | %10ld | %12.3f | %10.0f | %10ld |\n", "last",
	    last.seg * seg, last.ms, last.tps, last.rss);
	printf("\nsoak: %ld tokens in %.1f s (%.0f tokens/s), slowest push "
	    "%.1f ms, no NaN/Inf in any output nor in the state at %ld checks "
	    "(max |M| at the end %.3g), RSS %+ld KiB start to end; CSV %s\n",
	    nseg * seg, total, nseg * seg / total, wmax, nchecks, mmax,
	    last.rss - first.rss, csv);
	if (ncmp > 0)
		printf("\nhead to head, %ld segments each, interleaved: median "
		    "%.3f ms per segment at position %ld+ against %.3f ms on a "
		    "fresh stream: ratio %.3f\n", ncmp, mlong, nseg * seg, mfresh,
		    mlong / mfresh);
	free(tl);
	free(tf);
	infini_close_stream(c, "soak");
	infini_close(c);
	fclose(f);
	free(toks);
	return (0);
}
