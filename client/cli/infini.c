/*
 * infini.c - the infini command-line tool: main, the options and helpers
 * every subcommand shares, and the subcommands that are one daemon call
 * each (status, open, close, fork, ls, stats, snapshot, restore, snapshots,
 * rm-snapshot).  The ones that move data are in stream.c.
 *
 * It uses only the public libinfini API.  Exit codes are part of its
 * interface (usage() lists them), so scripts can tell a refused request
 * from a bad command line, a missing daemon or Ctrl-C.
 */
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

volatile sig_atomic_t cli_interrupted;

struct command {
	const char *name;
	int (*fn)(struct cli *, int, char **);
	const char *args;
	const char *help;
};

static const struct command commands[];

static void
usage(FILE *f)
{
	fprintf(f,
"usage: infini [--socket URL] [--timeout MS] [--json] COMMAND [ARGS]\n"
"\n"
"Talk to the infinid daemon.\n"
"\n"
"Commands ('infini COMMAND --help' shows the arguments):\n");
	/* The first line of each command's help is its summary. */
	for (const struct command *c = commands; c->name != NULL; c++)
		fprintf(f, "  %-11s %.*s\n", c->name,
		    (int)strcspn(c->help, "\n"), c->help);
	fprintf(f,
"\n"
"Options (also accepted after COMMAND):\n"
"  --socket URL   daemon socket (ipc://PATH or tcp://HOST:PORT); default\n"
"                 $INFINI_SOCKET, else " INFINI_DEFAULT_SOCKET "\n"
"  --timeout MS   deadline for connecting and for each request\n"
"                 (default: 10000 to connect, 60000 per request)\n"
"  --json         machine-readable output (one JSON object on stdout;\n"
"                 generate and run: one per token, then a final one)\n"
"  --plain-special  special-token strings in --text / --prompt are plain\n"
"                 text (default: they become their tokens)\n"
"  -h, --help     this text; 'infini COMMAND --help' for a command\n"
"  --version      print the version\n"
"\n"
"Exit status:\n"
"  0    success\n"
"  1    the daemon refused or failed the request (message on stderr)\n"
"  2    bad command line, or a local file named on it does not exist\n"
"  3    cannot connect to the daemon\n"
"  130  cancelled by Ctrl-C\n");
}

static const struct command *
find_command(const char *name)
{
	for (const struct command *c = commands; c->name != NULL; c++)
		if (strcmp(c->name, name) == 0)
			return (c);
	return (NULL);
}

/* ---- shared helpers ------------------------------------------------ */

static void
on_sigint(int sig)
{
	(void)sig;
	cli_interrupted = 1;
	/* A second Ctrl-C kills at once, should the daemon not answer. */
	signal(SIGINT, SIG_DFL);
}

void
cli_catch_sigint(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigint;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
}

double
cli_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((double)ts.tv_sec + (double)ts.tv_nsec * 1e-9);
}

void
cli_json_out(cJSON *o)
{
	char *s = o ? cJSON_PrintUnformatted(o) : NULL;

	if (s != NULL) {
		fputs(s, stdout);
		fputc('\n', stdout);
		fflush(stdout);
	} else {
		fprintf(stderr, "infini: out of memory writing JSON\n");
	}
	free(s);
	cJSON_Delete(o);
}

static void
json_error(struct cli *g, const char *name, const char *msg)
{
	cJSON *o = cJSON_CreateObject(), *e;

	if (o == NULL)
		return;
	e = cJSON_AddObjectToObject(o, "error");
	cJSON_AddStringToObject(e, "command", g->cmd ? g->cmd : "");
	cJSON_AddStringToObject(e, "code", name);
	cJSON_AddStringToObject(e, "message", msg);
	cli_json_out(o);
}

int
cli_fail(struct cli *g, int err)
{
	const char *m = infini_errmsg();

	if (m == NULL || m[0] == '\0')
		m = infini_strerror(err);
	fprintf(stderr, "infini: %s: %s\n", g->cmd, m);
	if (g->json)
		json_error(g, infini_errname(err), m);
	if (err == INFINI_ECANCELED && cli_interrupted)
		return (CLI_EXIT_INTR);
	return (CLI_EXIT_REQUEST);
}

