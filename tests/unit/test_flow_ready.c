/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * test_flow_ready.c - event-loop readiness (fo_iter_fd / fo_iter_arm) of every waitable flow
 * output: gate, join, feed (BACKGROUND) and map over a cursor.  For each: the fd polls readable
 * for an item, for FO_END and for a failure, and arm() returns 1 when something arrived; then an
 * epoll stress loop against producers that pause at random, where a bounded wait (5 s) fails
 * the test on a lost wake-up.
 */
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cmocka.h>

#include "ft_flow.h"

static bool readable(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
	return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

static int ident(void *ctx, void *in, void **out)
{
	(void)ctx;
	*out = in;
	return FO_OK;
}

static void *copy_tok(const void *item, void *ctx)
{
	(void)ctx;
	return (void *)item;
}

/* Quiet: nothing to read, armed, the fd does not poll readable. */
static void assert_quiet(fo_iter *it, int fd)
{
	void *x;
	assert_int_equal(fo_iter_try_next(it, &x), FO_EMPTY);
	assert_int_equal(fo_iter_arm(it), 0);
	assert_false(readable(fd, 0));
}

/* Something arrived: the fd polls readable and arm() says so. */
static void assert_signalled(fo_iter *it, int fd)
{
	assert_true(readable(fd, 2000));
	assert_int_equal(fo_iter_arm(it), 1);
}

/* ---- map over a cursor ---------------------------------------------------------------------- */

typedef struct cursor_src {
	fo_stream *s;
	fo_iter *it; /* map(ident, from_cursor) */
} cursor_src;

static void map_src_open(cursor_src *m)
{
	fo_cursor *c;
	fo_iter *ci;
	assert_int_equal(fo_stream_create(&m->s, NULL), FO_OK);
	assert_int_equal(fo_stream_cursor(m->s, &c, FO_ACTIVE), FO_OK);
	assert_int_equal(fo_iter_from_cursor(&ci, c, NULL, NULL, NULL), FO_OK);
	assert_int_equal(fo_map(&m->it, ci, ident, NULL, NULL), FO_OK);
}

static void test_map_over_cursor_fd_item_end_failure(void **state)
{
	(void)state;
	for (int end = 0; end < 2; end++) {
		cursor_src m;
		map_src_open(&m);
		int fd = fo_iter_fd(m.it);
		assert_true(fd >= 0);
		assert_int_equal(fo_iter_fd(m.it), fd); /* the same one */
		assert_quiet(m.it, fd);
		assert_int_equal(fo_stream_push(m.s, ft_tok(7)), FO_OK);
		assert_signalled(m.it, fd);
		void *x;
		assert_int_equal(fo_iter_try_next(m.it, &x), FO_OK);
		assert_int_equal(ft_seq(x), 7);
		assert_quiet(m.it, fd);
		if (end)
			assert_int_equal(fo_stream_close(m.s), FO_OK);
		else
			assert_int_equal(fo_stream_fail(m.s, 42, "boom"), FO_OK);
		assert_signalled(m.it, fd);
		assert_int_equal(fo_iter_try_next(m.it, &x), end ? FO_END : FO_FAILED);
		if (!end)
			assert_int_equal(fo_iter_error(m.it)->code, 42);
		assert_int_equal(fo_iter_arm(m.it), 1); /* sticky */
		fo_iter_close(m.it);
		fo_stream_destroy(m.s);
	}
}

static int two_each(void *ctx, void *in, fo_emit_fn emit, void *ectx)
{
	(void)ctx;
	assert_int_equal(emit(ectx, in), FO_OK);
	return emit(ectx, in);
}

static void test_map_filter_buffered_outputs_are_ready_without_the_source(void **state)
{
	(void)state;
	fo_stream *s;
	fo_cursor *c;
	fo_iter *ci, *mf;
	assert_int_equal(fo_stream_create(&s, NULL), FO_OK);
	assert_int_equal(fo_stream_cursor(s, &c, FO_ACTIVE), FO_OK);
	assert_int_equal(fo_iter_from_cursor(&ci, c, copy_tok, NULL, NULL), FO_OK);
	assert_int_equal(fo_map_filter(&mf, ci, two_each, NULL, NULL), FO_OK);
	int fd = fo_iter_fd(mf);
	assert_true(fd >= 0);
	assert_quiet(mf, fd);
	assert_int_equal(fo_stream_push(s, ft_tok(1)), FO_OK);
	assert_signalled(mf, fd);
	void *x;
	assert_int_equal(fo_iter_try_next(mf, &x), FO_OK);
	assert_int_equal(fo_iter_arm(mf), 1); /* the second output is buffered */
	assert_int_equal(fo_iter_try_next(mf, &x), FO_OK);
	assert_quiet(mf, fd);
	fo_iter_close(mf);
	fo_stream_destroy(s);
}

static void test_unsupported_shapes_say_einval(void **state)
{
	(void)state;
	fo_iter *a, *m, *z, *fl;
	void *items[1] = {ft_tok(0)};
	assert_int_equal(fo_iter_from_array(&a, items, 1), FO_OK);
	assert_int_equal(fo_map(&m, a, ident, NULL, NULL), FO_OK);
	assert_int_equal(fo_iter_fd(m), FO_EINVAL); /* the source cannot tell */
	assert_int_equal(fo_iter_arm(m), FO_EINVAL);
	fo_iter_close(m);
	assert_int_equal(fo_zip(&z, NULL, 0), FO_OK);
	assert_int_equal(fo_iter_fd(z), FO_EINVAL);
	fo_iter_close(z);
	assert_int_equal(fo_iter_from_array(&a, NULL, 0), FO_OK);
	assert_int_equal(fo_flatten(&fl, a, NULL), FO_OK);
	assert_int_equal(fo_iter_fd(fl), FO_EINVAL);
	fo_iter_close(fl);
	/* A gate over a source without readiness. */
	fo_gate *g;
	assert_int_equal(fo_iter_from_array(&a, items, 1), FO_OK);
	assert_int_equal(fo_gate_create(&g, a), FO_OK);
	fo_iter *gi = fo_gate_iter(g);
	assert_int_equal(fo_iter_fd(gi), FO_EINVAL);
	assert_int_equal(fo_iter_arm(gi), FO_EINVAL);
	fo_iter_close(gi);
	fo_gate_destroy(g);
	/* A gate output with no fd yet cannot be armed. */
	cursor_src m2;
	map_src_open(&m2);
	assert_int_equal(fo_gate_create(&g, m2.it), FO_OK);
	gi = fo_gate_iter(g);
	assert_int_equal(fo_iter_arm(gi), FO_EINVAL);
	fo_iter_close(gi);
	fo_gate_destroy(g);
	fo_stream_destroy(m2.s);
}

/* ---- gate --------------------------------------------------------------------------------- */

static void test_gate_fd_item_needs_a_credit_and_an_item_end_failure(void **state)
{
	(void)state;
	for (int end = 0; end < 2; end++) {
		fo_stream *s;
		fo_cursor *c;
		fo_iter *ci;
		fo_gate *g;
		assert_int_equal(fo_stream_create(&s, NULL), FO_OK);
		assert_int_equal(fo_stream_cursor(s, &c, FO_ACTIVE), FO_OK);
		assert_int_equal(fo_iter_from_cursor(&ci, c, NULL, NULL, NULL), FO_OK);
		assert_int_equal(fo_gate_create(&g, ci), FO_OK);
		fo_iter *it = fo_gate_iter(g);
		int fd = fo_iter_fd(it);
		assert_true(fd >= 0);
		assert_quiet(it, fd);
		/* An item without a credit: not ready. */
		assert_int_equal(fo_stream_push(s, ft_tok(1)), FO_OK);
		assert_false(readable(fd, 20));
		assert_int_equal(fo_iter_arm(it), 0);
		/* The credit makes it ready. */
		assert_int_equal(fo_gate_release(g, 1), FO_OK);
		assert_signalled(it, fd);
		void *x;
		assert_int_equal(fo_iter_try_next(it, &x), FO_OK);
		assert_int_equal(ft_seq(x), 1);
		/* A credit without an item: not ready; then the item. */
		assert_int_equal(fo_gate_release(g, 1), FO_OK);
		assert_quiet(it, fd);
		assert_int_equal(fo_stream_push(s, ft_tok(2)), FO_OK);
		assert_signalled(it, fd);
		assert_int_equal(fo_iter_try_next(it, &x), FO_OK);
		assert_int_equal(ft_seq(x), 2);
		assert_quiet(it, fd);
		if (end) { /* closing the gate with no credit left: FO_END is ready */
			assert_int_equal(fo_gate_close(g), FO_OK);
		} else { /* a credit, then the source fails */
			assert_int_equal(fo_gate_release(g, 1), FO_OK);
			assert_quiet(it, fd);
			assert_int_equal(fo_stream_fail(s, 9, NULL), FO_OK);
		}
		assert_signalled(it, fd);
		assert_int_equal(fo_iter_try_next(it, &x), end ? FO_END : FO_FAILED);
		assert_int_equal(fo_iter_arm(it), 1);
		fo_iter_close(it);
		fo_gate_destroy(g);
		fo_stream_destroy(s);
	}
}

/* ---- join --------------------------------------------------------------------------------- */

static void test_join_fd_item_end_failure(void **state)
{
	(void)state;
	for (int end = 0; end < 2; end++) {
		fo_stream *s1, *s2;
		fo_cursor *c1, *c2;
		fo_iter *i1, *i2, *m2;
		fo_join *j;
		assert_int_equal(fo_stream_create(&s1, NULL), FO_OK);
		assert_int_equal(fo_stream_create(&s2, NULL), FO_OK);
		assert_int_equal(fo_stream_cursor(s1, &c1, FO_ACTIVE), FO_OK);
		assert_int_equal(fo_stream_cursor(s2, &c2, FO_ACTIVE), FO_OK);
		assert_int_equal(fo_iter_from_cursor(&i1, c1, copy_tok, NULL, NULL), FO_OK);
		assert_int_equal(fo_iter_from_cursor(&i2, c2, copy_tok, NULL, NULL), FO_OK);
		assert_int_equal(fo_map(&m2, i2, ident, NULL, NULL), FO_OK);
		assert_int_equal(fo_join_create(&j, NULL), FO_OK);
		fo_iter *it = fo_join_iter(j);
		int fd = fo_iter_fd(it);
		assert_true(fd >= 0);
		assert_int_equal(fo_join_add(j, i1), FO_OK); /* read by the reader */
		assert_int_equal(fo_join_add(j, m2), FO_OK); /* a helper thread */
		assert_int_equal(fo_join_threads(j), 1);
		void *x;
		int rc;
		while ((rc = fo_iter_arm(it)) == 1) /* adopt the new cursor source */
			assert_int_equal(fo_iter_try_next(it, &x), FO_EMPTY);
		assert_int_equal(rc, 0);
		assert_false(readable(fd, 0));
		assert_int_equal(fo_stream_push(s1, ft_tok(1)), FO_OK); /* cursor source */
		assert_signalled(it, fd);
		assert_int_equal(fo_iter_try_next(it, &x), FO_OK);
		assert_int_equal(ft_seq(x), 1);
		assert_quiet(it, fd);
		assert_int_equal(fo_stream_push(s2, ft_tok(2)), FO_OK); /* helper source */
		assert_signalled(it, fd);
		assert_int_equal(fo_iter_try_next(it, &x), FO_OK);
		assert_int_equal(ft_seq(x), 2);
		assert_quiet(it, fd);
		if (end) {
			assert_int_equal(fo_stream_close(s1), FO_OK);
			assert_int_equal(fo_stream_close(s2), FO_OK);
			/* Sources ended but the join is not sealed: maybe readable, never FO_END.
			 */
			for (;;) {
				while (fo_iter_arm(it) == 1)
					assert_int_equal(fo_iter_try_next(it, &x), FO_EMPTY);
				if (!readable(fd, 100))
					break;
			}
			assert_int_equal(fo_join_seal(j), FO_OK);
		} else {
			assert_int_equal(fo_stream_fail(s2, 77, "helper source failed"), FO_OK);
		}
		assert_signalled(it, fd);
		assert_int_equal(fo_iter_try_next(it, &x), end ? FO_END : FO_FAILED);
		if (!end)
			assert_int_equal(fo_iter_error(it)->code, 77);
		assert_int_equal(fo_iter_arm(it), 1);
		fo_iter_close(it);
		fo_join_destroy(j);
		fo_stream_destroy(s1);
		fo_stream_destroy(s2);
	}
}

/* ---- feed --------------------------------------------------------------------------------- */

static ft_counter cnt;

static void test_feed_background_fd_item_end_failure(void **state)
{
	(void)state;
	for (int end = 0; end < 2; end++) {
		ft_valve v;
		ft_valve_init(&v, end ? 1 : 100, 0);
		v.gated_end = true; /* END / the failure come when the test opens the valve */
		v.fail_at = end ? -1 : 1;
		v.fail_code = 55;
		ft_counter_init(&cnt, 0);
		fo_feed_opts o;
		fo_feed_opts_init(&o);
		o.ahead = 4;
		fo_feeder *f;
		fo_cursor *c;
		fo_iter *it;
		assert_int_equal(fo_feed_create(&f, &c, ft_valve_iter(&v, &cnt), &o), FO_OK);
		assert_int_equal(fo_feed_iter(&it, f, c, NULL, NULL, NULL), FO_OK);
		int fd = fo_iter_fd(it);
		assert_true(fd >= 0);
		assert_quiet(it, fd);
		ft_valve_open(&v, 1);
		assert_signalled(it, fd);
		void *x;
		assert_int_equal(fo_iter_try_next(it, &x), FO_OK);
		assert_int_equal(((ft_item *)x)->seq, 0);
		assert_quiet(it, fd);
		/* Index 1 ends (n = 1) or fails (fail_at = 1) once the valve lets it. */
		ft_valve_open(&v, SIZE_MAX);
		assert_signalled(it, fd);
		assert_int_equal(fo_iter_try_next(it, &x), end ? FO_END : FO_FAILED);
		if (!end)
			assert_int_equal(fo_iter_error(it)->code, 55);
		assert_int_equal(fo_iter_arm(it), 1);
		fo_iter_close(it);
		fo_feed_destroy(f);
		assert_int_equal(ft_freed(&cnt), 1);
		ft_valve_fini(&v);
	}
	/* ON_DEMAND: a read runs the source in the reader's thread; nothing could signal. */
	ft_valve v;
	ft_valve_init(&v, 1, 0);
	fo_feed_opts o;
	fo_feed_opts_init(&o);
	o.mode = FO_FEED_ON_DEMAND;
	fo_feeder *f;
	fo_cursor *c;
	fo_iter *it;
	assert_int_equal(fo_feed_create(&f, &c, ft_valve_iter(&v, &cnt), &o), FO_OK);
	assert_int_equal(fo_feed_iter(&it, f, c, NULL, NULL, NULL), FO_OK);
	assert_int_equal(fo_iter_fd(it), FO_EINVAL);
	assert_int_equal(fo_iter_arm(it), FO_EINVAL);
	fo_iter_close(it);
	fo_feed_destroy(f);
	ft_valve_fini(&v);
}

/* ---- epoll stress ------------------------------------------------------------------------ */

typedef struct rng {
	uint64_t s;
} rng;

static uint64_t rnd(rng *r)
{
	r->s ^= r->s << 13;
	r->s ^= r->s >> 7;
	r->s ^= r->s << 17;
	return r->s;
}

/* A random pause: mostly none (bursts), sometimes a spin, a yield or a short sleep. */
static void pause_at_random(rng *r)
{
	uint64_t x = rnd(r);
	switch (x % 16) {
	case 0:
	case 1: {
		struct timespec ts = {0, (long)(1000 + (x >> 8) % 40000)};
		nanosleep(&ts, NULL);
		break;
	}
	case 2:
		sched_yield();
		break;
	case 3:
	case 4:
		for (volatile unsigned i = 0, n = (unsigned)((x >> 8) % 3000); i < n; i++)
			;
		break;
	default:
		break;
	}
}

typedef struct pusher {
	fo_stream *s;
	size_t n;
	uint64_t tag; /* items are ft_tok(tag << 32 | i) */
	uint64_t seed;
	int rc;
} pusher;

static void *pusher_main(void *arg)
{
	pusher *p = arg;
	rng r = {p->seed | 1};
	p->rc = FO_OK;
	for (size_t i = 0; i < p->n; i++) {
		pause_at_random(&r);
		int rc = fo_stream_push(p->s, ft_tok((size_t)(p->tag << 32 | i)));
		if (rc != FO_OK && p->rc == FO_OK)
			p->rc = rc;
	}
	pause_at_random(&r);
	fo_stream_close(p->s);
	return NULL;
}

/*
 * The event-loop reader: read until FO_EMPTY, arm, sleep in epoll (at most 5 s: a lost
 * wake-up).  Items carry (tag, seq); per tag the sequence must be 0, 1, 2, ...  Returns the
 * final code; counts items in *got, sleeps in *sleeps, and sets *lost on a 5 s timeout.
 */
static int epoll_read(fo_iter *it, size_t ntags, size_t *next, size_t *got, size_t *sleeps,
                      bool *lost, bool *order_ok, bool heap)
{
	int fd = fo_iter_fd(it);
	if (fd < 0)
		return fd;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data = {.fd = fd}};
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	int rc;
	*lost = false;
	*order_ok = true;
	for (;;) {
		void *x;
		while ((rc = fo_iter_try_next(it, &x)) == FO_OK) {
			size_t tag, seq;
			if (heap) {
				tag = 0;
				seq = (size_t)((ft_item *)x)->seq;
			} else {
				tag = ft_seq(x) >> 32;
				seq = ft_seq(x) & 0xffffffffu;
			}
			if (tag >= ntags || seq != next[tag])
				*order_ok = false;
			else
				next[tag]++;
			(*got)++;
		}
		if (rc != FO_EMPTY)
			break;
		int a = fo_iter_arm(it);
		if (a == 1)
			continue;
		if (a != 0) {
			rc = a;
			break;
		}
		struct epoll_event out;
		int k;
		while ((k = epoll_wait(ep, &out, 1, 5000)) < 0 && errno == EINTR)
			;
		if (k == 0) {
			*lost = true;
			rc = FO_TIMEDOUT;
			break;
		}
		(*sleeps)++;
	}
	close(ep);
	return rc;
}

