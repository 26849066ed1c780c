/*
 * gpu_test.h - set-up shared by the tests that need a Vulkan device: turn on
 * the validation layer (unless the caller chose), write a fixture model, load
 * it and open an engine.  A machine without any Vulkan driver skips.
 */
#ifndef GPU_TEST_H
#define GPU_TEST_H

#include <stdio.h>
#include <stdlib.h>

#include "engine/engine.h"
#include "engine/model.h"
#include "fixture.h"
#include "infini_err.h"
#include "tap.h"

struct gt {
	char dir[256];
	struct eng_model *m;
	struct eng *e;
};

static inline void
gt_env(void)
{
	setenv("INFINI_VALIDATION", "1", 0);
}

/* gt_open writes o's model to a temporary directory and opens it; returns
 * 0, or the error (INFINI_ENODEV when there is no device at all). */
static inline int
gt_open(struct gt *g, const struct fx_opts *o, int max_streams, int max_batch)
{
	char err[512];
	struct eng_opts eo = { .max_streams = max_streams,
	    .max_batch = max_batch };
	int rv;

	memset(g, 0, sizeof(*g));
	if ((rv = fx_tmpdir(g->dir, sizeof(g->dir))) != 0 ||
	    (rv = fx_write_model(g->dir, o)) != 0)
		return (rv);
	if ((rv = eng_model_load(g->dir, &g->m, err, sizeof(err))) != 0) {
		tap_diag("model load: %s", err);
		return (rv);
	}
	eo.device = getenv("INFINI_DEVICE");
	if ((rv = eng_open(g->m, &eo, &g->e, err, sizeof(err))) != 0)
		tap_diag("engine: %s", err);
	return (rv);
}

static inline void
gt_close(struct gt *g)
{
	eng_close(g->e);
	eng_model_free(g->m);
	if (g->dir[0])
		fx_rmtree(g->dir);
	memset(g, 0, sizeof(*g));
}

/* gt_probe: is there a Vulkan device at all? */
static inline bool
gt_have_device(void)
{
	struct fx_opts o;
	struct gt g;
	int rv;

	gt_env();
	fx_opts_default(&o);
	rv = gt_open(&g, &o, 1, 8);
	gt_close(&g);
	return (rv != INFINI_ENODEV);
}

#endif
