// SPDX-License-Identifier: GPL-2.0
/*
 * The ring and its copy paths: read() and write() against the page ring,
 * at every wrap position, blocking and not, with EOF, poll, signals,
 * sendfile (splice out by reference) to a file, a pipe and a TCP socket,
 * the ioctls with good and bad arguments, and the counters and sysfs
 * files that must agree with what each call did.
 *
 * Every payload is the stream of zcdev_test.h: self->wpos is the stream
 * position of the next byte written, self->rpos of the next byte read, so
 * any read checks its bytes against zt_byte() and a byte lost, duplicated
 * or moved shows at its exact position.
 *
 * The tests share one device with every other test program: each starts
 * from an empty ring of a known size (FIXTURE_SETUP) and leaves the ring
 * empty at its load-time size (FIXTURE_TEARDOWN).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/zcdev.h>

#include "kselftest_harness.h"
#include "zcdev_test.h"

#define PARAM_DIR	"/sys/module/zcdev/parameters/"
#define DEBUGFS_DIR	"/sys/kernel/debug"
#define DEBUGFS_STATS	DEBUGFS_DIR "/zcdev/stats"
#ifndef DEBUGFS_MAGIC
#define DEBUGFS_MAGIC	0x64626720
#endif

/* The ring most tests use: small, so that wraps come often and cheaply. */
#define SMALL_PAGES	4
/* Scratch buffers: enough for any single call any test makes. */
#define SCRATCH		(2u << 20)

FIXTURE(rw) {
	int fd;			/* O_RDWR, blocking: a writer while open */
	int nb;			/* O_RDWR | O_NONBLOCK: a writer too */
	size_t pg;		/* page size */
	size_t ring;		/* bytes in the ring now */
	uint32_t default_pages;	/* load-time ring_pages, restored at the end */
	uint64_t wpos;		/* stream position of the next byte written */
	uint64_t rpos;		/* stream position of the next byte read */
	long bad;		/* first wrong byte of the last get(), or -1 */
	int err;		/* errno of the last put() or get() */
	uint8_t *wbuf, *rbuf;
	char ctx[96];		/* where a loop is, for failure messages */
	pid_t kids[8];		/* killed and reaped by the teardown */
	int nkids;
};

/* ---- sysfs and module parameters ---------------------------------------- */

static uint32_t param_u32(const char *name, uint32_t dflt)
{
	char path[128];
	uint64_t val;

	snprintf(path, sizeof(path), PARAM_DIR "%s", name);
	return zt_read_u64(path, &val) ? dflt : (uint32_t)val;
}

/* The ring as sysfs shows it. */
struct ring_state {
	uint64_t ring_pages, ring_bytes, head, tail, used, generation, writers;
};

static int get_state(struct ring_state *s)
{
	return zt_sysfs_u64("ring_pages", &s->ring_pages) ||
	       zt_sysfs_u64("ring_bytes", &s->ring_bytes) ||
	       zt_sysfs_u64("head", &s->head) ||
	       zt_sysfs_u64("tail", &s->tail) ||
	       zt_sysfs_u64("used", &s->used) ||
	       zt_sysfs_u64("generation", &s->generation) ||
	       zt_sysfs_u64("writers", &s->writers) ? -1 : 0;
}

#define STATE(s) ASSERT_EQ(0, get_state(&(s))) {			\
	TH_LOG("cannot read the ring state from " ZT_SYSFS_DIR);		\
}

/* Nothing about the ring moved between @a and @b. */
#define ASSERT_SAME_STATE(a, b) do {					\
	ASSERT_EQ((a).ring_pages, (b).ring_pages);			\
	ASSERT_EQ((a).head, (b).head);					\
	ASSERT_EQ((a).tail, (b).tail);					\
	ASSERT_EQ((a).generation, (b).generation);			\
} while (0)

/* ---- counters ---------------------------------------------------------- */

#define STATS(fd, st) ASSERT_EQ(0, zt_stats(fd, &(st))) {		\
	TH_LOG("ZCDEV_IOC_GET_STATS: %s", strerror(errno));		\
}

/*
 * Every counter moved by exactly what @delta says between @a and @b (a
 * field left 0 in @delta must not move at all), and pages_held is the ring.
 */
static void check_stats(struct __test_metadata *_metadata,
			const struct zcdev_stats *a, const struct zcdev_stats *b,
			const struct zcdev_stats *delta, const char *what)
{
	/* slots_kept too: read() and write() never keep a page (3.3). */
#define ZT_CHECK_FIELD(f)						\
	EXPECT_EQ(delta->f, b->f - a->f) {				\
		TH_LOG("%s: %s moved by %llu, expected %llu", what, #f,	\
		       (unsigned long long)(b->f - a->f),		\
		       (unsigned long long)delta->f);			\
	}
	ZCDEV_STATS_FIELDS(ZT_CHECK_FIELD)
#undef ZT_CHECK_FIELD
	for (size_t i = 0; i < sizeof(b->reserved) / sizeof(b->reserved[0]); i++) {
		EXPECT_EQ(0ULL, (unsigned long long)b->reserved[i]);
	}
}

#define DELTA(...) (&(struct zcdev_stats){ __VA_ARGS__ })

/* ---- the stream ---------------------------------------------------------- */

/* write() the next @len stream bytes to @fd; advances wpos by what it took. */
static ssize_t put(FIXTURE_DATA(rw) *self, int fd, size_t len)
{
	ssize_t n;

	zt_fill(self->wbuf, self->wpos, len);
	n = write(fd, self->wbuf, len);
	self->err = errno;
	if (n > 0)
		self->wpos += n;
	return n;
}

/*
 * What a read of @n bytes into rbuf returned, with its errno: checked
 * against the stream at rpos, which moves on past it.
 */
static ssize_t got(FIXTURE_DATA(rw) *self, ssize_t n, int err)
{
	self->err = err;
	self->bad = -1;
	if (n > 0) {
		self->bad = zt_check(self->rbuf, self->rpos, n);
		self->rpos += n;
	}
	return n;
}

/* read() up to @len from @fd and check it against the stream at rpos. */
static ssize_t get(FIXTURE_DATA(rw) *self, int fd, size_t len)
{
	ssize_t n = read(fd, self->rbuf, len);

	return got(self, n, errno);
}

#define PUT(fd, len, expect) do {					\
	size_t rw_len = (len);						\
	ssize_t rw_exp = (expect);					\
	uint64_t rw_at = self->wpos;					\
	ssize_t rw_n = put(self, fd, rw_len);				\
	ASSERT_EQ(rw_exp, rw_n) {					\
		TH_LOG("write(%zu) at stream %llu: %s%s", rw_len,	\
		       (unsigned long long)rw_at,			\
		       rw_n < 0 ? strerror(self->err) : "wrong count",	\
		       self->ctx);					\
	}								\
} while (0)

#define GET(fd, len, expect) do {					\
	size_t rw_len = (len);						\
	ssize_t rw_exp = (expect);					\
	uint64_t rw_at = self->rpos;					\
	ssize_t rw_n = get(self, fd, rw_len);				\
	ASSERT_EQ(rw_exp, rw_n) {					\
		TH_LOG("read(%zu) at stream %llu: %s%s", rw_len,	\
		       (unsigned long long)rw_at,			\
		       rw_n < 0 ? strerror(self->err) : "wrong count",	\
		       self->ctx);					\
	}								\
	ASSERT_EQ(-1, self->bad) {					\
		TH_LOG("stream byte %llu is wrong%s",			\
		       (unsigned long long)(rw_at + self->bad), self->ctx); \
	}								\
} while (0)

/* A call that must fail with @e. */
#define ASSERT_ERRNO(e, call) do {					\
	errno = 0;							\
	long rw_r = (long)(call);					\
	int rw_e = errno;						\
	ASSERT_EQ(-1L, rw_r) {						\
		TH_LOG("%s returned %ld, expected %s", #call, rw_r,	\
		       strerror(e));					\
	}								\
	ASSERT_EQ(e, rw_e) {						\
		TH_LOG("%s: %s, expected %s", #call, strerror(rw_e),	\
		       strerror(e));					\
	}								\
} while (0)

/* Raw calls for deliberately bad buffers, past libc's compile-time checks. */
static long raw_read(int fd, void *buf, size_t len)
{
	return syscall(SYS_read, fd, buf, len);
}

static long raw_write(int fd, const void *buf, size_t len)
{
	return syscall(SYS_write, fd, buf, len);
}

static size_t min_sz(size_t a, size_t b)
{
	return a < b ? a : b;
}

static uint64_t used(FIXTURE_DATA(rw) *self)
{
	return self->wpos - self->rpos;
}

/* A small deterministic generator: the same "random" sizes in every run. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* 1 .. @max, log-uniform: as many tiny calls as page-sized and huge ones. */
static size_t rnd_len(uint64_t *s, size_t max)
{
	uint64_t r = rnd(s);
	unsigned int bits = 1 + (r >> 40) % 20;
	size_t len = 1 + (r & ((1ull << bits) - 1));

	return len > max ? max : len;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * Empty the ring and move head (and tail) to byte @off of the ring by
 * passing filler bytes through it: the next byte written lands there.
 * The filler is not part of the stream.
 */
static int align_head(FIXTURE_DATA(rw) *self, size_t off)
{
	static uint8_t filler[SCRATCH];
	uint64_t head, tail, n;

	if (zt_sysfs_u64("head", &head) || zt_sysfs_u64("tail", &tail) || head != tail)
		return -1;
	n = (off + self->ring - head % self->ring) % self->ring;
	if (n && (write(self->nb, filler, n) != (ssize_t)n ||
		  read(self->nb, filler, n) != (ssize_t)n))
		return -1;
	if (zt_sysfs_u64("head", &head) || head % self->ring != off)
		return -1;
	return 0;
}

#define ALIGN_HEAD(off) ASSERT_EQ(0, align_head(self, off)) {		\
	TH_LOG("cannot put head at ring offset %zu", (size_t)(off));	\
}

static int set_ring(FIXTURE_DATA(rw) *self, uint32_t pages)
{
	if (zt_resize(self->fd, pages))
		return -1;
	self->ring = (size_t)pages * self->pg;
	return 0;
}

/* Close this process's writers: no open file of the device may write. */
static void close_writers(FIXTURE_DATA(rw) *self)
{
	if (self->fd >= 0)
		close(self->fd);
	if (self->nb >= 0)
		close(self->nb);
	self->fd = self->nb = -1;
}

/* ---- helper processes ------------------------------------------------------ */

/*
 * Wait until @pid sleeps inside system call @nr, as /proc/PID/syscall
 * shows it (the kernel only reports the number of a task that is not
 * running). Without that file, give it time instead.
 */
static int wait_blocked_in(pid_t pid, long nr)
{
	char path[64], buf[256], *end;
	double deadline = now() + 20;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/syscall", pid);
	while (now() < deadline) {
		ssize_t n;

		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			if (errno != ENOENT)
				return -1;
			usleep(300 * 1000);
			return 0;
		}
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n > 0) {
			buf[n] = '\0';
			if (strtol(buf, &end, 10) == nr && end != buf && *end == ' ')
				return 0;
		}
		usleep(2000);
	}
	return -1;
}

