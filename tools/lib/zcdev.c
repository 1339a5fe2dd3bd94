// SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note
/*
 * libzcdev: see libzcdev.h. Nothing here prints, exits or keeps state.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "libzcdev.h"

/* -errno, with errno kept for callers that look there. */
static int neg_errno(void)
{
	return -errno;
}

const char *zcdev_path(void)
{
	const char *p = getenv("ZCDEV_DEV");

	return p && *p ? p : ZCDEV_DEFAULT_PATH;
}

#ifndef ZCDEV_VERSION
#define ZCDEV_VERSION "unknown"
#endif

const char *zcdev_version(void)
{
	return ZCDEV_VERSION;
}

int zcdev_get_info(int fd, struct zcdev_info *info)
{
	return ioctl(fd, ZCDEV_IOC_GET_INFO, info) ? neg_errno() : 0;
}

int zcdev_check(int fd, struct zcdev_info *info)
{
	struct stat st;

	if (fstat(fd, &st))
		return neg_errno();
	if (!S_ISCHR(st.st_mode)) {
		errno = ENOTTY;
		return -ENOTTY;
	}
	if (ioctl(fd, ZCDEV_IOC_GET_INFO, info)) {
		/* A character device that is not ours answers one of these. */
		if (errno == EINVAL)
			errno = ENOTTY;
		return neg_errno();
	}
	if (info->abi_version != ZCDEV_ABI_VERSION) {
		errno = EPROTO;
		return -EPROTO;
	}
	return 0;
}

int zcdev_open(const char *path, int flags, struct zcdev_info *info)
{
	int fd, ret;

	if (!path)
		path = zcdev_path();
	/*
	 * O_NONBLOCK so that a FIFO named by mistake cannot hang the open;
	 * zcdev_check() then refuses anything but a character device.
	 */
	fd = open(path, flags | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return neg_errno();
	ret = zcdev_check(fd, info);
	if (!ret && !(flags & O_NONBLOCK) &&
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK))
		ret = neg_errno();
	if (ret) {
		close(fd);
		errno = -ret;
		return ret;
	}
	return fd;
}

int zcdev_get_stats(int fd, struct zcdev_stats *st)
{
	return ioctl(fd, ZCDEV_IOC_GET_STATS, st) ? neg_errno() : 0;
}

int zcdev_resize(int fd, uint32_t pages)
{
	return ioctl(fd, ZCDEV_IOC_RESIZE, &pages) ? neg_errno() : 0;
}

int zcdev_reset(int fd)
{
	return ioctl(fd, ZCDEV_IOC_RESET) ? neg_errno() : 0;
}

bool zcdev_same_file(int dev_fd, int fd)
{
	struct stat a, b;

	if (fstat(dev_fd, &a) || fstat(fd, &b))
		return false;
	if (S_ISCHR(a.st_mode) && S_ISCHR(b.st_mode))
		return a.st_rdev == b.st_rdev;
	return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

int zcdev_claim(int fd, enum zcdev_role role)
{
	struct flock fl = {
		.l_type = F_WRLCK,
		.l_whence = SEEK_SET,
		.l_start = 0,
		.l_len = 1,
	};
	int ret;

	if (role == ZCDEV_PRODUCER)
		ret = fcntl(fd, F_OFD_SETLK, &fl);
	else
		ret = flock(fd, LOCK_EX | LOCK_NB);
	if (!ret)
		return 0;
	if (errno == EAGAIN || errno == EACCES || errno == EWOULDBLOCK)
		errno = EBUSY;
	return neg_errno();
}

/* ---- several rings ---- */

const char *zcdev_control_path(void)
{
	const char *p = getenv("ZCDEV_CONTROL");

	return p && *p ? p : ZCDEV_CONTROL_PATH;
}

int zcdev_ring_path(int nr, char *buf, size_t len)
{
	int n;

	if (nr < 0 || nr >= ZCDEV_MAX_RINGS) {
		errno = EINVAL;
		return -EINVAL;
	}
	n = nr ? snprintf(buf, len, "%s%d", ZCDEV_DEFAULT_PATH, nr) :
		 snprintf(buf, len, "%s", ZCDEV_DEFAULT_PATH);
	if ((size_t)n >= len) {
		errno = ERANGE;
		return -ERANGE;
	}
	return n;
}

/*
 * The control device, open for one ioctl. O_NONBLOCK for the reason
 * zcdev_open() has it. ZCDEV_CTL_REMOVE answers ENODEV for a ring that
 * does not exist, so a node with no driver behind it (ENXIO, ENODEV from
 * open) must say something else: there is no control device.
 */
static int control_open(void)
{
	struct stat st;
	int fd;

	fd = open(zcdev_control_path(), O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENXIO || errno == ENODEV)
			errno = ENOENT;
		return neg_errno();
	}
	if (fstat(fd, &st) || !S_ISCHR(st.st_mode)) {
		close(fd);
		errno = ENOTTY;
		return -ENOTTY;
	}
	return fd;
}

