// SPDX-License-Identifier: GPL-2.0
// cc -O2 -o mmap_producer mmap_producer.c $(pkg-config --cflags --libs libzcdev)
/*
 * mmap producer: map the ring, read(2) stdin straight into its pages and
 * commit each run with zcdev_produce(). zcdev copies nothing, but the
 * byte is still copied once: read(2) copies it from the input (the page
 * cache of FILE) into the ring page. What mmap saves is the second copy
 * that write(2) into the device would make (docs/copies.md).
 *
 *   zcdev reset; mmap_producer < FILE; mmap_consumer > OUT
 *
 * Preconditions: the one mmap producer (nothing else writes at head), and
 * no RESET or RESIZE while it runs (both change the generation; this
 * program then stops). The consumer may run at the same time or after.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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
	unsigned long long total = 0, gen;
	char line[512], *data;
	int fd;

	/* A writable shared mapping needs the device open read-write. */
	fd = zcdev_open(NULL, O_RDWR, &info);
	if (fd < 0) {
		fprintf(stderr, "open %s: %s\n", zcdev_path(), strerror(-fd));
		return 1;
	}
	/* The meta page, read-only; then every ring page twice in a row. */
	meta = mmap(NULL, info.page_size, PROT_READ, MAP_SHARED, fd,
		    info.meta_offset);
	data = mmap(NULL, 2 * info.ring_bytes, PROT_READ | PROT_WRITE,
		    MAP_SHARED, fd, info.data_offset);
	if (meta == MAP_FAILED || data == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	gen = __atomic_load_n(&meta->generation, __ATOMIC_ACQUIRE);
	zcdev_get_stats(fd, &st0);
	for (;;) {
		/* Acquire: the consumer is done with every byte before tail. */
		uint64_t tail = __atomic_load_n(&meta->tail, __ATOMIC_ACQUIRE);
		uint64_t head = __atomic_load_n(&meta->head, __ATOMIC_ACQUIRE);
		uint64_t room = info.ring_bytes - (head - tail);
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		ssize_t n;
		int ret;

		if (__atomic_load_n(&meta->generation, __ATOMIC_ACQUIRE) != gen) {
			fprintf(stderr, "the ring was reset or resized\n");
			return 1;
		}
		if (!room) {
			/* Full: sleep until the consumer releases something. */
			if (poll(&pfd, 1, -1) < 0 && errno != EINTR) {
				perror("poll");
				return 1;
			}
			continue;
		}
		/* The one CPU copy: input -> ring page. No split at the wrap. */
		n = read(STDIN_FILENO, data + head % info.ring_bytes, room);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			perror("read stdin");
			return 1;
		}
		if (!n)
			break;
		ret = zcdev_produce(fd, n);
		if (ret) {
			fprintf(stderr, "zcdev_produce: %s\n", strerror(-ret));
			return 1;
		}
		total += n;
	}
	zcdev_get_stats(fd, &st1);
	zcdev_stats_delta(&st0, &st1, &d);
	zcdev_stats_format(line, sizeof(line), &d);
	fprintf(stderr, "mmap_producer: %llu bytes; %s\n", total, line);
	fprintf(stderr, "mmap_producer: CPU copies end to end: read(2) input -> ring %llu, zcdev %llu\n",
		total, (unsigned long long)zcdev_stats_copied(&d));
	close(fd);	/* the last writer gone: the consumer sees EOF */
	return 0;
}
