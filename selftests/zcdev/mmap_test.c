// SPDX-License-Identifier: GPL-2.0
/*
 * The mmap path: the meta page and the data pages of /dev/zcdev, moved
 * with ZCDEV_IOC_PRODUCE / ZCDEV_IOC_CONSUME, mixed with read()/write(),
 * torn down by resize and reset (SIGBUS, never stale memory: docs/design.md,
 * invariant 4), inherited by fork, raced by a resize, and used as the
 * user buffer of the device's own read() and write() (invariant 6).
 *
 * Every test starts on an empty ring of its own size (RESET + RESIZE) and
 * leaves the module's default 256 pages behind: the programs of a run
 * share one device. Counter checks compare GET_STATS before and after,
 * which holds because the tests run one at a time.
 *
 * Accesses that must raise SIGBUS are made in a forked child and checked
 * with WTERMSIG, or here under a SIGBUS handler (guarded_touch()) when the
 * point is that this process's own PTEs were zapped; either way the test
 * lives on to check the counters and to restore the ring.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/zcdev.h>

#include "kselftest_harness.h"
#include "zcdev_test.h"

/* What the module loads with (ring_pages=256); every test leaves it so. */
#define DEFAULT_PAGES	256
/* Small enough to wrap often, big enough for multi-page spans. */
#define TEST_PAGES	16
/* How long a test waits for the other side of the ring before failing. */
#define WAIT_MS		5000

static uint64_t meta_head(const struct zcdev_ring_meta *m)
{
	return __atomic_load_n(&m->head, __ATOMIC_ACQUIRE);
}

static uint64_t meta_tail(const struct zcdev_ring_meta *m)
{
	return __atomic_load_n(&m->tail, __ATOMIC_ACQUIRE);
}

static uint64_t meta_gen(const struct zcdev_ring_meta *m)
{
	return __atomic_load_n(&m->generation, __ATOMIC_ACQUIRE);
}

static uint64_t meta_ring_bytes(const struct zcdev_ring_meta *m)
{
	return __atomic_load_n(&m->ring_bytes, __ATOMIC_ACQUIRE);
}

static int produce(int fd, uint64_t bytes)
{
	return ioctl(fd, ZCDEV_IOC_PRODUCE, &bytes);
}

static int consume(int fd, uint64_t bytes)
{
	return ioctl(fd, ZCDEV_IOC_CONSUME, &bytes);
}

