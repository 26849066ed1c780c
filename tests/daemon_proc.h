/*
 * daemon_proc.h - infinid as a child process of a test: start it on a model
 * and a state directory, wait until it answers, stop it and read its exit
 * status.  Shared by the tests that need a real daemon across restarts
 * (t_spill, t_faults).
 */
#ifndef DAEMON_PROC_H
#define DAEMON_PROC_H

#include <sys/types.h>

#include "fixture.h"
#include "tap.h"

struct dproc {
	pid_t pid;
	char url[512];          /* ipc://DIR/s.sock */
	char log[512];          /* DIR/infinid.log, appended to */
	char conf[512];         /* DIR/test.conf, empty unless a test writes it */
};

/*
 * dproc_start runs INFINID_PATH on model and state_dir, listening on
 * ipc://dir/s.sock, with the settings file dir/test.conf (made empty when
 * missing), with the flags in extra and the "NAME=VALUE" settings in
 * env (both NULL-ended or NULL; at most 16 each) added to the child's
 * environment.  Output goes to dir/infinid.log.  The child dies with the
 * test.  Waits up to 30 s for an answer.  Returns 0, or -1 (the child, if
 * any, is killed).
 */
int dproc_start(struct dproc *p, const char *dir, const char *model,
    const char *state_dir, const char *const *extra, const char *const *env);

/*
 * dproc_wait sends sig (0: none) and waits up to timeout_ms for the child to
 * exit.  Returns its exit status (0-255), 128 + N when signal N killed it,
 * or -1 when it did not exit in time (it is then killed with SIGKILL).
 */
int dproc_wait(struct dproc *p, int sig, int timeout_ms);

/*
 * dproc_log_count counts the lines of the log file at path that contain
 * needle, e.g. "vulkan validation:" (the tests run the daemon with
 * INFINI_VALIDATION=1, and every message of the layer is logged).
 * Returns the count, or -1 when the file cannot be read.
 */
int dproc_log_count(const char *path, const char *needle);

/*
 * dproc_free_port asks the kernel for a loopback TCP port that nothing is
 * bound to (for a daemon's tcp:// or http listener).  Returns it, or -1.
 */
int dproc_free_port(void);

/*
 * dproc_tap_done ends a daemon test: checks that the validation layer said
 * nothing in log (every daemon of the test appends to it), removes dir when
 * every check passed (else keeps it for the log) and returns tap_done().
 */
static inline int
dproc_tap_done(const char *dir, const char *log)
{
	int nval = dproc_log_count(log, "vulkan validation:");

	ok(nval == 0, "the validation layer was on in every daemon and "
	    "reported nothing (%d messages)", nval);
	if (tap_failed == 0)
		fx_rmtree(dir);
	else
		tap_diag("kept %s (daemon log: %s)", dir, log);
	return (tap_done());
}

#endif /* DAEMON_PROC_H */
