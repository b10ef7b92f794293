/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/**
 * tests/common/stress_common.h - helpers shared by the sequence-oracle stress
 * programs in tests/stress/ (plain C + pthreads, no cmocka).
 *
 * Everything is static inline so each stress program is self-contained:
 *   - st_item: the item every producer pushes ({producer, seq, batch, checksum}),
 *     allocated per item, poisoned and freed by the stream's item_free;
 *   - st_rng: xorshift64* seeded from --seed (and a per-thread salt);
 *   - st_fail(): thread-safe failure recording (first messages printed, all
 *     counted); the main thread decides to exit non-zero;
 *   - st_bitmap: atomic bitmaps (shared-group claims, destructor runs);
 *   - st_freectx: the item_free callback's context: per-producer destructor
 *     counts and a "freed" bitmap that catches a destructor run twice;
 *   - a stall watchdog: if no thread makes progress for the stall limit, it
 *     prints the program's diagnostic and aborts (so a hang in fo_cursor_next
 *     or fo_stream_push is a failure with a message, never a silent hang);
 *   - command-line parsing for --seed N and --items N, and the sanitizer scale
 *     from the FO_SANITIZE environment variable.
 */
#ifndef FANOUT_TESTS_STRESS_COMMON_H
#define FANOUT_TESTS_STRESS_COMMON_H

#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <fanout/fanout.h>

#define ST_NS_PER_MS 1000000LL
#define ST_NS_PER_S  1000000000LL

/* ---------------------------------------------------------------- time */

static inline int64_t st_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * ST_NS_PER_S + ts.tv_nsec;
}

static inline void st_sleep_ns(int64_t ns)
{
	struct timespec ts = {(time_t)(ns / ST_NS_PER_S), (long)(ns % ST_NS_PER_S)};
	while (nanosleep(&ts, &ts) != 0) {
	}
}

/* ----------------------------------------------------- sanitizer scale */

enum st_build { ST_NATIVE = 0, ST_ASAN = 1, ST_TSAN = 2 };

/* FO_SANITIZE is "address" or "thread" in sanitizer builds (set by CTest). */
static inline enum st_build st_build_kind(void)
{
	const char *s = getenv("FO_SANITIZE");
	if (s && strcmp(s, "address") == 0)
		return ST_ASAN;
	if (s && strcmp(s, "thread") == 0)
		return ST_TSAN;
#if defined(FO_TSAN)
	return ST_TSAN;
#elif defined(__SANITIZE_ADDRESS__)
	return ST_ASAN;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
	return ST_TSAN;
#elif __has_feature(address_sanitizer)
	return ST_ASAN;
#endif
#endif
	return ST_NATIVE;
}

static inline const char *st_build_name(enum st_build b)
{
	return b == ST_TSAN ? "tsan" : b == ST_ASAN ? "asan" : "native";
}

/* Scale a native count: ASan ~1/3, TSan ~1/10 (never below @min). */
static inline uint64_t st_scale(uint64_t native, uint64_t min)
{
	uint64_t v = native;
	switch (st_build_kind()) {
	case ST_ASAN:
		v = native / 3;
		break;
	case ST_TSAN:
		v = native / 10;
		break;
	default:
		break;
	}
	return v < min ? min : v;
}

/* Time limits (stall watchdog, END waits) grow for sanitizer builds. */
static inline int64_t st_time_factor(void)
{
	switch (st_build_kind()) {
	case ST_ASAN:
		return 2;
	case ST_TSAN:
		return 4;
	default:
		return 1;
	}
}

/* ------------------------------------------------------------------ RNG */

typedef struct st_rng {
	uint64_t s;
} st_rng;