static size_t rounds(void)
{
	return ft_scale(20000);
}

static void test_stress_map_over_cursor_epoll(void **state)
{
	(void)state;
	cursor_src m;
	map_src_open(&m);
	pusher p = {m.s, rounds(), 0, 0x9e3779b97f4a7c15ull, 0};
	pthread_t t;
	pthread_create(&t, NULL, pusher_main, &p);
	size_t next[1] = {0}, got = 0, sleeps = 0;
	bool lost, order_ok;
	int rc = epoll_read(m.it, 1, next, &got, &sleeps, &lost, &order_ok, false);
	pthread_join(t, NULL);
	assert_false(lost);
	assert_true(order_ok);
	assert_int_equal(rc, FO_END);
	assert_int_equal(p.rc, FO_OK);
	assert_int_equal(got, p.n);
	print_message("map: %zu items, %zu epoll sleeps\n", got, sleeps);
	fo_iter_close(m.it);
	fo_stream_destroy(m.s);
}

typedef struct releaser {
	fo_gate *g;
	size_t n;
	uint64_t seed;
} releaser;

static void *releaser_main(void *arg)
{
	releaser *r = arg;
	rng x = {r->seed | 1};
	size_t done = 0;
	while (done < r->n) {
		pause_at_random(&x);
		size_t k = 1 + rnd(&x) % 3;
		if (k > r->n - done)
			k = r->n - done;
		fo_gate_release(r->g, (int64_t)k);
		done += k;
	}
	pause_at_random(&x);
	fo_gate_close(r->g);
	return NULL;
}

