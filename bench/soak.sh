#!/usr/bin/env bash
# Long-stream soak: starts infinid on models/default (or a generated small
# model), feeds one stream 1,000,000 tokens a segment at a time (bench/soak.c)
# and plots the CSV to docs/soak.png with gnuplot when it is installed.
#   bench/soak.sh [soak options, e.g. --tokens 100000 --every 50]
# Env: BUILD (build dir), SOAK_CSV (default $BUILD/soak.csv), SOAK_PNG.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
csv=${SOAK_CSV:-$build/soak.csv}
png=${SOAK_PNG:-docs/soak.png}
dir=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
model=models/default
if [ ! -e "$model/config.json" ]; then
	model=$dir/model
	"$build"/tools/gen-model --out "$model" --layers 2 --hidden 64 \
		--vocab 300 --segment 128 >/dev/null
fi
"$build"/daemon/infinid --model "$model" --listen "ipc://$dir/s.sock" \
	--state-dir "$dir" --log-level warning --autosnapshot-segments 0 \
	--autosnapshot-interval-s 0 &
pid=$!
for _ in $(seq 150); do
	"$build"/client/infini --socket "ipc://$dir/s.sock" status >/dev/null 2>&1 && break
	sleep 0.2
done
"$build"/bench/soak --socket "ipc://$dir/s.sock" --pid "$pid" --csv "$csv" "$@"
if command -v gnuplot >/dev/null; then
	gnuplot -e "csv='$csv'; out='$png'" bench/soak.gp && echo "plot: $png"
fi