/*
 * The argument goes by value, as a long: an int in the variadic slot would
 * leave the upper half of the register undefined, and -1 must reach the
 * kernel as -1 whichever width it reads.
 */
static int control_ioctl(unsigned long req, int nr)
{
	int fd = control_open(), ret, err;

	if (fd < 0)
		return fd;
	ret = ioctl(fd, req, (long)nr);
	err = errno;
	close(fd);
	if (ret >= 0)
		return ret;
	errno = err;
	return neg_errno();
}

int zcdev_ring_add(int nr)
{
	return control_ioctl(ZCDEV_CTL_ADD, nr);
}

int zcdev_ring_remove(int nr)
{
	int ret = control_ioctl(ZCDEV_CTL_REMOVE, nr);

	return ret < 0 ? ret : 0;
}

_Static_assert(ZCDEV_MAX_RINGS <= 10000,
	       "ring_of_name() reads at most four digits");

/* "zcdev" is ring 0, "zcdevN" ring N (no leading zero); -1 otherwise. */
static int ring_of_name(const char *name)
{
	static const char node[] = "zcdev";
	const char *p = name + sizeof(node) - 1;
	size_t digits;

	if (strncmp(name, node, sizeof(node) - 1))
		return -1;
	if (!*p)
		return 0;
	digits = strspn(p, "0123456789");
	/* Past four digits atoi() could overflow; none is a ring number. */
	if (*p == '0' || !digits || p[digits] || digits > 4 ||
	    atoi(p) >= ZCDEV_MAX_RINGS)
		return -1;
	return atoi(p);
}

/* The device's `ring` attribute, or -1 where it has none (an older module). */
static int ring_attr(int dirfd, const char *name)
{
	char path[NAME_MAX + 8], val[16];
	char *end;
	ssize_t n;
	long v;
	int fd;

	snprintf(path, sizeof(path), "%s/ring", name);
	fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, val, sizeof(val) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	val[n] = '\0';
	if (!isdigit((unsigned char)val[0]))
		return -1;
	errno = 0;
	v = strtol(val, &end, 10);
	if (errno || (*end && *end != '\n') || v >= ZCDEV_MAX_RINGS)
		return -1;
	return v;
}

int zcdev_ring_list(int *nrs, size_t n)
{
	/* A bitmap sorts the numbers and counts a ring once. */
	unsigned char seen[(ZCDEV_MAX_RINGS + CHAR_BIT - 1) / CHAR_BIT] = { 0 };
	const char *root = getenv("ZCDEV_SYSFS");
	char path[PATH_MAX];
	struct dirent *de;
	size_t count = 0;
	DIR *d;
	int nr;

	if ((size_t)snprintf(path, sizeof(path), "%s/class/misc",
			     root && *root ? root : "/sys") >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return -ENAMETOOLONG;
	}
	d = opendir(path);
	if (!d)
		return neg_errno();
	while ((de = readdir(d))) {
		if (ring_of_name(de->d_name) < 0)
			continue;
		nr = ring_attr(dirfd(d), de->d_name);
		if (nr < 0)
			nr = ring_of_name(de->d_name);
		seen[nr / CHAR_BIT] |= 1u << nr % CHAR_BIT;
	}
	closedir(d);
	for (nr = 0; nr < ZCDEV_MAX_RINGS; nr++) {
		if (!(seen[nr / CHAR_BIT] & 1u << nr % CHAR_BIT))
			continue;
		if (count < n)
			nrs[count] = nr;
		count++;
	}
	return count;
}

/* ---- the tables ---- */

