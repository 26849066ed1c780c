/*
 * generate.c - libinfini's Push and the long-poll generation loop.
 *
 * REQ/REP carries exactly one reply per request, so tokens cannot be
 * streamed back on the Generate call itself: Generate returns a generation
 * id and the client polls for "tokens after sequence K", each Poll held by
 * the daemon until tokens exist or wait_ms passes.  A Poll that comes back
 * empty is reported to the caller as a heartbeat so it can cancel while
 * nothing arrives (see infini_on_token).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_impl.h"

/* How long one Poll may be held by the daemon.  Short enough that Ctrl-C
 * (seen at the next heartbeat) feels immediate, long enough that an idle
 * wait costs one round trip a second. */
#define GEN_POLL_WAIT_MS 1000

/* ---- push ---------------------------------------------------------- */

/* res_clear empties a result before anything can fail, so that freeing it
 * after an error is safe whatever it held. */
static void
res_clear(struct infini_result *res)
{
	if (res != NULL)
		memset(res, 0, sizeof(*res));
}

static int
push(infini_client *c, Infini__V1__PushRequest *q, enum infini_output want,
    struct infini_result *res)
{
	Infini__V1__PushReply *r;
	struct cl_reply rep;
	float *data = NULL;
	int err;

	if ((err = cl_check_id("stream id", q->stream_id)) != 0)
		return (err);
	if ((int)want < INFINI_OUT_NONE || want > INFINI_OUT_LAST_LOGITS)
		return (cl_err(INFINI_EINVAL, "push: unknown output %d",
		    (int)want));
	q->output = (Infini__V1__Output)want;
	if ((err = cl_call(c, INFINI__V1__METHOD__PUSH, &q->base,
	    &infini__v1__push_reply__descriptor, cl_timeout(c), &rep)) != 0)
		return (err);
	r = (Infini__V1__PushReply *)rep.body;
	if ((uint64_t)r->rows * r->cols != r->n_data) {
		err = cl_err(INFINI_EPROTO, "Push: reply holds %zu values for "
		    "[%u, %u]", r->n_data, r->rows, r->cols);
		goto fail;
	}
	if (res != NULL && r->n_data > 0) {
		if ((data = malloc(r->n_data * sizeof(float))) == NULL) {
			err = cl_err(INFINI_ENOMEM, "out of memory");
			goto fail;
		}
		memcpy(data, r->data, r->n_data * sizeof(float));
	}
	if (res != NULL) {
		res->position = r->position;
		res->segments = r->segments;
		res->rows = data ? r->rows : 0;
		res->cols = data ? r->cols : 0;
		res->data = data;
	}
fail:
	cl_reply_fini(&rep);
	return (err);
}

int
infini_push_tokens(infini_client *c, const char *id, const int32_t *tokens,
    size_t n, enum infini_output want, struct infini_result *res)
{
	Infini__V1__PushRequest q = INFINI__V1__PUSH_REQUEST__INIT;
	Infini__V1__Tokens t = INFINI__V1__TOKENS__INIT;

	res_clear(res);
	if (tokens == NULL && n > 0)
		return (cl_err(INFINI_EINVAL, "push: tokens is NULL"));
	t.ids = (int32_t *)tokens;
	t.n_ids = n;
	q.stream_id = (char *)id;
	q.input_case = INFINI__V1__PUSH_REQUEST__INPUT_TOKENS;
	q.tokens = &t;
	return (push(c, &q, want, res));
}

int
infini_push_text(infini_client *c, const char *id, const char *text,
    size_t len, enum infini_output want, struct infini_result *res)
{
	Infini__V1__PushRequest q = INFINI__V1__PUSH_REQUEST__INIT;
	char *s;
	int err;

	res_clear(res);
	if (text == NULL && len > 0)
		return (cl_err(INFINI_EINVAL, "push: text is NULL"));
	/* protobuf-c strings are NUL-terminated: an embedded NUL would
	 * silently cut the text short. */
	if (len > 0 && memchr(text, '\0', len) != NULL)
		return (cl_err(INFINI_EINVAL, "push: text contains a NUL byte "
		    "(push it as tokens)"));
	if ((s = malloc(len + 1)) == NULL)
		return (cl_err(INFINI_ENOMEM, "out of memory"));
	if (len > 0)
		memcpy(s, text, len);
	s[len] = '\0';
	q.stream_id = (char *)id;
	q.input_case = INFINI__V1__PUSH_REQUEST__INPUT_TEXT;
	q.text = s;
	q.plain_special = (atomic_load(&c->text_flags) &
	    INFINI_TEXT_PLAIN_SPECIAL) != 0;
	err = push(c, &q, want, res);
	free(s);
	return (err);
}

