// SPDX-License-Identifier: GPL-2.0
// cc -O2 -I../uapi -I../tools/lib -o sendfile_out sendfile_out.c ../tools/lib/zcdev.c
/*
 * sendfile: one call moves ring pages to OUT through the kernel's own
 * pipe, with no pipe of ours; to the module it is a splice out, so the
 * counters show bytes_spliced_out and no bytes_read_copy.
 *
 *   sendfile_out > OUT       (a file, a socket; not a file open for appending)
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "zcdev.h"

int main(void)
{
	struct zcdev_stats st0, st1, d;
	struct zcdev_info info;
	unsigned long long total = 0;
	char line[512];
	ssize_t n;
	int fd;

	fd = zcdev_open(NULL, O_RDONLY, &info);
	if (fd < 0) {
		fprintf(stderr, "open %s: %s\n", zcdev_path(), strerror(-fd));
		return 1;
	}
	/* Before any byte leaves the ring: can stdout take bytes at all? */
	if (write(STDOUT_FILENO, "", 0) < 0) {
		perror("stdout");
		return 1;
	}
	zcdev_get_stats(fd, &st0);
	while ((n = zcdev_sendfile_out(STDOUT_FILENO, fd, 1 << 20)) > 0)
		total += n;
	if (n < 0) {
		fprintf(stderr, "sendfile: %s\n", strerror((int)-n));
		return 1;
	}
	zcdev_get_stats(fd, &st1);
	zcdev_stats_delta(&st0, &st1, &d);
	zcdev_stats_format(line, sizeof(line), &d);
	fprintf(stderr, "sendfile_out: %llu bytes; %s\n", total, line);
	return 0;
}
