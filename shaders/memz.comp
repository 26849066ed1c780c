#version 450
#extension GL_GOOGLE_include_directive : require
/* memz.comp - z += sum_t sigma(K_t), one invocation per (a, kv head,
 * stream); runs after memupd.comp has read the old z. */
#include "common.glsl"
#include "memupd_pc.h"
layout(local_size_x = 64) in;
layout(binding = 0, std430) readonly buffer K { float k[]; };
layout(binding = 1, std430) buffer Z { float z[]; };
layout(binding = 2, std430) readonly buffer Slots { uint slots[]; };

void main()
{
	uint id = flat_id();
	if (id >= pc.n_slots * pc.nkv * pc.hd)
		return;
	uint a = id % pc.hd;
	uint g = (id / pc.hd) % pc.nkv;
	uint slot = slots[id / (pc.hd * pc.nkv)];
	uint kb = slot * pc.kv_stride + g * pc.seg * pc.hd;
	float sum = 0.0;
	for (uint t = 0u; t < pc.seg; t++)
		sum += sigma(k[kb + t * pc.hd + a]);
	z[slot * pc.z_stride + g * pc.hd + a] += sum;
}
