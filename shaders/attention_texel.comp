#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_EXT_samplerless_texture_functions : require
/*
 * attention_texel.comp - the local (dot-product) branch for CPU Vulkan
 * drivers (llvmpipe): q, k and v are read as vec4 texels, and each
 * invocation serves a block of RB consecutive query rows of one head, so
 * every k and v texel fetched is used by RB rows (NOTES.md section 4: a
 * texelFetch costs tens of instructions there, an SSBO load hundreds).
 * Same maths as attention.comp: single pass, online softmax.
 *
 * Invocation id -> head h = id % nh, rows [RB (id / nh), +RB).  Rows of a
 * block that belong to different streams are served in turn: each pass
 * takes the rows sharing the lowest pending row's slot.  Rows past n_rows
 * are computed on clamped inputs and never stored.  Needs hd % 4 == 0.
 * Build-time define RB (rows per invocation).
 */
#include "common.glsl"
#include "attention_pc.h"
#ifndef RB
#define RB 4
#endif
layout(local_size_x = 64) in;
layout(constant_id = 1) const uint HD = 64;
const uint H4 = HD / 4u;
layout(binding = 0) uniform textureBuffer QR;
layout(binding = 1, std430) readonly buffer Rows { uvec2 rows[]; };
layout(binding = 2) uniform textureBuffer KC;
layout(binding = 3) uniform textureBuffer VC;
layout(binding = 4, std430) writeonly buffer O { vec4 o[]; };

void main()
{
	uint id = flat_id();
	uint nblk = (pc.n_rows + RB - 1u) / RB;
	if (id >= nblk * pc.nh)
		return;
	uint h = id % pc.nh, r0 = (id / pc.nh) * RB;
	uint g = h / (pc.nh / pc.nkv);
	uint nr = min(RB, pc.n_rows - r0);
	uint pending = (1u << nr) - 1u;
	vec4 q[RB][H4], acc[RB][H4];
	float m[RB], l[RB];
	uint pos[RB];

	while (pending != 0u) {
		uint slot = rows[r0 + uint(findLSB(pending))].x;
		uint mask = 0u, tmax = 0u;
		[[unroll]] for (uint i = 0u; i < RB; i++) {
			uint r = min(r0 + i, pc.n_rows - 1u);
			uvec2 rw = rows[r];
			bool on = ((pending >> i) & 1u) != 0u && rw.x == slot;
			pos[i] = on ? rw.y : 0u;
			if (on) {
				mask |= 1u << i;
				tmax = max(tmax, rw.y);
			}
			int qb = int((r * pc.nh + h) * H4);
			[[unroll]] for (uint c = 0u; c < H4; c++) {
				q[i][c] = texelFetch(QR, qb + int(c)) * pc.scale;
				acc[i][c] = vec4(0.0);
			}
			m[i] = -1.0 / 0.0;
			l[i] = 0.0;
		}
		pending &= ~mask;

		int kb = int((slot * pc.slot_stride + g * pc.seg * HD) / 4u);
		for (uint t = 0u; t <= tmax; t++) {
			int kt = kb + int(t * H4);
			vec4 kv[H4];
			[[unroll]] for (uint c = 0u; c < H4; c++)
				kv[c] = texelFetch(KC, kt + int(c));
			float p[RB], corr[RB];
			[[unroll]] for (uint i = 0u; i < RB; i++) {
				vec4 s4 = vec4(0.0);
				[[unroll]] for (uint c = 0u; c < H4; c++)
					s4 += q[i][c] * kv[c];
				float s = t <= pos[i] ? s4.x + s4.y + s4.z + s4.w :
				    -1.0 / 0.0;
				float mn = max(m[i], s);
				corr[i] = exp(m[i] - mn);
				p[i] = exp(s - mn);
				l[i] = l[i] * corr[i] + p[i];
				m[i] = mn;
			}
			[[unroll]] for (uint c = 0u; c < H4; c++)
				kv[c] = texelFetch(VC, kt + int(c));
			[[unroll]] for (uint i = 0u; i < RB; i++)
				[[unroll]] for (uint c = 0u; c < H4; c++)
					acc[i][c] = acc[i][c] * corr[i] + p[i] * kv[c];
		}
		[[unroll]] for (uint i = 0u; i < RB; i++) {
			if (((mask >> i) & 1u) == 0u)
				continue;
			float inv = 1.0 / l[i];
			uint ob = ((r0 + i) * pc.nh + h) * H4;
			[[unroll]] for (uint c = 0u; c < H4; c++)
				o[ob + c] = acc[i][c] * inv;
		}
	}
}
