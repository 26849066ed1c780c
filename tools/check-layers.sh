#!/usr/bin/env bash
# check-layers.sh [ROOT]: fails (exit 1, one line per include) when a source
# file includes a header of a layer above its own.
#
# The layers, lowest first, and what each may include besides itself:
#   api       client/include (infini.h, infini_err.h)   -
#   shaders   shaders/*_pc.h, generated SPIR-V headers   -
#   ids       proto/ids.[ch]: ID and name rules          -
#   gpu       daemon/gpu                                 api shaders
#   engine    daemon/engine                              gpu api shaders
#   tok       daemon/tok                                 api
#   wire      proto (and its generated infini.pb-c.h)    ids api
#   base      daemon/{clock,config,log,npy,notify,pbjson} api
#   snapshot  daemon/snapshot.[ch]                       engine api
#   sst       daemon/store: the state store (a           snapshot engine
#             directory or Redis), leases, members       base ids api
# The daemon's core, one way from the socket down (docs/architecture.md):
#   store     daemon/{state.h,streams,acct,spill,        sst engine gpu tok
#             snapio,cluster}                            base snapshot ids
#                                                        api shaders
#   sched     daemon/scheduler.[ch]                      store and its own
#   rpc       daemon/{rpc,metrics}.[ch]                  sched, store and
#                                                        theirs, wire
#   socket    daemon/{server.c,srv.h,http*}              rpc and below
#   daemon    daemon/{main,service}                      socket and below
#   tools     infini-run, infini-convert                 engine gpu tok wire
#                                                        base snapshot ids api
#   client    libinfini (client/*.c)                     wire ids api
#   cli       client/cli                                 wire ids base api
# So only rpc and above see protobuf: the scheduler and the store finish
# requests with typed results.  Includes with <...> are system headers; a
# quoted name found nowhere in the tree is a generated header (SPIR-V
# blobs, protobuf-c output) and counts as shaders or wire.
# The build runs this (target check_layers); tests/t_layers checks it
# passes here and fails on an upward include.
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root"

layer_of() {   # a path relative to root
	case $1 in
	client/include/*) echo api ;;
	shaders/*) echo shaders ;;
	proto/ids.[ch]) echo ids ;;
	daemon/gpu/*) echo gpu ;;
	daemon/engine/*) echo engine ;;
	daemon/tok/*) echo tok ;;
	proto/*) echo wire ;;
	daemon/clock.[ch] | daemon/config.[ch] | daemon/log.[ch] | \
	daemon/npy.[ch] | daemon/notify.[ch] | daemon/pbjson.[ch]) echo base ;;
	daemon/snapshot.[ch]) echo snapshot ;;
	daemon/infini_run.c | daemon/convert*.[ch]) echo tools ;;
	daemon/store/*) echo sst ;;
	daemon/state.h | daemon/streams.c | daemon/acct.c | daemon/spill.c | \
	daemon/snapio.c | daemon/cluster.c) echo store ;;
	daemon/scheduler.[ch]) echo sched ;;
	daemon/rpc.[ch] | daemon/metrics.[ch]) echo rpc ;;
	daemon/server.c | daemon/srv.h | daemon/http*) echo socket ;;
	daemon/main.c | daemon/service.[ch]) echo daemon ;;
	daemon/*) echo unplaced ;;
	client/cli/*) echo cli ;;
	client/*) echo client ;;
	*) echo other ;;
	esac
}

allowed() {    # layer: the layers it may include
	local low="sst gpu engine tok base snapshot ids api shaders"
	case $1 in
	api | shaders | ids) echo "" ;;
	gpu) echo "api shaders" ;;
	engine) echo "gpu api shaders" ;;
	tok | base) echo "api" ;;
	wire) echo "ids api" ;;
	snapshot) echo "engine api" ;;
	sst) echo "snapshot engine base ids api" ;;
	store) echo "$low" ;;
	sched) echo "store $low" ;;
	rpc) echo "sched store wire $low" ;;
	socket) echo "rpc sched store wire $low" ;;
	daemon) echo "socket rpc sched store wire $low" ;;
	tools) echo "engine gpu tok wire base snapshot ids api shaders" ;;
	client) echo "wire ids api" ;;
	cli) echo "wire ids base api" ;;
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
	if [ "$from" = unplaced ]; then
		echo "$f is in no layer: place it in tools/check-layers.sh"
		bad=1
		continue
	fi
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
			engine | gpu | rpc | socket | daemon | tools | wire | \
			client | cli) continue ;;
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
