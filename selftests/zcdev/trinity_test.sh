#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# trinity_test.sh: trinity, the kernel's syscall fuzzer and an engine
# nobody here wrote (issue 22), against /dev/zcdev in the rig's debug lane
# (KASAN, lockdep), while a producer and a consumer stream through the ring.
#
# trinity gets /dev/zcdev as its victim file (-V) and only the syscalls
# that reach a file's read, write, mmap, splice, sendfile, ioctl and poll
# (-c, each in its 64- and 32-bit form), with no other fds than the victim
# and pipes. It runs as nobody (busybox su; the rig's initramfs has the
# passwd entry), in a directory of its own, with
# the results port closed (init.sh), for a bounded time; then SIGINT,
# then SIGKILL to every nobody process. Meanwhile `zcdev put` streams
# numbered, self-checking lines (number, hash of the number; no leading
# zeros, which busybox awk reads as octal) into the
# ring and `zcdev get` drains it into a pipe (wc counts the bytes, grep
# keeps the lines that look like the stream's).
#
# The ring is one: what trinity reads is gone from the stream and what it
# writes is in it. So the checks are:
#   - trinity, put and get all end (no hang), and no new splat;
#   - conservation: once get has drained the ring, every byte that went in
#     (the module's in-counters) came out through a counted path, and at
#     least the producer's bytes went in;
#   - when trinity wrote nothing into the ring, every intact line get
#     received is in the producer's order (nothing duplicated, reordered
#     or from a stale page). When it wrote, the order is only reported:
#     trinity reuses its buffers, and one that a read() of the device
#     filled can be written back later, an old line among new ones;
#   - when trinity moved none of the stream's bytes (in == what put sent,
#     out == what get received), get's file has the producer's checksum.
# Afterwards nothing holds the module and its pages are the ring's size.
# KTAP on stdout; exit 4 (skip) outside the debug lane.
#
# Environment: ZCDEV_LANE (the rig's lane; ZCDEV_TRINITY=1 runs it in any
# lane), ZCDEV_TRINITY_SECS (default 15), ZCDEV_TRINITY_SEED (default
# random), and ktap.sh's.

set -u

# shellcheck source=selftests/zcdev/ktap.sh
. "$(dirname "$0")/ktap.sh"

if [ "${ZCDEV_LANE:-}" != debug ] && [ "${ZCDEV_TRINITY:-}" != 1 ]; then
	echo "1..0 # SKIP trinity runs in the debug lane (ZCDEV_TRINITY=1 runs it here)"
	exit 4
fi

secs=${ZCDEV_TRINITY_SECS:-15}
seed=${ZCDEV_TRINITY_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
sys=/sys/class/misc/zcdev
dbg=/sys/kernel/debug/zcdev/stats
nobody=65534
calls="read readv pread64 preadv preadv2 write writev pwrite64 pwritev pwritev2
mmap munmap mremap madvise mprotect msync splice vmsplice tee sendfile
ioctl poll ppoll select pselect6 fcntl lseek flock"

# Bytes into and out of the ring by every path, from the module's
# counters (ktap.sh's counters(): debugfs opens no file of the module).
bytes_in() {
	counters | awk '$1 ~ /^(bytes_written_copy|bytes_spliced_in_moved|bytes_spliced_in_copied|bytes_produced_mmap)$/ { s += $2 } END { printf "%d\n", s }'
}
bytes_out() {
	counters | awk '$1 ~ /^(bytes_read_copy|bytes_spliced_out|bytes_spliced_out_copied|bytes_consumed_mmap)$/ { s += $2 } END { printf "%d\n", s }'
}

# The producer's stream: lines "NUMBER HASH", 27 bytes each, 1024 lines
# (27 KiB) a chunk, 5 chunks a second at most, until $work/stop; the line
# count goes to $work/lines.
produce() {
	i=0
	while [ ! -e "$work/stop" ]; do
		awk -v a="$i" 'BEGIN { for (k = a; k < a + 1024; k++)
			printf "%15d %10d\n", k, (k * 48271) % 2147483647 }'
		i=$((i + 1024))
		sleep 0.2
	done
	echo "$i" > "$work/lines"
}

# as_nobody CMD: the sh command line CMD as uid nobody. busybox su takes
# every word after the user for itself, options too: CMD is one word.
as_nobody() {
	su -s /bin/sh nobody -c "$1"
}

# The pids of uid $1's tasks, and of the tasks named $1.
pids_of_uid() {
	for d in /proc/[0-9]*; do
		awk -v u="$1" '$1 == "Uid:" && $2 == u { exit 0 } END { exit 1 }' \
			"$d/status" 2>/dev/null && echo "${d#/proc/}"
	done
}
pids_named() {
	for d in /proc/[0-9]*; do
		[ "$(cat "$d/comm" 2>/dev/null)" = "$1" ] && echo "${d#/proc/}"
	done
}

