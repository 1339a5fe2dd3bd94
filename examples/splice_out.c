// SPDX-License-Identifier: GPL-2.0
// cc -O2 -o splice_out splice_out.c $(pkg-config --cflags --libs libzcdev)
/*
 * splice out: lend the ring's pages to a pipe by reference, then splice
 * the pipe to stdout. zcdev copies nothing (bytes_spliced_out, not
 * bytes_read_copy); whether the byte is copied later depends on stdout:
 *
 *   a pipe       the references move into it (splice_pipe_to_pipe());
 *                its reader copies once if it read(2)s, not if it splices
 *   a socket     TCP and Unix sockets keep references to the pages;
 *                the receiver's recv(2) copies once
 *   /dev/null    dropped unread: no copy anywhere
 *   a file       iter_file_splice_write() copies each byte into the page
 *                cache: one CPU copy, as read(2) + write(2) would make two
 *
 *   splice_out | consumer    splice_out > /dev/null    (until end of file)
 *
 * No SPLICE_F_MOVE: zcdev_splice_read() and the outputs above ignore it.
 * Preconditions: with no writer open and an empty ring it stops at once,
 * so start the producer first. A page the producer's pipe still holds (a
 * page stolen a moment ago, before the splice core dropped the pipe's
 * reference) goes out as a copy: bytes_spliced_out_copied.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <libzcdev.h>

/* What stdout does with a page reference, and the CPU copies it makes. */
static const char *out_kind(int fd, int *copies)
{
	struct stat st;

	*copies = 0;
	if (fstat(fd, &st))
		return "unknown";
	if (S_ISFIFO(st.st_mode))
		return "a pipe";
	if (S_ISSOCK(st.st_mode))
		return "a socket";
	if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3))
		return "/dev/null";
	*copies = 1;
	return "a file";
}

int main(void)
{
	struct zcdev_stats st0, st1, d;
	struct zcdev_info info;
	unsigned long long total = 0;
	const char *kind;
	char line[512];
	int fd, p[2], copies;
	ssize_t got, left, n;

	fd = zcdev_open(NULL, O_RDONLY, &info);
	if (fd < 0) {
		fprintf(stderr, "open %s: %s\n", zcdev_path(), strerror(-fd));
		return 1;
	}
	if (pipe(p)) {
		perror("pipe");
		return 1;
	}
	kind = out_kind(STDOUT_FILENO, &copies);
	zcdev_get_stats(fd, &st0);
	for (;;) {
		/* ring -> pipe: the pipe buffers point at the ring's pages. */
		got = splice(fd, NULL, p[1], NULL, 1 << 16, 0);
		if (got < 0) {
			perror("splice ring -> pipe");
			return 1;
		}
		if (!got)
			break;
		/* pipe -> stdout: the same page references, see above. */
		for (left = got; left > 0; left -= n) {
			n = splice(p[0], NULL, STDOUT_FILENO, NULL, left, 0);
			if (n <= 0) {
				perror("splice pipe -> stdout");
				return 1;
			}
		}
		total += got;
	}
	zcdev_get_stats(fd, &st1);
	zcdev_stats_delta(&st0, &st1, &d);
	zcdev_stats_format(line, sizeof(line), &d);
	fprintf(stderr, "splice_out: %llu bytes; %s\n", total, line);
	fprintf(stderr, "splice_out: CPU copies end to end: zcdev %llu, pipe -> %s %llu\n",
		(unsigned long long)zcdev_stats_copied(&d), kind, copies * total);
	return 0;
}
