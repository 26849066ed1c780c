#include "pc.h"
/* embed: x[r] = table[ids[r]] * scale, or vecs[r] where ids[r] < 0.  Tables
 * larger than one binding are dispatched once per part [row_lo, row_hi). */
PC_BEGIN(embed_pc)
	uint32_t n_rows;
	uint32_t hidden;
	uint32_t row_lo;
	uint32_t row_hi;
	float scale;
	uint32_t take_vecs;
PC_END(embed_pc)
