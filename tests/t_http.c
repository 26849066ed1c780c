/*
 * t_http.c - infinid's HTTP gateway (http_listen) driven by real clients:
 * Debian's curl, the openai npm package (tests/http-client/client.mjs) and
 * python3-prometheus-client's text parser (tests/prom_scrape.py).  The
 * daemon runs as a child process (daemon_proc.h) on a fixture model, with
 * an NNG socket beside the HTTP port so every answer over HTTP is checked
 * against the same call over NNG through libinfini:
 *
 *  1. a completion (greedy) over HTTP, plain and as server-sent events,
 *     gives the tokens NNG's Generate gives from the same prompt on a fresh
 *     stream; the text is those bytes as Python's UTF-8 decoder (errors=
 *     "replace") reads them, the events end with a finish reason and
 *     [DONE];
 *  2. embeddings over HTTP equal NNG's Push(mean) of the same inputs, in
 *     order, on a fresh stream;
 *  3. the openai client streams a completion and gets (base64) embeddings
 *     with the same values, and a bad token gives it a 401
 *     authentication_error;
 *  4. errors come in OpenAI's shape with the right status: bad JSON,
 *     unknown fields, an oversize body, no token, another user's stream,
 *     a missing stream or endpoint;
 *  5. a client that leaves in the middle of a completion, streamed or not,
 *     cancels its generation;
 *  6. a scrape of /metrics parses, and its counters move by exactly the
 *     calls made between two scrapes (requests, errors, latency counts,
 *     tokens in and out, snapshot writes and bytes);
 *  7. GET /v1/snapshots and DELETE /v1/snapshots/{name} answer as
 *     ListSnapshots and DeleteSnapshot over NNG, with the owner's rule.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "daemon_proc.h"
#include "infini.h"

#define TOKEN_A "tok-a-0123456789abcdef"   /* this user */
#define TOKEN_B "tok-b-0123456789abcdef"   /* another user */
#define NGEN 12

static char dir[64], model[128], state[128], tokfile[160], base[96];
static struct dproc dp;
static infini_client *nc;
static int hidden;

/* ------------------------------------------------------------ helpers */

/* curl sends a request (body NULL: none) and returns the status; *out gets
 * the body.  hdr: an extra header line or NULL.  token NULL: none. */
static int
curl(const char *verb, const char *path, const char *token, const char *hdr,
    const char *body, char **out)
{
	char cmd[1024], bf[200], auth[128] = "", eh[256] = "", *o = NULL;
	int rv, status = -1;
	char *p;

	snprintf(bf, sizeof(bf), "%s/body.json", dir);
	if (body != NULL && fx_write_file(bf, body, strlen(body)) != 0)
		return (-1);
	if (token != NULL)
		snprintf(auth, sizeof(auth), "-H 'Authorization: Bearer %s'", token);
	if (hdr != NULL)
		snprintf(eh, sizeof(eh), "-H '%s'", hdr);
	snprintf(cmd, sizeof(cmd), "curl -sS -N -X %s %s %s %s%s -w "
	    "'\\n%%{http_code}' '%s%s'", verb, auth, eh,
	    body ? "-H 'Content-Type: application/json' --data-binary @" : "",
	    body ? bf : "", base, path);
	rv = fx_run(cmd, &o);
	if (rv != 0 || o == NULL || (p = strrchr(o, '\n')) == NULL) {
		free(o);
		*out = NULL;
		return (-1);
	}
	status = atoi(p + 1);
	*p = '\0';
	*out = o;
	return (status);
}

/* curl_json: curl, with the body parsed (NULL when it is not JSON). */
static int
curl_json(const char *verb, const char *path, const char *token,
    const char *hdr, const char *body, cJSON **doc)
{
	char *o;
	int st = curl(verb, path, token, hdr, body, &o);

	*doc = o ? cJSON_Parse(o) : NULL;
	free(o);
	return (st);
}

/* is_openai_error: {"error":{"message":string,"type":string,"param",
 * "code"}} with the type expected. */
static bool
is_openai_error(const cJSON *doc, const char *type)
{
	const cJSON *e = cJSON_GetObjectItem(doc, "error");
	const cJSON *t = cJSON_GetObjectItem(e, "type");

	return (cJSON_IsObject(e) &&
	    cJSON_IsString(cJSON_GetObjectItem(e, "message")) &&
	    cJSON_HasObjectItem(e, "param") && cJSON_HasObjectItem(e, "code") &&
	    cJSON_IsString(t) && strcmp(t->valuestring, type) == 0);
}

