// SPDX-License-Identifier: GPL-2.0
/*
 * zcdev(1) bench and explain: every path as one call that moves exactly n
 * bytes, and the lap runner that times one side of the ring at a time.
 * One thread does everything but drain the TCP socket, so a call never
 * waits for the other side: the producer only puts what the ring has room
 * for, the consumer only takes what is there.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define BIT(m) (1u << (m))
#define ALL_MAPS (BIT(BMAP_NONE) | BIT(BMAP_META) | BIT(BMAP_PROD))

const char *const bmap_names[] = {
	[BMAP_NONE] = "none",
	[BMAP_META] = "meta",
	[BMAP_PROD] = "mapped",
	[BMAP_REF] = "-",
};

/*
 * Table order. A consumer row's ratio is to read (read+send for the TCP
 * rows), a producer row's to write, under the same mapping and call size.
 */
const struct bpath bpaths[] = {
	{ "ref:pipe-rw", "pipe write/read", BS_REF, BP_WRITE, BG_READ, true, 0,
	  "ref:pipe-rw", "pipe" },
	{ "ref:pipe-splice", "pipe vmsplice/splice", BS_REF, BP_STAGE_VMSPLICE,
	  BG_SPLICE_NULL, true, 0, "ref:pipe-rw", "pipe-splice" },
	{ "ref:memcpy", "memcpy", BS_REF, BP_MEMCPY, BG_NONE, false, 0,
	  "ref:pipe-rw", "memcpy" },
	{ "pair:write-read", "zcdev write/read", BS_PAIR, BP_WRITE, BG_READ,
	  false, BIT(BMAP_NONE), "ref:pipe-rw", "rw" },
	{ "pair:mmap-splice", "zcdev mmap/splice", BS_PAIR, BP_MMAP,
	  BG_SPLICE_NULL, false, BIT(BMAP_PROD), "ref:pipe-splice", NULL },
	{ "get:read", "get read", BS_GET, 0, BG_READ, false, ALL_MAPS,
	  "get:read", NULL },
	{ "get:mmap", "get mmap in place", BS_GET, 0, BG_MMAP, false,
	  BIT(BMAP_PROD), "get:read", NULL },
	{ "get:uring-read", "get uring read", BS_GET, 0, BG_URING_READ, false,
	  ALL_MAPS, "get:read", NULL },
	{ "get:splice-null", "get splice >null", BS_GET, 0, BG_SPLICE_NULL,
	  false, ALL_MAPS, "get:read", "splice-out" },
	{ "get:sendfile-null", "get sendfile >null", BS_GET, 0,
	  BG_SENDFILE_NULL, false, ALL_MAPS, "get:read", "sendfile" },
	{ "get:read-null2", "get read+write >2 null", BS_GET, 0,
	  BG_READ_NULL2, false, ALL_MAPS, "get:read-null2", NULL },
	{ "get:tee-null", "get splice+tee >2 null", BS_GET, 0, BG_TEE_NULL,
	  false, ALL_MAPS, "get:read-null2", NULL },
	{ "get:read-send", "get read+send >tcp", BS_GET, 0, BG_READ_SEND, false,
	  ALL_MAPS, "get:read-send", NULL },
	{ "get:mmap-send", "get mmap+send >tcp", BS_GET, 0, BG_MMAP_SEND, false,
	  BIT(BMAP_PROD), "get:read-send", NULL },
	{ "get:mmap-send-zc", "get mmap+send(MSG_ZEROCOPY) >tcp", BS_GET, 0,
	  BG_MMAP_SEND_ZC, false, BIT(BMAP_PROD), "get:read-send", NULL },
	{ "get:splice-tcp", "get splice >tcp", BS_GET, 0, BG_SPLICE_TCP, false,
	  ALL_MAPS, "get:read-send", NULL },
	{ "get:sendfile-tcp", "get sendfile >tcp", BS_GET, 0, BG_SENDFILE_TCP,
	  false, ALL_MAPS, "get:read-send", NULL },
	{ "put:write", "put write", BS_PUT, BP_WRITE, 0, false, ALL_MAPS,
	  "put:write", NULL },
	{ "put:uring-write", "put uring write", BS_PUT, BP_URING_WRITE, 0, false,
	  ALL_MAPS, "put:write", NULL },
	{ "put:mmap", "put mmap+PRODUCE", BS_PUT, BP_MMAP, 0, false,
	  BIT(BMAP_PROD), "put:write", NULL },
	{ "put:mmap-populate", "put mmap+populate", BS_PUT, BP_MMAP_POP, 0,
	  false, BIT(BMAP_PROD), "put:write", NULL },
	{ "put:splice", "put splice <pipe", BS_PUT, BP_SPLICE, 0, false,
	  ALL_MAPS, "put:write", "splice-in" },
	{ "put:vmsplice", "put vmsplice", BS_PUT, BP_VMSPLICE, 0, false,
	  ALL_MAPS, "put:write", "vmsplice" },
};

const size_t nr_bpaths = sizeof(bpaths) / sizeof(bpaths[0]);
_Static_assert(sizeof(bpaths) / sizeof(bpaths[0]) <= BENCH_MAX_PATHS,
	       "struct bench's want[] is too small");

const struct bpath *bpath_find(const char *id)
{
	size_t i;

	for (i = 0; i < nr_bpaths; i++)
		if (!strcmp(bpaths[i].id, id))
			return &bpaths[i];
	return NULL;
}

