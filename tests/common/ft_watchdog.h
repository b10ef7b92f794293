/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * ft_watchdog.h - turn a stalled stress test into a failure that says where it
 * stalled.  The test bumps a progress counter; when it has not moved for one
 * period, the watchdog prints every thread of the process (state, kernel wait
 * channel, current system call) and every child process the same way, then
 * aborts.  A CI log then shows who waits on what, where a ctest timeout would
 * only say "Timeout" after the whole budget.
 */
#ifndef FANOUT_TEST_WATCHDOG_H
#define FANOUT_TEST_WATCHDOG_H

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct ft_watchdog {
	atomic_ulong progress; /* bumped by the test: ft_watchdog_tick() */
	unsigned period_s;
	_Atomic(const char *) what; /* what the test does now (set by the test; may be NULL) */
} ft_watchdog;

/* Say what the test does now (@what: a string that outlives the watchdog's next look). */
static inline void ft_watchdog_doing(ft_watchdog *w, const char *what)
{
	atomic_store(&w->what, what);
}

static inline void ft_watchdog_tick(ft_watchdog *w)
{
	/* relaxed: only compared across a whole period. */
	atomic_fetch_add_explicit(&w->progress, 1, memory_order_relaxed);
}

/* The first line of /proc/<dir>/<name> into @buf (empty on any error). */
static inline void ft__proc_line(const char *dir, const char *name, char *buf, size_t n)
{
	char path[400];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	buf[0] = '\0';
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	if (!fgets(buf, (int)n, f))
		buf[0] = '\0';
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
}

/* One line: name, state, wait channel and system call of the task in @dir. */
static inline void ft__proc_describe(const char *label, const char *dir)
{
	char comm[64], stat[512], wchan[128], sys[256];
	ft__proc_line(dir, "comm", comm, sizeof(comm));
	ft__proc_line(dir, "stat", stat, sizeof(stat));
	ft__proc_line(dir, "wchan", wchan, sizeof(wchan));
	ft__proc_line(dir, "syscall", sys, sizeof(sys));
	const char *st = strrchr(stat, ')'); /* the state follows the command's ')' */
	fprintf(stderr, "  %s %s [%s] state %c wchan %s syscall %s\n", label, dir, comm,
	        st && st[1] && st[2] ? st[2] : '?', wchan, sys);
}

static inline void ft_watchdog_dump(void)
{
	DIR *d = opendir("/proc/self/task");
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char dir[300], kids[1024];
		snprintf(dir, sizeof(dir), "/proc/self/task/%s", e->d_name);
		ft__proc_describe("thread", dir);
		ft__proc_line(dir, "children", kids, sizeof(kids));
		for (char *tok = strtok(kids, " "); tok; tok = strtok(NULL, " ")) {
			char cdir[64];
			snprintf(cdir, sizeof(cdir), "/proc/%s", tok);
			ft__proc_describe("  child", cdir);
		}
	}
	closedir(d);
}

static inline void *ft__watchdog_main(void *arg)
{
	ft_watchdog *w = arg;
	unsigned long last = atomic_load_explicit(&w->progress, memory_order_relaxed);
	for (;;) {
		struct timespec ts = {.tv_sec = (time_t)w->period_s};
		while (nanosleep(&ts, &ts) != 0)
			;
		unsigned long now = atomic_load_explicit(&w->progress, memory_order_relaxed);
		if (now != last) {
			last = now;
			continue;
		}
		const char *what = atomic_load(&w->what);
		fprintf(stderr, "FAIL: no progress for %u s (%s); threads and children:\n",
		        w->period_s, what ? what : "?");
		ft_watchdog_dump();
		fflush(stderr);
		abort();
	}
	return NULL;
}

/* Start the watchdog thread (detached); exits the test if it cannot start. */
static inline void ft_watchdog_start(ft_watchdog *w, unsigned period_s)
{
	atomic_init(&w->progress, 0);
	atomic_init(&w->what, NULL);
	w->period_s = period_s;
	pthread_t t;
	if (pthread_create(&t, NULL, ft__watchdog_main, w) != 0) {
		fprintf(stderr, "FAIL: cannot start the watchdog\n");
		exit(1);
	}
	pthread_detach(t);
}

#endif /* FANOUT_TEST_WATCHDOG_H */
