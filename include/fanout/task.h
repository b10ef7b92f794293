/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/**
 * fanout/task.h - futures of calls run on their own thread, and fo_waitfor,
 * a completion set with a concurrency limit (driven by wake-ups, never by
 * polling).
 *
 * fo_task_spawn() runs fn(arg, &value) on a new (detached) thread and
 * returns a future.  The future resolves once, when fn returns: FO_OK with
 * its value, or failed with its code.  Cancel: a running thread cannot be
 * killed, so fo_future_cancel() marks the future: waits return FO_ECANCELED
 * at once, the value fn returns later is discarded (freed with
 * opts.result_free), and the thread runs on until fn returns (arg must stay
 * valid until then).  A future is freed by fo_future_destroy() and its
 * thread, whichever is last; destroy never waits.
 *
 * Event loops: fo_future_fd()/fo_future_arm() and fo_waitfor_fd()/
 * fo_waitfor_arm() follow the protocol of fo_cursor_fd()/fo_cursor_arm():
 * call arm() after finding nothing ready; 1 = ready now (nothing armed),
 * 0 = sleep until the fd polls readable.  The fd is an eventfd created on
 * first use, close-on-exec, non-blocking, owned by the object.
 *
 * fo_waitfor: add futures (the set takes them), then call fo_waitfor_next()
 * repeatedly: FO_OK hands back a completed future (completion order; the
 * caller owns it again), FO_NEED_WORK asks for more work while fewer than
 * `limit` futures are in flight (once per completion: after declining, the
 * call waits for a completion instead of asking again), FO_END when nothing
 * is in flight and nothing was added after the last FO_NEED_WORK.  With
 * limit 0 it never asks and ends when it has drained.  A cancelled future
 * counts as in flight until its thread returns.
 *
 * Backends: FO_THREADS runs fn on a new thread.  FO_PROCESSES forks once per
 * call, on the calling thread: the child sees the caller's memory as it was
 * at the call (arg need not outlive anything, the child's writes stay in
 * the child), runs fn, sends its value through
 * opts.out_codec (required: FO_EINVAL without; a NULL value arrives as
 * NULL) or its failure (the code, errno for FO_ESYS, the fo_fail()
 * message) and leaves with _exit() - it never returns into the caller's
 * code.  A supervisor thread per task sleeps in poll() on the child's
 * socket and pidfd (no timer), reaps the child and resolves the future; a
 * child killed by a signal or exiting without a result resolves it with
 * FO_FAILED and a message naming the signal or exit status ("task child
 * (pid 4242) killed by signal 9 (SIGKILL) before its result").
 * fo_future_cancel() kills the child (SIGKILL through its pidfd).  The value
 * is out_codec's decoded item: result_free should be out_codec.item_free.
 * Fork safety is pmap.h's ("Fork safety"): in the child fn may read any
 * memory and allocate, but must not take a lock another thread may have
 * held at the call (including the caller's own locks held across the
 * spawn), nor use fanout objects of the parent.  The child is forked by
 * the task's supervisor thread while the caller waits, so it dies with the
 * process (PR_SET_PDEATHSIG follows the forking thread, which lives until
 * the child is reaped), not with the thread that called fo_task_spawn().
 *
 * Concurrency table (X = may run at the same time):
 *
 *                    wait, result(f)  cancel(f)  fd/arm(f)  destroy(f)
 *   wait, result(f)        X              X          X          -
 *   cancel(f)              X              X          X          -
 *   fd/arm(f)              X              X          -          -
 *   (fn runs on the task's own thread, concurrently with everything.  A
 *    future inside a waitfor belongs to it: no calls on it until
 *    fo_waitfor_next() hands it back.  A waitfor has one user thread at a
 *    time; different futures and waitfors are independent.)
 */
#ifndef FANOUT_TASK_H
#define FANOUT_TASK_H

#include <stdbool.h>
#include <stdint.h>

#include <fanout/export.h>
#include <fanout/iter.h>
#include <fanout/pmap.h> /* fo_backend */

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fo_future fo_future;
typedef struct fo_waitfor fo_waitfor;

