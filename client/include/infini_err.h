/*
 * infini_err.h - the one list of infinid error codes.
 *
 * Every function in the engine, the daemon and libinfini returns 0 on success
 * or one of these positive codes.  The list is an X-macro so that the enum and
 * infini_strerror() cannot drift apart; the wire status mapping is derived from
 * the same table.
 */
#ifndef INFINI_ERR_H
#define INFINI_ERR_H

#ifdef __cplusplus
extern "C" {
#endif

/* X(NAME, text, status): status is the gRPC canonical code (proto
 * infini.v1.Code) the daemon answers with for this error. */
#define INFINI_ERRORS(X)                                                   \
	X(EINVAL, "invalid argument", 3)                                   \
	X(ENOMEM, "out of memory", 8)                                      \
	X(ENOENT, "not found", 5)                                          \
	X(EEXIST, "already exists", 6)                                     \
	X(EIO, "input/output error", 13)                                   \
	X(ECORRUPT, "corrupt or malformed data", 15)                       \
	X(EUNSUPPORTED, "unsupported", 12)                                 \
	X(ENODEV, "no usable Vulkan device", 14)                           \
	X(EDEVICE, "device error", 13)                                     \
	X(ERANGE, "value out of range", 11)                                \
	X(EFULL, "capacity exhausted", 8)                                  \
	X(EPROTO, "protocol error", 3)                                     \
	X(EPERM, "permission denied", 7)                                   \
	X(ECANCELED, "cancelled", 1)                                       \
	X(ETIMEDOUT, "timed out", 4)                                       \
	X(ESTATE, "wrong state for this operation", 9)                     \
	X(EUNAVAILABLE, "service unavailable", 14)                         \
	X(EINTERNAL, "internal error", 13)                                 \
	X(EABORTED, "changed meanwhile; try again", 10)

enum infini_err {
	INFINI_OK = 0,
#define INFINI_X_ENUM(name, text, status) INFINI_##name,
	INFINI_ERRORS(INFINI_X_ENUM)
#undef INFINI_X_ENUM
	INFINI_ERR_COUNT
};

/* infini_strerror returns a static, human-readable text for an error code;
 * unknown codes give "unknown error". */
const char *infini_strerror(int err);

/* infini_err_status returns the gRPC canonical code for an error (0 for
 * INFINI_OK, 2 UNKNOWN for codes outside the list). */
int infini_err_status(int err);

/* infini_err_from_status maps a gRPC canonical code back to the error
 * that best describes it (0 for OK). */
int infini_err_from_status(int status);

/* infini_errname returns the code's symbolic name ("INFINI_EINVAL"). */
const char *infini_errname(int err);

#ifdef __cplusplus
}
#endif
#endif /* INFINI_ERR_H */
