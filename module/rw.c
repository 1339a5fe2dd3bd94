// SPDX-License-Identifier: GPL-2.0
/*
 * The copy paths, read() and write(): one CPU copy each way, between the
 * caller's buffer and the ring page that holds the bytes. They are the
 * baseline every zero-copy path is measured against.
 *
 * Each step copies at most one page, with a reference on the page and
 * with ring_lock dropped: the user buffer may be a mapping of this very
 * device, and touching it may fault into zcdev_fault(), which needs
 * ring_lock. produce_lock/consume_lock, held across the steps, keep the
 * position ours.
 */
#include <linux/pagemap.h>
#include <linux/sched/signal.h>
#include <linux/uio.h>

#include "zcdev.h"
#include "trace.h"

static bool zcdev_nonblock(struct kiocb *iocb)
{
	return (iocb->ki_flags & IOCB_NOWAIT) ||
	       (iocb->ki_filp->f_flags & O_NONBLOCK);
}

/*
 * Copy up to one page at stream position @pos (tail, or past it by what
 * this call copied already) out to @to: bytes copied, 0 if there is no
 * more, -errno. Nothing is consumed here: zcdev_read_commit() moves tail
 * once for the whole call.
 */
static ssize_t zcdev_read_step(struct zcdev *zd, struct iov_iter *to, u64 pos)
{
	unsigned int off, slot;
	struct page *page;
	size_t n, copied;

	lockdep_assert_held(&zd->consume_lock);

	mutex_lock(&zd->ring_lock);
	n = min_t(u64, iov_iter_count(to), zd->head - pos);
	if (!n) {
		mutex_unlock(&zd->ring_lock);
		return 0;
	}
	off = offset_in_page(pos);
	slot = zcdev_slot(zd, pos);
	n = min_t(size_t, n, PAGE_SIZE - off);
	/* A producer may swap this slot's page meanwhile; keep ours alive. */
	page = zd->pages[slot];
	if (zcdev_page_poisoned(page)) {
		mutex_unlock(&zd->ring_lock);
		return -EIO;
	}
	get_page(page);
	mutex_unlock(&zd->ring_lock);

	copied = copy_page_to_iter(page, off, n, to);
	put_page(page);
	return copied ? copied : -EFAULT;
}

/* Consume what one hold of consume_lock copied: one tail move, one wake. */
static void zcdev_read_commit(struct zcdev *zd, size_t bytes)
{
	if (!bytes)
		return;
	mutex_lock(&zd->ring_lock);
	zd->stats.bytes_read_copy += bytes;
	zcdev_ring_advance_tail(zd, bytes);
	mutex_unlock(&zd->ring_lock);
	trace_zcdev_xfer_read(bytes, 0, bytes, zd->id);
}

/*
 * Consumes; blocks while the ring is empty and has a writer. One call
 * reads one contiguous run of the stream: consume_lock is held from the
 * first byte to the last (and never while sleeping).
 */
ssize_t zcdev_read_iter(struct kiocb *iocb, struct iov_iter *to)
{
	struct zcdev *zd = iocb->ki_filp->private_data;
	bool nonblock = zcdev_nonblock(iocb);
	ssize_t done = 0, ret = 0;

	if (!iov_iter_count(to))
		return 0;
	while (!done) {
		ret = zcdev_wait_readable(zd, nonblock);
		if (ret <= 0)
			return ret;
		/*
		 * IOCB_NOWAIT (RWF_NOWAIT, io_uring's first try) does not
		 * sleep even for the mutex, which another reader holds across
		 * a copy that may fault: EAGAIN, and io_uring polls, as with a
		 * pipe. A sendfile's output may never drain: O_NONBLOCK does
		 * not wait for it either.
		 */
		if (iocb->ki_flags & IOCB_NOWAIT)
			ret = zcdev_trylock_consume(zd);
		else
			ret = zcdev_lock_consume(zd, nonblock);
		if (ret)
			return ret;
		/* Nothing, if another reader took the data as we woke up. */
		while (iov_iter_count(to)) {
			ret = zcdev_read_step(zd, to, zd->tail + done);
			if (ret <= 0)
				break;
			done += ret;
		}
		zcdev_read_commit(zd, done);
		mutex_unlock(&zd->consume_lock);
		if (ret < 0 && !done)
			return ret;
	}
	return done;
}

/*
 * The page a write step copied into, kept referenced until the next
 * ring_lock section settles it.
 */
struct zcdev_wstep {
	struct page *page;
	unsigned int slot, off;
	size_t copied;
};

