// SPDX-License-Identifier: GPL-2.0
/*
 * Several rings (issue 23): /dev/zcdev-control adds rings (/dev/zcdevN,
 * N > 0) and removes them; each has its own bytes, size, counters, sysfs
 * and debugfs directories, and all of them together are bound by the
 * module parameter max_total_pages.
 *
 * Each ring's payload is a stream whose byte at position p is a function
 * of p and of a seed of that ring's own (rt_byte()), so a byte that
 * crossed from one ring to another, or moved within one, shows at its
 * exact position.
 *
 * Every ring a test adds, its teardown removes, after it has ended every
 * process it started and closed every file and mapping it opened, whether
 * the test passed or not. The long test bounds itself well inside its
 * harness timeout (a timeout kills the test before any teardown).
 *
 * The whole program skips when /dev/zcdev-control is missing (a module
 * with one ring only). Ring 0 (/dev/zcdev) is never removed: the other
 * programs need it. reload.devices_and_max_total_pages_at_load unloads
 * the module and loads it from $ZCDEV_KO (as dev_test does), then again
 * with its defaults. $ZCDEV_RINGS_BYTES lowers the 1 GiB each ring of
 * two_streams_while_rings_come_and_go carries.
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/zcdev.h>

#include "kselftest_harness.h"
#include "zcdev_test.h"

#define CONTROL_PATH	"/dev/" ZCDEV_CONTROL_NAME
#define PARAM_DIR	"/sys/module/zcdev/parameters/"
#define MISC_DIR	"/sys/class/misc/"
#define DEBUGFS_DIR	"/sys/kernel/debug/"

/* devtmpfs makes and removes nodes by itself: give it this long. */
#define NODE_WAIT_MS	5000

/* What one test may hold at once; the teardown undoes all of it. */
#define MAX_MINE	(ZCDEV_MAX_RINGS + 4)
#define MAX_FDS		16
#define MAX_MAPS	8
#define MAX_KIDS	8

/*
 * The skip rule of this program: without the control device the module
 * has one ring and none of this applies. (zcdev_test.h's constructor has
 * already skipped when there is no /dev/zcdev at all.)
 */
__attribute__((constructor)) static void rt_require_control(void)
{
	struct stat st;

	if (!stat(CONTROL_PATH, &st) || errno != ENOENT)
		return;
	printf("TAP version 13\n1..0 # SKIP %s is missing: this zcdev has one ring only\n",
	       CONTROL_PATH);
	fflush(stdout);
	_exit(KSFT_SKIP_EXIT);
}

/* ---- the per-ring stream ---- */

static inline uint64_t rt_seed(int ring)
{
	return 0x7a63646576000000ULL + (uint64_t)ring * 0x10001;
}

/* Eight stream bytes at once: those at positions 8w to 8w + 7. */
static inline uint64_t rt_word(uint64_t seed, uint64_t w)
{
	uint64_t z = (w + 1) * 0x9e3779b97f4a7c15ULL ^ seed;

	z ^= z >> 31;
	z *= 0xbf58476d1ce4e5b9ULL;
	z ^= z >> 29;
	return z;
}

static inline uint8_t rt_byte(uint64_t seed, uint64_t pos)
{
	return rt_word(seed, pos >> 3) >> (8 * (pos & 7));
}

static void rt_fill(uint64_t seed, uint8_t *buf, uint64_t pos, size_t len)
{
	size_t i = 0;

	for (; i < len && ((pos + i) & 7); i++)
		buf[i] = rt_byte(seed, pos + i);
	for (; i + 8 <= len; i += 8) {
		uint64_t v = htole64(rt_word(seed, (pos + i) >> 3));

		memcpy(buf + i, &v, 8);
	}
	for (; i < len; i++)
		buf[i] = rt_byte(seed, pos + i);
}

/* Index of the first byte that is not the stream at @pos, or -1. */
static long rt_check(uint64_t seed, const uint8_t *buf, uint64_t pos, size_t len)
{
	size_t i = 0;

	for (; i < len && ((pos + i) & 7); i++)
		if (buf[i] != rt_byte(seed, pos + i))
			return i;
	for (; i + 8 <= len; i += 8) {
		uint64_t v, want = htole64(rt_word(seed, (pos + i) >> 3));

		memcpy(&v, buf + i, 8);
		if (v != want)
			break;	/* the loop below finds the byte */
	}
	for (; i < len; i++)
		if (buf[i] != rt_byte(seed, pos + i))
			return i;
	return -1;
}

/* ---- rings, their nodes and their files ---- */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* "zcdev" for ring 0, "zcdevN" for ring N: the node and the misc name. */
static void ring_name(char *buf, size_t len, int ring)
{
	if (ring)
		snprintf(buf, len, "zcdev%d", ring);
	else
		snprintf(buf, len, "zcdev");
}

static void ring_path(char *buf, size_t len, int ring)
{
	char name[32];

	ring_name(name, sizeof(name), ring);
	snprintf(buf, len, "/dev/%s", name);
}

/* Under /sys/class/misc/<node>/ (@attr NULL: the directory itself). */
static void ring_sysfs(char *buf, size_t len, int ring, const char *attr)
{
	char name[32];

	ring_name(name, sizeof(name), ring);
	snprintf(buf, len, MISC_DIR "%s%s%s", name, attr ? "/" : "", attr ? attr : "");
}

static int ring_attr(int ring, const char *attr, uint64_t *val)
{
	char path[128];

	ring_sysfs(path, sizeof(path), ring, attr);
	return zt_read_u64(path, val);
}

static bool ring_in_sysfs(int ring)
{
	char path[128];

	ring_sysfs(path, sizeof(path), ring, NULL);
	return !access(path, F_OK);
}

static int param_u64(const char *name, uint64_t *val)
{
	char path[128];

	snprintf(path, sizeof(path), PARAM_DIR "%s", name);
	return zt_read_u64(path, val);
}

/* Wait until @path exists (@want) or is gone (!@want); 0, or -1 at the limit. */
static int wait_path(const char *path, bool want)
{
	for (int ms = 0;; ms += 10) {
		struct stat st;
		bool there = !stat(path, &st);

		if (there == want)
			return 0;
		if (ms >= NODE_WAIT_MS)
			return -1;
		usleep(10000);
	}
}

static int wait_node(int ring, bool want)
{
	char path[64];

	ring_path(path, sizeof(path), ring);
	return wait_path(path, want);
}

/*
 * Open ring @ring's node once it is there, and check it is a zcdev of this
 * ABI; -1 with errno set on failure.
 */
static int ring_open(int ring, int flags)
{
	struct zcdev_info info;
	char path[64];
	int fd;

	ring_path(path, sizeof(path), ring);
	wait_path(path, true);
	fd = zcdev_open(path, flags, &info);
	if (fd < 0) {
		errno = -fd;
		return -1;
	}
	return fd;
}

static int ctl_add(int ctl, long ring)
{
	return ioctl(ctl, ZCDEV_CTL_ADD, ring);
}

static int ctl_remove(int ctl, long ring)
{
	return ioctl(ctl, ZCDEV_CTL_REMOVE, ring);
}

/* The rings that exist now, by their sysfs directories; their pages in *@pages. */
static int count_rings(uint64_t *pages)
{
	int n = 0;

	if (pages)
		*pages = 0;
	for (int r = 0; r < ZCDEV_MAX_RINGS; r++) {
		uint64_t p;

		if (!ring_in_sysfs(r))
			continue;
		n++;
		if (pages && !ring_attr(r, "ring_pages", &p))
			*pages += p;
	}
	return n;
}

static int lowest_free_ring(void)
{
	for (int r = 1; r < ZCDEV_MAX_RINGS; r++)
		if (!ring_in_sysfs(r))
			return r;
	return -1;
}

/* A debugfs stats line ("name value"); -1 when the file or the line is missing. */
static int debugfs_stat(int ring, const char *field, uint64_t *val)
{
	char path[128], name[32], line[128], key[64];
	unsigned long long v;
	int ret = -1;
	FILE *f;

	ring_name(name, sizeof(name), ring);
	snprintf(path, sizeof(path), DEBUGFS_DIR "%s/stats", name);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (ret && fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %llu", key, &v) == 2 && !strcmp(key, field)) {
			*val = v;
			ret = 0;
		}
	fclose(f);
	return ret;
}

static bool debugfs_has_ring(int ring)
{
	char path[128], name[32];

	ring_name(name, sizeof(name), ring);
	snprintf(path, sizeof(path), DEBUGFS_DIR "%s", name);
	return !access(path, F_OK);
}

/* Write @len stream bytes of @ring's seed at *@pos (then advanced); 0 or -1. */
static int put_stream(int fd, int ring, uint64_t *pos, size_t len)
{
	uint8_t *buf = malloc(len);
	int ret;

	if (!buf)
		return -1;
	rt_fill(rt_seed(ring), buf, *pos, len);
	ret = zt_write_all(fd, buf, len);
	free(buf);
	*pos += len;
	return ret;
}

/*
 * Read @len bytes and check them against @ring's stream at *@pos (then
 * advanced): -1 when all are right, the index of the first wrong byte,
 * or -2 when fewer than @len came.
 */
static long get_stream(int fd, int ring, uint64_t *pos, size_t len)
{
	uint8_t *buf = malloc(len);
	long bad = -2;

	if (!buf)
		return -2;
	if (zt_read_all(fd, buf, len) == (ssize_t)len)
		bad = rt_check(rt_seed(ring), buf, *pos, len);
	free(buf);
	*pos += len;
	return bad;
}

/* What moved between two snapshots of a ring's counters, as one line. */
static const char *stats_moved(const struct zcdev_stats *a, const struct zcdev_stats *b)
{
	static char line[512];
	struct zcdev_stats d;

	zcdev_stats_delta(a, b, &d);
	zcdev_stats_format(line, sizeof(line), &d);
	return line;
}

/* ---- the fixture: what a test adds, opens and starts, undone at the end ---- */

