/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * fuzz_stream.c - libFuzzer harness for the stream core (TESTING.md §7).
 *
 * The input decodes into up to MAX_OPS operations over NS streams, NC
 * cursors of every kind, share groups, a gate and a join (all on this one
 * thread: deterministic), each checked against a sequential model:
 *
 *   streams   create (capacity, passive window, single_producer), push,
 *             try_push, timed_push(0), push_many (1..1024), wait_room(0),
 *             close, fail, destroy (which closes); bad input (NULL item, n 0, a NULL
 *             inside a batch, PASSIVE|SHARED): the documented code
 *   cursors   create, fork (every kind, of every kind), next (only when the
 *             model says it would not block), try_next, timed_next(0),
 *             next_many, available/at_least, close
 *   gate      over an active cursor: release, close, try reads
 *   join      cursor sources (copying): add, seal, try reads
 *
 * Checks: every read returns exactly the model's next item (active, share
 * group: the group's next; passive: its next, or FO_LAGGED and then exactly
 * fo_cursor_lagged() items skipped, and only when it is more than the window
 * behind); ends (FO_END / FO_FAILED with the code, sticky); FO_FULL exactly
 * when the model is full; the item destructor runs once per item, never
 * for an item a cursor can still return, at once when no cursor exists, and
 * for every item once the last handle is gone; fo_stream_get_stats():
 * pushed, cursors, retained + destroyed == pushed, and live segments within
 * the documented bound (issue 12 bugs 1 and 6: skipped with FO_FUZZ_KNOWN).
 */
#include "fuzz_common.h"

#define NS        3
#define NC        10
#define NG        6
#define MAX_OPS   600
#define MAX_ITEMS 20000u
#define MAGIC     0x17e5a11du
#define CMAGIC    0xc0b1e5u
#define SEG       256u

typedef struct item {
	uint32_t magic;
	uint32_t id;
} item;

typedef struct copy_item {
	uint32_t magic;
	uint32_t id;
} copy_item;

typedef struct mstream {
	bool used;
	fo_stream *s; /* the creator's handle; NULL once destroyed */
	size_t cap, window;
	uint32_t *ids;
	size_t n, alloc;
	int end;       /* 0 open, FO_END or FO_FAILED */
	int fail_code; /* with FO_FAILED */
	int handles;   /* open cursors (the model's count) */
	size_t freed;  /* destructor calls */
} mstream;

enum { OWN_USER, OWN_GATE, OWN_JOIN };

typedef struct mcur {
	bool used;
	int s, kind, group, owner;
	fo_cursor *c;
	size_t pos;      /* model position (the group's for members) */
	bool drained;    /* returned FO_END / FO_FAILED */
	int end_rc;      /* what it returned */
	bool loose;      /* active fork of a passive: may start later (lapped) */
	uint64_t lagged; /* fo_cursor_lagged() seen so far */
} mcur;

typedef struct mgroup {
	bool used;
	size_t pos;
	int members;
} mgroup;

static mstream S[NS];
static mcur C[NC];
static mgroup G[NG];
static item *ptrs[MAX_ITEMS];
static uint8_t freed[MAX_ITEMS];
static int8_t item_stream[MAX_ITEMS];
static uint32_t nitems;

/* gate */
static fo_gate *gate;
static fo_iter *gate_it;
static int gate_cur;
static int64_t gate_credits;
static bool gate_closed;
static int gate_end;

/* join */
#define NJS 3
static fo_join *join;
static fo_iter *join_it;
static int join_src[NJS], join_nsrc;
static bool join_sealed;
static bool join_fresh; /* a source was added since the last read */
static int join_end;

static int last_op_read; /* for the bug-1 / bug-6 attribution */

static void item_free(void *p, void *ctx)
{
	mstream *ms = ctx;
	item *it = p;
	int si = (int)(ms - S);
	FZ_CHECK(it && it->magic == MAGIC, "item_free: bad item %p", p);
	FZ_CHECK(it->id < nitems && ptrs[it->id] == it, "item_free: unknown item %u", it->id);
	FZ_CHECK(item_stream[it->id] == si, "item_free: item %u of stream %d freed by %d", it->id,
	         item_stream[it->id], si);
	uint32_t id = it->id;
	FZ_CHECK(!freed[id], "item %u destroyed twice", id);
	freed[id] = 1;
	ms->freed++;
	it->magic = 0;
	ptrs[id] = NULL;
	free(it);
}

static void *copy_fn(const void *p, void *ctx)
{
	(void)ctx;
	const item *it = p;
	copy_item *c = malloc(sizeof(*c));
	if (c) {
		c->magic = CMAGIC;
		c->id = it->id;
	}
	return c;
}

static void copy_free(void *p, void *ctx)
{
	(void)ctx;
	copy_item *c = p;
	FZ_CHECK(c->magic == CMAGIC, "copy_free: bad copy");
	c->magic = 0;
	free(c);
}

static item *new_item(int si)
{
	if (nitems >= MAX_ITEMS)
		return NULL;
	item *it = malloc(sizeof(*it));
	if (!it)
		abort();
	it->magic = MAGIC;
	it->id = nitems;
	ptrs[nitems] = it;
	freed[nitems] = 0;
	item_stream[nitems] = (int8_t)si;
	nitems++;
	return it;
}

