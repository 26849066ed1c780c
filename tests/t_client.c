/*
 * t_client.c - libinfini and the infini tool against an in-process fake
 * daemon.
 *
 * The fake is a REP socket served by one thread: it checks every request's
 * envelope (version, method, call id, body decodes as the method's input)
 * and answers Health/OpenStream/Push/Generate/Poll/Cancel from a script
 * keyed by the stream id, so each test can provoke one behaviour: an error
 * status, no answer at all, a wrong call id, garbage, or a generation that
 * idles, streams or ends.  It runs on inproc:// for the library and on an
 * ipc:// path for the CLI, which runs as a child process.
 */
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pty.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/util/platform.h>

#include <cjson/cJSON.h>

#include "infini.h"
#include "tap.h"
#include "wire.h"

/* ---- the fake daemon ----------------------------------------------- */

/* A uid that the test checks has no passwd entry, for ls. */
#define FAKE_NOBODY_UID 3999999u

struct fake {
	nng_socket sock;
	pthread_t thr;
	atomic_int requests;      /* requests received */
	atomic_int bad;           /* requests that failed the envelope checks */
	atomic_llong cancelled;   /* last generation id cancelled */
	atomic_int dup_ids;       /* call ids seen twice from one client */
	atomic_int polls;         /* Poll requests received */
	atomic_int generates;     /* Generate requests received */
	/* Last Generate request, for the encoding checks. */
	char gen_text[64];
	uint32_t gen_max;
	float gen_temp;
	uint32_t gen_topk;
	uint64_t gen_seed;
	size_t gen_nstop;
	char gen_stop0[16];
	/* Generation script state. */
	int gen7_step;
	uint8_t seen[8192];       /* call ids of the current client */
};

static double
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (ts.tv_sec * 1e3 + ts.tv_nsec / 1e6);
}

static void
send_reply(struct fake *f, uint64_t id, int code, const char *msg,
    const ProtobufCMessage *body)
{
	size_t len;
	uint8_t *b = wire_pack_reply(id, code, msg, body, &len);

	if (b != NULL)
		nng_send(f->sock, b, len, 0);
	free(b);
}

static void
fake_push(struct fake *f, uint64_t id, Infini__V1__PushRequest *q)
{
	Infini__V1__PushReply r = INFINI__V1__PUSH_REPLY__INIT;
	float data[64];
	char msg[160];

	if (strcmp(q->stream_id, "nope") == 0) {
		snprintf(msg, sizeof(msg), "no stream '%s'", q->stream_id);
		send_reply(f, id, INFINI__V1__CODE__NOT_FOUND, msg, NULL);
		return;
	}
	if (strcmp(q->stream_id, "slow") == 0)
		return;   /* never answered: REP drops it at the next recv */
	if (strcmp(q->stream_id, "badid") == 0) {
		send_reply(f, id + 1, 0, NULL, &r.base);
		return;
	}
	if (strcmp(q->stream_id, "garbage") == 0) {
		nng_send(f->sock, "\xff\xff\xff", 3, 0);
		return;
	}
	r.data = data;
	switch (q->input_case) {
	case INFINI__V1__PUSH_REQUEST__INPUT_TOKENS: {
		size_t n = q->tokens->n_ids;
		/* The position encodes what arrived, so a reply routed to the
		 * wrong caller shows. */
		r.position = 1000 * n;
		for (size_t i = 0; i < n; i++)
			r.position += (uint64_t)q->tokens->ids[i];
		r.segments = n / 8;
		if (q->output == INFINI__V1__OUTPUT__OUTPUT_EMBEDDINGS &&
		    n <= 32) {
			r.rows = (uint32_t)n;
			r.cols = 2;
			for (size_t i = 0; i < n; i++) {
				data[2 * i] = (float)q->tokens->ids[i];
				data[2 * i + 1] = (float)q->tokens->ids[i] + 0.5f;
			}
			r.n_data = 2 * n;
		}
		break;
	}
	case INFINI__V1__PUSH_REQUEST__INPUT_TEXT:
		r.position = strlen(q->text);
		if (q->output == INFINI__V1__OUTPUT__OUTPUT_MEAN ||
		    q->output == INFINI__V1__OUTPUT__OUTPUT_LAST) {
			r.rows = 1;
			r.cols = 4;
			for (int j = 0; j < 4; j++)
				data[j] = (float)r.position + j +
				    (q->output == INFINI__V1__OUTPUT__OUTPUT_LAST ?
				    0.25f : 0.0f);
			r.n_data = 4;
		}
		break;
	case INFINI__V1__PUSH_REQUEST__INPUT_VECTORS:
		if (q->vectors->dim != 4) {
			snprintf(msg, sizeof(msg), "vectors of dim %u, model "
			    "hidden size is 4", q->vectors->dim);
			send_reply(f, id, INFINI__V1__CODE__INVALID_ARGUMENT, msg,
			    NULL);
			return;
		}
		r.position = q->vectors->n_data / 4;
		/* Echo the sum so the test sees the floats arrived. */
		for (size_t i = 0; i < q->vectors->n_data; i++)
			data[0] = (i ? data[0] : 0) + q->vectors->data[i];
		r.rows = r.cols = 1;
		r.n_data = 1;
		break;
	default:
		send_reply(f, id, INFINI__V1__CODE__INVALID_ARGUMENT, "no input",
		    NULL);
		return;
	}
	send_reply(f, id, 0, NULL, &r.base);
}

static void
fake_generate(struct fake *f, uint64_t id, Infini__V1__GenerateRequest *q)
{
	Infini__V1__GenerateReply r = INFINI__V1__GENERATE_REPLY__INIT;

	atomic_fetch_add(&f->generates, 1);
	if (q->prompt_case == INFINI__V1__GENERATE_REQUEST__PROMPT_TEXT)
		snprintf(f->gen_text, sizeof(f->gen_text), "%s", q->text);
	else
		f->gen_text[0] = '\0';
	f->gen_max = q->max_tokens;
	f->gen_temp = q->sampling ? q->sampling->temperature : -99;
	f->gen_topk = q->sampling ? q->sampling->top_k : 0;
	f->gen_seed = q->sampling ? q->sampling->seed : 0;
	f->gen_nstop = q->n_stop;
	snprintf(f->gen_stop0, sizeof(f->gen_stop0), "%s",
	    q->n_stop ? q->stop[0] : "");
	if (strcmp(q->stream_id, "gen") == 0) {
		r.generation_id = 7;
		f->gen7_step = 0;
	} else if (strcmp(q->stream_id, "forever") == 0) {
		r.generation_id = 8;
	} else if (strcmp(q->stream_id, "idle") == 0) {
		r.generation_id = 9;
	} else {
		send_reply(f, id, INFINI__V1__CODE__NOT_FOUND, "no such stream",
		    NULL);
		return;
	}
	atomic_store(&f->cancelled, 0);
	send_reply(f, id, 0, NULL, &r.base);
}

