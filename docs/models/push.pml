/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * push.pml - spin model of the multi-producer claim without a read section (src/stream.c,
 * design.md §4 and §6 "Producers without a read section").  Producers claim positions on the
 * tail word {count, STALE}; the tail segment `segf` (s->tail_seg) holds position count-1
 * whenever STALE is clear.  A claim that stays inside segf's segment (fast path) loads the
 * tail word, then segf, and CASes the count forward: no read section, and segf is never
 * dereferenced before the claim succeeded.  A claim that enters a later segment (slow path)
 * runs in a read section: it walks from segf (allocating segments through the claim), CASes
 * the tail to {count + n, STALE}, then sets segf to the last segment of its claim and clears
 * STALE; any producer that finds STALE set helps (walks, CAS segf, CAS STALE off), so a
 * producer stopped in the middle of a crossing stops nobody.
 *
 * Segment memory is a small set of objects (NOBJ) with a pool: an object freed after its grace
 * period may be allocated again at another base (ABA: a stale pointer then names a live
 * segment at the wrong position).  The reclaimer unlinks segments below segf's base (no
 * cursor: the frontier is the hint), retires fully written ones (gone after every read
 * section open at retirement has ended) and parks segments with a claimed, unwritten slot in
 * limbo until they are written.
 *
 * Properties (assertions, and no invalid end state):
 *   - no access to an object that is free (dereference of freed memory);
 *   - every store lands in the object whose base is its position's segment base;
 *   - every claimed position is written exactly once (checked at the end).
 *
 * Deliberately broken variants (must fail):
 *   -DBROKEN_NO_STALE   a crossing claim moves the count and then segf, with no STALE bit:
 *                       a fast-path producer pairs the new count with the old segment;
 *   -DBROKEN_DEREF      the fast path reads segf's base before claiming (the code before
 *                       this protocol, without its read section): freed memory;
 *   -DBROKEN_HELP_NO_RS a helper walks and CASes segf outside a read section: the segment it
 *                       loaded may be freed and reused (ABA) before its CAS.
 */

#ifndef SEG
#define SEG     2         /* positions per segment */
#endif
#ifndef P0
#define P0      2         /* single pushes of producer 0 */
#endif
#ifndef P1
#define P1      2         /* single pushes of producer 1 (plus BATCH: one push of 2) */
#endif
#ifdef BATCH
#define N       (P0 + P1 + 2)
#else
#define N       (P0 + P1)
#endif
#define NSEG    ((N + SEG - 1) / SEG)
#define NOBJ    (NSEG + 1)
#define NONE    255

#define FREE    0         /* in the pool (or never allocated): memory that is gone */
#define LIVE    1         /* linked */
#define LIMBO   2         /* unlinked with an unwritten claimed slot */
#define RETIRED 3         /* unlinked, written, waiting for a grace period */

byte ost[NOBJ];           /* object state */
byte base[NOBJ];
byte nxt[NOBJ];
byte sl[NOBJ * SEG];      /* slots: 0 = NULL */
byte rcuwait[NOBJ];       /* read sections open at retirement, not ended yet */
byte inrs = 0;            /* open read sections (bits) */

byte tcount = 0;          /* the tail word: count ... */
bool stale = false;       /* ... and STALE */
byte segf = 0;            /* s->tail_seg */
byte oldest = 0;
byte wr[N];               /* stores per position */
byte done = 0;
byte sj;

#define acc(o)    assert(ost[o] != FREE)
#define segb(q)   (((q) / SEG) * SEG)

inline rs_enter(b) { inrs = inrs | b }

inline rs_leave(b)
{
	d_step {
		inrs = inrs & ~b;
		sj = 0;
		do
		:: sj == NOBJ -> break
		:: else ->
			rcuwait[sj] = rcuwait[sj] & ~b;
			if
			:: ost[sj] == RETIRED && rcuwait[sj] == 0 -> ost[sj] = FREE
			:: else -> skip
			fi;
			sj++
		od;
		sj = 0
	}
}

inline retire(o)
{
	rcuwait[o] = inrs;
	if
	:: inrs == 0 -> ost[o] = FREE
	:: else -> ost[o] = RETIRED
	fi
}

inline written(o, r)
{
	r = (sl[o * SEG] != 0 && sl[o * SEG + 1] != 0)
}

/* fo__seg_new(): any free object (the pool hands back old memory: ABA). */
inline alloc(o, b)
{
	atomic {
		if
		:: ost[0] == FREE -> o = 0
		:: ost[1] == FREE -> o = 1
		:: ost[2] == FREE -> o = 2
#if NOBJ > 3
		:: ost[3] == FREE -> o = 3
#endif
#if NOBJ > 4
		:: ost[4] == FREE -> o = 4
#endif
		fi;
		ost[o] = LIVE;
		base[o] = b;
		nxt[o] = NONE;
		sl[o * SEG] = 0;
		sl[o * SEG + 1] = 0
	}
}

/* The segment holding position @q, walking from @x (caller in a read section);
 * allocates missing segments (seg_ensure: CAS next from NULL; a loser frees its own). */
