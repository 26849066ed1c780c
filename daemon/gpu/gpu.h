/*
 * gpu.h - the Vulkan runtime under the engine: device choice, memory pools,
 * compute pipelines built from embedded SPIR-V, and command recording.
 *
 * It knows nothing about models.  The engine asks it for buffers out of a
 * few purpose pools (weights, stream state, activations, staging), builds one
 * pipeline per kernel variant, and records a whole forward pass into one
 * command buffer.  Barriers are inserted by the recorder only where a dispatch
 * touches a range that an earlier, unbarriered dispatch wrote (or writes a
 * range an earlier one read), so independent dispatches overlap.
 *
 * Descriptors are pushed per dispatch (VK_KHR_push_descriptor), so no
 * descriptor pools or sets live in the engine.
 */
#ifndef GPU_H
#define GPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <vulkan/vulkan.h>

struct gpu_dev;
struct gpu_pipe;
struct gpu_cmd;
struct gpu_block;

struct gpu_info {
	char name[VK_MAX_PHYSICAL_DEVICE_NAME_SIZE];
	uint8_t uuid[VK_UUID_SIZE];    /* deviceUUID */
	uint32_t driver_version;       /* driverVersion, the vendor's encoding */
	VkPhysicalDeviceType type;
	uint32_t vendor_id;
	uint32_t index;                /* in vkEnumeratePhysicalDevices order */
	uint32_t subgroup_size;
	bool subgroup_arith;           /* subgroupAdd & co. in compute shaders */
	uint64_t max_storage_range;    /* maxStorageBufferRange */
	uint64_t max_texel_elems;      /* maxTexelBufferElements */
	uint32_t max_push;             /* maxPushConstantsSize */
	uint32_t max_groups_x;         /* maxComputeWorkGroupCount[0] */
	uint32_t max_shared;           /* maxComputeSharedMemorySize */
	uint64_t align;                /* storage and texel offset alignment */
	bool unified;                  /* device-local memory is host-visible */
	bool timestamps;
	double ts_period_ns;
	/* VK_KHR_cooperative_matrix, enabled on the device when it lists a
	 * subgroup-scope f16 x f16 -> f32 shape of at most 16 x 16 x 32 and has
	 * shaderFloat16 and vulkanMemoryModel: the largest such shape (M rows
	 * of A, N columns of B, K the inner size), else all 0 and false. */
	bool coopmat;
	uint32_t coop_m, coop_n, coop_k;
	uint32_t max_invocations;      /* maxComputeWorkGroupInvocations */
};

enum gpu_pool {
	GPU_POOL_WEIGHTS,
	GPU_POOL_STATE,
	GPU_POOL_ACT,
	GPU_POOL_STAGING,
	GPU_POOL_COUNT
};

/* A sub-allocation: a range of one pool block's VkBuffer. */
struct gpu_buf {
	VkBuffer buf;
	VkDeviceSize off;
	VkDeviceSize size;
	void *map;                     /* host pointer to off, or NULL */
	struct gpu_block *blk;
};

/* One binding of a dispatch: a storage range, or a texel buffer view over
 * a range (the range is still given, for hazard tracking). */
struct gpu_arg {
	VkBuffer buf;
	VkDeviceSize off;
	VkDeviceSize range;
	VkBufferView view;             /* VK_NULL_HANDLE for storage bindings */
};

enum gpu_bind { GPU_STORAGE = 0, GPU_TEXEL = 1 };

#define GPU_MAX_BINDS 8
#define GPU_MAX_SPEC 8

/* Device features a kernel may need (struct gpu_kernel's need). */
#define GPU_NEED_COOPMAT (1u << 0)     /* gpu_info.coopmat */

/* A kernel as embedded in the binary; one row per shader variant. */
struct gpu_kernel {
	const char *name;
	const uint32_t *spv;           /* NULL: not built into this binary */
	size_t spv_size;               /* bytes */
	uint32_t nbind;
	uint8_t bind[GPU_MAX_BINDS];   /* enum gpu_bind per binding */
	uint32_t push_size;            /* bytes of push constants */
	uint32_t need;                 /* GPU_NEED_* bits */
};

/*
 * gpu_dev_open picks and opens a device.  select NULL or "" takes the best by
 * type (discrete > integrated > virtual > CPU); a decimal number takes that
 * index; any other text takes the first device whose name contains it
 * (case-insensitive).  With INFINI_VALIDATION=1 in the environment the
 * Khronos validation layer is enabled and its messages are counted.
 * Returns 0, INFINI_ENODEV (no driver or no match), INFINI_EDEVICE.  On success
 * *out is owned by the caller: release with gpu_dev_free.
 */
int gpu_dev_open(const char *select, struct gpu_dev **out, char *err,
    size_t errlen);
void gpu_dev_free(struct gpu_dev *d);
const struct gpu_info *gpu_dev_info(const struct gpu_dev *d);

/* gpu_dev_list writes one line per physical device to f; returns count. */
int gpu_dev_list(void *file);

/* gpu_dev_validation_errors: error+warning messages seen since open. */
unsigned gpu_dev_validation_errors(const struct gpu_dev *d);
bool gpu_dev_validation_enabled(const struct gpu_dev *d);

/* gpu_pool_bytes: bytes currently sub-allocated from a pool. */
uint64_t gpu_pool_bytes(const struct gpu_dev *d, enum gpu_pool p);

/*
 * gpu_buf_alloc sub-allocates size bytes (aligned for storage and texel use)
 * from pool p.  Returns 0 or INFINI_ENOMEM.  Release with gpu_buf_free.
 */
