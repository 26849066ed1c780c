#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_EXT_samplerless_texture_functions : require
/*
 * matmul_texel.comp - the variant for CPU Vulkan drivers (llvmpipe): X and
 * W are read as vec4 texels (texelFetch), each invocation keeps an RM x RN
 * block of outputs in registers, and the K loop is split into "fetch a
 * whole slab of KS4 texels of every row, then one uninterrupted block of
 * multiply-adds", which is what llvmpipe turns into straight SIMD code
 * (SSBO and shared-memory loads become per-lane loops there; see
 * NOTES.md section 4).  Only the x dimension of a workgroup is vectorised.
 *
 * Invocation (lx, ly) of group (gx, gy) owns W rows j = (gx LX + lx) RN + c
 * and X rows i = (gy LY + ly) RM + r.  Rows past m or n are clamped for
 * loading and skipped for storing, so any m, n work; k is a multiple of 4.
 * Build-time defines: RM, RN, KS4 (texels per slab), LX, LY, and the weight
 * dtype W_F32 (RGBA32F view), W_F16 (RGBA16F view), W_BF16 (RG32UI view,
 * each texel unpacked to four bf16), W_Q8_0 or W_Q4_0 (RGBA32UI view of
 * the quants, a block in 2 or 1 texels, and an R32F view of the per-block
 * scales at binding 3).
 */
#include "matmul_pc.h"

#ifndef RM
#define RM 16
#endif
#ifndef RN
#define RN 8
#endif
#ifndef KS4
#define KS4 2
#endif
#ifndef LX
#define LX 8
#endif
#ifndef LY
#define LY 2
#endif

layout(local_size_x = LX, local_size_y = LY) in;
layout(binding = 0) uniform textureBuffer X;
#if defined(W_BF16)
layout(binding = 1) uniform utextureBuffer W;
vec4 wfetch(int i)
{
	uvec2 u = texelFetch(W, i).xy;
	return vec4(uintBitsToFloat(u.x << 16), uintBitsToFloat(u.x & 0xffff0000u),
	    uintBitsToFloat(u.y << 16), uintBitsToFloat(u.y & 0xffff0000u));
}
#elif defined(W_F32) || defined(W_F16)
layout(binding = 1) uniform textureBuffer W;
vec4 wfetch(int i) { return texelFetch(W, i); }
#elif defined(W_Q8_0) || defined(W_Q4_0)
/* Block dtypes: an RGBA32UI view, 16 bytes a texel, so a block of 32
 * values is WQT texels (Q8_0: 2, int8 each; Q4_0: 1, nibbles).  A block's
 * texels are fetched once per row and unpacked four values (one X texel)
 * at a time: fewer, wider fetches, which is what llvmpipe wants. */
layout(binding = 1) uniform utextureBuffer W;
#define WQ 1
#if defined(W_Q8_0)
#define WQT 2
vec4 q8(uint w)
{
	return vec4(ivec4(int(w) << 24, int(w) << 16, int(w) << 8, int(w)) >> 24);
}
/* values 4t..4t+3 of a block held in a[0..WQT) */
#define WUNPACK(a, t) q8((a)[(t) >> 2][(t) & 3])
#else
#define WQT 1
vec4 q4(uint h)
{
	return vec4(float(h & 15u), float((h >> 4) & 15u),
	    float((h >> 8) & 15u), float((h >> 12) & 15u)) - 8.0;
}
#define WUNPACK(a, t) q4((a)[0][(t) >> 1] >> (((t) & 1) * 16))
#endif
#else
#error "define W_F32, W_F16, W_BF16, W_Q8_0 or W_Q4_0"
#endif
#ifdef WQ
/* One f32 scale per block of 32 values (8 texels), R32_SFLOAT. */
layout(binding = 3) uniform textureBuffer S;
#endif
layout(binding = 2, std430) buffer Y { float y[]; };

