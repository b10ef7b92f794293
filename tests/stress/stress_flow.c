/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * stress_flow.c - the flow modules under threads (plain C; exit 0 = pass).
 *
 *   join    8 cursor sources (streams with 4 producers each) + 8 helper-thread sources:
 *           every item delivered once, per-producer order kept, every destructor once.
 *   gate    credits released from 4 threads: exactly the credited count comes out, and the
 *           source was pulled exactly that many times (no read-ahead).
 *   feed    BACKGROUND with slow and fast sources vs slow and fast readers (2 active forks,
 *           1 passive tap): the read-ahead bound (exactly `ahead`) holds at every read,
 *           nothing lost.
 *   errors  a source failing at every position k (feed both modes, join fail-fast, gate, map):
 *           exactly k items, then the error, every destructor once.
 *
 * Sizes shrink 10x when FO_SANITIZE is set.  A watchdog (ft_watchdog.h) turns a hang into a
 * failure that names the phase and describes every thread.
 */
#include <inttypes.h>
#include <signal.h>

#include "ft_flow.h"
#include "ft_watchdog.h"

static atomic_int failures;
static ft_watchdog wd; /* a stall aborts with every thread described */

#define CHECK(cond, ...)                                                                \
	do {                                                                            \
		if (!(cond)) {                                                          \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                                   \
			fprintf(stderr, "\n");                                          \
			atomic_fetch_add(&failures, 1);                                 \
		}                                                                       \
	} while (0)

/* ---- join: 8 cursor sources x 4 producers + 8 thread sources --------------------------------- */

#define NSTREAMS 8
#define NPROD    4
#define NVALVES  8

typedef struct prod {
	fo_stream *s;
	uint64_t tag; /* global producer id */
	size_t n;
} prod;

static void *prod_main(void *arg)
{
	prod *p = arg;
	for (size_t i = 0; i < p->n; i++) {
		ft_item *t = ft_item_new(i);
		t->producer = p->tag;
		int rc = fo_stream_push(p->s, t);
		if (rc != FO_OK) {
			CHECK(rc == FO_OK, "push %s", fo_status_name(rc));
			free(t);
		}
		ft_watchdog_tick(&wd);
	}
	return NULL;
}

static void *copy_item(const void *item, void *ctx)
{
	(void)ctx;
	const ft_item *t = item;
	ft_item *c = ft_item_new(t->seq);
	c->producer = t->producer;
	return c;
}

/* Joins every producer, then closes the streams: their cursor sources end. */
typedef struct closer {
	pthread_t *pt; /* NSTREAMS * NPROD */
	fo_stream **s;
} closer;

static void *closer_main(void *arg)
{
	closer *c = arg;
	for (int i = 0; i < NSTREAMS * NPROD; i++)
		pthread_join(c->pt[i], NULL);
	for (int i = 0; i < NSTREAMS; i++)
		fo_stream_close(c->s[i]);
	return NULL;
}

