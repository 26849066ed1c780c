/*
 * weights.c - puts a model's tensors on the device.
 *
 * Projections keep their storage dtype (f32, f16, bf16, or the Q8_0 / Q4_0
 * blocks, split into quants and f32 scales: engine/quant.h) and are widened
 * to fp32 inside the kernels.  Matrices that are always applied to the same
 * input are stacked (q|k|v, gate|up) so one dispatch computes them.  A matrix
 * larger than one binding (maxStorageBufferRange, 128 MiB on lavapipe) is
 * split by rows into parts dispatched separately.  Norm weights and the gate
 * betas are small and converted to fp32.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_impl.h"
#include "engine/quant.h"
#include "infini_err.h"

/* Device bytes of one row's values (quants only for block dtypes). */
static size_t
dev_row_bytes(enum eng_dtype t, int cols)
{
	return (ENG_DTYPE_QUANT(t) ? eng_q_dev_row_bytes(t, cols) :
	    eng_q_row_bytes(t, cols));
}

int
eng_wpart_alloc(struct gpu_dev *d, enum eng_mm_var v, enum eng_dtype dt,
    int rows, int cols, struct eng_wpart *pt)
{
	VkDeviceSize qb = (VkDeviceSize)rows * dev_row_bytes(dt, cols);
	VkDeviceSize sb = (VkDeviceSize)rows * (cols / ENG_QBLOCK) *
	    sizeof(float);
	VkFormat wfmt = eng_mm_wformat(v, dt);
	int rv;

	pt->rows = rows;
	if ((rv = gpu_buf_alloc(d, GPU_POOL_WEIGHTS, qb, &pt->buf)) != 0)
		return (rv);
	if (wfmt != VK_FORMAT_UNDEFINED && (rv = gpu_view_create(d, &pt->buf,
	    0, qb, wfmt, &pt->view)) != 0)
		return (rv);
	if (!ENG_DTYPE_QUANT(dt))
		return (0);
	if ((rv = gpu_buf_alloc(d, GPU_POOL_WEIGHTS, sb, &pt->sbuf)) != 0)
		return (rv);
	if (wfmt != VK_FORMAT_UNDEFINED && (rv = gpu_view_create(d, &pt->sbuf,
	    0, sb, VK_FORMAT_R32_SFLOAT, &pt->sview)) != 0)
		return (rv);
	return (0);
}

int
eng_wpart_write(struct gpu_dev *d, struct eng_wpart *pt, enum eng_dtype dt,
    int cols, int row, const void *src, int n)
{
	size_t qrow = dev_row_bytes(dt, cols), nsc = (size_t)cols / ENG_QBLOCK;
	uint8_t *q;
	float *sc;
	int rv;

	if (!ENG_DTYPE_QUANT(dt))
		return (gpu_buf_write(d, &pt->buf, (VkDeviceSize)row * qrow,
		    src, (size_t)n * qrow));
	if ((q = malloc((size_t)n * qrow)) == NULL ||
	    (sc = malloc((size_t)n * nsc * sizeof(float))) == NULL) {
		free(q);
		return (INFINI_ENOMEM);
	}
	eng_q_unpack(dt, src, n, cols, q, sc);
	rv = gpu_buf_write(d, &pt->buf, (VkDeviceSize)row * qrow, q,
	    (size_t)n * qrow);
	if (rv == 0)
		rv = gpu_buf_write(d, &pt->sbuf, (VkDeviceSize)row * nsc *
		    sizeof(float), sc, (size_t)n * nsc * sizeof(float));
	free(q);
	free(sc);
	return (rv);
}

void
eng_wpart_free(struct gpu_dev *d, struct eng_wpart *pt)
{
	gpu_view_free(d, pt->view);
	gpu_view_free(d, pt->sview);
	gpu_buf_free(d, &pt->buf);
	gpu_buf_free(d, &pt->sbuf);
}

/* wmat_upload stacks the rows of src[0..nsrc) into one device matrix. */
static int
wmat_upload(struct eng *e, const struct eng_tensor *const *src, int nsrc,
    struct eng_wmat *w, char *err, size_t errlen)
{
	int rows = 0, cols = (int)src[0]->shape[1];
	enum eng_dtype dt = src[0]->dtype;
	size_t rowb = dev_row_bytes(dt, cols), srowb = eng_q_row_bytes(dt, cols);
	int per_part, rv;
	uint64_t tlimit;

	for (int i = 0; i < nsrc; i++) {
		if (src[i]->dtype != dt) {
			snprintf(err, errlen, "%s: dtype differs from %s, which "
			    "it is stacked with", src[i]->name, src[0]->name);
			return (INFINI_EUNSUPPORTED);
		}
		rows += (int)src[i]->shape[0];
	}
	per_part = (int)(e->wpart_limit / rowb);
	/* Texel matmuls also need a part within one texel view. */
	tlimit = gpu_dev_info(e->dev)->max_texel_elems *
	    eng_mm_texel_bytes(dt);
	if (eng_mm_wformat(e->mm, dt) != VK_FORMAT_UNDEFINED &&
	    (uint64_t)per_part * rowb > tlimit)
		per_part = (int)(tlimit / rowb);
	if (per_part < 1) {
		snprintf(err, errlen, "%s: a row of %zu bytes exceeds one "
		    "binding", src[0]->name, rowb);
		return (INFINI_EUNSUPPORTED);
	}
	w->dt = dt;
	w->rows = rows;
	w->cols = cols;
	w->nparts = (rows + per_part - 1) / per_part;
	if ((w->parts = calloc((size_t)w->nparts, sizeof(*w->parts))) == NULL)
		return (INFINI_ENOMEM);

