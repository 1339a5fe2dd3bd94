// SPDX-License-Identifier: GPL-2.0
/*
 * zcdev: /dev/zcdev, a kernel page ring that user space fills and drains
 * through every Linux data path side by side. Start reading at
 * zcdev_fops below: each entry leads to one path, and each path to the
 * page it copies, maps or moves. control.c makes more rings than the one,
 * each a device of its own (/dev/zcdevN) with the same zcdev_fops.
 */

#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/poll.h>

#include "zcdev.h"

static unsigned int ring_pages = 256;
module_param(ring_pages, uint, 0444);
MODULE_PARM_DESC(ring_pages,
		 "Pages in each ring when it is made (at load or by /dev/zcdev-control), in pages of PAGE_SIZE bytes: 0 to max_ring_pages (default 256, 1 MiB of 4 KiB pages)");

static unsigned int devices = 1;
module_param(devices, uint, 0444);
MODULE_PARM_DESC(devices,
		 "Rings made at load: /dev/zcdev, then /dev/zcdev1 and on; 0 to 64 (default 1; /dev/zcdev-control adds and removes more)");

/*
 * max_ring_pages is checked when it is set: a bound the ring's own arrays
 * could not honour (kvcalloc() refuses, with a warning, above INT_MAX
 * bytes) fails the load with EINVAL instead of the first big RESIZE.
 */
static int zcdev_set_max_ring_pages(const char *val,
				    const struct kernel_param *kp)
{
	unsigned int n;
	int ret;

	ret = kstrtouint(val, 0, &n);
	if (ret)
		return ret;
	if (n > ZCDEV_MAX_RING_PAGES_LIMIT)
		return -EINVAL;
	*(unsigned int *)kp->arg = n;
	return 0;
}

static const struct kernel_param_ops zcdev_max_ring_pages_ops = {
	.set = zcdev_set_max_ring_pages,
	.get = param_get_uint,
};

unsigned int zcdev_max_ring_pages = 65536;
module_param_cb(max_ring_pages, &zcdev_max_ring_pages_ops,
		&zcdev_max_ring_pages, 0444);
MODULE_PARM_DESC(max_ring_pages,
		 "Upper bound on each ring for load and ZCDEV_IOC_RESIZE, in pages of PAGE_SIZE bytes: 0 to 1048576 (default 65536, 256 MiB of 4 KiB pages)");

/*
 * The pages of all rings together. Read-only once loaded, like the other
 * bounds: a bound lowered under rings already bigger would leave them
 * past it.
 */
unsigned int zcdev_max_total_pages = 262144;
module_param_named(max_total_pages, zcdev_max_total_pages, uint, 0444);
MODULE_PARM_DESC(max_total_pages,
		 "Upper bound on the pages of all rings together, for load, ZCDEV_IOC_RESIZE and ZCDEV_CTL_ADD, in pages of PAGE_SIZE bytes (default 262144, 1 GiB of 4 KiB pages)");

/*
 * mode is checked when it is set, like max_ring_pages: the misc core
 * would pass bits above 0777 (setuid, sticky, file type bits) on to the
 * device node unchecked, so they fail the load with EINVAL instead.
 */
static int zcdev_set_mode(const char *val, const struct kernel_param *kp)
{
	u16 m;
	int ret;

	ret = kstrtou16(val, 0, &m);
	if (ret)
		return ret;
	if (m & ~0777)
		return -EINVAL;
	*(ushort *)kp->arg = m;
	return 0;
}

static const struct kernel_param_ops zcdev_mode_ops = {
	.set = zcdev_set_mode,
	.get = param_get_ushort,
};

ushort zcdev_mode = 0600;
module_param_cb(mode, &zcdev_mode_ops, &zcdev_mode, 0444);
MODULE_PARM_DESC(mode,
		 "Permission bits (octal) of every ring's node when no udev rule sets them: 0000 to 0777 (default 0600; /dev/zcdev-control is always 0600)");

static int zcdev_open(struct inode *inode, struct file *file)
{
	/* misc_open() left our miscdevice here, and holds misc_mtx. */
	struct zcdev *zd = container_of(file->private_data, struct zcdev, misc);

	/* A ring being removed takes no new file (control.c). */
	spin_lock(&zcdev_open_lock);
	if (zd->dying) {
		spin_unlock(&zcdev_open_lock);
		return -ENODEV;
	}
	zd->opens++;
	spin_unlock(&zcdev_open_lock);

	file->private_data = zd;
	/* Every open shares one address_space: see struct zcdev. */
	file->f_mapping = zcdev_mapping(zd);
	/*
	 * A stream has no positions: pread(), pwrite(), and sendfile() or
	 * splice() given an offset fail with ESPIPE, as on a pipe. FMODE_LSEEK
	 * stays (noop_llseek): sendfile() with no offset needs it, see
	 * zcdev_fops.
	 */
	file->f_mode &= ~(FMODE_PREAD | FMODE_PWRITE);
	/*
	 * read() and write() honour IOCB_NOWAIT (rw.c): RWF_NOWAIT works,
	 * and io_uring tries them inline, then polls, instead of handing
	 * every one to an io-wq worker that may sleep.
	 */
	file->f_mode |= FMODE_NOWAIT;
	if (file->f_mode & FMODE_WRITE)
		atomic_inc(&zd->writers);
	return 0;
}

