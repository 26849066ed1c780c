/*
 * http_openai.c - OpenAI's /v1/completions and /v1/embeddings on infinid
 * streams.  A completion is OpenStream(reuse) -> Generate -> Poll... and
 * answers once done, or, with "stream": true, takes the connection over
 * after Generate and writes each Poll's new text as a server-sent event
 * (chunked) until [DONE].  Embeddings are OpenStream(reuse) -> one
 * Push(mean) per input, in order.  Fields the daemon cannot honour are
 * refused, unknown ones too (docs/protocol.md lists them).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_gw.h"
#include "log.h"
#include "pbjson.h"

/* ------------------------------------------------------------ OpenAI */

/* allowed: is name among the NULL-ended list? */
static bool
allowed(const char *const *list, const char *name)
{
	for (; *list != NULL; list++)
		if (strcmp(*list, name) == 0)
			return (true);
	return (false);
}

/* check_fields refuses unknown fields of obj; answers h and returns false. */
static bool
check_fields(struct hreq *h, const char *const *list)
{
	const cJSON *v;

	if (!cJSON_IsObject(h->json)) {
		hr_fail(h, 400, "invalid_json", NULL, "the body must be a JSON "
		    "object");
		return (false);
	}
	cJSON_ArrayForEach(v, h->json)
		if (!allowed(list, v->string)) {
			hr_fail(h, 400, "unknown_field", v->string, "unknown field "
			    "'%s'", v->string);
			return (false);
		}
	return (true);
}

/* stream_name finds the infinid stream a request names: the X-Infini-Stream
 * header, or "user": "stream:ID".  Answers h and returns false if none. */
static bool
stream_name(struct hreq *h, nng_http_req *req)
{
	const char *s = nng_http_req_get_header(req, "X-Infini-Stream");
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(h->json, "user");

	if (s == NULL && cJSON_IsString(u) &&
	    strncmp(u->valuestring, "stream:", 7) == 0)
		s = u->valuestring + 7;
	if (s == NULL || !wire_valid_id(s)) {
		hr_fail(h, 400, "invalid_argument", s ? "user" : NULL,
		    s ? "invalid stream id '%.140s': 1-128 characters of "
		    "[A-Za-z0-9._:-]" : "name the infinid stream: an "
		    "X-Infini-Stream header or \"user\": \"stream:ID\"%s",
		    s ? s : "");
		return (false);
	}
	snprintf(h->stream, sizeof(h->stream), "%s", s);
	return (true);
}

/* get_number reads an optional number field within [lo, hi]. */
static bool
get_number(struct hreq *h, const char *name, double lo, double hi,
    bool integer, double *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(h->json, name);

	if (v == NULL || cJSON_IsNull(v))
		return (true);
	if (!cJSON_IsNumber(v) || v->valuedouble < lo || v->valuedouble > hi ||
	    (integer && v->valuedouble != (double)(int64_t)v->valuedouble)) {
		hr_fail(h, 400, "invalid_argument", name, "'%s' must be %s in "
		    "[%g, %g]", name, integer ? "an integer" : "a number", lo, hi);
		return (false);
	}
	*out = v->valuedouble;
	return (true);
}

/* tokens_of reads a JSON array of token ids into tk (malloc'd ids). */
static bool
tokens_of(struct hreq *h, const cJSON *arr, const char *param,
    Infini__V1__Tokens *tk)
{
	size_t n = (size_t)cJSON_GetArraySize(arr), i = 0;
	const cJSON *x;

	if (n == 0 || (tk->ids = malloc(n * sizeof(int32_t))) == NULL) {
		hr_fail(h, 400, "invalid_argument", param, "'%s' is empty", param);
		return (false);
	}
	cJSON_ArrayForEach(x, arr) {
		if (!cJSON_IsNumber(x) || x->valuedouble < 0 ||
		    x->valuedouble > 2147483647.0 ||
		    x->valuedouble != (double)(int32_t)x->valuedouble) {
			free(tk->ids);
			tk->ids = NULL;
			hr_fail(h, 400, "invalid_argument", param, "'%s' must be a "
			    "string or token ids", param);
			return (false);
		}
		tk->ids[i++] = (int32_t)x->valuedouble;
	}
	tk->n_ids = n;
	return (true);
}

