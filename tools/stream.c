// SPDX-License-Identifier: GPL-2.0
/*
 * zcdev(1): the data paths: see stream.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "stream.h"

__thread unsigned long nr_syscalls;
atomic_int xfer_abort;
atomic_int xfer_signal;
/* The side the calling thread runs, for sys_retry(). */
static __thread struct side *cur_side;

const char *const put_names[] = {
	[PUT_WRITE]		= "write",
	[PUT_MMAP]		= "mmap",
	[PUT_SPLICE]		= "splice",
	[PUT_VMSPLICE]		= "vmsplice",
	[PUT_URING]		= "uring",
	[PUT_VMSPLICE_REF]	= "vmsplice-pipe",
};

const char *const get_names[] = {
	[GET_READ]	= "read",
	[GET_MMAP]	= "mmap",
	[GET_SPLICE]	= "splice",
	[GET_SENDFILE]	= "sendfile",
	[GET_URING]	= "uring",
	[GET_TEE]	= "tee",
	[GET_ZEROCOPY]	= "zerocopy",
};

int method_lookup(const char *const *names, int nr, const char *name)
{
	int i;

	for (i = 0; i < nr; i++)
		if (!strcmp(names[i], name))
			return i;
	return -1;
}

/*
 * What a consumer that follows its producer still waits for: UINT64_MAX
 * while the producer runs, then what it put (stop_after holds that + 1).
 */
static uint64_t side_wants(struct side *s)
{
	uint64_t v = s->follow ? atomic_load(&s->stop_after) : 0;

	return v ? v - 1 : UINT64_MAX;
}

static bool side_has_all(struct side *s)
{
	return atomic_load(&s->bytes) >= side_wants(s);
}

bool sys_retry(void)
{
	if (errno != EINTR)
		return false;
	if (atomic_load(&xfer_abort)) {
		errno = ECANCELED;
		return false;
	}
	/* Woken on purpose: nothing more is coming from our producer. */
	if (cur_side && side_has_all(cur_side))
		return false;
	return true;
}

int write_full(int fd, const void *buf, size_t n, size_t *done)
{
	const char *p = buf;

	*done = 0;
	while (*done < n) {
		ssize_t r;

		/*
		 * Aborted (a signal, a deadline that only set the flag, or a
		 * write cut short by one): do not block again.
		 */
		if (atomic_load(&xfer_abort)) {
			errno = ECANCELED;
			return -1;
		}
		r = SYS(write(fd, p + *done, n - *done));
		if (r < 0 && errno == EAGAIN) {
			/* An output another process made non-blocking: wait for room. */
			struct pollfd out = { .fd = fd, .events = POLLOUT };

			if (SYS(poll(&out, 1, -1)) >= 0)
				continue;
		}
		if (r < 0)
			return -1;
		*done += r;
	}
	return 0;
}

int write_all(int fd, const void *buf, size_t n)
{
	size_t done;

	return write_full(fd, buf, n, &done);
}

static void on_stop(int sig)
{
	atomic_store(&xfer_signal, sig);
	atomic_store(&xfer_abort, 1);
}

void stream_signals(void)
{
	struct sigaction sa = { .sa_handler = on_stop };
	static const int stop[] = { SIGINT, SIGTERM, SIGHUP, SIGALRM };
	size_t i;

	/* No SA_RESTART: a blocked open(), read() or poll() must return. */
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < sizeof(stop) / sizeof(stop[0]); i++)
		sigaction(stop[i], &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN);
}

int stream_deadline(double secs)
{
	struct itimerval it = { 0 };

	if (secs <= 0)
		return 0;
	it.it_value.tv_sec = (time_t)secs;
	it.it_value.tv_usec = (suseconds_t)((secs - (time_t)secs) * 1e6);
	if (!it.it_value.tv_sec && !it.it_value.tv_usec)
		it.it_value.tv_usec = 1;
	return setitimer(ITIMER_REAL, &it, NULL);
}

static int side_vfail(struct side *s, int err, const char *fmt, va_list ap)
{
	char what[128];

	if (s->failed)
		return -1;
	vsnprintf(what, sizeof(what), fmt, ap);
	if (err)
		snprintf(s->err, sizeof(s->err), "%s: %s", what, strerror(err));
	else
		snprintf(s->err, sizeof(s->err), "%s", what);
	s->failed = true;
	s->canceled = err == ECANCELED;
	s->err_no = err;
	return -1;
}

/* Record "<what>: <strerror(errno)>" as the side's error; returns -1. */
int side_fail(struct side *s, const char *fmt, ...)
{
	int err = errno;
	va_list ap;

	va_start(ap, fmt);
	side_vfail(s, err, fmt, ap);
	va_end(ap);
	return -1;
}

/* The same without an errno. */
int side_failx(struct side *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	side_vfail(s, 0, fmt, ap);
	va_end(ap);
	return -1;
}

/* ---- the mapped ring ---- */

/*
 * Wait until the ring has room (producer) or data (consumer) and return
 * how much, contiguous at *p thanks to the double mapping. 0 means the
 * consumer reached EOF: empty, and poll said no writer has it open.
 */
static ssize_t zring_wait(struct side *s, char **p)
{
	bool hup = false;
	int64_t n;
	int ev;

	for (;;) {
		n = s->put ? zcdev_ring_space(&s->ring, p)
			   : zcdev_ring_data(&s->ring, p);
		if (n == -ESTALE)
			return side_failx(s, "%s: the ring was reset or resized under the mapping",
					  s->name);
		if (n)
			return n;
		if (hup)
			return 0;
		ev = SYS(zcdev_wait(s->fd, s->put ? POLLOUT : POLLIN, -1));
		if (ev < 0)
			return side_fail(s, "poll %s", s->name);
		if (ev & (POLLERR | POLLNVAL))
			return side_failx(s, "poll %s: revents 0x%x", s->name, ev);
		/* Look at the counters once more: data may precede the hangup. */
		hup = !s->put && (ev & POLLHUP);
	}
}

