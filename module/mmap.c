// SPDX-License-Identifier: GPL-2.0
/*
 * The mmap path: user space reads and writes the ring's pages in place and
 * moves head/tail with ZCDEV_IOC_PRODUCE/CONSUME. Nothing is copied.
 *
 * Layout of the device's offsets:
 *   0                       the meta page (struct zcdev_ring_meta), read-only
 *   PAGE_SIZE * (1 + i)     ring page (i % nr_pages), for i < 2 * nr_pages
 *
 * The data pages appear twice in a row, so a mapping of 2 * ring_bytes
 * sees every span of the ring, wrapped or not, as one contiguous range.
 *
 * Pages are handed out by a .fault handler with a page reference (never as
 * raw PFNs), and every open file shares one address_space, so that
 * unmap_mapping_range() can take any page away from every process that
 * maps it. A fault that finds no page raises SIGBUS, as a file mapping
 * does past its end after truncation.
 */
#include <linux/mm.h>
#include <linux/pagemap.h>

#include "zcdev.h"
#include "trace.h"

/*
 * Pages mapped with a fault on a data page: an mmap producer that comes
 * round to pages splice out lent (and so zapped) takes one fault per
 * window instead of one per page. The kernel maps around only on read
 * faults (->map_pages) and a producer writes, so the fault handler does
 * it itself, with vm_insert_pages() (hence VM_MIXEDMAP). The window is
 * aligned, not "the pages after": memcpy() copies backwards when source
 * and destination share their offset within a page (glibc does, to dodge
 * 4K aliasing), and a window that only looks ahead would then map
 * nothing the copy still needs.
 */
#define ZCDEV_FAULT_AROUND	32

/*
 * May the page of @slot be mapped on speculation? As for the faulting
 * page (zcdev_ring_own_slot()), except that a page a pipe still holds is
 * skipped, not replaced: a fresh page and a copy are worth it for a page
 * the producer writes now, not for one it might write later.
 */
static struct page *zcdev_around_page(struct zcdev *zd, unsigned int slot)
{
	return zcdev_ring_slot_ours(zd, slot) ? NULL : zd->pages[slot];
}

/*
 * Map @nr pages at consecutive addresses from @addr. vm_insert_pages()
 * stops at an address that has a PTE already: go on after it, so that a
 * window whose lent pages came back between mapped ones gets them all.
 * mmap_faults counts every page the fault path maps.
 */
static void zcdev_fault_around_run(struct zcdev *zd, struct vm_area_struct *vma,
				   unsigned long addr, struct page **pages,
				   unsigned long nr)
{
	unsigned long i = 0, left;
	int err;

	while (i < nr) {
		left = nr - i;
		err = vm_insert_pages(vma, addr + i * PAGE_SIZE, pages + i,
				      &left);
		zd->stats.mmap_faults += nr - i - left;
		if (err != -EBUSY)
			break;
		/* left counts the busy page: go on after it. */
		i = nr - left + 1;
	}
}

/*
 * Map the data pages of the aligned window around the fault, but the
 * faulting one (the core maps that), in runs of consecutive addresses.
 * All under ring_lock: a lender marks pages lent under it too, so it
 * either comes first (and the page is skipped) or finds the PTE in place
 * and its bit in zd->mapped set, and zaps it; resize cannot swap the
 * pages meanwhile. vm_insert_pages() touches page tables, never user
 * memory, and stops at an address that has a PTE already.
 */
static void zcdev_fault_around(struct zcdev *zd, struct vm_fault *vmf)
{
	struct vm_area_struct *vma = vmf->vma;
	unsigned long fault = vmf->address & PAGE_MASK;
	unsigned long size = ZCDEV_FAULT_AROUND * PAGE_SIZE;
	unsigned long start = max(vma->vm_start, ALIGN_DOWN(fault, size));
	unsigned long end = min(vma->vm_end, ALIGN_DOWN(fault, size) + size);
	struct page *run[ZCDEV_FAULT_AROUND];
	unsigned long addr, run_addr = 0, nr = 0;
	struct page *page;
	long dev;

	lockdep_assert_held(&zd->ring_lock);

	for (addr = start; addr < end; addr += PAGE_SIZE) {
		/* The device page at addr: data pages are 1 .. 2 * nr_pages. */
		dev = vmf->pgoff + ((long)(addr - fault) >> PAGE_SHIFT);
		page = NULL;
		if (addr != fault && dev >= 1 && dev <= 2L * zd->nr_pages)
			page = zcdev_around_page(zd, (dev - 1) % zd->nr_pages);
		if (page) {
			__set_bit(dev - 1, zd->mapped);
			if (!nr)
				run_addr = addr;
			run[nr++] = page;
			if (addr + PAGE_SIZE < end)
				continue;
		}
		if (nr)
			zcdev_fault_around_run(zd, vma, run_addr, run, nr);
		nr = 0;
	}
}

