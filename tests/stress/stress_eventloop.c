/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * stress_eventloop.c - no lost wake-up for event-loop readers (fo_cursor_fd, fo_cursor_arm,
 * fo_cursor_set_notify).
 *
 * Two producers push ROUNDS items in total (single pushes and small push_many batches) and
 * pause at random after each: not at all, a short spin, sched_yield(), a sleep of up to
 * 100 µs, or until the reader has taken everything this producer pushed (bounded), so the
 * reader keeps finding the stream empty and going to sleep at every possible moment of a
 * push.  The echo waits matter: a lost wake-up is otherwise repaired by the next push (or
 * the final close) and only shows as latency; with both producers waiting for the reader,
 * nothing repairs it and the bounded wait fails.  Each producer also waits for the echo of
 * its last item before the last one closes the stream.  Variants:
 *
 *   epoll   one active cursor; the reader drains it with fo_cursor_next_many() until
 *           FO_EMPTY, calls fo_cursor_arm() and, on 0, sleeps in epoll_wait() on the
 *           cursor's fd;
 *   notify  the same with fo_cursor_set_notify(): the hook sets a flag under a mutex and
 *           signals a condition variable that the reader waits on;
 *   group   two share-group members, both fds in one epoll set, drained by one thread.
 *
 * Every wait is bounded (5 s, x4 under sanitizers).  A wait that times out fails the test:
 * "LOST WAKE-UP" if the cursor had something to read at that moment (or a producer waited
 * that long for the reader to take its item), "stalled" otherwise.
 * The reader also checks every item: per producer, sequence numbers arrive in order with no
 * gap and no duplicate (for the group: each exactly once across the members), and the hook
 * ran at most once per fo_cursor_arm() call.
 *
 *   usage: stress_eventloop [--seed N] [--rounds N]     (default 100000, /10 under FO_SANITIZE)
 * Exit status 0 = pass.  The seed is printed; pass it back with --seed to replay the pauses.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "fo_test.h"

#define NPROD     2
#define MAX_BATCH 4

static uint64_t seed;
static int wait_ms = 5000;
static atomic_ulong failures;

#define FAIL(...)                                                  \
	do {                                                       \
		atomic_fetch_add(&failures, 1);                    \
		fprintf(stderr, "FAIL [seed %" PRIu64 "] ", seed); \
		fprintf(stderr, __VA_ARGS__);                      \
		fputc('\n', stderr);                               \
	} while (0)

/* ---- items: (producer, seq) packed into a non-NULL token ------------------------------------ */

static void *tok(unsigned producer, uint64_t seq)
{
	return (void *)(uintptr_t)(1 + seq * NPROD + producer);
}

static unsigned tok_producer(const void *p)
{
	return (unsigned)(((uintptr_t)p - 1) % NPROD);
}

static uint64_t tok_seq(const void *p)
{
	return ((uintptr_t)p - 1) / NPROD;
}

typedef struct run run;
static bool wait_echo(run *r, unsigned id, uint64_t n);

/* ---- random pauses ----------------------------------------------------------------------- */

