#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_EXT_samplerless_texture_functions : require
/*
 * memupd_texel.comp - the linear memory update M += sigma(K)^T V for CPU
 * Vulkan drivers (llvmpipe): k and v are read as vec4 texels and each
 * invocation owns an 8 (a) x 16 (b) block of M in registers, so the
 * update is a small register-blocked GEMM over the segment's tokens.  The
 * delta rule keeps memupd.comp (every column reads all of the old M).
 * z is updated afterwards by memz.comp, as with memupd.comp.
 *
 * Invocation id -> b block id % NBB, a block (id / NBB) % NAB, kv head
 * (id / (NBB NAB)) % nkv, listed stream id / (NBB NAB nkv).  Needs
 * hd % 16 == 0.
 */
#include "common.glsl"
#include "memupd_pc.h"
layout(local_size_x = 64) in;
layout(constant_id = 1) const uint HD = 64;
const uint H4 = HD / 4u;
const uint NBB = HD / 16u;
const uint NAB = HD / 8u;
layout(binding = 0) uniform textureBuffer K;
layout(binding = 1) uniform textureBuffer V;
layout(binding = 2, std430) buffer Mem { vec4 mem[]; };
layout(binding = 3, std430) readonly buffer Slots { uint slots[]; };

vec4 sigma4(vec4 x)
{
	return vec4(sigma(x.x), sigma(x.y), sigma(x.z), sigma(x.w));
}

void main()
{
	uint id = flat_id();
	if (id >= pc.n_slots * pc.nkv * NAB * NBB)
		return;
	uint bb = id % NBB, ab = (id / NBB) % NAB;
	uint g = (id / (NBB * NAB)) % pc.nkv;
	uint slot = slots[id / (NBB * NAB * pc.nkv)];
	int kb = int((slot * pc.kv_stride + g * pc.seg * HD) / 4u);
	vec4 acc[8][4];
	[[unroll]] for (uint i = 0u; i < 8u; i++)
		[[unroll]] for (uint j = 0u; j < 4u; j++)
			acc[i][j] = vec4(0.0);
	for (uint t = 0u; t < pc.seg; t++) {
		int row = kb + int(t * H4);
		vec4 k0 = sigma4(texelFetch(K, row + int(2u * ab)));
		vec4 k1 = sigma4(texelFetch(K, row + int(2u * ab + 1u)));
		vec4 v[4];
		[[unroll]] for (uint j = 0u; j < 4u; j++)
			v[j] = texelFetch(V, row + int(4u * bb + j));
		[[unroll]] for (uint j = 0u; j < 4u; j++) {
			[[unroll]] for (uint e = 0u; e < 4u; e++) {
				acc[e][j] += k0[e] * v[j];
				acc[4u + e][j] += k1[e] * v[j];
			}
		}
	}
	uint mb = (slot * pc.m_stride + g * HD * HD) / 4u;
	[[unroll]] for (uint i = 0u; i < 8u; i++)
		[[unroll]] for (uint j = 0u; j < 4u; j++) {
			uint o = mb + (8u * ab + i) * H4 + 4u * bb + j;
			mem[o] += acc[i][j];
		}
}
