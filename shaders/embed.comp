#version 450
#extension GL_GOOGLE_include_directive : require
/* embed.comp - embedding gather (one invocation per output element). */
#define WBIND 1
#include "common.glsl"
#include "embed_pc.h"
layout(local_size_x = 64) in;
layout(binding = 0, std430) readonly buffer Ids { int ids[]; };
layout(binding = 2, std430) readonly buffer Vecs { float vecs[]; };
layout(binding = 3, std430) writeonly buffer X { float x[]; };

void main()
{
	uint i = flat_id();
	if (i >= pc.n_rows * pc.hidden)
		return;
	uint r = i / pc.hidden, c = i % pc.hidden;
	int id = ids[r];
	if (id < 0) {
		if (pc.take_vecs != 0u)
			x[i] = vecs[i];
	} else if (uint(id) >= pc.row_lo && uint(id) < pc.row_hi) {
		x[i] = wload((uint(id) - pc.row_lo) * pc.hidden + c) * pc.scale;
	}
}
