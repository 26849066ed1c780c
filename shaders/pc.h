/*
 * pc.h - lets one push-constant struct body be read by both GLSL and C.
 *
 * Each <op>_pc.h declares its block between PC_BEGIN(name) and PC_END(name)
 * using only 4-byte scalars, so std430 offsets equal C offsets; the C side
 * adds a static size check and tests/t_pc.c compares the offsets that
 * glslangValidator reflects with offsetof().
 */
#ifndef INFINI_PC_H
#define INFINI_PC_H
#ifdef VULKAN
#define uint32_t uint
#define int32_t int
#define PC_BEGIN(name) layout(push_constant) uniform name {
#define PC_END(name) } pc;
#else
#include <stdint.h>
#define PC_BEGIN(name) struct name {
#define PC_END(name) };                                                    \
	_Static_assert(sizeof(struct name) <= 128, #name " too large");
#endif
#endif
