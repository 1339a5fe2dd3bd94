// SPDX-License-Identifier: GPL-2.0
// cc -O2 -o uring_rw uring_rw.c $(pkg-config --cflags --libs libzcdev liburing)
/*
 * io_uring on the ring, with liburing: IORING_OP_WRITE of stdin's bytes
 * into the ring (put), or IORING_OP_READ of the ring to stdout (get), one
 * request at a time at the stream's position (offset -1: the device has
 * no file position). These are read(2) and write(2) by other means: each
 * byte is copied once by zcdev, as bytes_written_copy and
 * bytes_read_copy count.
 *
 *   zcdev reset; uring_rw put < FILE; uring_rw get > OUT
 *
 * What io_uring changes is who waits. The device declares FMODE_NOWAIT
 * and honours IOCB_NOWAIT, so io_uring first tries each request without
 * sleeping: one that can complete (room for a write, data for a read)
 * completes inline, its completion posted before io_uring_submit()
 * returns; one that cannot gets EAGAIN and is armed for poll, completed
 * when the ring wakes it. Neither goes to an io-wq worker thread (which
 * would show as an iou-wrk-<pid> thread of this process). The program
 * counts both kinds and the workers it saw.
 *
 * Preconditions: get stops at end of file (an empty ring and no writer):
 * start the producer first, or at the same time.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <libzcdev.h>

#define CHUNK	(64 << 10)

static char buf[CHUNK];

/* This process's io-wq workers: threads named iou-wrk-<pid>. */
static int workers(void)
{
	char path[300], comm[32];
	struct dirent *d;
	int n = 0, fd;
	ssize_t len;
	DIR *dir = opendir("/proc/self/task");

	if (!dir)
		return -1;
	while ((d = readdir(dir))) {
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", d->d_name);
		fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		len = read(fd, comm, sizeof(comm) - 1);
		close(fd);
		comm[len > 0 ? len : 0] = '\0';
		n += !strncmp(comm, "iou-wrk-", 8);
	}
	closedir(dir);
	return n;
}

/*
 * Submit one read or write, and wait for its completion unless it was
 * there when io_uring_submit() returned (*inline_done). Returns cqe->res.
 */
static int one_request(struct io_uring *ring, bool write, int fd, char *p,
		       size_t n, bool *inline_done)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	struct io_uring_cqe *cqe;
	int ret;

	if (write)
		io_uring_prep_write(sqe, fd, p, n, -1);
	else
		io_uring_prep_read(sqe, fd, p, n, -1);
	ret = io_uring_submit(ring);
	if (ret < 0)
		return ret;
	*inline_done = !io_uring_peek_cqe(ring, &cqe);
	if (!*inline_done) {
		do
			ret = io_uring_wait_cqe(ring, &cqe);
		while (ret == -EINTR);
		if (ret < 0)
			return ret;
	}
	ret = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	return ret;
}

int main(int argc, char **argv)
{
	unsigned long long total = 0, requests = 0, inlined = 0;
	struct zcdev_stats st0, st1, d;
	struct zcdev_info info;
	struct io_uring ring;
	bool put, in;
	char line[512];
	ssize_t n, off;
	int fd, ret;

	if (argc != 2 || (strcmp(argv[1], "put") && strcmp(argv[1], "get"))) {
		fprintf(stderr, "usage: uring_rw put < IN | uring_rw get > OUT\n");
		return 2;
	}
	put = !strcmp(argv[1], "put");
	fd = zcdev_open(NULL, put ? O_WRONLY : O_RDONLY, &info);
	if (fd < 0) {
		fprintf(stderr, "open %s: %s\n", zcdev_path(), strerror(-fd));
		return 1;
	}
	ret = io_uring_queue_init(4, &ring, 0);
	if (ret < 0) {
		fprintf(stderr, "io_uring_queue_init: %s\n", strerror(-ret));
		return 1;
	}
	zcdev_get_stats(fd, &st0);
	for (;;) {
		if (put) {
			n = read(STDIN_FILENO, buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				perror("read stdin");
				return 1;
			}
			if (!n)
				break;
			/* A write that finds less room completes short: go on. */
			for (off = 0; off < n; off += ret) {
				ret = one_request(&ring, true, fd, buf + off, n - off, &in);
				if (ret <= 0) {
					fprintf(stderr, "io_uring write: %s\n",
						ret ? strerror(-ret) : "wrote nothing");
					return 1;
				}
				requests++;
				inlined += in;
			}
		} else {
			ret = one_request(&ring, false, fd, buf, sizeof(buf), &in);
			if (ret < 0) {
				fprintf(stderr, "io_uring read: %s\n", strerror(-ret));
				return 1;
			}
			requests++;
			inlined += in;
			if (!ret)
				break;	/* end of file: empty, and no writer */
			n = ret;
			/* The bytes left the ring: they must all reach stdout. */
			for (off = 0; off < n; off += ret) {
				ret = write(STDOUT_FILENO, buf + off, n - off);
				if (ret < 0 && errno == EINTR) {
					ret = 0;
				} else if (ret < 0) {
					perror("write stdout");
					return 1;
				}
			}
		}
		total += n;
	}
	zcdev_get_stats(fd, &st1);
	zcdev_stats_delta(&st0, &st1, &d);
	zcdev_stats_format(line, sizeof(line), &d);
	fprintf(stderr, "uring_rw: %llu bytes; %s\n", total, line);
	fprintf(stderr, "uring_rw: requests %llu, inline %llu, by poll %llu, io-wq workers %d\n",
		requests, inlined, requests - inlined, workers());
	fprintf(stderr, "uring_rw: CPU copies end to end: zcdev %llu, %s %llu\n",
		(unsigned long long)zcdev_stats_copied(&d),
		put ? "read(2) input -> buffer" : "write(2) buffer -> output", total);
	io_uring_queue_exit(&ring);
	close(fd);
	return 0;
}
