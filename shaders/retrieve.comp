#version 450
#extension GL_GOOGLE_include_directive : require
/* retrieve.comp - memory read, one invocation per output element
 * (row, head, b).  The denominator is the dot product sigma(q) . z. */
#include "common.glsl"
#include "retrieve_pc.h"
layout(local_size_x = 64) in;
layout(binding = 0, std430) readonly buffer Q { float q[]; };
layout(binding = 1, std430) readonly buffer Rows { uvec2 rows[]; };
layout(binding = 2, std430) readonly buffer M { float mem[]; };
layout(binding = 3, std430) readonly buffer Z { float z[]; };
layout(binding = 4, std430) writeonly buffer O { float o[]; };

void main()
{
	uint id = flat_id();
	if (id >= pc.n_rows * pc.nh * pc.hd)
		return;
	uint b = id % pc.hd;
	uint h = (id / pc.hd) % pc.nh;
	uint r = id / (pc.hd * pc.nh);
	uint g = h / (pc.nh / pc.nkv);
	uint slot = rows[r].x;
	uint qb = r * pc.ldq + h * pc.hd;
	uint mb = slot * pc.m_stride + g * pc.hd * pc.hd;
	uint zb = slot * pc.z_stride + g * pc.hd;
	float num = 0.0, den = 0.0;
	for (uint a = 0u; a < pc.hd; a++) {
		float s = sigma(q[qb + a]);
		num += s * mem[mb + a * pc.hd + b];
		den += s * z[zb + a];
	}
	o[r * pc.nh * pc.hd + h * pc.hd + b] = num / (den + pc.eps);
}
