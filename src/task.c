/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * task.c - futures on detached threads, and the fo_waitfor completion set.
 *
 * A future's state lives under its mutex; its memory is shared by the handle
 * and the thread (refs: the last one frees it).  Completion: the thread
 * locks f->mu, records the outcome, and - if the future is in a waitfor -
 * appends it to the set's done FIFO under w->mu and signals the set (lock
 * order f->mu -> w->mu everywhere), unlocks, then broadcasts f->cv (its
 * reference keeps f alive).  Process tasks: docs/design.md §13, "Process
 * tasks" (the spawn hand-off is a futex word).  fo_waitfor_destroy() clears
 * f->wf under f->mu, so no thread touches a set after it is gone.
 *
 * Readiness (fd/arm) uses fo__waker (iter_impl.h): arm prepares and
 * re-checks under the object's mutex, publishers change state under it and
 * signal after unlocking (the waitfor's signal runs under f->mu, which keeps
 * the set alive).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <fanout/task.h>
#include "iter_impl.h"
#include "proc.h"

struct fo_future {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* done or cancelled */
	fo_task_fn fn;
	void *arg;
	fo_item_free_fn rfree;
	void *rctx;
	/* under mu */
	bool done, cancelled, orphan;
	int rc;
	void *value;
	fo_error err;
	char *err_msg; /* owned text behind err.message, or NULL */
	/* processes: the child (ch.pidfd under mu: cancel kills through it) */
	bool proc;
	/* The spawn hand-off (futex word, no mutex): 0 forking, 1 forked, 2 fork
	 * failed; spawn_errno is written before it, read after it. */
	_Atomic uint32_t spawned;
	int spawn_errno;
	struct fo__child ch;
	fo_codec codec;
	fo_waitfor *wf;
	/* the set's user thread */
	bool in_set;
	struct fo_future *ow_prev, *ow_next; /* the set's owned list */
	struct fo_future *done_next;         /* under the set's mu: done FIFO */
	struct fo__waker wk;
	atomic_int refs; /* handle + thread */
};

struct fo_waitfor {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* a completion */
	size_t limit;
	size_t inflight;              /* under mu: added, not yet returned */
	bool asked;                   /* under mu: NEED_WORK returned, nothing added since */
	fo_future *dq_head, *dq_tail; /* under mu: completed, in completion order */
	fo_future *owned;             /* user thread: every future in the set */
	struct fo__waker wk;
};

void fo_task_opts_init(fo_task_opts *o)
{
	if (o)
		memset(o, 0, sizeof(*o));
}

static void unref(fo_future *f)
{
	/* acq_rel: the last one sees every write made under the other ref. */
	if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
		return;
	fo__waker_fini(&f->wk);
	pthread_cond_destroy(&f->cv);
	pthread_mutex_destroy(&f->mu);
	fo__free(f->err_msg);
	fo__free(f);
}

static void enqueue_done(fo_waitfor *w, fo_future *f)
{
	f->done_next = NULL;
	if (w->dq_tail)
		w->dq_tail->done_next = f;
	else
		w->dq_head = f;
	w->dq_tail = f;
	pthread_cond_signal(&w->cv);
}

/* Resolve @f with @rc: the value @v (FO_OK) or the failure @e (its owned
 * message @msg is taken), then drop the task's reference. */
static void resolve(fo_future *f, int rc, void *v, const fo_error *e, char *msg)
{
	void *discard = NULL;
	pthread_mutex_lock(&f->mu);
	f->done = true;
	f->rc = rc;
	if (rc == FO_OK && !f->cancelled && !f->orphan)
		f->value = v;
	else if (rc == FO_OK)
		discard = v;
	if (rc != FO_OK) {
		f->err = *e;
		f->err_msg = msg;
	}
	if (f->wf) {
		fo_waitfor *w = f->wf;
		pthread_mutex_lock(&w->mu);
		enqueue_done(w, f);
		pthread_mutex_unlock(&w->mu);
		fo__waker_signal(&w->wk); /* under f->mu: the set cannot go away */
	}
	pthread_mutex_unlock(&f->mu);
	/* After unlocking: a waiter woken here finds mu free (no second sleep on
	 * it); our reference keeps f and its cv alive until unref() below. */
	pthread_cond_broadcast(&f->cv);
	fo__waker_signal(&f->wk);
	if (discard && f->rfree)
		f->rfree(discard, f->rctx);
	unref(f);
}

