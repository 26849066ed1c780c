#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
/* matmul.comp - the portable variant: each 16x16 workgroup computes a 64x64
 * output tile, each invocation 4x4 outputs strided by 16, from 64 x 16 slabs
 * of X and W staged through shared memory; fp32 accumulation.  Correct on
 * any device and the usual shape for real GPUs; CPU drivers get
 * matmul_texel.comp instead.  Rows past m or n load zeros and are not
 * stored. */
#define WBIND 1
#define SBIND 3   /* block scales, for W_Q8_0 / W_Q4_0 */
#include "common.glsl"
#include "matmul_pc.h"
layout(local_size_x = 16, local_size_y = 16) in;
layout(binding = 0, std430) readonly buffer X { float x[]; };
layout(binding = 2, std430) buffer Y { float y[]; };
shared float xs[64][17];
shared float ws[64][17];

void main()
{
	uint tx = gl_LocalInvocationID.x, ty = gl_LocalInvocationID.y;
	uint j0 = gl_WorkGroupID.x * 64u;   /* first output column (W row) */
	uint i0 = gl_WorkGroupID.y * 64u;   /* first output row */
	float acc[4][4];
	[[unroll]] for (uint r = 0u; r < 4u; r++)
		[[unroll]] for (uint c = 0u; c < 4u; c++)
			acc[r][c] = 0.0;
	for (uint k0 = 0u; k0 < pc.k; k0 += 16u) {
		uint kk = k0 + tx;
		[[unroll]] for (uint q = 0u; q < 4u; q++) {
			uint i = i0 + ty + 16u * q, j = j0 + ty + 16u * q;
			xs[ty + 16u * q][tx] = (i < pc.m && kk < pc.k) ?
			    x[i * pc.ldx + kk] : 0.0;
			ws[ty + 16u * q][tx] = (j < pc.n && kk < pc.k) ?
			    wload(j * pc.k + kk) : 0.0;
		}
		barrier();
		[[unroll]] for (uint q = 0u; q < 16u; q++) {
			float a[4], b[4];
			[[unroll]] for (uint r = 0u; r < 4u; r++)
				a[r] = xs[ty + 16u * r][q];
			[[unroll]] for (uint c = 0u; c < 4u; c++)
				b[c] = ws[tx + 16u * c][q];
			[[unroll]] for (uint r = 0u; r < 4u; r++)
				[[unroll]] for (uint c = 0u; c < 4u; c++)
					acc[r][c] += a[r] * b[c];
		}
		barrier();
	}
	[[unroll]] for (uint r = 0u; r < 4u; r++) {
		uint i = i0 + ty + 16u * r;
		[[unroll]] for (uint c = 0u; c < 4u; c++) {
			uint j = j0 + tx + 16u * c;
			if (i < pc.m && j < pc.n) {
				uint o = i * pc.ldy + pc.y_col + j;
				y[o] = pc.acc != 0u ? y[o] + acc[r][c] :
				    acc[r][c];
			}
		}
	}
}
