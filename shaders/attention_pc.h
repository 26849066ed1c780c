#include "pc.h"
/* attention: causal softmax attention of each query row over its stream's
 * segment cache positions [0, pos]. */
PC_BEGIN(attention_pc)
	uint32_t n_rows;
	uint32_t nh;
	uint32_t nkv;
	uint32_t hd;
	uint32_t seg;
	uint32_t slot_stride;
	float scale;
PC_END(attention_pc)
