/*
 * notify.h - the service manager's notification protocol (sd_notify(3)),
 * spoken directly: one datagram of newline-separated KEY=VALUE lines to the
 * AF_UNIX socket named by $NOTIFY_SOCKET.  No libsystemd.  Everything is a
 * no-op when the daemon was not started by a manager that listens
 * (NOTIFY_SOCKET unset), so the daemon calls these unconditionally.
 *
 * It only sends; it does not decide when.  The service loop (service.c)
 * does, and main.c announces startup.
 */
#ifndef INFINI_NOTIFY_H
#define INFINI_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

struct notify {
	int fd;                     /* -1: notifications off */
	struct sockaddr_un addr;
	socklen_t addrlen;
	uint64_t watchdog_usec;     /* 0: no watchdog asked for */
};

/*
 * notify_init reads $NOTIFY_SOCKET ("/path" or "@abstract") and, when the
 * watchdog is meant for this process, $WATCHDOG_USEC ($WATCHDOG_PID unset
 * or equal to getpid()).  With NOTIFY_SOCKET unset n is set up disabled and
 * 0 is returned.  Returns INFINI_EINVAL for an unusable address (n is left
 * disabled, so later calls are still safe) or INFINI_EIO when no socket can
 * be made.
 */
int notify_init(struct notify *n);

/* notify_fini closes the socket; n is disabled afterwards. */
void notify_fini(struct notify *n);

/* notify_enabled: will messages go anywhere? */
bool notify_enabled(const struct notify *n);

/* notify_watchdog_usec is the manager's watchdog interval, 0 when off.
 * Ping at half of it. */
uint64_t notify_watchdog_usec(const struct notify *n);

/*
 * notify_send sends msg (one or more "KEY=VALUE" lines) as one datagram.
 * Returns 0 (also when disabled) or INFINI_EIO with errno set.
 */
int notify_send(struct notify *n, const char *msg);

/* notify_sendf formats the message first; over 4 KiB is cut short. */
int notify_sendf(struct notify *n, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The messages the daemon uses.  Each returns as notify_send does. */
int notify_ready(struct notify *n);              /* READY=1 */
int notify_watchdog(struct notify *n);           /* WATCHDOG=1 */
int notify_stopping(struct notify *n);           /* STOPPING=1 */
/* notify_reloading sends RELOADING=1 with MONOTONIC_USEC= (CLOCK_MONOTONIC
 * now), which systemd 253 requires and 252 ignores.  Follow it with
 * notify_ready once the reload is over. */
int notify_reloading(struct notify *n);
/* notify_status sends STATUS=<text>, a one-line state for humans
 * (systemctl status).  Newlines in the text become spaces. */
int notify_status(struct notify *n, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