int
cli_usage(struct cli *g, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (g->cmd != NULL)
		fprintf(stderr, "infini: %s: %s\nTry 'infini %s --help'.\n",
		    g->cmd, msg, g->cmd);
	else
		fprintf(stderr, "infini: %s\nTry 'infini --help'.\n", msg);
	if (g->json)
		json_error(g, "USAGE", msg);
	return (CLI_EXIT_USAGE);
}

int
cli_file_error(struct cli *g, const char *path)
{
	int e = errno;

	fprintf(stderr, "infini: %s: %s: %s\n", g->cmd, path, strerror(e));
	if (g->json)
		json_error(g, e == ENOENT ? "ENOENT" : "EIO", strerror(e));
	return (e == ENOENT ? CLI_EXIT_NOFILE : CLI_EXIT_REQUEST);
}

/*
 * perm_hint explains a refused ipc:// socket: the daemon's socket is
 * usually mode 0660 and group-owned, so the fix is joining that group
 * (which takes a new login to apply).
 */
static void
perm_hint(const char *url)
{
	const char *path;
	struct group *gr;
	struct stat st;

	if (url == NULL || url[0] == '\0')
		url = getenv("INFINI_SOCKET");
	if (url == NULL || url[0] == '\0')
		url = INFINI_DEFAULT_SOCKET;
	if (strncmp(url, "ipc://", 6) != 0)
		return;
	path = url + 6;
	/* A socket we may open was not the problem (the daemon refused us
	 * itself), and one we cannot see needs no hint about its group. */
	if (stat(path, &st) != 0 || access(path, R_OK | W_OK) == 0)
		return;
	if ((st.st_mode & 0060) == 0060 && st.st_gid != 0 &&
	    (gr = getgrgid(st.st_gid)) != NULL)
		fprintf(stderr, "infini: permission denied on %s: add yourself "
		    "to group %s (sudo adduser $USER %s) and log in again\n",
		    path, gr->gr_name, gr->gr_name);
	else
		fprintf(stderr, "infini: permission denied on %s (mode %04o, "
		    "owner uid %u, group gid %u): ask the daemon's "
		    "administrator for access\n", path,
		    (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid,
		    (unsigned)st.st_gid);
}

int
cli_connect(struct cli *g)
{
	int err;

	err = infini_connect(g->socket, g->timeout_ms > 0 ? g->timeout_ms :
	    10000, &g->c);
	if (err != 0) {
		int rc = cli_fail(g, err);
		if (err == INFINI_EPERM)
			perm_hint(g->socket);
		return (err == INFINI_EUNAVAILABLE || err == INFINI_EPERM ||
		    err == INFINI_EINVAL ? CLI_EXIT_CONNECT : rc);
	}
	if (g->timeout_ms > 0)
		infini_set_timeout(g->c, g->timeout_ms);
	infini_set_text_flags(g->c, g->text_flags);
	return (0);
}

int
cli_parse_u64(struct cli *g, const char *what, const char *s, uint64_t max,
    uint64_t *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (s[0] == '\0' || s[0] == '-' || *end != '\0' || errno != 0 ||
	    v > max)
		return (cli_usage(g, "bad %s '%s'", what, s));
	*out = v;
	return (0);
}

int
cli_parse_float(struct cli *g, const char *what, const char *s, float *out)
{
	char *end;
	float v;

	errno = 0;
	v = strtof(s, &end);
	if (s[0] == '\0' || *end != '\0' || errno != 0 || v != v)
		return (cli_usage(g, "bad %s '%s'", what, s));
	*out = v;
	return (0);
}

int
cli_parse_tokens(struct cli *g, const char *s, int32_t **out, size_t *n)
{
	size_t cap = 16, k = 0;
	int32_t *v = malloc(cap * sizeof(*v));

	while (v != NULL) {
		char *end;
		long t;

		while (*s == ',' || *s == ' ' || *s == '\t' || *s == '\n')
			s++;
		if (*s == '\0')
			break;
		errno = 0;
		t = strtol(s, &end, 10);
		if (end == s || errno != 0 || t < 0 || t > INT32_MAX ||
		    (*end != '\0' && *end != ',' && *end != ' ' &&
		    *end != '\t' && *end != '\n')) {
			free(v);
			return (cli_usage(g, "bad token list near '%.20s'", s));
		}
		if (k == cap) {
			int32_t *nv = realloc(v, 2 * cap * sizeof(*v));
			if (nv == NULL)
				break;
			v = nv;
			cap *= 2;
		}
		v[k++] = (int32_t)t;
		s = end;
	}
	if (v == NULL || (k == cap && *s != '\0')) {
		free(v);
		fprintf(stderr, "infini: out of memory\n");
		return (CLI_EXIT_REQUEST);
	}
	if (k == 0) {
		free(v);
		return (cli_usage(g, "empty token list"));
	}
	*out = v;
	*n = k;
	return (0);
}

static int
help(struct cli *g)
{
	const struct command *c = find_command(g->cmd);

	printf("usage: infini %s %s\n\n%s\n", c->name, c->args, c->help);
	printf("\nGlobal options --socket URL, --timeout MS and --json apply; "
	    "exit status as in 'infini --help'.\n");
	return (0);
}

int
cli_opt(struct cli *g, int ch, char **argv)
{
	uint64_t v;

	switch (ch) {
	case OPT_SOCKET:
		g->socket = optarg;
		return (-1);
	case OPT_TIMEOUT:
		if (cli_parse_u64(g, "timeout", optarg, INT32_MAX, &v) != 0)
			return (CLI_EXIT_USAGE);
		g->timeout_ms = (int)v;
		return (-1);
	case OPT_JSON:
		g->json = true;
		return (-1);
	case OPT_PLAIN_SPECIAL:
		g->text_flags |= INFINI_TEXT_PLAIN_SPECIAL;
		return (-1);
	case 'h':
		return (help(g));
	case ':':
		return (cli_usage(g, "option '%s' needs a value",
		    argv[optind - 1]));
	default:
		return (cli_usage(g, "unknown option '%s'", argv[optind - 1]));
	}
}

int
cli_args(struct cli *g, int n, int min, int max)
{
	if (n < min)
		return (cli_usage(g, "missing argument"));
	if (n > max)
		return (cli_usage(g, "too many arguments"));
	return (0);
}

/* simple_opts parses a subcommand that takes only the global options. */
static int
simple_opts(struct cli *g, int argc, char **argv)
{
	static const struct option lo[] = { CLI_GLOBAL_OPTS, { 0 } };
	int ch, rc;

	optind = 0;
	while ((ch = getopt_long(argc, argv, ":h", lo, NULL)) != -1)
		if ((rc = cli_opt(g, ch, argv)) >= 0)
			return (rc);
	return (-1);
}

/* write_file stores len bytes at path, removing a partial file. */
static int
write_file(const char *path, const uint8_t *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	if (f == NULL)
		goto fail;
	if (fwrite(data, 1, len, f) != len || fflush(f) != 0) {
		fclose(f);
		remove(path);
		goto fail;
	}
	if (fclose(f) != 0) {
		remove(path);
		goto fail;
	}
	return (0);
fail:
	fprintf(stderr, "infini: %s: %s\n", path, strerror(errno));
	return (CLI_EXIT_REQUEST);
}

static int
read_file(const char *path, uint8_t **data, size_t *len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	size_t cap = 1 << 16, n = 0, k;
	uint8_t *buf = NULL, *nb;

	if (f == NULL)
		goto fail;
	for (;;) {
		if ((nb = realloc(buf, cap)) == NULL) {
			errno = ENOMEM;
			goto fail;
		}
		buf = nb;
		if ((k = fread(buf + n, 1, cap - n, f)) == 0)
			break;
		n += k;
		if (n == cap)
			cap *= 2;
	}
	if (ferror(f))
		goto fail;
	if (f != stdin)
		fclose(f);
	*data = buf;
	*len = n;
	return (0);
fail:;
	int e = errno;
	fprintf(stderr, "infini: %s: %s\n", path, strerror(e));
	if (f != NULL && f != stdin)
		fclose(f);
	free(buf);
	return (e == ENOENT ? CLI_EXIT_NOFILE : CLI_EXIT_REQUEST);
}

/* ---- one-call subcommands ------------------------------------------ */

static int
cmd_status(struct cli *g, int argc, char **argv)
{
	struct infini_health h;
	int rc, err;

	if ((rc = simple_opts(g, argc, argv)) >= 0 ||
	    (rc = cli_args(g, argc - optind, 0, 0)) != 0 ||
	    (rc = cli_connect(g)) != 0)
		return (rc);
	if ((err = infini_health(g->c, &h)) != 0)
		return (cli_fail(g, err));
	if (g->json) {
		cJSON *o = cJSON_CreateObject();
		char fp[24];

		snprintf(fp, sizeof(fp), "%016" PRIx64, h.model_fingerprint);
		cJSON_AddStringToObject(o, "version", h.version);
		cJSON_AddStringToObject(o, "model", h.model);
		cJSON_AddStringToObject(o, "model_fingerprint", fp);
		cJSON_AddStringToObject(o, "device", h.device);
		cJSON_AddNumberToObject(o, "hidden_size", h.hidden_size);
		cJSON_AddNumberToObject(o, "vocab_size", h.vocab_size);
		cJSON_AddNumberToObject(o, "segment_size", h.segment_size);
		cJSON_AddNumberToObject(o, "streams", h.streams);
		cJSON_AddNumberToObject(o, "uptime_ms", (double)h.uptime_ms);
		cli_json_out(o);
		return (0);
	}
	printf("daemon    infinid %s, up %.1f s\n", h.version,
	    (double)h.uptime_ms / 1000.0);
	printf("model     %s (fingerprint %016" PRIx64 ")\n", h.model,
	    h.model_fingerprint);
	printf("          hidden %u, vocab %u, segment %u tokens\n",
	    h.hidden_size, h.vocab_size, h.segment_size);
	printf("device    %s\n", h.device);
	printf("streams   %u\n", h.streams);
	return (0);
}

static int
cmd_open(struct cli *g, int argc, char **argv)
{
	static const struct option lo[] = { CLI_GLOBAL_OPTS,
		{ "reuse", no_argument, NULL, 'r' }, { 0 } };
	char id[INFINI_ID_MAX + 1];
	bool reuse = false, created = false;
	int ch, rc, err;

	optind = 0;
	while ((ch = getopt_long(argc, argv, ":hr", lo, NULL)) != -1) {
		if (ch == 'r')
			reuse = true;
		else if ((rc = cli_opt(g, ch, argv)) >= 0)
			return (rc);
	}
	if ((rc = cli_args(g, argc - optind, 0, 1)) != 0 ||
	    (rc = cli_connect(g)) != 0)
		return (rc);
	if ((err = infini_open(g->c, optind < argc ? argv[optind] : NULL,
	    reuse, id, &created)) != 0)
		return (cli_fail(g, err));
	if (g->json) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "stream_id", id);
		cJSON_AddBoolToObject(o, "created", created);
		cli_json_out(o);
	} else {
		printf("%s\n", id);
	}
	return (0);
}

