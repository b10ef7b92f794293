/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * pipeline.c - buffered stages (see fanout/pipeline.h).
 *
 * A stage is an fo_iter over a single-producer / single-consumer ring of
 * exactly n slots: the stage's thread is the only producer, the reader of
 * the output (one at a time) the only consumer.  The thread waits for room,
 * then pulls its source, then queues the item, so at most n items are ever
 * pulled and not yet read.  The end (FO_END / FO_FAILED) comes after the
 * items as `term`; before publishing it the thread closes its source, which
 * joins every upstream thread, and the reader joins this thread when it
 * reads the end - so a reader that sees the end has every thread joined.
 *
 * Group: the pipeline keeps its open stages (under p->mu, which also keeps
 * a stage's memory alive while another thread touches it).  Each stage
 * records which stage's thread reads it (read_by, written by that reader
 * under p->mu at its first read and before it waits; NO_STAGE when the
 * reader is not a stage thread of this group: the application, a join
 * helper).  halt_upstream(p, k) - when stage k's source fails, or k's
 * output is closed - sets QUIT_HALT on every stage read by k's thread, and
 * on those read by theirs, transitively, and wakes them: each stops before
 * its next pull and ends with FO_ECANCELED, which only its reader - itself
 * halted or closing - ever reads.  Stages of other branches (merged by a
 * join, a flatten) are never halted by another stage: they end on their
 * own, or when their output is closed.  A stage that ends normally halts
 * nothing (its thread closed its source, so everything upstream is done).
 * Closing an output sets QUIT_STOP the same way.
 *
 * The hand-off (no lock; who writes what):
 *
 *   tail      thread: items ever queued.  It writes the slot, then stores
 *             tail with release; the reader loads tail with acquire before
 *             reading slots below it.  term (release) is stored after the
 *             last tail, so a tail loaded after an acquire of term is final
 *             and the reader delivers the end only after every item.
 *   head      reader: items ever read.  It copies the slot out, then stores
 *             head with release; the thread loads head with acquire before
 *             reusing a slot below it.  tail - head <= n always: the thread
 *             queues item `tail` only once it saw tail - head < n.
 *   head_seen / wpos (thread), tail_seen / rpos (reader): private caches, so
 *             a side only reads the other's counter when its cache says
 *             full / empty.  n_in and n_out are tail and head themselves.
 *
 * Waiting.  A side that finds the ring empty (reader) or full (thread)
 * first waits without sleeping: SPIN_ROUNDS rounds of pause with backoff,
 * then up to YIELDS sched_yield()s, but only while they hand the CPU to
 * another thread.  Those yields matter with more threads than CPUs (B14
 * runs 4 on 2): the other side may be waiting for this very CPU, and
 * handing it over costs far less than a futex sleep and wake-up (several
 * microseconds; more in a VM, where waking an idle vCPU is an IPI).  A
 * yield that comes back within YIELD_ALONE_NS ran nobody: yielding on
 * would only burn this CPU (~1.5 us per yield on the 2-vCPU VM, ~24 us for
 * the 16 the wait used to make every time, counted in the process's CPU
 * time) and keep it looking busy, while a runnable thread of the pipeline
 * may be queued on the other CPU; so the waiter sleeps at once, the CPU
 * goes idle and the scheduler can pull that thread over.  Meanwhile each
 * side waits for half a ring (batch()), not for one slot: a reader right
 * behind its thread shares the slot line, the counter lines and the item
 * data with it and pays cache-line transfers on every item, both ways; a
 * half-ring gap keeps them apart and amortises each wait over n/2 items.
 * The reader gives up on the batch after ITEMS_WAIT_NS in all: it then
 * takes what is there, or sleeps until one item comes.  The sleeps have
 * thresholds, like a pipe's or a socket's low-water mark, so a context
 * switch buys a batch: the reader asleep for the batch announces items_at
 * (the tail it waits for) and is woken when the tail reaches it, at the
 * end, when the thread queues an item after the reader has waited
 * ITEMS_WAIT_NS, or when the thread is about to block (below); its own
 * timeout, ITEMS_SLEEP_NS, is only a safety net.  The thread asleep for
 * room announces room_at, for at most ROOM_WAIT_NS, then one slot.  So
 * items are delayed by about ITEMS_WAIT_NS beyond their arrival at most
 * (ITEMS_SLEEP_NS behind a callback source that blocks in spite of a try),
 * and a reader that stops reading finds exactly n items buffered within
 * ROOM_WAIT_NS.  Both timeouts lie past the scheduler tick: a shorter one
 * costs a clock-event reprogram per sleep, and the wakes come long before.
 *
 * About to block.  The thread pulls its source with deadline 0 first; only
 * if that finds nothing does it store blocked = 1 (seq_cst), fence, peek at
 * need_items and wake a reader with items pending, then pull blocking and
 * clear blocked (relaxed).  Likewise before closing its source at the end.
 * The reader, after announcing need_items and its fence, loads blocked
 * (seq_cst) and, if set, takes what is there instead of sleeping for the
 * batch.  Dekker: one of the two loads sees the other's store.  (Spin
 * model: docs/models/stage.pml.)

 * Sleeping is a futex on a generation word behind a "need" word (the waitq
 * of src/stream_impl.h and src/readiness.c, with one sleeper per word):
 *
 *   sleeper (reader for items,            waker (the other side, after
 *   thread for room)                       every tail / head store)
 *   g = gen (seq_cst)                      seq_cst fence
 *   need = 1 (seq_cst)                     if need (relaxed peek):
 *   seq_cst fence                            if xchg(need, 0) (seq_cst):
 *   re-check tail / head, term, quit           gen++ (seq_cst), futex_wake
 *   futex_wait(gen, g)
 *
 * Dekker through the two fences: either the waker's peek sees need = 1 or
 * the sleeper's re-check sees the store.  The ticket is read before the
 * announcement, so a wake that lands between the two makes futex_wait
 * return at once instead of being lost; the exchange gives one system call
 * per sleep, and a hand-off with nobody asleep costs one fence and a load
 * or two of lines nobody writes (need, and the waker's armed).  Plain
 * seq_cst fences, not the membarrier pair (fo__fence_light/heavy): the
 * fence follows a store to a line that stays in our cache (a few ns), the
 * pair gained nothing on B14, and membarrier costs ~7 us per sleep on a
 * 2-vCPU VM, where a stage may sleep every few batches.
 *
 * Thresholds: each sleeper also announces the counter value it waits for
 * (room_at: a head value; items_at: a tail value), relaxed, published by
 * its seq_cst store of need; the waker loads need with acquire before the
 * threshold and wakes only once its counter reached it (the end always
 * wakes the reader), and the sleeper's re-check asks for the same amount,
 * so the Dekker argument holds for the store that reaches the threshold.
 * Both sides clear their own need word when they stop waiting (a stale 1
 * only costs the other side a spurious wake, or a threshold check).

 * quit (close / halt_upstream): fetch_or the flag, then gen++ on the room
 * word and futex_wake, all seq_cst, unconditionally.  The thread reads its
 * ticket (seq_cst) before re-checking quit (seq_cst): if the bump is
 * after the ticket, futex_wait returns; if before, so is the flag, and the
 * re-check sees it.
 *
 * Event loops (fo_iter_fd / fo_iter_arm): the thread peeks at the waker's
 * armed word after the same fence and calls fo__waker_signal() only if it
 * is set; st_arm() arms (seq_cst store and fence in fo__waker_prepare) and
 * then re-checks tail and term, so either the peek sees the arm or the
 * re-check sees the item.
 */
#include <sched.h>
#include <string.h>

#include <fanout/pipeline.h>
#include "iter_impl.h"

#define SPIN_ROUNDS    4     /* brief spin: 1+2+4+8 pauses between checks (~0.4 us) */
#define YIELDS         16    /* then sched_yield()s while they run another thread */
#define YIELD_ALONE_NS 3000  /* a yield back sooner ran nobody (alone: ~0.4-1.5 us) */
#define ITEMS_WAIT_NS  50000 /* the reader waits for a batch of items: at most this */
/* The reader's own timeout for a batch: a safety net past the next scheduler tick (see
 * ROOM_WAIT_NS).  The ITEMS_WAIT_NS bound is kept by the thread: it wakes a reader that has
 * waited that long when it queues an item, and before a pull that would block. */
#define ITEMS_SLEEP_NS 10000000
/* The thread waits for a batch of room at most this long, then for one slot.  Past
 * the next scheduler tick (4 ms at HZ=250): a sooner timeout is the CPU's earliest
 * timer, so arming and cancelling it reprograms the clock event on every sleep
 * (~10 us of CPU per sleep on the 2-vCPU VM, against ~1 us past the tick). */
#define ROOM_WAIT_NS 10000000

#define QUIT_STOP 1u /* the output was closed */
#define QUIT_HALT 2u /* halt_upstream: the stage reading it failed or closed */

#define NO_STAGE SIZE_MAX

#define READY_ITEM 1
#define READY_END  2

struct stage;

struct fo_pipeline {
	pthread_mutex_t mu;
	struct stage **stages; /* under mu: open stages, NULL when closed */
	size_t nstages, cap;
	uint64_t halt_pass; /* under mu: numbers the passes of halt_upstream */
	fo_pipeline_opts o;
	atomic_int refs; /* handle + open stages */
};

struct slot {
	void *item;
	bool is_err;
};

/* Each group of fields is written by a different side: see the top. */
struct stage {
	fo_iter it; /* first: the vtable casts */
	/* Set before the thread starts, then read-only. */
	fo_pipeline *p;
	size_t idx;
	size_t n;
	struct slot *q; /* ring of n */
	fo_item_free_fn in_free;
	void *in_ctx;
	bool hook; /* p->o.progress set */
	/* The thread's until it ends (the reader's before start and after join). */
	fo_iter *src;
	fo_error err; /* the failure (message owned: msg), written before term */
	char *msg;
	/* The reader's. */
	bool started, joined;
	pthread_t th;
	/* Written by the reader under p->mu, read by halts under p->mu: the
	 * stage whose thread reads this output (NO_STAGE: another thread). */
	size_t read_by;
	uint64_t halt_mark; /* under p->mu: the last halt_upstream pass that reached it */
	/* Rarely written. */
	_Atomic uint32_t quit; /* QUIT_*: close / halt_upstream */
	_Atomic int term;      /* 0, FO_END or FO_FAILED: after the last tail */
	struct fo__waker wk;   /* armed: peeked by the thread after each store */

	/* The thread's line. */
	_Atomic size_t tail FO_ALIGNED; /* items ever queued (n_in) */
	size_t head_seen;               /* a past value of head */
	size_t wpos;                    /* tail % n */
	_Atomic uint32_t blocked;       /* 1: in (or entering) a pull that may block */

	/* The reader's line. */
	_Atomic size_t head FO_ALIGNED; /* items ever read (n_out) */
	size_t tail_seen;               /* a past value of tail */
	size_t rpos;                    /* head % n */

	/* The reader asleep for items (written around sleeps only). */
	_Atomic uint32_t need_items FO_ALIGNED;
	_Atomic uint32_t items_gen;
	_Atomic size_t items_at;      /* wake it once tail reaches this (or at the end) */
	_Atomic uint64_t items_since; /* when it began to wait (fo__now_ns) */

	/* The thread asleep for room (written around sleeps only). */
	_Atomic uint32_t need_room FO_ALIGNED;
	_Atomic uint32_t room_gen;
	_Atomic size_t room_at; /* wake it once head reaches this */
};

void fo_pipeline_opts_init(fo_pipeline_opts *o)
{
	if (o)
		memset(o, 0, sizeof(*o));
}

static void group_unref(fo_pipeline *p)
{
	/* acq_rel: the last one sees every write made under the other refs. */
	if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
		return;
	pthread_mutex_destroy(&p->mu);
	fo__free(p->stages);
	fo__free(p);
}

/* Stop the thread before its next pull, waking it if it sleeps for room. */
static void stage_quit(struct stage *s, uint32_t why)
{
	/* seq_cst: the flag before the bump (see the top). */
	atomic_fetch_or_explicit(&s->quit, why, memory_order_seq_cst);
	/* seq_cst: after the flag: a sleeper's ticket is stale or it sees the flag. */
	atomic_fetch_add_explicit(&s->room_gen, 1, memory_order_seq_cst);
	fo__futex_wake_all(&s->room_gen);
}

/* The thread of the stage running on this thread (NULL on other threads). */
static _Thread_local struct stage *this_stage;

/* Before the reader of @s may wait for its items: record which stage's
 * thread it is (what halt_upstream follows).  Cheap when unchanged. */
static void note_reader(struct stage *s)
{
	struct stage *me = this_stage;
	size_t by = me && me->p == s->p ? me->idx : NO_STAGE;
	if (fo__likely(s->read_by == by)) /* ours: only the reader writes it */
		return;
	pthread_mutex_lock(&s->p->mu);
	s->read_by = by;
	pthread_mutex_unlock(&s->p->mu);
}

/*
 * Stage @k failed or was closed: halt every stage whose output its thread
 * reads, and theirs, transitively - and nothing else (a stage read by the
 * application, a join helper or another branch is not upstream of @k).
 */
static void halt_upstream(fo_pipeline *p, size_t k)
{
	pthread_mutex_lock(&p->mu); /* keeps those stages open while we touch them */
	uint64_t pass = ++p->halt_pass;
	p->stages[k]->halt_mark = pass;
	for (bool more = true; more;) { /* a fixpoint: readers may be numbered after */
		more = false;
		for (size_t i = 0; i < p->nstages; i++) {
			struct stage *u = p->stages[i];
			if (!u || u->halt_mark == pass || u->read_by == NO_STAGE)
				continue;
			struct stage *r = p->stages[u->read_by];
			if (r && r->halt_mark == pass) {
				u->halt_mark = pass;
				stage_quit(u, QUIT_HALT);
				more = true;
			}
		}
	}
	pthread_mutex_unlock(&p->mu);
}

static void fill_progress(fo_progress *pr, size_t tail, size_t head, int term)
{
	pr->in = tail;
	pr->out = head;
	pr->failed = term == FO_FAILED;
	pr->in_flight = tail - head;
}

static void report(struct stage *s, const fo_progress *pr)
{
	s->p->o.progress(s->p->o.progress_ctx, s->idx, pr);
}

static void set_err(struct stage *s, int code, int sys_errno, const char *msg)
{
	s->msg = fo__strdup(msg ? msg : fo_strerror(code));
	s->err.code = code ? code : FO_FAILED;
	s->err.sys_errno = sys_errno;
	s->err.message = s->msg ? s->msg : fo_strerror(s->err.code);
}

/* Items (for the reader) or free slots (for the thread) a waiting side
 * waits for before it takes fewer: half the ring. */
static inline size_t batch(const struct stage *s)
{
	return s->n > 1 ? s->n / 2 : 1;
}

/* The first, short part of a brief wait: pause with backoff. */
static inline void backoff(unsigned spin)
{
	for (unsigned k = 1u << spin; k; k--)
		fo__cpu_relax();
}

/* The second part: hand the CPU to another runnable thread.  False when the
 * yield came back at once (nobody else ran): then the waiter should sleep,
 * leaving the CPU idle so the scheduler can move a runnable thread here,
 * rather than keep it busy with yields. */
static bool yield_ran_another(void)
{
	uint64_t t = fo__now_ns();
	sched_yield();
	return fo__now_ns() - t >= YIELD_ALONE_NS;
}

/* ---- the thread (producer) ---------------------------------------------- */

/* At least @want free slots for items from @tail on? */
static inline bool has_room(struct stage *s, size_t tail, size_t want)
{
	/* acquire: the reader is done with the slots below head. */
	s->head_seen = atomic_load_explicit(&s->head, memory_order_acquire);
	return s->n - (tail - s->head_seen) >= want;
}

/* Until the ring has room for item @tail or the stage must quit. */
static void wait_room(struct stage *s, size_t tail)
{
	size_t want = batch(s);
	bool go_on = true;
	for (unsigned i = 0; go_on && i < SPIN_ROUNDS + YIELDS; i++) {
		if (i < SPIN_ROUNDS)
			backoff(i);
		else
			go_on = yield_ran_another();
		/* relaxed quit: a flag, seen soon enough (the sleep below re-checks it) */
		if (has_room(s, tail, want) || atomic_load_explicit(&s->quit, memory_order_relaxed))
			return;
	}
	uint64_t until = want > 1 ? fo__now_ns() + ROOM_WAIT_NS : FO__NO_DEADLINE;
	for (;;) {
		/* seq_cst: the ticket before the announcement. */
		uint32_t g = atomic_load_explicit(&s->room_gen, memory_order_seq_cst);
		/* relaxed: published by the store of need_room. */
		atomic_store_explicit(&s->room_at, tail - s->n + want, memory_order_relaxed);
		/* seq_cst: the announcement, after the ticket and room_at. */
		atomic_store_explicit(&s->need_room, 1, memory_order_seq_cst);
		/* The announcement before the re-check (Dekker with wake_room's caller). */
		atomic_thread_fence(memory_order_seq_cst);
		/* seq_cst quit: after the ticket (see stage_quit). */
		if (has_room(s, tail, want) || atomic_load_explicit(&s->quit, memory_order_seq_cst))
			break;
		if (fo__futex_wait(&s->room_gen, g, until) == FO_TIMEDOUT) {
			want = 1; /* the reader stopped short of a batch: one slot will do */
			until = FO__NO_DEADLINE;
		}
	}
	atomic_store_explicit(&s->need_room, 0, memory_order_relaxed); /* awake: ours to clear */
}

enum wake_why { WAKE_ITEM, WAKE_BLOCK, WAKE_END };

/* The reader sleeps for items: wake it if @tail reached its threshold or it
 * has waited ITEMS_WAIT_NS (WAKE_ITEM), if items are pending (WAKE_BLOCK: the
 * thread is about to block), or always (WAKE_END). */
static void wake_items(struct stage *s, size_t tail, enum wake_why why)
{
	/* acquire: items_at and items_since were stored before the announcement. */
	if (!atomic_load_explicit(&s->need_items, memory_order_acquire))
		return;
	size_t at = atomic_load_explicit(&s->items_at, memory_order_relaxed); /* see above */
	if (why == WAKE_ITEM && (ptrdiff_t)(tail - at) < 0) {
		/* relaxed: published with items_at */
		uint64_t since = atomic_load_explicit(&s->items_since, memory_order_relaxed);
		if (fo__now_ns() - since < ITEMS_WAIT_NS)
			return; /* not the batch it waits for yet, nor late */
	}
	/* relaxed head: the reader sleeps, so it moves no more; an old value
	 * only costs a spurious wake. */
	if (why == WAKE_BLOCK && atomic_load_explicit(&s->head, memory_order_relaxed) == tail)
		return; /* nothing pending: the next item or the end will wake it */
	/* seq_cst: the clear before the bump. */
	if (atomic_exchange_explicit(&s->need_items, 0, memory_order_seq_cst)) {
		/* seq_cst: after the clear, so a sleeper's ticket is stale. */
		atomic_fetch_add_explicit(&s->items_gen, 1, memory_order_seq_cst);
		fo__futex_wake_all(&s->items_gen);
	}
}

/* After the store of @tail (or of term, @end): wake the reader if it sleeps
 * for what is there now, or is armed. */
static inline void publish(struct stage *s, size_t tail, bool end)
{
	/* The store before the sleeper checks (Dekker with wait_items / st_arm). */
	atomic_thread_fence(memory_order_seq_cst);
	/* relaxed peek: the fence orders it; wake_items decides. */
	if (fo__unlikely(atomic_load_explicit(&s->need_items, memory_order_relaxed)))
		wake_items(s, tail, end ? WAKE_END : WAKE_ITEM);
	/* relaxed peek: the fence orders it; fo__waker_signal decides. */
	if (fo__unlikely(atomic_load_explicit(&s->wk.armed, memory_order_relaxed)))
		fo__waker_signal(&s->wk);
}

/* The thread may block next (an empty source, closing it): announce it and
 * wake a reader asleep with items pending.  Dekker with wait_items: either
 * the peek sees the reader's announcement, or its re-check sees blocked. */
static void about_to_block(struct stage *s, size_t tail)
{
	/* seq_cst: the announcement (cleared, relaxed, when the pull returns). */
	atomic_store_explicit(&s->blocked, 1, memory_order_seq_cst);
	/* blocked before the peek at need_items. */
	atomic_thread_fence(memory_order_seq_cst);
	/* relaxed peek: the fence orders it; wake_items decides. */
	if (atomic_load_explicit(&s->need_items, memory_order_relaxed))
		wake_items(s, tail, WAKE_BLOCK);
}

/* The next item of the source: a try first; only if that finds nothing,
 * about_to_block() and the blocking pull. */
static int pull(struct stage *s, size_t tail, void **item, bool *is_err)
{
	int rc = fo__iter_pull(s->src, item, 0, is_err);
	if (rc != FO_EMPTY && rc != FO_TIMEDOUT)
		return rc;
	about_to_block(s, tail);
	rc = fo__iter_pull(s->src, item, FO__NO_DEADLINE, is_err);
	/* relaxed: a stale 1 only makes the reader take a partial batch. */
	atomic_store_explicit(&s->blocked, 0, memory_order_relaxed);
	return rc;
}

static void *stage_main(void *arg)
{
	struct stage *s = arg;
	size_t tail = 0;
	int end;
	fo_progress pr;
	this_stage = s;
	for (;;) {
		if (tail - s->head_seen >= s->n)
			wait_room(s, tail);
		if (atomic_load_explicit(&s->quit, memory_order_relaxed)) { /* relaxed: a flag */
			set_err(s, FO_ECANCELED, 0, "pipeline stage stopped");
			end = FO_FAILED;
			break;
		}
		void *item;
		bool is_err;
		int rc = pull(s, tail, &item, &is_err);
		if (rc == FO_END) {
			end = FO_END;
			break;
		}
		if (rc != FO_OK) {
			const fo_error *e = fo_iter_error(s->src);
			set_err(s, e ? e->code : FO_FAILED, e ? e->sys_errno : 0,
			        e ? e->message : NULL);
			end = FO_FAILED;
			/* The root error: stop everything upstream (relaxed: a flag). */
			if (!(atomic_load_explicit(&s->quit, memory_order_relaxed) & QUIT_HALT))
				halt_upstream(s->p, s->idx);
			break;
		}
		/* The room is ours: only this thread adds items. */
		s->q[s->wpos].item = item;
		s->q[s->wpos].is_err = is_err;
		if (++s->wpos == s->n)
			s->wpos = 0;
		/* release: the slot before the tail that shows it. */
		atomic_store_explicit(&s->tail, ++tail, memory_order_release);
		publish(s, tail, false);
		if (s->hook) {
			/* relaxed: a snapshot (head <= tail: the reader took only these) */
			fill_progress(&pr, tail,
			              atomic_load_explicit(&s->head, memory_order_relaxed), 0);
			report(s, &pr);
		}
	}
	/* Join everything upstream before the end becomes visible (closing may
	 * block: the reader gets what is there first). */
	about_to_block(s, tail);
	fo_iter_close(s->src);
	s->src = NULL;
	/* release: every item and the error before the end. */
	atomic_store_explicit(&s->term, end, memory_order_release);
	publish(s, tail, true);
	if (s->hook) {
		fill_progress(&pr, tail, atomic_load_explicit(&s->head, memory_order_relaxed),
		              end); /* relaxed: a snapshot */
		report(s, &pr);
	}
	return NULL;
}

/* ---- the reader (consumer) ----------------------------------------------- */

/* A thread that cannot start ends the stage with FO_ESYS. */
static void start(struct stage *s)
{
	s->started = true;
	note_reader(s);
	int e = pthread_create(&s->th, NULL, stage_main, s);
	if (e != 0) {
		s->joined = true; /* nothing to join */
		fo_iter_close(s->src);
		s->src = NULL;
		set_err(s, FO_ESYS, e, "pipeline stage thread not started");
		atomic_store_explicit(&s->term, FO_FAILED, memory_order_relaxed); /* no thread */
	}
}

/* READY_ITEM (at least @want items from @head on, or fewer before the end;
 * tail_seen updated), READY_END or 0. */
static inline int poll_items(struct stage *s, size_t head, size_t want)
{
	/* acquire: the slots before the tail that shows them. */
	size_t t = atomic_load_explicit(&s->tail, memory_order_acquire);
	if (t - head < want) {
		/* acquire: term comes after the last tail, so a tail loaded
		 * after it is final. */
		if (!atomic_load_explicit(&s->term, memory_order_acquire))
			return 0;
		t = atomic_load_explicit(&s->tail, memory_order_acquire);
		if (t == head)
			return READY_END;
	}
	s->tail_seen = t;
	return READY_ITEM;
}

/* The ring is empty at @head: READY_ITEM, READY_END or 0 (@deadline passed). */
static int wait_items(struct stage *s, size_t head, uint64_t deadline)
{
	int r = poll_items(s, head, 1);
	if (r || deadline == 0)
		return r;
	note_reader(s); /* a halt of the stage reading us must reach us */
	size_t want = batch(s);
	uint64_t t0 = 0;
	bool go_on = true;
	for (unsigned i = 0; go_on && i < SPIN_ROUNDS + YIELDS; i++) {
		if (i < SPIN_ROUNDS) {
			backoff(i);
		} else {
			uint64_t now = fo__now_ns();
			if (now >= deadline)
				break;
			if (!t0)
				t0 = now;
			else if (now - t0 >= ITEMS_WAIT_NS)
				want = 1; /* waited long enough for a batch: take what is there */
			go_on = yield_ran_another();
		}
		if ((r = poll_items(s, head, want)))
			return r;
	}
	/* Sleep for the batch: woken when it is there, at the end, when the
	 * thread is about to block, or by the thread's next item once we have
	 * waited ITEMS_WAIT_NS; ITEMS_SLEEP_NS at most, then for one item. */
	uint64_t since = t0 ? t0 : fo__now_ns();
	uint64_t until = deadline;
	if (want > 1 && since + ITEMS_SLEEP_NS < until)
		until = since + ITEMS_SLEEP_NS;
	for (;;) {
		/* seq_cst: the ticket before the announcement. */
		uint32_t g = atomic_load_explicit(&s->items_gen, memory_order_seq_cst);
		/* relaxed: published by the store of need_items. */
		atomic_store_explicit(&s->items_at, head + want, memory_order_relaxed);
		atomic_store_explicit(&s->items_since, since, memory_order_relaxed); /* the same */
		/* seq_cst: the announcement, after the ticket and items_at. */
		atomic_store_explicit(&s->need_items, 1, memory_order_seq_cst);
		/* The announcement before the re-check (Dekker with publish and
		 * about_to_block). */
		atomic_thread_fence(memory_order_seq_cst);
		if ((r = poll_items(s, head, want)))
			break;
		/* seq_cst: after the announcement.  The thread blocks: no batch comes
		 * soon, take what is there. */
		if (want > 1 && atomic_load_explicit(&s->blocked, memory_order_seq_cst) &&
		    (r = poll_items(s, head, 1)))
			break;
		int w = fo__futex_wait(&s->items_gen, g, until);
		if ((r = poll_items(s, head, 1)))
			break;
		if (w == FO_TIMEDOUT) {
			if (until == deadline)
				break; /* the caller's deadline */
			want = 1;      /* the batch is late: the next item will do */
			until = deadline;
		}
	}
	atomic_store_explicit(&s->need_items, 0, memory_order_relaxed); /* awake: ours to clear */
	return r;
}

/* After a head store: wake the thread if it sleeps for room up to @head. */
static void wake_room(struct stage *s, size_t head)
{
	/* acquire: room_at was stored before the announcement. */
	if (!atomic_load_explicit(&s->need_room, memory_order_acquire))
		return;
	size_t at = atomic_load_explicit(&s->room_at, memory_order_relaxed); /* see above */
	if ((ptrdiff_t)(head - at) < 0)
		return; /* not the room it waits for yet */
	/* seq_cst: the clear before the bump. */
	if (atomic_exchange_explicit(&s->need_room, 0, memory_order_seq_cst)) {
		/* seq_cst: after the clear, so a sleeper's ticket is stale. */
		atomic_fetch_add_explicit(&s->room_gen, 1, memory_order_seq_cst);
		fo__futex_wake_all(&s->room_gen);
	}
}

static int st_next(fo_iter *it, void **item, uint64_t deadline)
{
	struct stage *s = (struct stage *)it;
	if (fo__unlikely(!s->started))
		start(s);
	size_t head = atomic_load_explicit(&s->head, memory_order_relaxed); /* ours */
	if (head == s->tail_seen) {
		int r = wait_items(s, head, deadline);
		if (r == 0)
			return deadline == 0 ? FO_EMPTY : FO_TIMEDOUT;
		if (r == READY_END) {
			if (!s->joined) {
				pthread_join(s->th, NULL);
				s->joined = true;
			}
			/* relaxed: poll_items acquired it */
			int term = atomic_load_explicit(&s->term, memory_order_relaxed);
			return term == FO_END ? FO_END : fo__iter_fail_from(it, &s->err);
		}
	}
	*item = s->q[s->rpos].item;
	it->last_err = s->q[s->rpos].is_err;
	if (++s->rpos == s->n)
		s->rpos = 0;
	/* release: done with the slot before the thread may refill it. */
	atomic_store_explicit(&s->head, ++head, memory_order_release);
	/* The head store before the sleeper check (Dekker with wait_room). */
	atomic_thread_fence(memory_order_seq_cst);
	/* relaxed peek: the fence orders it; wake_room decides. */
	if (fo__unlikely(atomic_load_explicit(&s->need_room, memory_order_relaxed)))
		wake_room(s, head);
	if (s->hook) {
		fo_progress pr;
		/* relaxed: a snapshot (tail - head <= n: only we move head) */
		fill_progress(&pr, atomic_load_explicit(&s->tail, memory_order_relaxed), head, 0);
		report(s, &pr);
	}
	return FO_OK;
}

static void st_close(fo_iter *it)
{
	struct stage *s = (struct stage *)it;
	fo_pipeline *p = s->p;
	stage_quit(s, QUIT_STOP);
	fo__waker_stop(&s->wk);
	halt_upstream(p, s->idx); /* everything upstream stops too */
	if (s->started && !s->joined)
		pthread_join(s->th, NULL);
	if (s->src) /* never started */
		fo_iter_close(s->src);
	/* relaxed: joined, so the thread's stores are visible. */
	size_t head = atomic_load_explicit(&s->head, memory_order_relaxed);
	size_t tail = atomic_load_explicit(&s->tail, memory_order_relaxed);
	for (; head != tail; head++) {
		struct slot *x = &s->q[s->rpos];
		if (x->is_err)
			fo_error_item_free(x->item);
		else if (s->in_free)
			s->in_free(x->item, s->in_ctx);
		if (++s->rpos == s->n)
			s->rpos = 0;
	}
	pthread_mutex_lock(&p->mu);
	p->stages[s->idx] = NULL;
	pthread_mutex_unlock(&p->mu);
	fo__waker_fini(&s->wk);
	fo__free(s->msg);
	fo__free(s->q);
	fo__iter_fini(it);
	fo__free(s);
	group_unref(p);
}

static int st_fd(fo_iter *it)
{
	struct stage *s = (struct stage *)it;
	return fo__waker_fd(&s->wk);
}

static int st_watch(fo_iter *it, void (*fn)(void *arg), void *arg)
{
	struct stage *s = (struct stage *)it;
	return fo__waker_watch(&s->wk, fn, arg);
}

static int st_arm(fo_iter *it)
{
	struct stage *s = (struct stage *)it;
	if (!s->started)
		start(s);
	int rc = fo__waker_prepare(&s->wk); /* armed, then a seq_cst fence */
	if (rc == FO_OK) {
		/* relaxed head: ours */
		rc = poll_items(s, atomic_load_explicit(&s->head, memory_order_relaxed), 1) != 0;
		if (rc)
			fo__waker_cancel(&s->wk);
	}
	return rc;
}

static const struct fo__iter_vt stage_vt = {
    .name = "pipeline_stage",
    .next = st_next,
    .close = st_close,
    .fd = st_fd,
    .arm = st_arm,
    .watch = st_watch,
};

int fo_pipeline_create(fo_pipeline **out, const fo_pipeline_opts *o)
{
	if (!out)
		return FO_EINVAL;
	fo_pipeline *p = fo__zalloc(sizeof(*p));
	if (!p)
		return FO_ENOMEM;
	if (pthread_mutex_init(&p->mu, NULL) != 0) {
		fo__free(p);
		return FO_ENOMEM;
	}
	if (o)
		p->o = *o;
	atomic_init(&p->refs, 1);
	*out = p;
	return FO_OK;
}

int fo_pipeline_buffer(fo_pipeline *p, fo_iter **out, fo_iter *src, size_t n)
{
	if (!p || !out || !src || n == 0 || src->borrows)
		return FO_EINVAL;
	if (n > SIZE_MAX / sizeof(struct slot))
		return FO_ENOMEM;
	struct stage *s = fo__zalloc(sizeof(*s));
	if (!s)
		return FO_ENOMEM;
	s->q = fo__alloc(n * sizeof(struct slot));
	if (!s->q)
		goto nomem;
	pthread_mutex_lock(&p->mu);
	if (p->nstages == p->cap) {
		size_t ncap = p->cap ? 2 * p->cap : 4;
		struct stage **v = fo__alloc(ncap * sizeof(*v));
		if (!v) {
			pthread_mutex_unlock(&p->mu);
			goto nomem;
		}
		if (p->nstages)
			memcpy(v, p->stages, p->nstages * sizeof(*v));
		fo__free(p->stages);
		p->stages = v;
		p->cap = ncap;
	}
	s->idx = p->nstages;
	s->read_by = NO_STAGE;
	p->stages[p->nstages++] = s;
	atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed); /* under p->mu */
	pthread_mutex_unlock(&p->mu);

	fo__iter_init(&s->it, &stage_vt, src->item_free, src->item_ctx);
	s->it.emits_errors = src->emits_errors;
	fo__waker_init(&s->wk);
	s->p = p;
	s->hook = p->o.progress != NULL;
	s->src = src;
	s->in_free = src->item_free;
	s->in_ctx = src->item_ctx;
	s->n = n;
	*out = &s->it;
	return FO_OK;
nomem:
	fo__free(s->q);
	fo__free(s);
	return FO_ENOMEM;
}

int fo_pipeline_progress_get(fo_pipeline *p, size_t stage, fo_progress *out)
{
	if (!p || !out)
		return FO_EINVAL;
	int rc = FO_EINVAL;
	pthread_mutex_lock(&p->mu);
	if (stage < p->nstages && p->stages[stage]) {
		struct stage *s = p->stages[stage];
		/* A consistent pair: head did not move while tail was read
		 * (seq_cst: one order for the three loads), so tail - head <= n. */
		size_t h, t;
		for (int i = 0;; i++) {
			h = atomic_load_explicit(&s->head, memory_order_seq_cst);
			t = atomic_load_explicit(&s->tail, memory_order_seq_cst);
			if (atomic_load_explicit(&s->head, memory_order_seq_cst) == h)
				break;
			if (i == 16) { /* a busy reader: bound the snapshot instead */
				if (t - h > s->n)
					h = t - s->n;
				break;
			}
		}
		/* acquire: the end after the counters it follows */
		fill_progress(out, t, h, atomic_load_explicit(&s->term, memory_order_acquire));
		rc = FO_OK;
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}

void fo_pipeline_destroy(fo_pipeline *p)
{
	if (p)
		group_unref(p);
}
