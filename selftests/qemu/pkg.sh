#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Package check for one kernel lane, inside the lane's Debian root: the
# packages build there (`make deb`: the source package, zcdev-dkms,
# zcdev-tools, libzcdev0, libzcdev-dev), lintian --pedantic -I -E reports
# nothing on any of them, an older build (version RELEASE~~older) installs
# and the current one upgrades it, DKMS builds and installs zcdev.ko for
# the lane's kernel, purging them leaves none of their files behind, and
# the source's autopkgtests pass (autopkgtest's null runner, in the root).
# The module DKMS built is copied out for the guest to boot.
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
# Building them the first time installs build-essential, debhelper, dh-dkms,
# pkgconf, liburing-dev and lintian into ROOT if they are missing (apt-get, network); the
# group pulls in systemd-sysusers (systemd-standalone-sysusers where
# systemd is not installed), autopkgtest installs autopkgtest, autodep8 and
# the tests' dependencies. All of them stay in ROOT.
#
# The version is the host's (scripts/version.sh: git is here, not in the
# root), stamped into the copy the root builds (scripts/version.sh --stamp).
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
version=$("$top/scripts/version.sh") || die "scripts/version.sh failed"
release=$(head -n 1 "$top/VERSION")
# What the upgrade starts from: sorts before any build of this release
# line (a snapshot ~git..., the release, a +git... after it).
older=$release~~older
pkgs=(zcdev-dkms zcdev-tools libzcdev0 libzcdev-dev)

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

# shellcheck source=/dev/null # the root's, not ours
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
hash=$( (cd "$work/src" && find . -type f -o -type l | LC_ALL=C sort |
	 xargs -d '\n' sha1sum; echo "$version") | sha1sum | cut -d' ' -f1)

