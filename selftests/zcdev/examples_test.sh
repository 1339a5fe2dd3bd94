#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# examples_test.sh: run the programs in examples/ in pairs, a producer
# and then a consumer, and check that the bytes arrive whole and that the
# counter deltas and the copy counts each one prints prove the path it
# took: in place for mmap (and one copy by read(2) or write(2) each side),
# by reference (pages stolen) for splice in from a pipe, lent pages for
# splice out and sendfile, copied for a vmsplice gift and for io_uring's
# read and write (completed inline, no io-wq worker), consumed from the
# mapping for a MSG_ZEROCOPY send to a loopback receiver (busybox nc),
# every completion in. Every check prints
# what it expected and what it got. KTAP on stdout; exit 4 (skip) when the
# device is not there. POSIX sh (busybox ash).
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
# Three quarters of the ring in whole pages, then 12345 bytes: the whole
# input fits in the ring, so a producer can finish before its consumer
# starts (serial, below).
dd if=/dev/urandom of="$tmp/in" bs=4096 count=$((3 * ring / 4 / 4096)) 2> /dev/null
head -c 12345 /dev/urandom >> "$tmp/in"
size=$(wc -c < "$tmp/in")

# serial PRODUCER-COMMAND CONSUMER-COMMAND: reset, then the producer
# alone until it exits (the input fits in the ring), then the consumer
# until end of file. One at a time, so each program's counter deltas are
# its own, and no page is still in the producer's pipe when the consumer
# lends it (a page stolen a moment ago is held by the pipe until the splice
# core releases its buffer, and zcdev_lend_maybe_written() then lends a
# copy). Their stderr: $tmp/prod, $tmp/cons; the consumer's stdout:
# $tmp/out.
serial() {
	status=0
	rm -f "$tmp/out"
	"$zc" reset || expect "zcdev reset's exit status" 0 $?
	sh -c "$1" 2> "$tmp/prod"
	prc=$?
	sh -c "$2" 2> "$tmp/cons"
	crc=$?
	cat "$tmp/prod" "$tmp/cons"
	expect "producer's exit status" 0 "$prc"
	expect "consumer's exit status" 0 "$crc"
	expect "the bytes out against the bytes in" identical \
		"$(cmp "$tmp/in" "$tmp/out" 2>&1 && echo identical)"
}

# expect WHAT EXPECTED GOT: one check, printed with both values whatever
# the verdict; a failure sets status to 1 and the checks go on.
expect() {
	if [ "$2" = "$3" ]; then
		echo "check ok: $1: $3"
	else
		echo "check FAILED: $1: expected $2, got $3"
		status=1
	fi
}

# delta FILE PROGRAM COUNTER: the delta the program printed for COUNTER
# on its counters line (0 when the line does not show it).
delta() {
	v=$(sed -n "s/^$2: [0-9]* bytes;.*[;,] $3 +\([0-9]*\).*/\1/p" "$1")
	echo "${v:-0}"
}

# said FILE PROGRAM WHAT: the number the program printed after WHAT:
# "bytes" on its counters line, or a term of its copy count.
said() {
	if [ "$3" = bytes ]; then
		v=$(sed -n "s/^$2: \([0-9]*\) bytes;.*/\1/p" "$1")
	else
		v=$(sed -n "s/^$2: CPU copies end to end:.*$3 \([0-9]*\).*/\1/p" "$1")
	fi
	echo "${v:-none}"
}

if [ "$size" -gt "$ring" ]; then
	echo "# the input ($size bytes) does not fit the ring ($ring)"
	exit 1
fi

t_mmap() {
	serial "$ex/mmap_producer < $tmp/in" "$ex/mmap_consumer > $tmp/out"
	expect "mmap_producer: bytes" "$size" "$(said "$tmp/prod" mmap_producer bytes)"
	expect "mmap_producer: bytes_produced_mmap" "$size" "$(delta "$tmp/prod" mmap_producer bytes_produced_mmap)"
	expect "mmap_producer: zcdev's copies" 0 "$(said "$tmp/prod" mmap_producer zcdev)"
	expect "mmap_producer: read(2)'s copies" "$size" "$(said "$tmp/prod" mmap_producer ring)"
	expect "mmap_consumer: bytes" "$size" "$(said "$tmp/cons" mmap_consumer bytes)"
	expect "mmap_consumer: bytes_consumed_mmap" "$size" "$(delta "$tmp/cons" mmap_consumer bytes_consumed_mmap)"
	expect "mmap_consumer: zcdev's copies" 0 "$(said "$tmp/cons" mmap_consumer zcdev)"
	expect "mmap_consumer: write(2)'s copies" "$size" "$(said "$tmp/cons" mmap_consumer output)"
	return $status
}

