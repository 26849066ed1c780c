/*
 * pipeline.c - compute pipelines from embedded SPIR-V.
 *
 * Each kernel row (struct gpu_kernel) becomes a push-descriptor set layout,
 * a pipeline layout with its push-constant range and the pipeline itself,
 * specialised with 32-bit constants (tile sizes, head dim, ...).  A kernel
 * the binary lacks, or one that needs a feature the device does not have
 * (struct gpu_kernel's need), is refused before anything is made.
 */
#include <stdlib.h>

#include "gpu/gpu_impl.h"
#include "infini_err.h"

int
gpu_pipe_create(struct gpu_dev *d, const struct gpu_kernel *k,
    const uint32_t *spec, uint32_t nspec, struct gpu_pipe **out)
{
	VkDescriptorSetLayoutBinding b[GPU_MAX_BINDS];
	VkSpecializationMapEntry me[GPU_MAX_SPEC];
	VkShaderModule mod = VK_NULL_HANDLE;
	struct gpu_pipe *p;
	int rv = INFINI_EDEVICE;

	if (k->spv == NULL ||
	    ((k->need & GPU_NEED_COOPMAT) && !d->info.coopmat))
		return (INFINI_EUNSUPPORTED);
	if (k->nbind > GPU_MAX_BINDS || nspec > GPU_MAX_SPEC ||
	    k->push_size > d->info.max_push)
		return (INFINI_EINVAL);
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return (INFINI_ENOMEM);
	p->k = k;
	for (uint32_t i = 0; i < nspec; i++)
		p->spec[i] = spec[i];
	for (uint32_t i = 0; i < k->nbind; i++)
		b[i] = (VkDescriptorSetLayoutBinding){
			.binding = i,
			.descriptorType = k->bind[i] == GPU_TEXEL ?
			    VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER :
			    VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
			.descriptorCount = 1,
			.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
		};
	VkDescriptorSetLayoutCreateInfo dci = {
		.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
		.flags = VK_DESCRIPTOR_SET_LAYOUT_CREATE_PUSH_DESCRIPTOR_BIT_KHR,
		.bindingCount = k->nbind,
		.pBindings = b,
	};
	if (vkCreateDescriptorSetLayout(d->dev, &dci, NULL, &p->dsl) != VK_SUCCESS)
		goto fail;
	VkPushConstantRange pcr = {
		.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
		.size = k->push_size,
	};
	VkPipelineLayoutCreateInfo lci = {
		.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
		.setLayoutCount = 1,
		.pSetLayouts = &p->dsl,
		.pushConstantRangeCount = k->push_size ? 1 : 0,
		.pPushConstantRanges = &pcr,
	};
	if (vkCreatePipelineLayout(d->dev, &lci, NULL, &p->layout) != VK_SUCCESS)
		goto fail;
	VkShaderModuleCreateInfo sci = {
		.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
		.codeSize = k->spv_size,
		.pCode = k->spv,
	};
	if (vkCreateShaderModule(d->dev, &sci, NULL, &mod) != VK_SUCCESS)
		goto fail;
	for (uint32_t i = 0; i < nspec; i++)
		me[i] = (VkSpecializationMapEntry){ i, i * 4, 4 };
	VkSpecializationInfo si = {
		.mapEntryCount = nspec,
		.pMapEntries = me,
		.dataSize = nspec * 4,
		.pData = spec,
	};
	VkComputePipelineCreateInfo cci = {
		.sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
		.stage = {
			.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
			/* Cooperative matrices in SPIR-V 1.5 need whole
			 * subgroups (VUID-RuntimeSpirv-OpTypeCooperativeMatrixKHR-10770);
			 * the subgroup size stays the one the device reports,
			 * which the kernels' workgroup size is made of. */
			.flags = (k->need & GPU_NEED_COOPMAT) ?
			    VK_PIPELINE_SHADER_STAGE_CREATE_REQUIRE_FULL_SUBGROUPS_BIT_EXT : 0,
			.stage = VK_SHADER_STAGE_COMPUTE_BIT,
			.module = mod,
			.pName = "main",
			.pSpecializationInfo = nspec ? &si : NULL,
		},
		.layout = p->layout,
	};
	if (vkCreateComputePipelines(d->dev, VK_NULL_HANDLE, 1, &cci, NULL,
	    &p->pipe) != VK_SUCCESS)
		goto fail;
	vkDestroyShaderModule(d->dev, mod, NULL);
	*out = p;
	return (0);
fail:
	if (mod != VK_NULL_HANDLE)
		vkDestroyShaderModule(d->dev, mod, NULL);
	gpu_pipe_free(d, p);
	return (rv);
}

uint32_t
gpu_pipe_spec(const struct gpu_pipe *p, uint32_t i)
{
	return (i < GPU_MAX_SPEC ? p->spec[i] : 0);
}

void
gpu_pipe_free(struct gpu_dev *d, struct gpu_pipe *p)
{
	if (p == NULL)
		return;
	if (p->pipe != VK_NULL_HANDLE)
		vkDestroyPipeline(d->dev, p->pipe, NULL);
	if (p->layout != VK_NULL_HANDLE)
		vkDestroyPipelineLayout(d->dev, p->layout, NULL);
	if (p->dsl != VK_NULL_HANDLE)
		vkDestroyDescriptorSetLayout(d->dev, p->dsl, NULL);
	free(p);
}