# log LINE: a comment line of the KTAP output, at once (a run that hangs
# shows how far it came).
log() {
	echo "# $*"
}

# The kernel's list of blocked tasks (sysrq w), from the kernel log.
blocked() {
	[ -w /proc/sysrq-trigger ] || return 0
	k=$(dmesg | wc -l)
	echo w > /proc/sysrq-trigger
	sleep 1
	dmesg | tail -n +$((k + 1)) | head -n 80 | sed 's/^/#     /'
}

# Stacks of every task of the module's users that did not end.
stacks() {
	for p in "$@"; do
		[ -d "/proc/$p" ] || continue
		log "pid $p ($(cat "/proc/$p/comm" 2>/dev/null)) state $(awk '{ print $3 }' "/proc/$p/stat" 2>/dev/null):"
		sed 's/^/#     /' "/proc/$p/stack" 2>/dev/null
	done
}

# wait_gone SECONDS PID...: 0 once every PID has exited (a zombie has).
wait_gone() {
	w=$1
	shift
	while [ "$w" -gt 0 ]; do
		alive=
		for p in "$@"; do
			# shell builtins only: an awk a second is slow under TCG
			st=
			[ -r "/proc/$p/stat" ] && read -r _ _ st _ < "/proc/$p/stat" 2>/dev/null
			[ -n "$st" ] && [ "$st" != Z ] && alive=1
		done
		[ -z "$alive" ] && return 0
		sleep 1
		w=$((w - 1))
	done
	return 1
}

