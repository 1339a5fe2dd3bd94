/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel differences between the releases zcdev supports (6.1 and 6.12),
 * kept here so that the path code reads as if written for one kernel.
 * Kbuild force-includes this file and defines the ZCDEV_HAVE_* macros by
 * looking for the feature in the kernel's headers, not by version number.
 */
#ifndef _ZCDEV_COMPAT_H
#define _ZCDEV_COMPAT_H

#ifndef __ASSEMBLY__

#include <linux/mm.h>

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

#endif /* __ASSEMBLY__ */
#endif /* _ZCDEV_COMPAT_H */
