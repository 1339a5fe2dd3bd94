// SPDX-License-Identifier: GPL-2.0
/*
 * The page ring: allocation, resize and reset, the head/tail counters and
 * the rules that keep a page safe once it has been handed to a pipe.
 */

#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/poll.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>

#include "zcdev.h"
#include "trace.h"

/*
 * The pages of every ring's layout together (sum of nr_pages), bound by
 * max_total_pages: what one user of the control device and RESIZE can
 * make the module hold, whatever the number of rings. Pages a pipe keeps
 * past a swap are the pipe's, charged to whoever made the ring (memcg),
 * and not counted here.
 */
static atomic_long_t zcdev_total_pages;

/* A ring goes from @old_nr pages to @new_nr: -ENOSPC past the bound. */
int zcdev_total_pages_reserve(u32 old_nr, u32 new_nr)
{
	long delta = (long)new_nr - (long)old_nr;
	long cur = atomic_long_read(&zcdev_total_pages);

	if (delta <= 0) {
		atomic_long_add(delta, &zcdev_total_pages);
		return 0;
	}
	do {
		if (cur + delta > READ_ONCE(zcdev_max_total_pages))
			return -ENOSPC;
	} while (!atomic_long_try_cmpxchg(&zcdev_total_pages, &cur,
					  cur + delta));
	return 0;
}

/*
 * Ring pages are zeroed: free space is visible through the mapping, and
 * must never show what the page held before the kernel gave it to us.
 * They are charged to the memory cgroup of the task that asks for them
 * (GFP_KERNEL_ACCOUNT), like a pipe's pages: a ring is memory a user
 * chose to use. @extra adds flags for the caller, see zcdev_alloc_pages().
 */
struct page *zcdev_page_alloc(struct zcdev *zd, gfp_t extra)
{
	struct page *page = alloc_page(GFP_KERNEL_ACCOUNT | __GFP_ZERO | extra);

	if (page)
		atomic_long_inc(&zd->pages_held);
	return page;
}

/* A page stolen from a pipe joins the ring with the reference it came with. */
void zcdev_page_adopt(struct zcdev *zd, struct page *page)
{
	atomic_long_inc(&zd->pages_held);
}

/*
 * A page a memory error (or MADV_HWPOISON) took away: its bytes are gone
 * and the CPU must not read it. Paths that would touch it fail with EIO
 * (a fault with SIGBUS) and move nothing; a RESET and then a RESIZE give
 * the ring fresh pages. The memory-failure code may mark a page at any
 * moment, so this is a check, not a guarantee, for a real error that
 * strikes while a path is already copying.
 */
bool zcdev_page_poisoned(struct page *page)
{
	return PageHWPoison(page);
}

/* Drop the ring's reference; a pipe or a mapping may still hold others. */
void zcdev_page_put(struct zcdev *zd, struct page *page)
{
	atomic_long_dec(&zd->pages_held);
	put_page(page);
}

/*
 * How many references does @page have beyond @refs of the ring's own and
 * one per PTE that maps it (each PTE holds a reference)? A pin's, an
 * skb's, a GUP user's; *@maps gets the PTEs counted. A transient
 * reference (a fault installing a PTE, compaction) counts too: that costs
 * a fresh page or a copy, never bytes.
 *
 * The PTE count must not be too high, or a holder could hide behind it.
 * A fault or fork takes the page's reference before it adds to the
 * mapcount, a zap takes from the mapcount before it drops the reference
 * (batched, after the TLB flush). So the mapcount is read on both sides
 * of the reference count and the lower one used: a PTE coming or going
 * between the reads is counted in the reference count and not
 * subtracted. Fork's two increments are plain atomics, ordered for this
 * reader only on x86 (the one architecture built and tested); and two
 * PTE changes between the reads, one each way, can still hide a holder
 * (docs/design.md, section 3.3).
 */
