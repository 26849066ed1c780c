/*
 * store_dir.c - the directory state store, the embedded default: one file
 * per entry, stream states in state_dir/streams and named snapshots in
 * state_dir/snapshots.  The files, their names and the durability rules are
 * those of snapshot.c (snap_write_file: temp file, fsync, rename, fsync of
 * the directory; snap_read_file_max: no symlinks, no FIFOs, size checked
 * before reading), so a state_dir written before the store existed reads
 * the same and the other way round.
 *
 * One daemon uses a directory (its ipc:// socket claim keeps a second one
 * off), so there are no leases here and fences are ignored.  The owner of
 * an entry is the OWNER section inside its snapshot bytes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "infini_err.h"
#include "snapshot.h"
#include "store_impl.h"

static const char *
dir_of(struct sst *st, enum sst_kind k)
{
	return (st->dir[k == SST_STREAM ? 0 : 1]);
}

/* errno_code maps a failed file call's errno to our codes. */
static int
errno_code(int e)
{
	switch (e) {
	case ENOENT: return (INFINI_ENOENT);
	case EACCES:
	case EPERM:
	case EROFS: return (INFINI_EPERM);
	case ENOMEM: return (INFINI_ENOMEM);
	default: return (INFINI_EIO);
	}
}

static int
dir_put(struct sst *st, enum sst_kind k, const char *name,
    const struct sst_fence *f, uint32_t owner, const uint8_t *buf,
    size_t len, int flags, char *err, size_t errlen)
{
	char path[sizeof(st->dir[0]) + SST_NAME_MAX + 2];
	struct stat sb;

	(void)f;
	(void)owner;
	/* Checked before the write, not by it: the only writer of named
	 * snapshots is the daemon's one snapshot thread. */
	if (flags & SST_PUT_NEW) {
		snprintf(path, sizeof(path), "%s/%s", dir_of(st, k), name);
		if (lstat(path, &sb) == 0)
			return (sst_errf(INFINI_EEXIST, err, errlen, "snapshot "
			    "%s exists", name));
	}
	return (snap_write_file(dir_of(st, k), name, buf, len, err, errlen));
}

static int
dir_get(struct sst *st, enum sst_kind k, const char *name, size_t max,
    uint8_t **buf, size_t *len, char *err, size_t errlen)
{
	return (snap_read_file_max(dir_of(st, k), name, max, buf, len, err,
	    errlen));
}

static int
dir_stat(struct sst *st, enum sst_kind k, const char *name,
    struct sst_info *out, char *err, size_t errlen)
{
	struct snap_info in;
	int rv;

	if ((rv = snap_stat_file(dir_of(st, k), name, SIZE_MAX, &in, err,
	    errlen)) != 0)
		return (rv);
	memset(out, 0, sizeof(*out));
	out->bytes = in.bytes;
	out->has_owner = in.has_owner;
	out->owner = in.owner;
	out->has_head = true;
	out->position = in.position;
	out->created_ms = in.created_ms;
	snprintf(out->stream_id, sizeof(out->stream_id), "%s", in.stream_id);
	return (0);
}

static int
dir_del(struct sst *st, enum sst_kind k, const char *name,
    const struct sst_fence *f, char *err, size_t errlen)
{
	char path[sizeof(st->dir[0]) + SST_NAME_MAX + 2];

	(void)f;
	snprintf(path, sizeof(path), "%s/%s", dir_of(st, k), name);
	if (unlink(path) != 0)
		return (sst_errf(errno_code(errno), err, errlen, "remove %s: "
		    "%s", name, strerror(errno)));
	return (0);
}

/* listed: does the directory entry e of dfd belong in a list of kind k? */
static bool
listed(int dfd, const struct dirent *e, enum sst_kind k)
{
	size_t n = strlen(e->d_name);
	struct stat sb;

	if (!snap_name_ok(e->d_name))
		return (false);
	if (k == SST_STREAM && (n <= 5 ||
	    strcmp(e->d_name + n - 5, ".snap") != 0))
		return (false);
	return (fstatat(dfd, e->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(sb.st_mode));
}

static int
dir_list(struct sst *st, enum sst_kind k, char ***names, size_t *n,
    char *err, size_t errlen)
{
	char **v = NULL;
	size_t nv = 0, cap = 0;
	struct dirent *e;
	DIR *dp;
	int rv = 0;

	if ((dp = opendir(dir_of(st, k))) == NULL)
		return (sst_errf(errno_code(errno), err, errlen, "cannot read "
		    "the %s directory: %s", k == SST_STREAM ? "streams" :
		    "snapshots", strerror(errno)));
	while (rv == 0 && (e = readdir(dp)) != NULL)
		if (listed(dirfd(dp), e, k))
			rv = sst_names_add(&v, &nv, &cap, e->d_name);
	closedir(dp);
	if (rv != 0) {
		sst_names_free(v, nv);
		return (sst_errf(rv, err, errlen, "out of memory"));
	}
	*names = v;
	*n = nv;
	return (0);
}

static void
dir_close(struct sst *st)
{
	(void)st;
}

static const struct sst_ops dir_ops = {
	.put = dir_put,
	.get = dir_get,
	.stat = dir_stat,
	.del = dir_del,
	.list = dir_list,
	.close = dir_close,
};

int
sst_dir_init(struct sst *st, const char *state_dir, char *err,
    size_t errlen)
{
	if (state_dir == NULL || state_dir[0] == '\0' ||
	    strlen(state_dir) + sizeof("/snapshots") > sizeof(st->dir[0]))
		return (sst_errf(INFINI_EINVAL, err, errlen, "state_dir must "
		    "be 1-%zu bytes", sizeof(st->dir[0]) -
		    sizeof("/snapshots")));
	snprintf(st->dir[0], sizeof(st->dir[0]), "%s/streams", state_dir);
	snprintf(st->dir[1], sizeof(st->dir[1]), "%s/snapshots", state_dir);
	snprintf(st->desc, sizeof(st->desc), "directory %s", state_dir);
	st->ops = &dir_ops;
	return (0);
}
