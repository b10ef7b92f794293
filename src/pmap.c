/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * pmap.c - parallel map on a pool of worker threads (see fanout/pmap.h).
 *
 * A pool (struct fo_pool) owns the worker threads, their init/fini and the
 * timeout watchdog; a round (struct round, the output fo_iter) owns one
 * source and the task slots of its items.  One round at a time is open on
 * a pool; fo_pmap() is a private pool whose only round tears it down.
 *
 * One mutex (pool->mu) guards everything below; the work per item is the
 * user's call, so the mutex is taken about once per item, never during a
 * call or a source pull.
 *
 *   task states: FREE -> HELD (pulled: the slot holds the input) -> RUN
 *     (being computed; a worker's cur) -> DONE (result ready for the reader)
 *     -> FREE (the reader took it).  Only the worker that reserved a slot
 *     writes it between FREE and DONE, except the watchdog, which turns a
 *     timed-out RUN into DONE (the input stays with the worker) and moves the
 *     worker's remaining HELD items to the round's redo list, where any
 *     worker takes them.
 *   workers: wait on cv_work until they may take work (take_batch: the redo
 *     list, or the source when it is free and the in-flight bound leaves
 *     room), reserve up to chunk_size slots, pull the source without the
 *     lock, then compute each item without the lock and publish it (DONE,
 *     cv_out).  A worker holding a round's items counts in round->active;
 *     closing a round waits (cv_idle) until no worker holds any.
 *   reader: takes every finished result in output order - ordered: the
 *     slots from next_out on (tasks[] is a ring indexed by seq % W; every
 *     in-flight seq lies in [returned, next_seq) and next_seq - returned
 *     <= W); unordered: the ready FIFO - into a local batch under one lock,
 *     frees their slots, then hands them out one by one without the lock.
 *     An item stays in flight (room()) until handed out: `returned` is the
 *     reader's counter, and a worker about to sleep for room sets
 *     room_waiters, fences, and re-checks (Dekker with return_one()).
 *   chunks: without timeouts a worker computes its whole chunk and
 *     publishes it under one lock (compute_chunk); with timeouts item by
 *     item, so the watchdog always knows the current call.
 *   watchdog (timeout_ns > 0): sleeps until the earliest deadline, then
 *     times the item out at its place, abandons its worker (which releases
 *     its late output and exits) and starts a replacement, whether or not
 *     the reader is reading.
 *
 * Readiness (fo_iter_fd/arm): the round's fo__waker is armed and re-checked
 * under mu; whoever publishes something readable notes `armed` under mu and
 * signals after unlocking, holding an active count so the round stays.
 */
#include <errno.h>
#include <string.h>

#include <fanout/pmap.h>
#include "iter_impl.h"
#include "pmap_impl.h"

enum tstate { T_FREE, T_HELD, T_RUN, T_DONE };

struct task {
	void *in, *out;
	uint64_t seq;
	int status;    /* FO_OK or the failure code */
	int sys_errno; /* errno behind an FO_ESYS failure */
	char *msg;     /* owned failure message, or NULL: a static text */
	bool passthru; /* an upstream error item, in @in */
	enum tstate st;
	struct task *next; /* free list / ready FIFO (unordered), redo list */
};

struct round;

struct worker {
	pthread_t th;
	struct fo_pool *pool;
	size_t index;              /* which init argument */
	struct round *r;           /* under mu: the round of the batch */
	struct task **batch;       /* chunk_size slots: the items taken at once */
	struct fo__pw_item *items; /* chunk_size: the backend's view of a run */
	void *self;                /* the backend's worker state (worker thread only) */
	size_t bi, bn;             /* under mu: batch[bi] is next / current, bn taken */
	struct task *cur;          /* under mu: the item being computed */
	uint64_t deadline;         /* under mu: cur's timeout deadline */
	bool abandoned;            /* under mu: cur timed out; exit after the call */
	bool interrupted;          /* under mu: cur timed out, the backend aborts it */
	bool exited;               /* under mu: ready to be joined */
	struct worker *next;
	/* Pipelined backends (ops->post): the window of items in flight.  Worker
	 * thread only, except cur/deadline above and tgt. */
	struct pent *ents;      /* wcap entries */
	struct pent **efree;    /* free entries (a stack) */
	struct fo__pw_item **q; /* posted to the backend, oldest first (&pent.it) */
	struct pent **todo;     /* to post: new items, retries, a lost worker's */
	struct pent **done;     /* final outcomes to publish */
	size_t nefree, nq, ntodo, ndone;
	struct task *tgt; /* under mu: the item the watchdog timed out (pipelined) */
};

/* One item in a pipelined worker's window. */
struct pent {
	struct fo__pw_item it; /* first: the backend's queue holds &it */
	struct task *t;        /* RUN, ours until published */
	uint64_t deadline;     /* set when it first reaches the head; FO__NO_DEADLINE before */
	unsigned tries;        /* retries used */
	bool more;             /* the next in todo is the next item of its chunk */
};

struct fo_pool {
	pthread_mutex_t mu;
	pthread_cond_t cv_work; /* workers: work, or stop */
	pthread_cond_t cv_out;  /* reader: a result, the end, a fatal error */
	pthread_cond_t cv_idle; /* round close: no worker holds its items */
	pthread_cond_t cv_wd;   /* watchdog: a deadline to watch, or stop */
	fo_pmap_fn fn;
	fo_pmap_opts o;
	const struct fo__pmap_ops *ops; /* the backend */
	fo_item_free_fn ofree;          /* outputs in this process: o.item_free, or */
	void *octx;                     /* out_codec's destructor (processes) */
	void **init_args;               /* copy of o.init_args, or NULL */
	size_t cap;                     /* unordered in-flight bound: workers * (buffer + chunk) */
	size_t W;    /* task slots per round: cap (+ reorder window when ordered) */
	size_t wcap; /* pipelined backends: items in flight per worker */

	struct worker *workers;
	size_t init_pending; /* first workers whose init has not returned */
	int fatal;           /* an init failed: its code (sticky for the pool) */
	int fatal_errno;     /* its errno (FO_ESYS) */
	char *fatal_msg;     /* its owned message, or NULL */
	bool started, stop;
	bool wd_started, wd_idle; /* the watchdog runs / sleeps with no deadline */
	pthread_t wd;
	struct round *r;               /* the open round, or NULL */
	_Atomic uint32_t room_waiters; /* a worker sleeps on cv_work (see return_one()) */
	_Atomic uint64_t src_turns;    /* bumped when a worker leaves the source (brief waits) */
	int refs;                      /* the handle + the open round */
};

struct round {
	fo_iter it; /* first: the vtable casts */
	struct fo_pool *pool;
	fo_iter *src;
	fo_item_free_fn in_free;
	void *in_ctx;
	struct task *tasks;
	struct task *free_list;         /* unordered */
	struct task *rq_head, *rq_tail; /* unordered: finished, in completion order */
	struct task *redo_head;         /* HELD items of abandoned workers */
	uint64_t next_seq, next_out;    /* ordered: next seq to reserve / to take */
	uint64_t halt_seq;              /* the first STOP failure, or UINT64_MAX */
	_Atomic uint64_t reserved; /* slots reserved (minus unused ones at the end); under mu */
	uint64_t taken;            /* under mu: results taken off their slots by the reader */
	_Atomic uint64_t returned; /* written by the reader: results handed out or dropped */
	struct task *lbuf;         /* reader: taken, not yet returned (copies), W of them */
	size_t lhead, ln;
	size_t active; /* workers (and signallers) holding items */
	bool src_busy; /* a worker is inside the source pull */
	int src_done;  /* 0, FO_END or FO_FAILED */
	bool closing, reader_waiting;
	_Atomic uint64_t pub; /* bumped under mu with every publication (brief waits) */
	_Atomic uint64_t n_in, n_out, n_failed; /* relaxed counters for progress */
	struct fo__waker wk;
};

#define NO_HALT UINT64_MAX

static const char MSG_FAIL[] = "pmap callback failed";
static const char MSG_TIMEOUT[] = "pmap item timed out";
static const char MSG_INIT[] = "pmap worker init failed";

void fo_pmap_opts_init(fo_pmap_opts *o)
{
	if (!o)
		return;
	memset(o, 0, sizeof(*o));
	o->backend = FO_THREADS;
	o->workers = 2;
	o->per_worker_buffer = FO_PMAP_BUFFER_AUTO; /* resolved by backend: auto_buffer() */
	o->chunk_size = 1;
	o->ordered = true;
	o->on_error = FO_ERR_STOP;
}

/* ---- paired results ----------------------------------------------------------------------- */

struct result {
	fo_result r;
	fo_error e;
	fo_item_free_fn in_free, out_free;
	void *in_ctx, *out_ctx;
};

void fo_result_free(void *p, void *ctx)
{
	(void)ctx;
	struct result *r = p;
	if (!r)
		return;
	if (r->r.input && r->in_free)
		r->in_free(r->r.input, r->in_ctx);
	if (r->r.output && r->out_free)
		r->out_free(r->r.output, r->out_ctx);
	fo__free(r);
}

/* @msg is copied into the result: results may outlive the pool. */
static struct result *result_new(struct round *r, void *in, void *out, int status, int sys_errno,
                                 const char *msg)
{
	size_t mlen = status != FO_OK ? strlen(msg) + 1 : 0;
	struct result *res = fo__zalloc(sizeof(*res) + mlen);
	if (!res)
		return NULL;
	res->r.input = in;
	res->r.output = out;
	res->r.status = status;
	res->in_free = r->in_free;
	res->in_ctx = r->in_ctx;
	res->out_free = r->pool->ofree;
	res->out_ctx = r->pool->octx;
	if (status != FO_OK) {
		res->e.code = status;
		res->e.sys_errno = sys_errno;
		res->e.message = memcpy(res + 1, msg, mlen);
		res->r.error = &res->e;
	}
	return res;
}

/* ---- pool internals (mu held unless said otherwise) ---------------------------------------- */

static bool halted(const struct round *r)
{
	return r->halt_seq != NO_HALT;
}

/* Free slots the source may fill now (0: none, or the source is not ours to pull). */
static size_t room(const struct fo_pool *pool, const struct round *r)
{
	if (halted(r) || r->src_done || r->src_busy || r->closing || pool->fatal ||
	    pool->init_pending)
		return 0;
	/* In flight = reserved and not returned: the reader's local batch counts
	 * until it hands each item out.  relaxed: a stale value only
	 * under-estimates room; a worker about to sleep re-reads it after a fence. */
	uint64_t ret = atomic_load_explicit(&r->returned, memory_order_relaxed);
	/* relaxed: reserved is written only under mu, which we hold. */
	size_t used = (size_t)(atomic_load_explicit(&r->reserved, memory_order_relaxed) - ret);
	size_t free = (pool->o.ordered ? pool->W : pool->cap) - used;
	return free < pool->o.chunk_size ? free : pool->o.chunk_size;
}

/* The round a worker may take work from now, or NULL. */
static struct round *takeable(const struct fo_pool *pool)
{
	struct round *r = pool->r;
	if (!r || r->closing || pool->fatal)
		return NULL;
	return (r->redo_head || room(pool, r)) ? r : NULL;
}

/* Should this HELD item be computed?  After a STOP failure only items before it
 * (ordered: they come out before the error) are worth the call. */
static bool worth(const struct fo_pool *pool, const struct round *r, const struct task *t)
{
	if (r->closing)
		return false;
	return !halted(r) || (pool->o.ordered && t->seq < r->halt_seq);
}

static void push_ready(struct fo_pool *pool, struct round *r, struct task *t)
{
	t->st = T_DONE;
	if (pool->o.ordered)
		return; /* the slot itself is the place */
	t->next = NULL;
	if (r->rq_tail)
		r->rq_tail->next = t;
	else
		r->rq_head = t;
	r->rq_tail = t;
}

static void record_failure(struct fo_pool *pool, struct round *r, struct task *t)
{
	atomic_fetch_add_explicit(&r->n_failed, 1, memory_order_relaxed); /* progress only */
	if (pool->o.on_error == FO_ERR_STOP && t->seq < r->halt_seq)
		r->halt_seq = t->seq;
}

static void slot_free(struct fo_pool *pool, struct round *r, struct task *t)
{
	t->st = T_FREE;
	t->in = t->out = NULL;
	t->msg = NULL; /* moved to the reader's copy (take_all) */
	if (!pool->o.ordered) {
		t->next = r->free_list;
		r->free_list = t;
	}
}

/* Release what a task holds (close, or a result nobody will read). */
static void task_release(struct fo_pool *pool, struct round *r, struct task *t)
{
	if (t->passthru) {
		fo_error_item_free(t->in);
	} else if (t->st == T_DONE && t->status == FO_OK) {
		if (t->out && pool->ofree)
			pool->ofree(t->out, pool->octx);
		if (pool->o.paired && t->in && r->in_free)
			r->in_free(t->in, r->in_ctx);
	} else if (t->in && r->in_free) {
		r->in_free(t->in, r->in_ctx);
	}
	fo__free(t->msg);
	t->msg = NULL;
	t->in = t->out = NULL;
	t->st = T_FREE;
}

/* Every reserved item has been taken and the source has ended. */
static bool drained(const struct round *r)
{
	/* relaxed: reserved is written only under mu, which the caller holds. */
	return r->src_done && r->taken == atomic_load_explicit(&r->reserved, memory_order_relaxed);
}

/* Is a read of @r going to return something other than FO_EMPTY? */
static bool readable(const struct fo_pool *pool, const struct round *r)
{
	if (r->lhead < r->ln || pool->fatal || drained(r))
		return true;
	if (!pool->o.ordered)
		return r->rq_head != NULL;
	return r->next_out < r->next_seq && r->tasks[r->next_out % pool->W].st == T_DONE;
}

/* After publishing under mu: wake the reader; returns whether its waker is armed
 * (then the caller signals it after unlocking, see hold_signal()). */
static bool notify_reader(struct fo_pool *pool, struct round *r)
{
	/* relaxed: a hint for the reader's brief wait; it re-checks under mu. */
	atomic_fetch_add_explicit(&r->pub, 1, memory_order_relaxed);
	if (r->reader_waiting)
		pthread_cond_signal(&pool->cv_out);
	/* relaxed: armed is set under mu (rd_arm), which we hold. */
	return atomic_load_explicit(&r->wk.armed, memory_order_relaxed) != 0;
}

static void round_put(struct fo_pool *pool, struct round *r)
{
	if (--r->active == 0 && r->closing)
		pthread_cond_broadcast(&pool->cv_idle);
}

/* Signal @r's waker without mu, holding an active count so the round stays.
 * Called and returns with mu held. */
static void hold_signal(struct fo_pool *pool, struct round *r)
{
	r->active++;
	pthread_mutex_unlock(&pool->mu);
	fo__waker_signal(&r->wk);
	pthread_mutex_lock(&pool->mu);
	round_put(pool, r);
}

/* The pool cannot go on: @code (with @sys_errno and @msg, owned: taken here). */
static void set_fatal(struct fo_pool *pool, int code, int sys_errno, char *msg)
{
	if (!pool->fatal) {
		pool->fatal = code ? code : FO_FAILED;
		pool->fatal_errno = sys_errno;
		pool->fatal_msg = msg;
	} else {
		fo__free(msg);
	}
	pthread_cond_broadcast(&pool->cv_out);
	pthread_cond_broadcast(&pool->cv_work);
	if (pool->r && notify_reader(pool, pool->r))
		hold_signal(pool, pool->r);
}

static void *worker_main(void *arg);

static void worker_release(struct worker *w)
{
	fo__free(w->batch);
	fo__free(w->items);
	fo__free(w->ents);
	fo__free(w->efree);
	fo__free(w->q);
	fo__free(w->todo);
	fo__free(w->done);
	fo__free(w);
}

static int window_alloc(struct fo_pool *pool, struct worker *w)
{
	size_t n = pool->wcap;
	w->ents = fo__alloc(n * sizeof(*w->ents));
	w->efree = fo__alloc(n * sizeof(*w->efree));
	w->q = fo__alloc(n * sizeof(*w->q));
	w->todo = fo__alloc(n * sizeof(*w->todo));
	w->done = fo__alloc(n * sizeof(*w->done));
	if (!w->ents || !w->efree || !w->q || !w->todo || !w->done)
		return FO_ENOMEM;
	for (size_t i = 0; i < n; i++)
		w->efree[i] = &w->ents[i];
	w->nefree = n;
	return FO_OK;
}

static int spawn(struct fo_pool *pool, size_t index)
{
	struct worker *w = fo__zalloc(sizeof(*w));
	if (!w)
		return FO_ENOMEM;
	w->batch = fo__alloc(pool->o.chunk_size * sizeof(*w->batch));
	w->items = fo__zalloc(pool->o.chunk_size * sizeof(*w->items));
	w->pool = pool;
	w->index = index;
	if (!w->batch || !w->items || (pool->ops->post && window_alloc(pool, w) != FO_OK)) {
		worker_release(w);
		return FO_ENOMEM;
	}
	if (pthread_create(&w->th, NULL, worker_main, w) != 0) {
		worker_release(w);
		return FO_ESYS;
	}
	w->next = pool->workers;
	pool->workers = w;
	return FO_OK;
}

static void worker_free(struct worker *w)
{
	pthread_join(w->th, NULL);
	worker_release(w);
}

/* Join abandoned workers that have exited (keeps the list short). */
static void reap(struct fo_pool *pool)
{
	for (struct worker **pp = &pool->workers; *pp;) {
		struct worker *w = *pp;
		if (w->abandoned && w->exited) {
			*pp = w->next;
			worker_free(w); /* it only returns: joining under mu is fine */
		} else {
			pp = &w->next;
		}
	}
}

/* Start replacements until `workers` threads are live, each with a free init index. */
static void respawn(struct fo_pool *pool)
{
	reap(pool);
	size_t live = 0;
	for (struct worker *w = pool->workers; w; w = w->next)
		live += !w->abandoned;
	for (size_t i = live; i < pool->o.workers; i++) {
		size_t idx = 0;
		for (; idx < pool->o.workers; idx++) {
			bool used = false;
			for (struct worker *w = pool->workers; w; w = w->next)
				used |= !w->abandoned && w->index == idx;
			if (!used)
				break;
		}
		int rc = spawn(pool, idx);
		if (rc != FO_OK) {
			set_fatal(pool, rc, 0, NULL);
			return;
		}
	}
}

/* The earliest deadline of a call in progress (FO__NO_DEADLINE: none). */
static uint64_t earliest_deadline(const struct fo_pool *pool)
{
	uint64_t earliest = FO__NO_DEADLINE;
	for (const struct worker *w = pool->workers; w; w = w->next)
		if (!w->abandoned && !w->interrupted && w->cur && w->deadline < earliest)
			earliest = w->deadline;
	return earliest;
}

/* Time out items past their deadline.  May drop mu for a while (respawn,
 * hold_signal): calls may have started meanwhile, so the caller asks
 * earliest_deadline() afterwards, never before. */
static void check_timeouts(struct fo_pool *pool)
{
	uint64_t now = fo__now_ns();
	struct round *sig = NULL;
	bool any = false;
	for (struct worker *w = pool->workers; w; w = w->next) {
		if (w->abandoned || w->interrupted || !w->cur || now < w->deadline)
			continue;
		if (pool->ops->interrupt) {
			/* The backend aborts the call (kills the child): the worker
			 * itself publishes FO_TIMEDOUT, with the input, and goes on. */
			w->interrupted = true;
			w->tgt = w->cur;
			pool->ops->interrupt(w->self);
			continue;
		}
		struct round *r = w->r;
		struct task *t = w->cur; /* its input stays with the worker */
		t->in = t->out = NULL;
		t->status = FO_TIMEDOUT;
		record_failure(pool, r, t);
		push_ready(pool, r, t);
		/* The rest of its batch goes to whichever worker is free. */
		for (size_t i = w->bi + 1; i < w->bn; i++) {
			struct task *h = w->batch[i];
			if (h->st != T_HELD)
				continue;
			h->next = r->redo_head;
			r->redo_head = h;
		}
		w->bn = w->bi + 1;
		w->cur = NULL;
		w->abandoned = true;
		any = true;
		if (notify_reader(pool, r))
			sig = r;
	}
	if (any) {
		pthread_cond_broadcast(&pool->cv_work);
		respawn(pool);
		if (sig)
			hold_signal(pool, sig);
	}
}

static void *watchdog_main(void *arg)
{
	struct fo_pool *pool = arg;
	pthread_mutex_lock(&pool->mu);
	while (!pool->stop) {
		check_timeouts(pool);
		/* After it, under mu until the wait: a call that starts later sees
		 * wd_idle (or a deadline later than ours) and needs no signal. */
		uint64_t until = earliest_deadline(pool);
		pool->wd_idle = until == FO__NO_DEADLINE;
		fo__cond_wait_until(&pool->cv_wd, &pool->mu, until);
		pool->wd_idle = false;
	}
	pthread_mutex_unlock(&pool->mu);
	return NULL;
}

/*
 * Take work for @w from @r: the redo list first, else up to room() slots from
 * the source (pulled here, without the lock).  Returns with mu held and
 * w->batch[0 .. w->bn) HELD (or DONE pass-through) items of @r.
 */
static void take_batch(struct fo_pool *pool, struct round *r, struct worker *w)
{
	w->r = r;
	w->bi = w->bn = 0;
	r->active++;
	if (r->redo_head) {
		while (r->redo_head && w->bn < pool->o.chunk_size) {
			w->batch[w->bn++] = r->redo_head;
			r->redo_head = r->redo_head->next;
		}
		return;
	}
	size_t k = room(pool, r);
	uint64_t seq0 = r->next_seq;
	for (size_t i = 0; i < k; i++) {
		struct task *t;
		if (pool->o.ordered) {
			t = &r->tasks[(seq0 + i) % pool->W];
		} else {
			t = r->free_list;
			r->free_list = t->next;
		}
		FO_ASSERT(t->st == T_FREE);
		t->st = T_HELD; /* reserved: nobody else touches it until DONE */
		t->seq = seq0 + i;
		t->passthru = false;
		t->in = t->out = NULL;
		t->status = FO_OK;
		w->batch[i] = t;
	}
	r->next_seq += k;
	/* relaxed: written under mu (ours); atomic only for lock-free progress reads. */
	atomic_store_explicit(&r->reserved,
	                      atomic_load_explicit(&r->reserved, memory_order_relaxed) + k,
	                      memory_order_relaxed);
	r->src_busy = true;
	pthread_mutex_unlock(&pool->mu);

	/* The reserved slots are ours: fill them without the lock. */
	size_t m = 0;
	int rc = FO_OK;
	for (; m < k; m++) {
		bool is_err = false;
		rc = fo__iter_pull(r->src, &w->batch[m]->in, FO__NO_DEADLINE, &is_err);
		if (rc != FO_OK)
			break;
		w->batch[m]->passthru = is_err;
	}

	pthread_mutex_lock(&pool->mu);
	r->src_busy = false;
	atomic_fetch_add_explicit(&r->n_in, m, memory_order_relaxed); /* progress only */
	if (rc != FO_OK) { /* END or FAILED: seq0 + m is the end */
		r->src_done = rc == FO_END ? FO_END : FO_FAILED;
		for (size_t i = m; i < k; i++)
			slot_free(pool, r, w->batch[i]);
		r->next_seq = seq0 + m;
		/* relaxed: under mu, as above. */
		atomic_store_explicit(&r->reserved,
		                      atomic_load_explicit(&r->reserved, memory_order_relaxed) -
		                          (k - m),
		                      memory_order_relaxed);
	}
	w->bn = m;
	bool sig = false;
	for (size_t i = 0; i < m; i++) {
		if (w->batch[i]->passthru && !r->closing) {
			push_ready(pool, r, w->batch[i]);
			sig = true;
		}
	}
	/* relaxed: only a hint for brief waits, which re-check under mu. */
	atomic_fetch_add_explicit(&pool->src_turns, 1, memory_order_relaxed);
	pthread_cond_broadcast(&pool->cv_work); /* the source is free for another worker */
	if ((sig || rc != FO_OK) && notify_reader(pool, r))
		hold_signal(pool, r);
}

/*
 * The backend's attempts at it[0..n), with retries (no lock): returns how
 * many items, from the first, have their final outcome.  Fewer than @n only
 * when the worker cannot go on (*@fatal set, *@why the cause, owned).
 */
static size_t call_items(struct fo_pool *pool, struct worker *w, struct fo__pw_item *it, size_t n,
                         uint64_t deadline, struct fo__pw_item *why, bool *fatal)
{
	const struct fo__pmap_ops *ops = pool->ops;
	for (size_t i = 0; i < n;) {
		size_t k = ops->run(w->self, it + i, n - i);
		if (k == 0) {
			*why = it[i];
			*fatal = true;
			return i;
		}
		for (size_t j = i; j < i + k; j++) {
			for (unsigned tries = 0; it[j].status != FO_OK && tries < pool->o.retries;
			     tries++) {
				if (deadline != FO__NO_DEADLINE && fo__now_ns() >= deadline)
					break;
				fo__free(it[j].msg);
				it[j].msg = NULL;
				if (ops->run(w->self, it + j, 1) == 0) {
					*why = it[j];
					*fatal = true;
					for (size_t m = i; m < j;
					     m++) /* done, but the round fails */
						if (it[m].status == FO_OK && pool->ofree)
							pool->ofree(it[m].out, pool->octx);
					return i;
				}
			}
		}
		i += k;
	}
	return n;
}

/* A copying backend's input is not needed after FO_OK (unpaired): release it
 * (no lock: the destructor is the user's).  Returns the input the task keeps. */
static void *settle_input(struct fo_pool *pool, struct round *r, void *in, int status)
{
	if (status != FO_OK || pool->o.paired)
		return in;
	if (pool->ops->copies_input && in && r->in_free)
		r->in_free(in, r->in_ctx);
	return NULL; /* fn's now (threads), or released (a copy crossed) */
}

static void put_outcome(struct task *t, struct fo__pw_item *it, void *in)
{
	t->in = in;
	t->status = it->status;
	t->sys_errno = it->sys_errno;
	t->msg = it->msg;
	it->msg = NULL;
	t->out = it->status == FO_OK ? it->out : NULL;
}

/* A call whose outcome comes too late (timed out): drop its output and the
 * input it still holds (no lock: the destructors are the user's). */
static void release_late(struct fo_pool *pool, struct round *r, struct fo__pw_item *it, void *in)
{
	fo__free(it->msg);
	it->msg = NULL;
	if (it->status == FO_OK) {
		if (pool->o.item_free)
			pool->o.item_free(it->out, pool->o.item_free_ctx);
		if (pool->o.paired && r->in_free)
			r->in_free(in, r->in_ctx);
	} else if (r->in_free) {
		r->in_free(in, r->in_ctx);
	}
}

/*
 * Without timeouts (no watchdog needs w->cur), a chunk is computed in one
 * go and published under one lock: 2 lock rounds per chunk instead of 1 + k.
 * The slots are ours while RUN (the reader takes only DONE ones, close waits
 * for active == 0), so results go into them without the lock.  mu held on
 * entry and exit.  Returns false when the worker cannot go on.
 */
static bool compute_chunk(struct fo_pool *pool, struct worker *w)
{
	struct round *r = w->r;
	size_t n = 0;
	for (size_t i = w->bi; i < w->bn; i++) {
		struct task *t = w->batch[i];
		if (t->st == T_HELD && worth(pool, r, t)) {
			t->st = T_RUN;
			w->batch[n++] = t; /* the others stay where they are (DONE or HELD) */
		}
	}
	pthread_mutex_unlock(&pool->mu);
	for (size_t i = 0; i < n; i++)
		w->items[i] = (struct fo__pw_item){.in = w->batch[i]->in};
	struct fo__pw_item why = {0};
	bool fatal = false;
	size_t done = call_items(pool, w, w->items, n, FO__NO_DEADLINE, &why, &fatal);
	for (size_t i = 0; i < done; i++) {
		struct task *t = w->batch[i];
		put_outcome(t, &w->items[i], settle_input(pool, r, t->in, w->items[i].status));
	}
	pthread_mutex_lock(&pool->mu);
	for (size_t i = 0; i < done; i++) {
		if (w->batch[i]->status != FO_OK)
			record_failure(pool, r, w->batch[i]);
		push_ready(pool, r, w->batch[i]);
	}
	/* Items after a fatal stop stay RUN with their inputs: close releases them. */
	if (fatal)
		set_fatal(pool, why.status, why.sys_errno, why.msg);
	w->bi = w->bn = 0;
	if (done && notify_reader(pool, r))
		hold_signal(pool, r);
	return !fatal;
}

/* Compute batch[bi] (HELD, worth it); mu held on entry and exit.  Returns false when
 * the worker was abandoned meanwhile (its late result is released here) or
 * cannot go on. */
static bool compute(struct fo_pool *pool, struct worker *w)
{
	struct round *r = w->r;
	struct task *t = w->batch[w->bi];
	t->st = T_RUN;
	void *in = t->in;
	uint64_t deadline = FO__NO_DEADLINE;
	if (pool->o.timeout_ns > 0) {
		deadline = fo__deadline(pool->o.timeout_ns);
		if (pool->wd_idle)
			pthread_cond_signal(&pool->cv_wd);
	}
	w->cur = t;
	w->deadline = deadline;
	pthread_mutex_unlock(&pool->mu);

	struct fo__pw_item *it = &w->items[0];
	*it = (struct fo__pw_item){.in = in};
	struct fo__pw_item why = {0};
	bool fatal = false;
	size_t done = call_items(pool, w, it, 1, deadline, &why, &fatal);
	void *kept = done ? settle_input(pool, r, in, it->status) : in;

	pthread_mutex_lock(&pool->mu);
	w->interrupted = false;
	if (w->abandoned) {
		/* Timed out: the reader has FO_TIMEDOUT for it; @r stays while we are active. */
		pthread_mutex_unlock(&pool->mu);
		release_late(pool, r, it, in);
		pthread_mutex_lock(&pool->mu);
		return false;
	}
	w->cur = NULL; /* the watchdog leaves us alone from here */
	if (!fatal && !pool->ops->interrupt && fo__now_ns() >= deadline) {
		/* Finished after its deadline, before the watchdog got to it: a
		 * timeout all the same (a late result is never published, whoever
		 * notices first), in the watchdog's form: no input, no output. */
		pthread_mutex_unlock(&pool->mu);
		release_late(pool, r, it, in);
		pthread_mutex_lock(&pool->mu);
		*it = (struct fo__pw_item){.status = FO_TIMEDOUT};
		kept = NULL;
	}
	if (fatal) {
		set_fatal(pool, why.status, why.sys_errno,
		          why.msg); /* t stays RUN: close frees it */
		return false;
	}
	put_outcome(t, it, kept);
	if (t->status != FO_OK)
		record_failure(pool, r, t);
	push_ready(pool, r, t);
	if (notify_reader(pool, r))
		hold_signal(pool, r);
	return true;
}

/* Wait (mu held) until a round has work for a worker: that round, or NULL
 * when the pool stops. */
static struct round *wait_work(struct fo_pool *pool)
{
	struct round *r = NULL;
	bool spun = false;
	while (!pool->stop && !(r = takeable(pool))) {
		struct round *cr = pool->r;
		if (!spun && cr && !cr->closing) {
			/* The source is busy for a few ns, or the reader is about
			 * to return an item: cheaper to spin than to sleep. */
			spun = true;
			/* relaxed: the brief wait only watches for a change; we
			 * re-check everything under mu afterwards. */
			_Atomic uint64_t *w2[2] = {&pool->src_turns, &cr->returned};
			uint64_t old[2] = {atomic_load_explicit(w2[0], memory_order_relaxed),
			                   atomic_load_explicit(w2[1], memory_order_relaxed)};
			cr->active++; /* keeps cr while we look at it unlocked */
			pthread_mutex_unlock(&pool->mu);
			fo__brief_wait(w2, old, 2);
			pthread_mutex_lock(&pool->mu);
			round_put(pool, cr);
			continue;
		}
		/* Dekker with return_one(): either the reader sees the flag and
		 * wakes us, or we see its `returned` here. */
		atomic_store_explicit(&pool->room_waiters, 1, memory_order_relaxed);
		atomic_thread_fence(memory_order_seq_cst);
		if ((r = takeable(pool)))
			break;
		pthread_cond_wait(&pool->cv_work, &pool->mu);
	}
	return pool->stop ? NULL : r;
}

/* ---- pipelined workers (ops->post: processes) ------------------------------------------------
 *
 * The worker keeps up to wcap items of one round in flight on its backend
 * (design.md §13): it takes chunks while the window has room, posts them
 * (encoded into one write), collects outcomes in post order (one read for
 * many), and publishes them under one lock.  While any item is in its window
 * it holds one `active` count on the round, so close waits for them.
 */

/* May @e's failed attempt be tried again? (its deadline spans every attempt) */
static bool retry_ok(const struct fo_pool *pool, const struct pent *e)
{
	if (e->tries >= pool->o.retries)
		return false;
	return e->deadline == FO__NO_DEADLINE || fo__now_ns() < e->deadline;
}

/* @e's attempt has an outcome (no lock): try again, or make it final. */
static void pipe_outcome(struct fo_pool *pool, struct worker *w, struct round *r, struct pent *e)
{
	if (e->it.status != FO_OK && retry_ok(pool, e)) {
		e->tries++;
		e->more = false; /* a unit of its own now */
		fo__free(e->it.msg);
		e->it.msg = NULL;
		w->todo[w->ntodo++] = e;
		return;
	}
	struct task *t = e->t;
	put_outcome(t, &e->it, settle_input(pool, r, t->in, e->it.status));
	w->done[w->ndone++] = e;
}

/* Post every waiting item (no lock).  Returns false when the worker cannot go
 * on (*@why: the cause; the items not posted stay RUN in the window). */
static bool pipe_post(struct fo_pool *pool, struct worker *w, struct round *r,
                      struct fo__pw_item *why)
{
	size_t n = w->ntodo;
	w->ntodo = 0;
	for (size_t i = 0; i < n; i++) {
		struct pent *e = w->todo[i];
		for (;;) {
			e->it = (struct fo__pw_item){.in = e->t->in};
			/* The last posted item ends a unit: nothing of its chunk follows
			 * it yet, and its outcome must not wait for the next post. */
			int pr = pool->ops->post(w->self, &e->it, e->more && i + 1 < n);
			if (pr == 1) {
				w->q[w->nq++] = &e->it;
			} else if (pr < 0) {
				*why = e->it;
				return false;
			} else if (retry_ok(pool, e)) { /* the input failed to encode */
				e->tries++;
				fo__free(e->it.msg);
				continue;
			} else {
				pipe_outcome(pool, w, r, e);
			}
			break;
		}
	}
	return true;
}

/* Collect the outcomes the backend has (no lock; @block: wait for one). */
static void pipe_collect(struct fo_pool *pool, struct worker *w, struct round *r, bool block)
{
	int lost = 0;
	size_t n = w->nq;
	size_t k = pool->ops->collect(w->self, w->q, n, block, &lost);
	struct task *tgt = NULL;
	if (lost == 1 && w->q[k - 1]->status == FO_TIMEDOUT) {
		pthread_mutex_lock(&pool->mu);
		tgt = w->tgt;
		pthread_mutex_unlock(&pool->mu);
	}
	for (size_t i = 0; i < k; i++) {
		struct pent *e = (struct pent *)w->q[i]; /* it is the first member */
		if (lost == 1 && i == k - 1 && e->it.status == FO_TIMEDOUT && e->t != tgt) {
			/* Killed at an earlier item's deadline, which had finished
			 * meanwhile: not this item's failure; it starts again, with a
			 * fresh deadline and no retry used. */
			fo__free(e->it.msg);
			e->it.msg = NULL;
			e->deadline = FO__NO_DEADLINE;
			w->todo[w->ntodo++] = e;
			continue;
		}
		pipe_outcome(pool, w, r, e);
	}
	if (lost) {
		/* Never started on the lost worker: all go to its replacement. */
		for (size_t i = k; i < n; i++) {
			struct pent *e = (struct pent *)w->q[i];
			e->deadline = FO__NO_DEADLINE;
			w->todo[w->ntodo++] = e;
		}
		w->nq = 0;
	} else {
		memmove(w->q, w->q + k, (n - k) * sizeof(*w->q));
		w->nq = n - k;
	}
}

/* The head of the window is the call in progress: the watchdog's (mu held). */
static void pipe_head(struct fo_pool *pool, struct worker *w)
{
	struct pent *h = w->nq && pool->o.timeout_ns > 0 ? (struct pent *)w->q[0] : NULL;
	if (h ? w->cur == h->t && w->deadline == h->deadline : !w->cur)
		return; /* unchanged: a kill the watchdog sent still targets it */
	w->interrupted = false;
	w->tgt = NULL;
	w->cur = NULL;
	if (!h)
		return;
	bool fresh = h->deadline == FO__NO_DEADLINE;
	if (fresh)
		h->deadline = fo__deadline(pool->o.timeout_ns);
	w->cur = h->t;
	w->deadline = h->deadline;
	/* A fresh deadline is later than any the watchdog sleeps for; a retried
	 * item's older one may not be. */
	if (pool->wd_idle || !fresh)
		pthread_cond_signal(&pool->cv_wd);
}

/* The loop of a pipelined worker (mu held on entry and exit). */
static void pipe_work(struct fo_pool *pool, struct worker *w)
{
	struct round *r = NULL;
	bool held = false; /* one active count on r while the window is not empty */
	size_t live = 0;   /* entries in the window */
	for (;;) {
		if (!r && !(r = wait_work(pool)))
			return; /* stop */
		while (w->nefree >= pool->o.chunk_size && takeable(pool) == r) {
			take_batch(pool, r, w); /* counts itself active */
			if (held)
				round_put(pool, r);
			held = true;
			struct pent *prev = NULL; /* the chunk's previous entry */
			for (size_t i = 0; i < w->bn; i++) {
				struct task *t = w->batch[i];
				if (t->st != T_HELD || !worth(pool, r, t))
					continue; /* a pass-through, or left HELD: close releases it
					           */
				t->st = T_RUN;
				struct pent *e = w->efree[--w->nefree];
				*e = (struct pent){.t = t, .deadline = FO__NO_DEADLINE};
				/* A chunk is one unit (its outcomes come back together,
				 * as compute_chunk publishes them); with timeouts each
				 * item is one, as with threads. */
				if (prev && pool->o.timeout_ns == 0)
					prev->more = true;
				prev = e;
				w->todo[w->ntodo++] = e;
				live++;
			}
			w->bn = 0;
		}
		if (live == 0) {
			if (held)
				round_put(pool, r);
			held = false;
			r = NULL;
			w->r = NULL;
			continue;
		}
		pthread_mutex_unlock(&pool->mu);

		struct fo__pw_item why = {0};
		bool ok = pipe_post(pool, w, r, &why);
		if (ok && w->nq && pool->o.timeout_ns > 0) {
			pthread_mutex_lock(&pool->mu); /* the head may have changed: watch it */
			pipe_head(pool, w);
			pthread_mutex_unlock(&pool->mu);
		}
		if (ok && w->nq)
			pipe_collect(pool, w, r, w->ndone == 0);

		pthread_mutex_lock(&pool->mu);
		for (size_t i = 0; i < w->ndone; i++) {
			struct task *t = w->done[i]->t;
			if (t->status != FO_OK)
				record_failure(pool, r, t);
			push_ready(pool, r, t);
			w->efree[w->nefree++] = w->done[i];
		}
		live -= w->ndone;
		bool published = w->ndone > 0;
		w->ndone = 0;
		/* Items to post again that are not worth it any more stay RUN
		 * (close releases them). */
		size_t keep = 0;
		for (size_t i = 0; i < w->ntodo; i++) {
			if (ok && worth(pool, r, w->todo[i]->t)) {
				w->todo[keep++] = w->todo[i];
			} else {
				if (keep) /* the chunk's next item is not the one after */
					w->todo[keep - 1]->more = false;
				w->efree[w->nefree++] = w->todo[i];
				live--;
			}
		}
		w->ntodo = keep;
		pipe_head(pool, w);
		if (!ok)
			set_fatal(pool, why.status, why.sys_errno, why.msg);
		if (published && notify_reader(pool, r))
			hold_signal(pool, r);
		if (!ok) {
			/* A worker is replaced only with nothing in flight: the window's
			 * other items were never posted; they stay RUN for close. */
			round_put(pool, r);
			w->r = NULL;
			return;
		}
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct fo_pool *pool = w->pool;
	void *self = NULL;
	struct fo__pw_item why = {0};
	int rc = pool->ops->start(&pool->o, pool->fn, w->index,
	                          pool->init_args ? pool->init_args[w->index] : NULL, &self, &why);

	pthread_mutex_lock(&pool->mu);
	/* init_pending counts the first generation only (start()); replacements
	 * start after it reached 0. */
	if (rc != FO_OK) {
		if (pool->init_pending)
			pool->init_pending--;
		set_fatal(pool, why.status ? why.status : rc, why.sys_errno, why.msg);
		w->exited = true;
		pthread_mutex_unlock(&pool->mu);
		return NULL; /* no fini: init did not succeed */
	}
	w->self = self; /* under mu: the watchdog's interrupt() reads it */
	if (pool->init_pending && --pool->init_pending == 0)
		pthread_cond_broadcast(&pool->cv_work);

	if (pool->ops->post)
		pipe_work(pool, w);
	for (struct round *r; !pool->ops->post && (r = wait_work(pool));) {
		take_batch(pool, r, w);
		bool alive = true;
		if (pool->o.timeout_ns == 0 && w->bn > 1)
			alive = compute_chunk(pool, w);
		for (; w->bi < w->bn && alive; w->bi++) {
			struct task *t = w->batch[w->bi];
			if (t->st == T_HELD && worth(pool, r, t))
				alive = compute(pool, w);
			/* else: a pass-through, or not worth it (left HELD: close releases it) */
		}
		w->bn = 0;
		w->r = NULL;
		round_put(pool, r);
		if (!alive)
			break; /* abandoned (a replacement took our place), or fatal */
	}
	pthread_mutex_unlock(&pool->mu);
	pool->ops->stop(self);
	pthread_mutex_lock(&pool->mu);
	w->exited = true; /* reap() may join us now: we only return */
	pthread_mutex_unlock(&pool->mu);
	return NULL;
}

/* First read of the pool's first round: start the workers (and the watchdog). */
static void start(struct fo_pool *pool)
{
	pool->started = true;
	pool->init_pending = pool->o.workers;
	for (size_t i = 0; i < pool->o.workers; i++) {
		int rc = spawn(pool, i);
		if (rc != FO_OK) {
			pool->init_pending -= pool->o.workers - i;
			set_fatal(pool, rc, errno, NULL);
			return;
		}
	}
	if (pool->o.timeout_ns > 0) {
		if (pthread_create(&pool->wd, NULL, watchdog_main, pool) != 0)
			set_fatal(pool, FO_ESYS, errno, NULL);
		else
			pool->wd_started = true;
	}
}

/* Stop and join every thread, then free the pool (no round open, handle gone). */
static void pool_teardown(struct fo_pool *pool)
{
	pthread_mutex_lock(&pool->mu);
	pool->stop = true;
	pthread_cond_broadcast(&pool->cv_work);
	pthread_cond_signal(&pool->cv_wd);
	pthread_mutex_unlock(&pool->mu);
	if (pool->wd_started)
		pthread_join(pool->wd, NULL);
	/* Nothing spawns any more: the list is stable. */
	for (struct worker *w = pool->workers, *n; w; w = n) {
		n = w->next;
		worker_free(w);
	}
	pthread_cond_destroy(&pool->cv_wd);
	pthread_cond_destroy(&pool->cv_idle);
	pthread_cond_destroy(&pool->cv_out);
	pthread_cond_destroy(&pool->cv_work);
	pthread_mutex_destroy(&pool->mu);
	fo__free(pool->fatal_msg);
	fo__free(pool->init_args);
	fo__free(pool);
}

/* Drop a reference (mu held; released here). */
static void pool_unref_unlock(struct fo_pool *pool)
{
	bool last = --pool->refs == 0;
	pthread_mutex_unlock(&pool->mu);
	if (last)
		pool_teardown(pool);
}

/* ---- the output iterator (a round) ---------------------------------------------------------- */

static void snapshot(const struct round *r, fo_progress *p)
{
	/* returned first: it never passes reserved, so the difference cannot wrap. */
	/* relaxed: a snapshot; returned first, so the difference cannot wrap. */
	uint64_t ret = atomic_load_explicit(&r->returned, memory_order_relaxed);
	p->in_flight = atomic_load_explicit(&r->reserved, memory_order_relaxed) - ret;
	p->in = atomic_load_explicit(&r->n_in, memory_order_relaxed);
	p->out = atomic_load_explicit(&r->n_out, memory_order_relaxed);
	p->failed = atomic_load_explicit(&r->n_failed, memory_order_relaxed);
}

/* The progress hook, with a snapshot taken only when there is a hook. */
static void report(struct round *r)
{
	if (!r->pool->o.progress)
		return;
	fo_progress p;
	snapshot(r, &p);
	r->pool->o.progress(r->pool->o.progress_ctx, &p);
}

static int deliver_one(struct round *r, struct task *t, void **item, const char *msg);

/* Apply the policy to one finished task (no lock).  FO_OK, FO_EMPTY (dropped), FO_FAILED. */
static int deliver(struct round *r, struct task *t, void **item)
{
	fo_iter *it = &r->it;
	if (t->passthru) {
		*item = t->in;
		it->last_err = true;
		return FO_OK;
	}
	char *owned = t->msg; /* copied where it goes, then freed here */
	t->msg = NULL;
	const char *msg = owned ? owned : t->status == FO_TIMEDOUT ? MSG_TIMEOUT : MSG_FAIL;
	int rc = deliver_one(r, t, item, msg);
	fo__free(owned);
	return rc;
}

static int deliver_one(struct round *r, struct task *t, void **item, const char *msg)
{
	const fo_pmap_opts *o = &r->pool->o;
	fo_iter *it = &r->it;
	if (t->status == FO_OK || o->on_error == FO_ERR_EMIT) {
		if (o->paired) {
			struct result *res =
			    result_new(r, t->in, t->out, t->status, t->sys_errno, msg);
			if (!res) {
				task_release(r->pool, r, t);
				return fo__iter_fail(it, FO_ENOMEM, 0, "no memory for a result");
			}
			*item = res;
			return FO_OK;
		}
		if (t->status == FO_OK) {
			*item = t->out;
			return FO_OK;
		}
		fo_error e = {.code = t->status, .sys_errno = t->sys_errno, .message = msg};
		fo_error_item *ei = fo__error_item_new(&e, t->in, r->in_free, r->in_ctx);
		if (!ei) {
			task_release(r->pool, r, t);
			return fo__iter_fail(it, FO_ENOMEM, 0, "no memory for an error item");
		}
		*item = ei;
		it->last_err = true;
		return FO_OK;
	}
	task_release(r->pool, r, t); /* releases the input of a failed item */
	if (o->on_error == FO_ERR_DROP)
		return FO_EMPTY;
	return fo__iter_fail(it, t->status, t->sys_errno, msg);
}

/* Move every finished result, in output order, off its slot into the reader's
 * local batch (mu held).  Returns how many.  The slots are free again, but the
 * items stay in flight (room()) until return_one() hands each out. */
static size_t take_all(struct fo_pool *pool, struct round *r)
{
	size_t n = 0;
	for (; n < pool->W; n++) {
		struct task *t = NULL;
		if (pool->o.ordered) {
			struct task *c = &r->tasks[r->next_out % pool->W];
			if (r->next_out == r->next_seq || c->st != T_DONE)
				break;
			t = c;
			r->next_out++;
		} else {
			if (!r->rq_head)
				break;
			t = r->rq_head;
			r->rq_head = t->next;
			if (!r->rq_head)
				r->rq_tail = NULL;
		}
		r->lbuf[n] = *t;
		slot_free(pool, r, t);
	}
	r->taken += n;
	r->lhead = 0;
	r->ln = n;
	return n;
}

/* One item of the local batch is out (or dropped): it leaves the bound. */
static void return_one(struct fo_pool *pool, struct round *r, bool counted)
{
	if (counted)
		atomic_fetch_add_explicit(&r->n_out, 1, memory_order_relaxed); /* progress only */
	/* relaxed store: we are its only writer; the fence below orders it
	 * before the room_waiters peek (Dekker with the sleeping worker). */
	atomic_store_explicit(&r->returned,
	                      atomic_load_explicit(&r->returned, memory_order_relaxed) + 1,
	                      memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst); /* pairs with the worker's before it sleeps */
	if (atomic_load_explicit(&pool->room_waiters, memory_order_relaxed)) { /* after the fence */
		pthread_mutex_lock(&pool->mu);
		atomic_store_explicit(&pool->room_waiters, 0, memory_order_relaxed); /* under mu */
		pthread_cond_broadcast(&pool->cv_work);
		pthread_mutex_unlock(&pool->mu);
	}
}

static int rd_next(fo_iter *it, void **item, uint64_t deadline)
{
	struct round *r = (struct round *)it;
	struct fo_pool *pool = r->pool;
	bool spun = false;
	for (;;) {
		/* The local batch needs no lock. */
		while (r->lhead < r->ln) {
			struct task *t = &r->lbuf[r->lhead++];
			int rc = deliver(r, t, item);
			return_one(pool, r, rc != FO_EMPTY); /* EMPTY: a dropped failure */
			report(r);
			if (rc != FO_EMPTY)
				return rc;
		}
		pthread_mutex_lock(&pool->mu);
		if (!pool->started)
			start(pool);
		for (;;) {
			if (pool->fatal) {
				int code = pool->fatal;
				pthread_mutex_unlock(&pool->mu);
				report(r);
				return fo__iter_fail(it, code, pool->fatal_errno,
				                     pool->fatal_msg ? pool->fatal_msg : MSG_INIT);
			}
			if (take_all(pool, r))
				break;
			if (drained(r)) {
				int rc = r->src_done;
				pthread_mutex_unlock(&pool->mu);
				report(r);
				/* The source's error is sticky, and nobody pulls it after
				 * src_done (set under mu, which we took since). */
				return rc == FO_END ? FO_END
				                    : fo__iter_fail_from(it, fo_iter_error(r->src));
			}
			if (deadline == 0) {
				pthread_mutex_unlock(&pool->mu);
				return FO_EMPTY;
			}
			if (!spun) {
				/* Results often come every few hundred ns: a futex sleep and
				 * wake-up per item would cost more than the item. */
				spun = true;
				/* relaxed: a change hint only; re-checked under mu. */
				_Atomic uint64_t *w[1] = {&r->pub};
				uint64_t seen[1] = {
				    atomic_load_explicit(&r->pub, memory_order_relaxed)};
				pthread_mutex_unlock(&pool->mu);
				fo__brief_wait(w, seen, 1);
				pthread_mutex_lock(&pool->mu);
				continue; /* re-check: something may have come after the last spin
				           */
			}
			r->reader_waiting = true;
			int w = fo__cond_wait_until(&pool->cv_out, &pool->mu, deadline);
			r->reader_waiting = false;
			if (w == FO_TIMEDOUT) {
				pthread_mutex_unlock(&pool->mu);
				return FO_TIMEDOUT;
			}
		}
		pthread_mutex_unlock(&pool->mu);
	}
}

static void rd_close(fo_iter *it)
{
	struct round *r = (struct round *)it;
	struct fo_pool *pool = r->pool;
	pthread_mutex_lock(&pool->mu);
	r->closing = true;
	pthread_cond_broadcast(&pool->cv_work);
	while (r->active > 0)
		pthread_cond_wait(&pool->cv_idle, &pool->mu);
	pool->r = NULL;
	for (size_t i = 0; i < pool->W; i++)
		if (r->tasks[i].st != T_FREE)
			task_release(pool, r, &r->tasks[i]);
	for (size_t i = r->lhead; i < r->ln; i++) /* taken, never handed out */
		task_release(pool, r, &r->lbuf[i]);
	/* Nobody signals any more: active is 0 and the round is unlinked. */
	fo__waker_stop(&r->wk);
	fo__waker_fini(&r->wk);
	fo_iter_close(r->src);
	fo__free(r->tasks);
	fo__free(r->lbuf);
	fo__iter_fini(it);
	fo__free(r);
	pool_unref_unlock(pool);
}

static int rd_fd(fo_iter *it)
{
	struct round *r = (struct round *)it;
	pthread_mutex_lock(&r->pool->mu);
	int rc = fo__waker_fd(&r->wk);
	pthread_mutex_unlock(&r->pool->mu);
	return rc;
}

static int rd_watch(fo_iter *it, void (*fn)(void *arg), void *arg)
{
	struct round *r = (struct round *)it;
	return fo__waker_watch(&r->wk, fn, arg);
}

static int rd_arm(fo_iter *it)
{
	struct round *r = (struct round *)it;
	struct fo_pool *pool = r->pool;
	pthread_mutex_lock(&pool->mu);
	if (!pool->started)
		start(pool);
	int rc = fo__waker_prepare(&r->wk);
	if (rc == FO_OK) {
		rc = readable(pool, r);
		if (rc)
			fo__waker_cancel(&r->wk);
	}
	pthread_mutex_unlock(&pool->mu);
	return rc;
}

static const struct fo__iter_vt pmap_vt = {
    .name = "pmap",
    .next = rd_next,
    .close = rd_close,
    .fd = rd_fd,
    .arm = rd_arm,
    .watch = rd_watch,
};

/* ---- construction -----------------------------------------------------------------------------
 */

/* per_worker_buffer's default by backend (pmap.h, FO_PMAP_BUFFER_AUTO): a
 * process pool's item costs a wake-up of a child and of its proxy thread
 * unless the child finds a batch waiting, and its window is this share of
 * the bound (design.md §13, "The window"). */
static size_t auto_buffer(fo_backend backend)
{
	return backend == FO_PROCESSES ? 32 : 16;
}

static bool opts_valid(const fo_pmap_opts *o)
{
	if (o->workers == 0 || o->chunk_size == 0 || o->timeout_ns < 0)
		return false;
	if (o->backend == FO_PROCESSES) {
		if (!o->in_codec.encode || !o->in_codec.decode || !o->out_codec.encode ||
		    !o->out_codec.decode)
			return false; /* items cross as bytes: both codecs are required */
	} else if (o->backend != FO_THREADS) {
		return false;
	}
	if (o->on_error != FO_ERR_STOP && o->on_error != FO_ERR_DROP && o->on_error != FO_ERR_EMIT)
		return false;
	if (o->per_worker_buffer > SIZE_MAX / 8 || o->chunk_size > SIZE_MAX / 8)
		return false;
	size_t per = o->per_worker_buffer + o->chunk_size;
	return o->workers <= SIZE_MAX / 4 / per && o->reorder_window <= SIZE_MAX / 4;
}

int fo_pool_create(fo_pool **out, fo_pmap_fn fn, const fo_pmap_opts *o)
{
	fo_pmap_opts d;
	if (!o) {
		fo_pmap_opts_init(&d);
		o = &d;
	}
	if (!out || !fn)
		return FO_EINVAL;
	if (o->per_worker_buffer == FO_PMAP_BUFFER_AUTO) {
		if (o != &d)
			d = *o;
		d.per_worker_buffer = auto_buffer(d.backend);
		o = &d;
	}
	if (!opts_valid(o))
		return FO_EINVAL;
	struct fo_pool *pool = fo__zalloc(sizeof(*pool));
	if (!pool)
		return FO_ENOMEM;
	pool->o = *o;
	pool->fn = fn;
	if (o->backend == FO_PROCESSES) {
		pool->ops = &fo__pmap_procs;
		pool->ofree = o->out_codec.item_free;
		pool->octx = o->out_codec.ctx;
	} else {
		pool->ops = &fo__pmap_threads;
		pool->ofree = o->item_free;
		pool->octx = o->item_free_ctx;
	}
	pool->cap = o->workers * (o->per_worker_buffer + o->chunk_size);
	if (o->ordered && pool->o.reorder_window == 0)
		pool->o.reorder_window = pool->cap;
	pool->W = o->ordered ? pool->cap + pool->o.reorder_window : pool->cap;
	/* A pipelined worker may hold its share of every slot: its items wait in
	 * its child's socket while it takes more (at least one chunk). */
	pool->wcap = pool->W / o->workers;
	if (pool->wcap < o->chunk_size)
		pool->wcap = o->chunk_size;
	pool->refs = 1;
	if (o->init_args) {
		pool->init_args = fo__alloc(o->workers * sizeof(void *));
		if (!pool->init_args)
			goto nomem;
		memcpy(pool->init_args, o->init_args, o->workers * sizeof(void *));
	}
	pthread_cond_t *cvs[] = {&pool->cv_work, &pool->cv_out, &pool->cv_idle, &pool->cv_wd};
	size_t ncv = 0;
	for (; ncv < 4; ncv++)
		if (fo__cond_init(cvs[ncv]) != FO_OK)
			break;
	/* Adaptive: the sections are a few dozen instructions, taken by 3+ threads per
	 * item; spinning briefly beats a futex sleep on contention. */
	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
	int mrc = pthread_mutex_init(&pool->mu, &ma);
	pthread_mutexattr_destroy(&ma);
	if (ncv < 4 || mrc != 0) {
		if (mrc == 0)
			pthread_mutex_destroy(&pool->mu);
		while (ncv-- > 0)
			pthread_cond_destroy(cvs[ncv]);
		goto nomem;
	}
	*out = pool;
	return FO_OK;
nomem:
	fo__free(pool->init_args);
	fo__free(pool);
	return FO_ENOMEM;
}

int fo_pool_map(fo_pool *pool, fo_iter **out, fo_iter *src)
{
	if (!pool || !out || !src)
		return FO_EINVAL;
	if (src->borrows || (pool->o.paired && src->emits_errors))
		return FO_EINVAL;
	struct round *r = fo__zalloc(sizeof(*r));
	if (!r)
		return FO_ENOMEM;
	r->tasks = fo__zalloc(pool->W * sizeof(*r->tasks));
	r->lbuf = fo__alloc(pool->W * sizeof(*r->lbuf));
	if (!r->tasks || !r->lbuf) {
		fo__free(r->tasks);
		fo__free(r->lbuf);
		fo__free(r);
		return FO_ENOMEM;
	}
	pthread_mutex_lock(&pool->mu);
	if (pool->r) {
		pthread_mutex_unlock(&pool->mu);
		fo__free(r->tasks);
		fo__free(r->lbuf);
		fo__free(r);
		return FO_EBUSY;
	}
	const fo_pmap_opts *o = &pool->o;
	if (!o->ordered)
		for (size_t i = pool->W; i-- > 0;) {
			r->tasks[i].next = r->free_list;
			r->free_list = &r->tasks[i];
		}
	if (o->paired)
		fo__iter_init(&r->it, &pmap_vt, fo_result_free, NULL);
	else
		fo__iter_init(&r->it, &pmap_vt, pool->ofree, pool->octx);
	r->it.emits_errors = !o->paired && (o->on_error == FO_ERR_EMIT || src->emits_errors);
	fo__waker_init(&r->wk);
	r->pool = pool;
	r->src = src;
	r->in_free = src->item_free;
	r->in_ctx = src->item_ctx;
	r->halt_seq = NO_HALT;
	pool->r = r;
	pool->refs++;
	pthread_cond_broadcast(&pool->cv_work); /* idle workers of an earlier round */
	pthread_mutex_unlock(&pool->mu);
	*out = &r->it;
	return FO_OK;
}

void fo_pool_destroy(fo_pool *pool)
{
	if (!pool)
		return;
	pthread_mutex_lock(&pool->mu);
	pool_unref_unlock(pool);
}

int fo_pmap(fo_iter **out, fo_iter *src, fo_pmap_fn fn, const fo_pmap_opts *o)
{
	if (!out || !src)
		return FO_EINVAL;
	fo_pool *pool;
	int rc = fo_pool_create(&pool, fn, o);
	if (rc != FO_OK)
		return rc;
	rc = fo_pool_map(pool, out, src);
	fo_pool_destroy(pool); /* the round keeps it; closing the round tears it down */
	return rc;
}

int fo_pmap_progress_get(fo_iter *it, fo_progress *p)
{
	if (!it || !p || it->vt != &pmap_vt)
		return FO_EINVAL;
	struct round *r = (struct round *)it;
	pthread_mutex_lock(&r->pool->mu);
	snapshot(r, p);
	pthread_mutex_unlock(&r->pool->mu);
	return FO_OK;
}
