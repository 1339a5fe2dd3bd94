#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# model.sh BENCH.json: the cost model of docs/performance.md, from one
# `zcdev bench --json` run that has 4 KiB, 64 KiB and 1 MiB calls.
#
# A call of n pages on one path takes F + n * P: F what the call costs
# whatever its size (system calls, locks, a zap's TLB flush), P what a
# page adds (a copy, a lend, a PTE). F and P of every row come from its
# 4 KiB and 64 KiB timings (a call there takes chunk / MB/s microseconds);
# the model then predicts each row's ratio to its baseline at 1 MiB,
# beside the ratio measured there. A row more than 2x off is marked.
# The per-page components of the model are differences of those P.
# Needs jq.

set -euo pipefail

[ $# = 1 ] || { echo "usage: $0 BENCH.json" >&2; exit 2; }
command -v jq >/dev/null || { echo "$0: needs jq" >&2; exit 1; }
json=$1

jq -r '
	"cc\t\(.copy_cost.memcpy_mb_per_s)\t\(.copy_cost.syscall_ns)\t\(.copy_cost.read_page_ns // "nan")\t\(.copy_cost.read_16_pages_ns // "nan")",
	(.rows[] | select(.ok) |
	 "row\t\(.id)\t\(.map)\t\(.chunk_bytes)\t\(.base)\t\(.mb_per_s)\t\(.x)\t\(.x_min)\t\(.x_max)\t\(.label)")
' "$json" | awk -F '\t' '
function us(mbps, chunk) { return chunk / mbps }	# bytes / (10^6 B/s) = us
$1 == "cc" { memcpy = $2; sys = $3; r1 = $4; r16 = $5; next }
{
	k = $2 SUBSEP $3
	if (!(k in seen)) { seen[k] = 1; order[++n] = k; label[k] = $10 }
	t[k, $4] = us($6, $4); x[k, $4] = $7; lo[k, $4] = $8; hi[k, $4] = $9
	base[k] = $5 SUBSEP ($5 ~ /^(ref|pair):/ ? "-" : $3)
}
function P(k) { return (t[k, 65536] - t[k, 4096]) / 15 }
function F(k) { return t[k, 4096] - P(k) }
function has(k) { return (k, 4096) in t && (k, 65536) in t }
END {
	page_us = 4096 / memcpy
	printf "per page, microseconds (P: a page more in a call; F: a call)\n"
	printf "  user memcpy of a page (header)              %7.2f\n", page_us
	if (r16 != "nan")
		printf "  kernel copy of a page, read() (header)      %7.2f\n", (r16 - r1) / 15 / 1000
	printf "  a system call, getppid() (header)           %7.2f\n", sys / 1000
	split("get:read none|get:splice-null none|get:sendfile-null none|get:splice-null mapped|get:sendfile-null mapped|put:write none|put:splice none|put:vmsplice none|put:write mapped|put:mmap mapped|put:mmap-populate mapped|ref:pipe-rw -|ref:pipe-splice -|pair:mmap-splice mapped", ks, "|")
	for (i = 1; i in ks; i++) {
		split(ks[i], a, " ")
		k = a[1] SUBSEP a[2]
		if (has(k))
			printf "  %-26s %-6s P %7.2f  F %7.2f\n", a[1], a[2], P(k), F(k)
	}
	printf "\nratio to the baseline at 1 MiB calls: model (from 4 and 64 KiB) and measured\n"
	printf "  %-22s %-6s %8s %8s %13s\n", "path", "map", "model", "measured", "min-max"
	for (i = 1; i <= n; i++) {
		k = order[i]; b = base[k]
		if (b == k || !has(k) || !has(b) || !((k, 1048576) in x))
			continue
		pred = (F(b) + 256 * P(b)) / (F(k) + 256 * P(k))
		m = x[k, 1048576]
		split(k, a, SUBSEP)
		printf "  %-22s %-6s %7.2fx %7.2fx %6.2f-%-6.2f%s\n", label[k], a[2], pred, m,
		       lo[k, 1048576], hi[k, 1048576],
		       (m > 2 * pred || 2 * m < pred) ? "  >2x off" : ""
	}
}'
