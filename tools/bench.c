// SPDX-License-Identifier: GPL-2.0
/*
 * zcdev(1) bench: the same payload through every path in one run, beside
 * reference rows measured in the same run. Judge by the ratios.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cmds.h"

const char bench_help[] =
"usage: zcdev bench [--size BYTES] [--chunk BYTES] [--method LIST]\n"
"                   [--timeout SEC] [--no-verify] [--json]\n"
"\n"
"Move the same payload through every path in one run and print one row per\n"
"path, beside reference rows measured in the same run. Judge by the ratios\n"
"within one run, never by absolute numbers from different runs.\n"
"\n"
"How a row is measured: the payload sits in memory; a producer thread puts\n"
"it in while a consumer thread takes it out, concurrently, one chunk per\n"
"call (the pipe rows use the same two threads on a pipe). Each path runs\n"
"twice: first a verify pass, untimed, whose consumer compares every byte\n"
"with the payload (it also faults pages in and warms caches), then the\n"
"timed pass, whose consumer discards the bytes the cheapest way its path\n"
"allows. A failing path prints an error row and the bench goes on. The\n"
"producer resets the ring (ZCDEV_IOC_RESET) before every pass: do not run\n"
"the bench while something else uses the device.\n"
"\n"
"  -s, --size BYTES     payload, K/M/G suffixes (powers of 1024), default 64M\n"
"  -c, --chunk BYTES    bytes per call, default 64K\n"
"  -m, --method LIST    comma-separated paths, default all; the 'pipe' row\n"
"                       always runs, as the baseline\n"
"  -t, --timeout SEC    fail a pass after SEC s without progress (default 10)\n"
"  -n, --no-verify      skip the verify passes\n"
"  -j, --json           one JSON object with every figure, no table\n"
"\n"
"paths (producer -> consumer):\n"
"  memcpy        reference: memcpy of the payload, chunk by chunk, into a\n"
"                ring-sized buffer; one thread, no system calls\n"
"  pipe          reference: a Linux pipe, write -> read\n"
"  pipe-splice   reference: a Linux pipe, vmsplice (no copy) -> splice to\n"
"                /dev/null\n"
"  rw            zcdev: write -> read\n"
"  mmap          zcdev: memcpy into the mapping + ZCDEV_IOC_PRODUCE ->\n"
"                ZCDEV_IOC_CONSUME, the bytes used in place\n"
"  splice-out    zcdev: write -> splice to a pipe -> splice to /dev/null\n"
"  sendfile      zcdev: write -> sendfile to /dev/null\n"
"  splice-in     zcdev: write to a pipe -> splice SPLICE_F_MOVE -> read\n"
"  vmsplice      zcdev: fresh pages vmspliced SPLICE_F_GIFT into a pipe and\n"
"                unmapped -> splice SPLICE_F_MOVE -> read\n"
"The reference pipes get the ring's size (F_SETPIPE_SZ) where allowed.\n"
"\n"
"columns:\n"
"  MB/s      payload bytes / wall time of the timed pass, 10^6 bytes/s\n"
"  x pipe    MB/s relative to the 'pipe write/read' row\n"
"  calls     system calls made by both threads\n"
"  usr, sys  CPU time of both threads in ms (getrusage RUSAGE_THREAD)\n"
"  kcopy     bytes the module copied (write, read, splice in by copy), per\n"
"            payload byte\n"
"  kref      bytes it moved as page references (splice out, pages stolen\n"
"            on splice in), per payload byte\n"
"  inplace   bytes produced and consumed through the mapping, per payload\n"
"            byte\n"
"  stolen    pages stolen from the pipe on splice in\n"
"  swaps     ring slots given a fresh page (page_swaps)\n"
"The zcdev columns are ZCDEV_IOC_GET_STATS deltas around the timed pass;\n"
"--json has every counter.\n";

struct path {
	const char *name;
	const char *label;
	bool device;
	int put;		/* enum put_method, -1: memcpy */
	int get;		/* enum get_method */
};

