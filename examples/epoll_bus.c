/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * epoll_bus.c - a line-based chat bus: one TCP server thread, one epoll set, one fanout
 * stream.
 *
 * The server listens on 127.0.0.1 only.  Every line a connected client sends is pushed into
 * one stream.  Every client has its own cursor whose descriptor (fo_cursor_fd) sits in the
 * epoll set beside the sockets, so each client receives every line of every OTHER client,
 * in stream order (a client's own lines are not echoed back to it).  Each client gets a
 * greeting line "*** fanout: welcome, client N" once its cursor exists: lines pushed after
 * the greeting reach it.  A passive tap prints counts once a second.
 *
 * Slow clients (the policy).  A slow client never slows the bus or the other clients:
 *   - every client's cursor is PASSIVE, so pushes never wait for it (a stream with only
 *     passive cursors never fills);
 *   - sockets are non-blocking; the server copies lines into a 16 KiB buffer per client and
 *     writes what the kernel takes.  When a client's socket is full, the server stops
 *     reading that client's cursor (its descriptor leaves the epoll interest set) and waits
 *     for EPOLLOUT; meanwhile the stream keeps the newest --window lines for it;
 *   - a client that falls further behind than that is lapped: it skips to the oldest line
 *     still kept and receives the notice line "*** fanout: skipped N lines (too slow)"
 *     (N counts stream positions, its own lines included), then the lines that follow.
 * So memory per slow client is bounded (the window is shared by all clients, plus one
 * segment and one buffer each), and nobody is disconnected for being slow.
 *
 * Fairness: a client's cursor is read at most 64 buffers per loop iteration, then the
 * client waits in a run queue while epoll_wait() polls the others.
 *
 *   usage: epoll_bus [--port N] [--max-seconds N] [--window N] [--sndbuf BYTES] [--quiet]
 *     --port N         0 (default): pick a free port; the chosen one is printed as
 *                      "epoll_bus: listening on 127.0.0.1:PORT"
 *     --max-seconds N  stop after N seconds (0, the default: run until SIGTERM/SIGINT)
 *     --window N       lines kept for slow clients (the stream's passive window; 4096)
 *     --sndbuf BYTES   SO_SNDBUF of client sockets (0: the kernel's default)
 *     --quiet          no tap line every second
 * SIGTERM and SIGINT stop it cleanly (exit status 0).  Try it with `nc 127.0.0.1 PORT` in
 * two terminals.
 *
 * Built with -DEPOLL_BUS_NO_MAIN this file is a small library (bus_open, bus_run, bus_stop,
 * bus_close) that tests/stress/stress_epoll_bus.c runs in-process.
 */
#include <fanout/fanout.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define BUS_MAX_LINE 1024  /* longer lines are cut into pieces of this size */
#define BUS_OUTBUF   16384 /* per-client output buffer */
#define BUS_BUDGET   64    /* output buffers per client per loop iteration */
#define BUS_EVENTS   64

/* An item of the stream: one line, newline included. */
struct bus_line {
	uint32_t from; /* client id */
	uint32_t len;
	char text[];
};

enum bus_tag { BUS_LISTEN, BUS_STOP, BUS_TICK, BUS_SOCK, BUS_CURSOR };

struct bus_client;

/* What an epoll event points at. */
struct bus_ref {
	enum bus_tag tag;
	struct bus_client *cl;
};

struct bus_client {
	struct bus_ref sock_ref, cur_ref;
	int fd;
	uint32_t id;
	fo_cursor *cur;
	int cfd;          /* the cursor's descriptor (owned by the cursor) */
	bool cur_watched; /* cfd has EPOLLIN interest */
	bool out_watched; /* the socket has EPOLLOUT interest */
	bool dead;        /* dropped; freed at the end of the loop iteration */
	bool queued;      /* on the run queue */
	bool ended;       /* the cursor returned FO_END */
	/* input: a partial line */
	size_t inlen;
	char in[BUS_MAX_LINE];
	/* output: bytes [outoff, outlen) still to send; held = a line taken from the cursor
	 * that did not fit (valid until the cursor's next read) */
	size_t outoff, outlen;
	struct bus_line *held;
	uint64_t lines_out, skipped;    /* skipped: lapped positions already reported */
	struct bus_client *next, *prev; /* all clients */
	struct bus_client *run_next;    /* run queue */
	struct bus_client *grave_next;  /* graveyard */
	char out[BUS_OUTBUF];
};

struct bus_opts {
	uint16_t port;
	unsigned max_seconds;
	size_t window;
	int sndbuf;
	bool quiet;
};

struct bus {
	struct bus_opts o;
	int ep, lfd, stopfd, tickfd;
	uint16_t port;
	fo_stream *s;
	fo_cursor *tap;
	struct bus_ref listen_ref, stop_ref, tick_ref;
	struct bus_client clients; /* list head */
	struct bus_client *runq, *grave;
	uint32_t next_id;
	size_t nclients;
	uint64_t lines_in, tap_seen, tap_skipped, last_tap_in;
};

static void bus_opts_init(struct bus_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->window = 4096;
}

static void line_free(void *item, void *ctx)
{
	(void)ctx;
	free(item);
}

/* ---- epoll interest ------------------------------------------------------------------------ */

static void watch_cursor(struct bus *b, struct bus_client *cl, bool on)
{
	if (cl->cur_watched == on)
		return;
	struct epoll_event ev = {.events = on ? EPOLLIN : 0, .data.ptr = &cl->cur_ref};
	epoll_ctl(b->ep, EPOLL_CTL_MOD, cl->cfd, &ev);
	cl->cur_watched = on;
}

static void watch_output(struct bus *b, struct bus_client *cl, bool on)
{
	if (cl->out_watched == on)
		return;
	struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0),
	                         .data.ptr = &cl->sock_ref};
	epoll_ctl(b->ep, EPOLL_CTL_MOD, cl->fd, &ev);
	cl->out_watched = on;
}

