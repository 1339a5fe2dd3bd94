/* SPDX-License-Identifier: GPL-2.0 */
/*
 * zcdev internals: a ring of pages shared by every open of its device node
 * (/dev/zcdev for ring 0, /dev/zcdevN for ring N; control.c makes and
 * removes them). Rings share nothing but the module-wide bound on their
 * pages (max_total_pages).
 *
 * Byte positions: head and tail count bytes ever produced and consumed.
 * Position p lives in ring slot (p / PAGE_SIZE) % nr_pages at offset
 * p % PAGE_SIZE, so every path (copy, mmap, splice) agrees on where a byte
 * is without any per-path bookkeeping.
 *
 * Locking, outermost first:
 *
 *   resize_lock          one RESIZE at a time, allocating its new ring
 *                        before it takes any other lock
 *   pipe->mutex          taken by the splice core or by zcdev_splice_write()
 *   produce_lock         one producer at a time moves head
 *   consume_lock         one consumer at a time moves tail, and none while
 *                        a sendfile() has bytes lent (zcdev_lock_consume())
 *   ring_lock            head, tail, nr_pages, pages[], lent, stats, meta
 *   page lock            held by zcdev_fault() from lookup to PTE install,
 *                        for the faulting page (those mapped around it go
 *                        in under ring_lock, and may allocate page tables
 *                        with the page locked: fine for ring pages, which
 *                        are never in the page cache or under writeback,
 *                        what __do_fault() preallocates against)
 *
 * The fault handler takes only ring_lock (and then the page lock), and
 * ring_lock is never held while user memory is touched. So read() into,
 * or write() from, a mapping of the device itself faults back into zcdev
 * and completes instead of deadlocking (docs/design.md, invariant 6).
 */
#ifndef _ZCDEV_H
#define _ZCDEV_H

#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/wait.h>
#include <linux/zcdev.h>

struct zcdev {
	struct miscdevice misc;
	unsigned int id;		/* the ring's number; 0 is /dev/zcdev */
	char name[16];			/* its node: "zcdev" or "zcdevN" */
	/*
	 * Open files, each mapping's included (a VMA holds its file), and
	 * whether the ring is being removed: both under zcdev_open_lock, so
	 * a removal and an open never both succeed (control.c).
	 */
	unsigned int opens;
	bool dying;

	/*
	 * An inode of the ring's own whose i_mapping every open file of it
	 * uses as its f_mapping: one address_space, so unmap_mapping_range()
	 * reaches the mappings of every open, whichever node it came through,
	 * and no other ring's.
	 */
	struct inode *inode;

	struct mutex resize_lock;	/* one RESIZE at a time */
	struct mutex produce_lock;	/* one producer moves head at a time */
	struct mutex consume_lock;	/* one consumer moves tail at a time */
	struct mutex ring_lock;		/* the fields below; see above */

	/* Protected by ring_lock; head and tail also read locklessly. */
	u64 head;
	u64 tail;
	u64 generation;
	u32 nr_pages;
	struct page **pages;
	/*
	 * A slot is lent while a pipe may still hold its page: the page went
	 * out by splice and must not be written or mapped again until the
	 * pipe lets go of it (or the slot gets a fresh page). So is a slot
	 * whose page somebody else held when tail passed it (an skb of a
	 * send(MSG_ZEROCOPY) from the mapping): zcdev_ring_keep_held().
	 */
	unsigned long *lent;
	/*
	 * Data pages of the device (2 * nr_pages, both halves of the double
	 * mapping) that may have a PTE somewhere: set by the fault handler,
	 * under ring_lock, before it maps one. A bit may be cleared only by
	 * whoever then waits for the page's lock and zaps it (a lend while a
	 * writable mapping exists, a steal into the slot), never by reset,
	 * whose zap does not wait for faults in flight. A lend zaps only
	 * what is set. Shares lent's allocation.
	 */
	unsigned long *mapped;
	struct zcdev_stats stats;
	atomic_long_t pages_held;	/* data pages this ring owns */

	struct page *meta_page;
	struct zcdev_ring_meta *meta;

	wait_queue_head_t readq;	/* readers waiting for data */
	wait_queue_head_t writeq;	/* writers waiting for space */
	atomic_t writers;		/* open files with FMODE_WRITE */
	struct fasync_struct *fasync_readers;	/* O_ASYNC: SIGIO on data */
	struct fasync_struct *fasync_writers;	/* O_ASYNC: SIGIO on space */

	/*
	 * Mappings of data pages that could be made to write them (VM_MAYWRITE):
	 * only those must lose their PTEs before a page is lent. Read-only ones
	 * are zapped when a slot changes its page (zcdev_ring_own_slot()).
	 */
	atomic_t writable_maps;

	/*
	 * sendfile's lend in flight (splice.c): bytes at tail that sit in the
	 * lender's internal pipe, not consumed until its output has taken
	 * them. While task is set, other consumers wait for it to clear
	 * (zcdev_lock_consume()); no lock is held meanwhile, so the output's
	 * own locks never nest inside ours. task is set and cleared under
	 * ring_lock; the rest is the lender's alone.
	 */
	struct {
		struct task_struct *task;	/* the lender, or NULL */
		unsigned int bufs;	/* our buffers still in its pipe */
		u64 lent;		/* bytes at tail they hold */
		u64 delivered;		/* bytes the output has taken */
		u64 delivered_copied;	/* of those, lent as copies */
		unsigned int bufs_taken;	/* buffers it took bytes of */
	} direct;

