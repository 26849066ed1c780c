#include "pc.h"
/* retrieve: A_mem = sigma(q) M / (sigma(q) . z + eps) with the stream's
 * memory from before the current segment. */
PC_BEGIN(retrieve_pc)
	uint32_t n_rows;
	uint32_t nh;
	uint32_t nkv;
	uint32_t hd;
	uint32_t ldq;      /* floats per row of the query source */
	uint32_t m_stride; /* floats per stream in a layer's M: nkv*hd*hd */
	uint32_t z_stride; /* floats per stream in a layer's z: nkv*hd */
	float eps;
	uint32_t on_local; /* retrieve_texel's fused gate: as gate_pc */
PC_END(retrieve_pc)