int zcdev_page_others(struct page *page, unsigned int refs, int *maps)
{
	int count;

	*maps = zcdev_page_mapcount(page);
	/* Pairs with a fault's reference taken before its mapcount. */
	smp_rmb();
	count = page_ref_count(page);
	/* Pairs with a zap's mapcount dropped before its reference. */
	smp_rmb();
	*maps = min(*maps, zcdev_page_mapcount(page));
	return count - (int)refs - *maps;
}

/* Publish the counters to the meta page; user space reads with acquire. */
static void zcdev_publish(struct zcdev *zd)
{
	lockdep_assert_held(&zd->ring_lock);

	WRITE_ONCE(zd->meta->ring_bytes, zcdev_ring_bytes(zd->nr_pages));
	/*
	 * Release, each one: user space that loads a counter with acquire
	 * also sees everything stored before it; head last, so a consumer
	 * that sees a new head sees the bytes, the tail and the generation.
	 */
	smp_store_release(&zd->meta->generation, zd->generation);
	/* Pairs with the acquire load of tail by an mmap producer. */
	smp_store_release(&zd->meta->tail, zd->tail);
	/* Pairs with the acquire load of head by an mmap consumer. */
	smp_store_release(&zd->meta->head, zd->head);
}

static void zcdev_free_pages(struct zcdev *zd, struct page **pages, u32 nr)
{
	u32 i;

	for (i = 0; i < nr; i++)
		if (pages[i])
			zcdev_page_put(zd, pages[i]);
	kvfree(pages);
}

static struct page **zcdev_alloc_pages(struct zcdev *zd, u32 nr)
{
	struct page **pages;
	u32 i;

	/*
	 * One page at a time: a big ring must not need a high-order block.
	 * __GFP_RETRY_MAYFAIL: a ring bigger than the caller's memory cgroup
	 * allows (or than the machine has) fails with ENOMEM after reclaim,
	 * and never wakes the OOM killer; __GFP_NOWARN: that is an answer to
	 * the caller, not a kernel problem.
	 */
	pages = kvcalloc(max_t(u32, nr, 1), sizeof(*pages),
			 GFP_KERNEL_ACCOUNT | __GFP_RETRY_MAYFAIL | __GFP_NOWARN);
	if (!pages)
		return NULL;
	for (i = 0; i < nr; i++) {
		/* A killed resizer stops allocating (and gets ENOMEM). */
		if (fatal_signal_pending(current))
			pages[i] = NULL;
		else
			pages[i] = zcdev_page_alloc(zd, __GFP_RETRY_MAYFAIL |
						    __GFP_NOWARN);
		if (!pages[i]) {
			zcdev_free_pages(zd, pages, i);
			return NULL;
		}
	}
	return pages;
}

/*
 * zd->lent (a bit per slot) and zd->mapped (a bit per device data page,
 * two per slot) in one allocation, so a resize swaps both or neither.
 */
static unsigned long *zcdev_bitmaps_alloc(u32 nr_pages, gfp_t gfp)
{
	u32 lent_bits = BITS_TO_LONGS(max_t(u32, nr_pages, 1)) * BITS_PER_LONG;

	/* Up to 384 KiB at the largest ring: not one high-order page. */
	return kvcalloc(BITS_TO_LONGS(lent_bits + 2 * nr_pages),
			sizeof(unsigned long), gfp);
}

static unsigned long *zcdev_mapped_bitmap(unsigned long *lent, u32 nr_pages)
{
	return lent + BITS_TO_LONGS(max_t(u32, nr_pages, 1));
}

