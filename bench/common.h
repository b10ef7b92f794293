/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * bench/common.h - shared pieces of the fanout benchmarks (B1-B12).
 *
 * Header-only: every helper is static inline.  A benchmark program
 *   1. parses its arguments with bench_parse_args() (the common --items,
 *      --runs, --quick, --help plus its own flags from a bench_flag table);
 *   2. prepares its items with bench_items_create() (64-byte items,
 *      preallocated and touched, so neither malloc nor page faults are
 *      measured);
 *   3. runs every implementation, interleaved, --runs times, measuring each
 *      with bench_now_ns() (wall) and bench_cpu_ns() (user+sys of the whole
 *      process, so spinning and sleeping waiters are both accounted for);
 *   4. hands each measurement to bench_record(), which prints one line
 *        RESULT scenario=B2 impl=fanout cursors=4 threads=5 cpus=2
 *               items_per_s=... cpu_ns_per_item=... run=1 items=2000000
 *      and keeps it for bench_summary(): medians per (parameter, impl) and the
 *      ratio of the base implementation ("fanout") to each peer;
 *   5. checks its own invariant and exits non-zero if it fails.
 */
#ifndef FANOUT_BENCH_COMMON_H
#define FANOUT_BENCH_COMMON_H

#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* ---- the item ------------------------------------------------------------------------------ */

/* The standard item of docs/benchmarks.md: 64 bytes, one cache line. */
typedef struct bench_item {
	uint64_t seq; /* 0, 1, 2, ... in push order (per producer) */
	uint64_t ts;  /* a timestamp where the scenario needs one, else 0 */
	uint64_t pad[6];
} __attribute__((aligned(64))) bench_item;

_Static_assert(sizeof(bench_item) == 64, "bench_item must be 64 bytes");

/* n items with seq = 0..n-1, cache-line aligned, every page touched.
 * Exits on allocation failure (a benchmark cannot go on without them). */
static inline bench_item *bench_items_create(uint64_t n)
{
	bench_item *v = NULL;
	if (posix_memalign((void **)&v, 64, (size_t)(n ? n : 1) * sizeof(*v)) != 0) {
		fprintf(stderr, "bench: cannot allocate %" PRIu64 " items\n", n);
		exit(2);
	}
	for (uint64_t i = 0; i < n; i++)
		v[i] = (bench_item){.seq = i};
	return v;
}

/* ---- clocks -------------------------------------------------------------------------------- */

static inline uint64_t bench_now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* User + system CPU time of the whole process (all threads), in ns. */
static inline uint64_t bench_cpu_ns(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000u +
	       ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000u;
}

/* Context switches (voluntary + involuntary) of the whole process so far. */
static inline uint64_t bench_csw(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)ru.ru_nvcsw + (uint64_t)ru.ru_nivcsw;
}

/* The 1-minute load average (-1 if unknown): print it beside every timing. */
static inline double bench_load1(void)
{
	double l = -1;
	FILE *f = fopen("/proc/loadavg", "r");
	if (f) {
		if (fscanf(f, "%lf", &l) != 1)
			l = -1;
		fclose(f);
	}
	return l;
}

static inline int bench_ncpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

/* ---- waiting for the other side (the peers' wait strategy) --------------------------------- */

static inline void bench_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

/* Spin briefly, then yield the CPU: with more threads than cores a pure spin
 * would burn the time slice the other side needs.  Reset *spins to 0 after
 * every success. */
#define BENCH_SPIN_LIMIT 64
static inline void bench_backoff(unsigned *spins)
{
	if (*spins < BENCH_SPIN_LIMIT) {
		for (unsigned i = 0; i < 16; i++)
			bench_cpu_relax();
		(*spins)++;
	} else {
		sched_yield();
	}
}

/* ---- statistics ---------------------------------------------------------------------------- */

static inline int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* The median of v[0..n-1] (v is sorted in place); 0 for n == 0. */
static inline double bench_median(double *v, size_t n)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), bench_cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- arguments ----------------------------------------------------------------------------- */

enum bench_flag_kind { BENCH_FLAG_BOOL, BENCH_FLAG_U64, BENCH_FLAG_STR };

/* A scenario-specific flag: "--name" (BOOL: sets *(bool *)ptr), "--name N"
 * (U64: sets *(uint64_t *)ptr) or "--name S" (STR: sets *(const char **)ptr
 * to the argv string). */
typedef struct bench_flag {
	const char *name;
	enum bench_flag_kind kind;
	void *ptr;
	const char *help;
} bench_flag;

typedef struct bench_opts {
	uint64_t items; /* --items N */
	int runs;       /* --runs R (at least 1; docs/benchmarks.md asks for >= 5) */
	bool quick;     /* --quick: 200k items x 3 runs, for CI smoke runs */
	int cpus;
} bench_opts;

