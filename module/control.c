// SPDX-License-Identifier: GPL-2.0
/*
 * Several rings: the registry, and /dev/zcdev-control, which adds and
 * removes rings at run time as /dev/loop-control does for loop devices.
 * Ring 0 is /dev/zcdev, ring N is /dev/zcdevN; each is a struct zcdev of
 * its own, with its own inode, so that a zap of one ring's pages never
 * reaches another's mappings.
 *
 * Locking: zcdev_control_lock serializes adding and removing, around
 * misc_register() and misc_deregister(), which take misc_mtx; misc_open()
 * calls zcdev_open() with misc_mtx held, and zcdev_open() takes only
 * zcdev_open_lock. So the order is zcdev_control_lock, misc_mtx,
 * zcdev_open_lock, and nothing holds zcdev_open_lock while it sleeps.
 */
#include <linux/debugfs.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mount.h>
#include <linux/pseudo_fs.h>
#include <linux/slab.h>
#include <linux/xarray.h>

#include "zcdev.h"

static DEFINE_MUTEX(zcdev_control_lock);
DEFINE_SPINLOCK(zcdev_open_lock);

/*
 * Ring number to struct zcdev. Written under zcdev_control_lock; read
 * without it (xa_load() is RCU-safe) by the sendfile buffers of splice.c,
 * whose ring cannot go away under them (zcdev_ring_lookup()).
 */
static DEFINE_XARRAY(zcdev_rings);

/* The ring_pages module parameter: the size every new ring starts with. */
static u32 zcdev_new_ring_pages;

/* "zcdv": the magic of the internal filesystem that holds the inodes. */
#define ZCDEV_FS_MAGIC 0x7a636476

static int zcdev_init_fs_context(struct fs_context *fc)
{
	return init_pseudo(fc, ZCDEV_FS_MAGIC) ? 0 : -ENOMEM;
}

/*
 * No .owner: a kernel mount of a filesystem with an owner pins that module,
 * and this one is unmounted by our own exit routine.
 */
static struct file_system_type zcdev_fs_type = {
	.name = "zcdev",
	.init_fs_context = zcdev_init_fs_context,
	.kill_sb = kill_anon_super,
};

static struct vfsmount *zcdev_mnt;

struct zcdev *zcdev_ring_lookup(unsigned int id)
{
	return xa_load(&zcdev_rings, id);
}

/*
 * Ring @id (free in zcdev_rings), with the load-time size, in the registry
 * but with no device yet: nothing can open it, so it is freed with
 * zcdev_ring_delete() if what follows fails.
 */
static struct zcdev *zcdev_ring_new(unsigned int id)
{
	struct zcdev *zd;
	int ret;

	ret = zcdev_total_pages_reserve(0, zcdev_new_ring_pages);
	if (ret)
		return ERR_PTR(ret);
	ret = -ENOMEM;
	zd = kzalloc_obj(*zd, GFP_KERNEL);
	if (!zd)
		goto err_unreserve;
	zd->id = id;
	if (id)
		snprintf(zd->name, sizeof(zd->name), "%s%u", KBUILD_MODNAME, id);
	else
		strscpy(zd->name, KBUILD_MODNAME, sizeof(zd->name));
	mutex_init(&zd->produce_lock);
	mutex_init(&zd->consume_lock);
	mutex_init(&zd->ring_lock);
	mutex_init(&zd->resize_lock);
	init_waitqueue_head(&zd->readq);
	init_waitqueue_head(&zd->writeq);

	/* One address_space per ring: see struct zcdev. */
	zd->inode = alloc_anon_inode(zcdev_mnt->mnt_sb);
	if (IS_ERR(zd->inode)) {
		ret = PTR_ERR(zd->inode);
		goto err_free;
	}
	ret = zcdev_ring_init(zd, zcdev_new_ring_pages);
	if (ret)
		goto err_put_inode;

