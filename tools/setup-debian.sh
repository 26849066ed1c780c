#!/usr/bin/env bash
# Installs what infinid needs to build, test and run on Debian 12.
# Run as root (or through sudo).  Idempotent.
# systemd is here for systemd-analyze (tests/t_systemd checks the unit); in
# a container it installs without becoming PID 1.
# python3-torch/numpy (+ OpenBLAS) run bench/torch_infini.py, which
# tests/t_shipped checks the shipped model against.
# clang and libclang-rt-14-dev build the libFuzzer targets (tools/test.sh);
# gnuplot-nox plots bench/soak.sh's CSV; valgrind runs tools/valgrind.sh
# (the daemon test under memcheck); openssl makes t_daemon's TLS certificate.
# NNG comes from deps/fetch-nng.sh, not from Debian 12's libnng-dev.
# curl, nodejs + npm (the openai npm client in tests/http-client) and
# python3-prometheus-client (its text parser) drive tests/t_http's checks of
# the HTTP gateway and /metrics.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
	exec sudo "$0" "$@"
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
	build-essential cmake pkg-config perl \
	libvulkan-dev mesa-vulkan-drivers vulkan-validationlayers \
	glslang-tools spirv-tools \
	libcjson-dev libxxhash-dev \
	libprotobuf-c-dev protobuf-c-compiler \
	systemd \
	python3-torch python3-numpy libopenblas0-pthread \
	clang libclang-rt-14-dev gnuplot-nox valgrind openssl \
	curl python3-prometheus-client \
	>/dev/null
# Debian's npm conflicts with a nodejs that bundles its own (NodeSource's).
if ! command -v npm >/dev/null; then
	apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
# NNG >= 1.10 (Debian 12's libnng 1.5.2 is refused by the build).
"$(dirname "$0")/../deps/fetch-nng.sh"
# The openai npm package, pinned by tests/http-client/package-lock.json.
# Without the npm registry, t_http skips the checks that use it.
(cd "$(dirname "$0")/../tests/http-client" && npm ci --no-audit --no-fund \
	>/dev/null) ||
	echo "setup-debian: npm ci failed; t_http will skip the openai client checks" >&2
echo "setup-debian: build and test dependencies installed"
