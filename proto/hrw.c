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
	uint64_t seed = XXH3_64bits(member, strlen(member));

	return (XXH3_64bits_withSeed(id, strlen(id), seed));
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
