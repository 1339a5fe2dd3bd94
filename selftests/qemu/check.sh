#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make check: for each lane in KERNELS, build the module inside the lane's
# Debian root against the lane's kernel (roots.sh), boot that kernel in QEMU with
# the module, the tool and every selftest, and read the guest's results
# from its second serial port. A crash, a panic or a timeout never writes
# the verdict, so it fails. The last line is "N passed, N failed" over all
# kernels, after one with the skips; the exit status is non-zero on any
# failure.
#
# Environment:
#   KERNELS           lanes to test (default "6.1 6.12 newest debug"; debug
#                     is the KASAN/lockdep/kmemleak kernel of debug-kernel.sh,
#                     built from the newest lane's source)
#   ZCDEV_NEWEST      pin the newest lane to this release (e.g. 7.3.4+deb13-amd64)
#   V=1               stream the guest console to the terminal
#   ZCDEV_TIMEOUT     seconds one boot may take (default 900; the debug
#                     lane, whose KASAN kernel runs every test 2-4x slower
#                     under TCG, gets twice as long)
#   ZCDEV_ACCEL       kvm or tcg: skip the KVM probe
#   ZCDEV_GUEST_HANG  1: the guest hangs after loading the module (to see
#                     the timeout at work; use a short ZCDEV_TIMEOUT)

set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

read -ra series <<< "${KERNELS:-6.1 6.12 newest debug}"
timeout_s=${ZCDEV_TIMEOUT:-900}

passed=0 failed=0 skipped=0
failures=()
engines=()
# Counts per WHERE (user space, host, a lane), in first-seen order.
declare -A where_passed where_failed where_skipped
wheres=()

# record "ok|not ok|skip WHAT" WHERE: one test or check, counted and shown.
record() {
	if [ -z "${where_passed[$2]:-}" ]; then
		wheres+=("$2")
		where_passed[$2]=0 where_failed[$2]=0 where_skipped[$2]=0
	fi
	case $1 in
	"ok "*)
		passed=$((passed + 1)) where_passed[$2]=$((where_passed[$2] + 1)) ;;
	"not ok "*)
		failed=$((failed + 1)) where_failed[$2]=$((where_failed[$2] + 1))
		failures+=("$2: ${1#not ok }") ;;
	"skip "*)
		skipped=$((skipped + 1)) where_skipped[$2]=$((where_skipped[$2] + 1)) ;;
	esac
	# The engines nobody here wrote get a line of their own in the
	# summary: their time, seed and verdict.
	case $1 in
	*stress_ng_test.sh* | *trinity_test.sh*) engines+=("$2: $1") ;;
	esac
	echo "  $1"
}

# "N passed, N failed, N skipped" for WHERE.
counts() {
	echo "${where_passed[$1]} passed, ${where_failed[$1]} failed, ${where_skipped[$1]} skipped"
}

# Result lines on stdin, from the guest or a host-side check: "ok ...",
# "not ok ...", "skip ..." are recorded, "# ..." shown; "run PROGRAM" and
# "verdict ..." set $last and $verdict.
read_results() {
	local line
	while IFS= read -r line; do
		line=${line%$'\r'}
		case $line in
		"ok "* | "not ok "* | "skip "*) record "$line" "$1" ;;
		"# "*) echo "    $line" ;;
		"run "*) last=${line#run } ;;
		"verdict "*) verdict=${line#verdict } ;;
		esac
	done
}

# selftests/qemu/pkg.sh, for lane $1: the Debian packages build in the
# lane's root, install, build the module under DKMS for the lane's kernel
# and purge without a trace; the module DKMS built goes into the lane's
# guest ($dkms_ko), which loads it after the tests.
pkg_check() {
	local s=$1 out=$build/$1/pkg rc=0 f=$failed
	mkdir -p "$out"
	say "$s: the Debian packages in root ${lane_root[$s]} (DKMS for ${kver[$s]})"
	"$qemu_dir/pkg.sh" "$roots/${lane_root[$s]}" "${kver[$s]}" "$out" \
		> "$out.results" 2>&1 || rc=$?
	read_results "$s" < "$out.results"
	[ "$rc" = 0 ] || [ "$failed" != "$f" ] ||
		record "not ok pkg.sh exit status $rc (log: ${out#"$top"/}/pkg.log)" "$s"
	dkms_ko=$out/zcdev.ko
}

