#!/usr/bin/env bash
# Starts infinid on a small generated model, a temporary ipc:// socket and
# the HTTP gateway on a free loopback port, then runs bench-rpc against it:
# latency p50/p99 over NNG and over HTTP in the same run, requests/s with
# 32 clients.  INFINID=path runs another daemon build (a before/after
# comparison in one sitting); extra arguments go to bench-rpc.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
infinid=${INFINID:-$build/daemon/infinid}
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
"$build"/tools/gen-model --out "$dir/model" --layers 2 --hidden 64 --vocab 300 \
	--segment 64 >/dev/null
token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
(umask 077 && echo "$token $(id -u)" >"$dir/tokens")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$infinid" --model "$dir/model" --listen "ipc://$dir/s.sock" \
	--log-level warning --max-streams 64 --state-dir "$dir" \
	--http-listen "127.0.0.1:$port" --http-tokens-file "$dir/tokens" &
pid=$!
for _ in $(seq 100); do
	"$build"/client/infini --socket "ipc://$dir/s.sock" status >/dev/null 2>&1 && break
	sleep 0.2
done
"$build"/bench/bench-rpc --socket "ipc://$dir/s.sock" \
	--http "127.0.0.1:$port" --token "$token" "$@"
