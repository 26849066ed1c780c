/*
 * bench_rpc.c - request latency and throughput of a running infinid over
 * its socket: round-trip p50/p99 of Health and of a 1-token Push, then
 * requests/s with N concurrent clients each pushing to its own stream.
 * bench/run_rpc.sh starts a daemon on a generated model and runs this.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "infini.h"

static const char *url;
static double duration = 5.0;

static void
report(const char *what, double *us, int n)
{
	bench_sort(us, (size_t)n);
	printf("| %-28s | %6d | %9.1f | %9.1f |\n", what, n, us[n / 2],
	    us[(int)(n * 0.99)]);
}

struct thr {
	int i;
	long done, errors;
};

static void *
client(void *arg)
{
	struct thr *t = arg;
	infini_client *c;
	char id[32];
	int32_t tok = 65;

	if (infini_connect(url, 5000, &c) != 0) {
		t->errors++;
		return (NULL);
	}
	snprintf(id, sizeof(id), "bench-%d", t->i);
	if (infini_open(c, id, true, NULL, NULL) != 0)
		t->errors++;
	double end = bench_now() + duration;
	while (bench_now() < end) {
		if (infini_push_tokens(c, id, &tok, 1, INFINI_OUT_NONE, NULL) != 0)
			t->errors++;
		else
			t->done++;
	}
	infini_close_stream(c, id);
	infini_close(c);
	return (NULL);
}

int
main(int argc, char **argv)
{
	int n = 2000, nclients = 32;
	infini_client *c;
	struct infini_health h;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc)
			url = argv[++i];
		else if (strcmp(argv[i], "--calls") == 0 && i + 1 < argc)
			n = atoi(argv[++i]);
		else if (strcmp(argv[i], "--clients") == 0 && i + 1 < argc)
			nclients = atoi(argv[++i]);
		else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
			duration = atof(argv[++i]);
		else {
			fprintf(stderr, "usage: bench-rpc [--socket URL] [--calls N] "
			    "[--clients N] [--seconds S]\n");
			return (2);
		}
	}
	if (n < 1 || nclients < 1 || infini_connect(url, 5000, &c) != 0 ||
	    infini_health(c, &h) != 0) {
		fprintf(stderr, "bench-rpc: %s\n", infini_errmsg());
		return (1);
	}
	double *us = calloc((size_t)n, sizeof(double));
	int32_t tok = 65;
	printf("daemon %s, model %s, device %s\n\n", h.version, h.model,
	    h.device);
	printf("| %-28s | %6s | %9s | %9s |\n", "call (round trip)", "calls",
	    "p50 us", "p99 us");
	printf("|------------------------------|--------|-----------|-----------|\n");
	for (int i = 0; i < n; i++) {
		double t0 = bench_now();
		infini_health(c, &h);
		us[i] = (bench_now() - t0) * 1e6;
	}
	report("Health", us, n);
	infini_open(c, "bench-lat", true, NULL, NULL);
	for (int i = 0; i < n; i++) {
		double t0 = bench_now();
		infini_push_tokens(c, "bench-lat", &tok, 1, INFINI_OUT_NONE, NULL);
		us[i] = (bench_now() - t0) * 1e6;
	}
	report("Push, 1 token, no output", us, n);
	infini_close_stream(c, "bench-lat");

	pthread_t *th = calloc((size_t)nclients, sizeof(*th));
	struct thr *t = calloc((size_t)nclients, sizeof(*t));
	long total = 0, errors = 0;
	double t0 = bench_now();
	for (int i = 0; i < nclients; i++) {
		t[i].i = i;
		pthread_create(&th[i], NULL, client, &t[i]);
	}
	for (int i = 0; i < nclients; i++) {
		pthread_join(th[i], NULL);
		total += t[i].done;
		errors += t[i].errors;
	}
	double el = bench_now() - t0;
	printf("\n| clients | requests | errors | requests/s |\n");
	printf("|---------|----------|--------|------------|\n");
	printf("| %7d | %8ld | %6ld | %10.0f |\n", nclients, total, errors,
	    total / el);
	free(us);
	free(th);
	free(t);
	infini_close(c);
	return (errors ? 1 : 0);
}