/* ---- clients ----------------------------------------------------------------------------------
 */

static void client_drop(struct bus *b, struct bus_client *cl)
{
	if (cl->dead)
		return;
	cl->dead = true;
	epoll_ctl(b->ep, EPOLL_CTL_DEL, cl->fd, NULL);
	epoll_ctl(b->ep, EPOLL_CTL_DEL, cl->cfd, NULL);
	close(cl->fd);
	fo_cursor_close(cl->cur); /* closes cfd; lines only it still needed are freed */
	cl->prev->next = cl->next;
	cl->next->prev = cl->prev;
	b->nclients--;
	/* Events of this iteration may still point at it: free it afterwards. */
	cl->grave_next = b->grave;
	b->grave = cl;
}

static void bury(struct bus *b)
{
	while (b->grave) {
		struct bus_client *cl = b->grave;
		b->grave = cl->grave_next;
		free(cl);
	}
}

/* Append to the output buffer; false if it does not fit. */
static bool out_put(struct bus_client *cl, const char *p, size_t n)
{
	if (cl->outoff && cl->outoff == cl->outlen)
		cl->outoff = cl->outlen = 0;
	if (BUS_OUTBUF - cl->outlen < n && cl->outoff) { /* compact */
		memmove(cl->out, cl->out + cl->outoff, cl->outlen - cl->outoff);
		cl->outlen -= cl->outoff;
		cl->outoff = 0;
	}
	if (BUS_OUTBUF - cl->outlen < n)
		return false;
	memcpy(cl->out + cl->outlen, p, n);
	cl->outlen += n;
	return true;
}

/* Move lines from the cursor into the output buffer.  Returns FO_OK (buffer full),
 * FO_EMPTY (cursor empty) or FO_END. */
static int fill(struct bus_client *cl)
{
	for (;;) {
		uint64_t lag = fo_cursor_lagged(cl->cur);
		if (lag > cl->skipped) { /* lapped: the notice goes before the lines after it */
			char note[96];
			int k = snprintf(note, sizeof(note),
			                 "*** fanout: skipped %" PRIu64 " lines (too slow)\n",
			                 lag - cl->skipped);
			if (!out_put(cl, note, (size_t)k))
				return FO_OK;
			cl->skipped = lag;
		}
		if (cl->held) {
			if (!out_put(cl, cl->held->text, cl->held->len))
				return FO_OK;
			cl->held = NULL;
			cl->lines_out++;
		}
		void *it;
		int rc = fo_cursor_try_next(cl->cur, &it);
		if (rc == FO_OK) {
			struct bus_line *ln = it;
			if (ln->from != cl->id) /* no echo of a client's own lines */
				cl->held = ln;
		} else if (rc == FO_LAGGED) {
			continue; /* the notice, at the top of the loop */
		} else {
			if (rc == FO_END)
				cl->ended = true;
			return rc == FO_END ? FO_END : FO_EMPTY;
		}
	}
}

