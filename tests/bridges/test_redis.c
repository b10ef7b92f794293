/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * test_redis.c - the Redis bridge against a real redis-server (TESTING.md
 * layer 9).  Run under tests/bridges/servers.sh, which exports FO_REDIS_URL
 * and FO_SERVERS_SH (restart helper); skipped without them.
 *
 * Items are 8-byte sequence numbers (fo_codec_pod(8)).  Every flow checks the
 * sequence downstream: no gap, no duplicate, in order where one consumer
 * reads.  Faults: server crash + restart (SIGKILL, AOF appendfsync always),
 * CLIENT KILL of every client, a consumer process killed with unacknowledged
 * entries (redelivered to the same name, and claimed by another), backpressure
 * from a paused server, bad inputs with their exact codes.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include <fanout/fanout.h>
#include <fanout/redis.h>

#include "bridge_test.h"

static const char *url(void)
{
	return getenv("FO_REDIS_URL");
}

#define NEED_SERVER() NEED_ENV("FO_REDIS_URL")

/* A unique key per test and run. */
static void keyname(char *buf, size_t n, const char *what)
{
	snprintf(buf, n, "fo:test:%s:%d", what, (int)getpid());
}

/* A plain hiredis connection for the test's own commands. */
static redisContext *admin(void)
{
	int port = atoi(getenv("FO_REDIS_PORT"));
	struct timeval tv = {5, 0};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	assert_non_null(c);
	assert_int_equal(c->err, 0);
	return c;
}

static void admin_cmd(const char *fmt, ...)
{
	redisContext *c = admin();
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = redisvCommand(c, fmt, ap);
	va_end(ap);
	assert_non_null(r);
	freeReplyObject(r);
	redisFree(c);
}

static long long admin_int(const char *fmt, ...)
{
	redisContext *c = admin();
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = redisvCommand(c, fmt, ap);
	va_end(ap);
	assert_non_null(r);
	long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
	if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
	    r->element[0]->type == REDIS_REPLY_INTEGER)
		v = r->element[0]->integer; /* XPENDING summary: count first */
	freeReplyObject(r);
	redisFree(c);
	return v;
}

static fo_redis_opts quick_opts(void)
{
	fo_redis_opts o;
	fo_redis_opts_init(&o);
	o.connect_timeout_ms = 1000;
	o.io_timeout_ms = 2000;
	o.retry_timeout_ms = 60000; /* a restart on a loaded machine can take a while */
	o.block_ms = 200;
	return o;
}

/* Faults for a fault thread (bridge_test.h). */
static void restart_redis(void)
{
	server_restart("redis");
}

/* On the fault thread: no cmocka assert here (they belong to the main
 * thread); a failure is reported, as server_restart() does. */
static void kill_clients(void)
{
	struct timeval tv = {5, 0};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", atoi(getenv("FO_REDIS_PORT")), tv);
	redisReply *r = c && !c->err ? redisCommand(c, "CLIENT KILL TYPE normal SKIPME yes") : NULL;
	if (r)
		freeReplyObject(r);
	else
		fprintf(stderr, "CLIENT KILL failed: %s\n", c ? c->errstr : "no memory");
	redisFree(c);
}

/*
 * sink -> Redis -> source with @n items, optionally with a fault thread
 * running meanwhile.  Checks order, no gap, no duplicate, and that nothing
 * more arrives.
 */
