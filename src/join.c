/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * join.c - dynamic merge.
 *
 * Paths into the reader:
 *   q      an internal stream (bounded by opts.buffer) that helper threads
 *          push into; the reader holds its one active cursor `qc`.  q has no
 *          item_free: an item read from qc belongs to the join's reader.  A helper
 *          keeps its source's order because it is that source's only pusher.
 *   side   a short mutex-protected list for error items (rare).  A helper
 *          appends there only after pushing its earlier items, and the
 *          reader reads q once more after seeing side non-empty, so a
 *          source's error item never overtakes its items.
 *   rcs    cursor sources, read directly by the reader (no thread).
 *
 * Waiting: one futex word `gen`.  Everything that can make the reader's
 * next read succeed bumps it and wakes: qc's and every cursor source's
 * notify hook (producer threads, only when the reader armed them), and
 * helpers/add/seal (under mu).  The reader loads gen, re-checks everything
 * (arming the cursors, reading the rest under mu), then sleeps on gen: a
 * change after the load makes the futex return at once.
 *
 * Event loops (fo_iter_fd / fo_iter_arm on the output): the same events,
 * through a waker.  bump() signals it after the futex wake; arm() arms it
 * first, then re-checks exactly what a try read would find (q, the side
 * list, every cursor source, pending adoptions, the end), arming q's and
 * the sources' hooks on the way.  Either a bump sees the waker armed, or
 * the re-check sees its change (seq_cst fences on both sides, or mu).
 */
#include <string.h>

#include <fanout/join.h>
#include "iter_impl.h"

struct jsrc {
	struct jsrc *next;
	fo_join *j;
	fo_iter *it;
	fo_cursor *cur;      /* cursor source read by the reader, or NULL */
	fo_item_free_fn rel; /* how to let go of @it: close it, or the outer's destructor */
	void *rel_ctx;
	pthread_t th;
	bool done; /* helper: finished (under mu) */
};

struct side {
	struct side *next;
	void *item;
};

struct fo_join {
	fo_iter it; /* the output (first: the vtable casts) */
	fo_join_policy policy;
	fo_stream *q;
	fo_cursor *qc;
	_Atomic uint32_t gen;
	atomic_bool stop;       /* helpers: stop pulling */
	atomic_size_t nside;    /* items on the side list */
	atomic_int refs;        /* handle + iterator */
	atomic_size_t nthreads; /* helpers started (a statistic) */
	struct fo__waker w;     /* event-loop readiness of the output */

	pthread_mutex_t mu;
	struct jsrc *helpers;               /* every helper source (under mu) */
	struct jsrc *newcur;                /* cursor sources not yet picked up (under mu) */
	struct side *side_head, *side_tail; /* under mu */
	size_t live;                        /* sources not ended (under mu) */
	bool sealed;                        /* under mu */
	bool failed;                        /* under mu: fail fast triggered */
	bool iter_closed;                   /* under mu */
	bool iter_taken;                    /* handle's thread */

	/* reader only */
	struct jsrc **rcs;
	size_t nrcs, caprcs, rr;
	bool turn;

	/* join_iters */
	fo_iter *outer;
	pthread_t outer_th;
	bool has_outer;
};

void fo_join_opts_init(fo_join_opts *o)
{
	if (o)
		memset(o, 0, sizeof(*o));
}

/* Something changed: wake a sleeping reader. */
static void bump(fo_join *j)
{
	/* seq_cst RMW: ordered after the change the caller made (see file comment). */
	atomic_fetch_add_explicit(&j->gen, 1, memory_order_seq_cst);
	fo__futex_wake_all(&j->gen);
	fo__waker_signal(&j->w); /* a fence and a load unless armed */
}

static void notify_cb(void *arg)
{
	bump(arg);
}

static void join_unref(fo_join *j)
{
	/* acq_rel: the last owner sees everything the other one wrote. */
	if (atomic_fetch_sub_explicit(&j->refs, 1, memory_order_acq_rel) != 1)
		return;
	pthread_mutex_destroy(&j->mu);
	fo__waker_fini(&j->w);
	fo__iter_fini(&j->it);
	fo__free(j);
}

