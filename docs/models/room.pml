/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * room.pml - spin model of a producer waiting for room in a bounded stream (src/stream.c
 * wait_room(), room_watermark(); src/cursor.c reader_moved(), space_wake(); design.md §7).
 *
 * Processes
 *   producer     pushes N items into a stream of capacity CAP read by two active cursors.
 *                When full: room_watermark() under the registry lock (a fresh scan of the
 *                cursors' positions; if still full, store want = the position the minimum
 *                must reach for room for half the capacity, and behind = the cursors below
 *                it), then the watermark stage: read gen, fetch_or(need, NEED_BATCH), heavy
 *                fence, re-check, futex_wait(&gen) with a deadline (a timeout may fire at
 *                any moment); after a timeout with still no room, the exact stage: read
 *                gen, fetch_or(need, NEED_SLEEP), heavy fence, re-check, futex_wait with no
 *                deadline.
 *   reader(i)    an active cursor reading every item: publish pub (a release store that may
 *                sit in its store buffer), light fence, peek need; NEED_SLEEP: exchange need
 *                with 0, gen++, FUTEX_WAKE; only NEED_BATCH: if this move crossed want,
 *                fetch_sub(behind) and, for the last one, the same wake.
 *
 * Memory model: as in arm.pml, sequentially consistent except the readers' position store,
 * which may stay in a one-entry store buffer past their peek of need (x86-TSO; the light
 * fence is a compiler barrier with membarrier()).  It drains by itself at any moment, at
 * the reader's next locked instruction, or when the producer runs its heavy fence
 * (membarrier).  The producer's scans read memory (the lock orders nothing about stores
 * still buffered).  The watermark and count are hints: a reader may cross want before the
 * producer announces NEED_BATCH and never count down; the deadline covers it.
 *
 * Property: no invalid end state (the producer asleep for ever while the readers have read
 * everything, or a reader waiting for an item that never comes).
 *
 * Broken variants (each must fail): -DBROKEN_NO_BOUND (the watermark sleep has no deadline:
 * a crossing that was never counted strands the producer), -DBROKEN_NO_FENCE (no heavy
 * fence before the re-checks), -DBROKEN_EXACT_NO_RECHECK (the exact stage sleeps without
 * re-checking after announcing).
 */

#ifndef CAP
#define CAP 3
#endif
#ifndef N
#define N 4
#endif
#define HALF (CAP / 2)

#define NEED_SLEEP 1
#define NEED_BATCH 4
#define NONE 255

byte tail = 0;       /* items pushed (claim + store: seq_cst, visible at once) */
byte pos[2];         /* each cursor's published position, in memory */
byte sb[2];          /* each reader's store buffer: a pending position, or NONE */

byte need = 0;       /* s->space.need */
byte gen = 0;        /* s->space.gen */
byte want = 0;       /* s->space.want */
byte behind = 0;     /* s->space.behind */
bool fsleep = false; /* the producer is queued on the futex */

inline flush(i)
{
	atomic {
		if
		:: sb[i] != NONE -> pos[i] = sb[i]; sb[i] = NONE
		:: else -> skip
		fi
	}
}

inline fence_heavy()
{
#ifndef BROKEN_NO_FENCE
	atomic { flush(0); flush(1) }
#else
	skip
#endif
}

/* has_room(): a scan of the published positions (under the lock) */
#define MINPOS (pos[0] < pos[1] -> pos[0] : pos[1])
#define ROOM (tail + 1 - MINPOS <= CAP)

proctype producer()
{
	byte g;
	bool room;

	do
	:: tail == N -> break
	:: else ->
		if
		:: ROOM -> tail++
		:: else ->
			/* wait_room(): the spin and yield phases only re-check; then
			 * room_watermark() under the lock */
			atomic {
				room = ROOM;
				if
				:: !room ->
					want = tail + 1 - CAP;
					if
					:: tail >= HALF && tail - HALF > want -> want = tail - HALF
					:: else -> skip
					fi;
					behind = 0;
					if :: pos[0] < want -> behind++ :: else -> skip fi;
					if :: pos[1] < want -> behind++ :: else -> skip fi
				:: else -> skip
				fi
			};
			if
			:: room -> skip
			:: else ->
				/* the watermark stage */
				g = gen;
				need = need | NEED_BATCH;
				fence_heavy();
				if
				:: ROOM -> skip
				:: else ->
					atomic { if :: gen != g -> skip :: else -> fsleep = true fi };
					if
					:: !fsleep -> skip                          /* woken */
#ifndef BROKEN_NO_BOUND
					:: atomic { fsleep -> fsleep = false };     /* the deadline */
						if
						:: ROOM -> skip
						:: else ->
							/* the exact stage */
							g = gen;
							need = need | NEED_SLEEP;
#ifndef BROKEN_EXACT_NO_RECHECK
							fence_heavy();
							if
							:: ROOM -> skip
							:: else ->
								atomic { if :: gen != g -> skip :: else -> fsleep = true fi };
								!fsleep
							fi
#else
							atomic { if :: gen != g -> skip :: else -> fsleep = true fi };
							!fsleep
#endif
						fi
#endif
					fi
				fi
			fi
		fi
	od
}

/* fo__waitq_wake(&s->space): one exchange clears the word; gen++ and FUTEX_WAKE */
inline wake(i)
{
	atomic { flush(i); n = need; need = 0 };
	if
	:: (n & (NEED_SLEEP | NEED_BATCH)) -> atomic { gen++; fsleep = false }
	:: else -> skip
	fi
}

proctype reader(byte i)
{
	byte p = 0, n, w;
	bool last;

	do
	:: p == N -> break
	:: else ->
		tail > p;           /* an item is there (the data side is arm.pml's) */
		p++;
		sb[i] = p;          /* publish pub (release): may stay buffered */
		if
		:: flush(i)
		:: skip
		fi;
		n = need;           /* light fence (compiler barrier), then a peek */
		if
		:: n == 0 -> skip
		:: (n & NEED_SLEEP) -> wake(i)
		:: else ->
			w = want;
			if
			:: p - 1 < w && p >= w ->
				atomic { behind--; last = (behind == 0) };
				if
				:: last -> wake(i)
				:: else -> skip
				fi
			:: else -> skip
			fi
		fi
	od;
	flush(i)
}

init
{
	sb[0] = NONE;
	sb[1] = NONE;
	atomic {
		run producer();
		run reader(0);
		run reader(1)
	}
}
