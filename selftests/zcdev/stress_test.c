// SPDX-License-Identifier: GPL-2.0
/*
 * Stress (docs/design.md, invariant 5): producers and consumers in several
 * processes and threads, each choosing a path at random for every
 * operation, while the ring is resized under them and SIGUSR1 interrupts
 * their calls. Every byte is checked.
 *
 * Design, the simplest one that still runs the kernel's paths at once:
 *
 *  - The stream is made of 64-byte records: a magic, the producer's id,
 *    the path that produced it, a per-producer sequence number, filler
 *    derived from both, and a checksum over the rest.
 *
 *  - The ring promises no atomicity between concurrent writers (a write()
 *    may be split at any page boundary, or by a signal) nor between
 *    concurrent readers, so records would tear. Each producer therefore
 *    appends one batch of whole records holding prod_lock, a
 *    process-shared mutex, and each consumer holds cons_lock while it
 *    takes records, finishing any record it has begun. Producers still
 *    run against consumers, resizes, signals and noise in the kernel at
 *    any moment. The noise threads call write() and read() with a NULL
 *    buffer (EFAULT: the ring must not move), PRODUCE/CONSUME of 0 bytes,
 *    poll and the stats ioctls, and they read the ring through a mapping,
 *    so produce_lock, consume_lock, ring_lock and the fault handler always
 *    have several tasks at them.
 *
 *  - Producers are serialised and the ring is a FIFO, so producer p's
 *    records arrive with sequence numbers 0, 1, 2, ... in order: every
 *    consumer checks seq == expected[p], which catches a lost, duplicated,
 *    reordered or corrupted record at the first wrong one, and at the end
 *    expected[p] == produced[p] for every producer.
 *
 *  - The mmap producer and consumer find head and tail on the meta page,
 *    and a byte's offset in the mapping depends on the ring's size. A
 *    resize would move the bytes under them (and it keeps only unread
 *    bytes, not uncommitted ones), so an mmap operation holds shape_lock
 *    (a process-shared rwlock) for reading and a resize holds it for
 *    writing. The copy and splice paths do not take it: resizes race with
 *    them inside the kernel.
 *
 *  - RESET drops data, so it happens only in a quiet phase: every few
 *    seconds the producers park, the consumers drain the ring until every
 *    record produced has been consumed, and the controller writes junk,
 *    resets, and checks that the ring is empty, aligned and holds the
 *    pages it should. Junk that survived a reset would trip the consumers.
 *
 *  - SIGUSR1 (a no-op handler, no SA_RESTART) goes to random threads all
 *    along, and to every thread to wake the blocked ones when a phase
 *    ends: EINTR and short counts must lose nothing, so every call carries
 *    on from where it stopped.
 *
 * ZCDEV_STRESS_SECONDS sets the duration (default 20), ZCDEV_STRESS_SEED
 * the seed of the random choices (the interleaving is not reproducible).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>

#include "kselftest_harness.h"
#include "zcdev_test.h"

#define REC		64		/* bytes per record; divides any page size */
#define MAGIC		0x7a637273u	/* "zcrs" */
#define MAXP		64		/* largest ring the stress resizes to */
#define BATCH_MAX	256		/* records per producer operation (16 KiB) */
#define WANT_MAX	(15 * 64)	/* records per consumer operation */
#define MAX_RECORDS	(1ULL << 24)	/* per producer: the count bound */
#define MAX_THREADS	16
#define MAX_PROCS	8

/*
 * Who runs where: one string per process, one letter per thread
 * (P producer, C consumer, N noise).
 */
static const char *const layout[] = { "PC", "PP", "C", "CPN", "N" };
#define NPROC	5
#define NPROD	4
#define NCONS	3
#define NNOISE	2

enum { P_WRITE, P_MMAP, P_SPLICE, P_VMSPLICE, NR_PPATHS };
enum { C_READ, C_MMAP, C_SPLICE, C_SENDFILE, C_SENDSOCK, NR_CPATHS };
static const char *const ppath_name[] = { "write", "mmap", "splice", "vmsplice" };
static const char *const cpath_name[] = {
	"read", "mmap", "splice", "sendfile", "sendfile-short",
};

struct rec {
	uint32_t magic;
	uint16_t prod;
	uint16_t path;
	uint64_t seq;
	uint8_t fill[40];
	uint64_t sum;
};

_Static_assert(sizeof(struct rec) == REC, "record size");

/* Everything the processes share: one MAP_SHARED anonymous mapping. */
struct shared {
	pthread_mutex_t prod_lock;
	pthread_mutex_t cons_lock;
	pthread_rwlock_t shape_lock;

	int pause, stop, failed;
	int parked[3];			/* per role: P, C, N */
	int ready;			/* threads set up */

	uint64_t next_seq[NPROD];	/* records each producer committed */
	uint64_t expect_seq[NPROD];	/* records consumed of each producer */
	uint64_t produced_bytes, consumed_bytes;

	uint64_t pops[NR_PPATHS], cops[NR_CPATHS];
	uint64_t eintr, shorts, eagain, noise_ops, sigbus;
	uint64_t resizes, ebusy, resets, signals, phases;

	struct { pid_t tgid, tid; } thr[MAX_THREADS];
	int nthr;

	char msg[1024];
};

enum { R_PROD, R_CONS, R_NOISE };

struct worker {
	struct shared *sh;
	int role, id;
	int fd, nbfd;			/* blocking and non-blocking opens */
	int pipe[2];
	/*
	 * sendfile-short: a socket pair whose sending end is non-blocking
	 * with the smallest send buffer, so that sendfile()'s output takes
	 * less than was spliced (the kernel's internal pipe then releases the
	 * rest, which must stay in the ring).
	 */
	int sock[2];
	uint8_t *data;			/* data pages, 2 * MAXP pages */
	struct zcdev_ring_meta *meta;
	uint64_t rng;
	uint8_t *buf;
	size_t ps;
};

static __thread sigjmp_buf probe_env;
static __thread volatile int probing;

