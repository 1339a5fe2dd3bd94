// SPDX-License-Identifier: GPL-2.0
/*
 * zcdev(1) bench: every path, one side of the ring timed at a time, at
 * several call sizes and with and without a mapping of the ring, beside
 * reference rows measured in the same run. Judge by the ratios.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

const char bench_help[] =
"usage: zcdev bench [--size BYTES] [--chunk LIST] [--map LIST] [--method LIST]\n"
"                   [--repeat N] [--timeout SEC] [--no-verify] [--json]\n"
"                   [--format table|json|both] [--tcp-to HOST:PORT]\n"
"\n"
"Time every path of the ring, one side at a time, beside reference rows\n"
"measured in the same run, and print each row's throughput and its ratio\n"
"to the copy path it replaces. Judge by the ratios within one run, never\n"
"by absolute numbers from different runs.\n"
"\n"
"How a row is measured (docs/design.md, 10. Performance protocol): one\n"
"thread fills the ring by one producer path, then drains it by one consumer\n"
"path, lap after lap, and only the side the row is about is timed. The\n"
"other side runs a fixed path: consumer rows are filled by write(2), or by\n"
"mmap + ZCDEV_IOC_PRODUCE when the producer holds a mapping; producer rows\n"
"are drained by splice to /dev/null. One lap runs untimed first. Rounds are\n"
"interleaved: every row runs once per round, --repeat rounds. Within a\n"
"round a row's laps alternate with laps of its baseline (on a context of\n"
"its own), so that the two see the same machine; a row shows the median and\n"
"the min-max over the rounds of that ratio (see x base). A verify round\n"
"first checks every byte every path delivers (to a memfd or through the\n"
"socket instead of /dev/null). The bench holds the ring's producer and\n"
"consumer claims while it runs (a put, get or copy cannot start) and resets\n"
"the ring (ZCDEV_IOC_RESET) before every row.\n"
"\n"
"  -s, --size BYTES     payload of each row, K/M/G suffixes, default 16M\n"
"  -c, --chunk LIST     bytes per call, comma-separated, default 4K,64K,1M\n"
"                       (a call never exceeds the ring)\n"
"  -M, --map LIST       who maps the ring while the consumer and producer\n"
"                       rows run, default none,meta,mapped:\n"
"       none            nobody\n"
"       meta            the meta page alone (a consumer watching head/tail)\n"
"       mapped          the producer maps the ring, writable\n"
"  -m, --method LIST    rows, comma-separated: an id (get:splice-null), the\n"
"                       part after the colon (splice-null: every side), a\n"
"                       side (ref, pair, get, put), or all (default); each\n"
"                       row's baseline always runs\n"
"  -r, --repeat N       rounds, default 5\n"
"  -t, --timeout SEC    fail a row whose lap takes over SEC s (default 10)\n"
"  -n, --no-verify      skip the verify round\n"
"  -j, --json           the same as --format json\n"
"  -f, --format F       table (default), json (one JSON object with every\n"
"                       sample), both (the table, then the JSON on one line)\n"
"      --tcp-to HOST:PORT  the >tcp rows send to an external receiver there\n"
"                       (a sink across a NIC: 'zcdev bench --tcp-to\n"
"                       \"$ZCDEV_NIC_SINK\"' in the rig) instead of to a\n"
"                       receiver process of their own on loopback; it must\n"
"                       take two connections at once and discard what comes.\n"
"                       Their bytes are then counted as sent, not verified\n"
"\n"
"rows (baseline in brackets):\n"
"  ref:pipe-rw         a Linux pipe of the ring's size, write -> read [itself]\n"
"  ref:pipe-splice     the pipe, memcpy into a ring-sized buffer (as an mmap\n"
"                      producer writes the ring) and vmsplice it -> splice\n"
"                      to /dev/null [pipe-rw]\n"
"  ref:memcpy          memcpy into a ring-sized buffer [pipe-rw]\n"
"  pair:write-read     zcdev write -> read, both timed [pipe-rw]\n"
"  pair:mmap-splice    zcdev mmap + PRODUCE -> splice to /dev/null, both\n"
"                      timed, the producer's mapping held [pipe-splice]\n"
"  get:read            read(2) into a buffer [itself]\n"
"  get:mmap            the bytes used in place, then CONSUME (mapped) [read]\n"
"  get:uring-read      io_uring IORING_OP_READ into a buffer, a request a\n"
"                      call, completed inline [read]\n"
"  get:splice-null     splice ring -> pipe -> /dev/null [read]\n"
"  get:sendfile-null   sendfile to /dev/null [read]\n"
"  get:read-null2      read(2) into a buffer, write(2) it to /dev/null twice:\n"
"                      two readers of one copy [itself]\n"
"  get:tee-null        splice ring -> pipe, tee(2) into a second pipe, each\n"
"                      pipe spliced to /dev/null: one lend, two readers\n"
"                      [read-null2]\n"
"  get:read-send       read(2), then send(2) on loopback TCP [itself]\n"
"  get:mmap-send       send(2) from the mapping, then CONSUME [read-send]\n"
"  get:mmap-send-zc    send(2) with MSG_ZEROCOPY from the mapping, then\n"
"                      CONSUME at once; the completions are read from the\n"
"                      error queue after each call, and awaited before the\n"
"                      row's socket closes (mapped) [read-send]\n"
"  get:splice-tcp      splice ring -> pipe -> the socket [read-send]\n"
"  get:sendfile-tcp    sendfile to the socket [read-send]\n"
"  put:write           write(2) [itself]\n"
"  put:uring-write     io_uring IORING_OP_WRITE from the payload, a request\n"
"                      a call, completed inline [write]\n"
"  put:mmap            memcpy at head, then PRODUCE (mapped) [write]\n"
"  put:mmap-populate   the same, after MADV_POPULATE_WRITE of the range:\n"
"                      one call instead of a fault per page (mapped) [write]\n"
"  put:splice          splice from a pipe holding the bytes, SPLICE_F_MOVE;\n"
"                      filling that pipe is not timed [write]\n"
"  put:vmsplice        vmsplice the payload into a pipe, splice it in [write]\n"
"A child process drains the socket with recv(MSG_TRUNC), uncounted (with\n"
"--tcp-to, the external receiver). For get:mmap-send-zc the table's notes\n"
"and the JSON (\"zerocopy\") give the sends, how many completed, and how\n"
"many of those the kernel copied (on loopback: every one).\n"
"\n"
"columns:\n"
"  MB/s      bytes / wall time of the timed side, 10^6 bytes/s: a round's\n"
"            is its median lap's, the row's the median round's\n"
"  x base    MB/s over the baseline's: a round's is the median ratio of a\n"
"            lap to the baseline lap beside it; median and min-max of the\n"
"            rounds\n"
"  calls     system calls of the timed side per round\n"
"  cpu s/GB  CPU time of the timed side per 10^9 payload bytes; sys% of it\n"
"  copy, ref, inpl   bytes the module copied, moved as page references,\n"
"            and that went through the mapping, per payload byte\n"
"  trap      minor faults the timed side took, per payload page\n"
"  lent, mapd, swap, steal   pages handed to a pipe, ring pages mapped by\n"
"            the fault handler (with those it maps around a fault, so more\n"
"            than one a trap), slots given a fresh page, pages stolen from\n"
"            a pipe: per payload page\n"
"The module's counters are ZCDEV_IOC_GET_STATS deltas around the timed\n"
"side only. 'zcdev explain' shows what one call of a path does.\n";

#define MB 1e6
#define MAX_CHUNKS 8

enum bformat { FMT_TABLE, FMT_JSON, FMT_BOTH };

/* One row of the table: a path under one mapping at one call size. */
struct brow {
	const struct bpath *p;
	enum bmap map;
	size_t chunk;		/* as asked; the call is capped at the ring */
	struct brow *base;
	bool ok;
	char err[192];
	struct bcost *s;	/* one sample per round */
	double *mbps, *x;
	double *base_mbps;	/* the baseline's, in laps alternating with ours */
};