int zcdev_ring_init(struct zcdev *zd, u32 nr_pages)
{
	zd->meta_page = alloc_page(GFP_KERNEL | __GFP_ZERO);
	if (!zd->meta_page)
		return -ENOMEM;
	zd->meta = page_address(zd->meta_page);
	zd->meta->abi_version = ZCDEV_ABI_VERSION;
	zd->meta->page_size = PAGE_SIZE;

	zd->pages = zcdev_alloc_pages(zd, nr_pages);
	if (!zd->pages)
		goto err_free_meta;
	zd->lent = zcdev_bitmaps_alloc(nr_pages, GFP_KERNEL_ACCOUNT);
	if (!zd->lent)
		goto err_free_pages;
	zd->mapped = zcdev_mapped_bitmap(zd->lent, nr_pages);
	zd->nr_pages = nr_pages;

	mutex_lock(&zd->ring_lock);
	zcdev_publish(zd);
	mutex_unlock(&zd->ring_lock);
	return 0;

err_free_pages:
	zcdev_free_pages(zd, zd->pages, nr_pages);
err_free_meta:
	__free_page(zd->meta_page);
	return -ENOMEM;
}

/* Only after the last file and mapping are gone (control.c). */
void zcdev_ring_free(struct zcdev *zd)
{
	zcdev_free_pages(zd, zd->pages, zd->nr_pages);
	kvfree(zd->lent);
	__free_page(zd->meta_page);
}

/*
 * Copy the bytes of positions [start, start + len) from one ring layout to
 * another. Offsets within a page do not depend on the ring size, so each
 * chunk lands at the same offset of its new page.
 */
static void zcdev_copy_span(struct page **dst, u32 dst_nr,
			    struct page **src, u32 src_nr, u64 start, u64 len)
{
	while (len) {
		unsigned int off = offset_in_page(start);
		unsigned int n = min_t(u64, len, PAGE_SIZE - off);
		u64 pg = start >> PAGE_SHIFT;

		memcpy_page(dst[pg % dst_nr], off, src[pg % src_nr], off, n);
		start += n;
		len -= n;
	}
}

/* Is any page that holds a byte of [start, start + len) poisoned? */
static bool zcdev_span_poisoned(struct zcdev *zd, u64 start, u64 len)
{
	u64 pg, last;

	lockdep_assert_held(&zd->ring_lock);

	if (!len)
		return false;
	last = (start + len - 1) >> PAGE_SHIFT;
	for (pg = start >> PAGE_SHIFT; pg <= last; pg++)
		if (zcdev_page_poisoned(zd->pages[pg % zd->nr_pages]))
			return true;
	return false;
}

/*
 * Which of @slot's two device pages a fault may have mapped since the
 * last zap (bit 0: 1 + slot, bit 1: 1 + slot + nr_pages), taking them off
 * zd->mapped. Whoever takes them must then wait for the faults and zap:
 * zcdev_ring_unmap_slot().
 */
unsigned int zcdev_ring_take_mapped(struct zcdev *zd, unsigned int slot)
{
	unsigned int halves = 0;

	lockdep_assert_held(&zd->ring_lock);

	if (__test_and_clear_bit(slot, zd->mapped))
		halves |= 1;
	if (__test_and_clear_bit(slot + zd->nr_pages, zd->mapped))
		halves |= 2;
	return halves;
}

/*
 * Make the user mappings of @slot in @halves (zcdev_ring_take_mapped())
 * fault again, so the next access sees the slot as it is now. A fault
 * that found @page before the slot changed holds the page lock until its
 * PTE is in place (see zcdev_fault()); taking the lock waits for it, and
 * the zap that follows removes that PTE too. Safe with or without
 * ring_lock: a fault holds the page lock only after it has finished with
 * ring_lock.
 */
void zcdev_ring_unmap_slot(struct zcdev *zd, unsigned int slot,
			   struct page *page, unsigned int halves)
{
	struct address_space *mapping = zcdev_mapping(zd);
	loff_t first = (loff_t)(1 + slot) << PAGE_SHIFT;
	loff_t second = first + zcdev_ring_bytes(zd->nr_pages);

	if (!halves || !mapping_mapped(mapping))
		return;
	lock_page(page);
	unlock_page(page);
	/* The slot appears twice: in each half of the double mapping. */
	if (halves & 1)
		unmap_mapping_range(mapping, first, PAGE_SIZE, 1);
	if (halves & 2)
		unmap_mapping_range(mapping, second, PAGE_SIZE, 1);
}

