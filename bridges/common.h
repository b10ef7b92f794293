/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * bridges/common.h - helpers shared by the bridges (redis.c, nats.c), header
 * only: each bridge library gets its own copy (and its own thread-local last
 * error, read by fo_redis_errmsg() / fo_nats_errmsg()).
 *
 *   struct rerr, rerr_set/publish, fail_inval   errors as threads keep them
 *   now_ns, ms_tv, ns_ts                         time
 *   backoff_ms                                   capped exponential backoff
 *   struct rid, struct idset                     a set of (u64, u64) ids
 *   struct drain                                 a sink's thread reading its cursor
 *   struct bsrc                                  a source iterator fed by a reader thread
 *   sigpipe_block_thread, sigpipe_enter/leave    no SIGPIPE from a dropped connection
 */
#ifndef FANOUT_BRIDGES_COMMON_H
#define FANOUT_BRIDGES_COMMON_H

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <fanout/stream.h>

#include "iter_impl.h"

static _Thread_local char tl_msg[256];
static _Thread_local int tl_errno;

/* An error as threads keep it: code, errno, message. */
struct rerr {
	int code;
	int sys_errno;
	char msg[256];
};

static inline int rerr_set(struct rerr *e, int code, int sys_errno, const char *fmt, ...)
{
	e->code = code;
	e->sys_errno = sys_errno;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return code;
}

/* Publish @e as this thread's last error (no error, code FO_OK: clear it);
 * returns its code. */
static inline int rerr_publish(const struct rerr *e)
{
	tl_errno = e->code == FO_ESYS ? e->sys_errno : 0;
	snprintf(tl_msg, sizeof(tl_msg), "%s", e->code ? e->msg : "");
	return e->code;
}

static inline int fail_inval(const char *what)
{
	tl_errno = 0;
	snprintf(tl_msg, sizeof(tl_msg), "%s", what);
	return FO_EINVAL;
}

/* ------------------------------------------------------------------------ */
/* SIGPIPE                                                                   */

/*
 * hiredis writes with send(fd, ..., 0): a write on a connection the server
 * dropped (CLIENT KILL, a restart) fails with EPIPE and raises SIGPIPE, whose
 * default action kills the whole process, silently.  A library must not
 * change the process's disposition, so the bridges block SIGPIPE in their own
 * threads for their whole life (a write raises it for the writing thread: it
 * stays pending there, never delivered) and, in the caller's thread, around
 * the calls that do I/O: sigpipe_enter() blocks it, sigpipe_leave() discards
 * one raised meanwhile (unless one was pending before) and restores the
 * caller's mask.  The write itself reports EPIPE as usual.
 */
static inline void sigpipe_block_thread(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

struct sigpipe_guard {
	sigset_t old;
	bool was_pending; /* a SIGPIPE pending before: not ours to discard */
};

static inline void sigpipe_enter(struct sigpipe_guard *g)
{
	sigset_t set, pending;
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	sigemptyset(&pending);
	sigpending(&pending);
	g->was_pending = sigismember(&pending, SIGPIPE) == 1;
	pthread_sigmask(SIG_BLOCK, &set, &g->old);
}

static inline void sigpipe_leave(struct sigpipe_guard *g)
{
	if (!g->was_pending && sigismember(&g->old, SIGPIPE) != 1) {
		sigset_t set, pending;
		sigemptyset(&set);
		sigaddset(&set, SIGPIPE);
		sigemptyset(&pending);
		sigpending(&pending);
		if (sigismember(&pending, SIGPIPE) == 1) {
			struct timespec zero = {0, 0};
			while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
				;
		}
	}
	pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* ------------------------------------------------------------------------ */
/* Time                                                                      */

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline struct timeval ms_tv(int ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	return tv;
}

static inline struct timespec ns_ts(uint64_t ns)
{
	struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u),
	                      .tv_nsec = (long)(ns % 1000000000u)};
	return ts;
}

/* Backoff after the @n-th consecutive failure (0-based): doubled from @min_ms, capped at
 * @max_ms. */
static inline int backoff_ms(int min_ms, int max_ms, unsigned n)
{
	int64_t ms = min_ms;
	while (n-- && ms < max_ms)
		ms *= 2;
	return ms > max_ms ? max_ms : (int)ms;
}

/* A retry loop's state: it gives up @timeout_ms after the first failure of a
 * run (retry_ok() ends the run) and backs off between attempts. */