struct bench {
	struct benv env;
	uint64_t size;
	size_t chunks[MAX_CHUNKS];
	int nr_chunks;
	bool want_map[BMAP_NR];
	bool want[BENCH_MAX_PATHS];	/* by index in bpaths[] */
	unsigned int repeat;
	bool verify;
	enum bformat format;
	size_t page_size;
	size_t pipe_len;
	struct brow *rows;
	size_t nr_rows;
	struct ccost cc;
};

/* ---- statistics ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Median, min and max of the finite values; NAN if none. */
static double summary(const double *v, unsigned int n, double *lo, double *hi)
{
	double s[64];
	unsigned int i, k = 0;

	for (i = 0; i < n && k < 64; i++)
		if (isfinite(v[i]))
			s[k++] = v[i];
	if (!k) {
		*lo = *hi = NAN;
		return NAN;
	}
	qsort(s, k, sizeof(s[0]), cmp_double);
	*lo = s[0];
	*hi = s[k - 1];
	return k % 2 ? s[k / 2] : (s[k / 2 - 1] + s[k / 2]) / 2;
}

static double median(const double *v, unsigned int n)
{
	double lo, hi;

	return summary(v, n, &lo, &hi);
}

/* A counter summed over every round, per payload byte. */
static double per_byte(const struct brow *r, unsigned int repeat,
		       uint64_t (*get)(const struct zcdev_stats *d))
{
	uint64_t num = 0, bytes = 0;
	unsigned int i;

	for (i = 0; i < repeat; i++) {
		num += get(&r->s[i].d);
		bytes += r->s[i].bytes;
	}
	return bytes ? (double)num / bytes : NAN;
}

/* Minor faults of the timed side, per payload byte. */
static double traps(const struct brow *r, unsigned int repeat)
{
	uint64_t num = 0, bytes = 0;
	unsigned int i;

	for (i = 0; i < repeat; i++) {
		num += r->s[i].minflt;
		bytes += r->s[i].bytes;
	}
	return bytes ? (double)num / bytes : NAN;
}

static uint64_t st_lent(const struct zcdev_stats *d)
{
	return d->pages_spliced_out;
}

static uint64_t st_faults(const struct zcdev_stats *d)
{
	return d->mmap_faults;
}

static uint64_t st_swaps(const struct zcdev_stats *d)
{
	return d->page_swaps;
}

static uint64_t st_stolen(const struct zcdev_stats *d)
{
	return d->pages_stolen_in;
}

/* ---- what a copy costs here ---- */

#define CC_LEN		(64 << 10)
#define CC_SAMPLES	63