inline walk_to(x, q, nw)
{
	do
	:: atomic { acc(x); in = (base[x] + SEG > q); nx = nxt[x] };
		if
		:: in -> break
		:: !in && nx != NONE -> x = nx
		:: !in && nx == NONE ->
			atomic { acc(x); nx = base[x] + SEG };
			alloc(nw, nx);
			atomic {
				acc(x);
				if
				:: nxt[x] == NONE -> nxt[x] = nw; x = nw
				:: else -> ost[nw] = FREE; x = nxt[x]     /* lost: never published */
				fi
			}
		fi
	od;
	in = false;
	nx = 0
}

/* Help a crossing that left STALE set: segf := the segment holding count-1, STALE off. */
inline help(mybit)
{
#ifndef BROKEN_HELP_NO_RS
	rs_enter(mybit);
#endif
	atomic { t = tcount; st = stale; };
	if
	:: st ->
		h = segf;
		x = h;
		walk_to(x, t - 1, nw);
		atomic { if :: segf == h -> segf = x :: else -> skip fi };
		atomic { if :: tcount == t && stale -> stale = false :: else -> skip fi }
	:: else -> skip
	fi;
#ifndef BROKEN_HELP_NO_RS
	rs_leave(mybit)
#endif
}

proctype producer(byte mybit; byte count; bool batch)
{
	byte t, h, x, nw, n, c, q, first, nx;
	bool st, won, in;
	c = 0;
	do
	:: c == count -> break
	:: else ->
		n = ((batch && c == count - 1) -> 2 : 1);
		do
		:: /* fast path: the claim stays in segf's segment */
			atomic { t = tcount; st = stale };
			if
			:: st -> help(mybit)
			:: !st && t % SEG != 0 && t % SEG + n <= SEG ->
				h = segf;
#ifdef BROKEN_DEREF
				acc(h);                   /* h->base, read before the claim */
#endif
				atomic {
					if
					:: tcount == t && !stale -> tcount = t + n; won = true
					:: else -> won = false
					fi
				};
				if
				:: won ->
					q = t;
					do
					:: q == t + n -> break
					:: else ->
						atomic {
							acc(h);
							assert(base[h] == segb(q));
							sl[h * SEG + q % SEG] = 1;
							wr[q]++
						};
						q++
					od;
					break
				:: else -> skip
				fi
			:: else -> /* slow path, in a read section */
				rs_enter(mybit);
				atomic { t = tcount; st = stale };
				h = segf;
				if
				:: st -> rs_leave(mybit)          /* help at the top */
				:: !st ->
					atomic { acc(h); won = (base[h] <= (t > 0 -> t - 1 : 0)) };
					if
					:: !won -> rs_leave(mybit)  /* torn: segf newer than t */
					:: won ->
						x = h;
						walk_to(x, t, nw);      /* the segment of the first position */
						first = x;
						walk_to(x, t + n - 1, nw);
						/* x: the segment of the claim's last position */
						atomic {
							if
							:: tcount == t && !stale ->
								tcount = t + n;
#ifndef BROKEN_NO_STALE
								stale = (x != h);
#endif
								won = true
							:: else -> won = false
							fi
						};
						if
						:: won && x != h ->
							atomic { if :: segf == h -> segf = x :: else -> skip fi };
							atomic { if :: tcount == t + n && stale -> stale = false :: else -> skip fi }
						:: else -> skip
						fi;
						if
						:: won ->
							q = t;
							x = first;
							do
							:: q == t + n -> break
							:: else ->
								atomic {
									acc(x);
									if :: base[x] + SEG <= q -> x = nxt[x] :: else -> skip fi
								};
								atomic {
									acc(x);
									assert(base[x] == segb(q));
									sl[x * SEG + q % SEG] = 1;
									wr[q]++
								};
								q++
							od;
							rs_leave(mybit);
							break
						:: else -> rs_leave(mybit)
						fi
					fi
				fi
			fi
		od;
		c++
	od;
	done++
}

/* Reclamation passes under the lock (no cursor: the frontier is segf's base). */
proctype reclaimer()
{
	byte hn, f, x, l;
	bool fw;
	do
	:: done == 2 -> break
	:: else ->
		atomic {
			hn = segf;
			f = base[hn];
			/* limbo rescan */
			l = 0;
			do
			:: l == NOBJ -> break
			:: else ->
				if
				:: ost[l] == LIMBO ->
					written(l, fw);
					if :: fw -> retire(l) :: else -> skip fi
				:: else -> skip
				fi;
				l++
			od;
			l = 0
		};
		do
		:: atomic {
			x = oldest;
			if
			:: x != hn && base[x] + SEG <= f ->
				acc(x);
				oldest = nxt[x];
				written(x, fw);
				if
				:: fw -> retire(x)
				:: else -> ost[x] = LIMBO
				fi
			:: else -> break
			fi
		   }
		od
	od
}

init
{
	ost[0] = LIVE;
	base[0] = 0;
	nxt[0] = NONE;
	atomic {
		run producer(1, P0, false);
#ifdef BATCH
		run producer(2, P1 + 1, true);
#else
		run producer(2, P1, false);
#endif
		run reclaimer()
	};
	done == 2;
	/* every claimed position written exactly once */
	sj = 0;
	do
	:: sj == N -> break
	:: else -> assert(wr[sj] == 1); sj++
	od;
	assert(tcount == N && !stale)
}
