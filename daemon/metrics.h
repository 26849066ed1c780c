/*
 * metrics.h - the daemon's counters in Prometheus text format (GET /metrics
 * on the HTTP listener).  Calls and their latencies are counted with relaxed
 * atomics where they end, so recording one takes no lock; the scrape reads
 * the stream table's gauges and the scheduler's totals under d->mu.
 */
#ifndef INFINI_METRICS_H
#define INFINI_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct infinid;

/* HTTP endpoints, a label of the http_* series. */
enum mx_ep {
	MX_EP_COMPLETIONS,     /* /v1/completions */
	MX_EP_EMBEDDINGS,      /* /v1/embeddings */
	MX_EP_API,             /* the plain JSON methods under /v1/ */
	MX_EP_METRICS,         /* /metrics */
	MX_NEP
};

/* metrics_rpc counts one answered call of infini.v1.Method method with
 * gRPC code code, begun at t0_us (now_us), from either transport. */
void metrics_rpc(int method, int code, int64_t t0_us);

/* metrics_http counts one HTTP request on endpoint ep answered with status,
 * begun at t0_us. */
void metrics_http(enum mx_ep ep, int status, int64_t t0_us);

/* metrics_render writes the exposition text.  Takes d->mu briefly.
 * Returns a malloc'd NUL-terminated buffer (caller frees) and its length
 * in *len, or NULL when out of memory. */
char *metrics_render(struct infinid *d, size_t *len);

#endif /* INFINI_METRICS_H */
