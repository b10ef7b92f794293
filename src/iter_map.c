/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * iter_map.c - map, filter and map_filter: one per-item callback over a
 * source, with the error policy.  map_filter buffers the outputs of one
 * input in a small ring, delivered before the source is read again.
 */
#include <string.h>

#include <fanout/adapt.h>
#include "iter_impl.h"

enum kind { K_MAP, K_FILTER, K_MAP_FILTER };

struct map_iter {
	fo_iter it;
	fo_iter *src;
	enum kind kind;
	fo_map_fn map;
	fo_filter_fn filter;
	fo_map_filter_fn map_filter;
	void *ctx;
	fo_error_policy policy;
	/* map_filter: outputs not yet delivered (a ring) */
	void **q;
	size_t qhead, qlen, qcap;
	/* map_filter: an input whose callback failed after emitting outputs:
	 * the policy applies once those are delivered. */
	void *failed_in;
	fo_error failed_err;
	char *failed_msg; /* owned copy behind failed_err.message, or NULL */
};

void fo_adapt_opts_init(fo_adapt_opts *o)
{
	if (!o)
		return;
	memset(o, 0, sizeof(*o));
	o->on_error = FO_ERR_STOP;
}

static const char *what(const struct map_iter *m)
{
	return m->kind == K_MAP      ? "map callback failed"
	       : m->kind == K_FILTER ? "filter callback failed"
	                             : "map_filter callback failed";
}

/*
 * The callback just returned @rc, a failure: its error (errno, the
 * fo_fail() message, else what(m)).  Call before anything else.
 */
static void cb_error(struct map_iter *m, int rc, fo_error *e, char **owned)
{
	fo__cb_capture(rc, e, owned);
	if (!*owned)
		e->message = what(m);
}

/*
 * Apply the policy to @in, whose callback failed with @e.  Returns FO_OK
 * with an error item in *@item (EMIT), FO_EMPTY for "go on" (DROP), or
 * FO_FAILED.  Frees @owned (the message) after it was copied.
 */
static int apply_policy(struct map_iter *m, void *in, const fo_error *e, char *owned, void **item)
{
	int rc = fo__iter_apply_policy(&m->it, m->policy, m->src, e, in, item);
	fo__free(owned);
	return rc;
}

static int emit(void *emit_ctx, void *out)
{
	struct map_iter *m = emit_ctx;
	if (!out)
		return FO_EINVAL;
	if (m->qlen == m->qcap) {
		size_t ncap = m->qcap ? m->qcap * 2 : 8;
		void **nq = fo__alloc(ncap * sizeof(void *));
		if (!nq)
			return FO_ENOMEM;
		for (size_t i = 0; i < m->qlen; i++)
			nq[i] = m->q[(m->qhead + i) % m->qcap];
		fo__free(m->q);
		m->q = nq;
		m->qcap = ncap;
		m->qhead = 0;
	}
	m->q[(m->qhead + m->qlen) % m->qcap] = out;
	m->qlen++;
	return FO_OK;
}

static int map_next(fo_iter *it, void **item, uint64_t deadline)
{
	struct map_iter *m = (struct map_iter *)it;
	for (;;) {
		if (m->qlen) {
			*item = m->q[m->qhead];
			m->qhead = (m->qhead + 1) % m->qcap;
			m->qlen--;
			return FO_OK;
		}
		if (m->failed_in) {
			void *in = m->failed_in;
			char *owned = m->failed_msg;
			m->failed_in = NULL;
			m->failed_msg = NULL;
			int rc = apply_policy(m, in, &m->failed_err, owned, item);
			if (rc != FO_EMPTY)
				return rc;
			continue;
		}
		void *in;
		bool is_err;
		int rc = fo__iter_pull(m->src, &in, deadline, &is_err);
		if (rc == FO_FAILED)
			return fo__iter_fail_from(it, fo_iter_error(m->src));
		if (rc != FO_OK)
			return rc; /* END, EMPTY, TIMEDOUT */
		if (is_err) {      /* an upstream error item passes through */
			*item = in;
			it->last_err = true;
			return FO_OK;
		}
		fo_error e;
		char *owned;
		switch (m->kind) {
		case K_MAP: {
			void *out = NULL;
			fo__cb_begin();
			rc = m->map(m->ctx, in, &out);
			if (rc != FO_OK) {
				cb_error(m, rc, &e, &owned);
				break;
			}
			if (!out) /* contract broken: @in may be gone */
				return fo__iter_fail(it, FO_EINVAL, 0, "map returned a NULL item");
			*item = out;
			return FO_OK;
		}
		case K_FILTER:
			fo__cb_begin();
			rc = m->filter(m->ctx, in);
			if (rc < 0) {
				cb_error(m, rc, &e, &owned);
				break;
			}
			if (rc > 0) {
				*item = in;
				return FO_OK;
			}
			fo_iter_release(m->src, in);
			continue;
		case K_MAP_FILTER:
			fo__cb_begin();
			rc = m->map_filter(m->ctx, in, emit, m);
			if (rc == FO_OK)
				continue;
			/* Deliver what was emitted before the error first. */
			cb_error(m, rc, &m->failed_err, &m->failed_msg);
			m->failed_in = in;
			continue;
		}
		rc = apply_policy(m, in, &e, owned, item);
		if (rc != FO_EMPTY)
			return rc;
	}
}

