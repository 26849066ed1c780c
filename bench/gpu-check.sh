#!/usr/bin/env bash
# bench/gpu-check.sh - the kernel tests and the bench tables on a machine with
# an NVIDIA GPU, in two halves.
#
#   bench/gpu-check.sh prepare [DIR]   here: Debian 12 after tools/setup-debian.sh
#   bench/gpu-check.sh run [DIR]       there: the GPU machine, DIR carried along
#
# The GPU machine (docs: the project's device notes) has NVIDIA's driver, a
# python3 with PyTorch, CMake and a C compiler, but no Vulkan loader, no
# glslang, none of infinid's libraries, and no network.  So `prepare` does
# the building where the tools are: it builds build/ (the cooperative-matrix
# kernels included, with deps/fetch-mesa-sid.sh's glslang; SPIR-V runs on
# any device), and puts into DIR (default .gpucheck, which it adds to
# .git/info/exclude):
#   build/{tests,bench,tools}/  the GPU tests, bench-model, bench-matmul,
#                               gen-model (the layout bench/run.sh expects)
#   debs/                       Debian's .deb of every shared library those
#                               programs need beyond the C library, and the
#                               Vulkan loader; trixie's validation layer,
#                               which knows VK_KHR_cooperative_matrix
#                               (Debian 12's 1.3.239 does not)
#   bench/                      run.sh and torch_infini.py
# `run` unpacks the .debs with dpkg -x under DIR/root (never over /), points
# the loader at NVIDIA's ICD, runs the tests with the validation layer on
# (INFINI_REQUIRE_COOP=1: the cooperative-matrix cases must run), then
# bench-matmul (every variant, GFLOP/s from GPU timestamps, and torch.matmul
# on the same GPU) and bench/run.sh with PyTorch on CUDA in bf16 against the
# engine on bf16 weights: the ~100M and Gemma-2B-shaped models, prefill and
# decode, and batched decode for 1, 8, 32 and 128 streams; between the two,
# the per-op device time of a ~100M prefill with the cooperative-matrix
# attention and retrieval and with the portable ones.  It stops
# starting new parts once 8 of its 10 minutes are gone.
#
# GPU_CHECK_ICD names the Vulkan driver manifest instead of NVIDIA's,
# GPU_CHECK_PYTHON the python with PyTorch (python3), and GPU_CHECK_QUICK=1
# makes every part small: together they let the script's paths be tried on
# lavapipe (PyTorch then has no CUDA, and its rows say "failed").  run.sh's
# progress and errors go to DIR/run.log.
#
# Not yet run on a GPU: no machine was lent to the work that wrote it.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
mode=${1:-}
dir=${2:-$root/.gpucheck}
# The in-process GPU tests (the ones tools/test.sh also runs on sid's Mesa).
tests="t_matmul t_ops t_engine t_sample t_model"