static void
fake_poll(struct fake *f, uint64_t id, Infini__V1__PollRequest *q)
{
	Infini__V1__PollReply r = INFINI__V1__POLL_REPLY__INIT;
	int32_t toks[4];
	uint32_t lens[4];
	char text[8] = "";

	atomic_fetch_add(&f->polls, 1);
	r.tokens = toks;
	r.text_lens = lens;
	r.text.data = (uint8_t *)text;
	if (q->wait_ms == 0 || q->wait_ms > 5000) {
		send_reply(f, id, INFINI__V1__CODE__INVALID_ARGUMENT,
		    "bad wait_ms", NULL);
		return;
	}
	r.next = q->after;
	if (q->generation_id == 7) {
		/* Script: nothing yet; "Hi"; 300 (no bytes) and "!", done. */
		static const uint64_t want_after[] = { 0, 0, 2 };
		int step = f->gen7_step++;
		if (step > 2 || q->after != want_after[step]) {
			send_reply(f, id, INFINI__V1__CODE__INVALID_ARGUMENT,
			    "unexpected after", NULL);
			return;
		}
		if (step == 1) {
			toks[0] = 'H';
			toks[1] = 'i';
			lens[0] = lens[1] = 1;
			r.n_tokens = r.n_text_lens = 2;
			strcpy(text, "Hi");
			r.next = 2;
		} else if (step == 2) {
			toks[0] = 300;
			toks[1] = '!';
			lens[0] = 0;
			lens[1] = 1;
			r.n_tokens = r.n_text_lens = 2;
			strcpy(text, "!");
			r.next = 4;
			r.done = true;
			r.finish_reason = "length";
		}
	} else if (q->generation_id == 8) {
		if (atomic_load(&f->cancelled) == 8) {
			r.done = true;
			r.finish_reason = "cancelled";
		} else {
			toks[0] = 'a';
			lens[0] = 1;
			r.n_tokens = r.n_text_lens = 1;
			strcpy(text, "a");
			r.next = q->after + 1;
		}
	} else if (q->generation_id == 9) {
		nng_msleep(20);   /* the long-poll wait, shortened */
		if (atomic_load(&f->cancelled) == 9) {
			r.done = true;
			r.finish_reason = "cancelled";
		}
	} else {
		send_reply(f, id, INFINI__V1__CODE__NOT_FOUND,
		    "no such generation", NULL);
		return;
	}
	r.text.len = strlen(text);
	send_reply(f, id, 0, NULL, &r.base);
}

static void
fake_serve(struct fake *f, Infini__V1__Request *q, ProtobufCMessage *body)
{
	uint64_t id = q->call_id;

	switch (q->method) {
	case INFINI__V1__METHOD__HEALTH: {
		Infini__V1__HealthReply r = INFINI__V1__HEALTH_REPLY__INIT;
		r.version = "fake-1";
		r.model = "tiny-byte";
		r.device = "none";
		r.uptime_ms = 1500;
		r.streams = 2;
		r.model_fingerprint = 0xabcdef0123456789ull;
		r.hidden_size = 4;
		r.vocab_size = 260;
		r.segment_size = 8;
		send_reply(f, id, 0, NULL, &r.base);
		break;
	}
	case INFINI__V1__METHOD__OPEN_STREAM: {
		Infini__V1__OpenStreamRequest *o = (void *)body;
		Infini__V1__OpenStreamReply r = INFINI__V1__OPEN_STREAM_REPLY__INIT;
		r.stream_id = o->stream_id[0] ? o->stream_id : "auto-1";
		r.created = true;
		if (strcmp(o->stream_id, "taken") == 0) {
			if (!o->reuse) {
				send_reply(f, id,
				    INFINI__V1__CODE__ALREADY_EXISTS,
				    "stream 'taken' exists", NULL);
				break;
			}
			r.created = false;
		}
		send_reply(f, id, 0, NULL, &r.base);
		break;
	}
	case INFINI__V1__METHOD__PUSH:
		fake_push(f, id, (void *)body);
		break;
	case INFINI__V1__METHOD__GENERATE:
		fake_generate(f, id, (void *)body);
		break;
	case INFINI__V1__METHOD__POLL:
		fake_poll(f, id, (void *)body);
		break;
	case INFINI__V1__METHOD__LIST_STREAMS: {
		/* One stream of ours, one of a uid with no name here. */
		Infini__V1__ListStreamsReply r =
		    INFINI__V1__LIST_STREAMS_REPLY__INIT;
		Infini__V1__StreamInfo a = INFINI__V1__STREAM_INFO__INIT,
		    b = INFINI__V1__STREAM_INFO__INIT;
		Infini__V1__StreamInfo *v[2] = { &a, &b };
		a.stream_id = "mine";
		a.position = 12;
		a.owner_uid = (uint32_t)getuid();
		b.stream_id = "theirs";
		b.position = 34;
		b.owner_uid = FAKE_NOBODY_UID;
		r.streams = v;
		r.n_streams = 2;
		send_reply(f, id, 0, NULL, &r.base);
		break;
	}
	case INFINI__V1__METHOD__CANCEL: {
		Infini__V1__CancelRequest *c = (void *)body;
		Infini__V1__CancelReply r = INFINI__V1__CANCEL_REPLY__INIT;
		atomic_store(&f->cancelled, (long long)c->generation_id);
		send_reply(f, id, 0, NULL, &r.base);
		break;
	}
	default:
		send_reply(f, id, INFINI__V1__CODE__UNIMPLEMENTED,
		    "not in the fake", NULL);
	}
}

static void *
fake_main(void *arg)
{
	struct fake *f = arg;

	for (;;) {
		const ProtobufCMethodDescriptor *m;
		Infini__V1__Request *q;
		ProtobufCMessage *body = NULL;
		nng_msg *msg;

		if (nng_recvmsg(f->sock, &msg, 0) != 0)
			break;
		atomic_fetch_add(&f->requests, 1);
		q = infini__v1__request__unpack(NULL, nng_msg_len(msg),
		    nng_msg_body(msg));
		nng_msg_free(msg);
		if (q == NULL || q->version != WIRE_VERSION || q->call_id == 0 ||
		    (m = wire_method(q->method)) == NULL ||
		    (body = protobuf_c_message_unpack(m->input, NULL,
		    q->body.len, q->body.data)) == NULL) {
			atomic_fetch_add(&f->bad, 1);
			send_reply(f, q ? q->call_id : 0,
			    INFINI__V1__CODE__INVALID_ARGUMENT, "bad envelope",
			    NULL);
		} else {
			/* A new client starts again at call id 1. */
			if (q->call_id == 1)
				memset(f->seen, 0, sizeof(f->seen));
			if (q->call_id < 8 * sizeof(f->seen)) {
				uint8_t bit = 1u << (q->call_id % 8);
				if (f->seen[q->call_id / 8] & bit)
					atomic_fetch_add(&f->dup_ids, 1);
				f->seen[q->call_id / 8] |= bit;
			}
			fake_serve(f, q, body);
		}
		if (body != NULL)
			protobuf_c_message_free_unpacked(body, NULL);
		if (q != NULL)
			infini__v1__request__free_unpacked(q, NULL);
	}
	return (NULL);
}

static int
fake_start(struct fake *f, const char *url)
{
	memset(f, 0, sizeof(*f));
	if (nng_rep0_open(&f->sock) != 0 || nng_listen(f->sock, url, NULL,
	    0) != 0)
		return (-1);
	return (pthread_create(&f->thr, NULL, fake_main, f));
}

static void
fake_stop(struct fake *f)
{
	nng_close(f->sock);
	pthread_join(f->thr, NULL);
}

/* ---- library tests ------------------------------------------------- */

#define URL "inproc://t_client"

