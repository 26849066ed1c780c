#!/usr/bin/env bash
# Builds infinid from scratch in build/ and runs the whole test suite with
# prove: once as the device reports itself, and once more with llvmpipe's
# narrow vectors (LP_NATIVE_VECTOR_WIDTH=128, subgroup size 4) so nothing
# depends on one subgroup size.  Every test enables the Vulkan validation
# layer and fails on any message.  Then once more on Mesa 25's lavapipe from
# bookworm-backports, which deps/fetch-mesa25.sh (run by
# tools/setup-debian.sh) unpacks under /opt/infinid-mesa25 next to Debian
# 12's own Mesa 22.3 ($INFINI_MESA25 names another place;
# INFINI_TEST_MESA25=0 skips the pass), so both drivers stay supported.
# Last, the tests that keep the device in their own process (t_matmul,
# t_ops, t_engine, t_sample, t_model) on the newest lavapipe, which has
# VK_KHR_cooperative_matrix: deps/fetch-mesa-sid.sh unpacks Debian sid's
# Mesa, validation layer and C library under /opt/infinid-mesa-sid and its
# `run` starts a program on them ($INFINI_MESA_SID; INFINI_TEST_COOP=0
# skips).  There the cooperative-matrix cases must run, not skip.
#
# Then the same suite once more in a second tree built with AddressSanitizer
# and UndefinedBehaviorSanitizer (build-asan, -DINFINI_SANITIZE=ON; leaks
# checked, tests/lsan.supp for third-party frames), failing on any report;
# tests/t_daemon once more with the daemon under valgrind's memcheck
# (tools/valgrind.sh); and when clang's libFuzzer is there, every fuzz target
# for a bounded number of runs from its seed corpus (build-fuzz,
# docs/fuzzing.md); and last the Debian packages, built out of tree by
# tools/build-deb.sh (lintian must report no error or warning) and read by
# tests/t_deb (nothing is installed).  INFINI_TEST_ASAN=0,
# INFINI_TEST_VALGRIND=0, INFINI_TEST_FUZZ=0 or INFINI_TEST_DEB=0 skip those
# passes; FUZZ_RUNS sets the executions per target (20000).
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
mesa25=${INFINI_MESA25:-/opt/infinid-mesa25}
if [ "${INFINI_TEST_MESA25:-1}" != 0 ] && [ -r "$mesa25/lvp_icd.json" ]; then
	echo "== tests on lavapipe $(cat "$mesa25/VERSION") ($mesa25)"
	VK_DRIVER_FILES=$mesa25/lvp_icd.json \
	LD_LIBRARY_PATH=$mesa25/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
		prove -f "$build"/tests/*.t
elif [ "${INFINI_TEST_MESA25:-1}" != 0 ]; then
	echo "== Mesa 25 pass: skipped (no $mesa25/lvp_icd.json; deps/fetch-mesa25.sh)"
fi
sid=${INFINI_MESA_SID:-/opt/infinid-mesa-sid}
if [ "${INFINI_TEST_COOP:-1}" != 0 ] && [ -x "$sid/run" ]; then
	echo "== kernel tests on lavapipe $(cat "$sid/VERSION") ($sid: cooperative matrices)"
	INFINI_REQUIRE_COOP=1 prove -f --exec "$sid/run" \
		"$build"/tests/t_matmul.t "$build"/tests/t_ops.t \
		"$build"/tests/t_engine.t "$build"/tests/t_sample.t \
		"$build"/tests/t_model.t
elif [ "${INFINI_TEST_COOP:-1}" != 0 ]; then
	echo "== cooperative-matrix pass: skipped (no $sid/run; deps/fetch-mesa-sid.sh)"
fi


# ---- the sanitizer pass (one vector width: it is the slow one)
if [ "${INFINI_TEST_ASAN:-1}" != 0 ]; then
	asan=${ASAN_BUILD_DIR:-build-asan}
	echo "== tests under ASan+UBSan ($asan)"
	cmake -S . -B "$asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DINFINI_SANITIZE=ON ${CMAKE_ARGS:-} >/dev/null
	cmake --build "$asan" -j"$(nproc)"
	# Every process (tests and the daemons they start) logs its reports
	# to a file of its own, so a report in a child that exits quietly still
	# fails the pass.
	reports=$(mktemp -d)
	status=0
	# Leak stacks come from the fast unwinder, which stops at the first
	# frame of code built without frame pointers (libstdc++, LLVM, Mesa):
	# tests/lsan.supp names those modules, and sanitizer builds keep the
	# driver and layers loaded to the end so that the names are there.
	# (The full unwinder on every malloc makes the daemons' shader
	# compilation take minutes.)
	# The daemons run several times slower here: the tests' time budgets
	# (failover and restore in t_scale, every tap_timeout) stretch with
	# INFINI_TEST_TIMEOUT_MULTIPLIER; their functional checks do not.
	ASAN_OPTIONS=detect_leaks=1:log_path=$reports/asan \
	LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:log_path=$reports/ubsan \
	INFINI_TEST_TIMEOUT_MULTIPLIER=${INFINI_TEST_TIMEOUT_MULTIPLIER:-3} \
		prove -f "$asan"/tests/*.t || status=$?
	if [ -n "$(ls -A "$reports")" ]; then
		echo "sanitizer reports:"
		cat "$reports"/*
		status=1
	fi
	rm -rf "$reports"
	[ "$status" = 0 ] || exit "$status"
fi

# ---- the end-to-end daemon test with the daemon under valgrind's memcheck
if [ "${INFINI_TEST_VALGRIND:-1}" != 0 ] && command -v valgrind >/dev/null; then
	echo "== t_daemon with infinid under valgrind (tools/valgrind.sh)"
	BUILD_DIR="$build" tools/valgrind.sh
elif [ "${INFINI_TEST_VALGRIND:-1}" != 0 ]; then
	echo "== valgrind pass: skipped (no valgrind)"
fi

# ---- the fuzz targets, a bounded number of runs each
if [ "${INFINI_TEST_FUZZ:-1}" != 0 ] && command -v clang >/dev/null &&
	echo 'int LLVMFuzzerTestOneInput(const char *d, long n){return 0;}' |
	clang -x c -fsanitize=fuzzer -o /dev/null - 2>/dev/null; then
	fuzz=${FUZZ_BUILD_DIR:-build-fuzz}
	echo "== fuzz targets ($fuzz, ${FUZZ_RUNS:-20000} runs each)"
	CC=clang cmake -S . -B "$fuzz" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DINFINI_SANITIZE=ON -DINFINI_FUZZ=ON ${CMAKE_ARGS:-} >/dev/null
	cmake --build "$fuzz" -j"$(nproc)" --target make_corpus \
		fuzz_envelope fuzz_model fuzz_snapshot fuzz_tok
	work=$(mktemp -d)
	"$fuzz"/tests/make_corpus "$work/seeds"
	for t in envelope model snapshot tok; do
		mkdir -p "$work/$t"
		if ! ASAN_OPTIONS=detect_leaks=1 \
			"$fuzz"/tests/fuzz_$t -runs="${FUZZ_RUNS:-20000}" -seed=1 \
			-artifact_prefix="$work/" "$work/$t" "$work/seeds/$t" \
			>"$work/$t.log" 2>&1; then
			echo "fuzz_$t failed:"
			tail -n 60 "$work/$t.log"
			exit 1
		fi
		echo "fuzz_$t: $(grep -E '^#[0-9]+.*DONE' "$work/$t.log" | tail -n 1)"
	done
	rm -rf "$work"
elif [ "${INFINI_TEST_FUZZ:-1}" != 0 ]; then
	echo "== fuzz targets: skipped (no clang with -fsanitize=fuzzer)"
fi

# ---- the Debian packages: built out of tree, lintian clean (no error or
# warning), and their contents checked by t_deb without installing them
if [ "${INFINI_TEST_DEB:-1}" != 0 ]; then
	echo "== Debian packages (tools/build-deb.sh, lintian)"
	debs=$(mktemp -d)
	tools/build-deb.sh "$debs"
	INFINI_DEB_DIR=$debs prove -f "$build"/tests/t_deb.t
	rm -rf "$debs"
fi
