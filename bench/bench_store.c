/*
 * bench_store.c - how fast streams are restored from each state store:
 * the directory (local disk) and Redis (daemon/store/, docs/scale-out.md).
 *
 * S streams of the model are filled to mid-segment, exported and encoded
 * once.  Then, per store: every snapshot is written (for Redis, fenced by
 * the stream's lease, as a daemon writes it), and restored S times the way
 * a daemon taking a stream over does: sst_get + snap_decode_model into a
 * fresh engine slot (eng_stream_import).  Prints restores per second and
 * the MB/s of snapshot bytes, the same for the fetch alone, and the
 * (fenced, for Redis) writes per second.
 *
 * usage: bench-store --model DIR --redis URL [--streams S] [--device SEL]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "engine/engine.h"
#include "engine/model.h"
#include "infini_err.h"
#include "snapshot.h"
#include "store/store.h"

struct snaps {
	int n;
	uint8_t **buf;
	size_t *len;
};

/* fill encodes S streams of e filled to mid-segment. */
static int
fill(struct eng *e, const struct eng_model *m, int S, struct snaps *sn)
{
	const struct eng_config *c = eng_config(e);
	int n = c->segment_size + c->segment_size / 2, rv = 0, slot;
	int32_t *tok = calloc((size_t)n, sizeof(int32_t));
	char err[512], id[32];

	sn->n = S;
	sn->buf = calloc((size_t)S, sizeof(*sn->buf));
	sn->len = calloc((size_t)S, sizeof(*sn->len));
	if (tok == NULL || sn->buf == NULL || sn->len == NULL)
		return (INFINI_ENOMEM);
	for (int s = 0; rv == 0 && s < S; s++) {
		struct eng_stream_state st;
		struct snap_meta meta;
		for (int i = 0; i < n; i++)
			tok[i] = (i * 7 + 3 + s) % c->vocab_size;
		struct eng_job j = { .n = n, .tokens = tok,
		    .out = ENG_OUT_NONE };
		if ((rv = eng_stream_alloc(e, &slot)) != 0)
			break;
		j.slot = slot;
		if ((rv = eng_run(e, &j, 1, err, sizeof(err))) != 0)
			fprintf(stderr, "run: %s\n", err);
		snprintf(id, sizeof(id), "b%d", s);
		if (rv == 0 && (rv = eng_stream_export(e, slot, &st)) == 0) {
			if ((rv = snap_meta_init(&meta, m, id)) == 0)
				rv = snap_encode(&meta, &st, &sn->buf[s],
				    &sn->len[s]);
			eng_stream_state_fini(&st);
		}
		eng_stream_free(e, slot);
	}
	free(tok);
	return (rv);
}

/* one_store writes the snapshots to st and restores each; prints a row. */
static int
one_store(struct sst *st, struct eng *e, const struct eng_model *m,
    const struct snaps *sn, const char *what)
{
	char err[512], id[32], name[40];
	struct sst_fence f = { .member = "bench" };
	uint64_t *ep = calloc((size_t)sn->n, sizeof(uint64_t));
	double t_get = 0, t_all = 0, t_put = 0;
	size_t bytes = 0;
	int rv = 0;

	for (int s = 0; rv == 0 && s < sn->n; s++) {
		snprintf(id, sizeof(id), "b%d", s);
		snprintf(name, sizeof(name), "b%d.snap", s);
		if (sst_shared(st) && (rv = sst_lease_acquire(st, id, "bench",
		    600000, &ep[s], NULL, 0, NULL, err, sizeof(err))) != 0)
			break;
		f.lease = id;
		f.epoch = ep[s];
		double t0 = bench_now();
		rv = sst_put(st, SST_STREAM, name, sst_shared(st) ? &f : NULL,
		    0, sn->buf[s], sn->len[s], 0, err, sizeof(err));
		t_put += bench_now() - t0;
	}
	for (int s = 0; rv == 0 && s < sn->n; s++) {
		struct eng_stream_state es;
		struct snap_meta meta;
		uint8_t *buf = NULL;
		size_t len = 0;
		int slot;
		snprintf(name, sizeof(name), "b%d.snap", s);
		double t0 = bench_now();
		rv = sst_get(st, SST_STREAM, name, snap_max_size(m), &buf, &len,
		    err, sizeof(err));
		double t1 = bench_now();
		if (rv == 0)
			rv = snap_decode_model(buf, len, m, &meta, &es, err,
			    sizeof(err));
		free(buf);
		if (rv == 0) {
			if ((rv = eng_stream_alloc(e, &slot)) == 0) {
				rv = eng_stream_import(e, slot, &es);
				eng_stream_free(e, slot);
			}
			eng_stream_state_fini(&es);
		}
		double t2 = bench_now();
		t_get += t1 - t0;
		t_all += t2 - t0;
		bytes += len;
	}
	for (int s = 0; s < sn->n; s++) {
		snprintf(id, sizeof(id), "b%d", s);
		snprintf(name, sizeof(name), "b%d.snap", s);
		f.lease = id;
		f.epoch = ep[s];
		(void)sst_del(st, SST_STREAM, name, sst_shared(st) ? &f : NULL,
		    err, sizeof(err));
		if (sst_shared(st))
			(void)sst_lease_release(st, id, "bench", ep[s], err,
			    sizeof(err));
	}
	free(ep);
	if (rv != 0) {
		fprintf(stderr, "%s: %s (%s)\n", what, infini_strerror(rv), err);
		return (rv);
	}
	printf("| %-40s | %6d | %12.1f | %9.1f | %12.1f | %9.1f | %9.1f |\n",
	    what, sn->n, sn->n / t_all, bytes / t_all / 1e6, sn->n / t_get,
	    bytes / t_get / 1e6, sn->n / t_put);
	return (0);
}

