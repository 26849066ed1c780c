#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
/*
 * attention_coop.comp - the local (dot-product) branch on cooperative
 * matrices (GL_KHR_cooperative_matrix), flash-attention style: scores and
 * probabilities of one block of keys at a time, an online softmax, and an
 * output that is rescaled as the running maximum grows, so no row of scores
 * is ever stored whole.
 *
 * A workgroup is one subgroup and serves TM consecutive batch rows of one
 * query head.  When those rows are consecutive positions of one stream, as
 * every prefill chunk's are, it runs per block of KB keys:
 *   S = (q / sqrt(d)) K^T          TM x KB, f16 x f16 -> f32
 *   m' = max(m, rowmax S); c = exp(m - m'); P = exp(S - m') (causal mask)
 *   l = c l + rowsum P;  O = c O + P V    TM x HD, f16 x f16 -> f32
 * and writes O / l.  Q (scaled), K, V and P enter the products as f16
 * (rounded to nearest); m, l, S and O stay f32.  O lives in shared memory
 * (KHR cooperative matrices cannot scale rows of an accumulator): all lanes
 * rescale it, then it is loaded into accumulators for each product and
 * stored back.
 *
 * Rows of several streams, as a decode batch brings, are served one by
 * one in f32: lanes split head_dim, and subgroupAdd forms each score.
 *
 * Specialization: 0 the subgroup size (the workgroup), 1 head_dim (a
 * multiple of TN and TK), 2..4 the device's tile TM x TN x TK, 5 the key
 * block KB (a multiple of TN and TK).  The dispatch is
 * (ceil(n_rows / TM), nh, 1).
 */
layout(local_size_x_id = 0) in;
#include "common.glsl"
#include "attention_pc.h"
layout(constant_id = 1) const uint HD = 64;
layout(constant_id = 2) const uint TM = 16;
layout(constant_id = 3) const uint TN = 16;
layout(constant_id = 4) const uint TK = 16;
layout(constant_id = 5) const uint KB = 16;
layout(binding = 0, std430) readonly buffer QR { float qr[]; };
layout(binding = 1, std430) readonly buffer Rows { uvec2 rows[]; };
layout(binding = 2, std430) readonly buffer KC { float kc[]; };
layout(binding = 3, std430) readonly buffer VC { float vc[]; };
layout(binding = 4, std430) writeonly buffer O { float o[]; };

shared float16_t qs[TM * HD];   /* scaled query rows [TM][HD] */
shared float16_t ks[KB * HD];   /* key block [KB][HD] */
shared float16_t vs[KB * HD];   /* value block [KB][HD] */
shared float ss[TM * KB];       /* scores [TM][KB] */
shared float16_t ps[TM * KB];   /* probabilities [TM][KB] */
shared float os[TM * HD];       /* output accumulator [TM][HD] */
shared float ml[3u * TM];       /* running max, sum, rescale per row */

/* one_row: attention of batch row r alone, in f32 (the portable kernel's
 * online softmax, with head_dim split over the lanes); os row 0 holds the
 * accumulator. */
void one_row(uint r, uint h)
{
	uint lid = gl_LocalInvocationID.x, nl = gl_WorkGroupSize.x;
	uint g = h / (pc.nh / pc.nkv);
	uint slot = rows[r].x, pos = rows[r].y;
	uint qb = (r * pc.nh + h) * HD;
	uint kb = slot * pc.slot_stride + g * pc.seg * HD;
	float m = -1.0 / 0.0, l = 0.0;

	for (uint c = lid; c < HD; c += nl)
		os[c] = 0.0;
	for (uint t = 0u; t <= pos; t++) {
		float s = 0.0;
		for (uint c = lid; c < HD; c += nl)
			s += qr[qb + c] * kc[kb + t * HD + c];
		s = subgroupAdd(s) * pc.scale;
		float mn = max(m, s);
		float corr = exp(m - mn), p = exp(s - mn);
		l = l * corr + p;
		for (uint c = lid; c < HD; c += nl)
			os[c] = os[c] * corr + p * vc[kb + t * HD + c];
		m = mn;
	}
	for (uint c = lid; c < HD; c += nl)
		o[qb + c] = os[c] / l;
}