static const struct path paths[] = {
	{ "memcpy",	 "memcpy",		   false, -1,		    -1 },
	{ "pipe",	 "pipe write/read",	   false, PUT_WRITE,	    GET_READ },
	{ "pipe-splice", "pipe vmsplice/splice",   false, PUT_VMSPLICE_REF, GET_SPLICE },
	{ "rw",		 "zcdev write/read",	   true,  PUT_WRITE,	    GET_READ },
	{ "mmap",	 "zcdev mmap/mmap",	   true,  PUT_MMAP,	    GET_MMAP },
	{ "splice-out",	 "zcdev write/splice-out", true,  PUT_WRITE,	    GET_SPLICE },
	{ "sendfile",	 "zcdev write/sendfile",   true,  PUT_WRITE,	    GET_SENDFILE },
	{ "splice-in",	 "zcdev splice-in/read",   true,  PUT_SPLICE,	    GET_READ },
	{ "vmsplice",	 "zcdev vmsplice-gift/read", true, PUT_VMSPLICE,    GET_READ },
};

#define NR_PATHS	(sizeof(paths) / sizeof(paths[0]))
#define PIPE_PATH	1	/* the baseline of the x pipe column */
#define MB		1e6

struct result {
	bool ran;
	bool ok;
	char err[192];
	uint64_t bytes;
	double secs;
	double usr, sys;
	unsigned long syscalls;
	bool has_stats;
	struct zcdev_stats d;
};

struct bench {
	uint64_t size;
	size_t chunk;
	double timeout;
	bool verify;
	bool json;
	bool want[NR_PATHS];
	char *payload;
	int ctl;		/* the device for reset and stats, or -1 */
	struct zcdev_info info;
	uint64_t ring_bytes;	/* the ring's, or 1 MiB without a device */
	size_t pipe_len;	/* buffer of the reference pipes */
	int devnull;
	struct result res[NR_PATHS];
};

static void result_fail(struct result *r, const char *what, int err)
{
	r->ok = false;
	if (err)
		snprintf(r->err, sizeof(r->err), "%s: %s", what, strerror(err));
	else
		snprintf(r->err, sizeof(r->err), "%s", what);
}

/* ---- the reference memcpy ---- */

static void bench_memcpy(struct bench *b, bool verify, struct result *r)
{
	size_t win = b->ring_bytes, n;
	struct rusage ru0, ru1;
	uint64_t off;
	char *dst;

	dst = malloc(win + b->chunk);
	if (!dst)
		return result_fail(r, "malloc", ENOMEM);
	getrusage(RUSAGE_THREAD, &ru0);
	r->secs = now_sec();
	for (off = 0; off < b->size; off += n) {
		char *d = dst + off % win;

		n = b->size - off < b->chunk ? b->size - off : b->chunk;
		memcpy(d, b->payload + off, n);
		/* The copy must happen although nothing reads it. */
		__asm__ volatile("" : : "r"(d) : "memory");
		if (verify && memcmp(d, b->payload + off, n)) {
			free(dst);
			return result_fail(r, "memcpy: payload mismatch", 0);
		}
	}
	r->secs = now_sec() - r->secs;
	getrusage(RUSAGE_THREAD, &ru1);
	free(dst);
	r->ok = true;
	r->bytes = b->size;
	r->usr = tv_sec(&ru1.ru_utime) - tv_sec(&ru0.ru_utime);
	r->sys = tv_sec(&ru1.ru_stime) - tv_sec(&ru0.ru_stime);
}

/* ---- a producer and a consumer on the device or a pipe ---- */

/* fds[0] for the producer, fds[1] for the consumer. */
static int open_ends(struct bench *b, const struct path *p, int fds[2],
		     struct result *r)
{
	struct zcdev_info info;
	int pfd[2];
	size_t got;

	if (!p->device) {
		if (open_pipe(pfd, b->pipe_len, &got)) {
			result_fail(r, "pipe", errno);
			return -1;
		}
		fds[0] = pfd[1];
		fds[1] = pfd[0];
		return 0;
	}
	/* The writer first, so the reader never sees EOF early. */
	fds[0] = dev_open_writer(put_open_flags(p->put), &info);
	fds[1] = fds[0] < 0 ? -1 : dev_open(O_RDONLY, &info);
	if (fds[1] >= 0)
		return 0;
	if (fds[0] >= 0)
		close(fds[0]);
	result_fail(r, "open the device (see above)", 0);
	return -1;
}

