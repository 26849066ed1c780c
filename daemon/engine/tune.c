/*
 * tune.c - the texel matmul family's shape choice, measured per device.
 *
 * The texel family has three kernels for a projection of m rows: the 1-row
 * and the 4-row matrix-vector shapes and the 16x8 tile (matmul.c).  Which
 * wins for which m depends on the device (the CPU's vector width and core
 * count under llvmpipe) and on the driver.  With INFINI_TUNE_DIR set, the
 * engine times the three on the model's largest per-layer projection for a
 * few m, derives the two thresholds (eng_mm_texel_shape), and caches them
 * in that directory in a file named by the device UUID, the driver
 * version, the weight dtype and the projection's shape, so the next start
 * on the same device and driver reads them instead.  Without it, or on
 * other families, the defaults measured on this project's VM stand.
 *
 * Every shape computes the same product (tests/t_matmul checks each), so
 * the choice changes speed only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine_impl.h"
#include "infini_err.h"

#define TUNE_MAGIC "infinid-tune 1"

static const uint32_t tune_m[] = { 1, 2, 3, 4, 6, 8, 12, 16 };
#define NTUNE (sizeof(tune_m) / sizeof(tune_m[0]))

/* tune_path writes the cache file's name for e's device and projection. */
static void
tune_path(const struct eng *e, const char *dir, const struct eng_wmat *w,
    char *buf, size_t n)
{
	const struct gpu_info *gi = gpu_dev_info(e->dev);
	char uuid[2 * VK_UUID_SIZE + 1];

	for (unsigned i = 0; i < VK_UUID_SIZE; i++)
		snprintf(uuid + 2 * i, 3, "%02x", gi->uuid[i]);
	snprintf(buf, n, "%s/texel-%s-%u-d%d-%dx%d.tune", dir, uuid,
	    gi->driver_version, (int)w->dt, w->rows, w->cols);
}

/* tune_read fills *t from path; returns 0, or -1 when the file is missing
 * or not one this code wrote. */
static int
tune_read(const char *path, struct eng_tune *t)
{
	FILE *f = fopen(path, "r");
	char magic[32];
	unsigned m1, m4;
	int n;

	if (f == NULL)
		return (-1);
	n = fscanf(f, "%31[^\n]\nm1_max=%u m4_max=%u", magic, &m1, &m4);
	fclose(f);
	if (n != 3 || strcmp(magic, TUNE_MAGIC) != 0 || m1 > 65536 ||
	    m4 > 65536 || m4 < m1)
		return (-1);
	t->m1_max = m1;
	t->m4_max = m4;
	return (0);
}

/* tune_write stores t at path through a temporary file and a rename, so a
 * reader never sees half a file; failures are left to the next start. */
static void
tune_write(const char *path, const struct eng_tune *t)
{
	char tmp[1100];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
	if ((f = fopen(tmp, "w")) == NULL)
		return;
	fprintf(f, "%s\nm1_max=%u m4_max=%u\n", TUNE_MAGIC, t->m1_max,
	    t->m4_max);
	if (fclose(f) != 0 || rename(tmp, path) != 0)
		remove(tmp);
}

static void
add_ns(void *arg, const char *label, double ns)
{
	(void)label;
	*(double *)arg += ns;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x < y ? -1 : x > y);
}

/* time_shape: median device ns of the projection w over m rows with shape
 * v, after one untimed run (which also compiles the pipeline). */
static int
time_shape(struct eng *e, const struct eng_wmat *w, enum eng_mm_var v,
    uint32_t m, double *ns)
{
	const struct eng_config *c = &e->c;
	struct eng_mm_in in = { &e->xn, VK_NULL_HANDLE,
	    (uint32_t)c->hidden_size };
	double t[3];
	int rv;

	for (int i = 0; i < e->nmmx; i++)
		if (e->mmx[i].buf == &e->xn)
			in.view = e->mmx[i].view;
	for (int r = -1; r < 3; r++) {
		double sum = 0;
		if ((rv = gpu_cmd_begin(e->cmd)) != 0)
			return (rv);
		eng_mm_record(e->cmd, e->pipe, v, &in, w, &e->gu,
		    (uint32_t)(2 * c->intermediate_size), m, false);
		if ((rv = gpu_cmd_submit(e->cmd)) != 0)
			return (rv);
		gpu_cmd_timings(e->cmd, add_ns, &sum);
		if (r >= 0)
			t[r] = sum;
	}
	qsort(t, 3, sizeof(t[0]), cmp_double);
	*ns = t[1];
	return (0);
}

/* measure times the three shapes for each m of tune_m and sets the
 * thresholds from the winners: the 1-row shape up to the last m before
 * another one first wins, the 4-row shape up to the last m before the
 * tile first wins. */
static int
measure(struct eng *e, const struct eng_wmat *w, struct eng_tune *t)
{
	static const enum eng_mm_var shapes[3] = { ENG_MM_TEXEL_M1,
	    ENG_MM_TEXEL_M4, ENG_MM_TEXEL_TILE };
	bool past_m1 = false, past_m4 = false;
	int rv;

	t->m1_max = t->m4_max = 0;
	for (size_t i = 0; i < NTUNE && tune_m[i] <= (uint32_t)e->max_batch;
	    i++) {
		double best = 0;
		int win = 0;
		for (int s = 0; s < 3; s++) {
			double ns;
			if ((rv = time_shape(e, w, shapes[s], tune_m[i],
			    &ns)) != 0)
				return (rv);
			if (s == 0 || ns < best) {
				best = ns;
				win = s;
			}
		}
		past_m1 = past_m1 || win != 0;
		past_m4 = past_m4 || win == 2;
		if (!past_m1)
			t->m1_max = tune_m[i];
		if (!past_m4)
			t->m4_max = tune_m[i];
	}
	if (t->m4_max < t->m1_max)
		t->m4_max = t->m1_max;
	return (0);
}

int
eng_tune_open(struct eng *e)
{
	const char *dir = getenv("INFINI_TUNE_DIR");
	const struct eng_wmat *w = &e->L[0].wgu;
	char path[1024];
	int rv;

	e->tune = (struct eng_tune){ ENG_MM_M1_MAX, ENG_MM_M4_MAX, false,
	    false };
	if (dir == NULL || *dir == '\0' || e->mm != ENG_MM_TEXEL ||
	    !gpu_dev_info(e->dev)->timestamps)
		return (0);
	tune_path(e, dir, w, path, sizeof(path));
	if (tune_read(path, &e->tune) == 0) {
		e->tune.cached = true;
		return (0);
	}
	gpu_cmd_profile(e->cmd, true);
	rv = measure(e, w, &e->tune);
	if (rv != 0) {
		e->tune = (struct eng_tune){ ENG_MM_M1_MAX, ENG_MM_M4_MAX,
		    false, false };
		return (rv);
	}
	e->tune.measured = true;
	tune_write(path, &e->tune);
	return (0);
}
