#include "pc.h"
/* glu: h = act(gate) * up over a fused [gate | up] row (inter % 4 == 0:
 * the kernel works in vec4s). act: 0 silu,
 * 1 gelu (erf), 2 gelu (tanh approximation). */
PC_BEGIN(glu_pc)
	uint32_t n_rows;
	uint32_t inter;
	uint32_t act;
PC_END(glu_pc)