static vm_fault_t zcdev_fault(struct vm_fault *vmf)
{
	struct zcdev *zd = vmf->vma->vm_file->private_data;
	unsigned int slot;
	struct page *page;
	u64 index = 0;
	int ret;

	mutex_lock(&zd->ring_lock);
	if (vmf->pgoff == 0) {
		page = zd->meta_page;
	} else {
		index = vmf->pgoff - 1;
		if (index >= 2ULL * zd->nr_pages) {
			zd->stats.sigbus_faults++;
			mutex_unlock(&zd->ring_lock);
			return VM_FAULT_SIGBUS;
		}
		slot = index % zd->nr_pages;
		/*
		 * A page a pipe still holds must not become writable again;
		 * a poisoned page must not be mapped at all (EIO).
		 */
		ret = zcdev_ring_own_slot(zd, slot);
		if (ret) {
			mutex_unlock(&zd->ring_lock);
			return ret == -EIO ? VM_FAULT_HWPOISON : VM_FAULT_OOM;
		}
		page = zd->pages[slot];
		/* Before the PTE exists: see zcdev_lend_take(). */
		__set_bit(index, zd->mapped);
		zd->stats.mmap_faults++;
	}
	get_page(page);
	/*
	 * Hold the page lock until the PTE is in place (VM_FAULT_LOCKED):
	 * whoever takes this page out of the ring locks it before zapping,
	 * so it either finds our PTE or we find the slot already changed.
	 */
	lock_page(page);
	if (vmf->pgoff)
		zcdev_fault_around(zd, vmf);
	mutex_unlock(&zd->ring_lock);

	/*
	 * Poisoned while we waited for the lock: answer SIGBUS here. Handed
	 * back locked, the core's own poison check would unmap it through
	 * page->mapping, which our pages do not have (an oops on 6.1-6.12).
	 */
	if (unlikely(zcdev_page_poisoned(page))) {
		unlock_page(page);
		put_page(page);
		return VM_FAULT_HWPOISON;
	}
	vmf->page = page;
	return VM_FAULT_LOCKED;
}

/* Does @vma map a data page, and could it be made to write one? */
static bool zcdev_vma_may_write_data(struct vm_area_struct *vma)
{
	return (vma->vm_flags & VM_MAYWRITE) &&
	       vma->vm_pgoff + vma_pages(vma) > 1;
}

/* A copy of a counted vma (fork, mremap) is counted too. */
static void zcdev_vm_open(struct vm_area_struct *vma)
{
	struct zcdev *zd = vma->vm_file->private_data;

	if (zcdev_vma_may_write_data(vma))
		atomic_inc(&zd->writable_maps);
}

static void zcdev_vm_close(struct vm_area_struct *vma)
{
	struct zcdev *zd = vma->vm_file->private_data;

	if (zcdev_vma_may_write_data(vma))
		atomic_dec(&zd->writable_maps);
}

/*
 * Splitting a mapping would let part of it be unmapped or re-protected
 * behind our back (a writable piece of the meta page, say); refuse it.
 */
static int zcdev_may_split(struct vm_area_struct *vma, unsigned long addr)
{
	return -EINVAL;
}

static const struct vm_operations_struct zcdev_vm_ops = {
	.open = zcdev_vm_open,
	.close = zcdev_vm_close,
	.fault = zcdev_fault,
	.may_split = zcdev_may_split,
};

int zcdev_mmap(struct file *file, struct vm_area_struct *vma)
{
	/*
	 * Data offsets stop at data_offset + 2 * max ring; a mapping that
	 * reaches past that is refused, as well as one that starts there.
	 */
	u64 limit = 1 + 2ULL * zcdev_max_ring_pages;

	/*
	 * A private mapping would copy ring pages on write and then keep
	 * showing the copy: the ring would no longer be shared.
	 */
	if (!(vma->vm_flags & VM_MAYSHARE))
		return -EINVAL;
	if (vma->vm_pgoff >= limit || vma_pages(vma) > limit - vma->vm_pgoff)
		return -EINVAL;
	if (vma->vm_pgoff == ZCDEV_META_OFFSET) {
		/* The meta page is the kernel's word; user space only reads it. */
		if (vma->vm_flags & (VM_WRITE | VM_EXEC))
			return -EACCES;
		vm_flags_clear(vma, VM_MAYWRITE | VM_MAYEXEC);
	}

	/*
	 * VM_MIXEDMAP: the fault handler maps pages around a fault with
	 * vm_insert_pages(); they are ordinary pages with references and
	 * rmap, which unmap_mapping_range() removes like any other.
	 * VM_DONTEXPAND: mremap() cannot grow the mapping. Fork is fine:
	 * with VM_MIXEDMAP, fork copies the parent's PTEs (vma_needs_copy()),
	 * each with its page reference; the child's vma is on the same
	 * address_space, and zd->mapped is per device page, so the next zap
	 * reaches the child's PTEs too.
	 */
	vm_flags_set(vma, VM_DONTEXPAND | VM_DONTDUMP | VM_MIXEDMAP);
	vma->vm_ops = &zcdev_vm_ops;
	/* mmap() does not call ->open for the vma it creates. */
	zcdev_vm_open(vma);
	return 0;
}
