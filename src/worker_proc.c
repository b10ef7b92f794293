/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * worker_proc.c - the process backend of the pool (pmap_impl.h; design.md
 * §13).  Each pool worker thread is the proxy of one child process: it
 * forks the child (which runs init, then fn for every ITEM frame, then
 * fini), sends encoded inputs, and turns the child's frames back into
 * outcomes.  A child that dies is reaped at once (pidfd) and replaced at the
 * next run (init again); the item it was computing fails with a message
 * naming the signal or exit status (FO_FAILED), or FO_TIMEDOUT when the
 * watchdog killed it.
 *
 * The child never locks anything of the parent: it reads only the options,
 * fn and its init argument from its copy of the parent's memory.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <fanout/codec.h>
#include "pmap_impl.h"
#include "proc.h"

struct pw_shared {
	_Atomic uint64_t started, finished; /* written by the child only */
	struct fo__shm rings;               /* the frames, both ways (proc.h) */
};

struct pw {
	const fo_pmap_opts *o;
	fo_pmap_fn fn;
	size_t index;
	void *init_arg;
	pthread_mutex_t mu;  /* ch against interrupt(): spawn, kill, reap */
	struct fo__child ch; /* under mu; ch.pid < 0: no child (the next run spawns one) */
	bool killed;         /* under mu: interrupt() killed the child */
	bool died_in_init;   /* the last spawn's child died before READY */
	struct fo__tx tx;
	struct fo__rx rx;
	fo_buf enc;
	size_t nq; /* attempts posted whose outcome has not been collected */
	/* The last frame appended to tx is an ITEM_MORE that starts more_tail
	 * bytes before tx.len (0: it is not): if the unit's next item fails to
	 * encode, that frame ends the unit instead (see end_unit()). */
	size_t more_tail;
	uint64_t nparsed; /* outcomes read from the current child */
	/* A page shared with the child: how many ITEM frames it has started and
	 * finished.  The child sends a unit's outputs together, at its end, so
	 * when it dies the outcomes of items it finished may be lost with it:
	 * these counts tell the parent which item it died on (if any), and which
	 * finished unseen (those run again on the replacement, like the items
	 * never started). */
	struct pw_shared *sh;
};

/* Fill @it with a failure: @code, @sys_errno, a copy of @msg (NULL: static text). */
static void set_fail(struct fo__pw_item *it, int code, int sys_errno, const char *msg)
{
	it->status = code;
	it->sys_errno = sys_errno;
	it->out = NULL;
	it->msg = msg ? fo__strdup(msg) : NULL;
}

/* A callback's failure @code, right after it returned (errno, fo_fail() message). */
static void cb_fail(struct fo__pw_item *it, int code)
{
	fo_error e;
	char *owned;
	fo__cb_capture(code, &e, &owned);
	it->status = code;
	it->sys_errno = e.sys_errno;
	it->out = NULL;
	it->msg = owned;
}

/* ---- the child ------------------------------------------------------------------------------- */

/* Queue an ERR frame for a callback's failure @code (message: its fo_fail() text). */
static void child_fail(struct fo__tx *tx, int code, const char *what)
{
	int err = errno; /* first: the callback's errno */
	const char *msg = fo__cb_message(code);
	fo__tx_err(tx, code, code == FO_ESYS ? err : 0, msg ? msg : what);
}

