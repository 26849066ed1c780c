/*
 * sampling.c - the one rule for Generate's sampling values, shared by the
 * daemon (methods.c), libinfini, the infini CLI and infini-run.  Pure C with
 * no protobuf, so that the CLI, which uses only libinfini's public API,
 * can compile it in and refuse a bad value before connecting.
 */
#include <float.h>
#include <stdio.h>

#include "sampling.h"

bool
wire_check_sampling(float temperature, uint32_t top_k, float top_p,
    char *err, size_t errlen)
{
	/* Written so that NaN fails every test. */
	if (!(temperature >= 0.0f && temperature <= FLT_MAX)) {
		snprintf(err, errlen, "sampling.temperature %g is out of range: "
		    "give a finite value >= 0 (0: greedy)", (double)temperature);
		return (false);
	}
	if (top_k > (uint32_t)INT32_MAX) {
		snprintf(err, errlen, "sampling.top_k %lld is out of range: give "
		    "0 (off) or a count in [1, %d]", (long long)(int32_t)top_k,
		    INT32_MAX);
		return (false);
	}
	if (!(top_p >= 0.0f && top_p <= 1.0f)) {
		snprintf(err, errlen, "sampling.top_p %g is out of range: give a "
		    "value in (0, 1], or 0 for off", (double)top_p);
		return (false);
	}
	return (true);
}