static int zcdev_release(struct inode *inode, struct file *file)
{
	struct zcdev *zd = file->private_data;

	/*
	 * The last writer gone: blocked readers wake up to end of file.
	 * (The VFS has already taken this file off the O_ASYNC lists.)
	 */
	if ((file->f_mode & FMODE_WRITE) && atomic_dec_and_test(&zd->writers)) {
		wake_up_interruptible_poll(&zd->readq, EPOLLHUP);
		kill_fasync(&zd->fasync_readers, SIGIO, POLL_HUP);
	}
	/* Last: the ring may be removed from here on. */
	spin_lock(&zcdev_open_lock);
	zd->opens--;
	spin_unlock(&zcdev_open_lock);
	return 0;
}

/*
 * EPOLLIN with data (none while another task's sendfile() has bytes lent
 * at tail); EPOLLHUP when empty with no writer (writers loaded
 * first, as in zcdev_wait_readable()); EPOLLOUT with space. A ring of 0
 * pages never has space, and write() fails at once with ENOSPC there: the
 * write side reports EPOLLOUT | EPOLLERR, as a pipe with no reader does,
 * so a poller wakes up and finds the error instead of sleeping forever.
 */
static __poll_t zcdev_poll(struct file *file, poll_table *wait)
{
	struct zcdev *zd = file->private_data;
	__poll_t mask = 0;
	bool writer;

	poll_wait(file, &zd->readq, wait);
	poll_wait(file, &zd->writeq, wait);

	writer = zcdev_has_writer(zd);
	if (zcdev_used(zd)) {
		/*
		 * Nothing is ours to read while another task's sendfile has
		 * bytes lent at tail: a read would get EAGAIN, so a poller
		 * that saw EPOLLIN would spin. The lend's end wakes readq.
		 */
		if (!zcdev_direct_busy(zd))
			mask |= EPOLLIN | EPOLLRDNORM;
	} else if (!writer) {
		mask |= EPOLLHUP;
	}
	if (zcdev_space(zd))
		mask |= EPOLLOUT | EPOLLWRNORM;
	else if (!READ_ONCE(zd->nr_pages) && (file->f_mode & FMODE_WRITE))
		mask |= EPOLLOUT | EPOLLWRNORM | EPOLLERR;
	return mask;
}

/*
 * O_ASYNC: SIGIO (POLL_IN) to readers when data arrives or the last writer
 * goes, (POLL_OUT) to writers when space frees up; the same moments poll
 * reports. A file open for both is on both lists.
 */
static int zcdev_fasync(int fd, struct file *file, int on)
{
	struct zcdev *zd = file->private_data;
	int ret = 0;

	if (file->f_mode & FMODE_READ)
		ret = fasync_helper(fd, file, on, &zd->fasync_readers);
	if ((file->f_mode & FMODE_WRITE) && ret >= 0) {
		ret = fasync_helper(fd, file, on, &zd->fasync_writers);
		/* Only when turning on can this fail: undo the first half. */
		if (ret < 0 && (file->f_mode & FMODE_READ))
			fasync_helper(-1, file, 0, &zd->fasync_readers);
	}
	return ret;
}

/*
 * The paths, side by side. The device is a stream: zcdev_open() refuses
 * positions (ESPIPE). llseek is noop_llseek rather than none because the
 * kernel's sendfile() (splice_direct_to_actor()) refuses an input without
 * FMODE_LSEEK; splice.c makes sure it then loses no byte.
 */
const struct file_operations zcdev_fops = {
	.owner = THIS_MODULE,
	.open = zcdev_open,
	.release = zcdev_release,
	.llseek = noop_llseek,
	.read_iter = zcdev_read_iter,		/* rw.c: copy out */
	.write_iter = zcdev_write_iter,		/* rw.c: copy in */
	.mmap = zcdev_mmap,			/* mmap.c: in place */
	.splice_read = zcdev_splice_read,	/* splice.c: lend pages */
	.splice_write = zcdev_splice_write,	/* splice.c: steal pages */
	.poll = zcdev_poll,
	.fasync = zcdev_fasync,
	.unlocked_ioctl = zcdev_ioctl,		/* ioctl.c */
	.compat_ioctl = compat_ptr_ioctl,
};

static int __init zcdev_init(void)
{
	int ret;

	if (ring_pages > zcdev_max_ring_pages) {
		pr_err("ring_pages=%u is above max_ring_pages=%u\n",
		       ring_pages, zcdev_max_ring_pages);
		return -EINVAL;
	}
	if (devices > ZCDEV_MAX_RINGS) {
		pr_err("devices=%u is above %u\n", devices, ZCDEV_MAX_RINGS);
		return -EINVAL;
	}
	if ((u64)devices * ring_pages > zcdev_max_total_pages) {
		pr_err("devices=%u rings of ring_pages=%u are above max_total_pages=%u\n",
		       devices, ring_pages, zcdev_max_total_pages);
		return -EINVAL;
	}

	ret = zcdev_control_init(devices, ring_pages);
	if (ret)
		return ret;
	pr_info("version %s, %u ring%s of %u pages of %lu bytes\n",
		ZCDEV_VERSION, devices, devices == 1 ? "" : "s", ring_pages,
		PAGE_SIZE);
	return 0;
}

/* Every ring goes, each checked for pages it took and never gave back. */
static void __exit zcdev_exit(void)
{
	zcdev_control_exit();
}

module_init(zcdev_init);
module_exit(zcdev_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("The zcdev developers");
MODULE_DESCRIPTION("A page ring exposed through every Linux data path: read/write, mmap, splice, sendfile");
MODULE_VERSION(ZCDEV_VERSION);
