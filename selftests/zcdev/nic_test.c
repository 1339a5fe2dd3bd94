// SPDX-License-Identifier: GPL-2.0
/*
 * The ring's pages through a network device that reads them itself: TCP
 * to a receiver outside the guest's kernel, through the rig's NIC (QEMU's
 * e1000, selftests/qemu/lib.sh: nic_args), whose driver has scatter-gather
 * and checksum offload, so the kernel hands the device the ring's pages
 * and the device gathers the bytes from them by DMA:
 *
 * - MSG_ZEROCOPY from the ring's mapping: no completion says the kernel
 *   copied (SO_EE_CODE_ZEROCOPY_COPIED), and the bytes are CONSUMEd only
 *   after their completions, as a consumer that sends from the mapping
 *   must (docs/design.md, 3.3);
 * - sendfile() from the device: the ring's counters show the bytes went
 *   out by reference, while the producer keeps writing into the slots
 *   whose pages may still be in flight;
 * - and, as the control that shows the test can tell, the same
 *   MSG_ZEROCOPY send over loopback, which the kernel must copy (its
 *   receiver is a local socket) and says so.
 *
 * The receiver is the rig's sink, ZCDEV_NIC_SINK (address:port): for
 * every connection it counts what arrives and, once the sender shuts its
 * side down, replies "CRC LENGTH" as cksum(1) prints them, so each test
 * checks that every byte the device gathered was the stream's. The
 * route to the sink must leave through a network device that is neither
 * loopback nor virtual (it has a driver: e1000 in the rig), and that
 * device's tx_bytes must grow by at least the bytes sent.
 *
 * Outside the rig (ZCDEV_LANE and ZCDEV_NIC_SINK both unset) the program
 * skips as a whole. In the rig's guest a missing ZCDEV_NIC_SINK fails
 * every test, with init.sh's reason (ZCDEV_NIC_ERROR): the rig promises
 * the NIC on every lane.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <inttypes.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <linux/errqueue.h>
#include <linux/zcdev.h>

#include "kselftest_harness.h"
#include "zcdev_test.h"

#ifndef SO_ZEROCOPY
#define SO_ZEROCOPY	60
#endif
#ifndef MSG_ZEROCOPY
#define MSG_ZEROCOPY	0x4000000
#endif

/* 2 MiB of ring, filled and drained 1 MiB at a time. */
#define RING_PAGES	512
#define CHUNK		(1u << 20)
/*
 * sendfile's ring is small, so that the producer comes back to a slot
 * while the socket may still hold the page it lent.
 */
#define SF_RING_PAGES	64
#define SF_CHUNK	(128u << 10)
/* Per test through the NIC: seconds under TCG (a few MiB/s and up). */
#define NIC_BYTES	(4u << 20)
/* The loopback control needs less. */
#define LOOP_BYTES	(256u << 10)
/* How long one socket call may block before the test fails. */
#define IO_SECONDS	60
/* How long the NIC may take to report carrier after boot. */
#define CARRIER_SECONDS	15

/*
 * Outside the rig there is no sink to send to: skip as a whole, as
 * zt_require_device() does without the device. Inside it (init.sh
 * exports ZCDEV_LANE), the tests run and fail without one.
 */
__attribute__((constructor)) static void nic_require_sink(void)
{
	const char *sink = getenv("ZCDEV_NIC_SINK");

	if ((sink && *sink) || getenv("ZCDEV_LANE"))
		return;
	printf("TAP version 13\n1..0 # SKIP ZCDEV_NIC_SINK is not set: no receiver "
	       "behind a NIC (the QEMU rig's guests have one, selftests/qemu/lib.sh)\n");
	fflush(stdout);
	_exit(KSFT_SKIP_EXIT);
}

/* ---- cksum(1): POSIX's CRC, which the sink replies with ---- */

struct cksum {
	uint32_t crc;
	uint64_t len;
};

