/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * iter_impl.h - the inside of an fo_iter (never installed).
 *
 * Every iterator is a struct that starts with a `struct fo_iter` and a
 * vtable.  The public calls in iter.c add what all of them share: sticky
 * END/FAILED, the error record, argument checks and the mapping of deadlines
 * to FO_EMPTY / FO_TIMEDOUT.  So an adapter is one small .c file that only
 * implements next() and close().
 *
 * Deadlines are absolute CLOCK_MONOTONIC nanoseconds (fo__now_ns()):
 *   0                 try: never wait; return FO_EMPTY if nothing is ready
 *   FO__NO_DEADLINE   wait as long as it takes
 *   anything else     wait until then; FO_TIMEDOUT (or FO_EMPTY) after it
 * A vtable next() may return FO_EMPTY or FO_TIMEDOUT for "nothing before the
 * deadline"; the public wrappers turn that into the code their caller
 * expects.
 */
#ifndef FO_ITER_IMPL_H
#define FO_ITER_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <fanout/iter.h>
#include "internal.h"

struct fo__iter_vt {
	const char *name;
	/*
	 * Produce one item.  Returns FO_OK (*item set, owned by the caller per
	 * the iterator's rule; set it->last_err if it is an fo_error_item),
	 * FO_END, FO_FAILED (after fo__iter_fail*), FO_EMPTY/FO_TIMEDOUT
	 * (nothing before @deadline; no item may be lost).  Never called again
	 * after FO_END/FO_FAILED.
	 */
	int (*next)(fo_iter *it, void **item, uint64_t deadline);
	/* Release everything, sources included, and free the struct. */
	void (*close)(fo_iter *it);
	/*
	 * Optional readiness (all NULL: unsupported), with fo_cursor_fd /
	 * fo_cursor_arm / fo_cursor_set_notify semantics: fd() gives a
	 * descriptor, watch() a hook instead (the two exclude each other;
	 * watch(NULL) removes the hook); arm() returns 1 (something is ready:
	 * read; nothing armed) or 0 (armed: one signal when a read would return
	 * something other than FO_EMPTY).  A signal may be spurious (reads then
	 * return FO_EMPTY); a lost one is a bug.  Adapters over a waitable
	 * source use watch() to hang their own signal off the source.  All
	 * three run on the reader's thread.  arm() is never called once the
	 * iterator is done (fo_iter_arm answers 1 itself).
	 */
	int (*fd)(fo_iter *it);
	int (*arm)(fo_iter *it);
	int (*watch)(fo_iter *it, void (*fn)(void *arg), void *arg);
};

struct fo_iter {
	const struct fo__iter_vt *vt;
	fo_item_free_fn item_free; /* the destructor of the items it hands out */
	void *item_ctx;
	bool borrows;      /* items valid only until the next read */
	bool emits_errors; /* may hand out fo_error_item items */
	bool last_err;     /* the item just returned is an fo_error_item */
	int done;          /* 0, FO_END or FO_FAILED (sticky) */
	uint64_t lagged;   /* items a passive cursor source skipped */
	fo_error err;      /* valid when done == FO_FAILED */
	char *err_msg;     /* owned copy behind err.message, or NULL */
};

/* Fill the common part.  @item_free may be NULL. */
void fo__iter_init(fo_iter *it, const struct fo__iter_vt *vt, fo_item_free_fn item_free,
                   void *item_ctx);
/* Free what fo__iter_init/fail allocated (the message); not the struct. */
void fo__iter_fini(fo_iter *it);
/* Record the error (message copied; NULL: fo_strerror(code)).  Returns FO_FAILED. */
int fo__iter_fail(fo_iter *it, int code, int sys_errno, const char *msg);
/* Record a copy of @e (NULL: a generic FO_FAILED).  Returns FO_FAILED. */
int fo__iter_fail_from(fo_iter *it, const fo_error *e);
/* A user callback of @it (called after fo__cb_begin()) just returned
 * @code, a failure: record it with errno and its fo_fail() message
 * (fo__cb_capture; call before anything else).  Returns FO_FAILED. */
int fo__iter_fail_cb(fo_iter *it, int code);
/* A callback's return code that is a failure (not a normal outcome). */
static inline bool fo__iter_cb_failed(int code)
{
	return code != FO_OK && code != FO_END && code != FO_EMPTY && code != FO_TIMEDOUT;
}
/*
 * The tail of a read from a cursor, shared by cursor and feed iterators:
 * @read(@c, &raw, @deadline, @arg) is retried over FO_LAGGED (a lap is not an
 * end: the lag is added to it->lagged), FO_FAILED becomes the iterator's
 * error, and an item is copied with @copy when given.
 */
int fo__iter_cursor_read(fo_iter *it, fo_cursor *c, fo_item_copy_fn copy, void *ctx,
                         int (*read)(fo_cursor *c, void **raw, uint64_t deadline, void *arg),
                         void *arg, void **item, uint64_t deadline);
/* One cursor read bounded by @deadline (0: try; FO__NO_DEADLINE: wait):
 * fo_cursor_next()'s codes plus FO_EMPTY (try) / FO_TIMEDOUT. */
