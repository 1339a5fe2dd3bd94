// SPDX-License-Identifier: GPL-2.0
/*
 * Nothing lost, nothing changed: the cases where the ring used to lose or
 * change bytes, ignore what it was told, or escape a limit.
 *
 *  - sendfile() consumes only what its output took: a short write to a
 *    socket, EAGAIN, RLIMIT_FSIZE on a file;
 *  - positions are refused with ESPIPE (pread, pwrite, sendfile or splice
 *    given an offset), and sendfile() with none still works;
 *  - a ring page pinned through a mapping (an io_uring fixed buffer, or
 *    process_vm_writev() in the middle of its copy) is lent as a copy, so
 *    the pipe's bytes and the ring's stay what they were;
 *  - ring pages are charged to the memory cgroup: a RESIZE beyond
 *    memory.max fails with ENOMEM, changes nothing and kills nobody;
 *  - poll on a ring of 0 pages, O_ASYNC, mmap lengths past the limit.
 *
 * The poisoned-page case is zz_hwpoison_test.c, which runs last.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <linux/io_uring.h>
#include <linux/userfaultfd.h>

#include "kselftest_harness.h"
#include "zcdev_test.h"

#define PS ((size_t)sysconf(_SC_PAGESIZE))

FIXTURE(ring) {
	int fd;
	uint64_t pos;		/* stream position of the next byte written */
	uint64_t rpos;		/* stream position of the next byte read */
	struct zcdev_stats st;	/* counters at the start of the test */
};

FIXTURE_SETUP(ring)
{
	self->fd = zt_open(O_RDWR | O_NONBLOCK);
	if (self->fd < 0 && errno == ENOENT)
		SKIP(return, "%s missing: is the module loaded?", zt_dev_path());
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, zt_fresh_ring(self->fd, 128));
	self->pos = self->rpos = 0;
	ASSERT_EQ(0, zt_stats(self->fd, &self->st));
}

FIXTURE_TEARDOWN(ring)
{
	if (self->fd < 0)
		return;
	zt_fresh_ring(self->fd, 256);
	close(self->fd);
}

#define DELTA(self, now, field) ((now).field - (self)->st.field)

static uint64_t ring_used(void)
{
	uint64_t used = ~0ULL;

	zt_sysfs_u64("used", &used);
	return used;
}

/*
 * sendfile() into a non-blocking socket that takes less than was spliced:
 * every call may consume exactly what it reports, and the socket must then
 * hold the stream's first bytes, the ring the rest.
 */
TEST_F(ring, sendfile_short_socket_write_consumes_only_what_was_sent)
{
	const size_t total = 256 * 1024;
	int sv[2], sndbuf = 4096;
	size_t sent = 0;
	ssize_t n;

	ASSERT_EQ(0, zt_put_stream(self->fd, &self->pos, total));
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	ASSERT_EQ(0, setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)));
	ASSERT_EQ(0, fcntl(sv[0], F_SETFL, O_NONBLOCK));

	for (int i = 0; i < 64; i++) {
		n = sendfile(sv[0], self->fd, NULL, total - sent);
		if (n < 0) {
			ASSERT_EQ(EAGAIN, errno);
			break;
		}
		sent += n;
		ASSERT_EQ(total - sent, ring_used()) {
			TH_LOG("call %d: sendfile reported %zd (%zu in all), the ring lost %llu more",
			       i, n, sent, (unsigned long long)(total - sent - ring_used()));
		}
	}
	ASSERT_LT(0, sent);
	ASSERT_GT(total, sent);
	/* A call that fails with EAGAIN consumed nothing either. */
	EXPECT_EQ(total - sent, ring_used());

	/* The socket holds the stream's first bytes, the ring the rest. */
	close(sv[0]);
	EXPECT_EQ(-1, zt_check_stream(sv[1], &self->rpos, sent));
	EXPECT_EQ(-1, zt_check_stream(self->fd, &self->rpos, total - sent));
	close(sv[1]);
}

/* A file that may grow only so far takes part of a call: the rest stays. */
TEST_F(ring, sendfile_rlimit_fsize_consumes_only_what_was_written)
{
	const size_t total = 256 * 1024, limit = 100000;
	struct rlimit old, rl = { .rlim_cur = limit, .rlim_max = RLIM_INFINITY };
	int out = memfd_create("zcdev-fsize", 0);
	uint64_t rpos = 0;
	ssize_t n;

	ASSERT_LE(0, out);
	ASSERT_EQ(0, zt_put_stream(self->fd, &self->pos, total));
	ASSERT_NE(SIG_ERR, signal(SIGXFSZ, SIG_IGN));
	ASSERT_EQ(0, getrlimit(RLIMIT_FSIZE, &old));
	rl.rlim_max = old.rlim_max;
	ASSERT_EQ(0, setrlimit(RLIMIT_FSIZE, &rl));

	n = sendfile(out, self->fd, NULL, total);
	EXPECT_EQ((ssize_t)limit, n);
	/* At the limit: EFBIG, and nothing consumed. */
	EXPECT_EQ(-1, sendfile(out, self->fd, NULL, total));
	EXPECT_EQ(EFBIG, errno);
	ASSERT_EQ(0, setrlimit(RLIMIT_FSIZE, &old));
	signal(SIGXFSZ, SIG_DFL);

	EXPECT_EQ(total - limit, ring_used());
	ASSERT_EQ(0, lseek(out, 0, SEEK_SET));
	EXPECT_EQ(-1, zt_check_stream(out, &rpos, limit));
	self->rpos = limit;
	EXPECT_EQ(-1, zt_check_stream(self->fd, &self->rpos, total - limit));
	close(out);
}

