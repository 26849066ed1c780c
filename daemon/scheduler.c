/*
 * scheduler.c - the scheduler thread: the only user of the engine.
 *
 * Each turn it serves the control queue (stream opens), then gathers at most
 * one piece of work from every stream that is not already in the device:
 * the head Push (in slices of max_batch inputs, so a long push does not hold
 * other streams back), a step of its running generation (its prompt sliced
 * like a Push), or a queued Fork or Close once nothing of that stream is in
 * flight.  Users take turns, and while several have work each gets its part
 * of the max_batch inputs; work whose client has gone is dropped here.  The
 * gathered jobs run as one batched eng_run; each request is finished with
 * an error code or a typed result through its item_ops (state.h), so the
 * scheduler never builds a reply and knows nothing of the wire.  Requests on one
 * stream are served strictly in arrival order because only the head of its
 * queue is ever taken.
 *
 * A stream needs an engine slot only while the device works for it; one
 * without is paged in (spill.c) when gathered, which may first spill the
 * least recently used idle stream.  Between batches the streams whose
 * autosnapshot is due are written, and on the way out (sched_stop) every
 * stream with unsaved work is.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "scheduler.h"
#include "snapshot.h"

void
sched_enqueue(struct infinid *d, struct stream *s, struct item *it)
{
	struct item **head = s ? &s->head : &d->ctl_head;
	struct item **tail = s ? &s->tail : &d->ctl_tail;

	it->next = NULL;
	it->seq = ++d->next_seq;
	if (*head == NULL)
		*head = it;
	else
		(*tail)->next = it;
	*tail = it;
	if (s != NULL)
		s->nqueued++;
	strm_wake(d);
}

static struct item *
pop(struct stream *s)
{
	struct item *it = s->head;
	if (it != NULL) {
		s->head = it->next;
		if (s->head == NULL)
			s->tail = NULL;
		s->nqueued--;
	}
	return (it);
}

static void
auto_id(struct infinid *d, char *out)
{
	do
		snprintf(out, WIRE_ID_MAX + 1, "s%llu",
		    (unsigned long long)++d->next_auto_id);
	while (strm_find(d, out) != NULL);
}

static void
do_open(struct infinid *d, struct item *it)
{
	struct stream *s = it->id[0] ? strm_find(d, it->id) : NULL;
	struct item_result r = { 0 };
	char err[256];
	int rv;

	if (s != NULL) {
		/* IDs are one namespace: another user's ID is "taken", in the
		 * same words with or without reuse, and nothing more (not its
		 * owner, position or activity) is said. */
		if (!it->reuse || !strm_may_use(d, it->uid, s->owner)) {
			item_answer(d, it, INFINI_EEXIST, NULL,
			    "stream id '%s' is taken", it->id);
			return;
		}
		r.id = s->id;
		r.position = strm_pos(d, s);
		item_answer(d, it, 0, &r, NULL);
		return;
	}
	if (!it->id[0])
		auto_id(d, it->id);
	if ((rv = strm_open(d, it->id, it->uid, &s, err, sizeof(err))) != 0) {
		item_answer(d, it, rv, NULL, "cannot open '%s': %s", it->id,
		    err);
		return;
	}
	LOG(LOG_INFO, "stream %s opened (uid %u)", s->id, s->owner);
	r.id = s->id;
	r.created = true;
	item_answer(d, it, 0, &r, NULL);
}

static void
fail_queue(struct infinid *d, struct stream *s, int code, const char *why)
{
	struct item *it;

	while ((it = pop(s)) != NULL) {
		if (it->kind == IT_GENERATE && it->gen != NULL) {
			it->gen->done = true;
			snprintf(it->gen->finish, sizeof(it->gen->finish), "error");
			it->gen->s = NULL;
		}
		item_answer(d, it, code, NULL, "stream '%s' %s", s->id, why);
		item_free(it);
	}
}

/* gen_room makes room for k more bytes of text; false when out of memory
 * (the generation then goes on without text). */
static bool
gen_room(struct gen *g, size_t k)
{
	if (g->tlen + k + 1 <= g->tcap)
		return (true);
	size_t c = g->tcap ? g->tcap : 256;
	while (c < g->tlen + k + 1)
		c *= 2;
	char *t = realloc(g->text, c);
	if (t == NULL)
		return (false);
	g->text = t;
	g->tcap = c;
	return (true);
}

/* gen_add_text appends the text the newest token completes: whole UTF-8
 * characters only, the rest held in g->ts for the next token. */
static void
gen_add_text(struct infinid *d, struct gen *g, int32_t id)
{
	if (d->tok != NULL && gen_room(g, tok_stream_room(d->tok)))
		g->tlen += tok_stream_put(d->tok, &g->ts, id,
		    g->text + g->tlen);
	g->tend[g->ntok - 1] = g->tlen;
}

