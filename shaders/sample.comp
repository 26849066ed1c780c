#version 450
#extension GL_GOOGLE_include_directive : require
/*
 * sample.comp - picks one token per logits row; one workgroup per row.
 *
 * Semantics are those of ref_sample (tests/ref.c), exactly:
 *   temperature <= 0: argmax, lowest id on ties.
 *   else p = softmax(logits / T); keep S = {i : p_i >= thr} with thr the
 *   larger of the k-th largest p (0 < top_k < V) and the top-p cutoff (the
 *   largest value v with sum_{p_j >= v} p_j >= top_p, 0 < top_p < 1); draw
 *   u = (pcg(seed, step) >> 8) * 2^-24 and return the first id, ascending,
 *   whose running sum over S exceeds u * sum_S p (else the last id of S).
 *
 * p is monotone in the logit, so thresholds are found on the logits' bit
 * patterns (mapped to ordered uints) and comparisons are exact: top-k by a
 * radix select over 8-bit digits (shared-memory histograms), top-p by
 * bisection over keys with a summing reduction per step.  Probabilities are
 * kept unnormalised, e_i = exp(l_i / T - max_j l_j / T), and computed and
 * summed in float-float ("double-float", ~44 bits) arithmetic, so the sums
 * and the walk agree with the double reference except within ~1e-12 of a
 * boundary.  The float-float helpers need exact IEEE float operations: every
 * temporary is `precise` (no contraction or reassociation), and products are
 * split (Dekker) rather than fma'd, since some drivers do not fuse fma.
 *
 * Each thread owns one contiguous chunk of ids, so the scratch row it writes
 * (e as float-float) is read back only by itself and the walk can go in id
 * order.  Reductions are shared-memory trees: no subgroup-size assumption.
 */
#include "sample_pc.h"

#define WG 256u
layout(local_size_x = 256) in;
layout(binding = 0, std430) readonly buffer L { float logits[]; };
layout(binding = 1, std430) readonly buffer P { sample_row prm[]; };
layout(binding = 2, std430) buffer E { vec2 ev[]; };   /* [n_rows][V] */
layout(binding = 3, std430) writeonly buffer O { int tok[]; };

shared uint sh_u[WG];
shared uint sh_v[WG];
shared uint sh_w[WG];
shared float sh_h[WG];
shared float sh_l[WG];

/* ------------------------------------------------------- float-float */

vec2 two_sum(float a, float b)
{
	precise float s = a + b;
	precise float bb = s - a;
	precise float err = (a - (s - bb)) + (b - bb);
	return vec2(s, err);
}

vec2 quick_two_sum(float a, float b)
{
	precise float s = a + b;
	precise float err = b - (s - a);
	return vec2(s, err);
}

vec2 ff_add(vec2 a, vec2 b)
{
	vec2 s = two_sum(a.x, b.x);
	vec2 t = two_sum(a.y, b.y);
	precise float s1 = s.y + t.x;
	vec2 u = quick_two_sum(s.x, s1);
	precise float s2 = u.y + t.y;
	return quick_two_sum(u.x, s2);
}

vec2 ff_neg(vec2 a)
{
	return vec2(-a.x, -a.y);
}

vec2 split(float a)
{
	precise float t = 4097.0 * a;
	precise float hi = t - (t - a);
	precise float lo = a - hi;
	return vec2(hi, lo);
}

vec2 two_prod(float a, float b)
{
	precise float p = a * b;
	vec2 as = split(a), bs = split(b);
	precise float e1 = as.x * bs.x - p;
	precise float e2 = e1 + as.x * bs.y;
	precise float e3 = e2 + as.y * bs.x;
	precise float err = e3 + as.y * bs.y;
	return vec2(p, err);
}

vec2 ff_mul(vec2 a, vec2 b)
{
	vec2 p = two_prod(a.x, b.x);
	precise float c = a.x * b.y + a.y * b.x;
	precise float lo = p.y + c;
	return quick_two_sum(p.x, lo);
}

vec2 ff_mul_f(vec2 a, float b)
{
	vec2 p = two_prod(a.x, b);
	precise float lo = p.y + a.y * b;
	return quick_two_sum(p.x, lo);
}

/* a / b for floats, as float-float: the remainder a - q b is exact. */
vec2 ff_div(float a, float b)
{
	precise float q = a / b;
	vec2 p = two_prod(q, b);
	precise float r = (a - p.x) - p.y;
	precise float lo = r / b;
	return quick_two_sum(q, lo);
}

/* a > b for normalised float-floats. */
bool ff_gt(vec2 a, vec2 b)
{
	vec2 d = ff_add(a, ff_neg(b));
	return d.x > 0.0 || (d.x == 0.0 && d.y > 0.0);
}

bool ff_ge(vec2 a, vec2 b)
{
	vec2 d = ff_add(a, ff_neg(b));
	return d.x > 0.0 || (d.x == 0.0 && d.y >= 0.0);
}

