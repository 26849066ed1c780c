/*
 * methods.c - one function per rpc of service infini.v1.Infini.
 *
 * Each handler runs on an NNG callback with d->mu held, checks its request
 * fully (IDs, ownership, shapes, token ranges, finite vectors, limits) and
 * then either answers at once (Health, ListStreams, Stats, Poll, Cancel),
 * hands an item to the scheduler, which answers when the device work is
 * done, or hands named-snapshot file work to snapio.c.  A string field
 * holding a NUL byte never gets here: unpacking refuses it.  Input that
 * passes here never fails in the engine for being bad.  Text is tokenized
 * first, with d->mu released (encode_text).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infinid.h"
#include "log.h"
#include "snapshot.h"

#define C(x) INFINI__V1__CODE__##x
#define STOP_MAX 256    /* bytes of one stop string */

struct call {
	struct infinid *d;
	struct work *w;
	uint32_t uid, pipe;
};

/* stream_for finds id and checks the caller may use it; replies on error. */
static struct stream *
stream_for(struct call *c, const char *id)
{
	struct stream *s;

	if (!wire_valid_id(id)) {
		srv_replyf(c->w, C(INVALID_ARGUMENT), "invalid stream id '%.140s':"
		    " 1-128 characters of [A-Za-z0-9._:-]", id ? id : "");
		return (NULL);
	}
	if ((s = strm_find(c->d, id)) == NULL) {
		srv_replyf(c->w, C(NOT_FOUND), "no stream '%s'", id);
		return (NULL);
	}
	if (!strm_may_use(c->d, c->uid, s->owner)) {
		srv_replyf(c->w, C(PERMISSION_DENIED), "stream '%s' belongs to "
		    "another user", id);
		return (NULL);
	}
	return (s);
}

/* name_ok checks a snapshot name; replies on error. */
static bool
name_ok(struct call *c, const char *name)
{
	if (snap_name_ok(name))
		return (true);
	srv_replyf(c->w, C(INVALID_ARGUMENT), "invalid snapshot name "
	    "'%.140s': 1-128 of [A-Za-z0-9._:-], not starting with '.'",
	    name ? name : "");
	return (false);
}

static bool
queue_room(struct call *c, struct stream *s)
{
	if (s->nqueued < c->d->cfg.max_queue)
		return (true);
	srv_replyf(c->w, C(RESOURCE_EXHAUSTED), "stream '%s' has %d requests "
	    "queued (max_queue)", s->id, s->nqueued);
	return (false);
}

/*
 * user_room checks the caller's fair share before anything is queued:
 * max_requests_per_uid requests in flight, and (ntok > 0) room for ntok
 * more queued inputs.  Replies RESOURCE_EXHAUSTED when there is none.
 */
static bool
user_room(struct call *c, int64_t ntok)
{
	struct uacct *a = acct_get(c->d, c->uid);

	if (a == NULL) {
		srv_replyf(c->w, C(RESOURCE_EXHAUSTED), "out of memory");
		return (false);
	}
	if (ntok == 0 && a->inflight >= c->d->cfg.max_requests_per_uid) {
		srv_replyf(c->w, C(RESOURCE_EXHAUSTED), "you have %d requests "
		    "queued or running (max_requests_per_uid %ld): wait for "
		    "their replies", a->inflight, c->d->cfg.max_requests_per_uid);
		return (false);
	}
	if (ntok > 0 && a->queued_tokens + ntok >
	    c->d->cfg.max_queued_tokens_per_uid) {
		srv_replyf(c->w, C(RESOURCE_EXHAUSTED), "%lld more inputs would "
		    "make %lld queued for you (max_queued_tokens_per_uid %ld): "
		    "wait for your pushes to finish", (long long)ntok,
		    (long long)(a->queued_tokens + ntok),
		    c->d->cfg.max_queued_tokens_per_uid);
		return (false);
	}
	return (true);
}

static struct item *
new_item(struct call *c, enum item_kind k)
{
	struct item *it;

	if (!user_room(c, 0))
		return (NULL);
	if ((it = calloc(1, sizeof(*it))) == NULL) {
		srv_replyf(c->w, C(RESOURCE_EXHAUSTED), "out of memory");
		return (NULL);
	}
	it->kind = k;
	it->w = c->w;
	it->uid = c->uid;
	it->pipe = c->pipe;
	return (it);
}

