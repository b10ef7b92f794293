/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * stress_proc.c - fo_pmap with FO_PROCESSES while a killer thread SIGKILLs random busy workers
 * (sizes / 10 under sanitizers, FO_SANITIZE):
 *   1. ordered and unordered maps over 100 000 items, chunk 1 and 16, retries 0 and 1, policy
 *      EMIT: every input ends in exactly one result or one error item, at its place (ordered:
 *      in input order; unordered: each input exactly once); killed items name SIGKILL;
 *   2. the same (ordered chunk 1, unordered chunk 16) while the program runs busy threads
 *      that allocate and free all along (forks happen while other threads are inside malloc;
 *      not under TSan: see main());
 *   3. a pool with 4 rounds under the killer.
 * After each map: no zombie (waitpid(-1, WNOHANG) is ECHILD), no fd left open (/proc/self/fd
 * counted before and after), every parent input released once.  Exits non-zero on the first
 * violation.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fo_test.h"
#include "ft_watchdog.h"

#define CHECK(c)                                                                              \
	do {                                                                                  \
		if (!(c)) {                                                                   \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
			exit(1);                                                              \
		}                                                                             \
	} while (0)

#define MAXW 4

/* Shared with the children: the pid of each worker's child once it computed an item. */
typedef struct shared {
	atomic_int busy[MAXW];
	atomic_long kills;
} shared;

static shared *sh;
static ft_watchdog wd; /* a stall aborts with every thread and child described */

static int w_init(void *ctx, void *arg, void **wstate)
{
	(void)ctx;
	*wstate = arg; /* the worker index, as a pointer (inherited) */
	return FO_OK;
}

static int w_fn(void *ctx, void *wstate, void *in, void **out)
{
	(void)ctx;
	size_t idx = (size_t)(uintptr_t)wstate;
	atomic_store(&sh->busy[idx], (int)getpid());
	uint64_t *v = in;
	uint64_t x = *v;
	for (int i = 0; i < 50; i++) /* a little work, so kills land mid-item */
		x = x * 6364136223846793005ull + 1442695040888963407ull;
	*v = *v * 3 + (x & 0); /* the output: 3 * input */
	/* busy[idx] keeps our pid: the killer hits busy and idle workers alike */
	*out = v;
	return FO_OK;
}

/* ---- the source -------------------------------------------------------------------------------
 */

typedef struct src {
	uint64_t next, n;
	atomic_ulong freed;
} src;

static int src_next(void *ctx, void **item, uint64_t deadline)
{
	(void)deadline;
	src *s = ctx;
	if (s->next == s->n)
		return FO_END;
	uint64_t *v = malloc(sizeof(*v));
	CHECK(v);
	*v = s->next++;
	*item = v;
	return FO_OK;
}

static void src_free(void *item, void *ctx)
{
	src *s = ctx;
	atomic_fetch_add(&s->freed, 1);
	free(item);
}

/* ---- the killer and the busy threads ----------------------------------------------------------
 */

static atomic_bool stop_killer, stop_busy;

/*
 * SIGKILL @pid only if it is still a child of ours: busy[] keeps the pid of a
 * worker that died long ago, and pids are reused (pid_max is 32768 on some
 * machines; CI runs as root, where a stale kill() could hit any process).  The
 * pidfd pins the process, so the check and the signal see the same one.
 */
static pthread_mutex_t fd_mu = PTHREAD_MUTEX_INITIALIZER; /* our fds against count_fds() */

static bool kill_our_child(int pid)
{
	pthread_mutex_lock(&fd_mu);
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pfd < 0) {
		pthread_mutex_unlock(&fd_mu);
		return false;
	}
	char path[64], line[128];
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	long ppid = -1;
	FILE *f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "PPid: %ld", &ppid) == 1)
			break;
	if (f)
		fclose(f);
	bool ok =
	    ppid == (long)getpid() && syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0) == 0;
	close(pfd);
	pthread_mutex_unlock(&fd_mu);
	return ok;
}

static void *killer(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	while (!atomic_load(&stop_killer)) {
		ft_sleep_ms(2 + rand_r(&seed) % 8);
		int pid = atomic_load(&sh->busy[rand_r(&seed) % MAXW]);
		if (pid > 0 && kill_our_child(pid))
			atomic_fetch_add(&sh->kills, 1);
	}
	return NULL;
}

static void *busy(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_busy)) {
		void *p[16];
		for (int i = 0; i < 16; i++)
			p[i] = malloc(16 + (size_t)i * 48);
		for (int i = 0; i < 16; i++)
			free(p[i]);
	}
	return NULL;
}

/* ---- checks -----------------------------------------------------------------------------------
 */

static int count_fds(void)
{
	pthread_mutex_lock(&fd_mu);
	int n = ft_count_fds();
	pthread_mutex_unlock(&fd_mu);
	CHECK(n >= 0);
	return n;
}

static void no_zombie(void)
{
	errno = 0;
	CHECK(waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD);
}

/* Read one round: exactly one outcome per input, at its place. */
static void read_round(fo_iter *out, src *s, bool ordered, uint64_t n, uint64_t *errors)
{
	unsigned char *seen = calloc(n, 1);
	CHECK(seen);
	uint64_t got = 0;
	void *item;
	int rc;
	while ((rc = fo_iter_next(out, &item)) == FO_OK) {
		uint64_t at;
		if (fo_iter_is_error(out)) {
			fo_error_item *e = item;
			CHECK(e->input);
			at = *(uint64_t *)e->input;
			CHECK(e->err.code == FO_FAILED);
			CHECK(strstr(e->err.message, "SIGKILL"));
			(*errors)++;
			fo_error_item_free(e);
		} else {
			uint64_t v = *(uint64_t *)item;
			CHECK(v % 3 == 0);
			at = v / 3;
			fo_iter_release(out, item);
		}
		CHECK(at < n);
		if (ordered)
			CHECK(at == got);
		CHECK(!seen[at]);
		seen[at] = 1;
		got++;
		ft_watchdog_tick(&wd);
	}
	if (rc != FO_END)
		fprintf(stderr, "rc %s: %s\n", fo_status_name(rc), fo_iter_error(out)->message);
	CHECK(rc == FO_END);
	CHECK(got == n);
	free(seen);
	(void)s;
}