struct retry {
	uint64_t give_up; /* 0: no failure in this run yet */
	unsigned fails;
	int timeout_ms, min_ms, max_ms;
};

static inline struct retry retry_init(int timeout_ms, int min_ms, int max_ms)
{
	return (struct retry){.timeout_ms = timeout_ms, .min_ms = min_ms, .max_ms = max_ms};
}

static inline void retry_ok(struct retry *r)
{
	r->give_up = 0;
	r->fails = 0;
}

/* A failure: true when it is time to give up. */
static inline bool retry_failed(struct retry *r)
{
	uint64_t now = now_ns();
	if (!r->give_up)
		r->give_up = now + (uint64_t)r->timeout_ms * 1000000u;
	return now >= r->give_up;
}

/* How long to wait before the next attempt (doubled each time, capped). */
static inline int retry_backoff(struct retry *r)
{
	return backoff_ms(r->min_ms, r->max_ms, r->fails++);
}

/* An id: Redis "ms-seq", NATS (stream sequence, 0). 0-0 is never an id. */
struct rid {
	uint64_t ms, seq;
};

/* A set of stream ids (open addressing, linear probing, backward-shift
 * deletion).  0-0 marks an empty slot: it is never an entry's id. */
struct idset {
	struct rid *slot;
	size_t cap, n;
};

static inline size_t id_hash(struct rid id, size_t cap)
{
	uint64_t h = id.ms * 0x9E3779B97F4A7C15ull ^ (id.seq + 0x632BE59BD9B4E019ull);
	h ^= h >> 29;
	return (size_t)(h * 0xBF58476D1CE4E5B9ull >> 7) & (cap - 1);
}

static inline bool id_eq(struct rid a, struct rid b)
{
	return a.ms == b.ms && a.seq == b.seq;
}

static inline bool id_zero(struct rid a)
{
	return !a.ms && !a.seq;
}

static inline bool idset_has(const struct idset *s, struct rid id)
{
	if (!s->cap)
		return false;
	for (size_t i = id_hash(id, s->cap);; i = (i + 1) & (s->cap - 1)) {
		if (id_zero(s->slot[i]))
			return false;
		if (id_eq(s->slot[i], id))
			return true;
	}
}

static inline int idset_add(struct idset *s, struct rid id)
{
	if (2 * (s->n + 1) > s->cap) {
		size_t ncap = s->cap ? 2 * s->cap : 1024;
		struct rid *ns = calloc(ncap, sizeof(*ns));
		if (!ns)
			return FO_ENOMEM;
		for (size_t i = 0; i < s->cap; i++) {
			if (id_zero(s->slot[i]))
				continue;
			size_t j = id_hash(s->slot[i], ncap);
			while (!id_zero(ns[j]))
				j = (j + 1) & (ncap - 1);
			ns[j] = s->slot[i];
		}
		free(s->slot);
		s->slot = ns;
		s->cap = ncap;
	}
	size_t i = id_hash(id, s->cap);
	while (!id_zero(s->slot[i])) {
		if (id_eq(s->slot[i], id))
			return FO_OK;
		i = (i + 1) & (s->cap - 1);
	}
	s->slot[i] = id;
	s->n++;
	return FO_OK;
}

static inline void idset_del(struct idset *s, struct rid id)
{
	if (!s->cap)
		return;
	size_t m = s->cap - 1, i = id_hash(id, s->cap);
	while (!id_eq(s->slot[i], id)) {
		if (id_zero(s->slot[i]))
			return;
		i = (i + 1) & m;
	}
	/* Backward shift: move later members of the cluster into the hole when
	 * their home slot does not lie cyclically in (hole, j]. */
	size_t hole = i;
	for (size_t j = (i + 1) & m; !id_zero(s->slot[j]); j = (j + 1) & m) {
		size_t home = id_hash(s->slot[j], s->cap);
		bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
		if (!stays) {
			s->slot[hole] = s->slot[j];
			hole = j;
		}
	}
	s->slot[hole] = (struct rid){0, 0};
	s->n--;
}

/*
 * struct drain - a sink's reading end, used only by the sink's thread (plus
 * drain_request_stop() from the stopping thread).  It reads with
 * fo_cursor_next_many while items are ready, then arms the cursor and polls
 * its fd and a stop eventfd (no timed polling).  Once a stop is requested it
 * reads at most what was ready at that moment (fo_cursor_available()).
 */
