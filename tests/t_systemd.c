/*
 * t_systemd.c - infinid as a system service.
 *
 *  1. notify.c on its own: disabled without NOTIFY_SOCKET, path and '@'
 *     abstract addresses, WATCHDOG_PID, the message texts.
 *  2. The unit: `systemd-analyze verify` prints nothing (it exits 0 even on
 *     unknown keys, so its output is what counts) and `systemd-analyze
 *     security --offline=true` rates its exposure at 2.0 or less.
 *  3. The daemon under a fake service manager: a datagram socket as
 *     NOTIFY_SOCKET and a 1 s WATCHDOG_USEC.  READY=1, watchdog pings and
 *     STATUS=, then SIGHUP with a changed settings file (RELOADING=1,
 *     READY=1, "max_queue: 3 -> 5" in the log, the stream opened before it
 *     still there), a bad file (the daemon keeps running), and SIGTERM
 *     (STOPPING=1, exit 0).
 *     Then a device that hangs for 8 s ($INFINID_FAULT): STATUS= says the
 *     scheduler stalled, the pings stop, and they resume when it is back.
 *  4. infinid.conf(5) documents every key the daemon has.
 *
 * The Debian packages are checked by t_deb.c.  Parts whose tools are
 * missing (systemd-analyze) skip.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "infini_err.h"
#include "notify.h"
#include "tap.h"

static char tmp[512];

/* ---- helpers ------------------------------------------------------- */

static bool
is_exec(const char *path)
{
	return (path[0] != '\0' && access(path, X_OK) == 0);
}

/* bind_dgram makes the fake manager's socket at addr (len bytes). */
static int
bind_dgram(const struct sockaddr_un *addr, socklen_t len)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return (-1);
	if (bind(fd, (const struct sockaddr *)addr, len) != 0) {
		close(fd);
		return (-1);
	}
	return (fd);
}

/* recv_msg waits up to ms for one datagram; "" on timeout. */
static const char *
recv_msg(int fd, int ms)
{
	static char buf[4097];
	struct pollfd pf = { fd, POLLIN, 0 };
	ssize_t n;

	buf[0] = '\0';
	if (poll(&pf, 1, ms) <= 0)
		return (buf);
	if ((n = recv(fd, buf, sizeof(buf) - 1, 0)) < 0)
		n = 0;
	buf[n] = '\0';
	return (buf);
}

/* ---- 1. notify.c --------------------------------------------------- */

static void
test_notify_unit(void)
{
	struct notify n;
	struct sockaddr_un a;
	char path[600], name[64];
	int fd;

	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	ok(notify_init(&n) == 0 && !notify_enabled(&n) &&
	    notify_ready(&n) == 0 && notify_watchdog_usec(&n) == 0,
	    "notify: no NOTIFY_SOCKET, every call a no-op");
	notify_fini(&n);

	setenv("NOTIFY_SOCKET", "relative/path", 1);
	ok(notify_init(&n) == INFINI_EINVAL && !notify_enabled(&n) &&
	    notify_ready(&n) == 0, "notify: a relative path is refused, "
	    "calls stay safe");
	notify_fini(&n);

	/* A filesystem socket. */
	snprintf(path, sizeof(path), "%s/n1", tmp);
	memset(&a, 0, sizeof(a));
	a.sun_family = AF_UNIX;
	memcpy(a.sun_path, path, strnlen(path, sizeof(a.sun_path) - 1));
	fd = bind_dgram(&a, sizeof(a));
	setenv("NOTIFY_SOCKET", path, 1);
	setenv("WATCHDOG_USEC", "2000000", 1);
	ok(fd >= 0 && notify_init(&n) == 0 && notify_enabled(&n) &&
	    notify_watchdog_usec(&n) == 2000000,
	    "notify: path socket, WATCHDOG_USEC read");
	notify_ready(&n);
	ok(strcmp(recv_msg(fd, 2000), "READY=1") == 0, "notify: READY=1");
	notify_status(&n, "two\nlines %d", 7);
	ok(strcmp(recv_msg(fd, 2000), "STATUS=two lines 7") == 0,
	    "notify: STATUS= is one line");
	notify_reloading(&n);
	{
		const char *m = recv_msg(fd, 2000);
		ok(strncmp(m, "RELOADING=1\nMONOTONIC_USEC=", 27) == 0 &&
		    strtoull(m + 27, NULL, 10) > 0,
		    "notify: RELOADING=1 with MONOTONIC_USEC (%s)", m + 12);
	}
	notify_fini(&n);
	if (fd >= 0)
		close(fd);

	/* The abstract namespace: '@' stands for the leading NUL. */
	snprintf(name, sizeof(name), "@infinid-t-systemd-%d", (int)getpid());
	memset(&a, 0, sizeof(a));
	a.sun_family = AF_UNIX;
	memcpy(a.sun_path + 1, name + 1, strlen(name) - 1);
	fd = bind_dgram(&a, (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
	    strlen(name)));
	setenv("NOTIFY_SOCKET", name, 1);
	setenv("WATCHDOG_PID", "1", 1);     /* not us */
	ok(fd >= 0 && notify_init(&n) == 0 && notify_watchdog_usec(&n) == 0,
	    "notify: WATCHDOG_PID of another process turns the watchdog off");
	notify_watchdog(&n);
	ok(strcmp(recv_msg(fd, 2000), "WATCHDOG=1") == 0,
	    "notify: abstract socket gets WATCHDOG=1");
	notify_stopping(&n);
	ok(strcmp(recv_msg(fd, 2000), "STOPPING=1") == 0, "notify: STOPPING=1");
	notify_fini(&n);
	if (fd >= 0)
		close(fd);
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
}
#define NOTIFY_UNIT_TESTS 9

