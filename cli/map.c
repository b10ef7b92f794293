/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * cli/map.c - `fanout map`: one job per input line, N at a time, on fo_pmap().
 *
 * The source is a callback iterator over stdin's lines (pmap's workers pull
 * it one at a time).  Each pmap worker runs its job itself: cli_spawn()
 * into a new process group, stdout and stderr collected through pipes into
 * buffers, all in one poll() loop; with --timeout the job's end is also seen
 * on a pidfd and the poll timeout is the job's deadline (the whole group is
 * killed), without it the job ends with its output (then waitpid).  Retries
 * run inside the callback, so the callback always succeeds and returns a
 * result (the last attempt's output and status).  The main thread reads the
 * pmap output (in input order with -k, else in completion order) and writes
 * each job's stdout and stderr whole: only it writes, so outputs never
 * interleave.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <fanout/pmap.h>

#define MAX_JOBS      4096
#define MAX_EXIT      101 /* GNU parallel's cap on the failed-job count */
#define EXIT_INTERNAL 255
#define READ_CHUNK    ((size_t)16 * 1024)

static const char map_usage[] =
    "usage: fanout map [OPTIONS] [--] CMD [ARGS...]\n"
    "\n"
    "Run CMD once per line of stdin, N jobs at a time.  Every {} in CMD and ARGS is\n"
    "replaced by the line; with no {} the line is appended as the last argument.\n"
    "Jobs start without a shell (the line is one argument, spaces and quotes\n"
    "included) in their own process group.  Each job's stdout, then its\n"
    "stderr, is written whole when it ends: outputs never interleave.\n"
    "\n"
    "  -j, --jobs N       jobs at a time (default: the number of CPUs)\n"
    "  -k, --keep-order   outputs in input order (default: as jobs finish)\n"
    "  --timeout S        kill a job's process group (SIGKILL) after S seconds\n"
    "  --retries R        run a failed job up to R more times (last output kept)\n"
    "  --halt-on-error    start no new job after one failed (running ones finish)\n"
    "  --pipe             give the line on the job's stdin instead of as {}\n"
    "  --joblog FILE      one line per job, GNU parallel's format\n"
    "  --bar              progress on stderr (only when stderr is a terminal)\n"
    "  --shell            run CMD ARGS... as one /bin/sh -c string ({} quoted)\n"
    "  -0, --null         input records end with NUL instead of newline\n"
    "  -h, --help         this text\n"
    "\n"
    "Exit status: the number of failed jobs (non-zero exit, signal, timeout, could\n"
    "not start), at most 101; 0 if none; 2: bad usage; 255: internal error.\n";

struct job {
	uint64_t seq;
	size_t len;
	char line[];
};

struct result {
	uint64_t seq;
	bool skipped; /* not run: --halt-on-error stopped it */
	bool failed;
	bool timedout;
	int exitval; /* joblog: the exit code; 0 when killed by a signal, -1 when timed out */
	int sig;
	double start, runtime;
	size_t sent;
	cli_buf out, err;
	char *cmdline; /* joblog only */
};

struct map {
	char **tmpl;
	int ntmpl;
	bool has_brace, pipe_mode, shell, keep, halt, bar;
	int delim;
	int64_t timeout_ns;
	unsigned retries;
	int devnull;
	FILE *joblog;
	/* source state: only the pulling worker touches these (pmap pulls one at a time) */
	char *lbuf;
	size_t lcap;
	uint64_t nread;
	/* shared */
	atomic_bool halting;
	atomic_bool eof;
	atomic_uint_fast64_t total;
};

/* Process groups of running jobs, for the signal handler (0: none). */
static atomic_int *g_slots;
static size_t g_nslots;

static uint64_t now_ns(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void on_signal(int sig)
{
	/* Jobs are in their own groups, out of the terminal's reach: pass it on. */
	for (size_t i = 0; i < g_nslots; i++) {
		/* relaxed: kill() of a group that just ended fails harmlessly (ESRCH). */
		int pg = atomic_load_explicit(&g_slots[i], memory_order_relaxed);
		if (pg > 0)
			kill(-pg, sig);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

/* ---- input ------------------------------------------------------------------------------ */

static void job_free(void *item, void *ctx)
{
	(void)ctx;
	free(item);
}

static int src_next(void *ctx, void **item, uint64_t deadline)
{
	struct map *m = ctx;
	(void)deadline; /* blocking read of stdin */

	/* relaxed: a stop hint; a job pulled just after a failure is skipped by job_fn. */
	if (atomic_load_explicit(&m->halting, memory_order_relaxed))
		return FO_END;
	errno = 0;
	ssize_t n = getdelim(&m->lbuf, &m->lcap, m->delim, stdin);
	if (n < 0) {
		if (errno == ENOMEM)
			return FO_ENOMEM;
		if (ferror(stdin))
			cli_warn(errno, "map: reading stdin");
		/* relaxed: counters for the progress bar only. */
		atomic_store_explicit(&m->total, m->nread, memory_order_relaxed);
		atomic_store_explicit(&m->eof, true, memory_order_relaxed);
		return FO_END;
	}
	if (n > 0 && m->lbuf[n - 1] == m->delim)
		n--;
	struct job *j = malloc(sizeof(*j) + (size_t)n + 1);
	if (!j)
		return FO_ENOMEM;
	j->seq = ++m->nread;
	j->len = (size_t)n;
	memcpy(j->line, m->lbuf, (size_t)n);
	j->line[n] = '\0';
	*item = j;
	return FO_OK;
}

/* ---- command lines ------------------------------------------------------------------------ */

/* @t with every "{}" replaced by @rep (NULL when out of memory). */
static char *subst(const char *t, const char *rep, size_t rlen)
{
	cli_buf b = {0};
	const char *p = t, *q;
	while ((q = strstr(p, "{}"))) {
		if (!cli_buf_add(&b, p, (size_t)(q - p)) || !cli_buf_add(&b, rep, rlen))
			goto fail;
		p = q + 2;
	}
	if (!cli_buf_add(&b, p, strlen(p) + 1))
		goto fail;
	return b.p;
fail:
	free(b.p);
	return NULL;
}

/* @s in single quotes for /bin/sh. */
static char *shell_quote(const char *s, size_t len)
{
	cli_buf b = {0};
	bool ok = cli_buf_add(&b, "'", 1);
	for (size_t i = 0; ok && i < len; i++)
		ok = s[i] == '\'' ? cli_buf_add(&b, "'\\''", 4) : cli_buf_add(&b, &s[i], 1);
	if (ok && cli_buf_add(&b, "'", 2)) /* the quote and the terminating NUL */
		return b.p;
	free(b.p);
	return NULL;
}

static void argv_free(char **av)
{
	if (!av)
		return;
	for (char **p = av; *p; p++)
		free(*p);
	free(av);
}

/* The job's argv (every string malloc'd), NULL when out of memory. */
static char **build_argv(const struct map *m, const struct job *j)
{
	bool append = !m->has_brace && !m->pipe_mode;
	char **av;

	if (m->shell) {
		char *q = shell_quote(j->line, j->len);
		cli_buf b = {0};
		bool ok = q != NULL;
		for (int i = 0; ok && i < m->ntmpl; i++) {
			char *a = subst(m->tmpl[i], q, strlen(q));
			ok = a && (i == 0 || cli_buf_add(&b, " ", 1)) &&
			     cli_buf_add(&b, a, strlen(a));
			free(a);
		}
		if (ok && append)
			ok = cli_buf_add(&b, " ", 1) && cli_buf_add(&b, q, strlen(q));
		ok = ok && cli_buf_add(&b, "", 1);
		free(q);
		av = calloc(4, sizeof(*av));
		if (!ok || !av || !(av[0] = strdup("/bin/sh")) || !(av[1] = strdup("-c"))) {
			free(b.p);
			argv_free(av);
			return NULL;
		}
		av[2] = b.p;
		return av;
	}
	av = calloc((size_t)m->ntmpl + 2, sizeof(*av));
	if (!av)
		return NULL;
	for (int i = 0; i < m->ntmpl; i++) {
		if (!(av[i] = subst(m->tmpl[i], j->line, j->len))) {
			argv_free(av);
			return NULL;
		}
	}
	if (append && !(av[m->ntmpl] = strdup(j->line))) {
		argv_free(av);
		return NULL;
	}
	return av;
}

static char *join_argv(char **av)
{
	cli_buf b = {0};
	bool ok = true;
	for (char **p = av; ok && *p; p++)
		ok = (p == av || cli_buf_add(&b, " ", 1)) && cli_buf_add(&b, *p, strlen(*p));
	if (ok && cli_buf_add(&b, "", 1))
		return b.p;
	free(b.p);
	return NULL;
}

/* ---- one job ---------------------------------------------------------------------------- */

static int pidfd_of(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0); /* close-on-exec by definition */
#else
	(void)pid;
	errno = ENOSYS;
	return -1;
#endif
}

/* Read what is there into @b; false at EOF or on an error. */
static bool drain(int fd, cli_buf *b)
{
	if (!cli_buf_reserve(b, READ_CHUNK))
		return false;
	ssize_t n = read(fd, b->p + b->len, b->cap - b->len);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	if (n <= 0)
		return false;
	b->len += (size_t)n;
	return true;
}

static void closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Run @av once; fills @r's output, status and times. */
static void run_once(struct map *m, char **av, const struct job *j, struct result *r,
                     atomic_int *slot)
{
	int outp[2] = {-1, -1}, errp[2] = {-1, -1}, inp[2] = {-1, -1};
	int pidfd = -1, ws = 0, rc;
	pid_t pid;
	bool exited = false;
	size_t sent = 0;

	r->out.len = r->err.len = 0;
	r->timedout = false;
	r->sent = 0;
	r->start = (double)now_ns(CLOCK_REALTIME) / 1e9;
	uint64_t t0 = now_ns(CLOCK_MONOTONIC);
	uint64_t deadline = m->timeout_ns ? t0 + (uint64_t)m->timeout_ns : 0;

	if (pipe2(outp, O_CLOEXEC) || pipe2(errp, O_CLOEXEC) ||
	    (m->pipe_mode && pipe2(inp, O_CLOEXEC))) {
		rc = errno;
		goto spawn_failed;
	}
	rc = cli_spawn(&pid, av, m->pipe_mode ? inp[0] : m->devnull, outp[1], errp[1], true);
	closep(&outp[1]);
	closep(&errp[1]);
	closep(&inp[0]);
	if (rc)
		goto spawn_failed;
	/* relaxed: read only by the signal handler, which tolerates a stale value. */
	atomic_store_explicit(slot, pid, memory_order_relaxed);
	/* Without --timeout the job's end is the end of its output: waitpid() below. */
	if (deadline)
		pidfd = pidfd_of(pid);
	if (inp[1] >= 0)
		fcntl(inp[1], F_SETFL, O_NONBLOCK);
	char *send = NULL;
	size_t slen = 0;
	if (m->pipe_mode) {
		send = malloc(j->len + 1);
		if (send) {
			memcpy(send, j->line, j->len);
			send[j->len] = (char)m->delim;
			slen = j->len + 1;
		} else {
			closep(&inp[1]);
		}
	}

	while (outp[0] >= 0 || errp[0] >= 0 || inp[1] >= 0 || (pidfd >= 0 && !exited)) {
		struct pollfd pf[4];
		int n = 0, io = -1, ie = -1, ii = -1, ip = -1;
		if (outp[0] >= 0)
			pf[io = n++] = (struct pollfd){outp[0], POLLIN, 0};
		if (errp[0] >= 0)
			pf[ie = n++] = (struct pollfd){errp[0], POLLIN, 0};
		if (inp[1] >= 0)
			pf[ii = n++] = (struct pollfd){inp[1], POLLOUT, 0};
		if (pidfd >= 0 && !exited)
			pf[ip = n++] = (struct pollfd){pidfd, POLLIN, 0};
		int ms = -1;
		if (deadline) {
			uint64_t now = now_ns(CLOCK_MONOTONIC);
			if (now >= deadline) {
				kill(-pid, SIGKILL); /* the whole group, grandchildren included */
				r->timedout = true;
				deadline = 0;
				continue;
			}
			ms = (int)((deadline - now + 999999) / 1000000);
		}
		int k = poll(pf, (nfds_t)n, ms);
		if (k < 0 && errno != EINTR)
			break;
		if (k <= 0)
			continue;
		if (io >= 0 && pf[io].revents && !drain(outp[0], &r->out))
			closep(&outp[0]);
		if (ie >= 0 && pf[ie].revents && !drain(errp[0], &r->err))
			closep(&errp[0]);
		if (ii >= 0 && pf[ii].revents) {
			/* POLLERR without POLLOUT: the job closed its stdin. */
			bool done = !(pf[ii].revents & POLLOUT);
			if (!done) {
				ssize_t w = write(inp[1], send + sent, slen - sent);
				if (w > 0)
					sent += (size_t)w;
				done = sent == slen || (w < 0 && errno != EAGAIN && errno != EINTR);
			}
			if (done)
				closep(&inp[1]);
		}
		if (ip >= 0 && pf[ip].revents) {
			exited = true;
			/* After a timeout, a descendant that left the group must not hold us. */
			if (r->timedout) {
				closep(&outp[0]);
				closep(&errp[0]);
				closep(&inp[1]);
			}
		}
	}
	free(send);
	closep(&outp[0]);
	closep(&errp[0]);
	closep(&inp[1]);
	closep(&pidfd);
	atomic_store_explicit(slot, 0, memory_order_relaxed); /* before the reap frees the pid */
	while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
		;
	r->runtime = (double)(now_ns(CLOCK_MONOTONIC) - t0) / 1e9;
	r->sent = sent;
	/* GNU parallel's joblog: a signal gives Exitval 0 and its number; a timeout Exitval -1 */
	r->exitval = WIFEXITED(ws) ? WEXITSTATUS(ws) : 0;
	r->sig = WIFSIGNALED(ws) ? WTERMSIG(ws) : 0;
	if (r->timedout)
		r->exitval = -1;
	r->failed = r->timedout || r->exitval != 0 || r->sig != 0;
	return;

spawn_failed:
	closep(&outp[0]);
	closep(&outp[1]);
	closep(&errp[0]);
	closep(&errp[1]);
	closep(&inp[0]);
	closep(&inp[1]);
	{
		char msg[512];
		int len = snprintf(msg, sizeof(msg), "fanout map: %s: %s\n", av[0], strerror(rc));
		cli_buf_add(&r->err, msg, len > 0 ? (size_t)len : 0);
	}
	r->exitval = rc == ENOENT ? 127 : 126; /* the shell's codes */
	r->sig = 0;
	r->failed = true;
	r->runtime = (double)(now_ns(CLOCK_MONOTONIC) - t0) / 1e9;
}

static void result_free(void *item, void *ctx)
{
	struct result *r = item;
	(void)ctx;
	free(r->out.p);
	free(r->err.p);
	free(r->cmdline);
	free(r);
}

static int worker_init(void *ctx, void *arg, void **wstate)
{
	(void)ctx;
	*wstate = arg; /* this worker's slot in g_slots */
	return FO_OK;
}

static int job_fn(void *ctx, void *wstate, void *in, void **out)
{
	struct map *m = ctx;
	struct job *j = in;
	struct result *r = calloc(1, sizeof(*r));
	char **av = NULL;

	if (!r)
		return FO_ENOMEM;
	r->seq = j->seq;
	/* relaxed: a stop hint (--halt-on-error); no data travels with it. */
	if (atomic_load_explicit(&m->halting, memory_order_relaxed)) {
		r->skipped = true;
		goto done;
	}
	if (!(av = build_argv(m, j)) || (m->joblog && !(r->cmdline = join_argv(av)))) {
		result_free(r, NULL);
		argv_free(av);
		return FO_ENOMEM;
	}
	for (unsigned a = 0; a <= m->retries; a++) {
		run_once(m, av, j, r, wstate);
		if (!r->failed || atomic_load_explicit(&m->halting, memory_order_relaxed))
			break;
	}
	if (r->timedout) {
		char *cmd = join_argv(av), msg[256];
		int len = snprintf(msg, sizeof(msg), "fanout map: job %llu timed out: %.180s\n",
		                   (unsigned long long)r->seq, cmd ? cmd : av[0]);
		cli_buf_add(&r->err, msg, len > 0 ? (size_t)len : 0);
		free(cmd);
	}
	if (r->failed && m->halt)
		atomic_store_explicit(&m->halting, true, memory_order_relaxed);
done:
	argv_free(av);
	free(j);
	*out = r;
	return FO_OK;
}

/* ---- output -------------------------------------------------------------------------------- */

struct bar {
	bool on;
	uint64_t last_ns, t0;
};

static void bar_draw(struct bar *b, struct map *m, uint64_t done, uint64_t failed, bool final)
{
	uint64_t now = now_ns(CLOCK_MONOTONIC);
	if (!b->on || (!final && now - b->last_ns < 100000000u))
		return;
	b->last_ns = now;
	char line[160];
	int n;
	/* relaxed: progress display only. */
	if (atomic_load_explicit(&m->eof, memory_order_relaxed)) {
		uint64_t total = atomic_load_explicit(&m->total, memory_order_relaxed);
		double el = (double)(now - b->t0) / 1e9;
		double eta = done ? el / (double)done * (double)(total - done) : 0;
		int pct = total ? (int)(100 * done / total) : 100;
		char bar[21];
		for (int i = 0; i < 20; i++)
			bar[i] = i < pct / 5 ? '#' : '.';
		bar[20] = '\0';
		n = snprintf(line, sizeof(line),
		             "\r[%s] %3d%% %llu/%llu jobs, %llu failed, ETA %.0fs \033[K", bar, pct,
		             (unsigned long long)done, (unsigned long long)total,
		             (unsigned long long)failed, eta);
	} else {
		n = snprintf(line, sizeof(line), "\r%llu jobs done, %llu failed \033[K",
		             (unsigned long long)done, (unsigned long long)failed);
	}
	cli_write_all(2, line, (size_t)n);
	if (final)
		cli_write_all(2, "\n", 1);
}

static void joblog_line(FILE *f, const struct result *r)
{
	fprintf(f, "%llu\t:\t%.3f\t%10.3f\t%zu\t%zu\t%d\t%d\t%s\n", (unsigned long long)r->seq,
	        r->start, r->runtime, r->sent, r->out.len, r->exitval, r->sig,
	        r->cmdline ? r->cmdline : "");
}

int cli_map(int argc, char **argv)
{
	enum { O_TIMEOUT = 256, O_RETRIES, O_HALT, O_PIPE, O_JOBLOG, O_BAR, O_SHELL };
	static const struct option longs[] = {{"jobs", required_argument, NULL, 'j'},
	                                      {"keep-order", no_argument, NULL, 'k'},
	                                      {"timeout", required_argument, NULL, O_TIMEOUT},
	                                      {"retries", required_argument, NULL, O_RETRIES},
	                                      {"halt-on-error", no_argument, NULL, O_HALT},
	                                      {"pipe", no_argument, NULL, O_PIPE},
	                                      {"joblog", required_argument, NULL, O_JOBLOG},
	                                      {"bar", no_argument, NULL, O_BAR},
	                                      {"shell", no_argument, NULL, O_SHELL},
	                                      {"null", no_argument, NULL, '0'},
	                                      {"help", no_argument, NULL, 'h'},
	                                      {NULL, 0, NULL, 0}};
	struct map m = {.delim = '\n', .devnull = -1};
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	size_t jobs = ncpu > 0 ? (size_t)ncpu : 1;
	const char *joblog = NULL;
	int opt;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+j:k0h", longs, NULL)) != -1) {
		switch (opt) {
		case 'j':
			jobs = (size_t)cli_parse_int("map", "-j", optarg, 1, MAX_JOBS);
			break;
		case 'k':
			m.keep = true;
			break;
		case O_TIMEOUT:
			m.timeout_ns =
			    (int64_t)(cli_parse_seconds("map", "--timeout", optarg) * 1e9);
			if (m.timeout_ns < 1)
				m.timeout_ns = 1;
			break;
		case O_RETRIES:
			m.retries = (unsigned)cli_parse_int("map", "--retries", optarg, 0, 1000);
			break;
		case O_HALT:
			m.halt = true;
			break;
		case O_PIPE:
			m.pipe_mode = true;
			break;
		case O_JOBLOG:
			joblog = optarg;
			break;
		case O_BAR:
			m.bar = true;
			break;
		case O_SHELL:
			m.shell = true;
			break;
		case '0':
			m.delim = '\0';
			break;
		case 'h':
			fputs(map_usage, stdout);
			return 0;
		case ':':
			cli_usage_error("map", "option '%s' needs a value", argv[optind - 1]);
		default:
			cli_usage_error("map", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		cli_usage_error("map", "no command given");
	m.tmpl = argv + optind;
	m.ntmpl = argc - optind;
	for (int i = 0; i < m.ntmpl; i++)
		m.has_brace = m.has_brace || strstr(m.tmpl[i], "{}");
	if (joblog && !(m.joblog = fopen(joblog, "we")))
		cli_usage_error("map", "--joblog: cannot open '%s': %s", joblog, strerror(errno));
	if ((m.devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
		cli_warn(errno, "map: /dev/null");
		return EXIT_INTERNAL;
	}
	atomic_init(&m.halting, false);
	atomic_init(&m.eof, false);
	atomic_init(&m.total, 0);

	g_nslots = jobs;
	g_slots = calloc(jobs, sizeof(*g_slots));
	void **slot_args = calloc(jobs, sizeof(*slot_args));
	fo_iter *src = NULL, *out = NULL;
	int status = EXIT_INTERNAL;
	if (!g_slots || !slot_args)
		goto out;
	for (size_t i = 0; i < jobs; i++) {
		atomic_init(&g_slots[i], 0);
		slot_args[i] = &g_slots[i];
	}
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	fo_pmap_opts po;
	fo_pmap_opts_init(&po);
	po.workers = jobs;
	po.ordered = m.keep;
	po.ctx = &m;
	po.init = worker_init;
	po.init_args = slot_args;
	po.item_free = result_free;
	if (fo_iter_from_fn(&src, src_next, NULL, &m, job_free, NULL) != FO_OK)
		goto out;
	if (fo_pmap(&out, src, job_fn, &po) != FO_OK) {
		fo_iter_close(src);
		goto out;
	}
	if (m.joblog) {
		fputs("Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n",
		      m.joblog);
		fflush(m.joblog);
	}

	struct bar bar = {.on = m.bar && isatty(2), .t0 = now_ns(CLOCK_MONOTONIC)};
	uint64_t done = 0, failed = 0;
	bool stdout_gone = false;
	void *item;
	int rc;
	while ((rc = fo_iter_next(out, &item)) == FO_OK) {
		struct result *r = item;
		if (!r->skipped) {
			done++;
			failed += r->failed;
			if (!stdout_gone && cli_write_all(1, r->out.p, r->out.len) == EPIPE) {
				stdout_gone = true; /* e.g. | head: stop starting jobs */
				atomic_store_explicit(&m.halting, true, memory_order_relaxed);
			}
			cli_write_all(2, r->err.p, r->err.len);
			if (m.joblog) {
				joblog_line(m.joblog, r);
				fflush(m.joblog);
			}
			bar_draw(&bar, &m, done, failed, false);
		}
		fo_iter_release(out, r);
	}
	if (rc == FO_FAILED) {
		const fo_error *e = fo_iter_error(out);
		cli_warn(0, "map: %s", e ? e->message : "failed");
		status = EXIT_INTERNAL;
	} else {
		status = failed > MAX_EXIT ? MAX_EXIT : (int)failed;
	}
	if (done)
		bar_draw(&bar, &m, done, failed, true);
	fo_iter_close(out);
	if (stdout_gone) {
		signal(SIGPIPE, SIG_DFL); /* end as a filter does when its reader goes */
		raise(SIGPIPE);
	}
out:
	if (status == EXIT_INTERNAL && !out)
		cli_warn(ENOMEM, "map");
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	if (m.joblog)
		fclose(m.joblog);
	close(m.devnull);
	free(m.lbuf);
	free(slot_args);
	free(g_slots);
	g_slots = NULL;
	g_nslots = 0;
	return status;
}