static uint32_t crc_table[256];

static void cksum_init(struct cksum *c)
{
	if (!crc_table[1]) {
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t r = i << 24;

			for (int b = 0; b < 8; b++)
				r = r & 0x80000000u ? (r << 1) ^ 0x04c11db7u : r << 1;
			crc_table[i] = r;
		}
	}
	c->crc = 0;
	c->len = 0;
}

static void crc_byte(uint32_t *crc, uint8_t b)
{
	*crc = (*crc << 8) ^ crc_table[((*crc >> 24) ^ b) & 0xff];
}

static void cksum_add(struct cksum *c, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		crc_byte(&c->crc, p[i]);
	c->len += n;
}

/* The CRC cksum prints: the length's bytes, least significant first. */
static uint32_t cksum_value(const struct cksum *c)
{
	uint32_t crc = c->crc;

	for (uint64_t n = c->len; n; n >>= 8)
		crc_byte(&crc, n & 0xff);
	return ~crc;
}

/* The stream bytes [pos, pos + len) (zt_byte()) into @c. */
static void cksum_stream(struct cksum *c, uint64_t pos, size_t len)
{
	uint8_t buf[4096];

	while (len) {
		size_t n = len < sizeof(buf) ? len : sizeof(buf);

		zt_fill(buf, pos, n);
		cksum_add(c, buf, n);
		pos += n;
		len -= n;
	}
}

/* ---- the sink and the route to it ---- */

FIXTURE(nic) {
	int fd;			/* O_RDWR: write() producer, sendfile() */
	int rfd;		/* O_RDONLY: the mapping's consumer */
	uint32_t default_pages;
	struct zcdev_info info;
	struct sockaddr_in sink;
	char ifname[IF_NAMESIZE];
	uint64_t tx0;		/* the device's tx_bytes before the test */
};

/* "A.B.C.D:PORT" into @sa; 0, or -1 if it is not that. */
static int parse_sink(const char *s, struct sockaddr_in *sa)
{
	char host[64], *end;
	const char *colon = strrchr(s, ':');
	unsigned long port;

	if (!colon || colon == s || (size_t)(colon - s) >= sizeof(host))
		return -1;
	memcpy(host, s, colon - s);
	host[colon - s] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || *end || !port || port > 65535)
		return -1;
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons(port);
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

/*
 * The interface that has @addr, and whether it is loopback. 0, or -1
 * when no interface has it.
 */
static int iface_of(struct in_addr addr, char *name, bool *loopback)
{
	struct ifaddrs *ifa, *i;
	int ret = -1;

	if (getifaddrs(&ifa))
		return -1;
	for (i = ifa; i; i = i->ifa_next) {
		const struct sockaddr_in *sin = (const void *)i->ifa_addr;

		if (!sin || sin->sin_family != AF_INET ||
		    sin->sin_addr.s_addr != addr.s_addr)
			continue;
		snprintf(name, IF_NAMESIZE, "%s", i->ifa_name);
		*loopback = i->ifa_flags & IFF_LOOPBACK;
		ret = 0;
		break;
	}
	freeifaddrs(ifa);
	return ret;
}

/* /sys/class/net/IF/FILE as a number; 0, or -1. */
static int net_u64(const char *ifname, const char *file, uint64_t *val)
{
	char path[128];

	snprintf(path, sizeof(path), "/sys/class/net/%s/%s", ifname, file);
	return zt_read_u64(path, val);
}

/*
 * The driver behind IF ("e1000"), or "none" (no device: a virtual one),
 * in a buffer of its own.
 */
static const char *driver_of(const char *ifname)
{
	static char name[64];
	char path[128], link[PATH_MAX];
	ssize_t n;
	char *slash;

	snprintf(path, sizeof(path), "/sys/class/net/%s/device/driver", ifname);
	n = readlink(path, link, sizeof(link) - 1);
	if (n <= 0)
		return "none";
	link[n] = '\0';
	slash = strrchr(link, '/');
	snprintf(name, sizeof(name), "%.63s", slash ? slash + 1 : link);
	return name;
}

