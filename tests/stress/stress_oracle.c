/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/**
 * stress_oracle.c - the sequence-oracle stress test (TESTING.md section 2).
 *
 * Matrix: producers {1,2,4,8} x active cursors {1,3,8} x passive {0,2} x
 * shared-group members {2,4}: 48 cells.  Every cursor, passive cursor and
 * group member runs in its own thread (oversubscribing 2 cores on purpose).
 * Each producer pushes seqs 0..N-1 as heap items {producer, seq, batch,
 * checksum}; the stream's item_free validates, counts (per producer) and frees
 * them.  Per cell, alternating: bounded (capacity 1024) or unbounded; single
 * pushes (push / try_push / timed_push) or push_many batches of 1..64;
 * default or small (256) passive window; the creator's handle dropped right
 * after close or after every reader finished; with one producer, every
 * other cell sets opts.single_producer (its lock-free fast push path).
 *
 * Checks, per producer:
 *   active cursor   each seq is last + 1 (no loss, duplicate, reordering), a
 *                   push_many batch appears contiguously, all N then FO_END;
 *   passive cursor  seqs strictly increase and skip only after FO_LAGGED;
 *                   returned + fo_cursor_lagged() == pushed;
 *   group member    seqs strictly increase; a shared bitmap catches an item
 *                   given to two members; the union is every item;
 *   every item      magic + checksum (no torn, stale or freed read);
 *   end             FO_END (sticky) for every cursor, not before the close;
 *                   when the last handle (cursor close or stream destroy)
 *                   returns, item_free ran exactly once per pushed item.
 * Readers mix fo_cursor_next, next_many, timed_next (short timeouts that
 * must not lose items), try_next and at_least/next_many.
 *
 * Usage: stress_oracle [--seed N] [--items N] [--quick] [--only P,A,PAS,SH]
 * Default items per producer: native 1M in the headline cells (1p x 3a x 2pas
 * x 2sh, 4p x 8a x 2pas x 4sh) and 250k elsewhere; ASan 1/3, TSan 1/10.
 */
#include "../common/stress_common.h"

#define HEADLINE_ITEMS       1000000ULL
#define CELL_ITEMS           250000ULL
#define BOUNDED_CAPACITY     1024u
#define SMALL_PASSIVE_WINDOW 256u
#define MAX_BATCH            64u

enum { R_ACTIVE, R_PASSIVE, R_SHARED };
static const char *const kind_name[] = {"active", "passive", "shared"};

enum { S_IDLE, S_NEXT, S_TIMED, S_MANY, S_TRY, S_LONGWAIT, S_DONE };
static const char *const state_name[] = {"idle",     "next",      "timed_next", "next_many",
                                         "try_next", "long_wait", "done"};

typedef struct cell {
	uint32_t np, na, npas, nsh;
	bool bounded, batch, small_window, early_destroy, headline;
	uint64_t items;
} cell;

typedef struct reader {
	int kind;
	int idx;
	char name[48];
	fo_cursor *c;
	st_rng rng;
	int64_t *last;      /* per producer: last seq returned, -1 none */
	uint64_t *epoch_at; /* passive: lag epoch when producer's last item came */
	uint64_t lag_epoch; /* passive: FO_LAGGED returns so far */
	uint64_t got;
	/* active: push_many batch being read */
	uint32_t open_prod;
	uint64_t open_batch;
	uint16_t open_pos, open_len;
	bool slow; /* sleeps now and then (passive: to get lapped) */
	bool ended;
	uint64_t lagged_total; /* fo_cursor_lagged at the end */
	_Atomic int state;
	_Atomic uint64_t diag_got;
	pthread_t th;
} reader;

typedef struct producer {
	uint32_t id;
	st_rng rng;
	uint64_t pushed;
	uint64_t full_seen, timedout_seen, batches;
	_Atomic uint64_t diag_pushed;
	pthread_t th;
} producer;

static struct {
	cell cl;
	fo_stream *s;
	st_freectx fc;
	st_bitmap *claimed; /* per producer: group claims */
	reader *rd;
	uint32_t nrd;
	producer *pr;
	_Atomic bool closed; /* set just before fo_stream_close */
	_Atomic bool go;
	_Atomic long handles; /* stream handle + open cursors */
	_Atomic bool last_handle_checked;
	uint64_t total_pushed; /* valid once producers joined */
	int64_t long_wait_ns;
} g;

