# Kernel variants: infini_shader(<name> <source> [DEFINES...]).
# Names follow <op>[_<weight dtype>]; daemon/engine/kernels.c lists them.
foreach(t f32 f16 bf16)
  string(TOUPPER ${t} T)
  infini_shader(embed_${t} embed.comp W_${T})
endforeach()
# Block dtypes (daemon/engine/quant.h) are matmul-only: embeddings stay float.
foreach(t f32 f16 bf16 q8_0 q4_0)
  string(TOUPPER ${t} T)
  infini_shader(matmul_${t} matmul.comp W_${T})
  # llvmpipe-fast texel variants: tile (RM 16 x RN 8 per invocation), and
  # for small m the 4-row and 1-row matrix-vector shapes.
  infini_shader(matmul_texel_${t} matmul_texel.comp W_${T} RM=16 RN=8 KS4=2 LX=8 LY=2)
  infini_shader(matmul_texel_m4_${t} matmul_texel.comp W_${T} RM=4 RN=4 KS4=2 LX=8 LY=1)
  infini_shader(matmul_texel_m1_${t} matmul_texel.comp W_${T} RM=1 RN=4 KS4=4 LX=8 LY=1)
endforeach()
infini_shader(rmsnorm rmsnorm.comp)
infini_shader(rmsnorm_sg rmsnorm.comp SUBGROUP)
infini_shader(rope rope.comp)
infini_shader(rope_v4 rope_v4.comp)
infini_shader(attention attention.comp)
# llvmpipe-fast texel variants: attention over 4-row blocks (prefill) and
# single rows (decode), memory read with the gate fused, linear update.
infini_shader(attention_texel attention_texel.comp RB=4)
infini_shader(attention_texel_r1 attention_texel.comp RB=1)
infini_shader(retrieve_texel retrieve_texel.comp RB=4)
infini_shader(retrieve_texel_r1 retrieve_texel.comp RB=1)
infini_shader(memupd_texel memupd_texel.comp)
infini_shader(retrieve retrieve.comp)
infini_shader(gate gate.comp)
infini_shader(glu glu.comp)
infini_shader(memupd memupd.comp)
infini_shader(memz memz.comp)
infini_shader(sample sample.comp)
# Cooperative-matrix matmul (VK_KHR_cooperative_matrix; f16 A and B, f32
# accumulation) for f16, bf16 and block weights, and the attention-side
# kernels on cooperative matrices, when the build has tools that
# compile it (CMakeLists.txt: INFINI_HAVE_COOP).
if(INFINI_HAVE_COOP)
  set(SHADER_GLSLANG ${GLSLANG_COOP})
  set(SHADER_SPIRV_VAL ${SPIRV_VAL_COOP})
  foreach(t f16 bf16 q8_0 q4_0)
    string(TOUPPER ${t} T)
    infini_shader(matmul_coop_${t} matmul_coop.comp W_${T})
  endforeach()
  infini_shader(attention_coop attention_coop.comp)
  infini_shader(retrieve_coop retrieve_coop.comp)
  set(SHADER_GLSLANG ${GLSLANG})
  set(SHADER_SPIRV_VAL ${SPIRV_VAL})
endif()
