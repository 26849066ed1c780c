/*
 * run.c - `infini run ID`: an interactive session on one stream.
 *
 * Each line read is pushed (with its newline) as the prompt of a
 * generation whose tokens are printed as they arrive.  Ctrl-C during an
 * answer cancels that generation on the daemon and returns to the prompt;
 * Ctrl-C at the prompt drops the line being typed; a second Ctrl-C while
 * a cancel is still in flight ends the program.  The stream stays open
 * afterwards: it is the conversation.
 *
 * SIGINT stays blocked (in every thread: libinfini's inherit the mask)
 * except while an answer streams and inside ppoll(), which unblocks it
 * atomically while waiting for a line: a Ctrl-C that lands between printing the
 * prompt and starting to wait is then delivered in the wait instead of
 * being lost (with a plain read() the wait would begin after the handler
 * ran and sit there).  Lines are read from the descriptor directly, so
 * no stdio buffer hides input from the poll.
 *
 * History is a plain file of past prompts, one per line, appended as they
 * are sent (so sessions running at once interleave whole lines); /history
 * lists it.  Line editing is left to the terminal, or to rlwrap(1).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* How many past prompts /history shows. */
#define RUN_HISTORY_SHOW 50

static volatile sig_atomic_t run_busy;   /* an answer is being generated */

static void
run_on_sigint(int sig)
{
	(void)sig;
	if (cli_interrupted && run_busy) {
		/* The cancel is taking long: give up on it. */
		signal(SIGINT, SIG_DFL);
		raise(SIGINT);
		return;
	}
	cli_interrupted = 1;
}

/* run_catch_sigint installs the handler without SA_RESTART, so that a
 * Ctrl-C at the prompt interrupts the wait. */
static void
run_catch_sigint(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = run_on_sigint;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
}

/* The lines of stdin, read from the descriptor. */
struct line_in {
	char *buf;
	size_t len, cap;
	bool eof;
};

/*
 * read_line waits for the next line of stdin (SIGINT blocked by the
 * caller; waitmask is the mask to wait under) and returns it, without its
 * line end, NUL-terminated in *line (malloc'd; the caller frees it).
 * Returns 1 for a line (the last one may lack its newline), 0 at the end
 * of input, -1 when Ctrl-C came first, -2 on a read error.
 */
static int
read_line(struct line_in *in, const sigset_t *waitmask, char **line)
{
	for (;;) {
		char *nl = in->len ? memchr(in->buf, '\n', in->len) : NULL;
		size_t n = nl ? (size_t)(nl - in->buf) : in->len;

		if (nl != NULL || (in->eof && in->len > 0)) {
			if ((*line = malloc(n + 1)) == NULL)
				return (-2);
			memcpy(*line, in->buf, n);
			(*line)[n] = '\0';
			n += nl != NULL;
			memmove(in->buf, in->buf + n, in->len - n);
			in->len -= n;
			return (1);
		}
		if (in->eof)
			return (0);
		if (cli_interrupted)
			return (-1);
		struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
		if (ppoll(&p, 1, NULL, waitmask) < 0) {
			if (errno == EINTR)
				continue;   /* the flag decides, above */
			return (-2);
		}
		if (in->len == in->cap) {
			size_t cap = in->cap ? 2 * in->cap : 4096;
			char *b = realloc(in->buf, cap);
			if (b == NULL)
				return (-2);
			in->buf = b;
			in->cap = cap;
		}
		ssize_t k = read(STDIN_FILENO, in->buf + in->len,
		    in->cap - in->len);
		if (k < 0 && errno != EINTR && errno != EAGAIN)
			return (-2);
		if (k == 0)
			in->eof = true;
		if (k > 0)
			in->len += (size_t)k;
	}
}

/* mkdirs creates the directories above path (mode 0700), like mkdir -p. */
static void
mkdirs(const char *path)
{
	char buf[4096];

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return;
	for (char *p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		(void)mkdir(buf, 0700);
		*p = '/';
	}
}

