#!/usr/bin/env bash
# Installs the Debian packages in DEBDIR, runs the daemon as its unit would,
# and purges them again, checking that nothing they created is left.
#
# THIS CHANGES THE SYSTEM IT RUNS ON: run it as root on a throwaway system,
# such as the Debian 12 root of tools/fresh-root.sh -p.  It refuses to run
# where infinid is already installed, and outside a chroot unless
# INFINI_CHECK_DEB_ANYWAY=1 (a disposable VM or container).
#
# Steps (each prints "ok N - ..." or "not ok N - ..."):
#  1. apt installs infinid, infini-client, libinfini0 and libinfini-dev from
#     DEBDIR; the infinid account exists, the unit is enabled, the settings
#     file is a conffile, `systemd-analyze verify` accepts the unit.
#  2. The daemon starts the way the unit would (systemd is not PID 1 in a
#     chroot): the unit's ExecStart= as its User= and Group= with its
#     SupplementaryGroups=, UMask= and Environment=, after making its
#     RuntimeDirectory=, StateDirectory= and CacheDirectory= as systemd does.
#     `infini status` answers through the default socket, a stream is fed
#     and saved, and infini-run finds the installed model from /.
#  3. SIGTERM stops it with status 0, and apt remove keeps the settings and
#     the state; apt purge removes every package and everything they made:
#     /etc/infinid, /var/lib/infinid, /var/cache/infinid, /run/infinid,
#     /usr/share/infinid, the unit and its enablement link.
#
# Usage: tools/check-deb.sh DEBDIR
#
# The checks' `bash -c '...'` strings expand in the child, on purpose:
# shellcheck disable=SC2016
set -euo pipefail
if [ $# -ne 1 ] || [ ! -d "$1" ]; then
	echo "usage: tools/check-deb.sh DEBDIR   (root, on a throwaway system)" >&2
	exit 2
fi
debdir=$(cd "$1" && pwd)
if [ "$(id -u)" -ne 0 ]; then
	echo "check-deb: run as root: it installs and purges packages" >&2
	exit 2
fi
if ! ischroot && [ "${INFINI_CHECK_DEB_ANYWAY:-0}" != 1 ]; then
	echo "check-deb: not in a chroot; this installs and purges infinid." >&2
	echo "check-deb: set INFINI_CHECK_DEB_ANYWAY=1 on a disposable system." >&2
	exit 2
fi
if dpkg-query -W -f '${Status}\n' infinid 2>/dev/null | grep -q ' installed$'; then
	echo "check-deb: infinid is installed here already; not touching it" >&2
	exit 2
fi
pkgs=(infinid infini-client libinfini0 libinfini-dev)
debs=()
for p in "${pkgs[@]}"; do
	found=("$debdir/${p}"_*.deb)
	if [ ! -f "${found[0]}" ]; then
		echo "check-deb: no ${p}_*.deb in $debdir" >&2
		exit 2
	fi
	debs+=("${found[0]}")
done

n=0 failed=0
# check DESCRIPTION COMMAND...: one TAP-style line for COMMAND's status.
check() {
	local what=$1
	shift
	n=$((n + 1))
	if "$@"; then
		echo "ok $n - $what"
	else
		echo "not ok $n - $what"
		failed=$((failed + 1))
	fi
}
# unit_key KEY: the value of KEY= in the installed unit (the last one).
unit=/lib/systemd/system/infinid.service
unit_key() { sed -n "s/^$1=//p" "$unit" | tail -n 1; }
absent() {
	local p left=0
	for p in "$@"; do
		if [ -e "$p" ] || [ -L "$p" ]; then
			echo "# left behind: $p"
			left=1
		fi
	done
	return "$left"
}

export DEBIAN_FRONTEND=noninteractive
# ---- 1. install
echo "check-deb: installing ${debs[*]##*/}"
apt-get install -y -qq --no-install-recommends "${debs[@]}" >/tmp/check-deb-apt.log 2>&1 ||
	{ tail -n 30 /tmp/check-deb-apt.log; exit 1; }
installed() {
	local p
	for p in "${pkgs[@]}"; do
		dpkg-query -W -f '${Status}\n' "$p" | grep -q ' ok installed$' || return 1
	done
}
check "the four packages are installed" installed
check "sysusers made the infinid account and group" \
	bash -c 'getent passwd infinid >/dev/null && getent group infinid >/dev/null'
wants=/etc/systemd/system/multi-user.target.wants/infinid.service
check "the unit is installed and enabled (multi-user.target.wants)" \
	bash -c "[ -f '$unit' ] && [ -L '$wants' ]"
check "/etc/infinid/infinid.conf is a conffile" \
	bash -c 'dpkg-query -W -f "\${Conffiles}\n" infinid | grep -q "^ /etc/infinid/infinid.conf "'
if command -v systemd-analyze >/dev/null; then
	# Its exit status misses unknown keys: what it prints is what counts.
	# It checks Documentation= by running man, which a minimal root lacks.
	verify=$(systemd-analyze verify "$unit" 2>&1 |
		if command -v man >/dev/null; then cat; else grep -v "Command 'man "; fi) || true
	check "systemd-analyze verify accepts the unit" [ -z "$verify" ]
	[ -z "$verify" ] || printf '# %s\n' "$verify"
fi

# ---- 2. the daemon as the unit runs it
user=$(unit_key User) group=$(unit_key Group)
extra=$(unit_key SupplementaryGroups) umask_=$(unit_key UMask)
exec_start=$(unit_key ExecStart)
groups=$group${extra:+,$extra}
for d in RuntimeDirectory:/run StateDirectory:/var/lib CacheDirectory:/var/cache; do
	key=${d%%:*} base=${d#*:}
	name=$(unit_key "$key") mode=$(unit_key "${key}Mode")
	install -d -o "$user" -g "$group" -m "${mode:-0755}" "$base/$name"
done
# Environment= lines, with %C (the cache root) expanded.
env_args=()
while IFS= read -r e; do
	env_args+=("${e//%C//var/cache}")
done < <(sed -n 's/^Environment=//p' "$unit")
log=$(mktemp)
echo "check-deb: starting $exec_start as $user:$groups (umask $umask_)"
(
	umask "$umask_"
	cd /
	# ExecStart= is split into words as systemd would.
	# shellcheck disable=SC2086
	exec setpriv --reuid="$user" --regid="$group" --groups="$groups" \
		--inh-caps=-all --no-new-privs \
		env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "${env_args[@]}" \
		$exec_start
) >"$log" 2>&1 &
pid=$!
up=0
for _ in $(seq 1 120); do
	if infini status >/dev/null 2>&1; then
		up=1
		break
	fi
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.5
done
check "infini status answers through the default socket" [ "$up" = 1 ]
[ "$up" = 1 ] || sed 's/^/# infinid: /' "$log"
check "the socket is the infinid group's, mode 0660" \
	bash -c '[ "$(stat -c %G:%a /run/infinid/infinid.sock)" = infinid:660 ]'
check "a stream is opened and fed" \
	bash -c 'infini open pkgcheck >/dev/null && infini push pkgcheck --text "In the beginning" >/dev/null'
check "infini-run finds the installed model from /" \
	bash -c 'cd / && env -u INFINI_MODEL infini-run --text "In the beginning" --generate 4 >/dev/null'
kill -TERM "$pid" 2>/dev/null || true
status=0
wait "$pid" || status=$?
check "SIGTERM stops infinid with status 0" [ "$status" = 0 ]
check "the stream was saved under /var/lib/infinid" \
	bash -c '[ -n "$(find /var/lib/infinid -type f 2>/dev/null)" ]'
rm -f "$log"
# systemd removes the RuntimeDirectory= when the service stops.
rm -rf "/run/$(unit_key RuntimeDirectory)"

# ---- 3. remove, then purge
apt-get remove -y -qq infinid >/tmp/check-deb-apt.log 2>&1 ||
	{ tail -n 30 /tmp/check-deb-apt.log; exit 1; }
check "apt remove keeps the settings and the state" \
	bash -c '[ -f /etc/infinid/infinid.conf ] && [ -d /var/lib/infinid ]'
apt-get purge -y -qq "${pkgs[@]}" >/tmp/check-deb-apt.log 2>&1 ||
	{ tail -n 30 /tmp/check-deb-apt.log; exit 1; }
# dpkg-query lists a purged package it still knows as "not-installed".
check "apt purge leaves no package behind (not even config-files)" \
	bash -c "! dpkg-query -W -f '\${Package} \${Status}\n' ${pkgs[*]} 2>/dev/null |
		grep -v ' not-installed\$' | grep -q ."
check "apt purge leaves nothing the packages made" absent \
	/etc/infinid /var/lib/infinid /var/cache/infinid /run/infinid \
	/usr/share/infinid /usr/share/doc/infinid /usr/sbin/infinid \
	/usr/bin/infini /usr/bin/infini-run "$unit" \
	"$wants" /usr/lib/sysusers.d/infinid.conf /usr/include/infini.h
rm -f /tmp/check-deb-apt.log

echo "1..$n"
if [ "$failed" != 0 ]; then
	echo "check-deb: $failed of $n checks failed" >&2
	exit 1
fi
echo "check-deb: all $n checks passed"
