/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * bias.pml - spin model of the biased claim of a default-options stream (src/stream.c
 * push_one_plain(..., true), push_fenced(..., biased), bias_enter(), bias_leave(),
 * bias_revoke(), stream_end(); design.md §4 "A default stream biased to its first producer").
 *
 * The owner (the first thread that pushed) claims with a plain store of the tail word, as
 * the fenced claim does, between `busy = 1; compiler barrier; load gate` (enter: REVOKED ->
 * busy = 0, take the CAS claim) and `busy = 0; compiler barrier; load gate` (leave: REVOKED
 * -> FUTEX_WAKE(busy)).  A second producer revokes: lock, set REVOKED, unlock, membarrier,
 * wait until busy is 0 (FUTEX_WAIT(busy, 1) when it is 1), lock, clear BIASED, unlock; then
 * it claims by CAS, as does the owner once its enter saw REVOKED (it first runs the same
 * revocation, which finds BIASED clear or waits for it).  With -DCLOSE a closer runs the
 * close of the mode the word shows under the lock: biased, the fenced close (set CLOSING,
 * membarrier, load, CAS to CLOSED; a claim that saw CLOSING decides under the lock against
 * the end, a doomed one puts the word back with CLOSED); revoked, fetch_or of CLOSED.
 *
 * Memory model (as fenced.pml).  Sequentially consistent except the owner's stores: they go
 * through a FIFO store buffer that drains one entry at a time at any moment, entirely at the
 * owner's own locked instruction, lock or system call, and entirely at another thread's
 * membarrier (the owner runs a full barrier at some instant of the call).  The owner's loads
 * of the tail word and of busy forward from its buffer.  The revoker's and the closer's
 * accesses are seq_cst.
 *
 * Properties (assertions): no position is claimed twice (a slot is stored at most once);
 * every push that returned FO_OK has its item in the slot it claimed, below the end with
 * CLOSE; every position claimed and not doomed is stored (nothing lost: without CLOSE the
 * word counts every push and every slot is full); no slot at or past the end is written.
 * No invalid end state (the revoker asleep for ever on busy, a thread waiting for the lock
 * for ever).
 *
 * Deliberately broken variants (must fail):
 *   -DBROKEN_NO_MB       the revoker loads busy without the membarrier: it sees the owner idle
 *                        while the owner's busy = 1 and claim sit in its store buffer, clears
 *                        BIASED, CASes a position, and the owner's plain store claims it again;
 *   -DBROKEN_LEAVE_EARLY the owner clears busy before its claim store: the revoker sees it
 *                        idle between the two;
 *   -DBROKEN_NO_WAIT     the revoker clears BIASED without waiting for busy to be 0.
 */

#ifndef OPUSH
#define OPUSH 2                  /* the owner's pushes */
#endif
#ifndef RPUSH
#define RPUSH 2                  /* the revoker's pushes */
#endif
#define N      (OPUSH + RPUSH)
#define NONE   255
#define SBN    (5 * OPUSH)       /* busy, tail, slot, busy (+ a doomed claim's repair) */

#define ADDR_TAIL 0              /* buffer entry addresses: the tail word, busy, 2 + q: slot q */
#define ADDR_BUSY 1

/* Memory. */
byte tcount = 0;                 /* the tail word: claimed count ... */
bool tclosed = false;            /* ... CLOSED ... */
bool tbiased = true;             /* ... and BIASED | FENCED (cleared together) */
byte slot[N];                    /* 0 empty, else 1 + the pusher (0 owner, 1 revoker) */
bool grevoked = false;           /* gate REVOKED */
bool gclosing = false;           /* gate CLOSING */
bool busy = false;
bool asleep = false;             /* the revoker in FUTEX_WAIT(busy, 1) */
byte endpos = NONE;              /* s->end, published under the lock (CLOSE) */
bool lock = false;

/* The owner's store buffer (FIFO). */
byte sba[SBN];
byte sbc[SBN];                   /* value: count (tail), busy, or slot contents */
bool sbx[SBN];                   /* value: CLOSED bit (tail) */
bool sby[SBN];                   /* value: BIASED bit (tail) */
byte sbn = 0;
byte d_i;

byte res[N];                     /* 1 + the pusher whose FO_OK push claimed q */
byte ok = 0;                     /* FO_OK pushes */
byte eclosed = 0;                /* FO_ECLOSED pushes */
bool odone = false;
bool rdone = false;
bool cdone = false;

