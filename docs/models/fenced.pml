/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * fenced.pml - spin model of the single producer's claim without a locked instruction
 * (src/stream.c push_fenced(), fenced_gate(), stream_end(); src/cursor.c fo_stream_cursor();
 * design.md §4 "A single producer without a locked instruction").
 *
 * The producer claims with a plain store of the tail word, then (compiler barrier only) loads
 * the gate word {EMPTY: no cursor, CLOSING: close has begun}.  Gate clear: store the item.
 * EMPTY: store DEAD (nobody can read it).  CLOSING: take the lock (close holds it until the
 * end is published), then store the item if the claim lies below the end, else put the tail
 * word back with CLOSED set and return FO_ECLOSED.  The two rare sides write the gate, run
 * membarrier(PRIVATE_EXPEDITED), then load the tail word: close (sets CLOSING, end = the
 * count it loads, CAS to set CLOSED) and the first cursor (clears EMPTY, starts at the count
 * it loads).
 *
 * Memory model.  Sequentially consistent except the producer's stores: they go through a
 * FIFO store buffer (x86-TSO; on weaker machines the slot store is a release store, which
 * keeps it after the tail store, and the gate load is the only access that may pass them).
 * The producer's own loads of the tail word forward from its buffer.  The buffer drains one
 * entry at a time at any moment (process `drain`), entirely at a lock operation of the
 * producer, and entirely at a membarrier of another thread: the expedited membarrier makes
 * the producer run a full barrier at some instant during the call, while the caller does
 * nothing else, so the call is that instant.  Close's CAS and the other threads' stores are
 * locked/seq_cst: visible at once.
 *
 * Properties (assertions):
 *   - a cursor never reads a DEAD slot (an item destroyed at its push because the gate said
 *     EMPTY) and reads every position from its start to the end, each once, then FO_END;
 *   - every push that returned FO_OK lies below the end and its item is in its slot; no
 *     push that returned FO_ECLOSED stored anything; no slot at or past the end is written;
 *   - at the end, the tail word is {end, CLOSED}: later pushes fail at once.
 * and no invalid end state (a reader waiting for ever for a slot below the end).
 *
 * -DLATE: no cursor at the start; a first cursor is created concurrently (the 0 -> 1 gate
 * transition).  Default: a cursor exists from the start (the close race alone).
 *
 * Deliberately broken variants (must fail):
 *   -DBROKEN_CLOSE_NO_MB  close loads the tail word without the membarrier: an item claimed
 *                         before the end that close did not count (lost / after FO_END);
 *   -DBROKEN_FIRST_NO_MB  the first cursor loads the tail word without the membarrier (with
 *                         -DLATE): it starts before a claim whose push saw EMPTY (dead read);
 *   -DBROKEN_CLOSING_OK   a push that sees CLOSING stores its item anyway (no lock, no end
 *                         check): an item past the end.
 */

#ifndef PUSHES
#define PUSHES 3
#endif
#define N      PUSHES
#define NONE   255
#define SBN    (2 * PUSHES)      /* store buffer entries: two stores per push */

#define S_NULL 0
#define S_ITEM 1
#define S_DEAD 2

#define ADDR_TAIL 0              /* buffer entry addresses: the tail word, or 1 + q: slot q */

/* Memory. */
byte tcount = 0;                 /* the tail word: claimed count ... */
bool tclosed = false;            /* ... and CLOSED */
byte slot[N];
bool gempty = true;              /* gate: no cursor */
bool gclosing = false;           /* gate: close has begun */
byte endpos = NONE;              /* s->end, published under the lock */
bool lock = false;

/* The producer's store buffer (FIFO). */
byte sba[SBN];                   /* address */
byte sbc[SBN];                   /* value: count (tail) or slot state */
bool sbx[SBN];                   /* value: CLOSED bit (tail) */
byte sbn = 0;
byte d_i;                        /* drain_one()'s index (inside atomic steps) */

byte res[N];                     /* result of the push that claimed q: 0 none, 1 OK */
byte eclosed = 0;                /* pushes that returned FO_ECLOSED */
bool pdone = false;
byte rstart = NONE;              /* the cursor's start */
byte rread = 0;                  /* positions it read */
bool rdone = false;
bool cdone = false;

inline commit(i)
{
	if
	:: sba[i] == ADDR_TAIL -> tcount = sbc[i]; tclosed = sbx[i]
	:: else -> slot[sba[i] - 1] = sbc[i]
	fi
}

/* Drain the oldest entry. */
inline drain_one()
{
	commit(0);
	d_i = 1;
	do
	:: d_i < sbn -> sba[d_i - 1] = sba[d_i]; sbc[d_i - 1] = sbc[d_i]; sbx[d_i - 1] = sbx[d_i];
		d_i++
	:: else -> break
	od;
	sbn--;
	sba[sbn] = 0; sbc[sbn] = 0; sbx[sbn] = false
}

