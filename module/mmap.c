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
 * Pages mapped ahead of a fault on a data page: an mmap producer that
 * comes round to pages splice out lent (and so zapped) takes one fault per
 * call's worth of pages instead of one per page. The kernel maps ahead
 * only on read faults (->map_pages) and a producer writes, so the fault
 * handler does it itself, with vm_insert_pages() (hence VM_MIXEDMAP).
 */
#define ZCDEV_FAULT_AHEAD	16

struct zcdev_ahead {
	unsigned long addr;	/* user address of pages[0] */
	unsigned long nr;
	struct page *pages[ZCDEV_FAULT_AHEAD];
};

/*
 * Take the pages that follow device page @index in @vma, under ring_lock
 * and with the faulting page locked: each made safe to map like the
 * faulting one (zcdev_ring_own_slot()), referenced and locked, so that a
 * lender that comes later waits for their PTEs and zaps them. Only
 * trylock: two faults never wait for each other's pages. Stops at the
 * first page that cannot be taken.
 */
static void zcdev_fault_ahead_take(struct zcdev *zd, struct vm_fault *vmf,
				   u64 index, struct zcdev_ahead *ahead)
{
	struct vm_area_struct *vma = vmf->vma;
	unsigned long addr = (vmf->address & PAGE_MASK) + PAGE_SIZE;
	unsigned int slot;
	struct page *page;

	lockdep_assert_held(&zd->ring_lock);

	ahead->addr = addr;
	ahead->nr = 0;
	while (ahead->nr < ZCDEV_FAULT_AHEAD && addr < vma->vm_end &&
	       ++index < 2ULL * zd->nr_pages) {
		slot = index % zd->nr_pages;
		if (zcdev_ring_own_slot(zd, slot))
			break;
		page = zd->pages[slot];
		if (!trylock_page(page))
			break;
		get_page(page);
		ahead->pages[ahead->nr++] = page;
		addr += PAGE_SIZE;
	}
}

/*
 * Map what zcdev_fault_ahead_take() took, where nothing is mapped yet.
 * mmap_faults counts every page the fault path maps, these included.
 */
static void zcdev_fault_ahead_map(struct zcdev *zd, struct vm_fault *vmf,
				  struct zcdev_ahead *ahead)
{
	unsigned long i, left = ahead->nr;

	if (!ahead->nr)
		return;
	/* Stops at the first address that has a PTE already: fine. */
	vm_insert_pages(vmf->vma, ahead->addr, ahead->pages, &left);
	for (i = 0; i < ahead->nr; i++) {
		unlock_page(ahead->pages[i]);
		put_page(ahead->pages[i]);
	}
	/* Not ring_lock: the core still holds the faulting page's lock. */
	atomic64_add(ahead->nr - left, &zd->mapped_ahead);
}

static vm_fault_t zcdev_fault(struct vm_fault *vmf)
{
	struct zcdev *zd = vmf->vma->vm_file->private_data;
	struct zcdev_ahead ahead = { .nr = 0 };
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
		zcdev_fault_ahead_take(zd, vmf, index, &ahead);
	mutex_unlock(&zd->ring_lock);

	zcdev_fault_ahead_map(zd, vmf, &ahead);
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
	 * VM_MIXEDMAP: the fault handler maps pages ahead with
	 * vm_insert_pages(); they are ordinary pages with references and
	 * rmap, which unmap_mapping_range() removes like any other.
	 * VM_DONTEXPAND: mremap() cannot grow the mapping. Fork is fine: the
	 * child's copy of the vma is on the same address_space, faults through
	 * the same handler, and is zapped with the parent's.
	 */
	vm_flags_set(vma, VM_DONTEXPAND | VM_DONTDUMP | VM_MIXEDMAP);
	vma->vm_ops = &zcdev_vm_ops;
	/* mmap() does not call ->open for the vma it creates. */
	zcdev_vm_open(vma);
	return 0;
}