FIXTURE(rings) {
	int ctl;
	size_t ps;
	uint64_t ring_pages;		/* the module's: a new ring's size */
	uint64_t max_ring_pages;
	int mine[MAX_MINE];		/* rings this test added, not yet removed */
	int nmine;
	int fds[MAX_FDS];		/* open ring files */
	int nfds;
	void *maps[MAX_MAPS];
	size_t map_len[MAX_MAPS];
	int nmaps;
	pid_t kids[MAX_KIDS];
	int nkids;
	int *churn_ring;		/* a ring a killed process may have left */
	bool ring0_at_risk;		/* the test asked to remove ring 0 */
};

FIXTURE_SETUP(rings)
{
	self->ps = sysconf(_SC_PAGESIZE);
	self->ctl = open(CONTROL_PATH, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, self->ctl) TH_LOG("%s: %s", CONTROL_PATH, strerror(errno));
	ASSERT_EQ(0, param_u64("ring_pages", &self->ring_pages));
	ASSERT_EQ(0, param_u64("max_ring_pages", &self->max_ring_pages));
}

static void forget_ring(FIXTURE_DATA(rings) *self, int ring)
{
	for (int i = 0; i < self->nmine; i++)
		if (self->mine[i] == ring)
			self->mine[i] = self->mine[--self->nmine];
}

/* ADD through the control device; a ring it makes is the teardown's to remove. */
static int add_ring(FIXTURE_DATA(rings) *self, long ring)
{
	int n = ctl_add(self->ctl, ring);

	if (n >= 0 && self->nmine < MAX_MINE)
		self->mine[self->nmine++] = n;
	return n;
}

static int remove_ring(FIXTURE_DATA(rings) *self, long ring)
{
	int ret;

	if (!ring)
		self->ring0_at_risk = true;
	ret = ctl_remove(self->ctl, ring);
	if (!ret)
		forget_ring(self, ring);
	return ret;
}

static int open_ring(FIXTURE_DATA(rings) *self, int ring, int flags)
{
	int fd = ring_open(ring, flags);

	if (fd >= 0 && self->nfds < MAX_FDS)
		self->fds[self->nfds++] = fd;
	return fd;
}

static void close_ring(FIXTURE_DATA(rings) *self, int fd)
{
	for (int i = 0; i < self->nfds; i++)
		if (self->fds[i] == fd)
			self->fds[i] = self->fds[--self->nfds];
	close(fd);
}

static void *map_ring(FIXTURE_DATA(rings) *self, int fd, size_t len, int prot,
		      off_t off)
{
	void *p = mmap(NULL, len, prot, MAP_SHARED, fd, off);

	if (p != MAP_FAILED && self->nmaps < MAX_MAPS) {
		self->maps[self->nmaps] = p;
		self->map_len[self->nmaps++] = len;
	}
	return p;
}

static void unmap_ring(FIXTURE_DATA(rings) *self, void *p)
{
	for (int i = 0; i < self->nmaps; i++)
		if (self->maps[i] == p) {
			munmap(p, self->map_len[i]);
			self->maps[i] = self->maps[self->nmaps - 1];
			self->map_len[i] = self->map_len[--self->nmaps];
		}
}

FIXTURE_TEARDOWN(rings)
{
	for (int i = 0; i < self->nkids; i++) {
		if (self->kids[i] <= 0)
			continue;
		kill(self->kids[i], SIGKILL);
		waitpid(self->kids[i], NULL, 0);
	}
	for (int i = 0; i < self->nmaps; i++)
		munmap(self->maps[i], self->map_len[i]);
	for (int i = 0; i < self->nfds; i++)
		close(self->fds[i]);
	self->nmaps = self->nfds = self->nkids = 0;
	if (self->ctl < 0)
		return;
	if (self->churn_ring && *self->churn_ring > 0 && self->nmine < MAX_MINE)
		self->mine[self->nmine++] = *self->churn_ring;
	/*
	 * A ring's last file may close a moment after its process is
	 * reaped (a pipe or a socket may hold it): try again for a while.
	 */
	while (self->nmine) {
		int ring = self->mine[self->nmine - 1];
		double end = now_s() + NODE_WAIT_MS / 1000.0;
		int ret, err = 0;

		while ((ret = ctl_remove(self->ctl, ring)) && (err = errno) == EBUSY &&
		       now_s() < end)
			usleep(10000);
		/*
		 * Not EXPECT_EQ() { TH_LOG() }: after an ASSERT the harness
		 * runs this with its trigger still set, and every such block
		 * would print, passed or not.
		 */
		if (ret)
			TH_LOG("teardown: cannot remove ring %d: %s", ring, strerror(err));
		EXPECT_EQ(0, ret);
		self->nmine--;
	}
	/* The other programs need /dev/zcdev: put back a ring 0 a bug removed. */
	if (self->ring0_at_risk && !ctl_add(self->ctl, 0))
		TH_LOG("teardown: ring 0 was gone; added it again");
	close(self->ctl);
}

/* ---- adding and removing ---- */

/*
 * ADD(-1) takes the lowest free number above 0, makes /dev/zcdevN (a
 * character device with the number sysfs gives), sysfs and debugfs
 * directories, and a ring of the module's ring_pages that says it is
 * ring N; REMOVE takes all of it away, and a second REMOVE finds nothing.
 */
TEST_F(rings, add_lowest_free_then_remove)
{
	char path[64], dev[32], want_dev[32];
	struct zcdev_stats st;
	struct zcdev_info info;
	uint64_t v, pos = 0, rpos = 0, max_total;
	int lowest, n, fd;
	struct stat sb;

	lowest = lowest_free_ring();
	ASSERT_LT(0, lowest);
	n = add_ring(self, -1);
	ASSERT_LE(0, n) TH_LOG("ADD(-1): %s", strerror(errno));
	ASSERT_LT(0, n);
	ASSERT_GT(ZCDEV_MAX_RINGS, n);
	EXPECT_EQ(lowest, n) TH_LOG("ADD(-1) gave %d; the lowest free number is %d", n, lowest);

	ring_path(path, sizeof(path), n);
	ASSERT_EQ(0, wait_node(n, true)) {
		TH_LOG("%s did not appear in %d ms", path, NODE_WAIT_MS);
	}
	ASSERT_EQ(0, stat(path, &sb));
	ASSERT_TRUE(S_ISCHR(sb.st_mode));
	snprintf(want_dev, sizeof(want_dev), "%u:%u", major(sb.st_rdev), minor(sb.st_rdev));
	ring_sysfs(path, sizeof(path), n, "dev");
	{
		FILE *f = fopen(path, "re");

		ASSERT_NE(NULL, f) TH_LOG("%s: %s", path, strerror(errno));
		ASSERT_EQ(1, fscanf(f, "%31s", dev));
		fclose(f);
	}
	EXPECT_STREQ(want_dev, dev);

	fd = open_ring(self, n, O_RDWR | O_NONBLOCK);
	ASSERT_LE(0, fd) TH_LOG("open ring %d: %s", n, strerror(errno));
	ASSERT_EQ(0, zt_info(fd, &info));
	EXPECT_EQ(ZCDEV_ABI_VERSION, info.abi_version);
	EXPECT_EQ((uint32_t)n, info.ring);
	EXPECT_EQ(self->ring_pages, info.ring_pages);
	EXPECT_EQ(self->max_ring_pages, info.max_ring_pages);
	ASSERT_EQ(0, param_u64("max_total_pages", &max_total));
	EXPECT_EQ(max_total, info.max_total_pages);
	ASSERT_EQ(0, ring_attr(n, "ring", &v));
	EXPECT_EQ((uint64_t)n, v);
	ASSERT_EQ(0, ring_attr(n, "ring_pages", &v));
	EXPECT_EQ(self->ring_pages, v);

	/* A new ring: empty, its own counters at zero, its pages its own. */
	ASSERT_EQ(0, zt_stats(fd, &st));
	EXPECT_EQ(0, zcdev_stats_in(&st));
	EXPECT_EQ(0, zcdev_stats_out(&st));
	EXPECT_EQ(self->ring_pages, st.pages_held);
	EXPECT_EQ(-1, read(fd, path, 1));
	EXPECT_EQ(EAGAIN, errno);

	if (self->ring_pages) {
		ASSERT_EQ(0, put_stream(fd, n, &pos, 3 * self->ps + 5));
		ASSERT_EQ(-1, get_stream(fd, n, &rpos, pos));
	}
	if (debugfs_has_ring(0)) {
		EXPECT_TRUE(debugfs_has_ring(n));
		ASSERT_EQ(0, zt_stats(fd, &st));
		EXPECT_EQ(0, debugfs_stat(n, "pages_held", &v));
		EXPECT_EQ(st.pages_held, v);
		EXPECT_EQ(0, debugfs_stat(n, "bytes_written_copy", &v));
		EXPECT_EQ(st.bytes_written_copy, v);
	}
	close_ring(self, fd);

	ASSERT_EQ(0, remove_ring(self, n)) TH_LOG("REMOVE(%d): %s", n, strerror(errno));
	EXPECT_EQ(0, wait_node(n, false)) {
		TH_LOG("/dev/zcdev%d still there %d ms after REMOVE", n, NODE_WAIT_MS);
	}
	EXPECT_FALSE(ring_in_sysfs(n));
	EXPECT_FALSE(debugfs_has_ring(n));
	EXPECT_EQ(-1, ring_open(n, O_RDWR));
	EXPECT_EQ(-1, ctl_remove(self->ctl, n));
	EXPECT_EQ(ENODEV, errno);

	/*
	 * Its number is free again: the lowest, as before. Asked for with a
	 * 32-bit -1 this time: the number is an int, and a C caller's
	 * ioctl(fd, ZCDEV_CTL_ADD, -1) may leave the upper half of the
	 * register zero.
	 */
	ASSERT_EQ(n, add_ring(self, (long)0xffffffffUL)) {
		TH_LOG("ADD(0xffffffff): %s", strerror(errno));
	}
	ASSERT_EQ(0, wait_node(n, true));
	fd = open_ring(self, n, O_RDWR | O_NONBLOCK);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, zt_info(fd, &info));
	EXPECT_EQ((uint32_t)n, info.ring);
	EXPECT_EQ(-1, read(fd, path, 1)) TH_LOG("a ring made again kept old bytes");
	EXPECT_EQ(EAGAIN, errno);
	close_ring(self, fd);
	ASSERT_EQ(0, remove_ring(self, n));
	EXPECT_EQ(0, wait_node(n, false));
}

