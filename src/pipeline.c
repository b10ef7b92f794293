/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * pipeline.c - buffered stages (see fanout/pipeline.h).
 *
 * A stage is an fo_iter with a ring of n items under its mutex.  Its thread
 * waits for room (cv_space), then pulls its source without the lock, then
 * queues the item (cv_items).  The end (END / FAILED) is queued after the
 * items as `term`; before queuing it the thread closes its source, which
 * joins every upstream thread, and the reader joins this thread when it
 * reads the end - so a reader that sees the end has every thread joined.
 *
 * Group: the pipeline keeps its open stages (under p->mu; lock order p->mu
 * -> stage mu).  group_halt(p, k) marks every stage numbered below k halted
 * and wakes it: its thread stops before its next pull and ends with
 * FO_ECANCELED, which only halted (upstream) stages ever read.
 */
#include <string.h>

#include <fanout/pipeline.h>
#include "iter_impl.h"

struct stage;

struct fo_pipeline {
	pthread_mutex_t mu;
	struct stage **stages; /* under mu: open stages, NULL when closed */
	size_t nstages, cap;
	fo_pipeline_opts o;
	atomic_int refs; /* handle + open stages */
};

struct stage {
	fo_iter it; /* first: the vtable casts */
	fo_pipeline *p;
	size_t idx;
	fo_iter *src; /* the thread's until it ends, then NULL */
	fo_item_free_fn in_free;
	void *in_ctx;
	size_t n;
	pthread_mutex_t mu;
	pthread_cond_t cv_items, cv_space;
	void **q; /* ring of n */
	bool *qerr;
	size_t head, count; /* under mu */
	int term;           /* under mu: 0, FO_END or FO_FAILED, after the items */
	fo_error err;       /* the failure (message owned: msg) */
	char *msg;
	bool started, joined; /* reader */
	bool stop, halted;    /* under mu */
	pthread_t th;
	uint64_t n_in, n_out; /* under mu */
	struct fo__waker wk;
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

static void group_halt(fo_pipeline *p, size_t below)
{
	pthread_mutex_lock(&p->mu);
	for (size_t i = 0; i < below && i < p->nstages; i++) {
		struct stage *s = p->stages[i];
		if (!s)
			continue;
		pthread_mutex_lock(&s->mu);
		s->halted = true;
		pthread_cond_broadcast(&s->cv_space);
		pthread_cond_broadcast(&s->cv_items);
		pthread_mutex_unlock(&s->mu);
	}
	pthread_mutex_unlock(&p->mu);
}

static void snapshot(const struct stage *s, fo_progress *pr)
{
	pr->in = s->n_in;
	pr->out = s->n_out;
	pr->failed = s->term == FO_FAILED;
	pr->in_flight = s->count;
}

static void report(struct stage *s, const fo_progress *pr)
{
	if (s->p->o.progress)
		s->p->o.progress(s->p->o.progress_ctx, s->idx, pr);
}

static void set_err(struct stage *s, int code, const char *msg)
{
	s->msg = fo__strdup(msg ? msg : fo_strerror(code));
	s->err.code = code ? code : FO_FAILED;
	s->err.sys_errno = 0;
	s->err.message = s->msg ? s->msg : fo_strerror(s->err.code);
}

static void *stage_main(void *arg)
{
	struct stage *s = arg;
	int end;
	fo_progress pr;
	for (;;) {
		pthread_mutex_lock(&s->mu);
		while (s->count >= s->n && !s->stop && !s->halted)
			pthread_cond_wait(&s->cv_space, &s->mu);
		bool quit = s->stop || s->halted;
		pthread_mutex_unlock(&s->mu);
		if (quit) {
			set_err(s, FO_ECANCELED, "pipeline stage stopped");
			end = FO_FAILED;
			break;
		}
		void *item;
		bool is_err;
		int rc = fo__iter_pull(s->src, &item, FO__NO_DEADLINE, &is_err);
		if (rc == FO_END) {
			end = FO_END;
			break;
		}
		if (rc != FO_OK) {
			const fo_error *e = fo_iter_error(s->src);
			set_err(s, e ? e->code : FO_FAILED, e ? e->message : NULL);
			end = FO_FAILED;
			if (!s->halted) /* the root error: stop everything upstream */
				group_halt(s->p, s->idx);
			break;
		}
		pthread_mutex_lock(&s->mu);
		/* Room is ours: only this thread adds items. */
		size_t tail = (s->head + s->count) % s->n;
		s->q[tail] = item;
		s->qerr[tail] = is_err;
		s->count++;
		s->n_in++;
		snapshot(s, &pr);
		pthread_cond_signal(&s->cv_items);
		pthread_mutex_unlock(&s->mu);
		fo__waker_signal(&s->wk);
		report(s, &pr);
	}
	/* Join everything upstream before the end becomes visible. */
	fo_iter_close(s->src);
	s->src = NULL;
	pthread_mutex_lock(&s->mu);
	s->term = end;
	snapshot(s, &pr);
	pthread_cond_broadcast(&s->cv_items);
	pthread_mutex_unlock(&s->mu);
	fo__waker_signal(&s->wk);
	report(s, &pr);
	return NULL;
}

/* mu held.  A thread that cannot start ends the stage with FO_ESYS. */
static void start(struct stage *s)
{
	s->started = true;
	if (pthread_create(&s->th, NULL, stage_main, s) != 0) {
		s->joined = true; /* nothing to join */
		fo_iter_close(s->src);
		s->src = NULL;
		set_err(s, FO_ESYS, "pipeline stage thread not started");
		s->term = FO_FAILED;
	}
}

static int st_next(fo_iter *it, void **item, uint64_t deadline)
{
	struct stage *s = (struct stage *)it;
	fo_progress pr;
	pthread_mutex_lock(&s->mu);
	if (!s->started)
		start(s);
	for (;;) {
		if (s->count) {
			*item = s->q[s->head];
			it->last_err = s->qerr[s->head];
			s->head = (s->head + 1) % s->n;
			s->count--;
			s->n_out++;
			snapshot(s, &pr);
			pthread_cond_signal(&s->cv_space);
			pthread_mutex_unlock(&s->mu);
			report(s, &pr);
			return FO_OK;
		}
		if (s->term) {
			int term = s->term;
			pthread_mutex_unlock(&s->mu);
			if (!s->joined) {
				pthread_join(s->th, NULL);
				s->joined = true;
			}
			return term == FO_END ? FO_END : fo__iter_fail_from(it, &s->err);
		}
		if (deadline == 0 ||
		    fo__cond_wait_until(&s->cv_items, &s->mu, deadline) == FO_TIMEDOUT) {
			pthread_mutex_unlock(&s->mu);
			return deadline == 0 ? FO_EMPTY : FO_TIMEDOUT;
		}
	}
}

static void st_close(fo_iter *it)
{
	struct stage *s = (struct stage *)it;
	fo_pipeline *p = s->p;
	pthread_mutex_lock(&s->mu);
	s->stop = true;
	pthread_cond_broadcast(&s->cv_space);
	pthread_mutex_unlock(&s->mu);
	fo__waker_stop(&s->wk);
	group_halt(p, s->idx); /* everything upstream stops too */
	if (s->started && !s->joined)
		pthread_join(s->th, NULL);
	if (s->src) /* never started */
		fo_iter_close(s->src);
	while (s->count) {
		void *x = s->q[s->head];
		if (s->qerr[s->head])
			fo_error_item_free(x);
		else if (s->in_free)
			s->in_free(x, s->in_ctx);
		s->head = (s->head + 1) % s->n;
		s->count--;
	}
	pthread_mutex_lock(&p->mu);
	p->stages[s->idx] = NULL;
	pthread_mutex_unlock(&p->mu);
	fo__waker_fini(&s->wk);
	pthread_cond_destroy(&s->cv_items);
	pthread_cond_destroy(&s->cv_space);
	pthread_mutex_destroy(&s->mu);
	fo__free(s->msg);
	fo__free(s->q);
	fo__free(s->qerr);
	fo__iter_fini(it);
	fo__free(s);
	group_unref(p);
}

static int st_fd(fo_iter *it)
{
	struct stage *s = (struct stage *)it;
	pthread_mutex_lock(&s->mu);
	int rc = fo__waker_fd(&s->wk);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

static int st_watch(fo_iter *it, void (*fn)(void *arg), void *arg)
{
	struct stage *s = (struct stage *)it;
	return fo__waker_watch(&s->wk, fn, arg);
}

static int st_arm(fo_iter *it)
{
	struct stage *s = (struct stage *)it;
	pthread_mutex_lock(&s->mu);
	if (!s->started)
		start(s);
	int rc = fo__waker_prepare(&s->wk);
	if (rc == FO_OK) {
		rc = s->count > 0 || s->term != 0;
		if (rc)
			fo__waker_cancel(&s->wk);
	}
	pthread_mutex_unlock(&s->mu);
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
	if (n > SIZE_MAX / sizeof(void *))
		return FO_ENOMEM;
	struct stage *s = fo__zalloc(sizeof(*s));
	if (!s)
		return FO_ENOMEM;
	s->q = fo__alloc(n * sizeof(void *));
	s->qerr = fo__alloc(n * sizeof(bool));
	if (!s->q || !s->qerr)
		goto nomem;
	if (pthread_mutex_init(&s->mu, NULL) != 0)
		goto nomem;
	if (fo__cond_init(&s->cv_items) != FO_OK) {
		pthread_mutex_destroy(&s->mu);
		goto nomem;
	}
	if (fo__cond_init(&s->cv_space) != FO_OK) {
		pthread_cond_destroy(&s->cv_items);
		pthread_mutex_destroy(&s->mu);
		goto nomem;
	}
	pthread_mutex_lock(&p->mu);
	if (p->nstages == p->cap) {
		size_t ncap = p->cap ? 2 * p->cap : 4;
		struct stage **v = fo__alloc(ncap * sizeof(*v));
		if (!v) {
			pthread_mutex_unlock(&p->mu);
			pthread_cond_destroy(&s->cv_space);
			pthread_cond_destroy(&s->cv_items);
			pthread_mutex_destroy(&s->mu);
			goto nomem;
		}
		if (p->nstages)
			memcpy(v, p->stages, p->nstages * sizeof(*v));
		fo__free(p->stages);
		p->stages = v;
		p->cap = ncap;
	}
	s->idx = p->nstages;
	p->stages[p->nstages++] = s;
	atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed); /* under p->mu */
	pthread_mutex_unlock(&p->mu);

	fo__iter_init(&s->it, &stage_vt, src->item_free, src->item_ctx);
	s->it.emits_errors = src->emits_errors;
	fo__waker_init(&s->wk);
	s->p = p;
	s->src = src;
	s->in_free = src->item_free;
	s->in_ctx = src->item_ctx;
	s->n = n;
	*out = &s->it;
	return FO_OK;
nomem:
	fo__free(s->q);
	fo__free(s->qerr);
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
		pthread_mutex_lock(&s->mu);
		snapshot(s, out);
		pthread_mutex_unlock(&s->mu);
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