# What the guest's lines added: the difference of two counts() outputs.
guest_counts() {
	local b a
	read -ra b <<< "${1//,/}"
	read -ra a <<< "${2//,/}"
	echo "$((a[0] - b[0])) passed, $((a[2] - b[2])) failed, $((a[4] - b[4])) skipped"
}

# Boot series $1 (kernel $2) with the module $ko and judge what comes out.
boot() {
	local s=$1 v=$2 dir=$build/$1 rc=0 last='' verdict='' splats why before after
	local log=$dir/console.log vfile=$dir/verdict.txt

	pack_initramfs "$dir/initramfs.cpio.gz" "$ko" mode=check "hang=${ZCDEV_GUEST_HANG:-}"
	rm -f "$vfile"
	set_qemu_cmd "$v" "$dir/initramfs.cpio.gz" "$vfile" -serial stdio "${nic_args[@]}" \
		-- "$kernel_cmdline"
	local limit=$timeout_s
	[ "$s" != debug ] || limit=$((timeout_s * 2))
	say "$s: booting $v (timeout ${limit}s, console: ${log#"$top"/})"
	if [ -n "${V:-}" ]; then
		timeout --foreground -k 10 "$limit" "${qemu_cmd[@]}" < /dev/null 2>&1 |
			tee "$log" || rc=${PIPESTATUS[0]}
	else
		timeout --foreground -k 10 "$limit" "${qemu_cmd[@]}" < /dev/null \
			> "$log" 2>&1 || rc=$?
	fi

	touch "$vfile"
	before=$(counts "$s")
	read_results "$s" < "$vfile"
	after=$(counts "$s")

	if [ -z "$verdict" ]; then
		if [ "$rc" = 124 ]; then
			why="timed out after ${limit}s"
		else
			why="the guest stopped early: a kernel crash or panic"
		fi
		[ -z "$last" ] || why+="; last test started: $last"
		record "not ok guest: no verdict ($why); see ${log#"$top"/}" "$s"
	elif [ "$verdict" != "$(guest_counts "$before" "$after")" ]; then
		record "not ok guest: its verdict ($verdict) does not match the lines it sent" "$s"
	fi

	splats=$(console_splats "$log")
	if [ -z "$splats" ]; then
		record "ok check console-log" "$s"
	else
		record "not ok check console-log" "$s"
		head -n 20 <<< "$splats" | sed 's/^/    # /'
	fi
}

start=$SECONDS
host_before=$(host_state)
resolve_kernels "${series[@]}"
lock_build
accel_start "${kver[${series[0]}]}"

say "building the tool and the selftests"
have_userspace=1
if build_userspace; then
	record "ok build user space" "user space"
else
	record "not ok build user space" "user space"
	[ -x "$top/tools/zcdev" ] || have_userspace=
fi

say "checking the manual pages"
if make -s -C "$top" man-check > "$build/man-check.log" 2>&1; then
	record "ok man pages render without a warning (groff -wall, man --warnings)" "user space"
else
	record "not ok man pages: make man-check (log: build/man-check.log)" "user space"
	sed 's/^/    # /' "$build/man-check.log" | head -n 20
fi

say "checking what the rig and the Makefile do to a machine"
if "$qemu_dir/deps.sh" --check > "$build/deps-check.log" 2>&1; then
	record "ok deps.sh: every host command the rig runs is installed" host
else
	record "not ok deps.sh --check: $(tail -n 1 "$build/deps-check.log")" host
