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
 *    our page, the Dirty Pipe bug, CVE-2022-0847);
 *  - a page that may be pinned, or referenced by a GUP user that may still
 *    write it (either survives the zap), goes out as a copy.
 * sendfile's internal pipe gets buffers of our own instead, which live no
 * longer than the call: see zcdev_is_direct_pipe().
 *
 * One call, from zcdev_splice_read(): zcdev_lend() takes pages at tail in
 * rounds (zcdev_lend_take()), zaps what it newly lent (zcdev_lend_zap()),
 * swaps pinned pages for copies (zcdev_lend_recheck_pins()) and puts the
 * buffers in the pipe, moving tail once (zcdev_lend_give()).
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

/*
 * sendfile() reaches us through splice_direct_to_actor(): it splices into
 * its own internal pipe, current->splice_pipe, hands that pipe to the
 * output, and releases whatever the output did not take. For a seekable
 * file that is harmless (the next call reads again from the position it
 * returns); for a stream the released bytes would be gone. So what goes
 * into that pipe is lent, not consumed: tail stays, other consumers wait
 * until the lend is over (zd->direct.task, zcdev_lock_consume()), and when
 * the last of our buffers is released, tail moves by exactly what the
 * output took (see ZCDEV_BUF_LEN_MASK). No zcdev lock is held while the
 * output works, so its locks (a socket's, a file system's freeze
 * protection) never nest inside ours. The rest is read again by the next call.
 * The same holds on 6.1, 6.12 and later: splice_direct_to_actor() has
 * had this shape since 2.6, and releases every buffer before it returns.
 * An output that moves buffers somewhere else whole (only /dev/fuse does)
 * would be counted as having taken nothing.
 */
static bool zcdev_is_direct_pipe(struct pipe_inode_info *pipe)
{
	return pipe == current->splice_pipe;
}

/*
 * buf->private: the length the buffer was lent with, whether it is a
 * copy, and the number of the ring that lent it (the buffer operations
 * are shared by every ring). What the output took is that length less
 * buf->len: outputs take from the front and either advance offset and
 * shrink len (splice_to_socket, splice_from_pipe) or zero len of a buffer
 * they took whole (iter_file_splice_write); what is left when the pipe is
 * released is what they did not take.
 */
#define ZCDEV_BUF_LEN_MASK	(2 * PAGE_SIZE - 1)
#define ZCDEV_BUF_COPIED	(2 * PAGE_SIZE)
#define ZCDEV_BUF_RING_SHIFT	(PAGE_SHIFT + 2)
static_assert(ZCDEV_MAX_RINGS <= 1UL << (BITS_PER_LONG - ZCDEV_BUF_RING_SHIFT));

/*
 * The ring a direct buffer came from. It is still there: the sendfile()
 * that lent the buffer holds the ring's file until the buffer is gone,
 * and a ring is removed only when no file has it open.
 */
static struct zcdev *zcdev_direct_buf_ring(struct pipe_buffer *buf)
{
	return zcdev_ring_lookup(buf->private >> ZCDEV_BUF_RING_SHIFT);
}

/*
 * All our buffers in the direct pipe are gone: consume what the output
 * took, in one step, and let other consumers in again.
 */
static void zcdev_direct_commit(struct zcdev *zd)
{
	u64 bytes = zd->direct.delivered;
	u64 copied = zd->direct.delivered_copied;
	bool unread;

	mutex_lock(&zd->ring_lock);
	zd->stats.pages_spliced_out += zd->direct.bufs_taken;
	if (bytes) {
		zd->stats.bytes_spliced_out += bytes - copied;
		zd->stats.bytes_spliced_out_copied += copied;
		zcdev_ring_advance_tail(zd, bytes);
	}
	zd->direct.lent = 0;
	zd->direct.delivered = 0;
	zd->direct.delivered_copied = 0;
	zd->direct.bufs_taken = 0;
	WRITE_ONCE(zd->direct.task, NULL);
	unread = zd->head != zd->tail;
	mutex_unlock(&zd->ring_lock);
	/* Consumers waiting in zcdev_lock_consume(). */
	wake_up_interruptible(&zd->readq);
	/*
	 * And those that got EAGAIN behind the lend: what the output did
	 * not take is theirs again, and no producer may come to say so.
	 */
	if (unread)
		kill_fasync(&zd->fasync_readers, SIGIO, POLL_IN);
	if (bytes)
		trace_zcdev_xfer_splice_out(bytes, 0, copied, zd->id);
}

