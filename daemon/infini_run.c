/*
 * infini_run.c - infini-run, the one-shot runner: load a model, push one
 * input stream through the engine (optionally in chunks), write embeddings
 * or logits, or generate tokens.  No daemon involved; tests and benchmarks
 * use it as the reference path of the command-line tools.
 *
 * Generation samples on the device: the sampler rides on the prompt's last
 * input (the first new token comes from the prompt's last logits), then each
 * new token is pushed once, as a 1-token job that samples the next.  The
 * last token printed is not pushed (nothing would read its logits).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"
#include "gpu/gpu.h"
#include "engine/model.h"
#include "infini_err.h"
#include "npy.h"
#include "sampling.h"
#include "tok/tok.h"

#ifndef INFINI_DEFAULT_MODEL
#define INFINI_DEFAULT_MODEL "models/default"
#endif

static void
usage(FILE *f)
{
	fprintf(f,
"usage: infini-run [--model DIR] INPUT [options]\n"
"       infini-run (--tokenizer FILE | --model DIR) INPUT --output tokens|text\n"
"\n"
"Runs an Infini-attention model over one stream, without the daemon; or,\n"
"with --output tokens / text, only tokenizes / decodes (no model needed).\n"
"\n"
"input (one of):\n"
"  --tokens FILE|IDS    token ids separated by spaces, commas or newlines,\n"
"                       in a file or given directly\n"
"  --text STR           UTF-8 text (through the model's tokenizer)\n"
"  --text-file FILE     UTF-8 text from a file\n"
"  --vectors FILE.npy   float32 [n, hidden_size] raw input vectors\n"
"options:\n"
"  --model DIR          model directory (default $INFINI_MODEL or %s)\n"
"  --output KIND        embeddings | logits | mean | last (default last);\n"
"                       tokens: print the ids of the text; text: print\n"
"                       the text of the ids\n"
"  --tokenizer FILE     a Hugging Face tokenizer.json (default: the\n"
"                       model's tokenizer.json, else its byte tokenizer)\n"
"  --plain-special      special-token strings in the text are plain text\n"
"  --add-special        add the tokenizer's BOS / EOS around the text\n"
"  --out FILE.npy       write the output as float32 .npy (default: print)\n"
"  --chunk N            push the input N tokens at a time (default: all)\n"
"  --generate N         then generate N tokens and print them\n"
"  --temperature T      sampling temperature (default 0: greedy)\n"
"  --top-k K            keep the K most likely tokens (default 0: all)\n"
"  --top-p P            nucleus sampling mass (default 1: off)\n"
"  --seed S             sampling seed (default 0)\n"
"  --device SEL         Vulkan device index or name substring\n"
"                       (default $INFINI_DEVICE, else the best device)\n"
"  --list-devices       print the Vulkan devices and exit\n"
"  --profile            print per-op device time to stderr\n"
"  -h, --help           this text\n", INFINI_DEFAULT_MODEL);
}

static int
read_file(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0;

	if (f == NULL)
		return (INFINI_EIO);
	for (;;) {
		if (n + 4096 + 1 > cap) {
			char *nb = realloc(buf, cap = (cap ? cap * 2 : 65536));
			if (nb == NULL) {
				free(buf);
				fclose(f);
				return (INFINI_ENOMEM);
			}
			buf = nb;
		}
		size_t k = fread(buf + n, 1, 4096, f);
		n += k;
		if (k < 4096)
			break;
	}
	if (ferror(f)) {
		free(buf);
		fclose(f);
		return (INFINI_EIO);
	}
	fclose(f);
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return (0);
}

/* parse_tokens reads integers separated by spaces, commas or newlines. */
static int
parse_tokens(const char *s, int32_t **out, int *n)
{
	int32_t *t = NULL;
	int cap = 0, k = 0;

	while (*s) {
		char *end;
		long v;
		if (strchr(" \t\r\n,", *s)) {
			s++;
			continue;
		}
		errno = 0;
		v = strtol(s, &end, 10);
		if (end == s || errno != 0 || v < 0 || v > INT32_MAX) {
			free(t);
			return (INFINI_EINVAL);
		}
		if (k == cap) {
			int32_t *nt = realloc(t, (size_t)(cap = cap ? cap * 2 : 256) *
			    sizeof(*t));
			if (nt == NULL) {
				free(t);
				return (INFINI_ENOMEM);
			}
			t = nt;
		}
		t[k++] = (int32_t)v;
		s = end;
	}
	*out = t;
	*n = k;
	return (0);
}

