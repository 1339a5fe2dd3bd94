// SPDX-License-Identifier: GPL-2.0
/*
 * zcdev(1): the commands other than bench. Each one checks everything it
 * can before it changes anything: the device before a file it would
 * truncate, an output before a byte leaves the ring.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmds.h"

const char info_help[] =
"usage: zcdev info [--json]\n"
"\n"
"Print the ring geometry and ABI version (ZCDEV_IOC_GET_INFO): the ring's\n"
"number, its pages and bytes, and max_total_pages, the bound on the pages\n"
"of all rings together. When there are several rings, a last line (a\n"
"\"rings\" array in JSON) lists their numbers.\n"
"\n"
"  -j, --json   one JSON object\n";

const char stats_help[] =
"usage: zcdev stats [--json]\n"
"\n"
"Print every counter the module keeps since it was loaded\n"
"(ZCDEV_IOC_GET_STATS): bytes copied by the CPU apart from bytes and pages\n"
"moved by reference, mmap traffic, page swaps, faults, pages held.\n"
"\n"
"  -j, --json   one JSON object\n";

const char resize_help[] =
"usage: zcdev resize PAGES\n"
"\n"
"Change the ring to PAGES pages (ZCDEV_IOC_RESIZE). Fails if the unread\n"
"bytes would not fit, above max_ring_pages, or if the pages of all rings\n"
"together would pass max_total_pages (see 'zcdev info'). Mappings of pages\n"
"that no longer exist fault SIGBUS from then on; 0 tears the whole ring\n"
"down.\n";

const char reset_help[] =
"usage: zcdev reset\n"
"\n"
"Drop every unread byte and keep the size (ZCDEV_IOC_RESET).\n";

const char put_help[] =
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
"                     into a pipe with SPLICE_F_GIFT and unmap them, then\n"
"                     splice pipe -> ring with SPLICE_F_MOVE; the ring copies\n"
"                     gifted pages (anonymous memory it never steals)\n"
"       uring         io_uring IORING_OP_WRITE from a buffer, one request\n"
"                     at a time: it completes inline, or waits by poll\n"
"                     while the ring is full, never on a worker thread\n"
"  -c, --chunk BYTES  bytes per call, K/M/G suffixes (default 64K)\n"
"\n"
"put takes the producer's claim on the ring (see 'zcdev copy --help'): a\n"
"second put, or a copy, fails until it is done.\n";

const char get_help[] =
"usage: zcdev get [--method M] [--chunk BYTES] [--tee-to FILE2]\n"
"                 [--to HOST:PORT | FILE]\n"
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
"       tee           FILE and FILE2 both get every byte: splice ring ->\n"
"                     pipe, tee(2) that pipe into a second one (references\n"
"                     to the same pages, no copy), splice each pipe to its\n"
"                     output\n"
"       uring         io_uring IORING_OP_READ into a buffer, write(2) it\n"
"                     out; one request at a time: it completes inline, or\n"
"                     waits by poll while the ring is empty, never on a\n"
"                     worker thread\n"
"       zerocopy      send(2) with MSG_ZEROCOPY straight from the mapped\n"
"                     ring at tail to a TCP socket (--to, or a socket as\n"
"                     standard output) with SO_ZEROCOPY set, then\n"
"                     ZCDEV_IOC_CONSUME of what send() took, at once: the\n"
"                     module keeps a page the socket still holds. Waits for\n"
"                     the completions (a second at most after a stop)\n"
"  -c, --chunk BYTES  bytes per call, K/M/G suffixes (default 64K)\n"
"  -T, --tee-to FILE2 the second output of --method tee (needed by it, and\n"
"                     only by it); created as FILE is, never '-'\n"
"      --to HOST:PORT the output is a TCP connection to HOST:PORT\n"
"                     ([ADDR]:PORT for IPv6) instead of FILE, any method;\n"
"                     a statically linked zcdev takes an address or\n"
"                     localhost, not a name. At the end get reads and drops\n"
"                     what the peer sent and waits until it has acknowledged\n"
"                     every byte (a signal ends the wait)\n"
"\n"
"FILE is created: an existing regular FILE is refused (exit 1, nothing is\n"
"taken), never truncated; an existing FIFO or device is written. To replace\n"
"or append to a file, let the shell open it: 'zcdev get > F', '>> F'.\n"
"Standard output is written at its offset and never truncated.\n"
"\n"
"The device is checked before FILE is touched, and FILE before any byte\n"
"leaves the ring: a closed or full output fails at once. get takes no byte\n"
"the output cannot take: a pipe needs a reader (EPIPE), a file is held to\n"
"its size limit (EFBIG) and read and splice reserve its space first\n"
"(ENOSPC); mmap releases exactly what a write took. SIGINT, SIGTERM and\n"
"SIGHUP stop it between two calls. Stopped early, it exits 1 and says how\n"
"many bytes it wrote (the rest is still in the ring) and how many, if\n"
"any, were lost. An output open for appending ('>>') is written with\n"
"write(2): splice and sendfile cannot append. get takes the consumer's\n"
"claim on the ring.\n"
"\n"
"With --to, the connection is made after the device is checked and\n"
"before a byte leaves the ring: a destination that is refused or cannot\n"
"be resolved fails (exit 1) with nothing taken; a peer that goes away is\n"
"EPIPE.\n"
"\n"
"With zerocopy, the kernel reports each send's completion on the\n"
"socket's error queue, marked as copied (SO_EE_CODE_ZEROCOPY_COPIED) when\n"
"it could not send from the pages (a loopback peer always gets a copy).\n"
"get reads them as it goes and waits for the last one before it ends (a\n"
"second at most when stopped), then says on stderr how many sends there\n"
"were, how many completed and how many of those the kernel copied.\n"
"\n"
"With tee, both outputs are checked before a byte leaves the ring, and\n"
"every byte taken goes to both. If one output fails, the other still gets\n"
"every byte taken, get exits 1 and says, for each output, how many bytes\n"
"it wrote there and how many that output lost. Neither may be open for\n"
"appending (splice cannot append there).\n";

const char copy_help[] =
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
"       uring         uring -> uring (io_uring write, io_uring read)\n"
"       PUT:GET       any pair, e.g. write:sendfile or splice:mmap (not\n"
"                     tee or zerocopy, which only get has)\n"
"  -c, --chunk BYTES  bytes per call, K/M/G suffixes (default 64K)\n"
"  -t, --timeout SEC  give up (exit 1) after SEC seconds, whatever copy is\n"
"                     doing, opening SRC or DST included (default: never)\n"
"\n"
"copy needs the device alone: it takes the producer's and the consumer's\n"
"claims (another put, get, copy or bench fails while it runs, and it fails\n"
"if one runs), and it fails (exit 1) if the module's counters show that\n"
"anything else put bytes into the ring or took bytes out during the copy,\n"
"or if the bytes out differ from the bytes put: DST is then not a copy.\n"
"It stops once it has every byte it put, even if another process holds\n"
"the device open for writing. SRC and DST must be different files, and\n"
"neither may be the device; DST is left alone until the device and SRC\n"
"have been checked.\n";

/* One JSON member per field. */
void json_fields(struct json *j, const void *base, const struct zcdev_field *f)
{
	for (; f->name; f++)
		json_u64(j, f->name, zcdev_field_get(base, f));
}