static void stress_join(size_t per_prod)
{
	ft_counter cnt, scnt;
	ft_counter_init(&cnt, 0);
	ft_counter_init(&scnt, 0);
	fo_join_opts o;
	fo_join_opts_init(&o);
	o.item_free = ft_valve_item_free;
	o.item_free_ctx = &cnt;
	o.buffer = 64;
	fo_join *j;
	CHECK(fo_join_create(&j, &o) == FO_OK, "create");
	fo_stream *s[NSTREAMS];
	prod p[NSTREAMS][NPROD];
	pthread_t pt[NSTREAMS][NPROD];
	for (int i = 0; i < NSTREAMS; i++) {
		fo_stream_opts so = ft_heap_opts(&scnt);
		so.capacity = 256;
		fo_stream_create(&s[i], &so);
		fo_cursor *c;
		fo_stream_cursor(s[i], &c, FO_ACTIVE);
		fo_iter *ci;
		fo_iter_from_cursor(&ci, c, copy_item, ft_valve_item_free, &cnt);
		CHECK(fo_join_add(j, ci) == FO_OK, "add cursor source");
	}
	ft_valve v[NVALVES];
	for (int i = 0; i < NVALVES; i++) {
		ft_valve_init(&v[i], per_prod * NPROD, (uint64_t)(NSTREAMS * NPROD + i));
		ft_valve_open(&v[i], SIZE_MAX);
		CHECK(fo_join_add(j, ft_valve_iter(&v[i], &cnt)) == FO_OK, "add valve");
	}
	CHECK(fo_join_threads(j) == NVALVES, "threads %zu", fo_join_threads(j));
	fo_join_seal(j);
	fo_iter *it = fo_join_iter(j);
	for (int i = 0; i < NSTREAMS; i++)
		for (int k = 0; k < NPROD; k++) {
			p[i][k] = (prod){s[i], (uint64_t)(i * NPROD + k), per_prod};
			pthread_create(&pt[i][k], NULL, prod_main, &p[i][k]);
		}
	closer cl = {&pt[0][0], s};
	pthread_t clt;
	pthread_create(&clt, NULL, closer_main, &cl);
	size_t ntags = NSTREAMS * NPROD + NVALVES;
	size_t next[NSTREAMS * NPROD + NVALVES] = {0};
	size_t total = 0;
	void *x;
	int rc;
	while ((rc = fo_iter_next(it, &x)) == FO_OK) {
		ft_item *t = x;
		CHECK(t->producer < ntags, "tag %" PRIu64, t->producer);
		if (t->producer < ntags) {
			CHECK(t->seq == next[t->producer],
			      "order: producer %" PRIu64 " got %" PRIu64 " want %zu", t->producer,
			      t->seq, next[t->producer]);
			next[t->producer] = t->seq + 1;
		}
		fo_iter_release(it, x);
		total++;
		ft_watchdog_tick(&wd);
	}
	pthread_join(clt, NULL);
	CHECK(rc == FO_END, "join ended with %s", fo_status_name(rc));
	size_t want = (size_t)NSTREAMS * NPROD * per_prod + (size_t)NVALVES * NPROD * per_prod;
	CHECK(total == want, "total %zu of %zu", total, want);
	for (size_t t = 0; t < (size_t)NSTREAMS * NPROD; t++)
		CHECK(next[t] == per_prod, "producer %zu delivered %zu of %zu", t, next[t],
		      per_prod);
	for (size_t t = NSTREAMS * NPROD; t < ntags; t++)
		CHECK(next[t] == per_prod * NPROD, "valve %zu delivered %zu", t, next[t]);
	fo_iter_close(it);
	fo_join_destroy(j);
	for (int i = 0; i < NSTREAMS; i++)
		fo_stream_destroy(s[i]);
	for (int i = 0; i < NVALVES; i++)
		ft_valve_fini(&v[i]);
	CHECK(ft_freed(&cnt) == total, "join frees %zu of %zu", ft_freed(&cnt), total);
	CHECK(ft_freed(&scnt) == (size_t)NSTREAMS * NPROD * per_prod, "stream frees %zu",
	      ft_freed(&scnt));
	printf("join: %zu items from %d cursor sources (%d producers each) + %d thread sources\n",
	       total, NSTREAMS, NPROD, NVALVES);
}

/* ---- gate: releases from 4 threads ----------------------------------------------------------- */

typedef struct releaser {
	fo_gate *g;
	size_t rounds;
	int64_t released;
} releaser;

static void *release_main(void *arg)
{
	releaser *r = arg;
	for (size_t i = 0; i < r->rounds; i++) {
		int64_t n = (int64_t)(i % 3) + 1;
		if (fo_gate_release(r->g, n) == FO_OK)
			r->released += n;
		ft_watchdog_tick(&wd);
		if (i % 128 == 0)
			sched_yield();
	}
	return NULL;
}

