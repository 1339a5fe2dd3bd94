#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# tool_test.sh: tools/zcdev end to end on a loaded module. Usage and exit
# codes, info/stats/resize/reset, every put and get method (alone and as
# copy pairs), byte for byte, the copy counters, bench, and several rings
# (rings, ring-add, ring-remove, -r). KTAP on stdout; exit 4 (skip) when
# the device is not there. POSIX sh: runs under busybox ash in the QEMU
# guest.
#
# Environment: ZCDEV (the tool; default tools/zcdev next to this tree,
# else zcdev on PATH), ZCDEV_DEV (the device, default /dev/zcdev),
# ZCDEV_KO (the module, for the one case that reloads it: root only).

set -u

# shellcheck source=selftests/zcdev/ktap.sh
. "$(dirname "$0")/ktap.sh"

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

# ZCDEV_CASES="GLOB ...": run only the cases whose names match.
tcase() {
	want_case=${ZCDEV_CASES:+no}
	set -f
	for g in ${ZCDEV_CASES:-}; do
		# shellcheck disable=SC2254 # g is a pattern
		case $1 in $g) want_case='' ;; esac
	done
	set +f
	[ -n "$want_case" ] || case_ "$@"
}

# ---- the command line ----

t_help() {
	expect_rc 0 "$zc" --help && grep -q '^usage: zcdev ' "$tmp/stdout" || return 1
	for c in info stats resize reset put get copy bench explain rings ring-add ring-remove; do
		expect_rc 0 "$zc" "$c" --help || return 1
		grep -q "^usage: zcdev $c" "$tmp/stdout" || { echo "$c --help"; return 1; }
		expect_rc 0 "$zc" "$c" -h || return 1
	done
}

# The tool's, the module's and the ABI versions; a warning when they differ.
t_version() {
	expect_rc 0 "$zc" --version || return 1
	cat "$tmp/stdout"
	tool=$(awk '$1 == "zcdev" { print $2 }' "$tmp/stdout")
	[ -n "$tool" ] && grep -q "^zcdev $tool (ABI 1)$" "$tmp/stdout" || return 1
	if [ -r /sys/module/zcdev/version ]; then
		grep -q "^module $(cat /sys/module/zcdev/version) (ABI 1, " "$tmp/stdout" || return 1
		# Built from one tree: one version, no warning.
		[ "$(cat /sys/module/zcdev/version)" = "$tool" ] && [ ! -s "$tmp/err" ] || return 1
	fi
	mkdir -p "$tmp/sys/module/zcdev"
	echo 0.0.0-other > "$tmp/sys/module/zcdev/version"
	ZCDEV_SYSFS=$tmp/sys expect_rc 0 "$zc" --version || return 1
	grep -q '^module 0.0.0-other' "$tmp/stdout" &&
		grep -q 'warning: the loaded module is version 0.0.0-other' "$tmp/err"
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
	mkdir -p "$tmp/nosys"
	ZCDEV_SYSFS=$tmp/nosys ZCDEV_DEV=$tmp/no-such-device expect_rc 3 "$zc" info || return 1
	[ "$(wc -l < "$tmp/err")" = 1 ] || { cat "$tmp/err"; return 1; }
	grep -q "^zcdev: $tmp/no-such-device not found: is the zcdev module loaded?" "$tmp/err" ||
		{ cat "$tmp/err"; return 1; }
	ZCDEV_DEV=$tmp/no-such-device expect_rc 3 "$zc" bench --size 1M
}