static void *task_main(void *arg)
{
	fo_future *f = arg;
	void *v = NULL;
	fo__cb_begin();
	int rc = f->fn(f->arg, &v);
	fo_error e = {0};
	char *msg = NULL;
	if (rc != FO_OK)
		fo__cb_capture(rc, &e, &msg); /* errno and the fo_fail() message */
	resolve(f, rc, v, &e, msg);
	return NULL;
}

/* ---- processes: one fork per call ------------------------------------------------------------ */

/* In the child (a copy of the caller's memory at the call): run fn, send its
 * value (OK: encoded; READY: NULL) or its failure (ERR), and _exit. */
static int task_child(void *arg, int fd)
{
	fo_future *f = arg;
	void *v = NULL;
	struct fo__tx tx = {0};
	fo__cb_begin();
	int rc = f->fn(f->arg, &v);
	if (rc != FO_OK) {
		int err = errno; /* first: fn's errno */
		const char *msg = fo__cb_message(rc);
		fo__tx_err(&tx, rc, rc == FO_ESYS ? err : 0, msg);
	} else if (!v) {
		fo__tx_frame(&tx, FO__F_READY, NULL, 0);
	} else {
		fo_buf b;
		fo_buf_init(&b);
		fo__cb_begin();
		rc = f->codec.encode(f->codec.ctx, v, &b);
		if (rc != FO_OK) {
			const char *msg = fo__cb_message(rc);
			fo__tx_err(&tx, rc, 0, msg ? msg : "task value encode failed in the child");
		} else if (fo__tx_frame(&tx, FO__F_OK, b.data, b.len) != FO_OK) {
			fo__tx_err(&tx, FO_ENOMEM, 0,
			           "task value too large or no memory in the child");
		}
	}
	fo__tx_flush(fd, &tx);
	return 0; /* _exit(0): nothing else of the caller runs here */
}

/* The supervisor thread of a process task: wait for the child's frame or
 * death (poll on socket + pidfd: no timer), reap it, resolve the future. */
static void *proc_main(void *arg)
{
	fo_future *f = arg;
	/* Fork here, while the caller waits in fo_task_spawn(): the child sees
	 * the memory as it is at the call (inparallel), and its parent-death
	 * signal follows this thread, which lives until the child is reaped,
	 * not the caller's thread, which may exit at any time. */
	int rc = fo__child_spawn(&f->ch, task_child, f);
	f->spawn_errno = errno;
	/* release: spawn_errno and ch before the caller's acquire load (cancel,
	 * which reads ch, runs only after fo_task_spawn() returned).  The wake
	 * touches f after the caller may have returned: on failure it joins us
	 * before freeing f, on success our reference holds f until resolve(). */
	atomic_store_explicit(&f->spawned, rc == FO_OK ? 1u : 2u, memory_order_release);
	fo__futex_wake_all(&f->spawned);
	if (rc != FO_OK)
		return NULL; /* the caller joins us and frees f */
	struct fo__tx tx = {0};
	struct fo__rx rx = {0};
	rc = fo__child_io(&f->ch, &tx, &rx, true);
	uint32_t type = 0, len = 0;
	const unsigned char *data = NULL;
	int fr = rc == FO_OK ? fo__rx_frame(&rx, &type, &data, &len) : 0;
	int code = FO_OK;
	void *v = NULL;
	fo_error e = {0};
	char *msg = NULL;
	if (fr == 1 && type == FO__F_OK) {
		fo__cb_begin();
		code = f->codec.decode(f->codec.ctx, data, len, &v);
		if (code != FO_OK)
			fo__cb_capture(code, &e, &msg);
	} else if (fr == 1 && type == FO__F_READY && len == 0) {
		code = FO_OK; /* a NULL value */
	} else if (fr == 1 && type == FO__F_ERR &&
	           fo__err_parse(data, len, &code, &e.sys_errno, &msg) == FO_OK) {
		e.code = code;
		e.message = msg ? msg : fo_strerror(code);
	} else {
		code = FO_FAILED; /* died without a result, or sent garbage: named below */
	}
	/* Take the child away from cancel (under mu), then reap it: it has sent its
	 * frame and is in _exit, or is dead, or gets killed here (garbage). */
	pthread_mutex_lock(&f->mu);
	struct fo__child ch = f->ch;
	f->ch.pidfd = -1;
	pthread_mutex_unlock(&f->mu);
	if (code == FO_FAILED && !msg)
		fo__child_kill(&ch, SIGKILL);
	pid_t pid = ch.pid;
	struct fo__exit ex;
	fo__child_reap(&ch, &ex);
	if (code == FO_FAILED && !msg) {
		char who[48], buf[160];
		snprintf(who, sizeof(who), "task child (pid %ld)", (long)pid);
		fo__exit_describe(&ex, who, buf, sizeof(buf) - 24);
		size_t l = strlen(buf);
		snprintf(buf + l, sizeof(buf) - l, fr != 0 ? " (bad frame)" : " before its result");
		msg = fo__strdup(buf);
		e = (fo_error){.code = FO_FAILED, .message = msg ? msg : fo_strerror(FO_FAILED)};
	}
	fo__rx_fini(&rx);
	fo__tx_fini(&tx);
	resolve(f, code, v, &e, msg);
	return NULL;
}

