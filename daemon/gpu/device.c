/*
 * device.c - Vulkan instance and device: choosing a physical device, turning
 * on validation when asked, and reporting what the device can do.
 *
 * Headless compute only: no surface or window-system extension is touched,
 * so it runs on servers, in containers and on lavapipe alike.
 */
#include <ctype.h>
#ifdef INFINI_PIN_MODULES
#include <dlfcn.h>
#include <link.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu/gpu_impl.h"
#include "infini_err.h"

/* VK_KHR_cooperative_matrix arrived in Vulkan headers 1.3.255; Debian 12's
 * are 1.3.239.  These are the registry's definitions. */
#ifndef VK_KHR_cooperative_matrix
#define VK_KHR_cooperative_matrix 1
#define VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME "VK_KHR_cooperative_matrix"
#define VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR \
	((VkStructureType)1000506000)
#define VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR \
	((VkStructureType)1000506001)
typedef enum VkComponentTypeKHR {
	VK_COMPONENT_TYPE_FLOAT16_KHR = 0,
	VK_COMPONENT_TYPE_FLOAT32_KHR = 1,
} VkComponentTypeKHR;
typedef enum VkScopeKHR {
	VK_SCOPE_SUBGROUP_KHR = 3,
} VkScopeKHR;
typedef struct VkCooperativeMatrixPropertiesKHR {
	VkStructureType sType;
	void *pNext;
	uint32_t MSize, NSize, KSize;
	VkComponentTypeKHR AType, BType, CType, ResultType;
	VkBool32 saturatingAccumulation;
	VkScopeKHR scope;
} VkCooperativeMatrixPropertiesKHR;
typedef struct VkPhysicalDeviceCooperativeMatrixFeaturesKHR {
	VkStructureType sType;
	void *pNext;
	VkBool32 cooperativeMatrix;
	VkBool32 cooperativeMatrixRobustBufferAccess;
} VkPhysicalDeviceCooperativeMatrixFeaturesKHR;
typedef VkResult (VKAPI_PTR *PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR)(
    VkPhysicalDevice, uint32_t *, VkCooperativeMatrixPropertiesKHR *);
#endif


#ifdef INFINI_PIN_MODULES
/*
 * Sanitizer builds only (-DINFINI_SANITIZE=ON).  LeakSanitizer reports at
 * exit, when the Vulkan loader has already unloaded the driver and the
 * validation layer: their frames then read "<unknown module>", which no
 * suppression in tests/lsan.supp can match, and whether such a report
 * appears at all depends on the machine's builds of those libraries.
 * Every object loaded once the device exists stays mapped to the end, so
 * each frame keeps its module's name.
 */
static int
pin_one(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size, (void)arg;
	if (info->dlpi_name != NULL && info->dlpi_name[0] != '\0')
		(void)dlopen(info->dlpi_name, RTLD_NOW | RTLD_NOLOAD |
		    RTLD_NODELETE);
	return (0);
}

static void
pin_modules(void)
{
	dl_iterate_phdr(pin_one, NULL);
}
#else
static void
pin_modules(void)
{
}
#endif

static VKAPI_ATTR VkBool32 VKAPI_CALL
on_validation(VkDebugUtilsMessageSeverityFlagBitsEXT sev,
    VkDebugUtilsMessageTypeFlagsEXT type,
    const VkDebugUtilsMessengerCallbackDataEXT *data, void *arg)
{
	struct gpu_dev *d = arg;
	(void)type;
	if (sev & (VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT |
	    VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT)) {
		d->val_errors++;
		fprintf(stderr, "vulkan validation: %s\n", data->pMessage);
	}
	return (VK_FALSE);
}

static bool
layer_present(const char *name)
{
	uint32_t n = 0;
	VkLayerProperties *p;
	bool found = false;

	if (vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS || n == 0)
		return (false);
	if ((p = calloc(n, sizeof(*p))) == NULL)
		return (false);
	if (vkEnumerateInstanceLayerProperties(&n, p) == VK_SUCCESS)
		for (uint32_t i = 0; i < n; i++)
			if (strcmp(p[i].layerName, name) == 0)
				found = true;
	free(p);
	return (found);
}

static bool
want_validation(void)
{
	const char *v = getenv("INFINI_VALIDATION");
	return (v != NULL && *v != '\0' && strcmp(v, "0") != 0);
}