/*
 * Commit bytes written at head, or release bytes read at tail. A consumer
 * releases bytes that have already reached its output (or a socket): an
 * interrupted CONSUME is tried again even after an abort, since bytes left
 * in the ring would be delivered twice by the next consumer. Only a CONSUME
 * that a second of retries after the abort cannot finish gives up, with
 * EINTR rather than ECANCELED: a failure of its own, which stderr reports.
 */
static int zring_commit(struct side *s, uint64_t n)
{
	double end = 0;
	long r;

	if (s->put) {
		r = SYS(zcdev_produce(s->fd, n));
	} else {
		for (;;) {
			nr_syscalls++;
			r = zcdev_consume(s->fd, n);
			if (r >= 0 || errno != EINTR)
				break;
			if (!atomic_load(&xfer_abort))
				continue;
			if (!end)
				end = now_sec() + 1;
			else if (now_sec() > end)
				break;
		}
	}
	if (r < 0)
		return side_fail(s, "%s %s",
				 s->put ? "ZCDEV_IOC_PRODUCE" : "ZCDEV_IOC_CONSUME",
				 s->name);
	return 0;
}

/* ---- the source a producer reads ---- */

/* Point *p at up to max bytes of input; 0 at its end. */
static ssize_t src_peek(struct side *s, const void **p, size_t max)
{
	struct source *c = &s->src;
	ssize_t n;

	if (c->fd < 0) {
		n = MIN(max, c->len - c->off);
		*p = c->buf + c->off;
		c->off += n;
		return n;
	}
	n = SYS(read(c->fd, s->tmp, max));
	if (n < 0)
		return side_fail(s, "read input");
	*p = s->tmp;
	return n;
}

/* Copy up to max bytes of input to dst; with full, stop short only at its end. */
static ssize_t src_copy(struct side *s, char *dst, size_t max, bool full)
{
	struct source *c = &s->src;
	size_t done = 0;
	ssize_t n;

	if (c->fd < 0) {
		n = MIN(max, c->len - c->off);
		memcpy(dst, c->buf + c->off, n);
		c->off += n;
		return n;
	}
	do {
		n = SYS(read(c->fd, dst + done, max - done));
		if (n < 0)
			return side_fail(s, "read input");
		done += n;
	} while (full && n && done < max);
	return done;
}

/* Put up to max bytes of input into the (empty) hop pipe. */
static ssize_t src_to_pipe(struct side *s, size_t max)
{
	struct source *c = &s->src;
	ssize_t n;

	if (c->fd < 0) {
		n = MIN(max, c->len - c->off);
		if (write_all(s->pipe[1], c->buf + c->off, n))
			return side_fail(s, "write to pipe");
		c->off += n;
		return n;
	}
	n = SYS(splice(c->fd, NULL, s->pipe[1], NULL, max, SPLICE_F_MOVE));
	if (n < 0)
		return side_fail(s, "splice input -> pipe");
	return n;
}

/* ---- the sink a consumer fills ---- */

static int sink_check(struct side *s, const void *p, size_t n)
{
	struct sink *k = &s->snk;
	const unsigned char *a = p, *b;
	size_t i;

	b = (const unsigned char *)k->expect + k->off;
	if (memcmp(a, b, n)) {
		for (i = 0; a[i] == b[i]; i++)
			;
		return side_failx(s, "payload mismatch at byte %llu",
				  (unsigned long long)(k->off + i));
	}
	k->off += n;
	return 0;
}

/* n bytes reached user memory at p. */
static int sink_mem(struct side *s, const void *p, size_t n)
{
	struct sink *k = &s->snk;

	if (k->expect)
		return sink_check(s, p, n);
	if (k->keep && write_all(k->fd, p, n))
		return side_fail(s, "write output");
	return 0;
}

/*
 * After an abort, give bytes already taken from the ring a last chance
 * to reach the output k: up to a second of waiting for room, in writes
 * small enough not to block (a pipe takes PIPE_BUF bytes once poll says
 * it has room). They are in the pipe pfd when it is not -1, else at p.
 * Returns how many went out.
 */
static size_t sink_finish(struct sink *k, int pfd, const char *p, size_t n)
{
	bool from_pipe = pfd >= 0;
	struct pollfd pl = { .fd = k->fd, .events = POLLOUT };
	double end = now_sec() + 1;
	size_t done = 0, step;
	ssize_t r;
	int left;

	while (done < n) {
		left = (int)((end - now_sec()) * 1000);
		if (left <= 0)
			break;
		r = poll(&pl, 1, left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || (pl.revents & (POLLERR | POLLHUP | POLLNVAL)))
			break;
		step = k->kind == SINK_REG ? n - done : MIN(n - done, (size_t)PIPE_BUF);
		r = from_pipe ? splice(pfd, NULL, k->fd, NULL, step, SPLICE_F_MOVE)
			      : write(k->fd, p + done, step);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		done += r;
	}
	return done;
}

/*
 * Splice n bytes taken from the ring out of the pipe pfd into the output
 * k. Returns how many went out; fewer than n with errno set. Once the
 * transfer is aborted, the rest gets sink_finish()'s last chance.
 */
static size_t pipe_drain(int pfd, struct sink *k, size_t n)
{
	size_t done = 0;
	ssize_t r;
	int err;

	while (done < n) {
		if (done && atomic_load(&xfer_abort)) {
			errno = ECANCELED;
			break;
		}
		r = SYS(splice(pfd, NULL, k->fd, NULL, n - done, SPLICE_F_MOVE));
		if (r < 0 && errno == EAGAIN) {
			/*
			 * An output another process made non-blocking: these
			 * bytes have left the ring, so wait for room.
			 */
			struct pollfd out = { .fd = k->fd, .events = POLLOUT };

			if (SYS(poll(&out, 1, -1)) >= 0)
				continue;
		}
		if (r <= 0) {
			if (!r)
				errno = EIO;
			break;
		}
		done += r;
	}
	if (done == n)
		return n;
	err = errno;
	if (err == ECANCELED)
		done += sink_finish(k, pfd, NULL, n - done);
	errno = err;
	return done;
}

