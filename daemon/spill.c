/*
 * spill.c - which streams hold an engine slot, and their state files.
 *
 * max_resident_streams engine slots serve up to max_streams streams.  A
 * stream that needs the device and has no slot is paged in: when every
 * slot is taken, the least recently used idle stream (not in the batch,
 * nothing queued, no generation) is written to its file if it has unsaved
 * work and its slot is freed; then the stream's own file, if it has one, is
 * loaded into the free slot.  A stream that never ran has no file and
 * starts from a fresh slot.  Nothing is dropped: when the evicted stream
 * cannot be written (disk full), nothing is evicted and the request that
 * needed the slot is answered RESOURCE_EXHAUSTED.
 *
 * The same files make streams outlive the daemon: resident streams with
 * unsaved work are written every autosnapshot_segments compressed segments
 * or autosnapshot_interval_s seconds, and all of them at shutdown
 * (spill_drain); at start-up spill_init registers every file it finds, not
 * resident, to be loaded on first use.
 *
 * A file is a snapshot (docs/snapshot-format.md) in state_dir/streams, a
 * folder of its own so that names chosen by Snapshot callers in state_dir
 * are never mistaken for streams.  The stream ID is in the header and the
 * owner UID in the optional OWNER section, so the name only has to be
 * unique: "<id>.snap", or "x-<XXH3 of the id>.snap" for IDs that start
 * with '.' or are too long for a file name (new_stream in scheduler.c refuses
 * an ID whose file name another stream already uses).
 *
 * Everything here runs on the scheduler thread with d->mu held; the file
 * reads and writes drop the lock, which is safe because only this thread
 * changes a stream's state, frees streams or moves them in or out.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "state.h"
#include "log.h"
#include "snapshot.h"
#include "store/store.h"

#define AUTOSAVE_PER_TURN 16     /* the rest wait a turn: requests go on */
#define AUTOSAVE_RETRY_MS 10000  /* after a failed autosnapshot */

void
spill_file_for(const char *id, char *out)
{
	size_t n = strlen(id);

	if (id[0] != '.' && n + 5 <= SNAP_NAME_MAX)
		snprintf(out, WIRE_ID_MAX + 8, "%s.snap", id);
	else
		snprintf(out, WIRE_ID_MAX + 8, "x-%016llx.snap",
		    (unsigned long long)XXH3_64bits(id, n));
}

void
spill_dirty(struct stream *s)
{
	if (!s->dirty) {
		s->dirty = true;
		s->dirty_ms = now_ms();
	}
}

static int64_t
segs_of(struct infinid *d, int64_t pos)
{
	return (pos / eng_config(d->eng)->segment_size);
}

int
spill_write_state(struct infinid *d, struct stream *s,
    const struct eng_stream_state *st, char *err, size_t errlen)
{
	struct snap_meta meta;
	uint8_t *buf = NULL;
	size_t len = 0;
	int rv;

	if ((rv = snap_meta_init(&meta, d->model, s->id)) != 0 ||
	    (meta.has_owner = true, meta.owner = s->owner,
	    rv = snap_encode(&meta, st, &buf, &len)) != 0) {
		snprintf(err, errlen, "cannot encode stream '%s': %s", s->id,
		    infini_strerror(rv));
		return (rv);
	}
	pthread_mutex_unlock(&d->mu);
	rv = clu_put_state(d, s, buf, len, err, errlen);
	pthread_mutex_lock(&d->mu);
	free(buf);
	if (rv == 0) {
		s->saved = true;
		s->saved_segs = segs_of(d, st->pos);
	}
	return (rv);
}

int
spill_save(struct infinid *d, struct stream *s, char *err, size_t errlen)
{
	struct eng_stream_state st;
	int rv;

	if ((rv = eng_stream_export(d->eng, s->slot, &st)) != 0) {
		snprintf(err, errlen, "cannot read stream '%s' from the device: "
		    "%s", s->id, infini_strerror(rv));
		return (rv);
	}
	rv = spill_write_state(d, s, &st, err, errlen);
	eng_stream_state_fini(&st);
	if (rv == 0)
		s->dirty = false;
	return (rv);
}

