#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# /init of the zcdev QEMU guest (busybox sh). /etc/zcdev/config, written by
# the host, sets mode= to one of:
#   probe  write "OK" and power off: the host's KVM probe
#   check  load the module, run every program in /tests, unload the module,
#          scan the kernel log; one result line per test case and check
#   shell  load the module and give a shell on the console
#   cmd    load the module and run the command cmd= (on the console, or
#          through a pipe when tty= is not 1: the host's output is no tty)
# and hang=1 makes check mode hang after loading the module (to show that
# the host's timeout catches it). lane= names the lane (6.1, 6.12, newest,
# debug), which the tests see as ZCDEV_LANE: the engines run in some lanes
# only. nic_addr= and nic_sink= are the NIC's address and the receiver
# QEMU serves outside the guest (lib.sh: nic_args), which the tests see as
# ZCDEV_NIC_SINK once eth0 is up, and ZCDEV_NIC_ERROR says why it is not.
#
# Results leave through the second serial port, /dev/ttyS1, which the host
# saves to a file; the console (ttyS0) is for people. The last line is
# "verdict ..." (check) or "status N" (shell, cmd); a crash or a hang never
# writes it.
#
# busybox ash has local and pipefail:
# shellcheck disable=SC3040,SC3043

set -u -o pipefail
export PATH=/bin:/usr/bin HOME=/root

mode='' hang='' rows='' cols='' cmd='' tty='' lane='' nic_addr='' nic_sink=''
# shellcheck source=/dev/null
. /etc/zcdev/config
export ZCDEV_LANE="$lane"

# fd 7 stays open on the port for the whole run: opening and closing the
# tty for every line lost a line now and then (a close that does not wait
# for the UART to drain), and the host counts every line.
report() {
	echo "$*" >&7
}

# Each line of $1 as a "# " comment line, for the host to show.
note() {
	printf '%s\n' "$1" | while IFS= read -r line; do report "# $line"; done
}

mount -t devtmpfs devtmpfs /dev
stty -F /dev/ttyS1 raw -echo 2>/dev/null
exec 7> /dev/ttyS1
# The last close of the port waits until the UART has sent everything
# (closing_wait), so nothing reported is lost to the power-off.
power_off() {
	exec 7>&-
	poweroff -f
}

if [ "$mode" = probe ]; then
	report OK
	power_off
fi
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t debugfs debugfs /sys/kernel/debug
mount -t tracefs tracefs /sys/kernel/tracing
ip link set lo up

# The NIC (lib.sh: nic_args): e1000, whose driver is a module in Debian's
# kernels (/lib/e1000.ko) and built into the debug kernel. eth0 gets
# nic_addr; its carrier comes a moment later, which nic_test waits for.
# Prints why it failed.
nic_up() {
	local out i
	if [ -f /lib/e1000.ko ] && ! out=$(insmod /lib/e1000.ko 2>&1); then
		echo "insmod e1000.ko: $out"
		return 1
	fi
	for i in $(seq 100); do
		[ -e /sys/class/net/eth0 ] && break
		sleep 0.1
	done
	if [ ! -e /sys/class/net/eth0 ]; then
		echo "no eth0 10 s after loading the e1000 driver (no NIC from QEMU?)"
		return 1
	fi
	out=$({ ip link set eth0 up && ip addr add "$nic_addr" dev eth0; } 2>&1) ||
		{ echo "configuring eth0 with $nic_addr: $out"; return 1; }
}

if [ -n "$nic_sink" ]; then
	if nic_why=$(nic_up); then
		export ZCDEV_NIC_SINK="$nic_sink"
		echo "zcdev: NIC: eth0 $nic_addr, the sink at $nic_sink"
	else
		export ZCDEV_NIC_ERROR="$nic_why"
		echo "zcdev: NIC: eth0 is not up, the NIC tests will fail: $nic_why" >&2
		[ "$mode" != check ] || report "# NIC: eth0 is not up, the NIC tests will fail: $nic_why"
	fi
fi

# Kernel log lines that match a splat pattern, less the expected ones.
splats() {
	dmesg | grep -E -f /etc/zcdev/splat-patterns | grep -vE -f /etc/zcdev/splat-exceptions
}