enum child_op { OP_READ, OP_WRITE, OP_POLL };

struct child_result {
	ssize_t n;	/* what the call returned (revents for OP_POLL) */
	int err;	/* its errno */
	long bad;	/* first wrong byte read, or -1 */
};

/*
 * Fork a process that makes one blocking call and reports it on *@res_fd:
 * OP_READ reads up to @arg bytes and checks them against the stream at
 * rpos, OP_WRITE writes @arg stream bytes from wpos, OP_POLL polls @fd for
 * the events @arg. @close_a/@close_b are descriptors the child must not
 * hold (a writer whose last close the parent means to make), or -1.
 */
static pid_t child_io(FIXTURE_DATA(rw) *self, enum child_op op, int fd,
		      size_t arg, int close_a, int close_b, int *res_fd)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		struct child_result r = { .bad = -1 };
		struct pollfd pfd = { .fd = fd, .events = (short)arg };

		close(p[0]);
		if (close_a >= 0)
			close(close_a);
		if (close_b >= 0)
			close(close_b);
		switch (op) {
		case OP_READ:
			r.n = get(self, fd, arg);
			r.bad = self->bad;
			break;
		case OP_WRITE:
			r.n = put(self, fd, arg);
			break;
		case OP_POLL:
			r.n = poll(&pfd, 1, 20000);
			if (r.n > 0)
				r.n = pfd.revents;
			break;
		}
		r.err = op == OP_POLL ? errno : self->err;
		_exit(write(p[1], &r, sizeof(r)) == sizeof(r) ? 0 : 1);
	}
	close(p[1]);
	self->kids[self->nkids++] = pid;
	*res_fd = p[0];
	return pid;
}

/* 1 if the child has reported within @ms, 0 if not yet. */
static int child_done(int res_fd, int ms)
{
	struct pollfd pfd = { .fd = res_fd, .events = POLLIN };

	return poll(&pfd, 1, ms) > 0;
}

static int child_result(FIXTURE_DATA(rw) *self, pid_t pid, int res_fd,
			struct child_result *r)
{
	int status;
	ssize_t n;

	if (!child_done(res_fd, 20000))
		return -1;
	n = read(res_fd, r, sizeof(*r));
	close(res_fd);
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	for (int i = 0; i < self->nkids; i++)
		if (self->kids[i] == pid)
			self->kids[i] = 0;
	return n == sizeof(*r) && WIFEXITED(status) && !WEXITSTATUS(status) ? 0 : -1;
}

static int reap(FIXTURE_DATA(rw) *self, pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) != pid)
		return -1;
	for (int i = 0; i < self->nkids; i++)
		if (self->kids[i] == pid)
			self->kids[i] = 0;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ---- signals ------------------------------------------------------------- */

/* In shared memory, so a helper process can see the handler has run. */
static volatile int *sig_hits;

static void on_signal(int sig)
{
	(void)sig;
	__atomic_add_fetch(sig_hits, 1, __ATOMIC_SEQ_CST);
}

static int catch_signal(int sig, bool restart)
{
	struct sigaction sa = { .sa_handler = on_signal };

	if (!sig_hits) {
		sig_hits = mmap(NULL, sizeof(*sig_hits), PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (sig_hits == MAP_FAILED)
			return -1;
	}
	*sig_hits = 0;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = restart ? SA_RESTART : 0;
	return sigaction(sig, &sa, NULL);
}

static int hits(void)
{
	return __atomic_load_n(sig_hits, __ATOMIC_SEQ_CST);
}

/*
 * A helper that waits until the test process sleeps in system call @nr,
 * sends it @sig, and, when @then_nr is not -1, waits until the handler
 * has run and the process sleeps in @then_nr again (the call restarted);
 * then it moves @len stream bytes the other way (@op) so the call can
 * finish. It exits 0, or non-zero if anything went wrong.
 */
static pid_t signaller(FIXTURE_DATA(rw) *self, long nr, int sig, long then_nr,
		       enum child_op op, size_t len)
{
	pid_t parent = getpid(), pid;

	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		double deadline = now() + 20;

		/* Signal even if the wait failed, so the test cannot hang. */
		int blocked = wait_blocked_in(parent, nr);

		if (kill(parent, sig))
			_exit(3);
		if (blocked)
			_exit(2);
		if (then_nr < 0)
			_exit(0);
		while (!hits() && now() < deadline)
			usleep(1000);
		if (!hits() || wait_blocked_in(parent, then_nr))
			_exit(4);
		if (op == OP_WRITE)
			_exit(put(self, self->fd, len) == (ssize_t)len ? 0 : 5);
		if (get(self, self->fd, len) != (ssize_t)len || self->bad != -1)
			_exit(6);
		_exit(0);
	}
	self->kids[self->nkids++] = pid;
	return pid;
}

/* ---- the fixture ----------------------------------------------------------- */

FIXTURE_SETUP(rw)
{
	self->fd = self->nb = -1;
	self->bad = -1;
	self->pg = getpagesize();
	self->default_pages = param_u32("ring_pages", 256);

	/* The harness (the newest lane's) runs no body after a setup SKIP(). */
	if (access(zt_dev_path(), F_OK) && errno == ENOENT)
		SKIP(return, "%s is missing: zcdev is not loaded", zt_dev_path());
	self->fd = zt_open(O_RDWR);
	ASSERT_LE(0, self->fd) {
		TH_LOG("open %s: %s", zt_dev_path(), strerror(errno));
	}
	self->nb = zt_open(O_RDWR | O_NONBLOCK);
	ASSERT_LE(0, self->nb);
	ASSERT_EQ(0, zt_fresh_ring(self->fd, SMALL_PAGES)) {
		TH_LOG("RESET + RESIZE(%u): %s", SMALL_PAGES, strerror(errno));
	}
	self->ring = SMALL_PAGES * self->pg;
	self->wbuf = malloc(SCRATCH);
	self->rbuf = malloc(SCRATCH);
	ASSERT_NE(NULL, self->wbuf);
	ASSERT_NE(NULL, self->rbuf);
}

FIXTURE_TEARDOWN(rw)
{
	struct itimerval off = { 0 };
	int fd;

	setitimer(ITIMER_REAL, &off, NULL);
	for (int i = 0; i < self->nkids; i++) {
		if (self->kids[i] <= 0)
			continue;
		kill(self->kids[i], SIGKILL);
		waitpid(self->kids[i], NULL, 0);
	}
	close_writers(self);
	free(self->wbuf);
	free(self->rbuf);

	/* No ASSERT here: in 6.1's harness it would jump back into the test. */
	fd = zt_open(O_RDWR);
	EXPECT_LE(0, fd);
	if (fd < 0)
		return;
	EXPECT_EQ(0, zt_fresh_ring(fd, self->default_pages)) {
		TH_LOG("cannot restore %u pages: %s", self->default_pages,
		       strerror(errno));
	}
	close(fd);
}

/* ---- round trips and short counts ----------------------------------------- */

/*
 * Every byte comes back once, in order, whatever the write and read sizes
 * (1 byte to twice the ring) and wherever the wrap falls inside a call.
 * A non-blocking write takes exactly the free space, a read returns
 * exactly what is there up to its size, blocking or not.
 */
TEST_F(rw, round_trip_at_every_wrap_and_size)
{
	const size_t P = self->pg, R = self->ring;
	const size_t starts[] = {
		0, 1, 2, P - 1, P, P + 1, 2 * P - 3, R - P, R - P + 1, R - 2, R - 1,
	};
	const size_t sizes[] = {
		1, 2, 3, 5, P - 1, P, P + 1, 2 * P - 1, 2 * P + 3,
		R - P - 1, R - 1, R, R + 1, 2 * R - 1, 2 * R,
	};
	const size_t nsizes = sizeof(sizes) / sizeof(sizes[0]);

	for (size_t si = 0; si < sizeof(starts) / sizeof(starts[0]); si++) {
		for (size_t ci = 0; ci < nsizes; ci++) {
			ALIGN_HEAD(starts[si]);
			for (int round = 0; round < 3; round++) {
				size_t c = sizes[ci];
				size_t d = sizes[(ci + si + round + 1) % nsizes];
				/* Blocking calls only where they cannot block. */
				int wfd = (round & 1) && c <= R ? self->fd : self->nb;
				int rfd = (round & 1) ? self->nb : self->fd;
				size_t left = c;

				/* Keep 1-byte reads of huge writes affordable. */
				if (c / d > 64)
					d += c / 64;
				while (left) {
					size_t take = min_sz(left, R - used(self));

					snprintf(self->ctx, sizeof(self->ctx),
						 " (start %zu, write %zu, read %zu, round %d)",
						 starts[si], c, d, round);
					PUT(wfd, left, take);
					left -= take;
					while (used(self)) {
						GET(rfd, d, min_sz(d, used(self)));
					}
				}
			}
			ASSERT_ERRNO(EAGAIN, get(self, self->nb, 1));
		}
	}
}

/*
 * A non-blocking write into a partly full ring takes exactly the free
 * space, wherever the free space wraps; into a full one it takes nothing
 * and fails with EAGAIN.
 */
TEST_F(rw, nonblocking_write_takes_exactly_the_free_space)
{
	const size_t P = self->pg, R = self->ring;
	const size_t starts[] = { 0, 1, P - 1, P, P + 1, R - P, R - 1 };
	const size_t fills[] = { 0, 1, P - 1, P, P + 1, R - P, R - 1, R };

	for (size_t si = 0; si < sizeof(starts) / sizeof(starts[0]); si++) {
		for (size_t fi = 0; fi < sizeof(fills) / sizeof(fills[0]); fi++) {
			struct ring_state st;

			ALIGN_HEAD(starts[si]);
			PUT(self->nb, fills[fi], fills[fi]);
			if (fills[fi] == R) {
				ASSERT_ERRNO(EAGAIN, put(self, self->nb, 1));
			} else {
				PUT(self->nb, R + 1, R - fills[fi]);
			}
			STATE(st);
			ASSERT_EQ(R, st.used);
			/* A read bigger than the data returns the data. */
			GET(self->nb, 2 * R, R);
			ASSERT_ERRNO(EAGAIN, get(self, self->nb, 1));
		}
	}
}

