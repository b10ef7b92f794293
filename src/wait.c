/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/* wait.c - futex sleeps with absolute monotonic deadlines, and the heavy
 * half of the asymmetric fence (membarrier). */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

int fo__have_membarrier;

__attribute__((constructor)) static void membarrier_probe(void)
{
#if !(defined(FO_TSAN) && FO_TSAN)
	long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
	if (cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
	    syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0)
		fo__have_membarrier = 1;
#endif
}

void fo__fence_heavy(void)
{
	if (!fo__have_membarrier) {
		/* Without membarrier the light side is a full fence too. */
		atomic_thread_fence(memory_order_seq_cst);
		return;
	}
	if (fo__likely(syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0))
		return;
	/* Registration is process-wide and survives fork(), so this is not
	 * expected; register again once.  A plain fence here would not do: the
	 * light sides (and a fenced stream's claim) are compiler barriers only,
	 * so a silent fallback would lose wake-ups or items (design.md §4, §7). */
	if (syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0 &&
	    syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0)
		return;
	fo__panic(__FILE__, __LINE__, "membarrier(PRIVATE_EXPEDITED) failed after registration");
}

uint64_t fo__now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t fo__deadline(int64_t timeout_ns)
{
	uint64_t now = fo__now_ns();
	if (timeout_ns < 0 || (uint64_t)timeout_ns > FO__NO_DEADLINE - 1 - now)
		return FO__NO_DEADLINE;
	return now + (uint64_t)timeout_ns;
}

int fo__futex_wait(_Atomic uint32_t *word, uint32_t expect, uint64_t deadline)
{
	struct timespec ts, *tp = NULL;
	if (deadline != FO__NO_DEADLINE) {
		if (fo__now_ns() >= deadline)
			return FO_TIMEDOUT;
		ts.tv_sec = (time_t)(deadline / 1000000000u);
		ts.tv_nsec = (long)(deadline % 1000000000u);
		tp = &ts;
	}
	/* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, so a
	 * spurious wake-up needs no recomputation. */
	long r = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG,
	                 expect, tp, NULL, FUTEX_BITSET_MATCH_ANY);
	if (r == -1 && errno == ETIMEDOUT)
		return FO_TIMEDOUT;
	return 0;
}

void fo__futex_wake_all(_Atomic uint32_t *word)
{
	syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, INT_MAX, NULL, NULL,
	        0);
}

static bool any_changed(_Atomic uint64_t *const *words, const uint64_t *old, size_t n)
{
	/* relaxed: the caller re-checks under its lock, which orders the data. */
	for (size_t i = 0; i < n; i++)
		if (atomic_load_explicit(words[i], memory_order_relaxed) != old[i])
			return true;
	return false;
}

/* A sched_yield() with nobody else to run is a bare system call, ~1 us in
 * a VM; one that ran another thread lasts at least that thread's run.
 * 20 000 ticks: 4-20 us at 1-5 GHz (fo__ticks). */
#define YIELD_RAN_TICKS 20000u

bool fo__wait_yield(void)
{
	uint64_t t0 = fo__ticks();
	sched_yield();
	return fo__ticks() - t0 > YIELD_RAN_TICKS;
}

bool fo__brief_wait(_Atomic uint64_t *const *words, const uint64_t *old, size_t n)
{
	for (unsigned spin = 0; spin < 8; spin++) {
		for (unsigned k = 1u << spin; k; k--)
			fo__cpu_relax();
		if (any_changed(words, old, n))
			return true;
	}
	for (int y = 0; y < 3; y++) { /* more threads than cores: let the publisher run */
		sched_yield();
		if (any_changed(words, old, n))
			return true;
	}
	return false;
}
