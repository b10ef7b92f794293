/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * pmap_impl.h - the seam between the pool (src/pmap.c: rounds, order,
 * bounds, retries, policies, the watchdog) and a backend that runs the
 * user's init/fn/fini somewhere (src/worker_thread.c: on the worker thread
 * itself; src/worker_proc.c: in a child process the worker thread drives).
 *
 * Every pool worker is a thread.  It calls start() once, then run() for
 * each batch of items it took (or post()/collect(), keeping several items in
 * flight), then stop(); all on that thread, without the pool's mutex.
 * interrupt() is the watchdog's, under the pool's mutex, concurrently with
 * run()/collect() on the worker's thread.
 */
#ifndef FO_PMAP_IMPL_H
#define FO_PMAP_IMPL_H

#include <fanout/pmap.h>
#include "internal.h"

/* One item of a run, and its outcome (one attempt). */
struct fo__pw_item {
	void *in;      /* the input (the pool's; see copies_input) */
	void *out;     /* out: the output when status is FO_OK */
	int status;    /* out: FO_OK or the failure */
	int sys_errno; /* out: errno behind an FO_ESYS failure, else 0 */
	char *msg;     /* out: an owned (fo__alloc) message, or NULL: the static text */
};

struct fo__pmap_ops {
	const char *name;
	/* fn works on a copy of the input: after FO_OK the pool still owns (and,
	 * unpaired, frees) the input. */
	bool copies_input;
	/* Set up worker @index: FO_OK (*@self set) or the failure, described in
	 * *@why (status, sys_errno, msg).  @o and @fn outlive the worker. */
	int (*start)(const fo_pmap_opts *o, fo_pmap_fn fn, size_t index, void *init_arg,
	             void **self, struct fo__pw_item *why);
	/* One attempt at each of it[0..n): returns how many got an outcome, in
	 * order (>= 1), or 0 when the worker cannot go on (it[0] says why).
	 * NULL for pipelined backends. */
	size_t (*run)(void *self, struct fo__pw_item *it, size_t n);
	/*
	 * Pipelined backends (processes) have post/collect instead of run: several
	 * attempts are in flight at once, and outcomes come back in post order.
	 *
	 * post: queue one attempt at @it->in (no I/O needed yet; the first post
	 * after a lost worker starts a new one, init again).  @more: the next
	 * post is the next item of the same unit of work (a chunk), so this
	 * outcome may come back together with that unit's last one; false: it
	 * comes back before the worker starts the next posted item.  Returns 1 (queued),
	 * 0 (@it has its outcome already: the input failed to encode; nothing
	 * queued) or -1 (the worker cannot go on: a replacement's fork or init
	 * failed; @it says why).
	 *
	 * collect: @q[0..n) are the queued attempts, oldest first.  Sends what is
	 * queued, then fills the outcomes of the oldest ones that finished and
	 * returns how many (with @block: waits until at least one, or until the
	 * worker is lost).  *@lost: 0; 1 when the worker was lost (died, killed
	 * by interrupt(), corrupt frame) while computing q[ret-1], whose outcome
	 * says so (FO_TIMEDOUT when interrupt() killed it), and q[ret..n) were
	 * never started (post them again); 2 when it was lost with none of @q
	 * started (all of q[ret..n) to post again).
	 */
	int (*post)(void *self, struct fo__pw_item *it, bool more);
	size_t (*collect)(void *self, struct fo__pw_item **q, size_t n, bool block, int *lost);
	/* Clean up (fini) and free @self. */
	void (*stop)(void *self);
	/* Abort the current run's call at its deadline; the run returns
	 * FO_TIMEDOUT for it.  NULL: calls cannot be aborted (the pool abandons
	 * the worker instead). */
	void (*interrupt)(void *self);
};

extern const struct fo__pmap_ops fo__pmap_threads;
extern const struct fo__pmap_ops fo__pmap_procs;

#endif /* FO_PMAP_IMPL_H */
