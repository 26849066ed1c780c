#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
/*
 * retrieve_coop.comp - memory read and gate on cooperative matrices
 * (GL_KHR_cooperative_matrix):
 *   A_mem = sigma(Q) M / (sigma(Q) . z + eps)     TM x HD per workgroup
 *   a = g first + (1 - g) second, g = sigmoid(beta[h])  (gate.comp's mix,
 *   in place over the local branch's output, as retrieve_texel.comp)
 *
 * A workgroup is one subgroup and serves TM consecutive batch rows of one
 * query head.  When they belong to one stream, sigma(Q) (f16) multiplies M
 * in slabs of KB rows staged as f16, accumulating in f32 in shared memory.
 * M grows with the stream under the linear update, so it is first scaled
 * by the power of two 2^-e that brings its largest magnitude into
 * [0.5, 1): exact in f32, it keeps M inside f16's range however long the
 * stream, and the quotient is unchanged because the denominator, formed in
 * f32 from sigma(q) and z, is scaled by the same 2^-e.  Rows of several
 * streams are served one by one in f32, lanes over output columns.
 *
 * Specialization as attention_coop.comp: 0 the subgroup size, 1 head_dim,
 * 2..4 the tile TM x TN x TK, 5 the slab depth KB (a multiple of TK).  The
 * dispatch is (ceil(n_rows / TM), nh, 1).
 */
layout(local_size_x_id = 0) in;
#include "common.glsl"
#include "retrieve_pc.h"
layout(constant_id = 1) const uint HD = 64;
layout(constant_id = 2) const uint TM = 16;
layout(constant_id = 3) const uint TN = 16;
layout(constant_id = 4) const uint TK = 16;
layout(constant_id = 5) const uint KB = 16;
layout(binding = 0, std430) readonly buffer Q { float q[]; };
layout(binding = 1, std430) readonly buffer Rows { uvec2 rows[]; };
layout(binding = 2, std430) readonly buffer M { float mem[]; };
layout(binding = 3, std430) readonly buffer Z { float z[]; };
layout(binding = 4, std430) readonly buffer Beta { float beta[]; };
layout(binding = 5, std430) buffer AD { float ad[]; };

shared float16_t sq[TM * HD];   /* sigma(q) rows [TM][HD] */
shared float16_t ms[KB * HD];   /* slab of 2^-e M [KB][HD] */
shared float os[TM * HD];       /* 2^-e sigma(q) M [TM][HD] */
shared float dn[TM];            /* sigma(q) . z + eps */

/* mix: the gated result for output element o of head h. */
void mix(uint o, uint h, float amem)
{
	float gt = sigmoid(beta[h]);
	float gm = pc.on_local != 0u ? 1.0 - gt : gt;
	ad[o] = gm * amem + (1.0 - gm) * ad[o];
}

/* one_row: batch row r alone, in f32, lanes over output columns. */
void one_row(uint r, uint h)
{
	uint lid = gl_LocalInvocationID.x, nl = gl_WorkGroupSize.x;
	uint g = h / (pc.nh / pc.nkv), slot = rows[r].x;
	uint qb = r * pc.ldq + h * HD;
	uint mb = slot * pc.m_stride + g * HD * HD;
	uint zb = slot * pc.z_stride + g * HD;
	float den = 0.0;

	for (uint a = lid; a < HD; a += nl)
		den += sigma(q[qb + a]) * z[zb + a];
	den = subgroupAdd(den) + pc.eps;
	for (uint b = lid; b < HD; b += nl) {
		float num = 0.0;
		for (uint a = 0u; a < HD; a++)
			num += sigma(q[qb + a]) * mem[mb + a * HD + b];
		mix((r * pc.nh + h) * HD + b, h, num / den);
	}
}

void main()
{
	uint lid = gl_LocalInvocationID.x, nl = gl_WorkGroupSize.x;
	uint r0 = gl_WorkGroupID.x * TM, h = gl_WorkGroupID.y;
	uint g = h / (pc.nh / pc.nkv);
	uint nr = min(TM, pc.n_rows - r0);
	uint slot = rows[r0].x;
	bool run = true;

	for (uint i = lid; i < nr; i += nl)
		run = run && rows[r0 + i].x == slot;
	if (subgroupAdd(run ? 0u : 1u) != 0u) {
		for (uint i = 0u; i < nr; i++)
			one_row(r0 + i, h);
		return;
	}

	uint mb = slot * pc.m_stride + g * HD * HD;
	uint zb = slot * pc.z_stride + g * HD;
	float mx = 0.0;
	for (uint e = lid; e < HD * HD; e += nl)
		mx = max(mx, abs(mem[mb + e]));
	mx = subgroupMax(mx);
	int ex = 0;
	if (mx > 0.0 && !isinf(mx))
		frexp(mx, ex);

	for (uint e = lid; e < TM * HD; e += nl) {
		uint i = e / HD;
		sq[e] = float16_t(i < nr ?
		    sigma(q[(r0 + i) * pc.ldq + h * HD + e % HD]) : 0.0);
		os[e] = 0.0;
	}
	for (uint i = lid; i < nr; i += nl) {
		float d = 0.0;
		for (uint a = 0u; a < HD; a++)
			d += sigma(q[(r0 + i) * pc.ldq + h * HD + a]) * z[zb + a];
		dn[i] = d + pc.eps;
	}
	for (uint a0 = 0u; a0 < HD; a0 += KB) {
		for (uint e = lid; e < KB * HD; e += nl)
			ms[e] = float16_t(ldexp(mem[mb + a0 * HD + e], -ex));
		barrier();
		for (uint c = 0u; c < HD; c += TN) {
			coopmat<float, gl_ScopeSubgroup, TM, TN,
			    gl_MatrixUseAccumulator> acc;
			coopMatLoad(acc, os, c, HD,
			    gl_CooperativeMatrixLayoutRowMajor);
			for (uint n = 0u; n < KB; n += TK) {
				coopmat<float16_t, gl_ScopeSubgroup, TM, TK,
				    gl_MatrixUseA> a;
				coopmat<float16_t, gl_ScopeSubgroup, TK, TN,
				    gl_MatrixUseB> b;
				coopMatLoad(a, sq, a0 + n, HD,
				    gl_CooperativeMatrixLayoutRowMajor);
				coopMatLoad(b, ms, n * HD + c, HD,
				    gl_CooperativeMatrixLayoutRowMajor);
				acc = coopMatMulAdd(a, b, acc);
			}
			coopMatStore(acc, os, c, HD,
			    gl_CooperativeMatrixLayoutRowMajor);
		}
		barrier();
	}
	for (uint e = lid; e < nr * HD; e += nl) {
		uint i = e / HD;
		mix(((r0 + i) * pc.nh + h) * HD + e % HD, h,
		    os[e] / ldexp(dn[i], -ex));
	}
}
