#version 450
#extension GL_GOOGLE_include_directive : require
/* attention.comp - local (dot-product) branch, one invocation per
 * (row, head), single pass with an online softmax: a running max m and sum l
 * rescale the accumulator whenever a larger score arrives, so scores are never
 * stored.  Query head h reads kv head h / (nh / nkv). */
#include "common.glsl"
#include "attention_pc.h"
layout(local_size_x = 64) in;
layout(constant_id = 1) const uint HD = 64;
layout(binding = 0, std430) readonly buffer QR { float qr[]; };
layout(binding = 1, std430) readonly buffer Rows { uvec2 rows[]; };
layout(binding = 2, std430) readonly buffer KC { float kc[]; };
layout(binding = 3, std430) readonly buffer VC { float vc[]; };
layout(binding = 4, std430) writeonly buffer O { float o[]; };

void main()
{
	uint id = flat_id();
	if (id >= pc.n_rows * pc.nh)
		return;
	uint h = id % pc.nh, r = id / pc.nh;
	uint g = h / (pc.nh / pc.nkv);
	uint slot = rows[r].x, pos = rows[r].y;
	uint qb = r * pc.nh * HD + h * HD;
	uint kb = slot * pc.slot_stride + g * pc.seg * HD;
	float q[HD], acc[HD];
	for (uint c = 0u; c < HD; c++) {
		q[c] = qr[qb + c] * pc.scale;
		acc[c] = 0.0;
	}
	float m = -1.0 / 0.0, l = 0.0;
	for (uint t = 0u; t <= pos; t++) {
		uint kt = kb + t * HD;
		float s = 0.0;
		for (uint c = 0u; c < HD; c++)
			s += q[c] * kc[kt + c];
		float mn = max(m, s);
		float corr = exp(m - mn), p = exp(s - mn);
		l = l * corr + p;
		for (uint c = 0u; c < HD; c++)
			acc[c] = acc[c] * corr + p * vc[kt + c];
		m = mn;
	}
	float inv = 1.0 / l;
	for (uint c = 0u; c < HD; c++)
		o[qb + c] = acc[c] * inv;
}