static void no_more_args(const struct cmd *c, int argc, char **argv)
{
	if (optind < argc)
		usage_error(c, "unexpected argument '%s'", argv[optind]);
}

/* ---- info, stats ---- */

static void show_fields(bool json, const void *base,
			const struct zcdev_field *f, bool rings)
{
	struct json j = { .f = stdout };

	if (json) {
		json_begin(&j, NULL, '{');
		json_str(&j, "device", dev_path());
		json_fields(&j, base, f);
		if (rings)
			show_rings(&j);
		json_end(&j, '}');
		putchar('\n');
		return;
	}
	printf("%-24s %s\n", "device", dev_path());
	for (; f->name; f++)
		printf("%-24s %llu\n", f->name,
		       (unsigned long long)zcdev_field_get(base, f));
	if (rings)
		show_rings(NULL);
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
	int fd, ret = EXIT_OK, err;

	while (cmd_getopt(c, argc, argv, json_opts) != -1)
		json = true;
	no_more_args(c, argc, argv);
	fd = dev_open(O_RDONLY, &info);
	if (fd < 0)
		return -fd;
	if (!stats) {
		show_fields(json, &info, zcdev_info_fields, true);
	} else if ((err = zcdev_get_stats(fd, &st))) {
		errmsg("ZCDEV_IOC_GET_STATS: %s", strerror(-err));
		ret = EXIT_FAIL;
	} else {
		show_fields(json, &st, zcdev_stats_fields, false);
	}
	close(fd);
	return ret;
}

