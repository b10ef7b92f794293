/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * fault_stress.c - streams and flows under injected faults (TESTING.md §5),
 * run by scripts/faults.sh under fiu-run (libfiu).
 *
 * Fault points (libfiu names; enable them with fiu-run -c / fiu-ctrl):
 *   fanout/alloc                every allocation fanout makes (this program
 *                               installs an fo_allocator that asks libfiu;
 *                               every build)
 *   fanout/posix/eventfd        eventfd(), pthread_create(), write() and
 *   fanout/posix/pthread_create fork() called by libfanout.so itself (the
 *   fanout/posix/write          wrappers below interpose on libc and fail
 *   fanout/posix/fork           only calls whose caller is in libfanout.so,
 *                               so the test's own threads, liburcu and libc
 *                               are untouched; release builds, which link
 *                               the shared library and no sanitizer
 *                               interceptors)
 * plus libfiu's own POSIX points (fiu-run -x), e.g. libc/mm/malloc, which
 * fail every caller in the process.
 *
 * Rounds, until --seconds pass:
 *   stream  2 producers (push, push_many, try_push) into a stream with an
 *           anchor active cursor (read through fd + poll when the fd can be
 *           made), a share group of two members, a passive tap and a churn
 *           thread forking and closing cursors.  An FO_ENOMEM push is
 *           retried (the producer kept the item: nothing changed).  Checks:
 *           every return code is a documented one; the anchor reads every
 *           accepted item of each producer, in order, then FO_END; the group
 *           gets each item once; item_free runs exactly once per accepted
 *           item (st_freectx); nothing hangs (watchdog).
 *   flow    a pipeline stage, a join of helper-thread sources and a
 *           BACKGROUND feed over callback sources: the reader gets a prefix
 *           of each source in order, then FO_END (all of it) or FO_FAILED
 *           with a code injection can cause (FO_ENOMEM, FO_ESYS); creation
 *           calls return FO_OK, FO_ENOMEM or FO_ESYS and leave the source
 *           with the caller; every item is freed once.
 * At exit every allocation made through the allocator is freed (after the
 * deferred RCU frees drain), and every item destructor ran.
 *
 * Usage: fault_stress [--seed N] [--seconds S] [--quiet]
 */
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <sys/eventfd.h>

#include <fiu.h>

#include "../common/stress_common.h"

/* ------------------------------------------------------ injection points */

static atomic_long live_allocs, injected_alloc;

static void *fault_alloc(size_t size, void *ctx)
{
	(void)ctx;
	if (fiu_fail("fanout/alloc")) {
		atomic_fetch_add(&injected_alloc, 1);
		return NULL;
	}
	void *p = NULL;
	if (posix_memalign(&p, 64, size ? size : 1) != 0)
		return NULL;
	atomic_fetch_add(&live_allocs, 1);
	return p;
}

static void fault_free(void *p, void *ctx)
{
	(void)ctx;
	atomic_fetch_sub(&live_allocs, 1);
	free(p);
}

#ifdef FO_FAULT_WRAP_LIBC
/* Does the call come from libfanout.so? */
static bool from_fanout(const void *ret)
{
	Dl_info di;
	return dladdr(ret, &di) && di.dli_fname && strstr(di.dli_fname, "libfanout");
}

static atomic_long injected_sys;

#define FO_REAL(name)                                               \
	static __typeof__(name) *real;                              \
	if (!real)                                                  \
		real = (__typeof__(name) *)dlsym(RTLD_NEXT, #name); \
	if (!real)                                                  \
	abort()

int eventfd(unsigned int initval, int flags)
{
	FO_REAL(eventfd);
	if (from_fanout(__builtin_return_address(0)) && fiu_fail("fanout/posix/eventfd")) {
		atomic_fetch_add(&injected_sys, 1);
		errno = EMFILE;
		return -1;
	}
	return real(initval, flags);
}

int pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg)
{
	FO_REAL(pthread_create);
	if (from_fanout(__builtin_return_address(0)) && fiu_fail("fanout/posix/pthread_create")) {
		atomic_fetch_add(&injected_sys, 1);
		return EAGAIN;
	}
	return real(t, a, fn, arg);
}