static void zcdev_direct_buf_release(struct pipe_inode_info *pipe,
				     struct pipe_buffer *buf)
{
	struct zcdev *zd = zcdev_direct_buf_ring(buf);
	unsigned int lent = buf->private & ZCDEV_BUF_LEN_MASK;
	unsigned int taken = lent - buf->len;

	/* The output consumes in order: only a prefix is ever taken. */
	zd->direct.delivered += taken;
	if (taken)
		zd->direct.bufs_taken++;
	if (buf->private & ZCDEV_BUF_COPIED)
		zd->direct.delivered_copied += taken;
	put_page(buf->page);
	if (!WARN_ON_ONCE(!zd->direct.bufs) && !--zd->direct.bufs)
		zcdev_direct_commit(zd);
}

/* A second reference to one of our buffers (tee, or an output that splits it). */
static bool zcdev_direct_buf_get(struct pipe_inode_info *pipe,
				 struct pipe_buffer *buf)
{
	if (!try_get_page(buf->page))
		return false;
	zcdev_direct_buf_ring(buf)->direct.bufs++;
	return true;
}

/*
 * Lives no longer than the sendfile() call that holds a reference to our
 * file, so the module cannot go away under it. No try_steal: the page is
 * a ring page (or a copy the pipe alone owns, but one rule is simpler).
 */
static const struct pipe_buf_operations zcdev_direct_buf_ops = {
	.release = zcdev_direct_buf_release,
	.get = zcdev_direct_buf_get,
};

/*
 * Pages one lock round lends at most: the default pipe (16 buffers) and
 * sendfile's internal one take one round, a 1 MiB pipe eight. Small
 * enough for struct zcdev_lend to live on the stack.
 */
#define ZCDEV_LEND_BATCH	32

/*
 * One lend: the pages holding [start, start + len) of the stream, in
 * order. The first is used from offset_in_page(start), every other from 0.
 */
struct zcdev_lend {
	u64 start;
	size_t len;
	unsigned int nr;
	struct page *pages[ZCDEV_LEND_BATCH];	/* a ring page, or a copy */
	DECLARE_BITMAP(copied, ZCDEV_LEND_BATCH);
	DECLARE_BITMAP(marked, ZCDEV_LEND_BATCH);	/* newly marked lent */
	bool zap;	/* a mapping could write them: zap the marked ones */
	/* Marked pages the fault handler may have mapped (zd->mapped), */
	DECLARE_BITMAP(pte_lo, ZCDEV_LEND_BATCH);	/* at 1 + slot */
	DECLARE_BITMAP(pte_hi, ZCDEV_LEND_BATCH);	/* at 1 + slot + nr */
};

static unsigned int zcdev_lend_off(struct zcdev_lend *l, unsigned int i)
{
	return i ? 0 : offset_in_page(l->start);
}

static unsigned int zcdev_lend_len(struct zcdev_lend *l, unsigned int i)
{
	u64 first = l->start - offset_in_page(l->start);
	u64 start = max(l->start, first + ((u64)i << PAGE_SHIFT));
	u64 end = min(l->start + l->len, first + ((u64)(i + 1) << PAGE_SHIFT));

	return end - start;
}

/*
 * A page somebody may have pinned (io_uring fixed buffers, O_DIRECT,
 * process_vm_writev() through a mapping) can still be written through the
 * pin after every PTE is gone: such a page is never lent by reference.
 * folio_maybe_dma_pinned() is in every kernel zcdev supports (6.1 on).
 */
static bool zcdev_page_maybe_pinned(struct page *page)
{
	return folio_maybe_dma_pinned(page_folio(page));
}

/* A page of the pipe's own with the lent bytes of @page at the same offset. */
static struct page *zcdev_lend_copy(struct page *page, unsigned int off,
				    unsigned int len)
{
	struct page *copy = alloc_page(GFP_KERNEL_ACCOUNT);

	if (copy)
		memcpy_page(copy, off, page, off, len);
	return copy;
}

/*
 * The page at @i, newly lent from @slot: which of its two places in the
 * double mapping must lose their PTEs. Only those the fault handler may
 * have mapped since the last zap (zd->mapped): at 4 KiB a call lends one
 * page, and a zap that finds nothing still walks the page tables of every
 * mapping (it flushes no TLB: tlb_flush_mmu_tlbonly() returns early when
 * nothing was cleared). Cleared here, under ring_lock, before the zap: a
 * fault that maps the slot again finds it lent and gets a fresh page
 * (zcdev_ring_own_slot()), and sets the bit again.
 */
