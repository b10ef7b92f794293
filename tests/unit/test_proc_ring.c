/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * test_proc_ring.c - the shared-memory rings between a parent and its child
 * (src/proc.c, design.md §13 "Rings"), driven directly: frames cross both
 * ways, and a child that scribbles on its ring indices or frames is caught
 * by the parent's checks (FO_EINVAL), never read out of bounds.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../src/proc.h"
#include "fo_test.h"

static struct fo__shm *shm_new(void)
{
	struct fo__shm *s =
	    mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(s != MAP_FAILED);
	fo__shm_reset(s);
	return s;
}

/* What the child does (it reads this from its copy of our memory). */
static enum { ECHO, BAD_TAIL, BAD_HEADER, BAD_BELL } mode;
static struct fo__shm *ring;

/* The child: echo every ITEM frame back as OK until STOP, or misbehave. */
static int child_main(void *arg, int fd)
{
	(void)arg;
	struct fo__cend e = {.fd = fd, .shm = ring};
	struct fo__tx tx = {0};
	struct fo__rx rx = {0};
	if (mode == BAD_TAIL) {
		/* relaxed: a hostile child; the parent must not trust it. */
		atomic_store_explicit(&ring->up.tail, (uint64_t)1 << 40, memory_order_relaxed);
		if (write(fd, "", 1) != 1) /* the doorbell, whether the parent sleeps or not */
			return 1;
		pause();
		return 0;
	}
	if (mode == BAD_BELL) {
		/* relaxed: a hostile child scribbles on its doorbell word (bit 0 up
		 * while it runs, a wild generation), then echoes as usual. */
		atomic_store_explicit(&ring->cbell, 0xffffffffu, memory_order_relaxed);
		mode = ECHO;
	}
	if (mode == BAD_HEADER) {
		uint32_t hdr[2] = {1000, 99}; /* an unknown type (its payload never comes) */
		fo__tx_frame(&tx, FO__F_OK, NULL, 0);
		memcpy(tx.data, hdr, sizeof(hdr));
		fo__cend_flush(&e, &tx);
		pause();
		return 0;
	}
	for (;;) {
		uint32_t type, len;
		const unsigned char *data;
		int f = fo__rx_frame(&rx, &type, &data, &len);
		if (f == 0) {
			if (fo__cend_fill(&e, &rx) != FO_OK)
				return 1;
			continue;
		}
		if (f < 0 || type != FO__F_ITEM)
			break;
		if (fo__tx_frame(&tx, FO__F_OK, data, len) != FO_OK ||
		    fo__cend_flush(&e, &tx) != FO_OK)
			return 1;
	}
	fo__tx_fini(&tx);
	fo__rx_fini(&rx);
	return 0;
}

static void spawn(struct fo__child *c)
{
	assert_int_equal(fo__child_spawn(c, child_main, NULL), FO_OK);
	c->shm = ring;
}

/* The next frame back from the echoing child: an OK frame; its length. */
static uint32_t next_ok(struct fo__child *c, struct fo__tx *tx, struct fo__rx *rx,
                        const unsigned char **data)
{
	uint32_t type = 0, len = 0;
	int f;
	while ((f = fo__rx_frame(rx, &type, data, &len)) == 0)
		assert_int_equal(fo__child_pump(c, tx, rx, true), FO_OK);
	assert_int_equal(f, 1);
	assert_int_equal(type, FO__F_OK);
	return len;
}

/* STOP the echoing child; it exits with status 0. */
static void stop_clean(struct fo__child *c, struct fo__tx *tx, struct fo__rx *rx)
{
	assert_int_equal(fo__tx_frame(tx, FO__F_STOP, NULL, 0), FO_OK);
	assert_int_equal(fo__child_io(c, tx, rx, false), FO_OK);
	struct fo__exit e;
	fo__child_reap(c, &e);
	assert_true(e.known && !e.signal);
	assert_int_equal(e.value, 0);
	fo__tx_fini(tx);
	fo__rx_fini(rx);
	munmap(ring, sizeof(*ring));
}

