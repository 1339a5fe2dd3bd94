// SPDX-License-Identifier: GPL-2.0
/*
 * sendfile() from the ring as a stream: it returns what it moved as
 * read() does, and a sendfile whose output has stalled holds back only
 * the consumers that would overtake its bytes, never a producer, and
 * never a consumer that asked not to block.
 *
 * Every call that could hang on a regression runs under an interval
 * timer whose SIGALRM (no SA_RESTART) turns the hang into EINTR, so a
 * failure says what blocked instead of running into the harness timeout.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <linux/zcdev.h>

#include "kselftest_harness.h"
#include "zcdev_test.h"

/* 64 pages: room to spare after the 64 KiB a stalled sendfile holds. */
#define RING_PAGES	64
/* What one round of sendfile lends: its internal pipe's 16 buffers. */
#define LEND_BYTES	(16 * 4096)

FIXTURE(sf) {
	int fd;			/* O_RDWR, blocking: a writer while open */
	int nb;			/* O_RDWR | O_NONBLOCK */
	uint32_t default_pages;
	uint64_t wpos;		/* stream position of the next byte written */
	uint64_t rpos;		/* and of the next byte consumed */
	int tx, rx;		/* a stalled TCP connection, or -1 */
};

static void on_alarm(int sig)
{
	(void)sig;
}

/* SIGALRM interrupts a blocked call with EINTR instead of restarting it. */
static void arm(double seconds)
{
	struct itimerval it = { 0 };
	struct sigaction sa = { .sa_handler = on_alarm };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	it.it_value.tv_sec = (time_t)seconds;
	it.it_value.tv_usec = (suseconds_t)((seconds - (time_t)seconds) * 1e6);
	setitimer(ITIMER_REAL, &it, NULL);
}

static void disarm(void)
{
	struct itimerval off = { 0 };

	setitimer(ITIMER_REAL, &off, NULL);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

FIXTURE_SETUP(sf)
{
	uint64_t pages;

	self->fd = self->nb = self->tx = self->rx = -1;
	/* A stalled sendfile is ended by closing its socket: EPIPE, not death. */
	signal(SIGPIPE, SIG_IGN);
	self->default_pages = 256;
	if (!zt_read_u64("/sys/module/zcdev/parameters/ring_pages", &pages))
		self->default_pages = pages;
	self->fd = zt_open(O_RDWR);
	ASSERT_LE(0, self->fd) {
		TH_LOG("open %s: %s", zt_dev_path(), strerror(errno));
	}
	self->nb = zt_open(O_RDWR | O_NONBLOCK);
	ASSERT_LE(0, self->nb);
	ASSERT_EQ(0, zt_fresh_ring(self->fd, RING_PAGES)) {
		TH_LOG("RESET + RESIZE(%u): %s", RING_PAGES, strerror(errno));
	}
}

FIXTURE_TEARDOWN(sf)
{
	int fd;

	disarm();
	/* Ends a sendfile left stalled by a failed test, so RESET cannot wait. */
	if (self->rx >= 0)
		close(self->rx);
	if (self->tx >= 0)
		close(self->tx);
	if (self->nb >= 0)
		close(self->nb);
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

/* A file in /tmp, already unlinked. */
static int scratch_file(void)
{
	char path[] = "/tmp/zcdev-sf-XXXXXX";
	int fd = mkstemp(path);

	if (fd >= 0)
		unlink(path);
	return fd;
}

struct writer_arg {
	int fd;
	uint64_t pos;
	size_t len;
	useconds_t delay;
	int ret;
};

static void *late_writer(void *p)
{
	struct writer_arg *w = p;

	usleep(w->delay);
	w->ret = zt_put_stream(w->fd, &w->pos, w->len);
	return NULL;
}

/*
 * 4 KiB in the ring, a writer open, and a sendfile() asked for 1 MiB:
 * it returns the 4 KiB at once, as read() would, instead of waiting for
 * the rest. Only a sendfile that has moved nothing waits for data.
 */
TEST_F(sf, sendfile_returns_what_it_moved_without_waiting_for_more)
{
	const size_t len = 4096;
	uint8_t buf[4096];
	struct writer_arg w = { .fd = self->fd, .len = 1000, .delay = 200000 };
	pthread_t thread;
	double t0, took;
	ssize_t got;
	int out;

	out = scratch_file();
	ASSERT_LE(0, out) {
		TH_LOG("mkstemp in /tmp: %s", strerror(errno));
	}
	ASSERT_EQ(0, zt_put_stream(self->fd, &self->wpos, len));

	arm(3);
	t0 = now();
	got = sendfile(out, self->fd, NULL, 1 << 20);
	took = now() - t0;
	disarm();
	ASSERT_EQ((ssize_t)len, got) {
		TH_LOG("sendfile of 1 MiB with 4 KiB in the ring: %zd (%s) after %.3f s; expected 4096 at once",
		       got, got < 0 ? strerror(errno) : "short", took);
	}
	ASSERT_GT(0.5, took) {
		TH_LOG("sendfile returned 4096 only after %.3f s", took);
	}
	ASSERT_EQ((ssize_t)len, pread(out, buf, len, 0));
	ASSERT_EQ(-1, zt_check(buf, self->rpos, len));
	self->rpos += len;

	/* Empty now: it waits for data, and returns what arrives. */
	w.pos = self->wpos;
	ASSERT_EQ(0, pthread_create(&thread, NULL, late_writer, &w));
	arm(3);
	got = sendfile(out, self->fd, NULL, 1 << 20);
	disarm();
	ASSERT_EQ(0, pthread_join(thread, NULL));
	ASSERT_EQ(0, w.ret);
	self->wpos = w.pos;
	ASSERT_EQ((ssize_t)w.len, got) {
		TH_LOG("sendfile on an empty ring, 1000 bytes written 0.2 s later: %zd (%s); expected 1000",
		       got, got < 0 ? strerror(errno) : "short");
	}
	ASSERT_EQ((ssize_t)w.len, pread(out, buf, w.len, len));
	ASSERT_EQ(-1, zt_check(buf, self->rpos, w.len));
	self->rpos += w.len;
	close(out);
}

/*
 * A TCP connection on 127.0.0.1 with small buffers on both sides, so a
 * sender stalls after a few KiB while the receiver does not read.
 * *tx is the sender, *rx the receiver; 0 or -1.
 */
static int stalled_tcp(int *tx, int *rx)
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	socklen_t alen = sizeof(addr);
	int small = 4096, l;

	if (zt_loopback_up())
		return -1;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0)
		return -1;
	*tx = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*tx < 0 ||
	    setsockopt(l, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)) ||
	    setsockopt(*tx, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)) ||
	    bind(l, (struct sockaddr *)&addr, sizeof(addr)) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&addr, &alen) ||
	    connect(*tx, (struct sockaddr *)&addr, sizeof(addr))) {
		close(l);
		return -1;
	}
	*rx = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	close(l);
	return *rx < 0 ? -1 : 0;
}