/* sendfile() with no offset still moves the stream, by reference. */
TEST_F(ring, sendfile_without_offset_moves_the_stream)
{
	struct zcdev_stats now;
	int sv[2];

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	ASSERT_EQ(0, zt_put_stream(self->fd, &self->pos, 16 * PS));
	ASSERT_EQ((ssize_t)(16 * PS), sendfile(sv[0], self->fd, NULL, 16 * PS));
	EXPECT_EQ(0, ring_used());
	EXPECT_EQ(-1, zt_check_stream(sv[1], &self->rpos, 16 * PS));
	ASSERT_EQ(0, zt_stats(self->fd, &now));
	EXPECT_EQ(16 * PS, DELTA(self, now, bytes_spliced_out));
	EXPECT_EQ(0, DELTA(self, now, bytes_spliced_out_copied));
	close(sv[0]);
	close(sv[1]);
}

/*
 * A stream has no positions: every call that is given one fails and
 * consumes nothing. pread, pwrite and sendfile say ESPIPE, as on a pipe;
 * splice says EINVAL, its answer for any file that cannot pread/pwrite.
 */
TEST_F(ring, positions_are_espipe_and_consume_nothing)
{
	uint8_t buf[64];
	int p[2], sv[2];
	loff_t off = 0;

	ASSERT_EQ(0, zt_put_stream(self->fd, &self->pos, 8192));
	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));

	EXPECT_EQ(-1, pread(self->fd, buf, sizeof(buf), 0));
	EXPECT_EQ(ESPIPE, errno);
	EXPECT_EQ(-1, pwrite(self->fd, buf, sizeof(buf), 0));
	EXPECT_EQ(ESPIPE, errno);
	EXPECT_EQ(-1, sendfile(sv[0], self->fd, &off, 8192));
	EXPECT_EQ(ESPIPE, errno);
	EXPECT_EQ(0, off);
	EXPECT_EQ(-1, splice(self->fd, &off, p[1], NULL, 4096, 0));
	EXPECT_EQ(EINVAL, errno);
	ASSERT_EQ(64, write(p[1], buf, 64));
	EXPECT_EQ(-1, splice(p[0], NULL, self->fd, &off, 64, 0));
	EXPECT_EQ(EINVAL, errno);

	EXPECT_EQ(8192, ring_used());
	EXPECT_EQ(-1, zt_check_stream(self->fd, &self->rpos, 8192));
	close(p[0]);
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
}

/*
 * sendfile() from the device into itself could only wait for the space
 * its own bytes hold: refused, and nothing moves.
 */
TEST_F(ring, sendfile_into_itself_is_einval_and_moves_nothing)
{
	int fd2 = zt_open(O_RDWR | O_NONBLOCK);

	ASSERT_LE(0, fd2);
	ASSERT_EQ(0, zt_put_stream(self->fd, &self->pos, 8192));
	EXPECT_EQ(-1, sendfile(fd2, self->fd, NULL, 8192));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(8192, ring_used());
	EXPECT_EQ(-1, zt_check_stream(self->fd, &self->rpos, 8192));
	close(fd2);
}

/* ---- long-term pins ---------------------------------------------------- */

static int uring_setup(unsigned int entries, struct io_uring_params *p)
{
	return syscall(__NR_io_uring_setup, entries, p);
}

static int uring_register(int fd, unsigned int op, void *arg, unsigned int n)
{
	return syscall(__NR_io_uring_register, fd, op, arg, n);
}

static int uring_enter(int fd, unsigned int submit, unsigned int wait,
		       unsigned int flags)
{
	return syscall(__NR_io_uring_enter, fd, submit, wait, flags, NULL, 0);
}

struct uring {
	int fd;
	struct io_uring_params p;
	void *sq, *cq;
	struct io_uring_sqe *sqes;
	size_t sq_len, cq_len;
};

