/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * fuzz_flow.c - libFuzzer harness for the flow layer (TESTING.md §7).
 *
 * The input decodes into a composition tree (up to MAX_NODES nodes) over
 * callback sources, then the root is read to its end on this thread while
 * the library runs its own threads (pipeline stages, join helpers, feeds):
 *
 *   leaf      a callback source of 0..40 items that ends, or fails with a
 *             code (FO_ESYS with errno EIO, or a custom code)
 *   map       +1 to each item's "map count"; STOP or DROP on one seq
 *   filter    drops the items whose (seq + salt) % 3 == 0
 *   stage     fo_pipeline_buffer(n 1..8) in the input's shared pipeline
 *             group or in a group of its own (issue 12 bugs 2-3 are two
 *             stages of one group merged by a join or a flatten)
 *   feed      BACKGROUND (ahead 0..3) or ON_DEMAND, read by fo_feed_iter
 *   join      2-3 children, fail fast
 *   flatten   2-3 children without joins, in order
 *
 * The model gives each node a list of chains (per source leaf, in order);
 * each chain may end with an error.  Checks at the root: every item belongs
 * to a chain and arrives in chain order (nothing twice, nothing foreign);
 * FO_END only if no chain ends with an error, and then every chain was
 * delivered whole; FO_FAILED only with the code (and, where promised,
 * sys_errno: bug 4) of a chain that ends with one, and that chain delivered
 * whole before it (a root error, never a generic cancellation: bugs 2-3);
 * after closing everything (the feeds in an order the input picks), every
 * item allocated was freed exactly once.
 */
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>

#include "fuzz_common.h"

#define MAX_NODES 16
/* Once LEAF_LIMIT leaves exist every further node is a leaf, but up to 2
 * siblings are still due at each of the (at most 4) inner nodes on the
 * stack: MAX_LEAVES bounds the rest (found by fuzz_flow as a UBSan
 * out-of-bounds index: corpus regress-harness-leaf-count). */
#define LEAF_LIMIT  9
#define MAX_LEAVES  (LEAF_LIMIT + 4 * 2)
#define LEAF_VALUES 40 /* a leaf yields 0..LEAF_VALUES values */
/* A flatten concatenates its children's chains, so one chain may hold every
 * leaf's values (found by fuzz_flow as a UBSan out-of-bounds index at 512:
 * corpus regress-harness-chain-capacity). */
#define MAX_CHAIN (MAX_LEAVES * LEAF_VALUES)
#define MAX_CH    MAX_LEAVES
#define MAGIC     0xf10e17e5u

typedef struct val {
	uint32_t magic;
	uint64_t v; /* maps << 32 | leaf << 16 | seq */
} val;

static atomic_long nalloc, nfree;

static void val_free(void *p, void *ctx)
{
	(void)ctx;
	val *x = p;
	FZ_CHECK(x->magic == MAGIC, "val_free: bad item");
	x->magic = 0;
	free(x);
	atomic_fetch_add(&nfree, 1);
}

static val *val_new(uint64_t v)
{
	val *x = malloc(sizeof(*x));
	if (!x)
		abort();
	x->magic = MAGIC;
	x->v = v;
	atomic_fetch_add(&nalloc, 1);
	return x;
}

static void *val_copy(const void *p, void *ctx)
{
	(void)ctx;
	return val_new(((const val *)p)->v);
}

#define SEQ(v)  ((unsigned)((v)&0xffff))
#define LEAF(v) ((unsigned)(((v) >> 16) & 0xffff))

/* ------------------------------------------------------------------ model */

typedef struct chain {
	uint64_t v[MAX_CHAIN];
	size_t n;
	bool has_err;
	int code, err_no;
	bool errno_ok; /* the error's sys_errno is promised to arrive */
	int leaves[MAX_LEAVES];
	int nleaves;
} chain;

typedef struct mres {
	chain *ch[MAX_CH];
	int nch;
} mres;

static chain chains[MAX_LEAVES + MAX_NODES]; /* one per leaf and per flatten */
static int nchains;

static chain *chain_new(void)
{
	chain *c = &chains[nchains++];
	memset(c, 0, sizeof(*c));
	return c;
}

/* --------------------------------------------------------------- sources */

typedef struct leaf {
	int id;
	unsigned n, next;
	int end_code; /* FO_END or an error */
	bool yield;
} leaf;

