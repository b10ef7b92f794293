/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * b2n_natural.c - B2n: fan-out in the configuration a server author writes.
 *
 * 1 producer -> K consumers (K = 2, 4, 8), every consumer sees every item;
 * the producer writes every field of each 64-byte item just before pushing
 * it and every consumer reads every field (peers.h write mode: a checksum of
 * the fields is checked per item).  Capacity 1024 and 4096.  Implementations,
 * interleaved within each run (the order rotates from run to run):
 *
 *   fanout       default stream options (several-producer safe, no
 *                single_producer), capacity 1024 / 4096, K active cursors,
 *                each calling fo_cursor_next once per item.
 *   ckring_copy  one ck_ring SPSC per consumer with the same number of slots
 *                as fanout's capacity, holding the items by value; the
 *                producer copies each item into every ring, consumers
 *                dequeue one item per call (peers.h).
 *   fanout_best  fanout's best configuration in the same run: single
 *                producer, fo_cursor_next_many batches of 64, capacity 65536
 *                (same items, same writes and reads).
 *
 * Items come from one pool per producer (--pool, default 262144 items,
 * 16 MiB: more than the largest capacity plus a batch, so fanout's producer
 * never rewrites an item a cursor may still read), the same for every
 * implementation.  Beside each figure: CPU time per item (user+sys of the
 * process), context switches per item (getrusage, voluntary + involuntary)
 * and the 1-minute load average when the measurement ended.  The summary
 * gives medians over --runs and the targets of docs/benchmarks.md: fanout /
 * ckring_copy >= 1x (K=2), >= 1.5x (K=4), >= 2x (K=8) at both capacities,
 * CPU time per item below ckring_copy's, and fanout >= 0.6x fanout_best.
 *
 *   b2n_natural [--items N] [--runs R] [--quick] [--pool N] [--cursors K]
 *               [--impl fanout,ckring_copy,fanout_best]
 */
#include "peers.h"

#define NCAPS         2
#define NKS           3
#define BEST_CAPACITY 65536

static const size_t caps[NCAPS] = {1024, 4096};
static const int ks[NKS] = {2, 4, 8};
static const double must[NKS] = {1.0, 1.5, 2.0};

/* fanout in the natural configuration: one fo_cursor_next per item. */
static size_t nat_pop(pq_cons *c, bench_item **out, size_t max)
{
	(void)max;
	int rc = fo_cursor_next(c->cur, (void **)&out[0]);
	if (rc == FO_OK)
		return 1;
	if (rc != FO_END) {
		fprintf(stderr, "fanout read: %s\n", fo_status_name(rc));
		c->bad_end = true;
	}
	return 0;
}

/* I_D*: diagnostics that take one factor of the gap between fanout and
 * fanout_best at a time; they run only when named in --impl and are never
 * targets (bench/report.sh does not read them).  diag_sp: single producer;
 * diag_batch: batch reads of 64; diag_sp_batch: both (fanout_best at the
 * natural capacities); diag_bigcap: capacity 65536. */
enum { I_FANOUT, I_CKCOPY, I_BEST, I_DSP, I_DBATCH, I_DSPBATCH, I_DBIGCAP, NIMPL };
#define NMAIN I_DSP /* the implementations a run has by default */

static const pq_impl nat_impls[NIMPL] = {
    [I_FANOUT] = {"fanout", true, true, true, pq_fanout_mp_setup, pq_fanout_teardown, pq_nop_cons,
                  pq_nop_cons, pq_fanout_produce, pq_fanout_close, nat_pop},
    [I_CKCOPY] = {"ckring_copy", false, false, true, pq_ckcopy_setup, pq_ckring_teardown,
                  pq_nop_cons, pq_nop_cons, pq_ckcopy_produce, pq_flag_close, pq_ckcopy_pop},
    [I_BEST] = {"fanout_best", true, true, true, pq_fanout_setup, pq_fanout_teardown, pq_nop_cons,
                pq_nop_cons, pq_fanout_produce, pq_fanout_close, pq_fanout_pop},
    [I_DSP] = {"diag_sp", true, true, true, pq_fanout_setup, pq_fanout_teardown, pq_nop_cons,
               pq_nop_cons, pq_fanout_produce, pq_fanout_close, nat_pop},
    [I_DBATCH] = {"diag_batch", true, true, true, pq_fanout_mp_setup, pq_fanout_teardown,
                  pq_nop_cons, pq_nop_cons, pq_fanout_produce, pq_fanout_close, pq_fanout_pop},
    [I_DSPBATCH] = {"diag_sp_batch", true, true, true, pq_fanout_setup, pq_fanout_teardown,
                    pq_nop_cons, pq_nop_cons, pq_fanout_produce, pq_fanout_close, pq_fanout_pop},
    [I_DBIGCAP] = {"diag_bigcap", true, true, true, pq_fanout_mp_setup, pq_fanout_teardown,
                   pq_nop_cons, pq_nop_cons, pq_fanout_produce, pq_fanout_close, nat_pop},
};

