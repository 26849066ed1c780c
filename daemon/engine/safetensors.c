/*
 * safetensors.c - mapping safetensors files and checking their headers.
 *
 * Everything in a header is untrusted: lengths, offsets and shapes are checked
 * against the file before anyone dereferences a byte of tensor data, and every
 * product is checked for overflow.  Errors name the tensor so a user can tell
 * which part of a broken checkpoint to look at.  The F16/BF16 conversions of
 * model.h live here too, with the rest of the dtype knowledge.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/quant.h"
#include "engine/safetensors.h"
#include "infini_err.h"

#define ERR(...)                                                           \
	do {                                                               \
		if (err != NULL && errlen > 0)                             \
			snprintf(err, errlen, __VA_ARGS__);                \
	} while (0)

static const struct {
	const char *name;
	enum eng_dtype dt;
	size_t size;
} dtypes[] = {
	{ "F32", ENG_F32, 4 },
	{ "F16", ENG_F16, 2 },
	{ "BF16", ENG_BF16, 2 },
	/* Block formats (quant.h): size is per value rounded down; byte
	 * counts come from eng_q_row_bytes. */
	{ "Q8_0", ENG_Q8_0, 1 },
	{ "Q4_0", ENG_Q4_0, 1 },
};

size_t
st_dtype_size(enum eng_dtype dt)
{
	for (size_t i = 0; i < sizeof(dtypes) / sizeof(dtypes[0]); i++)
		if (dtypes[i].dt == dt)
			return (dtypes[i].size);
	return (0);
}

const char *
st_dtype_name(enum eng_dtype dt)
{
	for (size_t i = 0; i < sizeof(dtypes) / sizeof(dtypes[0]); i++)
		if (dtypes[i].dt == dt)
			return (dtypes[i].name);
	return ("?");
}

int
st_map(const char *path, void **map, size_t *size, char *err, size_t errlen)
{
	struct stat st;
	void *p;
	int fd, rv;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		rv = errno == ENOENT ? INFINI_ENOENT : INFINI_EIO;
		ERR("%s: %s", path, strerror(errno));
		return (rv);
	}
	if (fstat(fd, &st) != 0) {
		ERR("%s: fstat: %s", path, strerror(errno));
		rv = INFINI_EIO;
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		ERR("%s: not a regular file", path);
		rv = INFINI_EIO;
		goto fail;
	}
	/* mmap refuses length 0, and a file this short has no header. */
	if (st.st_size < 8) {
		ERR("%s: truncated: %lld bytes, no header length", path,
		    (long long)st.st_size);
		rv = INFINI_ECORRUPT;
		goto fail;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED) {
		ERR("%s: mmap: %s", path, strerror(errno));
		rv = INFINI_EIO;
		goto fail;
	}
	close(fd);
	*map = p;
	*size = (size_t)st.st_size;
	return (0);

fail:
	close(fd);
	return (rv);
}

void
st_unmap(void *map, size_t size)
{
	if (map != NULL)
		munmap(map, size);
}

int
st_header(const char *fname, const void *map, size_t size, cJSON **hdr,
    size_t *data_off, char *err, size_t errlen)
{
	const unsigned char *b = map;
	uint64_t n = 0;
	cJSON *root;

	for (int i = 7; i >= 0; i--)
		n = (n << 8) | b[i];
	if (n > size - 8) {
		ERR("%s: header length %llu past end of file (%zu bytes)",
		    fname, (unsigned long long)n, size);
		return (INFINI_ECORRUPT);
	}
	if (n < 2 || n > ST_HEADER_MAX) {
		ERR("%s: header length %llu out of range", fname,
		    (unsigned long long)n);
		return (INFINI_ECORRUPT);
	}
	root = cJSON_ParseWithLength((const char *)b + 8, (size_t)n);
	if (root == NULL) {
		ERR("%s: header is not valid JSON", fname);
		return (INFINI_ECORRUPT);
	}
	if (!cJSON_IsObject(root)) {
		ERR("%s: header is not a JSON object", fname);
		cJSON_Delete(root);
		return (INFINI_ECORRUPT);
	}
	*hdr = root;
	*data_off = 8 + (size_t)n;
	return (0);
}

/* get_index reads a non-negative integral JSON number that fits in 2^53. */
static int
get_index(const cJSON *v, uint64_t *out)
{
	double d;

	if (!cJSON_IsNumber(v))
		return (-1);
	d = v->valuedouble;
	if (!(d >= 0) || d > 9007199254740992.0 || floor(d) != d)
		return (-1);
	*out = (uint64_t)d;
	return (0);
}