/* gen_flush: no token follows, so bytes still held can no longer become
 * a character; they go out (as U+FFFD) with the last token, in the same
 * locked step that added it, so every poll sees them. */
static void
gen_flush(struct gen *g)
{
	if (g->ntok > 0 && g->ts.nhold > 0 && gen_room(g, 32)) {
		g->tlen += tok_stream_flush(&g->ts, g->text + g->tlen);
		g->tend[g->ntok - 1] = g->tlen;
	}
}

static void
finish_gen(struct infinid *d, struct gen *g, const char *why)
{
	gen_flush(g);
	g->done = true;
	g->done_ms = now_ms();
	if (why != g->finish)
		snprintf(g->finish, sizeof(g->finish), "%s", why);
	if (g->s != NULL && g->s->gen == g)
		g->s->gen = NULL;
	if (g->progress != NULL)
		g->progress(d, g);
}

/* do_snapshot encodes s's state for it, and answers it or, for a named
 * snapshot, hands it (owned from then on) to the snapshot thread. */
static void
do_snapshot(struct infinid *d, struct stream *s, struct item *it)
{
	struct item_result r = { 0 };
	struct eng_stream_state st;
	struct snap_meta meta;
	uint8_t *buf = NULL;
	size_t len = 0;
	int rv;

	if ((rv = eng_stream_export(d->eng, s->slot, &st)) != 0) {
		item_answer(d, it, INFINI_EINTERNAL, NULL, "cannot read stream "
		    "'%s' from the device: %s", s->id, infini_strerror(rv));
		item_free(it);
		return;
	}
	rv = snap_meta_init(&meta, d->model, s->id);
	if (rv == 0 && it->name[0]) {
		/* A named snapshot belongs to whoever wrote it. */
		meta.has_owner = true;
		meta.owner = it->uid;
	}
	if (rv == 0)
		rv = snap_encode(&meta, &st, &buf, &len);
	eng_stream_state_fini(&st);
	if (rv != 0) {
		item_answer(d, it, rv, NULL, "snapshot of '%s': %s", s->id,
		    infini_strerror(rv));
		item_free(it);
		return;
	}
	if (it->export_bytes && len > (size_t)d->cfg.max_message_bytes) {
		item_answer(d, it, INFINI_EFULL, NULL, "the snapshot is %zu "
		    "bytes, over max_message_bytes", len);
		free(buf);
		item_free(it);
		return;
	}
	if (it->name[0]) {
		/* The file work (and the answer) is the snapshot thread's. */
		LOG(LOG_INFO, "stream %s: snapshot of %zu bytes for %s", s->id,
		    len, it->name);
		it->data = buf;
		it->data_len = len;
		sio_queue(d, it);
		return;
	}
	LOG(LOG_INFO, "stream %s: snapshot of %zu bytes", s->id, len);
	r.name = it->name;
	r.bytes = len;
	if (it->export_bytes)
		r.data = buf;
	item_answer(d, it, 0, &r, NULL);
	free(buf);
	item_free(it);
}

/*
 * place gives new stream s the state st (or, with st NULL, a copy of
 * resident stream src): in a slot if one is free or can be freed at once,
 * else straight into its file, so a Fork or Restore never waits for the
 * streams in the device.  Returns 0 or an error with err set.
 */
static int
place(struct infinid *d, struct stream *s, struct stream *src,
    const struct eng_stream_state *st, char *err, size_t errlen)
{
	struct eng_stream_state tmp;
	int rv, slot;

	rv = spill_room(d, src, err, errlen);
	if (rv == 0 && (rv = eng_stream_alloc(d->eng, &slot)) == 0) {
		rv = st ? eng_stream_import(d->eng, slot, st) :
		    eng_stream_copy(d->eng, src->slot, slot);
		if (rv != 0) {
			eng_stream_free(d->eng, slot);
			snprintf(err, errlen, "%s", infini_strerror(rv));
			return (rv);
		}
		s->slot = slot;
		d->nresident++;
		spill_dirty(s);
		return (0);
	}
	if (st == NULL) {
		if ((rv = eng_stream_export(d->eng, src->slot, &tmp)) != 0) {
			snprintf(err, errlen, "%s", infini_strerror(rv));
			return (rv);
		}
		st = &tmp;
	}
	rv = spill_write_state(d, s, st, err, errlen);
	if (rv == 0)
		s->pos = st->pos;
	if (st == &tmp)
		eng_stream_state_fini(&tmp);
	return (rv);
}