static void *map_data(int fd, const struct zcdev_info *info, uint64_t first,
		      uint64_t pages, int prot)
{
	return mmap(NULL, pages * info->page_size, prot, MAP_SHARED, fd,
		    info->data_offset + first * info->page_size);
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/*
 * Load or store one byte in a forked child and return its wait status:
 * exit 0 if the access went through, or the signal that killed it.
 */
static int touch_in_child(volatile uint8_t *p, bool store)
{
	struct rlimit no_core = { 0, 0 };
	int status;
	pid_t pid;

	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		/* A dying child must not leave a core file in the guest. */
		setrlimit(RLIMIT_CORE, &no_core);
		if (store)
			*p = 0xa5;
		else
			(void)*p;
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return status;
}

static bool killed_by(int status, int sig)
{
	return status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == sig;
}

static bool exited_ok(int status)
{
	return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static const char *describe(int status)
{
	static char buf[64];

	if (status == -1)
		snprintf(buf, sizeof(buf), "fork/wait failed: %s", strerror(errno));
	else if (WIFSIGNALED(status))
		snprintf(buf, sizeof(buf), "killed by signal %d", WTERMSIG(status));
	else
		snprintf(buf, sizeof(buf), "exited with %d", WEXITSTATUS(status));
	return buf;
}

/*
 * In-process SIGBUS: the access that must fault is made here, through
 * PTEs this process already had, so that only a zap can make it fault.
 * Thread-local, so the racing toucher thread below can use it too.
 */
static __thread sigjmp_buf sigbus_env;
static __thread volatile sig_atomic_t sigbus_armed;

static void on_sigbus(int sig)
{
	if (sigbus_armed)
		siglongjmp(sigbus_env, 1);
	/* Not a guarded access: die of it, as if nobody had caught it. */
	signal(sig, SIG_DFL);
}

static int catch_sigbus(bool on)
{
	struct sigaction sa = { .sa_handler = on ? on_sigbus : SIG_DFL };

	return sigaction(SIGBUS, &sa, NULL);
}

/* Load (and store) one byte; false if that raised SIGBUS. */
static bool __attribute__((noinline)) guarded_touch(volatile uint8_t *p,
						     bool store)
{
	if (sigsetjmp(sigbus_env, 1)) {
		sigbus_armed = 0;
		return false;
	}
	sigbus_armed = 1;
	(void)p[0];
	if (store)
		p[0] = 0x5a;
	sigbus_armed = 0;
	return true;
}

FIXTURE(ring) {
	int fd;
	struct zcdev_info info;
	uint64_t ps;		/* page size */
	uint64_t rb;		/* ring bytes now */
	const struct zcdev_ring_meta *meta;
	uint8_t *data;		/* 2 * TEST_PAGES pages at data_offset, RW */
	size_t data_len;
};

static void reload_info(struct __test_metadata *_metadata,
			FIXTURE_DATA(ring) *self)
{
	ASSERT_EQ(0, zt_info(self->fd, &self->info)) {
		TH_LOG("GET_INFO: %s", strerror(errno));
	}
	self->ps = self->info.page_size;
	self->rb = self->info.ring_bytes;
}

/* An empty ring of @pages pages; the fixture's mappings stay in place. */
static void fresh_ring(struct __test_metadata *_metadata,
		       FIXTURE_DATA(ring) *self, uint32_t pages)
{
	ASSERT_EQ(0, zt_fresh_ring(self->fd, pages)) {
		TH_LOG("RESET + RESIZE(%u): %s", pages, strerror(errno));
	}
	reload_info(_metadata, self);
	ASSERT_EQ(pages, self->info.ring_pages);
}

/*
 * Move head and tail of the empty ring together, without data, until
 * head % @modulus == @off, so that a test can put its bytes across the
 * wrap (or across a page boundary) wherever it needs them.
 */
static void seek_ring(struct __test_metadata *_metadata,
		      FIXTURE_DATA(ring) *self, uint64_t modulus, uint64_t off)
{
	uint64_t head = meta_head(self->meta);
	uint64_t left = (off + modulus - head % modulus) % modulus;

	ASSERT_EQ(head, meta_tail(self->meta));
	while (left) {
		uint64_t n = min_u64(left, self->rb);

		ASSERT_EQ(0, produce(self->fd, n));
		ASSERT_EQ(0, consume(self->fd, n));
		left -= n;
	}
	ASSERT_EQ(off, meta_head(self->meta) % modulus);
}

static void get_stats(struct __test_metadata *_metadata, int fd,
		      struct zcdev_stats *st)
{
	ASSERT_EQ(0, zt_stats(fd, st)) {
		TH_LOG("GET_STATS: %s", strerror(errno));
	}
}

/* write() @len bytes of the stream at the current head. */
static void write_stream(struct __test_metadata *_metadata,
			 FIXTURE_DATA(ring) *self, uint64_t len)
{
	uint64_t head = meta_head(self->meta);
	uint8_t *buf = malloc(len);

	ASSERT_NE(NULL, buf);
	zt_fill(buf, head, len);
	ASSERT_EQ(0, zt_write_all(self->fd, buf, len)) {
		TH_LOG("write of %llu bytes: %s", (unsigned long long)len,
		       strerror(errno));
	}
	free(buf);
	ASSERT_EQ(head + len, meta_head(self->meta));
}

FIXTURE_SETUP(ring)
{
	self->fd = zt_open(O_RDWR);
	ASSERT_LE(0, self->fd) {
		TH_LOG("open %s: %s", zt_dev_path(), strerror(errno));
	}
	fresh_ring(_metadata, self, TEST_PAGES);
	ASSERT_EQ((uint64_t)sysconf(_SC_PAGESIZE), self->ps);

	self->meta = mmap(NULL, self->ps, PROT_READ, MAP_SHARED, self->fd,
			  self->info.meta_offset);
	ASSERT_NE(MAP_FAILED, self->meta) {
		self->meta = NULL;
		TH_LOG("mmap of the meta page: %s", strerror(errno));
	}
	self->data_len = 2 * self->rb;
	self->data = map_data(self->fd, &self->info, 0, 2 * TEST_PAGES,
			      PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, self->data) {
		self->data = NULL;
		TH_LOG("mmap of the data pages: %s", strerror(errno));
	}
}

FIXTURE_TEARDOWN(ring)
{
	if (self->data)
		EXPECT_EQ(0, munmap(self->data, self->data_len));
	if (self->meta)
		EXPECT_EQ(0, munmap((void *)self->meta, self->ps));
	/* Drain first: a resize keeps unread bytes and may refuse. */
	EXPECT_EQ(0, zt_fresh_ring(self->fd, DEFAULT_PAGES)) {
		TH_LOG("restoring %u pages: %s", DEFAULT_PAGES, strerror(errno));
	}
	close(self->fd);
}

/* ---- the meta page ---------------------------------------------------- */

TEST_F(ring, meta_page_matches_get_info_and_sysfs)
{
	const struct zcdev_ring_meta *m = self->meta;
	uint64_t val;
	int i;

	EXPECT_EQ(ZCDEV_ABI_VERSION, m->abi_version);
	EXPECT_EQ(self->info.abi_version, m->abi_version);
	EXPECT_EQ(self->info.page_size, m->page_size);
	EXPECT_EQ(self->info.ring_bytes, meta_ring_bytes(m));
	EXPECT_EQ((uint64_t)TEST_PAGES * self->ps, meta_ring_bytes(m));
	EXPECT_EQ(0ULL, self->info.meta_offset);
	EXPECT_EQ((uint64_t)self->info.page_size, self->info.data_offset);
	EXPECT_LE(TEST_PAGES, self->info.max_ring_pages);
	for (i = 0; i < 3; i++)
		EXPECT_EQ(0ULL, m->reserved[i]);

	/* The ring is empty after the setup's RESET. */
	EXPECT_EQ(meta_head(m), meta_tail(m));
	ASSERT_EQ(0, zt_sysfs_u64("head", &val));
	EXPECT_EQ(val, meta_head(m));
	ASSERT_EQ(0, zt_sysfs_u64("tail", &val));
	EXPECT_EQ(val, meta_tail(m));
	ASSERT_EQ(0, zt_sysfs_u64("generation", &val));
	EXPECT_EQ(val, meta_gen(m));
	ASSERT_EQ(0, zt_sysfs_u64("ring_bytes", &val));
	EXPECT_EQ(val, meta_ring_bytes(m));
}

/*
 * Every call that moves a counter has published it in the meta page by
 * the time it returns: no polling, no delay.
 */
TEST_F(ring, meta_follows_write_read_produce_consume_resize_reset)
{
	const struct zcdev_ring_meta *m = self->meta;
	uint64_t h, t, g, val;
	uint8_t buf[1000];

	h = meta_head(m);
	t = meta_tail(m);
	g = meta_gen(m);
	ASSERT_EQ(h, t);

	write_stream(_metadata, self, 1000);
	EXPECT_EQ(h + 1000, meta_head(m));
	EXPECT_EQ(t, meta_tail(m));

	ASSERT_EQ(300, zt_read_all(self->fd, buf, 300));
	EXPECT_EQ(-1, zt_check(buf, t, 300));
	EXPECT_EQ(h + 1000, meta_head(m));
	EXPECT_EQ(t + 300, meta_tail(m));

	zt_fill(self->data + (h + 1000) % self->rb, h + 1000, 500);
	ASSERT_EQ(0, produce(self->fd, 500));
	EXPECT_EQ(h + 1500, meta_head(m));
	EXPECT_EQ(t + 300, meta_tail(m));

	EXPECT_EQ(-1, zt_check(self->data + (t + 300) % self->rb, t + 300, 700));
	ASSERT_EQ(0, consume(self->fd, 700));
	EXPECT_EQ(h + 1500, meta_head(m));
	EXPECT_EQ(t + 1000, meta_tail(m));
	EXPECT_EQ(g, meta_gen(m));

	/* A resize keeps the 500 unread bytes and the counters. */
	ASSERT_EQ(0, zt_resize(self->fd, 2 * TEST_PAGES));
	EXPECT_EQ(g + 1, meta_gen(m));
	EXPECT_EQ(2ULL * TEST_PAGES * self->ps, meta_ring_bytes(m));
	EXPECT_EQ(h + 1500, meta_head(m));
	EXPECT_EQ(t + 1000, meta_tail(m));
	reload_info(_metadata, self);
	EXPECT_EQ(self->info.ring_bytes, meta_ring_bytes(m));

	ASSERT_EQ(0, zt_resize(self->fd, 1));
	EXPECT_EQ(g + 2, meta_gen(m));
	EXPECT_EQ(self->ps, meta_ring_bytes(m));
	EXPECT_EQ(h + 1500, meta_head(m));
	EXPECT_EQ(t + 1000, meta_tail(m));

	/*
	 * RESET drops the data: tail catches up with head, which may first
	 * move up to a page boundary but never back.
	 */
	ASSERT_EQ(0, zcdev_reset(self->fd));
	EXPECT_EQ(g + 3, meta_gen(m));
	EXPECT_EQ(meta_head(m), meta_tail(m));
	EXPECT_LE(h + 1500, meta_head(m));
	EXPECT_GT(h + 1500 + self->ps, meta_head(m));
	EXPECT_EQ(self->ps, meta_ring_bytes(m));

	ASSERT_EQ(0, zt_resize(self->fd, 0));
	EXPECT_EQ(g + 4, meta_gen(m));
	EXPECT_EQ(0ULL, meta_ring_bytes(m));
	ASSERT_EQ(0, zt_sysfs_u64("generation", &val));
	EXPECT_EQ(val, meta_gen(m));
	ASSERT_EQ(0, zt_sysfs_u64("head", &val));
	EXPECT_EQ(val, meta_head(m));
}

/* ---- data through the double mapping ---------------------------------- */

/*
 * Producer and consumer both work in place, each span written or checked
 * with one memcpy / one scan starting at (position % ring_bytes), which is
 * only possible because the ring is mapped twice in a row. A span that
 * runs past ring_bytes must also show up at the start of the first copy:
 * the same pages, not a second buffer.
 */
TEST_F(ring, produce_consume_in_place_across_the_wrap)
{
	const uint64_t ps = self->ps, rb = self->rb;
	const uint64_t sizes[] = { 1, ps - 3, 3 * ps + 7, rb / 2 + 5, ps + 1,
				   rb, 17, 5 * ps - 1, rb - 1, 2 * ps };
	const unsigned int nsizes = sizeof(sizes) / sizeof(sizes[0]);
	uint64_t head, tail, end, moved = 0;
	unsigned int i, wraps_in = 0, wraps_out = 0;
	struct zcdev_stats st0, st1;

	/* Start just short of the end so the very first spans wrap. */
	seek_ring(_metadata, self, rb, rb - 2 * ps - 100);
	get_stats(_metadata, self->fd, &st0);
	head = tail = meta_head(self->meta);
	end = head + 8 * rb;

	for (i = 0; tail < end; i++) {
		uint64_t space = rb - (head - tail);
		uint64_t n = min_u64(min_u64(sizes[i % nsizes], space), end - head);
		uint64_t off = head % rb;

		if (n) {
			zt_fill(self->data + off, head, n);
			if (off + n > rb) {
				/* The part past the end is ring offset 0. */
				ASSERT_EQ(0, memcmp(self->data,
						    self->data + rb, off + n - rb));
				wraps_in++;
			}
			ASSERT_EQ(0, produce(self->fd, n));
			head += n;
			ASSERT_EQ(head, meta_head(self->meta));
		}

		n = min_u64(sizes[(3 * i + 1) % nsizes], head - tail);
		off = tail % rb;
		ASSERT_EQ(-1, zt_check(self->data + off, tail, n)) {
			TH_LOG("span at %llu (ring offset %llu, %llu bytes) differs at +%ld",
			       (unsigned long long)tail, (unsigned long long)off,
			       (unsigned long long)n,
			       zt_check(self->data + off, tail, n));
		}
		if (off + n > rb)
			wraps_out++;
		ASSERT_EQ(0, consume(self->fd, n));
		tail += n;
		moved += n;
		ASSERT_EQ(tail, meta_tail(self->meta));
	}
	EXPECT_LT(0, wraps_in);
	EXPECT_LT(0, wraps_out);

	get_stats(_metadata, self->fd, &st1);
	EXPECT_EQ(moved, st1.bytes_produced_mmap - st0.bytes_produced_mmap);
	EXPECT_EQ(moved, st1.bytes_consumed_mmap - st0.bytes_consumed_mmap);
	/* In place: not one byte went through the copy path. */
	EXPECT_EQ(st0.bytes_written_copy, st1.bytes_written_copy);
	EXPECT_EQ(st0.bytes_read_copy, st1.bytes_read_copy);
}

/* Bytes written through the mapping exist for readers only once produced. */
TEST_F(ring, produce_commits_what_the_mapping_wrote)
{
	uint64_t head = meta_head(self->meta);
	uint8_t buf[3000];
	int rfd;

	rfd = zt_open(O_RDONLY | O_NONBLOCK);
	ASSERT_LE(0, rfd);
	zt_fill(self->data + head % self->rb, head, sizeof(buf));
	EXPECT_EQ(-1, read(rfd, buf, sizeof(buf)));
	EXPECT_EQ(EAGAIN, errno);

	ASSERT_EQ(0, produce(self->fd, 2000));
	EXPECT_EQ(2000, read(rfd, buf, sizeof(buf)));
	EXPECT_EQ(-1, zt_check(buf, head, 2000));
	ASSERT_EQ(0, produce(self->fd, 1000));
	EXPECT_EQ(1000, read(rfd, buf, sizeof(buf)));
	EXPECT_EQ(-1, zt_check(buf, head + 2000, 1000));
	EXPECT_EQ(-1, read(rfd, buf, sizeof(buf)));
	EXPECT_EQ(EAGAIN, errno);
	close(rfd);
}

TEST_F(ring, overcommit_is_einval_and_moves_nothing)
{
	const struct zcdev_ring_meta *m = self->meta;
	uint64_t h = meta_head(m), t = meta_tail(m);
	struct zcdev_stats st0, st1;

	get_stats(_metadata, self->fd, &st0);
	EXPECT_EQ(-1, consume(self->fd, 1));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, produce(self->fd, self->rb + 1));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, produce(self->fd, UINT64_MAX));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(h, meta_head(m));
	EXPECT_EQ(t, meta_tail(m));
	EXPECT_EQ(0, produce(self->fd, 0));
	EXPECT_EQ(0, consume(self->fd, 0));
	EXPECT_EQ(h, meta_head(m));
	EXPECT_EQ(t, meta_tail(m));

	/* Full is allowed; one byte more is not. */
	EXPECT_EQ(0, produce(self->fd, self->rb - 10));
	EXPECT_EQ(-1, produce(self->fd, 11));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(0, produce(self->fd, 10));
	EXPECT_EQ(-1, produce(self->fd, 1));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(h + self->rb, meta_head(m));

	EXPECT_EQ(-1, consume(self->fd, self->rb + 1));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, consume(self->fd, UINT64_MAX));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(t, meta_tail(m));
	EXPECT_EQ(0, consume(self->fd, self->rb));
	EXPECT_EQ(-1, consume(self->fd, 1));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(t + self->rb, meta_tail(m));

	get_stats(_metadata, self->fd, &st1);
	EXPECT_EQ(self->rb, st1.bytes_produced_mmap - st0.bytes_produced_mmap);
	EXPECT_EQ(self->rb, st1.bytes_consumed_mmap - st0.bytes_consumed_mmap);
}