/* read_ids reads ids from the file arg, or from arg itself when it is
 * no file and holds only ids and separators. */
static int
read_ids(const char *arg, int32_t **out, int *n)
{
	char *buf = NULL;
	size_t len;
	int rv;

	if (read_file(arg, &buf, &len) == 0) {
		rv = parse_tokens(buf, out, n);
		free(buf);
		return (rv);
	}
	if (strspn(arg, "0123456789 \t\r\n,") != strlen(arg))
		return (INFINI_ENOENT);
	return (parse_tokens(arg, out, n));
}

/* tokenize_only: --output tokens prints the ids of the text, --output
 * text prints the text of the ids; no model is loaded (with --model, only
 * its tokenizer). */
static int
tokenize_only(const char *tokenizer, const char *model_dir,
    const char *output, const char *ids_arg, const char *text,
    const char *text_file, const char *vec_file, unsigned flags)
{
	struct tok *tk = NULL;
	char err[512] = "", *buf = NULL, *out = NULL;
	int32_t *ids = NULL;
	size_t len = 0, n = 0;
	int rv = 1, ni = 0;

	if ((tokenizer != NULL ? tok_load_file(tokenizer, &tk, err,
	    sizeof(err)) : tok_load_dir(model_dir, &tk, err, sizeof(err))) != 0
	    || tk == NULL) {
		fprintf(stderr, "infini-run: tokenizer: %s\n", tk == NULL &&
		    err[0] == '\0' ? "the model has none" : err);
		return (1);
	}
	if (strcmp(output, "tokens") == 0) {
		if (text == NULL && text_file == NULL) {
			fprintf(stderr, "infini-run: --output tokens takes --text "
			    "or --text-file\n");
			goto out;
		}
		if (text_file != NULL && read_file(text_file, &buf, &len) != 0) {
			fprintf(stderr, "infini-run: %s: %s\n", text_file,
			    strerror(errno));
			goto out;
		}
		if (tok_encode(tk, text ? text : buf, text ? strlen(text) : len,
		    flags, &ids, &n, err, sizeof(err)) != 0) {
			fprintf(stderr, "infini-run: %s\n", err);
			goto out;
		}
		for (size_t i = 0; i < n; i++)
			printf("%s%d", i ? " " : "", ids[i]);
		printf("\n");
	} else {
		if (ids_arg == NULL || vec_file != NULL) {
			fprintf(stderr, "infini-run: --output text takes "
			    "--tokens\n");
			goto out;
		}
		if (read_ids(ids_arg, &ids, &ni) != 0) {
			fprintf(stderr, "infini-run: %s: cannot read token ids\n",
			    ids_arg);
			goto out;
		}
		if (tok_decode(tk, ids, (size_t)ni, false, &out, &len) != 0) {
			fprintf(stderr, "infini-run: token ids outside the "
			    "tokenizer's %d\n", tok_vocab_size(tk));
			goto out;
		}
		fwrite(out, 1, len, stdout);
	}
	rv = fflush(stdout) == 0 ? 0 : 1;
out:
	tok_free(tk);
	free(buf);
	free(ids);
	free(out);
	return (rv);
}