/*
 * n bytes taken from the ring are at p (or in the hop pipe): write them
 * all, or count what could not be written as lost. A failed step still
 * delivered s->step_done bytes.
 */
static int sink_held(struct side *s, const char *p, size_t n, bool from_pipe)
{
	struct sink *k = &s->snk;
	size_t done = 0;
	int err;

	if (k->expect && !from_pipe)
		return sink_check(s, p, n);
	if (!k->keep && !from_pipe)
		return 0;
	if (!from_pipe) {
		if (!write_full(k->fd, p, n, &done))
			return 0;
		err = errno;
		if (err == ECANCELED)
			done += sink_finish(k, -1, p + done, n - done);
	} else {
		done = pipe_drain(s->pipe[0], k, n);
		if (done == n)
			return 0;
		err = errno;
	}
	s->step_done = done;
	s->lost += n - done;
	errno = err;
	return side_fail(s, "%s output", from_pipe ? "splice pipe ->" : "write");
}

/*
 * Before a step takes bytes from the ring: may the output take them, and
 * how many? A pipe must have a reader (else EPIPE, with nothing taken);
 * read(2) takes no more than the pipe has room for. A regular file is
 * held to RLIMIT_FSIZE (EFBIG) and, for the paths that hold bytes (read,
 * splice through the hop pipe), the space is reserved with fallocate()
 * first, so that a full disk fails before the bytes leave the ring.
 * mmap, sendfile and a direct splice take only what the output took.
 * tee holds bytes in its pipes for both outputs: each is checked so.
 */
/*
 * tee's bytes wait in its own pipes until an output pipe takes them, and
 * a pipe takes whole buffers into free slots, which only an empty pipe
 * can promise: so a step waits for the output to empty and takes at most
 * its size less a page (an unaligned tail spreads over one buffer more).
 * A reader that stops, or a signal, then finds no byte that left the ring
 * with nowhere to go.
 */
static int tee_pipe_room(struct side *s, struct sink *k, size_t *want)
{
	/* No events: wakes for POLLERR (the reader gone) or after 1 ms. */
	struct pollfd pfd = { .fd = k->fd };
	int sz, queued;

	while (!ioctl(k->fd, FIONREAD, &queued) && queued > 0) {
		if (SYS(poll(&pfd, 1, 1)) < 0)
			return side_fail(s, "poll output");
		if (pfd.revents & POLLERR) {
			errno = EPIPE;
			return side_fail(s, "write %s", k->name ? k->name : "output");
		}
	}
	sz = fcntl(k->fd, F_GETPIPE_SZ);
	if (sz > 0)
		*want = MIN(*want, (size_t)MAX(sz - 4096, 1));
	return 0;
}

static int sink_room(struct side *s, struct sink *k, size_t *want)
{
	struct pollfd pfd = { .fd = k->fd, .events = POLLOUT };
	bool holds = s->method == GET_READ || s->method == GET_URING ||
		     s->method == GET_TEE ||
		     (s->method == GET_SPLICE && !s->direct);
	struct rlimit rl;
	struct stat st;
	size_t n = *want, tail;
	off_t off;
	int sz, queued;

	if (!k->keep || k->expect)
		return 0;
	if (k->kind == SINK_PIPE) {
		if (SYS(poll(&pfd, 1, -1)) < 0)
			return side_fail(s, "poll output");
		if (pfd.revents & POLLERR) {
			errno = EPIPE;
			return side_fail(s, "write %s", k->name ? k->name : "output");
		}
		if (s->method == GET_TEE)
			return tee_pipe_room(s, k, want);
		if (s->method != GET_READ && s->method != GET_URING)
			return 0;
		sz = fcntl(k->fd, F_GETPIPE_SZ);
		if (sz > 0 && !ioctl(k->fd, FIONREAD, &queued) && queued >= 0)
			*want = MIN(n, (size_t)MAX(sz - queued, PIPE_BUF));
		return 0;
	}
	if (k->kind != SINK_REG || fstat(k->fd, &st))
		return 0;
	off = k->append ? st.st_size : lseek(k->fd, 0, SEEK_CUR);
	if (off < 0)
		return 0;
	if (!getrlimit(RLIMIT_FSIZE, &rl) && rl.rlim_cur != RLIM_INFINITY) {
		if ((uint64_t)off >= rl.rlim_cur) {
			errno = EFBIG;
			return side_fail(s, "write %s", k->name ? k->name : "output");
		}
		n = MIN(n, rl.rlim_cur - (uint64_t)off);
	}
	*want = n;
	if (!holds || k->no_reserve)
		return 0;
	tail = 4096 - (size_t)(off % 4096);
	for (;;) {
		if (!fallocate(k->fd, FALLOC_FL_KEEP_SIZE, off, n))
			break;
		if (errno == EINTR)
			continue;
		if (errno != ENOSPC && errno != EDQUOT) {
			/* Not supported there: a full disk costs bytes, counted. */
			k->no_reserve = true;
			return 0;
		}
		/* Fill the disk as far as it goes: less, down to this block. */
		if (n > 4096)
			n /= 2;
		else if (n > tail)
			n = tail;
		else
			return side_fail(s, "write %s",
					 k->name ? k->name : "output");
	}
	if ((uint64_t)off + n > k->resv_end)
		k->resv_end = off + n;
	*want = n;
	return 0;
}

/* Give back what was reserved past the end of the output and not used. */
static void sink_unreserve(struct sink *k)
{
	struct stat st;

	if (!k->resv_end || fstat(k->fd, &st) ||
	    k->resv_end <= (uint64_t)st.st_size)
		return;
	fallocate(k->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		  st.st_size, k->resv_end - st.st_size);
	k->resv_end = 0;
}

