/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * event_bus.c - an in-process event bus on one fanout stream.
 *
 * main() publishes events into one bounded stream for a few seconds, read by:
 *   3 subscribers  ACTIVE cursors: each sees every event, in order.  The
 *                  stream's capacity makes the producer wait for the slowest.
 *   3 workers      a share group (FO_SHARED): each event goes to exactly one
 *                  worker; the group counts as one consumer.
 *   1 tap          a PASSIVE cursor: a slow stats reader that never holds the
 *                  producer back; when lapped it skips ahead (FO_LAGGED).
 * Then main closes the stream, everyone reads to FO_END, and main checks the
 * counts: exit status 0 only if every check holds.
 *
 *   usage: event_bus [--seconds N]      (default 3)
 */
#include <fanout/fanout.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CAPACITY   4096 /* the producer may run at most this far ahead */
#define BATCH      64   /* events per fo_cursor_next_many() */
#define NSUBS      3
#define NWORKERS   3
#define NREADERS   (NSUBS + NWORKERS + 1) /* + the tap */
#define MAX_EVENTS (1u << 28)             /* size of the workers' exactly-once bitmap */

struct event {
	uint64_t seq;   /* 0, 1, 2, ... */
	uint64_t ts_ns; /* CLOCK_MONOTONIC when published */
};

struct reader { /* one per thread; main reads it after the join */
	pthread_t thread;
	fo_cursor *cursor;
	uint64_t count;  /* events taken */
	uint64_t errors; /* events out of order, or an unexpected status */
};

static fo_stream *bus;
static _Atomic uint64_t *taken; /* one bit per event, set by the worker that took it */
static atomic_uint_fast64_t duplicates, freed;

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* The stream calls this exactly once per event, when no cursor can return it
 * any more, on whichever thread let go of it last. */
static void event_free(void *item, void *ctx)
{
	(void)ctx;
	atomic_fetch_add_explicit(&freed, 1, memory_order_relaxed);
	free(item);
}

/* Take up to BATCH ready events at once.  If none is ready, wait for one:
 * at most timeout_ns, or for as long as it takes if timeout_ns < 0. */
static int next_batch(fo_cursor *c, void **items, size_t *n, int64_t timeout_ns)
{
	int rc = fo_cursor_next_many(c, items, BATCH, n);
	if (rc == FO_EMPTY) { /* these spin briefly, then sleep */
		rc = timeout_ns < 0 ? fo_cursor_next(c, &items[0])
		                    : fo_cursor_timed_next(c, &items[0], timeout_ns);
		*n = rc == FO_OK;
	}
	return rc;
}

/* A subscriber sees every event: seq must go 0, 1, 2, ... without a gap. */
static void *subscriber(void *arg)
{
	struct reader *r = arg;
	void *items[BATCH];
	size_t n;
	int rc;

	while ((rc = next_batch(r->cursor, items, &n, -1)) == FO_OK)
		for (size_t i = 0; i < n; i++)
			r->errors += ((struct event *)items[i])->seq != r->count++;
	r->errors += rc != FO_END;
	return NULL;
}

/* A worker gets a share of the events and marks each in the bitmap; a bit
 * that was already set means an event was handed out twice. */
static void *worker(void *arg)
{
	struct reader *r = arg;
	void *items[BATCH];
	size_t n;
	int rc;

	while ((rc = next_batch(r->cursor, items, &n, -1)) == FO_OK) {
		for (size_t i = 0; i < n; i++) {
			uint64_t seq = ((struct event *)items[i])->seq, bit = 1ull << (seq % 64);
			/* relaxed: main reads the bitmap only after joining us */
			uint64_t was =
			    atomic_fetch_or_explicit(&taken[seq / 64], bit, memory_order_relaxed);
			if (was & bit) /* already set: handed out twice */
				atomic_fetch_add(&duplicates, 1);
		}
		r->count += n;
	}
	r->errors += rc != FO_END;
	return NULL;
}

/* The tap naps after every batch, so it falls behind and gets lapped.  Once a
 * second it prints its rate, what it skipped, and the stream's memory. */
static void *tap(void *arg)
{
	struct reader *r = arg;
	void *items[BATCH];
	size_t n;
	uint64_t next_seq = 0, seen = 0, age_ns = 0, report_at = now_ns() + 1000000000u;
	int rc;

	/* Wake at least every 100 ms, even when idle, to keep reporting. */
	while ((rc = next_batch(r->cursor, items, &n, 100000000)) != FO_END) {
		if (rc == FO_OK) {
			for (size_t i = 0; i < n; i++) {
				const struct event *ev = items[i];
				r->errors += ev->seq < next_seq; /* it may skip, never go back */
				next_seq = ev->seq + 1;
				age_ns = now_ns() - ev->ts_ns;
			}
			r->count += n;
			seen += n;
			nanosleep(&(struct timespec){.tv_nsec = 20000}, NULL);
		} else if (rc != FO_LAGGED && rc != FO_TIMEDOUT) { /* LAGGED: read on */
			r->errors++;
			break;
		}
		if (now_ns() >= report_at) {
			fo_stream_stats st;
			fo_stream_get_stats(bus, &st);
			printf("tap: %8" PRIu64 " events/s seen (newest %5.2f ms old), %9" PRIu64
			       " skipped | stream: %3zu live segments, %5zu items retained\n",
			       seen, age_ns / 1e6, fo_cursor_lagged(r->cursor), st.live_segments,
			       st.retained_items);
			seen = 0;
			report_at += 1000000000u;
		}
	}
	return NULL;
}

