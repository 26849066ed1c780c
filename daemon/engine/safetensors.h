/*
 * safetensors.h - reading the safetensors container format.
 *
 * A safetensors file is an 8-byte little-endian header length, a JSON header
 * mapping tensor names to {dtype, shape, data_offsets}, then the raw
 * little-endian tensor bytes; offsets count from the end of the header.  This
 * module maps a file read-only and checks one header entry at a time against
 * the data section it sits in.  It knows nothing about models: which tensors
 * must exist and with what shapes is engine/model.c's business.
 */
#ifndef ENG_SAFETENSORS_H
#define ENG_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/model.h"

struct cJSON;

/* Largest header we accept; the format's own reference reader caps it too. */
#define ST_HEADER_MAX ((uint64_t)100 << 20)
#define ST_NDIM_MAX 4

/* One validated header entry.  name points into the cJSON header. */
struct st_entry {
	const char *name;
	enum eng_dtype dtype;
	int ndim;
	int64_t shape[ST_NDIM_MAX];
	size_t offset;   /* from the start of the data section */
	size_t nbytes;
};

/*
 * st_map maps the file at path read-only.  Returns 0, INFINI_ENOENT when the
 * file does not exist, INFINI_EIO when it cannot be opened or mapped, or
 * INFINI_ECORRUPT when it is too short to hold a header length.  On success
 * *map and *size describe the mapping; release it with st_unmap.
 */
int st_map(const char *path, void **map, size_t *size, char *err,
    size_t errlen);

/* st_unmap releases a mapping made by st_map; a NULL map is a no-op. */
void st_unmap(void *map, size_t size);

/*
 * st_header parses the JSON header of the mapped file (fname is only used in
 * messages).  Returns 0 or INFINI_ECORRUPT (length past the end of the file,
 * bad JSON, not an object) / INFINI_ENOMEM.  On success *hdr is the header
 * object (free with cJSON_Delete) and *data_off the offset of the data
 * section within the file.
 */
int st_header(const char *fname, const void *map, size_t size,
    struct cJSON **hdr, size_t *data_off, char *err, size_t errlen);

/*
 * st_entry validates one header item against a data section of data_len
 * bytes.  Returns 0, INFINI_EUNSUPPORTED for a dtype other than F32, F16,
 * BF16, Q8_0 or Q4_0, or INFINI_ECORRUPT for a malformed entry, more than ST_NDIM_MAX
 * dimensions, offsets past the data section, a byte count that does not
 * match the shape, or a block dtype on a shape that is not 2-D with whole
 * blocks per row.  Messages name the tensor.
 */
int st_entry(const struct cJSON *item, size_t data_len, struct st_entry *e,
    char *err, size_t errlen);

/* st_dtype_size returns the bytes per element of a dtype (1 for the block
 * dtypes, whose sizes come from eng_q_row_bytes). */
size_t st_dtype_size(enum eng_dtype dt);

/* st_dtype_name returns the safetensors spelling of a dtype ("BF16"). */
const char *st_dtype_name(enum eng_dtype dt);

#endif /* ENG_SAFETENSORS_H */
