#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make run: boot one kernel in QEMU with the module loaded and zcdev on
# PATH, and give a shell on the console (exit it to power off); or, with
# CMD, run that one command in the guest and exit with its exit status.
# The rig's own messages go to stderr, the guest's console to stdout.
#
# Environment:
#   KERNEL         a lane: 6.1 (default), 6.12, newest or debug (roots.sh)
#   CMD            the command to run instead of a shell
#   V=1            show the kernel's messages (the guest boots quiet)
#   ZCDEV_TIMEOUT  seconds CMD may take (default 900); a shell has no limit
#   ZCDEV_ACCEL    kvm or tcg: skip the KVM probe
#   ZCDEV_BENCH=1  boot without the test lanes' poisoning (make bench)

set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

kernel=${KERNEL:-6.1}
cmd=${CMD:-}
timeout_s=${ZCDEV_TIMEOUT:-900}

[ -n "$cmd" ] || [ -t 0 ] || die "a shell needs a terminal; give CMD=... to run a command"

resolve_kernels "$kernel"
v=${kver[$kernel]}

lock_build
accel_start "$v"
say "building the tool and the selftests"
build_userspace || [ -x "$top/tools/zcdev" ] || die "no tools/zcdev to put in the guest"
say "$kernel: building the module against $v"
build_module "$kernel" "$v" || [ -f "$ko" ] || die "no module to load"
accel_wait

if [ -n "$cmd" ]; then
	# One single-quoted sh word, whatever CMD holds.
	config=(mode=cmd "cmd='${cmd//\'/\'\\\'\'}'")
	# Progress meters and colours only for a terminal.
	[ ! -t 1 ] || config+=(tty=1)
	console=(-serial stdio)
else
	# The guest's console cannot learn the terminal's size by itself.
	config=(mode=shell)
	read -r rows cols < <(stty size)
	[ "$rows" = 0 ] || config+=("rows=$rows" "cols=$cols")
	# ^C goes to the guest, not to QEMU.
	console=(-chardev 'stdio,id=console,signal=off' -serial chardev:console)
fi
initrd=$build/$kernel/run.cpio.gz
vfile=$build/$kernel/run-status.txt
pack_initramfs "$initrd" "$ko" "${config[@]}"
rm -f "$vfile"
exec 9>&-	# the lock: the guest needs nothing more from build/
append=$kernel_cmdline
[ -z "${ZCDEV_BENCH:-}" ] || append=$kernel_cmdline_bench
[ -n "${V:-}" ] || append+=" quiet"
set_qemu_cmd "$v" "$initrd" "$vfile" "${console[@]}" "${nic_args[@]}" -- "$append"

say "$kernel: booting $v"
rc=0
if [ -z "$cmd" ]; then
	"${qemu_cmd[@]}" || rc=$?
elif [ -t 1 ]; then
	timeout --foreground -k 10 "$timeout_s" "${qemu_cmd[@]}" < /dev/null || rc=$?
else
	# For a file or a pipe: \n line ends, not the guest tty's \r\n, and
	# not the kernel's last word, which even "quiet" prints.
	timeout --foreground -k 10 "$timeout_s" "${qemu_cmd[@]}" < /dev/null |
		sed -e 's/\r$//' -e '/^\[ *[0-9.]*\] reboot: Power down$/d' ||
		rc=${PIPESTATUS[0]}
fi

status=$(sed -n 's/^status \([0-9]*\)\r*$/\1/p' "$vfile" 2>/dev/null)
if [ -z "$status" ]; then
	[ "$rc" != 124 ] || die "$kernel: no exit status from the guest: timed out after ${timeout_s}s"
	die "$kernel: no exit status from the guest: it stopped early (a kernel crash or panic?)"
fi
exit "$status"
