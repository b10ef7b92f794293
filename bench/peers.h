/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * bench/peers.h - fanout and its peers behind one small interface, and the
 * generic throughput / latency harness used by B1, B7, B8, B9, B10, B11.
 *
 * A "queue" (pq) carries items from nprod producers to ncons consumers in one
 * of two modes:
 *   PQ_FANOUT  every consumer sees every item (B1, B7, B8, B9);
 *   PQ_SHARED  every item goes to exactly one consumer (B10).
 * Implementations (each with its natural best use, never tuned down):
 *   fanout       one stream, bounded by --capacity; single_producer = true
 *                when there is one producer; active cursors (PQ_FANOUT) or a
 *                share group (PQ_SHARED); reads with fo_cursor_next_many and
 *                waits in fo_cursor_next.
 *   fanout_mp    the same with default options (single_producer = false).
 *   fanout_fd    fanout read like an event loop: read until FO_EMPTY, then
 *                fo_cursor_arm and poll(fo_cursor_fd) (no spinning).
 *   ckring       ck_ring of pointers: SPSC per consumer (fan-out: the producer
 *                enqueues the pointer into every consumer's ring), SPMC for
 *                PQ_SHARED, MPSC for several producers.
 *   ckring_copy  ck_ring per consumer whose slots hold the 64-byte item by
 *                value (CK_RING_PROTOTYPE); the producer copies into each.
 *   mutex        pthread mutex + condvar bounded queue of pointers, one per
 *                consumer (PQ_FANOUT) or one shared; consumers take whole
 *                batches under one lock; signals only when someone sleeps.
 *   wfcq_pool    liburcu wfcqueue (inlined, _LGPL_SOURCE), one per consumer
 *                or shared (dequeue under the queue's lock); nodes come from
 *                a per (producer, queue) ring of --capacity preallocated
 *                nodes, each with a busy flag the consumer clears.
 *   wfcq_malloc  the same with one malloc per node per queue, freed by the
 *                consumer.
 *   zmq          ZeroMQ inproc PUB -> SUB per consumer, 64-byte messages
 *                (PQ_FANOUT, one producer only), as in b2_fanout.c.
 * Polled peers spin briefly then sched_yield (bench_backoff), like fanout.
 */
#ifndef FANOUT_BENCH_PEERS_H
#define FANOUT_BENCH_PEERS_H

#ifndef _LGPL_SOURCE
#define _LGPL_SOURCE /* the peer's natural best: wfcqueue inlined */
#endif
#include "common.h"

#include <fanout/fanout.h>

#include <ck_ring.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <urcu/wfcqueue.h>
#ifdef HAVE_ZMQ
#include <zmq.h>
#endif

#define PQ_MAXC  8
#define PQ_MAXP  4
#define PQ_BATCH 64

enum { PQ_FANOUT, PQ_SHARED };

CK_RING_PROTOTYPE(pq_item, bench_item)

/* mutex + condvar bounded queue of pointers */
struct mq {
	pthread_mutex_t mu;
	pthread_cond_t not_empty, not_full;
	void **v;
	size_t cap, head, tail; /* tail - head = size */
	int wait_empty, wait_full;
	bool closed;
};

struct wnode {
	struct cds_wfcq_node node;
	bench_item *it;
	atomic_int busy; /* pool: set by the producer, cleared by the consumer */
};

/* one wfcqueue, on its own lines */
struct wq {
	struct __cds_wfcq_head head __attribute__((aligned(64)));
	struct cds_wfcq_tail tail __attribute__((aligned(64)));
	pthread_mutex_t lock; /* PQ_SHARED: consumers dequeue under it */
};

struct pq;

typedef struct pq_cons {
	struct pq *q;
	int idx;
	pthread_t thread;
	fo_cursor *cur;
	void *ring_buf; /* ck_ring buffer: pointers or bench_item slots */
	struct mq *mq;
	struct wq *wq;
	void *zsub;
	/* results */
	uint64_t seen, errors, sum;
	uint32_t *lat; /* latency mode: one entry per item seen */
	size_t nlat, maxlat;
	uint64_t end_ns; /* when its read loop ended */
	bool bad_end;
	bool zprobed;                                          /* zmq: a probe arrived */
	bool zended;                                           /* zmq: the end marker arrived */
	uint64_t zgot;                                         /* zmq: items received so far */
	bench_item buf[PQ_BATCH] __attribute__((aligned(64))); /* copying peers */
	ck_ring_t ring __attribute__((aligned(64)));
} __attribute__((aligned(64))) pq_cons;

typedef struct pq {
	const struct pq_impl *im;
	int mode, nprod, ncons;
	size_t cap;
	uint64_t n;       /* items per producer */
	uint64_t npool;   /* length of each producer's item array (<= n) */
	uint64_t pace_ns; /* 0: flat out; else one item per pace_ns per producer */
	bool latency;
	bool write;         /* producers write every field before pushing, consumers read them */
	size_t pop_max;     /* items per pop (1: per-item reads) */
	bench_item **items; /* per producer */
	atomic_int closed __attribute__((aligned(64)));
	atomic_int producers_left;
	pthread_barrier_t start;
	fo_stream *s;
	/* shared structures (PQ_SHARED or several producers) */
	ck_ring_t ring __attribute__((aligned(64)));
	void *ring_buf;
	struct mq *mq;
	struct wq *wq;
	struct wnode *pool[PQ_MAXP][PQ_MAXC]; /* wfcq_pool: per producer, per queue */
	uint64_t pool_next[PQ_MAXP][PQ_MAXC];
	void *zctx, *zpub;
	atomic_int zready;
	atomic_uint_fast64_t zprogress[PQ_MAXC];
	pq_cons c[PQ_MAXC];
} pq;

typedef struct pq_impl {
	const char *name;
	bool shared_ok, mp_ok, fanout_ok;
	int (*setup)(pq *q);
	void (*teardown)(pq *q);
	void (*cons_init)(pq_cons *c); /* on the consumer thread, before the barrier */
	void (*cons_fini)(pq_cons *c);
	/* the whole producer loop (inline pushes) */
	int (*produce)(pq *q, int p);
	void (*close)(pq *q); /* after every producer is done */
	/* up to max items, waiting for the first; 0: the end */
	size_t (*pop)(pq_cons *c, bench_item **out, size_t max);
} pq_impl;

/* ---- pacing and the common producer loop --------------------------------------------------- */

static inline void pq_pace(uint64_t due)
{
	while (bench_now_ns() < due)
		bench_cpu_relax();
}

/* Write mode: the producer fills every field of the item it is about to push
 * (seq: its index in the pool; ts: the push count; pad[0]: the producer), and
 * consumers check pq_item_ok(), which reads them all. */
static inline void pq_item_fill(bench_item *it, uint64_t seq, uint64_t i, int p)
{
	it->seq = seq;
	it->ts = i;
	it->pad[0] = (uint64_t)p;
	for (uint64_t k = 1; k < 6; k++)
		it->pad[k] = i + k;
}

static inline bool pq_item_ok(const bench_item *it)
{
	uint64_t s = 0;
	for (int k = 1; k < 6; k++)
		s += it->pad[k];
	return s == 5 * it->ts + 15;
}

/* PQ_PRODUCE(q, p, stmt-using-`it`): loops over producer p's items (n pushes,
 * cycling through the q->npool items of its array: throughput runs are longer
 * than the array; the items are read-only there unless q->write), pacing and
 * stamping in latency mode (where pool == n); `stmt` must set `prc` non-zero
 * on failure. */
#define PQ_PRODUCE(q, p, STMT)                                                          \
	do {                                                                            \
		bench_item *items_ = (q)->items[p];                                     \
		uint64_t n_ = (q)->n, pool_ = (q)->npool, j_ = 0, t0_ = bench_now_ns(); \
		for (uint64_t i_ = 0; i_ < n_ && prc == 0; i_++) {                      \
			bench_item *it = &items_[j_];                                   \
			if ((q)->write)                                                 \
				pq_item_fill(it, j_, i_, p);                            \
			if (++j_ == pool_)                                              \
				j_ = 0;                                                 \
			if ((q)->pace_ns) {                                             \
				pq_pace(t0_ + i_ * (q)->pace_ns);                       \
				it->ts = bench_now_ns();                                \
			}                                                               \
			STMT;                                                           \
		}                                                                       \
	} while (0)

/* ---- fanout -------------------------------------------------------------------------------- */

static int pq_fanout_setup_opts(pq *q, bool sp)
{
	fo_stream_opts o;
	fo_stream_opts_init(&o);
	o.capacity = q->cap;
	o.single_producer = sp;
	int rc = fo_stream_create(&q->s, &o);
	unsigned fl = q->mode == PQ_SHARED ? FO_SHARED : FO_ACTIVE;
	if (rc == FO_OK)
		rc = fo_stream_cursor(q->s, &q->c[0].cur, fl);
	for (int i = 1; i < q->ncons && rc == FO_OK; i++)
		rc = fo_cursor_fork(q->c[0].cur, &q->c[i].cur, fl);
	if (rc != FO_OK)
		fprintf(stderr, "fanout setup: %s\n", fo_status_name(rc));
	return rc;
}
static int pq_fanout_setup(pq *q)
{
	return pq_fanout_setup_opts(q, q->nprod == 1);
}
static int pq_fanout_mp_setup(pq *q)
{
	return pq_fanout_setup_opts(q, false);
}

static void pq_fanout_teardown(pq *q)
{
	for (int i = 0; i < q->ncons; i++)
		fo_cursor_close(q->c[i].cur);
	fo_stream_destroy(q->s);
}

static int pq_fanout_produce(pq *q, int p)
{
	int prc = 0;
	fo_stream *s = q->s;
	PQ_PRODUCE(q, p, prc = fo_stream_push(s, it));
	if (prc)
		fprintf(stderr, "fanout push: %s\n", fo_status_name(prc));
	return prc;
}

static void pq_fanout_close(pq *q)
{
	fo_stream_close(q->s);
}

static size_t pq_fanout_pop(pq_cons *c, bench_item **out, size_t max)
{
	size_t k = 0;
	int rc = fo_cursor_next_many(c->cur, (void **)out, max, &k);
	if (rc == FO_EMPTY) {
		rc = fo_cursor_next(c->cur, (void **)&out[0]);
		k = 1;
	}
	if (rc == FO_OK)
		return k;
	if (rc != FO_END) {
		fprintf(stderr, "fanout read: %s\n", fo_status_name(rc));
		c->bad_end = true;
	}
	return 0;
}

/* fanout_fd: the event-loop reader (no spinning): read until FO_EMPTY, arm,
 * poll the cursor's eventfd. */
static size_t pq_fanout_fd_pop(pq_cons *c, bench_item **out, size_t max)
{
	size_t k = 0;
	int fd = fo_cursor_fd(c->cur);
	for (;;) {
		int rc = fo_cursor_next_many(c->cur, (void **)out, max, &k);
		if (rc == FO_OK)
			return k;
		if (rc != FO_EMPTY) {
			if (rc != FO_END) {
				fprintf(stderr, "fanout read: %s\n", fo_status_name(rc));
				c->bad_end = true;
			}
			return 0;
		}
		if (fd < 0 || fo_cursor_arm(c->cur) == 1)
			continue; /* something arrived meanwhile */
		struct pollfd p = {.fd = fd, .events = POLLIN};
		poll(&p, 1, -1);
	}
}

static void pq_nop_cons(pq_cons *c)
{
	(void)c;
}

/* Polled peers: the end is "closed flag seen, then still empty". */
static void pq_flag_close(pq *q)
{
	atomic_store_explicit(&q->closed, 1, memory_order_release);
}
static inline bool pq_is_closed(pq *q)
{
	return atomic_load_explicit(&q->closed, memory_order_acquire);
}

/* ---- ck_ring ------------------------------------------------------------------------------- */

static bool pq_ck_shared(pq *q)
{
	return q->mode == PQ_SHARED || q->nprod > 1;
}

static int pq_ckring_setup(pq *q)
{
	if (pq_ck_shared(q)) {
		q->ring_buf = calloc(q->cap, sizeof(ck_ring_buffer_t));
		if (!q->ring_buf)
			return -1;
		ck_ring_init(&q->ring, (unsigned)q->cap);
		return 0;
	}
	for (int i = 0; i < q->ncons; i++) {
		q->c[i].ring_buf = calloc(q->cap, sizeof(ck_ring_buffer_t));
		if (!q->c[i].ring_buf)
			return -1;
		ck_ring_init(&q->c[i].ring, (unsigned)q->cap);
	}
	return 0;
}

static void pq_ckring_teardown(pq *q)
{
	free(q->ring_buf);
	for (int i = 0; i < q->ncons; i++)
		free(q->c[i].ring_buf);
}

static int pq_ckring_produce(pq *q, int p)
{
	int prc = 0;
	unsigned spins;
	if (q->mode == PQ_SHARED) { /* SPMC */
		PQ_PRODUCE(q, p, {
			spins = 0;
			while (!ck_ring_enqueue_spmc(&q->ring, q->ring_buf, it))
				bench_backoff(&spins);
		});
	} else if (q->nprod > 1) { /* MPSC */
		PQ_PRODUCE(q, p, {
			spins = 0;
			while (!ck_ring_enqueue_mpsc(&q->ring, q->ring_buf, it))
				bench_backoff(&spins);
		});
	} else { /* SPSC per consumer */
		int nc = q->ncons;
		PQ_PRODUCE(q, p, {
			for (int k = 0; k < nc; k++) {
				spins = 0;
				while (!ck_ring_enqueue_spsc(&q->c[k].ring, q->c[k].ring_buf, it))
					bench_backoff(&spins);
			}
		});
	}
	return prc;
}

static size_t pq_ckring_pop(pq_cons *c, bench_item **out, size_t max)
{
	pq *q = c->q;
	unsigned spins = 0;
	size_t k;
	for (;;) {
		k = 0;
		if (q->mode == PQ_SHARED) {
			while (k < max && ck_ring_dequeue_spmc(&q->ring, q->ring_buf, &out[k]))
				k++;
		} else if (q->nprod > 1) {
			while (k < max && ck_ring_dequeue_mpsc(&q->ring, q->ring_buf, &out[k]))
				k++;
		} else {
			while (k < max && ck_ring_dequeue_spsc(&c->ring, c->ring_buf, &out[k]))
				k++;
		}
		if (k)
			return k;
		if (pq_is_closed(q)) { /* closed: one more look, then the end */
			bool again = q->mode == PQ_SHARED
			                 ? ck_ring_dequeue_spmc(&q->ring, q->ring_buf, &out[0])
			             : q->nprod > 1
			                 ? ck_ring_dequeue_mpsc(&q->ring, q->ring_buf, &out[0])
			                 : ck_ring_dequeue_spsc(&c->ring, c->ring_buf, &out[0]);
			return again ? 1 : 0;
		}
		bench_backoff(&spins);
	}
}

/* ckring_copy: PQ_FANOUT with one producer only */
static int pq_ckcopy_setup(pq *q)
{
	for (int i = 0; i < q->ncons; i++) {
		if (posix_memalign(&q->c[i].ring_buf, 64, q->cap * sizeof(bench_item)))
			return -1;
		memset(q->c[i].ring_buf, 0, q->cap * sizeof(bench_item));
		ck_ring_init(&q->c[i].ring, (unsigned)q->cap);
	}
	return 0;
}

static int pq_ckcopy_produce(pq *q, int p)
{
	int prc = 0, nc = q->ncons;
	unsigned spins;
	PQ_PRODUCE(q, p, {
		for (int k = 0; k < nc; k++) {
			spins = 0;
			while (!ck_ring_enqueue_spsc_pq_item(&q->c[k].ring, q->c[k].ring_buf, it))
				bench_backoff(&spins);
		}
	});
	return prc;
}

static size_t pq_ckcopy_pop(pq_cons *c, bench_item **out, size_t max)
{
	unsigned spins = 0;
	size_t k;
	if (max > PQ_BATCH)
		max = PQ_BATCH;
	for (;;) {
		k = 0;
		while (k < max && ck_ring_dequeue_spsc_pq_item(&c->ring, c->ring_buf, &c->buf[k]))
			out[k] = &c->buf[k], k++;
		if (k)
			return k;
		if (pq_is_closed(c->q)) {
			if (ck_ring_dequeue_spsc_pq_item(&c->ring, c->ring_buf, &c->buf[0]))
				return out[0] = &c->buf[0], 1;
			return 0;
		}
		bench_backoff(&spins);
	}
}

/* ---- mutex + condvar ----------------------------------------------------------------------- */

static struct mq *mq_create(size_t cap)
{
	struct mq *m = calloc(1, sizeof(*m));
	if (!m || !(m->v = calloc(cap, sizeof(void *)))) {
		free(m);
		return NULL;
	}
	m->cap = cap;
	pthread_mutex_init(&m->mu, NULL);
	pthread_cond_init(&m->not_empty, NULL);
	pthread_cond_init(&m->not_full, NULL);
	return m;
}

static void mq_destroy(struct mq *m)
{
	if (!m)
		return;
	pthread_mutex_destroy(&m->mu);
	pthread_cond_destroy(&m->not_empty);
	pthread_cond_destroy(&m->not_full);
	free(m->v);
	free(m);
}

static inline void mq_push(struct mq *m, void *it)
{
	pthread_mutex_lock(&m->mu);
	while (m->tail - m->head == m->cap) {
		m->wait_full++;
		pthread_cond_wait(&m->not_full, &m->mu);
		m->wait_full--;
	}
	m->v[m->tail++ % m->cap] = it;
	bool wake = m->wait_empty > 0;
	pthread_mutex_unlock(&m->mu);
	if (wake)
		pthread_cond_signal(&m->not_empty);
}

static inline size_t mq_pop(struct mq *m, bench_item **out, size_t max)
{
	size_t k = 0;
	pthread_mutex_lock(&m->mu);
	while (m->tail == m->head && !m->closed) {
		m->wait_empty++;
		pthread_cond_wait(&m->not_empty, &m->mu);
		m->wait_empty--;
	}
	while (k < max && m->head != m->tail)
		out[k++] = m->v[m->head++ % m->cap];
	bool wake = k && m->wait_full > 0;
	pthread_mutex_unlock(&m->mu);
	if (wake)
		pthread_cond_broadcast(&m->not_full);
	return k;
}

static void mq_close(struct mq *m)
{
	pthread_mutex_lock(&m->mu);
	m->closed = true;
	pthread_mutex_unlock(&m->mu);
	pthread_cond_broadcast(&m->not_empty);
}

static int pq_mutex_setup(pq *q)
{
	if (pq_ck_shared(q))
		return (q->mq = mq_create(q->cap)) ? 0 : -1;
	for (int i = 0; i < q->ncons; i++)
		if (!(q->c[i].mq = mq_create(q->cap)))
			return -1;
	return 0;
}

static void pq_mutex_teardown(pq *q)
{
	mq_destroy(q->mq);
	for (int i = 0; i < q->ncons; i++)
		mq_destroy(q->c[i].mq);
}

static int pq_mutex_produce(pq *q, int p)
{
	int prc = 0, nc = q->ncons;
	if (q->mq) {
		PQ_PRODUCE(q, p, mq_push(q->mq, it));
	} else {
		PQ_PRODUCE(q, p, {
			for (int k = 0; k < nc; k++)
				mq_push(q->c[k].mq, it);
		});
	}
	return prc;
}

static void pq_mutex_close(pq *q)
{
	if (q->mq)
		mq_close(q->mq);
	for (int i = 0; i < q->ncons; i++)
		if (q->c[i].mq)
			mq_close(q->c[i].mq);
}

static size_t pq_mutex_pop(pq_cons *c, bench_item **out, size_t max)
{
	return mq_pop(c->q->mq ? c->q->mq : c->mq, out, max);
}

/* ---- liburcu wfcqueue ---------------------------------------------------------------------- */

static struct wq *wq_create(void)
{
	struct wq *w;
	if (posix_memalign((void **)&w, 64, sizeof(*w)))
		return NULL;
	memset(w, 0, sizeof(*w));
	__cds_wfcq_init(&w->head, &w->tail);
	pthread_mutex_init(&w->lock, NULL);
	return w;
}

static int pq_wfcq_setup_common(pq *q, bool pool)
{
	int nq = pq_ck_shared(q) ? 1 : q->ncons;
	if (pq_ck_shared(q)) {
		if (!(q->wq = wq_create()))
			return -1;
	} else {
		for (int i = 0; i < q->ncons; i++)
			if (!(q->c[i].wq = wq_create()))
				return -1;
	}
	if (pool) {
		for (int p = 0; p < q->nprod; p++)
			for (int k = 0; k < nq; k++) {
				q->pool[p][k] = calloc(q->cap, sizeof(struct wnode));
				if (!q->pool[p][k])
					return -1;
				q->pool_next[p][k] = 0;
			}
	}
	return 0;
}
static int pq_wfcq_pool_setup(pq *q)
{
	return pq_wfcq_setup_common(q, true);
}
static int pq_wfcq_malloc_setup(pq *q)
{
	return pq_wfcq_setup_common(q, false);
}

static void pq_wfcq_teardown(pq *q)
{
	free(q->wq);
	for (int i = 0; i < q->ncons; i++)
		free(q->c[i].wq);
	for (int p = 0; p < PQ_MAXP; p++)
		for (int k = 0; k < PQ_MAXC; k++)
			free(q->pool[p][k]), q->pool[p][k] = NULL;
}

static inline void wq_enqueue_pool(pq *q, int p, int k, struct wq *w, bench_item *it)
{
	struct wnode *nd = &q->pool[p][k][q->pool_next[p][k]++ % q->cap];
	unsigned spins = 0;
	/* the pool is the queue's bound: wait until the consumer returned it */
	while (atomic_load_explicit(&nd->busy, memory_order_acquire))
		bench_backoff(&spins);
	atomic_store_explicit(&nd->busy, 1, memory_order_relaxed);
	cds_wfcq_node_init(&nd->node);
	nd->it = it;
	cds_wfcq_enqueue(&w->head, &w->tail, &nd->node);
}

static inline void wq_enqueue_malloc(struct wq *w, bench_item *it)
{
	struct wnode *nd = malloc(sizeof(*nd));
	if (!nd)
		abort();
	atomic_store_explicit(&nd->busy, 2, memory_order_relaxed); /* 2: malloc'd */
	cds_wfcq_node_init(&nd->node);
	nd->it = it;
	cds_wfcq_enqueue(&w->head, &w->tail, &nd->node);
}

static int pq_wfcq_pool_produce(pq *q, int p)
{
	int prc = 0, nc = q->ncons;
	if (q->wq) {
		PQ_PRODUCE(q, p, wq_enqueue_pool(q, p, 0, q->wq, it));
	} else {
		PQ_PRODUCE(q, p, {
			for (int k = 0; k < nc; k++)
				wq_enqueue_pool(q, p, k, q->c[k].wq, it);
		});
	}
	return prc;
}

static int pq_wfcq_malloc_produce(pq *q, int p)
{
	int prc = 0, nc = q->ncons;
	if (q->wq) {
		PQ_PRODUCE(q, p, wq_enqueue_malloc(q->wq, it));
	} else {
		PQ_PRODUCE(q, p, {
			for (int k = 0; k < nc; k++)
				wq_enqueue_malloc(q->c[k].wq, it);
		});
	}
	return prc;
}

static inline bench_item *wq_take(struct cds_wfcq_node *n)
{
	struct wnode *nd = caa_container_of(n, struct wnode, node);
	bench_item *it = nd->it;
	if (atomic_load_explicit(&nd->busy, memory_order_relaxed) == 2)
		free(nd);
	else /* release: the producer may reuse the node after this */
		atomic_store_explicit(&nd->busy, 0, memory_order_release);
	return it;
}

static size_t pq_wfcq_pop(pq_cons *c, bench_item **out, size_t max)
{
	pq *q = c->q;
	bool shared = q->wq != NULL && q->ncons > 1; /* one consumer: no lock needed */
	struct wq *w = q->wq ? q->wq : c->wq;
	unsigned spins = 0;
	for (;;) {
		size_t k = 0;
		bool closed = pq_is_closed(q); /* read before looking: see the end below */
		if (shared)
			pthread_mutex_lock(&w->lock);
		while (k < max) {
			struct cds_wfcq_node *n = __cds_wfcq_dequeue_blocking(&w->head, &w->tail);
			if (!n)
				break;
			out[k++] = wq_take(n);
		}
		if (shared)
			pthread_mutex_unlock(&w->lock);
		if (k)
			return k;
		if (closed) /* closed before an empty look: nothing more comes */
			return 0;
		bench_backoff(&spins);
	}
}

/* ---- ZeroMQ PUB/SUB (PQ_FANOUT, one producer) ---------------------------------------------- */

#ifdef HAVE_ZMQ
#define PQ_ZSEQ_PROBE (UINT64_MAX - 1)
#define PQ_ZSEQ_END   UINT64_MAX
#define PQ_ZPROGRESS  1024

static int pq_zmq_setup(pq *q)
{
	int zero = 0;
	static atomic_int gen;
	char addr[64];
	q->zctx = zmq_ctx_new();
	if (!q->zctx)
		return -1;
	q->zpub = zmq_socket(q->zctx, ZMQ_PUB);
	snprintf(addr, sizeof(addr), "inproc://pq%d", atomic_fetch_add(&gen, 1));
	if (!q->zpub || zmq_setsockopt(q->zpub, ZMQ_SNDHWM, &zero, sizeof(zero)) ||
	    zmq_bind(q->zpub, addr)) {
		fprintf(stderr, "zmq setup: %s\n", zmq_strerror(zmq_errno()));
		return -1;
	}
	atomic_init(&q->zready, 0);
	for (int i = 0; i < q->ncons; i++) {
		int hwm = 0;
		void *sub = zmq_socket(q->zctx, ZMQ_SUB);
		if (!sub || zmq_setsockopt(sub, ZMQ_RCVHWM, &hwm, sizeof(hwm)) ||
		    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0) || zmq_connect(sub, addr))
			return -1;
		q->c[i].zsub = sub;
		atomic_init(&q->zprogress[i], 0);
	}
	return 0;
}

static void pq_zmq_teardown(pq *q)
{
	int zero = 0;
	for (int i = 0; i < q->ncons; i++)
		if (q->c[i].zsub) {
			zmq_setsockopt(q->c[i].zsub, ZMQ_LINGER, &zero, sizeof(zero));
			zmq_close(q->c[i].zsub);
		}
	if (q->zpub) {
		zmq_setsockopt(q->zpub, ZMQ_LINGER, &zero, sizeof(zero));
		zmq_close(q->zpub);
	}
	if (q->zctx)
		zmq_ctx_term(q->zctx);
}

static int pq_zmq_produce(pq *q, int p)
{
	bench_item mark = {.seq = PQ_ZSEQ_PROBE};
	int prc = 0;
	for (int tries = 0; atomic_load(&q->zready) < q->ncons; tries++) {
		if (tries == 10000) {
			fprintf(stderr, "zmq: subscribers never connected\n");
			return -1;
		}
		zmq_send(q->zpub, &mark, sizeof(mark), 0);
		nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
	}
	uint64_t i = 0;
	PQ_PRODUCE(q, p, {
		if (q->cap && (i % PQ_ZPROGRESS) == 0) { /* keep memory flat: window */
			unsigned spins = 0;
			for (;;) {
				uint64_t m = UINT64_MAX;
				for (int k = 0; k < q->ncons; k++) {
					uint64_t v = atomic_load_explicit(&q->zprogress[k],
					                                  memory_order_relaxed);
					m = v < m ? v : m;
				}
				if (i - m <= q->cap)
					break;
				bench_backoff(&spins);
			}
		}
		i++;
		if (zmq_send(q->zpub, it, sizeof(bench_item), 0) != (int)sizeof(bench_item))
			prc = -1;
	});
	return prc;
}

static void pq_zmq_close(pq *q)
{
	bench_item mark = {.seq = PQ_ZSEQ_END};
	zmq_send(q->zpub, &mark, sizeof(mark), 0);
}

static size_t pq_zmq_pop(pq_cons *c, bench_item **out, size_t max)
{
	pq *q = c->q;
	size_t k = 0;
	if (max > PQ_BATCH)
		max = PQ_BATCH;
	if (c->zended)
		return 0;
	while (k < max) {
		int len = zmq_recv(c->zsub, &c->buf[k], sizeof(bench_item), k ? ZMQ_DONTWAIT : 0);
		if (len < 0 && zmq_errno() == EAGAIN)
			break;
		if (len < 0 && zmq_errno() == EINTR)
			continue;
		if (len != (int)sizeof(bench_item)) {
			c->bad_end = true;
			return 0;
		}
		uint64_t seq = c->buf[k].seq;
		if (seq == PQ_ZSEQ_PROBE) {
			if (!c->zprobed)
				atomic_fetch_add(&q->zready, 1);
			c->zprobed = true;
			continue;
		}
		if (seq == PQ_ZSEQ_END) {
			c->zended = true;
			break; /* k may be 0: the end */
		}
		out[k] = &c->buf[k];
		k++;
	}
	c->zgot += k; /* relaxed: a hint for the producer's window */
	atomic_store_explicit(&q->zprogress[c->idx], c->zgot, memory_order_relaxed);
	return k;
}
#endif

/* ---- the table ----------------------------------------------------------------------------- */

static const pq_impl pq_impls[] = {
    {"fanout", true, true, true, pq_fanout_setup, pq_fanout_teardown, pq_nop_cons, pq_nop_cons,
     pq_fanout_produce, pq_fanout_close, pq_fanout_pop},
    {"fanout_mp", true, false, true, pq_fanout_mp_setup, pq_fanout_teardown, pq_nop_cons,
     pq_nop_cons, pq_fanout_produce, pq_fanout_close, pq_fanout_pop},
    {"fanout_fd", true, false, true, pq_fanout_setup, pq_fanout_teardown, pq_nop_cons, pq_nop_cons,
     pq_fanout_produce, pq_fanout_close, pq_fanout_fd_pop},
    {"ckring", true, true, true, pq_ckring_setup, pq_ckring_teardown, pq_nop_cons, pq_nop_cons,
     pq_ckring_produce, pq_flag_close, pq_ckring_pop},
    {"ckring_copy", false, false, true, pq_ckcopy_setup, pq_ckring_teardown, pq_nop_cons,
     pq_nop_cons, pq_ckcopy_produce, pq_flag_close, pq_ckcopy_pop},
    {"mutex", true, true, true, pq_mutex_setup, pq_mutex_teardown, pq_nop_cons, pq_nop_cons,
     pq_mutex_produce, pq_mutex_close, pq_mutex_pop},
    {"wfcq_pool", true, true, true, pq_wfcq_pool_setup, pq_wfcq_teardown, pq_nop_cons, pq_nop_cons,
     pq_wfcq_pool_produce, pq_flag_close, pq_wfcq_pop},
    {"wfcq_malloc", true, true, true, pq_wfcq_malloc_setup, pq_wfcq_teardown, pq_nop_cons,
     pq_nop_cons, pq_wfcq_malloc_produce, pq_flag_close, pq_wfcq_pop},
#ifdef HAVE_ZMQ
    {"zmq", false, false, true, pq_zmq_setup, pq_zmq_teardown, pq_nop_cons, pq_nop_cons,
     pq_zmq_produce, pq_zmq_close, pq_zmq_pop},
#endif
};
#define PQ_NIMPLS (sizeof(pq_impls) / sizeof(pq_impls[0]))

static inline const pq_impl *pq_find(const char *name)
{
	for (size_t i = 0; i < PQ_NIMPLS; i++)
		if (!strcmp(pq_impls[i].name, name))
			return &pq_impls[i];
	return NULL;
}

static inline bool pq_supports(const pq_impl *im, int mode, int nprod)
{
	if (mode == PQ_SHARED && !im->shared_ok)
		return false;
	if (nprod > 1 && !im->mp_ok)
		return false;
	return true;
}

/* ---- the harness --------------------------------------------------------------------------- */

typedef struct pq_result {
	uint64_t wall_ns, cpu_ns, delivered;
	uint64_t csw; /* context switches of the whole process (voluntary + not) */
	bool ok;
	uint32_t *lat; /* latency mode: all deliveries, ns (malloc'd; caller frees) */
	size_t nlat;
} pq_result;

struct pq_prod {
	pq *q;
	int p;
	int rc;
	uint64_t start_ns; /* just after the start barrier */
	pthread_t thread;
};

static void *pq_consumer_main(void *arg)
{
	pq_cons *c = arg;
	pq *q = c->q;
	const uint64_t pool = q->npool;
	bench_item *out[PQ_BATCH];
	uint64_t next[PQ_MAXP] = {0}, last[PQ_MAXP];
	uint64_t seen = 0, errors = 0, sum = 0;
	for (int p = 0; p < PQ_MAXP; p++)
		last[p] = UINT64_MAX;
	q->im->cons_init(c);
	pthread_barrier_wait(&q->start);
	for (;;) {
		size_t k = q->im->pop(c, out, q->pop_max);
		if (!k)
			break;
		uint64_t now = q->latency ? bench_now_ns() : 0;
		for (size_t i = 0; i < k; i++) {
			const bench_item *it = out[i];
			unsigned p = (unsigned)it->pad[0];
			if (p >= PQ_MAXP) {
				errors++;
				continue;
			}
			if (q->mode == PQ_FANOUT) {
				errors += it->seq != next[p];
				next[p] = it->seq + 1 == pool ? 0 : it->seq + 1;
			} else if (pool == q->n) {
				/* shared: increasing per producer.  Only without reuse:
				 * a member may miss a whole lap of the pool while the
				 * other takes it; the count and the sum stay exact. */
				errors += last[p] != UINT64_MAX && it->seq <= last[p];
				last[p] = it->seq;
			}
			sum += it->seq;
			if (q->write)
				errors += !pq_item_ok(it);
			if (q->latency && c->nlat < c->maxlat)
				c->lat[c->nlat++] =
				    (uint32_t)((now - it->ts) > UINT32_MAX ? UINT32_MAX
				                                           : now - it->ts);
		}
		seen += k;
	}
	c->seen = seen, c->errors = errors, c->sum = sum;
	c->end_ns = bench_now_ns(); /* the last item or the end: before any join */
	q->im->cons_fini(c);
	return NULL;
}

static void *pq_producer_main(void *arg)
{
	struct pq_prod *pp = arg;
	pq *q = pp->q;
	pthread_barrier_wait(&q->start);
	pp->start_ns = bench_now_ns();
	pp->rc = q->im->produce(q, pp->p);
	if (atomic_fetch_sub(&q->producers_left, 1) == 1)
		q->im->close(q);
	return NULL;
}

/* Options of pq_measure_ex() beyond pq_measure()'s. */
typedef struct pq_extra {
	bool write;     /* producers write each item, consumers read every field
	                   (the pool must exceed the capacity plus a batch) */
	size_t pop_max; /* items per pop: 1..PQ_BATCH (0: PQ_BATCH) */
} pq_extra;

/* One measurement: @n pushes per producer.  @items[p]: producer p's @pool
 * items (seq 0..pool-1, pad[0] = p), used in turn; latency mode needs
 * pool == n (it stamps the items).  @x: NULL or further options. */
static inline pq_result pq_measure_ex(const pq_impl *im, int mode, int nprod, int ncons, size_t cap,
                                      bench_item **items, uint64_t pool, uint64_t n,
                                      uint64_t pace_ns, bool latency, const pq_extra *x)
{
	pq_result res = {0};
	pq *q;
	struct pq_prod prods[PQ_MAXP];

	if (posix_memalign((void **)&q, 64, sizeof(*q)))
		return res;
	memset(q, 0, sizeof(*q));
	q->im = im, q->mode = mode, q->nprod = nprod, q->ncons = ncons, q->cap = cap;
	if (pool > n || pool == 0 || (latency && pool != n))
		pool = n;
	q->n = n, q->npool = pool, q->pace_ns = pace_ns, q->latency = latency, q->items = items;
	q->write = x && x->write;
	q->pop_max = x && x->pop_max && x->pop_max < PQ_BATCH ? x->pop_max : PQ_BATCH;
	atomic_init(&q->closed, 0);
	atomic_init(&q->producers_left, nprod);
	for (int i = 0; i < ncons; i++) {
		q->c[i].q = q, q->c[i].idx = i;
		if (latency) {
			q->c[i].maxlat = (size_t)(n * (uint64_t)nprod);
			q->c[i].lat = malloc(q->c[i].maxlat * sizeof(uint32_t));
			memset(q->c[i].lat, 0, q->c[i].maxlat * sizeof(uint32_t)); /* touch */
		}
	}
	bool ok = im->setup(q) == 0;
	if (ok) {
		pthread_barrier_init(&q->start, NULL, (unsigned)(nprod + ncons + 1));
		for (int i = 0; i < ncons; i++)
			pthread_create(&q->c[i].thread, NULL, pq_consumer_main, &q->c[i]);
		for (int p = 0; p < nprod; p++) {
			prods[p] = (struct pq_prod){.q = q, .p = p};
			pthread_create(&prods[p].thread, NULL, pq_producer_main, &prods[p]);
		}
		uint64_t cpu0 = bench_cpu_ns(), csw0 = bench_csw();
		pthread_barrier_wait(&q->start);
		/* Wall time from the first producer's start to the last consumer's
		 * end, stamped by those threads: the main thread may wait for a CPU
		 * after the barrier or a join on a loaded machine. */
		uint64_t t0 = UINT64_MAX, t1 = 0;
		for (int p = 0; p < nprod; p++) {
			pthread_join(prods[p].thread, NULL);
			ok &= prods[p].rc == 0;
			t0 = prods[p].start_ns < t0 ? prods[p].start_ns : t0;
		}
		for (int i = 0; i < ncons; i++) {
			pthread_join(q->c[i].thread, NULL);
			t1 = q->c[i].end_ns > t1 ? q->c[i].end_ns : t1;
		}
		res.wall_ns = t1 > t0 ? t1 - t0 : 1;
		res.cpu_ns = bench_cpu_ns() - cpu0;
		res.csw = bench_csw() - csw0;
		pthread_barrier_destroy(&q->start);

		/* sum of seq over n pushes cycling through pool items */
		uint64_t rem = n % pool, total = 0, sum = 0;
		uint64_t want_sum = (uint64_t)nprod * ((n / pool) * (pool * (pool - 1) / 2) +
		                                       rem * (rem - 1 + (rem == 0)) / 2);
		for (int i = 0; i < ncons; i++) {
			pq_cons *c = &q->c[i];
			total += c->seen, sum += c->sum;
			bool bad =
			    c->errors || c->bad_end ||
			    (mode == PQ_FANOUT && (c->seen != n * nprod || c->sum != want_sum));
			if (bad) {
				fprintf(stderr,
				        "FAIL impl=%s consumer %d: saw %" PRIu64 " of %" PRIu64
				        ", %" PRIu64 " errors%s\n",
				        im->name, i, c->seen, n * nprod, c->errors,
				        c->bad_end ? ", bad end" : "");
				ok = false;
			}
		}
		if (mode == PQ_SHARED && (total != n * nprod || sum != want_sum)) {
			fprintf(stderr,
			        "FAIL impl=%s shared: %" PRIu64 " of %" PRIu64 " delivered\n",
			        im->name, total, n * nprod);
			ok = false;
		}
		res.delivered = total;
		if (latency) {
			size_t tot = 0;
			for (int i = 0; i < ncons; i++)
				tot += q->c[i].nlat;
			res.lat = malloc((tot ? tot : 1) * sizeof(uint32_t));
			for (int i = 0; i < ncons; i++) {
				memcpy(res.lat + res.nlat, q->c[i].lat,
				       q->c[i].nlat * sizeof(uint32_t));
				res.nlat += q->c[i].nlat;
			}
		}
	}
	im->teardown(q);
	for (int i = 0; i < ncons; i++)
		free(q->c[i].lat);
	free(q);
	res.ok = ok;
	return res;
}

static inline pq_result pq_measure(const pq_impl *im, int mode, int nprod, int ncons, size_t cap,
                                   bench_item **items, uint64_t pool, uint64_t n, uint64_t pace_ns,
                                   bool latency)
{
	return pq_measure_ex(im, mode, nprod, ncons, cap, items, pool, n, pace_ns, latency, NULL);
}

/* Items for @nprod producers: seq 0..n-1, pad[0] = producer. */
static inline bench_item **pq_items_create(int nprod, uint64_t n)
{
	bench_item **v = calloc((size_t)nprod, sizeof(*v));
	for (int p = 0; p < nprod; p++) {
		v[p] = bench_items_create(n);
		for (uint64_t i = 0; i < n; i++)
			v[p][i].pad[0] = (uint64_t)p;
	}
	return v;
}

static inline void pq_items_destroy(bench_item **v, int nprod)
{
	for (int p = 0; p < nprod; p++)
		free(v[p]);
	free(v);
}

static int pq_cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/* The q-quantile (0..1) of v (sorted in place by the first call with sort). */
static inline uint32_t pq_quantile(uint32_t *v, size_t n, double qt, bool sort)
{
	if (!n)
		return 0;
	if (sort)
		qsort(v, n, sizeof(*v), pq_cmp_u32);
	size_t i = (size_t)(qt * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

/* ---- a whole throughput program (B1, B10, B11) --------------------------------------------- */

/* Runs @impls (comma list; --impl overrides) for each consumer count, --runs
 * times interleaved (the order rotates per run), prints RESULT lines and the
 * summary; returns the exit status. */
static inline int pq_tput_main(int argc, char **argv, const char *scenario, const char *title,
                               int mode, int nprod, const int *ncons, size_t nn, const char *impls)
{
	bench_opts o = {.items = 10000000, .runs = 5};
	uint64_t cap = 65536;
	const char *only = NULL;
	const bench_flag flags[] = {
	    {"capacity", BENCH_FLAG_U64, &cap,
	     "queue capacity for every implementation (power of two, default 65536)"},
	    {"impl", BENCH_FLAG_STR, &only, "comma-separated implementations"},
	};
	bench_parse_args(argc, argv, &o, flags, sizeof(flags) / sizeof(flags[0]));
	if (cap < 2 || (cap & (cap - 1))) {
		fprintf(stderr, "--capacity must be a power of two\n");
		return 2;
	}
	uint64_t per = o.items / (uint64_t)nprod;      /* o.items in total */
	uint64_t pool = per < 1000000 ? per : 1000000; /* 64 MB per producer at most */
	bench_item **items = pq_items_create(nprod, pool);
	bench_results res;
	bench_results_init(&res, scenario, "cursors", o.cpus);
	printf("%s: %s, %" PRIu64 " items x %d runs, capacity %" PRIu64 ", %d cpus\n", scenario,
	       title, per * (uint64_t)nprod, o.runs, cap, o.cpus);

	const pq_impl *list[PQ_NIMPLS];
	size_t nl = 0;
	for (size_t i = 0; i < PQ_NIMPLS; i++)
		if (bench_in_list(only ? only : impls, pq_impls[i].name) &&
		    pq_supports(&pq_impls[i], mode, nprod))
			list[nl++] = &pq_impls[i];

	bool ok = true;
	for (int run = 1; run <= o.runs; run++)
		for (size_t ci = 0; ci < nn; ci++)
			for (size_t j = 0; j < nl; j++) {
				const pq_impl *im = list[(j + (size_t)run) % nl];
				pq_result r = pq_measure(im, mode, nprod, ncons[ci], (size_t)cap,
				                         items, pool, per, 0, false);
				if (!r.ok) {
					ok = false;
					continue;
				}
				bench_record(&res, im->name, ncons[ci], nprod + ncons[ci], run,
				             per * (uint64_t)nprod, r.wall_ns, r.cpu_ns);
			}
	bench_summary(&res, "fanout");
	bench_results_fini(&res);
	pq_items_destroy(items, nprod);
	if (!ok)
		fprintf(stderr, "%s: FAILED (see above)\n", scenario);
	return ok ? 0 : 1;
}

#endif /* FANOUT_BENCH_PEERS_H */
