#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make sparse: the module checked by sparse (kbuild C=2) inside a lane's
# Debian root, with the root's own sparse (installed there on first use).
# kbuild does not fail on sparse's findings, so the log is checked here.
# Lanes 6.1 and 6.12 (default both); Debian's sparse (0.6.4) cannot parse
# 7.x headers (__typeof_unqual__), which kbuild says and skips.
#
# Usage: sparse.sh [LANE...]

set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

lanes=("$@")
[ ${#lanes[@]} -gt 0 ] || lanes=(6.1 6.12)
resolve_kernels "${lanes[@]}"
fail=0
for s in "${lanes[@]}"; do
	v=${kver[$s]}
	root_apt "${kroot[$v]}" install sparse > /dev/null
	build_module "$s" "$v" > /dev/null 2>&1 || true
	log=$build/$s/sparse.log
	touch "$build/$s/src/module/"*.c
	in_root "${kroot[$v]}" "$build/$s/src" \
		make -C "${kdir[$v]}" M=/zcdev C=2 modules > "$log" 2>&1 || true
	if grep -E '^/zcdev/(module|uapi)/.*: (warning|error)' "$log"; then
		say "$s: sparse has findings (log: ${log#"$top"/})"
		fail=1
	elif grep -q 'CHECK.*module/main.c' "$log"; then
		say "$s ($v): sparse is clean"
	else
		say "$s ($v): sparse did not run (log: ${log#"$top"/})"
		fail=1
	fi
done
exit $fail
