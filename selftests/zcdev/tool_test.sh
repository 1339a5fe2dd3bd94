#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# tool_test.sh: tools/zcdev end to end on a loaded module. Usage and exit
# codes, info/stats/resize/reset, every put and get method (alone and as
# copy pairs), byte for byte, the copy counters, and bench. KTAP on
# stdout; exit 4 (skip) when the device is not there. POSIX sh: runs
# under busybox ash in the QEMU guest.
#
# Environment: ZCDEV (the tool; default tools/zcdev next to this tree,
# else zcdev on PATH), ZCDEV_DEV (the device, default /dev/zcdev).

set -u

dev=${ZCDEV_DEV:-/dev/zcdev}
here=$(dirname "$0")
if [ -n "${ZCDEV:-}" ]; then
	zc=$ZCDEV
elif [ -x "$here/../../tools/zcdev" ]; then
	zc=$here/../../tools/zcdev
else
	zc=zcdev
fi

echo "TAP version 13"
if [ ! -c "$dev" ]; then
	echo "1..0 # SKIP $dev is missing: the module is not loaded"
	exit 4
fi

tmp=$(mktemp -d) || exit 1
trap 'exec 3>&-; rm -rf "$tmp"' EXIT

n=0
fails=0

# case NAME FUNCTION [ARGS]: one test case; its output becomes comments.
case_() {
	name=$1
	shift
	n=$((n + 1))
	if "$@" > "$tmp/log" 2>&1; then
		echo "ok $n $name"
	else
		fails=$((fails + 1))
		echo "not ok $n $name"
		sed 's/^/# /' "$tmp/log"
	fi
}

# expect_rc RC CMD...: CMD exits with RC; its stderr is kept in $tmp/err.
expect_rc() {
	want=$1
	shift
	"$@" > "$tmp/stdout" 2> "$tmp/err"
	got=$?
	[ "$got" = "$want" ] && return 0
	echo "'$*' exited $got, not $want"
	cat "$tmp/err"
	return 1
}

info_field() {
	"$zc" info | awk -v f="$1" '$1 == f { print $2 }'
}

# ---- the command line ----

t_help() {
	expect_rc 0 "$zc" --help && grep -q '^usage: zcdev ' "$tmp/stdout" || return 1
	for c in info stats resize reset put get copy bench explain; do
		expect_rc 0 "$zc" "$c" --help || return 1
		grep -q "^usage: zcdev $c" "$tmp/stdout" || { echo "$c --help"; return 1; }
		expect_rc 0 "$zc" "$c" -h || return 1
	done
}

t_version() {
	expect_rc 0 "$zc" --version && grep -q '^zcdev [^ ]' "$tmp/stdout"
}

t_usage_errors() {
	expect_rc 2 "$zc" || return 1
	expect_rc 2 "$zc" no-such-command || return 1
	expect_rc 2 "$zc" --no-such-option || return 1
	expect_rc 2 "$zc" info --bogus || return 1
	expect_rc 2 "$zc" stats extra || return 1
	expect_rc 2 "$zc" resize || return 1
	expect_rc 2 "$zc" resize 12x || return 1
	expect_rc 2 "$zc" put --method nope || return 1
	expect_rc 2 "$zc" get --method write || return 1
	expect_rc 2 "$zc" copy only-one || return 1
	expect_rc 2 "$zc" copy a b --method write:nope || return 1
	expect_rc 2 "$zc" copy a - || return 1
	expect_rc 2 "$zc" put --timeout 5 || return 1
	expect_rc 2 "$zc" bench --size 0 || return 1
	expect_rc 2 "$zc" bench --size 12Q || return 1
	expect_rc 2 "$zc" bench --method nope || return 1
	expect_rc 2 "$zc" bench --chunk || return 1
	# usage goes to stderr, nothing to stdout
	[ ! -s "$tmp/stdout" ] && grep -q '^usage: zcdev bench' "$tmp/err"
}

t_device_missing() {
	ZCDEV_DEV=$tmp/no-such-device expect_rc 3 "$zc" info || return 1
	[ "$(wc -l < "$tmp/err")" = 1 ] || { cat "$tmp/err"; return 1; }
	grep -q "^zcdev: $tmp/no-such-device not found: is the zcdev module loaded?" "$tmp/err" ||
		{ cat "$tmp/err"; return 1; }
	ZCDEV_DEV=$tmp/no-such-device expect_rc 3 "$zc" bench --size 1M
}

