/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * test_codec.c - fanout/codec.h: fo_buf, the built-in codecs, round trips, bad bytes and
 * allocation failures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fo_test.h"

struct pt {
	uint64_t seq;
	int32_t x, y;
};

static void test_buf_grows_and_keeps_bytes(void **state)
{
	(void)state;
	fo_buf b;
	fo_buf_init(&b);
	assert_null(b.data);
	for (int i = 0; i < 10000; i++) {
		unsigned char c = (unsigned char)i;
		assert_int_equal(fo_buf_append(&b, &c, 1), FO_OK);
	}
	assert_int_equal(b.len, 10000);
	assert_true(b.cap >= b.len);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(b.data[i], (unsigned char)i);
	fo_buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_int_equal(fo_buf_append(&b, NULL, 0), FO_OK);
	fo_buf_fini(&b);
	assert_null(b.data);
	assert_int_equal(b.cap, 0);
	fo_buf_fini(NULL);
	fo_buf_reset(NULL);
}

static void test_buf_bad_arguments(void **state)
{
	(void)state;
	fo_buf b = {0};
	assert_int_equal(fo_buf_append(NULL, "x", 1), FO_EINVAL);
	assert_int_equal(fo_buf_append(&b, NULL, 1), FO_EINVAL);
	assert_int_equal(fo_buf_reserve(NULL, 1), FO_EINVAL);
	assert_int_equal(fo_buf_reserve(&b, SIZE_MAX), FO_EINVAL);
	assert_int_equal(b.len, 0);
	fo_buf_fini(&b);
}

static void test_bytes_round_trip(void **state)
{
	(void)state;
	fo_codec c = fo_codec_bytes();
	const unsigned char raw[] = {0, 1, 2, 0, 255, 'a'};
	fo_bytes *in, *out = NULL;
	fo_buf b = {0};
	assert_int_equal(fo_bytes_new(&in, raw, sizeof(raw)), FO_OK);
	assert_int_equal(fo_codec_encode(&c, in, &b), FO_OK);
	assert_int_equal(b.len, sizeof(raw));
	assert_int_equal(fo_codec_decode(&c, b.data, b.len, (void **)&out), FO_OK);
	assert_int_equal(out->len, sizeof(raw));
	assert_memory_equal(out->data, raw, sizeof(raw));
	fo_codec_free_item(&c, out);
	/* the empty byte string */
	assert_int_equal(fo_codec_decode(&c, NULL, 0, (void **)&out), FO_OK);
	assert_int_equal(out->len, 0);
	fo_codec_free_item(&c, out);
	fo_bytes_free(in);
	fo_bytes_free(NULL);
	fo_buf_fini(&b);
}

static void test_cstr_round_trip_and_embedded_nul(void **state)
{
	(void)state;
	fo_codec c = fo_codec_cstr();
	fo_buf b = {0};
	char *s = NULL;
	assert_int_equal(fo_codec_encode(&c, "héllo wörld", &b), FO_OK);
	assert_int_equal(fo_codec_decode(&c, b.data, b.len, (void **)&s), FO_OK);
	assert_string_equal(s, "héllo wörld");
	fo_codec_free_item(&c, s);
	assert_int_equal(fo_codec_decode(&c, "", 0, (void **)&s), FO_OK);
	assert_string_equal(s, "");
	fo_codec_free_item(&c, s);
	s = (char *)0x1;
	assert_int_equal(fo_codec_decode(&c, "ab\0cd", 5, (void **)&s), FO_EINVAL);
	assert_null(s);
	fo_buf_fini(&b);
}

static void test_pod_round_trip_and_wrong_length(void **state)
{
	(void)state;
	fo_codec c = fo_codec_pod(sizeof(struct pt));
	struct pt p = {.seq = 42, .x = -1, .y = 7}, *q = NULL;
	fo_buf b = {0};
	assert_int_equal(fo_codec_encode(&c, &p, &b), FO_OK);
	assert_int_equal(b.len, sizeof(p));
	assert_int_equal(fo_codec_decode(&c, b.data, b.len, (void **)&q), FO_OK);
	assert_memory_equal(q, &p, sizeof(p));
	fo_codec_free_item(&c, q);
	/* truncated and overlong input: refused, and nothing is read past len */
	for (size_t len = 0; len < 2 * sizeof(p); len++) {
		if (len == sizeof(p))
			continue;
		unsigned char *exact = malloc(len ? len : 1); /* ASan sees any read past len */
		memset(exact, 0xab, len);
		assert_int_equal(fo_codec_decode(&c, exact, len, (void **)&q), FO_EINVAL);
		assert_null(q);
		free(exact);
	}
	fo_codec z = fo_codec_pod(0);
	assert_int_equal(fo_codec_encode(&z, &p, &b), FO_EINVAL);
	assert_int_equal(b.len, sizeof(p)); /* a failed encode leaves nothing behind */
	assert_int_equal(fo_codec_decode(&z, b.data, 0, (void **)&q), FO_EINVAL);
	fo_buf_fini(&b);
}

static void test_codec_wrappers_refuse_bad_arguments(void **state)
{
	(void)state;
	fo_codec c = fo_codec_cstr(), none = {0};
	fo_buf b = {0};
	void *it = (void *)0x1;
	assert_int_equal(fo_codec_encode(NULL, "x", &b), FO_EINVAL);
	assert_int_equal(fo_codec_encode(&none, "x", &b), FO_EINVAL);
	assert_int_equal(fo_codec_encode(&c, NULL, &b), FO_EINVAL);
	assert_int_equal(fo_codec_encode(&c, "x", NULL), FO_EINVAL);
	assert_int_equal(fo_codec_decode(NULL, "x", 1, &it), FO_EINVAL);
	assert_null(it);
	assert_int_equal(fo_codec_decode(&none, "x", 1, &it), FO_EINVAL);
	assert_int_equal(fo_codec_decode(&c, NULL, 1, &it), FO_EINVAL);
	assert_int_equal(fo_codec_decode(&c, "x", 1, NULL), FO_EINVAL);
	fo_codec_free_item(NULL, "x");
	fo_codec_free_item(&c, NULL);
	assert_int_equal(b.len, 0);
	fo_buf_fini(&b);
}

