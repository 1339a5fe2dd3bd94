// SPDX-License-Identifier: GPL-2.0
/*
 * zcdev(1) explain: what one call of each path does, from the module's
 * counters, the thread's system calls and faults, and the page table
 * entries of the bench's own mappings, taken just before and just after
 * that one call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"

const char explain_help[] =
"usage: zcdev explain [--chunk BYTES] [--map LIST] [--timeout SEC] [--json]\n"
"                     [PATH...]\n"
"\n"
"Show what one call of each consumer and producer path does to the ring:\n"
"bytes the module copied, moved by reference or saw in place, pages lent\n"
"to a pipe, slots given a fresh page (swaps), pages stolen from a pipe,\n"
"faults, and page table entries of the mapping zapped and mapped again.\n"
"\n"
"Each path runs as in 'zcdev bench': two laps first with the same fixed\n"
"other side (fills by write, or mmap when the producer maps the ring;\n"
"drains by splice to /dev/null), so the slots are in the state that path\n"
"keeps them in; then a consumer call finds a full ring and a producer\n"
"call an empty one. The figures are deltas around that call alone.\n"
"It holds the ring's producer and consumer claims and resets the ring.\n"
"\n"
"  -c, --chunk BYTES  bytes in the call, default 64K (at most the ring)\n"
"  -M, --map LIST     none, meta, mapped (default: all; see bench --help)\n"
"  -t, --timeout SEC  fail a path that takes over SEC s (default 10)\n"
"  -j, --json         one JSON object\n"
"  PATH               get:... or put:... ids as in 'zcdev bench --help',\n"
"                     their part after the colon, or get or put; default:\n"
"                     all\n"
"\n"
"columns:\n"
"  calls     system calls the call made (a splice through a pipe is two)\n"
"  usec      its wall time in microseconds\n"
"  copied, by-ref, in-place   module counters, bytes\n"
"  lent      pages handed to a pipe (pages_spliced_out)\n"
"  swaps     slots that got a fresh page because a pipe held the old one\n"
"  stolen    pages taken from a pipe on splice in\n"
"  faults    ring pages the fault handler mapped (mmap_faults), with\n"
"            those it maps ahead of the faulting address\n"
"  minflt    minor faults the thread took (the traps)\n"
"  zapped    page table entries of this process's ring mappings the call\n"
"            removed; mapped: that it added\n"
"  left      the producer's entries still on pages the call lent (both\n"
"            halves of the mapping): 0, or a lent page could be written\n"
"get:mmap-send-zc's JSON adds \"zerocopy\": the MSG_ZEROCOPY sends of its\n"
"laps and its call, how many completed (all, before its socket closes)\n"
"and how many of those the kernel copied.\n";

struct ptes {
	unsigned char *v;
	size_t n;
};

/* Which pages of the mapping have a page table entry now. */
static void ptes_take(const struct zcdev_ring *r, size_t page, struct ptes *p)
{
	p->n = r->data ? r->data_len / page : 0;
	p->v = p->n ? calloc(p->n, 1) : NULL;
	if (p->v && mincore(r->data, r->data_len, p->v)) {
		free(p->v);
		p->v = NULL;
		p->n = 0;
	}
}

static void ptes_diff(const struct ptes *a, const struct ptes *b,
		      unsigned long *gone, unsigned long *added)
{
	size_t i;

	for (i = 0; i < a->n && i < b->n; i++) {
		*gone += (a->v[i] & 1) && !(b->v[i] & 1);
		*added += !(a->v[i] & 1) && (b->v[i] & 1);
	}
}

struct xres {
	const struct bpath *p;
	enum bmap map;
	bool ok;
	char err[192];
	size_t bytes;
	struct bcost cost;
	unsigned long zapped, mapped;
	/* PTEs of the producer's mapping still on the pages a consumer lent */
	long lent_left;
	/* MSG_ZEROCOPY: the context's sends and completions, laps included */
	struct zc_count zc;
};

/*
 * After a consumer call: the producer's page table entries, in either half
 * of its mapping, on the pages the call consumed from tail0 on. Where the
 * call lent them to a pipe there must be none (nothing lent is writable);
 * -1 without a producer's mapping or a page lent.
 */
static long lent_ptes_left(const struct bctx *c, const struct ptes *after,
			   uint64_t tail0, uint64_t lent)
{
	uint64_t page = c->info.page_size, nr = c->info.ring_pages, pg;
	long left = 0;

	if (!after->n || !lent)
		return -1;
	for (pg = tail0 / page; pg < (tail0 + c->chunk + page - 1) / page; pg++)
		left += (after->v[pg % nr] & 1) + (after->v[pg % nr + nr] & 1);
	return left;
}

static void explain_one(const struct benv *env, const struct bpath *p,
			enum bmap map, size_t chunk, struct xres *x)
{
	size_t page = env->info.page_size;
	struct ptes a[2], b[2];
	struct bmark m0, m1;
	struct bctx c;
	enum bput pm;
	enum bget gm;
	int i, ret;