static void
test_connect(void)
{
	infini_client *c = NULL;
	nng_socket mute;
	double t0;
	int err;

	t0 = now_ms();
	err = infini_connect("inproc://nobody", 2000, &c);
	is_int(err, INFINI_EUNAVAILABLE, "connect with no listener: "
	    "EUNAVAILABLE");
	ok(strstr(infini_errmsg(), "no daemon at inproc://nobody") != NULL,
	    "  message says no daemon: %s", infini_errmsg());
	ok(now_ms() - t0 < 1000, "  and fails at once");

	/* A listener that never answers: Health must time out. */
	nng_rep0_open(&mute);
	nng_listen(mute, "inproc://mute", NULL, 0);
	t0 = now_ms();
	err = infini_connect("inproc://mute", 300, &c);
	double el = now_ms() - t0;
	is_int(err, INFINI_EUNAVAILABLE, "connect to a silent daemon: "
	    "EUNAVAILABLE");
	ok(el >= 250 && el < 2000, "  after the 300 ms timeout (%.0f ms)", el);
	ok(strstr(infini_errmsg(), "no answer within 300 ms") != NULL,
	    "  message: %s", infini_errmsg());
	nng_close(mute);

	setenv("INFINI_SOCKET", URL, 1);
	err = infini_connect(NULL, 2000, &c);
	is_int(err, 0, "connect(NULL) uses $INFINI_SOCKET");
	infini_close(c);
	unsetenv("INFINI_SOCKET");
}

static void
test_calls(struct fake *f, infini_client *c)
{
	struct infini_health h;
	struct infini_result r = { 0 };
	char id[INFINI_ID_MAX + 1];
	bool created = false;
	int err, before;

	is_int(infini_health(c, &h), 0, "health");
	ok(strcmp(h.version, "fake-1") == 0 && strcmp(h.model, "tiny-byte") ==
	    0 && h.segment_size == 8 && h.vocab_size == 260 &&
	    h.hidden_size == 4 && h.model_fingerprint == 0xabcdef0123456789ull
	    && h.uptime_ms == 1500 && h.streams == 2, "  fields decoded");

	is_int(infini_open(c, NULL, false, id, &created), 0, "open, id "
	    "picked by the daemon");
	ok(strcmp(id, "auto-1") == 0 && created, "  got %s, created", id);
	err = infini_open(c, "taken", false, id, &created);
	is_int(err, INFINI_EEXIST, "open an existing stream: EEXIST");
	ok(strcmp(infini_errmsg(), "ALREADY_EXISTS: stream 'taken' exists") ==
	    0, "  message: %s", infini_errmsg());
	is_int(infini_open(c, "taken", true, id, &created), 0, "  with reuse "
	    "it opens");
	ok(!created && strcmp(id, "taken") == 0, "  and is not created");
	before = atomic_load(&f->requests);
	is_int(infini_open(c, "bad id!", false, id, NULL), INFINI_EINVAL,
	    "a bad stream id is refused");
	is_int(atomic_load(&f->requests), before, "  before it is sent");

	int32_t toks[] = { 5, 6, 7 };
	err = infini_push_tokens(c, "s", toks, 3, INFINI_OUT_EMBEDDINGS, &r);
	is_int(err, 0, "push tokens");
	is_int(r.position, 3018, "  position reflects the tokens sent");
	ok(r.rows == 3 && r.cols == 2 && r.data != NULL && r.data[0] == 5 &&
	    r.data[5] == 7.5f, "  embeddings [3, 2] decoded");
	infini_result_free(&r);
	ok(r.data == NULL, "  result freed");

	err = infini_push_text(c, "s", "hello world", 5, INFINI_OUT_MEAN, &r);
	is_int(err, 0, "push text");
	ok(r.position == 5 && r.rows == 1 && r.cols == 4 && r.data[3] == 8,
	    "  only len bytes sent, mean [1, 4] back");
	infini_result_free(&r);
	is_int(infini_push_text(c, "s", "a\0b", 3, INFINI_OUT_NONE, NULL),
	    INFINI_EINVAL, "text with a NUL byte is refused");

	float vec[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	is_int(infini_push_vectors(c, "s", vec, 2, 4, INFINI_OUT_NONE, &r), 0,
	    "push vectors");
	ok(r.position == 2 && r.data && r.data[0] == 36, "  all floats "
	    "arrived");
	infini_result_free(&r);
	err = infini_push_vectors(c, "s", vec, 2, 3, INFINI_OUT_NONE, &r);
	is_int(err, INFINI_EINVAL, "wrong dim: INVALID_ARGUMENT -> EINVAL");
	ok(strncmp(infini_errmsg(), "INVALID_ARGUMENT: vectors of dim 3", 34)
	    == 0, "  message: %s", infini_errmsg());

	err = infini_push_tokens(c, "nope", toks, 3, INFINI_OUT_NONE, NULL);
	is_int(err, INFINI_ENOENT, "NOT_FOUND maps to ENOENT");
	ok(strcmp(infini_errmsg(), "NOT_FOUND: no stream 'nope'") == 0,
	    "  message: %s", infini_errmsg());

	/* Outputs are emptied on entry: a result the caller never
	 * initialised is safe to free after any error. */
	struct infini_result junk;
	uint8_t *snap = (uint8_t *)&junk;
	size_t snaplen = 7;
	memset(&junk, 0xa5, sizeof(junk));
	err = infini_push_tokens(c, "nope", toks, 3, INFINI_OUT_LAST, &junk);
	ok(err == INFINI_ENOENT && junk.data == NULL && junk.rows == 0 &&
	    junk.cols == 0 && junk.position == 0, "  an uninitialised result "
	    "is emptied by the failed call");
	infini_result_free(&junk);
	memset(&junk, 0xa5, sizeof(junk));
	err = infini_push_text(c, "bad id!", "x", 1, INFINI_OUT_MEAN, &junk);
	ok(err == INFINI_EINVAL && junk.data == NULL && junk.rows == 0,
	    "  also when refused before anything is sent");
	infini_result_free(&junk);
	err = infini_snapshot(c, "bad id!", NULL, &snap, &snaplen);
	ok(err == INFINI_EINVAL && snap == NULL && snaplen == 0, "snapshot: "
	    "data and len are emptied on error");

	err = infini_close_stream(c, "s");
	is_int(err, INFINI_EUNSUPPORTED, "UNIMPLEMENTED maps to EUNSUPPORTED");

	err = infini_push_tokens(c, "badid", toks, 3, INFINI_OUT_NONE, NULL);
	is_int(err, INFINI_EPROTO, "a reply for another call id: EPROTO");
	ok(strstr(infini_errmsg(), "reply is for call") != NULL, "  message: "
	    "%s", infini_errmsg());
	err = infini_push_tokens(c, "garbage", toks, 3, INFINI_OUT_NONE, NULL);
	is_int(err, INFINI_EPROTO, "an undecodable reply: EPROTO");

	infini_set_timeout(c, 300);
	double t0 = now_ms();
	err = infini_push_tokens(c, "slow", toks, 3, INFINI_OUT_NONE, NULL);
	double el = now_ms() - t0;
	is_int(err, INFINI_ETIMEDOUT, "no answer: ETIMEDOUT");
	ok(el >= 250 && el < 2000, "  within the 300 ms timeout (%.0f ms)",
	    el);
	ok(strstr(infini_errmsg(), "no reply") != NULL, "  message: %s",
	    infini_errmsg());
	infini_set_timeout(c, 10000);
	is_int(infini_health(c, NULL), 0, "the client works after a timeout");
}

struct tokens {
	int32_t tok[16];
	char bytes[16];
	size_t len[16];
	int n, beats, bad_beats, cancel_after, cancel_beats;
};

static int
collect(void *arg, int32_t tok, const char *bytes, size_t len)
{
	struct tokens *t = arg;

	if (tok < 0) {
		t->beats++;
		t->bad_beats += tok != -1 || bytes != NULL || len != 0;
		return (t->cancel_beats && t->beats >= t->cancel_beats);
	}
	if (t->n < 16) {
		t->tok[t->n] = tok;
		t->len[t->n] = len;
		t->bytes[t->n] = len ? bytes[0] : 0;
	}
	t->n++;
	return (t->cancel_after && t->n >= t->cancel_after);
}

static void
test_generate(struct fake *f, infini_client *c)
{
	struct infini_sampling s = { .temperature = 0.5f, .top_k = 40,
	    .seed = 99 };
	const char *stop[] = { "\n\n", NULL };
	struct tokens t = { 0 };
	char finish[16];
	int err, before;

	err = infini_generate(c, "gen", &(struct infini_gen_opts){
	    .text = "Yo", .max_tokens = 16, .sampling = &s, .stop = stop,
	    .on_token = collect, .arg = &t }, finish);
	is_int(err, 0, "generate runs to the end");
	ok(strcmp(finish, "length") == 0, "  finish reason %s", finish);
	ok(strcmp(f->gen_text, "Yo") == 0 && f->gen_max == 16 &&
	    f->gen_temp == 0.5f && f->gen_topk == 40 && f->gen_seed == 99 &&
	    f->gen_nstop == 1 && strcmp(f->gen_stop0, "\n\n") == 0,
	    "  request encoded prompt, limits, sampling and stop");
	is_int(t.n, 4, "  four tokens");
	ok(t.tok[0] == 'H' && t.tok[1] == 'i' && t.tok[2] == 300 &&
	    t.tok[3] == '!', "  in order");
	ok(t.len[0] == 1 && t.bytes[0] == 'H' && t.bytes[1] == 'i' &&
	    t.len[2] == 0 && t.len[3] == 1 && t.bytes[3] == '!',
	    "  bytes mapped past a token without bytes");
	ok(t.beats == 1 && t.bad_beats == 0, "  one heartbeat (-1, NULL, 0) "
	    "for the empty poll");

	memset(&t, 0, sizeof(t));
	t.cancel_after = 3;
	err = infini_generate(c, "forever", &(struct infini_gen_opts){
	    .on_token = collect, .arg = &t }, finish);
	is_int(err, INFINI_ECANCELED, "on_token stopping: ECANCELED");
	is_int(t.n, 3, "  no token after the stop");
	is_int(atomic_load(&f->cancelled), 8, "  Cancel sent for it");
	ok(strcmp(finish, "cancelled") == 0, "  finish %s", finish);

	memset(&t, 0, sizeof(t));
	t.cancel_beats = 3;
	int32_t p[] = { 1, 2 };
	err = infini_generate(c, "idle", &(struct infini_gen_opts){
	    .prompt = p, .nprompt = 2, .on_token = collect, .arg = &t }, NULL);
	is_int(err, INFINI_ECANCELED, "cancel from a heartbeat while idle");
	ok(t.n == 0 && t.beats == 3 && t.bad_beats == 0, "  after three "
	    "heartbeats");
	is_int(atomic_load(&f->cancelled), 9, "  Cancel sent for it");

	err = infini_generate(c, "nope", &(struct infini_gen_opts){ 0 }, NULL);
	is_int(err, INFINI_ENOENT, "generate on a missing stream: ENOENT");
	before = atomic_load(&f->requests);
	err = infini_generate(c, "gen", NULL, finish);
	ok(err == INFINI_EINVAL && atomic_load(&f->requests) == before &&
	    finish[0] == '\0', "generate without options: EINVAL, nothing "
	    "sent");
}

struct worker {
	infini_client *c;
	int idx, fails;
	char msg[128];
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < 200; i++) {
		int32_t toks[3] = { w->idx * 1000, i, 1 };
		struct infini_result r = { 0 };
		int err = infini_push_tokens(w->c, "s", toks, 3,
		    INFINI_OUT_EMBEDDINGS, &r);
		if (err != 0 || r.position != 3000u + (uint64_t)w->idx * 1000 +
		    (uint64_t)i + 1 || r.rows != 3 ||
		    r.data[2] != (float)i)
			w->fails++;
		infini_result_free(&r);
	}
	/* The error text is per thread. */
	char bad[16];
	snprintf(bad, sizeof(bad), "nope");
	infini_push_tokens(w->c, bad, (int32_t[]){ 1 }, 1, INFINI_OUT_NONE,
	    NULL);
	snprintf(w->msg, sizeof(w->msg), "%s", infini_errmsg());
	return (NULL);
}