/*
 * While a step copied with ring_lock dropped, a consumer may have passed
 * a page somebody holds in the same slot (zcdev_ring_keep_held(): a
 * write() of a ring's size comes back round to the slot it began in),
 * and a fault from a mapping then gave the slot a fresh page, copied from
 * this one before all our bytes were there. They are past head, seen by
 * nobody yet: if the slot changed, they go to its page now, before head
 * moves. ring_lock orders this after our copy and after any swap.
 */
static void zcdev_write_settle(struct zcdev *zd, struct zcdev_wstep *w)
{
	lockdep_assert_held(&zd->ring_lock);

	if (!w->page)
		return;
	if (w->copied && zd->pages[w->slot] != w->page)
		memcpy_page(zd->pages[w->slot], w->off, w->page, w->off,
			    w->copied);
	put_page(w->page);
	w->page = NULL;
}

/*
 * Copy up to one page from @from in at stream position @pos (head, or
 * past it by what this call copied already): bytes, 0 if full, -errno.
 * zcdev_write_commit() moves head once for what the call copied.
 */
static ssize_t zcdev_write_step(struct zcdev *zd, struct iov_iter *from,
				u64 pos, struct zcdev_wstep *w)
{
	unsigned int off, slot;
	struct page *page;
	size_t n, copied;
	int ret;

	lockdep_assert_held(&zd->produce_lock);

	mutex_lock(&zd->ring_lock);
	zcdev_write_settle(zd, w);
	n = min_t(u64, iov_iter_count(from),
		  zcdev_ring_bytes(zd->nr_pages) - (pos - zd->tail));
	if (!n) {
		mutex_unlock(&zd->ring_lock);
		return 0;
	}
	off = offset_in_page(pos);
	slot = zcdev_slot(zd, pos);
	n = min_t(size_t, n, PAGE_SIZE - off);
	ret = zcdev_ring_own_slot(zd, slot);
	if (ret) {
		mutex_unlock(&zd->ring_lock);
		return ret;
	}
	page = zd->pages[slot];
	get_page(page);
	mutex_unlock(&zd->ring_lock);

	copied = copy_page_from_iter(page, off, n, from);
	*w = (struct zcdev_wstep){ .page = page, .slot = slot, .off = off,
				   .copied = copied };
	return copied ? copied : -EFAULT;
}

/*
 * Publish what one hold of produce_lock copied: one head move, one wake.
 * The last step's page is settled first, whatever was copied.
 */
static void zcdev_write_commit(struct zcdev *zd, size_t bytes,
			       struct zcdev_wstep *w)
{
	if (!bytes && !w->page)
		return;
	mutex_lock(&zd->ring_lock);
	zcdev_write_settle(zd, w);
	if (bytes) {
		zd->stats.bytes_written_copy += bytes;
		zcdev_ring_advance_head(zd, bytes);
	}
	mutex_unlock(&zd->ring_lock);
	if (bytes)
		trace_zcdev_xfer_write(bytes, 0, bytes, zd->id);
}

/*
 * Appends; blocks while the ring is full. A signal or a fault part-way
 * returns what was written, so no byte is lost or written twice: the
 * caller's next write() starts right after the last byte we took.
 * produce_lock is held while there is room, so a write that never has to
 * wait lands as one contiguous run; concurrent writers can interleave only
 * where a write waited for space, as with a pipe beyond PIPE_BUF.
 */
ssize_t zcdev_write_iter(struct kiocb *iocb, struct iov_iter *from)
{
	struct zcdev *zd = iocb->ki_filp->private_data;
	bool nonblock = zcdev_nonblock(iocb);
	struct zcdev_wstep w = { };
	ssize_t done = 0, ret = 0;
	size_t held;

	while (iov_iter_count(from)) {
		ret = zcdev_wait_writable(zd, nonblock);
		if (ret <= 0)
			break;
		/* IOCB_NOWAIT: no sleep for the mutex, as in zcdev_read_iter(). */
		if (iocb->ki_flags & IOCB_NOWAIT) {
			if (!mutex_trylock(&zd->produce_lock)) {
				ret = -EAGAIN;
				break;
			}
		} else if (mutex_lock_interruptible(&zd->produce_lock)) {
			ret = -ERESTARTSYS;
			break;
		}
		held = 0;
		while (iov_iter_count(from)) {
			ret = zcdev_write_step(zd, from, zd->head + held, &w);
			if (ret <= 0)
				break;
			held += ret;
		}
		/* Before waiting for space: a reader must see these bytes. */
		zcdev_write_commit(zd, held, &w);
		mutex_unlock(&zd->produce_lock);
		done += held;
		if (ret < 0)
			break;
	}
	return done ? done : ret;
}
