// SPDX-License-Identifier: GPL-2.0
/*
 * A seeded, randomized system-call fuzzer for /dev/zcdev (docs/design.md,
 * invariant 7, and the robustness of every path under abuse).
 *
 * Several threads share a table of open files (device opens with every
 * access mode, pipes, a socket pair, a tmpfs file, /dev/null, an eventfd,
 * a memfd) and an address window that holds the device's mappings. Each thread draws
 * calls at random: ioctls with valid and invalid numbers, sizes and
 * pointers (NULL, unmapped, kernel addresses, misaligned, read-only),
 * RESIZE to any value, RESET, PRODUCE/CONSUME of any amount,
 * mmap/munmap/mremap/mprotect/madvise/mlock with random offsets, lengths,
 * protections and flags, loads and stores through the mappings (SIGBUS
 * and SIGSEGV caught with sigsetjmp), read/write/readv/preadv2 with
 * buffers anywhere (the device's own mapping included: invariant 6),
 * splice/tee/vmsplice/sendfile/copy_file_range in both directions with
 * random flags and lengths, poll/epoll, close and dup2 over files other
 * threads are blocked on, and fork with live mappings (the child fuzzes
 * for a moment, then _exit()s). Short recipes of valid calls mixed in
 * reach what random calls rarely do: pages stolen by splice in, ring
 * pages gifted back after a resize, stores through a lent slot, sendfile
 * into a socket that takes less than was spliced, ring pages pinned by an
 * io_uring fixed buffer while they are spliced out.
 *
 * What it asserts:
 *  - well-formed calls on a file nobody else touches get the errno the
 *    ABI promises (light: GET_INFO/GET_STATS work and make sense, RESIZE
 *    above max_ring_pages is EINVAL, unknown zcdev numbers are ENOTTY, a
 *    bad pointer is EFAULT, over-commit is EINVAL, MAP_PRIVATE and a
 *    writable meta page are refused);
 *  - nothing gets stuck: a thread ticker sends SIGUSR1 (no SA_RESTART)
 *    every few tens of milliseconds so blocking calls come back, a monitor
 *    fails the test, with the kernel stack of the culprit, if a call or a
 *    child takes longer than 20 s, and alarm() is the last resort;
 *  - afterwards the device still works: 1 MiB goes through write/read
 *    and comes back intact, the meta page is intact, and pages_held ==
 *    ring_pages. The ring is left at 256 pages.
 * A kernel splat is the rig's to catch (panic_on_warn, dmesg scan).
 *
 * Safety of the fuzzer itself: buffers the kernel may write to are only
 * ever in the window or in a scratch area, each followed by a PROT_NONE
 * guard, so a huge length stops at the guard; memory operations stay
 * inside the window; only zcdev's ioctl magic is sent to files other
 * than the device; no thread allocates memory while fuzzing.
 *
 * ZCDEV_FUZZ_SEED replays a run's choices: each thread's k-th operation
 * is the same call with the same arguments (file numbers and the state of
 * the ring aside); the interleaving of threads is the scheduler's, so
 * ZCDEV_FUZZ_THREADS=1 replays most faithfully. ZCDEV_FUZZ_SECONDS sets
 * the duration (default 20), ZCDEV_FUZZ_TRACE=1 logs every call to stderr
 * (the last lines before a kernel crash say what each thread was doing).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/io_uring.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>

#include "kselftest_harness.h"
#include "zcdev_test.h"

#define NTHREADS	4
#define NDEV		8		/* device opens in the shared table */
#define NPIPE		4		/* pipes in the shared table */
#define NMISC		6		/* sockets, tmpfs file, /dev/null, eventfd */
#define WIN_PAGES	4096		/* the mapping window: 16 MiB */
#define SCRATCH_PAGES	1024		/* 4 MiB the kernel may write into */
#define GUARD_PAGES	16
#define MAX_CHILDREN	1
#define CHILD_OPS	50
#define STUCK_SECONDS	20
#define BIG_RING	1024		/* successful resizes stay below this */

#define KADDR		((void *)0xffff888000000000UL)

/* ---- state: per process (a forked child gets its own copy) ---- */

struct fz_thread {
	int idx;
	pid_t tid;
	uint64_t stream;	/* one draw per operation: the op's own seed */
	uint64_t rng;		/* the operation's draws */
	int own;		/* O_RDWR | O_NONBLOCK, only this thread uses it */
	int own_ro;		/* O_RDONLY | O_NONBLOCK, likewise */
	int epfd;
	int pp[2];		/* a non-blocking pipe of this thread's own */
	int busy_fd;		/* the file of the call in progress, or -1 */
	loff_t off;
	uint64_t ops;
	int64_t op_start;	/* ms, CLOCK_MONOTONIC; 0 when not in a call */
	char last[192];		/* the call in progress, for the stuck report */
};

static struct {
	size_t ps;
	uint32_t max_pages;
	uint8_t *arena, *win, *scratch;
	size_t arena_len, win_len, scratch_len;

	int dev[NDEV];
	int pipes[NPIPE][2];
	int misc[NMISC];

	int stop;
	int in_child;
	int nthreads;
	int trace;
	int violations;
	char vmsg[512];

	pid_t child[MAX_CHILDREN];
	double child_start[MAX_CHILDREN];
	uint64_t forks, child_fail;
	char child_msg[256];

	uint64_t sigbus, sigsegv, calls, eintr;
	uint64_t kind_n[10];

	struct fz_thread th[NTHREADS];
} G;

static __thread sigjmp_buf probe_env;
static __thread volatile sig_atomic_t probing;
static __thread struct fz_thread *self_th;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int64_t now_ms(void)
{
	return (int64_t)(now() * 1000) + 1;
}

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t rnd(struct fz_thread *t)
{
	return splitmix(&t->rng);
}

static uint64_t below(struct fz_thread *t, uint64_t n)
{
	return n ? rnd(t) % n : 0;
}

static bool one_in(struct fz_thread *t, unsigned int n)
{
	return below(t, n) == 0;
}

static void note(struct fz_thread *t, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t->last, sizeof(t->last), fmt, ap);
	va_end(ap);
	__atomic_store_n(&t->op_start, now_ms(), __ATOMIC_RELEASE);
	if (G.trace) {
		char line[sizeof(t->last) + 32];
		int n = snprintf(line, sizeof(line), "# %s%d: %s\n",
				 G.in_child ? "child of t" : "t", t->idx, t->last);

		if (write(2, line, n < (int)sizeof(line) ? n : (int)sizeof(line) - 1) < 0)
			G.trace = 0;
	}
}

