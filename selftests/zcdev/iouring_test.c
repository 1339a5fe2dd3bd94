// SPDX-License-Identifier: GPL-2.0
/*
 * io_uring on /dev/zcdev without worker threads: the device declares
 * FMODE_NOWAIT and honours IOCB_NOWAIT (rw.c), so io_uring issues
 * IORING_OP_READ and IORING_OP_WRITE non-blocking first. One that can
 * complete (data for a read, space for a write) completes inline, its
 * CQE posted before io_uring_enter() returns; one that cannot gets
 * -EAGAIN and waits by poll. Neither ever reaches an io-wq worker, which
 * would show as an "iou-wrk-<pid>" thread of this process (io-wq creates
 * them on the first punt and keeps them for seconds after).
 *
 * Linked statically with Debian's liburing (liburing-dev). Every test
 * starts on an empty ring of TEST_PAGES and leaves the module's default
 * 256 pages behind.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/zcdev.h>

#include "kselftest_harness.h"
#include "zcdev_test.h"

#define DEFAULT_PAGES	256
#define TEST_PAGES	16
#define LEN		(3 * 4096 + 100)	/* pages and a part */

FIXTURE(uring) {
	int fd;
	struct io_uring ring;
	bool have_ring;
	uint8_t buf[LEN];
};

FIXTURE_SETUP(uring)
{
	int ret;

	self->fd = zt_open(O_RDWR);
	ASSERT_LE(0, self->fd) {
		TH_LOG("open %s: %s", zt_dev_path(), strerror(errno));
	}
	ASSERT_EQ(0, zcdev_reset(self->fd));
	ASSERT_EQ(0, zcdev_resize(self->fd, TEST_PAGES));
	ret = io_uring_queue_init(8, &self->ring, 0);
	if (ret == -ENOSYS || ret == -EPERM)
		SKIP(return, "io_uring is not available: %s", strerror(-ret));
	ASSERT_EQ(0, ret) {
		TH_LOG("io_uring_queue_init: %s", strerror(-ret));
	}
	self->have_ring = true;
}

FIXTURE_TEARDOWN(uring)
{
	if (self->have_ring)
		io_uring_queue_exit(&self->ring);
	if (self->fd >= 0) {
		zcdev_reset(self->fd);
		zcdev_resize(self->fd, DEFAULT_PAGES);
		close(self->fd);
	}
}

/* This process's io-wq workers: threads named iou-wrk-<pid>. */
static int workers(void)
{
	char path[300], comm[32];
	struct dirent *d;
	int n = 0, fd;
	ssize_t len;
	DIR *dir;

	dir = opendir("/proc/self/task");
	if (!dir)
		return -1;
	while ((d = readdir(dir))) {
		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", d->d_name);
		fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		len = read(fd, comm, sizeof(comm) - 1);
		close(fd);
		comm[len > 0 ? len : 0] = '\0';
		if (!strncmp(comm, "iou-wrk-", 8))
			n++;
	}
	closedir(dir);
	return n;
}

static uint64_t head_now(void)
{
	uint64_t v = 0;

	zt_read_u64(ZT_SYSFS_DIR "head", &v);
	return v;
}

/* Queue one read or write of LEN at the stream (offset -1), submit it. */
static int submit_rw(FIXTURE_DATA(uring) *self, bool write)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&self->ring);

	if (!sqe)
		return -EBUSY;
	if (write)
		io_uring_prep_write(sqe, self->fd, self->buf, LEN, -1);
	else
		io_uring_prep_read(sqe, self->fd, self->buf, LEN, -1);
	return io_uring_submit(&self->ring);
}

/*
 * The CQE is there as soon as io_uring_enter() returned: the request
 * completed inline, in the submitting task.
 */
static void expect_inline(struct __test_metadata *_metadata,
			  FIXTURE_DATA(uring) *self, const char *what)
{
	struct io_uring_cqe *cqe;
	int ret;

	ret = io_uring_peek_cqe(&self->ring, &cqe);
	ASSERT_EQ(0, ret) {
		TH_LOG("%s: no completion when io_uring_enter() returned (%s)",
		       what, strerror(-ret));
	}
	EXPECT_EQ(LEN, cqe->res) {
		TH_LOG("%s: res %d (%s)", what, cqe->res,
		       cqe->res < 0 ? strerror(-cqe->res) : "short");
	}
	io_uring_cqe_seen(&self->ring, cqe);
}

TEST_F(uring, write_then_read_complete_inline_without_a_worker)
{
	uint64_t pos = head_now();

	zt_fill(self->buf, pos, LEN);
	ASSERT_EQ(1, submit_rw(self, true));
	expect_inline(_metadata, self, "IORING_OP_WRITE with space");

	memset(self->buf, 0, LEN);
	ASSERT_EQ(1, submit_rw(self, false));
	expect_inline(_metadata, self, "IORING_OP_READ with data");
	EXPECT_EQ(-1, zt_check(self->buf, pos, LEN));

	EXPECT_EQ(0, workers()) {
		TH_LOG("an io-wq worker ran for a read or write that could complete");
	}
}

/*
 * A read on an empty ring is not punted to a worker that would sleep in
 * read(): it waits by poll and completes when write() brings data. The
 * same for a write on a full ring, completed by read().
 */
