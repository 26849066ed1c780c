/*
 * cluster.c - this daemon as one member of several sharing a Redis state
 * store (state_store = redis://..., docs/scale-out.md), prefix clu_.
 *
 * Every stream is served by one member at a time: the one holding its
 * lease (daemon/store/lease.c).  Before a request on a stream takes d->mu,
 * the rpc layer asks clu_hold to make sure this daemon holds the stream's
 * lease, taking it when it is free (and then adopting the stream's last
 * saved state from the store, if there is one); when another member holds
 * it, rpc.c answers UNAVAILABLE with a redirect to that member.  Leases are renewed by a
 * thread of this file every third of lease_ttl_ms; the daemon serves a
 * stream only while its last successful renewal is younger than the TTL
 * (less a tenth for the clocks' drift), so a member cut off from Redis
 * stops serving before another may take over.  Every state write carries
 * the lease's fencing epoch (clu_put_state), and Redis refuses it once
 * the lease has moved, so a member that was cut off never overwrites its
 * successor's state.
 *
 * A lease found lost (renewal refused: another member took the stream)
 * marks the stream to be dropped from memory, unsaved; the scheduler
 * drops it when idle (clu_sweep), and a later request adopts the state the
 * new holder saved.
 *
 * With the directory store (the default) there is no cluster: clu_start
 * only opens the store, clu_hold lets everything through and the state
 * writes go to the files as before.
 *
 * Locks: clu->mu guards the lease table and is never held across a call
 * to Redis or while taking d->mu.  No Redis call is made with d->mu held,
 * except the state read of a takeover (spill_adopt), once per stream.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"
#include "log.h"
#include "store/store.h"

/* A lease this daemon holds (or held: lost). */
struct held {
	struct held *next;
	char id[WIRE_ID_MAX + 1];
	uint64_t epoch;
	int64_t since_ms;          /* when it was taken */
	int64_t valid_ms;          /* serve the stream until then (monotonic) */
	bool lost;                 /* another member holds it now */
};

struct clu {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t th;
	bool stop;
	struct held *held;
	char member[SST_MEMBER_MAX + 1];
	long ttl_ms;
};

/* valid_until: how long a lease renewed at t0 may be used here: its TTL
 * less a tenth, for the drift between Redis's clock and ours. */
static int64_t
valid_until(const struct clu *c, int64_t t0)
{
	return (t0 + c->ttl_ms - c->ttl_ms / 10);
}

static struct held *
find_held(struct clu *c, const char *id)
{
	for (struct held *h = c->held; h != NULL; h = h->next)
		if (strcmp(h->id, id) == 0)
			return (h);
	return (NULL);
}

static void
drop_held(struct clu *c, struct held *h)
{
	for (struct held **pp = &c->held; *pp != NULL; pp = &(*pp)->next)
		if (*pp == h) {
			*pp = h->next;
			free(h);
			return;
		}
}

/* ---- the renewal thread ---- */

/* renew_one renews or releases the lease on id (epoch e), c->mu not held. */
static void
renew_one(struct infinid *d, const char *id, uint64_t e, int64_t since)
{
	struct clu *c = d->clu;
	char err[512];
	int64_t t0 = now_ms();
	bool known;
	int rv;

	pthread_mutex_lock(&d->mu);
	known = strm_find(d, id) != NULL;
	pthread_mutex_unlock(&d->mu);
	/* A stream closed here (or an open that never happened) lets go of
	 * its lease; one just taken may still be on its way to the table. */
	if (!known && t0 - since > c->ttl_ms) {
		(void)sst_lease_release(d->store, id, c->member, e, err,
		    sizeof(err));
		pthread_mutex_lock(&c->mu);
		struct held *h = find_held(c, id);
		if (h != NULL && h->epoch == e)
			drop_held(c, h);
		pthread_mutex_unlock(&c->mu);
		return;
	}
	rv = sst_lease_renew(d->store, id, c->member, e, c->ttl_ms, err,
	    sizeof(err));
	pthread_mutex_lock(&c->mu);
	struct held *h = find_held(c, id);
	if (h != NULL && h->epoch == e && !h->lost) {
		if (rv == 0)
			h->valid_ms = valid_until(c, t0);
		else if (rv == INFINI_ESTATE)
			h->lost = true;
	}
	pthread_mutex_unlock(&c->mu);
	if (rv == INFINI_ESTATE) {
		LOG(LOG_WARNING, "stream %s: lost its lease (epoch %llu) to "
		    "another member; dropping it here unsaved", id,
		    (unsigned long long)e);
		pthread_mutex_lock(&d->mu);
		strm_wake(d);
		pthread_mutex_unlock(&d->mu);
	} else if (rv != 0)
		LOG(LOG_WARNING, "stream %s: cannot renew its lease: %s", id,
		    err);
}

