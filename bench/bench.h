/*
 * bench.h - what every benchmark here needs: a monotonic clock and the
 * median (the machines are noisy, so tables quote medians).
 */
#ifndef BENCH_H
#define BENCH_H

#include <stdlib.h>
#include <time.h>

/* bench_now: seconds on the monotonic clock. */
static inline double
bench_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (ts.tv_sec + ts.tv_nsec * 1e-9);
}

static inline int
bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return ((x > y) - (x < y));
}

/* bench_sort sorts v[0..n) ascending. */
static inline void
bench_sort(double *v, size_t n)
{
	if (n > 1)
		qsort(v, n, sizeof(*v), bench_cmp_double);
}

/* bench_median sorts v[0..n) and returns its median (0 when n is 0). */
static inline double
bench_median(double *v, size_t n)
{
	if (n == 0)
		return (0);
	bench_sort(v, n);
	return (n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2);
}

#endif /* BENCH_H */
