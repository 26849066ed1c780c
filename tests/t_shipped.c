/*
 * t_shipped.c - the shipped model (models/default) runs in the engine exactly
 * as it was trained.
 *
 * The PyTorch model the weights were trained with (bench/torch_infini.py) is
 * run at test time on a fixed byte string of SHIP_NTOK tokens (six segments
 * of 32, so five compressions happen) and writes its logits to a .npy file;
 * the engine pushes the same tokens in uneven chunks and must give the same
 * logits within SHIP_TOL_TORCH.  The double-precision oracle (tests/ref.h)
 * checks the engine's first REF_NTOK tokens (across the first compression)
 * within SHIP_TOL_REF.  The fixed text mixes prose, code and keys of several
 * formats, so no single training source dominates it.
 *
 * Then recall, the memory end to end through the engine: RECALL_TRIALS pass
 * keys of 5 digits and as many of 8, each stated in segment 0 and asked for
 * RECALL_K compressions later over filler the model never saw in training
 * (the GPL-3 text that every Debian system has in /usr/share/common-licenses),
 * greedy-decoded; at least RECALL_MIN of each length must come back exact.
 * The answer is the key the test itself stated, so a wrong weight, a memory
 * path that drops the state, or a model whose memory does not work fails it.
 * tools/eval/eval.py measures recall over the whole matrix; this is its
 * smoke test.
 *
 * Skips when models/default is absent, when there is no Vulkan device, or
 * when python3 cannot import torch and numpy (tools/setup-debian.sh installs
 * python3-torch, python3-numpy and libopenblas0-pthread).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/model.h"
#include "fixture.h"
#include "gpu_test.h"
#include "npy.h"
#include "ref.h"
#include "tap.h"

#define SHIP_NTOK 200           /* > 6 segments of 32 */
#define REF_NTOK 40
#define SHIP_TOL_TORCH 5e-4     /* max |logit difference|, fp32 both sides;
                                 * seen 4e-5 with |logits| up to 24 */
#define SHIP_TOL_REF 1e-4       /* fp32 engine against the double oracle */
#define BOS 256

#define RECALL_K 64              /* compressions between key and question */
#define RECALL_TRIALS 8
#define RECALL_MIN 6
#define RECALL_FILLER "/usr/share/common-licenses/GPL-3"
#define SEG 32                  /* the shipped model's segment_size */

static const char *ship_text =
    "The door code is 20417388. def push(self, seg):\n    self.mem += "
    "seg.kv()  # compress\nA dictionary is a malevolent literary device for "
    "cramping the growth of a language. The secret word is lantern. In the "
    "beginning God created the heaven and the earth. ";

static int32_t toks[SHIP_NTOK];

static void
make_tokens(void)
{
	size_t L = strlen(ship_text);
	toks[0] = BOS;
	for (int i = 1; i < SHIP_NTOK; i++)
		toks[i] = (unsigned char)ship_text[(size_t)(i - 1) % L];
}

/* run_torch writes the tokens and has torch_infini.py compute the logits;
 * returns 0 and *out [SHIP_NTOK, V] (malloc'd), or -1. */
static int
run_torch(const char *tmp, int V, float **out)
{
	char tokf[512], npyf[512], cmd[2048], err[256];
	size_t rows, cols;
	FILE *f;

	snprintf(tokf, sizeof(tokf), "%s/tokens.txt", tmp);
	snprintf(npyf, sizeof(npyf), "%s/torch.npy", tmp);
	if ((f = fopen(tokf, "w")) == NULL)
		return (-1);
	for (int i = 0; i < SHIP_NTOK; i++)
		fprintf(f, "%d ", toks[i]);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "%s %s check %s %s %s --threads 1 "
	    "2>%s/torch.log", PYTHON, TORCH_PY, MODEL_DIR, tokf, npyf, tmp);
	if (system(cmd) != 0) {
		char line[512];
		tap_diag("failed: %s", cmd);
		snprintf(line, sizeof(line), "%s/torch.log", tmp);
		if ((f = fopen(line, "r")) != NULL) {
			while (fgets(line, sizeof(line), f) != NULL)
				tap_diag("  %.*s", (int)strcspn(line, "\n"), line);
			fclose(f);
		}
		return (-1);
	}
	if (npy_read(npyf, out, &rows, &cols, err, sizeof(err)) != 0) {
		tap_diag("%s: %s", npyf, err);
		return (-1);
	}
	if (rows != SHIP_NTOK || cols != (size_t)V) {
		tap_diag("torch logits [%zu, %zu], want [%d, %d]", rows, cols,
		    SHIP_NTOK, V);
		free(*out);
		return (-1);
	}
	return (0);
}

/* run_engine pushes toks in chunks of 1, 5, 13, 32, 1, ... into a fresh
 * stream and collects every input's logits; returns 0 or an error. */