/* one_name runs a command whose one argument is a name handed to fn: its
 * JSON says {key: name}, its text says what (NULL: nothing). */
static int
one_name(struct cli *g, int argc, char **argv,
    int (*fn)(infini_client *, const char *), const char *key,
    const char *what)
{
	int rc, err;

	if ((rc = simple_opts(g, argc, argv)) >= 0 ||
	    (rc = cli_args(g, argc - optind, 1, 1)) != 0 ||
	    (rc = cli_connect(g)) != 0)
		return (rc);
	if ((err = fn(g->c, argv[optind])) != 0)
		return (cli_fail(g, err));
	if (g->json) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, key, argv[optind]);
		cli_json_out(o);
	} else if (what != NULL)
		printf("%s '%s'\n", what, argv[optind]);
	return (0);
}

static int
cmd_close(struct cli *g, int argc, char **argv)
{
	return (one_name(g, argc, argv, infini_close_stream, "closed", NULL));
}

static int
cmd_fork(struct cli *g, int argc, char **argv)
{
	char id[INFINI_ID_MAX + 1];
	int rc, err;

	if ((rc = simple_opts(g, argc, argv)) >= 0 ||
	    (rc = cli_args(g, argc - optind, 1, 2)) != 0 ||
	    (rc = cli_connect(g)) != 0)
		return (rc);
	if ((err = infini_fork(g->c, argv[optind], optind + 1 < argc ?
	    argv[optind + 1] : NULL, id)) != 0)
		return (cli_fail(g, err));
	if (g->json) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "stream_id", id);
		cJSON_AddStringToObject(o, "parent", argv[optind]);
		cli_json_out(o);
	} else {
		printf("%s\n", id);
	}
	return (0);
}