int fo_task_spawn(fo_future **out, fo_task_fn fn, void *arg, const fo_task_opts *o)
{
	fo_task_opts d;
	if (!o) {
		fo_task_opts_init(&d);
		o = &d;
	}
	if (!out || !fn || (o->backend != FO_THREADS && o->backend != FO_PROCESSES))
		return FO_EINVAL;
	if (o->backend == FO_PROCESSES && (!o->out_codec.encode || !o->out_codec.decode))
		return FO_EINVAL; /* the value crosses as bytes */
	fo_future *f = fo__zalloc(sizeof(*f));
	if (!f)
		return FO_ENOMEM;
	if (pthread_mutex_init(&f->mu, NULL) != 0) {
		fo__free(f);
		return FO_ENOMEM;
	}
	if (fo__cond_init(&f->cv) != FO_OK) {
		pthread_mutex_destroy(&f->mu);
		fo__free(f);
		return FO_ENOMEM;
	}
	fo__waker_init(&f->wk);
	f->fn = fn;
	f->arg = arg;
	f->rfree = o->result_free;
	f->rctx = o->result_ctx;
	f->ch = (struct fo__child){.pid = -1, .pidfd = -1, .fd = -1};
	atomic_init(&f->refs, 2);
	if (o->backend == FO_PROCESSES) {
		f->proc = true;
		f->codec = o->out_codec; /* a value, if any, comes back through it */
	}
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	if (!f->proc) /* a process task's supervisor is detached once it forked */
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_t th;
	int r = pthread_create(&th, &attr, f->proc ? proc_main : task_main, f);
	pthread_attr_destroy(&attr);
	if (r == 0 && f->proc) {
		/* acquire: pairs with the supervisor's release (spawn_errno, ch).  It
		 * forks while we wait here: the child sees memory as at the call. */
		uint32_t st;
		while ((st = atomic_load_explicit(&f->spawned, memory_order_acquire)) == 0)
			fo__futex_wait(&f->spawned, 0, FO__NO_DEADLINE);
		if (st == 2) {
			pthread_join(th, NULL);
			r = f->spawn_errno;
		} else {
			pthread_detach(th);
		}
	}
	if (r != 0) {
		pthread_cond_destroy(&f->cv);
		pthread_mutex_destroy(&f->mu);
		fo__free(f);
		errno = r;
		return FO_ESYS;
	}
	*out = f;
	return FO_OK;
}

static int wait_until(fo_future *f, uint64_t deadline)
{
	pthread_mutex_lock(&f->mu);
	while (!f->done && !f->cancelled) {
		if (fo__cond_wait_until(&f->cv, &f->mu, deadline) == FO_TIMEDOUT) {
			pthread_mutex_unlock(&f->mu);
			return FO_TIMEDOUT;
		}
	}
	int rc = f->cancelled ? FO_ECANCELED : FO_OK;
	pthread_mutex_unlock(&f->mu);
	return rc;
}

