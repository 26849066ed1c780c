/*
 * matmul.c - recording projections: Y (+)= X W^T with W in its storage
 * dtype, fp32 accumulation, split over the parts of a large matrix.
 *
 * Three kernel families exist, chosen per device at eng_open
 * (eng_mm_choose): the portable one (matmul.comp: storage buffers,
 * shared-memory tiles), the texel one for CPU drivers (matmul_texel.comp: X
 * and W read through texel buffer views, register tiles; see NOTES.md
 * section 4 for why llvmpipe wants it), and the cooperative-matrix one for
 * GPUs with VK_KHR_cooperative_matrix (matmul_coop.comp, f16, bf16 and
 * block weights; its tile shape is the device's, docs/kernels.md).  The texel
 * family has a 16x8-per-invocation tile for prefill and two matrix-vector
 * shapes for decode-sized m, picked per call.
 * This file does not own pipelines (engine.c builds every kernel row) or
 * weight views (weights.c makes them in the format eng_mm_wformat names).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/engine_impl.h"
#include "infini_err.h"

#include "matmul_pc.h"

/* One kernel shape: its rows per dtype, and how outputs map to the grid:
 * an invocation owns rm X rows by rn W rows, a workgroup lx by ly of them. */
struct mm_shape {
	enum eng_kernel_id k[ENG_DTYPE_COUNT];   /* by enum eng_dtype */
	uint32_t rm, rn, lx, ly;   /* must match the build defines */
};

static const struct mm_shape mm_shapes[ENG_MM_COUNT] = {
	[ENG_MM_PORTABLE] = { { ENG_K_MATMUL_F32, ENG_K_MATMUL_F16,
	    ENG_K_MATMUL_BF16, ENG_K_MATMUL_Q8_0, ENG_K_MATMUL_Q4_0 },
	    4, 4, 16, 16 },
	[ENG_MM_TEXEL_TILE] = { { ENG_K_MATMUL_TEXEL_F32,
	    ENG_K_MATMUL_TEXEL_F16, ENG_K_MATMUL_TEXEL_BF16,
	    ENG_K_MATMUL_TEXEL_Q8_0, ENG_K_MATMUL_TEXEL_Q4_0 }, 16, 8, 8, 2 },
	[ENG_MM_TEXEL_M4] = { { ENG_K_MATMUL_TEXEL_M4_F32,
	    ENG_K_MATMUL_TEXEL_M4_F16, ENG_K_MATMUL_TEXEL_M4_BF16,
	    ENG_K_MATMUL_TEXEL_M4_Q8_0, ENG_K_MATMUL_TEXEL_M4_Q4_0 },
	    4, 4, 8, 1 },
	[ENG_MM_TEXEL_M1] = { { ENG_K_MATMUL_TEXEL_M1_F32,
	    ENG_K_MATMUL_TEXEL_M1_F16, ENG_K_MATMUL_TEXEL_M1_BF16,
	    ENG_K_MATMUL_TEXEL_M1_Q8_0, ENG_K_MATMUL_TEXEL_M1_Q4_0 },
	    1, 4, 8, 1 },
	/* Tiles come from the pipeline's specialization (coop_grid). */
	[ENG_MM_COOP] = { { ENG_K_MATMUL_F32, ENG_K_MATMUL_COOP_F16,
	    ENG_K_MATMUL_COOP_BF16, ENG_K_MATMUL_COOP_Q8_0,
	    ENG_K_MATMUL_COOP_Q4_0 },
	    0, 0, 0, 0 },
};

static const char *const mm_names[ENG_MM_COUNT] = {
	[ENG_MM_PORTABLE] = "portable",
	[ENG_MM_TEXEL] = "texel",
	[ENG_MM_TEXEL_TILE] = "texel-tile",
	[ENG_MM_TEXEL_M4] = "texel-m4",
	[ENG_MM_TEXEL_M1] = "texel-m1",
	[ENG_MM_COOP] = "coop",
};

bool
eng_mm_usable(const struct gpu_info *gi, enum eng_mm_var v)
{
	if (v != ENG_MM_COOP)
		return (v >= 0 && v < ENG_MM_COUNT);
	return (gi->coopmat && eng_kernel_built(ENG_K_MATMUL_COOP_F16) &&
	    eng_kernel_built(ENG_K_MATMUL_COOP_BF16) &&
	    4 * gi->subgroup_size <= gi->max_invocations);
}