/* one_prompt takes element i of a prompt/input, which may be a string, an
 * array of ids, or an array of strings or of id arrays.  Sets exactly one of
 * *text / tk.  Returns false (answered) on a bad shape. */
static bool
one_input(struct hreq *h, const cJSON *v, int i, const char *param,
    const char **text, Infini__V1__Tokens *tk)
{
	const cJSON *first;

	*text = NULL;
	if (cJSON_IsString(v)) {
		*text = v->valuestring;
		return (true);
	}
	if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0)
		goto bad;
	first = cJSON_GetArrayItem(v, 0);
	if (cJSON_IsNumber(first))
		return (tokens_of(h, v, param, tk));
	v = cJSON_GetArrayItem(v, i);
	if (cJSON_IsString(v)) {
		*text = v->valuestring;
		return (true);
	}
	if (cJSON_IsArray(v))
		return (tokens_of(h, v, param, tk));
bad:
	hr_fail(h, 400, "invalid_argument", param, "'%s' must be a string, an "
	    "array of strings, token ids, or arrays of token ids", param);
	return (false);
}

/* count_inputs: how many inputs a prompt/input holds (1 for a string or
 * one array of ids). */
static int
count_inputs(const cJSON *v)
{
	const cJSON *first;

	if (!cJSON_IsArray(v))
		return (1);
	first = cJSON_GetArrayItem(v, 0);
	return (first == NULL || cJSON_IsNumber(first) ? 1 :
	    cJSON_GetArraySize(v));
}

static void
open_stream(struct hreq *h)
{
	Infini__V1__OpenStreamRequest q = INFINI__V1__OPEN_STREAM_REQUEST__INIT;

	q.stream_id = h->stream;
	q.reuse = true;
	hr_call(h, S_OPEN, M(OPEN_STREAM), &q.base);
}

static const char *const compl_fields[] = { "model", "prompt", "max_tokens",
	"temperature", "top_p", "top_k", "seed", "stop", "stream", "user", "n",
	"echo", "logprobs", "best_of", "suffix", "presence_penalty",
	"frequency_penalty", "logit_bias", "stream_options", NULL };

static const char *const emb_fields[] = { "model", "input", "user",
	"encoding_format", "dimensions", NULL };

/* common_begin checks what completions and embeddings share. */
static bool
common_begin(struct hreq *h, const char *const *fields)
{
	const cJSON *m;

	if (!check_fields(h, fields) || !stream_name(h, h->req))
		return (false);
	m = cJSON_GetObjectItemCaseSensitive(h->json, "model");
	if (m != NULL && !cJSON_IsString(m)) {
		hr_fail(h, 400, "invalid_argument", "model", "'model' must be a "
		    "string");
		return (false);
	}
	snprintf(h->model, sizeof(h->model), "%.127s", m ? m->valuestring :
	    h->gw->d->cfg.model);
	h->created = (int64_t)time(NULL);
	return (true);
}

