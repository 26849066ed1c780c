/*
 * store_impl.h - what the two state stores implement (store.h's sst_ calls
 * go through this table) and the helpers they share.  Internal to
 * daemon/store/.
 */
#ifndef SST_STORE_IMPL_H
#define SST_STORE_IMPL_H

#include <stdarg.h>

#include "store.h"

struct rconn;

struct sst_ops {
	int (*put)(struct sst *, enum sst_kind, const char *,
	    const struct sst_fence *, uint32_t, const uint8_t *, size_t, int,
	    char *, size_t);
	int (*get)(struct sst *, enum sst_kind, const char *, size_t,
	    uint8_t **, size_t *, char *, size_t);
	int (*stat)(struct sst *, enum sst_kind, const char *,
	    struct sst_info *, char *, size_t);
	int (*del)(struct sst *, enum sst_kind, const char *,
	    const struct sst_fence *, char *, size_t);
	int (*list)(struct sst *, enum sst_kind, char ***, size_t *, char *,
	    size_t);
	/* NULL: sst_list_info is sst_list plus sst_stat per name. */
	int (*list_info)(struct sst *, enum sst_kind, struct sst_entry **,
	    size_t *, char *, size_t);
	void (*close)(struct sst *);
};

struct sst {
	const struct sst_ops *ops;
	char desc[1200];
	/* The directory store: state_dir/streams and state_dir/snapshots. */
	char dir[2][1100];
	/* A Redis store: its connection (rconn.h); NULL for a directory. */
	struct rconn *rc;
};

/* The backends' constructors: fill st (zeroed, ops unset) or fail. */
int sst_dir_init(struct sst *st, const char *state_dir, char *err,
    size_t errlen);
int sst_redis_init(struct sst *st, const char *url, char *err,
    size_t errlen);

/* sst_errf writes a message to err (when errlen > 0) and returns rv. */
int sst_errf(int rv, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* sst_names_add appends a copy of name to the growing list *v (*n used,
 * *cap allocated).  0 or INFINI_ENOMEM. */
int sst_names_add(char ***v, size_t *n, size_t *cap, const char *name);

#endif /* SST_STORE_IMPL_H */
