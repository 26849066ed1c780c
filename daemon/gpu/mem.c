/*
 * mem.c - device memory: a few large blocks per purpose pool, carved into
 * sub-allocations by a first-fit free list, and host <-> device copies.
 *
 * Where the device-local memory type is also host-visible (lavapipe, unified
 * memory, resizable BAR) blocks stay mapped and copies are memcpy; elsewhere a
 * staging buffer and a transfer command carry the data.
 */
#include <stdlib.h>
#include <string.h>

#include "gpu/gpu_impl.h"
#include "infini_err.h"

#define BLOCK_MIN ((VkDeviceSize)64 << 20)
#define STAGING_SIZE ((VkDeviceSize)16 << 20)

static int
find_type(const struct gpu_dev *d, VkMemoryPropertyFlags want,
    VkMemoryPropertyFlags prefer)
{
	int best = -1, best_score = -1;
	for (uint32_t i = 0; i < d->memprops.memoryTypeCount; i++) {
		VkMemoryPropertyFlags f = d->memprops.memoryTypes[i].propertyFlags;
		int score;
		if ((f & want) != want)
			continue;
		score = __builtin_popcount(f & prefer);
		if (score > best_score) {
			best = (int)i;
			best_score = score;
		}
	}
	return (best);
}

int
gpu_mem_init(struct gpu_dev *d)
{
	const VkMemoryPropertyFlags dl = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
	const VkMemoryPropertyFlags hv = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
	    VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
	int dev_t, stg_t;

	/* Device-local first; host-visible on top of it is a bonus. */
	dev_t = find_type(d, dl, hv);
	if (dev_t < 0)
		dev_t = find_type(d, 0, dl);
	stg_t = find_type(d, hv, VK_MEMORY_PROPERTY_HOST_CACHED_BIT);
	if (dev_t < 0 || stg_t < 0)
		return (INFINI_ENODEV);
	d->memtype[GPU_POOL_WEIGHTS] = (uint32_t)dev_t;
	d->memtype[GPU_POOL_STATE] = (uint32_t)dev_t;
	d->memtype[GPU_POOL_ACT] = (uint32_t)dev_t;
	d->memtype[GPU_POOL_STAGING] = (uint32_t)stg_t;
	d->info.unified = (d->memprops.memoryTypes[dev_t].propertyFlags & hv) == hv;
	return (0);
}

static void
block_free(struct gpu_dev *d, struct gpu_block *b)
{
	if (b->buf != VK_NULL_HANDLE)
		vkDestroyBuffer(d->dev, b->buf, NULL);
	if (b->mem != VK_NULL_HANDLE)
		vkFreeMemory(d->dev, b->mem, NULL);
	free(b->free);
	free(b);
}

void
gpu_mem_fini(struct gpu_dev *d)
{
	for (int p = 0; p < GPU_POOL_COUNT; p++) {
		struct gpu_block *b, *next;
		for (b = d->blocks[p]; b != NULL; b = next) {
			next = b->next;
			block_free(d, b);
		}
		d->blocks[p] = NULL;
	}
}

static int
block_alloc(struct gpu_dev *d, enum gpu_pool p, VkDeviceSize size,
    struct gpu_block **out)
{
	struct gpu_block *b;
	VkMemoryRequirements req;
	VkBufferCreateInfo bci = {
		.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
		.size = size,
		.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT |
		    VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT |
		    VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
		    VK_BUFFER_USAGE_TRANSFER_DST_BIT,
		.sharingMode = VK_SHARING_MODE_EXCLUSIVE,
	};
	VkMemoryAllocateInfo mai = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
	};
	VkMemoryPropertyFlags f = d->memprops.memoryTypes[d->memtype[p]].propertyFlags;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		return (INFINI_ENOMEM);
	b->pool = p;
	b->size = size;
	if (vkCreateBuffer(d->dev, &bci, NULL, &b->buf) != VK_SUCCESS)
		goto nomem;
	vkGetBufferMemoryRequirements(d->dev, b->buf, &req);
	if (!(req.memoryTypeBits & (1u << d->memtype[p])))
		goto nomem;
	mai.allocationSize = req.size;
	mai.memoryTypeIndex = d->memtype[p];
	if (vkAllocateMemory(d->dev, &mai, NULL, &b->mem) != VK_SUCCESS ||
	    vkBindBufferMemory(d->dev, b->buf, b->mem, 0) != VK_SUCCESS)
		goto nomem;
	if ((f & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) &&
	    vkMapMemory(d->dev, b->mem, 0, VK_WHOLE_SIZE, 0, &b->map) != VK_SUCCESS)
		goto nomem;
	if ((b->free = malloc(4 * sizeof(*b->free))) == NULL)
		goto nomem;
	b->capfree = 4;
	b->nfree = 1;
	b->free[0] = (struct gpu_span){ 0, size };
	*out = b;
	return (0);
