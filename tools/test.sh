#!/usr/bin/env bash
# Builds infinid from scratch in build/ and runs the whole test suite with
# prove: once as the device reports itself, and once more with llvmpipe's
# narrow vectors (LP_NATIVE_VECTOR_WIDTH=128, subgroup size 4) so nothing
# depends on one subgroup size.  Every test enables the Vulkan validation
# layer and fails on any message.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo ${CMAKE_ARGS:-} >/dev/null
cmake --build "$build" -j"$(nproc)"
export INFINI_VALIDATION=1
echo "== tests (default vector width)"
prove -f "$build"/tests/*.t
echo "== tests (LP_NATIVE_VECTOR_WIDTH=128)"
LP_NATIVE_VECTOR_WIDTH=128 prove -f "$build"/tests/*.t
