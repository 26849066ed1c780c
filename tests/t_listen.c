/*
 * t_listen.c - infinid's listeners against peers that misbehave below the
 * protocol, and against a second daemon on the same socket.  The daemon
 * runs as a child process (daemon_proc.h) listening on ipc:// and tcp://.
 *
 *  1. A storm on each transport: raw connect()+close(), handshakes cut
 *     short, frames cut short.  A client that comes after it is answered at
 *     once (best of three fresh connections under 100 ms; each try waits at
 *     most 1 s).  With NNG before 1.6 one peer that left during the
 *     handshake left the ipc listener accepting nothing more.
 *  2. Clients that vanish in the middle of a reply larger than the socket
 *     buffers: the daemon lets go of every such connection (its socket
 *     descriptors fall back to the count before), answers the next client,
 *     and stops on SIGTERM with status 0.  With NNG before 1.8 a pipe cut
 *     between two partial writes could wedge the close for ever.
 *  3. A second infinid started on the live ipc socket refuses to start,
 *     naming the first one's pid, and the first goes on serving; a socket
 *     file left by a daemon that was killed is taken over.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon_proc.h"
#include "infini.h"
#include "wire.h"

#define STORM 300               /* raw connect+close per transport */
#define HALF 100                /* cut handshakes, cut frames */
#define VANISH 20               /* clients gone mid-reply per transport */
#define BIG_TOKENS 2000         /* logits reply: 2000 x 300 floats, 2.4 MB */
#define SP_REQ0 0x30            /* the SP protocol number of REQ v0 */

static char dir[64], model[128], state[128];
static char ipc_path[96], tcp_url[64];
static int tcp_port;
static struct dproc dp;

/* ---------------------------------------------- raw SP peers */

/* sp_dial opens a plain stream socket to the daemon: ipc when tcp is
 * false.  Returns the descriptor or -1. */
static int
sp_dial(bool tcp)
{
	int fd;

	if (tcp) {
		struct sockaddr_in sa = { .sin_family = AF_INET,
		    .sin_port = htons((uint16_t)tcp_port) };
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd >= 0 && connect(fd, (void *)&sa, sizeof(sa)) == 0)
			return (fd);
	} else {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", ipc_path);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (fd >= 0 && connect(fd, (void *)&sa, sizeof(sa)) == 0)
			return (fd);
	}
	if (fd >= 0)
		close(fd);
	return (-1);
}

static bool
write_all(int fd, const void *buf, size_t n)
{
	const uint8_t *p = buf;

	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return (false);
		p += w;
		n -= (size_t)w;
	}
	return (true);
}

/* sp_hello sends the SP header of a REQ peer (8 bytes; only the first
 * len of them when len < 8). */
static bool
sp_hello(int fd, size_t len)
{
	static const uint8_t h[8] = { 0, 'S', 'P', 0, 0, SP_REQ0, 0, 0 };

	return (write_all(fd, h, len < 8 ? len : 8));
}

/* sp_frame sends one REQ message: request id, then body.  ipc frames carry
 * a type byte before the length.  claim: the length the frame announces
 * (0: the real one), to cut frames short. */
static bool
sp_frame(int fd, bool tcp, const uint8_t *body, size_t len, uint64_t claim)
{
	uint8_t hdr[13];
	size_t n = 0;
	uint64_t total = claim ? claim : len + 4;

	if (!tcp)
		hdr[n++] = 1;
	for (int i = 7; i >= 0; i--)
		hdr[n++] = (uint8_t)(total >> (8 * i));
	hdr[n++] = 0x80, hdr[n++] = 0, hdr[n++] = 0, hdr[n++] = 1;
	return (write_all(fd, hdr, n) && write_all(fd, body, len));
}

/* storm runs the three kinds of broken peers against one transport. */
static void
storm(bool tcp)
{
	uint8_t junk[64] = { 0 };

	for (int i = 0; i < STORM; i++) {
		int fd = sp_dial(tcp);
		if (fd >= 0)
			close(fd);
	}
	for (int i = 0; i < HALF; i++) {
		int fd = sp_dial(tcp);
		if (fd < 0)
			continue;
		sp_hello(fd, (size_t)(i % 8));
		close(fd);
	}
	for (int i = 0; i < HALF; i++) {
		int fd = sp_dial(tcp);
		if (fd < 0)
			continue;
		sp_hello(fd, 8);
		sp_frame(fd, tcp, junk, sizeof(junk), 1000);
		close(fd);
	}
}

/* answer_ms connects a fresh client to url and asks for Health, three
 * times; returns the quickest in ms, or -1 when none was answered. */
