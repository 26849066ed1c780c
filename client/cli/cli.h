/*
 * cli.h - what the parts of the infini tool share: the global options,
 * exit codes, error printing and small parsers.  infini.c holds main and
 * the one-call subcommands; stream.c the ones that push data (push, feed,
 * embed); generate.c generation (generate, and what run shares with it);
 * run.c the interactive session.
 */
#ifndef CLI_H
#define CLI_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include <getopt.h>

#include <cjson/cJSON.h>

#include "infini.h"

/* Exit codes, listed in `infini --help`. */
#define CLI_EXIT_REQUEST 1   /* the daemon (or a request) failed */
#define CLI_EXIT_USAGE 2     /* bad command line */
#define CLI_EXIT_NOFILE 2    /* a local file named on it does not exist */
#define CLI_EXIT_CONNECT 3   /* no daemon to talk to */
#define CLI_EXIT_INTR 130    /* cancelled by Ctrl-C */

/* Global options, accepted before or after the subcommand. */
enum { OPT_SOCKET = 1000, OPT_TIMEOUT, OPT_JSON, OPT_PLAIN_SPECIAL };
#define CLI_GLOBAL_OPTS                                                 \
	{ "socket", required_argument, NULL, OPT_SOCKET },              \
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },            \
	{ "json", no_argument, NULL, OPT_JSON },                        \
	{ "plain-special", no_argument, NULL, OPT_PLAIN_SPECIAL },      \
	{ "help", no_argument, NULL, 'h' }

struct cli {
	const char *socket;   /* NULL: $INFINI_SOCKET or the default */
	int timeout_ms;       /* 0: library defaults */
	bool json;
	unsigned text_flags;  /* INFINI_TEXT_* (--plain-special) */
	const char *cmd;      /* the subcommand, for messages */
	infini_client *c;
};

/* Set by the SIGINT handler that cli_catch_sigint installs. */
extern volatile sig_atomic_t cli_interrupted;
void cli_catch_sigint(void);

/* cli_connect connects g->c; on failure prints why and returns
 * CLI_EXIT_CONNECT (or CLI_EXIT_REQUEST for a daemon error), else 0. */
int cli_connect(struct cli *g);

/* cli_fail reports a failed libinfini call ("infini: push: NOT_FOUND: ...",
 * and an error object on stdout with --json) and returns the exit code. */
int cli_fail(struct cli *g, int err);

/* cli_usage prints a usage error for the current subcommand and returns
 * CLI_EXIT_USAGE. */
int cli_usage(struct cli *g, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * cli_opt handles an option every subcommand shares (the globals, --help,
 * getopt's errors).  Returns -1 when parsing should go on, otherwise the
 * exit code to return now (0 after printing help).
 */
int cli_opt(struct cli *g, int ch, char **argv);

/* cli_args checks the positional count is within [min, max]. */
int cli_args(struct cli *g, int n, int min, int max);

/* cli_json_out prints o on stdout as one line and frees it. */
void cli_json_out(cJSON *o);

/* Parsers; each returns 0 or prints a usage error and returns
 * CLI_EXIT_USAGE. */
int cli_parse_u64(struct cli *g, const char *what, const char *s,
    uint64_t max, uint64_t *out);
int cli_parse_float(struct cli *g, const char *what, const char *s,
    float *out);
int cli_parse_tokens(struct cli *g, const char *s, int32_t **out, size_t *n);

/* cli_file_error reports that path could not be opened (errno says why)
 * and returns CLI_EXIT_NOFILE when it does not exist, else
 * CLI_EXIT_REQUEST. */
int cli_file_error(struct cli *g, const char *path);

/* cli_read_text reads a whole text file ("-": stdin) into a malloc'd,
 * NUL-terminated string.  Returns 0 or the exit code (after printing
 * why). */
int cli_read_text(struct cli *g, const char *path, char **out);

/* ---- generation (generate.c), shared by generate and run ---- */

enum { OPT_TEMP = 1100, OPT_TOPK, OPT_TOPP, OPT_SEED, OPT_STOP };
#define CLI_GEN_OPTS                                                    \
	{ "max-tokens", required_argument, NULL, 'n' },                 \
	{ "temperature", required_argument, NULL, OPT_TEMP },           \
	{ "top-k", required_argument, NULL, OPT_TOPK },                 \
	{ "top-p", required_argument, NULL, OPT_TOPP },                 \
	{ "seed", required_argument, NULL, OPT_SEED },                  \
	{ "stop", required_argument, NULL, OPT_STOP }

struct cli_gen {
	struct infini_sampling sp;
	uint64_t max;           /* max_tokens (default 128) */
	const char **stop;      /* NULL-terminated, nstop of them */
	size_t nstop;
};

struct cli_gen_result {
	char finish[16];
	size_t ntokens;
	double seconds;
	bool ends_nl;           /* the printed text ends with a newline */
};

/* cli_gen_init sets the defaults and room for argc --stop strings (0 or
 * an exit code); cli_gen_fini frees it. */
int cli_gen_init(struct cli_gen *o, int argc);
void cli_gen_fini(struct cli_gen *o);
/* cli_gen_check refuses sampling values the daemon would refuse
 * (proto/sampling.c), before anything is sent: 0 or a usage error. */
int cli_gen_check(struct cli *g, const struct cli_gen *o);
/* cli_gen_opt takes one of CLI_GEN_OPTS: 0 when taken, -1 when ch is not
 * a generation option, else the exit code of a bad value. */
int cli_gen_opt(struct cli *g, int ch, struct cli_gen *o);
/*
 * cli_gen_run generates from stream id after pushing prompt (may be NULL),
 * printing each token as it arrives: its bytes (<ID> for a token without
 * any), or with --json one NDJSON object per token ({"token", "text"})
 * and a final one ({"stream_id", "tokens", "text", "finish_reason",
 * "seconds", "done": true}).  Stops at Ctrl-C (cli_interrupted).  Returns
 * libinfini's code (INFINI_ECANCELED after Ctrl-C), or -1 after printing
 * a local failure.
 */
int cli_gen_run(struct cli *g, const char *id, const char *prompt,
    const struct cli_gen *o, struct cli_gen_result *res);

/* cli_now returns a monotonic time in seconds. */
double cli_now(void);

int cmd_push(struct cli *g, int argc, char **argv);
int cmd_feed(struct cli *g, int argc, char **argv);
int cmd_generate(struct cli *g, int argc, char **argv);
int cmd_embed(struct cli *g, int argc, char **argv);
int cmd_run(struct cli *g, int argc, char **argv);

#endif /* CLI_H */
