/*
 * metrics.c - counters for GET /metrics, in Prometheus text format 0.0.4.
 *
 * What is counted where it happens (calls by method and code, their
 * latency, HTTP requests by endpoint and status) lives here in arrays of
 * relaxed atomics: recording is a few fetch_adds and never takes d->mu, so
 * the serving paths pay nothing for being watched.  What the daemon already
 * keeps under d->mu (tokens, device time, the stream table's gauges) is
 * read under d->mu at scrape time only; snapshot writes come from
 * snapshot.c's own atomics.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "metrics.h"
#include "snapshot.h"
#include "state.h"
#include "wire.h"

#define MX_METHODS 16            /* infini.v1.Method values, with room */
#define MX_CODES 17              /* gRPC codes 0..16 */
#define MX_STATUS_MIN 100
#define MX_STATUS_N 500          /* HTTP statuses 100..599 */

/* Latency bucket bounds in microseconds (le labels in seconds). */
static const int64_t bounds_us[] = { 100, 250, 500, 1000, 2500, 5000,
	10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000,
	5000000, 10000000 };
#define MX_NB (sizeof(bounds_us) / sizeof(bounds_us[0]))

struct hist {
	atomic_uint_fast64_t le[MX_NB + 1];  /* last: +Inf only */
	atomic_uint_fast64_t sum_us;
	atomic_uint_fast64_t count;
};

static atomic_uint_fast64_t rpc_calls[MX_METHODS][MX_CODES];
static struct hist rpc_lat[MX_METHODS];
static atomic_uint_fast64_t http_calls[MX_NEP][MX_STATUS_N];
static struct hist http_lat[MX_NEP];

static const char *const ep_names[MX_NEP] = {
	[MX_EP_COMPLETIONS] = "completions",
	[MX_EP_EMBEDDINGS] = "embeddings",
	[MX_EP_API] = "api",
	[MX_EP_METRICS] = "metrics",
};

static void
observe(struct hist *h, int64_t t0_us)
{
	int64_t us = now_us() - t0_us;
	size_t b = 0;

	if (us < 0)
		us = 0;
	/* Cumulative buckets are summed at render time; count the first
	 * bucket only, so one observation is one increment. */
	while (b < MX_NB && us > bounds_us[b])
		b++;
	atomic_fetch_add_explicit(&h->le[b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_us, (uint64_t)us,
	    memory_order_relaxed);
	atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

void
metrics_rpc(int method, int code, int64_t t0_us)
{
	if (method < 0 || method >= MX_METHODS || t0_us == 0)
		return;
	if (code < 0 || code >= MX_CODES)
		code = INFINI__V1__CODE__UNKNOWN;
	atomic_fetch_add_explicit(&rpc_calls[method][code], 1,
	    memory_order_relaxed);
	observe(&rpc_lat[method], t0_us);
}

void
metrics_http(enum mx_ep ep, int status, int64_t t0_us)
{
	if ((unsigned)ep >= MX_NEP || status < MX_STATUS_MIN ||
	    status >= MX_STATUS_MIN + MX_STATUS_N)
		return;
	atomic_fetch_add_explicit(&http_calls[ep][status - MX_STATUS_MIN], 1,
	    memory_order_relaxed);
	observe(&http_lat[ep], t0_us);
}

static uint64_t
ld(atomic_uint_fast64_t *a)
{
	return (atomic_load_explicit(a, memory_order_relaxed));
}

/* put_hist writes one labelled histogram's buckets, sum and count. */
static void
put_hist(FILE *f, const char *name, const char *label, const char *value,
    struct hist *h)
{
	uint64_t cum = 0;

	for (size_t b = 0; b <= MX_NB; b++) {
		cum += ld(&h->le[b]);
		if (b < MX_NB)
			fprintf(f, "%s_bucket{%s=\"%s\",le=\"%g\"} %llu\n", name,
			    label, value, (double)bounds_us[b] / 1e6,
			    (unsigned long long)cum);
		else
			fprintf(f, "%s_bucket{%s=\"%s\",le=\"+Inf\"} %llu\n",
			    name, label, value, (unsigned long long)cum);
	}
	fprintf(f, "%s_sum{%s=\"%s\"} %.6f\n", name, label, value,
	    (double)ld(&h->sum_us) / 1e6);
	fprintf(f, "%s_count{%s=\"%s\"} %llu\n", name, label, value,
	    (unsigned long long)ld(&h->count));
}

static void
put_one(FILE *f, const char *name, const char *type, const char *help,
    double v)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n%s %.15g\n", name, help, name,
	    type, name, v);
}

/* rpc_counts: one line per method and status code from code `first` on;
 * codes start at 1 for the errors-only family. */
static void
rpc_counts(FILE *f, const char *name, int first)
{
	for (int m = 1; m < MX_METHODS; m++) {
		const ProtobufCMethodDescriptor *md = wire_method(m);
		for (int c = first; md != NULL && c < MX_CODES; c++) {
			uint64_t n = ld(&rpc_calls[m][c]);
			if (n)
				fprintf(f, "%s{method=\"%s\",code=\"%s\"} %llu\n",
				    name, md->name, wire_code_name(c),
				    (unsigned long long)n);
		}
	}
}

