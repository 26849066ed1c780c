/*
 * quant.h - the block-quantized weight formats Q8_0 and Q4_0 (docs/quant.md).
 *
 * On disk (inside safetensors, dtype "Q8_0" / "Q4_0", shape the logical
 * [rows, cols] with cols a multiple of ENG_QBLOCK) a row is a run of blocks
 * laid out exactly as GGUF lays them out:
 *   Q8_0: f16 d, int8 q[32]                         34 bytes, x = d q
 *   Q4_0: f16 d, uint8 qs[16]; q[j] = qs[j] & 15,
 *         q[j + 16] = qs[j] >> 4                    18 bytes, x = d (q - 8)
 * On the device the quants and scales are split, because blocks of 34 or 18
 * bytes cannot be read as aligned words or texels: a part holds the quants
 * of its rows (Q8_0: one int8 per value; Q4_0: one nibble per value, value
 * e in byte e / 2, low nibble first) and an f32 scale per block.
 */
#ifndef ENG_QUANT_H
#define ENG_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "engine/model.h"

/* eng_q_row_bytes: bytes of one stored row of cols values of dtype t (for
 * every dtype; 0 for a quantized dtype when cols is not a whole number of
 * blocks). */
size_t eng_q_row_bytes(enum eng_dtype t, int64_t cols);

/* eng_q_quantize writes n values of x (n a multiple of ENG_QBLOCK) as
 * blocks of t at dst, rounding as GGUF's reference quantizer does. */
void eng_q_quantize(enum eng_dtype t, const float *x, size_t n, void *dst);

/* eng_q_get: value i of the blocks at data (t quantized). */
float eng_q_get(enum eng_dtype t, const void *data, size_t i);

/* eng_q_dev_row_bytes: bytes of the device quants of one row. */
size_t eng_q_dev_row_bytes(enum eng_dtype t, int64_t cols);

/* eng_q_unpack converts rows stored rows at src to the device layout:
 * quants to dq (rows * eng_q_dev_row_bytes), scales to ds (rows * cols / 32
 * floats). */
void eng_q_unpack(enum eng_dtype t, const void *src, int64_t rows,
    int64_t cols, uint8_t *dq, float *ds);

#endif /* ENG_QUANT_H */
