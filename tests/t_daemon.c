/*
 * t_daemon.c - infinid end to end: the daemon runs as a child process on a
 * temporary ipc:// socket with a fixture model, and is driven through
 * libinfini (and, for malformed traffic, a raw NNG REQ socket).
 *
 * Checks: embeddings and generated tokens equal infini-run's for the same
 * input; 32 concurrent clients on their own and on shared streams; every
 * kind of bad input gets its status and the daemon still answers Health
 * (a request over the daemon's limit is refused by libinfini before it is
 * sent); a client that vanishes mid-Generate stops using the device; a
 * stream opened by one UID is refused to another.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "daemon_proc.h"
#include "fixture.h"
#include "infini.h"
#include "npy.h"
#include "tap.h"
#include "wire.h"

static char dir[256], url[512], model[512], pem[300], listen[700];
static bool have_tls;
static int tls_port;
static pid_t daemon_pid;

static int
start_daemon(void)
{
	/* $INFINI_DAEMON_WRAPPER runs the daemon under a tool, e.g.
	 * "valgrind --error-exitcode=99" (tools/valgrind.sh). */
	const char *wrapper = getenv("INFINI_DAEMON_WRAPPER");
	char sock[300], cmd[2048];

	if (wrapper != NULL && *wrapper == '\0')
		wrapper = NULL;
	snprintf(sock, sizeof(sock), "%s/s.sock", dir);
	snprintf(url, sizeof(url), "ipc://%s", sock);
	/* A TLS listener beside it, with a self-signed certificate. */
	snprintf(pem, sizeof(pem), "%s/tls.pem", dir);
	snprintf(cmd, sizeof(cmd), "openssl req -x509 -newkey rsa:2048 -nodes "
	    "-keyout %s.key -out %s.crt -days 2 -subj /CN=localhost "
	    ">/dev/null 2>&1 && cat %s.crt %s.key > %s", pem, pem, pem, pem,
	    pem);
	have_tls = system(cmd) == 0;
	tls_port = 20000 + (int)(getpid() % 20000);
	/* The listener and the client both name the host "localhost" (the
	 * certificate's name), so both resolve it alike: to ::1 on a machine
	 * whose /etc/hosts lists it first, as Debian's default one does. */
	snprintf(listen, sizeof(listen), "%s%s%s%d", url,
	    have_tls ? "," : "", have_tls ? "tls+tcp://localhost:" : "",
	    tls_port);
	if (!have_tls)
		snprintf(listen, sizeof(listen), "%s", url);
	if ((daemon_pid = fork()) == 0) {
		char log[300];
		/* The daemon dies with the test, and its output goes to a log
		 * file so prove never waits on an inherited pipe. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		snprintf(log, sizeof(log), "%s/infinid.log", dir);
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		const char *argv[64];
		char *w = wrapper ? strdup(wrapper) : NULL;
		int n = 0;
		for (char *t = w ? strtok(w, " ") : NULL; t != NULL && n < 32;
		    t = strtok(NULL, " "))
			argv[n++] = t;
		char conf[600];
		snprintf(conf, sizeof(conf), "%s/test.conf", dir);
		fx_write_file(conf, "", 0);
		argv[n++] = INFINID_PATH;
		argv[n++] = "--config"; argv[n++] = conf;
		argv[n++] = "--model"; argv[n++] = model;
		argv[n++] = "--listen"; argv[n++] = listen;
		argv[n++] = "--tls-cert-key-file"; argv[n++] = pem;
		argv[n++] = "--max-streams"; argv[n++] = "48";
		argv[n++] = "--workers"; argv[n++] = "96";
		argv[n++] = "--socket-mode"; argv[n++] = "0666";
		argv[n++] = "--max-message-bytes"; argv[n++] = "1048576";
		argv[n++] = "--log-level"; argv[n++] = "warning";
		argv[n++] = "--generate-idle-s"; argv[n++] = "30";
		argv[n++] = "--state-dir"; argv[n++] = dir;
		argv[n] = NULL;
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	/* Under a wrapper such as valgrind the warm-up takes minutes. */
	for (int i = 0; i < (wrapper ? 6000 : 300); i++) {
		infini_client *c;
		if (infini_connect(url, 1000, &c) == 0) {
			infini_close(c);
			return (0);
		}
		usleep(100000);
	}
	return (-1);
}