static uint64_t rnd(uint64_t *s)
{
	uint64_t x = *s; /* xorshift64* */
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

static bool pause_at_random(uint64_t *r, run *rr, unsigned id, uint64_t pushed)
{
	uint64_t v = rnd(r) >> 32;
	switch (v % 20) {
	case 0 ... 3: /* until the reader took everything we pushed */
		return wait_echo(rr, id, pushed);
	case 4 ... 9: /* no pause */
		break;
	case 10 ... 14: /* a short spin */
		for (uint64_t k = (v >> 8) % 2000; k; k--)
			atomic_signal_fence(memory_order_seq_cst);
		break;
	case 15 ... 17:
		sched_yield();
		break;
	default: { /* 1 .. 100 µs: long enough for the reader to fall asleep */
		struct timespec ts = {0, (long)(1000 + (v >> 8) % 99000)};
		nanosleep(&ts, NULL);
	}
	}
	return true;
}

/* ---- producers ------------------------------------------------------------------------------ */

struct run {
	fo_stream *s;
	uint64_t per_producer;
	atomic_int running;
	_Atomic uint64_t taken[NPROD]; /* items of each producer the reader has taken */
	atomic_bool reader_gone;       /* the reader stopped (failure): stop waiting */
};

/* Wait until the reader has taken the first @n items of producer @id; false (after
 * recording a failure) if that takes longer than the bound. */
static bool wait_echo(run *r, unsigned id, uint64_t n)
{
	int64_t t0 = ft_now_ns();
	unsigned spins = 0;
	while (atomic_load_explicit(&r->taken[id], memory_order_acquire) < n) {
		if (atomic_load(&r->reader_gone))
			return false;
		if (ft_now_ns() - t0 > FT_MS(wait_ms)) {
			FAIL("LOST WAKE-UP: producer %u waited %d ms for the reader to take its "
			     "item "
			     "%" PRIu64 " (taken: %" PRIu64 ")",
			     id, wait_ms, n - 1, atomic_load(&r->taken[id]));
			return false;
		}
		if (++spins < 64) {
			sched_yield();
		} else {
			struct timespec ts = {0, 20000};
			nanosleep(&ts, NULL);
		}
	}
	return true;
}

typedef struct producer {
	pthread_t th;
	run *r;
	unsigned id;
} producer;

static void *produce(void *arg)
{
	producer *p = arg;
	run *r = p->r;
	uint64_t rs = seed * 0x9e3779b97f4a7c15ULL + p->id + 1, seq = 0;
	(void)rnd(&rs);
	while (seq < r->per_producer) {
		uint64_t n = 1 + (rnd(&rs) >> 40) % MAX_BATCH;
		if (n > r->per_producer - seq)
			n = r->per_producer - seq;
		void *items[MAX_BATCH];
		for (uint64_t i = 0; i < n; i++)
			items[i] = tok(p->id, seq + i);
		int rc = n == 1 ? fo_stream_push(r->s, items[0])
		                : fo_stream_push_many(r->s, items, (size_t)n);
		if (rc != FO_OK) {
			FAIL("producer %u: push returned %s", p->id, fo_status_name(rc));
			break;
		}
		seq += n;
		if (!pause_at_random(&rs, r, p->id, seq))
			break;
	}
	/* The end would wake the reader anyway: make sure the last items did first. */
	wait_echo(r, p->id, seq);
	if (atomic_fetch_sub(&r->running, 1) == 1)
		fo_stream_close(r->s); /* the last producer ends the stream */
	return NULL;
}

static void start_producers(run *r, producer *p)
{
	atomic_init(&r->running, NPROD);
	atomic_init(&r->reader_gone, false);
	for (unsigned i = 0; i < NPROD; i++)
		atomic_init(&r->taken[i], 0);
	for (unsigned i = 0; i < NPROD; i++) {
		p[i].r = r;
		p[i].id = i;
		if (pthread_create(&p[i].th, NULL, produce, &p[i]) != 0) {
			fprintf(stderr, "pthread_create failed\n");
			exit(2);
		}
	}
}

static void join_producers(producer *p)
{
	for (unsigned i = 0; i < NPROD; i++)
		pthread_join(p[i].th, NULL);
}

/* ---- the oracle ------------------------------------------------------------------------------ */

typedef struct oracle {
	uint64_t next[NPROD];  /* per producer: the next expected sequence (ordered readers) */
	uint64_t count[NPROD]; /* per producer: items taken */
	uint8_t *seen[NPROD];  /* per producer, per seq: times seen (group) */
	uint64_t total;
} oracle;

static void oracle_init(oracle *o, uint64_t per_producer)
{
	memset(o, 0, sizeof(*o));
	for (unsigned i = 0; i < NPROD; i++) {
		o->seen[i] = calloc(per_producer ? per_producer : 1, 1);
		if (!o->seen[i])
			exit(2);
	}
}

static void oracle_fini(oracle *o)
{
	for (unsigned i = 0; i < NPROD; i++)
		free(o->seen[i]);
}

/* @ordered: this cursor must see each producer's items in sequence with no gap. */
static void oracle_take(oracle *o, void *const *items, size_t n, uint64_t per_producer,
                        uint64_t *last, bool ordered, const char *who)
{
	for (size_t i = 0; i < n; i++) {
		unsigned p = tok_producer(items[i]);
		uint64_t q = tok_seq(items[i]);
		if (q >= per_producer) {
			FAIL("%s: item seq %" PRIu64 " out of range", who, q);
			continue;
		}
		if (ordered && q != o->next[p])
			FAIL("%s: producer %u: got seq %" PRIu64 ", expected %" PRIu64, who, p, q,
			     o->next[p]);
		if (!ordered && last[p] != UINT64_MAX && q <= last[p])
			FAIL("%s: producer %u: seq %" PRIu64 " after %" PRIu64, who, p, q, last[p]);
		if (o->seen[p][q]++)
			FAIL("%s: producer %u: seq %" PRIu64 " delivered twice", who, p, q);
		o->next[p] = q + 1;
		o->count[p]++;
		if (last)
			last[p] = q;
		o->total++;
	}
}

/* Tell the producers how far the reader got (after each batch). */
static void publish(run *r, const oracle *o)
{
	for (unsigned p = 0; p < NPROD; p++)
		atomic_store_explicit(&r->taken[p], o->count[p], memory_order_release);
}

static void oracle_check(oracle *o, uint64_t per_producer, const char *who)
{
	for (unsigned p = 0; p < NPROD; p++)
		for (uint64_t q = 0; q < per_producer; q++)
			if (o->seen[p][q] != 1) {
				FAIL("%s: producer %u seq %" PRIu64 " seen %u times", who, p, q,
				     o->seen[p][q]);
				return;
			}
}

/* A bounded wait timed out: lost wake-up, or the producers stalled. */
static void timed_out(fo_stream *s, fo_cursor *c, const char *who)
{
	size_t ready = fo_cursor_available(c);
	if (ready || fo_stream_is_closed(s) || fo_cursor_arm(c) == 1)
		FAIL("%s: LOST WAKE-UP: armed and asleep for %d ms while %zu item(s)%s were ready",
		     who, wait_ms, ready, fo_stream_is_closed(s) ? " and the end" : "");
	else
		FAIL("%s: stalled: nothing arrived for %d ms", who, wait_ms);
}

/* ---- variant: epoll on one cursor fd --------------------------------------------------------- */

typedef struct stats {
	uint64_t arms, sleeps, arm_ready, notified;
} stats;

static void variant_epoll(uint64_t rounds, stats *st)
{
	run r = {.per_producer = rounds / NPROD};
	producer p[NPROD];
	oracle o;
	oracle_init(&o, r.per_producer);
	if (fo_stream_create(&r.s, NULL) != FO_OK)
		exit(2);
	fo_cursor *c;
	if (fo_stream_cursor(r.s, &c, FO_ACTIVE) != FO_OK)
		exit(2);
	int fd = fo_cursor_fd(c);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN};
	if (fd < 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
		fprintf(stderr, "epoll setup failed\n");
		exit(2);
	}
	start_producers(&r, p);
	for (;;) {
		void *items[64];
		size_t n;
		int rc;
		while ((rc = fo_cursor_next_many(c, items, 64, &n)) == FO_OK) {
			oracle_take(&o, items, n, r.per_producer, NULL, true, "epoll");
			publish(&r, &o);
		}
		if (rc == FO_END)
			break;
		if (rc != FO_EMPTY) {
			FAIL("epoll: next_many returned %s", fo_status_name(rc));
			break;
		}
		st->arms++;
		int a = fo_cursor_arm(c);
		if (a == 1) {
			st->arm_ready++;
			continue;
		}
		if (a != 0) {
			FAIL("epoll: arm returned %s", fo_status_name(a));
			break;
		}
		st->sleeps++;
		int k;
		do
			k = epoll_wait(ep, &ev, 1, wait_ms);
		while (k < 0 && errno == EINTR);
		if (k == 0) {
			timed_out(r.s, c, "epoll");
			break;
		}
	}
	atomic_store(&r.reader_gone, true);
	join_producers(p);
	if (!atomic_load(&failures)) {
		if (o.total != 2 * r.per_producer)
			FAIL("epoll: got %" PRIu64 " items, expected %" PRIu64, o.total,
			     2 * r.per_producer);
		oracle_check(&o, r.per_producer, "epoll");
	}
	close(ep);
	fo_cursor_close(c);
	fo_stream_destroy(r.s);
	oracle_fini(&o);
}

