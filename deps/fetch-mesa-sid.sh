#!/usr/bin/env bash
# Prepares a private Debian unstable (sid) runtime with Mesa's newest
# lavapipe, the Khronos validation layer and glslang, for the kernels that
# need VK_KHR_cooperative_matrix (docs/kernels.md).
#
# Why sid: lavapipe gained VK_KHR_cooperative_matrix after Mesa 25.0, and
# 25.0.7 is the newest Mesa in bookworm-backports and in trixie (checked:
# neither lists any cooperative-matrix extension).  Debian 12's glslang
# (12) cannot compile GL_KHR_cooperative_matrix and its validation layer
# (1.3.239) predates the extension.  Sid has all three.
#
# Sid's binaries need sid's C library, so nothing is installed into the
# system: the packages (mesa-vulkan-drivers, vulkan-validationlayers,
# glslang-tools, libvulkan1 and everything they depend on, as apt resolves
# it against an empty package database) are downloaded through apt with a
# private state directory (deps/apt-private.sh) and unpacked under
# PREFIX/root.  PREFIX/run starts a program with sid's dynamic loader and
# libraries, that lavapipe and that validation layer:
#
#     PREFIX/run build/tests/t_matmul.t
#
# A program so started uses sid's C library; infinid's own binaries, built
# on Debian 12, run on it as on any newer glibc.  Programs they start do
# not inherit it, so only tests that keep the device in their own process
# run this way (tools/test.sh).  PREFIX/bin/glslangValidator and
# PREFIX/bin/spirv-val are sid's glslang and SPIRV-Tools the same way; the
# shader build uses them for the cooperative-matrix variants
# (shaders/CMakeLists.txt).
#
# Usage: deps/fetch-mesa-sid.sh [PREFIX]   (root; idempotent; run by
# tools/setup-debian.sh; default PREFIX /opt/infinid-mesa-sid).
set -euo pipefail
trap 'echo "fetch-mesa-sid: failed at line $LINENO" >&2' ERR
prefix=${1:-/opt/infinid-mesa-sid}
pkgs=(mesa-vulkan-drivers vulkan-validationlayers glslang-tools libvulkan1)

if [ -x "$prefix/run" ] && [ -x "$prefix/bin/glslangValidator" ] &&
	[ -x "$prefix/bin/spirv-val" ] &&
	[ -r "$prefix/VERSION" ]; then
	echo "fetch-mesa-sid: $prefix already holds Mesa $(cat "$prefix/VERSION")"
	exit 0
fi
# shellcheck source=deps/apt-private.sh
. "$(dirname "$0")/apt-private.sh"
apt_private_begin sid
: >"$work/status"
aptopts+=(-o "Dir::State::status=$work/status" -o APT::Install-Recommends=false)
echo "fetch-mesa-sid: reading the sid package index"
apt-get "${aptopts[@]}" -qq update
# Everything the packages need, resolved as if nothing were installed.
mapfile -t all < <(apt-get "${aptopts[@]}" -s install "${pkgs[@]}" |
	awk '/^Inst /{print $2}')
(cd "$work/debs" && apt-get "${aptopts[@]}" -qq download "${all[@]}")

stage=$prefix.new
rm -rf "$stage"
mkdir -p "$stage/root" "$stage/bin"
for d in "$work"/debs/*.deb; do
	dpkg-deb -x "$d" "$stage/root"
done
rm -rf "$stage/root/usr/share/man" "$stage/root/usr/share/locale" \
	"$stage/root/usr/share/info"
libs=$prefix/root/usr/lib/$multiarch:$prefix/root/lib/$multiarch
ldso=$prefix/root/usr/lib64/ld-linux-x86-64.so.2
[ -e "$stage/root/usr/lib64/ld-linux-x86-64.so.2" ]
# The driver manifest names lavapipe by absolute path.
sed "s|\"library_path\": *\"[^\"]*\"|\"library_path\": \"$prefix/root/usr/lib/$multiarch/libvulkan_lvp.so\"|" \
	"$stage/root/usr/share/vulkan/icd.d/lvp_icd.json" >"$stage/lvp_icd.json"
cat >"$stage/run" <<SH
#!/bin/sh
# Runs a program on sid's C library, Vulkan loader, lavapipe and validation
# layer (deps/fetch-mesa-sid.sh).
VK_DRIVER_FILES=$prefix/lvp_icd.json
VK_LAYER_PATH=$prefix/root/usr/share/vulkan/explicit_layer.d
export VK_DRIVER_FILES VK_LAYER_PATH
unset VK_ICD_FILENAMES
exec $ldso --library-path $libs "\$@"
SH
for tool in glslangValidator spirv-val; do
	cat >"$stage/bin/$tool" <<SH
#!/bin/sh
# sid's $tool (deps/fetch-mesa-sid.sh)
exec $ldso --library-path $libs $prefix/root/usr/bin/$tool "\$@"
SH
	chmod +x "$stage/bin/$tool"
done
chmod +x "$stage/run"
dpkg-deb -f "$work"/debs/mesa-vulkan-drivers_*.deb Version >"$stage/VERSION"
rm -rf "$prefix"
mv "$stage" "$prefix"
"$prefix/bin/glslangValidator" --version | head -n 1 | sed 's/^/fetch-mesa-sid: /'
echo "fetch-mesa-sid: Mesa $(cat "$prefix/VERSION") in $prefix ($prefix/run PROGRAM)"