static double
maxdiff(const float *a, const float *b, size_t n)
{
	double d = 0;
	for (size_t i = 0; i < n; i++)
		d = fmax(d, fabs((double)a[i] - b[i]));
	return (d);
}

static const char text[] =
    "In the beginning the stream was short, and then it grew, segment by "
    "segment, while the memory stayed the same size.";

static void
test_embeddings(infini_client *c)
{
	char cmd[2048], out[300];
	float *want = NULL, *got;
	size_t rows = 0, cols = 0, n = strlen(text), H = 0;
	struct infini_result r;
	char err[256];
	int rv;

	snprintf(out, sizeof(out), "%s/emb.npy", dir);
	snprintf(cmd, sizeof(cmd), "%s --model %s --text '%s' --output "
	    "embeddings --out %s 2>/dev/null", INFINI_RUN_PATH, model, text, out);
	rv = system(cmd);
	if (rv == 0)
		rv = npy_read(out, &want, &rows, &cols, err, sizeof(err));
	H = cols;
	got = calloc(n * (H ? H : 1), sizeof(float));
	rv |= infini_open(c, "e2e", false, NULL, NULL);
	/* Pushed in uneven pieces; chunking must not matter. */
	for (size_t at = 0; at < n && rv == 0; at += 7) {
		size_t k = n - at < 7 ? n - at : 7;
		rv = infini_push_text(c, "e2e", text + at, k,
		    INFINI_OUT_EMBEDDINGS, &r);
		if (rv == 0) {
			memcpy(got + at * H, r.data, k * H * sizeof(float));
			infini_result_free(&r);
		}
	}
	ok(rv == 0 && rows == n && maxdiff(want, got, n * H) <= 1e-5,
	    "embeddings of a %zu-byte text pushed 7 bytes at a time equal "
	    "infini-run's (max diff %.2g)", n, rv == 0 ? maxdiff(want, got,
	    n * H) : -1.0);
	free(want);
	free(got);
}

struct collect {
	char buf[4096];
	size_t len;
	int ntok;
};

/* on_tok collects the daemon's text, whole characters as infini-run
 * prints them (EOS and other specials have none). */
static int
on_tok(void *arg, int32_t tok, const char *bytes, size_t len)
{
	struct collect *k = arg;
	if (tok < 0 || tok == ENG_TOK_EOS)
		return (0);
	if (k->len + len < sizeof(k->buf) && len > 0) {
		memcpy(k->buf + k->len, bytes, len);
		k->len += len;
	}
	k->ntok++;
	return (0);
}

static void
test_generate(infini_client *c, const char *name, float temp, int topk,
    float topp, uint64_t seed)
{
	char cmd[2048], want[4096] = "";
	const char *prompt = "The memory remembers ";
	struct infini_sampling s = { temp, (uint32_t)topk, topp, seed };
	struct collect k = { .len = 0 };
	char finish[16] = "";
	FILE *p;
	int rv;

	snprintf(cmd, sizeof(cmd), "%s --model %s --text '%s' --generate 24 "
	    "--temperature %g --top-k %d --top-p %g --seed %llu 2>/dev/null",
	    INFINI_RUN_PATH, model, prompt, temp, topk, topp,
	    (unsigned long long)seed);
	if ((p = popen(cmd, "r")) != NULL) {
		size_t n = fread(want, 1, sizeof(want) - 1, p);
		want[n] = '\0';
		if (n > 0 && want[n - 1] == '\n')
			want[n - 1] = '\0';
		pclose(p);
	}
	rv = infini_open(c, name, false, NULL, NULL);
	if (rv == 0)
		rv = infini_generate(c, name, &(struct infini_gen_opts){
		    .text = prompt, .max_tokens = 24, .sampling = &s,
		    .on_token = on_tok, .arg = &k }, finish);
	k.buf[k.len] = '\0';
	ok(rv == 0 && strcmp(k.buf, want) == 0 && k.len > 0,
	    "generate (%s) streams %d tokens equal to infini-run's, finish %s",
	    name, k.ntok, finish);
	if (strcmp(k.buf, want) != 0)
		tap_diag("daemon: \"%s\"\n# infini-run: \"%s\"", k.buf, want);
}

