/*
 * snapio.c - named snapshots: their directory, their owners and their file
 * I/O, on a thread of its own.
 *
 * Named snapshots live in state_dir/snapshots, a directory of their own so
 * that a name can never be another file of state_dir (the ipc socket, the
 * streams/ folder).  Every file operation on them runs here with d->mu
 * released: a slow disk, a file as large as the model allows or a FIFO
 * planted under a snapshot's name (opened O_NONBLOCK, then refused) holds
 * up only this queue, never the scheduler or Health.  The thread takes
 * d->mu only to answer.
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

#include "infinid.h"
#include "log.h"
#include "snapshot.h"

#define C(x) INFINI__V1__CODE__##x
#define SIO_LIST_MAX 100000     /* entries one ListSnapshots returns */

enum sio_kind { SIO_WRITE, SIO_RESTORE, SIO_LIST, SIO_DELETE };

struct sio_job {
	struct sio_job *next;
	enum sio_kind kind;
	struct work *w;
	uint32_t uid;
	uint32_t pipe;             /* restore: the caller's connection */
	char name[WIRE_ID_MAX + 1];
	char id[WIRE_ID_MAX + 1];  /* restore: the stream to create */
	bool overwrite, export_bytes;
	uint8_t *buf;              /* write: the encoded snapshot (owned) */
	size_t len;
};

/* The outcome of a job, built without d->mu and sent with it. */
struct sio_out {
	int code;
	char msg[512];
	ProtobufCMessage *body;    /* code 0: the reply */
	struct item *restore;      /* code 0 on restore: for the scheduler */
};

static void
job_free(struct sio_job *j)
{
	if (j != NULL) {
		free(j->buf);
		free(j);
	}
}

/* queue adds j (or answers RESOURCE_EXHAUSTED when it is NULL). */
static void
queue(struct infinid *d, struct work *w, struct sio_job *j)
{
	if (j == NULL) {
		srv_replyf(w, C(RESOURCE_EXHAUSTED), "out of memory");
		return;
	}
	if (!d->have_sio) {
		srv_replyf(w, C(UNAVAILABLE), "named snapshots are not "
		    "available");
		job_free(j);
		return;
	}
	j->w = w;
	if (d->sio_tail != NULL)
		d->sio_tail->next = j;
	else
		d->sio_head = j;
	d->sio_tail = j;
	pthread_cond_signal(&d->sio_cv);
}

static struct sio_job *
new_job(enum sio_kind k, uint32_t uid, const char *name)
{
	struct sio_job *j = calloc(1, sizeof(*j));
	if (j != NULL) {
		j->kind = k;
		j->uid = uid;
		snprintf(j->name, sizeof(j->name), "%s", name ? name : "");
	}
	return (j);
}

void
sio_write(struct infinid *d, struct work *w, uint32_t uid, const char *name,
    bool overwrite, bool export_bytes, uint8_t *buf, size_t len)
{
	struct sio_job *j = new_job(SIO_WRITE, uid, name);
	if (j == NULL)
		free(buf);
	else {
		j->overwrite = overwrite;
		j->export_bytes = export_bytes;
		j->buf = buf;
		j->len = len;
	}
	queue(d, w, j);
}

void
sio_restore(struct infinid *d, struct work *w, uint32_t uid, uint32_t pipe,
    const char *id, const char *name)
{
	struct sio_job *j = new_job(SIO_RESTORE, uid, name);
	if (j != NULL) {
		snprintf(j->id, sizeof(j->id), "%s", id);
		j->pipe = pipe;
	}
	queue(d, w, j);
}

void
sio_list(struct infinid *d, struct work *w, uint32_t uid)
{
	queue(d, w, new_job(SIO_LIST, uid, NULL));
}

void
sio_delete(struct infinid *d, struct work *w, uint32_t uid, const char *name)
{
	queue(d, w, new_job(SIO_DELETE, uid, name));
}

