#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# zcdev's version, one string for the module (MODULE_VERSION), the tool
# (zcdev --version), libzcdev (zcdev_version(), libzcdev.pc) and the
# Debian packages. VERSION holds the release line, the release being
# worked towards (0.2.0); git says where this tree is on it:
#
#   HEAD is tag vRELEASE              RELEASE                        0.2.0
#   before tag vRELEASE exists        RELEASE~gitDATE.TIME.COMMIT    0.2.0~git20261206.153012.abc1234
#   after tag vRELEASE (not bumped)   RELEASE+gitDATE.TIME.COMMIT    0.2.0+git20261207.091500.def5678
#
# DATE.TIME is the commit's committer time in UTC, so snapshots sort in the
# order they were committed and before (~) the release, as dpkg compares
# them. A tree that is not a git work tree of its own (a tarball, the DKMS
# source in /usr/src, a copy the rig or `make deb` made) uses VERSION as it
# is: whoever exported the tree stamped the full version into it.
#
# Usage: version.sh [DIR]          print the version of the tree at DIR
#                                  (default: the tree this script is in)
#        version.sh --stamp DIR VER write VER into DIR's VERSION and
#                                  dkms.conf, and make DIR's
#                                  debian/changelog's top entry VER
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)

if [ "${1:-}" = --stamp ]; then
	[ $# -eq 3 ] || { echo "usage: $0 --stamp DIR VERSION" >&2; exit 2; }
	dir=$2 ver=$3
	release=$(head -n 1 "$dir/VERSION")
	echo "$ver" > "$dir/VERSION"
	if [ -f "$dir/dkms.conf" ]; then
		sed -i "s/^PACKAGE_VERSION=.*/PACKAGE_VERSION=\"$ver\"/" "$dir/dkms.conf"
	fi
	cl=$dir/debian/changelog
	[ -f "$cl" ] || exit 0
	top_ver=$(sed -n '1s/^[^ ]* (\([^)]*\)).*/\1/p' "$cl")
	[ "$top_ver" != "$ver" ] || exit 0
	if [ "$top_ver" != "$release" ]; then
		echo "$0: debian/changelog's top entry is $top_ver, VERSION says $release" >&2
		exit 1
	fi
	# A snapshot of the release line: the top entry (the release's) gets
	# the snapshot's version, a line naming the commit and its date.
	case $ver in
	*git*.*) what="Snapshot of commit ${ver##*.}" ;;
	*) what="Build of $ver" ;;
	esac
	when=$(git -c safe.directory="$top" -C "$top" log -1 --format=%cD 2>/dev/null) ||
		when=$(date -R)
	tmp=$cl.tmp
	{
		sed -n "1s/($release)/($ver)/p" "$cl"
		echo
		echo "  * $what, on the way to $release."
		sed -n '2,$p' "$cl" | sed '1{/^$/d}' |
			sed "0,/^ -- /s/^\( -- .*>  \).*/\1$when/"
	} > "$tmp"
	mv "$tmp" "$cl"
	exit 0
fi

dir=$(cd "${1:-$top}" && pwd)
release=$(head -n 1 "$dir/VERSION")
git="git -c safe.directory=$dir -C $dir"
if [ -e "$dir/.git" ] && command -v git >/dev/null 2>&1 &&
   [ "$($git rev-parse --show-toplevel 2>/dev/null)" = "$dir" ]; then
	head=$($git rev-parse --short=7 HEAD)
	if [ "$($git rev-parse -q --verify "refs/tags/v$release^{commit}" 2>/dev/null)" = \
	     "$($git rev-parse HEAD)" ]; then
		echo "$release"
		exit 0
	fi
	stamp=$(TZ=UTC $git log -1 --date=format-local:%Y%m%d.%H%M%S --format=%cd HEAD)
	if $git rev-parse -q --verify "refs/tags/v$release" >/dev/null; then
		echo "$release+git$stamp.$head"
	else
		echo "$release~git$stamp.$head"
	fi
else
	echo "$release"
fi