prepare() {
	local build=$root/build b lib pkg pkgs=() rel exclude
	[ -x /opt/infinid-mesa-sid/bin/glslangValidator ] ||
		{ echo "gpu-check: run tools/setup-debian.sh first" >&2; exit 1; }
	cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build "$build" -j"$(nproc)"
	[ -r "$build/shaders/matmul_coop_f16.h" ] ||
		{ echo "gpu-check: the build left the coop kernels out" >&2; exit 1; }
	rm -rf "$dir"
	mkdir -p "$dir/build/tests" "$dir/build/bench" "$dir/build/tools" \
		"$dir/debs" "$dir/bench"
	for t in $tests; do cp "$build/tests/$t.t" "$dir/build/tests/"; done
	cp "$build/bench/bench-model" "$build/bench/bench-matmul" "$dir/build/bench/"
	cp "$build/tools/gen-model" "$dir/build/tools/"
	cp "$here/run.sh" "$here/torch_infini.py" "$dir/bench/"
	# The packages of every library the programs load, but the C library
	# and the compiler's runtime, which the GPU machine has newer.
	for b in "$dir"/build/*/*; do
		ldd "$b" | awk '$3 ~ /^\// {print $3}'
	done | sort -u | while read -r lib; do
		dpkg -S "$(readlink -f "$lib")" 2>/dev/null ||
			dpkg -S "$lib" 2>/dev/null || true
	done | cut -d: -f1 | sort -u >"$dir/pkgs"
	while read -r pkg; do
		case $pkg in libc6|libgcc-s1|libstdc++6) continue ;; esac
		pkgs+=("$pkg")
	done <"$dir/pkgs"
	(cd "$dir/debs" && apt-get -qq download "${pkgs[@]}" libvulkan1)
	# trixie's validation layer, through apt with a private state
	# (deps/apt-private.sh); it needs a C library >= 2.38 there.
	# shellcheck source=deps/apt-private.sh
	. "$root/deps/apt-private.sh"
	apt_private_begin trixie
	apt-get "${aptopts[@]}" -qq update
	(cd "$dir/debs" && apt-get "${aptopts[@]}" -qq download vulkan-validationlayers)
	exclude=$(git -C "$root" rev-parse --git-path info/exclude)
	case $exclude in /*) ;; *) exclude=$root/$exclude ;; esac
	grep -qx '/.gpucheck/' "$exclude" 2>/dev/null || echo '/.gpucheck/' >>"$exclude"
	rel=${dir#"$root"/}
	echo "gpu-check: $(du -sh "$dir" | cut -f1) in $dir; on the GPU machine:" \
		"carry $rel and run bench/gpu-check.sh run $rel"
}

run() {
	local t0 sysroot icd f out rc=0 py=${GPU_CHECK_PYTHON:-python3}
	t0=$(date +%s)
	elapsed() { echo $(( $(date +%s) - t0 )); }
	sysroot=$dir/root
	rm -rf "$sysroot"
	for f in "$dir"/debs/*.deb; do dpkg -x "$f" "$sysroot"; done
	export LD_LIBRARY_PATH=$sysroot/usr/lib/x86_64-linux-gnu:$sysroot/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
	export VK_LAYER_PATH=$sysroot/usr/share/vulkan/explicit_layer.d
	icd=${GPU_CHECK_ICD:-}
	for f in /usr/share/vulkan/icd.d/nvidia_icd.json \
	    /etc/vulkan/icd.d/nvidia_icd.json \
	    /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; do
		[ -z "$icd" ] && [ -r "$f" ] && { icd=$f; break; }
	done
	[ -n "$icd" ] || { echo "gpu-check: no nvidia_icd.json found" >&2; exit 1; }
	export VK_DRIVER_FILES=$icd
	nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
	echo "== kernel tests on the GPU (validation layer on, coop required)"
	export INFINI_VALIDATION=1 INFINI_REQUIRE_COOP=1
	for t in $tests; do
		out=$("$dir/build/tests/$t.t" 2>&1) || rc=1
		grep -E '^(not ok|# device|# cooperative|1\.\.0|Bail out)' <<<"$out" || true
		# No device (or the validation layer did not load) skips all:
		# here that is a failure.
		grep -q '^1\.\.0' <<<"$out" && rc=1
		echo "$t: $(grep -c '^ok' <<<"$out") ok, $(grep -c '^not ok' <<<"$out") not ok"
	done
	unset INFINI_VALIDATION INFINI_REQUIRE_COOP
	echo "== matmul GFLOP/s (bench-matmul, GPU timestamps) after $(elapsed) s"
	timeout 120 "$dir/build/bench/bench-matmul" 3 1024 1024 1024 || rc=1
	[ "${GPU_CHECK_QUICK:-0}" = 1 ] ||
		timeout 120 "$dir/build/bench/bench-matmul" 3 4096 4096 4096 || rc=1
	timeout 60 "$dir/build/bench/bench-matmul" 3 1 2048 768 || rc=1
	"$py" - <<'PY' || rc=1
import torch, time
if not torch.cuda.is_available():
    raise SystemExit("torch.matmul: no CUDA device")
for n in (1024, 4096):
    for dt in (torch.float32, torch.bfloat16):
        a = torch.randn(n, n, device="cuda", dtype=dt)
        b = torch.randn(n, n, device="cuda", dtype=dt)
        for _ in range(3):
            a @ b.T
        torch.cuda.synchronize()
        ts = []
        for _ in range(10):
            t0 = time.perf_counter(); a @ b.T; torch.cuda.synchronize()
            ts.append(time.perf_counter() - t0)
        ts.sort()
        print("torch.matmul %d^3 %s: %.1f GFLOP/s (median of 10)"
              % (n, str(dt).split(".")[1], 2 * n ** 3 / ts[5] * 1e-9))
PY
	# Attention and retrieval before/after: the same prefill with the
	# coop kernels and with the portable ones (INFINI_OPS=portable).
	local pm=/tmp/infini-gpucheck-prof/100m ops pp=1024
	[ "${GPU_CHECK_QUICK:-0}" = 1 ] && pp=64
	if "$dir/build/tools/gen-model" --out "$pm" --layers 12 --hidden 768 \
	    --heads 12 --intermediate 2048 --vocab 32000 --segment 256 --tie \
	    --dtype bf16 >/dev/null; then
		echo "== per-op device time, ~100M bf16, prefill $pp after $(elapsed) s"
		for ops in coop portable; do
			echo "-- attention side: $ops"
			INFINI_OPS=${ops#coop} timeout 60 \
			    "$dir/build/bench/bench-model" --model "$pm" \
			    --prefill $pp --decode 8 --reps 1 --profile 2>&1 |
			    grep -E '^(op|matmul|attention|retrieve|gate|RESULT)[ +]' ||
			    rc=1
		done
		rm -rf "$pm"
	else
		rc=1
	fi
	if [ "$(elapsed)" -lt 480 ]; then
		echo "== engine vs PyTorch CUDA bf16 after $(elapsed) s"
		local quick=()
		[ "${GPU_CHECK_QUICK:-0}" = 1 ] && quick=(--quick)
		BUILD=$dir/build PYTHON=$py GEN_DTYPE=bf16 TORCH_THREADS=1 \
		TORCH_ARGS="--device cuda --dtype bf16" TIMEOUT=120 \
		GEMMA=$([ "${GPU_CHECK_QUICK:-0}" = 1 ] && echo 0 || echo 1) \
		STREAMS=$([ "${GPU_CHECK_QUICK:-0}" = 1 ] && echo "1 8" ||
		    echo "1 8 32 128") \
		R_SMALL=3 R_100M=3 BENCH_DIR=/tmp/infini-gpucheck \
			timeout $(( 560 - $(elapsed) )) bash "$dir/bench/run.sh" \
			--streams --no-matmul "${quick[@]}" 2>"$dir/run.log" ||
			{ rc=1; tail -n 20 "$dir/run.log"; }
	else
		echo "== engine vs PyTorch: skipped, $(elapsed) s already gone"
	fi
	echo "gpu-check: done in $(elapsed) s, status $rc"
	return "$rc"
}

case $mode in
prepare) prepare ;;
run) run ;;
*) sed -n '2,/^set -e/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