/*
 * Where the consumer's bytes go: dropped, or /dev/null for the fd-to-fd
 * paths; verifying, compared with the payload, by way of a memfd for the
 * fd-to-fd paths.
 */
static int set_sink(struct bench *b, struct side *cons, bool verify)
{
	bool fd_to_fd = cons->method == GET_SPLICE ||
			cons->method == GET_SENDFILE;

	cons->snk.fd = b->devnull;
	if (!verify)
		return 0;
	cons->snk.expect = b->payload;
	if (!fd_to_fd)
		return 0;
	cons->snk.fd = memfd_create("zcdev-bench", MFD_CLOEXEC);
	if (cons->snk.fd < 0)
		return side_fail(cons, "memfd_create");
	return 0;
}

static void sides_result(struct side *prod, struct side *cons,
			 struct result *r)
{
	struct side *s[] = { prod, cons };
	int i;

	r->ok = true;
	r->bytes = atomic_load(&cons->bytes);
	r->secs = sides_elapsed(s, 2);
	r->syscalls = 0;
	r->usr = r->sys = 0;
	for (i = 0; i < 2; i++) {
		r->syscalls += s[i]->syscalls;
		r->usr += tv_sec(&s[i]->ru1.ru_utime) - tv_sec(&s[i]->ru0.ru_utime);
		r->sys += tv_sec(&s[i]->ru1.ru_stime) - tv_sec(&s[i]->ru0.ru_stime);
	}
}

static void bench_pair(struct bench *b, const struct path *p, bool verify,
		       struct result *r)
{
	struct side prod, cons, *sides[] = { &prod, &cons };
	const char *name = p->device ? dev_path() : "pipe";
	struct zcdev_stats st0, st1;
	char label[64];
	struct run run = {
		.label = label,
		.timeout = b->timeout,
		.progress = progress_wanted(),
	};
	int fds[2], i, ret;
	const char *err;

	snprintf(label, sizeof(label), "bench: %s (%s)", p->label,
		 verify ? "verify" : "timed");
	if (open_ends(b, p, fds, r))
		return;
	side_init(&prod, true, p->put, fds[0], name, b->chunk);
	prod.src.buf = b->payload;
	prod.src.len = b->size;
	side_init(&cons, false, p->get, fds[1], name, b->chunk);
	cons.limit = b->size;

	ret = set_sink(b, &cons, verify);
	for (i = 0; i < 2 && !ret; i++)
		ret = side_setup(sides[i], &b->info);
	if (!ret && p->device && zcdev_get_stats(b->ctl, &st0))
		ret = side_fail(&cons, "ZCDEV_IOC_GET_STATS");
	if (!ret)
		ret = run_sides(&run, sides, 2);
	if (!ret && p->device && zcdev_get_stats(b->ctl, &st1))
		ret = side_fail(&cons, "ZCDEV_IOC_GET_STATS");

	err = run_error(&run, sides, 2);
	if (err) {
		result_fail(r, err, 0);
	} else {
		sides_result(&prod, &cons, r);
		r->has_stats = p->device;
		if (p->device)
			zcdev_stats_delta(&st0, &st1, &r->d);
	}
	side_release(&prod);
	side_release(&cons);
	if (cons.snk.fd >= 0 && cons.snk.fd != b->devnull)
		close(cons.snk.fd);
}

static void bench_path(struct bench *b, size_t i)
{
	const struct path *p = &paths[i];
	struct result *r = &b->res[i];
	int pass;

	for (pass = !b->verify; pass < 2; pass++) {
		memset(r, 0, sizeof(*r));
		r->ran = true;
		if (p->put < 0)
			bench_memcpy(b, !pass, r);
		else
			bench_pair(b, p, !pass, r);
		if (!r->ok)
			break;
	}
}

/* ---- output ---- */

static double ratio(uint64_t part, uint64_t whole)
{
	return whole ? (double)part / whole : NAN;
}

static double mbps(const struct result *r)
{
	return r->ok && r->secs > 0 ? r->bytes / r->secs / MB : NAN;
}