static inline uint64_t st_mix64(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline void st_rng_init(st_rng *r, uint64_t seed, uint64_t salt)
{
	r->s = st_mix64(seed ^ st_mix64(salt + 0x1234567ULL));
	if (r->s == 0)
		r->s = 0x2545f4914f6cdd1dULL;
}

/* xorshift64* */
static inline uint64_t st_rand(st_rng *r)
{
	uint64_t x = r->s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	r->s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

/* uniform in [0, n) (n > 0; the tiny modulo bias does not matter here) */
static inline uint64_t st_below(st_rng *r, uint64_t n)
{
	return (st_rand(r) >> 11) % n;
}

/* ------------------------------------------------------------- failures */

static atomic_ulong st_failures;
static pthread_mutex_t st_print_lock = PTHREAD_MUTEX_INITIALIZER;
static char st_context[256]; /* the cell / scenario being run (main thread sets) */
static uint64_t st_seed_used;

#define ST_MAX_PRINTED_FAILURES 25

static inline void st_set_context(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void st_set_context(const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&st_print_lock);
	va_start(ap, fmt);
	vsnprintf(st_context, sizeof st_context, fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&st_print_lock);
}

/* Record a violation; any thread.  The first few are printed with context. */
static inline void st_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void st_fail(const char *fmt, ...)
{
	unsigned long n = atomic_fetch_add_explicit(&st_failures, 1, memory_order_relaxed);
	if (n >= ST_MAX_PRINTED_FAILURES) {
		if (n == ST_MAX_PRINTED_FAILURES) {
			pthread_mutex_lock(&st_print_lock);
			fprintf(stderr, "FAIL: (further failures counted, not printed)\n");
			pthread_mutex_unlock(&st_print_lock);
		}
		return;
	}
	va_list ap;
	pthread_mutex_lock(&st_print_lock);
	fprintf(stderr, "FAIL [seed %" PRIu64 "] [%s]: ", st_seed_used, st_context);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	pthread_mutex_unlock(&st_print_lock);
}

static inline unsigned long st_failure_count(void)
{
	return atomic_load_explicit(&st_failures, memory_order_relaxed);
}

/* Unrecoverable setup error (e.g. pthread_create): print and exit 2. */
static inline void st_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static inline void st_die(const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&st_print_lock);
	fprintf(stderr, "FATAL [seed %" PRIu64 "] [%s]: ", st_seed_used, st_context);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	pthread_mutex_unlock(&st_print_lock);
	_exit(2);
}

static inline void st_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void st_log(const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&st_print_lock);
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fflush(stdout);
	pthread_mutex_unlock(&st_print_lock);
}

static inline void *st_xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz ? sz : 1);
	if (!p)
		st_die("calloc(%zu, %zu) failed", n, sz);
	return p;
}

static inline void st_thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	int e = pthread_create(t, NULL, fn, arg);
	if (e != 0)
		st_die("pthread_create failed: %s", strerror(e));
}

static inline void st_thread_join(pthread_t t)
{
	int e = pthread_join(t, NULL);
	if (e != 0)
		st_die("pthread_join failed: %s", strerror(e));
}

/* ----------------------------------------------------------------- items */

#define ST_ITEM_MAGIC  0x53544954454d2121ULL /* "STITEM!!" */
#define ST_ITEM_POISON 0xdeaddeaddeaddeadULL

/**
 * st_item - what producers push.  @batch is a producer-local batch id (for a
 * single push: the seq), @batch_pos/@batch_len its place in a push_many batch
 * (0/1 for a single push).  @checksum covers every other field; the stream's
 * item_free poisons @magic and @checksum before freeing, so a read of a freed
 * (or torn, or stale) item fails the check.
 */
typedef struct st_item {
	uint64_t magic;
	uint64_t seq;
	uint64_t batch;
	uint32_t producer;
	uint16_t batch_pos;
	uint16_t batch_len;
	uint64_t checksum;
} st_item;

static inline uint64_t st_item_sum(uint32_t producer, uint64_t seq, uint64_t batch, uint16_t pos,
                                   uint16_t len)
{
	uint64_t h = st_mix64(((uint64_t)producer << 32) ^ 0xa5a5a5a5ULL);
	h = st_mix64(h ^ seq);
	h = st_mix64(h ^ batch ^ ((uint64_t)pos << 48) ^ ((uint64_t)len << 32));
	return h;
}

static inline st_item *st_item_new(uint32_t producer, uint64_t seq, uint64_t batch, uint16_t pos,
                                   uint16_t len)
{
	st_item *it = malloc(sizeof *it);
	if (!it)
		st_die("malloc(item) failed");
	it->magic = ST_ITEM_MAGIC;
	it->seq = seq;
	it->batch = batch;
	it->producer = producer;
	it->batch_pos = pos;
	it->batch_len = len;
	it->checksum = st_item_sum(producer, seq, batch, pos, len);
	return it;
}