inline drain_all()
{
	do
	:: sbn > 0 -> drain_one()
	:: else -> break
	od
}

inline buffer(a, c, x)
{
	assert(sbn < SBN);
	sba[sbn] = a; sbc[sbn] = c; sbx[sbn] = x; sbn++
}

/* The producer's load of the tail word: its newest buffered store, else memory. */
inline load_tail(c, x)
{
	c = tcount; x = tclosed;
	i = 0;
	do
	:: i < sbn -> if
	              :: sba[i] == ADDR_TAIL -> c = sbc[i]; x = sbx[i]
	              :: else -> skip
	              fi; i++
	:: else -> break
	od
}

/* membarrier(PRIVATE_EXPEDITED), from another thread: the producer's full barrier. */
inline membarrier()
{
	drain_all()
}

proctype producer()
{
	byte k = 0, p, c, i, st;
	bool x, ge, gc;

	do
	:: k == PUSHES -> break
	:: else ->
		atomic { load_tail(c, x) };
		if
		:: x -> eclosed++; goto next    /* CLOSED: FO_ECLOSED, nothing claimed */
		:: else -> skip
		fi;
		p = c;
		atomic { buffer(ADDR_TAIL, p + 1, false) };   /* the claim: a plain store */
		/* compiler barrier; the gate load may pass the buffered claim */
		atomic { ge = gempty; gc = gclosing };
		st = S_ITEM;
		if
		:: ge -> st = S_DEAD
		:: else -> skip
		fi;
		if
		:: gc ->
#ifdef BROKEN_CLOSING_OK
			skip
#else
			/* fenced_gate(): the lock; close published the end under it */
			atomic { !lock -> lock = true; drain_all() };
			assert(endpos != NONE);
			if
			:: p + 1 <= endpos -> skip                 /* close counted it: store */
			:: else ->
				assert(p == endpos);
				buffer(ADDR_TAIL, p, true);       /* put the word back, CLOSED */
				atomic { drain_all(); lock = false };
				eclosed++;
				goto next
			fi;
			atomic { drain_all(); lock = false }
#endif
		:: else -> skip
		fi;
		atomic { buffer(1 + p, st, false) };   /* the slot store (release) */
		res[p] = 1;
next:
		k++
	od;
	pdone = true
}

/* The store buffer drains on its own, one entry at a time, at any moment. */
proctype drain()
{
	do
	:: atomic { sbn > 0 -> drain_one() }
	:: atomic { pdone && sbn == 0 -> break }
	od
}

proctype closer()
{
	byte t;
	atomic { !lock -> lock = true };
	gclosing = true;                       /* seq_cst RMW on the gate */
#ifndef BROKEN_CLOSE_NO_MB
	atomic { membarrier() };
#endif
	atomic {
		t = tcount;                    /* the end: the count we load */
		if                             /* CAS {t} -> {t, CLOSED} (may fail) */
		:: !tclosed && tcount == t -> tclosed = true
		:: else -> skip
		fi
	};
	endpos = t;                            /* release, under the lock */
	lock = false;
	cdone = true
}

/* A cursor: created before everything (default) or concurrently, as the first one (LATE);
 * then reads until FO_END. */
proctype reader()
{
	byte pos, v;
#ifdef LATE
	atomic { !lock -> lock = true };
	gempty = false;                        /* seq_cst RMW on the gate */
#ifndef BROKEN_FIRST_NO_MB
	atomic { membarrier() };
#endif
	rstart = tcount;
	lock = false;
#else
	rstart = 0;
#endif
	pos = rstart;
	do
	:: atomic { pos < N && slot[pos] != S_NULL -> v = slot[pos] };
		assert(v != S_DEAD);           /* never an item destroyed at its push */
		rread++;
		pos++
	:: atomic { (pos == N || slot[pos] == S_NULL) && endpos != NONE && pos >= endpos -> break }
	od;
	/* FO_END exactly at the end; every position from the start to it read once (a cursor
	 * created after close may start past the end: a doomed claim not yet put back) */
	if
	:: rstart <= endpos -> assert(pos == endpos && rread == endpos - rstart)
	:: else -> assert(rread == 0)
	fi;
	rdone = true
}

init
{
	byte q;
#ifndef LATE
	gempty = false;
#endif
	atomic {
		run producer();
		run drain();
		run closer();
		run reader()
	};
	(pdone && sbn == 0 && cdone && rdone);
	/* The end: every OK push below it and stored, nothing at or past it. */
	q = 0;
	do
	:: q < N ->
		if
		:: res[q] == 1 -> assert(q < endpos && slot[q] != S_NULL)
		:: else -> assert(slot[q] == S_NULL)
		fi;
		if
		:: q >= endpos -> assert(slot[q] == S_NULL)
		:: else -> skip
		fi;
		q++
	:: else -> break
	od;
	assert(eclosed == PUSHES - endpos);
	assert(tclosed && tcount == endpos)     /* later pushes fail at once */
}
