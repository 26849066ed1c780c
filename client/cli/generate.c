/*
 * generate.c - generation in the infini tool: the options generate and run
 * share, printing tokens as they arrive (raw bytes, or one NDJSON object
 * per token with --json), and the generate subcommand itself.
 *
 * Ctrl-C cancels through libinfini's heartbeat: on_token sees the flag the
 * SIGINT handler set and asks the library to send Cancel, so the daemon
 * never keeps generating for a client that has gone.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "sampling.h"

/* ---- options -------------------------------------------------------- */

int
cli_gen_init(struct cli_gen *o, int argc)
{
	memset(o, 0, sizeof(*o));
	o->max = 128;
	/* Every argument could be a --stop: argc bounds them. */
	o->stop = calloc((size_t)argc + 1, sizeof(*o->stop));
	return (o->stop == NULL ? CLI_EXIT_REQUEST : 0);
}

void
cli_gen_fini(struct cli_gen *o)
{
	free(o->stop);
	o->stop = NULL;
}

int
cli_gen_opt(struct cli *g, int ch, struct cli_gen *o)
{
	uint64_t v;
	int rc;

	switch (ch) {
	case 'n':
		return (cli_parse_u64(g, "token count", optarg, UINT32_MAX,
		    &o->max));
	case OPT_TEMP:
		return (cli_parse_float(g, "temperature", optarg,
		    &o->sp.temperature));
	case OPT_TOPP:
		return (cli_parse_float(g, "top-p", optarg, &o->sp.top_p));
	case OPT_TOPK:
		if ((rc = cli_parse_u64(g, "top-k", optarg, UINT32_MAX,
		    &v)) == 0)
			o->sp.top_k = (uint32_t)v;
		return (rc);
	case OPT_SEED:
		return (cli_parse_u64(g, "seed", optarg, UINT64_MAX,
		    &o->sp.seed));
	case OPT_STOP:
		o->stop[o->nstop++] = optarg;
		return (0);
	default:
		return (-1);
	}
}

int
cli_gen_check(struct cli *g, const struct cli_gen *o)
{
	char why[160];

	if (!wire_check_sampling(o->sp.temperature, o->sp.top_k, o->sp.top_p,
	    why, sizeof(why)))
		return (cli_usage(g, "%s", why));
	return (0);
}

/* ---- output --------------------------------------------------------- */

struct gen {
	struct cli *g;
	int32_t *tokens;        /* --json: all tokens */
	size_t n, cap;
	char *text;             /* --json: all bytes */
	size_t tlen, tcap;
	size_t shown;           /* --json: bytes of text already printed */
	bool nl;                /* output so far ends with a newline */
	bool oom;
};

/*
 * utf8_len returns the length of the valid UTF-8 sequence at s[0..n):
 * 1-4, 0 when s holds only a valid but incomplete start of one, or -1
 * when the byte at s cannot start a valid sequence (overlong forms and
 * surrogates included).
 */
static int
utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	unsigned char lo = 0x80, hi = 0xbf;
	int need;

	if (c < 0x80)
		return (c == 0 ? -1 : 1);   /* NUL cannot be in a C string */
	if (c >= 0xc2 && c <= 0xdf)
		need = 2;
	else if (c >= 0xe0 && c <= 0xef)
		need = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		need = 4;
	else
		return (-1);
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	for (int i = 1; i < need; i++) {
		if ((size_t)i >= n)
			return (0);
		if (s[i] < (i == 1 ? lo : 0x80) || s[i] > (i == 1 ? hi : 0xbf))
			return (-1);
	}
	return (need);
}

/*
 * utf8_take copies the text of s[0..n) that is complete into a new
 * NUL-terminated string, each byte that starts no valid sequence replaced
 * by U+FFFD; *used receives how many bytes it consumed.  Unless flush, an
 * incomplete sequence at the end is left for the next call.  Because it
 * stops only where a sequence is still open, pieces taken one after the
 * other decode exactly like the whole text at once.
 */
