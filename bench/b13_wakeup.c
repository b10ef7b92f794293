/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * b13_wakeup.c - B13: event-loop wake-up latency, and what an armed reader costs a push.
 *
 * Latency.  A producer publishes sparse items (one every --gap-us, default 50 µs); after
 * each it waits for the reader's echo, so the reader is asleep when the next one comes.
 * The reader sleeps in epoll_wait() and stamps each item on arrival; latency = arrival -
 * the producer's stamp taken just before publishing.  Implementations, interleaved run by
 * run:
 *   cursor_fd   epoll on fo_cursor_fd(); drain with fo_cursor_try_next(), fo_cursor_arm()
 *   pipe        epoll on a pipe the producer write()s one 8-byte pointer per item into
 *   fo_next     for reference: fo_cursor_next() (spin, yield, then a futex sleep)
 * Output: one line per implementation
 *   RESULT scenario=B13 impl=cursor_fd samples=20000 gap_us=50 p50_ns=... p90_ns=...
 *          p99_ns=... max_ns=... cpus=2
 * and the ratios cursor_fd / pipe of p50 and p99.  Exits non-zero if any reader missed,
 * duplicated or reordered an item, or an echo did not come within 1 s.
 *
 * Producer cost.  --push-cost none|idle|armed runs N single-threaded pushes into a stream
 * with one cursor that has no fd (none), an fd never armed (idle: one load per push), or an
 * fd armed before every push (armed: the exchange, the CAS and the eventfd write).  Run
 * under callgrind with --toggle-collect=fo_stream_push it gives instructions per push; with
 * --callgrind (default in full runs when valgrind is in PATH) this program runs itself
 * that way for the three modes and prints
 *   RESULT scenario=B13 impl=push_cost mode=armed instr_per_push=... items=...
 * It also prints the native wall time per push of each mode (push_ns, the syscall included).
 *
 *   usage: b13_wakeup [--quick] [--samples N] [--gap-us N] [--runs R] [--callgrind]
 *                     [--no-callgrind] [--push-cost MODE] [--items N]
 *   --quick: 2000 samples, 3 runs, no callgrind unless --callgrind.
 */
#include "common.h"

#include <fanout/fanout.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/wait.h>

enum impl { I_CURSOR_FD, I_PIPE, I_NEXT, NIMPL };
static const char *impl_name[NIMPL] = {"cursor_fd", "pipe", "fo_next"};

struct lat_run {
	enum impl impl;
	uint64_t n; /* samples this run */
	uint64_t gap_ns;
	bench_item *items;
	uint64_t *lat; /* out: n latencies */
	/* shared */
	_Atomic uint64_t echoed; /* items the reader has taken */
	atomic_bool bad;
	fo_stream *s;
	fo_cursor *c;
	int pipefd[2];
	int ep;
};

static void *lat_reader(void *arg)
{
	struct lat_run *r = arg;
	uint64_t next = 0;
	struct epoll_event ev;
	while (next < r->n) {
		void *it = NULL;
		int rc;
		switch (r->impl) {
		case I_CURSOR_FD:
			rc = fo_cursor_try_next(r->c, &it);
			if (rc == FO_EMPTY) {
				if (fo_cursor_arm(r->c) == 0)
					while (epoll_wait(r->ep, &ev, 1, -1) < 0 && errno == EINTR)
						;
				continue;
			}
			break;
		case I_PIPE: {
			ssize_t k = read(r->pipefd[0], &it, sizeof(it));
			if (k < 0 && errno == EAGAIN) {
				while (epoll_wait(r->ep, &ev, 1, -1) < 0 && errno == EINTR)
					;
				continue;
			}
			rc = k == (ssize_t)sizeof(it) ? FO_OK : FO_ESYS;
			break;
		}
		default:
			rc = fo_cursor_next(r->c, &it);
			break;
		}
		uint64_t t = bench_now_ns();
		if (rc != FO_OK) {
			atomic_store(&r->bad, true);
			return NULL;
		}
		bench_item *bi = it;
		if (bi->seq != next) {
			atomic_store(&r->bad, true);
			return NULL;
		}
		r->lat[next++] = t - bi->ts;
		atomic_store_explicit(&r->echoed, next, memory_order_release);
	}
	return NULL;
}

