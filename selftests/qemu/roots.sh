# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# The lanes' Debian roots (sourced by lib.sh). Every kernel the rig tests
# comes from Debian's archive, and nothing of it is installed into the
# host: each lane's headers, compiler and DKMS live in a root under the
# rig's cache, built with mmdebstrap, and the module is built inside it
# (chroot) with the compiler its kernel was built with. QEMU boots the
# kernel image taken out of the lane's own image package.
#
#   lane     root                              kernel
#   6.1      bookworm                          the newest 6.1.0-N-amd64
#   6.12     trixie                            the newest 6.12.N+deb13-amd64
#   newest   trixie (with trixie-backports)    the newest N.M.K+deb13-amd64
#                                              (ZCDEV_NEWEST=release pins it)
#   debug    trixie                            built from linux-source-N.M of
#                                              the newest lane (debug-kernel.sh)
#
# Layout of $cache (ZCDEV_CACHE, default /var/cache/zcdev):
#   roots/NAME/           a Debian root; roots/NAME.lock serialises apt in it
#   kernels/RELEASE/      vmlinuz of a lane's kernel, out of its package, and
#                         e1000.ko, the driver of the guests' NIC
#   debug-kernel/KEY/     debug kernel trees (bind-mounted into the root)
# `make distclean` removes all of it.

cache=${ZCDEV_CACHE:-/var/cache/zcdev}
roots=$cache/roots

# What every root carries: what kbuild needs for an out-of-tree module and
# for a kernel (the debug lane), and DKMS. The headers packages pull in the
# compiler their kernel was built with (gcc-12 in bookworm, gcc-14 in
# trixie).
root_pkgs=gcc,make,libc6-dev,libelf-dev,bc,bison,flex,libssl-dev,kmod,dwarves
root_pkgs+=,rsync,cpio,xz-utils,perl,python3,dkms,ca-certificates
# pkg.sh builds and checks the Debian packages in each root.
root_pkgs+=,build-essential,debhelper,dh-dkms,lintian
# The io_uring selftest links liburing statically.
root_pkgs+=,liburing-dev
# The tool, the examples and the selftests take libzcdev's flags from
# pkg-config (the Makefile), as the packages' build does (Build-Depends).
root_pkgs+=,pkgconf

# The engines nobody here wrote (issue 22), run in the guest by
# selftests/zcdev/stress_ng_test.sh and trinity_test.sh: Debian's builds,
# dynamically linked, so pack_initramfs (lib.sh) copies each with its
# shared libraries and the loader out of the trixie root. A new trixie
# root gets them with root_pkgs; an older one on demand (root_engines).
engine_pkgs=(stress-ng trinity)
engine_bins=(/usr/bin/stress-ng /usr/bin/trinity)
declare -A root_extra_pkgs=([trixie]=$(IFS=,; echo "${engine_pkgs[*]}"))

# The Debian suites each root is made of: a release's kernels are updated
# through its point releases, -updates and -security (6.1 and 6.12 get
# their newest builds there), the newest series comes from -backports.
declare -A root_suites=(
	[bookworm]="bookworm bookworm-updates bookworm-security"
	[trixie]="trixie trixie-updates trixie-security trixie-backports"
)

declare -A lane_root=([6.1]=bookworm [6.12]=trixie [newest]=trixie [debug]=trixie)

