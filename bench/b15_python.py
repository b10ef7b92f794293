#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (c) 2026 The fanout authors
"""B15 peer: Python multiprocessing.Pool(2).imap over 64-byte items, trivial function.

    b15_python.py ITEMS CHUNKSIZE   -> prints "items=N wall_ns=T" (the imap loop only,
                                       after the pool has started)
"""
import multiprocessing as mp
import sys
import time


def ident(x):
    return x


def main():
    n = int(sys.argv[1])
    chunksize = int(sys.argv[2])
    data = [bytes(64) for _ in range(n)]
    with mp.get_context("fork").Pool(2) as pool:
        pool.map(ident, range(4))  # the workers are up
        t0 = time.perf_counter_ns()
        count = 0
        for _ in pool.imap(ident, data, chunksize=chunksize):
            count += 1
        t1 = time.perf_counter_ns()
    print(f"items={count} wall_ns={t1 - t0}")


if __name__ == "__main__":
    main()
