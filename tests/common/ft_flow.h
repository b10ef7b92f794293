/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/**
 * ft_flow.h - test sources for the flow modules (iter, gate, feed, join); header-only.
 *
 *   ft_valve   a callback source of heap ft_items 0..n-1 (item.producer = @tag) that hands
 *              out item i only once the test opened the valve past i (ft_valve_open), honours
 *              the read deadline (condvar on CLOCK_MONOTONIC), counts pulls and closes, can
 *              fail with a code at one index, and frees items through one shared counter.
 *              fail_errno / fail_msg go with the failure (errno, fo_fail()).
 *              With gated_end set, END and the failure also wait for the valve to open past
 *              their index, so a test can decide when they arrive.
 *              ft_valve_open(v, SIZE_MAX) makes it a plain fast source.
 *
 * Worker threads may call these; only the main test thread asserts.
 */
#ifndef FANOUT_FT_FLOW_H
#define FANOUT_FT_FLOW_H

#include "fo_test.h"

typedef struct ft_valve {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	size_t n;     /* items in total */
	size_t i;     /* next index to hand out */
	size_t open;  /* items 0..open-1 may go */
	long fail_at; /* >= 0: return fail_code at this index (sticky) */
	int fail_code;
	int fail_errno;       /* errno set with the failure (0: untouched) */
	const char *fail_msg; /* given to fo_fail() with the failure (NULL: none) */
	uint64_t tag;         /* stored in item->producer */
	atomic_size_t pulls;  /* successful pulls */
	atomic_size_t calls;  /* next() calls */
	atomic_int closes;
	bool gated_end;     /* END / failure at index i wait for the valve past i too */
	int64_t delay_ns;   /* sleep this long (slow source) ... */
	size_t delay_every; /* ... before every delay_every-th call (0: every call) */
} ft_valve;

/* One destructor for every valve item, whatever the valve: ctx is an ft_counter. */
static inline void ft_valve_item_free(void *item, void *ctx)
{
	ft_item_free(item, ctx);
}

static inline void ft_valve_init(ft_valve *v, size_t n, uint64_t tag)
{
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&v->cv, &a);
	pthread_condattr_destroy(&a);
	pthread_mutex_init(&v->mu, NULL);
	v->n = n;
	v->i = 0;
	v->open = 0;
	v->fail_at = -1;
	v->fail_code = 0;
	v->fail_errno = 0;
	v->fail_msg = NULL;
	v->tag = tag;
	atomic_init(&v->pulls, 0);
	atomic_init(&v->calls, 0);
	atomic_init(&v->closes, 0);
	v->gated_end = false;
	v->delay_ns = 0;
	v->delay_every = 0;
}

static inline void ft_valve_fini(ft_valve *v)
{
	pthread_cond_destroy(&v->cv);
	pthread_mutex_destroy(&v->mu);
}

/* Let items up to index @upto (exclusive) go; SIZE_MAX: everything. */
static inline void ft_valve_open(ft_valve *v, size_t upto)
{
	pthread_mutex_lock(&v->mu);
	if (upto > v->open)
		v->open = upto;
	pthread_cond_broadcast(&v->cv);
	pthread_mutex_unlock(&v->mu);
}

static inline int ft_valve_next(void *ctx, void **item, uint64_t deadline)
{
	ft_valve *v = ctx;
	size_t call = atomic_fetch_add(&v->calls, 1);
	if (v->delay_ns && (v->delay_every == 0 || call % v->delay_every == 0))
		ft_sleep_ms((unsigned)(v->delay_ns / 1000000));
	pthread_mutex_lock(&v->mu);
	for (;;) {
		bool may_end = !v->gated_end || v->i < v->open;
		if (may_end && v->fail_at >= 0 && v->i == (size_t)v->fail_at) {
			pthread_mutex_unlock(&v->mu);
			if (v->fail_errno)
				errno = v->fail_errno; /* fo_fail keeps it */
			if (v->fail_msg)
				return fo_fail(v->fail_code, "%s", v->fail_msg);
			return v->fail_code;
		}
		if (may_end && v->i == v->n) {
			pthread_mutex_unlock(&v->mu);
			return FO_END;
		}
		if (v->i < v->open && v->i < v->n)
			break;
		if (deadline == 0) {
			pthread_mutex_unlock(&v->mu);
			return FO_EMPTY;
		}
		if (deadline == UINT64_MAX) {
			pthread_cond_wait(&v->cv, &v->mu);
		} else {
			if ((uint64_t)ft_now_ns() >= deadline) {
				pthread_mutex_unlock(&v->mu);
				return FO_TIMEDOUT;
			}
			struct timespec ts = {.tv_sec = (time_t)(deadline / 1000000000u),
			                      .tv_nsec = (long)(deadline % 1000000000u)};
			pthread_cond_timedwait(&v->cv, &v->mu, &ts);
		}
	}
	ft_item *it = ft_item_new(v->i++);
	it->producer = v->tag;
	pthread_mutex_unlock(&v->mu);
	atomic_fetch_add(&v->pulls, 1);
	*item = it;
	return FO_OK;
}

static inline void ft_valve_close(void *ctx)
{
	atomic_fetch_add(&((ft_valve *)ctx)->closes, 1);
}

/* An iterator over @v whose items are freed on @cnt.  Aborts on failure. */
static inline fo_iter *ft_valve_iter(ft_valve *v, ft_counter *cnt)
{
	fo_iter *it = NULL;
	if (fo_iter_from_fn(&it, ft_valve_next, ft_valve_close, v, ft_valve_item_free, cnt) !=
	    FO_OK)
		abort();
	return it;
}

static inline size_t ft_valve_pulls(ft_valve *v)
{
	return atomic_load(&v->pulls);
}

/* Wait up to @ms for @cond to become true (re-evaluated every millisecond: tests only). */
#define FT_WAIT_UNTIL(cond, ms)                           \
	do {                                              \
		int64_t ft_dl_ = ft_now_ns() + FT_MS(ms); \
		while (!(cond) && ft_now_ns() < ft_dl_)   \
			ft_sleep_ms(1);                   \
	} while (0)

#endif /* FANOUT_FT_FLOW_H */