/* owner_name: the user name of uid, or the number when it has none
 * here (a stream opened from another machine, a deleted user). */
static void
owner_name(uint32_t uid, char *buf, size_t n)
{
	struct passwd *pw = getpwuid((uid_t)uid);

	if (pw != NULL)
		snprintf(buf, n, "%s", pw->pw_name);
	else
		snprintf(buf, n, "%u", (unsigned)uid);
}

static int
cmd_ls(struct cli *g, int argc, char **argv)
{
	struct infini_stream_info *v;
	char owner[64];
	size_t n;
	int rc, err;

	if ((rc = simple_opts(g, argc, argv)) >= 0 ||
	    (rc = cli_args(g, argc - optind, 0, 0)) != 0 ||
	    (rc = cli_connect(g)) != 0)
		return (rc);
	if ((err = infini_list(g->c, &v, &n)) != 0)
		return (cli_fail(g, err));
	if (g->json) {
		cJSON *o = cJSON_CreateObject();
		cJSON *a = cJSON_AddArrayToObject(o, "streams");
		for (size_t i = 0; i < n; i++) {
			cJSON *s = cJSON_CreateObject();
			cJSON_AddStringToObject(s, "stream_id", v[i].id);
			cJSON_AddNumberToObject(s, "position",
			    (double)v[i].position);
			cJSON_AddNumberToObject(s, "segments",
			    (double)v[i].segments);
			cJSON_AddNumberToObject(s, "owner_uid", v[i].owner_uid);
			owner_name(v[i].owner_uid, owner, sizeof(owner));
			cJSON_AddStringToObject(s, "owner", owner);
			cJSON_AddNumberToObject(s, "idle_ms",
			    (double)v[i].idle_ms);
			cJSON_AddBoolToObject(s, "generating", v[i].generating);
			cJSON_AddBoolToObject(s, "resident", v[i].resident);
			cJSON_AddItemToArray(a, s);
		}
		cli_json_out(o);
	} else {
		printf("%-24s %12s %9s %-10s %9s %-10s %s\n", "STREAM",
		    "POSITION", "SEGMENTS", "OWNER", "IDLE_S", "GENERATING",
		    "RESIDENT");
		for (size_t i = 0; i < n; i++) {
			owner_name(v[i].owner_uid, owner, sizeof(owner));
			printf("%-24s %12" PRIu64 " %9" PRIu64 " %-10s %9.1f "
			    "%-10s %s\n", v[i].id, v[i].position, v[i].segments,
			    owner, (double)v[i].idle_ms / 1000.0,
			    v[i].generating ? "yes" : "no",
			    v[i].resident ? "yes" : "no");
		}
	}
	infini_list_free(v);
	return (0);
}

