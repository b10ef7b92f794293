/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * trim.pml - spin model of trimming a lapped passive cursor's segment (src/segment.c
 * seg_trim_locked, src/cursor.c take_passive; design.md §6 "A stalled passive cursor").
 * See docs/models/README.md.
 *
 * One fully written segment of S slots (positions 0..S-1, every slot an item), still linked
 * (the link is one reference), pinned by NP passive cursors standing at position 0.  The
 * reclaimer unlinks it once, at any moment, under the lock: it adds DEAD and its own pin in
 * one RMW; if nobody else pinned the segment it releases it at once (destroys every item);
 * otherwise it loads plo then phi of every passive, destroys each item outside every
 * [plo, phi) and leaves DEAD_ITEM in its slot (one step per slot), then drops its pin, and
 * whoever drops the last pin releases the segment (destroys every item not DEAD_ITEM).
 *
 * A passive makes CALLS read calls and then closes (unpins).  Each call: phi = INF, then
 * plo = pos (the publication), then the DEAD check; DEAD -> lapped (it unpins, reads no slot
 * of the segment, and is done here: what it pins next is another segment); else it reads
 * 0..S-pos slots (one step each) and publishes phi = pos.  The batch [plo, pos) it returned
 * is in use until its next call or close: asserted not destroyed just before either.
 *
 * Memory model: sequentially consistent; the C code uses seq_cst for the passive's two stores
 * and first DEAD check and for the reclaimer's RMW and loads, so the store-load pairs
 * (plo then DEAD / DEAD then plo) are ordered as here.
 *
 * Properties:
 *   - a passive never reads a trimmed slot (DEAD_ITEM) or a destroyed item;
 *   - an item a passive returned is not destroyed before that passive's next call or close;
 *   - every item is destroyed exactly once (checked at the end).
 *
 * Deliberately broken variants (each must make spin report an error):
 *   -DBROKEN_TRIM_ORDER  the passive checks DEAD before it publishes plo/phi: the reclaimer
 *                        reads the previous call's range and trims what this call returns;
 *   -DBROKEN_TRIM_NOPIN  the reclaimer trims without its own pin (fetch_or DEAD only): a
 *                        passive's last unpin releases the segment while the trim runs, and
 *                        an item is destroyed twice.
 */

#ifndef S
#define S     3        /* slots */
#endif
#ifndef NP
#define NP    1        /* passive cursors */
#endif
#ifndef CALLS
#define CALLS 2        /* read calls per passive before it closes */
#endif
#define INF   255

#define ITEM  1
#define DEADI 2        /* DEAD_ITEM */

byte slot[S];
byte destroyed[S];
byte pins = NP;        /* the passives' pins (the link is `linked`) */
bool linked = true;
bool dead = false;
bool released = false;
byte plo[NP];
byte phi[NP];
byte done = 0;
byte i;                /* the reclaimer's scratch */
byte kp;

/* fo__seg_release: destroy every item not DEAD_ITEM (the slot keeps its value). */
inline release()
{
	assert(!released);
	released = true;
	i = 0;
	do
	:: i == S -> break
	:: else ->
		if
		:: slot[i] == ITEM -> destroyed[i]++
		:: else -> skip
		fi;
		i++
	od;
	i = 0
}

/* seg_unpin(): the last of {link, pins} releases. */
inline unpin()
{
	atomic {
		pins--;
		if
		:: pins == 0 && dead -> release()
		:: else -> skip
		fi
	}
}

/* Does some passive's [plo, phi) hold position q?  (The loads happened before.) */
byte lo[NP];
byte hi[NP];
bool keep;

proctype reclaimer()
{
	byte q, p;
	bool trimming;
	atomic {
		dead = true;
		linked = false;
		if
		:: pins == 0 -> release(); trimming = false
		:: else ->
#ifndef BROKEN_TRIM_NOPIN
			pins++; /* the trim's own pin */
#endif
			trimming = true
		fi
	}
	if
	:: !trimming -> goto out
	:: else -> skip
	fi;
	/* loads: plo then phi of every passive, one step each */
	p = 0;
	do
	:: p == NP -> break
	:: else -> lo[p] = plo[p]; hi[p] = phi[p]; p++
	od;
	q = 0;
	do
	:: q == S -> break
	:: else ->
		atomic {
			keep = false;
			p = 0;
			do
			:: p == NP -> break
			:: else ->
				if
				:: lo[p] <= q && q < hi[p] -> keep = true
				:: else -> skip
				fi;
				p++
			od;
			if
			:: !keep && slot[q] == ITEM -> destroyed[q]++; slot[q] = DEADI
			:: else -> skip
			fi;
			p = 0
		}
		q++
	od;
#ifndef BROKEN_TRIM_NOPIN
	unpin();
#endif
out:
	skip
}

proctype passive(byte me)
{
	byte pos = 0, blo = 0, calls = 0, k;
	bool isdead;
	do
	:: calls == CALLS -> break
	:: else ->
		/* the batch of the last call is still in use up to here */
		k = blo;
		do
		:: k == pos -> break
		:: else -> assert(destroyed[k] == 0); k++
		od;
		calls++;
#ifdef BROKEN_TRIM_ORDER
		isdead = dead;
#endif
		phi[me] = INF;
		plo[me] = pos;
#ifndef BROKEN_TRIM_ORDER
		isdead = dead;
#endif
		if
		:: isdead ->
			unpin();      /* lapped: pins oldest elsewhere, FO_LAGGED */
			goto lapped
		:: else -> skip
		fi;
		blo = pos;
		do
		:: pos < S ->
			atomic {
				assert(slot[pos] == ITEM && destroyed[pos] == 0);
				pos++
			}
		:: true -> break
		od;
		phi[me] = pos
	od;
	k = blo;
	do
	:: k == pos -> break
	:: else -> assert(destroyed[k] == 0); k++
	od;
	unpin(); /* close */
lapped:
	done++
}

init {
	atomic {
		i = 0;
		do
		:: i == S -> break
		:: else -> slot[i] = ITEM; i++
		od;
		i = 0;
		do
		:: i == NP -> break
		:: else -> plo[i] = 0; phi[i] = 0; run passive(i); i++
		od;
		i = 0;
		run reclaimer()
	}
	(done == NP && _nr_pr == 1);
	/* Nothing left pinned or linked: every item destroyed exactly once. */
	assert(released && !linked);
	i = 0;
	do
	:: i == S -> break
	:: else -> assert(destroyed[i] == 1); i++
	od
}