/* ---- mmap mixed with read()/write(), concurrently --------------------- */

struct side {
	int fd;
	uint8_t *data;
	const struct zcdev_ring_meta *meta;
	uint64_t ps, rb, start, total;
	volatile bool stop;	/* the other side is done: stop early */
	volatile int err;	/* errno of the first failure, 0 if none */
	const char *what;	/* and what failed */
};

static uint64_t chunk(const struct side *s, unsigned int i)
{
	const uint64_t sizes[] = { 1, s->ps - 3, s->ps + 3, 3 * s->ps + 7, 17,
				   s->rb / 2 + 3, s->rb };

	return sizes[i % (sizeof(sizes) / sizeof(sizes[0]))];
}

static bool wait_fd(int fd, short events)
{
	struct pollfd pfd = { .fd = fd, .events = events };

	return poll(&pfd, 1, WAIT_MS) == 1 && (pfd.revents & events);
}

/* Write the stream in place at head, then PRODUCE it; wait for space. */
static void *mmap_producer(void *arg)
{
	struct side *s = arg;
	uint64_t pos = s->start, end = s->start + s->total;
	unsigned int i = 0;

	while (pos < end) {
		/* Acquire: the reader is done with what tail has passed. */
		uint64_t space = s->rb - (pos - meta_tail(s->meta));
		uint64_t n;

		if (!space) {
			if (!wait_fd(s->fd, POLLOUT)) {
				s->err = ETIMEDOUT;
				s->what = "poll(POLLOUT) on a full ring";
				break;
			}
			continue;
		}
		n = min_u64(min_u64(chunk(s, i++), space), end - pos);
		zt_fill(s->data + pos % s->rb, pos, n);
		if (produce(s->fd, n)) {
			s->err = errno;
			s->what = "PRODUCE";
			break;
		}
		pos += n;
	}
	return NULL;
}

/* write() the stream in odd-sized chunks; write() blocks while full. */
static void *write_producer(void *arg)
{
	struct side *s = arg;
	uint64_t pos = s->start, end = s->start + s->total;
	uint8_t *buf = malloc(s->rb);
	unsigned int i = 0;

	if (!buf) {
		s->err = ENOMEM;
		s->what = "malloc";
		return NULL;
	}
	while (pos < end) {
		uint64_t n = min_u64(chunk(s, i++), end - pos);

		zt_fill(buf, pos, n);
		if (zt_write_all(s->fd, buf, n)) {
			s->err = errno;
			s->what = "write";
			break;
		}
		pos += n;
	}
	free(buf);
	return NULL;
}

TEST_F(ring, mmap_producer_read_consumer_byte_exact)
{
	struct side s = {
		.fd = self->fd, .data = self->data, .meta = self->meta,
		.ps = self->ps, .rb = self->rb, .total = 6 * self->rb,
	};
	struct zcdev_stats st0, st1;
	uint64_t pos, end;
	unsigned int i = 0;
	pthread_t thread;
	uint8_t *buf;

	seek_ring(_metadata, self, self->rb, self->rb - 1234);
	s.start = pos = meta_head(self->meta);
	end = pos + s.total;
	buf = malloc(self->rb);
	ASSERT_NE(NULL, buf);
	get_stats(_metadata, self->fd, &st0);
	ASSERT_EQ(0, pthread_create(&thread, NULL, mmap_producer, &s));

	while (pos < end && !s.err) {
		ssize_t n;

		if (!wait_fd(self->fd, POLLIN))
			break;
		/* Odd sizes, out of step with the producer's. */
		n = read(self->fd, buf, min_u64(chunk(&s, i++ + 3), end - pos));
		ASSERT_LT(0, n) {
			TH_LOG("read at %llu: %s", (unsigned long long)pos,
			       n ? strerror(errno) : "EOF");
		}
		ASSERT_EQ(-1, zt_check(buf, pos, n)) {
			TH_LOG("read at %llu (%zd bytes) differs at +%ld",
			       (unsigned long long)pos, n, zt_check(buf, pos, n));
		}
		pos += n;
	}
	ASSERT_EQ(0, pthread_join(thread, NULL));
	ASSERT_EQ(0, s.err) {
		TH_LOG("producer: %s: %s", s.what, strerror(s.err));
	}
	ASSERT_EQ(end, pos);
	EXPECT_EQ(end, meta_head(self->meta));
	EXPECT_EQ(end, meta_tail(self->meta));
	get_stats(_metadata, self->fd, &st1);
	EXPECT_EQ(s.total, st1.bytes_produced_mmap - st0.bytes_produced_mmap);
	EXPECT_EQ(s.total, st1.bytes_read_copy - st0.bytes_read_copy);
	free(buf);
}

TEST_F(ring, write_producer_mmap_consumer_byte_exact)
{
	struct side s = {
		.fd = self->fd, .data = self->data, .meta = self->meta,
		.ps = self->ps, .rb = self->rb, .total = 6 * self->rb,
	};
	struct zcdev_stats st0, st1;
	uint64_t pos, end;
	unsigned int i = 0;
	pthread_t thread;

	seek_ring(_metadata, self, self->rb, self->rb - 4321);
	s.start = pos = meta_tail(self->meta);
	end = pos + s.total;
	get_stats(_metadata, self->fd, &st0);
	ASSERT_EQ(0, pthread_create(&thread, NULL, write_producer, &s));

	while (pos < end && !s.err) {
		uint64_t avail, n;

		if (!wait_fd(self->fd, POLLIN))
			break;
		/* Acquire: the bytes below head are in place before we look. */
		avail = meta_head(self->meta) - pos;
		ASSERT_LT(0ULL, avail);
		ASSERT_GE(self->rb, avail);
		n = min_u64(avail, chunk(&s, i++ + 5));
		ASSERT_EQ(-1, zt_check(self->data + pos % self->rb, pos, n)) {
			TH_LOG("in-place span at %llu (%llu bytes) differs at +%ld",
			       (unsigned long long)pos, (unsigned long long)n,
			       zt_check(self->data + pos % self->rb, pos, n));
		}
		ASSERT_EQ(0, consume(self->fd, n));
		pos += n;
		ASSERT_EQ(pos, meta_tail(self->meta));
	}
	ASSERT_EQ(0, pthread_join(thread, NULL));
	ASSERT_EQ(0, s.err) {
		TH_LOG("producer: %s: %s", s.what, strerror(s.err));
	}
	ASSERT_EQ(end, pos);
	EXPECT_EQ(end, meta_head(self->meta));
	get_stats(_metadata, self->fd, &st1);
	EXPECT_EQ(s.total, st1.bytes_written_copy - st0.bytes_written_copy);
	EXPECT_EQ(s.total, st1.bytes_consumed_mmap - st0.bytes_consumed_mmap);
}

/*
 * Both halves of the double mapping are the same bytes, so a producer may
 * write any byte through either. Here it switches half every byte, while
 * a splice consumer lends it the very page it is filling: a fault through
 * one half must not give the slot a fresh page while the other half still
 * maps the old one, or bytes written there are lost before PRODUCE.
 */