/* -------------------------------------------------------------- diagnostics */

static void dump_state(void)
{
	fprintf(stderr,
	        "  cell: %up x %ua x %upas x %ush, %s, %s, items/producer=%" PRIu64 ", closed=%d\n",
	        g.cl.np, g.cl.na, g.cl.npas, g.cl.nsh, g.cl.bounded ? "bounded" : "unbounded",
	        g.cl.batch ? "push_many" : "single pushes", g.cl.items,
	        (int)atomic_load(&g.closed));
	if (g.pr)
		for (uint32_t p = 0; p < g.cl.np; p++)
			fprintf(stderr, "  producer %u: pushed %" PRIu64 "\n", p,
			        atomic_load(&g.pr[p].diag_pushed));
	if (g.rd)
		for (uint32_t i = 0; i < g.nrd; i++)
			fprintf(stderr, "  %s: got %" PRIu64 ", in %s\n", g.rd[i].name,
			        atomic_load(&g.rd[i].diag_got),
			        state_name[atomic_load(&g.rd[i].state)]);
	if (g.s) {
		fo_stream_stats st;
		if (fo_stream_get_stats(g.s, &st) == FO_OK)
			fprintf(stderr,
			        "  stats: live_segments=%zu cached_segments=%zu retained_items=%zu "
			        "pushed=%" PRIu64 " cursors=%zu\n",
			        st.live_segments, st.cached_segments, st.retained_items, st.pushed,
			        st.cursors);
	}
}

/* Called after every handle drop (fo_cursor_close / fo_stream_destroy has
 * returned).  The caller that brings the count to zero made the last call:
 * every destructor must have run by now. */
static void release_handle(const char *who)
{
	long left = atomic_fetch_sub_explicit(&g.handles, 1, memory_order_acq_rel) - 1;
	if (left != 0)
		return;
	atomic_store(&g.last_handle_checked, true);
	uint64_t freed = st_freed_total(&g.fc);
	if (freed != g.total_pushed)
		st_fail("after the last handle was dropped (%s): item_free ran %" PRIu64
		        " times, %" PRIu64 " items were pushed",
		        who, freed, g.total_pushed);
}

/* ------------------------------------------------------------------ readers */

static void check_active(reader *r, const st_item *it)
{
	uint32_t p = it->producer;
	int64_t want = r->last[p] + 1;
	if ((int64_t)it->seq != want) {
		st_fail("%s: producer %u: expected seq %" PRId64 ", got %" PRIu64 " (%s)", r->name,
		        p, want, it->seq,
		        (int64_t)it->seq < want ? "duplicate or reordered" : "items lost");
	}
	r->last[p] = (int64_t)it->seq;
	/* push_many batch contiguity: inside a batch, the next item is its next one */
	if (r->open_len) {
		if (p == r->open_prod && it->batch == r->open_batch &&
		    it->batch_pos == r->open_pos) {
			if (++r->open_pos == r->open_len)
				r->open_len = 0;
			return;
		}
		st_fail("%s: batch %" PRIu64 " of producer %u (len %u) broken at position %u: "
		        "got producer %u seq %" PRIu64 " batch %" PRIu64 " pos %u",
		        r->name, r->open_batch, r->open_prod, r->open_len, r->open_pos, p, it->seq,
		        it->batch, it->batch_pos);
		r->open_len = 0;
	}
	if (it->batch_pos != 0) {
		st_fail("%s: producer %u seq %" PRIu64 ": batch %" PRIu64
		        " entered in the middle (pos %u of %u)",
		        r->name, p, it->seq, it->batch, it->batch_pos, it->batch_len);
	} else if (it->batch_len > 1) {
		r->open_prod = p;
		r->open_batch = it->batch;
		r->open_pos = 1;
		r->open_len = it->batch_len;
	}
}

static void check_passive(reader *r, const st_item *it)
{
	uint32_t p = it->producer;
	int64_t last = r->last[p];
	if ((int64_t)it->seq <= last) {
		st_fail("%s: producer %u: seq %" PRIu64 " after %" PRId64 " (not increasing)",
		        r->name, p, it->seq, last);
	} else if ((int64_t)it->seq != last + 1 && r->epoch_at[p] == r->lag_epoch) {
		st_fail("%s: producer %u: skipped from %" PRId64 " to %" PRIu64
		        " without FO_LAGGED",
		        r->name, p, last, it->seq);
	}
	r->last[p] = (int64_t)it->seq;
	r->epoch_at[p] = r->lag_epoch;
}

