/*
 * kernels.h - the table of compute kernels built into the engine: one row
 * per shader variant (SPIR-V words, binding kinds, push-constant size).
 */
#ifndef ENG_KERNELS_H
#define ENG_KERNELS_H

#include "gpu/gpu.h"

#define ENG_KERNELS(X)                                                     \
	X(EMBED_F32, embed_f32, 4, S4, embed_pc)                           \
	X(EMBED_F16, embed_f16, 4, S4, embed_pc)                           \
	X(EMBED_BF16, embed_bf16, 4, S4, embed_pc)                         \
	X(MATMUL_F32, matmul_f32, 3, S3, matmul_pc)                        \
	X(MATMUL_F16, matmul_f16, 3, S3, matmul_pc)                        \
	X(MATMUL_BF16, matmul_bf16, 3, S3, matmul_pc)                      \
	X(MATMUL_TEXEL_F32, matmul_texel_f32, 3, TTS, matmul_pc)            \
	X(MATMUL_TEXEL_F16, matmul_texel_f16, 3, TTS, matmul_pc)            \
	X(MATMUL_TEXEL_BF16, matmul_texel_bf16, 3, TTS, matmul_pc)          \
	X(MATMUL_TEXEL_M4_F32, matmul_texel_m4_f32, 3, TTS, matmul_pc)      \
	X(MATMUL_TEXEL_M4_F16, matmul_texel_m4_f16, 3, TTS, matmul_pc)      \
	X(MATMUL_TEXEL_M4_BF16, matmul_texel_m4_bf16, 3, TTS, matmul_pc)    \
	X(MATMUL_TEXEL_M1_F32, matmul_texel_m1_f32, 3, TTS, matmul_pc)      \
	X(MATMUL_TEXEL_M1_F16, matmul_texel_m1_f16, 3, TTS, matmul_pc)      \
	X(MATMUL_TEXEL_M1_BF16, matmul_texel_m1_bf16, 3, TTS, matmul_pc)    \
	X(MATMUL_Q8_0, matmul_q8_0, 4, S4, matmul_pc)                      \
	X(MATMUL_Q4_0, matmul_q4_0, 4, S4, matmul_pc)                      \
	X(MATMUL_TEXEL_Q8_0, matmul_texel_q8_0, 4, TTST, matmul_pc)         \
	X(MATMUL_TEXEL_Q4_0, matmul_texel_q4_0, 4, TTST, matmul_pc)         \
	X(MATMUL_TEXEL_M4_Q8_0, matmul_texel_m4_q8_0, 4, TTST, matmul_pc)   \
	X(MATMUL_TEXEL_M4_Q4_0, matmul_texel_m4_q4_0, 4, TTST, matmul_pc)   \
	X(MATMUL_TEXEL_M1_Q8_0, matmul_texel_m1_q8_0, 4, TTST, matmul_pc)   \
	X(MATMUL_TEXEL_M1_Q4_0, matmul_texel_m1_q4_0, 4, TTST, matmul_pc)   \
	X(RMSNORM, rmsnorm, 3, S3, rmsnorm_pc)                             \
	X(RMSNORM_SG, rmsnorm_sg, 3, S3, rmsnorm_pc)                       \
	X(ROPE, rope, 6, S6, rope_pc)                                      \
	X(ROPE_V4, rope_v4, 6, S6, rope_pc)                                \
	X(ATTENTION, attention, 5, S5, attention_pc)                       \
	X(RETRIEVE, retrieve, 5, S5, retrieve_pc)                          \
	X(GATE, gate, 3, S3, gate_pc)                                      \
	X(GLU, glu, 2, S2, glu_pc)                                         \
	X(MEMUPD, memupd, 5, S5, memupd_pc)                                \
	X(MEMZ, memz, 3, S3, memupd_pc)                                    \
	X(ATTENTION_TEXEL, attention_texel, 5, TSTTS, attention_pc)        \
	X(ATTENTION_TEXEL_R1, attention_texel_r1, 5, TSTTS, attention_pc)  \
	X(RETRIEVE_TEXEL, retrieve_texel, 6, TSTTSS, retrieve_pc)          \
	X(RETRIEVE_TEXEL_R1, retrieve_texel_r1, 6, TSTTSS, retrieve_pc)    \
	X(MEMUPD_TEXEL, memupd_texel, 4, TTSS, memupd_pc)                  \
	X(SAMPLE, sample, 4, S4, sample_pc)

/* Kernels that need VK_KHR_cooperative_matrix: built only when the build
 * found a glslang that compiles them (shaders/CMakeLists.txt), made only on
 * devices that have it (gpu_info.coopmat).  Specialised by eng_kernel_spec. */
#define ENG_COOP_KERNELS(X)                                                \
	X(MATMUL_COOP_F16, matmul_coop_f16, 3, S3, matmul_pc)               \
	X(MATMUL_COOP_BF16, matmul_coop_bf16, 3, S3, matmul_pc)             \
	X(MATMUL_COOP_Q8_0, matmul_coop_q8_0, 4, S4, matmul_pc)             \
	X(MATMUL_COOP_Q4_0, matmul_coop_q4_0, 4, S4, matmul_pc)             \
	X(ATTENTION_COOP, attention_coop, 5, S5, attention_pc)              \
	X(RETRIEVE_COOP, retrieve_coop, 6, S6, retrieve_pc)

enum eng_kernel_id {
#define X(id, name, nb, binds, pc) ENG_K_##id,
	ENG_KERNELS(X)
	ENG_COOP_KERNELS(X)
#undef X
	ENG_K_COUNT
};

extern const struct gpu_kernel eng_kernels[ENG_K_COUNT];

/*
 * eng_kernel_spec writes the specialization constants kernel k is built
 * with on a device described by gi, for a model of head_dim (ignored by
 * kernels that do not use it), to spec[GPU_MAX_SPEC]; returns how many.
 */
uint32_t eng_kernel_spec(const struct gpu_info *gi, enum eng_kernel_id k,
    uint32_t head_dim, uint32_t *spec);

/*
 * eng_kernel_fits: can kernel k be built for head_dim on the device gi
 * describes?  False for the cooperative-matrix attention and retrieval when
 * the device lacks subgroup arithmetic, head_dim is not a whole number of
 * the device's tiles, or their shared memory passes the device's limit;
 * true for every other kernel.
 */
bool eng_kernel_fits(const struct gpu_info *gi, enum eng_kernel_id k,
    uint32_t head_dim);

/* eng_kernel_built: is kernel k's SPIR-V in this binary? */
bool eng_kernel_built(enum eng_kernel_id k);

#endif