struct drain {
	fo_cursor *cur;
	void **items; /* scratch: @cap slots */
	size_t cap;
	int cur_fd, stop_efd;
	_Atomic int stopping;
	uint64_t budget; /* UINT64_MAX until the stop is seen; then what may still be read */
	bool ended;      /* the cursor returned FO_END or FO_FAILED */
	bool failed;     /* ... FO_FAILED: fo_cursor_error(cur) tells why */
	uint64_t lagged; /* fo_cursor_lagged() of a passive cursor */
};

/* FO_OK; FO_EINVAL (the cursor's fd is taken by a notify hook); FO_ESYS; FO_ENOMEM.
 * The cursor stays the caller's (drain_fini does not close it). */
static inline int drain_init(struct drain *d, fo_cursor *c, size_t cap)
{
	memset(d, 0, sizeof(*d));
	d->stop_efd = -1;
	d->budget = UINT64_MAX;
	d->cap = cap;
	d->items = calloc(cap, sizeof(*d->items));
	if (!d->items)
		return FO_ENOMEM;
	d->cur_fd = fo_cursor_fd(c);
	if (d->cur_fd < 0)
		return d->cur_fd;
	d->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->stop_efd < 0)
		return FO_ESYS;
	d->cur = c;
	return FO_OK;
}

static inline void drain_fini(struct drain *d)
{
	free(d->items);
	d->items = NULL;
	if (d->stop_efd >= 0)
		close(d->stop_efd);
	d->stop_efd = -1;
}

static inline void drain_request_stop(struct drain *d)
{
	/* release: the request is published before the wake-up below. */
	atomic_store_explicit(&d->stopping, 1, memory_order_release);
	uint64_t one = 1;
	ssize_t w = write(d->stop_efd, &one, sizeof(one));
	(void)w; /* an eventfd counter does not overflow from one write */
}

static inline bool drain_stopping(struct drain *d)
{
	/* acquire: pairs with drain_request_stop(); the flag is only a request. */
	return atomic_load_explicit(&d->stopping, memory_order_acquire) != 0;
}

/* Sleep @ms or until a stop is requested.  Returns true if stopping. */
static inline bool drain_sleep(struct drain *d, int ms)
{
	struct pollfd p = {.fd = d->stop_efd, .events = POLLIN};
	poll(&p, 1, ms);
	return drain_stopping(d);
}

/*
 * Read up to @max items (at most @cap), handing each chunk to @take(@ctx,
 * items, k) at once (the items are valid only until the next read).  Waits
 * for the first item, then up to @linger_us for more.  Returns the items read.
 */
static inline size_t drain_fill(struct drain *d, size_t max, int linger_us,
                                void (*take)(void *ctx, void **items, size_t k), void *ctx)
{
	size_t got = 0;
	uint64_t linger_end = 0;
	if (max > d->cap)
		max = d->cap;
	if (d->budget == UINT64_MAX && drain_stopping(d))
		d->budget = fo_cursor_available(d->cur);
	while (got < max && !d->ended) {
		size_t want = max - got, k = 0;
		if (d->budget < want)
			want = (size_t)d->budget;
		if (want == 0)
			break;
		int rc = fo_cursor_next_many(d->cur, d->items, want, &k);
		if (rc == FO_OK) {
			take(ctx, d->items, k);
			got += k;
			if (d->budget != UINT64_MAX)
				d->budget -= k;
			continue;
		}
		if (rc == FO_LAGGED) {
			d->lagged = fo_cursor_lagged(d->cur);
			continue;
		}
		if (rc == FO_END || rc == FO_FAILED) {
			d->ended = true;
			d->failed = rc == FO_FAILED;
			break;
		}
		/* FO_EMPTY */
		if (d->budget != UINT64_MAX)
			break; /* stopping: only what was ready */
		if (drain_stopping(d)) {
			d->budget = fo_cursor_available(d->cur);
			continue;
		}
		int timeout = -1;
		if (got > 0) {
			if (linger_us == 0)
				break;
			uint64_t now = now_ns();
			if (!linger_end)
				linger_end = now + (uint64_t)linger_us * 1000u;
			if (now >= linger_end)
				break;
			timeout = (int)((linger_end - now + 999999u) / 1000000u);
		}
		if (fo_cursor_arm(d->cur) == 1)
			continue;
		struct pollfd p[2] = {{.fd = d->cur_fd, .events = POLLIN},
		                      {.fd = d->stop_efd, .events = POLLIN}};
		poll(p, 2, timeout);
	}
	return got;
}

