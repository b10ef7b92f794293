/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * iter_zip.c - tuples of one item per source, pulled in argument order.
 *
 * The tuple being built is kept across timeouts (have = how many slots are
 * filled), so a try/timed read that gives up loses nothing.  At the first
 * END or failure the partial tuple's items are released, each once.
 *
 * Tuple layout: the public header {n, items[n]} followed by n destructor
 * records, so a tuple can be freed after the zip (and its sources) closed.
 */
#include <string.h>

#include <fanout/adapt.h>
#include "iter_impl.h"

struct tuple_free {
	fo_item_free_fn fn;
	void *ctx;
};

struct zip_iter {
	fo_iter it;
	size_t n;
	size_t have; /* slots of @pending filled in this round */
	void **pending;
	fo_iter *srcs[];
};

static struct tuple_free *tuple_frees(fo_zip_tuple *t)
{
	return (struct tuple_free *)&t->items[t->n];
}

void fo_zip_tuple_free(void *tuple, void *ctx)
{
	fo_zip_tuple *t = tuple;
	(void)ctx;
	if (!t)
		return;
	struct tuple_free *fr = tuple_frees(t);
	for (size_t i = 0; i < t->n; i++)
		if (t->items[i] && fr[i].fn)
			fr[i].fn(t->items[i], fr[i].ctx);
	fo__free(t);
}

static void release_partial(struct zip_iter *z)
{
	for (size_t i = 0; i < z->have; i++)
		fo_iter_release(z->srcs[i], z->pending[i]);
	z->have = 0;
}

static int zip_next(fo_iter *it, void **item, uint64_t deadline)
{
	struct zip_iter *z = (struct zip_iter *)it;
	if (z->n == 0)
		return FO_END; /* aiter yields empty tuples forever */
	while (z->have < z->n) {
		fo_iter *s = z->srcs[z->have];
		int rc = fo__iter_pull(s, &z->pending[z->have], deadline, NULL);
		if (rc == FO_OK) {
			z->have++;
			continue;
		}
		if (rc == FO_EMPTY || rc == FO_TIMEDOUT)
			return rc; /* keep the partial tuple */
		release_partial(z);
		if (rc == FO_FAILED)
			return fo__iter_fail_from(it, fo_iter_error(s));
		return FO_END;
	}
	size_t sz = sizeof(fo_zip_tuple) + z->n * (sizeof(void *) + sizeof(struct tuple_free));
	fo_zip_tuple *t = fo__alloc(sz);
	if (!t) {
		release_partial(z);
		return fo__iter_fail(it, FO_ENOMEM, 0, "no memory for a tuple");
	}
	t->n = z->n;
	struct tuple_free *fr = tuple_frees(t);
	for (size_t i = 0; i < z->n; i++) {
		t->items[i] = z->pending[i];
		fr[i].fn = z->srcs[i]->item_free;
		fr[i].ctx = z->srcs[i]->item_ctx;
	}
	z->have = 0;
	*item = t;
	return FO_OK;
}

static void zip_close(fo_iter *it)
{
	struct zip_iter *z = (struct zip_iter *)it;
	release_partial(z);
	for (size_t i = 0; i < z->n; i++)
		fo_iter_close(z->srcs[i]);
	fo__free(z->pending);
	fo__iter_fini(it);
	fo__free(z);
}

static const struct fo__iter_vt zip_vt = {
    .name = "zip",
    .next = zip_next,
    .close = zip_close,
};

int fo_zip(fo_iter **out, fo_iter *const *srcs, size_t n)
{
	if (!out || (!srcs && n))
		return FO_EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!srcs[i] || srcs[i]->borrows || srcs[i]->emits_errors)
			return FO_EINVAL;
	if (n > (SIZE_MAX / 4 - sizeof(struct zip_iter)) / sizeof(void *))
		return FO_ENOMEM;
	struct zip_iter *z = fo__zalloc(sizeof(*z) + n * sizeof(fo_iter *));
	if (!z)
		return FO_ENOMEM;
	z->pending = n ? fo__alloc(n * sizeof(void *)) : NULL;
	if (n && !z->pending) {
		fo__free(z);
		return FO_ENOMEM;
	}
	fo__iter_init(&z->it, &zip_vt, fo_zip_tuple_free, NULL);
	z->n = n;
	if (n)
		memcpy(z->srcs, srcs, n * sizeof(fo_iter *));
	*out = &z->it;
	return FO_OK;
}