/* py_decode: bytes as Python reads them with errors="replace" (NUL, which
 * the gateway cannot carry in a C string, also as U+FFFD).  malloc'd. */
static char *
py_decode(const char *bytes, size_t n)
{
	char path[200], cmd[512], *o = NULL;
	cJSON *s;
	char *r = NULL;

	snprintf(path, sizeof(path), "%s/bytes.bin", dir);
	if (fx_write_file(path, bytes, n) != 0)
		return (NULL);
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 -c 'import json,sys; "
	    "b=open(sys.argv[1],\"rb\").read(); print(json.dumps(b.decode("
	    "\"utf-8\",\"replace\").replace(\"\\0\",\"\\ufffd\")))' %s", path);
	if (fx_run(cmd, &o) == 0 && (s = cJSON_Parse(o)) != NULL) {
		if (cJSON_IsString(s))
			r = strdup(s->valuestring);
		cJSON_Delete(s);
	}
	free(o);
	return (r);
}

/* A token hands out whole UTF-8 characters (U+FFFD, 3 bytes, for bytes
 * that never form one), so NGEN tokens may carry up to 4 bytes each. */
struct gen_out {
	int32_t toks[NGEN + 1];
	int n;
	char bytes[4 * NGEN + 1];
	size_t nb;
};

static int
on_tok(void *arg, int32_t t, const char *b, size_t len)
{
	struct gen_out *g = arg;

	if (t < 0)
		return (0);
	if (g->n < NGEN)
		g->toks[g->n++] = t;
	if (len > 0 && g->nb + len <= 4 * NGEN) {
		memcpy(g->bytes + g->nb, b, len);
		g->nb += len;
	}
	return (0);
}

/* nng_greedy generates NGEN tokens greedily from prompt on a fresh NNG
 * stream id. */
static int
nng_greedy(const char *id, const char *prompt, int max, struct gen_out *g)
{
	struct infini_sampling s = { 0 };
	char fin[16];

	memset(g, 0, sizeof(*g));
	if (infini_open(nc, id, false, NULL, NULL) != 0)
		return (-1);
	return (infini_generate(nc, id, &(struct infini_gen_opts){
	    .text = prompt, .max_tokens = (uint32_t)max, .sampling = &s,
	    .on_token = on_tok, .arg = g }, fin));
}

/* nng_means pushes each input into a fresh stream id and keeps the means. */
static int
nng_means(const char *id, const char *const *in, int n, float *out)
{
	if (infini_open(nc, id, false, NULL, NULL) != 0)
		return (-1);
	for (int i = 0; i < n; i++) {
		struct infini_result r;
		if (infini_push_text(nc, id, in[i], strlen(in[i]), INFINI_OUT_MEAN,
		    &r) != 0)
			return (-1);
		memcpy(out + (size_t)i * hidden, r.data, hidden * sizeof(float));
		infini_result_free(&r);
	}
	return (0);
}

/* same_vec: a JSON array of numbers equal (as floats) to want[0..n). */
static bool
same_vec(const cJSON *arr, const float *want, int n)
{
	int i = 0;
	const cJSON *x;

	if (cJSON_GetArraySize(arr) != n)
		return (false);
	cJSON_ArrayForEach(x, arr)
		if (!cJSON_IsNumber(x) || (float)x->valuedouble != want[i++])
			return (false);
	return (true);
}

/* ------------------------------------------------------------ tests */

