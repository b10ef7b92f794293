/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * uv_subscriber.c - a libuv loop subscribes to a fanout stream through <fanout/uv.h>.
 *
 * A producer thread publishes N events in bursts with pauses between them (so the loop
 * really goes to sleep and is woken through the cursor's descriptor), then closes the
 * stream.  The loop thread watches two cursors:
 *   sub  an ACTIVE cursor: gets every event, in order, in batches;
 *   tap  a PASSIVE cursor: a tap that never slows the producer; here it is paused
 *        (fo_uv_watch_stop) for a while, so it may be lapped and report FO_LAGGED.
 * A uv timer prints progress once a second.  On FO_END each watch closes itself; the loop
 * ends when nothing is left.  Exit status 0 only if sub saw every event exactly once, in
 * order, and the tap's count plus what it skipped adds up.
 *
 *   usage: uv_subscriber [N]        (default 200000 events)
 * Build: needs libuv (libuv1-dev); examples/CMakeLists.txt links it when present.
 */
#include <fanout/fanout.h>
#include <fanout/uv.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <uv.h>

#define BURST 1000 /* events per burst, then a 200 us pause */

static fo_stream *stream;
static uint64_t nevents = 200000;

struct sub {
	fo_uv_watch w;
	const char *name;
	uint64_t next;    /* next expected event */
	uint64_t got;     /* events received */
	uint64_t batches; /* callbacks with items */
	uint64_t errors;
	int final; /* FO_END when done */
};

static struct sub sub = {.name = "sub"}, tap = {.name = "tap"};
static uv_timer_t ticker, resume_tap;

static void *produce(void *arg)
{
	(void)arg;
	for (uint64_t i = 0; i < nevents; i++) {
		/* Events are tokens: the sequence number + 1 (never NULL); nothing to free. */
		if (fo_stream_push(stream, (void *)(uintptr_t)(i + 1)) != FO_OK)
			abort();
		if (i % BURST == BURST - 1) {
			struct timespec ts = {0, 200000};
			nanosleep(&ts, NULL);
		}
	}
	fo_stream_close(stream);
	return NULL;
}

static void on_closed(fo_uv_watch *w)
{
	(void)w; /* static storage: nothing to free */
}

static void on_events(fo_uv_watch *w, int status, void **items, size_t n)
{
	struct sub *s = w->data;
	if (status == FO_OK) {
		s->batches++;
		for (size_t i = 0; i < n; i++) {
			uint64_t seq = (uint64_t)(uintptr_t)items[i] - 1;
			/* In order with no gap, except right after FO_LAGGED (tap only). */
			if (s->next != UINT64_MAX && seq != s->next)
				s->errors++;
			s->next = seq + 1;
			s->got++;
		}
		return;
	}
	if (status == FO_LAGGED) {
		s->next = UINT64_MAX; /* resynchronise on the next batch */
		return;
	}
	s->final = status; /* FO_END (or a failure): the watch has stopped */
	fo_uv_watch_close(w, on_closed);
	if (sub.final && tap.final) {
		uv_close((uv_handle_t *)&ticker, NULL);
		if (!uv_is_closing((uv_handle_t *)&resume_tap))
			uv_close((uv_handle_t *)&resume_tap, NULL);
	}
}

static void on_tick(uv_timer_t *t)
{
	(void)t;
	printf("uv_subscriber: sub %" PRIu64 " events in %" PRIu64 " batches, tap %" PRIu64
	       " (skipped %" PRIu64 ")\n",
	       sub.got, sub.batches, tap.got, fo_cursor_lagged(fo_uv_watch_cursor(&tap.w)));
	fflush(stdout);
}

static void on_resume_tap(uv_timer_t *t)
{
	fo_uv_watch_start(&tap.w, on_events); /* reads what it kept, then the rest */
	uv_close((uv_handle_t *)t, NULL);
}

int main(int argc, char **argv)
{
	if (argc > 1)
		nevents = strtoull(argv[1], NULL, 10);
	uv_loop_t *loop = uv_default_loop();
	fo_cursor *csub, *ctap;
	pthread_t producer;

	fo_stream_create(&stream, NULL); /* unbounded, no destructor (token events) */
	fo_stream_cursor(stream, &csub, FO_ACTIVE);
	fo_cursor_fork(csub, &ctap, FO_PASSIVE);

	if (fo_uv_watch_init(loop, &sub.w, csub) != FO_OK ||
	    fo_uv_watch_init(loop, &tap.w, ctap) != FO_OK) {
		fprintf(stderr, "uv_subscriber: cannot watch the cursors\n");
		return 1;
	}
	sub.w.data = &sub;
	tap.w.data = &tap;
	fo_uv_watch_start(&sub.w, on_events);
	/* The tap starts paused and resumes after 30 ms: it may have been lapped by then. */
	uv_timer_init(loop, &resume_tap);
	uv_timer_start(&resume_tap, on_resume_tap, 30, 0);
	uv_timer_init(loop, &ticker);
	uv_timer_start(&ticker, on_tick, 1000, 1000);

	if (pthread_create(&producer, NULL, produce, NULL) != 0)
		return 1;
	uv_run(loop, UV_RUN_DEFAULT);
	pthread_join(producer, NULL);

	uint64_t lagged = fo_cursor_lagged(ctap);
	printf("uv_subscriber: sub got %" PRIu64 "/%" PRIu64 " events in %" PRIu64
	       " batches (%.1f per batch), tap got %" PRIu64 " + skipped %" PRIu64 "\n",
	       sub.got, nevents, sub.batches, sub.batches ? (double)sub.got / sub.batches : 0.0,
	       tap.got, lagged);
	int ok = sub.got == nevents && sub.errors == 0 && sub.final == FO_END &&
	         tap.final == FO_END && tap.errors == 0 && tap.got + lagged == nevents;

	fo_cursor_close(csub); /* the watches are closed: the descriptors are out of the loop */
	fo_cursor_close(ctap);
	fo_stream_destroy(stream);
	uv_loop_close(loop);
	printf("uv_subscriber: %s\n", ok ? "OK" : "FAILED");
	return ok ? 0 : 1;
}