static void on_usr1(int sig)
{
	(void)sig;
}

/* SIGBUS/SIGSEGV while a noise thread probes the mapping: expected. */
static void on_fault(int sig)
{
	if (probing)
		siglongjmp(probe_env, 1);
	signal(sig, SIG_DFL);
	raise(sig);
}

static uint64_t rnd(uint64_t *s)
{
	/* xorshift64* */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dULL;
}

/* Acquire loads: of our counters, and of the meta page as the ABI says. */
#define ld(p) ((uint64_t)__atomic_load_n((p), __ATOMIC_ACQUIRE))

static int ldi(const int *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void sti(int *p, int v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static void add(uint64_t *p, uint64_t v)
{
	__atomic_add_fetch(p, v, __ATOMIC_RELAXED);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void fail(struct shared *sh, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	zt_fail_once(&sh->failed, sh->msg, sizeof(sh->msg), fmt, ap);
	va_end(ap);
}

static uint64_t rec_sum(const struct rec *r)
{
	const uint8_t *p = (const uint8_t *)r;
	uint64_t h = 0xcbf29ce484222325ULL;	/* FNV-1a */

	for (size_t i = 0; i < offsetof(struct rec, sum); i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

static void rec_make(struct rec *r, unsigned int prod, uint64_t seq,
		     unsigned int path)
{
	r->magic = MAGIC;
	r->prod = prod;
	r->path = path;
	r->seq = seq;
	for (int i = 0; i < 40; i++)
		r->fill[i] = (uint8_t)(seq * 31 + prod * 7 + i * 13);
	r->sum = rec_sum(r);
}

static void wait_fd(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };

	poll(&p, 1, 10);
}

/* A random piece of @len: all of it half the time. */
static size_t piece(struct worker *w, size_t len)
{
	if (len <= 1 || rnd(&w->rng) % 2)
		return len;
	return 1 + rnd(&w->rng) % len;
}

/* ---- producers: each returns true once all of @len is in the ring ---- */

/*
 * A producer's call that an interruption or a full ring stopped is simply
 * made again (after waiting for room); true when that is the case.
 */
static bool producer_retry(struct worker *w, ssize_t r)
{
	if (r >= 0)
		return false;
	if (errno == EINTR) {
		add(&w->sh->eintr, 1);
		return true;
	}
	if (errno == EAGAIN) {
		add(&w->sh->eagain, 1);
		wait_fd(w->fd, POLLOUT);
		return true;
	}
	return false;
}

static bool put_write(struct worker *w, const uint8_t *p, size_t len)
{
	struct shared *sh = w->sh;

	while (len && !ldi(&sh->failed)) {
		size_t n = piece(w, len);
		ssize_t r = write(rnd(&w->rng) % 4 ? w->fd : w->nbfd, p, n);

		if (producer_retry(w, r))
			continue;
		if (r <= 0) {
			fail(sh, "producer %d: write(%zu) = %zd: %s", w->id, n, r,
			     strerror(errno));
			return false;
		}
		if ((size_t)r < n)
			add(&sh->shorts, 1);
		p += r;
		len -= r;
	}
	return !len;
}

static int ioctl_u64(struct worker *w, unsigned long cmd, uint64_t v)
{
	for (;;) {
		if (!ioctl(w->fd, cmd, &v))
			return 0;
		if (errno != EINTR || ldi(&w->sh->failed))
			return -1;
		add(&w->sh->eintr, 1);
	}
}

static bool put_mmap(struct worker *w, const uint8_t *p, size_t len)
{
	struct shared *sh = w->sh;

	pthread_rwlock_rdlock(&sh->shape_lock);
	while (len && !ldi(&sh->failed)) {
		uint64_t tail = ld(&w->meta->tail), head = ld(&w->meta->head);
		uint64_t rb = ld(&w->meta->ring_bytes);
		size_t n = piece(w, len);

		if (rb - (head - tail) < n)
			n = rb - (head - tail);
		if (!n) {
			/* Full: let a resize in while we wait for room. */
			pthread_rwlock_unlock(&sh->shape_lock);
			wait_fd(w->fd, POLLOUT);
			pthread_rwlock_rdlock(&sh->shape_lock);
			continue;
		}
		memcpy(w->data + head % rb, p, n);
		if (ioctl_u64(w, ZCDEV_IOC_PRODUCE, n)) {
			fail(sh, "producer %d: PRODUCE(%zu) at head %llu: %s", w->id,
			     n, (unsigned long long)head, strerror(errno));
			break;
		}
		/* We are the only producer: head is where we put it. */
		if (ld(&w->meta->head) != head + n) {
			fail(sh, "producer %d: PRODUCE(%zu): head %llu -> %llu", w->id,
			     n, (unsigned long long)head,
			     (unsigned long long)ld(&w->meta->head));
			break;
		}
		p += n;
		len -= n;
	}
	pthread_rwlock_unlock(&sh->shape_lock);
	return !len;
}

/* Splice everything the pipe holds (@len bytes) into the ring. */
static bool splice_from_pipe(struct worker *w, size_t len)
{
	struct shared *sh = w->sh;

	while (len && !ldi(&sh->failed)) {
		unsigned int flags = SPLICE_F_MOVE;
		int fd = w->fd;
		ssize_t r;

		if (rnd(&w->rng) % 4 == 0)
			flags |= SPLICE_F_NONBLOCK;
		if (rnd(&w->rng) % 4 == 0)
			fd = w->nbfd;
		r = splice(w->pipe[0], NULL, fd, NULL,
			   rnd(&w->rng) % 2 ? len : piece(w, len), flags);
		if (producer_retry(w, r))
			continue;
		if (r <= 0) {
			fail(sh, "producer %d: splice in (%zu left) = %zd: %s", w->id,
			     len, r, strerror(errno));
			return false;
		}
		len -= r;
	}
	return !len;
}

static bool put_splice(struct worker *w, const uint8_t *p, size_t len)
{
	bool whole = rnd(&w->rng) % 2;
	size_t left = len;
	const uint8_t *q = p;

	/*
	 * The pipe (64 KiB) holds a whole batch: fill it, then drain it. Half
	 * the time in one write(), so that the pipe's buffers are whole pages
	 * that splice in may steal.
	 */
	while (left) {
		ssize_t r = write(w->pipe[1], q, whole ? left : piece(w, left));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			fail(w->sh, "producer %d: write to pipe: %s", w->id,
			     strerror(errno));
			return false;
		}
		q += r;
		left -= r;
	}
	return splice_from_pipe(w, len);
}

static bool put_vmsplice(struct worker *w, const uint8_t *p, size_t len)
{
	size_t maplen = (len + w->ps - 1) & ~(w->ps - 1);
	struct iovec iov;
	uint8_t *gift;
	bool ok;

	gift = mmap(NULL, maplen, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (gift == MAP_FAILED) {
		fail(w->sh, "producer %d: mmap: %s", w->id, strerror(errno));
		return false;
	}
	memcpy(gift, p, len);
	iov.iov_base = gift;
	iov.iov_len = len;
	while (iov.iov_len) {
		ssize_t r = vmsplice(w->pipe[1], &iov, 1, SPLICE_F_GIFT);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			fail(w->sh, "producer %d: vmsplice: %s", w->id, strerror(errno));
			munmap(gift, maplen);
			return false;
		}
		iov.iov_base = (uint8_t *)iov.iov_base + r;
		iov.iov_len -= r;
	}
	ok = splice_from_pipe(w, len);
	/* Gifted pages are copied in, never taken: ours to unmap now. */
	munmap(gift, maplen);
	return ok;
}

static size_t batch_size(struct worker *w)
{
	switch (rnd(&w->rng) % 4) {
	case 0:
	case 1:
		return 1 + rnd(&w->rng) % 32;
	case 2:	/* whole pages keep head aligned: splice in can steal */
		return (w->ps / REC) * (1 + rnd(&w->rng) % 4);
	default:
		return 1 + rnd(&w->rng) % BATCH_MAX;
	}
}

static void producer_op(struct worker *w)
{
	struct shared *sh = w->sh;
	unsigned int path = rnd(&w->rng) % NR_PPATHS;
	uint64_t seq = sh->next_seq[w->id], head;
	size_t k, len;
	bool ok = false;

	if (seq >= MAX_RECORDS) {
		usleep(1000);
		return;
	}

	pthread_mutex_lock(&sh->prod_lock);
	/*
	 * Often end the batch on a page boundary: the next one starts on a
	 * whole page, which splice in needs to steal pages.
	 */
	head = ld(&w->meta->head);
	k = batch_size(w);
	if (head % w->ps && rnd(&w->rng) % 2)
		k = (w->ps - head % w->ps) / REC;
	len = k * REC;
	for (size_t i = 0; i < k; i++)
		rec_make((struct rec *)(w->buf + i * REC), w->id, seq + i, path);

	switch (path) {
	case P_WRITE:
		ok = put_write(w, w->buf, len);
		break;
	case P_MMAP:
		ok = put_mmap(w, w->buf, len);
		break;
	case P_SPLICE:
		ok = put_splice(w, w->buf, len);
		break;
	case P_VMSPLICE:
		ok = put_vmsplice(w, w->buf, len);
		break;
	}
	if (ok) {
		__atomic_store_n(&sh->next_seq[w->id], seq + k, __ATOMIC_RELEASE);
		add(&sh->produced_bytes, len);
		add(&sh->pops[path], 1);
	}
	pthread_mutex_unlock(&sh->prod_lock);
}

/* ---- consumers ---- */

/* Check @len bytes of whole records; called holding cons_lock. */
static bool check_records(struct worker *w, const uint8_t *p, size_t len,
			  unsigned int path)
{
	struct shared *sh = w->sh;

	for (size_t off = 0; off < len; off += REC) {
		struct rec r, want;
		char hex[3 * 24 + 1];

		memcpy(&r, p + off, REC);
		if (r.magic == MAGIC && r.prod < NPROD) {
			rec_make(&want, r.prod, sh->expect_seq[r.prod], r.path);
			if (!memcmp(&r, &want, REC)) {
				sh->expect_seq[r.prod]++;
				continue;
			}
		}
		for (int i = 0; i < 24; i++)
			sprintf(hex + 3 * i, "%02x ", p[off + i]);
		fail(sh, "consumer %d (%s): bad record at stream byte %llu (tail %llu, "
		     "head %llu, generation %llu): magic %#x prod %u path %u seq %llu "
		     "sum %s; expected seq %llu; bytes: %s",
		     w->id, cpath_name[path],
		     (unsigned long long)(sh->consumed_bytes + off),
		     (unsigned long long)ld(&w->meta->tail),
		     (unsigned long long)ld(&w->meta->head),
		     (unsigned long long)ld(&w->meta->generation), r.magic, r.prod,
		     r.path, (unsigned long long)r.seq,
		     r.sum == rec_sum(&r) ? "ok" : "BAD",
		     (unsigned long long)(r.prod < NPROD ? sh->expect_seq[r.prod] : 0),
		     hex);
		return false;
	}
	sh->consumed_bytes += len;
	return true;
}

/* Bytes of a partial record still to come; 0 when @got is whole records. */
static size_t rest(size_t got)
{
	return got % REC ? REC - got % REC : 0;
}

/*
 * One call that may block, interrupted or short: returns bytes, 0 to give
 * up the operation (nothing taken yet and nothing there), -1 on failure.
 * Once a record is begun it must be finished, whatever it takes.
 */
static ssize_t retry_or_giveup(struct worker *w, ssize_t r, size_t got,
			       short events, const char *what)
{
	struct shared *sh = w->sh;

	if (r > 0)
		return r;
	if (r < 0 && (errno == EINTR || errno == EAGAIN)) {
		add(errno == EINTR ? &sh->eintr : &sh->eagain, 1);
		if (errno == EAGAIN)
			wait_fd(w->fd, events);
		return got && !ldi(&sh->failed) ? -2 : 0;
	}
	fail(sh, "consumer %d: %s = %zd: %s", w->id, what, r,
	     r ? strerror(errno) : "end of file with a writer open");
	return -1;
}

static bool read_pipe(struct worker *w, int fd, uint8_t *p, size_t len)
{
	while (len) {
		ssize_t r = read(fd, p, len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			fail(w->sh, "consumer %d: read from pipe: %zd: %s", w->id, r,
			     strerror(errno));
			return false;
		}
		p += r;
		len -= r;
	}
	return true;
}

/* read(), splice out or sendfile into w->buf: bytes (whole records) or -1. */
static ssize_t get_copy(struct worker *w, unsigned int path, size_t want)
{
	size_t got = 0;

	do {
		size_t ask = got ? rest(got) : want;
		int fd = rnd(&w->rng) % 3 ? w->fd : w->nbfd;
		unsigned int flags = 0;
		ssize_t r;

		switch (path) {
		case C_READ:
			r = read(fd, w->buf + got, ask);
			break;
		case C_SPLICE:
			if (rnd(&w->rng) % 3 == 0)
				flags |= SPLICE_F_NONBLOCK;
			if (rnd(&w->rng) % 3 == 0)
				flags |= SPLICE_F_MOVE;
			r = splice(fd, NULL, w->pipe[1], NULL, ask, flags);
			break;
		case C_SENDFILE:
			r = sendfile(w->pipe[1], fd, NULL, ask);
			break;
		default:
			r = sendfile(w->sock[0], fd, NULL, ask);
			break;
		}
		r = retry_or_giveup(w, r, got, POLLIN, cpath_name[path]);
		if (r == -2)
			continue;
		if (r <= 0)
			return r;
		if (path != C_READ &&
		    !read_pipe(w, path == C_SENDSOCK ? w->sock[1] : w->pipe[0],
			       w->buf + got, r))
			return -1;
		if ((size_t)r < ask)
			add(&w->sh->shorts, 1);
		got += r;
	} while (rest(got));
	return got;
}

/* Check records in place through the mapping, then CONSUME them. */
static ssize_t get_mmap(struct worker *w, size_t want)
{
	struct shared *sh = w->sh;
	uint64_t head, tail, rb;
	size_t n;

	pthread_rwlock_rdlock(&sh->shape_lock);
	tail = ld(&w->meta->tail);
	head = ld(&w->meta->head);
	rb = ld(&w->meta->ring_bytes);
	/* tail is always on a record boundary: consumers take whole records. */
	n = (head - tail) / REC * REC;
	if (n > want)
		n = want;
	if (!n) {
		pthread_rwlock_unlock(&sh->shape_lock);
		wait_fd(w->fd, POLLIN);
		return 0;
	}
	if (tail % REC) {
		fail(sh, "consumer %d: tail %llu is not on a record boundary", w->id,
		     (unsigned long long)tail);
		n = 0;
	} else if (check_records(w, w->data + tail % rb, n, C_MMAP)) {
		size_t first = piece(w, n);

		if (ioctl_u64(w, ZCDEV_IOC_CONSUME, first) ||
		    (first < n && ioctl_u64(w, ZCDEV_IOC_CONSUME, n - first))) {
			fail(sh, "consumer %d: CONSUME at tail %llu: %s", w->id,
			     (unsigned long long)tail, strerror(errno));
		} else if (ld(&w->meta->tail) != tail + n) {
			fail(sh, "consumer %d: CONSUME(%zu): tail %llu -> %llu", w->id,
			     n, (unsigned long long)tail,
			     (unsigned long long)ld(&w->meta->tail));
		}
	}
	pthread_rwlock_unlock(&sh->shape_lock);
	return ldi(&sh->failed) ? -1 : (ssize_t)n;
}

static void consumer_op(struct worker *w)
{
	struct shared *sh = w->sh;
	unsigned int path = rnd(&w->rng) % NR_CPATHS;
	size_t want = (1 + rnd(&w->rng) % WANT_MAX) * REC;
	ssize_t got;

	pthread_mutex_lock(&sh->cons_lock);
	if (path == C_MMAP) {
		got = get_mmap(w, want);
	} else {
		got = get_copy(w, path, want);
		if (got > 0 && !check_records(w, w->buf, got, path))
			got = -1;
	}
	if (got > 0) {
		add(&sh->cops[path], 1);
		/* Published after the check: the drain test below reads it. */
		__atomic_thread_fence(__ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&sh->cons_lock);
}

/* ---- noise: calls that must leave the stream alone ---- */

static void noise_op(struct worker *w)
{
	struct shared *sh = w->sh;
	struct zcdev_stats st;
	struct zcdev_info info;
	struct pollfd pfd = { .fd = w->fd, .events = POLLIN | POLLOUT };
	size_t len = 1 + rnd(&w->rng) % (4 * w->ps);
	uint64_t zero = 0;
	void *volatile nowhere = NULL;	/* unmapped: the copy faults */
	ssize_t r;

	switch (rnd(&w->rng) % 8) {
	case 0:
		if (zt_stats(w->fd, &st) || zt_info(w->fd, &info))
			fail(sh, "noise: stats/info: %s", strerror(errno));
		break;
	case 1:
		poll(&pfd, 1, 0);
		break;
	case 2:
		r = write(w->nbfd, nowhere, len);
		if (r >= 0 || (errno != EFAULT && errno != EAGAIN && errno != EINTR))
			fail(sh, "noise: write(NULL, %zu) = %zd (%s)", len, r,
			     r < 0 ? strerror(errno) : "bytes from nowhere");
		break;
	case 3:
		r = read(w->nbfd, nowhere, len);
		if (r >= 0 || (errno != EFAULT && errno != EAGAIN && errno != EINTR))
			fail(sh, "noise: read(NULL, %zu) = %zd (%s)", len, r,
			     r < 0 ? strerror(errno) : "bytes into nowhere");
		break;
	case 4:
		if (ioctl(w->fd, ZCDEV_IOC_PRODUCE, &zero) && errno != EINTR)
			fail(sh, "noise: PRODUCE(0): %s", strerror(errno));
		if (ioctl(w->fd, ZCDEV_IOC_CONSUME, &zero) && errno != EINTR)
			fail(sh, "noise: CONSUME(0): %s", strerror(errno));
		break;
	default:
		/*
		 * Fault ring pages in: half the time where the action is, the
		 * pages at head and tail (a monitor reading the ring would), else
		 * anywhere; SIGBUS past the ring.
		 */
		probing = 1;
		if (!sigsetjmp(probe_env, 1)) {
			uint64_t rb = ld(&w->meta->ring_bytes);
			uint64_t at = ld(rnd(&w->rng) % 2 ? &w->meta->head : &w->meta->tail);
			size_t off = rnd(&w->rng) % (2 * MAXP * w->ps);

			if (rb && rnd(&w->rng) % 2)
				off = at % rb + (rnd(&w->rng) % 2) * rb;
			(void)*(volatile uint8_t *)(w->data + off);
		} else {
			add(&sh->sigbus, 1);
		}
		probing = 0;
		break;
	}
	add(&sh->noise_ops, 1);
}

/* ---- threads and processes ---- */

static void park(struct worker *w)
{
	struct shared *sh = w->sh;

	__atomic_add_fetch(&sh->parked[w->role], 1, __ATOMIC_SEQ_CST);
	while (ldi(&sh->pause) && !ldi(&sh->failed))
		usleep(500);
	__atomic_sub_fetch(&sh->parked[w->role], 1, __ATOMIC_SEQ_CST);
}

/* All producers idle and everything they made consumed. */
static bool drained(struct shared *sh)
{
	return ldi(&sh->parked[R_PROD]) == NPROD &&
	       ld(&sh->consumed_bytes) == ld(&sh->produced_bytes);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct shared *sh = w->sh;
	int slot;

	slot = __atomic_fetch_add(&sh->nthr, 1, __ATOMIC_SEQ_CST);
	sh->thr[slot].tgid = getpid();
	sh->thr[slot].tid = syscall(SYS_gettid);

	w->fd = zt_open(O_RDWR);
	w->nbfd = zt_open(O_RDWR | O_NONBLOCK);
	w->buf = malloc(BATCH_MAX * REC > WANT_MAX * REC ? BATCH_MAX * REC : WANT_MAX * REC);
	if (w->fd < 0 || w->nbfd < 0 || pipe(w->pipe) || !w->buf ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, w->sock) ||
	    setsockopt(w->sock[0], SOL_SOCKET, SO_SNDBUF, &(int){ 1 }, sizeof(int)) ||
	    fcntl(w->sock[0], F_SETFL, O_NONBLOCK)) {
		fail(sh, "worker setup: %s", strerror(errno));
		return NULL;
	}
	w->meta = mmap(NULL, w->ps, PROT_READ, MAP_SHARED, w->fd, 0);
	w->data = mmap(NULL, 2 * MAXP * w->ps, PROT_READ | PROT_WRITE, MAP_SHARED,
		       w->fd, w->ps);
	if (w->meta == MAP_FAILED || w->data == MAP_FAILED) {
		fail(sh, "worker mmap: %s", strerror(errno));
		return NULL;
	}
	__atomic_add_fetch(&sh->ready, 1, __ATOMIC_SEQ_CST);

	while (!ldi(&sh->failed)) {
		if (ldi(&sh->pause)) {
			if (w->role == R_CONS && !drained(sh))
				consumer_op(w);
			else
				park(w);
			continue;
		}
		if (ldi(&sh->stop))
			break;
		if (w->role == R_PROD)
			producer_op(w);
		else if (w->role == R_CONS)
			consumer_op(w);
		else
			noise_op(w);
	}
	munmap(w->data, 2 * MAXP * w->ps);
	munmap(w->meta, w->ps);
	close(w->pipe[0]);
	close(w->pipe[1]);
	close(w->sock[0]);
	close(w->sock[1]);
	close(w->fd);
	close(w->nbfd);
	free(w->buf);
	return NULL;
}

static void run_process(struct shared *sh, const char *roles, int *ids,
			uint64_t seed)
{
	struct worker w[MAX_THREADS];
	pthread_t th[MAX_THREADS];
	int n = strlen(roles);

	for (int i = 0; i < n; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].sh = sh;
		w[i].role = roles[i] == 'P' ? R_PROD : roles[i] == 'C' ? R_CONS : R_NOISE;
		w[i].id = ids[w[i].role]++;
		w[i].rng = seed * 0x9e3779b97f4a7c15ULL + (w[i].role + 1) * 1000 + w[i].id + 1;
		w[i].ps = sysconf(_SC_PAGESIZE);
	}
	for (int i = 1; i < n; i++)
		if (pthread_create(&th[i], NULL, worker_main, &w[i]))
			fail(sh, "pthread_create failed");
	worker_main(&w[0]);
	for (int i = 1; i < n; i++)
		pthread_join(th[i], NULL);
	_exit(0);
}

/* ---- the controller: the test process itself ---- */

static unsigned int stress_seconds(void)
{
	const char *s = getenv("ZCDEV_STRESS_SECONDS");
	int v = s ? atoi(s) : 0;

	return v > 0 ? v : 20;
}

/* The total is shared: a quarter (at least 2 s) for the focused test. */
static unsigned int focused_seconds(void)
{
	unsigned int s = stress_seconds() / 4;

	return s > 2 ? s : 2;
}

static unsigned int mixed_seconds(void)
{
	unsigned int s = stress_seconds();

	return s > focused_seconds() + 2 ? s - focused_seconds() : 2;
}

FIXTURE(stress) {
	int fd;
	size_t ps;
	struct shared *sh;
	pid_t pids[MAX_PROCS];
	int nprocs;
	struct zcdev_ring_meta *meta;
	uint64_t rng;
};

FIXTURE_SETUP(stress)
{
	pthread_mutexattr_t ma;
	pthread_rwlockattr_t ra;

	self->ps = sysconf(_SC_PAGESIZE);
	self->fd = zt_open(O_RDWR | O_NONBLOCK);
	if (self->fd < 0 && errno == ENOENT)
		SKIP(return, "%s missing: is the module loaded?", zt_dev_path());
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, zt_fresh_ring(self->fd, 16));

	self->sh = mmap(NULL, sizeof(*self->sh), PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->sh);
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
	ASSERT_EQ(0, pthread_mutex_init(&self->sh->prod_lock, &ma));
	ASSERT_EQ(0, pthread_mutex_init(&self->sh->cons_lock, &ma));
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setpshared(&ra, PTHREAD_PROCESS_SHARED);
	/* A resize must not starve behind a stream of mmap operations. */
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	ASSERT_EQ(0, pthread_rwlock_init(&self->sh->shape_lock, &ra));

	self->meta = mmap(NULL, self->ps, PROT_READ, MAP_SHARED, self->fd, 0);
	ASSERT_NE(MAP_FAILED, self->meta);
}

FIXTURE_TEARDOWN(stress)
{
	if (self->fd < 0)
		return;
	for (int i = 0; i < self->nprocs; i++) {
		if (self->pids[i] > 0) {
			kill(self->pids[i], SIGKILL);
			waitpid(self->pids[i], NULL, 0);
		}
	}
	zt_fresh_ring(self->fd, 256);
	close(self->fd);
}

/* SIGUSR1 to one thread; -1: to every thread. */
static void poke(struct shared *sh, int which)
{
	int n = ldi(&sh->nthr);

	for (int i = 0; i < n; i++) {
		if (which >= 0 && i != which)
			continue;
		syscall(SYS_tgkill, sh->thr[i].tgid, sh->thr[i].tid, SIGUSR1);
		add(&sh->signals, 1);
	}
}

/* A worker process that ended before its time is a failure. */
static void reap_early(struct shared *sh, pid_t *pids, int n)
{
	for (int i = 0; i < n; i++) {
		int status;

		if (pids[i] <= 0 || waitpid(pids[i], &status, WNOHANG) != pids[i])
			continue;
		pids[i] = 0;
		if (!WIFEXITED(status) || WEXITSTATUS(status) || !ldi(&sh->stop))
			fail(sh, "worker process %d ended early: %s %d", i,
			     WIFSIGNALED(status) ? "signal" : "exit status",
			     WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	}
}

/* Stop producers, let consumers drain the ring, wait for all to park. */
static bool quiesce(struct shared *sh, pid_t *pids, int n)
{
	double deadline = now() + 30;

	sti(&sh->pause, 1);
	while (!ldi(&sh->failed)) {
		if (ldi(&sh->parked[R_PROD]) == NPROD &&
		    ldi(&sh->parked[R_CONS]) == NCONS &&
		    ldi(&sh->parked[R_NOISE]) == NNOISE)
			return true;
		if (now() > deadline) {
			fail(sh, "could not quiesce in 30 s: parked %d/%d producers, "
			     "%d/%d consumers, %d/%d noise; produced %llu consumed %llu",
			     ldi(&sh->parked[R_PROD]), NPROD, ldi(&sh->parked[R_CONS]),
			     NCONS, ldi(&sh->parked[R_NOISE]), NNOISE,
			     (unsigned long long)ld(&sh->produced_bytes),
			     (unsigned long long)ld(&sh->consumed_bytes));
			break;
		}
		/* Wake the ones blocked in an empty ring. */
		poke(sh, -1);
		reap_early(sh, pids, n);
		usleep(5000);
	}
	return false;
}

/*
 * With everything quiet: the ring must be empty and hold its pages. Then
 * junk goes in and RESET must drop it; the consumers would trip over any
 * of it that survived.
 */
static void quiet_checks(struct __test_metadata *_metadata,
			 FIXTURE_DATA(stress) *self)
{
	struct shared *sh = self->sh;
	struct zcdev_stats st;
	struct zcdev_info info;
	uint64_t gen, head;
	uint8_t junk[3 * 4096 + 17];
	ssize_t n;

	ASSERT_EQ(ld(&sh->produced_bytes), ld(&sh->consumed_bytes));
	ASSERT_EQ(ld(&self->meta->head), ld(&self->meta->tail));
	ASSERT_EQ(0, zt_info(self->fd, &info));
	ASSERT_EQ(0, zt_stats(self->fd, &st));
	ASSERT_EQ(info.ring_pages, st.pages_held);

	memset(junk, 0xa5, sizeof(junk));
	n = write(self->fd, junk, 1 + rnd(&self->rng) % sizeof(junk));
	ASSERT_LT(0, n);
	gen = ld(&self->meta->generation);
	ASSERT_EQ(0, zcdev_reset(self->fd));
	head = ld(&self->meta->head);
	ASSERT_EQ(head, ld(&self->meta->tail));
	ASSERT_EQ(0, head % self->ps);
	ASSERT_EQ(gen + 1, ld(&self->meta->generation));
	sh->resets++;
}

static void resize(FIXTURE_DATA(stress) *self)
{
	static const uint32_t sizes[] = { 1, 2, 3, 4, 8, 16, 32, MAXP };
	struct shared *sh = self->sh;
	uint32_t pages;

	if (rnd(&self->rng) % 2)
		pages = sizes[rnd(&self->rng) % (sizeof(sizes) / sizeof(sizes[0]))];
	else
		pages = 1 + rnd(&self->rng) % MAXP;
	pthread_rwlock_wrlock(&sh->shape_lock);
	if (!zt_resize(self->fd, pages))
		sh->resizes++;
	else if (errno == EBUSY)
		sh->ebusy++;	/* the unread bytes do not fit: fine */
	else
		fail(sh, "resize to %u pages: %s", pages, strerror(errno));
	pthread_rwlock_unlock(&sh->shape_lock);
}

TEST_F_TIMEOUT(stress, mixed_paths_resize_signals, 600)
{
	struct shared *sh = self->sh;
	unsigned int seconds = mixed_seconds();
	const char *seed_env = getenv("ZCDEV_STRESS_SEED");
	uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : (uint64_t)time(NULL);
	double start = now(), end = start + seconds;
	double phase = seconds >= 8 ? seconds / 4.0 : seconds / 2.0;
	double next_phase = start + phase, next_resize = start;
	int ids[3] = { 0, 0, 0 };
	struct sigaction sa = { .sa_handler = on_usr1 };
	struct sigaction sf = { .sa_handler = on_fault };
	struct zcdev_stats st0, st;
	struct zcdev_info info;

	ksft_print_msg("seed: %llu, %u s\n", (unsigned long long)seed, seconds);
	fflush(stdout);
	self->rng = seed | 1;
	/* No SA_RESTART: blocked calls return EINTR or a short count. */
	ASSERT_EQ(0, sigaction(SIGUSR1, &sa, NULL));
	ASSERT_EQ(0, sigaction(SIGBUS, &sf, NULL));
	ASSERT_EQ(0, sigaction(SIGSEGV, &sf, NULL));
	ASSERT_EQ(0, zt_stats(self->fd, &st0));

	fflush(stdout);
	fflush(stderr);
	for (int i = 0; i < NPROC; i++) {
		pid_t pid = fork();

		ASSERT_LE(0, pid);
		if (!pid)
			run_process(sh, layout[i], ids, seed + i);
		self->pids[self->nprocs++] = pid;
		for (const char *c = layout[i]; *c; c++)
			ids[*c == 'P' ? R_PROD : *c == 'C' ? R_CONS : R_NOISE]++;
	}
	while (ldi(&sh->ready) < NPROD + NCONS + NNOISE && !ldi(&sh->failed)) {
		reap_early(sh, self->pids, self->nprocs);
		if (now() > start + 60)
			fail(sh, "the workers did not start in 60 s");
		usleep(1000);
	}

	while (!ldi(&sh->failed) && now() < end) {
		double t = now();

		if (t >= next_resize) {
			resize(self);
			next_resize = t + (5 + rnd(&self->rng) % 60) / 1000.0;
		}
		poke(sh, rnd(&self->rng) % 8 ? (int)(rnd(&self->rng) % ldi(&sh->nthr)) : -1);
		if (t >= next_phase && t + 1 < end) {
			if (!quiesce(sh, self->pids, self->nprocs))
				break;
			quiet_checks(_metadata, self);
			if (rnd(&self->rng) % 2)
				resize(self);
			sh->phases++;
			sti(&sh->pause, 0);
			next_phase = now() + phase;
		}
		reap_early(sh, self->pids, self->nprocs);
		usleep(1000 + rnd(&self->rng) % 4000);
	}

	/* The end: drain, stop, and every process must exit cleanly. */
	if (quiesce(sh, self->pids, self->nprocs))
		quiet_checks(_metadata, self);
	sti(&sh->stop, 1);
	sti(&sh->pause, 0);
	double deadline = now() + 30;

	for (int i = 0; i < self->nprocs; i++) {
		int status;

		while (self->pids[i] > 0 && now() < deadline) {
			pid_t r = waitpid(self->pids[i], &status, WNOHANG);

			if (r == self->pids[i]) {
				self->pids[i] = 0;
				if (!WIFEXITED(status) || WEXITSTATUS(status))
					fail(sh, "worker process %d: status %#x", i, status);
				break;
			}
			poke(sh, -1);
			usleep(5000);
		}
		if (self->pids[i] > 0)
			fail(sh, "worker process %d did not exit", i);
	}

	ksft_print_msg("%.1f s: %llu records, %llu bytes; %llu phases, %llu resets, "
		       "%llu resizes (%llu EBUSY), %llu signals, %llu EINTR, %llu short, "
		       "%llu EAGAIN, %llu noise ops (%llu SIGBUS)\n",
		       now() - start,
		       (unsigned long long)(ld(&sh->consumed_bytes) / REC),
		       (unsigned long long)ld(&sh->consumed_bytes),
		       (unsigned long long)sh->phases, (unsigned long long)sh->resets,
		       (unsigned long long)sh->resizes, (unsigned long long)sh->ebusy,
		       (unsigned long long)sh->signals, (unsigned long long)sh->eintr,
		       (unsigned long long)sh->shorts, (unsigned long long)sh->eagain,
		       (unsigned long long)sh->noise_ops, (unsigned long long)sh->sigbus);
	for (int i = 0; i < NR_PPATHS; i++)
		ksft_print_msg("  produce %-8s %8llu ops   consume %-8s %8llu ops\n",
			       ppath_name[i], (unsigned long long)sh->pops[i],
			       cpath_name[i], (unsigned long long)sh->cops[i]);

	/* stdout is a pipe under the rig, and the harness ends with _exit(). */
	fflush(stdout);
	ASSERT_FALSE(sh->failed) TH_LOG("%s", sh->msg);
	for (int p = 0; p < NPROD; p++) {
		EXPECT_EQ(sh->next_seq[p], sh->expect_seq[p])
			TH_LOG("producer %d", p);
		EXPECT_LT(0, sh->next_seq[p]) TH_LOG("producer %d made nothing", p);
	}
	for (int i = 0; i < NR_PPATHS; i++) {
		EXPECT_LT(0, sh->pops[i]) TH_LOG("no %s producer ran", ppath_name[i]);
		EXPECT_LT(0, sh->cops[i]) TH_LOG("no %s consumer ran", cpath_name[i]);
	}
	/* Not the module's doing: a fast machine may block (and be interrupted) rarely. */
	if (!sh->eintr)
		ksft_print_msg("note: no call was interrupted by a signal in this run\n");

	ASSERT_EQ(0, zt_stats(self->fd, &st));
	ASSERT_EQ(0, zt_info(self->fd, &info));
	ksft_print_msg("kernel: copied in %llu, stolen in %llu pages, spliced in %llu "
		       "copied, mmap %llu/%llu, spliced out %llu, read %llu, %llu swaps, "
		       "%llu faults\n",
		       (unsigned long long)(st.bytes_written_copy - st0.bytes_written_copy),
		       (unsigned long long)(st.pages_stolen_in - st0.pages_stolen_in),
		       (unsigned long long)(st.bytes_spliced_in_copied - st0.bytes_spliced_in_copied),
		       (unsigned long long)(st.bytes_produced_mmap - st0.bytes_produced_mmap),
		       (unsigned long long)(st.bytes_consumed_mmap - st0.bytes_consumed_mmap),
		       (unsigned long long)(st.bytes_spliced_out - st0.bytes_spliced_out),
		       (unsigned long long)(st.bytes_read_copy - st0.bytes_read_copy),
		       (unsigned long long)(st.page_swaps - st0.page_swaps),
		       (unsigned long long)(st.mmap_faults - st0.mmap_faults));
	fflush(stdout);
	EXPECT_EQ(info.ring_pages, st.pages_held);
	ASSERT_EQ(0, zt_fresh_ring(self->fd, 256));
	ASSERT_EQ(0, zt_stats(self->fd, &st));
	EXPECT_EQ(256, st.pages_held);
}

/*
 * One producer writing through its mapping and committing with PRODUCE,
 * one consumer splicing out, and a third task that only reads the ring
 * through a mapping of its own: the producer's bytes, written at head
 * before PRODUCE, must all arrive. When tail and head share a page,
 * splice out lends that page while the producer is still writing into
 * it; the reader's faults on that slot must not make the ring lose what
 * the producer wrote (the slot swap must carry uncommitted bytes over).
 */
TEST_F_TIMEOUT(stress, mmap_producer_splice_consumer_and_a_reader, 600)
{
	int *stop = (int *)&self->sh->stop;
	double start = now(), end = start + focused_seconds();
	uint64_t head0 = ld(&self->meta->head), pos = 0, bad = 0, first = 0;
	uint32_t pages = 1;	/* head and tail always share the slot */
	size_t chunk = 64, pchunk = 512;
	pid_t prod, reader;
	uint8_t buf[4096];
	int p[2];

	ASSERT_EQ(0, zt_resize(self->fd, pages));
	ASSERT_EQ(0, pipe(p));
	fflush(stdout);
	fflush(stderr);

	/* Two readers: more faults on the slot, at any moment. */
	for (int r = 0; r < 2; r++) {
		reader = fork();
		ASSERT_LE(0, reader);
		if (!reader) {
			volatile uint8_t *m = mmap(NULL, 2 * pages * self->ps, PROT_READ,
						   MAP_SHARED, self->fd, self->ps);
			unsigned int sum = 0;

			while (m != MAP_FAILED && !ldi(stop)) {
				for (uint32_t i = 0; i < 2 * pages; i++)
					sum += m[i * self->ps];
				sched_yield();
			}
			(void)sum;
			_exit(m == MAP_FAILED);
		}
		self->pids[self->nprocs++] = reader;
	}

	prod = fork();
	ASSERT_LE(0, prod);
	if (!prod) {
		uint8_t *m = mmap(NULL, 2 * pages * self->ps, PROT_READ | PROT_WRITE,
				  MAP_SHARED, self->fd, self->ps);
		uint64_t rb = pages * self->ps;

		if (m == MAP_FAILED)
			_exit(1);
		while (!ldi(stop)) {
			uint64_t tail = ld(&self->meta->tail), head = ld(&self->meta->head);
			uint64_t n = rb - (head - tail);

			if (n > pchunk)
				n = pchunk;
			if (!n) {
				sched_yield();
				continue;
			}
			/* Byte by byte: the stores take a while, as a real producer's do. */
			for (uint64_t i = 0; i < n; i++)
				((volatile uint8_t *)m)[(head + i) % rb] = zt_byte(head + i - head0);
			if (zcdev_produce(self->fd, n))
				_exit(2);
		}
		_exit(0);
	}
	self->pids[self->nprocs++] = prod;

	/* At least 256 KiB, unless the machine is very slow. */
	while (now() < end || (pos < (256 << 10) && now() < start + 3 * focused_seconds())) {
		ssize_t n = splice(self->fd, NULL, p[1], NULL, chunk, SPLICE_F_NONBLOCK);

		if (n < 0 && errno == EAGAIN) {
			sched_yield();
			continue;
		}
		ASSERT_LT(0, n) TH_LOG("splice out: %s", strerror(errno));
		ASSERT_EQ(n, read(p[0], buf, n));
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] != zt_byte(pos + i) && !bad++)
				first = pos + i;
		}
		pos += n;
	}
	sti(stop, 1);
	for (int i = 0; i < self->nprocs; i++) {
		int status;

		ASSERT_EQ(self->pids[i], waitpid(self->pids[i], &status, 0));
		self->pids[i] = 0;
		EXPECT_EQ(0, status);
	}
	close(p[0]);
	close(p[1]);
	ksft_print_msg("%llu bytes checked, %llu wrong\n", (unsigned long long)pos,
		       (unsigned long long)bad);
	fflush(stdout);
	EXPECT_EQ(0, bad) TH_LOG("first wrong byte at stream position %llu",
				 (unsigned long long)first);
	EXPECT_LT(0, pos);
}

/*
 * The harness's timeout is a constant and the duration comes from the
 * environment: give the test its duration plus room to quiesce and exit.
 */
static void __attribute__((constructor)) stress_timeout(void)
{
	ZT_TEST_OBJECT(stress, mixed_paths_resize_signals)->timeout =
		mixed_seconds() + 120;
	ZT_TEST_OBJECT(stress, mmap_producer_splice_consumer_and_a_reader)->timeout =
		3 * focused_seconds() + 60;
}

TEST_HARNESS_MAIN