static void child_item(const struct pw *p, void *wstate, const unsigned char *data, uint32_t len,
                       struct fo__tx *tx, fo_buf *enc)
{
	const fo_pmap_opts *o = p->o;
	void *in = NULL, *out = NULL;
	fo__cb_begin();
	int rc = o->in_codec.decode(o->in_codec.ctx, data, len, &in);
	if (rc != FO_OK) {
		child_fail(tx, rc, "input decode failed in the worker");
		return;
	}
	fo__cb_begin();
	rc = p->fn(o->ctx, wstate, in, &out);
	if (rc != FO_OK) {
		child_fail(tx, rc, NULL);
		if (o->in_codec.item_free) /* left untouched by a failed fn */
			o->in_codec.item_free(in, o->in_codec.ctx);
		return;
	}
	if (o->paired && in != out && o->in_codec.item_free) /* paired: fn did not take it */
		o->in_codec.item_free(in, o->in_codec.ctx);
	if (!out) {
		fo__tx_err(tx, FO_EINVAL, 0, "pmap callback returned FO_OK without an output");
		return;
	}
	fo_buf_reset(enc);
	fo__cb_begin();
	rc = o->out_codec.encode(o->out_codec.ctx, out, enc);
	if (rc != FO_OK)
		child_fail(tx, rc, "output encode failed in the worker");
	else if (fo__tx_frame(tx, FO__F_OK, enc->data, enc->len) != FO_OK)
		fo__tx_err(tx, FO_ENOMEM, 0, "no memory for the output frame in the worker");
	if (o->item_free)
		o->item_free(out, o->item_free_ctx);
}

/* The child's whole life (its memory is a copy of the parent's at the fork). */
static int child_main(void *arg, int fd)
{
	const struct pw *p = arg;
	const fo_pmap_opts *o = p->o;
	struct fo__tx tx = {0};
	struct fo__rx rx = {0};
	struct fo__cend e = {.fd = fd, .shm = &p->sh->rings};
	fo_buf enc;
	fo_buf_init(&enc);
	void *wstate = NULL;
	if (o->init) {
		fo__cb_begin();
		int rc = o->init(o->ctx, p->init_arg, &wstate);
		if (rc != FO_OK) {
			child_fail(&tx, rc, NULL);
			fo__cend_flush(&e, &tx);
			return 0;
		}
	}
	fo__tx_frame(&tx, FO__F_READY, NULL, 0);
	for (;;) {
		uint32_t type, len;
		const unsigned char *data;
		int f = fo__rx_frame(&rx, &type, &data, &len);
		if (f == 0) {
			/* Nothing more queued: send the outputs, then sleep for input. */
			if (fo__cend_flush(&e, &tx) != FO_OK)
				break; /* the parent is gone or closed: finish */
			if (fo__cend_fill(&e, &rx) != FO_OK)
				break;
			continue;
		}
		if (f < 0 || (type != FO__F_ITEM && type != FO__F_ITEM_MORE))
			break; /* STOP (or a corrupt stream) */
		/* relaxed (both): the parent reads them only after our death (reaped). */
		uint64_t nth = atomic_load_explicit(&p->sh->started, memory_order_relaxed) + 1;
		atomic_store_explicit(&p->sh->started, nth, memory_order_relaxed);
		child_item(p, wstate, data, len, &tx, &enc);
		atomic_store_explicit(&p->sh->finished, nth, memory_order_relaxed);
		/* The outputs of a unit (an item, or a chunk: ITEM_MORE until its
		 * last item) leave before the next unit starts: the next may run
		 * for a long time or forever (until a timeout kills us), and what
		 * is finished must not wait behind it (B15c hung that way when
		 * outputs waited for the input to run dry or for a clock tick).
		 * A chunk's outputs go as one send, as the thread backend
		 * publishes a chunk at once. */
		if (type == FO__F_ITEM && fo__cend_flush(&e, &tx) != FO_OK)
			break;
	}
	fo__cend_flush(&e, &tx);
	if (o->fini)
		o->fini(o->ctx, wstate);
	return 0;
}

/* ---- the parent (the proxy thread) ------------------------------------------------------------
 */

/* Reap the child (dead, or killed here first) and describe its end in @it:
 * FO_TIMEDOUT when interrupt() killed it, else FO_FAILED naming the cause. */