# Where the kernel enforces module signatures (Secure Boot), an unsigned
# module fails to load with "Key was rejected by service": say how to sign.
t_device_missing_signed() {
	mkdir -p "$tmp/sigsys/module/module/parameters"
	echo Y > "$tmp/sigsys/module/module/parameters/sig_enforce"
	ZCDEV_SYSFS=$tmp/sigsys ZCDEV_DEV=$tmp/no-such-device expect_rc 3 "$zc" info || return 1
	cat "$tmp/err"
	grep -q 'Key was rejected by service' "$tmp/err" && grep -q 'make sign' "$tmp/err" &&
		grep -q 'mokutil' "$tmp/err"
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

# The tool shows every counter the module keeps (its debugfs file names
# them), in the table and in JSON, and no other.
t_stats() {
	mod=/sys/kernel/debug/zcdev/stats
	[ -r "$mod" ] || { echo "$mod is missing"; return 1; }
	expect_rc 0 "$zc" stats --json || return 1
	awk '{ print $1 }' "$mod" > "$tmp/mod-fields"
	"$zc" stats | awk '$1 != "device" { print $1 }' > "$tmp/tool-fields"
	diff "$tmp/mod-fields" "$tmp/tool-fields" || return 1
	[ "$(grep -o '"[a-z_]*":[0-9]' "$tmp/stdout" | wc -l)" = "$(wc -l < "$mod")" ] || return 1
	while read -r f; do
		grep -q "\"$f\":[0-9]" "$tmp/stdout" || { echo "no $f in JSON"; return 1; }
	done < "$tmp/mod-fields"
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

# Every row (49 per call size, 3 call sizes) verified byte for byte.
t_bench() {
	expect_rc 0 timeout 300 "$zc" bench --size 1M --repeat 1 --json || return 1
	cat "$tmp/stdout"
	[ "$(wc -l < "$tmp/stdout")" = 1 ] || return 1
	[ "$(grep -o '"ok":true' "$tmp/stdout" | wc -l)" = 147 ] || return 1
	! grep -q '"ok":false' "$tmp/stdout"
}

# ---- issue 14: the tool never loses the user's data ----

sysfs=/sys/class/misc/zcdev
used() { cat "$sysfs/used"; }

# Fill the ring with the first $1 bytes of $tmp/in (kept in $tmp/small);
# no writer stays open.
fill_ring() {
	head -c "$1" "$tmp/in" > "$tmp/small"
	"$zc" reset && "$zc" put "$tmp/small" && [ "$(used)" = "$1" ]
}

# 1. Bytes that reach the ring from elsewhere during a copy fail it. SRC
# is a FIFO, so the foreign write lands while the copy runs.
t_copy_shared_ring() {
	rm -f "$tmp/fifo" "$tmp/out"
	mkfifo "$tmp/fifo" || return 1
	head -c 300000 "$tmp/in" > "$tmp/a"
	timeout 60 "$zc" copy "$tmp/fifo" "$tmp/out" > "$tmp/stdout" 2> "$tmp/err" &
	pid=$!
	exec 4> "$tmp/fifo"
	cat "$tmp/a" >&4	# a FIFO holds 64 KiB: the copy has started
	printf 'FOREIGN' > "$dev"
	cat "$tmp/a" >&4
	exec 4>&-
	wait "$pid"
	rc=$?
	cat "$tmp/a" "$tmp/a" > "$tmp/aa"
	echo "copy exit $rc, DST $(wc -c < "$tmp/out") bytes for 600000"
	cat "$tmp/err"
	if [ "$rc" = 0 ]; then
		cmp -s "$tmp/aa" "$tmp/out" || { echo "exit 0 with a wrong DST"; return 1; }
		echo "the foreign bytes went unnoticed"
		return 1
	fi
	[ "$rc" = 1 ] && grep -q 'copy needs the device alone' "$tmp/err"
}

# 1. Two copies at once: none may exit 0 with a wrong DST; the second is
# refused while the first holds the claims.
t_copy_concurrent() {
	head -c 5500000 /dev/urandom > "$tmp/c1"
	head -c 5500000 /dev/urandom > "$tmp/c2"
	rm -f "$tmp/o1" "$tmp/o2"
	timeout 120 "$zc" copy "$tmp/c1" "$tmp/o1" > /dev/null 2> "$tmp/e1" &
	p1=$!
	timeout 120 "$zc" copy "$tmp/c2" "$tmp/o2" > /dev/null 2> "$tmp/e2" &
	p2=$!
	wait "$p1"
	r1=$?
	wait "$p2"
	r2=$?
	echo "exit $r1 and $r2"
	cat "$tmp/e1" "$tmp/e2"
	if [ "$r1" = 0 ] && ! cmp -s "$tmp/c1" "$tmp/o1"; then
		echo "copy 1: exit 0 with a wrong DST"
		return 1
	fi
	if [ "$r2" = 0 ] && ! cmp -s "$tmp/c2" "$tmp/o2"; then
		echo "copy 2: exit 0 with a wrong DST"
		return 1
	fi
	# A copy that failed said why.
	for e in "$tmp/e1" "$tmp/e2"; do
		[ ! -s "$e" ] || grep -Eq 'holds the ring|device alone' "$e" || return 1
	done
}

# 2. copy F F (or through a link) and copy DIR F leave F as it was.
t_copy_same_file() {
	printf 'precious bytes\n' > "$tmp/f"
	cp "$tmp/f" "$tmp/f.orig"
	ln -sf "$tmp/f" "$tmp/f.sym"
	ln -f "$tmp/f" "$tmp/f.hard"
	for d in "$tmp/f" "$tmp/f.sym" "$tmp/f.hard"; do
		expect_rc 1 timeout 20 "$zc" copy "$tmp/f" "$d" || return 1
		grep -q 'are the same file' "$tmp/err" || { cat "$tmp/err"; return 1; }
		cmp "$tmp/f.orig" "$tmp/f" || { echo "copy F ${d##*/} changed F"; return 1; }
	done
	mkdir -p "$tmp/dir"
	expect_rc 1 timeout 20 "$zc" copy "$tmp/dir" "$tmp/f" || return 1
	cmp "$tmp/f.orig" "$tmp/f" || { echo "copy DIR F changed F"; return 1; }
}

# 3. get FILE checks the device before it touches FILE.
t_get_device_first() {
	printf 'precious bytes\n' > "$tmp/f"
	cp "$tmp/f" "$tmp/f.orig"
	ZCDEV_DEV=$tmp/no-such-device expect_rc 3 "$zc" get "$tmp/f" || return 1
	cmp "$tmp/f.orig" "$tmp/f" || { echo "get emptied FILE with no device"; return 1; }
	ZCDEV_DEV=/dev/null expect_rc 3 "$zc" get "$tmp/f" || return 1
	cmp "$tmp/f.orig" "$tmp/f" || { echo "get emptied FILE with no zcdev"; return 1; }
}

# 4. get checks its output before a byte leaves the ring: an output in
# append mode works with every method, a full or closed one fails with
# nothing taken.
t_get_output_first() {
	for m in read mmap splice sendfile; do
		fill_ring 5000 || return 1
		printf 'HEAD' > "$tmp/app"
		timeout 20 "$zc" get --method "$m" >> "$tmp/app" 2> "$tmp/err" ||
			{ echo "get -m $m >> FILE failed: $(cat "$tmp/err")"; return 1; }
		{ printf 'HEAD'; cat "$tmp/small"; } | cmp - "$tmp/app" ||
			{ echo "get -m $m >> FILE: wrong bytes"; return 1; }
		fill_ring 5000 || return 1
		timeout 20 "$zc" get --method "$m" > /dev/full 2> "$tmp/err"
		rc=$?
		[ "$rc" = 1 ] || { echo "get -m $m > /dev/full: exit $rc"; return 1; }
		grep -q 'No space left on device' "$tmp/err" || { cat "$tmp/err"; return 1; }
		[ "$(used)" = 5000 ] ||
			{ echo "get -m $m > /dev/full took $((5000 - $(used))) bytes"; return 1; }
		timeout 20 "$zc" get --method "$m" >&- 2> "$tmp/err"
		rc=$?
		[ "$rc" = 1 ] || { echo "get -m $m >&-: exit $rc"; return 1; }
		[ "$(used)" = 5000 ] ||
			{ echo "get -m $m >&- took $((5000 - $(used))) bytes"; return 1; }
	done
	"$zc" reset
}

# 5. With 0-2 closed, the device never becomes stderr or stdin.
t_closed_std_fds() {
	"$zc" reset || return 1
	max=$(info_field max_ring_pages)
	"$zc" resize $((max + 1)) 2>&-
	rc=$?
	[ "$rc" = 1 ] || { echo "resize 2>&-: exit $rc"; return 1; }
	[ "$(used)" = 0 ] || { echo "an error message went into the ring: $(used) bytes"; return 1; }
	for m in write mmap splice vmsplice; do
		timeout 20 "$zc" put --method "$m" <&- 2> "$tmp/err"
		rc=$?
		[ "$rc" = 1 ] || { echo "put -m $m <&-: exit $rc"; cat "$tmp/err"; return 1; }
		grep -q 'standard input is closed' "$tmp/err" || { cat "$tmp/err"; return 1; }
		[ "$(used)" = 0 ] || { echo "put -m $m <&- put $(used) bytes"; return 1; }
	done
}

# 6. copy ends after the bytes it put, though a writer is open elsewhere.
t_copy_foreign_writer() {
	rm -f "$tmp/out"
	exec 3> "$dev" || return 1
	expect_rc 0 timeout 60 "$zc" copy "$tmp/in" "$tmp/out" 3>&-
	rc=$?
	exec 3>&-
	[ "$rc" = 0 ] && cmp "$tmp/in" "$tmp/out"
}

# 7. One mmap producer and one mmap consumer at a time: a second one of
# either is refused at once, not let in to corrupt the first.
t_mmap_claims() {
	"$zc" reset || return 1
	rm -f "$tmp/fifo"
	mkfifo "$tmp/fifo" || return 1
	exec 4<> "$tmp/fifo"
	timeout 60 "$zc" put --method mmap "$tmp/fifo" 4>&- 2> "$tmp/err1" &
	p1=$!
	sleep 1
	head -c 1000 "$tmp/in" > "$tmp/small"
	expect_rc 1 timeout 10 "$zc" put --method mmap "$tmp/small" 4>&-
	rc=$?
	exec 4>&-
	wait "$p1"
	[ "$rc" = 0 ] || return 1
	grep -q 'another producer holds the ring' "$tmp/err" || return 1
	"$zc" reset || return 1
	# get FILE writes only a file it creates.
	rm -f "$tmp/o1" "$tmp/o2"
	exec 3> "$dev" || return 1
	timeout 60 "$zc" get --method mmap "$tmp/o1" 3>&- 2> "$tmp/err1" &
	p1=$!
	sleep 1
	expect_rc 1 timeout 10 "$zc" get --method mmap "$tmp/o2" 3>&-
	rc=$?
	exec 3>&-
	wait "$p1"
	[ "$rc" = 0 ] && grep -q 'another consumer holds the ring' "$tmp/err"
}

# 8. Output that does not reach stdout fails the command.
t_stdout_errors() {
	for cmd in "info" "stats --json" "--help" "info --help" "--version" \
		   "bench --size 256K --method rw"; do
		# shellcheck disable=SC2086 # cmd is words
		timeout 120 "$zc" $cmd > /dev/full 2> "$tmp/err"
		rc=$?
		[ "$rc" = 1 ] || { echo "zcdev $cmd > /dev/full: exit $rc"; return 1; }
		grep -q 'write error' "$tmp/err" || { cat "$tmp/err"; return 1; }
	done
}

# 10. Messages that say what is wrong, and no hang.
t_messages() {
	expect_rc 2 "$zc" info --json=1 || return 1
	grep -q "option '--json' takes no argument" "$tmp/err" || { cat "$tmp/err"; return 1; }
	expect_rc 2 "$zc" resize -1 || return 1
	grep -q "bad page count '-1'" "$tmp/err" || { cat "$tmp/err"; return 1; }
	rm -f "$tmp/fifo"
	mkfifo "$tmp/fifo" || return 1
	ZCDEV_DEV=$tmp/fifo expect_rc 3 timeout 10 "$zc" info || return 1
	grep -q 'not a zcdev device' "$tmp/err" || return 1
	ZCDEV_DEV='' expect_rc 0 "$zc" info || return 1
	grep -q "^device  *$dev$" "$tmp/stdout" || return 1
	# An empty value selects nothing: a usage error, not a silent no-op.
	expect_rc 2 "$zc" bench --method '' || return 1
	grep -q "option '--method' needs a value" "$tmp/err" || { cat "$tmp/err"; return 1; }
	expect_rc 2 "$zc" copy -m '' a b
}

t_zero_page_ring() {
	pages=$(info_field ring_pages)
	head -c 1000 "$tmp/in" > "$tmp/small"
	"$zc" reset && "$zc" resize 0 || return 1
	for c in "put $tmp/small" "get $tmp/out" "copy $tmp/small $tmp/out"; do
		# shellcheck disable=SC2086 # c is words
		expect_rc 1 timeout 20 "$zc" $c &&
			grep -q 'the ring has 0 pages' "$tmp/err" ||
			{ cat "$tmp/err"; "$zc" resize "$pages"; return 1; }
	done
	"$zc" resize "$pages"
}

t_device_as_file() {
	head -c 1000 "$tmp/in" > "$tmp/small"
	for c in "copy $dev $tmp/out" "copy $tmp/small $dev" "put $dev" "get $dev"; do
		# shellcheck disable=SC2086 # c is words
		expect_rc 1 timeout 20 "$zc" $c || return 1
		grep -q 'is the device itself' "$tmp/err" || { cat "$tmp/err"; return 1; }
	done
	"$zc" reset
}

# The device's path with a byte that is not UTF-8: JSON carries U+FFFD.
t_json_utf8() {
	bad=$tmp/zc$(printf '\377')
	ln -sf "$dev" "$bad" || return 1
	ZCDEV_DEV=$bad expect_rc 0 "$zc" info --json || return 1
	tr -d '\377' < "$tmp/stdout" | cmp -s - "$tmp/stdout" ||
		{ echo "a raw 0xff byte in the JSON"; return 1; }
	grep -q 'zc\\ufffd"' "$tmp/stdout"
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
		read splice-null read-null2 tee-null write splice || return 1
	cat "$tmp/stdout"
	xobj get:read none | grep -q '"copied_bytes":16384,"by_ref_bytes":0,' &&
		xobj get:splice-null none |
		grep -q '"copied_bytes":0,"by_ref_bytes":16384,.*"pages_spliced_out":4,' &&
		xobj get:splice-null mapped | grep -q '"lent_ptes_left":0,' &&
		xobj get:splice-null mapped |
		grep -Eq '"ptes_zapped":([4-9]|[1-9][0-9]+),.*"copied_bytes":0,"by_ref_bytes":16384,' &&
		xobj get:read-null2 none | grep -q '"copied_bytes":16384,"by_ref_bytes":0,' &&
		xobj get:tee-null none |
		grep -q '"copied_bytes":0,"by_ref_bytes":16384,.*"pages_spliced_out":4,' &&
		xobj get:tee-null mapped | grep -q '"lent_ptes_left":0,' &&
		xobj put:write none | grep -q '"copied_bytes":16384,"by_ref_bytes":0,' &&
		xobj put:splice none |
		grep -q '"copied_bytes":0,"by_ref_bytes":16384,.*"pages_stolen_in":4,'
}

# ---- issue 24: get never loses or duplicates a byte ----

# The accounting rule. IN went into the ring (after PRE bytes of
# something else in OUT); OUT is what get wrote, REST what was left in
# the ring afterwards; RC and $tmp/err are get's. OUT (past PRE) must be a
# prefix of IN and REST the rest of IN, except for the bytes get says it
# lost ("N bytes taken from the ring were lost", exit 1) and, with SLACK,
# up to SLACK bytes a pipe swallowed when its reader left.
# account IN OUT REST RC PRE [SLACK]
account() {
	insz=$(wc -c < "$1")
	o=$(($(wc -c < "$2") - $5))
	r=$(wc -c < "$3")
	lost=$(sed -n 's/.* \([0-9][0-9]*\) bytes taken from the ring were lost.*/\1/p' "$tmp/err" | tail -n 1)
	lost=${lost:-0}
	case $4 in
	0 | 1) ;;
	*) echo "exit $4 (only 0 or 1 may end get)"; cat "$tmp/err"; return 1 ;;
	esac
	[ "$lost" = 0 ] || [ "$4" = 1 ] || { echo "lost $lost bytes, exit $4"; return 1; }
	gap=$((insz - o - r))
	if [ "$gap" != "$lost" ] && { [ -z "${6:-}" ] || [ "$gap" -lt "$lost" ] ||
		[ "$gap" -gt $((lost + $6)) ]; }; then
		echo "input $insz = output $o + ring $r + $gap, but get says $lost lost (exit $4)"
		cat "$tmp/err"
		return 1
	fi
	tail -c +$(($5 + 1)) "$2" | cmp -s - "$(head_of "$1" "$o")" ||
		{ echo "the output is not the input's first $o bytes"; return 1; }
	tail -c "$r" "$1" | cmp -s - "$3" ||
		{ echo "the ring's rest is not the input's last $r bytes"; return 1; }
}

head_of() {
	head -c "$2" "$1" > "$tmp/head_of"
	echo "$tmp/head_of"
}

# What is left in the ring, drained to $1 (nobody writes: get ends at EOF).
rest_of_ring() {
	timeout 60 "$zc" get > "$1"
}

# A small tmpfs of $1 at $tmp/fs (mounted once; emptied each time).
small_fs() {
	mkdir -p "$tmp/fs"
	umount "$tmp/fs" 2> /dev/null
	mount -t tmpfs -o "size=$1" zcdev-test "$tmp/fs"
}

# A shell's output before get's stays: get writes at the offset it is
# given, and never truncates a file it did not create.
t_get_keeps_head() {
	for m in read mmap splice sendfile; do
		fill_ring 5000 || return 1
		{ printf HEAD; timeout 20 "$zc" get --method "$m"; } > "$tmp/app" 2> "$tmp/err" ||
			{ echo "-m $m failed: $(cat "$tmp/err")"; return 1; }
		{ printf HEAD; cat "$tmp/small"; } | cmp - "$tmp/app" ||
			{ echo "{ printf HEAD; get -m $m; } > F: wrong bytes"; od -c "$tmp/app" | head -n 2; return 1; }
	done
}

