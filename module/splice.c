// SPDX-License-Identifier: GPL-2.0
/*
 * The zero-copy paths: splice out (and sendfile, which the VFS builds on
 * splice out) hands ring pages to a pipe by reference; splice in takes
 * whole pages from a pipe when they can be stolen safely, and copies
 * otherwise.
 *
 * Splice out, what keeps a pipe's bytes from ever changing:
 *  - the page is marked lent and zapped from every mapping before tail
 *    moves past its bytes, so no user mapping can write it any more;
 *  - a producer (write, splice in, a fault for an mmap producer) that
 *    reaches a lent slot calls zcdev_ring_own_slot() first, which gives the
 *    slot a fresh page if the pipe still holds the old one;
 *  - the pipe buffer uses the kernel's nosteal_pipe_buf_ops, so it outlives
 *    this module, cannot be stolen by the reader, takes references with
 *    try_get_page() (refusing near overflow on tee), and carries flags 0
 *    (never CAN_MERGE: a later write(2) to the pipe must not append into
 *    our page, the Dirty Pipe bug, CVE-2022-0847).
 */
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/page-flags.h>
#include <linux/pagemap.h>
#include <linux/pipe_fs_i.h>
#include <linux/sched/signal.h>
#include <linux/splice.h>

#include "zcdev.h"
#include "trace.h"

/* Lend up to one page at tail to @pipe; returns bytes, 0 if none, -errno. */
static ssize_t zcdev_splice_out_page(struct zcdev *zd,
				     struct pipe_inode_info *pipe, size_t len)
{
	struct pipe_buffer buf = { .ops = &nosteal_pipe_buf_ops };
	unsigned int slot;
	bool was_lent;
	ssize_t ret;

	mutex_lock(&zd->ring_lock);
	len = min_t(u64, len, zd->head - zd->tail);
	if (!len) {
		mutex_unlock(&zd->ring_lock);
		return 0;
	}
	buf.offset = offset_in_page(zd->tail);
	buf.len = min_t(size_t, len, PAGE_SIZE - buf.offset);
	slot = zcdev_slot(zd, zd->tail);
	buf.page = zd->pages[slot];
	if (!try_get_page(buf.page)) {
		mutex_unlock(&zd->ring_lock);
		return -ENOMEM;
	}
	was_lent = test_and_set_bit(slot, zd->lent);
	mutex_unlock(&zd->ring_lock);

	/* Before tail moves: until then no mmap producer may write here. */
	if (!was_lent)
		zcdev_ring_unmap_slot(zd, slot, buf.page);

	/* Cannot fail: the caller checked for readers and room, under pipe->mutex. */
	ret = add_to_pipe(pipe, &buf);
	if (ret < 0)
		return ret;

	mutex_lock(&zd->ring_lock);
	zd->stats.bytes_spliced_out += ret;
	zd->stats.pages_spliced_out++;
	zcdev_ring_advance_tail(zd, ret);
	mutex_unlock(&zd->ring_lock);
	return ret;
}

/*
 * ->splice_read: move page references from the ring into @pipe, up to
 * @len bytes or until the pipe is full. Blocks like read() while the ring
 * is empty and has a writer; returns 0 at end of file.
 */
ssize_t zcdev_splice_read(struct file *in, loff_t *ppos,
			  struct pipe_inode_info *pipe, size_t len,
			  unsigned int flags)
{
	struct zcdev *zd = in->private_data;
	bool nonblock = (flags & SPLICE_F_NONBLOCK) || (in->f_flags & O_NONBLOCK);
	ssize_t done = 0, ret;

	if (!len)
		return 0;
	if (!pipe->readers) {
		send_sig(SIGPIPE, current, 0);
		return -EPIPE;
	}
	if (pipe_full(pipe->head, pipe->tail, pipe->max_usage))
		return -EAGAIN;	/* the splice core waits for room first */

	do {
		ret = zcdev_wait_readable(zd, nonblock);
		if (ret <= 0)
			return ret;
		/*
		 * Both ends, not only consume_lock: no producer may be part-way
		 * through copying into a page while we lend it, or a fault could
		 * swap the page under it.
		 */
		ret = zcdev_lock_ends(zd);
		if (ret)
			return ret;
		while (len && !pipe_full(pipe->head, pipe->tail, pipe->max_usage)) {
			ret = zcdev_splice_out_page(zd, pipe, len);
			if (ret <= 0)
				break;
			done += ret;
			len -= ret;
		}
		zcdev_unlock_ends(zd);
		/* ret == 0 with nothing done: another reader won the race. */
	} while (!done && !ret);

	if (!done)
		return ret;
	trace_zcdev_xfer_splice_out(done, DIV_ROUND_UP(done, PAGE_SIZE), 0);
	return done;
}

/*
 * May this pipe buffer's page become a ring page? Only a whole page, into
 * a whole free slot, that belongs to nobody but the pipe: what
 * fs/fuse/dev.c checks before it moves a page. Page-cache pages sit on the
 * LRU, where reclaim would find a page the ring maps without any
 * address_space; they are copied instead (and left in the cache).
 */
static bool zcdev_can_steal(struct zcdev *zd, struct pipe_buffer *buf,
			    struct splice_desc *sd)
{
	lockdep_assert_held(&zd->ring_lock);

	return (sd->flags & SPLICE_F_MOVE) && sd->len == PAGE_SIZE &&
	       buf->offset == 0 && !offset_in_page(zd->head) &&
	       zcdev_ring_bytes(zd->nr_pages) - (zd->head - zd->tail) >= PAGE_SIZE &&
	       !PageLRU(buf->page);
}

/*
 * folio_mapped() rather than page_mapped(): the latter is gone from the
 * headers by 7.3 (still there in 6.12), the former exists on every
 * supported kernel, and a pipe's page is never part of a large folio here
 * (a whole page with refcount 1).
 */