/* ---- 2. the unit --------------------------------------------------- */

/* test_unit writes the built unit with ExecStart pointing at the built
 * daemon (verify wants an executable there). */
static void
test_unit(void)
{
	char unit[600], cmd[2048], *out = NULL, *p;
	int rv;

	if (!is_exec(SYSTEMD_ANALYZE)) {
		tap_skip(2, "no systemd-analyze");
		return;
	}
	snprintf(unit, sizeof(unit), "%s/infinid.service", tmp);
	snprintf(cmd, sizeof(cmd), "sed 's|^ExecStart=.*|ExecStart=%s|' "
	    "'%s' > '%s'", INFINID, UNIT_FILE, unit);
	if (system(cmd) != 0)
		tap_diag("cannot write %s", unit);
	snprintf(cmd, sizeof(cmd), "'%s' verify --man=no '%s' 2>&1",
	    SYSTEMD_ANALYZE, unit);
	rv = fx_run(cmd, &out);
	if (!ok(rv == 0 && out[0] == '\0', "systemd-analyze verify: clean"))
		tap_diag("exit %d: %s", rv, out);
	free(out);

	snprintf(cmd, sizeof(cmd), "'%s' security --offline=true '%s' 2>&1",
	    SYSTEMD_ANALYZE, unit);
	rv = fx_run(cmd, &out);
	p = strstr(out, "Overall exposure level for infinid.service: ");
	double score = p ? strtod(p + 44, NULL) : 99;
	if (!ok(p != NULL && score <= 2.0,
	    "systemd-analyze security: exposure %.1f <= 2.0", score))
		tap_diag("exit %d: %s", rv, out);
	free(out);
}
#define UNIT_TESTS 2

/* ---- 3. the daemon under a fake manager ---------------------------- */

struct watch {
	int fd;
	int pings;
	char status[4097];
};

/* expect reads messages until one starts with want (counting pings and
 * keeping the last STATUS= on the way).  True when it came within ms. */
static bool
expect(struct watch *w, const char *want, int ms)
{
	int64_t end = fx_now_ms() + ms;

	for (int64_t left; (left = end - fx_now_ms()) > 0;) {
		const char *m = recv_msg(w->fd, (int)left);
		if (m[0] == '\0')
			break;
		if (strcmp(m, "WATCHDOG=1") == 0)
			w->pings++;
		if (strncmp(m, "STATUS=", 7) == 0)
			snprintf(w->status, sizeof(w->status), "%s", m + 7);
		if (strncmp(m, want, strlen(want)) == 0)
			return (true);
	}
	return (false);
}

static bool
log_has(const char *log, const char *text)
{
	char *buf = NULL;
	size_t n;
	bool found;

	if (fx_read_file(log, &buf, &n) != 0)
		return (false);
	found = strstr(buf, text) != NULL;
	free(buf);
	return (found);
}

static int
cli(const char *sock, const char *args, char **out)
{
	char cmd[2048];
	snprintf(cmd, sizeof(cmd), "'%s' --socket '%s' %s 2>&1", INFINI_CLI,
	    sock, args);
	return (fx_run(cmd, out));
}

/*
 * spawn_notified starts infinid on model with settings file conf and
 * listening on url, under a fake service manager: NOTIFY_SOCKET is nsock
 * (bound here, into w->fd) and WATCHDOG_USEC 1 s; fault, when not NULL, is
 * its $INFINID_FAULT.  stderr goes to log.  Returns the child's pid.
 */