/* Frames of 1 byte to 3x the ring size cross both ways, several in flight. */
static void test_ring_frames_cross_both_ways_intact(void **state)
{
	(void)state;
	ring = shm_new();
	mode = ECHO;
	struct fo__child c;
	spawn(&c);
	struct fo__tx tx = {0};
	struct fo__rx rx = {0};
	size_t sizes[] = {1, 100, FO__RING_BYTES - 8, FO__RING_BYTES, 3 * FO__RING_BYTES + 5, 64};
	size_t n = sizeof(sizes) / sizeof(sizes[0]);
	unsigned char *buf = malloc(3 * FO__RING_BYTES + 5);
	assert_non_null(buf);
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < sizes[i]; k++)
			buf[k] = (unsigned char)(k * 7 + i);
		assert_int_equal(fo__tx_frame(&tx, FO__F_ITEM, buf, sizes[i]), FO_OK);
	}
	for (size_t i = 0; i < n; i++) {
		const unsigned char *data = NULL;
		uint32_t len = next_ok(&c, &tx, &rx, &data);
		assert_int_equal(len, sizes[i]);
		for (size_t k = 0; k < len; k++)
			assert_int_equal(data[k], (unsigned char)(k * 7 + i));
	}
	free(buf);
	stop_clean(&c, &tx, &rx);
}

/* One frame at a time, many times: each round trip lets the child fall asleep
 * on its futex doorbell (cbell) and the parent's next frame wake it.  A lost
 * wake-up hangs here (the test's timeout); a child that scribbled on the
 * word first (BAD_BELL) costs spurious wake-ups only. */
static void round_trips(int how, int n)
{
	ring = shm_new();
	mode = how;
	struct fo__child c;
	spawn(&c);
	struct fo__tx tx = {0};
	struct fo__rx rx = {0};
	for (int i = 0; i < n; i++) {
		assert_int_equal(fo__tx_frame(&tx, FO__F_ITEM, &i, sizeof(i)), FO_OK);
		const unsigned char *data = NULL;
		assert_int_equal(next_ok(&c, &tx, &rx, &data), sizeof(i));
		int back;
		memcpy(&back, data, sizeof(back));
		assert_int_equal(back, i);
	}
	stop_clean(&c, &tx, &rx);
}

static void test_ring_doorbell_wakes_every_sleep(void **state)
{
	(void)state;
	round_trips(ECHO, 20000);
}

static void test_ring_scribbled_doorbell_only_costs_spurious_wakeups(void **state)
{
	(void)state;
	round_trips(BAD_BELL, 2000);
}

/* A child that publishes an impossible tail: the parent reports FO_EINVAL. */
static void test_ring_bad_index_from_the_child_is_einval(void **state)
{
	(void)state;
	ring = shm_new();
	mode = BAD_TAIL;
	struct fo__child c;
	spawn(&c);
	struct fo__tx tx = {0};
	struct fo__rx rx = {0};
	/* It may not have scribbled yet: the pump sleeps until its doorbell. */
	assert_int_equal(fo__child_pump(&c, &tx, &rx, true), FO_EINVAL);
	assert_int_equal(rx.len, 0); /* nothing was copied */
	fo__child_kill(&c, SIGKILL);
	struct fo__exit e;
	fo__child_reap(&c, &e);
	munmap(ring, sizeof(*ring));
}

/* A corrupt frame header in the ring is caught by the same parser as on the socket. */
static void test_ring_bad_frame_header_is_einval(void **state)
{
	(void)state;
	ring = shm_new();
	mode = BAD_HEADER;
	struct fo__child c;
	spawn(&c);
	struct fo__tx tx = {0};
	struct fo__rx rx = {0};
	assert_int_equal(fo__child_pump(&c, &tx, &rx, true), FO_OK);
	uint32_t type, len;
	const unsigned char *data;
	assert_int_equal(fo__rx_frame(&rx, &type, &data, &len), FO_EINVAL);
	fo__child_kill(&c, SIGKILL);
	struct fo__exit e;
	fo__child_reap(&c, &e);
	assert_true(e.known && e.signal);
	fo__rx_fini(&rx);
	munmap(ring, sizeof(*ring));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ring_frames_cross_both_ways_intact),
	    cmocka_unit_test(test_ring_bad_index_from_the_child_is_einval),
	    cmocka_unit_test(test_ring_bad_frame_header_is_einval),
	    cmocka_unit_test(test_ring_doorbell_wakes_every_sleep),
	    cmocka_unit_test(test_ring_scribbled_doorbell_only_costs_spurious_wakeups),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