static int
create_instance(struct gpu_dev *d, char *err, size_t errlen)
{
	static const char *layer = "VK_LAYER_KHRONOS_validation";
	const char *ext = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
	VkApplicationInfo app = {
		.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
		.pApplicationName = "infinid",
		.apiVersion = VK_API_VERSION_1_2,
	};
	VkInstanceCreateInfo ici = {
		.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
		.pApplicationInfo = &app,
	};
	VkResult r;

	if (want_validation()) {
		if (!layer_present(layer)) {
			snprintf(err, errlen, "INFINI_VALIDATION is set but %s "
			    "is not installed (vulkan-validationlayers)", layer);
			return (INFINI_ENODEV);
		}
		ici.enabledLayerCount = 1;
		ici.ppEnabledLayerNames = &layer;
		ici.enabledExtensionCount = 1;
		ici.ppEnabledExtensionNames = &ext;
		d->validation = true;
	}
	r = vkCreateInstance(&ici, NULL, &d->inst);
	if (r != VK_SUCCESS) {
		snprintf(err, errlen, "vkCreateInstance failed (%d): no Vulkan "
		    "driver installed? (mesa-vulkan-drivers provides lavapipe)",
		    (int)r);
		return (INFINI_ENODEV);
	}
	if (d->validation) {
		PFN_vkCreateDebugUtilsMessengerEXT mk =
		    (PFN_vkCreateDebugUtilsMessengerEXT)vkGetInstanceProcAddr(
		    d->inst, "vkCreateDebugUtilsMessengerEXT");
		VkDebugUtilsMessengerCreateInfoEXT mci = {
			.sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
			.messageSeverity =
			    VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT |
			    VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT,
			.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
			    VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
			    VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
			.pfnUserCallback = on_validation,
			.pUserData = d,
		};
		if (mk == NULL ||
		    mk(d->inst, &mci, NULL, &d->messenger) != VK_SUCCESS) {
			snprintf(err, errlen, "cannot install validation messenger");
			return (INFINI_EDEVICE);
		}
	}
	return (0);
}

static int
type_rank(VkPhysicalDeviceType t)
{
	switch (t) {
	case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return (4);
	case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return (3);
	case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return (2);
	case VK_PHYSICAL_DEVICE_TYPE_CPU: return (1);
	default: return (0);
	}
}

static bool
contains_nocase(const char *hay, const char *needle)
{
	size_t n = strlen(needle);
	for (; *hay; hay++) {
		size_t i = 0;
		while (i < n && hay[i] &&
		    tolower((unsigned char)hay[i]) ==
		    tolower((unsigned char)needle[i]))
			i++;
		if (i == n)
			return (true);
	}
	return (n == 0);
}

static bool
has_ext(VkPhysicalDevice p, const char *name)
{
	uint32_t n = 0;
	VkExtensionProperties *e;
	bool found = false;

	if (vkEnumerateDeviceExtensionProperties(p, NULL, &n, NULL) != VK_SUCCESS)
		return (false);
	if ((e = calloc(n ? n : 1, sizeof(*e))) == NULL)
		return (false);
	if (vkEnumerateDeviceExtensionProperties(p, NULL, &n, e) == VK_SUCCESS)
		for (uint32_t i = 0; i < n; i++)
			if (strcmp(e[i].extensionName, name) == 0)
				found = true;
	free(e);
	return (found);
}

static const char *
type_name(VkPhysicalDeviceType t)
{
	switch (t) {
	case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return ("discrete");
	case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return ("integrated");
	case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return ("virtual");
	case VK_PHYSICAL_DEVICE_TYPE_CPU: return ("cpu");
	default: return ("other");
	}
}

static int
pick_physical(struct gpu_dev *d, const char *select, char *err, size_t errlen)
{
	uint32_t n = 0;
	VkPhysicalDevice *all;
	int best = -1, best_rank = -1;
	char *end;
	long want = -1;

	if (vkEnumeratePhysicalDevices(d->inst, &n, NULL) != VK_SUCCESS || n == 0) {
		snprintf(err, errlen, "no Vulkan physical device found");
		return (INFINI_ENODEV);
	}
	if ((all = calloc(n, sizeof(*all))) == NULL)
		return (INFINI_ENOMEM);
	vkEnumeratePhysicalDevices(d->inst, &n, all);
	if (select != NULL && *select != '\0') {
		want = strtol(select, &end, 10);
		if (*end != '\0')
			want = -1;
	}
	for (uint32_t i = 0; i < n; i++) {
		VkPhysicalDeviceProperties p;
		int rank;

		vkGetPhysicalDeviceProperties(all[i], &p);
		if (p.apiVersion < VK_API_VERSION_1_2 ||
		    !has_ext(all[i], VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME))
			continue;
		if (want >= 0) {
			if ((long)i == want)
				best = (int)i;
			continue;
		}
		if (select != NULL && *select != '\0') {
			if (best < 0 && contains_nocase(p.deviceName, select))
				best = (int)i;
			continue;
		}
		rank = type_rank(p.deviceType);
		if (rank > best_rank) {
			best_rank = rank;
			best = (int)i;
		}
	}
	if (best < 0) {
		snprintf(err, errlen, "no usable Vulkan device%s%s (need "
		    "Vulkan 1.2 and VK_KHR_push_descriptor)",
		    select && *select ? " matches " : "",
		    select && *select ? select : "");
		free(all);
		return (INFINI_ENODEV);
	}
	d->phys = all[best];
	d->info.index = (uint32_t)best;
	free(all);
	return (0);
}