static int uring_init(struct uring *u)
{
	memset(u, 0, sizeof(*u));
	u->fd = uring_setup(4, &u->p);
	if (u->fd < 0)
		return -1;
	u->sq_len = u->p.sq_off.array + u->p.sq_entries * sizeof(__u32);
	u->cq_len = u->p.cq_off.cqes + u->p.cq_entries * sizeof(struct io_uring_cqe);
	u->sq = mmap(NULL, u->sq_len, PROT_READ | PROT_WRITE, MAP_SHARED,
		     u->fd, IORING_OFF_SQ_RING);
	u->cq = mmap(NULL, u->cq_len, PROT_READ | PROT_WRITE, MAP_SHARED,
		     u->fd, IORING_OFF_CQ_RING);
	u->sqes = mmap(NULL, u->p.sq_entries * sizeof(struct io_uring_sqe),
		       PROT_READ | PROT_WRITE, MAP_SHARED, u->fd, IORING_OFF_SQES);
	if (u->sq == MAP_FAILED || u->cq == MAP_FAILED || u->sqes == MAP_FAILED)
		return -1;
	return 0;
}

/* One READ_FIXED of @len bytes at @off of @file into registered buffer 0. */
static int uring_read_fixed(struct uring *u, int file, void *buf, size_t len,
			    off_t off)
{
	__u32 *tail = (__u32 *)((char *)u->sq + u->p.sq_off.tail);
	__u32 *mask = (__u32 *)((char *)u->sq + u->p.sq_off.ring_mask);
	__u32 *array = (__u32 *)((char *)u->sq + u->p.sq_off.array);
	__u32 *chead = (__u32 *)((char *)u->cq + u->p.cq_off.head);
	struct io_uring_cqe *cqes = (void *)((char *)u->cq + u->p.cq_off.cqes);
	__u32 *cmask = (__u32 *)((char *)u->cq + u->p.cq_off.ring_mask);
	__u32 t = *tail, h;
	struct io_uring_sqe *sqe = &u->sqes[t & *mask];
	int res;

	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = IORING_OP_READ_FIXED;
	sqe->fd = file;
	sqe->addr = (unsigned long)buf;
	sqe->len = len;
	sqe->off = off;
	sqe->buf_index = 0;
	array[t & *mask] = t & *mask;
	__atomic_store_n(tail, t + 1, __ATOMIC_RELEASE);
	if (uring_enter(u->fd, 1, 1, IORING_ENTER_GETEVENTS) < 0)
		return -errno;
	h = __atomic_load_n(chead, __ATOMIC_ACQUIRE);
	res = cqes[h & *cmask].res;
	__atomic_store_n(chead, h + 1, __ATOMIC_RELEASE);
	return res;
}

/*
 * The pin tests' verdict: the ring's one slot, stream bytes [0, PS), went
 * out as a copy. The pipe holds them as they were when lent, nothing went
 * by reference and, if @lap2, the ring gives back the next lap's bytes,
 * [PS, 2 PS), which were written through the pin.
 */
static void expect_lent_as_a_copy(struct __test_metadata *_metadata,
				  FIXTURE_DATA(ring) *self, int pipe_r,
				  bool lap2)
{
	struct zcdev_stats now;
	uint64_t ppos = 0;
	long bad;

	bad = zt_check_stream(pipe_r, &ppos, PS);
	EXPECT_EQ(-1, bad) {
		TH_LOG("the pipe's bytes changed after splice, from byte %ld", bad);
	}
	self->rpos = PS;
	if (lap2) {
		bad = zt_check_stream(self->fd, &self->rpos, PS);
		EXPECT_EQ(-1, bad) {
			TH_LOG("the bytes written through the pin are not the ring's, from byte %ld",
			       bad);
		}
	}
	ASSERT_EQ(0, zt_stats(self->fd, &now));
	EXPECT_EQ(PS, DELTA(self, now, bytes_spliced_out_copied));
	EXPECT_EQ(0, DELTA(self, now, bytes_spliced_out));
}

/*
 * Register a mapping of the ring's only slot as an io_uring fixed buffer
 * (a FOLL_LONGTERM pin), splice the slot out, touch the mapping, then
 * READ_FIXED new bytes into it and PRODUCE them. The pipe must still hold
 * the bytes it was given, and the ring must give back the new ones: a
 * pinned page is lent as a copy and stays the ring's page.
 */
