/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * b3_instr.c - B3 and B4a (instructions): producer instructions per pushed
 * item, counted by valgrind --tool=callgrind.
 *
 *   B3   1 vs 8 active cursors: fanout (single_producer), fanout_mp (default
 *        options) and, for reference, ckring_copy (one ring per cursor).
 *   B4a  1 active cursor, without and with a passive tap whose owner reads
 *        only counters (fo_stream_get_stats, fo_cursor_lagged) about once per
 *        50,000 items (1 kHz at 50 M items/s): extra producer instructions.
 *
 * The program re-runs itself under callgrind (--child CONFIG) with
 * --collect-atstart=no --toggle-collect=b3_producer_chunk: only the
 * producer's pushes are counted.  The child is single-threaded: it pushes a
 * chunk of 1024 items (counted), then drains every cursor with
 * fo_cursor_next_many outside the counted function, so the stream is in its
 * steady state (segments recycled) and the count is the producer's alone.
 * Without valgrind it prints a note and exits 0 (CI does not need it).
 *
 *   b3_instr [--items N] [--runs R] [--quick]       (parent)
 *   b3_instr --child IMPL:K[:tap] --items N         (under callgrind)
 */
#include "common.h"

#include <fanout/fanout.h>

#include <ck_ring.h>
#include <sys/wait.h>

#define CHUNK 1024

CK_RING_PROTOTYPE(b3_item, bench_item)

static const char *opt_child;

/* The counted region.  noinline + used: callgrind must see the symbol. */
__attribute__((noinline, used)) int b3_producer_chunk(fo_stream *s, bench_item *it, size_t n)
{
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = fo_stream_push(s, &it[i]);
	return rc;
}

__attribute__((noinline, used)) void b3_producer_chunk_ck(ck_ring_t *rings, void **bufs, int k,
                                                          bench_item *it, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (int j = 0; j < k; j++)
			if (!ck_ring_enqueue_spsc_b3_item(&rings[j], bufs[j], &it[i]))
				abort(); /* sized so it never fills */
}

static int child(const char *cfg, uint64_t n)
{
	char impl[32];
	int k = 1;
	bool tap = strstr(cfg, ":tap") != NULL;
	if (sscanf(cfg, "%31[^:]:%d", impl, &k) != 2 || k < 1 || k > 64)
		return 2;
	bench_item *items = bench_items_create(n);
	uint64_t got = 0, errors = 0;

	if (!strcmp(impl, "ckring_copy")) {
		ck_ring_t *rings = calloc((size_t)k, sizeof(*rings));
		void **bufs = calloc((size_t)k, sizeof(void *));
		for (int j = 0; j < k; j++) {
			bufs[j] = calloc(2 * CHUNK, sizeof(bench_item));
			ck_ring_init(&rings[j], 2 * CHUNK);
		}
		uint64_t *next = calloc((size_t)k, sizeof(*next));
		for (uint64_t off = 0; off < n; off += CHUNK) {
			size_t m = n - off < CHUNK ? (size_t)(n - off) : CHUNK;
			b3_producer_chunk_ck(rings, bufs, k, items + off, m);
			bench_item it;
			for (int j = 0; j < k; j++)
				while (ck_ring_dequeue_spsc_b3_item(&rings[j], bufs[j], &it))
					errors += it.seq != next[j]++, got++;
		}
		free(next);
		for (int j = 0; j < k; j++)
			free(bufs[j]);
		free(bufs), free(rings);
		return got == n * (uint64_t)k && !errors ? 0 : 1;
	}

	fo_stream_opts o;
	fo_stream_opts_init(&o);
	o.single_producer = strcmp(impl, "fanout_mp") != 0;
	fo_stream *s;
	fo_cursor *c[64], *tc = NULL;
	uint64_t next[64] = {0};
	if (fo_stream_create(&s, &o) || fo_stream_cursor(s, &c[0], FO_ACTIVE))
		return 1;
	for (int j = 1; j < k; j++)
		if (fo_cursor_fork(c[0], &c[j], FO_ACTIVE))
			return 1;
	if (tap && fo_cursor_fork(c[0], &tc, FO_PASSIVE))
		return 1;
	uint64_t counters = 0;
	for (uint64_t off = 0; off < n; off += CHUNK) {
		size_t m = n - off < CHUNK ? (size_t)(n - off) : CHUNK;
		if (b3_producer_chunk(s, items + off, m))
			return 1;
		for (int j = 0; j < k; j++) {
			void *b[256];
			size_t got1;
			while (fo_cursor_next_many(c[j], b, 256, &got1) == FO_OK)
				for (size_t i = 0; i < got1; i++)
					errors += ((bench_item *)b[i])->seq != next[j]++, got++;
		}
		if (tap && off % 50176 == 0) { /* the tap's owner reads counters only */
			fo_stream_stats st;
			fo_stream_get_stats(s, &st);
			counters += st.pushed + fo_cursor_lagged(tc);
		}
	}
	(void)counters;
	fo_cursor_close(tc);
	for (int j = 0; j < k; j++)
		fo_cursor_close(c[j]);
	fo_stream_destroy(s);
	free(items);
	return got == n * (uint64_t)k && !errors ? 0 : 1;
}

