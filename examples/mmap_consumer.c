// SPDX-License-Identifier: GPL-2.0
// cc -O2 -o mmap_consumer mmap_consumer.c $(pkg-config --cflags --libs libzcdev)
/*
 * mmap consumer: map the ring read-only, write(2) the bytes between tail
 * and head straight from the ring pages to stdout, and release them with
 * zcdev_consume(). zcdev copies nothing, but write(2) copies each byte
 * once into the output (a pipe's page, a socket buffer, the page cache):
 * what mmap saves is the copy read(2) from the device would make.
 *
 *   mmap_consumer > OUT      (until end of file: empty ring, no writer)
 *
 * Preconditions: the one mmap consumer, no RESET or RESIZE while it runs.
 * With no writer open and an empty ring it stops at once: start the
 * producer first, or at the same time.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <libzcdev.h>

int main(void)
{
	struct zcdev_stats st0, st1, d;
	struct zcdev_info info;
	const struct zcdev_ring_meta *meta;
	unsigned long long total = 0;
	const char *data;
	bool hup = false;
	char line[512];
	int fd;

	fd = zcdev_open(NULL, O_RDONLY, &info);
	if (fd < 0) {
		fprintf(stderr, "open %s: %s\n", zcdev_path(), strerror(-fd));
		return 1;
	}
	meta = mmap(NULL, info.page_size, PROT_READ, MAP_SHARED, fd,
		    info.meta_offset);
	data = mmap(NULL, 2 * info.ring_bytes, PROT_READ, MAP_SHARED, fd,
		    info.data_offset);
	if (meta == MAP_FAILED || data == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	zcdev_get_stats(fd, &st0);
	for (;;) {
		/* Acquire: every byte below head is in the ring pages. */
		uint64_t head = __atomic_load_n(&meta->head, __ATOMIC_ACQUIRE);
		uint64_t tail = __atomic_load_n(&meta->tail, __ATOMIC_ACQUIRE);
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;
		int ret;

		if (head == tail) {
			if (hup)
				break;	/* still empty after the hangup: EOF */
			if (poll(&pfd, 1, -1) < 0 && errno != EINTR) {
				perror("poll");
				return 1;
			}
			/* POLLHUP: no writer; look once more for its last bytes. */
			hup = pfd.revents & POLLHUP;
			continue;
		}
		/* The one CPU copy: ring page -> output, by write(2). */
		n = write(STDOUT_FILENO, data + tail % info.ring_bytes, head - tail);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			perror("write stdout");
			return 1;	/* nothing released: the bytes stay in the ring */
		}
		ret = zcdev_consume(fd, n);
		if (ret) {
			fprintf(stderr, "zcdev_consume: %s\n", strerror(-ret));
			return 1;
		}
		total += n;
	}
	zcdev_get_stats(fd, &st1);
	zcdev_stats_delta(&st0, &st1, &d);
	zcdev_stats_format(line, sizeof(line), &d);
	fprintf(stderr, "mmap_consumer: %llu bytes; %s\n", total, line);
	fprintf(stderr, "mmap_consumer: CPU copies end to end: zcdev %llu, write(2) ring -> output %llu\n",
		(unsigned long long)zcdev_stats_copied(&d), total);
	close(fd);
	return 0;
}