static void test_stress_gate_epoll(void **state)
{
	(void)state;
	/* A gate over map(cursor): the source's readiness comes through the map. */
	cursor_src m;
	map_src_open(&m);
	fo_gate *g;
	assert_int_equal(fo_gate_create(&g, m.it), FO_OK);
	fo_iter *it = fo_gate_iter(g);
	size_t n = rounds();
	pusher p = {m.s, n + 5, 0, 0x1234567887654321ull, 0}; /* 5 more than credited */
	releaser r = {g, n, 0xfeedfacecafebeefull};
	pthread_t t1, t2;
	pthread_create(&t1, NULL, pusher_main, &p);
	pthread_create(&t2, NULL, releaser_main, &r);
	size_t next[1] = {0}, got = 0, sleeps = 0;
	bool lost, order_ok;
	int rc = epoll_read(it, 1, next, &got, &sleeps, &lost, &order_ok, false);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	assert_false(lost);
	assert_true(order_ok);
	assert_int_equal(rc, FO_END);
	assert_int_equal(got, n); /* exactly the credited count */
	print_message("gate: %zu items, %zu epoll sleeps\n", got, sleeps);
	fo_iter_close(it);
	fo_gate_destroy(g);
	fo_stream_destroy(m.s);
}

static void test_stress_join_epoll(void **state)
{
	(void)state;
	enum { NS = 4 };
	fo_join *j;
	assert_int_equal(fo_join_create(&j, NULL), FO_OK);
	fo_iter *it = fo_join_iter(j);
	fo_stream *s[NS];
	pusher p[NS];
	pthread_t t[NS];
	size_t n = rounds() / NS;
	for (int i = 0; i < NS; i++) {
		fo_cursor *c;
		fo_iter *ci, *src;
		assert_int_equal(fo_stream_create(&s[i], NULL), FO_OK);
		assert_int_equal(fo_stream_cursor(s[i], &c, FO_ACTIVE), FO_OK);
		assert_int_equal(fo_iter_from_cursor(&ci, c, copy_tok, NULL, NULL), FO_OK);
		src = ci;
		if (i % 2) /* odd sources: a helper thread; even: read by the reader */
			assert_int_equal(fo_map(&src, ci, ident, NULL, NULL), FO_OK);
		assert_int_equal(fo_join_add(j, src), FO_OK);
		p[i] = (pusher){s[i], n, (uint64_t)i, 0x51ed270b27a3c1f5ull * (uint64_t)(i + 1), 0};
	}
	assert_int_equal(fo_join_seal(j), FO_OK);
	for (int i = 0; i < NS; i++)
		pthread_create(&t[i], NULL, pusher_main, &p[i]);
	size_t next[NS] = {0}, got = 0, sleeps = 0;
	bool lost, order_ok;
	int rc = epoll_read(it, NS, next, &got, &sleeps, &lost, &order_ok, false);
	for (int i = 0; i < NS; i++)
		pthread_join(t[i], NULL);
	assert_false(lost);
	assert_true(order_ok);
	assert_int_equal(rc, FO_END);
	assert_int_equal(got, n * NS);
	for (int i = 0; i < NS; i++)
		assert_int_equal(next[i], n);
	print_message("join: %zu items, %zu epoll sleeps\n", got, sleeps);
	fo_iter_close(it);
	fo_join_destroy(j);
	for (int i = 0; i < NS; i++)
		fo_stream_destroy(s[i]);
}