static void check_shared(reader *r, const st_item *it)
{
	uint32_t p = it->producer;
	if ((int64_t)it->seq <= r->last[p])
		st_fail("%s: producer %u: seq %" PRIu64 " after %" PRId64 " (not increasing)",
		        r->name, p, it->seq, r->last[p]);
	if (st_bitmap_set(&g.claimed[p], it->seq))
		st_fail("%s: producer %u seq %" PRIu64
		        " was already returned to another group member (duplicate)",
		        r->name, p, it->seq);
	r->last[p] = (int64_t)it->seq;
}

static void process(reader *r, void *item)
{
	if (!st_item_check(item, g.cl.np, r->name))
		return;
	const st_item *it = item;
	if (it->seq >= g.cl.items) {
		st_fail("%s: seq %" PRIu64 " out of range", r->name, it->seq);
		return;
	}
	r->got++;
	switch (r->kind) {
	case R_ACTIVE:
		check_active(r, it);
		break;
	case R_PASSIVE:
		check_passive(r, it);
		break;
	default:
		check_shared(r, it);
		break;
	}
}

static void on_end(reader *r)
{
	void *item = NULL;
	size_t n = 99;
	if (!atomic_load(&g.closed))
		st_fail("%s: FO_END before the stream was closed", r->name);
	int rc = fo_cursor_try_next(r->c, &item);
	if (rc != FO_END)
		st_fail("%s: FO_END not sticky: try_next then gave %s", r->name, st_rc(rc));
	rc = fo_cursor_next_many(r->c, (void **)&item, 1, &n);
	if (rc != FO_END || n != 0)
		st_fail("%s: FO_END not sticky: next_many then gave %s n=%zu", r->name, st_rc(rc),
		        n);
	rc = fo_cursor_timed_next(r->c, &item, 1000);
	if (rc != FO_END)
		st_fail("%s: FO_END not sticky: timed_next then gave %s", r->name, st_rc(rc));
	if (!fo_cursor_is_drained(r->c))
		st_fail("%s: fo_cursor_is_drained() false after FO_END", r->name);
	if (r->kind == R_ACTIVE) {
		for (uint32_t p = 0; p < g.cl.np; p++)
			if (r->last[p] != (int64_t)g.cl.items - 1)
				st_fail("%s: FO_END but producer %u's last seq was %" PRId64
				        " (expected %" PRIu64 ")",
				        r->name, p, r->last[p], g.cl.items - 1);
		if (r->open_len)
			st_fail("%s: FO_END inside batch %" PRIu64 " of producer %u", r->name,
			        r->open_batch, r->open_prod);
	}
	if (r->kind == R_PASSIVE) {
		r->lagged_total = fo_cursor_lagged(r->c);
		uint64_t total = (uint64_t)g.cl.np * g.cl.items;
		if (r->got + r->lagged_total != total)
			st_fail("%s: returned %" PRIu64 " + fo_cursor_lagged %" PRIu64
			        " != %" PRIu64 " pushed",
			        r->name, r->got, r->lagged_total, total);
		if ((r->lag_epoch == 0) != (r->lagged_total == 0))
			st_fail("%s: %" PRIu64 " FO_LAGGED returns but fo_cursor_lagged = %" PRIu64,
			        r->name, r->lag_epoch, r->lagged_total);
	} else if (fo_cursor_lagged(r->c) != 0) {
		st_fail("%s: fo_cursor_lagged = %" PRIu64 " on a non-passive cursor", r->name,
		        fo_cursor_lagged(r->c));
	}
}