/* enqueue counts it in the caller's share and hands it to the scheduler. */
static void
enqueue(struct call *c, struct stream *s, struct item *it)
{
	/* The scheduler has stopped and answered what it had: answer the
	 * same way rather than leave the request to the socket's close. */
	if (c->d->stopping) {
		if (it->gen != NULL) {
			it->gen->s = NULL;
			it->gen->done = true;
			snprintf(it->gen->finish, sizeof(it->gen->finish),
			    "cancelled");
		}
		if (it->w != NULL)
			srv_replyf(it->w, C(UNAVAILABLE), "infinid is stopping: "
			    "the request did not run");
		item_free(it);
		return;
	}
	acct_take(it, acct_get(c->d, c->uid));
	sched_enqueue(c->d, s, it);
}

void
methods_health(struct infinid *d, struct work *w)
{
	Infini__V1__HealthReply r = INFINI__V1__HEALTH_REPLY__INIT;
	const struct eng_config *cf = eng_config(d->eng);

	r.version = (char *)INFINI_VERSION_STRING;
	r.model = d->cfg.model;
	r.device = d->device_name;
	r.uptime_ms = (uint64_t)(now_ms() - d->start_ms);
	r.streams = (uint32_t)__atomic_load_n(&d->nstreams, __ATOMIC_RELAXED);
	r.model_fingerprint = d->model->fingerprint;
	r.hidden_size = (uint32_t)cf->hidden_size;
	r.vocab_size = (uint32_t)cf->vocab_size;
	r.segment_size = (uint32_t)cf->segment_size;
	r.max_message_bytes = (uint32_t)d->cfg.max_message_bytes;
	srv_reply(w, 0, NULL, &r.base);
}

static void
m_health(struct call *c, const ProtobufCMessage *in)
{
	(void)in;
	methods_health(c->d, c->w);
}

static void
m_open(struct call *c, const ProtobufCMessage *in)
{
	const Infini__V1__OpenStreamRequest *q = (const void *)in;
	struct item *it;

	if (q->stream_id[0] && !wire_valid_id(q->stream_id)) {
		srv_replyf(c->w, C(INVALID_ARGUMENT), "invalid stream id '%.140s':"
		    " 1-128 characters of [A-Za-z0-9._:-]", q->stream_id);
		return;
	}
	if ((it = new_item(c, IT_OPEN)) == NULL)
		return;
	snprintf(it->id, sizeof(it->id), "%s", q->stream_id);
	it->reuse = q->reuse;
	enqueue(c, NULL, it);
}

/*
 * encode_text tokenizes a request's text into *ids (malloc'd, *n of them)
 * with d->mu released, so a long text holds up no other request: the
 * tokenizer is read-only, and the handlers call this before they look
 * anything up, so they go on as if the request had just arrived.  Replies
 * and returns false on error.
 */
static bool
encode_text(struct call *c, const char *text, bool plain, int32_t **ids,
    size_t *n)
{
	const struct tok *t = c->d->tok;
	char err[256] = "";
	int rv;

	if (t == NULL) {
		srv_replyf(c->w, C(FAILED_PRECONDITION), "the model has no "
		    "tokenizer: send tokens or vectors");
		return (false);
	}
	pthread_mutex_unlock(&c->d->mu);
	rv = tok_encode(t, text, strlen(text), plain ? TOK_PLAIN_SPECIAL : 0,
	    ids, n, err, sizeof(err));
	pthread_mutex_lock(&c->d->mu);
	if (rv == INFINI_EINVAL)
		srv_replyf(c->w, C(INVALID_ARGUMENT), "text: %s", err);
	else if (rv == INFINI_ENOMEM)
		srv_replyf(c->w, C(RESOURCE_EXHAUSTED), "out of memory");
	else if (rv != 0)
		srv_replyf(c->w, C(INTERNAL), "tokenizer: %s", err);
	return (rv == 0);
}

/* take_input copies tokens / vectors into it, or takes the ids of a text
 * (*text_ids, set to NULL when taken); replies on error. */