/* Generate without a prompt continues from the stream's last input. */
static void
test_generate_no_prompt(infini_client *c)
{
	char cmd[2048], want[4096] = "", finish[16] = "";
	const char *prompt = "Memory is ";
	struct infini_sampling s = { 0.0f, 0, 1.0f, 0 };
	struct collect k = { .len = 0 };
	FILE *p;
	int rv;

	snprintf(cmd, sizeof(cmd), "%s --model %s --text '%s' --generate 12 "
	    "2>/dev/null", INFINI_RUN_PATH, model, prompt);
	if ((p = popen(cmd, "r")) != NULL) {
		size_t n = fread(want, 1, sizeof(want) - 1, p);
		want[n] = '\0';
		if (n > 0 && want[n - 1] == '\n')
			want[n - 1] = '\0';
		pclose(p);
	}
	rv = infini_open(c, "noprompt", false, NULL, NULL);
	rv |= infini_push_text(c, "noprompt", prompt, strlen(prompt),
	    INFINI_OUT_NONE, NULL);
	if (rv == 0)
		rv = infini_generate(c, "noprompt", &(struct infini_gen_opts){
		    .max_tokens = 12, .sampling = &s, .on_token = on_tok,
		    .arg = &k }, finish);
	k.buf[k.len] = '\0';
	ok(rv == 0 && k.len > 0 && strcmp(k.buf, want) == 0,
	    "generate without a prompt continues the pushed text like "
	    "infini-run (%d tokens, %s)", k.ntok, finish);
	struct collect e = { .len = 0 };
	rv = infini_open(c, "empty", false, NULL, NULL);
	if (rv == 0)
		rv = infini_generate(c, "empty", &(struct infini_gen_opts){
		    .max_tokens = 4, .sampling = &s, .on_token = on_tok,
		    .arg = &e }, finish);
	ok(e.ntok == 0 && strcmp(finish, "error") == 0,
	    "generate without a prompt on an empty stream ends at once (%s)",
	    finish);
	/* The same from a restored copy: the snapshot carries the last
	 * input's hidden state. */
	struct collect r = { .len = 0 };
	uint8_t *snap = NULL;
	size_t snaplen = 0;
	rv = infini_open(c, "np2", false, NULL, NULL);
	rv |= infini_push_text(c, "np2", prompt, strlen(prompt),
	    INFINI_OUT_NONE, NULL);
	rv |= infini_snapshot(c, "np2", NULL, &snap, &snaplen);
	rv |= infini_restore(c, "np2-copy", NULL, snap, snaplen, NULL);
	if (rv == 0)
		rv = infini_generate(c, "np2-copy", &(struct infini_gen_opts){
		    .max_tokens = 12, .sampling = &s, .on_token = on_tok,
		    .arg = &r }, finish);
	r.buf[r.len] = '\0';
	ok(rv == 0 && r.len > 0 && strcmp(r.buf, want) == 0,
	    "... and so does a copy restored from a snapshot (%d tokens, %s)",
	    r.ntok, finish);
	free(snap);
	infini_close_stream(c, "np2");
	infini_close_stream(c, "np2-copy");
	infini_close_stream(c, "noprompt");
	infini_close_stream(c, "empty");
}

