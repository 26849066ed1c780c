/*
 * hrw.c - rendezvous hashing of stream IDs over members (hrw.h).
 */
#include <string.h>

#define XXH_INLINE_ALL   /* header only: libinfini links no libxxhash */
#include <xxhash.h>

#include "hrw.h"

uint64_t
hrw_weight(const char *member, const char *id)
{
	/* The hash of "member NUL id", so that every byte of both goes
	 * through XXH3's full mixing (a seed alone barely moves the hash of
	 * a 2-byte ID).  Longer names than the protocol allows are cut. */
	char buf[HRW_MEMBER_MAX + 1 + HRW_ID_MAX];
	size_t m = strnlen(member, HRW_MEMBER_MAX);
	size_t n = strnlen(id, HRW_ID_MAX);

	memcpy(buf, member, m);
	buf[m] = '\0';
	memcpy(buf + m + 1, id, n);
	return (XXH3_64bits(buf, m + 1 + n));
}

int
hrw_pick(const char *const *members, size_t n, const char *id)
{
	uint64_t best = 0;
	int at = -1;

	for (size_t i = 0; i < n; i++) {
		uint64_t w = hrw_weight(members[i], id);
		if (at < 0 || w > best ||
		    (w == best && strcmp(members[i], members[at]) < 0)) {
			best = w;
			at = (int)i;
		}
	}
	return (at);
}
