/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * pmap.c - parallel map on a pool of worker threads (see fanout/pmap.h).
 *
 * One mutex (mu) guards the whole pool state; the work per item is the
 * user's call, so the mutex is taken a few times per item, never during a
 * call or a source pull.
 *
 *   workers: wait on cv_work until they may take an item (can_take: the
 *     source is free, the in-flight bound allows, nothing halted), mark the
 *     source busy, reserve a task slot and a sequence number, pull the
 *     source without the lock, then compute without the lock and publish
 *     the result (T_DONE) and signal cv_out.
 *   reader: takes the next result - ordered: the slot of next_out (tasks[]
 *     is a ring indexed by seq % W; every in-flight seq lies in
 *     [next_out, next_seq) and next_seq - next_out <= W); unordered: the
 *     head of the ready FIFO - frees its slot, signals cv_work, and applies
 *     the policy outside the lock.  It waits on cv_out no longer than the
 *     earliest per-item deadline, and handles timeouts (check_timeouts): the
 *     slot becomes an FO_TIMEDOUT result, the worker is abandoned (it
 *     releases its late output and exits) and a replacement is started.
 */
#include <string.h>

#include <fanout/pmap.h>
#include "iter_impl.h"

enum tstate { T_FREE, T_RUN, T_DONE };

struct task {
	void *in, *out;
	int status;    /* FO_OK or the failure code */
	bool passthru; /* an upstream error item, in @in */
	enum tstate st;
	struct task *next; /* free list / ready FIFO (unordered) */
};

struct worker {
	pthread_t th;
	struct pmap *pm;
	size_t index;      /* which init argument */
	struct task *cur;  /* under mu: the item being computed */
	uint64_t deadline; /* under mu: cur's timeout deadline */
	bool abandoned;    /* under mu: cur timed out; exit after the call */
	bool exited;       /* under mu: ready to be joined */
	struct worker *next;
};

struct pmap {
	fo_iter it; /* first: the vtable casts */
	fo_iter *src;
	fo_item_free_fn in_free;
	void *in_ctx;
	fo_pmap_fn fn;
	fo_pmap_opts o;
	void **init_args; /* copy of o.init_args, or NULL */

	pthread_mutex_t mu;
	pthread_cond_t cv_work; /* workers: may take an item, or stop */
	pthread_cond_t cv_out;  /* reader: a result, the end, a fatal error, a new deadline */
	size_t cap;             /* workers * (per_worker_buffer + 1) */
	size_t W;               /* task slots: cap (+ reorder window when ordered) */
	struct task *tasks;
	struct task *free_list;         /* unordered */
	struct task *rq_head, *rq_tail; /* unordered: finished, in completion order */
	uint64_t next_seq, next_out;    /* ordered: sequence numbers */
	size_t inflight;                /* pulled, not yet returned */
	bool src_busy;                  /* a worker is inside the source pull */
	int src_done;                   /* 0, FO_END or FO_FAILED */
	fo_error src_err;               /* the source's failure (message copied) */
	char *src_msg;
	bool halt; /* a STOP failure was recorded: read no more input */
	bool stop; /* closing */
	int fatal; /* an init failed: its code */
	bool started;
	bool reader_waiting; /* the reader sleeps on cv_out: tell it of new deadlines */
	size_t init_pending; /* first workers whose init has not returned */
	struct worker *workers;
	uint64_t n_in, n_out, n_failed;
};

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
	o->per_worker_buffer = 2;
	o->ordered = true;
	o->on_error = FO_ERR_STOP;
}

/* ---- paired results ----------------------------------------------------------------------- */