/* ---- variant: notify hook + condition variable ----------------------------------------------- */

typedef struct waker {
	pthread_mutex_t m;
	pthread_cond_t cv;
	bool pending;
	atomic_ulong calls;
} waker;

static void wake_cv(void *arg)
{
	waker *w = arg;
	atomic_fetch_add(&w->calls, 1);
	pthread_mutex_lock(&w->m);
	w->pending = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->m);
}

static void variant_notify(uint64_t rounds, stats *st)
{
	run r = {.per_producer = rounds / NPROD};
	producer p[NPROD];
	oracle o;
	waker w = {.pending = false};
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&w.m, NULL);
	pthread_cond_init(&w.cv, &ca);
	atomic_init(&w.calls, 0);
	oracle_init(&o, r.per_producer);
	if (fo_stream_create(&r.s, NULL) != FO_OK)
		exit(2);
	fo_cursor *c;
	if (fo_stream_cursor(r.s, &c, FO_ACTIVE) != FO_OK ||
	    fo_cursor_set_notify(c, wake_cv, &w) != FO_OK)
		exit(2);
	start_producers(&r, p);
	for (;;) {
		void *items[64];
		size_t n;
		int rc;
		while ((rc = fo_cursor_next_many(c, items, 64, &n)) == FO_OK) {
			oracle_take(&o, items, n, r.per_producer, NULL, true, "notify");
			publish(&r, &o);
		}
		if (rc == FO_END)
			break;
		if (rc != FO_EMPTY) {
			FAIL("notify: next_many returned %s", fo_status_name(rc));
			break;
		}
		st->arms++;
		int a = fo_cursor_arm(c);
		if (a == 1) {
			st->arm_ready++;
			continue;
		}
		st->sleeps++;
		struct timespec dl;
		clock_gettime(CLOCK_MONOTONIC, &dl);
		dl.tv_sec += wait_ms / 1000;
		dl.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
		if (dl.tv_nsec >= 1000000000L)
			dl.tv_sec++, dl.tv_nsec -= 1000000000L;
		int e = 0;
		pthread_mutex_lock(&w.m);
		while (!w.pending && e != ETIMEDOUT)
			e = pthread_cond_timedwait(&w.cv, &w.m, &dl);
		bool got = w.pending;
		w.pending = false;
		pthread_mutex_unlock(&w.m);
		if (!got) {
			timed_out(r.s, c, "notify");
			break;
		}
	}
	atomic_store(&r.reader_gone, true);
	join_producers(p);
	st->notified = atomic_load(&w.calls);
	if (st->notified > st->arms)
		FAIL("notify: hook ran %" PRIu64 " times for %" PRIu64 " arm calls", st->notified,
		     st->arms);
	if (!atomic_load(&failures)) {
		if (o.total != 2 * r.per_producer)
			FAIL("notify: got %" PRIu64 " items, expected %" PRIu64, o.total,
			     2 * r.per_producer);
		oracle_check(&o, r.per_producer, "notify");
	}
	fo_cursor_close(c);
	fo_stream_destroy(r.s);
	pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.m);
	pthread_condattr_destroy(&ca);
	oracle_fini(&o);
}