int fo__cursor_read_until(fo_cursor *c, void **item, uint64_t deadline);
/*
 * One read with stickiness: what adapters call on their sources.  Returns
 * FO_OK (then *is_err says whether *item is an fo_error_item; @is_err may be
 * NULL), FO_END, FO_FAILED (fo_iter_error(src) describes it), FO_EMPTY or
 * FO_TIMEDOUT.
 */
int fo__iter_pull(fo_iter *src, void **item, uint64_t deadline, bool *is_err);
/* Make an error item (message copied).  NULL on ENOMEM (then @input is untouched). */
fo_error_item *fo__error_item_new(const fo_error *e, void *input, fo_item_free_fn input_free,
                                  void *input_ctx);
/*
 * A failed input @in of @src (owned; may be NULL) under @policy, for the
 * adapters of @it: DROP releases it and returns FO_EMPTY ("go on"); EMIT
 * puts an error item owning it in *@item and returns FO_OK; STOP records @e
 * on @it and returns FO_FAILED.  ENOMEM fails @it.
 */
int fo__iter_apply_policy(fo_iter *it, fo_error_policy policy, fo_iter *src, const fo_error *e,
                          void *in, void **item);
/* Same destructor (function and context)? */
static inline bool fo__same_free(const fo_iter *a, fo_item_free_fn f, void *ctx)
{
	return a->item_free == f && (f == NULL || a->item_ctx == ctx);
}

/*
 * Readiness of a source for adapters: watch() through the vtable (arm is the
 * public fo_iter_arm()).  FO_EINVAL when unsupported.
 */
int fo__iter_watch(fo_iter *src, void (*fn)(void *arg), void *arg);

/*
 * fo__waker - the signalling end of an object that owns its readiness
 * (gate and join outputs): an eventfd created on first use, or a hook.
 *
 *   reader (arm)                          publisher (after its state change)
 *   fo__waker_prepare: drain the fd,      fo__waker_signal: seq_cst fence,
 *     armed = 1, seq_cst fence              if armed: CAS 1 -> 0, then
 *   re-check readiness                        write the fd / call the hook
 *   ready? fo__waker_cancel: CAS 1 -> 0
 *
 * Dekker: either the publisher sees armed, or the re-check sees its change.
 * Owners whose state lives under a mutex set armed and re-check under that
 * mutex, and publish (then signal after unlocking) under it, which makes the
 * handshake trivially ordered.  The CAS gives at most one signal per arm,
 * so a publisher pays a system call only on an armed -> signalled
 * transition.  Signals run with no lock of the owner held; `busy` lets a
 * hook change wait out a signal in flight.
 */
struct fo__waker {
	int efd; /* -1 until fo__waker_fd */
	void (*fn)(void *arg);
	void *arg;
	_Atomic uint32_t armed;
	_Atomic uint32_t busy;
};
void fo__waker_init(struct fo__waker *w);
/* Close the fd (the owner guarantees no signal can run any more). */
void fo__waker_fini(struct fo__waker *w);
int fo__waker_fd(struct fo__waker *w);
int fo__waker_watch(struct fo__waker *w, void (*fn)(void *arg), void *arg);
/* FO_EINVAL when neither an fd nor a hook is set. */
int fo__waker_prepare(struct fo__waker *w);
void fo__waker_cancel(struct fo__waker *w);
void fo__waker_signal(struct fo__waker *w);
/* The reader is gone: disarm for good and wait out a signal in flight, so a
 * hook is never called after this returns. */
void fo__waker_stop(struct fo__waker *w);

/* For joins: the cursor under a cursor iterator, or NULL for other kinds. */
fo_cursor *fo__iter_cursor(fo_iter *it);

/* The absolute deadline of a relative timeout for the vtables (status.h's convention):
 * 0 stays 0 (try), negative is FO__NO_DEADLINE. */
static inline uint64_t fo__iter_deadline(int64_t timeout_ns)
{
	return timeout_ns == 0 ? 0 : fo__deadline(timeout_ns);
}

/* Remaining ns until @deadline (for APIs that take a relative timeout); 0 if past. */
static inline int64_t fo__remaining(uint64_t deadline)
{
	uint64_t now = fo__now_ns();
	if (deadline <= now)
		return 0;
	uint64_t r = deadline - now;
	return r > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)r;
}

/* Condition variables on CLOCK_MONOTONIC, for absolute fo__now_ns() deadlines. */
static inline int fo__cond_init(pthread_cond_t *cv)
{
	pthread_condattr_t a;
	if (pthread_condattr_init(&a) != 0)
		return FO_ENOMEM;
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	int r = pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
	return r == 0 ? FO_OK : FO_ENOMEM;
}

/* Wait on @cv (with @mu held) until signalled or @deadline (FO__NO_DEADLINE:
 * forever; 0: a try, never waits).  Returns 0, or FO_TIMEDOUT once the
 * deadline has passed. */
static inline int fo__cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t deadline)
{
	if (deadline == 0)
		return FO_TIMEDOUT;
	if (deadline == FO__NO_DEADLINE) {
		pthread_cond_wait(cv, mu);
		return 0;
	}
	if (fo__now_ns() >= deadline)
		return FO_TIMEDOUT;
	struct timespec ts = {.tv_sec = (time_t)(deadline / 1000000000u),
	                      .tv_nsec = (long)(deadline % 1000000000u)};
	pthread_cond_timedwait(cv, mu, &ts);
	return 0;
}

#endif /* FO_ITER_IMPL_H */
