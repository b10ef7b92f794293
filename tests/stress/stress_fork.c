/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/**
 * stress_fork.c - fork-suffix and close-race oracles (TESTING.md section 2).
 *
 * Part "fork": 2 producers push seqs 0..N-1 while reader threads read and, at
 * random points, fork their cursor (active / passive / shared) and hand the
 * fork to a new thread with the last seq per producer the parent returned.
 * At most 8 reader threads live at once.  Checks:
 *   active fork of an active cursor  per producer: first seq = parent's last+1,
 *                                    then contiguous to N-1, then FO_END;
 *   passive fork                     seqs increase, first > parent's last,
 *                                    gaps only after FO_LAGGED; of an active
 *                                    parent: returned + lagged == its suffix;
 *   shared fork                      the parent and every member of its group
 *                                    together return each item from the fork
 *                                    point exactly once (atomic bitmap);
 *   fork of a group member / of a    first seq > parent's last (and >= the
 *   passive cursor (start not exact) group's start), then contiguous (active);
 *   SHARED fork of a passive cursor  FO_EINVAL;
 *   fork of a drained cursor         its first read is FO_END;
 *   destructors                      run once per item, all of them by the
 *                                    time the last handle is dropped.
 *
 * Part "close": producers push (single / try / timed / push_many) while a
 * thread calls fo_stream_close at a random moment.  Every push that returned
 * FO_OK reaches every active cursor (and exactly one group member) before
 * FO_END; every push that returned FO_ECLOSED is never delivered and never
 * freed by the stream (the producer frees it, after the check); once a push
 * saw FO_ECLOSED every later one does too.
 *
 * Usage: stress_fork [--seed N] [--items N] [--quick] [--only fork|close]
 *   --items: items per producer per fork round / max per producer per close round.
 */
#include "../common/stress_common.h"

#define NPROD     2
#define MAX_LIVE  8
#define MAX_TASKS 96
#define MAX_BATCH 64u

enum { T_ACTIVE, T_PASSIVE, T_MEMBER };
static const char *const tkind[] = {"active", "passive", "member"};

typedef struct group {
	int id;
	int64_t start[NPROD]; /* first seq per producer that belongs to the group */
	bool known[NPROD];    /* false: start[p] is only a lower bound */
	st_bitmap claimed[NPROD];
} group;

typedef struct task {
	int id, parent_id, depth;
	int kind;
	int parent_kind;   /* -1 for a root */
	bool known[NPROD]; /* the next item of producer p must be last[p] + 1 (for a
	                    * passive cursor: unless FO_LAGGED came in between);
	                    * false: only a lower bound is known (last[p] < it) */
	bool check_total;  /* passive: returned + lagged == suffix */
	char name[96];
	fo_cursor *c;
	int64_t start_last[NPROD];
	int64_t last[NPROD];
	int64_t first[NPROD];
	uint64_t epoch_at[NPROD], lag_epoch;
	uint64_t got, forks;
	uint64_t quota; /* > 0: close after this many items (no END check) */
	bool quit_early;
	group *grp;
	st_rng rng;
	pthread_t th;
	_Atomic uint64_t diag_got;
	_Atomic bool done;
	bool dummy; /* a failed fork's placeholder: no thread (set before publishing) */
} task;

static struct {
	/* round configuration */
	uint64_t n; /* items per producer */
	size_t capacity;
	bool batch;
	fo_stream *s;
	st_freectx fc;
	_Atomic bool go, closed;
	_Atomic long handles;
	_Atomic bool last_handle_checked;
	uint64_t total_pushed;
	_Atomic uint64_t pushed_diag[NPROD];
	int64_t long_wait_ns;
	uint64_t fork_every; /* mean items between fork attempts */
	/* tasks */
	_Atomic(task *) tasks[MAX_TASKS];
	_Atomic int ntasks;
	_Atomic int live;
	group *groups[MAX_TASKS];
	_Atomic int ngroups;
	uint64_t seed;
	_Atomic uint64_t einval_checks, drained_checks;
} g;

static void dump_fork(void)
{
	fprintf(stderr, "  fork round: n=%" PRIu64 " capacity=%zu batch=%d closed=%d live=%d\n",
	        g.n, g.capacity, (int)g.batch, (int)atomic_load(&g.closed), atomic_load(&g.live));
	for (int p = 0; p < NPROD; p++)
		fprintf(stderr, "  producer %d pushed %" PRIu64 "\n", p,
		        atomic_load(&g.pushed_diag[p]));
	int nt = atomic_load(&g.ntasks);
	for (int i = 0; i < nt && i < MAX_TASKS; i++) {
		task *t = atomic_load(&g.tasks[i]);
		if (t)
			fprintf(stderr, "  %s: got %" PRIu64 "%s\n", t->name,
			        atomic_load(&t->diag_got), atomic_load(&t->done) ? " (done)" : "");
	}
}

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

/* -------------------------------------------------------------- fork part */

static void *task_main(void *arg);

static group *group_new(const int64_t *last, const bool *known)
{
	group *gr = st_xcalloc(1, sizeof *gr);
	for (int p = 0; p < NPROD; p++) {
		gr->start[p] = last[p] + 1;
		gr->known[p] = known[p];
		st_bitmap_init(&gr->claimed[p], g.n);
	}
	int i = atomic_fetch_add(&g.ngroups, 1);
	gr->id = i;
	g.groups[i] = gr; /* i < MAX_TASKS: at most one group per task */
	return gr;
}

