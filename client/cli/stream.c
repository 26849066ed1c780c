/*
 * stream.c - the infini subcommands that move data through a stream: push
 * (one input, optional output), feed (a whole file, segment by segment),
 * generate (tokens printed as they arrive) and embed.
 *
 * Ctrl-C is caught only here: feed stops between segments and generate
 * cancels through libinfini's heartbeat, so the daemon never keeps working
 * for a client that has gone.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "npy.h"
#include "wire.h"

static const struct {
	const char *name;
	enum infini_output out;
} outputs[] = {
	{ "none", INFINI_OUT_NONE },
	{ "embeddings", INFINI_OUT_EMBEDDINGS },
	{ "mean", INFINI_OUT_MEAN },
	{ "last", INFINI_OUT_LAST },
	{ "logits", INFINI_OUT_LOGITS },
	{ "last-logits", INFINI_OUT_LAST_LOGITS },
};

static int
parse_output(struct cli *g, const char *s, enum infini_output *out)
{
	for (size_t i = 0; i < sizeof(outputs) / sizeof(outputs[0]); i++)
		if (strcmp(s, outputs[i].name) == 0) {
			*out = outputs[i].out;
			return (0);
		}
	return (cli_usage(g, "unknown output '%s' (embeddings, mean, last, "
	    "logits or last-logits)", s));
}

/* print_result prints a push's outcome; data rows go to stdout one per
 * line unless out names a .npy file. */
static int
print_result(struct cli *g, const char *id, const struct infini_result *r,
    const char *out)
{
	if (out != NULL && r->data != NULL &&
	    npy_write(out, r->data, r->rows, r->cols) != 0) {
		fprintf(stderr, "infini: %s: cannot write %s: %s\n", g->cmd, out,
		    strerror(errno));
		return (CLI_EXIT_REQUEST);
	}
	if (g->json) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "stream_id", id);
		cJSON_AddNumberToObject(o, "position", (double)r->position);
		cJSON_AddNumberToObject(o, "segments", (double)r->segments);
		if (r->data != NULL) {
			cJSON_AddNumberToObject(o, "rows", r->rows);
			cJSON_AddNumberToObject(o, "cols", r->cols);
			if (out != NULL) {
				cJSON_AddStringToObject(o, "out", out);
			} else {
				cJSON *a = cJSON_AddArrayToObject(o, "data");
				for (uint32_t i = 0; i < r->rows; i++)
					cJSON_AddItemToArray(a,
					    cJSON_CreateFloatArray(r->data +
					    (size_t)i * r->cols, (int)r->cols));
			}
		}
		cli_json_out(o);
		return (0);
	}
	printf("position %" PRIu64 ", segments %" PRIu64 "\n", r->position,
	    r->segments);
	if (r->data != NULL && out != NULL)
		printf("wrote [%u, %u] to %s\n", r->rows, r->cols, out);
	else if (r->data != NULL)
		for (uint32_t i = 0; i < r->rows; i++)
			for (uint32_t j = 0; j < r->cols; j++)
				printf("%.7g%c", r->data[(size_t)i * r->cols + j],
				    j + 1 == r->cols ? '\n' : ' ');
	return (0);
}