# get FILE on an existing FILE leaves it alone and takes nothing; on a
# new FILE it creates it.
t_get_existing_file() {
	for m in read mmap splice sendfile; do
		fill_ring 5000 || return 1
		printf 'precious bytes\n' > "$tmp/f"
		expect_rc 1 timeout 20 "$zc" get --method "$m" "$tmp/f" || return 1
		grep -q 'exists' "$tmp/err" || { cat "$tmp/err"; return 1; }
		[ "$(cat "$tmp/f")" = 'precious bytes' ] || { echo "-m $m changed FILE"; return 1; }
		[ "$(used)" = 5000 ] || { echo "-m $m took $((5000 - $(used))) bytes"; return 1; }
		rm -f "$tmp/f"
		expect_rc 0 timeout 20 "$zc" get --method "$m" "$tmp/f" || return 1
		cmp "$tmp/small" "$tmp/f" || return 1
	done
}

# Into a pipe whose reader has gone: nothing leaves the ring, exit 1.
t_get_no_reader() {
	for m in read mmap splice sendfile; do
		fill_ring 5000 || return 1
		{ sleep 1; timeout 20 "$zc" get --method "$m" 2> "$tmp/err"; echo $? > "$tmp/rc"; } | true
		rc=$(cat "$tmp/rc")
		[ "$rc" = 1 ] || { echo "get -m $m into a pipe with no reader: exit $rc"; cat "$tmp/err"; return 1; }
		grep -q 'Broken pipe' "$tmp/err" || { cat "$tmp/err"; return 1; }
		[ "$(used)" = 5000 ] || { echo "get -m $m took $((5000 - $(used))) bytes"; return 1; }
	done
	"$zc" reset
}

# A disk that is full already: nothing leaves the ring. One that fills
# while get writes: what it wrote plus what is left is the input.
t_get_full_disk() {
	for m in read mmap splice sendfile; do
		small_fs 64k || return 1
		fill_ring 5000 || return 1
		dd if=/dev/zero of="$tmp/fs/fill" bs=4096 2> /dev/null
		timeout 20 "$zc" get --method "$m" > "$tmp/fs/out" 2> "$tmp/err"
		rc=$?
		[ "$rc" = 1 ] || { echo "get -m $m > full disk: exit $rc"; cat "$tmp/err"; return 1; }
		grep -q 'No space left on device' "$tmp/err" || { cat "$tmp/err"; return 1; }
		[ "$(used)" = 5000 ] || { echo "get -m $m > full disk took $((5000 - $(used))) bytes"; return 1; }
		small_fs 64k || return 1
		fill_ring 200000 || return 1
		timeout 20 "$zc" get --method "$m" > "$tmp/fs/out" 2> "$tmp/err"
		rc=$?
		rest_of_ring "$tmp/rest" || return 1
		echo "-m $m: exit $rc, wrote $(wc -c < "$tmp/fs/out"), left $(wc -c < "$tmp/rest")"
		[ "$rc" = 1 ] || { echo "get -m $m > filling disk: exit $rc"; return 1; }
		account "$tmp/small" "$tmp/fs/out" "$tmp/rest" "$rc" 0 || return 1
		# Once the disk has room again, the rest follows: no byte twice.
		cat "$tmp/fs/out" "$tmp/rest" | cmp - "$tmp/small" || return 1
	done
	umount "$tmp/fs"
}

# A file size limit: EFBIG, not death by SIGXFSZ, and exact accounting.
t_get_fsize_limit() {
	for m in read mmap splice sendfile; do
		fill_ring 60000 || return 1
		rm -f "$tmp/out"
		(ulimit -f 20 && timeout 20 "$zc" get --method "$m" > "$tmp/out" 2> "$tmp/err")
		rc=$?
		rest_of_ring "$tmp/rest" || return 1
		echo "-m $m: exit $rc, wrote $(wc -c < "$tmp/out"), left $(wc -c < "$tmp/rest")"
		[ "$rc" = 1 ] || { echo "get -m $m with ulimit -f: exit $rc"; cat "$tmp/err"; return 1; }
		grep -q 'File too large' "$tmp/err" || { cat "$tmp/err"; return 1; }
		account "$tmp/small" "$tmp/out" "$tmp/rest" "$rc" 0 || return 1
	done
}

# SIGTERM, SIGINT or SIGHUP while get is blocked on a full FIFO: it ends
# with exit 1, and what reached the FIFO plus what is left is the input.
# signal_get_to_fifo SIG READER ARGS...: zcdev get ARGS into a FIFO that
# the shell snippet READER reads into $tmp/out; SIG comes a second in.
# Sets rc to get's exit status and leaves the ring's rest in $tmp/rest.
signal_get_to_fifo() {
	sig=$1 reader=$2
	shift 2
	rm -f "$tmp/fifo"
	mkfifo "$tmp/fifo" || return 1
	sh -c "$reader" < "$tmp/fifo" > "$tmp/out" &
	rp=$!
	timeout 20 "$zc" get "$@" > "$tmp/fifo" 2> "$tmp/err" &
	gp=$!
	sleep 1
	kill -"$sig" "$gp"
	wait "$gp"
	rc=$?
	wait "$rp"
	rest_of_ring "$tmp/rest"
}

t_get_signal_blocked() {
	for m in read mmap splice sendfile; do
		for sig in TERM INT HUP; do
			fill_ring 200000 || return 1
			signal_get_to_fifo "$sig" 'sleep 3; cat' --method "$m" ||
				return 1
			echo "-m $m SIG$sig: exit $rc, wrote $(wc -c < "$tmp/out"), left $(wc -c < "$tmp/rest")"
			[ "$rc" = 1 ] || { cat "$tmp/err"; return 1; }
			account "$tmp/small" "$tmp/out" "$tmp/rest" "$rc" 0 || return 1
		done
	done
}

# put -m mmap of exactly the ring's size, with nobody reading, ends.
t_put_mmap_ring_size() {
	ring=$(info_field ring_bytes)
	"$zc" reset || return 1
	head -c "$ring" "$tmp/in" > "$tmp/ring-size"
	expect_rc 0 timeout 20 "$zc" put --method mmap "$tmp/ring-size" || return 1
	[ "$(used)" = "$ring" ] || return 1
	rest_of_ring "$tmp/rest" && cmp "$tmp/ring-size" "$tmp/rest"
}

# --timeout bounds the whole command, the opens included.
t_copy_timeout_open() {
	rm -f "$tmp/fifo" "$tmp/out"
	mkfifo "$tmp/fifo" || return 1
	start=$(date +%s)
	expect_rc 1 timeout 20 "$zc" copy --timeout 2 "$tmp/fifo" "$tmp/out" || return 1
	grep -q 'timed out' "$tmp/err" || { cat "$tmp/err"; return 1; }
	[ $(($(date +%s) - start)) -le 5 ] || { echo "took $(($(date +%s) - start)) s"; return 1; }
	# The claims went with it.
	"$zc" reset && head -c 1000 "$tmp/in" > "$tmp/small" &&
		expect_rc 0 timeout 20 "$zc" put "$tmp/small" && "$zc" reset
}

# ZCDEV_DEV naming a directory or a FIFO: exit 3, and say what it is.
t_dev_not_chardev() {
	mkdir -p "$tmp/dir"
	rm -f "$tmp/fifo"
	mkfifo "$tmp/fifo" || return 1
	for c in "info" "put $tmp/in" "get" "reset" "resize 16" "copy $tmp/in $tmp/o" \
		 "bench --size 64K" "explain read"; do
		# shellcheck disable=SC2086 # c is words
		ZCDEV_DEV=$tmp/dir expect_rc 3 timeout 20 "$zc" $c < /dev/null || return 1
		grep -q 'is a directory, not a zcdev' "$tmp/err" || { echo "$c"; cat "$tmp/err"; return 1; }
		# shellcheck disable=SC2086 # c is words
		ZCDEV_DEV=$tmp/fifo expect_rc 3 timeout 20 "$zc" $c < /dev/null || return 1
		grep -q 'is a FIFO, not a zcdev' "$tmp/err" || { echo "$c"; cat "$tmp/err"; return 1; }
	done
}

# The "Done when" stress: streams of STRESS_KB (default 1536 KiB, 24 laps
# of the 16-page ring) for every put and get pair, put and get in two
# processes. Something ends the first get; a second one drains the rest
# once put is done. What the two wrote, less what the first says it lost
# (and, for a pipe, what the pipe held when its reader left), is the input.
# stress_one HOW PUT GET
stress_one() {
	rm -f "$tmp/o1" "$tmp/o2" "$tmp/fifo"
	"$zc" reset || return 1
	exec 3> "$dev" || return 1
	slack=''
	case $1 in
	term)
		timeout 60 "$zc" get --method "$3" > "$tmp/o1" 2> "$tmp/err" 3>&- &
		gp=$!
		timeout 60 "$zc" put --method "$2" "$tmp/stress" 3>&- 2> "$tmp/perr" &
		pp=$!
		usleep $(($(shuf -i 0-1500 -n 1) * 1000))
		kill -TERM "$gp"
		wait "$gp"
		rc=$?
		;;
	disk)
		small_fs 512k || return 1
		timeout 60 "$zc" get --method "$3" > "$tmp/fs/o1" 2> "$tmp/err" 3>&- &
		gp=$!
		timeout 60 "$zc" put --method "$2" "$tmp/stress" 3>&- 2> "$tmp/perr" &
		pp=$!
		wait "$gp"
		rc=$?
		cp "$tmp/fs/o1" "$tmp/o1"
		umount "$tmp/fs"
		;;
	reader)
		mkfifo "$tmp/fifo" || return 1
		dd bs=4096 count="$(shuf -i 1-200 -n 1)" < "$tmp/fifo" > "$tmp/o1" 2> /dev/null &
		rp=$!
		timeout 60 "$zc" get --method "$3" > "$tmp/fifo" 2> "$tmp/err" 3>&- &
		gp=$!
		timeout 60 "$zc" put --method "$2" "$tmp/stress" 3>&- 2> "$tmp/perr" &
		pp=$!
		wait "$gp"
		rc=$?
		wait "$rp"
		slack=65536
		;;
	esac
	exec 3>&-
	# SIGTERM before get (or timeout(1) in front of it) could set its
	# handlers kills it; it has taken nothing yet.
	if [ "$1" = term ] && [ "$rc" = 143 ] && [ ! -s "$tmp/o1" ] && [ ! -s "$tmp/err" ]; then
		echo "$2:$3: SIGTERM came before get started"
		rc=0
	fi
	cp "$tmp/err" "$tmp/err1"
	timeout 60 "$zc" get > "$tmp/o2" 2> "$tmp/err2"
	rc2=$?
	wait "$pp" || { echo "put -m $2 failed:"; cat "$tmp/perr"; return 1; }
	cp "$tmp/err1" "$tmp/err"
	[ "$rc2" = 0 ] || { echo "the second get: exit $rc2"; cat "$tmp/err2"; return 1; }
	account "$tmp/stress" "$tmp/o1" "$tmp/o2" "$rc" 0 $slack ||
		{ echo "$1 $2:$3: exit $rc, wrote $(wc -c < "$tmp/o1"), then $(wc -c < "$tmp/o2")"; return 1; }
}