/* An explicit number: made once, EEXIST the second time; ring 0 is EEXIST. */
TEST_F(rings, add_same_number_twice_is_eexist)
{
	int top = ZCDEV_MAX_RINGS - 1, before;
	struct zcdev_info info;
	int fd;

	ASSERT_FALSE(ring_in_sysfs(top)) TH_LOG("ring %d exists before the test", top);
	before = count_rings(NULL);
	ASSERT_EQ(top, add_ring(self, top)) TH_LOG("ADD(%d): %s", top, strerror(errno));
	EXPECT_EQ(-1, ctl_add(self->ctl, top));
	EXPECT_EQ(EEXIST, errno);
	EXPECT_EQ(-1, ctl_add(self->ctl, 0));
	EXPECT_EQ(EEXIST, errno);
	EXPECT_EQ(before + 1, count_rings(NULL));

	fd = open_ring(self, top, O_RDONLY);
	ASSERT_LE(0, fd) TH_LOG("open ring %d: %s", top, strerror(errno));
	ASSERT_EQ(0, zt_info(fd, &info));
	EXPECT_EQ((uint32_t)top, info.ring);
	close_ring(self, fd);
	ASSERT_EQ(0, remove_ring(self, top));
	EXPECT_EQ(0, wait_node(top, false));
}

/* Numbers outside 0 to ZCDEV_MAX_RINGS - 1 are EINVAL and make nothing. */
TEST_F(rings, out_of_range_is_einval)
{
	static const long bad[] = { -2, ZCDEV_MAX_RINGS, ZCDEV_MAX_RINGS + 1,
				    INT_MIN, INT_MAX, -ZCDEV_MAX_RINGS };
	int before = count_rings(NULL);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int n = add_ring(self, bad[i]);

		EXPECT_EQ(-1, n) TH_LOG("ADD(%ld) made ring %d", bad[i], n);
		EXPECT_EQ(EINVAL, errno) TH_LOG("ADD(%ld): %s", bad[i], strerror(errno));
	}
	/* REMOVE of such a number: nothing to remove, whichever it says. */
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		EXPECT_EQ(-1, ctl_remove(self->ctl, bad[i]));
		EXPECT_TRUE(errno == EINVAL || errno == ENODEV) {
			TH_LOG("REMOVE(%ld): %s", bad[i], strerror(errno));
		}
	}
	EXPECT_EQ(before, count_rings(NULL));
}

/*
 * With every number from 0 to ZCDEV_MAX_RINGS - 1 taken, ADD(-1) is
 * ENOSPC and an explicit number EEXIST; one ring removed, its number is
 * the one ADD(-1) gives.
 */
TEST_F(rings, all_numbers_taken_is_enospc)
{
	uint64_t max_total, total;
	int free_nr, added = 0, mid = -1;

	ASSERT_EQ(0, param_u64("max_total_pages", &max_total));
	free_nr = ZCDEV_MAX_RINGS - count_rings(&total);
	ASSERT_LT(0, free_nr);
	if (total + free_nr * self->ring_pages > max_total)
		SKIP(return, "max_total_pages %" PRIu64 " cannot hold %d more rings of %"
		     PRIu64 " pages", max_total, free_nr, self->ring_pages);

	for (int i = 0; i < free_nr; i++) {
		int n = add_ring(self, -1);

		ASSERT_LT(0, n) TH_LOG("ADD(-1) number %d of %d: %s", i + 1, free_nr,
				       strerror(errno));
		added++;
		if (i == free_nr / 2)
			mid = n;
	}
	EXPECT_EQ(-1, add_ring(self, -1));
	EXPECT_EQ(ENOSPC, errno) TH_LOG("ADD(-1) with every number taken: %s", strerror(errno));
	EXPECT_EQ(-1, add_ring(self, ZCDEV_MAX_RINGS - 1));
	EXPECT_EQ(EEXIST, errno);
	EXPECT_EQ(ZCDEV_MAX_RINGS, count_rings(NULL));
	ksft_print_msg("%d rings added, %d in all\n", added, ZCDEV_MAX_RINGS);

	/* A node for each: the last one made is there. */
	EXPECT_EQ(0, wait_node(self->mine[self->nmine - 1], true));
	ASSERT_EQ(0, remove_ring(self, mid));
	EXPECT_EQ(mid, add_ring(self, -1));
}

/*
 * REMOVE is EBUSY while any file has the ring open, and while only a
 * mapping holds it (open, mmap, close); the ring works on after each, and
 * goes once the last holder is gone.
 */
TEST_F(rings, remove_while_open_or_mapped_is_ebusy)
{
	uint64_t pos = 0, rpos = 0;
	struct zcdev_info info;
	int n, fd, fd2;
	void *meta, *data;
	pid_t kid;

	ASSERT_LT(0, self->ring_pages) TH_LOG("the module's ring_pages is 0");
	n = add_ring(self, -1);
	ASSERT_LT(0, n) TH_LOG("ADD(-1): %s", strerror(errno));

	/* An open file, read-only or not. */
	fd = open_ring(self, n, O_RDONLY | O_NONBLOCK);
	ASSERT_LE(0, fd);
	EXPECT_EQ(-1, remove_ring(self, n));
	EXPECT_EQ(EBUSY, errno);
	fd2 = open_ring(self, n, O_RDWR | O_NONBLOCK);
	ASSERT_LE(0, fd2) TH_LOG("open after the refused REMOVE: %s", strerror(errno));
	close_ring(self, fd);
	EXPECT_EQ(-1, remove_ring(self, n));
	EXPECT_EQ(EBUSY, errno);
	ASSERT_EQ(0, put_stream(fd2, n, &pos, 2 * self->ps + 99));
	ASSERT_EQ(-1, get_stream(fd2, n, &rpos, pos));

	/* Only a mapping: the meta page and the data pages, the file closed. */
	ASSERT_EQ(0, zt_info(fd2, &info));
	EXPECT_EQ((uint32_t)n, info.ring);
	meta = map_ring(self, fd2, self->ps, PROT_READ, info.meta_offset);
	ASSERT_NE(MAP_FAILED, meta);
	close_ring(self, fd2);
	EXPECT_EQ(-1, remove_ring(self, n));
	EXPECT_EQ(EBUSY, errno);
	EXPECT_EQ(0, wait_node(n, true));
	fd = open_ring(self, n, O_RDWR);
	ASSERT_LE(0, fd);
	data = map_ring(self, fd, info.ring_bytes, PROT_READ | PROT_WRITE, info.data_offset);
	ASSERT_NE(MAP_FAILED, data);
	close_ring(self, fd);
	unmap_ring(self, meta);
	EXPECT_EQ(-1, remove_ring(self, n));
	EXPECT_EQ(EBUSY, errno);

	/*
	 * The ring still works: a new file writes, the mapping shows it (a
	 * new ring: its head is our stream position), the file reads it.
	 */
	fd = open_ring(self, n, O_RDWR | O_NONBLOCK);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, put_stream(fd, n, &pos, self->ps));
	if (rpos % info.ring_bytes + self->ps <= info.ring_bytes)
		EXPECT_EQ(-1, rt_check(rt_seed(n), (uint8_t *)data + rpos % info.ring_bytes,
				       rpos, self->ps));
	ASSERT_EQ(-1, get_stream(fd, n, &rpos, self->ps));
	close_ring(self, fd);
	unmap_ring(self, data);

	/* A file another process holds (inherited, ours closed). */
	fd = open_ring(self, n, O_RDONLY);
	ASSERT_LE(0, fd);
	kid = fork();
	ASSERT_LE(0, kid);
	if (!kid) {
		pause();
		_exit(0);
	}
	self->kids[self->nkids++] = kid;
	close_ring(self, fd);
	EXPECT_EQ(-1, remove_ring(self, n));
	EXPECT_EQ(EBUSY, errno);
	kill(kid, SIGKILL);
	ASSERT_EQ(kid, waitpid(kid, NULL, 0));
	self->kids[--self->nkids] = 0;

	/* The last holder gone: REMOVE succeeds, and the node goes. */
	ASSERT_EQ(0, remove_ring(self, n)) TH_LOG("REMOVE(%d): %s", n, strerror(errno));
	EXPECT_EQ(0, wait_node(n, false));
}

/*
 * Ring 0 is /dev/zcdev, the other programs' ring: only check that it
 * cannot go while this test holds it open, and that it works on.
 */
TEST_F(rings, ring0_remove_is_ebusy_while_open)
{
	struct zcdev_info info;
	uint64_t v;
	int fd;

	fd = open_ring(self, 0, O_RDONLY | O_NONBLOCK);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, zt_info(fd, &info));
	EXPECT_EQ(0, info.ring);
	ASSERT_EQ(0, ring_attr(0, "ring", &v));
	EXPECT_EQ(0, v);
	EXPECT_EQ(-1, remove_ring(self, 0)) TH_LOG("ring 0 removed while open");
	EXPECT_EQ(EBUSY, errno);
	EXPECT_EQ(0, wait_node(0, true));
	EXPECT_TRUE(ring_in_sysfs(0));
	EXPECT_EQ(0, zt_info(fd, &info));
	close_ring(self, fd);
	fd = open_ring(self, 0, O_RDONLY | O_NONBLOCK);
	ASSERT_LE(0, fd) TH_LOG("reopen /dev/zcdev: %s", strerror(errno));
	close_ring(self, fd);
}

/* ---- isolation ---- */