TEST_F(ring, pinned_page_is_lent_as_a_copy)
{
	uint64_t bytes = PS;
	struct iovec iov;
	struct uring u;
	uint8_t *map, *buf;
	int p[2], file;

	ASSERT_EQ(0, zt_fresh_ring(self->fd, 1));
	map = mmap(NULL, PS, PROT_READ | PROT_WRITE, MAP_SHARED, self->fd, PS);
	ASSERT_NE(MAP_FAILED, map);
	if (uring_init(&u))
		SKIP(goto out_unmap, "io_uring: %s", strerror(errno));
	iov.iov_base = map;
	iov.iov_len = PS;
	if (uring_register(u.fd, IORING_REGISTER_BUFFERS, &iov, 1))
		SKIP(goto out_uring,
		     "this kernel refuses a mapping of the device as an io_uring fixed buffer: %s",
		     strerror(errno));

	/* The next lap's bytes, in a file for READ_FIXED to read. */
	file = memfd_create("zcdev-lap2", 0);
	ASSERT_LE(0, file);
	buf = malloc(PS);
	zt_fill(buf, PS, PS);
	ASSERT_EQ((ssize_t)PS, pwrite(file, buf, PS, 0));

	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ(0, zt_put_stream(self->fd, &self->pos, PS));
	ASSERT_EQ((ssize_t)PS, splice(self->fd, NULL, p[1], NULL, PS, 0));
	/* Touch the mapping: the slot is reached again, as on the next lap. */
	(void)*(volatile uint8_t *)map;

	ASSERT_EQ((int)PS, uring_read_fixed(&u, file, map, PS, 0));
	ASSERT_EQ(0, zcdev_produce(self->fd, bytes));
	self->pos += PS;
	expect_lent_as_a_copy(_metadata, self, p[0], true);

	free(buf);
	close(file);
	close(p[0]);
	close(p[1]);
	uring_register(u.fd, IORING_UNREGISTER_BUFFERS, NULL, 0);
out_uring:
	close(u.fd);
out_unmap:
	munmap(map, PS);
}

/*
 * Wait up to 10 s for a fault on @uffd: 0 once one is queued, -1 if none
 * came, or if *@done says the faulting call returned first.
 */
static int uffd_wait_fault(int uffd, const int *done)
{
	struct pollfd pfd = { .fd = uffd, .events = POLLIN };
	int i;

	for (i = 0; i < 100 && !__atomic_load_n(done, __ATOMIC_ACQUIRE); i++)
		if (poll(&pfd, 1, 100) > 0)
			return 0;
	return -1;
}

struct vm_writer {
	void *src, *dst;
	size_t len;
	ssize_t ret;
	int err;
	int done;	/* set (release) once ret and err are */
};

static void *vm_writer_main(void *arg)
{
	struct vm_writer *w = arg;
	struct iovec local = { .iov_base = w->src, .iov_len = w->len };
	struct iovec remote = { .iov_base = w->dst, .iov_len = w->len };

	w->ret = process_vm_writev(getpid(), &local, 1, &remote, 1, 0);
	w->err = errno;
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * The same with a short-term pin, which every kernel takes:
 * process_vm_writev() pins the ring page it writes to, then copies from
 * a source page that userfaultfd holds back. While it waits, splice the
 * slot out; then let the copy finish. The pipe must keep its bytes, and
 * the bytes written through the pin must be the ring's.
 */
TEST_F(ring, page_pinned_by_process_vm_writev_is_lent_as_a_copy)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	struct uffdio_copy copy = { .len = 0 };
	struct vm_writer w = { .len = PS };
	struct uffd_msg msg;
	uint64_t bytes = PS;
	uint8_t *map, *lap2;
	pthread_t thread;
	int p[2], uffd;

	ASSERT_EQ(0, zt_fresh_ring(self->fd, 1));
	map = mmap(NULL, PS, PROT_READ | PROT_WRITE, MAP_SHARED, self->fd, PS);
	ASSERT_NE(MAP_FAILED, map);
	/* Both are kernel options (CROSS_MEMORY_ATTACH, USERFAULTFD). */
	if (process_vm_writev(getpid(), NULL, 0, NULL, 0, 0) < 0)
		SKIP(goto out_unmap, "process_vm_writev: %s", strerror(errno));
	uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		SKIP(goto out_unmap, "userfaultfd for kernel-mode faults: %s", strerror(errno));
	ASSERT_EQ(0, ioctl(uffd, UFFDIO_API, &api));
	w.src = mmap(NULL, PS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, w.src);
	reg.range.start = (unsigned long)w.src;
	reg.range.len = PS;
	ASSERT_EQ(0, ioctl(uffd, UFFDIO_REGISTER, &reg));
	w.dst = map;

	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ(0, zt_put_stream(self->fd, &self->pos, PS));
	ASSERT_EQ(0, pthread_create(&thread, NULL, vm_writer_main, &w));
	/*
	 * The writer holds its pin on the ring page and waits for its source.
	 * A writer that returns instead of faulting is reported at once.
	 */
	if (uffd_wait_fault(uffd, &w.done)) {
		bool done = __atomic_load_n(&w.done, __ATOMIC_ACQUIRE);

		if (done)
			pthread_join(thread, NULL);
		ASSERT_FALSE(true) {
			if (done)
				TH_LOG("process_vm_writev returned %zd (%s) without faulting",
				       w.ret, strerror(w.err));
			else
				TH_LOG("no fault from process_vm_writev within 10 s");
		}
	}
	ASSERT_EQ((ssize_t)sizeof(msg), read(uffd, &msg, sizeof(msg)));
	ASSERT_EQ(UFFD_EVENT_PAGEFAULT, msg.event);

	ASSERT_EQ((ssize_t)PS, splice(self->fd, NULL, p[1], NULL, PS, 0));

	lap2 = mmap(NULL, PS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, lap2);
	zt_fill(lap2, PS, PS);
	copy.dst = (unsigned long)w.src;
	copy.src = (unsigned long)lap2;
	copy.len = PS;
	ASSERT_EQ(0, ioctl(uffd, UFFDIO_COPY, &copy));
	ASSERT_EQ(0, pthread_join(thread, NULL));
	ASSERT_EQ((ssize_t)PS, w.ret) {
		TH_LOG("process_vm_writev: %s", strerror(w.err));
	}
	ASSERT_EQ(0, zcdev_produce(self->fd, bytes));
	self->pos += PS;
	expect_lent_as_a_copy(_metadata, self, p[0], true);

	munmap(lap2, PS);
	munmap(w.src, PS);
	close(p[0]);
	close(p[1]);
	close(uffd);
out_unmap:
	munmap(map, PS);
}

