/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * b6_memory.c - B6 and B6b: memory per queued item, and how fast it returns.
 *
 * Every measurement runs in a fresh child process (fork), so no allocator
 * state carries over from one implementation to the next.  Items are
 * malloc(64) each (what a server queues), so "per item" includes the item's
 * own malloc chunk (80 bytes with glibc).  Resident memory comes from
 * /proc/self/statm, fanout's own accounting from fo_stream_get_stats.
 *
 *   B6   one cursor --backlog items (default 1 M) behind: (RSS after the
 *        pushes - RSS before creating the queue) / items.
 *        fanout (unbounded stream, single_producer, item_free = free, one
 *        active cursor that reads nothing), ckring_copy (a ring of 2^20
 *        64-byte slots: items by value, no malloc), mutex (a ring of 2^20
 *        pointers + malloc'd items), wfcq_malloc (a malloc'd node + item per
 *        entry), zmq (PUB -> SUB, HWM unlimited, the SUB reads nothing).
 *   B6b  fanout only: the slow cursor then (a) reads everything (catch-up)
 *        or (b) is closed; the time from the end of the catch-up (or the
 *        start of fo_cursor_close) until the stream retains at most one
 *        segment + the passive window of items (a: the cursor's current
 *        segment) or none (b), polled every 50 us, plus the share of the
 *        resident growth given back to the OS by then (rss_returned).
 *        For scale, "free_only" times free() of the same items in a loop:
 *        the floor for any queue that owns (and must destroy) its items.
 *
 *   b6_memory [--runs R] [--quick] [--backlog N]
 */
#include "common.h"

#include <fanout/fanout.h>

#include <ck_ring.h>
#include <pthread.h>
#include <sys/wait.h>
#ifdef HAVE_ZMQ
#include <zmq.h>
#endif

CK_RING_PROTOTYPE(b6_item, bench_item)

static uint64_t opt_backlog = 1000000;

static double rss_bytes(void)
{
	long pages = 0, res = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &res) != 2)
			res = 0;
		fclose(f);
	}
	return (double)res * (double)sysconf(_SC_PAGESIZE);
}

static bench_item *new_item(uint64_t i)
{
	bench_item *it = malloc(sizeof(*it));
	if (!it)
		abort();
	*it = (bench_item){.seq = i};
	return it;
}

static void free_item(void *item, void *ctx)
{
	(void)ctx;
	free(item);
}

/* out[0] bytes/item (RSS), out[1] stats bytes/item, out[2] B6b ms, out[3] rss_returned */
static int child_fanout(uint64_t n, int mode, double *out)
{
	if (mode == 3) { /* the floor: free() n malloc'd items, nothing else */
		bench_item **v = malloc(n * sizeof(*v));
		for (uint64_t i = 0; i < n; i++)
			v[i] = new_item(i);
		uint64_t t0 = bench_now_ns();
		for (uint64_t i = 0; i < n; i++)
			free(v[i]);
		out[2] = (double)(bench_now_ns() - t0) / 1e6;
		free(v);
		return 0;
	}
	double r0 = rss_bytes();
	fo_stream_opts o;
	fo_stream_opts_init(&o);
	o.single_producer = true;
	o.item_free = free_item;
	fo_stream *s;
	fo_cursor *c;
	if (fo_stream_create(&s, &o) || fo_stream_cursor(s, &c, FO_ACTIVE))
		return 1;
	for (uint64_t i = 0; i < n; i++)
		if (fo_stream_push(s, new_item(i)))
			return 1;
	double r1 = rss_bytes();
	fo_stream_stats st;
	fo_stream_get_stats(s, &st);
	out[0] = (r1 - r0) / (double)n;
	out[1] = st.retained_items ? (double)st.live_bytes / (double)st.retained_items + 64 : 0;
	if (st.retained_items != n)
		return 1;
	uint64_t t0, t1, limit;
	if (mode == 1) { /* catch up */
		void *b[256];
		size_t k;
		uint64_t seen = 0;
		while (fo_cursor_next_many(c, b, 256, &k) == FO_OK)
			for (size_t i = 0; i < k; i++)
				if (((bench_item *)b[i])->seq != seen++)
					return 1;
		if (seen != n)
			return 1;
		limit = 256 + FO_DEFAULT_PASSIVE_WINDOW;
		t0 = bench_now_ns();
	} else { /* close */
		limit = 0;
		t0 = bench_now_ns();
		fo_cursor_close(c);
		c = NULL;
	}
	for (;;) {
		fo_stream_get_stats(s, &st);
		t1 = bench_now_ns();
		if (st.retained_items <= limit)
			break;
		if (t1 - t0 > 2000000000u) /* 2 s: report what we have */
			break;
		nanosleep(&(struct timespec){.tv_nsec = 50000}, NULL);
	}
	double r2 = rss_bytes();
	out[2] = (double)(t1 - t0) / 1e6;
	out[3] = (r1 - r2) / (r1 - r0);
	fo_cursor_close(c);
	fo_stream_destroy(s);
	return st.retained_items <= limit ? 0 : 3;
}

