// SPDX-License-Identifier: GPL-2.0
/*
 * A ring page taken by a memory error: MADV_HWPOISON marks a page as a
 * real machine check would. A fault on it is SIGBUS (VM_FAULT_HWPOISON),
 * never an oops; read() of its bytes is EIO and moves nothing; RESET and
 * then RESIZE give the ring fresh pages; and the module still unloads
 * afterwards (the rig's rmmod check follows this program).
 *
 * Named to run last: a poisoned page is gone for good (the kernel never
 * gives it back to the allocator), which no other test should inherit.
 * Needs root and CONFIG_MEMORY_FAILURE; skips, saying which, without.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "zcdev_test.h"

#ifndef MADV_HWPOISON
#define MADV_HWPOISON 100
#endif

#define PS ((size_t)sysconf(_SC_PAGESIZE))
#define RING_PAGES 4

static const char *describe(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "status %#x", status);
	return buf;
}

/* In a child: 0 if madvise() poisoned the page, else its errno. */
static int poison_in_child(void *addr)
{
	int status;
	pid_t pid = fork();

	if (pid == 0)
		_exit(madvise(addr, PS, MADV_HWPOISON) ? errno : 0);
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	/* memory_failure() may also kill the caller that maps the page. */
	if (WIFSIGNALED(status))
		return WTERMSIG(status) == SIGBUS ? 0 : -1;
	return WEXITSTATUS(status);
}

/* Load a byte at @addr in a child: its wait status. */
static int touch_in_child(const volatile uint8_t *addr)
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		(void)*addr;
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return status;
}

TEST(poisoned_ring_page_is_sigbus_then_eio_then_replaced)
{
	uint8_t *map, *page, *twin, buf[64], why[64];
	int fd, ret, status;
	uint64_t head;
	size_t len;

	if (geteuid() != 0)
		SKIP(return, "MADV_HWPOISON needs root (CAP_SYS_ADMIN)");
	fd = zt_open(O_RDWR | O_NONBLOCK);
	if (fd < 0 && errno == ENOENT)
		SKIP(return, "%s missing: is the module loaded?", zt_dev_path());
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, zt_fresh_ring(fd, RING_PAGES));

	/* Both copies of every slot: slot s is at page s and RING_PAGES + s. */
	len = 2 * RING_PAGES * PS;
	map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, PS);
	ASSERT_NE(MAP_FAILED, map);
	ASSERT_EQ(0, zt_sysfs_u64("head", &head));
	page = map + (head / PS % RING_PAGES) * PS;
	twin = page + RING_PAGES * PS;
	zt_fill(buf, 0, sizeof(buf));
	ASSERT_EQ((ssize_t)sizeof(buf), write(fd, buf, sizeof(buf)));
	ASSERT_EQ(buf[5], page[5]);
	ASSERT_EQ(buf[5], twin[5]);

	ret = poison_in_child(page);
	if (ret == EINVAL)
		SKIP(goto out, "MADV_HWPOISON is EINVAL: no CONFIG_MEMORY_FAILURE");
	if (ret == EPERM)
		SKIP(goto out, "MADV_HWPOISON is EPERM here");
	/* EBUSY is how 6.1 reports a page it could not isolate: still marked. */
	ASSERT_TRUE(ret == 0 || ret == EBUSY) {
		TH_LOG("madvise(MADV_HWPOISON): %s", ret < 0 ? "child failed" : strerror(ret));
	}

	/*
	 * Drop this process's PTEs (fork copies them into the children, the
	 * mapping being VM_MIXEDMAP): each touch below then faults.
	 */
	ASSERT_EQ(0, madvise(map, len, MADV_DONTNEED));

	/* Through the other half of the double mapping: SIGBUS, not an oops. */
	status = touch_in_child(twin + 5);
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS) {
		TH_LOG("a load from the poisoned slot: %s",
		       describe(status, (char *)why, sizeof(why)));
	}
	/* And through the same half. */
	status = touch_in_child(page + 5);
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS) {
		TH_LOG("a load from the poisoned page: %s",
		       describe(status, (char *)why, sizeof(why)));
	}

	/* The bytes it held cannot be read, and nothing moves. */
	EXPECT_EQ(-1, read(fd, buf, sizeof(buf)));
	EXPECT_EQ(EIO, errno);

	/* RESET drops them; RESIZE gives every slot a fresh page. */
	munmap(map, len);
	map = MAP_FAILED;
	ASSERT_EQ(0, zt_fresh_ring(fd, RING_PAGES));
	zt_fill(buf, 0, sizeof(buf));
	ASSERT_EQ((ssize_t)sizeof(buf), write(fd, buf, sizeof(buf)));
	memset(buf, 0, sizeof(buf));
	ASSERT_EQ((ssize_t)sizeof(buf), read(fd, buf, sizeof(buf)));
	EXPECT_EQ(-1, zt_check(buf, 0, sizeof(buf)));
out:
	if (map != MAP_FAILED)
		munmap(map, len);
	zt_fresh_ring(fd, 256);
	close(fd);
}

TEST_HARNESS_MAIN