/* ---- variant: two share-group members in one epoll set --------------------------------------- */

static void variant_group(uint64_t rounds, stats *st)
{
	run r = {.per_producer = rounds / NPROD};
	producer p[NPROD];
	oracle o;
	oracle_init(&o, r.per_producer);
	if (fo_stream_create(&r.s, NULL) != FO_OK)
		exit(2);
	fo_cursor *m[2];
	if (fo_stream_cursor(r.s, &m[0], FO_SHARED) != FO_OK ||
	    fo_cursor_fork(m[0], &m[1], FO_SHARED) != FO_OK)
		exit(2);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	for (unsigned i = 0; i < 2; i++) {
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
		int fd = fo_cursor_fd(m[i]);
		if (fd < 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
			exit(2);
	}
	uint64_t last[2][NPROD];
	memset(last, 0xff, sizeof(last));
	bool done[2] = {false, false};
	start_producers(&r, p);
	while (!done[0] || !done[1]) {
		bool any = false;
		for (unsigned i = 0; i < 2; i++) {
			void *items[16]; /* small batches: the members interleave */
			size_t n;
			int rc;
			if (done[i])
				continue;
			while ((rc = fo_cursor_next_many(m[i], items, 16, &n)) == FO_OK) {
				oracle_take(&o, items, n, r.per_producer, last[i], false,
				            i ? "group m1" : "group m0");
				publish(&r, &o);
				any = true;
			}
			if (rc == FO_END)
				done[i] = true;
			else if (rc != FO_EMPTY)
				FAIL("group: next_many returned %s", fo_status_name(rc));
		}
		if (any || (done[0] && done[1]))
			continue;
		bool ready = false;
		for (unsigned i = 0; i < 2; i++) {
			if (done[i])
				continue;
			st->arms++;
			if (fo_cursor_arm(m[i]) == 1)
				ready = true, st->arm_ready++;
		}
		if (ready)
			continue;
		st->sleeps++;
		struct epoll_event ev[2];
		int k;
		do
			k = epoll_wait(ep, ev, 2, wait_ms);
		while (k < 0 && errno == EINTR);
		if (k == 0) {
			timed_out(r.s, m[done[0] ? 1 : 0], "group");
			break;
		}
	}
	atomic_store(&r.reader_gone, true);
	join_producers(p);
	if (!atomic_load(&failures)) {
		if (o.total != 2 * r.per_producer)
			FAIL("group: got %" PRIu64 " items, expected %" PRIu64, o.total,
			     2 * r.per_producer);
		oracle_check(&o, r.per_producer, "group");
	}
	close(ep);
	fo_cursor_close(m[0]);
	fo_cursor_close(m[1]);
	fo_stream_destroy(r.s);
	oracle_fini(&o);
}

int main(int argc, char **argv)
{
	uint64_t rounds = 100000;
	bool rounds_set = false;
	seed = (uint64_t)ft_now_ns() ^ ((uint64_t)getpid() << 32);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			seed = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = strtoull(argv[++i], NULL, 0), rounds_set = true;
		else {
			fprintf(stderr, "usage: %s [--seed N] [--rounds N]\n", argv[0]);
			return 2;
		}
	}
	if (!rounds_set)
		rounds = ft_scale(rounds);
	if (rounds < NPROD)
		rounds = NPROD;
	if (ft_sanitized())
		wait_ms *= 4;
	printf("stress_eventloop: seed %" PRIu64 " rounds %" PRIu64 " (replay: --seed %" PRIu64
	       ")\n",
	       seed, rounds, seed);
	fflush(stdout);

	static const struct {
		const char *name;
		void (*fn)(uint64_t, stats *);
	} variants[] = {
	    {"epoll", variant_epoll},
	    {"notify", variant_notify},
	    {"group", variant_group},
	};
	for (size_t v = 0; v < sizeof(variants) / sizeof(variants[0]); v++) {
		stats st = {0};
		int64_t t0 = ft_now_ns();
		variants[v].fn(rounds, &st);
		printf("  %-7s %" PRIu64 " items: %" PRIu64 " arms, %" PRIu64 " sleeps, %" PRIu64
		       " arms found something, %" PRIu64 " hook calls, %.2f s\n",
		       variants[v].name, rounds - rounds % NPROD, st.arms, st.sleeps, st.arm_ready,
		       st.notified, (double)(ft_now_ns() - t0) / 1e9);
		fflush(stdout);
		if (atomic_load(&failures))
			break;
	}
	if (atomic_load(&failures)) {
		printf("stress_eventloop: FAILED (%lu failures, seed %" PRIu64 ")\n",
		       atomic_load(&failures), seed);
		return 1;
	}
	printf("stress_eventloop: PASS\n");
	return 0;
}