	memset(x, 0, sizeof(*x));
	x->p = p;
	x->map = map;
	ret = bctx_open(&c, env, p, map, chunk, false);
	if (env->timeout)
		bench_watchdog(env->timeout);
	pm = bctx_put_path(&c);
	gm = bctx_get_path(&c);
	for (i = 0; !ret && i < 2; i++) {
		ret = bput_run(&c, pm, c.cap, NULL);
		if (!ret)
			ret = bget_run(&c, gm, c.cap, NULL);
	}
	x->bytes = c.chunk;
	if (!ret && p->side == BS_GET)
		ret = bput_run(&c, pm, c.cap, NULL);
	if (!ret)
		ret = bput_prepare(&c, pm, c.chunk);
	x->lent_left = -1;
	if (!ret) {
		uint64_t tail0 = c.pmap.meta ? zcdev_ring_tail(&c.pmap) : 0;

		ptes_take(&c.pmap, page, &a[0]);
		ptes_take(&c.cmap, page, &a[1]);
		bmark_take(&c, &m0, false);
		if (p->side == BS_GET)
			ret = bget_call(&c, gm, c.chunk);
		else
			ret = bput_call(&c, pm, c.chunk);
		bmark_take(&c, &m1, true);
		ptes_take(&c.pmap, page, &b[0]);
		ptes_take(&c.cmap, page, &b[1]);
		bmark_add(&c, &m0, &m1, &x->cost);
		if (p->side == BS_GET)
			x->lent_left = lent_ptes_left(&c, &b[0], tail0,
						      x->cost.d.pages_spliced_out);
		for (i = 0; i < 2; i++) {
			ptes_diff(&a[i], &b[i], &x->zapped, &x->mapped);
			free(a[i].v);
			free(b[i].v);
		}
	}
	bench_watchdog(0);
	if (c.failed && atomic_load(&xfer_abort)) {
		c.failed = false;
		errno = 0;
		bctx_fail(&c, "%s: not done within %g s", p->id, env->timeout);
	}
	bctx_close(&c);
	x->zc = c.zc;
	x->ok = !c.failed;
	if (c.failed)
		snprintf(x->err, sizeof(x->err), "%s", c.err);
}

static void print_x(const struct xres *x)
{
	const struct zcdev_stats *d = &x->cost.d;

	printf("%-22s %-6s ", x->p->label, bmap_names[x->map]);
	if (!x->ok) {
		printf("error: %s\n", x->err);
		return;
	}
	printf("%7zu %5lu %7.0f %8llu %8llu %8llu %5llu %5llu %6llu %6llu %6ld %6lu %6lu",
	       x->bytes, x->cost.syscalls, x->cost.secs * 1e6,
	       (unsigned long long)zcdev_stats_copied(d),
	       (unsigned long long)zcdev_stats_by_ref(d),
	       (unsigned long long)zcdev_stats_in_place(d),
	       (unsigned long long)d->pages_spliced_out,
	       (unsigned long long)d->page_swaps,
	       (unsigned long long)d->pages_stolen_in,
	       (unsigned long long)d->mmap_faults, x->cost.minflt, x->zapped,
	       x->mapped);
	if (x->lent_left >= 0)
		printf(" %4ld\n", x->lent_left);
	else
		printf(" %4s\n", "-");
}

static void json_x(struct json *j, const struct xres *x)
{
	json_begin(j, NULL, '{');
	json_str(j, "id", x->p->id);
	json_str(j, "map", bmap_names[x->map]);
	json_bool(j, "ok", x->ok);
	if (!x->ok) {
		json_str(j, "error", x->err);
		json_end(j, '}');
		return;
	}
	json_u64(j, "bytes", x->bytes);
	json_u64(j, "syscalls", x->cost.syscalls);
	json_double(j, "seconds", x->cost.secs);
	json_u64(j, "minflt", x->cost.minflt);
	json_u64(j, "ptes_zapped", x->zapped);
	json_u64(j, "ptes_mapped", x->mapped);
	if (x->lent_left >= 0)
		json_u64(j, "lent_ptes_left", x->lent_left);
	json_begin(j, "zcdev", '{');
	json_u64(j, "copied_bytes", zcdev_stats_copied(&x->cost.d));
	json_u64(j, "by_ref_bytes", zcdev_stats_by_ref(&x->cost.d));
	json_u64(j, "in_place_bytes", zcdev_stats_in_place(&x->cost.d));
	json_fields(j, &x->cost.d, zcdev_stats_fields);
	json_end(j, '}');
	if (x->p->get == BG_MMAP_SEND_ZC) {
		json_begin(j, "zerocopy", '{');
		json_u64(j, "sends", x->zc.sends);
		json_u64(j, "completed", x->zc.done);
		json_u64(j, "copied", x->zc.copied);
		json_end(j, '}');
	}
	json_end(j, '}');
}

