#version 450
#extension GL_GOOGLE_include_directive : require
/* glu.comp - SwiGLU / GeGLU activation, one invocation per element. */
#include "common.glsl"
#include "glu_pc.h"
layout(local_size_x = 64) in;
layout(binding = 0, std430) readonly buffer GU { float gu[]; };
layout(binding = 1, std430) writeonly buffer H { float h[]; };

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

void main()
{
	uint id = flat_id();
	if (id >= pc.n_rows * pc.inter)
		return;
	uint r = id / pc.inter, c = id % pc.inter;
	float g = gu[r * 2u * pc.inter + c];
	float u = gu[r * 2u * pc.inter + pc.inter + c];
	float a;
	if (pc.act == 0u)
		a = g / (1.0 + exp(-g));
	else if (pc.act == 1u)
		a = 0.5 * g * (1.0 + erf_approx(g * 0.70710678118654752));
	else
		a = 0.5 * g * (1.0 + tanh(0.79788456080286536 *
		    (g + 0.044715 * g * g * g)));
	h[id] = a * u;
}