int cmd_info(const struct cmd *c, int argc, char **argv)
{
	return show_cmd(c, argc, argv, false);
}

int cmd_stats(const struct cmd *c, int argc, char **argv)
{
	return show_cmd(c, argc, argv, true);
}

/* ---- resize, reset ---- */

static const struct option help_opts[] = {
	{ "help", no_argument, NULL, 'h' },
	{ NULL }
};

int cmd_resize(const struct cmd *c, int argc, char **argv)
{
	struct zcdev_info info;
	uint32_t pages;
	int fd, err, ret = EXIT_OK;

	/* "-1" is a bad page count, not an option. */
	if (argc > 1 && argv[1][0] == '-' && argv[1][1] >= '0' &&
	    argv[1][1] <= '9')
		usage_error(c, "bad page count '%s' (0 to max_ring_pages)",
			    argv[1]);
	while (cmd_getopt(c, argc, argv, help_opts) != -1)
		;
	if (optind >= argc)
		usage_error(c, "missing PAGES");
	if (parse_u32(argv[optind], &pages))
		usage_error(c, "bad page count '%s' (0 to max_ring_pages)",
			    argv[optind]);
	optind++;
	no_more_args(c, argc, argv);
	/* Changing the ring is a write to it: the module wants FMODE_WRITE. */
	fd = dev_open(O_WRONLY, &info);
	if (fd < 0)
		return -fd;
	err = zcdev_resize(fd, pages);
	if (err) {
		errmsg("resize to %u pages: %s%s", pages, strerror(-err),
		       err == -EBUSY ? " (the unread bytes would not fit)" :
		       err == -EINVAL && pages > info.max_ring_pages ?
		       " (above max_ring_pages)" :
		       err == -ENOSPC ? " (the rings' pages together would pass max_total_pages)" :
		       "");
		ret = EXIT_FAIL;
	}
	close(fd);
	return ret;
}

int cmd_reset(const struct cmd *c, int argc, char **argv)
{
	struct zcdev_info info;
	int fd, err, ret = EXIT_OK;

	while (cmd_getopt(c, argc, argv, help_opts) != -1)
		;
	no_more_args(c, argc, argv);
	fd = dev_open(O_WRONLY, &info);
	if (fd < 0)
		return -fd;
	err = zcdev_reset(fd);
	if (err) {
		errmsg("reset: %s", strerror(-err));
		ret = EXIT_FAIL;
	}
	close(fd);
	return ret;
}

/* ---- the files put, get and copy read and write ---- */

static double cmd_timeout;

/* What stopped the command: a signal, or --timeout. */
static const char *stop_reason(char *buf, size_t len)
{
	int sig = atomic_load(&xfer_signal);

	if (sig == SIGALRM)
		snprintf(buf, len, "timed out after %g s (--timeout)", cmd_timeout);
	else
		snprintf(buf, len, "stopped by %s", sig == SIGINT ? "SIGINT" :
			 sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" :
			 "a signal");
	return buf;
}

/* A torn-down ring moves nothing: say so instead of ENOSPC or ENOBUFS. */
static int ring_usable(const struct cmd *c, const struct zcdev_info *info)
{
	if (info->ring_pages)
		return 0;
	errmsg("%s: the ring has 0 pages (torn down): 'zcdev resize PAGES' gives it pages again",
	       c->name);
	return -1;
}

/* Why an open failed: a blocked open (a FIFO) is broken by a stop. */
static const char *open_error(void)
{
	static char buf[64];

	if (errno == EINTR && atomic_load(&xfer_signal))
		return stop_reason(buf, sizeof(buf));
	return strerror(errno);
}

/*
 * SRC (or stdin) for a producer: readable, not a directory, not the
 * device itself (which would feed the ring its own bytes for ever).
 */