/* history_path picks the history file: --history, else on a terminal
 * $INFINI_HISTORY or the XDG state directory; NULL for none. */
static char *
history_path(const char *opt, bool none, bool tty)
{
	const char *env = getenv("INFINI_HISTORY"), *home = getenv("HOME");
	const char *xdg = getenv("XDG_STATE_HOME");
	char buf[4096];

	if (none)
		return (NULL);
	if (opt != NULL)
		return (strdup(opt));
	if (!tty)
		return (NULL);
	if (env != NULL && env[0] != '\0')
		return (strdup(env));
	if (xdg != NULL && xdg[0] == '/')
		snprintf(buf, sizeof(buf), "%s/infini/history", xdg);
	else if (home != NULL && home[0] == '/')
		snprintf(buf, sizeof(buf), "%s/.local/state/infini/history",
		    home);
	else
		return (NULL);
	mkdirs(buf);
	return (strdup(buf));
}

/* history_add appends one prompt (without its newline); a failure only
 * costs the history, so it is reported once and otherwise ignored. */
static void
history_add(const char *path, const char *line, size_t len)
{
	static bool warned;
	int fd;

	if (path == NULL)
		return;
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, line, len) != (ssize_t)len ||
	    write(fd, "\n", 1) != 1) {
		if (!warned)
			fprintf(stderr, "infini: run: history %s: %s\n", path,
			    strerror(errno));
		warned = true;
	}
	if (fd >= 0)
		close(fd);
}

/* history_show prints the last RUN_HISTORY_SHOW prompts, numbered. */
static void
history_show(const char *path)
{
	char *lines[RUN_HISTORY_SHOW] = { 0 }, *l = NULL;
	size_t cap = 0, n = 0;
	FILE *f;

	if (path == NULL || (f = fopen(path, "r")) == NULL) {
		fprintf(stderr, "(no history)\n");
		return;
	}
	while (getline(&l, &cap, f) > 0) {
		free(lines[n % RUN_HISTORY_SHOW]);
		lines[n % RUN_HISTORY_SHOW] = l;
		l = NULL;
		cap = 0;
		n++;
	}
	free(l);
	fclose(f);
	for (size_t i = n > RUN_HISTORY_SHOW ? n - RUN_HISTORY_SHOW : 0; i < n;
	    i++) {
		printf("%5zu  %s", i + 1, lines[i % RUN_HISTORY_SHOW]);
		free(lines[i % RUN_HISTORY_SHOW]);
	}
	fflush(stdout);
}

