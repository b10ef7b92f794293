/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * b9_blocking.c - B9: blocking consumers, 1 producer -> 1 consumer.
 *
 * Throughput (items/s, producer flat out) of consumers that block instead of
 * polling: fanout (fo_cursor_next: a brief spin, a few yields, then a futex),
 * fanout_fd (event-loop style: read until FO_EMPTY, fo_cursor_arm, poll on
 * fo_cursor_fd: no spinning at all) and mutex+condvar (the target's peer).
 *
 * Idle: the consumer blocks on an empty queue for --idle-ms (default 1000)
 * while the main thread sleeps; then one item is pushed and the queue closed.
 * Printed: idle_cpu_pct (process user+sys over the idle time) and
 * idle_wakeups (the consumer thread's voluntary context switches while idle,
 * RUSAGE_THREAD; a timed poll would show one per period).  Targets: items/s
 * >= 2x mutex, idle CPU < 1%, no timed wake-ups.  Every run checks that all
 * items arrived in order.
 *
 *   b9_blocking [--items N] [--runs R] [--quick] [--idle-ms N]
 */
#include "peers.h"

#include <sys/resource.h>

static uint64_t opt_idle_ms = 1000;

struct idle {
	pq *q;
	uint64_t nvcsw0, nvcsw1;
	size_t got;
	pthread_barrier_t b;
};

static long thread_nvcsw(void)
{
	struct rusage ru;
	getrusage(RUSAGE_THREAD, &ru);
	return ru.ru_nvcsw;
}

static void *idle_consumer(void *arg)
{
	struct idle *d = arg;
	bench_item *out[PQ_BATCH];
	pthread_barrier_wait(&d->b);
	d->nvcsw0 = (uint64_t)thread_nvcsw();
	size_t k = d->q->im->pop(&d->q->c[0], out, PQ_BATCH);
	d->nvcsw1 = (uint64_t)thread_nvcsw();
	d->got = k;
	while (k)
		k = d->q->im->pop(&d->q->c[0], out, PQ_BATCH);
	return NULL;
}

/* Idle measurement: cpu % and wake-ups of a blocked consumer. */
static bool idle_case(const pq_impl *im, bench_item **items, double *cpu_pct, double *wakeups)
{
	pq *q;
	if (posix_memalign((void **)&q, 64, sizeof(*q)))
		return false;
	memset(q, 0, sizeof(*q));
	q->im = im, q->mode = PQ_FANOUT, q->nprod = 1, q->ncons = 1, q->cap = 1024;
	q->n = 1, q->npool = 1, q->items = items;
	q->c[0].q = q;
	atomic_init(&q->closed, 0);
	atomic_init(&q->producers_left, 1);
	if (im->setup(q)) {
		free(q);
		return false;
	}
	struct idle d = {.q = q};
	pthread_t t;
	pthread_barrier_init(&d.b, NULL, 2);
	pthread_create(&t, NULL, idle_consumer, &d);
	pthread_barrier_wait(&d.b);
	nanosleep(&(struct timespec){.tv_nsec = 20000000}, NULL); /* let it settle: 20 ms */
	uint64_t c0 = bench_cpu_ns(), t0 = bench_now_ns();
	struct timespec ts = {.tv_sec = (time_t)(opt_idle_ms / 1000),
	                      .tv_nsec = (long)(opt_idle_ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
	uint64_t c1 = bench_cpu_ns(), t1 = bench_now_ns();
	q->im->produce(q, 0);
	q->im->close(q);
	pthread_join(t, NULL);
	*cpu_pct = 100.0 * (double)(c1 - c0) / (double)(t1 - t0);
	*wakeups = (double)(d.nvcsw1 - d.nvcsw0);
	bool ok = d.got == 1;
	im->teardown(q);
	pthread_barrier_destroy(&d.b);
	free(q);
	return ok;
}

int main(int argc, char **argv)
{
	bench_opts o = {.items = 10000000, .runs = 5};
	const bench_flag flags[] = {
	    {"idle-ms", BENCH_FLAG_U64, &opt_idle_ms, "idle interval per run (default 1000)"},
	};
	bench_parse_args(argc, argv, &o, flags, sizeof(flags) / sizeof(flags[0]));
	if (o.quick && opt_idle_ms == 1000)
		opt_idle_ms = 200;
	static const char *names[] = {"fanout", "fanout_fd", "mutex"};
	const pq_impl *list[3];
	for (int i = 0; i < 3; i++)
		list[i] = pq_find(names[i]);
	uint64_t pool = o.items < 1000000 ? o.items : 1000000; /* items are reused */
	bench_item **items = pq_items_create(1, pool);
	bench_results res;
	bench_results_init(&res, "B9", "cursors", o.cpus);
	bool ok = true;
	printf("B9: blocking consumers 1 -> 1, %" PRIu64 " items x %d runs, idle %" PRIu64
	       " ms, %d cpus\n",
	       o.items, o.runs, opt_idle_ms, o.cpus);
	for (int run = 1; run <= o.runs; run++)
		for (int j = 0; j < 3; j++) {
			const pq_impl *im = list[(j + run) % 3];
			pq_result r =
			    pq_measure(im, PQ_FANOUT, 1, 1, 65536, items, pool, o.items, 0, false);
			double cpu = 0, wk = 0;
			bool iok = idle_case(im, items, &cpu, &wk);
			if (!r.ok || !iok) {
				fprintf(stderr, "FAIL B9 %s: %s\n", im->name,
				        r.ok ? "idle consumer did not get its item"
				             : "throughput run");
				ok = false;
				continue;
			}
			printf("RESULT scenario=B9 impl=%s cursors=1 threads=2 cpus=%d "
			       "items_per_s=%.0f "
			       "cpu_ns_per_item=%.1f idle_cpu_pct=%.3f idle_wakeups=%.0f run=%d "
			       "items=%" PRIu64 "\n",
			       im->name, o.cpus, (double)o.items * 1e9 / (double)r.wall_ns,
			       (double)r.cpu_ns / (double)o.items, cpu, wk, run, o.items);
			fflush(stdout);
			bench_sample s = {im->name, 1, (double)o.items * 1e9 / (double)r.wall_ns,
			                  (double)r.cpu_ns / (double)o.items};
			if (res.n == res.cap) {
				res.cap = res.cap ? 2 * res.cap : 64;
				res.v = realloc(res.v, res.cap * sizeof(*res.v));
			}
			res.v[res.n++] = s;
		}
	bench_summary(&res, "fanout");
	bench_results_fini(&res);
	pq_items_destroy(items, 1);
	if (!ok)
		fprintf(stderr, "B9: FAILED (see above)\n");
	return ok ? 0 : 1;
}