static bool zcdev_page_unowned(struct page *page)
{
	const unsigned long allowed = 1UL << PG_locked | 1UL << PG_referenced |
		1UL << PG_uptodate | 1UL << PG_active | 1UL << PG_workingset |
		1UL << PG_waiters;

	return page_ref_count(page) == 1 && !folio_mapped(page_folio(page)) &&
	       !page->mapping &&
	       !(zcdev_page_flags(page) & PAGE_FLAGS_CHECK_AT_PREP & ~allowed);
}

/*
 * Put a stolen page into the slot at head. The old page is zapped from
 * mappings before head moves, so an mmap consumer can only ever see the
 * new bytes there.
 */
static void zcdev_splice_in_page(struct zcdev *zd, struct page *page)
{
	unsigned int slot;
	struct page *old;
	bool was_lent;

	zcdev_page_adopt(page);
	mutex_lock(&zd->ring_lock);
	slot = zcdev_slot(zd, zd->head);
	old = zd->pages[slot];
	zd->pages[slot] = page;
	was_lent = test_and_clear_bit(slot, zd->lent);
	mutex_unlock(&zd->ring_lock);

	/* A lent page has no mappings left (it was zapped when lent). */
	if (!was_lent)
		zcdev_ring_unmap_slot(zd, slot, old);
	zcdev_page_put(old);

	mutex_lock(&zd->ring_lock);
	zd->stats.pages_stolen_in++;
	zd->stats.bytes_spliced_in_moved += PAGE_SIZE;
	zcdev_ring_advance_head(zd, PAGE_SIZE);
	mutex_unlock(&zd->ring_lock);
}

/* Copy what fits of @buf at head; returns bytes copied or -errno. */
static int zcdev_splice_in_copy(struct zcdev *zd, struct pipe_buffer *buf,
				struct splice_desc *sd)
{
	unsigned int off, slot;
	size_t n;
	int ret;

	lockdep_assert_held(&zd->ring_lock);

	off = offset_in_page(zd->head);
	slot = zcdev_slot(zd, zd->head);
	n = min_t(u64, sd->len,
		  zcdev_ring_bytes(zd->nr_pages) - (zd->head - zd->tail));
	n = min_t(size_t, n, PAGE_SIZE - off);
	ret = zcdev_ring_own_slot(zd, slot);
	if (ret)
		return ret;
	/* Kernel pages on both sides: nothing here can fault into zcdev. */
	memcpy_page(zd->pages[slot], off, buf->page, buf->offset, n);
	zd->stats.bytes_spliced_in_copied += n;
	zcdev_ring_advance_head(zd, n);
	return n;
}

static int zcdev_splice_actor(struct pipe_inode_info *pipe,
			      struct pipe_buffer *buf, struct splice_desc *sd)
{
	struct file *out = sd->u.file;
	struct zcdev *zd = out->private_data;
	bool nonblock = (sd->flags & SPLICE_F_NONBLOCK) ||
			(out->f_flags & O_NONBLOCK);
	bool steal;
	int ret;

	if (mutex_lock_interruptible(&zd->produce_lock))
		return -ERESTARTSYS;
	for (;;) {
		mutex_lock(&zd->ring_lock);
		if (zcdev_ring_bytes(zd->nr_pages) > zd->head - zd->tail)
			break;
		mutex_unlock(&zd->ring_lock);
		/* Full: wait for a consumer, without holding produce_lock. */
		mutex_unlock(&zd->produce_lock);
		ret = zcdev_wait_writable(zd, nonblock);
		if (ret < 0)
			return ret;
		if (mutex_lock_interruptible(&zd->produce_lock))
			return -ERESTARTSYS;
	}

	steal = zcdev_can_steal(zd, buf, sd);
	if (!steal) {
		ret = zcdev_splice_in_copy(zd, buf, sd);
		mutex_unlock(&zd->ring_lock);
		goto out;
	}
	mutex_unlock(&zd->ring_lock);

	/*
	 * try_steal locks the page. A successful steal still leaves the
	 * pipe's reference, which the core drops when it releases the buffer;
	 * ours is taken first so the pipe cannot recycle the page meanwhile.
	 */
	if (pipe_buf_try_steal(pipe, buf)) {
		if (zcdev_page_unowned(buf->page)) {
			get_page(buf->page);
			unlock_page(buf->page);
			zcdev_splice_in_page(zd, buf->page);
			ret = PAGE_SIZE;
			trace_zcdev_xfer_splice_in(ret, 1, 0);
			goto out;
		}
		unlock_page(buf->page);
	}
	steal = false;
	mutex_lock(&zd->ring_lock);
	ret = zcdev_splice_in_copy(zd, buf, sd);
	mutex_unlock(&zd->ring_lock);
out:
	mutex_unlock(&zd->produce_lock);
	if (ret > 0 && !steal)
		trace_zcdev_xfer_splice_in(ret, 0, ret);
	return ret;
}

/*
 * ->splice_write: take data from @pipe into the ring. With SPLICE_F_MOVE,
 * whole pages the pipe can give up are moved in (no copy); everything else
 * is copied. Blocks like write() while the ring is full.
 */
ssize_t zcdev_splice_write(struct pipe_inode_info *pipe, struct file *out,
			   loff_t *ppos, size_t len, unsigned int flags)
{
	struct splice_desc sd = {
		.total_len = len,
		.flags = flags,
		.pos = *ppos,
		.u.file = out,
	};
	ssize_t ret;

	pipe_lock(pipe);
	ret = __splice_from_pipe(pipe, &sd, zcdev_splice_actor);
	pipe_unlock(pipe);
	return ret;
}
