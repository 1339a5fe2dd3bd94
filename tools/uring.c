// SPDX-License-Identifier: GPL-2.0
/*
 * zcdev(1): io_uring read and write, one request at a time: see uring.h.
 * The device declares FMODE_NOWAIT, so a request that can complete does
 * so inline, inside io_uring_enter(), and one that cannot waits by poll:
 * neither reaches an io-wq worker (selftests/zcdev/iouring_test.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "uring.h"

#ifdef ZCDEV_HAVE_URING
#include <liburing.h>

/* user_data of the two requests a call may make */
#define ZU_RW		1
#define ZU_CANCEL	2

struct zuring {
	struct io_uring ring;
};

bool zuring_built(void)
{
	return true;
}

struct zuring *zuring_open(void)
{
	struct zuring *u = calloc(1, sizeof(*u));
	int ret;

	if (!u)
		return NULL;
	ret = io_uring_queue_init(4, &u->ring, 0);
	if (ret < 0) {
		free(u);
		errno = -ret;
		return NULL;
	}
	return u;
}

void zuring_close(struct zuring *u)
{
	if (!u)
		return;
	io_uring_queue_exit(&u->ring);
	free(u);
}

/* Ask the kernel to cancel the read or write in flight. */
static int cancel_rw(struct zuring *u, unsigned long *enters)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
	int ret;

	if (!sqe)
		return -EBUSY;
	io_uring_prep_cancel64(sqe, ZU_RW, 0);
	io_uring_sqe_set_data64(sqe, ZU_CANCEL);
	do {
		(*enters)++;
		ret = io_uring_submit(&u->ring);
	} while (ret == -EINTR);
	return ret < 0 ? ret : 0;
}

ssize_t zuring_rw(struct zuring *u, bool write, int fd, void *buf, size_t n,
		  bool (*keep_waiting)(void), unsigned long *enters)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
	struct io_uring_cqe *cqe;
	bool canceling = false;
	int ret, res = 0;

	if (!sqe) {
		errno = EBUSY;
		return -1;
	}
	if (write)
		io_uring_prep_write(sqe, fd, buf, n, -1);
	else
		io_uring_prep_read(sqe, fd, buf, n, -1);
	io_uring_sqe_set_data64(sqe, ZU_RW);
	/* One io_uring_enter(): submit, and wait unless it completed inline. */
	(*enters)++;
	ret = io_uring_submit_and_wait(&u->ring, 1);
	if (ret < 0 && ret != -EINTR) {
		errno = -ret;
		return -1;
	}
	for (;;) {
		bool done = false;

		/* A cancel's own completion is passed over here or on the next call. */
		while (!io_uring_peek_cqe(&u->ring, &cqe)) {
			if (io_uring_cqe_get_data64(cqe) == ZU_RW) {
				res = cqe->res;
				done = true;
			}
			io_uring_cqe_seen(&u->ring, cqe);
		}
		if (done)
			break;
		if (ret == -EINTR && !canceling && !keep_waiting()) {
			ret = cancel_rw(u, enters);
			if (ret < 0) {
				errno = -ret;
				return -1;
			}
			canceling = true;
		}
		(*enters)++;
		ret = io_uring_wait_cqe(&u->ring, &cqe);
		if (ret < 0 && ret != -EINTR) {
			errno = -ret;
			return -1;
		}
	}
	if (res < 0) {
		errno = -res;
		return -1;
	}
	return res;
}

#else /* !ZCDEV_HAVE_URING */

bool zuring_built(void)
{
	return false;
}

struct zuring *zuring_open(void)
{
	errno = EOPNOTSUPP;
	return NULL;
}

void zuring_close(struct zuring *u)
{
	(void)u;
}

ssize_t zuring_rw(struct zuring *u, bool write, int fd, void *buf, size_t n,
		  bool (*keep_waiting)(void), unsigned long *enters)
{
	(void)u;
	(void)write;
	(void)fd;
	(void)buf;
	(void)n;
	(void)keep_waiting;
	(void)enters;
	errno = EOPNOTSUPP;
	return -1;
}

#endif