static void *alias_producer(void *arg)
{
	struct side *s = arg;
	uint64_t pos = s->start, end = s->start + s->total;
	unsigned int i = 0;

	while (pos < end && !s->err && !s->stop) {
		uint64_t space = s->rb - (pos - meta_tail(s->meta));
		uint64_t n;

		if (!space) {
			if (!wait_fd(s->fd, POLLOUT) && !s->stop) {
				s->err = ETIMEDOUT;
				s->what = "poll(POLLOUT) on a full ring";
			}
			continue;
		}
		n = min_u64(min_u64(1 + (i++ * 37) % 700, space), end - pos);
		for (uint64_t j = 0; j < n; j++) {
			uint64_t off = (pos + j) % s->rb;

			s->data[off + ((i + j) & 1) * s->rb] = zt_byte(pos + j);
		}
		if (produce(s->fd, n)) {
			s->err = errno;
			s->what = "PRODUCE";
		}
		pos += n;
	}
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

TEST_F(ring, both_halves_producer_vs_splice_consumer_loses_nothing)
{
	struct side s = {
		.fd = self->fd, .data = self->data, .meta = self->meta,
		.ps = self->ps, .total = 4 << 20,
	};
	uint64_t pos, end, splice_len = 1;
	double deadline = now_s() + 8;
	const char *fail = NULL;
	ssize_t n = 0, got = 0;
	pthread_t thread;
	long bad = -1;
	uint8_t *buf;
	int pfd[2];

	fresh_ring(_metadata, self, 4);
	s.rb = self->rb;
	s.start = pos = meta_head(self->meta);
	end = pos + s.total;
	buf = malloc(self->rb);
	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, pipe(pfd));
	ASSERT_EQ(0, pthread_create(&thread, NULL, alias_producer, &s));

	/* Bounded in time too: a slow emulator checks less, never fails. */
	while (pos < end && !s.err && now_s() < deadline) {
		if (!wait_fd(self->fd, POLLIN)) {
			fail = "no data within the wait";
			break;
		}
		splice_len = splice_len * 7 % 3001;
		n = splice(self->fd, NULL, pfd[1], NULL, 1 + splice_len,
			   SPLICE_F_NONBLOCK);
		if (n < 0 && errno == EAGAIN)
			continue;
		if (n <= 0) {
			fail = n ? strerror(errno) : "splice: EOF";
			break;
		}
		got = zt_read_all(pfd[0], buf, n);
		if (got != n) {
			fail = "short read from the pipe";
			break;
		}
		bad = zt_check(buf, pos, n);
		if (bad >= 0) {
			fail = "a byte the producer wrote never reached the ring";
			break;
		}
		pos += n;
	}
	/* Stop the producer, and wake it if it waits for room. */
	s.stop = true;
	EXPECT_EQ(0, zcdev_reset(self->fd));
	ASSERT_EQ(0, pthread_join(thread, NULL));

	ASSERT_EQ(NULL, fail) {
		TH_LOG("at stream byte %llu: %s", (unsigned long long)pos, fail);
		if (bad >= 0)
			TH_LOG("stream byte %llu (ring offset %llu) is %u, not %u",
			       (unsigned long long)(pos + bad),
			       (unsigned long long)((pos + bad) % self->rb),
			       buf[bad], zt_byte(pos + bad));
	}
	ASSERT_EQ(0, s.err) {
		TH_LOG("producer: %s: %s", s.what, strerror(s.err));
	}
	TH_LOG("%llu bytes checked", (unsigned long long)(pos - s.start));
	EXPECT_LT(s.start, pos);
	close(pfd[0]);
	close(pfd[1]);
	free(buf);
}

/* ---- fault-around: what one trap maps, and that a lend unmaps it ------ */

/* The fault handler maps the aligned 32-page window around the faulting page. */
#define AROUND_PAGES	32

/*
 * Does this process have a PTE for @p? Bit 63 of its /proc/self/pagemap
 * entry. Asked of the page tables rather than counted in minor faults: a
 * fault count also sees a stack page that compaction happened to move.
 */
static int pte_present(const void *p)
{
	long ps = sysconf(_SC_PAGESIZE);
	uint64_t e = 0;
	ssize_t n;
	int fd;

	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = pread(fd, &e, sizeof(e), (uintptr_t)p / ps * sizeof(e));
	close(fd);
	return n == sizeof(e) ? (int)(e >> 63) : -1;
}

/* Is the data page at @i in the same fault-around window as the one at @j? */
static bool same_window(const FIXTURE_DATA(ring) *self, uint64_t i, uint64_t j)
{
	uint64_t win = AROUND_PAGES * self->ps;

	return ((uintptr_t)self->data + i * self->ps) / win ==
	       ((uintptr_t)self->data + j * self->ps) / win;
}

/*
 * memcpy() copies backwards when source and destination share their
 * offset in a page (glibc does, to dodge 4K aliasing): the first store of
 * a producer's call can be its last page. That one trap must map the
 * pages before it in its window too. Before the window was aligned the
 * fault handler mapped only the pages after the faulting one, and every
 * page of a backward copy trapped on its own.
 */
TEST_F(ring, a_trap_maps_the_pages_before_it_in_its_window)
{
	uint64_t last = TEST_PAGES - 1, i, checked = 0;

	/* A window that starts at the last page has nothing before it. */
	if (!same_window(self, last - 1, last))
		last--;
	/* Nothing of the ring is mapped after a reset. */
	ASSERT_EQ(0, zcdev_reset(self->fd));
	ASSERT_EQ(0, pte_present(self->data + last * self->ps));
	self->data[last * self->ps] = 1;
	for (i = 0; i < last; i++) {
		if (!same_window(self, i, last))
			continue;
		checked++;
		EXPECT_EQ(1, pte_present(self->data + i * self->ps)) {
			TH_LOG("page %llu was not mapped with page %llu's trap",
			       (unsigned long long)i, (unsigned long long)last);
		}
	}
	EXPECT_LT(0, checked);
}

/*
 * A window whose middle pages were lent (and so zapped) and came back,
 * between pages still mapped: the first trap on any of them maps the
 * others. vm_insert_pages() stops at a PTE that is already there; before
 * the fault handler went on after it, each of the four pages trapped on
 * its own.
 */
TEST_F(ring, lent_pages_between_mapped_ones_come_back_in_one_trap)
{
	uint64_t k = 1, b;
	uint8_t *buf = malloc(self->rb);
	int pfd[2], i;

	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, pipe(pfd));
	/*
	 * Slots k - 1 .. k + 4 in one window: past the window boundary if
	 * one falls in the first 8 slots, else from slot 1.
	 */
	for (b = 1; b <= 8; b++)
		if (!same_window(self, b - 1, b))
			k = b + 1;
	seek_ring(_metadata, self, self->rb, 0);
	ASSERT_EQ(0, zcdev_reset(self->fd));

	/* The whole ring through the mapping: every slot has a PTE. */
	zt_fill(buf, 0, self->rb);
	memcpy(self->data, buf, self->rb);
	ASSERT_EQ(0, produce(self->fd, self->rb));
	/* Slots 0 .. k - 1 by read, k .. k + 3 lent and back, the rest read. */
	ASSERT_EQ((ssize_t)(k * self->ps), zt_read_all(self->fd, buf, k * self->ps));
	ASSERT_EQ((ssize_t)(4 * self->ps),
		  splice(self->fd, NULL, pfd[1], NULL, 4 * self->ps, 0));
	ASSERT_EQ((ssize_t)(4 * self->ps), zt_read_all(pfd[0], buf, 4 * self->ps));
	ASSERT_EQ((ssize_t)(self->rb - (k + 4) * self->ps),
		  zt_read_all(self->fd, buf, self->rb - (k + 4) * self->ps));

	/* Zapped by the lend; their neighbours kept their PTEs. */
	for (i = 0; i < 4; i++)
		ASSERT_EQ(0, pte_present(self->data + (k + i) * self->ps));
	ASSERT_EQ(1, pte_present(self->data + (k - 1) * self->ps));
	ASSERT_EQ(1, pte_present(self->data + (k + 4) * self->ps));
	/* One store to the last of them, as a backward memcpy() starts. */
	self->data[(k + 3) * self->ps] = 3;
	for (i = 0; i < 3; i++) {
		EXPECT_EQ(1, pte_present(self->data + (k + i) * self->ps)) {
			TH_LOG("slot %llu was not mapped with slot %llu's trap",
			       (unsigned long long)(k + i), (unsigned long long)k + 3);
		}
	}
	close(pfd[0]);
	close(pfd[1]);
	free(buf);
}

/*
 * A page the fault handler mapped around another one, and that nobody
 * touched through the mapping since, still has a writable PTE. Splice out
 * must zap it like any other before it lends it, alone: a store through
 * it afterwards must land in a fresh page, never in the pipe's.
 */
TEST_F(ring, pages_mapped_around_a_fault_are_zapped_when_lent)
{
	struct zcdev_stats st0, st1;
	uint8_t *a, *b, *got, *s0, *s1;
	uint64_t slot;
	int pfd[2];

	a = malloc(self->ps);
	b = malloc(self->ps);
	got = malloc(self->ps);
	ASSERT_TRUE(a && b && got);
	memset(a, 0xa1, self->ps);
	memset(b, 0xb2, self->ps);
	ASSERT_EQ(0, pipe(pfd));

	/*
	 * Slots s and s + 1 must share a window: slot 0 and 1 do, unless a
	 * window starts at slot 1; then slots 1 and 2 do (windows are 32
	 * pages apart). The reset leaves nothing mapped.
	 */
	slot = same_window(self, 0, 1) ? 0 : 1;
	seek_ring(_metadata, self, self->rb, slot * self->ps);
	ASSERT_EQ(0, zcdev_reset(self->fd));
	ASSERT_EQ(slot, meta_head(self->meta) / self->ps % TEST_PAGES);
	s0 = self->data + slot * self->ps;
	s1 = s0 + self->ps;

	/* Slot s through the mapping: that trap maps slot s + 1 too. */
	memcpy(s0, a, self->ps);
	ASSERT_EQ(0, produce(self->fd, self->ps));
	ASSERT_EQ(1, pte_present(s1)) {
		TH_LOG("slot %llu was not mapped around slot %llu's fault",
		       (unsigned long long)slot + 1, (unsigned long long)slot);
	}
	/* Slot s leaves by read(2), a copy: nothing of it is lent. */
	ASSERT_EQ((ssize_t)self->ps, zt_read_all(self->fd, got, self->ps));
	EXPECT_EQ(0, memcmp(got, a, self->ps));
	/*
	 * Slot s + 1 by write(2), then lent alone, and by reference: had its
	 * PTE survived the lend, the extra reference would have made it go
	 * as a copy (zcdev_lend_maybe_written()), which hides the lost zap
	 * from the pipe's bytes but not from the counter.
	 */
	ASSERT_EQ(0, zt_write_all(self->fd, b, self->ps));
	ASSERT_EQ(0, zt_stats(self->fd, &st0));
	ASSERT_EQ((ssize_t)self->ps,
		  splice(self->fd, NULL, pfd[1], NULL, self->ps, 0));
	ASSERT_EQ(0, zt_stats(self->fd, &st1));
	EXPECT_EQ(self->ps, st1.bytes_spliced_out - st0.bytes_spliced_out);
	EXPECT_EQ(0, st1.bytes_spliced_out_copied - st0.bytes_spliced_out_copied);
	memset(s1, 0xee, self->ps);
	ASSERT_EQ((ssize_t)self->ps, zt_read_all(pfd[0], got, self->ps));
	EXPECT_EQ(0, memcmp(got, b, self->ps)) {
		TH_LOG("the page mapped around the fault changed in the pipe: "
		       "byte 0 is %#x, not %#x", got[0], b[0]);
	}
	close(pfd[0]);
	close(pfd[1]);
	free(a);
	free(b);
	free(got);
}

