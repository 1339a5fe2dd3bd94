// SPDX-License-Identifier: GPL-2.0
// cc -O2 -o vmsplice_gift vmsplice_gift.c $(pkg-config --cflags --libs libzcdev)
/*
 * vmsplice with SPLICE_F_GIFT, then splice into the ring with
 * SPLICE_F_MOVE. vmsplice puts references to our pages into the pipe, no
 * copy; the gift gives them up for good (we unmap them). But they are
 * anonymous pages on the LRU, so zcdev_can_steal() refuses them before
 * the pipe is even asked, and zcdev copies them: bytes_spliced_in_copied,
 * no pages_stolen_in. Compare splice_in_move.c.
 *
 * CPU copies end to end: read(2) stdin -> buf, then zcdev's copy, so two,
 * as write(2) into a pipe and a stolen page make.
 *
 *   vmsplice_gift < FILE     (any ring position: every byte is copied)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <libzcdev.h>

#define CHUNK (16 * 4096)

int main(void)
{
	struct zcdev_stats st0, st1, d;
	struct zcdev_info info;
	unsigned long long total = 0;
	char line[512], *buf;
	ssize_t n, m, k;
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
	for (;;) {
		/* Fresh page-aligned pages every time: a gift is not taken back. */
		buf = mmap(NULL, CHUNK, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (buf == MAP_FAILED) {
			perror("mmap");
			return 1;
		}
		n = read(STDIN_FILENO, buf, CHUNK);
		if (n <= 0) {
			munmap(buf, CHUNK);
			break;
		}
		for (m = 0; m < n; m += k) {
			k = zcdev_vmsplice_gift(p[1], buf + m, n - m);
			if (k <= 0) {
				fprintf(stderr, "vmsplice: %s\n", strerror((int)-k));
				return 1;
			}
		}
		munmap(buf, CHUNK);
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
	fprintf(stderr, "vmsplice_gift: %llu bytes; %s\n", total, line);
	fprintf(stderr, "vmsplice_gift: CPU copies end to end: read(2) input -> buf %llu, vmsplice 0, zcdev %llu\n",
		total, (unsigned long long)zcdev_stats_copied(&d));
	return 0;
}