typedef struct opener {
	ft_valve *v;
	size_t n;
	uint64_t seed;
} opener;

static void *opener_main(void *arg)
{
	opener *o = arg;
	rng r = {o->seed | 1};
	for (size_t i = 1; i <= o->n; i++) {
		pause_at_random(&r);
		ft_valve_open(o->v, i);
	}
	return NULL;
}

static void test_stress_feed_epoll(void **state)
{
	(void)state;
	size_t n = rounds();
	ft_valve v;
	ft_valve_init(&v, n, 0);
	ft_counter_init(&cnt, 0);
	fo_feed_opts o;
	fo_feed_opts_init(&o);
	o.ahead = 8; /* the feed thread also waits for room */
	fo_feeder *f;
	fo_cursor *c;
	fo_iter *it;
	assert_int_equal(fo_feed_create(&f, &c, ft_valve_iter(&v, &cnt), &o), FO_OK);
	assert_int_equal(fo_feed_iter(&it, f, c, NULL, NULL, NULL), FO_OK);
	opener op = {&v, n, 0xabcdef0123456789ull};
	pthread_t t;
	pthread_create(&t, NULL, opener_main, &op);
	size_t next[1] = {0}, got = 0, sleeps = 0;
	bool lost, order_ok;
	int rc = epoll_read(it, 1, next, &got, &sleeps, &lost, &order_ok, true);
	pthread_join(t, NULL);
	assert_false(lost);
	assert_true(order_ok);
	assert_int_equal(rc, FO_END);
	assert_int_equal(got, n);
	print_message("feed: %zu items, %zu epoll sleeps\n", got, sleeps);
	fo_iter_close(it);
	fo_feed_destroy(f);
	assert_int_equal(ft_freed(&cnt), n);
	ft_valve_fini(&v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_map_over_cursor_fd_item_end_failure),
	    cmocka_unit_test(test_map_filter_buffered_outputs_are_ready_without_the_source),
	    cmocka_unit_test(test_unsupported_shapes_say_einval),
	    cmocka_unit_test(test_gate_fd_item_needs_a_credit_and_an_item_end_failure),
	    cmocka_unit_test(test_join_fd_item_end_failure),
	    cmocka_unit_test(test_feed_background_fd_item_end_failure),
	    cmocka_unit_test(test_stress_map_over_cursor_epoll),
	    cmocka_unit_test(test_stress_gate_epoll),
	    cmocka_unit_test(test_stress_join_epoll),
	    cmocka_unit_test(test_stress_feed_epoll),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
