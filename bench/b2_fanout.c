/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * b2_fanout.c - B2: 1 producer -> N consumers, every consumer sees every item.
 *
 * N = 1, 2, 4.  Items are the 64-byte bench_item, preallocated (no malloc is
 * measured).  Implementations, interleaved within each run:
 *
 *   fanout       one stream (bounded, --capacity, default 65536; no item
 *                destructor; single_producer = true), N ACTIVE cursors
 *                (one from fo_stream_cursor, the rest forks).  The producer
 *                calls fo_stream_push per item, then
 *                fo_stream_close; each consumer drains with fo_cursor_next_many
 *                (batches of 64) and blocks in fo_cursor_next when empty.
 *   fanout_mp    the same with default options (single_producer = false:
 *                every push enters an RCU read section), for comparison.
 *   ckring_copy  the obvious C fan-out: one ck_ring SPSC per consumer whose
 *                slots hold 64-byte items by value (CK_RING_PROTOTYPE); the
 *                producer copies each item into every consumer's ring.  Both
 *                sides spin briefly, then sched_yield, on full / empty.
 *   zmq          (with HAVE_ZMQ) ZeroMQ inproc PUB -> N SUB, 64-byte messages,
 *                SNDHWM = RCVHWM = 0 (PUB drops at the HWM, so unlimited), and
 *                the producer keeps at most --capacity items ahead of the
 *                slowest subscriber (their progress is published every 1024
 *                items) so memory stays flat.  Probe messages are sent until
 *                every subscriber is connected; an end marker closes the run.
 *
 * Measured: wall time from the producer's first item until every consumer has
 * seen the last one (items/s produced), and the process's user+sys CPU time
 * over the same run divided by the items (cpu_ns_per_item).  Every consumer
 * checks that it saw seq 0..N-1 in order; any failure makes the exit status 1.
 *
 *   b2_fanout [--items N] [--runs R] [--quick] [--capacity N] [--ring N]
 *             [--cursors N] [--impl fanout,ckring_copy,zmq]
 */
#include "common.h"

#include <fanout/fanout.h>

#include <ck_ring.h>
#include <pthread.h>
#include <stdatomic.h>
#ifdef HAVE_ZMQ
#include <zmq.h>
#endif

#define MAX_CONSUMERS  4
#define BATCH          64               /* fo_cursor_next_many batch */
#define PROGRESS_EVERY 1024             /* zmq subscribers publish their progress this often */
#define SEQ_PROBE      (UINT64_MAX - 1) /* zmq: "are you connected?" */
#define SEQ_END        UINT64_MAX       /* zmq: end of the run */

CK_RING_PROTOTYPE(bench_item, bench_item)

static const int consumer_counts[] = {1, 2, 4};

static uint64_t opt_capacity = 65536; /* fanout capacity; zmq producer window (0: none) */
static uint64_t opt_ring = 4096;      /* ck_ring slots per consumer (power of two) */
static uint64_t opt_cursors;          /* 0: 1, 2 and 4 */
static const char *opt_impl;          /* NULL: every implementation */

struct run;

/* One per consumer thread, on its own cache lines.  The consumer counts in
 * locals and writes its results here once, at the end, so the producer's
 * reads of `slots` and `ring` share no line with per-item writes (except
 * ck_ring's own consumer index, which is the point of the comparison). */
struct consumer {
	struct run *run;
	pthread_t thread;
	fo_cursor *cursor;                           /* fanout */
	bench_item *slots;                           /* ckring_copy: the ring's 64-byte slots */
	uint64_t seen;                               /* results: items seen in order... */
	uint64_t errors;                             /* ...items out of order */
	uint64_t end_ns;                             /* ...when it saw the last item */
	bool ended_ok;                               /* ...its read loop ended the expected way */
	ck_ring_t ring __attribute__((aligned(64))); /* ckring_copy */
	_Atomic uint64_t progress __attribute__((aligned(64))); /* zmq: items received */
} __attribute__((aligned(64)));

struct run {
	int ncons;
	uint64_t n;
	const bench_item *items;
	pthread_barrier_t start; /* consumers ready -> producer starts */
	uint64_t t0, cpu0;       /* set by the producer just before its first item */
	fo_stream *stream;       /* fanout */
#ifdef HAVE_ZMQ
	void *zctx, *pub;
	atomic_int zready; /* subscribers that received a probe */
#endif
	struct consumer cons[MAX_CONSUMERS];
};

static void start_clock(struct run *r)
{
	r->cpu0 = bench_cpu_ns();
	r->t0 = bench_now_ns();
}

/* A consumer's verdict, stored once at the end of its loop. */
static void finish(struct consumer *c, uint64_t seen, uint64_t errors, uint64_t end_ns, bool ok)
{
	c->seen = seen;
	c->errors = errors;
	c->end_ns = end_ns;
	c->ended_ok = ok;
}