/*
 * May @slot's page be written into or mapped as it is? 0 if so: never
 * lent, or lent and let go of by the pipe (or whoever held it when tail
 * passed it), in which case the slot stops being lent. -EBUSY while a
 * pipe may still hold it, -EIO if it is poisoned (its bytes can be
 * neither carried over nor written).
 *
 * Once only the ring's reference is left nobody else can reach the page:
 * every mapping holds a reference of its own.
 */
int zcdev_ring_slot_ours(struct zcdev *zd, unsigned int slot)
{
	struct page *page = zd->pages[slot];

	lockdep_assert_held(&zd->ring_lock);

	if (zcdev_page_poisoned(page))
		return -EIO;
	if (!test_bit(slot, zd->lent))
		return 0;
	if (page_ref_count(page) != 1)
		return -EBUSY;
	/* Pairs with the pipe's put_page() after it read the page. */
	smp_rmb();
	clear_bit(slot, zd->lent);
	return 0;
}

/*
 * Make @slot's page safe to write into or to map: if a pipe may still
 * hold it (it went out by splice), either the pipe has let go and the
 * page is ours alone again, or the slot gets a fresh page and the pipe
 * keeps the old one unchanged (docs/design.md, invariant 1). A poisoned
 * page is EIO.
 */
int zcdev_ring_own_slot(struct zcdev *zd, unsigned int slot)
{
	struct page *old = zd->pages[slot];
	struct page *page;
	int ret;

	lockdep_assert_held(&zd->ring_lock);

	ret = zcdev_ring_slot_ours(zd, slot);
	if (ret != -EBUSY)
		return ret;

	page = zcdev_page_alloc(zd, 0);
	if (!page)
		return -ENOMEM;
	/*
	 * The lender marks the slot lent before it can zap the page (it must
	 * drop ring_lock first), so an mmap producer may still be storing to
	 * the old page through a PTE. Zap it before copying: after that no
	 * CPU can store to it, and the copy sees every byte written so far.
	 * Both halves, whatever zd->mapped says: that lender may have taken
	 * the bits already.
	 */
	zcdev_ring_unmap_slot(zd, slot, old, 3);
	/*
	 * The whole page, not only the unread bytes: free space may hold
	 * bytes a producer wrote and has not committed yet, through a PTE
	 * (stopped by the zap) or earlier in the write() that now swaps (a
	 * write of a ring's size comes back round to the slot it began in).
	 * A write() still copying into the old page carries its bytes over
	 * itself, under ring_lock, before head moves (zcdev_write_settle()).
	 */
	copy_highpage(page, old);
	zd->pages[slot] = page;
	clear_bit(slot, zd->lent);
	zd->stats.page_swaps++;
	trace_zcdev_page_swap(slot, page_ref_count(old) - 1, zd->id);
	zcdev_page_put(zd, old);
	return 0;
}

void zcdev_ring_advance_head(struct zcdev *zd, u64 bytes)
{
	lockdep_assert_held(&zd->ring_lock);

	WRITE_ONCE(zd->head, zd->head + bytes);
	zcdev_publish(zd);
	wake_up_interruptible_poll(&zd->readq, EPOLLIN | EPOLLRDNORM);
	kill_fasync(&zd->fasync_readers, SIGIO, POLL_IN);
}