int
cmd_push(struct cli *g, int argc, char **argv)
{
	static const struct option lo[] = { CLI_GLOBAL_OPTS,
		{ "tokens", required_argument, NULL, 't' },
		{ "text", required_argument, NULL, 'x' },
		{ "vectors", required_argument, NULL, 'v' },
		{ "output", required_argument, NULL, 'o' },
		{ "out", required_argument, NULL, 'O' }, { 0 } };
	const char *tokens = NULL, *text = NULL, *vectors = NULL, *out = NULL;
	enum infini_output want = INFINI_OUT_NONE;
	struct infini_result res = { 0 };
	int32_t *ids = NULL;
	float *vec = NULL;
	size_t n = 0, rows = 0, cols = 0;
	int ch, rc, err;
	char why[256];

	optind = 0;
	while ((ch = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
		switch (ch) {
		case 't': tokens = optarg; break;
		case 'x': text = optarg; break;
		case 'v': vectors = optarg; break;
		case 'O': out = optarg; break;
		case 'o':
			if ((rc = parse_output(g, optarg, &want)) != 0)
				return (rc);
			break;
		default:
			if ((rc = cli_opt(g, ch, argv)) >= 0)
				return (rc);
		}
	}
	if ((rc = cli_args(g, argc - optind, 1, 1)) != 0)
		return (rc);
	if ((tokens != NULL) + (text != NULL) + (vectors != NULL) != 1)
		return (cli_usage(g, "give exactly one of --tokens, --text or "
		    "--vectors"));
	if (out != NULL && want == INFINI_OUT_NONE)
		return (cli_usage(g, "--out needs --output"));
	if (tokens != NULL && (rc = cli_parse_tokens(g, tokens, &ids, &n)) != 0)
		return (rc);
	if (vectors != NULL) {
		if (npy_read(vectors, &vec, &rows, &cols, why, sizeof(why)) != 0) {
			fprintf(stderr, "infini: %s: %s\n", g->cmd, why);
			return (CLI_EXIT_REQUEST);
		}
		if (cols == 0 || cols > UINT32_MAX) {
			free(vec);
			return (cli_usage(g, "%s: bad shape", vectors));
		}
	}
	if ((rc = cli_connect(g)) != 0)
		goto done;
	if (ids != NULL)
		err = infini_push_tokens(g->c, argv[optind], ids, n, want, &res);
	else if (text != NULL)
		err = infini_push_text(g->c, argv[optind], text, strlen(text),
		    want, &res);
	else
		err = infini_push_vectors(g->c, argv[optind], vec, rows,
		    (uint32_t)cols, want, &res);
	rc = err ? cli_fail(g, err) : print_result(g, argv[optind], &res, out);
	infini_result_free(&res);
done:
	free(ids);
	free(vec);
	return (rc);
}

int
cmd_embed(struct cli *g, int argc, char **argv)
{
	static const struct option lo[] = { CLI_GLOBAL_OPTS,
		{ "text", required_argument, NULL, 'x' },
		{ "pool", required_argument, NULL, 'p' }, { 0 } };
	enum infini_output want = INFINI_OUT_MEAN;
	struct infini_result res = { 0 };
	const char *text = NULL;
	int ch, rc, err;

	optind = 0;
	while ((ch = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
		if (ch == 'x') {
			text = optarg;
		} else if (ch == 'p') {
			if (strcmp(optarg, "mean") == 0)
				want = INFINI_OUT_MEAN;
			else if (strcmp(optarg, "last") == 0)
				want = INFINI_OUT_LAST;
			else
				return (cli_usage(g, "--pool is mean or last"));
		} else if ((rc = cli_opt(g, ch, argv)) >= 0) {
			return (rc);
		}
	}
	if ((rc = cli_args(g, argc - optind, 1, 1)) != 0)
		return (rc);
	if (text == NULL)
		return (cli_usage(g, "--text is required"));
	if ((rc = cli_connect(g)) != 0)
		return (rc);
	if ((err = infini_push_text(g->c, argv[optind], text, strlen(text),
	    want, &res)) != 0)
		return (cli_fail(g, err));
	if (res.data == NULL || res.rows != 1) {
		infini_result_free(&res);
		fprintf(stderr, "infini: embed: the daemon returned no vector\n");
		return (CLI_EXIT_REQUEST);
	}
	if (g->json) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "stream_id", argv[optind]);
		cJSON_AddNumberToObject(o, "position", (double)res.position);
		cJSON_AddNumberToObject(o, "dim", res.cols);
		cJSON_AddItemToObject(o, "vector",
		    cJSON_CreateFloatArray(res.data, (int)res.cols));
		cli_json_out(o);
	} else {
		for (uint32_t j = 0; j < res.cols; j++)
			printf("%.7g%c", res.data[j], j + 1 == res.cols ? '\n' :
			    ' ');
	}
	infini_result_free(&res);
	return (0);
}

/* ---- feed ---------------------------------------------------------- */

struct feed {
	double t0, shown;
	uint64_t done, total;   /* input consumed / size (0: unknown) */
	uint64_t tokens;        /* tokens pushed */
	struct infini_result last;
	bool bar;
	const char *unit;       /* "bytes" or "tokens" */
};

static void
human(char *buf, size_t n, uint64_t v)
{
	if (v >= (1u << 20))
		snprintf(buf, n, "%.1f MiB", (double)v / (1 << 20));
	else if (v >= 1024)
		snprintf(buf, n, "%.1f KiB", (double)v / 1024);
	else
		snprintf(buf, n, "%" PRIu64 " B", v);
}

