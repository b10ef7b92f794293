/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * stress_epoll_bus.c - runs the examples/epoll_bus.c server in-process (on its own thread,
 * on a free 127.0.0.1 port) and talks to it over loopback TCP.
 *
 *   every   4 clients each send LINES lines (in lock-step rounds of ROUND lines, so no
 *           client can fall a window behind) while reading; each must receive every other
 *           client's lines, per sender in order with no gap, none of its own, and no
 *           "skipped" notice (the documented policy: a client that keeps up loses nothing).
 *           The server's SO_SNDBUF is small, so its "socket full -> stop reading the cursor
 *           -> EPOLLOUT -> resume" path runs too.
 *   slow    a server with a 256-line window; a fast sender, a fast reader and a slow reader
 *           that does not read until the sender is done.  The sender and the fast reader
 *           must finish (the slow one never slows them); the fast reader gets every line; the
 *           slow reader gets "*** fanout: skipped N lines" notice(s), and the lines it got
 *           plus the skipped counts add up to exactly what was sent, in order.
 *
 * Loopback only; every wait is bounded (poll with a deadline: 30 s, x4 under sanitizers).
 *   usage: stress_epoll_bus [--seed N]   (the seed varies line lengths; it is printed)
 * Exit status 0 = pass.
 */
#define EPOLL_BUS_NO_MAIN
#include "../../examples/epoll_bus.c"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>

#include "fo_test.h"

#define NCLIENTS 4
#define ROUND    100

static uint64_t seed;
static int64_t deadline_ms = 30000;
static atomic_ulong failures;

#define FAIL(...)                                                  \
	do {                                                       \
		atomic_fetch_add(&failures, 1);                    \
		fprintf(stderr, "FAIL [seed %" PRIu64 "] ", seed); \
		fprintf(stderr, __VA_ARGS__);                      \
		fputc('\n', stderr);                               \
	} while (0)

/* ---- the server thread ------------------------------------------------------------------------
 */

struct server {
	struct bus b;
	pthread_t th;
};

static void *server_main(void *arg)
{
	bus_run(&((struct server *)arg)->b);
	return NULL;
}

static void server_start(struct server *sv, size_t window, int sndbuf)
{
	struct bus_opts o;
	bus_opts_init(&o);
	o.port = 0; /* a free port */
	o.window = window;
	o.sndbuf = sndbuf;
	o.quiet = true;
	o.max_seconds = (unsigned)(deadline_ms / 1000) * 2; /* a backstop, never reached */
	if (bus_open(&sv->b, &o) != 0 || pthread_create(&sv->th, NULL, server_main, sv) != 0) {
		fprintf(stderr, "cannot start the server\n");
		exit(2);
	}
}

static void server_stop(struct server *sv)
{
	bus_stop(&sv->b);
	pthread_join(sv->th, NULL);
	bus_close(&sv->b);
}

/* ---- a client -------------------------------------------------------------------------------- */

struct client {
	int fd, id;
	int64_t deadline;
	/* reading */
	char buf[4096];
	size_t len;
	uint64_t next[NCLIENTS]; /* per sender: next expected seq */
	uint64_t got[NCLIENTS];
	uint64_t notices, skipped, lines, greeted, own;
	bool resync; /* after a skip notice: accept any later seq per sender */
	/* writing */
	char out[8192];
	size_t outlen, outoff;
};

static int64_t now_ms(void)
{
	return ft_now_ns() / 1000000;
}

static void client_connect(struct client *c, int id, uint16_t port, int rcvbuf)
{
	memset(c, 0, sizeof(*c));
	c->id = id;
	c->deadline = now_ms() + deadline_ms;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (rcvbuf > 0)
		setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		fprintf(stderr, "connect: %s\n", strerror(errno));
		exit(2);
	}
	fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
}