struct rw_writer {
	int fd;
	const void *src;
	size_t len;
	ssize_t ret;
	int err;
	int done;	/* set (release) once ret and err are */
};

static void *rw_writer_main(void *arg)
{
	struct rw_writer *w = arg;

	w->ret = write(w->fd, w->src, w->len);
	w->err = errno;
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * A write() copies into its ring page outside ring_lock, holding a
 * reference of its own. A consumer that moves tail into that page
 * meanwhile sees the reference, takes the page for one held past tail
 * (slots_kept), and the next fault on the slot gives it a fresh page,
 * copied while the write was still copying. Every byte the write
 * reports must still reach the reader. The write is held part-way by a
 * source page that userfaultfd holds back.
 */
TEST_F(ring, write_whose_page_is_kept_under_it_loses_nothing)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	struct uffdio_copy copy = { .len = 0 };
	struct rw_writer w = { .fd = self->fd, .len = PS - 100 };
	struct zcdev_stats st0, st1;
	struct zcdev_info info;
	uint8_t *src, *lap, *map, *buf;
	struct uffd_msg msg;
	pthread_t thread;
	int uffd;
	long bad;

	ASSERT_EQ(0, zt_fresh_ring(self->fd, 1));
	ASSERT_EQ(0, zt_info(self->fd, &info));
	uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		SKIP(return, "userfaultfd for kernel-mode faults: %s", strerror(errno));
	ASSERT_EQ(0, ioctl(uffd, UFFDIO_API, &api));
	/* Stream bytes 100 to 1100 in the first page, the rest held back. */
	src = mmap(NULL, 2 * PS, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, src);
	zt_fill(src + PS - 1000, 100, 1000);
	reg.range.start = (unsigned long)src + PS;
	reg.range.len = PS;
	ASSERT_EQ(0, ioctl(uffd, UFFDIO_REGISTER, &reg));
	w.src = src + PS - 1000;

	ASSERT_EQ(0, zt_put_stream(self->fd, &self->pos, 100));
	ASSERT_EQ(0, zt_stats(self->fd, &st0));
	ASSERT_EQ(0, pthread_create(&thread, NULL, rw_writer_main, &w));
	ASSERT_EQ(0, uffd_wait_fault(uffd, &w.done)) {
		TH_LOG("the write did not wait for its source (done: %d)",
		       __atomic_load_n(&w.done, __ATOMIC_ACQUIRE));
	}
	ASSERT_EQ((ssize_t)sizeof(msg), read(uffd, &msg, sizeof(msg)));

	/*
	 * An mmap consumer reads the 100 bytes in place and CONSUMEs them:
	 * tail moves into the page the write holds, and the slot is kept
	 * (its PTE zapped). Then a fault on it.
	 */
	buf = malloc(PS);
	ASSERT_NE(NULL, buf);
	map = mmap(NULL, PS, PROT_READ, MAP_SHARED, self->fd, info.data_offset);
	ASSERT_NE(MAP_FAILED, map);
	ASSERT_EQ(-1, zt_check(map, 0, 100));
	ASSERT_EQ(0, zcdev_consume(self->fd, 100));
	(void)*(volatile uint8_t *)map;
	ASSERT_EQ(0, zt_stats(self->fd, &st1));

	lap = mmap(NULL, PS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, lap);
	zt_fill(lap, 1100, PS);
	copy.dst = (unsigned long)src + PS;
	copy.src = (unsigned long)lap;
	copy.len = PS;
	ASSERT_EQ(0, ioctl(uffd, UFFDIO_COPY, &copy));
	ASSERT_EQ(0, pthread_join(thread, NULL));
	ASSERT_EQ((ssize_t)w.len, w.ret) {
		TH_LOG("write: %s", strerror(w.err));
	}
	self->pos += w.len;
	TH_LOG("slots_kept +%llu, page_swaps +%llu while the write copied",
	       (unsigned long long)(st1.slots_kept - st0.slots_kept),
	       (unsigned long long)(st1.page_swaps - st0.page_swaps));
	/* Else the test proved nothing: the page must have been swapped. */
	EXPECT_EQ(1, st1.page_swaps - st0.page_swaps);

	ASSERT_EQ((ssize_t)w.len, read(self->fd, buf, w.len));
	bad = zt_check(buf, 100, w.len);
	EXPECT_EQ(-1, bad) {
		TH_LOG("byte %ld of the write reads %u, wrote %u: lost in the old page",
		       bad + 100, buf[bad], zt_byte(100 + bad));
	}

	free(buf);
	munmap(lap, PS);
	munmap(map, PS);
	munmap(src, 2 * PS);
	close(uffd);
}