static void stress_gate(size_t rounds)
{
	ft_valve v;
	ft_counter cnt;
	ft_valve_init(&v, SIZE_MAX / 2, 0);
	ft_valve_open(&v, SIZE_MAX);
	ft_counter_init(&cnt, 0);
	fo_gate *g;
	fo_gate_create(&g, ft_valve_iter(&v, &cnt));
	fo_iter *it = fo_gate_iter(g);
	releaser r[4];
	pthread_t t[4];
	for (int i = 0; i < 4; i++) {
		r[i] = (releaser){g, rounds, 0};
		pthread_create(&t[i], NULL, release_main, &r[i]);
	}
	size_t got = 0;
	void *x;
	int64_t credited = 0;
	bool closed = false;
	int rc;
	for (;;) {
		rc = fo_iter_timed_next(it, &x, FT_MS(2));
		if (rc == FO_OK) {
			CHECK(((ft_item *)x)->seq == got, "gate order");
			fo_iter_release(it, x);
			got++;
			ft_watchdog_tick(&wd);
			continue;
		}
		if (rc == FO_TIMEDOUT && !closed) {
			bool all = true;
			for (int i = 0; i < 4; i++) {
				if (!r[i].rounds) /* joined already: never join a thread twice */
					continue;
				if (pthread_tryjoin_np(t[i], NULL) != 0) {
					all = false;
				} else {
					r[i].rounds = 0;
					credited += r[i].released;
				}
			}
			if (all) {
				fo_gate_close(g);
				closed = true;
			}
			continue;
		}
		if (rc == FO_TIMEDOUT)
			continue;
		break;
	}
	CHECK(rc == FO_END, "gate ended with %s", fo_status_name(rc));
	CHECK((int64_t)got == credited, "gate: %zu out, %" PRId64 " credited", got, credited);
	CHECK(ft_valve_pulls(&v) == got, "gate read ahead: pulled %zu, out %zu", ft_valve_pulls(&v),
	      got);
	fo_iter_close(it);
	fo_gate_destroy(g);
	CHECK(ft_freed(&cnt) == got, "gate frees");
	ft_valve_fini(&v);
	printf("gate: %zu items, exactly the credits released by 4 threads\n", got);
}

/* ---- feed: slow/fast sources and readers ------------------------------------------------------
 */

typedef struct freader {
	fo_feeder *f;
	fo_cursor *c;
	ft_valve *v;
	size_t ahead, n, got;
	bool slow, passive;
	int rc;
} freader;

static void *freader_main(void *arg)
{
	freader *r = arg;
	void *x;
	size_t last = 0;
	for (;;) {
		r->rc = r->passive ? fo_cursor_next(r->c, &x) : fo_feed_next(r->f, r->c, &x);
		if (r->rc == FO_LAGGED)
			continue;
		if (r->rc != FO_OK)
			break;
		size_t s = (size_t)((ft_item *)x)->seq;
		if (!r->passive) {
			CHECK(s == r->got, "feed order: %zu want %zu", s, r->got);
			/* The source is exactly at most ahead past the slowest active reader
			 * (the feed thread waits for room before it pulls), which has consumed
			 * at most s + 1 items. */
			CHECK(ft_valve_pulls(r->v) <= s + 1 + r->ahead,
			      "read-ahead: pulled %zu at item %zu", ft_valve_pulls(r->v), s);
		} else {
			CHECK(r->got == 0 || s > last, "tap order");
		}
		last = s;
		r->got++;
		ft_watchdog_tick(&wd);
		if (r->slow && r->got % 64 == 0)
			ft_sleep_ms(1);
	}
	return NULL;
}

static void stress_feed(size_t n)
{
	for (int variant = 0; variant < 4; variant++) {
		bool slow_src = variant & 1, slow_reader = variant & 2;
		ft_valve v;
		ft_counter cnt;
		ft_valve_init(&v, n, 0);
		ft_valve_open(&v, SIZE_MAX);
		ft_counter_init(&cnt, 0);
		fo_feed_opts o;
		fo_feed_opts_init(&o);
		o.ahead = 16;
		fo_feeder *f;
		fo_cursor *c, *d, *p;
		fo_iter *src = ft_valve_iter(&v, &cnt);
		if (slow_src) { /* a slow source: 1 ms pause every 256 items */
			v.delay_ns = FT_MS(1);
			v.delay_every = 256;
		}
		CHECK(fo_feed_create(&f, &c, src, &o) == FO_OK, "feed");
		fo_cursor_fork(c, &d, FO_ACTIVE);
		fo_cursor_fork(c, &p, FO_PASSIVE);
		freader r[3] = {
		    {f, c, &v, 16, n, 0, slow_reader, false, 0},
		    {f, d, &v, 16, n, 0, false, false, 0},
		    {f, p, &v, 16, n, 0, false, true, 0},
		};
		pthread_t t[3];
		for (int i = 0; i < 3; i++)
			pthread_create(&t[i], NULL, freader_main, &r[i]);
		for (int i = 0; i < 3; i++) {
			pthread_join(t[i], NULL);
			CHECK(r[i].rc == FO_END, "feed reader %d: %s", i, fo_status_name(r[i].rc));
		}
		CHECK(r[0].got == n && r[1].got == n, "feed lost items: %zu %zu", r[0].got,
		      r[1].got);
		fo_feed_destroy(f);
		fo_cursor_close(c);
		fo_cursor_close(d);
		fo_cursor_close(p);
		CHECK(ft_freed(&cnt) == n, "feed frees %zu", ft_freed(&cnt));
		ft_valve_fini(&v);
	}
	printf("feed: %zu items x 4 variants (slow/fast source x slow/fast reader)\n", n);
}

