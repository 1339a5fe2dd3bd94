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

# shellcheck source=selftests/qemu/roots.sh
. "$qemu_dir/roots.sh"

# Every problem the kernel notices is fatal, so that it can only end the
# run without a verdict. The slab and page poisoning catch use-after-free
# and overruns on Debian's stock kernels; preempt=full widens race windows.
kernel_cmdline="console=ttyS0 panic=-1 oops=panic panic_on_warn=1"
kernel_cmdline+=" softlockup_panic=1 hung_task_panic=1"
kernel_cmdline+=" slub_debug=FZP page_poison=1 preempt=full"
# make bench measures the stock kernel as a machine runs it: without the
# slab and page poisoning (every page allocated or freed is then written
# and checked, a tax on exactly the paths that give a lent slot a fresh
# page) and with the kernel's own preemption model. A warning or an oops
# still ends the run.
# shellcheck disable=SC2034 # run.sh's, for make bench
kernel_cmdline_bench="console=ttyS0 panic=-1 oops=panic panic_on_warn=1"
# Under TCG a vCPU thread can go without host CPU for tens of seconds when
# the host is busy (other guests, builds): a soft lockup detector at its
# default 20 s then fires inside text_poke_bp() waiting for the other vCPU,
# and RCU reports a stall. Those thresholds go to their maximum there
# (120 s soft lockup, 300 s RCU stall, 600 s hung task): a real lockup or
# hang still ends the run, only later.
kernel_cmdline_tcg=" watchdog_thresh=60 rcupdate.rcu_cpu_stall_timeout=300"
kernel_cmdline_tcg+=" sysctl.kernel.hung_task_timeout_secs=600"

# The guest's NIC: QEMU's Intel e1000 (82540EM) on a user-mode network
# (libslirp, inside the QEMU process), so that TCP out of the guest leaves
# through a device that reads the bytes from guest memory by DMA: the
# e1000 driver offers scatter-gather, checksum offload and TSO, and the
# device model gathers each descriptor's buffer from guest memory and
# does the checksums and segmentation itself. MSG_ZEROCOPY and sendfile
# from the ring then hand ring pages to the device (nic_test). virtio-net
# would not do: without a vnet-header backend (user-mode networking has
# none) QEMU offers it no checksum offload, its driver then has no
# scatter-gather, and TCP copies every MSG_ZEROCOPY send.
#
# The network reaches nothing but the sink: restrict=on drops every
# connection and datagram the guest sends anywhere else (the host's own
# addresses included; slirp answers ARP, and pings of its own virtual
# addresses, itself), and the guestfwd rule hands each connection
# to the sink address to a new `cksum` that QEMU starts with the
# connection as its standard input and output: it replies with the CRC
# and the length of what it got once the guest shuts down its side, and
# exits. No tap device, no host network configuration, no listening
# port, nothing on the host but that process while a connection lasts.
# No option ROM (romfile=): the guest boots with -kernel, not from the
# network. init.sh gives eth0 nic_addr and tells the tests nic_sink.
nic_addr=10.0.2.15/24
nic_sink=10.0.2.100:9000
# shellcheck disable=SC2034,SC2054 # check.sh's and run.sh's; QEMU's commas
nic_args=(-netdev "user,id=nic,net=10.0.2.0/24,restrict=on,ipv6=off,guestfwd=tcp:$nic_sink-cmd:cksum"
	  -device e1000,netdev=nic,romfile=)

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

# Kernel log lines that match a splat pattern and are no splat: the
# command line (it names panic_on_warn and the like), and the kill of the
# poison test's own processes after it poisoned a ring page on purpose
# (zz_hwpoison_test, truncated to the kernel's 15-character comm).
splat_exceptions=(
	'Command line:'
	'MCE: Killing zz_hwpoison_tes:[0-9]+ due to hardware memory corruption fault'
)