static bool path_wanted(const struct bpath *p, int argc, char **argv)
{
	int i;

	if (p->side != BS_GET && p->side != BS_PUT)
		return false;
	if (!argc)
		return true;
	for (i = 0; i < argc; i++)
		if (bpath_matches(p, argv[i]))
			return true;
	return false;
}

int cmd_explain(const struct cmd *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "chunk", required_argument, NULL, 'c' },
		{ "map", required_argument, NULL, 'M' },
		{ "json", no_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL }
	};
	struct bmapping pmap = { .users = 0 };
	struct benv env = { .pmap = &pmap, .timeout = 10 };
	bool maps[BMAP_NR] = { true, true, true }, json = false;
	struct json j = { .f = stdout };
	struct ccost cc;
	size_t chunk = DEFAULT_CHUNK, i, k, ext;
	char *tok, *save = NULL;
	int opt, fd, m, ret = EXIT_OK;

	while ((opt = cmd_getopt(c, argc, argv, opts)) != -1) {
		switch (opt) {
		case 'c':
			chunk = parse_chunk(c, optarg);
			break;
		case 'M':
			memset(maps, 0, sizeof(maps));
			for (tok = strtok_r(optarg, ",", &save); tok;
			     tok = strtok_r(NULL, ",", &save)) {
				for (m = 0; m < BMAP_NR; m++)
					if (!strcmp(tok, bmap_names[m]))
						maps[m] = true;
				if (strcmp(tok, "none") && strcmp(tok, "meta") &&
				    strcmp(tok, "mapped"))
					usage_error(c, "unknown --map '%s'", tok);
			}
			if (!maps[BMAP_NONE] && !maps[BMAP_META] &&
			    !maps[BMAP_PROD])
				usage_error(c, "--map selects no mapping");
			break;
		case 't':
			env.timeout = parse_timeout(c, optarg);
			break;
		case 'j':
			json = true;
			break;
		}
	}
	for (k = optind; k < (size_t)argc; k++) {
		for (i = 0; i < nr_bpaths; i++)
			if (path_wanted(&bpaths[i], 1, &argv[k]))
				break;
		if (i == nr_bpaths)
			usage_error(c, "unknown path '%s'", argv[k]);
	}

	fd = bench_claim(&env.info);
	if (fd < 0)
		return -fd;
	env.have_dev = true;
	/* As the help says: a call never exceeds the ring. */
	if (chunk > env.info.ring_bytes)
		chunk = env.info.ring_bytes;
	ext = chunk > env.info.ring_bytes ? chunk : env.info.ring_bytes;
	/* Two rings' worth of payload, its start repeated after it. */
	env.payload_len = 2 * ext;
	env.payload = mmap(NULL, 3 * ext + BENCH_SKEW_SPAN,
			   PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	env.devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (env.payload == MAP_FAILED || env.devnull < 0) {
		errmsg("explain setup: %s", strerror(errno));
		return EXIT_FAIL;
	}
	for (i = 0; i < 3 * ext + BENCH_SKEW_SPAN; i++)
		((char *)env.payload)[i] = (char)(i * 7 + i / 4096);
	memcpy((char *)env.payload + 2 * ext, env.payload, ext);
	bench_signals();
	ccost_measure(&cc, &env.info);

	if (json) {
		json_begin(&j, NULL, '{');
		json_str(&j, "version", ZCDEV_VERSION);
		json_u64(&j, "chunk_bytes", chunk);
		json_u64(&j, "ring_bytes", env.info.ring_bytes);
		ccost_json(&j, &cc);
		json_begin(&j, "paths", '[');
	} else {
		printf("zcdev explain: one call of %zu bytes (at most the ring, %llu bytes) per path,\n",
		       chunk, (unsigned long long)env.info.ring_bytes);
		printf("after two laps with the fixed other side; deltas around that call alone\n");
		ccost_print(&cc);
		putchar('\n');
		printf("%-22s %-6s %7s %5s %7s %8s %8s %8s %5s %5s %6s %6s %6s %6s %6s %4s\n",
		       "path", "map", "bytes", "calls", "usec", "copied", "by-ref",
		       "in-place", "lent", "swaps", "stolen", "faults", "minflt",
		       "zapped", "mapped", "left");
	}
	for (m = 0; m < BMAP_NR; m++) {
		for (i = 0; i < nr_bpaths; i++) {
			const struct bpath *p = &bpaths[i];
			struct xres x;

			if (!maps[m] || !(p->maps & (1u << m)) ||
			    !path_wanted(p, argc - optind, argv + optind))
				continue;
			explain_one(&env, p, m, chunk, &x);
			if (!x.ok)
				ret = EXIT_FAIL;
			if (json)
				json_x(&j, &x);
			else
				print_x(&x);
		}
	}
	if (json) {
		json_end(&j, ']');
		json_end(&j, '}');
		putchar('\n');
	}
	close(fd);
	return ret;
}