	struct dentry *debugfs;
};

extern unsigned int zcdev_max_ring_pages;
extern unsigned int zcdev_max_total_pages;

/*
 * The largest max_ring_pages accepted at load: 4 GiB of 4 KiB pages. The
 * ring's page array (8 bytes a page) stays far below the INT_MAX that
 * kvmalloc() refuses with a warning, and every device offset fits a u32.
 */
#define ZCDEV_MAX_RING_PAGES_LIMIT	BIT(20)

static inline struct address_space *zcdev_mapping(struct zcdev *zd)
{
	return zd->inode->i_mapping;
}

static inline u64 zcdev_ring_bytes(u32 nr_pages)
{
	return (u64)nr_pages << PAGE_SHIFT;
}

/* Lockless views for wait conditions and poll; exact under ring_lock. */
static inline u64 zcdev_used(struct zcdev *zd)
{
	return READ_ONCE(zd->head) - READ_ONCE(zd->tail);
}

static inline u64 zcdev_space(struct zcdev *zd)
{
	return zcdev_ring_bytes(READ_ONCE(zd->nr_pages)) - zcdev_used(zd);
}

/*
 * Is there still a writer? Load it before head (acquire): the last writer
 * moves head, then drops writers with a fully ordered atomic, so a reader
 * that finds no writer and then loads head sees every byte it wrote, and
 * never reports end of file with data in the ring.
 */
static inline bool zcdev_has_writer(struct zcdev *zd)
{
	return atomic_read_acquire(&zd->writers);
}

/* Another task's sendfile() has bytes lent at tail (splice.c). */
static inline bool zcdev_direct_busy(struct zcdev *zd)
{
	struct task_struct *lender = READ_ONCE(zd->direct.task);

	return lender && lender != current;
}

static inline unsigned int zcdev_slot(struct zcdev *zd, u64 pos)
{
	return (pos >> PAGE_SHIFT) % zd->nr_pages;
}

/* ring.c */
int zcdev_ring_init(struct zcdev *zd, u32 nr_pages);
void zcdev_ring_free(struct zcdev *zd);
int zcdev_ring_resize(struct zcdev *zd, u32 nr_pages);
int zcdev_ring_reset(struct zcdev *zd);
int zcdev_ring_produce(struct zcdev *zd, u64 bytes);
int zcdev_ring_consume(struct zcdev *zd, u64 bytes);
int zcdev_lock_consume(struct zcdev *zd, bool nonblock);
int zcdev_trylock_consume(struct zcdev *zd);
int zcdev_lock_ends(struct zcdev *zd, bool nonblock);
void zcdev_unlock_ends(struct zcdev *zd);
int zcdev_ring_slot_ours(struct zcdev *zd, unsigned int slot);
int zcdev_ring_own_slot(struct zcdev *zd, unsigned int slot);
unsigned int zcdev_ring_take_mapped(struct zcdev *zd, unsigned int slot);
void zcdev_ring_unmap_slot(struct zcdev *zd, unsigned int slot,
			   struct page *page, unsigned int halves);
void zcdev_ring_advance_head(struct zcdev *zd, u64 bytes);
void zcdev_ring_advance_tail(struct zcdev *zd, u64 bytes);
int zcdev_wait_readable(struct zcdev *zd, bool nonblock);
int zcdev_wait_writable(struct zcdev *zd, bool nonblock);
struct page *zcdev_page_alloc(struct zcdev *zd, gfp_t extra);
void zcdev_page_adopt(struct zcdev *zd, struct page *page);
void zcdev_page_put(struct zcdev *zd, struct page *page);
int zcdev_total_pages_reserve(u32 old_nr, u32 new_nr);
int zcdev_page_others(struct page *page, unsigned int refs, int *maps);
bool zcdev_page_poisoned(struct page *page);

/* main.c */
extern const struct file_operations zcdev_fops;
extern ushort zcdev_mode;

/* control.c */
extern spinlock_t zcdev_open_lock;
struct zcdev *zcdev_ring_lookup(unsigned int id);
int zcdev_control_init(unsigned int rings, u32 ring_pages);
void zcdev_control_exit(void);

/* rw.c */
ssize_t zcdev_read_iter(struct kiocb *iocb, struct iov_iter *to);
ssize_t zcdev_write_iter(struct kiocb *iocb, struct iov_iter *from);

/* mmap.c */
int zcdev_mmap(struct file *file, struct vm_area_struct *vma);

/* splice.c */
ssize_t zcdev_splice_read(struct file *in, loff_t *ppos,
			  struct pipe_inode_info *pipe, size_t len,
			  unsigned int flags);
ssize_t zcdev_splice_write(struct pipe_inode_info *pipe, struct file *out,
			   loff_t *ppos, size_t len, unsigned int flags);

/* ioctl.c */
long zcdev_ioctl(struct file *file, unsigned int cmd, unsigned long arg);

/* stats.c */
void zcdev_stats_snapshot(struct zcdev *zd, struct zcdev_stats *st);
void zcdev_debugfs_init(struct zcdev *zd);
void zcdev_debugfs_exit(struct zcdev *zd);
extern const struct attribute_group *zcdev_groups[];

#endif /* _ZCDEV_H */