const char *const bside_names[] = {
	[BS_REF] = "ref", [BS_PAIR] = "pair", [BS_GET] = "get", [BS_PUT] = "put",
};

/* The id without its side: "splice-null" for "get:splice-null". */
const char *bpath_short(const struct bpath *p)
{
	return strchr(p->id, ':') + 1;
}

/* Does the row send to TCP (a receiver of its own, or --tcp-to's)? */
bool bpath_tcp(const struct bpath *p)
{
	return p->side == BS_GET &&
	       (p->get == BG_READ_SEND || p->get == BG_MMAP_SEND ||
		p->get == BG_MMAP_SEND_ZC || p->get == BG_SPLICE_TCP ||
		p->get == BG_SENDFILE_TCP);
}

/* A name on the command line: all, an id, its short name, a side, an alias. */
bool bpath_matches(const struct bpath *p, const char *tok)
{
	return !strcmp(tok, "all") || !strcmp(tok, p->id) ||
	       !strcmp(tok, bpath_short(p)) || !strcmp(tok, bside_names[p->side]) ||
	       (p->alias && !strcmp(tok, p->alias));
}

int bctx_fail(struct bctx *c, const char *fmt, ...)
{
	int err = errno;
	va_list ap;
	size_t n;

	if (c->failed)
		return -1;
	c->failed = true;
	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	n = strlen(c->err);
	if (err && n < sizeof(c->err))
		snprintf(c->err + n, sizeof(c->err) - n, ": %s", strerror(err));
	return -1;
}

/* The fixed side: the mapping's owner fills in place, else write(2). */
enum bput bctx_put_path(const struct bctx *c)
{
	if (c->path->side != BS_GET)
		return c->path->put;
	return c->map == BMAP_PROD ? BP_MMAP : BP_WRITE;
}

/* The fixed side: splice to /dev/null drains without a copy or a mapping. */
enum bget bctx_get_path(const struct bctx *c)
{
	return c->path->side == BS_PUT ? BG_SPLICE_NULL : c->path->get;
}

/*
 * Hold the ring's producer and consumer claims for the whole run, so that
 * no cooperating program (zcdev put, get, copy) shares the ring with the
 * bench meanwhile; the bench's own descriptors take none, so a row and its
 * baseline can both be open. Returns the descriptor that holds them, or
 * minus an exit status after saying why.
 */
int bench_claim(struct zcdev_info *info)
{
	int fd = dev_open(O_RDWR, info), ret;

	if (fd < 0)
		return fd;
	ret = zcdev_claim(fd, ZCDEV_PRODUCER);
	if (!ret)
		ret = zcdev_claim(fd, ZCDEV_CONSUMER);
	if (ret) {
		errmsg("%s: %s", dev_path(), ret == -EBUSY ?
		       "another producer or consumer holds the ring" :
		       strerror(-ret));
		close(fd);
		return -EXIT_FAIL;
	}
	return fd;
}

/* ---- signals: the lap watchdog ---- */

static void on_alarm(int sig)
{
	(void)sig;
	/* SYS() then gives up on the EINTR this signal causes. */
	atomic_store(&xfer_abort, 1);
}

void bench_signals(void)
{
	struct sigaction sa = { .sa_handler = on_alarm };

	/* No SA_RESTART: a blocked call must return. */
	sigaction(SIGALRM, &sa, NULL);
	/* A socket or pipe whose reader is gone fails the row, not the bench. */
	signal(SIGPIPE, SIG_IGN);
}

/*
 * The alarm repeats until disarmed: a call that was cut short by the
 * first one and made again (write_all() after a partial write) would
 * otherwise block with nothing left to interrupt it.
 */
void bench_watchdog(double secs)
{
	struct itimerval it = { 0 };

	if (secs > 0 && secs < 1e-6)
		secs = 1e-6;
	it.it_value.tv_sec = (time_t)secs;
	it.it_value.tv_usec = (suseconds_t)((secs - (time_t)secs) * 1e6);
	it.it_interval = it.it_value;
	setitimer(ITIMER_REAL, &it, NULL);
}

/* Past the deadline: the row fails at its next call, blocked or not. */
static int past_deadline(struct bctx *c)
{
	if (!atomic_load(&xfer_abort))
		return 0;
	errno = ECANCELED;
	return bctx_fail(c, "past the deadline");
}

/* ---- the payload, seen from a stream offset ---- */

/*
 * The payload is followed by a copy of its start at least a call long
 * plus BENCH_SKEW_SPAN (bench.c allocates it so), so any call's bytes are
 * contiguous from any skew.
 */
static const char *payload_at(const struct bctx *c, uint64_t off)
{
	return c->env->payload + c->skew + off % c->env->payload_len;
}

/*
 * Where the payload starts for this context. A copy whose source and
 * destination are a multiple of 1 MiB apart (and mmap() lays the payload
 * and the ring out whole MiB apart) runs at half speed or worse under
 * QEMU's TCG, whose software TLB is direct-mapped: the two pages of each
 * step evict each other (measured: 64 KiB memcpy at 1.6 GB/s against
 * 3.0 GB/s one page further apart). Real CPUs have milder forms of the
 * same thing. So that a row measures its path and not where mmap() put
 * its buffers, the producer's source starts 128 KiB past its destination
 * modulo 1 MiB: 32 pages, more than a 64 KiB call spans, for any TLB of
 * 64 entries or more.
 */
