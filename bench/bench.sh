#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make bench: `zcdev bench` in a QEMU guest (selftests/qemu/run.sh), then
# its table, its JSON and a plot of it on this machine:
#   build/bench-KERNEL.txt   the table
#   build/bench-KERNEL.json  every sample (zcdev bench --json)
#   build/bench-KERNEL.png   bench/plot.sh's plot (needs jq and gnuplot)
#
# Environment: KERNEL (default 6.1), BENCH_ARGS (zcdev bench options),
# BENCH_PLOT (the plot's path, .png or .svg).

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
kernel=${KERNEL:-6.1}
out=$top/build/bench-$kernel
plot=${BENCH_PLOT:-$out.png}
mkdir -p "$top/build"

rc=0
ZCDEV_BENCH=1 KERNEL=$kernel CMD="zcdev bench --format both ${BENCH_ARGS:-}" \
	"$top/selftests/qemu/run.sh" > "$out.log" || rc=$?
# The console may end lines with CR; the JSON is the one line that starts
# with {"version", the table runs from the "zcdev bench" line up to it.
tr -d '\r' < "$out.log" | awk -v json="$out.json" -v txt="$out.txt" '
	/^\{"version"/ { print > json; t = 0; next }
	/^zcdev bench / { t = 1 }
	t { print > txt }'
[ -s "$out.txt" ] || { cat "$out.log"; echo "bench: no table in $out.log" >&2; exit 1; }
cat "$out.txt"
if [ -s "$out.json" ] && "$top/selftests/qemu/deps.sh" bench; then
	"$top/bench/plot.sh" "$out.json" "$plot" >/dev/null
	echo "bench: table $out.txt, samples $out.json, plot $plot"
fi
exit "$rc"