static int open_input(const char *path, int dev)
{
	bool std = !strcmp(path, "-");
	const char *name = std ? "standard input" : path;
	struct stat st;
	int fd, fl;

	fd = std ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		errmsg("%s: %s", path, open_error());
		return -1;
	}
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || (fl & O_ACCMODE) == O_WRONLY) {
		/* main() holds a closed fd 0 with a descriptor nobody can read. */
		errmsg("%s is closed", name);
		goto fail;
	}
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		errmsg("%s: %s", name, strerror(EISDIR));
		goto fail;
	}
	if (zcdev_same_file(dev, fd)) {
		errmsg("%s is the device itself", name);
		goto fail;
	}
	return fd;
fail:
	if (!std)
		close(fd);
	return -1;
}

/*
 * Make sure an output can take bytes before the first one leaves the
 * ring: a zero-length write fails on a closed descriptor, one open only
 * for reading, and /dev/full; the device itself is refused.
 */
static int check_output(int fd, const char *name, int dev)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || (fl & O_ACCMODE) == O_RDONLY) {
		errmsg("%s is closed (nothing was taken from the ring)", name);
		return -1;
	}
	if (zcdev_same_file(dev, fd)) {
		errmsg("%s is the device itself", name);
		return -1;
	}
	if (write(fd, "", 0) < 0) {
		errmsg("%s: %s (nothing was taken from the ring)", name,
		       strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * DST for a consumer, opened without O_TRUNC: copy truncates it only once
 * everything has been checked (see truncate_output()). With create_only
 * (get FILE), an existing regular file is refused, never overwritten;
 * an existing FIFO, device or socket is written as it is. *made (when
 * not NULL) says whether this call created the file.
 */
static int open_output(const char *path, int dev, bool create_only,
		       bool *made)
{
	bool std = !strcmp(path, "-");
	const char *name = std ? "standard output" : path;
	bool created = false;
	struct stat st;
	int fd;

	if (made)
		*made = false;

	if (std) {
		fd = STDOUT_FILENO;
	} else {
		if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
			errmsg("%s: %s", path, strerror(EISDIR));
			return -1;
		}
		fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC |
			  (create_only ? O_EXCL : 0), 0644);
		if (fd >= 0)
			created = create_only;
		else if (create_only && errno == EEXIST)
			fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0) {
			errmsg("%s: %s", path, open_error());
			return -1;
		}
		if (create_only && !created && fstat(fd, &st) == 0 &&
		    S_ISREG(st.st_mode)) {
			errmsg("%s exists: get FILE writes only a file it creates (nothing was taken from the ring); to replace it: zcdev get > %s; to append: zcdev get >> %s",
			       path, path, path);
			close(fd);
			return -1;
		}
	}
	if (check_output(fd, name, dev)) {
		if (!std)
			close(fd);
		return -1;
	}
	if (made)
		*made = created;
	return fd;
}

static int truncate_output(int fd, const char *name)
{
	struct stat st;

	if (fstat(fd, &st) || !S_ISREG(st.st_mode) ||
	    (fcntl(fd, F_GETFL) & O_APPEND))
		return 0;
	if (ftruncate(fd, 0) == 0)
		return 0;
	errmsg("%s: %s", name, strerror(errno));
	return -1;
}

/* splice and sendfile refuse an output open for appending: write it instead. */
static int get_method_for(int method, int out, const char *name)
{
	int fl = fcntl(out, F_GETFL);

	if ((method != GET_SPLICE && method != GET_SENDFILE) || fl < 0 ||
	    !(fl & O_APPEND) || is_pipe(out))
		return method;
	errmsg("note: %s is open for appending, which %s(2) cannot write: using read and write(2)",
	       name, get_names[method]);
	return GET_READ;
}

/* The claims of the mmap protocol, taken before anything is changed. */
static int claim(int fd, enum zcdev_role role)
{
	int err = zcdev_claim(fd, role);

	if (!err)
		return 0;
	if (err == -EBUSY)
		errmsg("%s: another %s holds the ring (one producer and one consumer at a time): %s",
		       dev_path(), role == ZCDEV_PRODUCER ? "producer" : "consumer",
		       strerror(-err));
	else
		errmsg("%s: claim: %s", dev_path(), strerror(-err));
	return -1;
}

/* ---- put, get, copy ---- */