/* tls+tcp://: the client checks the daemon's certificate. */
static void
test_tls(void)
{
	char turl[128], ca[320];
	infini_client *t = NULL;
	struct infini_health h;

	if (!have_tls) {
		tap_skip(2, "openssl could not make a certificate");
		return;
	}
	snprintf(turl, sizeof(turl), "tls+tcp://localhost:%d", tls_port);
	unsetenv("INFINI_TLS_CA");
	ok(infini_connect(turl, 3000, &t) == INFINI_EINVAL,
	    "tls+tcp:// without a CA is refused: %s", infini_errmsg());
	snprintf(ca, sizeof(ca), "%s.crt", pem);
	setenv("INFINI_TLS_CA", ca, 1);
	int rv = infini_connect(turl, 10000, &t);
	ok(rv == 0 && infini_health(t, &h) == 0, "Health over tls+tcp:// with "
	    "the certificate checked (%s)", rv ? infini_errmsg() : h.device);
	if (rv == 0)
		infini_close(t);
}

/* ------------------------------------------------ concurrent clients */

#define NCLI 32
#define NSHARED 4

struct cli_arg {
	int i;
	int errors;
	float last[64];
	uint64_t pos[3];
};

static void
tokens_for(int i, int chunk, int32_t *t, int n)
{
	for (int k = 0; k < n; k++)
		t[k] = (i * 37 + chunk * 11 + k * 5) % 256;
}

static void *
client_main(void *arg)
{
	struct cli_arg *a = arg;
	infini_client *c;
	char id[32], sh[32];
	int32_t t[13];

	if (infini_connect(url, 5000, &c) != 0) {
		a->errors++;
		return (NULL);
	}
	snprintf(id, sizeof(id), "c%d", a->i);
	snprintf(sh, sizeof(sh), "shared%d", a->i % NSHARED);
	if (infini_open(c, id, false, NULL, NULL) != 0 ||
	    infini_open(c, sh, true, NULL, NULL) != 0)
		a->errors++;
	for (int chunk = 0; chunk < 5; chunk++) {
		struct infini_result r;
		tokens_for(a->i, chunk, t, 13);
		if (infini_push_tokens(c, id, t, 13, INFINI_OUT_LAST, &r) != 0) {
			a->errors++;
			continue;
		}
		if (chunk == 4 && r.cols <= 64)
			memcpy(a->last, r.data, r.cols * sizeof(float));
		infini_result_free(&r);
		if (chunk < 3) {
			if (infini_push_tokens(c, sh, t, 4, INFINI_OUT_NONE,
			    &r) != 0)
				a->errors++;
			a->pos[chunk] = r.position;
			infini_result_free(&r);
		}
	}
	infini_close(c);
	return (NULL);
}

static void
test_concurrent(infini_client *c)
{
	pthread_t th[NCLI];
	struct cli_arg a[NCLI];
	int errors = 0, order_ok = 1;
	double worst = 0;

	memset(a, 0, sizeof(a));
	for (int i = 0; i < NCLI; i++) {
		a[i].i = i;
		pthread_create(&th[i], NULL, client_main, &a[i]);
	}
	for (int i = 0; i < NCLI; i++) {
		pthread_join(th[i], NULL);
		errors += a[i].errors;
		if (!(a[i].pos[0] < a[i].pos[1] && a[i].pos[1] < a[i].pos[2]))
			order_ok = 0;
	}
	ok(errors == 0, "%d concurrent clients: no errors (%d)", NCLI, errors);
	ok(order_ok, "per-client order kept on shared streams");
	/* Serial replay of every private stream on a fresh stream. */
	for (int i = 0; i < NCLI; i++) {
		char id[32];
		int32_t t[13];
		struct infini_result r = { 0 };
		snprintf(id, sizeof(id), "r%d", i);
		infini_open(c, id, false, NULL, NULL);
		for (int chunk = 0; chunk < 5; chunk++) {
			tokens_for(i, chunk, t, 13);
			infini_result_free(&r);
			infini_push_tokens(c, id, t, 13, INFINI_OUT_LAST, &r);
		}
		if (r.data != NULL)
			worst = fmax(worst, maxdiff(r.data, a[i].last, r.cols));
		else
			worst = INFINITY;
		infini_result_free(&r);
		infini_close_stream(c, id);
	}
	ok(worst == 0.0, "every concurrent stream equals its serial replay "
	    "(max diff %.2g)", worst);
	struct infini_stream_info *ls = NULL;
	size_t n = 0;
	int pos_ok = infini_list(c, &ls, &n) == 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(ls[i].id, "shared", 6) == 0 &&
		    ls[i].position != (NCLI / NSHARED) * 3 * 4)
			pos_ok = 0;
	free(ls);
	ok(pos_ok, "shared streams saw every push (position %d each)",
	    (NCLI / NSHARED) * 3 * 4);
	for (int i = 0; i < NCLI; i++) {
		char id[32];
		snprintf(id, sizeof(id), "c%d", i);
		infini_close_stream(c, id);
	}
}