static bool
take_input(struct call *c, struct item *it, const Infini__V1__Tokens *tk,
    int32_t **text_ids, size_t ntext, const Infini__V1__Vectors *vec)
{
	const struct eng_config *cf = eng_config(c->d->eng);
	size_t n = 0;

	if (tk != NULL) {
		n = tk->n_ids;
		if (n > 0 && n <= (size_t)c->d->cfg.max_request_tokens) {
			for (size_t i = 0; i < n; i++)
				if (tk->ids[i] < 0 || tk->ids[i] >= cf->vocab_size) {
					srv_replyf(c->w, C(INVALID_ARGUMENT),
					    "token %d at %zu is outside the "
					    "vocabulary [0, %d)", tk->ids[i], i,
					    cf->vocab_size);
					return (false);
				}
			it->tokens = malloc(n * sizeof(int32_t));
			if (it->tokens)
				memcpy(it->tokens, tk->ids, n * sizeof(int32_t));
		}
	} else if (text_ids != NULL) {
		n = ntext;
		if (n > 0 && n <= (size_t)c->d->cfg.max_request_tokens) {
			it->tokens = *text_ids;
			*text_ids = NULL;
		}
	} else if (vec != NULL) {
		if (vec->dim != (uint32_t)cf->hidden_size ||
		    vec->n_data % (vec->dim ? vec->dim : 1) != 0) {
			srv_replyf(c->w, C(INVALID_ARGUMENT), "vectors must have "
			    "dim %d and a whole number of rows (got dim %u, %zu "
			    "values)", cf->hidden_size, vec->dim, vec->n_data);
			return (false);
		}
		n = vec->n_data / (size_t)cf->hidden_size;
		for (size_t i = 0; i < vec->n_data; i++)
			if (!isfinite(vec->data[i])) {
				srv_replyf(c->w, C(INVALID_ARGUMENT), "vector %zu "
				    "has a non-finite value at column %zu",
				    i / vec->dim, i % vec->dim);
				return (false);
			}
		if (n > 0 && n <= (size_t)c->d->cfg.max_request_tokens) {
			it->vectors = malloc(vec->n_data * sizeof(float));
			if (it->vectors)
				memcpy(it->vectors, vec->data,
				    vec->n_data * sizeof(float));
		}
	}
	if (n == 0) {
		srv_replyf(c->w, C(INVALID_ARGUMENT), "no input: give tokens, "
		    "text or vectors");
		return (false);
	}
	if (n > (size_t)c->d->cfg.max_request_tokens) {
		srv_replyf(c->w, C(RESOURCE_EXHAUSTED), "%zu inputs exceed "
		    "max_request_tokens (%ld)", n, c->d->cfg.max_request_tokens);
		return (false);
	}
	if (it->tokens == NULL && it->vectors == NULL) {
		srv_replyf(c->w, C(RESOURCE_EXHAUSTED), "out of memory");
		return (false);
	}
	it->n = (int)n;
	return (true);
}

static void
m_push_input(struct call *c, const Infini__V1__PushRequest *q,
    int32_t **text_ids, size_t ntext)
{
	const struct eng_config *cf = eng_config(c->d->eng);
	struct stream *s;
	struct item *it;
	size_t len = 0;

	if ((s = stream_for(c, q->stream_id)) == NULL || !queue_room(c, s))
		return;
	if ((unsigned)q->output > INFINI__V1__OUTPUT__OUTPUT_LAST_LOGITS) {
		srv_replyf(c->w, C(INVALID_ARGUMENT), "unknown output %d",
		    (int)q->output);
		return;
	}
	if ((it = new_item(c, IT_PUSH)) == NULL)
		return;
	if (!take_input(c, it,
	    q->input_case == INFINI__V1__PUSH_REQUEST__INPUT_TOKENS ? q->tokens : NULL,
	    q->input_case == INFINI__V1__PUSH_REQUEST__INPUT_TEXT ? text_ids :
	    NULL, ntext,
	    q->input_case == INFINI__V1__PUSH_REQUEST__INPUT_VECTORS ?
	    q->vectors : NULL)) {
		item_free(it);
		return;
	}
	if (!user_room(c, it->n)) {
		item_free(it);
		return;
	}
	/* Output kinds map one to one onto the engine's. */
	it->out = (enum eng_out)q->output;
	switch (it->out) {
	case ENG_OUT_EMBED: len = (size_t)it->n * cf->hidden_size; break;
	case ENG_OUT_LOGITS: len = (size_t)it->n * cf->vocab_size; break;
	case ENG_OUT_LAST_LOGITS: len = (size_t)cf->vocab_size; break;
	case ENG_OUT_MEAN:
	case ENG_OUT_LAST: len = (size_t)cf->hidden_size; break;
	default: break;
	}
	if (len * sizeof(float) > (size_t)c->d->cfg.max_message_bytes) {
		srv_replyf(c->w, C(RESOURCE_EXHAUSTED), "the reply would be %zu "
		    "bytes, over max_message_bytes", len * sizeof(float));
		item_free(it);
		return;
	}
	if ((len && (it->result = calloc(len, sizeof(float))) == NULL) ||
	    (it->out == ENG_OUT_MEAN &&
	    (it->mean = calloc((size_t)cf->hidden_size, sizeof(double))) == NULL)) {
		srv_replyf(c->w, C(RESOURCE_EXHAUSTED), "out of memory");
		item_free(it);
		return;
	}
	it->result_len = len;
	enqueue(c, s, it);
}

