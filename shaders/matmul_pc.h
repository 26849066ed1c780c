#include "pc.h"
/* matmul: Y[m, y_col + j] (+)= sum_k X[m, k] * W[j, k] for j < n.
 * X rows have stride ldx, Y rows ldy (in floats); acc != 0 adds to Y, which
 * is how residual connections are fused into the projections. */
PC_BEGIN(matmul_pc)
	uint32_t m;
	uint32_t n;
	uint32_t k;
	uint32_t ldx;
	uint32_t ldy;
	uint32_t y_col;
	uint32_t acc;
PC_END(matmul_pc)
