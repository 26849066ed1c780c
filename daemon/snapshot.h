/*
 * snapshot.h - the durable, versioned snapshot of one stream.
 *
 * A snapshot is one stream's state (eng_stream_export) plus what identifies
 * it: the model's fingerprint and shape, the stream ID, position and sample
 * step.  snap_encode/snap_decode convert between that and the byte format of
 * docs/snapshot-format.md (little-endian header, checksummed sections, a
 * whole-file checksum trailer); snap_write_file/snap_read_file move the bytes
 * to and from a file under one directory, the write being atomic and durable
 * (temp file, fsync, rename, fsync of the directory).
 *
 * This module knows nothing about slots or the stream table: the caller
 * exports, encodes and writes; or reads, decodes and imports.  It does no
 * logging: errors come back as INFINI_E* codes with a message in err.
 */
#ifndef SNAPSHOT_H
#define SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "engine/model.h"

#define SNAP_MAGIC "INFSNAP"       /* 8 bytes with the NUL */
#define SNAP_VERSION 1             /* the version this code writes */
#define SNAP_VERSION_MIN 1         /* the oldest version it reads */
#define SNAP_ID_MAX 128            /* stream ID bytes */
#define SNAP_HEAD_SIZE 240         /* the fixed header (snap_info_head) */
#define SNAP_NAME_MAX 128          /* file name bytes */
/* snap_decode's expected_fp that accepts any model (inspection tools). */
#define SNAP_ANY_MODEL 0

/* What a snapshot says besides the state arrays. */
struct snap_meta {
	uint32_t version;          /* decode: the file's; encode: ignored */
	uint64_t fingerprint;      /* eng_model.fingerprint */
	int n_layers, n_kv_heads, head_dim, segment_size; /* model digest */
	int hidden_size, vocab_size;
	char stream_id[SNAP_ID_MAX + 1]; /* NUL-terminated */
	uint64_t created_ms;       /* Unix time of encoding, ms */
	/*
	 * The stream's owner UID (the daemon's spill files keep it across a
	 * restart).  An optional section: has_owner false writes none, and a
	 * file without one decodes with has_owner false.
	 */
	bool has_owner;
	uint32_t owner;
};

/*
 * snap_meta_init fills m for a stream of model md: fingerprint, shape, the
 * stream ID and the time now.  Returns 0 or INFINI_EINVAL (id
 * longer than SNAP_ID_MAX bytes).
 */
int snap_meta_init(struct snap_meta *m, const struct eng_model *md,
    const char *stream_id);

/*
 * snap_encode serialises m and st into a new buffer.  On success *buf (owned
 * by the caller: free()) and *len are set.  Returns 0, INFINI_EINVAL (m and
 * st disagree on shape, a bad logits count, a too long ID) or INFINI_ENOMEM.
 */
int snap_encode(const struct snap_meta *m, const struct eng_stream_state *st,
    uint8_t **buf, size_t *len);

/* snap_err: the error a caller is told for a snapshot error rv: rv
 * itself, except that a file of a format this daemon does not read
 * (INFINI_EUNSUPPORTED) is INFINI_ESTATE (FAILED_PRECONDITION), like
 * another model's, rather than UNIMPLEMENTED. */
int snap_err(int rv);

/*
 * snap_decode parses a snapshot.  expected_fp is the serving model's
 * fingerprint (SNAP_ANY_MODEL skips the check).  Refusals, in this order:
 * INFINI_ECORRUPT (shorter than a header), INFINI_EUNSUPPORTED (not a
 * snapshot: wrong magic; a version newer than SNAP_VERSION or older than
 * SNAP_VERSION_MIN; a big-endian file), INFINI_ECORRUPT (failed file or
 * section checksum, truncation, any inconsistent length, count or shape,
 * unknown header or section flags, a position past ENG_POS_MAX or that
 * disagrees with the segment count, NaN or infinity anywhere in the state),
 * INFINI_ESTATE (another model's snapshot), INFINI_ENOMEM.  err gets the
 * reason.  On success *meta and *st (st owned by the caller:
 * eng_stream_state_fini) are written; on failure neither is touched.
 */
int snap_decode(const uint8_t *buf, size_t len, uint64_t expected_fp,
    struct snap_meta *meta, struct eng_stream_state *st, char *err,
    size_t errlen);

/*
 * snap_check_model checks a decoded snapshot against the model that is to
 * load it: fingerprint, every shape field of the header (vocab_size
 * included) and whether it carries unrotated keys.  Returns 0 or
 * INFINI_ESTATE with err saying which field differs and how.
 */
int snap_check_model(const struct snap_meta *m,
    const struct eng_stream_state *st, const struct eng_model *md, char *err,
    size_t errlen);