int fo_future_wait(fo_future *f)
{
	if (!f)
		return FO_EINVAL;
	return wait_until(f, FO__NO_DEADLINE);
}

int fo_future_timed_wait(fo_future *f, int64_t timeout_ns)
{
	if (!f)
		return FO_EINVAL;
	return wait_until(f, fo__iter_deadline(timeout_ns));
}

bool fo_future_done(fo_future *f)
{
	if (!f)
		return false;
	pthread_mutex_lock(&f->mu);
	bool d = f->done || f->cancelled;
	pthread_mutex_unlock(&f->mu);
	return d;
}

static int result(fo_future *f, void **value, const fo_error **err, bool take)
{
	if (!f)
		return FO_EINVAL;
	int rc;
	pthread_mutex_lock(&f->mu);
	if (value)
		*value = NULL;
	if (err)
		*err = NULL;
	if (f->cancelled) {
		rc = FO_ECANCELED;
	} else if (!f->done) {
		rc = FO_EMPTY;
	} else if (f->rc == FO_OK) {
		rc = FO_OK;
		if (value)
			*value = f->value;
		if (take && value)
			f->value = NULL;
	} else {
		rc = FO_FAILED;
		if (err)
			*err = &f->err;
	}
	pthread_mutex_unlock(&f->mu);
	return rc;
}

int fo_future_result(fo_future *f, void **value, const fo_error **err)
{
	return result(f, value, err, false);
}

int fo_future_take(fo_future *f, void **value, const fo_error **err)
{
	return result(f, value, err, true);
}

int fo_future_cancel(fo_future *f)
{
	if (!f)
		return FO_EINVAL;
	pthread_mutex_lock(&f->mu);
	if (f->done && !f->cancelled) {
		pthread_mutex_unlock(&f->mu);
		return FO_END;
	}
	bool was = f->cancelled;
	f->cancelled = true;
	if (f->proc)
		fo__child_kill(&f->ch, SIGKILL); /* pidfd -1 once the supervisor took it */
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
	if (!was)
		fo__waker_signal(&f->wk);
	return FO_OK;
}

int fo_future_fd(fo_future *f)
{
	if (!f || f->in_set)
		return FO_EINVAL;
	pthread_mutex_lock(&f->mu);
	int rc = fo__waker_fd(&f->wk);
	pthread_mutex_unlock(&f->mu);
	return rc;
}

int fo_future_arm(fo_future *f)
{
	if (!f)
		return FO_EINVAL;
	pthread_mutex_lock(&f->mu);
	int rc = fo__waker_prepare(&f->wk);
	if (rc == FO_OK) {
		rc = f->done || f->cancelled;
		if (rc)
			fo__waker_cancel(&f->wk);
	}
	pthread_mutex_unlock(&f->mu);
	return rc;
}

void fo_future_destroy(fo_future *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->mu);
	f->orphan = true;   /* a value that comes later is freed by the thread */
	void *v = f->value; /* a value already here is freed now, on this thread */
	f->value = NULL;
	pthread_mutex_unlock(&f->mu);
	if (v && f->rfree)
		f->rfree(v, f->rctx);
	fo__waker_stop(&f->wk);
	unref(f);
}

/* ---- waitfor -------------------------------------------------------------------------------- */

int fo_waitfor_create(fo_waitfor **out, size_t limit)
{
	if (!out)
		return FO_EINVAL;
	fo_waitfor *w = fo__zalloc(sizeof(*w));
	if (!w)
		return FO_ENOMEM;
	if (pthread_mutex_init(&w->mu, NULL) != 0) {
		fo__free(w);
		return FO_ENOMEM;
	}
	if (fo__cond_init(&w->cv) != FO_OK) {
		pthread_mutex_destroy(&w->mu);
		fo__free(w);
		return FO_ENOMEM;
	}
	fo__waker_init(&w->wk);
	w->limit = limit;
	*out = w;
	return FO_OK;
}