int
cmd_run(struct cli *g, int argc, char **argv)
{
	enum { O_HIST = 3000, O_NOHIST };
	static const struct option lo[] = { CLI_GLOBAL_OPTS, CLI_GEN_OPTS,
		{ "history", required_argument, NULL, O_HIST },
		{ "no-history", no_argument, NULL, O_NOHIST }, { 0 } };
	const char *hopt = NULL, *id;
	char *hist = NULL, *line = NULL, *prompt = NULL;
	struct cli_gen_result res;
	bool nohist = false, tty = isatty(STDIN_FILENO), created = false;
	struct line_in in = { 0 };
	sigset_t intr, orig, waitmask;
	bool masked = false;
	struct cli_gen o;
	int ch, rc, err, last = 0;

	if ((rc = cli_gen_init(&o, argc)) != 0)
		return (rc);
	o.max = 256;
	optind = 0;
	while ((ch = getopt_long(argc, argv, ":hn:", lo, NULL)) != -1) {
		if (ch == O_HIST)
			hopt = optarg;
		else if (ch == O_NOHIST)
			nohist = true;
		else if ((rc = cli_gen_opt(g, ch, &o)) > 0)
			goto done;
		else if (rc < 0 && (rc = cli_opt(g, ch, argv)) >= 0)
			goto done;
	}
	if ((rc = cli_args(g, argc - optind, 1, 1)) != 0)
		goto done;
	if (hopt != NULL && nohist) {
		rc = cli_usage(g, "give --history or --no-history, not both");
		goto done;
	}
	id = argv[optind];
	if ((rc = cli_gen_check(g, &o)) != 0)
		goto done;
	/* Blocked before connecting, so that libinfini's threads (NNG's,
	 * started by the first socket) inherit the block: SIGINT, sent to the
	 * process, must reach this thread in its wait, not a thread of
	 * theirs that would set the flag while this one sleeps on. */
	sigemptyset(&intr);
	sigaddset(&intr, SIGINT);
	run_catch_sigint();
	sigprocmask(SIG_BLOCK, &intr, &orig);
	masked = true;
	waitmask = orig;
	sigdelset(&waitmask, SIGINT);
	if ((rc = cli_connect(g)) != 0)
		goto done;
	if ((err = infini_open(g->c, id, true, NULL, &created)) != 0) {
		rc = cli_fail(g, err);
		goto done;
	}
	hist = history_path(hopt, nohist, tty);
	if (tty)
		fprintf(stderr, "infini run: %s stream '%s'. Ctrl-C cancels an "
		    "answer; Ctrl-D or /quit ends.\n", created ? "new" :
		    "existing", id);
	for (;;) {
		if (tty) {
			fputs("> ", stdout);
			fflush(stdout);
		}
		free(line);
		line = NULL;
		int r = read_line(&in, &waitmask, &line);
		if (r == -1) {
			/* Ctrl-C at the prompt drops the line. */
			cli_interrupted = 0;
			if (tty)
				putchar('\n');
			continue;
		}
		if (r == -2) {
			fprintf(stderr, "infini: run: reading input: %s\n",
			    strerror(errno));
			rc = CLI_EXIT_REQUEST;
			goto done;
		}
		if (r == 0)
			break;
		size_t len = strlen(line);
		while (len > 0 && line[len - 1] == '\r')
			len--;
		if (len == 0)
			continue;
		line[len] = '\0';
		if (strcmp(line, "/quit") == 0 || strcmp(line, "/exit") == 0)
			break;
		if (strcmp(line, "/history") == 0) {
			history_show(hist);
			continue;
		}
		history_add(hist, line, len);
		free(prompt);
		if ((prompt = malloc(len + 2)) == NULL) {
			fprintf(stderr, "infini: run: out of memory\n");
			rc = CLI_EXIT_REQUEST;
			goto done;
		}
		/* The prompt keeps its newline: the model sees line breaks. */
		memcpy(prompt, line, len);
		memcpy(prompt + len, "\n", 2);
		/* Ctrl-C must reach on_token while the answer streams. */
		run_busy = 1;
		sigprocmask(SIG_UNBLOCK, &intr, NULL);
		err = cli_gen_run(g, id, prompt, &o, &res);
		sigprocmask(SIG_BLOCK, &intr, NULL);
		run_busy = 0;
		if (!g->json && !res.ends_nl)
			putchar('\n');
		fflush(stdout);
		if (err == INFINI_ECANCELED && cli_interrupted) {
			fprintf(stderr, "[cancelled after %zu tokens]\n",
			    res.ntokens);
			cli_interrupted = 0;
			last = 0;
		} else if (err < 0) {
			rc = CLI_EXIT_REQUEST;
			goto done;
		} else if (err != 0) {
			/* The session goes on: the next line may work. */
			last = cli_fail(g, err);
		} else {
			last = 0;
		}
	}
	if (tty)
		putchar('\n');
	rc = last;
done:
	if (masked)
		sigprocmask(SIG_SETMASK, &orig, NULL);
	free(line);
	free(in.buf);
	free(prompt);
	free(hist);
	cli_gen_fini(&o);
	return (rc);
}