/* rpc_section: calls, errors and latency by method. */
static void
rpc_section(FILE *f)
{
	fputs("# HELP infinid_rpc_requests_total Calls answered, by method and "
	    "status code (NNG and HTTP alike).\n"
	    "# TYPE infinid_rpc_requests_total counter\n", f);
	rpc_counts(f, "infinid_rpc_requests_total", 0);
	fputs("# HELP infinid_rpc_errors_total Calls answered with an error, by "
	    "method and status code.\n"
	    "# TYPE infinid_rpc_errors_total counter\n", f);
	rpc_counts(f, "infinid_rpc_errors_total", 1);
	fputs("# HELP infinid_rpc_duration_seconds Time from a call's arrival "
	    "to its answer, by method (Poll includes its wait).\n"
	    "# TYPE infinid_rpc_duration_seconds histogram\n", f);
	for (int m = 1; m < MX_METHODS; m++) {
		const ProtobufCMethodDescriptor *md = wire_method(m);
		if (md != NULL && ld(&rpc_lat[m].count) > 0)
			put_hist(f, "infinid_rpc_duration_seconds", "method",
			    md->name, &rpc_lat[m]);
	}
}

static void
http_section(FILE *f)
{
	fputs("# HELP infinid_http_requests_total HTTP requests answered, by "
	    "endpoint and status.\n"
	    "# TYPE infinid_http_requests_total counter\n", f);
	for (int e = 0; e < MX_NEP; e++)
		for (int s = 0; s < MX_STATUS_N; s++) {
			uint64_t n = ld(&http_calls[e][s]);
			if (n)
				fprintf(f, "infinid_http_requests_total{endpoint="
				    "\"%s\",status=\"%d\"} %llu\n", ep_names[e],
				    s + MX_STATUS_MIN, (unsigned long long)n);
		}
	fputs("# HELP infinid_http_request_duration_seconds Time from an HTTP "
	    "request's arrival to the end of its answer, by endpoint.\n"
	    "# TYPE infinid_http_request_duration_seconds histogram\n", f);
	for (int e = 0; e < MX_NEP; e++)
		if (ld(&http_lat[e].count) > 0)
			put_hist(f, "infinid_http_request_duration_seconds",
			    "endpoint", ep_names[e], &http_lat[e]);
}

char *
metrics_render(struct infinid *d, size_t *len)
{
	struct stats st;
	int nstreams, nresident, maxs;
	int64_t up_ms;
	uint64_t sw, sb, sf;
	char *buf = NULL;
	size_t n = 0;
	FILE *f;

	pthread_mutex_lock(&d->mu);
	st = d->st;
	nstreams = d->nstreams;
	nresident = d->nresident;
	maxs = (int)d->cfg.max_streams;
	up_ms = now_ms() - d->start_ms;
	pthread_mutex_unlock(&d->mu);
	snap_counters(&sw, &sb, &sf);

	if ((f = open_memstream(&buf, &n)) == NULL)
		return (NULL);
	rpc_section(f);
	http_section(f);
	put_one(f, "infinid_tokens_in_total", "counter",
	    "Input tokens run through the model (pushes and prompts).",
	    (double)st.tokens_in);
	put_one(f, "infinid_tokens_out_total", "counter",
	    "Tokens generated.", (double)st.tokens_out);
	put_one(f, "infinid_device_busy_seconds_total", "counter",
	    "Time the device spent on submitted work.",
	    (double)st.device_busy_us / 1e6);
	put_one(f, "infinid_device_submissions_total", "counter",
	    "Batches submitted to the device.", (double)st.submissions);
	fprintf(f, "# HELP infinid_streams Known streams, by where their state "
	    "is.\n# TYPE infinid_streams gauge\n"
	    "infinid_streams{state=\"resident\"} %d\n"
	    "infinid_streams{state=\"spilled\"} %d\n", nresident,
	    nstreams - nresident);
	put_one(f, "infinid_streams_max", "gauge",
	    "Streams the daemon may know (max_streams).", (double)maxs);
	put_one(f, "infinid_snapshot_writes_total", "counter",
	    "Snapshot and spill files written.", (double)sw);
	put_one(f, "infinid_snapshot_bytes_total", "counter",
	    "Bytes of snapshot and spill files written.", (double)sb);
	put_one(f, "infinid_snapshot_failures_total", "counter",
	    "Snapshot and spill file writes that failed.", (double)sf);
	put_one(f, "infinid_autosnapshots_total", "counter",
	    "Streams saved by the autosnapshot policy.",
	    (double)st.autosnapshots);
	put_one(f, "infinid_spill_errors_total", "counter",
	    "Spill writes or loads that failed.", (double)st.spill_errors);
	put_one(f, "infinid_page_ins_total", "counter",
	    "Spilled streams loaded back onto the device.",
	    (double)st.page_ins);
	put_one(f, "infinid_evictions_total", "counter",
	    "Idle streams spilled to make room.", (double)st.evictions);
	put_one(f, "infinid_uptime_seconds", "gauge",
	    "Seconds since the daemon started.", (double)up_ms / 1e3);
	if (fclose(f) != 0) {
		free(buf);
		return (NULL);
	}
	*len = n;
	return (buf);
}