static void ring_heads(int ring, uint64_t *head, uint64_t *used)
{
	if (ring_attr(ring, "head", head))
		*head = UINT64_MAX;
	if (ring_attr(ring, "used", used))
		*used = UINT64_MAX;
}

/*
 * Bytes written to ring A never come out of ring B: B stays empty (read,
 * splice), its counters, head and used do not move, A's do; and what a
 * RESET or RESIZE does to A leaves B's bytes, size and counters alone.
 * Ring 0 is watched too.
 */
TEST_F(rings, bytes_stats_and_heads_stay_in_their_ring)
{
	uint64_t apos = 0, arpos = 0, bpos = 0, brpos = 0;
	uint64_t ahead0, aused0, bhead0, bused0, h, u, gen;
	struct zcdev_stats ast0, bst0, zst0, st;
	struct zcdev_info binfo0, info;
	const struct zcdev_ring_meta *bmeta;
	int a, b, afd, bfd, zfd, p[2];
	size_t alen, blen;

	ASSERT_LE(8, self->ring_pages) TH_LOG("the module's ring_pages is below 8");
	a = add_ring(self, -1);
	ASSERT_LT(0, a) TH_LOG("ADD(-1): %s", strerror(errno));
	b = add_ring(self, -1);
	ASSERT_LT(0, b) TH_LOG("ADD(-1): %s", strerror(errno));
	ASSERT_NE(a, b);
	afd = open_ring(self, a, O_RDWR | O_NONBLOCK);
	ASSERT_LE(0, afd);
	bfd = open_ring(self, b, O_RDWR | O_NONBLOCK);
	ASSERT_LE(0, bfd);
	zfd = open_ring(self, 0, O_RDONLY | O_NONBLOCK);
	ASSERT_LE(0, zfd);
	ASSERT_EQ(0, pipe2(p, O_NONBLOCK | O_CLOEXEC));
	ASSERT_EQ(0, zt_info(bfd, &binfo0));
	bmeta = map_ring(self, bfd, self->ps, PROT_READ, binfo0.meta_offset);
	ASSERT_NE(MAP_FAILED, bmeta);

	ASSERT_EQ(0, zt_stats(afd, &ast0));
	ASSERT_EQ(0, zt_stats(bfd, &bst0));
	ASSERT_EQ(0, zt_stats(zfd, &zst0));
	ring_heads(a, &ahead0, &aused0);
	ring_heads(b, &bhead0, &bused0);
	ASSERT_NE(UINT64_MAX, ahead0) TH_LOG("no %s", MISC_DIR "zcdevA/head");
	ASSERT_NE(UINT64_MAX, bused0) TH_LOG("no %s", MISC_DIR "zcdevB/used");
	EXPECT_EQ(0, bused0);

	/* Into A: three pages and some. */
	alen = 3 * self->ps + 123;
	ASSERT_EQ(0, put_stream(afd, a, &apos, alen));

	/* B has none of it, by any path. */
	{
		uint8_t byte;

		EXPECT_EQ(-1, read(bfd, &byte, 1));
		EXPECT_EQ(EAGAIN, errno);
		EXPECT_EQ(-1, splice(bfd, NULL, p[1], NULL, alen, SPLICE_F_NONBLOCK));
		EXPECT_EQ(EAGAIN, errno);
	}
	ASSERT_EQ(0, zt_stats(bfd, &st));
	EXPECT_EQ(0, memcmp(&bst0, &st, sizeof(st))) {
		TH_LOG("ring B's counters moved: %s", stats_moved(&bst0, &st));
	}
	ASSERT_EQ(0, zt_stats(zfd, &st));
	EXPECT_EQ(0, memcmp(&zst0, &st, sizeof(st))) {
		TH_LOG("ring 0's counters moved: %s", stats_moved(&zst0, &st));
	}
	ring_heads(b, &h, &u);
	EXPECT_EQ(bhead0, h);
	EXPECT_EQ(0, u);
	EXPECT_EQ(bhead0, __atomic_load_n(&bmeta->head, __ATOMIC_ACQUIRE));
	ring_heads(a, &h, &u);
	EXPECT_EQ(ahead0 + alen, h);
	EXPECT_EQ(alen, u);
	ASSERT_EQ(0, zt_stats(afd, &st));
	EXPECT_EQ(alen, st.bytes_written_copy - ast0.bytes_written_copy);

	/* B's own bytes, then each ring gives back exactly its own. */
	blen = 2 * self->ps + 7;
	ASSERT_EQ(0, put_stream(bfd, b, &bpos, blen));
	ring_heads(a, &h, &u);
	EXPECT_EQ(alen, u);
	ASSERT_EQ(-1, get_stream(afd, a, &arpos, self->ps));
	ASSERT_EQ(-1, get_stream(bfd, b, &brpos, self->ps));
	ASSERT_EQ(0, put_stream(afd, a, &apos, self->ps));

	/* RESET A: B keeps its bytes, its head, its generation. */
	gen = __atomic_load_n(&bmeta->generation, __ATOMIC_ACQUIRE);
	ring_heads(b, &bhead0, &bused0);
	ASSERT_EQ(0, ioctl(afd, ZCDEV_IOC_RESET));
	ring_heads(a, &h, &u);
	EXPECT_EQ(0, u);
	ring_heads(b, &h, &u);
	EXPECT_EQ(bhead0, h);
	EXPECT_EQ(bused0, u);
	EXPECT_EQ(gen, __atomic_load_n(&bmeta->generation, __ATOMIC_ACQUIRE));

	/* RESIZE A down and up: B keeps its size, pages and bytes. */
	ASSERT_EQ(0, zt_resize(afd, 2));
	ASSERT_EQ(0, zt_info(bfd, &info));
	EXPECT_EQ(binfo0.ring_pages, info.ring_pages);
	ASSERT_EQ(0, zt_stats(bfd, &st));
	EXPECT_EQ(binfo0.ring_pages, st.pages_held);
	ASSERT_EQ(0, zt_resize(afd, self->ring_pages + 4));
	ASSERT_EQ(0, zt_info(afd, &info));
	EXPECT_EQ(self->ring_pages + 4, info.ring_pages);
	ASSERT_EQ(0, zt_stats(afd, &st));
	EXPECT_EQ(self->ring_pages + 4, st.pages_held);
	ASSERT_EQ(0, zt_info(bfd, &info));
	EXPECT_EQ(binfo0.ring_pages, info.ring_pages);
	ASSERT_EQ(0, zt_stats(bfd, &st));
	EXPECT_EQ(binfo0.ring_pages, st.pages_held);
	EXPECT_EQ(gen, __atomic_load_n(&bmeta->generation, __ATOMIC_ACQUIRE));
	ring_heads(b, &h, &u);
	EXPECT_EQ(bused0, u);
	ASSERT_EQ(-1, get_stream(bfd, b, &brpos, blen - self->ps));

	/* A after all that: empty, and its new bytes are its own. */
	{
		uint8_t byte;

		EXPECT_EQ(-1, read(afd, &byte, 1));
		EXPECT_EQ(EAGAIN, errno);
	}
	arpos = apos;
	ASSERT_EQ(0, put_stream(afd, a, &apos, 5 * self->ps));
	ASSERT_EQ(-1, get_stream(afd, a, &arpos, 5 * self->ps));
	ASSERT_EQ(0, zt_stats(zfd, &st));
	EXPECT_EQ(0, memcmp(&zst0, &st, sizeof(st))) {
		TH_LOG("ring 0's counters moved: %s", stats_moved(&zst0, &st));
	}
	close(p[0]);
	close(p[1]);
}

/*
 * sendfile() from a ring into a ring is EINVAL, into another ring as into
 * itself (two full rings sending into each other would each wait for the
 * other's lend), and both keep their bytes, no byte counted. splice() from
 * ring A into a pipe, then from the pipe into ring B, moves A's bytes, in
 * order, into B: out of A's counters, into B's.
 */
