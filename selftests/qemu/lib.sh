# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# Shared by check.sh and run.sh (sourced, under set -euo pipefail): find the
# kernels, build the module and user space, pack the initramfs, choose KVM
# or TCG, and put together the QEMU command line.

qemu_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$qemu_dir/../.." && pwd)
build=$top/build

# The builds below must not depend on how the rig was started (make -j,
# make V=1 and the like).
unset MAKEFLAGS MFLAGS MAKELEVEL

say() { echo "rig: $*" >&2; }
die() { say "$*"; exit 1; }

# Every problem the kernel notices is fatal, so that it can only end the
# run without a verdict. The slab and page poisoning catch use-after-free
# and overruns on Debian's stock kernels; preempt=full widens race windows.
kernel_cmdline="console=ttyS0 panic=-1 oops=panic panic_on_warn=1"
kernel_cmdline+=" softlockup_panic=1 hung_task_panic=1"
kernel_cmdline+=" slub_debug=FZP page_poison=1 preempt=full"

# Kernel log lines that fail a run (extended regular expressions). The
# guest greps dmesg with them and the host greps the console log.
splat_patterns=(
	'BUG:' 'kernel BUG at' 'BUG [^ ]+ \((Not t|T)ainted' 'WARNING:' 'Oops'
	'general protection fault' 'Kernel panic' 'Call Trace:'
	'KASAN' 'UBSAN' 'possible recursive locking' 'circular locking'
	'inconsistent lock state' 'lock inversion' 'bad unlock balance'
	'held lock freed' 'lock held when returning to user space'
	'refcount_t:' 'list_add corruption' 'list_del corruption'
	'memory corruption' 'unreferenced object' 'blocked for more than'
)

# The kernel messages in a console log that match a splat pattern.
# Console lines without a printk timestamp are user space (test output).
console_splats() {
	grep -aE '\[ *[0-9]+\.[0-9]{6}\]' "$1" |
		grep -aE -f <(printf '%s\n' "${splat_patterns[@]}") |
		grep -av 'Command line:' || true
}

# One rig run at a time in a tree: they share build/. The lock is fd 9.
lock_build() {
	mkdir -p "$build"
	exec 9> "$build/.lock"
	if ! flock -n 9; then
		say "another rig run is using ${build#"$top"/}; waiting for it"
		flock 9
	fi
}

