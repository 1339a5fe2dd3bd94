/* SPDX-License-Identifier: GPL-2.0 */
/*
 * zcdev(1): shared declarations of the command-line tool.
 *
 * dev.c     opening the device, ABI check, info/stats tables, ring mapping
 * stream.c  the put and get methods, one step function per data path, and
 *           the runner that drives a producer and a consumer in threads
 * bench.c   zcdev bench
 * util.c    system-call wrapper, size parsing, JSON output, clocks
 * zcdev.c   main(), usage, the small commands
 */
#ifndef ZCDEV_TOOL_H
#define ZCDEV_TOOL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <linux/zcdev.h>

#ifndef ZCDEV_VERSION
#define ZCDEV_VERSION "unknown"
#endif

/* Exit status, documented in 'zcdev --help'. */
enum {
	EXIT_OK		= 0,
	EXIT_FAIL	= 1,	/* a runtime failure */
	EXIT_USAGE	= 2,	/* bad command line */
	EXIT_NODEV	= 3,	/* device missing, not a zcdev, ABI mismatch */
};

#define DEFAULT_CHUNK	(64u << 10)

/* util.c */

/*
 * System calls made by the calling thread through SYS(); bench reads it
 * at both ends of a pass to count what each path costs.
 */
extern __thread unsigned long nr_syscalls;
/* Set to tear a transfer down: SYS() then stops retrying on EINTR. */
extern atomic_int xfer_abort;
bool sys_retry(void);

/*
 * Run a system call, count it, and restart it when a signal interrupted
 * it, unless the transfer is being aborted (then it fails ECANCELED).
 */
#define SYS(call) ({						\
	long __r;						\
	do {							\
		nr_syscalls++;					\
		__r = (long)(call);				\
	} while (__r < 0 && sys_retry());			\
	__r;							\
})

void errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int parse_size(const char *s, uint64_t *out);
int parse_u32(const char *s, uint32_t *out);
double now_sec(void);
double tv_sec(const struct timeval *tv);
bool is_pipe(int fd);
int write_all(int fd, const void *buf, size_t n);
bool progress_wanted(void);

/* One JSON object on stdout, built key by key. */
struct json {
	FILE *f;
	bool comma;
};
void json_begin(struct json *j, const char *key, char bracket);
void json_end(struct json *j, char bracket);
void json_u64(struct json *j, const char *key, uint64_t v);
void json_double(struct json *j, const char *key, double v);
void json_str(struct json *j, const char *key, const char *v);
void json_bool(struct json *j, const char *key, bool v);

/* dev.c */
const char *dev_path(void);
int dev_open(int flags, struct zcdev_info *info);
int dev_open_writer(int flags, struct zcdev_info *info);
int dev_stats(int fd, struct zcdev_stats *st);
void stats_delta(const struct zcdev_stats *a, const struct zcdev_stats *b,
		 struct zcdev_stats *d);

/* A named integer field of an ABI structure, for tables and JSON. */
struct field {
	const char *name;
	size_t off;
	size_t size;
};
extern const struct field info_fields[];
extern const struct field stats_fields[];
uint64_t field_get(const void *base, const struct field *f);
void json_fields(struct json *j, const void *base, const struct field *f);
uint64_t stats_copied(const struct zcdev_stats *d);
uint64_t stats_by_ref(const struct zcdev_stats *d);
uint64_t stats_in_place(const struct zcdev_stats *d);

/* The ring seen through mmap: the meta page read-only, data twice. */
struct zring {
	const struct zcdev_ring_meta *meta;
	char *data;
	uint64_t ring_bytes;
	size_t meta_len;
	size_t data_len;
};
int zring_map(struct zring *r, int fd, const struct zcdev_info *info,
	      bool writable);
void zring_unmap(struct zring *r);

/* stream.c */
enum put_method {
	PUT_WRITE,
	PUT_MMAP,
	PUT_SPLICE,
	PUT_VMSPLICE,
	PUT_VMSPLICE_REF,	/* bench only: vmsplice into a pipe, no gift */
	PUT_NR
};

/* The put methods a user can name: all but the bench's reference. */
#define PUT_USER_NR	(PUT_VMSPLICE + 1)

enum get_method {
	GET_READ,
	GET_MMAP,
	GET_SPLICE,
	GET_SENDFILE,
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
	bool keep;
	const char *expect;
	uint64_t off;
};

/* One end of a transfer, run by one thread. */
struct side {
	bool put;		/* producer (put) or consumer (get) */
	int method;		/* enum put_method or enum get_method */
	int fd;			/* the device, or a pipe end for references */
	const char *name;	/* fd's name in error messages */
	size_t chunk;		/* bytes per call */
	uint64_t limit;		/* get: stop after this many bytes, 0 = EOF */
	struct source src;
	struct sink snk;

	/* set up by side_setup() */
	struct zring ring;
	int pipe[2];		/* the hop for splice/vmsplice, else -1 */
	size_t pipe_len;
	bool direct;		/* the other end is a pipe: no hop */
	char *tmp;		/* chunk bytes of bounce buffer */

	/* results */
	atomic_uint_least64_t bytes;
	unsigned long syscalls;
	double t0, t1;
	struct rusage ru0, ru1;
	bool failed;
	bool canceled;		/* failed only because the run was aborted */
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

/* zcdev.c: a command and the conventions every command follows. */
struct option;
struct cmd {
	const char *name;
	int (*fn)(const struct cmd *c, int argc, char **argv);
	const char *help;
};
int cmd_getopt(const struct cmd *c, int argc, char **argv,
	       const struct option *longopts);
void usage_error(const struct cmd *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));
int open_output(const char *path);
size_t parse_chunk(const struct cmd *c, const char *arg);
double parse_timeout(const struct cmd *c, const char *arg);

/* bench.c */
extern const char bench_help[];
int cmd_bench(const struct cmd *c, int argc, char **argv);

#endif /* ZCDEV_TOOL_H */