	/*
	 * In the registry before the node exists: a sendfile from the ring
	 * finds it there (splice.c) from its first open on.
	 */
	ret = xa_insert(&zcdev_rings, id, zd, GFP_KERNEL);
	if (ret)
		goto err_free_ring;
	return zd;

err_free_ring:
	zcdev_ring_free(zd);
err_put_inode:
	iput(zd->inode);
err_free:
	kfree(zd);
err_unreserve:
	zcdev_total_pages_reserve(zcdev_new_ring_pages, 0);
	return ERR_PTR(ret);
}

/* Undo zcdev_ring_new(): no device, or its device deregistered, no file. */
static void zcdev_ring_delete(struct zcdev *zd)
{
	u32 nr_pages = zd->nr_pages;

	xa_erase(&zcdev_rings, zd->id);
	zcdev_ring_free(zd);
	iput(zd->inode);
	WARN(atomic_long_read(&zd->pages_held),
	     "zcdev: ring %u leaked %ld pages\n", zd->id,
	     atomic_long_read(&zd->pages_held));
	kfree(zd);
	zcdev_total_pages_reserve(nr_pages, 0);
}

/* The ring's node: from here on it can be opened. */
static int zcdev_ring_register(struct zcdev *zd)
{
	int ret;

	zd->misc.minor = MISC_DYNAMIC_MINOR;
	zd->misc.name = zd->name;
	zd->misc.fops = &zcdev_fops;
	zd->misc.mode = zcdev_mode;
	zd->misc.groups = zcdev_groups;
	ret = misc_register(&zd->misc);
	if (ret)
		return ret;
	zcdev_debugfs_init(zd);
	return 0;
}

static int zcdev_ring_create(unsigned int id)
{
	struct zcdev *zd = zcdev_ring_new(id);
	int ret;

	if (IS_ERR(zd))
		return PTR_ERR(zd);
	ret = zcdev_ring_register(zd);
	if (ret)
		zcdev_ring_delete(zd);
	return ret;
}

/*
 * Remove ring @zd unless a file has it open: -EBUSY then. Pages a pipe
 * or a socket still holds stay theirs (the kernel's nosteal buffers hold
 * plain page references), as they outlive the module.
 */
static int zcdev_ring_destroy(struct zcdev *zd)
{
	lockdep_assert_held(&zcdev_control_lock);

	spin_lock(&zcdev_open_lock);
	if (zd->opens) {
		spin_unlock(&zcdev_open_lock);
		return -EBUSY;
	}
	/* From here zcdev_open() refuses it. */
	zd->dying = true;
	spin_unlock(&zcdev_open_lock);

	/* Waits out a misc_open() in flight, which then found it dying. */
	misc_deregister(&zd->misc);
	zcdev_debugfs_exit(zd);
	zcdev_ring_delete(zd);
	return 0;
}

/* ZCDEV_CTL_ADD: @nr, or the lowest free number when @nr is -1. */
static long zcdev_ctl_add(int nr)
{
	unsigned long id;
	int ret;

	if (nr < -1 || nr >= ZCDEV_MAX_RINGS)
		return -EINVAL;
	mutex_lock(&zcdev_control_lock);
	if (nr == -1) {
		/* The lowest number no ring has. */
		for (id = 0; id < ZCDEV_MAX_RINGS; id++)
			if (!xa_load(&zcdev_rings, id))
				break;
		ret = id < ZCDEV_MAX_RINGS ? 0 : -ENOSPC;
	} else {
		id = nr;
		ret = xa_load(&zcdev_rings, id) ? -EEXIST : 0;
	}
	if (!ret)
		ret = zcdev_ring_create(id);
	mutex_unlock(&zcdev_control_lock);
	return ret ? ret : (long)id;
}