static void zcdev_lend_mark_zap(struct zcdev *zd, struct zcdev_lend *l,
				unsigned int i, unsigned int slot)
{
	unsigned int halves;

	if (!l->zap)
		return;
	halves = zcdev_ring_take_mapped(zd, slot);
	if (halves & 1)
		__set_bit(i, l->pte_lo);
	if (halves & 2)
		__set_bit(i, l->pte_hi);
}

/*
 * Take up to @len bytes at tail, as many pages as @room pipe buffers
 * hold, in one ring_lock round: a reference to each page, the slot marked
 * lent (a producer that comes round again gives it a fresh page), or a
 * copy if the page may be pinned. Nothing is consumed yet. Returns the
 * bytes taken, 0 if the ring is empty, -errno if the first page failed.
 */
static ssize_t zcdev_lend_take(struct zcdev *zd, struct zcdev_lend *l,
			       size_t len, unsigned int room)
{
	u64 pos;
	int ret = 0;

	l->nr = 0;
	bitmap_zero(l->copied, ZCDEV_LEND_BATCH);
	bitmap_zero(l->marked, ZCDEV_LEND_BATCH);
	bitmap_zero(l->pte_lo, ZCDEV_LEND_BATCH);
	bitmap_zero(l->pte_hi, ZCDEV_LEND_BATCH);
	room = min_t(unsigned int, room, ZCDEV_LEND_BATCH);

	mutex_lock(&zd->ring_lock);
	/*
	 * Any mapping that could write one of these pages loses its PTEs.
	 * One made after this cannot reach them: its faults find the slots
	 * lent (zcdev_ring_own_slot()).
	 */
	l->zap = atomic_read(&zd->writable_maps);
	/* Past what our sendfile's pipe holds already: zcdev_is_direct_pipe(). */
	l->start = zd->tail;
	if (zd->direct.task == current)
		l->start += zd->direct.lent;
	len = min_t(u64, len, zd->head - l->start);
	for (pos = l->start; pos < l->start + len && l->nr < room;
	     pos = round_down(pos, PAGE_SIZE) + PAGE_SIZE) {
		unsigned int slot = zcdev_slot(zd, pos);
		unsigned int off = offset_in_page(pos);
		unsigned int n = min_t(u64, l->start + len - pos, PAGE_SIZE - off);
		struct page *page = zd->pages[slot];

		if (zcdev_page_poisoned(page)) {
			ret = -EIO;
			break;
		}
		if (zcdev_page_maybe_pinned(page)) {
			page = zcdev_lend_copy(page, off, n);
			if (!page) {
				ret = -ENOMEM;
				break;
			}
			__set_bit(l->nr, l->copied);
		} else {
			if (!try_get_page(page)) {
				ret = -ENOMEM;
				break;
			}
			if (!test_and_set_bit(slot, zd->lent)) {
				__set_bit(l->nr, l->marked);
				zcdev_lend_mark_zap(zd, l, l->nr, slot);
			}
		}
		l->pages[l->nr++] = page;
	}
	l->len = min_t(u64, pos, l->start + len) - l->start;
	mutex_unlock(&zd->ring_lock);

	return l->nr ? l->len : ret;
}

/*
 * Remove every PTE of the newly lent pages, in as few calls as the range
 * needs. The slots are consecutive from that of l->start; in the double
 * mapping (device page 1 + i shows slot i % nr_pages), slots s..s+k-1 are
 * one run of device pages from 1 + s, and their other copies one run from
 * 1 + s + nr_pages, which wraps to device page 1 past the end. A run none
 * of whose pages the fault handler mapped is left alone.
 */
