/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/* alloc.c - the injectable allocator and the invariant-failure exit. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fanout/alloc.h>
#include "internal.h"

static void *default_alloc(size_t size, void *ctx)
{
	void *p = NULL;
	(void)ctx;
	/* 64-byte alignment: segments and cursors pad hot fields to lines. */
	if (posix_memalign(&p, FO_CACHELINE, size ? size : 1) != 0)
		return NULL;
	return p;
}

static void default_free(void *p, void *ctx)
{
	(void)ctx;
	free(p);
}

static fo_allocator allocator = {default_alloc, default_free, NULL};

void fo_set_allocator(const fo_allocator *a)
{
	/* Destroyed streams may still hand segments to the old free() after
	 * a grace period: let them, before the hooks change. */
	fo__rcu_barrier();
	if (a && a->alloc && a->free)
		allocator = *a;
	else
		allocator = (fo_allocator){default_alloc, default_free, NULL};
}

void *fo__alloc(size_t size)
{
	return allocator.alloc(size, allocator.ctx);
}

void *fo__zalloc(size_t size)
{
	void *p = fo__alloc(size);
	if (p)
		memset(p, 0, size);
	return p;
}

void fo__free(void *p)
{
	if (p)
		allocator.free(p, allocator.ctx);
}

/*
 * Items made and freed at a high rate (the built-in codecs' decodes: one per
 * item crossing a process boundary) are 64-byte aligned like every fanout
 * block, but not through posix_memalign: glibc serves an over-aligned request
 * by carving a larger chunk and freeing the pieces around it, several times
 * the cost of a malloc served from the thread's cache (B15 chunk 16: ~10% of
 * all CPU, design.md §13).  So the block is a plain allocation of @size +
 * FO_CACHELINE + 1 bytes, the item starts at the first line boundary at least
 * two bytes in, and the two bytes before it say how far in (1..65 + 1) and
 * whether the block came from malloc (the default allocator: it goes back to
 * free() even if a user's allocator was installed since) or from a user's
 * allocator (fo_set_allocator(): it sees every block and gets it back through
 * fo__free(), like every other fanout block).
 */
void *fo__item_alloc(size_t size)
{
	if (size > SIZE_MAX - FO_CACHELINE - 2)
		return NULL;
	size_t need = size + FO_CACHELINE + 1;
	bool sys = allocator.alloc == default_alloc;
	unsigned char *raw = sys ? malloc(need) : fo__alloc(need);
	if (!raw)
		return NULL;
	unsigned char *p =
	    (unsigned char *)(((uintptr_t)raw + FO_CACHELINE + 1) & ~(uintptr_t)(FO_CACHELINE - 1));
	p[-1] = (unsigned char)(p - raw); /* 2..65 */
	p[-2] = sys;
	return p;
}

void fo__item_free(void *item)
{
	if (!item)
		return;
	unsigned char *p = item, *raw = p - p[-1];
	if (p[-2])
		free(raw);
	else
		fo__free(raw);
}

char *fo__strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = fo__alloc(n);
	if (d)
		memcpy(d, s, n);
	return d;
}

void fo__panic(const char *file, int line, const char *what)
{
	fprintf(stderr, "fanout: internal invariant broken at %s:%d: %s\n", file, line, what);
	abort();
}
