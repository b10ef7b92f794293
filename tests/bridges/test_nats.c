/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * test_nats.c - the NATS JetStream bridge against a real nats-server -js
 * (TESTING.md layer 9).  Run under tests/bridges/servers.sh run nats, which
 * exports FO_NATS_URL and FO_SERVERS_SH; skipped without them.
 *
 * Sequence-numbered items (fo_codec_pod(8)) through sink -> JetStream ->
 * durable pull source: order, no gap, no duplicate; a server crash and
 * restart in the middle; a consumer process killed with unacknowledged
 * messages (redelivered after AckWait); two readers of one durable (each
 * message once); readiness; bad inputs with their codes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <fanout/fanout.h>
#include <fanout/nats.h>

#include "bridge_test.h"

static const char *url(void)
{
	return getenv("FO_NATS_URL");
}

#define NEED_SERVER() NEED_ENV("FO_NATS_URL")

/* Per test: a stream name and its subject. */
struct names {
	char stream[64], subject[64];
};

static struct names names(const char *what)
{
	struct names n;
	snprintf(n.stream, sizeof(n.stream), "S_%s_%d", what, (int)getpid());
	snprintf(n.subject, sizeof(n.subject), "fo.%s.%d", what, (int)getpid());
	return n;
}

static fo_nats_opts quick_opts(const struct names *n)
{
	fo_nats_opts o;
	fo_nats_opts_init(&o);
	o.connect_timeout_ms = 1000;
	o.io_timeout_ms = 2000;
	o.retry_timeout_ms = 60000;
	o.block_ms = 200;
	o.stream = n->stream;
	o.create_stream = 1;
	return o;
}

/* A sink on a fresh stream (created) for @c. */
static fo_nats_sink *start_sink(const struct names *n, fo_cursor *c, size_t batch)
{
	fo_nats_opts o = quick_opts(n);
	o.batch = batch;
	fo_codec codec = fo_codec_pod(sizeof(uint64_t));
	fo_nats_sink *sink = NULL;
	int rc = fo_nats_sink_start(&sink, c, url(), n->subject, &codec, &o);
	if (rc != FO_OK)
		fail_msg("sink: %s: %s", fo_status_name(rc), fo_nats_errmsg());
	return sink;
}

static fo_iter *start_source(const struct names *n, const char *durable, int64_t ack_wait_ms)
{
	fo_nats_opts o = quick_opts(n);
	o.ack_wait_ms = ack_wait_ms;
	o.prefetch = 256;
	o.batch = 64;
	fo_codec codec = fo_codec_pod(sizeof(uint64_t));
	fo_iter *it = NULL;
	int rc = fo_nats_source(&it, url(), n->subject, durable, &codec, &o);
	if (rc != FO_OK)
		fail_msg("source: %s: %s", fo_status_name(rc), fo_nats_errmsg());
	return it;
}

/* Store 0..n-1 (the sink is stopped: everything acknowledged). */
static void fill(const struct names *n, uint64_t count)
{
	fo_cursor *c;
	fo_stream *s = seq_stream(&c, 0);
	fo_nats_sink *sink = start_sink(n, c, 256);
	for (uint64_t i = 0; i < count; i++)
		assert_int_equal(fo_stream_push(s, seq_new(i)), FO_OK);
	fo_stream_close(s);
	int rc = fo_nats_sink_stop(sink);
	if (rc != FO_OK)
		fail_msg("sink stop: %s: %s", fo_status_name(rc), fo_nats_errmsg());
	fo_stream_destroy(s);
}

static void restart_nats(void)
{
	server_restart("nats");
}

/* Read @count sequence numbers: each exactly once, in any order (a restart
 * can lose a fetch reply on the wire: those come again after AckWait). */
static void read_each_once(fo_iter *it, uint64_t count)
{
	unsigned char *seen = calloc(count, 1);
	for (uint64_t i = 0; i < count; i++) {
		void *item = NULL;
		int rc = fo_iter_timed_next(it, &item, 60 * 1000000000ll);
		if (rc != FO_OK)
			fail_msg("read %llu: %s", (unsigned long long)i, fo_status_name(rc));
		uint64_t v = *(uint64_t *)item;
		if (v >= count || seen[v])
			fail_msg("%llu: unexpected or duplicate", (unsigned long long)v);
		seen[v] = 1;
	}
	free(seen);
}