static void
do_restore(struct infinid *d, struct item *it)
{
	struct item_result r = { 0 };
	struct eng_stream_state st;
	struct snap_meta meta;
	struct stream *s;
	char err[512] = "";
	int rv;

	if (strm_find(d, it->id) != NULL) {
		item_answer(d, it, INFINI_EEXIST, NULL, "stream id '%s' is "
		    "taken", it->id);
		return;
	}
	if (it->state != NULL) {
		/* A named snapshot, read and checked by snapio.c. */
		st = *it->state;
		free(it->state);
		it->state = NULL;
	} else {
		rv = snap_decode_model(it->data, it->data_len, d->model, &meta,
		    &st, err, sizeof(err));
		if (rv != 0) {
			item_answer(d, it, snap_err(rv), NULL, "snapshot "
			    "refused: %s", err);
			return;
		}
	}
	if ((rv = strm_open(d, it->id, it->uid, &s, err, sizeof(err))) != 0) {
		eng_stream_state_fini(&st);
		item_answer(d, it, rv, NULL, "cannot restore '%s': %s",
		    it->id, err);
		return;
	}
	if ((rv = place(d, s, NULL, &st, err, sizeof(err))) != 0) {
		/* Never half-loaded: the new stream goes away whole. */
		spill_forget(d, s);
		strm_free(d, s);
		eng_stream_state_fini(&st);
		item_answer(d, it, snap_err(rv), NULL, "cannot restore '%s': "
		    "%s", it->id, err);
		return;
	}
	eng_stream_state_fini(&st);
	LOG(LOG_INFO, "stream %s restored at position %lld%s", s->id,
	    (long long)strm_pos(d, s), s->slot < 0 ? " (spilled)" : "");
	r.id = s->id;
	r.position = strm_pos(d, s);
	item_answer(d, it, 0, &r, NULL);
}

/* end_with_flush ends a generation after one more step that pushes its
 * last token (without sampling), so the stream holds all it generated; the
 * polls learn it is done once that step ran. */
static void
end_with_flush(struct gen *g, const char *why)
{
	gen_flush(g);
	snprintf(g->finish, sizeof(g->finish), "%s", why);
	g->flush = true;
}

/* do_control runs a Fork, Close or Snapshot at the head of an idle stream's queue.
 * Returns true when the stream was freed. */
static bool
do_control(struct infinid *d, struct stream *s, struct item *it)
{
	struct item_result r = { 0 };

	if (it->kind == IT_CLOSE) {
		pop(s);
		/* The file goes before the answer: a client that saw the close
		 * never finds the stream again, even after a restart. */
		spill_forget(d, s);
		item_answer(d, it, 0, &r, NULL);
		item_free(it);
		fail_queue(d, s, INFINI_ENOENT, "was closed");
		for (struct gen *g = d->gens; g != NULL; g = g->next)
			if (g->s == s) {
				if (!g->done)
					finish_gen(d, g, "cancelled");
				g->s = NULL;
			}
		LOG(LOG_INFO, "stream %s closed", s->id);
		strm_free(d, s);
		return (true);
	}
	if (it->kind == IT_SNAPSHOT) {
		pop(s);
		do_snapshot(d, s, it);
		return (false);
	}
	/* Fork. */
	struct stream *c;
	int rv;
	pop(s);
	if (it->id[0] && strm_find(d, it->id) != NULL) {
		item_answer(d, it, INFINI_EEXIST, NULL, "stream id '%s' is "
		    "taken", it->id);
	} else {
		if (!it->id[0])
			auto_id(d, it->id);
		char err[512];
		if ((rv = strm_open(d, it->id, it->uid, &c, err,
		    sizeof(err))) != 0)
			item_answer(d, it, rv, NULL, "cannot fork: %s", err);
		else if ((rv = place(d, c, s, NULL, err, sizeof(err))) != 0) {
			spill_forget(d, c);
			strm_free(d, c);
			item_answer(d, it, rv, NULL, "fork failed: %s", err);
		} else {
			r.id = c->id;
			item_answer(d, it, 0, &r, NULL);
		}
	}
	item_free(it);
	return (false);
}

/* A job of the batch and what it serves. */
struct slotjob {
	struct stream *s;
	struct item *it;      /* a push, or NULL for a generation step */
	struct gen *g;
	int n;
	int32_t tok;          /* generation: the fed-back token */
	int32_t sampled;
	int64_t pos0;         /* the stream's position before the run */
};

/* push_done answers a push whose last slice ran. */
static void
push_done(struct infinid *d, struct stream *s, struct item *it)
{
	struct item_result r = { 0 };

	eng_output_finish(&it->out);
	r.position = eng_stream_pos(d->eng, s->slot);
	r.segments = r.position / eng_config(d->eng)->segment_size;
	r.out = &it->out;
	item_answer(d, it, 0, &r, NULL);
}

/* has_stop: a stop string ends inside the text added since byte from (a
 * token may carry several characters, so it need not end the text). */