static void bctx_skew(struct bctx *c, const char *dst)
{
	uintptr_t want = (uintptr_t)dst - 128 * 1024;

	c->skew = (want - (uintptr_t)c->env->payload) % BENCH_SKEW_SPAN;
}

static int check_bytes(struct bctx *c, const char *got, size_t n)
{
	const char *want = payload_at(c, c->get_off);
	size_t i;

	if (!memcmp(got, want, n))
		return 0;
	for (i = 0; got[i] == want[i]; i++)
		;
	errno = 0;
	return bctx_fail(c, "%s: payload mismatch at byte %llu", c->path->id,
			 (unsigned long long)(c->get_off + i));
}

/* n bytes landed in the sink fd by splice or sendfile. */
static int fd_landed(struct bctx *c, int sink, size_t n)
{
	if (!c->verify)
		return 0;
	/* Verifying: the sink is a memfd; read it back and rewind it. */
	if (pread(sink, c->buf, n, 0) != (ssize_t)n ||
	    lseek(sink, 0, SEEK_SET) < 0)
		return bctx_fail(c, "read back memfd");
	return check_bytes(c, c->buf, n);
}

static int sink_landed(struct bctx *c, size_t n)
{
	return fd_landed(c, c->sink, n);
}

/* ---- the calls ---- */

static int splice_all(struct bctx *c, int in, int out, size_t n,
		      const char *what)
{
	while (n) {
		ssize_t r = SYS(splice(in, NULL, out, NULL, n, SPLICE_F_MOVE));

		if (r < 0)
			return bctx_fail(c, "splice %s", what);
		if (!r) {
			errno = 0;
			return bctx_fail(c, "splice %s: no data", what);
		}
		n -= r;
	}
	return 0;
}

static int vmsplice_all(struct bctx *c, int fd, const char *p, size_t n)
{
	struct iovec iov = { .iov_base = (void *)p, .iov_len = n };

	while (iov.iov_len) {
		ssize_t r = SYS(vmsplice(fd, &iov, 1, 0));

		if (r < 0)
			return bctx_fail(c, "vmsplice");
		iov.iov_base = (char *)iov.iov_base + r;
		iov.iov_len -= r;
	}
	return 0;
}

static int commit(struct bctx *c, unsigned long cmd, int fd, uint64_t n)
{
	if (SYS(cmd == ZCDEV_IOC_PRODUCE ? zcdev_produce(fd, n) :
		zcdev_consume(fd, n)) < 0)
		return bctx_fail(c, "%s", cmd == ZCDEV_IOC_PRODUCE ?
				 "ZCDEV_IOC_PRODUCE" : "ZCDEV_IOC_CONSUME");
	return 0;
}

static char *ring_at(const struct zcdev_ring *r, bool head)
{
	const struct zcdev_ring_meta *m = r->meta;
	uint64_t pos = __atomic_load_n(head ? &m->head : &m->tail,
				       __ATOMIC_ACQUIRE);

	return r->data + pos % r->ring_bytes;
}

/* A lap watchdog's stop cancels a request still waiting. */
static bool bench_keep_waiting(void)
{
	return !atomic_load(&xfer_abort);
}

/* io_uring write of n payload bytes, or read of n into buf, in requests. */
static int uring_all(struct bctx *c, bool write, char *p, size_t n)
{
	while (n) {
		ssize_t r = zuring_rw(c->uring, write, write ? c->wfd : c->rfd,
				      p, n, bench_keep_waiting, &nr_syscalls);

		if (r <= 0) {
			if (!r)
				errno = 0;
			return bctx_fail(c, "io_uring %s%s", write ? "write" : "read",
					 r ? "" : ": nothing moved");
		}
		if (!write && c->verify && check_bytes(c, p, r))
			return -1;
		if (!write)
			c->get_off += r;
		p += r;
		n -= r;
	}
	return 0;
}

/*
 * send(MSG_ZEROCOPY) of n bytes of the mapping, then what the error queue
 * holds: the completions' reading is part of the path's cost, as in the
 * tool (get --method zerocopy). Every recvmsg() and poll() counts as a
 * system call of the timed side.
 */
static int send_zc_all(struct bctx *c, const char *p, size_t n)
{
	unsigned long calls = c->zc.syscalls;
	int ret = 0;

	while (n) {
		ssize_t r = zc_send(c->tx, p, n, &c->zc);

		if (r < 0 && errno == EINTR && !atomic_load(&xfer_abort))
			continue;
		if (r <= 0) {
			if (!r)
				errno = 0;
			ret = bctx_fail(c, "send(MSG_ZEROCOPY)");
			break;
		}
		p += r;
		n -= r;
	}
	if (!ret && zc_reap(c->tx, &c->zc))
		ret = bctx_fail(c, "recvmsg(MSG_ERRQUEUE)");
	nr_syscalls += c->zc.syscalls - calls;
	return ret;
}

