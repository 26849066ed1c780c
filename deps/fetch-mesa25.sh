#!/usr/bin/env bash
# Puts Mesa 25's lavapipe next to Debian 12's own (Mesa 22.3), for the test
# pass that runs the suite on both (tools/test.sh).
#
# bookworm-backports has mesa-vulkan-drivers 25.0.7, built against Debian
# 12's libllvm15.  Installing it would replace the system's Mesa for every
# user of the machine, so this script only downloads it, through apt with a
# private state directory (deps/apt-private.sh: the machine's sources, lists
# and packages are left alone; apt checks every file against the signed
# index), and unpacks its lavapipe under PREFIX with an ICD manifest that
# names it by absolute path.  Every dependency whose Debian 12 version is
# older than the driver asks for (libdrm2 and libdrm-amdgpu1: >= 2.4.121)
# is unpacked next to it, in PREFIX/lib, for LD_LIBRARY_PATH.
#
# Use:  VK_DRIVER_FILES=PREFIX/lvp_icd.json LD_LIBRARY_PATH=PREFIX/lib ...
# Usage: deps/fetch-mesa25.sh [PREFIX]   (root; idempotent; run by
# tools/setup-debian.sh; default PREFIX /opt/infinid-mesa25).
set -euo pipefail
trap 'echo "fetch-mesa25: failed at line $LINENO" >&2' ERR
prefix=${1:-/opt/infinid-mesa25}
suite=bookworm-backports
pkg=mesa-vulkan-drivers

if [ -r "$prefix/lvp_icd.json" ] && [ -r "$prefix/lib/libvulkan_lvp.so" ] &&
	[ -r "$prefix/VERSION" ]; then
	echo "fetch-mesa25: $prefix already holds lavapipe $(cat "$prefix/VERSION")"
	exit 0
fi
# shellcheck source=deps/apt-private.sh
. "$(dirname "$0")/apt-private.sh"
apt_private_begin "$suite"
echo "fetch-mesa25: reading the $suite package index"
apt-get "${aptopts[@]}" -qq update
(cd "$work/debs" && apt-get "${aptopts[@]}" -qq download "$pkg/$suite")
deb=$(ls "$work"/debs/${pkg}_*.deb)
version=$(dpkg-deb -f "$deb" Version)

# Dependencies with a version the system does not meet come from the suite
# too (alternatives "a | b" carry no version in this package).
need=()
while read -r dep; do
	name=${dep%% *}
	[[ $dep == *"(>="* ]] || continue
	want=$(sed -n 's/.*(>= *\([^)]*\)).*/\1/p' <<<"$dep")
	have=$(dpkg-query -W -f='${Version}' "$name" 2>/dev/null || true)
	if [ -z "$have" ] || ! dpkg --compare-versions "$have" ge "$want"; then
		need+=("$name/$suite")
	fi
done < <(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/^ *//' | grep -v '|')
if [ "${#need[@]}" -gt 0 ]; then
	(cd "$work/debs" && apt-get "${aptopts[@]}" -qq download "${need[@]}")
fi
for d in "$work"/debs/*.deb; do
	dpkg-deb -x "$d" "$work/root"
done

stage=$prefix.new
rm -rf "$stage"
mkdir -p "$stage/lib" "$stage/share"
src=$work/root/usr/lib/$multiarch
cp -a "$src/libvulkan_lvp.so" "$stage/lib/"
for d in "$work"/debs/*.deb; do
	name=$(dpkg-deb -f "$d" Package)
	[ "$name" = "$pkg" ] && continue
	# the shared libraries of a newer dependency, links included
	dpkg-deb -c "$d" | awk '{print $6}' | sed -n "s|^\./usr/lib/$multiarch/||p" |
		grep '\.so' | while read -r f; do cp -a "$src/$f" "$stage/lib/"; done
	cp "$work/root/usr/share/doc/$name/copyright" "$stage/share/$name.copyright"
done
cp "$work/root/usr/share/doc/$pkg/copyright" "$stage/share/$pkg.copyright"
api=$(sed -n 's/.*"api_version": *"\([^"]*\)".*/\1/p' \
	"$work/root/usr/share/vulkan/icd.d/lvp_icd.json" | head -n 1)
cat >"$stage/lvp_icd.json" <<JSON
{
    "file_format_version": "1.0.0",
    "ICD": {
        "library_path": "$prefix/lib/libvulkan_lvp.so",
        "api_version": "$api"
    }
}
JSON
echo "$version" >"$stage/VERSION"
rm -rf "$prefix"
mv "$stage" "$prefix"
echo "fetch-mesa25: lavapipe $version in $prefix (VK_DRIVER_FILES=$prefix/lvp_icd.json LD_LIBRARY_PATH=$prefix/lib)"