static int leaf_next(void *ctx, void **item, uint64_t deadline)
{
	(void)deadline;
	leaf *l = ctx;
	if (l->yield)
		sched_yield();
	if (l->next < l->n) {
		*item = val_new((uint64_t)l->id << 16 | l->next++);
		return FO_OK;
	}
	if (l->end_code == FO_ESYS)
		errno = EIO;
	return l->end_code;
}

static void leaf_close(void *ctx)
{
	free(ctx);
}

/* flatten's outer source: yields its children, closes the rest on close */
typedef struct outer {
	fo_iter *kids[3];
	int n, next;
} outer;

static int outer_next(void *ctx, void **item, uint64_t deadline)
{
	(void)deadline;
	outer *o = ctx;
	if (o->next == o->n)
		return FO_END;
	*item = o->kids[o->next++];
	return FO_OK;
}

static void outer_close(void *ctx)
{
	outer *o = ctx;
	for (int k = o->next; k < o->n; k++)
		fo_iter_close(o->kids[k]);
	free(o);
}

/* map: count + 1; fails (STOP / DROP) on one seq */
typedef struct mapper {
	unsigned fail_seq;
} mapper;

static int map_fn(void *ctx, void *in, void **out)
{
	mapper *m = ctx;
	val *x = in;
	if (SEQ(x->v) == m->fail_seq)
		return -300 - (int)m->fail_seq;
	x->v += 1ull << 32;
	*out = x;
	return FO_OK;
}

static int filter_fn(void *ctx, const void *in)
{
	unsigned salt = (unsigned)(uintptr_t)ctx;
	return (SEQ(((const val *)in)->v) + salt) % 3 != 0;
}

/* ----------------------------------------------------------------- build */

static int nnodes, nleaves;
static fo_pipeline *shared_pipe;
static fo_pipeline *pipes[MAX_NODES];
static int npipes;
static fo_feeder *feeders[MAX_NODES];
static int nfeeders;
static mapper mappers[MAX_NODES];
static int nmappers;

static fo_iter *build(fz_in *in, mres *r, int depth, bool allow_join);

static fo_iter *build_leaf(fz_in *in, mres *r)
{
	leaf *l = malloc(sizeof(*l));
	if (!l)
		abort();
	FZ_CHECK(nleaves < MAX_LEAVES && nchains < MAX_LEAVES + MAX_NODES, "harness bounds");
	l->id = nleaves++;
	l->n = fz_pick(in, LEAF_VALUES + 1);
	l->next = 0;
	unsigned e = fz_pick(in, 4);
	l->end_code = e < 2 ? FO_END : e == 2 ? FO_ESYS : -200 - (int)fz_pick(in, 20);
	l->yield = fz_u8(in) & 1;
	chain *c = chain_new();
	for (unsigned k = 0; k < l->n; k++)
		c->v[c->n++] = (uint64_t)l->id << 16 | k;
	c->has_err = l->end_code != FO_END;
	c->code = l->end_code;
	c->err_no = l->end_code == FO_ESYS ? EIO : 0;
	c->errno_ok = true;
	c->leaves[c->nleaves++] = l->id;
	r->ch[r->nch++] = c;
	fo_iter *it = NULL;
	FZ_CHECK(fo_iter_from_fn(&it, leaf_next, leaf_close, l, val_free, NULL) == FO_OK,
	         "from_fn");
	return it;
}

