#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# examples_test.sh: run the programs in examples/ in pairs, a producer
# and a consumer, and check that the bytes arrive whole and that the
# counter deltas each one prints prove the path it took: in place for
# mmap, by reference (pages stolen) for splice in from a pipe, lent pages
# for splice out and sendfile, copied for a vmsplice gift. KTAP on stdout;
# exit 4 (skip) when the device is not there. POSIX sh (busybox ash).
#
# Environment: EXAMPLES (the directory of the built examples; default
# examples/ in this tree, else /examples), ZCDEV (the tool, for reset),
# ZCDEV_DEV (the device).

set -u

# Every case's output shows: the counter deltas the examples print are
# the point.
KTAP_SHOW_OK=1
# shellcheck source=selftests/zcdev/ktap.sh
. "$(dirname "$0")/ktap.sh"
if [ -n "${EXAMPLES:-}" ]; then
	ex=$EXAMPLES
elif [ -x "$here/../../examples/mmap_producer" ]; then
	ex=$here/../../examples
else
	ex=/examples
fi

ring=$("$zc" info | awk '$1 == "ring_bytes" { print $2 }')
dd if=/dev/urandom of="$tmp/in" bs=4096 count=$((3 * ring / 4096)) 2> /dev/null
head -c 12345 /dev/urandom >> "$tmp/in"
size=$(wc -c < "$tmp/in")

# pair CONSUMER-COMMAND PRODUCER-COMMAND: both run at once on an empty
# ring; fd 3 holds a writer until the producer has the device open, so
# that the consumer cannot see EOF first. Their stderr: $tmp/cons, $tmp/prod.
pair() {
	rm -f "$tmp/out"
	exec 3> "$dev" || return 1
	"$zc" reset 3>&- || return 1
	sh -c "$1" > "$tmp/cons.out" 2> "$tmp/cons" 3>&- &
	pid=$!
	sh -c "$2" 2> "$tmp/prod" 3>&-
	rc=$?
	exec 3>&-
	wait "$pid" || rc=1
	cat "$tmp/prod" "$tmp/cons"
	[ "$rc" = 0 ]
}

# has FILE TEXT: the example's line in FILE says TEXT.
has() {
	grep -q -- "$2" "$1" || { echo "expected '$2' in $(cat "$1")"; return 1; }
}

hasnt() {
	! grep -q -- "$2" "$1" || { echo "did not expect '$2' in $(cat "$1")"; return 1; }
}

t_mmap() {
	pair "$ex/mmap_consumer > $tmp/out" "$ex/mmap_producer < $tmp/in" &&
		cmp "$tmp/in" "$tmp/out" &&
		has "$tmp/prod" "^mmap_producer: $size bytes; copied 0, by reference 0," &&
		has "$tmp/prod" "bytes_produced_mmap +$size" &&
		has "$tmp/cons" "^mmap_consumer: $size bytes; copied 0, by reference 0," &&
		has "$tmp/cons" "bytes_consumed_mmap +$size"
}

t_splice() {
	pair "$ex/splice_out $tmp/out" "$ex/splice_in_move < $tmp/in" &&
		cmp "$tmp/in" "$tmp/out" &&
		has "$tmp/prod" "^splice_in_move: $size bytes;" &&
		has "$tmp/prod" "pages_stolen_in +[1-9]" &&
		has "$tmp/prod" "bytes_spliced_in_moved +[1-9]" &&
		hasnt "$tmp/prod" "bytes_written_copy" &&
		has "$tmp/cons" "^splice_out: $size bytes;" &&
		has "$tmp/cons" "bytes_spliced_out +$size" &&
		hasnt "$tmp/cons" "bytes_read_copy"
}

t_gift_sendfile() {
	pair "$ex/sendfile_out > $tmp/out" "$ex/vmsplice_gift < $tmp/in" &&
		cmp "$tmp/in" "$tmp/out" &&
		has "$tmp/prod" "^vmsplice_gift: $size bytes;" &&
		has "$tmp/prod" "bytes_spliced_in_copied +$size" &&
		hasnt "$tmp/prod" "pages_stolen_in" &&
		has "$tmp/cons" "^sendfile_out: $size bytes;" &&
		has "$tmp/cons" "bytes_spliced_out +$size" &&
		hasnt "$tmp/cons" "bytes_read_copy"
}

case_ mmap_producer_to_mmap_consumer t_mmap
case_ splice_in_move_to_splice_out t_splice
case_ vmsplice_gift_to_sendfile_out t_gift_sendfile

ktap_end