ssize_t write(int fd, const void *buf, size_t n)
{
	FO_REAL(write);
	if (from_fanout(__builtin_return_address(0)) && fiu_fail("fanout/posix/write")) {
		atomic_fetch_add(&injected_sys, 1);
		errno = EAGAIN; /* an eventfd write can only fail with EAGAIN */
		return -1;
	}
	return real(fd, buf, n);
}

pid_t fork(void)
{
	FO_REAL(fork);
	if (from_fanout(__builtin_return_address(0)) && fiu_fail("fanout/posix/fork")) {
		atomic_fetch_add(&injected_sys, 1);
		errno = EAGAIN;
		return -1;
	}
	return real();
}
#endif

/* ------------------------------------------------------------- helpers */

static bool quiet;
static const char *volatile phase = "";
static atomic_long nenomem, nesys, nfull, nfd_fail, nmissed;

/* rc must be one of the codes in @ok (terminated by INT32_MIN). */
static bool rc_in(int rc, const int *ok)
{
	for (; *ok != INT32_MIN; ok++)
		if (rc == *ok)
			return true;
	return false;
}

#define EXPECT(rc, what, ...)                                                               \
	do {                                                                                \
		static const int ok_[] = {__VA_ARGS__, INT32_MIN};                          \
		if (!rc_in((rc), ok_))                                                      \
			st_fail("%s returned %s (%d), not a documented outcome here", what, \
			        fo_status_name(rc), rc);                                    \
	} while (0)

/* ------------------------------------------------------------ stream round */

#define NPROD 2

static struct {
	fo_stream *s;
	uint64_t n; /* items per producer */
	st_freectx fc;
	_Atomic uint64_t accepted[NPROD];
	st_bitmap group_got[NPROD];
	atomic_bool producers_done;
	uint64_t seed;
} R;

static void *producer(void *arg)
{
	uint32_t p = (uint32_t)(uintptr_t)arg;
	st_rng rng;
	st_rng_init(&rng, R.seed, p + 1);
	uint64_t seq = 0;
	while (seq < R.n) {
		unsigned how = (unsigned)st_below(&rng, 3);
		size_t n = how == 2 ? 1 + st_below(&rng, 16) : 1;
		if (n > R.n - seq)
			n = R.n - seq;
		st_item *its[16];
		for (size_t k = 0; k < n; k++)
			its[k] = st_item_new(p, seq + k, seq, (uint16_t)k, (uint16_t)n);
		int rc;
		if (how == 0)
			rc = fo_stream_push(R.s, its[0]);
		else if (how == 1)
			rc = fo_stream_try_push(R.s, its[0]);
		else
			rc = fo_stream_push_many(R.s, (void *const *)its, n);
		EXPECT(rc, "push", FO_OK, FO_ENOMEM, FO_FULL);
		if (rc == FO_OK) {
			seq += n;
			atomic_fetch_add(&R.accepted[p], n);
			st_tick();
			continue;
		}
		/* Refused: the items are still ours and nothing changed: retry them. */
		atomic_fetch_add(rc == FO_ENOMEM ? &nenomem : &nfull, 1);
		for (size_t k = 0; k < n; k++)
			free(its[k]);
		sched_yield();
	}
	return NULL;
}

/* Open a cursor, retrying injected FO_ENOMEM a bounded number of times. */
static int open_cursor(fo_stream *s, fo_cursor **c, unsigned kind)
{
	int rc;
	for (int tries = 0; tries < 1000; tries++) {
		rc = fo_stream_cursor(s, c, kind);
		EXPECT(rc, "fo_stream_cursor", FO_OK, FO_ENOMEM);
		if (rc != FO_ENOMEM)
			return rc;
		atomic_fetch_add(&nenomem, 1);
	}
	return rc;
}

