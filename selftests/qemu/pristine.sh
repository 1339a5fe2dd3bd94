#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make check-pristine (and .ci/run): the README's commands on a machine that
# has nothing installed but what the README names as prerequisites. A fresh
# Debian root of the host's own release is built with mmdebstrap
# (--variant=minbase, plus git and make), this repository's committed HEAD
# is cloned into it, and there, as root, COMMAND runs (default: make
# check); after make check, make run CMD='zcdev info' runs too, as the
# README's first command is used without a terminal. Every tool the rig needs must then come from the
# rig's own deps.sh: a host tool it forgets fails the run here, whatever
# the machine running this has installed over time.
#
# The rig's cache (roots, kernels, the debug kernel) is shared with the
# root, so a warm machine spends only minutes more than `make check`; the
# pristine root itself is made anew every run and removed afterwards.
# The host is checked as check.sh checks it: /boot, the apt sources and the
# kernel and DKMS packages are the same at the end.
#
# Usage: pristine.sh [COMMAND...]
# Environment: everything make check reads (KERNELS, ZCDEV_NEWEST,
# ZCDEV_ACCEL, ZCDEV_TIMEOUT, V) passes through; ZCDEV_PRISTINE_REF=COMMIT
# tests that commit instead of HEAD (to show what an older tree did).
# The last line is "N passed, N failed": make check's counts, with this
# script's own checks added.