/* A task of ours, by thread id: is it asleep (state S or D)? */
static bool task_sleeps(pid_t tid)
{
	char path[64], buf[256], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p && (p[2] == 'S' || p[2] == 'D');
}

/* Wait up to 2 s for @tid to go to sleep, then a little longer. */
static bool wait_asleep(pid_t tid)
{
	for (int i = 0; i < 200; i++) {
		if (task_sleeps(tid)) {
			usleep(100000);
			return task_sleeps(tid);
		}
		usleep(10000);
	}
	return false;
}

struct job {
	pid_t tid;
	int fd, out;
	size_t len;
	ssize_t ret;
	int err;
	volatile bool done;
};

static void *do_sendfile(void *p)
{
	struct job *j = p;

	j->tid = syscall(SYS_gettid);
	j->ret = sendfile(j->out, j->fd, NULL, j->len);
	j->err = errno;
	j->done = true;
	return NULL;
}

static void *do_splice(void *p)
{
	struct job *j = p;

	j->tid = syscall(SYS_gettid);
	j->ret = splice(j->fd, NULL, j->out, NULL, j->len, 0);
	j->err = errno;
	j->done = true;
	return NULL;
}

static void *do_resize(void *p)
{
	struct job *j = p;
	uint32_t pages = j->len;

	j->tid = syscall(SYS_gettid);
	j->ret = zt_resize(j->fd, pages);
	j->err = errno;
	j->done = true;
	return NULL;
}

static bool start(pthread_t *t, void *(*fn)(void *), struct job *j)
{
	if (pthread_create(t, NULL, fn, j))
		return false;
	for (int i = 0; i < 200 && !j->tid; i++)
		usleep(10000);
	return j->tid && wait_asleep(j->tid);
}

/*
 * One sendfile() stalls on a socket whose peer does not read, its bytes
 * lent. A splice() and a RESIZE wait behind it for those bytes to settle.
 * Meanwhile producers go on: a non-blocking 1-byte write into a ring
 * with room completes at once. Non-blocking consumers get EAGAIN at once
 * (nothing at tail may be taken before the lend settles), and poll()
 * does not report POLLIN to them. When the peer reads, every byte ends
 * up exactly once where it went.
 */
