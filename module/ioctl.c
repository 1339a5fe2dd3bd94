// SPDX-License-Identifier: GPL-2.0
/*
 * ioctl: the control plane. Every argument is copied in once and checked
 * before anything changes; structures are zeroed before they are copied
 * out, so reserved fields never carry kernel memory.
 */
#include <linux/fs.h>
#include <linux/uaccess.h>

#include "zcdev.h"

static long zcdev_get_info(struct zcdev *zd, void __user *argp)
{
	struct zcdev_info info;

	memset(&info, 0, sizeof(info));
	info.abi_version = ZCDEV_ABI_VERSION;
	info.page_size = PAGE_SIZE;
	info.max_ring_pages = zcdev_max_ring_pages;
	info.meta_offset = ZCDEV_META_OFFSET;
	info.data_offset = PAGE_SIZE;
	info.ring = zd->id;
	info.max_total_pages = READ_ONCE(zcdev_max_total_pages);
	mutex_lock(&zd->ring_lock);
	info.ring_pages = zd->nr_pages;
	info.ring_bytes = zcdev_ring_bytes(zd->nr_pages);
	mutex_unlock(&zd->ring_lock);

	return copy_to_user(argp, &info, sizeof(info)) ? -EFAULT : 0;
}

static long zcdev_get_stats(struct zcdev *zd, void __user *argp)
{
	struct zcdev_stats st;

	zcdev_stats_snapshot(zd, &st);
	return copy_to_user(argp, &st, sizeof(st)) ? -EFAULT : 0;
}

long zcdev_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct zcdev *zd = file->private_data;
	void __user *argp = (void __user *)arg;
	u64 bytes;
	u32 pages;

	switch (cmd) {
	case ZCDEV_IOC_GET_INFO:
		return zcdev_get_info(zd, argp);
	case ZCDEV_IOC_GET_STATS:
		return zcdev_get_stats(zd, argp);
	case ZCDEV_IOC_RESIZE:
		/* Changing the ring is a write to it. */
		if (!(file->f_mode & FMODE_WRITE))
			return -EBADF;
		if (get_user(pages, (u32 __user *)argp))
			return -EFAULT;
		return zcdev_ring_resize(zd, pages);
	case ZCDEV_IOC_RESET:
		if (!(file->f_mode & FMODE_WRITE))
			return -EBADF;
		return zcdev_ring_reset(zd);
	case ZCDEV_IOC_PRODUCE:
		if (!(file->f_mode & FMODE_WRITE))
			return -EBADF;
		if (get_user(bytes, (u64 __user *)argp))
			return -EFAULT;
		return zcdev_ring_produce(zd, bytes);
	case ZCDEV_IOC_CONSUME:
		if (!(file->f_mode & FMODE_READ))
			return -EBADF;
		if (get_user(bytes, (u64 __user *)argp))
			return -EFAULT;
		return zcdev_ring_consume(zd, bytes);
	default:
		return -ENOTTY;
	}
}