static bool
has_stop(const struct gen *g, size_t from)
{
	for (int i = 0; i < g->nstop; i++) {
		size_t n = strlen(g->stop[i]);
		size_t a = from + 1 > n ? from + 1 - n : 0;
		if (n > 0 && g->tlen >= n && g->tlen > from &&
		    memmem(g->text + a, g->tlen - a, g->stop[i], n) != NULL)
			return (true);
	}
	return (false);
}

/*
 * page_in makes s resident for the work at its head.  False when it is not
 * this turn: no slot can be freed now (*waiting is set), or paging failed,
 * which is answered here: a failed eviction fails the head request with
 * RESOURCE_EXHAUSTED (nothing was dropped; a later request may succeed), an
 * unreadable file fails everything queued on s.
 */
static bool
page_in(struct infinid *d, struct stream *s, bool *waiting)
{
	char err[768];
	struct item *it;
	int rv;

	if (s->slot >= 0)
		return (true);
	rv = spill_room(d, NULL, err, sizeof(err));
	if (rv == SPILL_WAIT) {
		*waiting = true;
		return (false);
	}
	if (rv != 0) {
		if (s->gen != NULL) {
			snprintf(s->gen->finish, sizeof(s->gen->finish), "error");
			finish_gen(d, s->gen, s->gen->finish);
		} else if ((it = pop(s)) != NULL) {
			item_answer(d, it, INFINI_EFULL, NULL, "stream '%s' "
			    "cannot be paged in: %s", s->id, err);
			item_free(it);
		}
		return (false);
	}
	if ((rv = spill_ensure(d, s, NULL, err, sizeof(err))) != 0) {
		char why[900];
		snprintf(why, sizeof(why), "cannot be loaded: %s", err);
		if (s->gen != NULL)
			finish_gen(d, s->gen, "error");
		fail_queue(d, s, snap_err(rv), why);
		return (false);
	}
	return (true);
}

/* drop_pipe removes from a queue the requests of pipe, except one in the
 * device now (the scheduler stops it after its slice).  A request not
 * started leaves no trace; a push stopped between two slices leaves the
 * slices that ran in the stream, as a shorter push would.  Returns how
 * many. */
static int
drop_pipe(struct stream *s, struct item **head, struct item **tail,
    uint32_t pipe)
{
	struct item **pp = head, *prev = NULL;
	int n = 0;

	while (*pp != NULL) {
		struct item *it = *pp;
		bool running = s != NULL && s->busy && it == s->head;
		if (it->pipe != pipe || it->ops == NULL || running) {
			prev = it;
			pp = &it->next;
			continue;
		}
		*pp = it->next;
		if (s != NULL)
			s->nqueued--;
		if (it->done > 0)
			LOG(LOG_INFO, "client left: its push to %s stopped after "
			    "%d of %d inputs", s->id, it->done, it->n);
		item_drop(it);
		item_free(it);
		n++;
	}
	*tail = prev;
	return (n);
}

int
sched_drop_pipe(struct infinid *d, uint32_t pipe)
{
	int n = drop_pipe(NULL, &d->ctl_head, &d->ctl_tail, pipe);

	for (struct stream *s = d->streams; s != NULL; s = s->next)
		if (s->head != NULL)
			n += drop_pipe(s, &s->head, &s->tail, pipe);
	for (struct gen *g = d->gens; g != NULL; g = g->next)
		if (g->pipe == pipe && !g->done && !g->cancel) {
			LOG(LOG_INFO, "client left: generation %llu cancelled",
			    (unsigned long long)g->id);
			g->cancel = true;
			strm_wake(d);
		}
	return (n);
}

/* by_age orders streams with work: running generations first (one token
 * each), then by the arrival of the request at the head of the queue. */
static int
by_age(const void *a, const void *b)
{
	const struct stream *x = *(struct stream *const *)a;
	const struct stream *y = *(struct stream *const *)b;
	uint64_t kx = x->gen != NULL ? 0 : x->head->seq;
	uint64_t ky = y->gen != NULL ? 0 : y->head->seq;
	return ((kx > ky) - (kx < ky));
}

/* by_turn interleaves the users: every user's oldest stream, then every
 * user's second oldest, and so on, each round by age. */
static int
by_turn(const void *a, const void *b)
{
	const struct stream *x = *(struct stream *const *)a;
	const struct stream *y = *(struct stream *const *)b;
	if (x->rank != y->rank)
		return ((x->rank > y->rank) - (x->rank < y->rank));
	return (by_age(a, b));
}

/* user_ix finds uid among the nu users of this turn, adding it. */
static int
user_ix(struct sched_user *u, int *nu, uint32_t uid)
{
	for (int i = 0; i < *nu; i++)
		if (u[i].uid == uid)
			return (i);
	u[*nu] = (struct sched_user){ uid, 0, 0 };
	return ((*nu)++);
}

