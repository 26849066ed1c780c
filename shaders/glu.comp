#version 450
#extension GL_GOOGLE_include_directive : require
/* glu.comp - SwiGLU / GeGLU activation, one invocation per four elements
 * (vec4 loads and stores; the engine requires inter % 4 == 0). */
#include "common.glsl"
#include "glu_pc.h"
layout(local_size_x = 64) in;
layout(binding = 0, std430) readonly buffer GU { vec4 gu[]; };
layout(binding = 1, std430) writeonly buffer H { vec4 h[]; };

/* erf by Abramowitz-Stegun 7.1.26 is too coarse (1.5e-7 abs is fine, but
 * relative error near 0 is not); use the series/continued-fraction-free
 * form from W. J. Cody's rational approximation instead. */
float erf_approx(float x)
{
	float ax = abs(x);
	float t = 1.0 / (1.0 + 0.5 * ax);
	/* Numerical Recipes erfc: fractional error < 1.2e-7 everywhere. */
	float y = t * exp(-ax * ax - 1.26551223 + t * (1.00002368 +
	    t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
	    t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
	    t * (-0.82215223 + t * 0.17087277)))))))));
	return x >= 0.0 ? 1.0 - y : y - 1.0;
}

float act(float g)
{
	if (pc.act == 0u)
		return g / (1.0 + exp(-g));
	if (pc.act == 1u)
		return 0.5 * g * (1.0 + erf_approx(g * 0.70710678118654752));
	return 0.5 * g * (1.0 + tanh(0.79788456080286536 *
	    (g + 0.044715 * g * g * g)));
}

void main()
{
	uint i4 = pc.inter / 4u;
	uint id = flat_id();
	if (id >= pc.n_rows * i4)
		return;
	uint r = id / i4, c = id % i4;
	vec4 g = gu[r * 2u * i4 + c];
	vec4 u = gu[r * 2u * i4 + i4 + c];
	h[id] = vec4(act(g.x), act(g.y), act(g.z), act(g.w)) * u;
}
