/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * cli/tee.c - `fanout tee`: every input record to several commands.
 *
 * One fo_stream carries the input; one writer thread per command reads its
 * own cursor and writes to the command's stdin pipe.  CMDs get ACTIVE
 * cursors (lossless: the stream's capacity makes the reader wait for the
 * slowest), taps get PASSIVE ones (a slow tap is lapped and skips).  A tap whose
 * pipe is full simply blocks in its write: its cursor stands still, and the
 * stream keeps of it only the batch being written (design.md §6, "A stalled
 * passive cursor"), so a stalled tap costs neither memory nor the producer.
 *
 * Items are slices: up to R whole records of a 64 KiB read block, the block
 * shared by its slices through a reference count.  The stream's capacity is
 * C slices and a consumer takes at most C per writev, with 2 * C * R ~=
 * --buffer records, so at most about --buffer records wait for the slowest
 * CMD, and a write moves many records at once (writev of the ready slices,
 * contiguous ones merged).  Every slice carries its record count, so a
 * tap's report is exact: records read from stdin minus records it was
 * given, whether it was lapped (FO_LAGGED) or stopped reading.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fanout/stream.h>

#define BLOCK_BYTES      ((size_t)64 * 1024)
#define MAX_BATCH        32            /* slices per writev (at most the capacity) */
#define MAX_CAPACITY     32            /* stream capacity in slices */
#define DEFAULT_BUFFER   65536         /* records */
#define CONSUMER_PIPE_SZ (1024 * 1024) /* fewer wake-ups for the consumers (best effort) */

static const char tee_usage[] =
    "usage: fanout tee [--tap CMD]... [-0] [--buffer N] CMD...\n"
    "\n"
    "Copy every record of stdin (a line; a NUL-terminated record with -0) to the\n"
    "stdin of each CMD.  Each CMD and tap runs as /bin/sh -c 'CMD' (so it may be a\n"
    "pipeline) with fanout's stdout and stderr.\n"
    "\n"
    "  CMD...          lossless consumers: each gets every record; the slowest one\n"
    "                  bounds memory (input is read only as fast as it consumes)\n"
    "  --tap CMD       a lossy consumer: never delays the others; when it falls\n"
    "                  behind it skips records (the count goes to stderr at exit)\n"
    "  -0, --null      records end with NUL instead of newline\n"
    "  --buffer N      records that may wait for the slowest CMD (default 65536)\n"
    "  -h, --help      this text\n"
    "\n"
    "A consumer that exits early (e.g. head -1) is dropped; the others go on.\n"
    "fanout waits for every consumer to exit.  Exit status: that of the first CMD\n"
    "(in argument order) that failed (128+N if killed by signal N), else 0; taps\n"
    "do not count.  2: bad usage.\n";

struct block {
	atomic_size_t refs;
	size_t cap;
	char data[];
};

struct slice {
	struct block *b;
	char *p;
	size_t len;
	uint64_t nrec;
};

struct consumer {
	size_t batch; /* slices per read: the items of a writev in progress add to the buffer */
	const char *cmd;
	bool tap;
	int fd;
	pid_t pid;
	fo_cursor *c;
	pthread_t th;
	bool started;
	uint64_t delivered; /* records written to the consumer's stdin */
	bool dropped;       /* the consumer closed its stdin first */
	atomic_int *live;
};

static struct block *block_new(size_t cap)
{
	struct block *b = malloc(sizeof(*b) + cap);
	if (b) {
		atomic_init(&b->refs, 1);
		b->cap = cap;
	}
	return b;
}

static void block_put(struct block *b)
{
	/* acq_rel: the last holder must see every other holder's use before it frees. */
	if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
		free(b);
}

static void slice_free(void *item, void *ctx)
{
	struct slice *s = item;
	(void)ctx;
	block_put(s->b);
	free(s);
}

static void *writer(void *arg)
{
	struct consumer *k = arg;
	void *items[MAX_BATCH];
	struct iovec iov[MAX_BATCH];

	for (;;) {
		size_t n = 0;
		int rc = fo_cursor_next_many(k->c, items, k->batch, &n);
		if (rc == FO_EMPTY) {
			rc = fo_cursor_next(k->c, &items[0]);
			n = rc == FO_OK;
		}
		if (rc == FO_LAGGED)
			continue; /* counted at the end: records read minus records delivered */
		if (rc != FO_OK)
			break; /* FO_END: all input written */
		int cnt = 0;
		uint64_t recs = 0;
		for (size_t i = 0; i < n; i++) {
			struct slice *s = items[i];
			recs += s->nrec;
			if (cnt && (char *)iov[cnt - 1].iov_base + iov[cnt - 1].iov_len == s->p) {
				iov[cnt - 1].iov_len += s->len;
			} else {
				iov[cnt].iov_base = s->p;
				iov[cnt].iov_len = s->len;
				cnt++;
			}
		}
		int err = cli_writev_all(k->fd, iov, cnt);
		if (!err)
			k->delivered += recs;
		if (err) {
			k->dropped = true;
			/* EPIPE: the consumer exited (head -1): drop it quietly. */
			if (err != EPIPE)
				cli_warn(err, "tee: writing to '%s'", k->cmd);
			break;
		}
	}
	/* Closing the cursor takes a dropped CMD out of the backpressure at once. */
	if (k->c)
		fo_cursor_close(k->c);
	k->c = NULL;
	close(k->fd);
	k->fd = -1;
	/* relaxed: a counter the reader only uses to stop reading early. */
	atomic_fetch_sub_explicit(k->live, 1, memory_order_relaxed);
	return NULL;
}

/* Push records [0, whole) of @b as slices of at most @per records each. */
static int push_records(fo_stream *s, struct block *b, size_t whole, int delim, uint64_t per,
                        uint64_t *seq)
{
	char *p = b->data, *end = b->data + whole;
	while (p < end) {
		char *q = p;
		uint64_t k = 0;
		while (k < per && q < end) {
			char *d = memchr(q, delim, (size_t)(end - q));
			q = d ? d + 1 : end; /* end - 1 is a delimiter, except for the tail */
			k++;
		}
		struct slice *sl = malloc(sizeof(*sl));
		if (!sl)
			return FO_ENOMEM;
		/* relaxed: the reader holds a reference, so the count cannot reach zero now. */
		atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
		*sl = (struct slice){b, p, (size_t)(q - p), k};
		int rc = fo_stream_push(s, sl);
		if (rc != FO_OK) {
			slice_free(sl, NULL);
			return rc;
		}
		*seq += k;
		p = q;
	}
	return FO_OK;
}

/* Read stdin to the end (or until every consumer is gone) into @s.  Returns 0 or 1. */
static int pump(fo_stream *s, int delim, uint64_t per, atomic_int *live, uint64_t *nrec)
{
	struct block *b = block_new(BLOCK_BYTES);
	size_t fill = 0;
	uint64_t seq = 0;
	int status = 0, rc = FO_OK;

	if (!b)
		goto nomem;
	/* relaxed: only a hint to stop early; nothing else is read through it. */
	while (atomic_load_explicit(live, memory_order_relaxed) > 0) {
		if (fill == b->cap) { /* a record longer than the block: grow it (not shared yet) */
			struct block *nb = realloc(b, sizeof(*b) + 2 * b->cap);
			if (!nb)
				goto nomem;
			b = nb;
			b->cap *= 2;
		}
		ssize_t n = read(0, b->data + fill, b->cap - fill);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			cli_warn(errno, "tee: reading stdin");
			status = 1;
			break;
		}
		if (n == 0)
			break;
		char *last = memrchr(b->data + fill, delim, (size_t)n);
		fill += (size_t)n;
		if (!last)
			continue;
		size_t whole = (size_t)(last - b->data) + 1, rest = fill - whole;
		if ((rc = push_records(s, b, whole, delim, per, &seq)) != FO_OK)
			break;
		struct block *nb = block_new(rest > BLOCK_BYTES / 2 ? 2 * rest : BLOCK_BYTES);
		if (!nb)
			goto nomem;
		memcpy(nb->data, b->data + whole, rest);
		block_put(b);
		b = nb;
		fill = rest;
	}
	if (rc == FO_OK && fill > 0) /* a last record without its delimiter: passed on as is */
		rc = push_records(s, b, fill, delim, per, &seq);
	*nrec = seq;
	if (rc == FO_ENOMEM)
		goto nomem;
	block_put(b);
	return status;
nomem:
	*nrec = seq;
	if (b)
		block_put(b);
	cli_warn(ENOMEM, "tee");
	return 1;
}