/*
 * Tail is about to pass [pos, pos + bytes) by CONSUME or RESET, the ways
 * a consumer of the mapping moves it: the producer may write there next.
 * A page of those bytes that somebody holds beyond the ring and its
 * mappings (an skb of a send(MSG_ZEROCOPY) from the mapping, a pipe that
 * vmsplice() filled from it) is kept as it is: its slot is marked lent,
 * so the producer's next use of it gets a fresh page if the holder still
 * has the old one (zcdev_ring_own_slot()), and the old page goes with its
 * last holder's reference. Writable PTEs go now, as for a splice lend:
 * an mmap producer would otherwise store through them without a fault.
 * Read-only ones stay; while they are there the slot's next producer
 * gets a fresh page whether or not the holder has let go.
 *
 * read() and splice do not look: they hand bytes by reference to nobody
 * but a pipe, whose slots are lent already, and a write() copying into
 * the page at head holds a reference of its own that would make nearly
 * every read() take that page for a held one.
 *
 * A slot lent already is left alone: its page was judged when it was
 * lent, and the producer will find it lent. Nothing is asked of the
 * consumer but that whatever it handed the page to has taken its
 * reference (send() has returned) before it moves tail
 * (docs/design.md, "Pages held past tail").
 */
static void zcdev_ring_keep_held(struct zcdev *zd, u64 pos, u64 bytes)
{
	bool zap = atomic_read(&zd->writable_maps);
	unsigned int slot, halves;
	struct page *page;
	int others, maps;
	u64 pg, last;

	lockdep_assert_held(&zd->ring_lock);

	if (!bytes)
		return;
	last = (pos + bytes - 1) >> PAGE_SHIFT;
	for (pg = pos >> PAGE_SHIFT; pg <= last; pg++) {
		slot = pg % zd->nr_pages;
		page = zd->pages[slot];
		if (test_bit(slot, zd->lent))
			continue;
		others = zcdev_page_others(page, 1, &maps);
		/*
		 * A pin adds GUP_PIN_COUNTING_BIAS to an order-0 page's count.
		 * A pinned page stays the ring's: its pin is a user of the
		 * mapping (an io_uring fixed buffer over it, an O_DIRECT read
		 * into it) that may write it as a producer, and a fresh page
		 * would cut that producer off from the ring. Its bias hides
		 * any other holder, so a MSG_ZEROCOPY send from a pinned slot
		 * is not kept (docs/design.md, "Pages held past tail"). The
		 * bias is looked for beyond the PTEs' references, so that many
		 * forked mappings do not look like a pin.
		 */
		if (others <= 0 || others >= GUP_PIN_COUNTING_BIAS)
			continue;
		set_bit(slot, zd->lent);
		/*
		 * Under ring_lock, as zcdev_ring_own_slot() zaps (the lock
		 * order is ring_lock, then the page lock, as in the fault).
		 */
		halves = zap ? zcdev_ring_take_mapped(zd, slot) : 0;
		zcdev_ring_unmap_slot(zd, slot, page, halves);
		zd->stats.slots_kept++;
		trace_zcdev_slot_kept(slot, others, maps, zd->id);
	}
}

void zcdev_ring_advance_tail(struct zcdev *zd, u64 bytes)
{
	lockdep_assert_held(&zd->ring_lock);

	WRITE_ONCE(zd->tail, zd->tail + bytes);
	zcdev_publish(zd);
	wake_up_interruptible_poll(&zd->writeq, EPOLLOUT | EPOLLWRNORM);
	kill_fasync(&zd->fasync_writers, SIGIO, POLL_OUT);
}

/*
 * The rule for every wait on another task (data, space, a sendfile's
 * output): no zcdev lock held, so whoever holds one never waits for a
 * task that may itself be waiting for us (docs/design.md, section 5).
 */
static void zcdev_assert_unlocked(struct zcdev *zd)
{
	lockdep_assert_not_held(&zd->produce_lock);
	lockdep_assert_not_held(&zd->consume_lock);
	lockdep_assert_not_held(&zd->ring_lock);
}

/*
 * 1 when there is data, 0 at end of file (empty and no writer), or an
 * error. Sleeps with no zcdev lock held, so resize and reset never wait
 * behind a blocked reader (they do wait for a sendfile() whose output is
 * slow: its lent bytes stay at tail until the output has taken them).
 */
