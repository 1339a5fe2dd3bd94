// SPDX-License-Identifier: GPL-2.0
/*
 * zcdev(1): TCP destinations and MSG_ZEROCOPY completions: see net.h.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <time.h>
#include <linux/errqueue.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <linux/sockios.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net.h"
#include "util.h"

#ifndef SO_ZEROCOPY
#define SO_ZEROCOPY	60
#endif
#ifndef MSG_ZEROCOPY
#define MSG_ZEROCOPY	0x4000000
#endif
#ifndef SO_EE_ORIGIN_ZEROCOPY
#define SO_EE_ORIGIN_ZEROCOPY	5
#endif
#ifndef SO_EE_CODE_ZEROCOPY_COPIED
#define SO_EE_CODE_ZEROCOPY_COPIED	1
#endif

int hostport_split(const char *arg, char *host, size_t hlen, char *port,
		   size_t plen)
{
	const char *colon, *h = arg;
	size_t n;
	char *end;
	long v;

	if (*arg == '[') {
		colon = strstr(arg, "]:");
		if (!colon)
			return -1;
		h = arg + 1;
		n = colon - h;
		colon++;
	} else {
		colon = strrchr(arg, ':');
		if (!colon || strchr(arg, ':') != colon)
			return -1;
		n = colon - arg;
	}
	if (!n || n >= hlen || strlen(colon + 1) >= plen)
		return -1;
	errno = 0;
	v = strtol(colon + 1, &end, 10);
	if (colon[1] < '0' || colon[1] > '9' || *end || errno || v < 1 ||
	    v > 65535)
		return -1;
	memcpy(host, h, n);
	host[n] = '\0';
	snprintf(port, plen, "%ld", v);
	return 0;
}

/* Try each address in turn: the socket of the first that connects. */
static int connect_any(const struct sockaddr_storage *addrs, int n,
		       int *err)
{
	int i, fd;

	*err = EADDRNOTAVAIL;
	for (i = 0; i < n; i++) {
		socklen_t len = addrs[i].ss_family == AF_INET6 ?
				sizeof(struct sockaddr_in6) :
				sizeof(struct sockaddr_in);

		fd = socket(addrs[i].ss_family, SOCK_STREAM | SOCK_CLOEXEC,
			    IPPROTO_TCP);
		if (fd < 0) {
			*err = errno;
			continue;
		}
		if (!connect(fd, (const struct sockaddr *)&addrs[i], len))
			return fd;
		*err = errno;
		close(fd);
		/* A stop signal ends the attempt: no other address is tried. */
		if (*err == EINTR)
			break;
	}
	return -1;
}

/* An IPv4 or IPv6 address in text, or localhost: without any resolver. */
static int numeric_addr(const char *host, uint16_t port,
			struct sockaddr_storage *addrs)
{
	struct sockaddr_in *in = (struct sockaddr_in *)&addrs[0];
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&addrs[0];

	memset(addrs, 0, 2 * sizeof(*addrs));
	if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		return 1;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		return 1;
	}
	if (strcmp(host, "localhost"))
		return 0;
	in->sin_family = AF_INET;
	in->sin_port = htons(port);
	in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	in6 = (struct sockaddr_in6 *)&addrs[1];
	in6->sin6_family = AF_INET6;
	in6->sin6_port = htons(port);
	in6->sin6_addr = in6addr_loopback;
	return 2;
}

int tcp_connect(const char *hostport, char *err, size_t len)
{
	struct sockaddr_storage addrs[8];
	char host[256], port[16];
	int fd, n, saved;

	if (hostport_split(hostport, host, sizeof(host), port, sizeof(port))) {
		snprintf(err, len, "%s: not HOST:PORT", hostport);
		errno = EINVAL;
		return -1;
	}
	n = numeric_addr(host, atoi(port), addrs);
	if (!n) {
#ifdef ZCDEV_STATIC
		/*
		 * A static glibc resolves names only through the NSS modules
		 * of the glibc it was built with, which it loads at run time:
		 * this build takes addresses.
		 */
		snprintf(err, len, "%s: cannot resolve %s: this zcdev is linked statically and takes an address (or localhost), not a name",
			 hostport, host);
		errno = ENOENT;
		return -1;
#else
		struct addrinfo hints = {
			.ai_family = AF_UNSPEC,
			.ai_socktype = SOCK_STREAM,
			.ai_protocol = IPPROTO_TCP,
		};
		struct addrinfo *res, *ai;
		int ret = getaddrinfo(host, port, &hints, &res);

		if (ret) {
			snprintf(err, len, "%s: cannot resolve %s: %s", hostport,
				 host, ret == EAI_SYSTEM ? strerror(errno) :
				 gai_strerror(ret));
			errno = ENOENT;
			return -1;
		}
		for (ai = res; ai && n < 8; ai = ai->ai_next)
			if (ai->ai_addrlen <= sizeof(addrs[0]))
				memcpy(&addrs[n++], ai->ai_addr, ai->ai_addrlen);
		freeaddrinfo(res);
#endif
	}
	fd = connect_any(addrs, n, &saved);
	if (fd < 0) {
		snprintf(err, len, "connect to %s: %s", hostport, strerror(saved));
		errno = saved;
	}
	return fd;
}

bool is_tcp_socket(int fd)
{
	int type, proto;
	socklen_t len = sizeof(type);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) || type != SOCK_STREAM)
		return false;
	len = sizeof(proto);
	return !getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) &&
	       proto == IPPROTO_TCP;
}