void
oai_completions_begin(struct hreq *h)
{
	const cJSON *p, *v;
	double n = 1;

	if (!common_begin(h, compl_fields))
		return;
	p = cJSON_GetObjectItemCaseSensitive(h->json, "prompt");
	if (p != NULL && !cJSON_IsNull(p) && count_inputs(p) != 1) {
		hr_fail(h, 400, "invalid_argument", "prompt", "one prompt per "
		    "request (a stream is one sequence)");
		return;
	}
	if (!get_number(h, "n", 1, 1, true, &n) ||
	    !get_number(h, "best_of", 1, 1, true, &n))
		return;
	v = cJSON_GetObjectItemCaseSensitive(h->json, "echo");
	if (cJSON_IsTrue(v)) {
		hr_fail(h, 400, "unsupported", "echo", "echo is not supported");
		return;
	}
	v = cJSON_GetObjectItemCaseSensitive(h->json, "logprobs");
	if (v != NULL && !cJSON_IsNull(v) && !(cJSON_IsNumber(v) &&
	    v->valuedouble == 0)) {
		hr_fail(h, 400, "unsupported", "logprobs", "logprobs are not "
		    "supported");
		return;
	}
	v = cJSON_GetObjectItemCaseSensitive(h->json, "stream");
	if (v != NULL && !cJSON_IsNull(v) && !cJSON_IsBool(v)) {
		hr_fail(h, 400, "invalid_argument", "stream", "'stream' must be "
		    "a boolean");
		return;
	}
	h->sse = cJSON_IsTrue(v);
	snprintf(h->cid, sizeof(h->cid), "cmpl-%llx%llx",
	    (unsigned long long)h->created, (unsigned long long)h->t0);
	hr_watch_start(h);
	open_stream(h);
}

static void
generate(struct hreq *h)
{
	Infini__V1__GenerateRequest q = INFINI__V1__GENERATE_REQUEST__INIT;
	Infini__V1__Tokens tk = INFINI__V1__TOKENS__INIT;
	Infini__V1__Sampling smp = INFINI__V1__SAMPLING__INIT;
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(h->json, "prompt");
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(h->json, "stop");
	double maxt = 16, temp = 1, top_p = 1, top_k = 0, seed = 0;
	const char *text = NULL;
	char *stops[4];
	size_t nstop = 0;

	if (!get_number(h, "max_tokens", 1, (double)h->gw->d->cfg.max_generate,
	    true, &maxt) || !get_number(h, "temperature", 0, 2, false, &temp) ||
	    !get_number(h, "top_p", 0, 1, false, &top_p) ||
	    !get_number(h, "top_k", 0, 1e6, true, &top_k) ||
	    !get_number(h, "seed", -9007199254740992.0, 9007199254740992.0, true,
	    &seed))
		return;
	if (cJSON_IsString(st)) {
		stops[nstop++] = st->valuestring;
	} else if (cJSON_IsArray(st) && cJSON_GetArraySize(st) <= 4) {
		const cJSON *x;
		cJSON_ArrayForEach(x, st) {
			if (!cJSON_IsString(x))
				break;
			stops[nstop++] = x->valuestring;
		}
		if (nstop != (size_t)cJSON_GetArraySize(st))
			goto badstop;
	} else if (st != NULL && !cJSON_IsNull(st)) {
		goto badstop;
	}
	if (p != NULL && !cJSON_IsNull(p) &&
	    !one_input(h, p, 0, "prompt", &text, &tk))
		return;
	q.stream_id = h->stream;
	if (text != NULL && text[0] != '\0') {
		q.prompt_case = INFINI__V1__GENERATE_REQUEST__PROMPT_TEXT;
		q.text = (char *)text;
		h->ntok_in = strlen(text);
	} else if (tk.n_ids > 0) {
		q.prompt_case = INFINI__V1__GENERATE_REQUEST__PROMPT_TOKENS;
		q.tokens = &tk;
		h->ntok_in = tk.n_ids;
	}
	/* An empty prompt continues the stream from its last input. */
	q.max_tokens = (uint32_t)maxt;
	smp.temperature = (float)temp;
	smp.top_p = (float)top_p;
	smp.top_k = (uint32_t)top_k;
	smp.seed = (uint64_t)(int64_t)seed;
	q.sampling = &smp;
	q.n_stop = nstop;
	q.stop = stops;
	hr_call(h, S_GENERATE, M(GENERATE), &q.base);
	free(tk.ids);
	return;
badstop:
	hr_fail(h, 400, "invalid_argument", "stop", "'stop' must be a string or "
	    "up to 4 strings");
}

