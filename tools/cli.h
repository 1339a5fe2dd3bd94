/* SPDX-License-Identifier: GPL-2.0 */
/*
 * zcdev(1): the command-line layer's conventions, which every command
 * follows: exit statuses, options, messages on stderr, and turning a
 * libzcdev -errno into a message a person can act on.
 */
#ifndef ZCDEV_CLI_H
#define ZCDEV_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <libzcdev.h>

#ifndef ZCDEV_VERSION
#define ZCDEV_VERSION "unknown"
#endif

/* Exit status, documented in 'zcdev --help' and the README. */
enum {
	EXIT_OK		= 0,
	EXIT_FAIL	= 1,	/* a runtime failure; nothing was lost silently */
	EXIT_USAGE	= 2,	/* bad command line; nothing was touched */
	EXIT_NODEV	= 3,	/* device missing, not a zcdev, ABI mismatch */
};

struct option;
struct cmd {
	const char *name;
	int (*fn)(const struct cmd *c, int argc, char **argv);
	const char *help;
};

void errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cmd_getopt(const struct cmd *c, int argc, char **argv,
	       const struct option *longopts);
void usage_error(const struct cmd *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));
size_t parse_chunk(const struct cmd *c, const char *arg);
double parse_timeout(const struct cmd *c, const char *arg);
/* A ring number, 0 to ZCDEV_MAX_RINGS - 1, or a usage error. */
int parse_ring(const struct cmd *c, const char *arg);
bool progress_wanted(void);

/* $ZCDEV_SYSFS (for tests and chroots) or /sys, then the rest of the path. */
const char *sysfs_path(char *buf, size_t len, const char *rest);
/* The first line of a sysfs file, or "" if it cannot be read. */
const char *sysfs_read(const char *rest, char *val, size_t len);
/* Has the misc device NODE a directory in sysfs (whatever /dev holds)? */
bool node_in_sysfs(const char *node);
/* What a file that is not a character device is, for a message. */
const char *file_kind(mode_t mode);
/* Is the zcdev module loaded (its initstate is there)? */
bool module_loaded(void);
/* "PATH not found: is the zcdev module loaded?", with hints; EXIT_NODEV. */
int module_missing(const char *path);

/*
 * The device path: ring N's after dev_select_ring(N) (-r N), else
 * zcdev_path(). And a -errno from libzcdev as a message and a status.
 */
void dev_select_ring(int nr);
bool dev_ring_selected(void);
const char *dev_path(void);
int dev_error(int err, const struct zcdev_info *info);
/* zcdev_open() that says why it failed: the fd, or minus the status. */
int dev_open(int flags, struct zcdev_info *info);
/* The same for a producer, on an empty ring (ZCDEV_IOC_RESET). */
int dev_open_writer(int flags, struct zcdev_info *info);

#endif /* ZCDEV_CLI_H */
