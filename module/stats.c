// SPDX-License-Identifier: GPL-2.0
/*
 * Observability: the counters of struct zcdev_stats (also in debugfs, for
 * people with a shell and no tool) and the ring's state in sysfs.
 */
#include <linux/debugfs.h>
#include <linux/device.h>
#include <linux/seq_file.h>

#include "zcdev.h"

void zcdev_stats_snapshot(struct zcdev *zd, struct zcdev_stats *st)
{
	mutex_lock(&zd->ring_lock);
	*st = zd->stats;
	mutex_unlock(&zd->ring_lock);
	st->pages_held = atomic_long_read(&zd->pages_held);
	memset(st->reserved, 0, sizeof(st->reserved));
}

static int zcdev_stats_show(struct seq_file *m, void *v)
{
	struct zcdev *zd = m->private;
	struct zcdev_stats st;

	zcdev_stats_snapshot(zd, &st);
#define ZCDEV_SHOW(field) seq_printf(m, "%-24s %llu\n", #field, st.field)
	ZCDEV_SHOW(bytes_written_copy);
	ZCDEV_SHOW(bytes_read_copy);
	ZCDEV_SHOW(bytes_spliced_out);
	ZCDEV_SHOW(pages_spliced_out);
	ZCDEV_SHOW(bytes_spliced_in_moved);
	ZCDEV_SHOW(pages_stolen_in);
	ZCDEV_SHOW(bytes_spliced_in_copied);
	ZCDEV_SHOW(bytes_produced_mmap);
	ZCDEV_SHOW(bytes_consumed_mmap);
	ZCDEV_SHOW(page_swaps);
	ZCDEV_SHOW(mmap_faults);
	ZCDEV_SHOW(sigbus_faults);
	ZCDEV_SHOW(pages_held);
	ZCDEV_SHOW(bytes_spliced_out_copied);
	ZCDEV_SHOW(slots_kept);
#undef ZCDEV_SHOW
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(zcdev_stats);

void zcdev_debugfs_init(struct zcdev *zd)
{
	/* debugfs is optional: failures only cost the file, never the device. */
	zd->debugfs = debugfs_create_dir(zd->name, NULL);
	debugfs_create_file("stats", 0444, zd->debugfs, zd, &zcdev_stats_fops);
}

void zcdev_debugfs_exit(struct zcdev *zd)
{
	debugfs_remove_recursive(zd->debugfs);
}

static struct zcdev *zcdev_from_dev(struct device *dev)
{
	struct miscdevice *misc = dev_get_drvdata(dev);

	return container_of(misc, struct zcdev, misc);
}

/* One value per file, read under ring_lock so head/tail/used agree. */
static ssize_t zcdev_show(struct device *dev, char *buf,
			  u64 (*get)(struct zcdev *zd))
{
	struct zcdev *zd = zcdev_from_dev(dev);
	u64 val;

	mutex_lock(&zd->ring_lock);
	val = get(zd);
	mutex_unlock(&zd->ring_lock);
	return sysfs_emit(buf, "%llu\n", val);
}

#define ZCDEV_ATTR(name, expr)						\
static u64 zcdev_get_##name(struct zcdev *zd)				\
{									\
	return expr;							\
}									\
static ssize_t name##_show(struct device *dev,				\
			   struct device_attribute *attr, char *buf)	\
{									\
	return zcdev_show(dev, buf, zcdev_get_##name);			\
}									\
static DEVICE_ATTR_RO(name)

ZCDEV_ATTR(ring, zd->id);
ZCDEV_ATTR(ring_pages, zd->nr_pages);
ZCDEV_ATTR(ring_bytes, zcdev_ring_bytes(zd->nr_pages));
ZCDEV_ATTR(head, zd->head);
ZCDEV_ATTR(tail, zd->tail);
ZCDEV_ATTR(used, zd->head - zd->tail);
ZCDEV_ATTR(generation, zd->generation);
ZCDEV_ATTR(writers, atomic_read(&zd->writers));

static struct attribute *zcdev_attrs[] = {
	&dev_attr_ring.attr,
	&dev_attr_ring_pages.attr,
	&dev_attr_ring_bytes.attr,
	&dev_attr_head.attr,
	&dev_attr_tail.attr,
	&dev_attr_used.attr,
	&dev_attr_generation.attr,
	&dev_attr_writers.attr,
	NULL,
};

static const struct attribute_group zcdev_group = {
	.attrs = zcdev_attrs,
};

const struct attribute_group *zcdev_groups[] = {
	&zcdev_group,
	NULL,
};