static char *
utf8_take(const char *s, size_t n, bool flush, size_t *used)
{
	const unsigned char *u = (const unsigned char *)s;
	char *out = malloc(3 * n + 1), *p = out;
	size_t i = 0;

	if (out == NULL)
		return (NULL);
	while (i < n) {
		int k = utf8_len(u + i, n - i);
		if (k == 0 && !flush)
			break;
		if (k <= 0) {
			memcpy(p, "\xef\xbf\xbd", 3);
			p += 3;
			i++;
			continue;
		}
		memcpy(p, s + i, (size_t)k);
		p += k;
		i += (size_t)k;
	}
	*p = '\0';
	*used = i;
	return (out);
}

/* gen_json_token prints the NDJSON line of one token: its id and the text
 * it completed ("" while a UTF-8 sequence is still open). */
static void
gen_json_token(struct gen *s, int32_t tok)
{
	size_t used;
	char *t = utf8_take(s->text + s->shown, s->tlen - s->shown, false,
	    &used);
	cJSON *o = cJSON_CreateObject();

	if (t == NULL || o == NULL) {
		s->oom = true;
		free(t);
		cJSON_Delete(o);
		return;
	}
	s->shown += used;
	cJSON_AddNumberToObject(o, "token", tok);
	cJSON_AddStringToObject(o, "text", t);
	free(t);
	cli_json_out(o);
}

static int
on_token(void *arg, int32_t tok, const char *bytes, size_t len)
{
	struct gen *s = arg;

	if (cli_interrupted)
		return (1);
	if (tok < 0)
		return (0);   /* heartbeat: nothing new yet */
	if (!s->g->json) {
		/* Without a tokenizer (bytes NULL) the ids are all there is;
		 * with one, a token may carry no bytes yet (part of a UTF-8
		 * character that a later token completes). */
		if (bytes != NULL)
			fwrite(bytes, 1, len, stdout);
		else
			printf("<%" PRId32 ">", tok);
		fflush(stdout);
		if (bytes == NULL || len > 0)
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
	gen_json_token(s, tok);
	return (s->oom);
}

int
cli_gen_run(struct cli *g, const char *id, const char *prompt,
    const struct cli_gen *o, struct cli_gen_result *res)
{
	struct gen s = { .g = g, .nl = true };
	double t0 = cli_now();
	int err;

	res->finish[0] = '\0';
	struct infini_gen_opts go = { .text = prompt,
	    .max_tokens = (uint32_t)o->max, .sampling = &o->sp,
	    .stop = o->nstop ? o->stop : NULL, .on_token = on_token,
	    .arg = &s };
	err = infini_generate(g->c, id, &go, res->finish);
	res->seconds = cli_now() - t0;
	res->ntokens = s.n;
	res->ends_nl = s.nl;
	if (s.oom) {
		fprintf(stderr, "infini: %s: out of memory\n", g->cmd);
		err = -1;
	} else if (g->json && (err == 0 || (err == INFINI_ECANCELED &&
	    cli_interrupted))) {
		/* The final object: the whole answer, its text decoded the
		 * same way as the pieces printed per token. */
		size_t used;
		char *t = utf8_take(s.text ? s.text : "", s.tlen, true, &used);
		cJSON *j = cJSON_CreateObject();

		cJSON_AddStringToObject(j, "stream_id", id);
		cJSON_AddItemToObject(j, "tokens",
		    cJSON_CreateIntArray((const int *)s.tokens, (int)s.n));
		cJSON_AddStringToObject(j, "text", t ? t : "");
		cJSON_AddStringToObject(j, "finish_reason", res->finish);
		cJSON_AddNumberToObject(j, "seconds", res->seconds);
		cJSON_AddBoolToObject(j, "done", true);
		cli_json_out(j);
		free(t);
	}
	free(s.tokens);
	free(s.text);
	return (err);
}

/* ---- prompts from files --------------------------------------------- */

int
cli_read_text(struct cli *g, const char *path, char **out)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	size_t n = 0, cap = 4096, k;
	char *buf = NULL, *nb;

	if (f == NULL)
		return (cli_file_error(g, path));
	for (;;) {
		if ((nb = realloc(buf, cap + 1)) == NULL) {
			fprintf(stderr, "infini: %s: out of memory\n", g->cmd);
			goto fail;
		}
		buf = nb;
		if ((k = fread(buf + n, 1, cap - n, f)) == 0)
			break;
		n += k;
		if (n == cap)
			cap *= 2;
	}
	if (ferror(f)) {
		fprintf(stderr, "infini: %s: %s: %s\n", g->cmd, path,
		    strerror(errno));
		goto fail;
	}
	if (memchr(buf, '\0', n) != NULL) {
		fprintf(stderr, "infini: %s: %s holds NUL bytes (not text)\n",
		    g->cmd, path);
		goto fail;
	}
	buf[n] = '\0';
	if (f != stdin)
		fclose(f);
	*out = buf;
	return (0);
fail:
	if (f != stdin)
		fclose(f);
	free(buf);
	return (CLI_EXIT_REQUEST);
}

