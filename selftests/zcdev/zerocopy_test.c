// SPDX-License-Identifier: GPL-2.0
/*
 * send(MSG_ZEROCOPY) from the ring's mapping (docs/design.md, "Pages held
 * past tail"): the socket keeps referencing ring pages after send()
 * returns, until its completion. A consumer that moves tail right after
 * send() must not let the producer change bytes the network still holds.
 *
 * The network really holds them here: a loopback TCP receiver with a tiny
 * receive buffer that does not read, so the sender's skbs wait in its
 * write queue, their fragments still referencing ring pages, while the
 * producer writes a whole lap over them. Loopback copies only what it
 * delivers (skb_orphan_frags_rx() on the way in); what waits to be sent
 * is the ring's pages themselves. Each test checks that premise
 * (SIOCOUTQNSD: bytes not yet sent when the producer wrote), then lets
 * the receiver read and compares every byte with what was sent.
 *
 * Every test starts on an empty ring of TEST_PAGES and leaves the module's
 * default 256 pages behind.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/errqueue.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/zcdev.h>

#include "kselftest_harness.h"
#include "zcdev_test.h"

#ifndef SO_ZEROCOPY
#define SO_ZEROCOPY	60
#endif
#ifndef MSG_ZEROCOPY
#define MSG_ZEROCOPY	0x4000000
#endif

#define DEFAULT_PAGES	256
#define TEST_PAGES	16
#define WAIT_MS		10000

/* At most this much is sent from the ring (a 16-page lap of it). */
#define ZC_SEND_MAX (64u << 10)

FIXTURE(zc) {
	int fd;
	struct zcdev_info info;
	uint64_t rb;		/* ring bytes */
	uint8_t *data;		/* the double mapping of the data pages */
	int tx, rx;		/* the sender's and the receiver's sockets */
	uint8_t *buf;
};

/* A connected loopback pair: @rx with a tiny receive buffer, never read yet. */
static int tcp_pair(int *tx, int *rx)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	int one = 1, small = 1, big = 4 << 20;
	int l;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0)
		return -1;
	/* Set before listen(): the accepted socket inherits it. */
	if (setsockopt(l, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)) ||
	    bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&a, &alen))
		goto err_l;
	*tx = socket(AF_INET, SOCK_STREAM, 0);
	if (*tx < 0)
		goto err_l;
	if (setsockopt(*tx, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big)) ||
	    setsockopt(*tx, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one)) ||
	    setsockopt(*tx, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) ||
	    connect(*tx, (struct sockaddr *)&a, sizeof(a)))
		goto err_tx;
	*rx = accept(l, NULL, NULL);
	if (*rx < 0)
		goto err_tx;
	close(l);
	return 0;

err_tx:
	close(*tx);
err_l:
	close(l);
	return -1;
}

FIXTURE_SETUP(zc)
{
	uint32_t pages = TEST_PAGES;

	self->tx = self->rx = -1;
	self->fd = zt_open(O_RDWR);
	ASSERT_LE(0, self->fd) {
		TH_LOG("open %s: %s", zt_dev_path(), strerror(errno));
	}
	ASSERT_EQ(0, ioctl(self->fd, ZCDEV_IOC_RESET));
	ASSERT_EQ(0, ioctl(self->fd, ZCDEV_IOC_RESIZE, &pages));
	ASSERT_EQ(0, zt_info(self->fd, &self->info));
	self->rb = self->info.ring_bytes;
	self->data = mmap(NULL, 2 * self->rb, PROT_READ | PROT_WRITE,
			  MAP_SHARED, self->fd, self->info.data_offset);
	ASSERT_NE(MAP_FAILED, self->data) {
		TH_LOG("mmap: %s", strerror(errno));
	}
	self->buf = malloc(self->rb);
	ASSERT_NE(NULL, self->buf);
	ASSERT_EQ(0, tcp_pair(&self->tx, &self->rx)) {
		TH_LOG("loopback TCP pair: %s", strerror(errno));
	}
}

FIXTURE_TEARDOWN(zc)
{
	uint32_t pages = DEFAULT_PAGES;

	if (self->tx >= 0)
		close(self->tx);
	if (self->rx >= 0)
		close(self->rx);
	free(self->buf);
	if (self->data && self->data != MAP_FAILED)
		munmap(self->data, 2 * self->rb);
	if (self->fd >= 0) {
		ioctl(self->fd, ZCDEV_IOC_RESET);
		ioctl(self->fd, ZCDEV_IOC_RESIZE, &pages);
		close(self->fd);
	}
}