/* progress redraws the bar at most ten times a second. */
static void
progress(struct feed *f, bool last)
{
	double now = cli_now(), el = now - f->t0;
	char a[32], b[32];

	if (!f->bar || (!last && now - f->shown < 0.1))
		return;
	f->shown = now;
	human(a, sizeof(a), f->done);
	if (f->total > 0) {
		int w = 30, k = (int)((double)w * (double)f->done /
		    (double)f->total);
		human(b, sizeof(b), f->total);
		fprintf(stderr, "\r[%.*s%*s] %s / %s  %.0f tokens/s  ",
		    k > w ? w : k, "==============================",
		    w - (k > w ? w : k), "", a, b,
		    el > 0 ? (double)f->tokens / el : 0.0);
	} else {
		fprintf(stderr, "\r%s  %.0f tokens/s  ", a,
		    el > 0 ? (double)f->tokens / el : 0.0);
	}
	if (last)
		fputc('\n', stderr);
}

/* utf8_cut returns how much of buf[0..n) ends on a character boundary, so
 * no push splits a UTF-8 sequence. */
static size_t
utf8_cut(const unsigned char *buf, size_t n)
{
	size_t i = n, k = 0;

	while (i > 0 && k < 3 && (buf[i - 1] & 0xc0) == 0x80) {
		i--;
		k++;
	}
	if (i == 0)
		return (n);
	unsigned char c = buf[i - 1];
	size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
	return (need > k + 1 ? i - 1 : n);
}

static int
feed_text(struct cli *g, const char *id, FILE *in, size_t seg,
    struct feed *f)
{
	unsigned char *buf = malloc(seg + 1);
	size_t have = 0, got;
	int err = 0;
	bool eof = false;

	if (buf == NULL)
		return (INFINI_ENOMEM);
	while (!eof && !cli_interrupted) {
		got = fread(buf + have, 1, seg - have, in);
		have += got;
		if (have < seg) {
			if (ferror(in)) {
				fprintf(stderr, "infini: feed: read: %s\n",
				    strerror(errno));
				free(buf);
				return (-1);
			}
			eof = true;
		}
		size_t n = eof ? have : utf8_cut(buf, have);
		if (n == 0)
			break;
		if (memchr(buf, '\0', n) != NULL) {
			fprintf(stderr, "infini: feed: the input holds NUL bytes"
			    " (not text)\n");
			free(buf);
			return (-1);
		}
		infini_result_free(&f->last);
		if ((err = infini_push_text(g->c, id, (char *)buf, n,
		    INFINI_OUT_NONE, &f->last)) != 0)
			break;
		f->done += n;
		f->tokens += n;   /* byte tokenizer: one token a byte */
		memmove(buf, buf + n, have - n);
		have -= n;
		progress(f, false);
	}
	free(buf);
	return (err);
}

static int
feed_tokens(struct cli *g, const char *id, FILE *in, size_t seg,
    struct feed *f)
{
	int32_t *v = malloc(seg * sizeof(*v));
	size_t n = 0;
	long t;
	int err = 0, c;

	if (v == NULL)
		return (INFINI_ENOMEM);
	f->unit = "tokens";
	for (;;) {
		/* Separators are any run of spaces, commas and newlines. */
		while ((c = getc(in)) == ',' || c == ' ' || c == '\n' ||
		    c == '\t' || c == '\r')
			;
		if (c != EOF) {
			ungetc(c, in);
			if (fscanf(in, "%ld", &t) != 1 || t < 0 ||
			    t > INT32_MAX) {
				fprintf(stderr, "infini: feed: bad token id "
				    "after %" PRIu64 " tokens\n", f->tokens + n);
				free(v);
				return (-1);
			}
			v[n++] = (int32_t)t;
		}
		if (n == seg || (c == EOF && n > 0)) {
			if (cli_interrupted)
				break;
			infini_result_free(&f->last);
			if ((err = infini_push_tokens(g->c, id, v, n,
			    INFINI_OUT_NONE, &f->last)) != 0)
				break;
			f->tokens += n;
			n = 0;
			if (f->total > 0) {
				long pos = ftell(in);
				f->done = pos > 0 ? (uint64_t)pos : f->done;
			}
			progress(f, false);
		}
		if (c == EOF)
			break;
	}
	free(v);
	return (err);
}

