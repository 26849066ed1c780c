/*
 * common.glsl - helpers shared by the kernels: flat invocation ids over 2-D
 * dispatches, the memory feature map sigma, and weight loads for each
 * storage dtype (selected by W_F32 / W_F16 / W_BF16 / W_Q8_0 / W_Q4_0 at
 * build time).
 */
#ifndef COMMON_GLSL
#define COMMON_GLSL

/* Host code splits large 1-D grids into (x, y) because groupCount.x is
 * limited; this recovers the flat index. */
uint flat_id()
{
	return gl_GlobalInvocationID.x +
	    gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
}

/* sigma(x) = ELU(x) + 1: positive, so retrieval denominators stay > 0. */
float sigma(float x)
{
	return x > 0.0 ? x + 1.0 : exp(x);
}

float sigmoid(float x)
{
	return 1.0 / (1.0 + exp(-x));
}

#ifdef WBIND
#if defined(W_F32)
layout(binding = WBIND, std430) readonly buffer WBuf { float wbuf[]; };
float wload(uint i) { return wbuf[i]; }
#else
layout(binding = WBIND, std430) readonly buffer WBuf { uint wbuf[]; };
#if defined(W_F16)
float wload(uint i)
{
	vec2 v = unpackHalf2x16(wbuf[i >> 1]);
	return (i & 1u) != 0u ? v.y : v.x;
}
#elif defined(W_BF16)
float wload(uint i)
{
	uint u = wbuf[i >> 1];
	return uintBitsToFloat((i & 1u) != 0u ? (u & 0xffff0000u) : (u << 16));
}
#elif defined(W_Q8_0) || defined(W_Q4_0)
/* Block dtypes in their device layout (daemon/engine/quant.h): quants in
 * WBuf, one f32 scale per 32 values in SBuf at binding SBIND.  Rows are
 * whole blocks, so value i's block is i / 32 across rows too. */
layout(binding = SBIND, std430) readonly buffer SBuf { float sbuf[]; };
#if defined(W_Q8_0)
float wload(uint i)
{
	int q = bitfieldExtract(int(wbuf[i >> 2]), int((i & 3u) * 8u), 8);
	return float(q) * sbuf[i >> 5];
}
#else
float wload(uint i)
{
	uint q = bitfieldExtract(wbuf[i >> 3], int((i & 7u) * 4u), 4);
	return (float(q) - 8.0) * sbuf[i >> 5];
}
#endif
#else
#error "define W_F32, W_F16, W_BF16, W_Q8_0 or W_Q4_0"
#endif
#endif
#endif

#endif
