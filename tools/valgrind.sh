#!/usr/bin/env bash
# Runs the end-to-end daemon test (tests/t_daemon) with infinid under
# valgrind's memcheck: any invalid read or write, use of an uninitialised
# value or definitely lost block makes the daemon exit with status 99, which
# the test's last checks ("SIGTERM: clean exit") turn into a failure, and
# any error count in the reports fails this script too.  tests/valgrind.supp
# holds the one report that is not ours (Debian 12's dynamic loader).
#   tools/valgrind.sh            (build/ must be built; takes minutes)
# Env: BUILD_DIR (build), VG_LOGS (where the reports go; default a temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
logs=${VG_LOGS:-$(mktemp -d)}
command -v valgrind >/dev/null || { echo "valgrind: apt-get install -y valgrind"; exit 2; }
export INFINI_VALIDATION=${INFINI_VALIDATION:-1}
export INFINI_DAEMON_WRAPPER="valgrind --error-exitcode=99 --leak-check=full \
--errors-for-leak-kinds=definite --show-leak-kinds=definite \
--suppressions=$PWD/tests/valgrind.supp --gen-suppressions=all \
--log-file=$logs/vg.%p.log"
status=0
prove "$build"/tests/t_daemon.t || status=$?
for f in "$logs"/vg.*.log; do
	[ -e "$f" ] || { echo "valgrind: no report in $logs"; status=1; break; }
	echo "$(basename "$f"): $(grep -E 'ERROR SUMMARY' "$f" | sed 's/^==[0-9]*== //')"
	grep -qE 'ERROR SUMMARY: 0 errors' "$f" || { cat "$f"; status=1; }
done
echo "valgrind reports: $logs"
exit "$status"
