/*
 * bench_rpc.c - request latency and throughput of a running infinid over
 * its socket: round-trip p50/p99 of Health and of a 1-token Push, then
 * requests/s with N concurrent clients each pushing to its own stream.
 * With --http HOST:PORT --token T the same calls also go through the HTTP
 * gateway (one keep-alive connection, JSON bodies), in the same run and on
 * the same stream, for the cost of HTTP + JSON over NNG + protobuf.
 * bench/run_rpc.sh starts a daemon on a generated model and runs this.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "infini.h"

static const char *url, *http, *token;
static double duration = 5.0;

/* http_dial opens a TCP connection to HOST:PORT; -1 on failure. */
static int
http_dial(const char *hostport)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	char host[64];
	const char *colon = strrchr(hostport, ':');
	int fd, one = 1;

	if (colon == NULL || (size_t)(colon - hostport) >= sizeof(host))
		return (-1);
	memcpy(host, hostport, (size_t)(colon - hostport));
	host[colon - hostport] = '\0';
	sa.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1 ||
	    (fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return (-1);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (void *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return (-1);
	}
	return (fd);
}

/* http_call sends one request on the keep-alive connection fd and reads
 * the whole response.  Returns the HTTP status or -1. */
static int
http_call(int fd, const char *verb, const char *path, const char *body)
{
	char req[1024], resp[65536];
	size_t have = 0, blen = body ? strlen(body) : 0;
	int n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: bench\r\n"
	    "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
	    "Content-Length: %zu\r\n\r\n%s", verb, path, token, blen,
	    body ? body : "");
	char *end;
	long clen;

	if (write(fd, req, (size_t)n) != n)
		return (-1);
	for (;;) {
		ssize_t got = read(fd, resp + have, sizeof(resp) - 1 - have);
		if (got <= 0)
			return (-1);
		have += (size_t)got;
		resp[have] = '\0';
		if ((end = strstr(resp, "\r\n\r\n")) == NULL)
			continue;
		{
			char *cl = strcasestr(resp, "Content-Length:");
			clen = cl && cl < end ? atol(cl + 15) : 0;
		}
		if (have >= (size_t)(end + 4 - resp) + (size_t)clen)
			break;
	}
	return (atoi(resp + 9));
}

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
		else if (strcmp(argv[i], "--http") == 0 && i + 1 < argc)
			http = argv[++i];
		else if (strcmp(argv[i], "--token") == 0 && i + 1 < argc)
			token = argv[++i];
		else {
			fprintf(stderr, "usage: bench-rpc [--socket URL] [--calls N] "
			    "[--clients N] [--seconds S] [--http HOST:PORT "
			    "--token T]\n");
			return (2);
		}
	}
	if (http != NULL && token == NULL) {
		fprintf(stderr, "bench-rpc: --http needs --token\n");
		return (2);
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
	if (http != NULL) {
		int fd = http_dial(http), bad = 0;
		if (fd < 0) {
			fprintf(stderr, "bench-rpc: cannot connect to %s\n", http);
			return (1);
		}
		for (int i = 0; i < n; i++) {
			double t0 = bench_now();
			bad += http_call(fd, "GET", "/v1/health", NULL) != 200;
			us[i] = (bench_now() - t0) * 1e6;
		}
		report("HTTP GET /v1/health", us, n);
		for (int i = 0; i < n; i++) {
			double t0 = bench_now();
			bad += http_call(fd, "POST", "/v1/streams/bench-lat/push",
			    "{\"tokens\":{\"ids\":[65]}}") != 200;
			us[i] = (bench_now() - t0) * 1e6;
		}
		report("HTTP push, 1 token", us, n);
		/* NNG again after HTTP, so drift in between shows. */
		for (int i = 0; i < n; i++) {
			double t0 = bench_now();
			infini_push_tokens(c, "bench-lat", &tok, 1, INFINI_OUT_NONE,
			    NULL);
			us[i] = (bench_now() - t0) * 1e6;
		}
		report("Push, 1 token (again)", us, n);
		close(fd);
		if (bad) {
			fprintf(stderr, "bench-rpc: %d HTTP calls failed\n", bad);
			return (1);
		}
	}
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