int bput_prepare(struct bctx *c, enum bput m, size_t n)
{
	if (m != BP_SPLICE)
		return 0;
	/* As if a socket or a file had spliced them there: not timed. */
	if (write_all(c->in[1], payload_at(c, c->put_off), n))
		return bctx_fail(c, "write to the source pipe");
	return 0;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* Map the pages of [p, p + n) writable in one call instead of a trap each. */
static int populate(struct bctx *c, char *p, size_t n)
{
	uintptr_t page = c->info.page_size;
	uintptr_t start = (uintptr_t)p & ~(page - 1);
	uintptr_t end = ((uintptr_t)p + n + page - 1) & ~(page - 1);

	if (SYS(madvise((void *)start, end - start, MADV_POPULATE_WRITE)))
		return bctx_fail(c, "madvise(MADV_POPULATE_WRITE)");
	return 0;
}

int bput_call(struct bctx *c, enum bput m, size_t n)
{
	const char *src = payload_at(c, c->put_off);
	int ret = 0;
	char *dst;

	switch (m) {
	case BP_WRITE:
		if (write_all(c->wfd, src, n))
			ret = bctx_fail(c, "write");
		break;
	case BP_MMAP:
	case BP_MMAP_POP:
		if (!c->pmap.data) {
			errno = EINVAL;
			return bctx_fail(c, "mmap producer without a mapping");
		}
		dst = ring_at(&c->pmap, true);
		if (m == BP_MMAP_POP && populate(c, dst, n))
			return -1;
		memcpy(dst, src, n);
		ret = commit(c, ZCDEV_IOC_PRODUCE, c->wfd, n);
		break;
	case BP_SPLICE:
		ret = splice_all(c, c->in[0], c->wfd, n, "pipe -> ring");
		break;
	case BP_VMSPLICE:
		ret = vmsplice_all(c, c->in[1], src, n);
		if (!ret)
			ret = splice_all(c, c->in[0], c->wfd, n, "pipe -> ring");
		break;
	case BP_URING_WRITE:
		ret = uring_all(c, true, (char *)src, n);
		break;
	case BP_STAGE_VMSPLICE:
		dst = c->ring_buf + c->put_off % c->cap;
		memcpy(dst, src, n);
		ret = vmsplice_all(c, c->wfd, dst, n);
		break;
	case BP_MEMCPY:
		memcpy(c->ring_buf + c->put_off % c->cap, src, n);
		/* The copy must happen although nothing reads it. */
		__asm__ volatile("" : : "r"(c->ring_buf) : "memory");
		break;
	default:
		errno = EINVAL;
		ret = bctx_fail(c, "no such producer path");
	}
	if (!ret)
		c->put_off += n;
	return ret;
}

/* Device -> hop pipe -> out, in pieces the hop holds. */
static int splice_via_hop(struct bctx *c, int out, size_t n, const char *what)
{
	while (n) {
		ssize_t r = SYS(splice(c->rfd, NULL, c->hop[1], NULL,
				       MIN(n, c->hop_len), SPLICE_F_MOVE));

		if (r <= 0) {
			if (!r)
				errno = 0;
			return bctx_fail(c, "splice ring -> pipe%s",
					 r ? "" : ": no data");
		}
		if (splice_all(c, c->hop[0], out, r, what))
			return -1;
		n -= r;
	}
	return 0;
}

/*
 * One lend, two readers: device -> hop, tee(2) hop -> hop2 (references,
 * no copy), then each pipe to its sink, in pieces the hop holds. hop2 is
 * the hop's size and empty at every tee, so a tee takes all the hop has.
 */
static int tee_via_hops(struct bctx *c, size_t n)
{
	while (n) {
		ssize_t r = SYS(splice(c->rfd, NULL, c->hop[1], NULL,
				       MIN(n, c->hop_len), SPLICE_F_MOVE));
		ssize_t t;

		if (r <= 0) {
			if (!r)
				errno = 0;
			return bctx_fail(c, "splice ring -> pipe%s",
					 r ? "" : ": no data");
		}
		t = SYS(tee(c->hop[0], c->hop2[1], r, 0));
		if (t != r) {
			if (t >= 0)
				errno = 0;
			return bctx_fail(c, "tee pipe -> pipe%s",
					 t >= 0 ? ": short" : "");
		}
		if (splice_all(c, c->hop2[0], c->sink2, r, "pipe -> sink 2") ||
		    fd_landed(c, c->sink2, r) ||
		    splice_all(c, c->hop[0], c->sink, r, "pipe -> sink") ||
		    fd_landed(c, c->sink, r))
			return -1;
		c->get_off += r;
		n -= r;
	}
	return 0;
}

static int sendfile_all(struct bctx *c, int out, size_t n)
{
	while (n) {
		ssize_t r = SYS(sendfile(out, c->rfd, NULL, n));

		if (r <= 0) {
			if (!r)
				errno = 0;
			return bctx_fail(c, "sendfile%s", r ? "" : ": no data");
		}
		n -= r;
	}
	return 0;
}

/* Read, then send to the socket (send), write to both sinks (two) or neither. */
static int read_all(struct bctx *c, size_t n, bool send, bool two)
{
	while (n) {
		ssize_t r = SYS(read(c->rfd, c->buf, n));

		if (r <= 0) {
			if (!r)
				errno = 0;
			return bctx_fail(c, "read%s", r ? "" : ": end of data");
		}
		if (send && write_all(c->tx, c->buf, r))
			return bctx_fail(c, "send");
		if (two && (write_all(c->sink, c->buf, r) ||
			    write_all(c->sink2, c->buf, r)))
			return bctx_fail(c, "write to /dev/null");
		if (!send && c->verify && check_bytes(c, c->buf, r))
			return -1;
		c->get_off += r;
		n -= r;
	}
	return 0;
}

int bget_call(struct bctx *c, enum bget m, size_t n)
{
	uint64_t off = c->get_off;
	int ret = 0;
	char *p;

	switch (m) {
	case BG_READ:
	case BG_READ_SEND:
	case BG_READ_NULL2:
		/* read_all() moves get_off itself, a piece at a time. */
		ret = read_all(c, n, m == BG_READ_SEND, m == BG_READ_NULL2);
		return ret;
	case BG_TEE_NULL:
		/* So does tee_via_hops(). */
		return tee_via_hops(c, n);
	case BG_URING_READ:
		/* And uring_all(). */
		return uring_all(c, false, c->buf, n);
	case BG_MMAP:
	case BG_MMAP_SEND:
	case BG_MMAP_SEND_ZC:
		if (!c->cmap.data) {
			errno = EINVAL;
			return bctx_fail(c, "mmap consumer without a mapping");
		}
		p = ring_at(&c->cmap, false);
		if (m == BG_MMAP_SEND && write_all(c->tx, p, n))
			return bctx_fail(c, "send");
		if (m == BG_MMAP_SEND_ZC && send_zc_all(c, p, n))
			return -1;
		if (m == BG_MMAP && c->verify && check_bytes(c, p, n))
			return -1;
		ret = commit(c, ZCDEV_IOC_CONSUME, c->rfd, n);
		break;
	case BG_SPLICE_NULL:
		if (c->path->pipe)
			ret = splice_all(c, c->rfd, c->sink, n, "pipe -> sink");
		else
			ret = splice_via_hop(c, c->sink, n, "pipe -> sink");
		if (!ret)
			ret = sink_landed(c, n);
		break;
	case BG_SENDFILE_NULL:
		ret = sendfile_all(c, c->sink, n);
		if (!ret)
			ret = sink_landed(c, n);
		break;
	case BG_SPLICE_TCP:
		ret = splice_via_hop(c, c->tx, n, "pipe -> socket");
		break;
	case BG_SENDFILE_TCP:
		ret = sendfile_all(c, c->tx, n);
		break;
	case BG_NONE:
		if (c->verify &&
		    check_bytes(c, c->ring_buf + off % c->cap, n))
			return -1;
		break;
	default:
		errno = EINVAL;
		return bctx_fail(c, "no such consumer path");
	}
	if (!ret)
		c->get_off = off + n;
	return ret;
}

/* ---- timing ---- */

static double thread_cpu(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The counters first and the clocks last, so the timed stretch holds neither. */
static void bmark_begin(struct bctx *c, struct bmark *m)
{
	if (c->ctl >= 0)
		zcdev_get_stats(c->ctl, &m->st);
	getrusage(RUSAGE_THREAD, &m->ru);
	m->calls = nr_syscalls;
	m->cpu = thread_cpu();
	m->t = now_sec();
}

static void bmark_end(struct bctx *c, struct bmark *m)
{
	m->t = now_sec();
	m->cpu = thread_cpu();
	m->calls = nr_syscalls;
	getrusage(RUSAGE_THREAD, &m->ru);
	if (c->ctl >= 0)
		zcdev_get_stats(c->ctl, &m->st);
}

void bmark_take(struct bctx *c, struct bmark *m, bool end)
{
	if (end)
		bmark_end(c, m);
	else
		bmark_begin(c, m);
}

void bmark_add(struct bctx *c, const struct bmark *a, const struct bmark *b,
	       struct bcost *cost)
{
	struct zcdev_stats d;
	const struct zcdev_field *f;

	cost->secs += b->t - a->t;
	cost->cpu += b->cpu - a->cpu;
	cost->usr += tv_sec(&b->ru.ru_utime) - tv_sec(&a->ru.ru_utime);
	cost->sys += tv_sec(&b->ru.ru_stime) - tv_sec(&a->ru.ru_stime);
	cost->minflt += b->ru.ru_minflt - a->ru.ru_minflt;
	cost->syscalls += b->calls - a->calls;
	if (c->ctl < 0)
		return;
	zcdev_stats_delta(&a->st, &b->st, &d);
	for (f = zcdev_stats_fields; f->name; f++) {
		uint64_t v = zcdev_field_get(&cost->d, f) + zcdev_field_get(&d, f);

		memcpy((char *)&cost->d + f->off, &v, sizeof(v));
	}
}

int bput_run(struct bctx *c, enum bput m, uint64_t n, struct bcost *cost)
{
	struct bmark a, b;

	while (n) {
		uint64_t batch = m == BP_SPLICE ? MIN(n, c->in_len) : n, left;

		if (bput_prepare(c, m, batch))
			return -1;
		if (cost)
			bmark_begin(c, &a);
		for (left = batch; left; left -= MIN(left, c->chunk))
			if (past_deadline(c) ||
			    bput_call(c, m, MIN(left, c->chunk)))
				return -1;
		if (cost) {
			bmark_end(c, &b);
			bmark_add(c, &a, &b, cost);
		}
		n -= batch;
	}
	return 0;
}

int bget_run(struct bctx *c, enum bget m, uint64_t n, struct bcost *cost)
{
	struct bmark a, b;

	if (cost)
		bmark_begin(c, &a);
	for (; n; n -= MIN(n, c->chunk))
		if (past_deadline(c) || bget_call(c, m, MIN(n, c->chunk)))
			return -1;
	if (cost) {
		bmark_end(c, &b);
		bmark_add(c, &a, &b, cost);
	}
	return 0;
}

/* One lap: fill n bytes and drain them, timing the side(s) the row measures. */
static int bctx_lap(struct bctx *c, uint64_t n, struct bcost *cost)
{
	bool tput = c->path->side != BS_GET, tget = c->path->side != BS_PUT;
	double secs = cost ? cost->secs : 0;

	if (bput_run(c, bctx_put_path(c), n, tput ? cost : NULL))
		return -1;
	if (bget_run(c, bctx_get_path(c), n, tget ? cost : NULL))
		return -1;
	if (!cost)
		return 0;
	cost->bytes += n;
	if (cost->laps < BENCH_MAX_LAPS && cost->secs > secs)
		cost->lap_rate[cost->laps++] = n / (cost->secs - secs);
	return 0;
}

int bctx_laps(struct bctx **cs, int nr, uint64_t total, unsigned int warm,
	      struct bcost *costs)
{
	uint64_t moved[2] = { 0, 0 };
	unsigned int lap;
	bool more = true;
	int i, ret = 0;

	for (i = 0; i < nr; i++)
		memset(&costs[i], 0, sizeof(costs[i]));
	for (lap = 0; !ret && more; lap++) {
		bool timed = lap >= warm;

		more = !timed;
		for (i = 0; !ret && i < nr; i++) {
			struct bctx *c = cs[i];
			uint64_t n = timed ? MIN(c->cap, total - moved[i]) : c->cap;

			if (!n)
				continue;
			if (c->env->timeout)
				bench_watchdog(c->env->timeout);
			ret = bctx_lap(c, n, timed ? &costs[i] : NULL);
			if (timed)
				moved[i] += n;
			more |= moved[i] < total;
		}
	}
	bench_watchdog(0);
	for (i = 0; ret && i < nr; i++) {
		if (!cs[i]->failed || !atomic_load(&xfer_abort))
			continue;
		cs[i]->failed = false;
		errno = 0;
		bctx_fail(cs[i], "%s: no lap within %g s", cs[i]->path->id,
			  cs[i]->env->timeout);
	}
	return ret;
}

/* ---- loopback TCP: a receiver process discards what arrives ---- */

/* What the receiver reports when the sender is done. */
struct rx_result {
	uint64_t bytes;
	bool failed;
	char err[128];
};

/*
 * The receiver is a process of its own, as a peer would be: a thread
 * would share the bench's address space, and every PTE the lender zaps
 * in the producer's mapping would then cost a TLB shootdown on the CPU
 * the receiver runs on, which a real pipeline does not pay.
 */
static void rx_main(struct bctx *c, int sock, int res)
{
	struct rx_result out = { 0 };
	size_t len = 256 << 10;
	char *buf = c->verify ? malloc(len) : NULL;

	for (;;) {
		/* MSG_TRUNC: TCP drops the bytes without copying them. */
		ssize_t r = recv(sock, buf, len, buf ? 0 : MSG_TRUNC);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r < 0 && !out.failed) {
				out.failed = true;
				snprintf(out.err, sizeof(out.err), "recv: %s",
					 strerror(errno));
			}
			break;
		}
		if (buf && !out.failed &&
		    memcmp(buf, payload_at(c, out.bytes), r)) {
			out.failed = true;
			snprintf(out.err, sizeof(out.err),
				 "tcp: payload mismatch after byte %llu",
				 (unsigned long long)out.bytes);
		}
		out.bytes += r;
	}
	if (write(res, &out, sizeof(out)) != sizeof(out))
		_exit(1);
	_exit(0);
}

