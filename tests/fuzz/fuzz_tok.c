/*
 * fuzz_tok.c - libFuzzer target for the tokenizer (tok/tok.h).
 *
 * The input is a tokenizer.json, FUZZ_TOK_SEP, then text (fuzz.h); without
 * the separator it is all text, under the small SentencePiece-style
 * tokenizer of fuzz_tok_json.  The file is written into a private
 * temporary directory and loaded with tok_load_file; the text is encoded
 * with and without TOK_PLAIN_SPECIAL / TOK_ADD_SPECIAL, decoded whole and
 * streamed.  Properties: no crash or sanitizer report, documented error
 * codes with a NUL-terminated message, every id inside the vocabulary,
 * invalid UTF-8 refused exactly when tok_utf8_check says so, and streamed
 * text valid UTF-8.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "infini_err.h"
#include "tok/tok.h"

#include "fuzz.h"

#define CHECK(x) do { if (!(x)) abort(); } while (0)

static char dir[64], path[96];
static struct tok *fixed;

static void
cleanup(void)
{
	tok_free(fixed);
	unlink(path);
	rmdir(dir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static char json[65536];
	const char *t = getenv("TMPDIR");
	char err[512];
	FILE *f;
	size_t n;
	(void)argc;
	(void)argv;

	snprintf(dir, sizeof(dir), "%s/fuzz_tok.XXXXXX",
	    t && strlen(t) < 40 ? t : "/tmp");
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
	n = fuzz_tok_json(0, json, sizeof(json));
	CHECK((f = fopen(path, "wb")) != NULL);
	CHECK(fwrite(json, 1, n, f) == n && fclose(f) == 0);
	CHECK(tok_load_file(path, &fixed, err, sizeof(err)) == 0);
	atexit(cleanup);
	return (0);
}

static void
exercise(const struct tok *t, const char *text, size_t len)
{
	static const unsigned flags[] = { 0, TOK_PLAIN_SPECIAL,
	    TOK_ADD_SPECIAL };
	bool valid = tok_utf8_check(text, len) == len;

	for (size_t k = 0; k < sizeof(flags) / sizeof(flags[0]); k++) {
		int32_t *ids;
		size_t n, dl;
		char err[256], *dec;
		err[0] = '\0';
		int rv = tok_encode(t, text, len, flags[k], &ids, &n, err,
		    sizeof(err));
		CHECK(memchr(err, '\0', sizeof(err)) != NULL);
		if (rv != 0) {
			CHECK((rv == INFINI_EINVAL && !valid) ||
			    rv == INFINI_ENOMEM || rv == INFINI_EINTERNAL);
			continue;
		}
		CHECK(valid);
		for (size_t i = 0; i < n; i++)
			CHECK(ids[i] >= 0 && ids[i] < tok_vocab_size(t));
		if (tok_decode(t, ids, n, k == 1, &dec, &dl) == 0) {
			CHECK(dec[dl] == '\0');
			free(dec);
		}
		struct tok_stream s;
		char *buf = malloc(tok_stream_room(t));
		CHECK(buf != NULL);
		tok_stream_init(&s);
		for (size_t i = 0; i < n; i++) {
			size_t c = tok_stream_put(t, &s, ids[i], buf);
			CHECK(c <= tok_stream_room(t));
			CHECK(tok_utf8_check(buf, c) == c);
		}
		size_t c = tok_stream_flush(&s, buf);
		CHECK(tok_utf8_check(buf, c) == c);
		free(buf);
		free(ids);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char sep[] = FUZZ_TOK_SEP;
	const uint8_t *cut = size >= sizeof(sep) - 1 ?
	    memmem(data, size, sep, sizeof(sep) - 1) : NULL;
	struct tok *t = NULL;
	char err[512];
	FILE *f;

	if (cut == NULL) {
		exercise(fixed, (const char *)data, size);
		return (0);
	}
	CHECK((f = fopen(path, "wb")) != NULL);
	CHECK(fwrite(data, 1, (size_t)(cut - data), f) ==
	    (size_t)(cut - data) && fclose(f) == 0);
	err[0] = '\0';
	int rv = tok_load_file(path, &t, err, sizeof(err));
	CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	if (rv != 0) {
		CHECK(t == NULL && (rv == INFINI_ECORRUPT ||
		    rv == INFINI_EUNSUPPORTED || rv == INFINI_ENOMEM ||
		    rv == INFINI_EIO || rv == INFINI_ENOENT));
		return (0);
	}
	cut += sizeof(sep) - 1;
	exercise(t, (const char *)cut, size - (size_t)(cut - data));
	tok_free(t);
	return (0);
}