t_trinity() {
	command -v trinity > /dev/null || { log "trinity is not installed"; return 1; }
	[ ! -r /etc/zcdev/engines ] || sed 's/^/# Debian package: /' /etc/zcdev/engines
	log "trinity version: $(trinity --help 2>&1 | sed -n 's/^Trinity \([^ ]*\).*/\1/p')"
	work=$tmp/trinity
	mkdir -p "$work"
	# trinity's own directory, where nobody can reach it ($tmp is 0700).
	fuzz=$(mktemp -d /tmp/trinity.XXXXXX) || return 1
	chown "$nobody:$nobody" "$fuzz"
	ok=1
	mode=$(stat -c %a "$dev")
	chmod 0666 "$dev"
	splats=$(splat_count)
	in0=$(bytes_in) out0=$(bytes_out) used0=$(cat "$sys/used")

	# get must not see EOF before put opens: hold a writer until it has.
	# What trinity writes comes out of get too (hundreds of MB in 20s):
	# nothing keeps all of it; wc counts it, grep keeps the lines that
	# look like the stream's, and get splices straight into the pipe.
	exec 3> "$dev"
	mkfifo "$work/count"
	wc -c < "$work/count" > "$work/got" 3>&- &
	wcpid=$!
	(
		exec 3>&-
		{ "$zc" get --method splice -; echo $? > "$work/get.rc"; } |
			tee "$work/count" | grep -aE '^ *[0-9]+ +[0-9]+$' > "$work/out"
	) &
	getpid=$!
	produce 3>&- | "$zc" put --method vmsplice 3>&- &
	putpid=$!
	sleep 1
	exec 3>&-

	set -- trinity -q -l off --stats -s "$seed" -C 4 -V "$dev" \
		--disable-fds=sockets,perf,epoll,eventfd,timerfd,testfile,memfd,drm
	for c in $calls; do set -- "$@" -c "$c"; done
	log "as uid $nobody in $fuzz for ${secs}s: $*"
	start=$(date +%s)
	# su execs sh, which execs trinity: $! is trinity's main process.
	# (No word of the command line needs quoting.)
	as_nobody "cd $fuzz && exec $*" > "$work/trinity.log" 2>&1 &
	tpid=$!
	sleep "$secs"
	st=$(awk '{ print $3 }' "/proc/$tpid/stat" 2>/dev/null)
	if [ -z "$st" ] || [ "$st" = Z ]; then
		log "trinity did not last ${secs}s:"
		ok=0
		tail -n 20 "$work/trinity.log" | sed 's/^/#     /' 
	fi
	# SIGINT is how trinity is told to stop; what is left after 5s,
	# SIGKILL. Only a task that SIGKILL does not end is a hang.
	log "$(date +%s): SIGINT to trinity"
	kill -INT "$tpid" 2>/dev/null
	wait_gone 5 "$tpid" || log "trinity did not stop within 5s of SIGINT; SIGKILL"
	as_nobody 'kill -9 -1' 2>/dev/null
	trc=killed
	if ! wait_gone 10 $(pids_of_uid "$nobody"); then
		log "trinity's processes outlived SIGKILL (stuck in the kernel):"
		stacks $(pids_of_uid "$nobody")
		blocked
		ok=0
	else
		wait "$tpid"
		trc=$?
	fi
	log "trinity ran $(($(date +%s) - start))s, exit status $trc; what it did:"
	did='^\[main\] (Added|Ran|Bailing)|^(32|64)bit:|attempted:'
	if grep -qE "$did" "$work/trinity.log"; then
		grep -E "$did" "$work/trinity.log" | sed 's/^/#     /'
	else
		tail -n 5 "$work/trinity.log" | sed 's/^/#     /'
	fi
	rm -rf "$fuzz"

	touch "$work/stop"
	if ! wait_gone 60 "$putpid" "$getpid" "$wcpid"; then
		log "the stream did not end within 60s of trinity's end:"
		stacks "$putpid" "$getpid" $(pids_named zcdev)
		blocked
		kill -9 "$putpid" "$getpid" $(pids_named zcdev) 2>/dev/null
		ok=0
	fi
	# wait only for what has ended: a task stuck in the kernel would
	# block this program (and the rig's run) for good.
	if wait_gone 10 "$putpid" "$getpid" "$wcpid"; then
		wait "$putpid" || { log "put failed"; ok=0; }
		wait "$getpid"
		[ "$(cat "$work/get.rc" 2>/dev/null)" = 0 ] || { log "get failed"; ok=0; }
	fi
	chmod "$mode" "$dev"

	lines=$(cat "$work/lines" 2>/dev/null || echo 0)
	sent=$((lines * 27))
	got=$(cat "$work/got" 2>/dev/null || echo 0)
	din=$(($(bytes_in) - in0)) dout=$(($(bytes_out) - out0)) used=$(cat "$sys/used")
	log "put sent $sent bytes ($lines lines), get received $got; the ring took in $din and gave out $dout; used $used0 -> $used"
	# get ended at EOF: the ring is empty, and what went in came out.
	if [ "$used" != 0 ] || [ "$((din - dout))" != "$((used - used0))" ]; then
		log "lost: in - out = $((din - dout)) bytes, but the ring went from $used0 to $used"
		ok=0
	fi
	[ "$din" -ge "$sent" ] || { log "lost: the ring took in less than put sent"; ok=0; }
	res=$(awk -v lines="$lines" '
		length($0) == 26 && $1 ~ /^[0-9]+$/ && $2 + 0 == ($1 * 48271) % 2147483647 {
			k = $1 + 0
			if (n && k <= last) { order++; if (order < 5) print "out of order: " k " after " last }
			last = k; n++; next
		}
		{ broken++ }
		END { printf "%d intact lines (of %d sent), %d look-alikes with a bad hash, %d out of order\n", n, lines, broken, order
		      exit order > 0 }' "$work/out") || [ "$din" != "$sent" ] || ok=0
	printf '%s\n' "$res" | sed 's/^/# /'
	if [ "$din" = "$sent" ] && [ "$dout" = "$got" ]; then
		want=$(awk -v n="$lines" 'BEGIN { for (k = 0; k < n; k++)
			printf "%15d %10d\n", k, (k * 48271) % 2147483647 }' | md5sum)
		have=$(md5sum < "$work/out")
		log "trinity moved no stream byte: md5 of the stream ${want%% *}, of what get received ${have%% *}"
		[ "$want" = "$have" ] || ok=0
	else
		log "trinity moved $((din - sent)) bytes in and $((dout - got)) out: no exact checksum"
	fi
	new=$(($(splat_count) - splats))
	log "$new new splat lines in the kernel log"
	[ "$new" = 0 ] || ok=0
	[ "$ok" = 1 ]
}

t_back_to_zero() {
	writers=$(cat "$sys/writers")
	refcnt=$(cat /sys/module/zcdev/refcnt)
	size=$(cat "$sys/ring_pages")
	held=$(awk '$1 == "pages_held" { print $2 }' "$dbg" 2>/dev/null)
	loaded=$(cat /sys/module/zcdev/parameters/ring_pages)
	echo "writers=$writers refcnt=$refcnt ring_pages=$size (at load $loaded) pages_held=${held:-?} used=$(cat "$sys/used")"
	# trinity's ioctls may have resized the ring: the programs after this
	# expect the load-time size and an empty ring.
	"$zc" reset
	[ "$size" = "$loaded" ] || "$zc" resize "$loaded"
	[ "$writers" = 0 ] && [ "$refcnt" = 0 ] && { [ -z "$held" ] || [ "$held" = "$size" ]; }
}

start=$(date +%s)
if t_trinity 2>&1; then r=ok; else r="not ok"; fi
echo "$r 1 trinity $(($(date +%s) - start))s seed=$seed (victim $dev, $(echo "$calls" | wc -w) syscalls, put vmsplice / get splice alongside)"
[ "$r" = ok ] || fails=$((fails + 1))
n=1
case_ trinity_left_nothing_held t_back_to_zero
ktap_end