/* Does @im run at fanout_best's capacity (the "best" case)? */
static bool at_best_cap(int im)
{
	return im == I_BEST || im == I_DBIGCAP;
}

/* Does @im read in batches? */
static bool batch_reads(int im)
{
	return im == I_BEST || im == I_DBATCH || im == I_DSPBATCH;
}

/* One cell of a run: an implementation at a capacity (index into caps[], or
 * NCAPS for the best configuration's 65536) and a cursor count. */
typedef struct sample {
	int impl, cap, k;
	double ips, cpu, csw, load;
} sample;

static sample *samples;
static size_t nsamples;

static const char *case_name(int cap)
{
	return cap == 0 ? "cap1024" : cap == 1 ? "cap4096" : "best";
}

static double stat_of(int impl, int cap, int k, int field, double *lo, double *hi)
{
	double v[1000];
	size_t n = 0;
	for (size_t i = 0; i < nsamples && n < 1000; i++) {
		const sample *s = &samples[i];
		if (s->impl == impl && s->cap == cap && s->k == k)
			v[n++] = field == 0   ? s->ips
			         : field == 1 ? s->cpu
			         : field == 2 ? s->csw
			                      : s->load;
	}
	double m = bench_median(v, n); /* sorts v */
	if (lo)
		*lo = n ? v[0] : 0;
	if (hi)
		*hi = n ? v[n - 1] : 0;
	return m;
}

