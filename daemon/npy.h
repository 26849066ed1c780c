/*
 * npy.h - reading and writing float32 NumPy .npy files (format 1.0), the
 * exchange format of infini-run for vectors, embeddings and logits.
 */
#ifndef INFINI_NPY_H
#define INFINI_NPY_H

#include <stddef.h>

/* npy_write stores data as a C-order float32 array of shape [rows, cols]
 * (cols == 0 writes a 1-D array of rows).  Returns 0 or INFINI_EIO. */
int npy_write(const char *path, const float *data, size_t rows, size_t cols);

/* npy_read loads a 2-D float32 or float64 C-order array (a 1-D array reads
 * as one row).  On success *data (malloc'd, caller frees) holds rows*cols
 * floats.  Returns 0, INFINI_EIO, INFINI_ECORRUPT or INFINI_EUNSUPPORTED. */
int npy_read(const char *path, float **data, size_t *rows, size_t *cols,
    char *err, size_t errlen);

#endif
