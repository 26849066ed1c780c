/*
 * notify.c - sd_notify(3) without libsystemd: a datagram to $NOTIFY_SOCKET.
 *
 * The address is a filesystem path, or, with a leading '@', a name in the
 * abstract namespace (the '@' becomes a NUL byte and the address length
 * counts only the bytes used).  Sends never block: a message the manager
 * cannot take right now is dropped, which for STATUS= and WATCHDOG=1 is
 * harmless (the next one follows shortly).  The manager learns the sender's
 * PID from the socket credentials, so NotifyAccess=main works from any
 * thread of the daemon.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "infini_err.h"
#include "notify.h"

#define NOTIFY_MAX 4096

int
notify_init(struct notify *n)
{
	const char *path = getenv("NOTIFY_SOCKET");
	const char *wd = getenv("WATCHDOG_USEC");
	const char *wpid = getenv("WATCHDOG_PID");
	size_t len;

	memset(n, 0, sizeof(*n));
	n->fd = -1;
	if (path == NULL || path[0] == '\0')
		return (0);
	len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || len < 2 ||
	    len > sizeof(n->addr.sun_path))
		return (INFINI_EINVAL);
	n->addr.sun_family = AF_UNIX;
	memcpy(n->addr.sun_path, path, len);
	if (path[0] == '@')
		n->addr.sun_path[0] = '\0';
	n->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	if ((n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) {
		n->fd = -1;
		return (INFINI_EIO);
	}
	/* The watchdog is meant for us unless WATCHDOG_PID names another
	 * process (a wrapper that exec'd us keeps the same PID). */
	if (wd != NULL && (wpid == NULL ||
	    strtol(wpid, NULL, 10) == (long)getpid())) {
		char *end;
		unsigned long long us;
		errno = 0;
		us = strtoull(wd, &end, 10);
		if (errno == 0 && *wd != '\0' && *end == '\0')
			n->watchdog_usec = us;
	}
	return (0);
}

void
notify_fini(struct notify *n)
{
	if (n->fd >= 0)
		close(n->fd);
	n->fd = -1;
}

bool
notify_enabled(const struct notify *n)
{
	return (n->fd >= 0);
}

uint64_t
notify_watchdog_usec(const struct notify *n)
{
	return (n->fd >= 0 ? n->watchdog_usec : 0);
}

int
notify_send(struct notify *n, const char *msg)
{
	if (n->fd < 0)
		return (0);
	if (sendto(n->fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT,
	    (const struct sockaddr *)&n->addr, n->addrlen) < 0)
		return (INFINI_EIO);
	return (0);
}

/* vsend sends prefix and the formatted text as one message; one_line
 * turns the text's newlines into spaces (in a STATUS a newline would start
 * another assignment). */
static int
vsend(struct notify *n, const char *prefix, bool one_line, const char *fmt,
    va_list ap)
{
	char buf[NOTIFY_MAX];
	size_t k;

	if (n->fd < 0)
		return (0);
	k = (size_t)snprintf(buf, sizeof(buf), "%s", prefix);
	vsnprintf(buf + k, sizeof(buf) - k, fmt, ap);
	for (char *p = buf + k; one_line && *p; p++)
		if (*p == '\n')
			*p = ' ';
	return (notify_send(n, buf));
}

int
notify_sendf(struct notify *n, const char *fmt, ...)
{
	va_list ap;
	int rv;

	va_start(ap, fmt);
	rv = vsend(n, "", false, fmt, ap);
	va_end(ap);
	return (rv);
}

int
notify_ready(struct notify *n)
{
	return (notify_send(n, "READY=1"));
}

int
notify_watchdog(struct notify *n)
{
	return (notify_send(n, "WATCHDOG=1"));
}

int
notify_stopping(struct notify *n)
{
	return (notify_send(n, "STOPPING=1"));
}

int
notify_reloading(struct notify *n)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (notify_sendf(n, "RELOADING=1\nMONOTONIC_USEC=%llu",
	    (unsigned long long)ts.tv_sec * 1000000ull +
	    (unsigned long long)ts.tv_nsec / 1000ull));
}

int
notify_status(struct notify *n, const char *fmt, ...)
{
	va_list ap;
	int rv;

	va_start(ap, fmt);
	rv = vsend(n, "STATUS=", true, fmt, ap);
	va_end(ap);
	return (rv);
}