int
infini_push_vectors(infini_client *c, const char *id, const float *data,
    size_t n, uint32_t dim, enum infini_output want,
    struct infini_result *res)
{
	Infini__V1__PushRequest q = INFINI__V1__PUSH_REQUEST__INIT;
	Infini__V1__Vectors v = INFINI__V1__VECTORS__INIT;

	res_clear(res);
	if (dim == 0 || (data == NULL && n > 0))
		return (cl_err(INFINI_EINVAL, "push: bad vectors"));
	if (n > WIRE_MAX_MSG / sizeof(float) / dim)
		return (cl_err(INFINI_EINVAL, "push: %zu x %u vectors are over "
		    "the message limit", n, dim));
	v.dim = dim;
	v.data = (float *)data;
	v.n_data = n * dim;
	q.stream_id = (char *)id;
	q.input_case = INFINI__V1__PUSH_REQUEST__INPUT_VECTORS;
	q.vectors = &v;
	return (push(c, &q, want, res));
}

void
infini_result_free(struct infini_result *res)
{
	if (res == NULL)
		return;
	free(res->data);
	res->data = NULL;
	res->rows = res->cols = 0;
}

/* ---- generation ---------------------------------------------------- */

static int
gen_start(infini_client *c, const char *id, const int32_t *prompt,
    size_t nprompt, const char *text, uint32_t max_tokens,
    const struct infini_sampling *s, const char *const *stop, uint64_t *gid)
{
	Infini__V1__GenerateRequest q = INFINI__V1__GENERATE_REQUEST__INIT;
	Infini__V1__Sampling sp = INFINI__V1__SAMPLING__INIT;
	Infini__V1__Tokens t = INFINI__V1__TOKENS__INIT;
	struct cl_reply rep;
	size_t nstop = 0;
	int err;

	if ((err = cl_check_id("stream id", id)) != 0)
		return (err);
	if (prompt != NULL && text != NULL)
		return (cl_err(INFINI_EINVAL, "generate: give a token prompt or "
		    "a text prompt, not both"));
	q.stream_id = (char *)id;
	if (prompt != NULL) {
		t.ids = (int32_t *)prompt;
		t.n_ids = nprompt;
		q.prompt_case = INFINI__V1__GENERATE_REQUEST__PROMPT_TOKENS;
		q.tokens = &t;
	} else if (text != NULL) {
		q.prompt_case = INFINI__V1__GENERATE_REQUEST__PROMPT_TEXT;
		q.text = (char *)text;
		q.plain_special = (atomic_load(&c->text_flags) &
		    INFINI_TEXT_PLAIN_SPECIAL) != 0;
	}
	q.max_tokens = max_tokens;
	if (s != NULL) {
		char why[160];
		if (!wire_check_sampling(s->temperature, s->top_k, s->top_p,
		    why, sizeof(why)))
			return (cl_err(INFINI_EINVAL, "generate: %s", why));
		sp.temperature = s->temperature;
		sp.top_k = s->top_k;
		sp.top_p = s->top_p;
		sp.seed = s->seed;
		q.sampling = &sp;
	}
	while (stop != NULL && stop[nstop] != NULL)
		nstop++;
	q.n_stop = nstop;
	q.stop = (char **)stop;
	if ((err = cl_call(c, INFINI__V1__METHOD__GENERATE, &q.base,
	    &infini__v1__generate_reply__descriptor, cl_timeout(c),
	    &rep)) != 0)
		return (err);
	*gid = ((Infini__V1__GenerateReply *)rep.body)->generation_id;
	cl_reply_fini(&rep);
	return (0);
}

/* gen_cancel tells the daemon to stop; failure only means the daemon will
 * reap the generation itself once Polls stop, so it is not reported. */
static void
gen_cancel(infini_client *c, uint64_t gid)
{
	Infini__V1__CancelRequest q = INFINI__V1__CANCEL_REQUEST__INIT;
	struct cl_reply rep;

	int t = cl_timeout(c);

	/* Best effort, so bounded even when calls have no deadline: a caller
	 * cancelling because the daemon went quiet must not hang here. */
	if (t <= 0 || t > 5000)
		t = 5000;
	q.generation_id = gid;
	if (cl_call(c, INFINI__V1__METHOD__CANCEL, &q.base,
	    &infini__v1__cancel_reply__descriptor, t, &rep) == 0)
		cl_reply_fini(&rep);
}