static void zcdev_lend_zap(struct zcdev *zd, struct zcdev_lend *l)
{
	struct address_space *mapping = zcdev_mapping(zd);
	unsigned int first, last, i, nr = zd->nr_pages;
	bool run[2] = { false, false };
	u64 s, k, other;

	if (bitmap_empty(l->pte_lo, ZCDEV_LEND_BATCH) &&
	    bitmap_empty(l->pte_hi, ZCDEV_LEND_BATCH))
		return;
	first = find_first_bit(l->marked, ZCDEV_LEND_BATCH);
	last = find_last_bit(l->marked, ZCDEV_LEND_BATCH);
	s = ((l->start >> PAGE_SHIFT) + first) % nr;
	k = min_t(u64, last - first + 1, nr);
	/*
	 * The first run holds a slot's lower copy up to the end of the first
	 * half, then (past it) the upper copies of the slots that wrapped.
	 * A fault that found one of these pages before it was marked lent
	 * holds its lock until its PTE is in place: wait for it, so the zap
	 * below finds that PTE. Only pages with a bit can have one: a fault
	 * sets the bit before it drops ring_lock.
	 */
	for_each_set_bit(i, l->marked, ZCDEV_LEND_BATCH) {
		bool wrapped = s + (i - first) >= nr;
		bool lo = test_bit(i, l->pte_lo), hi = test_bit(i, l->pte_hi);

		if (!lo && !hi)
			continue;
		run[wrapped ? 1 : 0] |= lo;
		run[wrapped ? 0 : 1] |= hi;
		lock_page(l->pages[i]);
		unlock_page(l->pages[i]);
	}

	if (run[0])
		unmap_mapping_range(mapping, (loff_t)(1 + s) << PAGE_SHIFT,
				    k << PAGE_SHIFT, 1);
	if (!run[1])
		return;
	other = s + nr;
	if (other + k <= 2ULL * nr) {
		unmap_mapping_range(mapping, (loff_t)(1 + other) << PAGE_SHIFT,
				    k << PAGE_SHIFT, 1);
	} else {
		unmap_mapping_range(mapping, (loff_t)(1 + other) << PAGE_SHIFT,
				    (2ULL * nr - other) << PAGE_SHIFT, 1);
		unmap_mapping_range(mapping, (loff_t)1 << PAGE_SHIFT,
				    (other + k - 2ULL * nr) << PAGE_SHIFT, 1);
	}
}

/*
 * May somebody other than a pipe write the page lent at @i now? A pin
 * (FOLL_PIN) shows in folio_maybe_dma_pinned(). A plain reference taken
 * through get_user_pages() (FOLL_GET) does not, and its holder stores
 * after GUP returned, which the zap does not wait for: O_DIRECT on 6.1
 * (bio_iov_iter_get_pages() takes references, not pins), and on every
 * kernel a write to /proc/<pid>/mem or PTRACE_POKEDATA
 * (access_remote_vm()). Once the zap has run, every reference taken
 * through a PTE is visible (GUP-fast rechecks the PTE; the TLB flush
 * waits for it) and no new one can be taken.
 *
 * Then a page newly marked lent has the ring's reference (zd->pages[])
 * and one per time this lend holds it (zcdev_lend_take() took them;
 * add_to_pipe() hands them on and takes none): twice when the lend
 * wraps round the whole ring and ends in the page it started in. It is
 * in no pipe (a page some pipe, sendfile's included, still holds is
 * marked already, and was judged when it was marked, with no PTE since),
 * on no LRU and in no page cache. Any reference above that means a copy:
 * zcdev_page_others(), whose PTE allowance is 0 after the zap. Without a
 * zap (no writable mapping now) the same holds while no read-only PTE
 * adds its own reference; a page mapped read-only is judged by its pins
 * alone. A transient reference (compaction, a fault that lost its race)
 * costs a copy only.
 */
static bool zcdev_lend_maybe_written(struct zcdev_lend *l, unsigned int i)
{
	struct page *page = l->pages[i];
	unsigned int j, refs = 1;	/* the ring's */
	int maps;

	if (zcdev_page_maybe_pinned(page))
		return true;
	if (!test_bit(i, l->marked))
		return false;
	if (!l->zap && folio_mapped(page_folio(page)))
		return false;
	for (j = 0; j < l->nr; j++)
		if (!test_bit(j, l->copied) && l->pages[j] == page)
			refs++;
	return zcdev_page_others(page, refs, &maps) > 0;
}

/*
 * A pin or a GUP reference taken through a PTE before the zap removed it
 * is visible now and cannot be taken later (no PTE is left to take it
 * through): lend a copy instead, and give the slot back its page if
 * nothing else holds it lent. Every time this lend holds the page goes
 * as a copy, so all are judged before any is swapped: a slot given back
 * while a lent reference remains would be written in place.
 */
