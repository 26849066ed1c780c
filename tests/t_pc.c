/*
 * t_pc.c - the push-constant structs are written once (shaders/<op>_pc.h)
 * and read by both GLSL and C; this checks that the two compilers agree.
 * glslangValidator's reflection of each kernel gives the std430 offset of
 * every member the shader uses and the block size; they must equal offsetof
 * and sizeof on the C side.  It also checks that each kernel declares as many
 * descriptor bindings as its row in the kernel table says.
 */
#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "engine/kernels.h"
#include "tap.h"

#include "attention_pc.h"
#include "embed_pc.h"
#include "gate_pc.h"
#include "glu_pc.h"
#include "matmul_pc.h"
#include "memupd_pc.h"
#include "retrieve_pc.h"
#include "rmsnorm_pc.h"
#include "rope_pc.h"
#include "sample_pc.h"

struct field {
	const char *block;
	const char *name;
	size_t off;
};

#define F(s, f) { #s, #f, offsetof(struct s, f) }

static const struct field fields[] = {
	F(embed_pc, n_rows), F(embed_pc, hidden), F(embed_pc, row_lo),
	F(embed_pc, row_hi), F(embed_pc, scale), F(embed_pc, take_vecs),
	F(rmsnorm_pc, n_rows), F(rmsnorm_pc, n), F(rmsnorm_pc, eps),
	F(rmsnorm_pc, add_one),
	F(matmul_pc, m), F(matmul_pc, n), F(matmul_pc, k), F(matmul_pc, ldx),
	F(matmul_pc, ldy), F(matmul_pc, y_col), F(matmul_pc, acc),
	F(rope_pc, n_rows), F(rope_pc, nh), F(rope_pc, nkv), F(rope_pc, hd),
	F(rope_pc, seg), F(rope_pc, slot_stride), F(rope_pc, rope),
	F(rope_pc, store_kmem), F(rope_pc, theta),
	F(attention_pc, n_rows), F(attention_pc, nh), F(attention_pc, nkv),
	F(attention_pc, hd), F(attention_pc, seg), F(attention_pc, slot_stride),
	F(attention_pc, scale),
	F(retrieve_pc, n_rows), F(retrieve_pc, nh), F(retrieve_pc, nkv),
	F(retrieve_pc, hd), F(retrieve_pc, ldq), F(retrieve_pc, m_stride),
	F(retrieve_pc, z_stride), F(retrieve_pc, eps), F(retrieve_pc, on_local),
	F(gate_pc, n_rows), F(gate_pc, nh), F(gate_pc, hd), F(gate_pc, on_local),
	F(glu_pc, n_rows), F(glu_pc, inter), F(glu_pc, act),
	F(memupd_pc, n_slots), F(memupd_pc, nkv), F(memupd_pc, hd),
	F(memupd_pc, seg), F(memupd_pc, kv_stride), F(memupd_pc, m_stride),
	F(memupd_pc, z_stride), F(memupd_pc, delta), F(memupd_pc, eps),
	F(sample_pc, n_rows), F(sample_pc, vocab),
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

static const struct field *
find(const char *block, const char *name)
{
	for (size_t i = 0; i < NFIELDS; i++)
		if (strcmp(fields[i].block, block) == 0 &&
		    strcmp(fields[i].name, name) == 0)
			return (&fields[i]);
	return (NULL);
}

/* check_kernel reflects one .comp with glslang (-D define) and compares;
 * returns fields seen. */
static int
check_kernel(const char *glslang, const char *define, const char *comp,
    int nbind, int *bad)
{
	char cmd[1024], line[512];
	FILE *p;
	int seen = 0, binds = 0;

	snprintf(cmd, sizeof(cmd), "%s -V -q --target-env vulkan1.2 -D%s "
	    "-I%s -o /dev/null %s/%s 2>&1", glslang, define, SHADER_DIR,
	    SHADER_DIR, comp);
	if ((p = popen(cmd, "r")) == NULL)
		return (-1);
	while (fgets(line, sizeof(line), p) != NULL) {
		char blk[64], mem[64];
		long off;
		int b;
		if (sscanf(line, "%63[a-z_].%63[a-z_]: offset %ld", blk, mem,
		    &off) == 3 && strstr(blk, "_pc") != NULL) {
			const struct field *f = find(blk, mem);
			seen++;
			if (f == NULL || (long)f->off != off) {
				(*bad)++;
				tap_diag("%s: %s.%s at %ld in GLSL, %ld in C", comp,
				    blk, mem, off, f ? (long)f->off : -1L);
			}
		} else if (strstr(line, "binding ") != NULL &&
		    sscanf(strstr(line, "binding "), "binding %d", &b) == 1 &&
		    b >= 0 && strstr(line, "offset -1") != NULL) {
			binds++;
		}
	}
	pclose(p);
	if (nbind >= 0 && binds != nbind) {
		(*bad)++;
		tap_diag("%s: %d bindings in GLSL, %d in the kernel table", comp,
		    binds, nbind);
	}
	return (seen);
}

static int
table_binds(const char *base)
{
	for (int k = 0; k < ENG_K_COUNT; k++) {
		const char *n = eng_kernels[k].name;
		if (strncmp(n, base, strlen(base)) == 0 &&
		    (n[strlen(base)] == '\0' || n[strlen(base)] == '_'))
			return ((int)eng_kernels[k].nbind);
	}
	return (-1);
}

int
main(void)
{
	DIR *d = opendir(SHADER_DIR);
	struct dirent *de;
	int nk = 0, nseen = 0, bad = 0, ncoop = 0, ncoop_skip = 0;

	tap_plan(4);
	while (d != NULL && (de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);
		char base[256];
		if (n < 6 || strcmp(de->d_name + n - 5, ".comp") != 0)
			continue;
		snprintf(base, sizeof(base), "%.*s", (int)(n - 5), de->d_name);
		/* The cooperative-matrix kernels need the glslang the build
		 * found for them; the matmul is reflected with f16 weights. */
		bool coop = strstr(base, "_coop") != NULL;
		if (coop && GLSLANG_COOP[0] == '\0') {
			ncoop_skip++;
			continue;
		}
		int s = check_kernel(coop ? GLSLANG_COOP : GLSLANG,
		    coop ? "W_F16" : "W_F32", de->d_name, table_binds(base),
		    &bad);
		if (coop && s > 0)
			ncoop++;
		if (s < 0)
			bad++;
		else
			nseen += s;
		nk++;
	}
	if (d != NULL)
		closedir(d);
	ok(nk >= 10, "reflected %d kernels", nk);
	ok(nseen >= (int)NFIELDS - 8, "%d push-constant members reflected",
	    nseen);
	ok(bad == 0, "GLSL and C agree on every offset and binding count");
	if (ncoop_skip > 0)
		tap_skip(1, "the build has no glslang that knows "
		    "GL_KHR_cooperative_matrix");
	else
		ok(ncoop >= 3, "%d cooperative-matrix kernels reflected "
		    "(matmul, attention, retrieve)", ncoop);
	return (tap_done());
}