/* ---- generate ------------------------------------------------------- */

int
cmd_generate(struct cli *g, int argc, char **argv)
{
	static const struct option lo[] = { CLI_GLOBAL_OPTS, CLI_GEN_OPTS,
		{ "prompt", required_argument, NULL, 'p' },
		{ "prompt-file", required_argument, NULL, 'f' }, { 0 } };
	const char *prompt = NULL, *pfile = NULL;
	struct cli_gen_result res;
	struct cli_gen o;
	char *text = NULL;
	int ch, rc, err;

	if ((rc = cli_gen_init(&o, argc)) != 0)
		return (rc);
	optind = 0;
	while ((ch = getopt_long(argc, argv, ":hp:n:", lo, NULL)) != -1) {
		if (ch == 'p')
			prompt = optarg;
		else if (ch == 'f')
			pfile = optarg;
		else if ((rc = cli_gen_opt(g, ch, &o)) > 0)
			goto done;
		else if (rc < 0 && (rc = cli_opt(g, ch, argv)) >= 0)
			goto done;
	}
	if ((rc = cli_args(g, argc - optind, 1, 1)) != 0)
		goto done;
	if (prompt != NULL && pfile != NULL) {
		rc = cli_usage(g, "give --prompt or --prompt-file, not both");
		goto done;
	}
	/* "--prompt -" reads the prompt from stdin, like --prompt-file -. */
	if (prompt != NULL && strcmp(prompt, "-") == 0)
		pfile = "-";
	if (pfile != NULL) {
		if ((rc = cli_read_text(g, pfile, &text)) != 0)
			goto done;
		prompt = text;
	}
	if ((rc = cli_gen_check(g, &o)) != 0 || (rc = cli_connect(g)) != 0)
		goto done;
	cli_catch_sigint();
	err = cli_gen_run(g, argv[optind], prompt, &o, &res);
	if (!g->json && !res.ends_nl && isatty(STDOUT_FILENO))
		putchar('\n');
	fflush(stdout);
	if (err < 0) {
		rc = CLI_EXIT_REQUEST;
		goto done;
	}
	if (err != 0 && !(err == INFINI_ECANCELED && cli_interrupted &&
	    g->json)) {
		rc = cli_fail(g, err);
		goto done;
	}
	if (!g->json && isatty(STDERR_FILENO))
		fprintf(stderr, "[%s: %zu tokens, %.1f tokens/s]\n", res.finish,
		    res.ntokens, res.seconds > 0 ? (double)res.ntokens /
		    res.seconds : 0.0);
	rc = err == INFINI_ECANCELED ? CLI_EXIT_INTR : 0;
done:
	free(text);
	cli_gen_fini(&o);
	return (rc);
}