/* Start a thread for a fork of @t (flags), if the live/total bounds allow. */
static void maybe_fork(task *t)
{
	unsigned flags;
	uint64_t m = st_below(&t->rng, 100);
	if (t->kind == T_PASSIVE) {
		if (m < 10) {
			/* a SHARED fork of a passive cursor is refused */
			fo_cursor *bad = NULL;
			int rc = fo_cursor_fork(t->c, &bad, FO_SHARED);
			if (rc != FO_EINVAL) {
				st_fail("%s: SHARED fork of a passive cursor returned %s, expected "
				        "FO_EINVAL",
				        t->name, st_rc(rc));
				if (rc == FO_OK)
					fo_cursor_close(bad);
			}
			atomic_fetch_add(&g.einval_checks, 1);
			return;
		}
		flags = m < 55 ? FO_ACTIVE : FO_PASSIVE;
	} else {
		flags = m < 40 ? FO_ACTIVE : m < 70 ? FO_PASSIVE : FO_SHARED;
	}

	/* bounds: reserve a live slot and a task index */
	int live = atomic_load(&g.live);
	do {
		if (live >= MAX_LIVE)
			return;
	} while (!atomic_compare_exchange_weak(&g.live, &live, live + 1));
	int idx = atomic_load(&g.ntasks);
	do {
		if (idx >= MAX_TASKS) {
			atomic_fetch_sub(&g.live, 1);
			return;
		}
	} while (!atomic_compare_exchange_weak(&g.ntasks, &idx, idx + 1));

	task *f = st_xcalloc(1, sizeof *f);
	f->id = idx;
	f->parent_id = t->id;
	f->depth = t->depth + 1;
	f->parent_kind = t->kind;
	st_rng_init(&f->rng, g.seed, 0xf0000 + (uint64_t)idx * 7919 + st_rand(&t->rng));
	atomic_fetch_add(&g.handles, 1); /* before the fork exists: t keeps it >= 1 */
	int rc = fo_cursor_fork(t->c, &f->c, flags);
	if (rc != FO_OK) {
		st_fail("%s: fo_cursor_fork(%u) returned %s", t->name, flags, st_rc(rc));
		atomic_fetch_sub(&g.handles, 1);
		/* keep the index slot: publish a finished dummy task */
		atomic_store(&f->done, true);
		f->th = pthread_self();
		f->c = NULL;
		atomic_fetch_sub(&g.live, 1);
		snprintf(f->name, sizeof f->name, "failed-fork#%d", idx);
		f->kind = -1;
		f->dummy = true;
		atomic_store_explicit(&g.tasks[idx], f, memory_order_release);
		return;
	}
	t->forks++;
	for (int p = 0; p < NPROD; p++) {
		f->start_last[p] = t->last[p];
		f->last[p] = t->last[p];
		f->first[p] = -1;
	}
	if (flags == FO_SHARED) {
		if (t->kind == T_ACTIVE) {
			/* the parent and the fork form a new group from here */
			t->grp = group_new(t->last, t->known);
			t->kind = T_MEMBER;
			snprintf(t->name + strlen(t->name), sizeof t->name - strlen(t->name),
			         "->member(g%d)", t->grp->id);
		}
		f->kind = T_MEMBER;
		f->grp = t->grp;
	} else if (flags == FO_ACTIVE) {
		f->kind = T_ACTIVE;
		/* exact from an active parent (where it knows its own place); an
		 * active fork of a (maybe lapped) passive cursor starts at the
		 * oldest retained item, of a member at the group's next unclaimed
		 * item: both only after the parent's last */
		for (int p = 0; p < NPROD; p++)
			f->known[p] = t->kind == T_ACTIVE && t->known[p];
	} else {
		f->kind = T_PASSIVE;
		/* from an active parent the start is exact; from a passive one a
		 * pending lap must still be reported with FO_LAGGED; from a group
		 * member the start is the group's next unclaimed item */
		for (int p = 0; p < NPROD; p++)
			f->known[p] = t->kind != T_MEMBER && t->known[p] &&
			              /* a passive parent that got FO_LAGGED since its last
			               * item of p has already jumped ahead */
			              (t->kind != T_PASSIVE || t->epoch_at[p] == t->lag_epoch);
		f->check_total = t->kind == T_ACTIVE && t->known[0] && t->known[1];
	}
	/* non-root active/passive forks may stop early (closing mid-stream) so
	 * that forks keep happening all along; group members read to the end */
	if (f->kind != T_MEMBER && st_below(&f->rng, 2))
		f->quota = 1 + st_below(&f->rng, 2 * g.fork_every);
	snprintf(f->name, sizeof f->name, "%s#%d(fork of #%d %s at %" PRId64 "/%" PRId64 ")",
	         tkind[f->kind], idx, t->id, tkind[t->kind], t->last[0], t->last[1]);
	if (f->grp)
		snprintf(f->name + strlen(f->name), sizeof f->name - strlen(f->name), "(g%d)",
		         f->grp->id);
	st_thread_start(&f->th, task_main, f);
	atomic_store_explicit(&g.tasks[idx], f, memory_order_release);
}