static void bound_io(int s)
{
	struct timeval tv = { .tv_sec = IO_SECONDS };

	setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

FIXTURE_SETUP(nic)
{
	const char *sink = getenv("ZCDEV_NIC_SINK");
	const char *why = getenv("ZCDEV_NIC_ERROR");
	struct sockaddr_in local;
	socklen_t alen = sizeof(local);
	bool loopback = true;
	uint64_t pages, carrier = 0;
	int u, i;

	self->fd = self->rfd = -1;
	/* A sink that went away ends a send with EPIPE, not with death. */
	signal(SIGPIPE, SIG_IGN);
	self->default_pages = 256;
	if (!zt_read_u64("/sys/module/zcdev/parameters/ring_pages", &pages))
		self->default_pages = pages;
	self->fd = zt_open(O_RDWR);
	ASSERT_LE(0, self->fd) {
		TH_LOG("open %s: %s", zt_dev_path(), strerror(errno));
	}
	self->rfd = zt_open(O_RDONLY);
	ASSERT_LE(0, self->rfd);
	ASSERT_EQ(0, zt_fresh_ring(self->fd, RING_PAGES)) {
		TH_LOG("RESET + RESIZE(%u): %s", RING_PAGES, strerror(errno));
	}
	ASSERT_EQ(0, zt_info(self->fd, &self->info));
	ASSERT_EQ((uint64_t)RING_PAGES * self->info.page_size, self->info.ring_bytes);

	ASSERT_TRUE(sink && *sink) {
		TH_LOG("ZCDEV_NIC_SINK is not set in the rig's guest: its NIC did not come up (%s)",
		       why && *why ? why : "init.sh gave no reason; see the guest's console");
	}
	ASSERT_EQ(0, parse_sink(sink, &self->sink)) {
		TH_LOG("ZCDEV_NIC_SINK=%s is not ADDRESS:PORT", sink);
	}

	/* The route, without a packet: a UDP connect() picks the source. */
	u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ASSERT_LE(0, u);
	ASSERT_EQ(0, connect(u, (struct sockaddr *)&self->sink, sizeof(self->sink))) {
		TH_LOG("no route to the sink %s: %s", sink, strerror(errno));
	}
	ASSERT_EQ(0, getsockname(u, (struct sockaddr *)&local, &alen));
	close(u);
	ASSERT_EQ(0, iface_of(local.sin_addr, self->ifname, &loopback)) {
		TH_LOG("no interface has %s, the source address towards %s",
		       inet_ntoa(local.sin_addr), sink);
	}
	ASSERT_FALSE(loopback) {
		TH_LOG("the route to %s leaves through %s, a loopback device, not a NIC",
		       sink, self->ifname);
	}
	/* A device with a driver, not a virtual one (tun, veth, a bridge). */
	ASSERT_STRNE("none", driver_of(self->ifname)) {
		TH_LOG("the route to %s leaves through %s, a virtual device, not a NIC",
		       sink, self->ifname);
	}
	for (i = 0; i < CARRIER_SECONDS * 10; i++) {
		if (!net_u64(self->ifname, "carrier", &carrier) && carrier == 1)
			break;
		usleep(100000);
	}
	ASSERT_EQ(1, carrier) {
		TH_LOG("%s (driver %s) has no carrier after %d s", self->ifname,
		       driver_of(self->ifname), CARRIER_SECONDS);
	}
	ASSERT_EQ(0, net_u64(self->ifname, "statistics/tx_bytes", &self->tx0));
}

FIXTURE_TEARDOWN(nic)
{
	int fd;

	if (self->rfd >= 0)
		close(self->rfd);
	if (self->fd >= 0)
		close(self->fd);
	/* No ASSERT here: in 6.1's harness it would jump back into the test. */
	fd = zt_open(O_RDWR);
	EXPECT_LE(0, fd);
	if (fd < 0)
		return;
	EXPECT_EQ(0, zt_fresh_ring(fd, self->default_pages));
	close(fd);
}

/*
 * A TCP connection to the sink, through the NIC: the connection's own
 * source address must be the NIC's, as the route said. -1 with errno
 * set, or with *msg set (errno 0) when it went elsewhere.
 */
static int connect_sink(FIXTURE_DATA(nic) *self, const char **msg)
{
	struct sockaddr_in local;
	socklen_t alen = sizeof(local);
	char ifname[IF_NAMESIZE];
	bool loopback = true;
	int s;

	*msg = NULL;
	s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -1;
	bound_io(s);
	if (connect(s, (struct sockaddr *)&self->sink, sizeof(self->sink)) ||
	    getsockname(s, (struct sockaddr *)&local, &alen)) {
		int err = errno;

		close(s);
		errno = err;
		return -1;
	}
	if (iface_of(local.sin_addr, ifname, &loopback) || loopback ||
	    strcmp(ifname, self->ifname)) {
		*msg = "the connection's source address is not the NIC's";
		close(s);
		errno = 0;
		return -1;
	}
	return s;
}

/*
 * Shut down our side and read the sink's "CRC LENGTH" reply; 0, or -1
 * with a reason in @why.
 */
static int sink_reply(int s, uint32_t *crc, uint64_t *len, char *why, size_t wlen)
{
	char buf[128];
	size_t got = 0;
	ssize_t n;

	if (shutdown(s, SHUT_WR)) {
		snprintf(why, wlen, "shutdown: %s", strerror(errno));
		return -1;
	}
	while (got < sizeof(buf) - 1) {
		n = read(s, buf + got, sizeof(buf) - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(why, wlen, "reading the reply after %zu bytes: %s",
				 got, strerror(errno));
			return -1;
		}
		if (n == 0)
			break;
		got += n;
	}
	buf[got] = '\0';
	if (sscanf(buf, "%" SCNu32 " %" SCNu64, crc, len) != 2) {
		snprintf(why, wlen, "the reply is not \"CRC LENGTH\": \"%.60s\"", buf);
		return -1;
	}
	return 0;
}

/* The sink's reply must be the stream [0, len): every byte arrived, right. */
#define ASSERT_SINK_GOT_STREAM(s, len) do {					\
	struct cksum __want;							\
	uint32_t __crc;								\
	uint64_t __len;								\
	char __why[160];							\
										\
	cksum_init(&__want);							\
	cksum_stream(&__want, 0, (len));					\
	ASSERT_EQ(0, sink_reply((s), &__crc, &__len, __why, sizeof(__why))) {	\
		TH_LOG("the sink: %s", __why);					\
	}									\
	ASSERT_EQ((uint64_t)(len), __len) {					\
		TH_LOG("the sink got %" PRIu64 " bytes of %" PRIu64,		\
		       __len, (uint64_t)(len));					\
	}									\
	ASSERT_EQ(cksum_value(&__want), __crc) {				\
		TH_LOG("the sink's CRC of the %" PRIu64 " bytes is %" PRIu32	\
		       ", the stream's %" PRIu32 ": bytes changed on the way",	\
		       __len, __crc, cksum_value(&__want));			\
	}									\
} while (0)

