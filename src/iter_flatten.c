/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * iter_flatten.c - concatenate the iterators an outer iterator yields.
 *
 * The current inner iterator is an item of the outer one, owned by the
 * flatten while it reads it; when it ends, it goes back to the outer's
 * destructor (fo_iter_close_item closes it) before the outer is read again,
 * so even a borrowing outer is safe.
 */
#include <fanout/adapt.h>
#include "iter_impl.h"

struct flatten_iter {
	fo_iter it;
	fo_iter *outer;
	fo_iter *inner; /* current element, or NULL */
	fo_error_policy policy;
};

/* Done with the current element: give it back to the outer's destructor. */
static void drop_inner(struct flatten_iter *f)
{
	fo_iter_release(f->outer, f->inner);
	f->inner = NULL;
}

/* Is @e usable as an element?  (The aiter "non-iterable element" case.) */
static bool valid_element(const struct flatten_iter *f, const fo_iter *e)
{
	if (!fo__same_free(e, f->it.item_free, f->it.item_ctx))
		return false;
	if (e->borrows)
		return false;
	return !e->emits_errors || f->policy == FO_ERR_EMIT;
}

static int flatten_next(fo_iter *it, void **item, uint64_t deadline)
{
	struct flatten_iter *f = (struct flatten_iter *)it;
	for (;;) {
		int rc;
		if (!f->inner) {
			void *elem;
			bool is_err;
			rc = fo__iter_pull(f->outer, &elem, deadline, &is_err);
			if (rc == FO_FAILED)
				return fo__iter_fail_from(it, fo_iter_error(f->outer));
			if (rc != FO_OK)
				return rc;
			if (is_err) { /* an upstream error item passes through */
				*item = elem;
				it->last_err = true;
				return FO_OK;
			}
			if (!valid_element(f, elem)) {
				fo_error e = {FO_EINVAL, 0, "flatten: invalid element"};
				rc = fo__iter_apply_policy(&f->it, f->policy, f->outer, &e, elem,
				                           item);
				if (rc != FO_EMPTY)
					return rc;
				continue;
			}
			f->inner = elem;
		}
		bool is_err;
		rc = fo__iter_pull(f->inner, item, deadline, &is_err);
		if (rc == FO_OK) {
			it->last_err = is_err;
			return FO_OK;
		}
		if (rc == FO_END) {
			drop_inner(f);
			continue;
		}
		if (rc != FO_FAILED)
			return rc; /* EMPTY / TIMEDOUT: the inner is kept, nothing lost */
		/* The element failed: its error, then the element is released. */
		rc = fo__iter_apply_policy(it, f->policy, f->outer, fo_iter_error(f->inner), NULL,
		                           item); /* copies the message before the drop */
		drop_inner(f);
		if (rc != FO_EMPTY)
			return rc;
	}
}

static void flatten_close(fo_iter *it)
{
	struct flatten_iter *f = (struct flatten_iter *)it;
	if (f->inner)
		drop_inner(f);
	fo_iter_close(f->outer);
	fo__iter_fini(it);
	fo__free(f);
}

static const struct fo__iter_vt flatten_vt = {
    .name = "flatten",
    .next = flatten_next,
    .close = flatten_close,
};

int fo_flatten(fo_iter **out, fo_iter *src, const fo_adapt_opts *o)
{
	fo_adapt_opts d;
	if (!o) {
		fo_adapt_opts_init(&d);
		o = &d;
	}
	if (!out || !src)
		return FO_EINVAL;
	if (o->on_error != FO_ERR_STOP && o->on_error != FO_ERR_DROP && o->on_error != FO_ERR_EMIT)
		return FO_EINVAL;
	if (o->on_error == FO_ERR_EMIT && src->borrows)
		return FO_EINVAL;
	struct flatten_iter *f = fo__zalloc(sizeof(*f));
	if (!f)
		return FO_ENOMEM;
	fo__iter_init(&f->it, &flatten_vt, o->item_free, o->item_free_ctx);
	f->it.emits_errors = src->emits_errors || o->on_error == FO_ERR_EMIT;
	f->outer = src;
	f->policy = o->on_error;
	*out = &f->it;
	return FO_OK;
}
