#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# stress_ng_test.sh: stress-ng, an engine nobody here wrote (issue 22),
# against the loaded module, in the stock lanes (6.1, 6.12, newest; the
# rig's debug lane runs trinity_test.sh instead). Its dev stressor works
# on /dev/zcdev (--dev-file); the splice, vm-splice, tee, sendfile and
# mmap stressors take no file in stress-ng (see stress-ng(1): their data
# goes /dev/zero -> pipe -> /dev/null, a temporary file -> /dev/null,
# anonymous memory), so they run beside it as load on the same kernel
# paths. Every stressor runs with --verify, for a bounded time, with a
# seed printed for a replay. Then nothing may hold the module (no writer,
# module refcount 0), its pages must be back to the ring's size, and the
# kernel log must have no new splat. KTAP on stdout; exit 4 (skip) when
# the device is not there or in the debug lane.
#
# Environment: ZCDEV_LANE (the rig's lane), ZCDEV_STRESS_NG_SECS (default
# 15), ZCDEV_STRESS_NG_SEED (default random), and ktap.sh's.

set -u

# shellcheck source=selftests/zcdev/ktap.sh
. "$(dirname "$0")/ktap.sh"

if [ "${ZCDEV_LANE:-}" = debug ]; then
	echo "1..0 # SKIP stress-ng runs in the stock lanes; the debug lane runs trinity"
	exit 4
fi

secs=${ZCDEV_STRESS_NG_SECS:-15}
seed=${ZCDEV_STRESS_NG_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
sys=/sys/class/misc/zcdev
dbg=/sys/kernel/debug/zcdev/stats


t_stress_ng() {
	command -v stress-ng > /dev/null || { echo "stress-ng is not installed"; return 1; }
	[ ! -r /etc/zcdev/engines ] || sed 's/^/Debian package: /' /etc/zcdev/engines
	stress-ng --version
	mkdir -p "$tmp/work"
	splats=$(splat_count)
	counters > "$tmp/before"
	set -- stress-ng --dev 1 --dev-file "$dev" --splice 1 --vm-splice 1 \
		--tee 1 --sendfile 1 --mmap 1 --mmap-bytes 16M --verify \
		--seed "$seed" --timeout "${secs}s" --temp-path "$tmp/work" \
		--metrics-brief
	echo "$*"
	start=$(date +%s)
	# A hang fails too: the bound is twice the planned time.
	timeout $((secs * 2 + 30)) "$@"
	rc=$?
	took=$(($(date +%s) - start))
	counters > "$tmp/after"
	echo "the counters that moved:"
	awk 'NR == FNR { b[$1] = $2; next }
		$2 != b[$1] { print "  " $1 " +" $2 - b[$1]; n++ }
		END { if (!n) print "  none" }' "$tmp/before" "$tmp/after"
	new=$(($(splat_count) - splats))
	echo "exit status $rc after ${took}s, $new new splat lines in the kernel log"
	[ "$rc" = 0 ] && [ "$new" = 0 ]
}

# Nothing holds the module or its pages once stress-ng is gone.
t_back_to_zero() {
	writers=$(cat "$sys/writers")
	refcnt=$(cat /sys/module/zcdev/refcnt)
	size=$(cat "$sys/ring_pages")
	used=$(cat "$sys/used")
	held=$(awk '$1 == "pages_held" { print $2 }' "$dbg" 2>/dev/null)
	echo "writers=$writers refcnt=$refcnt ring_pages=$size pages_held=${held:-?} used=$used"
	# What the dev stressor left unread goes, for the programs after this.
	[ "$used" = 0 ] || "$zc" reset
	[ "$writers" = 0 ] && [ "$refcnt" = 0 ] && { [ -z "$held" ] || [ "$held" = "$size" ]; }
}

start=$(date +%s)
if t_stress_ng > "$tmp/engine.log" 2>&1; then r=ok; else r="not ok"; fi
sed 's/^/# /' "$tmp/engine.log"
echo "$r 1 stress-ng $(($(date +%s) - start))s seed=$seed (dev --dev-file $dev, splice, vm-splice, tee, sendfile, mmap; --verify)"
[ "$r" = ok ] || fails=$((fails + 1))
n=1
case_ stress_ng_left_nothing_held t_back_to_zero
ktap_end