/* drop_gone_head drops the requests at the head of s whose client has
 * gone: nothing more of them reaches the device.  (The connection's close
 * usually removed them already; this catches those that arrived as it
 * closed, and a push that was in the device then.)  s is not busy. */
static void
drop_gone_head(struct stream *s)
{
	struct item *it;

	while ((it = s->head) != NULL && item_gone(it)) {
		pop(s);
		item_drop(it);
		item_free(it);
	}
}

/*
 * gather builds this turn's jobs; *waiting is set when a stream waits for
 * a slot.  The streams are served oldest request first, so when the batch
 * budget (max_batch inputs) runs out the streams left over are first in
 * the next turn, and a push served in slices goes to the back after each
 * slice (complete).  d->mu held.
 */
static int
gather(struct infinid *d, struct slotjob *sj, int max, bool *waiting)
{
	const struct eng_config *c = eng_config(d->eng);
	int n = 0, m = 0;
	long budget = d->cfg.max_batch;

	int nu = 0;
	long share;

	if (d->ncand_cap < d->nstreams) {
		int cap = d->nstreams * 2;
		struct stream **p = realloc(d->cand, (size_t)cap * sizeof(*p));
		struct sched_user *u = realloc(d->users, (size_t)cap *
		    sizeof(*u));
		if (p != NULL)
			d->cand = p;
		if (u != NULL)
			d->users = u;
		if (p == NULL || u == NULL)
			return (0);     /* the next turn tries again */
		d->ncand_cap = cap;
	}
	for (struct stream *s = d->streams; s != NULL; s = s->next) {
		if (!s->busy && s->gen == NULL)
			drop_gone_head(s);
		if (!s->busy && (s->gen != NULL || s->head != NULL))
			d->cand[m++] = s;
	}
	if (m > 1)
		qsort(d->cand, (size_t)m, sizeof(*d->cand), by_age);
	/* Fair share: users take turns, and while several have work each
	 * gets at most its part of the batch budget, so a user with many
	 * long pushes slows another's one-token push by a slice, not by
	 * the whole backlog. */
	for (int v = 0; v < m; v++) {
		struct stream *s = d->cand[v];
		s->uix = user_ix(d->users, &nu, s->owner);
		s->rank = d->users[s->uix].n++;
	}
	if (nu > 1)
		qsort(d->cand, (size_t)m, sizeof(*d->cand), by_turn);
	share = nu > 1 ? budget / nu : budget;
	if (share < 1)
		share = 1;
	/* Only the stream at hand can be freed (a Close) in this loop. */
	for (int v = 0; v < m && n < max; v++) {
		struct stream *s = d->cand[v];
		if (s->gen != NULL && s->gen->cancel && !s->gen->flush) {
			/* The client may have seen the last sampled token:
			 * one more step feeds it, so the stream holds every
			 * token returned (as when a generation ends). */
			if (s->gen->started && s->gen->ntok > 0)
				end_with_flush(s->gen, "cancelled");
			else {
				finish_gen(d, s->gen, "cancelled");
				continue;
			}
		}
		/* Close needs no state, and Generate only starts a generation. */
		if ((s->gen != NULL || (s->head != NULL &&
		    s->head->kind != IT_CLOSE && s->head->kind != IT_GENERATE)) &&
		    !page_in(d, s, waiting))
			continue;
		if (s->gen != NULL) {
			struct gen *g = s->gen;
			sj[n] = (struct slotjob){ s, NULL, g, 0, 0, -1, 0 };
			/* A step is one input of the user's share: a user
			 * with many generations waits its turn like one with
			 * many pushes while others have work. */
			if ((g->flush || g->started) && nu > 1) {
				if (d->users[s->uix].used >= share)
					continue;
				d->users[s->uix].used++;
			}
			if (g->flush) {
				sj[n].tok = g->toks[g->ntok - 1];
				sj[n].n = 1;
			} else if (!g->started && g->nprompt == 0 &&
			    !eng_stream_has_last(d->eng, s->slot)) {
				/* Nothing to continue from: no input since the
				 * stream was opened or loaded from a file. */
				LOG(LOG_INFO, "generation %llu on %s: no prompt and "
				    "no last input", (unsigned long long)g->id,
				    s->id);
				finish_gen(d, g, "error");
				continue;
			} else if (!g->started) {
				/* The prompt goes in slices, within the batch
				 * budget and the user's share, like a Push, so
				 * a long prompt holds no one back; the token is
				 * sampled after the last slice.  0: sample only. */
				int k = g->nprompt - g->pdone;
				long left = share - d->users[s->uix].used;
				if (left > budget)
					left = budget;
				if (k > 0 && left <= 0)
					continue;
				if (k > left)
					k = (int)left;
				budget -= k;
				d->users[s->uix].used += k;
				sj[n].n = k;
			} else {
				sj[n].tok = g->toks[g->ntok - 1];
				sj[n].n = 1;
			}
			s->busy = true;
			n++;
			continue;
		}
		struct item *it = s->head;
		if (it == NULL)
			continue;
		if (it->kind == IT_CLOSE || it->kind == IT_FORK ||
		    it->kind == IT_SNAPSHOT) {
			if (do_control(d, s, it))
				continue;
			it = s->head;
			if (it == NULL || it->kind != IT_PUSH) {
				/* Look at the stream again at once: signalling
				 * ourselves would be lost before the wait. */
				d->sched_again = true;
				continue;
			}
		}
		if (it->kind == IT_GENERATE) {
			pop(s);
			s->gen = it->gen;
			it->gen = NULL;
			item_free(it);
			d->sched_again = true;
			continue;
		}
		int k = it->n - it->done;
		long left = share - d->users[s->uix].used;
		if (left > budget)
			left = budget;
		if (left <= 0)
			continue;
		if (k > left)
			k = (int)left;
		budget -= k;
		d->users[s->uix].used += k;
		sj[n] = (struct slotjob){ s, it, NULL, k, 0, -1, 0 };
		s->busy = true;
		n++;
		(void)c;
	}
	return (n);
}