/* n bytes went into the sink's fd by splice or sendfile. */
static int sink_landed(struct side *s, size_t n)
{
	struct sink *k = &s->snk;

	if (!k->expect)
		return 0;
	/* Verifying: fd is a memfd, read it back and rewind it. */
	if (pread(k->fd, s->tmp, n, 0) != (ssize_t)n ||
	    lseek(k->fd, 0, SEEK_SET) < 0)
		return side_fail(s, "read back memfd");
	return sink_check(s, s->tmp, n);
}

/* ---- helpers of the splice paths ---- */

/* Drain n bytes from the hop pipe into out. */
static ssize_t hop_out(struct side *s, int out, size_t n, const char *name)
{
	size_t left = n;

	while (left) {
		ssize_t r = SYS(splice(s->pipe[0], NULL, out, NULL, left,
				       SPLICE_F_MOVE));

		if (r < 0)
			return side_fail(s, "splice pipe -> %s", name);
		if (!r)
			return side_failx(s, "splice pipe -> %s: pipe ran dry", name);
		left -= r;
	}
	return n;
}

static int vmsplice_all(struct side *s, int fd, const void *p, size_t n,
			unsigned int flags)
{
	struct iovec iov = { .iov_base = (void *)p, .iov_len = n };

	while (iov.iov_len) {
		ssize_t r = flags & SPLICE_F_GIFT ?
			SYS(zcdev_vmsplice_gift(fd, iov.iov_base, iov.iov_len)) :
			SYS(vmsplice(fd, &iov, 1, flags));

		if (r < 0)
			return side_fail(s, "vmsplice into pipe");
		iov.iov_base = (char *)iov.iov_base + r;
		iov.iov_len -= r;
	}
	return 0;
}

/* ---- put: one step moves up to a chunk in; 0 at the end of input ---- */

static ssize_t put_write(struct side *s)
{
	const void *p;
	ssize_t n = src_peek(s, &p, s->chunk);

	if (n > 0 && write_all(s->fd, p, n))
		return side_fail(s, "write %s", s->name);
	return n;
}

/*
 * Fill the ring in place at head, then commit. A full ring is waited for
 * only with input in hand (read into the bounce buffer): input that ends
 * exactly when the ring is full must end the put, not wait for room.
 */
static ssize_t put_mmap(struct side *s)
{
	char *p;
	ssize_t n;

	if (!s->pend_len) {
		n = zcdev_ring_space(&s->ring, &p);
		if (n == -ESTALE)
			return side_failx(s, "%s: the ring was reset or resized under the mapping",
					  s->name);
		if (n > 0) {
			n = src_copy(s, p, MIN((size_t)n, s->chunk), false);
			if (n > 0 && zring_commit(s, n))
				return -1;
			return n;
		}
		n = src_copy(s, s->tmp, s->chunk, false);
		if (n <= 0)
			return n;
		s->pend_off = 0;
		s->pend_len = n;
	}
	n = zring_wait(s, &p);
	if (n <= 0)
		return n < 0 ? n : side_failx(s, "%s: no room", s->name);
	n = MIN((size_t)n, s->pend_len);
	memcpy(p, s->tmp + s->pend_off, n);
	if (zring_commit(s, n))
		return -1;
	s->pend_off += n;
	s->pend_len -= n;
	return n;
}

static ssize_t put_splice(struct side *s)
{
	ssize_t n;

	if (s->direct) {
		n = SYS(zcdev_splice_in(s->src.fd, s->fd, s->chunk,
					SPLICE_F_MOVE));
		if (n < 0)
			return side_fail(s, "splice input -> %s", s->name);
		return n;
	}
	n = src_to_pipe(s, s->pipe_len);
	if (n <= 0)
		return n;
	return hop_out(s, s->fd, n, s->name);
}

/*
 * A gift is for good: the pages go to the pipe and we unmap them, so
 * nothing of ours can change them there. The device still copies them:
 * they are anonymous pages on the LRU, which zcdev_can_steal() refuses.
 * Every step fills fresh anonymous pages.
 */
static ssize_t put_vmsplice(struct side *s)
{
	size_t len = s->pipe_len;
	ssize_t n;
	void *buf;
	int ret = 0;

	buf = (void *)SYS(mmap(NULL, len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
			       -1, 0));
	if (buf == MAP_FAILED)
		return side_fail(s, "mmap gift buffer");
	n = src_copy(s, buf, len, true);
	if (n > 0)
		ret = vmsplice_all(s, s->pipe[1], buf, n, SPLICE_F_GIFT);
	SYS(munmap(buf, len));
	if (n <= 0 || ret)
		return ret ? ret : n;
	return hop_out(s, s->fd, n, s->name);
}

/* The pipe reference: map the payload's pages into the pipe, no copy. */
static ssize_t put_vmsplice_ref(struct side *s)
{
	const void *p;
	ssize_t n = src_peek(s, &p, s->chunk);

	if (n > 0 && vmsplice_all(s, s->fd, p, n, 0))
		return -1;
	return n;
}

/*
 * A signal broke an io_uring wait: go on waiting, or (a stop, or a
 * consumer that has all it waits for) have the request canceled.
 */
static bool uring_keep_waiting(void)
{
	errno = EINTR;
	return sys_retry();
}

/*
 * io_uring's IORING_OP_WRITE of a chunk of input, a request at a time
 * until all of it is in: a full ring makes a request wait by poll (the
 * device honours IOCB_NOWAIT), and a request that finds some room
 * completes short.
 */
static ssize_t put_uring(struct side *s)
{
	const void *p;
	ssize_t n = src_peek(s, &p, s->chunk), r;
	size_t done = 0;

	while (n > 0 && done < (size_t)n) {
		r = zuring_rw(s->uring, true, s->fd, (char *)p + done, n - done,
			      uring_keep_waiting, &nr_syscalls);
		if (r <= 0) {
			if (!r)
				errno = EIO;
			return side_fail(s, "io_uring write %s", s->name);
		}
		done += r;
	}
	return n;
}