static int zcdev_lend_recheck_pins(struct zcdev *zd, struct zcdev_lend *l)
{
	DECLARE_BITMAP(swap, ZCDEV_LEND_BATCH);
	unsigned int i, j;

	bitmap_zero(swap, ZCDEV_LEND_BATCH);
	for (i = 0; i < l->nr; i++) {
		if (test_bit(i, l->copied) || test_bit(i, swap) ||
		    !zcdev_lend_maybe_written(l, i))
			continue;
		for (j = i; j < l->nr; j++)
			if (!test_bit(j, l->copied) && l->pages[j] == l->pages[i])
				__set_bit(j, swap);
	}

	for_each_set_bit(i, swap, ZCDEV_LEND_BATCH) {
		struct page *page = l->pages[i];
		struct page *copy;
		unsigned int slot;

		copy = zcdev_lend_copy(page, zcdev_lend_off(l, i),
				       zcdev_lend_len(l, i));
		if (!copy)
			return -ENOMEM;
		mutex_lock(&zd->ring_lock);
		slot = ((l->start >> PAGE_SHIFT) + i) % zd->nr_pages;
		if (test_bit(i, l->marked) && zd->pages[slot] == page)
			clear_bit(slot, zd->lent);
		mutex_unlock(&zd->ring_lock);
		put_page(page);
		l->pages[i] = copy;
		__set_bit(i, l->copied);
	}
	return 0;
}

/* Drop what zcdev_lend_take() took when none of it reaches the pipe. */
static void zcdev_lend_undo(struct zcdev *zd, struct zcdev_lend *l)
{
	unsigned int i;

	/* Slots stay marked lent: zcdev_ring_own_slot() clears them. */
	for (i = 0; i < l->nr; i++)
		put_page(l->pages[i]);
}

/*
 * Lend [tail, tail + len) to @pipe (which has room for l->nr buffers) and,
 * unless it is sendfile's internal pipe, consume it with one tail move
 * and one wake-up. Returns the bytes lent.
 */
static ssize_t zcdev_lend_give(struct zcdev *zd, struct zcdev_lend *l,
			       struct pipe_inode_info *pipe, bool direct)
{
	u64 copied = 0;
	unsigned int i;

	for (i = 0; i < l->nr; i++) {
		/*
		 * Flags 0: never CAN_MERGE. The kernel's nosteal ops outlive
		 * this module, as a user's pipe may; see the top of this file.
		 */
		struct pipe_buffer buf = {
			.page = l->pages[i],
			.offset = zcdev_lend_off(l, i),
			.len = zcdev_lend_len(l, i),
			.ops = direct ? &zcdev_direct_buf_ops :
					&nosteal_pipe_buf_ops,
		};

		if (test_bit(i, l->copied)) {
			copied += buf.len;
			buf.private = ZCDEV_BUF_COPIED;
		}
		buf.private |= buf.len |
			       (unsigned long)zd->id << ZCDEV_BUF_RING_SHIFT;
		if (direct)
			zd->direct.bufs++;
		/* Cannot fail: the caller checked for readers and room. */
		add_to_pipe(pipe, &buf);
	}

	mutex_lock(&zd->ring_lock);
	/* sendfile's buffers count when its output takes from them. */
	if (!direct)
		zd->stats.pages_spliced_out += l->nr;
	if (direct) {
		/* Other consumers wait from now until zcdev_direct_commit(). */
		WRITE_ONCE(zd->direct.task, current);
		zd->direct.lent += l->len;
	} else {
		zd->stats.bytes_spliced_out += l->len - copied;
		zd->stats.bytes_spliced_out_copied += copied;
		zcdev_ring_advance_tail(zd, l->len);
	}
	mutex_unlock(&zd->ring_lock);
	if (!direct)
		trace_zcdev_xfer_splice_out(l->len, l->nr, copied, zd->id);
	return l->len;
}

/* Lend what fits in @pipe now; both ends are locked. */
static ssize_t zcdev_lend(struct zcdev *zd, struct pipe_inode_info *pipe,
			  size_t len, bool direct)
{
	struct zcdev_lend lend, *l = &lend;
	ssize_t done = 0, ret = 0;
	unsigned int room;

	while (len) {
		room = pipe->max_usage - pipe_occupancy(pipe->head, pipe->tail);
		if (!room)
			break;
		ret = zcdev_lend_take(zd, l, len, room);
		if (ret <= 0)
			break;
		zcdev_lend_zap(zd, l);
		ret = zcdev_lend_recheck_pins(zd, l);
		if (ret) {
			zcdev_lend_undo(zd, l);
			break;
		}
		ret = zcdev_lend_give(zd, l, pipe, direct);
		done += ret;
		len -= ret;
	}
	return done ? done : ret;
}

