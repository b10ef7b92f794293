/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * b15_proc.c - B15: a parallel map on 2 worker PROCESSES, 64-byte items through a codec
 * (fo_codec_pod(64)), trivial fn (the decoded input is the output), ordered, chunk 1 and 16.
 * Peers, interleaved in each run (param = chunk size):
 *
 *   proc            fo_pmap, backend FO_PROCESSES (the library: socketpair frames, pidfds)
 *   threads         fo_pmap, backend FO_THREADS, same items (fn returns its input)
 *   proc_dflt       proc with fo_pmap_opts_init()'s per_worker_buffer (FO_PMAP_BUFFER_AUTO:
 *   threads_dflt    32 with processes, 2 with threads), what a user who sets only the
 *                   backend, codecs and chunk size runs; --buffer does not apply to them
 *   raw_socketpair  a hand-written fork pool: 2 children, one socketpair each, a parent thread
 *                   per child writing k 64-byte frames and reading k back (k = chunk)
 *   raw_pipe        the same over two pipes per child (the transport alternative)
 *   reader_rings    no pool, no proxy threads: one thread moves chunks through the pod codec and
 *                   a MAP_SHARED ring per child (at most 64 items in flight each, as fanout's
 *                   window at --buffer 16), children decode/encode: the floor of a process pool
 *                   whose reader moves the frames itself (design.md §13)
 *   python_imap     multiprocessing.Pool(2).imap(ident, 64-byte bytes, chunksize=k), run by
 *                   bench/b15_python.py (wall time of the imap loop only; fewer items at
 *                   chunk 1: it is slow)
 *
 * B15c: a worker busy on a poisoned item (spinning) is SIGKILLed; measured from the kill()
 * to the reader holding the error item at that item's place (median of --runs x 5).
 *
 *   b15_proc [--items N] [--runs R] [--quick] [--impl a,b] [--buffer N] [--chunk 1|16]
 *
 * --buffer: per_worker_buffer of both fanout pools (default 16).  It bounds the items in
 * flight (workers * (buffer + chunk), twice that ordered), hence how many a process
 * worker can keep in its child's pipeline; Python's imap sends every task ahead.
 */
#include "common.h"

#include <fanout/fanout.h>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define WORKERS 2

static const char *opt_impl;
static uint64_t opt_buffer = 16; /* per_worker_buffer of both fanout backends */
static uint64_t opt_chunk;       /* 0: chunk 1 and 16; else only this chunk size */
static int failures;
static bench_item *items;
static void **ptrs;

static bool want(const char *impl)
{
	return !opt_impl || bench_in_list(opt_impl, impl);
}

/* ---- fanout -----------------------------------------------------------------------------------
 */

static int ident(void *ctx, void *wstate, void *in, void **out)
{
	(void)ctx;
	(void)wstate;
	*out = in;
	return FO_OK;
}

/* Context switches (voluntary + involuntary) and CPU time of this process and of its reaped
 * children: the pool's children are reaped at close, so a run's difference covers every
 * party (reader, workers or proxies, children).  Less sensitive to the machine's load than
 * items/s: what each item costs, not how much CPU the run got. */
static void usage_now(uint64_t *cs, uint64_t *cpu_ns, uint64_t *child_ns)
{
	struct rusage s, c;
	getrusage(RUSAGE_SELF, &s);
	getrusage(RUSAGE_CHILDREN, &c);
	*cs = (uint64_t)(s.ru_nvcsw + s.ru_nivcsw + c.ru_nvcsw + c.ru_nivcsw);
	*cpu_ns = 0;
	const struct timeval tv[4] = {s.ru_utime, s.ru_stime, c.ru_utime, c.ru_stime};
	for (int i = 0; i < 4; i++)
		*cpu_ns += (uint64_t)tv[i].tv_sec * 1000000000u + (uint64_t)tv[i].tv_usec * 1000u;
	*child_ns = 0;
	for (int i = 2; i < 4; i++)
		*child_ns += (uint64_t)tv[i].tv_sec * 1000000000u + (uint64_t)tv[i].tv_usec * 1000u;
}

/* The diagnostic line for one run: usage_now() before (@cs0, @u0, @k0) and now. */
static void usage_print(const char *impl, size_t chunk, int run, uint64_t n, uint64_t cs0,
                        uint64_t u0, uint64_t k0)
{
	uint64_t cs1, u1, k1;
	usage_now(&cs1, &u1, &k1);
	printf("# B15 %s chunk %zu run %d: %.3f context switches/item, %.0f ns CPU/item "
	       "(every thread and child; children %.0f), load %.2f\n",
	       impl, chunk, run, (double)(cs1 - cs0) / (double)n, (double)(u1 - u0) / (double)n,
	       (double)(k1 - k0) / (double)n, bench_load1());
}