/* Where the next byte written goes: head, from sysfs. */
static uint64_t head_now(void)
{
	uint64_t v = 0;

	zt_read_u64(ZT_SYSFS_DIR "head", &v);
	return v;
}

/* write() the stream's bytes [pos, pos + len) into the ring. */
static int put(FIXTURE_DATA(zc) *self, uint64_t pos, size_t len)
{
	zt_fill(self->buf, pos, len);
	return write(self->fd, self->buf, len) == (ssize_t)len ? 0 : -1;
}

/* Bytes of @s queued but not yet sent (the window is closed). */
static int unsent(int s)
{
	int n = -1;

	return ioctl(s, SIOCOUTQNSD, &n) ? -1 : n;
}

/* Read @len bytes from @s into @buf, waiting up to WAIT_MS for each. */
static ssize_t recv_all(int s, uint8_t *buf, size_t len)
{
	struct pollfd p = { .fd = s, .events = POLLIN };
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		if (poll(&p, 1, WAIT_MS) != 1)
			break;
		n = recv(s, buf + got, len - got, MSG_DONTWAIT);
		if (n <= 0)
			break;
		got += n;
	}
	return got;
}

/* SEND_ZC requests that said a notification follows, and those that came. */
static unsigned int uring_more, uring_notes;

/*
 * One IORING_OP_SEND_ZC of @len bytes from @buf, non-blocking: its first
 * completion, the bytes sent (or -errno). When that completion says
 * IORING_CQE_F_MORE, the request holds the pages until a notification
 * completion (IORING_CQE_F_NOTIF) follows, reaped by uring_notifs().
 */
static ssize_t uring_send_zc(struct io_uring *u, int s, const void *buf,
			     size_t len)
{
	struct __kernel_timespec ts = { .tv_sec = WAIT_MS / 1000 };
	struct io_uring_sqe *sqe = io_uring_get_sqe(u);
	struct io_uring_cqe *cqe;
	int ret;

	if (!sqe)
		return -EBUSY;
	io_uring_prep_send_zc(sqe, s, buf, len, MSG_DONTWAIT, 0);
	ret = io_uring_submit(u);
	if (ret != 1)
		return ret < 0 ? ret : -EIO;
	for (;;) {
		ret = io_uring_wait_cqe_timeout(u, &cqe, &ts);
		if (ret)
			return ret;
		if (!(cqe->flags & IORING_CQE_F_NOTIF))
			break;
		/* An earlier send's notification: counted later. */
		uring_notes++;
		io_uring_cqe_seen(u, cqe);
	}
	ret = cqe->res;
	if (cqe->flags & IORING_CQE_F_MORE)
		uring_more++;
	io_uring_cqe_seen(u, cqe);
	if (ret == -EAGAIN) {
		errno = EAGAIN;
		return -1;
	}
	return ret;
}

/* Wait for every notification SEND_ZC owes: 0, or -1 after WAIT_MS. */
static int uring_notifs(struct io_uring *u)
{
	struct __kernel_timespec ts = { .tv_sec = WAIT_MS / 1000 };
	struct io_uring_cqe *cqe;

	while (uring_notes < uring_more) {
		if (io_uring_wait_cqe_timeout(u, &cqe, &ts))
			return -1;
		if (cqe->flags & IORING_CQE_F_NOTIF)
			uring_notes++;
		io_uring_cqe_seen(u, cqe);
	}
	return 0;
}

/*
 * Fill the ring, send what the socket takes of it with MSG_ZEROCOPY from
 * the mapping and CONSUME that at once (the rest by read()); then the
 * producer writes a whole lap over it (by write(), or through the mapping
 * and PRODUCE). Returns the bytes sent, from stream position *@pos, in
 * *@nsends calls.
 */
