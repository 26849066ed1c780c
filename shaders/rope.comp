#version 450
#extension GL_GOOGLE_include_directive : require
/* rope.comp - one invocation per (row, head, rotation pair).  Heads
 * [0, nh) are queries, [nh, nh+nkv) keys, [nh+nkv, nh+2nkv) values. */
#include "common.glsl"
#include "rope_pc.h"
layout(local_size_x = 64) in;
layout(binding = 0, std430) readonly buffer QKV { float qkv[]; };
layout(binding = 1, std430) readonly buffer Rows { uvec2 rows[]; };
layout(binding = 2, std430) writeonly buffer QR { float qr[]; };
layout(binding = 3, std430) writeonly buffer KC { float kc[]; };
layout(binding = 4, std430) writeonly buffer VC { float vc[]; };
layout(binding = 5, std430) writeonly buffer KM { float km[]; };

void main()
{
	uint half_hd = pc.hd / 2u;
	uint nheads = pc.nh + 2u * pc.nkv;
	uint id = flat_id();
	if (id >= pc.n_rows * nheads * half_hd)
		return;
	uint i = id % half_hd;
	uint h = (id / half_hd) % nheads;
	uint r = id / (half_hd * nheads);
	uint slot = rows[r].x, pos = rows[r].y;
	uint src = r * nheads * pc.hd + h * pc.hd;
	float x1 = qkv[src + i], x2 = qkv[src + i + half_hd];

	if (h >= pc.nh + pc.nkv) {
		uint g = h - pc.nh - pc.nkv;
		uint dst = slot * pc.slot_stride + (g * pc.seg + pos) * pc.hd;
		vc[dst + i] = x1;
		vc[dst + i + half_hd] = x2;
		return;
	}
	float y1 = x1, y2 = x2;
	if (pc.rope != 0u) {
		/* theta^(-2i/hd), evaluated as exp2 for a single rounding. */
		float f = exp2(-2.0 * float(i) / float(pc.hd) * log2(pc.theta));
		float a = float(pos) * f;
		float c = cos(a), s = sin(a);
		y1 = x1 * c - x2 * s;
		y2 = x2 * c + x1 * s;
	}
	if (h < pc.nh) {
		uint dst = r * pc.nh * pc.hd + h * pc.hd;
		qr[dst + i] = y1;
		qr[dst + i + half_hd] = y2;
	} else {
		uint g = h - pc.nh;
		uint dst = slot * pc.slot_stride + (g * pc.seg + pos) * pc.hd;
		kc[dst + i] = y1;
		kc[dst + i + half_hd] = y2;
		if (pc.store_kmem != 0u) {
			km[dst + i] = x1;
			km[dst + i + half_hd] = x2;
		}
	}
}