static long
answer_ms(const char *url)
{
	long best = -1;

	for (int i = 0; i < 3; i++) {
		infini_client *c = NULL;
		struct infini_health h;
		int64_t t0 = fx_now_ms();
		int rv = infini_connect(url, 1000, &c);
		if (rv == 0) {
			infini_set_timeout(c, 1000);
			rv = infini_health(c, &h);
		}
		long ms = (long)(fx_now_ms() - t0);
		infini_close(c);
		if (rv == 0 && (best < 0 || ms < best))
			best = ms;
	}
	return (best);
}

/* ----------------------------------------- vanishing mid-reply */

/* big_push packs a Push of BIG_TOKENS tokens to stream id asking for every
 * position's logits.  Free with free(). */
static uint8_t *
big_push(const char *id, size_t *len)
{
	static int32_t ids[BIG_TOKENS];
	Infini__V1__Tokens tk = INFINI__V1__TOKENS__INIT;
	Infini__V1__PushRequest pq = INFINI__V1__PUSH_REQUEST__INIT;

	for (int i = 0; i < BIG_TOKENS; i++)
		ids[i] = (i * 7 + 3) % 256;
	tk.n_ids = BIG_TOKENS;
	tk.ids = ids;
	pq.stream_id = (char *)id;
	pq.input_case = INFINI__V1__PUSH_REQUEST__INPUT_TOKENS;
	pq.tokens = &tk;
	pq.output = INFINI__V1__OUTPUT__OUTPUT_LOGITS;
	return (wire_pack_request(INFINI__V1__METHOD__PUSH, 1, &pq.base, len));
}

/* vanish sends the big Push, reads the first bytes of the reply and
 * closes.  Returns whether any reply byte came. */
static bool
vanish(bool tcp, const uint8_t *req, size_t len)
{
	uint8_t buf[64];
	int fd = sp_dial(tcp);
	bool got = false;

	if (fd < 0)
		return (false);
	struct timeval tv = { .tv_sec = 60 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (sp_hello(fd, 8) && sp_frame(fd, tcp, req, len, 0)) {
		/* The daemon's own 8-byte header, then the reply's start. */
		size_t n = 0;
		while (n < sizeof(buf)) {
			ssize_t r = recv(fd, buf + n, sizeof(buf) - n, 0);
			if (r <= 0)
				break;
			n += (size_t)r;
		}
		got = n == sizeof(buf);
	}
	close(fd);
	return (got);
}

/* sockets counts the daemon's socket descriptors. */
static int
sockets(pid_t pid)
{
	char path[64], link[128];
	struct dirent *e;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	if ((d = opendir(path)) == NULL)
		return (-1);
	while ((e = readdir(d)) != NULL) {
		char fd[400];
		snprintf(fd, sizeof(fd), "%s/%s", path, e->d_name);
		ssize_t k = readlink(fd, link, sizeof(link) - 1);
		if (k > 0) {
			link[k] = '\0';
			n += strncmp(link, "socket:", 7) == 0;
		}
	}
	closedir(d);
	return (n);
}

/* settle waits up to 10 s for the daemon's socket count to fall to at most
 * base; returns the last count. */
static int
settle(int base)
{
	int n = -1;

	for (int i = 0; i < 200; i++) {
		if ((n = sockets(dp.pid)) >= 0 && n <= base)
			break;
		usleep(50000);
	}
	return (n);
}

/* -------------------------------------------------------- checks */

static void
test_storm_and_vanish(void)
{
	char listen[700];
	const char *extra[] = { "--listen", listen, NULL };
	size_t len[2];
	uint8_t *req[2] = { big_push("big", &len[0]),
	    big_push("big-tcp", &len[1]) };

	snprintf(listen, sizeof(listen), "ipc://%s/s.sock,%s", dir, tcp_url);
	ok(req[0] && req[1] && dproc_start(&dp, dir, model, state, extra,
	    NULL) == 0,
	    "infinid serves %s", listen);
	/* Streams belong to the peer's UID, which tcp does not tell: one
	 * stream per transport. */
	infini_client *c = NULL, *t = NULL;
	bool opened = infini_connect(dp.url, 5000, &c) == 0 &&
	    infini_open(c, "big", false, NULL, NULL) == 0 &&
	    infini_connect(tcp_url, 5000, &t) == 0 &&
	    infini_open(t, "big-tcp", false, NULL, NULL) == 0;
	infini_close(c);
	infini_close(t);
	long ms0 = answer_ms(dp.url);
	int base = sockets(dp.pid);

	storm(false);
	long ms = answer_ms(dp.url);
	ok(opened && ms >= 0 && ms < 100, "after %d raw connect+close, %d cut "
	    "handshakes and %d cut frames on ipc, a new client is answered in "
	    "%ld ms (%ld ms before)", STORM, HALF, HALF, ms, ms0);
	storm(true);
	ms = answer_ms(tcp_url);
	ok(ms >= 0 && ms < 100, "the same storm on tcp: a new client is "
	    "answered in %ld ms", ms);
	int after = settle(base);
	ok(base > 0 && after <= base, "the daemon holds no socket of the "
	    "storm's peers (%d sockets, %d before)", after, base);

	int got = 0;
	for (int i = 0; i < VANISH; i++)
		got += vanish(i % 2 == 1, req[i % 2], len[i % 2]);
	after = settle(base);
	ok(got == VANISH && after <= base, "%d clients vanished in the middle "
	    "of a %d-token logits reply; every connection was let go (%d "
	    "sockets, %d before)", got, BIG_TOKENS, after, base);

	struct infini_result res = { 0 }, rt = { 0 };
	int32_t one = 5;
	int rv = infini_connect(dp.url, 5000, &c);
	rv = rv ? rv : infini_push_tokens(c, "big", &one, 1,
	    INFINI_OUT_LOGITS, &res);
	rv = rv ? rv : infini_connect(tcp_url, 5000, &t);
	rv = rv ? rv : infini_push_tokens(t, "big-tcp", &one, 1,
	    INFINI_OUT_LOGITS, &rt);
	uint64_t want = (uint64_t)(VANISH / 2 * BIG_TOKENS + 1);
	ok(rv == 0 && res.position == want && rt.position == want,
	    "the next clients are served: each stream took its %d pushes "
	    "(positions %llu and %llu)", VANISH / 2,
	    (unsigned long long)res.position, (unsigned long long)rt.position);
	infini_result_free(&res);
	infini_result_free(&rt);
	infini_close(c);
	infini_close(t);
	free(req[0]);
	free(req[1]);
}

/* run_second runs another infinid on the first one's socket and state
 * directory, its output in log; returns its exit status, or -1 when it did
 * not exit within 30 s (it is then killed). */
static int
run_second(const char *log)
{
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		FILE *f = freopen(log, "w", stdout);
		if (f == NULL || dup2(1, 2) < 0)
			_exit(126);
		execl(INFINID_PATH, "infinid", "--config", dp.conf, "--model",
		    model, "--listen", dp.url, "--state-dir", state,
		    (char *)NULL);
		_exit(127);
	}
	for (int i = 0; pid > 0 && i < 3000; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return (WIFEXITED(st) ? WEXITSTATUS(st) : -1);
		usleep(10000);
	}
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	return (-1);
}