struct result {
	fo_result r;
	fo_error e;
	fo_item_free_fn in_free, out_free;
	void *in_ctx, *out_ctx;
	char msg[];
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

static struct result *result_new(struct pmap *pm, void *in, void *out, int status, const char *msg)
{
	size_t len = status == FO_OK ? 0 : strlen(msg) + 1;
	struct result *r = fo__zalloc(sizeof(*r) + len);
	if (!r)
		return NULL;
	r->r.input = in;
	r->r.output = out;
	r->r.status = status;
	r->in_free = pm->in_free;
	r->in_ctx = pm->in_ctx;
	r->out_free = pm->o.item_free;
	r->out_ctx = pm->o.item_free_ctx;
	if (status != FO_OK) {
		memcpy(r->msg, msg, len);
		r->e.code = status;
		r->e.message = r->msg;
		r->r.error = &r->e;
	}
	return r;
}

/* ---- pool internals (mu held unless said otherwise) ---------------------------------------- */

static bool can_take(const struct pmap *pm)
{
	if (pm->halt || pm->src_done || pm->src_busy || pm->fatal || pm->init_pending)
		return false;
	if (pm->o.ordered)
		return pm->next_seq - pm->next_out < pm->W;
	return pm->inflight < pm->cap;
}

static void push_ready(struct pmap *pm, struct task *t)
{
	t->st = T_DONE;
	if (pm->o.ordered)
		return; /* the slot itself is the place */
	t->next = NULL;
	if (pm->rq_tail)
		pm->rq_tail->next = t;
	else
		pm->rq_head = t;
	pm->rq_tail = t;
}

/* Release what a finished task holds (close, or a result nobody will read). */
static void task_release(struct pmap *pm, struct task *t)
{
	if (t->passthru) {
		fo_error_item_free(t->in);
	} else if (t->status == FO_OK) {
		if (t->out && pm->o.item_free)
			pm->o.item_free(t->out, pm->o.item_free_ctx);
		if (pm->o.paired && t->in && pm->in_free)
			pm->in_free(t->in, pm->in_ctx);
	} else if (t->in && pm->in_free) {
		pm->in_free(t->in, pm->in_ctx);
	}
	t->in = t->out = NULL;
	t->st = T_FREE;
}

static void *worker_main(void *arg);

static int spawn(struct pmap *pm, size_t index)
{
	struct worker *w = fo__zalloc(sizeof(*w));
	if (!w)
		return FO_ENOMEM;
	w->pm = pm;
	w->index = index;
	if (pthread_create(&w->th, NULL, worker_main, w) != 0) {
		fo__free(w);
		return FO_ESYS;
	}
	w->next = pm->workers;
	pm->workers = w;
	return FO_OK;
}

/* Join abandoned workers that have exited (keeps the list short). */
static void reap(struct pmap *pm)
{
	for (struct worker **pp = &pm->workers; *pp;) {
		struct worker *w = *pp;
		if (w->abandoned && w->exited) {
			*pp = w->next;
			pthread_join(w->th, NULL); /* it only returns: no lock needed */
			fo__free(w);
		} else {
			pp = &w->next;
		}
	}
}

static void set_fatal(struct pmap *pm, int code)
{
	if (!pm->fatal)
		pm->fatal = code ? code : FO_FAILED;
	pthread_cond_broadcast(&pm->cv_out);
}

/* Time out items past their deadline; returns the earliest live deadline. */
static uint64_t check_timeouts(struct pmap *pm)
{
	uint64_t now = fo__now_ns(), earliest = FO__NO_DEADLINE;
	bool respawn = false;
	for (struct worker *w = pm->workers; w; w = w->next) {
		if (w->abandoned || !w->cur)
			continue;
		if (now < w->deadline) {
			if (w->deadline < earliest)
				earliest = w->deadline;
			continue;
		}
		struct task *t = w->cur; /* its input stays with the worker */
		t->in = t->out = NULL;
		t->status = FO_TIMEDOUT;
		pm->n_failed++;
		if (pm->o.on_error == FO_ERR_STOP)
			pm->halt = true;
		push_ready(pm, t);
		w->cur = NULL;
		w->abandoned = true;
		respawn = true;
	}
	if (respawn) {
		reap(pm);
		/* One replacement per abandoned worker still counted as live. */
		size_t live = 0;
		for (struct worker *w = pm->workers; w; w = w->next)
			live += !w->abandoned;
		for (size_t i = live; i < pm->o.workers; i++) {
			/* The abandoned worker's init argument: find a free index. */
			size_t idx = 0;
			for (; idx < pm->o.workers; idx++) {
				bool used = false;
				for (struct worker *w = pm->workers; w; w = w->next)
					used |= !w->abandoned && w->index == idx;
				if (!used)
					break;
			}
			int rc = spawn(pm, idx);
			if (rc != FO_OK) {
				set_fatal(pm, rc);
				break;
			}
		}
	}
	return earliest;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct pmap *pm = w->pm;
	void *wstate = NULL;
	int rc = FO_OK;
	if (pm->o.init)
		rc = pm->o.init(pm->o.ctx, pm->init_args ? pm->init_args[w->index] : NULL, &wstate);

	pthread_mutex_lock(&pm->mu);
	/* init_pending counts the first generation only (start()); replacements
	 * start after it reached 0. */
	if (rc != FO_OK) {
		set_fatal(pm, rc);
		if (pm->init_pending)
			pm->init_pending--;
		w->exited = true;
		pthread_cond_broadcast(&pm->cv_work);
		pthread_mutex_unlock(&pm->mu);
		return NULL; /* no fini: init did not succeed */
	}
	if (pm->init_pending && --pm->init_pending == 0)
		pthread_cond_broadcast(&pm->cv_work);

	for (;;) {
		while (!pm->stop && !can_take(pm))
			pthread_cond_wait(&pm->cv_work, &pm->mu);
		if (pm->stop)
			break;
		pm->src_busy = true;
		uint64_t seq = pm->next_seq++;
		struct task *t;
		if (pm->o.ordered) {
			t = &pm->tasks[seq % pm->W];
		} else {
			t = pm->free_list;
			pm->free_list = t->next;
		}
		FO_ASSERT(t->st == T_FREE);
		t->st = T_RUN;
		t->passthru = false;
		t->in = t->out = NULL;
		t->status = FO_OK;
		pm->inflight++;
		pthread_mutex_unlock(&pm->mu);

		void *in = NULL;
		bool is_err = false;
		rc = fo__iter_pull(pm->src, &in, FO__NO_DEADLINE, &is_err);

		pthread_mutex_lock(&pm->mu);
		pm->src_busy = false;
		pthread_cond_signal(&pm->cv_work); /* the source is free for another worker */
		if (rc != FO_OK) {                 /* END or FAILED: this seq is the end */
			pm->src_done = rc == FO_END ? FO_END : FO_FAILED;
			if (pm->src_done == FO_FAILED) {
				const fo_error *e = fo_iter_error(pm->src);
				pm->src_err = e ? *e : (fo_error){FO_FAILED, 0, NULL};
				pm->src_msg =
				    fo__strdup(pm->src_err.message ? pm->src_err.message
				                                   : fo_strerror(pm->src_err.code));
				pm->src_err.message = pm->src_msg;
			}
			pm->next_seq = seq;
			t->st = T_FREE;
			if (!pm->o.ordered) {
				t->next = pm->free_list;
				pm->free_list = t;
			}
			pm->inflight--;
			pthread_cond_broadcast(&pm->cv_work);
			pthread_cond_signal(&pm->cv_out);
			continue;
		}
		pm->n_in++;
		if (pm->stop && !is_err) { /* closing: do not compute; close releases it */
			t->in = in;
			t->status = FO_ECANCELED;
			t->st = T_DONE;
			continue;
		}
		if (is_err) {
			t->in = in;
			t->passthru = true;
			push_ready(pm, t);
			pthread_cond_signal(&pm->cv_out);
			continue;
		}
		uint64_t deadline =
		    pm->o.timeout_ns > 0 ? fo__deadline(pm->o.timeout_ns) : FO__NO_DEADLINE;
		w->cur = t;
		w->deadline = deadline;
		if (pm->o.timeout_ns > 0 && pm->reader_waiting)
			pthread_cond_signal(&pm->cv_out); /* a new deadline to wait for */
		pthread_mutex_unlock(&pm->mu);

		void *out = NULL;
		for (unsigned tries = 0;; tries++) {
			out = NULL;
			rc = pm->fn(pm->o.ctx, wstate, in, &out);
			if (rc == FO_OK && !out)
				rc = FO_EINVAL; /* contract broken: report, never hang */
			if (rc == FO_OK || tries >= pm->o.retries)
				break;
			if (deadline != FO__NO_DEADLINE && fo__now_ns() >= deadline)
				break;
		}

		pthread_mutex_lock(&pm->mu);
		if (w->abandoned) {
			/* Timed out: the reader already has FO_TIMEDOUT for it. */
			pthread_mutex_unlock(&pm->mu);
			if (rc == FO_OK) {
				if (pm->o.item_free)
					pm->o.item_free(out, pm->o.item_free_ctx);
				if (pm->o.paired && pm->in_free)
					pm->in_free(in, pm->in_ctx);
			} else if (pm->in_free) {
				pm->in_free(in, pm->in_ctx);
			}
			pthread_mutex_lock(&pm->mu);
			break;
		}
		w->cur = NULL;
		t->in = (rc == FO_OK && !pm->o.paired) ? NULL : in;
		t->out = rc == FO_OK ? out : NULL;
		t->status = rc;
		if (rc != FO_OK) {
			pm->n_failed++;
			if (pm->o.on_error == FO_ERR_STOP)
				pm->halt = true;
		}
		push_ready(pm, t);
		pthread_cond_signal(&pm->cv_out);
	}
	pthread_mutex_unlock(&pm->mu);
	if (pm->o.fini)
		pm->o.fini(pm->o.ctx, wstate);
	pthread_mutex_lock(&pm->mu);
	w->exited = true;
	pthread_mutex_unlock(&pm->mu);
	return NULL;
}

static int start(struct pmap *pm)
{
	pm->started = true;
	pm->init_pending = pm->o.workers;
	for (size_t i = 0; i < pm->o.workers; i++) {
		int rc = spawn(pm, i);
		if (rc != FO_OK) {
			pm->init_pending -= pm->o.workers - i;
			set_fatal(pm, rc);
			return rc;
		}
	}
	return FO_OK;
}

/* ---- the output iterator -------------------------------------------------------------------- */

static void snapshot(const struct pmap *pm, fo_progress *p)
{
	p->in = pm->n_in;
	p->out = pm->n_out;
	p->failed = pm->n_failed;
	p->in_flight = pm->inflight;
}

static void report(struct pmap *pm, const fo_progress *p)
{
	if (pm->o.progress)
		pm->o.progress(pm->o.progress_ctx, p);
}

/* Apply the policy to one finished task (no lock).  FO_OK, FO_EMPTY (dropped), FO_FAILED. */
static int deliver(struct pmap *pm, struct task *t, void **item)
{
	fo_iter *it = &pm->it;
	if (t->passthru) {
		*item = t->in;
		it->last_err = true;
		return FO_OK;
	}
	const char *msg = t->status == FO_TIMEDOUT ? MSG_TIMEOUT : MSG_FAIL;
	if (t->status == FO_OK || pm->o.on_error == FO_ERR_EMIT) {
		if (pm->o.paired) {
			struct result *r = result_new(pm, t->in, t->out, t->status, msg);
			if (!r) {
				task_release(pm, t);
				return fo__iter_fail(it, FO_ENOMEM, 0, "no memory for a result");
			}
			*item = r;
			return FO_OK;
		}
		if (t->status == FO_OK) {
			*item = t->out;
			return FO_OK;
		}
		fo_error e = {.code = t->status, .sys_errno = 0, .message = msg};
		fo_error_item *ei = fo__error_item_new(&e, t->in, pm->in_free, pm->in_ctx);
		if (!ei) {
			task_release(pm, t);
			return fo__iter_fail(it, FO_ENOMEM, 0, "no memory for an error item");
		}
		*item = ei;
		it->last_err = true;
		return FO_OK;
	}
	task_release(pm, t); /* releases the input of a failed item */
	if (pm->o.on_error == FO_ERR_DROP)
		return FO_EMPTY;
	return fo__iter_fail(it, t->status, 0, msg);
}

static int pm_next(fo_iter *it, void **item, uint64_t deadline)
{
	struct pmap *pm = (struct pmap *)it;
	pthread_mutex_lock(&pm->mu);
	if (!pm->started)
		start(pm);
	for (;;) {
		if (pm->fatal) {
			int code = pm->fatal;
			fo_progress p;
			snapshot(pm, &p);
			pthread_mutex_unlock(&pm->mu);
			report(pm, &p);
			return fo__iter_fail(it, code, 0, MSG_INIT);
		}
		uint64_t tdl = pm->o.timeout_ns > 0 ? check_timeouts(pm) : FO__NO_DEADLINE;
		struct task *t = NULL;
		if (pm->o.ordered) {
			struct task *c = &pm->tasks[pm->next_out % pm->W];
			if (pm->next_out < pm->next_seq && c->st == T_DONE) {
				t = c;
				pm->next_out++;
			}
		} else if (pm->rq_head) {
			t = pm->rq_head;
			pm->rq_head = t->next;
			if (!pm->rq_head)
				pm->rq_tail = NULL;
		}
		if (t) {
			struct task copy = *t;
			t->st = T_FREE;
			t->in = t->out = NULL;
			if (!pm->o.ordered) {
				t->next = pm->free_list;
				pm->free_list = t;
			}
			pm->inflight--;
			bool dropped =
			    copy.status != FO_OK && !copy.passthru && pm->o.on_error == FO_ERR_DROP;
			if (!dropped)
				pm->n_out++;
			fo_progress p;
			snapshot(pm, &p);
			pthread_cond_signal(&pm->cv_work); /* room for one more */
			pthread_mutex_unlock(&pm->mu);
			int rc = deliver(pm, &copy, item);
			report(pm, &p);
			if (rc != FO_EMPTY)
				return rc;
			pthread_mutex_lock(&pm->mu);
			continue;
		}
		if (pm->inflight == 0 && pm->src_done) {
			int rc = pm->src_done;
			fo_progress p;
			snapshot(pm, &p);
			pthread_mutex_unlock(&pm->mu);
			report(pm, &p);
			return rc == FO_END ? FO_END : fo__iter_fail_from(it, &pm->src_err);
		}
		if (deadline == 0) {
			pthread_mutex_unlock(&pm->mu);
			return FO_EMPTY;
		}
		uint64_t until = deadline < tdl ? deadline : tdl;
		pm->reader_waiting = true;
		int w = fo__cond_wait_until(&pm->cv_out, &pm->mu, until);
		pm->reader_waiting = false;
		if (w == FO_TIMEDOUT && until == deadline && fo__now_ns() >= deadline) {
			pthread_mutex_unlock(&pm->mu);
			return FO_TIMEDOUT;
		}
	}
}

static void pm_close(fo_iter *it)
{
	struct pmap *pm = (struct pmap *)it;
	pthread_mutex_lock(&pm->mu);
	pm->stop = true;
	pthread_cond_broadcast(&pm->cv_work);
	pthread_mutex_unlock(&pm->mu);
	/* Only the reader (us) adds workers, so the list is stable now. */
	for (struct worker *w = pm->workers, *n; w; w = n) {
		n = w->next;
		pthread_join(w->th, NULL);
		fo__free(w);
	}
	for (size_t i = 0; i < pm->W; i++)
		if (pm->tasks[i].st == T_DONE)
			task_release(pm, &pm->tasks[i]);
	fo_iter_close(pm->src);
	fo__free(pm->src_msg);
	fo__free(pm->init_args);
	fo__free(pm->tasks);
	pthread_cond_destroy(&pm->cv_out);
	pthread_cond_destroy(&pm->cv_work);
	pthread_mutex_destroy(&pm->mu);
	fo__iter_fini(it);
	fo__free(pm);
}

static const struct fo__iter_vt pmap_vt = {
    .name = "pmap",
    .next = pm_next,
    .close = pm_close,
};

int fo_pmap(fo_iter **out, fo_iter *src, fo_pmap_fn fn, const fo_pmap_opts *o)
{
	fo_pmap_opts d;
	if (!o) {
		fo_pmap_opts_init(&d);
		o = &d;
	}
	if (!out || !src || !fn || o->workers == 0 || o->backend != FO_THREADS || o->timeout_ns < 0)
		return FO_EINVAL;
	if (o->on_error != FO_ERR_STOP && o->on_error != FO_ERR_DROP && o->on_error != FO_ERR_EMIT)
		return FO_EINVAL;
	if (src->borrows || (o->paired && src->emits_errors))
		return FO_EINVAL;
	if (o->workers > SIZE_MAX / 4 / (o->per_worker_buffer + 1))
		return FO_EINVAL;
	struct pmap *pm = fo__zalloc(sizeof(*pm));
	if (!pm)
		return FO_ENOMEM;
	pm->o = *o;
	pm->cap = o->workers * (o->per_worker_buffer + 1);
	if (o->ordered && pm->o.reorder_window == 0)
		pm->o.reorder_window = pm->cap;
	pm->W = o->ordered ? pm->cap + pm->o.reorder_window : pm->cap;
	pm->tasks = fo__zalloc(pm->W * sizeof(*pm->tasks));
	if (o->init_args) {
		pm->init_args = fo__alloc(o->workers * sizeof(void *));
		if (pm->init_args)
			memcpy(pm->init_args, o->init_args, o->workers * sizeof(void *));
	}
	if (!pm->tasks || (o->init_args && !pm->init_args))
		goto nomem;
	if (pthread_mutex_init(&pm->mu, NULL) != 0)
		goto nomem;
	if (fo__cond_init(&pm->cv_work) != FO_OK) {
		pthread_mutex_destroy(&pm->mu);
		goto nomem;
	}
	if (fo__cond_init(&pm->cv_out) != FO_OK) {
		pthread_cond_destroy(&pm->cv_work);
		pthread_mutex_destroy(&pm->mu);
		goto nomem;
	}
	if (!o->ordered)
		for (size_t i = pm->W; i-- > 0;) {
			pm->tasks[i].next = pm->free_list;
			pm->free_list = &pm->tasks[i];
		}
	if (o->paired)
		fo__iter_init(&pm->it, &pmap_vt, fo_result_free, NULL);
	else
		fo__iter_init(&pm->it, &pmap_vt, o->item_free, o->item_free_ctx);
	pm->it.emits_errors = !o->paired && (o->on_error == FO_ERR_EMIT || src->emits_errors);
	pm->src = src;
	pm->in_free = src->item_free;
	pm->in_ctx = src->item_ctx;
	pm->fn = fn;
	*out = &pm->it;
	return FO_OK;
nomem:
	fo__free(pm->init_args);
	fo__free(pm->tasks);
	fo__free(pm);
	return FO_ENOMEM;
}

int fo_pmap_progress_get(fo_iter *it, fo_progress *p)
{
	if (!it || !p || it->vt != &pmap_vt)
		return FO_EINVAL;
	struct pmap *pm = (struct pmap *)it;
	pthread_mutex_lock(&pm->mu);
	snapshot(pm, p);
	pthread_mutex_unlock(&pm->mu);
	return FO_OK;
}
