/*
 * gen_model.c - write a random Infini-attention model directory.
 *
 * A thin command-line face on tests/fixture.c, for making benchmark models
 * (e.g. ~100M parameters: --layers 12 --hidden 768 --heads 12
 * --intermediate 2048 --vocab 32000) without downloading anything.  The
 * weights are random but deterministic for a given --seed.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "infini_err.h"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: gen_model --out DIR [options]\n"
	    "Writes config.json and random safetensors weights to DIR.\n"
	    "  --out DIR           model directory to create (required)\n"
	    "  --layers N          num_hidden_layers (2)\n"
	    "  --hidden N          hidden_size (64)\n"
	    "  --heads N           num_attention_heads (4)\n"
	    "  --kv-heads N        num_key_value_heads (= heads, or 2 if\n"
	    "                      neither is given)\n"
	    "  --head-dim N        head_dim (hidden / heads)\n"
	    "  --intermediate N    intermediate_size (128)\n"
	    "  --vocab N           vocab_size (300)\n"
	    "  --segment N         segment_size (8)\n"
	    "  --update linear|delta   memory update rule (linear)\n"
	    "  --arch llama|gemma  model_type (llama)\n"
	    "  --dtype f32|f16|bf16    tensor dtype (f32)\n"
	    "  --quant q8_0|q4     projections (and an untied lm_head) in that\n"
	    "                      block dtype (docs/quant.md)\n"
	    "  --no-rope           position_embedding none\n"
	    "  --gate-on memory|local  which branch sigmoid(beta) weighs\n"
	    "  --act silu|gelu|gelu_tanh   MLP activation (silu)\n"
	    "  --tie               tie_word_embeddings (no lm_head.weight)\n"
	    "  --seed S            generator seed (1)\n"
	    "  --shards N          N shard files plus an index (1)\n"
	    "  --bytes-tokenizer   tokenizer \"bytes\" (needs vocab >= 258)\n"
	    "  --no-bytes-tokenizer   no tokenizer key\n"
	    "  --help              this text\n");
}

static int
num(const char *s, const char *flag, long lo, long hi, long *out)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
		fprintf(stderr, "gen_model: %s: bad value \"%s\"\n", flag, s);
		return (-1);
	}
	*out = v;
	return (0);
}

int
main(int argc, char **argv)
{
	enum { O_OUT = 256, O_LAYERS, O_HIDDEN, O_HEADS, O_KV, O_HD, O_INTER,
	    O_VOCAB, O_SEG, O_UPDATE, O_ARCH, O_DTYPE, O_NOROPE, O_GATEON,
	    O_ACT, O_TIE, O_SEED, O_SHARDS, O_BYTES, O_NOBYTES, O_QUANT, O_HELP };
	static const struct option opts[] = {
		{ "out", required_argument, NULL, O_OUT },
		{ "layers", required_argument, NULL, O_LAYERS },
		{ "hidden", required_argument, NULL, O_HIDDEN },
		{ "heads", required_argument, NULL, O_HEADS },
		{ "kv-heads", required_argument, NULL, O_KV },
		{ "head-dim", required_argument, NULL, O_HD },
		{ "intermediate", required_argument, NULL, O_INTER },
		{ "vocab", required_argument, NULL, O_VOCAB },
		{ "segment", required_argument, NULL, O_SEG },
		{ "update", required_argument, NULL, O_UPDATE },
		{ "arch", required_argument, NULL, O_ARCH },
		{ "dtype", required_argument, NULL, O_DTYPE },
		{ "quant", required_argument, NULL, O_QUANT },
		{ "no-rope", no_argument, NULL, O_NOROPE },
		{ "gate-on", required_argument, NULL, O_GATEON },
		{ "act", required_argument, NULL, O_ACT },
		{ "tie", no_argument, NULL, O_TIE },
		{ "seed", required_argument, NULL, O_SEED },
		{ "shards", required_argument, NULL, O_SHARDS },
		{ "bytes-tokenizer", no_argument, NULL, O_BYTES },
		{ "no-bytes-tokenizer", no_argument, NULL, O_NOBYTES },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	struct fx_opts o;
	struct eng_config *c = &o.cfg;
	const char *out = NULL;
	bool heads_set = false, kv_set = false, hd_set = false;
	long v;
	int ch, rv;

	fx_opts_default(&o);
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		const char *a = optarg;
		const char *flag = ch >= O_OUT && ch <= O_HELP ?
		    opts[ch - O_OUT].name : "?";
		switch (ch) {
		case O_OUT:
			out = a;
			break;
		case O_LAYERS: case O_HIDDEN: case O_HEADS: case O_KV:
		case O_HD: case O_INTER: case O_VOCAB: case O_SEG:
		case O_SHARDS:
			if (num(a, flag, 1, 1 << 20, &v) != 0)
				return (2);
			if (ch == O_LAYERS)
				c->n_layers = (int)v;
			else if (ch == O_HIDDEN)
				c->hidden_size = (int)v;
			else if (ch == O_HEADS)
				c->n_heads = (int)v, heads_set = true;
			else if (ch == O_KV)
				c->n_kv_heads = (int)v, kv_set = true;
			else if (ch == O_HD)
				c->head_dim = (int)v, hd_set = true;
			else if (ch == O_INTER)
				c->intermediate_size = (int)v;
			else if (ch == O_VOCAB)
				c->vocab_size = (int)v;
			else if (ch == O_SEG)
				c->segment_size = (int)v;
			else
				o.shards = (int)v;
			break;
		case O_SEED:
			o.seed = strtoull(a, NULL, 0);
			break;
		case O_UPDATE:
			if (strcmp(a, "linear") == 0)
				c->memory_update = ENG_UPDATE_LINEAR;
			else if (strcmp(a, "delta") == 0)
				c->memory_update = ENG_UPDATE_DELTA;
			else
				goto bad;
			break;
		case O_ARCH:
			if (strcmp(a, "llama") == 0)
				c->arch = ENG_ARCH_LLAMA;
			else if (strcmp(a, "gemma") == 0)
				c->arch = ENG_ARCH_GEMMA;
			else
				goto bad;
			break;
		case O_DTYPE:
			if (strcmp(a, "f32") == 0)
				o.dtype = ENG_F32;
			else if (strcmp(a, "f16") == 0)
				o.dtype = ENG_F16;
			else if (strcmp(a, "bf16") == 0)
				o.dtype = ENG_BF16;
			else
				goto bad;
			break;
		case O_QUANT:
			if (strcmp(a, "q8_0") == 0)
				o.quant = ENG_Q8_0;
			else if (strcmp(a, "q4") == 0 || strcmp(a, "q4_0") == 0)
				o.quant = ENG_Q4_0;
			else
				goto bad;
			break;
		case O_GATEON:
			if (strcmp(a, "memory") == 0)
				c->gate_on = ENG_GATE_MEMORY;
			else if (strcmp(a, "local") == 0)
				c->gate_on = ENG_GATE_LOCAL;
			else
				goto bad;
			break;
		case O_ACT:
			if (strcmp(a, "silu") == 0)
				c->act = ENG_ACT_SILU;
			else if (strcmp(a, "gelu") == 0)
				c->act = ENG_ACT_GELU;
			else if (strcmp(a, "gelu_tanh") == 0 ||
			    strcmp(a, "gelu_pytorch_tanh") == 0)
				c->act = ENG_ACT_GELU_TANH;
			else
				goto bad;
			break;
		case O_NOROPE:
			c->rope = false;
			break;
		case O_TIE:
			c->tie_word_embeddings = true;
			break;
		case O_BYTES:
			c->byte_tokenizer = true;
			break;
		case O_NOBYTES:
			c->byte_tokenizer = false;
			break;
		case O_HELP:
			usage(stdout);
			return (0);
		default:
			usage(stderr);
			return (2);
		}
		continue;
bad:
		fprintf(stderr, "gen_model: --%s: unknown value \"%s\"\n",
		    flag, a);
		return (2);
	}
	if (out == NULL || optind != argc) {
		usage(stderr);
		return (2);
	}
	/* Derived defaults follow the flags that were given. */
	if (heads_set && !kv_set)
		c->n_kv_heads = c->n_heads;
	if (!hd_set)
		c->head_dim = c->hidden_size / c->n_heads;
	if (c->n_heads % c->n_kv_heads != 0 || c->head_dim < 1 ||
	    (c->rope && c->head_dim % 2 != 0) ||
	    (c->byte_tokenizer && c->vocab_size < ENG_TOK_BYTES_VOCAB_MIN)) {
		fprintf(stderr, "gen_model: inconsistent sizes (heads %d, "
		    "kv-heads %d, head-dim %d, vocab %d)\n", c->n_heads,
		    c->n_kv_heads, c->head_dim, c->vocab_size);
		return (2);
	}
	if ((rv = fx_write_model(out, &o)) != 0) {
		fprintf(stderr, "gen_model: %s: %s\n", out,
		    infini_strerror(rv));
		return (1);
	}
	return (0);
}