/* ---- teardown: resize and reset --------------------------------------- */

/* Read every page of [first, last) of the mapping, faulting them in. */
static void touch_pages(const FIXTURE_DATA(ring) *self, unsigned int first,
			unsigned int last)
{
	for (unsigned int i = first; i < last; i++)
		(void)*(volatile uint8_t *)(self->data + i * self->ps);
}

/*
 * Shrinking is a truncation: pages past 2 * the new size raise SIGBUS in
 * every mapping, and the pages below it re-fault onto the new ring, with
 * the unread bytes at their new place (position % new ring_bytes).
 */
TEST_F(ring, shrink_sigbus_above_new_pages_below)
{
	const uint64_t ps = self->ps;
	const uint32_t small = 4;
	const uint64_t srb = small * ps;
	struct zcdev_stats st0, st1;
	uint64_t tail, g;
	int status;

	/* 3 pages unread, across the 16-page ring's wrap and a 4-page one's. */
	seek_ring(_metadata, self, self->rb, 14 * ps + 100);
	tail = meta_tail(self->meta);
	write_stream(_metadata, self, 3 * ps);
	touch_pages(self, 0, 2 * TEST_PAGES);
	g = meta_gen(self->meta);

	ASSERT_EQ(0, zt_resize(self->fd, small));
	EXPECT_EQ(g + 1, meta_gen(self->meta));
	EXPECT_EQ(srb, meta_ring_bytes(self->meta));
	EXPECT_EQ(tail, meta_tail(self->meta));
	EXPECT_EQ(tail + 3 * ps, meta_head(self->meta));

	get_stats(_metadata, self->fd, &st0);
	status = touch_in_child(self->data + 2 * srb, false);
	EXPECT_TRUE(killed_by(status, SIGBUS)) {
		TH_LOG("load from page %u of a %u-page ring: %s",
		       2 * small, small, describe(status));
	}
	status = touch_in_child(self->data + 2 * srb + 5 * ps + 7, true);
	EXPECT_TRUE(killed_by(status, SIGBUS)) {
		TH_LOG("store to page %u: %s", 2 * small + 5, describe(status));
	}
	status = touch_in_child(self->data + self->data_len - 1, false);
	EXPECT_TRUE(killed_by(status, SIGBUS)) {
		TH_LOG("load from the mapping's last byte: %s", describe(status));
	}
	/* Our own PTEs up there, from before the shrink, are gone too. */
	ASSERT_EQ(0, catch_sigbus(true));
	EXPECT_FALSE(guarded_touch(self->data + 2 * srb, false));
	EXPECT_FALSE(guarded_touch(self->data + self->data_len - 1, true));
	ASSERT_EQ(0, catch_sigbus(false));
	get_stats(_metadata, self->fd, &st1);
	EXPECT_EQ(5ULL, st1.sigbus_faults - st0.sigbus_faults);

	/* Below 2 * the new size: no signal, and the ring as it is now. */
	status = touch_in_child(self->data + 2 * srb - 1, false);
	EXPECT_TRUE(exited_ok(status)) {
		TH_LOG("load from the last page that exists: %s",
		       describe(status));
	}
	get_stats(_metadata, self->fd, &st0);
	EXPECT_EQ(-1, zt_check(self->data + tail % srb, tail, 3 * ps));
	/* Both copies of the double mapping agree. */
	EXPECT_EQ(0, memcmp(self->data, self->data + srb, srb));
	get_stats(_metadata, self->fd, &st1);
	/* The parent's old PTEs were zapped: it had to fault again. */
	EXPECT_LT(0ULL, st1.mmap_faults - st0.mmap_faults);

	/* New writes land where the mapping shows them. */
	tail = meta_head(self->meta);
	write_stream(_metadata, self, ps - 100);
	EXPECT_EQ(-1, zt_check(self->data + tail % srb, tail, ps - 100));
	EXPECT_EQ(-1, zt_check(self->data + srb + tail % srb, tail, ps - 100));
}

/*
 * Resize to 0 tears the ring down: every data page raises SIGBUS, the
 * meta page stays. Growing again brings the same mapping back to life.
 */
TEST_F(ring, resize_to_zero_sigbus_everywhere_then_regrow)
{
	const struct zcdev_ring_meta *m = self->meta;
	struct zcdev_stats st0, st1;
	uint64_t g, head;
	int status;

	uint8_t buf[5000];

	write_stream(_metadata, self, sizeof(buf));
	/* The drain a teardown needs: RESIZE keeps unread bytes. */
	EXPECT_EQ(-1, zt_resize(self->fd, 0));
	EXPECT_EQ(EBUSY, errno);
	/* Drained by read(), not RESET, so that only the resize zaps. */
	ASSERT_EQ((ssize_t)sizeof(buf), zt_read_all(self->fd, buf, sizeof(buf)));
	touch_pages(self, 0, 2 * TEST_PAGES);
	g = meta_gen(m);
	ASSERT_EQ(0, zt_resize(self->fd, 0));
	EXPECT_EQ(g + 1, meta_gen(m));
	EXPECT_EQ(0ULL, meta_ring_bytes(m));

	get_stats(_metadata, self->fd, &st0);
	ASSERT_EQ(0, catch_sigbus(true));
	EXPECT_FALSE(guarded_touch(self->data, false));
	EXPECT_FALSE(guarded_touch(self->data + self->data_len - 1, true));
	ASSERT_EQ(0, catch_sigbus(false));
	status = touch_in_child(self->data, false);
	EXPECT_TRUE(killed_by(status, SIGBUS)) {
		TH_LOG("load from page 0 of an empty ring: %s", describe(status));
	}
	status = touch_in_child(self->data + 5 * self->ps + 3, true);
	EXPECT_TRUE(killed_by(status, SIGBUS)) {
		TH_LOG("store to page 5 of an empty ring: %s", describe(status));
	}
	get_stats(_metadata, self->fd, &st1);
	EXPECT_EQ(4ULL, st1.sigbus_faults - st0.sigbus_faults);
	EXPECT_EQ(0ULL, st1.pages_held);
	/* Nothing to commit into. */
	EXPECT_EQ(-1, produce(self->fd, 1));
	EXPECT_EQ(EINVAL, errno);
	/* The meta page is not part of the teardown. */
	EXPECT_EQ(ZCDEV_ABI_VERSION, m->abi_version);

	ASSERT_EQ(0, zt_resize(self->fd, TEST_PAGES));
	EXPECT_EQ(g + 2, meta_gen(m));
	status = touch_in_child(self->data + 5 * self->ps + 3, true);
	EXPECT_TRUE(exited_ok(status)) {
		TH_LOG("store to page 5 after growing back: %s", describe(status));
	}
	head = meta_head(m);
	write_stream(_metadata, self, 2 * self->ps);
	EXPECT_EQ(-1, zt_check(self->data + head % self->rb, head, 2 * self->ps));
}

/*
 * Growing moves every offset to a new page: mapping page i now shows ring
 * page i % 8, not i % 4. A PTE left from before would show a freed page.
 */
TEST_F(ring, grow_refaults_every_page_onto_the_new_ring)
{
	struct zcdev_stats st0, st1;
	uint64_t head, rb;
	int status;

	fresh_ring(_metadata, self, 4);
	touch_pages(self, 0, 8);
	status = touch_in_child(self->data + 8 * self->ps, false);
	EXPECT_TRUE(killed_by(status, SIGBUS)) {
		TH_LOG("load from page 8 of a 4-page ring: %s", describe(status));
	}

	ASSERT_EQ(0, zt_resize(self->fd, 8));
	reload_info(_metadata, self);
	rb = self->rb;
	get_stats(_metadata, self->fd, &st0);
	touch_pages(self, 0, 16);
	get_stats(_metadata, self->fd, &st1);
	/* 0..7 were zapped and 8..15 never mapped: one fault each. */
	EXPECT_EQ(16ULL, st1.mmap_faults - st0.mmap_faults);

	head = meta_head(self->meta);
	write_stream(_metadata, self, rb);
	EXPECT_EQ(-1, zt_check(self->data + head % rb, head, rb));
	EXPECT_EQ(0, memcmp(self->data, self->data + rb, rb));
}