/* At least @len more bytes left through the NIC since the fixture began. */
#define ASSERT_NIC_SENT(len) do {						\
	uint64_t __tx;								\
										\
	ASSERT_EQ(0, net_u64(self->ifname, "statistics/tx_bytes", &__tx));	\
	ASSERT_LE((uint64_t)(len), __tx - self->tx0) {				\
		TH_LOG("%s sent %" PRIu64 " bytes, fewer than the %" PRIu64	\
		       " of the stream", self->ifname, __tx - self->tx0,	\
		       (uint64_t)(len));					\
	}									\
} while (0)

/* ---- MSG_ZEROCOPY completions ---- */

struct zc_count {
	uint32_t done;		/* sends completed: ids in [0, calls) */
	uint32_t copied;	/* notifications with ZEROCOPY_COPIED */
	uint32_t zerocopy;	/* and without */
};

/*
 * Read completions from @s's error queue until the @calls sends so far
 * (ids 0 to @calls - 1) have all completed, for up to IO_SECONDS. Each
 * notification is a range of ids, [ee_info, ee_data]; TCP's come in
 * order in practice, but nothing here depends on it. 0, or -1 with a
 * reason in @why.
 */
static int wait_completions(int s, uint32_t calls, struct zc_count *zc,
			    char *why, size_t wlen)
{
	time_t deadline = time(NULL) + IO_SECONDS;

	while (zc->done < calls) {
		struct pollfd pfd = { .fd = s, .events = 0 };
		char control[128];
		struct msghdr msg = {
			.msg_control = control,
			.msg_controllen = sizeof(control),
		};
		struct sock_extended_err *serr;
		struct cmsghdr *cm;
		int n;

		if (time(NULL) > deadline) {
			snprintf(why, wlen, "completions for %u of %u sends after %d s",
				 zc->done, calls, IO_SECONDS);
			return -1;
		}
		n = poll(&pfd, 1, 1000);
		if (n < 0 && errno != EINTR) {
			snprintf(why, wlen, "poll: %s", strerror(errno));
			return -1;
		}
		if (n <= 0 || !(pfd.revents & POLLERR))
			continue;
		if (recvmsg(s, &msg, MSG_ERRQUEUE) < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			snprintf(why, wlen, "recvmsg(MSG_ERRQUEUE): %s", strerror(errno));
			return -1;
		}
		cm = CMSG_FIRSTHDR(&msg);
		if (!cm || cm->cmsg_level != SOL_IP || cm->cmsg_type != IP_RECVERR) {
			snprintf(why, wlen, "an error-queue message that is no IP_RECVERR (%d/%d)",
				 cm ? cm->cmsg_level : -1, cm ? cm->cmsg_type : -1);
			return -1;
		}
		serr = (void *)CMSG_DATA(cm);
		if (serr->ee_origin != SO_EE_ORIGIN_ZEROCOPY || serr->ee_errno) {
			snprintf(why, wlen, "an error on the socket: origin %u, %s",
				 serr->ee_origin, strerror(serr->ee_errno));
			return -1;
		}
		if (serr->ee_info > serr->ee_data || serr->ee_data >= calls ||
		    serr->ee_data - serr->ee_info >= calls - zc->done) {
			snprintf(why, wlen, "completion [%u, %u] with %u of %u sends done",
				 serr->ee_info, serr->ee_data, zc->done, calls);
			return -1;
		}
		zc->done += serr->ee_data - serr->ee_info + 1;
		if (serr->ee_code & SO_EE_CODE_ZEROCOPY_COPIED)
			zc->copied++;
		else
			zc->zerocopy++;
	}
	return 0;
}