inline commit(i)
{
	if
	:: sba[i] == ADDR_TAIL -> tcount = sbc[i]; tclosed = sbx[i]; tbiased = sby[i]
	:: sba[i] == ADDR_BUSY -> busy = sbc[i]
	:: else ->
		assert(slot[sba[i] - 2] == 0);   /* no position stored twice */
		slot[sba[i] - 2] = sbc[i]
	fi
}

inline drain_one()
{
	commit(0);
	d_i = 1;
	do
	:: d_i < sbn -> sba[d_i - 1] = sba[d_i]; sbc[d_i - 1] = sbc[d_i]; sbx[d_i - 1] = sbx[d_i];
		sby[d_i - 1] = sby[d_i]; d_i++
	:: else -> break
	od;
	sbn--;
	sba[sbn] = 0; sbc[sbn] = 0; sbx[sbn] = false; sby[sbn] = false
}

inline drain_all()
{
	do
	:: sbn > 0 -> drain_one()
	:: else -> break
	od
}

inline buffer(a, c, x, y)
{
	assert(sbn < SBN);
	sba[sbn] = a; sbc[sbn] = c; sbx[sbn] = x; sby[sbn] = y; sbn++
}

/* The owner's load of the tail word: its newest buffered store, else memory. */
inline load_tail(c, x, y)
{
	c = tcount; x = tclosed; y = tbiased;
	i = 0;
	do
	:: i < sbn -> if
	              :: sba[i] == ADDR_TAIL -> c = sbc[i]; x = sbx[i]; y = sby[i]
	              :: else -> skip
	              fi; i++
	:: else -> break
	od
}

/* The owner's load of busy (forwarded). */
inline load_busy(b)
{
	b = busy;
	i = 0;
	do
	:: i < sbn -> if
	              :: sba[i] == ADDR_BUSY -> b = sbc[i]
	              :: else -> skip
	              fi; i++
	:: else -> break
	od
}

/* membarrier(PRIVATE_EXPEDITED), from another thread: the owner's full barrier. */
inline membarrier()
{
	drain_all()
}

/* bias_revoke(), by @me (0: the owner, whose stores are buffered; 1: the revoker). */
inline revoke(me)
{
	atomic { !lock -> lock = true; if :: me == 0 -> drain_all() :: else -> skip fi };
	if
	:: tbiased ->
		grevoked = true;                       /* seq_cst RMW on the gate */
		atomic { if :: me == 0 -> drain_all() :: else -> skip fi; lock = false };
#ifndef BROKEN_NO_MB
		atomic { membarrier() };
#endif
#ifndef BROKEN_NO_WAIT
		/* wait until busy is 0: the owner's own busy forwards from its buffer */
		do
		:: me == 0 -> load_busy(b); assert(!b); break
		:: me != 0 ->
			atomic {
				if
				:: !busy -> break
				:: else -> asleep = true  /* FUTEX_WAIT(busy, 1): the value is 1 */
				fi
			};
			!asleep                        /* woken (FUTEX_WAKE), then look again */
		od;
#endif
		atomic { !lock -> lock = true; if :: me == 0 -> drain_all() :: else -> skip fi };
		tbiased = false;                       /* seq_cst fetch_and */
		lock = false
	:: else ->
		lock = false
	fi
}

/* A CAS claim (push_batch): the locked instruction drains the owner's buffer. */
inline cas_claim(me, p, closed)
{
	atomic {
		if :: me == 0 -> drain_all() :: else -> skip fi;
		assert(!tbiased);
		closed = tclosed;
		p = tcount;
		if
		:: !closed -> tcount = p + 1
		:: else -> skip
		fi
	}
}