static void *
renewer(void *arg)
{
	struct infinid *d = arg;
	struct clu *c = d->clu;
	char err[512];

	pthread_mutex_lock(&c->mu);
	while (!c->stop) {
		size_t n = 0, i = 0;
		for (struct held *h = c->held; h != NULL; h = h->next)
			n += !h->lost;
		struct held *v = calloc(n ? n : 1, sizeof(*v));
		for (struct held *h = c->held; v != NULL && h != NULL;
		    h = h->next)
			if (!h->lost)
				v[i++] = *h;
		pthread_mutex_unlock(&c->mu);
		if (sst_member_beat(d->store, c->member, c->ttl_ms, err,
		    sizeof(err)) != 0)
			LOG(LOG_WARNING, "state store: heartbeat failed: %s", err);
		for (size_t k = 0; k < i; k++)
			renew_one(d, v[k].id, v[k].epoch, v[k].since_ms);
		free(v);
		pthread_mutex_lock(&c->mu);
		if (!c->stop)
			clk_timedwait(&c->cv, &c->mu, c->ttl_ms / 3);
	}
	pthread_mutex_unlock(&c->mu);
	return (NULL);
}

/* ---- start and stop ---- */

/* member_of picks this member's ID: advertise_url, else the first tcp://
 * listen URL. */
static int
member_of(const struct cfg *cfg, char *out, size_t len)
{
	const char *p = cfg->listen;

	if (cfg->advertise_url[0] != '\0') {
		snprintf(out, len, "%s", cfg->advertise_url);
		return (0);
	}
	while ((p = strstr(p, "tcp://")) != NULL) {
		if (p == cfg->listen || p[-1] == ',') {
			size_t n = strcspn(p, ",");
			if (n >= len)
				return (INFINI_EINVAL);
			memcpy(out, p, n);
			out[n] = '\0';
			return (0);
		}
		p += 6;
	}
	return (INFINI_EINVAL);
}

int
clu_start(struct infinid *d, char *err, size_t errlen)
{
	struct clu *c;
	int rv;

	if ((rv = sst_open(d->cfg.state_store, d->cfg.state_dir, &d->store,
	    err, errlen)) != 0)
		return (rv);
	if (!sst_shared(d->store))
		return (0);
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		snprintf(err, errlen, "out of memory");
		rv = INFINI_ENOMEM;
		goto fail;
	}
	if (member_of(&d->cfg, c->member, sizeof(c->member)) != 0) {
		snprintf(err, errlen, "state_store %s is shared: set "
		    "advertise_url, or listen on a tcp:// URL, so that clients "
		    "and the other daemons can reach this one",
		    sst_describe(d->store));
		free(c);
		rv = INFINI_EINVAL;
		goto fail;
	}
	c->ttl_ms = d->cfg.lease_ttl_ms;
	/* A Redis that does not answer must not hold up the scheduler (its
	 * state writes) or the renewals for long: a quarter of the TTL. */
	sst_set_timeout(d->store, c->ttl_ms / 4 < 2000 ? (int)(c->ttl_ms / 4) :
	    2000);
	pthread_mutex_init(&c->mu, NULL);
	clk_cond_init(&c->cv);
	d->clu = c;
	if (pthread_create(&c->th, NULL, renewer, d) != 0) {
		d->clu = NULL;
		pthread_cond_destroy(&c->cv);
		pthread_mutex_destroy(&c->mu);
		free(c);
		snprintf(err, errlen, "cannot start the lease thread");
		rv = INFINI_ENOMEM;
		goto fail;
	}
	LOG(LOG_NOTICE, "state store %s: member %s, leases of %ld ms",
	    sst_describe(d->store), c->member, c->ttl_ms);
	return (0);
