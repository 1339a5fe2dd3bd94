#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# upper_limit_test.sh: max_ring_pages is bounded when the module loads
# (issue 14, item 9). `insmod zcdev.ko max_ring_pages=4294967295`, then
# `zcdev resize 4294967295`, must be refused or clamped and then fail
# cleanly; unbounded, the resize reaches kvmalloc() with a size it WARNs
# about, which panics a kernel with panic_on_warn (as the rig's does). It
# reloads the module, and a failure can take the kernel down, so it has a
# program of its own that sorts after the others. KTAP on stdout; exit 4
# (skip) when the device is not there. Needs root and ZCDEV_KO.

set -u

# shellcheck source=selftests/zcdev/ktap.sh
. "$(dirname "$0")/ktap.sh"
echo "1..1"
if [ "$(id -u)" != 0 ] || [ ! -r "${ZCDEV_KO:-}" ]; then
	echo "ok 1 max_ring_pages_bounded_at_load # SKIP needs root and ZCDEV_KO (the module to reload)"
	exit 4
fi

info_field() {
	"$zc" info | awk -v f="$1" '$1 == f { print $2 }'
}

err=$tmp/err
ok=0
rmmod zcdev || exit 1
if insmod "$ZCDEV_KO" max_ring_pages=4294967295 2> "$err"; then
	max=$(info_field max_ring_pages)
	echo "# loaded with max_ring_pages=4294967295: the module says $max"
	"$zc" resize 4294967295 2> "$err"
	rc=$?
	echo "# zcdev resize 4294967295: exit $rc: $(cat "$err")"
	[ "$max" != 4294967295 ] && [ "$rc" = 1 ] && ok=1
	rmmod zcdev
else
	echo "# insmod max_ring_pages=4294967295 refused: $(cat "$err")"
	ok=1
fi
insmod "$ZCDEV_KO" || { echo "# the module does not load again"; ok=0; }
if [ "$ok" = 1 ]; then
	echo "ok 1 max_ring_pages_bounded_at_load"
else
	echo "not ok 1 max_ring_pages_bounded_at_load"
	exit 1
fi