static bool lat_once(enum impl impl, uint64_t n, uint64_t gap_ns, bench_item *items, uint64_t *lat)
{
	struct lat_run r = {.impl = impl, .n = n, .gap_ns = gap_ns, .items = items, .lat = lat};
	atomic_init(&r.echoed, 0);
	atomic_init(&r.bad, false);
	r.ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN};
	if (impl == I_PIPE) {
		if (pipe2(r.pipefd, O_NONBLOCK | O_CLOEXEC) != 0)
			return false;
		epoll_ctl(r.ep, EPOLL_CTL_ADD, r.pipefd[0], &ev);
	} else {
		fo_stream_create(&r.s, NULL);
		fo_stream_cursor(r.s, &r.c, FO_ACTIVE);
		if (impl == I_CURSOR_FD)
			epoll_ctl(r.ep, EPOLL_CTL_ADD, fo_cursor_fd(r.c), &ev);
	}
	pthread_t th;
	pthread_create(&th, NULL, lat_reader, &r);
	bool ok = true;
	struct timespec gap = {0, (long)gap_ns};
	for (uint64_t i = 0; i < n && ok; i++) {
		nanosleep(&gap, NULL); /* the reader falls asleep */
		bench_item *bi = &items[i];
		bi->seq = i;
		bi->ts = bench_now_ns();
		if (impl == I_PIPE) {
			void *p = bi;
			ok = write(r.pipefd[1], &p, sizeof(p)) == (ssize_t)sizeof(p);
		} else {
			ok = fo_stream_push(r.s, bi) == FO_OK;
		}
		/* Wait for the echo (spin, then yield), at most 1 s. */
		uint64_t t0 = bench_now_ns();
		unsigned spins = 0;
		while (ok && atomic_load_explicit(&r.echoed, memory_order_acquire) <= i) {
			if (atomic_load(&r.bad) || bench_now_ns() - t0 > 1000000000u)
				ok = false;
			bench_backoff(&spins);
		}
	}
	if (!ok || atomic_load(&r.bad)) {
		fprintf(stderr, "b13: %s: lost, duplicated or reordered item\n", impl_name[impl]);
		exit(1); /* the reader may be stuck: do not join */
	}
	pthread_join(th, NULL);
	if (impl == I_PIPE) {
		close(r.pipefd[0]);
		close(r.pipefd[1]);
	} else {
		fo_cursor_close(r.c);
		fo_stream_destroy(r.s);
	}
	close(r.ep);
	return true;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

static uint64_t pct(const uint64_t *v, size_t n, double p)
{
	size_t i = (size_t)(p * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

/* ---- producer cost ------------------------------------------------------------------------- */

/* Returns wall ns per push (pushes only). */
static double push_cost(const char *mode, uint64_t n)
{
	fo_stream *s;
	fo_cursor *c;
	static bench_item item;
	fo_stream_create(&s, NULL);
	fo_stream_cursor(s, &c, FO_ACTIVE);
	bool fd = strcmp(mode, "none") != 0, arm = strcmp(mode, "armed") == 0;
	if (fd && fo_cursor_fd(c) < 0)
		exit(1);
	uint64_t spent = 0, signalled = 0;
	for (uint64_t i = 0; i < n; i++) {
		void *it;
		if (arm && fo_cursor_arm(c) != 0) /* the reader's side: never counted */
			exit(1);
		uint64_t t0 = bench_now_ns();
		if (fo_stream_push(s, &item) != FO_OK)
			exit(1);
		spent += bench_now_ns() - t0;
		if (fo_cursor_try_next(c, &it) != FO_OK)
			exit(1);
		signalled += arm;
	}
	fo_cursor_close(c);
	fo_stream_destroy(s);
	(void)signalled;
	return (double)spent / (double)n;
}

/* Run ourselves under callgrind in @mode; instructions per push, or -1. */
static double callgrind_push(const char *self, const char *mode, uint64_t n)
{
	char out[] = "/tmp/b13_callgrind.XXXXXX";
	int fd = mkstemp(out);
	if (fd < 0)
		return -1;
	close(fd);
	char outopt[64], items[32];
	snprintf(outopt, sizeof(outopt), "--callgrind-out-file=%s", out);
	snprintf(items, sizeof(items), "%" PRIu64, n);
	pid_t pid = fork();
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);
		if (devnull >= 0) {
			dup2(devnull, 1);
			dup2(devnull, 2);
		}
		execlp("valgrind", "valgrind", "--tool=callgrind", outopt,
		       "--toggle-collect=fo_stream_push", self, "--push-cost", mode, "--items",
		       items, (char *)NULL);
		_exit(127);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	double per = -1;
	FILE *f = fopen(out, "r");
	if (f && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		char line[512];
		unsigned long long total = 0;
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "totals: %llu", &total) == 1 ||
			    sscanf(line, "summary: %llu", &total) == 1)
				per = (double)total / (double)n;
	}
	if (f)
		fclose(f);
	unlink(out);
	return per;
}

