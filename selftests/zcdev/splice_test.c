// SPDX-License-Identifier: GPL-2.0
/*
 * The zero-copy paths: splice out of the ring (page references into a
 * pipe) and splice in (pages stolen from a pipe, or copied), with the
 * safety invariants of docs/design.md that real kernels have got wrong.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "zcdev_test.h"

#define PS ((size_t)sysconf(_SC_PAGESIZE))

FIXTURE(ring) {
	int fd;
	int pipe[2];
	uint64_t pos;		/* stream position of the next byte written */
	uint64_t rpos;		/* stream position of the next byte read */
	struct zcdev_stats st;	/* counters at the start of the test */
};

FIXTURE_SETUP(ring)
{
	self->fd = zt_open(O_RDWR | O_NONBLOCK);
	if (self->fd < 0 && errno == ENOENT)
		SKIP(return, "%s missing: is the module loaded?", zt_dev_path());
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, zt_fresh_ring(self->fd, 16));
	ASSERT_EQ(0, pipe2(self->pipe, O_NONBLOCK));
	/* 1 MiB pipes: room for the whole 16-page ring and then some. */
	ASSERT_LT(0, fcntl(self->pipe[0], F_SETPIPE_SZ, 1 << 20));
	self->pos = self->rpos = 0;
	ASSERT_EQ(0, zt_stats(self->fd, &self->st));
}

FIXTURE_TEARDOWN(ring)
{
	if (self->fd < 0)
		return;
	close(self->pipe[0]);
	close(self->pipe[1]);
	zt_fresh_ring(self->fd, 256);
	close(self->fd);
}

static ssize_t splice_out(int fd, int pipe_w, size_t len)
{
	return splice(fd, NULL, pipe_w, NULL, len, SPLICE_F_NONBLOCK);
}

static ssize_t splice_in(int pipe_r, int fd, size_t len, unsigned int flags)
{
	return splice(pipe_r, NULL, fd, NULL, len, flags | SPLICE_F_NONBLOCK);
}

#define DELTA(self, now, field) ((now).field - (self)->st.field)

/*
 * Megabytes go out through splice at every offset and length, partial
 * pages and the wrap included, and not one byte is copied by the CPU.
 */
TEST_F(ring, splice_out_moves_pages_and_copies_nothing)
{
	static const size_t lens[] = { 1, 100, 4095, 4096, 4097, 12288, 30000 };
	struct zcdev_stats now;
	size_t total = 0;

	for (int round = 0; round < 40; round++) {
		size_t len = lens[round % 7];

		ASSERT_EQ(0, zt_put_stream(self->fd, &self->pos, len));
		ASSERT_EQ((ssize_t)len, splice_out(self->fd, self->pipe[1], len));
		ASSERT_EQ(-1, zt_check_stream(self->pipe[0], &self->rpos, len));
		total += len;
	}
	ASSERT_EQ(0, zt_stats(self->fd, &now));
	EXPECT_EQ(0, DELTA(self, now, bytes_read_copy));
	EXPECT_EQ(total, DELTA(self, now, bytes_spliced_out));
	EXPECT_LE(total / PS, DELTA(self, now, pages_spliced_out));
	EXPECT_EQ(16, now.pages_held);
}

/*
 * Whole pages written into a pipe with write(2) belong to the pipe alone:
 * splice in with SPLICE_F_MOVE takes them without copying.
 */