static pid_t
spawn_notified(struct watch *w, const char *model, const char *conf,
    const char *log, const char *nsock, const char *url, const char *fault)
{
	struct sockaddr_un a;
	pid_t pid;

	memset(&a, 0, sizeof(a));
	a.sun_family = AF_UNIX;
	memcpy(a.sun_path, nsock, strnlen(nsock, sizeof(a.sun_path) - 1));
	w->fd = bind_dgram(&a, sizeof(a));
	if ((pid = fork()) == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0)
			dup2(fd, 2);
		setenv("NOTIFY_SOCKET", nsock, 1);
		setenv("WATCHDOG_USEC", "1000000", 1);
		if (fault != NULL)
			setenv("INFINID_FAULT", fault, 1);
		/* Its own state directory, never the machine's default
		 * (/var/lib/infinid may hold an installed daemon's streams). */
		char state[700];
		snprintf(state, sizeof(state), "%s.state", conf);
		execl(INFINID, INFINID, "--config", conf, "--model", model,
		    "--listen", url, "--state-dir", state, (char *)NULL);
		_exit(127);
	}
	return (pid);
}

static void
test_daemon(void)
{
	char model[600], conf[600], log[600], nsock[600], url[700];
	struct fx_opts o;
	struct watch w = { -1, 0, "" };
	bool have_cli = is_exec(INFINI_CLI);
	char *out = NULL;
	pid_t pid;
	int st = -1;

	snprintf(model, sizeof(model), "%s/model", tmp);
	snprintf(conf, sizeof(conf), "%s/infinid.conf", tmp);
	snprintf(log, sizeof(log), "%s/infinid.log", tmp);
	snprintf(nsock, sizeof(nsock), "%s/notify", tmp);
	snprintf(url, sizeof(url), "ipc://%s/infinid.sock", tmp);
	fx_opts_default(&o);
	if (fx_write_model(model, &o) != 0 ||
	    fx_write_file(conf, "max_queue = 3\n", 14) != 0) {
		tap_diag("cannot write the fixture");
		return;
	}
	pid = spawn_notified(&w, model, conf, log, nsock, url, NULL);
	ok(w.fd >= 0 && expect(&w, "READY=1", 120000),
	    "daemon: READY=1 once the model is up and the socket listens");
	ok(expect(&w, "WATCHDOG=1", 3000) && expect(&w, "WATCHDOG=1", 3000),
	    "daemon: watchdog pings (WATCHDOG_USEC=1 s)");
	ok(strstr(w.status, "0 streams, ") != NULL &&
	    strstr(w.status, "requests/s") != NULL,
	    "daemon: STATUS=%s", w.status);

	if (have_cli) {
		int rv = cli(url, "open s1", &out);
		ok(rv == 0, "infini open s1 (exit %d)", rv);
		if (rv != 0)
			tap_diag("%s", out);
		free(out);
	} else
		tap_skip(1, "no infini CLI");

	/* A live change and one that needs a restart. */
	fx_write_file(conf, "max_queue = 5\nmax_streams = 9\n", 30);
	kill(pid, SIGHUP);
	ok(expect(&w, "RELOADING=1\nMONOTONIC_USEC=", 10000),
	    "SIGHUP: RELOADING=1 with MONOTONIC_USEC");
	ok(expect(&w, "READY=1", 10000), "SIGHUP: READY=1 after the reload");
	ok(log_has(log, "max_queue: 3 -> 5"), "SIGHUP: max_queue 3 -> 5 applied");
	ok(log_has(log, "max_streams: 4096 -> 9 needs a restart"),
	    "SIGHUP: max_streams change held for a restart");
	if (have_cli) {
		ok(expect(&w, "STATUS=1 stream,", 10000),
		    "STATUS counts the open stream (%s)", w.status);
		int rv = cli(url, "ls", &out);
		ok(rv == 0 && strstr(out, "s1") != NULL,
		    "stream s1 survived the reload");
		if (rv != 0)
			tap_diag("%s", out);
		free(out);
	} else
		tap_skip(2, "no infini CLI");

	/* A broken file changes nothing and the daemon keeps serving. */
	fx_write_file(conf, "max_queue = lots\n", 17);
	kill(pid, SIGHUP);
	ok(expect(&w, "RELOADING=1", 10000) && expect(&w, "READY=1", 10000) &&
	    log_has(log, "reload failed, settings unchanged") &&
	    waitpid(pid, &st, WNOHANG) == 0,
	    "SIGHUP with a bad file: logged, still running");
	w.pings = 0;
	ok(expect(&w, "WATCHDOG=1", 3000), "pings go on after the reloads");

	kill(pid, SIGTERM);
	ok(expect(&w, "STOPPING=1", 30000), "SIGTERM: STOPPING=1");
	for (int i = 0; i < 300 && waitpid(pid, &st, WNOHANG) == 0; i++)
		usleep(100000);
	if (!ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "SIGTERM: exit 0")) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
	}
	if (tap_failed) {
		char *buf = NULL;
		size_t n;
		if (fx_read_file(log, &buf, &n) == 0)
			tap_diag("daemon log:\n%s", buf);
		free(buf);
	}
	if (w.fd >= 0)
		close(w.fd);
}
#define DAEMON_TESTS 14

