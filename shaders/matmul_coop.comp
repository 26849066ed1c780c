#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
/* matmul_coop.comp - Y (+)= X W^T on cooperative matrices
 * (GL_KHR_cooperative_matrix): f16 A and B, f32 accumulation, for f16,
 * bf16, q8_0 and q4_0 weights (W_F16 / W_BF16 / W_Q8_0 / W_Q4_0).
 *
 * The tile shape (TM x TN x TK) is the one the device lists for f16 x f16 ->
 * f32 at subgroup scope (vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR),
 * given as specialization constants together with the workgroup size, which
 * is four subgroups.  A workgroup computes a (4 TM) x (4 TN) block of Y:
 * subgroup s owns rows s TM .. s TM + TM and all four column tiles.  Per
 * slab of 2 TK columns of X and W, every invocation helps stage the slab
 * in shared memory as f16 (X converted from f32, rounding to nearest; W
 * decoded from its dtype: bf16 converts exactly where the value lies in
 * f16's normal range; a block dtype's value, quant times f32 scale, is
 * rounded to nearest), then each subgroup multiplies its tiles.  The
 * accumulators go through shared memory to Y so that edges, the row
 * strides and the acc flag are handled per element.  Rows and columns past
 * m, n or k load zeros and are not stored. */
layout(local_size_x_id = 0) in;
#define WBIND 1
#define SBIND 3   /* block scales, for W_Q8_0 / W_Q4_0 */
#include "common.glsl"
#include "matmul_pc.h"
layout(constant_id = 1) const uint TM = 16;
layout(constant_id = 2) const uint TN = 16;
layout(constant_id = 3) const uint TK = 16;
const uint BM = 4u * TM;        /* block rows (X rows) */
const uint BN = 4u * TN;        /* block columns (W rows) */
const uint KT = 2u * TK;        /* slab depth */
layout(binding = 0, std430) readonly buffer X { float x[]; };
layout(binding = 2, std430) buffer Y { float y[]; };
shared float16_t xs[BM * KT];   /* [BM][KT] row-major */
shared float16_t ws[BN * KT];   /* [BN][KT] row-major: B = ws^T */
shared float cs[BM * BN];       /* [BM][BN] the block's results */

void main()
{
	uint lid = gl_LocalInvocationID.x, nl = gl_WorkGroupSize.x;
	uint j0 = gl_WorkGroupID.x * BN, i0 = gl_WorkGroupID.y * BM;
	uint sg = gl_SubgroupID;
	coopmat<float, gl_ScopeSubgroup, TM, TN, gl_MatrixUseAccumulator> acc[4];
	for (uint c = 0u; c < 4u; c++)
		acc[c] = coopmat<float, gl_ScopeSubgroup, TM, TN,
		    gl_MatrixUseAccumulator>(0.0);
	for (uint k0 = 0u; k0 < pc.k; k0 += KT) {
		for (uint e = lid; e < BM * KT; e += nl) {
			uint i = i0 + e / KT, k = k0 + e % KT;
			xs[e] = float16_t(i < pc.m && k < pc.k ?
			    x[i * pc.ldx + k] : 0.0);
		}
		for (uint e = lid; e < BN * KT; e += nl) {
			uint j = j0 + e / KT, k = k0 + e % KT;
			ws[e] = float16_t(j < pc.n && k < pc.k ?
			    wload(j * pc.k + k) : 0.0);
		}
		barrier();
		if (sg < 4u) {
			for (uint kk = 0u; kk < KT; kk += TK) {
				coopmat<float16_t, gl_ScopeSubgroup, TM, TK,
				    gl_MatrixUseA> a;
				coopMatLoad(a, xs, sg * TM * KT + kk, KT,
				    gl_CooperativeMatrixLayoutRowMajor);
				for (uint c = 0u; c < 4u; c++) {
					coopmat<float16_t, gl_ScopeSubgroup, TK,
					    TN, gl_MatrixUseB> b;
					/* B[k][n] = W[j0 + c TN + n][k]. */
					coopMatLoad(b, ws, c * TN * KT + kk, KT,
					    gl_CooperativeMatrixLayoutColumnMajor);
					acc[c] = coopMatMulAdd(a, b, acc[c]);
				}
			}
		}
		barrier();
	}
	if (sg < 4u)
		for (uint c = 0u; c < 4u; c++)
			coopMatStore(acc[c], cs, sg * TM * BN + c * TN, BN,
			    gl_CooperativeMatrixLayoutRowMajor);
	barrier();
	for (uint e = lid; e < BM * BN; e += nl) {
		uint i = i0 + e / BN, j = j0 + e % BN;
		if (i < pc.m && j < pc.n) {
			uint o = i * pc.ldy + pc.y_col + j;
			y[o] = pc.acc != 0u ? y[o] + cs[e] : cs[e];
		}
	}
}