static void
test_completion(void)
{
	struct gen_out ref;
	cJSON *doc;
	const cJSON *ch, *u;
	char *want, *o, *line, *save = NULL;
	size_t got_len = 0;
	char got[4096] = "", body[256];
	int st, events = 0, done = 0;
	bool finish_ok = false, after_done = false;

	int rv = nng_greedy("ref-c", "Hello, ", NGEN, &ref);

	ok(rv == 0 && ref.n == NGEN, "NNG: %d greedy tokens from a fresh "
	    "stream", ref.n);
	want = py_decode(ref.bytes, ref.nb);

	snprintf(body, sizeof(body), "{\"model\":\"m\",\"prompt\":\"Hello, \","
	    "\"max_tokens\":%d,\"temperature\":0}", NGEN);
	st = curl_json("POST", "/v1/completions", TOKEN_A,
	    "X-Infini-Stream: h-c1", body, &doc);
	ch = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "choices"), 0);
	u = cJSON_GetObjectItem(doc, "usage");
	ok(st == 200 && want != NULL && cJSON_IsString(cJSON_GetObjectItem(ch,
	    "text")) && strcmp(cJSON_GetObjectItem(ch, "text")->valuestring,
	    want) == 0, "curl: a completion (status %d) is NNG's tokens as "
	    "UTF-8 text", st);
	ok(cJSON_GetObjectItem(u, "completion_tokens") &&
	    cJSON_GetObjectItem(u, "completion_tokens")->valueint == NGEN &&
	    cJSON_GetObjectItem(u, "prompt_tokens")->valueint == 7 &&
	    strcmp(cJSON_GetObjectItem(ch, "finish_reason")->valuestring,
	    "length") == 0 && strcmp(cJSON_GetObjectItem(doc, "object")->
	    valuestring, "text_completion") == 0,
	    "the completion has OpenAI's shape, usage 7 + %d, finish length",
	    NGEN);
	cJSON_Delete(doc);

	/* The same, streamed: "data: {...}" events, then "data: [DONE]". */
	snprintf(body, sizeof(body), "{\"prompt\":\"Hello, \",\"max_tokens\":%d,"
	    "\"temperature\":0,\"stream\":true,\"user\":\"stream:h-c2\"}", NGEN);
	st = curl("POST", "/v1/completions", TOKEN_A, NULL, body, &o);
	for (line = o ? strtok_r(o, "\n", &save) : NULL; line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		cJSON *ev;
		if (strncmp(line, "data: ", 6) != 0)
			continue;
		if (done)
			after_done = true;
		if (strcmp(line + 6, "[DONE]") == 0) {
			done++;
			continue;
		}
		events++;
		if ((ev = cJSON_Parse(line + 6)) == NULL)
			continue;
		ch = cJSON_GetArrayItem(cJSON_GetObjectItem(ev, "choices"), 0);
		if (cJSON_IsString(cJSON_GetObjectItem(ch, "text"))) {
			const char *t = cJSON_GetObjectItem(ch, "text")->valuestring;
			if (got_len + strlen(t) < sizeof(got)) {
				strcat(got, t);
				got_len += strlen(t);
			}
		}
		if (cJSON_IsString(cJSON_GetObjectItem(ch, "finish_reason")))
			finish_ok = strcmp(cJSON_GetObjectItem(ch,
			    "finish_reason")->valuestring, "length") == 0;
		cJSON_Delete(ev);
	}
	ok(st == 200 && events >= 2 && done == 1 && !after_done && finish_ok,
	    "curl: a streamed completion gives %d events, a finish reason and "
	    "one final [DONE]", events);
	ok(want != NULL && strcmp(got, want) == 0, "the events' text is NNG's "
	    "tokens as UTF-8 text");
	free(o);
	free(want);
}

static void
test_embeddings(void)
{
	static const char *const in[] = { "the cat", "sat on", "the mat" };
	float *ref = calloc(3 * (size_t)hidden, sizeof(float));
	const cJSON *data, *e;
	cJSON *doc;
	int st, i = 0;
	bool same = true;

	ok(ref && nng_means("ref-e", in, 3, ref) == 0,
	    "NNG: three pushes with their means");
	st = curl_json("POST", "/v1/embeddings", TOKEN_A, "X-Infini-Stream: h-e1",
	    "{\"model\":\"m\",\"input\":[\"the cat\",\"sat on\",\"the mat\"]}",
	    &doc);
	data = cJSON_GetObjectItem(doc, "data");
	ok(st == 200 && cJSON_GetArraySize(data) == 3 &&
	    strcmp(cJSON_GetObjectItem(doc, "object")->valuestring, "list") == 0,
	    "curl: embeddings of three inputs (status %d)", st);
	cJSON_ArrayForEach(e, data) {
		same = same && cJSON_GetObjectItem(e, "index")->valueint == i &&
		    same_vec(cJSON_GetObjectItem(e, "embedding"),
		    ref + (size_t)i * hidden, hidden);
		i++;
	}
	ok(same && i == 3, "each is NNG's mean of that input after the ones "
	    "before it, %d floats exactly", hidden);
	cJSON_Delete(doc);
	free(ref);
}