static int
cmd_stats(struct cli *g, int argc, char **argv)
{
	struct infini_stats s;
	int rc, err;

	if ((rc = simple_opts(g, argc, argv)) >= 0 ||
	    (rc = cli_args(g, argc - optind, 0, 0)) != 0 ||
	    (rc = cli_connect(g)) != 0)
		return (rc);
	if ((err = infini_stats(g->c, &s)) != 0)
		return (cli_fail(g, err));
	/* One table drives both output forms. */
	const struct { const char *k; double v; } row[] = {
		{ "requests", (double)s.requests },
		{ "errors", (double)s.errors },
		{ "tokens_in", (double)s.tokens_in },
		{ "tokens_out", (double)s.tokens_out },
		{ "submissions", (double)s.submissions },
		{ "device_busy_us", (double)s.device_busy_us },
		{ "streams", (double)s.streams },
		{ "max_streams", (double)s.max_streams },
		{ "max_resident_streams", (double)s.max_resident_streams },
		{ "resident_streams", (double)s.resident_streams },
		{ "page_ins", (double)s.page_ins },
		{ "evictions", (double)s.evictions },
		{ "autosnapshots", (double)s.autosnapshots },
		{ "spill_errors", (double)s.spill_errors },
		{ "state_bytes_per_stream", (double)s.state_bytes_per_stream },
		{ "uptime_ms", (double)s.uptime_ms },
	};
	cJSON *o = g->json ? cJSON_CreateObject() : NULL;
	for (size_t i = 0; i < sizeof(row) / sizeof(row[0]); i++) {
		if (o != NULL)
			cJSON_AddNumberToObject(o, row[i].k, row[i].v);
		else
			printf("%-24s %.0f\n", row[i].k, row[i].v);
	}
	if (g->json)
		cli_json_out(o);
	return (0);
}