fi
# The lanes' roots hold Debian kernels, their headers and dkms, all of
# which a glob over kernel names once offered to purge: the old rig's
# leftovers are named exactly, and none of those is among them.
for r in $(printf '%s\n' "${lane_root[@]}" | sort -u); do
	[ -d "$roots/$r" ] || continue
	out=$(in_root "$r" "$top" /zcdev/selftests/qemu/old-rig-leftovers.sh 2>&1) || true
	if [ "$out" = "nothing the old rig installed is here" ]; then
		record "ok old-rig-leftovers.sh in root $r: lists none of its kernels, headers or dkms" host
	else
		record "not ok old-rig-leftovers.sh in root $r: $out" host
	fi
done
# make install into a scratch PREFIX (the parts that touch nothing
# outside it), then make uninstall: the tree is as it was, the directories
# that were there before included, those install made gone. In between,
# an example builds against the installed libzcdev.pc, as a user's would.
# (ZCDEV_VERSION: the root has no git, and the tool and the library keep
# the version build_userspace gave them.)
# shellcheck disable=SC2016 # expanded by the root's sh
if in_root trixie "$top" sh -ec '
	p=$(mktemp -d) && mkdir -p "$p/bin" "$p/share/man"
	find "$p" | sort > "$p.before"
	make -s -C /zcdev install-tools install-lib install-headers install-man PREFIX="$p" \
		ZCDEV_VERSION="$1" > /dev/null
	test -x "$p/bin/zcdev" && test -f "$p/include/linux/zcdev.h"
	cc -Wall -Werror -o "$p.prog" /zcdev/examples/splice_out.c \
		$(PKG_CONFIG_PATH="$p/lib/pkgconfig" pkg-config --cflags --libs libzcdev)
	LD_LIBRARY_PATH="$p/lib" "$p.prog" < /dev/null 2>&1 | grep -q "open /dev/zcdev"
	make -s -C /zcdev uninstall-tools uninstall-lib uninstall-headers uninstall-man uninstall-dirs \
		PREFIX="$p" ZCDEV_VERSION="$1" > /dev/null
	find "$p" | sort | diff "$p.before" -
	rm -rf "$p" "$p.before" "$p.prog"' sh "$("$top/scripts/version.sh")" \
	> "$build/install-check.log" 2>&1; then
	record "ok make install, make uninstall: an example builds with the installed libzcdev.pc; only the directories install made are gone" host
else
	record "not ok make install, make uninstall (log: build/install-check.log)" host
	sed 's/^/    # /' "$build/install-check.log" | head -n 10
fi

declare -A kos
for s in "${series[@]}"; do
	say "$s: building the module against ${kver[$s]}"
	if build_module "$s" "${kver[$s]}"; then
		record "ok build module" "$s"
	else
		record "not ok build module" "$s"
	fi
	[ ! -f "$ko" ] || kos[$s]=$ko
done

accel_wait
for s in "${series[@]}"; do
	if [ -z "$have_userspace" ] || [ -z "${kos[$s]:-}" ]; then
		record "not ok guest: not booted, a build failed" "$s"
		continue
	fi
	ko=${kos[$s]} t0=$SECONDS dkms_ko=
	# The debug kernel is not a packaged one.
	[ "$s" = debug ] || pkg_check "$s"
	boot "$s" "${kver[$s]}"
	say "$s: $(counts "$s") in $((SECONDS - t0))s"
done

if [ "$(host_state)" = "$host_before" ]; then
	record "ok host unchanged (/boot, apt sources, kernel and DKMS packages)" host
else
	record "not ok host changed:" host
	diff <(echo "$host_before") <(host_state) | sed 's/^/    # /' || true
fi

echo
echo "== summary (${accel_args[1]}, $((SECONDS - start))s)"
for w in "${wheres[@]}"; do
	printf '%-34s %s\n' "$w${kver[$w]:+ (${kver[$w]})}" "$(counts "$w")"
done
[ ${#engines[@]} -eq 0 ] || printf 'engine %s\n' "${engines[@]}"
[ ${#failures[@]} -eq 0 ] || printf 'FAIL %s\n' "${failures[@]}"
echo "skipped: $skipped"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