/* evict writes v out if needed and frees its slot; on a failed write v
 * stays resident. */
static int
evict(struct infinid *d, struct stream *v, char *err, size_t errlen)
{
	int64_t pos = eng_stream_pos(d->eng, v->slot);
	char why[400];
	int rv;

	/* A stream at position 0 without a file is fresh: nothing to keep. */
	if ((v->dirty || !v->saved) && pos > 0 &&
	    (rv = spill_save(d, v, why, sizeof(why))) != 0) {
		d->st.spill_errors++;
		LOG(LOG_ERR, "cannot spill stream %s: %s", v->id, why);
		snprintf(err, errlen, "no free stream slot, and the idle stream "
		    "that would make room could not be saved: %s", why);
		return (rv);
	}
	v->pos = pos;
	v->dirty = false;
	eng_stream_free(d->eng, v->slot);
	v->slot = -1;
	d->nresident--;
	d->st.evictions++;
	LOG(LOG_DEBUG, "stream %s spilled at position %lld", v->id,
	    (long long)pos);
	return (0);
}

int
spill_room(struct infinid *d, struct stream *keep, char *err, size_t errlen)
{
	struct stream *v = NULL;

	if (d->nresident < d->max_resident)
		return (0);
	for (struct stream *s = d->streams; s != NULL; s = s->next)
		if (s->slot >= 0 && s != keep && !s->busy && s->head == NULL &&
		    s->gen == NULL &&
		    (v == NULL || s->last_used_ms < v->last_used_ms))
			v = s;
	if (v == NULL)
		return (SPILL_WAIT);
	return (evict(d, v, err, errlen));
}

/* load puts s's state into a fresh slot (a free one must exist). */
static int
load(struct infinid *d, struct stream *s, char *err, size_t errlen)
{
	struct eng_stream_state st;
	struct snap_meta meta;
	uint8_t *buf = NULL;
	size_t len = 0;
	char why[400] = "";
	int slot, rv;

	if (!s->saved) {
		if ((rv = eng_stream_alloc(d->eng, &slot)) != 0) {
			snprintf(err, errlen, "no engine slot: %s",
			    infini_strerror(rv));
			return (rv);
		}
		goto resident;
	}
	pthread_mutex_unlock(&d->mu);
	rv = sst_get(d->store, SST_STREAM, s->file, d->snap_max, &buf, &len,
	    why, sizeof(why));
	if (rv == 0)
		rv = snap_decode_model(buf, len, d->model, &meta, &st, why,
		    sizeof(why));
	free(buf);
	pthread_mutex_lock(&d->mu);
	if (rv != 0)
		goto fail;
	if (strcmp(meta.stream_id, s->id) != 0) {
		snprintf(why, sizeof(why), "the file holds stream '%s'",
		    meta.stream_id);
		rv = INFINI_ECORRUPT;
	} else if ((rv = eng_stream_alloc(d->eng, &slot)) != 0) {
		snprintf(why, sizeof(why), "no engine slot");
	} else if ((rv = eng_stream_import(d->eng, slot, &st)) != 0) {
		eng_stream_free(d->eng, slot);
		snprintf(why, sizeof(why), "the device refused it: %s",
		    infini_strerror(rv));
	}
	eng_stream_state_fini(&st);
	if (rv != 0)
		goto fail;
	d->st.page_ins++;
resident:
	s->slot = slot;
	s->dirty = false;
	s->saved_segs = segs_of(d, eng_stream_pos(d->eng, slot));
	s->last_used_ms = now_ms();
	d->nresident++;
	return (0);
fail:
	d->st.spill_errors++;
	/* The reply carries err: no server path in it; the log has it. */
	snprintf(err, errlen, "cannot load its saved state: %s", why);
	LOG(LOG_ERR, "stream %s: %s/%s: %s", s->id, d->spill_dir, s->file, err);
	return (rv);
}