/* One fo_pmap run; @dflt: per_worker_buffer left at its default (the _dflt impls). */
static void run_fanout(bench_results *r, bool procs, bool dflt, size_t chunk, uint64_t n, int run)
{
	const char *impl =
	    procs ? (dflt ? "proc_dflt" : "proc") : (dflt ? "threads_dflt" : "threads");
	uint64_t cs0, u0, k0;
	usage_now(&cs0, &u0, &k0);
	fo_iter *in, *out;
	if (fo_iter_from_array(&in, ptrs, n) != FO_OK)
		exit(2);
	fo_pmap_opts o;
	fo_pmap_opts_init(&o);
	o.backend = procs ? FO_PROCESSES : FO_THREADS;
	o.workers = WORKERS;
	if (!dflt)
		o.per_worker_buffer = (size_t)opt_buffer;
	o.chunk_size = chunk;
	o.in_codec = fo_codec_pod(sizeof(bench_item));
	o.out_codec = fo_codec_pod(sizeof(bench_item));
	if (procs) {
		o.item_free = o.out_codec.item_free;
		o.item_free_ctx = o.out_codec.ctx;
	}
	if (fo_pmap(&out, in, ident, &o) != FO_OK)
		exit(2);
	void *item;
	/* Start the workers (fork + init) before the clock: B15 measures the stream. */
	if (fo_iter_next(out, &item) != FO_OK)
		exit(2);
	fo_iter_release(out, item);
	uint64_t got = 1, w0 = bench_now_ns(), c0 = bench_cpu_ns();
	while (fo_iter_next(out, &item) == FO_OK) {
		if (((bench_item *)item)->seq != got)
			failures++;
		got++;
		fo_iter_release(out, item);
	}
	uint64_t w1 = bench_now_ns(), c1 = bench_cpu_ns();
	fo_iter_close(out);
	if (got != n)
		failures++;
	bench_record(r, impl, (int)chunk, WORKERS + 1, run, n - 1, w1 - w0, c1 - c0);
	/* Whole run (fork, init and close included): a diagnostic beside the RESULT line. */
	usage_print(impl, chunk, run, n, cs0, u0, k0);
}

/* ---- hand-written fork pools ------------------------------------------------------------------
 */

static int full_write(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w <= 0)
			return -1;
		p = (const char *)p + w;
		n -= (size_t)w;
	}
	return 0;
}

static int full_read(int fd, void *p, size_t n)
{
	while (n) {
		ssize_t r = read(fd, p, n);
		if (r <= 0)
			return -1;
		p = (char *)p + r;
		n -= (size_t)r;
	}
	return 0;
}

/* The child: echo 64-byte items back (after closing every other fd, so that each
 * socket or pipe sees EOF when its parent end closes). */
static void raw_child(int rfd, int wfd)
{
	rfd = fcntl(rfd, F_DUPFD, 1000);
	wfd = fcntl(wfd, F_DUPFD, 1001);
	close_range(3, 999, 0);
	bench_item buf[64];
	for (;;) {
		ssize_t r = read(rfd, buf, sizeof(buf));
		if (r <= 0)
			_exit(0);
		size_t have = (size_t)r;
		while (have % sizeof(bench_item)) {
			ssize_t m = read(rfd, (char *)buf + have, sizeof(bench_item) - have % 64);
			if (m <= 0)
				_exit(0);
			have += (size_t)m;
		}
		if (full_write(wfd, buf, have) != 0)
			_exit(0);
	}
}

typedef struct raw_w {
	pthread_t th;
	pid_t pid;
	int wfd, rfd;
	uint64_t from, to; /* items [from, to) */
	size_t chunk;
	uint64_t got;
} raw_w;

static void *raw_parent(void *arg)
{
	raw_w *w = arg;
	bench_item buf[16];
	for (uint64_t i = w->from; i < w->to; i += w->chunk) {
		size_t k = w->to - i < w->chunk ? (size_t)(w->to - i) : w->chunk;
		if (full_write(w->wfd, &items[i], k * sizeof(bench_item)) != 0 ||
		    full_read(w->rfd, buf, k * sizeof(bench_item)) != 0)
			return NULL;
		for (size_t j = 0; j < k; j++)
			w->got += buf[j].seq == i + j;
	}
	return NULL;
}

