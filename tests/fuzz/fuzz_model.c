/*
 * fuzz_model.c - libFuzzer target for the model loader (engine/model.h).
 *
 * The input is config.json text, FUZZ_MODEL_SEP, then a safetensors file
 * (fuzz.h); without the separator it is all safetensors, under a fixed
 * config.  Both are written into a private temporary directory and loaded
 * with eng_model_load; the whole input also goes through eng_config_parse.
 * Properties: no crash or sanitizer report, errors are documented codes
 * with a NUL-terminated message, and a loaded model's tensors lie inside
 * their mappings (every element is read).  Nothing touches the GPU.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/model.h"
#include "infini_err.h"

#include "fuzz.h"

#define CHECK(x) do { if (!(x)) abort(); } while (0)

static char dir[64];
static char cfg_path[96], st_path[96];
static volatile float sink;

static void
put(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");

	CHECK(f != NULL);
	CHECK(n == 0 || fwrite(p, 1, n, f) == n);
	CHECK(fclose(f) == 0);
}

static void
cleanup(void)
{
	unlink(cfg_path);
	unlink(st_path);
	rmdir(dir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *t = getenv("TMPDIR");
	(void)argc;
	(void)argv;

	snprintf(dir, sizeof(dir), "%s/fuzz_model.XXXXXX",
	    t && strlen(t) < 40 ? t : "/tmp");
	CHECK(mkdtemp(dir) != NULL);
	snprintf(cfg_path, sizeof(cfg_path), "%s/config.json", dir);
	snprintf(st_path, sizeof(st_path), "%s/model.safetensors", dir);
	atexit(cleanup);
	return (0);
}

static void
load(void)
{
	struct eng_model *m;
	char err[512];
	int rv;

	err[0] = '\0';
	rv = eng_model_load(dir, &m, err, sizeof(err));
	CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	if (rv != 0) {
		CHECK(rv == INFINI_ENOENT || rv == INFINI_ECORRUPT ||
		    rv == INFINI_EINVAL || rv == INFINI_EUNSUPPORTED ||
		    rv == INFINI_ENOMEM || rv == INFINI_EIO);
		return;
	}
	/* Touch the first and last element of every tensor the model uses. */
	const struct eng_tensor *ts[] = { m->embed, m->norm, m->lm_head };
	for (size_t i = 0; i < 3; i++) {
		size_t n = eng_tensor_numel(ts[i]);
		if (n)
			sink += eng_tensor_get(ts[i], 0) +
			    eng_tensor_get(ts[i], n - 1);
	}
	for (int l = 0; l < m->cfg.n_layers; l++) {
		const struct eng_layer *ly = &m->layers[l];
		const struct eng_tensor *lt[] = { ly->attn_norm, ly->wq, ly->wk,
		    ly->wv, ly->wo, ly->gate, ly->mlp_norm, ly->w_gate, ly->w_up,
		    ly->w_down };
		for (size_t i = 0; i < sizeof(lt) / sizeof(lt[0]); i++) {
			size_t n;
			if (lt[i] == NULL)
				continue;
			n = eng_tensor_numel(lt[i]);
			CHECK(lt[i]->nbytes >= n * (lt[i]->dtype == ENG_F32 ? 4 : 2));
			if (n)
				sink += eng_tensor_get(lt[i], n - 1);
		}
	}
	eng_model_free(m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char sep[] = FUZZ_MODEL_SEP;
	struct eng_config cfg;
	char err[256];
	const uint8_t *st = data;
	size_t stlen = size;
	const uint8_t *s;

	/* eng_config_parse on the raw input. */
	err[0] = '\0';
	(void)eng_config_parse((const char *)data, size, &cfg, err, sizeof(err));
	CHECK(memchr(err, '\0', sizeof(err)) != NULL);

	s = memmem(data, size, sep, sizeof(sep) - 1);
	if (s != NULL) {
		put(cfg_path, data, (size_t)(s - data));
		st = s + sizeof(sep) - 1;
		stlen = size - (size_t)(st - data);
	} else {
		put(cfg_path, FUZZ_MODEL_CONFIG, strlen(FUZZ_MODEL_CONFIG));
	}
	put(st_path, st, stlen);
	load();
	return (0);
}
