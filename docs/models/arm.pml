/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * arm.pml - spin model of the readiness handshake of src/readiness.c (design.md §7):
 * fo_cursor_arm() + fo__signal_watchers() (the event-loop path: an eventfd, or the notify
 * hook) and fo__waitq_prepare()/fo__waitq_sleep()/fo__waitq_wake() (the futex path of fo_cursor_next),
 * which share one `need` word (NEED_SLEEP | NEED_WATCH) that a waker clears with one
 * exchange.  See docs/models/README.md for how to run it and what it proves.
 *
 * Processes
 *   producer(0), producer(1)  claim a position (CAS on tail), store the item into its slot,
 *                             light fence, then fo__waitq_wake(): if need != 0 (relaxed load),
 *                             exchange it with 0; NEED_SLEEP: gen++ and FUTEX_WAKE;
 *                             NEED_WATCH: for the armed watcher, busy++, CAS armed 1->0,
 *                             write the eventfd (or call the hook), busy--.
 *   watcher                   an event-loop reader (active cursor + fd): read while ready;
 *                             on FO_EMPTY call fo_cursor_arm() (drain the eventfd, store
 *                             armed = 1, fetch_or NEED_WATCH, heavy fence, re-check); if it
 *                             returns 0, sleep in epoll until the eventfd is non-zero.  After
 *                             the last item it closes its cursor (armed = CLOSED, wait for
 *                             busy == 0).
 *   sleeper                   a blocking reader (second active cursor, fo_cursor_next):
 *                             gen is read BEFORE announcing NEED_SLEEP, heavy fence,
 *                             re-check, futex_wait(&gen, ticket).
 *
 * Memory model.  Every step is sequentially consistent except the one reordering the
 * protocol has to survive: a producer's release store of the slot may sit in its store
 * buffer while its later relaxed load of `need` executes (x86-TSO; the light fence is only
 * a compiler barrier when membarrier() is available).  The buffer drains at the producer's
 * next locked instruction (CAS/exchange), at any moment by itself, or when a reader runs
 * its heavy fence: membarrier(PRIVATE_EXPEDITED) makes every running thread execute a full
 * barrier, i.e. forces the producer's earlier store visible before the reader's re-check.
 * The readers' own announcements are locked RMWs / seq_cst stores: visible at once.
 * Build with -DNO_MEMBARRIER for the fallback (both fences are seq_cst fences).
 *
 * Properties
 *   - no invalid end state: a reader blocked forever (in epoll or on the futex) while an
 *     item is published is a deadlock, reported by the safety run (`pan`, no claim);
 *   - ltl no_lost_wakeup: <> (both readers consumed every item);
 *   - assertions: every signal follows an arm (at most one signal per armed -> signalled
 *     transition), no signal after the cursor's close returned, and the readers see the
 *     items of each position exactly once.
 *
 * Deliberately broken variants (each must make spin report an error, so the model has
 * teeth): -DBROKEN_NO_FENCE (the readers' heavy fence is missing), -DBROKEN_GEN_AFTER
 * (the sleeper reads gen after announcing), -DBROKEN_ANNOUNCE_FIRST (fo_cursor_arm sets
 * NEED_WATCH before storing armed = 1), -DBROKEN_NO_RECHECK (arm sleeps without the
 * re-check), -DBROKEN_CLOSE_NOWAIT (close does not wait for busy == 0).
 */

#ifndef PER
#define PER 2                     /* items per producer */
#endif
#define NPROD 2
#define TOTAL (NPROD * PER)

#define NEED_SLEEP 1
#define NEED_WATCH 2

#define ARM_IDLE   0
#define ARM_ARMED  1
#define ARM_CLOSED 2

#define NONE 255

bool slot[TOTAL];       /* memory: the item pointer of each position is non-NULL */
byte tail = 0;          /* claimed positions */
byte sb[NPROD];         /* each producer's store buffer: a pending slot store, or NONE */

byte need = 0;          /* s->data.need */
byte gen = 0;           /* s->data.gen */
bool fsleep = false;    /* the sleeper is queued on the futex */

byte armed = ARM_IDLE;  /* the watcher cursor's armed word */
byte busy = 0;          /* producers inside a signal of the watcher */
bool efd = false;       /* the watcher's eventfd is readable (counter != 0) */
bool closed = false;    /* fo_cursor_close(watcher) has returned */

byte wpos = 0;          /* items the watcher consumed */
byte spos = 0;          /* items the sleeper consumed */

/* The store buffer of producer i drains to memory. */
inline flush(i)
{
	atomic {
		if
		:: sb[i] != NONE -> slot[sb[i]] = true; sb[i] = NONE
		:: else -> skip
		fi
	}
}

/* fo__fence_heavy(): membarrier forces every producer's earlier stores visible. */
inline fence_heavy()
{
#ifndef BROKEN_NO_FENCE
	atomic { flush(0); flush(1) }
#else
	skip
#endif
}

proctype producer(byte id)
{
	byte p, k, n;

	k = 0;
	do
	:: k == PER -> break
	:: else ->
		/* claim: a locked CAS on tail, which also drains our store buffer */
		atomic { flush(id); p = tail; tail++ };
		/* store the item (release): may stay in the store buffer */
		sb[id] = p;
		/* it may drain early, on its own */
		if
		:: atomic { flush(id) }
		:: skip
		fi;
#ifdef NO_MEMBARRIER
		atomic { flush(id) };   /* fo__fence_light() is a seq_cst fence */
#endif
		/* fo__waitq_wake(): one relaxed load when nobody waits */
		n = need;
		if
		:: n != 0 ->
			atomic { flush(id); n = need; need = 0 };   /* exchange (locked) */
			if
			:: (n & NEED_SLEEP) ->
				gen++;                   /* seq_cst fetch_add */
				fsleep = false           /* FUTEX_WAKE all */
			:: else -> skip
			fi;
			if
			:: (n & NEED_WATCH) ->
				/* fo__signal_watchers(): relaxed load of armed, then busy++, CAS */
				if
				:: armed == ARM_ARMED ->
					busy++;
					if
					:: atomic { armed == ARM_ARMED -> armed = ARM_IDLE };   /* CAS won */
						/* write(efd) or notify(arg): a separate step, before
						 * busy--, and never after close returned */
						assert(!closed);
						efd = true
					:: else -> skip                                          /* CAS lost */
					fi;
					busy--
				:: else -> skip
				fi
			:: else -> skip
			fi
		:: else -> skip
		fi;
		k++
	od;
	flush(id)   /* the buffer drains eventually */
}

/* fo_cursor_arm() + epoll_wait() on the cursor's eventfd. */
proctype watcher()
{
	do
	:: wpos == TOTAL -> break
	:: else ->
		if
		:: slot[wpos] -> wpos++                       /* try_next: FO_OK */
		:: else ->                                    /* FO_EMPTY: arm */
			efd = false;                          /* read(efd): drop old signals */
#ifndef BROKEN_ANNOUNCE_FIRST
			armed = ARM_ARMED;           /* seq_cst store */
			need = need | NEED_WATCH;             /* seq_cst fetch_or */
#else
			need = need | NEED_WATCH;
			armed = ARM_ARMED;
#endif
			fence_heavy();
#ifndef BROKEN_NO_RECHECK
			if
			:: slot[wpos] ->                      /* probe_ready(): returns 1 */
				atomic { if :: armed == ARM_ARMED -> armed = ARM_IDLE :: else -> skip fi }
			:: else ->                            /* returns 0: epoll_wait */
				efd
			fi
#else
			efd
#endif
		fi
	od;
	/* fo_cursor_close(): no signal may run after it returns */
	armed = ARM_CLOSED;
#ifndef BROKEN_CLOSE_NOWAIT
	busy == 0;
#endif
	closed = true
}

/* fo_cursor_next(): fo__waitq_prepare(), re-check, futex_wait(&gen, ticket). */
proctype sleeper()
{
	byte g;
	do
	:: spos == TOTAL -> break
	:: else ->
		if
		:: slot[spos] -> spos++
		:: else ->
#ifndef BROKEN_GEN_AFTER
			g = gen;                              /* the ticket, BEFORE announcing */
			need = need | NEED_SLEEP;             /* seq_cst fetch_or */
#else
			need = need | NEED_SLEEP;
			g = gen;
#endif
			fence_heavy();
			if
			:: slot[spos] -> skip                 /* re-check: ready, read it */
			:: else ->
				atomic {                      /* futex_wait: check and queue */
					if
					:: gen != g -> skip
					:: else -> fsleep = true
					fi
				};
				!fsleep                       /* until FUTEX_WAKE */
			fi
		fi
	od
}

#ifdef NO_WATCHER
#define WDONE true
#else
#define WDONE (wpos == TOTAL)
#endif
#ifdef NO_SLEEPER
#define SDONE true
#else
#define SDONE (spos == TOTAL)
#endif
ltl no_lost_wakeup { <> (WDONE && SDONE) }

init
{
	sb[0] = NONE;
	sb[1] = NONE;
	atomic {
		run producer(0);
		run producer(1);
#ifndef NO_WATCHER
		run watcher();
#endif
#ifndef NO_SLEEPER
		run sleeper()
#endif
	}
}