int zcdev_wait_readable(struct zcdev *zd, bool nonblock)
{
	int ret;

	for (;;) {
		bool writer = zcdev_has_writer(zd);

		if (zcdev_used(zd))
			return 1;
		if (!writer)
			return 0;
		if (nonblock)
			return -EAGAIN;
		zcdev_assert_unlocked(zd);
		ret = wait_event_interruptible(zd->readq, zcdev_used(zd) ||
					       !atomic_read(&zd->writers));
		if (ret)
			return ret;
	}
}

/* 1 when there is space, or an error; a ring of size 0 never has any. */
int zcdev_wait_writable(struct zcdev *zd, bool nonblock)
{
	int ret;

	for (;;) {
		if (!READ_ONCE(zd->nr_pages))
			return -ENOSPC;
		if (zcdev_space(zd))
			return 1;
		if (nonblock)
			return -EAGAIN;
		zcdev_assert_unlocked(zd);
		ret = wait_event_interruptible(zd->writeq, zcdev_space(zd) ||
					       !READ_ONCE(zd->nr_pages));
		if (ret)
			return ret;
	}
}

/*
 * Until no other task's sendfile() has bytes lent at tail: those are the
 * next bytes of the stream until its output has taken them (or not), and
 * that output may be a socket whose peer never reads. So the wait holds
 * no zcdev lock, whatever the caller is after; with @nonblock it is
 * -EAGAIN instead. The lender clears direct.task and wakes readq when its
 * last pipe buffer comes back.
 */
static int zcdev_wait_direct(struct zcdev *zd, bool nonblock)
{
	if (!zcdev_direct_busy(zd))
		return 0;
	if (nonblock)
		return -EAGAIN;
	zcdev_assert_unlocked(zd);
	if (wait_event_interruptible(zd->readq, !zcdev_direct_busy(zd)))
		return -ERESTARTSYS;
	return 0;
}

/* consume_lock, once no other task's sendfile() has bytes lent at tail. */
int zcdev_lock_consume(struct zcdev *zd, bool nonblock)
{
	int ret;

	for (;;) {
		ret = zcdev_wait_direct(zd, nonblock);
		if (ret)
			return ret;
		if (mutex_lock_interruptible(&zd->consume_lock))
			return -ERESTARTSYS;
		/* A lend starts only under consume_lock: this holds. */
		if (!zcdev_direct_busy(zd))
			return 0;
		mutex_unlock(&zd->consume_lock);
	}
}

/* consume_lock now, or -EAGAIN: for a caller that must not sleep at all. */
int zcdev_trylock_consume(struct zcdev *zd)
{
	if (!mutex_trylock(&zd->consume_lock))
		return -EAGAIN;
	if (!zcdev_direct_busy(zd))
		return 0;
	mutex_unlock(&zd->consume_lock);
	return -EAGAIN;
}

/*
 * Both ends stopped: no byte moves while the ring changes shape, and no
 * producer is part-way through a page that splice out is about to lend.
 * The wait for another task's sendfile comes before produce_lock, never
 * under it: a producer must not wait for a socket's peer to read.
 */
int zcdev_lock_ends(struct zcdev *zd, bool nonblock)
{
	int ret;

	for (;;) {
		ret = zcdev_wait_direct(zd, nonblock);
		if (ret)
			return ret;
		if (mutex_lock_interruptible(&zd->produce_lock))
			return -ERESTARTSYS;
		if (mutex_lock_interruptible(&zd->consume_lock)) {
			mutex_unlock(&zd->produce_lock);
			return -ERESTARTSYS;
		}
		/* A sendfile may have lent since the wait; none can now. */
		if (!zcdev_direct_busy(zd))
			return 0;
		mutex_unlock(&zd->consume_lock);
		mutex_unlock(&zd->produce_lock);
	}
}

void zcdev_unlock_ends(struct zcdev *zd)
{
	mutex_unlock(&zd->consume_lock);
	mutex_unlock(&zd->produce_lock);
}