static int tcp_open_loopback(struct bctx *c)
{
	struct sockaddr_in sa = {
		.sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	socklen_t len = sizeof(sa);
	int l, peer, res[2], fd;

	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0)
		return bctx_fail(c, "socket");
	if (bind(l, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(l, 1) || getsockname(l, (struct sockaddr *)&sa, &len)) {
		bctx_fail(c, "listen on 127.0.0.1");
		goto close_l;
	}
	c->tx = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->tx < 0 || connect(c->tx, (struct sockaddr *)&sa, sizeof(sa))) {
		bctx_fail(c, "connect to 127.0.0.1");
		goto close_l;
	}
	peer = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (peer < 0) {
		bctx_fail(c, "accept");
		goto close_l;
	}
	close(l);
	if (pipe2(res, O_CLOEXEC)) {
		bctx_fail(c, "pipe");
		goto close_peer;
	}
	c->rx_pid = fork();
	if (c->rx_pid < 0) {
		bctx_fail(c, "fork");
		close(res[0]);
		close(res[1]);
		goto close_peer;
	}
	if (!c->rx_pid) {
		/* The device stays the bench's alone: no writer in here. */
		for (fd = 3; fd < 1024; fd++)
			if (fd != peer && fd != res[1])
				close(fd);
		signal(SIGALRM, SIG_DFL);
		rx_main(c, peer, res[1]);
	}
	close(res[1]);
	close(peer);
	c->rx_res = res[0];
	return 0;
close_peer:
	close(peer);
	return -1;
close_l:
	close(l);
	return -1;
}