# The kernel messages in a console log that match a splat pattern.
# Console lines without a printk timestamp are user space (test output).
console_splats() {
	grep -aE '\[ *[0-9]+\.[0-9]{6}\]' "$1" |
		grep -aE -f <(printf '%s\n' "${splat_patterns[@]}") |
		grep -avE -f <(printf '%s\n' "${splat_exceptions[@]}") || true
}

# What the rig promises to leave alone on the host: /boot, the apt sources,
# the kernel, header and DKMS packages and the DKMS tree. Taken before
# anything is installed or prepared, compared at the end.
host_state() {
	# -A: /boot itself, not the mtime of / that ".." would show.
	ls -lA /boot 2>/dev/null
	cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null | sha256sum
	dpkg-query -W -f='${Package} ${Version} ${Status}\n' 'linux-image-*' \
		'linux-headers-*' 'linux-binary-*' 'dkms' '*-dkms' 2>/dev/null
	ls -lA /var/lib/dkms /lib/modules 2>/dev/null
	true	# a directory or package that is not there is part of the state
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

# Fills kver[LANE]=RELEASE for each lane asked for (6.1, 6.12, newest,
# debug), with the kernel's image in kimage[RELEASE], its build tree inside
# its root in kdir[RELEASE], the root in kroot[RELEASE], the memory the
# guest wants in kmem[RELEASE] (KASAN wants more), the kernel parameters
# it adds to the rig's in kargs[RELEASE] and, for Debian's kernels, the
# NIC's driver module in knic[RELEASE] (the debug kernel has it built
# in). deps.sh first installs the host's tools.
declare -A kver kimage kdir kroot kmem kargs knic
resolve_kernels() {
	local lane v out KERNEL_IMAGE KDIR
	"$qemu_dir/deps.sh" >&2 || die "deps.sh could not install the rig's tools"
	for lane in "$@"; do
		[ -n "${lane_root[$lane]:-}" ] ||
			die "unknown lane '$lane' (lanes: ${!lane_root[*]})"
	done
	# The roots are independent: a fresh machine builds them side by side.
	local -A want=()
	local r pids=()
	for lane in "$@"; do want[${lane_root[$lane]}]=1; done
	for r in "${!want[@]}"; do
		ensure_root "$r" &
		pids+=($!)
	done
	for r in "${pids[@]}"; do wait "$r" || exit 1; done
	for r in "${!want[@]}"; do root_update "$r"; done
	for lane in "$@"; do
		[ "$lane" != debug ] || continue
		v=$(lane_kernel "$lane") || exit 1
		lane_nic_module "$lane" "$v"
		kver[$lane]=$v kimage[$v]=$cache/kernels/$v/vmlinuz
		knic[$v]=$cache/kernels/$v/e1000.ko
		kroot[$v]=${lane_root[$lane]} kdir[$v]=/usr/src/linux-headers-$v
		say "lane $lane: $v (root ${lane_root[$lane]})"
	done
	if [[ " $* " == *" debug "* ]]; then
		v=${kver[newest]:-$(lane_kernel newest)} || exit 1
		say "debug: building or reusing the debug kernel from linux-source-${v%.*+*} (the first build takes ~15 minutes)"
		out=$(debug_kernel "$v") || die "the debug kernel does not build"
		eval "$out"
		v=$(cat "$roots/trixie$KDIR/include/config/kernel.release")
		kver[debug]=$v kimage[$v]=$roots/trixie$KERNEL_IMAGE kdir[$v]=$KDIR
		kroot[$v]=trixie kmem[$v]=2048
		# The PCI interrupt of the NIC from the BIOS's MP table, not
		# from ACPI: QEMU's pc machine gives it by a _PRT method that
		# loops over 128 entries, which the debug kernel's AML
		# interpreter (KASAN, lockdep, kmemleak, under TCG) did not
		# finish within ACPICA's 30 s loop timeout: 30 s more boot,
		# and e1000 left with no interrupt, no carrier. ACPI itself
		# stays (poweroff needs its S5 state).
		kargs[$v]=" acpi=noirq"
		say "lane debug: $v (root trixie)"
	fi
}

# root_source RELEASE: Debian's linux-source of RELEASE's series in the
# trixie root (for the debug kernel, the kselftest harness and checkpatch);
# prints the tarball's path inside the root.
root_source() {
	local series=${1%.*+*} tar
	tar=/usr/src/linux-source-$series.tar.xz
	if [ ! -f "$roots/trixie$tar" ]; then
		say "installing linux-source-$series in root trixie"
		root_apt trixie install "linux-source-$series" > /dev/null ||
			die "cannot install linux-source-$series in root trixie"
	fi
	echo "$tar"
}

# debug_kernel RELEASE: debug-kernel.sh inside the trixie root, on the
# source of RELEASE's series; prints KERNEL_IMAGE= and KDIR= (root paths).
debug_kernel() {
	local tar
	tar=$(root_source "$1") || return 1
	in_root trixie "$top" env LINUX_SOURCE_TAR="$tar" \
		SOURCE_PACKAGE="linux-source-${1%.*+*}" JOBS="$(nproc)" \
		/zcdev/selftests/qemu/debug-kernel.sh
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
		in_root "${kroot[$v]}" "$dir/src" \
		make -C "${kdir[$v]}" M=/zcdev ZCDEV_WERROR=1 -j"$(nproc)" \
		ZCDEV_VERSION="$("$top/scripts/version.sh")" modules
}

# The tool and every test program, static, built once in the trixie root
# (user space does not depend on the kernel), with the kselftest harness of
# the newest lane's source. Returns non-zero on a failure or a warning.
build_userspace() {
	local tar
	mkdir -p "$build"
	ensure_root trixie
	tar=$(root_source "${kver[newest]:-$(lane_kernel newest)}") || return 1
	# A root made before liburing-dev or pkgconf joined root_pkgs gets
	# them now.
	if [ ! -f "$roots/trixie/usr/include/liburing.h" ]; then
		say "installing liburing-dev in root trixie"
		root_apt trixie install liburing-dev > /dev/null ||
			die "cannot install liburing-dev in root trixie"
	fi
	if [ ! -x "$roots/trixie/usr/bin/pkg-config" ]; then
		say "installing pkgconf in root trixie"
		root_apt trixie install pkgconf > /dev/null ||
			die "cannot install pkgconf in root trixie"
	fi
	build_logged "$build/userspace.log" "the tool and the selftests" \
		in_root trixie "$top" make -C /zcdev LINUX_SOURCE_TAR="$tar" \
		ZCDEV_VERSION="$("$top/scripts/version.sh")" tools selftests
}

# pack_initramfs OUT KO CONFIG-LINE...: busybox, /init and its config
# (/etc/zcdev/config, "mode=..." and the like); unless KO is "", also the
# module, the tool, every test program, the engines stress-ng and trinity
# with their libraries (roots.sh), "lane=LANE" in the config, LANE
# taken from KO's place (build/LANE/src/module/zcdev.ko, build_module),
# and the NIC's address, its sink and (a Debian kernel) its driver module:
# such a guest gets nic_args.
pack_initramfs() {
	local out=$1 ko=$2 root a c lane
	shift 2
	root=$(mktemp -d "$build/initramfs.XXXXXX")
	# The guest's / (mktemp made it 0700): users other than root, like
	# trinity_test.sh's nobody, must reach /bin.
	chmod 0755 "$root"
	mkdir -p "$root"/{bin,dev,etc/zcdev,lib,proc,root,sys,tests,tmp}
	cp /bin/busybox "$root/bin/"
	for a in $("$root/bin/busybox" --list); do
		[ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"
	done
	install -m 0755 "$qemu_dir/init.sh" "$root/init"
	printf '%s\n' "$@" > "$root/etc/zcdev/config"
	printf '%s\n' "${splat_patterns[@]}" > "$root/etc/zcdev/splat-patterns"
	printf '%s\n' "${splat_exceptions[@]}" > "$root/etc/zcdev/splat-exceptions"
	if [ -n "$ko" ]; then
		cp "$ko" "$root/lib/zcdev.ko"
		"$top/scripts/version.sh" > "$root/etc/zcdev/version"
		# The lane's DKMS-built module, when check.sh made one.
		[ ! -f "${dkms_ko:-}" ] || cp "$dkms_ko" "$root/lib/zcdev-dkms.ko"
		cp "$top/tools/zcdev" "$root/bin/zcdev"
		for c in "$top"/selftests/zcdev/*_test.c; do
			[ ! -x "${c%.c}" ] || cp "${c%.c}" "$root/tests/"
		done
		for c in "$top"/selftests/zcdev/*_test.sh; do
			[ ! -e "$c" ] || install -m 0755 "$c" "$root/tests/"
		done
		# What the shell test programs source (init.sh runs only *_test*).
		cp "$top/selftests/zcdev/ktap.sh" "$root/tests/"
		for c in "$top"/examples/*.c; do
			[ ! -x "${c%.c}" ] || install -D "${c%.c}" "$root/examples/$(basename "$c" .c)"
		done
		# Their Debian versions, for the tests' logs (a replay needs them).
		if ! { root_engines && engine_tar | tar -x -C "$root" &&
		       in_root trixie "" dpkg-query -W "${engine_pkgs[@]}" \
				> "$root/etc/zcdev/engines"; }; then
			say "warning: no stress-ng and trinity for the guest; their tests will fail"
		fi
		# trinity_test.sh runs trinity as nobody (busybox su).
		printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' \
			'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' > "$root/etc/passwd"
		printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' > "$root/etc/group"
		lane=${ko#"$build"/}
		if [ "$lane" != "$ko" ]; then
			lane=${lane%%/*}
			echo "lane=$lane" >> "$root/etc/zcdev/config"
			a=${kver[$lane]:-}
			[ -z "$a" ] || [ -z "${knic[$a]:-}" ] || cp "${knic[$a]}" "$root/lib/e1000.ko"
		fi
		printf '%s\n' "nic_addr=$nic_addr" "nic_sink=$nic_sink" >> "$root/etc/zcdev/config"
	fi
	(cd "$root" && find . | cpio -o -H newc -R 0:0 --quiet | gzip -1) > "$out"
	rm -rf "$root"
}

# set_qemu_cmd VERSION INITRD VERDICT QEMU-ARGS... -- APPEND
# Fills qemu_cmd; the kernel gets APPEND, its own kargs and the
# accelerator's. The guest's second serial port (ttyS1) writes VERDICT.
# QEMU-ARGS: the console, and nic_args for a guest that tests (-nodefaults:
# without them a guest has no NIC, as the KVM probe's has none).
set_qemu_cmd() {
	local v=$1 initrd=$2 verdict=$3 console=()
	shift 3
	while [ "$1" != -- ]; do console+=("$1"); shift; done
	qemu_cmd=(qemu-system-x86_64 "${accel_args[@]}" -m "${kmem[$v]:-1024}" -smp 2
		  -nodefaults -display none -monitor none -no-reboot
		  "${console[@]}" -serial "file:$verdict"
		  -kernel "${kimage[$v]}" -initrd "$initrd" -append "$2${kargs[$v]:-}$accel_cmdline")
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
	local accel_args=(-accel kvm -cpu host) accel_cmdline='' qemu_cmd
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
	kvm) accel_args=(-accel kvm -cpu host) accel_cmdline= ;;
	tcg) accel_args=(-accel tcg -cpu 'max,-erms,-fsrm') accel_cmdline=$kernel_cmdline_tcg ;;
	*) die "ZCDEV_ACCEL must be kvm or tcg, not '$accel'" ;;
	esac
	say "accel: $accel ($why)"
}