/* A resize that would drop unread bytes is refused and changes nothing. */
TEST_F(ring, shrink_below_unread_is_ebusy_and_changes_nothing)
{
	const struct zcdev_ring_meta *m = self->meta;
	uint64_t h, t, g;
	int status;

	seek_ring(_metadata, self, self->rb, self->rb - 300);
	t = meta_tail(m);
	write_stream(_metadata, self, 5 * self->ps);
	h = meta_head(m);
	g = meta_gen(m);

	EXPECT_EQ(-1, zt_resize(self->fd, 4));
	EXPECT_EQ(EBUSY, errno);
	EXPECT_EQ(g, meta_gen(m));
	EXPECT_EQ(self->rb, meta_ring_bytes(m));
	EXPECT_EQ(h, meta_head(m));
	EXPECT_EQ(t, meta_tail(m));
	EXPECT_EQ(-1, zt_check(self->data + t % self->rb, t, h - t));
	status = touch_in_child(self->data + self->data_len - 1, false);
	EXPECT_TRUE(exited_ok(status)) {
		TH_LOG("load from the last page after a refused shrink: %s",
		       describe(status));
	}

	/* Exactly enough room is fine. */
	EXPECT_EQ(0, zt_resize(self->fd, 5));
	EXPECT_EQ(-1, zt_check(self->data + t % (5 * self->ps), t, h - t));
}

/* Past 2 * ring_pages there is no page, with or without a teardown. */
TEST_F(ring, access_past_twice_the_ring_is_sigbus)
{
	struct zcdev_stats st0, st1;
	uint8_t *past, *far;
	int status;

	/* Mapping beyond the ring is allowed, like past the end of a file. */
	past = map_data(self->fd, &self->info, 0, 2 * TEST_PAGES + 2,
			PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, past);
	far = map_data(self->fd, &self->info, 10 * TEST_PAGES, 1, PROT_READ);
	ASSERT_NE(MAP_FAILED, far);

	get_stats(_metadata, self->fd, &st0);
	status = touch_in_child(past + 2 * self->rb - 1, true);
	EXPECT_TRUE(exited_ok(status)) {
		TH_LOG("store to page %u of a %u-page ring: %s",
		       2 * TEST_PAGES - 1, TEST_PAGES, describe(status));
	}
	status = touch_in_child(past + 2 * self->rb, false);
	EXPECT_TRUE(killed_by(status, SIGBUS)) {
		TH_LOG("load from page %u: %s", 2 * TEST_PAGES, describe(status));
	}
	status = touch_in_child(past + 2 * self->rb + self->ps + 1, true);
	EXPECT_TRUE(killed_by(status, SIGBUS)) {
		TH_LOG("store to page %u: %s", 2 * TEST_PAGES + 1,
		       describe(status));
	}
	status = touch_in_child(far, false);
	EXPECT_TRUE(killed_by(status, SIGBUS)) {
		TH_LOG("load from page %u: %s", 10 * TEST_PAGES, describe(status));
	}
	get_stats(_metadata, self->fd, &st1);
	EXPECT_EQ(3ULL, st1.sigbus_faults - st0.sigbus_faults);
	EXPECT_EQ(0, munmap(far, self->ps));
	EXPECT_EQ(0, munmap(past, 2 * self->rb + 2 * self->ps));
}

/*
 * The same, as the harness's own signal test, on whatever ring the module
 * has (the default between tests). It changes nothing, so dying is fine.
 */
TEST_SIGNAL(load_past_twice_the_default_ring_dies_by_sigbus, SIGBUS)
{
	struct rlimit no_core = { 0, 0 };
	struct zcdev_info info;
	volatile uint8_t *p;
	int fd;

	setrlimit(RLIMIT_CORE, &no_core);
	fd = zt_open(O_RDWR);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, zt_info(fd, &info));
	ASSERT_LT(0U, info.ring_pages);
	p = map_data(fd, &info, 2ULL * info.ring_pages, 1, PROT_READ);
	ASSERT_NE(MAP_FAILED, p);
	(void)*p;
	TH_LOG("page %u of a %u-page ring was readable", 2 * info.ring_pages,
	       info.ring_pages);
}

/*
 * RESET keeps the pages but zaps every mapping: the next touch faults
 * again (the mmap_faults counter proves it), and the generation in the
 * meta page tells a mapper that the ring was reset under it.
 */
TEST_F(ring, reset_refaults_mappings_and_bumps_generation)
{
	struct zcdev_stats st0, st1;
	uint64_t g, head;

	/*
	 * One fault; mmap_faults counts the pages it mapped, this one and
	 * those the handler maps ahead of it.
	 */
	get_stats(_metadata, self->fd, &st0);
	(void)*(volatile uint8_t *)self->data;
	get_stats(_metadata, self->fd, &st1);
	ASSERT_LE(1ULL, st1.mmap_faults - st0.mmap_faults);
	/* Mapped now: touching again costs no fault. */
	(void)*(volatile uint8_t *)self->data;
	(void)*(volatile uint8_t *)(self->data + 1);
	get_stats(_metadata, self->fd, &st0);
	ASSERT_EQ(st1.mmap_faults, st0.mmap_faults);

	write_stream(_metadata, self, 100);
	g = meta_gen(self->meta);
	ASSERT_EQ(0, zcdev_reset(self->fd));
	EXPECT_EQ(g + 1, meta_gen(self->meta));
	EXPECT_EQ(meta_head(self->meta), meta_tail(self->meta));

	get_stats(_metadata, self->fd, &st0);
	(void)*(volatile uint8_t *)self->data;
	get_stats(_metadata, self->fd, &st1);
	EXPECT_LE(1ULL, st1.mmap_faults - st0.mmap_faults);
	EXPECT_EQ(st0.sigbus_faults, st1.sigbus_faults);

	head = meta_head(self->meta);
	write_stream(_metadata, self, 3000);
	EXPECT_EQ(-1, zt_check(self->data + head % self->rb, head, 3000));
}

/* ---- mappings the device refuses -------------------------------------- */

TEST_F(ring, map_private_is_einval)
{
	const int prots[] = { PROT_READ, PROT_READ | PROT_WRITE };
	void *p;

	for (unsigned int i = 0; i < 2; i++) {
		p = mmap(NULL, self->ps, prots[i], MAP_PRIVATE, self->fd,
			 self->info.data_offset);
		EXPECT_EQ(MAP_FAILED, p);
		EXPECT_EQ(EINVAL, errno);
		p = mmap(NULL, self->ps, prots[i], MAP_PRIVATE, self->fd,
			 self->info.meta_offset);
		EXPECT_EQ(MAP_FAILED, p);
		EXPECT_EQ(EINVAL, errno);
	}
}

TEST_F(ring, writable_meta_is_eacces)
{
	void *p;

	p = mmap(NULL, self->ps, PROT_READ | PROT_WRITE, MAP_SHARED, self->fd,
		 self->info.meta_offset);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(EACCES, errno);
	p = mmap(NULL, self->ps, PROT_WRITE, MAP_SHARED, self->fd,
		 self->info.meta_offset);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(EACCES, errno);
	/* Nor by starting at the meta page and running into the data. */
	p = mmap(NULL, 3 * self->ps, PROT_READ | PROT_WRITE, MAP_SHARED,
		 self->fd, self->info.meta_offset);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(EACCES, errno);
}

TEST_F(ring, executable_meta_is_eacces)
{
	struct statvfs sv;
	void *p;

	/* On a noexec /dev the VFS says EPERM before zcdev is asked. */
	ASSERT_EQ(0, statvfs(zt_dev_path(), &sv));
	if (sv.f_flag & ST_NOEXEC)
		SKIP(return, "%s is on a noexec mount", zt_dev_path());
	p = mmap(NULL, self->ps, PROT_READ | PROT_EXEC, MAP_SHARED, self->fd,
		 self->info.meta_offset);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(EACCES, errno);
}

/* VM_MAYWRITE is gone: the read-only meta page cannot be made writable. */
TEST_F(ring, meta_mprotect_to_write_or_exec_is_eacces)
{
	void *meta = (void *)self->meta;
	int status;

	EXPECT_EQ(-1, mprotect(meta, self->ps, PROT_READ | PROT_WRITE));
	EXPECT_EQ(EACCES, errno);
	EXPECT_EQ(-1, mprotect(meta, self->ps, PROT_WRITE));
	EXPECT_EQ(EACCES, errno);
	EXPECT_EQ(-1, mprotect(meta, self->ps, PROT_READ | PROT_EXEC));
	EXPECT_EQ(EACCES, errno);

	status = touch_in_child((volatile uint8_t *)&self->meta->head, true);
	EXPECT_TRUE(killed_by(status, SIGSEGV)) {
		TH_LOG("store into the meta page: %s", describe(status));
	}
	EXPECT_EQ(ZCDEV_ABI_VERSION, self->meta->abi_version);
	EXPECT_EQ(meta_head(self->meta), meta_tail(self->meta));
}