static void
m_push(struct call *c, const ProtobufCMessage *in)
{
	const Infini__V1__PushRequest *q = (const void *)in;
	int32_t *ids = NULL;
	size_t n = 0;

	if (q->input_case == INFINI__V1__PUSH_REQUEST__INPUT_TEXT &&
	    !encode_text(c, q->text, q->plain_special, &ids, &n))
		return;
	m_push_input(c, q, &ids, n);
	free(ids);
}

static void
m_generate_input(struct call *c, const Infini__V1__GenerateRequest *q,
    int32_t **text_ids, size_t ntext)
{
	Infini__V1__GenerateReply r = INFINI__V1__GENERATE_REPLY__INIT;
	struct stream *s;
	struct item *it;
	struct gen *g;
	char why[160];

	if ((s = stream_for(c, q->stream_id)) == NULL || !queue_room(c, s))
		return;
	if (q->max_tokens == 0 || q->max_tokens > c->d->cfg.max_generate) {
		srv_replyf(c->w, C(INVALID_ARGUMENT), "max_tokens must be in "
		    "[1, %ld]", c->d->cfg.max_generate);
		return;
	}
	if (q->sampling != NULL && !wire_check_sampling(
	    q->sampling->temperature, q->sampling->top_k, q->sampling->top_p,
	    why, sizeof(why))) {
		srv_replyf(c->w, C(INVALID_ARGUMENT), "%s", why);
		return;
	}
	if ((it = new_item(c, IT_GENERATE)) == NULL)
		return;
	/* Without a prompt the generation continues from the stream's last
	 * input (the scheduler checks there is one). */
	if (q->prompt_case != INFINI__V1__GENERATE_REQUEST__PROMPT__NOT_SET &&
	    !take_input(c, it,
	    q->prompt_case == INFINI__V1__GENERATE_REQUEST__PROMPT_TOKENS ?
	    q->tokens : NULL,
	    q->prompt_case == INFINI__V1__GENERATE_REQUEST__PROMPT_TEXT ?
	    text_ids : NULL, ntext, NULL)) {
		item_free(it);
		return;
	}
	if (!user_room(c, it->n)) {
		item_free(it);
		return;
	}
	if (q->n_stop > (size_t)c->d->cfg.max_stop_strings) {
		srv_replyf(c->w, C(RESOURCE_EXHAUSTED), "%zu stop strings: at "
		    "most %ld (max_stop_strings)", q->n_stop,
		    c->d->cfg.max_stop_strings);
		item_free(it);
		return;
	}
	for (size_t i = 0; i < q->n_stop; i++)
		if (strlen(q->stop[i]) > STOP_MAX) {
			srv_replyf(c->w, C(RESOURCE_EXHAUSTED), "stop string %zu "
			    "is %zu bytes: at most %d", i, strlen(q->stop[i]),
			    STOP_MAX);
			item_free(it);
			return;
		}
	if ((g = calloc(1, sizeof(*g))) == NULL ||
	    (g->toks = calloc(q->max_tokens, sizeof(int32_t))) == NULL ||
	    (g->tend = calloc(q->max_tokens, sizeof(size_t))) == NULL ||
	    (g->text = calloc(g->tcap = 256, 1)) == NULL ||
	    (q->n_stop && (g->stop = calloc(q->n_stop, sizeof(char *))) == NULL)) {
		if (g) {
			free(g->toks);
			free(g->tend);
			free(g->text);
			free(g);
		}
		item_free(it);
		srv_replyf(c->w, C(RESOURCE_EXHAUSTED), "out of memory");
		return;
	}
	for (size_t i = 0; i < q->n_stop; i++)
		if ((g->stop[g->nstop] = strdup(q->stop[i])) != NULL)
			g->nstop++;
	g->id = ++c->d->next_gen;
	g->s = s;
	g->owner = s->owner;
	g->pipe = c->pipe;
	g->prompt = it->tokens;
	g->nprompt = it->n;
	it->tokens = NULL;
	g->max = q->max_tokens;
	tok_stream_init(&g->ts);
	g->last_poll_ms = now_ms();
	if (q->sampling != NULL) {
		g->smp.temperature = q->sampling->temperature;
		g->smp.top_k = (int)q->sampling->top_k;
		g->smp.top_p = q->sampling->top_p > 0 ? q->sampling->top_p : 1.0f;
		g->smp.seed = q->sampling->seed;
	} else {
		g->smp.top_p = 1.0f;
	}
	g->next = c->d->gens;
	c->d->gens = g;
	it->gen = g;
	it->w = NULL;   /* answered now, not by the scheduler */
	enqueue(c, s, it);
	r.generation_id = g->id;
	srv_reply(c->w, 0, NULL, &r.base);
}

