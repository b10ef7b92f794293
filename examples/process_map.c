/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * process_map.c - an ordered fo_pmap on worker PROCESSES that survives a worker crashing on a
 * poisoned input.
 *
 *   process_map [N]
 *
 * Squares the numbers 0 .. N-1 (default 200) in 2 child processes.  The number 13 is
 * "poisoned": the callback dereferences NULL on it, its worker dies with SIGSEGV, and the map
 * goes on: 13 comes out as an error item at its own place, naming the signal, while a fresh
 * worker (init again) computes the rest.  The number 42 fails politely with fo_fail(): its
 * message comes back across the process boundary.  Exit status 0 when every other number came
 * back squared, in order.
 */
#include <fanout/fanout.h>

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* The source: numbers 0 .. n-1 as heap int64_t items. */
typedef struct numbers {
	int64_t next, n;
} numbers;

static int next_number(void *ctx, void **item, uint64_t deadline)
{
	(void)deadline;
	numbers *s = ctx;
	if (s->next == s->n)
		return FO_END;
	int64_t *v = malloc(sizeof(*v));
	if (!v)
		return FO_ENOMEM;
	*v = s->next++;
	*item = v;
	return FO_OK;
}

static void number_free(void *item, void *ctx)
{
	(void)ctx;
	free(item);
}

/* Runs in the child, on a decoded copy of the input (from opts.in_codec). */
static int square(void *ctx, void *wstate, void *in, void **out)
{
	(void)ctx;
	(void)wstate;
	int64_t *v = in;
	if (*v == 13) {
		volatile int *poison = NULL;
		*poison = 1; /* SIGSEGV: only this worker process dies */
	}
	if (*v == 42)
		return fo_fail(FO_USER(42), "refusing %lld on principle", (long long)*v);
	*v = *v * *v;
	*out = v; /* the input becomes the output (fn owns it on FO_OK) */
	return FO_OK;
}

int main(int argc, char **argv)
{
	int64_t n = argc > 1 ? strtoll(argv[1], NULL, 10) : 200;
	/* Sanitizers would report the deliberate SIGSEGV in the child: fine, it still dies. */
	numbers src = {0, n};
	fo_iter *in, *out;
	if (fo_iter_from_fn(&in, next_number, NULL, &src, number_free, NULL) != FO_OK)
		return 1;

	fo_pmap_opts o;
	fo_pmap_opts_init(&o);
	o.backend = FO_PROCESSES;
	o.workers = 2;
	o.in_codec = fo_codec_pod(sizeof(int64_t));
	o.out_codec = fo_codec_pod(sizeof(int64_t));
	o.item_free = o.out_codec.item_free; /* fn's outputs, in the child */
	o.item_free_ctx = o.out_codec.ctx;
	o.on_error = FO_ERR_EMIT; /* a failed input becomes an error item at its place */
	if (fo_pmap(&out, in, square, &o) != FO_OK)
		return 1;

	int64_t expect = 0, bad = 0, errors = 0;
	void *item;
	int rc;
	while ((rc = fo_iter_next(out, &item)) == FO_OK) {
		if (fo_iter_is_error(out)) {
			fo_error_item *e = item;
			int64_t at = e->input ? *(int64_t *)e->input : -1;
			printf("input %lld failed (%s): %s\n", (long long)at,
			       fo_status_name(e->err.code), e->err.message);
			bad += at != expect || (at != 13 && at != 42);
			errors++;
			fo_error_item_free(e);
		} else {
			int64_t v = *(int64_t *)item;
			bad += v != expect * expect;
			fo_iter_release(out, item);
		}
		expect++;
	}
	fo_iter_close(out);
	printf("%lld results in order, %lld errors, %s\n", (long long)expect, (long long)errors,
	       rc == FO_END && bad == 0 && expect == n ? "ok" : "WRONG");
	return rc == FO_END && bad == 0 && expect == n && errors == (n > 42 ? 2 : n > 13) ? 0 : 1;
}
