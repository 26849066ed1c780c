#include "pc.h"
/* rope: splits a fused qkv row into heads, rotates q and k (HF rotate_half,
 * position = place in the segment) and stores k, v (and the unrotated k the
 * memory uses, when it differs) in the stream's segment cache. */
PC_BEGIN(rope_pc)
	uint32_t n_rows;
	uint32_t nh;
	uint32_t nkv;
	uint32_t hd;
	uint32_t seg;         /* segment length N */
	uint32_t slot_stride; /* floats per stream in a layer's cache: nkv*N*hd */
	uint32_t rope;        /* 0: no rotation (position_embedding "none") */
	uint32_t store_kmem;  /* 1: also store unrotated k into kmem */
	float theta;
PC_END(rope_pc)