static uint64_t send_consume_overwrite(struct __test_metadata *_metadata,
				       FIXTURE_DATA(zc) *self, bool mmap_producer,
				       struct io_uring *u,
				       uint64_t *pos, unsigned int *nsends)
{
	uint64_t rb = self->rb, off, sent = 0, n;
	struct zcdev_stats st0, st1, st2;
	ssize_t ret = 0;
	int left;

	*pos = head_now();
	*nsends = 0;
	off = *pos % rb;
	ASSERT_EQ(0, put(self, *pos, rb));
	/*
	 * Until the socket's send buffer is full, or 64 KiB: the receiver
	 * drains through a closed window, a few bytes a segment, and a
	 * whole ring of that takes minutes under an emulator. Each call one
	 * id.
	 */
	while (sent < ZC_SEND_MAX) {
		if (u)
			ret = uring_send_zc(u, self->tx, self->data + off + sent,
					    ZC_SEND_MAX - sent);
		else
			ret = send(self->tx, self->data + off + sent,
				   ZC_SEND_MAX - sent, MSG_ZEROCOPY | MSG_DONTWAIT);
		if (ret <= 0)
			break;
		sent += ret;
		++*nsends;
	}
	ASSERT_LT(4096, sent) {
		TH_LOG("send(MSG_ZEROCOPY): %zd, %s", ret, strerror(errno));
	}
	/*
	 * send() has returned, or SEND_ZC's first completion has come
	 * (io_uring may take the references after io_uring_enter()
	 * returns): nothing else before CONSUME (the contract).
	 */
	ASSERT_EQ(0, zcdev_get_stats(self->fd, &st0));
	n = sent;
	ASSERT_EQ(0, ioctl(self->fd, ZCDEV_IOC_CONSUME, &n));
	ASSERT_EQ(0, zcdev_get_stats(self->fd, &st1));
	/* What did not fit in the socket: consumed by a copy, unsent. */
	if (sent < rb)
		ASSERT_EQ((ssize_t)(rb - sent), read(self->fd, self->buf, rb - sent));

	if (mmap_producer) {
		zt_fill(self->data + off, *pos + rb, rb);
		n = rb;
		ASSERT_EQ(0, ioctl(self->fd, ZCDEV_IOC_PRODUCE, &n));
	} else {
		ASSERT_EQ(0, put(self, *pos + rb, rb));
	}
	ASSERT_EQ(0, zcdev_get_stats(self->fd, &st2));
	/* The lap landed where the sent bytes were... */
	ASSERT_EQ(-1, zt_check(self->data + off, *pos + rb, rb));

	/* ...while the socket had not sent them yet: the test's premise. */
	left = unsent(self->tx);
	TH_LOG("%llu bytes sent in %u calls; unsent after the producer's lap: %d",
	       (unsigned long long)sent, *nsends, left);
	ASSERT_LE(4096, left) {
		TH_LOG("the receiver's window did not close: no premise");
	}
	/*
	 * Every page the socket still held was kept when tail passed it,
	 * and the producer's lap gave each of those slots a fresh page.
	 */
	TH_LOG("slots_kept +%llu at CONSUME, page_swaps +%llu in the lap",
	       (unsigned long long)(st1.slots_kept - st0.slots_kept),
	       (unsigned long long)(st2.page_swaps - st1.page_swaps));
	EXPECT_LE((uint64_t)left / 4096, st1.slots_kept - st0.slots_kept);
	EXPECT_LE(st1.slots_kept - st0.slots_kept, st2.page_swaps - st1.page_swaps);
	return sent;
}

/* The receiver reads what was sent, and it is what was sent. */
static void expect_original(struct __test_metadata *_metadata,
			    FIXTURE_DATA(zc) *self, uint64_t pos, uint64_t len)
{
	uint8_t *got = malloc(self->rb);
	ssize_t n;
	long bad;

	ASSERT_NE(NULL, got);
	n = recv_all(self->rx, got, len);
	EXPECT_EQ((ssize_t)len, n);
	bad = zt_check(got, pos, n);
	EXPECT_EQ(-1, bad) {
		TH_LOG("byte %ld of %zd received differs from what was sent (%u, sent %u): the producer changed it in flight",
		       bad, n, got[bad], zt_byte(pos + bad));
	}
	free(got);
}

TEST_F_TIMEOUT(zc, consume_then_write_lap_keeps_bytes_in_flight, 120)
{
	unsigned int nsends;
	uint64_t pos, len;

	len = send_consume_overwrite(_metadata, self, false, NULL, &pos, &nsends);
	expect_original(_metadata, self, pos, len);
}