t_stress() {
	pages=$(info_field ring_pages)
	"$zc" reset && "$zc" resize 16 || return 1
	head -c $((${STRESS_KB:-1536} * 1024)) /dev/urandom > "$tmp/stress"
	ret=0
	for p in write mmap splice vmsplice; do
		for g in read mmap splice sendfile; do
			stress_one "$1" "$p" "$g" || { ret=1; break 2; }
		done
	done
	"$zc" reset
	"$zc" resize "$pages"
	return $ret
}

tcase help t_help
tcase version t_version
tcase usage_errors_exit_2 t_usage_errors
tcase device_missing_exit_3 t_device_missing
tcase device_missing_hints_signing t_device_missing_signed
tcase not_zcdev_exit_3 t_not_zcdev
tcase runtime_error_exit_1 t_runtime_error
tcase info t_info
tcase stats_every_counter t_stats
tcase resize t_resize
tcase reset_then_get_eof t_reset
make_input
for m in write mmap splice vmsplice write:sendfile write:mmap mmap:read \
	 mmap:splice splice:mmap vmsplice:read; do
	tcase "copy_$m" t_copy "$m"
done
for p in write mmap splice vmsplice; do
	for g in read mmap splice sendfile; do
		tcase "put_${p}_get_$g" t_put_get "$p" "$g"
	done
done
tcase pipes_splice_splice t_pipes splice splice
tcase pipes_write_read t_pipes write read
tcase copy_counters t_counters
tcase bench_json t_bench
tcase bench_table t_bench_table
tcase explain_one_call t_explain
tcase copy_fails_when_ring_shared t_copy_shared_ring
tcase copy_concurrent_never_wrong t_copy_concurrent
tcase copy_same_file_refused t_copy_same_file
tcase get_checks_device_before_file t_get_device_first
tcase get_checks_output_before_taking t_get_output_first
tcase closed_std_fds_not_the_device t_closed_std_fds
tcase copy_ends_with_foreign_writer t_copy_foreign_writer
tcase mmap_one_producer_one_consumer t_mmap_claims
tcase stdout_write_errors_fail t_stdout_errors
tcase messages t_messages
tcase zero_page_ring_message t_zero_page_ring
tcase device_as_src_or_dst_refused t_device_as_file
tcase json_is_utf8 t_json_utf8
tcase get_keeps_what_precedes_it t_get_keeps_head
tcase get_leaves_an_existing_file t_get_existing_file
tcase get_no_reader_takes_nothing t_get_no_reader
tcase get_full_disk_exact t_get_full_disk
tcase get_file_size_limit_exact t_get_fsize_limit
tcase get_signal_while_blocked_exact t_get_signal_blocked
tcase put_mmap_ring_size_ends t_put_mmap_ring_size
tcase copy_timeout_bounds_opens t_copy_timeout_open
tcase dev_dir_or_fifo_exit_3 t_dev_not_chardev
tcase stress_sigterm_every_pair t_stress term
tcase stress_disk_fills_every_pair t_stress disk
tcase stress_reader_leaves_every_pair t_stress reader


# ---- issue 24: the bench's and explain's own limits ----

# A call size that is not a page multiple finishes (the pipe reference
# rows wrote a ring's worth into a pipe of that size, for ever).
t_bench_odd_chunk() {
	expect_rc 0 timeout 300 "$zc" bench --size 256K --chunk 5000 --repeat 1 \
		--map none --method ref:pipe-rw,get:read,get:splice-null --json || return 1
	! grep -q '"ok":false' "$tmp/stdout" || { cat "$tmp/stdout"; return 1; }
}

# A deadline fails its rows, and so the command, whatever a row was doing
# (it only set a flag, which nothing looked at).
t_bench_deadline() {
	timeout 120 "$zc" bench --size 1M --repeat 1 --map none \
		--method get:read,put:write --timeout 0.001 > "$tmp/stdout" 2> "$tmp/err"
	rc=$?
	if [ "$rc" = 0 ] || [ "$rc" = 124 ]; then
		echo "bench --timeout 0.001 exited $rc, want a failure before the timeout(1) of 120 s"
		cat "$tmp/err"
		return 1
	fi
	timeout 120 "$zc" explain --map none --timeout 0.001 get:read > "$tmp/stdout" 2> "$tmp/err"
	rc=$?
	if [ "$rc" = 0 ] || [ "$rc" = 124 ]; then
		echo "explain --timeout 0.001 exited $rc, want a failure"
		cat "$tmp/err"
		return 1
	fi
}

# An empty selection is a usage error, not a run of nothing.
t_empty_selections() {
	expect_rc 2 "$zc" bench --method , || return 1
	expect_rc 2 "$zc" bench --map , || return 1
	expect_rc 2 "$zc" explain --map ,
}

# explain caps its call at the ring, as its help says.
t_explain_caps_chunk() {
	expect_rc 0 timeout 300 "$zc" explain --chunk 1G --map none get:read
}

tcase bench_odd_chunk_finishes t_bench_odd_chunk
tcase bench_explain_deadline_fails_rows t_bench_deadline
tcase empty_selections_are_usage_errors t_empty_selections
tcase explain_caps_chunk_at_ring t_explain_caps_chunk


# ---- issue 20: get --method tee, one lend and two readers ----

stat_field() {
	"$zc" stats | awk -v f="$1" '$1 == f { print $2 }'
}

# tee's bytes wait in its own pipes: when the reader of an output pipe
# stalls and a signal comes, no byte may have left the ring with nowhere
# to go (each step takes only what an empty output pipe holds).
t_get_tee_signal_stalled_reader() {
	for sig in TERM INT; do
		fill_ring 200000 || return 1
		rm -f "$tmp/out2"
		signal_get_to_fifo "$sig" 'dd bs=4096 count=1 2> /dev/null; sleep 4; cat' \
			--method tee --tee-to "$tmp/out2" || return 1
		echo "SIG$sig: exit $rc, wrote $(wc -c < "$tmp/out") and $(wc -c < "$tmp/out2"), left $(wc -c < "$tmp/rest")"
		[ "$rc" = 1 ] || { cat "$tmp/err"; return 1; }
		if grep -q 'were lost' "$tmp/err"; then
			cat "$tmp/err"
			return 1
		fi
		account "$tmp/small" "$tmp/out" "$tmp/rest" "$rc" 0 || return 1
		account "$tmp/small" "$tmp/out2" "$tmp/rest" "$rc" 0 || return 1
	done
}

# put in one process, get -m tee to two new files in another: both are
# the input, and the ring lent every byte and copied none out.
t_get_tee() {
	rm -f "$tmp/out" "$tmp/out2"
	"$zc" reset || return 1
	s0=$(stat_field bytes_spliced_out)
	r0=$(stat_field bytes_read_copy)
	c0=$(stat_field bytes_spliced_out_copied)
	p0=$(stat_field pages_spliced_out)
	exec 3> "$dev" || return 1
	timeout 120 "$zc" get --method tee --tee-to "$tmp/out2" "$tmp/out" 3>&- 2> "$tmp/err" &
	pid=$!
	timeout 120 "$zc" put "$tmp/in" 3>&-
	rc=$?
	exec 3>&-
	wait "$pid" || { cat "$tmp/err"; rc=1; }
	[ "$rc" = 0 ] && cmp "$tmp/in" "$tmp/out" && cmp "$tmp/in" "$tmp/out2" || return 1
	s=$(($(stat_field bytes_spliced_out) - s0))
	p=$(($(stat_field pages_spliced_out) - p0))
	echo "spliced out $s bytes in $p pages; read copied $(($(stat_field bytes_read_copy) - r0)), splice copied $(($(stat_field bytes_spliced_out_copied) - c0))"
	[ "$s" = "$size" ] && [ "$p" -ge $((size / 4096)) ] &&
		[ "$(stat_field bytes_read_copy)" = "$r0" ] &&
		[ "$(stat_field bytes_spliced_out_copied)" = "$c0" ]
}

# Both outputs pipes: standard output into cat, FILE2 a FIFO.
t_get_tee_pipes() {
	fill_ring 200000 || return 1
	rm -f "$tmp/fifo" "$tmp/out" "$tmp/out2"
	mkfifo "$tmp/fifo" || return 1
	cat "$tmp/fifo" > "$tmp/out2" &
	cp=$!
	{ timeout 60 "$zc" get --method tee --tee-to "$tmp/fifo" 2> "$tmp/err"; echo $? > "$tmp/rc"; } |
		cat > "$tmp/out"
	wait "$cp"
	[ "$(cat "$tmp/rc")" = 0 ] || { cat "$tmp/err"; return 1; }
	cmp "$tmp/small" "$tmp/out" && cmp "$tmp/small" "$tmp/out2" && [ "$(used)" = 0 ]
}

# Bad input: a usage error (2) or exit 1, and nothing taken or created.
t_get_tee_refusals() {
	fill_ring 5000 || return 1
	rm -f "$tmp/out" "$tmp/out2"
	expect_rc 2 "$zc" get --method tee "$tmp/out" || return 1
	grep -q 'tee needs --tee-to' "$tmp/err" || { cat "$tmp/err"; return 1; }
	expect_rc 2 "$zc" get --tee-to "$tmp/out2" "$tmp/out" || return 1
	grep -q -- '--tee-to is for --method tee' "$tmp/err" || { cat "$tmp/err"; return 1; }
	expect_rc 2 "$zc" get --method tee --tee-to - "$tmp/out" || return 1
	expect_rc 2 "$zc" copy --method write:tee "$tmp/in" "$tmp/out" || return 1
	grep -q 'tee is for' "$tmp/err" || { cat "$tmp/err"; return 1; }
	# FILE2 exists: refused, and the FILE this get created is gone again.
	printf 'precious bytes\n' > "$tmp/out2"
	expect_rc 1 "$zc" get --method tee --tee-to "$tmp/out2" "$tmp/out" || return 1
	cat "$tmp/err"
	grep -q 'exists' "$tmp/err" && [ ! -e "$tmp/out" ] &&
		[ "$(cat "$tmp/out2")" = 'precious bytes' ] || return 1
	rm -f "$tmp/out2"
	"$zc" get --method tee --tee-to "$tmp/out2" >> "$tmp/app" 2> "$tmp/err"
	rc=$?
	[ "$rc" = 1 ] && grep -q 'open for appending' "$tmp/err" && [ ! -e "$tmp/out2" ] ||
		{ echo "get -m tee >> FILE: exit $rc"; cat "$tmp/err"; return 1; }
	expect_rc 1 "$zc" get --method tee --tee-to /dev/full "$tmp/out" || return 1
	grep -q 'No space left on device' "$tmp/err" && [ ! -e "$tmp/out" ] || { cat "$tmp/err"; return 1; }
	[ "$(used)" = 5000 ] || { echo "took $((5000 - $(used))) bytes"; return 1; }
	"$zc" reset
}