/**
 * fo_task_fn - the call: sets *@value (may stay NULL) and returns FO_OK, or
 * returns an error code (the future fails with it; *@value is ignored).
 */
typedef int (*fo_task_fn)(void *arg, void **value);

/**
 * fo_task_opts - fo_task_opts_init() first.
 * @backend:     FO_THREADS (default) or FO_PROCESSES (fork per call).
 * @result_free: frees a value nobody took (destroy, cancel); may be NULL.
 * @result_ctx:  passed to @result_free.
 * @out_codec:   FO_PROCESSES: the value's codec (encode in the child, decode
 *               here; required).  Ignored with threads.
 */
typedef struct fo_task_opts {
	fo_backend backend;
	fo_item_free_fn result_free;
	void *result_ctx;
	fo_codec out_codec;
} fo_task_opts;

/** fo_task_opts_init() - FO_THREADS, no destructor.  NULL: no-op. */
FO_API void fo_task_opts_init(fo_task_opts *o);

/**
 * fo_task_spawn() - run fn(arg, &value) on a new thread (or in a forked child).
 * Returns: FO_OK (*@f set); FO_EINVAL (@f or @fn NULL, unknown backend,
 * FO_PROCESSES without out_codec encode/decode); FO_ENOMEM; FO_ESYS (no
 * thread, or fork/socketpair/pidfd failed: nothing runs).
 * Ownership: the caller owns *@f (fo_future_destroy()); @arg stays the
 * caller's and must outlive the call.
 * Threads: any.  Blocking: no (thread creation; with processes a fork).
 */
FO_API int fo_task_spawn(fo_future **f, fo_task_fn fn, void *arg, const fo_task_opts *o);

/**
 * fo_future_wait() - wait until the future resolves.
 * Returns: FO_OK (resolved: see fo_future_result()); FO_ECANCELED
 * (cancelled, at once); FO_EINVAL (@f NULL).
 * Threads: any, several at once.  Blocking: until fn returns (condvar).
 */
FO_API int fo_future_wait(fo_future *f);

/**
 * fo_future_timed_wait() - as fo_future_wait(), at most @timeout_ns
 * (status.h's convention: 0 = just check, negative = no limit).
 * Returns: FO_OK; FO_TIMEDOUT; FO_ECANCELED; FO_EINVAL (@f NULL).
 */
FO_API int fo_future_timed_wait(fo_future *f, int64_t timeout_ns);

/** fo_future_done() - resolved or cancelled (a snapshot).  NULL: false. */
FO_API bool fo_future_done(fo_future *f);

/**
 * fo_future_result() - the outcome, without waiting.
 * @value: out (may be NULL): fn's value, still owned by the future (valid
 *         until destroy; fo_future_take() takes it).
 * @err:   out (may be NULL): NULL, or the failure (owned by the future).
 * Returns: FO_OK (fn succeeded); FO_FAILED (fn failed: *@err has its code);
 * FO_EMPTY (not resolved yet); FO_ECANCELED (cancelled: no value);
 * FO_EINVAL (@f NULL).
 * Threads: any.  Blocking: a short mutex section.
 */
FO_API int fo_future_result(fo_future *f, void **value, const fo_error **err);

/**
 * fo_future_take() - as fo_future_result(), but on FO_OK the value becomes
 * the caller's (the future forgets it; a second take gives NULL).
 */
FO_API int fo_future_take(fo_future *f, void **value, const fo_error **err);

/**
 * fo_future_cancel() - give up on the result (see the header comment).
 * Returns: FO_OK (cancelled now or before); FO_END (already resolved:
 * nothing changed, the result stays); FO_EINVAL (@f NULL).
 * Threads: any.  Blocking: no; wakes the waiters and the fd.
 */
FO_API int fo_future_cancel(fo_future *f);

/**
 * fo_future_fd() - an eventfd that polls readable once the future is
 * resolved or cancelled (after arm() returned 0).  Returns: the fd (>= 0);
 * FO_EINVAL (@f NULL or inside a waitfor); FO_ESYS.
 * Ownership: the future's; closed by fo_future_destroy().
 * Threads: one user thread for fd/arm.
 */
