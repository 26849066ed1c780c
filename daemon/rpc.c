/*
 * rpc.c - the daemon's protobuf: requests in, replies out, one function
 * per rpc of service infini.v1.Infini.
 *
 * rpc_serve unpacks the envelope and the method's body before d->mu is
 * taken, so a large or malformed body costs only its sender; Health is
 * answered there without the lock.  Each handler then runs with d->mu
 * held, checks its request fully (IDs, ownership, shapes, token ranges,
 * finite vectors, limits) and either answers at once (ListStreams, Stats,
 * Poll, Cancel), or queues an item on the scheduler or the snapshot thread,
 * which finish it through item_ops with an INFINI_E* code or a typed
 * item_result; answer() below makes the Reply.  A string field holding a
 * NUL byte never gets here: unpacking refuses it.  Input that passes here
 * never fails in the engine for being bad.  Text is tokenized first, with
 * d->mu released (encode_text).
 *
 * Every Reply is packed once, straight into the buffer its transport sends
 * (wire_reply_pack), and every error is counted for its user and the
 * metrics on the way out (reply).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "rpc.h"
#include "snapshot.h"
#include "store/store.h"
#include "wire.h"

#define C(x) INFINI__V1__CODE__##x
#define STOP_MAX 256    /* bytes of one stop string */

/* The store's IDs are the wire's: one limit, stated once (ids.h). */
_Static_assert(sizeof(((struct stream *)0)->id) == WIRE_ID_MAX + 1,
    "stream ids are the wire's");

/* ------------------------------------------------------------ replies */

/* reply_to packs code, msg, body (NULL: none) and redirect (NULL: none;
 * the member that holds the stream, Status.redirect) into the buffer c's
 * transport sends, and sends it.  Errors are counted for the caller; every
 * error reply is sent with d->mu held (Health, the one call served without
 * it, never fails). */
static void
reply_to(struct rpc_call *c, int code, const char *msg,
    const ProtobufCMessage *body, const char *redirect)
{
	struct infinid *d = c->d;
	struct wire_reply rp;
	uint8_t *buf;

	if (code != 0) {
		struct uacct *a = acct_get(d, c->uid);
		d->st.errors++;
		if (a != NULL)
			a->errors++;
		LOG(LOG_DEBUG, "reply %s: %s", wire_code_name(code), msg);
	}
	metrics_rpc(c->method, code, c->t0_us);
	/* Packed straight into what the transport sends: no copy of the
	 * body (a logits reply can be tens of MiB) besides protobuf-c's
	 * own. */
	wire_reply_init(&rp, c->call_id, code, msg, body);
	if (redirect != NULL)
		wire_reply_redirect(&rp, redirect);
	if ((buf = c->tr->buffer(c, rp.len)) == NULL) {
		c->tr->drop(c);      /* nothing can be sent */
		return;
	}
	wire_reply_pack(&rp, buf);
	c->tr->send(c);
}

static void
reply(struct rpc_call *c, int code, const char *msg,
    const ProtobufCMessage *body)
{
	reply_to(c, code, msg, body, NULL);
}

