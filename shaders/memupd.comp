#version 450
#extension GL_GOOGLE_include_directive : require
/* memupd.comp - one workgroup per (column b, kv head, stream).  Phase 1
 * computes the column's per-token values (v_t[b], minus the delta rule's
 * retrieval) into shared memory; phase 2 accumulates M[a][b] over tokens.
 * Every read of the old column happens before the barrier that precedes
 * the write, and no other workgroup touches column b. */
#include "common.glsl"
#include "memupd_pc.h"
layout(local_size_x = 64) in;
layout(binding = 0, std430) readonly buffer K { float k[]; };
layout(binding = 1, std430) readonly buffer V { float v[]; };
layout(binding = 2, std430) buffer M { float mem[]; };
layout(binding = 3, std430) readonly buffer Z { float z[]; };
layout(binding = 4, std430) readonly buffer Slots { uint slots[]; };

#define CHUNK 1024u
#define MAXA 4u   /* hd <= 256 */
shared float diff[CHUNK];

void main()
{
	uint b = gl_WorkGroupID.x, g = gl_WorkGroupID.y, s = gl_WorkGroupID.z;
	uint tid = gl_LocalInvocationID.x;
	uint slot = slots[s];
	uint kb = slot * pc.kv_stride + g * pc.seg * pc.hd;
	uint mb = slot * pc.m_stride + g * pc.hd * pc.hd;
	uint zb = slot * pc.z_stride + g * pc.hd;
	float acc[MAXA];
	for (uint j = 0u; j < MAXA; j++)
		acc[j] = 0.0;

	for (uint t0 = 0u; t0 < pc.seg; t0 += CHUNK) {
		uint tn = min(CHUNK, pc.seg - t0);
		for (uint t = tid; t < tn; t += 64u) {
			uint row = kb + (t0 + t) * pc.hd;
			float val = v[row + b];
			if (pc.delta != 0u) {
				float num = 0.0, den = 0.0;
				for (uint a = 0u; a < pc.hd; a++) {
					float sk = sigma(k[row + a]);
					num += sk * mem[mb + a * pc.hd + b];
					den += sk * z[zb + a];
				}
				val -= num / (den + pc.eps);
			}
			diff[t] = val;
		}
		barrier();
		for (uint j = 0u; j < MAXA; j++) {
			uint a = tid + j * 64u;
			if (a >= pc.hd)
				break;
			float sum = 0.0;
			for (uint t = 0u; t < tn; t++)
				sum += sigma(k[kb + (t0 + t) * pc.hd + a]) * diff[t];
			acc[j] += sum;
		}
		barrier();
	}
	for (uint j = 0u; j < MAXA; j++) {
		uint a = tid + j * 64u;
		if (a < pc.hd)
			mem[mb + a * pc.hd + b] += acc[j];
	}
}