void
oai_poll_gen(struct hreq *h)
{
	Infini__V1__PollRequest q = INFINI__V1__POLL_REQUEST__INIT;

	q.generation_id = h->gen;
	q.after = h->after;
	q.wait_ms = (uint32_t)h->gw->d->cfg.poll_max_ms;
	hr_call(h, S_POLL, M(POLL), &q.base);
}

/* cancel_gen stops h's generation (the client left) and ends h after. */
void
oai_cancel_gen(struct hreq *h)
{
	Infini__V1__CancelRequest q = INFINI__V1__CANCEL_REQUEST__INIT;

	if (h->gen == 0 || h->gen_done) {
		hr_free(h);
		return;
	}
	LOG(LOG_INFO, "http: client left; generation %llu cancelled",
	    (unsigned long long)h->gen);
	q.generation_id = h->gen;
	h->gen_done = true;
	hr_call(h, S_CANCEL, M(CANCEL), &q.base);
}

/* utf8_len: how many bytes of p[0..n) form whole UTF-8 characters when
 * more may follow (a character cut at the end waits for its rest). */
static size_t
utf8_len(const char *p, size_t n)
{
	size_t i = n, k = 0;

	while (i > 0 && k < 4 && ((unsigned char)p[i - 1] & 0xc0) == 0x80) {
		i--;
		k++;
	}
	if (i > 0) {
		unsigned char c = (unsigned char)p[i - 1];
		size_t want = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
		if (want > k + 1 && c >= 0xc0)
			return (i - 1);
	}
	return (n);
}

/* utf8_clean copies p[0..n) with each maximal ill-formed subsequence (and
 * NUL, which a C string cannot carry) replaced by one U+FFFD, the way the
 * WHATWG decoder and Python's errors="replace" do, so the JSON a client
 * parses is always valid and reads as its own decoder would (a model may
 * emit any byte). */
static char *
utf8_clean(const char *p, size_t n)
{
	char *o = malloc(3 * n + 1), *q = o;
	size_t i = 0;

	if (o == NULL)
		return (NULL);
	while (i < n) {
		unsigned char c = (unsigned char)p[i];
		unsigned lo = 0x80, hi = 0xbf;
		size_t len = 0, k = 1;

		if (c > 0 && c < 0x80) {
			*q++ = (char)c;
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			len = 2;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3;
			lo = c == 0xe0 ? 0xa0 : 0x80;
			hi = c == 0xed ? 0x9f : 0xbf;
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4;
			lo = c == 0xf0 ? 0x90 : 0x80;
			hi = c == 0xf4 ? 0x8f : 0xbf;
		}
		while (len > 0 && k < len && i + k < n) {
			unsigned b = (unsigned char)p[i + k];
			if (b < lo || b > hi)
				break;
			lo = 0x80;
			hi = 0xbf;
			k++;
		}
		if (len > 0 && k == len) {
			memcpy(q, p + i, len);
			q += len;
		} else {
			memcpy(q, "\xef\xbf\xbd", 3);
			q += 3;
		}
		i += k;
	}
	*q = '\0';
	return (o);
}

/* finish_reason maps the daemon's onto OpenAI's. */
static const char *
finish_reason(const char *f)
{
	return (strcmp(f, "eos") == 0 || strcmp(f, "stop") == 0 ? "stop" : f);
}