TEST_F(ring, splice_in_steals_whole_pipe_pages)
{
	size_t chunk = 8 * PS, total = 0;
	struct zcdev_stats now;
	uint8_t *buf = malloc(chunk);

	for (int round = 0; round < 32; round++) {
		zt_fill(buf, self->pos, chunk);
		ASSERT_EQ((ssize_t)chunk, write(self->pipe[1], buf, chunk));
		ASSERT_EQ((ssize_t)chunk,
			  splice_in(self->pipe[0], self->fd, chunk, SPLICE_F_MOVE));
		self->pos += chunk;
		ASSERT_EQ(-1, zt_check_stream(self->fd, &self->rpos, chunk));
		total += chunk;
	}
	free(buf);
	ASSERT_EQ(0, zt_stats(self->fd, &now));
	EXPECT_EQ(0, DELTA(self, now, bytes_spliced_in_copied));
	EXPECT_EQ(total, DELTA(self, now, bytes_spliced_in_moved));
	EXPECT_EQ(total / PS, DELTA(self, now, pages_stolen_in));
	/* Each stolen page replaced one: the ring holds as many as before. */
	EXPECT_EQ(16, now.pages_held);
}

/* Without SPLICE_F_MOVE, or for part of a page, splice in copies. */
TEST_F(ring, splice_in_copies_partial_pages_and_without_move)
{
	struct zcdev_stats now;
	uint8_t buf[3000];

	zt_fill(buf, 0, sizeof(buf));
	ASSERT_EQ((ssize_t)sizeof(buf), write(self->pipe[1], buf, sizeof(buf)));
	ASSERT_EQ((ssize_t)sizeof(buf),
		  splice_in(self->pipe[0], self->fd, sizeof(buf), SPLICE_F_MOVE));
	self->pos += sizeof(buf);

	uint8_t *page = malloc(PS);

	zt_fill(page, self->pos, PS);
	ASSERT_EQ((ssize_t)PS, write(self->pipe[1], page, PS));
	ASSERT_EQ((ssize_t)PS, splice_in(self->pipe[0], self->fd, PS, 0));
	self->pos += PS;
	free(page);

	ASSERT_EQ(-1, zt_check_stream(self->fd, &self->rpos, self->pos));
	ASSERT_EQ(0, zt_stats(self->fd, &now));
	EXPECT_EQ(self->pos, DELTA(self, now, bytes_spliced_in_copied));
	EXPECT_EQ(0, DELTA(self, now, pages_stolen_in));
}

/*
 * Pages gifted with vmsplice(SPLICE_F_GIFT) are still mapped by the giver
 * (or sit on the LRU): zcdev must copy them, never take them.
 */
TEST_F(ring, vmsplice_gifted_pages_are_copied_not_forced)
{
	size_t len = 8 * PS;
	struct zcdev_stats now;
	uint8_t *buf;

	buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, buf);
	zt_fill(buf, 0, len);
	struct iovec iov = { .iov_base = buf, .iov_len = len };

	ASSERT_EQ((ssize_t)len, vmsplice(self->pipe[1], &iov, 1, SPLICE_F_GIFT));
	ASSERT_EQ((ssize_t)len,
		  splice_in(self->pipe[0], self->fd, len, SPLICE_F_MOVE));
	self->pos = len;
	/* The giver's memory is still its own and still intact. */
	ASSERT_EQ(-1, zt_check(buf, 0, len));
	ASSERT_EQ(0, munmap(buf, len));
	ASSERT_EQ(-1, zt_check_stream(self->fd, &self->rpos, len));

	/*
	 * Gift, then unmap: now the pipe holds the only reference, but the
	 * page is still an anonymous page with an anon_vma, not ours to take.
	 */
	buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, buf);
	zt_fill(buf, self->pos, len);
	iov.iov_base = buf;
	ASSERT_EQ((ssize_t)len, vmsplice(self->pipe[1], &iov, 1, SPLICE_F_GIFT));
	ASSERT_EQ(0, munmap(buf, len));
	ASSERT_EQ((ssize_t)len,
		  splice_in(self->pipe[0], self->fd, len, SPLICE_F_MOVE));
	self->pos += len;
	ASSERT_EQ(-1, zt_check_stream(self->fd, &self->rpos, len));

	ASSERT_EQ(0, zt_stats(self->fd, &now));
	EXPECT_EQ(2 * len, DELTA(self, now, bytes_spliced_in_copied));
	EXPECT_EQ(0, DELTA(self, now, pages_stolen_in));
}