static void task_item(task *t, const st_item *it)
{
	uint32_t p = it->producer;
	int64_t seq = (int64_t)it->seq;
	if (it->seq >= g.n) {
		st_fail("%s: seq %" PRId64 " out of range", t->name, seq);
		return;
	}
	t->got++;
	bool first = t->first[p] < 0;
	if (first)
		t->first[p] = seq;
	switch (t->kind) {
	case T_ACTIVE:
		if (!t->known[p]) {
			if (seq <= t->last[p])
				st_fail("%s: producer %u: first seq %" PRId64
				        " not after the parent's last %" PRId64,
				        t->name, p, seq, t->last[p]);
		} else if (seq != t->last[p] + 1) {
			st_fail("%s: producer %u: expected seq %" PRId64 ", got %" PRId64 " (%s)",
			        t->name, p, t->last[p] + 1, seq,
			        first ? "fork does not start right after its parent's last item"
			        : seq <= t->last[p] ? "duplicate or reordered"
			                            : "items lost");
		}
		break;
	case T_PASSIVE:
		if (seq <= t->last[p])
			st_fail("%s: producer %u: seq %" PRId64 " after %" PRId64
			        " (not increasing / before the fork point)",
			        t->name, p, seq, t->last[p]);
		else if (seq != t->last[p] + 1 && t->known[p] && t->epoch_at[p] == t->lag_epoch)
			st_fail("%s: producer %u: skipped from %" PRId64 " to %" PRId64
			        " without FO_LAGGED",
			        t->name, p, t->last[p], seq);
		t->epoch_at[p] = t->lag_epoch;
		break;
	default: /* member */
		if (seq <= t->last[p])
			st_fail("%s: producer %u: seq %" PRId64 " after %" PRId64
			        " (not increasing)",
			        t->name, p, seq, t->last[p]);
		if (seq < t->grp->start[p])
			st_fail("%s: producer %u: seq %" PRId64
			        " is before group %d's fork point %" PRId64,
			        t->name, p, seq, t->grp->id, t->grp->start[p]);
		else if (st_bitmap_set(&t->grp->claimed[p], (uint64_t)seq))
			st_fail("%s: producer %u seq %" PRId64
			        " returned to two members of group %d",
			        t->name, p, seq, t->grp->id);
		break;
	}
	t->last[p] = seq;
	t->known[p] = true;
}

static void task_end(task *t)
{
	if (!atomic_load(&g.closed))
		st_fail("%s: FO_END before the stream was closed", t->name);
	void *x = NULL;
	int rc = fo_cursor_try_next(t->c, &x);
	if (rc != FO_END)
		st_fail("%s: FO_END not sticky (then %s)", t->name, st_rc(rc));
	if (!fo_cursor_is_drained(t->c))
		st_fail("%s: is_drained false after FO_END", t->name);
	int64_t lastseq = (int64_t)g.n - 1;
	if (t->kind == T_ACTIVE) {
		for (int p = 0; p < NPROD; p++) {
			if (t->first[p] < 0 && t->start_last[p] < lastseq && t->known[p])
				st_fail("%s: producer %d: got none of seqs %" PRId64 "..%" PRId64,
				        t->name, p, t->start_last[p] + 1, lastseq);
			else if (t->first[p] >= 0 && t->last[p] != lastseq)
				st_fail("%s: producer %d: FO_END after seq %" PRId64
				        ", expected %" PRId64,
				        t->name, p, t->last[p], lastseq);
		}
	}
	if (t->kind == T_PASSIVE && t->check_total) {
		uint64_t suffix = 0;
		for (int p = 0; p < NPROD; p++)
			suffix += (uint64_t)(lastseq - t->start_last[p]);
		uint64_t lag = fo_cursor_lagged(t->c);
		if (t->got + lag != suffix)
			st_fail("%s: returned %" PRIu64 " + lagged %" PRIu64 " != %" PRIu64
			        " items after the fork point",
			        t->name, t->got, lag, suffix);
	}
	/* a fork of a drained cursor is drained at once */
	if (st_below(&t->rng, 2) == 0) {
		fo_cursor *d = NULL;
		unsigned fl = t->kind == T_PASSIVE                  ? FO_PASSIVE
		              : (unsigned)st_below(&t->rng, 3) == 0 ? FO_SHARED
		                                                    : FO_ACTIVE;
		rc = fo_cursor_fork(t->c, &d, fl);
		if (rc != FO_OK) {
			st_fail("%s: fork of a drained cursor returned %s", t->name, st_rc(rc));
		} else {
			rc = fo_cursor_try_next(d, &x);
			if (rc != FO_END)
				st_fail("%s: fork (flags %u) of a drained cursor: first read %s, "
				        "expected FO_END",
				        t->name, fl, st_rc(rc));
			fo_cursor_close(d);
			atomic_fetch_add(&g.drained_checks, 1);
		}
	}
}