/* get tee's accounting: each output's, then what the ring still has. */
static void tee_report(const struct side *s)
{
	const struct sink *k[2] = { &s->snk, &s->snk2 };
	uint64_t out[2] = { atomic_load(&s->bytes), s->bytes2 };
	uint64_t lost[2] = { s->lost, s->lost2 };
	int i;

	for (i = 0; i < 2; i++) {
		if (lost[i])
			errmsg("%llu bytes taken from the ring were lost to %s: they never reached it (%llu bytes were written there)",
			       (unsigned long long)lost[i], k[i]->name,
			       (unsigned long long)out[i]);
		else
			errmsg("%llu bytes were written to %s; it lost nothing",
			       (unsigned long long)out[i], k[i]->name);
	}
	errmsg("%llu bytes were taken from the ring; the rest is still in it",
	       (unsigned long long)(out[0] + lost[0]));
}

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
	if (atomic_load(&xfer_signal)) {
		char why[64];

		errmsg("%s", stop_reason(why, sizeof(why)));
		/* A failure of its own, not the stop's victim, too. */
		for (i = 0; i < n; i++)
			if (sides[i]->failed && !sides[i]->canceled)
				errmsg("%s", sides[i]->err);
	} else {
		errmsg("%s", err ? err : "failed");
	}
	/* What the consumer did with the bytes it took: the accounting. */
	for (i = 0; i < n; i++) {
		struct side *s = sides[i];
		uint64_t out = atomic_load(&s->bytes);

		if (s->put || !s->snk.keep)
			continue;
		if (s->method == GET_TEE) {
			tee_report(s);
			continue;
		}
		if (s->lost)
			errmsg("%llu bytes taken from the ring were lost: they never reached the output (%llu bytes were written)",
			       (unsigned long long)s->lost, (unsigned long long)out);
		else
			errmsg("%llu bytes were written; nothing was lost: what was not written is still in the ring",
			       (unsigned long long)out);
	}
	return EXIT_FAIL;
}

static const struct option stream_opts[] = {
	{ "method", required_argument, NULL, 'm' },
	{ "chunk", required_argument, NULL, 'c' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL }
};

/* --to has no letter: 'get -t' would read as copy's --timeout. */
#define OPT_TO	1

static const struct option get_opts[] = {
	{ "method", required_argument, NULL, 'm' },
	{ "chunk", required_argument, NULL, 'c' },
	{ "tee-to", required_argument, NULL, 'T' },
	{ "to", required_argument, NULL, OPT_TO },
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
	const char *tee_to;	/* get --tee-to */
	const char *to;		/* get --to HOST:PORT */
};