static void summary(void)
{
	int met = 0, missed = 0;
	printf("\nB2n summary: medians over runs; cpu ns and context switches per item; load = "
	       "1-min load average (min-max over the cell's runs)\n");
	printf("%-8s %2s %-12s %9s %9s %9s %11s %11s %8s %8s\n", "case", "K", "impl", "M items/s",
	       "cpu ns", "csw/item", "load", "ratio", "must", "verdict");
	for (int ci = 0; ci <= NCAPS; ci++) {
		for (int ki = 0; ki < NKS; ki++) {
			int k = ks[ki];
			double f = stat_of(ci == NCAPS ? I_BEST : I_FANOUT, ci, k, 0, NULL, NULL);
			for (int im = 0; im < NIMPL; im++) {
				if ((ci == NCAPS) != at_best_cap(im))
					continue;
				double lo, hi;
				double ips = stat_of(im, ci, k, 0, NULL, NULL);
				if (ips == 0)
					continue;
				double cpu = stat_of(im, ci, k, 1, NULL, NULL);
				double csw = stat_of(im, ci, k, 2, NULL, NULL);
				stat_of(im, ci, k, 3, &lo, &hi);
				printf("%-8s %2d %-12s %9.2f %9.1f %9.4f %5.2f-%-5.2f",
				       case_name(ci), k, nat_impls[im].name, ips / 1e6, cpu, csw,
				       lo, hi);
				if (im == I_CKCOPY && f > 0) {
					double fcpu = stat_of(I_FANOUT, ci, k, 1, NULL, NULL);
					bool ok = f / ips >= must[ki] && fcpu < cpu;
					printf(" %10.2fx %7.1fx %8s", f / ips, must[ki],
					       ok ? "met" : "MISSED");
					printf("  (cpu %s)", fcpu < cpu ? "below" : "NOT below");
					ok ? met++ : missed++;
				} else if (im >= NMAIN) {
					double b = stat_of(I_BEST, NCAPS, k, 0, NULL, NULL);
					if (b > 0)
						printf(" %10.2fx %7s %8s  (vs fanout_best)",
						       ips / b, "-", "diag");
				} else if (im == I_FANOUT) {
					double b = stat_of(I_BEST, NCAPS, k, 0, NULL, NULL);
					if (b > 0) {
						bool ok = ips / b >= 0.6;
						printf(" %10.2fx %7.1fx %8s  (vs fanout_best)",
						       ips / b, 0.6, ok ? "met" : "MISSED");
						ok ? met++ : missed++;
					}
				}
				printf("\n");
			}
		}
	}
	printf("\nB2n targets: %d met, %d MISSED\n", met, missed);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	bench_opts o = {.items = 2000000, .runs = 5};
	uint64_t pool = 4 * BEST_CAPACITY, only_k = 0;
	const char *only = NULL;
	const bench_flag flags[] = {
	    {"pool", BENCH_FLAG_U64, &pool,
	     "items in the producer's pool (default 262144; more than 65536 + 64)"},
	    {"cursors", BENCH_FLAG_U64, &only_k, "only this cursor count (2, 4 or 8)"},
	    {"impl", BENCH_FLAG_STR, &only, "comma-separated implementations"},
	};
	bench_parse_args(argc, argv, &o, flags, sizeof(flags) / sizeof(flags[0]));
	if (pool <= BEST_CAPACITY + PQ_BATCH) {
		fprintf(stderr, "--pool must exceed %d (fanout_best's capacity plus a batch)\n",
		        BEST_CAPACITY + PQ_BATCH);
		return 2;
	}
	if (pool > o.items)
		pool = o.items > BEST_CAPACITY + PQ_BATCH ? o.items : pool;
	bench_item **items = pq_items_create(1, pool);
	samples = calloc((size_t)o.runs * (NCAPS * 5 + 2) * NKS, sizeof(*samples));
	if (!samples)
		return 2;
	printf("B2n: 1 producer -> K cursors, natural configuration, %" PRIu64
	       " items x %d runs, pool %" PRIu64 " items, %d cpus, load %.2f\n",
	       o.items, o.runs, pool, o.cpus, bench_load1());

	/* One run's cells for a K, rotated per run: fanout and ckring_copy at
	 * each capacity, then fanout_best. */
	struct cell {
		int impl, cap;
	} cells[NCAPS * 5 + 2];
	int nc = 0;
	for (int ci = 0; ci < NCAPS; ci++) {
		cells[nc++] = (struct cell){I_FANOUT, ci};
		cells[nc++] = (struct cell){I_CKCOPY, ci};
	}
	cells[nc++] = (struct cell){I_BEST, NCAPS};
	for (int im = NMAIN; im < NIMPL; im++) /* diagnostics: only when named in --impl */
		if (only && bench_in_list(only, nat_impls[im].name)) {
			if (at_best_cap(im))
				cells[nc++] = (struct cell){im, NCAPS};
			else
				for (int ci = 0; ci < NCAPS; ci++)
					cells[nc++] = (struct cell){im, ci};
		}

	bool ok = true;
	for (int run = 1; run <= o.runs; run++) {
		for (int ki = 0; ki < NKS; ki++) {
			int k = ks[ki];
			if (only_k && (uint64_t)k != only_k)
				continue;
			for (int j = 0; j < nc; j++) {
				const struct cell *cl = &cells[(j + run) % nc];
				const pq_impl *im = &nat_impls[cl->impl];
				if (!bench_in_list(only, im->name))
					continue;
				size_t cap = cl->cap == NCAPS ? BEST_CAPACITY : caps[cl->cap];
				pq_extra x = {.write = true,
				              .pop_max = batch_reads(cl->impl) ? PQ_BATCH : 1};
				pq_result r = pq_measure_ex(im, PQ_FANOUT, 1, k, cap, items, pool,
				                            o.items, 0, false, &x);
				if (!r.ok) {
					ok = false;
					continue;
				}
				sample s = {cl->impl,
				            cl->cap,
				            k,
				            (double)o.items * 1e9 / (double)r.wall_ns,
				            (double)r.cpu_ns / (double)o.items,
				            (double)r.csw / (double)o.items,
				            bench_load1()};
				samples[nsamples++] = s;
				printf(
				    "RESULT scenario=B2n impl=%s cursors=%d case=%s capacity=%zu "
				    "threads=%d cpus=%d items_per_s=%.0f cpu_ns_per_item=%.1f "
				    "csw_per_item=%.5f load1=%.2f run=%d items=%" PRIu64 "\n",
				    im->name, k, case_name(cl->cap), cap, k + 1, o.cpus, s.ips,
				    s.cpu, s.csw, s.load, run, o.items);
				fflush(stdout);
			}
		}
	}
	summary();
	free(samples);
	pq_items_destroy(items, 1);
	if (!ok)
		fprintf(stderr, "B2n: FAILED (see above)\n");
	return ok ? 0 : 1;
}
