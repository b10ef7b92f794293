/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * distributed_bus.c - one event bus shared by several processes through a
 * Redis stream (fanout::redis).
 *
 *   publisher process:  events -> local fanout stream -> fo_redis_sink -> Redis
 *                                                  \-> a PASSIVE local tap (a
 *                                                      lossy counter that never
 *                                                      slows the publisher)
 *   subscriber processes (one consumer group, --subscribers of them):
 *                       Redis -> fo_redis_source -> tally
 *
 * Each subscriber reports the events it handled to the publisher through a
 * pipe; the publisher prints a tally proving that every event arrived exactly
 * once across the group.
 *
 *   redis-server --port 6390 --save '' &
 *   ./distributed_bus --url redis://127.0.0.1:6390 [--events N] [--subscribers K]
 *
 * With no --url it uses $FO_REDIS_URL (set by tests/bridges/servers.sh, which
 * is how CTest runs it), or prints how to run it and exits 0.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fanout/fanout.h>
#include <fanout/redis.h>

typedef struct event {
	uint64_t seq;
	uint32_t kind; /* e.g. 0 = click, 1 = view, 2 = buy */
	uint32_t value;
} event;

static volatile sig_atomic_t stop_flag;

static void event_free(void *item, void *ctx)
{
	(void)ctx;
	free(item);
}

static void on_term(int sig)
{
	(void)sig;
	stop_flag = 1;
}

/* A subscriber: read the group until told to stop; report each seq on @wfd. */
static int subscriber(const char *url, const char *key, int id, int wfd)
{
	signal(SIGTERM, on_term);
	fo_redis_opts o;
	fo_redis_opts_init(&o);
	o.create_group = 1;
	o.block_ms = 100;
	fo_codec codec = fo_codec_pod(sizeof(event));
	char name[32];
	snprintf(name, sizeof(name), "sub-%d", id);
	fo_iter *it;
	if (fo_redis_source(&it, url, key, "bus", name, &codec, &o) != FO_OK) {
		fprintf(stderr, "%s: %s\n", name, fo_redis_errmsg());
		return 1;
	}
	uint64_t handled = 0;
	while (!stop_flag) {
		void *item;
		int rc = fo_iter_timed_next(it, &item, 100 * 1000000ll);
		if (rc == FO_TIMEDOUT)
			continue;
		if (rc != FO_OK) {
			fprintf(stderr, "%s: %s\n", name, fo_iter_error(it)->message);
			break;
		}
		const event *e = item; /* valid until the next read: then acknowledged */
		if (write(wfd, &e->seq, sizeof(e->seq)) != sizeof(e->seq))
			break;
		handled++;
	}
	fo_iter_close(it); /* acknowledges the last event */
	printf("subscriber %s: handled %llu events\n", name, (unsigned long long)handled);
	fflush(stdout); /* the child leaves with _exit() */
	return 0;
}