int fo_waitfor_add(fo_waitfor *w, fo_future *f)
{
	if (!w || !f || f->in_set || f->wk.efd >= 0)
		return FO_EINVAL;
	f->in_set = true;
	f->ow_prev = NULL;
	f->ow_next = w->owned;
	if (w->owned)
		w->owned->ow_prev = f;
	w->owned = f;
	pthread_mutex_lock(&f->mu);
	pthread_mutex_lock(&w->mu);
	w->inflight++;
	w->asked = false;
	if (f->done)
		enqueue_done(w, f);
	else
		f->wf = w;
	pthread_mutex_unlock(&w->mu);
	pthread_mutex_unlock(&f->mu);
	return FO_OK;
}

static bool wf_ready(const fo_waitfor *w)
{
	return w->dq_head || w->inflight == 0 || (w->limit && w->inflight < w->limit && !w->asked);
}

static int wf_next(fo_waitfor *w, fo_future **out, uint64_t deadline)
{
	pthread_mutex_lock(&w->mu);
	for (;;) {
		fo_future *f = w->dq_head;
		if (f) {
			w->dq_head = f->done_next;
			if (!w->dq_head)
				w->dq_tail = NULL;
			w->inflight--;
			w->asked = false;
			pthread_mutex_unlock(&w->mu);
			pthread_mutex_lock(&f->mu);
			f->wf = NULL;
			pthread_mutex_unlock(&f->mu);
			if (f->ow_prev)
				f->ow_prev->ow_next = f->ow_next;
			else
				w->owned = f->ow_next;
			if (f->ow_next)
				f->ow_next->ow_prev = f->ow_prev;
			f->ow_prev = f->ow_next = NULL;
			f->in_set = false;
			*out = f;
			return FO_OK;
		}
		if (w->limit && w->inflight < w->limit && !w->asked) {
			w->asked = true;
			pthread_mutex_unlock(&w->mu);
			return FO_NEED_WORK;
		}
		if (w->inflight == 0) {
			pthread_mutex_unlock(&w->mu);
			return FO_END;
		}
		if (fo__cond_wait_until(&w->cv, &w->mu, deadline) == FO_TIMEDOUT) {
			pthread_mutex_unlock(&w->mu);
			return FO_TIMEDOUT;
		}
	}
}

int fo_waitfor_next(fo_waitfor *w, fo_future **f)
{
	if (!w || !f)
		return FO_EINVAL;
	return wf_next(w, f, FO__NO_DEADLINE);
}

int fo_waitfor_timed_next(fo_waitfor *w, fo_future **f, int64_t timeout_ns)
{
	if (!w || !f)
		return FO_EINVAL;
	return wf_next(w, f, fo__iter_deadline(timeout_ns));
}

size_t fo_waitfor_in_flight(fo_waitfor *w)
{
	if (!w)
		return 0;
	pthread_mutex_lock(&w->mu);
	size_t n = w->inflight;
	pthread_mutex_unlock(&w->mu);
	return n;
}

int fo_waitfor_fd(fo_waitfor *w)
{
	if (!w)
		return FO_EINVAL;
	pthread_mutex_lock(&w->mu);
	int rc = fo__waker_fd(&w->wk);
	pthread_mutex_unlock(&w->mu);
	return rc;
}

int fo_waitfor_arm(fo_waitfor *w)
{
	if (!w)
		return FO_EINVAL;
	pthread_mutex_lock(&w->mu);
	int rc = fo__waker_prepare(&w->wk);
	if (rc == FO_OK) {
		rc = wf_ready(w);
		if (rc)
			fo__waker_cancel(&w->wk);
	}
	pthread_mutex_unlock(&w->mu);
	return rc;
}

void fo_waitfor_destroy(fo_waitfor *w)
{
	if (!w)
		return;
	/* Detach first (under each f->mu): afterwards no thread touches w. */
	for (fo_future *f = w->owned; f; f = f->ow_next) {
		pthread_mutex_lock(&f->mu);
		f->wf = NULL;
		pthread_mutex_unlock(&f->mu);
	}
	for (fo_future *f = w->owned, *n; f; f = n) {
		n = f->ow_next;
		f->in_set = false;
		fo_future_cancel(f);
		fo_future_destroy(f);
	}
	fo__waker_stop(&w->wk);
	fo__waker_fini(&w->wk);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	fo__free(w);
}
