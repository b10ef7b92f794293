/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/**
 * fo_test.h - helpers shared by the fanout tests (header-only).
 *
 *   ft_counter      a destructor context that counts item_free calls, in total and (optionally)
 *                   per item sequence number, from any thread.
 *   ft_tok/ft_seq   cheap items: a sequence number encoded as a non-NULL pointer, for loops of
 *                   millions of items (the library never dereferences items).
 *   ft_item         heap items (malloc'd, freed by ft_item_free), so ASan sees a leak or a
 *                   double free of an item.
 *   ft_failalloc    an fo_allocator that fails the n-th allocation and counts live blocks.
 *   ft_scale        shrink big loops in sanitizer builds (FO_SANITIZE set and non-empty).
 *
 * Only the main test thread may call cmocka's assert_*: worker threads record what they saw
 * in their own structs and the main thread asserts after joining them.
 */
#ifndef FANOUT_TEST_H
#define FANOUT_TEST_H

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <linux/membarrier.h>

#include <fanout/fanout.h>

/* ---- environment ------------------------------------------------------------------------- */

/** True in sanitizer builds (the test environment sets FO_SANITIZE=address|thread). */
static inline bool ft_sanitized(void)
{
	const char *s = getenv("FO_SANITIZE");
	return s != NULL && s[0] != '\0';
}

/** @n in a normal build, @n / 10 (at least 1) under a sanitizer. */
static inline size_t ft_scale(size_t n)
{
	if (!ft_sanitized())
		return n;
	return n / 10 ? n / 10 : 1;
}

/** Does the library bias default-options streams to their first producer (design.md §4)?
 * Only where membarrier(PRIVATE_EXPEDITED) exists and never in a TSan build (FO_TSAN: TSan
 * cannot see the fence the bias relies on): src/wait.c's probe, so tests of the biased path
 * know when every claim is a CAS instead. */
static inline bool ft_bias_on(void)
{
#if defined(FO_TSAN) && FO_TSAN
	return false;
#else
	long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
	return cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED);
#endif
}

/** How many fds this process has open (leak checks: compare before and after). */
static inline int ft_count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	struct dirent *e;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the DIR's own */
}

static inline int64_t ft_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void ft_sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

#define FT_MS(ms) ((int64_t)(ms)*1000000)

/* ---- cheap token items --------------------------------------------------------------------- */

/** Item for sequence @seq (never NULL). */
static inline void *ft_tok(size_t seq)
{
	return (void *)(uintptr_t)(seq + 1);
}

/** Sequence of a token item. */
static inline size_t ft_seq(const void *item)
{
	return (size_t)(uintptr_t)item - 1;
}

/* ---- counting destructor ------------------------------------------------------------------- */

/**
 * ft_counter - item_free_ctx that counts destructor calls.
 * @freed: total calls.
 * @marks: optional: marks[seq] counts calls for the item of sequence seq (token or heap item,
 *         see @heap); a seq >= @nmarks counts in @out_of_range.
 * @heap:  items are ft_item (ft_item_free) rather than tokens (ft_count_free).
 */
typedef struct ft_counter {
	atomic_size_t freed;
	atomic_size_t out_of_range;
	atomic_uint *marks;
	size_t nmarks;
} ft_counter;

/** Reset @c; with @nmarks > 0 allocate a per-sequence mark array (ft_counter_fini frees it). */
static inline void ft_counter_init(ft_counter *c, size_t nmarks)
{
	atomic_init(&c->freed, 0);
	atomic_init(&c->out_of_range, 0);
	c->nmarks = nmarks;
	c->marks = NULL;
	if (nmarks) {
		c->marks = calloc(nmarks, sizeof(*c->marks));
		if (!c->marks)
			abort();
		for (size_t i = 0; i < nmarks; i++)
			atomic_init(&c->marks[i], 0);
	}
}

static inline void ft_counter_fini(ft_counter *c)
{
	free(c->marks);
	c->marks = NULL;
	c->nmarks = 0;
}

static inline size_t ft_freed(ft_counter *c)
{
	return atomic_load(&c->freed);
}

static inline unsigned ft_mark(ft_counter *c, size_t seq)
{
	return seq < c->nmarks ? atomic_load(&c->marks[seq]) : 0;
}

static inline void ft_counter_hit(ft_counter *c, size_t seq)
{
	if (c->marks) {
		if (seq < c->nmarks)
			atomic_fetch_add(&c->marks[seq], 1);
		else
			atomic_fetch_add(&c->out_of_range, 1);
	}
	atomic_fetch_add(&c->freed, 1);
}

/** item_free for token items; ctx is an ft_counter. */
static inline void ft_count_free(void *item, void *ctx)
{
	ft_counter_hit(ctx, ft_seq(item));
}

/* ---- heap items ------------------------------------------------------------------------------ */

#define FT_ITEM_MAGIC 0x5eed5eedf00dcafeull
#define FT_ITEM_DEAD  0xdeaddeaddeaddeadull

typedef struct ft_item {
	uint64_t magic;
	uint64_t seq;
	uint64_t producer;
} ft_item;