static void *anchor_reader(void *arg)
{
	fo_cursor *c = arg;
	uint64_t next[NPROD] = {0};
	int fd = fo_cursor_fd(c);
	if (fd < 0) {
		EXPECT(fd, "fo_cursor_fd", FO_ESYS);
		atomic_fetch_add(&nfd_fail, 1);
	}
	for (;;) {
		void *v[32];
		size_t n = 0;
		int rc = fo_cursor_next_many(c, v, 32, &n);
		if (rc == FO_EMPTY) {
			if (fd >= 0) {
				int a = fo_cursor_arm(c);
				EXPECT(a, "fo_cursor_arm", 0, 1);
				if (a == 0) {
					/* Bounded: an injected eventfd write failure loses that
					 * signal (the library ignores write errors: on an eventfd
					 * only EAGAIN is possible, with the counter saturated and
					 * so readable); the timeout re-checks and counts the miss.
					 */
					struct pollfd pfd = {fd, POLLIN, 0};
					if (poll(&pfd, 1, 100) == 0 && fo_cursor_at_least(c, 1))
						atomic_fetch_add(&nmissed, 1);
				}
			} else {
				void *x;
				rc = fo_cursor_timed_next(c, &x, 100 * ST_NS_PER_MS);
				if (rc == FO_TIMEDOUT)
					continue;
				if (rc == FO_OK) {
					v[0] = x;
					n = 1;
				}
			}
			if (rc == FO_EMPTY)
				continue;
		}
		if (rc == FO_END)
			break;
		if (rc != FO_OK) {
			st_fail("anchor: %s", fo_status_name(rc));
			break;
		}
		for (size_t k = 0; k < n; k++) {
			st_item *it = v[k];
			if (!st_item_check(it, NPROD, "anchor"))
				continue;
			if (it->seq != next[it->producer])
				st_fail("anchor: producer %u seq %" PRIu64 ", want %" PRIu64
				        " (lost or "
				        "reordered)",
				        it->producer, it->seq, next[it->producer]);
			next[it->producer] = it->seq + 1;
		}
		st_tick();
	}
	for (int p = 0; p < NPROD; p++)
		if (next[p] != R.n)
			st_fail("anchor: producer %d ended at %" PRIu64 " of %" PRIu64, p, next[p],
			        R.n);
	return NULL;
}

static void *group_reader(void *arg)
{
	fo_cursor **m = arg; /* two members, read alternately */
	bool done[2] = {false, false};
	for (unsigned turn = 0; !(done[0] && done[1]); turn ^= 1) {
		if (done[turn])
			continue;
		void *x;
		int rc = fo_cursor_timed_next(m[turn], &x, 20 * ST_NS_PER_MS);
		if (rc == FO_TIMEDOUT)
			continue;
		if (rc == FO_END) {
			done[turn] = true;
			continue;
		}
		if (rc != FO_OK) {
			st_fail("group member: %s", fo_status_name(rc));
			break;
		}
		st_item *it = x;
		if (st_item_check(it, NPROD, "group") &&
		    st_bitmap_set(&R.group_got[it->producer], it->seq))
			st_fail("group: producer %u seq %" PRIu64 " given twice", it->producer,
			        it->seq);
		st_tick();
	}
	return NULL;
}

static void *tap_reader(void *arg)
{
	fo_cursor *c = arg;
	uint64_t last[NPROD];
	memset(last, 0xff, sizeof(last));
	for (;;) {
		void *x;
		int rc = fo_cursor_timed_next(c, &x, 50 * ST_NS_PER_MS);
		if (rc == FO_TIMEDOUT || rc == FO_LAGGED)
			continue;
		if (rc == FO_END)
			break;
		if (rc != FO_OK) {
			st_fail("tap: %s", fo_status_name(rc));
			break;
		}
		st_item *it = x;
		if (st_item_check(it, NPROD, "tap") && last[it->producer] != UINT64_MAX &&
		    it->seq <= last[it->producer])
			st_fail("tap: producer %u went back", it->producer);
		last[it->producer] = it->seq;
	}
	return NULL;
}

static void *churn(void *arg)
{
	fo_cursor *base = arg; /* an active cursor this thread owns */
	st_rng rng;
	st_rng_init(&rng, R.seed, 99);
	fo_cursor *held[4] = {0};
	while (!atomic_load(&R.producers_done)) {
		unsigned k = (unsigned)st_below(&rng, 4);
		if (held[k]) {
			void *x;
			int rc = fo_cursor_try_next(held[k], &x);
			EXPECT(rc, "churn read", FO_OK, FO_EMPTY, FO_LAGGED);
			fo_cursor_close(held[k]);
			held[k] = NULL;
		} else {
			static const unsigned kinds[] = {FO_ACTIVE, FO_PASSIVE, FO_ACTIVE,
			                                 FO_PASSIVE};
			int rc = fo_cursor_fork(base, &held[k], kinds[k]);
			EXPECT(rc, "fo_cursor_fork", FO_OK, FO_ENOMEM);
			if (rc != FO_OK) {
				held[k] = NULL;
				atomic_fetch_add(&nenomem, 1);
			}
		}
		void *x;
		while (fo_cursor_try_next(base, &x) == FO_OK) {
		}
		st_sleep_ns(200000);
	}
	for (int k = 0; k < 4; k++)
		fo_cursor_close(held[k]);
	fo_cursor_close(base);
	return NULL;
}

