// SPDX-License-Identifier: GPL-2.0
/*
 * zcdev(1): drive /dev/zcdev, a kernel page ring that can be filled and
 * drained through every Linux data path. main(), usage and the commands
 * other than bench.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "zcdev.h"
#include "bench.h"

static const char main_help[] =
"usage: zcdev [-h|--help] [--version] COMMAND [ARGS]\n"
"\n"
"Drive /dev/zcdev, a kernel page ring (a byte stream, like a FIFO whose\n"
"buffer is visible) that can be filled and drained through every Linux\n"
"data path: write/read, mmap, splice, sendfile, vmsplice.\n"
"\n"
"commands:\n"
"  info [--json]               ring geometry and ABI (ZCDEV_IOC_GET_INFO)\n"
"  stats [--json]              every counter since load (ZCDEV_IOC_GET_STATS)\n"
"  resize PAGES                change the ring size; 0 tears the ring down\n"
"  reset                       drop every unread byte, keep the size\n"
"  put [--method M] [FILE]     stream FILE (default stdin) into the ring\n"
"  get [--method M] [FILE]     drain the ring to FILE (default stdout) until EOF\n"
"  copy SRC DST [--method M]   copy a file through the ring, producer and\n"
"                              consumer in two threads\n"
"  bench [OPTIONS]             every path side by side, with memcpy and pipe\n"
"                              references measured in the same run\n"
"  explain [PATH...]           what one call of each path does to the ring\n"
"\n"
"'zcdev COMMAND --help' describes each command.\n"
"\n"
"environment:\n"
"  ZCDEV_DEV   the device to use (default /dev/zcdev)\n"
"\n"
"exit status:\n"
"  0  success\n"
"  1  runtime failure (one line on stderr says what failed)\n"
"  2  usage error\n"
"  3  device missing, not a zcdev device, or ABI version mismatch\n";

static const char info_help[] =
"usage: zcdev info [--json]\n"
"\n"
"Print the ring geometry and ABI version (ZCDEV_IOC_GET_INFO).\n"
"\n"
"  -j, --json   one JSON object\n";

static const char stats_help[] =
"usage: zcdev stats [--json]\n"
"\n"
"Print every counter the module keeps since it was loaded\n"
"(ZCDEV_IOC_GET_STATS): bytes copied by the CPU apart from bytes and pages\n"
"moved by reference, mmap traffic, page swaps, faults, pages held.\n"
"\n"
"  -j, --json   one JSON object\n";

static const char resize_help[] =
"usage: zcdev resize PAGES\n"
"\n"
"Change the ring to PAGES pages (ZCDEV_IOC_RESIZE). Fails if the unread\n"
"bytes would not fit, or above max_ring_pages (see 'zcdev info'). Mappings\n"
"of pages that no longer exist fault SIGBUS from then on; 0 tears the\n"
"whole ring down.\n";

static const char reset_help[] =
"usage: zcdev reset\n"
"\n"
"Drop every unread byte and keep the size (ZCDEV_IOC_RESET).\n";

static const char put_help[] =
"usage: zcdev put [--method M] [--chunk BYTES] [FILE]\n"
"\n"
"Stream FILE (default or '-': stdin) into the ring until its end, blocking\n"
"while the ring is full. Bytes nobody has read yet stay in the ring.\n"
"\n"
"  -m, --method M     how the bytes go in:\n"
"       write         write(2) from a buffer (default)\n"
"       mmap          read(2) straight into the mapped ring at head, then\n"
"                     ZCDEV_IOC_PRODUCE; poll(POLLOUT) waits for room\n"
"       splice        splice FILE -> pipe -> ring with SPLICE_F_MOVE, or\n"
"                     FILE -> ring directly when FILE is a pipe\n"
"       vmsplice      read into fresh page-aligned buffers, vmsplice them\n"
"                     into a pipe with SPLICE_F_GIFT and unmap them (a gift\n"
"                     is for good, so the ring may steal the pages), then\n"
"                     splice pipe -> ring with SPLICE_F_MOVE\n"
"  -c, --chunk BYTES  bytes per call, K/M/G suffixes (default 64K)\n";

static const char get_help[] =
"usage: zcdev get [--method M] [--chunk BYTES] [FILE]\n"
"\n"
"Drain the ring to FILE (default or '-': stdout) until EOF: the ring is\n"
"empty and no writer has the device open. Unlike a FIFO's reader, get does\n"
"not wait for a writer to appear: start put first, or hold a writer open\n"
"while both start, and keep it from them (an inherited writer means no EOF):\n"
"  exec 3>/dev/zcdev; zcdev get OUT 3>&- & zcdev put IN 3>&-; exec 3>&-; wait\n"
"\n"
"  -m, --method M     how the bytes come out:\n"
"       read          read(2) into a buffer, write(2) it out (default)\n"
"       mmap          write(2) straight from the mapped ring at tail, then\n"
"                     ZCDEV_IOC_CONSUME; poll(POLLIN) waits for data\n"
"       splice        splice ring -> pipe -> FILE, or ring -> FILE\n"
"                     directly when FILE is a pipe\n"
"       sendfile      sendfile(FILE, ring)\n"
"  -c, --chunk BYTES  bytes per call, K/M/G suffixes (default 64K)\n";

static const char copy_help[] =
"usage: zcdev copy SRC DST [--method M] [--chunk BYTES] [--timeout SEC]\n"
"\n"
"Copy the file SRC to DST through the ring: a producer thread puts SRC in\n"
"while a consumer thread gets it out to DST, as 'zcdev put' and 'zcdev get'\n"
"would. Starts with ZCDEV_IOC_RESET, so the copy is exactly SRC. Prints one\n"
"line: bytes, time, MB/s (10^6 bytes/s), and what the module copied versus\n"
"moved by reference (ZCDEV_IOC_GET_STATS deltas).\n"
"\n"
"  -m, --method M     a matched pair of put and get methods:\n"
"       write         write -> read (default)\n"
"       mmap          mmap -> mmap\n"
"       splice        splice -> splice\n"
"       vmsplice      vmsplice -> sendfile\n"
"       PUT:GET       any pair, e.g. write:sendfile or splice:mmap\n"
"  -c, --chunk BYTES  bytes per call, K/M/G suffixes (default 64K)\n"
"  -t, --timeout SEC  give up after SEC seconds without progress (default:\n"
"                     never)\n";

static int cmd_info(const struct cmd *c, int argc, char **argv);
static int cmd_stats(const struct cmd *c, int argc, char **argv);
static int cmd_resize(const struct cmd *c, int argc, char **argv);
static int cmd_reset(const struct cmd *c, int argc, char **argv);
static int cmd_put(const struct cmd *c, int argc, char **argv);
static int cmd_get(const struct cmd *c, int argc, char **argv);
static int cmd_copy(const struct cmd *c, int argc, char **argv);

static const struct cmd cmds[] = {
	{ "info",	cmd_info,	info_help },
	{ "stats",	cmd_stats,	stats_help },
	{ "resize",	cmd_resize,	resize_help },
	{ "reset",	cmd_reset,	reset_help },
	{ "put",	cmd_put,	put_help },
	{ "get",	cmd_get,	get_help },
	{ "copy",	cmd_copy,	copy_help },
	{ "bench",	cmd_bench,	bench_help },
	{ "explain",	cmd_explain,	explain_help },
	{ NULL }
};

/* The top level, for usage_error() before a command is known. */
static const struct cmd top = { "zcdev", NULL, main_help };