/*
 * Invariant 1: what a pipe holds never changes, whatever the ring does
 * next. Fill the ring, splice all of it out, overwrite every slot, reset,
 * resize; the pipe still reads the original bytes, and the slots that a
 * pipe still held were given fresh pages (page_swaps).
 */
TEST_F(ring, pipe_bytes_survive_overwrite_reset_and_resize)
{
	size_t ring = 16 * PS;
	struct zcdev_stats now;

	ASSERT_EQ(0, zt_put_stream(self->fd, &self->pos, ring));
	ASSERT_EQ((ssize_t)ring, splice_out(self->fd, self->pipe[1], ring));

	/* Overwrite every slot twice with other bytes. */
	uint8_t *junk = malloc(ring);

	memset(junk, 0xee, ring);
	for (int i = 0; i < 2; i++) {
		ASSERT_EQ(0, zt_write_all(self->fd, junk, ring));
		ASSERT_EQ((ssize_t)ring, zt_read_all(self->fd, junk, ring));
	}
	ASSERT_EQ(0, zt_write_all(self->fd, junk, ring / 2));
	ASSERT_EQ(0, zcdev_reset(self->fd));
	ASSERT_EQ(0, zt_resize(self->fd, 4));
	ASSERT_EQ(0, zt_resize(self->fd, 16));
	free(junk);

	ASSERT_EQ(-1, zt_check_stream(self->pipe[0], &self->rpos, ring));
	ASSERT_EQ(0, zt_stats(self->fd, &now));
	EXPECT_EQ(16, DELTA(self, now, page_swaps));
	EXPECT_EQ(16, now.pages_held);
}

/*
 * A page can hold unread bytes and the bytes a pipe took at once (the
 * ring wraps mid-page). The swap carries the unread bytes over.
 */
TEST_F(ring, page_swap_carries_unread_bytes_of_a_partial_page)
{
	size_t ring = 16 * PS;
	struct zcdev_stats now;

	/* Put tail in the middle of a page, then lend that page. */
	ASSERT_EQ(0, zt_put_stream(self->fd, &self->pos, ring));
	ASSERT_EQ((ssize_t)100, splice_out(self->fd, self->pipe[1], 100));
	/* Wrap: the writer comes back to the lent page, fills its 100 bytes. */
	ASSERT_EQ(0, zt_put_stream(self->fd, &self->pos, 100));

	ASSERT_EQ(0, zt_stats(self->fd, &now));
	EXPECT_EQ(1, DELTA(self, now, page_swaps));
	ASSERT_EQ(-1, zt_check_stream(self->pipe[0], &self->rpos, 100));
	ASSERT_EQ(-1, zt_check_stream(self->fd, &self->rpos, ring));
}

/*
 * Invariant 3: buffers handed to a pipe carry no CAN_MERGE flag. If they
 * did, the next write(2) to the pipe would append into the ring's page
 * (CVE-2022-0847, Dirty Pipe) and the ring's unread bytes would change.
 */
TEST_F(ring, pipe_writes_never_merge_into_ring_pages)
{
	char x[200];

	ASSERT_EQ(0, zt_put_stream(self->fd, &self->pos, 2 * PS));
	ASSERT_EQ(100, splice_out(self->fd, self->pipe[1], 100));
	memset(x, 'X', sizeof(x));
	ASSERT_EQ((ssize_t)sizeof(x), write(self->pipe[1], x, sizeof(x)));

	ASSERT_EQ(-1, zt_check_stream(self->pipe[0], &self->rpos, 100));
	char back[sizeof(x)];

	ASSERT_EQ((ssize_t)sizeof(x), read(self->pipe[0], back, sizeof(back)));
	ASSERT_EQ(0, memcmp(x, back, sizeof(x)));
	ASSERT_EQ(-1, zt_check_stream(self->fd, &self->rpos, 2 * PS - 100));
}

