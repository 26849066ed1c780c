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

/* X(NAME, text) */
#define INFINI_ERRORS(X)                                                   \
	X(EINVAL, "invalid argument")                                      \
	X(ENOMEM, "out of memory")                                         \
	X(ENOENT, "not found")                                             \
	X(EEXIST, "already exists")                                        \
	X(EIO, "input/output error")                                       \
	X(ECORRUPT, "corrupt or malformed data")                           \
	X(EUNSUPPORTED, "unsupported")                                     \
	X(ENODEV, "no usable Vulkan device")                               \
	X(EDEVICE, "device error")                                         \
	X(ERANGE, "value out of range")                                    \
	X(EFULL, "capacity exhausted")                                     \
	X(EPROTO, "protocol error")                                        \
	X(EPERM, "permission denied")                                      \
	X(ECANCELED, "cancelled")                                          \
	X(ETIMEDOUT, "timed out")                                          \
	X(ESTATE, "wrong state for this operation")

enum infini_err {
	INFINI_OK = 0,
#define INFINI_X_ENUM(name, text) INFINI_##name,
	INFINI_ERRORS(INFINI_X_ENUM)
#undef INFINI_X_ENUM
	INFINI_ERR_COUNT
};

/* infini_strerror returns a static, human-readable text for an error code;
 * unknown codes give "unknown error". */
const char *infini_strerror(int err);

/* infini_errname returns the code's symbolic name ("INFINI_EINVAL"). */
const char *infini_errname(int err);

#ifdef __cplusplus
}
#endif
#endif /* INFINI_ERR_H */
