#!/bin/bash
# run.sh - the engine against PyTorch on the same weights, same machine, same
# run: prefill and decode tokens/s on two generated models, as a markdown
# table (plus bench-matmul's table when that program is built).
#
# Models (random weights from build/tools/gen-model, written to a temp dir):
#   small  4 layers, hidden 256, 4 heads, intermediate 688, vocab 4096,
#          segment 128, f32                                   (~5.3M params)
#   100m   12 layers, hidden 768, 12 heads, intermediate 2048, vocab 32000,
#          segment 256, tied embeddings, f32                  (~110M params)
# Both sides follow one protocol (see bench/bench_model.c): one warm-up, then
# per repetition a fresh stream, P prompt tokens in one call (final hidden of
# the last token, no logits), then D single-token decode calls returning the
# logits; medians.  PyTorch runs fp32 on TORCH_THREADS threads (default: the
# cores, like lavapipe's LP_NUM_THREADS default) under torch.inference_mode.
#
# Usage: bench/run.sh [--quick] [--no-matmul] [--keep]
#   --quick      tiny P/D/reps: checks the harness in about a minute
#   --no-matmul  skip bench-matmul
#   --keep       keep the generated models (their dir is printed)
# Environment: BUILD (default <repo>/build), PYTHON (default /usr/bin/python3),
#   P_SMALL D_SMALL R_SMALL P_100M D_100M R_100M (512 32 3 / 512 32 1),
#   TIMEOUT per benchmark process in seconds (300), TORCH_THREADS, BENCH_DIR,
#   INFINI_DEVICE (Vulkan device for the engine).
# Other processes on the machine skew both sides: the load average is printed
# so a noisy run can be recognised.
set -u -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
BUILD=${BUILD:-$root/build}
PYTHON=${PYTHON:-/usr/bin/python3}
TIMEOUT=${TIMEOUT:-300}
TORCH_THREADS=${TORCH_THREADS:-$(nproc)}
P_SMALL=${P_SMALL:-512} D_SMALL=${D_SMALL:-32} R_SMALL=${R_SMALL:-3}
P_100M=${P_100M:-512} D_100M=${D_100M:-32} R_100M=${R_100M:-1}
matmul=1 keep=0

for a in "$@"; do
	case $a in
	--quick) P_SMALL=128 D_SMALL=8 R_SMALL=1 P_100M=64 D_100M=4 R_100M=1 ;;
	--no-matmul) matmul=0 ;;
	--keep) keep=1 ;;
	-h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
		exit 0 ;;
	*) echo "run.sh: unknown argument $a (see --help)" >&2; exit 2 ;;
	esac
done

gen=$BUILD/tools/gen-model
bench=$BUILD/bench/bench-model
for f in "$gen" "$bench"; do
	if [ ! -x "$f" ]; then
		echo "run.sh: $f is not built (cd build && cmake .. && make)" >&2
		exit 1
	fi
done
if ! "$PYTHON" -c 'import torch, numpy' 2>/dev/null; then
	echo "run.sh: $PYTHON cannot import torch and numpy" >&2
	exit 1
fi

if [ -n "${BENCH_DIR:-}" ]; then
	dir=$BENCH_DIR
	mkdir -p "$dir" || exit 1
else
	dir=$(mktemp -d /tmp/infini-bench.XXXXXX) || exit 1
fi
if [ "$keep" = 0 ] && [ -z "${BENCH_DIR:-}" ]; then
	trap 'rm -rf "$dir"' EXIT
fi

# field KEY LINE prints the value of KEY=value in a RESULT line.
field() {
	sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"
}

# ratio A B prints A/B with two decimals, or "-" when either is missing.
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		if (a == "" || b == "" || b + 0 == 0) print "-";
		else printf "%.2f\n", a / b }'
}

# fmt X prints a tokens/s figure, or the reason it is missing.
fmt() {
	if [ -n "$1" ]; then printf "%.1f" "$1"; else printf "%s" "$2"; fi
}