static void release_src(struct jsrc *s)
{
	if (s->it && s->rel)
		s->rel(s->it, s->rel_ctx);
	s->it = NULL;
}

/* First failure wins: stop every helper, fail q after what it holds. */
static void fail_fast(fo_join *j, const fo_error *e)
{
	pthread_mutex_lock(&j->mu);
	bool first = !j->failed;
	j->failed = true;
	pthread_mutex_unlock(&j->mu);
	if (!first)
		return;
	atomic_store_explicit(&j->stop, true, memory_order_relaxed); /* q's failure orders it */
	/* Wakes helpers waiting for room (they get FO_ECLOSED) and the reader. */
	fo__stream_fail_err(j->q, e); /* code, sys_errno and message */
	bump(j);
}

/* Queue an error item on the side list; false on ENOMEM (then it is freed). */
static bool side_push(fo_join *j, void *item)
{
	struct side *n = fo__alloc(sizeof(*n));
	if (!n) {
		fo_error_item_free(item);
		return false;
	}
	n->item = item;
	n->next = NULL;
	pthread_mutex_lock(&j->mu);
	if (j->side_tail)
		j->side_tail->next = n;
	else
		j->side_head = n;
	j->side_tail = n;
	/* release: the reader that sees the count also sees our earlier pushes to q. */
	atomic_fetch_add_explicit(&j->nside, 1, memory_order_release);
	pthread_mutex_unlock(&j->mu);
	bump(j);
	return true;
}

static void *side_pop(fo_join *j)
{
	pthread_mutex_lock(&j->mu);
	struct side *n = j->side_head;
	if (n) {
		j->side_head = n->next;
		if (!j->side_head)
			j->side_tail = NULL;
		atomic_fetch_sub_explicit(
		    &j->nside, 1, memory_order_relaxed); /* under j->mu; readers only peek */
	}
	pthread_mutex_unlock(&j->mu);
	if (!n)
		return NULL;
	void *item = n->item;
	fo__free(n);
	return item;
}

/* A source failed with @e: the policy.  Continue mode queues an error item. */
static void source_error(fo_join *j, const fo_error *e, void *input, fo_item_free_fn input_free,
                         void *input_ctx)
{
	if (j->policy == FO_JOIN_CONTINUE) {
		fo_error_item *ei = fo__error_item_new(e, input, input_free, input_ctx);
		if (ei && side_push(j, ei))
			return;
		fo_error nomem = {FO_ENOMEM, 0, "join: no memory for an error item"};
		if (!ei && input && input_free)
			input_free(input, input_ctx);
		fail_fast(j, &nomem);
		return;
	}
	if (input && input_free)
		input_free(input, input_ctx);
	fail_fast(j, e);
}

static void source_ended(fo_join *j)
{
	pthread_mutex_lock(&j->mu);
	j->live--;
	pthread_mutex_unlock(&j->mu);
	bump(j);
}

/* ------------------------------------------------------------------------ */
/* Helper threads                                                            */

static void *helper_main(void *arg)
{
	struct jsrc *s = arg;
	fo_join *j = s->j;
	for (;;) {
		if (atomic_load_explicit(
		        &j->stop, memory_order_relaxed)) /* a peek at the stop flag; re-checked */
			break;
		void *x;
		bool is_err;
		int rc = fo__iter_pull(s->it, &x, FO__NO_DEADLINE, &is_err);
		if (rc == FO_OK && is_err) {
			if (!side_push(j, x)) {
				fo_error e = {FO_ENOMEM, 0, "join: no memory"};
				fail_fast(j, &e);
				break;
			}
			continue;
		}
		if (rc == FO_OK) {
			int prc = fo_stream_push(j->q, x);
			if (prc == FO_OK)
				continue;
			fo_iter_release(s->it, x);
			if (prc == FO_ENOMEM) {
				fo_error e = {FO_ENOMEM, 0, "join: no memory to queue an item"};
				fail_fast(j, &e);
			}
			break; /* FO_ECLOSED: stopped */
		}
		if (rc == FO_FAILED)
			source_error(j, fo_iter_error(s->it), NULL, NULL, NULL);
		break;
	}
	/* Done with the source: let it go now (a long join must not pile them up). */
	release_src(s);
	source_ended(j);
	pthread_mutex_lock(&j->mu);
	s->done = true;
	pthread_mutex_unlock(&j->mu);
	return NULL;
}

