// SPDX-License-Identifier: GPL-2.0
/*
 * zcdev(1): several rings. rings lists them from sysfs, ring-add and
 * ring-remove go through /dev/zcdev-control (libzcdev), and info names
 * the others. Ring 0 is /dev/zcdev, ring N is /dev/zcdevN.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmds.h"

#define STR(x)	#x
#define XSTR(x)	STR(x)

const char rings_help[] =
"usage: zcdev rings [--json]\n"
"\n"
"List the rings that exist, from sysfs (/sys/class/misc/NODE/): each one's\n"
"number, device, pages, unread bytes and writers (files open for writing).\n"
"Ring 0 is /dev/zcdev, ring N is /dev/zcdevN; 'zcdev -r N COMMAND' runs any\n"
"other command on ring N.\n"
"\n"
"  -j, --json   one JSON object\n";

const char ring_add_help[] =
"usage: zcdev ring-add [N]\n"
"\n"
"Add ring N (from 0, below " XSTR(ZCDEV_MAX_RINGS) "), or without N the lowest number that is\n"
"free, through /dev/zcdev-control (ZCDEV_CTL_ADD; root only), and print\n"
"its device. The new ring has the module's ring_pages pages. Fails if\n"
"ring N exists, or if its pages would take the rings together past the\n"
"module's max_total_pages (see 'zcdev info').\n";

const char ring_remove_help[] =
"usage: zcdev ring-remove N\n"
"\n"
"Remove ring N through /dev/zcdev-control (ZCDEV_CTL_REMOVE; root only).\n"
"Its unread bytes go with it, as with 'zcdev reset'; bytes a pipe or a\n"
"socket took by reference stay theirs. Fails while any file or mapping\n"
"has the ring open.\n";

static const struct option json_opts[] = {
	{ "json", no_argument, NULL, 'j' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL }
};

static const struct option help_opts[] = {
	{ "help", no_argument, NULL, 'h' },
	{ NULL }
};

/*
 * The rings, ascending, in nrs (ZCDEV_MAX_RINGS of them): their count,
 * or minus an exit status once the reason is said.
 */
static int list_rings(int *nrs)
{
	int n = zcdev_ring_list(nrs, ZCDEV_MAX_RINGS);
	char path[512];

	if (n > 0)
		return n;
	/* No ring at all is a module that is not there, or one emptied. */
	if (!module_loaded())
		return -module_missing(ZCDEV_DEFAULT_PATH);
	if (n == 0)
		return 0;
	errmsg("%s: %s", sysfs_path(path, sizeof(path), "class/misc"),
	       strerror(-n));
	return -EXIT_FAIL;
}

/* Ring nr's device; a number out of range (-1: none given) says so. */
static void ring_path(int nr, char *buf, size_t len)
{
	if (zcdev_ring_path(nr, buf, len) < 0)
		snprintf(buf, len, "ring %d", nr);
}

/* ---- rings ---- */

struct ring_row {
	int nr;
	char dev[32];
	const char *node;
	uint64_t pages, used, writers;
};

static int sysfs_u64(const char *node, const char *attr, uint64_t *v)
{
	char rest[64], val[32];

	snprintf(rest, sizeof(rest), "class/misc/%s/%s", node, attr);
	return parse_size(sysfs_read(rest, val, sizeof(val)), v);
}

/* A ring's sysfs figures; -1 when it went away since it was listed. */
static int ring_row(int nr, struct ring_row *r)
{
	r->nr = nr;
	ring_path(nr, r->dev, sizeof(r->dev));
	r->node = strrchr(r->dev, '/') ? strrchr(r->dev, '/') + 1 : r->dev;
	if (sysfs_u64(r->node, "ring_pages", &r->pages) ||
	    sysfs_u64(r->node, "used", &r->used) ||
	    sysfs_u64(r->node, "writers", &r->writers))
		return -1;
	return 0;
}

int cmd_rings(const struct cmd *c, int argc, char **argv)
{
	static int nrs[ZCDEV_MAX_RINGS];
	struct json j = { .f = stdout };
	struct ring_row r;
	bool json = false;
	int i, n;

	while (cmd_getopt(c, argc, argv, json_opts) != -1)
		json = true;
	if (optind < argc)
		usage_error(c, "unexpected argument '%s'", argv[optind]);
	n = list_rings(nrs);
	if (n < 0)
		return -n;
	if (json) {
		json_begin(&j, NULL, '{');
		json_begin(&j, "rings", '[');
	} else {
		printf("%-5s %-16s %10s %12s %8s\n", "ring", "device",
		       "ring_pages", "used", "writers");
	}
	for (i = 0; i < n; i++) {
		if (ring_row(nrs[i], &r))
			continue;
		if (!json) {
			printf("%-5d %-16s %10llu %12llu %8llu\n", r.nr, r.dev,
			       (unsigned long long)r.pages,
			       (unsigned long long)r.used,
			       (unsigned long long)r.writers);
			continue;
		}
		json_begin(&j, NULL, '{');
		json_u64(&j, "ring", r.nr);
		json_str(&j, "node", r.node);
		json_str(&j, "device", r.dev);
		json_u64(&j, "ring_pages", r.pages);
		json_u64(&j, "used", r.used);
		json_u64(&j, "writers", r.writers);
		json_end(&j, '}');
	}
	if (json) {
		json_end(&j, ']');
		json_end(&j, '}');
		putchar('\n');
	}
	return EXIT_OK;
}