# The second output's disk fills: get stops, exit 1, nothing lost; both
# outputs have the same bytes, and they and the ring's rest are the input.
t_get_tee_disk_fills() {
	small_fs 64k || return 1
	fill_ring 200000 || return 1
	rm -f "$tmp/out"
	timeout 20 "$zc" get --method tee --tee-to "$tmp/fs/out2" "$tmp/out" 2> "$tmp/err"
	rc=$?
	rest_of_ring "$tmp/rest" || return 1
	cat "$tmp/err"
	echo "exit $rc, wrote $(wc -c < "$tmp/out") and $(wc -c < "$tmp/fs/out2"), left $(wc -c < "$tmp/rest")"
	[ "$rc" = 1 ] && grep -q 'No space left on device' "$tmp/err" &&
		grep -q "bytes were written to $tmp/fs/out2; it lost nothing" "$tmp/err" &&
		cmp "$tmp/out" "$tmp/fs/out2" &&
		cat "$tmp/out" "$tmp/rest" | cmp - "$tmp/small" || return 1
	umount "$tmp/fs"
}

# The second output's reader leaves halfway: the first output still gets
# every byte taken from the ring, and get says what each output got. The
# reader stops reading, then leaves: get is then blocked in a splice into
# the full FIFO (48K calls, so that a call's end rarely meets the FIFO's
# 64K: then bytes of the call are lost to it and get says how many) or,
# at a call's end, in the check before the next one (nothing lost).
t_get_tee_reader_leaves() {
	fill_ring 200000 || return 1
	rm -f "$tmp/fifo" "$tmp/out"
	mkfifo "$tmp/fifo" || return 1
	{ head -c 70000 > "$tmp/out2"; sleep 2; } < "$tmp/fifo" &
	hp=$!
	timeout 20 "$zc" get --method tee --chunk 48K --tee-to "$tmp/fifo" "$tmp/out" 2> "$tmp/err"
	rc=$?
	wait "$hp"
	rest_of_ring "$tmp/rest" || return 1
	cat "$tmp/err"
	echo "exit $rc, wrote $(wc -c < "$tmp/out"), left $(wc -c < "$tmp/rest")"
	[ "$rc" = 1 ] && grep -q 'Broken pipe' "$tmp/err" &&
		grep -Eq "bytes (taken from the ring were lost to|were written to) $tmp/fifo" "$tmp/err" &&
		grep -q "bytes were written to $tmp/out; it lost nothing" "$tmp/err" &&
		cat "$tmp/out" "$tmp/rest" | cmp - "$tmp/small" &&
		cmp "$tmp/out2" "$(head_of "$tmp/small" 70000)"
}

tcase get_tee_both_outputs_exact t_get_tee
tcase get_tee_signal_stalled_reader_exact t_get_tee_signal_stalled_reader
tcase get_tee_into_pipes t_get_tee_pipes
tcase get_tee_refusals_take_nothing t_get_tee_refusals
tcase get_tee_second_disk_fills t_get_tee_disk_fills
tcase get_tee_second_reader_leaves t_get_tee_reader_leaves


# ---- issue 20: get --method zerocopy, get --to, and io_uring ----

# A TCP receiver on this host: listen_to OUT starts busybox nc on the next
# free port of ours, writing what it gets to OUT, and returns once it
# listens ($port, $rxp). Its stdin is a FIFO this shell holds open: nc
# ends at the connection's end, not at its stdin's.
tcp_port=47000
listen_to() {
	hold_fifo || return 1
	tcp_port=$((tcp_port + 1))
	port=$tcp_port
	nc -l -p "$port" < "$tmp/hold" > "$1" &
	rxp=$!
	listening "$port"
}

# $tmp/hold: a FIFO that this shell holds open for writing (fd 5), a
# stdin for nc that never ends.
hold_fifo() {
	[ -p "$tmp/hold" ] || { mkfifo "$tmp/hold" && exec 5<> "$tmp/hold"; }
}

# Wait (5 s at most) for a listener on port $1, IPv4 or IPv6.
listening() {
	hex=$(printf '%04X' "$1")
	i=0
	until cat /proc/net/tcp /proc/net/tcp6 2> /dev/null |
		grep -q ":$hex [0-9A-F]*:0000 0A "; do
		i=$((i + 1))
		[ "$i" -lt 100 ] || { echo "nothing listens on port $1"; return 1; }
		usleep 50000
	done
}

# A port nothing listens on: connections to it are refused.
closed_port() {
	tcp_port=$((tcp_port + 1))
	echo "$tcp_port"
}

# put in one process, get --method zerocopy --to a receiver in another:
# the receiver has every byte once, in order; the consumer sent from the
# mapping (CONSUME, no read copy) and reported its completions, all in.
# The receiver stalls for 3 s after its first 4 KiB, so the socket still
# holds ring pages when CONSUME passes them while put laps the ring: the
# module keeps those slots (slots_kept moves).
t_get_zerocopy() {
	"$zc" reset || return 1
	rm -f "$tmp/out" "$tmp/rx"
	hold_fifo && mkfifo "$tmp/rx" || return 1
	{ dd bs=4096 count=1 2> /dev/null; sleep 3; cat; } < "$tmp/rx" > "$tmp/out" &
	dp=$!
	tcp_port=$((tcp_port + 1))
	port=$tcp_port
	nc -l -p "$port" < "$tmp/hold" > "$tmp/rx" &
	rxp=$!
	listening "$port" || return 1
	m0=$(stat_field bytes_consumed_mmap)
	r0=$(stat_field bytes_read_copy)
	k0=$(stat_field slots_kept)
	exec 3> "$dev" || return 1
	timeout 120 "$zc" get --method zerocopy --to "127.0.0.1:$port" 3>&- 2> "$tmp/err" &
	gp=$!
	timeout 120 "$zc" put "$tmp/in" 3>&-
	rc=$?
	exec 3>&-
	wait "$gp" || { echo "get exited $?"; rc=1; }
	wait "$rxp"
	wait "$dp"
	cat "$tmp/err"
	echo "consumed by mmap $(($(stat_field bytes_consumed_mmap) - m0)), read copied $(($(stat_field bytes_read_copy) - r0)), slots kept $(($(stat_field slots_kept) - k0))"
	[ "$rc" = 0 ] && cmp "$tmp/in" "$tmp/out" || return 1
	[ "$(($(stat_field bytes_consumed_mmap) - m0))" = "$size" ] &&
		[ "$(stat_field bytes_read_copy)" = "$r0" ] || return 1
	[ "$(($(stat_field slots_kept) - k0))" -gt 0 ] || { echo "no slot kept"; return 1; }
	zc_line=$(grep '^zcdev: get --method zerocopy: [0-9]* sends' "$tmp/err") ||
		{ echo "no completion report"; return 1; }
	sends=$(echo "$zc_line" | sed 's/.*zerocopy: \([0-9]*\) sends.*/\1/')
	done_=$(echo "$zc_line" | sed 's/.* \([0-9]*\) completed.*/\1/')
	copied=$(echo "$zc_line" | sed 's/.* \([0-9]*\) of them copied.*/\1/')
	# At least one send per 64K chunk; loopback delivers copies of all.
	[ "$sends" -ge $((size / 65536)) ] && [ "$done_" = "$sends" ] &&
		[ "$copied" = "$done_" ]
}

# --to works for every method: the bytes reach the receiver whole, and
# a FILE beside --to is a usage error.
t_get_to_methods() {
	for m in read mmap splice sendfile uring zerocopy tee; do
		fill_ring 300000 || return 1
		rm -f "$tmp/out" "$tmp/out2"
		listen_to "$tmp/out" || return 1
		extra=''
		[ "$m" = tee ] && extra="--tee-to $tmp/out2"
		# shellcheck disable=SC2086 # extra is words
		timeout 60 "$zc" get --method "$m" --to "localhost:$port" $extra 2> "$tmp/err"
		rc=$?
		wait "$rxp"
		[ "$rc" = 0 ] || { echo "get -m $m --to: exit $rc"; cat "$tmp/err"; return 1; }
		cmp "$tmp/small" "$tmp/out" || { echo "get -m $m --to: wrong bytes"; return 1; }
		[ "$m" != tee ] || cmp "$tmp/small" "$tmp/out2" || return 1
		[ "$(used)" = 0 ] || { echo "get -m $m --to left $(used) bytes"; return 1; }
	done
}

# Bad destinations: a usage error (2) for what is not HOST:PORT, exit 1
# for one that refuses or cannot be resolved, or an output that is no
# TCP socket; in every case nothing leaves the ring.
t_get_to_errors() {
	fill_ring 5000 || return 1
	for to in nope :80 host: host:0 host:65536 host:8x '[::1]80' 1:2:3; do
		expect_rc 2 "$zc" get --method zerocopy --to "$to" || return 1
		grep -qF "bad --to '$to'" "$tmp/err" || { cat "$tmp/err"; return 1; }
	done
	expect_rc 2 "$zc" get --to "127.0.0.1:9" "$tmp/out" || return 1
	grep -q 'two outputs' "$tmp/err" || { cat "$tmp/err"; return 1; }
	expect_rc 2 "$zc" get --method zerocopy "$tmp/out" || return 1
	grep -q -- '--method zerocopy sends on a TCP socket' "$tmp/err" || { cat "$tmp/err"; return 1; }
	expect_rc 2 "$zc" copy --method write:zerocopy "$tmp/in" "$tmp/out" || return 1
	expect_rc 2 "$zc" put --to "127.0.0.1:9" || return 1
	p=$(closed_port)
	for m in zerocopy read; do
		expect_rc 1 timeout 20 "$zc" get --method "$m" --to "127.0.0.1:$p" || return 1
		grep -q "connect to 127.0.0.1:$p: Connection refused (nothing was taken from the ring)" "$tmp/err" ||
			{ cat "$tmp/err"; return 1; }
	done
	expect_rc 1 timeout 20 "$zc" get --method zerocopy --to "no-such-host.invalid:80" || return 1
	grep -q 'cannot resolve no-such-host.invalid' "$tmp/err" || { cat "$tmp/err"; return 1; }
	rm -f "$tmp/out"
	timeout 20 "$zc" get --method zerocopy > "$tmp/out" 2> "$tmp/err"
	rc=$?
	[ "$rc" = 1 ] && grep -q 'standard output is not a TCP socket' "$tmp/err" ||
		{ echo "get -m zerocopy > FILE: exit $rc"; cat "$tmp/err"; return 1; }
	[ "$(used)" = 5000 ] || { echo "took $((5000 - $(used))) bytes"; return 1; }
	"$zc" reset
}

