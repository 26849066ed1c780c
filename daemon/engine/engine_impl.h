/*
 * engine_impl.h - the engine's internal state, shared by engine.c (set-up,
 * weights, slots) and forward.c (recording a forward pass).
 */
#ifndef ENG_ENGINE_IMPL_H
#define ENG_ENGINE_IMPL_H

#include "engine/engine.h"
#include "engine/kernels.h"
#include "gpu/gpu.h"

/* A weight matrix [rows, cols] on the device, split by rows into parts that
 * each fit one binding (maxStorageBufferRange). */
struct eng_wpart {
	struct gpu_buf buf;
	int row0, rows;
};

struct eng_wmat {
	enum eng_dtype dt;
	int rows, cols;
	int nparts;
	struct eng_wpart *parts;
};

struct eng_dlayer {
	struct eng_wmat wqkv;      /* [(nh + 2 nkv) hd, H]: q, k, v stacked */
	struct eng_wmat wo;        /* [H, nh hd] */
	struct eng_wmat wgu;       /* [2 I, H]: gate, up stacked */
	struct eng_wmat wdown;     /* [H, I] */
	struct gpu_buf attn_norm;  /* f32 [H] */
	struct gpu_buf mlp_norm;   /* f32 [H] */
	struct gpu_buf beta;       /* f32 [nh] */
	/* Stream state for all slots, slot-major within the layer. */
	struct gpu_buf kc;         /* [slot][nkv][N][hd] k as local attention sees it */
	struct gpu_buf vc;         /* [slot][nkv][N][hd] */
	struct gpu_buf km;         /* [slot][nkv][N][hd] unrotated k (rope && !memory_rope) */
	struct gpu_buf M;          /* [slot][nkv][hd][hd] */
	struct gpu_buf z;          /* [slot][nkv][hd] */
};

struct eng_prof {
	const char *label;
	double ns;
	uint64_t calls;
};

struct eng {
	const struct eng_model *m;
	struct eng_config c;
	struct gpu_dev *dev;
	struct gpu_cmd *cmd;
	struct gpu_pipe *pipe[ENG_K_COUNT];
	enum eng_kernel_id k_embed;

	struct eng_wmat embed;     /* [V, H] */
	struct eng_wmat lm_head;   /* [V, H]; shares embed's parts when tied */
	bool tied;
	struct gpu_buf norm;       /* f32 [H] */
	struct eng_dlayer *L;

	int max_streams, max_batch;
	bool *used;
	int64_t *pos;
	bool sep_kmem;             /* memory reads unrotated k */
	uint32_t kv_stride, m_stride, z_stride; /* floats per slot in a layer */
	uint64_t binding_limit;    /* bytes one storage binding may span */
	uint64_t wpart_limit;      /* bytes of one weight part (<= binding_limit) */

	/* Activations, [max_batch] rows each. */
	struct gpu_buf ids;        /* int32 [R] */
	struct gpu_buf rows;       /* uvec2 [R]: slot, position in segment */
	struct gpu_buf vecs;       /* [R, H] */
	struct gpu_buf x;          /* [R, H] residual stream */
	struct gpu_buf xn;         /* [R, max(H, nh hd)] normed input */
	struct gpu_buf qkv;        /* [R, (nh + 2 nkv) hd] */
	struct gpu_buf qr;         /* [R, nh hd] rotated queries */
	struct gpu_buf ad;         /* [R, nh hd] local branch, then gated mix */
	struct gpu_buf am;         /* [R, nh hd] memory branch */
	struct gpu_buf gu;         /* [R, 2 I] */
	struct gpu_buf hm;         /* [R, I] */
	struct gpu_buf hid;        /* [R, H] final-norm hidden */
	struct gpu_buf lrows;      /* [LR, H] hidden rows that need logits */
	struct gpu_buf logits;     /* [LR, V] */
	struct gpu_buf slots;      /* uint [max_streams] slots whose segment filled */
	int logit_rows;            /* LR */

	struct eng_prof prof[64];
	int nprof;
};

/*
 * eng_rec_matmul records Y[:, 0..w->rows) (+)= X W^T for the first m rows of
 * X (row stride ldx floats; Y row stride ldy), one dispatch per part of w,
 * with the kernel variant chosen for the device at eng_open.
 */
void eng_rec_matmul(struct eng *e, const struct gpu_buf *X, uint32_t ldx,
    const struct eng_wmat *w, const struct gpu_buf *Y, uint32_t ldy,
    uint32_t m, bool acc);

int eng_weights_upload(struct eng *e, char *err, size_t errlen);
void eng_weights_free(struct eng *e);
void eng_wmat_free(struct eng *e, struct eng_wmat *w);

#endif
