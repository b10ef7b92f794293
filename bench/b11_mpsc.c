/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * b11_mpsc.c - B11: 2 producers -> 1 stream -> 1 cursor, items/s (both
 * producers' items together).
 *
 * fanout (default options: several producers) against ck_ring MPSC of
 * pointers, liburcu wfcqueue with a node pool (the targets' peers) and with
 * malloc per node, and mutex+condvar.  The consumer checks each producer's
 * items arrive in order and complete.
 *
 *   b11_mpsc [--items N] [--runs R] [--quick] [--capacity N] [--impl a,b]
 */
#include "peers.h"

int main(int argc, char **argv)
{
	static const int ncons[] = {1};
	return pq_tput_main(argc, argv, "B11", "2 producers -> 1 cursor", PQ_FANOUT, 2, ncons, 1,
	                    "fanout,ckring,wfcq_pool,wfcq_malloc,mutex");
}
