/*
 * cmd.c - recording and submitting command buffers.
 *
 * A forward pass is one command buffer of many dispatches.  The recorder
 * keeps the buffer ranges written and read since the last barrier and emits
 * a barrier only when the next dispatch would read or overwrite one of them
 * (read-after-write, write-after-write, write-after-read); dispatches on
 * disjoint data run without one.  Optional timestamps after each dispatch
 * give a per-op profile.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpu/gpu_impl.h"
#include "infini_err.h"

int
gpu_cmd_alloc(struct gpu_dev *d, struct gpu_cmd **out)
{
	struct gpu_cmd *c;
	VkCommandBufferAllocateInfo ai = {
		.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
		.commandPool = d->cpool,
		.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
		.commandBufferCount = 1,
	};
	VkFenceCreateInfo fci = { .sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO };

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return (INFINI_ENOMEM);
	c->d = d;
	if (vkAllocateCommandBuffers(d->dev, &ai, &c->cb) != VK_SUCCESS ||
	    vkCreateFence(d->dev, &fci, NULL, &c->fence) != VK_SUCCESS) {
		gpu_cmd_free(c);
		return (INFINI_EDEVICE);
	}
	*out = c;
	return (0);
}

void
gpu_cmd_free(struct gpu_cmd *c)
{
	if (c == NULL)
		return;
	if (c->qpool != VK_NULL_HANDLE)
		vkDestroyQueryPool(c->d->dev, c->qpool, NULL);
	if (c->fence != VK_NULL_HANDLE)
		vkDestroyFence(c->d->dev, c->fence, NULL);
	if (c->cb != VK_NULL_HANDLE)
		vkFreeCommandBuffers(c->d->dev, c->d->cpool, 1, &c->cb);
	free(c);
}

void
gpu_cmd_profile(struct gpu_cmd *c, bool on)
{
	c->profile = on && c->d->info.timestamps;
}

int
gpu_cmd_begin(struct gpu_cmd *c)
{
	VkCommandBufferBeginInfo bi = {
		.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
		.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT,
	};

	if (vkResetCommandBuffer(c->cb, 0) != VK_SUCCESS ||
	    vkBeginCommandBuffer(c->cb, &bi) != VK_SUCCESS)
		return (INFINI_EDEVICE);
	c->recording = true;
	c->nwr = c->nrd = 0;
	c->nstamp = 0;
	c->nresult = 0;
	if (c->profile) {
		if (c->qpool == VK_NULL_HANDLE) {
			VkQueryPoolCreateInfo qi = {
				.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
				.queryType = VK_QUERY_TYPE_TIMESTAMP,
				.queryCount = GPU_MAX_STAMPS + 1,
			};
			if (vkCreateQueryPool(c->d->dev, &qi, NULL,
			    &c->qpool) != VK_SUCCESS) {
				c->profile = false;
				return (0);
			}
		}
		vkCmdResetQueryPool(c->cb, c->qpool, 0, GPU_MAX_STAMPS + 1);
		vkCmdWriteTimestamp(c->cb, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT,
		    c->qpool, 0);
	}
	return (0);
}

void
gpu_cmd_barrier(struct gpu_cmd *c)
{
	VkMemoryBarrier mb = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
		.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT |
		    VK_ACCESS_TRANSFER_WRITE_BIT,
		.dstAccessMask = VK_ACCESS_SHADER_READ_BIT |
		    VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
		    VK_ACCESS_TRANSFER_WRITE_BIT,
	};
	const VkPipelineStageFlags st = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT |
	    VK_PIPELINE_STAGE_TRANSFER_BIT;

	vkCmdPipelineBarrier(c->cb, st, st, 0, 1, &mb, 0, NULL, 0, NULL);
	c->nwr = c->nrd = 0;
}

static bool
overlaps(const struct gpu_range *set, uint32_t n, const struct gpu_arg *a)
{
	for (uint32_t i = 0; i < n; i++)
		if (set[i].buf == a->buf && a->off < set[i].end &&
		    set[i].off < a->off + a->range)
			return (true);
	return (false);
}

static void
note(struct gpu_range *set, uint32_t *n, const struct gpu_arg *a)
{
	set[(*n)++] = (struct gpu_range){ a->buf, a->off, a->off + a->range };
}

/* track barriers if args conflict with pending accesses, then records them. */
static void
track(struct gpu_cmd *c, const struct gpu_arg *args, uint32_t n,
    uint32_t writes)
{
	bool need = false;

	for (uint32_t i = 0; i < n && !need; i++) {
		if (overlaps(c->wr, c->nwr, &args[i]))
			need = true;
		else if ((writes >> i) & 1)
			need = overlaps(c->rd, c->nrd, &args[i]);
	}
	if (need || c->nwr + n > GPU_MAX_PENDING || c->nrd + n > GPU_MAX_PENDING)
		gpu_cmd_barrier(c);
	for (uint32_t i = 0; i < n; i++) {
		if ((writes >> i) & 1)
			note(c->wr, &c->nwr, &args[i]);
		else
			note(c->rd, &c->nrd, &args[i]);
	}
}