# The receiver stops reading and the socket's buffers fill: get blocks in
# send(). SIGTERM stops it with exit 1, having lost nothing: what reached
# the receiver (after get ended, the socket still sends what it took)
# and what is left in the ring are the input, once each. Small TCP
# buffers (restored after) so that the ring's bytes cannot all fit.
t_get_zerocopy_signal() {
	w=$(cat /proc/sys/net/ipv4/tcp_wmem)
	r=$(cat /proc/sys/net/ipv4/tcp_rmem)
	echo '4096 16384 32768' > /proc/sys/net/ipv4/tcp_wmem || return 1
	echo '4096 16384 32768' > /proc/sys/net/ipv4/tcp_rmem || return 1
	ret=1
	while :; do
		fill_ring 600000 || break
		rm -f "$tmp/out" "$tmp/rx"
		hold_fifo && mkfifo "$tmp/rx" || break
		{ dd bs=4096 count=1 2> /dev/null; sleep 4; cat; } < "$tmp/rx" > "$tmp/out" &
		dp=$!
		tcp_port=$((tcp_port + 1))
		port=$tcp_port
		nc -l -p "$port" < "$tmp/hold" > "$tmp/rx" &
		rxp=$!
		listening "$port" || break
		timeout 20 "$zc" get --method zerocopy --to "127.0.0.1:$port" 2> "$tmp/err" &
		gp=$!
		sleep 1
		kill -TERM "$gp"
		wait "$gp"
		rc=$?
		wait "$rxp"
		wait "$dp"
		rest_of_ring "$tmp/rest" || break
		cat "$tmp/err"
		echo "exit $rc, the receiver got $(wc -c < "$tmp/out"), left $(wc -c < "$tmp/rest")"
		[ "$rc" = 1 ] && grep -q 'stopped by SIGTERM' "$tmp/err" &&
			grep -q 'nothing was lost' "$tmp/err" &&
			grep -q '^zcdev: get --method zerocopy: [1-9][0-9]* sends' "$tmp/err" || break
		[ "$(wc -c < "$tmp/rest")" -gt 0 ] || { echo "get was not blocked: nothing left"; break; }
		account "$tmp/small" "$tmp/out" "$tmp/rest" "$rc" 0 || break
		ret=0
		break
	done
	echo "$w" > /proc/sys/net/ipv4/tcp_wmem
	echo "$r" > /proc/sys/net/ipv4/tcp_rmem
	return $ret
}

# get --method uring waiting on an empty ring (by poll): a stop cancels
# its read, which takes nothing; bytes written after are all still there.
t_get_uring_signal() {
	"$zc" reset || return 1
	exec 3> "$dev" || return 1
	timeout 20 "$zc" get --method uring > "$tmp/out" 3>&- 2> "$tmp/err" &
	gp=$!
	sleep 1
	kill -TERM "$gp"
	wait "$gp"
	rc=$?
	printf 'after the stop' >&3
	exec 3>&-
	cat "$tmp/err"
	[ "$rc" = 1 ] && grep -q 'stopped by SIGTERM' "$tmp/err" && [ ! -s "$tmp/out" ] || return 1
	rest_of_ring "$tmp/rest" && [ "$(cat "$tmp/rest")" = 'after the stop' ]
}

# io_uring on both sides, put and get in two processes and as copy: every
# byte, in order; write's and read's counters (io_uring's requests go
# through the same write and read code).
t_uring_counters() {
	"$zc" reset || return 1
	w0=$(stat_field bytes_written_copy)
	r0=$(stat_field bytes_read_copy)
	t_put_get uring uring || return 1
	[ "$(($(stat_field bytes_written_copy) - w0))" = "$size" ] &&
		[ "$(($(stat_field bytes_read_copy) - r0))" = "$size" ]
}

# The bench's new rows: the MSG_ZEROCOPY row reports its completions,
# every one in, in the JSON and in the table's notes.
t_bench_zerocopy() {
	expect_rc 0 timeout 300 "$zc" bench --size 1M --chunk 64K --repeat 1 \
		--method get:mmap-send-zc,put:uring-write,get:uring-read --format both || return 1
	cat "$tmp/stdout"
	grep -q '^get mmap+send(MSG_ZEROCOPY) >tcp  *[0-9.]* ' "$tmp/stdout" &&
		grep -q '^put uring write  *[0-9.]* ' "$tmp/stdout" &&
		grep -q '^get uring read  *[0-9.]* ' "$tmp/stdout" || return 1
	grep -Eq '^  get mmap\+send\(MSG_ZEROCOPY\) >tcp, mapped, 64 KiB calls: ([1-9][0-9]*) sends, \1 completed, [0-9]+ of them copied by the kernel$' \
		"$tmp/stdout" || return 1
	tail -n 1 "$tmp/stdout" > "$tmp/json"
	! grep -q '"ok":false' "$tmp/json" &&
		grep -Eq '"id":"get:mmap-send-zc",[^]]*"zerocopy":\{"sends":([1-9][0-9]*),"completed":\1,' "$tmp/json"
}

# --tcp-to: the TCP rows send to an external receiver (here one on
# loopback that takes any number of connections), which cannot verify:
# the rows say so, and still pass.
t_bench_tcp_to() {
	tcp_port=$((tcp_port + 1))
	port=$tcp_port
	nc -ll -p "$port" -e sh -c 'cat > /dev/null' &
	sp=$!
	listening "$port" || { kill "$sp"; return 1; }
	timeout 300 "$zc" bench --size 1M --chunk 64K --repeat 1 --map mapped \
		--method mmap-send-zc,splice-tcp --tcp-to "127.0.0.1:$port" --format both \
		> "$tmp/stdout" 2> "$tmp/err"
	rc=$?
	kill "$sp"
	cat "$tmp/stdout" "$tmp/err"
	[ "$rc" = 0 ] && grep -q "^>tcp rows send to 127.0.0.1:$port, an external receiver" "$tmp/stdout" || return 1
	tail -n 1 "$tmp/stdout" > "$tmp/json"
	grep -q "\"tcp_to\":\"127.0.0.1:$port\"" "$tmp/json" &&
		grep -q '"id":"get:splice-tcp",[^]]*"bytes_verified":false' "$tmp/json" &&
		grep -q '"id":"get:read-send",[^]]*"bytes_verified":false' "$tmp/json" &&
		! grep -q '"ok":false' "$tmp/json" || return 1
	expect_rc 2 "$zc" bench --tcp-to nope || return 1
	# Nobody there: the TCP rows fail, and say why.
	p=$(closed_port)
	expect_rc 1 timeout 120 "$zc" bench --size 256K --chunk 64K --repeat 1 --map mapped \
		--method mmap-send-zc --tcp-to "127.0.0.1:$p" || return 1
	grep -q "error: .*connect to 127.0.0.1:$p: Connection refused" "$tmp/stdout" ||
		{ cat "$tmp/stdout"; return 1; }
}

# Hundredths of a second since boot.
uptime_cs() {
	sed 's/^\([0-9]*\)\.\([0-9][0-9]\).*/\1\2/' /proc/uptime
}

# Small TCP buffers (tcp_set_small), restored by tcp_restore: the ring's
# bytes cannot all fit in a socket's.
tcp_set_small() {
	tcp_w=$(cat /proc/sys/net/ipv4/tcp_wmem)
	tcp_r=$(cat /proc/sys/net/ipv4/tcp_rmem)
	echo '4096 16384 32768' > /proc/sys/net/ipv4/tcp_wmem &&
		echo '4096 16384 32768' > /proc/sys/net/ipv4/tcp_rmem
}

tcp_restore() {
	echo "$tcp_w" > /proc/sys/net/ipv4/tcp_wmem
	echo "$tcp_r" > /proc/sys/net/ipv4/tcp_rmem
}

# A receiver that never reads: a stop ends get --method zerocopy within a
# second or so (the completions of what the socket still holds never
# come), with exit 1 and exactly this account on stderr, the bytes the
# receiver had not acknowledged included; what it sent and what is left
# in the ring are the input, once each.
t_get_zerocopy_stop_bounded() {
	tcp_set_small || return 1
	ret=1
	while :; do
		fill_ring 600000 || break
		tcp_port=$((tcp_port + 1))
		port=$tcp_port
		nc -l -p "$port" -e sleep 60 &
		rxp=$!
		listening "$port" || break
		timeout -s KILL 60 "$zc" get --method zerocopy --to "127.0.0.1:$port" 2> "$tmp/err" &
		gp=$!
		sleep 2
		kill -TERM "$gp"
		t0=$(uptime_cs)
		while kill -0 "$gp" 2> /dev/null && [ $(($(uptime_cs) - t0)) -lt 1000 ]; do
			usleep 20000
		done
		took=$(($(uptime_cs) - t0))
		kill "$rxp"
		wait "$gp"
		rc=$?
		wait "$rxp"
		rest_of_ring "$tmp/rest" || break
		cat "$tmp/err"
		echo "exit $rc $took cs after SIGTERM, left $(wc -c < "$tmp/rest")"
		[ "$took" -le 300 ] || { echo "get took more than 3 s to stop"; break; }
		lines=$(wc -l < "$tmp/err")
		[ "$rc" = 1 ] && { [ "$lines" = 3 ] || [ "$lines" = 4 ]; } || break
		sent=$(sed -n 's/^zcdev: \([0-9]*\) bytes were written; nothing was lost: what was not written is still in the ring$/\1/p' "$tmp/err")
		sed -n 1p "$tmp/err" | grep -qx 'zcdev: stopped by SIGTERM' &&
			[ -n "$sent" ] && sed -n 3p "$tmp/err" |
			grep -Eqx 'zcdev: get --method zerocopy: [1-9][0-9]* sends, [0-9]+ completed, [0-9]+ of them copied by the kernel(; the rest had not completed when get stopped)?' ||
			break
		[ "$lines" = 3 ] || sed -n 4p "$tmp/err" |
			grep -Eqx "zcdev: 127.0.0.1:$port had not acknowledged [1-9][0-9]* of the bytes sent when get stopped: the connection still delivers them unless the peer resets it" ||
			break
		[ "$(wc -c < "$tmp/rest")" -gt 0 ] || { echo "get was not blocked: nothing left"; break; }
		[ $((sent + $(wc -c < "$tmp/rest"))) = 600000 ] &&
			tail -c +$((sent + 1)) "$tmp/small" | cmp -s - "$tmp/rest" || break
		ret=0
		break
	done
	tcp_restore
	return $ret
}

# A peer that talks too (a greeting) and reads everything: get --to must
# not end with unread bytes on its socket, whose close() would reset the
# connection and drop what the socket still had to send.
t_get_to_peer_talks() {
	for m in read splice zerocopy; do
		rm -f "$tmp/out"
		"$zc" reset || return 1
		tcp_port=$((tcp_port + 1))
		port=$tcp_port
		nc -l -p "$port" -e sh -c "printf 'hello from the peer'; exec cat > $tmp/out" &
		rxp=$!
		listening "$port" || return 1
		exec 3> "$dev" || return 1
		timeout 120 "$zc" get --method "$m" --to "127.0.0.1:$port" 3>&- 2> "$tmp/err" &
		gp=$!
		timeout 120 "$zc" put "$tmp/in" 3>&-
		rc=$?
		exec 3>&-
		wait "$gp" || { echo "get -m $m exited $?"; rc=1; }
		wait "$rxp"
		[ "$rc" = 0 ] || { cat "$tmp/err"; return 1; }
		cmp "$tmp/in" "$tmp/out" ||
			{ echo "get -m $m: the peer got $(wc -c < "$tmp/out") of $size bytes"; cat "$tmp/err"; return 1; }
	done
}

