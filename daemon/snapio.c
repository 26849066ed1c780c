/*
 * snapio.c - named snapshots: their directory, their owners and their file
 * I/O, on a thread of its own.
 *
 * Named snapshots live in state_dir/snapshots, a directory of their own so
 * that a name can never be another file of state_dir (the ipc socket, the
 * streams/ folder), unless the state store is shared (state_store =
 * redis://...): then they live in the store (store/store.h, SST_NAMED),
 * so that every daemon sharing it lists, restores and deletes the same
 * ones, and the owner is kept beside the bytes as well as in them.  The
 * checks below are the same for both; only the I/O steps (owner_of,
 * bytes_of, the write, read and delete in run_*, and the listing) choose
 * between files and store (in_store).  Every operation on them runs here
 * with d->mu released: a slow disk or Redis, a file as large as the model
 * allows or a FIFO planted under a snapshot's name (opened O_NONBLOCK,
 * then refused) holds up only this queue, never the scheduler or Health.
 * The thread takes d->mu only to answer.  Its work comes as items
 * (state.h), answered with an error code or a typed result like the
 * scheduler's; a Restore by name goes on to the scheduler once the
 * snapshot is read and checked.
 *
 * Ownership: a named snapshot carries the UID of the caller who wrote it in
 * its OWNER section (docs/snapshot-format.md), so it survives a restart
 * with the file; a file without one (copied in by an administrator, or from
 * an older version) belongs to root.  The owner, root and admin_group (who
 * reach the daemon as UID 0) may restore, replace, list and delete it;
 * anyone else gets PERMISSION_DENIED.  Replacing even one's own snapshot
 * needs the request's overwrite flag.  Messages name the snapshot, never a
 * server path; the log has the paths.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state.h"
#include "log.h"
#include "snapshot.h"
#include "store/store.h"

#define SIO_LIST_MAX 100000     /* entries one ListSnapshots returns */

/* The outcome of an item's file work, made without d->mu and answered
 * with it. */
struct sio_out {
	int err;                   /* 0, or an INFINI_E* code with msg */
	char msg[512];
	struct item_result res;
	struct snap_entry *list;   /* list: res.list (owned) */
};

void
sio_queue(struct infinid *d, struct item *it)
{
	if (!d->have_sio) {
		item_answer(d, it, INFINI_EUNAVAILABLE, NULL, "named snapshots "
		    "are not available");
		item_free(it);
		return;
	}
	it->next = NULL;
	if (d->sio_tail != NULL)
		d->sio_tail->next = it;
	else
		d->sio_head = it;
	d->sio_tail = it;
	pthread_cond_signal(&d->sio_cv);
}