int
cmd_feed(struct cli *g, int argc, char **argv)
{
	static const struct option lo[] = { CLI_GLOBAL_OPTS,
		{ "tokens", no_argument, NULL, 't' }, { 0 } };
	struct feed f = { .unit = "bytes" };
	struct infini_health h;
	bool as_tokens = false;
	const char *id, *path;
	struct stat st;
	FILE *in;
	int ch, rc, err;

	optind = 0;
	while ((ch = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
		if (ch == 't')
			as_tokens = true;
		else if ((rc = cli_opt(g, ch, argv)) >= 0)
			return (rc);
	}
	if ((rc = cli_args(g, argc - optind, 2, 2)) != 0)
		return (rc);
	id = argv[optind];
	path = argv[optind + 1];
	in = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	if (in == NULL) {
		fprintf(stderr, "infini: feed: %s: %s\n", path, strerror(errno));
		return (CLI_EXIT_REQUEST);
	}
	if ((rc = cli_connect(g)) != 0)
		goto done;
	if ((err = infini_health(g->c, &h)) != 0) {
		rc = cli_fail(g, err);
		goto done;
	}
	if (fstat(fileno(in), &st) == 0 && S_ISREG(st.st_mode))
		f.total = (uint64_t)st.st_size;
	f.bar = isatty(STDERR_FILENO) && !g->json;
	f.t0 = cli_now();
	cli_catch_sigint();
	/* One segment per push: the daemon compresses each full segment into
	 * memory as it arrives, so progress is real progress. */
	size_t seg = h.segment_size ? h.segment_size : 2048;
	err = as_tokens ? feed_tokens(g, id, in, seg, &f) :
	    feed_text(g, id, in, seg, &f);
	if (f.total > 0 && err == 0 && !cli_interrupted)
		f.done = f.total;
	progress(&f, true);
	if (err < 0) {
		rc = CLI_EXIT_REQUEST;
		goto done;
	}
	if (err > 0) {
		rc = cli_fail(g, err);
		goto done;
	}
	double el = cli_now() - f.t0;
	double tps = el > 0 ? (double)f.tokens / el : 0.0;
	if (g->json) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "stream_id", id);
		cJSON_AddNumberToObject(o, "tokens", (double)f.tokens);
		cJSON_AddNumberToObject(o, "position", (double)f.last.position);
		cJSON_AddNumberToObject(o, "segments", (double)f.last.segments);
		cJSON_AddNumberToObject(o, "seconds", el);
		cJSON_AddNumberToObject(o, "tokens_per_s", tps);
		cJSON_AddBoolToObject(o, "interrupted", cli_interrupted != 0);
		cli_json_out(o);
	} else {
		printf("fed %" PRIu64 " tokens to '%s' in %.2f s (%.0f tokens/s)"
		    "%s; position %" PRIu64 ", %" PRIu64 " segments\n",
		    f.tokens, id, el, tps, cli_interrupted ?
		    ", interrupted" : "", f.last.position, f.last.segments);
	}
	rc = cli_interrupted ? CLI_EXIT_INTR : 0;
done:
	infini_result_free(&f.last);
	if (in != stdin)
		fclose(in);
	return (rc);
}

/* ---- generate ------------------------------------------------------ */

struct gen {
	struct cli *g;
	int32_t *tokens;        /* --json: all tokens */
	size_t n, cap;
	char *text;             /* --json: all bytes */
	size_t tlen, tcap;
	bool nl;                /* output so far ends with a newline */
	bool oom;
};

static int
on_token(void *arg, int32_t tok, const char *bytes, size_t len)
{
	struct gen *s = arg;

	if (cli_interrupted)
		return (1);
	if (tok < 0)
		return (0);   /* heartbeat: nothing new yet */
	if (!s->g->json) {
		if (len > 0)
			fwrite(bytes, 1, len, stdout);
		else
			printf("<%" PRId32 ">", tok);
		fflush(stdout);
		s->nl = len > 0 && bytes[len - 1] == '\n';
		s->n++;
		return (0);
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 64;
		int32_t *v = realloc(s->tokens, cap * sizeof(*v));
		if (v == NULL)
			return (s->oom = true);
		s->tokens = v;
		s->cap = cap;
	}
	if (s->tlen + len + 1 > s->tcap) {
		size_t cap = s->tcap ? 2 * s->tcap : 256;
		char *t = realloc(s->text, cap);
		if (t == NULL)
			return (s->oom = true);
		s->text = t;
		s->tcap = cap;
	}
	s->tokens[s->n++] = tok;
	if (len > 0)
		memcpy(s->text + s->tlen, bytes, len);
	s->tlen += len;
	s->text[s->tlen] = '\0';
	return (0);
}