# Persistent ENOBUFS (optmem_max too small for a single notification):
# get --method zerocopy sends those bytes with a plain send() instead,
# says how many, and every byte arrives.
t_get_zerocopy_enobufs() {
	o=$(cat /proc/sys/net/core/optmem_max)
	ret=1
	while :; do
		fill_ring 300000 || break
		rm -f "$tmp/out"
		listen_to "$tmp/out" || break
		echo 1 > /proc/sys/net/core/optmem_max || break
		timeout 60 "$zc" get --method zerocopy --to "127.0.0.1:$port" 2> "$tmp/err"
		rc=$?
		echo "$o" > /proc/sys/net/core/optmem_max
		wait "$rxp"
		cat "$tmp/err"
		[ "$rc" = 0 ] && cmp "$tmp/small" "$tmp/out" || break
		grep -Eq '^zcdev: get --method zerocopy: [0-9]+ sends, [0-9]+ completed, [0-9]+ of them copied by the kernel; [1-9][0-9]* plain sends \(ENOBUFS with none outstanding: see net.core.optmem_max\)$' \
			"$tmp/err" || break
		[ "$(used)" = 0 ] || break
		ret=0
		break
	done
	echo "$o" > /proc/sys/net/core/optmem_max
	return $ret
}

# A non-blocking standard output (busybox telnetd -i sets O_NONBLOCK on
# its stdin and stdout: here the description that get shares) and a slow
# reader: get waits for room on EAGAIN, and every byte arrives. A pipe
# (get sizes its reads to the pipe's room, mmap does not) and a TCP
# socket (no room to ask for: every method meets EAGAIN). The reader
# starts a second after get does.
nb_get() {
	cat > "$tmp/nbget.sh" << EOF
telnetd -i -K -l /bin/true < /dev/null 2> /dev/null
awk '/^flags/ { print \$2 }' /proc/self/fdinfo/3 3>&1 > "$tmp/flags"
printf MARK
{ sleep 1; touch "$tmp/go"; } > /dev/null &
timeout 60 "$zc" get --method "\$1" 2> "$tmp/err"
echo \$? > "$tmp/rc"
EOF
}

nb_check() {
	fl=$(cat "$tmp/flags")
	[ $((fl & 04000)) != 0 ] || { echo "$1: stdout is not non-blocking (flags $fl)"; return 1; }
	rc=$(cat "$tmp/rc")
	# telnetd's few bytes of negotiation, MARK, then get's.
	pre=$(($(wc -c < "$tmp/out") - 300000))
	[ "$rc" = 0 ] && tail -c 300000 "$tmp/out" | cmp -s - "$tmp/small" &&
		[ "$pre" -ge 4 ] && [ "$(head -c "$pre" "$tmp/out" | tail -c 4)" = MARK ] ||
		{ echo "$1: exit $rc, $((pre - 4)) bytes too many"; cat "$tmp/err"; return 1; }
	[ "$(used)" = 0 ] || { echo "$1 left $(used) bytes"; return 1; }
}

t_get_nonblocking_stdout() {
	if ! grep -q ' /dev/pts ' /proc/mounts; then
		mkdir -p /dev/pts && mount -t devpts devpts /dev/pts || return 1
	fi
	nb_get
	ret=0
	for m in read uring mmap; do
		fill_ring 300000 || return 1
		rm -f "$tmp/out" "$tmp/flags" "$tmp/go"
		sh "$tmp/nbget.sh" "$m" | {
			until [ -e "$tmp/go" ]; do usleep 20000; done
			cat
		} > "$tmp/out"
		nb_check "get -m $m into a pipe" || ret=1
	done
	tcp_set_small || return 1
	for m in read uring mmap; do
		fill_ring 300000 || { ret=1; break; }
		rm -f "$tmp/out" "$tmp/flags" "$tmp/go" "$tmp/rx"
		hold_fifo && mkfifo "$tmp/rx" || { ret=1; break; }
		{ until [ -e "$tmp/go" ]; do usleep 20000; done; cat; } < "$tmp/rx" > "$tmp/out" &
		dp=$!
		tcp_port=$((tcp_port + 1))
		port=$tcp_port
		nc -l -p "$port" < "$tmp/hold" > "$tmp/rx" &
		rxp=$!
		listening "$port" || { ret=1; break; }
		nc 127.0.0.1 "$port" -e sh "$tmp/nbget.sh" "$m"
		wait "$rxp"
		wait "$dp"
		nb_check "get -m $m into a TCP socket" || ret=1
	done
	tcp_restore
	return $ret
}

tcase get_zerocopy_to_tcp_exact t_get_zerocopy
tcase get_zerocopy_stop_bounded_exact t_get_zerocopy_stop_bounded
tcase get_to_peer_talks_every_byte t_get_to_peer_talks
tcase get_zerocopy_enobufs_plain_sends t_get_zerocopy_enobufs
tcase get_nonblocking_stdout_every_byte t_get_nonblocking_stdout
tcase get_to_every_method t_get_to_methods
tcase get_to_errors_take_nothing t_get_to_errors
tcase get_zerocopy_signal_while_blocked_exact t_get_zerocopy_signal
tcase get_uring_signal_cancels_the_read t_get_uring_signal
tcase put_uring_get_uring_counters t_uring_counters
for pg in uring:mmap mmap:uring write:uring uring:splice; do
	tcase "put_${pg%%:*}_get_${pg#*:}" t_put_get "${pg%%:*}" "${pg#*:}"
done
tcase copy_uring t_copy uring
tcase copy_uring_sendfile t_copy uring:sendfile
tcase bench_zerocopy_and_uring_rows t_bench_zerocopy
tcase bench_tcp_to_external_receiver t_bench_tcp_to

# ---- issue 23: several rings ----

# The rings that exist, one number a line, from sysfs.
sysfs_rings() {
	for d in /sys/class/misc/zcdev /sys/class/misc/zcdev[0-9]*; do
		[ -r "$d/ring" ] && cat "$d/ring"
	done | sort -n
}

# The highest ring number (ZCDEV_MAX_RINGS - 1), as the tool's usage
# error gives it.
last_ring=$("$zc" ring-remove x 2>&1 | sed -n "s/.*bad ring number 'x' (0 to \([0-9]*\)).*/\1/p")

# A number no ring has, from the top: ring-add N tests need one. (Not
# $n: ktap.sh counts the cases in it.)
free_ring() {
	fr=$last_ring
	while [ -e "/sys/class/misc/zcdev$fr" ]; do
		fr=$((fr - 1))
	done
	echo "$fr"
}

# Remove the rings a case added, whatever became of the case.
drop_rings() {
	for r in "$@"; do
		"$zc" ring-remove "$r" 2> /dev/null
	done
	return 0
}

# rings lists what sysfs has, in the table and in JSON.
t_rings_list() {
	expect_rc 0 "$zc" rings || return 1
	cat "$tmp/stdout"
	head -n 1 "$tmp/stdout" | grep -Eq '^ring +device +ring_pages +used +writers$' || return 1
	awk 'NR > 1 { print $1 }' "$tmp/stdout" > "$tmp/tool-rings"
	sysfs_rings > "$tmp/sys-rings"
	diff "$tmp/sys-rings" "$tmp/tool-rings" || return 1
	grep -Eq "^0 +/dev/zcdev +$(cat /sys/class/misc/zcdev/ring_pages) +[0-9]+ +[0-9]+$" \
		"$tmp/stdout" || return 1
	expect_rc 0 "$zc" rings --json || return 1
	[ "$(wc -l < "$tmp/stdout")" = 1 ] || return 1
	grep -Eq '^\{"rings":\[\{"ring":0,"node":"zcdev","device":"/dev/zcdev","ring_pages":[0-9]+,"used":[0-9]+,"writers":[0-9]+\}.*\]\}$' \
		"$tmp/stdout" || { cat "$tmp/stdout"; return 1; }
	[ "$(grep -o '"ring":' "$tmp/stdout" | wc -l)" = "$(wc -l < "$tmp/sys-rings")" ]
}

# The list comes from sysfs names and `ring` files alone: other misc
# devices, names that are no ring's, and rings gone since are left out.
t_rings_sysfs() {
	f=$tmp/ringsys
	mkdir -p "$f/module/zcdev" "$f/class/misc/zcdev-control" "$f/class/misc/zcdev07" \
		"$f/class/misc/zcdevx" "$f/class/misc/cpu_dma_latency" "$f/class/misc/zcdev9"
	echo live > "$f/module/zcdev/initstate"
	for r in 0 12 3; do
		d=$f/class/misc/zcdev$r
		[ "$r" = 0 ] && d=$f/class/misc/zcdev
		mkdir -p "$d"
		echo "$r" > "$d/ring"
		echo $((r + 16)) > "$d/ring_pages"
		echo $((r * 100)) > "$d/used"
		echo 1 > "$d/writers"
	done
	ZCDEV_SYSFS=$f expect_rc 0 "$zc" rings || return 1
	cat "$tmp/stdout"
	[ "$(awk 'NR > 1 { printf "%s %s %s %s %s,", $1, $2, $3, $4, $5 }' "$tmp/stdout")" = \
		"0 /dev/zcdev 16 0 1,3 /dev/zcdev3 19 300 1,12 /dev/zcdev12 28 1200 1," ] || return 1
	# No ring at all: the module is not loaded (exit 3), or has none (0).
	rm -r "$f/class/misc/zcdev" "$f/class/misc/zcdev3" "$f/class/misc/zcdev12" \
		"$f/class/misc/zcdev9"
	ZCDEV_SYSFS=$f expect_rc 0 "$zc" rings --json || return 1
	[ "$(cat "$tmp/stdout")" = '{"rings":[]}' ] || return 1
	rm -r "$f/module"
	ZCDEV_SYSFS=$f expect_rc 3 "$zc" rings || return 1
	grep -q 'is the zcdev module loaded?' "$tmp/err"
}