static void stream_getopt(const struct cmd *c, int argc, char **argv,
			  const struct option *opts, struct stream_args *a)
{
	char host[256], port[16];
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
		case 'T':
			a->tee_to = optarg;
			break;
		case OPT_TO:
			if (hostport_split(optarg, host, sizeof(host), port,
					   sizeof(port)))
				usage_error(c, "bad --to '%s' (HOST:PORT, or [ADDR]:PORT for IPv6; PORT 1 to 65535)",
					    optarg);
			a->to = optarg;
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

/* A method this zcdev was built without: say so before touching anything. */
static int method_missing(const struct cmd *c, int put, int get)
{
	if ((put != PUT_URING && get != GET_URING) || zuring_built())
		return 0;
	errmsg("%s: --method uring: this zcdev was built without io_uring (liburing was missing when it was built: install liburing-dev and build it again)",
	       c->name);
	return -1;
}

/*
 * get --to: a TCP connection, made once the device is known good and
 * checked as any output is before a byte leaves the ring.
 */
static int open_tcp_output(const char *to, int dev)
{
	char err[320], why[64];
	int fd = tcp_connect(to, err, sizeof(err));

	if (fd < 0) {
		if (errno == EINTR && atomic_load(&xfer_signal))
			errmsg("connect to %s: %s", to, stop_reason(why, sizeof(why)));
		else
			errmsg("%s (nothing was taken from the ring)", err);
		return -1;
	}
	if (check_output(fd, to, dev)) {
		close(fd);
		return -1;
	}
	return fd;
}

static bool stop_signalled(void)
{
	return atomic_load(&xfer_signal) != 0;
}

static bool stop_now(void)
{
	return true;
}

/*
 * get --to's end: what the peer sent is read and dropped (a close() with
 * unread bytes would reset the connection and lose what the socket still
 * had to send), and after a transfer that went well, get waits until the
 * peer has acknowledged every byte, or a signal stops it. Returns ret, or
 * EXIT_FAIL when that wait failed or was stopped.
 */
static int tcp_output_end(int fd, const char *to, int ret)
{
	uint64_t unacked = 0;
	char why[64];
	int r = tcp_finish(fd, ret == EXIT_OK ? stop_signalled : stop_now,
			   &unacked);

	if (r < 0) {
		errmsg("%s: %s: %llu bytes sent were not acknowledged and may be lost",
		       to, strerror(errno), (unsigned long long)unacked);
		return EXIT_FAIL;
	}
	if (!r || !unacked)
		return ret;
	if (ret == EXIT_OK) {
		errmsg("%s", stop_reason(why, sizeof(why)));
		ret = EXIT_FAIL;
	}
	errmsg("%s had not acknowledged %llu of the bytes sent when get %s: the connection still delivers them unless the peer resets it",
	       to, (unsigned long long)unacked,
	       stop_signalled() ? "stopped" : "ended");
	return ret;
}

/* get zerocopy's count of its sends, on stderr whatever the outcome. */
static void zc_report(const struct side *s)
{
	const struct zc_count *z = &s->zc;
	char plain[128] = "";

	if (z->plain)
		snprintf(plain, sizeof(plain),
			 "; %llu plain sends (ENOBUFS with none outstanding: see net.core.optmem_max)",
			 (unsigned long long)z->plain);
	errmsg("get --method zerocopy: %llu sends, %llu completed, %llu of them copied by the kernel%s%s",
	       (unsigned long long)z->sends, (unsigned long long)z->done,
	       (unsigned long long)z->copied,
	       z->done < z->sends ? "; the rest had not completed when get stopped" : "",
	       plain);
}

/*
 * Remove @path, which this get created, only if it is still the file @fd
 * has open: opening a FIFO can block for as long as its reader waits,
 * and meanwhile the name may have come to mean somebody else's file.
 */
static void unlink_made(const char *path, int fd)
{
	struct stat a, b;

	if (!lstat(path, &a) && !fstat(fd, &b) && a.st_dev == b.st_dev &&
	    a.st_ino == b.st_ino)
		unlink(path);
}

/*
 * get --method tee's outputs: FILE2 is opened after FILE and both are
 * checked before a byte leaves the ring; if FILE2 is refused, a FILE
 * this get created is removed again, so that bad input changes nothing.
 */
static int open_tee_output(const char *path, const char *name,
			   const char *path2, int io, bool made, int dev)
{
	int fl = fcntl(io, F_GETFL), io2 = -1;
	bool made2;
	struct stat st;

	/* FILE2 is opened here without O_APPEND: only FILE can have it. */
	if (fl >= 0 && (fl & O_APPEND) && !is_pipe(io)) {
		errmsg("%s is open for appending, which splice(2) cannot write: tee needs outputs splice can write (nothing was taken from the ring)",
		       name);
		goto refused;
	}
	io2 = open_output(path2, dev, true, &made2);
	if (io2 >= 0 && zcdev_same_file(io, io2) && !fstat(io, &st) &&
	    !S_ISCHR(st.st_mode)) {
		/* Two writers of one file or FIFO would interleave the copies. */
		errmsg("%s and %s are the same file (nothing was taken from the ring)",
		       name, path2);
		if (made2)
			unlink_made(path2, io2);
		close(io2);
		io2 = -1;
	}
refused:
	if (io2 < 0 && made)
		unlink_made(path, io);
	return io2;
}

static int put_or_get(const struct cmd *c, int argc, char **argv, bool put)
{
	struct run run = { .label = c->name, .progress = progress_wanted() };
	struct stream_args a = { .method = put ? "write" : "read" };
	struct zcdev_info info;
	struct side s, *sides[] = { &s };
	const char *path, *name;
	int method, io, io2 = -1, fd, ret;
	bool made = false;

	stream_getopt(c, argc, argv, put ? stream_opts : get_opts, &a);
	method = put ? lookup_or_die(c, put_names, PUT_USER_NR, a.method)
		     : lookup_or_die(c, get_names, GET_NR, a.method);
	path = optind < argc ? argv[optind++] : "-";
	no_more_args(c, argc, argv);
	if (a.to && strcmp(path, "-"))
		usage_error(c, "FILE '%s' and --to are two outputs: give one", path);
	if (!put && method == GET_ZEROCOPY && !a.to && strcmp(path, "-"))
		usage_error(c, "--method zerocopy sends on a TCP socket: give --to HOST:PORT (FILE cannot be one)");
	if (!put && method == GET_TEE && !a.tee_to)
		usage_error(c, "--method tee needs --tee-to FILE2");
	if (!put && method != GET_TEE && a.tee_to)
		usage_error(c, "--tee-to is for --method tee");
	/* Standard output is FILE's default; FILE2 is always a name. */
	if (a.tee_to && !strcmp(a.tee_to, "-"))
		usage_error(c, "--tee-to needs a file: '-' is FILE's standard output");
	name = a.to ? a.to : strcmp(path, "-") ? path :
	       put ? "standard input" : "standard output";
	if (method_missing(c, put ? method : -1, put ? -1 : method))
		return EXIT_FAIL;
	stream_signals();

	/* The device first: a missing module must not cost FILE its bytes. */
	fd = dev_open(put ? put_open_flags(method) : O_RDONLY, &info);
	if (fd < 0)
		return -fd;
	ret = EXIT_FAIL;
	if (ring_usable(c, &info) ||
	    claim(fd, put ? ZCDEV_PRODUCER : ZCDEV_CONSUMER))
		goto close_fd;
	if (put)
		io = open_input(path, fd);
	else if (a.to)
		io = open_tcp_output(a.to, fd);
	else
		io = open_output(path, fd, true, &made);
	if (io < 0)
		goto close_fd;
	if (!put && method == GET_ZEROCOPY && !is_tcp_socket(io)) {
		errmsg("%s is not a TCP socket: --method zerocopy sends on one (--to HOST:PORT; nothing was taken from the ring)",
		       name);
		goto close_io;
	}
	if (!put && method == GET_TEE) {
		io2 = open_tee_output(path, name, a.tee_to, io, made, fd);
		if (io2 < 0)
			goto close_io;
	}
	/* get writes at the output's offset and truncates nothing. */
	if (!put)
		method = get_method_for(method, io, name);
	side_init(&s, put, method, fd, dev_path(), a.chunk);
	if (put) {
		s.src.fd = io;
	} else {
		s.snk.fd = io;
		s.snk.keep = true;
		/* Two outputs, or a connection: messages say which. */
		s.snk.name = io2 >= 0 || a.to ? name : NULL;
		s.snk2.fd = io2;
		s.snk2.keep = io2 >= 0;
		s.snk2.name = a.tee_to;
	}
	fd = -1;	/* the side closes it */
	ret = transfer(&run, sides, 1, &info);
	if (!put && method == GET_ZEROCOPY)
		zc_report(&s);
	if (a.to)
		ret = tcp_output_end(io, a.to, ret);
	if (io2 >= 0)
		close(io2);
close_io:
	if (io > STDERR_FILENO)
		close(io);
close_fd:
	if (fd >= 0)
		close(fd);
	return ret;
}

int cmd_put(const struct cmd *c, int argc, char **argv)
{
	return put_or_get(c, argc, argv, true);
}

int cmd_get(const struct cmd *c, int argc, char **argv)
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
	{ "uring",	PUT_URING,	GET_URING },
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
	if (*get == GET_TEE)
		usage_error(c, "copy has one output: tee is for 'zcdev get --method tee'");
	if (*get == GET_ZEROCOPY)
		usage_error(c, "DST is a file: zerocopy sends on a TCP socket ('zcdev get --method zerocopy --to HOST:PORT')");
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
	       (unsigned long long)zcdev_stats_copied(d),
	       (unsigned long long)zcdev_stats_by_ref(d),
	       (unsigned long long)zcdev_stats_in_place(d),
	       (unsigned long long)d->pages_stolen_in,
	       (unsigned long long)d->page_swaps);
}