static void run_raw(bench_results *r, bool pipes, size_t chunk, uint64_t n, int run)
{
	raw_w w[WORKERS];
	for (int i = 0; i < WORKERS; i++) {
		int a[2], b[2];
		if (pipes) {
			if (pipe2(a, O_CLOEXEC) || pipe2(b, O_CLOEXEC))
				exit(2);
		} else {
			if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a))
				exit(2);
			b[0] = a[0];
			b[1] = dup(a[1]);
		}
		pid_t pid = fork();
		if (pid == 0) {
			if (pipes)
				raw_child(a[0], b[1]);
			else
				raw_child(a[1], a[1]);
		}
		w[i] = (raw_w){.pid = pid, .chunk = chunk};
		if (pipes) {
			close(a[0]);
			close(b[1]);
			w[i].wfd = a[1];
			w[i].rfd = b[0];
		} else {
			close(a[1]);
			close(b[1]);
			w[i].wfd = w[i].rfd = a[0];
		}
		w[i].from = n * (uint64_t)i / WORKERS;
		w[i].to = n * (uint64_t)(i + 1) / WORKERS;
	}
	uint64_t w0 = bench_now_ns(), c0 = bench_cpu_ns();
	for (int i = 0; i < WORKERS; i++)
		pthread_create(&w[i].th, NULL, raw_parent, &w[i]);
	uint64_t got = 0;
	for (int i = 0; i < WORKERS; i++) {
		pthread_join(w[i].th, NULL);
		got += w[i].got;
	}
	uint64_t w1 = bench_now_ns(), c1 = bench_cpu_ns();
	for (int i = 0; i < WORKERS; i++) {
		close(w[i].wfd);
		if (w[i].rfd != w[i].wfd)
			close(w[i].rfd);
		waitpid(w[i].pid, NULL, 0);
	}
	if (got != n)
		failures++;
	bench_record(r, pipes ? "raw_pipe" : "raw_socketpair", (int)chunk, WORKERS + 1, run, n,
	             w1 - w0, c1 - c0);
}

/* ---- transports, pipelined: a window of items in flight per child ----------------------------
 *
 * What fanout's process pool does per child (keep WIN items in flight, one write and one read
 * for many), by hand, over two transports, to choose the pool's: pipe_sock (the socketpair
 * with the hand-written echo child above) and pipe_shm (a MAP_SHARED SPSC ring of 64-byte
 * slots each way, a futex wake only when the other side sleeps).  No codec, no pool: the
 * transports' own cost.
 */

#define WIN   64   /* items in flight per child */
#define RSLOT 256u /* ring slots (a power of two, >= WIN) */

typedef struct shm_ring {
	_Atomic uint64_t head, tail; /* consumer's, producer's */
	/* Bumped by 2 by the producer after a publish; bit 0 (RING_SLEEPER): the consumer sleeps
	 * on it, or is about to. */
	_Atomic uint32_t seq;
	bench_item slot[RSLOT];
} shm_ring;

typedef struct shm_pair {
	shm_ring in, out; /* parent -> child, child -> parent */
} shm_pair;

/*
 * Wake-ups: the sleeper's flag is bit 0 of the futex word itself, so that the producer's bump
 * and its look at the flag are one atomic step.  The consumer sets the bit with a CAS (its
 * snapshot of seq), re-checks the tail, and sleeps on that snapshot; the producer's CAS bumps
 * seq and clears the bit, and it wakes only if the bit was set: one FUTEX_WAKE per sleep.  A
 * bump after the consumer's CAS changes the word (its FUTEX_WAIT returns at once); a bump
 * before it is read by the CAS (release -> acquire), so the re-check sees its tail.
 *
 * The first version kept the flag in its own word: the producer bumped seq, then cleared the
 * flag with an exchange and woke if it had been set; the consumer snapshotted seq, then raised
 * the flag.  That lost a wake-up (a --quick run hung; 5 runs in 200 of `--impl
 * reader_rings,pipe_shm` under load): the consumer took put N's item, began its next wait,
 * snapshotted seq after put N's bump, raised its flag just before put N's exchange cleared it
 * (that FUTEX_WAKE found nobody: the consumer was not asleep yet), saw the tail equal to its
 * head and slept on a current seq with its flag down, so put N+1 did not wake it.  A FUTEX_WAKE
 * with nobody waiting is lost, unlike the library's doorbell byte (proc.c), which stays in the
 * socket until the sleeper reads it.
 */
