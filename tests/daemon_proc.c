/*
 * daemon_proc.c - infinid as a child process of a test (daemon_proc.h).
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon_proc.h"
#include "infini.h"

int
dproc_start(struct dproc *p, const char *dir, const char *model,
    const char *state_dir, const char *const *extra, const char *const *env)
{
	const char *argv[40];
	int n = 0;

	snprintf(p->url, sizeof(p->url), "ipc://%s/s.sock", dir);
	snprintf(p->log, sizeof(p->log), "%s/infinid.log", dir);
	/* An empty settings file of the test's own: the machine's
	 * /etc/infinid/infinid.conf (an installed daemon's) must not count. */
	snprintf(p->conf, sizeof(p->conf), "%s/test.conf", dir);
	if (access(p->conf, F_OK) != 0 && fx_write_file(p->conf, "", 0) != 0)
		return (-1);
	argv[n++] = "infinid";
	argv[n++] = "--config"; argv[n++] = p->conf;
	argv[n++] = "--model"; argv[n++] = model;
	argv[n++] = "--listen"; argv[n++] = p->url;
	argv[n++] = "--state-dir"; argv[n++] = state_dir;
	argv[n++] = "--log-level"; argv[n++] = "notice";
	argv[n++] = "--socket-mode"; argv[n++] = "0666";
	for (int i = 0; extra != NULL && extra[i] != NULL && i < 16; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	if ((p->pid = fork()) < 0)
		return (-1);
	if (p->pid == 0) {
		/* The daemon dies with the test, and its output goes to a
		 * file so that prove never waits on an inherited pipe. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int fd = open(p->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		for (int i = 0; env != NULL && env[i] != NULL && i < 16; i++)
			putenv((char *)env[i]);
		execv(INFINID_PATH, (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < 300; i++) {
		infini_client *c;
		int st;
		if (infini_connect(p->url, 1000, &c) == 0) {
			infini_close(c);
			return (0);
		}
		if (waitpid(p->pid, &st, WNOHANG) == p->pid)
			return (-1);
		usleep(100000);
	}
	kill(p->pid, SIGKILL);
	waitpid(p->pid, NULL, 0);
	return (-1);
}

int
dproc_wait(struct dproc *p, int sig, int timeout_ms)
{
	int st;

	if (sig != 0)
		kill(p->pid, sig);
	for (int t = 0; t <= timeout_ms; t += 20) {
		pid_t r = waitpid(p->pid, &st, WNOHANG);
		if (r == p->pid)
			return (WIFEXITED(st) ? WEXITSTATUS(st) :
			    128 + WTERMSIG(st));
		if (r < 0)
			return (-1);
		usleep(20000);
	}
	kill(p->pid, SIGKILL);
	waitpid(p->pid, NULL, 0);
	return (-1);
}

int
dproc_log_count(const char *path, const char *needle)
{
	char line[4096];
	int n = 0;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return (-1);
	while (fgets(line, sizeof(line), f) != NULL)
		n += strstr(line, needle) != NULL;
	fclose(f);
	return (n);
}

int
dproc_free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t n = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (void *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (void *)&sa, &n) == 0)
		port = ntohs(sa.sin_port);
	if (fd >= 0)
		close(fd);
	return (port);
}