static void
test_threads(struct fake *f, infini_client *c)
{
	struct worker w[4];
	pthread_t th[4];
	int fails = 0;

	infini_set_timeout(c, 0);   /* <= 0: no deadline */
	infini_push_tokens(c, "garbage", (int32_t[]){ 1 }, 1,
	    INFINI_OUT_NONE, NULL);
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){ .c = c, .idx = i + 1 };
		pthread_create(&th[i], NULL, worker_main, &w[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		fails += w[i].fails;
	}
	is_int(fails, 0, "4 threads x 200 pushes on one client: every reply "
	    "matches its call");
	ok(strcmp(w[0].msg, "NOT_FOUND: no stream 'nope'") == 0 &&
	    strcmp(w[3].msg, w[0].msg) == 0, "  errmsg per thread");
	ok(strstr(infini_errmsg(), "malformed") != NULL, "  main thread keeps "
	    "its own: %s", infini_errmsg());
	is_int(atomic_load(&f->dup_ids), 0, "  call ids never repeat");
	infini_set_timeout(c, 10000);
}

/* ---- the CLI ------------------------------------------------------- */

#ifdef INFINI_CLI
/* What run_cli feeds the tool on stdin (NULL: the test's own stdin). */
static const char *cli_stdin;

/* run_cli runs the tool with args (NULL-terminated), returns its exit code
 * and what it printed; with polls, it sends SIGINT once the tool is
 * polling a generation. */
