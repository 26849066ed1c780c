/*
 * weights.c - puts a model's tensors on the device.
 *
 * Projections keep their storage dtype (f32, f16, bf16) and are widened to
 * fp32 inside the kernels.  Matrices that are always applied to the same
 * input are stacked (q|k|v, gate|up) so one dispatch computes them.  A matrix
 * larger than one binding (maxStorageBufferRange, 128 MiB on lavapipe) is
 * split by rows into parts dispatched separately.  Norm weights and the gate
 * betas are small and converted to fp32.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_impl.h"
#include "infini_err.h"

static size_t
dtype_size(enum eng_dtype t)
{
	return (t == ENG_F32 ? 4 : 2);
}

/* wmat_upload stacks the rows of src[0..nsrc) into one device matrix. */
static int
wmat_upload(struct eng *e, const struct eng_tensor *const *src, int nsrc,
    struct eng_wmat *w, char *err, size_t errlen)
{
	int rows = 0, cols = (int)src[0]->shape[1];
	size_t esz = dtype_size(src[0]->dtype), rowb;
	int per_part, rv;
	VkFormat wfmt;
	uint64_t tlimit;

	for (int i = 0; i < nsrc; i++) {
		if (src[i]->dtype != src[0]->dtype) {
			snprintf(err, errlen, "%s: dtype differs from %s, which "
			    "it is stacked with", src[i]->name, src[0]->name);
			return (INFINI_EUNSUPPORTED);
		}
		rows += (int)src[i]->shape[0];
	}
	rowb = (size_t)cols * esz;
	per_part = (int)(e->wpart_limit / rowb);
	/* Texel matmuls also need a part within one texel view. */
	wfmt = eng_mm_wformat(e->mm, src[0]->dtype);
	tlimit = gpu_dev_info(e->dev)->max_texel_elems *
	    eng_mm_texel_bytes(src[0]->dtype);
	if (wfmt != VK_FORMAT_UNDEFINED && (uint64_t)per_part * rowb > tlimit)
		per_part = (int)(tlimit / rowb);
	if (per_part < 1) {
		snprintf(err, errlen, "%s: a row of %zu bytes exceeds one "
		    "binding", src[0]->name, rowb);
		return (INFINI_EUNSUPPORTED);
	}
	w->dt = src[0]->dtype;
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
		pt->rows = rows - pt->row0 < per_part ? rows - pt->row0 : per_part;
		if ((rv = gpu_buf_alloc(e->dev, GPU_POOL_WEIGHTS,
		    (VkDeviceSize)pt->rows * rowb, &pt->buf)) != 0) {
			snprintf(err, errlen, "out of device memory for %s",
			    src[0]->name);
			return (rv);
		}
		if (wfmt != VK_FORMAT_UNDEFINED && (rv = gpu_view_create(e->dev,
		    &pt->buf, 0, (VkDeviceSize)pt->rows * rowb, wfmt,
		    &pt->view)) != 0) {
			snprintf(err, errlen, "cannot make a texel view of %s",
			    src[0]->name);
			return (rv);
		}
		for (int done = 0; done < pt->rows;) {
			int avail = (int)src[si]->shape[0] - srow;
			int take = pt->rows - done < avail ? pt->rows - done : avail;
			const char *from = (const char *)src[si]->data +
			    (size_t)srow * rowb;
			if ((rv = gpu_buf_write(e->dev, &pt->buf,
			    (VkDeviceSize)done * rowb, from,
			    (size_t)take * rowb)) != 0)
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
	for (int p = 0; p < w->nparts && w->parts != NULL; p++) {
		gpu_view_free(e->dev, w->parts[p].view);
		gpu_buf_free(e->dev, &w->parts[p].buf);
	}
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
