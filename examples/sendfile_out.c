// SPDX-License-Identifier: GPL-2.0
// cc -O2 -o sendfile_out sendfile_out.c $(pkg-config --cflags --libs libzcdev)
/*
 * sendfile: one call lends ring pages to stdout through the kernel's own
 * pipe (current->splice_pipe), with no pipe of ours. To zcdev it is a
 * splice out (bytes_spliced_out, no bytes_read_copy); tail moves only by
 * what the output took. Whether the byte is copied later depends on
 * stdout, as for splice_out.c: a socket keeps references (its receiver's
 * recv(2) copies), a pipe gets them (splice_file_to_pipe(), no internal
 * pipe), /dev/null drops them, and a file copies each byte into its page
 * cache (iter_file_splice_write()).
 *
 *   sendfile_out > OUT       (until end of file; not a file open for appending)
 *
 * Preconditions: with no writer open and an empty ring it stops at once,
 * so start the producer first.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/sendfile.h>
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
	int fd, copies;
	ssize_t n;

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
	kind = out_kind(STDOUT_FILENO, &copies);
	zcdev_get_stats(fd, &st0);
	while ((n = sendfile(STDOUT_FILENO, fd, NULL, 1 << 20)) > 0)
		total += n;
	if (n < 0) {
		perror("sendfile");
		return 1;
	}
	zcdev_get_stats(fd, &st1);
	zcdev_stats_delta(&st0, &st1, &d);
	zcdev_stats_format(line, sizeof(line), &d);
	fprintf(stderr, "sendfile_out: %llu bytes; %s\n", total, line);
	fprintf(stderr, "sendfile_out: CPU copies end to end: zcdev %llu, -> %s %llu\n",
		(unsigned long long)zcdev_stats_copied(&d), kind, copies * total);
	return 0;
}