/*
 * push_failed answers a Push whose run failed: RESOURCE_EXHAUSTED when the
 * device ran out of memory, UNAVAILABLE when it was lost, INTERNAL else.
 * Unless the device is lost the stream is consistent: the rounds that ran
 * are in its state and the message says how far it got (went: inputs of
 * this run that went in).
 */
static void
push_failed(struct infinid *d, struct stream *s, struct item *it, int rv,
    const char *err, int64_t went)
{
	if (d->device_lost) {
		item_answer(d, it, INFINI_EUNAVAILABLE, NULL, "push to '%s' "
		    "failed: %s; infinid restarts and the stream comes back "
		    "at its last saved state", s->id, err);
		return;
	}
	item_answer(d, it, rv == INFINI_ENOMEM ? INFINI_ENOMEM :
	    INFINI_EINTERNAL, NULL, "push to '%s' failed: %s; %lld of its %u inputs went in, the "
	    "stream is at position %lld", s->id, err,
	    (long long)(it->done + went), it->n,
	    (long long)eng_stream_pos(d->eng, s->slot));
}

static void
complete(struct infinid *d, struct slotjob *sj, int n, int rv,
    const char *err)
{
	for (int i = 0; i < n; i++) {
		struct stream *s = sj[i].s;
		struct uacct *a;
		int64_t went = eng_stream_pos(d->eng, s->slot) - sj[i].pos0;
		s->busy = false;
		s->last_used_ms = now_ms();
		/* A failed run may still have completed some rounds. */
		if (rv == 0 || (went > 0 && !d->device_lost))
			spill_dirty(s);
		if (sj[i].it != NULL) {
			struct item *it = sj[i].it;
			if (rv != 0) {
				pop(s);
				d->st.tokens_in += (uint64_t)went;
				push_failed(d, s, it, rv, err, went);
				item_free(it);
				continue;
			}
			it->done += sj[i].n;
			acct_went(it, sj[i].n);
			d->st.tokens_in += (uint64_t)sj[i].n;
			if ((a = acct_get(d, it->uid)) != NULL)
				a->tokens_in += (uint64_t)sj[i].n;
			if (it->done == it->n) {
				pop(s);
				push_done(d, s, it);
				item_free(it);
			} else
				it->seq = ++d->next_seq;  /* to the back */
			continue;
		}
		struct gen *g = sj[i].g;
		if (rv != 0) {
			finish_gen(d, g, "error");
			continue;
		}
		if (g->flush) {
			/* The stream now holds every generated token. */
			g->flush = false;
			finish_gen(d, g, g->finish);
			continue;
		}
		a = acct_get(d, g->owner);
		if (!g->started) {
			d->st.tokens_in += (uint64_t)sj[i].n;
			if (a != NULL)
				a->tokens_in += (uint64_t)sj[i].n;
			g->pdone += sj[i].n;
			if (g->pdone < g->nprompt)
				continue;       /* more of the prompt to go */
		}
		g->started = true;
		g->toks[g->ntok++] = sj[i].sampled;
		d->st.tokens_out++;
		if (a != NULL)
			a->tokens_out++;
		size_t from = g->tlen;
		gen_add_text(d, g, sj[i].sampled);
		if (d->tok != NULL && tok_is_eos(d->tok, sj[i].sampled))
			finish_gen(d, g, "eos");
		else {
			if (has_stop(g, from))
				end_with_flush(g, "stop");
			else if (g->ntok >= g->max)
				end_with_flush(g, "length");
			if (g->progress != NULL)
				g->progress(d, g);
		}
	}
}

