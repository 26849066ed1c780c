/*
 * make_corpus.c - writes the seed corpora of the fuzz targets with the real
 * encoders: wire_pack_request for every method (envelope/), fx_write_model
 * models in fuzz_model's input format (model/), snap_encode of hand-built
 * stream states (snapshot/).  Deterministic: the same files every run.
 *
 * usage: make_corpus OUTDIR    (creates OUTDIR/{envelope,model,snapshot})
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fixture.h"
#include "infini_err.h"
#include "snapshot.h"
#include "wire.h"

#include "fuzz.h"

static const char *out;
static int nfail;

static void
emit(const char *sub, const char *name, const void *p, size_t n)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s/%s", out, sub, name);
	if (fx_write_file(path, p, n) != 0) {
		fprintf(stderr, "make_corpus: cannot write %s\n", path);
		nfail++;
	}
}

/* ---- envelopes */

static void
req(const char *name, int method, const ProtobufCMessage *body)
{
	size_t len;
	uint8_t *b = wire_pack_request(method, 7, body, &len);

	if (b == NULL) {
		nfail++;
		return;
	}
	emit("envelope", name, b, len);
	free(b);
}

static void
envelopes(void)
{
	int32_t ids[] = { 1, 2, 3, 299, 0, 255 };
	float vec[32];
	char *stops[] = { "\n", "end" };
	uint8_t snapbytes[64] = "INFSNAP";

	for (int i = 0; i < 32; i++)
		vec[i] = (float)i / 7.0f - 2.0f;

	Infini__V1__HealthRequest h = INFINI__V1__HEALTH_REQUEST__INIT;
	req("health", INFINI__V1__METHOD__HEALTH, &h.base);
	req("empty-body", INFINI__V1__METHOD__HEALTH, NULL);

	Infini__V1__OpenStreamRequest o = INFINI__V1__OPEN_STREAM_REQUEST__INIT;
	o.stream_id = "s-1";
	o.reuse = true;
	req("open", INFINI__V1__METHOD__OPEN_STREAM, &o.base);

	Infini__V1__Tokens tk = INFINI__V1__TOKENS__INIT;
	tk.ids = ids;
	tk.n_ids = 6;
	Infini__V1__PushRequest p = INFINI__V1__PUSH_REQUEST__INIT;
	p.stream_id = "s-1";
	p.input_case = INFINI__V1__PUSH_REQUEST__INPUT_TOKENS;
	p.tokens = &tk;
	p.output = INFINI__V1__OUTPUT__OUTPUT_LAST;
	req("push-tokens", INFINI__V1__METHOD__PUSH, &p.base);
	p.input_case = INFINI__V1__PUSH_REQUEST__INPUT_TEXT;
	p.text = "hello, world";
	p.output = INFINI__V1__OUTPUT__OUTPUT_LOGITS;
	req("push-text", INFINI__V1__METHOD__PUSH, &p.base);
	Infini__V1__Vectors v = INFINI__V1__VECTORS__INIT;
	v.dim = 16;
	v.data = vec;
	v.n_data = 32;
	p.input_case = INFINI__V1__PUSH_REQUEST__INPUT_VECTORS;
	p.vectors = &v;
	p.output = INFINI__V1__OUTPUT__OUTPUT_MEAN;
	req("push-vectors", INFINI__V1__METHOD__PUSH, &p.base);

	Infini__V1__Sampling sm = INFINI__V1__SAMPLING__INIT;
	sm.temperature = 0.8f;
	sm.top_k = 40;
	sm.top_p = 0.9f;
	sm.seed = 42;
	Infini__V1__GenerateRequest g = INFINI__V1__GENERATE_REQUEST__INIT;
	g.stream_id = "s-1";
	g.prompt_case = INFINI__V1__GENERATE_REQUEST__PROMPT_TEXT;
	g.text = "once upon";
	g.max_tokens = 16;
	g.sampling = &sm;
	g.stop = stops;
	g.n_stop = 2;
	req("generate", INFINI__V1__METHOD__GENERATE, &g.base);
	g.prompt_case = INFINI__V1__GENERATE_REQUEST__PROMPT_TOKENS;
	g.tokens = &tk;
	g.sampling = NULL;
	g.n_stop = 0;
	req("generate-tokens", INFINI__V1__METHOD__GENERATE, &g.base);

	Infini__V1__PollRequest pl = INFINI__V1__POLL_REQUEST__INIT;
	pl.generation_id = 3;
	pl.after = 2;
	pl.wait_ms = 100;
	req("poll", INFINI__V1__METHOD__POLL, &pl.base);

	Infini__V1__CancelRequest cn = INFINI__V1__CANCEL_REQUEST__INIT;
	cn.generation_id = 3;
	req("cancel", INFINI__V1__METHOD__CANCEL, &cn.base);

	Infini__V1__ForkRequest f = INFINI__V1__FORK_REQUEST__INIT;
	f.stream_id = "s-1";
	f.new_stream_id = "s-2";
	req("fork", INFINI__V1__METHOD__FORK, &f.base);

	Infini__V1__CloseStreamRequest cl = INFINI__V1__CLOSE_STREAM_REQUEST__INIT;
	cl.stream_id = "s-1";
	req("close", INFINI__V1__METHOD__CLOSE_STREAM, &cl.base);

	Infini__V1__ListStreamsRequest ls = INFINI__V1__LIST_STREAMS_REQUEST__INIT;
	req("list", INFINI__V1__METHOD__LIST_STREAMS, &ls.base);
	Infini__V1__StatsRequest st = INFINI__V1__STATS_REQUEST__INIT;
	req("stats", INFINI__V1__METHOD__STATS, &st.base);

	Infini__V1__SnapshotRequest sn = INFINI__V1__SNAPSHOT_REQUEST__INIT;
	sn.stream_id = "s-1";
	sn.name = "s-1.snap";
	sn.export = true;
	req("snapshot", INFINI__V1__METHOD__SNAPSHOT, &sn.base);

	Infini__V1__RestoreRequest rs = INFINI__V1__RESTORE_REQUEST__INIT;
	rs.stream_id = "s-3";
	rs.source_case = INFINI__V1__RESTORE_REQUEST__SOURCE_NAME;
	rs.name = "s-1.snap";
	req("restore-name", INFINI__V1__METHOD__RESTORE, &rs.base);
	rs.source_case = INFINI__V1__RESTORE_REQUEST__SOURCE_DATA;
	rs.data.data = snapbytes;
	rs.data.len = sizeof(snapbytes);
	req("restore-data", INFINI__V1__METHOD__RESTORE, &rs.base);

	req("unknown-method", 99, &h.base);

	/* A regression seed: a Restore body holding a field numbered 0 whose
	 * tag is a two-byte varint (see wire_unpack). */
	static const uint8_t field0[] = { 0x0a, 0x03, 0x12, 0x73, 0x31, 0x81,
	    0x00, 0x00, 0x01, 0x31, 0x2e, 0x73, 0x6e, 0x61, 0x70 };
	Infini__V1__Request rq = INFINI__V1__REQUEST__INIT;
	uint8_t env[64];
	rq.version = WIRE_VERSION;
	rq.method = INFINI__V1__METHOD__RESTORE;
	rq.call_id = 7;
	rq.body.data = (uint8_t *)field0;
	rq.body.len = sizeof(field0);
	emit("envelope", "field0", env, infini__v1__request__pack(&rq, env));
}

