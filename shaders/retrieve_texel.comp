#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_EXT_samplerless_texture_functions : require
/*
 * retrieve_texel.comp - memory read and gate in one pass, for CPU Vulkan
 * drivers (llvmpipe): q, M and z are read as vec4 texels and each
 * invocation keeps an RB rows x 16 columns block of sigma(q) M in
 * registers, so one M texel serves RB rows.  The result is mixed straight
 * into the local branch's output (gate.comp's formula), in place:
 *   a = g first + (1 - g) second, g = sigmoid(beta[h]).
 *
 * Invocation id -> column block bq = id % NB (16 columns each), head
 * h = (id / NB) % nh, rows [RB (id / (NB nh)), +RB).  Rows of a block in
 * different streams are served in turn, as in attention_texel.comp.
 * Needs hd % 16 == 0.  Build-time define RB.
 */
#include "common.glsl"
#include "retrieve_pc.h"
#ifndef RB
#define RB 4
#endif
#define BB 4u   /* vec4 columns per invocation */
layout(local_size_x = 64) in;
layout(constant_id = 1) const uint HD = 64;
const uint H4 = HD / 4u;
const uint NB = H4 / BB;
layout(binding = 0) uniform textureBuffer Q;
layout(binding = 1, std430) readonly buffer Rows { uvec2 rows[]; };
layout(binding = 2) uniform textureBuffer M;
layout(binding = 3) uniform textureBuffer Z;
layout(binding = 4, std430) readonly buffer Beta { float beta[]; };
layout(binding = 5, std430) buffer AD { vec4 ad[]; };

vec4 sigma4(vec4 x)
{
	return vec4(sigma(x.x), sigma(x.y), sigma(x.z), sigma(x.w));
}

void main()
{
	uint id = flat_id();
	uint nblk = (pc.n_rows + RB - 1u) / RB;
	if (id >= nblk * pc.nh * NB)
		return;
	uint bq = id % NB, h = (id / NB) % pc.nh, r0 = (id / (NB * pc.nh)) * RB;
	uint g = h / (pc.nh / pc.nkv);
	uint nr = min(RB, pc.n_rows - r0);
	uint pending = (1u << nr) - 1u;
	float gt = sigmoid(beta[h]);
	float gm = pc.on_local != 0u ? 1.0 - gt : gt;
	int qb[RB];

	while (pending != 0u) {
		uint slot = rows[r0 + uint(findLSB(pending))].x;
		uint mask = 0u;
		[[unroll]] for (uint i = 0u; i < RB; i++) {
			uint r = min(r0 + i, pc.n_rows - 1u);
			bool on = ((pending >> i) & 1u) != 0u && rows[r].x == slot;
			if (on)
				mask |= 1u << i;
			qb[i] = int((r * pc.ldq + h * HD) / 4u);
		}
		pending &= ~mask;

		int mb = int((slot * pc.m_stride + g * HD * HD) / 4u + bq * BB);
		int zb = int((slot * pc.z_stride + g * HD) / 4u);
		vec4 num[RB][BB];
		float den[RB];
		[[unroll]] for (uint i = 0u; i < RB; i++) {
			den[i] = 0.0;
			[[unroll]] for (uint j = 0u; j < BB; j++)
				num[i][j] = vec4(0.0);
		}
		for (uint a4 = 0u; a4 < H4; a4++) {
			vec4 zz = texelFetch(Z, zb + int(a4));
			vec4 sq[RB];
			[[unroll]] for (uint i = 0u; i < RB; i++) {
				sq[i] = sigma4(texelFetch(Q, qb[i] + int(a4)));
				den[i] += dot(sq[i], zz);
			}
			[[unroll]] for (uint e = 0u; e < 4u; e++) {
				int ma = mb + int((4u * a4 + e) * H4);
				vec4 mv[BB];
				[[unroll]] for (uint j = 0u; j < BB; j++)
					mv[j] = texelFetch(M, ma + int(j));
				[[unroll]] for (uint i = 0u; i < RB; i++)
					[[unroll]] for (uint j = 0u; j < BB; j++)
						num[i][j] += sq[i][e] * mv[j];
			}
		}
		[[unroll]] for (uint i = 0u; i < RB; i++) {
			if (((mask >> i) & 1u) == 0u)
				continue;
			float inv = 1.0 / (den[i] + pc.eps);
			uint ob = ((r0 + i) * pc.nh + h) * H4 + bq * BB;
			[[unroll]] for (uint j = 0u; j < BB; j++) {
				vec4 loc = ad[ob + j];
				vec4 mem = num[i][j] * inv;
				ad[ob + j] = gm * mem + (1.0 - gm) * loc;
			}
		}
	}
}
