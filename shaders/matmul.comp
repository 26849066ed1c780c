#version 450
#extension GL_GOOGLE_include_directive : require
/* matmul.comp - the portable variant: 16x16 output tiles, both operands
 * staged through shared memory, fp32 accumulation.  Correct on any device;
 * faster device-specific variants live beside it. */
#define WBIND 1
#include "common.glsl"
#include "matmul_pc.h"
layout(local_size_x = 16, local_size_y = 16) in;
layout(binding = 0, std430) readonly buffer X { float x[]; };
layout(binding = 2, std430) buffer Y { float y[]; };
shared float xs[16][17];
shared float ws[16][17];

void main()
{
	uint tx = gl_LocalInvocationID.x, ty = gl_LocalInvocationID.y;
	uint j = gl_WorkGroupID.x * 16u + tx;   /* output column */
	uint i = gl_WorkGroupID.y * 16u + ty;   /* output row */
	uint wrow = gl_WorkGroupID.x * 16u + ty;
	float s = 0.0;
	for (uint k0 = 0u; k0 < pc.k; k0 += 16u) {
		uint kk = k0 + tx;
		xs[ty][tx] = (i < pc.m && kk < pc.k) ? x[i * pc.ldx + kk] : 0.0;
		ws[ty][tx] = (wrow < pc.n && kk < pc.k) ? wload(wrow * pc.k + kk) : 0.0;
		barrier();
		for (uint q = 0u; q < 16u; q++)
			s += xs[ty][q] * ws[tx][q];
		barrier();
	}
	if (i < pc.m && j < pc.n) {
		uint o = i * pc.ldy + pc.y_col + j;
		y[o] = pc.acc != 0u ? y[o] + s : s;
	}
}