/* Several buffers per call, split anywhere, across the wrap. */
TEST_F(rw, readv_writev_keep_the_stream_across_the_wrap)
{
	const size_t P = self->pg, R = self->ring;
	const size_t wlens[] = { 1, P - 1, 0, 3, P + 2, 77 };
	const size_t rlens[] = { 5, 0, 2 * P - 1, 1, P + 73, 2 };
	struct zcdev_stats a, b;
	struct iovec iov[6];
	size_t total = 0, off = 0;

	for (int i = 0; i < 6; i++)
		total += wlens[i];
	ALIGN_HEAD(R - P - 2);
	STATS(self->fd, a);

	zt_fill(self->wbuf, self->wpos, total);
	for (int i = 0; i < 6; i++) {
		iov[i].iov_base = self->wbuf + off;
		iov[i].iov_len = wlens[i];
		off += wlens[i];
	}
	ASSERT_EQ((ssize_t)total, writev(self->fd, iov, 6));
	self->wpos += total;

	memset(self->rbuf, 0, total);
	off = 0;
	for (int i = 0; i < 6; i++) {
		iov[i].iov_base = self->rbuf + off;
		iov[i].iov_len = rlens[i];
		off += rlens[i];
	}
	ASSERT_EQ((ssize_t)total, readv(self->fd, iov, 6));
	ASSERT_EQ(-1, zt_check(self->rbuf, self->rpos, total));
	self->rpos += total;

	STATS(self->fd, b);
	check_stats(_metadata, &a, &b,
		    DELTA(.bytes_written_copy = total, .bytes_read_copy = total),
		    "writev + readv");
}

/*
 * A user buffer that faults: nothing moves for a wholly bad one; a
 * buffer that goes bad part-way moves a prefix, and the position and the
 * counters account for exactly that prefix (no byte lost or doubled).
 */
TEST_F(rw, faulting_buffers_move_only_what_was_copied)
{
	const size_t P = self->pg;
	struct zcdev_stats a, b;
	struct ring_state s0, s1;
	uint8_t *map;
	ssize_t n;

	/* One good page followed by a hole. */
	map = mmap(NULL, 2 * P, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, map);
	ASSERT_EQ(0, munmap(map + P, P));

	ALIGN_HEAD(P / 2);
	PUT(self->nb, 100, 100);
	STATS(self->fd, a);
	STATE(s0);
	ASSERT_ERRNO(EFAULT, raw_read(self->nb, NULL, 10));
	ASSERT_ERRNO(EFAULT, raw_write(self->nb, NULL, 10));
	ASSERT_ERRNO(EFAULT, raw_read(self->nb, map + P, 10));
	ASSERT_ERRNO(EFAULT, raw_write(self->nb, (void *)1, 10));
	STATE(s1);
	ASSERT_SAME_STATE(s0, s1);
	STATS(self->fd, b);
	check_stats(_metadata, &a, &b, DELTA(0), "faulting calls");
	GET(self->nb, 100, 100);

	/* write(): the good page goes in, the hole stops it. */
	zt_fill(map, self->wpos, P);
	STATS(self->fd, a);
	n = raw_write(self->nb, map, 2 * P);
	ASSERT_LT(0, n) {
		TH_LOG("write of a half-bad buffer: %s", strerror(errno));
	}
	ASSERT_GE((ssize_t)P, n);
	self->wpos += n;
	STATE(s1);
	ASSERT_EQ((uint64_t)n, s1.used);
	STATS(self->fd, b);
	check_stats(_metadata, &a, &b, DELTA(.bytes_written_copy = n),
		    "half-bad write");
	GET(self->nb, 2 * P, n);

	/* read(): the good page is filled, the rest stays in the ring. */
	PUT(self->nb, 2 * P, 2 * P);
	STATS(self->fd, a);
	n = raw_read(self->nb, map, 2 * P);
	ASSERT_LT(0, n) {
		TH_LOG("read into a half-bad buffer: %s", strerror(errno));
	}
	ASSERT_GE((ssize_t)P, n);
	ASSERT_EQ(-1, zt_check(map, self->rpos, n));
	self->rpos += n;
	STATS(self->fd, b);
	check_stats(_metadata, &a, &b, DELTA(.bytes_read_copy = n),
		    "half-bad read");
	GET(self->nb, 2 * P, 2 * P - n);
	munmap(map, P);
}

/* A length far beyond the data or the ring moves only what there is. */
TEST_F(rw, huge_lengths_move_only_what_there_is)
{
	const size_t R = self->ring;
	struct ring_state s0, s1;

	PUT(self->nb, 100, 100);
	STATE(s0);
	/* The VFS refuses a length the address space cannot hold. */
	errno = 0;
	ASSERT_EQ(-1, raw_read(self->fd, self->rbuf, SIZE_MAX));
	ASSERT_TRUE(errno == EFAULT || errno == EINVAL);
	STATE(s1);
	ASSERT_SAME_STATE(s0, s1);

	/* 1 GiB asked for, 100 bytes there (the buffer holds them). */
	GET(self->fd, 1u << 30, 100);
	/* 1 GiB offered, the ring takes its capacity. */
	zt_fill(self->wbuf, self->wpos, R);
	ASSERT_EQ((long)R, raw_write(self->nb, self->wbuf, 1u << 30));
	self->wpos += R;
	GET(self->nb, 1u << 30, R);
}

/* ---- blocking ---------------------------------------------------------- */

/* A read sleeps while the ring is empty and a writer exists (ours). */
TEST_F(rw, read_blocks_while_empty_and_a_writer_is_open)
{
	struct child_result r;
	int res;
	pid_t pid;

	pid = child_io(self, OP_READ, self->fd, 1000, -1, -1, &res);
	ASSERT_LT(0, pid);
	ASSERT_EQ(0, wait_blocked_in(pid, SYS_read)) {
		TH_LOG("the reader never slept in read()");
	}
	ASSERT_EQ(0, child_done(res, 200)) {
		TH_LOG("read() returned on an empty ring with a writer open");
	}
	PUT(self->nb, 100, 100);
	ASSERT_EQ(0, child_result(self, pid, res, &r));
	ASSERT_EQ(100, r.n) {
		TH_LOG("the reader got %zd (%s)", r.n, strerror(r.err));
	}
	ASSERT_EQ(-1, r.bad);
	self->rpos += r.n;
	ASSERT_ERRNO(EAGAIN, get(self, self->nb, 1));
}

/*
 * A write sleeps while the ring is full, and goes on sleeping until all
 * of it is in: it does not return short for want of space.
 */
TEST_F(rw, write_blocks_while_full_until_all_is_in)
{
	const size_t P = self->pg, R = self->ring;
	struct child_result r;
	struct ring_state st;
	int res;
	pid_t pid;

	PUT(self->nb, R, R);
	pid = child_io(self, OP_WRITE, self->fd, P + 10, -1, -1, &res);
	ASSERT_LT(0, pid);
	ASSERT_EQ(0, wait_blocked_in(pid, SYS_write)) {
		TH_LOG("the writer never slept in write()");
	}
	ASSERT_EQ(0, child_done(res, 200));
	STATE(st);
	ASSERT_EQ(R, st.used);

	/* Room for one page: the writer takes it and sleeps again. */
	GET(self->nb, P, P);
	ASSERT_EQ(0, wait_blocked_in(pid, SYS_write));
	ASSERT_EQ(0, child_done(res, 200)) {
		TH_LOG("write() returned short while it could still block");
	}
	STATE(st);
	ASSERT_EQ(R, st.used);

	GET(self->nb, P, P);
	ASSERT_EQ(0, child_result(self, pid, res, &r));
	ASSERT_EQ((ssize_t)(P + 10), r.n) {
		TH_LOG("the writer got %zd (%s)", r.n, strerror(r.err));
	}
	self->wpos += r.n;
	GET(self->nb, 2 * R, R - 2 * P + P + 10);
}

TEST_F(rw, nonblocking_read_of_empty_ring_is_eagain)
{
	int rd;

	ASSERT_ERRNO(EAGAIN, get(self, self->nb, 1));
	ASSERT_ERRNO(EAGAIN, get(self, self->nb, 1 << 20));
	/* Also on a read-only file, as long as some writer is open. */
	rd = zt_open(O_RDONLY | O_NONBLOCK);
	ASSERT_LE(0, rd);
	ASSERT_ERRNO(EAGAIN, get(self, rd, 10));
	close(rd);
}

TEST_F(rw, nonblocking_write_to_full_ring_is_eagain_and_writes_nothing)
{
	const size_t R = self->ring;
	struct zcdev_stats a, b;
	struct ring_state s0, s1;

	ALIGN_HEAD(3);
	PUT(self->nb, R, R);
	STATS(self->fd, a);
	STATE(s0);
	ASSERT_ERRNO(EAGAIN, put(self, self->nb, 1));
	ASSERT_ERRNO(EAGAIN, put(self, self->nb, R));
	STATE(s1);
	ASSERT_SAME_STATE(s0, s1);
	ASSERT_EQ(R, s1.used);
	STATS(self->fd, b);
	check_stats(_metadata, &a, &b, DELTA(0), "EAGAIN writes");
	GET(self->nb, 2 * R, R);
	ASSERT_ERRNO(EAGAIN, get(self, self->nb, 1));
}

/* pwritev2() / preadv2() at the current position, with RWF_NOWAIT. */
static ssize_t put_nowait(FIXTURE_DATA(rw) *self, int fd, size_t len)
{
	struct iovec iov = { .iov_base = self->wbuf, .iov_len = len };
	ssize_t n;

	zt_fill(self->wbuf, self->wpos, len);
	n = pwritev2(fd, &iov, 1, -1, RWF_NOWAIT);
	self->err = errno;
	if (n > 0)
		self->wpos += n;
	return n;
}

static ssize_t get_nowait(FIXTURE_DATA(rw) *self, int fd, size_t len)
{
	struct iovec iov = { .iov_base = self->rbuf, .iov_len = len };
	ssize_t n;

	n = preadv2(fd, &iov, 1, -1, RWF_NOWAIT);
	return got(self, n, errno);
}

/*
 * RWF_NOWAIT (what io_uring asks first) on a blocking file: EAGAIN where
 * read() or write() would sleep, the data or the space otherwise, and an
 * EAGAIN write moves nothing.
 */
TEST_F(rw, rwf_nowait_is_eagain_instead_of_sleeping)
{
	const size_t R = self->ring;
	struct ring_state s0, s1;
	ssize_t n;

	ASSERT_ERRNO(EAGAIN, get_nowait(self, self->fd, 1));
	PUT(self->fd, 100, 100);
	n = get_nowait(self, self->fd, R);
	ASSERT_EQ(100, n) {
		TH_LOG("RWF_NOWAIT read with 100 bytes in the ring: %s",
		       n < 0 ? strerror(self->err) : "wrong count");
	}
	ASSERT_EQ(-1, self->bad);

	ALIGN_HEAD(5);
	n = put_nowait(self, self->fd, R);
	ASSERT_EQ((ssize_t)R, n) {
		TH_LOG("RWF_NOWAIT write into an empty ring: %s",
		       n < 0 ? strerror(self->err) : "wrong count");
	}
	STATE(s0);
	ASSERT_ERRNO(EAGAIN, put_nowait(self, self->fd, 1));
	STATE(s1);
	ASSERT_SAME_STATE(s0, s1);
	GET(self->fd, R, R);
}

/* ---- end of file ----------------------------------------------------------- */

