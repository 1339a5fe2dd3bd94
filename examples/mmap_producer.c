// SPDX-License-Identifier: GPL-2.0
// cc -O2 -I../uapi -I../tools/lib -o mmap_producer mmap_producer.c ../tools/lib/zcdev.c
/*
 * mmap producer: read stdin straight into the ring pages, mapped into this
 * process, and commit each run with ZCDEV_IOC_PRODUCE. The module copies
 * nothing: the counters show the bytes as "produced in place".
 *
 *   mmap_producer < FILE     (a consumer drains the ring meanwhile)
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
	char line[512];
	struct zcdev_ring ring;
	unsigned long long total = 0;
	int fd, err;

	/* A writable shared mapping needs the device open read-write. */
	fd = zcdev_open(NULL, O_RDWR, &info);
	if (fd < 0) {
		fprintf(stderr, "open %s: %s\n", zcdev_path(), strerror(-fd));
		return 1;
	}
	err = zcdev_claim(fd, ZCDEV_PRODUCER);
	if (!err)
		err = zcdev_ring_map(&ring, fd, &info, true);
	if (!err)
		err = zcdev_get_stats(fd, &st0);
	if (err) {
		fprintf(stderr, "set up the ring: %s\n", strerror(-err));
		return 1;
	}
	for (;;) {
		char *p;
		int64_t room = zcdev_ring_space(&ring, &p);
		ssize_t n;

		if (room < 0) {
			fprintf(stderr, "ring: %s\n", strerror((int)-room));
			return 1;
		}
		if (!room) {
			/* Full: wait until the consumer releases something. */
			err = zcdev_wait(fd, POLLOUT, -1);
			if (err < 0 && err != -EINTR) {
				fprintf(stderr, "poll: %s\n", strerror(-err));
				return 1;
			}
			continue;
		}
		/* Into the ring page itself: the double mapping makes it contiguous. */
		n = read(STDIN_FILENO, p, room);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			perror("read stdin");
			return 1;
		}
		if (!n)
			break;
		err = zcdev_produce(fd, n);
		if (err) {
			fprintf(stderr, "ZCDEV_IOC_PRODUCE: %s\n", strerror(-err));
			return 1;
		}
		total += n;
	}
	/* What the module did meanwhile: nothing copied, all in place. */
	zcdev_get_stats(fd, &st1);
	zcdev_stats_delta(&st0, &st1, &d);
	zcdev_stats_format(line, sizeof(line), &d);
	fprintf(stderr, "mmap_producer: %llu bytes; %s\n", total, line);
	zcdev_ring_unmap(&ring);
	close(fd);	/* the last writer gone: the consumer sees EOF */
	return 0;
}