static inline ft_item *ft_item_new(uint64_t seq)
{
	ft_item *it = malloc(sizeof(*it));
	if (!it)
		abort();
	it->magic = FT_ITEM_MAGIC;
	it->seq = seq;
	it->producer = 0;
	return it;
}

/** True if @p points at a live ft_item (a freed one trips ASan before it gets here). */
static inline bool ft_item_ok(const void *p)
{
	return p != NULL && ((const ft_item *)p)->magic == FT_ITEM_MAGIC;
}

/** item_free for heap items; ctx is an ft_counter. */
static inline void ft_item_free(void *item, void *ctx)
{
	ft_item *it = item;
	ft_counter_hit(ctx, (size_t)it->seq);
	it->magic = FT_ITEM_DEAD;
	free(it);
}

/* ---- stream helpers -------------------------------------------------------------------------- */

/** Options with a counting destructor for token items. */
static inline fo_stream_opts ft_opts(ft_counter *c)
{
	fo_stream_opts o;
	fo_stream_opts_init(&o);
	if (c) {
		o.item_free = ft_count_free;
		o.item_free_ctx = c;
	}
	return o;
}

/** Options with a freeing, counting destructor for heap items. */
static inline fo_stream_opts ft_heap_opts(ft_counter *c)
{
	fo_stream_opts o;
	fo_stream_opts_init(&o);
	o.item_free = ft_item_free;
	o.item_free_ctx = c;
	return o;
}

/** fo_stream_get_stats() or a zeroed struct (retained_items = SIZE_MAX) if it fails. */
static inline fo_stream_stats ft_stats(fo_stream *s)
{
	fo_stream_stats st;
	memset(&st, 0, sizeof(st));
	if (fo_stream_get_stats(s, &st) != FO_OK)
		st.retained_items = SIZE_MAX;
	return st;
}

/* ---- failing allocator ----------------------------------------------------------------------- */

/**
 * ft_failalloc - fo_allocator ctx: fails allocation number @fail_at (1-based, counted since
 * ft_failalloc_arm; 0 = never) and keeps count of live blocks.  Blocks come from
 * posix_memalign(64), so a free() of them is also right if they ever reach the default
 * allocator.
 */
typedef struct ft_failalloc {
	atomic_long calls;    /* allocations attempted since arm */
	atomic_long fail_at;  /* fail this call number (0: never) */
	atomic_long failures; /* allocations refused */
	atomic_long live;     /* blocks handed out and not yet freed */
	atomic_long total;    /* blocks handed out in total */
	atomic_long bad_free; /* free(NULL) calls (forbidden by alloc.h) */
} ft_failalloc;

static inline void *ft_failalloc_alloc(size_t size, void *ctx)
{
	ft_failalloc *fa = ctx;
	long n = atomic_fetch_add(&fa->calls, 1) + 1;
	if (n == atomic_load(&fa->fail_at)) {
		atomic_fetch_add(&fa->failures, 1);
		return NULL;
	}
	void *p = NULL;
	if (posix_memalign(&p, 64, size ? size : 1) != 0)
		return NULL;
	atomic_fetch_add(&fa->live, 1);
	atomic_fetch_add(&fa->total, 1);
	return p;
}

static inline void ft_failalloc_free(void *p, void *ctx)
{
	ft_failalloc *fa = ctx;
	if (!p) {
		atomic_fetch_add(&fa->bad_free, 1);
		return;
	}
	atomic_fetch_sub(&fa->live, 1);
	free(p);
}

static inline void ft_failalloc_init(ft_failalloc *fa)
{
	atomic_init(&fa->calls, 0);
	atomic_init(&fa->fail_at, 0);
	atomic_init(&fa->failures, 0);
	atomic_init(&fa->live, 0);
	atomic_init(&fa->total, 0);
	atomic_init(&fa->bad_free, 0);
}

/** Start a run: count allocations from 0 and fail the @fail_at-th (0: none). */
static inline void ft_failalloc_arm(ft_failalloc *fa, long fail_at)
{
	atomic_store(&fa->failures, 0);
	atomic_store(&fa->calls, 0);
	atomic_store(&fa->fail_at, fail_at);
}

/** Install @fa as the fanout allocator (only while no fanout object exists). */
static inline void ft_failalloc_install(ft_failalloc *fa)
{
	fo_allocator a = {.alloc = ft_failalloc_alloc, .free = ft_failalloc_free, .ctx = fa};
	fo_set_allocator(&a);
}

/**
 * Wait up to @ms milliseconds for @fa->live to reach 0 (memory released through deferred
 * reclamation, e.g. call_rcu, may arrive a little after the last handle is dropped).
 * Returns the final live count.
 */
static inline long ft_failalloc_settle(ft_failalloc *fa, unsigned ms)
{
	int64_t deadline = ft_now_ns() + FT_MS(ms);
	long live;
	while ((live = atomic_load(&fa->live)) != 0 && ft_now_ns() < deadline)
		ft_sleep_ms(1);
	return live;
}

#endif /* FANOUT_TEST_H */
