/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * b7_latency.c - B7 and B8: one-way latency at 1 item per microsecond.
 *
 *   B7  1 producer -> 1 consumer: fanout, ckring (SPSC of pointers, the
 *       target's peer), mutex+condvar, zmq.
 *   B8  1 producer -> 2 consumers (3 threads on 2 cpus: oversubscribed):
 *       fanout, mutex+condvar and zmq (the target's peers), ckring_copy.
 *
 * The producer paces itself on CLOCK_MONOTONIC (one item every --pace ns),
 * stamps item.ts just before the push; each consumer records now - ts for
 * every item it takes (a batch is stamped once, when the batch arrives).
 * Printed per measurement: p50_ns, p99_ns, p999_ns, max_ns and over10ms (the
 * count of deliveries later than 10 ms).  Every consumer checks it saw every
 * item in order.  Waits are each implementation's own (fanout: spin, yield,
 * futex; ck_ring/wfcq: spin then sched_yield; mutex: condvar; zmq: its
 * mailbox).
 *
 *   b7_latency [--items N] [--runs R] [--quick] [--pace NS] [--impl a,b]
 *              [--scenario B7|B8]
 */
#include "peers.h"

static uint64_t opt_pace = 1000;
static const char *opt_impl, *opt_scn;

struct scn {
	const char *name;
	int ncons;
	const char *impls;
};

static const struct scn scns[] = {
    {"B7", 1, "fanout,ckring,mutex,zmq"},
    {"B8", 2, "fanout,mutex,zmq,ckring_copy"},
};

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	bench_opts o = {.items = 1000000, .runs = 5};
	const bench_flag flags[] = {
	    {"pace", BENCH_FLAG_U64, &opt_pace, "ns between items (default 1000: 1 item/us)"},
	    {"impl", BENCH_FLAG_STR, &opt_impl, "comma-separated implementations"},
	    {"scenario", BENCH_FLAG_STR, &opt_scn, "B7 or B8 (default both)"},
	};
	bench_parse_args(argc, argv, &o, flags, sizeof(flags) / sizeof(flags[0]));
	if (o.quick && o.items == 200000)
		o.items = 100000; /* 0.1 s per measurement */
	bench_item **items = pq_items_create(1, o.items);
	bool ok = true;

	for (size_t si = 0; si < sizeof(scns) / sizeof(scns[0]); si++) {
		const struct scn *sc = &scns[si];
		if (!bench_in_list(opt_scn, sc->name))
			continue;
		const pq_impl *list[PQ_NIMPLS];
		size_t nl = 0;
		for (size_t i = 0; i < PQ_NIMPLS; i++)
			if (bench_in_list(opt_impl ? opt_impl : sc->impls, pq_impls[i].name) &&
			    bench_in_list(sc->impls, pq_impls[i].name))
				list[nl++] = &pq_impls[i];
		double p50[PQ_NIMPLS][64], p99[PQ_NIMPLS][64], mx[PQ_NIMPLS][64];
		int nr = o.runs < 64 ? o.runs : 64;
		printf("%s: 1 producer -> %d consumer(s), 1 item per %" PRIu64 " ns, %" PRIu64
		       " items x %d runs, %d cpus\n",
		       sc->name, sc->ncons, opt_pace, o.items, nr, o.cpus);
		for (int run = 1; run <= nr; run++)
			for (size_t j = 0; j < nl; j++) {
				size_t ii = (j + (size_t)run) % nl;
				const pq_impl *im = list[ii];
				pq_result r = pq_measure(im, PQ_FANOUT, 1, sc->ncons, 65536, items,
				                         o.items, o.items, opt_pace, true);
				if (!r.ok) {
					ok = false;
					free(r.lat);
					continue;
				}
				uint32_t q50 = pq_quantile(r.lat, r.nlat, 0.50, true);
				uint32_t q99 = pq_quantile(r.lat, r.nlat, 0.99, false);
				uint32_t q999 = pq_quantile(r.lat, r.nlat, 0.999, false);
				uint32_t qmax = r.nlat ? r.lat[r.nlat - 1] : 0;
				size_t over = 0;
				for (size_t k = r.nlat; k-- > 0 && r.lat[k] > 10000000u;)
					over++;
				p50[ii][run - 1] = q50, p99[ii][run - 1] = q99,
				              mx[ii][run - 1] = qmax;
				printf("RESULT scenario=%s impl=%s cursors=%d threads=%d cpus=%d "
				       "items_per_s=%.0f cpu_ns_per_item=%.1f p50_ns=%u p99_ns=%u "
				       "p999_ns=%u max_ns=%u over10ms=%zu run=%d items=%" PRIu64
				       "\n",
				       sc->name, im->name, sc->ncons, sc->ncons + 1, o.cpus,
				       (double)o.items * 1e9 / (double)r.wall_ns,
				       (double)r.cpu_ns / (double)o.items, q50, q99, q999, qmax,
				       over, run, o.items);
				fflush(stdout);
				free(r.lat);
			}
		printf("\n%s summary: medians over runs (ns)\n%-12s %10s %10s %12s\n", sc->name,
		       "impl", "p50", "p99", "max");
		for (size_t j = 0; j < nl; j++) {
			qsort(p50[j], (size_t)nr, sizeof(double), cmp_d);
			qsort(p99[j], (size_t)nr, sizeof(double), cmp_d);
			qsort(mx[j], (size_t)nr, sizeof(double), cmp_d);
			printf("%-12s %10.0f %10.0f %12.0f\n", list[j]->name, p50[j][nr / 2],
			       p99[j][nr / 2], mx[j][nr / 2]);
		}
		printf("\n");
	}
	pq_items_destroy(items, 1);
	if (!ok)
		fprintf(stderr, "B7/B8: FAILED (see above)\n");
	return ok ? 0 : 1;
}