/* ---- models */

static void
model(const char *name, const struct fx_opts *o, bool with_config)
{
	char dir[256], path[512], *cfg = NULL, *st = NULL, *buf;
	static const char sep[] = FUZZ_MODEL_SEP;
	size_t ncfg = 0, nst, n;

	if (fx_tmpdir(dir, sizeof(dir)) != 0 || fx_write_model(dir, o) != 0) {
		nfail++;
		return;
	}
	snprintf(path, sizeof(path), "%s/config.json", dir);
	if (with_config && fx_read_file(path, &cfg, &ncfg) != 0)
		nfail++;
	snprintf(path, sizeof(path), "%s/model.safetensors", dir);
	if (fx_read_file(path, &st, &nst) != 0) {
		nfail++;
		goto done;
	}
	n = (cfg ? ncfg + sizeof(sep) - 1 : 0) + nst;
	if ((buf = malloc(n)) == NULL) {
		nfail++;
		goto done;
	}
	if (cfg) {
		memcpy(buf, cfg, ncfg);
		memcpy(buf + ncfg, sep, sizeof(sep) - 1);
	}
	memcpy(buf + n - nst, st, nst);
	emit("model", name, buf, n);
	free(buf);
done:
	free(cfg);
	free(st);
	fx_rmtree(dir);
}

/* small: the shape of FUZZ_MODEL_CONFIG. */
static void
small(struct fx_opts *o)
{
	fx_opts_default(o);
	o->cfg.vocab_size = 32;
	o->cfg.hidden_size = 16;
	o->cfg.intermediate_size = 32;
	o->cfg.n_layers = 1;
	o->cfg.n_heads = 2;
	o->cfg.n_kv_heads = 1;
	o->cfg.head_dim = 8;
	o->cfg.segment_size = 4;
	o->cfg.byte_tokenizer = false;
}