proctype owner()
{
	byte k = 0, p, c, i;
	bool x, y, b, gr, gc, closed;

	do
	:: k == OPUSH -> break
	:: else ->
retry:
		atomic { load_tail(c, x, y) };
		if
		:: x -> eclosed++; goto next           /* CLOSED: FO_ECLOSED */
		:: else -> skip
		fi;
		if
		:: !y -> goto cas                      /* revoked: the CAS claim */
		:: else -> skip
		fi;
		/* enter */
		atomic { buffer(ADDR_BUSY, 1, false, false) };
		/* compiler barrier: the gate load may pass the buffered stores */
#ifndef BROKEN_LEAVE_EARLY
		atomic { gr = grevoked };
		if
		:: gr ->
			atomic { buffer(ADDR_BUSY, 0, false, false) };
			atomic { drain_all(); asleep = false };   /* the wake (a system call) */
			revoke(0);
			goto retry
		:: else -> skip
		fi;
#else
		atomic { gr = grevoked };
		if
		:: gr -> atomic { buffer(ADDR_BUSY, 0, false, false) }; revoke(0); goto retry
		:: else -> skip
		fi;
		atomic { buffer(ADDR_BUSY, 0, false, false) };   /* broken: left before the claim */
#endif
		p = c;
		atomic { buffer(ADDR_TAIL, p + 1, false, true) };   /* the claim: a plain store */
		atomic { gc = gclosing };
		if
		:: gc ->
			/* fenced_closing(): the lock; close published the end under it */
			atomic { !lock -> lock = true; drain_all() };
			assert(endpos != NONE);
			if
			:: p + 1 <= endpos -> atomic { drain_all(); lock = false }
			:: else ->
				assert(p == endpos);
				buffer(ADDR_TAIL, p, true, true);    /* the word back, CLOSED */
				atomic { drain_all(); lock = false };
				eclosed++;
				goto leave
			fi
		:: else -> skip
		fi;
		atomic { buffer(2 + p, 1, false, false) };   /* the slot store (release) */
		res[p] = 1;
		ok++;
leave:
#ifndef BROKEN_LEAVE_EARLY
		atomic { buffer(ADDR_BUSY, 0, false, false) };   /* busy = 0 (release) */
#endif
		atomic { gr = grevoked };
		if
		:: gr -> atomic { drain_all(); asleep = false }   /* FUTEX_WAKE(busy) */
		:: else -> skip
		fi;
		goto next;
cas:
		cas_claim(0, p, closed);
		if
		:: closed -> eclosed++; goto next
		:: else -> skip
		fi;
		atomic { buffer(2 + p, 1, false, false) };
		res[p] = 1;
		ok++;
next:
		k++
	od;
	odone = true
}

/* The owner's store buffer drains on its own, one entry at a time, at any moment. */
proctype drain()
{
	do
	:: atomic { sbn > 0 -> drain_one() }
	:: atomic { odone && sbn == 0 -> break }
	od
}

proctype revoker()
{
	byte k = 0, p, i;
	bool b, closed;
	do
	:: k == RPUSH -> break
	:: else ->
		if
		:: tclosed -> eclosed++; goto rnext
		:: else -> skip
		fi;
		if
		:: tbiased -> revoke(1)                 /* owner is another thread: revoke */
		:: else -> skip
		fi;
		cas_claim(1, p, closed);
		if
		:: closed -> eclosed++; goto rnext
		:: else -> skip
		fi;
		atomic { assert(slot[p] == 0); slot[p] = 2 };
		res[p] = 2;
		ok++;
rnext:
		k++
	od;
	rdone = true
}

proctype closer()
{
	byte t;
	atomic { !lock -> lock = true };
	if
	:: tbiased ->                              /* the fenced close */
		gclosing = true;
		atomic { membarrier() };
		atomic {
			t = tcount;
			if
			:: !tclosed && tcount == t -> tclosed = true
			:: else -> skip
			fi
		}
	:: else ->
		atomic { t = tcount; tclosed = true }  /* fetch_or */
	fi;
	endpos = t;
	lock = false;
	cdone = true
}

init
{
	byte q;
	atomic {
		run owner();
		run drain();
		run revoker();
#ifdef CLOSE
		run closer()
#endif
	};
#ifdef CLOSE
	(odone && sbn == 0 && rdone && cdone);
#else
	(odone && sbn == 0 && rdone);
	endpos = tcount;
	assert(tcount == N && ok == N);            /* every push claimed once, nothing lost */
#endif
	q = 0;
	do
	:: q < N ->
		if
		:: res[q] != 0 -> assert(q < endpos && slot[q] == res[q])
		:: else -> assert(slot[q] == 0)
		fi;
		if
		:: q < endpos -> assert(slot[q] != 0)   /* below the end: stored */
		:: else -> skip
		fi;
		q++
	:: else -> break
	od;
	assert(ok + eclosed == N && ok == endpos);
	assert(tcount == endpos)
}