/* ZCDEV_CTL_REMOVE */
static long zcdev_ctl_remove(int nr)
{
	struct zcdev *zd;
	int ret;

	if (nr < 0 || nr >= ZCDEV_MAX_RINGS)
		return -ENODEV;
	mutex_lock(&zcdev_control_lock);
	zd = xa_load(&zcdev_rings, nr);
	ret = zd ? zcdev_ring_destroy(zd) : -ENODEV;
	mutex_unlock(&zcdev_control_lock);
	return ret;
}

static long zcdev_control_ioctl(struct file *file, unsigned int cmd,
				unsigned long arg)
{
	/*
	 * By value and an int, as loop-control takes its numbers: a C
	 * caller's ioctl(fd, ZCDEV_CTL_ADD, -1) passes an int, whose upper
	 * bits in the register are not defined.
	 */
	int nr = (int)arg;

	/* Making and removing rings is a write, as on loop-control's node. */
	if (!(file->f_mode & FMODE_WRITE))
		return -EBADF;
	switch (cmd) {
	case ZCDEV_CTL_ADD:
		return zcdev_ctl_add(nr);
	case ZCDEV_CTL_REMOVE:
		return zcdev_ctl_remove(nr);
	default:
		return -ENOTTY;
	}
}

static const struct file_operations zcdev_control_fops = {
	.owner = THIS_MODULE,
	.open = nonseekable_open,
	.unlocked_ioctl = zcdev_control_ioctl,
	.compat_ioctl = zcdev_control_ioctl,	/* numbers, not pointers */
	.llseek = noop_llseek,
};

/*
 * Root's alone whatever the rings' mode is, as /dev/loop-control is:
 * whoever may add rings may pin max_total_pages of memory, and whoever
 * may remove them may take another user's idle ring away.
 */
static struct miscdevice zcdev_control = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = ZCDEV_CONTROL_NAME,
	.fops = &zcdev_control_fops,
	.mode = 0600,
};

/* Unload: no file is open (each pins the module), so every ring goes. */
static void zcdev_rings_destroy_all(void)
{
	struct zcdev *zd;
	unsigned long id;

	mutex_lock(&zcdev_control_lock);
	xa_for_each(&zcdev_rings, id, zd)
		WARN_ON(zcdev_ring_destroy(zd));
	mutex_unlock(&zcdev_control_lock);
}

/*
 * Nothing may fail once a node exists: a node can be opened as soon as
 * it is registered, even while the module is still loading, and a load
 * that then failed would free the code under that open file. So every
 * ring is allocated first, the control device registered next (the last
 * step that can fail the load), and a ring whose own registration fails
 * afterwards is only missing, with a warning, as loop_init() does.
 */
int zcdev_control_init(unsigned int rings, u32 ring_pages)
{
	struct zcdev *zd;
	unsigned long id;
	int ret;

	zcdev_new_ring_pages = ring_pages;
	zcdev_mnt = kern_mount(&zcdev_fs_type);
	if (IS_ERR(zcdev_mnt))
		return PTR_ERR(zcdev_mnt);

	mutex_lock(&zcdev_control_lock);
	for (id = 0, ret = 0; id < rings; id++) {
		zd = zcdev_ring_new(id);
		if (IS_ERR(zd)) {
			ret = PTR_ERR(zd);
			goto err_delete;
		}
	}
	ret = misc_register(&zcdev_control);
	if (ret)
		goto err_delete;
	xa_for_each(&zcdev_rings, id, zd) {
		ret = zcdev_ring_register(zd);
		if (ret) {
			pr_warn("ring %lu: no device node (%d)\n", id, ret);
			zcdev_ring_delete(zd);
		}
	}
	mutex_unlock(&zcdev_control_lock);
	return 0;

err_delete:
	xa_for_each(&zcdev_rings, id, zd)
		zcdev_ring_delete(zd);
	mutex_unlock(&zcdev_control_lock);
	kern_unmount(zcdev_mnt);
	return ret;
}

void zcdev_control_exit(void)
{
	misc_deregister(&zcdev_control);
	zcdev_rings_destroy_all();
	kern_unmount(zcdev_mnt);
}
