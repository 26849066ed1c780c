#version 450
#extension GL_GOOGLE_include_directive : require
/* rmsnorm.comp - one workgroup per row, vec4 loads (the engine requires
 * n % 4 == 0).  The portable build sums squares with a shared-memory tree;
 * with SUBGROUP defined (the variant the engine takes wherever the device
 * has subgroup arithmetic: on CPU drivers every barrier switches
 * coroutines, on GPUs each one stalls the workgroup) each subgroup reduces
 * with subgroupAdd and one barrier joins the gl_NumSubgroups partial
 * sums. */
#ifdef SUBGROUP
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif
#include "common.glsl"
#include "rmsnorm_pc.h"
layout(local_size_x = 64) in;
layout(binding = 0, std430) readonly buffer X { vec4 x[]; };
layout(binding = 1, std430) readonly buffer W { vec4 w[]; };
layout(binding = 2, std430) writeonly buffer O { vec4 o[]; };
shared float part[64];

void main()
{
	uint r = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
	uint t = gl_LocalInvocationID.x;
	if (r >= pc.n_rows)
		return;
	uint n4 = pc.n / 4u, base = r * n4;
	float s = 0.0;
	for (uint c = t; c < n4; c += 64u) {
		vec4 v = x[base + c];
		s += dot(v, v);
	}
#ifdef SUBGROUP
	s = subgroupAdd(s);
	if (subgroupElect())
		part[gl_SubgroupID] = s;
	barrier();
	float sum = 0.0;
	for (uint k = 0u; k < gl_NumSubgroups; k++)
		sum += part[k];
#else
	part[t] = s;
	barrier();
	for (uint k = 32u; k > 0u; k >>= 1) {
		if (t < k)
			part[t] += part[t + k];
		barrier();
	}
	float sum = part[0];
#endif
	float inv = inversesqrt(sum / float(pc.n) + pc.eps);
	for (uint c = t; c < n4; c += 64u)
		o[base + c] = x[base + c] * inv * (pc.add_one + w[c]);
}