/* completion_doc builds a completion object (or an event's chunk). */
static cJSON *
completion_doc(struct hreq *h, const char *text, size_t n, const char *fin,
    bool usage)
{
	cJSON *o = cJSON_CreateObject(), *ch, *c;
	char *clean = utf8_clean(text, n);

	if (o == NULL || clean == NULL)
		goto fail;
	cJSON_AddStringToObject(o, "id", h->cid);
	cJSON_AddStringToObject(o, "object", "text_completion");
	cJSON_AddNumberToObject(o, "created", (double)h->created);
	cJSON_AddStringToObject(o, "model", h->model);
	ch = cJSON_AddArrayToObject(o, "choices");
	c = cJSON_CreateObject();
	if (ch == NULL || c == NULL || !cJSON_AddItemToArray(ch, c)) {
		cJSON_Delete(c);
		goto fail;
	}
	cJSON_AddStringToObject(c, "text", clean);
	cJSON_AddNumberToObject(c, "index", 0);
	cJSON_AddNullToObject(c, "logprobs");
	if (fin != NULL)
		cJSON_AddStringToObject(c, "finish_reason", finish_reason(fin));
	else
		cJSON_AddNullToObject(c, "finish_reason");
	if (usage) {
		cJSON *u = cJSON_AddObjectToObject(o, "usage");
		cJSON_AddNumberToObject(u, "prompt_tokens", (double)h->ntok_in);
		cJSON_AddNumberToObject(u, "completion_tokens",
		    (double)h->ntok_out);
		cJSON_AddNumberToObject(u, "total_tokens",
		    (double)(h->ntok_in + h->ntok_out));
	}
	free(clean);
	return (o);
fail:
	free(clean);
	cJSON_Delete(o);
	return (NULL);
}

/* write_raw writes the NUL-terminated s on the hijacked connection and
 * continues at step next. */
static void
write_raw(struct hreq *h, enum step next, char *s)
{
	nng_iov iov;

	free(h->wbuf);
	h->wbuf = s;
	iov.iov_buf = s;
	iov.iov_len = strlen(s);
	h->step = next;
	nng_aio_set_iov(h->aio, 1, &iov);
	nng_http_conn_write_all(h->conn, h->aio);
}

/* sse_chunk frames doc as "data: JSON\n\n" (doc NULL: [DONE]) in one HTTP
 * chunk, with the final empty chunk when last. */
static char *
sse_chunk(cJSON *doc, bool last)
{
	char *js = doc ? cJSON_PrintUnformatted(doc) : strdup("[DONE]"), *o;
	size_t n;

	if (js == NULL)
		return (NULL);
	n = strlen(js) + 8;
	if ((o = malloc(n + 64)) != NULL)
		snprintf(o, n + 64, "%zx\r\ndata: %s\n\n\r\n%s", n, js,
		    last ? "0\r\n\r\n" : "");
	free(js);
	return (o);
}

/* hijack takes the connection over for server-sent events. */
static void
hijack(struct hreq *h)
{
	nng_aio *a = hr_take_haio(h);

	if (a == NULL) {
		oai_cancel_gen(h);
		return;
	}
	nng_http_hijack(h->conn);
	h->hijacked = true;
	nng_aio_set_output(a, 0, NULL);
	nng_aio_finish(a, 0);
	write_raw(h, S_HEAD, strdup("HTTP/1.1 200 OK\r\n"
	    "Content-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
	    "Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n"));
}