static void
stamp(struct gpu_cmd *c, const char *label)
{
	if (!c->profile || c->nstamp >= GPU_MAX_STAMPS)
		return;
	c->labels[c->nstamp++] = label;
	vkCmdWriteTimestamp(c->cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
	    c->qpool, c->nstamp);
}

void
gpu_cmd_dispatch(struct gpu_cmd *c, const struct gpu_pipe *p,
    const struct gpu_arg *args, uint32_t writes, const void *push,
    uint32_t gx, uint32_t gy, uint32_t gz, const char *label)
{
	VkWriteDescriptorSet w[GPU_MAX_BINDS];
	VkDescriptorBufferInfo bi[GPU_MAX_BINDS];
	const struct gpu_kernel *k = p->k;

	if (gx == 0 || gy == 0 || gz == 0)
		return;
	track(c, args, k->nbind, writes);
	for (uint32_t i = 0; i < k->nbind; i++) {
		w[i] = (VkWriteDescriptorSet){
			.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
			.dstBinding = i,
			.descriptorCount = 1,
		};
		if (k->bind[i] == GPU_TEXEL) {
			w[i].descriptorType = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER;
			w[i].pTexelBufferView = &args[i].view;
		} else {
			bi[i] = (VkDescriptorBufferInfo){ args[i].buf,
			    args[i].off, args[i].range };
			w[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
			w[i].pBufferInfo = &bi[i];
		}
	}
	vkCmdBindPipeline(c->cb, VK_PIPELINE_BIND_POINT_COMPUTE, p->pipe);
	c->d->push_desc(c->cb, VK_PIPELINE_BIND_POINT_COMPUTE, p->layout, 0,
	    k->nbind, w);
	if (k->push_size)
		vkCmdPushConstants(c->cb, p->layout, VK_SHADER_STAGE_COMPUTE_BIT,
		    0, k->push_size, push);
	vkCmdDispatch(c->cb, gx, gy, gz);
	stamp(c, label ? label : k->name);
}

void
gpu_cmd_copy(struct gpu_cmd *c, const struct gpu_arg *src,
    const struct gpu_arg *dst, VkDeviceSize n)
{
	struct gpu_arg a[2] = { *src, *dst };
	VkBufferCopy r = { src->off, dst->off, n };

	a[0].range = a[1].range = n;
	track(c, a, 2, 2);
	vkCmdCopyBuffer(c->cb, src->buf, dst->buf, 1, &r);
}

/* vk_status maps a failed VkResult to an INFINI_E* code and remembers a
 * lost device. */
static int
vk_status(struct gpu_dev *d, VkResult r)
{
	switch (r) {
	case VK_SUCCESS:
		return (0);
	case VK_ERROR_OUT_OF_HOST_MEMORY:
	case VK_ERROR_OUT_OF_DEVICE_MEMORY:
		return (INFINI_ENOMEM);
	case VK_ERROR_DEVICE_LOST:
		d->lost = true;
		return (INFINI_EDEVICE);
	default:
		return (INFINI_EDEVICE);
	}
}

int
gpu_cmd_submit(struct gpu_cmd *c)
{
	VkSubmitInfo si = {
		.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
		.commandBufferCount = 1,
		.pCommandBuffers = &c->cb,
	};
	struct gpu_dev *d = c->d;
	enum gpu_fault f = d->fault;
	VkResult r;

	c->recording = false;
	d->fault = GPU_FAULT_NONE;
	if (d->lost)
		return (INFINI_EDEVICE);
	if ((r = vkEndCommandBuffer(c->cb)) != VK_SUCCESS ||
	    (r = vkResetFences(d->dev, 1, &c->fence)) != VK_SUCCESS)
		return (vk_status(d, r));
	if (f == GPU_FAULT_OOM)
		return (vk_status(d, VK_ERROR_OUT_OF_DEVICE_MEMORY));
	if ((r = vkQueueSubmit(d->queue, 1, &si, c->fence)) != VK_SUCCESS)
		return (vk_status(d, r));
	if (f == GPU_FAULT_HANG)
		nanosleep(&(struct timespec){ GPU_HANG_MS / 1000,
		    (GPU_HANG_MS % 1000) * 1000000L }, NULL);
	r = vkWaitForFences(d->dev, 1, &c->fence, VK_TRUE, UINT64_MAX);
	if (f == GPU_FAULT_LOST)
		r = VK_ERROR_DEVICE_LOST;
	if (r != VK_SUCCESS)
		return (vk_status(d, r));
	if (c->profile && c->nstamp > 0 &&
	    vkGetQueryPoolResults(d->dev, c->qpool, 0, c->nstamp + 1,
	    sizeof(c->stamps), c->stamps, sizeof(uint64_t),
	    VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT) == VK_SUCCESS)
		c->nresult = c->nstamp;
	return (0);
}

bool
gpu_lost(const struct gpu_dev *d)
{
	return (d->lost);
}

void
gpu_fault_arm(struct gpu_dev *d, enum gpu_fault f)
{
	d->fault = f;
}

void
gpu_cmd_timings(const struct gpu_cmd *c,
    void (*fn)(void *arg, const char *label, double ns), void *arg)
{
	for (uint32_t i = 0; i < c->nresult; i++)
		fn(arg, c->labels[i], (double)(c->stamps[i + 1] - c->stamps[i]) *
		    c->d->info.ts_period_ns);
}
