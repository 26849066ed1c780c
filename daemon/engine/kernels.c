/*
 * kernels.c - binds the SPIR-V that the build embedded (one header per
 * variant in the build tree) to the kernel table, and says how each kernel
 * is specialised.  Binding kinds and push-constant sizes come from the same
 * _pc.h headers the shaders include.
 */
#include "engine/kernels.h"

#include "embed_pc.h"
#include "matmul_pc.h"
#include "rmsnorm_pc.h"
#include "rope_pc.h"
#include "attention_pc.h"
#include "retrieve_pc.h"
#include "gate_pc.h"
#include "glu_pc.h"
#include "memupd_pc.h"
#include "sample_pc.h"

#include "embed_f32.h"
#include "embed_f16.h"
#include "embed_bf16.h"
#include "matmul_f32.h"
#include "matmul_f16.h"
#include "matmul_bf16.h"
#include "matmul_texel_f32.h"
#include "matmul_texel_f16.h"
#include "matmul_texel_bf16.h"
#include "matmul_texel_m4_f32.h"
#include "matmul_texel_m4_f16.h"
#include "matmul_texel_m4_bf16.h"
#include "matmul_texel_m1_f32.h"
#include "matmul_texel_m1_f16.h"
#include "matmul_texel_m1_bf16.h"
#include "matmul_q8_0.h"
#include "matmul_q4_0.h"
#include "matmul_texel_q8_0.h"
#include "matmul_texel_q4_0.h"
#include "matmul_texel_m4_q8_0.h"
#include "matmul_texel_m4_q4_0.h"
#include "matmul_texel_m1_q8_0.h"
#include "matmul_texel_m1_q4_0.h"
#include "rmsnorm.h"
#include "rmsnorm_sg.h"
#include "rope.h"
#include "rope_v4.h"
#include "attention.h"
#include "retrieve.h"
#include "gate.h"
#include "glu.h"
#include "memupd.h"
#include "memz.h"
#include "attention_texel.h"
#include "attention_texel_r1.h"
#include "retrieve_texel.h"
#include "retrieve_texel_r1.h"
#include "memupd_texel.h"
#include "sample.h"
#ifdef INFINI_HAVE_COOP
#include "matmul_coop_f16.h"
#include "matmul_coop_bf16.h"
#include "matmul_coop_q8_0.h"
#include "matmul_coop_q4_0.h"
#include "attention_coop.h"
#include "retrieve_coop.h"
#define COOP_SPV(kname) kname##_spv, sizeof(kname##_spv)
#else
/* Built without a glslang that knows GL_KHR_cooperative_matrix. */
#define COOP_SPV(kname) NULL, 0
#endif

#define S2 { GPU_STORAGE, GPU_STORAGE }
/* texel X, texel W, storage Y (matmul_texel) */
#define TTS { GPU_TEXEL, GPU_TEXEL, GPU_STORAGE }
/* ... and for block dtypes, a texel view of the scales */
#define TTST { GPU_TEXEL, GPU_TEXEL, GPU_STORAGE, GPU_TEXEL }
/* texel/storage mixes of the llvmpipe-fast attention-side kernels */
#define TSTTS { GPU_TEXEL, GPU_STORAGE, GPU_TEXEL, GPU_TEXEL, GPU_STORAGE }
#define TSTTSS { GPU_TEXEL, GPU_STORAGE, GPU_TEXEL, GPU_TEXEL, GPU_STORAGE, \
	GPU_STORAGE }
#define TTSS { GPU_TEXEL, GPU_TEXEL, GPU_STORAGE, GPU_STORAGE }
#define S3 { GPU_STORAGE, GPU_STORAGE, GPU_STORAGE }
#define S4 { GPU_STORAGE, GPU_STORAGE, GPU_STORAGE, GPU_STORAGE }
#define S5 { GPU_STORAGE, GPU_STORAGE, GPU_STORAGE, GPU_STORAGE, GPU_STORAGE }
#define S6 { GPU_STORAGE, GPU_STORAGE, GPU_STORAGE, GPU_STORAGE, GPU_STORAGE, \
	GPU_STORAGE }

const struct gpu_kernel eng_kernels[ENG_K_COUNT] = {
#define X(id, kname, nb, binds, pc)                                        \
	[ENG_K_##id] = { #kname, kname##_spv, sizeof(kname##_spv), nb, binds, \
	    sizeof(struct pc) },
	ENG_KERNELS(X)
#undef X
#define X(id, kname, nb, binds, pc)                                        \
	[ENG_K_##id] = { #kname, COOP_SPV(kname), nb, binds,                  \
	    sizeof(struct pc), GPU_NEED_COOPMAT },
	ENG_COOP_KERNELS(X)
#undef X
};

uint32_t
eng_kernel_spec(const struct gpu_info *gi, enum eng_kernel_id k,
    uint32_t head_dim, uint32_t *spec)
{
	switch (k) {
	case ENG_K_ATTENTION:
	case ENG_K_ATTENTION_TEXEL:
	case ENG_K_ATTENTION_TEXEL_R1:
	case ENG_K_RETRIEVE_TEXEL:
	case ENG_K_RETRIEVE_TEXEL_R1:
	case ENG_K_MEMUPD_TEXEL:
		/* Kernels sized by head_dim take it as constant 1. */
		spec[0] = 0;
		spec[1] = head_dim;
		return (2);
	case ENG_K_MATMUL_COOP_F16:
	case ENG_K_MATMUL_COOP_BF16:
	case ENG_K_MATMUL_COOP_Q8_0:
	case ENG_K_MATMUL_COOP_Q4_0:
		/* Four subgroups, and the device's tile shape. */
		spec[0] = 4 * gi->subgroup_size;
		spec[1] = gi->coop_m;
		spec[2] = gi->coop_n;
		spec[3] = gi->coop_k;
		return (4);
	case ENG_K_ATTENTION_COOP:
	case ENG_K_RETRIEVE_COOP:
		/* One subgroup, head_dim, the device's tile shape, and the
		 * depth of a key block (attention) or memory slab (retrieve):
		 * whole tiles of both its uses. */
		spec[0] = gi->subgroup_size;
		spec[1] = head_dim;
		spec[2] = gi->coop_m;
		spec[3] = gi->coop_n;
		spec[4] = gi->coop_k;
		spec[5] = gi->coop_n > gi->coop_k ? gi->coop_n : gi->coop_k;
		return (6);
	default:
		return (0);
	}
}

bool
eng_kernel_fits(const struct gpu_info *gi, enum eng_kernel_id k,
    uint32_t head_dim)
{
	uint64_t tm = gi->coop_m, hd = head_dim, bytes;
	uint64_t kb = gi->coop_n > gi->coop_k ? gi->coop_n : gi->coop_k;

	/* The shared arrays the shaders declare, in bytes. */
	switch (k) {
	case ENG_K_ATTENTION_COOP:
		/* qs, ks, vs, ps (f16); ss, os, ml (f32) */
		bytes = 2 * (tm * hd + 2 * kb * hd + tm * kb) +
		    4 * (tm * kb + tm * hd + 3 * tm);
		break;
	case ENG_K_RETRIEVE_COOP:
		/* sq, ms (f16); os, dn (f32) */
		bytes = 2 * (tm * hd + kb * hd) + 4 * (tm * hd + tm);
		break;
	default:
		return (true);
	}
	return (gi->subgroup_arith && kb != 0 && hd % kb == 0 &&
	    bytes <= gi->max_shared);
}

bool
eng_kernel_built(enum eng_kernel_id k)
{
	return (k >= 0 && k < ENG_K_COUNT && eng_kernels[k].spv != NULL);
}