/* A refused item stays ours. */
static void drop_item(item *it)
{
	FZ_CHECK(!freed[it->id], "refused item %u was destroyed", it->id);
	freed[it->id] = 1;
	ptrs[it->id] = NULL;
	free(it);
}

static void ids_push(mstream *ms, uint32_t id)
{
	if (ms->n == ms->alloc) {
		ms->alloc = ms->alloc ? ms->alloc * 2 : 256;
		ms->ids = realloc(ms->ids, ms->alloc * sizeof(*ms->ids));
		if (!ms->ids)
			abort();
	}
	ms->ids[ms->n++] = id;
}

/* ------------------------------------------------------------ model helpers */

static size_t cur_pos(const mcur *c)
{
	return c->kind == FO_SHARED ? G[c->group].pos : c->pos;
}

static size_t window_of(const mstream *ms)
{
	return ms->window ? ms->window : FO_DEFAULT_PASSIVE_WINDOW;
}

/* Slowest active consumer (cursor or group) of stream si; false if none. */
static bool min_consumer(int si, size_t *minpos, bool *loose)
{
	bool any = false;
	*loose = false;
	for (int i = 0; i < NC; i++) {
		mcur *c = &C[i];
		if (!c->used || c->s != si || c->kind == FO_PASSIVE || c->drained)
			continue;
		size_t p = cur_pos(c);
		if (!any || p < *minpos)
			*minpos = p;
		any = true;
		*loose |= c->loose;
	}
	return any;
}

static int count_kind(int si, int kind)
{
	int n = 0;
	for (int i = 0; i < NC; i++)
		if (C[i].used && C[i].s == si && C[i].kind == kind)
			n++;
	return n;
}

static void check_all_freed(int si, const char *why)
{
	mstream *ms = &S[si];
	for (size_t k = 0; k < ms->n; k++)
		FZ_CHECK(freed[ms->ids[k]], "%s: item %zu (id %u) of stream %d never destroyed",
		         why, k, ms->ids[k], si);
	FZ_CHECK(ms->freed == ms->n, "%s: %zu destroyed of %zu pushed", why, ms->freed, ms->n);
}

static void stream_gone_if_last(int si)
{
	mstream *ms = &S[si];
	if (ms->s || ms->handles > 0)
		return;
	check_all_freed(si, "last handle dropped");
	free(ms->ids);
	memset(ms, 0, sizeof(*ms));
}

static void check_stats(int si)
{
	mstream *ms = &S[si];
	if (!ms->used || !ms->s)
		return;
	fo_stream_stats st;
	FZ_CHECK(fo_stream_get_stats(ms->s, &st) == FO_OK, "get_stats");
	FZ_CHECK(st.pushed == ms->n, "stats.pushed %llu, model %zu", (unsigned long long)st.pushed,
	         ms->n);
	int joined = 0;
	for (int k = 0; k < join_nsrc; k++)
		joined += C[join_src[k]].s == si;
	/* A join may close a source cursor once it ended. */
	FZ_CHECK(st.cursors <= (size_t)ms->handles && st.cursors + joined >= (size_t)ms->handles,
	         "stats.cursors %zu, model %d", st.cursors, ms->handles);
	FZ_CHECK(st.retained_items + ms->freed == ms->n,
	         "retained %zu + destroyed %zu != pushed %zu", st.retained_items, ms->freed, ms->n);
	if (ms->handles == 0)
		FZ_CHECK(st.retained_items == 0, "no cursor, yet %zu items retained",
		         st.retained_items);

	/* Memory bound: the segments from the slowest consumer to the tail, the
	 * window when a passive cursor exists, one pinned segment per passive
	 * cursor and member, plus slack for the reclaim period (every 4 segments)
	 * and the segments linked ahead of the tail. */
	size_t minpos = ms->n;
	bool loose;
	if (!min_consumer(si, &minpos, &loose))
		minpos = ms->n;
	int npas = count_kind(si, FO_PASSIVE), nmem = count_kind(si, FO_SHARED);
	size_t bound = (ms->n - minpos) / SEG + 2 + (size_t)npas + (size_t)nmem + 8;
	if (npas)
		bound += (window_of(ms) + SEG - 1) / SEG + 2;
	int bug = last_op_read ? 6 : 1;
	if (!fz_known(bug))
		FZ_CHECK(st.live_segments <= bound,
		         "live_segments %zu > bound %zu (bug %d of issue 12?): pushed %zu, slowest "
		         "consumer at %zu, %d passive, %d members, window %zu",
		         st.live_segments, bound, bug, ms->n, minpos, npas, nmem, window_of(ms));
}

/* ------------------------------------------------------------------ streams */

static const size_t caps[] = {0, 0, 0, 1, 2, 5, 16, 300, 1000};
static const size_t windows[] = {0, 1, 10, 256, 257, 600};

