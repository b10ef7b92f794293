/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/* alloc.c - the injectable allocator and the invariant-failure exit. */
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
