/*
 * npy.c - minimal .npy (format 1.0) reader and writer for float arrays.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infini_err.h"
#include "npy.h"

int
npy_write(const char *path, const float *data, size_t rows, size_t cols)
{
	char hdr[128];
	int n;
	FILE *f;

	if (cols == 0)
		n = snprintf(hdr, sizeof(hdr), "{'descr': '<f4', 'fortran_order':"
		    " False, 'shape': (%zu,), }", rows);
	else
		n = snprintf(hdr, sizeof(hdr), "{'descr': '<f4', 'fortran_order':"
		    " False, 'shape': (%zu, %zu), }", rows, cols);
	/* Pad with spaces so the data starts 64-byte aligned; end with \n. */
	size_t total = 10 + (size_t)n + 1;
	size_t pad = (64 - total % 64) % 64;
	unsigned short hl = (unsigned short)(n + pad + 1);
	if ((f = fopen(path, "wb")) == NULL)
		return (INFINI_EIO);
	fwrite("\x93NUMPY\x01\x00", 1, 8, f);
	fputc(hl & 0xff, f);
	fputc(hl >> 8, f);
	fwrite(hdr, 1, (size_t)n, f);
	for (size_t i = 0; i < pad; i++)
		fputc(' ', f);
	fputc('\n', f);
	fwrite(data, sizeof(float), rows * (cols ? cols : 1), f);
	if (ferror(f) | (fclose(f) != 0))
		return (INFINI_EIO);
	return (0);
}

int
npy_read(const char *path, float **data, size_t *rows, size_t *cols,
    char *err, size_t errlen)
{
	unsigned char pre[10];
	char *hdr = NULL, *p;
	size_t hl, r = 0, c = 0, n, esz;
	float *out = NULL;
	FILE *f;
	int rv = INFINI_ECORRUPT;

	if ((f = fopen(path, "rb")) == NULL) {
		snprintf(err, errlen, "%s: cannot open", path);
		return (INFINI_EIO);
	}
	if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0 ||
	    pre[6] != 1) {
		snprintf(err, errlen, "%s: not a version 1 .npy file", path);
		goto out;
	}
	hl = pre[8] | (size_t)pre[9] << 8;
	if ((hdr = calloc(hl + 1, 1)) == NULL || fread(hdr, 1, hl, f) != hl) {
		snprintf(err, errlen, "%s: truncated header", path);
		goto out;
	}
	if (strstr(hdr, "'fortran_order': False") == NULL) {
		snprintf(err, errlen, "%s: only C-order arrays are read", path);
		rv = INFINI_EUNSUPPORTED;
		goto out;
	}
	if (strstr(hdr, "'<f4'") != NULL)
		esz = 4;
	else if (strstr(hdr, "'<f8'") != NULL)
		esz = 8;
	else {
		snprintf(err, errlen, "%s: dtype must be float32 or float64",
		    path);
		rv = INFINI_EUNSUPPORTED;
		goto out;
	}
	if ((p = strstr(hdr, "'shape': (")) == NULL) {
		snprintf(err, errlen, "%s: no shape", path);
		goto out;
	}
	p += 10;
	if (sscanf(p, "%zu, %zu)", &r, &c) != 2) {
		if (sscanf(p, "%zu,)", &r) != 1) {
			snprintf(err, errlen, "%s: shape must be 1-D or 2-D", path);
			goto out;
		}
		c = r;
		r = 1;
	}
	if (r == 0 || c == 0 || r > (1u << 24) || c > (1u << 24)) {
		snprintf(err, errlen, "%s: empty or oversized array", path);
		goto out;
	}
	n = r * c;
	if ((out = malloc(n * sizeof(float))) == NULL) {
		rv = INFINI_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (esz == 4) {
			if (fread(&out[i], 4, 1, f) != 1)
				break;
		} else {
			double d;
			if (fread(&d, 8, 1, f) != 1)
				break;
			out[i] = (float)d;
		}
		if (i + 1 == n) {
			*data = out;
			*rows = r;
			*cols = c;
			out = NULL;
			rv = 0;
		}
	}
	if (rv != 0)
		snprintf(err, errlen, "%s: truncated data", path);
out:
	free(out);
	free(hdr);
	fclose(f);
	return (rv);
}