/* ---- get: one step moves up to want bytes out; 0 at EOF ---- */

static ssize_t get_read(struct side *s, size_t want)
{
	ssize_t n = SYS(read(s->fd, s->tmp, want));

	if (n < 0)
		return side_fail(s, "read %s", s->name);
	if (n > 0 && sink_held(s, s->tmp, n, false))
		return -1;
	return n;
}

/*
 * io_uring's IORING_OP_READ into the buffer, then out as read's bytes
 * go. An empty ring makes the request wait by poll; a stop cancels it,
 * and bytes it took all the same are written before the step ends.
 */
static ssize_t get_uring(struct side *s, size_t want)
{
	ssize_t n = zuring_rw(s->uring, false, s->fd, s->tmp, want,
			      uring_keep_waiting, &nr_syscalls);

	if (n < 0)
		return side_fail(s, "io_uring read %s", s->name);
	if (n > 0 && sink_held(s, s->tmp, n, false))
		return -1;
	return n;
}

/*
 * send(MSG_ZEROCOPY) from the mapped ring at tail to a TCP socket with
 * SO_ZEROCOPY set, then CONSUME exactly what send() took, at once: the
 * socket still references those ring pages until their completion, and
 * the module keeps a page that something beyond the ring holds when tail
 * passes it (slots_kept): the producer's next use of that slot gets a
 * fresh page. The completions are read from the error queue after every
 * send, so their notifications never spend the socket's optmem (ENOBUFS).
 */
static ssize_t get_zerocopy(struct side *s, size_t want)
{
	struct sink *k = &s->snk;
	const char *name = k->name ? k->name : "output";
	char *p;
	ssize_t n = zring_wait(s, &p), r;

	if (n <= 0)
		return n;
	n = MIN((size_t)n, want);
	for (;;) {
		struct pollfd out = { .fd = k->fd, .events = POLLOUT };

		r = SYS(zc_send(k->fd, p, n, &s->zc));
		if (r >= 0 || errno != EAGAIN)
			break;
		/* A socket another process made non-blocking: wait for room. */
		if (SYS(poll(&out, 1, -1)) < 0)
			break;
	}
	if (r <= 0) {
		if (!r)
			errno = EIO;
		return side_fail(s, "send(MSG_ZEROCOPY) to %s", name);
	}
	if (zring_commit(s, r)) {
		/* Sent but still in the ring: a retry would send them twice. */
		side_fail(s, "ZCDEV_IOC_CONSUME after a send (%zd bytes sent, still in the ring)",
			  r);
		s->step_done = r;
		return -1;
	}
	if (zc_reap(k->fd, &s->zc)) {
		s->step_done = r;
		return side_fail(s, "read the completions of %s (MSG_ERRQUEUE)",
				 name);
	}
	return r;
}

/*
 * Hand the bytes at tail straight to the sink, then release exactly what
 * it took: what a failed or interrupted write did not take stays in the
 * ring.
 */
static ssize_t get_mmap(struct side *s, size_t want)
{
	struct sink *k = &s->snk;
	size_t done;
	char *p;
	ssize_t n = zring_wait(s, &p);
	int err;

	if (n <= 0)
		return n;
	n = MIN((size_t)n, want);
	if (k->expect || !k->keep) {
		if (sink_mem(s, p, n) || zring_commit(s, n))
			return -1;
		return n;
	}
	if (!write_full(k->fd, p, n, &done)) {
		if (!zring_commit(s, n))
			return n;
		/* Written but still in the ring: a retry would write them twice. */
		side_fail(s, "ZCDEV_IOC_CONSUME after a write (%zd bytes written, still in the ring)",
			  n);
		s->step_done = n;
		return -1;
	}
	err = errno;
	if (done && zring_commit(s, done)) {
		/* Written but still in the ring: a retry would write them twice. */
		side_fail(s, "ZCDEV_IOC_CONSUME after a failed write (%zu bytes written, still in the ring)",
			  done);
		return -1;
	}
	s->step_done = done;
	errno = err;
	return side_fail(s, "write output");
}

static ssize_t get_splice(struct side *s, size_t want)
{
	ssize_t n;

	if (s->direct) {
		n = SYS(zcdev_splice_out(s->fd, s->snk.fd, want, SPLICE_F_MOVE));
		if (n < 0)
			return side_fail(s, "splice %s -> output", s->name);
	} else {
		n = SYS(zcdev_splice_out(s->fd, s->pipe[1],
					 MIN(want, s->pipe_len), SPLICE_F_MOVE));
		if (n < 0)
			return side_fail(s, "splice %s -> pipe", s->name);
		if (n > 0 && sink_held(s, NULL, n, true))
			return -1;
	}
	if (n > 0 && sink_landed(s, n))
		return -1;
	return n;
}

/* Throw away n bytes at the head of the pipe pfd (read(2): an error path). */
static int pipe_skip(struct side *s, int pfd, size_t n)
{
	while (n) {
		ssize_t r = SYS(read(pfd, s->tmp, MIN(n, s->chunk)));

		if (r <= 0) {
			if (!r)
				errno = EIO;
			return -1;
		}
		n -= r;
	}
	return 0;
}

/*
 * One lend, two readers. splice lends the ring's pages to pipe A (the
 * hop, pipe[]); tee(2) gives pipe B (pipe2[]) a reference to each of
 * A's buffers, copying nothing and consuming nothing; then B drains into
 * the second output and A into the first. tee duplicates from A's head,
 * so A gives up exactly what tee duplicated before the next tee: in the
 * rare short tee (B is A's size, empty at every tee), the loop goes on.
 *
 * The bytes this step took must reach both outputs. When one output
 * fails, the other still gets every one of them (the step then fails
 * and the run ends): lost and lost2 count what each output missed.
 */