static void *reader_main(void *arg)
{
	reader *r = arg;
	void *items[MAX_BATCH];
	bool must_block = false;
	unsigned bad = 0;

	while (!atomic_load_explicit(&g.go, memory_order_acquire))
		sched_yield();

	for (;;) {
		bool closed = atomic_load_explicit(&g.closed, memory_order_acquire);
		uint64_t m = st_below(&r->rng, 100);
		size_t n = 0;
		int rc;
		bool long_wait = false;

		if (must_block) {
			/* nothing was ready: wait for real (bounded once the stream is closed) */
			if (closed || m < 30) {
				atomic_store(&r->state, S_LONGWAIT);
				long_wait = true;
				rc = fo_cursor_timed_next(r->c, &items[0], g.long_wait_ns);
			} else {
				atomic_store(&r->state, S_NEXT);
				rc = fo_cursor_next(r->c, &items[0]);
			}
			n = rc == FO_OK;
		} else if (m < 40) {
			atomic_store(&r->state, S_MANY);
			rc = fo_cursor_next_many(r->c, items, 1 + st_below(&r->rng, MAX_BATCH), &n);
			if (rc == FO_OK && (n == 0 || n > MAX_BATCH))
				st_fail("%s: next_many FO_OK with n=%zu", r->name, n);
			if (rc != FO_OK && n != 0)
				st_fail("%s: next_many %s with n=%zu", r->name, st_rc(rc), n);
		} else if (m < 65) {
			static const int64_t tmo[] = {0, 1000, 50000, 2 * ST_NS_PER_MS};
			atomic_store(&r->state, S_TIMED);
			rc = fo_cursor_timed_next(r->c, &items[0], tmo[st_below(&r->rng, 4)]);
			n = rc == FO_OK;
		} else if (m < 85) {
			atomic_store(&r->state, S_NEXT);
			if (closed) {
				long_wait = true;
				rc = fo_cursor_timed_next(r->c, &items[0], g.long_wait_ns);
			} else {
				rc = fo_cursor_next(r->c, &items[0]);
			}
			n = rc == FO_OK;
		} else if (m < 93) {
			atomic_store(&r->state, S_TRY);
			rc = fo_cursor_try_next(r->c, &items[0]);
			n = rc == FO_OK;
		} else {
			/* available / at_least, then take exactly that many (active only:
			 * other members or lapping may take items from the others) */
			size_t k = 1 + st_below(&r->rng, MAX_BATCH);
			bool al = fo_cursor_at_least(r->c, k);
			/* available() is O(available): only where the backlog is bounded */
			size_t av =
			    g.cl.bounded && r->kind == R_ACTIVE ? fo_cursor_available(r->c) : 0;
			atomic_store(&r->state, S_MANY);
			rc = fo_cursor_next_many(r->c, items, k, &n);
			if (r->kind == R_ACTIVE) {
				if (g.cl.bounded && al && av < k)
					st_fail("%s: at_least(%zu) true but available()=%zu",
					        r->name, k, av);
				if (al && !(rc == FO_OK && n == k))
					st_fail("%s: at_least(%zu) was true, then next_many gave "
					        "%s n=%zu",
					        r->name, k, st_rc(rc), n);
				if (g.cl.bounded && rc == FO_OK && n < k && n < av)
					st_fail("%s: available()=%zu, then next_many(%zu) gave "
					        "only %zu",
					        r->name, av, k, n);
			}
		}
		atomic_store(&r->state, S_IDLE);

		switch (rc) {
		case FO_OK:
			must_block = false;
			for (size_t i = 0; i < n; i++)
				process(r, items[i]);
			atomic_store_explicit(&r->diag_got, r->got, memory_order_relaxed);
			st_tick();
			if (r->slow && st_below(&r->rng, 4096) == 0)
				st_sleep_ns((int64_t)(1 + st_below(&r->rng, 3)) * ST_NS_PER_MS);
			else if (st_below(&r->rng, 2048) == 0)
				sched_yield();
			break;
		case FO_END:
			on_end(r);
			r->ended = true;
			goto out;
		case FO_LAGGED:
			if (r->kind != R_PASSIVE)
				st_fail("%s: FO_LAGGED on a %s cursor", r->name,
				        kind_name[r->kind]);
			r->lag_epoch++;
			must_block = false;
			break;
		case FO_EMPTY:
		case FO_TIMEDOUT:
			if (long_wait) {
				if (atomic_load(&g.closed))
					st_fail("%s: no FO_END within %.0f s after the stream was "
					        "closed "
					        "(got %" PRIu64 " items)",
					        r->name, (double)g.long_wait_ns / 1e9, r->got);
				else
					st_fail("%s: no item for %.0f s while producers run",
					        r->name, (double)g.long_wait_ns / 1e9);
				if (++bad > 3)
					goto out;
			}
			must_block = true;
			break;
		default:
			st_fail("%s: unexpected status %s (%d)", r->name, st_rc(rc), rc);
			if (++bad > 3)
				goto out;
			must_block = true;
			break;
		}
	}
out:
	atomic_store(&r->state, S_DONE);
	fo_cursor_close(r->c);
	r->c = NULL;
	release_handle(r->name);
	st_tick();
	return NULL;
}