/*
 * The TCP rows' socket: to a receiver process of the row's own on
 * loopback, or, with --tcp-to, to an external receiver (a sink across a
 * NIC) that nobody here can ask what it got. MSG_ZEROCOPY rows set
 * SO_ZEROCOPY on it.
 */
static int tcp_open(struct bctx *c)
{
	char err[320];

	if (!c->env->tcp_to) {
		if (tcp_open_loopback(c))
			return -1;
	} else {
		c->tx = tcp_connect(c->env->tcp_to, err, sizeof(err));
		if (c->tx < 0) {
			errno = 0;
			return bctx_fail(c, "tcp: %s", err);
		}
	}
	if (bctx_get_path(c) == BG_MMAP_SEND_ZC && zc_enable(c->tx))
		return bctx_fail(c, "setsockopt(SO_ZEROCOPY)");
	return 0;
}

/*
 * The sender waits for every MSG_ZEROCOPY completion (at most the lap
 * timeout), then closes; the receiver must have had every byte sent.
 */
static void tcp_close(struct bctx *c)
{
	double t = c->env->timeout;
	struct rx_result in;
	int r;

	if (c->tx >= 0 && c->zc.sends) {
		r = zc_wait(c->tx, &c->zc, t > 0 ? (int)(t * 1000) : -1);
		if (r < 0)
			bctx_fail(c, "tcp: waiting for MSG_ZEROCOPY completions");
		else if (r) {
			errno = 0;
			bctx_fail(c, "tcp: %llu of %llu sends had no completion after %g s",
				  (unsigned long long)(c->zc.sends - c->zc.done),
				  (unsigned long long)c->zc.sends, t);
		}
	}
	if (c->tx >= 0)
		close(c->tx);
	c->tx = -1;
	if (c->rx_pid <= 0)
		return;
	errno = 0;
	if (read(c->rx_res, &in, sizeof(in)) != sizeof(in))
		bctx_fail(c, "tcp: no word from the receiver");
	else if (in.failed)
		bctx_fail(c, "%s", in.err);
	else if (in.bytes != c->get_off)
		bctx_fail(c, "tcp: %llu bytes sent, %llu received",
			  (unsigned long long)c->get_off,
			  (unsigned long long)in.bytes);
	close(c->rx_res);
	waitpid(c->rx_pid, NULL, 0);
	c->rx_pid = 0;
}