/* A well-formed call got an answer the ABI does not allow. */
static void violation(struct fz_thread *t, const char *fmt, ...)
{
	char msg[sizeof(G.vmsg) - 64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (__atomic_fetch_add(&G.violations, 1, __ATOMIC_SEQ_CST) == 0)
		snprintf(G.vmsg, sizeof(G.vmsg), "thread %d: %s", t->idx, msg);
}

static void on_usr1(int sig)
{
	(void)sig;
}

static void on_fault(int sig)
{
	if (probing) {
		__atomic_add_fetch(sig == SIGBUS ? &G.sigbus : &G.sigsegv, 1,
				   __ATOMIC_RELAXED);
		siglongjmp(probe_env, 1);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Last resort: the monitor itself did not get to say what is stuck. */
static void on_watchdog(int sig)
{
	static const char msg[] = "# fuzz: watchdog alarm: the test is stuck\n";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(3);
	for (int i = 0; i < G.nthreads; i++) {
		const char *l = G.th[i].last;

		if (write(2, "#   last call: ", 15) < 0 ||
		    write(2, l, strnlen(l, sizeof(G.th[i].last))) < 0 ||
		    write(2, "\n", 1) < 0)
			break;
	}
	_exit(3);
}

/* ---- random arguments ---- */

static size_t rlen(struct fz_thread *t)
{
	size_t ps = G.ps;

	switch (below(t, 12)) {
	case 0: return 0;
	case 1: return 1;
	case 2: return ps - 1 + below(t, 3);
	case 3: return below(t, 256);
	case 4: return below(t, 64 * 1024);
	case 5: return below(t, 1 << 20);
	case 6: return ps * (1 + below(t, 32));
	case 7: return SIZE_MAX - below(t, 2);
	case 8: return SSIZE_MAX;
	case 9: return 1UL << 31;
	default: return below(t, 4 * ps);
	}
}

/*
 * A user pointer for the kernel to read or write: anything from NULL to
 * a kernel address, but never memory of ours outside the window and the
 * scratch area (each ends in a guard, where any copy stops).
 */
static void *uptr(struct fz_thread *t)
{
	switch (below(t, 14)) {
	case 0: return NULL;
	case 1: return (void *)(uintptr_t)(1 + below(t, 4095));
	case 2: return KADDR;
	case 3: return (void *)(uintptr_t)(0xffffffff81000000UL + below(t, 1 << 20));
	case 4: return (void *)(uintptr_t)-G.ps;
	case 5: return G.win - G.ps * (1 + below(t, GUARD_PAGES - 1));
	case 6: return G.scratch + G.scratch_len + below(t, GUARD_PAGES * G.ps);
	case 7:
	case 8: return G.win + below(t, G.win_len);
	case 9: return G.win + G.ps * below(t, WIN_PAGES);
	case 10: return G.scratch + G.scratch_len - below(t, 2 * G.ps);
	default: return G.scratch + below(t, G.scratch_len);
	}
}

/* A whole page of the window, and a page count that stays inside it. */
static uint8_t *wpage(struct fz_thread *t, size_t *pages)
{
	size_t pg = below(t, WIN_PAGES);
	size_t room = WIN_PAGES - pg, n;

	switch (below(t, 8)) {
	case 0: n = 1 + below(t, room); break;
	case 1:
	case 2: n = 1; break;
	case 3:
	case 4: n = 1 + below(t, 8); break;
	default: n = 1 + below(t, 80); break;
	}
	*pages = n < room ? n : room;
	return G.win + pg * G.ps;
}

static int any_fd(struct fz_thread *t)
{
	switch (below(t, 16)) {
	case 0: return t->own;
	case 1: return t->own_ro;
	case 2: return -1 - (int)below(t, 3);
	case 3: return 1000 + below(t, 100);
	case 4:
	case 5:
	case 6: return __atomic_load_n(&G.pipes[below(t, NPIPE)][below(t, 2)],
				       __ATOMIC_RELAXED);
	case 7:
	case 8: return __atomic_load_n(&G.misc[below(t, NMISC)], __ATOMIC_RELAXED);
	default: return __atomic_load_n(&G.dev[below(t, NDEV)], __ATOMIC_RELAXED);
	}
}

static int dev_fd(struct fz_thread *t)
{
	if (one_in(t, 6))
		return any_fd(t);
	if (one_in(t, 5))
		return one_in(t, 2) ? t->own : t->own_ro;
	return __atomic_load_n(&G.dev[below(t, NDEV)], __ATOMIC_RELAXED);
}

static int pipe_fd(struct fz_thread *t, int end)
{
	if (one_in(t, 8))
		return any_fd(t);
	return __atomic_load_n(&G.pipes[below(t, NPIPE)][end], __ATOMIC_RELAXED);
}

static unsigned int splice_flags(struct fz_thread *t)
{
	unsigned int f = below(t, 16);	/* MOVE, NONBLOCK, MORE, GIFT */

	if (one_in(t, 20))
		f |= 1u << below(t, 32);
	return f;
}

static loff_t *offp(struct fz_thread *t)
{
	switch (below(t, 6)) {
	case 0: t->off = below(t, 1 << 20); return &t->off;
	case 1: return uptr(t);
	default: return NULL;
	}
}

/* ---- opening things ---- */

static int open_dev(struct fz_thread *t)
{
	static const int acc[] = { O_RDONLY, O_WRONLY, O_RDWR, O_RDWR };
	int fl = acc[below(t, 4)];

	if (one_in(t, 2))
		fl |= O_NONBLOCK;
	if (one_in(t, 8))
		fl |= O_APPEND;
	return zt_open(fl);
}

static void replace(int *slot, int fd);
static long ret_of(long r);

/* misc[0] and misc[1]: the two ends of a socket pair. */
static void new_socketpair(struct fz_thread *t)
{
	int sv[2];

	if (socketpair(AF_UNIX, one_in(t, 2) ? SOCK_STREAM : SOCK_DGRAM,
		       SOCK_CLOEXEC | (one_in(t, 2) ? SOCK_NONBLOCK : 0), sv))
		return;
	replace(&G.misc[0], sv[0]);
	replace(&G.misc[1], sv[1]);
}

/* misc[2..]: a tmpfs file, /dev/null, an eventfd, a memfd. */
static int open_misc(struct fz_thread *t, int slot)
{
	int fd;

	switch (slot) {
	case 2:
		fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		/* Some pages to map and to splice from; empty will do too. */
		if (fd >= 0 && ftruncate(fd, below(t, 64) * G.ps))
			ret_of(-1);
		return fd;
	case 3:
		return open("/dev/null", O_RDWR | O_CLOEXEC);
	case 4:
		return eventfd(below(t, 3), EFD_CLOEXEC | (one_in(t, 2) ? EFD_NONBLOCK : 0));
	default:
		return syscall(SYS_memfd_create, "zcdev-fuzz", 1u /* CLOEXEC */);
	}
}

static void new_pipe(struct fz_thread *t, int slot)
{
	int p[2], old0, old1;

	if (pipe2(p, O_CLOEXEC | (one_in(t, 2) ? O_NONBLOCK : 0) |
		  (one_in(t, 6) ? O_DIRECT : 0)))
		return;
	if (one_in(t, 3))
		fcntl(p[0], F_SETPIPE_SZ, G.ps << below(t, 9));
	old0 = __atomic_exchange_n(&G.pipes[slot][0], p[0], __ATOMIC_SEQ_CST);
	old1 = __atomic_exchange_n(&G.pipes[slot][1], p[1], __ATOMIC_SEQ_CST);
	if (old0 >= 0)
		close(old0);
	if (old1 >= 0)
		close(old1);
}

static void replace(int *slot, int fd)
{
	int old = __atomic_exchange_n(slot, fd, __ATOMIC_SEQ_CST);

	if (old >= 0)
		close(old);
}

/* ---- the calls ---- */

/* Files of one thread's own (never closed by another: the checks rely on them). */
static bool is_private(int fd)
{
	if (fd <= 2)
		return true;
	for (int i = 0; i < NTHREADS; i++) {
		struct fz_thread *o = &G.th[i];

		if (fd == o->own || fd == o->own_ro || fd == o->epfd ||
		    fd == o->pp[0] || fd == o->pp[1])
			return true;
	}
	return false;
}

/* The file another thread is in a call on right now (maybe blocked), or any. */
static int busy_or_any(struct fz_thread *t)
{
	int fd = __atomic_load_n(&G.th[below(t, G.nthreads)].busy_fd, __ATOMIC_ACQUIRE);

	return fd >= 0 && one_in(t, 2) ? fd : any_fd(t);
}

static void busy(struct fz_thread *t, int fd)
{
	__atomic_store_n(&t->busy_fd, fd, __ATOMIC_RELEASE);
}

static long ret_of(long r)
{
	__atomic_add_fetch(&G.calls, 1, __ATOMIC_RELAXED);
	if (r < 0 && errno == EINTR)
		__atomic_add_fetch(&G.eintr, 1, __ATOMIC_RELAXED);
	return r;
}

static void op_files(struct fz_thread *t)
{
	int a, b;

	switch (below(t, 8)) {
	case 0:
	case 1:
		note(t, "reopen dev slot");
		replace(&G.dev[below(t, NDEV)], open_dev(t));
		break;
	case 2:
		note(t, "new pipe");
		new_pipe(t, below(t, NPIPE));
		break;
	case 3: {
		int s = below(t, NMISC);

		note(t, "reopen misc slot %d", s);
		if (s < 2)
			new_socketpair(t);
		else
			replace(&G.misc[s], open_misc(t, s));
		break;
	}
	case 4:
		/* Close a file that other threads may be blocked on. */
		a = busy_or_any(t);
		note(t, "close(%d)", a);
		if (!is_private(a))
			ret_of(close(a));
		break;
	case 5:
		/* dup2 over one: the blocked call keeps its file, the number moves on. */
		a = any_fd(t);
		b = busy_or_any(t);
		note(t, "dup2(%d, %d)", a, b);
		if (!is_private(b))
			ret_of(dup3(a, b, O_CLOEXEC));
		break;
	case 6:
		a = busy_or_any(t);
		note(t, "fcntl(%d, F_SETFL)", a);
		if (!is_private(a))
			ret_of(fcntl(a, F_SETFL, (one_in(t, 2) ? O_NONBLOCK : 0) |
				     (one_in(t, 4) ? O_APPEND : 0) |
				     (one_in(t, 8) ? O_DIRECT : 0)));
		break;
	default: {
		struct stat st;

		a = dev_fd(t);
		note(t, "lseek/fstat/fsync/flock(%d)", a);
		ret_of(lseek(a, rnd(t), below(t, 5)));
		ret_of(fstat(a, &st));
		ret_of(fsync(a));
		ret_of(ftruncate(a, below(t, 1 << 20)));
		ret_of(fallocate(a, 0, 0, G.ps));
		ret_of(posix_fadvise(a, 0, rlen(t), below(t, 6)));
		ret_of(readahead(a, 0, rlen(t)));
		ret_of(flock(a, (one_in(t, 2) ? LOCK_SH : LOCK_EX) | LOCK_NB));
		ret_of(flock(a, LOCK_UN));
		break;
	}
	}
}

static void op_rw(struct fz_thread *t)
{
	int fd = one_in(t, 3) ? any_fd(t) : dev_fd(t);
	void *p = uptr(t);
	size_t len = rlen(t);
	struct iovec iov[4];
	int n = 1 + below(t, 4);

	for (int i = 0; i < n; i++) {
		iov[i].iov_base = uptr(t);
		iov[i].iov_len = one_in(t, 2) ? below(t, 2 * G.ps) : rlen(t);
	}
	busy(t, fd);
	switch (below(t, 8)) {
	case 0:
	case 1:
		note(t, "read(%d, %p, %zu)", fd, p, len);
		ret_of(read(fd, p, len));
		break;
	case 2:
	case 3:
		note(t, "write(%d, %p, %zu)", fd, p, len);
		ret_of(write(fd, p, len));
		break;
	case 4:
		note(t, "readv(%d, %d iovs)", fd, n);
		ret_of(readv(fd, iov, n));
		break;
	case 5:
		note(t, "writev(%d, %d iovs)", fd, n);
		ret_of(writev(fd, iov, n));
		break;
	case 6:
		note(t, "preadv2(%d, %d iovs)", fd, n);
		ret_of(preadv2(fd, iov, n, one_in(t, 2) ? -1 : (off_t)below(t, 1 << 20),
			       below(t, 32)));
		break;
	default:
		note(t, "pwritev2(%d, %d iovs)", fd, n);
		ret_of(pwritev2(fd, iov, n, one_in(t, 2) ? -1 : (off_t)below(t, 1 << 20),
				below(t, 32)));
		break;
	}
	busy(t, -1);
}

/* Loads and stores through the window: device mappings, holes, anything. */
static void op_touch(struct fz_thread *t)
{
	uint8_t *p = G.win + below(t, G.win_len);
	size_t n = 1 + below(t, 2 * G.ps);
	unsigned int mode = below(t, 3);

	if (n > (size_t)(G.win + G.win_len - p))
		n = G.win + G.win_len - p;
	note(t, "touch %p +%zu mode %u", p, n, mode);
	probing = 1;
	if (!sigsetjmp(probe_env, 1)) {
		volatile uint8_t *v = p;
		uint8_t sum = 0;

		for (size_t i = 0; i < n; i += 1 + below(t, 512)) {
			if (mode == 0)
				sum += v[i];
			else if (mode == 1)
				v[i] = (uint8_t)rnd(t);
			else
				v[i] = v[i] + 1;
		}
		(void)sum;
	}
	probing = 0;
}

static void op_mm(struct fz_thread *t)
{
	size_t pages, pages2;
	uint8_t *a = wpage(t, &pages), *b;
	size_t len = pages * G.ps;
	int prot = below(t, 8);
	static const int kinds[] = { MAP_SHARED, MAP_SHARED, MAP_SHARED,
				     MAP_PRIVATE, MAP_SHARED_VALIDATE };
	int flags, fd;
	off_t off;

	switch (below(t, 10)) {
	case 0:
	case 1:
	case 2: {
		flags = kinds[below(t, 5)] | MAP_FIXED;
		if (one_in(t, 6))
			flags |= MAP_POPULATE;
		if (one_in(t, 10))
			flags |= MAP_LOCKED;
		if (one_in(t, 10))
			flags |= MAP_NORESERVE;
		if (one_in(t, 20))
			flags |= MAP_SYNC;
		fd = one_in(t, 8) ? any_fd(t) : dev_fd(t);
		switch (below(t, 6)) {
		case 0: off = 0; break;
		case 1: off = G.ps * (1 + below(t, 1024)); break;
		case 2: off = G.ps * (1 + 2ULL * G.max_pages + below(t, 3)); break;
		case 3: off = below(t, 1 << 20); break;		/* misaligned */
		case 4: off = -(off_t)G.ps; break;
		default: off = G.ps * (1 + below(t, 8)); break;
		}
		note(t, "mmap(%p, %zu, %d, %#x, %d, %#llx)", a, len, prot, flags, fd,
		     (unsigned long long)off);
		ret_of((long)mmap(a, len, prot, flags, fd, off));
		break;
	}
	case 3:
		note(t, "munmap(%p, %zu)", a, len);
		ret_of(munmap(a, len));
		/* Keep the window reserved, so nothing else lands in it. */
		mmap(a, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
		     -1, 0);
		break;
	case 4:
		b = wpage(t, &pages2);
		flags = below(t, 4);	/* MAYMOVE, FIXED */
		if (flags & MREMAP_FIXED)
			flags |= MREMAP_MAYMOVE;
		else if (flags & MREMAP_MAYMOVE)
			flags |= MREMAP_FIXED;	/* never outside the window */
		if (one_in(t, 6))
			flags = MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP;
		if (!(flags & MREMAP_FIXED) && pages2 > WIN_PAGES - (a - G.win) / G.ps)
			pages2 = WIN_PAGES - (a - G.win) / G.ps;
		note(t, "mremap(%p, %zu, %zu, %#x, %p)", a, len, pages2 * G.ps, flags, b);
		ret_of((long)mremap(a, len, pages2 * G.ps, flags, b));
		break;
	case 5:
		note(t, "mprotect(%p, %zu, %d)", a, len, prot);
		ret_of(mprotect(a, len, prot));
		break;
	case 6: {
		static const int adv[] = { MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL,
					   MADV_WILLNEED, MADV_DONTNEED, MADV_FREE,
					   MADV_REMOVE, MADV_DONTFORK, MADV_DOFORK,
					   MADV_MERGEABLE, MADV_HUGEPAGE, MADV_NOHUGEPAGE,
					   MADV_DONTDUMP, MADV_WIPEONFORK, MADV_COLD,
					   MADV_PAGEOUT, 22 /* POPULATE_READ */,
					   23 /* POPULATE_WRITE */, 25 /* COLLAPSE */ };
		int advice = adv[below(t, sizeof(adv) / sizeof(adv[0]))];

		note(t, "madvise(%p, %zu, %d)", a, len, advice);
		ret_of(madvise(a, len, advice));
		break;
	}
	case 7:
		note(t, "mlock/munlock(%p, %zu)", a, len);
		ret_of(one_in(t, 2) ? mlock(a, len) : munlock(a, len));
		break;
	case 8:
		note(t, "msync(%p, %zu)", a, len);
		ret_of(msync(a, len, one_in(t, 2) ? MS_SYNC : MS_ASYNC | MS_INVALIDATE));
		break;
	default: {
		/* The window seen through /proc/self/mem: the meta page stays the kernel's. */
		int mem = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
		size_t n = below(t, 2 * G.ps);

		if (mem < 0)
			break;
		note(t, "/proc/self/mem %p +%zu", a, n);
		if (one_in(t, 2))
			ret_of(pwrite(mem, G.scratch, n, (off_t)(uintptr_t)a));
		else
			ret_of(pread(mem, G.scratch, n, (off_t)(uintptr_t)a));
		close(mem);
		break;
	}
	}
}

static void op_splice(struct fz_thread *t)
{
	size_t len = rlen(t);
	unsigned int fl = splice_flags(t);
	struct iovec iov[4];
	int n = 1 + below(t, 4), a, b;

	for (int i = 0; i < n; i++) {
		iov[i].iov_base = uptr(t);
		iov[i].iov_len = one_in(t, 2) ? G.ps * below(t, 4) : rlen(t);
	}
	switch (below(t, 9)) {
	case 0:
	case 1:
		a = dev_fd(t);
		b = pipe_fd(t, 1);
		note(t, "splice(%d -> pipe %d, %zu, %#x)", a, b, len, fl);
		busy(t, one_in(t, 2) ? a : b);
		ret_of(splice(a, offp(t), b, NULL, len, fl));
		break;
	case 2:
	case 3:
		a = pipe_fd(t, 0);
		b = dev_fd(t);
		note(t, "splice(pipe %d -> %d, %zu, %#x)", a, b, len, fl);
		busy(t, one_in(t, 2) ? a : b);
		ret_of(splice(a, NULL, b, offp(t), len, fl));
		break;
	case 4:
		a = pipe_fd(t, 0);
		b = pipe_fd(t, 1);
		note(t, "tee(%d, %d, %zu, %#x)", a, b, len, fl);
		busy(t, a);
		ret_of(tee(a, b, len, fl));
		break;
	case 5:
		a = pipe_fd(t, 1);
		note(t, "vmsplice(-> %d, %d iovs, %#x)", a, n, fl);
		busy(t, a);
		ret_of(vmsplice(a, iov, n, fl));
		break;
	case 6:
		a = pipe_fd(t, 0);
		note(t, "vmsplice(%d ->, %d iovs, %#x)", a, n, fl);
		busy(t, a);
		ret_of(vmsplice(a, iov, n, fl));
		break;
	case 7:
		a = one_in(t, 3) ? any_fd(t) : pipe_fd(t, 1);
		b = dev_fd(t);
		if (one_in(t, 3)) {
			/* Into the device, from a tmpfs file or anything. */
			a = b;
			b = one_in(t, 2) ? G.misc[2] : any_fd(t);
		}
		note(t, "sendfile(%d <- %d, %zu)", a, b, len);
		busy(t, one_in(t, 2) ? a : b);
		ret_of(sendfile(a, b, offp(t), len));
		break;
	default:
		a = dev_fd(t);
		b = any_fd(t);
		if (one_in(t, 2)) {
			int c = a;

			a = b;
			b = c;
		}
		note(t, "copy_file_range(%d -> %d, %zu)", a, b, len);
		ret_of(copy_file_range(a, offp(t), b, offp(t), len, one_in(t, 8)));
		break;
	}
	busy(t, -1);
}

static void op_poll(struct fz_thread *t)
{
	struct pollfd p[3];
	struct epoll_event ev = { .events = below(t, 1 << 16) }, out[4];
	int fd = dev_fd(t);

	if (one_in(t, 4))	/* EPOLLEXCLUSIVE, EPOLLWAKEUP, EPOLLONESHOT, EPOLLET */
		ev.events |= 1u << (28 + below(t, 4));

	switch (below(t, 3)) {
	case 0:
		for (int i = 0; i < 3; i++) {
			p[i].fd = i ? any_fd(t) : fd;
			p[i].events = below(t, 1 << 10);
		}
		note(t, "poll(%d, ...)", fd);
		ret_of(poll(p, 3, below(t, 20)));
		break;
	case 1:
		note(t, "epoll_ctl(%d)", fd);
		ret_of(epoll_ctl(t->epfd, 1 + below(t, 3), fd, &ev));
		break;
	default:
		note(t, "epoll_wait");
		ret_of(epoll_wait(t->epfd, out, 4, below(t, 20)));
		break;
	}
}

/* Random ioctls: numbers, sizes, directions and pointers. */
static void op_ioctl(struct fz_thread *t)
{
	static const unsigned int valid[] = {
		ZCDEV_IOC_GET_INFO, ZCDEV_IOC_GET_STATS, ZCDEV_IOC_RESIZE,
		ZCDEV_IOC_RESET, ZCDEV_IOC_PRODUCE, ZCDEV_IOC_CONSUME,
	};
	static const unsigned int generic[] = { FIONBIO, FIOASYNC, FIONREAD,
		FIOQSIZE, FIGETBSZ, FIOCLEX, FIONCLEX };
	unsigned int cmd, type = ZCDEV_IOC_MAGIC;
	unsigned long arg;
	uint64_t v64;
	uint32_t v32;
	int fd = dev_fd(t);

	switch (below(t, 8)) {
	case 0:
	case 1:
		cmd = valid[below(t, 6)];
		break;
	case 2:
		cmd = valid[below(t, 6)] ^ (1u << below(t, 32));
		break;
	case 3:
		/* Any type, but only on our own device file, and none the VFS
		 * acts on for every file (FS_IOC_SETFLAGS, FIFREEZE, FICLONE...). */
		type = below(t, 256);
		if (type == 'f' || type == 'X' || type == 0x94 || type == 'v')
			type = ZCDEV_IOC_MAGIC;
		if (type != ZCDEV_IOC_MAGIC)
			fd = t->own;
		/* fall through */
	default: {
		static const unsigned int sizes[] = { 0, 1, 4, 8, 64, 160, 4096 };
		unsigned int size = one_in(t, 2) ? sizes[below(t, 7)] : below(t, 1 << 14);

		cmd = _IOC(below(t, 4), type, one_in(t, 2) ? below(t, 8) : below(t, 256),
			   size);
		break;
	}
	case 7:
		cmd = generic[below(t, 7)];
		fd = t->own_ro;
		if (cmd == FIONBIO)
			fd = __atomic_load_n(&G.dev[below(t, NDEV)], __ATOMIC_RELAXED);
		break;
	}

	switch (below(t, 6)) {
	case 0:
		arg = rnd(t);
		break;
	case 1:
	case 2:
		/* A valid pointer to a value: RESIZE, PRODUCE, CONSUME read it. */
		switch (below(t, 8)) {
		case 0: v64 = 0; break;
		case 1: v64 = 1 + below(t, 8); break;
		case 2: v64 = 256; break;
		case 3: v64 = G.max_pages + below(t, 3); break;
		case 4: v64 = UINT32_MAX; break;
		case 5: v64 = rnd(t); break;
		case 6: v64 = below(t, BIG_RING); break;
		default: v64 = below(t, 8 * G.ps); break;
		}
		/* A huge ring is a lot of memory in a small guest. */
		if (cmd == ZCDEV_IOC_RESIZE && v64 >= BIG_RING && v64 <= G.max_pages)
			v64 = G.max_pages + 1;
		v32 = v64;
		arg = (unsigned long)(cmd == ZCDEV_IOC_RESIZE ? (void *)&v32 : (void *)&v64);
		break;
	default:
		arg = (unsigned long)uptr(t);
		break;
	}
	/*
	 * RESIZE through a pointer into our memory would read whatever the
	 * fuzzing left there: up to max_ring_pages. Keep that value sane.
	 */
	if (cmd == ZCDEV_IOC_RESIZE && arg >= (unsigned long)G.arena &&
	    arg < (unsigned long)(G.arena + G.arena_len)) {
		arg = (unsigned long)&v32;
		v32 = below(t, 64);
	}
	note(t, "ioctl(%d, %#x, %#lx)", fd, cmd, arg);
	ret_of(ioctl(fd, cmd, arg));
}

/* Calls whose answer the ABI fixes, on files no other thread touches. */
static void op_wellformed(struct fz_thread *t)
{
	struct zcdev_info info;
	struct zcdev_stats st;
	uint64_t big = 1ULL << 62;
	uint32_t pages;
	void *m;
	int r;

	switch (below(t, 8)) {
	case 0:
		note(t, "well-formed GET_INFO");
		memset(&info, 0xff, sizeof(info));
		r = ioctl(t->own, ZCDEV_IOC_GET_INFO, &info);
		if (r && errno != EINTR)
			violation(t, "GET_INFO: %s", strerror(errno));
		else if (!r && (info.abi_version != ZCDEV_ABI_VERSION ||
				info.page_size != G.ps || info.data_offset != G.ps ||
				info.meta_offset != 0 || info.max_ring_pages != G.max_pages ||
				info.ring_bytes != (uint64_t)info.ring_pages * G.ps ||
				info.ring_pages > info.max_ring_pages ||
				info.reserved[0] || info.reserved[2] ||
				info.max_total_pages < info.ring_pages))
			violation(t, "GET_INFO: abi %u page %u pages %u max %u bytes %llu",
				  info.abi_version, info.page_size, info.ring_pages,
				  info.max_ring_pages, (unsigned long long)info.ring_bytes);
		break;
	case 1:
		note(t, "well-formed GET_STATS");
		memset(&st, 0xff, sizeof(st));
		r = ioctl(t->own_ro, ZCDEV_IOC_GET_STATS, &st);
		if (r && errno != EINTR)
			violation(t, "GET_STATS: %s", strerror(errno));
		else if (!r && (st.reserved[0] ||
					 st.reserved[ARRAY_SIZE(st.reserved) - 1]))
			violation(t, "GET_STATS: reserved fields not zeroed");
		break;
	case 2:
		pages = G.max_pages + 1 + below(t, 1000);
		note(t, "well-formed RESIZE(%u) above max", pages);
		r = ioctl(t->own, ZCDEV_IOC_RESIZE, &pages);
		if (!r || (errno != EINVAL && errno != EINTR))
			violation(t, "RESIZE(%u > max %u) = %d (%s), not EINVAL", pages,
				  G.max_pages, r, r ? strerror(errno) : "success");
		break;
	case 4:
		note(t, "well-formed ioctls with a bad pointer");
		r = ioctl(t->own, one_in(t, 2) ? ZCDEV_IOC_GET_INFO : ZCDEV_IOC_GET_STATS,
			  one_in(t, 2) ? KADDR : NULL);
		if (!r || (errno != EFAULT && errno != EINTR))
			violation(t, "GET_INFO/STATS to a bad pointer = %d (%s)", r,
				  r ? strerror(errno) : "success");
		r = ioctl(t->own, ZCDEV_IOC_RESIZE, one_in(t, 2) ? KADDR : NULL);
		if (!r || (errno != EFAULT && errno != EINTR))
			violation(t, "RESIZE from a bad pointer = %d (%s)", r,
				  r ? strerror(errno) : "success");
		break;
	case 5:
		note(t, "well-formed over-commit");
		r = ioctl(t->own, one_in(t, 2) ? ZCDEV_IOC_PRODUCE : ZCDEV_IOC_CONSUME, &big);
		if (!r || (errno != EINVAL && errno != EINTR))
			violation(t, "PRODUCE/CONSUME(2^62) = %d (%s), not EINVAL", r,
				  r ? strerror(errno) : "success");
		r = ioctl(t->own_ro, ZCDEV_IOC_PRODUCE, &big);
		if (!r || (errno != EBADF && errno != EINTR))
			violation(t, "PRODUCE on a read-only file = %d (%s), not EBADF", r,
				  r ? strerror(errno) : "success");
		break;
	case 6:
		note(t, "well-formed mmap refusals");
		m = mmap(NULL, G.ps, PROT_READ, MAP_PRIVATE, t->own, G.ps);
		if (m != MAP_FAILED || errno != EINVAL) {
			violation(t, "MAP_PRIVATE mmap: %s",
				  m == MAP_FAILED ? strerror(errno) : "success");
			if (m != MAP_FAILED)
				munmap(m, G.ps);
		}
		m = mmap(NULL, G.ps, PROT_READ | PROT_WRITE, MAP_SHARED, t->own, 0);
		if (m != MAP_FAILED || errno != EACCES) {
			violation(t, "writable meta mmap: %s",
				  m == MAP_FAILED ? strerror(errno) : "success");
			if (m != MAP_FAILED)
				munmap(m, G.ps);
		}
		m = mmap(NULL, G.ps, PROT_READ, MAP_SHARED, t->own,
			 G.ps * (1 + 2ULL * G.max_pages));
		if (m != MAP_FAILED || errno != EINVAL) {
			violation(t, "mmap past the last data offset: %s",
				  m == MAP_FAILED ? strerror(errno) : "success");
			if (m != MAP_FAILED)
				munmap(m, G.ps);
		}
		break;
	case 7: {
		void *volatile nowhere = one_in(t, 2) ? NULL : KADDR;
		ssize_t n;

		note(t, "well-formed read/write with a bad buffer");
		n = read(t->own, nowhere, 1 + below(t, 8192));
		if (n >= 0 || (errno != EFAULT && errno != EAGAIN && errno != EINTR))
			violation(t, "read(bad buffer) = %zd (%s)", n,
				  n < 0 ? strerror(errno) : "bytes");
		n = write(t->own, nowhere, 1 + below(t, 8192));
		if (n >= 0 || (errno != EFAULT && errno != EAGAIN && errno != EINTR &&
			       errno != ENOSPC))
			violation(t, "write(bad buffer) = %zd (%s)", n,
				  n < 0 ? strerror(errno) : "bytes");
		break;
	}
	default: {
		unsigned int cmd = _IOC(below(t, 4), ZCDEV_IOC_MAGIC,
					6 + below(t, 250), below(t, 256));

		note(t, "well-formed unknown ioctl %#x", cmd);
		r = ioctl(t->own, cmd, G.scratch);
		if (!r || (errno != ENOTTY && errno != EINTR))
			violation(t, "ioctl %#x = %d (%s), not ENOTTY", cmd, r,
				  r ? strerror(errno) : "success");
		break;
	}
	}
}

/* Empty this thread's own pipe into the scratch area. */
static void drain_own_pipe(struct fz_thread *t)
{
	while (read(t->pp[0], G.scratch, 64 * 1024) > 0)
		;
}

/*
 * sendfile() into a socket that takes less than was spliced: the kernel
 * releases the rest of its internal pipe, which must stay in the ring.
 */
static void recipe_short_sendfile(struct fz_thread *t, size_t len)
{
	int sv[2], one = 1;

	note(t, "recipe: sendfile of %zu into a socket that takes less", len);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
		return;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &one, sizeof(one));
	ret_of(write(t->own, G.scratch, len));
	for (int i = 0; i < 3; i++) {
		ret_of(sendfile(sv[0], t->own, NULL, len));
		ret_of(read(sv[1], G.scratch, below(t, len + 1)));
	}
	close(sv[0]);
	close(sv[1]);
}

/*
 * A long-term pin of mapped ring pages (an io_uring fixed buffer; 6.1
 * refuses it) while they are spliced out and stored to: such pages are
 * lent as copies. The pin lasts until the io_uring file is closed.
 */
static void recipe_pin(struct fz_thread *t, uint8_t *m, size_t len)
{
	struct io_uring_params p;
	struct iovec iov = { .iov_base = m, .iov_len = len };
	int ring;

	note(t, "recipe: pin %zu mapped bytes, splice them out, store", len);
	if (mmap(m, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		 t->own, G.ps) == MAP_FAILED)
		return;
	memset(&p, 0, sizeof(p));
	ring = syscall(__NR_io_uring_setup, 2, &p);
	if (ring < 0)
		return;
	ret_of(syscall(__NR_io_uring_register, ring, IORING_REGISTER_BUFFERS, &iov, 1));
	ret_of(write(t->own, G.scratch, len));
	ret_of(splice(t->own, NULL, t->pp[1], NULL, len, SPLICE_F_NONBLOCK));
	probing = 1;
	if (!sigsetjmp(probe_env, 1))
		memset(m + below(t, len), 0x5a, 1 + below(t, G.ps));
	probing = 0;
	ret_of(read(t->pp[0], G.scratch, len));
	close(ring);
}

/*
 * Short sequences of valid calls that reach states random calls rarely
 * do: pages stolen by splice in, ring pages gifted back to the ring after
 * a resize dropped them, stores through a lent slot, pipes that outlive
 * the pages' ring, copies between the device and its own mapping, short
 * sendfile outputs and pinned pages.
 */
static void op_recipe(struct fz_thread *t)
{
	size_t k = 1 + below(t, 8), len = k * G.ps, pages;
	uint8_t *m = wpage(t, &pages);
	struct iovec iov;
	uint32_t np;
	uint64_t n;

	/* A mapping of k data pages of the ring, somewhere in the window. */
	if ((size_t)(G.win + G.win_len - m) < 2 * len)
		m = G.win;
	drain_own_pipe(t);
	switch (below(t, 8)) {
	case 0:
		note(t, "recipe: steal %zu pages", k);
		if (one_in(t, 2))
			ioctl(t->own, ZCDEV_IOC_RESET);
		ret_of(write(t->pp[1], G.scratch, len));
		ret_of(splice(t->pp[0], NULL, t->own, NULL, len,
			      SPLICE_F_MOVE | SPLICE_F_NONBLOCK));
		break;
	case 1:
		note(t, "recipe: gift %zu ring pages, resize, splice them back", k);
		if (mmap(m, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
			 t->own, G.ps) == MAP_FAILED)
			break;
		probing = 1;
		if (!sigsetjmp(probe_env, 1))
			for (size_t i = 0; i < len; i += G.ps)
				m[i] ^= 1;
		probing = 0;
		iov.iov_base = m;
		iov.iov_len = len;
		ret_of(vmsplice(t->pp[1], &iov, 1, SPLICE_F_GIFT | SPLICE_F_NONBLOCK));
		np = 1 + below(t, 32);
		ret_of(ioctl(t->own, ZCDEV_IOC_RESIZE, &np));
		if (one_in(t, 2))
			ioctl(t->own, ZCDEV_IOC_RESET);
		ret_of(splice(t->pp[0], NULL, t->own, NULL, len,
			      SPLICE_F_MOVE | SPLICE_F_NONBLOCK));
		break;
	case 2:
		note(t, "recipe: lend, then store through the mapping and produce");
		ret_of(write(t->own, G.scratch, 1 + below(t, len)));
		if (mmap(m, 2 * len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
			 t->own, G.ps) == MAP_FAILED)
			break;
		ret_of(splice(t->own, NULL, t->pp[1], NULL, 1 + below(t, len),
			      SPLICE_F_NONBLOCK));
		probing = 1;
		if (!sigsetjmp(probe_env, 1))
			memset(m + below(t, len), 0x3c, 1 + below(t, G.ps));
		probing = 0;
		n = below(t, 2 * G.ps);
		ret_of(ioctl(t->own, ZCDEV_IOC_PRODUCE, &n));
		ret_of(tee(t->pp[0], __atomic_load_n(&G.pipes[below(t, NPIPE)][1],
						     __ATOMIC_RELAXED),
			   len, SPLICE_F_NONBLOCK));
		break;
	case 3:
		note(t, "recipe: splice out, then resize/reset, then read the pipe");
		ret_of(write(t->own, G.scratch, len));
		ret_of(splice(t->own, NULL, t->pp[1], NULL, len, SPLICE_F_NONBLOCK));
		np = 1 + below(t, 64);
		ret_of(one_in(t, 2) ? ioctl(t->own, ZCDEV_IOC_RESET) :
		       ioctl(t->own, ZCDEV_IOC_RESIZE, &np));
		ret_of(read(t->pp[0], G.scratch, len));
		break;
	case 4:
		note(t, "recipe: read/write between the device and its own mapping");
		if (mmap(m, 2 * len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
			 t->own, G.ps) == MAP_FAILED)
			break;
		ret_of(write(t->own, m + below(t, len), 1 + below(t, len)));
		ret_of(read(t->own, m + below(t, len), 1 + below(t, len)));
		ret_of(splice(t->own, NULL, t->pp[1], NULL, len, SPLICE_F_NONBLOCK));
		ret_of(read(t->pp[0], m + below(t, len), len));
		break;
	case 5:
		note(t, "recipe: sendfile between the device and a tmpfs file");
		ret_of(write(t->own, G.scratch, len));
		ret_of(sendfile(G.misc[2], t->own, NULL, len));
		ret_of(sendfile(t->own, G.misc[2], &t->off, len));
		break;
	case 6:
		recipe_short_sendfile(t, len);
		break;
	default:
		recipe_pin(t, m, len);
		break;
	}
}

static void op_fork(struct fz_thread *t);

static void one_op(struct fz_thread *t)
{
	unsigned int w, kind;

	/*
	 * Each operation draws from a generator of its own, seeded from the
	 * thread's stream: however many draws an operation makes (a fault can
	 * cut a loop short), the next one is the same on a replay.
	 */
	t->rng = splitmix(&t->stream);
	w = below(t, 100);

	if (w < 12)
		op_files(t);
	else if (w < 30)
		op_rw(t);
	else if (w < 40)
		op_touch(t);
	else if (w < 55)
		op_mm(t);
	else if (w < 72)
		op_splice(t);
	else if (w < 76)
		op_poll(t);
	else if (w < 86)
		op_ioctl(t);
	else if (w < 92)
		op_recipe(t);
	else if (w < 99)
		op_wellformed(t);
	else
		op_fork(t);
	kind = w < 12 ? 0 : w < 30 ? 1 : w < 40 ? 2 : w < 55 ? 3 : w < 72 ? 4 :
	       w < 76 ? 5 : w < 86 ? 6 : w < 92 ? 9 : w < 99 ? 7 : 8;
	__atomic_add_fetch(&G.kind_n[kind], 1, __ATOMIC_RELAXED);
	__atomic_store_n(&t->op_start, 0, __ATOMIC_RELEASE);
	__atomic_add_fetch(&t->ops, 1, __ATOMIC_RELAXED);
}

/*
 * A child with copies of every mapping and file: it fuzzes alone for a
 * moment (a timer interrupts whatever blocks), then leaves with _exit().
 */
static void op_fork(struct fz_thread *t)
{
	int slot = -1;
	pid_t pid;

	if (G.in_child)
		return;
	for (int i = 0; i < MAX_CHILDREN; i++) {
		if (__atomic_load_n(&G.child[i], __ATOMIC_ACQUIRE) == 0 &&
		    __atomic_compare_exchange_n(&G.child[i], &(pid_t){ 0 }, -1, false,
						__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
			slot = i;
			break;
		}
	}
	if (slot < 0)
		return;
	note(t, "fork");
	uint64_t child_seed = rnd(t);

	pid = fork();
	if (pid == 0) {
		struct sigaction sa = { .sa_handler = on_usr1 };
		struct itimerval it = {
			.it_interval = { 0, 20000 },
			.it_value = { 0, 20000 },
		};
		double end = now() + 0.2;

		G.in_child = 1;
		sigaction(SIGALRM, &sa, NULL);
		setitimer(ITIMER_REAL, &it, NULL);
		t->stream = child_seed;
		for (int i = 0; i < CHILD_OPS && now() < end; i++)
			one_op(t);
		_exit(0);
	}
	if (pid < 0) {
		__atomic_store_n(&G.child[slot], 0, __ATOMIC_RELEASE);
		return;
	}
	G.child_start[slot] = now();
	__atomic_store_n(&G.child[slot], pid, __ATOMIC_RELEASE);
	__atomic_add_fetch(&G.forks, 1, __ATOMIC_RELAXED);
}

static void *fuzz_thread(void *arg)
{
	struct fz_thread *t = arg;

	self_th = t;
	t->tid = syscall(SYS_gettid);
	while (!__atomic_load_n(&G.stop, __ATOMIC_ACQUIRE))
		one_op(t);
	return NULL;
}

/* Interrupts blocking calls every few tens of milliseconds. */
static void *ticker(void *arg)
{
	uint64_t s = (uintptr_t)arg;

	while (__atomic_load_n(&G.stop, __ATOMIC_ACQUIRE) < 2) {
		for (int i = 0; i < G.nthreads; i++)
			if (G.th[i].tid)
				syscall(SYS_tgkill, getpid(), G.th[i].tid, SIGUSR1);
		usleep(10000 + splitmix(&s) % 40000);
	}
	return NULL;
}

/* The kernel's view of a stuck task, for the report. */
static void dump_task(pid_t pid, pid_t tid)
{
	char path[96], buf[2048];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stack", pid, tid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n > 0) {
		buf[n] = 0;
		ksft_print_msg("kernel stack of %d:\n%s", tid, buf);
	}
}

static void reap_children(bool wait_all, char *why, size_t whylen)
{
	for (int i = 0; i < MAX_CHILDREN; i++) {
		pid_t pid = __atomic_load_n(&G.child[i], __ATOMIC_ACQUIRE);
		int status;

		if (pid <= 0)
			continue;
		if (waitpid(pid, &status, wait_all ? 0 : WNOHANG) == pid) {
			if (!WIFEXITED(status) || WEXITSTATUS(status)) {
				G.child_fail++;
				snprintf(G.child_msg, sizeof(G.child_msg),
					 "child %d ended with status %#x (signal %d)", pid,
					 status, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
			}
			__atomic_store_n(&G.child[i], 0, __ATOMIC_RELEASE);
		} else if (!wait_all && now() - G.child_start[i] > STUCK_SECONDS && !*why) {
			snprintf(why, whylen, "forked child %d has not exited after %d s",
				 pid, STUCK_SECONDS);
			dump_task(pid, pid);
		}
	}
}

static int fuzz_threads(void)
{
	const char *s = getenv("ZCDEV_FUZZ_THREADS");
	int v = s ? atoi(s) : 0;

	return v > 0 && v <= NTHREADS ? v : NTHREADS;
}

static unsigned int fuzz_seconds(void)
{
	const char *s = getenv("ZCDEV_FUZZ_SECONDS");
	int v = s ? atoi(s) : 0;

	return v > 0 ? v : 20;
}

FIXTURE(fuzz) {
	int fd;
};

FIXTURE_SETUP(fuzz)
{
	self->fd = zt_open(O_RDWR | O_NONBLOCK);
	if (self->fd < 0 && errno == ENOENT)
		SKIP(return, "%s missing: is the module loaded?", zt_dev_path());
	ASSERT_LE(0, self->fd);
}

FIXTURE_TEARDOWN(fuzz)
{
	if (self->fd < 0)
		return;
	__atomic_store_n(&G.stop, 2, __ATOMIC_RELEASE);
	zt_fresh_ring(self->fd, 256);
	close(self->fd);
}

TEST_F_TIMEOUT(fuzz, random_syscalls, 600)
{
	const char *seed_env = getenv("ZCDEV_FUZZ_SEED");
	unsigned int seconds = fuzz_seconds();
	uint64_t seed, s;
	struct sigaction sa = { .sa_handler = on_usr1 };
	struct sigaction sf = { .sa_handler = on_fault, .sa_flags = SA_NODEFER };
	struct sigaction sw = { .sa_handler = on_watchdog };
	struct zcdev_info info;
	struct zcdev_stats st, st0;
	pthread_t th[NTHREADS], tick;
	char why[256] = "";
	double start, end;
	uint64_t pos = 0, rpos = 0;
	uint8_t *buf;

	if (seed_env) {
		seed = strtoull(seed_env, NULL, 0);
	} else {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		seed = ts.tv_sec * 1000003ULL ^ ts.tv_nsec ^ ((uint64_t)getpid() << 32);
		seed %= 1000000000000ULL;
	}
	/* The line to look for, and the environment that replays it. */
	ksft_print_msg("seed: %llu\n", (unsigned long long)seed);
	G.nthreads = fuzz_threads();
	G.trace = getenv("ZCDEV_FUZZ_TRACE") && atoi(getenv("ZCDEV_FUZZ_TRACE"));
	ksft_print_msg("replay: ZCDEV_FUZZ_SEED=%llu ZCDEV_FUZZ_SECONDS=%u "
		       "ZCDEV_FUZZ_THREADS=%d (ZCDEV_FUZZ_TRACE=1 logs every call)\n",
		       (unsigned long long)seed, seconds, G.nthreads);
	/* Out now: if the kernel dies, the console still has the seed. */
	fflush(stdout);

	G.ps = sysconf(_SC_PAGESIZE);
	ASSERT_EQ(0, zt_info(self->fd, &info));
	G.max_pages = info.max_ring_pages;
	ASSERT_EQ(0, zt_fresh_ring(self->fd, 16));
	ASSERT_EQ(0, zt_stats(self->fd, &st0));

	/* [guard][window][guard][scratch][guard], all reserved up front. */
	G.win_len = WIN_PAGES * G.ps;
	G.scratch_len = SCRATCH_PAGES * G.ps;
	G.arena_len = G.win_len + G.scratch_len + 3 * GUARD_PAGES * G.ps;
	G.arena = mmap(NULL, G.arena_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS |
		       MAP_NORESERVE, -1, 0);
	ASSERT_NE(MAP_FAILED, G.arena);
	G.win = G.arena + GUARD_PAGES * G.ps;
	G.scratch = G.win + G.win_len + GUARD_PAGES * G.ps;
	ASSERT_NE(MAP_FAILED, mmap(G.scratch, G.scratch_len, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
	memset(G.scratch, 0x5a, G.scratch_len);

	ASSERT_EQ(0, sigaction(SIGUSR1, &sa, NULL));
	ASSERT_EQ(0, sigaction(SIGBUS, &sf, NULL));
	ASSERT_EQ(0, sigaction(SIGSEGV, &sf, NULL));
	ASSERT_EQ(0, sigaction(SIGALRM, &sw, NULL));
	signal(SIGPIPE, SIG_IGN);
	signal(SIGIO, SIG_IGN);
	signal(SIGURG, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN);

	/* The shared table. */
	s = seed;
	for (int i = 0; i < NTHREADS; i++) {
		struct fz_thread *t = &G.th[i];

		t->idx = i;
		t->busy_fd = -1;
		t->stream = splitmix(&s);
		t->rng = splitmix(&s);
		t->own = zt_open(O_RDWR | O_NONBLOCK);
		t->own_ro = zt_open(O_RDONLY | O_NONBLOCK);
		t->epfd = epoll_create1(EPOLL_CLOEXEC);
		ASSERT_EQ(0, pipe2(t->pp, O_CLOEXEC | O_NONBLOCK));
		ASSERT_LE(0, t->own);
		ASSERT_LE(0, t->own_ro);
		ASSERT_LE(0, t->epfd);
	}
	for (int i = 0; i < NDEV; i++) {
		G.dev[i] = open_dev(&G.th[0]);
		ASSERT_LE(0, G.dev[i]);
	}
	for (int i = 0; i < NPIPE; i++) {
		G.pipes[i][0] = G.pipes[i][1] = -1;
		new_pipe(&G.th[0], i);
	}
	G.misc[0] = G.misc[1] = -1;
	new_socketpair(&G.th[0]);
	for (int i = 2; i < NMISC; i++)
		G.misc[i] = open_misc(&G.th[0], i);
	/* Some device mappings to begin with (the ring has 16 pages). */
	for (int i = 0; i < 8; i++)
		mmap(G.win + i * 64 * G.ps, 2 * 16 * G.ps, PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_FIXED, G.dev[i], G.ps);

	fflush(stdout);
	fflush(stderr);
	start = now();
	end = start + seconds;
	alarm(seconds + 90);
	for (int i = 0; i < G.nthreads; i++)
		ASSERT_EQ(0, pthread_create(&th[i], NULL, fuzz_thread, &G.th[i]));
	ASSERT_EQ(0, pthread_create(&tick, NULL, ticker, (void *)(uintptr_t)seed));

	/* The monitor: time, stuck calls, stuck children. */
	while (now() < end && !*why) {
		usleep(100000);
		for (int i = 0; i < G.nthreads; i++) {
			int64_t t0 = __atomic_load_n(&G.th[i].op_start, __ATOMIC_ACQUIRE);

			if (t0 && now_ms() - t0 > STUCK_SECONDS * 1000) {
				snprintf(why, sizeof(why), "thread %d stuck for %d s in %s",
					 i, STUCK_SECONDS, G.th[i].last);
				dump_task(getpid(), G.th[i].tid);
			}
		}
		reap_children(false, why, sizeof(why));
	}

	/* Stop: the ticker keeps interrupting until every thread is out. */
	__atomic_store_n(&G.stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < G.nthreads && !*why; i++) {
		struct timespec dl;

		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_sec += STUCK_SECONDS;
		if (pthread_timedjoin_np(th[i], NULL, &dl)) {
			snprintf(why, sizeof(why), "thread %d did not stop: %s", i,
				 G.th[i].last);
			dump_task(getpid(), G.th[i].tid);
		}
	}
	fflush(stdout);
	ASSERT_STREQ("", why);
	__atomic_store_n(&G.stop, 2, __ATOMIC_RELEASE);
	pthread_join(tick, NULL);
	reap_children(true, why, sizeof(why));
	alarm(0);

	ksft_print_msg("%.1f s: %llu calls (%llu EINTR), %llu forks, %llu SIGBUS, "
		       "%llu SIGSEGV caught, %d ABI violations\n", now() - start,
		       (unsigned long long)G.calls, (unsigned long long)G.eintr,
		       (unsigned long long)G.forks, (unsigned long long)G.sigbus,
		       (unsigned long long)G.sigsegv, G.violations);
	ksft_print_msg("operations: files %llu, read/write %llu, touch %llu, mm %llu, "
		       "splice %llu, poll %llu, ioctl %llu, well-formed %llu, fork %llu, "
		       "recipes %llu\n",
		       (unsigned long long)G.kind_n[0], (unsigned long long)G.kind_n[1],
		       (unsigned long long)G.kind_n[2], (unsigned long long)G.kind_n[3],
		       (unsigned long long)G.kind_n[4], (unsigned long long)G.kind_n[5],
		       (unsigned long long)G.kind_n[6], (unsigned long long)G.kind_n[7],
		       (unsigned long long)G.kind_n[8], (unsigned long long)G.kind_n[9]);
	/* What the kernel saw: which of its paths the fuzzing reached. */
	ASSERT_EQ(0, zt_stats(self->fd, &st));
#define D(f) (unsigned long long)(st.f - st0.f)
	ksft_print_msg("kernel: written %llu, read %llu, spliced out %llu (%llu pages), "
		       "stolen in %llu pages, spliced in copied %llu, produced %llu, "
		       "consumed %llu, %llu swaps, %llu faults, %llu SIGBUS faults\n",
		       D(bytes_written_copy), D(bytes_read_copy), D(bytes_spliced_out),
		       D(pages_spliced_out), D(pages_stolen_in), D(bytes_spliced_in_copied),
		       D(bytes_produced_mmap), D(bytes_consumed_mmap), D(page_swaps),
		       D(mmap_faults), D(sigbus_faults));
#undef D
	/* stdout is a pipe under the rig, and the harness ends with _exit(). */
	fflush(stdout);
	EXPECT_EQ(0, G.violations) TH_LOG("first: %s", G.vmsg);
	EXPECT_EQ(0, G.child_fail) TH_LOG("%s", G.child_msg);

	/* Tear everything down: the ring must be whole afterwards. */
	munmap(G.arena, G.arena_len);
	for (int i = 0; i < NDEV; i++)
		close(G.dev[i]);
	for (int i = 0; i < NPIPE; i++) {
		close(G.pipes[i][0]);
		close(G.pipes[i][1]);
	}
	for (int i = 0; i < NMISC; i++)
		close(G.misc[i]);
	for (int i = 0; i < NTHREADS; i++) {
		close(G.th[i].own);
		close(G.th[i].own_ro);
		close(G.th[i].epfd);
		close(G.th[i].pp[0]);
		close(G.th[i].pp[1]);
	}

	/* The device still works: 1 MiB through write/read, across the wrap. */
	ASSERT_EQ(0, zt_fresh_ring(self->fd, 256));
	ASSERT_EQ(0, zt_info(self->fd, &info));
	ASSERT_EQ(256, info.ring_pages);
	buf = malloc(1 << 20);
	ASSERT_NE(NULL, buf);
	zt_fill(buf, pos, 1000);
	ASSERT_EQ(0, zt_write_all(self->fd, buf, 1000));
	pos += 1000;
	ASSERT_EQ(1000, zt_read_all(self->fd, buf, 1000));
	ASSERT_EQ(-1, zt_check(buf, rpos, 1000));
	rpos += 1000;
	zt_fill(buf, pos, 1 << 20);
	ASSERT_EQ(0, zt_write_all(self->fd, buf, 1 << 20));
	pos += 1 << 20;
	memset(buf, 0, 1 << 20);
	ASSERT_EQ(1 << 20, zt_read_all(self->fd, buf, 1 << 20));
	ASSERT_EQ(-1, zt_check(buf, rpos, 1 << 20));
	free(buf);

	/* The meta page is the kernel's, whatever the fuzzer wrote. */
	struct zcdev_ring_meta *meta = mmap(NULL, G.ps, PROT_READ, MAP_SHARED,
					    self->fd, 0);

	ASSERT_NE(MAP_FAILED, meta);
	EXPECT_EQ(ZCDEV_ABI_VERSION, meta->abi_version);
	EXPECT_EQ(G.ps, meta->page_size);
	EXPECT_EQ(256 * G.ps, meta->ring_bytes);
	EXPECT_EQ(meta->head, meta->tail);
	munmap(meta, G.ps);

	ASSERT_EQ(0, zt_stats(self->fd, &st));
	EXPECT_EQ(info.ring_pages, st.pages_held);
}

/* The harness's timeout is a constant; the duration comes from the environment. */
static void __attribute__((constructor)) fuzz_timeout(void)
{
	ZT_TEST_OBJECT(fuzz, random_syscalls)->timeout = fuzz_seconds() + 150;
}

TEST_HARNESS_MAIN