static void opts_for(fo_pmap_opts *o, void **args, bool ordered, size_t chunk, unsigned retries)
{
	fo_pmap_opts_init(o);
	o->backend = FO_PROCESSES;
	o->workers = 2;
	o->ordered = ordered;
	o->chunk_size = chunk;
	o->retries = retries;
	o->on_error = FO_ERR_EMIT;
	o->init = w_init;
	o->init_args = args;
	o->in_codec = fo_codec_pod(sizeof(uint64_t));
	o->out_codec = fo_codec_pod(sizeof(uint64_t));
	o->item_free = o->out_codec.item_free;
	o->item_free_ctx = o->out_codec.ctx;
}

static void one_map(fo_pool *pool, const fo_pmap_opts *o, uint64_t n)
{
	src s = {.next = 0, .n = n};
	atomic_init(&s.freed, 0);
	fo_iter *in, *out;
	CHECK(fo_iter_from_fn(&in, src_next, NULL, &s, src_free, &s) == FO_OK);
	if (pool)
		CHECK(fo_pool_map(pool, &out, in) == FO_OK);
	else
		CHECK(fo_pmap(&out, in, w_fn, o) == FO_OK);
	static char what[96];
	snprintf(what, sizeof(what), "%s map, %s chunk %zu retries %u", pool ? "pool" : "single",
	         o->ordered ? "ordered" : "unordered", o->chunk_size, o->retries);
	ft_watchdog_doing(&wd, what);
	uint64_t errors = 0;
	long k0 = atomic_load(&sh->kills);
	int64_t t0 = ft_now_ns();
	read_round(out, &s, o->ordered, n, &errors);
	fo_iter_close(out);
	CHECK(atomic_load(&s.freed) == n);
	printf("  %s chunk %zu retries %u: %llu items, %ld kills, %llu errors, %.0f ms\n",
	       o->ordered ? "ordered  " : "unordered", o->chunk_size, o->retries,
	       (unsigned long long)n, atomic_load(&sh->kills) - k0, (unsigned long long)errors,
	       (double)(ft_now_ns() - t0) / 1e6);
	fflush(stdout);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(sh != MAP_FAILED);
	void *args[MAXW];
	for (uintptr_t i = 0; i < MAXW; i++)
		args[i] = (void *)i;
	uint64_t n = ft_scale(100000);
	/* A map of n items takes 25-110 s under TSan on 2 loaded cores; one item
	 * in 2 minutes is a hang. */
	ft_watchdog_start(&wd, 120);
	int fds = count_fds();
	pthread_t kt, bt[2];
	CHECK(pthread_create(&kt, NULL, killer, (void *)(uintptr_t)42) == 0);
	fo_pmap_opts o;
	/*
	 * Under ThreadSanitizer the busy phase is left out.  It exists to fork
	 * while other threads are inside glibc's malloc; a TSan build has no glibc
	 * malloc, it has TSan's allocator, and clang 14's runtime leaves locks of
	 * that allocator and of its stack depot held in the child of a
	 * multithreaded fork (fixed upstream in LLVM 19, "[tsan] Lock/Unlock
	 * allocator and stacks on fork").  src/proc.c fills the forking thread's
	 * cache so that a child's own allocations need none of those locks, but two
	 * threads allocating nonstop make every other runtime lock likely to be
	 * held at a fork.  TSan checks only the parent anyway (it switches itself
	 * off in the child of a multithreaded fork); release and ASan run the phase.
	 */
	const char *san = getenv("FO_SANITIZE");
	int phases = san && strcmp(san, "thread") == 0 ? 1 : 2;
	for (int with_busy = 0; with_busy < phases; with_busy++) {
		printf("%s\n", with_busy ? "with 2 busy allocating threads:" : "killer only:");
		if (with_busy) {
			for (int i = 0; i < 2; i++)
				CHECK(pthread_create(&bt[i], NULL, busy, NULL) == 0);
		}
		for (int v = 0; v < 4; v++) {
			if (with_busy && (v == 1 || v == 2))
				continue; /* ordered chunk 1 and unordered chunk 16 suffice */
			opts_for(&o, args, v % 2 == 0, v < 2 ? 1 : 16, (unsigned)(v / 2));
			one_map(NULL, &o, n);
			no_zombie();
			CHECK(count_fds() == fds);
		}
	}
	printf("pool, 4 rounds:\n");
	fo_pool *pool;
	opts_for(&o, args, true, 4, 0);
	CHECK(fo_pool_create(&pool, w_fn, &o) == FO_OK);
	for (int round = 0; round < 4; round++) {
		o.ordered = true;
		one_map(pool, &o, n / 4);
	}
	ft_watchdog_doing(&wd, "fo_pool_destroy");
	fo_pool_destroy(pool);
	ft_watchdog_tick(&wd);
	ft_watchdog_doing(&wd, "joining the killer and busy threads");
	atomic_store(&stop_killer, true);
	atomic_store(&stop_busy, true);
	pthread_join(kt, NULL);
	for (int i = 0; phases == 2 && i < 2; i++)
		pthread_join(bt[i], NULL);
	no_zombie();
	CHECK(count_fds() == fds);
	printf("ok: %ld kills\n", atomic_load(&sh->kills));
	return 0;
}