/*
 * check_lost notices a lost device (after any device work) and asks main to
 * exit (SIGTERM, taken by svc_run) so that the service manager restarts the
 * daemon.  Nothing is written from the device after the loss, so every
 * saved stream keeps its last saved state.
 */
static void
check_lost(struct infinid *d)
{
	if (d->device_lost || !eng_lost(d->eng))
		return;
	LOG(LOG_CRIT, "the Vulkan device was lost: failing every request and "
	    "exiting for a restart; streams keep their last saved state");
	d->device_lost = true;
	kill(getpid(), SIGTERM);
}

/* fail_all answers all queued work with UNAVAILABLE once the device is
 * lost, until the daemon exits. */
static void
fail_all(struct infinid *d)
{
	static const char why[] = "cannot be served: the Vulkan device was "
	    "lost; infinid is restarting";
	struct item *it;

	while ((it = d->ctl_head) != NULL) {
		d->ctl_head = it->next;
		if (d->ctl_head == NULL)
			d->ctl_tail = NULL;
		item_answer(d, it, INFINI_EUNAVAILABLE, NULL, "stream '%s' %s",
		    it->id, why);
		item_free(it);
	}
	for (struct stream *s = d->streams; s != NULL; s = s->next) {
		if (s->busy)
			continue;
		if (s->gen != NULL)
			finish_gen(d, s->gen, "error");
		fail_queue(d, s, INFINI_EUNAVAILABLE, why);
	}
}

/*
 * answer_stopping answers every request still waiting when the daemon
 * stops (after spill_drain wrote the streams), with UNAVAILABLE and how far
 * it got, so that no client is left with a reset connection: a Push cut
 * between two slices says how many of its inputs went in, which the saved
 * stream holds.  Running generations end "cancelled".
 */
static void
answer_stopping(struct infinid *d)
{
	struct item *it;

	while ((it = d->ctl_head) != NULL) {
		d->ctl_head = it->next;
		if (d->ctl_head == NULL)
			d->ctl_tail = NULL;
		item_answer(d, it, INFINI_EUNAVAILABLE, NULL, "infinid is "
		    "stopping: stream '%s' was not %s; ask again once it is "
		    "back", it->id, it->kind == IT_RESTORE ? "restored" :
		    "opened");
		item_free(it);
	}
	for (struct stream *s = d->streams; s != NULL; s = s->next) {
		bool saved = !s->dirty || s->slot < 0;
		if (s->gen != NULL && !s->gen->done)
			finish_gen(d, s->gen, "cancelled");
		while ((it = pop(s)) != NULL) {
			if (it->kind == IT_GENERATE && it->gen != NULL) {
				it->gen->s = NULL;
				finish_gen(d, it->gen, "cancelled");
			}
			if (it->kind == IT_PUSH)
				item_answer(d, it, INFINI_EUNAVAILABLE, NULL,
				    "infinid is stopping: %d of the %d inputs of "
				    "this push went in; stream '%s' is at position "
				    "%lld%s", it->done, it->n, s->id,
				    (long long)strm_pos(d, s), saved ?
				    " and was saved" : "");
			else
				item_answer(d, it, INFINI_EUNAVAILABLE, NULL,
				    "infinid is stopping: the request on stream "
				    "'%s' did not run", s->id);
			item_free(it);
		}
	}
}

/* reap cancels generations nobody polls and frees finished ones. */
static void
reap(struct infinid *d)
{
	int64_t t = now_ms();
	for (struct gen **pp = &d->gens; *pp != NULL;) {
		struct gen *g = *pp;
		if (!g->done && t - g->last_poll_ms > d->cfg.generate_idle_s * 1000) {
			LOG(LOG_NOTICE, "generation %llu abandoned: cancelled",
			    (unsigned long long)g->id);
			g->cancel = true;
			if (g->s == NULL || g->s->gen != g)
				finish_gen(d, g, "cancelled");
		}
		if (g->done && g->waiters == NULL && t - g->done_ms > 60000) {
			*pp = g->next;
			gen_free(g);
			continue;
		}
		pp = &g->next;
	}
}

/* arm_fault arms $INFINID_FAULT in the engine when its stream is in this
 * batch (its slot may differ from turn to turn). */
static bool
arm_fault(struct infinid *d, const struct slotjob *sj, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(sj[i].s->id, d->fault_id) == 0) {
			eng_fault_arm(d->eng, sj[i].s->slot, d->fault,
			    d->fault_skip);
			return (true);
		}
	return (false);
}