enum cc_kind { CC_MEMCPY, CC_MOVSB, CC_MOVSQ };

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static bool cc_copy(enum cc_kind k, void *dst, const void *src, size_t n)
{
	switch (k) {
	case CC_MEMCPY:
		memcpy(dst, src, n);
		break;
#if defined(__x86_64__)
	case CC_MOVSB:
		__asm__ volatile("rep movsb"
				 : "+D"(dst), "+S"(src), "+c"(n) : : "memory");
		break;
	case CC_MOVSQ:
		n /= 8;
		__asm__ volatile("rep movsq"
				 : "+D"(dst), "+S"(src), "+c"(n) : : "memory");
		break;
#endif
	default:
		return false;
	}
	/* The copy must happen although nothing reads it. */
	__asm__ volatile("" : : "r"(dst) : "memory");
	return true;
}

/* MB/s of the best of five 10 ms stretches of hot 64 KiB copies. */
static double cc_rate(enum cc_kind k, char *dst, const char *src)
{
	double best = 0, t0, t;
	unsigned long reps;
	int trial;

	if (!cc_copy(k, dst, src, CC_LEN))
		return NAN;
	for (trial = 0; trial < 5; trial++) {
		reps = 0;
		t0 = now_ns();
		do {
			cc_copy(k, dst, src, CC_LEN);
			reps++;
			t = now_ns();
		} while (t - t0 < 1e7);
		if (reps * (double)CC_LEN / (t - t0) * 1e3 > best)
			best = reps * (double)CC_LEN / (t - t0) * 1e3;
	}
	return best;
}

static double cc_median(double *s, unsigned int n)
{
	qsort(s, n, sizeof(s[0]), cmp_double);
	return s[n / 2];
}

/* n bytes written untimed, then their read(2) timed, call by call. */
static double cc_read_one(int wfd, int rfd, char *buf, size_t n,
			  double clock_ns)
{
	double s[CC_SAMPLES], t0;
	int i;

	for (i = 0; i < CC_SAMPLES; i++) {
		if (write(wfd, buf, n) != (ssize_t)n)
			return NAN;
		t0 = now_ns();
		if (read(rfd, buf + n, n) != (ssize_t)n)
			return NAN;
		s[i] = now_ns() - t0;
	}
	return cc_median(s, CC_SAMPLES) - clock_ns;
}

/*
 * A read(2) of one page and one of 16: what a page more costs is the
 * kernel's copy of it with the little a page adds to the call, without
 * the system call and the module's per-call work a single page carries.
 */
static bool cc_read(struct ccost *cc, const struct zcdev_info *info,
		    char *buf)
{
	size_t page = info->page_size;
	struct zcdev_info di;
	int wfd, rfd;
	bool ok = false;

	wfd = dev_open(O_RDWR, &di);
	rfd = wfd < 0 ? -1 : dev_open(O_RDONLY, &di);
	if (rfd < 0 || zcdev_reset(wfd))
		goto out;
	cc->read_ns = cc_read_one(wfd, rfd, buf, page, cc->clock_ns);
	cc->read16_ns = cc_read_one(wfd, rfd, buf, 16 * page, cc->clock_ns);
	ok = isfinite(cc->read_ns) && isfinite(cc->read16_ns);
out:
	if (wfd >= 0)
		close(wfd);
	if (rfd >= 0)
		close(rfd);
	return ok;
}

