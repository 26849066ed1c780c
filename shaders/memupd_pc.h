#include "pc.h"
/* memupd / memz: compress a full segment into the memory of each listed
 * stream.  Linear: M += sigma(K)^T V.  Delta: M += sigma(K)^T (V - Vhat),
 * Vhat = sigma(K) M / (sigma(K) . z + eps) with the old M, z.
 * z += sum_t sigma(K_t) runs as a separate dispatch after M (memz.comp),
 * because every M column reads the old z. */
PC_BEGIN(memupd_pc)
	uint32_t n_slots;
	uint32_t nkv;
	uint32_t hd;
	uint32_t seg;
	uint32_t kv_stride; /* floats per stream in a layer's cache: nkv*N*hd */
	uint32_t m_stride;  /* nkv*hd*hd */
	uint32_t z_stride;  /* nkv*hd */
	uint32_t delta;
	float eps;
PC_END(memupd_pc)
