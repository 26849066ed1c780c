/*
 * err.c - texts for the error codes listed in infini_err.h.
 */
#include "infini_err.h"

static const char *const err_text[] = {
	[INFINI_OK] = "success",
#define X(name, text, status) [INFINI_##name] = text,
	INFINI_ERRORS(X)
#undef X
};

static const char *const err_name[] = {
	[INFINI_OK] = "INFINI_OK",
#define X(name, text, status) [INFINI_##name] = "INFINI_" #name,
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

static const int err_status[] = {
	[INFINI_OK] = 0,
#define X(name, text, status) [INFINI_##name] = status,
	INFINI_ERRORS(X)
#undef X
};

int
infini_err_status(int err)
{
	if (err < 0 || err >= INFINI_ERR_COUNT)
		return (2);
	return (err_status[err]);
}

int
infini_err_from_status(int status)
{
	/* Several errors share a status; these are the canonical readings. */
	switch (status) {
	case 0: return (INFINI_OK);
	case 1: return (INFINI_ECANCELED);
	case 3: return (INFINI_EINVAL);
	case 4: return (INFINI_ETIMEDOUT);
	case 5: return (INFINI_ENOENT);
	case 6: return (INFINI_EEXIST);
	case 7: return (INFINI_EPERM);
	case 8: return (INFINI_EFULL);
	case 9: return (INFINI_ESTATE);
	case 10: return (INFINI_EABORTED);
	case 11: return (INFINI_ERANGE);
	case 12: return (INFINI_EUNSUPPORTED);
	case 14: return (INFINI_EUNAVAILABLE);
	case 15: return (INFINI_ECORRUPT);
	default: return (INFINI_EINTERNAL);
	}
}