/* The ring changed shape: whoever waits for data or space looks again. */
static void zcdev_wake_all(struct zcdev *zd)
{
	wake_up_interruptible_poll(&zd->readq, EPOLLIN | EPOLLRDNORM);
	wake_up_interruptible_poll(&zd->writeq, EPOLLOUT | EPOLLWRNORM);
}

/*
 * Zap every data mapping. Faults that already hold one of @pages finish
 * first (they hold its lock), so no PTE to a page the ring no longer has
 * survives; this is the truncation-style teardown behind SIGBUS.
 */
static void zcdev_unmap_all(struct zcdev *zd, struct page **pages, u32 nr)
{
	u32 i;

	for (i = 0; i < nr && mapping_mapped(zcdev_mapping(zd)); i++) {
		lock_page(pages[i]);
		unlock_page(pages[i]);
	}
	unmap_mapping_range(zcdev_mapping(zd), PAGE_SIZE, 0, 1);
}

/*
 * Change the number of pages. The unread bytes are kept (copied into the
 * new layout, since a byte's slot depends on the ring size); if they do
 * not fit the resize fails with EBUSY and nothing changes. Every mapping
 * is zapped: offsets that still exist fault onto the new pages, the rest
 * raise SIGBUS.
 */
int zcdev_ring_resize(struct zcdev *zd, u32 nr_pages)
{
	struct page **pages, **old_pages;
	unsigned long *lent, *old_lent;
	u32 old_nr;
	int ret;

	if (nr_pages > zcdev_max_ring_pages)
		return -EINVAL;
	/* One resize allocates at a time: a new ring can be 4 GiB. */
	if (mutex_lock_interruptible(&zd->resize_lock))
		return -ERESTARTSYS;
	/* So that a hopeless resize allocates nothing; checked again below. */
	mutex_lock(&zd->ring_lock);
	ret = zd->head - zd->tail > zcdev_ring_bytes(nr_pages) ? -EBUSY : 0;
	mutex_unlock(&zd->ring_lock);
	if (ret)
		goto out_resize;

	/*
	 * Allocate before locking the ends: producers and consumers go on
	 * while the pages are found and charged.
	 */
	/*
	 * max_total_pages bounds ring sizes: the larger of the two counts
	 * until the old layout is freed, so that nothing another ring
	 * reserves meanwhile depends on this resize succeeding.
	 */
	old_nr = READ_ONCE(zd->nr_pages);
	ret = zcdev_total_pages_reserve(old_nr, max(old_nr, nr_pages));
	if (ret)
		goto out_resize;
	ret = -ENOMEM;
	pages = zcdev_alloc_pages(zd, nr_pages);
	if (!pages)
		goto err_unreserve;
	lent = zcdev_bitmaps_alloc(nr_pages, GFP_KERNEL_ACCOUNT |
				   __GFP_RETRY_MAYFAIL | __GFP_NOWARN);
	if (!lent)
		goto err_free_pages;

	ret = zcdev_lock_ends(zd, false);
	if (ret)
		goto err_free_lent;
	/* head and tail cannot move now: both ends are locked. */
	if (zd->head - zd->tail > zcdev_ring_bytes(nr_pages)) {
		ret = -EBUSY;
		goto err_unlock;
	}

	mutex_lock(&zd->ring_lock);
	if (zcdev_span_poisoned(zd, zd->tail, zd->head - zd->tail)) {
		mutex_unlock(&zd->ring_lock);
		ret = -EIO;
		goto err_unlock;
	}
	if (nr_pages)
		zcdev_copy_span(pages, nr_pages, zd->pages, zd->nr_pages,
				zd->tail, zd->head - zd->tail);
	old_pages = zd->pages;
	old_lent = zd->lent;
	zd->pages = pages;
	zd->lent = lent;
	zd->mapped = zcdev_mapped_bitmap(lent, nr_pages);
	zd->nr_pages = nr_pages;
	zd->generation++;
	zcdev_publish(zd);
	mutex_unlock(&zd->ring_lock);

	zcdev_unmap_all(zd, old_pages, old_nr);
	trace_zcdev_resize(old_nr, nr_pages, zd->generation, zd->id);
	zcdev_unlock_ends(zd);
	zcdev_wake_all(zd);
	/*
	 * Nothing reaches the old pages now but pipes, which hold their own
	 * references: free them with the ends unlocked.
	 */
	zcdev_free_pages(zd, old_pages, old_nr);
	kvfree(old_lent);
	zcdev_total_pages_reserve(max(old_nr, nr_pages), nr_pages);
	mutex_unlock(&zd->resize_lock);
	return 0;

err_unlock:
	zcdev_unlock_ends(zd);
	zcdev_wake_all(zd);
err_free_lent:
	kvfree(lent);
err_free_pages:
	zcdev_free_pages(zd, pages, nr_pages);
err_unreserve:
	zcdev_total_pages_reserve(max(old_nr, nr_pages), old_nr);
out_resize:
	mutex_unlock(&zd->resize_lock);
	return ret;
}