void main()
{
	uint lid = gl_LocalInvocationID.x, nl = gl_WorkGroupSize.x;
	uint r0 = gl_WorkGroupID.x * TM, h = gl_WorkGroupID.y;
	uint g = h / (pc.nh / pc.nkv);
	uint nr = min(TM, pc.n_rows - r0);
	uvec2 first = rows[r0];
	bool run = true;

	for (uint i = lid; i < nr; i += nl)
		run = run && rows[r0 + i] == first + uvec2(0u, i);
	if (subgroupAdd(run ? 0u : 1u) != 0u) {
		for (uint i = 0u; i < nr; i++)
			one_row(r0 + i, h);
		return;
	}

	uint p0 = first.y, nkeys = p0 + nr;
	uint kb = first.x * pc.slot_stride + g * pc.seg * HD;
	for (uint e = lid; e < TM * HD; e += nl) {
		uint i = e / HD;
		qs[e] = float16_t(i < nr ?
		    qr[((r0 + i) * pc.nh + h) * HD + e % HD] * pc.scale : 0.0);
		os[e] = 0.0;
	}
	for (uint i = lid; i < TM; i += nl) {
		ml[2u * i] = -1.0 / 0.0;
		ml[2u * i + 1u] = 0.0;
	}
	for (uint t0 = 0u; t0 < nkeys; t0 += KB) {
		for (uint e = lid; e < KB * HD; e += nl) {
			uint t = t0 + e / HD, c = e % HD;
			bool in_seg = t < nkeys;
			ks[e] = float16_t(in_seg ? kc[kb + t * HD + c] : 0.0);
			vs[e] = float16_t(in_seg ? vc[kb + t * HD + c] : 0.0);
		}
		barrier();
		for (uint j = 0u; j < KB; j += TN) {
			coopmat<float, gl_ScopeSubgroup, TM, TN,
			    gl_MatrixUseAccumulator> s =
			    coopmat<float, gl_ScopeSubgroup, TM, TN,
			    gl_MatrixUseAccumulator>(0.0);
			for (uint c = 0u; c < HD; c += TK) {
				coopmat<float16_t, gl_ScopeSubgroup, TM, TK,
				    gl_MatrixUseA> a;
				coopmat<float16_t, gl_ScopeSubgroup, TK, TN,
				    gl_MatrixUseB> b;
				coopMatLoad(a, qs, c, HD,
				    gl_CooperativeMatrixLayoutRowMajor);
				/* B[c][n] = K[t0 + j + n][c] */
				coopMatLoad(b, ks, j * HD + c, HD,
				    gl_CooperativeMatrixLayoutColumnMajor);
				s = coopMatMulAdd(a, b, s);
			}
			coopMatStore(s, ss, j, KB,
			    gl_CooperativeMatrixLayoutRowMajor);
		}
		barrier();
		/* Each lane takes whole rows for the softmax step; then
		 * every lane rescales O. */
		for (uint i = lid; i < TM; i += nl) {
			float m = ml[2u * i], mn = m, sum = 0.0;
			uint last = i < nr ? p0 + i : 0u;   /* newest key seen */
			for (uint n = 0u; n < KB; n++)
				if (i < nr && t0 + n <= last)
					mn = max(mn, ss[i * KB + n]);
			for (uint n = 0u; n < KB; n++) {
				float16_t p = float16_t(i < nr && t0 + n <= last ?
				    exp(ss[i * KB + n] - mn) : 0.0);
				ps[i * KB + n] = p;
				sum += float(p);
			}
			float corr = mn == m ? 1.0 : exp(m - mn);
			ml[2u * i] = mn;
			ml[2u * i + 1u] = ml[2u * i + 1u] * corr + sum;
			ml[2u * TM + i] = corr;
		}
		barrier();
		for (uint e = lid; e < TM * HD; e += nl)
			os[e] *= ml[2u * TM + e / HD];
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
				coopMatLoad(a, ps, n, KB,
				    gl_CooperativeMatrixLayoutRowMajor);
				/* B[n][c] = V[t0 + n][c] */
				coopMatLoad(b, vs, n * HD + c, HD,
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
		o[((r0 + i) * pc.nh + h) * HD + e % HD] = os[e] / ml[2u * i + 1u];
	}
}