/* Join the helpers that finished (reader or close).  @all: wait for every one. */
static void reap(fo_join *j, bool all)
{
	for (;;) {
		struct jsrc *victim = NULL, **pp;
		pthread_mutex_lock(&j->mu);
		for (pp = &j->helpers; *pp; pp = &(*pp)->next) {
			if (all || (*pp)->done) {
				victim = *pp;
				*pp = victim->next;
				break;
			}
		}
		pthread_mutex_unlock(&j->mu);
		if (!victim)
			return;
		pthread_join(victim->th, NULL);
		release_src(victim); /* normally done by the helper already */
		fo__free(victim);
	}
}

/* ------------------------------------------------------------------------ */
/* Adding sources                                                            */

static int check_src(fo_join *j, fo_iter *src)
{
	if (!src || src->borrows)
		return FO_EINVAL;
	if (!fo__same_free(src, j->it.item_free, j->it.item_ctx))
		return FO_EINVAL;
	if (src->emits_errors && j->policy != FO_JOIN_CONTINUE)
		return FO_EINVAL;
	return FO_OK;
}

static int add(fo_join *j, fo_iter *src, fo_item_free_fn rel, void *rel_ctx)
{
	int rc = check_src(j, src);
	if (rc != FO_OK)
		return rc;
	struct jsrc *s = fo__zalloc(sizeof(*s));
	if (!s)
		return FO_ENOMEM;
	s->j = j;
	s->it = src;
	s->rel = rel;
	s->rel_ctx = rel_ctx;
	pthread_mutex_lock(&j->mu);
	if (j->sealed || j->iter_closed) {
		pthread_mutex_unlock(&j->mu);
		fo__free(s);
		return FO_ECLOSED;
	}
	fo_cursor *c = fo__iter_cursor(src);
	/* The adder is the cursor's user until the reader picks it up under mu. */
	if (c && fo_cursor_set_notify(c, notify_cb, j) == FO_OK) {
		s->cur = c;
		s->next = j->newcur;
		j->newcur = s;
	} else {
		if (pthread_create(&s->th, NULL, helper_main, s) != 0) {
			pthread_mutex_unlock(&j->mu);
			fo__free(s);
			return FO_ESYS;
		}
		atomic_fetch_add_explicit(&j->nthreads, 1, memory_order_relaxed); /* stats only */
		s->next = j->helpers;
		j->helpers = s;
	}
	j->live++;
	pthread_mutex_unlock(&j->mu);
	bump(j);
	return FO_OK;
}

int fo_join_add(fo_join *j, fo_iter *src)
{
	if (!j || !src)
		return FO_EINVAL;
	return add(j, src, fo_iter_close_item, NULL);
}

int fo_join_seal(fo_join *j)
{
	if (!j)
		return FO_EINVAL;
	pthread_mutex_lock(&j->mu);
	j->sealed = true;
	pthread_mutex_unlock(&j->mu);
	bump(j);
	return FO_OK;
}

size_t fo_join_threads(const fo_join *j)
{
	return j ? atomic_load_explicit(&j->nthreads, memory_order_relaxed) : 0; /* stats only */
}

/* ------------------------------------------------------------------------ */
/* The reader                                                                */

/* Move newly added cursor sources into the reader's array.  Under mu. */
static bool adopt_locked(fo_join *j)
{
	while (j->newcur) {
		if (j->nrcs == j->caprcs) {
			size_t ncap = j->caprcs ? j->caprcs * 2 : 8;
			struct jsrc **n = fo__alloc(ncap * sizeof(*n));
			if (!n)
				return false; /* try again on the next read */
			if (j->nrcs)
				memcpy(n, j->rcs, j->nrcs * sizeof(*n));
			fo__free(j->rcs);
			j->rcs = n;
			j->caprcs = ncap;
		}
		struct jsrc *s = j->newcur;
		j->newcur = s->next;
		s->next = NULL;
		j->rcs[j->nrcs++] = s;
	}
	return true;
}