static void
m_generate(struct call *c, const ProtobufCMessage *in)
{
	const Infini__V1__GenerateRequest *q = (const void *)in;
	int32_t *ids = NULL;
	size_t n = 0;

	if (q->prompt_case == INFINI__V1__GENERATE_REQUEST__PROMPT_TEXT &&
	    !encode_text(c, q->text, q->plain_special, &ids, &n))
		return;
	m_generate_input(c, q, &ids, n);
	free(ids);
}

static struct gen *
gen_for(struct call *c, uint64_t id)
{
	for (struct gen *g = c->d->gens; g != NULL; g = g->next)
		if (g->id == id) {
			if (!strm_may_use(c->d, c->uid, g->owner)) {
				srv_replyf(c->w, C(PERMISSION_DENIED),
				    "generation %llu belongs to another user",
				    (unsigned long long)id);
				return (NULL);
			}
			return (g);
		}
	srv_replyf(c->w, C(NOT_FOUND), "no generation %llu",
	    (unsigned long long)id);
	return (NULL);
}

void
methods_poll_reply(struct infinid *d, struct work *w, struct gen *g,
    uint64_t after)
{
	Infini__V1__PollReply r = INFINI__V1__POLL_REPLY__INIT;
	uint64_t n = g->ntok > after ? g->ntok - after : 0;
	size_t b0 = 0, b1 = 0;
	uint32_t lens[64], *tl = lens;

	if (w->pacct != NULL) {
		w->pacct->inflight--;
		w->pacct = NULL;
	}
	/* Each token's text is what it completed: g->tend[i] - g->tend[i-1]. */
	if (d->tok != NULL && n > 0) {
		if (n > sizeof(lens) / sizeof(lens[0]) &&
		    (tl = malloc(n * sizeof(*tl))) == NULL) {
			srv_replyf(w, C(RESOURCE_EXHAUSTED), "out of memory");
			return;
		}
		b0 = after > 0 ? g->tend[after - 1] : 0;
		b1 = g->tend[g->ntok - 1];
		for (uint64_t i = 0; i < n; i++)
			tl[i] = (uint32_t)(g->tend[after + i] - (after + i > 0 ?
			    g->tend[after + i - 1] : 0));
		r.n_text_lens = n;
		r.text_lens = tl;
	}
	r.n_tokens = n;
	r.tokens = g->toks + (n ? after : 0);
	r.text.data = (uint8_t *)g->text + b0;
	r.text.len = b1 - b0;
	r.next = after + n;
	r.done = g->done && after + n >= g->ntok;
	r.finish_reason = r.done ? g->finish : (char *)"";
	srv_reply(w, 0, NULL, &r.base);
	if (tl != lens)
		free(tl);
}