static int check(int good, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("%-8s ", good ? "  ok" : "FAILED");
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	return good;
}

int main(int argc, char **argv)
{
	int seconds = 3;
	if (argc == 3 && !strcmp(argv[1], "--seconds"))
		seconds = atoi(argv[2]);
	else if (argc != 1)
		seconds = 0;
	if (seconds < 1) {
		fprintf(stderr, "usage: %s [--seconds N]\n", argv[0]);
		return 2;
	}
	if (!(taken = calloc(MAX_EVENTS / 64, sizeof(*taken))))
		return 2;

	/* One bounded stream that owns its events: item_free frees them. */
	fo_stream_opts o;
	fo_stream_opts_init(&o);
	o.capacity = CAPACITY;
	o.item_free = event_free;
	if (fo_stream_create(&bus, &o) != FO_OK)
		return 2;

	/* Open every cursor before the first push: a cursor sees only the events
	 * pushed after it exists.  A fork is O(1) and starts where its parent is. */
	struct reader rd[NREADERS] = {0};
	struct reader *subs = rd, *workers = rd + NSUBS, *tapr = rd + NSUBS + NWORKERS;
	int rc = fo_stream_cursor(bus, &subs[0].cursor, FO_ACTIVE);
	for (int i = 1; i < NSUBS && rc == FO_OK; i++)
		rc = fo_cursor_fork(subs[0].cursor, &subs[i].cursor, FO_ACTIVE);
	if (rc == FO_OK) /* a share group of one, which each SHARED fork joins */
		rc = fo_stream_cursor(bus, &workers[0].cursor, FO_SHARED);
	for (int i = 1; i < NWORKERS && rc == FO_OK; i++)
		rc = fo_cursor_fork(workers[0].cursor, &workers[i].cursor, FO_SHARED);
	if (rc == FO_OK)
		rc = fo_stream_cursor(bus, &tapr->cursor, FO_PASSIVE);
	if (rc != FO_OK) {
		fprintf(stderr, "opening cursors: %s\n", fo_strerror(rc));
		return 2;
	}
	for (int i = 0; i < NSUBS; i++)
		pthread_create(&subs[i].thread, NULL, subscriber, &subs[i]);
	for (int i = 0; i < NWORKERS; i++)
		pthread_create(&workers[i].thread, NULL, worker, &workers[i]);
	pthread_create(&tapr->thread, NULL, tap, tapr);

	/* Publish.  fo_stream_push waits while the slowest active reader (a
	 * subscriber, or the worker group as a whole) is CAPACITY events behind;
	 * the tap never holds it back. */
	uint64_t published = 0, start = now_ns(),
	         deadline = start + (uint64_t)seconds * 1000000000u;
	for (uint64_t t; (t = now_ns()) < deadline && published < MAX_EVENTS; published++) {
		struct event *ev = malloc(sizeof(*ev));
		if (!ev)
			break;
		*ev = (struct event){.seq = published, .ts_ns = t};
		if (fo_stream_push(bus, ev) != FO_OK) {
			free(ev); /* a refused push leaves the event with us */
			break;
		}
	}
	double elapsed = (now_ns() - start) / 1e9;
	fo_stream_close(bus); /* readers get every event pushed, then FO_END */
	for (int i = 0; i < NREADERS; i++)
		pthread_join(rd[i].thread, NULL);

	/* Tally: every check prints one line. */
	uint64_t group = 0, marked = 0, errors = 0, skipped = fo_cursor_lagged(tapr->cursor);
	int ok = 1;
	printf("\npublished %" PRIu64 " events in %.1f s\n", published, elapsed);
	for (int i = 0; i < NSUBS; i++)
		ok &= check(subs[i].count == published && !subs[i].errors,
		            "subscriber %d: %" PRIu64 " events, all in order", i, subs[i].count);
	for (int i = 0; i < NWORKERS; i++) {
		printf("         worker %d: %" PRIu64 " events\n", i, workers[i].count);
		group += workers[i].count;
		errors += workers[i].errors;
	}
	for (uint64_t w = 0; w < (published + 63) / 64; w++)
		marked += (uint64_t)__builtin_popcountll(atomic_load(&taken[w]));
	ok &= check(group == published && marked == published && !duplicates && !errors,
	            "worker group: %" PRIu64 " events, each taken exactly once", group);
	ok &= check(tapr->count + skipped == published && !tapr->errors,
	            "tap: %" PRIu64 " seen + %" PRIu64 " skipped, never out of order", tapr->count,
	            skipped);

	/* Close every cursor and drop the stream: the last handle to go runs the
	 * remaining destructors, so every event has been freed when it returns. */
	for (int i = 0; i < NREADERS; i++)
		fo_cursor_close(rd[i].cursor);
	fo_stream_destroy(bus);
	ok &= check(freed == published, "item_free ran %" PRIu64 " times, once per event",
	            (uint64_t)freed);
	free(taken);
	printf("%s\n", ok ? "OK" : "FAILED");
	return ok ? 0 : 1;
}
