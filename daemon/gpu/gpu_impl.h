/*
 * gpu_impl.h - internals shared by the files of the gpu module; not for the
 * engine's eyes.
 */
#ifndef GPU_IMPL_H
#define GPU_IMPL_H

#include "gpu/gpu.h"

/* A block: one VkDeviceMemory with one VkBuffer spanning it, carved up by a
 * first-fit free list. */
struct gpu_span {
	VkDeviceSize off, size;
};

struct gpu_block {
	struct gpu_block *next;
	enum gpu_pool pool;
	VkDeviceMemory mem;
	VkBuffer buf;
	VkDeviceSize size;
	void *map;
	struct gpu_span *free;         /* sorted by offset */
	uint32_t nfree, capfree;
};

struct gpu_dev {
	VkInstance inst;
	VkDebugUtilsMessengerEXT messenger;
	VkPhysicalDevice phys;
	VkDevice dev;
	VkQueue queue;
	uint32_t qfam;
	struct gpu_info info;
	VkPhysicalDeviceMemoryProperties memprops;
	uint32_t memtype[GPU_POOL_COUNT];
	struct gpu_block *blocks[GPU_POOL_COUNT];
	uint64_t used[GPU_POOL_COUNT];
	PFN_vkCmdPushDescriptorSetKHR push_desc;
	VkCommandPool cpool;
	struct gpu_cmd *xfer;          /* for staging copies */
	struct gpu_buf staging;        /* staging area when not unified */
	bool validation;
	unsigned val_errors;
	bool lost;                     /* VK_ERROR_DEVICE_LOST was seen */
	enum gpu_fault fault;          /* armed for the next submission */
};

#define GPU_MAX_PENDING 64
#define GPU_MAX_STAMPS 4096

struct gpu_range {
	VkBuffer buf;
	VkDeviceSize off, end;
};

struct gpu_pipe {
	const struct gpu_kernel *k;
	uint32_t spec[GPU_MAX_SPEC];   /* the specialization it was built with */
	VkDescriptorSetLayout dsl;
	VkPipelineLayout layout;
	VkPipeline pipe;
};

struct gpu_cmd {
	struct gpu_dev *d;
	VkCommandBuffer cb;
	VkFence fence;
	bool recording;
	/* Ranges written / read since the last barrier. */
	struct gpu_range wr[GPU_MAX_PENDING], rd[GPU_MAX_PENDING];
	uint32_t nwr, nrd;
	/* Profiling. */
	bool profile;
	VkQueryPool qpool;
	uint32_t nstamp;
	const char *labels[GPU_MAX_STAMPS];
	uint64_t stamps[GPU_MAX_STAMPS + 1];
	uint32_t nresult;
};

void gpu_mem_fini(struct gpu_dev *d);
int gpu_mem_init(struct gpu_dev *d);

#endif /* GPU_IMPL_H */