/*
 * The end of a sink's thread: closes the cursor (here, not in stop(): a
 * failed sink must not hold the producers back).  Returns true, with the
 * stream's failure in @e (prefixed @who), if the stream failed.
 */
static inline bool drain_finish(struct drain *d, const char *who, struct rerr *e)
{
	bool failed = d->failed;
	if (failed) {
		const fo_error *fe = fo_cursor_error(d->cur);
		rerr_set(e, FO_FAILED, 0, "%s: the stream failed: %s", who, fe ? fe->message : "?");
	}
	fo_cursor_close(d->cur);
	d->cur = NULL;
	return failed;
}

/* After a batch of @got items was sent: has the sink read everything it will? */
static inline bool drain_done(const struct drain *d, size_t got)
{
	return d->ended || d->budget == 0 || (d->budget != UINT64_MAX && got == 0);
}

/*
 * struct bsrc - the common part of a source iterator (first member of the
 * engine's struct, itself starting with the fo_iter): a ring of decoded
 * entries filled by the engine's reader thread and read by the iterator, with
 * the failure the reader gave up on, the stop flag and the readiness
 * (eventfd + armed).  Everything is under @mu; the engine keeps its own
 * shared fields under the same mutex.  Protocol: docs/design.md §14.
 */
struct bentry {
	struct rid id;
	void *item;   /* decoded, owned by the ring until handed out */
	void *handle; /* the engine's (e.g. the NATS message to acknowledge) */
};

struct bsrc {
	fo_iter it;
	pthread_mutex_t mu;
	pthread_cond_t cv_items, cv_room, cv_stop;
	struct bentry *ring;
	size_t cap, head, len;
	bool stop;
	struct rerr fail; /* code != 0: the reader gave up */
	bool armed;
	int efd;           /* readiness, -1 until fo_iter_fd() */
	struct bentry cur; /* the iterator thread's: handed out last (item NULL: none) */
	char *fail_msg;    /* behind it.err.message */
};

/* FO_OK or FO_ENOMEM (then nothing to undo). */
static inline int bsrc_init(struct bsrc *b, const struct fo__iter_vt *vt, size_t cap)
{
	b->it.vt = vt;
	b->it.borrows = true; /* the source frees its items itself, at release */
	b->efd = -1;
	b->cap = cap;
	b->ring = calloc(cap, sizeof(*b->ring));
	if (!b->ring)
		return FO_ENOMEM;
	if (fo__cond_init(&b->cv_items) != FO_OK)
		goto e0;
	if (fo__cond_init(&b->cv_room) != FO_OK)
		goto e1;
	if (fo__cond_init(&b->cv_stop) != FO_OK)
		goto e2;
	pthread_mutex_init(&b->mu, NULL);
	return FO_OK;
e2:
	pthread_cond_destroy(&b->cv_room);
e1:
	pthread_cond_destroy(&b->cv_items);
e0:
	free(b->ring);
	return FO_ENOMEM;
}

/* Drop the entries still in the ring with @drop (no thread may run any more). */
static inline void bsrc_fini(struct bsrc *b, void (*drop)(struct bsrc *b, struct bentry *e))
{
	for (size_t i = 0; i < b->len; i++)
		drop(b, &b->ring[(b->head + i) % b->cap]);
	if (b->efd >= 0)
		close(b->efd);
	free(b->ring);
	free(b->fail_msg);
	pthread_cond_destroy(&b->cv_items);
	pthread_cond_destroy(&b->cv_room);
	pthread_cond_destroy(&b->cv_stop);
	pthread_mutex_destroy(&b->mu);
}

/* With mu held: wake the reader (an entry or the failure is ready). */
static inline void bsrc_signal_locked(struct bsrc *b)
{
	pthread_cond_signal(&b->cv_items);
	if (b->armed) {
		b->armed = false;
		uint64_t one = 1;
		ssize_t w = write(b->efd, &one, sizeof(one));
		(void)w; /* an eventfd counter does not overflow from these writes */
	}
}

/* With mu held: the reader thread gives up (the first failure stays). */
static inline void bsrc_fail_locked(struct bsrc *b, const struct rerr *e)
{
	if (!b->fail.code)
		b->fail = *e;
	bsrc_signal_locked(b);
}

