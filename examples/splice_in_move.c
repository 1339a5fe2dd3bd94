// SPDX-License-Identifier: GPL-2.0
// cc -O2 -I../uapi -I../tools/lib -o splice_in_move splice_in_move.c ../tools/lib/zcdev.c
/*
 * splice in with SPLICE_F_MOVE: bytes written into a pipe with write(2)
 * sit in pages that belong to the pipe alone, so when a whole one lands on
 * a page boundary of the ring the module steals it instead of copying:
 * pages_stolen_in and bytes_spliced_in_moved grow, and only the partial
 * pages count as bytes_spliced_in_copied.
 *
 *   splice_in_move < FILE    (into an empty ring, so head starts on a page)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "zcdev.h"

#define CHUNK (16 * 4096)

int main(void)
{
	static char buf[CHUNK];
	struct zcdev_stats st0, st1, d;
	struct zcdev_info info;
	unsigned long long total = 0;
	char line[512];
	ssize_t n, m;
	int fd, p[2];

	fd = zcdev_open(NULL, O_WRONLY, &info);
	if (fd < 0) {
		fprintf(stderr, "open %s: %s\n", zcdev_path(), strerror(-fd));
		return 1;
	}
	if (pipe(p) || fcntl(p[1], F_SETPIPE_SZ, CHUNK) < 0) {
		perror("pipe");
		return 1;
	}
	zcdev_get_stats(fd, &st0);
	while ((n = read(STDIN_FILENO, buf, sizeof(buf))) > 0) {
		/* write(2) into the pipe: fresh pages that only the pipe holds. */
		if (write(p[1], buf, n) != n) {
			perror("write pipe");
			return 1;
		}
		for (; n > 0; n -= m) {
			m = zcdev_splice_in(p[0], fd, n, SPLICE_F_MOVE);
			if (m <= 0) {
				fprintf(stderr, "splice pipe -> ring: %s\n",
					m ? strerror((int)-m) : "nothing moved");
				return 1;
			}
			total += m;
		}
	}
	if (n < 0) {
		perror("read stdin");
		return 1;
	}
	zcdev_get_stats(fd, &st1);
	zcdev_stats_delta(&st0, &st1, &d);
	zcdev_stats_format(line, sizeof(line), &d);
	fprintf(stderr, "splice_in_move: %llu bytes; %s\n", total, line);
	return 0;
}
