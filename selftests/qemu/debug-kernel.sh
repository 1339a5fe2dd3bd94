#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The debug lane's kernel: Debian's linux-source of the newest lane,
# `make allnoconfig` plus kernel.config and debug.config (KASAN, lockdep,
# DEBUG_VM, kmemleak), built once and cached outside the repository. The
# rig runs it inside the trixie root (lib.sh: debug_kernel), so the paths
# below are the root's and the compiler is the one the source's Debian
# kernels are built with. On success stdout carries
# exactly two lines for the rig:
#
#   KERNEL_IMAGE=/path/to/arch/x86/boot/bzImage
#   KDIR=/path/to/tree        (make -C "$KDIR" M=... modules)
#
# and everything else goes to stderr. The cache key is the sha256 of the
# source package's version, both fragments, the compiler and this recipe,
# so a fresh clone on the same machine reuses the tree and any change to
# a fragment builds a new one. A second run prints the same two lines at
# once; an interrupted build resumes where it stopped.
#
# Usage: debug-kernel.sh
# Environment:
#   ZCDEV_CACHE        cache root (default /var/cache/zcdev, or ~/.cache/zcdev
#                      when that is not writable); trees go under
#                      $ZCDEV_CACHE/debug-kernel/<key>/
#   LINUX_SOURCE_TAR   the source tarball, e.g. /usr/src/linux-source-7.3.tar.xz
#   SOURCE_PACKAGE     the package that installed it (its version is in the key)
#   JOBS               parallel make jobs (default: nproc)

set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
fragments=("$here/kernel.config" "$here/debug.config")
tarball=${LINUX_SOURCE_TAR:?the linux-source tarball}
jobs=${JOBS:-$(nproc)}
# Bump when the steps below change in a way that needs a new tree.
recipe=2

# Called from make, the jobserver and flags of the caller must not leak
# into the kernel build.
unset MAKEFLAGS MFLAGS MAKELEVEL

say() { echo "debug-kernel: $*" >&2; }
die() { say "$*"; exit 1; }

[ -r "$tarball" ] || die "no $tarball"
for f in "${fragments[@]}"; do
	[ -r "$f" ] || die "no $f"
done

cache=${ZCDEV_CACHE:-/var/cache/zcdev}
if ! mkdir -p "$cache" 2>/dev/null || [ ! -w "$cache" ]; then
	[ -z "${ZCDEV_CACHE:-}" ] || die "cannot write to ZCDEV_CACHE=$cache"
	cache=${XDG_CACHE_HOME:-$HOME/.cache}/zcdev
	mkdir -p "$cache"
fi

# The package version names the tarball's contents; without dpkg (a
# tarball from elsewhere), its checksum does.
src_version=$(dpkg-query -W -f='${Version}' "${SOURCE_PACKAGE:-none}" 2>/dev/null) ||
	src_version=
[ -n "$src_version" ] || src_version=$(sha256sum < "$tarball" | cut -d' ' -f1)
key=$({
	echo "recipe $recipe"
	echo "source $(basename "$tarball") $src_version"
	echo "compiler $(gcc --version | head -n1)"
	for f in "${fragments[@]}"; do
		echo "fragment $(basename "$f")"
		cat "$f"
	done
} | sha256sum | cut -c1-16)

dir=$cache/debug-kernel/$key
tree=$dir/linux
image=$tree/arch/x86/boot/bzImage
log=$dir/build.log
mkdir -p "$dir"

result() {
	echo "KERNEL_IMAGE=$image"
	echo "KDIR=$tree"
}

# Fast path, without the lock: a finished tree is never written again.
if [ -f "$dir/done" ] && [ -f "$image" ]; then
	result
	exit 0
fi

# One build per key at a time; a second caller waits, then takes the
# fast path.
exec 9> "$dir/lock"
if ! flock -n 9; then
	say "another build of $key is running; waiting for it"
	flock 9