int
cmd_generate(struct cli *g, int argc, char **argv)
{
	enum { O_TEMP = 2000, O_TOPK, O_TOPP, O_SEED, O_STOP };
	static const struct option lo[] = { CLI_GLOBAL_OPTS,
		{ "prompt", required_argument, NULL, 'p' },
		{ "max-tokens", required_argument, NULL, 'n' },
		{ "temperature", required_argument, NULL, O_TEMP },
		{ "top-k", required_argument, NULL, O_TOPK },
		{ "top-p", required_argument, NULL, O_TOPP },
		{ "seed", required_argument, NULL, O_SEED },
		{ "stop", required_argument, NULL, O_STOP }, { 0 } };
	struct infini_sampling sp = { 0 };
	struct gen s = { .g = g, .nl = true };
	const char *prompt = NULL, **stop;
	uint64_t v, max = 128;
	size_t nstop = 0;
	char finish[16], why[160];
	double t0;
	int ch, rc, err;

	if ((stop = calloc((size_t)argc + 1, sizeof(*stop))) == NULL)
		return (CLI_EXIT_REQUEST);
	optind = 0;
	while ((ch = getopt_long(argc, argv, ":hp:n:", lo, NULL)) != -1) {
		rc = 0;
		switch (ch) {
		case 'p': prompt = optarg; break;
		case 'n':
			rc = cli_parse_u64(g, "token count", optarg, UINT32_MAX,
			    &max);
			break;
		case O_TEMP:
			rc = cli_parse_float(g, "temperature", optarg,
			    &sp.temperature);
			break;
		case O_TOPP:
			rc = cli_parse_float(g, "top-p", optarg, &sp.top_p);
			break;
		case O_TOPK:
			if ((rc = cli_parse_u64(g, "top-k", optarg, UINT32_MAX,
			    &v)) == 0)
				sp.top_k = (uint32_t)v;
			break;
		case O_SEED:
			rc = cli_parse_u64(g, "seed", optarg, UINT64_MAX,
			    &sp.seed);
			break;
		case O_STOP: stop[nstop++] = optarg; break;
		default:
			if ((rc = cli_opt(g, ch, argv)) < 0)
				rc = 0;
			else
				goto done;
		}
		if (rc != 0)
			goto done;
	}
	if ((rc = cli_args(g, argc - optind, 1, 1)) != 0)
		goto done;
	if (!wire_check_sampling(sp.temperature, sp.top_k, sp.top_p, why,
	    sizeof(why))) {
		rc = cli_usage(g, "%s", why);
		goto done;
	}
	if ((rc = cli_connect(g)) != 0)
		goto done;
	cli_catch_sigint();
	t0 = cli_now();
	err = infini_generate(g->c, argv[optind], NULL, 0, prompt,
	    (uint32_t)max, &sp, nstop ? stop : NULL, on_token, &s, finish);
	if (!g->json && !s.nl && isatty(STDOUT_FILENO))
		putchar('\n');
	fflush(stdout);
	if (s.oom) {
		fprintf(stderr, "infini: generate: out of memory\n");
		rc = CLI_EXIT_REQUEST;
		goto done;
	}
	if (err != 0 && !(err == INFINI_ECANCELED && cli_interrupted &&
	    g->json)) {
		rc = cli_fail(g, err);
		goto done;
	}
	double el = cli_now() - t0;
	if (g->json) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "stream_id", argv[optind]);
		cJSON_AddItemToObject(o, "tokens",
		    cJSON_CreateIntArray((const int *)s.tokens, (int)s.n));
		cJSON_AddStringToObject(o, "text", s.text ? s.text : "");
		cJSON_AddStringToObject(o, "finish_reason", finish);
		cJSON_AddNumberToObject(o, "seconds", el);
		cli_json_out(o);
	} else if (isatty(STDERR_FILENO)) {
		fprintf(stderr, "[%s: %zu tokens, %.1f tokens/s]\n", finish,
		    s.n, el > 0 ? (double)s.n / el : 0.0);
	}
	rc = err == INFINI_ECANCELED ? CLI_EXIT_INTR : 0;
done:
	free(stop);
	free(s.tokens);
	free(s.text);
	return (rc);
}