int
st_entry(const cJSON *item, size_t data_len, struct st_entry *e, char *err,
    size_t errlen)
{
	const char *name = item->string;
	const cJSON *dt, *shape, *offs, *v;
	uint64_t numel = 1, begin, end, esz = 0;
	int ndim;

	memset(e, 0, sizeof(*e));
	e->name = name;
	if (!cJSON_IsObject(item)) {
		ERR("%s: header entry is not an object", name);
		return (INFINI_ECORRUPT);
	}
	dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
	shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
	offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
	if (!cJSON_IsString(dt) || !cJSON_IsArray(shape) ||
	    !cJSON_IsArray(offs)) {
		ERR("%s: header entry lacks dtype, shape or data_offsets",
		    name);
		return (INFINI_ECORRUPT);
	}
	for (size_t i = 0; i < sizeof(dtypes) / sizeof(dtypes[0]); i++) {
		if (strcmp(dt->valuestring, dtypes[i].name) == 0) {
			e->dtype = dtypes[i].dt;
			esz = dtypes[i].size;
		}
	}
	if (esz == 0) {
		ERR("%s: dtype %s not supported (want F32, F16, BF16, Q8_0 "
		    "or Q4_0)", name,
		    dt->valuestring);
		return (INFINI_EUNSUPPORTED);
	}
	ndim = cJSON_GetArraySize(shape);
	if (ndim > ST_NDIM_MAX) {
		ERR("%s: %d dimensions, at most %d supported", name, ndim,
		    ST_NDIM_MAX);
		return (INFINI_ECORRUPT);
	}
	e->ndim = ndim;
	ndim = 0;
	cJSON_ArrayForEach(v, shape) {
		uint64_t d;
		if (get_index(v, &d) != 0) {
			ERR("%s: shape[%d] is not a non-negative integer", name,
			    ndim);
			return (INFINI_ECORRUPT);
		}
		/* Each dimension is below 2^53, so one check per step is
		 * enough to keep numel from wrapping. */
		if (d != 0 && numel > UINT64_MAX / 8 / d) {
			ERR("%s: shape too large", name);
			return (INFINI_ECORRUPT);
		}
		numel *= d;
		e->shape[ndim++] = (int64_t)d;
	}
	if (cJSON_GetArraySize(offs) != 2 ||
	    get_index(cJSON_GetArrayItem(offs, 0), &begin) != 0 ||
	    get_index(cJSON_GetArrayItem(offs, 1), &end) != 0 || begin > end) {
		ERR("%s: data_offsets malformed", name);
		return (INFINI_ECORRUPT);
	}
	if (end > data_len) {
		ERR("%s: data_offsets [%llu,%llu] past end of data (%zu bytes)",
		    name, (unsigned long long)begin, (unsigned long long)end,
		    data_len);
		return (INFINI_ECORRUPT);
	}
	if (ENG_DTYPE_QUANT(e->dtype)) {
		/* Blocks run along rows: a 2-D shape whose rows are whole
		 * blocks, or the byte count cannot be derived. */
		if (e->ndim != 2 || e->shape[1] % ENG_QBLOCK != 0) {
			ERR("%s: %s needs a 2-D shape with columns a multiple "
			    "of %d", name, dt->valuestring, ENG_QBLOCK);
			return (INFINI_ECORRUPT);
		}
		esz = 0;
		numel = (uint64_t)e->shape[0] *
		    eng_q_row_bytes(e->dtype, e->shape[1]);
	}
	if (esz == 0 ? end - begin != numel : end - begin != numel * esz) {
		ERR("%s: %llu bytes, shape and dtype %s need %llu", name,
		    (unsigned long long)(end - begin), dt->valuestring,
		    (unsigned long long)(esz == 0 ? numel : numel * esz));
		return (INFINI_ECORRUPT);
	}
	e->offset = (size_t)begin;
	e->nbytes = (size_t)(end - begin);
	return (0);
}

/* ------------------------------------------------------------------ */
/* Half-precision conversions (declared in model.h)                   */

static uint32_t
f2u(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return (u);
}

static float
u2f(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return (f);
}

float
eng_bf16_to_f32(uint16_t h)
{
	return (u2f((uint32_t)h << 16));
}

uint16_t
eng_f32_to_bf16(float f)
{
	uint32_t u = f2u(f);

	/* Truncating a NaN could leave an all-zero mantissa, i.e. infinity:
	 * keep the top payload bits and force the quiet bit. */
	if ((u & 0x7fffffffu) > 0x7f800000u)
		return ((uint16_t)((u >> 16) | 0x0040u));
	/* Adding 0x7fff plus the lowest kept bit rounds half to even; a carry
	 * out of the mantissa correctly bumps the exponent, up to infinity. */
	u += 0x7fffu + ((u >> 16) & 1u);
	return ((uint16_t)(u >> 16));
}

float
eng_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
	uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
	float v;

	if (exp == 0x1f)        /* inf, NaN with its payload */
		return (u2f(sign | 0x7f800000u | (mant << 13)));
	if (exp != 0)           /* normal: rebias 15 -> 127 */
		return (u2f(sign | ((exp + 112u) << 23) | (mant << 13)));
	v = (float)mant * 0x1p-24f;  /* subnormal or zero, exact */
	return (sign ? -v : v);
}

uint16_t
eng_f32_to_f16(float f)
{
	uint32_t u = f2u(f);
	uint32_t sign = (u >> 16) & 0x8000u, x = u & 0x7fffffffu;
	uint32_t h, rem, m, shift;

	if (x > 0x7f800000u)    /* NaN: keep the top payload bits, quiet */
		return ((uint16_t)(sign | 0x7e00u | ((x >> 13) & 0x3ffu)));
	if (x >= 0x477ff000u)   /* >= 65520 rounds (to even) to infinity */
		return ((uint16_t)(sign | 0x7c00u));
	if (x >= 0x38800000u) { /* normal half: >= 2^-14 */
		h = ((x >> 23) - 112u) << 10 | ((x >> 13) & 0x3ffu);
		rem = x & 0x1fffu;
		/* A carry into the exponent is the right answer here too. */
		if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
			h++;
		return ((uint16_t)(sign | h));
	}
	if (x < 0x33000000u)    /* below 2^-25: rounds to zero */
		return ((uint16_t)sign);
	/* Subnormal half: count units of 2^-24.  x = m * 2^(e-150), so the
	 * units are m >> (126 - e), which is 14..24 bits of shift here. */
	m = (x & 0x7fffffu) | 0x800000u;
	shift = 126u - (x >> 23);
	h = m >> shift;
	rem = m & ((1u << shift) - 1u);
	if (rem > (1u << (shift - 1)) ||
	    (rem == (1u << (shift - 1)) && (h & 1u)))
		h++;
	return ((uint16_t)(sign | h));
}
