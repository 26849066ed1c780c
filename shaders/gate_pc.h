#include "pc.h"
/* gate: a = g * first + (1 - g) * second with g = sigmoid(beta[h]); which
 * branch is "first" is the model's gate_on. */
PC_BEGIN(gate_pc)
	uint32_t n_rows;
	uint32_t nh;
	uint32_t hd;
	uint32_t on_local;
PC_END(gate_pc)
