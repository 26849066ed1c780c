#!/usr/bin/env bash
# Runs .ci/run on a Debian 12 system that has nothing installed: a fresh
# root made with debootstrap, entered with chroot.  A missing install step,
# or a test that depends on something this machine happens to have, fails
# here before it reaches CI's fresh machine.
#
# Usage (root): tools/fresh-root.sh [-k] [-p] [ROOT]
#   ROOT  where the root is made (default /var/tmp/infinid-fresh-root; it is
#         removed first, and again at the end unless -k)
#   -k    keep ROOT afterwards (to look at logs, or to run again with -r)
#   -r    reuse an existing ROOT as it is (no debootstrap): faster, but not
#         fresh; for iterating on a failure
#   -p    after .ci/run, build the Debian packages and run tools/check-deb.sh
#         on them inside the root (install, start as the unit would, purge)
#
# The tree tested is a clone of this repository's HEAD (what a push would
# send), not the working tree.  The root gets /proc, /sys, /dev, /dev/pts
# and a /dev/shm of its own; nothing outside it is changed.  Exit status:
# that of .ci/run (or of the package check).
set -euo pipefail
keep=0 reuse=0 pkgs=0
while getopts kpr opt; do
	case $opt in
	k) keep=1 ;;
	r) reuse=1 keep=1 ;;
	p) pkgs=1 ;;
	*) sed -n '2,20p' "$0" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
root=${1:-/var/tmp/infinid-fresh-root}
# The repository: the one this script is in, or $INFINI_REPO (for a copy of
# the script run from elsewhere, so that edits to it cannot reach a run).
top=$(git -C "${INFINI_REPO:-$(dirname "$0")/..}" rev-parse --show-toplevel)
if [ "$(id -u)" -ne 0 ]; then
	echo "fresh-root: run as root (debootstrap, chroot, mount)" >&2
	exit 2
fi
command -v debootstrap >/dev/null || {
	echo "fresh-root: installing debootstrap"
	apt-get install -y -qq debootstrap >/dev/null
}

# The mirror the machine already uses for Debian.
mirror=$(cat /etc/apt/sources.list.d/debian.sources 2>/dev/null |
	sed -n 's/^URIs:[[:space:]]*//p' | awk '$1 !~ /security/ {print $1; exit}' || true)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $0 !~ /security/ {
	for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
	/etc/apt/sources.list 2>/dev/null || true)
[ -n "$mirror" ] || { echo "fresh-root: no Debian mirror configured" >&2; exit 1; }

mounted=()
cleanup() {
	for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
		umount -l "${mounted[$i]}" 2>/dev/null || true
	done
	if [ "$keep" = 0 ]; then
		rm -rf --one-file-system "$root"
	fi
}
trap cleanup EXIT
bind() { mkdir -p "$root$1" && mount "${@:2}" "$root$1" && mounted+=("$root$1"); }

t0=$(date +%s)
fresh=0
if [ "$reuse" = 0 ] || [ ! -x "$root/bin/bash" ]; then
	rm -rf --one-file-system "$root"
	echo "fresh-root: debootstrap bookworm into $root"
	debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.debootstrap.log" 2>&1 || {
		tail -n 20 "$root.debootstrap.log" >&2
		exit 1
	}
	fresh=1
fi
cp /etc/resolv.conf "$root/etc/resolv.conf"
# The machine's own trust in its network: local CAs (an egress proxy's, on
# machines behind one) and npm's settings.  Every machine of this kind has
# them, so a fresh one does too; without them registries fail TLS.
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
	mkdir -p "$root/usr/local/share/ca-certificates"
	cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
	if [ -x "$root/usr/sbin/update-ca-certificates" ]; then
		chroot "$root" update-ca-certificates >/dev/null 2>&1 || true
	fi
fi
for f in /etc/npmrc /root/.npmrc; do
	if [ -f "$f" ]; then
		mkdir -p "$root$(dirname "$f")"
		cp "$f" "$root$f"
	fi
done
bind /proc -t proc proc
bind /sys -t sysfs sys
bind /dev --bind /dev
bind /dev/pts -t devpts devpts
bind /dev/shm -t tmpfs -o size=4g,mode=1777 shm

if [ "$fresh" = 1 ]; then
	# What an installed system has and debootstrap does not write.
	printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
		>"$root/etc/hosts"
	echo infinid-fresh-root >"$root/etc/hostname"
	# Security updates too, as on a real machine.
	sec=${mirror%/debian}/debian-security
	printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s bookworm-security main\n' \
		"$mirror" "$mirror" "$sec" >"$root/etc/apt/sources.list"
	# git and sudo are what a CI machine has before .ci/run starts.
	chroot "$root" apt-get update -qq
	chroot "$root" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends git ca-certificates sudo \
		>/dev/null
fi
rm -rf "$root/work/ci"
mkdir -p "$root/work"
git clone -q "$top" "$root/work/ci"
echo "fresh-root: .ci/run in $root/work/ci (HEAD $(git -C "$top" rev-parse --short HEAD))"
status=0
# The CA variables of the machine's environment pass through, as they do
# to CI; everything else starts empty.
cavars=()
for v in NODE_EXTRA_CA_CERTS SSL_CERT_FILE CURL_CA_BUNDLE REQUESTS_CA_BUNDLE; do
	if [ -n "${!v:-}" ] && [ -e "$root${!v}" ]; then
		cavars+=("$v=${!v}")
	fi
done
chroot "$root" env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	LANG=C.UTF-8 CI=true TERM=dumb "${cavars[@]}" \
	bash -c 'cd /work/ci && bash .ci/run' </dev/null || status=$?
echo "fresh-root: .ci/run exited $status after $(( $(date +%s) - t0 )) s"
if [ "$status" = 0 ] && [ "$pkgs" = 1 ]; then
	chroot "$root" env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		LANG=C.UTF-8 TERM=dumb "${cavars[@]}" \
		bash -c 'cd /work/ci && tools/build-deb.sh /work/debs && tools/check-deb.sh /work/debs' \
		</dev/null || status=$?
	echo "fresh-root: package check exited $status"
fi
exit "$status"
