/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * imap.c - the lazy indexable map (see fanout/pmap.h): no cache, every get
 * calls the function.  Iterators are index sources (tokens i + 1) read
 * sequentially, or through fo_pmap().
 */
#include <string.h>

#include <fanout/pmap.h>
#include "iter_impl.h"

struct fo_imap {
	fo_imap_fn fn;
	void *ctx;
	size_t n, len;
	fo_item_free_fn item_free;
	void *item_ctx;
	void *const **arrays;
};

int fo_imap_create(fo_imap **out, fo_imap_fn fn, void *ctx, void *const *const *arrays,
                   const size_t *lens, size_t n, fo_item_free_fn item_free, void *item_ctx)
{
	if (!out || !fn || !arrays || !lens || n == 0)
		return FO_EINVAL;
	size_t len = SIZE_MAX;
	for (size_t k = 0; k < n; k++) {
		if (!arrays[k] && lens[k])
			return FO_EINVAL;
		if (lens[k] < len)
			len = lens[k];
	}
	if (n > (SIZE_MAX - sizeof(fo_imap)) / sizeof(void *))
		return FO_ENOMEM;
	fo_imap *m = fo__zalloc(sizeof(*m));
	void *const **a = fo__alloc(n * sizeof(*a));
	if (!m || !a) {
		fo__free(m);
		fo__free(a);
		return FO_ENOMEM;
	}
	memcpy(a, arrays, n * sizeof(*a));
	m->arrays = a;
	m->fn = fn;
	m->ctx = ctx;
	m->n = n;
	m->len = len;
	m->item_free = item_free;
	m->item_ctx = item_free ? item_ctx : NULL;
	*out = m;
	return FO_OK;
}

size_t fo_imap_len(const fo_imap *m)
{
	return m ? m->len : 0;
}

/* Compute item @i (0 <= i < len) on the caller's thread. */
static int compute(const fo_imap *m, size_t i, void **out)
{
	void *small[8] = {0};
	void **args = m->n <= 8 ? small : fo__alloc(m->n * sizeof(void *));
	if (!args)
		return FO_ENOMEM;
	for (size_t k = 0; k < m->n; k++)
		args[k] = m->arrays[k][i];
	void *o = NULL;
	int rc = m->fn(m->ctx, args, m->n, &o);
	if (args != small)
		fo__free(args);
	if (rc == FO_OK && !o)
		rc = FO_EINVAL; /* contract broken */
	if (rc == FO_OK)
		*out = o;
	return rc;
}

int fo_imap_get(const fo_imap *m, int64_t i, void **out)
{
	if (!m || !out)
		return FO_EINVAL;
	/* Negative indices count from the common end: -1 is len - 1 in every input. */
	if (i < 0)
		i += (int64_t)m->len;
	if (i < 0 || (uint64_t)i >= m->len)
		return FO_EINVAL;
	return compute(m, (size_t)i, out);
}

void fo_imap_destroy(fo_imap *m)
{
	if (!m)
		return;
	fo__free((void *)m->arrays);
	fo__free(m);
}

/* ---- iterators --------------------------------------------------------------------------------
 */

struct idx_src {
	const fo_imap *m;
	size_t i;
	bool compute; /* sequential: compute here; else hand out index tokens */
};

static int idx_next(void *ctx, void **item, uint64_t deadline)
{
	struct idx_src *s = ctx;
	(void)deadline;
	if (s->i >= s->m->len)
		return FO_END;
	size_t i = s->i;
	if (s->compute) {
		int rc = compute(s->m, i, item);
		if (rc != FO_OK)
			return rc; /* the iterator fails with it */
	} else {
		*item = (void *)(uintptr_t)(i + 1);
	}
	s->i++;
	return FO_OK;
}

static void idx_close(void *ctx)
{
	fo__free(ctx);
}

static int pmap_cb(void *ctx, void *wstate, void *in, void **out)
{
	(void)wstate;
	return compute(ctx, (size_t)(uintptr_t)in - 1, out);
}

int fo_imap_iter(const fo_imap *m, fo_iter **it, const fo_pmap_opts *o)
{
	if (!m || !it)
		return FO_EINVAL;
	struct idx_src *s = fo__zalloc(sizeof(*s));
	if (!s)
		return FO_ENOMEM;
	s->m = m;
	s->compute = o == NULL;
	fo_iter *src;
	int rc =
	    fo_iter_from_fn(&src, idx_next, idx_close, s, o ? NULL : m->item_free, m->item_ctx);
	if (rc != FO_OK) {
		fo__free(s);
		return rc;
	}
	if (!o) {
		*it = src;
		return FO_OK;
	}
	fo_pmap_opts po = *o;
	po.ctx = (void *)m;
	po.paired = false;
	po.item_free = m->item_free;
	po.item_free_ctx = m->item_ctx;
	rc = fo_pmap(it, src, pmap_cb, &po);
	if (rc != FO_OK)
		fo_iter_close(src);
	return rc;
}
