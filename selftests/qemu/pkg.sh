#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Package check for one kernel lane, inside the lane's Debian root: the
# packages build there (zcdev-dkms, zcdev-tools: `make deb`), lintian
# passes them, both install, DKMS builds and installs zcdev.ko for the
# lane's kernel, and purging them leaves none of their files behind. The
# module DKMS built is copied out for the guest to boot.
#
# Usage: pkg.sh ROOT KERNEL_RELEASE OUTDIR
#   ROOT            the lane's Debian root (a directory, e.g.
#                   /var/cache/zcdev/roots/trixie) with the headers of
#                   KERNEL_RELEASE installed
#   KERNEL_RELEASE  the lane's kernel, as in /lib/modules (6.1.0-N-amd64)
#   OUTDIR          created if needed; receives zcdev.ko (the DKMS build,
#                   uncompressed) for the guest, and pkg.log (every
#                   command's output)
# Output on stdout, one line per check, as check.sh's read_results reads
# them: "ok NAME", "not ok NAME", "# note". Exit status 0 when every check
# passed, 1 when one failed, 2 on a usage error. Needs root (unshare,
# chroot). Nothing outside ROOT, OUTDIR and build/pkg/ changes; in ROOT
# stay the build tools it installed, group zcdev (a purge keeps a system
# group) and, for a kernel without its image there, its depmod files.
#
# The packages are built once per run and root: build/pkg/CODENAME/ keeps
# them with a hash of the sources they came from, and a second lane on the
# same root (or a second run with the same sources) installs those.
# Building them the first time installs build-essential, debhelper, dh-dkms
# and lintian into ROOT if they are missing (apt-get, network).
#
# ROOT.lock is held (flock) while the script works in ROOT, as for every
# apt-get run there; ZCDEV_ROOT_LOCKED=1 says the caller holds it already.
#
# On first installation Debian's DKMS postinst builds for every kernel in
# ROOT's /lib/modules (the chroot's running kernel is the host's): each of
# them must build, or zcdev-dkms does not configure.

set -uo pipefail