static int
run_cli(const char *const *args, char *out, size_t outlen, char *err,
    size_t errlen, atomic_int *polls)
{
	char of[] = "/tmp/t_client_outXXXXXX", ef[] = "/tmp/t_client_errXXXXXX";
	int ofd = mkstemp(of), efd = mkstemp(ef), st = -1;
	const char *argv[32] = { INFINI_CLI };
	char inf[] = "/tmp/t_client_inXXXXXX";
	int ifd = -1;
	pid_t pid;
	size_t k = 1;

	if (cli_stdin != NULL && (ifd = mkstemp(inf)) >= 0) {
		(void)!write(ifd, cli_stdin, strlen(cli_stdin));
		lseek(ifd, 0, SEEK_SET);
		unlink(inf);
	}
	for (; args[k - 1] != NULL && k < 31; k++)
		argv[k] = args[k - 1];
	argv[k] = NULL;
	if ((pid = fork()) == 0) {
		dup2(ofd, 1);
		dup2(efd, 2);
		if (ifd >= 0)
			dup2(ifd, 0);
		execv(INFINI_CLI, (char *const *)argv);
		_exit(127);
	}
	if (polls != NULL) {
		/* Once it polls, the tool's SIGINT handler is in place. */
		int start = atomic_load(polls);
		for (int i = 0; i < 2000 && atomic_load(polls) < start + 3; i++)
			nng_msleep(5);
		kill(pid, SIGINT);
	}
	waitpid(pid, &st, 0);
	ssize_t n = pread(ofd, out, outlen - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	n = pread(efd, err, errlen - 1, 0);
	err[n > 0 ? n : 0] = '\0';
	/* Trailing newlines would break the TAP lines that quote these. */
	for (size_t k = strlen(out); k > 0 && out[k - 1] == '\n'; k--)
		out[k - 1] = '\0';
	for (size_t k = strlen(err); k > 0 && err[k - 1] == '\n'; k--)
		err[k - 1] = '\0';
	close(ofd);
	close(efd);
	if (ifd >= 0)
		close(ifd);
	unlink(of);
	unlink(ef);
	return (WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

/* count_str counts the occurrences of needle in s. */
static int
count_str(const char *s, const char *needle)
{
	int n = 0;

	for (const char *p = s; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return (n);
}

/* test_json_stream: --json generate prints one object per token as it
 * arrives, then a final one. */
static void
test_json_stream(struct fake *f, const char *url, char *out, size_t outlen,
    char *err, size_t errlen)
{
	static const int want[] = { 'H', 'i', 300, '!' };
	static const char *const wtext[] = { "H", "i", "", "!" };
	char *line, *save = NULL;
	int rc, n = 0, good = 0, final = 0;

	rc = run_cli((const char *[]){ "--socket", url, "--json", "generate",
	    "gen", NULL }, out, outlen, err, errlen, NULL);
	for (line = strtok_r(out, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save), n++) {
		cJSON *j = cJSON_Parse(line);
		cJSON *t = cJSON_GetObjectItem(j, "token");
		if (n < 4 && cJSON_IsNumber(t) && t->valueint == want[n] &&
		    strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(j, "text")),
		    wtext[n]) == 0 && cJSON_GetArraySize(j) == 2)
			good++;
		if (n == 4 && cJSON_IsTrue(cJSON_GetObjectItem(j, "done")) &&
		    strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(j,
		    "finish_reason")), "length") == 0)
			final++;
		cJSON_Delete(j);
	}
	ok(rc == 0 && n == 5 && good == 4 && final == 1, "cli --json generate "
	    "is NDJSON: 4 token objects, then the final one (rc %d, %d lines)",
	    rc, n);

	/* Cancelled: the tokens so far were printed before the end. */
	rc = run_cli((const char *[]){ "--socket", url, "--json", "generate",
	    "forever", NULL }, out, outlen, err, errlen, &f->polls);
	const char *last = strrchr(out, '\n');
	cJSON *j = cJSON_Parse(last ? last + 1 : out);
	int ntok = count_str(out, "{\"token\":97,\"text\":\"a\"}");
	ok(rc == 130 && ntok > 0 && j && cJSON_GetArraySize(
	    cJSON_GetObjectItem(j, "tokens")) == ntok && strcmp(
	    cJSON_GetStringValue(cJSON_GetObjectItem(j, "finish_reason")),
	    "cancelled") == 0, "  Ctrl-C: %d token lines, then the final "
	    "object, exit 130", ntok);
	cJSON_Delete(j);
}

/* test_files: prompts from stdin and files; a missing local file exits 2
 * before anything is sent. */
static void
test_files(struct fake *f, const char *url, const char *dir, char *out,
    size_t outlen, char *err, size_t errlen)
{
	char path[256], missing[256];
	int rc, before;

	cli_stdin = "Yo from stdin\n";
	rc = run_cli((const char *[]){ "--socket", url, "generate", "gen",
	    "--prompt", "-", NULL }, out, outlen, err, errlen, NULL);
	cli_stdin = NULL;
	ok(rc == 0 && strcmp(f->gen_text, "Yo from stdin\n") == 0,
	    "cli generate --prompt - reads the prompt from stdin");
	snprintf(path, sizeof(path), "%s/prompt.txt", dir);
	FILE *fp = fopen(path, "w");
	fputs("Prompt\nfrom a file", fp);
	fclose(fp);
	rc = run_cli((const char *[]){ "--socket", url, "generate", "gen",
	    "--prompt-file", path, NULL }, out, outlen, err, errlen, NULL);
	ok(rc == 0 && strcmp(f->gen_text, "Prompt\nfrom a file") == 0,
	    "cli generate --prompt-file F sends F's text");
	unlink(path);

	snprintf(missing, sizeof(missing), "%s/no-such-file", dir);
	before = atomic_load(&f->requests);
	rc = run_cli((const char *[]){ "--socket", url, "generate", "gen",
	    "--prompt-file", missing, NULL }, out, outlen, err, errlen, NULL);
	ok(rc == 2 && strstr(err, "no-such-file: No such file or directory"),
	    "missing --prompt-file: exit 2 (%d): %s", rc, err);
	rc = run_cli((const char *[]){ "--socket", url, "feed", "s", missing,
	    NULL }, out, outlen, err, errlen, NULL);
	is_int(rc, 2, "missing feed FILE: exit 2");
	rc = run_cli((const char *[]){ "--socket", url, "push", "s",
	    "--vectors", missing, NULL }, out, outlen, err, errlen, NULL);
	is_int(rc, 2, "missing push --vectors FILE: exit 2");
	rc = run_cli((const char *[]){ "--socket", url, "restore", "s",
	    "--import", missing, NULL }, out, outlen, err, errlen, NULL);
	is_int(rc, 2, "missing restore --import FILE: exit 2");
	is_int(atomic_load(&f->requests), before, "  none of them reached "
	    "the daemon");
}

/* test_ls_owner: ls names owners; a uid without a name stays a number. */
static void
test_ls_owner(const char *url, char *out, size_t outlen, char *err,
    size_t errlen)
{
	struct passwd *pw = getpwuid(getuid());
	char want[160], uid[32], name[64];
	int rc;

	/* getpwuid's result is overwritten by the next call: copy it. */
	snprintf(name, sizeof(name), "%s", pw ? pw->pw_name : "");
	if (pw == NULL || getpwuid(FAKE_NOBODY_UID) != NULL) {
		tap_skip(2, "no name for our uid, or the test uid has one");
		return;
	}
	snprintf(uid, sizeof(uid), "%u", FAKE_NOBODY_UID);
	rc = run_cli((const char *[]){ "--socket", url, "ls", NULL }, out,
	    outlen, err, errlen, NULL);
	snprintf(want, sizeof(want), " %s ", name);
	ok(rc == 0 && strstr(out, "OWNER") && strstr(out, want) &&
	    strstr(out, uid), "cli ls shows owner '%s' by name, uid %s by "
	    "number", name, uid);
	rc = run_cli((const char *[]){ "--socket", url, "--json", "ls", NULL },
	    out, outlen, err, errlen, NULL);
	cJSON *j = cJSON_Parse(out);
	cJSON *a = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "streams"), 0);
	cJSON *b = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "streams"), 1);
	ok(rc == 0 && a && b && strcmp(cJSON_GetStringValue(
	    cJSON_GetObjectItem(a, "owner")), name) == 0 &&
	    cJSON_GetNumberValue(cJSON_GetObjectItem(a, "owner_uid")) ==
	    getuid() && strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(b,
	    "owner")), uid) == 0, "cli --json ls: owner and owner_uid");
	cJSON_Delete(j);
}

/*
 * test_eacces: a client outside the socket's group is told which group
 * to join.  Needs root, to run the tool as another user (nobody).
 */
