#!/usr/bin/env bash
# Prepares NNG >= 1.10 for building infinid on Debian 12, whose own libnng
# (1.5.2) has listener and close bugs that reach users (docs/platform.md).
#
# Debian 13 (trixie) packages NNG 1.10.  This script takes its static
# archive from trixie's libnng-dev, and the mbedTLS archives it needs from
# trixie's libmbedtls-dev, through apt with a private state directory: the
# machine's own package lists and installed packages are left alone, and
# apt checks every file against the archive's signed index.  Nothing from
# trixie is installed into the system; the archives are unpacked under
# PREFIX (default /usr/local/lib/infinid-deps/nng) and linked statically
# into infinid and libinfini (deps/CMakeLists.txt).
#
# Two adjustments make trixie's archive link on Debian 12:
# - its objects were compiled as position-independent executables, whose
#   direct references to glibc's stdout and stderr cannot go into a shared
#   library; they are renamed to variables that deps/nng_compat.c defines;
# - three functions it calls first appeared in glibc 2.38; deps/nng_compat.c
#   provides them when the C library lacks them.
#
# Usage: deps/fetch-nng.sh [PREFIX]   (root; idempotent; run by
# tools/setup-debian.sh).  Does nothing where the system's NNG is >= 1.10.
set -euo pipefail
trap 'echo "fetch-nng: failed at line $LINENO" >&2' ERR
prefix=${1:-/usr/local/lib/infinid-deps/nng}
want_major=1 want_minor=10

# nng_version_ok HEADER: true when HEADER declares NNG >= 1.10.
nng_version_ok() {
	local h=$1 major minor
	[ -r "$h" ] || return 1
	major=$(awk '/#define NNG_MAJOR_VERSION/{print $3}' "$h")
	minor=$(awk '/#define NNG_MINOR_VERSION/{print $3}' "$h")
	[ -n "$major" ] && [ -n "$minor" ] || return 1
	[ "$major" -gt "$want_major" ] ||
		{ [ "$major" -eq "$want_major" ] && [ "$minor" -ge "$want_minor" ]; }
}

if nng_version_ok /usr/include/nng/nng.h; then
	echo "fetch-nng: the system's NNG is recent enough; nothing to do"
	exit 0
fi
if nng_version_ok "$prefix/include/nng/nng.h" && [ -r "$prefix/lib/libnng.a" ] &&
	[ -r "$prefix/lib/libmbedcrypto.a" ]; then
	echo "fetch-nng: $prefix already holds NNG $(cat "$prefix/VERSION")"
	exit 0
fi

# shellcheck source=deps/apt-private.sh
. "$(dirname "$0")/apt-private.sh"
apt_private_begin trixie
echo "fetch-nng: reading the trixie package index"
apt-get "${aptopts[@]}" -qq update
(cd "$work/debs" && apt-get "${aptopts[@]}" -qq download libnng-dev libmbedtls-dev)
for deb in "$work"/debs/*.deb; do
	dpkg-deb -x "$deb" "$work/root"
done
version=$(dpkg-deb -f "$work"/debs/libnng-dev_*.deb Version)
src=$work/root/usr
if ! nng_version_ok "$src/include/nng/nng.h"; then
	echo "fetch-nng: trixie's libnng-dev $version is older than $want_major.$want_minor" >&2
	exit 1
fi

stage=$prefix.new
rm -rf "$stage"
mkdir -p "$stage/lib"
mkdir -p "$stage/include"
cp -a "$src/include/nng" "$stage/include/"
for a in libnng libmbedtls libmbedx509 libmbedcrypto; do
	cp "$src/lib/$multiarch/$a.a" "$stage/lib/"
done
objcopy --redefine-sym stdout=nng_compat_stdout \
	--redefine-sym stderr=nng_compat_stderr "$stage/lib/libnng.a"
mkdir -p "$stage/share"
for pkg in libnng-dev libmbedtls-dev; do
	cp "$src/share/doc/$pkg/copyright" "$stage/share/$pkg.copyright"
done
echo "$version" >"$stage/VERSION"
rm -rf "$prefix"
mv "$stage" "$prefix"
echo "fetch-nng: NNG $version (static) in $prefix"