TEST_F_TIMEOUT(sf, a_stalled_sendfile_holds_back_no_producer_and_no_nonblocking_consumer, 60)
{
	const size_t tail_bytes = 4096;
	/* Static: a failed test returns with the threads still blocked. */
	static struct job sf, sp, rs;
	struct pollfd pfd = { .fd = self->nb, .events = POLLIN };
	pthread_t tsf, tsp, trs;
	uint8_t one, *buf;
	size_t got = 0;
	int p[2], q[2];
	double t0, took;
	uint64_t sent_at;
	ssize_t n;

	buf = malloc(LEND_BYTES);
	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, stalled_tcp(&self->tx, &self->rx)) {
		TH_LOG("TCP on 127.0.0.1: %s", strerror(errno));
	}
	/* p for the blocked splice (which holds its mutex), q for ours. */
	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	ASSERT_EQ(0, pipe2(q, O_CLOEXEC));
	ASSERT_EQ(0, zt_put_stream(self->fd, &self->wpos, LEND_BYTES + tail_bytes));

	sf = (struct job){ .fd = self->fd, .out = self->tx, .len = LEND_BYTES };
	sp = (struct job){ .fd = self->fd, .out = p[1], .len = tail_bytes };
	rs = (struct job){ .fd = self->fd, .len = RING_PAGES };
	sent_at = self->rpos;
	ASSERT_TRUE(start(&tsf, do_sendfile, &sf)) {
		TH_LOG("the sendfile to a socket nobody reads did not stall");
	}
	ASSERT_FALSE(sf.done);
	ASSERT_TRUE(start(&tsp, do_splice, &sp)) {
		TH_LOG("the splice behind the stalled sendfile did not wait");
	}
	ASSERT_TRUE(start(&trs, do_resize, &rs)) {
		TH_LOG("the RESIZE behind the stalled sendfile did not wait");
	}

	/* A producer is not held back by consumers waiting for the lend. */
	one = zt_byte(self->wpos);
	arm(2);
	t0 = now();
	n = write(self->nb, &one, 1);
	took = now() - t0;
	disarm();
	ASSERT_EQ(1, n) {
		TH_LOG("O_NONBLOCK 1-byte write with %u free pages: %s after %.3f s",
		       RING_PAGES - 17, n < 0 ? strerror(errno) : "0", took);
	}
	ASSERT_GT(0.5, took) {
		TH_LOG("O_NONBLOCK 1-byte write took %.3f s", took);
	}
	self->wpos++;

	/* Nor does a non-blocking consumer wait behind the lend. */
	arm(2);
	t0 = now();
	n = read(self->nb, &one, 1);
	took = now() - t0;
	disarm();
	ASSERT_EQ(-1, n);
	ASSERT_EQ(EAGAIN, errno) {
		TH_LOG("O_NONBLOCK read behind a stalled sendfile: %s after %.3f s; expected EAGAIN at once",
		       strerror(errno), took);
	}
	arm(2);
	t0 = now();
	n = splice(self->nb, NULL, q[1], NULL, 1, SPLICE_F_NONBLOCK);
	took = now() - t0;
	disarm();
	ASSERT_EQ(-1, n);
	ASSERT_EQ(EAGAIN, errno) {
		TH_LOG("non-blocking splice behind a stalled sendfile: %s after %.3f s; expected EAGAIN at once",
		       strerror(errno), took);
	}
	ASSERT_EQ(0, poll(&pfd, 1, 0)) {
		TH_LOG("poll reports %#x while only a stalled sendfile's bytes are readable",
		       pfd.revents);
	}
	ASSERT_FALSE(sf.done);
	ASSERT_FALSE(sp.done);
	ASSERT_FALSE(rs.done);

	/* The peer reads: the sendfile, then its waiters, complete. */
	while (got < LEND_BYTES) {
		arm(5);
		n = read(self->rx, buf + got, LEND_BYTES - got);
		disarm();
		ASSERT_LT(0, n) {
			TH_LOG("the peer got %zu of %u bytes: %s", got,
			       LEND_BYTES, n < 0 ? strerror(errno) : "EOF");
		}
		got += n;
	}
	ASSERT_EQ(0, pthread_join(tsf, NULL));
	ASSERT_EQ((ssize_t)LEND_BYTES, sf.ret) {
		TH_LOG("sendfile: %s", sf.ret < 0 ? strerror(sf.err) : "short");
	}
	ASSERT_EQ(-1, zt_check(buf, sent_at, LEND_BYTES));
	ASSERT_EQ(0, pthread_join(tsp, NULL));
	ASSERT_EQ((ssize_t)tail_bytes, sp.ret) {
		TH_LOG("splice: %s", sp.ret < 0 ? strerror(sp.err) : "short");
	}
	ASSERT_EQ((ssize_t)tail_bytes, read(p[0], buf, tail_bytes));
	ASSERT_EQ(-1, zt_check(buf, sent_at + LEND_BYTES, tail_bytes));
	ASSERT_EQ(0, pthread_join(trs, NULL));
	ASSERT_EQ(0, rs.ret) {
		TH_LOG("RESIZE: %s", strerror(rs.err));
	}
	self->rpos = sent_at + LEND_BYTES + tail_bytes;
	ASSERT_EQ(1, read(self->nb, &one, 1));
	ASSERT_EQ(zt_byte(self->rpos), one);
	self->rpos++;
	close(p[0]);
	close(p[1]);
	close(q[0]);
	close(q[1]);
	free(buf);
}

TEST_HARNESS_MAIN
