// SPDX-License-Identifier: GPL-2.0
// cc -O2 -I../uapi -I../tools/lib -o splice_out splice_out.c ../tools/lib/zcdev.c
/*
 * splice out: move the ring's pages into a pipe by reference, then from
 * the pipe to OUT (a file, a socket, or stdout). The module copies
 * nothing: bytes_spliced_out and pages_spliced_out count the pages it
 * lent to the pipe, bytes_read_copy stays put.
 *
 *   splice_out OUT           (until EOF: empty ring, no writer)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "zcdev.h"

int main(int argc, char **argv)
{
	struct zcdev_stats st0, st1, d;
	struct zcdev_info info;
	unsigned long long total = 0;
	char line[512];
	int fd, out, p[2];
	ssize_t got, left, n;

	if (argc != 2) {
		fprintf(stderr, "usage: splice_out OUT\n");
		return 2;
	}
	fd = zcdev_open(NULL, O_RDONLY, &info);
	if (fd < 0) {
		fprintf(stderr, "open %s: %s\n", zcdev_path(), strerror(-fd));
		return 1;
	}
	out = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0 || pipe(p)) {
		perror(argv[1]);
		return 1;
	}
	zcdev_get_stats(fd, &st0);
	for (;;) {
		/* ring -> pipe: the pipe buffers point at the ring's pages. */
		got = zcdev_splice_out(fd, p[1], 1 << 16, SPLICE_F_MOVE);
		if (got < 0) {
			fprintf(stderr, "splice ring -> pipe: %s\n", strerror((int)-got));
			return 1;
		}
		if (!got)
			break;
		/* pipe -> OUT: the file or socket takes the pages from the pipe. */
		for (left = got; left > 0; left -= n) {
			n = splice(p[0], NULL, out, NULL, left, SPLICE_F_MOVE);
			if (n <= 0) {
				perror("splice pipe -> OUT");
				return 1;
			}
		}
		total += got;
	}
	zcdev_get_stats(fd, &st1);
	zcdev_stats_delta(&st0, &st1, &d);
	zcdev_stats_format(line, sizeof(line), &d);
	fprintf(stderr, "splice_out: %llu bytes; %s\n", total, line);
	return close(out) ? 1 : 0;
}