/* Send what we can; read the cursor; arm it when everything is out.  Returns false if the
 * client still has work (budget spent). */
static bool pump(struct bus *b, struct bus_client *cl)
{
	for (int budget = 0; budget < BUS_BUDGET; budget++) {
		int st = cl->ended ? FO_END : fill(cl);
		while (cl->outoff < cl->outlen) {
			ssize_t k = send(cl->fd, cl->out + cl->outoff, cl->outlen - cl->outoff,
			                 MSG_NOSIGNAL | MSG_DONTWAIT);
			if (k > 0) {
				cl->outoff += (size_t)k;
			} else if (k < 0 && errno == EINTR) {
				continue;
			} else if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				/* The socket is full: stop reading the cursor (it is passive: the
				 * bus goes on without us) until the socket drains. */
				watch_cursor(b, cl, false);
				watch_output(b, cl, true);
				return true;
			} else {
				client_drop(b, cl);
				return true;
			}
		}
		cl->outoff = cl->outlen = 0;
		watch_output(b, cl, false);
		if (st == FO_END)
			return true;
		if (st == FO_EMPTY && !cl->held) {
			/* Read to empty, everything sent: arm (1 = more arrived meanwhile). */
			if (fo_cursor_arm(cl->cur) == 1)
				continue;
			watch_cursor(b, cl, true);
			return true;
		}
	}
	return false;
}

static void run_later(struct bus *b, struct bus_client *cl)
{
	if (cl->queued)
		return;
	cl->queued = true;
	cl->run_next = b->runq;
	b->runq = cl;
}

static void client_pump(struct bus *b, struct bus_client *cl)
{
	if (!cl->dead && !pump(b, cl) && !cl->dead)
		run_later(b, cl);
}

/* Push one line (newline included) from @cl. */
static void push_line(struct bus *b, struct bus_client *cl, const char *p, size_t n)
{
	struct bus_line *ln = malloc(sizeof(*ln) + n);
	if (!ln)
		return; /* out of memory: the line is lost, the bus goes on */
	ln->from = cl->id;
	ln->len = (uint32_t)n;
	memcpy(ln->text, p, n);
	if (fo_stream_push(b->s, ln) != FO_OK) /* FO_ECLOSED while stopping */
		free(ln);
	else
		b->lines_in++;
}