/* ------------------------------------------------------ bad inputs */

/*
 * raw sends bytes on a fresh REQ socket and returns the reply's code, or -1
 * when no reply came.
 */
static int
raw(const void *buf, size_t len, char *msg, size_t msglen)
{
	nng_socket s;
	nng_msg *m = NULL;
	int code = -1;

	if (nng_req0_open(&s) != 0)
		return (-1);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 3000);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 3000);
	nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, 64u << 20);
	if (nng_dial(s, url, NULL, 0) == 0 &&
	    nng_send(s, (void *)buf, len, 0) == 0 &&
	    nng_recvmsg(s, &m, 0) == 0) {
		Infini__V1__Reply *r = infini__v1__reply__unpack(NULL,
		    nng_msg_len(m), nng_msg_body(m));
		if (r != NULL) {
			code = r->status ? (int)r->status->code : 0;
			if (msg)
				snprintf(msg, msglen, "%s", r->status &&
				    r->status->message ? r->status->message : "");
			infini__v1__reply__free_unpacked(r, NULL);
		}
		nng_msg_free(m);
	}
	nng_close(s);
	return (code);
}

static int
raw_call(int method, const ProtobufCMessage *body, char *msg, size_t n)
{
	size_t len;
	uint8_t *b = wire_pack_request(method, 7, body, &len);
	int code = raw(b, len, msg, n);
	free(b);
	return (code);
}

static bool
healthy(infini_client *c)
{
	struct infini_health h;
	return (infini_health(c, &h) == 0);
}

