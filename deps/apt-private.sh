# deps/apt-private.sh - sourced by the deps/fetch-*.sh scripts: apt with a
# private state directory, so that packages of another Debian suite can be
# downloaded (and checked against the archive's signed index) without
# touching the machine's own sources, package lists or installed packages.
#
# apt_private_begin SUITE...: makes a temporary directory $work (removed at
# exit) with a debs/ folder for downloads, sets $multiarch, and runs
# apt_private_init "$work" SUITE....
#
# apt_private_init WORK SUITE...: writes a sources list for SUITE... on the
# mirror the machine already uses for Debian, and sets the array aptopts for
# `apt-get "${aptopts[@]}" ...` with all state under WORK.  Returns 1 (with
# a message) when no mirror is configured.  The indexes' signatures are
# checked; their Valid-Until date is not: sid's and backports' Release files
# expire within days, and a mirror that is a dated snapshot of the archive
# (as the package registries of build farms often are) would otherwise be
# refused for sid once the snapshot is a week old.

# apt_private_mirror prints the machine's Debian mirror.
apt_private_mirror() {
	local mirror
	mirror=$(sed -n 's/^URIs:[[:space:]]*//p' \
		/etc/apt/sources.list.d/debian.sources 2>/dev/null |
		awk '$1 !~ /security/ {print $1; exit}' || true)
	if [ -z "$mirror" ]; then
		mirror=$(awk '$1 == "deb" && $0 !~ /security/ {
			for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
			/etc/apt/sources.list 2>/dev/null || true)
	fi
	[ -n "$mirror" ] || return 1
	echo "$mirror"
}

apt_private_init() {
	local work=$1 mirror suite
	shift
	if ! mirror=$(apt_private_mirror); then
		echo "no Debian mirror found in /etc/apt/sources.list{,.d/debian.sources}" >&2
		return 1
	fi
	local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
	local arch
	arch=$(dpkg --print-architecture)
	mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/parts"
	: >"$work/sources.list"
	for suite in "$@"; do
		echo "deb [arch=$arch signed-by=$keyring] $mirror $suite main" \
			>>"$work/sources.list"
	done
	aptopts=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=$work/parts"
		-o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
		-o "Dir::Etc::Preferences=/dev/null" -o "Dir::Etc::PreferencesParts=$work/parts"
		-o "APT::Get::List-Cleanup=false" -o "Debug::NoLocking=true"
		-o "APT::Sandbox::User=root"
		-o "Acquire::Check-Valid-Until=false")
}

apt_private_begin() {
	multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null ||
		gcc -print-multiarch)
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	mkdir -p "$work/debs"
	apt_private_init "$work" "$@"
}