/*
 * Nor can any other path write it for us: the kernel's own copy to user
 * memory, and ptrace-style forced writes through /proc/self/mem, fail
 * like the store does, and nothing moves. The data pages, for contrast,
 * take the same forced write.
 */
TEST_F(ring, meta_page_is_read_only_to_every_path)
{
	const struct zcdev_ring_meta *m = self->meta;
	struct zcdev_ring_meta before;
	uint64_t h, t;
	uint8_t byte = 0x3c;
	int mem;

	write_stream(_metadata, self, 100);
	h = meta_head(m);
	t = meta_tail(m);
	before = *m;

	EXPECT_EQ(-1, read(self->fd, (void *)m, 10));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(t, meta_tail(m));
	EXPECT_EQ(-1, ioctl(self->fd, ZCDEV_IOC_GET_INFO, (void *)m));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(self->fd, ZCDEV_IOC_GET_STATS, (void *)m));
	EXPECT_EQ(EFAULT, errno);

	mem = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, mem) {
		TH_LOG("/proc/self/mem: %s", strerror(errno));
	}
	EXPECT_EQ(-1, pwrite(mem, &byte, 1, (off_t)(uintptr_t)&m->head));
	EXPECT_EQ(1, pwrite(mem, &byte, 1, (off_t)(uintptr_t)self->data));
	EXPECT_EQ(byte, self->data[0]);
	close(mem);

	EXPECT_EQ(0, memcmp(&before, (const void *)m, sizeof(before)));
	EXPECT_EQ(h, meta_head(m));
	EXPECT_EQ(t, meta_tail(m));
}

TEST_F(ring, offset_past_the_maximum_is_einval)
{
	const uint64_t last = 2ULL * self->info.max_ring_pages - 1;
	uint8_t *p;
	int status;

	p = map_data(self->fd, &self->info, last + 1, 1, PROT_READ);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(EINVAL, errno);
	p = map_data(self->fd, &self->info, last + 1000, 1, PROT_READ);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(EINVAL, errno);

	/* The last offset there can ever be a page for is mappable. */
	p = map_data(self->fd, &self->info, last, 1, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, p) {
		TH_LOG("mmap of data page %llu: %s", (unsigned long long)last,
		       strerror(errno));
	}
	status = touch_in_child(p, false);
	EXPECT_TRUE(killed_by(status, SIGBUS)) {
		TH_LOG("load from data page %llu of a %u-page ring: %s",
		       (unsigned long long)last, TEST_PAGES, describe(status));
	}
	EXPECT_EQ(0, munmap(p, self->ps));
}

TEST_F(ring, unaligned_offset_is_einval)
{
	const off_t offs[] = { 1, self->info.data_offset + 1,
			       self->info.data_offset + self->ps / 2 };
	void *p;

	for (unsigned int i = 0; i < 3; i++) {
		p = mmap(NULL, self->ps, PROT_READ, MAP_SHARED, self->fd, offs[i]);
		EXPECT_EQ(MAP_FAILED, p) {
			TH_LOG("offset %lld was accepted", (long long)offs[i]);
		}
		EXPECT_EQ(EINVAL, errno);
	}
}

/* A split would let part of a mapping be unmapped or re-protected alone. */
TEST_F(ring, partial_munmap_or_mprotect_is_einval)
{
	const uint64_t ps = self->ps;
	uint8_t *p;

	p = map_data(self->fd, &self->info, 0, 4, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, p);

	EXPECT_EQ(-1, munmap(p + ps, ps));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, munmap(p, ps));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, munmap(p + 3 * ps, ps));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, mprotect(p + ps, ps, PROT_READ));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, mprotect(p, 2 * ps, PROT_READ));
	EXPECT_EQ(EINVAL, errno);

	/* Still one whole, writable mapping of the ring. */
	p[0] = 1;
	p[3 * ps + 1] = 2;
	EXPECT_EQ(1, self->data[0]);
	EXPECT_EQ(2, self->data[3 * ps + 1]);
	/* The whole of it can change protection and go away. */
	EXPECT_EQ(0, mprotect(p, 4 * ps, PROT_READ));
	EXPECT_EQ(0, munmap(p, 4 * ps));
}

TEST_F(ring, mremap_growth_is_refused)
{
	const uint64_t ps = self->ps;
	uint8_t *p, *q;

	p = map_data(self->fd, &self->info, 0, 2, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, p);

	/* VM_DONTEXPAND: the kernel answers EFAULT. */
	q = mremap(p, 2 * ps, 4 * ps, MREMAP_MAYMOVE);
	EXPECT_EQ(MAP_FAILED, q);
	EXPECT_EQ(EFAULT, errno);
	q = mremap(p, 2 * ps, 4 * ps, 0);
	EXPECT_EQ(MAP_FAILED, q);
	EXPECT_EQ(EFAULT, errno);
	/* Shrinking in place unmaps the tail: a split. */
	q = mremap(p, 2 * ps, ps, 0);
	EXPECT_EQ(MAP_FAILED, q);
	EXPECT_EQ(EINVAL, errno);

	p[2 * ps - 1] = 7;
	EXPECT_EQ(7, self->data[2 * ps - 1]);
	EXPECT_EQ(0, munmap(p, 2 * ps));
}

/* ---- fork ------------------------------------------------------------- */

/*
 * The child's copy of the mapping is the same ring, not a copy: what it
 * writes and PRODUCEs through the inherited mapping and fd is what the
 * parent reads with read(), and sees in its own mapping.
 */
TEST_F(ring, fork_child_produces_parent_reads)
{
	const uint64_t n = 3 * self->ps + 5;
	struct zcdev_stats st0, st1;
	uint64_t head;
	uint8_t *buf;
	int status;
	pid_t pid;

	seek_ring(_metadata, self, self->rb, self->rb - 1000);
	head = meta_head(self->meta);
	get_stats(_metadata, self->fd, &st0);

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		uint64_t h = meta_head(self->meta);

		zt_fill(self->data + h % self->rb, h, n);
		_exit(produce(self->fd, n) ? 1 : 0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(exited_ok(status)) {
		TH_LOG("child: %s", describe(status));
	}
	get_stats(_metadata, self->fd, &st1);
	EXPECT_LT(0ULL, st1.mmap_faults - st0.mmap_faults);
	EXPECT_EQ(n, st1.bytes_produced_mmap - st0.bytes_produced_mmap);
	EXPECT_EQ(head + n, meta_head(self->meta));

	EXPECT_EQ(-1, zt_check(self->data + head % self->rb, head, n));
	buf = malloc(n);
	ASSERT_NE(NULL, buf);
	ASSERT_EQ((ssize_t)n, zt_read_all(self->fd, buf, n));
	EXPECT_EQ(-1, zt_check(buf, head, n));
	EXPECT_EQ(head + n, meta_tail(self->meta));
	free(buf);
}

/*
 * A resize in the parent zaps the child's PTEs too (one address_space for
 * every mapping): the child, which had its pages mapped, sees the new ring
 * below the new size and SIGBUS above it.
 */
TEST_F(ring, fork_parent_shrink_makes_child_sigbus)
{
	struct zcdev_stats st0, st1;
	int to_child[2], to_parent[2];
	char token = 0;
	int status;
	pid_t pid;

	ASSERT_EQ(0, pipe(to_child));
	ASSERT_EQ(0, pipe(to_parent));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct rlimit no_core = { 0, 0 };
		const struct zcdev_ring_meta *m = self->meta;
		uint64_t t, rb;

		setrlimit(RLIMIT_CORE, &no_core);
		touch_pages(self, 0, 2 * TEST_PAGES);
		if (write(to_parent[1], &token, 1) != 1 ||
		    read(to_child[0], &token, 1) != 1)
			_exit(3);
		/* Below the new size: the ring as the parent left it. */
		t = meta_tail(m);
		rb = meta_ring_bytes(m);
		if (rb != 2 * self->ps ||
		    zt_check(self->data + t % rb, t, 1000) != -1)
			_exit(2);
		(void)*(volatile uint8_t *)(self->data + 2 * rb);
		_exit(0);
	}
	ASSERT_EQ(1, read(to_parent[0], &token, 1));
	/* Empty already: a plain resize, no RESET that would zap by itself. */
	ASSERT_EQ(meta_head(self->meta), meta_tail(self->meta));
	ASSERT_EQ(0, zt_resize(self->fd, 2));
	reload_info(_metadata, self);
	write_stream(_metadata, self, 1000);
	get_stats(_metadata, self->fd, &st0);
	ASSERT_EQ(1, write(to_child[1], &token, 1));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(killed_by(status, SIGBUS)) {
		TH_LOG("child (exit 2: stale ring below the new size): %s",
		       describe(status));
	}
	get_stats(_metadata, self->fd, &st1);
	EXPECT_EQ(1ULL, st1.sigbus_faults - st0.sigbus_faults);
	close(to_child[0]);
	close(to_child[1]);
	close(to_parent[0]);
	close(to_parent[1]);
}

/* ---- a resize racing a thread that touches the mapping ---------------- */

struct toucher {
	volatile uint8_t *map;
	size_t len, ps;
	volatile bool stop;
	volatile unsigned long touches, sigbus;
};

/* Every page, over and over, surviving SIGBUS. */
static void *toucher(void *arg)
{
	struct toucher *t = arg;

	while (!t->stop) {
		for (size_t off = 0; off < t->len && !t->stop; off += t->ps) {
			if (guarded_touch(t->map + off, true))
				t->touches++;
			else
				t->sigbus++;
		}
	}
	return NULL;
}