nomem:
	block_free(d, b);
	return (INFINI_ENOMEM);
}

static bool
block_take(struct gpu_block *b, VkDeviceSize size, VkDeviceSize align,
    VkDeviceSize *off)
{
	for (uint32_t i = 0; i < b->nfree; i++) {
		struct gpu_span *s = &b->free[i];
		VkDeviceSize start = (s->off + align - 1) / align * align;
		VkDeviceSize pad = start - s->off;
		if (s->size < pad + size)
			continue;
		*off = start;
		if (pad == 0) {
			s->off += size;
			s->size -= size;
			if (s->size == 0) {
				memmove(s, s + 1, (b->nfree - i - 1) * sizeof(*s));
				b->nfree--;
			}
		} else {
			/* Keep the padding as its own free span. */
			VkDeviceSize rest = s->size - pad - size;
			s->size = pad;
			if (rest > 0) {
				if (b->nfree == b->capfree)
					return (false);
				memmove(s + 2, s + 1,
				    (b->nfree - i - 1) * sizeof(*s));
				s[1] = (struct gpu_span){ start + size, rest };
				b->nfree++;
			}
		}
		return (true);
	}
	return (false);
}

static void
block_give(struct gpu_block *b, VkDeviceSize off, VkDeviceSize size)
{
	uint32_t i = 0;
	while (i < b->nfree && b->free[i].off < off)
		i++;
	memmove(&b->free[i + 1], &b->free[i], (b->nfree - i) * sizeof(b->free[0]));
	b->free[i] = (struct gpu_span){ off, size };
	b->nfree++;
	/* Merge with the neighbours. */
	if (i + 1 < b->nfree && off + size == b->free[i + 1].off) {
		b->free[i].size += b->free[i + 1].size;
		memmove(&b->free[i + 1], &b->free[i + 2],
		    (b->nfree - i - 2) * sizeof(b->free[0]));
		b->nfree--;
	}
	if (i > 0 && b->free[i - 1].off + b->free[i - 1].size == b->free[i].off) {
		b->free[i - 1].size += b->free[i].size;
		memmove(&b->free[i], &b->free[i + 1],
		    (b->nfree - i - 1) * sizeof(b->free[0]));
		b->nfree--;
	}
}

static int
ensure_cap(struct gpu_block *b)
{
	/* A take can split one span in two and a give can add one. */
	if (b->nfree + 2 <= b->capfree)
		return (0);
	struct gpu_span *n = realloc(b->free, 2 * b->capfree * sizeof(*n));
	if (n == NULL)
		return (INFINI_ENOMEM);
	b->free = n;
	b->capfree *= 2;
	return (0);
}

int
gpu_buf_alloc(struct gpu_dev *d, enum gpu_pool p, VkDeviceSize size,
    struct gpu_buf *out)
{
	VkDeviceSize align = d->info.align, off;
	struct gpu_block *b;
	int rv;

	if (size == 0)
		size = align;
	size = (size + align - 1) / align * align;
	for (b = d->blocks[p]; b != NULL; b = b->next) {
		if ((rv = ensure_cap(b)) != 0)
			return (rv);
		if (block_take(b, size, align, &off))
			goto found;
	}
	if ((rv = block_alloc(d, p, size > BLOCK_MIN ? size : BLOCK_MIN, &b)) != 0)
		return (rv);
	b->next = d->blocks[p];
	d->blocks[p] = b;
	if (!block_take(b, size, align, &off))
		return (INFINI_ENOMEM);
found:
	out->buf = b->buf;
	out->off = off;
	out->size = size;
	out->map = b->map ? (char *)b->map + off : NULL;
	out->blk = b;
	d->used[p] += size;
	return (0);
}

void
gpu_buf_free(struct gpu_dev *d, struct gpu_buf *buf)
{
	struct gpu_block *b = buf->blk, **pp;

	if (b == NULL)
		return;
	if (ensure_cap(b) == 0)
		block_give(b, buf->off, buf->size);
	d->used[b->pool] -= buf->size;
	/* Give a block back to the driver once it is entirely free. */
	if (b->nfree == 1 && b->free[0].size == b->size) {
		for (pp = &d->blocks[b->pool]; *pp != NULL; pp = &(*pp)->next)
			if (*pp == b) {
				*pp = b->next;
				break;
			}
		block_free(d, b);
	}
	memset(buf, 0, sizeof(*buf));
}

