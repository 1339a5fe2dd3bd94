// SPDX-License-Identifier: GPL-2.0
// cc -O2 -o splice_in_move splice_in_move.c $(pkg-config --cflags --libs libzcdev)
/*
 * splice in with SPLICE_F_MOVE: bytes written into a pipe with write(2)
 * sit in pages that belong to the pipe alone (anon_pipe_buf_ops), so when
 * a whole one lands on a page boundary of the ring the module steals it
 * instead of copying: pages_stolen_in and bytes_spliced_in_moved grow, and
 * only partial pages count as bytes_spliced_in_copied.
 *
 * zcdev copies nothing for a stolen page, but the byte has been copied
 * twice before it: read(2) from stdin into buf, write(2) from buf into the
 * pipe's page. A page that comes from a file or a socket instead (splice
 * into the pipe) is not the pipe's own, and zcdev copies it
 * (docs/copies.md).
 *
 *   zcdev reset; splice_in_move < FILE
 *
 * Preconditions: head on a page boundary. Only RESET rounds head up; an
 * empty ring may still stop mid-page where the last byte went, and then
 * every page is copied. Each chunk but the last is whole pages, so head
 * stays on a boundary.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <libzcdev.h>

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
	fprintf(stderr, "splice_in_move: CPU copies end to end: read(2) input -> buf %llu, write(2) buf -> pipe %llu, zcdev %llu; pages handed over %llu\n",
		total, total, (unsigned long long)zcdev_stats_copied(&d),
		(unsigned long long)d.pages_stolen_in);
	return 0;
}