TEST_F_TIMEOUT(zc, consume_then_produce_lap_keeps_bytes_in_flight, 120)
{
	unsigned int nsends;
	uint64_t pos, len;

	len = send_consume_overwrite(_metadata, self, true, NULL, &pos, &nsends);
	expect_original(_metadata, self, pos, len);
}

/*
 * The same with io_uring's IORING_OP_SEND_ZC from the mapping (not a
 * registered buffer: that would pin the pages, and a pinned page is not
 * kept), consumed once its first completion has come; the notifications
 * follow once the receiver has read.
 */
TEST_F_TIMEOUT(zc, send_zc_then_write_lap_keeps_bytes_in_flight, 120)
{
	unsigned int nsends;
	struct io_uring u;
	uint64_t pos, len;
	int ret;

	ret = io_uring_queue_init(8, &u, 0);
	if (ret == -ENOSYS || ret == -EPERM)
		SKIP(return, "io_uring is not available: %s", strerror(-ret));
	ASSERT_EQ(0, ret);
	len = send_consume_overwrite(_metadata, self, false, &u, &pos, &nsends);
	expect_original(_metadata, self, pos, len);
	EXPECT_EQ(0, uring_notifs(&u)) {
		TH_LOG("%u of %u SEND_ZC notifications never came",
		       uring_more - uring_notes, uring_more);
	}
	io_uring_queue_exit(&u);
}

/*
 * The completions: once the receiver has read and the data was
 * acknowledged, notifications whose ranges cover the ids of the sends,
 * 0 to nsends - 1, in order and each once. Loopback delivers by copying
 * (SO_EE_CODE_ZEROCOPY_COPIED, logged): a device that transmits would not.
 */
TEST_F_TIMEOUT(zc, completion_on_the_error_queue, 120)
{
	struct pollfd p = { .fd = self->tx, .events = 0 };
	char control[128];
	struct msghdr msg = { .msg_control = control };
	struct sock_extended_err *ee;
	struct cmsghdr *cm;
	unsigned int nsends, done = 0, notes = 0, copied = 0;
	uint64_t pos, len;

	len = send_consume_overwrite(_metadata, self, false, NULL, &pos, &nsends);
	expect_original(_metadata, self, pos, len);

	while (done < nsends) {
		/* POLLERR is reported whatever .events asks for. */
		ASSERT_EQ(1, poll(&p, 1, WAIT_MS)) {
			TH_LOG("ids %u..%u never completed", done, nsends - 1);
		}
		msg.msg_controllen = sizeof(control);
		ASSERT_LE(0, recvmsg(self->tx, &msg, MSG_ERRQUEUE)) {
			TH_LOG("recvmsg(MSG_ERRQUEUE): %s", strerror(errno));
		}
		ee = NULL;
		for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
			if (cm->cmsg_level == SOL_IP && cm->cmsg_type == IP_RECVERR)
				ee = (struct sock_extended_err *)CMSG_DATA(cm);
		ASSERT_NE(NULL, ee);
		ASSERT_EQ(0, ee->ee_errno);
		ASSERT_EQ(SO_EE_ORIGIN_ZEROCOPY, ee->ee_origin);
		/* ee_info..ee_data: the first and last id it completes. */
		ASSERT_EQ(done, ee->ee_info);
		ASSERT_LE(ee->ee_info, ee->ee_data);
		ASSERT_GT(nsends, ee->ee_data);
		TH_LOG("completion: sends %u..%u%s", ee->ee_info, ee->ee_data,
		       ee->ee_code & SO_EE_CODE_ZEROCOPY_COPIED ?
		       ", SO_EE_CODE_ZEROCOPY_COPIED (the kernel copied)" :
		       ", not copied (the pages themselves went out)");
		if (ee->ee_code & SO_EE_CODE_ZEROCOPY_COPIED)
			copied++;
		notes++;
		done = ee->ee_data + 1;
	}
	TH_LOG("%u sends, %u notifications, %u of them copied", nsends,
	       notes, copied);
	/* Nothing more is queued. */
	msg.msg_controllen = sizeof(control);
	EXPECT_GT(0, recvmsg(self->tx, &msg, MSG_ERRQUEUE | MSG_DONTWAIT));
}

TEST_HARNESS_MAIN