/*
 * DST is a copy only if every byte put came out and nothing else used the
 * ring meanwhile: the module's counters see every path, ours included.
 */
static int copy_verify(const char *dst, struct side *prod, struct side *cons,
		       const struct zcdev_stats *d)
{
	uint64_t put = atomic_load(&prod->bytes), got = atomic_load(&cons->bytes);
	uint64_t in = zcdev_stats_in(d), out = zcdev_stats_out(d);

	if (put == got && in == put && out == got)
		return 0;
	errmsg("%s is not a copy: %llu bytes put, %llu bytes out; the ring took %llu and gave %llu bytes meanwhile: another process used the device (copy needs the device alone)",
	       dst, (unsigned long long)put, (unsigned long long)got,
	       (unsigned long long)in, (unsigned long long)out);
	return -1;
}

static bool same_file(int fd, const char *path)
{
	struct stat a, b;

	return !fstat(fd, &a) && !stat(path, &b) &&
	       a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

int cmd_copy(const struct cmd *c, int argc, char **argv)
{
	struct run run = { .label = c->name, .progress = progress_wanted() };
	struct stream_args a = { .method = "write" };
	struct zcdev_stats st0, st1, d;
	struct zcdev_info info;
	struct side prod, cons, *sides[] = { &prod, &cons };
	const char *src, *dst;
	int put, get, in = -1, out = -1, ctl, pfd = -1, cfd = -1, err;
	int ret = EXIT_FAIL;

	stream_getopt(c, argc, argv, copy_opts, &a);
	copy_methods(c, a.method, &put, &get);
	if (argc - optind != 2)
		usage_error(c, "need SRC and DST");
	src = argv[optind];
	dst = argv[optind + 1];
	if (!strcmp(dst, "-"))
		usage_error(c, "DST must be a file: the report goes to stdout");
	if (method_missing(c, put, get))
		return EXIT_FAIL;
	/* --timeout bounds the whole command: the opens of a FIFO too. */
	stream_signals();
	cmd_timeout = a.timeout;
	if (stream_deadline(a.timeout)) {
		errmsg("setitimer: %s", strerror(errno));
		return EXIT_FAIL;
	}

	ctl = dev_open(O_RDONLY, &info);
	if (ctl < 0)
		return -ctl;
	if (ring_usable(c, &info))
		goto close_ctl;
	in = open_input(src, ctl);
	if (in < 0)
		goto close_ctl;
	if (same_file(in, dst)) {
		errmsg("%s and %s are the same file", src, dst);
		goto close_ends;
	}
	/* The writer opens first, so the reader cannot see EOF early. */
	pfd = dev_open(put_open_flags(put), &info);
	cfd = pfd < 0 ? -1 : dev_open(O_RDONLY, &info);
	if (cfd < 0) {
		ret = -(pfd < 0 ? pfd : cfd);
		goto close_ends;
	}
	if (claim(pfd, ZCDEV_PRODUCER) || claim(cfd, ZCDEV_CONSUMER))
		goto close_ends;
	out = open_output(dst, ctl, false, NULL);
	if (out < 0)
		goto close_ends;
	/* Through a hard link or a symlink to SRC, opened just now. */
	if (zcdev_same_file(in, out)) {
		errmsg("%s and %s are the same file", src, dst);
		goto close_ends;
	}
	if (truncate_output(out, dst))
		goto close_ends;
	err = zcdev_reset(pfd);
	if (!err)
		err = zcdev_get_stats(ctl, &st0);
	if (err) {
		errmsg("%s: %s", dev_path(), strerror(-err));
		goto close_ends;
	}
	side_init(&prod, true, put, pfd, dev_path(), a.chunk);
	prod.src.fd = in;
	side_init(&cons, false, get, cfd, dev_path(), a.chunk);
	cons.snk.fd = out;
	cons.snk.keep = true;
	cons.follow = true;
	pfd = cfd = -1;		/* the sides close them */
	ret = transfer(&run, sides, 2, &info);
	if (ret != EXIT_OK)
		goto close_ends;
	err = zcdev_get_stats(ctl, &st1);
	if (err) {
		errmsg("ZCDEV_IOC_GET_STATS: %s", strerror(-err));
		ret = EXIT_FAIL;
		goto close_ends;
	}
	zcdev_stats_delta(&st0, &st1, &d);
	if (copy_verify(dst, &prod, &cons, &d))
		ret = EXIT_FAIL;
	else
		copy_report(src, dst, &prod, &cons, &d);
close_ends:
	if (out >= 0 && close(out) && ret == EXIT_OK) {
		errmsg("%s: %s", dst, strerror(errno));
		ret = EXIT_FAIL;
	}
	if (pfd >= 0)
		close(pfd);
	if (cfd >= 0)
		close(cfd);
	if (in > STDERR_FILENO)
		close(in);
close_ctl:
	close(ctl);
	return ret;
}