/*
 * One write() that goes round the whole ring and comes back to the slot
 * it started in, while tail passes a page somebody else holds in that
 * slot. Slot 0 holds stream bytes [0, 200), and a pipe holds a reference
 * to its page (vmsplice() of a mapping, as an skb of a MSG_ZEROCOPY send
 * would). The write of two slots starts at 200: [200, PS) of slot 0, all
 * of slot 1, then [0, 200) of slot 0's next lap once tail has moved past
 * the first 200 bytes. Its source's second page is held
 * back by userfaultfd, so it stops in slot 1 with [200, PS) of slot 0
 * written but not yet past head; meanwhile a CONSUME moves tail past the
 * held page, and the slot is kept. Coming back round, the write gets a
 * fresh page for slot 0, which must carry what this very call wrote
 * there (a copy of the unread bytes alone lost them: 6.12's rw_test
 * streams, with small rings and writes of several rings); and the pipe
 * must still read the lap it was given.
 */
TEST_F(ring, a_write_that_wraps_into_a_slot_kept_meanwhile_keeps_its_bytes)
{
	const size_t first = 200, len = 2 * PS;
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	struct uffdio_copy copy = { .len = PS };
	struct rw_writer w = { .fd = self->fd, .len = len };
	struct zcdev_stats now;
	struct uffd_msg msg;
	uint8_t *src, *page2, *map;
	struct zcdev_ring_meta *meta;
	struct iovec iov;
	uint64_t ppos = 0, slot0;
	pthread_t thread;
	int held[2], uffd;
	long bad;

	ASSERT_EQ(0, zt_fresh_ring(self->fd, 2));
	uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		SKIP(return, "userfaultfd for kernel-mode faults: %s", strerror(errno));
	ASSERT_EQ(0, ioctl(uffd, UFFDIO_API, &api));
	src = mmap(NULL, 2 * PS, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, src);
	page2 = malloc(PS);
	ASSERT_NE(NULL, page2);
	reg.range.start = (unsigned long)src + PS;
	reg.range.len = PS;
	ASSERT_EQ(0, ioctl(uffd, UFFDIO_REGISTER, &reg));
	ASSERT_EQ(0, pipe(held));

	/*
	 * "Slot 0" is the slot the emptied ring starts in (a reset leaves
	 * head where it was, rounded up to a page): it holds [0, 200), its
	 * page referenced by a pipe, then unmapped.
	 */
	ASSERT_EQ(0, zt_put_stream(self->fd, &self->pos, first));
	meta = mmap(NULL, PS, PROT_READ, MAP_SHARED, self->fd, 0);
	ASSERT_NE(MAP_FAILED, meta);
	slot0 = (__atomic_load_n(&meta->head, __ATOMIC_ACQUIRE) - first) / PS % 2;
	ASSERT_EQ(0, munmap(meta, PS));
	map = mmap(NULL, PS, PROT_READ, MAP_SHARED, self->fd, PS * (1 + slot0));
	ASSERT_NE(MAP_FAILED, map);
	iov.iov_base = map;
	iov.iov_len = first;
	ASSERT_EQ((ssize_t)first, vmsplice(held[1], &iov, 1, 0));
	ASSERT_EQ(0, munmap(map, PS));

	zt_fill(src, self->pos, PS);
	w.src = src;
	ASSERT_EQ(0, pthread_create(&thread, NULL, rw_writer_main, &w));
	ASSERT_EQ(0, uffd_wait_fault(uffd, &w.done)) {
		TH_LOG("the write did not wait for its source (done: %d)",
		       __atomic_load_n(&w.done, __ATOMIC_ACQUIRE));
	}
	ASSERT_EQ((ssize_t)sizeof(msg), read(uffd, &msg, sizeof(msg)));

	/* While the write waits: an mmap consumer's CONSUME passes the held page. */
	ASSERT_EQ(0, zcdev_consume(self->fd, first));
	self->rpos += first;

	zt_fill(page2, self->pos + PS, PS);
	copy.dst = (unsigned long)src + PS;
	copy.src = (unsigned long)page2;
	ASSERT_EQ(0, ioctl(uffd, UFFDIO_COPY, &copy));
	ASSERT_EQ(0, pthread_join(thread, NULL));
	ASSERT_EQ((ssize_t)w.len, w.ret) {
		TH_LOG("write: %s", strerror(w.err));
	}
	self->pos += w.len;

	bad = zt_check_stream(self->fd, &self->rpos, w.len);
	EXPECT_EQ(-1, bad) {
		TH_LOG("stream byte %llu is wrong: the write lost what it wrote before it came round",
		       (unsigned long long)(first + bad));
	}
	bad = zt_check_stream(held[0], &ppos, first);
	EXPECT_EQ(-1, bad) {
		TH_LOG("the held page changed under its holder, from byte %ld", bad);
	}
	ASSERT_EQ(0, zt_stats(self->fd, &now));
	EXPECT_EQ(1, DELTA(self, now, slots_kept));
	EXPECT_EQ(1, DELTA(self, now, page_swaps));

	close(held[0]);
	close(held[1]);
	free(page2);
	munmap(src, 2 * PS);
	close(uffd);
}