static void
test_openai_client(void)
{
	static const char *const in[] = { "abc", "xyz" };
	float *ref = calloc(2 * (size_t)hidden, sizeof(float));
	struct gen_out g;
	char cmd[512], *o = NULL, *want;
	const cJSON *embs, *e;
	cJSON *doc = NULL;
	int rv, i = 0;
	bool same = true;

	if (access(HTTP_CLIENT_DIR "/node_modules/openai/package.json",
	    R_OK) != 0) {
		/* A must of the suite, like t_tok's oracle: fail, not skip. */
		ok(0, "the openai npm package is installed (npm ci in "
		    "tests/http-client; tools/setup-debian.sh does)");
		tap_skip(4, "no openai npm package");
		free(ref);
		return;
	}
	ok(nng_greedy("ref-o", "Hello", 6, &g) == 0 &&
	    nng_means("ref-oe", in, 2, ref) == 0, "NNG: the references");
	snprintf(cmd, sizeof(cmd), "cd %s && node client.mjs %s/v1 %s h-o1",
	    HTTP_CLIENT_DIR, base, TOKEN_A);
	rv = fx_run(cmd, &o);
	doc = o ? cJSON_Parse(o) : NULL;
	want = py_decode(g.bytes, g.nb);
	ok(rv == 0 && doc != NULL && want != NULL &&
	    cJSON_GetObjectItem(doc, "chunks")->valueint >= 2 &&
	    strcmp(cJSON_GetObjectItem(doc, "text")->valuestring, want) == 0 &&
	    strcmp(cJSON_GetObjectItem(doc, "finish")->valuestring,
	    "length") == 0, "openai npm: a streamed completion is NNG's tokens "
	    "(%d chunks)", doc ? cJSON_GetObjectItem(doc, "chunks")->valueint : 0);
	embs = cJSON_GetObjectItem(doc, "embeddings");
	cJSON_ArrayForEach(e, embs) {
		same = same && i < 2 && same_vec(e, ref + (size_t)i * hidden,
		    hidden);
		i++;
	}
	ok(same && i == 2, "openai npm: base64 embeddings equal NNG's means");
	ok(doc && cJSON_GetArraySize(cJSON_GetObjectItem(doc, "models")) == 1 &&
	    strcmp(cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "models"), 0)->
	    valuestring, model) == 0, "openai npm: the model list is the "
	    "daemon's model");
	ok(doc && cJSON_GetObjectItem(doc, "bad_token_status") &&
	    cJSON_GetObjectItem(doc, "bad_token_status")->valueint == 401 &&
	    strcmp(cJSON_GetObjectItem(doc, "bad_token_type")->valuestring,
	    "authentication_error") == 0,
	    "openai npm: a wrong key is a 401 authentication_error");
	cJSON_Delete(doc);
	free(o);
	free(want);
	free(ref);
}