static int
cmd_snapshot(struct cli *g, int argc, char **argv)
{
	static const struct option lo[] = { CLI_GLOBAL_OPTS,
		{ "name", required_argument, NULL, 'n' },
		{ "export", required_argument, NULL, 'e' },
		{ "force", no_argument, NULL, 'f' }, { 0 } };
	const char *name = NULL, *file = NULL;
	uint8_t *data = NULL;
	unsigned flags = 0;
	size_t len = 0;
	int ch, rc, err;

	optind = 0;
	while ((ch = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
		if (ch == 'n')
			name = optarg;
		else if (ch == 'e')
			file = optarg;
		else if (ch == 'f')
			flags |= INFINI_SNAP_OVERWRITE;
		else if ((rc = cli_opt(g, ch, argv)) >= 0)
			return (rc);
	}
	if ((rc = cli_args(g, argc - optind, 1, 1)) != 0)
		return (rc);
	if (name == NULL && file == NULL)
		return (cli_usage(g, "give --name NAME, --export FILE or both"));
	if ((rc = cli_connect(g)) != 0)
		return (rc);
	if ((err = infini_snapshot_ex(g->c, argv[optind], name, flags,
	    file ? &data : NULL, &len)) != 0)
		return (cli_fail(g, err));
	if (file != NULL && (rc = write_file(file, data, len)) != 0) {
		infini_data_free(data);
		return (rc);
	}
	infini_data_free(data);
	if (g->json) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "stream_id", argv[optind]);
		cJSON_AddNumberToObject(o, "bytes", (double)len);
		if (name)
			cJSON_AddStringToObject(o, "name", name);
		if (file)
			cJSON_AddStringToObject(o, "export", file);
		cli_json_out(o);
	} else {
		printf("snapshot of '%s': %zu bytes", argv[optind], len);
		if (name)
			printf(", saved as '%s'", name);
		if (file)
			printf(", exported to %s", file);
		printf("\n");
	}
	return (0);
}

static int
cmd_restore(struct cli *g, int argc, char **argv)
{
	static const struct option lo[] = { CLI_GLOBAL_OPTS,
		{ "name", required_argument, NULL, 'n' },
		{ "import", required_argument, NULL, 'i' }, { 0 } };
	const char *name = NULL, *file = NULL;
	uint8_t *data = NULL;
	uint64_t pos = 0;
	size_t len = 0;
	int ch, rc, err;

	optind = 0;
	while ((ch = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
		if (ch == 'n')
			name = optarg;
		else if (ch == 'i')
			file = optarg;
		else if ((rc = cli_opt(g, ch, argv)) >= 0)
			return (rc);
	}
	if ((rc = cli_args(g, argc - optind, 1, 1)) != 0)
		return (rc);
	if ((name == NULL) == (file == NULL))
		return (cli_usage(g, "give exactly one of --name NAME or "
		    "--import FILE"));
	if (file != NULL && (rc = read_file(file, &data, &len)) != 0)
		return (rc);
	if ((rc = cli_connect(g)) != 0) {
		free(data);
		return (rc);
	}
	err = infini_restore(g->c, argv[optind], name, data, len, &pos);
	free(data);
	if (err != 0)
		return (cli_fail(g, err));
	if (g->json) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "stream_id", argv[optind]);
		cJSON_AddNumberToObject(o, "position", (double)pos);
		cli_json_out(o);
	} else {
		printf("restored '%s' at position %" PRIu64 "\n", argv[optind],
		    pos);
	}
	return (0);
}

