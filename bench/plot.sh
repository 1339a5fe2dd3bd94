#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# plot.sh BENCH.json OUT.png|OUT.svg: throughput per path and call size from
# one `zcdev bench --json` run, one panel per side and mapping, bars per
# call size. Needs jq and gnuplot (gnuplot-nox) on the machine that plots.

set -euo pipefail

[ $# = 2 ] || { echo "usage: $0 BENCH.json OUT.png|OUT.svg" >&2; exit 2; }
json=$1 out=$2
for t in jq gnuplot; do
	command -v $t >/dev/null || { echo "$0: needs $t" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# One table per panel: a header of call sizes, then a line per path in
# the bench's own order with its median MB/s at each call size.
panel() { # FILE JQ-SELECT
	jq -r "[.rows[] | select($2)] as \$r
	| (\$r | map(.chunk_bytes) | unique) as \$ch
	| (reduce (\$r[] | .label) as \$l ([]; if any(.[]; . == \$l) then . else . + [\$l] end)) as \$labels
	| ([\"path\"] + [\$ch[] | if . >= 1048576 then \"\(. / 1048576) MiB calls\"
			       elif . >= 1024 then \"\(. / 1024) KiB calls\"
			       else \"\(.) B calls\" end] | @tsv),
	  (\$labels[] as \$l | [\$l] + [\$ch[] as \$c
		| ([\$r[] | select(.label == \$l and .chunk_bytes == \$c)][0]
		   | if . == null or .ok == false then \"NaN\" else .mb_per_s end)] | @tsv)" \
		"$json" > "$tmp/$1"
}
panel refs   '.side == "ref" or .side == "pair"'
for m in none meta mapped; do
	panel "get-$m" ".side == \"get\" and .map == \"$m\""
	panel "put-$m" ".side == \"put\" and .map == \"$m\""
done
title=$(jq -r '"zcdev bench \(.version): MB/s (10^6 bytes/s), median of \(.repeat) rounds, \(.payload_bytes / 1048576) MiB per row\(if .info then ", ring \(.info.ring_bytes / 1048576) MiB" else "" end)\\none side of the ring timed at a time (the other: write or mmap fills, splice to /dev/null drains)"' "$json")

case $out in
*.svg) term="svg size WIDTH,HEIGHT dynamic font 'sans,10'" ;;
*) term="pngcairo size WIDTH,HEIGHT font 'sans,10'" ;;
esac

# Only the panels the run has rows for: up to four a line.
plots=() n=0
add() { # FILE TITLE
	[ "$(wc -l < "$tmp/$1")" -gt 1 ] || return 0
	local cols
	cols=$(head -n 1 "$tmp/$1" | awk -F '\t' '{ print NF }')
	plots+=("set title \"$2\"
plot for [i=2:$cols] '$tmp/$1' using i:xtic(1) title columnhead(i)")
	n=$((n + 1))
}
add refs "references and pipelines (both sides timed)"
add get-none "consumers, nobody maps the ring"
add get-meta "consumers, the meta page alone mapped"
add get-mapped "consumers, the producer maps the ring"
add put-none "producers, nobody maps the ring"
add put-meta "producers, the meta page alone mapped"
add put-mapped "producers, the producer maps the ring"
[ "$n" -gt 0 ] || { echo "$0: no rows to plot in $json" >&2; exit 1; }
# The legend, the same for every panel, gets a slot of its own.
first=$(cd "$tmp" && for f in refs get-none get-meta get-mapped put-none put-meta put-mapped; do
	[ "$(wc -l < "$f")" -gt 1 ] && { echo "$f"; break; }; done)
cols=$(head -n 1 "$tmp/$first" | awk -F '\t' '{ print NF }')
plots+=("unset border; unset xtics; unset ytics; unset ylabel; unset title
unset logscale y; set yrange [0:1]; set xrange [-10:-9]
set key center center vertical font ',12' title 'call size'
plot for [i=2:$cols] '$tmp/$first' using i:xtic(1) title columnhead(i)")
slots=$((n + 1))
per_line=$((slots < 4 ? slots : 4))
lines=$(((slots + 3) / 4))
term=${term/WIDTH/$((per_line * 450))}
term=${term/HEIGHT/$((lines * 480 + 40))}

{
	cat <<GP
set terminal $term
set output '$out'
set datafile separator "\t"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
# Paths differ by 100x and more: a log scale keeps the slow ones visible.
set logscale y
set yrange [10:*]
set mytics 10
set xtics rotate by 30 right nomirror
unset key
set ylabel "MB/s (log scale)"
set multiplot layout $lines,$per_line title "$title"
GP
	printf '%s\n' "${plots[@]}"
	echo "unset multiplot"
} | gnuplot
echo "$out"