# deps.sh installs whatever is missing and reports "deps: kernel S -> V".
# Fills kver[SERIES]=VERSION for each series asked for. A Debian kernel is
# /boot/vmlinuz-V with its headers in /lib/modules/V/build; the series
# "debug" is the kernel debug-kernel.sh builds (and caches), whose image and
# tree go in kimage[V] and kdir[V], with the memory KASAN wants in kmem[V].
declare -A kver kimage kdir kmem
resolve_kernels() {
	local out line v
	out=$("$qemu_dir/deps.sh" "$@")
	echo "$out" >&2
	while IFS= read -r line; do
		[[ $line =~ ^deps:\ kernel\ ([^ ]+)\ -\>\ ([^ ]+)$ ]] &&
			kver[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
	done <<< "$out"
	if [[ " $* " == *" debug "* ]]; then
		say "debug: building or reusing the debug kernel (the first build takes ~15 minutes)"
		out=$("$qemu_dir/debug-kernel.sh") || die "the debug kernel does not build"
		local KERNEL_IMAGE KDIR
		eval "$out"
		v=$(cat "$KDIR/include/config/kernel.release")
		kver[debug]=$v kimage[$v]=$KERNEL_IMAGE kdir[$v]=$KDIR kmem[$v]=2048
	fi
	for line in "$@"; do
		[ -n "${kver[$line]:-}" ] || die "deps.sh named no kernel for series $line"
	done
}

# build_logged LOG WHAT COMMAND...: run a build with its output in LOG; an
# error or any warning fails it, with the log shown.
build_logged() {
	local log=$1 what=$2
	shift 2
	if ! "$@" > "$log" 2>&1; then
		cat "$log" >&2
		say "$what: the build failed (log: ${log#"$top"/})"
		return 1
	fi
	if grep -i 'warning:' "$log" >&2; then
		say "$what: the build printed warnings (log: ${log#"$top"/})"
		return 1
	fi
}

# Build the module for kernel VERSION in build/SERIES/src, a copy of the
# module sources (not what an in-tree build generated, like zcdev.mod.c),
# so that two kernels never share objects; rsync keeps the objects there
# between runs. Sets $ko. Returns non-zero if the build
# failed or printed a warning; the log is build/SERIES/build.log.
build_module() {
	local s=$1 v=$2 dir=$build/$1
	mkdir -p "$dir/src"
	rsync -a --delete --prune-empty-dirs \
		--include=/Kbuild --include=/VERSION --include=/module/ --include=/uapi/ \
		--exclude='/*' --include='*/' --exclude='*.mod.c' \
		--include='*.[chS]' --include=Kbuild --include=Makefile --exclude='*' \
		"$top/" "$dir/src/"
	ko=$dir/src/module/zcdev.ko
	rm -f "$ko"
	build_logged "$dir/build.log" "$s: the module for $v" \
		make -C "${kdir[$v]:-/lib/modules/$v/build}" M="$dir/src" ZCDEV_WERROR=1 \
		-j"$(nproc)" modules
}

# The tool and every test program, static, built once: user space does not
# depend on the kernel. Returns non-zero on a failure or a warning.
build_userspace() {
	mkdir -p "$build"
	build_logged "$build/userspace.log" "the tool and the selftests" \
		make -C "$top" tools selftests
}

# pack_initramfs OUT KO CONFIG-LINE...: busybox, /init and its config
# (/etc/zcdev/config, "mode=..." and the like); unless KO is "", also the
# module, the tool and every test program.
pack_initramfs() {
	local out=$1 ko=$2 root a c
	shift 2
	root=$(mktemp -d "$build/initramfs.XXXXXX")
	mkdir -p "$root"/{bin,dev,etc/zcdev,lib,proc,root,sys,tests,tmp}
	cp /bin/busybox "$root/bin/"
	for a in $("$root/bin/busybox" --list); do
		[ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"
	done
	install -m 0755 "$qemu_dir/init.sh" "$root/init"
	printf '%s\n' "$@" > "$root/etc/zcdev/config"
	printf '%s\n' "${splat_patterns[@]}" > "$root/etc/zcdev/splat-patterns"
	if [ -n "$ko" ]; then
		cp "$ko" "$root/lib/zcdev.ko"
		cp "$top/tools/zcdev" "$root/bin/zcdev"
		for c in "$top"/selftests/zcdev/*_test.c; do
			[ ! -x "${c%.c}" ] || cp "${c%.c}" "$root/tests/"
		done
		for c in "$top"/selftests/zcdev/*_test.sh; do
			[ ! -e "$c" ] || install -m 0755 "$c" "$root/tests/"
		done
		for c in "$top"/examples/*.c; do
			[ ! -x "${c%.c}" ] || install -D "${c%.c}" "$root/examples/$(basename "$c" .c)"
		done
	fi
	(cd "$root" && find . | cpio -o -H newc -R 0:0 --quiet | gzip -1) > "$out"
	rm -rf "$root"
}

# set_qemu_cmd VERSION INITRD VERDICT CONSOLE-ARGS... -- APPEND
# Fills qemu_cmd. The guest's second serial port (ttyS1) writes VERDICT.
set_qemu_cmd() {
	local v=$1 initrd=$2 verdict=$3 console=()
	shift 3
	while [ "$1" != -- ]; do console+=("$1"); shift; done
	qemu_cmd=(qemu-system-x86_64 "${accel_args[@]}" -m "${kmem[$v]:-1024}" -smp 2
		  -nodefaults -display none -monitor none -no-reboot
		  "${console[@]}" -serial "file:$verdict"
		  -kernel "${kimage[$v]:-/boot/vmlinuz-$v}" -initrd "$initrd" -append "$2")
}

# /dev/kvm can exist while KVM guests hang at boot, so KVM is used only
# once a guest has actually booted with it; otherwise TCG. The probe runs
# in the background (accel_start) while the builds run; accel_wait takes
# its answer. ZCDEV_ACCEL=kvm|tcg skips it.
accel_start() {
	accel_probe_pid=
	[ -n "${ZCDEV_ACCEL:-}" ] && return
	probe_kvm "$1" > "$build/kvm-probe.log" 2>&1 &
	accel_probe_pid=$!
}

probe_kvm() {
	local v=$1 t=${ZCDEV_KVM_PROBE_TIMEOUT:-30}
	local accel_args=(-accel kvm -cpu host) qemu_cmd
	if [ ! -w /dev/kvm ]; then
		echo "/dev/kvm is not there or not writable"
		return 1
	fi
	pack_initramfs "$build/kvm-probe.cpio.gz" "" mode=probe
	rm -f "$build/kvm-probe.verdict"
	set_qemu_cmd "$v" "$build/kvm-probe.cpio.gz" "$build/kvm-probe.verdict" \
		-serial "file:$build/kvm-probe.console" -- "console=ttyS0 panic=-1"
	timeout "$t" "${qemu_cmd[@]}" || true
	if grep -q '^OK' "$build/kvm-probe.verdict" 2>/dev/null; then
		echo "a KVM guest booted"
		return 0
	fi
	echo "a KVM guest did not boot within ${t}s"
	return 1
}

accel_wait() {
	local accel=${ZCDEV_ACCEL:-} why="ZCDEV_ACCEL"
	if [ -z "$accel" ]; then
		if wait "$accel_probe_pid"; then accel=kvm; else accel=tcg; fi
		why=$(tail -n 1 "$build/kvm-probe.log")
	fi
	case $accel in
	kvm) accel_args=(-accel kvm -cpu host) ;;
	tcg) accel_args=(-accel tcg -cpu max) ;;
	*) die "ZCDEV_ACCEL must be kvm or tcg, not '$accel'" ;;
	esac
	say "accel: $accel ($why)"
}