static int
run_engine(struct eng *e, int V, float *logits)
{
	static const int chunks[] = { 1, 5, 13, 32, 1, 40, 7 };
	char err[256];
	int slot, rv, c = 0;

	if ((rv = eng_stream_alloc(e, &slot)) != 0)
		return (rv);
	for (int at = 0; at < SHIP_NTOK; c++) {
		int n = chunks[c % 7];
		if (n > SHIP_NTOK - at)
			n = SHIP_NTOK - at;
		struct eng_job j = { .slot = slot, .n = n, .tokens = toks + at,
		    .out = ENG_OUT_LOGITS, .result = logits + (size_t)at * V };
		if ((rv = eng_run(e, &j, 1, err, sizeof(err))) != 0) {
			tap_diag("eng_run: %s", err);
			break;
		}
		at += n;
	}
	eng_stream_free(e, slot);
	return (rv);
}

/* recall_trial builds one pass-key prompt (the layout of tools/train/
 * common.py's passkey_layout, place "start": BOS and the statement in
 * segment 0, RECALL_K - 1 filler segments, the question in the next),
 * greedy-decodes the answer through the engine and returns 1 when it is
 * key followed by ".", 0 when not, or a negative error. */
static int
recall_trial(struct eng *e, const char *key, const char *fill, size_t nfill,
    size_t *fo, char *got, size_t gotlen)
{
	enum { NPROMPT = (RECALL_K + 1) * SEG };
	static int32_t p[NPROMPT];
	char st[64], err[256];
	const char *q = "The pass key is ";
	struct eng_sampler greedy = { .temperature = 0 };
	int n = 0, slot, rv, ngot = 0, nans = (int)strlen(key) + 1;
	int32_t tok;

	snprintf(st, sizeof(st), "The pass key is %s. ", key);
	p[n++] = BOS;
	for (const char *c = st; *c; c++)
		p[n++] = (unsigned char)*c;
	/* Filler to the end of segment 0, the RECALL_K - 1 segments between,
	 * and 4 bytes that open the question's segment. */
	while (n < RECALL_K * SEG + 4) {
		p[n++] = (unsigned char)fill[*fo];
		*fo = (*fo + 1) % nfill;
	}
	for (const char *c = q; *c; c++)
		p[n++] = (unsigned char)*c;
	if ((rv = eng_stream_alloc(e, &slot)) != 0)
		return (rv);
	for (int at = 0; at < n && rv == 0; at += 256) {
		struct eng_job j = { .slot = slot, .tokens = p + at,
		    .n = n - at < 256 ? n - at : 256, .out = ENG_OUT_NONE };
		if (at + j.n == n) {
			j.sample = &greedy;
			j.token = &tok;
		}
		rv = eng_run(e, &j, 1, err, sizeof(err));
	}
	while (rv == 0 && ngot < nans && (size_t)ngot + 1 < gotlen) {
		got[ngot++] = tok >= 32 && tok < 127 ? (char)tok : '?';
		struct eng_job j = { .slot = slot, .n = 1, .tokens = &tok,
		    .out = ENG_OUT_NONE, .sample = &greedy, .token = &tok };
		if (ngot < nans)
			rv = eng_run(e, &j, 1, err, sizeof(err));
	}
	got[ngot] = 0;
	eng_stream_free(e, slot);
	if (rv != 0) {
		tap_diag("eng_run: %s", err);
		return (rv < 0 ? rv : -rv);
	}
	return (strncmp(got, key, strlen(key)) == 0 && got[nans - 1] == '.');
}

/* Key lengths recall is checked for, one test each: the 5 digits,
 * and 8, which an earlier default model recalled only 17 times in 20. */
static const int recall_digits[] = { 5, 8 };
#define NRECALL ((int)(sizeof(recall_digits) / sizeof(recall_digits[0])))

/* check_recall runs RECALL_TRIALS trials for each key length, with keys
 * from a fixed generator and filler taken from successive places of
 * RECALL_FILLER. */
static void
check_recall(struct eng *e, const struct eng_model *m)
{
	char *fill = NULL, key[16], got[32];
	size_t nfill, fo = 1000;        /* past the title and preamble head */
	uint32_t x = 20241207;

	if (m->cfg.segment_size != SEG) {
		for (int d = 0; d < NRECALL; d++)
			ok(0, "recall: segment_size %d, the check is laid out "
			    "for %d", m->cfg.segment_size, SEG);
		return;
	}
	if (fx_read_file(RECALL_FILLER, &fill, &nfill) != 0 || nfill < 4096) {
		tap_skip(NRECALL, "no " RECALL_FILLER " (base-files)");
		free(fill);
		return;
	}
	for (int d = 0; d < NRECALL; d++) {
		int nd = recall_digits[d], right = 0, rv = 0;
		uint32_t mod = 1;

		for (int i = 0; i < nd; i++)
			mod *= 10;
		for (int t = 0; t < RECALL_TRIALS && rv >= 0; t++) {
			x = x * 1664525u + 1013904223u;
			snprintf(key, sizeof(key), "%0*u", nd, x % mod);
			rv = recall_trial(e, key, fill, nfill, &fo, got,
			    sizeof(got));
			right += rv == 1;
			if (rv == 0)
				tap_diag("recall: stated %s, answered %s", key,
				    got);
		}
		ok(rv >= 0 && right >= RECALL_MIN, "recall: %d/%d %d-digit "
		    "keys exact after %d compressions of unseen text (want "
		    ">= %d)", right, RECALL_TRIALS, nd, RECALL_K, RECALL_MIN);
	}
	free(fill);
}