/* ---------------------------------------------------------------- producers */

static bool push_one(producer *pr, st_item *it)
{
	for (int attempt = 0;; attempt++) {
		uint64_t m = st_below(&pr->rng, 10);
		int rc;
		if (m < 6 || attempt > 50)
			rc = fo_stream_push(g.s, it);
		else if (m < 8)
			rc = fo_stream_try_push(g.s, it);
		else
			rc = fo_stream_timed_push(g.s, it, (int64_t)st_below(&pr->rng, 200000));
		if (rc == FO_OK)
			return true;
		if (rc == FO_FULL || rc == FO_TIMEDOUT) {
			if (!g.cl.bounded)
				st_fail("producer %u: %s on an unbounded stream", pr->id,
				        st_rc(rc));
			rc == FO_FULL ? pr->full_seen++ : pr->timedout_seen++;
			if (attempt > 4)
				sched_yield();
			continue;
		}
		st_fail("producer %u: push of seq %" PRIu64 " returned %s", pr->id, it->seq,
		        st_rc(rc));
		free(it);
		return false;
	}
}

static void *producer_main(void *arg)
{
	producer *pr = arg;
	st_item *batch[MAX_BATCH];
	while (!atomic_load_explicit(&g.go, memory_order_acquire))
		sched_yield();
	uint64_t seq = 0, bid = 0;
	while (seq < g.cl.items) {
		if (g.cl.batch) {
			uint64_t k = 1 + st_below(&pr->rng, MAX_BATCH);
			if (k > g.cl.items - seq)
				k = g.cl.items - seq;
			for (uint64_t i = 0; i < k; i++)
				batch[i] =
				    st_item_new(pr->id, seq + i, bid, (uint16_t)i, (uint16_t)k);
			int rc = fo_stream_push_many(g.s, (void *const *)batch, (size_t)k);
			if (rc != FO_OK) {
				st_fail("producer %u: push_many(%" PRIu64 ") of seq %" PRIu64
				        " returned %s",
				        pr->id, k, seq, st_rc(rc));
				for (uint64_t i = 0; i < k; i++)
					free(batch[i]);
				break;
			}
			seq += k;
			bid++;
			pr->batches++;
		} else {
			if (!push_one(pr, st_item_new(pr->id, seq, seq, 0, 1)))
				break;
			seq++;
		}
		pr->pushed = seq;
		atomic_store_explicit(&pr->diag_pushed, seq, memory_order_relaxed);
		st_tick();
	}
	return NULL;
}

/* --------------------------------------------------------------------- cell */

static void make_cursor(fo_cursor **out, fo_cursor *from, unsigned flags, const char *what)
{
	int rc = from ? fo_cursor_fork(from, out, flags) : fo_stream_cursor(g.s, out, flags);
	if (rc != FO_OK || !*out)
		st_die("%s: %s returned %s", what, from ? "fo_cursor_fork" : "fo_stream_cursor",
		       st_rc(rc));
}

