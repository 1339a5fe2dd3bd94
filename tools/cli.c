// SPDX-License-Identifier: GPL-2.0
/*
 * zcdev(1): options, usage errors, messages: see cli.h.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "util.h"

/* "zcdev: <message>" on stderr, one line. */
void errmsg(const char *fmt, ...)
{
	va_list ap;

	fputs("zcdev: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void usage_error(const struct cmd *c, const char *fmt, ...)
{
	const char *syn_end = strstr(c->help, "\n\n");
	int syn_len = syn_end ? syn_end - c->help : (int)strlen(c->help);
	bool sub = c->fn != NULL;
	va_list ap;

	fprintf(stderr, "zcdev: %s%s", sub ? c->name : "", sub ? ": " : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	/* The synopsis, the help text's first paragraph, then a pointer. */
	fprintf(stderr, "\n%.*s\nTry 'zcdev %s%s--help' for more.\n", syn_len,
		c->help, sub ? c->name : "", sub ? " " : "");
	exit(EXIT_USAGE);
}

/*
 * getopt_long() with what every command shares: the short options are
 * the longopts' letters, -h/--help prints the usage and exits 0, and a
 * bad option prints it on stderr and exits 2.
 */
int cmd_getopt(const struct cmd *c, int argc, char **argv,
	       const struct option *longopts)
{
	char shortopts[64] = ":";
	const struct option *o;
	const char *arg;
	size_t n = 1;
	int opt, idx = -1;

	for (o = longopts; o->name && n < sizeof(shortopts) - 3; o++) {
		if (o->flag || !isalpha(o->val))
			continue;
		shortopts[n++] = o->val;
		if (o->has_arg == required_argument)
			shortopts[n++] = ':';
	}
	shortopts[n] = '\0';
	opterr = 0;
	opt = getopt_long(argc, argv, shortopts, longopts, &idx);
	arg = argv[optind - 1];
	/* No option takes an empty value: --method '' would select nothing. */
	if (opt != -1 && optarg && !*optarg) {
		if (idx >= 0)
			usage_error(c, "option '--%s' needs a value",
				    longopts[idx].name);
		usage_error(c, "option '-%c' needs a value", opt);
	}
	switch (opt) {
	case 'h':
		fputs(c->help, stdout);
		exit(EXIT_OK);
	case ':':
		usage_error(c, "option '%s' needs an argument", arg);
	case '?':
		/* A known long option given a value: --json=1. */
		if (optopt && !strncmp(arg, "--", 2) && strchr(arg, '='))
			usage_error(c, "option '%.*s' takes no argument",
				    (int)(strchr(arg, '=') - arg), arg);
		if (optopt && isdigit(optopt))
			usage_error(c, "unexpected negative number '%s'", arg);
		if (optopt)
			usage_error(c, "unknown option '-%c'", optopt);
		usage_error(c, "unknown option '%s'", arg);
	}
	return opt;
}

size_t parse_chunk(const struct cmd *c, const char *arg)
{
	uint64_t v;

	if (parse_size(arg, &v) || !v || v > (1u << 30))
		usage_error(c, "bad --chunk '%s' (1 to 1G bytes)", arg);
	return v;
}

int parse_ring(const struct cmd *c, const char *arg)
{
	uint32_t v;

	if (parse_u32(arg, &v) || v >= ZCDEV_MAX_RINGS)
		usage_error(c, "bad ring number '%s' (0 to %d)", arg,
			    ZCDEV_MAX_RINGS - 1);
	return v;
}

double parse_timeout(const struct cmd *c, const char *arg)
{
	char *end;
	double v = strtod(arg, &end);

	if (end == arg || *end || !(v >= 0))
		usage_error(c, "bad --timeout '%s' (seconds)", arg);
	return v;
}

/* Progress is for a person watching: only when stderr is a terminal. */
bool progress_wanted(void)
{
	return isatty(STDERR_FILENO);
}

const char *sysfs_path(char *buf, size_t len, const char *rest)
{
	const char *root = getenv("ZCDEV_SYSFS");

	snprintf(buf, len, "%s/%s", root && *root ? root : "/sys", rest);
	return buf;
}

/* -r N: set once, before the command runs. */
static char ring_dev[32];

void dev_select_ring(int nr)
{
	if (zcdev_ring_path(nr, ring_dev, sizeof(ring_dev)) < 0)
		ring_dev[0] = '\0';
}

bool dev_ring_selected(void)
{
	return ring_dev[0];
}

const char *dev_path(void)
{
	return ring_dev[0] ? ring_dev : zcdev_path();
}

const char *sysfs_read(const char *rest, char *val, size_t len)
{
	char path[512];
	ssize_t n;
	int fd;

	val[0] = '\0';
	fd = open(sysfs_path(path, sizeof(path), rest), O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return val;
	n = read(fd, val, len - 1);
	close(fd);
	val[n > 0 ? n : 0] = '\0';
	val[strcspn(val, "\n")] = '\0';
	return val;
}

#define EFI_SECURE_BOOT \
	"firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"

/*
 * Does this kernel refuse unsigned modules? Then an unsigned zcdev.ko
 * failed to load with EKEYREJECTED ("Key was rejected by service").
 */
static const char *signature_enforced(void)
{
	unsigned char b[5];
	char val[128], path[512];
	ssize_t n;
	int fd;

	if (!strcmp(sysfs_read("module/module/parameters/sig_enforce", val,
			       sizeof(val)), "Y"))
		return "module.sig_enforce is on";
	/* efivars: 4 bytes of attributes, then the value. */
	fd = open(sysfs_path(path, sizeof(path), EFI_SECURE_BOOT),
		  O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, b, sizeof(b));
		close(fd);
		if (n == sizeof(b) && b[4] == 1)
			return "Secure Boot is on";
	}
	return NULL;
}

bool node_in_sysfs(const char *node)
{
	char rest[128], val[32];

	snprintf(rest, sizeof(rest), "class/misc/%s/dev", node);
	return *sysfs_read(rest, val, sizeof(val));
}

const char *file_kind(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFDIR:
		return "a directory";
	case S_IFIFO:
		return "a FIFO";
	case S_IFREG:
		return "a regular file";
	case S_IFSOCK:
		return "a socket";
	case S_IFBLK:
		return "a block device";
	case S_IFLNK:
		return "a symbolic link";
	}
	return "not a character device";
}

bool module_loaded(void)
{
	char val[64];

	return *sysfs_read("module/zcdev/initstate", val, sizeof(val));
}

int module_missing(const char *path)
{
	const char *why;

	errmsg("%s not found: is the zcdev module loaded? (sudo modprobe zcdev; from a source tree: sudo insmod module/zcdev.ko)",
	       path);
	why = signature_enforced();
	if (why)
		errmsg("%s here, so an unsigned zcdev.ko is refused (\"Key was rejected by service\"): sign it ('make sign') and enroll the key ('mokutil --import'), or install it with DKMS, which signs with its enrolled key",
		       why);
	return EXIT_NODEV;
}

/* The ring whose node path is, or -1: a missing one is worth naming. */
static int path_ring(const char *path)
{
	size_t n = strlen(ZCDEV_DEFAULT_PATH);
	char buf[32];
	uint32_t nr;

	if (strncmp(path, ZCDEV_DEFAULT_PATH, n))
		return -1;
	if (!path[n])
		return 0;
	if (parse_u32(path + n, &nr) || nr >= ZCDEV_MAX_RINGS ||
	    zcdev_ring_path(nr, buf, sizeof(buf)) < 0 || strcmp(buf, path))
		return -1;
	return nr;
}

int dev_error(int err, const struct zcdev_info *info)
{
	const char *path = dev_path();
	struct stat st;
	int nr;

	/*
	 * Whatever the open said (EISDIR, ENXIO for a FIFO nobody reads),
	 * a path that is there but no character device is the wrong path.
	 */
	if (err != -EPROTO && !stat(path, &st) && !S_ISCHR(st.st_mode)) {
		errmsg("%s is %s, not a zcdev device (a character device): is ZCDEV_DEV right?",
		       path, file_kind(st.st_mode));
		return EXIT_NODEV;
	}
	switch (err) {
	case -ENOENT:
	case -ENXIO:
	case -ENODEV:
		/* ENXIO/ENODEV: a node is there but no driver behind it. */
		if (!module_loaded())
			return module_missing(path);
		nr = path_ring(path);
		if (nr >= 0 && node_in_sysfs(strrchr(path, '/') + 1))
			errmsg("%s not found, although ring %d exists (sysfs class/misc/%s): is devtmpfs mounted on /dev?",
			       path, nr, strrchr(path, '/') + 1);
		else if (nr >= 0)
			errmsg("%s not found: ring %d does not exist ('zcdev rings' lists the rings, 'zcdev ring-add %d' adds it)",
			       path, nr, nr);
		else
			errmsg("%s not found, although the zcdev module is loaded: is ZCDEV_DEV right? (the rings' nodes are /dev/zcdev and /dev/zcdevN: 'zcdev rings')",
			       path);
		return EXIT_NODEV;
	case -ENOTTY:
		errmsg("%s: not a zcdev device", path);
		return EXIT_NODEV;
	case -EPROTO:
		errmsg("%s: ABI version %u, this tool speaks %u: rebuild tools/zcdev with the module's uapi/linux/zcdev.h",
		       path, info->abi_version, ZCDEV_ABI_VERSION);
		return EXIT_NODEV;
	}
	errmsg("%s: %s", path, strerror(-err));
	return EXIT_FAIL;
}

int dev_open(int flags, struct zcdev_info *info)
{
	int fd = zcdev_open(dev_path(), flags, info);

	return fd < 0 ? -dev_error(fd, info) : fd;
}

/*
 * The reset goes through the producer's descriptor because it needs
 * FMODE_WRITE, and a writer held open elsewhere would keep the consumer
 * from ever seeing EOF.
 */
int dev_open_writer(int flags, struct zcdev_info *info)
{
	int fd = dev_open(flags, info);
	int ret;

	if (fd < 0)
		return fd;
	ret = zcdev_reset(fd);
	if (ret) {
		errmsg("%s: ZCDEV_IOC_RESET: %s", dev_path(), strerror(-ret));
		close(fd);
		return -EXIT_FAIL;
	}
	return fd;
}
