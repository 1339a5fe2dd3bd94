/* SPDX-License-Identifier: GPL-2.0 */
/*
 * zcdev(1): the transfer engine under put, get, copy and bench. Each put
 * method is one step function that moves up to a chunk into the device,
 * each get method one that moves up to a chunk out of it; a run drives a
 * producer and a consumer side in threads. Uses libzcdev for the device.
 * It prints only progress, when asked: a failure is kept in the side's
 * err for the command to report.
 */
#ifndef ZCDEV_STREAM_H
#define ZCDEV_STREAM_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <libzcdev.h>
#include "net.h"
#include "uring.h"
#include "util.h"

#define DEFAULT_CHUNK	(64u << 10)

/*
 * System calls made by the calling thread through SYS(); bench reads it
 * at both ends of a pass to count what each path costs.
 */
extern __thread unsigned long nr_syscalls;
/* Set to tear a transfer down: SYS() then stops retrying on EINTR. */
extern atomic_int xfer_abort;
/*
 * The signal that asked put, get or copy to stop (SIGINT, SIGTERM,
 * SIGHUP, or SIGALRM for --timeout), 0 if none: see stream_signals().
 */
extern atomic_int xfer_signal;
bool sys_retry(void);

/*
 * For put, get and copy: SIGINT, SIGTERM and SIGHUP (and SIGALRM, which
 * stream_deadline() arms) set xfer_signal and xfer_abort, so that the
 * transfer ends at a step boundary with its accounting; SIGPIPE and
 * SIGXFSZ are ignored, so a reader that left and a file size limit come
 * back as EPIPE and EFBIG. None restarts a blocked call.
 */
void stream_signals(void);
/* SIGALRM after secs seconds (0: never), for a whole-command timeout. */
int stream_deadline(double secs);

/*
 * Run a system call (or a libzcdev call, which leaves errno set), count
 * it, and restart it when a signal interrupted it, unless the transfer is
 * being aborted (then it fails ECANCELED) or the consumer has all it
 * waits for.
 */
#define SYS(call) ({						\
	long __r;						\
	do {							\
		nr_syscalls++;					\
		__r = (long)(call);				\
	} while (__r < 0 && sys_retry());			\
	__r;							\
})

/*
 * write(2) until every byte is out: a pipe or a signal can cut it short.
 * A transfer being aborted (xfer_abort) stops it before any write, the
 * first included: -1 with ECANCELED. write_full() also says how many bytes went
 * out, whatever it returns.
 */
int write_all(int fd, const void *buf, size_t n);
int write_full(int fd, const void *buf, size_t n, size_t *done);

enum put_method {
	PUT_WRITE,
	PUT_MMAP,
	PUT_SPLICE,
	PUT_VMSPLICE,
	PUT_URING,		/* io_uring IORING_OP_WRITE */
	PUT_VMSPLICE_REF,	/* bench only: vmsplice into a pipe, no gift */
	PUT_NR
};

/* The put methods a user can name: all but the bench's reference. */
#define PUT_USER_NR	(PUT_URING + 1)

enum get_method {
	GET_READ,
	GET_MMAP,
	GET_SPLICE,
	GET_SENDFILE,
	GET_URING,	/* io_uring IORING_OP_READ */
	GET_TEE,	/* get only: two outputs (copy has one) */
	GET_ZEROCOPY,	/* get only: send(MSG_ZEROCOPY) from the mapping to
			   a TCP socket (copy writes a file) */
	GET_NR
};

extern const char *const put_names[];
extern const char *const get_names[];
int method_lookup(const char *const *names, int nr, const char *name);

/* Where a producer takes its bytes: a file descriptor, or memory. */
struct source {
	int fd;			/* input, or -1 to use buf */
	const char *buf;
	uint64_t len;
	uint64_t off;
};

/*
 * Where a consumer puts its bytes. Bytes that reach user memory (read,
 * mmap) are written to fd when keep is set, else dropped; bytes that go
 * fd to fd (splice, sendfile) always land in fd. With expect set, every
 * byte is compared with expect[stream offset]: fd is then a memfd that
 * is read back after each step.
 */
struct sink {
	int fd;
	const char *name;	/* in messages, when there are two (get tee) */
	bool keep;
	const char *expect;
	uint64_t off;

	/* set up by side_setup() for a kept output */
	enum { SINK_OTHER, SINK_REG, SINK_PIPE } kind;
	bool append;		/* O_APPEND: every write goes to the end */
	bool no_reserve;	/* fallocate() is not supported there */
	uint64_t resv_end;	/* SINK_REG: space reserved up to this offset */
};

/* One end of a transfer, run by one thread. */
struct side {
	bool put;		/* producer (put) or consumer (get) */
	int method;		/* enum put_method or enum get_method */
	int fd;			/* the device, or a pipe end for references */
	const char *name;	/* fd's name in error messages */
	size_t chunk;		/* bytes per call */
	uint64_t limit;		/* get: stop after this many bytes, 0 = EOF */
	/*
	 * get: stop once the producer of the same run is done and this side
	 * has as many bytes as it put, even though another process holds a
	 * writer open (so that no EOF comes).
	 */
	bool follow;
	struct source src;
	struct sink snk;
	struct sink snk2;	/* get tee: the second output, else fd -1 */

	/* set up by side_setup() */
	struct zcdev_ring ring;
	int pipe[2];		/* the hop for splice/vmsplice, else -1 */
	int pipe2[2];		/* get tee: the pipe tee(2) fills, else -1 */
	size_t pipe_len;
	bool direct;		/* the other end is a pipe: no hop */
	char *tmp;		/* chunk bytes of bounce buffer */
	struct zuring *uring;	/* put/get uring: one request at a time */

	/* results */
	atomic_uint_least64_t bytes;
	atomic_uint_least64_t stop_after;	/* follow: the producer's bytes */
	atomic_bool done;
	unsigned long syscalls;
	double t0, t1;
	struct rusage ru0, ru1;
	/*
	 * get: bytes taken from the ring that never reached the output (a
	 * write that failed on bytes already read); the command reports them.
	 */
	uint64_t lost;
	/*
	 * get tee: bytes and lost are the first output's; these the second's.
	 * Either way, bytes + lost is what was taken from the ring.
	 */
	uint64_t bytes2, lost2;
	size_t step_done;	/* what a failed get step still delivered */
	/* get zerocopy: its sends and their completions, for the report */
	struct zc_count zc;
	size_t pend_off, pend_len;	/* put mmap: input read ahead of room */
	bool failed;
	bool canceled;		/* failed only because the run was aborted */
	int err_no;		/* the errno of the failure, 0 if none */
	char err[192];
};

void side_init(struct side *s, bool put, int method, int fd, const char *name,
	       size_t chunk);
int side_setup(struct side *s, const struct zcdev_info *info);
void side_release(struct side *s);
int side_fail(struct side *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int side_failx(struct side *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int open_pipe(int p[2], size_t want, size_t *got);
int put_open_flags(int method);

/*
 * Run each side in its own thread until all are done. Progress goes to
 * stderr under the label when it is wanted; timeout (seconds, 0 = none)
 * aborts a run that stops making progress. Returns 0 when every side
 * succeeded.
 */
struct run {
	const char *label;
	double timeout;
	bool progress;
	bool stalled;
	char err[96];
};
int run_sides(struct run *run, struct side **sides, int n);
const char *run_error(const struct run *run, struct side **sides, int n);
double sides_elapsed(struct side **sides, int n);

#endif /* ZCDEV_STREAM_H */