static void
m_poll(struct call *c, const ProtobufCMessage *in)
{
	const Infini__V1__PollRequest *q = (const void *)in;
	struct gen *g;
	uint32_t wait;

	if ((g = gen_for(c, q->generation_id)) == NULL)
		return;
	g->last_poll_ms = now_ms();
	if (q->after > g->ntok) {
		srv_replyf(c->w, C(OUT_OF_RANGE), "after %llu is beyond the %u "
		    "tokens generated", (unsigned long long)q->after, g->ntok);
		return;
	}
	wait = q->wait_ms < c->d->cfg.poll_max_ms ? q->wait_ms :
	    (uint32_t)c->d->cfg.poll_max_ms;
	/* A parked Poll holds a context like a queued request: it counts in
	 * the caller's share, and past it the Poll is answered at once. */
	struct uacct *a = acct_get(c->d, c->uid);
	if (g->ntok > q->after || g->done || wait == 0 || a == NULL ||
	    a->inflight >= c->d->cfg.max_requests_per_uid) {
		methods_poll_reply(c->d, c->w, g, q->after);
		return;
	}
	a->inflight++;
	c->w->pacct = a;
	c->w->pgen = g;
	c->w->pafter = q->after;
	c->w->pnext = g->waiters;
	g->waiters = c->w;
	c->w->pdeadline_ms = now_ms() + wait;
}

static void
m_cancel(struct call *c, const ProtobufCMessage *in)
{
	const Infini__V1__CancelRequest *q = (const void *)in;
	Infini__V1__CancelReply r = INFINI__V1__CANCEL_REPLY__INIT;
	struct gen *g;

	if ((g = gen_for(c, q->generation_id)) == NULL)
		return;
	if (!g->done) {
		g->cancel = true;
		sched_wake(c->d);
	}
	srv_reply(c->w, 0, NULL, &r.base);
}

static void
m_fork(struct call *c, const ProtobufCMessage *in)
{
	const Infini__V1__ForkRequest *q = (const void *)in;
	struct stream *s;
	struct item *it;

	if ((s = stream_for(c, q->stream_id)) == NULL || !queue_room(c, s))
		return;
	if (q->new_stream_id[0] && !wire_valid_id(q->new_stream_id)) {
		srv_replyf(c->w, C(INVALID_ARGUMENT), "invalid new stream id");
		return;
	}
	if ((it = new_item(c, IT_FORK)) == NULL)
		return;
	snprintf(it->id, sizeof(it->id), "%s", q->new_stream_id);
	enqueue(c, s, it);
}

static void
m_close(struct call *c, const ProtobufCMessage *in)
{
	const Infini__V1__CloseStreamRequest *q = (const void *)in;
	struct stream *s;
	struct item *it;

	if ((s = stream_for(c, q->stream_id)) == NULL)
		return;
	if ((it = new_item(c, IT_CLOSE)) == NULL)
		return;
	/* A running generation ends so the close is not held behind it. */
	if (s->gen != NULL)
		s->gen->cancel = true;
	enqueue(c, s, it);
}

static void
m_list(struct call *c, const ProtobufCMessage *in)
{
	Infini__V1__ListStreamsReply r = INFINI__V1__LIST_STREAMS_REPLY__INIT;
	Infini__V1__StreamInfo *info, **ptrs;
	int n = 0;
	int64_t t = now_ms();
	(void)in;

	info = calloc((size_t)c->d->nstreams + 1, sizeof(*info));
	ptrs = calloc((size_t)c->d->nstreams + 1, sizeof(*ptrs));
	if (info == NULL || ptrs == NULL) {
		free(info);
		free(ptrs);
		srv_replyf(c->w, C(RESOURCE_EXHAUSTED), "out of memory");
		return;
	}
	for (struct stream *s = c->d->streams; s != NULL; s = s->next) {
		if (!strm_may_use(c->d, c->uid, s->owner))
			continue;
		Infini__V1__StreamInfo *i = &info[n];
		infini__v1__stream_info__init(i);
		i->stream_id = s->id;
		i->position = (uint64_t)strm_pos(c->d, s);
		i->resident = s->slot >= 0;
		i->segments = i->position /
		    (uint64_t)eng_config(c->d->eng)->segment_size;
		i->owner_uid = s->owner;
		i->idle_ms = (uint64_t)(t - s->last_used_ms);
		i->generating = s->gen != NULL;
		ptrs[n++] = i;
	}
	r.n_streams = (size_t)n;
	r.streams = ptrs;
	srv_reply(c->w, 0, NULL, &r.base);
	free(info);
	free(ptrs);
}

