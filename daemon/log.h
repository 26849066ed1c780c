/*
 * log.h - leveled logging to stderr (journald picks it up under systemd).
 * LOG() checks the level before formatting anything.
 */
#ifndef INFINI_LOG_H
#define INFINI_LOG_H

#include <syslog.h>

extern int log_level;

void log_write(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* log_parse_level maps "error".."debug" to a syslog level, or -1. */
int log_parse_level(const char *s);

#define LOG(level, ...)                                                    \
	do {                                                               \
		if ((level) <= log_level)                                  \
			log_write((level), __VA_ARGS__);                   \
	} while (0)

#endif
