/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * worker_thread.c - the thread backend of the pool (pmap_impl.h): init, fn
 * and fini run on the worker thread itself.
 */
#include "pmap_impl.h"

struct tw {
	const fo_pmap_opts *o;
	fo_pmap_fn fn;
	void *wstate;
};

/* Describe a failure @code in @it: a callback's (its errno and fo_fail()
 * message, read first thing) or the library's own (@cb false). */
static void failed(struct fo__pw_item *it, int code, bool cb)
{
	fo_error e = {.code = code};
	char *owned = NULL;
	if (cb)
		fo__cb_capture(code, &e, &owned);
	it->status = code;
	it->sys_errno = e.sys_errno;
	it->msg = owned;
}

static int tw_start(const fo_pmap_opts *o, fo_pmap_fn fn, size_t index, void *init_arg, void **self,
                    struct fo__pw_item *why)
{
	(void)index;
	struct tw *w = fo__zalloc(sizeof(*w));
	if (!w) {
		failed(why, FO_ENOMEM, false);
		return FO_ENOMEM;
	}
	w->o = o;
	w->fn = fn;
	if (o->init) {
		fo__cb_begin();
		int rc = o->init(o->ctx, init_arg, &w->wstate);
		if (rc != FO_OK) {
			failed(why, rc, true);
			fo__free(w);
			return rc;
		}
	}
	*self = w;
	return FO_OK;
}

static size_t tw_run(void *self, struct fo__pw_item *it, size_t n)
{
	struct tw *w = self;
	for (size_t i = 0; i < n; i++) {
		it[i].out = NULL;
		fo__cb_begin();
		int rc = w->fn(w->o->ctx, w->wstate, it[i].in, &it[i].out);
		if (rc != FO_OK) {
			it[i].out = NULL;
			failed(&it[i], rc, true);
		} else if (!it[i].out) {
			failed(&it[i], FO_EINVAL, false); /* contract broken: report, never hang */
		} else {
			it[i].status = FO_OK;
			it[i].sys_errno = 0;
			it[i].msg = NULL;
		}
	}
	return n;
}

static void tw_stop(void *self)
{
	struct tw *w = self;
	if (w->o->fini)
		w->o->fini(w->o->ctx, w->wstate);
	fo__free(w);
}

const struct fo__pmap_ops fo__pmap_threads = {
    .name = "threads",
    .copies_input = false,
    .start = tw_start,
    .run = tw_run,
    .stop = tw_stop,
    .interrupt = NULL,
};