fail:
	sst_close(d->store);
	d->store = NULL;
	return (rv);
}

void
clu_stop(struct infinid *d)
{
	struct clu *c = d->clu;
	char err[512];

	if (c != NULL) {
		pthread_mutex_lock(&c->mu);
		c->stop = true;
		pthread_cond_broadcast(&c->cv);
		pthread_mutex_unlock(&c->mu);
		pthread_join(c->th, NULL);
		/* The streams were written (spill_drain): let others take
		 * them at once rather than after the TTL. */
		for (struct held *h = c->held, *hn; h != NULL; h = hn) {
			hn = h->next;
			if (!h->lost)
				(void)sst_lease_release(d->store, h->id,
				    c->member, h->epoch, err, sizeof(err));
			free(h);
		}
		(void)sst_member_leave(d->store, c->member, err, sizeof(err));
		pthread_cond_destroy(&c->cv);
		pthread_mutex_destroy(&c->mu);
		free(c);
		d->clu = NULL;
	}
	sst_close(d->store);
	d->store = NULL;
}

/* ---- routing ---- */

/* adopt_saved registers stream id from its saved state, when this daemon
 * does not know it yet and the store has one (a takeover). */
static void
adopt_saved(struct infinid *d, const char *id)
{
	char name[WIRE_ID_MAX + 8], err[512];
	struct sst_info in;

	spill_file_for(id, name);
	pthread_mutex_lock(&d->mu);
	if (strm_find(d, id) == NULL &&
	    sst_stat(d->store, SST_STREAM, name, &in, err, sizeof(err)) == 0) {
		spill_adopt(d, name);
		if (strm_find(d, id) != NULL)
			LOG(LOG_NOTICE, "stream %s taken over from the state "
			    "store (%llu bytes, epoch %llu)", id,
			    (unsigned long long)in.bytes,
			    (unsigned long long)in.epoch);
	}
	pthread_mutex_unlock(&d->mu);
}

bool
clu_shared(const struct infinid *d)
{
	return (d->clu != NULL);
}

int
clu_hold(struct infinid *d, const char *id, char *owner, char *msg,
    size_t msglen)
{
	struct clu *c = d->clu;
	char err[512];
	struct held *h;
	uint64_t e = 0;
	int64_t t0 = now_ms(), left = 0;
	bool had;
	int rv;

	owner[0] = '\0';
	if (c == NULL)
		return (0);
	pthread_mutex_lock(&c->mu);
	h = find_held(c, id);
	if (h != NULL && h->lost) {
		pthread_mutex_unlock(&c->mu);
		snprintf(msg, msglen, "stream '%s' moved to another daemon and "
		    "is being dropped here; retry", id);
		return (INFINI_EUNAVAILABLE);
	}
	if (h != NULL && t0 < h->valid_ms) {
		pthread_mutex_unlock(&c->mu);
		return (0);
	}
	pthread_mutex_unlock(&c->mu);
	rv = sst_lease_acquire(d->store, id, c->member, c->ttl_ms, &e, owner,
	    SST_MEMBER_MAX + 1, &left, err, sizeof(err));
	if (rv == INFINI_EEXIST) {
		snprintf(msg, msglen, "stream '%s' is served by %s", id, owner);
		return (INFINI_EUNAVAILABLE);
	}
	if (rv != 0) {
		LOG(LOG_WARNING, "stream %s: cannot take its lease: %s", id,
		    err);
		snprintf(msg, msglen, "the state store is unreachable, so "
		    "stream '%s' cannot be served now", id);
		return (INFINI_EUNAVAILABLE);
	}
	pthread_mutex_lock(&c->mu);
	h = find_held(c, id);
	had = h != NULL;
	if (h != NULL && h->epoch != e) {
		/* Another member held it in between: what this daemon has in
		 * memory may be older than what it saved.  Drop ours first. */
		h->lost = true;
		pthread_mutex_unlock(&c->mu);
		snprintf(msg, msglen, "stream '%s' is being reloaded; retry",
		    id);
		return (INFINI_EUNAVAILABLE);
	}
	if (h == NULL && (h = calloc(1, sizeof(*h))) != NULL) {
		snprintf(h->id, sizeof(h->id), "%s", id);
		h->epoch = e;
		h->since_ms = t0;
		h->next = c->held;
		c->held = h;
	}
	if (h != NULL)
		h->valid_ms = valid_until(c, t0);
	pthread_mutex_unlock(&c->mu);
	if (h == NULL) {
		snprintf(msg, msglen, "out of memory");
		return (INFINI_ENOMEM);
	}
	if (!had)
		adopt_saved(d, id);
	return (0);
}