static void
models(void)
{
	struct fx_opts o;

	small(&o);
	model("bare-f32", &o, false);
	model("small-f32", &o, true);
	o.dtype = ENG_F16;
	model("small-f16", &o, true);
	o.dtype = ENG_BF16;
	model("small-bf16", &o, true);
	small(&o);
	o.cfg.tie_word_embeddings = true;
	o.cfg.memory_update = ENG_UPDATE_DELTA;
	model("tied-delta", &o, true);
	small(&o);
	o.cfg.arch = ENG_ARCH_GEMMA;
	o.cfg.act = ENG_ACT_GELU_TANH;
	o.cfg.gate_on = ENG_GATE_LOCAL;
	o.cfg.rope = false;
	model("gemma", &o, true);
	small(&o);
	o.cfg.n_layers = 2;
	o.cfg.n_kv_heads = 2;
	o.cfg.memory_rope = true;
	model("two-layers", &o, true);
}

/* ---- snapshots */

static void
snap(const char *name, int64_t pos, bool kmem, bool owner)
{
	struct eng_stream_state st;
	struct snap_meta m;
	size_t memn, cachen, total;
	uint8_t *b;
	size_t len;

	if (eng_stream_state_init(&st, 1, 1, 8, 4, kmem, pos) != 0) {
		nfail++;
		return;
	}
	st.sample_step = (uint64_t)pos / 2;
	eng_stream_state_floats(&st, &memn, &cachen);
	/* M and z are one allocation or two: fill each by its own count. */
	for (size_t i = 0; i < 64; i++)
		st.M[i] = (float)i * 0.25f - 3.0f;
	for (size_t i = 0; i < 8; i++)
		st.z[i] = (float)i + 0.5f;
	total = cachen;
	for (size_t i = 0; i < total; i++) {
		st.kc[i] = (float)i * 0.1f;
		st.vc[i] = -(float)i * 0.1f;
		if (kmem)
			st.km[i] = (float)i * 0.2f;
	}
	memset(&m, 0, sizeof(m));
	m.fingerprint = FUZZ_SNAP_FP;
	m.n_layers = 1;
	m.n_kv_heads = 1;
	m.head_dim = 8;
	m.segment_size = 4;
	m.hidden_size = 16;
	m.vocab_size = 32;
	snprintf(m.stream_id, sizeof(m.stream_id), "fuzz-%s", name);
	m.created_ms = 1700000000000ull;
	m.has_owner = owner;
	m.owner = 1000;
	float hid[16];
	if (pos > 0) {
		/* The last input's hidden state (section HIDDEN). */
		for (int i = 0; i < 16; i++)
			hid[i] = (float)i / 8.0f - 1.0f;
		st.n_last = 16;
		st.last = hid;
	}
	int rv = snap_encode(&m, &st, &b, &len);
	st.n_last = 0;
	st.last = NULL;                 /* borrowed, not the state's */
	if (rv != 0) {
		nfail++;
	} else {
		emit("snapshot", name, b, len);
		free(b);
	}
	eng_stream_state_fini(&st);
}

/* ---- tokenizers: fuzz_tok_json's two files, each with some texts, and
 * texts alone (under the fixed tokenizer) */

static void
toks(void)
{
	static const char *texts[] = {
		"ab aab \xc3\xa9 <s>x", "<|eot|>  12345\r\n\t'll",
		"\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd \xe6\x97\xa5\xe6\x9c\xac",
		"e\xcc\x81 \xef\xbc\xa1", "", "bad \xff\xfe",
	};
	static char json[65536], buf[70000];
	char name[32];

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		snprintf(name, sizeof(name), "text%zu", i);
		emit("tok", name, texts[i], strlen(texts[i]));
		for (int k = 0; k < 2; k++) {
			size_t n = fuzz_tok_json(k, json, sizeof(json));
			size_t m = (size_t)snprintf(buf, sizeof(buf), "%.*s%s%s",
			    (int)n, json, FUZZ_TOK_SEP, texts[i]);
			snprintf(name, sizeof(name), "json%d-text%zu", k, i);
			emit("tok", name, buf, m);
		}
	}
}

int
main(int argc, char **argv)
{
	char path[4096];
	const char *subs[] = { "envelope", "model", "snapshot", "tok" };

	if (argc != 2) {
		fprintf(stderr, "usage: make_corpus OUTDIR\n");
		return (2);
	}
	out = argv[1];
	mkdir(out, 0755);
	for (size_t i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "%s/%s", out, subs[i]);
		mkdir(path, 0755);
	}
	envelopes();
	models();
	toks();
	snap("pos0", 0, false, false);
	snap("partial", 6, false, false);
	snap("full", 8, false, false);
	snap("kmem", 13, true, true);
	snap("all", 1001, true, true);
	if (nfail) {
		fprintf(stderr, "make_corpus: %d seeds failed\n", nfail);
		return (1);
	}
	return (0);
}