enum eng_mm_var
eng_mm_choose(const struct gpu_info *gi)
{
	const char *s = getenv("INFINI_KERNELS");

	if (s != NULL && *s != '\0') {
		for (int v = 0; v < ENG_MM_COUNT; v++)
			if (strcasecmp(s, mm_names[v]) == 0)
				return (eng_mm_usable(gi, (enum eng_mm_var)v) ?
				    (enum eng_mm_var)v : ENG_MM_COUNT);
		return (ENG_MM_COUNT);
	}
	if (gi->type == VK_PHYSICAL_DEVICE_TYPE_CPU)
		return (ENG_MM_TEXEL);
	return (eng_mm_usable(gi, ENG_MM_COOP) ? ENG_MM_COOP : ENG_MM_PORTABLE);
}

const char *
eng_mm_var_name(enum eng_mm_var v)
{
	return (v >= 0 && v < ENG_MM_COUNT ? mm_names[v] : "?");
}

VkFormat
eng_mm_wformat(enum eng_mm_var v, enum eng_dtype t)
{
	if (!eng_mm_is_texel(v))
		return (VK_FORMAT_UNDEFINED);
	switch (t) {
	case ENG_F16: return (VK_FORMAT_R16G16B16A16_SFLOAT);
	case ENG_BF16: return (VK_FORMAT_R32G32_UINT);
	case ENG_Q8_0:
	case ENG_Q4_0: return (VK_FORMAT_R32G32B32A32_UINT);
	default: return (VK_FORMAT_R32G32B32A32_SFLOAT);
	}
}

uint32_t
eng_mm_texel_bytes(enum eng_dtype t)
{
	switch (t) {
	case ENG_F32:
	case ENG_Q8_0:
	case ENG_Q4_0: return (16);
	default: return (8);
	}
}

enum eng_mm_var
eng_mm_texel_shape(uint32_t m, uint32_t m1_max, uint32_t m4_max)
{
	return (m <= m1_max ? ENG_MM_TEXEL_M1 : m <= m4_max ? ENG_MM_TEXEL_M4 :
	    ENG_MM_TEXEL_TILE);
}

/* part_family: the family that runs one part: a texel family without the
 * views it reads, or coop on a dtype or device it has no kernel for, falls
 * back to the portable kernel. */
static enum eng_mm_var
part_family(struct gpu_pipe *const *pipe, enum eng_mm_var v,
    const struct eng_mm_in *X, const struct eng_wmat *w,
    const struct eng_wpart *pt)
{
	if (eng_mm_is_texel(v) && (X->view == VK_NULL_HANDLE ||
	    pt->view == VK_NULL_HANDLE || (ENG_DTYPE_QUANT(w->dt) &&
	    pt->sview == VK_NULL_HANDLE)))
		return (ENG_MM_PORTABLE);
	if (v == ENG_MM_COOP && (w->dt == ENG_F32 ||
	    pipe[mm_shapes[v].k[w->dt]] == NULL))
		return (ENG_MM_PORTABLE);
	return (v);
}