TEST_F(rings, ring_to_ring_sendfile_is_einval_splice_through_a_pipe_moves)
{
	uint64_t apos = 0, arpos = 0, bpos = 0, brpos = 0, moved = 0, len, used;
	struct zcdev_stats a0, b0, a1, b1, d;
	int a, b, afd, bfd, p[2];

	ASSERT_LE(8, self->ring_pages) TH_LOG("the module's ring_pages is below 8");
	a = add_ring(self, -1);
	ASSERT_LT(0, a) TH_LOG("ADD(-1): %s", strerror(errno));
	b = add_ring(self, -1);
	ASSERT_LT(0, b) TH_LOG("ADD(-1): %s", strerror(errno));
	afd = open_ring(self, a, O_RDWR | O_NONBLOCK);
	ASSERT_LE(0, afd);
	bfd = open_ring(self, b, O_RDWR | O_NONBLOCK);
	ASSERT_LE(0, bfd);
	ASSERT_EQ(0, pipe2(p, O_NONBLOCK | O_CLOEXEC));
	ASSERT_LT(0, fcntl(p[0], F_SETPIPE_SZ, 1 << 20));

	/*
	 * Bytes in both: an empty non-blocking source answers EAGAIN before
	 * anything meets the output.
	 */
	len = 5 * self->ps + 77;
	ASSERT_EQ(0, put_stream(afd, a, &apos, len));
	ASSERT_EQ(0, put_stream(bfd, b, &bpos, self->ps + 5));
	ASSERT_EQ(0, zt_stats(afd, &a0));
	ASSERT_EQ(0, zt_stats(bfd, &b0));

	/* Ring to ring, either way, and into itself: refused, nothing moves. */
	EXPECT_EQ(-1, sendfile(bfd, afd, NULL, len)) TH_LOG("sendfile ring %d -> %d", a, b);
	EXPECT_EQ(EINVAL, errno) TH_LOG("sendfile ring %d -> %d: %s", a, b, strerror(errno));
	EXPECT_EQ(-1, sendfile(afd, bfd, NULL, len));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, sendfile(afd, afd, NULL, len));
	EXPECT_EQ(EINVAL, errno);
	/*
	 * Not a byte in or out of either. (The buffers a refused sendfile
	 * lent do count in pages_spliced_out, "pipe buffers handed out",
	 * though none was taken: shown, not failed.)
	 */
	ASSERT_EQ(0, zt_stats(afd, &a1));
	ASSERT_EQ(0, zt_stats(bfd, &b1));
	for (int r = 0; r < 2; r++) {
		const struct zcdev_stats *s0 = r ? &b0 : &a0, *s1 = r ? &b1 : &a1;

		zcdev_stats_delta(s0, s1, &d);
		EXPECT_EQ(0, zcdev_stats_in(&d)) TH_LOG("%s", stats_moved(s0, s1));
		EXPECT_EQ(0, zcdev_stats_out(&d)) TH_LOG("%s", stats_moved(s0, s1));
		EXPECT_EQ(s0->pages_held, s1->pages_held);
		if (memcmp(s0, s1, sizeof(*s1)))
			ksft_print_msg("ring %d after the refused sendfiles: %s\n",
				       r ? b : a, stats_moved(s0, s1));
	}
	ASSERT_EQ(0, ring_attr(a, "used", &used));
	EXPECT_EQ(len, used);
	ASSERT_EQ(0, ring_attr(b, "used", &used));
	EXPECT_EQ(bpos, used);

	ASSERT_EQ(-1, get_stream(bfd, b, &brpos, bpos)) TH_LOG("ring %d lost its bytes", b);
	ASSERT_EQ(0, zt_stats(bfd, &b0));

	/* Through a pipe of our own: A's stream lands in B, whole and in order. */
	while (moved < len) {
		ssize_t n = splice(afd, NULL, p[1], NULL, len - moved, SPLICE_F_NONBLOCK);

		ASSERT_LT(0, n) TH_LOG("splice ring %d -> pipe after %" PRIu64 " bytes: %s",
				       a, moved, n ? strerror(errno) : "0");
		while (n > 0) {
			ssize_t m = splice(p[0], NULL, bfd, NULL, n,
					   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);

			ASSERT_LT(0, m) TH_LOG("splice pipe -> ring %d: %s", b,
					       m ? strerror(errno) : "0");
			n -= m;
			moved += m;
		}
	}
	{
		uint8_t byte;

		EXPECT_EQ(-1, read(afd, &byte, 1));
		EXPECT_EQ(EAGAIN, errno);
	}
	ASSERT_EQ(0, zt_stats(afd, &a1));
	ASSERT_EQ(0, zt_stats(bfd, &b1));
	zcdev_stats_delta(&a0, &a1, &d);
	EXPECT_EQ(len, zcdev_stats_out(&d));
	EXPECT_EQ(0, zcdev_stats_in(&d));
	EXPECT_EQ(self->ring_pages, a1.pages_held);
	zcdev_stats_delta(&b0, &b1, &d);
	EXPECT_EQ(len, zcdev_stats_in(&d));
	EXPECT_EQ(0, zcdev_stats_out(&d));
	EXPECT_EQ(self->ring_pages, b1.pages_held);
	bpos = 0;
	ASSERT_EQ(-1, get_stream(bfd, a, &bpos, len));

	/* A's own bytes after all that are still its own. */
	arpos = apos;
	ASSERT_EQ(0, put_stream(afd, a, &apos, 2 * self->ps));
	ASSERT_EQ(-1, get_stream(afd, a, &arpos, 2 * self->ps));
	close(p[0]);
	close(p[1]);
}

/*
 * The control node is root's alone (0600, whatever the module's mode
 * says), and ADD and REMOVE need a file open for writing: EBADF from a
 * read-only one, which makes and removes nothing.
 */
TEST_F(rings, control_needs_a_writer_and_is_roots)
{
	int before = count_rings(NULL), ro, n;
	struct stat st;

	ASSERT_EQ(0, stat(CONTROL_PATH, &st));
	EXPECT_TRUE(S_ISCHR(st.st_mode));
	EXPECT_EQ(0600, st.st_mode & 07777) TH_LOG("%s is %04o", CONTROL_PATH,
						   st.st_mode & 07777);
	EXPECT_EQ(0, st.st_uid);

	n = add_ring(self, -1);
	ASSERT_LT(0, n) TH_LOG("ADD(-1): %s", strerror(errno));
	ro = open(CONTROL_PATH, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, ro);
	EXPECT_EQ(-1, ctl_add(ro, -1)) TH_LOG("ADD from a read-only file made a ring");
	EXPECT_EQ(EBADF, errno);
	EXPECT_EQ(-1, ctl_remove(ro, n)) TH_LOG("REMOVE from a read-only file removed it");
	EXPECT_EQ(EBADF, errno);
	close(ro);
	EXPECT_EQ(before + 1, count_rings(NULL));
	EXPECT_TRUE(ring_in_sysfs(n));
	ASSERT_EQ(0, remove_ring(self, n));
}

/* ---- max_total_pages ---- */

/*
 * A RESIZE that would take the rings together past max_total_pages fails
 * with ENOSPC and changes nothing (size, pages, bytes, generation); one
 * that ends exactly at the bound succeeds when that is small enough to
 * try here, and then an ADD finds no room.
 */
TEST_F(rings, resize_past_max_total_pages_is_enospc)
{
	uint64_t max_total, total, others, need, gen, pos = 0, rpos = 0;
	const struct zcdev_ring_meta *meta;
	struct zcdev_info info;
	struct zcdev_stats st;
	int n, fd;

	ASSERT_EQ(0, param_u64("max_total_pages", &max_total)) {
		TH_LOG("no number in " PARAM_DIR "max_total_pages");
	}
	n = add_ring(self, -1);
	ASSERT_LT(0, n) TH_LOG("ADD(-1): %s", strerror(errno));
	fd = open_ring(self, n, O_RDWR | O_NONBLOCK);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, zt_info(fd, &info));
	EXPECT_EQ(max_total, info.max_total_pages);
	count_rings(&total);
	ASSERT_LE(total, max_total) TH_LOG("the rings hold %" PRIu64 " pages", total);
	others = total - info.ring_pages;
	need = max_total - others + 1;	/* one page past the bound */
	ksft_print_msg("max_total_pages %" PRIu64 ", max_ring_pages %u, rings hold %"
		       PRIu64 " pages: ring %d to %" PRIu64 " pages passes the bound\n",
		       max_total, info.max_ring_pages, total, n, need);
	if (need > info.max_ring_pages)
		SKIP(return, "max_total_pages %" PRIu64 " cannot be passed by one ring: "
		     "it would need %" PRIu64 " pages, above max_ring_pages %u",
		     max_total, need, info.max_ring_pages);

	if (info.ring_pages) {
		ASSERT_EQ(0, put_stream(fd, n, &pos, self->ps + 1));
	}
	meta = map_ring(self, fd, self->ps, PROT_READ, info.meta_offset);
	ASSERT_NE(MAP_FAILED, meta);
	gen = __atomic_load_n(&meta->generation, __ATOMIC_ACQUIRE);

	EXPECT_EQ(-1, zt_resize(fd, need)) TH_LOG("RESIZE to %" PRIu64 " pages succeeded", need);
	EXPECT_EQ(ENOSPC, errno) TH_LOG("RESIZE past the bound: %s", strerror(errno));
	ASSERT_EQ(0, zt_info(fd, &info));
	ASSERT_EQ(0, zt_stats(fd, &st));
	EXPECT_EQ(total - others, info.ring_pages);
	EXPECT_EQ(total - others, st.pages_held);
	EXPECT_EQ(gen, __atomic_load_n(&meta->generation, __ATOMIC_ACQUIRE));
	/* Far past it too (but under max_ring_pages): the same. */
	if (need + 1000 <= info.max_ring_pages) {
		EXPECT_EQ(-1, zt_resize(fd, need + 1000));
		EXPECT_EQ(ENOSPC, errno);
	}
	count_rings(&total);
	EXPECT_EQ(others + info.ring_pages, total);
	if (pos)
		EXPECT_EQ(-1, get_stream(fd, n, &rpos, pos));

	/*
	 * Exactly at the bound: allowed. Only when it costs little memory
	 * (the guest has 1 GiB and KASAN's shadow).
	 */
	if (need - 1 - info.ring_pages > 8192) {
		ksft_print_msg("not trying the resize that fills the bound: %" PRIu64
			       " more pages\n", need - 1 - info.ring_pages);
		return;
	}
	ASSERT_EQ(0, zt_resize(fd, need - 1)) {
		TH_LOG("RESIZE to %" PRIu64 " pages, exactly max_total_pages: %s",
		       need - 1, strerror(errno));
	}
	ASSERT_EQ(0, zt_stats(fd, &st));
	EXPECT_EQ(need - 1, st.pages_held);
	count_rings(&total);
	EXPECT_EQ(max_total, total);
	if (self->ring_pages) {
		int extra = add_ring(self, -1);

		EXPECT_EQ(-1, extra) TH_LOG("ADD made ring %d past max_total_pages", extra);
		EXPECT_EQ(ENOSPC, errno) TH_LOG("ADD with no room: %s", strerror(errno));
	}
	EXPECT_EQ(-1, zt_resize(fd, need));
	EXPECT_EQ(ENOSPC, errno);
	ASSERT_EQ(0, zt_resize(fd, self->ring_pages));
}

/* ---- rings made at load: the devices parameter ---- */

FIXTURE(reload) {
	const char *ko;
	bool reloaded;		/* the module runs with this test's parameters */
	int fds[MAX_FDS];
	int nfds;
	void *map;		/* a meta page mapped, or NULL */
	size_t map_len;
};

FIXTURE_SETUP(reload)
{
	self->ko = getenv("ZCDEV_KO");
	ASSERT_TRUE(zt_module_loaded());
}

