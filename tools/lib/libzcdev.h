/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * libzcdev: the one user-space layer over /dev/zcdev's ABI
 * (uapi/linux/zcdev.h). The tool, the selftests and the examples use it.
 *
 * Every function returns 0 (or a count) on success and -errno on failure,
 * with errno left set as well, and prints nothing: what to tell a person
 * is the caller's business. Build: cc ... $(pkg-config --cflags --libs libzcdev)
 * (in the source tree, after make lib: PKG_CONFIG_PATH=tools/lib).
 *
 * The mmap protocol, in short (see zcdev_ring_*() below):
 *   producer: zcdev_ring_space() -> write the bytes there -> zcdev_produce()
 *   consumer: zcdev_ring_data()  -> read the bytes there  -> zcdev_consume()
 * The kernel publishes head and tail in the read-only meta page with
 * release stores; the ring functions read them with acquire loads, so the
 * bytes a consumer sees below head are the bytes the producer wrote, and
 * the space a producer sees below tail + ring_bytes is really free. One
 * mmap producer and one mmap consumer at a time: zcdev_claim().
 */
#ifndef LIBZCDEV_H
#define LIBZCDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <linux/zcdev.h>

#define ZCDEV_DEFAULT_PATH	"/dev/zcdev"

/* $ZCDEV_DEV if it is set and not empty, else /dev/zcdev. */
const char *zcdev_path(void);

/* The library's version, as the module and the tool report theirs. */
const char *zcdev_version(void);

/*
 * Open the device (path NULL: zcdev_path()) with open(2) flags, always
 * O_CLOEXEC, and check that it speaks ZCDEV_ABI_VERSION; info is filled
 * in. Returns the descriptor, or:
 *   -ENOENT, -ENXIO, -ENODEV  no device there (the module is not loaded)
 *   -ENOTTY                   not a zcdev (not a character device, or it
 *                             does not answer ZCDEV_IOC_GET_INFO)
 *   -EPROTO                   a zcdev with another ABI (info is filled in)
 *   any other -errno of open(2) (-EACCES, ...)
 * Never blocks in open(2), even on a FIFO.
 */
int zcdev_open(const char *path, int flags, struct zcdev_info *info);

/* ZCDEV_IOC_GET_INFO and the ABI check of zcdev_open() on an open fd. */
int zcdev_check(int fd, struct zcdev_info *info);
int zcdev_get_info(int fd, struct zcdev_info *info);
int zcdev_get_stats(int fd, struct zcdev_stats *st);
int zcdev_resize(int fd, uint32_t pages);
int zcdev_reset(int fd);

/*
 * Are dev_fd and fd the same file: the same character device (by device
 * number, whatever node was opened), or the same inode?
 */
bool zcdev_same_file(int dev_fd, int fd);

/*
 * The single-producer, single-consumer rule of the mmap protocol, as a
 * claim that cooperating programs take: a producer takes an OFD write lock
 * on byte 0 of the device (F_OFD_SETLK; a producer's descriptor is open
 * for writing), a consumer takes flock(LOCK_EX) (its descriptor may be
 * read-only, which rules out a write lock). Both are non-blocking and
 * belong to the open file description: they go with its last close.
 * Returns -EBUSY when another descriptor holds that role.
 */
enum zcdev_role {
	ZCDEV_PRODUCER,
	ZCDEV_CONSUMER,
};
int zcdev_claim(int fd, enum zcdev_role role);

/* ---- several rings ---- */

#define ZCDEV_CONTROL_PATH	"/dev/" ZCDEV_CONTROL_NAME

/* $ZCDEV_CONTROL if it is set and not empty, else /dev/zcdev-control. */
const char *zcdev_control_path(void);

/*
 * The node of ring nr in buf: /dev/zcdev for ring 0, /dev/zcdevN for ring
 * N. Returns the path's length, -EINVAL for a number outside 0 to
 * ZCDEV_MAX_RINGS - 1, -ERANGE when it does not fit in len bytes.
 */
int zcdev_ring_path(int nr, char *buf, size_t len);

/*
 * ZCDEV_CTL_ADD and ZCDEV_CTL_REMOVE through zcdev_control_path().
 * zcdev_ring_add() takes a number or -1 (the lowest free one) and returns
 * the new ring's number; zcdev_ring_remove() returns 0. Or:
 *   -ENOENT   no control device: the module is not loaded, or it is one
 *             that has a single ring (a node left without its driver,
 *             ENXIO or ENODEV from open(2), is reported as this too, so
 *             that -ENODEV is only ever the ring's)
 *   -ENOTTY   the path is not a zcdev control device
 *   -EEXIST   (add) that ring exists
 *   -EINVAL   (add) a number out of range
 *   -ENOSPC   (add) its pages would pass the module's max_total_pages, or
 *             (-1) every number is taken
 *   -EBUSY    (remove) a file or a mapping has the ring open; (add) the
 *             kernel has no misc device minor left for it
 *   -ENODEV   (remove) no such ring, a number out of range included
 *   any other -errno of open(2) (-EACCES, ...)
 */
int zcdev_ring_add(int nr);
int zcdev_ring_remove(int nr);