TEST_F(rw, read_is_eof_when_empty_and_no_writer)
{
	uint64_t writers;
	int rd, rdnb;

	close_writers(self);
	ASSERT_EQ(0, zt_sysfs_u64("writers", &writers));
	ASSERT_EQ(0ULL, (unsigned long long)writers) {
		TH_LOG("another process holds /dev/zcdev open for writing");
	}
	rd = zt_open(O_RDONLY);
	ASSERT_LE(0, rd);
	ASSERT_EQ(0, get(self, rd, 100));
	ASSERT_EQ(0, get(self, rd, 100));
	/* End of file wins over EAGAIN. */
	rdnb = zt_open(O_RDONLY | O_NONBLOCK);
	ASSERT_LE(0, rdnb);
	ASSERT_EQ(0, get(self, rdnb, 100));
	close(rdnb);
	close(rd);
}

/* Bytes written before the last writer closed are still read, then EOF. */
TEST_F(rw, data_outlives_the_last_writer_then_eof)
{
	const size_t P = self->pg;
	int rd;

	ALIGN_HEAD(self->ring - P - 1);
	PUT(self->fd, 2 * P + 5, 2 * P + 5);
	close_writers(self);
	rd = zt_open(O_RDONLY);
	ASSERT_LE(0, rd);
	GET(rd, P, P);
	GET(rd, 10 * P, P + 5);
	ASSERT_EQ(0, get(self, rd, 100));
	close(rd);
}

/* A sleeping reader wakes up with 0 when the last writer goes, not before. */
TEST_F(rw, blocked_reader_wakes_with_eof_when_the_last_writer_closes)
{
	struct child_result r;
	int w1, w2, rd, res;
	pid_t pid;

	close_writers(self);
	w1 = zt_open(O_WRONLY);
	w2 = zt_open(O_WRONLY);
	rd = zt_open(O_RDONLY);
	ASSERT_LE(0, w1);
	ASSERT_LE(0, w2);
	ASSERT_LE(0, rd);

	pid = child_io(self, OP_READ, rd, 100, w1, w2, &res);
	ASSERT_LT(0, pid);
	ASSERT_EQ(0, wait_blocked_in(pid, SYS_read));
	close(w1);
	ASSERT_EQ(0, child_done(res, 200)) {
		TH_LOG("the reader woke up while a writer was still open");
	}
	ASSERT_EQ(0, wait_blocked_in(pid, SYS_read));
	close(w2);
	ASSERT_EQ(0, child_result(self, pid, res, &r));
	ASSERT_EQ(0, r.n) {
		TH_LOG("the reader got %zd (%s), expected end of file",
		       r.n, strerror(r.err));
	}
	close(rd);
}

/* ---- two processes ----------------------------------------------------------- */

/*
 * 64 MiB from one process to another through the default ring, in sizes
 * from 1 byte to 256 KiB on both sides: every byte arrives once, in
 * order, and the counters say exactly 64 MiB each way.
 */
TEST_F_TIMEOUT(rw, fork_producer_consumer_64mib_in_order, 120)
{
	const size_t total = 64u << 20, max = 256u << 10;
	struct zcdev_stats a, b;
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	double t0, t1;
	size_t done = 0;
	int rd, w, status;
	pid_t pid;

	ASSERT_EQ(0, set_ring(self, self->default_pages));
	STATS(self->fd, a);
	close_writers(self);
	rd = zt_open(O_RDONLY);
	w = zt_open(O_WRONLY);
	ASSERT_LE(0, rd);
	ASSERT_LE(0, w);

	t0 = now();
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		uint64_t s = seed ^ 1;

		close(rd);
		while (self->wpos < total) {
			size_t len = min_sz(rnd_len(&s, max), total - self->wpos);

			if (put(self, w, len) != (ssize_t)len)
				_exit(1);
		}
		_exit(0);
	}
	self->kids[self->nkids++] = pid;
	/* Only the producer holds a writer now: its exit is our EOF. */
	close(w);

	for (;;) {
		ssize_t n = get(self, rd, rnd_len(&seed, max));

		ASSERT_LE(0, n) {
			TH_LOG("read at %zu: %s", done, strerror(self->err));
		}
		if (!n)
			break;
		ASSERT_EQ(-1, self->bad) {
			TH_LOG("stream byte %zu is wrong", done + self->bad);
		}
		done += n;
		ASSERT_GE(total, done);
	}
	t1 = now();
	ASSERT_EQ(total, done);
	status = reap(self, pid);
	ASSERT_EQ(0, status);
	TH_LOG("64 MiB in %.2f s (%.0f MB/s)", t1 - t0, total / (t1 - t0) / 1e6);

	STATS(rd, b);
	check_stats(_metadata, &a, &b,
		    DELTA(.bytes_written_copy = total, .bytes_read_copy = total),
		    "64 MiB stream");
	close(rd);
}

/*
 * Two writers and two readers at once, moving whole pages with the ring
 * on page boundaries (so every write and read step is one whole page):
 * each page arrives intact, exactly once, and every reader sees each
 * writer's pages in the order they were written.
 */
#define MIX_PROCS	2
#define MIX_PAGES	1024

struct mix_board {
	int seen[MIX_PROCS][MIX_PAGES];	/* times each page was read */
	int disorder;			/* a reader saw a writer's pages out of order */
	int torn;			/* a page read did not hold one record */
};

static uint64_t mix_base(uint64_t writer, uint64_t seq, size_t pg)
{
	return (writer << 40) + seq * pg;
}

TEST_F_TIMEOUT(rw, concurrent_writers_and_readers_move_each_page_once, 90)
{
	const size_t P = self->pg;
	struct mix_board *board;
	pid_t pids[2 * MIX_PROCS];
	int w, rd;

	ASSERT_EQ(0, set_ring(self, 16));
	ALIGN_HEAD(0);
	board = mmap(NULL, sizeof(*board), PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, board);
	close_writers(self);
	rd = zt_open(O_RDONLY);
	w = zt_open(O_WRONLY);
	ASSERT_LE(0, rd);
	ASSERT_LE(0, w);

	for (int i = 0; i < 2 * MIX_PROCS; i++) {
		pids[i] = fork();
		ASSERT_LE(0, pids[i]);
		if (pids[i]) {
			self->kids[self->nkids++] = pids[i];
			continue;
		}
		if (i < MIX_PROCS) {
			/* Writer i: page seq holds (i, seq) and the stream at its base. */
			close(rd);
			for (uint64_t seq = 0; seq < MIX_PAGES; seq++) {
				uint64_t hdr[2] = { i, seq };

				zt_fill(self->wbuf, mix_base(i, seq, P), P);
				memcpy(self->wbuf, hdr, sizeof(hdr));
				if (write(w, self->wbuf, P) != (ssize_t)P)
					_exit(1);
			}
		} else {
			int64_t last[MIX_PROCS];

			close(w);
			for (int k = 0; k < MIX_PROCS; k++)
				last[k] = -1;
			for (;;) {
				uint64_t hdr[2];
				ssize_t n = read(rd, self->rbuf, P);

				if (n == 0)
					break;
				memcpy(hdr, self->rbuf, sizeof(hdr));
				if (n != (ssize_t)P || hdr[0] >= MIX_PROCS ||
				    hdr[1] >= MIX_PAGES ||
				    zt_check(self->rbuf + sizeof(hdr),
					     mix_base(hdr[0], hdr[1], P) + sizeof(hdr),
					     P - sizeof(hdr)) != -1) {
					__atomic_add_fetch(&board->torn, 1, __ATOMIC_SEQ_CST);
					continue;
				}
				if ((int64_t)hdr[1] <= last[hdr[0]])
					__atomic_add_fetch(&board->disorder, 1, __ATOMIC_SEQ_CST);
				last[hdr[0]] = hdr[1];
				__atomic_add_fetch(&board->seen[hdr[0]][hdr[1]], 1,
						   __ATOMIC_SEQ_CST);
			}
		}
		_exit(0);
	}
	/* The writers' exits are the readers' EOF. */
	close(w);
	close(rd);
	for (int i = 0; i < 2 * MIX_PROCS; i++) {
		ASSERT_EQ(0, reap(self, pids[i])) {
			TH_LOG("%s %d failed", i < MIX_PROCS ? "writer" : "reader", i);
		}
	}
	EXPECT_EQ(0, board->torn);
	EXPECT_EQ(0, board->disorder);
	for (int k = 0; k < MIX_PROCS; k++) {
		for (int s = 0; s < MIX_PAGES; s++) {
			ASSERT_EQ(1, board->seen[k][s]) {
				TH_LOG("writer %d's page %d was read %d times",
				       k, s, board->seen[k][s]);
			}
		}
	}
	munmap(board, sizeof(*board));
}

/* ---- sendfile: splice out by reference --------------------------------------- */

/* Ring pages spanned by the bytes [pos, pos + len) of the ring. */
static uint64_t pages_spanned(uint64_t pos, uint64_t len, size_t pg)
{
	return (pos + len - 1) / pg - pos / pg + 1;
}

/*
 * sendfile() to a regular file moves the bytes by reference (the splice
 * counters move, the copy counters do not) and stops at end of file.
 */
TEST_F(rw, sendfile_to_a_file_delivers_the_stream)
{
	const size_t P = self->pg, R = self->ring, n = R - 100;
	char path[] = "/tmp/zcdev-rw-XXXXXX";
	struct zcdev_stats a, b;
	struct ring_state st;
	uint64_t tail;
	ssize_t got;
	int out, rd;

	ALIGN_HEAD(R - P / 2 - 3);
	PUT(self->nb, n, n);
	out = mkstemp(path);
	ASSERT_LE(0, out) {
		TH_LOG("mkstemp in /tmp: %s", strerror(errno));
	}
	unlink(path);

	STATE(st);
	tail = st.tail;
	STATS(self->fd, a);
	got = sendfile(out, self->fd, NULL, n);
	ASSERT_EQ((ssize_t)n, got) {
		TH_LOG("sendfile: %s", got < 0 ? strerror(errno) : "short");
	}
	STATS(self->fd, b);
	/* How many pipe buffers the VFS asked for is its business: at least one per page. */
	ASSERT_LE(pages_spanned(tail, n, P), b.pages_spliced_out - a.pages_spliced_out);
	b.pages_spliced_out = a.pages_spliced_out;
	check_stats(_metadata, &a, &b, DELTA(.bytes_spliced_out = n), "sendfile to a file");
	STATE(st);
	ASSERT_EQ(0ULL, (unsigned long long)st.used);

	ASSERT_EQ((ssize_t)n, pread(out, self->rbuf, R, 0));
	ASSERT_EQ(-1, zt_check(self->rbuf, self->rpos, n));
	self->rpos += n;

	/* With no writer, sendfile stops at end of file. */
	PUT(self->nb, 123, 123);
	close_writers(self);
	rd = zt_open(O_RDONLY);
	ASSERT_LE(0, rd);
	ASSERT_EQ(123, sendfile(out, rd, NULL, 10 * R));
	ASSERT_EQ(0, sendfile(out, rd, NULL, 10 * R));
	ASSERT_EQ(123, pread(out, self->rbuf, 1000, n));
	ASSERT_EQ(-1, zt_check(self->rbuf, self->rpos, 123));
	self->rpos += 123;
	close(rd);
	close(out);
}

