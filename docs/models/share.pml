/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * share.pml - spin model of the share-group claim (src/cursor.c take_member(); design.md §5):
 * members read the ready items from the group position and CAS the position forward over
 * them; each item goes to exactly one member, none is lost, while members close at any
 * moment between reads (a closing member, like a timed-out read, has claimed nothing: waiting
 * happens before claiming).  The segment side of a member (hint walk, pins, reclamation) is
 * in reclaim.pml.  See docs/models/README.md.
 *
 * Processes
 *   producer(0), producer(1)  PER pushes each: claim a position (CAS on tail), store the item
 *                             (a later, separate step: slots become ready out of order).
 *   member(0)                 reads until the group position reaches the end.
 *   member(1), member(2)      the same, but may close after any read (or before the first).
 * A read (take_member): load pos p; count the ready slots from p (one load each, at most
 * MAXK, stopping at the segment end every SEG positions); none: FO_EMPTY, read again; else CAS
 * pos from p to p+k: won -> the member returns those items; lost -> start over.
 *
 * Properties: assertion "taken at most once" at each claim; after every process ended,
 * every item was taken exactly once; no invalid end state (member 0 never waits for ever).
 *
 * Deliberately broken variants (each must make spin report an error):
 *   -DBROKEN_PLAIN_STORE  the position is written with a plain store instead of a CAS: two
 *                         members take the same items;
 *   -DBROKEN_CLAIM_FIRST  a member claims the next position before its item is ready and then
 *                         waits for it: a member that closes (or times out) while waiting
 *                         strands the item;
 *   -DBROKEN_STALE_COUNT  a member counts the ready items once, and after a lost CAS retries
 *                         from the new position with the old count: it claims an item not
 *                         yet stored.
 */

#ifndef PER
#define PER 2
#endif
#define NPROD 2
#define N (NPROD * PER)
#define MAXK 2
#define SEG 2

bool slot[N];       /* ready: the producer stored the item */
byte tail = 0;
byte pos = 0;       /* g->pos */
byte taken[N];      /* members that returned item q */
byte done = 0;

proctype producer()
{
	byte k, p;
	k = 0;
	do
	:: k == PER -> break
	:: else ->
		atomic { p = tail; tail++ };      /* the claim */
		slot[p] = true;                  /* the store (release) */
		k++
	od;
	done++
}

proctype member(bool mayclose)
{
	byte p, k, i;
	do
	:: pos == N -> break
	:: mayclose && pos != N -> break        /* fo_cursor_close() between reads */
	:: pos != N ->
		p = pos;                        /* acquire */
#ifdef BROKEN_CLAIM_FIRST
		atomic { if :: pos == p -> pos = p + 1; k = 1 :: else -> k = 0 fi };
		if
		:: k == 1 ->
			if
			:: slot[p] -> atomic { assert(taken[p] == 0); taken[p]++ }
			:: mayclose -> goto closed   /* closes while waiting: the item is stranded */
			fi
		:: else -> skip
		fi
#else
		d_step {                        /* member_run(): ready items up to the segment end */
			k = 0;                  /* (slots only become ready, so one step is exact) */
			do
			:: k == MAXK || p + k == N || (k > 0 && (p + k) % SEG == 0) -> break
			:: else ->
				if
				:: slot[p + k] -> k++
				:: else -> break
				fi
			od
		};
		if
		:: k == 0 ->                    /* FO_EMPTY: the caller waits (futex), reads again */
			(p == N || slot[p] || pos != p)
		:: else ->
#ifndef BROKEN_PLAIN_STORE
			atomic {                /* CAS: exactly one member wins p..p+k-1 */
				if
				:: pos == p ->
					pos = p + k;
					i = 0;
					do
					:: i == k -> break
					:: else -> assert(taken[p + i] == 0); taken[p + i]++; i++
					od
				:: else ->
#ifdef BROKEN_STALE_COUNT
					/* retry at once from the new position with the old count */
					p = pos;
					if
					:: p + k <= N ->
						pos = p + k;
						i = 0;
						do
						:: i == k -> break
						:: else -> assert(slot[p + i]); taken[p + i]++; i++
						od
					:: else -> skip
					fi
#else
					skip    /* lost: read again */
#endif
				fi
			}
#else
			pos = p + k;            /* a plain store: no exclusion */
			i = 0;
			do
			:: i == k -> break
			:: else -> assert(taken[p + i] == 0); taken[p + i]++; i++
			od
#endif
		fi;
#endif
		skip;
		d_step { p = 0; k = 0; i = 0 }
	od;
closed:
	done++
}

init
{
	byte q;
	atomic {
		run producer();
		run producer();
		run member(false);
		run member(true);
		run member(true)
	};
	done == NPROD + 3;
	q = 0;
	do
	:: q == N -> break
	:: else -> assert(taken[q] == 1); q++
	od
}
