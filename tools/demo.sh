#!/usr/bin/env bash
# The main job, end to end: build infinid, start the daemon on a model, and
# drive it with the infini CLI.  With the shipped model: state a pass key,
# bury it under 256 segments (8 kB) of text the model never saw, snapshot,
# ask for the key (the answer can only come from the compressive memory:
# the key is 256 segments back and local attention sees one segment),
# restore the snapshot into a second stream and ask again.  Then feed a
# document, generate, list, stop.  DEMO_K sets the distance.
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
if [ "$model" = models/default ]; then
	# The pass key and 8 bytes of filler complete segment 0 (BOS + 23 + 8
	# = 32 bytes); the filler then fills segments 1..K-1 and opens segment
	# K with 4 bytes; the question follows in segment K.  The filler is
	# the GPL-3 text every Debian system has, which the model never saw in
	# training.
	K=${DEMO_K:-256}
	tail -c +1001 /usr/share/common-licenses/GPL-3 |
		head -c $((8 + (K - 1) * 32 + 4)) >"$run/filler.txt"
	infini open passkey
	infini push passkey --tokens 256
	infini push passkey --text "The pass key is 48151. "
	infini feed passkey "$run/filler.txt"
	infini snapshot passkey --name passkey-snap
	answer=$(infini generate passkey --prompt "The pass key is " -n 5)
	infini restore passkey-copy --name passkey-snap
	again=$(infini generate passkey-copy --prompt "The pass key is " -n 5)
	{ set +x; } 2>/dev/null
	echo "pass key stated $K segments back: 48151; answered: $answer; after snapshot/restore: $again"
	set -x
fi
infini open demo
infini feed demo README.md
infini generate demo --prompt "Infini-attention " -n 48 --temperature 0.7 --seed 1
echo
infini snapshot demo --name demo-snap
infini restore demo-copy --name demo-snap
infini ls
infini stats