int gpu_buf_alloc(struct gpu_dev *d, enum gpu_pool p, VkDeviceSize size,
    struct gpu_buf *out);
void gpu_buf_free(struct gpu_dev *d, struct gpu_buf *b);

/* gpu_buf_write / gpu_buf_read copy between host memory and a buffer range,
 * directly where the buffer is mapped and through staging otherwise.  They
 * wait for completion.  gpu_buf_zero fills a range with zeros.  All three
 * return 0, INFINI_ERANGE, or INFINI_EDEVICE once the device is lost (a
 * mapping may still read, but nothing in it can be trusted). */
int gpu_buf_write(struct gpu_dev *d, const struct gpu_buf *b, VkDeviceSize off,
    const void *src, size_t n);
int gpu_buf_read(struct gpu_dev *d, const struct gpu_buf *b, VkDeviceSize off,
    void *dst, size_t n);
int gpu_buf_zero(struct gpu_dev *d, const struct gpu_buf *b, VkDeviceSize off,
    size_t n);

/* gpu_arg_of: a storage binding over [off, off+range) of b (range 0: to end). */
struct gpu_arg gpu_arg_of(const struct gpu_buf *b, VkDeviceSize off,
    VkDeviceSize range);

/* gpu_view_create makes a texel view of b's [off, off+range) in fmt; destroy
 * with gpu_view_free. */
int gpu_view_create(struct gpu_dev *d, const struct gpu_buf *b,
    VkDeviceSize off, VkDeviceSize range, VkFormat fmt, VkBufferView *out);
void gpu_view_free(struct gpu_dev *d, VkBufferView v);

/*
 * gpu_pipe_create builds kernel k with specialization constants spec[0..nspec)
 * at constant ids 0..nspec-1 (all 32-bit).  Returns 0, INFINI_EUNSUPPORTED
 * (k was not built into this binary, or needs a feature the device lacks),
 * INFINI_EINVAL, INFINI_ENOMEM or INFINI_EDEVICE.  *out owned by the caller.
 */
int gpu_pipe_create(struct gpu_dev *d, const struct gpu_kernel *k,
    const uint32_t *spec, uint32_t nspec, struct gpu_pipe **out);
void gpu_pipe_free(struct gpu_dev *d, struct gpu_pipe *p);
/* gpu_pipe_spec: specialization constant i that p was built with (0 past
 * the ones given). */
uint32_t gpu_pipe_spec(const struct gpu_pipe *p, uint32_t i);

/* Command recording. */
int gpu_cmd_alloc(struct gpu_dev *d, struct gpu_cmd **out);
void gpu_cmd_free(struct gpu_cmd *c);
/* gpu_cmd_profile turns per-dispatch timestamps on or off (off by default). */
void gpu_cmd_profile(struct gpu_cmd *c, bool on);
int gpu_cmd_begin(struct gpu_cmd *c);
/*
 * gpu_cmd_dispatch records pipe over groups (gx, gy, gz).  args has one entry
 * per binding; bit i of writes says binding i is written.  push is the
 * kernel's push-constant struct.  label names the dispatch for profiles.
 */
void gpu_cmd_dispatch(struct gpu_cmd *c, const struct gpu_pipe *p,
    const struct gpu_arg *args, uint32_t writes, const void *push,
    uint32_t gx, uint32_t gy, uint32_t gz, const char *label);
/* gpu_cmd_copy records a buffer copy (barriered like a dispatch). */
void gpu_cmd_copy(struct gpu_cmd *c, const struct gpu_arg *src,
    const struct gpu_arg *dst, VkDeviceSize n);
/* gpu_cmd_barrier forces a full compute/transfer barrier. */
void gpu_cmd_barrier(struct gpu_cmd *c);
/* gpu_cmd_submit ends recording, submits and waits.  Returns 0,
 * INFINI_ENOMEM (the driver ran out of host or device memory; the
 * submission had no effect, as Vulkan guarantees for those errors) or
 * INFINI_EDEVICE (the device is lost, see gpu_lost, or another failure).
 * After a loss every submission fails. */
int gpu_cmd_submit(struct gpu_cmd *c);

/* gpu_lost: has the device reported VK_ERROR_DEVICE_LOST?  Its memory no
 * longer holds anything that can be trusted. */
bool gpu_lost(const struct gpu_dev *d);

/*
 * Fault injection, for the tests of what the layers above do when the
 * device fails.  gpu_fault_arm makes the next submission fail:
 * GPU_FAULT_OOM as if vkQueueSubmit returned VK_ERROR_OUT_OF_DEVICE_MEMORY
 * (nothing is submitted), GPU_FAULT_LOST as if the device were lost while
 * running it (the work runs, then the fence wait reports
 * VK_ERROR_DEVICE_LOST and the device stays lost), GPU_FAULT_HANG as if the
 * device took GPU_HANG_MS longer (the submission then completes).
 */
enum gpu_fault {
	GPU_FAULT_NONE,
	GPU_FAULT_OOM,
	GPU_FAULT_LOST,
	GPU_FAULT_HANG,            /* the fence signals GPU_HANG_MS late */
};
#define GPU_HANG_MS 8000
void gpu_fault_arm(struct gpu_dev *d, enum gpu_fault f);
/* gpu_cmd_timings calls fn(label, ns) for each profiled dispatch of the last
 * submission. */
void gpu_cmd_timings(const struct gpu_cmd *c,
    void (*fn)(void *arg, const char *label, double ns), void *arg);

#endif /* GPU_H */