# The input is whole pages and then 12345 bytes: 3 whole pages' worth of
# them at the end are stolen too, the last 57 bytes are copied.
t_splice() {
	pages=$((size / 4096))
	serial "$ex/splice_in_move < $tmp/in" "$ex/splice_out | cat > $tmp/out"
	expect "splice_in_move: bytes" "$size" "$(said "$tmp/prod" splice_in_move bytes)"
	expect "splice_in_move: pages_stolen_in" "$pages" "$(delta "$tmp/prod" splice_in_move pages_stolen_in)"
	expect "splice_in_move: bytes_spliced_in_moved" "$((pages * 4096))" "$(delta "$tmp/prod" splice_in_move bytes_spliced_in_moved)"
	expect "splice_in_move: bytes_spliced_in_copied" "$((size - pages * 4096))" "$(delta "$tmp/prod" splice_in_move bytes_spliced_in_copied)"
	expect "splice_in_move: bytes_written_copy" 0 "$(delta "$tmp/prod" splice_in_move bytes_written_copy)"
	expect "splice_in_move: write(2)'s copies" "$size" "$(said "$tmp/prod" splice_in_move pipe)"
	expect "splice_out: bytes" "$size" "$(said "$tmp/cons" splice_out bytes)"
	expect "splice_out: bytes_spliced_out" "$size" "$(delta "$tmp/cons" splice_out bytes_spliced_out)"
	expect "splice_out: bytes_spliced_out_copied" 0 "$(delta "$tmp/cons" splice_out bytes_spliced_out_copied)"
	expect "splice_out: bytes_read_copy" 0 "$(delta "$tmp/cons" splice_out bytes_read_copy)"
	expect "splice_out: copies into its pipe" 0 "$(said "$tmp/cons" splice_out "a pipe")"
	return $status
}

t_gift_sendfile() {
	serial "$ex/vmsplice_gift < $tmp/in" "$ex/sendfile_out > $tmp/out"
	expect "vmsplice_gift: bytes" "$size" "$(said "$tmp/prod" vmsplice_gift bytes)"
	expect "vmsplice_gift: bytes_spliced_in_copied" "$size" "$(delta "$tmp/prod" vmsplice_gift bytes_spliced_in_copied)"
	expect "vmsplice_gift: pages_stolen_in" 0 "$(delta "$tmp/prod" vmsplice_gift pages_stolen_in)"
	expect "vmsplice_gift: zcdev's copies" "$size" "$(said "$tmp/prod" vmsplice_gift zcdev)"
	expect "sendfile_out: bytes" "$size" "$(said "$tmp/cons" sendfile_out bytes)"
	expect "sendfile_out: bytes_spliced_out" "$size" "$(delta "$tmp/cons" sendfile_out bytes_spliced_out)"
	expect "sendfile_out: bytes_read_copy" 0 "$(delta "$tmp/cons" sendfile_out bytes_read_copy)"
	expect "sendfile_out: the file's copies" "$size" "$(said "$tmp/cons" sendfile_out "a file")"
	return $status
}

# uring_rw's request line: the number after WHAT ("inline", "by poll",
# "io-wq workers").
requests() {
	v=$(sed -n "s/^uring_rw: requests .*$2 \([0-9]*\).*/\1/p" "$1")
	echo "${v:-none}"
}

# io_uring's write and read are write(2)'s and read(2)'s copies; serial,
# every request finds room or data, and completes inline.
t_uring() {
	serial "$ex/uring_rw put < $tmp/in" "$ex/uring_rw get > $tmp/out"
	expect "uring_rw put: bytes" "$size" "$(said "$tmp/prod" uring_rw bytes)"
	expect "uring_rw put: bytes_written_copy" "$size" "$(delta "$tmp/prod" uring_rw bytes_written_copy)"
	expect "uring_rw put: requests waited by poll" 0 "$(requests "$tmp/prod" "by poll")"
	expect "uring_rw put: io-wq workers" 0 "$(requests "$tmp/prod" "io-wq workers")"
	expect "uring_rw get: bytes" "$size" "$(said "$tmp/cons" uring_rw bytes)"
	expect "uring_rw get: bytes_read_copy" "$size" "$(delta "$tmp/cons" uring_rw bytes_read_copy)"
	expect "uring_rw get: requests waited by poll" 0 "$(requests "$tmp/cons" "by poll")"
	expect "uring_rw get: io-wq workers" 0 "$(requests "$tmp/cons" "io-wq workers")"
	return $status
}