/* 1/n! as float-float, n = 0..5. */
const vec2 INVF[6] = vec2[6](vec2(1.0, 0.0), vec2(1.0, 0.0), vec2(0.5, 0.0),
    vec2(1.666666716e-01, -4.967053879e-09),
    vec2(4.166666791e-02, -1.241763470e-09),
    vec2(8.333333768e-03, -4.346172033e-10));

/* exp(x) for x <= 0 in float-float, relative error ~1e-13.  ln 2 is split
 * in C1 + C2 + C3 (16, 16, 24 bits) so that k C1 and k C2 are exact. */
vec2 ff_exp(vec2 x)
{
	if (!(x.x >= -104.0))
		return vec2(0.0);
	precise float kf = round(x.x * 1.4426950408889634);
	precise float a = x.x - kf * 0.693145751953125;
	vec2 r = two_sum(a, x.y);
	r = ff_add(r, vec2(-kf * 1.4286197256296873e-06, 0.0));
	r = ff_add(r, ff_neg(two_prod(kf, -1.2905320041778356e-11)));
	/* Terms 6..11 in float: they are below 2.5e-6. */
	float rf = r.x;
	float tl = 2.505210794e-08;
	tl = tl * rf + 2.755731998e-07;
	tl = tl * rf + 2.755731884e-06;
	tl = tl * rf + 2.480158764e-05;
	tl = tl * rf + 1.984127011e-04;
	tl = tl * rf + 1.388888923e-03;
	vec2 p = vec2(tl, 0.0);
	for (int n = 5; n >= 0; n--)
		p = ff_add(ff_mul(p, r), INVF[n]);
	int k = int(kf);
	return vec2(ldexp(p.x, k), ldexp(p.y, k));
}

/* ---------------------------------------------------------- helpers */

/* key: float -> uint with the same order (-0 and +0 equal). */
uint key(float f)
{
	uint u = floatBitsToUint(f);
	if (u == 0x80000000u)
		u = 0u;
	return (u & 0x80000000u) != 0u ? ~u : (u | 0x80000000u);
}

uint pcg(uint v)
{
	uint st = v * 747796405u + 2891336453u;
	uint w = ((st >> ((st >> 28u) + 4u)) ^ st) * 277803737u;
	return (w >> 22u) ^ w;
}

/* Reductions over the workgroup; every thread gets the result.  Each starts
 * with a barrier so the previous result has been read by all. */
vec2 red_ff(vec2 v)
{
	uint t = gl_LocalInvocationID.x;
	barrier();
	sh_h[t] = v.x;
	sh_l[t] = v.y;
	barrier();
	for (uint s = WG / 2u; s > 0u; s >>= 1) {
		if (t < s) {
			vec2 o = ff_add(vec2(sh_h[t], sh_l[t]),
			    vec2(sh_h[t + s], sh_l[t + s]));
			sh_h[t] = o.x;
			sh_l[t] = o.y;
		}
		barrier();
	}
	return vec2(sh_h[0], sh_l[0]);
}

uint red_min(uint v)
{
	uint t = gl_LocalInvocationID.x;
	barrier();
	sh_u[t] = v;
	barrier();
	for (uint s = WG / 2u; s > 0u; s >>= 1) {
		if (t < s)
			sh_u[t] = min(sh_u[t], sh_u[t + s]);
		barrier();
	}
	return sh_u[0];
}

/* ------------------------------------------------------------- main */

