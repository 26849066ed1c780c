/*
 * nng_compat.c - what the NNG archive from Debian 13 expects of the C
 * library, on a Debian 12 system (deps/fetch-nng.sh explains the archive).
 *
 * The archive's objects were compiled as position-independent executables:
 * their direct references to glibc's stdout and stderr cannot be resolved
 * inside a shared library such as libinfini.so.  fetch-nng.sh renames them
 * to the two variables below, which hold the same streams.
 *
 * It also calls three functions that glibc added in 2.38.  strlcpy is the
 * BSD function; the __isoc23_ variants differ from strtol and strtoull only
 * in accepting a "0b" prefix under base 0 or 2, which NNG never asks for
 * (it parses decimal and hexadecimal numbers).  They are compiled only
 * where the C library lacks them (deps/CMakeLists.txt).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

FILE *nng_compat_stdout;
FILE *nng_compat_stderr;

__attribute__((constructor)) static void
nng_compat_init(void)
{
	nng_compat_stdout = stdout;
	nng_compat_stderr = stderr;
}

#ifndef HAVE_STRLCPY
size_t strlcpy(char *dst, const char *src, size_t size);

size_t
strlcpy(char *dst, const char *src, size_t size)
{
	size_t len = strlen(src);

	if (size > 0) {
		size_t n = len < size - 1 ? len : size - 1;

		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return (len);
}
#endif

#ifndef HAVE_ISOC23_STRTOL
long __isoc23_strtol(const char *s, char **end, int base);
unsigned long long __isoc23_strtoull(const char *s, char **end, int base);

long
__isoc23_strtol(const char *s, char **end, int base)
{
	return (strtol(s, end, base));
}

unsigned long long
__isoc23_strtoull(const char *s, char **end, int base)
{
	return (strtoull(s, end, base));
}
#endif
