#include "pc.h"
/* rmsnorm: out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * (add_one + w). */
PC_BEGIN(rmsnorm_pc)
	uint32_t n_rows;
	uint32_t n;
	float eps;
	float add_one;
PC_END(rmsnorm_pc)