/*
 * Faults race the resize's page swap and zap, hundreds of times: nothing
 * hangs, nothing splats (the rig checks the log), every SIGBUS the thread
 * caught is one the kernel counted, and the ring ends up whole.
 */
TEST_F(ring, resize_races_a_touching_thread)
{
	const uint32_t sizes[] = { 8, 3, 0, 5, 8, 1, 6, 0, 2, 7 };
	const unsigned int rounds = 300;
	struct toucher t = {
		.map = self->data, .len = 16 * self->ps, .ps = self->ps,
	};
	struct zcdev_stats st0, st1;
	unsigned int i, waited_for = 0;
	pthread_t thread;
	int ms;
	uint64_t head;

	fresh_ring(_metadata, self, 8);
	ASSERT_EQ(0, catch_sigbus(true));
	get_stats(_metadata, self->fd, &st0);
	ASSERT_EQ(0, pthread_create(&thread, NULL, toucher, &t));

	for (i = 0; i < rounds; i++) {
		uint32_t pages = sizes[i % (sizeof(sizes) / sizeof(sizes[0]))];

		ASSERT_EQ(0, zt_resize(self->fd, pages)) {
			t.stop = true;
			TH_LOG("round %u: RESIZE(%u): %s", i, pages, strerror(errno));
		}
		if (i % 7 == 3)
			ASSERT_EQ(0, zcdev_reset(self->fd));
		/*
		 * However the scheduler interleaves us, the thread keeps
		 * faulting between any two resizes (half a pass at least),
		 * and now and then it really meets the empty ring.
		 */
		if (pages == 0 && waited_for < 5) {
			unsigned long seen = t.sigbus;

			for (ms = 0; ms < WAIT_MS && t.sigbus == seen; ms++)
				usleep(1000);
			waited_for++;
		} else {
			unsigned long seen = t.touches + t.sigbus;

			for (ms = 0; ms < WAIT_MS && t.touches + t.sigbus < seen + 8; ms++)
				sched_yield();
		}
	}
	t.stop = true;
	ASSERT_EQ(0, pthread_join(thread, NULL));
	ASSERT_EQ(0, catch_sigbus(false));

	TH_LOG("%u resizes: %lu touches, %lu SIGBUS caught", rounds,
	       t.touches, t.sigbus);
	EXPECT_LT(0UL, t.touches);
	EXPECT_LE(5UL, t.sigbus);
	get_stats(_metadata, self->fd, &st1);
	EXPECT_EQ(t.sigbus, st1.sigbus_faults - st0.sigbus_faults);

	/*
	 * The ring is whole: no page leaked or lost, data where it belongs.
	 * A plain resize (the ring is empty), so that only its own zap can
	 * take away the PTEs the thread left.
	 */
	ASSERT_EQ(meta_head(self->meta), meta_tail(self->meta));
	ASSERT_EQ(0, zt_resize(self->fd, 8));
	reload_info(_metadata, self);
	get_stats(_metadata, self->fd, &st1);
	EXPECT_EQ(8ULL, st1.pages_held);
	head = meta_head(self->meta);
	write_stream(_metadata, self, self->rb);
	EXPECT_EQ(-1, zt_check(self->data + head % self->rb, head, self->rb));
	EXPECT_EQ(0, memcmp(self->data, self->data + self->rb, self->rb));
}

/* ---- invariant 6: the device's own mapping as the user buffer --------- */

/* How many pages [p, p + len) spans. */
static uint64_t pages_spanned(const FIXTURE_DATA(ring) *self, const void *p,
			      uint64_t len)
{
	uintptr_t first = (uintptr_t)p / self->ps;
	uintptr_t last = ((uintptr_t)p + len - 1) / self->ps;

	return last - first + 1;
}

/*
 * read() copies ring -> user with no zcdev lock held, so a destination in
 * the device's own (not yet faulted) mapping faults back into zcdev and
 * the read completes. Twice: into free space far from the source, and
 * into the very page the bytes are read from.
 */
TEST_F(ring, read_into_own_mapping_completes)
{
	const uint64_t ps = self->ps, rb = self->rb;
	const uint64_t n = 3 * ps + 100, n2 = 1000;
	struct zcdev_stats st0, st1;
	uint64_t tail;
	uint8_t *dst;

	/* No PTE anywhere: the setup's RESET zapped, nothing touched since. */
	seek_ring(_metadata, self, rb, ps - 50);
	tail = meta_tail(self->meta);
	write_stream(_metadata, self, n);
	dst = self->data + tail % rb + rb / 2;
	get_stats(_metadata, self->fd, &st0);
	ASSERT_EQ((ssize_t)n, read(self->fd, dst, n)) {
		TH_LOG("read into the mapping: %s", strerror(errno));
	}
	get_stats(_metadata, self->fd, &st1);
	EXPECT_EQ(-1, zt_check(dst, tail, n));
	EXPECT_EQ(tail + n, meta_tail(self->meta));
	EXPECT_EQ(n, st1.bytes_read_copy - st0.bytes_read_copy);
	/* The copy did fault into zcdev, for every page it wrote. */
	EXPECT_LE(pages_spanned(self, dst, n), st1.mmap_faults - st0.mmap_faults);

	/* Source and destination in one page: [100, 1100) -> [1100, 2100). */
	ASSERT_EQ(0, zcdev_reset(self->fd));
	seek_ring(_metadata, self, rb, 3 * ps + 100);
	tail = meta_tail(self->meta);
	write_stream(_metadata, self, n2);
	dst = self->data + (tail + n2) % rb;
	get_stats(_metadata, self->fd, &st0);
	ASSERT_EQ((ssize_t)n2, read(self->fd, dst, n2)) {
		TH_LOG("read into its own page: %s", strerror(errno));
	}
	get_stats(_metadata, self->fd, &st1);
	EXPECT_EQ(-1, zt_check(dst, tail, n2));
	EXPECT_EQ(-1, zt_check(self->data + tail % rb, tail, n2));
	/* One page, refaulted after the RESET (and maybe its neighbours). */
	EXPECT_LE(1ULL, st1.mmap_faults - st0.mmap_faults);
}

/*
 * write() copies user -> ring with no zcdev lock held: a source in the
 * device's own mapping (filled by an mmap producer, then mapped afresh so
 * that no PTE is left) faults back into zcdev and the write completes.
 * The source's last page is the destination's first.
 */
TEST_F(ring, write_from_own_mapping_completes)
{
	const uint64_t ps = self->ps, rb = self->rb;
	const uint64_t n = 2 * ps + 333;
	struct zcdev_stats st0, st1;
	uint64_t tail;
	uint8_t *fill, *buf;

	seek_ring(_metadata, self, rb, 5 * ps + 300);
	tail = meta_tail(self->meta);
	fill = map_data(self->fd, &self->info, 0, 2 * TEST_PAGES,
			PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, fill);
	zt_fill(fill + tail % rb, tail, n);
	ASSERT_EQ(0, produce(self->fd, n));
	ASSERT_EQ(0, munmap(fill, 2 * rb));

	get_stats(_metadata, self->fd, &st0);
	ASSERT_EQ((ssize_t)n, write(self->fd, self->data + tail % rb, n)) {
		TH_LOG("write from the mapping: %s", strerror(errno));
	}
	get_stats(_metadata, self->fd, &st1);
	EXPECT_EQ(tail + 2 * n, meta_head(self->meta));
	EXPECT_EQ(n, st1.bytes_written_copy - st0.bytes_written_copy);
	EXPECT_LE(pages_spanned(self, self->data + tail % rb, n),
		  st1.mmap_faults - st0.mmap_faults);

	/* The original, then its copy, each byte once. */
	buf = malloc(2 * n);
	ASSERT_NE(NULL, buf);
	ASSERT_EQ((ssize_t)(2 * n), zt_read_all(self->fd, buf, 2 * n));
	EXPECT_EQ(-1, zt_check(buf, tail, n));
	EXPECT_EQ(-1, zt_check(buf + n, tail, n));
	EXPECT_EQ(meta_head(self->meta), meta_tail(self->meta));
	free(buf);
}

/*
 * A user buffer in the mapping where there is no page (past 2 * ring) is a
 * bad address, not a signal: EFAULT, and nothing moves.
 */
TEST_F(ring, read_write_with_dead_mapping_is_efault)
{
	struct zcdev_stats st0, st1;
	uint64_t h, t;
	uint8_t *dead, buf[100];

	dead = map_data(self->fd, &self->info, 2 * TEST_PAGES, 1,
			PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, dead);
	t = meta_tail(self->meta);
	write_stream(_metadata, self, 100);
	h = meta_head(self->meta);

	get_stats(_metadata, self->fd, &st0);
	EXPECT_EQ(-1, read(self->fd, dead, 100));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(t, meta_tail(self->meta));
	EXPECT_EQ(-1, write(self->fd, dead, 100));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(h, meta_head(self->meta));
	get_stats(_metadata, self->fd, &st1);
	EXPECT_LE(2ULL, st1.sigbus_faults - st0.sigbus_faults);

	ASSERT_EQ(100, zt_read_all(self->fd, buf, 100));
	EXPECT_EQ(-1, zt_check(buf, t, 100));
	EXPECT_EQ(0, munmap(dead, self->ps));
}

TEST_HARNESS_MAIN