/* Back to the module as the other programs know it: loaded with its defaults. */
FIXTURE_TEARDOWN(reload)
{
	if (self->map)
		munmap(self->map, self->map_len);
	for (int i = 0; i < self->nfds; i++)
		close(self->fds[i]);
	if (!self->reloaded)
		return;
	/* No EXPECT_EQ() { TH_LOG() }: see the rings fixture's teardown. */
	if (zt_module_loaded() && zt_unload_module()) {
		TH_LOG("teardown: unload: %s", strerror(errno));
		EXPECT_TRUE(false);
	}
	if (zt_load_module(self->ko, "")) {
		TH_LOG("teardown: loading %s again: %s", self->ko, strerror(errno));
		EXPECT_TRUE(false);
	}
	EXPECT_EQ(0, wait_node(0, true));
}

static int reload_open(FIXTURE_DATA(reload) *self, int ring)
{
	int fd = ring_open(ring, O_RDWR | O_NONBLOCK);

	if (fd >= 0 && self->nfds < MAX_FDS)
		self->fds[self->nfds++] = fd;
	return fd;
}

/*
 * devices=3 makes rings 0, 1 and 2 at load, each of ring_pages pages
 * and each with the mode the module is given (the control device keeps
 * 0600);
 * with max_total_pages=40 and ring_pages=8, two more fit (the second
 * exactly), a third does not (ENOSPC), a RESIZE past the bound fails,
 * and pages given back make room again. The unload takes every ring,
 * those made at load and at run time alike.
 */
TEST_F(reload, devices_and_max_total_pages_at_load)
{
	static const int pages = 8, bound = 40;
	const struct zcdev_ring_meta *meta;
	size_t ps = sysconf(_SC_PAGESIZE);
	uint64_t v, total, gen, pos = 0, rpos = 0;
	struct zcdev_stats st;
	struct zcdev_info info;
	char params[96];
	int fd[3], ctl;
	struct stat sb;

	if (geteuid() != 0)
		SKIP(return, "reloading the module needs root");
	if (!self->ko || !*self->ko)
		SKIP(return, "ZCDEV_KO does not name the module to load again");
	ASSERT_EQ(0, access(self->ko, R_OK)) TH_LOG("%s: %s", self->ko, strerror(errno));

	ASSERT_EQ(0, zt_unload_module()) TH_LOG("unload: %s", strerror(errno));
	self->reloaded = true;

	/* Three rings of 8 pages cannot fit in 16: the load fails. */
	snprintf(params, sizeof(params), "devices=3 ring_pages=%d max_total_pages=%d",
		 pages, 2 * pages);
	EXPECT_EQ(-1, zt_load_module(self->ko, params)) TH_LOG("%s loaded", params);
	if (zt_module_loaded()) {
		count_rings(&total);
		EXPECT_GE(2 * pages, total);
		ASSERT_EQ(0, zt_unload_module());
	}

	snprintf(params, sizeof(params), "devices=3 ring_pages=%d max_total_pages=%d mode=0666",
		 pages, bound);
	ASSERT_EQ(0, zt_load_module(self->ko, params)) TH_LOG("%s: %s", params, strerror(errno));
	ASSERT_EQ(0, param_u64("devices", &v));
	EXPECT_EQ(3, v);
	ASSERT_EQ(0, param_u64("max_total_pages", &v));
	EXPECT_EQ((uint64_t)bound, v);
	for (int r = 0; r < 3; r++) {
		fd[r] = reload_open(self, r);
		ASSERT_LE(0, fd[r]) TH_LOG("ring %d: %s", r, strerror(errno));
		ASSERT_EQ(0, zt_info(fd[r], &info));
		EXPECT_EQ((uint32_t)r, info.ring);
		EXPECT_EQ((uint32_t)pages, info.ring_pages);
		EXPECT_EQ((uint32_t)bound, info.max_total_pages);
		ASSERT_EQ(0, ring_attr(r, "ring", &v));
		EXPECT_EQ((uint64_t)r, v);
		/* mode is every ring's (devtmpfs: no udev rule in the way)... */
		ring_path(params, sizeof(params), r);
		ASSERT_EQ(0, stat(params, &sb));
		EXPECT_EQ(0666, sb.st_mode & 07777) TH_LOG("%s", params);
	}
	/* ... and never the control device's. */
	ASSERT_EQ(0, stat(CONTROL_PATH, &sb));
	EXPECT_EQ(0600, sb.st_mode & 07777) TH_LOG("%s is %04o with mode=0666",
						   CONTROL_PATH, sb.st_mode & 07777);
	EXPECT_EQ(3, count_rings(&total));
	EXPECT_EQ(3 * pages, total);

	ctl = open(CONTROL_PATH, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, ctl);
	self->fds[self->nfds++] = ctl;
	EXPECT_EQ(3, ctl_add(ctl, -1));		/* 32 pages */
	EXPECT_EQ(4, ctl_add(ctl, -1));		/* 40: exactly the bound */
	EXPECT_EQ(-1, ctl_add(ctl, -1));
	EXPECT_EQ(ENOSPC, errno) TH_LOG("ADD past max_total_pages: %s", strerror(errno));
	EXPECT_EQ(-1, ctl_add(ctl, 9));
	EXPECT_EQ(ENOSPC, errno);
	EXPECT_EQ(5, count_rings(&total));
	EXPECT_EQ((uint64_t)bound, total);

	/*
	 * RESIZE past the bound: ENOSPC, and nothing changes: not the size,
	 * the pages, the generation, nor the bytes waiting in the ring.
	 */
	ASSERT_EQ(0, put_stream(fd[1], 1, &pos, ps + 1));
	meta = mmap(NULL, ps, PROT_READ, MAP_SHARED, fd[1], ZCDEV_META_OFFSET);
	ASSERT_NE(MAP_FAILED, meta);
	self->map = (void *)meta;
	self->map_len = ps;
	gen = __atomic_load_n(&meta->generation, __ATOMIC_ACQUIRE);
	EXPECT_EQ(-1, zt_resize(fd[1], pages + 1));
	EXPECT_EQ(ENOSPC, errno) TH_LOG("RESIZE past max_total_pages: %s", strerror(errno));
	ASSERT_EQ(0, zt_info(fd[1], &info));
	EXPECT_EQ((uint32_t)pages, info.ring_pages);
	ASSERT_EQ(0, zt_stats(fd[1], &st));
	EXPECT_EQ((uint64_t)pages, st.pages_held);
	EXPECT_EQ(gen, __atomic_load_n(&meta->generation, __ATOMIC_ACQUIRE));
	munmap(self->map, ps);
	self->map = NULL;
	EXPECT_EQ(-1, get_stream(fd[1], 1, &rpos, pos));

	/* Pages given back make room: for a ring, then for a RESIZE. */
	ASSERT_EQ(0, zt_resize(fd[1], 0));
	EXPECT_EQ(5, ctl_add(ctl, -1));
	EXPECT_EQ(0, ctl_remove(ctl, 4));
	EXPECT_EQ(0, zt_resize(fd[0], 2 * pages)) TH_LOG("RESIZE to the bound: %s", strerror(errno));
	EXPECT_EQ(-1, zt_resize(fd[0], 2 * pages + 1));
	EXPECT_EQ(ENOSPC, errno);
	count_rings(&total);
	EXPECT_EQ((uint64_t)bound, total);
	EXPECT_EQ(0, ctl_remove(ctl, 3));

	/* Any ring open, not only ring 0, holds the module. */
	for (int i = 0; i < self->nfds; i++)
		if (self->fds[i] != fd[2])
			close(self->fds[i]);
	self->fds[0] = fd[2];
	self->nfds = 1;
	EXPECT_EQ(-1, zt_unload_module()) TH_LOG("unloaded with ring 2 open");
	EXPECT_TRUE(errno == EWOULDBLOCK || errno == EBUSY) {
		TH_LOG("unload with ring 2 open: %s", strerror(errno));
	}
	ASSERT_TRUE(zt_module_loaded());

	/* Nothing open: the unload takes rings 0, 1, 2 and 5 and the control device. */
	close(fd[2]);
	self->nfds = 0;
	ASSERT_EQ(0, zt_unload_module()) TH_LOG("unload with four rings: %s", strerror(errno));
	for (int r = 0; r < 6; r++) {
		EXPECT_EQ(0, wait_node(r, false)) TH_LOG("ring %d's node outlived the module", r);
		EXPECT_FALSE(ring_in_sysfs(r));
	}
	EXPECT_EQ(0, wait_path(CONTROL_PATH, false));
}

/* ---- the acceptance case: two streams while rings come and go ---- */

/*
 * Bytes per ring: $ZCDEV_RINGS_BYTES (a number, with K, M or G), or this.
 * Measured under TCG on a 2-core host shared with one or two other
 * guests: the streams took 8 to 27 s on the 6.1 lane, 4 to 25 s on the
 * newest, 83 to 109 s on the debug lane (KASAN), ring B (splice) the
 * slower each time; the whole program 110 to 125 s on the debug lane.
 */
#define STREAM_BYTES_DEFAULT	(1ULL << 30)
/* The harness's bound on the test, and the test's own, well inside it. */
#define STREAM_TIMEOUT		780
#define STREAM_DEADLINE		720
#define CHUNK_MAX		(64 << 10)

enum { S_A, S_B };	/* A: write/read; B: write and splice in, splice out to a pipe */

struct stream_shared {
	int stop;			/* the parent: the churn ends */
	int failed;
	char msg[512];
	uint64_t total;
	int ring[2];
	uint64_t produced[2], consumed[2];
	uint64_t spliced_in_ops, write_ops;
	uint64_t cycles, busy_refusals;
	int churn_ring;			/* the churn's ring of the moment, or 0 */
	double start, took[2];		/* CLOCK_MONOTONIC; seconds each stream took */
};

static void sfail(struct stream_shared *sh, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	zt_fail_once(&sh->failed, sh->msg, sizeof(sh->msg), fmt, ap);
	va_end(ap);
}

