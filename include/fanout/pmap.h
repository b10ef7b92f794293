/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/**
 * fanout/pmap.h - parallel map over any iterator (a pool of worker threads
 * or worker processes), and a lazy indexable map over arrays.
 *
 * fo_pmap() returns an iterator of fn(x) for the items x of a source
 * iterator, computed by `workers` threads.  The source is read lazily, by
 * the workers, one pull at a time, and only while the in-flight bound
 * allows:
 *
 *   in flight = items pulled from the source and not yet returned to the
 *               reader (being computed, retried, or finished and waiting)
 *   unordered:  in flight <= workers * (per_worker_buffer + chunk_size)
 *   ordered:    in flight <= workers * (per_worker_buffer + chunk_size)
 *                            + reorder_window
 *
 * so an endless source is fine.  Timed-out items (below) leave the bound at
 * once; each still holds its input (and, when it comes, its late output) in
 * its abandoned thread until its call returns.
 *
 * Order: `ordered` (the default) returns results in input order; a finished
 * item waits for every earlier one (the reorder window bounds how far
 * ahead the pool may run past a slow item).  An error surfaces at its own
 * index, after every earlier result (none is thrown away).
 * Unordered mode returns results in completion order: one slow item never
 * stalls the others.
 *
 * Errors: fn returning a code other than FO_OK is retried up to `retries`
 * more times on the same worker (fn must leave the input untouched when it
 * fails), then the error policy applies (FO_ERR_STOP: the output ends with
 * FO_FAILED {code} at that item's place and no more input is read; DROP:
 * the input is released and the item skipped; EMIT: an fo_error_item
 * owning the input, or in paired mode an fo_result with the error).  A
 * source that fails ends the output with FO_FAILED (the source's error)
 * after every result before it; FO_END after the last result.
 *
 * Timeouts: with timeout_ns > 0 an item whose call has run longer than
 * that (retries included) ends as an FO_TIMEDOUT error at its place (the
 * policy applies; the error item or fo_result has input NULL, since the
 * input is still in use).  A thread cannot be killed: its worker is
 * abandoned and a replacement worker is started at once (its init runs with
 * the same init argument, possibly while the abandoned one still runs), so
 * the pool keeps `workers` threads computing.  When the late call returns,
 * its output is released with opts.item_free, its input with the source's
 * destructor, fini runs, and the thread exits.  A watchdog thread (started
 * only when timeout_ns > 0) sleeps until the earliest deadline, so a timeout
 * and its replacement happen on time whether or not the reader is reading.
 * Closing the output waits for every call of its items to return,
 * abandoned ones included: a call that never returns blocks close.
 *
 * Chunks: with chunk_size k > 1 a worker pulls up to k inputs in one turn
 * at the source (one lock round instead of k) and computes them one after
 * the other.  Every input still gets its own result or error at its own
 * place: a failure is attributed to the input that failed and the other
 * inputs of the chunk are computed as usual.  The price: an input
 * waits for the calls before it in its chunk (unordered mode stays free of
 * head-of-line blocking only with k = 1).  When an item times out, the
 * inputs after it in its chunk go to the next free worker.
 *
 * Ownership (the rule of fanout/iter.h): the pool owns each input from its
 * pull until fn returns FO_OK (fn then owns it: it may return it as the
 * output or free it with the source's destructor) or until the pool
 * releases it (a dropped, stopped or timed-out item, or close).  Outputs
 * belong to the reader and are freed with opts.item_free.  Paired mode
 * returns fo_result items (fo_result_free(), the output's destructor):
 * there the pool keeps the input beside the output, so fn must NOT consume
 * it (the result owns both).  Every input and output is freed exactly once.
 *
 * Event loops: fo_iter_fd()/fo_iter_arm() work on a
 * pmap output (as on a cursor: arm returns 1 when a read would not return
 * FO_EMPTY, else one signal comes when one would); arming starts the
 * workers like a first read.
 *
 * Pools: fo_pool_create() makes the workers once;
 * fo_pool_map() runs one round over a source and may be called again after
 * the previous round's output is closed.  Workers start at the first read
 * of the first round, run init once and fini when the pool goes, and keep
 * their state across rounds.  fo_pmap() is a pool with a single round.
 *
 * Backends: FO_THREADS (the default) runs init, fn and fini on the worker
 * threads.  FO_PROCESSES runs them in
 * one child process per worker; everything above holds unchanged (order,
 * bounds, chunks, retries, policies, paired results, pools and rounds,
 * progress, fd/arm), with these differences:
 *
 *  - Items cross as bytes: opts.in_codec encodes each input in the parent
 *    and decodes it in the child; opts.out_codec encodes fn's output in the
 *    child and decodes it in the parent (both required: FO_EINVAL without).
 *    The reader's outputs are out_codec's decoded items, freed with
 *    out_codec.item_free (the output iterator's destructor; fo_result's
 *    output too).  In the child, fn gets a decoded copy with the thread
 *    contract (on FO_OK it owns it: returns it as the output or frees it
 *    with in_codec.item_free; paired mode: it must not take it; on failure
 *    untouched), and fn's output is freed there with opts.item_free after
 *    encoding.  The parent's input is released after FO_OK (unpaired), so
 *    error items and fo_result keep the parent's original input.
 *  - Start: each worker thread forks its child and waits for its init;
 *    init runs in the child with init_args[i], inherited through fork (the
 *    pointers need not be serialisable).  fini runs in the child at STOP
 *    (close of a fo_pmap output, destroy of a pool).
 *  - A child that dies mid-item (any signal, _exit, the OOM killer) is seen
 *    at once (its pidfd polls readable: no timer) and reaped; the item is
 *    retried on a fresh child within `retries`, else it fails at its place
 *    with FO_FAILED and a message naming the worker, its pid and the
 *    signal or exit status ("pmap worker 1 (pid 4242) killed by signal 9
 *    (SIGKILL) while computing the item").  The worker forks a replacement
 *    (init again) when it takes its next item; if that init fails (or the
 *    child dies during init 3 times in a row) the round fails with the cause (as a first init
 * failure does): never a hang, never a spin.
 *  - timeout_ns: the watchdog SIGKILLs the child; the item ends FO_TIMEDOUT
 *    WITH its input (the parent still has it) and the worker goes on with a
 *    fresh child: no thread is abandoned.
 *  - fn's fo_fail() message, FO_USER codes and errno (FO_ESYS) travel back in
 *    the result frame; a codec failure is an item failure with the codec's
 *    code (and fo_fail message).  The parent validates every frame (length,
 *    type, error payload): a corrupt frame kills that child and fails its
 *    item, never the parent.
 *  - Close / early close / pool destroy stop (fini) and reap every child.
 *  - Throughput: each worker keeps up to its share of the in-flight bound
 *    (ordered: 2 * (per_worker_buffer + chunk_size)) queued in its child, so
 *    the child computes several items per wake-up.  The bound stays the one
 *    above (it is never exceeded to go faster), so its default is larger
 *    with processes: FO_PMAP_BUFFER_AUTO resolves to 32 results per worker
 *    (16 with threads), enough for a wake-up of a child to carry a batch.
 *    Set per_worker_buffer explicitly to bound the memory of large items.
 *
 * Fork safety (processes): the child is forked by its worker thread, from
 * a program that may run other threads (its own and fanout's).  So that
 * this is safe, the child runs only: fanout's child loop, the codecs, init,
 * fn and fini.  It holds the memory of the whole program as it was at the
 * fork, but only one thread.  A callback in the child may read any memory
 * (init_args, globals, opts.ctx), allocate with malloc (glibc's malloc is
 * fork-safe; an allocator set with fo_set_allocator() must be too), use
 * stdio and system calls.  It must NOT take a lock another thread of the
 * parent might have held at the fork (the parent's mutexes, non-fork-safe
 * libraries), nor use the parent's fanout objects (streams, cursors,
 * iterators, pools, futures: their helper threads do not exist in the
 * child, their locks may be held): the child may create fresh objects of its
 * own.  Writes stay in the child.  The child keeps fds 0-2 and its own
 * socketpair end (fd 3) and closes every other inherited fd; it gets
 * SIGKILL when its worker thread (so the parent) dies (PR_SET_PDEATHSIG,
 * re-checked after setting), and always leaves through _exit(): it never
 * returns into the caller's code and runs no atexit handlers.  Every fd the
 * parent side opens is close-on-exec.  Design: docs/design.md §13.
 *
 * Concurrency table (X = may run at the same time):
 *
 *                       next*(out)  close(out)  progress_get(out)  release(out, x)
 *   next*(out)              -           -              X                X
 *   progress_get(out)       X           -              X                X
 *   (the output is an fo_iter: one reader at a time.  fn, init and fini run
 *    on the worker threads, concurrently with each other and the reader;
 *    the progress hook runs on the reader's thread, inside its reads.
 *    A pool's calls - fo_pool_map, fo_pool_destroy - may come from any
 *    thread, one at a time, and concurrently with reads of its round.)
 */
