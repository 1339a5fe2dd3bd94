// SPDX-License-Identifier: GPL-2.0
/*
 * The device node and the module's life cycle: /dev/zcdev is a character
 * device with the mode the module was told to give it, ioctls that are not
 * zcdev's are refused with ENOTTY, and the module cannot be unloaded while
 * an open file or a mapping could still call into it.
 *
 * The life-cycle tests unload the module and load it again from $ZCDEV_KO;
 * they leave it loaded.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <linux/zcdev.h>

#include "kselftest_harness.h"
#include "zcdev_test.h"

#define DEV_PATH	"/dev/zcdev"
#define MODE_PARAM	"/sys/module/zcdev/parameters/mode"

TEST(node_is_char_device)
{
	struct stat st;

	ASSERT_EQ(0, stat(DEV_PATH, &st)) {
		TH_LOG("stat %s: %s", DEV_PATH, strerror(errno));
	}
	ASSERT_TRUE(S_ISCHR(st.st_mode));
}

TEST(node_matches_sysfs)
{
	char path[64], uevent[512];
	struct stat st;
	ssize_t n;
	int fd;

	ASSERT_EQ(0, stat(DEV_PATH, &st));
	snprintf(path, sizeof(path), "/sys/dev/char/%u:%u/uevent",
		 major(st.st_rdev), minor(st.st_rdev));
	fd = open(path, O_RDONLY);
	ASSERT_LE(0, fd) {
		TH_LOG("%s: %s", path, strerror(errno));
	}
	n = read(fd, uevent, sizeof(uevent) - 1);
	close(fd);
	ASSERT_LT(0, n);
	uevent[n] = '\0';
	ASSERT_NE(NULL, strstr(uevent, "DEVNAME=zcdev\n")) {
		TH_LOG("%s says:\n%s", path, uevent);
	}
}

TEST(node_mode_is_mode_param)
{
	uint64_t mode;
	struct stat st;

	ASSERT_EQ(0, zt_read_u64(MODE_PARAM, &mode)) {
		TH_LOG("cannot read a number from %s", MODE_PARAM);
	}
	ASSERT_EQ(0UL, mode & ~07777UL);
	ASSERT_EQ(0, stat(DEV_PATH, &st));
	ASSERT_EQ(mode, st.st_mode & 07777) {
		TH_LOG("%s is %04o, the mode parameter says %04" PRIo64,
		       DEV_PATH, st.st_mode & 07777, mode);
	}
}

TEST(unknown_nr_is_enotty)
{
	int fd;

	fd = open(DEV_PATH, O_RDWR);
	ASSERT_LE(0, fd);
	EXPECT_EQ(-1, ioctl(fd, _IO(ZCDEV_IOC_MAGIC, 0x7f)));
	EXPECT_EQ(ENOTTY, errno);
	close(fd);
}

/* GET_INFO's number and size under another magic must not reach GET_INFO. */
TEST(foreign_magic_is_enotty)
{
	struct zcdev_info info;
	int fd;

	fd = open(DEV_PATH, O_RDWR);
	ASSERT_LE(0, fd);
	EXPECT_EQ(-1, ioctl(fd, _IOR('Z', _IOC_NR(ZCDEV_IOC_GET_INFO),
				     struct zcdev_info), &info));
	EXPECT_EQ(ENOTTY, errno);
	/* TCGETS, the tty layer's own request. */
	EXPECT_EQ(0, isatty(fd));
	EXPECT_EQ(ENOTTY, errno);
	close(fd);
}

/* The parameters a test may reload the module with, as sysfs shows them. */
static void read_params(uint64_t *mode, uint64_t *max)
{
	*mode = *max = UINT64_MAX;
	zt_read_u64("/sys/module/zcdev/parameters/mode", mode);
	zt_read_u64("/sys/module/zcdev/parameters/max_ring_pages", max);
}

FIXTURE(lifecycle) {
	int fd;
	uint64_t mode, max;	/* as loaded before the test */
};

/*
 * Each test checks for root itself: 6.1's harness runs the test body even
 * after FIXTURE_SETUP calls SKIP().
 */
#define SKIP_UNLESS_ROOT() do {						\
	if (geteuid() != 0)						\
		SKIP(return, "unloading modules needs root");		\
} while (0)

FIXTURE_SETUP(lifecycle)
{
	ASSERT_TRUE(zt_module_loaded());
	read_params(&self->mode, &self->max);
	self->fd = open(DEV_PATH, O_RDWR);
	ASSERT_LE(0, self->fd);
}

FIXTURE_TEARDOWN(lifecycle)
{
	const char *ko = getenv("ZCDEV_KO");
	uint64_t mode, max;

	if (self->fd >= 0)
		close(self->fd);
	/*
	 * A test that reloads the module (check_load_param()) and failed
	 * part-way must not leave it unloaded, or loaded with its test
	 * parameters, for the tests after it: load it again with defaults.
	 */
	read_params(&mode, &max);
	if (ko && *ko && geteuid() == 0 &&
	    (!zt_module_loaded() || mode != self->mode || max != self->max)) {
		zt_unload_module();
		zt_load_module(ko, "");
	}
}