/* A user codec's error (with an fo_fail message) comes back unchanged; the buffer is rolled back.
 */
static int failing_encode(void *ctx, const void *item, fo_buf *out)
{
	(void)ctx;
	fo_buf_append(out, item, 3); /* partial output, then a failure */
	return fo_fail(FO_USER(9), "cannot encode %s", (const char *)item);
}

static void test_user_codec_error_rolls_back(void **state)
{
	(void)state;
	fo_codec c = {.encode = failing_encode};
	fo_buf b = {0};
	assert_int_equal(fo_buf_append(&b, "ab", 2), FO_OK);
	assert_int_equal(fo_codec_encode(&c, "xyz", &b), FO_USER(9));
	assert_int_equal(b.len, 2);
	fo_buf_fini(&b);
}

/* Every allocation failure is FO_ENOMEM with nothing changed and nothing leaked. */
static void test_allocation_failures(void **state)
{
	(void)state;
	ft_failalloc fa;
	ft_failalloc_init(&fa);
	ft_failalloc_install(&fa);
	fo_codec cs = fo_codec_cstr(), by = fo_codec_bytes(), pod = fo_codec_pod(16);
	fo_buf b = {0};
	void *it = (void *)0x1;

	ft_failalloc_arm(&fa, 1);
	assert_int_equal(fo_buf_append(&b, "abc", 3), FO_ENOMEM);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	ft_failalloc_arm(&fa, 1);
	assert_int_equal(fo_codec_decode(&cs, "abc", 3, &it), FO_ENOMEM);
	assert_null(it);
	ft_failalloc_arm(&fa, 1);
	assert_int_equal(fo_codec_decode(&by, "abc", 3, &it), FO_ENOMEM);
	ft_failalloc_arm(&fa, 1);
	assert_int_equal(fo_codec_decode(&pod, "0123456789abcdef", 16, &it), FO_ENOMEM);
	/* growth failure keeps the old contents */
	ft_failalloc_arm(&fa, 0);
	assert_int_equal(fo_buf_append(&b, "abc", 3), FO_OK);
	ft_failalloc_arm(&fa, 1);
	assert_int_equal(fo_buf_reserve(&b, 1000), FO_ENOMEM);
	assert_int_equal(b.len, 3);
	assert_memory_equal(b.data, "abc", 3);
	fo_buf_fini(&b);
	assert_int_equal(atomic_load(&fa.live), 0);
	fo_set_allocator(NULL);
}

/* Decoded items are 64-byte aligned with either allocator; a user allocator
 * sees every decoded item and gets each back from item_free; an item made
 * with the default allocator goes back to malloc even when a user allocator
 * was installed in between (fo__item_alloc, alloc.c). */
static void test_decoded_items_aligned_and_returned(void **state)
{
	(void)state;
	fo_codec cs = fo_codec_cstr(), by = fo_codec_bytes(), pod = fo_codec_pod(64);
	unsigned char raw[64];
	memset(raw, 'x', sizeof(raw));
	void *a[3], *b[3];
	for (int pass = 0; pass < 2; pass++) {
		ft_failalloc fa;
		if (pass == 1) {
			ft_failalloc_init(&fa);
			ft_failalloc_install(&fa);
			ft_failalloc_arm(&fa, 0);
		}
		void **v = pass ? b : a;
		assert_int_equal(fo_codec_decode(&cs, raw, 5, &v[0]), FO_OK);
		assert_int_equal(fo_codec_decode(&by, raw, 7, &v[1]), FO_OK);
		assert_int_equal(fo_codec_decode(&pod, raw, 64, &v[2]), FO_OK);
		for (int i = 0; i < 3; i++)
			assert_int_equal((uintptr_t)v[i] % 64, 0);
		assert_memory_equal(v[2], raw, 64);
		if (pass == 1) {
			assert_int_equal(atomic_load(&fa.live), 3);
			fo_codec_free_item(&cs, b[0]);
			fo_bytes_free(b[1]);
			fo_codec_free_item(&pod, b[2]);
			assert_int_equal(atomic_load(&fa.live), 0);
			fo_set_allocator(NULL);
		}
	}
	/* made by malloc while fa was not installed: freed with it installed */
	ft_failalloc fa2;
	ft_failalloc_init(&fa2);
	ft_failalloc_install(&fa2);
	fo_codec_free_item(&cs, a[0]);
	fo_bytes_free(a[1]);
	fo_codec_free_item(&pod, a[2]);
	assert_int_equal(atomic_load(&fa2.live), 0);
	fo_set_allocator(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_buf_grows_and_keeps_bytes),
	    cmocka_unit_test(test_buf_bad_arguments),
	    cmocka_unit_test(test_bytes_round_trip),
	    cmocka_unit_test(test_cstr_round_trip_and_embedded_nul),
	    cmocka_unit_test(test_pod_round_trip_and_wrong_length),
	    cmocka_unit_test(test_codec_wrappers_refuse_bad_arguments),
	    cmocka_unit_test(test_user_codec_error_rolls_back),
	    cmocka_unit_test(test_allocation_failures),
	    cmocka_unit_test(test_decoded_items_aligned_and_returned),
	};
	return cmocka_run_group_tests_name("codec", tests, NULL, NULL);
}
