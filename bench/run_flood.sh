#!/usr/bin/env bash
# Starts infinid on a small generated model and a temporary ipc:// socket
# (mode 0666, so another UID can connect), then runs bench-flood: one wave
# of vanishing connections from the same UID and from another UID (as root:
# FLOODER_UID, default 65534), waves back to back from another UID, and
# another UID keeping 64 clients pushing (a hog that never vanishes), and
# another UID's 2 clients sending Pushes far over max_request_tokens.
# INFINID=path runs another daemon build, MODEL=dir another model (default:
# a generated 2-layer model); extra arguments go to every run.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
infinid=${INFINID:-$build/daemon/infinid}
uid=${FLOODER_UID:-65534}
dir=$(mktemp -d)
chmod 755 "$dir"
trap 'kill $pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
model=${MODEL:-$dir/model}
if [ -z "${MODEL:-}" ]; then
	"$build"/tools/gen-model --out "$dir/model" --layers 2 --hidden 64 \
		--vocab 300 --segment 64 >/dev/null
fi
"$infinid" --model "$model" --listen "ipc://$dir/s.sock" \
	--state-dir "$dir" --socket-mode 0666 --log-level warning \
	--max-streams 4096 &
pid=$!
for _ in $(seq 100); do
	"$build"/client/infini --socket "ipc://$dir/s.sock" status >/dev/null 2>&1 && break
	sleep 0.2
done
run() { "$build"/bench/bench-flood --socket "ipc://$dir/s.sock" "$@"; echo; }
run "$@"
if [ "$(id -u)" = 0 ]; then
	run --flooder-uid "$uid" "$@"
	run --flooder-uid "$uid" --waves-s 5 "$@"
	run --flooder-uid "$uid" --hog-s 5 --conns 64 --tokens 2000 "$@"
	# Oversize Pushes (refused: over max_request_tokens), back to back.
	run --flooder-uid "$uid" --hog-s 5 --conns 2 --tokens 15000000 "$@"
fi