/*
 * sendfile() to a pipe lends one pipe buffer per ring page piece, and
 * the pipe keeps the bytes it was given even when the ring writes over
 * their slots before the pipe is read: those slots get fresh pages.
 */
TEST_F(rw, sendfile_to_a_pipe_keeps_its_bytes_when_the_ring_moves_on)
{
	const size_t P = self->pg, R = self->ring, n = R - 100;
	struct zcdev_stats a, b;
	struct ring_state st;
	uint64_t tail, sent_at;
	int p[2];

	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	ALIGN_HEAD(P / 2 + 1);
	PUT(self->nb, n, n);
	STATE(st);
	tail = st.tail;
	STATS(self->fd, a);
	ASSERT_EQ((ssize_t)n, sendfile(p[1], self->fd, NULL, n)) {
		TH_LOG("sendfile: %s", strerror(errno));
	}
	STATS(self->fd, b);
	check_stats(_metadata, &a, &b,
		    DELTA(.bytes_spliced_out = n,
			  .pages_spliced_out = pages_spanned(tail, n, P)),
		    "sendfile to a pipe");
	sent_at = self->rpos;
	self->rpos += n;

	/* Write over every slot while the pipe still holds the pages. */
	PUT(self->nb, R, R);
	STATS(self->fd, a);
	ASSERT_EQ(b.page_swaps + SMALL_PAGES, a.page_swaps) {
		TH_LOG("expected one page swap per lent slot");
	}
	GET(self->nb, R, R);

	ASSERT_EQ((ssize_t)n, read(p[0], self->rbuf, R));
	ASSERT_EQ(-1, zt_check(self->rbuf, sent_at, n)) {
		TH_LOG("the pipe's bytes changed after the ring moved on");
	}
	close(p[0]);
	close(p[1]);
}

struct receiver {
	int sock;
	size_t len;
	uint64_t pos;	/* stream position of its first byte */
	size_t got;
	long bad;
};

static void *receive(void *arg)
{
	struct receiver *rx = arg;
	uint8_t *buf = malloc(1 << 16);

	rx->bad = -1;
	while (buf && rx->got < rx->len) {
		ssize_t n = read(rx->sock, buf, 1 << 16);
		long bad;

		if (n <= 0)
			break;
		bad = zt_check(buf, rx->pos + rx->got, n);
		if (bad >= 0 && rx->bad < 0)
			rx->bad = rx->got + bad;
		rx->got += n;
	}
	free(buf);
	return NULL;
}

/*
 * sendfile() to a TCP socket on 127.0.0.1: the peer reads the stream
 * intact, even though the ring is refilled while the socket may still
 * hold the pages it sent.
 */
TEST_F(rw, sendfile_to_a_tcp_socket_delivers_the_stream)
{
	const size_t R = self->ring, each = R - 37, rounds = 8;
	struct sockaddr_in addr = { .sin_family = AF_INET };
	socklen_t alen = sizeof(addr);
	struct receiver rx = { 0 };
	struct zcdev_stats a, b;
	int lsock, csock;
	pthread_t thread;

	ASSERT_EQ(0, zt_loopback_up()) {
		TH_LOG("cannot bring lo up: %s", strerror(errno));
	}
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lsock = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_LE(0, lsock);
	ASSERT_EQ(0, bind(lsock, (struct sockaddr *)&addr, sizeof(addr)));
	ASSERT_EQ(0, listen(lsock, 1));
	ASSERT_EQ(0, getsockname(lsock, (struct sockaddr *)&addr, &alen));
	csock = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_LE(0, csock);
	ASSERT_EQ(0, connect(csock, (struct sockaddr *)&addr, sizeof(addr))) {
		TH_LOG("connect to 127.0.0.1: %s", strerror(errno));
	}
	rx.sock = accept4(lsock, NULL, NULL, SOCK_CLOEXEC);
	ASSERT_LE(0, rx.sock);
	rx.len = rounds * each;
	rx.pos = self->rpos;
	ASSERT_EQ(0, pthread_create(&thread, NULL, receive, &rx));

	ALIGN_HEAD(R / 2 + 5);
	STATS(self->fd, a);
	for (size_t i = 0; i < rounds; i++) {
		size_t left = each;

		PUT(self->nb, each, each);
		while (left) {
			ssize_t n = sendfile(csock, self->fd, NULL, left);

			ASSERT_LT(0, n) {
				TH_LOG("sendfile to TCP: %s", strerror(errno));
			}
			left -= n;
		}
	}
	self->rpos += rounds * each;
	ASSERT_EQ(0, pthread_join(thread, NULL));
	ASSERT_EQ(rx.len, rx.got);
	ASSERT_EQ(-1, rx.bad) {
		TH_LOG("stream byte %ld is wrong on the socket", rx.bad);
	}
	STATS(self->fd, b);
	ASSERT_EQ(rounds * each, b.bytes_spliced_out - a.bytes_spliced_out);
	ASSERT_EQ(0ULL, (unsigned long long)(b.bytes_read_copy - a.bytes_read_copy));
	close(csock);
	close(rx.sock);
	close(lsock);
}

/* ---- poll ---------------------------------------------------------------- */

static short revents(int fd, short events)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int n = poll(&pfd, 1, 0);

	return n < 0 ? -1 : n == 0 ? 0 : pfd.revents;
}

#define RW_EVENTS (POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM)
#define IN_BITS (POLLIN | POLLRDNORM)
#define OUT_BITS (POLLOUT | POLLWRNORM)

TEST_F(rw, poll_in_iff_data_out_iff_space)
{
	const size_t R = self->ring;

	ALIGN_HEAD(R - 1);
	EXPECT_EQ(OUT_BITS, revents(self->fd, RW_EVENTS));
	PUT(self->nb, 1, 1);
	EXPECT_EQ(IN_BITS | OUT_BITS, revents(self->fd, RW_EVENTS));
	PUT(self->nb, R, R - 1);
	EXPECT_EQ(IN_BITS, revents(self->fd, RW_EVENTS));
	GET(self->nb, 1, 1);
	EXPECT_EQ(IN_BITS | OUT_BITS, revents(self->fd, RW_EVENTS));
	GET(self->nb, R, R - 1);
	EXPECT_EQ(OUT_BITS, revents(self->fd, RW_EVENTS));

	/*
	 * No ring at all: no data, and no space ever, which write() reports
	 * at once with ENOSPC: poll says EPOLLOUT | EPOLLERR, as a pipe with
	 * no reader does.
	 */
	ASSERT_EQ(0, set_ring(self, 0));
	EXPECT_EQ(OUT_BITS | POLLERR, revents(self->fd, RW_EVENTS | POLLERR));
}

TEST_F(rw, poll_hup_iff_empty_and_no_writer)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int rd, w, ep;

	close_writers(self);
	rd = zt_open(O_RDONLY);
	ASSERT_LE(0, rd);
	EXPECT_EQ(POLLHUP, revents(rd, POLLIN));
	ep = epoll_create1(EPOLL_CLOEXEC);
	ASSERT_LE(0, ep);
	ASSERT_EQ(0, epoll_ctl(ep, EPOLL_CTL_ADD, rd, &ev));
	ASSERT_EQ(1, epoll_wait(ep, &ev, 1, 0));
	EXPECT_EQ((uint32_t)EPOLLHUP, ev.events);

	w = zt_open(O_WRONLY);
	ASSERT_LE(0, w);
	EXPECT_EQ(0, revents(rd, POLLIN));
	PUT(w, 10, 10);
	EXPECT_EQ(POLLIN, revents(rd, POLLIN));
	close(w);
	/* Data left: readable, not hung up yet. */
	EXPECT_EQ(POLLIN, revents(rd, POLLIN));
	GET(rd, 100, 10);
	EXPECT_EQ(POLLHUP, revents(rd, POLLIN));
	ASSERT_EQ(1, epoll_wait(ep, &ev, 1, 0));
	EXPECT_EQ((uint32_t)EPOLLHUP, ev.events);
	ASSERT_EQ(0, get(self, rd, 100));
	close(ep);
	close(rd);
}

/* poll() sleeps and is woken by data, by space, and by the last writer closing. */
TEST_F(rw, poll_sleepers_wake_on_data_space_and_hangup)
{
	const size_t R = self->ring;
	struct child_result r;
	int w, rd, res;
	pid_t pid;

	/* Space: a full ring, then one byte read. */
	PUT(self->nb, R, R);
	pid = child_io(self, OP_POLL, self->fd, POLLOUT, -1, -1, &res);
	ASSERT_LT(0, pid);
	ASSERT_EQ(0, wait_blocked_in(pid, SYS_poll));
	ASSERT_EQ(0, child_done(res, 100));
	GET(self->nb, 1, 1);
	ASSERT_EQ(0, child_result(self, pid, res, &r));
	EXPECT_EQ(POLLOUT, r.n);
	GET(self->nb, R, R - 1);

	/* Data, then hangup, on a reader with no writer of its own. */
	close_writers(self);
	w = zt_open(O_WRONLY);
	rd = zt_open(O_RDONLY);
	ASSERT_LE(0, w);
	ASSERT_LE(0, rd);
	pid = child_io(self, OP_POLL, rd, POLLIN, w, -1, &res);
	ASSERT_LT(0, pid);
	ASSERT_EQ(0, wait_blocked_in(pid, SYS_poll));
	ASSERT_EQ(0, child_done(res, 100));
	PUT(w, 1, 1);
	ASSERT_EQ(0, child_result(self, pid, res, &r));
	EXPECT_EQ(POLLIN, r.n);
	GET(rd, 1, 1);

	pid = child_io(self, OP_POLL, rd, POLLIN, w, -1, &res);
	ASSERT_LT(0, pid);
	ASSERT_EQ(0, wait_blocked_in(pid, SYS_poll));
	ASSERT_EQ(0, child_done(res, 100));
	close(w);
	ASSERT_EQ(0, child_result(self, pid, res, &r));
	EXPECT_EQ(POLLHUP, r.n);
	close(rd);
}

/* ---- ioctls ---------------------------------------------------------------- */