static void op_create(fz_in *in)
{
	int si = (int)fz_pick(in, NS);
	if (S[si].used)
		return;
	fz_step = "create";
	fo_stream_opts o;
	fo_stream_opts_init(&o);
	o.capacity = caps[fz_pick(in, sizeof(caps) / sizeof(caps[0]))];
	o.passive_window = windows[fz_pick(in, sizeof(windows) / sizeof(windows[0]))];
	o.single_producer = fz_u8(in) & 1;
	o.item_free = item_free;
	o.item_free_ctx = &S[si];
	mstream *ms = &S[si];
	memset(ms, 0, sizeof(*ms));
	FZ_CHECK(fo_stream_create(&ms->s, &o) == FO_OK, "create");
	ms->used = true;
	ms->cap = o.capacity;
	ms->window = o.passive_window;
}

static int stream_pick(fz_in *in, bool need_handle)
{
	int si = (int)fz_pick(in, NS);
	if (!S[si].used || (need_handle && !S[si].s))
		return -1;
	return si;
}

/* Would @n more items fit now?  *sure: the model knows (no loose cursor). */
static bool has_room(int si, size_t n, bool *sure)
{
	mstream *ms = &S[si];
	size_t minpos;
	bool loose;
	*sure = true;
	if (!ms->cap || !min_consumer(si, &minpos, &loose))
		return true;
	*sure = !loose;
	return ms->n + n - minpos <= ms->cap;
}

/* Items first..first+n-1 (consecutive ids) were accepted. */
static void accepted(int si, uint32_t first, size_t n)
{
	mstream *ms = &S[si];
	for (uint32_t id = first; id < first + n; id++) {
		ids_push(ms, id);
		/* No cursor at claim time: destroyed at once. */
		if (ms->handles == 0)
			FZ_CHECK(freed[id], "item %u pushed with no cursor not destroyed", id);
	}
}

static void op_push(fz_in *in)
{
	int si = stream_pick(in, true);
	unsigned how = fz_pick(in, 3);
	if (si < 0)
		return;
	mstream *ms = &S[si];
	item *it = new_item(si);
	if (!it)
		return;
	bool sure, room = has_room(si, 1, &sure);
	uint32_t id = it->id;
	int rc;
	if (how == 0 && room && !ms->end) {
		fz_step = "push";
		rc = fo_stream_push(ms->s, it);
	} else if (how == 1 || how == 0) {
		fz_step = "try_push";
		rc = fo_stream_try_push(ms->s, it);
	} else {
		fz_step = "timed_push(0)";
		rc = fo_stream_timed_push(ms->s, it, 0);
	}
	if (ms->end) {
		FZ_CHECK(rc == FO_ECLOSED, "push on an ended stream: %s", fo_status_name(rc));
	} else if (room) {
		FZ_CHECK(rc == FO_OK, "push with room: %s", fo_status_name(rc));
	} else if (sure) {
		FZ_CHECK(rc == FO_FULL || (how == 2 && rc == FO_TIMEDOUT),
		         "push on a full stream: %s", fo_status_name(rc));
	} else {
		FZ_CHECK(rc == FO_OK || rc == FO_FULL || rc == FO_TIMEDOUT, "push: %s",
		         fo_status_name(rc));
	}
	if (rc == FO_OK)
		accepted(si, id, 1);
	else
		drop_item(it);
}

static void op_push_many(fz_in *in)
{
	int si = stream_pick(in, true);
	unsigned sel = fz_u8(in);
	size_t n;
	if (sel < 128)
		n = 1 + sel % 16;
	else if (sel < 200)
		n = 1 + (size_t)(sel - 128) * 7;
	else
		n = 256u * (1 + (sel & 3)) - 2 + (sel >> 2) % 5; /* around the segment size */
	if (si < 0)
		return;
	mstream *ms = &S[si];
	if (nitems + n > MAX_ITEMS)
		return;
	bool sure, room = has_room(si, n, &sure);
	if (ms->cap && n > ms->cap) {
		fz_step = "push_many(n > capacity)";
		item *one = new_item(si);
		if (!one)
			return;
		void **v = malloc(n * sizeof(*v));
		if (!v)
			abort();
		for (size_t k = 0; k < n; k++)
			v[k] = one;
		int rc = fo_stream_push_many(ms->s, v, n);
		FZ_CHECK(rc == FO_EINVAL, "push_many(%zu) over capacity %zu: %s", n, ms->cap,
		         fo_status_name(rc));
		free(v);
		drop_item(one);
		return;
	}
	if (!ms->end && !room)
		return; /* would wait */
	item **its = malloc(n * sizeof(*its));
	if (!its)
		abort();
	for (size_t k = 0; k < n; k++)
		its[k] = new_item(si);
	uint32_t first = its[0]->id;
	fz_step = "push_many";
	int rc = fo_stream_push_many(ms->s, (void *const *)its, n);
	if (ms->end)
		FZ_CHECK(rc == FO_ECLOSED, "push_many on an ended stream: %s", fo_status_name(rc));
	else
		FZ_CHECK(rc == FO_OK, "push_many(%zu): %s", n, fo_status_name(rc));
	if (rc == FO_OK)
		accepted(si, first, n);
	else
		for (size_t k = 0; k < n; k++)
			drop_item(its[k]);
	free(its);
}