static int
cmd_snapshots(struct cli *g, int argc, char **argv)
{
	struct infini_snapshot_info *v;
	size_t n;
	int rc, err;

	if ((rc = simple_opts(g, argc, argv)) >= 0 ||
	    (rc = cli_args(g, argc - optind, 0, 0)) != 0 ||
	    (rc = cli_connect(g)) != 0)
		return (rc);
	if ((err = infini_list_snapshots(g->c, &v, &n)) != 0)
		return (cli_fail(g, err));
	if (g->json) {
		cJSON *o = cJSON_CreateObject();
		cJSON *a = cJSON_AddArrayToObject(o, "snapshots");
		for (size_t i = 0; i < n; i++) {
			cJSON *s = cJSON_CreateObject();
			cJSON_AddStringToObject(s, "name", v[i].name);
			cJSON_AddStringToObject(s, "stream_id", v[i].stream_id);
			cJSON_AddNumberToObject(s, "owner_uid", v[i].owner_uid);
			cJSON_AddNumberToObject(s, "bytes", (double)v[i].bytes);
			cJSON_AddNumberToObject(s, "position",
			    (double)v[i].position);
			cJSON_AddNumberToObject(s, "created_ms",
			    (double)v[i].created_ms);
			cJSON_AddItemToArray(a, s);
		}
		cli_json_out(o);
	} else {
		printf("%-24s %-12s %12s %12s %-20s %s\n", "NAME", "OWNER",
		    "BYTES", "POSITION", "CREATED (UTC)", "STREAM");
		for (size_t i = 0; i < n; i++) {
			char when[32] = "?", owner[64];
			owner_name(v[i].owner_uid, owner, sizeof(owner));
			time_t t = (time_t)(v[i].created_ms / 1000);
			struct tm tm;
			if (gmtime_r(&t, &tm) != NULL)
				strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S",
				    &tm);
			printf("%-24s %-12s %12" PRIu64 " %12" PRIu64 " %-20s %s\n",
			    v[i].name, owner, v[i].bytes,
			    v[i].position, when, v[i].stream_id);
		}
	}
	infini_snapshot_list_free(v);
	return (0);
}

static int
cmd_rm_snapshot(struct cli *g, int argc, char **argv)
{
	return (one_name(g, argc, argv, infini_delete_snapshot, "deleted",
	    "deleted snapshot"));
}

/* ---- main ---------------------------------------------------------- */