static void flow(const char *what, uint64_t n, struct fault *f, unsigned pause_every)
{
	char key[128];
	keyname(key, sizeof(key), what);
	fo_redis_opts o = quick_opts();
	o.create_group = 1;
	fo_codec codec = fo_codec_pod(sizeof(uint64_t));

	fo_iter *it = NULL;
	int rc = fo_redis_source(&it, url(), key, "g", "c1", &codec, &o);
	if (rc != FO_OK)
		fail_msg("source: %s: %s", fo_status_name(rc), fo_redis_errmsg());

	fo_cursor *c;
	fo_stream *s = seq_stream(&c, 4096);
	fo_redis_sink *sink = NULL;
	o.batch = 128;
	rc = fo_redis_sink_start(&sink, c, url(), key, &codec, &o);
	if (rc != FO_OK)
		fail_msg("sink: %s: %s", fo_status_name(rc), fo_redis_errmsg());

	struct producer p = {.s = s, .n = n, .pause_every = pause_every};
	assert_int_equal(pthread_create(&p.t, NULL, producer_main, &p), 0);
	fault_start(f);

	read_in_order(it, n);

	pthread_join(p.t, NULL);
	fault_join(f);
	rc = fo_redis_sink_stop(sink);
	if (rc != FO_OK)
		fail_msg("sink stop: %s: %s", fo_status_name(rc), fo_redis_errmsg());
	/* nothing more: no duplicate arrives late */
	void *item;
	assert_int_equal(fo_iter_timed_next(it, &item, 300 * 1000000ll), FO_TIMEDOUT);
	fo_iter_close(it);
	fo_stream_destroy(s);
	/* every entry stored once and acknowledged */
	assert_int_equal(admin_int("XLEN %s", key), (long long)n);
	assert_int_equal(admin_int("XPENDING %s g", key), 0);
	admin_cmd("DEL %s", key);
}

static void test_ordered_delivery(void **state)
{
	(void)state;
	NEED_SERVER();
	flow("ordered", ft_scale(120000), NULL, 0);
}

static void test_server_restart(void **state)
{
	(void)state;
	NEED_SERVER();
	struct fault f = {.fn = restart_redis, .times = 2, .every_ms = 400};
	flow("restart", ft_scale(40000), &f, 64);
}

static void test_client_kill(void **state)
{
	(void)state;
	NEED_SERVER();
	struct fault f = {.fn = kill_clients, .times = 6, .every_ms = 100};
	flow("kill", ft_scale(40000), &f, 64);
}

/* ------------------------------------------------------------------------ */
/* Consumer crash: a child process reads @k entries and dies without closing. */

/* Store 0..n-1 in @key with a sink (stopped: everything flushed). */
static void fill(const char *key, uint64_t n)
{
	fo_redis_opts o = quick_opts();
	fo_codec codec = fo_codec_pod(sizeof(uint64_t));
	fo_cursor *c;
	fo_stream *s = seq_stream(&c, 0);
	fo_redis_sink *sink;
	assert_int_equal(fo_redis_sink_start(&sink, c, url(), key, &codec, &o), FO_OK);
	for (uint64_t i = 0; i < n; i++)
		assert_int_equal(fo_stream_push(s, seq_new(i)), FO_OK);
	fo_stream_close(s);
	assert_int_equal(fo_redis_sink_stop(sink), FO_OK);
	fo_stream_destroy(s);
}

/* In a child: read @k items as @consumer, report them on @wfd, _exit. */
static void crash_consumer(const char *key, const char *consumer, int k, int wfd)
{
	fo_redis_opts o = quick_opts();
	o.create_group = 1;
	o.prefetch = 64;
	fo_codec codec = fo_codec_pod(sizeof(uint64_t));
	fo_iter *it;
	if (fo_redis_source(&it, url(), key, "g", consumer, &codec, &o) != FO_OK)
		_exit(2);
	for (int i = 0; i < k; i++) {
		void *item;
		if (fo_iter_next(it, &item) != FO_OK)
			_exit(3);
		uint64_t v = *(uint64_t *)item;
		if (write(wfd, &v, sizeof(v)) != sizeof(v))
			_exit(4);
	}
	_exit(0); /* a crash: no close, the last entries stay unacknowledged */
}

/* @running: the next consumer's source is open before the crash (it takes
 * the crashed one's entries over in a periodic claim pass, not at its start). */
