// SPDX-License-Identifier: GPL-2.0
/*
 * zcdev(1): drive /dev/zcdev, a kernel page ring that can be filled and
 * drained through every Linux data path. main(): the command table, the
 * top-level options, and what every run needs (fds 0-2, stdout's fate).
 * The layers are described in cmds.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmds.h"
#include "bench.h"

static const char main_help[] =
"usage: zcdev [-h|--help] [-V|--version] [-r N|--ring N] COMMAND [ARGS]\n"
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
"  rings [--json]              the rings: number, device, pages, use\n"
"  ring-add [N]                add ring N, or the lowest free one\n"
"  ring-remove N               remove ring N (not while it is open)\n"
"\n"
"'zcdev COMMAND --help' describes each command.\n"
"\n"
"options:\n"
"  -r, --ring N   the ring the command uses: 0 is /dev/zcdev, N is\n"
"                 /dev/zcdevN (instead of ZCDEV_DEV)\n"
"\n"
"environment:\n"
"  ZCDEV_DEV      the device to use (default /dev/zcdev; empty means unset)\n"
"  ZCDEV_CONTROL  the control device of ring-add and ring-remove (default\n"
"                 /dev/zcdev-control; empty means unset)\n"
"  ZCDEV_SYSFS    where sysfs is (default /sys), for --version, rings and\n"
"                 hints\n"
"\n"
"exit status:\n"
"  0  success\n"
"  1  runtime failure (stderr says what failed), a write error on stdout,\n"
"     or a copy whose DST is not exactly SRC\n"
"  2  usage error: nothing was opened\n"
"  3  device (or control device) missing, not a zcdev device, or ABI\n"
"     version mismatch: no file was touched\n";

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
	{ "rings",	cmd_rings,	rings_help },
	{ "ring-add",	cmd_ring_add,	ring_add_help },
	{ "ring-remove", cmd_ring_remove, ring_remove_help },
	{ NULL }
};

/* The top level, for usage_error() before a command is known. */
static const struct cmd top = { "zcdev", NULL, main_help };

/*
 * Versions of the three parts that must agree: this tool, the loaded
 * module (its MODULE_VERSION in sysfs) and the ABI the device speaks.
 */
static int show_version(void)
{
	char path[512], mod[64] = "";
	struct zcdev_info info = { 0 };
	ssize_t n;
	int fd;

	printf("zcdev %s (ABI %u)\n", ZCDEV_VERSION, ZCDEV_ABI_VERSION);
	fd = open(sysfs_path(path, sizeof(path), "module/zcdev/version"),
		  O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, mod, sizeof(mod) - 1);
		close(fd);
		mod[n > 0 ? n : 0] = '\0';
		mod[strcspn(mod, "\n")] = '\0';
	}
	fd = zcdev_open(dev_path(), O_RDONLY, &info);
	if (fd >= 0)
		close(fd);
	if (!*mod && fd < 0 && fd != -EPROTO) {
		printf("module not loaded\n");
		return EXIT_OK;
	}
	printf("module %s", *mod ? mod : "(no version)");
	if (fd >= 0 || fd == -EPROTO)
		printf(" (ABI %u, %s)", info.abi_version, dev_path());
	putchar('\n');
	fflush(stdout);
	if (*mod && strcmp(mod, ZCDEV_VERSION)) {
		errmsg("warning: the loaded module is version %s, this tool %s: install both from one release (or build both from one tree)",
		       mod, ZCDEV_VERSION);
	}
	if ((fd >= 0 || fd == -EPROTO) && info.abi_version != ZCDEV_ABI_VERSION) {
		errmsg("warning: the device speaks ABI %u, this tool %u: commands will refuse it",
		       info.abi_version, ZCDEV_ABI_VERSION);
	}
	return EXIT_OK;
}

/*
 * A closed 0, 1 or 2 would be the number the next open() returns: the
 * device would then be read as input, or written with error messages.
 * Hold each closed one with a descriptor that fails every use the way a
 * closed one does (EBADF): /dev/null opened the other way round.
 */
static void hold_std_fds(void)
{
	int fd;

	for (fd = 0; fd <= STDERR_FILENO; fd++) {
		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		if (open("/dev/null", fd == STDIN_FILENO ? O_WRONLY : O_RDONLY) != fd)
			_exit(EXIT_FAIL);
	}
}

/*
 * Output that did not reach stdout is a failure, whichever way the
 * program ends (a full disk, /dev/full, a closed stdout).
 */
static void check_stdout(void)
{
	int err;

	errno = 0;
	if (fflush(stdout) == 0 && !ferror(stdout))
		return;
	err = errno;
	if (err)
		errmsg("write error on standard output: %s", strerror(err));
	else
		errmsg("write error on standard output");
	_exit(EXIT_FAIL);
}

static void on_sigbus(int sig)
{
	static const char msg[] =
		"zcdev: SIGBUS: a ring page went away under the mapping (resize or teardown)\n";

	(void)sig;
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
		_exit(EXIT_FAIL);
	_exit(EXIT_FAIL);
}

/*
 * -r N, -rN, --ring N or --ring=N ahead of everything else: ring N's
 * device for the command (the last one counts). Returns how many
 * arguments it took.
 */
static int ring_option(int argc, char **argv)
{
	const char *a = argv[1], *val;
	int took = 1;

	if (!strcmp(a, "-r") || !strcmp(a, "--ring")) {
		if (argc < 3)
			usage_error(&top, "option '%s' needs an argument", a);
		val = argv[2];
		took = 2;
	} else if (!strncmp(a, "--ring=", 7)) {
		val = a + 7;
	} else if (!strncmp(a, "-r", 2) && a[2]) {
		val = a + 2;
	} else {
		return 0;
	}
	dev_select_ring(parse_ring(&top, val));
	return took;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_sigbus };
	const struct cmd *c;
	int took;

	hold_std_fds();
	atexit(check_stdout);
	while (argc > 1 && (took = ring_option(argc, argv))) {
		argv[took] = argv[0];
		argv += took;
		argc -= took;
	}
	if (argc < 2)
		usage_error(&top, "missing COMMAND");
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fputs(main_help, stdout);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		if (argc > 2)
			usage_error(&top, "unexpected argument '%s'", argv[2]);
		return show_version();
	}
	for (c = cmds; c->name; c++)
		if (!strcmp(c->name, argv[1]))
			break;
	if (!c->name) {
		if (argv[1][0] == '-')
			usage_error(&top, "unknown option '%s'", argv[1]);
		usage_error(&top, "unknown command '%s'", argv[1]);
	}
	/* These would ignore -r: refuse it rather than seem to obey. */
	if (dev_ring_selected() && c->fn == cmd_rings)
		usage_error(&top, "rings takes no -r: it lists every ring");
	if (dev_ring_selected() && (c->fn == cmd_ring_add || c->fn == cmd_ring_remove))
		usage_error(&top, "%s takes no -r: give the ring's number as its argument ('zcdev %s N')",
			    c->name, c->name);
	sigaction(SIGBUS, &sa, NULL);
	/* As early as can be: a stop before the handlers would be a death. */
	if (c->fn == cmd_put || c->fn == cmd_get || c->fn == cmd_copy)
		stream_signals();
	return c->fn(c, argc - 1, argv + 1);
}