/* ---- errors at every position ---------------------------------------------------------------- */

static void errors_everywhere(size_t n)
{
	for (size_t k = 0; k <= n; k++) {
		for (int kind = 0; kind < 4; kind++) {
			ft_valve v;
			ft_counter cnt;
			ft_valve_init(&v, n + 5, 0);
			ft_valve_open(&v, SIZE_MAX);
			v.fail_at = (long)k;
			v.fail_code = 4242;
			ft_counter_init(&cnt, 0);
			size_t got = 0;
			int rc = FO_OK;
			void *x;
			fo_iter *src = ft_valve_iter(&v, &cnt);
			if (kind <= 1) { /* feed, both modes */
				fo_feed_opts o;
				fo_feed_opts_init(&o);
				o.mode = kind ? FO_FEED_ON_DEMAND : FO_FEED_BACKGROUND;
				o.ahead = 3;
				fo_feeder *f;
				fo_cursor *c;
				fo_feed_create(&f, &c, src, &o);
				while ((rc = fo_feed_next(f, c, &x)) == FO_OK)
					CHECK(((ft_item *)x)->seq == got++, "order");
				if (rc == FO_FAILED)
					CHECK(fo_cursor_error(c)->code == 4242, "code");
				fo_feed_destroy(f);
				fo_cursor_close(c);
			} else {
				fo_iter *it;
				fo_join *j = NULL;
				fo_gate *g = NULL;
				if (kind == 2) {
					fo_join_opts o;
					fo_join_opts_init(&o);
					o.item_free = ft_valve_item_free;
					o.item_free_ctx = &cnt;
					fo_join_create(&j, &o);
					fo_join_add(j, src);
					fo_join_seal(j);
					it = fo_join_iter(j);
				} else {
					fo_gate_create(&g, src);
					fo_gate_release(g, (int64_t)n + 10);
					it = fo_gate_iter(g);
				}
				while ((rc = fo_iter_next(it, &x)) == FO_OK) {
					CHECK(((ft_item *)x)->seq == got++, "order");
					fo_iter_release(it, x);
				}
				if (rc == FO_FAILED)
					CHECK(fo_iter_error(it)->code == 4242, "code");
				fo_iter_close(it);
				fo_join_destroy(j);
				fo_gate_destroy(g);
			}
			CHECK(rc == FO_FAILED, "kind %d k %zu: %s", kind, k, fo_status_name(rc));
			CHECK(got == k, "kind %d: %zu items before the error at %zu", kind, got, k);
			CHECK(atomic_load(&v.closes) == 1, "kind %d: source closed %d times", kind,
			      atomic_load(&v.closes));
			CHECK(ft_freed(&cnt) == ft_valve_pulls(&v),
			      "kind %d k %zu: freed %zu pulled %zu", kind, k, ft_freed(&cnt),
			      ft_valve_pulls(&v));
			ft_valve_fini(&v);
			ft_watchdog_tick(&wd);
		}
	}
	printf("errors: a failure at every position 0..%zu for feed x2, join, gate\n", n);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	ft_watchdog_start(&wd, ft_sanitized() ? 60 : 20);
	size_t scale = ft_sanitized() ? 10 : 1;
	ft_watchdog_doing(&wd, "join");
	stress_join(4000 / scale);
	ft_watchdog_doing(&wd, "gate");
	stress_gate(10000 / scale);
	ft_watchdog_doing(&wd, "feed");
	stress_feed(40000 / scale);
	ft_watchdog_doing(&wd, "errors");
	errors_everywhere(ft_sanitized() ? 20 : 64);
	int f = atomic_load(&failures);
	printf("stress_flow: %s (%d failures)\n", f ? "FAIL" : "PASS", f);
	return f ? 1 : 0;
}
