/*
 * hrw.h - rendezvous (highest random weight) hashing of stream IDs over a
 * set of members (prefix hrw_), shared by the daemon and libinfini so that
 * both place a stream on the same member.
 *
 * Each (member, stream) pair gets a 64-bit weight; a stream goes to the
 * member with the largest.  When a member leaves, only its own streams
 * move (each to its second choice); when one joins, it takes about 1/n of
 * the streams and nothing else moves.  The weight is XXH3-64 of the
 * member ID, a NUL byte and the stream ID: a fixed function, so every
 * process and every version agrees on it.
 */
#ifndef HRW_H
#define HRW_H

#include <stddef.h>
#include <stdint.h>

#define HRW_MEMBER_MAX 255      /* bytes of a member ID (a URL) weighed */
#define HRW_ID_MAX 128          /* bytes of a stream ID weighed */

/* hrw_weight: the weight of stream id on member. */
uint64_t hrw_weight(const char *member, const char *id);

/*
 * hrw_pick returns the index in members[0..n) of the member stream id is
 * placed on, or -1 when n is 0.  Equal weights (a 2^-64 chance) go to the
 * smaller member ID, so the choice does not depend on the order.
 */
int hrw_pick(const char *const *members, size_t n, const char *id);

#endif /* HRW_H */