static ssize_t get_tee(struct side *s, size_t want)
{
	struct sink *k1 = &s->snk, *k2 = &s->snk2;
	size_t n, d1 = 0, d2 = 0, t, x;
	bool fail1 = false, fail2 = false;
	ssize_t r;

	r = SYS(zcdev_splice_out(s->fd, s->pipe[1], MIN(want, s->pipe_len),
				 SPLICE_F_MOVE));
	if (r < 0)
		return side_fail(s, "splice %s -> pipe", s->name);
	if (!r)
		return 0;
	n = r;
	/* d1, d2: this step's bytes in each output; A holds n - d1 of them. */
	while (d1 < n) {
		r = SYS(tee(s->pipe[0], s->pipe2[1], n - d1, 0));
		if (r <= 0) {
			if (!r)
				errno = EIO;
			side_fail(s, "tee pipe -> pipe for %s", k2->name);
			fail2 = true;
			break;
		}
		t = r;
		x = pipe_drain(s->pipe2[0], k2, t);
		d2 += x;
		if (x < t) {
			side_fail(s, "splice pipe -> %s", k2->name);
			fail2 = true;
			break;
		}
		x = pipe_drain(s->pipe[0], k1, t);
		d1 += x;
		if (x < t) {
			side_fail(s, "splice pipe -> %s", k1->name);
			fail1 = true;
			break;
		}
	}
	if (fail2 && d1 < n) {
		/* The second output is gone: the rest of A is the first's. */
		x = pipe_drain(s->pipe[0], k1, n - d1);
		d1 += x;
		if (d1 < n)
			side_fail(s, "splice pipe -> %s", k1->name);
	} else if (fail1 && d2 < n) {
		/*
		 * The first output is gone: A still holds n - d1 bytes, the
		 * first d2 - d1 of which the second output has. Drop those,
		 * then move the rest there as they are: no tee needed now.
		 */
		if (pipe_skip(s, s->pipe[0], d2 - d1)) {
			side_fail(s, "read pipe");
		} else {
			x = pipe_drain(s->pipe[0], k2, n - d2);
			d2 += x;
			if (d2 < n)
				side_fail(s, "splice pipe -> %s", k2->name);
		}
	}
	s->bytes2 += d2;
	if (d1 == n && d2 == n)
		return n;
	s->lost += n - d1;
	s->lost2 += n - d2;
	s->step_done = d1;
	return -1;
}

static ssize_t get_sendfile(struct side *s, size_t want)
{
	ssize_t n = SYS(zcdev_sendfile_out(s->snk.fd, s->fd, want));

	if (n < 0)
		return side_fail(s, "sendfile %s -> output", s->name);
	if (n > 0 && sink_landed(s, n))
		return -1;
	return n;
}

static ssize_t (*const put_steps[PUT_NR])(struct side *s) = {
	[PUT_WRITE]		= put_write,
	[PUT_MMAP]		= put_mmap,
	[PUT_SPLICE]		= put_splice,
	[PUT_VMSPLICE]		= put_vmsplice,
	[PUT_URING]		= put_uring,
	[PUT_VMSPLICE_REF]	= put_vmsplice_ref,
};

static ssize_t (*const get_steps[GET_NR])(struct side *s, size_t want) = {
	[GET_READ]	= get_read,
	[GET_MMAP]	= get_mmap,
	[GET_SPLICE]	= get_splice,
	[GET_SENDFILE]	= get_sendfile,
	[GET_URING]	= get_uring,
	[GET_TEE]	= get_tee,
	[GET_ZEROCOPY]	= get_zerocopy,
};

static int check_abort(struct side *s)
{
	if (!atomic_load(&xfer_abort))
		return 0;
	errno = ECANCELED;
	return side_fail(s, "%s", s->put ? "put" : "get");
}

static int put_run(struct side *s)
{
	ssize_t n;

	while (!check_abort(s)) {
		n = put_steps[s->method](s);
		if (n <= 0)
			return n;
		atomic_fetch_add_explicit(&s->bytes, n, memory_order_relaxed);
	}
	return -1;
}

static int get_steps_run(struct side *s)
{
	uint64_t done, limit;
	size_t want;
	ssize_t n;

	while (!check_abort(s)) {
		done = atomic_load_explicit(&s->bytes, memory_order_relaxed);
		want = s->chunk;
		limit = s->limit ? s->limit : side_wants(s);
		if (done >= limit)
			return 0;
		want = MIN(want, limit - done);
		s->step_done = 0;
		n = sink_room(s, &s->snk, &want);
		/* tee: both outputs must take them before either gets a byte. */
		if (!n && s->method == GET_TEE)
			n = sink_room(s, &s->snk2, &want);
		if (!n)
			n = get_steps[s->method](s, want);
		if (n < 0)
			atomic_fetch_add_explicit(&s->bytes, s->step_done,
						  memory_order_relaxed);
		if (n < 0 && !s->lost && !s->lost2 && side_has_all(s)) {
			/* Interrupted on purpose: see sys_retry(). */
			s->failed = false;
			s->err_no = 0;
			s->err[0] = '\0';
			return 0;
		}
		if (n < 0)
			return -1;
		if (!n && s->limit)
			return side_failx(s, "%s: end of data after %llu of %llu bytes",
					  s->name, (unsigned long long)done,
					  (unsigned long long)s->limit);
		if (!n)
			return 0;
		atomic_fetch_add_explicit(&s->bytes, n, memory_order_relaxed);
	}
	return -1;
}

/*
 * get zerocopy ends when every send has its completion: the report says
 * how many there were and how many the kernel copied. After a stop, or a
 * failure, it waits one second from then at most, however many signals
 * come: the socket keeps what send() took and sends it after we exit, but
 * a completion that has not come means the bytes have not left it yet.
 */