void main()
{
	uint r = gl_WorkGroupID.x;
	uint t = gl_LocalInvocationID.x;
	if (r >= pc.n_rows)
		return;
	sample_row P = prm[r];
	uint V = pc.vocab;
	uint base = P.lrow * V, ebase = r * V;
	uint C = (V + WG - 1u) / WG;
	uint i0 = min(t * C, V), i1 = min(i0 + C, V);

	/* Largest key (lowest id on ties) and smallest key. */
	uint bk = 0u, bi = 0xffffffffu, mk = 0xffffffffu;
	for (uint i = i0; i < i1; i++) {
		uint k = key(logits[base + i]);
		if (bi == 0xffffffffu || k > bk) {
			bk = k;
			bi = i;
		}
		mk = min(mk, k);
	}
	sh_u[t] = bk;
	sh_v[t] = bi;
	sh_w[t] = mk;
	barrier();
	for (uint s = WG / 2u; s > 0u; s >>= 1) {
		if (t < s) {
			uint ok = sh_u[t + s], oi = sh_v[t + s];
			if (oi != 0xffffffffu && (sh_v[t] == 0xffffffffu ||
			    ok > sh_u[t] || (ok == sh_u[t] && oi < sh_v[t]))) {
				sh_u[t] = ok;
				sh_v[t] = oi;
			}
			sh_w[t] = min(sh_w[t], sh_w[t + s]);
		}
		barrier();
	}
	bk = sh_u[0];
	bi = sh_v[0];
	mk = sh_w[0];
	if (!(P.temperature > 0.0)) {
		if (t == 0u)
			tok[r] = int(bi);
		return;
	}

	/* e_i = exp(l_i / T - l_max / T), kept in the scratch row. */
	float T = P.temperature;
	vec2 mx = ff_div(logits[base + bi], T);
	vec2 tot = vec2(0.0);
	for (uint i = i0; i < i1; i++) {
		float l = logits[base + i];
		vec2 e = vec2(0.0);
		if (l > -3.0e38)
			e = ff_exp(ff_add(ff_div(l, T), ff_neg(mx)));
		ev[ebase + i] = e;
		tot = ff_add(tot, e);
	}
	tot = red_ff(tot);

	/* thr: the smallest key kept.  Top-k: radix select of the k-th
	 * largest key, 8 bits at a time. */
	uint thr = mk;
	if (P.top_k > 0u && P.top_k < V) {
		uint prefix = 0u, kk = P.top_k;
		for (int shift = 24; shift >= 0; shift -= 8) {
			uint hmask = shift == 24 ? 0u :
			    (0xffffffffu << uint(shift + 8));
			barrier();
			sh_u[t] = 0u;
			barrier();
			for (uint i = i0; i < i1; i++) {
				uint k = key(logits[base + i]);
				if ((k & hmask) == prefix)
					atomicAdd(sh_u[(k >> uint(shift)) & 255u], 1u);
			}
			barrier();
			if (t == 0u) {
				uint cum = 0u;
				int b = 255;
				while (b > 0 && cum + sh_u[b] < kk) {
					cum += sh_u[b];
					b--;
				}
				sh_v[0] = uint(b);
				sh_v[1] = kk - cum;
			}
			barrier();
			prefix |= sh_v[0] << uint(shift);
			kk = sh_v[1];
		}
		thr = prefix;
	}

	/* Top-p: the largest key K with sum_{key >= K} e >= top_p * total.
	 * If even thr fails, the top-p cutoff is below thr and thr stands. */
	if (P.top_p > 0.0 && P.top_p < 1.0) {
		vec2 goal = ff_mul_f(tot, P.top_p);
		uint lo = thr, hi = bk;
		bool first = true;
		for (;;) {
			uint mid = first ? lo :
			    lo + ((hi - lo) >> 1) + ((hi - lo) & 1u);
			vec2 s = vec2(0.0);
			for (uint i = i0; i < i1; i++)
				if (key(logits[base + i]) >= mid)
					s = ff_add(s, ev[ebase + i]);
			bool pass = ff_ge(red_ff(s), goal);
			if (first) {
				if (!pass)
					break;
				first = false;
			} else if (pass) {
				lo = mid;
			} else {
				hi = mid - 1u;
			}
			if (lo >= hi)
				break;
		}
		thr = lo;
	}

	/* Chunk sums over S, exclusive prefix over chunks (thread 0, in
	 * order), then each thread walks its chunk from its prefix. */
	vec2 cs = vec2(0.0);
	uint last = 0u;
	bool any = false;
	for (uint i = i0; i < i1; i++)
		if (key(logits[base + i]) >= thr) {
			cs = ff_add(cs, ev[ebase + i]);
			last = i;
			any = true;
		}
	barrier();
	sh_h[t] = cs.x;
	sh_l[t] = cs.y;
	sh_w[t] = any ? last : 0u;
	barrier();
	if (t == 0u) {
		vec2 acc = vec2(0.0);
		uint lst = 0u;
		for (uint j = 0u; j < WG; j++) {
			vec2 c = vec2(sh_h[j], sh_l[j]);
			sh_h[j] = acc.x;
			sh_l[j] = acc.y;
			acc = ff_add(acc, c);
			lst = max(lst, sh_w[j]);
		}
		sh_v[0] = floatBitsToUint(acc.x);
		sh_v[1] = floatBitsToUint(acc.y);
		sh_v[2] = lst;
	}
	barrier();
	vec2 ssum = vec2(uintBitsToFloat(sh_v[0]), uintBitsToFloat(sh_v[1]));
	vec2 cum = vec2(sh_h[t], sh_l[t]);
	last = sh_v[2];

	uint k0 = pcg(P.seed_lo ^ pcg(P.seed_hi));
	uint rnd = pcg(k0 + pcg(P.step_lo ^ pcg(P.step_hi)));
	float u = float(rnd >> 8u) * (1.0 / 16777216.0);
	vec2 target = ff_mul_f(ssum, u);

	uint found = 0xffffffffu;
	for (uint i = i0; i < i1; i++)
		if (key(logits[base + i]) >= thr) {
			cum = ff_add(cum, ev[ebase + i]);
			if (ff_gt(cum, target)) {
				found = i;
				break;
			}
		}
	found = red_min(found);
	if (t == 0u)
		tok[r] = int(found != 0xffffffffu ? found : last);
}