void
oai_poll_done(struct hreq *h)
{
	Infini__V1__PollReply *r;
	char *nt;

	if (!hr_reply_or_fail(h, &infini__v1__poll_reply__descriptor,
	    (ProtobufCMessage **)&r))
		return;
	h->after = r->next;
	h->ntok_out += r->n_tokens;
	if (r->text.len > 0) {
		if ((nt = realloc(h->text, h->tlen + r->text.len + 1)) == NULL) {
			protobuf_c_message_free_unpacked(&r->base, NULL);
			hr_fail(h, 500, "internal", NULL, "out of memory");
			return;
		}
		h->text = nt;
		memcpy(h->text + h->tlen, r->text.data, r->text.len);
		h->tlen += r->text.len;
	}
	if (r->done) {
		h->gen_done = true;
		snprintf(h->finish, sizeof(h->finish), "%s", r->finish_reason);
	}
	protobuf_c_message_free_unpacked(&r->base, NULL);
	if (!h->sse) {
		if (h->gen_done)
			hr_json(h, 200, completion_doc(h, h->text ? h->text : "",
			    h->tlen, h->finish, true));
		else
			oai_poll_gen(h);
		return;
	}
	{
		/* New whole characters as one event; the rest next time. */
		size_t upto = h->gen_done ? h->tlen :
		    h->tsent + utf8_len(h->text + h->tsent, h->tlen - h->tsent);
		if (upto > h->tsent) {
			cJSON *doc = completion_doc(h, h->text + h->tsent,
			    upto - h->tsent, NULL, false);
			char *c = doc ? sse_chunk(doc, false) : NULL;
			cJSON_Delete(doc);
			h->tsent = upto;
			if (c == NULL) {
				oai_cancel_gen(h);
				return;
			}
			write_raw(h, S_CHUNK, c);
			return;
		}
	}
	if (h->gen_done)
		oai_sse_end(h);
	else
		oai_poll_gen(h);
}

/* sse_end sends the last event (finish reason, usage), [DONE] and the end
 * of the chunked body. */
void
oai_sse_end(struct hreq *h)
{
	cJSON *doc = completion_doc(h, "", 0, h->finish[0] ? h->finish : "stop",
	    true);
	char *a = doc ? sse_chunk(doc, false) : NULL, *b = sse_chunk(NULL, true);
	char *s = a && b ? malloc(strlen(a) + strlen(b) + 1) : NULL;

	cJSON_Delete(doc);
	if (s != NULL) {
		strcpy(s, a);
		strcat(s, b);
	}
	free(a);
	free(b);
	metrics_http(h->ep, 200, h->t0);
	if (s == NULL) {
		hr_free(h);
		return;
	}
	write_raw(h, S_END, s);
}

void
oai_generate_done(struct hreq *h)
{
	Infini__V1__GenerateReply *r;

	if (!hr_reply_or_fail(h, &infini__v1__generate_reply__descriptor,
	    (ProtobufCMessage **)&r))
		return;
	h->gen = r->generation_id;
	protobuf_c_message_free_unpacked(&r->base, NULL);
	if (h->sse)
		hijack(h);
	else
		oai_poll_gen(h);
}

void
oai_embeddings_begin(struct hreq *h)
{
	const cJSON *in, *v;
	double dim = 0;
	int hidden = eng_config(h->gw->d->eng)->hidden_size;

	if (!common_begin(h, emb_fields))
		return;
	in = cJSON_GetObjectItemCaseSensitive(h->json, "input");
	if (in == NULL || cJSON_IsNull(in)) {
		hr_fail(h, 400, "invalid_argument", "input", "'input' is "
		    "required");
		return;
	}
	h->ninput = count_inputs(in);
	if (h->ninput < 1 || h->ninput > MAX_INPUTS) {
		hr_fail(h, 400, "invalid_argument", "input", "1 to %d inputs",
		    MAX_INPUTS);
		return;
	}
	v = cJSON_GetObjectItemCaseSensitive(h->json, "encoding_format");
	if (v != NULL && !cJSON_IsNull(v)) {
		if (!cJSON_IsString(v) || (strcmp(v->valuestring, "float") != 0 &&
		    strcmp(v->valuestring, "base64") != 0)) {
			hr_fail(h, 400, "invalid_argument", "encoding_format",
			    "'encoding_format' is \"float\" or \"base64\"");
			return;
		}
		h->b64 = strcmp(v->valuestring, "base64") == 0;
	}
	if (!get_number(h, "dimensions", 1, 1e9, true, &dim))
		return;
	if (dim != 0 && (int)dim != hidden) {
		hr_fail(h, 400, "invalid_argument", "dimensions", "the model's "
		    "embeddings have %d dimensions", hidden);
		return;
	}
	if ((h->data = cJSON_CreateArray()) == NULL) {
		hr_fail(h, 500, "internal", NULL, "out of memory");
		return;
	}
	open_stream(h);
}

