/*
 * tap.h - a tiny Test Anything Protocol producer for the test programs.
 *
 * Each tests/t_<area>.c is one program: it calls tap_plan() (or
 * tap_plan_skip_all()), then ok()/is_*() per check, and returns tap_done().
 * prove(1) runs them.  An alarm guards each program against hangs; scale it
 * with INFINI_TEST_TIMEOUT_MULTIPLIER on slow machines or under sanitizers.
 */
#ifndef TAP_H
#define TAP_H

#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int tap_n, tap_failed, tap_planned;

static void
tap_alarm(int sig)
{
	(void)sig;
	static const char msg[] = "Bail out! test timed out\n";
	(void)!write(1, msg, sizeof(msg) - 1);
	_exit(2);
}

/* tap_timeout arms the hang guard: secs times the multiplier. */
static inline void
tap_timeout(unsigned secs)
{
	const char *m = getenv("INFINI_TEST_TIMEOUT_MULTIPLIER");
	unsigned mul = m ? (unsigned)atoi(m) : 1;
	signal(SIGALRM, tap_alarm);
	alarm(secs * (mul ? mul : 1));
}

static inline void
tap_plan(int n)
{
	tap_planned = n;
	printf("1..%d\n", n);
	fflush(stdout);
	tap_timeout(600);
}

static inline void
tap_plan_skip_all(const char *why)
{
	printf("1..0 # SKIP %s\n", why);
	fflush(stdout);
}

static inline void
tap_diag(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("# ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
}

static inline int
ok(int cond, const char *fmt, ...)
{
	va_list ap;
	tap_n++;
	if (!cond)
		tap_failed++;
	printf("%s %d - ", cond ? "ok" : "not ok", tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	return (cond);
}

static inline void
tap_skip(int count, const char *why)
{
	while (count-- > 0)
		printf("ok %d # SKIP %s\n", ++tap_n, why);
	fflush(stdout);
}

#define is_int(got, want, ...)                                             \
	do {                                                               \
		long long g_ = (long long)(got), w_ = (long long)(want);   \
		if (!ok(g_ == w_, __VA_ARGS__))                            \
			tap_diag("  got %lld, want %lld", g_, w_);         \
	} while (0)

/* is_close checks |got - want| <= tol. */
#define is_close(got, want, tol, ...)                                      \
	do {                                                               \
		double g_ = (got), w_ = (want), t_ = (tol);                \
		if (!ok(fabs(g_ - w_) <= t_, __VA_ARGS__))                 \
			tap_diag("  got %.9g, want %.9g, tol %g", g_, w_, t_); \
	} while (0)

static inline int
tap_done(void)
{
	if (tap_planned && tap_n != tap_planned)
		tap_diag("planned %d tests but ran %d", tap_planned, tap_n);
	return (tap_failed || (tap_planned && tap_n != tap_planned)) ? 1 : 0;
}

#endif /* TAP_H */