static void
set_out(struct sio_out *o, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
set_out(struct sio_out *o, int err, const char *fmt, ...)
{
	va_list ap;

	o->err = err;
	va_start(ap, fmt);
	vsnprintf(o->msg, sizeof(o->msg), fmt, ap);
	va_end(ap);
}

/* others_refused: PERMISSION_DENIED in o when owner's snapshot is not
 * the caller's to use; true then. */
static bool
others_refused(struct infinid *d, const struct item *j,
    struct sio_out *o, uint32_t owner)
{
	if (strm_may_use(d, j->uid, owner))
		return (false);
	set_out(o, INFINI_EPERM, "snapshot '%s' belongs to another "
	    "user", j->name);
	return (true);
}

/* in_store: are named snapshots kept in a shared store (not files)? */
static bool
in_store(const struct infinid *d)
{
	return (d->store != NULL && sst_shared(d->store));
}

/* where: the snapshots' place, for log lines (never for clients). */
static const char *
where(const struct infinid *d)
{
	return (in_store(d) ? sst_describe(d->store) : d->snap_dir);
}

/* from_sst: an sst_info as the snap_info the directory code gives. */
static void
from_sst(const struct sst_info *s, struct snap_info *in)
{
	memset(in, 0, sizeof(*in));
	in->bytes = s->bytes;
	in->has_owner = s->has_owner;
	in->owner = s->owner;
	in->position = s->position;
	in->created_ms = s->created_ms;
	snprintf(in->stream_id, sizeof(in->stream_id), "%s", s->stream_id);
}

/*
 * owner_of finds who owns the entry called name: 0 with *owner set when it
 * is a snapshot (no OWNER section: root), INFINI_ENOENT when there is
 * none, or another error when something else is there (a symlink, a FIFO,
 * a damaged file), which only root may replace or delete.  A shared
 * store answers from the owner it keeps beside the bytes; its other errors
 * (INFINI_EUNAVAILABLE when Redis is down) are not "something is there".
 */
static int
owner_of(struct infinid *d, const char *name, uint32_t *owner,
    struct snap_info *info, char *err, size_t errlen)
{
	struct snap_info in;
	struct sst_info si;
	int rv;

	if (in_store(d)) {
		if ((rv = sst_stat(d->store, SST_NAMED, name, &si, err,
		    errlen)) == 0)
			from_sst(&si, &in);
	} else
		rv = snap_stat_file(d->snap_dir, name, d->snap_max, &in, err,
		    errlen);

	if (rv == 0) {
		*owner = in.has_owner ? in.owner : 0;
		if (info != NULL)
			*info = in;
	}
	return (rv);
}

/*
 * bytes_of adds up the named snapshots uid owns, leaving out the one called
 * except (the one a write would replace).  Files it cannot read count as
 * nothing.  0, or an errno.
 */
static int
bytes_of(struct infinid *d, uint32_t uid, const char *except, uint64_t *sum)
{
	struct dirent *e;
	char err[256];
	DIR *dp;

	*sum = 0;
	if (in_store(d)) {
		/* Each daemon checks the quota alone: two daemons writing
		 * for one UID at the same moment may both pass it. */
		struct sst_entry *v = NULL;
		size_t n = 0;
		if (sst_list_info(d->store, SST_NAMED, &v, &n, err,
		    sizeof(err)) != 0)
			return (EIO);
		for (size_t i = 0; i < n; i++)
			if ((v[i].info.has_owner ? v[i].info.owner : 0) ==
			    uid && strcmp(v[i].name, except) != 0)
				*sum += v[i].info.bytes;
		free(v);
		return (0);
	}
	if ((dp = opendir(d->snap_dir)) == NULL)
		return (errno);
	while ((e = readdir(dp)) != NULL) {
		struct snap_info in;
		if (!snap_name_ok(e->d_name) || strcmp(e->d_name, except) == 0)
			continue;
		if (snap_stat_file(d->snap_dir, e->d_name, d->snap_max, &in,
		    err, sizeof(err)) == 0 &&
		    (in.has_owner ? in.owner : 0) == uid)
			*sum += in.bytes;
	}
	closedir(dp);
	return (0);
}

/* over_quota: would writing j take j->uid over max_snapshot_bytes_per_uid?
 * Sets o when it would.  Root (and admin_group) have no quota. */
static bool
over_quota(struct infinid *d, struct item *j, struct sio_out *o)
{
	uint64_t limit = (uint64_t)d->cfg.max_snapshot_bytes_per_uid, used;

	if (limit == 0 || j->uid == 0)
		return (false);
	if (bytes_of(d, j->uid, j->name, &used) != 0)
		return (false);   /* the write itself will say what is wrong */
	if (used + j->data_len <= limit)
		return (false);
	set_out(o, INFINI_EFULL, "named snapshots of uid %u would "
	    "take %llu bytes (%llu kept + %zu new), over "
	    "max_snapshot_bytes_per_uid (%llu): delete some first (infini "
	    "rm-snapshot)", j->uid, (unsigned long long)(used + j->data_len),
	    (unsigned long long)used, j->data_len, (unsigned long long)limit);
	return (true);
}

static void
run_write(struct infinid *d, struct item *j, struct sio_out *o)
{
	char err[512];
	uint32_t owner = 0;
	int rv;

	rv = owner_of(d, j->name, &owner, NULL, err, sizeof(err));
	if (rv == 0 || (rv != INFINI_ENOENT && rv != INFINI_ENOMEM &&
	    rv != INFINI_EIO && rv != INFINI_EPERM &&
	    rv != INFINI_EUNAVAILABLE)) {
		/* Something is there: a snapshot (rv 0) or a file that is
		 * not one, which belongs to root. */
		if (others_refused(d, j, o, owner))
			return;
		if (!j->overwrite) {
			set_out(o, INFINI_EEXIST, "snapshot '%s' exists; "
			    "ask to overwrite it (infini snapshot --force)",
			    j->name);
			return;
		}
		if (rv != 0)
			LOG(LOG_NOTICE, "snapshot %s/%s replaced: %s",
			    where(d), j->name, err);
	} else if (rv != INFINI_ENOENT) {
		LOG(LOG_ERR, "snapshot %s/%s: %s", where(d), j->name, err);
		set_out(o, snap_err(rv), "%s", err);
		return;
	}
	if (over_quota(d, j, o))
		return;
	if (in_store(d))
		/* Create-only unless asked: another daemon may have taken
		 * the name since the check above, and the store settles it
		 * in one step. */
		rv = sst_put(d->store, SST_NAMED, j->name, NULL, j->uid,
		    j->data, j->data_len, (j->overwrite ? 0 : SST_PUT_NEW) |
		    (j->uid != 0 ? SST_PUT_OWNED : 0), err, sizeof(err));
	else
		rv = snap_write_file(d->snap_dir, j->name, j->data,
		    j->data_len, err, sizeof(err));
	if (rv == INFINI_EEXIST) {
		set_out(o, rv, "snapshot '%s' exists; ask to overwrite it "
		    "(infini snapshot --force)", j->name);
		return;
	}
	if (rv != 0) {
		LOG(LOG_ERR, "snapshot %s/%s: %s", where(d), j->name, err);
		set_out(o, rv, "%s", err);
		return;
	}
	LOG(LOG_INFO, "snapshot %s written (%zu bytes, uid %u)", j->name,
	    j->data_len, j->uid);
	o->res.name = j->name;
	o->res.bytes = j->data_len;
	if (j->export_bytes)
		o->res.data = j->data;
}

static void
run_restore(struct infinid *d, struct item *j, struct sio_out *o)
{
	struct eng_stream_state *st;
	struct snap_meta meta;
	uint8_t *buf = NULL;
	size_t len = 0;
	char err[512];
	uint32_t owner = 0;
	int rv;

	/* Who owns it is settled from the header before the file is read
	 * whole, so nobody learns anything of another user's snapshot but
	 * that it is not theirs. */
	if ((rv = owner_of(d, j->name, &owner, NULL, err, sizeof(err))) != 0) {
		if (rv != INFINI_ENOENT)
			LOG(LOG_NOTICE, "restore from %s/%s: %s", where(d),
			    j->name, err);
		set_out(o, snap_err(rv), "%s", err);
		return;
	}
	if (others_refused(d, j, o, owner))
		return;
	if (in_store(d))
		rv = sst_get(d->store, SST_NAMED, j->name, d->snap_max, &buf,
		    &len, err, sizeof(err));
	else
		rv = snap_read_file_max(d->snap_dir, j->name, d->snap_max,
		    &buf, &len, err, sizeof(err));
	if (rv != 0) {
		set_out(o, snap_err(rv), "%s", err);
		return;
	}
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		free(buf);
		set_out(o, INFINI_ENOMEM, "out of memory");
		return;
	}
	rv = snap_decode_model(buf, len, d->model, &meta, st, err,
	    sizeof(err));
	free(buf);
	if (rv != 0) {
		free(st);
		set_out(o, snap_err(rv), "snapshot '%s' refused: %s", j->name,
		    err);
		return;
	}
	/* The file changed between the two reads: check again. */
	if ((meta.has_owner ? meta.owner : 0) != owner) {
		eng_stream_state_fini(st);
		free(st);
		set_out(o, INFINI_EABORTED, "snapshot '%s' changed while it was "
		    "read; try again", j->name);
		return;
	}
	j->state = st;
}