int
main(int argc, char **argv)
{
	const char *model = NULL, *redis = NULL, *device = NULL;
	char dir[] = "/tmp/bench-store.XXXXXX", path[64], err[512];
	struct eng_model *m = NULL;
	struct eng *e = NULL;
	struct sst *ds = NULL, *rs = NULL;
	struct snaps sn = { 0 };
	int S = 32, rv;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--model") == 0)
			model = argv[i + 1];
		else if (strcmp(argv[i], "--redis") == 0)
			redis = argv[i + 1];
		else if (strcmp(argv[i], "--streams") == 0)
			S = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--device") == 0)
			device = argv[i + 1];
	}
	if (model == NULL || redis == NULL || S < 1) {
		fprintf(stderr, "usage: bench-store --model DIR --redis URL "
		    "[--streams S] [--device SEL]\n");
		return (2);
	}
	if ((rv = eng_model_load(model, &m, err, sizeof(err))) != 0) {
		fprintf(stderr, "model: %s\n", err);
		return (1);
	}
	struct eng_opts o = { .device = device, .max_streams = 2 };
	if ((rv = eng_open(m, &o, &e, err, sizeof(err))) != 0) {
		fprintf(stderr, "engine: %s\n", err);
		eng_model_free(m);
		return (1);
	}
	if (mkdtemp(dir) == NULL)
		return (1);
	snprintf(path, sizeof(path), "%s/streams", dir);
	mkdir(path, 0700);
	if ((rv = fill(e, m, S, &sn)) != 0 ||
	    (rv = sst_open("dir", dir, &ds, err, sizeof(err))) != 0 ||
	    (rv = sst_open(redis, dir, &rs, err, sizeof(err))) != 0) {
		fprintf(stderr, "setup: %s %s\n", infini_strerror(rv), err);
		goto out;
	}
	/* A state of the ~100M model is 16 MB: its write through the
	 * append-only file may take longer than the daemon's default. */
	sst_set_timeout(rs, 60000);
	printf("model %s on %s: snapshots of %zu bytes, %d streams\n\n", model,
	    eng_device_name(e), sn.len[0], S);
	printf("| %-40s | %6s | %12s | %9s | %12s | %9s | %9s |\n", "store",
	    "n", "restores/s", "MB/s", "fetches/s", "MB/s", "writes/s");
	printf("|------------------------------------------|--------|"
	    "--------------|-----------|--------------|-----------|"
	    "-----------|\n");
	char what[200];
	snprintf(what, sizeof(what), "local disk (%s)", dir);
	rv = one_store(ds, e, m, &sn, what);
	snprintf(what, sizeof(what), "%s", sst_describe(rs));
	rv |= one_store(rs, e, m, &sn, what);
out:
	for (int s = 0; s < sn.n; s++)
		free(sn.buf ? sn.buf[s] : NULL);
	free(sn.buf);
	free(sn.len);
	sst_close(ds);
	sst_close(rs);
	rmdir(path);
	rmdir(dir);
	eng_close(e);
	eng_model_free(m);
	return (rv ? 1 : 0);
}