uint64_t
gpu_pool_bytes(const struct gpu_dev *d, enum gpu_pool p)
{
	return (d->used[p]);
}

struct gpu_arg
gpu_arg_of(const struct gpu_buf *b, VkDeviceSize off, VkDeviceSize range)
{
	struct gpu_arg a = {
		.buf = b->buf,
		.off = b->off + off,
		.range = range ? range : b->size - off,
	};
	return (a);
}

static int
staging_ready(struct gpu_dev *d)
{
	if (d->staging.buf != VK_NULL_HANDLE)
		return (0);
	return (gpu_buf_alloc(d, GPU_POOL_STAGING, STAGING_SIZE, &d->staging));
}

/* copy moves n bytes between a mapped staging range and a device range. */
static int
staged_copy(struct gpu_dev *d, const struct gpu_buf *b, VkDeviceSize off,
    void *host, size_t n, bool to_device)
{
	int rv;

	if ((rv = staging_ready(d)) != 0)
		return (rv);
	while (n > 0) {
		size_t k = n < STAGING_SIZE ? n : STAGING_SIZE;
		struct gpu_arg s = gpu_arg_of(&d->staging, 0, k);
		struct gpu_arg t = gpu_arg_of(b, off, k);

		if (to_device)
			memcpy(d->staging.map, host, k);
		if ((rv = gpu_cmd_begin(d->xfer)) != 0)
			return (rv);
		if (to_device)
			gpu_cmd_copy(d->xfer, &s, &t, k);
		else
			gpu_cmd_copy(d->xfer, &t, &s, k);
		if ((rv = gpu_cmd_submit(d->xfer)) != 0)
			return (rv);
		if (!to_device)
			memcpy(host, d->staging.map, k);
		host = (char *)host + k;
		off += k;
		n -= k;
	}
	return (0);
}

int
gpu_buf_write(struct gpu_dev *d, const struct gpu_buf *b, VkDeviceSize off,
    const void *src, size_t n)
{
	if (d->lost)
		return (INFINI_EDEVICE);
	if (off + n > b->size)
		return (INFINI_ERANGE);
	if (b->map != NULL) {
		memcpy((char *)b->map + off, src, n);
		return (0);
	}
	return (staged_copy(d, b, off, (void *)src, n, true));
}

int
gpu_buf_read(struct gpu_dev *d, const struct gpu_buf *b, VkDeviceSize off,
    void *dst, size_t n)
{
	if (d->lost)
		return (INFINI_EDEVICE);
	if (off + n > b->size)
		return (INFINI_ERANGE);
	if (b->map != NULL) {
		memcpy(dst, (char *)b->map + off, n);
		return (0);
	}
	return (staged_copy(d, b, off, dst, n, false));
}

int
gpu_buf_zero(struct gpu_dev *d, const struct gpu_buf *b, VkDeviceSize off,
    size_t n)
{
	int rv;

	if (d->lost)
		return (INFINI_EDEVICE);
	if (off + n > b->size)
		return (INFINI_ERANGE);
	if (b->map != NULL) {
		memset((char *)b->map + off, 0, n);
		return (0);
	}
	if ((rv = gpu_cmd_begin(d->xfer)) != 0)
		return (rv);
	vkCmdFillBuffer(d->xfer->cb, b->buf, b->off + off,
	    (n + 3) & ~(size_t)3, 0);
	return (gpu_cmd_submit(d->xfer));
}

int
gpu_view_create(struct gpu_dev *d, const struct gpu_buf *b, VkDeviceSize off,
    VkDeviceSize range, VkFormat fmt, VkBufferView *out)
{
	VkBufferViewCreateInfo ci = {
		.sType = VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO,
		.buffer = b->buf,
		.format = fmt,
		.offset = b->off + off,
		.range = range,
	};
	if (vkCreateBufferView(d->dev, &ci, NULL, out) != VK_SUCCESS)
		return (INFINI_ENOMEM);
	return (0);
}

void
gpu_view_free(struct gpu_dev *d, VkBufferView v)
{
	if (v != VK_NULL_HANDLE)
		vkDestroyBufferView(d->dev, v, NULL);
}
