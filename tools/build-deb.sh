#!/usr/bin/env bash
# Builds the Debian packages (debian/: infinid, infini-client, libinfini0,
# libinfini-dev and their -dbgsym) out of tree and checks them with lintian.
#
# The working tree (tracked files and untracked ones git does not ignore,
# as they are now) is copied to a temporary directory, built there with
# `dpkg-buildpackage -us -uc -b`, and the .deb, .buildinfo and .changes
# files land in OUTDIR (default build-deb/), with lintian's report in
# OUTDIR/lintian.txt.  Fails when the build fails or lintian reports any
# error or warning (overrides with their reasons: debian/*.lintian-overrides).
#
# Usage: tools/build-deb.sh [OUTDIR]
# Needs debhelper, dpkg-dev and lintian (tools/setup-debian.sh), and NNG
# >= 1.10 (deps/fetch-nng.sh on Debian 12).  Installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build-deb}
mkdir -p "$out"
out=$(cd "$out" && pwd)

for tool in dpkg-buildpackage dh lintian; do
	if ! command -v "$tool" >/dev/null; then
		echo "build-deb: $tool is missing (tools/setup-debian.sh installs it)" >&2
		exit 1
	fi
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
version=$(dpkg-parsechangelog -S Version)
tree=$work/infinid-$version
mkdir -p "$tree"
# What `git status` would show, not only what is committed; outside a git
# checkout, everything but build trees.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do
			[ -e "$f" ] && printf '%s\0' "$f"
		done | tar -cf - --null -T - | tar -xf - -C "$tree"
else
	tar -cf - --exclude='./build*' --exclude=./.git . | tar -xf - -C "$tree"
fi

echo "build-deb: dpkg-buildpackage in $tree (log: $out/build.log)"
if ! (cd "$tree" &&
	DEB_BUILD_OPTIONS="parallel=$(nproc) ${DEB_BUILD_OPTIONS:-}" \
		dpkg-buildpackage -us -uc -b) >"$out/build.log" 2>&1; then
	tail -n 40 "$out/build.log"
	echo "build-deb: dpkg-buildpackage failed (see $out/build.log)" >&2
	exit 1
fi
rm -f "$out"/*.deb "$out"/*.ddeb "$out"/*.buildinfo "$out"/*.changes
cp "$work"/*.deb "$work"/*.buildinfo "$work"/*.changes "$out"/
shopt -s nullglob
ddebs=("$work"/*.ddeb)
[ ${#ddebs[@]} -eq 0 ] || cp "${ddebs[@]}" "$out"/

# Every package, the -dbgsym ones included, through the .changes file.
echo "build-deb: lintian"
status=0
lintian --fail-on error,warning --display-info --pedantic \
	"$out"/*.changes >"$out/lintian.txt" 2>&1 || status=$?
cat "$out/lintian.txt"
if [ "$status" != 0 ]; then
	echo "build-deb: lintian reports errors or warnings" >&2
	exit 1
fi
for deb in "$out"/*.deb; do
	echo "build-deb: $(basename "$deb") $(du -k "$deb" | cut -f1) KiB"
done
echo "build-deb: packages in $out"