# run_one NAME DIR P D R appends one table row to $rows.
rows="" engdev=""
run_one() {
	local name=$1 m=$2 P=$3 D=$4 R=$5 out eres tres why_e why_t rc
	echo "== $name: P=$P D=$D reps=$R" >&2
	out=$(timeout "$TIMEOUT" "$bench" --model "$m" --prefill "$P" \
	    --decode "$D" --reps "$R" 2>&1)
	rc=$?
	echo "$out" | grep -v '^RESULT' >&2
	eres=$(grep '^RESULT' <<<"$out")
	[ -n "$engdev" ] ||
	    engdev=$(sed -n 's/^| engine \(.*\) ([a-z0-9]*) |.*/\1/p' <<<"$out")
	why_e=$([ $rc = 124 ] && echo "timeout ${TIMEOUT}s" || echo "failed ($rc)")
	out=$(timeout "$TIMEOUT" "$PYTHON" "$here/torch_infini.py" bench "$m" \
	    --prefill "$P" --decode "$D" --reps "$R" \
	    --threads "$TORCH_THREADS" 2>&1)
	rc=$?
	echo "$out" | grep -v '^RESULT' >&2
	tres=$(grep '^RESULT' <<<"$out")
	why_t=$([ $rc = 124 ] && echo "timeout ${TIMEOUT}s" || echo "failed ($rc)")

	local params ep tp ed td
	params=$(field params "$eres")
	[ -n "$params" ] || params=$(field params "$tres")
	ep=$(field prefill_tok_s "$eres") tp=$(field prefill_tok_s "$tres")
	ed=$(field decode_tok_s "$eres") td=$(field decode_tok_s "$tres")
	rows+="| $name ($(awk -v p="${params:-0}" 'BEGIN { printf "%.1fM", p / 1e6 }')"
	rows+=" params, P=$P D=$D reps=$R)"
	rows+=" | $(fmt "$ep" "$why_e") | $(fmt "$tp" "$why_t") | $(ratio "$ep" "$tp")"
	rows+=" | $(fmt "$ed" "$why_e") | $(fmt "$td" "$why_t") | $(ratio "$ed" "$td") |"
	rows+=$'\n'
}

echo "== generating models in $dir" >&2
"$gen" --out "$dir/small" --layers 4 --hidden 256 --heads 4 \
    --intermediate 688 --vocab 4096 --segment 128 --dtype f32 >&2 || exit 1
"$gen" --out "$dir/100m" --layers 12 --hidden 768 --heads 12 \
    --intermediate 2048 --vocab 32000 --segment 256 --tie --dtype f32 >&2 ||
    exit 1

load0=$(cut -d' ' -f1-3 /proc/loadavg)
start=$(date +%s)
run_one small "$dir/small" "$P_SMALL" "$D_SMALL" "$R_SMALL"
run_one 100m "$dir/100m" "$P_100M" "$D_100M" "$R_100M"
load1=$(cut -d' ' -f1-3 /proc/loadavg)

tv=$("$PYTHON" -c 'import torch; print(torch.__version__)')
echo
echo "Engine vs PyTorch $tv ($TORCH_THREADS threads, fp32) on $(nproc) cores;" \
    "engine on ${engdev:-?}."
echo "Load average before: $load0, after: $load1; $(( $(date +%s) - start )) s."
echo "Ratio = engine / torch (above 1: the engine is faster). tokens/s, medians."
echo
echo "| model | engine prefill tok/s | torch prefill tok/s | ratio |" \
    "engine decode tok/s | torch decode tok/s | ratio |"
echo "|---|---|---|---|---|---|---|"
printf "%s" "$rows"

if [ "$matmul" = 1 ] && [ -x "$BUILD/bench/bench-matmul" ]; then
	echo
	echo "bench-matmul (GFLOP/s):"
	echo
	timeout "$TIMEOUT" "$BUILD/bench/bench-matmul" 3 2>&1 |
	    sed 's/^/    /' || echo "    (bench-matmul failed or timed out)"
fi
if [ "$keep" = 1 ]; then
	echo
	echo "models kept in $dir"
fi