static inline void bench_usage(const char *prog, const bench_opts *def, const bench_flag *flags,
                               size_t nflags)
{
	fprintf(stderr, "usage: %s [--items N] [--runs R] [--quick]", prog);
	for (size_t i = 0; i < nflags; i++)
		fprintf(stderr, " [--%s%s]", flags[i].name,
		        flags[i].kind == BENCH_FLAG_U64   ? " N"
		        : flags[i].kind == BENCH_FLAG_STR ? " S"
		                                          : "");
	fprintf(stderr,
	        "\n  --items N      items per measurement (default %" PRIu64 ")\n"
	        "  --runs R       measurements per implementation (default %d)\n"
	        "  --quick        200000 items x 3 runs\n",
	        def->items, def->runs);
	for (size_t i = 0; i < nflags; i++) {
		char name[64];
		snprintf(name, sizeof(name), "%s%s", flags[i].name,
		         flags[i].kind == BENCH_FLAG_U64   ? " N"
		         : flags[i].kind == BENCH_FLAG_STR ? " S"
		                                           : "");
		fprintf(stderr, "  --%-12s %s\n", name, flags[i].help);
	}
}

static inline bool bench_parse_u64(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-')
		return false;
	*out = v;
	return true;
}

/* Fills *o from argv; o->items and o->runs hold the defaults on entry.
 * Exits with status 2 (after a usage message) on a bad argument, 0 on --help. */
static inline void bench_parse_args(int argc, char **argv, bench_opts *o, const bench_flag *flags,
                                    size_t nflags)
{
	bench_opts def = *o;
	bool items_set = false, runs_set = false;
	uint64_t v;

	o->cpus = bench_ncpus();
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool has_val = i + 1 < argc;
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			bench_usage(argv[0], &def, flags, nflags);
			exit(0);
		} else if (!strcmp(a, "--quick")) {
			o->quick = true;
		} else if (!strcmp(a, "--items") && has_val && bench_parse_u64(argv[i + 1], &v) &&
		           v) {
			o->items = v, items_set = true, i++;
		} else if (!strcmp(a, "--runs") && has_val && bench_parse_u64(argv[i + 1], &v) &&
		           v && v < 1000) {
			o->runs = (int)v, runs_set = true, i++;
		} else {
			size_t f;
			for (f = 0; f < nflags; f++)
				if (a[0] == '-' && a[1] == '-' && !strcmp(a + 2, flags[f].name))
					break;
			if (f == nflags) {
				bench_usage(argv[0], &def, flags, nflags);
				exit(2);
			}
			if (flags[f].kind == BENCH_FLAG_BOOL) {
				*(bool *)flags[f].ptr = true;
			} else if (flags[f].kind == BENCH_FLAG_STR && has_val) {
				*(const char **)flags[f].ptr = argv[++i];
			} else if (flags[f].kind == BENCH_FLAG_U64 && has_val &&
			           bench_parse_u64(argv[i + 1], &v)) {
				*(uint64_t *)flags[f].ptr = v;
				i++;
			} else {
				bench_usage(argv[0], &def, flags, nflags);
				exit(2);
			}
		}
	}
	/* --quick sets the size; an explicit --items / --runs still wins. */
	if (o->quick && !items_set)
		o->items = 200000;
	if (o->quick && !runs_set)
		o->runs = 3;
}

/* Is @name one of the comma-separated names in @list?  A NULL list (the
 * flag was not given) holds every name. */
static inline bool bench_in_list(const char *list, const char *name)
{
	size_t len = strlen(name);
	for (const char *p = list; p; p = strchr(p, ','), p = p ? p + 1 : NULL)
		if (!strncmp(p, name, len) && (p[len] == ',' || p[len] == '\0'))
			return true;
	return list == NULL;
}

/* ---- results ------------------------------------------------------------------------------- */

typedef struct bench_sample {
	const char *impl; /* a string literal */
	int param;        /* the scenario's varied parameter, e.g. the cursor count */
	double items_per_s;
	double cpu_ns_per_item;
} bench_sample;

typedef struct bench_results {
	const char *scenario;   /* "B2" */
	const char *param_name; /* "cursors" */
	int cpus;
	bench_sample *v;
	size_t n, cap;
} bench_results;

static inline void bench_results_init(bench_results *r, const char *scenario,
                                      const char *param_name, int cpus)
{
	*r = (bench_results){.scenario = scenario, .param_name = param_name, .cpus = cpus};
}

static inline void bench_results_fini(bench_results *r)
{
	free(r->v);
	r->v = NULL;
	r->n = r->cap = 0;
}

/* Print one RESULT line and keep the sample for bench_summary().
 * @threads: application threads taking part (producers + consumers).
 * @items:   items produced.  @wall_ns, @cpu_ns: the measured interval. */
