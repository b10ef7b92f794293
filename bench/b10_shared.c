/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * b10_shared.c - B10: 1 producer -> a share group of 2 members, each item to
 * exactly one member.
 *
 * fanout (a FO_SHARED cursor and one shared fork, single_producer) against
 * ck_ring SPMC of pointers (the target's peer), mutex+condvar (one queue, two
 * consumers taking batches) and liburcu wfcqueue (dequeue under its lock).
 * Checks: every item delivered once (count and sum of seq), increasing seq
 * per member.
 *
 *   b10_shared [--items N] [--runs R] [--quick] [--capacity N] [--impl a,b]
 */
#include "peers.h"

int main(int argc, char **argv)
{
	static const int ncons[] = {2};
	return pq_tput_main(argc, argv, "B10", "1 producer -> share group of 2", PQ_SHARED, 1,
	                    ncons, 1, "fanout,fanout_mp,ckring,wfcq_pool,wfcq_malloc,mutex");
}
