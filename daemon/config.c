/*
 * config.c - the settings table.  Every key lives in one row: its name, type,
 * where it is stored, default, bounds and a line of documentation, so the
 * file parser, the flags, --print-config and infinid.conf(5) agree.
 */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "infini_err.h"

#ifndef INFINI_DEFAULT_MODEL
#define INFINI_DEFAULT_MODEL "models/default"
#endif

enum ctype { C_STR, C_INT, C_MODE };

struct crow {
	const char *name;
	enum ctype type;
	size_t off, size;
	const char *def;
	long min, max;
	const char *doc;
};

#define S(f, def, doc) { #f, C_STR, offsetof(struct cfg, f),               \
	sizeof(((struct cfg *)0)->f), def, 0, 0, doc }
#define I(f, def, lo, hi, doc) { #f, C_INT, offsetof(struct cfg, f), 0, def, \
	lo, hi, doc }

static const struct crow rows[] = {
	S(model, INFINI_DEFAULT_MODEL, "model directory (config.json + safetensors)"),
	S(listen, "ipc:///run/infinid/infinid.sock",
	    "comma-separated NNG listen URLs (ipc://, tcp://, tls+tcp://)"),
	S(device, "", "Vulkan device index or name substring; empty: best"),
	S(state_dir, "/var/lib/infinid",
	    "directory for state: named snapshots in its snapshots/ folder, "
	    "streams spill to its streams/ folder"),
	S(state_store, "dir", "where stream states live: dir (state_dir) or "
	    "redis://HOST:PORT/DB or redis-sentinel://HOST:PORT[,HOST:PORT]/"
	    "MASTER/DB, shared by several daemons (docs/scale-out.md)"),
	S(advertise_url, "", "with a Redis state_store: the URL clients "
	    "reach this daemon at (a listen URL, e.g. tcp://10.0.0.5:7480); "
	    "empty: the first tcp:// listen URL"),
	I(lease_ttl_ms, "10000", 500, 600000,
	    "with a Redis state_store: how long a daemon's hold on a stream "
	    "lasts unless renewed (renewed every third of it)"),
	S(admin_group, "", "group whose members may use every stream and "
	    "named snapshot"),
	S(tls_cert_key_file, "", "PEM file with the certificate and private key "
	    "that tls+tcp:// listeners present"),
	S(log_level, "info", "error, warning, notice, info or debug"),
	S(http_listen, "", "HOST:PORT for the HTTP/JSON and OpenAI-compatible "
	    "gateway and /metrics, e.g. 127.0.0.1:8480 (empty: off)"),
	S(http_tokens_file, "", "file of 'TOKEN USER' lines giving each bearer "
	    "token its user; owned by the daemon's user, mode 0600"),
	I(http_max_body_bytes, "8388608", 1024, 1 << 30,
	    "largest HTTP request body accepted (larger: 413)"),
	I(max_streams, "4096", 1, 1 << 20,
	    "streams known at most, resident or spilled to state_dir"),
	I(max_resident_streams, "64", 1, 65536,
	    "streams whose state is on the device at once; idle ones spill"),
	I(state_memory_mb, "0", 0, 1 << 24,
	    "device memory for stream states in MiB: fewer resident streams "
	    "when they would need more (0: no limit)"),
	I(autosnapshot_segments, "16", 0, 1 << 30,
	    "save a stream after this many new compressed segments (0: off)"),
	I(autosnapshot_interval_s, "300", 0, 1 << 24,
	    "save a stream's unsaved work at least this often (0: off)"),
	I(max_batch, "256", 1, 8192, "tokens per device submission"),
	I(max_queue, "16", 1, 4096, "queued requests per stream"),
	I(max_request_tokens, "65536", 1, 1 << 24, "inputs in one Push"),
	I(max_message_bytes, "67108864", 4096, 1 << 30,
	    "largest request accepted (NNG_OPT_RECVMAXSZ)"),
	I(max_generate, "4096", 1, 1 << 20, "max_tokens of one Generate"),
	I(workers, "128", 4, 4096, "requests in flight (NNG contexts)"),
	{ "socket_mode", C_MODE, offsetof(struct cfg, socket_mode), 0, "0660",
	    0, 0777, "file mode of ipc:// sockets (octal)" },
	I(poll_max_ms, "5000", 10, 50000, "longest Poll wait (below NNG's 60 s resend)"),
	I(max_requests_per_uid, "32", 1, 1 << 20,
	    "requests one user may have queued or running (and Polls parked) "
	    "at once; keep it below workers so others always get a turn"),
	I(max_queued_tokens_per_uid, "262144", 1, 1L << 40,
	    "inputs one user may have queued and not yet run"),
	I(max_streams_per_uid, "1024", 1, 1 << 20,
	    "streams one user may own (root and admin_group: max_streams)"),
	I(max_snapshot_bytes_per_uid, "1073741824", 0, 1L << 50,
	    "bytes of named snapshots one user may keep (0: no limit; root and "
	    "admin_group: no limit), so that no user can fill state_dir"),
	I(max_stop_strings, "16", 0, 4096,
	    "stop strings in one Generate (each at most 256 bytes)"),
	I(max_connections, "4096", 1, 1 << 20,
	    "connections open at once; more are closed on arrival (the "
	    "process also keeps 64 file descriptors for state files)"),
	I(generate_idle_s, "30", 1, 86400,
	    "cancel a generation nobody polled for this long"),
};
#define NROWS (sizeof(rows) / sizeof(rows[0]))