static void
disarm_fault(struct infinid *d)
{
	int left = eng_fault_left(d->eng);
	if (left < 0) {
		LOG(LOG_WARNING, "injected a device fault into stream %s",
		    d->fault_id);
		d->fault = ENG_FAULT_NONE;
	} else
		d->fault_skip = left;
	eng_fault_arm(d->eng, -1, ENG_FAULT_NONE, 0);
}

static void *
sched_main(void *arg)
{
	struct infinid *d = arg;
	int max = d->max_resident;
	struct slotjob *sj = calloc((size_t)max, sizeof(*sj));
	struct eng_job *jobs = calloc((size_t)max, sizeof(*jobs));
	const struct eng_config *c = eng_config(d->eng);
	char err[256];

	if (sj == NULL || jobs == NULL) {
		LOG(LOG_ERR, "scheduler: out of memory");
		abort();
	}
	pthread_mutex_lock(&d->mu);
	while (!d->stopping) {
		struct item *it;
		/* The lock is dropped for file I/O within a turn, so a wake-up
		 * can come while nobody waits: compare before sleeping. */
		uint64_t wakes = d->wakes;
		atomic_store(&d->sched_beat_ms, now_ms());
		while (!d->device_lost && (it = d->ctl_head) != NULL) {
			d->ctl_head = it->next;
			if (d->ctl_head == NULL)
				d->ctl_tail = NULL;
			if (item_gone(it)) {
				item_drop(it);     /* its client has gone */
				item_free(it);
				continue;
			}
			if (it->kind == IT_RESTORE)
				do_restore(d, it);
			else
				do_open(d, it);
			item_free(it);
		}
		reap(d);
		check_lost(d);
		if (d->device_lost) {
			fail_all(d);
			clk_timedwait(&d->cv, &d->mu, 1000);
			continue;
		}
		bool waiting = false;
		int n = gather(d, sj, max, &waiting);
		if (n == 0 && d->sched_again) {
			d->sched_again = false;
			continue;
		}
		if (n == 0) {
			clu_sweep(d);
			spill_autosave(d);
			if (d->wakes != wakes)
				continue;
			/* A stream waiting for a slot looks again soon. */
			clk_timedwait(&d->cv, &d->mu, waiting ? 20 : 1000);
			continue;
		}
		for (int i = 0; i < n; i++) {
			struct eng_job *j = &jobs[i];
			struct item *p = sj[i].it;
			memset(j, 0, sizeof(*j));
			j->slot = sj[i].s->slot;
			sj[i].pos0 = eng_stream_pos(d->eng, j->slot);
			j->n = sj[i].n;
			if (p != NULL) {
				size_t H = (size_t)c->hidden_size;
				j->tokens = p->tokens ? p->tokens + p->done : NULL;
				j->vectors = p->vectors ? p->vectors + p->done * H : NULL;
				eng_output_job(&p->out, p->done, j);
			} else {
				struct gen *g = sj[i].g;
				j->tokens = g->started ? &sj[i].tok :
				    g->prompt + g->pdone;
				if (!g->flush && (g->started ||
				    g->pdone + j->n == g->nprompt)) {
					j->sample = &g->smp;
					j->token = &sj[i].sampled;
				}
			}
		}
		bool armed = d->fault != ENG_FAULT_NONE && arm_fault(d, sj, n);
		pthread_mutex_unlock(&d->mu);
		int64_t t0 = now_ms();
		int rv = eng_run(d->eng, jobs, n, err, sizeof(err));
		int64_t t1 = now_ms();
		pthread_mutex_lock(&d->mu);
		if (armed)
			disarm_fault(d);
		if (rv != 0)
			LOG(LOG_ERR, "device run failed: %s", err);
		check_lost(d);
		d->st.submissions++;
		d->st.device_busy_us += (uint64_t)(t1 - t0) * 1000;
		complete(d, sj, n, rv, err);
		if (d->device_lost)
			fail_all(d);
		else {
			clu_sweep(d);
			spill_autosave(d);
		}
	}
	spill_drain(d);
	answer_stopping(d);
	pthread_mutex_unlock(&d->mu);
	free(d->cand);
	d->cand = NULL;
	free(d->users);
	d->users = NULL;
	d->ncand_cap = 0;
	free(sj);
	free(jobs);
	return (NULL);
}

int
sched_start(struct infinid *d)
{
	if (d->max_resident <= 0)
		d->max_resident = (int)(d->cfg.max_resident_streams <
		    d->cfg.max_streams ? d->cfg.max_resident_streams :
		    d->cfg.max_streams);
	(void)spill_init(d);
	atomic_store(&d->sched_beat_ms, now_ms());
	if (pthread_create(&d->sched, NULL, sched_main, d) != 0)
		return (INFINI_ENOMEM);
	return (0);
}

void
sched_stop(struct infinid *d)
{
	pthread_mutex_lock(&d->mu);
	d->stopping = true;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
	pthread_join(d->sched, NULL);
}