/* push_next pushes input iinput into the stream, asking for its mean. */
static void
push_next(struct hreq *h)
{
	Infini__V1__PushRequest q = INFINI__V1__PUSH_REQUEST__INIT;
	Infini__V1__Tokens tk = INFINI__V1__TOKENS__INIT;
	const cJSON *in = cJSON_GetObjectItemCaseSensitive(h->json, "input");
	const char *text;

	if (!one_input(h, in, h->iinput, "input", &text, &tk))
		return;
	q.stream_id = h->stream;
	if (text != NULL) {
		q.input_case = INFINI__V1__PUSH_REQUEST__INPUT_TEXT;
		q.text = (char *)text;
		h->ntok_in += strlen(text);
	} else {
		q.input_case = INFINI__V1__PUSH_REQUEST__INPUT_TOKENS;
		q.tokens = &tk;
		h->ntok_in += tk.n_ids;
	}
	q.output = INFINI__V1__OUTPUT__OUTPUT_MEAN;
	hr_call(h, S_PUSH, M(PUSH), &q.base);
	free(tk.ids);
}

void
oai_push_done(struct hreq *h)
{
	Infini__V1__PushReply *r;
	cJSON *e, *o;

	if (!hr_reply_or_fail(h, &infini__v1__push_reply__descriptor,
	    (ProtobufCMessage **)&r))
		return;
	e = cJSON_CreateObject();
	if (e == NULL || !cJSON_AddItemToArray(h->data, e)) {
		cJSON_Delete(e);
		goto nomem;
	}
	cJSON_AddStringToObject(e, "object", "embedding");
	cJSON_AddNumberToObject(e, "index", h->iinput);
	if (h->b64) {
		/* little-endian float32, as OpenAI's base64 encoding */
		char *b = pbj_base64((const uint8_t *)r->data,
		    r->n_data * sizeof(float));
		if (b == NULL || cJSON_AddStringToObject(e, "embedding", b) == NULL) {
			free(b);
			goto nomem;
		}
		free(b);
	} else {
		cJSON *arr = cJSON_AddArrayToObject(e, "embedding");
		for (size_t i = 0; arr != NULL && i < r->n_data; i++)
			if (!cJSON_AddItemToArray(arr, pbj_float(r->data[i])))
				arr = NULL;
		if (arr == NULL)
			goto nomem;
	}
	protobuf_c_message_free_unpacked(&r->base, NULL);
	if (++h->iinput < h->ninput) {
		push_next(h);
		return;
	}
	if ((o = cJSON_CreateObject()) == NULL) {
		hr_fail(h, 500, "internal", NULL, "out of memory");
		return;
	}
	cJSON_AddStringToObject(o, "object", "list");
	cJSON_AddItemToObject(o, "data", h->data);
	h->data = NULL;
	cJSON_AddStringToObject(o, "model", h->model);
	e = cJSON_AddObjectToObject(o, "usage");
	cJSON_AddNumberToObject(e, "prompt_tokens", (double)h->ntok_in);
	cJSON_AddNumberToObject(e, "total_tokens", (double)h->ntok_in);
	hr_json(h, 200, o);
	return;
nomem:
	protobuf_c_message_free_unpacked(&r->base, NULL);
	hr_fail(h, 500, "internal", NULL, "out of memory");
}

void
oai_open_done(struct hreq *h)
{
	ProtobufCMessage *r;

	if (!hr_reply_or_fail(h, &infini__v1__open_stream_reply__descriptor, &r))
		return;
	protobuf_c_message_free_unpacked(r, NULL);
	if (h->kind == K_COMPLETIONS)
		generate(h);
	else
		push_next(h);
}
