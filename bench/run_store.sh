#!/bin/bash
# run_store.sh - restores per second from the local disk and from Redis
# (bench-store) for the default model and a generated ~100M model (12
# layers, hidden 768, 12 heads, segment 256, as bench/run.sh makes it).
# Starts its own redis-server on a free loopback port (append-only file,
# fsync every second, in a temp dir) and stops it.
# Usage: bench/run_store.sh [S]   (streams per model: 32)
# Environment: BUILD (default <repo>/build).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$root/build}
S=${1:-32}
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" \
	--appendonly yes --appendfsync everysec --daemonize no \
	>"$dir/redis.log" 2>&1 &
rpid=$!
trap 'kill $rpid 2>/dev/null; wait $rpid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do
	redis-cli -p "$port" ping >/dev/null 2>&1 && break
	sleep 0.1
done
"$BUILD/tools/gen-model" --out "$dir/100m" --layers 12 --hidden 768 \
	--heads 12 --intermediate 2048 --vocab 32000 --segment 256 --tie \
	--dtype f32 >&2
for m in "$root/models/default" "$dir/100m"; do
	"$BUILD/bench/bench-store" --model "$m" --redis \
		"redis://127.0.0.1:$port/0" --streams "$S"
	echo
done