/* tee() duplicates the spliced buffers: both pipes read the same bytes. */
TEST_F(ring, tee_of_spliced_pages)
{
	int other[2];
	uint64_t rpos2 = 0;

	ASSERT_EQ(0, pipe2(other, O_NONBLOCK));
	ASSERT_EQ(0, zt_put_stream(self->fd, &self->pos, 5 * PS + 123));
	ASSERT_EQ((ssize_t)(5 * PS + 123),
		  splice_out(self->fd, self->pipe[1], 5 * PS + 123));
	ASSERT_EQ((ssize_t)(5 * PS + 123),
		  tee(self->pipe[0], other[1], 5 * PS + 123, SPLICE_F_NONBLOCK));
	ASSERT_EQ(-1, zt_check_stream(other[0], &rpos2, 5 * PS + 123));
	ASSERT_EQ(-1, zt_check_stream(self->pipe[0], &self->rpos, 5 * PS + 123));
	close(other[0]);
	close(other[1]);
}

/*
 * A lend with no writable mapping in sight zaps nothing: a reader's
 * read-only PTE stays on the lent page. When the ring comes round and a
 * page stolen from a pipe takes that slot, the reader must see the new
 * page, not the old one the first pipe still holds. Before, the steal
 * skipped the zap for a lent slot ("it was zapped when lent").
 */
TEST_F(ring, read_only_mapping_sees_a_page_stolen_into_a_lent_slot)
{
	const struct zcdev_ring_meta *meta;
	uint8_t *a = malloc(PS), *b = malloc(PS), *got = malloc(PS);
	struct rusage ru;
	long faults;
	struct zcdev_info info;
	struct zcdev_stats now;
	const uint8_t *map;
	int rfd, held[2];
	uint64_t slot;

	ASSERT_TRUE(a && b && got);
	memset(a, 0xa1, PS);
	memset(b, 0xb2, PS);
	ASSERT_EQ(0, zt_fresh_ring(self->fd, 4));
	ASSERT_EQ(0, zt_info(self->fd, &info));
	rfd = zt_open(O_RDONLY);
	ASSERT_LE(0, rfd);
	meta = mmap(NULL, PS, PROT_READ, MAP_SHARED, rfd, info.meta_offset);
	ASSERT_NE(MAP_FAILED, meta);
	map = mmap(NULL, 2 * info.ring_bytes, PROT_READ, MAP_SHARED, rfd,
		   info.data_offset);
	ASSERT_NE(MAP_FAILED, map);
	ASSERT_EQ(0, pipe(held));
	slot = __atomic_load_n(&meta->head, __ATOMIC_ACQUIRE) / PS % 4;

	/*
	 * A in the slot, seen through the read-only mapping, then lent. No
	 * mapping could write it, so nothing is zapped: the reader's PTE is
	 * still there (no trap to read it again), which is the case at hand.
	 */
	ASSERT_EQ(0, zt_write_all(self->fd, a, PS));
	ASSERT_EQ(0xa1, map[slot * PS]);
	ASSERT_EQ((ssize_t)PS, splice_out(self->fd, held[1], PS));
	getrusage(RUSAGE_SELF, &ru);
	faults = ru.ru_minflt;
	ASSERT_EQ(0xa1, map[slot * PS]);
	getrusage(RUSAGE_SELF, &ru);
	ASSERT_EQ(faults, ru.ru_minflt) {
		TH_LOG("the lend zapped the read-only mapping: a writable mapping of the device exists?");
	}

	/* Round the ring to the same slot, then steal B into it. */
	for (int i = 1; i < 4; i++) {
		ASSERT_EQ(0, zt_write_all(self->fd, b, PS));
		ASSERT_EQ((ssize_t)PS, zt_read_all(self->fd, got, PS));
	}
	ASSERT_EQ(slot, __atomic_load_n(&meta->head, __ATOMIC_ACQUIRE) / PS % 4);
	ASSERT_EQ((ssize_t)PS, write(self->pipe[1], b, PS));
	ASSERT_EQ((ssize_t)PS, splice_in(self->pipe[0], self->fd, PS,
					 SPLICE_F_MOVE));
	ASSERT_EQ(0, zt_stats(self->fd, &now));
	ASSERT_EQ(1, DELTA(self, now, pages_stolen_in));

	EXPECT_EQ(0xb2, map[slot * PS]) {
		TH_LOG("the read-only mapping still shows the lent page");
	}
	EXPECT_EQ(0xb2, map[(slot + 4) * PS]);
	ASSERT_EQ((ssize_t)PS, zt_read_all(self->fd, got, PS));
	EXPECT_EQ(0, memcmp(got, b, PS));
	ASSERT_EQ((ssize_t)PS, zt_read_all(held[0], got, PS));
	EXPECT_EQ(0, memcmp(got, a, PS));

	munmap((void *)map, 2 * info.ring_bytes);
	munmap((void *)meta, PS);
	close(held[0]);
	close(held[1]);
	close(rfd);
	free(a);
	free(b);
	free(got);
}

