#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Install the tools the QEMU rig runs on the host, idempotently, and
# nothing else: the kernels, their headers, compilers, kmod and DKMS live
# in the lanes' Debian roots under the rig's cache (roots.sh), never in the
# host. Only root can install; anyone else gets a list of what is missing.
#
# Usage: deps.sh [--check] [GROUP...]
#   GROUP    rig (default: make check, make run), bench (make bench's plot),
#            style (make style)
#   --check  install nothing; exit 1 and name what is missing
#
# Every host command a rig script runs that Debian's required packages
# (coreutils, grep, sed, mawk, tar, findutils, diffutils, dpkg, bash,
# gzip, util-linux) do not provide is in the table below, with the package
# it comes from. The prerequisites the README names (git, make) are not
# installed here: they come before the clone. After an install every
# command of the table must be there, or this fails: a package that
# stopped shipping a command is caught here, not in the middle of a run.

set -euo pipefail

# GROUP COMMAND PACKAGE: the rig's host commands.
table='
rig   qemu-system-x86_64  qemu-system-x86
rig   mmdebstrap          mmdebstrap
rig   busybox             busybox-static
rig   cpio                cpio
rig   gzip                gzip
rig   unshare             util-linux
rig   flock               util-linux
rig   rsync               rsync
rig   groff               groff-base
rig   man                 man-db
rig   update-ca-certificates ca-certificates
bench jq                  jq
bench gnuplot             gnuplot-nox
style perl                perl
style xz                  xz-utils
'

check_only=
groups=()
for a in "$@"; do
	case $a in
	--check) check_only=1 ;;
	rig | bench | style) groups+=("$a") ;;
	*) echo "usage: $0 [--check] [rig|bench|style]..." >&2; exit 2 ;;
	esac
done
[ ${#groups[@]} -gt 0 ] || groups=(rig)

# The commands and packages of the groups asked for.
cmds=() pkgs=()
while read -r g c p; do
	[ -n "$g" ] || continue
	[[ " ${groups[*]} " == *" $g "* ]] || continue
	cmds+=("$c:$p")
	[[ " ${pkgs[*]} " == *" $p "* ]] || pkgs+=("$p")
done <<< "$table"

# /usr/sbin too: update-ca-certificates lives there, and a user's PATH
# may not have it.
have() { PATH=$PATH:/usr/sbin:/sbin command -v "$1" > /dev/null; }

installed() {
	dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q '^install ok installed'
}

missing=()
for p in "${pkgs[@]}"; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
	if [ -n "$check_only" ] || [ "$(id -u)" != 0 ]; then
		echo "deps: missing packages (run as root to install): ${missing[*]}" >&2
		exit 1
	fi
	echo "deps: installing ${missing[*]}" >&2
	# A third-party source that cannot be reached must not stop us: apt
	# still refreshes the Debian lists and warns about the rest.
	apt-get update -qq || echo "deps: apt-get update reported errors; continuing" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" > /dev/null
fi

gone=()
for cp in "${cmds[@]}"; do have "${cp%%:*}" || gone+=("${cp%%:*} (${cp#*:})"); done
if [ ${#gone[@]} -gt 0 ]; then
	echo "deps: installed, yet these commands are missing: ${gone[*]}" >&2
	exit 1
fi