static void *task_main(void *arg)
{
	task *t = arg;
	void *items[MAX_BATCH];
	bool must_block = false;
	unsigned bad = 0;
	while (!atomic_load_explicit(&g.go, memory_order_acquire))
		sched_yield();
	for (;;) {
		size_t n;
		bool lw;
		bool closed = atomic_load_explicit(&g.closed, memory_order_acquire);
		int rc = st_read_some(t->c, &t->rng, items, MAX_BATCH, &n, &must_block, closed,
		                      g.long_wait_ns, &lw);
		if (rc == FO_OK) {
			for (size_t i = 0; i < n; i++)
				if (st_item_check(items[i], NPROD, t->name))
					task_item(t, items[i]);
			atomic_store_explicit(&t->diag_got, t->got, memory_order_relaxed);
			st_tick();
			/* fork at a random point (items are checked: forking ends their
			 * validity guarantee) */
			if (st_below(&t->rng, g.fork_every) < n)
				maybe_fork(t);
			if (t->quota && t->got >= t->quota) {
				t->quit_early = true;
				break;
			}
		} else if (rc == FO_END) {
			task_end(t);
			break;
		} else if (rc == FO_LAGGED) {
			if (t->kind != T_PASSIVE)
				st_fail("%s: FO_LAGGED on a %s cursor", t->name, tkind[t->kind]);
			t->lag_epoch++;
		} else if (rc == FO_EMPTY || rc == FO_TIMEDOUT) {
			if (lw) {
				st_fail("%s: %s for %.0f s (got %" PRIu64 ")", t->name,
				        atomic_load(&g.closed) ? "no FO_END after close"
				                               : "no item",
				        (double)g.long_wait_ns / 1e9, t->got);
				if (++bad > 2)
					break;
			}
		} else {
			st_fail("%s: unexpected status %s", t->name, st_rc(rc));
			if (++bad > 2)
				break;
		}
	}
	fo_cursor_close(t->c);
	t->c = NULL;
	atomic_store(&t->done, true);
	atomic_fetch_sub(&g.live, 1);
	release_handle(t->name);
	st_tick();
	return NULL;
}

typedef struct fprod {
	uint32_t id;
	st_rng rng;
	uint64_t pushed;
	pthread_t th;
} fprod;

static void *fork_producer(void *arg)
{
	fprod *pr = arg;
	st_item *b[MAX_BATCH];
	while (!atomic_load_explicit(&g.go, memory_order_acquire))
		sched_yield();
	uint64_t seq = 0, bid = 0;
	while (seq < g.n) {
		uint64_t k = g.batch ? 1 + st_below(&pr->rng, MAX_BATCH) : 1;
		if (k > g.n - seq)
			k = g.n - seq;
		for (uint64_t i = 0; i < k; i++)
			b[i] = st_item_new(pr->id, seq + i, g.batch ? bid : seq + i, (uint16_t)i,
			                   (uint16_t)k);
		int rc = k > 1 || st_below(&pr->rng, 2)
		             ? fo_stream_push_many(g.s, (void *const *)b, k)
		             : fo_stream_push(g.s, b[0]);
		if (rc != FO_OK) {
			st_fail("fork producer %u: push at seq %" PRIu64 ": %s", pr->id, seq,
			        st_rc(rc));
			for (uint64_t i = 0; i < k; i++)
				free(b[i]);
			break;
		}
		seq += k;
		bid++;
		pr->pushed = seq;
		atomic_store_explicit(&g.pushed_diag[pr->id], seq, memory_order_relaxed);
		st_tick();
		/* let readers run between bursts so forks happen all along */
		if (st_below(&pr->rng, 512) == 0)
			sched_yield();
	}
	return NULL;
}

static task *root_task(int idx, unsigned flags)
{
	task *t = st_xcalloc(1, sizeof *t);
	t->id = idx;
	t->parent_id = -1;
	t->parent_kind = -1;
	t->kind = flags == FO_PASSIVE ? T_PASSIVE : T_ACTIVE;
	t->known[0] = t->known[1] = true;
	t->check_total = true;
	for (int p = 0; p < NPROD; p++) {
		t->start_last[p] = -1;
		t->last[p] = -1;
		t->first[p] = -1;
	}
	st_rng_init(&t->rng, g.seed, 0xa0000 + (uint64_t)idx);
	int rc = fo_stream_cursor(g.s, &t->c, flags);
	if (rc != FO_OK)
		st_die("fo_stream_cursor: %s", st_rc(rc));
	snprintf(t->name, sizeof t->name, "root-%s#%d", tkind[t->kind], idx);
	return t;
}