# Taint beyond O (4096, out-of-tree) and E (8192, unsigned), which loading
# zcdev sets by itself, means the kernel saw something go wrong.
bad_taint() {
	echo $(($(cat /proc/sys/kernel/tainted) & ~(4096 | 8192)))
}

passed=0 failed=0 skipped=0

# result "ok|not ok|skip PROGRAM TEST" is counted, shown and reported;
# a "# ..." line is only shown and reported.
result() {
	case $1 in
	"ok "*) passed=$((passed + 1)) ;;
	"not ok "*) failed=$((failed + 1)) ;;
	"skip "*) skipped=$((skipped + 1)) ;;
	esac
	echo "zcdev: $1"
	report "$1"
}

# KTAP from kselftest_harness on stdin -> result lines, each failure
# followed by its first diagnostics as "# " lines. 6.1's harness prints
# "ok N # SKIP reason" without the name, which the "#  RUN" line before
# it gives. A test's whole description is kept (the engines put their
# time and seed there). A program that skips as a whole ("1..0 # SKIP
# reason", exit status 4) is one skip line with the reason. Tests that
# never reported (a crash, a kill) fail.
ktap_results() {
	awk -v prog="$1" -v rc="$2" '
	/^#  RUN / { name = $3; ndiag = 0; next }
	/^# / && ndiag < 10 { diag[ndiag++] = $0 }
	/^1\.\.[0-9]+$/ { plan = substr($0, 4) + 0 }
	/^1\.\.0 # SKIP / { why = $0; sub(/^1\.\.0 # SKIP */, "", why) }
	/^ok [0-9]+ / {
		n++
		if (/ # SKIP/) {
			reason = $0
			sub(/.* # SKIP */, "", reason)
			print "skip " prog " " name " # " reason
		} else {
			desc = $0
			sub(/^ok [0-9]+ /, "", desc)
			print "ok " prog " " desc
		}
	}
	/^not ok [0-9]+ / {
		n++
		fails++
		desc = $0
		sub(/^not ok [0-9]+ /, "", desc)
		print "not ok " prog " " desc
		for (i = 0; i < ndiag; i++)
			print diag[i]
	}
	END {
		if (n < plan)
			print "not ok " prog " reported " n + 0 " of " plan " tests, exit status " rc
		else if (rc == 4 && n == 0 && why != "")
			print "skip " prog " # " why
		else if (rc == 4 && n == 0)
			print "skip " prog " (exit status 4)"
		else if (n == 0)
			print "not ok " prog " reported no tests, exit status " rc
		else if (rc != 0 && rc != 4 && !fails)
			print "not ok " prog " exit status " rc
	}'
}

# The ring's pages after a test program: every test leaves the ring at its
# load-time size, and pages_held (the pages the module owns) must match it.
check_pages_held() {
	local held size loaded
	held=$(awk '$1 == "pages_held" { print $2 }' /sys/kernel/debug/zcdev/stats)
	size=$(cat /sys/class/misc/zcdev/ring_pages)
	loaded=$(cat /sys/module/zcdev/parameters/ring_pages)
	if [ "$held" = "$size" ] && [ "$size" = "$loaded" ]; then
		result "ok check pages-held after $1"
	else
		result "not ok check pages-held after $1"
		note "pages_held=$held ring_pages=$size load-time ring_pages=$loaded"
	fi
}

# kmemleak reports an object once it has looked unreferenced in two scans.
check_kmemleak() {
	local leaks
	[ -e /sys/kernel/debug/kmemleak ] || return 0
	echo scan > /sys/kernel/debug/kmemleak
	sleep 5
	echo scan > /sys/kernel/debug/kmemleak
	leaks=$(cat /sys/kernel/debug/kmemleak)
	if [ -z "$leaks" ]; then
		result "ok check kmemleak"
	else
		result "not ok check kmemleak"
		note "$(echo "$leaks" | head -n 40)"
	fi
}

# Load and unload again and again: the module's exit WARNs (and so panics
# the guest) if its page count is not back to zero.
check_reload() {
	local i out
	for i in $(seq 100); do
		out=$({ insmod /lib/zcdev.ko && rmmod zcdev; } 2>&1) || break
	done
	if [ -z "$out" ] && [ "$i" = 100 ] && ! grep -q '^zcdev ' /proc/modules; then
		result "ok check load-unload x100"
	else
		result "not ok check load-unload x100"
		note "round $i: $out"
	fi
}

# The module the lane's zcdev-dkms package built (selftests/qemu/pkg.sh),
# when the host packed one: it loads, reports the version the tree says,
# and moves bytes through the ring unchanged.
check_dkms_module() {
	local out want
	[ -f /lib/zcdev-dkms.ko ] || return 0
	want=$(cat /etc/zcdev/version)
	if out=$(insmod /lib/zcdev-dkms.ko 2>&1) &&
	   [ "$(cat /sys/module/zcdev/version)" = "$want" ] &&
	   out=$(printf 'through the dkms module\n' > /dev/zcdev &&
		 head -c 24 /dev/zcdev) &&
	   [ "$out" = "through the dkms module" ] &&
	   out=$(rmmod zcdev 2>&1); then
		result "ok check the DKMS-built module loads, moves bytes, unloads"
	else
		result "not ok check the DKMS-built module loads, moves bytes, unloads"
		note "$out"
		rmmod zcdev 2>/dev/null
	fi
}

run_tests() {
	local t name rc line start
	for t in /tests/*_test*; do
		name=${t##*/}
		report "run $name"
		echo "zcdev: running $name"
		start=$(date +%s)
		# fd 7, the results port, is not the tests' to write.
		ZCDEV_KO=/lib/zcdev.ko "$t" < /dev/null 7>&- 2>&1 | tee "/tmp/$name.out"
		rc=$?
		result "# $name: exit status $rc after $(($(date +%s) - start))s"
		ktap_results "$name" "$rc" < "/tmp/$name.out" > "/tmp/$name.results"
		while IFS= read -r line; do
			result "$line"
		done < "/tmp/$name.results"
		if grep -q '^zcdev ' /proc/modules; then
			check_pages_held "$name"
		else
			result "not ok check $name left the module unloaded"
			insmod /lib/zcdev.ko
		fi
	done
}

