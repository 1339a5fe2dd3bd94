#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Install what the QEMU rig needs, idempotently: the emulator, busybox for
# the guest, and for each kernel series a bootable image plus its headers.
# 6.1 comes from bookworm, 6.12 from bookworm-backports. Only root can
# install; anyone else gets a list of what is missing.
#
# Usage: deps.sh [SERIES...]   (default: 6.1 6.12; "debug" needs only the
#                                tool packages, which are always installed)

set -euo pipefail

series=("$@")
[ ${#series[@]} -gt 0 ] || series=(6.1 6.12)

tools_pkgs=(qemu-system-x86 busybox-static cpio kmod build-essential
	    linux-source-6.1 xz-utils sparse bc flex bison libelf-dev libssl-dev
	    python3 dwarves rsync dkms)

bpo=/etc/apt/sources.list.d/zcdev-bookworm-backports.sources
updated=

need() {
	dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q '^install ok installed'
}

apt_update() {
	[ -z "$updated" ] || return 0
	# A third-party source that cannot be reached must not stop us: apt
	# still refreshes the Debian lists and warns about the rest.
	apt-get update -qq || echo "deps: apt-get update reported errors; continuing" >&2
	updated=1
}

add_backports() {
	grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/ && return 0
	cat > "$bpo" <<EOT
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOT
	updated=
}

apt_install() {
	local missing=() p
	for p in "$@"; do need "$p" || missing+=("$p"); done
	[ ${#missing[@]} -gt 0 ] || return 0
	if [ "$(id -u)" != 0 ]; then
		echo "deps: missing packages (run as root to install): ${missing[*]}" >&2
		exit 1
	fi
	apt_update
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >/dev/null
}

# The newest installed kernel of a series that has both an image and a
# build tree, e.g. "6.1.0-35-amd64".
installed_kernel() {
	local s=$1 v
	for v in $(ls /lib/modules 2>/dev/null | grep -E "^${s//./\\.}[.-].*-amd64\$" | sort -rV); do
		if [ -r "/boot/vmlinuz-$v" ] && [ -e "/lib/modules/$v/build/Makefile" ]; then
			echo "$v"
			return 0
		fi
	done
	return 1
}

# The ABI name of the newest kernel of a series that apt offers, e.g.
# "6.12.48+deb12-amd64", read off the unsigned image package names.
candidate_kernel() {
	local s=$1
	apt-cache search --names-only "^linux-image-${s//./\\.}[.-].*-amd64-unsigned\$" |
		awk '{print $1}' | sed -e 's/^linux-image-//' -e 's/-unsigned$//' |
		grep -v -- '-rt-\|-cloud-' | sort -V | tail -n1
}

apt_install "${tools_pkgs[@]}"

for s in "${series[@]}"; do
	# The debug kernel is built from linux-source-6.1 by debug-kernel.sh.
	[ "$s" != debug ] || continue
	if ! installed_kernel "$s" >/dev/null; then
		[ "$s" = 6.1 ] || add_backports
		apt_update
		v=$(candidate_kernel "$s")
		if [ -z "$v" ]; then
			echo "deps: no linux-image-$s*-amd64-unsigned package found" >&2
			exit 1
		fi
		apt_install "linux-image-$v-unsigned" "linux-headers-$v"
	fi
	v=$(installed_kernel "$s") || { echo "deps: kernel $s not usable after install" >&2; exit 1; }
	echo "deps: kernel $s -> $v"
done