static double run_cell(const cell *cl, uint64_t seed, uint64_t cell_no)
{
	memset(&g, 0, sizeof g);
	g.cl = *cl;
	g.long_wait_ns = 30 * ST_NS_PER_S * st_time_factor();
	st_rng rng;
	st_rng_init(&rng, seed, 0xce11000 + cell_no);

	st_freectx_init(&g.fc, cl->np, cl->items);
	g.claimed = st_xcalloc(cl->np, sizeof(st_bitmap));
	for (uint32_t p = 0; p < cl->np; p++)
		st_bitmap_init(&g.claimed[p], cl->items);

	fo_stream_opts o;
	fo_stream_opts_init(&o);
	o.capacity = cl->bounded ? BOUNDED_CAPACITY : 0;
	o.passive_window = cl->small_window ? SMALL_PASSIVE_WINDOW : 0;
	o.item_free = st_item_free_cb;
	o.item_free_ctx = &g.fc;
	o.single_producer = cl->np == 1 && cell_no % 2 == 0;
	int rc = fo_stream_create(&g.s, &o);
	if (rc != FO_OK)
		st_die("fo_stream_create: %s", st_rc(rc));

	g.nrd = cl->na + cl->npas + cl->nsh;
	g.rd = st_xcalloc(g.nrd, sizeof(reader));
	uint32_t i = 0;
	for (uint32_t k = 0; k < cl->na; k++, i++) {
		reader *r = &g.rd[i];
		r->kind = R_ACTIVE;
		r->idx = (int)k;
		/* some actives are forks (O(1), same position: the start) */
		fo_cursor *from = (k > 0 && st_below(&rng, 2)) ? g.rd[st_below(&rng, k)].c : NULL;
		make_cursor(&r->c, from, FO_ACTIVE, "active cursor");
		snprintf(r->name, sizeof r->name, "active#%u%s", k, from ? "(fork)" : "");
	}
	for (uint32_t k = 0; k < cl->npas; k++, i++) {
		reader *r = &g.rd[i];
		r->kind = R_PASSIVE;
		r->idx = (int)k;
		fo_cursor *from = st_below(&rng, 2) ? g.rd[0].c : NULL;
		make_cursor(&r->c, from, FO_PASSIVE, "passive cursor");
		r->slow = (k == 1);
		snprintf(r->name, sizeof r->name, "passive#%u%s%s", k, from ? "(fork)" : "",
		         r->slow ? "(slow)" : "");
	}
	uint32_t first_member = i;
	for (uint32_t k = 0; k < cl->nsh; k++, i++) {
		reader *r = &g.rd[i];
		r->kind = R_SHARED;
		r->idx = (int)k;
		fo_cursor *from = k ? g.rd[first_member + st_below(&rng, k)].c : NULL;
		make_cursor(&r->c, from, FO_SHARED, "group member");
		snprintf(r->name, sizeof r->name, "member#%u", k);
	}
	for (i = 0; i < g.nrd; i++) {
		reader *r = &g.rd[i];
		r->last = st_xcalloc(cl->np, sizeof(int64_t));
		r->epoch_at = st_xcalloc(cl->np, sizeof(uint64_t));
		for (uint32_t p = 0; p < cl->np; p++)
			r->last[p] = -1;
		st_rng_init(&r->rng, seed, (cell_no << 16) + 100 + i);
	}
	atomic_store(&g.handles, (long)g.nrd + 1);

	g.pr = st_xcalloc(cl->np, sizeof(producer));
	for (uint32_t p = 0; p < cl->np; p++) {
		g.pr[p].id = p;
		st_rng_init(&g.pr[p].rng, seed, (cell_no << 16) + 10000 + p);
	}

	int64_t t0 = st_now_ns();
	for (i = 0; i < g.nrd; i++)
		st_thread_start(&g.rd[i].th, reader_main, &g.rd[i]);
	for (uint32_t p = 0; p < cl->np; p++)
		st_thread_start(&g.pr[p].th, producer_main, &g.pr[p]);
	atomic_store_explicit(&g.go, true, memory_order_release);

	for (uint32_t p = 0; p < cl->np; p++)
		st_thread_join(g.pr[p].th);
	uint64_t total = 0;
	for (uint32_t p = 0; p < cl->np; p++)
		total += g.pr[p].pushed;
	g.total_pushed = total;
	if (total != (uint64_t)cl->np * cl->items)
		st_fail("producers pushed %" PRIu64 " of %" PRIu64 " items", total,
		        (uint64_t)cl->np * cl->items);

	fo_stream_stats st;
	rc = fo_stream_get_stats(g.s, &st);
	if (rc != FO_OK)
		st_fail("fo_stream_get_stats: %s", st_rc(rc));
	else if (st.pushed != total)
		st_fail("fo_stream_stats.pushed = %" PRIu64 ", producers pushed %" PRIu64,
		        st.pushed, total);

	atomic_store_explicit(&g.closed, true, memory_order_release);
	rc = fo_stream_close(g.s);
	if (rc != FO_OK)
		st_fail("fo_stream_close: %s", st_rc(rc));
	if (fo_stream_close(g.s) != FO_OK)
		st_fail("second fo_stream_close not FO_OK (not idempotent)");
	if (!fo_stream_is_closed(g.s))
		st_fail("fo_stream_is_closed false after close");
	{
		st_item *late = st_item_new(0, cl->items, 0, 0, 1);
		rc = fo_stream_push(g.s, late);
		if (rc != FO_ECLOSED)
			st_fail("push after close returned %s, expected FO_ECLOSED", st_rc(rc));
		if (rc != FO_OK)
			free(late);
	}

	fo_stream *s = g.s;
	if (cl->early_destroy) {
		g.s = NULL;
		fo_stream_destroy(s);
		release_handle("fo_stream_destroy (early)");
	}
	for (i = 0; i < g.nrd; i++)
		st_thread_join(g.rd[i].th);
	if (!cl->early_destroy) {
		rc = fo_stream_get_stats(s, &st);
		if (rc == FO_OK && st.cursors != 0)
			st_fail("fo_stream_stats.cursors = %zu after every cursor closed",
			        st.cursors);
		if (st_freed_total(&g.fc) > total)
			st_fail("item_free ran %" PRIu64 " times for %" PRIu64 " items",
			        st_freed_total(&g.fc), total);
		g.s = NULL;
		fo_stream_destroy(s);
		release_handle("fo_stream_destroy (after readers)");
	}
	g.s = NULL;
	double secs = (double)(st_now_ns() - t0) / 1e9;

	/* reconcile */
	if (!atomic_load(&g.last_handle_checked))
		st_fail("handle count never reached zero");
	for (uint32_t p = 0; p < cl->np; p++) {
		uint64_t f = st_freed_of(&g.fc, p);
		if (f != g.pr[p].pushed)
			st_fail("producer %u: item_free ran %" PRIu64 " times, pushed %" PRIu64, p,
			        f, g.pr[p].pushed);
		uint64_t miss = st_bitmap_first_clear(&g.fc.bits[p], 0, g.pr[p].pushed);
		if (miss != g.pr[p].pushed)
			st_fail("producer %u: item seq %" PRIu64 " never freed", p, miss);
		if (cl->nsh) {
			uint64_t hole = st_bitmap_first_clear(&g.claimed[p], 0, cl->items);
			if (hole != cl->items)
				st_fail("share group: producer %u seq %" PRIu64
				        " went to no member (%" PRIu64 " of %" PRIu64 " claimed)",
				        p, hole, st_bitmap_count(&g.claimed[p], 0, cl->items),
				        cl->items);
		}
	}
	uint64_t lag_rc = 0, lagged = 0, member_min = UINT64_MAX, member_max = 0;
	for (i = 0; i < g.nrd; i++) {
		reader *r = &g.rd[i];
		if (!r->ended)
			st_fail("%s never got FO_END", r->name);
		if (r->kind == R_PASSIVE) {
			lag_rc += r->lag_epoch;
			lagged += r->lagged_total;
		}
		if (r->kind == R_SHARED) {
			member_min = r->got < member_min ? r->got : member_min;
			member_max = r->got > member_max ? r->got : member_max;
		}
	}
	uint64_t full = 0, tmo = 0;
	for (uint32_t p = 0; p < cl->np; p++) {
		full += g.pr[p].full_seen;
		tmo += g.pr[p].timedout_seen;
	}
	st_log("  %-34s %8.2f s  %6.2f Mitems/s  full=%" PRIu64 " tmo=%" PRIu64
	       " lagged(rc/items)=%" PRIu64 "/%" PRIu64 " member got min/max=%" PRIu64 "/%" PRIu64
	       "\n",
	       st_context, secs, (double)total / secs / 1e6, full, tmo, lag_rc, lagged,
	       member_min == UINT64_MAX ? 0 : member_min, member_max);

	for (i = 0; i < g.nrd; i++) {
		free(g.rd[i].last);
		free(g.rd[i].epoch_at);
	}
	free(g.rd);
	free(g.pr);
	for (uint32_t p = 0; p < cl->np; p++)
		st_bitmap_fini(&g.claimed[p]);
	free(g.claimed);
	st_freectx_fini(&g.fc);
	g.rd = NULL;
	g.pr = NULL;
	g.nrd = 0;
	return secs;
}