#ifndef FANOUT_PMAP_H
#define FANOUT_PMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <fanout/codec.h>
#include <fanout/export.h>
#include <fanout/iter.h>

#ifdef __cplusplus
extern "C" {
#endif

/** fo_backend - where the work runs: worker threads, or child processes. */
typedef enum fo_backend { FO_THREADS = 0, FO_PROCESSES = 1 } fo_backend;

/**
 * FO_PMAP_BUFFER_AUTO - per_worker_buffer's default: the pool picks it from
 * the backend when it is created.  16 with threads: a worker that finds no
 * room sleeps, so a small bound costs a wake-up every few items when fn is
 * short (B14, fn ~0.9 us: 2-3x the items/s of a bound of 2).  32 with
 * processes, whose items also cost a wake-up of another process per batch
 * (B15, chunk 1: 0.39 M items/s at 8, 0.72 M at 16, 1.23 M at 32).  Set it
 * explicitly to hold fewer results of large items.
 */
#define FO_PMAP_BUFFER_AUTO ((size_t)-1)

/**
 * fo_progress - counters for a progress bar (pmap, pipeline stages).
 * @in:        items pulled from the source.
 * @out:       items returned to the reader (results, error items).
 * @failed:    items whose call failed or timed out (after retries).
 * @in_flight: items pulled and not yet returned (see the bound above).
 */
typedef struct fo_progress {
	uint64_t in;
	uint64_t out;
	uint64_t failed;
	uint64_t in_flight;
} fo_progress;

/** A progress hook: @p is a snapshot valid during the call. */
typedef void (*fo_progress_fn)(void *ctx, const fo_progress *p);

/**
 * fo_pmap_fn - compute the output of @in.
 * @ctx:    opts.ctx (shared by every worker).
 * @wstate: this worker's state from opts.init (NULL without init).
 * @in:     the input.  On FO_OK it is the callback's (not in paired mode,
 *          where the pool keeps it); on failure it must be left untouched.
 * @out:    out: the output, non-NULL, owned by the reader afterwards.
 * Returns: FO_OK, or any other code: a failure (retried, then the policy).
 */
typedef int (*fo_pmap_fn)(void *ctx, void *wstate, void *in, void **out);

/**
 * fo_pmap_init_fn - per-worker set-up, on the worker's thread, before its
 * first item.  @arg is opts.init_args[worker index] (NULL without
 * init_args).  Sets *@wstate.  Returns FO_OK or an error code (see fo_pmap).
 */
typedef int (*fo_pmap_init_fn)(void *ctx, void *arg, void **wstate);

/** fo_pmap_fini_fn - per-worker clean-up, on the worker's thread, when it stops. */
typedef void (*fo_pmap_fini_fn)(void *ctx, void *wstate);

/**
 * fo_pmap_opts - options; fo_pmap_opts_init() first.
 * @backend:           FO_THREADS (default) or FO_PROCESSES (see Backends).
 * @workers:           worker threads, >= 1 (default 2).
 * @per_worker_buffer: finished results per worker that may wait for the
 *                     reader, >= 0 (default FO_PMAP_BUFFER_AUTO: 16 with
 *                     threads, 32 with processes).
 * @chunk_size:        inputs a worker takes per turn at the source, >= 1
 *                     (default 1; 0 is FO_EINVAL).  See "Chunks" above.
 * @ordered:           results in input order (default true).
 * @reorder_window:    ordered mode: how many more items than the unordered
 *                     bound may be in flight past a slow one (0 = default:
 *                     workers * (per_worker_buffer + chunk_size)).
 * @retries:           extra calls after a failure (default 0).
 * @timeout_ns:        per item (all its attempts), 0 = none (default).
 * @on_error:          FO_ERR_STOP (default), FO_ERR_DROP, FO_ERR_EMIT.
 * @paired:            return fo_result items pairing input and output.
 * @ctx:               passed to fn, init, fini.
 * @init, @fini:       per-worker set-up / clean-up (may be NULL).
 * @init_args:         NULL or @workers arguments: worker i's init gets
 *                     init_args[i].  The array is
 *                     copied; the pointers must stay valid until close.
 * @item_free:         destructor of fn's outputs (may be NULL); with
 *                     processes it runs in the child, after encoding.
 * @item_free_ctx:     passed to @item_free.
 * @progress:          hook called on the reader's thread after every read
 *                     that returns an item or ends the output (may be NULL).
 * @progress_ctx:      passed to @progress.
 * @in_codec:          processes: inputs to bytes (parent) and back (child).
 * @out_codec:         processes: outputs to bytes (child) and back (parent);
 *                     out_codec.item_free frees the reader's outputs.
 *                     Both ignored with threads.
 */
typedef struct fo_pmap_opts {
	fo_backend backend;
	size_t workers;
	size_t per_worker_buffer;
	size_t chunk_size;
	bool ordered;
	size_t reorder_window;
	unsigned retries;
	int64_t timeout_ns;
	fo_error_policy on_error;
	bool paired;
	void *ctx;
	fo_pmap_init_fn init;
	fo_pmap_fini_fn fini;
	void *const *init_args;
	fo_item_free_fn item_free;
	void *item_free_ctx;
	fo_progress_fn progress;
	void *progress_ctx;
	fo_codec in_codec;
	fo_codec out_codec;
} fo_pmap_opts;

/** fo_pmap_opts_init() - the defaults above.  NULL: no-op. */
FO_API void fo_pmap_opts_init(fo_pmap_opts *o);

/**
 * fo_result - a paired result (opts.paired): the input beside its outcome.
 * @input:  the input (owned by the result; NULL for a timed-out item).
 * @output: fn's output (owned by the result), NULL when @status != FO_OK.
 * @status: FO_OK, or the failure code (FO_TIMEDOUT for a timeout).
 * @error:  NULL when @status is FO_OK, else the failure (owned by the result).
 * Free with fo_result_free(); set @input / @output to NULL first to keep one.
 */
typedef struct fo_result {
	void *input;
	void *output;
	int status;
	const fo_error *error;
} fo_result;

/**
 * fo_result_free() - free @r, its input (the source's destructor), its
 * output (opts.item_free) and its error.  The pmap output's item destructor
 * in paired mode (fo_iter_release() calls it).  NULL: no-op.
 * Threads: any (whoever holds the result), also after the pmap is closed as
 * long as the destructors' contexts are valid.
 */
FO_API void fo_result_free(void *r, void *ctx);

/**
 * fo_pmap() - a parallel map of @fn over @src.
 * @out: out: the output iterator.
 * @src: the source; taken on success (closed with the output).
 * @fn:  the callback (required).
 * @o:   options (NULL: defaults).
 * Nothing runs before the first read: it starts the workers (each runs
 * init), waits until every init has returned, then they start pulling.  An
 * init that fails ends the output with FO_FAILED {init's code} before any
 * input is read, whatever the policy (the workers whose init succeeded
 * run fini when the output is closed); a replacement's init that fails
 * ends it the same way at the next read.
 * The output's destructor is opts.item_free (out_codec.item_free with
 * processes; fo_result_free in paired mode).  It emits error items in FO_ERR_EMIT mode (not
 * paired), or when
 * @src does (they pass through at their place, in unpaired modes).
 * Returns: FO_OK; FO_EINVAL (@out, @src or @fn NULL; workers or chunk_size
 * 0; unknown backend; FO_PROCESSES without in_codec or out_codec (encode
 * and decode); bad policy; negative timeout; sizes so large
 * that the slot count overflows; @src borrows (inputs are kept past its next
 * read); paired mode over a source that emits error items); FO_ENOMEM.
 * Ownership: on failure the caller keeps @src.
 * Threads: any.  Blocking: no (threads start at the first read).
 * Reads: FO_OK, FO_END, FO_FAILED, and FO_EMPTY / FO_TIMEDOUT for try /
 * timed reads; a blocking read waits for the next result in order (or any
 * result, unordered).  Closing the output stops the workers, releases every
 * item it holds and joins every thread.
 */
FO_API int fo_pmap(fo_iter **out, fo_iter *src, fo_pmap_fn fn, const fo_pmap_opts *o);

/* ---- pools: several rounds on the same workers -------------------------------------------- */

typedef struct fo_pool fo_pool;

/**
 * fo_pool_create() - a pool of workers computing @fn with options @o (the
 * same options and defaults as fo_pmap(); they apply to every round).
 * No thread starts here: the workers start (and run init) at the first read
 * of the first round.
 * Returns: FO_OK (*@pool set); FO_EINVAL (@pool or @fn NULL, or bad options
 * as for fo_pmap()); FO_ENOMEM.
 * Ownership: the caller owns *@pool (fo_pool_destroy()).  Threads: any.
 */
FO_API int fo_pool_create(fo_pool **pool, fo_pmap_fn fn, const fo_pmap_opts *o);

/**
 * fo_pool_map() - start a round: an output iterator of fn(x) for the items x
 * of @src, exactly as fo_pmap() (order, bounds, errors, timeouts, paired
 * results, progress, readiness), computed by the pool's workers.  Closing
 * the output ends the round (it waits for the round's calls to return, as
 * fo_pmap's close does) and leaves the workers, with their init state, for
 * the next round.  A pool whose worker init failed fails every round's
 * first read with that error.
 * Returns: FO_OK; FO_EINVAL (a NULL argument, @src borrows, paired mode over
 * a source that emits error items); FO_EBUSY (the previous round's output is
 * still open: close it first); FO_ENOMEM.
 * Ownership: @src is taken on success (closed with the output); on failure
 * the caller keeps it.  Threads: any; not concurrently with
 * fo_pool_destroy() of the same pool.
 */
FO_API int fo_pool_map(fo_pool *pool, fo_iter **out, fo_iter *src);

/**
 * fo_pool_destroy() - drop the pool handle.  With no round open, it stops
 * the workers (each runs fini) and joins them before returning; with a round
 * open, that happens when the round's output is closed.  NULL: no-op.
 * Threads: any, once; not concurrently with fo_pool_map() on @pool.
 */
FO_API void fo_pool_destroy(fo_pool *pool);

/**
 * fo_pmap_progress_get() - a snapshot of @it's counters.
 * Returns: FO_OK; FO_EINVAL (@it not a pmap or pool round output, or @p NULL).
 * Threads: any thread, while @it is open.  Blocking: a short mutex section.
 */
FO_API int fo_pmap_progress_get(fo_iter *it, fo_progress *p);

/* ---- lazy indexable map ---------------------------------------------------------------- */

typedef struct fo_imap fo_imap;

/**
 * fo_imap_fn - compute item i from its arguments: @args[k] is the item at
 * index i of input array k (borrowed: must not be freed or kept).  Sets
 * *@out (non-NULL, the caller's, freed with the imap's item_free).
 * Returns: FO_OK, or an error code (returned by fo_imap_get()).
 */
typedef int (*fo_imap_fn)(void *ctx, void *const *args, size_t nargs, void **out);

/**
 * fo_imap_create() - a lazy, indexable map of @fn over @n arrays.  Its length is the shortest
 * array's.  Nothing is computed at creation; fo_imap_get(i) calls @fn on the spot each time:
 * results are NOT cached (a repeated get recomputes; cache in @fn if you need to).
 * @m:         out: the map.
 * @fn:        required.        @ctx: passed to @fn.
 * @arrays:    @n arrays of item pointers (the outer array is copied; the
 *             arrays and items stay the caller's and must outlive the map).
 * @lens:      their lengths (copied).
 * @n:         >= 1.
 * @item_free: destructor of @fn's outputs (may be NULL); @item_ctx its context.
 * Returns: FO_OK; FO_EINVAL (NULL @m/@fn/@arrays/@lens, @n 0, a NULL array
 * with a non-zero length); FO_ENOMEM.
 * Threads: any.  Blocking: no.
 */
FO_API int fo_imap_create(fo_imap **m, fo_imap_fn fn, void *ctx, void *const *const *arrays,
                          const size_t *lens, size_t n, fo_item_free_fn item_free, void *item_ctx);

/** fo_imap_len() - the shortest input's length.  NULL: 0.  Threads: any. */
FO_API size_t fo_imap_len(const fo_imap *m);

/**
 * fo_imap_get() - compute item @i now, on the caller's thread.
 * @i: 0 .. len-1, or -len .. -1 counted from the COMMON end (-1 is item
 *     len-1 of every input, the last item an iteration returns).
 * Returns: FO_OK (*@out set, the caller's); FO_EINVAL (@m or @out NULL, or
 * @i out of range: nothing is computed; or @fn returned FO_OK without an
 * output); FO_ENOMEM (more than 8 inputs and no memory for the argument
 * array); any code @fn returned (no output).
 * Threads: any, concurrently (@fn must allow that).  Blocking: as @fn.
 */
FO_API int fo_imap_get(const fo_imap *m, int64_t i, void **out);

/**
 * fo_imap_iter() - a new iterator over items 0 .. len-1 (re-iterable: every
 * call starts a fresh one).  @o NULL: sequential, each item computed by
 * the reader's read.  @o non-NULL: computed by fo_pmap() with those
 * options (o->ctx, item_free and paired are replaced: the map's own, unpaired;
 * init/fini run as in fo_pmap, with ctx = the map).
 * Returns: FO_OK; FO_EINVAL (@m or @it NULL, or a bad @o as fo_pmap());
 * FO_ENOMEM.  The iterator fails with @fn's code at the failing index
 * (sequential mode; pmap mode follows o->on_error).
 * Ownership: the iterator refers to @m: destroy @m after closing it.
 * Threads: any.
 */
FO_API int fo_imap_iter(const fo_imap *m, fo_iter **it, const fo_pmap_opts *o);

/** fo_imap_destroy() - free the map (not the arrays or items).  NULL: no-op. */
FO_API void fo_imap_destroy(fo_imap *m);

#ifdef __cplusplus
}
#endif
#endif /* FANOUT_PMAP_H */