static void print_header(const struct bench *b)
{
	printf("zcdev bench %s: payload %llu bytes, chunk %zu bytes", ZCDEV_VERSION,
	       (unsigned long long)b->size, b->chunk);
	if (b->ctl >= 0)
		printf(", ring %llu bytes (%u pages of %u) on %s",
		       (unsigned long long)b->info.ring_bytes, b->info.ring_pages,
		       b->info.page_size, dev_path());
	printf("\nproducer and consumer in two threads; %s\n",
	       b->verify ? "every byte verified in an untimed pass, then a timed pass"
			 : "no verify pass (--no-verify)");
	printf("MB/s = 10^6 bytes/s; x pipe = MB/s / pipe write/read; reference pipes of %zu bytes\n",
	       b->pipe_len);
	printf("usr, sys: CPU ms of both threads; kcopy, kref, inplace: zcdev bytes per payload byte\n\n");
	printf("%-25s %9s %7s %9s %8s %8s %6s %6s %7s %7s %6s\n", "path", "MB/s",
	       "x pipe", "calls", "usr ms", "sys ms", "kcopy", "kref",
	       "inplace", "stolen", "swaps");
}

static void print_row(const struct bench *b, size_t i)
{
	const struct result *r = &b->res[i];
	const struct zcdev_stats *d = &r->d;
	double x;

	printf("%-25s ", paths[i].label);
	if (!r->ok) {
		printf("error: %s\n", r->err);
		return;
	}
	printf("%9.1f ", mbps(r));
	x = mbps(r) / mbps(&b->res[PIPE_PATH]);
	if (isfinite(x))
		printf("%6.2fx", x);
	else
		printf("%7s", "-");
	printf(" %9lu %8.1f %8.1f", r->syscalls, r->usr * 1e3, r->sys * 1e3);
	if (!r->has_stats) {
		printf(" %6s %6s %7s %7s %6s\n", "-", "-", "-", "-", "-");
		return;
	}
	printf(" %6.2f %6.2f %7.2f %7llu %6llu\n",
	       ratio(zcdev_stats_copied(d), r->bytes),
	       ratio(zcdev_stats_by_ref(d), r->bytes),
	       ratio(zcdev_stats_in_place(d), r->bytes),
	       (unsigned long long)d->pages_stolen_in,
	       (unsigned long long)d->page_swaps);
}

static void json_row(struct json *j, const struct bench *b, size_t i)
{
	const struct result *r = &b->res[i];

	json_begin(j, NULL, '{');
	json_str(j, "path", paths[i].name);
	json_str(j, "label", paths[i].label);
	json_bool(j, "ok", r->ok);
	if (!r->ok) {
		json_str(j, "error", r->err);
		json_end(j, '}');
		return;
	}
	json_u64(j, "bytes", r->bytes);
	json_double(j, "seconds", r->secs);
	json_double(j, "mb_per_s", mbps(r));
	json_double(j, "x_pipe", mbps(r) / mbps(&b->res[PIPE_PATH]));
	json_u64(j, "syscalls", r->syscalls);
	json_double(j, "user_s", r->usr);
	json_double(j, "sys_s", r->sys);
	if (r->has_stats) {
		json_begin(j, "zcdev", '{');
		json_u64(j, "copied_bytes", zcdev_stats_copied(&r->d));
		json_u64(j, "by_ref_bytes", zcdev_stats_by_ref(&r->d));
		json_u64(j, "in_place_bytes", zcdev_stats_in_place(&r->d));
		json_fields(j, &r->d, zcdev_stats_fields);
		json_end(j, '}');
	}
	json_end(j, '}');
}

static void print_json(const struct bench *b)
{
	struct json j = { .f = stdout };
	size_t i;

	json_begin(&j, NULL, '{');
	json_str(&j, "version", ZCDEV_VERSION);
	json_u64(&j, "payload_bytes", b->size);
	json_u64(&j, "chunk_bytes", b->chunk);
	json_u64(&j, "pipe_bytes", b->pipe_len);
	json_str(&j, "model", "producer and consumer threads");
	json_bool(&j, "verified", b->verify);
	json_u64(&j, "mb_bytes", (uint64_t)MB);
	if (b->ctl >= 0) {
		json_str(&j, "device", dev_path());
		json_begin(&j, "info", '{');
		json_fields(&j, &b->info, zcdev_info_fields);
		json_end(&j, '}');
	}
	json_begin(&j, "rows", '[');
	for (i = 0; i < NR_PATHS; i++)
		if (b->res[i].ran)
			json_row(&j, b, i);
	json_end(&j, ']');
	json_end(&j, '}');
	putchar('\n');
}