static int zc_finish(struct side *s, int ret)
{
	double end;
	int r = 1, left;

	if (!ret && !atomic_load(&xfer_abort)) {
		do
			r = zc_wait(s->snk.fd, &s->zc, -1);
		while (r < 0 && errno == EINTR && !atomic_load(&xfer_abort));
		if (!r)
			return 0;
		if (r < 0 && errno != EINTR)
			return side_fail(s, "read the completions of %s (MSG_ERRQUEUE)",
					 s->snk.name ? s->snk.name : "output");
	}
	/* One deadline: the signals that interrupt the wait do not move it. */
	end = now_sec() + 1;
	do {
		left = (int)((end - now_sec()) * 1000);
		r = zc_wait(s->snk.fd, &s->zc, left > 0 ? left : 0);
	} while (r < 0 && errno == EINTR);
	if (ret || !r)
		return ret;
	errno = ECANCELED;
	return side_fail(s, "waiting for the completions of %llu sends",
			 (unsigned long long)(s->zc.sends - s->zc.done));
}

static int get_run(struct side *s)
{
	int ret = get_steps_run(s);

	if (s->method == GET_ZEROCOPY)
		ret = zc_finish(s, ret);
	sink_unreserve(&s->snk);
	if (s->method == GET_TEE)
		sink_unreserve(&s->snk2);
	return ret;
}

/* ---- setting a side up ---- */

void side_init(struct side *s, bool put, int method, int fd, const char *name,
	       size_t chunk)
{
	memset(s, 0, sizeof(*s));
	s->put = put;
	s->method = method;
	s->fd = fd;
	s->name = name;
	s->chunk = chunk;
	s->src.fd = -1;
	s->snk.fd = -1;
	s->snk2.fd = -1;
	s->pipe[0] = -1;
	s->pipe[1] = -1;
	s->pipe2[0] = -1;
	s->pipe2[1] = -1;
}

/* A pipe of at least want bytes if the system allows, else what it gives. */
int open_pipe(int p[2], size_t want, size_t *got)
{
	int sz;

	if (pipe2(p, O_CLOEXEC))
		return -1;
	sz = fcntl(p[1], F_SETPIPE_SZ, (int)MIN(want, (size_t)INT_MAX));
	if (sz < 0)
		sz = fcntl(p[1], F_GETPIPE_SZ);
	if (sz < 0) {
		close(p[0]);
		close(p[1]);
		p[0] = p[1] = -1;
		return -1;
	}
	*got = sz;
	return 0;
}

/* How a producer opens the device: a writable shared mapping needs O_RDWR. */
int put_open_flags(int method)
{
	return method == PUT_MMAP ? O_RDWR : O_WRONLY;
}

static bool side_mmaps(const struct side *s)
{
	if (s->put)
		return s->method == PUT_MMAP;
	return s->method == GET_MMAP || s->method == GET_ZEROCOPY;
}

static bool side_urings(const struct side *s)
{
	return s->method == (s->put ? PUT_URING : GET_URING);
}

static bool side_hops(const struct side *s)
{
	if (s->put)
		return s->method == PUT_SPLICE || s->method == PUT_VMSPLICE;
	return s->method == GET_SPLICE || s->method == GET_TEE;
}

/* What side_setup() learns about a kept output. */
static void sink_setup(struct sink *k)
{
	struct stat st;
	int fl = fcntl(k->fd, F_GETFL);

	k->kind = SINK_OTHER;
	if (!fstat(k->fd, &st) && S_ISREG(st.st_mode))
		k->kind = SINK_REG;
	else if (!fstat(k->fd, &st) && S_ISFIFO(st.st_mode))
		k->kind = SINK_PIPE;
	k->append = fl >= 0 && (fl & O_APPEND);
}

/*
 * Allocate what the method needs: the bounce buffer, the mapping, and the
 * hop pipe for splicing between two non-pipes (not needed when the other
 * end is a pipe already, except by vmsplice, which needs its own).
 */
int side_setup(struct side *s, const struct zcdev_info *info)
{
	size_t got;

	if (posix_memalign((void **)&s->tmp, 4096, s->chunk)) {
		errno = ENOMEM;
		return side_fail(s, "buffer of %zu bytes", s->chunk);
	}
	/* The mmap protocol allows one producer and one consumer. */
	if (!is_pipe(s->fd) &&
	    zcdev_claim(s->fd, s->put ? ZCDEV_PRODUCER : ZCDEV_CONSUMER)) {
		if (errno != EBUSY)
			return side_fail(s, "%s: claim", s->name);
		return side_fail(s, "%s: another %s holds the ring", s->name,
				 s->put ? "producer" : "consumer");
	}
	if (side_mmaps(s) && zcdev_ring_map(&s->ring, s->fd, info, s->put))
		return side_fail(s, "mmap %s", s->name);
	if (side_urings(s)) {
		s->uring = zuring_open();
		if (!s->uring)
			return side_fail(s, "io_uring_queue_init%s",
					 errno == ENOSYS || errno == EPERM ?
					 " (io_uring is off in this kernel? kernel.io_uring_disabled)" :
					 "");
	}
	if (!s->put && s->method == GET_ZEROCOPY && zc_enable(s->snk.fd))
		return side_fail(s, "setsockopt(SO_ZEROCOPY) on %s",
				 s->snk.name ? s->snk.name : "the output");
	if (!s->put && s->snk.keep && !s->snk.expect)
		sink_setup(&s->snk);
	if (s->method == GET_TEE && !s->put)
		sink_setup(&s->snk2);
	if (!side_hops(s))
		return 0;
	if (s->put)
		s->direct = s->method == PUT_SPLICE && is_pipe(s->src.fd);
	else if (s->method == GET_SPLICE)
		s->direct = is_pipe(s->fd) || is_pipe(s->snk.fd);
	if (s->direct)
		return 0;
	if (open_pipe(s->pipe, s->chunk, &got))
		return side_fail(s, "pipe");
	s->pipe_len = MIN(s->chunk, got);
	/*
	 * tee: B as large as A, so that one tee takes all A holds (A is
	 * filled only to pipe_len and B is empty at every tee).
	 */
	if (s->method == GET_TEE && !s->put) {
		if (open_pipe(s->pipe2, s->pipe_len, &got))
			return side_fail(s, "pipe");
		s->pipe_len = MIN(s->pipe_len, got);
	}
	return 0;
}