check() {
	local out found

	if out=$(insmod /lib/zcdev.ko 2>&1); then
		result "ok check insmod"
		if [ "$hang" = 1 ]; then
			echo "zcdev: hanging on purpose (hang=1)"
			while :; do sleep 3600; done
		fi
		run_tests
		if out=$(rmmod zcdev 2>&1); then
			result "ok check rmmod"
			check_reload
			check_dkms_module
		else
			result "not ok check rmmod"
			note "$out"
		fi
		check_kmemleak
	else
		result "not ok check insmod"
		note "$out"
	fi

	found=$(splats)
	if [ -z "$found" ] && [ "$(bad_taint)" = 0 ]; then
		result "ok check kernel-log"
	else
		result "not ok check kernel-log"
		[ -z "$found" ] || note "$(echo "$found" | head -n 20)"
		note "taint: $(cat /proc/sys/kernel/tainted)"
	fi
	report "verdict $passed passed, $failed failed, $skipped skipped"
}

# shell and cmd: the exit status goes out; splats are shown, not judged.
interactive() {
	local status found

	insmod /lib/zcdev.ko || echo "zcdev: insmod failed; carrying on without the module" >&2
	if [ "$mode" = shell ]; then
		[ -z "$rows" ] || stty -F /dev/ttyS0 rows "$rows" cols "$cols"
		echo "zcdev: the module is loaded and zcdev is on PATH; exit the shell to power off"
		# cttyhack makes the console the controlling tty: job control, ^C.
		PS1='zcdev:\w# ' setsid cttyhack sh
	elif [ "$tty" = 1 ]; then
		sh -c "$cmd" < /dev/null
	else
		sh -c "$cmd" < /dev/null 2>&1 | cat
	fi
	status=$?
	found=$(splats)
	[ -z "$found" ] || printf 'zcdev: the kernel log has splats:\n%s\n' "$found" >&2
	report "status $status"
}

case $mode in
check) check ;;
shell | cmd) interactive ;;
*) echo "zcdev: unknown mode '$mode' in /etc/zcdev/config" >&2 ;;
esac
power_off