static void op_bad(fz_in *in)
{
	int si = stream_pick(in, true);
	unsigned what = fz_pick(in, 5);
	if (si < 0)
		return;
	mstream *ms = &S[si];
	int rc;
	switch (what) {
	case 0:
		fz_step = "push(NULL)";
		rc = fo_stream_push(ms->s, NULL);
		FZ_CHECK(rc == FO_EINVAL, "%s", fo_status_name(rc));
		break;
	case 1: {
		fz_step = "push_many(n 0)";
		void *v[1] = {NULL};
		rc = fo_stream_push_many(ms->s, v, 0);
		FZ_CHECK(rc == FO_EINVAL, "%s", fo_status_name(rc));
		break;
	}
	case 2: {
		fz_step = "push_many(NULL inside)";
		item *a = new_item(si), *b = new_item(si);
		if (!a || !b) {
			if (a)
				drop_item(a);
			if (b)
				drop_item(b);
			break;
		}
		void *v[3] = {a, NULL, b};
		rc = fo_stream_push_many(ms->s, v, 3);
		FZ_CHECK(rc == FO_EINVAL, "%s", fo_status_name(rc));
		drop_item(a);
		drop_item(b);
		break;
	}
	case 3: {
		fz_step = "cursor(PASSIVE|SHARED)";
		fo_cursor *c = NULL;
		rc = fo_stream_cursor(ms->s, &c, FO_PASSIVE | FO_SHARED);
		FZ_CHECK(rc == FO_EINVAL, "%s", fo_status_name(rc));
		break;
	}
	default: {
		fz_step = "wait_room(0)";
		size_t n = 1 + fz_pick(in, 8);
		bool sure, room = has_room(si, n, &sure);
		rc = fo_stream_wait_room(ms->s, n, 0);
		if (ms->cap && n > ms->cap)
			FZ_CHECK(rc == FO_EINVAL, "%s", fo_status_name(rc));
		else if (ms->end)
			FZ_CHECK(rc == FO_ECLOSED, "%s", fo_status_name(rc));
		else if (room)
			FZ_CHECK(rc == FO_OK, "wait_room(%zu) with room: %s", n,
			         fo_status_name(rc));
		else if (sure)
			FZ_CHECK(rc == FO_FULL, "wait_room(%zu) full: %s", n, fo_status_name(rc));
		break;
	}
	}
}

static void op_end(fz_in *in)
{
	int si = stream_pick(in, true);
	unsigned what = fz_pick(in, 3);
	if (si < 0)
		return;
	mstream *ms = &S[si];
	if (what == 0) {
		fz_step = "close";
		FZ_CHECK(fo_stream_close(ms->s) == FO_OK, "close");
		if (!ms->end)
			ms->end = FO_END;
	} else if (what == 1) {
		fz_step = "fail";
		int code = -100 - (int)fz_pick(in, 50);
		int rc = fo_stream_fail(ms->s, code, (fz_u8(in) & 1) ? "fuzz failure" : NULL);
		if (ms->end) {
			FZ_CHECK(rc == FO_ECLOSED, "fail after end: %s", fo_status_name(rc));
		} else {
			FZ_CHECK(rc == FO_OK, "fail: %s", fo_status_name(rc));
			ms->end = FO_FAILED;
			ms->fail_code = code;
		}
	} else {
		fz_step = "destroy";
		fo_stream_destroy(ms->s);
		ms->s = NULL;
		if (!ms->end) /* destroy closes the stream (the first end stays) */
			ms->end = FO_END;
		stream_gone_if_last(si);
	}
}

/* ------------------------------------------------------------------ cursors */

static int free_cursor_slot(void)
{
	for (int i = 0; i < NC; i++)
		if (!C[i].used)
			return i;
	return -1;
}

static int new_group(size_t pos)
{
	for (int g = 0; g < NG; g++)
		if (!G[g].used) {
			G[g] = (mgroup){true, pos, 0};
			return g;
		}
	return -1;
}

static void set_cursor(int ci, int si, fo_cursor *c, int kind, size_t pos, int group, int owner)
{
	mstream *ms = &S[si];
	C[ci] = (mcur){.used = true,
	               .s = si,
	               .kind = kind,
	               .group = group,
	               .owner = owner,
	               .c = c,
	               .pos = pos};
	if (kind == FO_SHARED)
		G[group].members++;
	ms->handles++;
}

/* Open a cursor of @kind at the tail of @si in slot @ci. */
static bool open_cursor(int si, int ci, int kind, int owner)
{
	mstream *ms = &S[si];
	int g = -1;
	if (kind == FO_SHARED && (g = new_group(ms->n)) < 0)
		return false;
	fo_cursor *c = NULL;
	fz_step = "cursor";
	int rc = fo_stream_cursor(ms->s, &c, (unsigned)kind);
	FZ_CHECK(rc == FO_OK && c, "cursor(%d): %s", kind, fo_status_name(rc));
	FZ_CHECK(fo_cursor_kind(c) == kind, "kind %d, asked %d", fo_cursor_kind(c), kind);
	set_cursor(ci, si, c, kind, ms->n, g, owner);
	return true;
}

static void op_cursor(fz_in *in)
{
	int si = stream_pick(in, true);
	static const int kinds[] = {FO_ACTIVE, FO_PASSIVE, FO_SHARED};
	int kind = kinds[fz_pick(in, 3)];
	int ci = free_cursor_slot();
	if (si < 0 || ci < 0)
		return;
	open_cursor(si, ci, kind, OWN_USER);
}

