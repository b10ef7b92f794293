/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * b12_alloc.c - B12: allocator independence, glibc malloc vs jemalloc.
 *
 * The program re-runs itself (--child) twice per run, alternating the order:
 * once plain (glibc) and once with LD_PRELOAD=libjemalloc.so.2 (Debian
 * package libjemalloc2; FO_JEMALLOC overrides the path).  The child runs B1's
 * 1 -> 1 and B2's 1 -> 4 set-ups for fanout (and wfcq_malloc, the peer that
 * mallocs per item, for scale) and reports items/s and fanout's allocations
 * per item.  Allocations are counted through fo_set_allocator(): a wrapper
 * that counts and forwards to posix_memalign/free (exactly fanout's default),
 * so it sees every allocation fanout makes and nothing the benchmark or the
 * items make; under LD_PRELOAD those calls go to jemalloc.  (A malloc
 * interposer in the executable would shadow the preloaded jemalloc.)
 * The child confirms which allocator it got (jemalloc exports mallctl).
 * Targets: items/s jemalloc / glibc >= 0.9 for fanout; <= 1/32 allocations
 * per item.  Without libjemalloc.so.2 only the glibc half runs (a note, exit 0
 * unless a check fails).
 *
 *   b12_alloc [--items N] [--runs R] [--quick]
 */
#include "peers.h"

#include <dlfcn.h>

static atomic_uint_fast64_t nallocs;

static void *count_alloc(size_t size, void *ctx)
{
	void *p = NULL;
	(void)ctx;
	atomic_fetch_add_explicit(&nallocs, 1, memory_order_relaxed);
	return posix_memalign(&p, 64, size ? size : 1) ? NULL : p;
}

static void count_free(void *p, void *ctx)
{
	(void)ctx;
	free(p);
}

static int child(uint64_t n)
{
	const char *alloc = dlsym(RTLD_DEFAULT, "mallctl") ? "jemalloc" : "glibc";
	fo_allocator a = {count_alloc, count_free, NULL};
	fo_set_allocator(&a);
	uint64_t pool = n < 1000000 ? n : 1000000; /* items are reused */
	bench_item **items = pq_items_create(1, pool);
	static const struct {
		const char *impl;
		int ncons;
	} cfg[] = {{"fanout", 1}, {"fanout", 4}, {"wfcq_malloc", 1}};
	int rc = 0;
	for (size_t i = 0; i < sizeof(cfg) / sizeof(cfg[0]); i++) {
		atomic_store(&nallocs, 0);
		pq_result r = pq_measure(pq_find(cfg[i].impl), PQ_FANOUT, 1, cfg[i].ncons, 65536,
		                         items, pool, n, 0, false);
		if (!r.ok)
			rc = 1;
		printf(
		    "CHILD allocator=%s impl=%s cursors=%d items_per_s=%.0f cpu_ns_per_item=%.1f "
		    "fo_allocs_per_item=%.6f\n",
		    alloc, cfg[i].impl, cfg[i].ncons, (double)n * 1e9 / (double)r.wall_ns,
		    (double)r.cpu_ns / (double)n, (double)atomic_load(&nallocs) / (double)n);
	}
	pq_items_destroy(items, 1);
	return rc;
}

static const char *jemalloc_path(void)
{
	static const char *cands[] = {"/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
	                              "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
	                              "/usr/lib/libjemalloc.so.2", "/usr/lib64/libjemalloc.so.2"};
	const char *e = getenv("FO_JEMALLOC");
	if (e && *e)
		return access(e, R_OK) == 0 ? e : NULL;
	for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]); i++)
		if (access(cands[i], R_OK) == 0)
			return cands[i];
	return NULL;
}

int main(int argc, char **argv)
{
	bench_opts o = {.items = 10000000, .runs = 5};
	bool is_child = false;
	const bench_flag flags[] = {
	    {"child", BENCH_FLAG_BOOL, &is_child, "internal: one measurement"},
	};
	bench_parse_args(argc, argv, &o, flags, 1);
	if (is_child)
		return child(o.items);

	char self[4096];
	ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len <= 0)
		return 2;
	self[len] = '\0';
	const char *je = jemalloc_path();
	printf("B12: glibc vs jemalloc (%s), %" PRIu64 " items x %d runs, %d cpus\n",
	       je ? je : "NOT FOUND: apt-get install libjemalloc2; jemalloc half skipped", o.items,
	       o.runs, o.cpus);
	bool ok = true;
	int nr = o.runs < 64 ? o.runs : 64;
	double rate[2][3][64]; /* [glibc/jemalloc][config][run] */
	memset(rate, 0, sizeof(rate));
	for (int run = 1; run <= nr; run++)
		for (int j = 0; j < 2; j++) {
			int w = (j + run) % 2; /* 0 glibc, 1 jemalloc */
			if (w == 1 && !je)
				continue;
			char cmd[8192];
			snprintf(cmd, sizeof(cmd), "%s%s%s'%s' --child --items %" PRIu64,
			         w ? "LD_PRELOAD='" : "", w ? je : "", w ? "' " : "", self,
			         o.items);
			fflush(stdout);
			FILE *p = popen(cmd, "r");
			char line[512];
			int cfgi = 0;
			while (p && fgets(line, sizeof(line), p)) {
				char alloc[32], impl[32];
				int nc;
				double ips, cpu, apr;
				if (sscanf(
				        line,
				        "CHILD allocator=%31s impl=%31s cursors=%d items_per_s=%lf "
				        "cpu_ns_per_item=%lf fo_allocs_per_item=%lf",
				        alloc, impl, &nc, &ips, &cpu, &apr) != 6)
					continue;
				if (strcmp(alloc, w ? "jemalloc" : "glibc")) {
					fprintf(stderr, "FAIL B12: child runs %s, wanted %s\n",
					        alloc, w ? "jemalloc" : "glibc");
					ok = false;
				}
				bool fo = !strcmp(impl, "fanout");
				if (fo && apr > 1.0 / 32) {
					fprintf(stderr,
					        "FAIL B12: %.4f allocations per item > 1/32\n",
					        apr);
					ok = false;
				}
				if (cfgi < 3)
					rate[w][cfgi++][run - 1] = ips;
				printf(
				    "RESULT scenario=B12 impl=%s%s cursors=%d threads=%d cpus=%d "
				    "items_per_s=%.0f cpu_ns_per_item=%.1f allocator=%s "
				    "fo_allocs_per_item=%.6f run=%d items=%" PRIu64 "\n",
				    impl, w ? "_jemalloc" : "", nc, nc + 1, o.cpus, ips, cpu, alloc,
				    fo ? apr : 0.0, run, o.items);
			}
			int st = p ? pclose(p) : -1;
			if (st != 0 || cfgi != 3) {
				fprintf(stderr, "FAIL B12: child (%s) exited %d\n",
				        w ? "jemalloc" : "glibc", st);
				ok = false;
			}
		}
	printf("\nB12 summary: median items/s, jemalloc / glibc\n");
	static const char *cn[] = {"fanout 1->1", "fanout 1->4", "wfcq_malloc 1->1"};
	for (int c = 0; c < 3; c++) {
		double g = bench_median(rate[0][c], (size_t)nr),
		       jm = bench_median(rate[1][c], (size_t)nr);
		printf("%-18s glibc %14.0f  jemalloc %14.0f  ratio %.3f\n", cn[c], g, jm,
		       g > 0 ? jm / g : 0);
	}
	if (!ok)
		fprintf(stderr, "B12: FAILED (see above)\n");
	return ok ? 0 : 1;
}
