/*
 * clock.c - the monotonic clock and condition variables waiting on it
 * (clock.h says why).
 */
#include <errno.h>

#include "clock.h"

int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
}

int
clk_cond_init(pthread_cond_t *cv)
{
	pthread_condattr_t a;
	int rv;

	if ((rv = pthread_condattr_init(&a)) != 0)
		return (rv);
	if ((rv = pthread_condattr_setclock(&a, CLOCK_MONOTONIC)) == 0)
		rv = pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
	return (rv);
}

int
clk_timedwait(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return (pthread_cond_timedwait(cv, mu, &ts));
}