static int user_cursor(fz_in *in)
{
	int ci = (int)fz_pick(in, NC);
	if (!C[ci].used || C[ci].owner != OWN_USER)
		return -1;
	return ci;
}

static void op_fork(fz_in *in)
{
	int pi = user_cursor(in);
	static const int kinds[] = {FO_ACTIVE, FO_PASSIVE, FO_SHARED};
	int kind = kinds[fz_pick(in, 3)];
	int ci = free_cursor_slot();
	if (pi < 0 || ci < 0)
		return;
	mcur *p = &C[pi];
	fo_cursor *c = NULL;
	fz_step = "fork";
	if (kind == FO_SHARED && p->kind == FO_PASSIVE) {
		int rc = fo_cursor_fork(p->c, &c, FO_SHARED);
		FZ_CHECK(rc == FO_EINVAL, "SHARED fork of a passive: %s", fo_status_name(rc));
		return;
	}
	if (kind == FO_SHARED && p->loose)
		return; /* the model does not know where the group would start */
	int g = -1;
	if (kind == FO_SHARED && !p->drained) {
		if (p->kind == FO_SHARED)
			g = p->group;
		else if ((g = new_group(p->pos)) < 0)
			return;
	}
	int rc = fo_cursor_fork(p->c, &c, (unsigned)kind);
	FZ_CHECK(rc == FO_OK && c, "fork(%d) of kind %d: %s", kind, p->kind, fo_status_name(rc));
	if (p->drained) {
		/* A fork of a drained cursor is drained at once. */
		set_cursor(ci, p->s, c, FO_ACTIVE, S[p->s].n, -1, OWN_USER);
		C[ci].drained = true;
		C[ci].end_rc = p->end_rc;
		FZ_CHECK(fo_cursor_kind(c) == FO_ACTIVE, "drained fork kind %d", fo_cursor_kind(c));
		return;
	}
	if (kind == FO_SHARED && p->kind != FO_SHARED) { /* the parent joins the new group */
		p->kind = FO_SHARED;
		p->group = g;
		G[g].members++;
	}
	set_cursor(ci, p->s, c, kind, cur_pos(p), g, OWN_USER);
	C[ci].lagged = 0;
	if (p->kind == FO_PASSIVE && kind == FO_ACTIVE)
		C[ci].loose =
		    true; /* starts at the oldest retained item if the parent was lapped */
	if (p->kind == FO_PASSIVE && kind == FO_PASSIVE)
		C[ci].lagged = fo_cursor_lagged(c); /* may or may not inherit */
	C[ci].loose |= p->loose;
	FZ_CHECK(fo_cursor_kind(c) == kind, "fork kind %d, asked %d", fo_cursor_kind(c), kind);
	FZ_CHECK(fo_cursor_kind(p->c) == p->kind, "parent kind %d, model %d", fo_cursor_kind(p->c),
	         p->kind);
}

static void close_cursor_model(int ci)
{
	mcur *c = &C[ci];
	int si = c->s;
	if (c->kind == FO_SHARED && --G[c->group].members == 0)
		G[c->group].used = false;
	memset(c, 0, sizeof(*c));
	S[si].handles--;
	if (S[si].handles == 0 && S[si].s)
		check_stats(si); /* retained_items must be 0 now */
	stream_gone_if_last(si);
}

static void op_close_cursor(fz_in *in)
{
	int ci = user_cursor(in);
	if (ci < 0)
		return;
	fz_step = "cursor close";
	fo_cursor_close(C[ci].c);
	close_cursor_model(ci);
}

/* The code a cursor at its model end must return. */
static void check_end_rc(mcur *c, int rc)
{
	mstream *ms = &S[c->s];
	/* Also for a cursor created on an ended stream: FO_FAILED with the error
	 * on a failed one (issue 12 bug 7 settled it that way). */
	int want = ms->end;
	FZ_CHECK(rc == want, "at the end: %s, want %s", fo_status_name(rc), fo_status_name(want));
	if (rc == FO_FAILED) {
		const fo_error *e = fo_cursor_error(c->c);
		FZ_CHECK(e && e->code == ms->fail_code && e->message, "error code %d, want %d",
		         e ? e->code : 0, ms->fail_code);
	}
	c->drained = true;
	c->end_rc = rc;
	FZ_CHECK(fo_cursor_is_drained(c->c), "is_drained false after %s", fo_status_name(rc));
}

/* Check that @got is the item at model position *pos of the cursor's stream
 * (a loose cursor may first jump forward); advance. */
static void take(mcur *c, void *got, size_t *pos)
{
	mstream *ms = &S[c->s];
	if (c->loose) {
		size_t k = *pos;
		while (k < ms->n && (void *)ptrs[ms->ids[k]] != got)
			k++;
		FZ_CHECK(k < ms->n, "loose cursor read an item not in its stream past %zu", *pos);
		*pos = k;
		c->loose = false;
	}
	FZ_CHECK(*pos < ms->n, "read past the tail (pos %zu, n %zu)", *pos, ms->n);
	uint32_t id = ms->ids[*pos];
	FZ_CHECK(!freed[id], "read item %u (pos %zu) after its destructor ran", id, *pos);
	FZ_CHECK(got == (void *)ptrs[id], "read %p at pos %zu, want item %u (%p); kind %d", got,
	         *pos, id, (void *)ptrs[id], c->kind);
	FZ_CHECK(((item *)got)->magic == MAGIC && ((item *)got)->id == id, "bad item");
	(*pos)++;
}