t_not_zcdev() {
	ZCDEV_DEV=/dev/null expect_rc 3 "$zc" stats && grep -q 'not a zcdev device' "$tmp/err"
}

t_runtime_error() {
	expect_rc 1 "$zc" put "$tmp/no-such-file" &&
		grep -q "^zcdev: $tmp/no-such-file: No such file or directory$" "$tmp/err"
}

# ---- info, stats, resize, reset ----

t_info() {
	expect_rc 0 "$zc" info || return 1
	grep -Eq '^abi_version +1$' "$tmp/stdout" || return 1
	grep -Eq '^ring_bytes +[1-9][0-9]*$' "$tmp/stdout" || return 1
	expect_rc 0 "$zc" info --json || return 1
	[ "$(wc -l < "$tmp/stdout")" = 1 ] || return 1
	grep -Eq '^\{"device":"[^"]*",.*"abi_version":1,.*"ring_bytes":[0-9]+.*\}$' "$tmp/stdout"
}

t_stats() {
	expect_rc 0 "$zc" stats --json || return 1
	for f in bytes_written_copy bytes_read_copy bytes_spliced_out \
		 pages_spliced_out bytes_spliced_in_moved pages_stolen_in \
		 bytes_spliced_in_copied bytes_produced_mmap bytes_consumed_mmap \
		 page_swaps mmap_faults sigbus_faults pages_held; do
		grep -q "\"$f\":[0-9]" "$tmp/stdout" || { echo "no $f"; return 1; }
		"$zc" stats | grep -Eq "^$f +[0-9]+$" || { echo "no $f in the table"; return 1; }
	done
}

t_resize() {
	pages=$(info_field ring_pages)
	max=$(info_field max_ring_pages)
	expect_rc 0 "$zc" resize 16 || return 1
	[ "$(info_field ring_pages)" = 16 ] || return 1
	[ "$(info_field ring_bytes)" = $((16 * $(info_field page_size))) ] || return 1
	expect_rc 1 "$zc" resize $((max + 1)) || return 1
	grep -q 'above max_ring_pages' "$tmp/err" || return 1
	expect_rc 0 "$zc" resize "$pages" && [ "$(info_field ring_pages)" = "$pages" ]
}

t_reset() {
	printf 'stale' > "$tmp/stale"
	expect_rc 0 "$zc" put "$tmp/stale" || return 1
	expect_rc 0 "$zc" reset || return 1
	# The ring is empty and nobody writes: get ends at once, with nothing.
	expect_rc 0 timeout 20 "$zc" get "$tmp/out" && [ ! -s "$tmp/out" ]
}

# ---- moving bytes ----

# An input that wraps the ring several times and ends mid-page.
make_input() {
	ring=$(info_field ring_bytes)
	dd if=/dev/urandom of="$tmp/in" bs=4096 count=$((3 * ring / 4096)) 2> /dev/null &&
		head -c 12345 /dev/urandom >> "$tmp/in"
	size=$(wc -c < "$tmp/in")
}

t_copy() {
	rm -f "$tmp/out"
	expect_rc 0 timeout 120 "$zc" copy --timeout 30 --method "$1" "$tmp/in" "$tmp/out" &&
		cmp "$tmp/in" "$tmp/out" && cat "$tmp/stdout"
}

# put and get in two processes; fd 3 keeps a writer open until put is
# done, so that get cannot see EOF before put has opened the device. The
# children must not inherit it: a writer open anywhere means no EOF.
t_put_get() {
	rm -f "$tmp/out"
	exec 3> "$dev" || return 1
	"$zc" reset 3>&- || return 1
	timeout 120 "$zc" get --method "$2" "$tmp/out" 3>&- &
	pid=$!
	timeout 120 "$zc" put --method "$1" "$tmp/in" 3>&-
	rc=$?
	exec 3>&-
	wait "$pid" || rc=1
	[ "$rc" = 0 ] && cmp "$tmp/in" "$tmp/out"
}