static void client_read(struct bus *b, struct bus_client *cl)
{
	char buf[8192];
	for (int rounds = 0; rounds < 8; rounds++) {
		ssize_t k = recv(cl->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (k == 0 ||
		    (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
			client_drop(b, cl); /* EOF or reset */
			return;
		}
		if (k < 0)
			return;
		for (ssize_t i = 0; i < k; i++) {
			cl->in[cl->inlen++] = buf[i];
			if (buf[i] == '\n' || cl->inlen == BUS_MAX_LINE - 1) {
				if (buf[i] != '\n')
					cl->in[cl->inlen++] = '\n';
				push_line(b, cl, cl->in, cl->inlen);
				cl->inlen = 0;
			}
		}
	}
}

static void client_accept(struct bus *b)
{
	for (;;) {
		int fd = accept4(b->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return; /* EAGAIN, or a transient error (EMFILE...): try on the next event
			         */
		struct bus_client *cl = calloc(1, sizeof(*cl));
		fo_cursor *cur = NULL;
		int cfd = -1;
		if (!cl || fo_stream_cursor(b->s, &cur, FO_PASSIVE) != FO_OK ||
		    (cfd = fo_cursor_fd(cur)) < 0) {
			fo_cursor_close(cur);
			free(cl);
			close(fd);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (b->o.sndbuf > 0)
			setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &b->o.sndbuf, sizeof(b->o.sndbuf));
		cl->fd = fd;
		cl->cfd = cfd;
		cl->cur = cur;
		cl->id = b->next_id++;
		cl->sock_ref = (struct bus_ref){BUS_SOCK, cl};
		cl->cur_ref = (struct bus_ref){BUS_CURSOR, cl};
		struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = &cl->sock_ref};
		struct epoll_event cev = {.events = 0, .data.ptr = &cl->cur_ref};
		if (epoll_ctl(b->ep, EPOLL_CTL_ADD, fd, &ev) != 0 ||
		    epoll_ctl(b->ep, EPOLL_CTL_ADD, cfd, &cev) != 0) {
			epoll_ctl(b->ep, EPOLL_CTL_DEL, fd, NULL);
			fo_cursor_close(cur);
			free(cl);
			close(fd);
			continue;
		}
		cl->next = b->clients.next;
		cl->prev = &b->clients;
		b->clients.next->prev = cl;
		b->clients.next = cl;
		b->nclients++;
		char hello[64];
		int k = snprintf(hello, sizeof(hello), "*** fanout: welcome, client %" PRIu32 "\n",
		                 cl->id);
		out_put(cl, hello, (size_t)k);
		client_pump(b, cl); /* sends the greeting, arms the cursor */
	}
}

/* ---- the tap ------------------------------------------------------------------------------------
 */

static void tap_tick(struct bus *b)
{
	uint64_t ticks;
	if (read(b->tickfd, &ticks, sizeof(ticks)) < 0)
		return;
	void *items[256];
	size_t n;
	int rc;
	while ((rc = fo_cursor_next_many(b->tap, items, 256, &n)) == FO_OK || rc == FO_LAGGED)
		b->tap_seen += n;
	b->tap_skipped = fo_cursor_lagged(b->tap);
	if (!b->o.quiet) {
		printf("epoll_bus: %zu clients, %" PRIu64 " lines in (%" PRIu64
		       "/s), tap saw %" PRIu64 ", skipped %" PRIu64 "\n",
		       b->nclients, b->lines_in, b->lines_in - b->last_tap_in, b->tap_seen,
		       b->tap_skipped);
		fflush(stdout);
	}
	b->last_tap_in = b->lines_in;
}

/* ---- the server ----------------------------------------------------------------------------- */

/* Bind 127.0.0.1:o->port, create the stream and the epoll set.  0 or -1 (message printed). */
static int bus_open(struct bus *b, const struct bus_opts *o)
{
	memset(b, 0, sizeof(*b));
	b->o = *o;
	b->ep = b->lfd = b->stopfd = b->tickfd = -1;
	b->clients.next = b->clients.prev = &b->clients;
	fo_stream_opts so;
	fo_stream_opts_init(&so);
	so.passive_window = o->window;
	so.item_free = line_free;
	if (fo_stream_create(&b->s, &so) != FO_OK || fo_stream_cursor(b->s, &b->tap, FO_PASSIVE)) {
		fprintf(stderr, "epoll_bus: out of memory\n");
		return -1;
	}
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(o->port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* loopback only, never 0.0.0.0 */
	socklen_t alen = sizeof(a);
	int one = 1;
	b->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (b->lfd < 0 || setsockopt(b->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(b->lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(b->lfd, 128) != 0 ||
	    getsockname(b->lfd, (struct sockaddr *)&a, &alen) != 0) {
		fprintf(stderr, "epoll_bus: cannot listen on 127.0.0.1:%u: %s\n", o->port,
		        strerror(errno));
		return -1;
	}
	b->port = ntohs(a.sin_port);
	b->ep = epoll_create1(EPOLL_CLOEXEC);
	b->stopfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	b->tickfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	struct itimerspec its = {.it_interval = {1, 0}, .it_value = {1, 0}};
	b->listen_ref.tag = BUS_LISTEN;
	b->stop_ref.tag = BUS_STOP;
	b->tick_ref.tag = BUS_TICK;
	struct epoll_event e1 = {.events = EPOLLIN, .data.ptr = &b->listen_ref};
	struct epoll_event e2 = {.events = EPOLLIN, .data.ptr = &b->stop_ref};
	struct epoll_event e3 = {.events = EPOLLIN, .data.ptr = &b->tick_ref};
	if (b->ep < 0 || b->stopfd < 0 || b->tickfd < 0 ||
	    timerfd_settime(b->tickfd, 0, &its, NULL) != 0 ||
	    epoll_ctl(b->ep, EPOLL_CTL_ADD, b->lfd, &e1) != 0 ||
	    epoll_ctl(b->ep, EPOLL_CTL_ADD, b->stopfd, &e2) != 0 ||
	    epoll_ctl(b->ep, EPOLL_CTL_ADD, b->tickfd, &e3) != 0) {
		fprintf(stderr, "epoll_bus: epoll setup failed: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

/* Ask bus_run() to return.  Any thread; async-signal-safe (one write()). */
static void bus_stop(struct bus *b)
{
	uint64_t one = 1;
	ssize_t r = write(b->stopfd, &one, sizeof(one));
	(void)r;
}

static int64_t bus_now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Serve until bus_stop() or --max-seconds. */
static void bus_run(struct bus *b)
{
	int64_t deadline = b->o.max_seconds ? bus_now_ms() + 1000 * (int64_t)b->o.max_seconds : 0;
	struct epoll_event ev[BUS_EVENTS];
	for (;;) {
		int timeout = -1;
		if (b->runq)
			timeout = 0;
		else if (deadline) {
			int64_t left = deadline - bus_now_ms();
			timeout = left > 0 ? (int)left : 0;
		}
		int n = epoll_wait(b->ep, ev, BUS_EVENTS, timeout);
		if (n < 0 && errno != EINTR)
			break;
		bool stop = false;
		for (int i = 0; i < n; i++) {
			struct bus_ref *r = ev[i].data.ptr;
			switch (r->tag) {
			case BUS_LISTEN:
				client_accept(b);
				break;
			case BUS_STOP:
				stop = true;
				break;
			case BUS_TICK:
				tap_tick(b);
				break;
			case BUS_SOCK:
				if (ev[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
					client_read(b, r->cl);
				if (!r->cl->dead && (ev[i].events & EPOLLOUT))
					client_pump(b, r->cl);
				break;
			case BUS_CURSOR:
				client_pump(b, r->cl);
				break;
			}
		}
		/* Clients that spent their budget: one more round each. */
		struct bus_client *q = b->runq;
		b->runq = NULL;
		while (q) {
			struct bus_client *cl = q;
			q = q->run_next;
			cl->queued = false;
			client_pump(b, cl); /* a no-op for clients dropped meanwhile */
		}
		bury(b);
		if (stop || (deadline && bus_now_ms() >= deadline))
			break;
	}
}

/* Drop every client, end and free the stream, close everything.  After bus_run(). */
static void bus_close(struct bus *b)
{
	if (b->s)
		fo_stream_close(b->s);
	while (b->clients.next != &b->clients)
		client_drop(b, b->clients.next);
	bury(b);
	fo_cursor_close(b->tap);
	fo_stream_destroy(b->s);
	if (b->ep >= 0)
		close(b->ep);
	if (b->lfd >= 0)
		close(b->lfd);
	if (b->stopfd >= 0)
		close(b->stopfd);
	if (b->tickfd >= 0)
		close(b->tickfd);
	b->s = NULL;
	b->tap = NULL;
}

#ifndef EPOLL_BUS_NO_MAIN

static struct bus the_bus;

static void on_signal(int sig)
{
	(void)sig;
	bus_stop(&the_bus);
}

static bool parse_num(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v > max)
		return false;
	*out = v;
	return true;
}

int main(int argc, char **argv)
{
	struct bus_opts o;
	bus_opts_init(&o);
	for (int i = 1; i < argc; i++) {
		unsigned long v;
		bool has = i + 1 < argc;
		if (!strcmp(argv[i], "--port") && has && parse_num(argv[i + 1], 65535, &v))
			o.port = (uint16_t)v, i++;
		else if (!strcmp(argv[i], "--max-seconds") && has &&
		         parse_num(argv[i + 1], 86400 * 365, &v))
			o.max_seconds = (unsigned)v, i++;
		else if (!strcmp(argv[i], "--window") && has &&
		         parse_num(argv[i + 1], 1ul << 30, &v))
			o.window = v ? v : 1, i++;
		else if (!strcmp(argv[i], "--sndbuf") && has &&
		         parse_num(argv[i + 1], 1ul << 30, &v))
			o.sndbuf = (int)v, i++;
		else if (!strcmp(argv[i], "--quiet"))
			o.quiet = true;
		else {
			fprintf(stderr,
			        "usage: %s [--port N] [--max-seconds N] [--window N] "
			        "[--sndbuf BYTES] [--quiet]\n",
			        argv[0]);
			return 2;
		}
	}
	if (bus_open(&the_bus, &o) != 0) {
		bus_close(&the_bus);
		return 1;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	printf("epoll_bus: listening on 127.0.0.1:%u\n", the_bus.port);
	fflush(stdout);
	bus_run(&the_bus);
	printf("epoll_bus: stopping: %zu clients, %" PRIu64 " lines in\n", the_bus.nclients,
	       the_bus.lines_in);
	bus_close(&the_bus);
	return 0;
}

#endif /* EPOLL_BUS_NO_MAIN */