static void lagged_by(mcur *c, size_t tail_before)
{
	mstream *ms = &S[c->s];
	uint64_t l = fo_cursor_lagged(c->c);
	FZ_CHECK(c->kind == FO_PASSIVE, "FO_LAGGED on kind %d", c->kind);
	FZ_CHECK(l > c->lagged, "FO_LAGGED but lagged %llu did not grow", (unsigned long long)l);
	size_t d = (size_t)(l - c->lagged);
	FZ_CHECK(tail_before - c->pos > window_of(ms),
	         "lapped while only %zu behind (window %zu), skipped %zu", tail_before - c->pos,
	         window_of(ms), d);
	FZ_CHECK(c->pos + d <= ms->n, "skipped %zu past the tail", d);
	c->pos += d;
	c->lagged = l;
}

static void op_read(fz_in *in)
{
	int ci = user_cursor(in);
	unsigned how = fz_pick(in, 4);
	size_t max = 1 + fz_u16(in) % 300;
	if (ci < 0)
		return;
	last_op_read = 1;
	mcur *c = &C[ci];
	mstream *ms = &S[c->s];
	size_t *pos = c->kind == FO_SHARED ? &G[c->group].pos : &c->pos;
	size_t avail = ms->n - *pos;
	void *got = NULL;
	int rc;
	if (how == 0 && (avail || ms->end || c->drained)) {
		fz_step = "next";
		rc = fo_cursor_next(c->c, &got);
	} else if (how == 0 || how == 1) {
		fz_step = "try_next";
		rc = fo_cursor_try_next(c->c, &got);
	} else if (how == 2) {
		fz_step = "timed_next(0)";
		rc = fo_cursor_timed_next(c->c, &got, 0);
	} else {
		fz_step = "next_many";
		void **v = malloc(max * sizeof(*v));
		size_t n = 99;
		if (!v)
			abort();
		rc = fo_cursor_next_many(c->c, v, max, &n);
		if (c->drained) {
			FZ_CHECK(rc == c->end_rc && n == 0, "sticky end: %s", fo_status_name(rc));
		} else if (rc == FO_OK) {
			FZ_CHECK(n >= 1 && n <= max && (c->loose || n <= avail),
			         "next_many n %zu (max %zu, avail %zu)", n, max, avail);
			for (size_t k = 0; k < n; k++)
				take(c, v[k], pos);
		} else if (rc == FO_LAGGED) {
			FZ_CHECK(n == 0, "n %zu with FO_LAGGED", n);
			lagged_by(c, ms->n);
		} else {
			FZ_CHECK(n == 0, "n %zu with %s", n, fo_status_name(rc));
			FZ_CHECK(avail == 0 || c->loose, "%s with %zu available",
			         fo_status_name(rc), avail);
			if (rc == FO_EMPTY)
				FZ_CHECK(!ms->end, "FO_EMPTY on an ended stream");
			else
				check_end_rc(c, rc);
		}
		free(v);
		return;
	}
	if (c->drained) {
		FZ_CHECK(rc == c->end_rc, "sticky end: %s, was %s", fo_status_name(rc),
		         fo_status_name(c->end_rc));
	} else if (rc == FO_OK) {
		take(c, got, pos);
	} else if (rc == FO_LAGGED) {
		lagged_by(c, ms->n);
	} else {
		FZ_CHECK(avail == 0 || c->loose, "%s with %zu available (kind %d)",
		         fo_status_name(rc), avail, c->kind);
		if (rc == FO_EMPTY || rc == FO_TIMEDOUT) {
			FZ_CHECK(!ms->end, "%s on an ended stream", fo_status_name(rc));
			FZ_CHECK(rc == (how == 2 ? FO_TIMEDOUT : FO_EMPTY), "%s",
			         fo_status_name(rc));
		} else {
			check_end_rc(c, rc);
		}
	}
}

static void op_avail(fz_in *in)
{
	int ci = user_cursor(in);
	size_t n = fz_pick(in, 20);
	if (ci < 0)
		return;
	mcur *c = &C[ci];
	if (c->kind == FO_PASSIVE || c->loose || c->drained)
		return; /* a lapped passive counts from where it will resume */
	fz_step = "available";
	size_t want = S[c->s].n - cur_pos(c);
	size_t got = fo_cursor_available(c->c);
	FZ_CHECK(got == want, "available %zu, model %zu (kind %d)", got, want, c->kind);
	fz_step = "at_least";
	FZ_CHECK(fo_cursor_at_least(c->c, n) == (want >= n), "at_least(%zu) with %zu", n, want);
}

/* --------------------------------------------------------------------- gate */

static bool src_end_seen(const mcur *c)
{
	return S[c->s].end && S[c->s].n == c->pos;
}