# Through pipes on both sides: put splices from its stdin and get to its
# stdout directly, without a pipe of their own.
t_pipes() {
	rm -f "$tmp/out"
	exec 3> "$dev" || return 1
	"$zc" reset 3>&- || return 1
	{ timeout 120 "$zc" get --method "$2" | cat > "$tmp/out"; } 3>&- &
	pid=$!
	# shellcheck disable=SC2002 # put's stdin must be a pipe
	{ cat "$tmp/in" | timeout 120 "$zc" put --method "$1"; } 3>&-
	rc=$?
	exec 3>&-
	wait "$pid" || rc=1
	[ "$rc" = 0 ] && cmp "$tmp/in" "$tmp/out"
}

# What the module reports for a copy matches the path that was taken.
t_counters() {
	t_copy write || return 1
	grep -q "^$tmp/in -> $tmp/out: $size bytes in .*zcdev copied $((2 * size)), by reference 0, in place 0 bytes" \
		"$tmp/stdout" || return 1
	t_copy mmap || return 1
	grep -q "zcdev copied 0, by reference 0, in place $((2 * size)) bytes" "$tmp/stdout"
}

# Every row (36 per call size, 3 call sizes) verified byte for byte.
t_bench() {
	expect_rc 0 timeout 300 "$zc" bench --size 1M --repeat 1 --json || return 1
	cat "$tmp/stdout"
	[ "$(wc -l < "$tmp/stdout")" = 1 ] || return 1
	[ "$(grep -o '"ok":true' "$tmp/stdout" | wc -l)" = 108 ] || return 1
	! grep -q '"ok":false' "$tmp/stdout"
}

t_bench_table() {
	expect_rc 0 timeout 300 "$zc" bench --size 1M --chunk 16K --method rw,mmap --no-verify ||
		return 1
	cat "$tmp/stdout"
	grep -q '^path  *MB/s  *x base' "$tmp/stdout" &&
		grep -Eq '^pipe write/read +[0-9.]+ +1\.00x' "$tmp/stdout" &&
		grep -q '^zcdev write/read ' "$tmp/stdout" &&
		grep -q '^get mmap in place ' "$tmp/stdout" &&
		grep -q '^put mmap+PRODUCE ' "$tmp/stdout" &&
		! grep -q 'error:' "$tmp/stdout"
}

# explain's JSON object for path $1 under map $2.
xobj() {
	grep -o "{\"id\":\"$1\",\"map\":\"$2\",\"ok\":true,[^{]*{[^}]*}}" "$tmp/stdout"
}

# One call moves what its path says: read copies, a splice out lends every
# page and copies nothing, and the pages it lends leave the producer's
# mapping; a splice in steals the pipe's pages.
t_explain() {
	expect_rc 0 timeout 120 "$zc" explain --chunk 16K --map none,mapped --json \
		read splice-null write splice || return 1
	cat "$tmp/stdout"
	xobj get:read none | grep -q '"copied_bytes":16384,"by_ref_bytes":0,' &&
		xobj get:splice-null none |
		grep -q '"copied_bytes":0,"by_ref_bytes":16384,.*"pages_spliced_out":4,' &&
		xobj get:splice-null mapped |
		grep -q '"ptes_zapped":4,.*"copied_bytes":0,"by_ref_bytes":16384,' &&
		xobj put:write none | grep -q '"copied_bytes":16384,"by_ref_bytes":0,' &&
		xobj put:splice none |
		grep -q '"copied_bytes":0,"by_ref_bytes":16384,.*"pages_stolen_in":4,'
}

case_ help t_help
case_ version t_version
case_ usage_errors_exit_2 t_usage_errors
case_ device_missing_exit_3 t_device_missing
case_ not_zcdev_exit_3 t_not_zcdev
case_ runtime_error_exit_1 t_runtime_error
case_ info t_info
case_ stats_every_counter t_stats
case_ resize t_resize
case_ reset_then_get_eof t_reset
make_input
for m in write mmap splice vmsplice write:sendfile write:mmap mmap:read \
	 mmap:splice splice:mmap vmsplice:read; do
	case_ "copy_$m" t_copy "$m"
done
for p in write mmap splice vmsplice; do
	for g in read mmap splice sendfile; do
		case_ "put_${p}_get_$g" t_put_get "$p" "$g"
	done
done
case_ pipes_splice_splice t_pipes splice splice
case_ pipes_write_read t_pipes write read
case_ copy_counters t_counters
case_ bench_json t_bench
case_ bench_table t_bench_table
case_ explain_one_call t_explain

echo "1..$n"
echo "# $((n - fails)) passed, $fails failed"
[ "$fails" = 0 ]
