/* SPDX-License-Identifier: GPL-2.0 */
/*
 * zcdev(1): TCP destinations (HOST:PORT) and MSG_ZEROCOPY's completions,
 * for get --to, get --method zerocopy and the bench's TCP rows.
 */
#ifndef ZCDEV_NET_H
#define ZCDEV_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Split HOST:PORT ([ADDR]:PORT for an IPv6 address) into host and port;
 * -1 when it is not of that form or PORT is not 1 to 65535.
 */
int hostport_split(const char *arg, char *host, size_t hlen, char *port,
		   size_t plen);

/*
 * A TCP connection to HOST:PORT, the first address that takes one: the
 * socket (blocking, close-on-exec), or -1 with a message in err. A signal
 * that interrupts connect() gives EINTR in errno.
 */
int tcp_connect(const char *hostport, char *err, size_t len);

/*
 * The end of a connection we only send on: shutdown(SHUT_WR), then read
 * and drop whatever the peer sends (a close() with unread bytes would
 * reset the connection and discard what the socket has yet to send)
 * until the peer has acknowledged every byte sent. 0 then; 1 when
 * stopped() said to stop waiting; -1 with errno (ECONNRESET: the peer
 * reset the connection). *unacked: the bytes sent that the peer had not
 * acknowledged at the end.
 */
int tcp_finish(int sock, bool (*stopped)(void), uint64_t *unacked);

/* Is fd a TCP stream socket (connected or not: this does not ask)? */
bool is_tcp_socket(int fd);

/*
 * The completions of send(MSG_ZEROCOPY) on one socket. Every send() that
 * took bytes is one notification id; the kernel reports ranges of them
 * on the socket's error queue, with SO_EE_CODE_ZEROCOPY_COPIED when it
 * copied the bytes after all (loopback delivers a copy, a device that
 * cannot gather from pages gets one).
 */
struct zc_count {
	uint64_t sends;		/* send() calls that took bytes */
	uint64_t done;		/* of them, completed */
	uint64_t copied;	/* of those, the kernel copied */
	uint64_t plain;		/* plain send()s made instead (ENOBUFS) */
	unsigned long syscalls;	/* recvmsg() and poll() calls made */
};

/* setsockopt(SO_ZEROCOPY): 0, or -1 with errno. */
int zc_enable(int sock);

/*
 * Read every completion the error queue holds now (MSG_DONTWAIT): 0, or
 * -1 with errno on an error other than an empty queue.
 */
int zc_reap(int sock, struct zc_count *z);

/*
 * Wait until every send has completed, or timeout_ms has passed (-1:
 * no limit): 0 when all are in, 1 on the timeout, -1 with errno
 * (EINTR: a signal came).
 */
int zc_wait(int sock, struct zc_count *z, int timeout_ms);

/*
 * send(MSG_ZEROCOPY) of up to n bytes at p: what send() took, or -1 with
 * errno. ENOBUFS (the socket's optmem budget for notifications is spent)
 * is met by reading completions, waiting for the next one if none is
 * queued, and sending again. ENOBUFS with no send outstanding means the
 * budget cannot hold even one (net.core.optmem_max, RLIMIT_MEMLOCK): then
 * these bytes go by a plain send(), counted in plain.
 */
ssize_t zc_send(int sock, const void *p, size_t n, struct zc_count *z);

#endif /* ZCDEV_NET_H */