# A receiver on loopback port $1 writing to $tmp/out (busybox nc; its
# stdin a FIFO held open, so that it ends with the connection), once it
# listens.
receiver() {
	[ -p "$tmp/hold" ] || { mkfifo "$tmp/hold" && exec 5<> "$tmp/hold"; } || return 1
	nc -l -p "$1" < "$tmp/hold" > "$tmp/out" &
	rxp=$!
	hex=$(printf '%04X' "$1")
	i=0
	until cat /proc/net/tcp /proc/net/tcp6 2> /dev/null |
		grep -q ":$hex [0-9A-F]*:0000 0A "; do
		i=$((i + 1))
		[ "$i" -lt 100 ] || return 1
		usleep 50000
	done
}

# mmap_producer, then zerocopy_send into a receiver: zcdev copied nothing
# and consumed from the mapping; every send completed (and on loopback
# the kernel copied each, to hand the receiver bytes of its own).
t_zerocopy() {
	status=0
	rm -f "$tmp/out"
	"$zc" reset || expect "zcdev reset's exit status" 0 $?
	sh -c "$ex/mmap_producer < $tmp/in" 2> "$tmp/prod"
	prc=$?
	receiver 47990 || expect "a receiver on port 47990" listening none
	sh -c "$ex/zerocopy_send 127.0.0.1 47990" 2> "$tmp/cons"
	crc=$?
	wait "$rxp"
	cat "$tmp/prod" "$tmp/cons"
	expect "producer's exit status" 0 "$prc"
	expect "consumer's exit status" 0 "$crc"
	expect "the bytes out against the bytes in" identical \
		"$(cmp "$tmp/in" "$tmp/out" 2>&1 && echo identical)"
	sends=$(sed -n 's/^zerocopy_send: sends \([0-9]*\),.*/\1/p' "$tmp/cons")
	expect "zerocopy_send: bytes" "$size" "$(said "$tmp/cons" zerocopy_send bytes)"
	expect "zerocopy_send: bytes_consumed_mmap" "$size" "$(delta "$tmp/cons" zerocopy_send bytes_consumed_mmap)"
	expect "zerocopy_send: bytes_read_copy" 0 "$(delta "$tmp/cons" zerocopy_send bytes_read_copy)"
	expect "zerocopy_send: zcdev's copies" 0 "$(said "$tmp/cons" zerocopy_send zcdev)"
	expect "zerocopy_send: completed, of ${sends:-no} sends" "${sends:-none}" \
		"$(sed -n 's/^zerocopy_send: sends [0-9]*, completed \([0-9]*\),.*/\1/p' "$tmp/cons")"
	return $status
}

# zerocopy_send when optmem_max cannot hold a single notification:
# ENOBUFS with no send outstanding. It sends those bytes plainly, says
# how many, and ends; every byte arrives.
t_zerocopy_enobufs() {
	status=0
	rm -f "$tmp/out"
	"$zc" reset || expect "zcdev reset's exit status" 0 $?
	sh -c "$ex/mmap_producer < $tmp/in" 2> "$tmp/prod"
	receiver 47991 || expect "a receiver on port 47991" listening none
	o=$(cat /proc/sys/net/core/optmem_max)
	echo 1 > /proc/sys/net/core/optmem_max
	timeout 60 sh -c "$ex/zerocopy_send 127.0.0.1 47991" 2> "$tmp/cons"
	crc=$?
	echo "$o" > /proc/sys/net/core/optmem_max
	wait "$rxp"
	cat "$tmp/cons"
	expect "consumer's exit status" 0 "$crc"
	expect "the bytes out against the bytes in" identical \
		"$(cmp "$tmp/in" "$tmp/out" 2>&1 && echo identical)"
	expect "a plain sends line" yes \
		"$(grep -Eq '^zerocopy_send: [1-9][0-9]* plain sends \(ENOBUFS with none outstanding: see net.core.optmem_max\)$' "$tmp/cons" && echo yes)"
	return $status
}

case_ mmap_producer_to_mmap_consumer t_mmap
case_ splice_in_move_to_splice_out t_splice
case_ vmsplice_gift_to_sendfile_out t_gift_sendfile
case_ uring_rw_put_to_uring_rw_get t_uring
case_ mmap_producer_to_zerocopy_send t_zerocopy
case_ zerocopy_send_enobufs_plain_sends t_zerocopy_enobufs

ktap_end
