// SPDX-License-Identifier: GPL-2.0
// cc -O2 -I../uapi -I../tools/lib -o mmap_consumer mmap_consumer.c ../tools/lib/zcdev.c
/*
 * mmap consumer: write the bytes at the ring's tail to stdout straight
 * from the mapped ring pages, then release them with ZCDEV_IOC_CONSUME.
 * Ends at EOF: the ring empty and no writer left (poll says POLLHUP).
 * The module copies nothing: the bytes are "consumed in place".
 *
 *   mmap_consumer > FILE     (a producer fills the ring meanwhile)
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "zcdev.h"

int main(void)
{
	struct zcdev_stats st0, st1, d;
	struct zcdev_info info;
	struct zcdev_ring ring;
	unsigned long long total = 0;
	bool hup = false;
	char line[512];
	int fd, err;

	fd = zcdev_open(NULL, O_RDONLY, &info);
	if (fd < 0) {
		fprintf(stderr, "open %s: %s\n", zcdev_path(), strerror(-fd));
		return 1;
	}
	err = zcdev_claim(fd, ZCDEV_CONSUMER);
	if (!err)
		err = zcdev_ring_map(&ring, fd, &info, false);
	if (!err)
		err = zcdev_get_stats(fd, &st0);
	if (err) {
		fprintf(stderr, "set up the ring: %s\n", strerror(-err));
		return 1;
	}
	for (;;) {
		char *p;
		/* An acquire load of head: the bytes below it are all there. */
		int64_t avail = zcdev_ring_data(&ring, &p);
		ssize_t n;

		if (avail < 0) {
			fprintf(stderr, "ring: %s\n", strerror((int)-avail));
			return 1;
		}
		if (!avail) {
			if (hup)
				break;	/* empty after the hangup: EOF */
			err = zcdev_wait(fd, POLLIN, -1);
			if (err < 0 && err != -EINTR) {
				fprintf(stderr, "poll: %s\n", strerror(-err));
				return 1;
			}
			/* Look once more: bytes may have come before the hangup. */
			hup = err > 0 && (err & POLLHUP);
			continue;
		}
		n = write(STDOUT_FILENO, p, avail);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			perror("write stdout");
			return 1;	/* nothing released: the bytes stay in the ring */
		}
		err = zcdev_consume(fd, n);
		if (err) {
			fprintf(stderr, "ZCDEV_IOC_CONSUME: %s\n", strerror(-err));
			return 1;
		}
		total += n;
	}
	zcdev_get_stats(fd, &st1);
	zcdev_stats_delta(&st0, &st1, &d);
	zcdev_stats_format(line, sizeof(line), &d);
	fprintf(stderr, "mmap_consumer: %llu bytes; %s\n", total, line);
	zcdev_ring_unmap(&ring);
	close(fd);
	return 0;
}
