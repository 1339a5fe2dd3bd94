/* SPDX-License-Identifier: GPL-2.0 */
/*
 * zcdev(1) bench and explain: the measurement engine they share.
 *
 * One thread fills the ring by one producer path, then drains it by one
 * consumer path, lap after lap; only the side being measured is timed
 * (docs/design.md, "Performance protocol"). The side that is not measured runs
 * a fixed path: write (mmap + ZCDEV_IOC_PRODUCE when the producer holds a
 * mapping) fills, splice to /dev/null drains.
 *
 * bench_paths.c  the paths, one call each, and the lap runner
 * bench.c        zcdev bench: rows, rounds, medians, table, JSON
 * bench_explain.c zcdev explain: what one call of a path did
 */
#ifndef ZCDEV_BENCH_H
#define ZCDEV_BENCH_H

#include "cmds.h"

/* Who holds a mapping of the ring while a row runs. */
enum bmap {
	BMAP_NONE,	/* nobody: no zap is ever needed */
	BMAP_META,	/* the meta page only, as a consumer polling head/tail */
	BMAP_PROD,	/* the producer maps the whole ring, writable */
	BMAP_NR,
	BMAP_REF = BMAP_NR,	/* a reference row: no device */
};

enum bput {
	BP_WRITE,	/* write(2) from the payload */
	BP_MMAP,	/* memcpy into the mapping at head + ZCDEV_IOC_PRODUCE */
	BP_MMAP_POP,	/* the same after MADV_POPULATE_WRITE of the range */
	BP_SPLICE,	/* splice from a pipe already holding the bytes */
	BP_VMSPLICE,	/* vmsplice the payload into a pipe, splice it in */
	BP_URING_WRITE,	/* io_uring IORING_OP_WRITE from the payload */
	BP_MEMCPY,	/* reference: memcpy into a ring-sized buffer */
	BP_STAGE_VMSPLICE,	/* reference: the same, then vmsplice it */
	BP_NR,
};

enum bget {
	BG_READ,		/* read(2) into a buffer */
	BG_MMAP,		/* in place at tail + ZCDEV_IOC_CONSUME */
	BG_SPLICE_NULL,		/* splice ring -> pipe -> /dev/null */
	BG_SENDFILE_NULL,	/* sendfile to /dev/null */
	BG_READ_NULL2,		/* read(2), then write(2) to /dev/null twice */
	BG_TEE_NULL,		/* splice ring -> pipe, tee to a second pipe,
				   each spliced to /dev/null */
	BG_READ_SEND,		/* read(2), then send(2) on loopback TCP */
	BG_MMAP_SEND,		/* send(2) from the mapping + CONSUME */
	BG_MMAP_SEND_ZC,	/* send(MSG_ZEROCOPY) from the mapping +
				   CONSUME, completions read as they come */
	BG_URING_READ,		/* io_uring IORING_OP_READ into a buffer */
	BG_SPLICE_TCP,		/* splice ring -> pipe -> socket */
	BG_SENDFILE_TCP,	/* sendfile to the socket */
	BG_NONE,		/* memcpy: nothing to drain */
	BG_NR,
};

enum bside { BS_REF, BS_PAIR, BS_GET, BS_PUT };

/* One kind of row: a path, the side it times, the maps it makes sense under. */
struct bpath {
	const char *id;		/* "get:splice-null" */
	const char *label;	/* table text */
	enum bside side;
	enum bput put;		/* the producer path (BS_GET: fixed by map) */
	enum bget get;		/* the consumer path (BS_PUT: fixed) */
	bool pipe;		/* a Linux pipe instead of the device */
	unsigned int maps;	/* 1 << enum bmap it runs under; 0: reference */
	const char *base;	/* id of the row its ratio is to */
	const char *alias;	/* the name the old bench used, or NULL */
};

#define BENCH_MAX_PATHS	32

extern const struct bpath bpaths[];
extern const size_t nr_bpaths;
extern const char *const bmap_names[];
extern const char *const bside_names[];
const struct bpath *bpath_find(const char *id);
const char *bpath_short(const struct bpath *p);
bool bpath_matches(const struct bpath *p, const char *tok);
bool bpath_tcp(const struct bpath *p);

#define BENCH_MAX_LAPS	64
/* The payload's start moves by less than this (bench_paths.c: bctx_skew()). */
#define BENCH_SKEW_SPAN	(1u << 20)

/* What a timed side cost, summed over its timed stretches. */
struct bcost {
	uint64_t bytes;
	/* bytes/s of each lap's timed side, the first BENCH_MAX_LAPS laps */
	double lap_rate[BENCH_MAX_LAPS];
	unsigned int laps;
	double secs;		/* wall */
	double cpu;		/* CLOCK_THREAD_CPUTIME_ID */
	double usr, sys;	/* getrusage(RUSAGE_THREAD) */
	unsigned long syscalls;
	long minflt;
	struct zcdev_stats d;	/* module counter deltas */
	/*
	 * MSG_ZEROCOPY rows: the sends of the row's context, its untimed
	 * first lap included, and their completions (all of them: the
	 * context waits for the last before it closes).
	 */
	struct zc_count zc;
};

/*
 * The producer's mapping of the ring, one for every context that maps it
 * (BMAP_PROD), made by the first and unmapped by the last: one producer
 * process holds one mapping, and a row and its baseline take turns on it
 * as the two halves of one program would. A mapping per context would
 * make every lend zap each of them, a cost no real producer pays.
 */
struct bmapping {
	struct zcdev_ring ring;
	unsigned int users;
};