/* ---- setup ---- */

static void parse_methods(const struct cmd *c, struct bench *b, char *list)
{
	char *tok, *save = NULL;
	size_t i;

	memset(b->want, 0, sizeof(b->want));
	for (tok = strtok_r(list, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		bool all = !strcmp(tok, "all"), found = all;

		for (i = 0; i < NR_PATHS; i++) {
			if (all || !strcmp(tok, paths[i].name)) {
				b->want[i] = true;
				found = true;
			}
		}
		if (!found)
			usage_error(c, "unknown path '%s'", tok);
	}
}

static void bench_getopt(const struct cmd *c, struct bench *b, int argc,
			 char **argv)
{
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "chunk", required_argument, NULL, 'c' },
		{ "method", required_argument, NULL, 'm' },
		{ "timeout", required_argument, NULL, 't' },
		{ "no-verify", no_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL }
	};
	int opt;

	while ((opt = cmd_getopt(c, argc, argv, opts)) != -1) {
		switch (opt) {
		case 's':
			if (parse_size(optarg, &b->size) || !b->size ||
			    b->size > SIZE_MAX / 2)
				usage_error(c, "bad --size '%s'", optarg);
			break;
		case 'c':
			b->chunk = parse_chunk(c, optarg);
			break;
		case 'm':
			parse_methods(c, b, optarg);
			break;
		case 't':
			b->timeout = parse_timeout(c, optarg);
			break;
		case 'n':
			b->verify = false;
			break;
		case 'j':
			b->json = true;
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

	for (i = 0; i < NR_PATHS; i++)
		if (b->want[i] && paths[i].device)
			return true;
	return false;
}

/* The reference pipes get the ring's size, as far as the system allows. */
static int probe_pipe(struct bench *b)
{
	int p[2];

	if (open_pipe(p, b->ring_bytes, &b->pipe_len))
		return -1;
	close(p[0]);
	close(p[1]);
	return 0;
}

int cmd_bench(const struct cmd *c, int argc, char **argv)
{
	struct bench b = {
		.size = 64 << 20,
		.chunk = DEFAULT_CHUNK,
		.timeout = 10,
		.verify = true,
		.ctl = -1,
		.ring_bytes = 1 << 20,
	};
	int ret = EXIT_OK;
	size_t i;

	memset(b.want, 1, sizeof(b.want));
	bench_getopt(c, &b, argc, argv);
	if (wants_device(&b)) {
		b.ctl = dev_open(O_RDONLY, &b.info);
		if (b.ctl < 0)
			return -b.ctl;
		b.ring_bytes = b.info.ring_bytes ? b.info.ring_bytes : b.ring_bytes;
	}
	b.payload = malloc(b.size);
	b.devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (!b.payload || b.devnull < 0 || probe_pipe(&b)) {
		errmsg("bench setup: %s", strerror(b.payload ? errno : ENOMEM));
		return EXIT_FAIL;
	}
	fill_payload(b.payload, b.size);
	/* A pipe whose reader is gone must fail a row, not kill the bench. */
	signal(SIGPIPE, SIG_IGN);

	/* The baseline first, then the rest in table order. */
	bench_path(&b, PIPE_PATH);
	for (i = 0; i < NR_PATHS; i++)
		if (b.want[i] && i != PIPE_PATH)
			bench_path(&b, i);

	if (b.json) {
		print_json(&b);
	} else {
		print_header(&b);
		for (i = 0; i < NR_PATHS; i++)
			if (b.res[i].ran)
				print_row(&b, i);
	}
	for (i = 0; i < NR_PATHS; i++)
		if (b.res[i].ran && !b.res[i].ok)
			ret = EXIT_FAIL;
	free(b.payload);
	close(b.devnull);
	if (b.ctl >= 0)
		close(b.ctl);
	return ret;
}
