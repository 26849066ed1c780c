/*
 * store.c - the sst_ entry points: choose the backend from the URL, check
 * the arguments every backend would check, and forward through the ops
 * table (store_impl.h).  The backends are store_dir.c and store_redis.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infini_err.h"
#include "rconn.h"
#include "snapshot.h"
#include "store_impl.h"

_Static_assert(SST_NAME_MAX == SNAP_NAME_MAX, "one name rule for both");

int
sst_errf(int rv, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return (rv);
}

int
sst_names_add(char ***v, size_t *n, size_t *cap, const char *name)
{
	char *c, **nv;

	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		if ((nv = realloc(*v, ncap * sizeof(*nv))) == NULL)
			return (INFINI_ENOMEM);
		*v = nv;
		*cap = ncap;
	}
	if ((c = strdup(name)) == NULL)
		return (INFINI_ENOMEM);
	(*v)[(*n)++] = c;
	return (0);
}

void
sst_names_free(char **names, size_t n)
{
	for (size_t i = 0; names != NULL && i < n; i++)
		free(names[i]);
	free(names);
}

int
sst_open(const char *url, const char *state_dir, struct sst **out,
    char *err, size_t errlen)
{
	struct sst *st;
	int rv;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return (sst_errf(INFINI_ENOMEM, err, errlen, "out of memory"));
	if (url == NULL || url[0] == '\0' || strcmp(url, "dir") == 0)
		rv = sst_dir_init(st, state_dir, err, errlen);
	else if (strncmp(url, "redis://", 8) == 0 ||
	    strncmp(url, "redis-sentinel://", 17) == 0)
		rv = sst_redis_init(st, url, err, errlen);
	else
		rv = sst_errf(INFINI_EINVAL, err, errlen, "state_store \"%s\": "
		    "use \"dir\", redis://HOST:PORT/DB or "
		    "redis-sentinel://HOST:PORT[,HOST:PORT]/MASTER/DB", url);
	if (rv != 0) {
		free(st);
		return (rv);
	}
	*out = st;
	return (0);
}

void
sst_close(struct sst *st)
{
	if (st == NULL)
		return;
	st->ops->close(st);
	free(st);
}

bool
sst_shared(const struct sst *st)
{
	return (st->rc != NULL);
}

void
sst_set_timeout(struct sst *st, int ms)
{
	if (st->rc != NULL)
		rconn_set_timeout(st->rc, ms);
}

const char *
sst_describe(const struct sst *st)
{
	return (st->desc);
}

/* check_name refuses what no backend may store. */
static int
check_name(enum sst_kind k, const char *name, char *err, size_t errlen)
{
	if (k != SST_STREAM && k != SST_NAMED)
		return (sst_errf(INFINI_EINVAL, err, errlen, "store: no such "
		    "kind of entry (%d)", (int)k));
	if (!snap_name_ok(name))
		return (sst_errf(INFINI_EINVAL, err, errlen, "store: bad name "
		    "(1-%d of [A-Za-z0-9._:-], not starting with '.')",
		    SST_NAME_MAX));
	return (0);
}

int
sst_put(struct sst *st, enum sst_kind k, const char *name,
    const struct sst_fence *f, uint32_t owner, const uint8_t *buf,
    size_t len, int flags, char *err, size_t errlen)
{
	int rv;

	if ((rv = check_name(k, name, err, errlen)) != 0)
		return (rv);
	return (st->ops->put(st, k, name, f, owner, buf, len, flags, err,
	    errlen));
}

int
sst_get(struct sst *st, enum sst_kind k, const char *name, size_t max,
    uint8_t **buf, size_t *len, char *err, size_t errlen)
{
	int rv;

	if ((rv = check_name(k, name, err, errlen)) != 0)
		return (rv);
	return (st->ops->get(st, k, name, max, buf, len, err, errlen));
}

int
sst_stat(struct sst *st, enum sst_kind k, const char *name,
    struct sst_info *out, char *err, size_t errlen)
{
	int rv;

	if ((rv = check_name(k, name, err, errlen)) != 0)
		return (rv);
	return (st->ops->stat(st, k, name, out, err, errlen));
}

int
sst_del(struct sst *st, enum sst_kind k, const char *name,
    const struct sst_fence *f, char *err, size_t errlen)
{
	int rv;

	if ((rv = check_name(k, name, err, errlen)) != 0)
		return (rv);
	return (st->ops->del(st, k, name, f, err, errlen));
}

int
sst_list(struct sst *st, enum sst_kind k, char ***names, size_t *n,
    char *err, size_t errlen)
{
	if (k != SST_STREAM && k != SST_NAMED)
		return (sst_errf(INFINI_EINVAL, err, errlen, "store: no such "
		    "kind of entry (%d)", (int)k));
	return (st->ops->list(st, k, names, n, err, errlen));
}

/* list_each is sst_list_info for a store without a list_info of its own:
 * the names, then a stat of each (fine for a directory, where each stat
 * is a local open and two reads). */
static int
list_each(struct sst *st, enum sst_kind k, struct sst_entry **out,
    size_t *n, char *err, size_t errlen)
{
	struct sst_entry *v;
	char **names = NULL, e2[256];
	size_t nn = 0, m = 0;
	int rv;

	if ((rv = st->ops->list(st, k, &names, &nn, err, errlen)) != 0)
		return (rv);
	if ((v = calloc(nn ? nn : 1, sizeof(*v))) == NULL) {
		sst_names_free(names, nn);
		return (sst_errf(INFINI_ENOMEM, err, errlen, "out of memory"));
	}
	for (size_t i = 0; i < nn; i++) {
		if (st->ops->stat(st, k, names[i], &v[m].info, e2,
		    sizeof(e2)) != 0)
			continue;
		snprintf(v[m].name, sizeof(v[m].name), "%s", names[i]);
		m++;
	}
	sst_names_free(names, nn);
	*out = v;
	*n = m;
	return (0);
}

int
sst_list_info(struct sst *st, enum sst_kind k, struct sst_entry **out,
    size_t *n, char *err, size_t errlen)
{
	if (k != SST_STREAM && k != SST_NAMED)
		return (sst_errf(INFINI_EINVAL, err, errlen, "store: no such "
		    "kind of entry (%d)", (int)k));
	if (st->ops->list_info != NULL)
		return (st->ops->list_info(st, k, out, n, err, errlen));
	return (list_each(st, k, out, n, err, errlen));
}
