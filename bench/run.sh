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
# logits; medians.  PyTorch runs fp32 under torch.inference_mode, once per
# thread count in TORCH_THREADS (default "1 <cores>"; lavapipe uses all cores);
# the table shows torch's best per column with its thread count ("2t"): on
# this 2-vCPU VM libgomp's 2-thread runs were often slower than 1 thread, and
# quoting only those would flatter the engine.
#
# With --streams, a second table: aggregate decode tok/s on the ~100M model
# for STREAMS (default "1 8 32 128") streams decoding together, the engine
# batching them into one call per step and PyTorch running them as one
# tensor [S, 1] (same weights, same tokens, same run).
#
# Usage: bench/run.sh [--quick] [--no-matmul] [--keep] [--streams]
#   --quick      tiny P/D/reps: checks the harness in about a minute
#   --no-matmul  skip bench-matmul
#   --keep       keep the generated models (their dir is printed)
#   --streams    add the batched-decode table
# Environment: BUILD (default <repo>/build), PYTHON (default /usr/bin/python3),
#   P_SMALL D_SMALL R_SMALL P_100M D_100M R_100M (512 32 3 / 512 32 1),
#   TIMEOUT per benchmark process in seconds (300), TORCH_THREADS (a list),
#   BENCH_DIR,
#   MATMUL_REPS (bench-matmul's repetitions, 1), INFINI_DEVICE (Vulkan device
#   for the engine), GEN_DTYPE (the models' weights: f32), TORCH_ARGS (more
#   torch_infini.py bench arguments, e.g. "--device cuda --dtype bf16"),
#   GEMMA=1 (a third row: a random model in Gemma-2B shapes, bf16, P 512,
#   D 16, one repetition; 5 GB on disk), STREAMS, P_BATCH D_BATCH (16 8: prompt and decode steps
#   per stream in the batched table), ONLY_STREAMS=1 (the batched table
#   alone).
# Other processes on the machine skew both sides: the CPU use just before the
# run and the load average are printed, so a noisy run can be recognised.
set -u -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
BUILD=${BUILD:-$root/build}
PYTHON=${PYTHON:-/usr/bin/python3}
TIMEOUT=${TIMEOUT:-300}
ncpu=$(nproc)
TORCH_THREADS=${TORCH_THREADS:-$( [ "$ncpu" = 1 ] && echo 1 || echo "1 $ncpu")}
P_SMALL=${P_SMALL:-512} D_SMALL=${D_SMALL:-32} R_SMALL=${R_SMALL:-3}
P_100M=${P_100M:-512} D_100M=${D_100M:-32} R_100M=${R_100M:-1}
MATMUL_REPS=${MATMUL_REPS:-1}
STREAMS=${STREAMS:-1 8 32 128} P_BATCH=${P_BATCH:-16} D_BATCH=${D_BATCH:-8}
GEN_DTYPE=${GEN_DTYPE:-f32} TORCH_ARGS=${TORCH_ARGS:-}
matmul=1 keep=0 streams=0

for a in "$@"; do
	case $a in
	--quick) P_SMALL=128 D_SMALL=8 R_SMALL=1 P_100M=64 D_100M=4 R_100M=1 ;;
	--no-matmul) matmul=0 ;;
	--keep) keep=1 ;;
	--streams) streams=1 ;;
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

