/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * parallel_hash.c - hash the lines of a file with an ordered fo_pmap, printing a progress
 * line from the progress hook.
 *
 *   parallel_hash [FILE]
 *
 * Without FILE it writes 5000 lines to a temporary file in /tmp, hashes them and removes it
 * (CTest runs it this way).  Output: one progress line (rewritten in place on a terminal),
 * then "N lines, checksum X", checked against a sequential run.
 */
#include <fanout/fanout.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct line {
	uint64_t no;
	char *text;
} line;

typedef struct hashed {
	uint64_t no;
	uint64_t hash;
} hashed;

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (int round = 0; round < 64; round++) /* some work per line */
		for (const char *p = s; *p; p++)
			h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
	return h;
}

static void line_free(void *item, void *ctx)
{
	(void)ctx;
	line *l = item;
	free(l->text);
	free(l);
}

static void hashed_free(void *item, void *ctx)
{
	(void)ctx;
	free(item);
}

/* The source: one line item per read (reads happen on pmap's worker threads, one at a time). */
typedef struct reader {
	FILE *f;
	uint64_t no;
} reader;

static int read_line(void *ctx, void **item, uint64_t deadline)
{
	reader *r = ctx;
	(void)deadline;
	char *buf = NULL;
	size_t cap = 0;
	if (getline(&buf, &cap, r->f) < 0) {
		free(buf);
		return ferror(r->f) ? FO_ESYS : FO_END;
	}
	line *l = malloc(sizeof(*l));
	if (!l) {
		free(buf);
		return FO_ENOMEM;
	}
	l->no = r->no++;
	l->text = buf;
	*item = l;
	return FO_OK;
}

/* Runs on the workers: consumes the line, returns its hash. */
static int hash_line(void *ctx, void *wstate, void *in, void **out)
{
	(void)ctx;
	(void)wstate;
	line *l = in;
	hashed *h = malloc(sizeof(*h));
	if (!h)
		return FO_ENOMEM; /* the line stays with the pool */
	h->no = l->no;
	h->hash = fnv1a(l->text);
	line_free(l, NULL);
	*out = h;
	return FO_OK;
}

static void progress(void *ctx, const fo_progress *p)
{
	int tty = *(int *)ctx;
	if (tty || p->out % 1000 == 0)
		printf("%s%" PRIu64 " read, %" PRIu64 " hashed, %" PRIu64 " failed, %" PRIu64
		       " in flight%s",
		       tty ? "\r" : "", p->in, p->out, p->failed, p->in_flight, tty ? "" : "\n");
}

int main(int argc, char **argv)
{
	char path[] = "/tmp/parallel_hash_XXXXXX";
	const char *file = argc > 1 ? argv[1] : NULL;
	if (!file) {
		int fd = mkstemp(path);
		FILE *w = fd >= 0 ? fdopen(fd, "w") : NULL;
		if (!w)
			return 1;
		for (int i = 0; i < 5000; i++)
			fprintf(w, "line %d: the quick brown fox jumps over the lazy dog\n", i);
		fclose(w);
		file = path;
	}
	reader r = {.f = fopen(file, "r")};
	if (!r.f) {
		perror(file);
		return 1;
	}

	fo_iter *src, *out;
	fo_iter_from_fn(&src, read_line, NULL, &r, line_free, NULL);
	int tty = isatty(STDOUT_FILENO);
	fo_pmap_opts o;
	fo_pmap_opts_init(&o);
	o.workers = 2;
	o.ordered = true; /* results in line order */
	o.item_free = hashed_free;
	o.progress = progress;
	o.progress_ctx = &tty;
	if (fo_pmap(&out, src, hash_line, &o) != FO_OK)
		return 1;

	uint64_t n = 0, sum = 0;
	void *x;
	int rc;
	while ((rc = fo_iter_next(out, &x)) == FO_OK) {
		hashed *h = x;
		if (h->no != n) {
			fprintf(stderr, "out of order: %" PRIu64 " at %" PRIu64 "\n", h->no, n);
			return 1;
		}
		sum = sum * 31 + h->hash;
		n++;
		fo_iter_release(out, h);
	}
	if (tty)
		printf("\n");
	if (rc != FO_END) {
		fprintf(stderr, "failed: %s\n", fo_iter_error(out)->message);
		return 1;
	}
	fo_iter_close(out);

	/* Check against a sequential pass. */
	rewind(r.f);
	uint64_t n2 = 0, sum2 = 0;
	char *buf = NULL;
	size_t cap = 0;
	while (getline(&buf, &cap, r.f) >= 0)
		sum2 = sum2 * 31 + fnv1a(buf), n2++;
	free(buf);
	fclose(r.f);
	if (file == path)
		unlink(path);
	printf("%" PRIu64 " lines, checksum %016" PRIx64 "\n", n, sum);
	return n == n2 && sum == sum2 ? 0 : 1;
}