	/* Walk parts and source tensors together, copying whole row runs. */
	int si = 0, srow = 0;
	for (int p = 0; p < w->nparts; p++) {
		struct eng_wpart *pt = &w->parts[p];
		pt->row0 = p * per_part;
		if ((rv = eng_wpart_alloc(e->dev, e->mm, dt, rows - pt->row0 <
		    per_part ? rows - pt->row0 : per_part, cols, pt)) != 0) {
			snprintf(err, errlen, "out of device memory for %s",
			    src[0]->name);
			return (rv);
		}
		for (int done = 0; done < pt->rows;) {
			int avail = (int)src[si]->shape[0] - srow;
			int take = pt->rows - done < avail ? pt->rows - done : avail;
			const char *from = (const char *)src[si]->data +
			    (size_t)srow * srowb;
			if ((rv = eng_wpart_write(e->dev, pt, dt, cols, done,
			    from, take)) != 0)
				return (rv);
			done += take;
			srow += take;
			if (srow == (int)src[si]->shape[0]) {
				si++;
				srow = 0;
			}
		}
	}
	return (0);
}

void
eng_wmat_free(struct eng *e, struct eng_wmat *w)
{
	for (int p = 0; p < w->nparts && w->parts != NULL; p++)
		eng_wpart_free(e->dev, &w->parts[p]);
	free(w->parts);
	memset(w, 0, sizeof(*w));
}

/* vec_upload converts a small tensor to fp32 on the device. */
static int
vec_upload(struct eng *e, const struct eng_tensor *t, struct gpu_buf *b)
{
	size_t n = eng_tensor_numel(t);
	float *tmp;
	int rv;

	if ((tmp = malloc(n * sizeof(float))) == NULL)
		return (INFINI_ENOMEM);
	for (size_t i = 0; i < n; i++)
		tmp[i] = eng_tensor_get(t, i);
	rv = gpu_buf_alloc(e->dev, GPU_POOL_WEIGHTS, n * sizeof(float), b);
	if (rv == 0)
		rv = gpu_buf_write(e->dev, b, 0, tmp, n * sizeof(float));
	free(tmp);
	return (rv);
}

int
eng_weights_upload(struct eng *e, char *err, size_t errlen)
{
	const struct eng_model *m = e->m;
	int rv;

	if ((rv = wmat_upload(e, &m->embed, 1, &e->embed, err, errlen)) != 0)
		return (rv);
	e->tied = m->lm_head == m->embed;
	if (e->tied)
		e->lm_head = e->embed;
	else if ((rv = wmat_upload(e, &m->lm_head, 1, &e->lm_head, err,
	    errlen)) != 0)
		return (rv);
	if ((rv = vec_upload(e, m->norm, &e->norm)) != 0)
		return (rv);
	for (int l = 0; l < e->c.n_layers; l++) {
		const struct eng_layer *s = &m->layers[l];
		struct eng_dlayer *d = &e->L[l];
		const struct eng_tensor *qkv[3] = { s->wq, s->wk, s->wv };
		const struct eng_tensor *gu[2] = { s->w_gate, s->w_up };

		if ((rv = wmat_upload(e, qkv, 3, &d->wqkv, err, errlen)) != 0 ||
		    (rv = wmat_upload(e, &s->wo, 1, &d->wo, err, errlen)) != 0 ||
		    (rv = wmat_upload(e, gu, 2, &d->wgu, err, errlen)) != 0 ||
		    (rv = wmat_upload(e, &s->w_down, 1, &d->wdown, err,
		    errlen)) != 0)
			return (rv);
		if ((rv = vec_upload(e, s->attn_norm, &d->attn_norm)) != 0 ||
		    (rv = vec_upload(e, s->mlp_norm, &d->mlp_norm)) != 0 ||
		    (rv = vec_upload(e, s->gate, &d->beta)) != 0) {
			snprintf(err, errlen, "out of device memory for layer %d",
			    l);
			return (rv);
		}
	}
	return (0);
}

void
eng_weights_free(struct eng *e)
{
	if (!e->tied)
		eng_wmat_free(e, &e->lm_head);
	eng_wmat_free(e, &e->embed);
	gpu_buf_free(e->dev, &e->norm);
	for (int l = 0; l < e->c.n_layers && e->L != NULL; l++) {
		struct eng_dlayer *d = &e->L[l];
		eng_wmat_free(e, &d->wqkv);
		eng_wmat_free(e, &d->wo);
		eng_wmat_free(e, &d->wgu);
		eng_wmat_free(e, &d->wdown);
		gpu_buf_free(e->dev, &d->attn_norm);
		gpu_buf_free(e->dev, &d->mlp_norm);
		gpu_buf_free(e->dev, &d->beta);
	}
}
