/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * stage.pml - spin model of a buffered pipeline stage's sleeps (src/pipeline.c: stage_main,
 * about_to_block, publish / wake_items, wait_room / wake_room, wait_items; design.md §12).
 *
 * Processes
 *   thread   the stage's thread: queues N items into a ring of CAP slots.  Before each item
 *            its source may be empty: then about_to_block (blocked = 1, fence, peek
 *            need_items, wake the reader if items are pending) and the blocking pull, which
 *            comes back with the item (blocked = 0) or never (the source blocks for ever:
 *            the thread stops there).  When the ring is full it waits for RWANT free slots:
 *            read room_gen, room_at, need_room = 1, fence, re-check, futex_wait.  After each
 *            tail store: fence, peek need_items, wake the reader if tail reached items_at.
 *            After the last item: about_to_block, then term = 1 and the same wake (always).
 *   reader   reads items until the end.  When the ring is empty it waits for IWANT items:
 *            read items_gen, items_at, need_items = 1, fence, re-check (IWANT items, or the
 *            end); if none and blocked: take what is there; else futex_wait.  After a wake,
 *            anything there will do.  After each head store: fence, peek need_room, wake the
 *            thread if head reached room_at.
 *
 * No timeouts: the model checks that the wakes alone never leave a side asleep while the
 * other can no longer wake it.  (The code keeps two safety-net timeouts past the scheduler
 * tick, and the thread's latency rule - wake a reader that has waited ITEMS_WAIT_NS - only
 * adds wakes.)  Memory model: sequentially consistent; the code's counter stores are followed
 * by seq_cst fences and its announcements are seq_cst, which is what this model assumes.
 *
 * Property: no invalid end state: neither side is left asleep on the futex for ever, except
 * the reader once the thread's source blocked for ever and the reader has every item that
 * was queued (the only way the reader may stop short of the end); a reader that sees the end
 * has all N items.
 *
 * The reader waits only on an empty ring and the thread only on a full one, so the two
 * thresholds (IWANT items, RWANT free slots) may be anything from 1 to CAP: -DIWANT=3
 * -DRWANT=3 verifies too.
 *
 * Broken variants (each must fail): -DBROKEN_NO_FLUSH (the thread blocks without waking a
 * reader asleep on a partial batch), -DBROKEN_NO_BLOCKED (the reader sleeps for its batch
 * although the thread announced it blocks).
 */

#ifndef CAP
#define CAP 4
#endif
#ifndef N
#define N 5
#endif
#ifndef IWANT
#define IWANT (CAP / 2)
#endif
#ifndef RWANT
#define RWANT (CAP / 2)
#endif

/* The reader's re-check: the batch (or the end) is there; the thread blocks and something is. */
#define READY (tail - head >= IWANT || term)
#ifndef BROKEN_NO_BLOCKED
#define TAKE_SOME (blocked && tail != head)
#else
#define TAKE_SOME false
#endif

byte tail = 0, head = 0; /* items queued / read */
bool term = false;       /* the end, after the last tail */
bool blocked = false;    /* the thread is in (or about to enter) a blocking pull */
bool stuck = false;      /* the thread's source blocked for ever */

byte need_items = 0, items_gen = 0, items_at = 0;
byte need_room = 0, room_gen = 0, room_at = 0;

/* wake_items(): exchange need with 0, bump the generation (futex_wake) */
inline wake_items()
{
	atomic {
		if
		:: need_items -> need_items = 0; items_gen++
		:: else -> skip
		fi
	}
}

inline wake_room()
{
	atomic {
		if
		:: need_room -> need_room = 0; room_gen++
		:: else -> skip
		fi
	}
}

/* about_to_block(): blocked = 1, fence, wake a reader asleep with items pending */
inline flush()
{
#ifndef BROKEN_NO_FLUSH
	if
	:: need_items && tail != head -> wake_items()
	:: else -> skip
	fi
#else
	skip
#endif
}

inline about_to_block()
{
	blocked = true;
	flush()
}

active proctype thread()
{
	byte g;
	do
	:: tail == N -> break
	:: tail < N ->
		/* wait for room */
		if
		:: tail - head >= CAP ->
			do
			:: true ->
				g = room_gen;
				room_at = tail - CAP + RWANT;
				need_room = 1;
				if
				:: CAP - (tail - head) >= RWANT -> break
				:: else -> (room_gen != g) /* futex_wait, then announce and re-check again */
				fi
			od;
			need_room = 0
		:: else -> skip
		fi;
		/* pull: the source may be empty (then block), or block for ever */
		if
		:: skip
		:: about_to_block();
			if
			:: skip
			:: stuck = true -> goto done /* the blocking pull never returns */
			fi;
			blocked = false
		fi;
		/* queue, fence, peek */
		tail++;
		if
		:: need_items && tail >= items_at -> wake_items()
		:: else -> skip
		fi
	od;
	about_to_block(); /* closing the source may block */
	term = true;
	wake_items(); /* the end always wakes */
done:
	skip
}

active proctype reader()
{
	byte g;
	do
	:: head < tail ->
		head++;
		/* fence, peek */
		if
		:: need_room && head >= room_at -> wake_room()
		:: else -> skip
		fi
	:: head == tail && term -> break
	:: head == tail && !term ->
		do
		:: true ->
			g = items_gen;
			items_at = head + IWANT;
			need_items = 1;
			if
			:: READY -> break
			:: !READY && TAKE_SOME -> break
			:: !READY && !TAKE_SOME ->
				if
				:: (items_gen != g) -> skip /* futex_wait, woken */
				:: stuck && tail == head -> goto idle /* asleep for good, nothing pending: fine */
				fi
			fi;
			if
			:: tail != head || term -> break
			:: else -> skip
			fi
		od;
		need_items = 0
	od;
	assert(head == N);
idle:
	skip
}