/* A stream consumer's bytes at @pos: 0 if right, else -1 and the first wrong one named. */
static int stream_check(struct stream_shared *sh, int ring, char side,
			uint64_t seed, const uint8_t *buf, uint64_t pos, size_t len)
{
	long bad = rt_check(seed, buf, pos, len);

	if (bad < 0)
		return 0;
	sfail(sh, "ring %d (%c): wrong byte at stream position %" PRIu64
	      ": %#x, want %#x", ring, side, pos + bad, buf[bad],
	      rt_byte(seed, pos + bad));
	return -1;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* 1 to CHUNK_MAX bytes, whole pages a third of the time. */
static size_t chunk_len(uint64_t *rng, size_t ps, uint64_t left)
{
	size_t len = rnd(rng) % 3 ? 1 + rnd(rng) % CHUNK_MAX
				  : ps * (1 + rnd(rng) % (CHUNK_MAX / ps));

	return len < left ? len : left;
}

static uint64_t stream_bytes(void)
{
	const char *s = getenv("ZCDEV_RINGS_BYTES");
	unsigned long long v;
	char *end;

	if (!s || !*s)
		return STREAM_BYTES_DEFAULT;
	v = strtoull(s, &end, 0);
	switch (*end) {
	case 'G': case 'g': v <<= 10; /* fall through */
	case 'M': case 'm': v <<= 10; /* fall through */
	case 'K': case 'k': v <<= 10; end++; break;
	}
	return v && !*end ? v : STREAM_BYTES_DEFAULT;
}

/* Ring A's producer: write() only. */
static int produce_a(struct stream_shared *sh, size_t ps)
{
	int ring = sh->ring[S_A], fd = ring_open(ring, O_WRONLY);
	uint64_t seed = rt_seed(ring), rng = seed | 1, pos = 0;
	uint8_t *buf = malloc(CHUNK_MAX);

	if (fd < 0 || !buf) {
		sfail(sh, "A producer: open ring %d: %s", ring, strerror(errno));
		return 1;
	}
	while (pos < sh->total && !__atomic_load_n(&sh->failed, __ATOMIC_RELAXED)) {
		size_t len = chunk_len(&rng, ps, sh->total - pos);

		rt_fill(seed, buf, pos, len);
		if (zt_write_all(fd, buf, len)) {
			sfail(sh, "A producer: write at %" PRIu64 ": %s", pos, strerror(errno));
			return 1;
		}
		pos += len;
		__atomic_store_n(&sh->produced[S_A], pos, __ATOMIC_RELAXED);
	}
	close(fd);
	return 0;
}

/* Ring A's consumer: read() only. */
static int consume_a(struct stream_shared *sh, size_t ps)
{
	int ring = sh->ring[S_A], fd = ring_open(ring, O_RDONLY);
	uint64_t seed = rt_seed(ring), rng = ~seed, pos = 0;
	uint8_t *buf = malloc(CHUNK_MAX);

	if (fd < 0 || !buf) {
		sfail(sh, "A consumer: open ring %d: %s", ring, strerror(errno));
		return 1;
	}
	while (pos < sh->total && !__atomic_load_n(&sh->failed, __ATOMIC_RELAXED)) {
		size_t len = chunk_len(&rng, ps, sh->total - pos);
		ssize_t got = read(fd, buf, len);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			sfail(sh, "A consumer: read at %" PRIu64 ": %s", pos,
			      got ? strerror(errno) : "end of file");
			return 1;
		}
		if (stream_check(sh, ring, 'A', seed, buf, pos, got))
			return 1;
		pos += got;
		__atomic_store_n(&sh->consumed[S_A], pos, __ATOMIC_RELAXED);
	}
	sh->took[S_A] = now_s() - sh->start;
	close(fd);
	return 0;
}

/*
 * Ring B's producer: write(), and write into a pipe then splice into the
 * ring (SPLICE_F_MOVE: whole pages the pipe alone holds may be stolen, the
 * rest copied); a third of the time it first comes to a page boundary so
 * that whole pipe pages meet whole ring pages.
 */
static int produce_b(struct stream_shared *sh, size_t ps)
{
	int ring = sh->ring[S_B], fd = ring_open(ring, O_WRONLY), p[2];
	uint64_t seed = rt_seed(ring), rng = seed ^ 0x5555, pos = 0;
	uint8_t *buf = malloc(CHUNK_MAX);

	if (fd < 0 || !buf || pipe(p)) {
		sfail(sh, "B producer: open ring %d: %s", ring, strerror(errno));
		return 1;
	}
	fcntl(p[0], F_SETPIPE_SZ, 2 * CHUNK_MAX);
	while (pos < sh->total && !__atomic_load_n(&sh->failed, __ATOMIC_RELAXED)) {
		unsigned int how = rnd(&rng) % 3;
		size_t len = chunk_len(&rng, ps, sh->total - pos);

		if (how == 2 && pos % ps) {
			/* To the page boundary by write(), then whole pages. */
			len = ps - pos % ps;
			if (len > sh->total - pos)
				len = sh->total - pos;
			how = 0;
		}
		rt_fill(seed, buf, pos, len);
		if (!how) {
			if (zt_write_all(fd, buf, len)) {
				sfail(sh, "B producer: write at %" PRIu64 ": %s", pos,
				      strerror(errno));
				return 1;
			}
			sh->write_ops++;
		} else {
			size_t left = len;

			if (zt_write_all(p[1], buf, len)) {
				sfail(sh, "B producer: write to the pipe: %s", strerror(errno));
				return 1;
			}
			while (left) {
				ssize_t n = splice(p[0], NULL, fd, NULL, left, SPLICE_F_MOVE);

				if (n < 0 && errno == EINTR)
					continue;
				if (n <= 0) {
					sfail(sh, "B producer: splice in at %" PRIu64 ": %s",
					      pos + len - left, n ? strerror(errno) : "0 bytes");
					return 1;
				}
				left -= n;
			}
			sh->spliced_in_ops++;
		}
		pos += len;
		__atomic_store_n(&sh->produced[S_B], pos, __ATOMIC_RELAXED);
	}
	close(fd);
	return 0;
}

/* Ring B's consumer: splice out to a pipe, read the pipe. */
static int consume_b(struct stream_shared *sh, size_t ps)
{
	int ring = sh->ring[S_B], fd = ring_open(ring, O_RDONLY), p[2];
	uint64_t seed = rt_seed(ring), rng = ~seed ^ 0x3333, pos = 0;
	uint8_t *buf = malloc(CHUNK_MAX);

	if (fd < 0 || !buf || pipe(p)) {
		sfail(sh, "B consumer: open ring %d: %s", ring, strerror(errno));
		return 1;
	}
	fcntl(p[0], F_SETPIPE_SZ, 2 * CHUNK_MAX);
	while (pos < sh->total && !__atomic_load_n(&sh->failed, __ATOMIC_RELAXED)) {
		size_t len = chunk_len(&rng, ps, sh->total - pos);
		ssize_t n = splice(fd, NULL, p[1], NULL, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			sfail(sh, "B consumer: splice out at %" PRIu64 ": %s", pos,
			      n ? strerror(errno) : "end of file");
			return 1;
		}
		if (zt_read_all(p[0], buf, n) != n) {
			sfail(sh, "B consumer: the pipe gave less than the %zd bytes spliced", n);
			return 1;
		}
		if (stream_check(sh, ring, 'B', seed, buf, pos, n))
			return 1;
		pos += n;
		__atomic_store_n(&sh->consumed[S_B], pos, __ATOMIC_RELAXED);
	}
	sh->took[S_B] = now_s() - sh->start;
	close(fd);
	return 0;
}

/*
 * One cycle of the third party: add a ring (the lowest free, or an
 * explicit high number), check it is new, empty and its own, use it,
 * remove it. A and B are busy the whole time: ADD of their numbers is
 * EEXIST, REMOVE is EBUSY, and neither may disturb them. 0, or -1 after
 * sfail(); the ring it made is removed either way (sh->churn_ring names
 * it meanwhile, for the teardown should this process be killed).
 */
static int churn_cycle(struct stream_shared *sh, int ctl, uint8_t *buf, size_t ps,
		       uint64_t cycle)
{
	long want = cycle % 4 == 3 ? ZCDEV_MAX_RINGS - 1 - (long)(cycle / 4 % 16) : -1;
	int n, fd = -1, busy = sh->ring[cycle % 2], ret = -1;
	uint64_t pos = 0, rpos = 0;
	struct zcdev_info info;
	struct zcdev_stats st;

	if (want == sh->ring[S_A] || want == sh->ring[S_B])
		want = -1;
	n = ctl_add(ctl, want);
	if (n < 0) {
		sfail(sh, "churn: ADD(%ld) in cycle %" PRIu64 ": %s", want, cycle,
		      strerror(errno));
		return -1;
	}
	__atomic_store_n(&sh->churn_ring, n, __ATOMIC_SEQ_CST);
	if (n == 0 || n == sh->ring[S_A] || n == sh->ring[S_B] || (want >= 0 && n != want)) {
		sfail(sh, "churn: ADD(%ld) gave ring %d (A is %d, B %d)", want, n,
		      sh->ring[S_A], sh->ring[S_B]);
		if (n == sh->ring[S_A] || n == sh->ring[S_B])
			n = -1;		/* not ours to remove */
		goto out;
	}
	errno = 0;
	if (ctl_add(ctl, busy) != -1 || errno != EEXIST) {
		sfail(sh, "churn: ADD(%d), a streaming ring: %s", busy,
		      errno ? strerror(errno) : "made it again");
		goto out;
	}
	errno = 0;
	if (ctl_remove(ctl, busy) != -1 || errno != EBUSY) {
		sfail(sh, "churn: REMOVE(%d), a streaming ring: %s", busy,
		      errno ? strerror(errno) : "removed it");
		goto out;
	}
	__atomic_add_fetch(&sh->busy_refusals, 1, __ATOMIC_RELAXED);

	fd = ring_open(n, O_RDWR | O_NONBLOCK);
	if (fd < 0) {
		sfail(sh, "churn: open ring %d: %s", n, strerror(errno));
		goto out;
	}
	if (zt_info(fd, &info)) {
		sfail(sh, "churn: GET_INFO on ring %d: %s", n, strerror(errno));
		goto out;
	}
	if (info.ring != (uint32_t)n) {
		sfail(sh, "churn: ring %d says it is ring %u", n, info.ring);
		goto out;
	}
	if (zt_stats(fd, &st) || zcdev_stats_in(&st) || zcdev_stats_out(&st)) {
		sfail(sh, "churn: new ring %d has counted bytes already", n);
		goto out;
	}
	if (read(fd, buf, 1) != -1 || errno != EAGAIN) {
		sfail(sh, "churn: new ring %d is not empty", n);
		goto out;
	}
	if (info.ring_pages && (put_stream(fd, n, &pos, ps + n) ||
				get_stream(fd, n, &rpos, pos) != -1)) {
		sfail(sh, "churn: ring %d gave back the wrong bytes", n);
		goto out;
	}
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	if (n >= 0 && ctl_remove(ctl, n)) {
		if (!ret)
			sfail(sh, "churn: REMOVE(%d) after its last close: %s", n,
			      strerror(errno));
		ret = -1;
	} else {
		__atomic_store_n(&sh->churn_ring, 0, __ATOMIC_SEQ_CST);
	}
	return ret;
}