void
eng_mm_record(struct gpu_cmd *c, struct gpu_pipe *const *pipe,
    enum eng_mm_var v, const struct eng_mm_in *X, const struct eng_wmat *w,
    const struct gpu_buf *Y, uint32_t ldy, uint32_t m, bool acc)
{
	if (v == ENG_MM_TEXEL)
		v = eng_mm_texel_shape(m, ENG_MM_M1_MAX, ENG_MM_M4_MAX);
	for (int i = 0; i < w->nparts; i++) {
		const struct eng_wpart *pt = &w->parts[i];
		enum eng_mm_var pv = part_family(pipe, v, X, w, pt);
		const struct gpu_pipe *p = pipe[mm_shapes[pv].k[w->dt]];
		struct mm_shape s = mm_shapes[pv];
		struct matmul_pc pc = { m, (uint32_t)pt->rows,
		    (uint32_t)w->cols, X->ldx, ldy, (uint32_t)pt->row0, acc };
		struct gpu_arg a[4] = { gpu_arg_of(X->buf, 0, 0),
		    gpu_arg_of(&pt->buf, 0, 0), gpu_arg_of(Y, 0, 0),
		    gpu_arg_of(&pt->sbuf, 0, 0) };
		if (eng_mm_is_texel(pv)) {
			a[0].view = X->view;
			a[1].view = pt->view;
			a[3].view = pt->sview;
		}
		if (pv == ENG_MM_COOP) {
			/* A workgroup owns 4 x 4 tiles of the device's shape
			 * (spec constants 1 and 2: tile rows and columns). */
			s.rm = gpu_pipe_spec(p, 1);
			s.rn = gpu_pipe_spec(p, 2);
			s.lx = s.ly = 4;
		}
		gpu_cmd_dispatch(c, p, a, 1u << 2, &pc,
		    ((uint32_t)pt->rows + s.lx * s.rn - 1) / (s.lx * s.rn),
		    (m + s.ly * s.rm - 1) / (s.ly * s.rm), 1, "matmul");
	}
}

void
eng_rec_matmul(struct eng *e, const struct gpu_buf *X, uint32_t ldx,
    const struct eng_wmat *w, const struct gpu_buf *Y, uint32_t ldy,
    uint32_t m, bool acc)
{
	struct eng_mm_in in = { X, VK_NULL_HANDLE, ldx };

	enum eng_mm_var v = e->mm;

	for (int i = 0; i < e->nmmx; i++)
		if (e->mmx[i].buf == X)
			in.view = e->mmx[i].view;
	/* The texel shape by m, from this device's autotune (tune.c). */
	if (v == ENG_MM_TEXEL)
		v = eng_mm_texel_shape(m, e->tune.m1_max, e->tune.m4_max);
	eng_mm_record(e->cmd, e->pipe, v, &in, w, Y, ldy, m, acc);
}

int
eng_mm_pipes_create(struct gpu_dev *d, struct gpu_pipe **pipe, char *err,
    size_t errlen)
{
	for (int k = 0; k < ENG_K_COUNT; k++) {
		uint32_t spec[GPU_MAX_SPEC];
		uint32_t nspec = eng_kernel_spec(gpu_dev_info(d),
		    (enum eng_kernel_id)k, 0, spec);
		int rv;
		if (strncmp(eng_kernels[k].name, "matmul", 6) != 0)
			continue;
		rv = gpu_pipe_create(d, &eng_kernels[k], spec, nspec, &pipe[k]);
		if (rv == INFINI_EUNSUPPORTED && eng_kernels[k].need != 0)
			continue;
		if (rv != 0) {
			snprintf(err, errlen, "pipeline %s: error %d",
			    eng_kernels[k].name, rv);
			eng_mm_pipes_free(d, pipe);
			return (rv);
		}
	}
	return (0);
}

void
eng_mm_pipes_free(struct gpu_dev *d, struct gpu_pipe **pipe)
{
	for (int k = 0; k < ENG_K_COUNT; k++) {
		gpu_pipe_free(d, pipe[k]);
		pipe[k] = NULL;
	}
}

int
eng_mm_open(struct eng *e)
{
	const struct gpu_buf *in[] = { &e->xn, &e->ad, &e->hm, &e->lrows };
	uint64_t max = gpu_dev_info(e->dev)->max_texel_elems * 16;
	int rv;

	if (!eng_mm_is_texel(e->mm))
		return (0);
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		struct eng_mm_in *x = &e->mmx[e->nmmx];
		VkDeviceSize range = in[i]->size / 16 * 16;
		/* Too big for one view: that input takes the portable kernel. */
		if (range == 0 || range > max)
			continue;
		if ((rv = gpu_view_create(e->dev, in[i], 0, range,
		    VK_FORMAT_R32G32B32A32_SFLOAT, &x->view)) != 0)
			return (rv);
		x->buf = in[i];
		e->nmmx++;
	}
	return (0);
}

void
eng_mm_close(struct eng *e)
{
	for (int i = 0; i < e->nmmx; i++)
		gpu_view_free(e->dev, e->mmx[i].view);
	e->nmmx = 0;
}