FO_API int fo_future_fd(fo_future *f);

/**
 * fo_future_arm() - ask for one signal on fo_future_fd() (status.h: values
 * that are not status codes).
 * Returns: 1 (resolved or cancelled: nothing armed); 0 (armed);
 * FO_EINVAL (@f NULL, or fo_future_fd() not called yet).
 * Threads: one user thread for fd/arm.
 */
FO_API int fo_future_arm(fo_future *f);

/**
 * fo_future_destroy() - drop the handle.  A value the future holds is freed
 * here, on the caller's thread (result_free).  A task still running keeps
 * running; when fn returns, its thread frees the value and the rest (so
 * after a resolved wait, result_free never runs on the task's thread).
 * NULL: no-op.
 * Threads: once, after every other call on @f.  Blocking: never.
 */
FO_API void fo_future_destroy(fo_future *f);

/**
 * fo_waitfor_create() - an empty completion set.
 * @limit: NEED_WORK while fewer than @limit are in flight; 0: never asks.
 * Returns: FO_OK; FO_EINVAL (@w NULL); FO_ENOMEM.
 * Ownership: the caller owns *@w until fo_waitfor_destroy().
 * Threads: any; then one user thread at a time (see above).
 */
FO_API int fo_waitfor_create(fo_waitfor **w, size_t limit);

/**
 * fo_waitfor_add() - put @f in the set (it takes @f; resolved or not).
 * Returns: FO_OK; FO_EINVAL (NULL, or @f already in a set or with an fd).
 * Ownership: the set owns @f until fo_waitfor_next() returns it.
 * Threads: the set's user.  Blocking: no.
 */
FO_API int fo_waitfor_add(fo_waitfor *w, fo_future *f);

/**
 * fo_waitfor_next() - the next event (see the header comment).
 * Returns: FO_OK (*@f: a completed future, the caller's now);
 * FO_NEED_WORK (add futures, or decline by calling again); FO_END; FO_EINVAL
 * (NULL arguments).  Not sticky: adding after FO_END starts again.
 * Threads: the set's user.  Blocking: sleeps on a condvar until a
 * completion (never polls).
 */
FO_API int fo_waitfor_next(fo_waitfor *w, fo_future **f);

/**
 * fo_waitfor_timed_next() - as fo_waitfor_next(), at most @timeout_ns
 * (status.h's convention: 0 = do not wait, negative = no limit):
 * FO_TIMEDOUT when nothing happened.
 */
FO_API int fo_waitfor_timed_next(fo_waitfor *w, fo_future **f, int64_t timeout_ns);

/** fo_waitfor_in_flight() - futures added and not yet returned.  NULL: 0. */
FO_API size_t fo_waitfor_in_flight(fo_waitfor *w);

/**
 * fo_waitfor_fd() - readiness of fo_waitfor_next(): the fd polls readable
 * when a completed future is waiting (after fo_waitfor_arm() returned 0).
 * Returns: the fd (>= 0); FO_EINVAL (@w NULL); FO_ESYS.
 * Ownership: the set's; closed by fo_waitfor_destroy().
 * Threads: the set's user thread.
 */
FO_API int fo_waitfor_fd(fo_waitfor *w);

/**
 * fo_waitfor_arm() - ask for one signal on fo_waitfor_fd() (status.h:
 * values that are not status codes).
 * Returns: 1 when fo_waitfor_next() would not sleep (a completion,
 * FO_NEED_WORK or FO_END is due; nothing armed); 0 (armed); FO_EINVAL (@w
 * NULL, or fo_waitfor_fd() not called yet).
 * Threads: the set's user thread.
 */
FO_API int fo_waitfor_arm(fo_waitfor *w);

/**
 * fo_waitfor_destroy() - cancel and destroy every future still in the set,
 * then free it.  NULL: no-op.  Blocking: never (threads run on).
 */
FO_API void fo_waitfor_destroy(fo_waitfor *w);

#ifdef __cplusplus
}
#endif
#endif /* FANOUT_TASK_H */
