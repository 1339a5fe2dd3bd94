#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# What the QEMU rig of zcdev before its Debian roots (before commit
# ca2be7e) installed into the machine it ran on, by exact name, and
# nothing else: the unsigned kernel images it booted (Debian's own
# installs use the signed images, so an -unsigned image of the two series
# it used is the rig's), the headers of those same releases, and the
# bookworm-backports source it added for 6.12. The running kernel, and a
# release whose signed image is installed, are never listed; neither is
# dkms nor any tool package (other software may need them).
#
# Usage: old-rig-leftovers.sh           print what would be removed
#        old-rig-leftovers.sh --purge   remove it (root), then apt-get update
# Exit status 0; 1 when --purge failed; 2 on a usage error.

set -euo pipefail

purge=
case ${1:-} in
"") ;;
--purge) purge=1 ;;
*) echo "usage: $0 [--purge]" >&2; exit 2 ;;
esac

src=/etc/apt/sources.list.d/zcdev-bookworm-backports.sources
running=$(uname -r)

installed() {
	dpkg-query -W -f='${db:Status-Abbrev}\n' "$1" 2>/dev/null | grep -q '^ii'
}

pkgs=()
while read -r p; do
	v=${p#linux-image-}
	v=${v%-unsigned}
	# The two series the old rig booted: bookworm's 6.1.0-N-amd64 and
	# bookworm-backports' 6.12.N+bpo-amd64.
	[[ $v =~ ^6\.1\.0-[0-9]+-amd64$ || $v =~ ^6\.12\.[0-9]+\+bpo-amd64$ ]] || continue
	[ "$v" != "$running" ] || continue
	! installed "linux-image-$v" || continue
	pkgs+=("$p")
	! installed "linux-headers-$v" || pkgs+=("linux-headers-$v")
done < <(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' 'linux-image-*-unsigned' 2>/dev/null |
	 awk '$1 == "ii" { print $2 }')

if [ ${#pkgs[@]} -eq 0 ] && [ ! -e "$src" ]; then
	echo "nothing the old rig installed is here"
	exit 0
fi
[ ${#pkgs[@]} -eq 0 ] || echo "packages: ${pkgs[*]}"
[ ! -e "$src" ] || echo "apt source: $src"
[ -n "$purge" ] || { echo "(run again with --purge, as root, to remove them)"; exit 0; }

[ "$(id -u)" = 0 ] || { echo "$0: --purge needs root" >&2; exit 1; }
if [ ${#pkgs[@]} -gt 0 ]; then
	apt-get purge -y "${pkgs[@]}" || exit 1
fi
if [ -e "$src" ]; then
	rm -f "$src"
	apt-get update || exit 1
fi