static fo_iter *build(fz_in *in, mres *r, int depth, bool allow_join)
{
	unsigned kind = fz_pick(in, 7);
	nnodes++;
	if (depth >= 4 || nnodes >= MAX_NODES || nleaves >= LEAF_LIMIT || kind == 0)
		return build_leaf(in, r);
	fo_iter *it = NULL, *child;
	switch (kind) {
	case 1: { /* map */
		mapper *m = &mappers[nmappers++];
		bool drop = fz_u8(in) & 1;
		m->fail_seq = fz_pick(in, 64);
		fo_adapt_opts o;
		fo_adapt_opts_init(&o);
		o.on_error = drop ? FO_ERR_DROP : FO_ERR_STOP;
		o.item_free = val_free;
		int first = r->nch; /* this node's chains: the ones its child adds */
		child = build(in, r, depth + 1, allow_join);
		for (int k = first; k < r->nch; k++) {
			chain *c = r->ch[k];
			size_t w = 0;
			bool stop = false;
			for (size_t i = 0; i < c->n && !stop; i++) {
				if (SEQ(c->v[i]) != m->fail_seq)
					c->v[w++] = c->v[i] + (1ull << 32);
				else
					stop = !drop; /* DROP: skipped */
			}
			c->n = w;
			if (stop) { /* the chain ends here with the map's error */
				c->has_err = true;
				c->code = -300 - (int)m->fail_seq;
				c->err_no = 0;
				c->errno_ok = true;
			}
		}
		FZ_CHECK(fo_map(&it, child, map_fn, m, &o) == FO_OK, "map");
		return it;
	}
	case 2: { /* filter */
		unsigned salt = fz_pick(in, 3);
		int first = r->nch; /* this node's chains: the ones its child adds */
		child = build(in, r, depth + 1, allow_join);
		for (int k = first; k < r->nch; k++) {
			chain *c = r->ch[k];
			size_t w = 0;
			for (size_t i = 0; i < c->n; i++)
				if ((SEQ(c->v[i]) + salt) % 3 != 0)
					c->v[w++] = c->v[i];
			c->n = w;
		}
		FZ_CHECK(fo_filter(&it, child, filter_fn, (void *)(uintptr_t)salt, NULL) == FO_OK,
		         "filter");
		return it;
	}
	case 3: { /* pipeline stage */
		bool own = fz_u8(in) & 1;
		size_t n = 1 + fz_pick(in, 8);
		child = build(in, r, depth + 1, allow_join);
		fo_pipeline *p;
		if (own) {
			FZ_CHECK(fo_pipeline_create(&p, NULL) == FO_OK, "pipeline");
			pipes[npipes++] = p;
		} else {
			if (!shared_pipe) {
				FZ_CHECK(fo_pipeline_create(&shared_pipe, NULL) == FO_OK,
				         "pipeline");
				pipes[npipes++] = shared_pipe;
			}
			p = shared_pipe;
		}
		FZ_CHECK(fo_pipeline_buffer(p, &it, child, n) == FO_OK, "buffer");
		return it;
	}
	case 4: { /* feed */
		fo_feed_opts o;
		fo_feed_opts_init(&o);
		o.mode = (fz_u8(in) & 1) ? FO_FEED_ON_DEMAND : FO_FEED_BACKGROUND;
		o.ahead = fz_pick(in, 4);
		int first = r->nch; /* this node's chains: the ones its child adds */
		child = build(in, r, depth + 1, allow_join);
		for (int k = first; k < r->nch; k++)
			r->ch[k]->errno_ok = false; /* a stream failure carries code + message */
		fo_feeder *f = NULL;
		fo_cursor *c = NULL;
		FZ_CHECK(fo_feed_create(&f, &c, child, &o) == FO_OK, "feed");
		feeders[nfeeders++] = f;
		FZ_CHECK(fo_feed_iter(&it, f, c, val_copy, val_free, NULL) == FO_OK, "feed_iter");
		return it;
	}
	case 5:
		if (allow_join) { /* join */
			int n = 2 + (int)fz_pick(in, 2);
			fo_join_opts o;
			fo_join_opts_init(&o);
			o.item_free = val_free;
			o.buffer = 1 + fz_pick(in, 16);
			fo_join *j = NULL;
			FZ_CHECK(fo_join_create(&j, &o) == FO_OK, "join");
			for (int k = 0; k < n; k++) {
				child = build(in, r, depth + 1, true);
				int rc = fo_join_add(j, child);
				FZ_CHECK(rc == FO_OK, "join add: %s", fo_status_name(rc));
			}
			FZ_CHECK(fo_join_seal(j) == FO_OK, "seal");
			it = fo_join_iter(j);
			fo_join_destroy(j);
			return it;
		}
		/* fall through */
	default: { /* flatten of children without joins, each one chain */
		int n = 2 + (int)fz_pick(in, 2);
		outer *o = calloc(1, sizeof(*o));
		if (!o)
			abort();
		chain *cat = chain_new();
		bool stopped = false;
		for (int k = 0; k < n; k++) {
			mres sub = {.nch = 0};
			o->kids[o->n++] = build(in, &sub, depth + 1, false);
			FZ_CHECK(sub.nch == 1, "flatten child with %d chains", sub.nch);
			chain *c = sub.ch[0];
			for (int i = 0; i < c->nleaves; i++)
				cat->leaves[cat->nleaves++] = c->leaves[i];
			if (stopped)
				continue;
			for (size_t i = 0; i < c->n; i++)
				cat->v[cat->n++] = c->v[i];
			if (c->has_err) {
				stopped = true;
				cat->has_err = true;
				cat->code = c->code;
				cat->err_no = c->err_no;
				cat->errno_ok = c->errno_ok;
			}
		}
		r->ch[r->nch++] = cat;
		fo_iter *src = NULL;
		FZ_CHECK(fo_iter_from_fn(&src, outer_next, outer_close, o, fo_iter_close_item,
		                         NULL) == FO_OK,
		         "outer");
		fo_adapt_opts ao;
		fo_adapt_opts_init(&ao);
		ao.item_free = val_free;
		FZ_CHECK(fo_flatten(&it, src, &ao) == FO_OK, "flatten");
		return it;
	}
	}
}