static void crash_case(const char *what, const char *next_consumer, int64_t claim_idle_ms,
                       bool running)
{
	char key[128];
	keyname(key, sizeof(key), what);
	const uint64_t n = 2000;
	const int k = 300;
	fill(key, n);
	fo_redis_opts o = quick_opts();
	o.claim_idle_ms = claim_idle_ms;
	o.prefetch = 256; /* the running one leaves the crashing one most entries */
	o.create_group = 1;
	fo_codec codec = fo_codec_pod(sizeof(uint64_t));
	fo_iter *it = NULL;
	int rc;
	if (running && (rc = fo_redis_source(&it, url(), key, "g", next_consumer, &codec, &o)))
		fail_msg("source: %s: %s", fo_status_name(rc), fo_redis_errmsg());

	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	/* fork + exec: a fresh process (no threads inherited) */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		char fdbuf[16], kbuf[16];
		snprintf(fdbuf, sizeof(fdbuf), "%d", pfd[1]);
		snprintf(kbuf, sizeof(kbuf), "%d", k);
		execl("/proc/self/exe", "test_redis", "--crash-consumer", key, "c1", kbuf, fdbuf,
		      (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	unsigned char *seen_a = calloc(n, 1), *seen_b = calloc(n, 1);
	uint64_t v;
	int got = 0;
	while (read(pfd[0], &v, sizeof(v)) == sizeof(v)) {
		assert_true(v < n);
		seen_a[v]++;
		got++;
	}
	close(pfd[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(got, k);
	long long pending = admin_int("XPENDING %s g", key);
	/* At least the item held at the crash was not acknowledged; the
	 * prefetched ones are pending too. */
	assert_true(pending >= 1);

	if (!running && (rc = fo_redis_source(&it, url(), key, "g", next_consumer, &codec, &o)))
		fail_msg("source: %s: %s", fo_status_name(rc), fo_redis_errmsg());
	uint64_t redelivered = 0, total_b = 0, covered = 0;
	for (uint64_t i = 0; i < n; i++)
		covered += seen_a[i] != 0;
	for (;;) {
		void *item;
		/* Until every item is accounted for, wait long (a loaded sanitizer
		 * run can pause for seconds); then a short wait shows nothing more
		 * comes. */
		rc = fo_iter_timed_next(it, &item,
		                        covered < n ? 30000 * 1000000ll : 300 * 1000000ll);
		if (rc == FO_TIMEDOUT)
			break;
		assert_int_equal(rc, FO_OK);
		v = *(uint64_t *)item;
		assert_true(v < n);
		assert_int_equal(seen_b[v], 0); /* no duplicate within the next consumer */
		seen_b[v] = 1;
		covered += !seen_a[v];
		total_b++;
		if (seen_a[v])
			redelivered++;
	}
	fo_iter_close(it);
	/* every item arrived: read by the crashed consumer or by the next one */
	for (uint64_t i = 0; i < n; i++)
		if (!seen_a[i] && !seen_b[i])
			fail_msg("item %llu lost", (unsigned long long)i);
	/* the unacknowledged ones of those it read came again (at least one) */
	assert_true(redelivered >= 1);
	assert_true(redelivered <= (uint64_t)pending);
	assert_int_equal(admin_int("XPENDING %s g", key), 0);
	print_message(
	    "%s: crashed consumer read %d, pending %lld, redelivered %llu, next read %llu\n", what,
	    k, pending, (unsigned long long)redelivered, (unsigned long long)total_b);
	free(seen_a);
	free(seen_b);
	admin_cmd("DEL %s", key);
}

static void test_crash_same_name(void **state)
{
	(void)state;
	NEED_SERVER();
	crash_case("crash_same", "c1", -1, false); /* its own pending entries first */
}

static void test_crash_claimed(void **state)
{
	(void)state;
	NEED_SERVER();
	crash_case("crash_claim", "c2", 0, false); /* another consumer claims them */
}

static void test_crash_claimed_while_running(void **state)
{
	(void)state;
	NEED_SERVER();
	/* a consumer that was running already takes them over (periodic claim) */
	crash_case("crash_claim_run", "c2", 500, true);
}

/* ------------------------------------------------------------------------ */
/* Two consumers in one group: each item exactly once. */

struct reader {
	const char *key, *name;
	uint64_t n;
	_Atomic uint64_t *total;
	_Atomic unsigned char *seen;
	int rc;
	pthread_t t;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	fo_redis_opts o = quick_opts();
	o.create_group = 1;
	o.prefetch = 128;
	o.batch = 32;
	fo_codec codec = fo_codec_pod(sizeof(uint64_t));
	fo_iter *it;
	r->rc = fo_redis_source(&it, url(), r->key, "g", r->name, &codec, &o);
	if (r->rc != FO_OK)
		return NULL;
	while (atomic_load(r->total) < r->n) {
		void *item;
		int rc = fo_iter_timed_next(it, &item, 100 * 1000000ll);
		if (rc == FO_TIMEDOUT)
			continue;
		if (rc != FO_OK) {
			r->rc = rc;
			break;
		}
		uint64_t v = *(uint64_t *)item;
		if (v < r->n)
			atomic_fetch_add(&r->seen[v], 1);
		atomic_fetch_add(r->total, 1);
	}
	fo_iter_close(it);
	return NULL;
}

static void test_two_consumers(void **state)
{
	(void)state;
	NEED_SERVER();
	char key[128];
	keyname(key, sizeof(key), "two");
	const uint64_t n = ft_scale(20000);
	_Atomic uint64_t total = 0;
	_Atomic unsigned char *seen = calloc(n, 1);
	struct reader r[2] = {{.key = key, .name = "a", .n = n, .total = &total, .seen = seen},
	                      {.key = key, .name = "b", .n = n, .total = &total, .seen = seen}};
	/* the group exists before either reads, so both start at the beginning */
	admin_cmd("XGROUP CREATE %s g 0 MKSTREAM", key);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&r[i].t, NULL, reader_main, &r[i]), 0);
	fill(key, n);
	for (int i = 0; i < 2; i++)
		pthread_join(r[i].t, NULL);
	for (int i = 0; i < 2; i++)
		assert_int_equal(r[i].rc, FO_OK);
	assert_int_equal(atomic_load(&total), n);
	for (uint64_t i = 0; i < n; i++)
		if (atomic_load(&seen[i]) != 1)
			fail_msg("item %llu seen %u times", (unsigned long long)i,
			         (unsigned)atomic_load(&seen[i]));
	free((void *)seen);
	admin_cmd("DEL %s", key);
}

/* ------------------------------------------------------------------------ */
/* Backpressure: a paused server bounds the stream (active), a tap never
 * blocks (passive). */

static void test_backpressure(void **state)
{
	(void)state;
	NEED_SERVER();
	char key[128];
	keyname(key, sizeof(key), "bp");
	fo_redis_opts o = quick_opts();
	o.batch = 64;
	fo_codec codec = fo_codec_pod(sizeof(uint64_t));
	const size_t capacity = 1000;
	fo_cursor *c, *tapc;
	fo_stream *s = seq_stream(&c, capacity);
	assert_int_equal(fo_stream_cursor(s, &tapc, FO_PASSIVE), FO_OK);
	char tapkey[160];
	snprintf(tapkey, sizeof(tapkey), "%s:tap", key);
	fo_redis_sink *sink, *tap;
	assert_int_equal(fo_redis_sink_start(&sink, c, url(), key, &codec, &o), FO_OK);
	assert_int_equal(fo_redis_sink_start(&tap, tapc, url(), tapkey, &codec, &o), FO_OK);

	admin_cmd("CLIENT PAUSE 1500 WRITE");
	uint64_t pushed = 0;
	int64_t t0 = ft_now_ns();
	while (ft_now_ns() - t0 < 1000 * 1000000ll) {
		uint64_t *x = seq_new(pushed);
		if (fo_stream_try_push(s, x) != FO_OK) {
			free(x);
			ft_sleep_ms(1);
			continue;
		}
		pushed++;
	}
	/* the sink holds at most one batch in hand; the stream at most its capacity */
	fo_stream_stats st = ft_stats(s);
	assert_true(pushed <= capacity + o.batch);
	assert_true(st.retained_items <= capacity + (size_t)o.batch);
	print_message("backpressure: %llu pushed while paused, %zu retained (capacity %zu)\n",
	              (unsigned long long)pushed, st.retained_items, capacity);
	/* after the pause everything goes through */
	for (uint64_t i = 0; i < 5000; i++) {
		uint64_t *x = seq_new(pushed++);
		assert_int_equal(fo_stream_push(s, x), FO_OK);
	}
	fo_stream_close(s);
	assert_int_equal(fo_redis_sink_stop(sink), FO_OK);
	assert_int_equal(admin_int("XLEN %s", key), (long long)pushed);
	/* the passive tap sent what it saw, skipped what it missed, never blocked */
	fo_redis_sink_stats ts;
	assert_int_equal(fo_redis_sink_get_stats(tap, &ts), FO_OK);
	assert_int_equal(fo_redis_sink_stop(tap), FO_OK);
	assert_true(admin_int("XLEN %s", tapkey) <= (long long)pushed);
	fo_stream_destroy(s);
	admin_cmd("DEL %s", key);
	admin_cmd("DEL %s", tapkey);
}

/* ------------------------------------------------------------------------ */
/* Readiness: fo_iter_fd / fo_iter_arm. */

static void test_fd_arm(void **state)
{
	(void)state;
	NEED_SERVER();
	char key[128];
	keyname(key, sizeof(key), "fd");
	fo_redis_opts o = quick_opts();
	o.create_group = 1;
	fo_codec codec = fo_codec_pod(sizeof(uint64_t));
	fo_iter *it;
	assert_int_equal(fo_redis_source(&it, url(), key, "g", "c", &codec, &o), FO_OK);
	int fd = fo_iter_fd(it);
	assert_true(fd >= 0);
	assert_int_equal(fo_iter_fd(it), fd);
	void *item;
	assert_int_equal(fo_iter_try_next(it, &item), FO_EMPTY);
	assert_int_equal(fo_iter_arm(it), 0);
	struct pollfd p = {.fd = fd, .events = POLLIN};
	assert_int_equal(poll(&p, 1, 100), 0); /* nothing yet */
	uint64_t v = 42;
	redisContext *ac = admin();
	redisReply *r = redisCommand(ac, "XADD %s * d %b", key, &v, sizeof(v));
	assert_non_null(r);
	freeReplyObject(r);
	redisFree(ac);
	assert_int_equal(poll(&p, 1, 5000), 1);
	assert_int_equal(fo_iter_try_next(it, &item), FO_OK);
	assert_int_equal(*(uint64_t *)item, 42);
	assert_int_equal(fo_iter_try_next(it, &item), FO_EMPTY);
	assert_int_equal(fo_iter_arm(it), 0);
	fo_iter_close(it);
	assert_int_equal(admin_int("XPENDING %s g", key), 0); /* released at close */
	admin_cmd("DEL %s", key);
}

/* ------------------------------------------------------------------------ */
/* Bad inputs and unreachable servers: exact codes, within the timeouts. */

/* Both entry points with @u: the same code, within @max_ms. */
static void expect_both(const char *u, const char *key, int code, const char *needle, int max_ms)
{
	fo_redis_opts o = quick_opts();
	o.connect_timeout_ms = 500;
	o.io_timeout_ms = 500;
	fo_codec codec = fo_codec_pod(sizeof(uint64_t));
	fo_stream *s;
	assert_int_equal(fo_stream_create(&s, NULL), FO_OK);
	fo_cursor *c;
	assert_int_equal(fo_stream_cursor(s, &c, FO_ACTIVE), FO_OK);
	fo_redis_sink *sink = NULL;
	int64_t t0 = ft_now_ns();
	int rc = fo_redis_sink_start(&sink, c, u, key, &codec, &o);
	int64_t ms = (ft_now_ns() - t0) / 1000000;
	if (rc != code || (needle && !strstr(fo_redis_errmsg(), needle)))
		fail_msg("sink %s: %s '%s', expected %s with '%s'", u, fo_status_name(rc),
		         fo_redis_errmsg(), fo_status_name(code), needle ? needle : "");
	if (ms > max_ms)
		fail_msg("sink %s: %lld ms (at most %d expected)", u, (long long)ms, max_ms);
	assert_true(*fo_redis_errmsg() != '\0');
	fo_cursor_close(c); /* the caller keeps the cursor on failure */
	fo_stream_destroy(s);

	fo_iter *it = NULL;
	t0 = ft_now_ns();
	rc = fo_redis_source(&it, u, key, "g", "c", &codec, &o);
	ms = (ft_now_ns() - t0) / 1000000;
	if (rc != code || (needle && !strstr(fo_redis_errmsg(), needle)))
		fail_msg("source %s: %s '%s', expected %s with '%s'", u, fo_status_name(rc),
		         fo_redis_errmsg(), fo_status_name(code), needle ? needle : "");
	if (ms > max_ms)
		fail_msg("source %s: %lld ms (at most %d expected)", u, (long long)ms, max_ms);
	assert_null(it);
}

static void test_bad_inputs(void **state)
{
	(void)state;
	NEED_SERVER();
	fo_codec codec = fo_codec_pod(sizeof(uint64_t));
	fo_codec nocodec = {0};
	fo_iter *it = NULL;
	fo_redis_sink *sink = NULL;
	fo_stream *s;
	fo_cursor *c;
	assert_int_equal(fo_stream_create(&s, NULL), FO_OK);
	assert_int_equal(fo_stream_cursor(s, &c, FO_ACTIVE), FO_OK);

	/* NULL and empty arguments, codecs without the needed half */
	assert_int_equal(fo_redis_sink_start(NULL, c, url(), "k", &codec, NULL), FO_EINVAL);
	assert_int_equal(fo_redis_sink_start(&sink, NULL, url(), "k", &codec, NULL), FO_EINVAL);
	assert_int_equal(fo_redis_sink_start(&sink, c, NULL, "k", &codec, NULL), FO_EINVAL);
	assert_int_equal(fo_redis_sink_start(&sink, c, url(), NULL, &codec, NULL), FO_EINVAL);
	assert_int_equal(fo_redis_sink_start(&sink, c, url(), "", &codec, NULL), FO_EINVAL);
	assert_int_equal(fo_redis_sink_start(&sink, c, url(), "k", NULL, NULL), FO_EINVAL);
	assert_int_equal(fo_redis_sink_start(&sink, c, url(), "k", &nocodec, NULL), FO_EINVAL);
	assert_int_equal(fo_redis_sink_stop(NULL), FO_EINVAL);
	assert_int_equal(fo_redis_sink_get_stats(NULL, NULL), FO_EINVAL);
	assert_int_equal(fo_redis_source(NULL, url(), "k", "g", "c", &codec, NULL), FO_EINVAL);
	assert_int_equal(fo_redis_source(&it, NULL, "k", "g", "c", &codec, NULL), FO_EINVAL);
	assert_int_equal(fo_redis_source(&it, url(), "", "g", "c", &codec, NULL), FO_EINVAL);
	assert_int_equal(fo_redis_source(&it, url(), "k", "", "c", &codec, NULL), FO_EINVAL);
	assert_int_equal(fo_redis_source(&it, url(), "k", "g", NULL, &codec, NULL), FO_EINVAL);
	assert_int_equal(fo_redis_source(&it, url(), "k", "g", "c", &nocodec, NULL), FO_EINVAL);
	fo_redis_opts bad;
	fo_redis_opts_init(&bad);
	bad.batch = 0;
	assert_int_equal(fo_redis_sink_start(&sink, c, url(), "k", &codec, &bad), FO_EINVAL);
	fo_redis_opts_init(NULL); /* no-op */
	fo_cursor_close(c);
	fo_stream_destroy(s);

	/* unparsable URLs */
	expect_both("http://127.0.0.1:6379", "k", FO_EINVAL, "URL", 100);
	expect_both("redis://127.0.0.1:99999", "k", FO_EINVAL, "port", 100);
	expect_both("redis://", "k", FO_EINVAL, "host", 100);
	expect_both("redis://user@127.0.0.1", "k", FO_EINVAL, "credentials", 100);

	/* refused, unresolvable, mute: FO_ESYS within the timeouts */
	char u[256];
	snprintf(u, sizeof(u), "redis://127.0.0.1:%d", refused_port());
	expect_both(u, "k", FO_ESYS, "refused", 5000);
	assert_int_equal(fo_redis_errno(), ECONNREFUSED);
	expect_both("redis://no-such-host.invalid:6379", "k", FO_ESYS, NULL, 15000);
	int port, mfd = mute_server(&port);
	snprintf(u, sizeof(u), "redis://127.0.0.1:%d", port);
	expect_both(u, "k", FO_ESYS, NULL, 6000); /* 500 + 500 ms of timeouts, slack for load */
	close(mfd);

	/* wrong password (an ACL user) and a missing stream: FO_FAILED with the
	 * server's message */
	admin_cmd("ACL SETUSER fo_test_user on >secret ~* &* +@all");
	snprintf(u, sizeof(u), "redis://fo_test_user:wrong@127.0.0.1:%s", getenv("FO_REDIS_PORT"));
	expect_both(u, "k", FO_FAILED, "WRONGPASS", 5000);
	snprintf(u, sizeof(u), "redis://fo_test_user:secret@127.0.0.1:%s", getenv("FO_REDIS_PORT"));
	fo_redis_opts o = quick_opts();
	o.create_group = 1;
	assert_int_equal(fo_redis_source(&it, u, "fo:test:acl", "g", "c", &codec, &o), FO_OK);
	fo_iter_close(it);
	admin_cmd("ACL DELUSER fo_test_user");
	admin_cmd("DEL fo:test:acl");
	/* without create_group a missing stream is NOGROUP */
	assert_int_equal(fo_redis_source(&it, url(), "fo:test:missing", "g", "c", &codec, NULL),
	                 FO_FAILED);
	assert_non_null(strstr(fo_redis_errmsg(), "NOGROUP"));
	/* a key of the wrong type */
	admin_cmd("SET fo:test:string x");
	assert_int_equal(fo_redis_source(&it, url(), "fo:test:string", "g", "c", &codec, &o),
	                 FO_FAILED);
	assert_non_null(strstr(fo_redis_errmsg(), "WRONGTYPE"));
	admin_cmd("DEL fo:test:string");
}

/* A source whose server goes away for good: FO_FAILED / FO_ESYS after
 * retry_timeout, never a hang; the same for a sink's stop. */
static void test_server_gone(void **state)
{
	(void)state;
	NEED_SERVER();
	/* a private server on its own port: started and killed by this test */
	char dir[] = "/tmp/fo-redis-gone.XXXXXX";
	assert_non_null(mkdtemp(dir));
	int port = refused_port();
	char cmd[512];
	snprintf(cmd, sizeof(cmd),
	         "redis-server --port %d --bind 127.0.0.1 --dir %s --save '' --daemonize yes "
	         "--pidfile %s/pid --logfile %s/log && for i in $(seq 100); do "
	         "redis-cli -p %d ping >/dev/null 2>&1 && exit 0; sleep 0.05; done; exit 1",
	         port, dir, dir, dir, port);
	assert_int_equal(system(cmd), 0);
	char u[128];
	snprintf(u, sizeof(u), "redis://127.0.0.1:%d", port);
	fo_redis_opts o = quick_opts();
	o.create_group = 1;
	o.retry_timeout_ms = 500;
	fo_codec codec = fo_codec_pod(sizeof(uint64_t));
	fo_iter *it;
	assert_int_equal(fo_redis_source(&it, u, "k", "g", "c", &codec, &o), FO_OK);
	fo_cursor *c;
	fo_stream *s = seq_stream(&c, 0);
	fo_redis_sink *sink;
	assert_int_equal(fo_redis_sink_start(&sink, c, u, "k2", &codec, &o), FO_OK);

	snprintf(cmd, sizeof(cmd), "kill -9 $(cat %s/pid); rm -rf %s", dir, dir);
	assert_int_equal(system(cmd), 0);

	void *item;
	int64_t t0 = ft_now_ns();
	int rc = fo_iter_timed_next(it, &item, 10 * 1000000000ll);
	assert_int_equal(rc, FO_FAILED);
	assert_int_equal(fo_iter_error(it)->code, FO_ESYS);
	assert_true(ft_now_ns() - t0 < 8 * 1000000000ll);
	fo_iter_close(it);

	assert_int_equal(fo_stream_push(s, seq_new(1)), FO_OK);
	fo_stream_close(s);
	t0 = ft_now_ns();
	assert_int_equal(fo_redis_sink_stop(sink), FO_ESYS);
	assert_true(ft_now_ns() - t0 < 8 * 1000000000ll);
	assert_true(*fo_redis_errmsg() != '\0');
	fo_stream_destroy(s);
}

/*
 * A write on a connection the server dropped: CLIENT KILL while the sink is
 * idle, then a pipeline far larger than the socket's send buffer.  The first
 * send() reaches the closed socket, whose RST arrives while hiredis is still
 * sending: the next send() fails with EPIPE, which raises SIGPIPE.  The sink
 * must reconnect and deliver everything, and the process must not die (it
 * did, under TSan's timing in test_client_kill, as a silent exit 141).
 */
static void test_write_after_kill(void **state)
{
	(void)state;
	NEED_SERVER();
	char key[128];
	keyname(key, sizeof(key), "epipe");
	fo_redis_opts o = quick_opts();
	o.batch = 16384;
	o.linger_us = 300000; /* one pipeline of the whole round */
	fo_codec codec = fo_codec_pod(sizeof(uint64_t));
	fo_cursor *c;
	fo_stream *s = seq_stream(&c, 0);
	fo_redis_sink *sink = NULL;
	assert_int_equal(fo_redis_sink_start(&sink, c, url(), key, &codec, &o), FO_OK);
	const uint64_t n = 3 * 16384;
	for (int round = 0; round < 3; round++) {
		admin_cmd("CLIENT KILL TYPE normal SKIPME yes");
		ft_sleep_ms(100); /* the FIN has arrived: the next pipeline meets a closed socket */
		for (uint64_t i = 0; i < n / 3; i++)
			assert_int_equal(fo_stream_push(s, seq_new(round * (n / 3) + i)), FO_OK);
		ft_sleep_ms(500);
	}
	fo_stream_close(s);
	assert_int_equal(fo_redis_sink_stop(sink), FO_OK);
	fo_stream_destroy(s);
	assert_int_equal(admin_int("XLEN %s", key), (long long)n);
	admin_cmd("DEL %s", key);
}

int main(int argc, char **argv)
{
	/* line by line even into ctest's pipe: a death leaves its last test visible */
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 6 && strcmp(argv[1], "--crash-consumer") == 0)
		crash_consumer(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]));
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bad_inputs),
	    cmocka_unit_test(test_fd_arm),
	    cmocka_unit_test(test_ordered_delivery),
	    cmocka_unit_test(test_two_consumers),
	    cmocka_unit_test(test_crash_same_name),
	    cmocka_unit_test(test_crash_claimed),
	    cmocka_unit_test(test_crash_claimed_while_running),
	    cmocka_unit_test(test_backpressure),
	    cmocka_unit_test(test_client_kill),
	    cmocka_unit_test(test_server_restart),
	    cmocka_unit_test(test_server_gone),
	    cmocka_unit_test(test_write_after_kill),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