static void fork_round(int round, uint64_t n, size_t capacity, bool batch, size_t pwin)
{
	/* reset everything but the seed */
	uint64_t seed = g.seed;
	memset(&g, 0, sizeof g);
	g.seed = seed;
	g.n = n;
	g.capacity = capacity;
	g.batch = batch;
	g.long_wait_ns = 30 * ST_NS_PER_S * st_time_factor();
	g.fork_every = n / 12 > 4 ? n / 12 : 4;
	st_set_context("fork round %d: n=%" PRIu64 " cap=%zu %s pwin=%zu", round, n, capacity,
	               batch ? "push_many" : "push", pwin);
	st_freectx_init(&g.fc, NPROD, n);
	fo_stream_opts o;
	fo_stream_opts_init(&o);
	o.capacity = capacity;
	o.passive_window = pwin;
	o.item_free = st_item_free_cb;
	o.item_free_ctx = &g.fc;
	int rc = fo_stream_create(&g.s, &o);
	if (rc != FO_OK)
		st_die("fo_stream_create: %s", st_rc(rc));

	/* two roots: an active and a passive cursor opened before any push */
	task *roots[2] = {root_task(0, FO_ACTIVE), root_task(1, FO_PASSIVE)};
	atomic_store(&g.handles, 1 + 2);
	atomic_store(&g.ntasks, 2);
	atomic_store(&g.live, 2);
	for (int i = 0; i < 2; i++) {
		st_thread_start(&roots[i]->th, task_main, roots[i]);
		atomic_store(&g.tasks[i], roots[i]);
	}
	fprod pr[NPROD];
	memset(pr, 0, sizeof pr);
	for (int p = 0; p < NPROD; p++) {
		pr[p].id = (uint32_t)p;
		st_rng_init(&pr[p].rng, seed, 0xb0000 + (uint64_t)round * 16 + (uint64_t)p);
		st_thread_start(&pr[p].th, fork_producer, &pr[p]);
	}
	int64_t t0 = st_now_ns();
	atomic_store_explicit(&g.go, true, memory_order_release);
	for (int p = 0; p < NPROD; p++)
		st_thread_join(pr[p].th);
	g.total_pushed = pr[0].pushed + pr[1].pushed;
	atomic_store_explicit(&g.closed, true, memory_order_release);
	fo_stream_close(g.s);
	fo_stream *s = g.s;
	bool early = round & 1;
	if (early) {
		g.s = NULL;
		fo_stream_destroy(s);
		release_handle("fo_stream_destroy (early)");
	}
	/* join every task; a task's forks have higher indices than the task */
	for (int i = 0; i < atomic_load(&g.ntasks); i++) {
		task *t;
		while (!(t = atomic_load_explicit(&g.tasks[i], memory_order_acquire)))
			sched_yield();
		/* not t->kind: a task changes it when it becomes a group member */
		if (!t->dummy)
			st_thread_join(t->th);
	}
	if (!early) {
		g.s = NULL;
		fo_stream_destroy(s);
		release_handle("fo_stream_destroy (after readers)");
	}
	double secs = (double)(st_now_ns() - t0) / 1e9;

	if (!atomic_load(&g.last_handle_checked))
		st_fail("handle count never reached zero");
	for (int p = 0; p < NPROD; p++) {
		if (pr[p].pushed != n)
			st_fail("producer %d pushed %" PRIu64 " of %" PRIu64, p, pr[p].pushed, n);
		if (st_freed_of(&g.fc, (uint32_t)p) != pr[p].pushed)
			st_fail("producer %d: item_free ran %" PRIu64 " times for %" PRIu64
			        " items",
			        p, st_freed_of(&g.fc, (uint32_t)p), pr[p].pushed);
	}
	int ng = atomic_load(&g.ngroups);
	for (int i = 0; i < ng; i++) {
		group *gr = g.groups[i];
		for (int p = 0; p < NPROD; p++) {
			uint64_t lo = (uint64_t)gr->start[p];
			/* start only a lower bound: the group's real start is its first claim */
			while (!gr->known[p] && lo < n && !st_bitmap_get(&gr->claimed[p], lo))
				lo++;
			uint64_t hole = st_bitmap_first_clear(&gr->claimed[p], lo, n);
			if (hole != n)
				st_fail("group %d: producer %d seq %" PRIu64
				        " (after the fork point %" PRIu64 ") went to no member",
				        gr->id, p, hole, lo);
			st_bitmap_fini(&gr->claimed[p]);
		}
		free(gr);
	}
	int nt = atomic_load(&g.ntasks);
	int kinds[3] = {0, 0, 0}, quit = 0;
	uint64_t lagged = 0;
	for (int i = 0; i < nt; i++) {
		task *t = atomic_load(&g.tasks[i]);
		if (t->kind >= 0)
			kinds[t->kind]++;
		if (t->kind == T_PASSIVE)
			lagged += t->lag_epoch;
		quit += t->quit_early;
		free(t);
	}
	st_freectx_fini(&g.fc);
	st_log("  %-48s %6.2f s  tasks=%d (active %d, passive %d, member %d; %d closed early) "
	       "groups=%d lagged=%" PRIu64 " drained-forks=%" PRIu64 " einval=%" PRIu64 "\n",
	       st_context, secs, nt, kinds[0], kinds[1], kinds[2], quit, ng, lagged,
	       atomic_load(&g.drained_checks), atomic_load(&g.einval_checks));
}

/* ------------------------------------------------------------- close part */

typedef struct cprod {
	uint32_t id;
	st_rng rng;
	uint64_t max;      /* items it tries to push */
	uint64_t accepted; /* seqs 0..accepted-1 were accepted */
	st_item **rejected;
	uint64_t nrejected;
	bool saw_closed;
	pthread_t th;
} cprod;

typedef struct creader {
	int kind;
	char name[32];
	fo_cursor *c;
	st_rng rng;
	int64_t last[8];
	uint64_t got, lag_epoch, epoch_at[8];
	bool ended;
	pthread_t th;
} creader;

#define C_NPROD 3