/* sink -> JetStream -> source: in order; with a server restart, each once. */
static void flow(const char *what, uint64_t count, bool restart)
{
	struct names n = names(what);
	fo_cursor *c;
	fo_stream *s = seq_stream(&c, 4096);
	fo_nats_sink *sink = start_sink(&n, c, 128); /* creates the stream */
	fo_iter *it = start_source(&n, "d1", restart ? 2000 : 30000);
	struct producer p = {.s = s, .n = count, .pause_every = restart ? 64 : 0};
	assert_int_equal(pthread_create(&p.t, NULL, producer_main, &p), 0);
	struct fault f = {.fn = restart_nats, .times = 1, .every_ms = 300};
	fault_start(restart ? &f : NULL);
	if (restart)
		read_each_once(it, count);
	else
		read_in_order(it, count);
	pthread_join(p.t, NULL);
	fault_join(restart ? &f : NULL);
	fo_nats_sink_stats st;
	assert_int_equal(fo_nats_sink_get_stats(sink, &st), FO_OK);
	int rc = fo_nats_sink_stop(sink);
	if (rc != FO_OK)
		fail_msg("sink stop: %s: %s", fo_status_name(rc), fo_nats_errmsg());
	print_message("%s: %llu items, sink: %llu acknowledged, %llu published again\n", what,
	              (unsigned long long)count, (unsigned long long)st.sent,
	              (unsigned long long)st.retries);
	void *item;
	/* nothing more, not even after AckWait */
	assert_int_equal(
	    fo_iter_timed_next(it, &item, restart ? 3000 * 1000000ll : 500 * 1000000ll),
	    FO_TIMEDOUT);
	fo_iter_close(it);
	fo_stream_destroy(s);
}

static void test_ordered(void **state)
{
	(void)state;
	NEED_SERVER();
	flow("ordered", ft_scale(50000), false);
}

static void test_restart(void **state)
{
	(void)state;
	NEED_SERVER();
	flow("restart", ft_scale(20000), true);
}

/* A child reads @k messages and dies without closing. */
static void crash_consumer(const char *stream, const char *subject, int k, int wfd)
{
	struct names n;
	snprintf(n.stream, sizeof(n.stream), "%s", stream);
	snprintf(n.subject, sizeof(n.subject), "%s", subject);
	fo_iter *it = start_source(&n, "d1", 1000);
	for (int i = 0; i < k; i++) {
		void *item;
		if (fo_iter_next(it, &item) != FO_OK)
			_exit(3);
		uint64_t v = *(uint64_t *)item;
		if (write(wfd, &v, sizeof(v)) != sizeof(v))
			_exit(4);
	}
	_exit(0);
}