static inline void bench_record(bench_results *r, const char *impl, int param, int threads, int run,
                                uint64_t items, uint64_t wall_ns, uint64_t cpu_ns)
{
	bench_sample s = {
	    .impl = impl,
	    .param = param,
	    .items_per_s = wall_ns ? (double)items * 1e9 / (double)wall_ns : 0,
	    .cpu_ns_per_item = items ? (double)cpu_ns / (double)items : 0,
	};
	printf("RESULT scenario=%s impl=%s %s=%d threads=%d cpus=%d items_per_s=%.0f "
	       "cpu_ns_per_item=%.1f run=%d items=%" PRIu64 "\n",
	       r->scenario, impl, r->param_name, param, threads, r->cpus, s.items_per_s,
	       s.cpu_ns_per_item, run, items);
	fflush(stdout);
	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 64;
		bench_sample *v = realloc(r->v, cap * sizeof(*v));
		if (!v)
			return; /* the line is printed; only the summary loses it */
		r->v = v, r->cap = cap;
	}
	r->v[r->n++] = s;
}

/* Median, minimum or maximum of one metric over the samples of (impl, param);
 * 0 when there are none. */
enum bench_metric { BENCH_ITEMS_PER_S, BENCH_CPU_NS_PER_ITEM };
enum bench_stat { BENCH_MEDIAN, BENCH_MIN, BENCH_MAX };

static inline double bench_results_stat(const bench_results *r, const char *impl, int param,
                                        enum bench_metric metric, enum bench_stat stat)
{
	double *x = malloc((r->n ? r->n : 1) * sizeof(*x));
	size_t k = 0;
	if (!x)
		return 0;
	for (size_t i = 0; i < r->n; i++)
		if (r->v[i].param == param && !strcmp(r->v[i].impl, impl))
			x[k++] = metric == BENCH_ITEMS_PER_S ? r->v[i].items_per_s
			                                     : r->v[i].cpu_ns_per_item;
	double m = bench_median(x, k); /* sorts x */
	if (k && stat == BENCH_MIN)
		m = x[0];
	else if (k && stat == BENCH_MAX)
		m = x[k - 1];
	free(x);
	return m;
}

/* Print the medians (and the items/s range) per (param, impl) and, per param,
 * the ratio base / peer of the items/s medians (> 1: base is faster). */
static inline void bench_summary(const bench_results *r, const char *base)
{
	const char *impls[16];
	int params[16];
	size_t ni = 0, np = 0;

	for (size_t i = 0; i < r->n; i++) {
		size_t j;
		for (j = 0; j < ni && strcmp(impls[j], r->v[i].impl); j++)
			;
		if (j == ni && ni < 16)
			impls[ni++] = r->v[i].impl;
		for (j = 0; j < np && params[j] != r->v[i].param; j++)
			;
		if (j == np && np < 16)
			params[np++] = r->v[i].param;
	}

	printf("\n%s summary: medians, %d cpus\n", r->scenario, r->cpus);
	printf("%-8s %-14s %14s %14s %14s %12s %5s\n", r->param_name, "impl", "items/s", "(min",
	       "max)", "cpu ns/item", "runs");
	for (size_t p = 0; p < np; p++) {
		for (size_t i = 0; i < ni; i++) {
			size_t k = 0;
			for (size_t s = 0; s < r->n; s++)
				k += r->v[s].param == params[p] && !strcmp(r->v[s].impl, impls[i]);
			if (!k)
				continue;
			printf("%-8d %-14s %14.0f %14.0f %14.0f %12.1f %5zu\n", params[p], impls[i],
			       bench_results_stat(r, impls[i], params[p], BENCH_ITEMS_PER_S,
			                          BENCH_MEDIAN),
			       bench_results_stat(r, impls[i], params[p], BENCH_ITEMS_PER_S,
			                          BENCH_MIN),
			       bench_results_stat(r, impls[i], params[p], BENCH_ITEMS_PER_S,
			                          BENCH_MAX),
			       bench_results_stat(r, impls[i], params[p], BENCH_CPU_NS_PER_ITEM,
			                          BENCH_MEDIAN),
			       k);
		}
	}

	printf("\n%s ratio %s / peer (items/s medians; > 1 means %s is faster)\n", r->scenario,
	       base, base);
	printf("%-8s", r->param_name);
	for (size_t i = 0; i < ni; i++)
		if (strcmp(impls[i], base))
			printf(" %14s", impls[i]);
	printf("\n");
	for (size_t p = 0; p < np; p++) {
		double b = bench_results_stat(r, base, params[p], BENCH_ITEMS_PER_S, BENCH_MEDIAN);
		printf("%-8d", params[p]);
		for (size_t i = 0; i < ni; i++) {
			if (!strcmp(impls[i], base))
				continue;
			double peer = bench_results_stat(r, impls[i], params[p], BENCH_ITEMS_PER_S,
			                                 BENCH_MEDIAN);
			if (peer > 0 && b > 0)
				printf(" %13.2fx", b / peer);
			else
				printf(" %14s", "-");
		}
		printf("\n");
	}
	fflush(stdout);
}

#endif /* FANOUT_BENCH_COMMON_H */