static void
m_stats(struct call *c, const ProtobufCMessage *in)
{
	Infini__V1__StatsReply r = INFINI__V1__STATS_REPLY__INIT;
	(void)in;

	/* Limits and the model's shape are everyone's; what was done is the
	 * caller's own unless it is root or in admin_group (uid 0 here), so
	 * no user learns anything of another's streams or traffic. */
	r.max_streams = (uint32_t)c->d->cfg.max_streams;
	r.state_bytes_per_stream = eng_state_bytes(c->d->eng);
	r.uptime_ms = (uint64_t)(now_ms() - c->d->start_ms);
	r.max_resident_streams = (uint32_t)c->d->max_resident;
	if (c->uid != 0) {
		struct uacct *a = acct_get(c->d, c->uid);
		if (a != NULL) {
			r.requests = a->requests;
			r.errors = a->errors;
			r.tokens_in = a->tokens_in;
			r.tokens_out = a->tokens_out;
		}
		for (struct stream *s = c->d->streams; s != NULL; s = s->next)
			if (s->owner == c->uid) {
				r.streams++;
				r.resident_streams += s->slot >= 0;
			}
		srv_reply(c->w, 0, NULL, &r.base);
		return;
	}
	r.requests = __atomic_load_n(&c->d->st.requests, __ATOMIC_RELAXED);
	r.errors = c->d->st.errors;
	r.tokens_in = c->d->st.tokens_in;
	r.tokens_out = c->d->st.tokens_out;
	r.submissions = c->d->st.submissions;
	r.device_busy_us = c->d->st.device_busy_us;
	r.streams = (uint32_t)c->d->nstreams;
	r.resident_streams = (uint32_t)c->d->nresident;
	r.page_ins = c->d->st.page_ins;
	r.evictions = c->d->st.evictions;
	r.autosnapshots = c->d->st.autosnapshots;
	r.spill_errors = c->d->st.spill_errors;
	srv_reply(c->w, 0, NULL, &r.base);
}

static void
m_snapshot(struct call *c, const ProtobufCMessage *in)
{
	const Infini__V1__SnapshotRequest *q = (const void *)in;
	struct stream *s;
	struct item *it;

	if ((s = stream_for(c, q->stream_id)) == NULL || !queue_room(c, s))
		return;
	if (q->name[0] == '\0' && !q->export) {
		srv_replyf(c->w, C(INVALID_ARGUMENT), "give a snapshot name, ask "
		    "for the bytes (export), or both");
		return;
	}
	if (q->name[0] && !name_ok(c, q->name))
		return;
	if ((it = new_item(c, IT_SNAPSHOT)) == NULL)
		return;
	snprintf(it->name, sizeof(it->name), "%s", q->name);
	it->export_bytes = q->export;
	it->overwrite = q->overwrite;
	enqueue(c, s, it);
}

static void
m_restore(struct call *c, const ProtobufCMessage *in)
{
	const Infini__V1__RestoreRequest *q = (const void *)in;
	struct item *it;

	if (!wire_valid_id(q->stream_id)) {
		srv_replyf(c->w, C(INVALID_ARGUMENT), "invalid stream id '%.140s'",
		    q->stream_id);
		return;
	}
	if (q->source_case == INFINI__V1__RESTORE_REQUEST__SOURCE_NAME) {
		/* The file work is the snapshot thread's; it hands the
		 * decoded state to the scheduler. */
		if (name_ok(c, q->name))
			sio_restore(c->d, c->w, c->uid, c->pipe, q->stream_id,
			    q->name);
		return;
	}
	if (q->source_case == INFINI__V1__RESTORE_REQUEST__SOURCE__NOT_SET ||
	    (q->source_case == INFINI__V1__RESTORE_REQUEST__SOURCE_DATA &&
	    q->data.len == 0)) {
		srv_replyf(c->w, C(INVALID_ARGUMENT), "give a snapshot name or "
		    "snapshot bytes");
		return;
	}
	if ((it = new_item(c, IT_RESTORE)) == NULL)
		return;
	snprintf(it->id, sizeof(it->id), "%s", q->stream_id);
	if ((it->data = malloc(q->data.len)) == NULL) {
		item_free(it);
		srv_replyf(c->w, C(RESOURCE_EXHAUSTED), "out of memory");
		return;
	}
	memcpy(it->data, q->data.data, q->data.len);
	it->data_len = q->data.len;
	enqueue(c, NULL, it);
}