/* true if @it looks intact (and its producer is < @nprod); else records a failure */
static inline bool st_item_check(const void *p, uint32_t nprod, const char *who)
{
	const st_item *it = p;
	if (!it) {
		st_fail("%s: got a NULL item with FO_OK", who);
		return false;
	}
	if (it->magic != ST_ITEM_MAGIC ||
	    it->checksum !=
	        st_item_sum(it->producer, it->seq, it->batch, it->batch_pos, it->batch_len) ||
	    it->producer >= nprod) {
		st_fail("%s: corrupt/freed/stale item %p: magic=%#" PRIx64
		        " producer=%u seq=%" PRIu64 " checksum=%#" PRIx64 "%s",
		        who, p, it->magic, it->producer, it->seq, it->checksum,
		        it->magic == ST_ITEM_POISON ? " (POISONED: item_free already ran)" : "");
		return false;
	}
	return true;
}

/* ---------------------------------------------------------------- close */

/* Closed stays closed: a push of producer @id's item @seq after FO_ECLOSED
 * must fail with FO_ECLOSED again and take nothing. */
static inline void st_expect_closed_push(fo_stream *s, uint32_t id, uint64_t seq)
{
	st_item *late = st_item_new(id, seq, seq, 0, 1);
	int rc = fo_stream_push(s, late);
	if (rc != FO_ECLOSED)
		st_fail("producer %u: push after FO_ECLOSED: %s", id, fo_status_name(rc));
	free(late);
}

/* The body of a closer thread: wait for *@go, spin @spins iterations (a
 * random delay that races the close against the pushers), close @s, and
 * check that the close succeeded and is visible. */
static inline void st_close_after(fo_stream *s, _Atomic bool *go, uint64_t spins)
{
	while (!atomic_load_explicit(go, memory_order_acquire))
		;
	for (volatile uint64_t i = 0; i < spins; i++)
		;
	int rc = fo_stream_close(s);
	if (rc != FO_OK)
		st_fail("close: %s", fo_status_name(rc));
	if (!fo_stream_is_closed(s))
		st_fail("fo_stream_is_closed() false after close returned");
}

/* ---------------------------------------------------------------- bitmap */

typedef struct st_bitmap {
	_Atomic uint64_t *w;
	uint64_t nbits;
} st_bitmap;

static inline void st_bitmap_init(st_bitmap *b, uint64_t nbits)
{
	b->nbits = nbits;
	b->w = st_xcalloc((size_t)((nbits + 63) / 64), sizeof(uint64_t));
}

static inline void st_bitmap_fini(st_bitmap *b)
{
	free((void *)b->w);
	b->w = NULL;
}

/* set bit @i; returns true if it was already set */
static inline bool st_bitmap_set(st_bitmap *b, uint64_t i)
{
	uint64_t m = 1ULL << (i & 63);
	return (atomic_fetch_or_explicit(&b->w[i >> 6], m, memory_order_relaxed) & m) != 0;
}

static inline bool st_bitmap_get(const st_bitmap *b, uint64_t i)
{
	return (atomic_load_explicit(&b->w[i >> 6], memory_order_relaxed) >> (i & 63)) & 1;
}

/* first index in [lo, hi) that is clear, or hi */
static inline uint64_t st_bitmap_first_clear(const st_bitmap *b, uint64_t lo, uint64_t hi)
{
	for (uint64_t i = lo; i < hi; i++) {
		if ((i & 63) == 0 && i + 64 <= hi &&
		    atomic_load_explicit(&b->w[i >> 6], memory_order_relaxed) == ~0ULL) {
			i += 63;
			continue;
		}
		if (!st_bitmap_get(b, i))
			return i;
	}
	return hi;
}

static inline uint64_t st_bitmap_count(const st_bitmap *b, uint64_t lo, uint64_t hi)
{
	uint64_t n = 0;
	for (uint64_t i = lo; i < hi; i++)
		n += st_bitmap_get(b, i);
	return n;
}

/* ------------------------------------------------- item_free accounting */

/**
 * st_freectx - the item_free context: per producer, how many destructors ran
 * and which seqs were freed (a second run for one item is a failure, reported
 * before the memory is touched twice).
 */
