/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * zcdev: a kernel page ring that user space fills and drains through every
 * Linux data path (read/write, mmap, splice, sendfile, vmsplice).
 *
 * This header is the whole user-space ABI. Every structure is made of
 * fixed-size fields, naturally aligned, with explicit reserved space that
 * the kernel zeroes, so that it reads the same from 32- and 64-bit user
 * space and can grow without a new ioctl number.
 */
#ifndef _UAPI_LINUX_ZCDEV_H
#define _UAPI_LINUX_ZCDEV_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define ZCDEV_ABI_VERSION	1

/*
 * 'Y' is not claimed in Documentation/userspace-api/ioctl/ioctl-number.rst;
 * the rig checks that against the kernel source it builds with.
 */
#define ZCDEV_IOC_MAGIC		'Y'

/* Offsets into the device for mmap(): the meta page, then the data pages. */
#define ZCDEV_META_OFFSET	0

struct zcdev_info {
	__u32 abi_version;	/* ZCDEV_ABI_VERSION */
	__u32 page_size;	/* bytes in one ring page */
	__u32 ring_pages;	/* pages in the ring now */
	__u32 max_ring_pages;	/* upper bound for ZCDEV_IOC_RESIZE */
	__u64 meta_offset;	/* mmap offset of struct zcdev_ring_meta (0) */
	__u64 data_offset;	/* mmap offset of ring page 0 (page_size) */
	__u64 ring_bytes;	/* capacity: ring_pages * page_size */
	__u32 ring;		/* this ring's number: 0 is /dev/zcdev */
	__u32 max_total_pages;	/* bound on the pages of all rings together */
	__u64 reserved[3];
};

/*
 * Counters since the module was loaded. The copy counters and the move
 * counters are kept apart so a test can prove a path copied nothing.
 * New counters take the first reserved word: the size, the ioctl number
 * and every earlier offset stay, and a kernel without the counter leaves
 * the word 0.
 */
struct zcdev_stats {
	__u64 bytes_written_copy;	/* write(): user -> ring, copied */
	__u64 bytes_read_copy;		/* read(): ring -> user, copied */
	__u64 bytes_spliced_out;	/* splice/sendfile out, by reference */
	__u64 pages_spliced_out;	/* pipe buffers handed out */
	__u64 bytes_spliced_in_moved;	/* splice in, whole pages stolen */
	__u64 pages_stolen_in;		/* pages taken from a pipe */
	__u64 bytes_spliced_in_copied;	/* splice in, copied */
	__u64 bytes_produced_mmap;	/* ZCDEV_IOC_PRODUCE */
	__u64 bytes_consumed_mmap;	/* ZCDEV_IOC_CONSUME */
	__u64 page_swaps;		/* slots given a fresh page */
	__u64 mmap_faults;		/* ring pages mapped by faults (and around them) */
	__u64 sigbus_faults;		/* faults answered with SIGBUS */
	__u64 pages_held;		/* data pages the ring holds now */
	__u64 bytes_spliced_out_copied;	/* splice/sendfile out, copied (pinned pages) */
	__u64 slots_kept;		/* tail passed a page held elsewhere, kept */
	__u64 reserved[5];
};

/*
 * The meta page, at mmap offset 0, mapped read-only. The kernel stores
 * head, tail and generation with release semantics before the ioctl or
 * system call that moved them returns; read them with acquire loads
 * (__atomic_load_n(..., __ATOMIC_ACQUIRE)). The kernel never reads this
 * page back: it is a window on its state, not a channel into it.
 */
struct zcdev_ring_meta {
	__u32 abi_version;
	__u32 page_size;
	__u64 ring_bytes;	/* capacity now */
	__u64 head;		/* bytes ever produced */
	__u64 tail;		/* bytes ever consumed; used = head - tail */
	__u64 generation;	/* bumped by every resize and reset */
	__u64 reserved[3];
};

#define ZCDEV_IOC_GET_INFO	_IOR(ZCDEV_IOC_MAGIC, 0x00, struct zcdev_info)
#define ZCDEV_IOC_GET_STATS	_IOR(ZCDEV_IOC_MAGIC, 0x01, struct zcdev_stats)
/*
 * New page count; 0 tears the ring down. Unread bytes are kept; if they
 * would not fit it fails with EBUSY, above max_ring_pages with EINVAL, and
 * with ENOSPC if the rings together would pass max_total_pages.
 */
#define ZCDEV_IOC_RESIZE	_IOW(ZCDEV_IOC_MAGIC, 0x02, __u32)
/*
 * Drop every unread byte; the size stays. head and tail both move up to
 * the next page boundary.
 */
#define ZCDEV_IOC_RESET		_IO(ZCDEV_IOC_MAGIC, 0x03)
/* mmap producer: commit this many bytes written at head. */
#define ZCDEV_IOC_PRODUCE	_IOW(ZCDEV_IOC_MAGIC, 0x04, __u64)
/* mmap consumer: release this many bytes read at tail. */
#define ZCDEV_IOC_CONSUME	_IOW(ZCDEV_IOC_MAGIC, 0x05, __u64)

/*
 * Several rings. Ring 0 is /dev/zcdev; ring N > 0 is /dev/zcdevN. Each has
 * its own bytes, size, locks, counters and sysfs directory
 * (/sys/class/misc/zcdevN); the pages of all rings together are bound by
 * the module parameter max_total_pages. The module makes `devices` rings at
 * load (default 1); /dev/zcdev-control adds and removes them at run time,
 * as /dev/loop-control does for loop devices. At most ZCDEV_MAX_RINGS
 * rings: each is a misc device, and Linux 6.1 has 128 dynamic misc minors
 * for every driver together. The control node is root's alone (0600), as
 * loop-control's is, and takes these only from a file open for writing
 * (EBADF otherwise). The argument is the ring's number, passed by value,
 * not a pointer:
 *
 *   ZCDEV_CTL_ADD     number (an int), or -1 for the lowest free; returns the
 *                     number. The new ring has the module's ring_pages.
 *                     EEXIST: that ring exists; EINVAL: number out of range
 *                     (0 to ZCDEV_MAX_RINGS - 1); ENOSPC: its pages would
 *                     pass max_total_pages, or every number is taken;
 *                     EBUSY: the kernel has no misc minor left for it.
 *   ZCDEV_CTL_REMOVE  number. EBUSY while any file has it open (a mapping
 *                     keeps its file open); ENODEV: no such ring. Pages a
 *                     pipe or socket still holds are theirs and outlive the
 *                     ring, as they outlive the module.
 */
#define ZCDEV_CONTROL_NAME	"zcdev-control"
#define ZCDEV_MAX_RINGS		64
#define ZCDEV_CTL_ADD		_IO(ZCDEV_IOC_MAGIC, 0x10)
#define ZCDEV_CTL_REMOVE	_IO(ZCDEV_IOC_MAGIC, 0x11)

#endif /* _UAPI_LINUX_ZCDEV_H */