static void assert_unload_refused(struct __test_metadata *_metadata)
{
	ASSERT_EQ(-1, zt_unload_module());
	ASSERT_TRUE(errno == EWOULDBLOCK || errno == EBUSY) {
		TH_LOG("delete_module: %s, expected EWOULDBLOCK or EBUSY",
		       strerror(errno));
	}
	ASSERT_TRUE(zt_module_loaded());
}

TEST_F(lifecycle, unload_refused_while_open)
{
	SKIP_UNLESS_ROOT();
	assert_unload_refused(_metadata);
}

/* The mapping holds the file, and the file holds the module. */
TEST_F(lifecycle, unload_refused_while_mapped)
{
	long page = sysconf(_SC_PAGESIZE);
	void *meta;

	SKIP_UNLESS_ROOT();
	meta = mmap(NULL, page, PROT_READ, MAP_SHARED, self->fd, ZCDEV_META_OFFSET);
	ASSERT_NE(MAP_FAILED, meta) {
		TH_LOG("mmap of the meta page: %s", strerror(errno));
	}
	close(self->fd);
	self->fd = -1;
	assert_unload_refused(_metadata);
	ASSERT_EQ(0, munmap(meta, page));
}

TEST_F(lifecycle, unload_and_reload_after_close)
{
	const char *ko = getenv("ZCDEV_KO");
	struct stat st;
	int ko_fd;

	SKIP_UNLESS_ROOT();
	if (!ko || !*ko)
		SKIP(return, "ZCDEV_KO does not name the module to load again");
	ko_fd = open(ko, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, ko_fd) {
		TH_LOG("%s: %s", ko, strerror(errno));
	}
	close(self->fd);
	self->fd = -1;

	ASSERT_EQ(0, zt_unload_module()) {
		TH_LOG("delete_module after the last close: %s", strerror(errno));
	}
	ASSERT_FALSE(zt_module_loaded());
	ASSERT_EQ(-1, access(DEV_PATH, F_OK));
	ASSERT_EQ(ENOENT, errno);

	ASSERT_EQ(0, syscall(__NR_finit_module, ko_fd, "", 0)) {
		TH_LOG("finit_module %s: %s", ko, strerror(errno));
	}
	close(ko_fd);
	ASSERT_TRUE(zt_module_loaded());
	ASSERT_EQ(0, stat(DEV_PATH, &st));
	ASSERT_TRUE(S_ISCHR(st.st_mode));
}

/*
 * A parameter checked at load: every one of @bad fails the load with
 * EINVAL and leaves no module behind; @name=@good loads and shows in
 * sysfs as @want. Then the module is loaded again with its defaults (the
 * fixture's teardown does it too, if a failure stopped this part-way). A
 * SKIP here returns from this function only: keep it a test's last call.
 */
static void check_load_param(struct __test_metadata *_metadata,
			     FIXTURE_DATA(lifecycle) *self, const char *name,
			     const char *const *bad, size_t nr_bad,
			     const char *good, uint64_t want)
{
	const char *ko = getenv("ZCDEV_KO");
	char arg[96], path[96];
	uint64_t val = 0;

	SKIP_UNLESS_ROOT();
	if (!ko || !*ko)
		SKIP(return, "ZCDEV_KO does not name the module to load again");
	close(self->fd);
	self->fd = -1;
	ASSERT_EQ(0, zt_unload_module());

	for (size_t i = 0; i < nr_bad; i++) {
		int ret = zt_load_module(ko, bad[i]), err = errno;

		if (ret == 0)
			zt_unload_module();
		EXPECT_EQ(-1, ret) {
			TH_LOG("%s was accepted", bad[i]);
		}
		EXPECT_EQ(EINVAL, err) {
			TH_LOG("%s: %s", bad[i], ret ? strerror(err) : "loaded");
		}
		EXPECT_FALSE(zt_module_loaded());
	}

	snprintf(arg, sizeof(arg), "%s=%s ring_pages=1", name, good);
	ASSERT_EQ(0, zt_load_module(ko, arg)) {
		TH_LOG("%s: %s", arg, strerror(errno));
	}
	snprintf(path, sizeof(path), "/sys/module/zcdev/parameters/%s", name);
	EXPECT_EQ(0, zt_read_u64(path, &val));
	EXPECT_EQ(want, val);
	EXPECT_EQ(0, zt_unload_module());
	ASSERT_EQ(0, zt_load_module(ko, "")) {
		TH_LOG("loading %s again: %s", ko, strerror(errno));
	}
}

/*
 * max_ring_pages: a bound the ring could not honour (its page array would
 * pass what kvcalloc() allows and warn) fails the load; the largest
 * accepted one loads.
 */
TEST_F(lifecycle, max_ring_pages_out_of_range_fails_the_load)
{
	static const char *const bad[] = {
		"max_ring_pages=4294967295", "max_ring_pages=1048577",
		"max_ring_pages=-1", "max_ring_pages=lots",
	};

	check_load_param(_metadata, self, "max_ring_pages", bad,
			 sizeof(bad) / sizeof(bad[0]), "1048576", 1048576);
}

/* mode: bits above 0777 (setuid, sticky, file type) fail the load. */
TEST_F(lifecycle, mode_above_0777_fails_the_load)
{
	static const char *const bad[] = {
		"mode=01000", "mode=04600", "mode=0170600",
	};

	check_load_param(_metadata, self, "mode", bad,
			 sizeof(bad) / sizeof(bad[0]), "0777", 0777);
}

TEST_HARNESS_MAIN