typedef struct st_freectx {
	uint32_t nprod;
	_Atomic uint64_t *freed; /* per producer */
	_Atomic uint64_t total;
	st_bitmap *bits; /* per producer, over the seq space */
	uint64_t seq_space;
} st_freectx;

static inline void st_freectx_init(st_freectx *f, uint32_t nprod, uint64_t seq_space)
{
	f->nprod = nprod;
	f->freed = st_xcalloc(nprod, sizeof(uint64_t));
	atomic_init(&f->total, 0);
	f->seq_space = seq_space;
	f->bits = st_xcalloc(nprod, sizeof(st_bitmap));
	for (uint32_t p = 0; p < nprod; p++)
		st_bitmap_init(&f->bits[p], seq_space);
}

static inline void st_freectx_fini(st_freectx *f)
{
	for (uint32_t p = 0; p < f->nprod; p++)
		st_bitmap_fini(&f->bits[p]);
	free(f->bits);
	free((void *)f->freed);
}

static inline uint64_t st_freed_total(st_freectx *f)
{
	return atomic_load_explicit(&f->total, memory_order_acquire);
}

static inline uint64_t st_freed_of(st_freectx *f, uint32_t p)
{
	return atomic_load_explicit(&f->freed[p], memory_order_acquire);
}

/* The stream's item_free: validate, count, poison, free. */
static inline void st_item_free_cb(void *item, void *ctx)
{
	st_freectx *f = ctx;
	st_item *it = item;
	if (!st_item_check(it, f->nprod, "item_free")) {
		/* corrupt or already freed: do not touch it again */
		return;
	}
	if (it->seq >= f->seq_space) {
		st_fail("item_free: seq %" PRIu64 " out of range", it->seq);
		return;
	}
	if (st_bitmap_set(&f->bits[it->producer], it->seq)) {
		st_fail("item_free: destructor ran twice for producer %u seq %" PRIu64,
		        it->producer, it->seq);
		return;
	}
	atomic_fetch_add_explicit(&f->freed[it->producer], 1, memory_order_acq_rel);
	atomic_fetch_add_explicit(&f->total, 1, memory_order_acq_rel);
	it->magic = ST_ITEM_POISON;
	it->checksum = ST_ITEM_POISON;
	free(it);
}

/* ------------------------------------------------------------- watchdog */

/*
 * Threads bump st_progress whenever they get an item, push, or finish a step.
 * The watchdog aborts (with the program's diagnostic) if it stays unchanged for
 * the stall limit.  st_watchdog_dump is set by the program (may be NULL).
 */
static atomic_ulong st_progress;
static atomic_bool st_watchdog_stop;
static int64_t st_stall_limit_ns;
static void (*st_watchdog_dump)(void);
static pthread_t st_watchdog_thread;

static inline void st_tick(void)
{
	atomic_fetch_add_explicit(&st_progress, 1, memory_order_relaxed);
}

static inline void *st_watchdog_main(void *arg)
{
	(void)arg;
	unsigned long last = atomic_load(&st_progress);
	int64_t last_change = st_now_ns();
	while (!atomic_load(&st_watchdog_stop)) {
		st_sleep_ns(100 * ST_NS_PER_MS);
		unsigned long now = atomic_load(&st_progress);
		int64_t t = st_now_ns();
		if (now != last) {
			last = now;
			last_change = t;
		} else if (t - last_change > st_stall_limit_ns) {
			pthread_mutex_lock(&st_print_lock);
			fprintf(stderr,
			        "FAIL [seed %" PRIu64 "] [%s]: STALL: no thread made progress for "
			        "%.0f s (a blocking fanout call never returned)\n",
			        st_seed_used, st_context, (double)st_stall_limit_ns / 1e9);
			fflush(stderr);
			pthread_mutex_unlock(&st_print_lock);
			if (st_watchdog_dump)
				st_watchdog_dump();
			fflush(stdout);
			fflush(stderr);
			_exit(3);
		}
	}
	return NULL;
}

static inline void st_watchdog_start(int64_t stall_ns, void (*dump)(void))
{
	st_stall_limit_ns = stall_ns;
	st_watchdog_dump = dump;
	atomic_store(&st_watchdog_stop, false);
	st_thread_start(&st_watchdog_thread, st_watchdog_main, NULL);
}

static inline void st_watchdog_end(void)
{
	atomic_store(&st_watchdog_stop, true);
	st_thread_join(st_watchdog_thread);
}

