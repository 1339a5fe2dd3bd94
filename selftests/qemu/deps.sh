#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Install the tools the QEMU rig runs on the host, idempotently, and
# nothing else: the kernels, their headers, compilers and DKMS live in the
# lanes' Debian roots under the rig's cache (roots.sh), never in the host.
# Only root can install; anyone else gets a list of what is missing.
#
#   qemu-system-x86   boots each lane's kernel
#   mmdebstrap        builds the lanes' Debian roots
#   busybox-static    the guest's user space
#   cpio, gzip        pack the guest's initramfs
#   util-linux        unshare and flock: a private mount namespace per chroot
#   rsync             copies the module sources per lane
#   perl              checkpatch (make style)
#   ca-certificates   mmdebstrap over https mirrors
#   groff-base, man-db  make man-check

set -euo pipefail

pkgs=(qemu-system-x86 mmdebstrap busybox-static cpio gzip util-linux rsync perl
      ca-certificates groff-base man-db)

need() {
	dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q '^install ok installed'
}

missing=()
for p in "${pkgs[@]}"; do need "$p" || missing+=("$p"); done
[ ${#missing[@]} -gt 0 ] || exit 0
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing packages (run as root to install): ${missing[*]}" >&2
	exit 1
fi
echo "deps: installing ${missing[*]}" >&2
# A third-party source that cannot be reached must not stop us: apt still
# refreshes the Debian lists and warns about the rest.
apt-get update -qq || echo "deps: apt-get update reported errors; continuing" >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	"${missing[@]}" > /dev/null