/* Bytes sent that the peer has not acknowledged, not counting our FIN. */
static uint64_t tcp_unacked(int sock, bool fin)
{
	int q;

	if (ioctl(sock, SIOCOUTQ, &q) || q <= 0)
		return 0;
	/* The FIN takes a sequence number, and is acknowledged last. */
	return fin ? (uint64_t)q - 1 : (uint64_t)q;
}

int tcp_finish(int sock, bool (*stopped)(void), uint64_t *unacked)
{
	bool fin = !shutdown(sock, SHUT_WR), eof = false;
	char buf[4096];
	int err;

	for (;;) {
		struct pollfd pfd = { .fd = sock, .events = POLLIN };
		socklen_t len = sizeof(err);
		ssize_t r;

		err = 0;
		/* Read and drop what the peer sent: the close must not reset. */
		if (!eof) {
			while ((r = recv(sock, buf, sizeof(buf), MSG_DONTWAIT)) > 0 ||
			       (r < 0 && errno == EINTR))
				;
			eof = !r;
			if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
				err = errno;
		}
		*unacked = tcp_unacked(sock, fin);
		if (err)
			break;
		if (!*unacked)
			return 0;
		if (stopped())
			return 1;
		/* An acknowledgment raises no event: look again in a while. */
		if (eof)
			pfd.events = 0;
		if (poll(&pfd, 1, 10) < 0 && errno != EINTR)
			return -1;
		if ((pfd.revents & POLLERR) &&
		    !getsockopt(sock, SOL_SOCKET, SO_ERROR, &err, &len) && err)
			break;
	}
	errno = err;
	return -1;
}

int zc_enable(int sock)
{
	int one = 1;

	return setsockopt(sock, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one));
}

/* One notification: the range of ids [ee_info, ee_data], wrapping at 2^32. */
static void zc_note(struct zc_count *z, const struct sock_extended_err *e)
{
	uint32_t n = e->ee_data - e->ee_info + 1;

	z->done += n;
	if (e->ee_code & SO_EE_CODE_ZEROCOPY_COPIED)
		z->copied += n;
}

int zc_reap(int sock, struct zc_count *z)
{
	char control[256];

	for (;;) {
		struct msghdr msg = {
			.msg_control = control,
			.msg_controllen = sizeof(control),
		};
		struct cmsghdr *cm;
		ssize_t r;

		z->syscalls++;
		r = recvmsg(sock, &msg, MSG_ERRQUEUE | MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
		for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
			const struct sock_extended_err *e;

			if (!(cm->cmsg_level == SOL_IP && cm->cmsg_type == IP_RECVERR) &&
			    !(cm->cmsg_level == SOL_IPV6 && cm->cmsg_type == IPV6_RECVERR))
				continue;
			e = (const void *)CMSG_DATA(cm);
			if (e->ee_origin == SO_EE_ORIGIN_ZEROCOPY && !e->ee_errno)
				zc_note(z, e);
		}
	}
}

/* Wait until done reaches want: zc_wait() and zc_send()'s ENOBUFS. */
static int zc_wait_for(int sock, struct zc_count *z, uint64_t want,
		       int timeout_ms)
{
	double end = now_sec() + timeout_ms / 1000.0;
	uint64_t before;

	for (;;) {
		/* No events asked: POLLERR is what a queued completion raises. */
		struct pollfd pfd = { .fd = sock };
		int left = -1, r;

		before = z->done;
		if (zc_reap(sock, z))
			return -1;
		if (z->done >= want)
			return 0;
		if (timeout_ms >= 0) {
			left = (int)((end - now_sec()) * 1000);
			if (left <= 0)
				return 1;
		}
		z->syscalls++;
		r = poll(&pfd, 1, left);
		if (r < 0)
			return -1;
		if (!r || !(pfd.revents & (POLLERR | POLLHUP)))
			continue;
		if (zc_reap(sock, z))
			return -1;
		/*
		 * POLLERR or POLLHUP without a completion: the connection's
		 * own error or end, which poll() keeps reporting. The
		 * completions follow as the socket frees its buffers: look
		 * again in a while rather than spin.
		 */
		if (z->done == before && z->done < want &&
		    poll(NULL, 0, left < 0 || left > 10 ? 10 : left) < 0)
			return -1;
	}
}

int zc_wait(int sock, struct zc_count *z, int timeout_ms)
{
	return zc_wait_for(sock, z, z->sends, timeout_ms);
}

ssize_t zc_send(int sock, const void *p, size_t n, struct zc_count *z)
{
	ssize_t r;

	for (;;) {
		z->syscalls++;
		r = send(sock, p, n, MSG_ZEROCOPY | MSG_NOSIGNAL);
		if (r > 0) {
			z->sends++;
			return r;
		}
		if (r >= 0 || errno != ENOBUFS)
			return r;
		/*
		 * Spent optmem: read the completions that are queued, else
		 * wait for the next one (not for all), and send again.
		 */
		if (z->done < z->sends) {
			if (zc_wait_for(sock, z, z->done + 1, -1) < 0)
				return -1;
			continue;
		}
		/*
		 * Nothing outstanding and still ENOBUFS: the budget cannot
		 * hold one notification (net.core.optmem_max, or for a user
		 * without CAP_IPC_LOCK, RLIMIT_MEMLOCK for the pinned pages).
		 * These bytes go by a plain send, counted.
		 */
		z->syscalls++;
		r = send(sock, p, n, MSG_NOSIGNAL);
		if (r > 0)
			z->plain++;
		return r;
	}
}