TEST_F(rw, get_info_describes_the_ring)
{
	struct zcdev_info info;
	uint32_t max = param_u32("max_ring_pages", 0);

	for (uint32_t pages = SMALL_PAGES; pages <= 16; pages += 12) {
		ASSERT_EQ(0, set_ring(self, pages));
		memset(&info, 0xa5, sizeof(info));
		ASSERT_EQ(0, zt_info(self->fd, &info));
		EXPECT_EQ(ZCDEV_ABI_VERSION, info.abi_version);
		EXPECT_EQ((uint32_t)getpagesize(), info.page_size);
		EXPECT_EQ(pages, info.ring_pages);
		EXPECT_NE(0U, info.max_ring_pages);
		if (max)
			EXPECT_EQ(max, info.max_ring_pages);
		EXPECT_LE(info.ring_pages, info.max_ring_pages);
		EXPECT_EQ(0ULL, (unsigned long long)info.meta_offset);
		EXPECT_EQ((uint64_t)getpagesize(), info.data_offset);
		EXPECT_EQ((uint64_t)pages * getpagesize(), info.ring_bytes);
		/* Ring 0 is /dev/zcdev, which the fixture opens. */
		EXPECT_EQ(0U, info.ring);
		EXPECT_LE(info.ring_pages, info.max_total_pages);
		for (int i = 0; i < 3; i++) {
			EXPECT_EQ(0ULL, (unsigned long long)info.reserved[i]);
		}
	}
	/* Any open may ask, whatever its mode. */
	close_writers(self);
	self->fd = zt_open(O_RDONLY);
	ASSERT_LE(0, self->fd);
	EXPECT_EQ(0, zt_info(self->fd, &info));
	close(self->fd);
	self->fd = zt_open(O_WRONLY);
	ASSERT_LE(0, self->fd);
	EXPECT_EQ(0, zt_info(self->fd, &info));
}

TEST_F(rw, get_stats_zeroes_reserved_and_counts_held_pages)
{
	struct zcdev_stats st;

	memset(&st, 0xa5, sizeof(st));
	ASSERT_EQ(0, zt_stats(self->fd, &st));
	EXPECT_EQ((uint64_t)SMALL_PAGES, st.pages_held);
	for (size_t i = 0; i < sizeof(st.reserved) / sizeof(st.reserved[0]); i++) {
		EXPECT_EQ(0ULL, (unsigned long long)st.reserved[i]);
	}
	close_writers(self);
	self->fd = zt_open(O_RDONLY);
	ASSERT_LE(0, self->fd);
	EXPECT_EQ(0, zt_stats(self->fd, &st));
}

/*
 * Every ioctl that takes a pointer fails with EFAULT for a bad one, and
 * nothing about the ring changes.
 */
