/*
 * t_config.c - the settings file parser (daemon/config.c).
 *
 * Checks: a good file sets its keys; a line longer than the read buffer is
 * refused with its line number instead of being read in pieces (a comment
 * of 4112 bytes ending in "max_generate = 7" must not set max_generate); a
 * last line without a newline that exactly fills the buffer is read whole;
 * a directory given as the settings file is refused with a reason; a
 * missing optional file is fine.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "fixture.h"
#include "infini_err.h"
#include "tap.h"

int
main(void)
{
	char dir[256], path[512], err[512];
	struct cfg c;
	char *big;
	size_t n;
	int rv;

	tap_plan(9);
	if (fx_tmpdir(dir, sizeof(dir)) != 0)
		return (1);
	snprintf(path, sizeof(path), "%s/infinid.conf", dir);

	cfg_defaults(&c);
	fx_write_file(path, "# comment\nmax_generate = 9\n", 27);
	rv = cfg_load(&c, path, false, err, sizeof(err));
	ok(rv == 0 && c.max_generate == 9, "a plain file sets its key");

	/* A comment longer than the 4096-byte buffer whose tail, read as a
	 * line of its own, is a setting: '#', spaces to byte 4095, then
	 * "max_generate = 7". */
	big = malloc(8192);
	big[0] = '#';
	memset(big + 1, ' ', 4094);
	n = 4095 + (size_t)sprintf(big + 4095, "max_generate = 7\n");
	cfg_defaults(&c);
	fx_write_file(path, big, n);
	err[0] = '\0';
	rv = cfg_load(&c, path, false, err, sizeof(err));
	ok(rv == INFINI_EINVAL, "a 4112-byte comment line is refused (%s)",
	    err);
	ok(c.max_generate != 7, "its tail did not become a setting "
	    "(max_generate %ld)", c.max_generate);
	ok(strstr(err, ":1:") != NULL && strstr(err, "longer") != NULL,
	    "the error names line 1 and why");

	/* The long line as line 3, after good ones. */
	n = (size_t)sprintf(big, "max_queue = 3\n\n");
	memset(big + n, ' ', 4200);
	n += 4200;
	n += (size_t)sprintf(big + n, "max_generate = 7\n");
	cfg_defaults(&c);
	fx_write_file(path, big, n);
	rv = cfg_load(&c, path, false, err, sizeof(err));
	ok(rv == INFINI_EINVAL && strstr(err, ":3:") != NULL &&
	    c.max_generate != 7, "a long blank line 3 is refused by number "
	    "(%s)", err);

	/* Exactly 4095 bytes, no newline at the end: whole, accepted. */
	memset(big, ' ', 4095);
	memcpy(big, "max_generate = 11", 17);
	cfg_defaults(&c);
	fx_write_file(path, big, 4095);
	rv = cfg_load(&c, path, false, err, sizeof(err));
	ok(rv == 0 && c.max_generate == 11, "a last line of exactly 4095 "
	    "bytes without a newline is read whole (%s)", rv ? err : "ok");
	free(big);

	/* A directory. */
	cfg_defaults(&c);
	err[0] = '\0';
	rv = cfg_load(&c, dir, false, err, sizeof(err));
	ok(rv != 0 && strstr(err, "directory") != NULL,
	    "a directory as the settings file is refused (%s)", err);
	rv = cfg_load(&c, dir, true, err, sizeof(err));
	ok(rv != 0, "even when the file is optional");

	snprintf(path, sizeof(path), "%s/missing.conf", dir);
	ok(cfg_load(&c, path, true, err, sizeof(err)) == 0,
	    "a missing optional file is fine");
	fx_rmtree(dir);
	return (tap_done());
}
