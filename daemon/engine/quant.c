/*
 * quant.c - Q8_0 and Q4_0 blocks: quantizing (for the converter and test
 * fixtures), reading one value (the CPU reference and small tensors), and
 * splitting blocks into the quants + scales layout the matmul kernels read.
 * See quant.h for the layouts.
 */
#include <math.h>
#include <string.h>

#include "engine/quant.h"

#define Q8_BYTES (2 + ENG_QBLOCK)
#define Q4_BYTES (2 + ENG_QBLOCK / 2)

size_t
eng_q_row_bytes(enum eng_dtype t, int64_t cols)
{
	switch (t) {
	case ENG_F32:
		return ((size_t)cols * 4);
	case ENG_F16:
	case ENG_BF16:
		return ((size_t)cols * 2);
	case ENG_Q8_0:
	case ENG_Q4_0:
		if (cols % ENG_QBLOCK != 0)
			return (0);
		return ((size_t)(cols / ENG_QBLOCK) *
		    (t == ENG_Q8_0 ? Q8_BYTES : Q4_BYTES));
	default:
		return (0);
	}
}

size_t
eng_q_dev_row_bytes(enum eng_dtype t, int64_t cols)
{
	return (t == ENG_Q8_0 ? (size_t)cols : (size_t)cols / 2);
}

static void
put_d(unsigned char *b, float d)
{
	uint16_t h = eng_f32_to_f16(d);
	memcpy(b, &h, 2);
}

static float
get_d(const unsigned char *b)
{
	uint16_t h;
	memcpy(&h, b, 2);
	return (eng_f16_to_f32(h));
}

void
eng_q_quantize(enum eng_dtype t, const float *x, size_t n, void *dst)
{
	unsigned char *o = dst;

	for (size_t b = 0; b < n / ENG_QBLOCK; b++) {
		const float *v = x + b * ENG_QBLOCK;
		if (t == ENG_Q8_0) {
			float amax = 0, d, id;
			for (int j = 0; j < ENG_QBLOCK; j++)
				amax = fmaxf(amax, fabsf(v[j]));
			d = amax / 127.0f;
			id = d != 0 ? 1.0f / d : 0.0f;
			put_d(o, d);
			for (int j = 0; j < ENG_QBLOCK; j++)
				((int8_t *)o)[2 + j] = (int8_t)roundf(v[j] * id);
			o += Q8_BYTES;
		} else {
			/* The signed extreme maps to -8, so the full range
			 * [-8, 7] is used on the side that needs it. */
			float amax = 0, max = 0, d, id;
			for (int j = 0; j < ENG_QBLOCK; j++)
				if (fabsf(v[j]) > amax) {
					amax = fabsf(v[j]);
					max = v[j];
				}
			d = max / -8.0f;
			id = d != 0 ? 1.0f / d : 0.0f;
			put_d(o, d);
			for (int j = 0; j < ENG_QBLOCK / 2; j++) {
				int q0 = (int)(v[j] * id + 8.5f);
				int q1 = (int)(v[j + 16] * id + 8.5f);
				q0 = q0 < 0 ? 0 : q0 > 15 ? 15 : q0;
				q1 = q1 < 0 ? 0 : q1 > 15 ? 15 : q1;
				o[2 + j] = (unsigned char)(q0 | q1 << 4);
			}
			o += Q4_BYTES;
		}
	}
}

float
eng_q_get(enum eng_dtype t, const void *data, size_t i)
{
	const unsigned char *p = data;
	size_t b = i / ENG_QBLOCK, j = i % ENG_QBLOCK;

	if (t == ENG_Q8_0) {
		p += b * Q8_BYTES;
		return (get_d(p) * (float)(int8_t)p[2 + j]);
	}
	p += b * Q4_BYTES;
	int q = j < 16 ? p[2 + j] & 15 : p[2 + j - 16] >> 4;
	return (get_d(p) * (float)(q - 8));
}

void
eng_q_unpack(enum eng_dtype t, const void *src, int64_t rows, int64_t cols,
    uint8_t *dq, float *ds)
{
	const unsigned char *p = src;
	size_t nb = (size_t)rows * (size_t)(cols / ENG_QBLOCK);

	for (size_t b = 0; b < nb; b++) {
		ds[b] = get_d(p);
		if (t == ENG_Q8_0) {
			memcpy(dq + b * ENG_QBLOCK, p + 2, ENG_QBLOCK);
			p += Q8_BYTES;
		} else {
			/* GGUF splits a block into halves by nibble; the
			 * device wants value e in nibble e. */
			uint8_t *o = dq + b * (ENG_QBLOCK / 2);
			for (int e = 0; e < ENG_QBLOCK; e += 2) {
				int q0 = e < 16 ? p[2 + e] & 15 :
				    p[2 + e - 16] >> 4;
				int q1 = e + 1 < 16 ? p[3 + e] & 15 :
				    p[3 + e - 16] >> 4;
				o[e / 2] = (uint8_t)(q0 | q1 << 4);
			}
			p += Q4_BYTES;
		}
	}
}