static void drop_cursor_src(fo_join *j, size_t i)
{
	struct jsrc *s = j->rcs[i];
	fo_cursor_set_notify(s->cur, NULL, NULL); /* the hook must not outlive j */
	release_src(s);
	fo__free(s);
	j->rcs[i] = j->rcs[--j->nrcs];
}

/* Try the cursor sources once, round robin.  FO_OK: *item; FO_EMPTY: none. */
static int read_cursors(fo_join *j, void **item)
{
	/* Failed fast: no source is read again (q delivers the rest, then the error). */
	if (atomic_load_explicit(&j->stop, memory_order_relaxed))
		return FO_EMPTY;
	size_t n = j->nrcs;
	bool changed = false;
	for (size_t k = 0; k < n && j->nrcs; k++) {
		size_t i = (j->rr + k) % j->nrcs;
		struct jsrc *s = j->rcs[i];
		bool is_err;
		int rc = fo__iter_pull(s->it, item, 0, &is_err);
		if (rc == FO_OK) {
			j->rr = i + 1;
			j->it.last_err = is_err;
			return FO_OK;
		}
		if (rc == FO_EMPTY || rc == FO_TIMEDOUT)
			continue;
		if (rc == FO_FAILED) {
			fo_error e = *fo_iter_error(s->it);
			/* Copy before the source goes: the error item copies the text. */
			source_error(j, &e, NULL, NULL, NULL);
		}
		drop_cursor_src(j, i);
		source_ended(j);
		changed = true;
		/* Index i holds another source now and the modulus changed: scan the
		 * remaining sources again from the start (rare: once per ended
		 * source), so none is skipped and a try read never returns FO_EMPTY
		 * while one has an item (found by tests/fuzz/fuzz_stream). */
		n = j->nrcs;
		k = (size_t)-1;
	}
	/* FO_END: a source ended or failed during the scan, so q (a fail-fast error) or
	 * the side list (an error item) may hold news: the caller reads again. */
	return changed ? FO_END : FO_EMPTY;
}

static int join_next(fo_iter *it, void **item, uint64_t deadline)
{
	fo_join *j = (fo_join *)it;
	for (;;) {
		uint32_t g = atomic_load_explicit(
		    &j->gen, memory_order_seq_cst); /* seq_cst: read before announcing */
		int rc;
		j->turn = !j->turn;
		if (j->turn && read_cursors(j, item) == FO_OK)
			return FO_OK;
		/* acquire: pairs with side_push; the q read below sees earlier pushes. */
		size_t nside = atomic_load_explicit(&j->nside, memory_order_acquire);
		rc = fo_cursor_try_next(j->qc, item);
		if (rc == FO_OK)
			return FO_OK;
		if (nside) {
			void *x = side_pop(j);
			if (x) {
				*item = x;
				it->last_err = true;
				return FO_OK;
			}
		}
		if (rc == FO_FAILED)
			return fo__iter_fail_from(it, fo_cursor_error(j->qc));
		if (!j->turn) {
			rc = read_cursors(j, item);
			if (rc == FO_OK)
				return FO_OK;
			if (rc == FO_END) /* q was read before the news: read it again */
				continue;
		}

		/* Nothing ready: the end, or wait. */
		pthread_mutex_lock(&j->mu);
		bool adopted = j->newcur != NULL && adopt_locked(j);
		bool end = j->sealed && j->live == 0 && j->side_head == NULL;
		pthread_mutex_unlock(&j->mu);
		reap(j, false);
		if (adopted)
			continue;
		if (end) {
			/* Every helper pushed before it ended (seen under mu). */
			rc = fo_cursor_try_next(j->qc, item);
			if (rc == FO_OK)
				return FO_OK;
			if (rc == FO_FAILED)
				return fo__iter_fail_from(it, fo_cursor_error(j->qc));
			return FO_END;
		}
		if (deadline == 0)
			return FO_EMPTY;
		/* Arm every hook; 1 = something arrived meanwhile: read again. */
		bool ready = fo_cursor_arm(j->qc) == 1;
		for (size_t i = 0; !ready && i < j->nrcs; i++)
			ready = fo_cursor_arm(j->rcs[i]->cur) == 1;
		if (ready)
			continue;
		if (fo__futex_wait(&j->gen, g, deadline) == FO_TIMEDOUT)
			return FO_TIMEDOUT;
	}
}