static struct {
	fo_stream *s;
	st_freectx fc;
	size_t capacity;
	st_bitmap claimed[C_NPROD];
	uint64_t space;
	_Atomic bool go, closed;
	int64_t long_wait_ns;
	int64_t close_delay_ns;
	cprod pr[C_NPROD];
} cg;

static struct {
	uint64_t rounds, rounds_with_refusal, accepted, refused;
} close_stats;

static void *close_producer(void *arg)
{
	cprod *pr = arg;
	st_item *b[MAX_BATCH];
	while (!atomic_load_explicit(&cg.go, memory_order_acquire))
		sched_yield();
	uint64_t seq = 0, bid = 0;
	while (seq < pr->max) {
		uint64_t m = st_below(&pr->rng, 100);
		uint64_t k = 1;
		if (m < 30) {
			k = 1 + st_below(&pr->rng, MAX_BATCH);
			if (cg.capacity && k > cg.capacity)
				k = cg.capacity;
			if (k > pr->max - seq)
				k = pr->max - seq;
		}
		for (uint64_t i = 0; i < k; i++)
			b[i] = st_item_new(pr->id, seq + i, m < 30 ? bid : seq + i, (uint16_t)i,
			                   (uint16_t)k);
		int rc;
		for (;;) {
			if (m < 30)
				rc = fo_stream_push_many(cg.s, (void *const *)b, k);
			else if (m < 60)
				rc = fo_stream_push(cg.s, b[0]);
			else if (m < 80)
				rc = fo_stream_try_push(cg.s, b[0]);
			else
				rc = fo_stream_timed_push(cg.s, b[0],
				                          (int64_t)st_below(&pr->rng, 100000));
			if (rc == FO_FULL || rc == FO_TIMEDOUT) {
				if (!cg.capacity)
					st_fail("close producer %u: %s on an unbounded stream",
					        pr->id, st_rc(rc));
				sched_yield();
				continue;
			}
			break;
		}
		if (rc == FO_OK) {
			if (pr->saw_closed)
				st_fail("close producer %u: push of seq %" PRIu64
				        " accepted after an earlier FO_ECLOSED",
				        pr->id, seq);
			seq += k;
			bid++;
			pr->accepted = seq;
			st_tick();
			continue;
		}
		if (rc != FO_ECLOSED) {
			st_fail("close producer %u: push returned %s", pr->id, st_rc(rc));
			for (uint64_t i = 0; i < k; i++)
				free(b[i]);
			break;
		}
		/* refused: keep the items (freed by main after checking the stream
		 * never freed nor delivered them) */
		for (uint64_t i = 0; i < k; i++)
			pr->rejected[pr->nrejected++] = b[i];
		if (!atomic_load(&cg.closed))
			st_fail("close producer %u: FO_ECLOSED before fo_stream_close was called",
			        pr->id);
		if (pr->saw_closed)
			break; /* the second refusal: ECLOSED is sticky */
		pr->saw_closed = true;
		seq += k; /* try one more (it must be refused too) */
		if (seq >= pr->max)
			break;
	}
	return NULL;
}

static void *close_closer(void *arg)
{
	(void)arg;
	while (!atomic_load_explicit(&cg.go, memory_order_acquire))
		sched_yield();
	if (cg.close_delay_ns)
		st_sleep_ns(cg.close_delay_ns);
	atomic_store_explicit(&cg.closed, true, memory_order_release);
	int rc = fo_stream_close(cg.s);
	if (rc != FO_OK)
		st_fail("fo_stream_close: %s", st_rc(rc));
	st_tick();
	return NULL;
}

static void *close_reader(void *arg)
{
	creader *r = arg;
	void *items[MAX_BATCH];
	bool must_block = false;
	unsigned bad = 0;
	while (!atomic_load_explicit(&cg.go, memory_order_acquire))
		sched_yield();
	for (;;) {
		size_t n;
		bool lw;
		int rc = st_read_some(r->c, &r->rng, items, MAX_BATCH, &n, &must_block,
		                      atomic_load(&cg.closed), cg.long_wait_ns, &lw);
		if (rc == FO_OK) {
			for (size_t i = 0; i < n; i++) {
				if (!st_item_check(items[i], C_NPROD, r->name))
					continue;
				const st_item *it = items[i];
				uint32_t p = it->producer;
				int64_t seq = (int64_t)it->seq;
				r->got++;
				if (r->kind == T_ACTIVE && seq != r->last[p] + 1)
					st_fail("%s: producer %u: expected seq %" PRId64
					        ", got %" PRId64,
					        r->name, p, r->last[p] + 1, seq);
				if (r->kind != T_ACTIVE && seq <= r->last[p])
					st_fail("%s: producer %u: seq %" PRId64 " after %" PRId64,
					        r->name, p, seq, r->last[p]);
				if (r->kind == T_PASSIVE && seq != r->last[p] + 1 &&
				    r->epoch_at[p] == r->lag_epoch)
					st_fail("%s: producer %u: skipped %" PRId64 "->%" PRId64
					        " without FO_LAGGED",
					        r->name, p, r->last[p], seq);
				if (r->kind == T_MEMBER &&
				    st_bitmap_set(&cg.claimed[p], (uint64_t)seq))
					st_fail("%s: producer %u seq %" PRId64
					        " given to two members",
					        r->name, p, seq);
				r->epoch_at[p] = r->lag_epoch;
				r->last[p] = seq;
			}
			st_tick();
		} else if (rc == FO_END) {
			if (!atomic_load(&cg.closed))
				st_fail("%s: FO_END before close", r->name);
			r->ended = true;
			break;
		} else if (rc == FO_LAGGED && r->kind == T_PASSIVE) {
			r->lag_epoch++;
		} else if (rc == FO_EMPTY || rc == FO_TIMEDOUT) {
			if (lw) {
				st_fail("%s: nothing for %.0f s (closed=%d)", r->name,
				        (double)cg.long_wait_ns / 1e9,
				        (int)atomic_load(&cg.closed));
				if (++bad > 2)
					break;
			}
		} else {
			st_fail("%s: unexpected %s", r->name, st_rc(rc));
			if (++bad > 2)
				break;
		}
	}
	return NULL;
}

