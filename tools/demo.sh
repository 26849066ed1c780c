#!/usr/bin/env bash
# The main job, end to end: build infinid, start the daemon on a model, and
# drive it with the infini CLI: open a stream, feed it a document segment by
# segment, generate from it, snapshot it, list the streams, stop.
#
# The model is models/default when the repository ships one; otherwise a
# small random-weight model is generated into build/demo-model (the output
# text is then noise, but every step runs for real).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null

model=models/default
if [ ! -f "$model/config.json" ]; then
	model=$build/demo-model
	if [ ! -f "$model/config.json" ]; then
		echo "demo: no shipped model yet; generating a random one in $model"
		"$build"/tools/gen-model --out "$model" --layers 4 --hidden 256 \
			--heads 4 --intermediate 688 --vocab 259 --segment 64 \
			--update delta >/dev/null
	fi
fi

run=$(mktemp -d)
sock="ipc://$run/infinid.sock"
trap 'kill $daemon 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$run"' EXIT
"$build"/daemon/infinid --model "$model" --listen "$sock" \
	--state-dir "$run" --log-level notice &
daemon=$!
infini() { "$build"/client/infini --socket "$sock" "$@"; }
for _ in $(seq 100); do infini status >/dev/null 2>&1 && break; sleep 0.2; done

set -x
infini status
infini open demo
infini feed demo README.md
infini generate demo --prompt "Infini-attention " -n 48 --temperature 0.7 --seed 1
infini snapshot demo --name demo-snap
infini restore demo-copy --name demo-snap
infini ls
infini stats