int main(int argc, char **argv)
{
	uint64_t samples = 0, gap_us = 50;
	bool cg = false, no_cg = false;
	const char *mode = NULL;
	bench_flag flags[] = {
	    {"samples", BENCH_FLAG_U64, &samples, "latency samples per implementation (20000)"},
	    {"gap-us", BENCH_FLAG_U64, &gap_us, "pause before each item, µs (50)"},
	    {"callgrind", BENCH_FLAG_BOOL, &cg, "measure instructions per push under callgrind"},
	    {"no-callgrind", BENCH_FLAG_BOOL, &no_cg, "skip the callgrind part"},
	    {"push-cost", BENCH_FLAG_STR, &mode, "none|idle|armed: only the push loop (--items)"},
	};
	bench_opts o = {.items = 100000, .runs = 5};
	bench_parse_args(argc, argv, &o, flags, sizeof(flags) / sizeof(flags[0]));

	if (mode) { /* the small mode, usually under callgrind */
		if (strcmp(mode, "none") && strcmp(mode, "idle") && strcmp(mode, "armed")) {
			fprintf(stderr, "b13: --push-cost none|idle|armed\n");
			return 2;
		}
		double ns = push_cost(mode, o.items);
		printf("RESULT scenario=B13 impl=push_cost mode=%s push_ns=%.1f items=%" PRIu64
		       "\n",
		       mode, ns, o.items);
		return 0;
	}

	if (!samples)
		samples = o.quick ? 2000 : 20000;
	int runs = o.runs;
	uint64_t per_run = (samples + (uint64_t)runs - 1) / (uint64_t)runs;
	samples = per_run * (uint64_t)runs;
	bench_item *items = bench_items_create(per_run);
	uint64_t *lat[NIMPL];
	for (int i = 0; i < NIMPL; i++)
		if (!(lat[i] = malloc(samples * sizeof(uint64_t))))
			return 2;

	printf("B13 wake-up latency: %" PRIu64
	       " samples per implementation, one item every %" PRIu64
	       " us, %d runs interleaved, %d cpus\n",
	       samples, gap_us, runs, o.cpus);
	fflush(stdout);
	for (int run = 0; run < runs; run++)
		for (int i = 0; i < NIMPL; i++)
			lat_once((enum impl)i, per_run, gap_us * 1000, items,
			         lat[i] + (uint64_t)run * per_run);

	uint64_t p50[NIMPL], p99[NIMPL];
	for (int i = 0; i < NIMPL; i++) {
		qsort(lat[i], samples, sizeof(uint64_t), cmp_u64);
		p50[i] = pct(lat[i], samples, 0.50);
		p99[i] = pct(lat[i], samples, 0.99);
		printf("RESULT scenario=B13 impl=%s samples=%" PRIu64 " gap_us=%" PRIu64
		       " p50_ns=%" PRIu64 " p90_ns=%" PRIu64 " p99_ns=%" PRIu64 " max_ns=%" PRIu64
		       " cpus=%d\n",
		       impl_name[i], samples, gap_us, p50[i], pct(lat[i], samples, 0.90), p99[i],
		       lat[i][samples - 1], o.cpus);
	}
	printf("RESULT scenario=B13 ratio=cursor_fd/pipe p50=%.2f p99=%.2f\n",
	       (double)p50[I_CURSOR_FD] / (double)p50[I_PIPE],
	       (double)p99[I_CURSOR_FD] / (double)p99[I_PIPE]);
	fflush(stdout);

	/* Producer cost: native wall time per push, then instructions under callgrind. */
	const char *modes[] = {"none", "idle", "armed"};
	uint64_t n = o.quick ? 20000 : 100000;
	for (int m = 0; m < 3; m++)
		printf("RESULT scenario=B13 impl=push_cost mode=%s push_ns=%.1f items=%" PRIu64
		       "\n",
		       modes[m], push_cost(modes[m], n), n);
	bool have_vg = system("command -v valgrind >/dev/null 2>&1") == 0;
	if (!no_cg && (cg || !o.quick) && have_vg) {
		char self[4096];
		ssize_t k = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (k > 0) {
			self[k] = 0;
			uint64_t cn = 20000;
			for (int m = 0; m < 3; m++) {
				double per = callgrind_push(self, modes[m], cn);
				if (per < 0)
					printf("b13: callgrind run (%s) failed\n", modes[m]);
				else
					printf("RESULT scenario=B13 impl=push_cost mode=%s "
					       "instr_per_push=%.1f items=%" PRIu64
					       " tool=callgrind\n",
					       modes[m], per, cn);
				fflush(stdout);
			}
		}
	} else if (!no_cg && (cg || !o.quick)) {
		printf("b13: valgrind not found: instruction counts skipped\n");
	}
	for (int i = 0; i < NIMPL; i++)
		free(lat[i]);
	free(items);
	return 0;
}