/* ------------------------------------------------------------ arguments */

typedef struct st_args {
	uint64_t seed;
	uint64_t items; /* 0: program default */
	bool have_items;
	const char *only; /* program-specific filter, or NULL */
	bool quick;
} st_args;

static inline void st_usage(const char *prog, const char *extra)
{
	fprintf(stderr,
	        "usage: %s [--seed N] [--items N] [--quick]%s\n"
	        "  --seed N   RNG seed (default: time-based; printed so a failure replays)\n"
	        "  --items N  items per producer in every cell (default: scaled per cell/build)\n"
	        "  --quick    a small smoke run\n",
	        prog, extra ? extra : "");
}

static inline void st_parse_args(int argc, char **argv, st_args *a, const char *extra_usage)
{
	memset(a, 0, sizeof *a);
	a->seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		const char *val = NULL;
		if ((strcmp(arg, "--seed") == 0 || strcmp(arg, "--items") == 0 ||
		     strcmp(arg, "--only") == 0) &&
		    i + 1 < argc)
			val = argv[++i];
		if (strcmp(arg, "--seed") == 0 && val) {
			a->seed = strtoull(val, NULL, 0);
		} else if (strcmp(arg, "--items") == 0 && val) {
			a->items = strtoull(val, NULL, 0);
			a->have_items = true;
			if (a->items == 0) {
				st_usage(argv[0], extra_usage);
				exit(2);
			}
		} else if (strcmp(arg, "--only") == 0 && val) {
			a->only = val;
		} else if (strcmp(arg, "--quick") == 0) {
			a->quick = true;
		} else if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			st_usage(argv[0], extra_usage);
			exit(0);
		} else {
			fprintf(stderr, "%s: bad argument '%s'\n", argv[0], arg);
			st_usage(argv[0], extra_usage);
			exit(2);
		}
	}
	st_seed_used = a->seed;
}

/* ------------------------------------------------------------ reading */

/**
 * st_read_some() - one read from @c with a randomly chosen call: next_many
 * (up to @max), timed_next with a short timeout (0..2 ms: timeouts must not
 * lose items), try_next, or a blocking wait.  When *@must_block is set (the
 * previous read found nothing) it waits: fo_cursor_next while producers run,
 * or fo_cursor_timed_next(@long_wait_ns) (then *@long_wait is set, so the
 * caller can fail on FO_TIMEDOUT) - always the bounded form once @closed.
 * Returns the status; *@n is the number of items in @items.
 */
static inline int st_read_some(fo_cursor *c, st_rng *rng, void **items, size_t max, size_t *n,
                               bool *must_block, bool closed, int64_t long_wait_ns, bool *long_wait)
{
	static const int64_t tmo[] = {0, 1000, 50000, 2 * ST_NS_PER_MS};
	uint64_t m = st_below(rng, 100);
	int rc;
	*n = 0;
	*long_wait = false;
	if (*must_block || (m >= 70 && m < 90)) {
		if (closed || m < 30) {
			*long_wait = true;
			rc = fo_cursor_timed_next(c, &items[0], long_wait_ns);
		} else {
			rc = fo_cursor_next(c, &items[0]);
		}
		*n = rc == FO_OK;
	} else if (m < 40) {
		rc = fo_cursor_next_many(c, items, 1 + (size_t)st_below(rng, max), n);
		if (rc == FO_OK && (*n == 0 || *n > max))
			st_fail("next_many: FO_OK with n=%zu (max %zu)", *n, max);
		if (rc != FO_OK && *n != 0) {
			st_fail("next_many: %s with n=%zu", fo_status_name(rc), *n);
			*n = 0;
		}
	} else if (m < 65) {
		rc = fo_cursor_timed_next(c, &items[0], tmo[st_below(rng, 4)]);
		*n = rc == FO_OK;
	} else {
		rc = fo_cursor_try_next(c, &items[0]);
		*n = rc == FO_OK;
	}
	*must_block = (rc == FO_EMPTY || rc == FO_TIMEDOUT);
	return rc;
}

/* ------------------------------------------------------------- misc */

/* Read one status and describe it (for messages). */
static inline const char *st_rc(int rc)
{
	return fo_status_name(rc);
}

#endif /* FANOUT_TESTS_STRESS_COMMON_H */
