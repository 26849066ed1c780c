#!/usr/bin/env bash
# check-layers.sh [ROOT]: fails (exit 1, one line per include) when a source
# file includes a header of a layer above its own.
#
# The layers, lowest first, and what each may include besides itself:
#   api       client/include (infini.h, infini_err.h)   -
#   shaders   shaders/*_pc.h, generated SPIR-V headers   -
#   gpu       daemon/gpu                                 api shaders
#   engine    daemon/engine                              gpu api shaders
#   tok       daemon/tok                                 api
#   wire      proto (and its generated infini.pb-c.h)    api
#   base      daemon/{clock,config,log,npy,notify,pbjson} api
#   snapshot  daemon/snapshot.[ch]                       engine api
#   store     daemon/store (state store: dir, Redis)     snapshot engine
#                                                        base api
#   core      the rest of daemon/ (infinid.h and the     everything above
#             files built on it)                         except tools/clients
#   tools     infini-run, infini-convert                 engine gpu tok wire
#                                                        base snapshot api
#   client    libinfini (client/*.c)                     wire api
#   cli       client/cli                                 wire base api
# Inside core no order is checked yet.  Includes with <...> are system
# headers; a quoted name found nowhere in the tree is a generated header
# (SPIR-V blobs, protobuf-c output) and counts as shaders or wire.
# The build runs this (target check_layers); tests/t_layers checks it
# passes here and fails on an upward include.
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root"

layer_of() {   # a path relative to root
	case $1 in
	client/include/*) echo api ;;
	shaders/*) echo shaders ;;
	daemon/gpu/*) echo gpu ;;
	daemon/engine/*) echo engine ;;
	daemon/tok/*) echo tok ;;
	proto/*) echo wire ;;
	daemon/clock.[ch] | daemon/config.[ch] | daemon/log.[ch] | \
	daemon/npy.[ch] | daemon/notify.[ch] | daemon/pbjson.[ch]) echo base ;;
	daemon/snapshot.[ch]) echo snapshot ;;
	daemon/store/*) echo store ;;
	daemon/infini_run.c | daemon/convert*.[ch]) echo tools ;;
	daemon/*) echo core ;;
	client/cli/*) echo cli ;;
	client/*) echo client ;;
	*) echo other ;;
	esac
}

allowed() {    # layer: the layers it may include
	case $1 in
	api | shaders) echo "" ;;
	gpu) echo "api shaders" ;;
	engine) echo "gpu api shaders" ;;
	tok | wire | base) echo "api" ;;
	snapshot) echo "engine api" ;;
	store) echo "snapshot engine base api" ;;
	core) echo "gpu engine tok wire base snapshot store api shaders" ;;
	tools) echo "engine gpu tok wire base snapshot api shaders" ;;
	client) echo "wire api" ;;
	cli) echo "wire base api" ;;
	*) echo "" ;;
	esac
}

# Every header in the tree, by the names it can be included as: the path
# below daemon/ (gpu/gpu.h), below client/include, proto or shaders, and
# its base name within its own directory.
declare -A hdr
while IFS= read -r h; do
	hdr[$h]=$h
	d=${h%/*}
	b=${h##*/}
	case $h in
	daemon/*) hdr[${h#daemon/}]=$h ;;
	esac
	hdr[$d:$b]=$h
	[ -n "${hdr[*:$b]+x}" ] || hdr[*:$b]=$h
done < <(find daemon client proto shaders -name '*.h' | sort)

bad=0
while IFS= read -r f; do
	from=$(layer_of "$f")
	[ "$from" = other ] && continue
	ok=" $from $(allowed "$from") "
	dir=${f%/*}
	while IFS= read -r inc; do
		name=${inc#*\"}
		name=${name%\"*}
		# The compiler looks beside the file first, then -I paths.
		h=""
		if [ "${name%/*}" = "$name" ]; then
			h=${hdr[$dir:$name]:-}
		elif [ -f "$dir/$name" ]; then
			h=$(realpath -m --relative-to=. "$dir/$name")
		fi
		[ -n "$h" ] || h=${hdr[$name]:-${hdr[*:$name]:-}}
		if [ -z "$h" ]; then
			to=generated
			case $from in
			engine | gpu | core | tools | wire | client | cli) continue ;;
			esac
		else
			to=$(layer_of "$h")
			[ "$to" = other ] && continue
		fi
		case $ok in
		*" $to "*) ;;
		*)
			echo "$f ($from) includes \"$name\" ($to)"
			bad=1
			;;
		esac
	done < <(grep -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" || true)
done < <(find daemon client proto shaders \( -name '*.c' -o -name '*.h' \) | sort)
exit $bad