/*
 * Invariant 2: a page zcdev did not allocate or safely steal is never
 * writable through zcdev. Splice a read-only file's pages in (with MOVE),
 * scribble over the ring through the mapping, and the file is unchanged.
 */
TEST_F(ring, read_only_file_pages_stay_unwritable)
{
	char path[] = "/tmp/zcdev-ro-XXXXXX";
	size_t len = 4 * PS;
	uint8_t *map;
	int file;

	file = mkstemp(path);
	ASSERT_LE(0, file);
	ASSERT_EQ(0, zt_put_stream(file, &self->pos, len));
	close(file);
	ASSERT_EQ(0, chmod(path, 0444));
	file = open(path, O_RDONLY);
	ASSERT_LE(0, file);

	ASSERT_EQ((ssize_t)len, splice(file, NULL, self->pipe[1], NULL, len, 0));
	ASSERT_EQ((ssize_t)len,
		  splice_in(self->pipe[0], self->fd, len, SPLICE_F_MOVE));

	map = mmap(NULL, 32 * PS, PROT_READ | PROT_WRITE, MAP_SHARED,
		   self->fd, PS);
	ASSERT_NE(MAP_FAILED, map);
	memset(map, 0x5a, 32 * PS);
	ASSERT_EQ(0, munmap(map, 32 * PS));

	uint64_t fpos = 0;

	ASSERT_EQ(0, lseek(file, 0, SEEK_SET));
	ASSERT_EQ(-1, zt_check_stream(file, &fpos, len));
	close(file);
	unlink(path);
}

/* Non-blocking and end-of-file behaviour of both directions. */
TEST_F(ring, nonblocking_and_eof)
{
	int ro;

	/* Empty ring, a writer open (self->fd): EAGAIN, not EOF. */
	EXPECT_EQ(-1, splice_out(self->fd, self->pipe[1], PS));
	EXPECT_EQ(EAGAIN, errno);

	/* Full ring: splice in cannot wait. */
	ASSERT_EQ(0, zt_put_stream(self->fd, &self->pos, 16 * PS));
	uint8_t one = 1;

	ASSERT_EQ(1, write(self->pipe[1], &one, 1));
	EXPECT_EQ(-1, splice_in(self->pipe[0], self->fd, 1, 0));
	EXPECT_EQ(EAGAIN, errno);
	ASSERT_EQ(1, read(self->pipe[0], &one, 1));
	ASSERT_EQ(0, zcdev_reset(self->fd));

	/* No writer anywhere: an empty ring is end of file. */
	ro = zt_open(O_RDONLY);
	ASSERT_LE(0, ro);
	close(self->fd);
	self->fd = -1;
	EXPECT_EQ(0, splice(ro, NULL, self->pipe[1], NULL, PS, 0));
	self->fd = zt_open(O_RDWR | O_NONBLOCK);
	close(ro);
	ASSERT_LE(0, self->fd);
}