# torch_best DIR P D R S runs torch_infini.py bench once per thread count and
# keeps the best prefill and decode tok/s with their thread counts in tp, td,
# tpt, tdt (tparams: parameters; why_t: why nothing came back).
torch_best() {
	local m=$1 P=$2 D=$3 R=$4 S=$5 out rc tres th v
	tp="" td="" tpt="" tdt="" tparams="" why_t=""
	for th in $TORCH_THREADS; do
		out=$(timeout "$TIMEOUT" "$PYTHON" "$here/torch_infini.py" bench \
		    "$m" --prefill "$P" --decode "$D" --reps "$R" --streams "$S" \
		    --threads "$th" $TORCH_ARGS 2>&1)
		rc=$?
		echo "$out" | grep -v '^RESULT' >&2
		tres=$(grep '^RESULT' <<<"$out")
		if [ -z "$tres" ]; then
			why_t=$([ $rc = 124 ] && echo "timeout ${TIMEOUT}s" ||
			    echo "failed ($rc)")
			continue
		fi
		tparams=$(field params "$tres")
		v=$(field prefill_tok_s "$tres")
		if [ -z "$tp" ] || awk -v a="$v" -v b="$tp" 'BEGIN { exit !(a > b) }'
		then tp=$v tpt=$th; fi
		v=$(field decode_tok_s "$tres")
		if [ -z "$td" ] || awk -v a="$v" -v b="$td" 'BEGIN { exit !(a > b) }'
		then td=$v tdt=$th; fi
	done
}

# engine_run DIR P D R S runs bench-model; eres is its RESULT line, why_e
# why there is none.
engine_run() {
	local m=$1 P=$2 D=$3 R=$4 S=$5 out rc
	out=$(timeout "$TIMEOUT" "$bench" --model "$m" --prefill "$P" \
	    --decode "$D" --reps "$R" --streams "$S" 2>&1)
	rc=$?
	echo "$out" | grep -v '^RESULT' >&2
	eres=$(grep '^RESULT' <<<"$out")
	[ -n "$engdev" ] ||
	    engdev=$(sed -n 's/^| engine \(.*\) ([a-z0-9]*) |.*/\1/p' <<<"$out")
	why_e=$([ $rc = 124 ] && echo "timeout ${TIMEOUT}s" || echo "failed ($rc)")
}

# run_one NAME DIR P D R appends one table row to $rows.
rows="" engdev=""
run_one() {
	local name=$1 m=$2 P=$3 D=$4 R=$5
	echo "== $name: P=$P D=$D reps=$R" >&2
	engine_run "$m" "$P" "$D" "$R" 1
	# torch: best per column over the thread counts, labelled "Nt".
	torch_best "$m" "$P" "$D" "$R" 1

	local params ep ed
	params=$(field params "$eres")
	[ -n "$params" ] || params=$tparams
	ep=$(field prefill_tok_s "$eres") ed=$(field decode_tok_s "$eres")
	rows+="| $name ($(awk -v p="${params:-0}" 'BEGIN { printf "%.1fM", p / 1e6 }')"
	rows+=" params, P=$P D=$D reps=$R)"
	rows+=" | $(fmt "$ep" "$why_e") | $(fmt "$tp" "$why_t")${tpt:+ (${tpt}t)}"
	rows+=" | $(ratio "$ep" "$tp")"
	rows+=" | $(fmt "$ed" "$why_e") | $(fmt "$td" "$why_t")${tdt:+ (${tdt}t)}"
	rows+=" | $(ratio "$ed" "$td") |"
	rows+=$'\n'
}

# run_streams S appends one row of batched decode on the ~100M model to
# $brows: S streams prefilled with P_BATCH tokens each, then D_BATCH steps of
# one token per stream, all S in one engine call / one torch tensor [S, 1].
brows=""
run_streams() {
	local S=$1
	echo "== 100m batched: S=$S P=$P_BATCH D=$D_BATCH" >&2
	engine_run "$dir/100m" "$P_BATCH" "$D_BATCH" 1 "$S"
	torch_best "$dir/100m" "$P_BATCH" "$D_BATCH" 1 "$S"
	local ed
	ed=$(field decode_tok_s "$eres")
	brows+="| $S | $(fmt "$ed" "$why_e") | $(fmt "$td" "$why_t")${tdt:+ (${tdt}t)}"
	brows+=" | $(ratio "$ed" "$td") |"$'\n'
}

echo "== generating models in $dir" >&2
"$gen" --out "$dir/small" --layers 4 --hidden 256 --heads 4 \
    --intermediate 688 --vocab 4096 --segment 128 --dtype "$GEN_DTYPE" >&2 ||
    exit 1