void ccost_measure(struct ccost *cc, const struct zcdev_info *info)
{
	double s[CC_SAMPLES], t0, k, best;
	char *src, *dst;
	int i;

	memset(cc, 0, sizeof(*cc));
	src = mmap(NULL, 2 * CC_LEN, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (src == MAP_FAILED) {
		cc->memcpy_mbps = cc->movsb_mbps = cc->movsq_mbps = NAN;
		return;
	}
	dst = src + CC_LEN;
	memset(src, 0x5a, 2 * CC_LEN);
	cc->memcpy_mbps = cc_rate(CC_MEMCPY, dst, src);
	cc->movsb_mbps = cc_rate(CC_MOVSB, dst, src);
	cc->movsq_mbps = cc_rate(CC_MOVSQ, dst, src);
	for (i = 0; i < CC_SAMPLES; i++) {
		t0 = now_ns();
		s[i] = now_ns() - t0;
	}
	cc->clock_ns = cc_median(s, CC_SAMPLES);
	for (i = 0; i < CC_SAMPLES; i++) {
		t0 = now_ns();
		syscall(SYS_getppid);
		s[i] = now_ns() - t0;
	}
	cc->syscall_ns = cc_median(s, CC_SAMPLES) - cc->clock_ns;
	if (info && 16 * info->page_size <= CC_LEN &&
	    info->ring_pages >= 16)
		cc->have_read = cc_read(cc, info, src);
	if (cc->have_read) {
		k = (cc->read16_ns - cc->read_ns) / 15;
		cc->kcopy_mbps = k > 0 ? info->page_size / k * 1e3 : NAN;
		/*
		 * Against the faster user copy: under an emulated CPU with
		 * ERMS glibc's memcpy may be the same slow rep movsb.
		 */
		best = cc->memcpy_mbps;
		if (isfinite(cc->movsq_mbps) && cc->movsq_mbps > best)
			best = cc->movsq_mbps;
		cc->slow_kcopy = cc->kcopy_mbps * CCOST_SLOW < best;
	}
	munmap(src, 2 * CC_LEN);
}

void ccost_print(const struct ccost *cc)
{
	printf("copy cost here: user memcpy %.0f MB/s, rep movsb %.0f MB/s, rep movsq %.0f MB/s (64 KiB, hot)\n",
	       cc->memcpy_mbps, cc->movsb_mbps, cc->movsq_mbps);
	if (!cc->have_read) {
		printf("  getppid() %.0f ns; no read() of the ring measured\n",
		       cc->syscall_ns);
		return;
	}
	printf("  read() of 1 hot ring page %.0f ns, of 16 %.0f ns: a page more %.0f ns, the kernel\n"
	       "  copies at ~%.0f MB/s; getppid() %.0f ns\n",
	       cc->read_ns, cc->read16_ns, (cc->read16_ns - cc->read_ns) / 15,
	       cc->kcopy_mbps, cc->syscall_ns);
	if (cc->slow_kcopy)
		printf("  WARNING: the kernel copies at under 1/%d of the faster user copy: every\n"
		       "  ratio against a copy path is inflated (an emulated CPU whose kernel copy\n"
		       "  is a slow rep movsb?); see docs/performance.md\n", CCOST_SLOW);
}

void ccost_json(struct json *j, const struct ccost *cc)
{
	json_begin(j, "copy_cost", '{');
	json_double(j, "memcpy_mb_per_s", cc->memcpy_mbps);
	json_double(j, "rep_movsb_mb_per_s", cc->movsb_mbps);
	json_double(j, "rep_movsq_mb_per_s", cc->movsq_mbps);
	json_double(j, "syscall_ns", cc->syscall_ns);
	if (cc->have_read) {
		json_double(j, "read_page_ns", cc->read_ns);
		json_double(j, "read_16_pages_ns", cc->read16_ns);
		json_double(j, "kernel_copy_mb_per_s", cc->kcopy_mbps);
	}
	json_bool(j, "slow_kernel_copy", cc->slow_kcopy);
	json_end(j, '}');
}

/* ---- running ---- */

/*
 * A round's figures from its laps, so that a lap the host preempted
 * cannot move them: MB/s is the median lap's, the ratio the median of
 * the ratios of the row's laps to the baseline laps run beside them.
 */
static void lap_ratios(struct brow *r, unsigned int round,
		       const struct bcost *row, const struct bcost *base)
{
	double x[BENCH_MAX_LAPS];
	unsigned int i, n = row->laps;

	r->mbps[round] = median(row->lap_rate, row->laps) / MB;
	if (!base) {
		r->x[round] = 1;
		r->base_mbps[round] = r->mbps[round];
		return;
	}
	if (base->laps < n)
		n = base->laps;
	for (i = 0; i < n; i++)
		x[i] = row->lap_rate[i] / base->lap_rate[i];
	r->x[round] = median(x, n);
	r->base_mbps[round] = median(base->lap_rate, base->laps) / MB;
}

/*
 * One round of a row: laps of the row alternate with laps of its
 * baseline, each in its own context, so the ratio compares laps run
 * side by side. The verify round runs the row alone.
 */
static void run_row(struct bench *b, struct brow *r, unsigned int round,
		    bool verify)
{
	uint64_t ring = b->env.have_dev ? b->env.info.ring_bytes : 1 << 20;
	uint64_t total = verify && b->size > 3 * ring ? 3 * ring : b->size;
	bool alt = !verify && r->base != r;
	struct bctx c[2], *cs[2] = { &c[0], &c[1] };
	struct bcost cost[2];
	int ret, i, nr = 1;

	ret = bctx_open(&c[0], &b->env, r->p, r->map, r->chunk, verify);
	if (!ret && alt) {
		nr = 2;
		ret = bctx_open(&c[1], &b->env, r->base->p, r->base->map,
				r->chunk, false);
	}
	if (!ret)
		ret = bctx_laps(cs, nr, total, 1, cost);
	for (i = 0; i < nr; i++) {
		bctx_close(&c[i]);
		if (c[i].failed && r->ok) {
			r->ok = false;
			snprintf(r->err, sizeof(r->err), "%s%.170s",
				 verify ? "verify: " : i ? "baseline: " : "",
				 c[i].err);
		}
	}
	if (!r->ok || verify)
		return;
	r->s[round] = cost[0];
	r->s[round].zc = c[0].zc;
	lap_ratios(r, round, &cost[0], alt ? &cost[1] : NULL);
}

static void progress(const struct bench *b, const struct brow *r,
		     unsigned int round, bool verify)
{
	if (!progress_wanted())
		return;
	fprintf(stderr, "\rbench: %s %u/%u: %s, %s, %zu-byte calls\033[K",
		verify ? "verify" : "round", verify ? 1 : round + 1,
		verify ? 1 : b->repeat, r->p->label, bmap_names[r->map],
		r->chunk);
}

static void run_all(struct bench *b)
{
	unsigned int round;
	size_t i;

	if (b->verify) {
		for (i = 0; i < b->nr_rows; i++) {
			progress(b, &b->rows[i], 0, true);
			run_row(b, &b->rows[i], 0, true);
		}
	}
	for (round = 0; round < b->repeat; round++) {
		for (i = 0; i < b->nr_rows; i++) {
			if (!b->rows[i].ok)
				continue;
			progress(b, &b->rows[i], round, false);
			run_row(b, &b->rows[i], round, false);
		}
	}
	if (progress_wanted())
		fputs("\r\033[K", stderr);
	for (i = 0; i < b->nr_rows; i++)
		for (round = 0; round < b->repeat && !b->rows[i].ok; round++)
			b->rows[i].x[round] = NAN;
}

/* ---- which rows ---- */

static void parse_methods(const struct cmd *c, struct bench *b, char *list)
{
	char *tok, *save = NULL;
	size_t i;

	memset(b->want, 0, sizeof(b->want));
	for (tok = strtok_r(list, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		bool found = false;

		for (i = 0; i < nr_bpaths; i++) {
			if (bpath_matches(&bpaths[i], tok)) {
				b->want[i] = true;
				found = true;
			}
		}
		if (!found)
			usage_error(c, "unknown row '%s'", tok);
	}
	for (i = 0; i < nr_bpaths && !b->want[i]; i++)
		;
	if (i == nr_bpaths)
		usage_error(c, "--method selects no row");
}

static void parse_maps(const struct cmd *c, struct bench *b, char *list)
{
	char *tok, *save = NULL;
	int m;

	memset(b->want_map, 0, sizeof(b->want_map));
	for (tok = strtok_r(list, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		for (m = 0; m < BMAP_NR; m++)
			if (!strcmp(tok, bmap_names[m]))
				break;
		if (m == BMAP_NR)
			usage_error(c, "unknown --map '%s' (none, meta, mapped)", tok);
		b->want_map[m] = true;
	}
	for (m = 0; m < BMAP_NR && !b->want_map[m]; m++)
		;
	if (m == BMAP_NR)
		usage_error(c, "--map selects no mapping");
}

static void parse_chunks(const struct cmd *c, struct bench *b, char *list)
{
	char *tok, *save = NULL;

	b->nr_chunks = 0;
	for (tok = strtok_r(list, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (b->nr_chunks == MAX_CHUNKS)
			usage_error(c, "at most %d call sizes", MAX_CHUNKS);
		b->chunks[b->nr_chunks++] = parse_chunk(c, tok);
	}
	if (!b->nr_chunks)
		usage_error(c, "bad --chunk '%s'", list);
}

static struct brow *find_row(struct bench *b, const char *id, enum bmap map,
			     size_t chunk)
{
	const struct bpath *p = bpath_find(id);
	size_t i;

	for (i = 0; i < b->nr_rows; i++) {
		struct brow *r = &b->rows[i];

		if (r->p == p && r->chunk == chunk &&
		    (r->map == map || !p->maps || p->side == BS_PAIR))
			return r;
	}
	return NULL;
}

/* The maps a path runs under: pipelines have theirs, references none. */
static bool runs_under(const struct bench *b, const struct bpath *p,
		       enum bmap m)
{
	if (!p->maps)
		return m == BMAP_REF;
	if (!(p->maps & (1u << m)))
		return false;
	return p->side == BS_PAIR || b->want_map[m];
}

static void add_row(struct bench *b, const struct bpath *p, enum bmap m,
		    size_t chunk)
{
	struct brow *r = &b->rows[b->nr_rows++];

	r->p = p;
	r->map = m;
	r->chunk = chunk;
	r->ok = true;
	r->s = calloc(b->repeat, sizeof(*r->s));
	r->mbps = calloc(b->repeat, sizeof(double));
	r->x = calloc(b->repeat, sizeof(double));
	r->base_mbps = calloc(b->repeat, sizeof(double));
	if (!r->s || !r->mbps || !r->x || !r->base_mbps) {
		errmsg("bench: out of memory");
		exit(EXIT_FAIL);
	}
}

/* Add each wanted row's baselines until nothing changes. */
static void want_baselines(struct bench *b)
{
	bool more = true;
	size_t i;

	while (more) {
		more = false;
		for (i = 0; i < nr_bpaths; i++) {
			size_t j = bpath_find(bpaths[i].base) - bpaths;

			if (b->want[i] && !b->want[j])
				more = b->want[j] = true;
		}
	}
}

/* Per call size: references and pipelines, then per map consumers, producers. */
static void build_rows(struct bench *b)
{
	static const enum bside order[] = { BS_GET, BS_PUT };
	int k, m, o;
	size_t i;

	want_baselines(b);
	b->rows = calloc(nr_bpaths * (BMAP_NR + 1) * b->nr_chunks,
			 sizeof(*b->rows));
	if (!b->rows) {
		errmsg("bench: out of memory");
		exit(EXIT_FAIL);
	}
	for (k = 0; k < b->nr_chunks; k++) {
		for (i = 0; i < nr_bpaths; i++) {
			const struct bpath *p = &bpaths[i];

			if (!b->want[i] || (p->side != BS_REF && p->side != BS_PAIR))
				continue;
			for (m = 0; m <= BMAP_REF; m++)
				if (runs_under(b, p, m))
					add_row(b, p, m, b->chunks[k]);
		}
		for (m = 0; m < BMAP_NR; m++)
			for (o = 0; o < 2; o++)
				for (i = 0; i < nr_bpaths; i++)
					if (b->want[i] && bpaths[i].side == order[o] &&
					    runs_under(b, &bpaths[i], m))
						add_row(b, &bpaths[i], m, b->chunks[k]);
	}
	for (i = 0; i < b->nr_rows; i++) {
		struct brow *r = &b->rows[i];

		r->base = find_row(b, r->p->base, r->map, r->chunk);
		/* A baseline under a map nobody asked for runs anyway. */
		if (!r->base) {
			r->base = r;
			r->ok = false;
			snprintf(r->err, sizeof(r->err), "no baseline row %s",
				 r->p->base);
		}
	}
}

/* ---- output ---- */

static void size_text(char *buf, size_t len, uint64_t v)
{
	if (v >= (1 << 20) && !(v % (1 << 20)))
		snprintf(buf, len, "%llu MiB", (unsigned long long)(v >> 20));
	else if (v >= 1024 && !(v % 1024))
		snprintf(buf, len, "%llu KiB", (unsigned long long)(v >> 10));
	else
		snprintf(buf, len, "%llu bytes", (unsigned long long)v);
}

static const char *const section_names[] = {
	[BMAP_NONE] = "consumers and producers, nobody maps the ring",
	[BMAP_META] = "consumers and producers, the meta page alone is mapped",
	[BMAP_PROD] = "consumers and producers, the producer maps the ring",
	[BMAP_REF] = "references and pipelines, both sides timed",
};

static int section_of(const struct brow *r)
{
	return r->p->side == BS_REF || r->p->side == BS_PAIR ? BMAP_REF : r->map;
}

static void print_header(const struct bench *b)
{
	char sz[32];

	size_text(sz, sizeof(sz), b->size);
	printf("zcdev bench %s: %s per row, median of %u rounds", ZCDEV_VERSION,
	       sz, b->repeat);
	if (b->env.have_dev) {
		size_text(sz, sizeof(sz), b->env.info.ring_bytes);
		printf(", ring %s (%u pages) on %s", sz, b->env.info.ring_pages,
		       dev_path());
	}
	printf("\none side timed at a time: fills by write (mmap when mapped), drains by\n");
	printf("splice to /dev/null; %s\n",
	       b->verify ? "every byte verified in a first, untimed round"
			 : "no verify round (--no-verify)");
	if (b->env.tcp_to)
		printf(">tcp rows send to %s, an external receiver: their bytes are counted\n"
		       "as sent, not verified\n", b->env.tcp_to);
	printf("MB/s = 10^6 bytes/s; x base = MB/s over the baseline's (vs), laps alternating\n");
	printf("copy, ref, inpl per payload byte; trap, lent, mapd, swap, steal per payload page\n");
	ccost_print(&b->cc);
}

static void print_cols(int w)
{
	printf("%-*s %8s %7s %13s %-12s %7s %7s %4s %5s %5s %5s %5s %5s %5s %5s %5s\n",
	       w, "path", "MB/s", "x base", "min-max", "vs", "calls", "cpu s/GB",
	       "sys%", "trap", "copy", "ref", "inpl", "lent", "mapd", "swap",
	       "steal");
}

static void print_row(const struct bench *b, const struct brow *r, int w)
{
	double lo, hi, x, cpu[64], sys[64], pages;
	unsigned long calls[64];
	unsigned int i, n = b->repeat < 64 ? b->repeat : 64;
	char mm[32];

	printf("%-*s ", w, r->p->label);
	if (!r->ok) {
		printf("error: %s\n", r->err);
		return;
	}
	x = summary(r->x, b->repeat, &lo, &hi);
	snprintf(mm, sizeof(mm), "%.2f-%.2f", lo, hi);
	for (i = 0; i < n; i++) {
		const struct bcost *s = &r->s[i];

		cpu[i] = s->bytes ? s->cpu / s->bytes * 1e9 : NAN;
		sys[i] = s->usr + s->sys > 0 ? 100 * s->sys / (s->usr + s->sys) : NAN;
		calls[i] = s->syscalls;
	}
	pages = b->page_size;
	printf("%8.1f %6.2fx %13s %-12s %7lu %8.2f %4.0f %5.2f",
	       median(r->mbps, b->repeat), x, mm,
	       r->base == r ? "-" : bpath_short(r->base->p), calls[0],
	       median(cpu, n), median(sys, n), traps(r, b->repeat) * pages);
	if (r->p->pipe || r->p->put == BP_MEMCPY) {
		printf(" %5s %5s %5s %5s %5s %5s %5s\n", "-", "-", "-", "-", "-",
		       "-", "-");
		return;
	}
	printf(" %5.2f %5.2f %5.2f %5.2f %5.2f %5.2f %5.2f\n",
	       per_byte(r, b->repeat, zcdev_stats_copied),
	       per_byte(r, b->repeat, zcdev_stats_by_ref),
	       per_byte(r, b->repeat, zcdev_stats_in_place),
	       per_byte(r, b->repeat, st_lent) * pages,
	       per_byte(r, b->repeat, st_faults) * pages,
	       per_byte(r, b->repeat, st_swaps) * pages,
	       per_byte(r, b->repeat, st_stolen) * pages);
}

/* A row's MSG_ZEROCOPY sends and completions over every round. */
static struct zc_count row_zc(const struct bench *b, const struct brow *r)
{
	struct zc_count z = { 0 };
	unsigned int i;

	for (i = 0; i < b->repeat; i++) {
		z.sends += r->s[i].zc.sends;
		z.done += r->s[i].zc.done;
		z.copied += r->s[i].zc.copied;
		z.plain += r->s[i].zc.plain;
	}
	return z;
}

/* What the columns cannot say: the MSG_ZEROCOPY rows' completions. */
static void print_notes(const struct bench *b)
{
	bool first = true;
	struct zc_count z;
	size_t i;
	char sz[32];

	for (i = 0; i < b->nr_rows; i++) {
		const struct brow *r = &b->rows[i];

		if (!r->ok || r->p->get != BG_MMAP_SEND_ZC || r->p->side != BS_GET)
			continue;
		if (first)
			printf("\nnotes (all rounds, each context's untimed first lap included):\n");
		first = false;
		z = row_zc(b, r);
		size_text(sz, sizeof(sz), r->chunk);
		printf("  %s, %s, %s calls: %llu sends, %llu completed, %llu of them copied by the kernel\n",
		       r->p->label, bmap_names[r->map], sz,
		       (unsigned long long)z.sends, (unsigned long long)z.done,
		       (unsigned long long)z.copied);
	}
}

static void print_table(const struct bench *b)
{
	int section = -1, w = 22;
	size_t i, chunk = 0;
	char sz[32];

	for (i = 0; i < b->nr_rows; i++)
		if ((int)strlen(b->rows[i].p->label) > w)
			w = strlen(b->rows[i].p->label);
	print_header(b);
	for (i = 0; i < b->nr_rows; i++) {
		const struct brow *r = &b->rows[i];

		if (r->chunk != chunk || section_of(r) != section) {
			chunk = r->chunk;
			section = section_of(r);
			size_text(sz, sizeof(sz), chunk);
			printf("\n%s calls: %s\n", sz, section_names[section]);
			print_cols(w);
		}
		print_row(b, r, w);
	}
	print_notes(b);
}

static void json_zc(struct json *j, const struct zc_count *z)
{
	json_begin(j, "zerocopy", '{');
	json_u64(j, "sends", z->sends);
	json_u64(j, "completed", z->done);
	json_u64(j, "copied", z->copied);
	json_end(j, '}');
}

static void json_sample(struct json *j, const struct brow *r, unsigned int i)
{
	const struct bcost *s = &r->s[i];
	unsigned int k;

	json_begin(j, NULL, '{');
	json_u64(j, "bytes", s->bytes);
	json_double(j, "seconds", s->secs);
	json_double(j, "mb_per_s", r->mbps[i]);
	json_double(j, "x", r->x[i]);
	json_double(j, "base_mb_per_s", r->base_mbps[i]);
	json_double(j, "cpu_s", s->cpu);
	json_double(j, "user_s", s->usr);
	json_double(j, "sys_s", s->sys);
	json_u64(j, "syscalls", s->syscalls);
	json_u64(j, "minflt", s->minflt);
	json_begin(j, "lap_mb_per_s", '[');
	for (k = 0; k < s->laps; k++)
		json_double(j, NULL, s->lap_rate[k] / MB);
	json_end(j, ']');
	if (r->p->side == BS_GET && r->p->get == BG_MMAP_SEND_ZC)
		json_zc(j, &s->zc);
	if (!r->p->pipe && r->p->put != BP_MEMCPY) {
		json_begin(j, "zcdev", '{');
		json_u64(j, "copied_bytes", zcdev_stats_copied(&s->d));
		json_u64(j, "by_ref_bytes", zcdev_stats_by_ref(&s->d));
		json_u64(j, "in_place_bytes", zcdev_stats_in_place(&s->d));
		json_fields(j, &s->d, zcdev_stats_fields);
		json_end(j, '}');
	}
	json_end(j, '}');
}

static void json_row(struct json *j, const struct bench *b, const struct brow *r)
{
	double lo, hi, x;
	unsigned int i;

	json_begin(j, NULL, '{');
	json_str(j, "id", r->p->id);
	json_str(j, "label", r->p->label);
	json_str(j, "side", bside_names[r->p->side]);
	json_str(j, "map", bmap_names[r->map]);
	json_u64(j, "chunk_bytes", r->chunk);
	json_str(j, "base", r->base->p->id);
	json_bool(j, "ok", r->ok);
	if (!r->ok) {
		json_str(j, "error", r->err);
		json_end(j, '}');
		return;
	}
	x = summary(r->x, b->repeat, &lo, &hi);
	json_double(j, "mb_per_s", median(r->mbps, b->repeat));
	json_double(j, "x", x);
	json_double(j, "x_min", lo);
	json_double(j, "x_max", hi);
	json_bool(j, "bytes_verified",
		  b->verify && !(b->env.tcp_to && bpath_tcp(r->p)));
	if (r->p->side == BS_GET && r->p->get == BG_MMAP_SEND_ZC) {
		struct zc_count z = row_zc(b, r);

		json_zc(j, &z);
	}
	json_begin(j, "samples", '[');
	for (i = 0; i < b->repeat; i++)
		json_sample(j, r, i);
	json_end(j, ']');
	json_end(j, '}');
}

static void print_json(const struct bench *b)
{
	struct json j = { .f = stdout };
	size_t i;

	json_begin(&j, NULL, '{');
	json_str(&j, "version", ZCDEV_VERSION);
	json_str(&j, "model", "one thread fills the ring then drains it; one side timed");
	json_u64(&j, "payload_bytes", b->size);
	json_u64(&j, "repeat", b->repeat);
	json_bool(&j, "verified", b->verify);
	if (b->env.tcp_to)
		json_str(&j, "tcp_to", b->env.tcp_to);
	json_u64(&j, "page_size", b->page_size);
	json_u64(&j, "mb_bytes", (uint64_t)MB);
	json_u64(&j, "pipe_bytes", b->pipe_len);
	ccost_json(&j, &b->cc);
	if (b->env.have_dev) {
		json_str(&j, "device", dev_path());
		json_begin(&j, "info", '{');
		json_fields(&j, &b->env.info, zcdev_info_fields);
		json_end(&j, '}');
	}
	json_begin(&j, "rows", '[');
	for (i = 0; i < b->nr_rows; i++)
		json_row(&j, b, &b->rows[i]);
	json_end(&j, ']');
	json_end(&j, '}');
	putchar('\n');
}

/* ---- setup ---- */

static void bench_getopt(const struct cmd *c, struct bench *b, int argc,
			 char **argv)
{
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "chunk", required_argument, NULL, 'c' },
		{ "map", required_argument, NULL, 'M' },
		{ "method", required_argument, NULL, 'm' },
		{ "repeat", required_argument, NULL, 'r' },
		{ "timeout", required_argument, NULL, 't' },
		{ "no-verify", no_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "format", required_argument, NULL, 'f' },
		{ "tcp-to", required_argument, NULL, 1 },
		{ "help", no_argument, NULL, 'h' },
		{ NULL }
	};
	char host[256], port[16];
	uint32_t n;
	int opt;

	while ((opt = cmd_getopt(c, argc, argv, opts)) != -1) {
		switch (opt) {
		case 's':
			if (parse_size(optarg, &b->size) || !b->size ||
			    b->size > SIZE_MAX / 4)
				usage_error(c, "bad --size '%s'", optarg);
			break;
		case 'c':
			parse_chunks(c, b, optarg);
			break;
		case 'M':
			parse_maps(c, b, optarg);
			break;
		case 'm':
			parse_methods(c, b, optarg);
			break;
		case 'r':
			if (parse_u32(optarg, &n) || !n || n > 64)
				usage_error(c, "bad --repeat '%s' (1 to 64)", optarg);
			b->repeat = n;
			break;
		case 't':
			b->env.timeout = parse_timeout(c, optarg);
			break;
		case 'n':
			b->verify = false;
			break;
		case 'j':
			b->format = FMT_JSON;
			break;
		case 'f':
			if (!strcmp(optarg, "table"))
				b->format = FMT_TABLE;
			else if (!strcmp(optarg, "json"))
				b->format = FMT_JSON;
			else if (!strcmp(optarg, "both"))
				b->format = FMT_BOTH;
			else
				usage_error(c, "bad --format '%s' (table, json, both)",
					    optarg);
			break;
		case 1:
			if (hostport_split(optarg, host, sizeof(host), port,
					   sizeof(port)))
				usage_error(c, "bad --tcp-to '%s' (HOST:PORT, or [ADDR]:PORT for IPv6)",
					    optarg);
			b->env.tcp_to = optarg;
			break;
		}
	}
	if (optind < argc)
		usage_error(c, "unexpected argument '%s'", argv[optind]);
}

/* A payload no path can pass by luck: xorshift64, never zero pages. */
static void fill_payload(char *p, uint64_t size)
{
	uint64_t x = 0x9e3779b97f4a7c15ull, off;

	for (off = 0; off < size; off += sizeof(x)) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(p + off, &x, size - off < sizeof(x) ? size - off : sizeof(x));
	}
}

static bool wants_device(const struct bench *b)
{
	size_t i;

	for (i = 0; i < nr_bpaths; i++)
		if (b->want[i] && !bpaths[i].pipe && bpaths[i].put != BP_MEMCPY)
			return true;
	return false;
}

/*
 * The payload, page aligned, then a copy of its start as long as the
 * longest call or the ring, so every call's bytes are contiguous.
 */
static char *alloc_payload(struct bench *b)
{
	uint64_t ext = b->env.have_dev ? b->env.info.ring_bytes : 1 << 20;
	uint64_t off;
	char *p;
	int k;

	for (k = 0; k < b->nr_chunks; k++)
		if (b->chunks[k] > ext)
			ext = b->chunks[k];
	ext += BENCH_SKEW_SPAN;
	p = mmap(NULL, b->size + ext, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	fill_payload(p, b->size);
	for (off = 0; off < ext; off += b->size)
		memcpy(p + b->size + off, p,
		       ext - off < b->size ? ext - off : b->size);
	return p;
}

int cmd_bench(const struct cmd *c, int argc, char **argv)
{
	struct bench b = {
		.size = 16 << 20,
		.chunks = { 4 << 10, 64 << 10, 1 << 20 },
		.nr_chunks = 3,
		.repeat = 5,
		.verify = true,
		.env.timeout = 10,
	};
	struct bmapping pmap = { .users = 0 };
	int ret = EXIT_OK, p[2], claim = -1;
	size_t i;

	memset(b.want, 1, sizeof(b.want));
	memset(b.want_map, 1, sizeof(b.want_map));
	bench_getopt(c, &b, argc, argv);
	b.page_size = sysconf(_SC_PAGESIZE);
	if (wants_device(&b)) {
		claim = bench_claim(&b.env.info);
		if (claim < 0)
			return -claim;
		b.env.have_dev = true;
		b.page_size = b.env.info.page_size;
	}
	b.env.pmap = &pmap;
	b.env.payload = alloc_payload(&b);
	b.env.payload_len = b.size;
	b.env.devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (!b.env.payload || b.env.devnull < 0 ||
	    open_pipe(p, b.env.have_dev ? b.env.info.ring_bytes : 1 << 20,
		      &b.pipe_len)) {
		errmsg("bench setup: %s", strerror(errno));
		return EXIT_FAIL;
	}
	close(p[0]);
	close(p[1]);
	bench_signals();
	ccost_measure(&b.cc, b.env.have_dev ? &b.env.info : NULL);
	build_rows(&b);
	run_all(&b);

	if (b.format != FMT_JSON)
		print_table(&b);
	if (b.format == FMT_BOTH)
		putchar('\n');
	if (b.format != FMT_TABLE)
		print_json(&b);
	for (i = 0; i < b.nr_rows; i++)
		if (!b.rows[i].ok)
			ret = EXIT_FAIL;
	if (claim >= 0)
		close(claim);
	return ret;
}
