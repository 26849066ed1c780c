#!/usr/bin/env bash
# Starts infinid on a small generated model and a temporary ipc:// socket,
# then runs bench-rpc against it (latency p50/p99, requests/s, 32 clients).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
"$build"/tools/gen-model --out "$dir/model" --layers 2 --hidden 64 --vocab 300 \
	--segment 64 >/dev/null
"$build"/daemon/infinid --model "$dir/model" --listen "ipc://$dir/s.sock" \
	--log-level warning --max-streams 64 &
pid=$!
for _ in $(seq 100); do
	"$build"/client/infini --socket "ipc://$dir/s.sock" status >/dev/null 2>&1 && break
	sleep 0.2
done
"$build"/bench/bench-rpc --socket "ipc://$dir/s.sock" "$@"
