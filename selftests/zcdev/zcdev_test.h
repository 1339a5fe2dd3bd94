/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the zcdev kselftests. Include after kselftest_harness.h.
 * The device is reached through libzcdev (tools/lib/libzcdev.h), as the tool
 * and the examples reach it; these wrappers keep the tests' convention of
 * returning -1 with errno set.
 *
 * Every program that includes this header skips as a whole (exit 4, a
 * KTAP "1..0 # SKIP" line) when the device is not there, before the
 * harness starts: one rule for every program, on every harness version.
 *
 * Payloads are a byte stream whose value at stream position p is
 * zt_byte(p), so any consumer can check any span of it, at any offset,
 * without keeping a copy of what was written.
 */
#ifndef ZCDEV_TEST_H
#define ZCDEV_TEST_H

#include <errno.h>
#include <net/if.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <libzcdev.h>	/* libzcdev, which includes <linux/zcdev.h> */

/*
 * The metadata of fixture test F.T, whose timeout a constructor may set
 * from the environment. Newer harnesses (those with KSELFTEST_PRIO_TEST)
 * keep it behind a pointer that their own, earlier constructors fill in;
 * older ones (6.1's) have the struct itself.
 */
#ifdef KSELFTEST_PRIO_TEST
#define ZT_TEST_OBJECT(f, t) (_##f##_##t##_object)
#else
#define ZT_TEST_OBJECT(f, t) (&_##f##_##t##_object)
#endif

#define ZT_SYSFS_DIR "/sys/class/misc/zcdev/"
#define KSFT_SKIP_EXIT 4

/* $ZCDEV_DEV if set and not empty, else /dev/zcdev: as the tool reads it. */
static inline const char *zt_dev_path(void)
{
	return zcdev_path();
}

/* Open and check the device; -1 with errno set on failure. */
static inline int zt_open(int flags)
{
	struct zcdev_info info;
	int fd = zcdev_open(NULL, flags, &info);

	if (fd < 0) {
		errno = -fd;
		return -1;
	}
	return fd;
}

/*
 * The one skip rule: no device (the module is not loaded), no test. Runs
 * before main(), so no harness version can run a test body after it.
 */
__attribute__((constructor)) static void zt_require_device(void)
{
	struct zcdev_info info;
	int fd = zcdev_open(NULL, O_RDONLY, &info);

	if (fd >= 0) {
		close(fd);
		return;
	}
	if (fd != -ENOENT && fd != -ENXIO && fd != -ENODEV)
		return;	/* there but unusable: that is for the tests to fail */
	printf("TAP version 13\n1..0 # SKIP %s is missing: the zcdev module is not loaded\n",
	       zt_dev_path());
	fflush(stdout);
	_exit(KSFT_SKIP_EXIT);
}

static inline uint8_t zt_byte(uint64_t pos)
{
	/* Not a multiple of any page size: shifted spans never look alike. */
	return (uint8_t)((pos * 131 + (pos >> 12) * 7 + 17) % 251);
}

static inline void zt_fill(uint8_t *buf, uint64_t pos, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = zt_byte(pos + i);
}

/* Index of the first byte that is not the stream at @pos, or -1. */
static inline long zt_check(const uint8_t *buf, uint64_t pos, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i] != zt_byte(pos + i))
			return (long)i;
	return -1;
}

/*
 * A sysfs file's contents as a number, in C notation (base 0: "0600" is
 * octal, "384" decimal). 0, or -1 if the file is missing or not a number.
 */
static inline int zt_read_u64(const char *path, uint64_t *val)
{
	char buf[64], *end;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	errno = 0;
	*val = strtoull(buf, &end, 0);
	if (errno || end == buf || (*end != '\n' && *end != '\0'))
		return -1;
	return 0;
}

/* One of the ring's sysfs files: ring_pages, head, tail, used, ... */
static inline int zt_sysfs_u64(const char *attr, uint64_t *val)
{
	char path[128];

	snprintf(path, sizeof(path), ZT_SYSFS_DIR "%s", attr);
	return zt_read_u64(path, val);
}