static void
test_second_daemon(void)
{
	char log[400], needle[700];

	snprintf(log, sizeof(log), "%s/second.log", dir);
	snprintf(needle, sizeof(needle), "another infinid is serving %s "
	    "(pid %d)", dp.url, (int)dp.pid);
	int64_t t0 = fx_now_ms();
	int st0 = run_second(log);
	long took = (long)(fx_now_ms() - t0);
	ok(st0 == 1 && dproc_log_count(log, needle) == 1, "a second infinid "
	    "on the live socket exits with status %d in %ld ms: \"%s\"", st0,
	    took, needle);
	ok(answer_ms(dp.url) >= 0, "the first daemon still answers on its "
	    "socket");
	int64_t t1 = fx_now_ms();
	int st = dproc_wait(&dp, SIGTERM, 20000);
	ok(st == 0, "SIGTERM after the storms: status %d in %lld ms", st,
	    (long long)(fx_now_ms() - t1));

	/* A daemon killed outright leaves its socket file behind. */
	ok(dproc_start(&dp, dir, model, state, NULL, NULL) == 0 &&
	    dproc_wait(&dp, SIGKILL, 5000) == 128 + SIGKILL &&
	    access(ipc_path, F_OK) == 0, "SIGKILL leaves the socket file");
	ok(dproc_start(&dp, dir, model, state, NULL, NULL) == 0 &&
	    answer_ms(dp.url) >= 0 &&
	    dproc_log_count(dp.log, "removing the stale socket") >= 1,
	    "the next daemon removes the stale socket and serves");
	ok(dproc_wait(&dp, SIGTERM, 20000) == 0, "and stops with status 0");
}

int
main(void)
{
	struct fx_opts o;

	tap_plan(13);
	setenv("INFINI_VALIDATION", "1", 0);
	tap_timeout(600);
	signal(SIGPIPE, SIG_IGN);
	if (fx_tmpdir(dir, sizeof(dir)) != 0)
		return (1);
	snprintf(model, sizeof(model), "%s/model", dir);
	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(ipc_path, sizeof(ipc_path), "%s/s.sock", dir);
	fx_opts_default(&o);
	if (fx_write_model(model, &o) != 0 || (tcp_port = dproc_free_port()) < 0) {
		printf("Bail out! cannot write the fixture model\n");
		return (1);
	}
	snprintf(tcp_url, sizeof(tcp_url), "tcp://127.0.0.1:%d", tcp_port);
	test_storm_and_vanish();
	test_second_daemon();
	return (dproc_tap_done(dir, dp.log));
}