static void
print_rows(const float *d, size_t rows, size_t cols)
{
	for (size_t r = 0; r < rows; r++) {
		for (size_t c = 0; c < cols; c++)
			printf("%s%.7g", c ? " " : "", d[r * cols + c]);
		printf("\n");
	}
}

static double
now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (ts.tv_sec + ts.tv_nsec * 1e-9);
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "model", 1, 0, 'm' }, { "tokens", 1, 0, 't' },
		{ "text", 1, 0, 'x' }, { "text-file", 1, 0, 'f' },
		{ "vectors", 1, 0, 'v' }, { "output", 1, 0, 'o' },
		{ "out", 1, 0, 'O' }, { "chunk", 1, 0, 'c' },
		{ "generate", 1, 0, 'g' }, { "temperature", 1, 0, 'T' },
		{ "top-k", 1, 0, 'k' }, { "top-p", 1, 0, 'p' },
		{ "seed", 1, 0, 's' }, { "device", 1, 0, 'd' },
		{ "list-devices", 0, 0, 'L' }, { "profile", 0, 0, 'P' },
		{ "tokenizer", 1, 0, 'z' }, { "plain-special", 0, 0, 'Z' },
		{ "add-special", 0, 0, 'A' },
		{ "help", 0, 0, 'h' }, { 0, 0, 0, 0 },
	};
	const char *model_dir = getenv("INFINI_MODEL"), *out_path = NULL;
	const char *tok_file = NULL, *text = NULL, *text_file = NULL;
	const char *vec_file = NULL, *output = "last";
	const char *device = getenv("INFINI_DEVICE");
	struct eng_sampler smp = { 0, 0, 1.0f, 0 };
	int chunk = 0, gen = 0, opt, rv = 1, ninputs = 0, H, V, slot;
	bool profile = false;
	const char *tokenizer = NULL;
	unsigned tflags = 0;
	struct tok *tk = NULL;
	enum eng_out kind;
	struct eng_model *m = NULL;
	struct eng *e = NULL;
	int32_t *tokens = NULL;
	float *vectors = NULL;
	struct eng_output o = { 0 };
	char err[512] = "";
	char *buf = NULL;
	size_t len;

	while ((opt = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (opt) {
		case 'm': model_dir = optarg; break;
		case 't': tok_file = optarg; break;
		case 'x': text = optarg; break;
		case 'f': text_file = optarg; break;
		case 'v': vec_file = optarg; break;
		case 'o': output = optarg; break;
		case 'O': out_path = optarg; break;
		case 'c': chunk = atoi(optarg); break;
		case 'g': gen = atoi(optarg); break;
		case 'T': smp.temperature = strtof(optarg, NULL); break;
		case 'k': smp.top_k = atoi(optarg); break;
		case 'p': smp.top_p = strtof(optarg, NULL); break;
		case 's': smp.seed = strtoull(optarg, NULL, 0); break;
		case 'd': device = optarg; break;
		case 'L': return (gpu_dev_list(stdout) > 0 ? 0 : 1);
		case 'P': profile = true; break;
		case 'z': tokenizer = optarg; break;
		case 'Z': tflags |= TOK_PLAIN_SPECIAL; break;
		case 'A': tflags |= TOK_ADD_SPECIAL; break;
		case 'h': usage(stdout); return (0);
		default: usage(stderr); return (2);
		}
	}
	if (optind != argc || (!!tok_file + !!text + !!text_file + !!vec_file) != 1) {
		fprintf(stderr, "infini-run: give exactly one of --tokens, "
		    "--text, --text-file, --vectors (see --help)\n");
		return (2);
	}
	char why[160];
	if (!wire_check_sampling(smp.temperature, (uint32_t)smp.top_k,
	    smp.top_p, why, sizeof(why))) {
		fprintf(stderr, "infini-run: %s\n", why);
		return (2);
	}
	if (chunk < 0 || gen < 0) {
		fprintf(stderr, "infini-run: --chunk and --generate take "
		    "non-negative counts\n");
		return (2);
	}
	if (model_dir == NULL) {
		model_dir = INFINI_DEFAULT_MODEL;
#ifdef INFINI_SOURCE_MODEL
		/* Not installed: the installed model is missing, so run the
		 * source tree's, as infinid does (daemon/main.c). */
		if (access(model_dir, F_OK) != 0 &&
		    access(INFINI_SOURCE_MODEL, F_OK) == 0)
			model_dir = INFINI_SOURCE_MODEL;
#endif
	}
	if (strcmp(output, "tokens") == 0 || strcmp(output, "text") == 0)
		return (tokenize_only(tokenizer, model_dir, output, tok_file,
		    text, text_file, vec_file, tflags));
	if (strcmp(output, "embeddings") == 0)
		kind = ENG_OUT_EMBED;
	else if (strcmp(output, "logits") == 0)
		kind = ENG_OUT_LOGITS;
	else if (strcmp(output, "mean") == 0)
		kind = ENG_OUT_MEAN;
	else if (strcmp(output, "last") == 0)
		kind = ENG_OUT_LAST;
	else {
		fprintf(stderr, "infini-run: unknown --output %s\n", output);
		return (2);
	}
	if ((rv = eng_model_load(model_dir, &m, err, sizeof(err))) != 0) {
		fprintf(stderr, "infini-run: model %s: %s\n", model_dir, err);
		return (1);
	}
	H = m->cfg.hidden_size;
	V = m->cfg.vocab_size;
	rv = 1;
	if ((tokenizer != NULL ? tok_load_file(tokenizer, &tk, err,
	    sizeof(err)) : tok_load_dir(model_dir, &tk, err, sizeof(err))) != 0) {
		fprintf(stderr, "infini-run: tokenizer: %s\n", err);
		goto out;
	}
	if (tk != NULL && tok_vocab_size(tk) > V) {
		fprintf(stderr, "infini-run: the tokenizer has %d ids, the "
		    "model's vocab_size is %d\n", tok_vocab_size(tk), V);
		goto out;
	}

	/* Input. */
	if (tok_file != NULL) {
		if (read_ids(tok_file, &tokens, &ninputs) != 0) {
			fprintf(stderr, "infini-run: %s: cannot read token ids\n",
			    tok_file);
			goto out;
		}
	} else if (text != NULL || text_file != NULL) {
		if (tk == NULL) {
			fprintf(stderr, "infini-run: this model has no "
			    "tokenizer; give --tokenizer, --tokens or --vectors\n");
			goto out;
		}
		if (text_file != NULL && read_file(text_file, &buf, &len) != 0) {
			fprintf(stderr, "infini-run: %s: %s\n", text_file,
			    strerror(errno));
			goto out;
		}
		size_t nt;
		if (tok_encode(tk, text ? text : buf, text ? strlen(text) : len,
		    tflags, &tokens, &nt, err, sizeof(err)) != 0) {
			fprintf(stderr, "infini-run: %s\n", err);
			goto out;
		}
		ninputs = (int)nt;
	} else {
		size_t r, c;
		if (npy_read(vec_file, &vectors, &r, &c, err, sizeof(err)) != 0) {
			fprintf(stderr, "infini-run: %s\n", err);
			goto out;
		}
		if ((int)c != H) {
			fprintf(stderr, "infini-run: %s: vectors have width %zu, "
			    "the model's hidden_size is %d\n", vec_file, c, H);
			goto out;
		}
		ninputs = (int)r;
	}
	if (ninputs == 0) {
		fprintf(stderr, "infini-run: the input is empty\n");
		goto out;
	}

	struct eng_opts eo = { .device = device, .max_streams = 1,
	    .max_batch = 512, .profile = profile };
	if (eng_open(m, &eo, &e, err, sizeof(err)) != 0) {
		fprintf(stderr, "infini-run: %s\n", err);
		goto out;
	}
	if (eng_stream_alloc(e, &slot) != 0)
		goto out;

	if (eng_output_init(&o, eng_config(e), kind, ninputs) != 0)
		goto out;
	int32_t tok = -1;
	double t0 = now();
	int step = chunk > 0 ? chunk : ninputs;
	for (int at = 0; at < ninputs; at += step) {
		int n = ninputs - at < step ? ninputs - at : step;
		struct eng_job j = {
			.slot = slot, .n = n,
			.tokens = tokens ? tokens + at : NULL,
			.vectors = vectors ? vectors + (size_t)at * H : NULL,
			.sample = gen > 0 && at + n == ninputs ? &smp : NULL,
			.token = &tok,
		};
		eng_output_job(&o, at, &j);
		if (eng_run(e, &j, 1, err, sizeof(err)) != 0) {
			fprintf(stderr, "infini-run: %s\n", err);
			goto out;
		}
	}
	eng_output_finish(&o);
	double t1 = now();
	fprintf(stderr, "infini-run: %d inputs in %.3f s (%.1f tokens/s) on %s\n",
	    ninputs, t1 - t0, ninputs / (t1 - t0), eng_device_name(e));

	size_t rows = (size_t)o.rows, cols = (size_t)o.cols;
	if (out_path != NULL) {
		if (npy_write(out_path, o.data, rows,
		    rows == 1 && kind != ENG_OUT_EMBED && kind != ENG_OUT_LOGITS ?
		    0 : cols) != 0) {
			fprintf(stderr, "infini-run: cannot write %s\n", out_path);
			goto out;
		}
		/* 1-D for pooled outputs: rows == 1 means shape [H]. */
	} else if (gen == 0) {
		print_rows(o.data, rows, cols);
	}

	/* Generation: print the token sampled from the prompt, feed it back
	 * (sampling the next), repeat; stop early at EOS. */
	if (gen > 0) {
		int ngen = 0;
		double g0 = now();
		struct tok_stream ts;
		char *piece = tk ? malloc(tok_stream_room(tk)) : NULL;
		if (tk != NULL && piece == NULL)
			goto out;
		tok_stream_init(&ts);
		for (;;) {
			if (tk != NULL && tok_is_eos(tk, tok))
				break;
			if (tk != NULL)
				fwrite(piece, 1, tok_stream_put(tk, &ts, tok, piece),
				    stdout);
			else
				printf("%s%d", ngen ? " " : "", tok);
			fflush(stdout);
			if (++ngen == gen)
				break;
			int32_t in = tok;
			struct eng_job j = { .slot = slot, .n = 1, .tokens = &in,
			    .out = ENG_OUT_NONE, .sample = &smp, .token = &tok };
			if (eng_run(e, &j, 1, err, sizeof(err)) != 0) {
				printf("\n");
				fprintf(stderr, "infini-run: %s\n", err);
				free(piece);
				goto out;
			}
		}
		if (tk != NULL)
			fwrite(piece, 1, tok_stream_flush(&ts, piece), stdout);
		free(piece);
		printf("\n");
		double g1 = now();
		fprintf(stderr, "infini-run: generated %d tokens in %.3f s "
		    "(%.1f tokens/s after the prompt)%s\n", ngen, g1 - g0,
		    ngen > 1 ? (ngen - 1) / (g1 - g0) : 0.0,
		    ngen < gen ? ", stopped at EOS" : "");
	}
	if (profile)
		eng_profile_print(e, stderr);
	if (eng_validation_errors(e) > 0) {
		fprintf(stderr, "infini-run: %u Vulkan validation messages\n",
		    eng_validation_errors(e));
		goto out;
	}
	rv = 0;
out:
	eng_close(e);
	eng_model_free(m);
	tok_free(tk);
	free(tokens);
	free(vectors);
	eng_output_fini(&o);
	free(buf);
	return (rv);
}
