/*
 * clock.h - the daemon's one notion of time: the monotonic clock, in
 * milliseconds for timeouts and idle ages and in microseconds for latency
 * histograms, and condition variables that wait on it.
 *
 * Every wait is bounded by the monotonic clock, so setting the wall clock
 * (an NTP step, a suspended VM that resumes) neither stalls nor hurries
 * the scheduler, the snapshot writer or shutdown.  Wall time is read only
 * where a time is shown to a user (snapshot creation, OpenAI "created").
 */
#ifndef INFINID_CLOCK_H
#define INFINID_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* now_ms, now_us: the monotonic clock. */
int64_t now_ms(void);
int64_t now_us(void);

/* clk_cond_init initialises cv to time its waits by the monotonic clock;
 * returns 0 or an errno value, as pthread_cond_init does. */
int clk_cond_init(pthread_cond_t *cv);

/* clk_timedwait waits on cv (initialised by clk_cond_init, mu held) for
 * at most ms milliseconds; returns 0, or ETIMEDOUT when the time ran out. */
int clk_timedwait(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ms);

#endif /* INFINID_CLOCK_H */