/* ------------------------------------------------------------------ driver */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_in in = {data, size};
	nnodes = nleaves = nchains = npipes = nfeeders = nmappers = 0;
	shared_pipe = NULL;
	atomic_store(&nalloc, 0);
	atomic_store(&nfree, 0);
	alarm(120); /* a hang is a failure (libFuzzer -timeout catches it first) */

	mres r = {.nch = 0};
	fz_step = "build";
	fo_iter *root = build(&in, &r, 0, true);
	for (int k = 0; k < npipes; k++)
		fo_pipeline_destroy(pipes[k]);

	/* leaf -> chain */
	int leaf_chain[MAX_LEAVES];
	for (int k = 0; k < r.nch; k++)
		for (int i = 0; i < r.ch[k]->nleaves; i++)
			leaf_chain[r.ch[k]->leaves[i]] = k;
	size_t got[MAX_CH] = {0};

	fz_step = "read";
	int rc;
	void *item;
	while ((rc = fo_iter_next(root, &item)) == FO_OK) {
		fz_nstep++;
		FZ_CHECK(!fo_iter_is_error(root), "an error item with no EMIT policy");
		val *x = item;
		FZ_CHECK(x->magic == MAGIC, "bad item");
		unsigned lf = LEAF(x->v);
		FZ_CHECK(lf < (unsigned)nleaves, "item of unknown leaf %u", lf);
		int k = leaf_chain[lf];
		chain *c = r.ch[k];
		FZ_CHECK(got[k] < c->n && c->v[got[k]] == x->v,
		         "chain %d: item %zu is %#llx, want %#llx (chain length %zu)", k, got[k],
		         (unsigned long long)x->v,
		         (unsigned long long)(got[k] < c->n ? c->v[got[k]] : 0), c->n);
		got[k]++;
		fo_iter_release(root, item);
	}
	fz_step = "end";
	bool any_err = false;
	for (int k = 0; k < r.nch; k++)
		any_err |= r.ch[k]->has_err;
	if (rc == FO_END) {
		FZ_CHECK(!any_err, "FO_END although a source fails");
		for (int k = 0; k < r.nch; k++)
			FZ_CHECK(got[k] == r.ch[k]->n, "FO_END after %zu of %zu items of chain %d",
			         got[k], r.ch[k]->n, k);
	} else {
		const fo_error *e = fo_iter_error(root);
		FZ_CHECK(rc == FO_FAILED && e, "read: %s", fo_status_name(rc));
		int k = 0, errno_mismatch = -1;
		for (; k < r.nch; k++) {
			chain *c = r.ch[k];
			if (!c->has_err || c->code != e->code || got[k] != c->n)
				continue;
			if (!c->errno_ok || c->err_no == e->sys_errno)
				break;
			errno_mismatch = k;
		}
		if (k == r.nch && errno_mismatch >= 0 && fz_known(4))
			k = errno_mismatch;
		FZ_CHECK(k < r.nch,
		         "FO_FAILED {%s (%d), sys_errno %d, \"%s\"} is no failing source's error "
		         "delivered after all its items (bugs 2-4 of issue 12?)",
		         fo_status_name(e->code), e->code, e->sys_errno, e->message);
	}
	fz_step = "close";
	fo_iter_close(root);
	/* Closing the root closes the outermost feeds' cursors, not their sources:
	 * a feed's source (a stage reading an inner feed's iterator, on its own
	 * thread) lives until fo_feed_destroy().  Outer feeds first (reverse
	 * creation order) ends each reader of a feed before the feed; creation
	 * order destroys inner feeds while their iterators are still read, which
	 * feed.h allows too (the iterator keeps the feed's memory; the input that
	 * found the use-after-free: corpus regress-feed-use-after-free). */
	bool outer_first = !(fz_u8(&in) & 1);
	for (int k = 0; k < nfeeders; k++)
		fo_feed_destroy(feeders[outer_first ? nfeeders - 1 - k : k]);
	FZ_CHECK(atomic_load(&nalloc) == atomic_load(&nfree), "%ld items allocated, %ld freed",
	         atomic_load(&nalloc), atomic_load(&nfree));
	alarm(0);
	return 0;
}