static const struct command commands[] = {
	{ "status", cmd_status, "",
	  "Show the daemon's version, model, device and load." },
	{ "open", cmd_open, "[ID] [--reuse]",
	  "Open a stream and print its id.\n"
	  "Without ID the daemon picks one.\n"
	  "  --reuse   an existing stream ID is fine (else: ALREADY_EXISTS)" },
	{ "push", cmd_push,
	  "ID (--tokens LIST | --text STR | --vectors FILE.npy)\n"
	  "            [--output KIND] [--out FILE.npy]",
	  "Push tokens, text or vectors into a stream.\n"
	  "Prints the stream's position and the output asked for.\n"
	  "  --tokens LIST     token ids, e.g. 1,2,3\n"
	  "  --text STR        UTF-8 text, through the model's tokenizer\n"
	  "  --vectors FILE    float32/64 .npy of shape [n, hidden]\n"
	  "  --output KIND     embeddings | mean | last | logits | last-logits\n"
	  "  --out FILE.npy    write the output there instead of stdout" },
	{ "feed", cmd_feed, "ID FILE|- [--tokens]",
	  "Push a file (or stdin) into a stream, one segment at a time.\n"
	  "Shows a progress bar on a terminal, then prints a summary.\n"
	  "  --tokens   the input holds token ids (separated by spaces, commas\n"
	  "             or newlines), not text\n"
	  "Ctrl-C stops after the segment in flight (exit 130)." },
	{ "generate", cmd_generate,
	  "ID [--prompt TEXT | --prompt-file FILE] [-n N] [--temperature T]\n"
	  "            [--top-k K] [--top-p P] [--seed S] [--stop STR]...",
	  "Generate from a stream, printing tokens as they arrive.\n"
	  "  --prompt TEXT      pushed before generating ('-': read stdin)\n"
	  "  --prompt-file FILE the prompt is FILE's text ('-': stdin)\n"
	  "  -n, --max-tokens N at most N tokens (default 128)\n"
	  "  --temperature T    0: greedy (default); not negative\n"
	  "  --top-k K, --top-p P, --seed S   sampling (top-p in (0, 1], 0: off)\n"
	  "  --stop STR         stop when the output ends with STR (repeatable)\n"
	  "Tokens without bytes print as <ID>.  Ctrl-C cancels (exit 130).\n"
	  "With --json: one object per token ({\"token\", \"text\"}) as it\n"
	  "arrives, then {\"stream_id\", \"tokens\", \"text\", \"finish_reason\",\n"
	  "\"seconds\", \"done\": true}." },
	{ "run", cmd_run,
	  "ID [-n N] [--temperature T] [--top-k K] [--top-p P] [--seed S]\n"
	  "            [--stop STR]... [--history FILE | --no-history]",
	  "Talk to a stream interactively.\n"
	  "Opens ID (an existing stream is fine), then reads lines: each is\n"
	  "pushed with its newline and answered from the stream, tokens\n"
	  "printed as they arrive.  Ctrl-C cancels the answer and keeps the\n"
	  "session; Ctrl-D or /quit ends it; /history lists past prompts.\n"
	  "Generation options as for generate (-n, --max-tokens N: default\n"
	  "256).\n"
	  "  --history FILE  keep prompts in FILE (default on a terminal:\n"
	  "                  $INFINI_HISTORY, else\n"
	  "                  ~/.local/state/infini/history)\n"
	  "  --no-history    keep none" },
	{ "embed", cmd_embed, "ID --text STR [--pool mean|last]",
	  "Push text and print the pooled hidden state (default mean)." },
	{ "snapshot", cmd_snapshot,
	  "ID [--name NAME [--force]] [--export FILE]",
	  "Snapshot a stream.\n"
	  "--name saves it as a named snapshot in the daemon (yours: other\n"
	  "users cannot restore or replace it), --force replaces an existing\n"
	  "one of that name, --export writes the bytes to FILE." },
	{ "snapshots", cmd_snapshots, "",
	  "List the named snapshots you may use.\n"
	  "Shows each one's name, owner, size, the stream's position, when it\n"
	  "was taken (UTC) and of which stream." },
	{ "rm-snapshot", cmd_rm_snapshot, "NAME",
	  "Delete a named snapshot of yours." },
	{ "restore", cmd_restore, "ID (--name NAME | --import FILE)",
	  "Create a stream from a snapshot.\n"
	  "--name loads one from the daemon's state directory, --import reads\n"
	  "an exported file ('-': stdin)." },
	{ "fork", cmd_fork, "ID [NEW_ID]",
	  "Copy a stream's state into a new stream and print its id." },
	{ "ls", cmd_ls, "", "List the streams." },
	{ "close", cmd_close, "ID", "Close a stream and free its state." },
	{ "stats", cmd_stats, "", "Show the daemon's counters." },
	{ NULL, NULL, NULL, NULL },
};

int
main(int argc, char **argv)
{
	static const struct option lo[] = { CLI_GLOBAL_OPTS,
		{ "version", no_argument, NULL, 'V' }, { 0 } };
	struct cli g = { 0 };
	const struct command *cmd;
	int ch, rc;

	opterr = 0;
	/* '+': stop at the subcommand; its own parser takes the rest. */
	while ((ch = getopt_long(argc, argv, "+:h", lo, NULL)) != -1) {
		if (ch == 'h') {
			usage(stdout);
			return (0);
		}
		if (ch == 'V') {
			printf("infini %s\n", INFINI_VERSION);
			return (0);
		}
		if ((rc = cli_opt(&g, ch, argv)) >= 0)
			return (rc);
	}
	if (optind >= argc) {
		usage(stderr);
		return (CLI_EXIT_USAGE);
	}
	if ((cmd = find_command(argv[optind])) == NULL)
		return (cli_usage(&g, "unknown command '%s'", argv[optind]));
	g.cmd = cmd->name;
	rc = cmd->fn(&g, argc - optind, argv + optind);
	infini_close(g.c);
	if (fflush(stdout) != 0 && rc == 0) {
		fprintf(stderr, "infini: %s: writing output: %s\n", g.cmd,
		    strerror(errno));
		rc = CLI_EXIT_REQUEST;
	}
	return (rc);
}