/* ---- fanout -------------------------------------------------------------------------------- */

static int fanout_setup_opts(struct run *r, bool single_producer)
{
	fo_stream_opts o;
	fo_stream_opts_init(&o);
	o.capacity = (size_t)opt_capacity;
	o.single_producer = single_producer;
	int rc = fo_stream_create(&r->stream, &o);
	if (rc == FO_OK)
		rc = fo_stream_cursor(r->stream, &r->cons[0].cursor, FO_ACTIVE);
	for (int i = 1; i < r->ncons && rc == FO_OK; i++)
		rc = fo_cursor_fork(r->cons[0].cursor, &r->cons[i].cursor, FO_ACTIVE);
	if (rc != FO_OK)
		fprintf(stderr, "fanout setup: %s\n", fo_status_name(rc));
	return rc;
}

static int fanout_setup(struct run *r)
{
	return fanout_setup_opts(r, true);
}
static int fanout_mp_setup(struct run *r)
{
	return fanout_setup_opts(r, false);
}

static void *fanout_consumer(void *arg)
{
	struct consumer *c = arg;
	fo_cursor *cur = c->cursor;
	const uint64_t last = c->run->n;
	uint64_t seen = 0, errors = 0, end_ns = 0;
	void *batch[BATCH];
	size_t n;
	int rc;

	pthread_barrier_wait(&c->run->start);
	for (;;) {
		rc = fo_cursor_next_many(cur, batch, BATCH, &n);
		if (rc == FO_EMPTY) { /* nothing ready: wait for one item */
			rc = fo_cursor_next(cur, &batch[0]);
			n = 1;
		}
		if (rc != FO_OK)
			break;
		for (size_t i = 0; i < n; i++)
			errors += ((const bench_item *)batch[i])->seq != seen++;
		if (seen == last) /* the last item: stop the clock */
			end_ns = bench_now_ns();
	}
	if (rc != FO_END)
		fprintf(stderr, "fanout consumer: %s\n", fo_status_name(rc));
	finish(c, seen, errors, end_ns, rc == FO_END);
	return NULL;
}

static int fanout_produce(struct run *r)
{
	int rc = FO_OK;
	start_clock(r);
	for (uint64_t i = 0; i < r->n && rc == FO_OK; i++)
		rc = fo_stream_push(r->stream, (void *)&r->items[i]);
	if (rc != FO_OK)
		fprintf(stderr, "fanout push: %s\n", fo_status_name(rc));
	fo_stream_close(r->stream); /* consumers read the rest, then FO_END */
	return rc;
}

static void fanout_teardown(struct run *r)
{
	for (int i = 0; i < r->ncons; i++)
		fo_cursor_close(r->cons[i].cursor);
	fo_stream_destroy(r->stream);
}

/* ---- ck_ring, one per consumer, copying ---------------------------------------------------- */

static int ckring_setup(struct run *r)
{
	for (int i = 0; i < r->ncons; i++) {
		struct consumer *c = &r->cons[i];
		if (posix_memalign((void **)&c->slots, 64, opt_ring * sizeof(bench_item)))
			return -1;
		memset(c->slots, 0, opt_ring * sizeof(bench_item)); /* touch the pages */
		ck_ring_init(&c->ring, (unsigned)opt_ring);
	}
	return 0;
}

static void *ckring_consumer(void *arg)
{
	struct consumer *c = arg;
	ck_ring_t *ring = &c->ring;
	bench_item *slots = c->slots, it;
	const uint64_t last = c->run->n;
	uint64_t seen = 0, errors = 0;
	unsigned spins = 0;

	pthread_barrier_wait(&c->run->start);
	while (seen < last) {
		if (ck_ring_dequeue_spsc_bench_item(ring, slots, &it)) {
			errors += it.seq != seen++;
			spins = 0;
		} else {
			bench_backoff(&spins);
		}
	}
	finish(c, seen, errors, bench_now_ns(), true);
	return NULL;
}

static int ckring_produce(struct run *r)
{
	start_clock(r);
	for (uint64_t i = 0; i < r->n; i++) {
		for (int k = 0; k < r->ncons; k++) {
			struct consumer *c = &r->cons[k];
			unsigned spins = 0;
			while (!ck_ring_enqueue_spsc_bench_item(&c->ring, c->slots,
			                                        (bench_item *)&r->items[i]))
				bench_backoff(&spins);
		}
	}
	return 0;
}

static void ckring_teardown(struct run *r)
{
	for (int i = 0; i < r->ncons; i++)
		free(r->cons[i].slots);
}

/* ---- ZeroMQ inproc PUB/SUB ----------------------------------------------------------------- */