static void
replyf(struct rpc_call *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
replyf(struct rpc_call *c, int code, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	reply(c, code, msg, NULL);
}

/* ------------------------------------------------- finished items */

static void poll_reply(struct infinid *d, struct rpc_call *c, struct gen *g,
    uint64_t after);

/* list_reply answers ListSnapshots from the snapshot thread's entries. */
static void
list_reply(struct rpc_call *c, const struct item_result *res)
{
	Infini__V1__ListSnapshotsReply r = INFINI__V1__LIST_SNAPSHOTS_REPLY__INIT;
	Infini__V1__SnapshotInfo *info, **ptrs;
	size_t n = res->nlist;

	info = calloc(n ? n : 1, sizeof(*info));
	ptrs = calloc(n ? n : 1, sizeof(*ptrs));
	if (info == NULL || ptrs == NULL) {
		free(info);
		free(ptrs);
		replyf(c, C(RESOURCE_EXHAUSTED), "out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const struct snap_entry *e = &res->list[i];
		infini__v1__snapshot_info__init(&info[i]);
		info[i].name = (char *)e->name;
		info[i].stream_id = (char *)e->stream_id;
		info[i].owner_uid = e->owner;
		info[i].bytes = e->bytes;
		info[i].position = (uint64_t)e->position;
		info[i].created_ms = (uint64_t)e->created_ms;
		ptrs[i] = &info[i];
	}
	r.n_snapshots = n;
	r.snapshots = ptrs;
	reply(c, 0, NULL, &r.base);
	free(info);
	free(ptrs);
}

/*
 * answer is item_ops.answer for the items queued here: the Reply of the
 * item's method, made from its typed result, or the error's status with
 * its message (the status from infini_err.h's one table).
 */
static void
answer(struct infinid *d, struct item *it, int err, const char *msg,
    const struct item_result *res)
{
	struct rpc_call *c = it->call;
	(void)d;

	if (err != 0) {
		reply(c, infini_err_status(err), msg, NULL);
		return;
	}
	switch (it->kind) {
	case IT_OPEN: {
		Infini__V1__OpenStreamReply r = INFINI__V1__OPEN_STREAM_REPLY__INIT;
		r.stream_id = (char *)res->id;
		r.created = res->created;
		r.position = (uint64_t)res->position;
		reply(c, 0, NULL, &r.base);
		break;
	}
	case IT_PUSH: {
		Infini__V1__PushReply r = INFINI__V1__PUSH_REPLY__INIT;
		r.position = (uint64_t)res->position;
		r.segments = (uint64_t)res->segments;
		r.rows = (uint32_t)res->out->rows;
		r.cols = (uint32_t)res->out->cols;
		r.n_data = (size_t)r.rows * r.cols;
		r.data = res->out->data;
		reply(c, 0, NULL, &r.base);
		break;
	}
	case IT_FORK: {
		Infini__V1__ForkReply r = INFINI__V1__FORK_REPLY__INIT;
		r.stream_id = (char *)res->id;
		reply(c, 0, NULL, &r.base);
		break;
	}
	case IT_CLOSE: {
		Infini__V1__CloseStreamReply r = INFINI__V1__CLOSE_STREAM_REPLY__INIT;
		reply(c, 0, NULL, &r.base);
		break;
	}
	case IT_SNAPSHOT: {
		Infini__V1__SnapshotReply r = INFINI__V1__SNAPSHOT_REPLY__INIT;
		r.name = (char *)res->name;
		r.bytes = res->bytes;
		if (res->data != NULL) {
			r.data.data = (uint8_t *)res->data;
			r.data.len = (size_t)res->bytes;
		}
		reply(c, 0, NULL, &r.base);
		break;
	}
	case IT_RESTORE: {
		Infini__V1__RestoreReply r = INFINI__V1__RESTORE_REPLY__INIT;
		r.stream_id = (char *)res->id;
		r.position = (uint64_t)res->position;
		reply(c, 0, NULL, &r.base);
		break;
	}
	case IT_LIST_SNAPSHOTS:
		list_reply(c, res);
		break;
	case IT_DELETE_SNAPSHOT: {
		Infini__V1__DeleteSnapshotReply r =
		    INFINI__V1__DELETE_SNAPSHOT_REPLY__INIT;
		reply(c, 0, NULL, &r.base);
		break;
	}
	default:
		replyf(c, C(INTERNAL), "no reply for request kind %d",
		    (int)it->kind);
		break;
	}
}

static bool
caller_gone(const struct item *it)
{
	return (!it->call->tr->alive(it->call));
}

static void
drop(struct item *it)
{
	it->call->tr->drop(it->call);
}

/* loaded sends a Restore whose named snapshot the snapshot thread read on
 * to the scheduler (not counted in the caller's share, as before it was
 * read). */
static void
loaded(struct infinid *d, struct item *it)
{
	if (d->stopping) {
		item_answer(d, it, INFINI_EUNAVAILABLE, NULL, "infinid is "
		    "shutting down");
		item_free(it);
		return;
	}
	sched_enqueue(d, NULL, it);
}

static const struct item_ops item_ops = {
	.answer = answer,
	.gone = caller_gone,
	.drop = drop,
	.loaded = loaded,
};

/* gen_progress is a generation's progress hook: the polls parked on it
 * are answered with what it has now. */
static void
gen_progress(struct infinid *d, struct gen *g)
{
	struct rpc_call *c, *next;

	for (c = g->waiters; c != NULL; c = next) {
		next = c->pnext;
		c->pgen = NULL;
		c->pnext = NULL;
		poll_reply(d, c, g, c->pafter);
	}
	g->waiters = NULL;
}

/* ------------------------------------------------------------ methods */

/* stream_for finds id and checks the caller may use it; replies on error. */
static struct stream *
stream_for(struct rpc_call *c, const char *id)
{
	struct stream *s;

	if (!wire_valid_id(id)) {
		replyf(c, C(INVALID_ARGUMENT), "invalid stream id '%.140s':"
		    " 1-128 characters of [A-Za-z0-9._:-]", id ? id : "");
		return (NULL);
	}
	if ((s = strm_find(c->d, id)) == NULL) {
		replyf(c, C(NOT_FOUND), "no stream '%s'", id);
		return (NULL);
	}
	if (!strm_may_use(c->d, c->uid, s->owner)) {
		replyf(c, C(PERMISSION_DENIED), "stream '%s' belongs to "
		    "another user", id);
		return (NULL);
	}
	return (s);
}

/* name_ok checks a snapshot name; replies on error. */
static bool
name_ok(struct rpc_call *c, const char *name)
{
	if (snap_name_ok(name))
		return (true);
	replyf(c, C(INVALID_ARGUMENT), "invalid snapshot name "
	    "'%.140s': 1-128 of [A-Za-z0-9._:-], not starting with '.'",
	    name ? name : "");
	return (false);
}

static bool
queue_room(struct rpc_call *c, struct stream *s)
{
	if (s->nqueued < c->d->cfg.max_queue)
		return (true);
	replyf(c, C(RESOURCE_EXHAUSTED), "stream '%s' has %d requests "
	    "queued (max_queue)", s->id, s->nqueued);
	return (false);
}

/*
 * user_room checks the caller's fair share before anything is queued:
 * max_requests_per_uid requests in flight, and (ntok > 0) room for ntok
 * more queued inputs.  Replies RESOURCE_EXHAUSTED when there is none.
 */
static bool
user_room(struct rpc_call *c, int64_t ntok)
{
	struct uacct *a = acct_get(c->d, c->uid);

	if (a == NULL) {
		replyf(c, C(RESOURCE_EXHAUSTED), "out of memory");
		return (false);
	}
	if (ntok == 0 && a->inflight >= c->d->cfg.max_requests_per_uid) {
		replyf(c, C(RESOURCE_EXHAUSTED), "you have %d requests "
		    "queued or running (max_requests_per_uid %ld): wait for "
		    "their replies", a->inflight, c->d->cfg.max_requests_per_uid);
		return (false);
	}
	if (ntok > 0 && a->queued_tokens + ntok >
	    c->d->cfg.max_queued_tokens_per_uid) {
		replyf(c, C(RESOURCE_EXHAUSTED), "%lld more inputs would "
		    "make %lld queued for you (max_queued_tokens_per_uid %ld): "
		    "wait for your pushes to finish", (long long)ntok,
		    (long long)(a->queued_tokens + ntok),
		    c->d->cfg.max_queued_tokens_per_uid);
		return (false);
	}
	return (true);
}

static struct item *
new_item(struct rpc_call *c, enum item_kind k)
{
	struct item *it;

	if (!user_room(c, 0))
		return (NULL);
	if ((it = item_new(k, c->uid, c->pipe, &item_ops, c)) == NULL)
		replyf(c, C(RESOURCE_EXHAUSTED), "out of memory");
	return (it);
}

/* enqueue counts it in the caller's share and hands it to the scheduler. */
static void
enqueue(struct rpc_call *c, struct stream *s, struct item *it)
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
		item_answer(c->d, it, INFINI_EUNAVAILABLE, NULL, "infinid is "
		    "stopping: the request did not run");
		item_free(it);
		return;
	}
	acct_take(it, acct_get(c->d, c->uid));
	sched_enqueue(c->d, s, it);
}