static void
set_out(struct sio_out *o, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
set_out(struct sio_out *o, int code, const char *fmt, ...)
{
	va_list ap;

	o->code = code;
	va_start(ap, fmt);
	vsnprintf(o->msg, sizeof(o->msg), fmt, ap);
	va_end(ap);
}

/* others_refused: PERMISSION_DENIED in o when owner's snapshot is not
 * the caller's to use; true then. */
static bool
others_refused(struct infinid *d, const struct sio_job *j,
    struct sio_out *o, uint32_t owner)
{
	if (strm_may_use(d, j->uid, owner))
		return (false);
	set_out(o, C(PERMISSION_DENIED), "snapshot '%s' belongs to another "
	    "user", j->name);
	return (true);
}

/*
 * owner_of finds who owns the entry called name: 0 with *owner set when it
 * is a snapshot (no OWNER section: root), INFINI_ENOENT when there is
 * none, or another error when something else is there (a symlink, a FIFO,
 * a damaged file), which only root may replace or delete.
 */
static int
owner_of(struct infinid *d, const char *name, uint32_t *owner,
    struct snap_info *info, char *err, size_t errlen)
{
	struct snap_info in;
	int rv = snap_stat_file(d->snap_dir, name, d->snap_max, &in, err,
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
over_quota(struct infinid *d, struct sio_job *j, struct sio_out *o)
{
	uint64_t limit = (uint64_t)d->cfg.max_snapshot_bytes_per_uid, used;

	if (limit == 0 || j->uid == 0)
		return (false);
	if (bytes_of(d, j->uid, j->name, &used) != 0)
		return (false);   /* the write itself will say what is wrong */
	if (used + j->len <= limit)
		return (false);
	set_out(o, C(RESOURCE_EXHAUSTED), "named snapshots of uid %u would "
	    "take %llu bytes (%llu kept + %zu new), over "
	    "max_snapshot_bytes_per_uid (%llu): delete some first (infini "
	    "rm-snapshot)", j->uid, (unsigned long long)(used + j->len),
	    (unsigned long long)used, j->len, (unsigned long long)limit);
	return (true);
}

static void
run_write(struct infinid *d, struct sio_job *j, struct sio_out *o)
{
	Infini__V1__SnapshotReply *r;
	char err[512];
	uint32_t owner = 0;
	int rv;

	rv = owner_of(d, j->name, &owner, NULL, err, sizeof(err));
	if (rv == 0 || (rv != INFINI_ENOENT && rv != INFINI_ENOMEM &&
	    rv != INFINI_EIO && rv != INFINI_EPERM)) {
		/* Something is there: a snapshot (rv 0) or a file that is
		 * not one, which belongs to root. */
		if (others_refused(d, j, o, owner))
			return;
		if (!j->overwrite) {
			set_out(o, C(ALREADY_EXISTS), "snapshot '%s' exists; "
			    "ask to overwrite it (infini snapshot --force)",
			    j->name);
			return;
		}
		if (rv != 0)
			LOG(LOG_NOTICE, "snapshot %s/%s replaced: %s",
			    d->snap_dir, j->name, err);
	} else if (rv != INFINI_ENOENT) {
		LOG(LOG_ERR, "snapshot %s/%s: %s", d->snap_dir, j->name, err);
		set_out(o, snap_status(rv), "%s", err);
		return;
	}
	if (over_quota(d, j, o))
		return;
	if ((rv = snap_write_file(d->snap_dir, j->name, j->buf, j->len, err,
	    sizeof(err))) != 0) {
		LOG(LOG_ERR, "snapshot %s/%s: %s", d->snap_dir, j->name, err);
		set_out(o, infini_err_status(rv), "%s", err);
		return;
	}
	LOG(LOG_INFO, "snapshot %s written (%zu bytes, uid %u)", j->name,
	    j->len, j->uid);
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		set_out(o, C(RESOURCE_EXHAUSTED), "out of memory");
		return;
	}
	infini__v1__snapshot_reply__init(r);
	r->name = j->name;
	r->bytes = j->len;
	if (j->export_bytes) {
		r->data.data = j->buf;
		r->data.len = j->len;
	}
	o->body = &r->base;
}

static void
run_restore(struct infinid *d, struct sio_job *j, struct sio_out *o)
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
			LOG(LOG_NOTICE, "restore from %s/%s: %s", d->snap_dir,
			    j->name, err);
		set_out(o, snap_status(rv), "%s", err);
		return;
	}
	if (others_refused(d, j, o, owner))
		return;
	rv = snap_read_file_max(d->snap_dir, j->name, d->snap_max, &buf, &len,
	    err, sizeof(err));
	if (rv != 0) {
		set_out(o, snap_status(rv), "%s", err);
		return;
	}
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		free(buf);
		set_out(o, C(RESOURCE_EXHAUSTED), "out of memory");
		return;
	}
	rv = snap_decode_model(buf, len, d->model, &meta, st, err,
	    sizeof(err));
	free(buf);
	if (rv != 0) {
		free(st);
		set_out(o, snap_status(rv), "snapshot '%s' refused: %s", j->name,
		    err);
		return;
	}
	/* The file changed between the two reads: check again. */
	if ((meta.has_owner ? meta.owner : 0) != owner) {
		snap_meta_fini(&meta);
		eng_stream_state_fini(st);
		free(st);
		set_out(o, C(ABORTED), "snapshot '%s' changed while it was "
		    "read; try again", j->name);
		return;
	}
	snap_meta_fini(&meta);
	if ((o->restore = calloc(1, sizeof(*o->restore))) == NULL) {
		eng_stream_state_fini(st);
		free(st);
		set_out(o, C(RESOURCE_EXHAUSTED), "out of memory");
		return;
	}
	o->restore->kind = IT_RESTORE;
	o->restore->w = j->w;
	o->restore->uid = j->uid;
	o->restore->pipe = j->pipe;   /* dropped if its client has gone */
	o->restore->state = st;
	snprintf(o->restore->id, sizeof(o->restore->id), "%s", j->id);
	snprintf(o->restore->name, sizeof(o->restore->name), "%s", j->name);
}