/* libzcdev returns -errno (and sets errno); the tests want -1. */
static inline int zt_ret(int ret)
{
	return ret ? -1 : 0;
}

static inline int zt_info(int fd, struct zcdev_info *info)
{
	return zt_ret(zcdev_get_info(fd, info));
}

static inline int zt_stats(int fd, struct zcdev_stats *st)
{
	return zt_ret(zcdev_get_stats(fd, st));
}

static inline int zt_resize(int fd, uint32_t pages)
{
	return zt_ret(zcdev_resize(fd, pages));
}

/* Empty the ring and give it @pages pages, whatever it held before. */
static inline int zt_fresh_ring(int fd, uint32_t pages)
{
	if (zcdev_reset(fd))
		return -1;
	return zt_resize(fd, pages);
}

/* write() all of @buf, retrying short writes; returns 0 or -1. */
static inline int zt_write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= n;
	}
	return 0;
}

/* read() exactly @len bytes unless EOF or an error comes first. */
static inline ssize_t zt_read_all(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, p + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		done += n;
	}
	return done;
}

/*
 * Append @len stream bytes (zt_fill's pattern from *@pos) to the ring with
 * write(), and advance *@pos.
 */
static inline int zt_put_stream(int fd, uint64_t *pos, size_t len)
{
	uint8_t *buf = malloc(len);
	int ret;

	zt_fill(buf, *pos, len);
	ret = zt_write_all(fd, buf, len);
	free(buf);
	*pos += len;
	return ret;
}

/*
 * Read @len bytes from @fd and check them against the stream from *@pos
 * (then advanced): the index of the first wrong byte, -1 when all are
 * right, -2 when fewer than @len came.
 */
static inline long zt_check_stream(int fd, uint64_t *pos, size_t len)
{
	uint8_t *buf = malloc(len);
	long bad = -2;

	if (zt_read_all(fd, buf, len) == (ssize_t)len)
		bad = zt_check(buf, *pos, len);
	free(buf);
	*pos += len;
	return bad;
}

/* Is the zcdev module loaded? (/proc/modules, as lsmod reads it.) */
static inline bool zt_module_loaded(void)
{
	char line[256];
	bool found = false;
	FILE *f = fopen("/proc/modules", "re");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = !strncmp(line, "zcdev ", strlen("zcdev "));
	fclose(f);
	return found;
}

/* Load the module file @ko with @params (finit_module(2), as insmod does). */
static inline int zt_load_module(const char *ko, const char *params)
{
	int fd = open(ko, O_RDONLY | O_CLOEXEC);
	int ret, err;

	if (fd < 0)
		return -1;
	ret = syscall(__NR_finit_module, fd, params, 0);
	err = errno;
	close(fd);
	errno = err;
	return ret;
}

/*
 * Unload zcdev. O_NONBLOCK: fail at once instead of waiting for the last
 * user. Never O_TRUNC, which forces the unload on kernels with
 * MODULE_FORCE_UNLOAD (Debian's have it).
 */
static inline int zt_unload_module(void)
{
	return syscall(__NR_delete_module, "zcdev", O_NONBLOCK);
}

/*
 * The first failure of several processes sharing @failed and @msg wins;
 * later ones keep quiet, so the message names the cause, not its echoes.
 */
static inline __attribute__((format(printf, 4, 0))) void
zt_fail_once(int *failed, char *msg, size_t len, const char *fmt, va_list ap)
{
	if (__atomic_exchange_n(failed, 1, __ATOMIC_SEQ_CST))
		return;
	vsnprintf(msg, len, fmt, ap);
}

/* Bring the loopback interface up: a bare guest may not have done it. */
static inline int zt_loopback_up(void)
{
	struct ifreq ifr = { 0 };
	int s, ret = 0;

	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -1;
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr))
		ret = -1;
	else if (!(ifr.ifr_flags & IFF_UP)) {
		ifr.ifr_flags |= IFF_UP;
		ret = ioctl(s, SIOCSIFFLAGS, &ifr);
	}
	close(s);
	return ret;
}

#endif /* ZCDEV_TEST_H */