int
spill_ensure(struct infinid *d, struct stream *s, struct stream *keep,
    char *err, size_t errlen)
{
	int rv;

	if (s->slot >= 0)
		return (0);
	if ((rv = spill_room(d, keep, err, errlen)) != 0)
		return (rv);
	return (load(d, s, err, errlen));
}

void
spill_forget(struct infinid *d, struct stream *s)
{
	char why[512];
	int rv;

	if (s->slot >= 0) {
		eng_stream_free(d->eng, s->slot);
		s->slot = -1;
		d->nresident--;
	}
	if (s->saved) {
		if ((rv = clu_del_state(d, s, why, sizeof(why))) != 0 &&
		    rv != INFINI_ENOENT)
			LOG(LOG_WARNING, "stream %s closed, but its file stays: "
			    "%s/%s: %s", s->id, d->spill_dir, s->file, why);
		s->saved = false;
	}
}

void
spill_autosave(struct infinid *d)
{
	long segs = d->cfg.autosnapshot_segments;
	int64_t ival = (int64_t)d->cfg.autosnapshot_interval_s * 1000;
	int64_t t = now_ms();
	char err[512];
	int done = 0;

	if (segs <= 0 && ival <= 0)
		return;
	for (struct stream *s = d->streams; s != NULL; s = s->next) {
		if (s->slot < 0 || !s->dirty || s->busy || t < s->retry_ms)
			continue;
		int64_t grown = segs_of(d, eng_stream_pos(d->eng, s->slot)) -
		    s->saved_segs;
		if (!(segs > 0 && grown >= segs) &&
		    !(ival > 0 && t - s->dirty_ms >= ival))
			continue;
		if (spill_save(d, s, err, sizeof(err)) != 0) {
			d->st.spill_errors++;
			s->retry_ms = t + AUTOSAVE_RETRY_MS;
			LOG(LOG_WARNING, "autosnapshot of stream %s failed, "
			    "retrying in %d s: %s", s->id,
			    AUTOSAVE_RETRY_MS / 1000, err);
		} else
			d->st.autosnapshots++;
		if (++done >= AUTOSAVE_PER_TURN)
			break;
	}
}

/* save_fresh writes the file of a stream that never ran: the state of a
 * fresh slot, so that the stream outlives a restart like any other. */
static int
save_fresh(struct infinid *d, struct stream *s, char *err, size_t errlen)
{
	struct eng_stream_state st;
	int slot, rv;

	if ((rv = spill_room(d, s, err, errlen)) != 0) {
		if (rv == SPILL_WAIT)
			snprintf(err, errlen, "no idle engine slot");
		return (rv == SPILL_WAIT ? INFINI_EFULL : rv);
	}
	if ((rv = eng_stream_alloc(d->eng, &slot)) != 0) {
		snprintf(err, errlen, "no engine slot: %s", infini_strerror(rv));
		return (rv);
	}
	rv = eng_stream_export(d->eng, slot, &st);
	eng_stream_free(d->eng, slot);
	if (rv != 0) {
		snprintf(err, errlen, "cannot read a fresh slot: %s",
		    infini_strerror(rv));
		return (rv);
	}
	rv = spill_write_state(d, s, &st, err, errlen);
	eng_stream_state_fini(&st);
	return (rv);
}

void
spill_drain(struct infinid *d)
{
	char err[512];
	int saved = 0, failed = 0;

	if (d->device_lost) {
		for (struct stream *s = d->streams; s != NULL; s = s->next)
			failed += s->slot >= 0 && (s->dirty || !s->saved);
		LOG(LOG_ERR, "shutdown: the device was lost; %d stream%s lose "
		    "the work since their last save (nothing was written)",
		    failed, failed == 1 ? "" : "s");
		return;
	}
	for (struct stream *s = d->streams; s != NULL; s = s->next) {
		/* Streams opened and never used are written too: the client
		 * was told they exist. */
		if (s->saved && (s->slot < 0 || !s->dirty))
			continue;
		if ((s->slot >= 0 ? spill_save(d, s, err, sizeof(err)) :
		    save_fresh(d, s, err, sizeof(err))) == 0)
			saved++;
		else {
			failed++;
			LOG(LOG_ERR, "shutdown: stream %s is lost: %s", s->id,
			    err);
		}
	}
	LOG(failed ? LOG_ERR : LOG_NOTICE, "shutdown: saved %d stream%s with "
	    "unsaved work to %s%s", saved, saved == 1 ? "" : "s",
	    d->spill_dir, failed ? " (some failed, see above)" : "");
}