static void test_crash_redelivery(void **state)
{
	(void)state;
	NEED_SERVER();
	struct names n = names("crash");
	const uint64_t count = 2000;
	const int k = 300;
	fill(&n, count);
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		char fdbuf[16], kbuf[16];
		snprintf(fdbuf, sizeof(fdbuf), "%d", pfd[1]);
		snprintf(kbuf, sizeof(kbuf), "%d", k);
		execl("/proc/self/exe", "test_nats", "--crash-consumer", n.stream, n.subject, kbuf,
		      fdbuf, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	unsigned char *seen_a = calloc(count, 1), *seen_b = calloc(count, 1);
	uint64_t v;
	int got = 0;
	while (read(pfd[0], &v, sizeof(v)) == sizeof(v)) {
		assert_true(v < count);
		seen_a[v] = 1;
		got++;
	}
	close(pfd[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(got, k);

	fo_iter *it = start_source(&n, "d1", 1000); /* the same durable: AckWait 1 s */
	uint64_t redelivered = 0, total = 0;
	for (;;) {
		void *item;
		int rc = fo_iter_timed_next(it, &item, 3000 * 1000000ll);
		if (rc == FO_TIMEDOUT)
			break;
		assert_int_equal(rc, FO_OK);
		v = *(uint64_t *)item;
		assert_true(v < count);
		assert_int_equal(seen_b[v], 0);
		seen_b[v] = 1;
		total++;
		redelivered += seen_a[v];
	}
	fo_iter_close(it);
	for (uint64_t i = 0; i < count; i++)
		if (!seen_a[i] && !seen_b[i])
			fail_msg("message %llu lost", (unsigned long long)i);
	assert_true(redelivered >= 1); /* at least the one held at the crash */
	print_message("crash: crashed consumer read %d, redelivered %llu, next read %llu\n", k,
	              (unsigned long long)redelivered, (unsigned long long)total);
	free(seen_a);
	free(seen_b);
}

struct reader {
	const struct names *n;
	uint64_t count;
	_Atomic uint64_t *total;
	_Atomic unsigned char *seen;
	int rc;
	pthread_t t;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	fo_nats_opts o = quick_opts(r->n);
	o.prefetch = 64;
	o.batch = 16;
	fo_codec codec = fo_codec_pod(sizeof(uint64_t));
	fo_iter *it;
	r->rc = fo_nats_source(&it, url(), r->n->subject, "shared", &codec, &o);
	if (r->rc != FO_OK)
		return NULL;
	while (atomic_load(r->total) < r->count) {
		void *item;
		int rc = fo_iter_timed_next(it, &item, 100 * 1000000ll);
		if (rc == FO_TIMEDOUT)
			continue;
		if (rc != FO_OK) {
			r->rc = rc;
			break;
		}
		uint64_t v = *(uint64_t *)item;
		if (v < r->count)
			atomic_fetch_add(&r->seen[v], 1);
		atomic_fetch_add(r->total, 1);
	}
	fo_iter_close(it);
	return NULL;
}

static void test_two_readers(void **state)
{
	(void)state;
	NEED_SERVER();
	struct names n = names("two");
	const uint64_t count = ft_scale(10000);
	fill(&n, count);
	_Atomic uint64_t total = 0;
	_Atomic unsigned char *seen = calloc(count, 1);
	struct reader r[2] = {{.n = &n, .count = count, .total = &total, .seen = seen},
	                      {.n = &n, .count = count, .total = &total, .seen = seen}};
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&r[i].t, NULL, reader_main, &r[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(r[i].t, NULL);
	for (int i = 0; i < 2; i++)
		assert_int_equal(r[i].rc, FO_OK);
	assert_int_equal(atomic_load(&total), count);
	for (uint64_t i = 0; i < count; i++)
		if (atomic_load(&seen[i]) != 1)
			fail_msg("message %llu seen %u times", (unsigned long long)i,
			         (unsigned)atomic_load(&seen[i]));
	free((void *)seen);
}

static void test_fd_arm(void **state)
{
	(void)state;
	NEED_SERVER();
	struct names n = names("fd");
	fill(&n, 0 + 1); /* creates the stream with message 0 */
	fo_iter *it = start_source(&n, "d1", 30000);
	int fd = fo_iter_fd(it);
	assert_true(fd >= 0);
	void *item;
	assert_int_equal(fo_iter_timed_next(it, &item, 5000 * 1000000ll), FO_OK);
	assert_int_equal(fo_iter_try_next(it, &item), FO_EMPTY);
	assert_int_equal(fo_iter_arm(it), 0);
	struct pollfd p = {.fd = fd, .events = POLLIN};
	assert_int_equal(poll(&p, 1, 100), 0);
	fill(&n, 2); /* messages 0 and 1 again, with a new sink's ids */
	assert_int_equal(poll(&p, 1, 5000), 1);
	assert_int_equal(fo_iter_try_next(it, &item), FO_OK);
	assert_int_equal(*(uint64_t *)item, 0);
	fo_iter_close(it);
}

/* Both entry points with @u: the same code, within @max_ms, the message
 * containing @needle (NULL: any). */
static void expect_both(const char *u, const struct names *n, int code, const char *needle,
                        int max_ms)
{
	fo_nats_opts o = quick_opts(n);
	o.connect_timeout_ms = 500;
	o.io_timeout_ms = 500;
	fo_codec codec = fo_codec_pod(sizeof(uint64_t));
	fo_cursor *c;
	fo_stream *s = seq_stream(&c, 0);
	fo_nats_sink *sink = NULL;
	int64_t t0 = ft_now_ns();
	int rc = fo_nats_sink_start(&sink, c, u, n->subject, &codec, &o);
	int64_t ms = (ft_now_ns() - t0) / 1000000;
	if (rc != code || (needle && !strstr(fo_nats_errmsg(), needle)))
		fail_msg("sink %s: %s '%s', expected %s with '%s'", u, fo_status_name(rc),
		         fo_nats_errmsg(), fo_status_name(code), needle ? needle : "");
	if (ms > max_ms)
		fail_msg("sink %s: %lld ms (at most %d expected)", u, (long long)ms, max_ms);
	assert_true(*fo_nats_errmsg() != '\0');
	fo_cursor_close(c); /* the caller keeps the cursor on failure */
	fo_stream_destroy(s);

	fo_iter *it = NULL;
	t0 = ft_now_ns();
	rc = fo_nats_source(&it, u, n->subject, "d", &codec, &o);
	ms = (ft_now_ns() - t0) / 1000000;
	if (rc != code || (needle && !strstr(fo_nats_errmsg(), needle)))
		fail_msg("source %s: %s '%s', expected %s with '%s'", u, fo_status_name(rc),
		         fo_nats_errmsg(), fo_status_name(code), needle ? needle : "");
	if (ms > max_ms)
		fail_msg("source %s: %lld ms (at most %d expected)", u, (long long)ms, max_ms);
	assert_null(it);
	print_message("%s: %s (%lld ms)\n", u, fo_nats_errmsg(), (long long)ms);
}

/* A private nats-server on a free port, started with @args: its pid (the
 * caller kills it with stop_private()). */
static pid_t start_private(int *port, const char *args)
{
	*port = refused_port();
	char cmd[512];
	snprintf(cmd, sizeof(cmd),
	         "exec nats-server -a 127.0.0.1 -p %d %s >/dev/null 2>&1 </dev/null", *port, args);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	/* ready when it accepts a connection (10 s) */
	for (int i = 0; i < 200; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = {.sin_family = AF_INET,
		                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
		                        .sin_port = htons((uint16_t)*port)};
		int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
		close(fd);
		if (ok)
			return pid;
		ft_sleep_ms(50);
	}
	fail_msg("private nats-server did not start");
	return -1;
}

static void stop_private(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static void test_bad_inputs(void **state)
{
	(void)state;
	NEED_SERVER();
	struct names n = names("bad");
	fo_nats_opts o = quick_opts(&n);
	fo_codec codec = fo_codec_pod(sizeof(uint64_t)), nocodec = {0};
	fo_cursor *c;
	fo_stream *s = seq_stream(&c, 0);
	fo_nats_sink *sink;
	fo_iter *it = NULL;
	assert_int_equal(fo_nats_sink_start(NULL, c, url(), "x", &codec, &o), FO_EINVAL);
	assert_int_equal(fo_nats_sink_start(&sink, NULL, url(), "x", &codec, &o), FO_EINVAL);
	assert_int_equal(fo_nats_sink_start(&sink, c, NULL, "x", &codec, &o), FO_EINVAL);
	assert_int_equal(fo_nats_sink_start(&sink, c, url(), "", &codec, &o), FO_EINVAL);
	assert_int_equal(fo_nats_sink_start(&sink, c, url(), "x", &nocodec, &o), FO_EINVAL);
	assert_int_equal(fo_nats_sink_stop(NULL), FO_EINVAL);
	assert_int_equal(fo_nats_sink_get_stats(NULL, NULL), FO_EINVAL);
	assert_int_equal(fo_nats_source(&it, url(), "x", "d", &codec, NULL), FO_EINVAL);
	assert_int_equal(fo_nats_source(&it, url(), "x", "", &codec, &o), FO_EINVAL);
	assert_int_equal(fo_nats_source(&it, url(), "x", "a.b", &codec, &o), FO_EINVAL);
	assert_int_equal(fo_nats_source(&it, url(), "", "d", &codec, &o), FO_EINVAL);
	assert_int_equal(fo_nats_source(&it, url(), "x", "d", &nocodec, &o), FO_EINVAL);
	fo_nats_opts bad = o;
	bad.batch = 0;
	assert_int_equal(fo_nats_sink_start(&sink, c, url(), "x", &codec, &bad), FO_EINVAL);
	bad = o;
	bad.create_stream = 1;
	bad.stream = NULL;
	assert_int_equal(fo_nats_sink_start(&sink, c, url(), "x", &codec, &bad), FO_EINVAL);
	fo_nats_opts_init(NULL); /* no-op */
	fo_cursor_close(c);
	fo_stream_destroy(s);

	/* a URL that is not nats:// */
	expect_both("redis://127.0.0.1:4222", &n, FO_EINVAL, "URL", 100);
	/* refused, unresolvable, mute: FO_ESYS within the timeouts */
	char u[128];
	snprintf(u, sizeof(u), "nats://127.0.0.1:%d", refused_port());
	expect_both(u, &n, FO_ESYS, NULL, 5000);
	assert_int_equal(fo_nats_errno(), ECONNREFUSED);
	expect_both("nats://no-such-host.invalid:4222", &n, FO_ESYS, NULL, 15000);
	int port, mfd = mute_server(&port);
	snprintf(u, sizeof(u), "nats://127.0.0.1:%d", port);
	expect_both(u, &n, FO_ESYS, NULL, 6000); /* 500 ms of timeout, slack for load */
	close(mfd);

	/* wrong password: FO_FAILED with the server's message */
	pid_t pid = start_private(&port, "--user fo --pass secret");
	snprintf(u, sizeof(u), "nats://fo:wrong@127.0.0.1:%d", port);
	expect_both(u, &n, FO_FAILED, "uthoriz", 5000);
	stop_private(pid);

	/* a stream that does not exist: FO_FAILED with the server's message */
	struct names m = names("missing");
	snprintf(m.stream, sizeof(m.stream), "NO_SUCH_STREAM");
	fo_nats_opts mo = quick_opts(&m);
	mo.create_stream = 0;
	fo_cursor *mc;
	fo_stream *ms = seq_stream(&mc, 0);
	assert_int_equal(fo_nats_sink_start(&sink, mc, url(), m.subject, &codec, &mo), FO_FAILED);
	print_message("missing stream (sink): %s\n", fo_nats_errmsg());
	assert_non_null(strstr(fo_nats_errmsg(), "stream not found"));
	fo_cursor_close(mc);
	fo_stream_destroy(ms);
	assert_int_equal(fo_nats_source(&it, url(), m.subject, "d", &codec, &mo), FO_FAILED);
	assert_non_null(strstr(fo_nats_errmsg(), "stream not found"));
	print_message("missing stream: %s\n", fo_nats_errmsg());
	assert_null(it);
}

/* A server that goes away for good: the source fails (FO_ESYS) and the sink's
 * stop reports FO_ESYS after retry_timeout, never a hang. */
static void test_server_gone(void **state)
{
	(void)state;
	NEED_SERVER();
	char dir[] = "/tmp/fo-nats-gone.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char args[128];
	snprintf(args, sizeof(args), "-js -sd %s", dir);
	int port;
	pid_t pid = start_private(&port, args);
	char u[128];
	snprintf(u, sizeof(u), "nats://127.0.0.1:%d", port);
	struct names n = names("gone");
	fo_nats_opts o = quick_opts(&n);
	o.retry_timeout_ms = 500;
	fo_codec codec = fo_codec_pod(sizeof(uint64_t));
	fo_cursor *c;
	fo_stream *s = seq_stream(&c, 0);
	fo_nats_sink *sink;
	int rc = fo_nats_sink_start(&sink, c, u, n.subject, &codec, &o);
	if (rc != FO_OK)
		fail_msg("sink: %s: %s", fo_status_name(rc), fo_nats_errmsg());
	fo_iter *it;
	rc = fo_nats_source(&it, u, n.subject, "d", &codec, &o);
	if (rc != FO_OK)
		fail_msg("source: %s: %s", fo_status_name(rc), fo_nats_errmsg());
	stop_private(pid);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);

	void *item;
	int64_t t0 = ft_now_ns();
	assert_int_equal(fo_iter_timed_next(it, &item, 10 * 1000000000ll), FO_FAILED);
	assert_int_equal(fo_iter_error(it)->code, FO_ESYS);
	print_message("gone: source: %s\n", fo_iter_error(it)->message);
	assert_true(ft_now_ns() - t0 < 8 * 1000000000ll);
	fo_iter_close(it);

	assert_int_equal(fo_stream_push(s, seq_new(1)), FO_OK);
	fo_stream_close(s);
	t0 = ft_now_ns();
	assert_int_equal(fo_nats_sink_stop(sink), FO_ESYS);
	print_message("gone: sink stop: %s\n", fo_nats_errmsg());
	assert_true(ft_now_ns() - t0 < 8 * 1000000000ll);
	fo_stream_destroy(s);
}

/* Backpressure: a stopped server (SIGSTOP) bounds the stream through an
 * active cursor; a passive tap never blocks. */
static void test_backpressure(void **state)
{
	(void)state;
	NEED_SERVER();
	struct names n = names("bp"), tn = names("bptap");
	fo_cursor *c, *tapc;
	const size_t capacity = 1000, batch = 64;
	fo_stream *s = seq_stream(&c, capacity);
	assert_int_equal(fo_stream_cursor(s, &tapc, FO_PASSIVE), FO_OK);
	fo_nats_sink *sink = start_sink(&n, c, batch);
	fo_nats_sink *tap = start_sink(&tn, tapc, batch);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "kill -STOP $(cat '%s/nats.pid')", getenv("FO_NATS_DIR"));
	assert_int_equal(system(cmd), 0);
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
	fo_stream_stats st = ft_stats(s);
	snprintf(cmd, sizeof(cmd), "kill -CONT $(cat '%s/nats.pid')", getenv("FO_NATS_DIR"));
	assert_int_equal(system(cmd), 0);
	print_message("backpressure: %llu pushed while stopped, %zu retained (capacity %zu)\n",
	              (unsigned long long)pushed, st.retained_items, capacity);
	/* the sink holds at most one batch in hand; the stream at most its capacity */
	assert_true(pushed <= capacity + batch);
	assert_true(st.retained_items <= capacity + batch);
	for (uint64_t i = 0; i < 5000; i++)
		assert_int_equal(fo_stream_push(s, seq_new(pushed++)), FO_OK);
	fo_stream_close(s);
	assert_int_equal(fo_nats_sink_stop(sink), FO_OK);
	fo_nats_sink_stats ts;
	assert_int_equal(fo_nats_sink_get_stats(tap, &ts), FO_OK);
	assert_int_equal(fo_nats_sink_stop(tap), FO_OK);
	/* everything stored once: read it back */
	fo_iter *it = start_source(&n, "d1", 30000);
	read_in_order(it, pushed);
	void *item;
	assert_int_equal(fo_iter_timed_next(it, &item, 300 * 1000000ll), FO_TIMEDOUT);
	fo_iter_close(it);
	fo_stream_destroy(s);
}

int main(int argc, char **argv)
{
	/* line by line even into ctest's pipe: a death leaves its last test visible */
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 6 && strcmp(argv[1], "--crash-consumer") == 0)
		crash_consumer(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]));
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bad_inputs),       cmocka_unit_test(test_fd_arm),
	    cmocka_unit_test(test_ordered),          cmocka_unit_test(test_two_readers),
	    cmocka_unit_test(test_crash_redelivery), cmocka_unit_test(test_backpressure),
	    cmocka_unit_test(test_restart),          cmocka_unit_test(test_server_gone),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