/* For info: the other rings, when there are any. */
void show_rings(struct json *j)
{
	static int nrs[ZCDEV_MAX_RINGS];
	int i, n = zcdev_ring_list(nrs, ZCDEV_MAX_RINGS);

	if (n <= 1)
		return;
	if (j) {
		json_begin(j, "rings", '[');
		for (i = 0; i < n; i++)
			json_u64(j, NULL, nrs[i]);
		json_end(j, ']');
		return;
	}
	printf("%-24s", "rings");
	for (i = 0; i < n; i++)
		printf(" %d", nrs[i]);
	putchar('\n');
}

/* ---- ring-add, ring-remove ---- */

/* What the control device's errors mean, and the exit status. */
static int control_error(const struct cmd *c, int err, int nr)
{
	const char *ctl = zcdev_control_path();
	char dev[32], a[32], b[32];
	struct stat st;

	ring_path(nr, dev, sizeof(dev));
	/* Whatever open or ioctl said (EISDIR, ENOTTY), as dev_error() does. */
	if (!stat(ctl, &st) && !S_ISCHR(st.st_mode)) {
		errmsg("%s is %s, not a zcdev control device: is ZCDEV_CONTROL right?",
		       ctl, file_kind(st.st_mode));
		return EXIT_NODEV;
	}
	switch (err) {
	case -ENOENT:
		if (!module_loaded())
			return module_missing(ctl);
		if (getenv("ZCDEV_CONTROL") && *getenv("ZCDEV_CONTROL"))
			errmsg("%s not found: is ZCDEV_CONTROL right? (the module's is %s)",
			       ctl, ZCDEV_CONTROL_PATH);
		else if (node_in_sysfs(ZCDEV_CONTROL_NAME))
			errmsg("%s not found, although the module has it (sysfs class/misc/%s): is devtmpfs mounted on /dev?",
			       ctl, ZCDEV_CONTROL_NAME);
		else
			errmsg("%s not found: the loaded zcdev module has a single ring (it is older than this tool): load this release's module",
			       ctl);
		return EXIT_NODEV;
	case -ENOTTY:
		errmsg("%s: not a zcdev control device: is ZCDEV_CONTROL right?",
		       ctl);
		return EXIT_NODEV;
	case -EEXIST:
		errmsg("%s: ring %d exists already (%s)", c->name, nr, dev);
		break;
	case -ENODEV:
		errmsg("%s: ring %d does not exist ('zcdev rings' lists the rings)",
		       c->name, nr);
		break;
	case -EBUSY:
		/* misc_register() found no free minor: Linux has 128 for all. */
		if (c->fn == cmd_ring_add)
			errmsg("%s: the kernel has no free misc device minor for another ring (other drivers took them)",
			       c->name);
		else
			errmsg("%s: ring %d is open (%s): a file or a mapping of it is still open; close them first ('fuser -v %s' lists them)",
			       c->name, nr, dev, dev);
		break;
	case -ENOSPC:
		if (nr < 0 && zcdev_ring_list(NULL, 0) >= ZCDEV_MAX_RINGS)
			errmsg("%s: every ring number (0 to %d) is taken",
			       c->name, ZCDEV_MAX_RINGS - 1);
		else if (*sysfs_read("module/zcdev/parameters/ring_pages", a, sizeof(a)) &&
		    *sysfs_read("module/zcdev/parameters/max_total_pages", b, sizeof(b)))
			errmsg("%s: a new ring's %s pages would take the rings together past max_total_pages (%s pages): resize or remove a ring first",
			       c->name, a, b);
		else
			errmsg("%s: a new ring's pages would take the rings together past max_total_pages ('zcdev info'): resize or remove a ring first",
			       c->name);
		break;
	case -EINVAL:
		if (nr >= 0) {
			errmsg("%s: ring number %d out of range (0 to %d)",
			       c->name, nr, ZCDEV_MAX_RINGS - 1);
			break;
		}
		/* fall through */
	case -EACCES:
		errmsg("%s: %s (adding and removing rings takes write access to it: root, or group zcdev with the udev rule)",
		       ctl, strerror(-err));
		break;
	default:
		errmsg("%s: %s: %s", c->name, ctl, strerror(-err));
	}
	return EXIT_FAIL;
}

/* The one argument N, or -1 where it may be left out; exits on bad input. */
static int ring_arg(const struct cmd *c, int argc, char **argv, bool needed)
{
	int nr = -1;

	/* "-1" is a bad ring number, not an option. */
	if (argc > 1 && argv[1][0] == '-' && argv[1][1] >= '0' &&
	    argv[1][1] <= '9')
		usage_error(c, "bad ring number '%s' (0 to %d)", argv[1],
			    ZCDEV_MAX_RINGS - 1);
	while (cmd_getopt(c, argc, argv, help_opts) != -1)
		;
	if (optind < argc)
		nr = parse_ring(c, argv[optind++]);
	else if (needed)
		usage_error(c, "missing N");
	if (optind < argc)
		usage_error(c, "unexpected argument '%s'", argv[optind]);
	return nr;
}

int cmd_ring_add(const struct cmd *c, int argc, char **argv)
{
	int nr = ring_arg(c, argc, argv, false);
	int ret = zcdev_ring_add(nr);
	char dev[32];

	if (ret < 0)
		return control_error(c, ret, nr);
	ring_path(ret, dev, sizeof(dev));
	printf("%s\n", dev);
	return EXIT_OK;
}

int cmd_ring_remove(const struct cmd *c, int argc, char **argv)
{
	int nr = ring_arg(c, argc, argv, true);
	int ret = zcdev_ring_remove(nr);

	return ret < 0 ? control_error(c, ret, nr) : EXIT_OK;
}