static void child_lost(struct pw *p, struct fo__pw_item *it, const char *when)
{
	pthread_mutex_lock(&p->mu);
	fo__child_kill(&p->ch, SIGKILL); /* closed its end but lives on: make sure */
	pid_t pid = p->ch.pid;
	struct fo__exit e;
	fo__child_reap(&p->ch, &e);
	bool killed = p->killed;
	p->killed = false;
	pthread_mutex_unlock(&p->mu);
	p->tx.off = p->tx.len = 0;
	p->rx.off = p->rx.len = 0;
	if (!it)
		return;
	char who[64], buf[192];
	snprintf(who, sizeof(who), "pmap worker %zu (pid %ld)", p->index, (long)pid);
	if (killed) {
		snprintf(buf, sizeof(buf), "%s killed at the item's timeout", who);
		set_fail(it, FO_TIMEDOUT, 0, buf);
		return;
	}
	fo__exit_describe(&e, who, buf, sizeof(buf) - 40);
	size_t l = strlen(buf);
	snprintf(buf + l, sizeof(buf) - l, " %s", when);
	set_fail(it, FO_FAILED, 0, buf);
}

/* A corrupt or unexpected frame: the child is not trusted any more. */
static void child_corrupt(struct pw *p, struct fo__pw_item *it)
{
	child_lost(p, NULL, NULL);
	set_fail(it, FO_FAILED, 0, "pmap worker sent a corrupt frame (killed)");
}

/* Fork a child and wait for its init: FO_OK, or the failure in @why. */
static int spawn_once(struct pw *p, struct fo__pw_item *why)
{
	struct fo__child ch;
	p->tx.off = p->tx.len = 0;
	p->rx.off = p->rx.len = 0;
	p->nq = 0;
	p->nparsed = 0;
	/* relaxed: no child runs now; fork() orders them before the child's reads. */
	atomic_store_explicit(&p->sh->started, 0, memory_order_relaxed);
	atomic_store_explicit(&p->sh->finished, 0, memory_order_relaxed);
	fo__shm_reset(&p->sh->rings);
	if (fo__child_spawn(&ch, child_main, p) != FO_OK) {
		int e = errno;
		char buf[128];
		snprintf(buf, sizeof(buf), "pmap worker %zu: fork failed: %s", p->index,
		         strerror(e));
		set_fail(why, FO_ESYS, e, buf);
		return FO_ESYS;
	}
	ch.shm = &p->sh->rings; /* the frames go through the rings */
	pthread_mutex_lock(&p->mu);
	p->ch = ch;
	p->killed = false;
	pthread_mutex_unlock(&p->mu);
	int rc = fo__child_io(&p->ch, &p->tx, &p->rx, true);
	uint32_t type = 0, len = 0;
	const unsigned char *data = NULL;
	int f = rc == FO_OK ? fo__rx_frame(&p->rx, &type, &data, &len) : 0;
	if (f == 1 && type == FO__F_READY && len == 0)
		return FO_OK;
	if (f == 1 && type == FO__F_ERR) {
		int code = FO_FAILED, err = 0;
		char *msg = NULL;
		if (fo__err_parse(data, len, &code, &err, &msg) == FO_OK) {
			child_lost(p, NULL, NULL);
			why->status = code;
			why->sys_errno = err;
			why->out = NULL;
			why->msg = msg;
			return code;
		}
	}
	if (rc == FO_ECLOSED) {
		child_lost(p, why, "during init");
		p->died_in_init = true;
	} else if (rc != FO_OK)
		child_lost(p, NULL, NULL), set_fail(why, rc, 0, "pmap worker: I/O failed at init");
	else
		child_corrupt(p, why);
	return why->status;
}

/* A child that dies during init (a signal: the OOM killer, a stray kill) is
 * forked again, at most SPAWN_TRIES times in a row; an init that returns an
 * error, or a fork that fails, is final at once. */
#define SPAWN_TRIES 3

static int spawn_child(struct pw *p, struct fo__pw_item *why)
{
	for (int tries = 1;; tries++) {
		p->died_in_init = false;
		int rc = spawn_once(p, why);
		if (rc == FO_OK || !p->died_in_init || tries == SPAWN_TRIES)
			return rc;
		fo__free(why->msg);
		why->msg = NULL;
	}
}