/*
 * Drop every unread byte. head and tail stay monotonic: both move to the
 * next page boundary, so a reset ring starts on a whole page (which is
 * what lets the next splice in steal pages). Mappings are zapped so that
 * they re-fault onto the pages the ring has now.
 */
int zcdev_ring_reset(struct zcdev *zd)
{
	int ret = zcdev_lock_ends(zd, false);

	if (ret)
		return ret;
	mutex_lock(&zd->ring_lock);
	/* The unread bytes are dropped: tail passes them too. */
	zcdev_ring_keep_held(zd, zd->tail, zd->head - zd->tail);
	WRITE_ONCE(zd->head, round_up(zd->head, PAGE_SIZE));
	WRITE_ONCE(zd->tail, zd->head);
	zd->generation++;
	zcdev_publish(zd);
	mutex_unlock(&zd->ring_lock);
	unmap_mapping_range(zcdev_mapping(zd), PAGE_SIZE, 0, 1);
	trace_zcdev_resize(zd->nr_pages, zd->nr_pages, zd->generation,
			   zd->id);
	zcdev_unlock_ends(zd);
	zcdev_wake_all(zd);
	return 0;
}

/*
 * An mmap producer wrote @bytes at head through its mapping: commit them.
 * More than the free space is refused and nothing moves.
 */
int zcdev_ring_produce(struct zcdev *zd, u64 bytes)
{
	int ret = 0;

	if (mutex_lock_interruptible(&zd->produce_lock))
		return -ERESTARTSYS;
	mutex_lock(&zd->ring_lock);
	if (bytes > zcdev_ring_bytes(zd->nr_pages) - (zd->head - zd->tail)) {
		ret = -EINVAL;
	} else if (bytes) {
		zd->stats.bytes_produced_mmap += bytes;
		zcdev_ring_advance_head(zd, bytes);
		trace_zcdev_xfer_produce(bytes, 0, 0, zd->id);
	}
	mutex_unlock(&zd->ring_lock);
	mutex_unlock(&zd->produce_lock);
	return ret;
}

/* An mmap consumer has read @bytes at tail in place: release them. */
int zcdev_ring_consume(struct zcdev *zd, u64 bytes)
{
	int ret;

	ret = zcdev_lock_consume(zd, false);
	if (ret)
		return ret;
	mutex_lock(&zd->ring_lock);
	if (bytes > zd->head - zd->tail) {
		ret = -EINVAL;
	} else if (bytes) {
		zd->stats.bytes_consumed_mmap += bytes;
		zcdev_ring_keep_held(zd, zd->tail, bytes);
		zcdev_ring_advance_tail(zd, bytes);
		trace_zcdev_xfer_consume(bytes, 0, 0, zd->id);
	}
	mutex_unlock(&zd->ring_lock);
	mutex_unlock(&zd->consume_lock);
	return ret;
}