/* Add and remove rings until the parent says stop, or anything fails. */
static int churn(struct stream_shared *sh, size_t ps)
{
	int ctl = open(CONTROL_PATH, O_RDWR | O_CLOEXEC);
	uint8_t *buf = malloc(2 * ps);
	uint64_t cycles = 0;

	if (ctl < 0 || !buf) {
		sfail(sh, "churn: %s: %s", CONTROL_PATH, strerror(errno));
		return 1;
	}
	while (!__atomic_load_n(&sh->stop, __ATOMIC_RELAXED) &&
	       !__atomic_load_n(&sh->failed, __ATOMIC_RELAXED)) {
		if (churn_cycle(sh, ctl, buf, ps, cycles))
			return 1;
		__atomic_store_n(&sh->cycles, ++cycles, __ATOMIC_RELAXED);
		/* Leave the streams most of the CPU. */
		usleep(2000);
	}
	close(ctl);
	return 0;
}

/*
 * Issue 23's acceptance: two rings streaming at once, each with one
 * producer and one consumer process, ring A through write and read, ring
 * B through write and splice in, splice out to a pipe and read; every
 * byte checked; while a third process adds and removes other rings in a
 * loop. Then each ring's counters hold exactly its own stream.
 */
TEST_F_TIMEOUT(rings, two_streams_while_rings_come_and_go, STREAM_TIMEOUT)
{
	int (*const role[])(struct stream_shared *, size_t) = {
		produce_a, consume_a, produce_b, consume_b, churn,
	};
	const char *role_name[] = { "A producer", "A consumer", "B producer",
				    "B consumer", "churn" };
	struct zcdev_stats st0[2], st1[2], d;
	uint64_t max_total, total;
	struct stream_shared *sh;
	int hold[2], running;
	double start, last_report, secs;

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, sh);
	sh->total = stream_bytes();
	ASSERT_LT(0, self->ring_pages) TH_LOG("the module's ring_pages is 0");
	ASSERT_EQ(0, param_u64("max_total_pages", &max_total));
	count_rings(&total);
	if (total + 3 * self->ring_pages > max_total)
		SKIP(return, "max_total_pages %" PRIu64 " leaves no room for three more "
		     "rings of %" PRIu64 " pages (the rings hold %" PRIu64 ")",
		     max_total, self->ring_pages, total);

	for (int s = 0; s < 2; s++) {
		sh->ring[s] = add_ring(self, -1);
		ASSERT_LT(0, sh->ring[s]) TH_LOG("ADD(-1): %s", strerror(errno));
		/*
		 * Held open by this process until the end: the churn's REMOVE
		 * of a streaming ring must be EBUSY to the last byte. For
		 * writing: a consumer that opens before its producer must wait
		 * for bytes, not see the end of the stream.
		 */
		hold[s] = open_ring(self, sh->ring[s], O_RDWR | O_NONBLOCK);
		ASSERT_LE(0, hold[s]);
		ASSERT_EQ(0, zt_stats(hold[s], &st0[s]));
	}
	ksft_print_msg("%" PRIu64 " bytes (%.0f MiB) through each of rings %d (write/read) "
		       "and %d (write, splice in / splice out, read)\n",
		       sh->total, sh->total / 1048576.0, sh->ring[S_A], sh->ring[S_B]);
	fflush(stdout);
	fflush(stderr);

	self->churn_ring = &sh->churn_ring;
	start = last_report = sh->start = now_s();
	for (int i = 0; i < 5; i++) {
		pid_t pid = fork();

		ASSERT_LE(0, pid);
		if (!pid) {
			/* Not the harness's: no ASSERT here, and no teardown. */
			_exit(role[i](sh, self->ps));
		}
		self->kids[self->nkids++] = pid;
	}

	running = 5;
	while (running) {
		double t = now_s();

		for (int i = 0; i < 5; i++) {
			int status;

			if (self->kids[i] <= 0 ||
			    waitpid(self->kids[i], &status, WNOHANG) != self->kids[i])
				continue;
			self->kids[i] = 0;
			running--;
			if (!WIFEXITED(status) || WEXITSTATUS(status))
				sfail(sh, "%s: %s %d", role_name[i],
				      WIFSIGNALED(status) ? "killed by signal" : "exit status",
				      WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
			else if (i == 4 && !sh->stop)
				sfail(sh, "churn ended before the streams");
		}
		if (!self->kids[1] && !self->kids[3])
			__atomic_store_n(&sh->stop, 1, __ATOMIC_RELAXED);
		if (!sh->failed && t - start > STREAM_DEADLINE)
			sfail(sh, "not done in %d s: ring A %" PRIu64 ", ring B %" PRIu64
			      " of %" PRIu64 " bytes", STREAM_DEADLINE,
			      sh->consumed[S_A], sh->consumed[S_B], sh->total);
		if (sh->failed) {
			/*
			 * The streams may be blocked for good: kill them. The
			 * churn never blocks and removes its ring on the way
			 * out; kill it only if it does not end by itself.
			 */
			for (int i = 0; i < 5; i++) {
				double end = now_s() + 10;

				while (i == 4 && self->kids[i] > 0 && now_s() < end) {
					if (waitpid(self->kids[i], NULL, WNOHANG) == self->kids[i])
						self->kids[i] = 0;
					else
						usleep(10000);
				}
				if (self->kids[i] > 0) {
					kill(self->kids[i], SIGKILL);
					waitpid(self->kids[i], NULL, 0);
				}
				self->kids[i] = 0;
			}
			break;
		}
		if (t - last_report >= 60) {
			ksft_print_msg("%.0f s: ring A %" PRIu64 " MiB, ring B %" PRIu64
				       " MiB, %" PRIu64 " add/remove cycles\n", t - start,
				       sh->consumed[S_A] >> 20, sh->consumed[S_B] >> 20,
				       sh->cycles);
			fflush(stdout);
			last_report = t;
		}
		usleep(20000);
	}
	self->nkids = 0;
	secs = now_s() - start;
	/* A stream that did not finish: its time so far. */
	for (int s = 0; s < 2; s++)
		if (!sh->took[s])
			sh->took[s] = secs;

	ksft_print_msg("%.1f s: ring %d %.0f MiB in %.1f s (%.1f MiB/s), ring %d %.0f MiB "
		       "in %.1f s (%.1f MiB/s); %" PRIu64 " add/remove cycles, %" PRIu64
		       " ADD/REMOVE refused on the streaming rings; ring %d: %" PRIu64
		       " writes, %" PRIu64 " splices in\n", secs,
		       sh->ring[S_A], sh->consumed[S_A] / 1048576.0, sh->took[S_A],
		       sh->consumed[S_A] / 1048576.0 / sh->took[S_A],
		       sh->ring[S_B], sh->consumed[S_B] / 1048576.0, sh->took[S_B],
		       sh->consumed[S_B] / 1048576.0 / sh->took[S_B],
		       sh->cycles, sh->busy_refusals, sh->ring[S_B], sh->write_ops,
		       sh->spliced_in_ops);
	fflush(stdout);
	ASSERT_FALSE(sh->failed) TH_LOG("%s", sh->msg);
	EXPECT_EQ(sh->total, sh->consumed[S_A]);
	EXPECT_EQ(sh->total, sh->consumed[S_B]);
	EXPECT_LT(0, sh->cycles) TH_LOG("no ring was added and removed during the streams");

	/* Each ring's counters hold its own stream and nothing else. */
	for (int s = 0; s < 2; s++) {
		char line[512];

		ASSERT_EQ(0, zt_stats(hold[s], &st1[s]));
		zcdev_stats_delta(&st0[s], &st1[s], &d);
		zcdev_stats_format(line, sizeof(line), &d);
		ksft_print_msg("ring %d: %s\n", sh->ring[s], line);
		EXPECT_EQ(sh->total, zcdev_stats_in(&d)) TH_LOG("ring %d", sh->ring[s]);
		EXPECT_EQ(sh->total, zcdev_stats_out(&d)) TH_LOG("ring %d", sh->ring[s]);
		EXPECT_EQ(self->ring_pages, st1[s].pages_held) TH_LOG("ring %d", sh->ring[s]);
	}
	zcdev_stats_delta(&st0[S_B], &st1[S_B], &d);
	EXPECT_EQ(sh->total, d.bytes_spliced_out + d.bytes_spliced_out_copied);
	EXPECT_EQ(0, d.bytes_read_copy);
	zcdev_stats_delta(&st0[S_A], &st1[S_A], &d);
	EXPECT_EQ(sh->total, d.bytes_written_copy);
	EXPECT_EQ(sh->total, d.bytes_read_copy);
	fflush(stdout);
	self->churn_ring = NULL;
	munmap(sh, sizeof(*sh));
}

TEST_HARNESS_MAIN