/* ---- state writes and the scheduler's sweep ---- */

/* fence_of fills f for s; false when this daemon holds no lease on it. */
static bool
fence_of(struct infinid *d, const struct stream *s, struct sst_fence *f)
{
	struct clu *c = d->clu;
	struct held *h;

	pthread_mutex_lock(&c->mu);
	h = find_held(c, s->id);
	if (h != NULL) {
		f->lease = s->id;
		f->member = c->member;
		f->epoch = h->epoch;
	}
	pthread_mutex_unlock(&c->mu);
	return (h != NULL);
}

int
clu_put_state(struct infinid *d, const struct stream *s, const uint8_t *buf,
    size_t len, char *err, size_t errlen)
{
	struct sst_fence f;

	if (d->clu == NULL)
		return (sst_put(d->store, SST_STREAM, s->file, NULL, s->owner,
		    buf, len, 0, err, errlen));
	if (!fence_of(d, s, &f)) {
		snprintf(err, errlen, "this daemon holds no lease on stream "
		    "'%s'", s->id);
		return (INFINI_ESTATE);
	}
	return (sst_put(d->store, SST_STREAM, s->file, &f, s->owner, buf, len,
	    0, err, errlen));
}

int
clu_del_state(struct infinid *d, const struct stream *s, char *err,
    size_t errlen)
{
	struct sst_fence f;

	if (d->clu == NULL)
		return (sst_del(d->store, SST_STREAM, s->file, NULL, err,
		    errlen));
	if (!fence_of(d, s, &f)) {
		snprintf(err, errlen, "this daemon holds no lease on stream "
		    "'%s'", s->id);
		return (INFINI_ESTATE);
	}
	return (sst_del(d->store, SST_STREAM, s->file, &f, err, errlen));
}

void
clu_sweep(struct infinid *d)
{
	struct clu *c = d->clu;
	char ids[16][WIRE_ID_MAX + 1];
	int n = 0;

	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	for (struct held *h = c->held; h != NULL && n < 16; h = h->next)
		if (h->lost)
			snprintf(ids[n++], sizeof(ids[0]), "%s", h->id);
	pthread_mutex_unlock(&c->mu);
	for (int i = 0; i < n; i++) {
		struct stream *s = strm_find(d, ids[i]);
		if (s != NULL && (s->busy || s->head != NULL || s->gen != NULL))
			continue;     /* when it is idle */
		if (s != NULL) {
			if (s->slot >= 0) {
				eng_stream_free(d->eng, s->slot);
				s->slot = -1;
				d->nresident--;
			}
			for (struct gen *g = d->gens; g != NULL; g = g->next)
				if (g->s == s)
					g->s = NULL;
			strm_unlink(d, s);
			free(s);
			LOG(LOG_NOTICE, "stream %s dropped: another member "
			    "serves it now", ids[i]);
		}
		pthread_mutex_lock(&c->mu);
		struct held *h = find_held(c, ids[i]);
		if (h != NULL && h->lost)
			drop_held(c, h);
		pthread_mutex_unlock(&c->mu);
	}
}