/* snap_decode_model is snap_decode for model md followed by
 * snap_check_model; on failure nothing is returned. */
int snap_decode_model(const uint8_t *buf, size_t len,
    const struct eng_model *md, struct snap_meta *meta,
    struct eng_stream_state *st, char *err, size_t errlen);

/* snap_max_size: the largest snapshot of model md this code writes, every
 * optional section included.  A longer file is refused unread. */
size_t snap_max_size(const struct eng_model *md);

/* snap_name_ok: is name a valid snapshot file name (1..128 bytes of
 * [A-Za-z0-9._:-], not starting with '.')? */
bool snap_name_ok(const char *name);

/*
 * snap_write_file replaces dir/name with buf[0..len) atomically and durably:
 * write a temp file ".<name>.tmp.<pid>.<n>" (O_EXCL, mode 0600) in dir,
 * fsync, close, rename over name, fsync dir.  After a crash dir/name holds
 * the old bytes or the new ones, never a mix; a temp file may remain.  On
 * failure the temp is removed and dir/name is untouched.  Returns 0,
 * INFINI_EINVAL (bad name), INFINI_ENOENT (no such dir), INFINI_EFULL (no
 * space or quota), INFINI_EPERM (permission denied, read-only file system),
 * INFINI_ENOMEM or INFINI_EIO; err names the step, the path and strerror.
 */
int snap_write_file(const char *dir, const char *name, const uint8_t *buf,
    size_t len, char *err, size_t errlen);

/* snap_counters reads the totals of snap_write_file so far: files written,
 * their bytes, and writes that failed (any thread). */
void snap_counters(uint64_t *writes, uint64_t *bytes, uint64_t *failures);

/*
 * snap_read_file_max reads dir/name whole.  It is opened with O_NOFOLLOW and
 * O_NONBLOCK, so a symlink is refused and a FIFO or device under that name
 * cannot block the caller, and it must be a regular file of at most max
 * bytes (checked before anything is read).  On success *buf (caller's:
 * free()) and *len are set.  Returns 0, INFINI_EINVAL (bad name, a symlink,
 * not a regular file), INFINI_ECORRUPT (longer than max), INFINI_ENOENT,
 * INFINI_EPERM, INFINI_ENOMEM or INFINI_EIO; err gets the reason, naming
 * the snapshot but never the directory.
 */
int snap_read_file_max(const char *dir, const char *name, size_t max,
    uint8_t **buf, size_t *len, char *err, size_t errlen);
/* snap_read_file is snap_read_file_max without a size limit. */
int snap_read_file(const char *dir, const char *name, uint8_t **buf,
    size_t *len, char *err, size_t errlen);

/* What snap_stat_file learns from a snapshot file without reading it all. */
struct snap_info {
	uint64_t bytes;            /* file size */
	uint64_t position;         /* the stream's position */
	uint64_t created_ms;       /* Unix time of encoding, ms */
	bool has_owner;            /* an OWNER section was found */
	uint32_t owner;
	char stream_id[SNAP_ID_MAX + 1];
};

/*
 * snap_info_head reads position, creation time and stream ID from h, the
 * first hlen (>= SNAP_HEAD_SIZE) bytes of a snapshot of bytes bytes, with
 * the header's checksum checked; the owner is not in the header (has_owner
 * stays false).  Returns 0 with *out set or INFINI_ECORRUPT.  It lets a
 * store that keeps the header beside the bytes list snapshots unread.
 */
int snap_info_head(const uint8_t *h, size_t hlen, uint64_t bytes,
    struct snap_info *out);

/*
 * snap_stat_file opens dir/name as snap_read_file_max does and reads only
 * its header (checked: magic, version, checksum) and its OWNER section
 * (checksum checked), walking the section headers to find it.  Returns 0
 * with *out set, or the errors of snap_read_file_max, INFINI_ECORRUPT for
 * a bad header or owner section.
 */
int snap_stat_file(const char *dir, const char *name, size_t max,
    struct snap_info *out, char *err, size_t errlen);

/*
 * snap_clean_temps removes from dir the temp files snap_write_file leaves
 * when the writer dies mid-write (".NAME.tmp.PID.N", regular files only).
 * Run it before anything writes to dir.  Returns 0 with *removed set, or
 * an INFINI_E* code when dir cannot be read.
 */
int snap_clean_temps(const char *dir, int *removed);

/*
 * snap_fault (tests only) makes the nth file operation from now (0: the
 * next; counting openat, write, fsync, close, rename and read) fail with
 * errno err, once; nth < 0 turns it off.  snap_fault_pending says whether
 * the fault is still armed (the operation count ran out first).
 */
void snap_fault(int nth, int err);
bool snap_fault_pending(void);

#endif /* SNAPSHOT_H */