static void op_gate(fz_in *in)
{
	unsigned what = fz_pick(in, 4);
	int64_t n = 1 + fz_pick(in, 6);
	if (!gate) {
		int si = stream_pick(in, true), ci = free_cursor_slot();
		if (si < 0 || ci < 0)
			return;
		fz_step = "gate create";
		if (!open_cursor(si, ci, FO_ACTIVE, OWN_GATE))
			return;
		fo_iter *src = NULL;
		FZ_CHECK(fo_iter_from_cursor(&src, C[ci].c, NULL, NULL, NULL) == FO_OK, "iter");
		FZ_CHECK(fo_gate_create(&gate, src) == FO_OK, "gate");
		gate_it = fo_gate_iter(gate);
		FZ_CHECK(gate_it && !fo_gate_iter(gate), "gate_iter once");
		gate_cur = ci;
		gate_credits = 0;
		gate_closed = false;
		gate_end = 0;
		return;
	}
	mcur *c = &C[gate_cur];
	mstream *ms = &S[c->s];
	if (what == 0) {
		fz_step = "gate release";
		int rc = fo_gate_release(gate, n);
		FZ_CHECK(rc == (gate_closed ? FO_ECLOSED : FO_OK), "release: %s",
		         fo_status_name(rc));
		if (rc == FO_OK)
			gate_credits += n;
	} else if (what == 1) {
		fz_step = "gate close";
		FZ_CHECK(fo_gate_close(gate) == FO_OK, "gate close");
		gate_closed = true;
	} else if (what == 2) {
		fz_step = "gate try_next";
		void *got = NULL;
		int rc = fo_iter_try_next(gate_it, &got);
		size_t avail = ms->n - c->pos;
		if (gate_end) {
			FZ_CHECK(rc == gate_end, "gate sticky end: %s", fo_status_name(rc));
		} else if (rc == FO_OK) {
			FZ_CHECK(gate_credits > 0, "gate passed an item without a credit");
			take(c, got, &c->pos);
			gate_credits--;
		} else if (rc == FO_EMPTY) {
			FZ_CHECK(!(gate_credits > 0 && avail > 0),
			         "gate empty with credit and item");
			FZ_CHECK(!(gate_closed && gate_credits == 0),
			         "gate closed, no credits: EMPTY");
			FZ_CHECK(!(gate_credits > 0 && ms->end),
			         "gate empty with credit, source ended");
		} else {
			FZ_CHECK(rc == FO_END || rc == FO_FAILED, "gate: %s", fo_status_name(rc));
			bool src_end = avail == 0 && ms->end;
			FZ_CHECK((gate_closed && gate_credits == 0) || src_end,
			         "gate ended early: %s", fo_status_name(rc));
			if (rc == FO_FAILED) {
				const fo_error *e = fo_iter_error(gate_it);
				FZ_CHECK(src_end && ms->end == FO_FAILED && e &&
				             e->code == ms->fail_code,
				         "gate failure");
			}
			gate_end = rc;
			/* The read that met the source's end took a credit for it. */
			if (src_end && gate_credits > 0)
				gate_credits--;
		}
		if (!gate_end || !src_end_seen(c))
			FZ_CHECK(fo_gate_credits(gate) == gate_credits, "credits %lld, model %lld",
			         (long long)fo_gate_credits(gate), (long long)gate_credits);
	} else {
		fz_step = "gate destroy";
		fo_gate_destroy(gate);
		fo_iter_close(gate_it);
		gate = NULL;
		gate_it = NULL;
		close_cursor_model(gate_cur);
	}
}

/* --------------------------------------------------------------------- join */

static void join_close(void)
{
	fz_step = "join close";
	fo_join_destroy(join);
	fo_iter_close(join_it);
	join = NULL;
	join_it = NULL;
	for (int k = 0; k < join_nsrc; k++)
		close_cursor_model(join_src[k]);
	join_nsrc = 0;
}

