/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * test_imap.c - the lazy indexable map of fanout/pmap.h (fo_imap_*): length, on-demand get,
 * negative indices from the common end, out of range, no cache, re-iteration (sequential and
 * through fo_pmap), every return code; the SEMANTICS.md §8 "indexable lazy map" row (iterlib).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fo_test.h"

static atomic_int calls;
static atomic_int freed;

/* Sum of the two arguments (token values), as a token; fails when the sum is 13. */
static int add_fn(void *ctx, void *const *args, size_t nargs, void **out)
{
	(void)ctx;
	atomic_fetch_add(&calls, 1);
	uintptr_t sum = 0;
	for (size_t k = 0; k < nargs; k++)
		sum += (uintptr_t)args[k];
	if (sum == 13)
		return FO_ESYS;
	*out = (void *)sum;
	return FO_OK;
}

static void out_free(void *x, void *ctx)
{
	(void)x;
	(void)ctx;
	atomic_fetch_add(&freed, 1);
}

/* a = 1..5, b = 10, 20, ..., 100: len 5. */
static void *a[5] = {(void *)1, (void *)2, (void *)3, (void *)4, (void *)5};
static void *b[10] = {(void *)10, (void *)20, (void *)30, (void *)40, (void *)50,
                      (void *)60, (void *)70, (void *)80, (void *)90, (void *)100};

static fo_imap *make(void)
{
	void *const *arrays[2] = {a, b};
	size_t lens[2] = {5, 10};
	fo_imap *m;
	assert_int_equal(fo_imap_create(&m, add_fn, NULL, arrays, lens, 2, out_free, NULL), FO_OK);
	return m;
}

static void test_imap_einval(void **state)
{
	(void)state;
	void *const *arrays[2] = {a, NULL};
	size_t lens[2] = {5, 3};
	fo_imap *m;
	assert_int_equal(fo_imap_create(NULL, add_fn, NULL, arrays, lens, 1, NULL, NULL),
	                 FO_EINVAL);
	assert_int_equal(fo_imap_create(&m, NULL, NULL, arrays, lens, 1, NULL, NULL), FO_EINVAL);
	assert_int_equal(fo_imap_create(&m, add_fn, NULL, NULL, lens, 1, NULL, NULL), FO_EINVAL);
	assert_int_equal(fo_imap_create(&m, add_fn, NULL, arrays, NULL, 1, NULL, NULL), FO_EINVAL);
	assert_int_equal(fo_imap_create(&m, add_fn, NULL, arrays, lens, 0, NULL, NULL), FO_EINVAL);
	assert_int_equal(fo_imap_create(&m, add_fn, NULL, arrays, lens, 2, NULL, NULL), FO_EINVAL);
	lens[1] = 0; /* a NULL array of length 0 is fine: len 0 */
	assert_int_equal(fo_imap_create(&m, add_fn, NULL, arrays, lens, 2, NULL, NULL), FO_OK);
	assert_int_equal(fo_imap_len(m), 0);
	void *x;
	assert_int_equal(fo_imap_get(m, 0, &x), FO_EINVAL);
	assert_int_equal(fo_imap_get(m, -1, &x), FO_EINVAL);
	assert_int_equal(fo_imap_get(NULL, 0, &x), FO_EINVAL);
	assert_int_equal(fo_imap_get(m, 0, NULL), FO_EINVAL);
	fo_iter *it;
	assert_int_equal(fo_imap_iter(NULL, &it, NULL), FO_EINVAL);
	assert_int_equal(fo_imap_iter(m, NULL, NULL), FO_EINVAL);
	assert_int_equal(fo_imap_iter(m, &it, NULL), FO_OK);
	assert_int_equal(fo_iter_next(it, &x), FO_END);
	fo_iter_close(it);
	fo_pmap_opts o;
	fo_pmap_opts_init(&o);
	o.workers = 0;
	assert_int_equal(fo_imap_iter(m, &it, &o), FO_EINVAL);
	fo_imap_destroy(m);
	fo_imap_destroy(NULL);
	assert_int_equal(fo_imap_len(NULL), 0);
}

static void test_iterlib_indexed_map_len_is_shortest_and_get_computes_on_demand(void **state)
{
	(void)state;
	atomic_store(&calls, 0);
	fo_imap *m = make();
	assert_int_equal(fo_imap_len(m), 5);
	assert_int_equal(atomic_load(&calls), 0); /* lazy */
	void *x;
	assert_int_equal(fo_imap_get(m, 2, &x), FO_OK);
	assert_int_equal((uintptr_t)x, 33);
	assert_int_equal(atomic_load(&calls), 1);
	fo_imap_destroy(m);
}