static void
test_eacces(const char *dir, char *out, size_t outlen, char *err,
    size_t errlen)
{
	char sdir[256], url[300], want[700];
	struct group *gr = getgrgid(100);
	struct fake f;
	int rc, st;
	pid_t pid;

	if (getuid() != 0 || gr == NULL || access(INFINI_CLI, X_OK) != 0) {
		tap_skip(2, "needs root and a group with gid 100");
		return;
	}
	snprintf(sdir, sizeof(sdir), "%s/perm", dir);
	mkdir(sdir, 0755);
	chmod(dir, 0755);
	snprintf(url, sizeof(url), "ipc://%s/sock", sdir);
	if (fake_start(&f, url) != 0) {
		tap_skip(2, "cannot start the fake");
		return;
	}
	if (chown(url + 6, 0, 100) != 0 || chmod(url + 6, 0660) != 0) {
		fake_stop(&f);
		tap_skip(2, "cannot chown the socket");
		return;
	}
	char of[] = "/tmp/t_client_permXXXXXX";
	int fd = mkstemp(of);
	if ((pid = fork()) == 0) {
		dup2(fd, 2);
		dup2(fd, 1);
		if (setgroups(0, NULL) != 0 || setgid(65534) != 0 ||
		    setuid(65534) != 0)
			_exit(126);
		execl(INFINI_CLI, INFINI_CLI, "--socket", url, "status",
		    (char *)NULL);
		_exit(127);
	}
	waitpid(pid, &st, 0);
	rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	ssize_t n = pread(fd, out, outlen - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(of);
	(void)err;
	(void)errlen;
	snprintf(want, sizeof(want), "permission denied on %s: add yourself "
	    "to group %s (sudo adduser $USER %s) and log in again", url + 6,
	    gr->gr_name, gr->gr_name);
	is_int(rc, 3, "a socket the user may not open: exit 3");
	if (!ok(strstr(out, want) != NULL, "  the hint names the socket's "
	    "group (%s)", gr->gr_name))
		tap_diag("got: %s", out);
	fake_stop(&f);
	unlink(url + 6);
	rmdir(sdir);
}

/*
 * test_run_pipe: infini run reading a pipe: every line is answered, the
 * prompt goes with its newline, history is kept and listed.
 */
static void
test_run_pipe(struct fake *f, const char *url, const char *dir, char *out,
    size_t outlen, char *err, size_t errlen)
{
	char hist[256], h[256] = "";
	int rc, before = atomic_load(&f->generates);

	snprintf(hist, sizeof(hist), "%s/history", dir);
	cli_stdin = "Yo\n\n/history\nsecond line\n";
	rc = run_cli((const char *[]){ "--socket", url, "run", "gen",
	    "--history", hist, NULL }, out, outlen, err, errlen, NULL);
	cli_stdin = NULL;
	ok(rc == 0 && count_str(out, "Hi!") == 2 &&
	    atomic_load(&f->generates) == before + 2, "cli run answers each "
	    "line (rc %d)", rc);
	ok(strcmp(f->gen_text, "second line\n") == 0, "  the prompt is the "
	    "line with its newline");
	FILE *hf = fopen(hist, "r");
	size_t hn = hf ? fread(h, 1, sizeof(h) - 1, hf) : 0;
	h[hn] = '\0';
	if (hf != NULL)
		fclose(hf);
	ok(strcmp(h, "Yo\nsecond line\n") == 0 && strstr(out, "    1  Yo\n") != NULL, "  history file kept "
	    "and /history lists it");
	unlink(hist);
}

/* pty_expect reads the pty until needle has been seen count times in all
 * output so far (buf), or timeout_ms passes. */
static bool
pty_expect(int fd, char *buf, size_t cap, size_t *len, const char *needle,
    int count, int timeout_ms)
{
	double end = now_ms() + timeout_ms;

	for (;;) {
		buf[*len] = '\0';
		if (count_str(buf, needle) >= count)
			return (true);
		if (now_ms() > end || *len + 1 >= cap)
			return (false);
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 50) > 0) {
			ssize_t n = read(fd, buf + *len, cap - 1 - *len);
			if (n <= 0)
				return (count_str(buf, needle) >= count);
			*len += (size_t)n;
		}
	}
}

/* pty_diag shows what the terminal received, escaped onto one line. */
static void
pty_diag(const char *buf)
{
	char esc[4096];
	size_t k = 0;

	for (const unsigned char *p = (const void *)buf; *p && k + 5 <
	    sizeof(esc); p++)
		k += (size_t)(*p >= 32 && *p < 127 ? snprintf(esc + k,
		    sizeof(esc) - k, "%c", *p) : snprintf(esc + k,
		    sizeof(esc) - k, "\\x%02x", *p));
	esc[k] = '\0';
	tap_diag("terminal: %s", esc);
}

/* pty_run starts `infini --socket url run stream` on a new terminal, with
 * home as $HOME (NULL: --no-history); returns the child's pid and the
 * master side in *fd. */
static pid_t
pty_run(const char *url, const char *stream, const char *home, int *fd)
{
	pid_t pid = forkpty(fd, NULL, NULL, NULL);

	if (pid == 0) {
		unsetenv("INFINI_HISTORY");
		unsetenv("XDG_STATE_HOME");
		if (home != NULL)
			setenv("HOME", home, 1);
		execl(INFINI_CLI, INFINI_CLI, "--socket", url, "run", stream,
		    home ? "--timeout" : "--no-history", home ? "10000" : NULL,
		    (char *)NULL);
		_exit(127);
	}
	return (pid);
}

/*
 * test_run_pty: infini run on a terminal, Ctrl-C typed as the terminal's
 * interrupt character: at the prompt it drops the line, during an answer
 * it cancels the generation and the session goes on; Ctrl-D ends it.
 */
static void
test_run_pty(struct fake *f, const char *url, const char *dir)
{
	static char buf[1 << 16];
	char hist[300], h[64] = "";
	size_t len = 0;
	int fd, st = -1, before = atomic_load(&f->generates);
	pid_t pid;
	bool seen;

	if ((pid = pty_run(url, "gen", dir, &fd)) < 0) {
		tap_skip(6, "no pty");
		return;
	}
	seen = pty_expect(fd, buf, sizeof(buf), &len, "> ", 1, 5000);
	(void)!write(fd, "Yo\r", 3);
	seen = seen && pty_expect(fd, buf, sizeof(buf), &len, "Hi!", 1,
	    5000) && pty_expect(fd, buf, sizeof(buf), &len, "> ", 2, 5000);
	(void)!write(fd, "dropped\x03", 8);
	seen = seen && pty_expect(fd, buf, sizeof(buf), &len, "> ", 3, 5000);
	(void)!write(fd, "again\r", 6);
	seen = seen && pty_expect(fd, buf, sizeof(buf), &len, "Hi!", 2,
	    5000) && pty_expect(fd, buf, sizeof(buf), &len, "> ", 4, 5000);
	(void)!write(fd, "\x04", 1);
	pty_expect(fd, buf, sizeof(buf), &len, "\x01", 1, 2000);  /* drain */
	waitpid(pid, &st, 0);
	close(fd);
	if (!ok(seen && strstr(buf, "stream 'gen'") != NULL, "cli run on a "
	    "terminal: banner, prompt, answer, prompt"))
		pty_diag(buf);
	ok(seen && atomic_load(&f->generates) == before + 2, "  Ctrl-C at "
	    "the prompt drops the line (2 generations, not 3)");
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "  Ctrl-D ends it, exit 0 "
	    "(status %d)", st);
	snprintf(hist, sizeof(hist), "%s/.local/state/infini/history", dir);
	FILE *hf = fopen(hist, "r");
	size_t hn = hf ? fread(h, 1, sizeof(h) - 1, hf) : 0;
	h[hn] = '\0';
	if (hf != NULL)
		fclose(hf);
	ok(strcmp(h, "Yo\nagain\n") == 0, "  on a terminal the prompts "
	    "go to ~/.local/state/infini/history");
	unlink(hist);
	for (int i = 0; i < 3; i++) {
		/* .local/state/infini, .local/state, .local */
		char *slash = strrchr(hist, '/');
		*slash = '\0';
		rmdir(hist);
	}

	/* During an answer: cancel it, come back to the prompt. */
	len = 0;
	if ((pid = pty_run(url, "forever", NULL, &fd)) < 0) {
		tap_skip(2, "no pty");
		return;
	}
	seen = pty_expect(fd, buf, sizeof(buf), &len, "> ", 1, 5000);
	(void)!write(fd, "go\r", 3);
	seen = seen && pty_expect(fd, buf, sizeof(buf), &len, "aaaa", 1,
	    5000);
	(void)!write(fd, "\x03", 1);
	seen = seen && pty_expect(fd, buf, sizeof(buf), &len, "[cancelled "
	    "after", 1, 5000) && pty_expect(fd, buf, sizeof(buf), &len,
	    "> ", 2, 5000);
	ok(seen && atomic_load(&f->cancelled) == 8, "cli run: Ctrl-C during "
	    "an answer sends Cancel and returns to the prompt");
	(void)!write(fd, "\x04", 1);
	pty_expect(fd, buf, sizeof(buf), &len, "\x01", 1, 2000);
	waitpid(pid, &st, 0);
	close(fd);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "  the session survives "
	    "it: Ctrl-D exits 0 (status %d)", st);
}