static void
test_bad_inputs(infini_client *c, int H)
{
	char msg[512];
	uint8_t junk[256];
	int32_t toks[3] = { 1, 2, 300 };
	struct infini_result r;

	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 151 + 7);
	ok(raw(junk, sizeof(junk), msg, sizeof(msg)) == 3 && healthy(c),
	    "garbage bytes: INVALID_ARGUMENT (%s), still healthy", msg);

	Infini__V1__PushRequest pq = INFINI__V1__PUSH_REQUEST__INIT;
	Infini__V1__Tokens tk = INFINI__V1__TOKENS__INIT;
	int32_t ids[4] = { 1, 2, 3, 4 };
	tk.n_ids = 4;
	tk.ids = ids;
	pq.stream_id = "e2e";
	pq.input_case = INFINI__V1__PUSH_REQUEST__INPUT_TOKENS;
	pq.tokens = &tk;
	size_t len;
	uint8_t *b = wire_pack_request(INFINI__V1__METHOD__PUSH, 9, &pq.base, &len);
	ok(raw(b, len - 3, msg, sizeof(msg)) == 3 && healthy(c),
	    "truncated request: INVALID_ARGUMENT (%s)", msg);
	free(b);

	/* A field numbered 0 with its tag written as a two-byte varint:
	 * libprotobuf-c 1.4 accepts it; the daemon refuses it (wire_unpack). */
	static const uint8_t f0[] = { 0x81, 0x00, 1, 2, 3, 4, 5, 6, 7, 8 };
	Infini__V1__Request rq = INFINI__V1__REQUEST__INIT;
	rq.version = WIRE_VERSION;
	rq.method = INFINI__V1__METHOD__LIST_STREAMS;
	rq.call_id = 10;
	rq.body.len = sizeof(f0);
	rq.body.data = (uint8_t *)f0;
	len = infini__v1__request__get_packed_size(&rq);
	b = malloc(len);
	infini__v1__request__pack(&rq, b);
	ok(raw(b, len, msg, sizeof(msg)) == 3 && healthy(c),
	    "a body with a field numbered 0: INVALID_ARGUMENT (%s)", msg);
	free(b);

	/* The daemon drops the message with its pipe; the sender's own
	 * close must not hang on the send it cut off. */
	uint8_t *big = calloc(2u << 20, 1);
	ok(big != NULL && raw(big, 2u << 20, NULL, 0) == -1 && healthy(c),
	    "oversize message (2 MiB > 1 MiB limit) is dropped, daemon healthy");
	free(big);

	ok(raw_call(99, NULL, msg, sizeof(msg)) == 12 && healthy(c),
	    "unknown method: UNIMPLEMENTED (%s)", msg);
	pq.stream_id = "bad/id";
	ok(raw_call(INFINI__V1__METHOD__PUSH, &pq.base, msg, sizeof(msg)) == 3,
	    "invalid stream ID: INVALID_ARGUMENT (%s)", msg);
	pq.stream_id = "nosuch";
	ok(raw_call(INFINI__V1__METHOD__PUSH, &pq.base, msg, sizeof(msg)) == 5,
	    "unknown stream: NOT_FOUND (%s)", msg);
	ok(infini_push_tokens(c, "e2e", toks, 3, INFINI_OUT_NONE, &r) ==
	    INFINI_EINVAL && healthy(c), "token >= vocab: %s", infini_errmsg());

	/* 2 x (H + 1): the wrong-width push below reads that many. */
	float *v = calloc((size_t)2 * (H + 1), sizeof(float));
	v[H + 3] = NAN;
	ok(infini_push_vectors(c, "e2e", v, 2, (uint32_t)H, INFINI_OUT_NONE,
	    &r) == INFINI_EINVAL, "NaN vector: %s", infini_errmsg());
	v[H + 3] = 0;
	ok(infini_push_vectors(c, "e2e", v, 2, (uint32_t)H + 1, INFINI_OUT_NONE,
	    &r) == INFINI_EINVAL, "wrong vector width: %s", infini_errmsg());
	/* 5000 rows of H floats: over the daemon's 1 MiB, which Health told
	 * the client; refused before anything is sent. */
	float *many = calloc((size_t)5000 * H, sizeof(float));
	ok(many != NULL && infini_push_vectors(c, "e2e", many, 5000,
	    (uint32_t)H, INFINI_OUT_NONE, &r) == INFINI_EINVAL &&
	    strstr(infini_errmsg(), "max_message_bytes") != NULL && healthy(c),
	    "a request over the daemon's limit is refused by the client: %s",
	    infini_errmsg());
	free(many);
	ok(infini_push_vectors(c, "e2e", v, 2, (uint32_t)H, INFINI_OUT_LAST,
	    &r) == 0, "the stream still works after refused pushes");
	infini_result_free(&r);
	free(v);

	/* Open until the daemon says no. */
	int opened = 0, rv = 0;
	char id[32];
	while (opened < 100) {
		snprintf(id, sizeof(id), "fill%d", opened);
		if ((rv = infini_open(c, id, false, NULL, NULL)) != 0)
			break;
		opened++;
	}
	ok(rv == INFINI_EFULL && healthy(c), "too many streams: "
	    "RESOURCE_EXHAUSTED after %d more (%s)", opened, infini_errmsg());
	for (int i = 0; i < opened; i++) {
		snprintf(id, sizeof(id), "fill%d", i);
		infini_close_stream(c, id);
	}
}