/* file_item makes an item for the snapshot thread's file work on name.
 * Like the file work it stands for, it is not counted in the caller's
 * share.  Replies and returns NULL when out of memory. */
static struct item *
file_item(struct rpc_call *c, enum item_kind k, const char *name)
{
	struct item *it = item_new(k, c->uid, c->pipe, &item_ops, c);

	if (it == NULL)
		replyf(c, C(RESOURCE_EXHAUSTED), "out of memory");
	else
		snprintf(it->name, sizeof(it->name), "%s", name);
	return (it);
}

/* health answers Health without d->mu: it reads nothing the scheduler
 * changes except the stream count (atomic). */
static void
health(struct rpc_call *c)
{
	struct infinid *d = c->d;
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
	reply(c, 0, NULL, &r.base);
}

static void
m_health(struct rpc_call *c, const ProtobufCMessage *in)
{
	(void)in;
	health(c);
}

static void
m_open(struct rpc_call *c, const ProtobufCMessage *in)
{
	const Infini__V1__OpenStreamRequest *q = (const void *)in;
	struct item *it;

	if (q->stream_id[0] && !wire_valid_id(q->stream_id)) {
		replyf(c, C(INVALID_ARGUMENT), "invalid stream id '%.140s':"
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
encode_text(struct rpc_call *c, const char *text, bool plain, int32_t **ids,
    size_t *n)
{
	const struct tok *t = c->d->tok;
	char err[256] = "";
	int rv;

	if (t == NULL) {
		replyf(c, C(FAILED_PRECONDITION), "the model has no "
		    "tokenizer: send tokens or vectors");
		return (false);
	}
	pthread_mutex_unlock(&c->d->mu);
	rv = tok_encode(t, text, strlen(text), plain ? TOK_PLAIN_SPECIAL : 0,
	    ids, n, err, sizeof(err));
	pthread_mutex_lock(&c->d->mu);
	if (rv == INFINI_EINVAL)
		replyf(c, C(INVALID_ARGUMENT), "text: %s", err);
	else if (rv == INFINI_ENOMEM)
		replyf(c, C(RESOURCE_EXHAUSTED), "out of memory");
	else if (rv != 0)
		replyf(c, C(INTERNAL), "tokenizer: %s", err);
	return (rv == 0);
}

/* take_input copies tokens / vectors into it, or takes the ids of a text
 * (*text_ids, set to NULL when taken); replies on error. */
static bool
take_input(struct rpc_call *c, struct item *it, const Infini__V1__Tokens *tk,
    int32_t **text_ids, size_t ntext, const Infini__V1__Vectors *vec)
{
	const struct eng_config *cf = eng_config(c->d->eng);
	size_t n = 0;

	if (tk != NULL) {
		n = tk->n_ids;
		if (n > 0 && n <= (size_t)c->d->cfg.max_request_tokens) {
			for (size_t i = 0; i < n; i++)
				if (tk->ids[i] < 0 || tk->ids[i] >= cf->vocab_size) {
					replyf(c, C(INVALID_ARGUMENT),
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
			replyf(c, C(INVALID_ARGUMENT), "vectors must have "
			    "dim %d and a whole number of rows (got dim %u, %zu "
			    "values)", cf->hidden_size, vec->dim, vec->n_data);
			return (false);
		}
		n = vec->n_data / (size_t)cf->hidden_size;
		for (size_t i = 0; i < vec->n_data; i++)
			if (!isfinite(vec->data[i])) {
				replyf(c, C(INVALID_ARGUMENT), "vector %zu "
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
		replyf(c, C(INVALID_ARGUMENT), "no input: give tokens, "
		    "text or vectors");
		return (false);
	}
	if (n > (size_t)c->d->cfg.max_request_tokens) {
		replyf(c, C(RESOURCE_EXHAUSTED), "%zu inputs exceed "
		    "max_request_tokens (%ld)", n, c->d->cfg.max_request_tokens);
		return (false);
	}
	if (it->tokens == NULL && it->vectors == NULL) {
		replyf(c, C(RESOURCE_EXHAUSTED), "out of memory");
		return (false);
	}
	it->n = (int)n;
	return (true);
}

static void
m_push_input(struct rpc_call *c, const Infini__V1__PushRequest *q,
    int32_t **text_ids, size_t ntext)
{
	const struct eng_config *cf = eng_config(c->d->eng);
	struct stream *s;
	struct item *it;

	if ((s = stream_for(c, q->stream_id)) == NULL || !queue_room(c, s))
		return;
	if ((unsigned)q->output > INFINI__V1__OUTPUT__OUTPUT_LAST_LOGITS) {
		replyf(c, C(INVALID_ARGUMENT), "unknown output %d",
		    (int)q->output);
		return;
	}
	if ((it = new_item(c, IT_PUSH)) == NULL)
		return;
	int rows, cols;
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
	eng_output_shape(cf, (enum eng_out)q->output, it->n, &rows, &cols);
	if ((size_t)rows * cols * sizeof(float) >
	    (size_t)c->d->cfg.max_message_bytes) {
		replyf(c, C(RESOURCE_EXHAUSTED), "the reply would be %zu "
		    "bytes, over max_message_bytes",
		    (size_t)rows * cols * sizeof(float));
		item_free(it);
		return;
	}
	if (eng_output_init(&it->out, cf, (enum eng_out)q->output,
	    it->n) != 0) {
		replyf(c, C(RESOURCE_EXHAUSTED), "out of memory");
		item_free(it);
		return;
	}
	enqueue(c, s, it);
}

static void
m_push(struct rpc_call *c, const ProtobufCMessage *in)
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
m_generate_input(struct rpc_call *c, const Infini__V1__GenerateRequest *q,
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
		replyf(c, C(INVALID_ARGUMENT), "max_tokens must be in "
		    "[1, %ld]", c->d->cfg.max_generate);
		return;
	}
	if (q->sampling != NULL && !wire_check_sampling(
	    q->sampling->temperature, q->sampling->top_k, q->sampling->top_p,
	    why, sizeof(why))) {
		replyf(c, C(INVALID_ARGUMENT), "%s", why);
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
		replyf(c, C(RESOURCE_EXHAUSTED), "%zu stop strings: at "
		    "most %ld (max_stop_strings)", q->n_stop,
		    c->d->cfg.max_stop_strings);
		item_free(it);
		return;
	}
	for (size_t i = 0; i < q->n_stop; i++)
		if (strlen(q->stop[i]) > STOP_MAX) {
			replyf(c, C(RESOURCE_EXHAUSTED), "stop string %zu "
			    "is %zu bytes: at most %d", i, strlen(q->stop[i]),
			    STOP_MAX);
			item_free(it);
			return;
		}
	if ((g = gen_new(c->d, s, q->max_tokens, (const char *const *)q->stop,
	    (int)q->n_stop)) == NULL) {
		item_free(it);
		replyf(c, C(RESOURCE_EXHAUSTED), "out of memory");
		return;
	}
	g->pipe = c->pipe;
	g->prompt = it->tokens;
	g->nprompt = it->n;
	it->tokens = NULL;
	if (q->sampling != NULL) {
		g->smp.temperature = q->sampling->temperature;
		g->smp.top_k = (int)q->sampling->top_k;
		g->smp.top_p = q->sampling->top_p > 0 ? q->sampling->top_p : 1.0f;
		g->smp.seed = q->sampling->seed;
	} else {
		g->smp.top_p = 1.0f;
	}
	g->progress = gen_progress;
	it->gen = g;
	it->ops = NULL;   /* answered now, not by the scheduler */
	enqueue(c, s, it);
	r.generation_id = g->id;
	reply(c, 0, NULL, &r.base);
}

static void
m_generate(struct rpc_call *c, const ProtobufCMessage *in)
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
gen_for(struct rpc_call *c, uint64_t id)
{
	for (struct gen *g = c->d->gens; g != NULL; g = g->next)
		if (g->id == id) {
			if (!strm_may_use(c->d, c->uid, g->owner)) {
				replyf(c, C(PERMISSION_DENIED),
				    "generation %llu belongs to another user",
				    (unsigned long long)id);
				return (NULL);
			}
			return (g);
		}
	replyf(c, C(NOT_FOUND), "no generation %llu",
	    (unsigned long long)id);
	return (NULL);
}

/* poll_reply answers a parked or ready Poll from g's state. */
static void
poll_reply(struct infinid *d, struct rpc_call *w, struct gen *g,
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
			replyf(w, C(RESOURCE_EXHAUSTED), "out of memory");
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
	reply(w, 0, NULL, &r.base);
	if (tl != lens)
		free(tl);
}

static void
m_poll(struct rpc_call *c, const ProtobufCMessage *in)
{
	const Infini__V1__PollRequest *q = (const void *)in;
	struct gen *g;
	uint32_t wait;

	if ((g = gen_for(c, q->generation_id)) == NULL)
		return;
	g->last_poll_ms = now_ms();
	if (q->after > g->ntok) {
		replyf(c, C(OUT_OF_RANGE), "after %llu is beyond the %u "
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
		poll_reply(c->d, c, g, q->after);
		return;
	}
	a->inflight++;
	c->pacct = a;
	c->pgen = g;
	c->pafter = q->after;
	c->pnext = g->waiters;
	g->waiters = c;
	c->pdeadline_ms = now_ms() + wait;
}

static void
m_cancel(struct rpc_call *c, const ProtobufCMessage *in)
{
	const Infini__V1__CancelRequest *q = (const void *)in;
	Infini__V1__CancelReply r = INFINI__V1__CANCEL_REPLY__INIT;
	struct gen *g;

	if ((g = gen_for(c, q->generation_id)) == NULL)
		return;
	if (!g->done) {
		g->cancel = true;
		strm_wake(c->d);
	}
	reply(c, 0, NULL, &r.base);
}

static void
m_fork(struct rpc_call *c, const ProtobufCMessage *in)
{
	const Infini__V1__ForkRequest *q = (const void *)in;
	struct stream *s;
	struct item *it;

	if ((s = stream_for(c, q->stream_id)) == NULL || !queue_room(c, s))
		return;
	if (q->new_stream_id[0] && !wire_valid_id(q->new_stream_id)) {
		replyf(c, C(INVALID_ARGUMENT), "invalid new stream id");
		return;
	}
	if ((it = new_item(c, IT_FORK)) == NULL)
		return;
	snprintf(it->id, sizeof(it->id), "%s", q->new_stream_id);
	enqueue(c, s, it);
}

static void
m_close(struct rpc_call *c, const ProtobufCMessage *in)
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
m_list(struct rpc_call *c, const ProtobufCMessage *in)
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
		replyf(c, C(RESOURCE_EXHAUSTED), "out of memory");
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
	reply(c, 0, NULL, &r.base);
	free(info);
	free(ptrs);
}

static void
m_stats(struct rpc_call *c, const ProtobufCMessage *in)
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
		reply(c, 0, NULL, &r.base);
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
	reply(c, 0, NULL, &r.base);
}

static void
m_snapshot(struct rpc_call *c, const ProtobufCMessage *in)
{
	const Infini__V1__SnapshotRequest *q = (const void *)in;
	struct stream *s;
	struct item *it;

	if ((s = stream_for(c, q->stream_id)) == NULL || !queue_room(c, s))
		return;
	if (q->name[0] == '\0' && !q->export) {
		replyf(c, C(INVALID_ARGUMENT), "give a snapshot name, ask "
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
m_restore(struct rpc_call *c, const ProtobufCMessage *in)
{
	const Infini__V1__RestoreRequest *q = (const void *)in;
	struct item *it;

	if (!wire_valid_id(q->stream_id)) {
		replyf(c, C(INVALID_ARGUMENT), "invalid stream id '%.140s'",
		    q->stream_id);
		return;
	}
	if (q->source_case == INFINI__V1__RESTORE_REQUEST__SOURCE_NAME) {
		/* The file work is the snapshot thread's; it hands the
		 * decoded state to the scheduler. */
		if (name_ok(c, q->name) &&
		    (it = file_item(c, IT_RESTORE, q->name)) != NULL) {
			snprintf(it->id, sizeof(it->id), "%s", q->stream_id);
			sio_queue(c->d, it);
		}
		return;
	}
	if (q->source_case == INFINI__V1__RESTORE_REQUEST__SOURCE__NOT_SET ||
	    (q->source_case == INFINI__V1__RESTORE_REQUEST__SOURCE_DATA &&
	    q->data.len == 0)) {
		replyf(c, C(INVALID_ARGUMENT), "give a snapshot name or "
		    "snapshot bytes");
		return;
	}
	if ((it = new_item(c, IT_RESTORE)) == NULL)
		return;
	snprintf(it->id, sizeof(it->id), "%s", q->stream_id);
	if ((it->data = malloc(q->data.len)) == NULL) {
		item_free(it);
		replyf(c, C(RESOURCE_EXHAUSTED), "out of memory");
		return;
	}
	memcpy(it->data, q->data.data, q->data.len);
	it->data_len = q->data.len;
	enqueue(c, NULL, it);
}

static void
m_list_snapshots(struct rpc_call *c, const ProtobufCMessage *in)
{
	struct item *it;
	(void)in;

	if ((it = file_item(c, IT_LIST_SNAPSHOTS, "")) != NULL)
		sio_queue(c->d, it);
}

static void
m_delete_snapshot(struct rpc_call *c, const ProtobufCMessage *in)
{
	const Infini__V1__DeleteSnapshotRequest *q = (const void *)in;
	struct item *it;

	if (name_ok(c, q->name) &&
	    (it = file_item(c, IT_DELETE_SNAPSHOT, q->name)) != NULL)
		sio_queue(c->d, it);
}

typedef void (*handler)(struct rpc_call *, const ProtobufCMessage *);

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

/* One request's body, unpacked for its method before d->mu is taken (a
 * 60 MiB body costs the one who sent it, not everyone waiting for the
 * lock). */
struct body {
	ProtobufCMessage *msg;      /* NULL: refused, code and why say why */
	struct wire_alloc a;
	int code;
	char why[256];
};

/* decode fills b with method's body, or with why it is refused. */
static void
decode(int method, const uint8_t *data, size_t len, struct body *b)
{
	const ProtobufCMethodDescriptor *md = wire_method(method);

	b->msg = NULL;
	b->code = 0;
	b->why[0] = '\0';
	if (md == NULL || method < 0 || (size_t)method >= sizeof(handlers) /
	    sizeof(handlers[0]) || handlers[method] == NULL) {
		b->code = C(UNIMPLEMENTED);
		snprintf(b->why, sizeof(b->why), "unknown method %d", method);
		return;
	}
	wire_alloc_init(&b->a, 4 * len + (1u << 16));
	b->msg = wire_unpack(md->input, &b->a, len, data);
	if (b->msg == NULL) {
		const char *f = wire_nul_field(md->input, len, data);
		b->code = C(INVALID_ARGUMENT);
		if (f != NULL)
			snprintf(b->why, sizeof(b->why), "%s: field %s holds "
			    "a NUL byte", md->input->name, f);
		else
			snprintf(b->why, sizeof(b->why), "malformed %s body",
			    md->input->name);
	}
}

static void
body_free(struct body *b)
{
	if (b->msg != NULL)
		protobuf_c_message_free_unpacked(b->msg, &b->a.pa);
	b->msg = NULL;
}

/* field_str reads the string field called name of m ("" when none). */
static const char *
field_str(const ProtobufCMessage *m, const char *name)
{
	const ProtobufCFieldDescriptor *f =
	    protobuf_c_message_descriptor_get_field_by_name(m->descriptor,
	    name);

	if (f == NULL || f->type != PROTOBUF_C_TYPE_STRING ||
	    f->label == PROTOBUF_C_LABEL_REPEATED)
		return ("");
	const char *s = *(const char *const *)((const char *)m + f->offset);
	return (s != NULL ? s : "");
}

/*
 * route: when daemons share a state store (docs/scale-out.md), this one
 * serves a stream only while it holds the stream's lease.  Before d->mu,
 * route takes the lease of every stream c's request names (clu_hold), or
 * answers the call: UNAVAILABLE with a redirect to the member that holds
 * one, or without when the store cannot be reached.  True when it
 * answered.
 */
static bool
route(struct rpc_call *c, const struct body *b)
{
	static const char *const fields[] = { "stream_id", "new_stream_id" };
	char owner[SST_MEMBER_MAX + 1] = "", msg[600];
	int rv;

	if (!clu_shared(c->d) || b->msg == NULL ||
	    c->method == INFINI__V1__METHOD__POLL ||
	    c->method == INFINI__V1__METHOD__CANCEL)
		return (false);
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		const char *id = field_str(b->msg, fields[i]);
		if (id[0] == '\0') {
			/* A name the daemon picks is unique here only. */
			if (i == 0 && c->method != INFINI__V1__METHOD__OPEN_STREAM)
				continue;
			if (i == 1 && c->method != INFINI__V1__METHOD__FORK)
				continue;
			pthread_mutex_lock(&c->d->mu);
			replyf(c, C(INVALID_ARGUMENT), "the daemons share a "
			    "state store: name the stream");
			pthread_mutex_unlock(&c->d->mu);
			return (true);
		}
		if (!wire_valid_id(id))
			continue;   /* the method's handler says what is wrong */
		if ((rv = clu_hold(c->d, id, owner, msg, sizeof(msg))) != 0) {
			pthread_mutex_lock(&c->d->mu);
			reply_to(c, infini_err_status(rv), msg, NULL,
			    owner[0] ? owner : NULL);
			pthread_mutex_unlock(&c->d->mu);
			return (true);
		}
	}
	return (false);
}

/* dispatch serves c's decoded body b, or sends b's refusal.  d->mu held. */
static void
dispatch(struct rpc_call *c, const struct body *b)
{
	struct uacct *u = acct_get(c->d, c->uid);

	if (u != NULL)
		u->requests++;
	if (b->msg == NULL) {
		replyf(c, b->code, "%s", b->why);
		return;
	}
	handlers[c->method](c, b->msg);
}

void
rpc_serve(struct rpc_call *c, const uint8_t *data, size_t len)
{
	struct infinid *d = c->d;
	Infini__V1__Request *req;
	struct wire_alloc a;
	struct body b = { 0 };

	c->t0_us = now_us();
	c->method = 0;
	c->call_id = 0;
	c->pgen = NULL;
	c->pacct = NULL;
	__atomic_fetch_add(&d->st.requests, 1, __ATOMIC_RELAXED);
	wire_alloc_init(&a, 4 * (size_t)d->cfg.max_message_bytes + (1u << 20));
	req = (Infini__V1__Request *)wire_unpack(&infini__v1__request__descriptor,
	    &a, len, data);
	if (req != NULL) {
		c->call_id = req->call_id;
		c->method = (int)req->method;
	}
	/* Health is answered without d->mu, so that it never waits for the
	 * scheduler, whatever the scheduler is doing. */
	if (req != NULL && req->version == WIRE_VERSION &&
	    req->method == INFINI__V1__METHOD__HEALTH) {
		health(c);
		infini__v1__request__free_unpacked(req, &a.pa);
		return;
	}
	if (req != NULL && req->version == WIRE_VERSION) {
		decode(c->method, req->body.data, req->body.len, &b);
		if (route(c, &b)) {
			body_free(&b);
			infini__v1__request__free_unpacked(req, &a.pa);
			return;
		}
	}
	pthread_mutex_lock(&d->mu);
	if (req == NULL)
		replyf(c, C(INVALID_ARGUMENT), "request is not a valid "
		    "infini.v1.Request envelope");
	else if (req->version != WIRE_VERSION)
		replyf(c, C(FAILED_PRECONDITION), "protocol version %u not "
		    "supported (this daemon speaks %d)", req->version,
		    WIRE_VERSION);
	else
		dispatch(c, &b);
	pthread_mutex_unlock(&d->mu);
	body_free(&b);
	if (req != NULL)
		infini__v1__request__free_unpacked(req, &a.pa);
}

void
rpc_serve_body(struct rpc_call *c, int method, const uint8_t *body,
    size_t len)
{
	struct infinid *d = c->d;
	struct body b;

	c->t0_us = now_us();
	c->method = method;
	c->call_id = 0;
	c->pgen = NULL;
	c->pacct = NULL;
	__atomic_fetch_add(&d->st.requests, 1, __ATOMIC_RELAXED);
	decode(method, body, len, &b);
	if (route(c, &b)) {
		body_free(&b);
		return;
	}
	pthread_mutex_lock(&d->mu);
	dispatch(c, &b);
	pthread_mutex_unlock(&d->mu);
	body_free(&b);
}

/* ------------------------------------------------------ parked polls */

/*
 * sweeper: answers parked polls whose wait ran out, every 20 ms.  A thread
 * of its own (rather than a timer per call) means a poll can be answered
 * from exactly one place at a time: whoever unlinks it from its
 * generation's waiters under d->mu replies.
 */
static void *
sweeper(void *arg)
{
	struct infinid *d = arg;
	struct timespec ts = { 0, 20 * 1000 * 1000 };

	pthread_mutex_lock(&d->mu);
	while (!d->sweep_stop) {
		int64_t t = now_ms();
		for (struct gen *g = d->gens; g != NULL; g = g->next)
			for (struct rpc_call **pp = &g->waiters; *pp != NULL;) {
				struct rpc_call *c = *pp;
				if (c->pdeadline_ms > t) {
					pp = &c->pnext;
					continue;
				}
				*pp = c->pnext;
				c->pgen = NULL;
				c->pnext = NULL;
				poll_reply(d, c, g, c->pafter);
			}
		pthread_mutex_unlock(&d->mu);
		nanosleep(&ts, NULL);
		pthread_mutex_lock(&d->mu);
	}
	pthread_mutex_unlock(&d->mu);
	return (NULL);
}

int
rpc_start(struct infinid *d)
{
	d->sweep_stop = false;
	if (pthread_create(&d->sweeper, NULL, sweeper, d) != 0)
		return (INFINI_ENOMEM);
	d->have_sweeper = true;
	return (0);
}

void
rpc_stop(struct infinid *d)
{
	if (!d->have_sweeper)
		return;
	pthread_mutex_lock(&d->mu);
	d->sweep_stop = true;
	pthread_mutex_unlock(&d->mu);
	pthread_join(d->sweeper, NULL);
	d->have_sweeper = false;
}

void
rpc_unpark(struct infinid *d, const struct rpc_transport *tr)
{
	for (struct gen *g = d->gens; g != NULL; g = g->next)
		for (struct rpc_call **pp = &g->waiters; *pp != NULL;) {
			struct rpc_call *c = *pp;
			if (c->tr != tr) {
				pp = &c->pnext;
				continue;
			}
			*pp = c->pnext;
			c->pgen = NULL;
			c->pnext = NULL;
			if (c->pacct != NULL) {
				c->pacct->inflight--;
				c->pacct = NULL;
			}
		}
}