/* complete runs the bash completion on words (the last is the one being
 * completed) and returns COMPREPLY joined by spaces in out. */
static void
complete(const char *const *words, char *out, size_t outlen)
{
	char cmd[2048];
	size_t k = 0, n = 0;
	int c;

	k += snprintf(cmd + k, sizeof(cmd) - k, "bash --norc -c 'source %s; "
	    "COMP_WORDS=(", COMPLETION);
	for (; words[n] != NULL; n++)
		k += snprintf(cmd + k, sizeof(cmd) - k, "\"%s\" ", words[n]);
	snprintf(cmd + k, sizeof(cmd) - k, "); COMP_CWORD=%zu; _infini; "
	    "echo \"${COMPREPLY[*]}\"'", n - 1);
	FILE *p = popen(cmd, "r");
	k = 0;
	while (p != NULL && (c = fgetc(p)) != EOF && k + 1 < outlen)
		out[k++] = c == '\n' ? ' ' : (char)c;
	out[k] = '\0';
	if (p != NULL)
		pclose(p);
}

/* test_completion: the completion knows the tool's commands (as its
 * --help lists them), options and the daemon's streams. */
static void
test_completion(const char *url, char *out, size_t outlen, char *err,
    size_t errlen)
{
	char got[1024], cmds[1024] = " ", *line, *save = NULL;
	bool in = false;
	int rc, ncmd = 0, missing = 0;

	rc = run_cli((const char *[]){ "--help", NULL }, out, outlen, err,
	    errlen, NULL);
	for (line = strtok_r(out, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "Commands", 8) == 0) {
			in = true;
			continue;
		}
		if (in && strncmp(line, "  ", 2) != 0)
			break;
		if (in) {
			char name[32];
			sscanf(line, "%31s", name);
			strcat(cmds, name);
			strcat(cmds, " ");
			ncmd++;
		}
	}
	complete((const char *[]){ INFINI_CLI, "", NULL }, got, sizeof(got));
	for (char *w = strtok_r(cmds, " ", &save); w != NULL;
	    w = strtok_r(NULL, " ", &save)) {
		char pat[40];
		snprintf(pat, sizeof(pat), " %s ", w);
		char padded[1100];
		snprintf(padded, sizeof(padded), " %s ", got);
		missing += strstr(padded, pat) == NULL;
	}
	/* got ends with a space: one per word. */
	ok(rc == 0 && ncmd >= 12 && missing == 0 && count_str(got, " ") ==
	    ncmd, "bash completion offers the %d commands of --help: %s", ncmd,
	    got);
	complete((const char *[]){ INFINI_CLI, "generate", "--prompt-f", NULL },
	    got, sizeof(got));
	ok(strcmp(got, "--prompt-file ") == 0, "  and their options: %s", got);
	complete((const char *[]){ INFINI_CLI, "--socket", url, "push", "",
	    NULL }, got, sizeof(got));
	ok(strcmp(got, "mine theirs ") == 0, "  and stream ids from ls: %s",
	    got);
	/* feed's second argument is FILE: a prefix of this script's path
	 * completes to it. */
	char prefix[512], want[520];
	snprintf(prefix, sizeof(prefix), "%.*s", (int)strlen(COMPLETION) - 4,
	    COMPLETION);
	snprintf(want, sizeof(want), "%s ", COMPLETION);
	complete((const char *[]){ INFINI_CLI, "feed", "s", prefix, NULL },
	    got, sizeof(got));
	ok(strcmp(got, want) == 0, "  and files where the usage says FILE");
}

static void
test_cli_more(struct fake *f, const char *url, const char *dir)
{
	static char out[1 << 16], err[4096];

	test_json_stream(f, url, out, sizeof(out), err, sizeof(err));
	test_files(f, url, dir, out, sizeof(out), err, sizeof(err));
	test_ls_owner(url, out, sizeof(out), err, sizeof(err));
	test_eacces(dir, out, sizeof(out), err, sizeof(err));
	test_run_pipe(f, url, dir, out, sizeof(out), err, sizeof(err));
	test_run_pty(f, url, dir);
	test_completion(url, out, sizeof(out), err, sizeof(err));
}

static void
test_cli(void)
{
	char dir[] = "/tmp/t_client_XXXXXX", url[128], out[8192], err[2048];
	struct fake f;
	int rc;

	if (mkdtemp(dir) == NULL || snprintf(url, sizeof(url),
	    "ipc://%s/sock", dir) < 0 || fake_start(&f, url) != 0) {
		tap_skip(44, "cannot start the ipc fake");
		return;
	}
#define CLI(...) run_cli((const char *[]){ __VA_ARGS__, NULL }, out, \
	sizeof(out), err, sizeof(err), NULL)
#define CLI_INT(...) run_cli((const char *[]){ __VA_ARGS__, NULL }, \
	out, sizeof(out), err, sizeof(err), &f.polls)
	rc = CLI("--socket", url, "status");
	is_int(rc, 0, "cli status");
	ok(strstr(out, "tiny-byte") && strstr(out, "segment 8"),
	    "  prints the model");
	rc = CLI("--socket", url, "--json", "status");
	cJSON *j = cJSON_Parse(out);
	ok(rc == 0 && j && strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(j,
	    "model")), "tiny-byte") == 0 && cJSON_GetNumberValue(
	    cJSON_GetObjectItem(j, "segment_size")) == 8, "cli --json status");
	cJSON_Delete(j);
	rc = CLI("push", "nope", "--tokens", "1,2", "--socket", url);
	is_int(rc, 1, "cli push to a missing stream exits 1");
	ok(strcmp(err, "infini: push: NOT_FOUND: no stream 'nope'") == 0,
	    "  stderr: %s", err);
	rc = CLI("--socket", url, "--json", "push", "s", "--tokens", "5 6,7",
	    "--output", "embeddings");
	j = cJSON_Parse(out);
	cJSON *d = j ? cJSON_GetObjectItem(j, "data") : NULL;
	ok(rc == 0 && d && cJSON_GetArraySize(d) == 3 &&
	    cJSON_GetNumberValue(cJSON_GetArrayItem(cJSON_GetArrayItem(d, 2),
	    1)) == 7.5 && cJSON_GetNumberValue(cJSON_GetObjectItem(j,
	    "position")) == 3018, "cli --json push returns the embeddings");
	cJSON_Delete(j);
	rc = CLI("--socket", url, "generate", "gen", "--prompt", "Yo", "-n",
	    "16", "--stop", "x");
	/* Token 300 has no text of its own (a special token). */
	ok(rc == 0 && strcmp(out, "Hi!") == 0, "cli generate prints the "
	    "tokens' text (rc %d, '%s')", rc, out);
	rc = CLI("--socket", url, "--json", "generate", "gen");
	j = cJSON_Parse(strrchr(out, '\n') ? strrchr(out, '\n') + 1 : out);
	ok(rc == 0 && j && strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(j,
	    "text")), "Hi!") == 0 && cJSON_GetArraySize(cJSON_GetObjectItem(j,
	    "tokens")) == 4, "cli --json generate: the last line is the "
	    "whole answer (rc %d)", rc);
	cJSON_Delete(j);

	char path[160];
	snprintf(path, sizeof(path), "%s/in.txt", dir);
	FILE *fp = fopen(path, "w");
	fputs("twenty bytes of text", fp);
	fclose(fp);
	rc = CLI("--socket", url, "feed", "s", path);
	ok(rc == 0 && strstr(out, "fed 20 tokens") != NULL &&
	    strstr(out, "position 4,") != NULL, "cli feed pushes by segment "
	    "(8, 8, 4): %s", out);

	rc = CLI_INT("--socket", url, "generate", "forever");
	is_int(rc, 130, "cli generate: Ctrl-C exits 130");
	ok(atomic_load(&f.cancelled) == 8 && strspn(out, "a") == strlen(out) &&
	    strlen(out) > 0, "  after sending Cancel (%zu tokens printed)",
	    strlen(out));
	rc = CLI_INT("--socket", url, "generate", "idle");
	is_int(rc, 130, "cli generate: Ctrl-C while waiting exits 130");
	is_int(atomic_load(&f.cancelled), 9, "  after sending Cancel");

	rc = CLI("--socket", url, "stats");
	is_int(rc, 1, "cli stats on a daemon without it exits 1");
	rc = CLI("--socket", "ipc:///nonexistent/infinid.sock", "status");
	is_int(rc, 3, "cli with no daemon exits 3");
	ok(strstr(err, "no daemon at") != NULL, "  stderr: %s", err);
	rc = CLI("frobnicate");
	is_int(rc, 2, "cli unknown command exits 2");
	rc = CLI("push", "s", "--socket", url);
	is_int(rc, 2, "cli push without input exits 2");
	test_cli_more(&f, url, dir);