void usage_error(const struct cmd *c, const char *fmt, ...)
{
	const char *syn_end = strstr(c->help, "\n\n");
	int syn_len = syn_end ? syn_end - c->help : (int)strlen(c->help);
	bool sub = c != &top;
	va_list ap;

	fprintf(stderr, "zcdev: %s%s", sub ? c->name : "", sub ? ": " : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	/* The synopsis, the help text's first paragraph, then a pointer. */
	fprintf(stderr, "\n%.*s\nTry 'zcdev %s%s--help' for more.\n", syn_len,
		c->help, sub ? c->name : "", sub ? " " : "");
	exit(EXIT_USAGE);
}

/*
 * getopt_long() with what every command shares: the short options are
 * the longopts' letters, -h/--help prints the usage and exits 0, and a
 * bad option prints it on stderr and exits 2.
 */
int cmd_getopt(const struct cmd *c, int argc, char **argv,
	       const struct option *longopts)
{
	char shortopts[64] = ":";
	const struct option *o;
	size_t n = 1;
	int opt;

	for (o = longopts; o->name && n < sizeof(shortopts) - 3; o++) {
		if (o->flag || !isalpha(o->val))
			continue;
		shortopts[n++] = o->val;
		if (o->has_arg == required_argument)
			shortopts[n++] = ':';
	}
	shortopts[n] = '\0';
	opterr = 0;
	opt = getopt_long(argc, argv, shortopts, longopts, NULL);
	switch (opt) {
	case 'h':
		fputs(c->help, stdout);
		exit(EXIT_OK);
	case ':':
		usage_error(c, "option '%s' needs an argument", argv[optind - 1]);
	case '?':
		if (optopt)
			usage_error(c, "unknown option '-%c'", optopt);
		usage_error(c, "unknown option '%s'", argv[optind - 1]);
	}
	return opt;
}

static void no_more_args(const struct cmd *c, int argc, char **argv)
{
	if (optind < argc)
		usage_error(c, "unexpected argument '%s'", argv[optind]);
}

size_t parse_chunk(const struct cmd *c, const char *arg)
{
	uint64_t v;

	if (parse_size(arg, &v) || !v || v > (1u << 30))
		usage_error(c, "bad --chunk '%s' (1 to 1G bytes)", arg);
	return v;
}

double parse_timeout(const struct cmd *c, const char *arg)
{
	char *end;
	double v = strtod(arg, &end);

	if (end == arg || *end || !(v >= 0))
		usage_error(c, "bad --timeout '%s' (seconds)", arg);
	return v;
}

static int open_input(const char *path)
{
	int fd;

	if (!strcmp(path, "-"))
		return STDIN_FILENO;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		errmsg("%s: %s", path, strerror(errno));
	return fd;
}

int open_output(const char *path)
{
	int fd;

	if (!strcmp(path, "-"))
		return STDOUT_FILENO;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		errmsg("%s: %s", path, strerror(errno));
	return fd;
}

/* ---- info, stats ---- */

static void show_fields(bool json, const void *base, const struct field *f)
{
	struct json j = { .f = stdout };

	if (json) {
		json_begin(&j, NULL, '{');
		json_str(&j, "device", dev_path());
		json_fields(&j, base, f);
		json_end(&j, '}');
		putchar('\n');
		return;
	}
	printf("%-24s %s\n", "device", dev_path());
	for (; f->name; f++)
		printf("%-24s %llu\n", f->name,
		       (unsigned long long)field_get(base, f));
}

static const struct option json_opts[] = {
	{ "json", no_argument, NULL, 'j' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL }
};

/* info and stats: one query, shown as a table or as JSON. */
static int show_cmd(const struct cmd *c, int argc, char **argv, bool stats)
{
	struct zcdev_info info;
	struct zcdev_stats st;
	bool json = false;
	int fd, ret = EXIT_OK;

	while (cmd_getopt(c, argc, argv, json_opts) != -1)
		json = true;
	no_more_args(c, argc, argv);
	fd = dev_open(O_RDONLY, &info);
	if (fd < 0)
		return -fd;
	if (!stats) {
		show_fields(json, &info, info_fields);
	} else if (dev_stats(fd, &st)) {
		errmsg("ZCDEV_IOC_GET_STATS: %s", strerror(errno));
		ret = EXIT_FAIL;
	} else {
		show_fields(json, &st, stats_fields);
	}
	close(fd);
	return ret;
}

static int cmd_info(const struct cmd *c, int argc, char **argv)
{
	return show_cmd(c, argc, argv, false);
}

static int cmd_stats(const struct cmd *c, int argc, char **argv)
{
	return show_cmd(c, argc, argv, true);
}

/* ---- resize, reset ---- */

static const struct option help_opts[] = {
	{ "help", no_argument, NULL, 'h' },
	{ NULL }
};

static int cmd_resize(const struct cmd *c, int argc, char **argv)
{
	struct zcdev_info info;
	uint32_t pages;
	int fd, ret = EXIT_OK;

	while (cmd_getopt(c, argc, argv, help_opts) != -1)
		;
	if (optind >= argc)
		usage_error(c, "missing PAGES");
	if (parse_u32(argv[optind], &pages))
		usage_error(c, "bad page count '%s'", argv[optind]);
	optind++;
	no_more_args(c, argc, argv);
	/* Changing the ring is a write to it: the module wants FMODE_WRITE. */
	fd = dev_open(O_WRONLY, &info);
	if (fd < 0)
		return -fd;
	if (ioctl(fd, ZCDEV_IOC_RESIZE, &pages)) {
		int err = errno;

		errmsg("resize to %u pages: %s%s", pages, strerror(err),
		       err == EBUSY ? " (the unread bytes would not fit)" :
		       err == EINVAL && pages > info.max_ring_pages ?
		       " (above max_ring_pages)" : "");
		ret = EXIT_FAIL;
	}
	close(fd);
	return ret;
}

static int cmd_reset(const struct cmd *c, int argc, char **argv)
{
	struct zcdev_info info;
	int fd, ret = EXIT_OK;

	while (cmd_getopt(c, argc, argv, help_opts) != -1)
		;
	no_more_args(c, argc, argv);
	fd = dev_open(O_WRONLY, &info);
	if (fd < 0)
		return -fd;
	if (ioctl(fd, ZCDEV_IOC_RESET)) {
		errmsg("reset: %s", strerror(errno));
		ret = EXIT_FAIL;
	}
	close(fd);
	return ret;
}

/* ---- put, get, copy ---- */

/* Set the sides up, run them in threads, say what failed. */
static int transfer(struct run *run, struct side **sides, int n,
		    const struct zcdev_info *info)
{
	const char *err;
	int i, ret = 0;

	for (i = 0; i < n && !ret; i++)
		ret = side_setup(sides[i], info);
	if (!ret)
		ret = run_sides(run, sides, n);
	for (i = 0; i < n; i++)
		side_release(sides[i]);
	err = run_error(run, sides, n);
	if (!ret && !err)
		return EXIT_OK;
	errmsg("%s", err ? err : "failed");
	return EXIT_FAIL;
}

static const struct option stream_opts[] = {
	{ "method", required_argument, NULL, 'm' },
	{ "chunk", required_argument, NULL, 'c' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL }
};

static const struct option copy_opts[] = {
	{ "method", required_argument, NULL, 'm' },
	{ "chunk", required_argument, NULL, 'c' },
	{ "timeout", required_argument, NULL, 't' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL }
};

struct stream_args {
	const char *method;
	size_t chunk;
	double timeout;
};

static void stream_getopt(const struct cmd *c, int argc, char **argv,
			  const struct option *opts, struct stream_args *a)
{
	int opt;

	a->chunk = DEFAULT_CHUNK;
	a->timeout = 0;
	while ((opt = cmd_getopt(c, argc, argv, opts)) != -1) {
		switch (opt) {
		case 'm':
			a->method = optarg;
			break;
		case 'c':
			a->chunk = parse_chunk(c, optarg);
			break;
		case 't':
			a->timeout = parse_timeout(c, optarg);
			break;
		}
	}
}

static int lookup_or_die(const struct cmd *c, const char *const *names,
			 int nr, const char *name)
{
	int m = method_lookup(names, nr, name);

	if (m < 0)
		usage_error(c, "unknown method '%s'", name);
	return m;
}

static int put_or_get(const struct cmd *c, int argc, char **argv, bool put)
{
	struct run run = { .label = c->name, .progress = progress_wanted() };
	struct stream_args a = { .method = put ? "write" : "read" };
	struct zcdev_info info;
	struct side s, *sides[] = { &s };
	const char *path;
	int method, io, fd, ret;

	stream_getopt(c, argc, argv, stream_opts, &a);
	method = put ? lookup_or_die(c, put_names, PUT_USER_NR, a.method)
		     : lookup_or_die(c, get_names, GET_NR, a.method);
	path = optind < argc ? argv[optind++] : "-";
	no_more_args(c, argc, argv);

	io = put ? open_input(path) : open_output(path);
	if (io < 0)
		return EXIT_FAIL;
	fd = dev_open(put ? put_open_flags(method) : O_RDONLY, &info);
	if (fd < 0)
		return -fd;
	side_init(&s, put, method, fd, dev_path(), a.chunk);
	if (put) {
		s.src.fd = io;
	} else {
		s.snk.fd = io;
		s.snk.keep = true;
	}
	ret = transfer(&run, sides, 1, &info);
	if (io > STDERR_FILENO)
		close(io);
	return ret;
}

static int cmd_put(const struct cmd *c, int argc, char **argv)
{
	return put_or_get(c, argc, argv, true);
}

static int cmd_get(const struct cmd *c, int argc, char **argv)
{
	return put_or_get(c, argc, argv, false);
}

static const struct copy_pair {
	const char *name;
	int put, get;
} copy_pairs[] = {
	{ "write",	PUT_WRITE,	GET_READ },
	{ "mmap",	PUT_MMAP,	GET_MMAP },
	{ "splice",	PUT_SPLICE,	GET_SPLICE },
	{ "vmsplice",	PUT_VMSPLICE,	GET_SENDFILE },
	{ NULL }
};

/* A pair name from the table, or PUT:GET. */
static void copy_methods(const struct cmd *c, const char *name, int *put,
			 int *get)
{
	const struct copy_pair *p;
	char buf[32];
	char *colon;

	for (p = copy_pairs; p->name; p++) {
		if (!strcmp(p->name, name)) {
			*put = p->put;
			*get = p->get;
			return;
		}
	}
	snprintf(buf, sizeof(buf), "%s", name);
	colon = strchr(buf, ':');
	if (!colon)
		usage_error(c, "unknown method '%s'", name);
	*colon = '\0';
	*put = lookup_or_die(c, put_names, PUT_USER_NR, buf);
	*get = lookup_or_die(c, get_names, GET_NR, colon + 1);
}

static void copy_report(const char *src, const char *dst, struct side *prod,
			struct side *cons, const struct zcdev_stats *d)
{
	struct side *sides[] = { prod, cons };
	uint64_t bytes = atomic_load(&cons->bytes);
	double secs = sides_elapsed(sides, 2);

	printf("%s -> %s: %llu bytes in %.3f s, %.1f MB/s, put %s, get %s; "
	       "zcdev copied %llu, by reference %llu, in place %llu bytes, "
	       "%llu pages stolen, %llu page swaps\n",
	       src, dst, (unsigned long long)bytes, secs,
	       secs > 0 ? bytes / secs / 1e6 : 0.0,
	       put_names[prod->method], get_names[cons->method],
	       (unsigned long long)stats_copied(d),
	       (unsigned long long)stats_by_ref(d),
	       (unsigned long long)stats_in_place(d),
	       (unsigned long long)d->pages_stolen_in,
	       (unsigned long long)d->page_swaps);
}

static int cmd_copy(const struct cmd *c, int argc, char **argv)
{
	struct run run = { .label = c->name, .progress = progress_wanted() };
	struct stream_args a = { .method = "write" };
	struct zcdev_stats st0, st1, d;
	struct zcdev_info info;
	struct side prod, cons, *sides[] = { &prod, &cons };
	const char *src, *dst;
	int put, get, in, out, ctl, pfd, cfd, ret = EXIT_FAIL;

	stream_getopt(c, argc, argv, copy_opts, &a);
	run.timeout = a.timeout;
	copy_methods(c, a.method, &put, &get);
	if (argc - optind != 2)
		usage_error(c, "need SRC and DST");
	src = argv[optind];
	dst = argv[optind + 1];
	if (!strcmp(dst, "-"))
		usage_error(c, "DST must be a file: the report goes to stdout");

	ctl = dev_open(O_RDONLY, &info);
	if (ctl < 0)
		return -ctl;
	in = open_input(src);
	out = in < 0 ? -1 : open_output(dst);
	if (out < 0)
		goto close_in;
	/* The writer opens first, so the reader cannot see EOF early. */
	pfd = dev_open_writer(put_open_flags(put), &info);
	cfd = pfd < 0 ? pfd : dev_open(O_RDONLY, &info);
	if (cfd < 0) {
		if (pfd >= 0)
			close(pfd);
		ret = -cfd;
		goto close_out;
	}
	if (dev_stats(ctl, &st0)) {
		errmsg("ZCDEV_IOC_GET_STATS: %s", strerror(errno));
		close(pfd);
		close(cfd);
		goto close_out;
	}
	side_init(&prod, true, put, pfd, dev_path(), a.chunk);
	prod.src.fd = in;
	side_init(&cons, false, get, cfd, dev_path(), a.chunk);
	cons.snk.fd = out;
	cons.snk.keep = true;
	ret = transfer(&run, sides, 2, &info);
	if (ret == EXIT_OK) {
		if (dev_stats(ctl, &st1)) {
			errmsg("ZCDEV_IOC_GET_STATS: %s", strerror(errno));
			ret = EXIT_FAIL;
		} else {
			stats_delta(&st0, &st1, &d);
			copy_report(src, dst, &prod, &cons, &d);
		}
	}
close_out:
	if (out > STDERR_FILENO && close(out) && ret == EXIT_OK) {
		errmsg("%s: %s", dst, strerror(errno));
		ret = EXIT_FAIL;
	}
close_in:
	if (in > STDERR_FILENO)
		close(in);
	close(ctl);
	return ret;
}

/* ---- main ---- */

static void on_sigbus(int sig)
{
	static const char msg[] =
		"zcdev: SIGBUS: a ring page went away under the mapping (resize or teardown)\n";

	(void)sig;
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
		_exit(EXIT_FAIL);
	_exit(EXIT_FAIL);
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_sigbus };
	const struct cmd *c;

	if (argc < 2)
		usage_error(&top, "missing COMMAND");
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fputs(main_help, stdout);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		printf("zcdev %s\n", ZCDEV_VERSION);
		return EXIT_OK;
	}
	for (c = cmds; c->name; c++)
		if (!strcmp(c->name, argv[1]))
			break;
	if (!c->name) {
		if (argv[1][0] == '-')
			usage_error(&top, "unknown option '%s'", argv[1]);
		usage_error(&top, "unknown command '%s'", argv[1]);
	}
	sigaction(SIGBUS, &sa, NULL);
	return c->fn(c, argc - 1, argv + 1);
}