void side_release(struct side *s)
{
	int i;

	zcdev_ring_unmap(&s->ring);
	zuring_close(s->uring);
	s->uring = NULL;
	for (i = 0; i < 2; i++) {
		if (s->pipe[i] >= 0)
			close(s->pipe[i]);
		if (s->pipe2[i] >= 0)
			close(s->pipe2[i]);
		s->pipe[i] = s->pipe2[i] = -1;
	}
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	free(s->tmp);
	s->tmp = NULL;
}

/* ---- running sides in threads ---- */

static sem_t run_done;

static void *side_main(void *arg)
{
	struct side *s = arg;
	int ret;

	nr_syscalls = 0;
	cur_side = s;
	getrusage(RUSAGE_THREAD, &s->ru0);
	s->t0 = now_sec();
	ret = s->put ? put_run(s) : get_run(s);
	s->t1 = now_sec();
	getrusage(RUSAGE_THREAD, &s->ru1);
	s->syscalls = nr_syscalls;
	/* A producer that is done closes, like a FIFO writer: EOF follows. */
	if (s->put)
		side_release(s);
	if (ret)
		atomic_store(&xfer_abort, 1);
	atomic_store(&s->done, true);
	sem_post(&run_done);
	return NULL;
}

static void wake_up(int sig)
{
	(void)sig;
}

static void run_tick(struct run *run, struct side **sides, int n,
		     uint64_t *last, double *last_t)
{
	uint64_t moved = 0, shown = atomic_load(&sides[n - 1]->bytes);
	double now = now_sec();
	int i;

	for (i = 0; i < n; i++)
		moved += atomic_load(&sides[i]->bytes);
	if (moved != *last) {
		*last = moved;
		*last_t = now;
	} else if (run->timeout && now - *last_t > run->timeout &&
		   !atomic_load(&xfer_abort)) {
		run->stalled = true;
		snprintf(run->err, sizeof(run->err),
			 "stalled: no progress for %g s", run->timeout);
		atomic_store(&xfer_abort, 1);
	}
	if (run->progress)
		fprintf(stderr, "\r%s: %.1f MB\033[K", run->label, shown / 1e6);
}

/*
 * A producer that is done tells the consumers that follow it how many
 * bytes to wait for: another process may hold a writer open, and then no
 * EOF ever comes.
 */
static void follow_producer(struct side **sides, int n)
{
	int i, j;

	for (i = 0; i < n; i++) {
		if (!sides[i]->put || !atomic_load(&sides[i]->done) ||
		    sides[i]->failed)
			continue;
		for (j = 0; j < n; j++)
			if (!sides[j]->put && sides[j]->follow &&
			    !atomic_load(&sides[j]->stop_after))
				atomic_store(&sides[j]->stop_after,
					     atomic_load(&sides[i]->bytes) + 1);
	}
}

int run_sides(struct run *run, struct side **sides, int n)
{
	struct sigaction sa = { .sa_handler = wake_up };
	pthread_t tid[2];
	int i, ret, started = 0, finished = 0;
	uint64_t last = 0;
	double last_t = now_sec();

	/* No SA_RESTART: the signal must break a blocked call with EINTR. */
	sigaction(SIGUSR1, &sa, NULL);
	/* A signal to stop that came before the run still stops it. */
	atomic_store(&xfer_abort, atomic_load(&xfer_signal) != 0);
	run->stalled = false;
	sem_init(&run_done, 0, 0);
	for (i = 0; i < n && i < 2; i++, started++) {
		ret = pthread_create(&tid[i], NULL, side_main, sides[i]);
		if (ret) {
			errno = ret;
			side_fail(sides[i], "pthread_create");
			atomic_store(&xfer_abort, 1);
			break;
		}
	}
	while (finished < started) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100 * 1000 * 1000;
		if (ts.tv_nsec >= 1000 * 1000 * 1000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000 * 1000 * 1000;
		}
		if (!sem_timedwait(&run_done, &ts))
			finished++;
		else
			run_tick(run, sides, n, &last, &last_t);
		follow_producer(sides, started);
		/* Again and again: a signal sent before a thread blocks is lost. */
		for (i = 0; i < started; i++)
			if (atomic_load(&xfer_abort) ||
			    (!atomic_load(&sides[i]->done) && side_has_all(sides[i])))
				pthread_kill(tid[i], SIGUSR1);
	}
	for (i = 0; i < started; i++)
		pthread_join(tid[i], NULL);
	sem_destroy(&run_done);
	if (run->progress)
		fputs("\r\033[K", stderr);
	return run_error(run, sides, n) ? -1 : 0;
}

/* Wall time from the first side's start to the last side's end. */
double sides_elapsed(struct side **sides, int n)
{
	double t0 = sides[0]->t0, t1 = sides[0]->t1;
	int i;

	for (i = 1; i < n; i++) {
		if (sides[i]->t0 < t0)
			t0 = sides[i]->t0;
		if (sides[i]->t1 > t1)
			t1 = sides[i]->t1;
	}
	return t1 - t0;
}

/* The failure to report: the stall, else the cause rather than a victim. */
const char *run_error(const struct run *run, struct side **sides, int n)
{
	const char *victim = NULL;
	int i;

	if (run->stalled)
		return run->err;
	for (i = 0; i < n; i++) {
		if (!sides[i]->failed)
			continue;
		if (!sides[i]->canceled)
			return sides[i]->err;
		victim = sides[i]->err;
	}
	return victim;
}