TEST_F(rw, bad_ioctl_pointers_are_efault_and_change_nothing)
{
	const size_t P = self->pg;
	const unsigned long cmds[] = {
		ZCDEV_IOC_GET_INFO, ZCDEV_IOC_GET_STATS, ZCDEV_IOC_RESIZE,
		ZCDEV_IOC_PRODUCE, ZCDEV_IOC_CONSUME,
	};
	struct zcdev_stats a, b;
	struct ring_state s0, s1;
	uint8_t *ro, *gone, *edge;
	void *bad[6];

	ro = mmap(NULL, P, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	gone = mmap(NULL, P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	edge = mmap(NULL, 2 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, ro);
	ASSERT_NE(MAP_FAILED, gone);
	ASSERT_NE(MAP_FAILED, edge);
	ASSERT_EQ(0, munmap(gone, P));
	ASSERT_EQ(0, munmap(edge + P, P));
	bad[0] = NULL;
	bad[1] = (void *)1;
	bad[2] = gone;
	bad[3] = edge + P - 2;			/* straddles into the hole */
	bad[4] = (void *)0xffffffff81000000ul;	/* kernel text */
	bad[5] = ro;				/* cannot be written */

	PUT(self->nb, 1000, 1000);
	GET(self->nb, 10, 10);
	STATS(self->fd, a);
	STATE(s0);
	for (size_t c = 0; c < sizeof(cmds) / sizeof(cmds[0]); c++) {
		for (int i = 0; i < 6; i++) {
			bool writes_user = _IOC_DIR(cmds[c]) & _IOC_READ;

			/* A read-only page is a good pointer to read from. */
			if (i == 5 && !writes_user)
				continue;
			errno = 0;
			EXPECT_EQ(-1, ioctl(self->fd, cmds[c], bad[i])) {
				TH_LOG("ioctl %#lx with pointer %p succeeded",
				       cmds[c], bad[i]);
			}
			EXPECT_EQ(EFAULT, errno) {
				TH_LOG("ioctl %#lx with pointer %p: %s",
				       cmds[c], bad[i], strerror(errno));
			}
		}
	}
	STATE(s1);
	ASSERT_SAME_STATE(s0, s1);
	STATS(self->fd, b);
	check_stats(_metadata, &a, &b, DELTA(0), "EFAULT ioctls");
	GET(self->nb, 2000, 990);
	munmap(ro, P);
	munmap(edge, P);
}

/*
 * An ioctl number zcdev does not have, or one of its numbers with another
 * size or direction encoded, is ENOTTY: never a near miss of a real one.
 */
TEST_F(rw, unknown_or_missized_ioctl_is_enotty)
{
	struct bigger { struct zcdev_info info; __u64 extra; };
	const unsigned long cmds[] = {
		_IO(ZCDEV_IOC_MAGIC, 0x06),
		_IO(ZCDEV_IOC_MAGIC, 0xff),
		_IOR(ZCDEV_IOC_MAGIC, 0x06, struct zcdev_info),
		_IOR(ZCDEV_IOC_MAGIC, 0x00, struct bigger),	/* GET_INFO, too big */
		_IOR(ZCDEV_IOC_MAGIC, 0x00, __u32),		/* GET_INFO, too small */
		_IOWR(ZCDEV_IOC_MAGIC, 0x00, struct zcdev_info), /* GET_INFO, both ways */
		_IOR(ZCDEV_IOC_MAGIC, 0x01, struct zcdev_info),	/* GET_STATS, wrong size */
		_IOW(ZCDEV_IOC_MAGIC, 0x02, __u64),		/* RESIZE, too big */
		_IOR(ZCDEV_IOC_MAGIC, 0x02, __u32),		/* RESIZE, wrong way */
		_IO(ZCDEV_IOC_MAGIC, 0x02),			/* RESIZE, no size */
		_IOW(ZCDEV_IOC_MAGIC, 0x03, int),		/* RESET with a size */
		_IOW(ZCDEV_IOC_MAGIC, 0x04, __u32),		/* PRODUCE, too small */
		_IO(ZCDEV_IOC_MAGIC, 0x05),			/* CONSUME, no size */
		_IOW('Z', 0x02, __u32),				/* RESIZE's, other magic */
	};
	union {
		uint8_t bytes[sizeof(struct bigger)];
		uint64_t num;
	} arg, orig;
	struct zcdev_stats a, b;
	struct ring_state s0, s1;

	PUT(self->nb, 3000, 3000);
	STATS(self->fd, a);
	STATE(s0);
	for (size_t c = 0; c < sizeof(cmds) / sizeof(cmds[0]); c++) {
		/* A small page count, a small byte count: fine if it were obeyed. */
		memset(&arg, 0, sizeof(arg));
		arg.num = 1;
		orig = arg;
		errno = 0;
		EXPECT_EQ(-1, ioctl(self->fd, cmds[c], &arg)) {
			TH_LOG("ioctl %#lx succeeded", cmds[c]);
		}
		EXPECT_EQ(ENOTTY, errno) {
			TH_LOG("ioctl %#lx: %s", cmds[c], strerror(errno));
		}
		EXPECT_EQ(0, memcmp(&arg, &orig, sizeof(arg))) {
			TH_LOG("ioctl %#lx wrote to its argument", cmds[c]);
		}
	}
	STATE(s1);
	ASSERT_SAME_STATE(s0, s1);
	STATS(self->fd, b);
	check_stats(_metadata, &a, &b, DELTA(0), "ENOTTY ioctls");
	GET(self->nb, 4000, 3000);
}

TEST_F(rw, resize_above_max_ring_pages_is_einval_and_changes_nothing)
{
	struct zcdev_info info;
	struct zcdev_stats a, b;
	struct ring_state s0, s1;

	ASSERT_EQ(0, zt_info(self->fd, &info));
	ASSERT_GT(UINT32_MAX, info.max_ring_pages);
	PUT(self->nb, 5000, 5000);
	STATS(self->fd, a);
	STATE(s0);
	ASSERT_ERRNO(EINVAL, zt_resize(self->fd, info.max_ring_pages + 1));
	ASSERT_ERRNO(EINVAL, zt_resize(self->fd, UINT32_MAX));
	STATE(s1);
	ASSERT_SAME_STATE(s0, s1);
	STATS(self->fd, b);
	check_stats(_metadata, &a, &b, DELTA(0), "EINVAL resizes");
	ASSERT_EQ(0, zt_info(self->fd, &info));
	ASSERT_EQ((uint32_t)SMALL_PAGES, info.ring_pages);
	GET(self->nb, 10000, 5000);
}

TEST_F(rw, resize_below_the_unread_data_is_ebusy_and_changes_nothing)
{
	const size_t P = self->pg;
	struct zcdev_stats a, b;
	struct ring_state s0, s1;

	ALIGN_HEAD(self->ring - P / 3);
	PUT(self->nb, 2 * P + 1, 2 * P + 1);
	STATS(self->fd, a);
	STATE(s0);
	ASSERT_ERRNO(EBUSY, zt_resize(self->fd, 2));
	ASSERT_ERRNO(EBUSY, zt_resize(self->fd, 1));
	ASSERT_ERRNO(EBUSY, zt_resize(self->fd, 0));
	STATE(s1);
	ASSERT_SAME_STATE(s0, s1);
	STATS(self->fd, b);
	check_stats(_metadata, &a, &b, DELTA(0), "EBUSY resizes");
	/* The data is intact and the size still the old one. */
	PUT(self->nb, self->ring, self->ring - (2 * P + 1));
	GET(self->nb, 2 * self->ring, self->ring);
}

/*
 * Resizing keeps the unread bytes that fit, in order, larger or smaller,
 * to the exact capacity; each resize bumps the generation once and
 * leaves the ring holding exactly its new number of pages.
 */
TEST_F(rw, resize_keeps_the_unread_data_that_fits)
{
	const size_t P = self->pg;
	const uint32_t sizes[] = { 16, 6, 7, 9, 8, 3, 4 };
	struct zcdev_stats st;
	struct ring_state s0, s1;

	ALIGN_HEAD(self->ring - P / 2);
	PUT(self->nb, 3 * P - 5, 3 * P - 5);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		STATE(s0);
		ASSERT_EQ(0, set_ring(self, sizes[i])) {
			TH_LOG("resize to %u with %llu bytes unread: %s", sizes[i],
			       (unsigned long long)used(self), strerror(errno));
		}
		STATE(s1);
		ASSERT_EQ(s0.generation + 1, s1.generation);
		ASSERT_EQ(sizes[i], s1.ring_pages);
		ASSERT_EQ(self->ring, s1.ring_bytes);
		ASSERT_EQ(used(self), s1.used);
		ASSERT_EQ(s0.head, s1.head);
		STATS(self->fd, st);
		ASSERT_EQ((uint64_t)sizes[i], st.pages_held);

		/* Fill to the exact new capacity, then read some of it back. */
		if (used(self) < self->ring)
			PUT(self->nb, self->ring + 1, self->ring - used(self));
		ASSERT_ERRNO(EAGAIN, put(self, self->nb, 1));
		GET(self->nb, used(self) / 2 + 7, used(self) / 2 + 7);
		/* Keep no more than the next size can hold. */
		if (i + 1 < sizeof(sizes) / sizeof(sizes[0]) &&
		    used(self) > (uint64_t)sizes[i + 1] * P) {
			GET(self->nb, used(self) - sizes[i + 1] * P,
			    used(self) - sizes[i + 1] * P);
		}
	}
	GET(self->nb, SCRATCH, used(self));
	ASSERT_ERRNO(EAGAIN, get(self, self->nb, 1));
}

/* A ring of no pages: writes fail with ENOSPC, reads wait; then it comes back. */
TEST_F(rw, resize_to_zero_makes_writes_enospc)
{
	struct zcdev_info info;
	struct zcdev_stats a, b;

	ASSERT_EQ(0, set_ring(self, 0));
	ASSERT_EQ(0, zt_info(self->fd, &info));
	EXPECT_EQ(0U, info.ring_pages);
	EXPECT_EQ(0ULL, (unsigned long long)info.ring_bytes);
	STATS(self->fd, a);
	EXPECT_EQ(0ULL, (unsigned long long)a.pages_held);

	ASSERT_ERRNO(ENOSPC, put(self, self->fd, 1));
	ASSERT_ERRNO(ENOSPC, put(self, self->nb, 100));
	ASSERT_ERRNO(EAGAIN, get(self, self->nb, 1));
	STATS(self->fd, b);
	check_stats(_metadata, &a, &b, DELTA(0), "a ring of no pages");

	ASSERT_EQ(0, set_ring(self, SMALL_PAGES));
	STATS(self->fd, b);
	EXPECT_EQ((uint64_t)SMALL_PAGES, b.pages_held);
	PUT(self->nb, self->ring + 1, self->ring);
	GET(self->nb, SCRATCH, self->ring);
}

/*
 * RESET drops the unread bytes, keeps the size, counts no read, and
 * starts the empty ring on the next page boundary (head and tail move
 * forward together: they never go back).
 */
TEST_F(rw, reset_drops_unread_data)
{
	const size_t P = self->pg, R = self->ring;
	struct zcdev_stats a, b;
	struct ring_state s0, s1;

	ALIGN_HEAD(R - 3);
	PUT(self->nb, P + 10, P + 10);
	STATS(self->fd, a);
	STATE(s0);
	ASSERT_EQ(0, zcdev_reset(self->fd));
	STATE(s1);
	EXPECT_EQ((s0.head + P - 1) / P * P, s1.head);
	EXPECT_EQ(s1.head, s1.tail);
	EXPECT_EQ(0ULL, (unsigned long long)s1.used);
	EXPECT_EQ(s0.generation + 1, s1.generation);
	EXPECT_EQ(s0.ring_pages, s1.ring_pages);
	STATS(self->fd, b);
	check_stats(_metadata, &a, &b, DELTA(0), "RESET");
	ASSERT_ERRNO(EAGAIN, get(self, self->nb, 1));

	/* What comes next is the next write, and all the room is there. */
	self->rpos = self->wpos;
	PUT(self->nb, R + 1, R);
	GET(self->nb, SCRATCH, R);
}

/* PRODUCE and CONSUME past what there is fail and move nothing. */
TEST_F(rw, produce_consume_overcommit_is_einval_and_moves_nothing)
{
	const size_t R = self->ring;
	const uint64_t produce[] = { R - 100 + 1, R, R + 1, UINT64_MAX, 1ull << 63 };
	const uint64_t consume[] = { 101, R, UINT64_MAX, 1ull << 63 };
	struct zcdev_stats a, b;
	struct ring_state s0, s1;
	uint64_t zero = 0;

	ALIGN_HEAD(R - 50);
	PUT(self->nb, 100, 100);
	STATS(self->fd, a);
	STATE(s0);
	for (size_t i = 0; i < sizeof(produce) / sizeof(produce[0]); i++)
		ASSERT_ERRNO(EINVAL, ioctl(self->fd, ZCDEV_IOC_PRODUCE, &produce[i]));
	for (size_t i = 0; i < sizeof(consume) / sizeof(consume[0]); i++)
		ASSERT_ERRNO(EINVAL, ioctl(self->fd, ZCDEV_IOC_CONSUME, &consume[i]));
	/* Zero is a valid commit of nothing. */
	ASSERT_EQ(0, ioctl(self->fd, ZCDEV_IOC_PRODUCE, &zero));
	ASSERT_EQ(0, ioctl(self->fd, ZCDEV_IOC_CONSUME, &zero));
	STATE(s1);
	ASSERT_SAME_STATE(s0, s1);
	STATS(self->fd, b);
	check_stats(_metadata, &a, &b, DELTA(0), "over-commits");
	GET(self->nb, 1000, 100);
}

/*
 * The calls that change the ring need a file open for writing; CONSUME
 * needs one open for reading. Refused calls change nothing.
 */
TEST_F(rw, ring_changing_ioctls_need_the_right_open_mode)
{
	struct zcdev_stats a, b;
	struct ring_state s0, s1;
	uint64_t one = 1;
	uint32_t pages = 8;
	int rd, wr;

	PUT(self->nb, 500, 500);
	rd = zt_open(O_RDONLY);
	wr = zt_open(O_WRONLY);
	ASSERT_LE(0, rd);
	ASSERT_LE(0, wr);
	STATS(self->fd, a);
	STATE(s0);
	ASSERT_ERRNO(EBADF, ioctl(rd, ZCDEV_IOC_RESIZE, &pages));
	ASSERT_ERRNO(EBADF, ioctl(rd, ZCDEV_IOC_RESET));
	ASSERT_ERRNO(EBADF, ioctl(rd, ZCDEV_IOC_PRODUCE, &one));
	ASSERT_ERRNO(EBADF, ioctl(wr, ZCDEV_IOC_CONSUME, &one));
	STATE(s1);
	ASSERT_SAME_STATE(s0, s1);
	STATS(self->fd, b);
	check_stats(_metadata, &a, &b, DELTA(0), "EBADF ioctls");
	GET(rd, 1000, 500);
	close(rd);
	close(wr);
}

/* ---- counters ---------------------------------------------------------- */

/*
 * The copy counters move by exactly the bytes each read() and write()
 * returned, wrap or no wrap, short or refused; nothing else moves.
 */
TEST_F(rw, copy_counters_move_by_exactly_what_was_copied)
{
	const size_t P = self->pg, R = self->ring;
	struct zcdev_stats a, b;

	ALIGN_HEAD(R - P - 7);
	STATS(self->fd, a);

	PUT(self->nb, 1000, 1000);
	STATS(self->fd, b);
	check_stats(_metadata, &a, &b, DELTA(.bytes_written_copy = 1000), "write 1000");

	GET(self->nb, 300, 300);
	STATS(self->fd, a);
	check_stats(_metadata, &b, &a, DELTA(.bytes_read_copy = 300), "read 300");

	PUT(self->fd, 2 * P + 3, 2 * P + 3);
	STATS(self->fd, b);
	check_stats(_metadata, &a, &b, DELTA(.bytes_written_copy = 2 * P + 3),
		    "write across the wrap");

	PUT(self->nb, R, R - used(self));
	STATS(self->fd, a);
	check_stats(_metadata, &b, &a, DELTA(.bytes_written_copy = R - 700 - (2 * P + 3)),
		    "short write");

	ASSERT_ERRNO(EAGAIN, put(self, self->nb, 5));
	STATS(self->fd, b);
	check_stats(_metadata, &a, &b, DELTA(0), "refused write");

	GET(self->fd, 2 * R, R);
	STATS(self->fd, a);
	check_stats(_metadata, &b, &a, DELTA(.bytes_read_copy = R), "short read");

	ASSERT_ERRNO(EAGAIN, get(self, self->nb, 5));
	STATS(self->fd, b);
	check_stats(_metadata, &a, &b, DELTA(0), "refused read");
	ASSERT_EQ((uint64_t)SMALL_PAGES, b.pages_held);
}

/* ---- signals ------------------------------------------------------------- */

/* A read sleeping on an empty ring: a signal without SA_RESTART is EINTR. */
TEST_F(rw, signal_interrupts_a_blocked_read_with_eintr)
{
	struct zcdev_stats a, b;
	struct ring_state s0, s1;
	pid_t pid;

	ASSERT_EQ(0, catch_signal(SIGUSR1, false));
	STATS(self->fd, a);
	STATE(s0);
	pid = signaller(self, SYS_read, SIGUSR1, -1, OP_READ, 0);
	ASSERT_LT(0, pid);
	ASSERT_ERRNO(EINTR, get(self, self->fd, 100));
	ASSERT_EQ(0, reap(self, pid));
	ASSERT_EQ(1, hits());
	STATE(s1);
	ASSERT_SAME_STATE(s0, s1);
	STATS(self->fd, b);
	check_stats(_metadata, &a, &b, DELTA(0), "interrupted read");
	PUT(self->nb, 50, 50);
	GET(self->fd, 100, 50);
}

/* A write sleeping on a full ring, with nothing written yet: EINTR. */
TEST_F(rw, signal_interrupts_a_blocked_write_with_eintr)
{
	const size_t R = self->ring;
	struct zcdev_stats a, b;
	struct ring_state s0, s1;
	pid_t pid;

	ASSERT_EQ(0, catch_signal(SIGUSR1, false));
	PUT(self->nb, R, R);
	STATS(self->fd, a);
	STATE(s0);
	pid = signaller(self, SYS_write, SIGUSR1, -1, OP_READ, 0);
	ASSERT_LT(0, pid);
	ASSERT_ERRNO(EINTR, put(self, self->fd, 100));
	ASSERT_EQ(0, reap(self, pid));
	ASSERT_EQ(1, hits());
	STATE(s1);
	ASSERT_SAME_STATE(s0, s1);
	STATS(self->fd, b);
	check_stats(_metadata, &a, &b, DELTA(0), "interrupted write");
	GET(self->nb, 2 * R, R);
	PUT(self->nb, 100, 100);
	GET(self->nb, 2 * R, 100);
}

/*
 * A write that has put part of its bytes in when the signal comes
 * returns that part, with or without SA_RESTART, and that part is
 * exactly what the ring holds.
 */
TEST_F(rw, signal_after_a_partial_write_returns_the_short_count)
{
	const size_t R = self->ring;

	for (int restart = 0; restart < 2; restart++) {
		struct zcdev_stats a, b;
		pid_t pid;

		ASSERT_EQ(0, catch_signal(SIGUSR1, restart));
		STATS(self->fd, a);
		pid = signaller(self, SYS_write, SIGUSR1, -1, OP_READ, 0);
		ASSERT_LT(0, pid);
		/* Blocks once the ring is full, until the signal. */
		PUT(self->fd, 3 * R, R);
		ASSERT_EQ(0, reap(self, pid));
		ASSERT_EQ(1, hits());
		STATS(self->fd, b);
		check_stats(_metadata, &a, &b, DELTA(.bytes_written_copy = R),
			    "interrupted partial write");
		GET(self->nb, 3 * R, R);
	}
}

/* With SA_RESTART, a blocked read survives the signal and gets the data. */
TEST_F(rw, sa_restart_resumes_a_blocked_read)
{
	pid_t pid;

	ASSERT_EQ(0, catch_signal(SIGUSR1, true));
	pid = signaller(self, SYS_read, SIGUSR1, SYS_read, OP_WRITE, 50);
	ASSERT_LT(0, pid);
	GET(self->fd, 1000, 50);
	ASSERT_EQ(0, reap(self, pid)) {
		TH_LOG("the helper failed (see signaller())");
	}
	ASSERT_EQ(1, hits());
	self->wpos += 50;
	ASSERT_ERRNO(EAGAIN, get(self, self->nb, 1));
}

/* With SA_RESTART, a blocked write survives the signal and goes in whole. */
TEST_F(rw, sa_restart_resumes_a_blocked_write)
{
	const size_t P = self->pg, R = self->ring;
	pid_t pid;

	ASSERT_EQ(0, catch_signal(SIGUSR1, true));
	PUT(self->nb, R, R);
	pid = signaller(self, SYS_write, SIGUSR1, SYS_write, OP_READ, P);
	ASSERT_LT(0, pid);
	PUT(self->fd, 100, 100);
	ASSERT_EQ(0, reap(self, pid)) {
		TH_LOG("the helper failed (see signaller())");
	}
	ASSERT_EQ(1, hits());
	self->rpos += P;
	GET(self->nb, 2 * R, R - P + 100);
}

/*
 * A stream between two processes that both take a timer signal every
 * millisecond, without SA_RESTART: whatever EINTRs and short counts the
 * signals cause, every byte arrives once, in order.
 */
TEST_F(rw, signals_during_a_stream_lose_and_duplicate_nothing)
{
	const size_t total = 8u << 20, max = 4 * self->ring;
	struct itimerval tick = { { 0, 1000 }, { 0, 1000 } }, off = { 0 };
	uint64_t seed = 0x1234567887654321ull;
	long counts[2] = { 0 }, eintr = 0;
	int rd, w, p[2];
	pid_t pid;

	close_writers(self);
	rd = zt_open(O_RDONLY);
	w = zt_open(O_WRONLY);
	ASSERT_LE(0, rd);
	ASSERT_LE(0, w);
	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	ASSERT_EQ(0, catch_signal(SIGALRM, false));

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		uint64_t s = seed ^ 2;
		long c[2] = { 0 };	/* EINTR, short writes */

		close(rd);
		close(p[0]);
		setitimer(ITIMER_REAL, &tick, NULL);
		while (self->wpos < total) {
			size_t len = min_sz(rnd_len(&s, max), total - self->wpos);
			ssize_t n = put(self, w, len);

			if (n < 0 && self->err == EINTR)
				c[0]++;
			else if (n <= 0)
				_exit(1);
			else if ((size_t)n < len)
				c[1]++;
		}
		setitimer(ITIMER_REAL, &off, NULL);
		_exit(write(p[1], c, sizeof(c)) == sizeof(c) ? 0 : 1);
	}
	self->kids[self->nkids++] = pid;
	close(w);
	close(p[1]);

	setitimer(ITIMER_REAL, &tick, NULL);
	for (;;) {
		ssize_t n = get(self, rd, rnd_len(&seed, max));

		if (n < 0 && self->err == EINTR) {
			eintr++;
			continue;
		}
		ASSERT_LE(0, n) {
			TH_LOG("read: %s", strerror(self->err));
		}
		if (!n)
			break;
		ASSERT_EQ(-1, self->bad) {
			TH_LOG("stream byte %llu is wrong",
			       (unsigned long long)(self->rpos - n + self->bad));
		}
	}
	setitimer(ITIMER_REAL, &off, NULL);
	ASSERT_EQ(total, self->rpos);
	ASSERT_EQ(0, reap(self, pid));
	ASSERT_EQ((ssize_t)sizeof(counts), read(p[0], counts, sizeof(counts)));
	close(p[0]);
	close(rd);
	TH_LOG("writer: %ld EINTR, %ld short; reader: %ld EINTR",
	       counts[0], counts[1], eintr);
	/* Else the test proved nothing about signals. */
	ASSERT_LT(0, counts[0] + counts[1] + eintr);
}