static int
by_name(const void *a, const void *b)
{
	return (strcmp(*(char *const *)a, *(char *const *)b));
}

/* A ListSnapshotsReply and everything it points to; r comes first so the
 * reply's base is the block's address (list_free). */
struct list_out {
	Infini__V1__ListSnapshotsReply r;
	Infini__V1__SnapshotInfo *info;
	Infini__V1__SnapshotInfo **ptrs;
	char **names;              /* [n], each strdup'd */
	char (*ids)[SNAP_ID_MAX + 1];
	size_t n;
};

static void
list_free(struct list_out *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->names[i]);
	free(l->names);
	free(l->info);
	free(l->ptrs);
	free(l->ids);
	free(l);
}

static void
run_list(struct infinid *d, struct sio_job *j, struct sio_out *o)
{
	struct list_out *l;
	char err[512];
	size_t cap = 0, k = 0;
	struct dirent *e;
	DIR *dp;

	if ((l = calloc(1, sizeof(*l))) == NULL) {
		set_out(o, C(RESOURCE_EXHAUSTED), "out of memory");
		return;
	}
	infini__v1__list_snapshots_reply__init(&l->r);
	if ((dp = opendir(d->snap_dir)) == NULL) {
		int en = errno;
		LOG(LOG_ERR, "cannot read %s: %s", d->snap_dir, strerror(en));
		set_out(o, C(UNAVAILABLE), "cannot read the snapshot "
		    "directory: %s", strerror(en));
		list_free(l);
		return;
	}
	while ((e = readdir(dp)) != NULL && l->n < SIO_LIST_MAX) {
		if (!snap_name_ok(e->d_name))
			continue;
		if (l->n == cap) {
			size_t nc = cap ? 2 * cap : 64;
			char **p = realloc(l->names, nc * sizeof(*p));
			if (p == NULL)
				break;
			l->names = p;
			cap = nc;
		}
		if ((l->names[l->n] = strdup(e->d_name)) == NULL)
			break;
		l->n++;
	}
	closedir(dp);
	if (l->n > 1)
		qsort(l->names, l->n, sizeof(*l->names), by_name);
	l->info = calloc(l->n ? l->n : 1, sizeof(*l->info));
	l->ptrs = calloc(l->n ? l->n : 1, sizeof(*l->ptrs));
	l->ids = calloc(l->n ? l->n : 1, sizeof(*l->ids));
	if (l->info == NULL || l->ptrs == NULL || l->ids == NULL) {
		set_out(o, C(RESOURCE_EXHAUSTED), "out of memory");
		list_free(l);
		return;
	}
	for (size_t i = 0; i < l->n; i++) {
		struct snap_info in;
		uint32_t owner = 0;
		if (owner_of(d, l->names[i], &owner, &in, err,
		    sizeof(err)) != 0) {
			LOG(LOG_DEBUG, "ListSnapshots skips %s: %s",
			    l->names[i], err);
			continue;
		}
		if (!strm_may_use(d, j->uid, owner))
			continue;
		Infini__V1__SnapshotInfo *s = &l->info[k];
		infini__v1__snapshot_info__init(s);
		s->name = l->names[i];
		s->owner_uid = owner;
		s->bytes = in.bytes;
		s->position = in.position;
		s->created_ms = in.created_ms;
		/* The id was read from the file: passed on only if valid. */
		if (wire_valid_id(in.stream_id))
			memcpy(l->ids[k], in.stream_id, sizeof(l->ids[k]));
		s->stream_id = l->ids[k];
		l->ptrs[k++] = s;
	}
	l->r.n_snapshots = k;
	l->r.snapshots = l->ptrs;
	o->body = &l->r.base;
}