#undef CLI
	fake_stop(&f);
	snprintf(path, sizeof(path), "%s/in.txt", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/sock", dir);
	unlink(path);
	rmdir(dir);
}
#endif

/* The one error table (infini_err.h) against proto infini.v1.Code, by
 * the status names the protocol documents for each error, so a renumbered
 * proto or a mistyped number in the table shows. */
static void
test_status_table(void)
{
	static const struct { int err; const char *status; } want[] = {
		{ INFINI_OK, "OK" },
		{ INFINI_EINVAL, "INVALID_ARGUMENT" },
		{ INFINI_ENOMEM, "RESOURCE_EXHAUSTED" },
		{ INFINI_ENOENT, "NOT_FOUND" },
		{ INFINI_EEXIST, "ALREADY_EXISTS" },
		{ INFINI_EIO, "INTERNAL" },
		{ INFINI_ECORRUPT, "DATA_LOSS" },
		{ INFINI_EUNSUPPORTED, "UNIMPLEMENTED" },
		{ INFINI_ENODEV, "UNAVAILABLE" },
		{ INFINI_EDEVICE, "INTERNAL" },
		{ INFINI_ERANGE, "OUT_OF_RANGE" },
		{ INFINI_EFULL, "RESOURCE_EXHAUSTED" },
		{ INFINI_EPROTO, "INVALID_ARGUMENT" },
		{ INFINI_EPERM, "PERMISSION_DENIED" },
		{ INFINI_ECANCELED, "CANCELLED" },
		{ INFINI_ETIMEDOUT, "DEADLINE_EXCEEDED" },
		{ INFINI_ESTATE, "FAILED_PRECONDITION" },
		{ INFINI_EUNAVAILABLE, "UNAVAILABLE" },
		{ INFINI_EINTERNAL, "INTERNAL" },
		{ INFINI_EABORTED, "ABORTED" },
	};
	const size_t n = sizeof(want) / sizeof(want[0]);
	int bad = 0, back = 0;

	for (size_t i = 0; i < n; i++) {
		const ProtobufCEnumValue *v =
		    protobuf_c_enum_descriptor_get_value_by_name(
		    &infini__v1__code__descriptor, want[i].status);
		int st = infini_err_status(want[i].err);
		if (v == NULL || v->value != st) {
			tap_diag("%s: status %d, proto %s is %d",
			    infini_errname(want[i].err), st, want[i].status,
			    v ? v->value : -1);
			bad++;
		}
		/* Mapping the status back gives an error of that status. */
		back += infini_err_status(infini_err_from_status(st)) != st;
	}
	ok(bad == 0 && n == INFINI_ERR_COUNT, "each of the %d error codes "
	    "answers with the proto infini.v1.Code its name says (%d wrong, "
	    "%zu listed here)", INFINI_ERR_COUNT, bad, n);
	ok(back == 0, "a status mapped back to an error and forth again is "
	    "itself (%d differ)", back);
}

/* The daemon packs replies in place (wire_reply_init/pack): the bytes
 * must be exactly protobuf-c's packing of the whole Reply around the
 * separately packed body, whatever the length's varint takes. */
static void
test_reply_packing(void)
{
	static float data[5000];
	static const size_t sizes[] = { 0, 1, 30, 5000 };
	int same = 0, n = 0;

	for (size_t i = 0; i < 5000; i++)
		data[i] = (float)i * 0.25f;
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++)
		for (int code = 0; code < 2; code++) {
			Infini__V1__PushReply pr = INFINI__V1__PUSH_REPLY__INIT;
			Infini__V1__Reply r = INFINI__V1__REPLY__INIT;
			Infini__V1__Status st = INFINI__V1__STATUS__INIT;
			size_t blen, want, got;
			pr.position = sizes[k] ? 77 : 0;
			pr.data = data;
			pr.n_data = sizes[k];
			blen = protobuf_c_message_get_packed_size(&pr.base);
			uint8_t *b = malloc(blen + 1);
			protobuf_c_message_pack(&pr.base, b);
			st.code = code ? INFINI__V1__CODE__NOT_FOUND : 0;
			st.message = code ? "no stream 'x'" : "";
			r.call_id = 12345;
			r.status = &st;
			r.body.data = b;
			r.body.len = code ? 0 : blen;
			want = infini__v1__reply__get_packed_size(&r);
			uint8_t *w = malloc(want + 1);
			infini__v1__reply__pack(&r, w);
			uint8_t *g = wire_pack_reply(12345, st.code, st.message,
			    &pr.base, &got);
			same += g != NULL && got == want &&
			    memcmp(g, w, want) == 0;
			n++;
			free(b);
			free(w);
			free(g);
		}
	ok(same == n, "replies packed in place equal protobuf-c's packing "
	    "(%d of %d: bodies of 0, 1, 30 and 5000 floats, OK and error)",
	    same, n);
}

int
main(void)
{
	struct fake f;
	infini_client *c = NULL;

	tap_plan(110);
	test_status_table();
	test_reply_packing();
	if (fake_start(&f, URL) != 0) {
		printf("Bail out! cannot start the fake daemon\n");
		return (1);
	}
	test_connect();
	if (!ok(infini_connect(URL, 2000, &c) == 0, "connect to the fake")) {
		printf("Bail out! %s\n", infini_errmsg());
		return (1);
	}
	test_calls(&f, c);
	test_generate(&f, c);
	test_threads(&f, c);
	is_int(atomic_load(&f.bad), 0, "every request had a valid envelope");
	infini_close(c);
	fake_stop(&f);
#ifdef INFINI_CLI
	test_cli();
#else
	tap_skip(44, "CLI not built");
#endif
	return (tap_done());
}