void main()
{
	int m = int(pc.m), n = int(pc.n), k4 = int(pc.k) >> 2;
	int i0 = int(gl_GlobalInvocationID.y) * RM;
	int j0 = int(gl_GlobalInvocationID.x) * RN;
	if (i0 >= m || j0 >= n)
		return;
	int xb[RM], wb[RN];
	[[unroll]] for (int r = 0; r < RM; r++)
		xb[r] = min(i0 + r, m - 1) * int(pc.ldx >> 2);
	[[unroll]] for (int c = 0; c < RN; c++)
		wb[c] = min(j0 + c, n - 1) * k4;

	float acc[RM][RN];
	[[unroll]] for (int r = 0; r < RM; r++)
		[[unroll]] for (int c = 0; c < RN; c++)
			acc[r][c] = 0.0;

	int kq = 0;
#ifdef WQ
	/* k is whole blocks (8 X texels), and KS4 divides 8: per block, fetch
	 * each row's scale and quant texels once, then run the block's slabs
	 * with the weights unpacked and scaled from registers. */
	int sb[RN], wq0[RN];
	[[unroll]] for (int c = 0; c < RN; c++) {
		sb[c] = min(j0 + c, n - 1) * (k4 >> 3);
		wq0[c] = sb[c] * WQT;
	}
	for (int kb = 0; kb < k4; kb += 8) {
		int blk = kb >> 3;
		float sc[RN];
		uvec4 wq[RN][WQT];
		[[unroll]] for (int c = 0; c < RN; c++) {
			sc[c] = texelFetch(S, sb[c] + blk).x;
			[[unroll]] for (int h = 0; h < WQT; h++)
				wq[c][h] = texelFetch(W, wq0[c] + blk * WQT + h);
		}
		[[unroll]] for (int q = 0; q < 8; q += KS4) {
			vec4 xs[RM][KS4], ws[RN][KS4];
			[[unroll]] for (int r = 0; r < RM; r++)
				[[unroll]] for (int s = 0; s < KS4; s++)
					xs[r][s] = texelFetch(X, xb[r] + kb + q + s);
			[[unroll]] for (int c = 0; c < RN; c++)
				[[unroll]] for (int s = 0; s < KS4; s++)
					ws[c][s] = WUNPACK(wq[c], q + s) * sc[c];
			[[unroll]] for (int s = 0; s < KS4; s++)
				[[unroll]] for (int r = 0; r < RM; r++)
					[[unroll]] for (int c = 0; c < RN; c++)
						acc[r][c] += dot(xs[r][s], ws[c][s]);
		}
	}
#else
	for (; kq + KS4 <= k4; kq += KS4) {
		vec4 xs[RM][KS4], ws[RN][KS4];
		[[unroll]] for (int r = 0; r < RM; r++)
			[[unroll]] for (int s = 0; s < KS4; s++)
				xs[r][s] = texelFetch(X, xb[r] + kq + s);
		[[unroll]] for (int c = 0; c < RN; c++)
			[[unroll]] for (int s = 0; s < KS4; s++)
				ws[c][s] = wfetch(wb[c] + kq + s);
		[[unroll]] for (int s = 0; s < KS4; s++)
			[[unroll]] for (int r = 0; r < RM; r++)
				[[unroll]] for (int c = 0; c < RN; c++)
					acc[r][c] += dot(xs[r][s], ws[c][s]);
	}
	for (; kq < k4; kq++) {
		vec4 xs[RM], ws[RN];
		[[unroll]] for (int r = 0; r < RM; r++)
			xs[r] = texelFetch(X, xb[r] + kq);
		[[unroll]] for (int c = 0; c < RN; c++)
			ws[c] = wfetch(wb[c] + kq);
		[[unroll]] for (int r = 0; r < RM; r++)
			[[unroll]] for (int c = 0; c < RN; c++)
				acc[r][c] += dot(xs[r], ws[c]);
	}

#endif

	[[unroll]] for (int r = 0; r < RM; r++) {
		if (i0 + r >= m)
			break;
		int o = (i0 + r) * int(pc.ldy) + int(pc.y_col) + j0;
		[[unroll]] for (int c = 0; c < RN; c++) {
			if (j0 + c < n)
				y[o + c] = pc.acc != 0u ? y[o + c] + acc[r][c] :
				    acc[r][c];
		}
	}
}