static void
test_errors(void)
{
	char big[200], cmd[512], *o = NULL;
	cJSON *doc;
	const cJSON *e;
	int st;
	FILE *f;

	st = curl_json("POST", "/v1/completions", TOKEN_A, "X-Infini-Stream: x",
	    "{\"prompt\": \"a\",", &doc);
	ok(st == 400 && is_openai_error(doc, "invalid_request_error"),
	    "bad JSON: 400 invalid_request_error (%d)", st);
	cJSON_Delete(doc);
	st = curl_json("POST", "/v1/completions", TOKEN_A, "X-Infini-Stream: x",
	    "{\"prompt\":\"a\",\"max_tokenz\":3}", &doc);
	e = cJSON_GetObjectItem(doc, "error");
	ok(st == 400 && is_openai_error(doc, "invalid_request_error") &&
	    cJSON_IsString(cJSON_GetObjectItem(e, "param")) &&
	    strcmp(cJSON_GetObjectItem(e, "param")->valuestring,
	    "max_tokenz") == 0, "an unknown field: 400 naming it in param");
	cJSON_Delete(doc);
	st = curl_json("POST", "/v1/streams/h-c1/push", TOKEN_A, NULL,
	    "{\"text\":\"a\",\"outptu\":\"mean\"}", &doc);
	ok(st == 400 && is_openai_error(doc, "invalid_request_error"),
	    "an unknown field of a JSON method: 400");
	cJSON_Delete(doc);

	/* 2 MiB against a 1 MiB http_max_body_bytes. */
	snprintf(big, sizeof(big), "%s/big.json", dir);
	if ((f = fopen(big, "w")) != NULL) {
		fputs("{\"input\":\"", f);
		for (int i = 0; i < 2 << 20; i++)
			fputc('a', f);
		fputs("\"}", f);
		fclose(f);
	}
	snprintf(cmd, sizeof(cmd), "curl -sS -H 'Authorization: Bearer %s' "
	    "-H 'X-Infini-Stream: x' --data-binary @%s -w '\\n%%{http_code}' "
	    "%s/v1/embeddings", TOKEN_A, big, base);
	st = fx_run(cmd, &o);
	{
		char *nl = o ? strrchr(o, '\n') : NULL;
		int code = nl ? atoi(nl + 1) : 0;
		if (nl)
			*nl = '\0';
		doc = o ? cJSON_Parse(o) : NULL;
		ok(st == 0 && code == 413 && is_openai_error(doc,
		    "invalid_request_error"), "an oversize body: 413 (%d)", code);
		cJSON_Delete(doc);
		free(o);
	}

	st = curl_json("GET", "/v1/health", NULL, NULL, NULL, &doc);
	ok(st == 401 && is_openai_error(doc, "authentication_error"),
	    "no token: 401 authentication_error");
	cJSON_Delete(doc);
	st = curl_json("POST", "/v1/streams/h-c1/push", TOKEN_B, NULL,
	    "{\"text\":\"a\"}", &doc);
	ok(st == 403 && is_openai_error(doc, "permission_error"),
	    "another user's stream: 403 permission_error (%d)", st);
	cJSON_Delete(doc);
	st = curl_json("POST", "/v1/completions", TOKEN_B,
	    "X-Infini-Stream: h-c1", "{\"prompt\":\"a\"}", &doc);
	/* The gateway opens the stream it is named: another user's ID is
	 * "taken", as OpenStream says over the socket (protocol.md §4). */
	const cJSON *msg = cJSON_GetObjectItem(cJSON_GetObjectItem(doc,
	    "error"), "message");
	ok(st == 409 && is_openai_error(doc, "invalid_request_error") &&
	    cJSON_IsString(msg) && strstr(msg->valuestring, "is taken") != NULL,
	    "a completion on another user's stream: 409, the ID is taken (%d)",
	    st);
	cJSON_Delete(doc);
	st = curl_json("POST", "/v1/streams/nope/push", TOKEN_A, NULL,
	    "{\"text\":\"a\"}", &doc);
	ok(st == 404 && is_openai_error(doc, "not_found_error"),
	    "a missing stream: 404");
	cJSON_Delete(doc);
	st = curl_json("GET", "/v1/nothing", TOKEN_A, NULL, NULL, &doc);
	ok(st == 404 && is_openai_error(doc, "not_found_error"),
	    "a missing endpoint: 404");
	cJSON_Delete(doc);
	st = curl_json("POST", "/v1/streams/h-c1/push", TOKEN_A, NULL,
	    "{\"tokens\":{\"ids\":[1,2,300]}}", &doc);
	ok(st == 400 && is_openai_error(doc, "invalid_request_error"),
	    "a token outside the vocabulary: 400 from the daemon's own check");
	cJSON_Delete(doc);
	st = curl_json("GET", "/v1/health", TOKEN_A, NULL, NULL, &doc);
	ok(st == 200 && cJSON_GetObjectItem(doc, "hidden_size") &&
	    cJSON_GetObjectItem(doc, "hidden_size")->valueint == hidden,
	    "and the daemon still serves: health over HTTP");
	cJSON_Delete(doc);
}

static cJSON *scrape(void);
static double val(const cJSON *m, const char *key);

/* gen_state reads stream id's position and whether it is generating. */
static int
gen_state(const char *id, uint64_t *pos, bool *generating)
{
	struct infini_stream_info *v;
	size_t n;
	int found = -1;

	if (infini_list(nc, &v, &n) != 0)
		return (-1);
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].id, id) == 0) {
			*pos = v[i].position;
			*generating = v[i].generating;
			found = 0;
		}
	free(v);
	return (found);
}

/* A client that leaves in the middle of a long completion, streamed or
 * not, cancels the generation: curl is killed as soon as the stream is
 * seen generating, and the gateway's Cancel shows in the metrics. */