# build_debs VERSION DIR: `make deb` in the root from a copy of the
# sources stamped VERSION; the results in DIR.
build_debs() {
	local v=$1 dir=$2 src=$work/src-$1
	rm -rf "$src"
	cp -a "$work/src" "$src"
	"$top/scripts/version.sh" --stamp "$src" "$v" >> "$log" 2>&1 &&
	pkg_run make -C "${src#"$root"}" deb &&
	mkdir -p "$dir" &&
	cp "$src"/build/deb/* "$dir/"
}

if [ -f "$debs/sources.sha1" ] && [ "$(cat "$debs/sources.sha1")" = "$hash" ] &&
   [ -f "$debs/zcdev-dkms_${version}_all.deb" ] &&
   [ -f "$debs/older/zcdev-dkms_${older}_all.deb" ]; then
	ok "packages: built in $codename already, from these sources ($version)"
else
	rm -rf "$debs"
	# (pkgconf and liburing-dev: Build-Depends, for the tool's libzcdev
	# flags and its io_uring methods; a root made before they joined
	# root_pkgs gets them here.)
	if ! pkg_run sh -c "cd $wroot/src && dpkg-checkbuilddeps && command -v lintian"; then
		pkg_run apt-get install -y -q --no-install-recommends \
			build-essential debhelper dh-dkms pkgconf liburing-dev lintian ||
		{ pkg_run apt-get update -q &&
		  pkg_run apt-get install -y -q --no-install-recommends \
			build-essential debhelper dh-dkms pkgconf liburing-dev lintian; } ||
		notok "packages: install build-essential debhelper dh-dkms pkgconf liburing-dev lintian in $codename"
	fi
	if build_debs "$version" "$debs"; then
		ok "packages: make deb in $codename ($version)"
	else
		notok "packages: make deb in $codename ($version)"
		tail_log
	fi
	if build_debs "$older" "$debs/older"; then
		ok "packages: make deb in $codename, as the older $older"
	else
		notok "packages: make deb in $codename, as the older $older"
		tail_log
	fi
	[ ! -f "$debs/zcdev-dkms_${version}_all.deb" ] || echo "$hash" > "$debs/sources.sha1"
fi
if [ ! -f "$debs/zcdev-dkms_${version}_all.deb" ]; then
	notok "packages: none to install, the build failed"
	exit 1
fi
mkdir -p "$work/debs" "$work/older"
cp "$debs"/*.* "$work/debs/"
cp "$debs"/older/*.deb "$work/older/" 2>/dev/null
# The packages as the root names them.
debfiles=() olderfiles=()
for p in "${pkgs[@]}"; do
	for f in "$work/debs/${p}_"*.deb; do
		[ ! -e "$f" ] || debfiles+=("${f#"$root"}")
	done
	for f in "$work/older/${p}_"*.deb; do
		[ ! -e "$f" ] || olderfiles+=("${f#"$root"}")
	done
done
# The source tree's own targets below (dkms-install, dkms-remove) see the
# version the packages have.
"$top/scripts/version.sh" --stamp "$work/src" "$version" >> "$log" 2>&1 ||
	notok "scripts/version.sh --stamp $version"

# Every tag fails, of any severity (--pedantic -I -E): the source package
# and the binaries, through the .changes that lists them all. A tag the
# project accepts would be overridden, with its reason, in
# debian/*.lintian-overrides; there is none. bookworm's lintian knows the
# Debian Policy up to 4.6.2 and warns newer-standards-version about 4.7.2,
# which the packages follow (trixie's lintian checks them against it):
# that one tag is not asked for there.
lintian_opts=(--pedantic -I -E --fail-on "error,warning,info,pedantic")
if ! grep -q '"version" *: *"4\.7\.2' \
	"$root/usr/share/lintian/data/debian-policy/releases.json" 2>/dev/null; then
	lintian_opts+=(--suppress-tags newer-standards-version)
	note "lintian in $codename predates Standards-Version 4.7.2: newer-standards-version suppressed"
fi
if pkg_run lintian --version; then
	# (TMPDIR: lintian leaves files there, which go with $work.)
	tags=$(pkg_run_out env TMPDIR="$wroot" lintian "${lintian_opts[@]}" \
	       "$wroot/debs/zcdev_${version}_amd64.changes")
	rc=$?
	if [ "$rc" = 0 ] && [ -z "$tags" ]; then
		ok "lintian --pedantic -I -E: source and ${pkgs[*]} ($codename), no tag"
	else
		notok "lintian --pedantic -I -E: source and ${pkgs[*]} ($codename): status $rc"
	fi
	# shellcheck disable=SC2001 # every line of it
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

# The older build first, then the current one over it: dpkg must see an
# upgrade of every package.
if [ ${#olderfiles[@]} -gt 0 ] &&
   pkg_run apt-get install -y -q --no-install-recommends "${olderfiles[@]}"; then
	ok "install: the older build, $older, in $codename"
else
	notok "install: the older build, $older, in $codename"
	grep -E '^(Error!|E: |dpkg: error)' "$log" | sed 's/^/# /'
fi

if pkg_run apt-get install -y -q --no-install-recommends "${debfiles[@]}"; then
	ok "install: ${pkgs[*]} $version in $codename"
else
	notok "install: ${pkgs[*]} $version in $codename"
	# Which kernel DKMS failed on, and the compiler's first complaints
	# (the package's purge below takes DKMS's logs away).
	grep -E '^(Error!|E: |dpkg: error)' "$log" | sed 's/^/# /'
	find "$root/var/lib/dkms/zcdev" -name make.log 2>/dev/null |
	while IFS= read -r f; do
		note "${f#"$root"}:"
		grep -m 8 -E 'error|Error' "$f" | sed 's/^/#   /'
	done
fi

upgraded=0
for p in "${pkgs[@]}"; do
	# shellcheck disable=SC2016 # dpkg-query's format, not the shell's
	st=$(pkg_run_out dpkg-query -W -f '${db:Status-Abbrev}${Version}' "$p")
	note "dpkg: $p $st"
	[ "$st" != "ii $version" ] ||
	# (dpkg names a Multi-Arch: same package with its architecture.)
	! grep -F " ($version) over ($older)" "$log" | grep -Eq "^Unpacking $p(:[a-z0-9]+)? " ||
	upgraded=$((upgraded + 1))
done
if [ "$upgraded" = "${#pkgs[@]}" ]; then
	ok "upgrade: $older to $version, all ${#pkgs[@]} packages, dpkg has $version installed"
else
	notok "upgrade: $older to $version: $upgraded of ${#pkgs[@]} packages upgraded"
fi
if [ -z "$(pkg_run_out dkms status -m zcdev -v "$older")" ]; then
	ok "upgrade: DKMS has no zcdev/$older left"
else
	notok "upgrade: DKMS still has zcdev/$older: $(pkg_run_out dkms status -m zcdev | tr '\n' ' ')"
fi

# ---- what the packages did ----------------------------------------------

if pkg_run_out dkms status -m zcdev -v "$version" -k "$kver" | grep -q ': installed'; then
	ok "dkms: zcdev/$version built and installed for $kver"
else
	notok "dkms: zcdev/$version built and installed for $kver"
	pkg_run_out dkms status | sed 's/^/# /'
fi

# Without the kernel's image, the root has no modules of its own for
# depmod to keep: the upgrade's removal of the older build leaves no
# modules.dep, and DKMS's install then skips depmod (see above). On a
# machine running the kernel the image's modules keep modules.dep there.
if [ ! -d "$root/lib/modules/$kver/kernel" ] &&
   ! grep -qs zcdev "$root/lib/modules/$kver/modules.dep"; then
	note "no image of $kver in $codename: depmod again after the upgrade"
	pkg_run depmod -a "$kver" || notok "depmod -a $kver in $codename"
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
	# shellcheck disable=SC2001 # every line of it
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
	# shellcheck disable=SC2016 # expanded by the root's sh
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
	ok "libzcdev-dev: a program includes <linux/zcdev.h>"
else
	notok "libzcdev-dev: a program includes <linux/zcdev.h>"
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

# What a program of one's own is built with (the autopkgtest below builds
# and runs one): the headers, the .so link, the archive, the .pc, the
# examples.
pkg_run_out dpkg-query -L libzcdev-dev > "$work/dev-files"
while IFS= read -r f; do
	[ -d "$root$f" ] || note "dpkg -L libzcdev-dev: $f"
done < "$work/dev-files"
want=(/usr/include/libzcdev.h /usr/include/linux/zcdev.h
      "/usr/lib/*/libzcdev.so" "/usr/lib/*/libzcdev.a" "/usr/lib/*/pkgconfig/libzcdev.pc"
      "/usr/share/doc/libzcdev-dev/examples/*.c*")
