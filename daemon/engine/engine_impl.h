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
	struct gpu_buf buf;        /* rows; quants only for block dtypes */
	VkBufferView view;         /* texel view of buf (texel matmuls), or null */
	struct gpu_buf sbuf;       /* block dtypes: f32 [rows, cols / 32] scales */
	VkBufferView sview;        /* R32F view of sbuf (texel matmuls), or null */
	int row0, rows;
};

/* Matmul kernel families (matmul.c).  TEXEL picks its tile or one of its
 * matrix-vector shapes by m; the _TILE/_M4/_M1 values force one (tests,
 * benchmarks).  COOP runs f16, bf16, q8_0 and q4_0 weights on cooperative
 * matrices and f32 weights on the portable kernel. */
enum eng_mm_var {
	ENG_MM_PORTABLE,           /* matmul.comp: SSBO + shared memory */
	ENG_MM_TEXEL,              /* matmul_texel.comp: llvmpipe-fast */
	ENG_MM_TEXEL_TILE,
	ENG_MM_TEXEL_M4,
	ENG_MM_TEXEL_M1,
	ENG_MM_COOP,               /* matmul_coop.comp: VK_KHR_cooperative_matrix */
	ENG_MM_COUNT
};

/* The texel family's default shape choice by m, measured on llvmpipe (2
 * cores): the 1-row shape up to 2 rows, the 4-row one up to 7, the tile
 * from 8 on.  tune.c measures a device's own. */
#define ENG_MM_M1_MAX 2
#define ENG_MM_M4_MAX 7

/* The autotuned texel shape choice (tune.c). */
struct eng_tune {
	uint32_t m1_max, m4_max;   /* see eng_mm_texel_shape */
	bool measured;             /* measured now, not read from the cache */
	bool cached;               /* read from the cache */
};

/* eng_mm_is_texel: does family v read X and W through texel views? */
#define eng_mm_is_texel(v) ((v) >= ENG_MM_TEXEL && (v) <= ENG_MM_TEXEL_M1)

/* A matmul input: rows of ldx floats in buf, with an RGBA32F texel view of
 * buf for the texel family (null for the portable one). */
struct eng_mm_in {
	const struct gpu_buf *buf;
	VkBufferView view;
	uint32_t ldx;
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
	/* RGBA32F views of the state for the texel attention-side kernels
	 * (null unless e->texel_ops). */
	VkBufferView kcv, vcv, kmv, Mv, zv;
};

struct eng_prof {
	const char *label;
	double ns;
	uint64_t calls;
};

struct eng_chunk;
struct sample_row;

/* Host scratch of eng_run (forward.c), made once at eng_open for the
 * engine's limits; only the per-job arrays grow, when a call brings more
 * jobs than any before. */
struct eng_run_buf {
	int *ids;                  /* [R] token ids of the round (-1: vector) */
	uint32_t *rows;            /* [R][2] slot, position in segment */
	float *vecs;               /* [R, H] vector inputs */
	uint32_t *slots;           /* [max_streams] slots whose segment filled */
	float *row;                /* [H] one hidden row read back */
	struct sample_row *sp;     /* [SR] sampler rows */
	int32_t *stok;             /* [SR] sampled ids */
	int cap_jobs;              /* jobs the arrays below hold */
	int *done;                 /* [jobs] inputs processed */
	bool *zdone;               /* [jobs] a job without inputs was sampled */
	struct eng_chunk *ch;      /* [jobs] the round's chunks */
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
	uint64_t *sample_step;     /* per slot: tokens sampled so far (RNG counter) */
	bool *has_last;            /* per slot: last_hid holds its last input */
	enum eng_fault fault;      /* eng_fault_arm: armed for fault_slot */
	int fault_slot, fault_skip;
	struct gpu_buf last_hid;   /* [max_streams, H] final hidden of each
	                            * stream's last input, so a stream can be
	                            * sampled again without new input */
	bool sep_kmem;             /* memory reads unrotated k */
	uint32_t kv_stride, m_stride, z_stride; /* floats per slot in a layer */
	uint64_t binding_limit;    /* bytes one storage binding may span */
	uint64_t wpart_limit;      /* bytes of one weight part (<= binding_limit) */
	enum eng_mm_var mm;        /* matmul family for this device */
	struct eng_mm_in mmx[4];   /* matmul inputs with texel views (xn, ad, ...) */
	int nmmx;
	bool texel_ops;            /* attention/retrieve/memupd texel kernels */
	bool coop_ops;             /* attention/retrieve coop kernels */
	bool rms_sg;               /* rmsnorm reduces with subgroupAdd */
	struct eng_tune tune;      /* texel shape choice (tune.c) */
	VkBufferView qrv, qkvv;    /* views of qr, qkv when texel_ops */

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
	/* Sampling, [SR] rows per submission (one per sampling job). */
	struct gpu_buf samp_par;   /* struct sample_row [SR] */
	struct gpu_buf samp_e;     /* vec2 [SR, V] exp(logit / T) as float-float */
	struct gpu_buf samp_tok;   /* int32 [SR] sampled ids */
	int samp_rows;             /* SR */