/* One received line (without its newline). */
static void client_line(struct client *c, const char *p, size_t n)
{
	unsigned from;
	unsigned long long seq, skipped;
	c->lines++;
	if (n > 4 && !memcmp(p, "*** ", 4)) {
		char tmp[128];
		snprintf(tmp, sizeof(tmp), "%.*s", (int)(n < 127 ? n : 127), p);
		if (sscanf(tmp, "*** fanout: skipped %llu lines", &skipped) == 1) {
			c->notices++;
			c->skipped += skipped;
			c->resync = true;
		} else if (!strncmp(tmp, "*** fanout: welcome", 19)) {
			c->greeted++;
		} else {
			FAIL("client %d: unknown notice '%s'", c->id, tmp);
		}
		return;
	}
	char tmp[64];
	snprintf(tmp, sizeof(tmp), "%.*s", (int)(n < 63 ? n : 63), p);
	if (sscanf(tmp, "c%u %llu ", &from, &seq) != 2 || from >= NCLIENTS) {
		FAIL("client %d: garbled line '%s'", c->id, tmp);
		return;
	}
	if ((int)from == c->id) {
		c->own++;
		FAIL("client %d: got its own line back (seq %llu)", c->id, seq);
		return;
	}
	/* The padding is 'a' + seq % 26 repeated: a torn or mixed line fails here. */
	const char *pad = strchr(p + 1, ' ');
	pad = pad ? strchr(pad + 1, ' ') : NULL;
	if (!pad) {
		FAIL("client %d: line without padding '%s'", c->id, tmp);
		return;
	}
	for (const char *q = pad + 1; q < p + n; q++)
		if (*q != (char)('a' + seq % 26)) {
			FAIL("client %d: corrupt line from c%u seq %llu", c->id, from, seq);
			return;
		}
	if (seq != c->next[from] && !(c->resync && seq > c->next[from]))
		FAIL("client %d: from c%u got seq %llu, expected %" PRIu64, c->id, from, seq,
		     c->next[from]);
	c->resync = false;
	c->next[from] = seq + 1;
	c->got[from]++;
}

/* Read what is there; false on EOF/error. */
static bool client_recv(struct client *c)
{
	for (;;) {
		ssize_t k = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
		if (k == 0)
			return false;
		if (k < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
		c->len += (size_t)k;
		size_t start = 0;
		for (size_t i = 0; i < c->len; i++)
			if (c->buf[i] == '\n') {
				client_line(c, c->buf + start, i - start);
				start = i + 1;
			}
		memmove(c->buf, c->buf + start, c->len - start);
		c->len -= start;
		if (c->len == sizeof(c->buf)) {
			FAIL("client %d: line too long", c->id);
			c->len = 0;
		}
	}
}

static void client_queue(struct client *c, uint64_t seq, size_t padlen)
{
	char line[160];
	int k = snprintf(line, sizeof(line), "c%d %" PRIu64 " ", c->id, seq);
	memset(line + k, 'a' + (int)(seq % 26), padlen);
	line[k + (int)padlen] = '\n';
	memcpy(c->out + c->outlen, line, (size_t)k + padlen + 1);
	c->outlen += (size_t)k + padlen + 1;
}

/* Poll until @done(c) holds, sending what is queued and (if @reading) reading.  False on
 * timeout or EOF. */
static bool client_wait(struct client *c, bool reading, bool (*done)(struct client *, void *),
                        void *arg)
{
	while (!done(c, arg)) {
		struct pollfd p = {.fd = c->fd,
		                   .events = (short)((reading ? POLLIN : 0) |
		                                     (c->outoff < c->outlen ? POLLOUT : 0))};
		int64_t left = c->deadline - now_ms();
		if (left <= 0) {
			FAIL("client %d: timed out", c->id);
			return false;
		}
		if (poll(&p, 1, (int)(left < 1000 ? left : 1000)) < 0 && errno != EINTR)
			return false;
		if ((p.revents & POLLOUT) && c->outoff < c->outlen) {
			ssize_t k =
			    send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
			if (k > 0)
				c->outoff += (size_t)k;
			else if (k < 0 && errno != EAGAIN && errno != EINTR)
				return false;
			if (c->outoff == c->outlen)
				c->outoff = c->outlen = 0;
		}
		if ((p.revents & (POLLIN | POLLHUP | POLLERR)) && reading && !client_recv(c)) {
			FAIL("client %d: connection closed by the server", c->id);
			return false;
		}
	}
	return true;
}

static bool is_greeted(struct client *c, void *arg)
{
	(void)arg;
	return c->greeted > 0;
}

static bool sent_all(struct client *c, void *arg)
{
	(void)arg;
	return c->outoff == c->outlen;
}

/* ---- scenario: every client gets every other client's line ----------------------------------- */

struct every {
	struct client c;
	uint16_t port;
	uint64_t lines; /* per client */
	pthread_barrier_t *ready;
};

struct upto {
	uint64_t n; /* lines from each other client */
};

static bool got_upto(struct client *c, void *arg)
{
	uint64_t n = ((struct upto *)arg)->n;
	if (c->outoff != c->outlen)
		return false;
	for (int k = 0; k < NCLIENTS; k++)
		if (k != c->id && c->got[k] < n)
			return false;
	return true;
}

static void *every_client(void *arg)
{
	struct every *e = arg;
	struct client *c = &e->c;
	uint64_t rs = seed ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(c->id + 1));
	if (!client_wait(c, true, is_greeted, NULL)) {
		pthread_barrier_wait(e->ready);
		return NULL;
	}
	/* Every client's cursor exists before anyone sends. */
	pthread_barrier_wait(e->ready);
	for (uint64_t sent = 0; sent < e->lines;) {
		/* One round: queue ROUND lines (random lengths), send them while reading, then
		 * wait for everybody else's round: nobody gets more than 2 rounds ahead. */
		uint64_t end = sent + ROUND < e->lines ? sent + ROUND : e->lines;
		for (; sent < end; sent++) {
			rs = rs * 6364136223846793005ULL + 1442695040888963407ULL;
			client_queue(c, sent, 1 + (size_t)((rs >> 33) % 60));
		}
		struct upto u = {sent};
		if (!client_wait(c, true, got_upto, &u))
			break;
	}
	return NULL;
}

