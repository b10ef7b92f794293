/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * bridge_test.h - helpers of the bridge tests (header only): 8-byte sequence
 * items, a producer thread, a fault thread (e.g. server restarts), an
 * in-order reader, refused and mute ports.
 */
#ifndef FANOUT_BRIDGE_TEST_H
#define FANOUT_BRIDGE_TEST_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fanout/fanout.h>

#include "fo_test.h"

/* Skip the test unless servers.sh exported @var (e.g. "FO_REDIS_URL"). */
#define NEED_ENV(var)                                                        \
	do {                                                                 \
		if (!getenv(var)) {                                          \
			print_message(var " unset: run under servers.sh\n"); \
			skip();                                              \
		}                                                            \
	} while (0)

static inline void seq_free(void *item, void *ctx)
{
	(void)ctx;
	free(item);
}

static inline uint64_t *seq_new(uint64_t v)
{
	uint64_t *p = malloc(sizeof(*p));
	*p = v;
	return p;
}

/* A stream of sequence items (capacity @capacity, 0: the default) with one
 * active cursor in *@c. */
static inline fo_stream *seq_stream(fo_cursor **c, size_t capacity)
{
	fo_stream_opts so;
	fo_stream_opts_init(&so);
	if (capacity)
		so.capacity = capacity;
	so.item_free = seq_free;
	fo_stream *s;
	assert_int_equal(fo_stream_create(&s, &so), FO_OK);
	assert_int_equal(fo_stream_cursor(s, c, FO_ACTIVE), FO_OK);
	return s;
}

/* ------------------------------------------------------------------------ */
/* A producer thread: pushes 0..n-1, then closes the stream. */

struct producer {
	fo_stream *s;
	uint64_t n;
	unsigned pause_every; /* sleep 1 ms every this many items (0: never) */
	pthread_t t;
};

static inline void *producer_main(void *arg)
{
	struct producer *p = arg;
	for (uint64_t i = 0; i < p->n; i++) {
		uint64_t *x = seq_new(i);
		if (fo_stream_push(p->s, x) != FO_OK) {
			free(x);
			break;
		}
		if (p->pause_every && i % p->pause_every == 0)
			ft_sleep_ms(1);
	}
	fo_stream_close(p->s);
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* Faults while items flow. */

/* Crash @engine's server ("redis", "nats": SIGKILL) and start it again 0.3 s
 * later on the same port and data directory: servers.sh <engine>-restart,
 * which servers.sh run exported as FO_SERVERS_SH.  A failed restart is
 * reported; the flow under test then fails on its own. */
static inline void server_restart(const char *engine)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "bash '%s' %s-restart kill 0.3", getenv("FO_SERVERS_SH"),
	         engine);
	int rc = system(cmd);
	if (rc != 0)
		fprintf(stderr, "%s restart failed: %d\n", engine, rc);
}

/* A thread that runs @fn @times times, @every_ms before each. */
struct fault {
	void (*fn)(void);
	int times;
	unsigned every_ms;
	pthread_t t;
};

static inline void *fault_main(void *arg)
{
	struct fault *f = arg;
	for (int i = 0; i < f->times; i++) {
		ft_sleep_ms(f->every_ms);
		f->fn();
	}
	return NULL;
}

/* Start @f's thread; NULL: no fault. */
static inline void fault_start(struct fault *f)
{
	if (f)
		assert_int_equal(pthread_create(&f->t, NULL, fault_main, f), 0);
}

/* Wait for @f's thread to finish its faults; NULL: nothing. */
static inline void fault_join(struct fault *f)
{
	if (f)
		pthread_join(f->t, NULL);
}

/* Read @n sequence numbers from @it: every one once, in order.  Returns the
 * count read (the checks run on this, the main, thread). */
static inline void read_in_order(fo_iter *it, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		void *item = NULL;
		int rc = fo_iter_timed_next(it, &item, 60 * 1000000000ll);
		if (rc != FO_OK) {
			const fo_error *e = fo_iter_error(it);
			fail_msg("read %llu: %s (%s)", (unsigned long long)i, fo_status_name(rc),
			         e ? e->message : "");
		}
		uint64_t v = *(uint64_t *)item;
		if (v != i)
			fail_msg("expected %llu, got %llu", (unsigned long long)i,
			         (unsigned long long)v);
	}
}

/* A port that refuses connections: bound then closed. */
static inline int refused_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	socklen_t len = sizeof(a);
	getsockname(fd, (struct sockaddr *)&a, &len);
	close(fd);
	return ntohs(a.sin_port);
}

/* A server that accepts (the kernel's backlog) and never answers. */
static inline int mute_server(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 16), 0);
	socklen_t len = sizeof(a);
	getsockname(fd, (struct sockaddr *)&a, &len);
	*port = ntohs(a.sin_port);
	return fd;
}

#endif /* FANOUT_BRIDGE_TEST_H */
