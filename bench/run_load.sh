#!/usr/bin/env bash
# Starts infinid on models/default (or a small generated model) on a
# temporary ipc:// socket and state directory, then runs bench-load against
# it: 64 clients x 1000 mixed requests, checked against a serial replay.
#   bench/run_load.sh [--clients N] [--requests N]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
dir=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
model=models/default
if [ ! -e "$model/config.json" ]; then
	model=$dir/model
	"$build"/tools/gen-model --out "$model" --layers 2 --hidden 64 \
		--vocab 300 --segment 64 >/dev/null
fi
"$build"/daemon/infinid --model "$model" --listen "ipc://$dir/s.sock" \
	--state-dir "$dir" --log-level warning --max-streams 1024 &
pid=$!
for _ in $(seq 150); do
	"$build"/client/infini --socket "ipc://$dir/s.sock" status >/dev/null 2>&1 && break
	sleep 0.2
done
"$build"/bench/bench-load --socket "ipc://$dir/s.sock" --pid "$pid" "$@"