int main(int argc, char **argv)
{
	const char *url = getenv("FO_REDIS_URL");
	uint64_t n = 20000;
	int nsub = 2;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--url") && i + 1 < argc)
			url = argv[++i];
		else if (!strcmp(argv[i], "--events") && i + 1 < argc)
			n = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--subscribers") && i + 1 < argc)
			nsub = atoi(argv[++i]);
		else {
			fprintf(stderr,
			        "usage: %s [--url redis://host:port] [--events N] "
			        "[--subscribers K]\n",
			        argv[0]);
			return 2;
		}
	}
	if (!url) {
		printf("distributed_bus: no Redis to talk to.  Start one and pass its URL:\n"
		       "  redis-server --port 6390 --save '' &\n"
		       "  %s --url redis://127.0.0.1:6390\n",
		       argv[0]);
		return 0;
	}
	if (n == 0 || nsub < 1 || nsub > 16)
		return 2;
	char key[64];
	snprintf(key, sizeof(key), "bus:events:%d", (int)getpid());

	/* Subscribers first: forked before this process starts any thread. */
	int pfd[2];
	if (pipe(pfd) != 0)
		return 1;
	pid_t pids[16];
	for (int i = 0; i < nsub; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			close(pfd[0]);
			fflush(stdout);
			_exit(subscriber(url, key, i, pfd[1]));
		}
	}
	close(pfd[1]);

	/* Publisher: a local bus with a lossless Redis sink and a passive tap. */
	fo_stream_opts so;
	fo_stream_opts_init(&so);
	so.capacity = 4096; /* Redis backpressure reaches the producer here */
	so.item_free = event_free;
	fo_stream *bus;
	fo_cursor *to_redis, *tap;
	if (fo_stream_create(&bus, &so) != FO_OK ||
	    fo_stream_cursor(bus, &to_redis, FO_ACTIVE) != FO_OK ||
	    fo_stream_cursor(bus, &tap, FO_PASSIVE) != FO_OK)
		return 1;
	fo_redis_opts o;
	fo_redis_opts_init(&o);
	fo_codec codec = fo_codec_pod(sizeof(event));
	fo_redis_sink *sink;
	if (fo_redis_sink_start(&sink, to_redis, url, key, &codec, &o) != FO_OK) {
		fprintf(stderr, "publisher: %s\n", fo_redis_errmsg());
		return 1;
	}
	uint64_t tapped = 0;
	for (uint64_t i = 0; i < n; i++) {
		event *e = malloc(sizeof(*e));
		*e = (event){.seq = i, .kind = (uint32_t)(i % 3), .value = (uint32_t)(i * 7 % 100)};
		if (fo_stream_push(bus, e) != FO_OK)
			return 1;
		void *seen;
		while (fo_cursor_try_next(tap, &seen) == FO_OK) /* the local tap: never blocks */
			tapped++;
	}
	fo_stream_close(bus);
	int rc = fo_redis_sink_stop(sink); /* flushes everything pushed */
	if (rc != FO_OK) {
		fprintf(stderr, "publisher: sink: %s\n", fo_redis_errmsg());
		return 1;
	}
	void *seen;
	while ((rc = fo_cursor_next(tap, &seen)) == FO_OK || rc == FO_LAGGED)
		tapped += rc == FO_OK;
	uint64_t tap_lagged = fo_cursor_lagged(tap);
	fo_cursor_close(tap);
	fo_stream_destroy(bus);

	/* The tally: every event exactly once across the group. */
	unsigned char *count = calloc(n, 1);
	uint64_t got = 0, seq;
	while (got < n && read(pfd[0], &seq, sizeof(seq)) == sizeof(seq)) {
		if (seq < n && count[seq] < 255)
			count[seq]++;
		got++;
	}
	for (int i = 0; i < nsub; i++)
		kill(pids[i], SIGTERM);
	while (read(pfd[0], &seq, sizeof(seq)) == sizeof(seq)) { /* late duplicates? */
		if (seq < n && count[seq] < 255)
			count[seq]++;
		got++;
	}
	int failed = 0;
	for (int i = 0; i < nsub; i++) {
		int st;
		waitpid(pids[i], &st, 0);
		failed |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
	}
	uint64_t once = 0, missing = 0, dup = 0;
	for (uint64_t i = 0; i < n; i++) {
		once += count[i] == 1;
		missing += count[i] == 0;
		dup += count[i] > 1;
	}
	free(count);
	printf("tally: %llu events published, %llu handled by the group: %llu exactly once, "
	       "%llu missing, %llu duplicated\n",
	       (unsigned long long)n, (unsigned long long)got, (unsigned long long)once,
	       (unsigned long long)missing, (unsigned long long)dup);
	printf("local passive tap: saw %llu, skipped %llu (it never slowed the publisher)\n",
	       (unsigned long long)tapped, (unsigned long long)tap_lagged);
	return failed || once != n ? 1 : 0;
}