/* Run one config under callgrind; instructions per item, or < 0 on failure. */
static double under_callgrind(const char *self, const char *cfg, uint64_t n)
{
	char out[64], items[32], cmd[8192];
	snprintf(out, sizeof(out), "/tmp/fo-b3-%d.cg", (int)getpid());
	snprintf(items, sizeof(items), "%" PRIu64, n);
	snprintf(cmd, sizeof(cmd),
	         "valgrind --tool=callgrind --collect-atstart=no "
	         "--toggle-collect='b3_producer_chunk*' --callgrind-out-file=%s '%s' --child "
	         "'%s' --items %s >/dev/null 2>/tmp/fo-b3-%d.log",
	         out, self, cfg, items, (int)getpid());
	int st = system(cmd);
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "b3: child %s failed (see /tmp/fo-b3-%d.log)\n", cfg,
		        (int)getpid());
		return -1;
	}
	FILE *f = fopen(out, "r");
	char line[512];
	double tot = -1;
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "totals:", 7) || (tot < 0 && !strncmp(line, "summary:", 8)))
			tot = strtod(strchr(line, ':') + 1, NULL);
	if (f)
		fclose(f);
	unlink(out);
	return tot < 0 ? -1 : tot / (double)n;
}

int main(int argc, char **argv)
{
	bench_opts o = {.items = 1000000, .runs = 1};
	const bench_flag flags[] = {
	    {"child", BENCH_FLAG_STR, &opt_child, "internal: run one config (under callgrind)"},
	};
	bench_parse_args(argc, argv, &o, flags, sizeof(flags) / sizeof(flags[0]));
	if (opt_child)
		return child(opt_child, o.items);
	if (o.quick && o.items == 200000)
		o.items = 50176, o.runs = 1; /* 49 chunks; deterministic enough for CI */
	if (system("valgrind --version >/dev/null 2>&1") != 0) {
		printf("B3/B4a: SKIPPED: valgrind not found (apt-get install valgrind)\n");
		return 0;
	}
	char self[4096];
	ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len <= 0)
		return 2;
	self[len] = '\0';

	static const struct {
		const char *scn, *impl, *cfg;
		int k;
		bool tap;
	} cfgs[] = {
	    {"B3", "fanout", "fanout:1", 1, false},
	    {"B3", "fanout", "fanout:8", 8, false},
	    {"B3", "fanout_mp", "fanout_mp:1", 1, false},
	    {"B3", "fanout_mp", "fanout_mp:8", 8, false},
	    {"B3", "ckring_copy", "ckring_copy:1", 1, false},
	    {"B3", "ckring_copy", "ckring_copy:8", 8, false},
	    {"B4a", "fanout", "fanout:1", 1, false},
	    {"B4a", "fanout_tap", "fanout:1:tap", 1, true},
	};
	printf("B3/B4a: producer instructions per item (callgrind), %" PRIu64 " items x %d runs\n",
	       o.items, o.runs);
	bool ok = true;
	double v[sizeof(cfgs) / sizeof(cfgs[0])][16];
	int nr = o.runs < 16 ? o.runs : 16;
	for (int run = 1; run <= nr; run++)
		for (size_t i = 0; i < sizeof(cfgs) / sizeof(cfgs[0]); i++) {
			double ipi = under_callgrind(self, cfgs[i].cfg, o.items);
			v[i][run - 1] = ipi;
			if (ipi < 0) {
				ok = false;
				continue;
			}
			printf("RESULT scenario=%s impl=%s cursors=%d threads=1 cpus=%d "
			       "items_per_s=NA "
			       "cpu_ns_per_item=NA instr_per_item=%.2f passive=%d run=%d "
			       "items=%" PRIu64 "\n",
			       cfgs[i].scn, cfgs[i].impl, cfgs[i].k, o.cpus, ipi,
			       cfgs[i].tap ? 1 : 0, run, o.items);
			fflush(stdout);
		}
	printf("\nB3/B4a summary: median instructions per pushed item\n");
	for (size_t i = 0; i < sizeof(cfgs) / sizeof(cfgs[0]); i++) {
		double m = bench_median(v[i], (size_t)nr);
		printf("%-4s %-12s cursors=%d%s %8.2f\n", cfgs[i].scn, cfgs[i].impl, cfgs[i].k,
		       cfgs[i].tap ? "+tap" : "    ", m);
	}
	if (!ok)
		fprintf(stderr, "B3/B4a: FAILED (see above)\n");
	return ok ? 0 : 1;
}