#ifdef HAVE_ZMQ
static int zmq_setup(struct run *r)
{
	int zero = 0;
	r->zctx = zmq_ctx_new();
	if (!r->zctx)
		return -1;
	r->pub = zmq_socket(r->zctx, ZMQ_PUB);
	if (!r->pub || zmq_setsockopt(r->pub, ZMQ_SNDHWM, &zero, sizeof(zero)) ||
	    zmq_bind(r->pub, "inproc://b2")) {
		fprintf(stderr, "zmq setup: %s\n", zmq_strerror(zmq_errno()));
		return -1;
	}
	atomic_init(&r->zready, 0);
	return 0;
}

static void *zmq_consumer(void *arg)
{
	struct consumer *c = arg;
	struct run *r = c->run;
	uint64_t seen = 0, errors = 0, end_ns = 0;
	bool probed = false;
	bench_item it;
	int zero = 0;
	void *sub = zmq_socket(r->zctx, ZMQ_SUB);
	bool ok = sub && !zmq_setsockopt(sub, ZMQ_RCVHWM, &zero, sizeof(zero)) &&
	          !zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0) && !zmq_connect(sub, "inproc://b2");

	pthread_barrier_wait(&r->start);
	while (ok) {
		int len = zmq_recv(sub, &it, sizeof(it), 0);
		if (len != (int)sizeof(it)) {
			if (len < 0 && zmq_errno() == EINTR)
				continue;
			ok = false;
			break;
		}
		if (it.seq == SEQ_PROBE) {
			if (!probed)
				atomic_fetch_add(&r->zready, 1);
			probed = true;
			continue;
		}
		if (it.seq == SEQ_END)
			break;
		errors += it.seq != seen++;
		if (seen % PROGRESS_EVERY == 0) /* relaxed: a hint for flow control */
			atomic_store_explicit(&c->progress, seen, memory_order_relaxed);
		if (seen == r->n)
			end_ns = bench_now_ns();
	}
	finish(c, seen, errors, end_ns, ok);
	if (!ok)
		fprintf(stderr, "zmq consumer: %s\n", zmq_strerror(zmq_errno()));
	if (sub) {
		zmq_setsockopt(sub, ZMQ_LINGER, &zero, sizeof(zero));
		zmq_close(sub);
	}
	return NULL;
}

static uint64_t zmq_slowest(struct run *r)
{
	uint64_t m = UINT64_MAX;
	for (int k = 0; k < r->ncons; k++) {
		uint64_t p = atomic_load_explicit(&r->cons[k].progress, memory_order_relaxed);
		m = p < m ? p : m;
	}
	return m;
}

static int zmq_produce(struct run *r)
{
	bench_item mark = {.seq = SEQ_PROBE};
	int rc = 0;

	/* Subscriptions reach a PUB asynchronously; until they do it drops
	 * everything.  Probe until every subscriber has heard one. */
	for (int tries = 0; atomic_load(&r->zready) < r->ncons; tries++) {
		if (tries == 10000) { /* 10 s */
			fprintf(stderr, "zmq: subscribers never connected\n");
			rc = -1;
			break;
		}
		zmq_send(r->pub, &mark, sizeof(mark), 0);
		nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
	}
	start_clock(r);
	for (uint64_t i = 0; i < r->n && rc == 0; i++) {
		if (opt_capacity && i % PROGRESS_EVERY == 0) {
			unsigned spins = 0;
			while (i - zmq_slowest(r) > opt_capacity)
				bench_backoff(&spins);
		}
		if (zmq_send(r->pub, &r->items[i], sizeof(bench_item), 0) !=
		    (int)sizeof(bench_item)) {
			fprintf(stderr, "zmq send: %s\n", zmq_strerror(zmq_errno()));
			rc = -1;
		}
	}
	mark.seq = SEQ_END;
	zmq_send(r->pub, &mark, sizeof(mark), 0);
	return rc;
}

static void zmq_teardown(struct run *r)
{
	int zero = 0;
	if (r->pub) {
		zmq_setsockopt(r->pub, ZMQ_LINGER, &zero, sizeof(zero));
		zmq_close(r->pub);
	}
	if (r->zctx)
		zmq_ctx_term(r->zctx);
}
#endif /* HAVE_ZMQ */

/* ---- harness ------------------------------------------------------------------------------- */

typedef struct impl {
	const char *name;
	int (*setup)(struct run *r); /* 0: ready */
	void *(*consumer)(void *consumer);
	int (*produce)(struct run *r); /* calls start_clock(); 0: all items sent */
	void (*teardown)(struct run *r);
} impl;

static const impl impls[] = {
    {"fanout", fanout_setup, fanout_consumer, fanout_produce, fanout_teardown},
    {"fanout_mp", fanout_mp_setup, fanout_consumer, fanout_produce, fanout_teardown},
    {"ckring_copy", ckring_setup, ckring_consumer, ckring_produce, ckring_teardown},
#ifdef HAVE_ZMQ
    {"zmq", zmq_setup, zmq_consumer, zmq_produce, zmq_teardown},
#endif
};
#define NIMPLS (sizeof(impls) / sizeof(impls[0]))

