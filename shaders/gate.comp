#version 450
#extension GL_GOOGLE_include_directive : require
/* gate.comp - per-head mix of the memory and local branches, in place over
 * the local branch's output. */
#include "common.glsl"
#include "gate_pc.h"
layout(local_size_x = 64) in;
layout(binding = 0, std430) readonly buffer AM { float amem[]; };
layout(binding = 1, std430) readonly buffer Beta { float beta[]; };
layout(binding = 2, std430) buffer AD { float a[]; };

void main()
{
	uint id = flat_id();
	if (id >= pc.n_rows * pc.nh * pc.hd)
		return;
	uint h = (id / pc.hd) % pc.nh;
	float g = sigmoid(beta[h]);
	float mem = amem[id], loc = a[id];
	a[id] = pc.on_local != 0u ? g * loc + (1.0 - g) * mem
	                          : g * mem + (1.0 - g) * loc;
}