/* ---- what the kernel shows ---------------------------------------------- */

/* sysfs agrees with every call the test makes. */
TEST_F(rw, sysfs_shows_the_ring_as_it_is)
{
	const size_t P = self->pg;
	struct zcdev_info info;
	struct ring_state s0, s1;
	int w, rd;

	STATE(s0);
	ASSERT_EQ(0, zt_info(self->fd, &info));
	EXPECT_EQ(info.ring_pages, s0.ring_pages);
	EXPECT_EQ(info.ring_bytes, s0.ring_bytes);
	EXPECT_EQ((uint64_t)SMALL_PAGES * P, s0.ring_bytes);
	EXPECT_EQ(s0.head, s0.tail);
	EXPECT_EQ(0ULL, (unsigned long long)s0.used);
	EXPECT_EQ(2ULL, (unsigned long long)s0.writers);

	PUT(self->nb, 1000, 1000);
	STATE(s1);
	EXPECT_EQ(s0.head + 1000, s1.head);
	EXPECT_EQ(s0.tail, s1.tail);
	EXPECT_EQ(1000ULL, (unsigned long long)s1.used);
	EXPECT_EQ(s0.generation, s1.generation);

	GET(self->nb, 300, 300);
	STATE(s1);
	EXPECT_EQ(s0.tail + 300, s1.tail);
	EXPECT_EQ(700ULL, (unsigned long long)s1.used);

	ASSERT_EQ(0, zcdev_reset(self->fd));
	self->rpos = self->wpos;
	STATE(s1);
	EXPECT_EQ(s0.generation + 1, s1.generation);
	/* RESET starts the ring on the next page boundary. */
	EXPECT_EQ((s0.head + 1000 + P - 1) / P * P, s1.head);
	EXPECT_EQ(s1.head, s1.tail);
	EXPECT_EQ(0ULL, (unsigned long long)s1.used);

	ASSERT_EQ(0, set_ring(self, 8));
	STATE(s1);
	EXPECT_EQ(s0.generation + 2, s1.generation);
	EXPECT_EQ(8ULL, (unsigned long long)s1.ring_pages);
	EXPECT_EQ(8ULL * P, s1.ring_bytes);

	w = zt_open(O_WRONLY);
	rd = zt_open(O_RDONLY);
	ASSERT_LE(0, w);
	ASSERT_LE(0, rd);
	STATE(s1);
	EXPECT_EQ(3ULL, (unsigned long long)s1.writers);
	close(w);
	STATE(s1);
	EXPECT_EQ(2ULL, (unsigned long long)s1.writers);
	close_writers(self);
	STATE(s1);
	EXPECT_EQ(0ULL, (unsigned long long)s1.writers);
	close(rd);
}

static bool debugfs_mounted(void)
{
	struct statfs sfs;

	return !statfs(DEBUGFS_DIR, &sfs) && sfs.f_type == DEBUGFS_MAGIC;
}

/* debugfs shows the same counters as ZCDEV_IOC_GET_STATS, by name. */
TEST_F(rw, debugfs_stats_match_the_ioctl)
{
	char line[128], name[64];
	struct zcdev_stats st;
	unsigned long long val;
	int seen = 0;
	FILE *f;

	if (!debugfs_mounted())
		ASSERT_EQ(0, mount("debugfs", DEBUGFS_DIR, "debugfs", 0, NULL)) {
			TH_LOG("debugfs is not mounted and cannot be: %s",
			       strerror(errno));
		}
	PUT(self->nb, 777, 777);
	GET(self->nb, 100, 100);
	STATS(self->fd, st);
	f = fopen(DEBUGFS_STATS, "r");
	ASSERT_NE(NULL, f) {
		TH_LOG("%s: %s", DEBUGFS_STATS, strerror(errno));
	}
	while (fgets(line, sizeof(line), f)) {
		ASSERT_EQ(2, sscanf(line, "%63s %llu", name, &val)) {
			TH_LOG("cannot parse: %s", line);
		}
#define ZT_MATCH_FIELD(field)						\
		if (!strcmp(name, #field)) {				\
			EXPECT_EQ((unsigned long long)st.field, val) {	\
				TH_LOG("%s", #field);			\
			}						\
			seen++;						\
		}
		ZCDEV_STATS_FIELDS(ZT_MATCH_FIELD)
#undef ZT_MATCH_FIELD
	}
	fclose(f);
	EXPECT_EQ(15, seen);
}

/* ---- control while I/O sleeps ------------------------------------------------ */

/*
 * RESIZE and RESET do not wait behind a reader or writer that sleeps,
 * and the sleeper carries on correctly afterwards: the reader gets the
 * next bytes written, the writer's bytes land after a reset.
 */
TEST_F(rw, resize_and_reset_do_not_wait_for_sleeping_io)
{
	const size_t R = self->ring;
	struct child_result r;
	int res;
	pid_t pid;

	pid = child_io(self, OP_READ, self->fd, 100, -1, -1, &res);
	ASSERT_LT(0, pid);
	ASSERT_EQ(0, wait_blocked_in(pid, SYS_read));
	ASSERT_EQ(0, set_ring(self, 8));
	ASSERT_EQ(0, zcdev_reset(self->fd));
	ASSERT_EQ(0, child_done(res, 100));
	PUT(self->nb, 60, 60);
	ASSERT_EQ(0, child_result(self, pid, res, &r));
	ASSERT_EQ(60, r.n);
	ASSERT_EQ(-1, r.bad);
	self->rpos += 60;

	ASSERT_EQ(0, set_ring(self, SMALL_PAGES));
	PUT(self->nb, R, R);
	pid = child_io(self, OP_WRITE, self->fd, 200, -1, -1, &res);
	ASSERT_LT(0, pid);
	ASSERT_EQ(0, wait_blocked_in(pid, SYS_write));
	ASSERT_EQ(0, set_ring(self, 8));
	/* Room now: the writer's 200 bytes go in after the full ring's. */
	ASSERT_EQ(0, child_result(self, pid, res, &r));
	ASSERT_EQ(200, r.n);
	self->wpos += 200;
	GET(self->nb, SCRATCH, R + 200);

	ASSERT_EQ(0, set_ring(self, SMALL_PAGES));
	PUT(self->nb, R, R);
	pid = child_io(self, OP_WRITE, self->fd, 200, -1, -1, &res);
	ASSERT_LT(0, pid);
	ASSERT_EQ(0, wait_blocked_in(pid, SYS_write));
	ASSERT_EQ(0, zcdev_reset(self->fd));
	ASSERT_EQ(0, child_result(self, pid, res, &r));
	ASSERT_EQ(200, r.n);
	/* The reset dropped the full ring; the writer's bytes are what is left. */
	self->rpos = self->wpos;
	self->wpos += 200;
	GET(self->nb, SCRATCH, 200);
}

TEST_HARNESS_MAIN