static const struct crow *
row(const char *name)
{
	for (size_t i = 0; i < NROWS; i++)
		if (strcmp(rows[i].name, name) == 0)
			return (&rows[i]);
	return (NULL);
}

bool
cfg_is_key(const char *name)
{
	return (row(name) != NULL);
}

static int
set_row(struct cfg *c, const struct crow *r, const char *v, char *err,
    size_t errlen)
{
	char *end;
	long n;

	if (r->type == C_STR) {
		if (strlen(v) >= r->size) {
			snprintf(err, errlen, "%s: value too long", r->name);
			return (INFINI_EINVAL);
		}
		memcpy((char *)c + r->off, v, strlen(v) + 1);
		return (0);
	}
	errno = 0;
	n = strtol(v, &end, r->type == C_MODE ? 8 : 10);
	if (*v == '\0' || *end != '\0' || errno != 0 || n < r->min ||
	    n > r->max) {
		snprintf(err, errlen, "%s: \"%s\" is not %s in [%ld, %ld]",
		    r->name, v, r->type == C_MODE ? "an octal mode" : "a number",
		    r->min, r->max);
		return (INFINI_EINVAL);
	}
	*(long *)((char *)c + r->off) = n;
	return (0);
}

void
cfg_defaults(struct cfg *c)
{
	char err[64];
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < NROWS; i++)
		(void)set_row(c, &rows[i], rows[i].def, err, sizeof(err));
}

int
cfg_set(struct cfg *c, const char *key, const char *value, char *err,
    size_t errlen)
{
	const struct crow *r = row(key);
	if (r == NULL) {
		snprintf(err, errlen, "unknown setting \"%s\"", key);
		return (INFINI_ENOENT);
	}
	return (set_row(c, r, value, err, errlen));
}

static char *
trim(char *s)
{
	char *e;
	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return (s);
}

/* at_eof: is f at its end?  (A last line without a newline that exactly
 * fills the buffer is whole.) */
static bool
at_eof(FILE *f)
{
	int ch = getc(f);
	if (ch == EOF)
		return (true);
	ungetc(ch, f);
	return (false);
}

/*
 * cfg_load reads path line by line.  A line that does not fit the buffer is
 * refused rather than read in pieces: its tail would otherwise be parsed as
 * a line of its own (a long comment ending in "key = value" would set key).
 * A path that is not a regular file (a directory reads as empty on Linux)
 * is refused too, as is a read error part way.
 */
int
cfg_load(struct cfg *c, const char *path, bool optional, char *err,
    size_t errlen)
{
	FILE *f = fopen(path, "r");
	char line[4096], msg[256];
	struct stat sb;
	int lineno = 0, rv = 0;

	if (f == NULL) {
		if (optional && errno == ENOENT)
			return (0);
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return (INFINI_EIO);
	}
	if (fstat(fileno(f), &sb) != 0 || S_ISDIR(sb.st_mode)) {
		snprintf(err, errlen, "%s: %s", path, S_ISDIR(sb.st_mode) ?
		    "is a directory, not a settings file" : strerror(errno));
		fclose(f);
		return (INFINI_EINVAL);
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char *s, *eq;
		lineno++;
		if (strchr(line, '\n') == NULL && !at_eof(f)) {
			snprintf(err, errlen, "%s:%d: line longer than %zu "
			    "bytes", path, lineno, sizeof(line) - 1);
			rv = INFINI_EINVAL;
			break;
		}
		s = trim(line);
		if (*s == '\0' || *s == '#')
			continue;
		if ((eq = strchr(s, '=')) == NULL) {
			snprintf(err, errlen, "%s:%d: expected key = value", path,
			    lineno);
			rv = INFINI_EINVAL;
			break;
		}
		*eq = '\0';
		if ((rv = cfg_set(c, trim(s), trim(eq + 1), msg,
		    sizeof(msg))) != 0) {
			snprintf(err, errlen, "%s:%d: %s", path, lineno, msg);
			break;
		}
	}
	if (rv == 0 && ferror(f)) {
		snprintf(err, errlen, "%s: read error after line %d", path,
		    lineno);
		rv = INFINI_EIO;
	}
	fclose(f);
	return (rv);
}

void
cfg_print(const struct cfg *c, FILE *f)
{
	for (size_t i = 0; i < NROWS; i++) {
		const struct crow *r = &rows[i];
		fprintf(f, "# %s (default %s)\n", r->doc, r->def[0] ? r->def : "empty");
		if (r->type == C_STR)
			fprintf(f, "%s = %s\n", r->name, (const char *)c + r->off);
		else if (r->type == C_MODE)
			fprintf(f, "%s = %04lo\n", r->name,
			    *(const long *)((const char *)c + r->off));
		else
			fprintf(f, "%s = %ld\n", r->name,
			    *(const long *)((const char *)c + r->off));
	}
}