static void test_iterlib_negative_index_with_unequal_lengths_uses_common_end(void **state)
{
	(void)state;
	fo_imap *m = make();
	void *x, *last = NULL;
	assert_int_equal(fo_imap_get(m, -1, &x), FO_OK);
	assert_int_equal((uintptr_t)x, 5 + 50); /* iterlib gave 5 + 100 (each from its own end) */
	fo_iter *it;
	assert_int_equal(fo_imap_iter(m, &it, NULL), FO_OK);
	while (fo_iter_next(it, &last) == FO_OK)
		;
	fo_iter_close(it);
	assert_ptr_equal(last, x); /* m[-1] is the last item an iteration returns */
	assert_int_equal(fo_imap_get(m, -5, &x), FO_OK);
	assert_int_equal((uintptr_t)x, 11);
	fo_imap_destroy(m);
}

static void test_iterlib_out_of_range_is_einval(void **state)
{
	(void)state;
	fo_imap *m = make();
	void *x = (void *)7;
	atomic_store(&calls, 0);
	assert_int_equal(fo_imap_get(m, 5, &x), FO_EINVAL);
	assert_int_equal(fo_imap_get(m, -6, &x), FO_EINVAL);
	assert_int_equal(fo_imap_get(m, INT64_MIN, &x), FO_EINVAL);
	assert_int_equal(fo_imap_get(m, INT64_MAX, &x), FO_EINVAL);
	assert_int_equal((uintptr_t)x, 7);        /* untouched */
	assert_int_equal(atomic_load(&calls), 0); /* nothing computed */
	fo_imap_destroy(m);
}

static void test_iterlib_repeated_get_recomputes_no_cache(void **state)
{
	(void)state;
	fo_imap *m = make();
	atomic_store(&calls, 0);
	void *x;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(fo_imap_get(m, 1, &x), FO_OK);
		assert_int_equal((uintptr_t)x, 22);
	}
	assert_int_equal(atomic_load(&calls), 3);
	fo_imap_destroy(m);
}

static void test_imap_fn_error_is_returned(void **state)
{
	(void)state;
	void *c[2] = {(void *)3, (void *)10};
	void *const *arrays[1] = {c};
	size_t lens[1] = {2};
	fo_imap *m;
	assert_int_equal(fo_imap_create(&m, add_fn, NULL, arrays, lens, 1, NULL, NULL), FO_OK);
	void *x;
	assert_int_equal(fo_imap_get(m, 0, &x), FO_OK);
	fo_imap_destroy(m);
	void *d[3] = {(void *)1, (void *)13, (void *)2};
	arrays[0] = d;
	lens[0] = 3;
	assert_int_equal(fo_imap_create(&m, add_fn, NULL, arrays, lens, 1, NULL, NULL), FO_OK);
	assert_int_equal(fo_imap_get(m, 1, &x), FO_ESYS);
	fo_iter *it;
	assert_int_equal(fo_imap_iter(m, &it, NULL), FO_OK);
	assert_int_equal(fo_iter_next(it, &x), FO_OK);
	assert_int_equal(fo_iter_next(it, &x), FO_FAILED); /* at the failing index */
	assert_int_equal(fo_iter_error(it)->code, FO_ESYS);
	fo_iter_close(it);
	fo_imap_destroy(m);
}

static void test_iterlib_indexed_map_is_re_iterable_sequential_and_parallel(void **state)
{
	(void)state;
	fo_imap *m = make();
	fo_pmap_opts o;
	fo_pmap_opts_init(&o);
	o.workers = 3;
	o.per_worker_buffer = 7; /* honoured (iterlib hard-codes 16) */
	for (int round = 0; round < 4; round++) {
		fo_iter *it;
		atomic_store(&freed, 0);
		assert_int_equal(fo_imap_iter(m, &it, round % 2 ? &o : NULL), FO_OK);
		void *x;
		for (size_t i = 0; i < 5; i++) {
			assert_int_equal(fo_iter_next(it, &x), FO_OK);
			assert_int_equal((uintptr_t)x, (i + 1) * 11);
			fo_iter_release(it, x);
		}
		assert_int_equal(fo_iter_next(it, &x), FO_END);
		fo_iter_close(it);
		assert_int_equal(atomic_load(&freed), 5);
	}
	fo_imap_destroy(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_imap_einval),
	    cmocka_unit_test(test_iterlib_indexed_map_len_is_shortest_and_get_computes_on_demand),
	    cmocka_unit_test(test_iterlib_negative_index_with_unequal_lengths_uses_common_end),
	    cmocka_unit_test(test_iterlib_out_of_range_is_einval),
	    cmocka_unit_test(test_iterlib_repeated_get_recomputes_no_cache),
	    cmocka_unit_test(test_imap_fn_error_is_returned),
	    cmocka_unit_test(test_iterlib_indexed_map_is_re_iterable_sequential_and_parallel),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