static int join_fd(fo_iter *it)
{
	return fo__waker_fd(&((fo_join *)it)->w);
}

static int join_watch(fo_iter *it, void (*fn)(void *arg), void *arg)
{
	return fo__waker_watch(&((fo_join *)it)->w, fn, arg);
}

static int join_arm(fo_iter *it)
{
	fo_join *j = (fo_join *)it;
	int rc = fo__waker_prepare(&j->w);
	if (rc != FO_OK)
		return rc;
	/* What a try read looks at, in any order; each arm returns 1 or arms its hook. */
	bool ready =
	    atomic_load_explicit(&j->nside, memory_order_acquire) != 0 || fo_cursor_arm(j->qc) == 1;
	/* After a fast failure the sources are not read again (q is failed: ready). */
	if (!atomic_load_explicit(&j->stop, memory_order_relaxed))
		for (size_t i = 0; !ready && i < j->nrcs; i++)
			ready = fo_cursor_arm(j->rcs[i]->cur) == 1;
	if (!ready) {
		pthread_mutex_lock(&j->mu);
		ready = j->newcur != NULL || (j->sealed && j->live == 0 && j->side_head == NULL);
		pthread_mutex_unlock(&j->mu);
	}
	if (ready)
		fo__waker_cancel(&j->w);
	return ready ? 1 : 0;
}

static void join_close(fo_iter *it)
{
	fo_join *j = (fo_join *)it;
	fo__waker_stop(&j->w); /* no hook call after the output is gone */
	pthread_mutex_lock(&j->mu);
	j->iter_closed = true;
	pthread_mutex_unlock(&j->mu);
	atomic_store_explicit(&j->stop, true, memory_order_relaxed);
	/* Wakes helpers waiting for room; their items are released.  No message:
	 * a copy could fail for lack of memory and leave them waiting. */
	fo_stream_fail(j->q, FO_ECANCELED, NULL);
	if (j->has_outer)
		pthread_join(j->outer_th, NULL);
	reap(j, true);
	pthread_mutex_lock(&j->mu);
	adopt_locked(j);
	struct jsrc *orphan = j->newcur; /* only on ENOMEM in adopt */
	j->newcur = NULL;
	pthread_mutex_unlock(&j->mu);
	while (orphan) {
		struct jsrc *n = orphan->next;
		fo_cursor_set_notify(orphan->cur, NULL, NULL);
		release_src(orphan);
		fo__free(orphan);
		orphan = n;
	}
	while (j->nrcs)
		drop_cursor_src(j, j->nrcs - 1);
	fo__free(j->rcs);
	void *x;
	while ((x = side_pop(j)))
		fo_error_item_free(x);
	fo_iter_close(j->outer);
	/* Items queued and never read: ours (helpers are gone, q is failed). */
	while (fo_cursor_try_next(j->qc, &x) == FO_OK)
		fo_iter_release(&j->it, x);
	fo_cursor_close(j->qc); /* unhooks notify_cb */
	fo_stream_destroy(j->q);
	join_unref(j);
}

static const struct fo__iter_vt join_vt = {
    .name = "join",
    .next = join_next,
    .close = join_close,
    .fd = join_fd,
    .arm = join_arm,
    .watch = join_watch,
};

