/*
 * sampling.h - the rule for Generate's sampling values (sampling.c).
 */
#ifndef SAMPLING_H
#define SAMPLING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * wire_check_sampling checks Generate's sampling values: temperature finite
 * and >= 0 (0: greedy), top_k < 2^31 (a negative int32 sent by a client
 * arrives as a huge uint32; 0: off), top_p 0 (off) or in (0, 1].  Returns
 * true, or false with err naming the field and the allowed range.  The one
 * rule the daemon, libinfini and the CLI share.
 */
bool wire_check_sampling(float temperature, uint32_t top_k, float top_p,
    char *err, size_t errlen);

#endif /* SAMPLING_H */