/* --------------------------------------------------------------------- main */

int main(int argc, char **argv)
{
	static const uint32_t P[] = {1, 2, 4, 8}, A[] = {1, 3, 8}, PAS[] = {0, 2}, SH[] = {2, 4};
	st_args args;
	st_parse_args(argc, argv, &args, " [--only P,A,PAS,SH]");
	enum st_build b = st_build_kind();
	uint64_t headline = st_scale(HEADLINE_ITEMS, 1000), normal = st_scale(CELL_ITEMS, 1000);
	if (args.quick)
		headline = normal = 2000;
	if (args.have_items)
		headline = normal = args.items;
	unsigned op = 0, oa = 0, opas = 0, osh = 0;
	bool only = false;
	if (args.only) {
		if (sscanf(args.only, "%u,%u,%u,%u", &op, &oa, &opas, &osh) != 4) {
			fprintf(stderr, "--only wants P,A,PAS,SH (e.g. 4,8,2,4)\n");
			return 2;
		}
		only = true;
	}

	printf("stress_oracle: seed=%" PRIu64 " build=%s (replay: --seed %" PRIu64 ")\n", args.seed,
	       st_build_name(b), args.seed);
	printf("matrix: producers {1,2,4,8} x active {1,3,8} x passive {0,2} x shared {2,4}%s\n",
	       only ? " (filtered by --only)" : "");
	printf("items per producer: headline cells (1p,3a,2pas,2sh) and (4p,8a,2pas,4sh): %" PRIu64
	       ", other cells: %" PRIu64 "\n",
	       headline, normal);
	fflush(stdout);

	st_watchdog_start(60 * ST_NS_PER_S * st_time_factor(), dump_state);
	st_rng rng;
	st_rng_init(&rng, args.seed, 42);
	int64_t t0 = st_now_ns();
	uint64_t cell_no = 0, cells = 0, items_total = 0;
	for (unsigned pi = 0; pi < 4; pi++)
		for (unsigned ai = 0; ai < 3; ai++)
			for (unsigned pasi = 0; pasi < 2; pasi++)
				for (unsigned si = 0; si < 2; si++, cell_no++) {
					cell cl = {0};
					cl.np = P[pi];
					cl.na = A[ai];
					cl.npas = PAS[pasi];
					cl.nsh = SH[si];
					cl.bounded = ((pi + pasi + si) & 1) == 0;
					cl.batch = ((ai + pasi + si) & 1) == 0;
					cl.small_window = ((pi + ai) & 1) == 1;
					cl.early_destroy = st_below(&rng, 2);
					cl.headline = (cl.np == 1 && cl.na == 3 && cl.npas == 2 &&
					               cl.nsh == 2) ||
					              (cl.np == 4 && cl.na == 8 && cl.npas == 2 &&
					               cl.nsh == 4);
					cl.items = cl.headline ? headline : normal;
					if (only && (cl.np != op || cl.na != oa ||
					             cl.npas != opas || cl.nsh != osh))
						continue;
					st_set_context("cell %2" PRIu64
					               " %up x %ua x %upas x %ush %s%s%s",
					               cell_no, cl.np, cl.na, cl.npas, cl.nsh,
					               cl.bounded ? "cap1024" : "unbnd",
					               cl.batch ? " batch" : "",
					               cl.small_window ? " pwin256" : "");
					run_cell(&cl, args.seed, cell_no);
					cells++;
					items_total += (uint64_t)cl.np * cl.items;
					if (st_failure_count()) {
						fprintf(stderr,
						        "stress_oracle: FAILED in %s (seed %" PRIu64
						        ", items/producer %" PRIu64
						        "; replay: --seed %" PRIu64
						        " --only %u,%u,%u,%u --items %" PRIu64
						        ")\n",
						        st_context, args.seed, cl.items, args.seed,
						        cl.np, cl.na, cl.npas, cl.nsh, cl.items);
						st_watchdog_end();
						return 1;
					}
				}
	st_watchdog_end();
	printf("stress_oracle: OK: %" PRIu64 " cells, %" PRIu64 " items, %.1f s, seed %" PRIu64
	       "\n",
	       cells, items_total, (double)(st_now_ns() - t0) / 1e9, args.seed);
	return 0;
}