void
spill_adopt(struct infinid *d, const char *name)
{
	struct eng_stream_state st;
	struct snap_meta meta;
	struct stream *s;
	uint8_t *buf = NULL;
	size_t len = 0;
	char err[512] = "", file[WIRE_ID_MAX + 8];
	int64_t pos;
	int rv;

	rv = sst_get(d->store, SST_STREAM, name, d->snap_max, &buf, &len, err,
	    sizeof(err));
	if (rv == 0)
		rv = snap_decode_model(buf, len, d->model, &meta, &st, err,
		    sizeof(err));
	free(buf);
	if (rv != 0) {
		LOG(LOG_WARNING, "ignoring %s/%s: %s", d->spill_dir, name, err);
		return;
	}
	pos = st.pos;
	eng_stream_state_fini(&st);
	spill_file_for(meta.stream_id, file);
	if (!wire_valid_id(meta.stream_id) || strcmp(file, name) != 0 ||
	    strm_find(d, meta.stream_id) != NULL) {
		LOG(LOG_WARNING, "ignoring %s/%s: it holds stream '%s', whose "
		    "file would be %s", d->spill_dir, name, meta.stream_id, file);
		return;
	}
	if (d->nstreams >= d->cfg.max_streams) {
		LOG(LOG_WARNING, "ignoring %s/%s: max_streams (%ld) streams "
		    "known", d->spill_dir, name, d->cfg.max_streams);
		return;
	}
	/* Files from before owners were kept belong to root (and admins). */
	if (strm_new(d, meta.stream_id, meta.has_owner ? meta.owner : 0,
	    &s) != 0) {
		LOG(LOG_ERR, "ignoring %s/%s: out of memory", d->spill_dir, name);
		return;
	}
	s->pos = pos;
	s->saved = true;
	s->saved_segs = segs_of(d, pos);
}

int
spill_init(struct infinid *d)
{
	struct dirent *e;
	DIR *dp;
	int n = d->nstreams;

	snprintf(d->spill_dir, sizeof(d->spill_dir), "%s/streams",
	    d->cfg.state_dir);
	d->snap_max = snap_max_size(d->model);
	/* A shared store holds other members' streams too: each is adopted
	 * when this daemon takes its lease (cluster.c), not here. */
	if (sst_shared(d->store))
		return (0);
	if (mkdir(d->spill_dir, 0700) != 0 && errno != EEXIST) {
		LOG(LOG_WARNING, "cannot create %s: %s; idle streams cannot "
		    "spill and no stream survives a restart", d->spill_dir,
		    strerror(errno));
		return (0);
	}
	if ((dp = opendir(d->spill_dir)) == NULL) {
		LOG(LOG_WARNING, "cannot read %s: %s", d->spill_dir,
		    strerror(errno));
		return (0);
	}
	while ((e = readdir(dp)) != NULL) {
		size_t len = strlen(e->d_name);
		if (e->d_name[0] == '.') {
			/* A writer killed mid-write leaves .<name>.tmp.* */
			if (strstr(e->d_name, ".tmp.") != NULL)
				(void)unlinkat(dirfd(dp), e->d_name, 0);
			continue;
		}
		if (len > 5 && strcmp(e->d_name + len - 5, ".snap") == 0 &&
		    snap_name_ok(e->d_name))
			spill_adopt(d, e->d_name);
	}
	closedir(dp);
	if (d->nstreams > n)
		LOG(LOG_NOTICE, "%d saved stream%s found in %s (loaded on first "
		    "use)", d->nstreams - n, d->nstreams - n == 1 ? "" : "s",
		    d->spill_dir);
	return (0);
}