static void op_join(fz_in *in)
{
	unsigned what = fz_pick(in, 5);
	if (!join) {
		fo_join_opts o;
		fo_join_opts_init(&o);
		o.item_free = copy_free;
		fz_step = "join create";
		FZ_CHECK(fo_join_create(&join, &o) == FO_OK, "join create");
		join_it = fo_join_iter(join);
		FZ_CHECK(join_it, "join iter");
		join_nsrc = 0;
		join_sealed = false;
		join_end = 0;
		return;
	}
	if (what <= 1) {
		int si = stream_pick(in, true), ci = free_cursor_slot();
		if (si < 0 || ci < 0 || join_nsrc == NJS)
			return;
		fz_step = "join add";
		if (!open_cursor(si, ci, FO_ACTIVE, OWN_JOIN))
			return;
		fo_iter *src = NULL;
		FZ_CHECK(fo_iter_from_cursor(&src, C[ci].c, copy_fn, copy_free, NULL) == FO_OK,
		         "iter");
		int rc = fo_join_add(join, src);
		if (join_sealed) {
			FZ_CHECK(rc == FO_ECLOSED, "add to a sealed join: %s", fo_status_name(rc));
			fo_iter_close(src);
			C[ci].owner = OWN_USER; /* closed: drop the model cursor */
			close_cursor_model(ci);
			return;
		}
		FZ_CHECK(rc == FO_OK, "join add: %s", fo_status_name(rc));
		join_src[join_nsrc++] = ci;
		join_fresh = true;
	} else if (what == 2) {
		fz_step = "join seal";
		FZ_CHECK(fo_join_seal(join) == FO_OK, "seal");
		join_sealed = true;
	} else if (what == 3) {
		fz_step = "join try_next";
		void *got = NULL;
		int rc = fo_iter_try_next(join_it, &got);
		bool any_item = false, all_ended = true, any_failed = false;
		for (int k = 0; k < join_nsrc; k++) {
			mcur *c = &C[join_src[k]];
			mstream *ms = &S[c->s];
			any_item |= ms->n > c->pos;
			all_ended &= ms->n == c->pos && ms->end;
			any_failed |= ms->n == c->pos && ms->end == FO_FAILED;
		}
		if (join_end) {
			FZ_CHECK(rc == join_end, "join sticky end: %s", fo_status_name(rc));
		} else if (rc == FO_OK) {
			copy_item *ci = got;
			FZ_CHECK(ci->magic == CMAGIC, "join: bad copy");
			int k = 0;
			for (; k < join_nsrc; k++) {
				mcur *c = &C[join_src[k]];
				if (S[c->s].n > c->pos && S[c->s].ids[c->pos] == ci->id)
					break;
			}
			FZ_CHECK(k < join_nsrc, "join returned item %u, next of no source", ci->id);
			mcur *c = &C[join_src[k]];
			c->pos++;
			fo_iter_release(join_it, got);
		} else if (rc == FO_EMPTY) {
			/* join.h: the read that adopts a new source may return FO_EMPTY. */
			FZ_CHECK(join_fresh || (!any_item && !any_failed),
			         "join EMPTY with a source item ready");
			FZ_CHECK(!(join_sealed && all_ended),
			         "join EMPTY though sealed and all ended");
		} else if (rc == FO_END) {
			FZ_CHECK(join_sealed && all_ended && !any_failed, "join FO_END too early");
			join_end = rc;
		} else {
			FZ_CHECK(rc == FO_FAILED && any_failed, "join: %s", fo_status_name(rc));
			join_end = rc;
		}
		join_fresh = false;
	} else {
		join_close();
	}
}

/* ----------------------------------------------------------------- driver */

/* FO_FUZZ_TRACE=1: one line per operation that ran, with the model state. */
static void fz_trace_op(void)
{
	if (fz_step[0] == '-')
		return;
	fprintf(stderr, "op %lu %-24s", fz_nstep, fz_step);
	for (int si = 0; si < NS; si++)
		if (S[si].used)
			fprintf(stderr, " s%d{n=%zu end=%d cap=%zu win=%zu h=%d}", si, S[si].n,
			        S[si].end, S[si].cap, S[si].window, S[si].handles);
	for (int i = 0; i < NC; i++)
		if (C[i].used)
			fprintf(stderr, " c%d{s%d k%d o%d pos=%zu%s}", i, C[i].s, C[i].kind,
			        C[i].owner, cur_pos(&C[i]), C[i].drained ? " drained" : "");
	fprintf(stderr, "\n");
}

static void teardown(void)
{
	fz_step = "teardown";
	if (gate) {
		fo_gate_destroy(gate);
		fo_iter_close(gate_it);
		gate = NULL;
		close_cursor_model(gate_cur);
	}
	if (join)
		join_close();
	for (int i = 0; i < NC; i++)
		if (C[i].used) {
			fo_cursor_close(C[i].c);
			close_cursor_model(i);
		}
	for (int si = 0; si < NS; si++)
		if (S[si].used && S[si].s) {
			fo_stream_destroy(S[si].s);
			S[si].s = NULL;
			stream_gone_if_last(si);
		}
	for (int si = 0; si < NS; si++)
		FZ_CHECK(!S[si].used, "stream %d still alive", si);
	for (uint32_t k = 0; k < nitems; k++)
		FZ_CHECK(freed[k], "item %u leaked", k);
	nitems = 0;
	memset(G, 0, sizeof(G));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_in in = {data, size};
	fz_nstep = 0;
	for (int op = 0; op < MAX_OPS && in.n > 0; op++) {
		unsigned code = fz_u8(&in);
		fz_nstep++;
		fz_step = "-";
		last_op_read = 0;
		switch (code % 16) {
		case 0:
			op_create(&in);
			break;
		case 1:
		case 2:
			op_push(&in);
			break;
		case 3:
			op_push_many(&in);
			break;
		case 4:
			op_cursor(&in);
			break;
		case 5:
			op_fork(&in);
			break;
		case 6:
		case 7:
		case 8:
			op_read(&in);
			break;
		case 9:
			op_avail(&in);
			break;
		case 10:
			op_close_cursor(&in);
			break;
		case 11:
			op_end(&in);
			break;
		case 12:
			op_gate(&in);
			break;
		case 13:
			op_join(&in);
			break;
		case 14:
			op_bad(&in);
			break;
		default:
			if (code & 0x80)
				op_create(&in);
			else
				op_push_many(&in);
			break;
		}
		if (fz_trace())
			fz_trace_op();
		for (int si = 0; si < NS; si++)
			if (S[si].used)
				check_stats(si);
	}
	teardown();
	return 0;
}