	struct eng_run_buf run;    /* eng_run's host scratch */

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

/*
 * eng_mm_choose returns the matmul family for a device: INFINI_KERNELS
 * (portable, texel, texel-tile, texel-m4, texel-m1, coop) if set and
 * usable there, else TEXEL on CPU devices, COOP on others with
 * cooperative matrices (gi->coopmat) when the binary has those kernels,
 * and PORTABLE elsewhere.  A forced coop on a device without them is
 * refused: returns ENG_MM_COUNT.
 */
enum eng_mm_var eng_mm_choose(const struct gpu_info *gi);
/* eng_mm_texel_shape: the texel kernel for m rows: TEXEL_M1 up to m1_max
 * rows, TEXEL_M4 up to m4_max, TEXEL_TILE beyond. */
enum eng_mm_var eng_mm_texel_shape(uint32_t m, uint32_t m1_max,
    uint32_t m4_max);
/* eng_mm_usable: can family v run on the device gi describes? */
bool eng_mm_usable(const struct gpu_info *gi, enum eng_mm_var v);
/* eng_mm_var_name: the INFINI_MATMUL spelling of v. */
const char *eng_mm_var_name(enum eng_mm_var v);
/* eng_mm_wformat: the texel format family v reads weights of dtype t in, or
 * VK_FORMAT_UNDEFINED when v binds weights as storage buffers. */
VkFormat eng_mm_wformat(enum eng_mm_var v, enum eng_dtype t);
/* eng_mm_texel_bytes: bytes per weight texel for dtype t (16 or 8). */
uint32_t eng_mm_texel_bytes(enum eng_dtype t);
/*
 * eng_mm_record records Y[:, part.row0 + j] (+)= X W^T for the first m rows
 * of X, one dispatch per part of w, with family v (pipe is indexed by
 * enum eng_kernel_id and must hold that family's kernels).  A texel family
 * needs X->view and the parts' views; without X->view it falls back to the
 * portable kernel.
 */
void eng_mm_record(struct gpu_cmd *c, struct gpu_pipe *const *pipe,
    enum eng_mm_var v, const struct eng_mm_in *X, const struct eng_wmat *w,
    const struct gpu_buf *Y, uint32_t ldy, uint32_t m, bool acc);
/* eng_mm_pipes_create builds every matmul kernel this binary and device d
 * have into pipe[] (indexed by enum eng_kernel_id; the rest stay NULL),
 * specialised as the engine does, for tests and benchmarks that record
 * matmuls without an engine.  Returns 0 or the first error (naming the
 * kernel in err); eng_mm_pipes_free frees what it made. */
int eng_mm_pipes_create(struct gpu_dev *d, struct gpu_pipe **pipe, char *err,
    size_t errlen);
void eng_mm_pipes_free(struct gpu_dev *d, struct gpu_pipe **pipe);
/* eng_mm_open makes the texel views of the activation buffers that are
 * matmul inputs (a no-op for the portable family); eng_mm_close frees them.
 * Returns 0 or INFINI_ENOMEM. */
int eng_mm_open(struct eng *e);
void eng_mm_close(struct eng *e);

/*
 * eng_ops_open decides whether the attention-side kernels (attention,
 * retrieve with the gate, linear memupd) take their texel variants: on
 * devices where the matmul family is a texel one, with head_dim % 16 == 0,
 * unless INFINI_OPS=portable; then makes the views those kernels read
 * (falling back to portable if any would exceed maxTexelBufferElements).
 * eng_ops_close frees them.  Returns 0 or INFINI_ENOMEM.
 */
int eng_ops_open(struct eng *e);
void eng_ops_close(struct eng *e);

/*
 * eng_wpart_alloc allocates part pt for rows x cols values of dtype dt on
 * device d (and the scale buffer for block dtypes), with texel views when
 * family v reads weights through them.  Returns 0, INFINI_ENOMEM or a
 * device error; on failure pt holds what was made (free with
 * eng_wpart_free).
 */
int eng_wpart_alloc(struct gpu_dev *d, enum eng_mm_var v, enum eng_dtype dt,
    int rows, int cols, struct eng_wpart *pt);
/* eng_wpart_write copies n stored rows of src (dtype dt, cols wide, in the
 * on-disk layout) to rows [row, row + n) of pt, converting block dtypes to
 * the device layout.  Returns 0, INFINI_ENOMEM or a device error. */
int eng_wpart_write(struct gpu_dev *d, struct eng_wpart *pt, enum eng_dtype dt,
    int cols, int row, const void *src, int n);
void eng_wpart_free(struct gpu_dev *d, struct eng_wpart *pt);

/*
 * eng_tune_open sets e->tune: the defaults, or with INFINI_TUNE_DIR set and
 * the texel family chosen, the thresholds cached there for this device
 * (UUID, driver version) and this model's projection shape, measuring and
 * caching them when there are none or the file is not valid.  A cache that
 * cannot be written is not an error.  Returns 0 or a device error.
 */
int eng_tune_open(struct eng *e);

/* eng_run_buf_init allocates e->run for the engine's limits (max_batch,
 * max_streams, samp_rows must be set); eng_run_buf_fini frees it (safe on
 * a partly made one).  Returns 0 or INFINI_ENOMEM. */
int eng_run_buf_init(struct eng *e);
void eng_run_buf_fini(struct eng *e);

int eng_weights_upload(struct eng *e, char *err, size_t errlen);
void eng_weights_free(struct eng *e);
void eng_wmat_free(struct eng *e, struct eng_wmat *w);

#endif