TEST_F(uring, read_and_write_that_would_block_wait_by_poll)
{
	struct __kernel_timespec ts = { .tv_sec = 10 };
	uint8_t *room = malloc(TEST_PAGES * 4096);
	struct io_uring_cqe *cqe;
	uint64_t pos = head_now();

	ASSERT_NE(NULL, room);
	ASSERT_EQ(1, submit_rw(self, false));
	usleep(200 * 1000);
	ASSERT_EQ(-EAGAIN, io_uring_peek_cqe(&self->ring, &cqe));
	EXPECT_EQ(0, workers());
	zt_fill(room, pos, LEN);
	ASSERT_EQ(LEN, write(self->fd, room, LEN));
	ASSERT_EQ(0, io_uring_wait_cqe_timeout(&self->ring, &cqe, &ts));
	EXPECT_EQ(LEN, cqe->res);
	io_uring_cqe_seen(&self->ring, cqe);
	EXPECT_EQ(-1, zt_check(self->buf, pos, LEN));

	/* Fill the ring, then a write has to wait for space. */
	pos += LEN;
	zt_fill(room, pos, TEST_PAGES * 4096);
	ASSERT_EQ(TEST_PAGES * 4096, write(self->fd, room, TEST_PAGES * 4096));
	zt_fill(self->buf, pos + TEST_PAGES * 4096, LEN);
	ASSERT_EQ(1, submit_rw(self, true));
	usleep(200 * 1000);
	ASSERT_EQ(-EAGAIN, io_uring_peek_cqe(&self->ring, &cqe));
	ASSERT_EQ(LEN, read(self->fd, room, LEN));
	ASSERT_EQ(0, io_uring_wait_cqe_timeout(&self->ring, &cqe, &ts));
	EXPECT_EQ(LEN, cqe->res);
	io_uring_cqe_seen(&self->ring, cqe);

	EXPECT_EQ(0, workers()) {
		TH_LOG("an io-wq worker ran: a blocked read or write was punted");
	}
	free(room);
}

/* Queue one IORING_OP_SPLICE and wait for its completion: its res. */
static int uring_splice(FIXTURE_DATA(uring) *self, int in, int out,
			unsigned int len, unsigned int flags)
{
	struct __kernel_timespec ts = { .tv_sec = 10 };
	struct io_uring_sqe *sqe = io_uring_get_sqe(&self->ring);
	struct io_uring_cqe *cqe;
	int ret;

	if (!sqe)
		return -EBUSY;
	io_uring_prep_splice(sqe, in, -1, out, -1, len, flags);
	ret = io_uring_submit(&self->ring);
	if (ret != 1)
		return ret < 0 ? ret : -EIO;
	ret = io_uring_wait_cqe_timeout(&self->ring, &cqe, &ts);
	if (ret)
		return ret;
	ret = cqe->res;
	io_uring_cqe_seen(&self->ring, cqe);
	return ret;
}

/*
 * IORING_OP_SPLICE from the device is splice(2): whole ring pages go to
 * the pipe by reference (bytes_spliced_out, nothing copied), and the
 * pipe's bytes stay as they were when the producer writes the next lap
 * over their slots.
 */
TEST_F(uring, splice_out_lends_pages_as_splice_does)
{
	const unsigned int len = 2 * 4096;
	uint8_t *lap = malloc(TEST_PAGES * 4096);
	struct zcdev_stats a, b;
	uint64_t pos = head_now();
	int p[2];

	ASSERT_NE(NULL, lap);
	ASSERT_EQ(0, pipe(p));
	zt_fill(lap, pos, len);
	ASSERT_EQ(len, write(self->fd, lap, len));
	ASSERT_EQ(0, zt_stats(self->fd, &a));
	ASSERT_EQ((int)len, uring_splice(self, self->fd, p[1], len, 0));
	ASSERT_EQ(0, zt_stats(self->fd, &b));
	EXPECT_EQ(len, b.bytes_spliced_out - a.bytes_spliced_out);
	EXPECT_EQ(2, b.pages_spliced_out - a.pages_spliced_out);
	EXPECT_EQ(0, b.bytes_spliced_out_copied - a.bytes_spliced_out_copied);

	/* A whole lap over the lent slots, then the pipe's bytes. */
	zt_fill(lap, pos + len, TEST_PAGES * 4096);
	ASSERT_EQ(TEST_PAGES * 4096, write(self->fd, lap, TEST_PAGES * 4096));
	ASSERT_EQ(len, read(p[0], self->buf, len));
	EXPECT_EQ(-1, zt_check(self->buf, pos, len)) {
		TH_LOG("the pipe's bytes changed when the producer wrote a lap");
	}
	close(p[0]);
	close(p[1]);
	free(lap);
}

/*
 * IORING_OP_SPLICE into the device with SPLICE_F_MOVE is splice(2) with
 * it: whole pages that belong to the pipe alone (written into it) are
 * stolen into the ring, not copied, and read back unchanged.
 */
TEST_F(uring, splice_in_steals_pages_as_splice_does)
{
	const unsigned int len = 2 * 4096;
	struct zcdev_stats a, b;
	uint64_t pos = head_now();
	int p[2];

	ASSERT_EQ(0, pipe(p));
	zt_fill(self->buf, pos, len);
	ASSERT_EQ(len, write(p[1], self->buf, len));
	ASSERT_EQ(0, zt_stats(self->fd, &a));
	ASSERT_EQ((int)len, uring_splice(self, p[0], self->fd, len,
					 SPLICE_F_MOVE));
	ASSERT_EQ(0, zt_stats(self->fd, &b));
	EXPECT_EQ(2, b.pages_stolen_in - a.pages_stolen_in);
	EXPECT_EQ(len, b.bytes_spliced_in_moved - a.bytes_spliced_in_moved);
	EXPECT_EQ(0, b.bytes_spliced_in_copied - a.bytes_spliced_in_copied);

	memset(self->buf, 0, len);
	ASSERT_EQ(len, read(self->fd, self->buf, len));
	EXPECT_EQ(-1, zt_check(self->buf, pos, len));
	close(p[0]);
	close(p[1]);
}

TEST_HARNESS_MAIN
