/*
 * matmul.c - recording projections: Y (+)= X W^T with W in its storage
 * dtype, fp32 accumulation, split over the parts of a large matrix.
 */
#include "engine/engine_impl.h"

#include "matmul_pc.h"

static enum eng_kernel_id
matmul_kernel(enum eng_dtype t)
{
	return (t == ENG_F16 ? ENG_K_MATMUL_F16 :
	    t == ENG_BF16 ? ENG_K_MATMUL_BF16 : ENG_K_MATMUL_F32);
}

void
eng_rec_matmul(struct eng *e, const struct gpu_buf *X, uint32_t ldx,
    const struct eng_wmat *w, const struct gpu_buf *Y, uint32_t ldy,
    uint32_t m, bool acc)
{
	const struct gpu_pipe *p = e->pipe[matmul_kernel(w->dt)];
	for (int i = 0; i < w->nparts; i++) {
		const struct eng_wpart *pt = &w->parts[i];
		struct matmul_pc pc = { m, (uint32_t)pt->rows, (uint32_t)w->cols,
		    ldx, ldy, (uint32_t)pt->row0, acc };
		struct gpu_arg a[3] = { gpu_arg_of(X, 0, 0),
		    gpu_arg_of(&pt->buf, 0, 0), gpu_arg_of(Y, 0, 0) };
		gpu_cmd_dispatch(e->cmd, p, a, 1u << 2, &pc,
		    ((uint32_t)pt->rows + 15) / 16, (m + 15) / 16, 1, "matmul");
	}
}