/* With mu held: sleep @ms or until the stop.  Returns true if stopping. */
static inline bool bsrc_sleep_locked(struct bsrc *b, int ms)
{
	uint64_t until = now_ns() + (uint64_t)ms * 1000000u;
	while (!b->stop) {
		struct timespec ts = ns_ts(until);
		if (pthread_cond_timedwait(&b->cv_stop, &b->mu, &ts) == ETIMEDOUT)
			break;
	}
	return b->stop;
}

/* With mu held: stop every wait (close). */
static inline void bsrc_stop_locked(struct bsrc *b)
{
	b->stop = true;
	pthread_cond_broadcast(&b->cv_room);
	pthread_cond_broadcast(&b->cv_stop);
}

/* Room for how many more entries (waits for at least one).  0: stopping. */
static inline size_t bsrc_room(struct bsrc *b)
{
	pthread_mutex_lock(&b->mu);
	while (b->len == b->cap && !b->stop)
		pthread_cond_wait(&b->cv_room, &b->mu);
	size_t room = b->stop ? 0 : b->cap - b->len;
	pthread_mutex_unlock(&b->mu);
	return room;
}

/* With mu held: append @e (waits for room).  false: stopping (@e not taken). */
static inline bool bsrc_push_locked(struct bsrc *b, struct bentry e)
{
	while (b->len == b->cap && !b->stop)
		pthread_cond_wait(&b->cv_room, &b->mu);
	if (b->stop)
		return false;
	b->ring[(b->head + b->len) % b->cap] = e;
	b->len++;
	bsrc_signal_locked(b);
	return true;
}

/*
 * The vtable next() after the engine released b->cur: the next entry into
 * b->cur, FO_EMPTY / FO_TIMEDOUT by @deadline, or FO_FAILED (it.err filled)
 * once the ring is empty and the reader gave up.
 */
static inline int bsrc_next(struct bsrc *b, void **item, uint64_t deadline)
{
	pthread_mutex_lock(&b->mu);
	for (;;) {
		if (b->len) {
			b->cur = b->ring[b->head];
			b->head = (b->head + 1) % b->cap;
			b->len--;
			pthread_cond_signal(&b->cv_room);
			pthread_mutex_unlock(&b->mu);
			*item = b->cur.item;
			return FO_OK;
		}
		if (b->fail.code) {
			struct rerr e = b->fail;
			pthread_mutex_unlock(&b->mu);
			free(b->fail_msg);
			b->fail_msg = strdup(e.msg);
			b->it.err.code = e.code;
			b->it.err.sys_errno = e.code == FO_ESYS ? e.sys_errno : 0;
			b->it.err.message = b->fail_msg ? b->fail_msg : fo_strerror(e.code);
			return FO_FAILED;
		}
		if (deadline == 0) {
			pthread_mutex_unlock(&b->mu);
			return FO_EMPTY;
		}
		if (deadline == FO__NO_DEADLINE) {
			pthread_cond_wait(&b->cv_items, &b->mu);
		} else {
			if (now_ns() >= deadline) {
				pthread_mutex_unlock(&b->mu);
				return FO_TIMEDOUT;
			}
			struct timespec ts = ns_ts(deadline);
			pthread_cond_timedwait(&b->cv_items, &b->mu, &ts);
		}
	}
}

static inline int bsrc_fd(fo_iter *it)
{
	struct bsrc *b = (struct bsrc *)it;
	pthread_mutex_lock(&b->mu);
	if (b->efd < 0)
		b->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int fd = b->efd;
	pthread_mutex_unlock(&b->mu);
	return fd >= 0 ? fd : FO_ESYS;
}

static inline int bsrc_arm(fo_iter *it)
{
	struct bsrc *b = (struct bsrc *)it;
	pthread_mutex_lock(&b->mu);
	if (b->efd < 0) {
		pthread_mutex_unlock(&b->mu);
		return FO_EINVAL;
	}
	/* Under mu, like every publication: no signal can fall in between. */
	int ready = b->len || b->fail.code;
	if (!ready) {
		uint64_t v;
		ssize_t r = read(b->efd, &v, sizeof(v)); /* drain an old signal */
		(void)r;
		b->armed = true;
	}
	pthread_mutex_unlock(&b->mu);
	return ready ? 1 : 0;
}

#endif /* FANOUT_BRIDGES_COMMON_H */