set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || die "pristine: needs root (mmdebstrap, chroot)"
default_cmd=
[ $# -gt 0 ] || set -- make check
# The README's two commands: make check, then make run (without a
# terminal, so with CMD).
[ "$*" != "make check" ] || default_cmd=1

"$qemu_dir/deps.sh" >&2 || die "deps.sh could not install the rig's tools"
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[ -n "$codename" ] || die "pristine: no VERSION_CODENAME in /etc/os-release"
ref=${ZCDEV_PRISTINE_REF:-HEAD}
git -c safe.directory="$top" -C "$top" rev-parse --verify -q "$ref^{commit}" > /dev/null ||
	die "pristine: $ref is not a commit of $top"

# What the README says must be there before the clone.
prereqs=git,make

pristine=$cache/pristine
passed=0 failed=0
ok() { echo "ok $*"; passed=$((passed + 1)); }
notok() { echo "not ok $*"; failed=$((failed + 1)); }

host_before=$(host_state)
start=$SECONDS
mkdir -p "$cache"
exec 7> "$pristine.lock"
flock -n 7 || die "pristine: another pristine run holds $pristine.lock"
rm -rf "$pristine"
say "pristine: a fresh $codename root (minbase + $prereqs) in $pristine"
if ! mmdebstrap --quiet --variant=minbase --mode=root --include="$prereqs" \
	"$codename" "$pristine" "deb $root_mirror $codename main" \
	"deb $root_mirror $codename-updates main" \
	"deb $root_mirror_security $codename-security main" > "$cache/pristine.log" 2>&1; then
	cat "$cache/pristine.log" >&2
	die "pristine: mmdebstrap failed"
fi
ok "pristine: $codename root with only $prereqs ($((SECONDS - start))s)"

# What runs in the root, as a user of the README would: clone, then the
# commands. With no COMMAND given, `make run CMD='zcdev info'` follows
# make check on the first lane, and its status is reported on a line.
cat > "$pristine/pristine-run.sh" <<'EOF'
#!/bin/bash
set -u
ref=$1 run_info=$2 lane=$3
shift 3
git -c safe.directory='*' clone -q /src /root/zcdev || exit 1
cd /root/zcdev || exit 1
git -c advice.detachedHead=false checkout -q "$ref" || exit 1
echo "pristine: testing $(git log -1 --format='%h %s')" >&2
"$@"
rc=$?
if [ -n "$run_info" ]; then
	out=$(make run KERNEL="$lane" CMD='zcdev info' 2>&1)
	st=$?
	printf '%s\n' "$out" | tail -n 20 >&2
	echo "pristine-make-run $st $(printf '%s\n' "$out" | grep -ci 'ring')"
fi
exit $rc
EOF
chmod +x "$pristine/pristine-run.sh"
run_info=
[ -z "$default_cmd" ] || run_info=1
lane=${KERNELS:-6.1}
lane=${lane%% *}

# The root sees: the repository read-only at /src, the rig's cache at its
# own path, the host's /dev (KVM) and its DNS.
mkdir -p "$pristine/src" "$pristine$cache" "$build"
rc=0
# unshare --fork ignores SIGTERM and SIGINT: a run that is stopped must
# take the root's processes (QEMU among them) with it, so they get
# SIGKILL through unshare, whose --kill-child passes it on.
unshare --mount --pid --fork --kill-child -- /bin/sh -ec '
	p=$1 top=$2 cache=$3
	shift 3
	# A mount point of its own, so that the rig'"'"'s own unshare --mount
	# in there can make its "/" private.
	mount --bind "$p" "$p"
	mount -t proc proc "$p/proc"
	mount --rbind /dev "$p/dev"
	mount -t tmpfs tmpfs "$p/tmp"
	mount --bind -o ro /etc/resolv.conf "$p/etc/resolv.conf"
	mount --bind -o ro "$top" "$p/src"
	mount --bind "$cache" "$p$cache"
	exec chroot "$p" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		HOME=/root LANG=C.UTF-8 TERM=dumb \
		KERNELS="${KERNELS:-}" ZCDEV_NEWEST="${ZCDEV_NEWEST:-}" \
		ZCDEV_ACCEL="${ZCDEV_ACCEL:-}" ZCDEV_TIMEOUT="${ZCDEV_TIMEOUT:-}" \
		V="${V:-}" ZCDEV_CACHE="$cache" /pristine-run.sh "$@"
' pristine "$pristine" "$top" "$cache" "$ref" "$run_info" "$lane" "$@" \
	> >(tee "$build/pristine.out") &
upid=$!
# kill fails once the root's processes are gone; under set -e a failing
# EXIT trap would turn a passing run's status into 1, so it must not fail.
trap 'kill -KILL $upid 2> /dev/null || :' EXIT
trap 'kill -KILL $upid 2> /dev/null; exit 143' INT TERM
wait "$upid" || rc=$?
trap - INT TERM EXIT
# tee may still be writing the last lines.
sleep 1

# The inner counts, from the command's last "N passed, N failed" line.
inner=$(grep -aE '^[0-9]+ passed, [0-9]+ failed' "$build/pristine.out" | tail -n 1 || true)
if [ "$rc" = 0 ]; then
	ok "pristine: $* (status 0)"
else
	notok "pristine: $* (status $rc)"
fi
if [ -n "$run_info" ]; then
	read -r _ st n < <(grep -a '^pristine-make-run ' "$build/pristine.out" || echo "x none 0")
	if [ "$st" = 0 ] && [ "$n" -gt 0 ]; then
		ok "pristine: make run KERNEL=$lane CMD='zcdev info' (status 0)"
	else
		notok "pristine: make run KERNEL=$lane CMD='zcdev info' (status $st; log above)"
	fi
fi

rm -rf "$pristine"
if [ "$(host_state)" = "$host_before" ]; then
	ok "pristine: host unchanged (/boot, apt sources, kernel and DKMS packages)"
else
	notok "pristine: host changed:"
	diff <(echo "$host_before") <(host_state) | sed 's/^/    # /' || true
fi

read -r ipass _ ifail _ <<< "${inner//,/} 0 passed 0 failed"
echo "== pristine: $passed passed, $failed failed of its own, $((SECONDS - start))s"
echo "$((ipass + passed)) passed, $((ifail + failed)) failed"
[ "$rc" = 0 ] && [ "$failed" = 0 ] || exit 1
exit 0