/* ---- 3b. a hung device stops the watchdog pings -------------------- */

/*
 * INFINID_FAULT=hang:h1 makes the first submission carrying stream h1's
 * inputs take GPU_HANG_MS (8 s) longer.  With a 1 s WATCHDOG_USEC the
 * daemon counts the scheduler stuck after 3 s: it says so in STATUS= and
 * sends no WATCHDOG=1 until the submission completes.
 */
#define HANG_TESTS 3

static void
test_hang(void)
{
#ifndef INFINI_FAULT_INJECTION
	tap_skip(HANG_TESTS, "infinid built without INFINI_FAULT_INJECTION");
#else
	char model[600], conf[600], log[600], nsock[600], url[700];
	struct watch w = { -1, 0, "" };
	char *out = NULL;
	pid_t pid, push;
	int st = -1, pst = -1;

	if (!is_exec(INFINI_CLI)) {
		tap_skip(HANG_TESTS, "no infini CLI");
		return;
	}
	snprintf(model, sizeof(model), "%s/model", tmp);
	snprintf(conf, sizeof(conf), "%s/hang.conf", tmp);
	snprintf(log, sizeof(log), "%s/hang.log", tmp);
	snprintf(nsock, sizeof(nsock), "%s/notify-hang", tmp);
	snprintf(url, sizeof(url), "ipc://%s/hang.sock", tmp);
	fx_write_file(conf, "", 0);
	pid = spawn_notified(&w, model, conf, log, nsock, url, "hang:h1");
	bool up = w.fd >= 0 && expect(&w, "READY=1", 120000) &&
	    cli(url, "open h1", &out) == 0;
	free(out);
	ok(up, "hang: the daemon is ready and stream h1 open");
	if ((push = fork()) == 0) {
		int fd = open("/dev/null", O_WRONLY);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(INFINI_CLI, INFINI_CLI, "--socket", url, "push", "h1",
		    "--text", "hung", (char *)NULL);
		_exit(127);
	}
	/* Pings stop: the stall shows in STATUS=, then 1.5 s of silence
	 * (the hang lasts until about 8 s). */
	bool stalled = up && expect(&w, "STATUS=scheduler stalled", 7000);
	w.pings = 0;
	expect(&w, "WATCHDOG=1", 1500);
	ok(stalled && w.pings == 0, "a hung device: STATUS=%s, no WATCHDOG=1 "
	    "for 1.5 s after it (%d)", w.status, w.pings);
	bool resumed = expect(&w, "WATCHDOG=1", 15000);
	waitpid(push, &pst, 0);
	ok(resumed && WIFEXITED(pst) && WEXITSTATUS(pst) == 0 &&
	    log_has(log, "watchdog pings resume"),
	    "the device back: pings resume and the push completes");
	kill(pid, SIGTERM);
	for (int i = 0; i < 300 && waitpid(pid, &st, WNOHANG) == 0; i++)
		usleep(100000);
	if (!WIFEXITED(st)) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
	}
	if (w.fd >= 0)
		close(w.fd);
#endif
}

/* ---- 4. the manual page knows every key ---------------------------- */

static void
test_man(void)
{
	char cmd[1024], *help = NULL, *man = NULL, *line, *save = NULL;
	size_t n;
	int missing = 0, keys = 0;
	bool in = false;

	snprintf(cmd, sizeof(cmd), "'%s' --help", INFINID);
	fx_run(cmd, &help);
	if (fx_read_file(MAN_DIR "/infinid.conf.5", &man, &n) != 0)
		man = calloc(1, 1);
	for (line = strtok_r(help, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		char key[128], want[160];
		if (strcmp(line, "settings:") == 0) {
			in = true;
			continue;
		}
		if (!in || line[0] == '#' || sscanf(line, "%127[a-z_] =", key) != 1)
			continue;
		keys++;
		snprintf(want, sizeof(want), "\n.B %s\n", key);
		if (strstr(man, want) == NULL) {
			tap_diag("infinid.conf.5 lacks %s", key);
			missing++;
		}
	}
	ok(keys > 10 && missing == 0, "infinid.conf(5) documents all %d keys",
	    keys);
	free(help);
	free(man);
}
#define MAN_TESTS 1

int
main(void)
{
	if (fx_tmpdir(tmp, sizeof(tmp)) != 0) {
		tap_plan_skip_all("cannot make a temporary directory");
		return (0);
	}
	tap_plan(NOTIFY_UNIT_TESTS + UNIT_TESTS + DAEMON_TESTS + HANG_TESTS +
	    MAN_TESTS);
	test_notify_unit();
	test_unit();
	test_daemon();
	test_hang();
	test_man();
	if (!tap_failed)
		fx_rmtree(tmp);
	else
		tap_diag("kept %s", tmp);
	return (tap_done());
}
