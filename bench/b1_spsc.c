/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * b1_spsc.c - B1: 1 producer -> 1 cursor, items/s.
 *
 * fanout (single_producer) and fanout_mp (default options) against ck_ring
 * SPSC of pointers (the target's peer), ck_ring SPSC copying the 64-byte item
 * (ckring_copy, for reference), liburcu wfcqueue (node pool and
 * malloc per node), mutex+condvar and ZeroMQ PUB/SUB.  See peers.h for each
 * implementation.  Every consumer checks seq 0..N-1 in order; exit 1 if not.
 *
 *   b1_spsc [--items N] [--runs R] [--quick] [--capacity N] [--impl a,b]
 */
#include "peers.h"

int main(int argc, char **argv)
{
	static const int ncons[] = {1};
	return pq_tput_main(argc, argv, "B1", "1 producer -> 1 cursor", PQ_FANOUT, 1, ncons, 1,
	                    "fanout,fanout_mp,ckring,ckring_copy,wfcq_pool,wfcq_malloc,mutex,zmq");
}