root_mirror=${ZCDEV_MIRROR:-http://deb.debian.org/debian}
root_mirror_security=${ZCDEV_MIRROR_SECURITY:-http://deb.debian.org/debian-security}

# in_root ROOT SRC CMD...: run CMD in ROOT (a root's name under $roots, or
# a path), in a mount namespace of
# its own (so nothing it mounts outlives it or reaches the host) with
# /proc (objtool wants it), /dev, the host's resolv.conf (apt) and, unless
# SRC is "", the directory SRC at /zcdev.
in_root() {
	local r=$1 src=$2
	[[ $r == /* ]] || r=$roots/$r
	shift 2
	[ -z "$src" ] || mkdir -p "$r/zcdev"
	touch "$r/etc/resolv.conf"
	# shellcheck disable=SC2016 # expanded by that sh
	unshare --mount --pid --fork --kill-child -- /bin/sh -ec '
		r=$1 src=$2
		shift 2
		mount -t proc proc "$r/proc"
		mount --rbind /dev "$r/dev"
		mount --bind -o ro /etc/resolv.conf "$r/etc/resolv.conf"
		[ -z "$src" ] || mount --bind "$src" "$r/zcdev"
		exec chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
			HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
	' in_root "$r" "$src" "$@"
}

# ensure_root NAME: make root NAME unless it is there. mmdebstrap writes
# NAME.tmp, which becomes NAME only when complete.
ensure_root() {
	local name=$1 r=$roots/$1 s sources=()
	[ -f "$r/.zcdev-root" ] && return 0
	mkdir -p "$roots"
	(
		exec 8> "$r.lock"
		flock 8
		[ ! -f "$r/.zcdev-root" ] || exit 0
		for s in ${root_suites[$name]}; do
			case $s in
			*-security) sources+=("deb $root_mirror_security $s main") ;;
			*) sources+=("deb $root_mirror $s main") ;;
			esac
		done
		say "root $name: building it with mmdebstrap (${root_suites[$name]}), about a minute"
		rm -rf "$r.tmp" "$r"
		mmdebstrap --quiet --variant=apt --mode=root \
			--include="$root_pkgs${root_extra_pkgs[$name]:+,${root_extra_pkgs[$name]}}" \
			"${root_suites[$name]%% *}" "$r.tmp" "${sources[@]}" > "$roots/$name.log" 2>&1 ||
			{ cat "$roots/$name.log" >&2; exit 1; }
		touch "$r.tmp/.zcdev-root"
		mv "$r.tmp" "$r"
	) || die "root $name: mmdebstrap failed (log: $roots/$name.log)"
}

# root_apt NAME ARGS...: apt-get in root NAME, one at a time per root.
root_apt() {
	local name=$1
	shift
	(
		exec 8> "$roots/$name.lock"
		flock 8
		in_root "$name" "" apt-get -y -qq -o Dpkg::Use-Pty=0 \
			--no-install-recommends "$@"
	)
}

# root_engines: the engines installed in the trixie root (a root made
# before they were in root_extra_pkgs lacks them).
root_engines() {
	local b
	for b in "${engine_bins[@]}"; do
		[ -x "$roots/trixie$b" ] && continue
		say "installing ${engine_pkgs[*]} in root trixie"
		root_apt trixie install "${engine_pkgs[@]}" > /dev/null
		return
	done
}

# engine_tar: a tar stream (on stdout) of the engines' binaries, every
# shared library ldd resolves for them and the dynamic loader, at their
# paths in the trixie root, symbolic links followed inside the root.
engine_tar() {
	# shellcheck disable=SC2016 # expanded by the root's sh
	in_root trixie "" sh -ec '
		for b in "$@"; do
			echo "$b"
			ldd "$b" | sed -n -e "s|.* => \(/[^ ]*\) .*|\1|p" \
				-e "s|^[[:space:]]*\(/[^ ]*\) .*|\1|p"
		done | sort -u | sed "s|^/||" | tar -c -h -C / -f - -T -
	' engine_tar "${engine_bins[@]}"
}

# The package lists of a root are refreshed once per run, so that "newest"
# means newest when the run starts. A failed refresh (no network) leaves
# the lists as they were, and the kernels already installed still serve.
declare -A root_updated
root_update() {
	[ -z "${root_updated[$1]:-}" ] || return 0
	root_updated[$1]=1
	root_apt "$1" update > /dev/null 2>&1 ||
		say "root $1: apt-get update failed; using the package lists it has"
}

# lane_pattern LANE: an extended regexp for the lane's kernel releases.
lane_pattern() {
	case $1 in
	6.1) echo '6\.1\.0-[0-9]+-amd64' ;;
	6.12) echo '6\.12\.[0-9]+\+deb13-amd64' ;;
	newest | debug) echo '[0-9]+\.[0-9]+\.[0-9]+\+deb13-amd64' ;;
	*) return 1 ;;
	esac
}

# lane_release LANE: the kernel release the lane tests, the newest whose
# headers the root's archive offers.
lane_release() {
	local lane=$1 root=${lane_root[$1]}
	if [ "$lane" = newest ] || [ "$lane" = debug ]; then
		if [ -n "${ZCDEV_NEWEST:-}" ]; then
			echo "$ZCDEV_NEWEST"
			return
		fi
	fi
	in_root "$root" "" apt-cache pkgnames linux-headers- |
		sed -n -E "s/^linux-headers-($(lane_pattern "$lane"))\$/\1/p" |
		sort -V | tail -n 1
}

# lane_kernel LANE: make sure the lane's kernel is ready (headers installed
# in its root, image extracted to $cache/kernels) and print its release.
# The lane's root must exist (ensure_root) and be up to date (root_update).
lane_kernel() {
	local lane=$1 root=${lane_root[$1]} v img dir f
	v=$(lane_release "$lane")
	[ -n "$v" ] || die "$lane: no linux-headers-* matching $(lane_pattern "$lane") in root $root"
	if [ ! -e "$roots/$root/usr/src/linux-headers-$v/Makefile" ]; then
		say "$lane: installing linux-headers-$v in root $root"
		root_apt "$root" install "linux-headers-$v" > /dev/null ||
			die "$lane: cannot install linux-headers-$v in root $root"
	fi
	dir=$cache/kernels/$v
	if [ ! -f "$dir/vmlinuz" ]; then
		say "$lane: fetching the kernel image of $v"
		rm -rf "$dir.tmp"
		mkdir -p "$dir.tmp"
		# From 7.x the image is in linux-binary-*; before, in the
		# linux-image-*-unsigned package.
		for img in "linux-binary-$v" "linux-image-$v-unsigned" "linux-image-$v"; do
			rm -f "$roots/$root"/tmp/*.deb
			in_root "$root" "" sh -c "cd /tmp && apt-get download -qq $img" \
				> /dev/null 2>&1 || continue
			dpkg-deb --fsys-tarfile "$roots/$root"/tmp/*.deb |
				tar -x -C "$dir.tmp" --wildcards '*vmlinuz*' 2>/dev/null || true
			rm -f "$roots/$root"/tmp/*.deb
			f=$(find "$dir.tmp" -name "vmlinuz*" -type f | head -n 1)
			if [ -n "$f" ]; then
				mv "$f" "$dir.tmp/vmlinuz"
				break
			fi
		done
		[ -f "$dir.tmp/vmlinuz" ] || die "$lane: no kernel image for $v in its packages"
		find "$dir.tmp" -mindepth 1 -maxdepth 1 ! -name vmlinuz -exec rm -rf {} +
		rm -rf "$dir"
		mv "$dir.tmp" "$dir"
	fi
	echo "$v"
}

# lane_nic_module LANE RELEASE: the driver of the guests' NIC (e1000,
# lib.sh: nic_args), which Debian builds as a module, out of the lane's
# own modules package into $cache/kernels/RELEASE/e1000.ko, uncompressed
# (busybox insmod loads no .ko.xz); init.sh loads it. The modules are in
# linux-modules-* from 7.x, in the image package before. Kept like the
# image: fetched once per release.
lane_nic_module() {
	local lane=$1 v=$2 root=${lane_root[$1]} dir=$cache/kernels/$2 pkg tmp f='' f2
	[ ! -f "$dir/e1000.ko" ] || return 0
	say "$lane: fetching the e1000 module of $v (the guest's NIC)"
	tmp=$(mktemp -d "$roots/$root/tmp/nic.XXXXXX")
	for pkg in "linux-modules-$v" "linux-image-$v-unsigned" "linux-image-$v"; do
		in_root "$root" "" sh -c "cd /tmp/${tmp##*/} && apt-get download -qq $pkg" \
			> /dev/null 2>&1 || continue
		dpkg-deb --fsys-tarfile "$tmp"/*.deb |
			tar -x -C "$tmp" --wildcards '*/e1000/e1000.ko*' 2>/dev/null || true
		rm -f "$tmp"/*.deb
		f=$(find "$tmp" -name 'e1000.ko*' -type f | head -n 1)
		[ -z "$f" ] || break
	done
	case $f in
	*.ko) ;;
	*.ko.xz)
		in_root "$root" "" xz -d "/tmp/${f#"$roots/$root/tmp/"}" ||
			{ rm -rf "$tmp"; die "$lane: cannot decompress ${f##*/}"; }
		f=${f%.xz} ;;
	*)
		rm -rf "$tmp"
		die "$lane: no e1000 module for $v in its packages${f:+ (${f##*/}: unknown compression)}" ;;
	esac
	# A temporary name beside it, then a rename: a run that reads it
	# meanwhile sees all of it or none.
	f2=$(mktemp "$dir/e1000.ko.XXXXXX")
	cp "$f" "$f2"
	mv "$f2" "$dir/e1000.ko"
	rm -rf "$tmp"
}