/* run_cli runs the infini CLI in a child (as uid, when uid >= 0), with its
 * stderr in errfile; returns its exit status.  NNG is not fork-safe, so
 * children exec rather than call libinfini. */
static pid_t
spawn_cli(int uid, const char *args, const char *errfile)
{
	char cmd[2048];
	pid_t pid;

	snprintf(cmd, sizeof(cmd), "exec %s --socket %s %s >/dev/null 2>%s",
	    INFINI_CLI_PATH, url, args, errfile);
	/* The child may run as another user: let it write its stderr. */
	fx_write_file(errfile, "", 0);
	chmod(errfile, 0666);
	if ((pid = fork()) == 0) {
		if (uid >= 0 && (setgid((gid_t)uid) != 0 || setuid((uid_t)uid) != 0))
			_exit(100);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	return (pid);
}

static int
run_cli(int uid, const char *args, const char *errfile)
{
	int st;
	pid_t pid = spawn_cli(uid, args, errfile);
	waitpid(pid, &st, 0);
	return (WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

static bool
file_has(const char *path, const char *needle)
{
	char *buf = NULL;
	size_t n;
	bool found = false;
	if (fx_read_file(path, &buf, &n) == 0)
		found = strstr(buf, needle) != NULL;
	free(buf);
	return (found);
}

static void
test_vanishing_client(infini_client *c)
{
	struct infini_stats a, b;
	char errf[300];
	pid_t pid;
	int st;

	snprintf(errf, sizeof(errf), "%s/gen.err", dir);
	infini_open(c, "gone", false, NULL, NULL);
	/* A client that dies mid-generation, without cancelling. */
	pid = spawn_cli(-1, "generate gone --prompt x -n 4000 --temperature 1",
	    errf);
	usleep(1500000);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	usleep(1500000);
	infini_stats(c, &a);
	usleep(1500000);
	infini_stats(c, &b);
	struct infini_stream_info *ls = NULL;
	size_t n = 0;
	bool gen = true, found = false;
	infini_list(c, &ls, &n);
	for (size_t i = 0; i < n; i++)
		if (strcmp(ls[i].id, "gone") == 0) {
			gen = ls[i].generating;
			found = ls[i].position > 1;
		}
	free(ls);
	ok(found && a.tokens_out == b.tokens_out && !gen && healthy(c),
	    "a client killed mid-Generate stops its generation (%llu tokens "
	    "out, unchanged)", (unsigned long long)b.tokens_out);
}

static void
test_permissions(infini_client *c)
{
	int32_t t[1] = { 65 };
	char errf[300];

	if (geteuid() != 0) {
		tap_skip(3, "needs root to switch UIDs");
		return;
	}
	snprintf(errf, sizeof(errf), "%s/perm.err", dir);
	ok(run_cli(65534, "open owned", errf) == 0 &&
	    run_cli(65534, "push owned --tokens 65,66", errf) == 0,
	    "UID 65534 opens and pushes its stream");
	ok(run_cli(65533, "push owned --tokens 65", errf) == 1 &&
	    file_has(errf, "PERMISSION_DENIED"),
	    "UID 65533 is refused with PERMISSION_DENIED");
	ok(infini_push_tokens(c, "owned", t, 1, INFINI_OUT_NONE, NULL) == 0,
	    "root (admin) may use it");
}

static void
test_snapshots(infini_client *c)
{
	int32_t t[11];
	struct infini_result a = { 0 }, b = { 0 };
	uint8_t *data = NULL;
	size_t len = 0;
	uint64_t pos = 0;
	int rv;

	for (int i = 0; i < 11; i++)
		t[i] = (i * 29 + 3) % 256;
	/* Snapshot mid-segment (119 = 14 segments of 8, plus 7). */
	rv = infini_push_tokens(c, "e2e", t, 2, INFINI_OUT_NONE, &a);
	uint64_t at = a.position;
	infini_result_free(&a);
	rv |= infini_snapshot(c, "e2e", "e2e-snap", &data, &len);
	rv |= infini_restore(c, "e2e-bytes", NULL, data, len, &pos);
	rv |= infini_restore(c, "e2e-file", "e2e-snap", NULL, 0, NULL);
	ok(rv == 0 && pos == at && at % 8 != 0, "snapshot exported and written, restored "
	    "from bytes and from the file (position %llu)",
	    (unsigned long long)pos);
	rv = infini_push_tokens(c, "e2e", t + 2, 9, INFINI_OUT_LAST, &a);
	rv |= infini_push_tokens(c, "e2e-bytes", t + 2, 9, INFINI_OUT_LAST, &b);
	bool same = rv == 0 && a.cols == b.cols &&
	    memcmp(a.data, b.data, a.cols * sizeof(float)) == 0;
	infini_result_free(&b);
	rv = infini_push_tokens(c, "e2e-file", t + 2, 9, INFINI_OUT_LAST, &b);
	same = same && rv == 0 &&
	    memcmp(a.data, b.data, a.cols * sizeof(float)) == 0;
	ok(same, "restored streams continue exactly like the original");
	infini_result_free(&a);
	infini_result_free(&b);
	if (data != NULL && len > 100) {
		data[len / 2] ^= 0x10;
		rv = infini_restore(c, "e2e-bad", NULL, data, len, NULL);
		ok(rv == INFINI_ECORRUPT && healthy(c), "a flipped bit is "
		    "refused with DATA_LOSS: %s", infini_errmsg());
		rv = infini_restore(c, "e2e-bad", NULL, data, len / 3, NULL);
		ok(rv == INFINI_ECORRUPT, "a truncated snapshot is refused: %s",
		    infini_errmsg());
	} else {
		ok(0, "a flipped bit is refused");
		ok(0, "a truncated snapshot is refused");
	}
	ok(infini_snapshot(c, "e2e", "../escape", NULL, NULL) == INFINI_EINVAL,
	    "a snapshot name with a path is refused: %s", infini_errmsg());
	free(data);
	infini_close_stream(c, "e2e-bytes");
	infini_close_stream(c, "e2e-file");
}

int
main(void)
{
	struct fx_opts o;
	infini_client *c = NULL;
	struct infini_health h;
	int st;

	tap_plan(38);
	signal(SIGPIPE, SIG_IGN);
	setenv("INFINI_VALIDATION", "1", 0);
	if (fx_tmpdir(dir, sizeof(dir)) != 0)
		return (1);
	chmod(dir, 0755);
	snprintf(model, sizeof(model), "%s/model", dir);
	fx_opts_default(&o);
	o.cfg.memory_update = ENG_UPDATE_DELTA;
	if (fx_write_model(model, &o) != 0 || start_daemon() != 0) {
		printf("Bail out! daemon did not start\n");
		return (1);
	}
	ok(infini_connect(url, 5000, &c) == 0 && infini_health(c, &h) == 0 &&
	    h.segment_size == 8 && h.hidden_size == 64,
	    "Health answers: %s on %s", h.model, h.device);
	test_embeddings(c);
	test_generate(c, "greedy", 0.0f, 0, 1.0f, 0);
	test_generate(c, "sampled", 0.8f, 20, 0.9f, 42);
	test_generate_no_prompt(c);
	test_tls();
	test_concurrent(c);
	test_bad_inputs(c, 64);
	test_snapshots(c);
	test_vanishing_client(c);
	test_permissions(c);
	ok(healthy(c), "the daemon still answers Health");
	infini_close(c);
	kill(daemon_pid, SIGTERM);
	waitpid(daemon_pid, &st, 0);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "SIGTERM: clean exit");
	char log[300];
	snprintf(log, sizeof(log), "%s/infinid.log", dir);
	return (dproc_tap_done(dir, log));
}