static void map_close(fo_iter *it)
{
	struct map_iter *m = (struct map_iter *)it;
	while (m->qlen) {
		fo_iter_release(it, m->q[m->qhead]);
		m->qhead = (m->qhead + 1) % m->qcap;
		m->qlen--;
	}
	if (m->failed_in)
		fo_iter_release(m->src, m->failed_in);
	fo__free(m->failed_msg);
	fo__free(m->q);
	fo_iter_close(m->src);
	fo__iter_fini(it);
	fo__free(m);
}

/*
 * Readiness: the source's, except that outputs already buffered (map_filter)
 * or an input whose policy is still to apply make a read succeed without
 * the source: arm() answers 1 for them and arms nothing.  A filter may be
 * signalled for an input it then drops: the read returns FO_EMPTY.
 */
static int map_fd(fo_iter *it)
{
	return fo_iter_fd(((struct map_iter *)it)->src);
}

static int map_arm(fo_iter *it)
{
	struct map_iter *m = (struct map_iter *)it;
	if (m->qlen || m->failed_in)
		return 1;
	return fo_iter_arm(m->src);
}

static int map_watch(fo_iter *it, void (*fn)(void *arg), void *arg)
{
	return fo__iter_watch(((struct map_iter *)it)->src, fn, arg);
}

static const struct fo__iter_vt map_vt = {
    .name = "map",
    .next = map_next,
    .close = map_close,
    .fd = map_fd,
    .arm = map_arm,
    .watch = map_watch,
};

static int make(fo_iter **out, fo_iter *src, enum kind kind, void *fn, void *ctx,
                const fo_adapt_opts *o)
{
	fo_adapt_opts d;
	if (!o) {
		fo_adapt_opts_init(&d);
		o = &d;
	}
	if (!out || !src || !fn)
		return FO_EINVAL;
	if (o->on_error != FO_ERR_STOP && o->on_error != FO_ERR_DROP && o->on_error != FO_ERR_EMIT)
		return FO_EINVAL;
	if (o->on_error == FO_ERR_EMIT && src->borrows)
		return FO_EINVAL;
	struct map_iter *m = fo__zalloc(sizeof(*m));
	if (!m)
		return FO_ENOMEM;
	if (kind == K_FILTER)
		fo__iter_init(&m->it, &map_vt, src->item_free, src->item_ctx);
	else
		fo__iter_init(&m->it, &map_vt, o->item_free, o->item_free_ctx);
	m->it.borrows = src->borrows;
	m->it.emits_errors = src->emits_errors || o->on_error == FO_ERR_EMIT;
	m->src = src;
	m->kind = kind;
	m->ctx = ctx;
	m->policy = o->on_error;
	if (kind == K_MAP)
		m->map = (fo_map_fn)fn;
	else if (kind == K_FILTER)
		m->filter = (fo_filter_fn)fn;
	else
		m->map_filter = (fo_map_filter_fn)fn;
	*out = &m->it;
	return FO_OK;
}

int fo_map(fo_iter **out, fo_iter *src, fo_map_fn fn, void *ctx, const fo_adapt_opts *o)
{
	return make(out, src, K_MAP, (void *)fn, ctx, o);
}

int fo_filter(fo_iter **out, fo_iter *src, fo_filter_fn pred, void *ctx, const fo_adapt_opts *o)
{
	return make(out, src, K_FILTER, (void *)pred, ctx, o);
}

int fo_map_filter(fo_iter **out, fo_iter *src, fo_map_filter_fn fn, void *ctx,
                  const fo_adapt_opts *o)
{
	return make(out, src, K_MAP_FILTER, (void *)fn, ctx, o);
}