static int pw_start(const fo_pmap_opts *o, fo_pmap_fn fn, size_t index, void *init_arg, void **self,
                    struct fo__pw_item *why)
{
	struct pw *p = fo__zalloc(sizeof(*p));
	if (!p || pthread_mutex_init(&p->mu, NULL) != 0) {
		fo__free(p);
		set_fail(why, FO_ENOMEM, 0, NULL);
		return FO_ENOMEM;
	}
	p->o = o;
	p->fn = fn;
	p->index = index;
	p->init_arg = init_arg;
	p->ch = (struct fo__child){.pid = -1, .pidfd = -1, .fd = -1};
	fo_buf_init(&p->enc);
	void *pg =
	    mmap(NULL, sizeof(*p->sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int rc = FO_ESYS;
	if (pg == MAP_FAILED)
		set_fail(why, FO_ESYS, errno, "pmap worker: mmap failed");
	else
		p->sh = pg, rc = spawn_child(p, why);
	if (rc != FO_OK) {
		if (p->sh)
			munmap(p->sh, sizeof(*p->sh));
		fo__tx_fini(&p->tx);
		fo__rx_fini(&p->rx);
		fo_buf_fini(&p->enc);
		pthread_mutex_destroy(&p->mu);
		fo__free(p);
		return rc;
	}
	*self = p;
	return FO_OK;
}

/* The outcome of the frame for @it. */
static void take_frame(struct pw *p, struct fo__pw_item *it, uint32_t type,
                       const unsigned char *data, uint32_t len)
{
	const fo_codec *c = &p->o->out_codec;
	if (type == FO__F_OK) {
		void *out = NULL;
		fo__cb_begin();
		int rc = c->decode(c->ctx, data, len, &out);
		if (rc != FO_OK) {
			cb_fail(it, rc);
			return;
		}
		it->status = FO_OK;
		it->sys_errno = 0;
		it->msg = NULL;
		it->out = out;
		return;
	}
	int code, err;
	char *msg;
	if (type != FO__F_ERR || fo__err_parse(data, len, &code, &err, &msg) != FO_OK) {
		child_corrupt(p, it);
		return;
	}
	it->status = code;
	it->sys_errno = err;
	it->msg = msg;
	it->out = NULL;
}

/* The unit's last item was not posted (it failed to encode): the item posted
 * before it, as ITEM_MORE, ends the unit instead.  That frame is still
 * unsent: posts append, and only collect (after every post of the unit)
 * sends. */
static void end_unit(struct pw *p)
{
	if (p->more_tail && p->tx.len - p->tx.off >= p->more_tail) {
		uint32_t type = FO__F_ITEM;
		memcpy(p->tx.data + p->tx.len - p->more_tail + 4, &type, sizeof(type));
	}
	p->more_tail = 0;
}

static int pw_post(void *self, struct fo__pw_item *it, bool more)
{
	struct pw *p = self;
	if (p->nq == 0) {
		/* Nothing outstanding: the moment to replace a child that died or was
		 * killed after its last outcome was read (ch is ours to read: only
		 * this thread writes it). */
		pthread_mutex_lock(&p->mu);
		bool have = p->ch.pid >= 0, killed = p->killed;
		pthread_mutex_unlock(&p->mu);
		if (have && killed)
			child_lost(p, NULL, NULL), have = false;
		if (!have && spawn_child(p, it) != FO_OK)
			return -1;
	}
	const fo_codec *c = &p->o->in_codec;
	fo_buf_reset(&p->enc);
	fo__cb_begin();
	int rc = c->encode(c->ctx, it->in, &p->enc);
	if (rc != FO_OK) {
		cb_fail(it, rc);
		if (!more)
			end_unit(p);
		return 0;
	}
	if ((rc = fo__tx_frame(&p->tx, more ? FO__F_ITEM_MORE : FO__F_ITEM, p->enc.data,
	                       p->enc.len)) != FO_OK) {
		set_fail(it, rc, 0, "pmap: input frame too large or no memory");
		if (!more)
			end_unit(p);
		return 0;
	}
	p->more_tail = more ? FO__FRAME_HDR + p->enc.len : 0;
	p->nq++;
	return 1;
}

static size_t pw_collect(void *self, struct fo__pw_item **q, size_t n, bool block, int *lost)
{
	struct pw *p = self;
	*lost = 0;
	int rc = fo__child_pump(&p->ch, &p->tx, &p->rx, block);
	size_t k = 0;
	for (; k < n; k++) {
		uint32_t type, len;
		const unsigned char *data;
		int f = fo__rx_frame(&p->rx, &type, &data, &len);
		if (f == 0)
			break;
		if (f < 0) {
			child_corrupt(p, q[k]);
		} else {
			take_frame(p, q[k], type, data, len);
			if (p->ch.pid >= 0)
				continue;
		}
		/* Corrupt: the child is killed; q[k] failed, the rest was dropped. */
		p->nq = 0;
		*lost = 1;
		return k + 1;
	}
	p->nq -= k;
	p->nparsed += k;
	if (rc == FO_OK)
		return k;
	/* The child is gone (or the socket failed) and every complete frame has
	 * been parsed.  It died on its started-th item (counted from 1 since its
	 * fork); the ones between the outcomes read and that one finished but
	 * their outputs died with it. */
	struct fo__pw_item why = {0};
	if (rc == FO_ECLOSED)
		child_lost(p, &why, "while computing the item");
	else
		child_lost(p, NULL, NULL),
		    set_fail(&why, rc, 0, "pmap worker: I/O with the worker failed");
	/* relaxed: the child is reaped: its stores are all visible. */
	uint64_t started = atomic_load_explicit(&p->sh->started, memory_order_relaxed);
	uint64_t finished = atomic_load_explicit(&p->sh->finished, memory_order_relaxed);
	p->nq = 0;
	if (started == finished || started <= p->nparsed || started - p->nparsed > n - k) {
		fo__free(why.msg); /* died between items: nobody to blame */
		*lost = 2;
		return k;
	}
	size_t b = k + (size_t)(started - p->nparsed) - 1; /* q[b]: the one it died on */
	struct fo__pw_item *x = q[b];
	memmove(q + k + 1, q + k, (b - k) * sizeof(*q)); /* it first, the rest after */
	q[k] = x;
	x->status = why.status;
	x->sys_errno = why.sys_errno;
	x->msg = why.msg;
	x->out = NULL;
	*lost = 1;
	return k + 1;
}

static void pw_stop(void *self)
{
	struct pw *p = self;
	if (p->ch.pid >= 0) {
		/* STOP: the child runs fini and exits; we wait for it (no timer). */
		if (fo__tx_frame(&p->tx, FO__F_STOP, NULL, 0) != FO_OK ||
		    fo__child_io(&p->ch, &p->tx, &p->rx, false) != FO_OK)
			fo__child_kill(&p->ch, SIGKILL);
		struct fo__exit e;
		pthread_mutex_lock(&p->mu);
		fo__child_reap(&p->ch, &e);
		pthread_mutex_unlock(&p->mu);
	}
	fo__tx_fini(&p->tx);
	fo__rx_fini(&p->rx);
	fo_buf_fini(&p->enc);
	munmap(p->sh, sizeof(*p->sh));
	pthread_mutex_destroy(&p->mu);
	fo__free(p);
}

static void pw_interrupt(void *self)
{
	struct pw *p = self;
	pthread_mutex_lock(&p->mu);
	if (p->ch.pid >= 0) {
		p->killed = true;
		fo__child_kill(&p->ch, SIGKILL);
	}
	pthread_mutex_unlock(&p->mu);
}

const struct fo__pmap_ops fo__pmap_procs = {
    .name = "processes",
    .copies_input = true,
    .start = pw_start,
    .post = pw_post,
    .collect = pw_collect,
    .stop = pw_stop,
    .interrupt = pw_interrupt,
};