/*
 * @total stream bytes through the ring, CHUNK at a time: write() them in,
 * send() them from the consumer's mapping with MSG_ZEROCOPY, wait for
 * every completion, then CONSUME. Fills @zc; 0, or -1 with a reason.
 */
static int zerocopy_stream(int fd, int rfd, const struct zcdev_info *info, int s,
			   size_t total, struct zc_count *zc, char *why, size_t wlen)
{
	struct zcdev_ring ring;
	uint64_t wpos = 0;
	uint32_t calls = 0;
	int one = 1, ret = -1;

	if (setsockopt(s, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one))) {
		snprintf(why, wlen, "SO_ZEROCOPY: %s", strerror(errno));
		return -1;
	}
	if (zcdev_ring_map(&ring, rfd, info, false)) {
		snprintf(why, wlen, "mapping the ring: %s", strerror(errno));
		return -1;
	}
	while (wpos < total) {
		size_t len = total - wpos < CHUNK ? total - wpos : CHUNK;
		size_t off = 0;
		int64_t avail;
		char *p;

		if (zt_put_stream(fd, &wpos, len)) {
			snprintf(why, wlen, "write() into the ring: %s", strerror(errno));
			goto out;
		}
		avail = zcdev_ring_data(&ring, &p);
		if (avail != (int64_t)len) {
			snprintf(why, wlen, "the mapping shows %" PRId64 " bytes at tail, not %zu",
				 avail, len);
			goto out;
		}
		while (off < len) {
			ssize_t n = send(s, p + off, len - off, MSG_ZEROCOPY);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				snprintf(why, wlen, "send(MSG_ZEROCOPY) at %zu of %zu: %s",
					 off, len, n < 0 ? strerror(errno) : "0");
				goto out;
			}
			off += n;
			calls++;
		}
		/* The socket holds the ring's pages until these arrive. */
		if (wait_completions(s, calls, zc, why, wlen))
			goto out;
		if (zcdev_consume(rfd, len)) {
			snprintf(why, wlen, "CONSUME(%zu): %s", len, strerror(errno));
			goto out;
		}
	}
	ret = 0;
