/* SPDX-License-Identifier: GPL-2.0 */
/*
 * zcdev(1): the commands. Layers, each using only the ones below it:
 *
 *   zcdev.c          main(): the command table, --help, --version, fds 0-2
 *   cli.c            options, usage errors, messages, exit statuses
 *   cmds.c, bench.c  the commands (rings.c: rings, ring-add, ring-remove)
 *   stream.c         the transfer engine: one step function per data path
 *   util.c           numbers, clocks, JSON
 *   lib/zcdev.c      libzcdev: the device's ABI, no output, -errno
 *   uapi/linux/zcdev.h
 */
#ifndef ZCDEV_CMDS_H
#define ZCDEV_CMDS_H

#include "cli.h"
#include "stream.h"
#include "util.h"

extern const char info_help[], stats_help[], resize_help[], reset_help[],
	put_help[], get_help[], copy_help[], bench_help[], rings_help[],
	ring_add_help[], ring_remove_help[];

void json_fields(struct json *j, const void *base,
		 const struct zcdev_field *f);

int cmd_info(const struct cmd *c, int argc, char **argv);
int cmd_stats(const struct cmd *c, int argc, char **argv);
int cmd_resize(const struct cmd *c, int argc, char **argv);
int cmd_reset(const struct cmd *c, int argc, char **argv);
int cmd_put(const struct cmd *c, int argc, char **argv);
int cmd_get(const struct cmd *c, int argc, char **argv);
int cmd_copy(const struct cmd *c, int argc, char **argv);
int cmd_bench(const struct cmd *c, int argc, char **argv);
int cmd_rings(const struct cmd *c, int argc, char **argv);
int cmd_ring_add(const struct cmd *c, int argc, char **argv);
int cmd_ring_remove(const struct cmd *c, int argc, char **argv);
/* info's line (or JSON member) naming every ring, when there are several. */
void show_rings(struct json *j);

#endif /* ZCDEV_CMDS_H */