# ring-add makes the lowest free ring, and ring N; -r N uses it, and its
# bytes are its own; ring-remove takes it away.
t_ring_add_remove() {
	before=$(sysfs_rings | tr '\n' ' ')
	used0=$(cat /sys/class/misc/zcdev/used)
	expect_rc 0 "$zc" ring-add || return 1
	rdev=$(cat "$tmp/stdout")
	nr=${rdev#/dev/zcdev}
	echo "ring-add: $rdev"
	case $rdev in
	/dev/zcdev[1-9]*) ;;
	*) echo "ring-add printed '$rdev'"; drop_rings "$nr"; return 1 ;;
	esac
	# The lowest free number: every one below it was taken.
	i=0
	while [ "$i" -lt "$nr" ]; do
		case " $before " in
		*" $i "*) ;;
		*) echo "ring $i was free, ring-add made $nr"; drop_rings "$nr"; return 1 ;;
		esac
		i=$((i + 1))
	done
	big=$(free_ring)
	expect_rc 0 "$zc" ring-add "$big" || { drop_rings "$nr"; return 1; }
	[ "$(cat "$tmp/stdout")" = "/dev/zcdev$big" ] || { drop_rings "$nr" "$big"; return 1; }
	ret=1
	while :; do
		if [ ! -c "$rdev" ] || [ ! -c "/dev/zcdev$big" ]; then
			echo "no node"
			break
		fi
		[ "$(cat "/sys/class/misc/zcdev$big/ring")" = "$big" ] || break
		"$zc" rings | awk 'NR > 1 { print $1 }' | grep -qx "$big" || { echo "rings lacks $big"; break; }
		expect_rc 0 "$zc" -r "$big" info || break
		if ! grep -Eq "^device +/dev/zcdev$big$" "$tmp/stdout" ||
		   ! grep -Eq "^ring +$big$" "$tmp/stdout"; then
			cat "$tmp/stdout"
			break
		fi
		# Bytes through ring nr, by -r and by ZCDEV_DEV, leave ring 0 alone.
		head -c 100000 "$tmp/in" > "$tmp/small"
		"$zc" -r "$nr" put "$tmp/small" || break
		[ "$(cat "/sys/class/misc/zcdev$nr/used")" = 100000 ] || break
		rm -f "$tmp/out"
		ZCDEV_DEV=$rdev timeout 20 "$zc" get "$tmp/out" || break
		cmp "$tmp/small" "$tmp/out" || break
		[ "$(cat /sys/class/misc/zcdev/used)" = "$used0" ] || { echo "ring 0 changed"; break; }
		expect_rc 0 "$zc" ring-remove "$big" || break
		expect_rc 0 "$zc" ring-remove "$nr" || break
		if [ -e "$rdev" ] || [ -e "/sys/class/misc/zcdev$nr" ]; then
			echo "$rdev is still there"
			break
		fi
		[ "$(sysfs_rings | tr '\n' ' ')" = "$before" ] || break
		ret=0
		break
	done
	drop_rings "$nr" "$big"
	return $ret
}

# A ring that is open stays: EBUSY, exit 1, and it is still there.
t_ring_remove_busy() {
	expect_rc 0 "$zc" ring-add || return 1
	rdev=$(cat "$tmp/stdout")
	nr=${rdev#/dev/zcdev}
	exec 4< "$rdev" || { drop_rings "$nr"; return 1; }
	expect_rc 1 "$zc" ring-remove "$nr"
	rc=$?
	exec 4<&-
	if [ "$rc" != 0 ] || ! grep -q "^zcdev: ring-remove: ring $nr is open ($rdev)" "$tmp/err" ||
	   [ ! -c "$rdev" ] || [ ! -e "/sys/class/misc/zcdev$nr" ]; then
		cat "$tmp/err"
		drop_rings "$nr"
		return 1
	fi
	expect_rc 0 "$zc" ring-remove "$nr"
}

# The errors of the control device: each says what is wrong, changes
# nothing, and exits 1 (the ring) or 3 (no control device).
t_ring_errors() {
	before=$(sysfs_rings | tr '\n' ' ')
	expect_rc 1 "$zc" ring-add 0 || return 1
	grep -q '^zcdev: ring-add: ring 0 exists already (/dev/zcdev)$' "$tmp/err" ||
		{ cat "$tmp/err"; return 1; }
	big=$(free_ring)
	expect_rc 1 "$zc" ring-remove "$big" || return 1
	grep -q "^zcdev: ring-remove: ring $big does not exist" "$tmp/err" || { cat "$tmp/err"; return 1; }
	ZCDEV_CONTROL=$tmp/no-control expect_rc 3 "$zc" ring-add || return 1
	grep -q "^zcdev: $tmp/no-control not found: is ZCDEV_CONTROL right?" "$tmp/err" ||
		{ cat "$tmp/err"; return 1; }
	ZCDEV_CONTROL=/dev/null expect_rc 3 "$zc" ring-remove 1 || return 1
	grep -q '^zcdev: /dev/null: not a zcdev control device' "$tmp/err" || { cat "$tmp/err"; return 1; }
	# A ring is not the control device: ENOTTY, not a ring added.
	ZCDEV_CONTROL=/dev/zcdev expect_rc 3 "$zc" ring-add || return 1
	mkdir -p "$tmp/nosys"
	ZCDEV_SYSFS=$tmp/nosys ZCDEV_CONTROL=$tmp/no-control expect_rc 3 "$zc" ring-add || return 1
	grep -q "^zcdev: $tmp/no-control not found: is the zcdev module loaded?" "$tmp/err" ||
		{ cat "$tmp/err"; return 1; }
	[ "$(sysfs_rings | tr '\n' ' ')" = "$before" ] || { echo "rings: $before, now $(sysfs_rings)"; return 1; }
}

t_ring_usage() {
	[ -n "$last_ring" ] || { echo "no ring range in the usage error"; return 1; }
	for c in "ring-remove" "ring-remove -1" "ring-remove $((last_ring + 1))" "ring-remove x" \
		 "ring-add 1 2" "ring-add -1" "ring-add 99999999999" "rings 1" "-r 2 rings" \
		 "-r 2 ring-add" "-r 3 ring-remove 3" "-r x info" "-r -1 info" "-r $((last_ring + 1)) info" \
		 "--ring" "-r 2"; do
		# shellcheck disable=SC2086 # c is words
		expect_rc 2 "$zc" $c || return 1
		[ ! -s "$tmp/stdout" ] || { echo "$c printed: $(cat "$tmp/stdout")"; return 1; }
	done
	expect_rc 2 "$zc" ring-remove -1 && grep -q "bad ring number '-1' (0 to $last_ring)" "$tmp/err"
}

# -r N and ZCDEV_DEV name the same node; a ring that is not there is
# exit 3, and the message says which ring.
t_ring_path() {
	expect_rc 0 "$zc" -r 0 info || return 1
	grep -Eq '^device +/dev/zcdev$' "$tmp/stdout" && grep -Eq '^ring +0$' "$tmp/stdout" || return 1
	expect_rc 0 "$zc" --ring=0 info --json || return 1
	grep -q '^{"device":"/dev/zcdev",.*"ring":0,"max_total_pages":[1-9][0-9]*' "$tmp/stdout" || return 1
	big=$(free_ring)
	expect_rc 3 "$zc" -r "$big" info || return 1
	grep -q "^zcdev: /dev/zcdev$big not found: ring $big does not exist" "$tmp/err" ||
		{ cat "$tmp/err"; return 1; }
	ZCDEV_DEV=/dev/zcdev$big expect_rc 3 "$zc" stats || return 1
	grep -q "ring $big does not exist" "$tmp/err" || return 1
	# -r wins over ZCDEV_DEV.
	ZCDEV_DEV=/dev/zcdev$big expect_rc 0 "$zc" -r0 info
}

# info gives the ring's number and max_total_pages, and lists the rings
# when there are several (a "rings" line, a "rings" array in JSON).
t_info_rings() {
	expect_rc 0 "$zc" info || return 1
	grep -Eq '^max_total_pages +[1-9][0-9]*$' "$tmp/stdout" || return 1
	[ "$(grep -Eo '^max_total_pages +[0-9]+' "$tmp/stdout" | awk '{ print $2 }')" = \
		"$(cat /sys/module/zcdev/parameters/max_total_pages)" ] || return 1
	if [ "$(sysfs_rings | wc -l)" = 1 ] && grep -q '^rings' "$tmp/stdout"; then
		echo "a rings line with one ring"
		return 1
	fi
	expect_rc 0 "$zc" ring-add || return 1
	rdev=$(cat "$tmp/stdout")
	nr=${rdev#/dev/zcdev}
	# Not $want nor $got: expect_rc's.
	all=$(sysfs_rings | tr '\n' ' ')
	ret=1
	if expect_rc 0 "$zc" info; then
		have=$(awk '$1 == "rings" { $1 = ""; print }' "$tmp/stdout")
		if [ "$have" != " ${all% }" ]; then
			echo "rings '$have', sysfs has '$all'"
		elif expect_rc 0 "$zc" -r "$nr" info --json &&
		     grep -q "\"ring\":$nr,.*\"rings\":\[$(echo "${all% }" | tr ' ' ',')\]}$" "$tmp/stdout"; then
			ret=0
		fi
		[ "$ret" = 0 ] || cat "$tmp/stdout"
	fi
	drop_rings "$nr"
	return $ret
}

# devices and max_total_pages at load: the rings are there, and a ring or
# a resize past the bound fails with ENOSPC, said as such. Reloads the
# module (root and ZCDEV_KO), like upper_limit_test.sh, and leaves it
# loaded with its defaults.
t_ring_total_bound() {
	if [ "$(id -u)" != 0 ] || [ ! -r "${ZCDEV_KO:-}" ]; then
		echo "needs root and ZCDEV_KO (the module to reload)"
		return 4
	fi
	pages=$(cat /sys/module/zcdev/parameters/ring_pages)
	rmmod zcdev || return 1
	insmod "$ZCDEV_KO" devices=2 max_total_pages=$((2 * pages)) || { insmod "$ZCDEV_KO"; return 1; }
	ret=1
	while :; do
		[ "$(sysfs_rings | tr '\n' ' ')" = "0 1 " ] || { echo "rings: $(sysfs_rings)"; break; }
		expect_rc 1 "$zc" ring-add || break
		grep -q "^zcdev: ring-add: a new ring's $pages pages would take the rings together past max_total_pages ($((2 * pages)) pages)" \
			"$tmp/err" || { cat "$tmp/err"; break; }
		expect_rc 1 "$zc" -r 1 resize $((pages + 1)) || break
		grep -q 'would pass max_total_pages' "$tmp/err" || { cat "$tmp/err"; break; }
		[ "$(sysfs_rings | tr '\n' ' ')" = "0 1 " ] || break
		ret=0
		break
	done
	rmmod zcdev
	insmod "$ZCDEV_KO" || { echo "the module does not load again"; return 1; }
	return $ret
}

tcase rings_lists_sysfs t_rings_list
tcase rings_from_sysfs_names_and_ring_files t_rings_sysfs
tcase ring_add_use_remove t_ring_add_remove
tcase ring_remove_open_ring_ebusy_exit_1 t_ring_remove_busy
tcase ring_errors_exit_1_or_3 t_ring_errors
tcase ring_usage_errors_exit_2 t_ring_usage
tcase ring_option_and_missing_ring t_ring_path
tcase info_ring_max_total_pages_rings t_info_rings
tcase ring_devices_and_max_total_pages_at_load t_ring_total_bound

ktap_end