static void
test_client_leaves(void)
{
	static const char *const ids[] = { "h-leave-sse", "h-leave-plain" };

	for (int k = 0; k < 2; k++) {
		const char *key = "infinid_rpc_requests_total{code=OK,method=Cancel}";
		const char *left = "infinid_http_requests_total{endpoint=completions,"
		    "status=499}";
		char auth[128], hdr[128], url[160];
		uint64_t pos = 0;
		bool gen = false;
		int64_t end;
		cJSON *a = scrape(), *b;
		pid_t pid;

		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", TOKEN_A);
		snprintf(hdr, sizeof(hdr), "X-Infini-Stream: %s", ids[k]);
		snprintf(url, sizeof(url), "%s/v1/completions", base);
		if ((pid = fork()) == 0) {
			int fd = open("/dev/null", O_WRONLY);
			dup2(fd, 1);
			dup2(fd, 2);
			execlp("curl", "curl", "-sS", "-N", "-H", auth, "-H", hdr,
			    "-d", k == 0 ? "{\"prompt\":\"a\",\"max_tokens\":4096,"
			    "\"temperature\":0,\"stream\":true}" : "{\"prompt\":"
			    "\"a\",\"max_tokens\":4096,\"temperature\":0}", url,
			    (char *)NULL);
			_exit(127);
		}
		end = fx_now_ms() + 10000;
		while (fx_now_ms() < end && (gen_state(ids[k], &pos, &gen) != 0 ||
		    !gen))
			usleep(2000);
		if (pid > 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
		}
		end = fx_now_ms() + 10000;
		while (fx_now_ms() < end && gen_state(ids[k], &pos, &gen) == 0 &&
		    gen)
			usleep(20000);
		b = scrape();
		/* The gateway sends Cancel only for a generation still running
		 * when its client left. */
		ok(!gen && pos < 4096 && a != NULL && b != NULL &&
		    val(b, key) - val(a, key) == 1 && val(b, left) - val(a, left) == 1,
		    "%s completion: a client gone in the middle cancels its "
		    "generation (Cancel +%g, HTTP 499 +%g, stream at %llu of "
		    "4097)", k == 0 ? "a streamed" : "a plain",
		    a && b ? val(b, key) - val(a, key) : -1,
		    a && b ? val(b, left) - val(a, left) : -1,
		    (unsigned long long)pos);
		cJSON_Delete(a);
		cJSON_Delete(b);
	}
}

/* scrape: /metrics through the Prometheus parser; NULL on failure. */
static cJSON *
scrape(void)
{
	char cmd[512], *o = NULL;
	cJSON *doc = NULL;

	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s %s/metrics %s",
	    PROM_SCRAPE, base, TOKEN_A);
	if (fx_run(cmd, &o) == 0)
		doc = cJSON_Parse(o);
	free(o);
	return (doc);
}

static double
val(const cJSON *m, const char *key)
{
	const cJSON *v = cJSON_GetObjectItem(m, key);
	return (cJSON_IsNumber(v) ? v->valuedouble : 0);
}