/* The bench's shared, read-only inputs. */
struct benv {
	const char *payload;	/* page aligned */
	uint64_t payload_len;
	int devnull;
	bool have_dev;
	struct zcdev_info info;	/* of the device, when have_dev */
	struct bmapping *pmap;	/* the producer's mapping, shared */
	double timeout;		/* per lap, seconds; 0: none */
	/*
	 * --tcp-to HOST:PORT: the TCP rows send there instead of to a
	 * receiver process of their own, and so cannot verify the bytes.
	 */
	const char *tcp_to;
};

/* Everything one row needs while it runs; built and torn down per row. */
struct bctx {
	const struct benv *env;
	const struct bpath *path;
	enum bmap map;
	size_t chunk;
	bool verify;		/* compare every byte the consumer gets */

	int wfd, rfd;		/* producer's and consumer's ends */
	int ctl;		/* for GET_STATS, or -1 */
	struct zcdev_info info;	/* the device's, once open */
	uint64_t cap;		/* bytes one lap holds: ring or pipe */
	struct zcdev_ring pmap;	/* env->pmap's ring while held (BMAP_PROD) */
	struct zcdev_ring cmap;	/* the consumer's mapping (mmap gets) */
	void *meta;		/* BMAP_META: the meta page alone */
	int hop[2];		/* ring -> hop -> sink */
	int hop2[2];		/* tee: hop -> hop2 -> sink2 */
	int in[2];		/* the pipe splice and vmsplice put from */
	size_t hop_len, in_len;
	int sink;		/* /dev/null or, verifying, a memfd */
	int sink2;		/* the second output of the x2 rows: the same */
	int tx;			/* the TCP sender, or -1 */
	struct zc_count zc;	/* its MSG_ZEROCOPY sends, completions */
	struct zuring *uring;	/* the uring rows' io_uring */
	pid_t rx_pid;		/* the receiver, or 0 */
	int rx_res;		/* its word when it is done, or -1 */
	char *buf;		/* chunk bytes for read */
	char *ring_buf;		/* memcpy's destination */

	uint64_t put_off;	/* stream bytes produced in this row */
	size_t skew;		/* where the payload starts: bctx_skew() */
	uint64_t get_off;	/* stream bytes consumed */

	char err[192];
	bool failed;
};

int bctx_open(struct bctx *c, const struct benv *env, const struct bpath *p,
	      enum bmap map, size_t chunk, bool verify);
void bctx_close(struct bctx *c);
int bctx_fail(struct bctx *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The paths this row runs for each side, fixed sides filled in. */
enum bput bctx_put_path(const struct bctx *c);
enum bget bctx_get_path(const struct bctx *c);

/* One call of a path moving exactly n bytes (n <= chunk, room or data there). */
int bput_call(struct bctx *c, enum bput m, size_t n);
int bget_call(struct bctx *c, enum bget m, size_t n);

/* Before the timed calls of a put: the bytes splice takes from its pipe. */
int bput_prepare(struct bctx *c, enum bput m, size_t n);

/* Fill or drain n bytes in calls of chunk (or fewer), timing into cost. */
int bput_run(struct bctx *c, enum bput m, uint64_t n, struct bcost *cost);
int bget_run(struct bctx *c, enum bget m, uint64_t n, struct bcost *cost);

/*
 * Move total bytes through each of nr contexts (one, or a row and its
 * baseline), a lap on each in turn, so that host noise hits both alike;
 * each context's measured side is timed into its costs[i]. warm laps on
 * each run first, untimed. Returns 0 or -1 (the failing context's err).
 */
int bctx_laps(struct bctx **cs, int nr, uint64_t total, unsigned int warm,
	      struct bcost *costs);

/* Around a timed stretch. */
struct bmark {
	double t, cpu;
	struct rusage ru;
	unsigned long calls;
	struct zcdev_stats st;
};
void bmark_take(struct bctx *c, struct bmark *m, bool end);
void bmark_add(struct bctx *c, const struct bmark *a, const struct bmark *b,
	       struct bcost *cost);

int bench_claim(struct zcdev_info *info);

/*
 * What a copy costs in this machine, measured before the rows: the
 * ratios of every row against a copy path are only as true as these.
 * An emulator that runs the kernel's copy (rep movsb under TCG with
 * ERMS/FSRM) far slower than user memcpy inflates every zero-copy ratio.
 */
struct ccost {
	double memcpy_mbps;	/* user memcpy, 64 KiB, hot */
	double movsb_mbps;	/* user rep movsb, 64 KiB, hot */
	double movsq_mbps;	/* user rep movsq, 64 KiB, hot */
	double clock_ns;	/* a clock_gettime pair, taken off the below */
	double syscall_ns;	/* getppid(2) */
	double read_ns;		/* read(2) of one hot ring page */
	double read16_ns;	/* read(2) of 16 hot ring pages */
	double kcopy_mbps;	/* a page over (read16_ns - read_ns) / 15 */
	bool have_read;
	/* kcopy_mbps under 1/CCOST_SLOW of the faster of memcpy and movsq */
	bool slow_kcopy;
};
#define CCOST_SLOW	2

/* info: the claimed device's, or NULL (no read() figure then). */
void ccost_measure(struct ccost *cc, const struct zcdev_info *info);
void ccost_print(const struct ccost *cc);
void ccost_json(struct json *j, const struct ccost *cc);

/* Quiet the bench's signals; the lap watchdog. */
void bench_signals(void);
void bench_watchdog(double secs);

/* bench_explain.c */
extern const char explain_help[];
int cmd_explain(const struct cmd *c, int argc, char **argv);

#endif /* ZCDEV_BENCH_H */