/* ---- a row's context ---- */

static bool put_hops(enum bput m, bool pipe)
{
	return !pipe && (m == BP_SPLICE || m == BP_VMSPLICE);
}

static bool get_hops(enum bget m, bool pipe)
{
	return !pipe && (m == BG_SPLICE_NULL || m == BG_SPLICE_TCP ||
			 m == BG_TEE_NULL);
}

static bool get_tcp(enum bget m)
{
	return m == BG_READ_SEND || m == BG_MMAP_SEND || m == BG_MMAP_SEND_ZC ||
	       m == BG_SPLICE_TCP || m == BG_SENDFILE_TCP;
}

/* The TCP receiver's fork() must not take a mapping of the ring along. */
static void no_fork(const void *p, size_t len)
{
	if (p)
		madvise((void *)p, len, MADV_DONTFORK);
}

static int open_device(struct bctx *c)
{
	struct zcdev_info info;

	/* The producer opens first, so the consumer never sees EOF. */
	c->wfd = dev_open(O_RDWR, &info);
	if (c->wfd < 0)
		return bctx_fail(c, "open %s (see above)", dev_path());
	c->rfd = dev_open(O_RDONLY, &info);
	if (c->rfd < 0)
		return bctx_fail(c, "open %s (see above)", dev_path());
	c->ctl = c->rfd;
	if (zcdev_reset(c->wfd))
		return bctx_fail(c, "ZCDEV_IOC_RESET");
	if (!info.ring_bytes) {
		errno = ENOBUFS;
		return bctx_fail(c, "the ring has no pages");
	}
	c->info = info;
	c->cap = info.ring_bytes;
	if (c->map == BMAP_PROD) {
		if (!c->env->pmap->users &&
		    zcdev_ring_map(&c->env->pmap->ring, c->wfd, &info, true))
			return bctx_fail(c, "mmap the ring");
		c->env->pmap->users++;
		c->pmap = c->env->pmap->ring;
	}
	if (c->map == BMAP_META) {
		c->meta = mmap(NULL, info.page_size, PROT_READ, MAP_SHARED,
			       c->rfd, info.meta_offset);
		if (c->meta == MAP_FAILED) {
			c->meta = NULL;
			return bctx_fail(c, "mmap the meta page");
		}
	}
	if ((bctx_get_path(c) == BG_MMAP || bctx_get_path(c) == BG_MMAP_SEND ||
	     bctx_get_path(c) == BG_MMAP_SEND_ZC) &&
	    zcdev_ring_map(&c->cmap, c->rfd, &info, false))
		return bctx_fail(c, "mmap the ring for the consumer");
	no_fork(c->pmap.meta, c->pmap.meta_len);
	no_fork(c->pmap.data, c->pmap.data_len);
	no_fork(c->cmap.meta, c->cmap.meta_len);
	no_fork(c->cmap.data, c->cmap.data_len);
	no_fork(c->meta, info.page_size);
	return 0;
}

/*
 * A lap through a pipe of the ring's size must fit in it. A write whose
 * size is not a page multiple takes a slot more than its full pages (its
 * tail goes to a slot of its own unless the last one has room), and a
 * vmsplice of an unaligned buffer one more than that: a lap holds as many
 * whole calls as the slots allow at that worst case, or a single writer
 * would block on its own pipe for ever. The memcpy reference keeps its
 * calls whole as well, so that none runs past its buffer.
 */
static void pipe_lap(struct bctx *c)
{
	size_t page = 4096, slots = c->cap / page, per, calls;

	if (!(c->chunk % page))
		return;
	per = (c->chunk + page - 1) / page + 1;
	calls = slots / per;
	if (!calls) {
		c->chunk = (slots - 1) * page;
		calls = 1;
	}
	c->cap = calls * c->chunk;
}