static void
run_delete(struct infinid *d, struct sio_job *j, struct sio_out *o)
{
	char err[512];
	uint32_t owner = 0;
	int rv, dfd;

	rv = owner_of(d, j->name, &owner, NULL, err, sizeof(err));
	if (rv == INFINI_ENOENT || rv == INFINI_EIO || rv == INFINI_ENOMEM ||
	    rv == INFINI_EPERM) {
		set_out(o, snap_status(rv), "%s", err);
		return;
	}
	/* A damaged file or a non-file under the name: root's. */
	if (others_refused(d, j, o, owner))
		return;
	if ((dfd = open(d->snap_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    unlinkat(dfd, j->name, 0) != 0) {
		int en = errno;
		LOG(LOG_ERR, "delete %s/%s: %s", d->snap_dir, j->name,
		    strerror(en));
		set_out(o, infini_err_status(en == ENOENT ? INFINI_ENOENT :
		    INFINI_EIO), "cannot delete snapshot '%s': %s", j->name,
		    strerror(en));
		if (dfd >= 0)
			close(dfd);
		return;
	}
	(void)fsync(dfd);
	close(dfd);
	LOG(LOG_INFO, "snapshot %s deleted (uid %u)", j->name, j->uid);
	o->body = malloc(sizeof(Infini__V1__DeleteSnapshotReply));
	if (o->body == NULL) {
		set_out(o, C(RESOURCE_EXHAUSTED), "out of memory");
		return;
	}
	infini__v1__delete_snapshot_reply__init(
	    (Infini__V1__DeleteSnapshotReply *)o->body);
}

/* sio_send answers j from o; d->mu held. */
static void
sio_send(struct infinid *d, struct sio_job *j, struct sio_out *o)
{
	if (o->restore != NULL) {
		if (d->stopping) {
			srv_replyf(j->w, C(UNAVAILABLE), "infinid is shutting "
			    "down");
			item_free(o->restore);
		} else
			sched_enqueue(d, NULL, o->restore);
		return;
	}
	if (o->code != 0 || o->body == NULL)
		srv_reply(j->w, o->code ? o->code : C(INTERNAL), o->msg, NULL);
	else
		srv_reply(j->w, 0, NULL, o->body);
	if (o->body == NULL)
		return;
	if (j->kind == SIO_LIST)
		list_free((struct list_out *)o->body);
	else
		free(o->body);
}

static void *
sio_main(void *arg)
{
	struct infinid *d = arg;
	struct sio_job *j;

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
		case SIO_WRITE: run_write(d, j, &o); break;
		case SIO_RESTORE: run_restore(d, j, &o); break;
		case SIO_LIST: run_list(d, j, &o); break;
		case SIO_DELETE: run_delete(d, j, &o); break;
		}
		pthread_mutex_lock(&d->mu);
		sio_send(d, j, &o);
		job_free(j);
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
	struct sio_job *j;

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
		srv_replyf(j->w, C(UNAVAILABLE), "infinid is shutting down");
		job_free(j);
	}
	d->sio_tail = NULL;
	pthread_mutex_unlock(&d->mu);
	pthread_cond_destroy(&d->sio_cv);
}