static void stream_round(st_rng *rng)
{
	memset(&R, 0, sizeof(R));
	R.seed = st_rand(rng);
	R.n = 20000;
	st_freectx_init(&R.fc, NPROD, R.n);
	for (int p = 0; p < NPROD; p++)
		st_bitmap_init(&R.group_got[p], R.n);
	fo_stream_opts o;
	fo_stream_opts_init(&o);
	o.capacity = st_below(rng, 2) ? 0 : 256;
	o.passive_window = 256;
	o.item_free = st_item_free_cb;
	o.item_free_ctx = &R.fc;
	int rc;
	while ((rc = fo_stream_create(&R.s, &o)) != FO_OK) {
		EXPECT(rc, "fo_stream_create", FO_ENOMEM);
		atomic_fetch_add(&nenomem, 1);
	}
	fo_cursor *anchor = NULL, *tap = NULL, *churn_base = NULL, *m[2] = {0};
	if (open_cursor(R.s, &anchor, FO_ACTIVE) != FO_OK) {
		st_fail("no anchor cursor after 1000 tries");
		return;
	}
	bool have_tap = open_cursor(R.s, &tap, FO_PASSIVE) == FO_OK;
	bool have_churn = open_cursor(R.s, &churn_base, FO_ACTIVE) == FO_OK;
	bool have_group = open_cursor(R.s, &m[0], FO_SHARED) == FO_OK;
	if (have_group) {
		rc = fo_cursor_fork(m[0], &m[1], FO_SHARED);
		EXPECT(rc, "fork(SHARED)", FO_OK, FO_ENOMEM);
		if (rc != FO_OK) {
			fo_cursor_close(m[0]);
			m[0] = m[1] = NULL;
			have_group = false;
		}
	}
	pthread_t ta, tt, tg, tc, tp[NPROD];
	st_thread_start(&ta, anchor_reader, anchor);
	if (have_tap)
		st_thread_start(&tt, tap_reader, tap);
	if (have_group)
		st_thread_start(&tg, group_reader, m);
	if (have_churn)
		st_thread_start(&tc, churn, churn_base);
	for (int p = 0; p < NPROD; p++)
		st_thread_start(&tp[p], producer, (void *)(uintptr_t)p);
	for (int p = 0; p < NPROD; p++)
		st_thread_join(tp[p]);
	atomic_store(&R.producers_done, true);
	EXPECT(fo_stream_close(R.s), "fo_stream_close", FO_OK);
	st_thread_join(ta);
	if (have_tap)
		st_thread_join(tt);
	if (have_group)
		st_thread_join(tg);
	if (have_churn)
		st_thread_join(tc);
	fo_cursor_close(anchor);
	fo_cursor_close(tap);
	fo_cursor_close(m[0]);
	fo_cursor_close(m[1]);
	if (have_group)
		for (int p = 0; p < NPROD; p++)
			if (st_bitmap_count(&R.group_got[p], 0, R.n) != R.n)
				st_fail("group: producer %d: %" PRIu64 " of %" PRIu64 " items", p,
				        st_bitmap_count(&R.group_got[p], 0, R.n), R.n);
	fo_stream_destroy(R.s);
	for (int p = 0; p < NPROD; p++)
		if (st_freed_of(&R.fc, (uint32_t)p) != atomic_load(&R.accepted[p]))
			st_fail("item_free ran %" PRIu64 " times for producer %d, %" PRIu64
			        " items accepted",
			        st_freed_of(&R.fc, (uint32_t)p), p, atomic_load(&R.accepted[p]));
	for (int p = 0; p < NPROD; p++)
		st_bitmap_fini(&R.group_got[p]);
	st_freectx_fini(&R.fc);
}

/* -------------------------------------------------------------- flow round */

static atomic_long flow_alloc, flow_free;