static int
by_name(const void *a, const void *b)
{
	return (strcmp(*(char *const *)a, *(char *const *)b));
}

static void
free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* add_entry appends the snapshot (name, owner, in) to o->list[*k] when
 * j's caller may use it. */
static void
add_entry(struct infinid *d, const struct item *j, struct sio_out *o,
    size_t *k, const char *name, uint32_t owner, const struct snap_info *in)
{
	struct snap_entry *s = &o->list[*k];

	if (!strm_may_use(d, j->uid, owner))
		return;
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->owner = owner;
	s->bytes = in->bytes;
	s->position = in->position;
	s->created_ms = in->created_ms;
	/* The id was read from the snapshot: passed on only if valid. */
	if (wire_valid_id(in->stream_id))
		snprintf(s->stream_id, sizeof(s->stream_id), "%s",
		    in->stream_id);
	(*k)++;
}

static int
by_entry_name(const void *a, const void *b)
{
	return (strcmp(((const struct sst_entry *)a)->name,
	    ((const struct sst_entry *)b)->name));
}

/* list_store is run_list for a shared store: one sst_list_info call
 * gives every entry with its owner and header. */
static void
list_store(struct infinid *d, struct item *j, struct sio_out *o)
{
	struct sst_entry *v = NULL;
	char err[512];
	size_t n = 0, k = 0;
	int rv;

	if ((rv = sst_list_info(d->store, SST_NAMED, &v, &n, err,
	    sizeof(err))) != 0) {
		LOG(LOG_ERR, "cannot list snapshots in %s: %s", where(d), err);
		set_out(o, rv == INFINI_ENOMEM ? rv : INFINI_EUNAVAILABLE,
		    "cannot list the snapshots: %s", err);
		return;
	}
	if (n > SIO_LIST_MAX)
		n = SIO_LIST_MAX;
	if (n > 1)
		qsort(v, n, sizeof(*v), by_entry_name);
	if ((o->list = calloc(n ? n : 1, sizeof(*o->list))) == NULL) {
		free(v);
		set_out(o, INFINI_ENOMEM, "out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct snap_info in;
		from_sst(&v[i].info, &in);
		add_entry(d, j, o, &k, v[i].name, in.has_owner ? in.owner : 0,
		    &in);
	}
	free(v);
	o->res.list = o->list;
	o->res.nlist = k;
}

/* run_list lists the snapshots j's caller may use, by name. */
static void
run_list(struct infinid *d, struct item *j, struct sio_out *o)
{
	char err[512], **names = NULL;
	size_t cap = 0, n = 0, k = 0;
	struct dirent *e;
	DIR *dp;

	if (in_store(d)) {
		list_store(d, j, o);
		return;
	}
	if ((dp = opendir(d->snap_dir)) == NULL) {
		int en = errno;
		LOG(LOG_ERR, "cannot read %s: %s", d->snap_dir, strerror(en));
		set_out(o, INFINI_EUNAVAILABLE, "cannot read the snapshot "
		    "directory: %s", strerror(en));
		return;
	}
	while ((e = readdir(dp)) != NULL && n < SIO_LIST_MAX) {
		if (!snap_name_ok(e->d_name))
			continue;
		if (n == cap) {
			size_t nc = cap ? 2 * cap : 64;
			char **p = realloc(names, nc * sizeof(*p));
			if (p == NULL)
				break;
			names = p;
			cap = nc;
		}
		if ((names[n] = strdup(e->d_name)) == NULL)
			break;
		n++;
	}
	closedir(dp);
	if (n > 1)
		qsort(names, n, sizeof(*names), by_name);
	if ((o->list = calloc(n ? n : 1, sizeof(*o->list))) == NULL) {
		set_out(o, INFINI_ENOMEM, "out of memory");
		free_names(names, n);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct snap_info in;
		uint32_t owner = 0;
		if (owner_of(d, names[i], &owner, &in, err, sizeof(err)) != 0) {
			LOG(LOG_DEBUG, "ListSnapshots skips %s: %s", names[i],
			    err);
			continue;
		}
		add_entry(d, j, o, &k, names[i], owner, &in);
	}
	free_names(names, n);
	o->res.list = o->list;
	o->res.nlist = k;
}

static void
run_delete(struct infinid *d, struct item *j, struct sio_out *o)
{
	char err[512];
	uint32_t owner = 0;
	int rv, dfd;

	rv = owner_of(d, j->name, &owner, NULL, err, sizeof(err));
	if (rv == INFINI_ENOENT || rv == INFINI_EIO || rv == INFINI_ENOMEM ||
	    rv == INFINI_EPERM || rv == INFINI_EUNAVAILABLE) {
		set_out(o, snap_err(rv), "%s", err);
		return;
	}
	/* A damaged file or a non-file under the name: root's. */
	if (others_refused(d, j, o, owner))
		return;
	if (in_store(d)) {
		if ((rv = sst_del(d->store, SST_NAMED, j->name, NULL, err,
		    sizeof(err))) != 0) {
			LOG(LOG_ERR, "delete %s/%s: %s", where(d), j->name,
			    err);
			set_out(o, rv, "cannot delete snapshot '%s': %s",
			    j->name, err);
			return;
		}
		LOG(LOG_INFO, "snapshot %s deleted (uid %u)", j->name, j->uid);
		return;
	}
	if ((dfd = open(d->snap_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    unlinkat(dfd, j->name, 0) != 0) {
		int en = errno;
		LOG(LOG_ERR, "delete %s/%s: %s", d->snap_dir, j->name,
		    strerror(en));
		set_out(o, en == ENOENT ? INFINI_ENOENT : INFINI_EIO,
		    "cannot delete snapshot '%s': %s", j->name,
		    strerror(en));
		if (dfd >= 0)
			close(dfd);
		return;
	}
	(void)fsync(dfd);
	close(dfd);
	LOG(LOG_INFO, "snapshot %s deleted (uid %u)", j->name, j->uid);
}

/* sio_answer answers j from o and frees it, or sends a Restore read and
 * checked here on to the scheduler; d->mu held. */
static void
sio_answer(struct infinid *d, struct item *j, struct sio_out *o)
{
	if (o->err == 0 && j->kind == IT_RESTORE && j->ops != NULL)
		j->ops->loaded(d, j);
	else {
		item_answer(d, j, o->err, &o->res, "%s", o->msg);
		item_free(j);
	}
	free(o->list);
}

static void *
sio_main(void *arg)
{
	struct infinid *d = arg;
	struct item *j;

	pthread_mutex_lock(&d->mu);
	while (!d->sio_stopping) {
		if ((j = d->sio_head) == NULL) {
			pthread_cond_wait(&d->sio_cv, &d->mu);
			continue;
		}
		if ((d->sio_head = j->next) == NULL)
			d->sio_tail = NULL;
		pthread_mutex_unlock(&d->mu);
		struct sio_out o = { 0 };
		switch (j->kind) {
		case IT_SNAPSHOT: run_write(d, j, &o); break;
		case IT_RESTORE: run_restore(d, j, &o); break;
		case IT_LIST_SNAPSHOTS: run_list(d, j, &o); break;
		case IT_DELETE_SNAPSHOT: run_delete(d, j, &o); break;
		default: set_out(&o, INFINI_EINTERNAL, "not file work"); break;
		}
		pthread_mutex_lock(&d->mu);
		sio_answer(d, j, &o);
	}
	pthread_mutex_unlock(&d->mu);
	return (NULL);
}

/* make_dir creates state_dir/snapshots (0700) unless it exists as a
 * directory (not a symlink to one). */
static void
make_dir(struct infinid *d)
{
	struct stat sb;
	int n;

	if (mkdir(d->snap_dir, 0700) != 0 && errno != EEXIST) {
		LOG(LOG_WARNING, "cannot create %s: %s; named snapshots fail "
		    "until it exists", d->snap_dir, strerror(errno));
		return;
	}
	if (lstat(d->snap_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
		LOG(LOG_WARNING, "%s is not a directory; named snapshots fail "
		    "until it is", d->snap_dir);
		return;
	}
	if (snap_clean_temps(d->snap_dir, &n) == 0 && n > 0)
		LOG(LOG_NOTICE, "removed %d temporary file%s left in %s by an "
		    "interrupted snapshot", n, n == 1 ? "" : "s", d->snap_dir);
}

int
sio_start(struct infinid *d)
{
	snprintf(d->snap_dir, sizeof(d->snap_dir), "%s/snapshots",
	    d->cfg.state_dir);
	d->snap_max = snap_max_size(d->model);
	if (!in_store(d))
		make_dir(d);
	clk_cond_init(&d->sio_cv);
	if (pthread_create(&d->sio, NULL, sio_main, d) != 0)
		return (INFINI_ENOMEM);
	d->have_sio = true;
	return (0);
}

void
sio_stop(struct infinid *d)
{
	struct item *j;

	if (!d->have_sio)
		return;
	pthread_mutex_lock(&d->mu);
	d->sio_stopping = true;
	pthread_cond_broadcast(&d->sio_cv);
	pthread_mutex_unlock(&d->mu);
	pthread_join(d->sio, NULL);
	pthread_mutex_lock(&d->mu);
	d->have_sio = false;
	while ((j = d->sio_head) != NULL) {
		d->sio_head = j->next;
		item_answer(d, j, INFINI_EUNAVAILABLE, NULL, "infinid is "
		    "shutting down");
		item_free(j);
	}
	d->sio_tail = NULL;
	pthread_mutex_unlock(&d->mu);
	pthread_cond_destroy(&d->sio_cv);
}