/*
 * A plain reference taken through get_user_pages() (FOLL_GET) is no pin,
 * and its holder may store to the page after the zap: O_DIRECT on 6.1,
 * write() to /proc/<pid>/mem and PTRACE_POKEDATA (access_remote_vm()) on
 * every kernel. Those writers cannot be held between their GUP and their
 * store from user space in the guest: /proc/<pid>/mem and ptrace copy the
 * caller's bytes before they take the page and store right after, and a
 * slow O_DIRECT read needs a block device whose completion can be delayed
 * (null_blk's completion_nsec, dm-delay, NBD), which the guest has not and
 * cannot load. So the test holds the same kind of reference open with
 * vmsplice(), which takes one per page and keeps it in the pipe: the
 * module cannot tell it from a writer's, and must lend a copy.
 */
TEST_F(ring, page_referenced_by_gup_is_lent_as_a_copy)
{
	struct iovec iov;
	uint8_t *map;
	int p[2], held[2];

	ASSERT_EQ(0, zt_fresh_ring(self->fd, 1));
	map = mmap(NULL, PS, PROT_READ | PROT_WRITE, MAP_SHARED, self->fd, PS);
	ASSERT_NE(MAP_FAILED, map);
	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ(0, pipe(held));
	ASSERT_EQ(0, zt_put_stream(self->fd, &self->pos, PS));

	iov.iov_base = map;
	iov.iov_len = PS;
	ASSERT_EQ((ssize_t)PS, vmsplice(held[1], &iov, 1, 0));
	ASSERT_EQ((ssize_t)PS, splice(self->fd, NULL, p[1], NULL, PS, 0));
	expect_lent_as_a_copy(_metadata, self, p[0], false);

	close(held[0]);
	close(held[1]);
	close(p[0]);
	close(p[1]);
	munmap(map, PS);
}

/* ---- memory cgroup ----------------------------------------------------- */

#define CG_ROOT "/sys/fs/cgroup"
#define CG_DIR CG_ROOT "/zcdev-test"

static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, s, strlen(s));
	close(fd);
	return n == (ssize_t)strlen(s) ? 0 : -1;
}

/* A cgroup v2 group with the memory controller, or a reason why not. */
static const char *cgroup_memory_dir(void)
{
	char buf[256] = "";
	int fd;

	if (geteuid() != 0)
		return "creating a cgroup needs root";
	if (access(CG_ROOT "/cgroup.controllers", F_OK) &&
	    mount("cgroup2", CG_ROOT, "cgroup2", 0, NULL))
		return "no cgroup v2 hierarchy and none can be mounted";
	fd = open(CG_ROOT "/cgroup.controllers", O_RDONLY);
	if (fd < 0 || read(fd, buf, sizeof(buf) - 1) < 0 || !strstr(buf, "memory")) {
		if (fd >= 0)
			close(fd);
		return "the kernel has no memory controller on cgroup v2";
	}
	close(fd);
	write_file(CG_ROOT "/cgroup.subtree_control", "+memory");
	if (mkdir(CG_DIR, 0755) && errno != EEXIST)
		return "mkdir of a cgroup failed";
	if (access(CG_DIR "/memory.max", F_OK))
		return "the memory controller could not be enabled";
	return NULL;
}

/*
 * In a group with memory.max = 16 MiB, RESIZE to 64 MiB fails with ENOMEM
 * (the pages are charged to the group), the ring is as it was, and the
 * caller is alive; a RESIZE that fits succeeds.
 */