typedef struct fsrc {
	int id;
	uint64_t n, next;
} fsrc;

static void fval_free(void *p, void *ctx)
{
	(void)ctx;
	free(p);
	atomic_fetch_add(&flow_free, 1);
}

static int fsrc_next(void *ctx, void **item, uint64_t deadline)
{
	(void)deadline;
	fsrc *s = ctx;
	if (s->next == s->n)
		return FO_END;
	uint64_t *v = malloc(sizeof(*v));
	if (!v)
		abort();
	atomic_fetch_add(&flow_alloc, 1);
	*v = (uint64_t)s->id << 32 | s->next++;
	*item = v;
	return FO_OK;
}

static fo_iter *fsrc_new(fsrc *s, int id, uint64_t n)
{
	*s = (fsrc){id, n, 0};
	fo_iter *it = NULL;
	int rc;
	while ((rc = fo_iter_from_fn(&it, fsrc_next, NULL, s, fval_free, NULL)) != FO_OK) {
		EXPECT(rc, "fo_iter_from_fn", FO_ENOMEM);
		atomic_fetch_add(&nenomem, 1);
	}
	return it;
}

/* Read @it to its end: per source in order from 0; FO_END needs everything. */
static void drain(fo_iter *it, const char *what, int nsrc, uint64_t n)
{
	uint64_t next[4] = {0};
	void *x;
	int rc;
	while ((rc = fo_iter_next(it, &x)) == FO_OK) {
		uint64_t v = *(uint64_t *)x;
		int id = (int)(v >> 32);
		if (id >= nsrc || (v & 0xffffffffu) != next[id])
			st_fail("%s: item %d/%" PRIu64 " out of order", what, id, v & 0xffffffffu);
		else
			next[id]++;
		fo_iter_release(it, x);
		st_tick();
	}
	if (rc == FO_END) {
		for (int k = 0; k < nsrc; k++)
			if (next[k] != n)
				st_fail("%s: FO_END after %" PRIu64 " of %" PRIu64
				        " items of source %d",
				        what, next[k], n, k);
	} else {
		const fo_error *e = fo_iter_error(it);
		EXPECT(rc, what, FO_FAILED);
		if (e)
			EXPECT(e->code, what, FO_ENOMEM, FO_ESYS);
		atomic_fetch_add(e && e->code == FO_ESYS ? &nesys : &nenomem, 1);
	}
}

static void flow_round(st_rng *rng)
{
	uint64_t n = 200 + st_below(rng, 2000);
	fsrc s[3];
	fo_iter *it;
	int rc;

	/* pipeline stage */
	phase = "pipeline";
	fo_pipeline *p = NULL;
	rc = fo_pipeline_create(&p, NULL);
	EXPECT(rc, "fo_pipeline_create", FO_OK, FO_ENOMEM);
	if (rc == FO_OK) {
		fo_iter *src = fsrc_new(&s[0], 0, n), *out = NULL;
		rc = fo_pipeline_buffer(p, &out, src, 1 + st_below(rng, 64));
		EXPECT(rc, "fo_pipeline_buffer", FO_OK, FO_ENOMEM);
		if (rc == FO_OK) {
			drain(out, "pipeline", 1, n);
			fo_iter_close(out);
		} else {
			fo_iter_close(src); /* refused: still ours */
		}
		fo_pipeline_destroy(p);
	}

	/* join of helper-thread sources */
	phase = "join";
	fo_join_opts jo;
	fo_join_opts_init(&jo);
	jo.item_free = fval_free;
	jo.buffer = 1 + st_below(rng, 64);
	fo_join *j = NULL;
	rc = fo_join_create(&j, &jo);
	EXPECT(rc, "fo_join_create", FO_OK, FO_ENOMEM);
	if (rc == FO_OK) {
		int added = 0;
		for (int k = 0; k < 3; k++) {
			fo_iter *src = fsrc_new(&s[added], added, n);
			rc = fo_join_add(j, src);
			EXPECT(rc, "fo_join_add", FO_OK, FO_ENOMEM, FO_ESYS);
			if (rc == FO_OK)
				added++;
			else
				fo_iter_close(src);
		}
		fo_join_seal(j);
		it = fo_join_iter(j);
		fo_join_destroy(j);
		if (it) {
			drain(it, "join", added, n);
			fo_iter_close(it);
		}
	}

	/* BACKGROUND feed */
	phase = "feed";
	fo_feed_opts fo;
	fo_feed_opts_init(&fo);
	fo.ahead = st_below(rng, 64);
	fo_iter *src = fsrc_new(&s[0], 0, n);
	fo_feeder *f = NULL;
	fo_cursor *c = NULL;
	rc = fo_feed_create(&f, &c, src, &fo);
	EXPECT(rc, "fo_feed_create", FO_OK, FO_ENOMEM, FO_ESYS);
	if (rc == FO_OK) {
		uint64_t next = 0;
		void *x;
		while ((rc = fo_cursor_next(c, &x)) == FO_OK) {
			if (*(uint64_t *)x != next)
				st_fail("feed: item %" PRIu64 ", want %" PRIu64, *(uint64_t *)x,
				        next);
			next = *(uint64_t *)x + 1;
			st_tick();
		}
		if (rc == FO_END && next != n)
			st_fail("feed: FO_END after %" PRIu64 " of %" PRIu64, next, n);
		if (rc == FO_FAILED)
			EXPECT(fo_cursor_error(c)->code, "feed failure", FO_ENOMEM, FO_ESYS);
		else
			EXPECT(rc, "feed read", FO_END);
		fo_cursor_close(c);
		fo_feed_destroy(f);
	} else {
		fo_iter_close(src);
	}
}