out:
	zcdev_ring_unmap(&ring);
	return ret;
}

/*
 * The sink answers through the NIC, and what reaches it is what was sent:
 * 1 MiB of write() from a buffer of our own, no ring involved.
 */
TEST_F_TIMEOUT(nic, the_sink_is_reached_through_the_nic, 300)
{
	size_t len = CHUNK;
	struct timespec t0, t1;
	const char *msg;
	uint8_t *buf;
	double secs;
	int s;

	buf = malloc(len);
	ASSERT_NE(NULL, buf);
	zt_fill(buf, 0, len);
	s = connect_sink(self, &msg);
	ASSERT_LE(0, s) {
		TH_LOG("connecting to the sink through %s: %s", self->ifname,
		       msg ? msg : strerror(errno));
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ASSERT_EQ(0, zt_write_all(s, buf, len)) {
		TH_LOG("write() to the sink: %s", strerror(errno));
	}
	ASSERT_SINK_GOT_STREAM(s, len);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ASSERT_NIC_SENT(len);
	secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	TH_LOG("%s (driver %s) reached the sink: 1 MiB of write() in %.2f s (%.1f MiB/s)",
	       self->ifname, driver_of(self->ifname), secs, 1 / secs);
	close(s);
	free(buf);
}

/*
 * MSG_ZEROCOPY from the ring's mapping to the sink: the device gathers
 * the bytes from the ring's pages, so no completion says the kernel
 * copied them. The ring saw the bytes produced by write() and consumed
 * through the mapping, and none read by copy.
 */
TEST_F_TIMEOUT(nic, msg_zerocopy_from_the_mapping_is_not_copied, 300)
{
	struct zcdev_stats st0, st1;
	struct zc_count zc = { 0 };
	struct timespec t0, t1;
	const char *msg;
	char why[160];
	double secs;
	int s;

	s = connect_sink(self, &msg);
	ASSERT_LE(0, s) {
		TH_LOG("connecting to the sink through %s: %s", self->ifname,
		       msg ? msg : strerror(errno));
	}
	ASSERT_EQ(0, zt_stats(self->fd, &st0));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ASSERT_EQ(0, zerocopy_stream(self->fd, self->rfd, &self->info, s, NIC_BYTES,
				     &zc, why, sizeof(why))) {
		TH_LOG("%s", why);
	}
	ASSERT_SINK_GOT_STREAM(s, NIC_BYTES);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ASSERT_EQ(0, zt_stats(self->fd, &st1));
	close(s);

	ASSERT_EQ(0, zc.copied) {
		TH_LOG("%u of %u completions say the kernel copied (SO_EE_CODE_ZEROCOPY_COPIED): "
		       "%s did not take the ring's pages", zc.copied,
		       zc.copied + zc.zerocopy, self->ifname);
	}
	ASSERT_LT(0, zc.zerocopy);
	ASSERT_NIC_SENT(NIC_BYTES);
	EXPECT_EQ(NIC_BYTES, st1.bytes_consumed_mmap - st0.bytes_consumed_mmap);
	EXPECT_EQ(NIC_BYTES, st1.bytes_written_copy - st0.bytes_written_copy);
	EXPECT_EQ(0, st1.bytes_read_copy - st0.bytes_read_copy);
	secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	TH_LOG("%u MiB by MSG_ZEROCOPY from the mapping through %s in %.2f s (%.1f MiB/s), %u completions, none copied",
	       NIC_BYTES >> 20, self->ifname, secs, (NIC_BYTES >> 20) / secs, zc.zerocopy);
}

/*
 * sendfile() from the device to the sink: the ring lends its pages to
 * the socket (bytes_spliced_out, none copied), and the producer writes
 * the next laps into slots whose pages the NIC may not have sent yet,
 * which get fresh pages: the sink's CRC says no byte in flight changed.
 */
TEST_F_TIMEOUT(nic, sendfile_from_the_ring_moves_pages_to_the_nic, 300)
{
	struct zcdev_stats st0, st1;
	struct timespec t0, t1;
	uint64_t wpos = 0;
	const char *msg;
	double secs;
	int s;

	ASSERT_EQ(0, zt_fresh_ring(self->fd, SF_RING_PAGES)) {
		TH_LOG("RESET + RESIZE(%u): %s", SF_RING_PAGES, strerror(errno));
	}
	s = connect_sink(self, &msg);
	ASSERT_LE(0, s) {
		TH_LOG("connecting to the sink through %s: %s", self->ifname,
		       msg ? msg : strerror(errno));
	}
	ASSERT_EQ(0, zt_stats(self->fd, &st0));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (wpos < NIC_BYTES) {
		size_t left = SF_CHUNK;

		ASSERT_EQ(0, zt_put_stream(self->fd, &wpos, SF_CHUNK)) {
			TH_LOG("write() into the ring: %s", strerror(errno));
		}
		while (left) {
			ssize_t n = sendfile(s, self->fd, NULL, left);

			if (n < 0 && errno == EINTR)
				continue;
			ASSERT_LT(0, n) {
				TH_LOG("sendfile to the sink with %zu of %u bytes left: %s",
				       left, SF_CHUNK, n < 0 ? strerror(errno) : "0");
			}
			left -= n;
		}
	}
	ASSERT_SINK_GOT_STREAM(s, NIC_BYTES);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ASSERT_EQ(0, zt_stats(self->fd, &st1));
	close(s);

	ASSERT_NIC_SENT(NIC_BYTES);
	EXPECT_EQ(NIC_BYTES, st1.bytes_spliced_out - st0.bytes_spliced_out);
	EXPECT_EQ(0, st1.bytes_spliced_out_copied - st0.bytes_spliced_out_copied);
	EXPECT_LE(NIC_BYTES / self->info.page_size,
		  st1.pages_spliced_out - st0.pages_spliced_out);
	EXPECT_EQ(0, st1.bytes_read_copy - st0.bytes_read_copy);
	secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	TH_LOG("%u MiB by sendfile from the ring through %s in %.2f s (%.1f MiB/s), %" PRIu64
	       " pipe buffers lent, %" PRIu64 " slots given a fresh page",
	       NIC_BYTES >> 20, self->ifname, secs, (NIC_BYTES >> 20) / secs,
	       (uint64_t)(st1.pages_spliced_out - st0.pages_spliced_out),
	       (uint64_t)(st1.page_swaps - st0.page_swaps));
}

struct drain {
	int s;
	uint64_t got;
	int err;
};

static void *drain(void *p)
{
	struct drain *d = p;
	char buf[65536];
	ssize_t n;

	for (;;) {
		n = read(d->s, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			d->err = n < 0 ? errno : 0;
			return NULL;
		}
		d->got += n;
	}
}

/* The control's ring, as the NIC tests have it; no NIC needed. */
FIXTURE(control) {
	int fd, rfd;
	uint32_t default_pages;
	struct zcdev_info info;
};

FIXTURE_SETUP(control)
{
	uint64_t pages;

	self->fd = self->rfd = -1;
	signal(SIGPIPE, SIG_IGN);
	self->default_pages = 256;
	if (!zt_read_u64("/sys/module/zcdev/parameters/ring_pages", &pages))
		self->default_pages = pages;
	self->fd = zt_open(O_RDWR);
	ASSERT_LE(0, self->fd) {
		TH_LOG("open %s: %s", zt_dev_path(), strerror(errno));
	}
	self->rfd = zt_open(O_RDONLY);
	ASSERT_LE(0, self->rfd);
	ASSERT_EQ(0, zt_fresh_ring(self->fd, RING_PAGES)) {
		TH_LOG("RESET + RESIZE(%u): %s", RING_PAGES, strerror(errno));
	}
	ASSERT_EQ(0, zt_info(self->fd, &self->info));
}

FIXTURE_TEARDOWN(control)
{
	int fd;

	if (self->rfd >= 0)
		close(self->rfd);
	if (self->fd >= 0)
		close(self->fd);
	fd = zt_open(O_RDWR);
	EXPECT_LE(0, fd);
	if (fd < 0)
		return;
	EXPECT_EQ(0, zt_fresh_ring(fd, self->default_pages));
	close(fd);
}

/*
 * The control: the same MSG_ZEROCOPY send from the mapping over
 * loopback, where the receiver is a local socket and the kernel must copy
 * the frags before it queues them there. Its completions say COPIED, so
 * the NIC test's "none copied" is something the test can see fail.
 */
TEST_F_TIMEOUT(control, msg_zerocopy_on_loopback_is_copied, 300)
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	socklen_t alen = sizeof(addr);
	struct zc_count zc = { 0 };
	struct drain d = { .s = -1 };
	pthread_t thread;
	char why[160];
	int l, s;

	ASSERT_EQ(0, zt_loopback_up());
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_LE(0, l);
	ASSERT_EQ(0, bind(l, (struct sockaddr *)&addr, sizeof(addr)));
	ASSERT_EQ(0, listen(l, 1));
	ASSERT_EQ(0, getsockname(l, (struct sockaddr *)&addr, &alen));
	s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_LE(0, s);
	bound_io(s);
	ASSERT_EQ(0, connect(s, (struct sockaddr *)&addr, sizeof(addr)));
	d.s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	ASSERT_LE(0, d.s);
	close(l);
	bound_io(d.s);
	ASSERT_EQ(0, pthread_create(&thread, NULL, drain, &d));

	ASSERT_EQ(0, zerocopy_stream(self->fd, self->rfd, &self->info, s, LOOP_BYTES,
				     &zc, why, sizeof(why))) {
		TH_LOG("%s", why);
	}
	ASSERT_EQ(0, shutdown(s, SHUT_WR));
	ASSERT_EQ(0, pthread_join(thread, NULL));
	close(d.s);
	close(s);
	ASSERT_EQ(LOOP_BYTES, d.got) {
		TH_LOG("the loopback receiver got %" PRIu64 " of %u bytes (%s)",
		       d.got, LOOP_BYTES, strerror(d.err));
	}
	ASSERT_LT(0, zc.copied) {
		TH_LOG("no completion over loopback says COPIED (%u without): the kernel copies "
		       "there, so the test cannot tell a copy from none", zc.zerocopy);
	}
}

TEST_HARNESS_MAIN