fi
if [ -f "$dir/done" ] && [ -f "$image" ]; then
	result
	exit 0
fi

# kmake TARGET...: make in the tree, output to the log; on failure the
# tail of the log goes to stderr.
kmake() {
	echo "+ make $*" >> "$log"
	if ! make -C "$tree" ARCH=x86_64 -j"$jobs" "$@" >> "$log" 2>&1; then
		tail -n 60 "$log" >&2
		die "make $* failed (log: $log)"
	fi
}

# The options of the fragments, the later fragment winning, that the final
# .config does not have: a dependency that was not met makes Kconfig drop
# an option without a word (a silently missing KASAN is the classic).
missing_options() {
	local -A want=()
	local f line name value have
	for f in "${fragments[@]}"; do
		while IFS= read -r line; do
			if [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
				want[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
			elif [[ $line =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
				want[${BASH_REMATCH[1]}]=n
			fi
		done < "$f"
	done
	for name in $(printf '%s\n' "${!want[@]}" | sort); do
		value=${want[$name]}
		have=$(sed -n "s/^$name=//p" "$tree/.config")
		if [ "$value" = n ]; then
			[ -z "$have" ] || [ "$have" = n ] || echo "$name=n (have $name=$have)"
		elif [ "$have" != "$value" ]; then
			echo "$name=$value (have ${have:-not set})"
		fi
	done
}

start=$(date +%s)
say "building the debug kernel $key in $dir (log: $log)"
say "source: $tarball ($src_version); jobs: $jobs"
: > "$log"

if [ ! -f "$dir/extracted" ]; then
	say "extracting the source"
	rm -rf "$tree" "$tree.tmp"
	mkdir -p "$tree.tmp"
	# xz -T0 decompresses in parallel where the archive allows it.
	tar -I 'xz -T0' -xf "$tarball" -C "$tree.tmp" --strip-components=1 ||
		die "cannot extract $tarball"
	mv "$tree.tmp" "$tree"
	touch "$dir/extracted"
fi

say "configuring: allnoconfig + ${fragments[*]##*/}"
kmake allnoconfig
echo "+ merge_config.sh -m .config ${fragments[*]}" >> "$log"
if ! (cd "$tree" && ARCH=x86_64 scripts/kconfig/merge_config.sh -m .config \
		"${fragments[@]}") >> "$log" 2>&1; then
	tail -n 60 "$log" >&2
	die "merge_config.sh failed (log: $log)"
fi
kmake olddefconfig
missing=$(missing_options)
if [ -n "$missing" ]; then
	say "options the fragments ask for that are not in the final .config:"
	printf '  %s\n' "${missing//$'\n'/$'\n'  }" >&2
	die "fix the fragments (a dependency is missing) and run again"
fi

say "building bzImage and modules (make -j$jobs)"
kmake bzImage modules
# modules_prepare is part of the above; run it anyway so that out-of-tree
# builds never find it missing. Module.symvers comes from `modules`.
kmake modules_prepare
[ -f "$image" ] || die "no $image after the build (log: $log)"
[ -f "$tree/Module.symvers" ] || die "no Module.symvers after the build (log: $log)"

# Trees of other keys that never finished (a fragment changed mid-way, a
# failed configuration) are only disk space; finished ones may still serve
# another clone, so they stay (remove them by hand).
for other in "$cache"/debug-kernel/*/; do
	other=${other%/}
	if [ "$other" = "$dir" ] || [ -f "$other/done" ]; then
		continue
	fi
	if (exec 8> "$other/lock" && flock -n 8); then
		say "removing the unfinished tree $other"
		rm -rf "$other"
	fi
done

elapsed=$(($(date +%s) - start))
echo "$elapsed" > "$dir/build-seconds"
touch "$dir/done"
say "built in $((elapsed / 60))m$((elapsed % 60))s: $(cat "$tree/include/config/kernel.release")"
result