static void
fill_info(struct gpu_dev *d)
{
	VkPhysicalDeviceIDProperties id = {
		.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_ID_PROPERTIES,
	};
	VkPhysicalDeviceSubgroupProperties sg = {
		.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES,
		.pNext = &id,
	};
	VkPhysicalDeviceProperties2 p2 = {
		.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
		.pNext = &sg,
	};
	const VkPhysicalDeviceLimits *l = &p2.properties.limits;
	struct gpu_info *in = &d->info;

	vkGetPhysicalDeviceProperties2(d->phys, &p2);
	snprintf(in->name, sizeof(in->name), "%s", p2.properties.deviceName);
	memcpy(in->uuid, id.deviceUUID, sizeof(in->uuid));
	in->driver_version = p2.properties.driverVersion;
	in->type = p2.properties.deviceType;
	in->vendor_id = p2.properties.vendorID;
	in->subgroup_size = sg.subgroupSize;
	in->subgroup_arith = (sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
	    (sg.supportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT);
	in->max_storage_range = l->maxStorageBufferRange;
	in->max_texel_elems = l->maxTexelBufferElements;
	in->max_push = l->maxPushConstantsSize;
	in->max_groups_x = l->maxComputeWorkGroupCount[0];
	in->max_shared = l->maxComputeSharedMemorySize;
	in->max_invocations = l->maxComputeWorkGroupInvocations;
	in->align = l->minStorageBufferOffsetAlignment;
	if (l->minTexelBufferOffsetAlignment > in->align)
		in->align = l->minTexelBufferOffsetAlignment;
	if (in->align < 16)
		in->align = 16;
	in->timestamps = l->timestampComputeAndGraphics && l->timestampPeriod > 0;
	in->ts_period_ns = l->timestampPeriod;
	vkGetPhysicalDeviceMemoryProperties(d->phys, &d->memprops);
}

/*
 * probe_coopmat fills the cooperative-matrix fields of d->info: the largest
 * subgroup-scope f16 x f16 -> f32 shape the device lists, among those small
 * enough for matmul_coop.comp's shared memory (M, N <= 16, K <= 32), when
 * the extension, its feature, shaderFloat16, vulkanMemoryModel (with
 * device scope, which the other kernels' atomics then need) and full
 * compute subgroups (VK_EXT_subgroup_size_control: the kernels are SPIR-V
 * 1.5, where cooperative matrices need that pipeline flag) are all there.
 * The engine chooses the cooperative-matrix kernels only then.
 */
static void
probe_coopmat(struct gpu_dev *d)
{
	VkPhysicalDeviceSubgroupSizeControlFeaturesEXT sf = {
		.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES_EXT,
	};
	VkPhysicalDeviceCooperativeMatrixFeaturesKHR cf = {
		.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR,
		.pNext = &sf,
	};
	VkPhysicalDeviceVulkan12Features f12 = {
		.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
		.pNext = &cf,
	};
	VkPhysicalDeviceFeatures2 f2 = {
		.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
		.pNext = &f12,
	};
	PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR props;
	VkCooperativeMatrixPropertiesKHR *p;
	struct gpu_info *in = &d->info;
	uint32_t n = 0;

	if (!has_ext(d->phys, VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME) ||
	    !has_ext(d->phys, VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME))
		return;
	vkGetPhysicalDeviceFeatures2(d->phys, &f2);
	props = (PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR)
	    vkGetInstanceProcAddr(d->inst,
	    "vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR");
	if (!cf.cooperativeMatrix || !sf.computeFullSubgroups ||
	    !f12.shaderFloat16 ||
	    !f12.vulkanMemoryModel || !f12.vulkanMemoryModelDeviceScope ||
	    props == NULL ||
	    props(d->phys, &n, NULL) != VK_SUCCESS || n == 0)
		return;
	if ((p = calloc(n, sizeof(*p))) == NULL)
		return;
	for (uint32_t i = 0; i < n; i++)
		p[i].sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR;
	if (props(d->phys, &n, p) == VK_SUCCESS)
		for (uint32_t i = 0; i < n; i++) {
			const VkCooperativeMatrixPropertiesKHR *q = &p[i];
			if (q->AType != VK_COMPONENT_TYPE_FLOAT16_KHR ||
			    q->BType != VK_COMPONENT_TYPE_FLOAT16_KHR ||
			    q->CType != VK_COMPONENT_TYPE_FLOAT32_KHR ||
			    q->ResultType != VK_COMPONENT_TYPE_FLOAT32_KHR ||
			    q->scope != VK_SCOPE_SUBGROUP_KHR ||
			    q->MSize > 16 || q->NSize > 16 || q->KSize > 32 ||
			    (uint64_t)q->MSize * q->NSize * q->KSize <=
			    (uint64_t)in->coop_m * in->coop_n * in->coop_k)
				continue;
			in->coop_m = q->MSize;
			in->coop_n = q->NSize;
			in->coop_k = q->KSize;
		}
	free(p);
	in->coopmat = in->coop_m > 0;
}

static int
create_device(struct gpu_dev *d, char *err, size_t errlen)
{
	uint32_t nq = 0;
	VkQueueFamilyProperties *qf;
	float prio = 1.0f;
	const char *ext[3] = { VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME,
	    VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME,
	    VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME };
	VkPhysicalDeviceSubgroupSizeControlFeaturesEXT wantsf = {
		.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES_EXT,
		.computeFullSubgroups = VK_TRUE,
	};
	VkPhysicalDeviceCooperativeMatrixFeaturesKHR wantcm = {
		.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR,
		.pNext = &wantsf,
		.cooperativeMatrix = VK_TRUE,
	};
	VkPhysicalDeviceFeatures2 f2 = {
		.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
	};
	VkPhysicalDeviceVulkan11Features f11 = {
		.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES,
	};
	VkPhysicalDeviceVulkan12Features f12 = {
		.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
	};
	VkPhysicalDeviceVulkan11Features want11 = {
		.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES,
	};
	VkPhysicalDeviceVulkan12Features want12 = {
		.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
		.pNext = &want11,
	};
	VkDeviceQueueCreateInfo qci = {
		.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
		.queueCount = 1,
		.pQueuePriorities = &prio,
	};
	VkDeviceCreateInfo dci = {
		.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
		.pNext = &want12,
		.queueCreateInfoCount = 1,
		.pQueueCreateInfos = &qci,
		.enabledExtensionCount = 1,
		.ppEnabledExtensionNames = ext,
	};
	VkResult r;

	vkGetPhysicalDeviceQueueFamilyProperties(d->phys, &nq, NULL);
	if ((qf = calloc(nq ? nq : 1, sizeof(*qf))) == NULL)
		return (INFINI_ENOMEM);
	vkGetPhysicalDeviceQueueFamilyProperties(d->phys, &nq, qf);
	d->qfam = UINT32_MAX;
	for (uint32_t i = 0; i < nq; i++)
		if (qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) {
			d->qfam = i;
			if (qf[i].timestampValidBits == 0)
				d->info.timestamps = false;
			break;
		}
	free(qf);
	if (d->qfam == UINT32_MAX) {
		snprintf(err, errlen, "%s has no compute queue", d->info.name);
		return (INFINI_ENODEV);
	}
	qci.queueFamilyIndex = d->qfam;

	/* Ask only for what the shaders use and the device has. */
	f2.pNext = &f11;
	f11.pNext = &f12;
	vkGetPhysicalDeviceFeatures2(d->phys, &f2);
	want11.storageBuffer16BitAccess = f11.storageBuffer16BitAccess;
	want12.shaderFloat16 = f12.shaderFloat16;
	if (d->info.coopmat) {
		/* matmul_coop.comp: the extension, the Vulkan memory model
		 * its SPIR-V declares, f16 arithmetic, full subgroups. */
		want12.vulkanMemoryModel = VK_TRUE;
		/* with the model on, sample.comp's device-scope atomics
		 * need this one too */
		want12.vulkanMemoryModelDeviceScope = VK_TRUE;
		want11.pNext = &wantcm;
		dci.enabledExtensionCount = 3;
	}
	dci.pEnabledFeatures = NULL;

	r = vkCreateDevice(d->phys, &dci, NULL, &d->dev);
	if (r != VK_SUCCESS) {
		snprintf(err, errlen, "vkCreateDevice failed (%d) on %s", (int)r,
		    d->info.name);
		return (INFINI_EDEVICE);
	}
	pin_modules();
	vkGetDeviceQueue(d->dev, d->qfam, 0, &d->queue);
	d->push_desc = (PFN_vkCmdPushDescriptorSetKHR)vkGetDeviceProcAddr(
	    d->dev, "vkCmdPushDescriptorSetKHR");
	if (d->push_desc == NULL) {
		snprintf(err, errlen, "vkCmdPushDescriptorSetKHR missing");
		return (INFINI_EDEVICE);
	}
	VkCommandPoolCreateInfo pci = {
		.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
		.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
		.queueFamilyIndex = d->qfam,
	};
	if (vkCreateCommandPool(d->dev, &pci, NULL, &d->cpool) != VK_SUCCESS) {
		snprintf(err, errlen, "vkCreateCommandPool failed");
		return (INFINI_EDEVICE);
	}
	return (0);
}

int
gpu_dev_open(const char *select, struct gpu_dev **out, char *err,
    size_t errlen)
{
	struct gpu_dev *d;
	char dummy[8];
	int rv;

	if (err == NULL) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return (INFINI_ENOMEM);
	if ((rv = create_instance(d, err, errlen)) != 0 ||
	    (rv = pick_physical(d, select, err, errlen)) != 0)
		goto fail;
	fill_info(d);
	probe_coopmat(d);
	if ((rv = create_device(d, err, errlen)) != 0)
		goto fail;
	if ((rv = gpu_mem_init(d)) != 0) {
		snprintf(err, errlen, "no suitable memory type on %s",
		    d->info.name);
		goto fail;
	}
	if ((rv = gpu_cmd_alloc(d, &d->xfer)) != 0) {
		snprintf(err, errlen, "cannot allocate a command buffer");
		goto fail;
	}
	*out = d;
	return (0);
fail:
	gpu_dev_free(d);
	return (rv);
}

void
gpu_dev_free(struct gpu_dev *d)
{
	if (d == NULL)
		return;
	if (d->dev != VK_NULL_HANDLE)
		vkDeviceWaitIdle(d->dev);
	gpu_cmd_free(d->xfer);
	if (d->staging.buf != VK_NULL_HANDLE)
		gpu_buf_free(d, &d->staging);
	gpu_mem_fini(d);
	if (d->cpool != VK_NULL_HANDLE)
		vkDestroyCommandPool(d->dev, d->cpool, NULL);
	if (d->dev != VK_NULL_HANDLE)
		vkDestroyDevice(d->dev, NULL);
	if (d->messenger != VK_NULL_HANDLE) {
		PFN_vkDestroyDebugUtilsMessengerEXT rm =
		    (PFN_vkDestroyDebugUtilsMessengerEXT)vkGetInstanceProcAddr(
		    d->inst, "vkDestroyDebugUtilsMessengerEXT");
		if (rm != NULL)
			rm(d->inst, d->messenger, NULL);
	}
	if (d->inst != VK_NULL_HANDLE)
		vkDestroyInstance(d->inst, NULL);
	free(d);
}

const struct gpu_info *
gpu_dev_info(const struct gpu_dev *d)
{
	return (&d->info);
}

unsigned
gpu_dev_validation_errors(const struct gpu_dev *d)
{
	return (d->val_errors);
}

bool
gpu_dev_validation_enabled(const struct gpu_dev *d)
{
	return (d->validation);
}

int
gpu_dev_list(void *file)
{
	FILE *f = file;
	VkInstance inst;
	VkApplicationInfo app = {
		.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
		.apiVersion = VK_API_VERSION_1_2,
	};
	VkInstanceCreateInfo ici = {
		.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
		.pApplicationInfo = &app,
	};
	uint32_t n = 0;
	VkPhysicalDevice *all;

	if (vkCreateInstance(&ici, NULL, &inst) != VK_SUCCESS)
		return (0);
	pin_modules();
	vkEnumeratePhysicalDevices(inst, &n, NULL);
	if ((all = calloc(n ? n : 1, sizeof(*all))) != NULL) {
		vkEnumeratePhysicalDevices(inst, &n, all);
		for (uint32_t i = 0; i < n; i++) {
			VkPhysicalDeviceProperties p;
			vkGetPhysicalDeviceProperties(all[i], &p);
			fprintf(f, "%u: %s (%s)\n", i, p.deviceName,
			    type_name(p.deviceType));
		}
		free(all);
	}
	vkDestroyInstance(inst, NULL);
	return ((int)n);
}