static void close_round(int round, uint64_t max_items, st_rng *rng)
{
	memset(&cg, 0, sizeof cg);
	static const size_t caps[] = {0, 0, 64, 1024};
	cg.capacity = caps[st_below(rng, 4)];
	cg.long_wait_ns = 30 * ST_NS_PER_S * st_time_factor();
	uint64_t d = st_below(rng, 10);
	cg.close_delay_ns = d == 0  ? 0
	                    : d < 8 ? (int64_t)st_below(rng, 3 * ST_NS_PER_MS)
	                            : (int64_t)st_below(rng, 30 * ST_NS_PER_MS);
	st_set_context("close round %d: cap=%zu close after %.2f ms", round, cg.capacity,
	               (double)cg.close_delay_ns / 1e6);
	uint64_t space = 0;
	for (int p = 0; p < C_NPROD; p++) {
		cprod *pr = &cg.pr[p];
		pr->id = (uint32_t)p;
		pr->max = 1 + st_below(rng, max_items);
		pr->rejected = st_xcalloc(2 * MAX_BATCH, sizeof(st_item *));
		st_rng_init(&pr->rng, st_rand(rng), (uint64_t)p);
		if (pr->max > space)
			space = pr->max;
	}
	cg.space = space;
	st_freectx_init(&cg.fc, C_NPROD, space);
	for (int p = 0; p < C_NPROD; p++)
		st_bitmap_init(&cg.claimed[p], space);
	fo_stream_opts o;
	fo_stream_opts_init(&o);
	o.capacity = cg.capacity;
	o.item_free = st_item_free_cb;
	o.item_free_ctx = &cg.fc;
	if (fo_stream_create(&cg.s, &o) != FO_OK)
		st_die("fo_stream_create failed");

	enum { NR = 5 };
	creader rd[NR];
	memset(rd, 0, sizeof rd);
	static const int kinds[NR] = {T_ACTIVE, T_ACTIVE, T_MEMBER, T_MEMBER, T_PASSIVE};
	for (int i = 0; i < NR; i++) {
		creader *r = &rd[i];
		r->kind = kinds[i];
		snprintf(r->name, sizeof r->name, "%s#%d", tkind[r->kind], i);
		for (int p = 0; p < 8; p++)
			r->last[p] = -1;
		st_rng_init(&r->rng, st_rand(rng), (uint64_t)i);
		int rc;
		if (i == 3)
			rc = fo_cursor_fork(rd[2].c, &r->c, FO_SHARED);
		else
			rc = fo_stream_cursor(cg.s, &r->c,
			                      r->kind == T_ACTIVE   ? FO_ACTIVE
			                      : r->kind == T_MEMBER ? FO_SHARED
			                                            : FO_PASSIVE);
		if (rc != FO_OK)
			st_die("cursor: %s", st_rc(rc));
		st_thread_start(&r->th, close_reader, r);
	}
	pthread_t closer;
	for (int p = 0; p < C_NPROD; p++)
		st_thread_start(&cg.pr[p].th, close_producer, &cg.pr[p]);
	st_thread_start(&closer, close_closer, NULL);
	atomic_store_explicit(&cg.go, true, memory_order_release);
	for (int p = 0; p < C_NPROD; p++)
		st_thread_join(cg.pr[p].th);
	st_thread_join(closer);
	bool early = st_below(rng, 2);
	if (early)
		fo_stream_destroy(cg.s);
	for (int i = 0; i < NR; i++)
		st_thread_join(rd[i].th);
	for (int i = 0; i < NR; i++)
		fo_cursor_close(rd[i].c);
	if (!early)
		fo_stream_destroy(cg.s);
	cg.s = NULL;

	/* reconcile: the accepted prefix went everywhere, nothing else did */
	uint64_t acc_total = 0;
	for (int p = 0; p < C_NPROD; p++) {
		cprod *pr = &cg.pr[p];
		int64_t want = (int64_t)pr->accepted - 1;
		acc_total += pr->accepted;
		for (int i = 0; i < NR; i++) {
			creader *r = &rd[i];
			if (!r->ended)
				st_fail("%s: never got FO_END", r->name);
			if (r->kind == T_ACTIVE && r->last[p] != want)
				st_fail("%s: producer %d: last seq before FO_END %" PRId64
				        ", but pushes up to %" PRId64 " returned FO_OK",
				        r->name, p, r->last[p], want);
			if (r->kind != T_ACTIVE && r->last[p] > want)
				st_fail("%s: producer %d: got seq %" PRId64
				        " whose push returned FO_ECLOSED",
				        r->name, p, r->last[p]);
		}
		uint64_t hole = st_bitmap_first_clear(&cg.claimed[p], 0, pr->accepted);
		if (hole != pr->accepted)
			st_fail("group: producer %d seq %" PRIu64 " (accepted) went to no member",
			        p, hole);
		if (pr->accepted < space && st_bitmap_count(&cg.claimed[p], pr->accepted, space))
			st_fail("group: producer %d: a refused item was delivered", p);
		if (st_freed_of(&cg.fc, (uint32_t)p) != pr->accepted)
			st_fail("producer %d: item_free ran %" PRIu64 " times, %" PRIu64
			        " pushes accepted",
			        p, st_freed_of(&cg.fc, (uint32_t)p), pr->accepted);
		for (uint64_t j = 0; j < pr->nrejected; j++) {
			st_item *it = pr->rejected[j];
			if (st_bitmap_get(&cg.fc.bits[p], it->seq)) {
				st_fail("producer %d: refused item seq %" PRIu64
				        " (FO_ECLOSED) was freed by the stream",
				        p, it->seq);
				continue; /* already freed: do not touch */
			}
			free(it);
		}
		free(pr->rejected);
		st_bitmap_fini(&cg.claimed[p]);
	}
	st_freectx_fini(&cg.fc);
	close_stats.accepted += acc_total;
	close_stats.rounds++;
	uint64_t refused = 0;
	for (int p = 0; p < C_NPROD; p++)
		refused += cg.pr[p].nrejected;
	close_stats.refused += refused;
	close_stats.rounds_with_refusal += refused > 0;
}

