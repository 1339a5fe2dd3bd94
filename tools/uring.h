/* SPDX-License-Identifier: GPL-2.0 */
/*
 * zcdev(1): io_uring's IORING_OP_READ and IORING_OP_WRITE on the device,
 * one request at a time, through liburing. The tool is built with it when
 * liburing is there (the Makefile's TOOLS_URING); without it every call
 * fails with EOPNOTSUPP and zuring_built() says so.
 */
#ifndef ZCDEV_URING_H
#define ZCDEV_URING_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct zuring;

/* Was this zcdev built with liburing? */
bool zuring_built(void);

/* A ring of a few entries; NULL with errno set (EOPNOTSUPP: not built in). */
struct zuring *zuring_open(void);
void zuring_close(struct zuring *u);

/*
 * One read (write false) or write of n bytes at fd's stream position
 * (offset -1), waited for until its completion: the bytes it moved, or
 * -1 with errno set to minus the completion's result. A signal that
 * interrupts the wait asks keep_waiting(): while it says yes the wait
 * goes on; once it says no the request is canceled, and its completion
 * still awaited, because a request that completed meanwhile moved bytes
 * the caller must account for: they are returned as usual, and only a
 * request that moved nothing fails, with ECANCELED. *enters counts the
 * io_uring_enter() calls made.
 */
ssize_t zuring_rw(struct zuring *u, bool write, int fd, void *buf, size_t n,
		  bool (*keep_waiting)(void), unsigned long *enters);

#endif /* ZCDEV_URING_H */
