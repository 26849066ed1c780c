#ifndef SAMPLE_PC_H
#define SAMPLE_PC_H
#include "pc.h"
/* sample: one workgroup per row of the params buffer picks a token from a
 * logits row (see sample.comp). */
PC_BEGIN(sample_pc)
	uint32_t n_rows;        /* rows to sample, one workgroup each */
	uint32_t vocab;         /* floats per logits row */
PC_END(sample_pc)

/* One row to sample: an element of the params storage buffer (std430,
 * 32 bytes, same layout in C).  seed and step are 64-bit, split in halves. */
struct sample_row {
	uint32_t lrow;          /* logits row to read */
	float temperature;      /* <= 0: greedy argmax */
	uint32_t top_k;         /* 0 or >= V: off */
	float top_p;            /* outside (0, 1): off */
	uint32_t seed_lo;
	uint32_t seed_hi;
	uint32_t step_lo;
	uint32_t step_hi;
};
#ifndef VULKAN
_Static_assert(sizeof(struct sample_row) == 32, "sample_row is 32 bytes");
#endif
#endif