int fo_join_create(fo_join **out, const fo_join_opts *o)
{
	fo_join_opts d;
	if (!o) {
		fo_join_opts_init(&d);
		o = &d;
	}
	if (!out || (o->on_error != FO_JOIN_FAIL_FAST && o->on_error != FO_JOIN_CONTINUE))
		return FO_EINVAL;
	fo_join *j = fo__zalloc(sizeof(*j));
	if (!j)
		return FO_ENOMEM;
	fo__waker_init(&j->w); /* before the notify hook below can bump */
	fo_stream_opts so;
	fo_stream_opts_init(&so);
	so.capacity = o->buffer ? o->buffer : 1024;
	/* No item_free: every item read from q is handed to the join's reader,
	 * who owns it from then on; join_close frees what is left unread. */
	int rc = fo_stream_create(&j->q, &so);
	if (rc != FO_OK)
		goto fail;
	rc = fo_stream_cursor(j->q, &j->qc, FO_ACTIVE);
	if (rc != FO_OK)
		goto fail_q;
	rc = fo_cursor_set_notify(j->qc, notify_cb, j);
	if (rc != FO_OK)
		goto fail_qc;
	if (pthread_mutex_init(&j->mu, NULL) != 0) {
		rc = FO_ENOMEM;
		goto fail_qc;
	}
	fo__iter_init(&j->it, &join_vt, o->item_free, o->item_free_ctx);
	j->it.emits_errors = o->on_error == FO_JOIN_CONTINUE;
	j->policy = o->on_error;
	atomic_init(&j->gen, 0);
	atomic_init(&j->stop, false);
	atomic_init(&j->nside, 0);
	atomic_init(&j->refs, 2);
	atomic_init(&j->nthreads, 0);
	*out = j;
	return FO_OK;

fail_qc:
	fo_cursor_close(j->qc);
fail_q:
	fo_stream_destroy(j->q);
fail:
	fo__free(j);
	return rc;
}

fo_iter *fo_join_iter(fo_join *j)
{
	if (!j || j->iter_taken)
		return NULL;
	j->iter_taken = true;
	return &j->it;
}

void fo_join_destroy(fo_join *j)
{
	if (!j)
		return;
	fo_join_seal(j);
	if (!j->iter_taken) {
		j->iter_taken = true;
		join_close(&j->it);
	}
	join_unref(j);
}

/* ------------------------------------------------------------------------ */
/* join_iters                                                                */

static void *outer_main(void *arg)
{
	fo_join *j = arg;
	fo_iter *outer = j->outer;
	for (;;) {
		if (atomic_load_explicit(
		        &j->stop, memory_order_relaxed)) /* a peek at the stop flag; re-checked */
			break;
		void *x;
		int rc = fo__iter_pull(outer, &x, FO__NO_DEADLINE, NULL);
		if (rc == FO_OK) {
			int arc = add(j, x, outer->item_free, outer->item_ctx);
			if (arc == FO_ECLOSED) { /* the output was closed */
				fo_iter_release(outer, x);
				break;
			}
			if (arc != FO_OK) {
				fo_error e = {arc, 0, "join: invalid source element"};
				source_error(j, &e, x, outer->item_free, outer->item_ctx);
			}
			continue;
		}
		if (rc == FO_FAILED)
			source_error(j, fo_iter_error(outer), NULL, NULL, NULL);
		break;
	}
	fo_join_seal(j);
	return NULL;
}

int fo_join_iters(fo_iter **out, fo_iter *srcs, const fo_join_opts *o)
{
	if (!out || !srcs || srcs->borrows || srcs->emits_errors)
		return FO_EINVAL;
	fo_join *j;
	int rc = fo_join_create(&j, o);
	if (rc != FO_OK)
		return rc;
	j->outer = srcs;
	fo_iter *it = fo_join_iter(j);
	if (pthread_create(&j->outer_th, NULL, outer_main, j) != 0) {
		j->outer = NULL; /* the caller keeps @srcs */
		fo_join_destroy(j);
		fo_iter_close(it);
		return FO_ESYS;
	}
	j->has_outer = true;
	join_unref(j); /* no handle: the outer thread seals */
	*out = it;
	return FO_OK;
}