if [ $# -ne 3 ] || [ ! -d "$1" ] || [ -z "$2" ] || [ -z "$3" ]; then
	echo "usage: $0 ROOT KERNEL_RELEASE OUTDIR" >&2
	exit 2
fi
root=$(cd "$1" && pwd) kver=$2 out=$3
top=$(cd "$(dirname "$0")/../.." && pwd)
say() { echo "pkg.sh: $*" >&2; }
die() { say "$*"; exit 2; }
# shellcheck source=selftests/qemu/roots.sh
. "$top/selftests/qemu/roots.sh"
version=$(cat "$top/VERSION")
pkgs=(zcdev-dkms zcdev-tools)

mkdir -p "$out" || exit 2
out=$(cd "$out" && pwd)
log=$out/pkg.log
: > "$log"
failed=0

ok() { echo "ok $*"; }
notok() { echo "not ok $*"; failed=1; }
note() { echo "# $*"; }
# The last lines of the log, as notes, after a failure.
tail_log() { tail -n "${1:-25}" "$log" | sed 's/^/# /'; }

if [ -z "${ZCDEV_ROOT_LOCKED:-}" ]; then
	exec 8> "$root.lock"
	flock 8
fi

# pkg_run CMD...: CMD in the root (roots.sh's in_root: a mount and PID
# namespace of its own, /proc, /dev and resolv.conf), output to the log;
# pkg_run_out: the same with CMD's standard output on ours.
pkg_run() {
	echo "+ $*" >> "$log"
	in_root "$root" "" "$@" >> "$log" 2>&1
}

pkg_run_out() {
	echo "+ $*" >> "$log"
	in_root "$root" "" "$@" 2>> "$log"
}

work=$(mktemp -d "$root/tmp/zcdev-pkg.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT
wroot=${work#"$root"}

codename=$(. "$root/etc/os-release" && echo "${VERSION_CODENAME:-unknown}")
debs=$top/build/pkg/$codename

# ---- build (once per sources and root) ----------------------------------

# The sources as `make deb` takes them: what git tracks or would track
# (untracked but not ignored), without the build directory.
# (safe.directory: a root-run rig in a clone that another user owns.)
mkdir -p "$work/src"
git=(git -c safe.directory="$top" -C "$top")
if "${git[@]}" rev-parse --git-dir > /dev/null 2>&1; then
	"${git[@]}" ls-files -co --exclude-standard | while IFS= read -r f; do
		[ ! -e "$top/$f" ] || (cd "$top" && cp -P --parents -t "$work/src" "$f")
	done
else
	tar -C "$top" -c --exclude=./build --exclude=./.git . | tar -x -C "$work/src"
fi
hash=$(cd "$work/src" && find . -type f -o -type l | LC_ALL=C sort |
       xargs -d '\n' sha1sum | sha1sum | cut -d' ' -f1)

if [ -f "$debs/sources.sha1" ] && [ "$(cat "$debs/sources.sha1")" = "$hash" ] &&
   [ -f "$debs/zcdev-dkms_${version}_all.deb" ]; then
	ok "packages: built in $codename already, from these sources"
else
	rm -rf "$debs"
	if ! pkg_run sh -c "cd $wroot/src && dpkg-checkbuilddeps && command -v lintian"; then
		pkg_run apt-get install -y -q --no-install-recommends \
			build-essential debhelper dh-dkms lintian ||
		{ pkg_run apt-get update -q &&
		  pkg_run apt-get install -y -q --no-install-recommends \
			build-essential debhelper dh-dkms lintian; } ||
		notok "packages: install build-essential debhelper dh-dkms lintian in $codename"
	fi
	if pkg_run make -C "$wroot/src" deb; then
		mkdir -p "$debs"
		cp "$work"/src/build/deb/*.deb "$work"/src/build/deb/*.changes \
		   "$work"/src/build/deb/*.buildinfo "$debs/"
		echo "$hash" > "$debs/sources.sha1"
		ok "packages: make deb in $codename"
	else
		notok "packages: make deb in $codename"
		tail_log
	fi
fi
if [ ! -f "$debs/zcdev-dkms_${version}_all.deb" ]; then
	notok "packages: none to install, the build failed"
	exit 1
fi
mkdir -p "$work/debs"
cp "$debs"/* "$work/debs/"

# Errors and warnings fail; info and pedantic tags are notes. A tag the
# project accepts is overridden, with its reason, in debian/*.lintian-overrides.
if pkg_run lintian --version; then
	# (TMPDIR: lintian leaves files there, which go with $work.)
	if tags=$(pkg_run_out env TMPDIR="$wroot" lintian --fail-on error,warning \
		  "$wroot/debs/zcdev_${version}_amd64.changes"); then
		ok "lintian: zcdev-dkms zcdev-tools ($codename)"
	else
		notok "lintian: zcdev-dkms zcdev-tools ($codename)"
	fi
	[ -z "$tags" ] || sed 's/^/# lintian: /' <<< "$tags"
else
	notok "lintian: not installed in $codename"
fi

# ---- install ------------------------------------------------------------

# Leftovers of an interrupted run go first, the group too, so that this
# run sees the packages create it.
for p in "${pkgs[@]}"; do
	if pkg_run dpkg-query -W "$p"; then
		note "$p was installed in $codename already (an earlier run?): purging it first"
		pkg_run dpkg --purge "$p"
	fi
done
pkg_run sh -c '! getent group zcdev >/dev/null || groupdel zcdev'

# A kernel whose image package is installed has its modules.dep; a root
# may hold only the headers (and, from 7.x, linux-base), and DKMS then
# skips depmod, so modprobe would not find what it installed. Make the
# root look like a machine running that kernel.
if [ ! -e "$root/lib/modules/$kver/modules.dep" ]; then
	note "no modules.dep for $kver in $codename (no kernel image installed): running depmod first"
	pkg_run depmod -a "$kver" || notok "depmod -a $kver in $codename"
fi

if pkg_run apt-get install -y -q --no-install-recommends \
	"$wroot/debs/zcdev-dkms_${version}_all.deb" \
	"$wroot/debs/zcdev-tools_${version}_amd64.deb"; then
	ok "install: zcdev-dkms zcdev-tools in $codename"
else
	notok "install: zcdev-dkms zcdev-tools in $codename"
	# Which kernel DKMS failed on, and the compiler's first complaints
	# (the package's purge below takes DKMS's logs away).
	grep -E '^(Error!|E: |dpkg: error)' "$log" | sed 's/^/# /'
	find "$root/var/lib/dkms/zcdev" -name make.log 2>/dev/null |
	while IFS= read -r f; do
		note "${f#"$root"}:"
		grep -m 8 -E 'error|Error' "$f" | sed 's/^/#   /'
	done
fi

# ---- what the packages did ----------------------------------------------

if pkg_run_out dkms status -m zcdev -v "$version" -k "$kver" | grep -q ': installed'; then
	ok "dkms: zcdev/$version built and installed for $kver"
else
	notok "dkms: zcdev/$version built and installed for $kver"
	pkg_run_out dkms status | sed 's/^/# /'
fi

# modprobe's view: the module it would load for that kernel, and what it is.
modfile=$(pkg_run_out modinfo -k "$kver" -n zcdev)
if [ -n "$modfile" ] && [ -f "$root$modfile" ] &&
   [[ $modfile == /lib/modules/$kver/updates/dkms/zcdev.ko* ||
      $modfile == /usr/lib/modules/$kver/updates/dkms/zcdev.ko* ]]; then
	ok "dkms: modprobe finds $modfile"
else
	notok "dkms: modprobe finds zcdev.ko for $kver in updates/dkms (modinfo says '${modfile:-nothing}')"
fi
if [ -n "$modfile" ] && [ -f "$root$modfile" ]; then
	mversion=$(pkg_run_out modinfo -F version "$modfile")
	vermagic=$(pkg_run_out modinfo -F vermagic "$modfile")
	parms=$(pkg_run_out modinfo -F parm "$modfile")
	if [ "$mversion" = "$version" ] && [ "${vermagic%% *}" = "$kver" ]; then
		ok "modinfo: version $mversion, vermagic $kver"
	else
		notok "modinfo: version '$mversion' (want $version), vermagic '${vermagic%% *}' (want $kver)"
	fi
	sed 's/^/# parm /' <<< "$parms"
	# Debian's DKMS signs what it builds with its MOK key when it can.
	signer=$(pkg_run_out modinfo -F signer "$modfile")
	note "signed by: ${signer:-nobody (unsigned)}"

	# The guest boots this very module: uncompressed, for insmod. The
	# root has kmod and xz-utils (root_pkgs); the host needs neither, so
	# both the unpacking and the check run there.
	rm -f "$out/zcdev.ko"
	case $modfile in
	*.ko) pkg_run_out cat "$modfile" > "$out/zcdev.ko" ;;
	*.ko.xz) pkg_run_out xz -dc "$modfile" > "$out/zcdev.ko" ;;
	*.ko.zst) pkg_run_out zstd -qdc "$modfile" > "$out/zcdev.ko" ;;
	*.ko.gz) pkg_run_out gzip -dc "$modfile" > "$out/zcdev.ko" ;;
	esac
	if [ -s "$out/zcdev.ko" ] &&
	   [ "$(pkg_run_out sh -c 't=$(mktemp --suffix=.ko) && cat > "$t" &&
	      modinfo -F vermagic "$t"; rc=$?; rm -f "$t"; exit $rc' < "$out/zcdev.ko")" = "$vermagic" ]; then
		ok "dkms: the module copied out for the guest"
		note "module: $out/zcdev.ko"
	else
		notok "dkms: copying $modfile out to $out/zcdev.ko"
		rm -f "$out/zcdev.ko"
	fi
fi

if pkg_run getent group zcdev; then
	ok "zcdev-tools: group zcdev created"
else
	notok "zcdev-tools: group zcdev created"
fi

# The tool runs (no device in a root: exit status 3, "no zcdev device").
pkg_run zcdev info
rc=$?
if [ "$rc" = 3 ]; then
	ok "zcdev-tools: zcdev runs, and says there is no device (status 3)"
else
	notok "zcdev-tools: zcdev info in a root without the device: status $rc, want 3"
	tail_log 3
fi

# The installed header is what a program of the user's compiles against.
cat > "$work/abi.c" <<'EOF'
#include <sys/ioctl.h>
#include <linux/zcdev.h>
int main(void)
{
	struct zcdev_info info = { .abi_version = ZCDEV_ABI_VERSION };

	return info.abi_version != ZCDEV_ABI_VERSION;
}
EOF
if pkg_run sh -c "cc -Wall -Werror -o $wroot/abi $wroot/abi.c && $wroot/abi"; then
	ok "zcdev-tools: a program includes <linux/zcdev.h>"
else
	notok "zcdev-tools: a program includes <linux/zcdev.h>"
	tail_log 10
fi

# The source tree's DKMS targets leave a packaged /usr/src/zcdev-VERSION
# to dpkg: both refuse, say why, and every file of the package stays.
for t in dkms-remove dkms-install; do
	msg=$(pkg_run_out sh -c "make -s -C $wroot/src $t 2>&1")
	rc=$?
	if [ "$rc" != 0 ] && [[ $msg == *"belongs to zcdev-dkms"* ]] &&
	   [ -z "$(pkg_run_out dpkg -V zcdev-dkms)" ]; then
		ok "make $t refuses the packaged source: $(grep -m 1 -o 'belongs to.*' <<< "$msg")"
	else
		notok "make $t with zcdev-dkms installed: status $rc, '$msg', dpkg -V: $(pkg_run_out dpkg -V zcdev-dkms | head -n 3)"
	fi
done

# ---- purge --------------------------------------------------------------

# Every path dpkg installed, and what DKMS made (not dpkg's).
pkg_run_out dpkg-query -L "${pkgs[@]}" | LC_ALL=C sort -u > "$work/files"
nfiles=0
: > "$work/dirs"
: > "$work/nondirs"
while IFS= read -r f; do
	# A directory, or a symbolic link to one (/lib on a merged /usr).
	if [ -d "$root$f" ]; then
		echo "$f" >> "$work/dirs"
	else
		nfiles=$((nfiles + 1))
		echo "$f" >> "$work/nondirs"
	fi
done < "$work/files"

if pkg_run apt-get purge -y -q "${pkgs[@]}"; then
	ok "purge: zcdev-dkms zcdev-tools"
else
	notok "purge: zcdev-dkms zcdev-tools"
	tail_log
fi

left=()
while IFS= read -r f; do
	[ ! -e "$root$f" ] && [ ! -L "$root$f" ] || left+=("$f")
done < "$work/nondirs"
# A directory may stay if it holds something else or another package has it.
while IFS= read -r d; do
	[ -d "$root$d" ] || continue
	[ -z "$(ls -A "$root$d")" ] || continue
	pkg_run dpkg-query -S "$d" || left+=("$d/ (empty)")
done < "$work/dirs"
# What DKMS built and installed goes with the package, in every kernel.
while IFS= read -r f; do
	left+=("${f#"$root"}")
done < <(find "$(realpath "$root/lib/modules")" -name 'zcdev.ko*' 2>/dev/null)
for d in /var/lib/dkms/zcdev "/usr/src/zcdev-$version"; do
	[ ! -e "$root$d" ] || left+=("$d")
done
if grep -qs zcdev "$root/lib/modules/$kver/modules.dep"; then
	left+=("zcdev in /lib/modules/$kver/modules.dep")
fi
# shellcheck disable=SC2016 # dpkg-query's format, not the shell's
status=$(pkg_run_out dpkg-query -W -f '${db:Status-Abbrev} ${Package}\n' "${pkgs[@]}" |
	 grep -v '^[up]n ')
[ -z "$status" ] || left+=("dpkg still has: $(tr '\n' ' ' <<< "$status")")

if [ ${#left[@]} -eq 0 ]; then
	ok "purge: none of the $nfiles files the packages installed is left, nor any DKMS build"
else
	notok "purge: ${#left[@]} left behind of what the packages installed"
	printf '# left: %s\n' "${left[@]}" | head -n 20
fi

exit $failed
