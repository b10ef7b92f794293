/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * reclaim.pml - spin model of segment reclamation in the stream core (src/segment.c,
 * src/stream.c, src/cursor.c; design.md §4-§6): producers claim and store (single pushes and a
 * push_many crossing a segment boundary), readers of every kind walk and pin segments, and a
 * reclaimer unlinks segments below the frontier F, parks segments with a claimed but
 * unwritten slot in limbo (issue 12, bug 5), destroys items and retires memory after an RCU
 * grace period.  See docs/models/README.md.
 *
 * Segments hold SEG positions; segment k holds positions k*SEG .. k*SEG+SEG-1.  The list is
 * oldest .. last existing segment; `next` of segment k is segment k+1 once it exists.
 *
 * Processes (each enabled by a define, see init):
 *   producer(0)   PUSHES0 single pushes; producer(1) one push_many of 2 items, which crosses a
 *                 segment boundary whenever its claim starts at an odd position.  Each push:
 *                 read section; hint, then tail; make segments exist through the claim; CAS
 *                 tail, moving the hint (tail_seg) to the claim's last segment with it (the
 *                 STALE protocol that makes this atomic is push.pml's); leave the read
 *                 section; read ncursors; store each slot (the item, or DEAD_ITEM when no
 *                 cursor existed), one step each, so a producer can stall between claim and
 *                 store; destroy DEAD_ITEM'd items.  (The real fast path takes no read section
 *                 at all: it dereferences nothing before its claim, push.pml.)
 *   active        (ACTIVE) an active cursor from the start, or (LATE) one created later under
 *                 the lock at the tail.  Reads batches of 1-2 items (possibly across a
 *                 boundary), publishes hold = first item of the batch, uses the batch until its
 *                 next read, and must read every item after its start in order (lossless).
 *   passive       (PASSIVE) a passive cursor: pins its segment; DEAD -> lapped: pin oldest
 *                 (retry while DEAD), skip; crossing: in a read section, re-check DEAD, pin
 *                 next (fails if DEAD), unpin the old one.  May close at any point.
 *   member        (MEMBER) a share-group member (one member: the claim race itself is
 *                 share.pml's): fast path in its pinned segment; slow path in a read section:
 *                 walk from the group hint, pin, read, advance pos and the hint.  May close.
 *   reclaimer     up to PASSES passes under the lock at any moment (every trigger of the real
 *                 code is one of these moments): F = min(hint, active hold, group hint,
 *                 tail - W if a passive exists); rescan limbo; unlink while x != hint and
 *                 x_end + slack <= F (slack 1 while cursors exist).
 * Closing a cursor (under the lock) unpins it and, for the last one, sweeps: every written
 * item of linked and limbo segments is destroyed, DEAD_ITEM left behind.  When everything has
 * ended, init tears down (frees the linked and limbo segments, destroying what is left).
 *
 * Memory model: sequentially consistent; each numbered step of the C code is one step here
 * (an RMW is one atomic step; the reclaimer's pass is one step per segment, under the lock).
 * RCU: a segment released by its last reference is destroyed at once and its memory is
 * "gone" as soon as every read section that was open at its retirement has ended (the
 * earliest a grace period may end).
 *
 * Properties (assertions; and no invalid end state: the active reader never blocks forever)
 *   - no access to a segment whose memory is gone (slot store, slot read, next, pin);
 *   - an item a cursor returned is not destroyed before that cursor's next read;
 *   - active cursors read every item from their start, in order, never DEAD_ITEM;
 *   - every item is destroyed exactly once (checked after teardown).
 *
 * Deliberately broken variants (each must make spin report an error):
 *   -DBROKEN_LIMBO_FREE   a segment with an unwritten slot is unlinked and released at once
 *                         (no limbo): the late store lands in a retired segment and its item
 *                         is never destroyed (a use after free once the grace period ends);
 *   -DBROKEN_LIMBO_NOPIN  limbo without its pin: a passive's last unpin releases the segment
 *                         before the store lands (the same loss, or a second release);
 *   -DBROKEN_STOP         the old reclaimer (stop at the first unwritten segment) with the
 *                         bound asserted: more than BOUND segments stay linked (bug 5);
 *   -DBROKEN_PIN_ANYWAY   a pin that does not check DEAD (fetch_add): a lapped passive pins an
 *                         oldest segment the reclaimer just unlinked and released, whose
 *                         items are destroyed (its unpin releases it a second time);
 *   -DBROKEN_HOLD_END     the active cursor publishes hold = its new position instead of the
 *                         first item of the batch it returned: a batch across a boundary is
 *                         destroyed while in use;
 *   -DBROKEN_NO_SLACK     the frontier is not strict while cursors exist: a cursor standing at
 *                         a segment's very end follows next from freed memory.
 */

#ifndef SEG
#define SEG    2          /* positions per segment (-DSEG=1: every position its own) */
#endif
#ifndef PUSHES0
#define PUSHES0 2         /* single pushes of producer 0 */
#endif
#define N      (PUSHES0 + 2) /* positions pushed: the single pushes + one batch of 2 */
#define NSEG   ((N + SEG - 1) / SEG)
#define NPOS   (NSEG * SEG) /* positions the segments hold (an odd N leaves one unclaimed) */
#ifndef PASSES
#define PASSES 2
#endif
#ifndef W
#define W      2          /* the passive window */
#endif
#define NONE   255

#define EMPTY  0          /* slot not written (NULL) */
#define ITEM   1
#define DEADI  2          /* DEAD_ITEM */

/* read-section bits */
#define B_P0   1
#define B_P1   2
#define B_PAS  4
#define B_MEM  8

byte slot[NPOS];
byte destroyed[NPOS];     /* destructor calls per position */
byte sj, sq;              /* scratch of the d_step/atomic helpers, reset to 0 after use */
bool exists[NSEG];        /* allocated and linked behind its predecessor */
byte oldest = 0;
byte hint = 0;            /* s->tail_seg, a segment index */
byte tail = 0;            /* claimed positions */
byte ncursors = 0;
byte npassive = 0;
bool lock = false;        /* s->lock */

byte pins[NSEG];          /* pin count (the limbo pin included) */
bool dead[NSEG];          /* DEAD: unlinked */
bool limbo[NSEG];
bool released[NSEG];      /* destroy pass done, retired */
bool gone[NSEG];          /* memory handed back after the grace period */
byte rcuwait[NSEG];       /* read sections open at retirement, not ended yet */
byte inrs = 0;            /* open read sections */

bool has_active = false;  /* registered consumers, under the lock */
byte hold = 0;
bool has_group = false;
byte ghint = 0;           /* group hint (segment) */
byte gpos = 0;
byte done_procs = 0;

#define seg(q)     ((q) / SEG)
#define access(k)  assert(!gone[k])

inline rs_enter(mybit) { inrs = inrs | mybit }

inline rs_leave(mybit)
{
	d_step {
		inrs = inrs & ~mybit;
		sj = 0;
		do
		:: sj == NSEG -> break
		:: else ->
			rcuwait[sj] = rcuwait[sj] & ~mybit;
			if
			:: released[sj] && rcuwait[sj] == 0 -> gone[sj] = true
			:: else -> skip
			fi;
			sj++
		od;
		sj = 0
	}
}

/* fo__seg_release(deferred): destroy the items, retire the memory. */
inline release(k)
{
	assert(!released[k]);
	sq = k * SEG;
	do
	:: sq == k * SEG + SEG -> break
	:: else ->
		if
		:: slot[sq] == ITEM -> destroyed[sq]++
		:: else -> skip
		fi;
		sq++
	od;
	sq = 0;
	released[k] = true;
	rcuwait[k] = inrs;
	if
	:: inrs == 0 -> gone[k] = true
	:: else -> skip
	fi
}

inline fully_written(k, r)
{
#if SEG == 1
	r = (slot[k] != EMPTY)
#else
	r = (slot[k * SEG] != EMPTY && slot[k * SEG + 1] != EMPTY)
#endif
}

/* seg_unpin(): the last of {link, pins} releases. */
inline unpin(k)
{
	atomic {
		pins[k]--;
		if
		:: pins[k] == 0 && dead[k] -> release(k)
		:: else -> skip
		fi
	}
}

/* seg_pin(): CAS +1 unless DEAD. */
inline pin(k, ok)
{
	atomic {
		access(k);
#ifndef BROKEN_PIN_ANYWAY
		if
		:: dead[k] -> ok = false
		:: else -> pins[k]++; ok = true
		fi
#else
		pins[k]++; ok = true
#endif
	}
}

/* fo__sweep_locked(): the last cursor closed (caller holds the lock). */
inline sweep()
{
	sq = 0;
	do
	:: sq == NPOS -> break
	:: else ->
		if
		:: (seg(sq) >= oldest || limbo[seg(sq)]) && !released[seg(sq)] && slot[sq] == ITEM ->
			access(seg(sq));
			destroyed[sq]++;
			slot[sq] = DEADI
		:: else -> skip
		fi;
		sq++
	od;
	sq = 0
}

/* ---- producers -------------------------------------------------------------------------- */

proctype producer(byte id; byte mybit; byte n; byte count)
{
	byte h, t, q, k, c;
	bool nobody, won;
	c = 0;
	do
	:: c == count -> break
	:: else ->
		rs_enter(mybit);
		do
		:: h = hint;                      /* hint first, then tail */
			t = tail;
			access(h);
			/* seg_ensure(): segments through t+n-1 exist before the claim */
			d_step {                  /* (one step: the CASes that link them) */
				k = h;
				do
				:: k == seg(t + n - 1) -> break
				:: else -> access(k); exists[k + 1] = true; k++
				od;
				k = 0
			};
			atomic {                  /* the claim: CAS on tail; tail_seg moves with it
			                             (STALE, set and cleared: push.pml) */
				if
				:: tail == t -> tail = t + n; won = true;
					if :: hint < seg(t + n - 1) -> hint = seg(t + n - 1) :: else -> skip fi
				:: else -> won = false
				fi
			};
			if :: won -> break :: else -> skip fi
		od;
		nobody = (ncursors == 0);         /* seq_cst, after the claim */
		rs_leave(mybit);                  /* the stores need none: design.md §6 */
		q = t;
		do
		:: q == t + n -> break
		:: else ->
			atomic {
				access(seg(q));
				slot[q] = (nobody -> DEADI : ITEM)
			};
			q++
		od;
		skip;                             /* (a break may not jump into a d_step) */
		d_step {                          /* drop_unread(): after the stores */
			if
			:: nobody ->
				q = t;
				do
				:: q == t + n -> break
				:: else -> destroyed[q]++; q++
				od
			:: else -> skip
			fi;
			q = 0; nobody = false
		};
		c++
	od;
	done_procs++
}

/* ---- the reclaimer ---------------------------------------------------------------------- */

proctype reclaimer()
{
	byte f, hn, x, slack, passes, t;
	bool fw, stopped;
	passes = 0;
	do
	:: passes == PASSES -> break
	:: passes < PASSES -> skip; break     /* it may also stop early */
	:: passes < PASSES ->
		atomic { !lock -> lock = true };
		passes++;
		atomic {                          /* the frontier: loads of the published values */
			hn = hint;
			f = hn * SEG;
			if :: has_active && hold < f -> f = hold :: else -> skip fi;
			if :: has_group && ghint * SEG < f -> f = ghint * SEG :: else -> skip fi;
			if
			:: npassive > 0 ->
				t = (tail > W -> tail - W : 0);
				if :: t < f -> f = t :: else -> skip fi
			:: else -> skip
			fi;
#ifndef BROKEN_NO_SLACK
			slack = (ncursors == 0 -> 0 : 1)
#else
			slack = 0
#endif
		};
		/* limbo rescan: a segment now written drops the limbo pin */
		x = 0;
		do
		:: x == NSEG -> break
		:: else ->
			atomic {
				if
				:: limbo[x] ->
					fully_written(x, fw);
					if
					:: fw ->
						limbo[x] = false;
#ifndef BROKEN_LIMBO_NOPIN
						pins[x]--;
#endif
						if :: pins[x] == 0 -> release(x) :: else -> skip fi
					:: else -> skip
					fi
				:: else -> skip
				fi
			};
			x++
		od;
		x = oldest;
		stopped = false;
		do
		:: !stopped && x != hn && x * SEG + SEG + slack <= f ->
			atomic {
				access(x);
				fully_written(x, fw);
				if
				:: fw ->
					oldest = x + 1;
					dead[x] = true;
					if :: pins[x] == 0 -> release(x) :: else -> skip fi
				:: else ->
#if defined(BROKEN_STOP)
					stopped = true
#elif defined(BROKEN_LIMBO_FREE)
					oldest = x + 1;
					dead[x] = true;
					if :: pins[x] == 0 -> release(x) :: else -> skip fi
#else
					oldest = x + 1;
					dead[x] = true;
#ifndef BROKEN_LIMBO_NOPIN
					pins[x]++;
#endif
					limbo[x] = true
#endif
				fi
			};
			if :: !stopped -> x++ :: else -> skip fi
		:: else -> break
		od;
		/* The bound: the pass reached the frontier (bug 5: it stopped at a stalled slot). */
		assert(oldest == hn || oldest * SEG + SEG + slack > f);
		lock = false
	od;
	done_procs++
}

/* ---- readers ---------------------------------------------------------------------------- */

/* An active cursor; @late: created under the lock once something was claimed. */
proctype act(bool late)
{
	byte pos, x, cx, p, k, nx, from, q;
	if
	:: late ->
		tail > 0;                          /* created after at least one claim */
		atomic {
			!lock -> lock = true;
			ncursors++;
			x = hint;                  /* hint first, then tail */
			pos = tail;
			do                         /* fo__seg_walk() */
			:: pos - x * SEG >= SEG && x + 1 < NSEG && exists[x + 1] -> x++
			:: else -> break
			od;
			hold = pos;
			has_active = true;
			lock = false
		}
	:: else -> pos = 0; x = 0
	fi;
	from = pos;
	do
	:: pos == N -> break
	:: else ->
		/* the batch [from, pos) returned last time is used before this read */
		d_step {
			q = from;
			do
			:: q == pos -> break
			:: else -> assert(destroyed[q] == 0); q++
			od;
			q = 0
		};
		p = pos;
		k = 0;
		cx = x;
		do                                 /* take_active(): up to 2 items */
		:: k == 2 || p == N -> break
		:: else ->
			if
			:: p - cx * SEG >= SEG ->
				access(cx);        /* x->next */
				if
				:: cx + 1 < NSEG && exists[cx + 1] -> nx = cx + 1
				:: else -> break
				fi
			:: else -> nx = cx
			fi;
			cx = nx;
			access(cx);
			if
			:: slot[p] == EMPTY -> break
			:: else -> assert(slot[p] == ITEM); p++; k++
			fi
		od;
		if
		:: k > 0 ->
			x = cx;
			from = pos;
#ifndef BROKEN_HOLD_END
			hold = pos;                /* release: the first item of the batch */
#else
			hold = p;
#endif
			pos = p
		:: else -> skip                    /* FO_EMPTY: read again (it waits) */
		fi
	od;
	q = from;
	do
	:: q == pos -> break
	:: else -> assert(destroyed[q] == 0); q++
	od;
	atomic {
		!lock -> lock = true;
		has_active = false;
		ncursors--;
		if :: ncursors == 0 -> sweep() :: else -> skip fi;
		lock = false
	};
	done_procs++
}

proctype passive()
{
	byte pos, ps, z, nx, used;
	bool ok, lapped;
	pos = 0;
	ps = 0;                                    /* pinned at creation (init) */
	used = NONE;
	do
	:: pos == N -> break
#ifdef EARLY_CLOSE
	:: pos != N -> break                       /* it may close at any point */
#endif
	:: pos != N ->
		if                                 /* the item returned last is used now */
		:: used != NONE -> assert(destroyed[used] == 0); used = NONE
		:: else -> skip
		fi;
		lapped = false;
		if
		:: dead[ps] -> lapped = true
		:: !dead[ps] && pos - ps * SEG >= SEG ->
			rs_enter(B_PAS);
			if
			:: dead[ps] -> lapped = true; rs_leave(B_PAS)
			:: else ->
				access(ps);                /* ps->next */
				if
				:: ps + 1 < NSEG && exists[ps + 1] ->
					nx = ps + 1;
					pin(nx, ok);
					rs_leave(B_PAS);
					if
					:: ok -> unpin(ps); ps = nx
					:: else -> lapped = true
					fi
				:: else -> rs_leave(B_PAS)     /* not linked yet: FO_EMPTY */
				fi
			fi
		:: else ->
			access(ps);
			if
			:: slot[pos] == ITEM -> used = pos; pos++
			:: slot[pos] == DEADI -> pos++     /* pushed while no cursor existed */
			:: else -> skip                    /* FO_EMPTY */
			fi
		fi;
		if
		:: lapped ->                       /* passive_lapped(): pin oldest, skip */
			rs_enter(B_PAS);
			do
			:: z = oldest; pin(z, ok); if :: ok -> break :: else -> skip fi
			od;
			rs_leave(B_PAS);
			unpin(ps);
			assert(z * SEG >= pos);
			ps = z;
			pos = z * SEG
		:: else -> skip
		fi
	od;
	if
	:: used != NONE -> assert(destroyed[used] == 0)
	:: else -> skip
	fi;
	atomic {
		!lock -> lock = true;
		unpin(ps);
		npassive--;
		ncursors--;
		if :: ncursors == 0 -> sweep() :: else -> skip fi;
		lock = false
	};
	done_procs++
}

proctype member()
{
	byte p, h, x, ms, used;
	bool ok;
	ms = NONE;
	used = NONE;
	do
	:: gpos == N -> break
#ifdef EARLY_CLOSE
	:: gpos != N -> break                      /* it may close at any point */
#endif
	:: gpos != N ->
		if
		:: used != NONE -> assert(destroyed[used] == 0); used = NONE
		:: else -> skip
		fi;
		if
		:: ms != NONE && gpos >= ms * SEG && gpos - ms * SEG < SEG ->
			/* fast path: the pin keeps the segment */
			access(ms);
			if
			:: slot[gpos] == ITEM -> used = gpos; gpos++
			:: else -> skip
			fi
		:: else ->
			rs_enter(B_MEM);
			h = ghint;                 /* (pos then hint: one member, no race) */
			p = gpos;
			x = h;
			do                         /* fo__seg_walk() */
			:: p - x * SEG >= SEG && x + 1 < NSEG ->
				access(x);
				if :: exists[x + 1] -> x++ :: else -> break fi
			:: else -> break
			od;
			if
			:: p - x * SEG >= SEG -> rs_leave(B_MEM)   /* not linked yet */
			:: else ->
				ok = true;
				if
				:: x != ms ->
					pin(x, ok);
					if
					:: ok && ms != NONE -> unpin(ms); ms = x
					:: ok && ms == NONE -> ms = x
					:: else -> skip
					fi
				:: else -> skip
				fi;
				if
				:: ok ->
					access(x);
					if
					:: slot[p] == ITEM ->
						used = p;
						gpos = p + 1;
						if :: ghint < x -> ghint = x :: else -> skip fi
					:: else -> skip
					fi
				:: else -> skip
				fi;
				rs_leave(B_MEM)
			fi
		fi
	od;
	if
	:: used != NONE -> assert(destroyed[used] == 0)
	:: else -> skip
	fi;
	atomic {
		!lock -> lock = true;
		if :: ms != NONE -> unpin(ms) :: else -> skip fi;
		has_group = false;
		ncursors--;
		if :: ncursors == 0 -> sweep() :: else -> skip fi;
		lock = false
	};
	done_procs++
}

/* ---- the run ---------------------------------------------------------------------------- */

init
{
	byte nprocs, q, k;
	exists[0] = true;
	nprocs = 3;
#ifdef ACTIVE
	ncursors++; has_active = true; hold = 0;
#endif
#ifdef PASSIVE
	ncursors++; npassive++; pins[0]++;
#endif
#ifdef MEMBER
	ncursors++; has_group = true; ghint = 0;
#endif
	atomic {
		run producer(0, B_P0, 1, PUSHES0);
		run producer(1, B_P1, 2, 1);
		run reclaimer();
#if defined(ACTIVE) || defined(LATE)
		run act(
#ifdef LATE
		           true
#else
		           false
#endif
		           ); nprocs++;
#endif
#ifdef PASSIVE
		run passive(); nprocs++;
#endif
#ifdef MEMBER
		run member(); nprocs++;
#endif
	}
	done_procs == nprocs;
	/* Teardown: the last handle sweeps and frees the linked and limbo segments. */
	sweep();
	k = 0;
	do
	:: k == NSEG -> break
	:: else ->
		if
		:: exists[k] && !released[k] && (k >= oldest || limbo[k]) -> release(k)
		:: else -> skip
		fi;
		k++
	od;
	q = 0;
	do
	:: q == N -> break
	:: else -> assert(destroyed[q] == 1); q++
	od
}