static void
test_metrics(void)
{
	cJSON *a, *b, *doc;
	const char *push = "infinid_rpc_requests_total{code=OK,method=Push}";
	const char *bad = "infinid_rpc_errors_total{code=NOT_FOUND,method=Push}";
	const char *emb = "infinid_http_requests_total{endpoint=embeddings,"
	    "status=200}";
	const char *lat = "infinid_rpc_duration_seconds_count{method=Push}";
	struct infini_result r;
	double snap_bytes;
	int ok_all = 1;

	a = scrape();
	ok(a != NULL && strcmp(cJSON_GetObjectItem(cJSON_GetObjectItem(a,
	    "_families"), "infinid_rpc_duration_seconds")->valuestring,
	    "histogram") == 0, "/metrics parses with prometheus_client, "
	    "latency as a histogram");
	/* Between two scrapes: 3 pushes over NNG, 1 over HTTP, 1 embeddings
	 * request of 2 inputs (2 pushes), 1 push to a missing stream. */
	for (int i = 0; i < 3; i++) {
		ok_all &= infini_push_text(nc, "ref-e", "abcd", 4, INFINI_OUT_NONE,
		    &r) == 0;
		infini_result_free(&r);
	}
	ok_all &= curl_json("POST", "/v1/streams/ref-e/push", TOKEN_A, NULL,
	    "{\"text\":\"ab\"}", &doc) == 200;
	cJSON_Delete(doc);
	ok_all &= curl_json("POST", "/v1/embeddings", TOKEN_A,
	    "X-Infini-Stream: h-m", "{\"input\":[[1,2,3],[4,5]]}", &doc) == 200;
	cJSON_Delete(doc);
	ok_all &= curl_json("POST", "/v1/streams/nope/push", TOKEN_A, NULL,
	    "{\"text\":\"ab\"}", &doc) == 404;
	cJSON_Delete(doc);
	ok_all &= curl_json("POST", "/v1/streams/ref-e/snapshot", TOKEN_A, NULL,
	    "{\"name\":\"m1\"}", &doc) == 200;
	snap_bytes = doc && cJSON_GetObjectItem(doc, "bytes") ?
	    cJSON_GetObjectItem(doc, "bytes")->valuedouble : -1;
	cJSON_Delete(doc);
	b = scrape();
	ok(ok_all && b != NULL && val(b, push) - val(a, push) == 6 &&
	    val(b, bad) - val(a, bad) == 1 && val(b, emb) - val(a, emb) == 1 &&
	    val(b, lat) - val(a, lat) == 7,
	    "Push OK +%g (6), Push NOT_FOUND +%g (1), embeddings 200 +%g (1), "
	    "Push latency count +%g (7)", b ? val(b, push) - val(a, push) : -1,
	    b ? val(b, bad) - val(a, bad) : -1, b ? val(b, emb) - val(a, emb) : -1,
	    b ? val(b, lat) - val(a, lat) : -1);
	ok(b && val(b, "infinid_tokens_in_total{}") -
	    val(a, "infinid_tokens_in_total{}") == 3 * 4 + 2 + 5 &&
	    val(b, "infinid_device_busy_seconds_total{}") >
	    val(a, "infinid_device_busy_seconds_total{}") &&
	    val(b, "infinid_streams{state=resident}") +
	    val(b, "infinid_streams{state=spilled}") >= 8,
	    "tokens in +%g (19), device busy time grew, streams counted",
	    b ? val(b, "infinid_tokens_in_total{}") -
	    val(a, "infinid_tokens_in_total{}") : -1);
	ok(b && val(b, "infinid_snapshot_writes_total{}") -
	    val(a, "infinid_snapshot_writes_total{}") == 1 &&
	    snap_bytes > 0 && val(b, "infinid_snapshot_bytes_total{}") -
	    val(a, "infinid_snapshot_bytes_total{}") == snap_bytes,
	    "a Snapshot of %g bytes: snapshot writes +1, bytes +%g", snap_bytes,
	    b ? val(b, "infinid_snapshot_bytes_total{}") -
	    val(a, "infinid_snapshot_bytes_total{}") : -1);
	/* A completion of 5 tokens between two more scrapes. */
	ok_all = curl_json("POST", "/v1/completions", TOKEN_A,
	    "X-Infini-Stream: h-m2", "{\"prompt\":\"ab\",\"max_tokens\":5,"
	    "\"temperature\":0}", &doc) == 200;
	{
		const cJSON *u = cJSON_GetObjectItem(doc, "usage");
		const cJSON *ct = cJSON_GetObjectItem(u, "completion_tokens");
		ok_all &= cJSON_IsNumber(ct) && ct->valueint == 5;
	}
	cJSON_Delete(doc);
	cJSON_Delete(a);
	a = scrape();
	ok(ok_all && a && b && val(a, "infinid_tokens_out_total{}") -
	    val(b, "infinid_tokens_out_total{}") == 5,
	    "a completion of 5 tokens: tokens out +%g (5)", a && b ?
	    val(a, "infinid_tokens_out_total{}") -
	    val(b, "infinid_tokens_out_total{}") : -1);
	cJSON_Delete(a);
	cJSON_Delete(b);
}

/* snap_listed: is name in the JSON ListSnapshotsReply doc, with owner uid
 * and the given bytes? */
static bool
snap_listed(const cJSON *doc, const char *name, unsigned uid, double bytes)
{
	const cJSON *e;

	cJSON_ArrayForEach(e, cJSON_GetObjectItem(doc, "snapshots")) {
		const cJSON *n = cJSON_GetObjectItem(e, "name");
		if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0)
			return (val(e, "owner_uid") == uid &&
			    val(e, "bytes") == bytes);
	}
	return (false);
}

/* fails_as: the status of a bodiless request, or -1 when its body is not
 * an OpenAI error of the given type. */
static int
fails_as(const char *verb, const char *path, const char *token, int status,
    const char *type)
{
	cJSON *doc;
	int st = curl_json(verb, path, token, NULL, NULL, &doc);

	if (st == status && !is_openai_error(doc, type))
		st = -1;
	cJSON_Delete(doc);
	return (st);
}

/* nng_snap_bytes: the size ListSnapshots over NNG gives snapshot name,
 * -1 when it is not listed. */
static double
nng_snap_bytes(const char *name)
{
	struct infini_snapshot_info *v = NULL;
	double bytes = -1;
	size_t n = 0;

	if (infini_list_snapshots(nc, &v, &n) == 0)
		for (size_t i = 0; i < n; i++)
			if (strcmp(v[i].name, name) == 0)
				bytes = (double)v[i].bytes;
	free(v);
	return (bytes);
}