int cli_tee(int argc, char **argv)
{
	static const struct option longs[] = {{"tap", required_argument, NULL, 't'},
	                                      {"buffer", required_argument, NULL, 'b'},
	                                      {"null", no_argument, NULL, '0'},
	                                      {"help", no_argument, NULL, 'h'},
	                                      {NULL, 0, NULL, 0}};
	const char **taps = calloc((size_t)argc, sizeof(*taps));
	size_t ntaps = 0;
	long long buffer = DEFAULT_BUFFER;
	int delim = '\n', opt;

	if (!taps) {
		cli_warn(ENOMEM, "tee");
		return 1;
	}
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+0h", longs, NULL)) != -1) {
		switch (opt) {
		case 't':
			taps[ntaps++] = optarg;
			break;
		case 'b':
			buffer = cli_parse_int("tee", "--buffer", optarg, 1, 1000000000);
			break;
		case '0':
			delim = '\0';
			break;
		case 'h':
			fputs(tee_usage, stdout);
			free(taps);
			return 0;
		case ':':
			cli_usage_error("tee", "option '%s' needs a value", argv[optind - 1]);
		default:
			cli_usage_error("tee", "unknown option '%s'", argv[optind - 1]);
		}
	}
	size_t ncmds = (size_t)(argc - optind);
	if (ncmds == 0 && ntaps == 0)
		cli_usage_error("tee", "no command given");

	size_t nk = ncmds + ntaps;
	struct consumer *ks = calloc(nk, sizeof(*ks));
	atomic_int live;
	fo_stream *s = NULL;
	fo_stream_opts so;
	size_t cap = (size_t)buffer < MAX_CAPACITY ? (size_t)buffer : MAX_CAPACITY;
	/* cap slices in the stream plus cap in a consumer's writev: 2 * cap * per ~= buffer */
	uint64_t per = ((uint64_t)buffer + 2 * cap - 1) / (2 * cap);
	int status = 0;
	uint64_t nrec = 0;

	atomic_init(&live, (int)nk);
	fo_stream_opts_init(&so);
	so.capacity = cap;
	so.passive_window = cap;
	so.item_free = slice_free;
	so.single_producer = true;
	if (!ks || fo_stream_create(&s, &so) != FO_OK) {
		cli_warn(ENOMEM, "tee");
		free(ks);
		free(taps);
		return 1;
	}
	for (size_t i = 0; i < nk; i++) {
		ks[i].tap = i >= ncmds;
		ks[i].cmd = ks[i].tap ? taps[i - ncmds] : argv[optind + (int)i];
		ks[i].fd = -1;
		ks[i].pid = -1;
		ks[i].live = &live;
		ks[i].batch = cap < MAX_BATCH ? cap : MAX_BATCH;
	}
	for (size_t i = 0; i < nk; i++) {
		struct consumer *k = &ks[i];
		int p[2], rc;
		if (pipe2(p, O_CLOEXEC)) {
			cli_warn(errno, "tee: pipe");
			status = 1;
			break;
		}
		char *sh[] = {"/bin/sh", "-c", (char *)k->cmd, NULL};
		rc = cli_spawn(&k->pid, sh, p[0], -1, -1, false);
		close(p[0]);
		if (rc) {
			cli_warn(rc, "tee: cannot start /bin/sh for '%s'", k->cmd);
			close(p[1]);
			k->pid = -1;
			status = 1;
			break;
		}
		k->fd = p[1];
		(void)fcntl(k->fd, F_SETPIPE_SZ, CONSUMER_PIPE_SZ); /* may be refused: fine */
		if (fo_stream_cursor(s, &k->c, k->tap ? FO_PASSIVE : FO_ACTIVE) != FO_OK) {
			cli_warn(ENOMEM, "tee");
			status = 1;
			break;
		}
	}
	if (status == 0) {
		for (size_t i = 0; i < nk; i++) {
			int rc = pthread_create(&ks[i].th, NULL, writer, &ks[i]);
			if (rc) {
				cli_warn(rc, "tee: thread");
				status = 1;
				break;
			}
			ks[i].started = true;
		}
	}
	if (status == 0)
		status = pump(s, delim, per, &live, &nrec);
	fo_stream_close(s);
	for (size_t i = 0; i < nk; i++) {
		struct consumer *k = &ks[i];
		if (k->started) {
			pthread_join(k->th, NULL);
		} else {
			if (k->c)
				fo_cursor_close(k->c);
			if (k->fd >= 0)
				close(k->fd);
		}
	}
	int first_fail = 0;
	for (size_t i = 0; i < nk; i++) {
		struct consumer *k = &ks[i];
		int ws;
		if (k->pid < 0)
			continue;
		while (waitpid(k->pid, &ws, 0) < 0 && errno == EINTR)
			;
		int code = cli_wait_code(ws);
		if (!k->tap && code != 0 && first_fail == 0)
			first_fail = code;
		if (k->tap)
			fprintf(stderr, "fanout tee: tap %zu '%s': %llu records skipped%s\n",
			        i - ncmds + 1, k->cmd, (unsigned long long)(nrec - k->delivered),
			        k->dropped ? ", then it stopped reading" : "");
	}
	fo_stream_destroy(s);
	free(ks);
	free(taps);
	return first_fail ? first_fail : status;
}
