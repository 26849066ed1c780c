#version 450
#extension GL_GOOGLE_include_directive : require
/* rope_v4.comp - rope.comp with four rotation pairs per invocation, read
 * and written as vec4s (fewer, wider loads: what llvmpipe prefers, and no
 * worse elsewhere).  Needs hd % 8 == 0; the engine uses rope.comp
 * otherwise.  Invocation id -> (row, head, pairs 4j..4j+3). */
#include "common.glsl"
#include "rope_pc.h"
layout(local_size_x = 64) in;
layout(binding = 0, std430) readonly buffer QKV { vec4 qkv[]; };
layout(binding = 1, std430) readonly buffer Rows { uvec2 rows[]; };
layout(binding = 2, std430) writeonly buffer QR { vec4 qr[]; };
layout(binding = 3, std430) writeonly buffer KC { vec4 kc[]; };
layout(binding = 4, std430) writeonly buffer VC { vec4 vc[]; };
layout(binding = 5, std430) writeonly buffer KM { vec4 km[]; };

void main()
{
	uint h4 = pc.hd / 4u, q4 = pc.hd / 8u;   /* vec4s per head, half */
	uint nheads = pc.nh + 2u * pc.nkv;
	uint id = flat_id();
	if (id >= pc.n_rows * nheads * q4)
		return;
	uint j = id % q4;
	uint h = (id / q4) % nheads;
	uint r = id / (q4 * nheads);
	uint slot = rows[r].x, pos = rows[r].y;
	uint src = (r * nheads + h) * h4 + j;
	vec4 x1 = qkv[src], x2 = qkv[src + q4];

	if (h >= pc.nh + pc.nkv) {
		uint g = h - pc.nh - pc.nkv;
		uint dst = (slot * pc.slot_stride + (g * pc.seg + pos) * pc.hd) /
		    4u + j;
		vc[dst] = x1;
		vc[dst + q4] = x2;
		return;
	}
	vec4 y1 = x1, y2 = x2;
	if (pc.rope != 0u) {
		/* theta^(-2i/hd), evaluated as exp2 for a single rounding. */
		vec4 i = vec4(4u * j) + vec4(0.0, 1.0, 2.0, 3.0);
		vec4 f = exp2(-2.0 * i / float(pc.hd) * log2(pc.theta));
		vec4 a = float(pos) * f;
		vec4 c = cos(a), s = sin(a);
		y1 = x1 * c - x2 * s;
		y2 = x2 * c + x1 * s;
	}
	if (h < pc.nh) {
		uint dst = (r * pc.nh + h) * h4 + j;
		qr[dst] = y1;
		qr[dst + q4] = y2;
	} else {
		uint g = h - pc.nh;
		uint dst = (slot * pc.slot_stride + (g * pc.seg + pos) * pc.hd) /
		    4u + j;
		kc[dst] = y1;
		kc[dst + q4] = y2;
		if (pc.store_kmem != 0u) {
			km[dst] = x1;
			km[dst + q4] = x2;
		}
	}
}