static int child_peer(const char *impl, uint64_t n, double *out)
{
	double r0 = rss_bytes();
	unsigned size = 1;
	while (size < n + 1)
		size <<= 1;
	if (!strcmp(impl, "ckring_copy")) {
		ck_ring_t ring;
		bench_item *slots = malloc((size_t)size * sizeof(bench_item));
		ck_ring_init(&ring, size);
		for (uint64_t i = 0; i < n; i++) {
			bench_item it = {.seq = i};
			if (!ck_ring_enqueue_spsc_b6_item(&ring, slots, &it))
				return 1;
		}
		out[0] = (rss_bytes() - r0) / (double)n;
		return ck_ring_size(&ring) == n ? 0 : 1;
	}
	if (!strcmp(impl, "mutex")) { /* the queue of peers.h: a ring of pointers */
		void **v = calloc(size, sizeof(void *));
		pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
		for (uint64_t i = 0; i < n; i++) {
			pthread_mutex_lock(&mu);
			v[i] = new_item(i);
			pthread_mutex_unlock(&mu);
		}
		out[0] = (rss_bytes() - r0) / (double)n;
		return 0;
	}
	if (!strcmp(impl, "wfcq_malloc")) { /* node {next, item, flag} as in peers.h */
		struct node {
			struct node *next;
			bench_item *it;
			int busy;
		} *head = NULL, **tail = &head;
		for (uint64_t i = 0; i < n; i++) {
			struct node *nd = malloc(sizeof(*nd));
			nd->next = NULL, nd->it = new_item(i), nd->busy = 2;
			*tail = nd, tail = &nd->next;
		}
		out[0] = (rss_bytes() - r0) / (double)n;
		return 0;
	}
#ifdef HAVE_ZMQ
	if (!strcmp(impl, "zmq")) {
		int zero = 0;
		void *ctx = zmq_ctx_new(), *pub = zmq_socket(ctx, ZMQ_PUB),
		     *sub = zmq_socket(ctx, ZMQ_SUB);
		zmq_setsockopt(pub, ZMQ_SNDHWM, &zero, sizeof(zero));
		zmq_setsockopt(sub, ZMQ_RCVHWM, &zero, sizeof(zero));
		zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0);
		zmq_bind(pub, "inproc://b6");
		zmq_connect(sub, "inproc://b6");
		bench_item it = {.seq = UINT64_MAX};
		/* wait until the subscription reached the PUB */
		for (int tries = 0; tries < 5000; tries++) {
			zmq_send(pub, &it, sizeof(it), 0);
			if (zmq_recv(sub, &it, sizeof(it), ZMQ_DONTWAIT) == (int)sizeof(it))
				break;
			nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
		}
		while (zmq_recv(sub, &it, sizeof(it), ZMQ_DONTWAIT) == (int)sizeof(it))
			;
		double r0z = rss_bytes(); /* the sockets themselves are not per item */
		for (uint64_t i = 0; i < n; i++) {
			it.seq = i;
			if (zmq_send(pub, &it, sizeof(it), 0) != (int)sizeof(it))
				return 1;
		}
		out[0] = (rss_bytes() - r0z) / (double)n;
		return 0; /* exit without teardown: the process ends */
	}
#endif
	return 2;
}