int
main(void)
{
	char err[512], tmp[256] = "", cmd[1024];
	struct eng_model *m = NULL;
	struct eng *e = NULL;
	struct eng_opts eo = { .max_streams = 2, .max_batch = 64 };
	struct stat sb;
	float *tl = NULL, *el = NULL;
	struct ref_state *rs = NULL;
	double *rl = NULL;
	int V, rv;

	if (stat(MODEL_DIR "/model.safetensors", &sb) != 0) {
		tap_plan_skip_all("no " MODEL_DIR "/model.safetensors");
		return (0);
	}
	if (!gt_have_device()) {
		tap_plan_skip_all("no Vulkan device");
		return (0);
	}
	snprintf(cmd, sizeof(cmd), "%s -c 'import torch, numpy' >/dev/null 2>&1",
	    PYTHON);
	if (system(cmd) != 0) {
		tap_plan_skip_all("python3 cannot import torch and numpy "
		    "(apt-get install python3-torch python3-numpy)");
		return (0);
	}
	tap_plan(6 + NRECALL);
	make_tokens();
	rv = eng_model_load(MODEL_DIR, &m, err, sizeof(err));
	if (!ok(rv == 0, "load %s", MODEL_DIR)) {
		tap_diag("%s", err);
		return (tap_done());
	}
	V = m->cfg.vocab_size;
	eo.device = getenv("INFINI_DEVICE");
	if ((rv = eng_open(m, &eo, &e, err, sizeof(err))) != 0)
		tap_diag("engine: %s", err);
	ok(rv == 0, "engine open on %s", rv == 0 ? eng_device_name(e) : "-");
	if (rv != 0)
		goto out;

	/* PyTorch, computed now from the shipped weights. */
	if (fx_tmpdir(tmp, sizeof(tmp)) != 0)
		tmp[0] = 0;
	rv = tmp[0] ? run_torch(tmp, V, &tl) : -1;
	ok(rv == 0, "torch_infini.py check wrote [%d, %d] logits", SHIP_NTOK,
	    V);
	el = calloc((size_t)SHIP_NTOK * V, sizeof(float));
	rv = el ? run_engine(e, V, el) : -1;
	ok(rv == 0, "engine ran %d tokens in uneven chunks", SHIP_NTOK);
	if (tl != NULL && rv == 0) {
		double d = 0, scale = 0;
		int agree = 0;
		for (int i = 0; i < SHIP_NTOK; i++) {
			int at = 0, ae = 0;
			for (int v = 0; v < V; v++) {
				size_t k = (size_t)i * V + v;
				double x = fabs((double)el[k] - tl[k]);
				d = x > d ? x : d;
				scale = fabs(tl[k]) > scale ? fabs(tl[k]) : scale;
				at = tl[k] > tl[(size_t)i * V + at] ? v : at;
				ae = el[k] > el[(size_t)i * V + ae] ? v : ae;
			}
			agree += at == ae;
		}
		ok(d <= SHIP_TOL_TORCH, "engine = torch over %d tokens (%d "
		    "segments): max |dlogit| %.3g <= %g (max |logit| %.1f), "
		    "argmax agrees at %d/%d", SHIP_NTOK,
		    SHIP_NTOK / m->cfg.segment_size, d, SHIP_TOL_TORCH, scale,
		    agree, SHIP_NTOK);
	} else {
		ok(0, "engine = torch (no logits to compare)");
	}

	/* The double-precision oracle on the first tokens. */
	rl = calloc(V, sizeof(double));
	if (rl != NULL && ref_state_alloc(m, &rs) == 0 && el != NULL) {
		double d = 0;
		for (int i = 0; i < REF_NTOK; i++) {
			if (ref_step(rs, toks[i], NULL, NULL, rl) != 0)
				d = INFINITY;
			for (int v = 0; v < V; v++) {
				double x = fabs(rl[v] - el[(size_t)i * V + v]);
				d = x > d ? x : d;
			}
		}
		ok(d <= SHIP_TOL_REF, "engine = double oracle over %d tokens: "
		    "max |dlogit| %.3g <= %g", REF_NTOK, d, SHIP_TOL_REF);
	} else {
		ok(0, "engine = double oracle (set-up failed)");
	}
	check_recall(e, m);

out:
	ref_state_free(rs);
	free(rl);
	free(tl);
	free(el);
	eng_close(e);
	eng_model_free(m);
	if (tmp[0])
		fx_rmtree(tmp);
	return (tap_done());
}
