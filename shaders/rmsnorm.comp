#version 450
#extension GL_GOOGLE_include_directive : require
/* rmsnorm.comp - one workgroup per row; a shared-memory tree sums squares. */
#include "common.glsl"
#include "rmsnorm_pc.h"
layout(local_size_x = 64) in;
layout(binding = 0, std430) readonly buffer X { float x[]; };
layout(binding = 1, std430) readonly buffer W { float w[]; };
layout(binding = 2, std430) writeonly buffer O { float o[]; };
shared float part[64];

void main()
{
	uint r = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
	uint t = gl_LocalInvocationID.x;
	if (r >= pc.n_rows)
		return;
	uint base = r * pc.n;
	float s = 0.0;
	for (uint c = t; c < pc.n; c += 64u)
		s += x[base + c] * x[base + c];
	part[t] = s;
	barrier();
	for (uint k = 32u; k > 0u; k >>= 1) {
		if (t < k)
			part[t] += part[t + k];
		barrier();
	}
	float inv = inversesqrt(part[0] / float(pc.n) + pc.eps);
	for (uint c = t; c < pc.n; c += 64u)
		o[base + c] = x[base + c] * inv * (pc.add_one + w[c]);
}