int bctx_open(struct bctx *c, const struct benv *env, const struct bpath *p,
	      enum bmap map, size_t chunk, bool verify)
{
	enum bput pm;
	enum bget gm;
	size_t got;

	memset(c, 0, sizeof(*c));
	c->env = env;
	c->path = p;
	c->map = map;
	c->chunk = chunk;
	c->verify = verify;
	c->wfd = c->rfd = c->ctl = c->sink = c->tx = c->rx_res = -1;
	c->hop[0] = c->hop[1] = c->in[0] = c->in[1] = -1;
	c->hop2[0] = c->hop2[1] = c->sink2 = -1;
	atomic_store(&xfer_abort, 0);
	pm = bctx_put_path(c);
	gm = bctx_get_path(c);

	if (p->pipe) {
		int fds[2];

		if (open_pipe(fds, env->have_dev ? env->info.ring_bytes : 1 << 20,
			      &got))
			return bctx_fail(c, "pipe");
		c->wfd = fds[1];
		c->rfd = fds[0];
		c->cap = got;
	} else if (pm == BP_MEMCPY) {
		c->cap = env->have_dev ? env->info.ring_bytes : 1 << 20;
	} else if (open_device(c)) {
		return -1;
	}
	if (pm == BP_MEMCPY || pm == BP_STAGE_VMSPLICE) {
		/* Page aligned: vmsplice takes a pipe slot per page it spans. */
		if (posix_memalign((void **)&c->ring_buf, 4096, c->cap)) {
			c->ring_buf = NULL;
			errno = ENOMEM;
			return bctx_fail(c, "buffer");
		}
	}
	if (c->chunk > c->cap)
		c->chunk = c->cap;
	if (p->pipe || pm == BP_MEMCPY)
		pipe_lap(c);
	if ((pm == BP_MMAP || pm == BP_MMAP_POP) && c->pmap.meta)
		bctx_skew(c, ring_at(&c->pmap, true));
	else if (c->ring_buf)
		bctx_skew(c, c->ring_buf);

	if (posix_memalign((void **)&c->buf, 4096, c->chunk)) {
		c->buf = NULL;
		errno = ENOMEM;
		return bctx_fail(c, "buffer");
	}
	if (put_hops(pm, p->pipe)) {
		if (open_pipe(c->in, c->cap, &c->in_len))
			return bctx_fail(c, "pipe");
	}
	if (get_hops(gm, p->pipe)) {
		if (open_pipe(c->hop, c->chunk, &c->hop_len))
			return bctx_fail(c, "pipe");
	}
	if (gm == BG_TEE_NULL) {
		size_t got2;

		/* As large as the hop: one tee takes all the hop holds. */
		if (open_pipe(c->hop2, c->hop_len, &got2))
			return bctx_fail(c, "pipe");
		c->hop_len = MIN(c->hop_len, got2);
	}
	c->sink = env->devnull;
	if (gm == BG_READ_NULL2 || gm == BG_TEE_NULL)
		c->sink2 = env->devnull;
	if (verify && (gm == BG_SPLICE_NULL || gm == BG_SENDFILE_NULL ||
		       gm == BG_TEE_NULL)) {
		c->sink = memfd_create("zcdev-bench", MFD_CLOEXEC);
		if (c->sink < 0)
			return bctx_fail(c, "memfd_create");
	}
	if (verify && gm == BG_TEE_NULL) {
		c->sink2 = memfd_create("zcdev-bench-2", MFD_CLOEXEC);
		if (c->sink2 < 0)
			return bctx_fail(c, "memfd_create");
	}
	if (pm == BP_URING_WRITE || gm == BG_URING_READ) {
		c->uring = zuring_open();
		if (!c->uring)
			return bctx_fail(c, "io_uring_queue_init%s",
					 zuring_built() ? "" :
					 ": this zcdev was built without io_uring");
	}
	if (get_tcp(gm) && tcp_open(c))
		return -1;
	return 0;
}

void bctx_close(struct bctx *c)
{
	int i;

	tcp_close(c);
	zuring_close(c->uring);
	c->uring = NULL;
	if (c->pmap.data && !--c->env->pmap->users)
		zcdev_ring_unmap(&c->env->pmap->ring);
	memset(&c->pmap, 0, sizeof(c->pmap));
	zcdev_ring_unmap(&c->cmap);
	if (c->meta)
		munmap(c->meta, c->info.page_size);
	c->meta = NULL;
	for (i = 0; i < 2; i++) {
		if (c->hop[i] >= 0)
			close(c->hop[i]);
		if (c->hop2[i] >= 0)
			close(c->hop2[i]);
		if (c->in[i] >= 0)
			close(c->in[i]);
		c->hop[i] = c->hop2[i] = c->in[i] = -1;
	}
	if (c->sink >= 0 && c->sink != c->env->devnull)
		close(c->sink);
	if (c->sink2 >= 0 && c->sink2 != c->env->devnull)
		close(c->sink2);
	c->sink = c->sink2 = -1;
	if (c->wfd >= 0)
		close(c->wfd);
	if (c->rfd >= 0)
		close(c->rfd);
	c->wfd = c->rfd = c->ctl = -1;
	free(c->buf);
	free(c->ring_buf);
	c->buf = c->ring_buf = NULL;
}