#define RING_SLEEPER 1u

static void ring_wake(shm_ring *r)
{
	uint32_t old = atomic_load_explicit(&r->seq, memory_order_relaxed); /* the CAS checks it */
	/* seq_cst: after the tail store, which a consumer reading this value then sees. */
	while (!atomic_compare_exchange_weak(&r->seq, &old, (old + 2) & ~RING_SLEEPER))
		;
	if (old & RING_SLEEPER)
		syscall(SYS_futex, &r->seq, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* Wait until @r holds something (consumer side); returns how many items are there. */
static uint64_t ring_wait(shm_ring *r, uint64_t head)
{
	bool raised = false;
	for (unsigned spins = 0;; spins++) {
		uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
		if (tail != head) {
			if (raised) { /* not asleep any more: spare the producer a FUTEX_WAKE */
				/* relaxed: the CAS checks it; clearing the bit needs no order. */
				uint32_t s = atomic_load_explicit(&r->seq, memory_order_relaxed);
				while ((s & RING_SLEEPER) &&
				       !atomic_compare_exchange_weak_explicit(
				           &r->seq, &s, s & ~RING_SLEEPER, memory_order_relaxed,
				           memory_order_relaxed))
					;
			}
			return tail - head;
		}
		if (spins < 64) {
			bench_cpu_relax();
			continue;
		}
		uint32_t s = atomic_load(&r->seq); /* seq_cst: the snapshot (the CAS checks it) */
		if (!(s & RING_SLEEPER)) {
			/* seq_cst: reads the last bump (acquire: its tail), or fails on a new one.
			 */
			if (!atomic_compare_exchange_strong(&r->seq, &s, s | RING_SLEEPER))
				continue;
			s |= RING_SLEEPER;
		}
		raised = true;
		if (atomic_load_explicit(&r->tail, memory_order_acquire) != head)
			continue;
		syscall(SYS_futex, &r->seq, FUTEX_WAIT, s, NULL, NULL, 0);
	}
}

static void ring_put(shm_ring *r, const bench_item *it, size_t k)
{
	uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
	for (size_t i = 0; i < k; i++)
		r->slot[(t + i) % RSLOT] = it[i];
	atomic_store_explicit(&r->tail, t + k, memory_order_release);
	ring_wake(r);
}

static void shm_child(shm_pair *p)
{
	close_range(3, ~0U, 0);
	uint64_t head = 0;
	for (;;) {
		uint64_t n = ring_wait(&p->in, head);
		for (uint64_t i = 0; i < n; i++) {
			bench_item x = p->in.slot[(head + i) % RSLOT];
			if (x.seq == UINT64_MAX)
				_exit(0);
			ring_put(&p->out, &x, 1); /* a wake only if the parent sleeps */
		}
		head += n;
		atomic_store_explicit(&p->in.head, head, memory_order_release);
	}
}

typedef struct pipe_w {
	pthread_t th;
	pid_t pid;
	int fd;        /* pipe_sock */
	shm_pair *shm; /* pipe_shm */
	uint64_t from, to, got;
} pipe_w;

static void *pipe_sock_parent(void *arg)
{
	pipe_w *w = arg;
	bench_item buf[WIN];
	uint64_t sent = w->from, recvd = w->from;
	size_t partial = 0;
	while (recvd < w->to) {
		size_t k =
		    (size_t)(w->to - sent < (uint64_t)WIN - (sent - recvd) ? w->to - sent
		                                                           : WIN - (sent - recvd));
		if (k && full_write(w->fd, &items[sent], k * sizeof(bench_item)) != 0)
			return NULL;
		sent += k;
		ssize_t r = read(w->fd, (char *)buf + partial, sizeof(buf) - partial);
		if (r <= 0)
			return NULL;
		size_t have = partial + (size_t)r, n = have / sizeof(bench_item);
		for (size_t j = 0; j < n; j++)
			w->got += buf[j].seq == recvd + j;
		recvd += n;
		partial = have % sizeof(bench_item);
		memmove(buf, (char *)buf + n * sizeof(bench_item), partial);
	}
	return NULL;
}

static void *pipe_shm_parent(void *arg)
{
	pipe_w *w = arg;
	shm_pair *p = w->shm;
	uint64_t sent = w->from, recvd = w->from, head = 0;
	while (recvd < w->to) {
		uint64_t room = WIN - (sent - recvd), left = w->to - sent;
		size_t k = (size_t)(left < room ? left : room);
		if (k) {
			ring_put(&p->in, &items[sent], k);
			sent += k;
		}
		uint64_t n = ring_wait(&p->out, head);
		for (uint64_t j = 0; j < n; j++)
			w->got += p->out.slot[(head + j) % RSLOT].seq == recvd + j;
		head += n;
		recvd += n;
		atomic_store_explicit(&p->out.head, head, memory_order_release);
	}
	bench_item stop = {.seq = UINT64_MAX};
	ring_put(&p->in, &stop, 1);
	return NULL;
}

static void run_pipelined(bench_results *r, bool shm, uint64_t n, int run)
{
	pipe_w w[WORKERS];
	for (int i = 0; i < WORKERS; i++) {
		w[i] = (pipe_w){.from = n * (uint64_t)i / WORKERS,
		                .to = n * (uint64_t)(i + 1) / WORKERS};
		int sv[2] = {-1, -1};
		if (shm) {
			w[i].shm = mmap(NULL, sizeof(shm_pair), PROT_READ | PROT_WRITE,
			                MAP_SHARED | MAP_ANONYMOUS, -1, 0);
			if (w[i].shm == MAP_FAILED)
				exit(2);
		} else if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
			exit(2);
		}
		pid_t pid = fork();
		if (pid == 0) {
			if (shm)
				shm_child(w[i].shm);
			raw_child(sv[1], sv[1]);
		}
		w[i].pid = pid;
		if (!shm) {
			close(sv[1]);
			w[i].fd = sv[0];
		}
	}
	uint64_t w0 = bench_now_ns(), c0 = bench_cpu_ns();
	for (int i = 0; i < WORKERS; i++)
		pthread_create(&w[i].th, NULL, shm ? pipe_shm_parent : pipe_sock_parent, &w[i]);
	uint64_t got = 0;
	for (int i = 0; i < WORKERS; i++) {
		pthread_join(w[i].th, NULL);
		got += w[i].got;
	}
	uint64_t w1 = bench_now_ns(), c1 = bench_cpu_ns();
	for (int i = 0; i < WORKERS; i++) {
		if (!shm)
			close(w[i].fd);
		waitpid(w[i].pid, NULL, 0);
		if (shm)
			munmap(w[i].shm, sizeof(shm_pair));
	}
	if (got != n)
		failures++;
	bench_record(r, shm ? "pipe_shm" : "pipe_sock", 0, WORKERS + 1, run, n, w1 - w0, c1 - c0);
}

/* ---- reader_rings: the pool's possible floor with no proxy threads ---------------------------
 *
 * design.md §13 ("Where the chunk-16 time goes"): what a process pool could reach if the reader
 * itself moved the frames (3 parties: the reader and 2 children, no proxy threads).  By hand,
 * in chunks of k: one thread posts chunk j to child j % 2 (encoded with the pod codec into that
 * child's MAP_SHARED ring, at most WIN items in flight per child), and takes the outputs back
 * in order (decoded: one allocation each, then freed as a reader releases them); each child
 * decodes, calls the identity, encodes, frees, and publishes a chunk's outputs at once.  No
 * pool (no slots, no mutex, no source pull): the thread backend pays for those and this does
 * not, so it is an upper bound, to compare with threads in the same run.
 */

static void codec_child(shm_pair *p, size_t chunk)
{
	close_range(3, ~0U, 0);
	fo_codec c = fo_codec_pod(sizeof(bench_item));
	fo_buf enc;
	fo_buf_init(&enc);
	bench_item outb[WIN];
	uint64_t head = 0;
	size_t k = 0;
	for (;;) {
		uint64_t n = ring_wait(&p->in, head);
		for (uint64_t i = 0; i < n; i++) {
			const bench_item *x = &p->in.slot[(head + i) % RSLOT];
			if (x->seq == UINT64_MAX)
				_exit(0);
			void *in = NULL;
			if (c.decode(c.ctx, x, sizeof(*x), &in) != FO_OK)
				_exit(1);
			fo_buf_reset(&enc);
			if (c.encode(c.ctx, in, &enc) != FO_OK) /* the identity's output */
				_exit(1);
			memcpy(&outb[k++], enc.data, sizeof(bench_item));
			c.item_free(in, c.ctx);
			if (k == chunk) { /* a unit: its outputs leave together */
				ring_put(&p->out, outb, k);
				k = 0;
			}
		}
		head += n;
		atomic_store_explicit(&p->in.head, head, memory_order_release);
	}
}

static void run_reader_rings(bench_results *r, size_t chunk, uint64_t n, int run)
{
	uint64_t cs0, u0, k0;
	usage_now(&cs0, &u0, &k0);
	shm_pair *p[WORKERS];
	pid_t pid[WORKERS];
	for (int i = 0; i < WORKERS; i++) {
		p[i] = mmap(NULL, sizeof(shm_pair), PROT_READ | PROT_WRITE,
		            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (p[i] == MAP_FAILED)
			exit(2);
		if ((pid[i] = fork()) == 0)
			codec_child(p[i], chunk);
	}
	fo_codec c = fo_codec_pod(sizeof(bench_item));
	fo_buf enc;
	fo_buf_init(&enc);
	uint64_t nch = (n + chunk - 1) / chunk, sent = 0, outc = 0, got = 0;
	uint64_t inflight[WORKERS] = {0}, head[WORKERS] = {0};
	bench_item buf[16];
	uint64_t w0 = bench_now_ns(), c0 = bench_cpu_ns();
	while (outc < nch) {
		/* Post in chunk order while the next chunk's child has room. */
		while (sent < nch && inflight[sent % WORKERS] + chunk <= WIN) {
			uint64_t from = sent * chunk, to = from + chunk < n ? from + chunk : n;
			for (uint64_t i = from; i < to; i++) {
				fo_buf_reset(&enc);
				if (c.encode(c.ctx, ptrs[i], &enc) != FO_OK)
					exit(2);
				memcpy(&buf[i - from], enc.data, sizeof(bench_item));
			}
			ring_put(&p[sent % WORKERS]->in, buf, (size_t)(to - from));
			inflight[sent % WORKERS] += chunk;
			sent++;
		}
		/* Take the next chunk's outputs, in order. */
		int w = (int)(outc % WORKERS);
		uint64_t from = outc * chunk, to = from + chunk < n ? from + chunk : n;
		for (uint64_t i = from; i < to;) {
			uint64_t m = ring_wait(&p[w]->out, head[w]);
			if (m > to - i)
				m = to - i;
			for (uint64_t j = 0; j < m; j++, i++) {
				void *out = NULL;
				if (c.decode(c.ctx, &p[w]->out.slot[(head[w] + j) % RSLOT],
				             sizeof(bench_item), &out) != FO_OK)
					exit(2);
				got += ((bench_item *)out)->seq == i;
				c.item_free(out, c.ctx);
			}
			head[w] += m;
			atomic_store_explicit(&p[w]->out.head, head[w], memory_order_release);
		}
		inflight[w] -= chunk;
		outc++;
	}
	uint64_t w1 = bench_now_ns(), c1 = bench_cpu_ns();
	bench_item stop = {.seq = UINT64_MAX};
	for (int i = 0; i < WORKERS; i++) {
		ring_put(&p[i]->in, &stop, 1);
		waitpid(pid[i], NULL, 0);
		munmap(p[i], sizeof(shm_pair));
	}
	fo_buf_fini(&enc);
	if (got != n)
		failures++;
	bench_record(r, "reader_rings", (int)chunk, WORKERS + 1, run, n, w1 - w0, c1 - c0);
	usage_print("reader_rings", chunk, run, n, cs0, u0, k0);
}

/* ---- Python -----------------------------------------------------------------------------------
 */

static void run_python(bench_results *r, size_t chunk, uint64_t n, int run)
{
	char cmd[1024];
	/* The script sits beside this source file. */
	const char *file = __FILE__, *slash = strrchr(file, '/');
	int dlen = slash ? (int)(slash - file) : 1;
	snprintf(cmd, sizeof(cmd), "python3 %.*s/b15_python.py %llu %zu", dlen, slash ? file : ".",
	         (unsigned long long)n, chunk);
	FILE *p = popen(cmd, "r");
	unsigned long long got = 0, wall = 0;
	if (!p || fscanf(p, "items=%llu wall_ns=%llu", &got, &wall) != 2) {
		fprintf(stderr, "B15: python peer failed (%s)\n", cmd);
		if (p)
			pclose(p);
		return;
	}
	pclose(p);
	bench_record(r, "python_imap", (int)chunk, 3, run, got, wall, 0);
}

/* ---- B15c: kill -> error at its place ------------------------------------------------------- */

typedef struct b15c_shared {
	atomic_int pid; /* the worker spinning on the poisoned item */
} b15c_shared;

static b15c_shared *shc;

static int poisoned(void *ctx, void *wstate, void *in, void **out)
{
	(void)ctx;
	(void)wstate;
	bench_item *x = in;
	if (x->seq == 5) {
		atomic_store(&shc->pid, (int)getpid());
		for (;;)
			bench_cpu_relax(); /* busy until killed */
	}
	*out = in;
	return FO_OK;
}

static double one_kill(void)
{
	atomic_store(&shc->pid, 0);
	fo_iter *in, *out;
	if (fo_iter_from_array(&in, ptrs, 20) != FO_OK)
		exit(2);
	fo_pmap_opts o;
	fo_pmap_opts_init(&o);
	o.backend = FO_PROCESSES;
	o.workers = WORKERS;
	o.on_error = FO_ERR_EMIT;
	o.in_codec = fo_codec_pod(sizeof(bench_item));
	o.out_codec = fo_codec_pod(sizeof(bench_item));
	o.item_free = o.out_codec.item_free;
	o.item_free_ctx = o.out_codec.ctx;
	if (fo_pmap(&out, in, poisoned, &o) != FO_OK)
		exit(2);
	void *item;
	double ms = -1;
	for (uint64_t i = 0; fo_iter_next(out, &item) == FO_OK; i++) {
		if (i == 4) { /* item 5 is next: kill its worker once it spins */
			fo_iter_release(out, item);
			int pid;
			while ((pid = atomic_load(&shc->pid)) == 0)
				sched_yield();
			uint64_t t0 = bench_now_ns();
			kill(pid, SIGKILL);
			if (fo_iter_next(out, &item) != FO_OK || !fo_iter_is_error(out))
				failures++;
			ms = (double)(bench_now_ns() - t0) / 1e6;
			fo_error_item_free(item);
			i++;
			continue;
		}
		if (fo_iter_is_error(out))
			fo_error_item_free(item);
		else
			fo_iter_release(out, item);
	}
	fo_iter_close(out);
	return ms;
}

/* ---- B15b: fork-per-call task round trip ------------------------------------------------- */

static long b15b_value = 7;

static int b15b_fn(void *arg, void **value)
{
	(void)arg;
	*value = &b15b_value; /* crosses through the pod codec */
	return FO_OK;
}

static double task_round_trip_us(void)
{
	fo_task_opts o;
	fo_task_opts_init(&o);
	o.backend = FO_PROCESSES;
	o.out_codec = fo_codec_pod(sizeof(long));
	uint64_t t0 = bench_now_ns();
	fo_future *f;
	void *v;
	if (fo_task_spawn(&f, b15b_fn, NULL, &o) != FO_OK || fo_future_wait(f) != FO_OK ||
	    fo_future_take(f, &v, NULL) != FO_OK || *(long *)v != 7)
		failures++;
	uint64_t t1 = bench_now_ns();
	o.out_codec.item_free(v, o.out_codec.ctx);
	fo_future_destroy(f);
	return (double)(t1 - t0) / 1e3;
}

static double bare_round_trip_us(void)
{
	uint64_t t0 = bench_now_ns();
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0)
		exit(2);
	pid_t pid = fork();
	if (pid == 0) {
		long v = 7;
		ssize_t w = write(p[1], &v, sizeof(v));
		_exit(w == sizeof(v) ? 0 : 1);
	}
	close(p[1]);
	long v = 0;
	if (full_read(p[0], &v, sizeof(v)) != 0 || v != 7)
		failures++;
	waitpid(pid, NULL, 0);
	close(p[0]);
	return (double)(bench_now_ns() - t0) / 1e3;
}

int main(int argc, char **argv)
{
	bench_opts o = {.items = 200000, .runs = 3};
	const bench_flag flags[] = {
	    {"impl", BENCH_FLAG_STR, &opt_impl, "comma-separated implementations"},
	    {"buffer", BENCH_FLAG_U64, &opt_buffer,
	     "per_worker_buffer of fanout's pools (16; Python's imap has no bound)"},
	    {"chunk", BENCH_FLAG_U64, &opt_chunk, "only this chunk size (default: 1 and 16)"},
	};
	bench_parse_args(argc, argv, &o, flags, sizeof(flags) / sizeof(flags[0]));
	signal(SIGPIPE, SIG_IGN);
	items = bench_items_create(o.items);
	ptrs = malloc(o.items * sizeof(*ptrs));
	for (uint64_t i = 0; i < o.items; i++)
		ptrs[i] = &items[i];
	bench_results b;
	bench_results_init(&b, "B15", "chunk", o.cpus);
	for (int run = 1; run <= o.runs; run++) {
		for (size_t chunk = 1; chunk <= 16; chunk *= 16) {
			if (opt_chunk && chunk != opt_chunk)
				continue;
			if (want("proc"))
				run_fanout(&b, true, false, chunk, o.items, run);
			if (want("threads"))
				run_fanout(&b, false, false, chunk, o.items, run);
			if (want("proc_dflt"))
				run_fanout(&b, true, true, chunk, o.items, run);
			if (want("threads_dflt"))
				run_fanout(&b, false, true, chunk, o.items, run);
			if (want("raw_socketpair"))
				run_raw(&b, false, chunk, o.items, run);
			if (want("raw_pipe"))
				run_raw(&b, true, chunk, o.items, run);
			if (want("reader_rings"))
				run_reader_rings(&b, chunk, o.items, run);
			if (want("python_imap"))
				run_python(&b, chunk, chunk == 1 ? o.items / 10 : o.items / 2, run);
		}
	}
	bench_summary(&b, "proc");
	for (int chunk = 1; chunk <= 16; chunk *= 16) { /* what users run first, same runs */
		double p =
		    bench_results_stat(&b, "proc_dflt", chunk, BENCH_ITEMS_PER_S, BENCH_MEDIAN);
		double t =
		    bench_results_stat(&b, "threads_dflt", chunk, BENCH_ITEMS_PER_S, BENCH_MEDIAN);
		if (p > 0 && t > 0)
			printf("B15 default options, chunk %d: proc_dflt / threads_dflt = %.2fx\n",
			       chunk, p / t);
	}
	bench_results_fini(&b);

	/* The transport, pipelined (param 0: no chunks, a window of WIN items). */
	if (want("pipe_sock") || want("pipe_shm")) {
		bench_results t;
		bench_results_init(&t, "B15t", "chunk", o.cpus);
		for (int run = 1; run <= o.runs; run++) {
			if (want("pipe_sock"))
				run_pipelined(&t, false, o.items, run);
			if (want("pipe_shm"))
				run_pipelined(&t, true, o.items, run);
		}
		bench_summary(&t, "pipe_shm");
		bench_results_fini(&t);
	}

	if (want("task")) {
		/* Interleaved, after one unmeasured pair (first-call costs: thread
		 * arena, lazy binding).  A task leaves work behind after its future
		 * resolved (its supervisor thread exits: madvise of its stack, which
		 * also holds the mm lock a fork needs); an unmeasured bare round trip
		 * absorbs it, so the measured bare one starts as quiet as the task
		 * (measured: a bare round trip right after a task took 6-34% longer
		 * than one after a bare, medians of 200, load 20). */
		double a[200], b[200];
		int k = o.runs * 40 > 200 ? 200 : o.runs * 40;
		(void)task_round_trip_us();
		(void)bare_round_trip_us();
		for (int i = 0; i < k; i++) {
			a[i] = task_round_trip_us();
			(void)bare_round_trip_us();
			b[i] = bare_round_trip_us();
		}
		double ma = bench_median(a, (size_t)k), mb = bench_median(b, (size_t)k);
		printf("RESULT scenario=B15b impl=task_proc round_trip_us_median=%.1f samples=%d\n",
		       ma, k);
		printf("RESULT scenario=B15b impl=bare_fork_pipe round_trip_us_median=%.1f "
		       "samples=%d\n",
		       mb, k);
		printf("B15b task_proc / bare_fork_pipe = %.2fx (target <= 1.5x)\n", ma / mb);
	}
	if (want("kill")) {
		shc = mmap(NULL, sizeof(*shc), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		           -1, 0);
		double v[64];
		int k = 0;
		for (int i = 0; i < o.runs * 5 && k < 64; i++)
			v[k++] = one_kill();
		printf("RESULT scenario=B15c impl=proc kill_to_error_ms_median=%.3f samples=%d\n",
		       bench_median(v, (size_t)k), k);
	}
	free(ptrs);
	free(items);
	if (failures) {
		fprintf(stderr, "B15: %d check(s) failed\n", failures);
		return 1;
	}
	return 0;
}
