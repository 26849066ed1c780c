/*
 * log.c - the daemon's log lines: "<N>infinid: level: message" where <N> is
 * the syslog priority prefix journald understands on stderr.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

int log_level = LOG_INFO;

static const char *const names[] = { "emerg", "alert", "crit", "error",
	"warning", "notice", "info", "debug" };

void
log_write(int level, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "<%d>infinid: %s: %s\n", level, names[level & 7], buf);
}

int
log_parse_level(const char *s)
{
	for (int i = 0; i < 8; i++)
		if (strcmp(s, names[i]) == 0)
			return (i);
	if (strcmp(s, "warn") == 0)
		return (LOG_WARNING);
	return (-1);
}
