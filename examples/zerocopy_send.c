// SPDX-License-Identifier: GPL-2.0
// cc -O2 -o zerocopy_send zerocopy_send.c $(pkg-config --cflags --libs libzcdev)
/*
 * MSG_ZEROCOPY from the mapped ring: connect to a TCP receiver, set
 * SO_ZEROCOPY on the socket, map the ring read-only and send() the bytes
 * between tail and head with MSG_ZEROCOPY, then zcdev_consume() what each
 * send took, at once. Neither zcdev nor send() copies: the socket's
 * buffers reference the ring pages themselves.
 *
 *   zerocopy_send ADDR PORT    (an IPv4 address; until end of file)
 *
 * The socket still references the pages after send() returns, until the
 * data is acknowledged. Consuming them at once is safe because the module
 * keeps a page that something beyond the ring still holds when tail
 * passes it (slots_kept): the producer's next use of that slot gets a
 * fresh page, and the socket sends the bytes it was given.
 *
 * The kernel tells when it let go of the pages: a range of send() calls
 * per notification, read from the socket's error queue
 * (recvmsg(MSG_ERRQUEUE), struct sock_extended_err, origin
 * SO_EE_ORIGIN_ZEROCOPY, [ee_info, ee_data]). Each one that is not read
 * holds some of the socket's optmem, and send() fails with ENOBUFS when
 * that is spent, so they are read after every send, ENOBUFS waits for the
 * next one, and the program waits for the last before it exits. ENOBUFS
 * with none outstanding (optmem_max too small for even one) is met by a
 * plain send, counted. SO_EE_CODE_ZEROCOPY_COPIED says the
 * kernel copied after all: a loopback receiver always gets a copy (its
 * socket must not keep the sender's pages), a NIC that cannot gather from
 * pages does too.
 *
 * Preconditions: the one mmap consumer, no RESET or RESIZE while it runs.
 * With no writer open and an empty ring it stops at once: start the
 * producer first, or at the same time.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libzcdev.h>

#ifndef SO_ZEROCOPY
#define SO_ZEROCOPY	60
#endif
#ifndef MSG_ZEROCOPY
#define MSG_ZEROCOPY	0x4000000
#endif

static unsigned long long sends, completed, copied, plain;

/* Read every notification queued now; -1 on an error other than none. */
static int read_completions(int sock)
{
	char control[128];

	for (;;) {
		struct msghdr msg = {
			.msg_control = control,
			.msg_controllen = sizeof(control),
		};
		struct sock_extended_err *e;
		struct cmsghdr *cm;

		if (recvmsg(sock, &msg, MSG_ERRQUEUE | MSG_DONTWAIT) < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
			if (cm->cmsg_level != SOL_IP || cm->cmsg_type != IP_RECVERR)
				continue;
			e = (struct sock_extended_err *)CMSG_DATA(cm);
			if (e->ee_origin != SO_EE_ORIGIN_ZEROCOPY || e->ee_errno)
				continue;
			/* send() calls ee_info to ee_data, both included. */
			completed += e->ee_data - e->ee_info + 1;
			if (e->ee_code & SO_EE_CODE_ZEROCOPY_COPIED)
				copied += e->ee_data - e->ee_info + 1;
		}
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct zcdev_stats st0, st1, d;
	struct zcdev_info info;
	const struct zcdev_ring_meta *meta;
	unsigned long long total = 0;
	const char *data;
	bool hup = false;
	char line[512];
	int fd, sock, one = 1;

	if (argc != 3 || inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) {
		fprintf(stderr, "usage: zerocopy_send ADDR PORT\n");
		return 2;
	}
	sa.sin_port = htons(atoi(argv[2]));
	fd = zcdev_open(NULL, O_RDONLY, &info);
	if (fd < 0) {
		fprintf(stderr, "open %s: %s\n", zcdev_path(), strerror(-fd));
		return 1;
	}
	sock = socket(AF_INET, SOCK_STREAM, 0);
	if (sock < 0 || connect(sock, (struct sockaddr *)&sa, sizeof(sa))) {
		perror("connect");
		return 1;
	}
	if (setsockopt(sock, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one))) {
		perror("setsockopt(SO_ZEROCOPY)");
		return 1;
	}
	meta = mmap(NULL, info.page_size, PROT_READ, MAP_SHARED, fd,
		    info.meta_offset);
	data = mmap(NULL, 2 * info.ring_bytes, PROT_READ, MAP_SHARED, fd,
		    info.data_offset);
	if (meta == MAP_FAILED || data == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	zcdev_get_stats(fd, &st0);
	for (;;) {
		/* Acquire: every byte below head is in the ring pages. */
		uint64_t head = __atomic_load_n(&meta->head, __ATOMIC_ACQUIRE);
		uint64_t tail = __atomic_load_n(&meta->tail, __ATOMIC_ACQUIRE);
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;
		int ret;

		if (head == tail) {
			if (hup)
				break;	/* still empty after the hangup: EOF */
			if (poll(&pfd, 1, -1) < 0 && errno != EINTR) {
				perror("poll");
				return 1;
			}
			hup = pfd.revents & POLLHUP;
			continue;
		}
		/* The socket takes references to the ring pages: no copy. */
		n = send(sock, data + tail % info.ring_bytes, head - tail,
			 MSG_ZEROCOPY);
		if (n < 0 && errno == ENOBUFS && completed < sends) {
			struct pollfd err = { .fd = sock };
			unsigned long long before = completed;

			/* optmem spent on notifications: wait for one, try again. */
			while (completed == before) {
				if (poll(&err, 1, 10000) == 0) {
					fprintf(stderr, "zerocopy_send: no completion for 10 s\n");
					return 1;
				}
				if (read_completions(sock)) {
					perror("recvmsg(MSG_ERRQUEUE)");
					return 1;
				}
			}
			continue;
		}
		if (n < 0 && errno == ENOBUFS) {
			/*
			 * None outstanding: optmem cannot hold even one
			 * notification (net.core.optmem_max; RLIMIT_MEMLOCK for a
			 * user without CAP_IPC_LOCK). A plain send, counted.
			 */
			n = send(sock, data + tail % info.ring_bytes, head - tail, 0);
			if (n > 0)
				plain++;
		} else if (n > 0) {
			sends++;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			perror("send");
			return 1;	/* nothing released: the bytes stay in the ring */
		}
		/* At once: the module keeps the pages the socket still holds. */
		ret = zcdev_consume(fd, n);
		if (ret) {
			fprintf(stderr, "zcdev_consume: %s\n", strerror(-ret));
			return 1;
		}
		total += n;
		if (read_completions(sock)) {
			perror("recvmsg(MSG_ERRQUEUE)");
			return 1;
		}
	}
	/* A queued notification raises POLLERR: wait for the last one. */
	while (completed < sends) {
		struct pollfd err = { .fd = sock };

		if (poll(&err, 1, 10000) <= 0) {
			fprintf(stderr, "zerocopy_send: no completion for 10 s\n");
			return 1;
		}
		if (read_completions(sock)) {
			perror("recvmsg(MSG_ERRQUEUE)");
			return 1;
		}
	}
	zcdev_get_stats(fd, &st1);
	zcdev_stats_delta(&st0, &st1, &d);
	zcdev_stats_format(line, sizeof(line), &d);
	fprintf(stderr, "zerocopy_send: %llu bytes; %s\n", total, line);
	fprintf(stderr, "zerocopy_send: sends %llu, completed %llu, copied by the kernel %llu\n",
		sends, completed, copied);
	if (plain)
		fprintf(stderr, "zerocopy_send: %llu plain sends (ENOBUFS with none outstanding: see net.core.optmem_max)\n",
			plain);
	fprintf(stderr, "zerocopy_send: CPU copies end to end: zcdev %llu, send(2) 0 (the kernel copied %llu of %llu sends after all)\n",
		(unsigned long long)zcdev_stats_copied(&d), copied, sends);
	close(sock);
	close(fd);
	return 0;
}
