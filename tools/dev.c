// SPDX-License-Identifier: GPL-2.0
/*
 * zcdev(1): the device itself: open and check it, read its tables, map it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "zcdev.h"

const char *dev_path(void)
{
	const char *p = getenv("ZCDEV_DEV");

	return p && *p ? p : "/dev/zcdev";
}

static int dev_check(int fd, const char *path, struct zcdev_info *info)
{
	if (ioctl(fd, ZCDEV_IOC_GET_INFO, info)) {
		if (errno == ENOTTY || errno == EINVAL) {
			errmsg("%s: not a zcdev device: %s", path, strerror(errno));
			return -EXIT_NODEV;
		}
		errmsg("%s: ZCDEV_IOC_GET_INFO: %s", path, strerror(errno));
		return -EXIT_FAIL;
	}
	if (info->abi_version != ZCDEV_ABI_VERSION) {
		errmsg("%s: ABI version %u, this tool speaks %u: rebuild tools/zcdev with the module's uapi/linux/zcdev.h",
		       path, info->abi_version, ZCDEV_ABI_VERSION);
		return -EXIT_NODEV;
	}
	return 0;
}

/*
 * Open the device and make sure it is a zcdev speaking our ABI. Returns
 * the descriptor, or minus the exit status after saying why on stderr.
 */
int dev_open(int flags, struct zcdev_info *info)
{
	const char *path = dev_path();
	int fd, ret;

	fd = open(path, flags | O_CLOEXEC);
	if (fd < 0) {
		/* ENXIO/ENODEV: a node is there but no driver behind it. */
		if (errno == ENOENT || errno == ENXIO || errno == ENODEV) {
			errmsg("%s not found: is the zcdev module loaded? (modprobe zcdev / insmod module/zcdev.ko)",
			       path);
			return -EXIT_NODEV;
		}
		errmsg("%s: %s", path, strerror(errno));
		return -EXIT_FAIL;
	}
	ret = dev_check(fd, path, info);
	if (ret) {
		close(fd);
		return ret;
	}
	return fd;
}

/*
 * Open the device for a producer, on an empty ring. The reset goes through
 * this descriptor because it needs FMODE_WRITE, and a writer held open
 * elsewhere would keep the consumer from ever seeing EOF.
 */
int dev_open_writer(int flags, struct zcdev_info *info)
{
	int fd = dev_open(flags, info);

	if (fd >= 0 && ioctl(fd, ZCDEV_IOC_RESET)) {
		errmsg("%s: ZCDEV_IOC_RESET: %s", dev_path(), strerror(errno));
		close(fd);
		return -EXIT_FAIL;
	}
	return fd;
}

int dev_stats(int fd, struct zcdev_stats *st)
{
	return ioctl(fd, ZCDEV_IOC_GET_STATS, st);
}

#define FIELD(type, name) \
	{ #name, offsetof(type, name), sizeof(((type *)0)->name) }

const struct field info_fields[] = {
	FIELD(struct zcdev_info, abi_version),
	FIELD(struct zcdev_info, page_size),
	FIELD(struct zcdev_info, ring_pages),
	FIELD(struct zcdev_info, max_ring_pages),
	FIELD(struct zcdev_info, ring_bytes),
	FIELD(struct zcdev_info, meta_offset),
	FIELD(struct zcdev_info, data_offset),
	{ NULL }
};

const struct field stats_fields[] = {
	FIELD(struct zcdev_stats, bytes_written_copy),
	FIELD(struct zcdev_stats, bytes_read_copy),
	FIELD(struct zcdev_stats, bytes_spliced_out),
	FIELD(struct zcdev_stats, pages_spliced_out),
	FIELD(struct zcdev_stats, bytes_spliced_in_moved),
	FIELD(struct zcdev_stats, pages_stolen_in),
	FIELD(struct zcdev_stats, bytes_spliced_in_copied),
	FIELD(struct zcdev_stats, bytes_produced_mmap),
	FIELD(struct zcdev_stats, bytes_consumed_mmap),
	FIELD(struct zcdev_stats, page_swaps),
	FIELD(struct zcdev_stats, mmap_faults),
	FIELD(struct zcdev_stats, sigbus_faults),
	FIELD(struct zcdev_stats, pages_held),
	{ NULL }
};

uint64_t field_get(const void *base, const struct field *f)
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

/* One JSON member per field. */
void json_fields(struct json *j, const void *base, const struct field *f)
{
	for (; f->name; f++)
		json_u64(j, f->name, field_get(base, f));
}

/* Bytes the module copied with the CPU: write, read, splice in by copy. */
uint64_t stats_copied(const struct zcdev_stats *d)
{
	return d->bytes_written_copy + d->bytes_read_copy +
	       d->bytes_spliced_in_copied;
}

/* Bytes the module moved as page references: splice out, pages stolen in. */
uint64_t stats_by_ref(const struct zcdev_stats *d)
{
	return d->bytes_spliced_out + d->bytes_spliced_in_moved;
}

/* Bytes user space wrote or read in the ring pages themselves. */
uint64_t stats_in_place(const struct zcdev_stats *d)
{
	return d->bytes_produced_mmap + d->bytes_consumed_mmap;
}

/*
 * Counter changes from a to b. pages_held is a level, not a counter: the
 * difference still says what a run left behind.
 */
void stats_delta(const struct zcdev_stats *a, const struct zcdev_stats *b,
		 struct zcdev_stats *d)
{
	const struct field *f;

	memset(d, 0, sizeof(*d));
	for (f = stats_fields; f->name; f++) {
		uint64_t v = field_get(b, f) - field_get(a, f);

		memcpy((char *)d + f->off, &v, sizeof(v));
	}
}

/*
 * Map the meta page read-only and the data pages twice over, so that any
 * span of up to ring_bytes starting inside the ring is contiguous.
 */
int zring_map(struct zring *r, int fd, const struct zcdev_info *info,
	      bool writable)
{
	int prot = PROT_READ | (writable ? PROT_WRITE : 0);
	void *p;

	memset(r, 0, sizeof(*r));
	if (!info->ring_bytes) {
		errno = ENOBUFS;	/* torn down: nothing to map */
		return -1;
	}
	p = mmap(NULL, info->page_size, PROT_READ, MAP_SHARED, fd,
		 info->meta_offset);
	if (p == MAP_FAILED)
		return -1;
	r->meta = p;
	r->meta_len = info->page_size;
	r->ring_bytes = info->ring_bytes;
	r->data_len = 2 * info->ring_bytes;
	p = mmap(NULL, r->data_len, prot, MAP_SHARED, fd, info->data_offset);
	if (p == MAP_FAILED) {
		int err = errno;

		munmap((void *)r->meta, r->meta_len);
		r->meta = NULL;
		errno = err;
		return -1;
	}
	r->data = p;
	return 0;
}

void zring_unmap(struct zring *r)
{
	if (r->data)
		munmap(r->data, r->data_len);
	if (r->meta)
		munmap((void *)r->meta, r->meta_len);
	r->data = NULL;
	r->meta = NULL;
}
