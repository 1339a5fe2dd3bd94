# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=sh
#
# ktap.sh: what the shell test programs share (sourced, POSIX sh: busybox
# ash in the QEMU guest). It finds the tool ($zc: ZCDEV, else tools/zcdev
# of this tree, else zcdev on PATH) and the device ($dev: ZCDEV_DEV, else
# /dev/zcdev), prints the KTAP header, skips the whole program (exit 4)
# when the device is not there, makes $tmp (removed on exit) and gives
# case_, ktap_end, splat_count and counters.

dev=${ZCDEV_DEV:-/dev/zcdev}
here=$(dirname "$0")
if [ -n "${ZCDEV:-}" ]; then
	zc=$ZCDEV
elif [ -x "$here/../../tools/zcdev" ]; then
	zc=$here/../../tools/zcdev
else
	zc=zcdev
fi

echo "TAP version 13"
if [ ! -c "$dev" ]; then
	echo "1..0 # SKIP $dev is missing: the zcdev module is not loaded"
	exit 4
fi

tmp=$(mktemp -d) || exit 1
trap 'exec 3>&-; rm -rf "$tmp"' EXIT
n=0
fails=0
# KTAP_SHOW_OK=1: a passing case's output is shown too (as comments).
KTAP_SHOW_OK=${KTAP_SHOW_OK:-}

# case_ NAME FUNCTION [ARGS]: one test case; its output becomes comments
# (of a failure, or of any case with KTAP_SHOW_OK=1). A FUNCTION that
# returns 4 was skipped: its first line of output says why.
case_() {
	name=$1
	shift
	n=$((n + 1))
	if "$@" > "$tmp/log" 2>&1; then
		echo "ok $n $name"
		[ -z "$KTAP_SHOW_OK" ] || sed 's/^/# /' "$tmp/log"
	elif [ $? = 4 ]; then
		echo "ok $n $name # SKIP $(head -n 1 "$tmp/log")"
	else
		fails=$((fails + 1))
		echo "not ok $n $name"
		sed 's/^/# /' "$tmp/log"
	fi
}

# The plan after the cases (KTAP allows it last), a summary, the status.
ktap_end() {
	echo "1..$n"
	echo "# $((n - fails)) passed, $fails failed"
	[ "$fails" = 0 ]
}

# The kernel log's splat lines (the rig's patterns, when there).
splat_count() {
	[ -r /etc/zcdev/splat-patterns ] || { echo 0; return; }
	dmesg | grep -E -f /etc/zcdev/splat-patterns |
		grep -cvE -f /etc/zcdev/splat-exceptions
}

# The module's counters, "name value" lines: debugfs when it is there
# (reading it opens no file of the module), else zcdev stats.
counters() {
	if [ -r /sys/kernel/debug/zcdev/stats ]; then
		cat /sys/kernel/debug/zcdev/stats
	else
		"$zc" stats
	fi
}