/* ------------------------------------------------------------------- main */

int main(int argc, char **argv)
{
	st_args args;
	st_parse_args(argc, argv, &args, " [--only fork|close]");
	enum st_build b = st_build_kind();
	uint64_t fork_items = st_scale(500000, 2000), close_items = 20000;
	int fork_rounds = 12, close_rounds = (int)st_scale(400, 40);
	if (args.quick) {
		fork_items = 5000;
		fork_rounds = 4;
		close_rounds = 20;
		close_items = 2000;
	}
	if (args.have_items)
		fork_items = close_items = args.items;
	bool do_fork = !args.only || strcmp(args.only, "fork") == 0;
	bool do_close = !args.only || strcmp(args.only, "close") == 0;
	if (!do_fork && !do_close) {
		fprintf(stderr, "--only wants fork or close\n");
		return 2;
	}
	g.seed = args.seed;
	printf("stress_fork: seed=%" PRIu64 " build=%s (replay: --seed %" PRIu64 ")\n", args.seed,
	       st_build_name(b), args.seed);
	if (do_fork)
		printf("fork part: %d rounds x 2 producers x %" PRIu64
		       " items, <= %d live reader threads, <= %d forks per round\n",
		       fork_rounds, fork_items, MAX_LIVE, MAX_TASKS);
	if (do_close)
		printf("close part: %d rounds x %d producers x up to %" PRIu64
		       " items, 2 active + 2 members + 1 passive\n",
		       close_rounds, C_NPROD, close_items);
	fflush(stdout);
	st_watchdog_start(60 * ST_NS_PER_S * st_time_factor(), dump_fork);
	int64_t t0 = st_now_ns();
	if (do_fork) {
		static const size_t caps[] = {0, 1024, 0, 256};
		static const size_t pwins[] = {0, 0, 256, 64};
		for (int r = 0; r < fork_rounds; r++) {
			fork_round(r, fork_items, caps[r % 4], (r / 2) & 1, pwins[(r + r / 4) % 4]);
			if (st_failure_count()) {
				fprintf(stderr, "stress_fork: FAILED in %s (seed %" PRIu64 ")\n",
				        st_context, args.seed);
				return 1;
			}
		}
	}
	double tf = (double)(st_now_ns() - t0) / 1e9;
	int64_t t1 = st_now_ns();
	if (do_close) {
		st_rng rng;
		st_rng_init(&rng, args.seed, 0xc105e);
		for (int r = 0; r < close_rounds; r++) {
			close_round(r, close_items, &rng);
			if (st_failure_count()) {
				fprintf(stderr, "stress_fork: FAILED in %s (seed %" PRIu64 ")\n",
				        st_context, args.seed);
				return 1;
			}
		}
		st_log("  close part: %d rounds, %.2f s; %" PRIu64
		       " rounds had a push refused by the close; %" PRIu64
		       " items accepted, %" PRIu64 " refused\n",
		       close_rounds, (double)(st_now_ns() - t1) / 1e9,
		       close_stats.rounds_with_refusal, close_stats.accepted, close_stats.refused);
	}
	st_watchdog_end();
	printf("stress_fork: OK: fork part %.1f s, total %.1f s, seed %" PRIu64 "\n", tf,
	       (double)(st_now_ns() - t0) / 1e9, args.seed);
	return 0;
}