/*
 * The rings that exist, from sysfs ($ZCDEV_SYSFS if it is set and not
 * empty, else /sys): the misc devices named zcdev (ring 0) and zcdevN,
 * numbered by their `ring` attribute where they have one. Stores up to n
 * numbers in nrs, ascending, and returns how many rings there are, which
 * may be more than n (0 when the module is not loaded); -errno when
 * class/misc cannot be read.
 */
int zcdev_ring_list(int *nrs, size_t n);

/* ---- the counters: one table for every program ---- */

/*
 * Every named field of struct zcdev_stats, in order. This list is the one
 * place user space names them: the tables below, the tool's output and
 * the selftests come from it, and zcdev.c fails to build when the struct
 * gains a field (or turns a reserved word into one) without it here.
 */
#define ZCDEV_STATS_FIELDS(X)		\
	X(bytes_written_copy)		\
	X(bytes_read_copy)		\
	X(bytes_spliced_out)		\
	X(pages_spliced_out)		\
	X(bytes_spliced_in_moved)	\
	X(pages_stolen_in)		\
	X(bytes_spliced_in_copied)	\
	X(bytes_produced_mmap)		\
	X(bytes_consumed_mmap)		\
	X(page_swaps)			\
	X(mmap_faults)			\
	X(sigbus_faults)		\
	X(pages_held)			\
	X(bytes_spliced_out_copied)	\
	X(slots_kept)

struct zcdev_field {
	const char *name;
	size_t off;
	size_t size;
};

/* NULL-terminated; every field of struct zcdev_info / zcdev_stats. */
extern const struct zcdev_field zcdev_info_fields[];
extern const struct zcdev_field zcdev_stats_fields[];

uint64_t zcdev_field_get(const void *base, const struct zcdev_field *f);
const struct zcdev_field *zcdev_field_find(const struct zcdev_field *t,
					   const char *name);
/* d = b - a for every counter (pages_held is a level: the change). */
void zcdev_stats_delta(const struct zcdev_stats *a, const struct zcdev_stats *b,
		       struct zcdev_stats *d);
/* Bytes into the ring by any path, and out of it by any path. */
uint64_t zcdev_stats_in(const struct zcdev_stats *d);
uint64_t zcdev_stats_out(const struct zcdev_stats *d);
/* What the module copied, moved by reference, and saw written in place. */
uint64_t zcdev_stats_copied(const struct zcdev_stats *d);
uint64_t zcdev_stats_by_ref(const struct zcdev_stats *d);
uint64_t zcdev_stats_in_place(const struct zcdev_stats *d);
/*
 * A delta as one line of text in buf: "copied C, by reference R, in place
 * P bytes; <field> +N ..." for every counter that moved. Returns what
 * snprintf() would (the length it needed).
 */
int zcdev_stats_format(char *buf, size_t len, const struct zcdev_stats *d);

/* ---- the ring through mmap ---- */

struct zcdev_ring {
	const struct zcdev_ring_meta *meta;	/* read-only */
	char *data;		/* the data pages, mapped twice in a row */
	uint64_t ring_bytes;
	uint64_t generation;	/* at map time */
	size_t meta_len;
	size_t data_len;
};

/*
 * Map the meta page read-only and the data pages twice over (writable for
 * a producer, whose fd must be O_RDWR), so any span of up to ring_bytes
 * from any position is contiguous. -ENOBUFS on a ring of 0 pages.
 */
int zcdev_ring_map(struct zcdev_ring *r, int fd, const struct zcdev_info *info,
		   bool producer);
void zcdev_ring_unmap(struct zcdev_ring *r);

/* head and tail with acquire loads. */
uint64_t zcdev_ring_head(const struct zcdev_ring *r);
uint64_t zcdev_ring_tail(const struct zcdev_ring *r);

/*
 * Producer: free bytes at head (contiguous at *p); consumer: unread bytes
 * at tail. -ESTALE when the ring was resized or reset since it was mapped
 * (map it again).
 */
int64_t zcdev_ring_space(const struct zcdev_ring *r, char **p);
int64_t zcdev_ring_data(const struct zcdev_ring *r, char **p);

/* Commit n bytes written at head / release n bytes read at tail. */
int zcdev_produce(int fd, uint64_t n);
int zcdev_consume(int fd, uint64_t n);

/*
 * poll(2) the device for events (POLLIN: data, POLLOUT: room); returns
 * the revents (POLLHUP on a consumer's fd: empty and no writer left, the
 * end of the stream), 0 on timeout, -errno.
 */
int zcdev_wait(int fd, short events, int timeout_ms);

/* ---- splice, sendfile, vmsplice ---- */

/* dev -> pipe by reference (the ring page goes into the pipe). */
ssize_t zcdev_splice_out(int dev, int pipe_wr, size_t len, unsigned int flags);
/* pipe -> dev; SPLICE_F_MOVE lets the ring steal pages only the pipe holds. */
ssize_t zcdev_splice_in(int pipe_rd, int dev, size_t len, unsigned int flags);
/* dev -> out (a file or a socket) through the kernel's own pipe. */
ssize_t zcdev_sendfile_out(int out, int dev, size_t len);
/*
 * vmsplice buf into the pipe with SPLICE_F_GIFT: the pages are the pipe's
 * for good. Call it with page-aligned whole pages and unmap them after.
 */
ssize_t zcdev_vmsplice_gift(int pipe_wr, void *buf, size_t len);

#endif /* LIBZCDEV_H */