#define FIELD(type, name) \
	{ #name, offsetof(type, name), sizeof(((type *)0)->name) },
#define INFO_FIELD(name)	FIELD(struct zcdev_info, name)
#define STATS_FIELD(name)	FIELD(struct zcdev_stats, name)
#define FIELD_SIZE(type, name)	+ sizeof(((type *)0)->name)
#define INFO_SIZE(name)		FIELD_SIZE(struct zcdev_info, name)
#define STATS_SIZE(name)	FIELD_SIZE(struct zcdev_stats, name)

#define ZCDEV_INFO_FIELDS(X)	\
	X(abi_version)		\
	X(page_size)		\
	X(ring_pages)		\
	X(max_ring_pages)	\
	X(meta_offset)		\
	X(data_offset)		\
	X(ring_bytes)		\
	X(ring)			\
	X(max_total_pages)

const struct zcdev_field zcdev_info_fields[] = {
	ZCDEV_INFO_FIELDS(INFO_FIELD)
	{ NULL }
};

const struct zcdev_field zcdev_stats_fields[] = {
	ZCDEV_STATS_FIELDS(STATS_FIELD)
	{ NULL }
};

/*
 * The named fields and the reserved words make up the whole structure: a
 * field added to the uapi header (at the end, or out of a reserved word)
 * without its line in the list breaks the build here.
 */
_Static_assert(sizeof(struct zcdev_stats) ==
	       0 ZCDEV_STATS_FIELDS(STATS_SIZE) STATS_SIZE(reserved),
	       "struct zcdev_stats has a field that ZCDEV_STATS_FIELDS lacks");
_Static_assert(sizeof(struct zcdev_info) ==
	       0 ZCDEV_INFO_FIELDS(INFO_SIZE) INFO_SIZE(reserved),
	       "struct zcdev_info has a field that ZCDEV_INFO_FIELDS lacks");

uint64_t zcdev_field_get(const void *base, const struct zcdev_field *f)
{
	const char *p = (const char *)base + f->off;
	uint32_t v32;
	uint64_t v64;

	if (f->size == sizeof(v32)) {
		memcpy(&v32, p, sizeof(v32));
		return v32;
	}
	memcpy(&v64, p, sizeof(v64));
	return v64;
}

const struct zcdev_field *zcdev_field_find(const struct zcdev_field *t,
					   const char *name)
{
	for (; t->name; t++)
		if (!strcmp(t->name, name))
			return t;
	return NULL;
}

void zcdev_stats_delta(const struct zcdev_stats *a, const struct zcdev_stats *b,
		       struct zcdev_stats *d)
{
	const struct zcdev_field *f;

	memset(d, 0, sizeof(*d));
	for (f = zcdev_stats_fields; f->name; f++) {
		uint64_t v = zcdev_field_get(b, f) - zcdev_field_get(a, f);

		memcpy((char *)d + f->off, &v, sizeof(v));
	}
}

uint64_t zcdev_stats_in(const struct zcdev_stats *d)
{
	return d->bytes_written_copy + d->bytes_spliced_in_moved +
	       d->bytes_spliced_in_copied + d->bytes_produced_mmap;
}

uint64_t zcdev_stats_out(const struct zcdev_stats *d)
{
	return d->bytes_read_copy + d->bytes_spliced_out +
	       d->bytes_spliced_out_copied + d->bytes_consumed_mmap;
}

/*
 * Bytes the module copied with the CPU: write, read, splice in by copy,
 * splice out of a page that may be pinned (lent as a copy).
 */
uint64_t zcdev_stats_copied(const struct zcdev_stats *d)
{
	return d->bytes_written_copy + d->bytes_read_copy +
	       d->bytes_spliced_in_copied + d->bytes_spliced_out_copied;
}

/* Bytes moved as page references: splice out, pages stolen in. */
uint64_t zcdev_stats_by_ref(const struct zcdev_stats *d)
{
	return d->bytes_spliced_out + d->bytes_spliced_in_moved;
}

/* Bytes user space wrote or read in the ring pages themselves. */
uint64_t zcdev_stats_in_place(const struct zcdev_stats *d)
{
	return d->bytes_produced_mmap + d->bytes_consumed_mmap;
}

int zcdev_stats_format(char *buf, size_t len, const struct zcdev_stats *d)
{
	const struct zcdev_field *f;
	const char *sep = ";";
	size_t n;

	n = snprintf(buf, len, "copied %llu, by reference %llu, in place %llu bytes",
		     (unsigned long long)zcdev_stats_copied(d),
		     (unsigned long long)zcdev_stats_by_ref(d),
		     (unsigned long long)zcdev_stats_in_place(d));
	for (f = zcdev_stats_fields; f->name; f++) {
		uint64_t v = zcdev_field_get(d, f);

		if (!v)
			continue;
		n += snprintf(buf + (n < len ? n : len), n < len ? len - n : 0,
			      "%s %s %+lld", sep, f->name, (long long)v);
		sep = ",";
	}
	return n;
}

/* ---- the ring through mmap ---- */

int zcdev_ring_map(struct zcdev_ring *r, int fd, const struct zcdev_info *info,
		   bool producer)
{
	int prot = PROT_READ | (producer ? PROT_WRITE : 0);
	void *p;
	int err;

	memset(r, 0, sizeof(*r));
	if (!info->ring_bytes) {
		errno = ENOBUFS;	/* torn down: nothing to map */
		return -ENOBUFS;
	}
	p = mmap(NULL, info->page_size, PROT_READ, MAP_SHARED, fd,
		 info->meta_offset);
	if (p == MAP_FAILED)
		return neg_errno();
	r->meta = p;
	r->meta_len = info->page_size;
	r->ring_bytes = info->ring_bytes;
	r->generation = __atomic_load_n(&r->meta->generation, __ATOMIC_ACQUIRE);
	r->data_len = 2 * info->ring_bytes;
	p = mmap(NULL, r->data_len, prot, MAP_SHARED, fd, info->data_offset);
	if (p == MAP_FAILED) {
		err = errno;
		munmap((void *)r->meta, r->meta_len);
		r->meta = NULL;
		errno = err;
		return -err;
	}
	r->data = p;
	/* The ring may have changed between GET_INFO and the mapping. */
	if (__atomic_load_n(&r->meta->ring_bytes, __ATOMIC_ACQUIRE) !=
	    r->ring_bytes) {
		zcdev_ring_unmap(r);
		errno = ESTALE;
		return -ESTALE;
	}
	return 0;
}

void zcdev_ring_unmap(struct zcdev_ring *r)
{
	if (r->data)
		munmap(r->data, r->data_len);
	if (r->meta)
		munmap((void *)r->meta, r->meta_len);
	r->data = NULL;
	r->meta = NULL;
}

uint64_t zcdev_ring_head(const struct zcdev_ring *r)
{
	return __atomic_load_n(&r->meta->head, __ATOMIC_ACQUIRE);
}

uint64_t zcdev_ring_tail(const struct zcdev_ring *r)
{
	return __atomic_load_n(&r->meta->tail, __ATOMIC_ACQUIRE);
}

/* The bytes in use, or -ESTALE if the ring is not the one we mapped. */
static int64_t ring_used(const struct zcdev_ring *r, uint64_t *head,
			 uint64_t *tail)
{
	*head = zcdev_ring_head(r);
	*tail = zcdev_ring_tail(r);
	if (__atomic_load_n(&r->meta->generation, __ATOMIC_ACQUIRE) !=
	    r->generation || *head - *tail > r->ring_bytes) {
		errno = ESTALE;
		return -ESTALE;
	}
	return *head - *tail;
}

int64_t zcdev_ring_space(const struct zcdev_ring *r, char **p)
{
	uint64_t head, tail;
	int64_t used = ring_used(r, &head, &tail);

	if (used < 0)
		return used;
	*p = r->data + head % r->ring_bytes;
	return r->ring_bytes - used;
}

int64_t zcdev_ring_data(const struct zcdev_ring *r, char **p)
{
	uint64_t head, tail;
	int64_t used = ring_used(r, &head, &tail);

	if (used < 0)
		return used;
	*p = r->data + tail % r->ring_bytes;
	return used;
}

int zcdev_produce(int fd, uint64_t n)
{
	return ioctl(fd, ZCDEV_IOC_PRODUCE, &n) ? neg_errno() : 0;
}

int zcdev_consume(int fd, uint64_t n)
{
	return ioctl(fd, ZCDEV_IOC_CONSUME, &n) ? neg_errno() : 0;
}

int zcdev_wait(int fd, short events, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int n = poll(&pfd, 1, timeout_ms);

	if (n < 0)
		return neg_errno();
	return n ? pfd.revents : 0;
}

/* ---- splice, sendfile, vmsplice ---- */

ssize_t zcdev_splice_out(int dev, int pipe_wr, size_t len, unsigned int flags)
{
	ssize_t n = splice(dev, NULL, pipe_wr, NULL, len, flags);

	return n < 0 ? neg_errno() : n;
}

ssize_t zcdev_splice_in(int pipe_rd, int dev, size_t len, unsigned int flags)
{
	ssize_t n = splice(pipe_rd, NULL, dev, NULL, len, flags);

	return n < 0 ? neg_errno() : n;
}

ssize_t zcdev_sendfile_out(int out, int dev, size_t len)
{
	ssize_t n = sendfile(out, dev, NULL, len);

	return n < 0 ? neg_errno() : n;
}

ssize_t zcdev_vmsplice_gift(int pipe_wr, void *buf, size_t len)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	ssize_t n = vmsplice(pipe_wr, &iov, 1, SPLICE_F_GIFT);

	return n < 0 ? neg_errno() : n;
}