/* Run one measurement in a child; false on failure. */
static bool in_child(const char *impl, int mode, double *out)
{
	int fd[2];
	if (pipe(fd))
		return false;
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		close(fd[0]);
		double v[4] = {0};
		int rc = !strcmp(impl, "fanout") ? child_fanout(opt_backlog, mode, v)
		                                 : child_peer(impl, opt_backlog, v);
		if (write(fd[1], v, sizeof(v)) != (ssize_t)sizeof(v))
			rc = 1;
		_exit(rc);
	}
	close(fd[1]);
	bool ok = read(fd[0], out, 4 * sizeof(double)) == (ssize_t)(4 * sizeof(double));
	close(fd[0]);
	int st;
	waitpid(pid, &st, 0);
	return ok && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

int main(int argc, char **argv)
{
	bench_opts o = {.items = 1000000, .runs = 5};
	const bench_flag flags[] = {
	    {"backlog", BENCH_FLAG_U64, &opt_backlog, "items queued (default 1000000)"},
	};
	bench_parse_args(argc, argv, &o, flags, sizeof(flags) / sizeof(flags[0]));
	static const char *impls[] = {
	    "fanout", "ckring_copy", "mutex", "wfcq_malloc",
#ifdef HAVE_ZMQ
	    "zmq",
#endif
	};
	const size_t ni = sizeof(impls) / sizeof(impls[0]);
	int nr = o.runs < 64 ? o.runs : 64;
	double bpi[8][64], ms_catch[64], ms_close[64], ms_floor[64];
	bool ok = true;
	printf("B6/B6b: memory per queued 64-byte item, %" PRIu64 " items behind, %d runs\n",
	       opt_backlog, nr);
	for (int run = 1; run <= nr; run++) {
		for (size_t j = 0; j < ni; j++) {
			size_t ii = (j + (size_t)run) % ni;
			double v[4] = {0};
			for (int mode = 1; mode <= (ii == 0 ? 3 : 1); mode++) {
				if (!in_child(impls[ii], mode, v)) {
					fprintf(stderr,
					        "FAIL B6 %s mode %d (B6b: memory not returned "
					        "within 2 s?)\n",
					        impls[ii], mode);
					ok = false;
				}
				if (mode == 1) {
					bpi[ii][run - 1] = v[0];
					printf(
					    "RESULT scenario=B6 impl=%s cursors=1 threads=1 "
					    "cpus=%d "
					    "items_per_s=NA cpu_ns_per_item=NA bytes_per_item=%.1f",
					    impls[ii], o.cpus, v[0]);
					if (ii == 0)
						printf(" stats_bytes_per_item=%.1f", v[1]);
					printf(" run=%d items=%" PRIu64 "\n", run, opt_backlog);
				}
				if (ii == 0 && mode == 3) {
					ms_floor[(run - 1) & 63] = v[2];
					printf(
					    "RESULT scenario=B6b impl=free_only cursors=0 "
					    "threads=1 "
					    "cpus=%d items_per_s=NA cpu_ns_per_item=NA case=floor "
					    "return_ms=%.3f run=%d items=%" PRIu64 "\n",
					    o.cpus, v[2], run, opt_backlog);
				} else if (ii == 0) {
					double *dst = mode == 1 ? ms_catch : ms_close;
					dst[(run - 1) & 63] = v[2];
					printf("RESULT scenario=B6b impl=fanout cursors=1 "
					       "threads=1 cpus=%d "
					       "items_per_s=NA cpu_ns_per_item=NA case=%s "
					       "return_ms=%.3f "
					       "rss_returned=%.2f run=%d items=%" PRIu64 "\n",
					       o.cpus, mode == 1 ? "catchup" : "close", v[2], v[3],
					       run, opt_backlog);
				}
				fflush(stdout);
			}
		}
	}
	printf("\nB6 summary: median bytes per queued item (incl. the item)\n");
	for (size_t i = 0; i < ni; i++)
		printf("%-12s %8.1f\n", impls[i], bench_median(bpi[i], (size_t)nr));
	printf("B6b: median ms until returned: catch-up %.3f, close %.3f (free() alone: %.3f)\n",
	       bench_median(ms_catch, (size_t)nr), bench_median(ms_close, (size_t)nr),
	       bench_median(ms_floor, (size_t)nr));
	if (!ok)
		fprintf(stderr, "B6: FAILED (see above)\n");
	return ok ? 0 : 1;
}
