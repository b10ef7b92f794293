/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * pipeline.c - a 3-stage buffered pipeline (each stage on its own thread), then the same
 * pipeline with a failing stage: the reader gets every item before the failure and then the
 * root error itself, with every thread already joined.
 *
 *   generate 1..20 -> buffer(2) -> square -> buffer(2) -> add 1 -> buffer(2) -> reader
 */
#include <fanout/fanout.h>

#include <stdint.h>
#include <stdio.h>

static int gen(void *ctx, void **item, uint64_t deadline)
{
	uintptr_t *i = ctx;
	(void)deadline;
	if (*i == 20)
		return FO_END;
	*item = (void *)++*i;
	return FO_OK;
}

static int square(void *ctx, void *in, void **out)
{
	uintptr_t v = (uintptr_t)in, fail_at = (uintptr_t)ctx;
	if (v == fail_at)
		return FO_ECANCELED - 100; /* an application error code */
	*out = (void *)(v * v);
	return FO_OK;
}

static int add1(void *ctx, void *in, void **out)
{
	(void)ctx;
	*out = (void *)((uintptr_t)in + 1);
	return FO_OK;
}

static void on_stage(void *ctx, size_t stage, const fo_progress *p)
{
	(void)ctx;
	(void)stage;
	(void)p; /* a real program would draw a bar per stage here */
}

static int run(uintptr_t fail_at)
{
	uintptr_t counter = 0;
	fo_pipeline_opts po;
	fo_pipeline_opts_init(&po);
	po.progress = on_stage;
	fo_pipeline *p;
	fo_iter *src, *s1, *m1, *s2, *m2, *out;
	fo_pipeline_create(&p, &po);
	fo_iter_from_fn(&src, gen, NULL, &counter, NULL, NULL);
	fo_pipeline_buffer(p, &s1, src, 2);
	fo_map(&m1, s1, square, (void *)fail_at, NULL);
	fo_pipeline_buffer(p, &s2, m1, 2);
	fo_map(&m2, s2, add1, NULL, NULL);
	fo_pipeline_buffer(p, &out, m2, 2);
	fo_pipeline_destroy(p); /* the stages keep the group alive */

	void *x;
	int rc, n = 0;
	printf("fail_at=%lu:", (unsigned long)fail_at);
	while ((rc = fo_iter_next(out, &x)) == FO_OK) {
		printf(" %lu", (unsigned long)(uintptr_t)x);
		n++;
	}
	if (rc == FO_FAILED)
		printf("\n  then FO_FAILED: code %d (%s) - the root error, after %d items\n",
		       fo_iter_error(out)->code, fo_iter_error(out)->message, n);
	else
		printf("\n  then FO_END after %d items\n", n);
	int code = rc == FO_FAILED ? fo_iter_error(out)->code : 0;
	fo_iter_close(out);
	if (fail_at)
		return rc == FO_FAILED && code == FO_ECANCELED - 100 && n == (int)fail_at - 1 ? 0
		                                                                              : 1;
	return rc == FO_END && n == 20 ? 0 : 1;
}

int main(void)
{
	return run(0) | run(7);
}