static void scenario_every(uint64_t lines)
{
	struct server sv;
	server_start(&sv, 4096, 4096); /* small SO_SNDBUF: the server's EAGAIN path runs */
	struct every e[NCLIENTS];
	pthread_t th[NCLIENTS];
	pthread_barrier_t ready;
	pthread_barrier_init(&ready, NULL, NCLIENTS);
	for (int i = 0; i < NCLIENTS; i++) {
		client_connect(&e[i].c, i, sv.b.port, 0);
		e[i].port = sv.b.port;
		e[i].lines = lines;
		e[i].ready = &ready;
	}
	for (int i = 0; i < NCLIENTS; i++)
		pthread_create(&th[i], NULL, every_client, &e[i]);
	for (int i = 0; i < NCLIENTS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < NCLIENTS; i++) {
		struct client *c = &e[i].c;
		for (int k = 0; k < NCLIENTS; k++)
			if (k != i && c->got[k] != lines)
				FAIL("every: client %d got %" PRIu64 "/%" PRIu64 " lines of c%d", i,
				     c->got[k], lines, k);
		if (c->notices || c->own)
			FAIL("every: client %d: %" PRIu64 " skip notices, %" PRIu64 " own lines", i,
			     c->notices, c->own);
		close(c->fd);
	}
	pthread_barrier_destroy(&ready);
	printf("  every: %d clients x %" PRIu64 " lines: each got %" PRIu64
	       " lines of the others, in order\n",
	       NCLIENTS, lines, (uint64_t)(NCLIENTS - 1) * lines);
	server_stop(&sv);
}

/* ---- scenario: a slow client never slows the others ------------------------------------------ */

struct fast_reader {
	struct client c;
	uint64_t expect;
	_Atomic uint64_t progress; /* lines received, for the sender's pacing */
	atomic_bool gave_up;
};

static bool got_all_from0(struct client *c, void *arg)
{
	struct fast_reader *f = arg;
	atomic_store(&f->progress, c->got[0]);
	return c->got[0] >= f->expect;
}

static void *fast_reader_main(void *arg)
{
	struct fast_reader *f = arg;
	if (!client_wait(&f->c, true, got_all_from0, f))
		atomic_store(&f->gave_up, true);
	return NULL;
}

/* The sender stays at most PACE lines ahead of the fast reader, so the fast reader (on an
 * oversubscribed machine, maybe descheduled for a while) is never a window behind: what
 * is tested is that the slow reader, which reads nothing at all, holds nobody up. */