/* One measurement; false if any check failed. */
static bool measure(const impl *im, int ncons, const bench_item *items, uint64_t n, int run,
                    bench_results *res)
{
	struct run *r;
	bool ok = true;
	uint64_t end = 0;

	if (posix_memalign((void **)&r, 64, sizeof(*r)))
		return false;
	memset(r, 0, sizeof(*r));
	r->ncons = ncons;
	r->n = n;
	r->items = items;
	for (int k = 0; k < ncons; k++)
		r->cons[k].run = r;
	if (im->setup(r) != 0) {
		im->teardown(r);
		free(r);
		return false;
	}
	pthread_barrier_init(&r->start, NULL, (unsigned)ncons + 1);
	for (int k = 0; k < ncons; k++)
		pthread_create(&r->cons[k].thread, NULL, im->consumer, &r->cons[k]);
	pthread_barrier_wait(&r->start);
	ok = im->produce(r) == 0;
	for (int k = 0; k < ncons; k++)
		pthread_join(r->cons[k].thread, NULL);
	uint64_t cpu1 = bench_cpu_ns();

	for (int k = 0; k < ncons; k++) {
		struct consumer *c = &r->cons[k];
		if (!c->ended_ok || c->seen != n || c->errors) {
			fprintf(stderr,
			        "FAIL impl=%s cursors=%d consumer %d: saw %" PRIu64 " of %" PRIu64
			        ", %" PRIu64 " out of order, %s end\n",
			        im->name, ncons, k, c->seen, n, c->errors,
			        c->ended_ok ? "clean" : "bad");
			ok = false;
		}
		end = c->end_ns > end ? c->end_ns : end;
	}
	if (ok)
		bench_record(res, im->name, ncons, ncons + 1, run, n, end - r->t0, cpu1 - r->cpu0);
	im->teardown(r);
	pthread_barrier_destroy(&r->start);
	free(r);
	return ok;
}

int main(int argc, char **argv)
{
	bench_opts o = {.items = 2000000, .runs = 5};
	const bench_flag flags[] = {
	    {"capacity", BENCH_FLAG_U64, &opt_capacity,
	     "fanout stream capacity and zmq producer window (default 65536; 0: unbounded)"},
	    {"ring", BENCH_FLAG_U64, &opt_ring, "ck_ring slots per consumer (default 4096)"},
	    {"cursors", BENCH_FLAG_U64, &opt_cursors,
	     "only this cursor count, 1..4 (default: 1, 2 and 4)"},
	    {"impl", BENCH_FLAG_STR, &opt_impl,
	     "comma-separated implementations (default fanout,fanout_mp,ckring_copy,zmq)"},
	};
	bench_parse_args(argc, argv, &o, flags, sizeof(flags) / sizeof(flags[0]));
	if (opt_ring < 2 || opt_ring > (1u << 24) || (opt_ring & (opt_ring - 1))) {
		fprintf(stderr, "--ring must be a power of two in [2, 2^24]\n");
		return 2;
	}

	const int *counts = consumer_counts;
	size_t ncounts = sizeof(consumer_counts) / sizeof(consumer_counts[0]);
	int one = (int)opt_cursors;
	if (opt_cursors > MAX_CONSUMERS) {
		fprintf(stderr, "--cursors must be 1..%d\n", MAX_CONSUMERS);
		return 2;
	} else if (opt_cursors) {
		counts = &one;
		ncounts = 1;
	}

	bench_item *items = bench_items_create(o.items);
	bench_results res;
	bench_results_init(&res, "B2", "cursors", o.cpus);
	printf("B2: 1 producer -> N cursors, %" PRIu64 " items x %d runs, capacity %" PRIu64
	       ", ck_ring %" PRIu64 " slots, %d cpus\n",
	       o.items, o.runs, opt_capacity, opt_ring, o.cpus);

	bool ok = true;
	for (int run = 1; run <= o.runs; run++) {
		for (size_t ci = 0; ci < ncounts; ci++) {
			/* rotate the order of the implementations from run to run */
			for (size_t j = 0; j < NIMPLS; j++) {
				const impl *im = &impls[(j + (size_t)run) % NIMPLS];
				if (!bench_in_list(opt_impl, im->name))
					continue;
				ok &= measure(im, counts[ci], items, o.items, run, &res);
			}
		}
	}
	bench_summary(&res, "fanout");
	bench_results_fini(&res);
	free(items);
	if (!ok)
		fprintf(stderr, "B2: FAILED (see above)\n");
	return ok ? 0 : 1;
}