missing=()
for w in "${want[@]}"; do
	grep -qx -- "$(sed 's/[.]/\\./g; s/[*]/[^\/]*/g' <<< "$w")" "$work/dev-files" || missing+=("$w")
done
if [ ${#missing[@]} -eq 0 ]; then
	ok "libzcdev-dev: header, uapi header, .so, .a, .pc and examples"
else
	notok "libzcdev-dev: missing ${missing[*]}"
fi

# ---- purge --------------------------------------------------------------

# purge_check WHAT: purge the packages, then check that none of the files
# dpkg had installed is left, nor anything DKMS made.
purge_check() {
	local what=$1 f d nfiles=0 left=() status
	# Every path dpkg installed, and what DKMS made (not dpkg's).
	pkg_run_out dpkg-query -L "${pkgs[@]}" | LC_ALL=C sort -u > "$work/files"
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
		ok "purge$what: ${pkgs[*]}"
	else
		notok "purge$what: ${pkgs[*]}"
		tail_log
	fi

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
	for d in /var/lib/dkms/zcdev "/usr/src/zcdev-$version" "/usr/src/zcdev-$older"; do
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
		ok "purge$what: none of the $nfiles files the packages installed is left, nor any DKMS build"
	else
		notok "purge$what: ${#left[@]} left behind of what the packages installed"
		printf '# left: %s\n' "${left[@]}" | head -n 20
	fi
}

purge_check ""

# ---- autopkgtest ----------------------------------------------------------

# The source package's tests (debian/tests, and the dkms test autodep8
# makes of Testsuite: autopkgtest-pkg-dkms), run by autopkgtest with its
# null runner in this root: it installs the packages built above and the
# tests' dependencies here, and the packages are purged again after. One
# line per test, from autopkgtest's summary. The dkms test says
# breaks-testbed, which a null runner cannot undo: it runs anyway
# (--ignore-restrictions), as this script undoes it (the purge); it
# installs linux-doc, its dependency, into the root, and builds the module
# for every kernel whose headers are there.
if ! pkg_run sh -c 'command -v autopkgtest && command -v autodep8'; then
	pkg_run apt-get install -y -q --no-install-recommends autopkgtest autodep8 ||
	{ pkg_run apt-get update -q &&
	  pkg_run apt-get install -y -q --no-install-recommends autopkgtest autodep8; } ||
	notok "autopkgtest: install autopkgtest autodep8 in $codename"
fi
at=$wroot/autopkgtest
pkg_run autopkgtest --summary-file="$at.summary" --output-dir="$at" \
	--ignore-restrictions=breaks-testbed \
	"$wroot/debs/zcdev_${version}.dsc" "${debfiles[@]}" -- null
rc=$?
note "autopkgtest in $codename: status $rc (log: $out/pkg.log)"
if [ -s "$root$at.summary" ]; then
	while read -r name result rest; do
		case $result in
		PASS) ok "autopkgtest: $name ($codename)" ;;
		SKIP) echo "skip autopkgtest: $name ($codename): $rest" ;;
		*) notok "autopkgtest: $name ($codename): $result $rest" ;;
		esac
	done < <(awk '!seen[$1]++' "$root$at.summary")
	cat "$root$at/log" >> "$log" 2>/dev/null
else
	notok "autopkgtest: no summary in $codename (status $rc)"
	tail_log
fi
purge_check " after autopkgtest"

exit $failed