#define PACE 128
static bool paced(struct fast_reader *f, uint64_t seq, int64_t deadline)
{
	while (atomic_load(&f->progress) + PACE < seq) {
		if (atomic_load(&f->gave_up) || now_ms() > deadline) {
			FAIL("slow: the fast reader is stuck at %" PRIu64 " of %" PRIu64,
			     atomic_load(&f->progress), seq);
			return false;
		}
		struct timespec ts = {0, 20000};
		nanosleep(&ts, NULL);
	}
	return true;
}

/* The slow reader is done when it has seen the sender's last line. */
static bool slow_done(struct client *c, void *arg)
{
	return c->next[0] >= *(uint64_t *)arg;
}

static void scenario_slow(uint64_t lines)
{
	struct server sv;
	server_start(&sv, 256, 4096);
	struct client sender, slow;
	struct fast_reader fr;
	client_connect(&sender, 0, sv.b.port, 0);
	client_connect(&fr.c, 1, sv.b.port, 0);
	client_connect(&slow, 2, sv.b.port, 4096); /* small receive buffer */
	fr.expect = lines;
	atomic_init(&fr.progress, 0);
	atomic_init(&fr.gave_up, false);
	if (!client_wait(&sender, true, is_greeted, NULL) ||
	    !client_wait(&fr.c, true, is_greeted, NULL) ||
	    !client_wait(&slow, true, is_greeted, NULL))
		goto out;
	pthread_t th;
	pthread_create(&th, NULL, fast_reader_main, &fr);
	int64_t t0 = now_ms();
	uint64_t rs = seed;
	for (uint64_t seq = 0; seq < lines;) {
		if (!paced(&fr, seq, sender.deadline))
			break;
		while (seq < lines && sender.outlen + 160 < sizeof(sender.out) &&
		       seq < atomic_load(&fr.progress) + 2 * PACE) {
			rs = rs * 6364136223846793005ULL + 1442695040888963407ULL;
			client_queue(&sender, seq++, 40 + (size_t)((rs >> 33) % 40));
		}
		if (!client_wait(&sender, false, sent_all, NULL))
			break;
	}
	pthread_join(th, NULL);
	int64_t t_send = now_ms() - t0;
	if (fr.c.got[0] != lines || fr.c.notices)
		FAIL("slow: the fast reader got %" PRIu64 "/%" PRIu64 " lines, %" PRIu64 " notices",
		     fr.c.got[0], lines, fr.c.notices);
	/* Now the slow client reads everything that is left for it. */
	client_wait(&slow, true, slow_done, &lines);
	if (slow.notices == 0)
		FAIL("slow: the slow client was never told it skipped lines (got %" PRIu64 ")",
		     slow.got[0]);
	if (slow.got[0] + slow.skipped != lines)
		FAIL("slow: the slow client got %" PRIu64 " + skipped %" PRIu64 " != %" PRIu64,
		     slow.got[0], slow.skipped, lines);
	printf("  slow: sender + fast reader done in %" PRId64 " ms (%" PRIu64
	       " lines); the slow reader got %" PRIu64 ", skipped %" PRIu64 " in %" PRIu64
	       " notice(s)\n",
	       t_send, lines, slow.got[0], slow.skipped, slow.notices);
out:
	close(sender.fd);
	close(fr.c.fd);
	close(slow.fd);
	server_stop(&sv);
}

int main(int argc, char **argv)
{
	seed = (uint64_t)ft_now_ns();
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			seed = strtoull(argv[++i], NULL, 0);
		else {
			fprintf(stderr, "usage: %s [--seed N]\n", argv[0]);
			return 2;
		}
	}
	if (ft_sanitized())
		deadline_ms *= 4;
	signal(SIGPIPE, SIG_IGN);
	printf("stress_epoll_bus: seed %" PRIu64 "\n", seed);
	fflush(stdout);
	scenario_every(ft_scale(5000));
	if (!atomic_load(&failures))
		scenario_slow(ft_sanitized() ? 20000 : 50000);
	if (atomic_load(&failures)) {
		printf("stress_epoll_bus: FAILED (%lu, seed %" PRIu64 ")\n", atomic_load(&failures),
		       seed);
		return 1;
	}
	printf("stress_epoll_bus: PASS\n");
	return 0;
}