TEST_F(ring, resize_beyond_memory_cgroup_is_enomem_and_changes_nothing)
{
	const char *why = cgroup_memory_dir();
	struct zcdev_info before, after;
	int status;
	pid_t pid;

	if (why)
		SKIP(return, "%s", why);
	ASSERT_EQ(0, write_file(CG_DIR "/memory.max", "16M"));
	ASSERT_EQ(0, zt_put_stream(self->fd, &self->pos, 3 * PS + 5));
	ASSERT_EQ(0, zt_info(self->fd, &before));

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		char me[32];

		snprintf(me, sizeof(me), "%d", getpid());
		if (write_file(CG_DIR "/cgroup.procs", me))
			_exit(10);
		if (zt_resize(self->fd, (64 << 20) / PS) == 0)
			_exit(11);
		if (errno != ENOMEM)
			_exit(12);
		/* 4 MiB fits: the limit is the cgroup's, not a fixed one. */
		if (zt_resize(self->fd, (4 << 20) / PS))
			_exit(13);
		if (zt_resize(self->fd, before.ring_pages))
			_exit(14);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status)) {
		TH_LOG("the resizing task was killed by signal %d (the OOM killer?)",
		       WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	}
	EXPECT_EQ(0, WEXITSTATUS(status)) {
		TH_LOG("step %d: 10 join the group, 11 64 MiB succeeded, 12 not ENOMEM, 13/14 a fitting resize failed",
		       WEXITSTATUS(status));
	}
	ASSERT_EQ(0, zt_info(self->fd, &after));
	EXPECT_EQ(before.ring_pages, after.ring_pages);
	EXPECT_EQ(3 * PS + 5, ring_used());
	EXPECT_EQ(-1, zt_check_stream(self->fd, &self->rpos, 3 * PS + 5));
	rmdir(CG_DIR);
}

/* ---- poll, O_ASYNC, mmap limits --------------------------------------- */

/*
 * A ring of 0 pages never has space and write() fails at once with
 * ENOSPC: poll says so with EPOLLOUT | EPOLLERR instead of never waking.
 */
TEST_F(ring, poll_on_an_empty_ring_reports_the_error)
{
	struct pollfd pfd = { .fd = self->fd, .events = POLLOUT };
	uint8_t byte = 0;

	ASSERT_EQ(0, zt_fresh_ring(self->fd, 0));
	EXPECT_EQ(1, poll(&pfd, 1, 0));
	EXPECT_EQ(POLLOUT | POLLERR, pfd.revents & (POLLOUT | POLLERR));
	EXPECT_EQ(-1, write(self->fd, &byte, 1));
	EXPECT_EQ(ENOSPC, errno);
}

static volatile sig_atomic_t sigio_count;

static void on_sigio(int sig __attribute__((unused)))
{
	sigio_count++;
}

/* O_ASYNC: a reader gets SIGIO when data arrives. */
TEST_F(ring, o_async_sends_sigio_on_data)
{
	int rfd = zt_open(O_RDONLY | O_NONBLOCK);
	sigset_t mask, old;

	ASSERT_LE(0, rfd);
	ASSERT_NE(SIG_ERR, signal(SIGIO, on_sigio));
	ASSERT_EQ(0, fcntl(rfd, F_SETOWN, getpid()));
	ASSERT_EQ(0, fcntl(rfd, F_SETFL, fcntl(rfd, F_GETFL) | O_ASYNC));
	sigemptyset(&mask);
	sigaddset(&mask, SIGIO);
	sigprocmask(SIG_BLOCK, &mask, &old);
	sigio_count = 0;
	ASSERT_EQ(0, zt_put_stream(self->fd, &self->pos, 100));
	sigprocmask(SIG_SETMASK, &old, NULL);
	EXPECT_LT(0, sigio_count) {
		TH_LOG("O_ASYNC was accepted, and no SIGIO came with the data");
	}
	close(rfd);
	signal(SIGIO, SIG_DFL);
}

/* A mapping that reaches past data_offset + 2 * max_ring_pages is refused. */
TEST_F(ring, mmap_length_past_the_limit_is_einval)
{
	struct zcdev_info info;
	uint64_t last;
	void *p;

	ASSERT_EQ(0, zt_info(self->fd, &info));
	last = info.data_offset / PS + 2ULL * info.max_ring_pages - 1;
	p = mmap(NULL, 2 * PS, PROT_READ, MAP_SHARED, self->fd, last * PS);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(EINVAL, errno);
	if (p != MAP_FAILED)
		munmap(p, 2 * PS);
	p = mmap(NULL, PS, PROT_READ, MAP_SHARED, self->fd, last * PS);
	EXPECT_NE(MAP_FAILED, p);
	if (p != MAP_FAILED)
		munmap(p, PS);
}

TEST_HARNESS_MAIN