"$gen" --out "$dir/100m" --layers 12 --hidden 768 --heads 12 \
    --intermediate 2048 --vocab 32000 --segment 256 --tie \
    --dtype "$GEN_DTYPE" >&2 || exit 1
if [ "${GEMMA:-0}" = 1 ]; then
	"$gen" --out "$dir/gemma2b" --arch gemma --act gelu_tanh --layers 18 \
	    --hidden 2048 --heads 8 --kv-heads 1 --head-dim 256 \
	    --intermediate 16384 --vocab 256000 --segment 2048 --tie \
	    --dtype bf16 >&2 || exit 1
fi

# cpu_busy prints the percentage of CPU time used over the last second
# (everything but idle and iowait, from /proc/stat).
cpu_busy() {
	local a b
	a=$(head -1 /proc/stat)
	sleep 1
	b=$(head -1 /proc/stat)
	awk -v a="$a" -v b="$b" 'BEGIN {
		n = split(a, x); split(b, y); tot = 0
		for (i = 2; i <= n; i++) tot += y[i] - x[i]
		idle = (y[5] - x[5]) + (y[6] - x[6])
		printf "%d\n", (tot > 0 ? 100 * (tot - idle) / tot : 0) }'
}

busy0=$(cpu_busy)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
busy=$(( busy0 > 20 ))
if [ "$busy" = 1 ]; then
	echo "run.sh: warning: the CPUs were ${busy0}% busy before the run:" \
	    "other processes will skew the numbers" >&2
fi
start=$(date +%s)
if [ "${ONLY_STREAMS:-0}" = 0 ]; then
	run_one small "$dir/small" "$P_SMALL" "$D_SMALL" "$R_SMALL"
	run_one 100m "$dir/100m" "$P_100M" "$D_100M" "$R_100M"
	[ "${GEMMA:-0}" = 1 ] && run_one gemma-2b-shaped "$dir/gemma2b" 512 16 1
fi
if [ "$streams" = 1 ] || [ "${ONLY_STREAMS:-0}" = 1 ]; then
	for S in $STREAMS; do
		run_streams "$S"
	done
fi
load1=$(cut -d' ' -f1-3 /proc/loadavg)

tv=$("$PYTHON" -c 'import torch; print(torch.__version__)')
echo
echo "Engine vs PyTorch $tv (${TORCH_ARGS:-fp32 on the CPU}; best of" \
    "$TORCH_THREADS threads) on $ncpu cores; engine on ${engdev:-?}," \
    "$GEN_DTYPE weights."
echo "CPU ${busy0}% busy just before; load average before: $load0, after:" \
    "$load1; $(( $(date +%s) - start )) s."
[ "$busy" = 1 ] && echo "WARNING: the machine was busy; these numbers are not reliable."
echo "Ratio = engine / torch (above 1: the engine is faster). tokens/s, medians."
if [ -n "$rows" ]; then
	echo
	echo "| model | engine prefill tok/s | torch prefill tok/s | ratio |" \
	    "engine decode tok/s | torch decode tok/s | ratio |"
	echo "|---|---|---|---|---|---|---|"
	printf "%s" "$rows"
fi
if [ -n "$brows" ]; then
	echo
	echo "Batched decode, ~100M model: S streams, $P_BATCH prompt tokens each," \
	    "then $D_BATCH steps of one token per stream; aggregate tok/s, medians."
	echo
	echo "| streams | engine decode tok/s | torch decode tok/s | ratio |"
	echo "|---|---|---|---|"
	printf "%s" "$brows"
fi

if [ "$matmul" = 1 ] && [ -x "$BUILD/bench/bench-matmul" ]; then
	echo
	echo "bench-matmul (GFLOP/s):"
	echo
	timeout "$TIMEOUT" "$BUILD/bench/bench-matmul" "$MATMUL_REPS" 2>&1 |
	    sed 's/^/    /' || echo "    (bench-matmul failed or timed out)"
fi
if [ "$keep" = 1 ]; then
	echo
	echo "models kept in $dir"
fi