/* A pipe with no reader: EPIPE, and the ring keeps its bytes. */
TEST_F(ring, splice_out_to_a_closed_pipe_keeps_the_data)
{
	ASSERT_EQ(0, zt_put_stream(self->fd, &self->pos, 3000));
	signal(SIGPIPE, SIG_IGN);
	close(self->pipe[0]);
	EXPECT_EQ(-1, splice_out(self->fd, self->pipe[1], 3000));
	EXPECT_EQ(EPIPE, errno);
	self->pipe[0] = open("/dev/null", O_RDONLY);
	ASSERT_EQ(-1, zt_check_stream(self->fd, &self->rpos, 3000));
}

/* sendfile() from the device is splice out: no CPU copy either. */
TEST_F(ring, sendfile_uses_the_splice_engine)
{
	struct zcdev_stats now;
	int null = open("/dev/null", O_WRONLY);

	ASSERT_LE(0, null);
	for (int i = 0; i < 16; i++) {
		ASSERT_EQ(0, zt_put_stream(self->fd, &self->pos, 10 * PS + 7));
		ASSERT_EQ((ssize_t)(10 * PS + 7),
			  sendfile(null, self->fd, NULL, 10 * PS + 7));
	}
	close(null);
	ASSERT_EQ(0, zt_stats(self->fd, &now));
	EXPECT_EQ(0, DELTA(self, now, bytes_read_copy));
	EXPECT_EQ(self->pos, DELTA(self, now, bytes_spliced_out));
}

/* The tracepoints show what each call did (when tracefs is there). */
TEST_F(ring, tracepoints_report_pages_moved)
{
	const char *dir = "/sys/kernel/tracing";
	char path[256], line[512];
	int found = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/events/zcdev/zcdev_xfer_splice_out/enable", dir);
	f = fopen(path, "w");
	if (!f)
		SKIP(return, "tracefs not mounted at %s", dir);
	fputs("1", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/trace", dir);
	f = fopen(path, "w");
	ASSERT_NE(NULL, f);
	fclose(f);

	ASSERT_EQ(0, zt_put_stream(self->fd, &self->pos, 3 * PS));
	ASSERT_EQ((ssize_t)(3 * PS), splice_out(self->fd, self->pipe[1], 3 * PS));

	f = fopen(path, "r");
	ASSERT_NE(NULL, f);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "zcdev_xfer_splice_out") &&
		    strstr(line, "pages_moved=3 bytes_copied=0"))
			found = 1;
	fclose(f);
	snprintf(path, sizeof(path), "%s/events/zcdev/zcdev_xfer_splice_out/enable", dir);
	f = fopen(path, "w");
	if (f) {
		fputs("0", f);
		fclose(f);
	}
	EXPECT_TRUE(found);
}

/*
 * Invariant 3 again: the pipe buffers do not point into module memory.
 * Unload the module while a pipe holds ring pages, then read the pipe.
 */
TEST(pipe_pages_outlive_the_module)
{
	const char *ko = getenv("ZCDEV_KO");
	uint64_t pos = 0, rpos = 0;
	int fd, p[2], kofd;

	if (!ko)
		SKIP(return, "ZCDEV_KO not set: cannot reload the module");
	fd = zt_open(O_RDWR | O_NONBLOCK);
	if (fd < 0)
		SKIP(return, "%s missing", zt_dev_path());
	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ(0, zt_fresh_ring(fd, 256));
	ASSERT_EQ(0, zt_put_stream(fd, &pos, 9 * PS + 5));
	ASSERT_EQ((ssize_t)(9 * PS + 5), splice_out(fd, p[1], 9 * PS + 5));
	close(fd);

	ASSERT_EQ(0, syscall(__NR_delete_module, "zcdev", O_NONBLOCK));
	ASSERT_EQ(-1, zt_check_stream(p[0], &rpos, 9 * PS + 5));
	close(p[0]);
	close(p[1]);

	kofd = open(ko, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, kofd);
	ASSERT_EQ(0, syscall(__NR_finit_module, kofd, "", 0));
	close(kofd);
}

TEST_HARNESS_MAIN
