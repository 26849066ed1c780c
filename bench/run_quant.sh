#!/bin/bash
# run_quant.sh - quantized weights: accuracy against f32 and decode speed.
#
# 1. Error table: the shipped model (models/default) and the ~100M model
#    (bench/run.sh's: 12 layers, hidden 768, 12 heads, intermediate 2048,
#    vocab 32000, segment 256, tied, random f32 weights from gen-model),
#    each converted by infini-convert to bf16, q8_0 and q4, against its f32
#    self with bench-quant: max and mean |dlogit|, top-1 agreement over
#    N_SHIP / N_100M tokens (the bytes of README.md and docs/*.md).
# 2. Speed table: bench-model on the ~100M model in f32, bf16, q8_0 and q4
#    (decode tok/s, prefill tok/s, device weight memory) and
#    torch_infini.py bench on the f32 model, 1 thread, in the same run.
#
# Usage: bench/run_quant.sh [--keep] [--speed-only]
# Environment: BUILD (<repo>/build), PYTHON (/usr/bin/python3), N_SHIP
#   (10000), N_100M (10000), P (64), D (16), R (1), TIMEOUT (600 s per step).
set -u -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
BUILD=${BUILD:-$root/build}
PYTHON=${PYTHON:-/usr/bin/python3}
N_SHIP=${N_SHIP:-10000} N_100M=${N_100M:-10000}
P=${P:-64} D=${D:-16} R=${R:-1} TIMEOUT=${TIMEOUT:-600}
keep=0 errors=1
for a in "$@"; do
	case $a in
	--keep) keep=1 ;;
	--speed-only) errors=0 ;;
	*) echo "run_quant.sh: unknown argument $a" >&2; exit 2 ;;
	esac
done

gen=$BUILD/tools/gen-model
conv=$BUILD/daemon/infini-convert
bq=$BUILD/bench/bench-quant
bm=$BUILD/bench/bench-model
for f in "$gen" "$conv" "$bq" "$bm"; do
	[ -x "$f" ] || { echo "run_quant.sh: $f not built" >&2; exit 1; }
done
dir=$(mktemp -d "${TMPDIR:-/tmp}/infini-quant-XXXXXX")
[ "$keep" = 1 ] && echo "models in $dir" >&2 || trap 'rm -rf "$dir"' EXIT
cat "$root"/README.md "$root"/docs/*.md > "$dir/text.txt"

"$gen" --out "$dir/100m" --layers 12 --hidden 768 --heads 12 \
    --intermediate 2048 --vocab 32000 --segment 256 --tie --dtype f32 >&2 ||
    exit 1
for m in ship 100m; do
	src=$dir/100m
	[ $m = ship ] && src=$root/models/default
	for t in bf16 q8_0 q4; do
		"$conv" -q --dtype $t "$src" "$dir/$m-$t" || exit 1
	done
done

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
[ "$errors" = 1 ] &&
echo "| model | dtype | tokens | max abs dlogit | mean abs dlogit | top-1 agreement |" &&
echo "|---|---|---|---|---|---|"
for m in ship 100m; do
	[ "$errors" = 1 ] || break
	src=$dir/100m n=$N_100M
	[ $m = ship ] && src=$root/models/default n=$N_SHIP
	for t in bf16 q8_0 q4; do
		r=$(timeout "$TIMEOUT" "$bq" --ref "$src" --model "$dir/$m-$t" \
		    --text "$dir/text.txt" --tokens "$n" | grep '^RESULT')
		eval "${r#RESULT }"
		printf "| %s | %s | %s | %.4f | %.5f | %.2f%% |\n" \
		    "$m" "$t" "$tokens" "$max_abs" "$mean_abs" \
		    "$(awk -v x="$top1" 'BEGIN { print 100 * x }')"
	done
done

echo
echo "| ~100M | weights MiB | prefill tok/s (P=$P) | decode tok/s (D=$D) |"
echo "|---|---|---|---|"
for t in f32 bf16 q8_0 q4; do
	d=$dir/100m-$t
	[ $t = f32 ] && d=$dir/100m
	r=$(timeout "$TIMEOUT" "$bm" --model "$d" --prefill "$P" --decode "$D" \
	    --reps "$R" | grep '^RESULT')
	eval "${r#RESULT }"
	printf "| engine %s | %.1f | %.1f | %.2f |\n" "$t" "$weights_mib" \
	    "$prefill_tok_s" "$decode_tok_s"
done
r=$(timeout "$TIMEOUT" "$PYTHON" "$here/torch_infini.py" bench "$dir/100m" \
    --prefill "$P" --decode "$D" --reps "$R" --threads 1 | grep '^RESULT')
eval "${r#RESULT }"
printf "| PyTorch f32 (1 thread) | %.1f | %.1f | %.2f |\n" \
    "$(awk -v n="$params" 'BEGIN { print n * 4 / 1048576 }')" \
    "$prefill_tok_s" "$decode_tok_s"
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
