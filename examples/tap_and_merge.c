/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * tap_and_merge.c - several sources joined into one flow, a passive tap counting what goes
 * by, and a gate pacing the consumer.  Runs in well under a second and checks its own counts.
 *
 *   sensor streams (3, each pushed by its own thread)
 *        \  \  \
 *         join  -- per-source order kept, ends when sealed and every source ended
 *           |
 *          feed -- turns the merged iterator into a forkable stream
 *         /    \
 *      tap      gate -- the consumer takes items only as credits are released
 *   (passive,     |
 *    counts)   consumer
 */
#include <fanout/fanout.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define NSENSORS 3
#define READINGS 1000

typedef struct reading {
	int sensor;
	int seq;
} reading;

static void reading_free(void *item, void *ctx)
{
	(void)ctx;
	free(item);
}

/* A cursor iterator copies each item out of the stream, so the copy is ours to pass on. */
static void *reading_copy(const void *item, void *ctx)
{
	(void)ctx;
	reading *r = malloc(sizeof(*r));
	if (r)
		*r = *(const reading *)item;
	return r;
}

typedef struct sensor {
	fo_stream *s;
	int id;
} sensor;

static void *sensor_main(void *arg)
{
	sensor *se = arg;
	for (int i = 0; i < READINGS; i++) {
		reading *r = malloc(sizeof(*r));
		r->sensor = se->id;
		r->seq = i;
		if (fo_stream_push(se->s, r) != FO_OK) /* refused: still ours */
			free(r);
	}
	fo_stream_close(se->s); /* the join sees this source end */
	return NULL;
}

int main(void)
{
	/* 1. A join whose items are freed with reading_free (every source must agree). */
	fo_join_opts jo;
	fo_join_opts_init(&jo);
	jo.item_free = reading_free;
	fo_join *j;
	if (fo_join_create(&j, &jo) != FO_OK)
		return 1;

	/* 2. Three sensor streams; each joins as a cursor iterator (no thread per source: the
	 *    join's reader is woken through the cursor's notify hook). */
	sensor se[NSENSORS];
	pthread_t th[NSENSORS];
	for (int i = 0; i < NSENSORS; i++) {
		fo_stream_opts so;
		fo_stream_opts_init(&so);
		so.item_free = reading_free; /* the stream frees its own items; we get copies */
		so.capacity = 64;            /* a sensor waits if the join falls behind */
		fo_stream_create(&se[i].s, &so);
		se[i].id = i;
		fo_cursor *c;
		fo_stream_cursor(se[i].s, &c, FO_ACTIVE);
		fo_iter *src;
		fo_iter_from_cursor(&src, c, reading_copy, reading_free, NULL);
		fo_join_add(j, src); /* the join owns src now */
	}
	fo_join_seal(j);                   /* no more sources: end once all three ended */
	fo_iter *merged = fo_join_iter(j); /* we own the output iterator */
	fo_join_destroy(j);                /* the handle is no longer needed */

	/* 3. A feed makes the merged flow forkable: one active cursor plus a passive tap. */
	fo_feed_opts fo;
	fo_feed_opts_init(&fo);
	fo.ahead = 32; /* the feed thread keeps at most 32 items ahead of the consumer */
	fo_feeder *feed;
	fo_cursor *main_c, *tap;
	fo_feed_create(&feed, &main_c, merged, &fo);
	fo_cursor_fork(main_c, &tap, FO_PASSIVE); /* never slows anyone down */

	/* 4. A gate over the active cursor: the consumer gets items only against credits. */
	fo_iter *paced_src;
	fo_iter_from_cursor(&paced_src, main_c, reading_copy, reading_free, NULL);
	fo_gate *gate;
	fo_gate_create(&gate, paced_src);
	fo_iter *paced = fo_gate_iter(gate);

	for (int i = 0; i < NSENSORS; i++)
		pthread_create(&th[i], NULL, sensor_main, &se[i]);

	/* 5. Consume in batches of 100 credits; check per-sensor order; let the tap count. */
	int next[NSENSORS] = {0}, consumed = 0, tapped = 0;
	void *x;
	for (;;) {
		fo_gate_release(gate, 100); /* 100 more items may pass */
		int batch = 0, rc = FO_OK;
		while (batch < 100 && (rc = fo_iter_next(paced, &x)) == FO_OK) {
			reading *r = x;
			if (r->seq != next[r->sensor]++) {
				fprintf(stderr, "order broken\n");
				return 1;
			}
			fo_iter_release(paced, x); /* our copy: dropped through the iterator */
			batch++;
			consumed++;
		}
		while (fo_cursor_try_next(tap, &x) == FO_OK) /* the tap reads what is there */
			tapped++;
		if (rc != FO_OK)
			break; /* FO_END: every sensor finished and everything passed */
	}
	for (int i = 0; i < NSENSORS; i++)
		pthread_join(th[i], NULL);
	while (fo_cursor_next(tap, &x) == FO_OK) /* the tap's remainder, then FO_END */
		tapped++;

	printf("consumed %d readings from %d sensors in gated batches of 100; the tap saw %d "
	       "(lagged %llu)\n",
	       consumed, NSENSORS, tapped, (unsigned long long)fo_cursor_lagged(tap));

	/* Every reading consumed once; the tap saw each one unless it was lapped. */
	int ok = consumed == NSENSORS * READINGS && tapped + (int)fo_cursor_lagged(tap) == consumed;

	/* 6. Tear down: iterators close what they own; streams go with their last handle. */
	fo_iter_close(paced); /* closes the gate's source, i.e. main_c */
	fo_gate_destroy(gate);
	fo_cursor_close(tap);
	fo_feed_destroy(feed); /* joins the feed thread, closes the join (and its sources) */
	for (int i = 0; i < NSENSORS; i++)
		fo_stream_destroy(se[i].s);
	return ok ? 0 : 1;
}