static void
m_list_snapshots(struct call *c, const ProtobufCMessage *in)
{
	(void)in;
	sio_list(c->d, c->w, c->uid);
}

static void
m_delete_snapshot(struct call *c, const ProtobufCMessage *in)
{
	const Infini__V1__DeleteSnapshotRequest *q = (const void *)in;

	if (name_ok(c, q->name))
		sio_delete(c->d, c->w, c->uid, q->name);
}

typedef void (*handler)(struct call *, const ProtobufCMessage *);

/* Indexed by infini.v1.Method. */
static const handler handlers[] = {
	[INFINI__V1__METHOD__HEALTH] = m_health,
	[INFINI__V1__METHOD__OPEN_STREAM] = m_open,
	[INFINI__V1__METHOD__PUSH] = m_push,
	[INFINI__V1__METHOD__GENERATE] = m_generate,
	[INFINI__V1__METHOD__POLL] = m_poll,
	[INFINI__V1__METHOD__CANCEL] = m_cancel,
	[INFINI__V1__METHOD__FORK] = m_fork,
	[INFINI__V1__METHOD__CLOSE_STREAM] = m_close,
	[INFINI__V1__METHOD__LIST_STREAMS] = m_list,
	[INFINI__V1__METHOD__STATS] = m_stats,
	[INFINI__V1__METHOD__SNAPSHOT] = m_snapshot,
	[INFINI__V1__METHOD__RESTORE] = m_restore,
	[INFINI__V1__METHOD__LIST_SNAPSHOTS] = m_list_snapshots,
	[INFINI__V1__METHOD__DELETE_SNAPSHOT] = m_delete_snapshot,
};

void
methods_decode(const Infini__V1__Request *req, struct mbody *b)
{
	const ProtobufCMethodDescriptor *md = wire_method(req->method);

	b->msg = NULL;
	b->code = 0;
	b->why[0] = '\0';
	if (md == NULL || (size_t)req->method >= sizeof(handlers) /
	    sizeof(handlers[0]) || handlers[req->method] == NULL) {
		b->code = C(UNIMPLEMENTED);
		snprintf(b->why, sizeof(b->why), "unknown method %d",
		    (int)req->method);
		return;
	}
	wire_alloc_init(&b->a, 4 * req->body.len + (1u << 16));
	b->msg = wire_unpack(md->input, &b->a, req->body.len, req->body.data);
	if (b->msg == NULL) {
		const char *f = wire_nul_field(md->input, req->body.len,
		    req->body.data);
		b->code = C(INVALID_ARGUMENT);
		if (f != NULL)
			snprintf(b->why, sizeof(b->why), "%s: field %s holds "
			    "a NUL byte", md->input->name, f);
		else
			snprintf(b->why, sizeof(b->why), "malformed %s body",
			    md->input->name);
	}
}

void
methods_body_free(struct mbody *b)
{
	if (b->msg != NULL)
		protobuf_c_message_free_unpacked(b->msg, &b->a.pa);
	b->msg = NULL;
}

void
methods_dispatch(struct infinid *d, struct work *w, uint32_t uid,
    uint32_t pipe, const Infini__V1__Request *req, const struct mbody *b)
{
	struct call c = { d, w, uid, pipe };
	struct uacct *u = acct_get(d, uid);

	if (u != NULL)
		u->requests++;
	if (b->msg == NULL) {
		srv_replyf(w, b->code, "%s", b->why);
		return;
	}
	handlers[req->method](&c, b->msg);
}
