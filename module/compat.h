/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel differences between the releases zcdev supports (6.1 to 7.3),
 * kept here so that the path code reads as if written for one kernel.
 * Kbuild force-includes this file and defines the ZCDEV_HAVE_* macros by
 * looking for the feature in the kernel's headers, not by version number.
 * Outside the tested range the build stops (module/Kbuild): an untested
 * kernel must not get a module that merely happens to compile.
 */
#ifndef _ZCDEV_COMPAT_H
#define _ZCDEV_COMPAT_H

#ifndef __ASSEMBLY__

#include <linux/mm.h>
#include <linux/slab.h>

/*
 * 6.3 made vma->vm_flags read-only and added accessors that take the
 * mmap lock into account; before that the field was written directly.
 */
#ifndef ZCDEV_HAVE_VM_FLAGS_SET
static inline void vm_flags_set(struct vm_area_struct *vma, vm_flags_t flags)
{
	vma->vm_flags |= flags;
}

static inline void vm_flags_clear(struct vm_area_struct *vma, vm_flags_t flags)
{
	vma->vm_flags &= ~flags;
}
#endif

/*
 * 6.18 wrapped the page flags word in memdesc_flags_t (page->flags.f), so
 * that memory descriptors other than struct page can share it; before, it
 * was a plain unsigned long.
 */
static inline unsigned long zcdev_page_flags(const struct page *page)
{
#ifdef ZCDEV_HAVE_MEMDESC_FLAGS
	return page->flags.f;
#else
	return page->flags;
#endif
}

/*
 * Newer kernels (Debian's 6.12 and later) have typed allocators
 * (kzalloc_obj() and kin) that size the allocation from the pointer's
 * type, and checkpatch asks for them; 6.1 spells the size out.
 */
#ifndef kzalloc_obj
#define kzalloc_obj(P, gfp)	kzalloc(sizeof(P), gfp)
#endif

/*
 * How many PTEs map an order-0 page. folio_mapcount() is inline from 6.9;
 * before, it is out of line and not exported, and page_mapcount() (gone
 * by 7.3) reads the same count inline for a page that is not compound.
 */
static inline int zcdev_page_mapcount(struct page *page)
{
#ifdef ZCDEV_HAVE_INLINE_FOLIO_MAPCOUNT
	return folio_mapcount(page_folio(page));
#else
	return page_mapcount(page);
#endif
}

#endif /* __ASSEMBLY__ */
#endif /* _ZCDEV_COMPAT_H */