/* ------------------------------------------------------------------- main */

static void dump(void)
{
	fprintf(stderr, "  fault_stress: phase %s, live allocations %ld\n", phase,
	        atomic_load(&live_allocs));
}

int main(int argc, char **argv)
{
	uint64_t seed = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 20;
	double seconds = 10;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			seed = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			seconds = atof(argv[++i]);
		else if (!strcmp(argv[i], "--quiet"))
			quiet = true;
		else {
			fprintf(stderr, "usage: %s [--seed N] [--seconds S] [--quiet]\n", argv[0]);
			return 2;
		}
	}
	st_seed_used = seed;
	if (!getenv("FIU_CTRL_FIFO")) /* not under fiu-run, whose preload did it */
		fiu_init(0);
	fo_allocator a = {fault_alloc, fault_free, NULL};
	fo_set_allocator(&a);
	printf("fault_stress: seed=%" PRIu64 " (replay: --seed %" PRIu64 ")\n", seed, seed);
	fflush(stdout);
	st_watchdog_start(60 * ST_NS_PER_S, dump);

	st_rng rng;
	st_rng_init(&rng, seed, 0);
	int64_t end = st_now_ns() + (int64_t)(seconds * 1e9);
	int rounds = 0;
	do {
		st_set_context("round %d (stream)", rounds);
		stream_round(&rng);
		st_set_context("round %d (flow)", rounds);
		flow_round(&rng);
		rounds++;
	} while (st_now_ns() < end && st_failure_count() == 0);

	/* Every allocation back: the deferred segment frees run on liburcu's
	 * call_rcu thread, so give them a moment. */
	for (int k = 0; k < 500 && atomic_load(&live_allocs) != 0; k++)
		st_sleep_ns(10 * ST_NS_PER_MS);
	if (atomic_load(&live_allocs) != 0)
		st_fail("%ld allocations not freed after every object was closed",
		        atomic_load(&live_allocs));
	if (atomic_load(&flow_alloc) != atomic_load(&flow_free))
		st_fail("flow items: %ld allocated, %ld freed", atomic_load(&flow_alloc),
		        atomic_load(&flow_free));
	st_watchdog_end();
	long sys = 0;
#ifdef FO_FAULT_WRAP_LIBC
	sys = atomic_load(&injected_sys);
#endif
	printf("fault_stress: %d rounds; injected: %ld allocations, %ld system calls; seen: "
	       "FO_ENOMEM %ld, FO_ESYS %ld, FO_FULL %ld, fd failures %ld, wake-ups missed %ld; %lu "
	       "failures\n",
	       rounds, atomic_load(&injected_alloc), sys, atomic_load(&nenomem),
	       atomic_load(&nesys), atomic_load(&nfull), atomic_load(&nfd_fail),
	       atomic_load(&nmissed), st_failure_count());
	fflush(stdout);
	return st_failure_count() ? 1 : 0;
}
