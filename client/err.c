/*
 * err.c - texts for the error codes listed in infini_err.h.
 */
#include "infini_err.h"

static const char *const err_text[] = {
	[INFINI_OK] = "success",
#define X(name, text) [INFINI_##name] = text,
	INFINI_ERRORS(X)
#undef X
};

static const char *const err_name[] = {
	[INFINI_OK] = "INFINI_OK",
#define X(name, text) [INFINI_##name] = "INFINI_" #name,
	INFINI_ERRORS(X)
#undef X
};

const char *
infini_strerror(int err)
{
	if (err < 0 || err >= INFINI_ERR_COUNT)
		return ("unknown error");
	return (err_text[err]);
}

const char *
infini_errname(int err)
{
	if (err < 0 || err >= INFINI_ERR_COUNT)
		return ("INFINI_E?");
	return (err_name[err]);
}