/*
 * ->splice_read: move page references from the ring into @pipe, up to
 * @len bytes or until the pipe is full. Blocks like read() while the ring
 * is empty and has a writer; returns 0 at end of file. Into sendfile's
 * internal pipe nothing is consumed before the output has taken it: see
 * zcdev_is_direct_pipe().
 */
ssize_t zcdev_splice_read(struct file *in, loff_t *ppos,
			  struct pipe_inode_info *pipe, size_t len,
			  unsigned int flags)
{
	struct zcdev *zd = in->private_data;
	bool nonblock = (flags & SPLICE_F_NONBLOCK) || (in->f_flags & O_NONBLOCK);
	bool direct = zcdev_is_direct_pipe(pipe);
	bool again;
	ssize_t ret;

	if (!len)
		return 0;
	if (!pipe->readers) {
		send_sig(SIGPIPE, current, 0);
		return -EPIPE;
	}
	if (pipe_full(pipe->head, pipe->tail, pipe->max_usage))
		return -EAGAIN;	/* the splice core waits for room first */

	/*
	 * An output that said it took everything but kept one of our
	 * buffers: our lend is still on, so lend on after it (no waiting
	 * for data: what is left may all be lent already).
	 */
	if (direct && zd->direct.task == current) {
		ret = zcdev_lock_ends(zd, nonblock);
		if (ret)
			return ret;
		ret = zcdev_lend(zd, pipe, len, true);
		zcdev_unlock_ends(zd);
		return ret;
	}

	/*
	 * A later round of one sendfile(): splice_direct_to_actor() calls
	 * again while its count is not used up, and empties its pipe's
	 * indices (head = tail = 0) only when it returns, so a head past 0
	 * means this call has delivered already. Like read(), it then
	 * returns what it moved instead of waiting for more; 0 rather than
	 * EAGAIN (or a signal's error: what was moved is returned either
	 * way) so that the output pushes what it held back for the rest
	 * (->splice_eof()), as at the end of a file.
	 */
	again = direct && pipe->head;

	do {
		ret = zcdev_wait_readable(zd, nonblock || again);
		if (ret <= 0)
			break;
		/*
		 * Both ends, not only consume_lock: no producer may be part-way
		 * through copying into a page while we lend it, or a fault could
		 * swap the page under it.
		 */
		ret = zcdev_lock_ends(zd, nonblock || again);
		if (ret)
			break;
		ret = zcdev_lend(zd, pipe, len, direct);
		zcdev_unlock_ends(zd);
		/* 0: another reader won the race; wait again. */
	} while (!ret);

	return again && ret < 0 ? 0 : ret;
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
	unsigned int halves;
	struct page *old;

	zcdev_page_adopt(zd, page);
	mutex_lock(&zd->ring_lock);
	slot = zcdev_slot(zd, zd->head);
	old = zd->pages[slot];
	zd->pages[slot] = page;
	clear_bit(slot, zd->lent);
	/*
	 * Lent or not, the old page may still be mapped: a lend with no
	 * writable mapping in sight leaves read-only PTEs in place. No lend
	 * is between marking and zapping (we hold produce_lock, as lenders
	 * do), so the bits say all there is.
	 */
	halves = zcdev_ring_take_mapped(zd, slot);
	mutex_unlock(&zd->ring_lock);

	zcdev_ring_unmap_slot(zd, slot, old, halves);
	zcdev_page_put(zd, old);

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

	/*
	 * sendfile() from a ring, to itself or to another: the bytes at the
	 * source's tail stay lent until the output has taken them, so its
	 * consumers wait meanwhile. Into the same ring they could only be
	 * written by waiting for space their own consumption would free;
	 * two rings sending into each other, both full, would each wait for
	 * the other's lend. Refused; nothing moves. splice() through a pipe
	 * of one's own moves ring to ring (those buffers are consumed at
	 * once).
	 */
	if (buf->ops == &zcdev_direct_buf_ops)
		return -EINVAL;
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
			trace_zcdev_xfer_splice_in(ret, 1, 0, zd->id);
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
		trace_zcdev_xfer_splice_in(ret, 0, ret, zd->id);
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