/* The named snapshot m1 that test_metrics wrote, over HTTP and NNG. */
static void
test_snapshots(void)
{
	double bytes = nng_snap_bytes("m1");
	cJSON *doc;
	int st;

	st = curl_json("GET", "/v1/snapshots", TOKEN_A, NULL, NULL, &doc);
	ok(st == 200 && bytes > 0 && snap_listed(doc, "m1", getuid(), bytes),
	    "GET /v1/snapshots lists m1 with its owner and the %g bytes "
	    "ListSnapshots gives (%d)", bytes, st);
	cJSON_Delete(doc);
	st = curl_json("GET", "/v1/snapshots", TOKEN_B, NULL, NULL, &doc);
	ok(st == 200 && cJSON_IsArray(cJSON_GetObjectItem(doc, "snapshots")) &&
	    !snap_listed(doc, "m1", getuid(), bytes) &&
	    cJSON_GetArraySize(cJSON_GetObjectItem(doc, "snapshots")) == 0,
	    "another user's list does not show it");
	cJSON_Delete(doc);
	st = fails_as("DELETE", "/v1/snapshots/m1", TOKEN_B, 403,
	    "permission_error");
	ok(st == 403, "another user's DELETE /v1/snapshots/m1: 403 (%d)", st);
	st = curl_json("DELETE", "/v1/snapshots/m1", TOKEN_A, NULL, NULL, &doc);
	ok(st == 200 && nng_snap_bytes("m1") < 0, "the owner's DELETE: 200, and "
	    "ListSnapshots over NNG no longer has it (%d)", st);
	cJSON_Delete(doc);
	st = fails_as("DELETE", "/v1/snapshots/m1", TOKEN_A, 404,
	    "not_found_error");
	ok(st == 404, "deleting it again: 404 (%d)", st);
	st = fails_as("DELETE", "/v1/snapshots/.m1", TOKEN_A, 400,
	    "invalid_request_error");
	ok(st == 400, "a name that is not a snapshot name: 400 (%d)", st);
}

int
main(void)
{
	char listen[64], toks[256];
	const char *extra[] = { "--http-listen", listen, "--http-tokens-file",
	    tokfile, "--http-max-body-bytes", "1048576", NULL };
	struct infini_health hh;
	struct fx_opts o;
	char *v = NULL;

	if (fx_run("curl --version", &v) != 0) {
		free(v);
		tap_plan_skip_all("no curl (tools/setup-debian.sh installs it)");
		return (tap_done());
	}
	free(v);
	tap_plan(40);
	signal(SIGPIPE, SIG_IGN);
	setenv("INFINI_VALIDATION", "1", 0);
	if (fx_tmpdir(dir, sizeof(dir)) != 0)
		return (1);
	snprintf(model, sizeof(model), "%s/model", dir);
	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(tokfile, sizeof(tokfile), "%s/tokens", dir);
	mkdir(state, 0700);
	snprintf(toks, sizeof(toks), "# token user\n%s %u\n%s %u\n", TOKEN_A,
	    (unsigned)getuid(), TOKEN_B, (unsigned)getuid() + 1000);
	fx_write_file(tokfile, toks, strlen(toks));
	chmod(tokfile, 0600);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", dproc_free_port());
	snprintf(base, sizeof(base), "http://%s", listen);
	fx_opts_default(&o);
	hidden = o.cfg.hidden_size;

	if (fx_write_model(model, &o) != 0) {
		printf("Bail out! cannot write the fixture model\n");
		return (1);
	}
	/* A token file others may read is refused, before the model loads. */
	chmod(tokfile, 0644);
	{
		int64_t t0 = fx_now_ms();
		int rv = dproc_start(&dp, dir, model, state, extra, NULL);
		if (rv == 0)
			dproc_wait(&dp, SIGKILL, 1000);
		ok(rv != 0 && dproc_log_count(dp.log, "with no group or other access") ==
		    1, "a token file readable by others stops the daemon before "
		    "it answers, saying why (%lld ms)",
		    (long long)(fx_now_ms() - t0));
	}
	chmod(tokfile, 0600);

	if (dproc_start(&dp, dir, model, state, extra, NULL) != 0 ||
	    infini_connect(dp.url, 5000, &nc) != 0 ||
	    infini_health(nc, &hh) != 0) {
		printf("Bail out! daemon did not start\n");
		return (1);
	}
	test_completion();
	test_embeddings();
	test_openai_client();
	test_errors();
	test_client_leaves();
	test_metrics();
	test_snapshots();
	infini_close(nc);
	ok(dproc_wait(&dp, SIGTERM, 30000) == 0, "the daemon stops cleanly on "
	    "SIGTERM");
	return (dproc_tap_done(dir, dp.log));
}