/*
 * gen_deliver hands one Poll reply's tokens to on_token.  text_lens gives
 * each token's share of text (whole characters; 0 for special tokens and
 * bytes held for a later token).  A reply without text_lens comes from a
 * model without a tokenizer: tokens then have no text.  Sets *stop when
 * the callback asked to cancel.
 */
static int
gen_deliver(const Infini__V1__PollReply *r, infini_on_token on_token,
    void *arg, bool *stop)
{
	size_t want = 0, off = 0;
	bool lens = r->n_text_lens > 0;

	if (lens && r->n_text_lens != r->n_tokens)
		return (cl_err(INFINI_EPROTO, "Poll: %zu text lengths for %zu "
		    "tokens", r->n_text_lens, r->n_tokens));
	for (size_t i = 0; i < r->n_text_lens; i++)
		want += r->text_lens[i];
	if (want != r->text.len)
		return (cl_err(INFINI_EPROTO, "Poll: %zu bytes of text where "
		    "the lengths add up to %zu", r->text.len, want));
	for (size_t i = 0; i < r->n_tokens && on_token != NULL; i++) {
		size_t n = lens ? r->text_lens[i] : 0;
		const char *b = !lens ? NULL : r->text.data != NULL ?
		    (const char *)r->text.data + off : "";

		off += n;
		if (on_token(arg, r->tokens[i], b, n) != 0) {
			*stop = true;
			break;
		}
	}
	return (0);
}

int
infini_generate(infini_client *c, const char *id,
    const struct infini_gen_opts *o, char *finish)
{
	Infini__V1__PollRequest q = INFINI__V1__POLL_REQUEST__INIT;
	uint64_t gid = 0, after = 0;
	bool cancel = false;
	int err;

	if (finish != NULL)
		finish[0] = '\0';
	if (o == NULL)
		return (cl_err(INFINI_EINVAL, "generate: no options"));
	infini_on_token on_token = o->on_token;
	void *arg = o->arg;
	if ((err = gen_start(c, id, o->prompt, o->nprompt, o->text,
	    o->max_tokens, o->sampling, o->stop, &gid)) != 0)
		return (err);
	q.generation_id = gid;
	q.wait_ms = GEN_POLL_WAIT_MS;
	for (;;) {
		Infini__V1__PollReply *r;
		struct cl_reply rep;
		int t = cl_timeout(c);

		q.after = after;
		/* The daemon may hold the Poll for wait_ms before answering,
		 * so that time is not part of the call's own deadline. */
		if ((err = cl_call(c, INFINI__V1__METHOD__POLL, &q.base,
		    &infini__v1__poll_reply__descriptor,
		    t > 0 ? t + GEN_POLL_WAIT_MS : t, &rep)) != 0)
			return (err);
		r = (Infini__V1__PollReply *)rep.body;
		if (r->n_tokens > 0 && r->next <= after) {
			cl_reply_fini(&rep);
			err = cl_err(INFINI_EPROTO, "Poll: sequence went from "
			    "%llu to %llu", (unsigned long long)after,
			    (unsigned long long)r->next);
			gen_cancel(c, gid);
			return (err);
		}
		if ((err = gen_deliver(r, on_token, arg, &cancel)) != 0) {
			cl_reply_fini(&rep);
			gen_cancel(c, gid);
			return (err);
		}
		if (r->n_tokens > 0)
			after = r->next;
		else if (!r->done && on_token != NULL &&
		    on_token(arg, -1, NULL, 0) != 0)
			cancel = true;
		if (r->done && !cancel) {
			bool cancelled = strcmp(r->finish_reason,
			    "cancelled") == 0;
			bool failed = strcmp(r->finish_reason, "error") == 0;

			if (finish != NULL)
				snprintf(finish, 16, "%s", r->finish_reason);
			cl_reply_fini(&rep);
			if (cancelled)
				return (cl_err(INFINI_ECANCELED, "generation "
				    "cancelled by the daemon"));
			if (failed)
				return (cl_err(INFINI_EINTERNAL, "generation "
				    "failed on the daemon"));
			return (0);
		}
		if (cancel) {
			/* A generation that just ended needs no Cancel. */
			if (!r->done)
				gen_cancel(c, gid);
			cl_reply_fini(&rep);
			if (finish != NULL)
				snprintf(finish, 16, "cancelled");
			return (cl_err(INFINI_ECANCELED, "generation cancelled"));
		}
		cl_reply_fini(&rep);
	}
}
