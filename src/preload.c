/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * preload.c - fo_process_preload(): a source read in a child process, at
 * most `ahead` items ahead of the reader (fanout/preload.h).
 *
 * Credits bound the read-ahead.  The reader grants credits in frames
 * (FO__F_ITEM carrying a u32 count); the child pulls its copy of the source
 * only while it holds one, and sends each item as an FO__F_OK frame, then
 * the end or the source's error as one FO__F_ERR frame (code FO_END for a
 * normal end).  `granted` (reader side) counts credits sent and not yet
 * matched by an item the reader took, so items pulled and not yet returned
 * never exceed `ahead`.  The reader tops the grant up once half of it is
 * used: one small frame per ahead/2 items, not one per item.
 *
 * The child is forked by a helper thread that sleeps until the iterator is
 * closed: PR_SET_PDEATHSIG fires when the forking *thread* exits, so the
 * child must not be tied to whichever thread happened to create the
 * iterator.  The creating thread waits for the fork, so the child sees
 * memory as it was at the call.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fanout/preload.h>

#include "iter_impl.h"
#include "proc.h"

struct preload {
	fo_iter it;
	fo_codec codec;
	fo_iter *src; /* the child's copy is read; the parent's is closed */
	size_t ahead;
	size_t granted; /* credits sent and not yet matched by a taken item */
	bool over;      /* the child reported its end (or died): grant no more */
	struct fo__child ch;
	struct fo__tx tx;
	struct fo__rx rx;
	/* the helper thread that forked the child */
	pthread_t proxy;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stage; /* 0 forking, 1 forked (or failed), 2 quit */
	int spawn_rc, spawn_errno;
};

/* ---- the child -------------------------------------------------------------------------- */

/* Wait for credits (or the order to stop).  Returns the count, or 0 to exit. */
static uint64_t child_credits(int fd, struct fo__tx *tx, struct fo__rx *rx)
{
	for (;;) {
		if (fo__tx_flush(fd, tx) != FO_OK)
			return 0;
		uint32_t type, len;
		const unsigned char *d;
		int r = fo__rx_frame(rx, &type, &d, &len);
		if (r < 0 || (r == 1 && type == FO__F_STOP))
			return 0;
		if (r == 1) {
			uint32_t n;
			if (type != FO__F_ITEM || len != sizeof(n))
				return 0;
			memcpy(&n, d, sizeof(n));
			if (n)
				return n;
			continue;
		}
		if (fo__rx_fill(fd, rx) != FO_OK)
			return 0; /* the reader went away */
	}
}

static int child_main(void *arg, int fd)
{
	struct preload *p = arg;
	struct fo__tx tx = {0};
	struct fo__rx rx = {0};
	fo_buf enc;
	uint64_t credits = 0;
	fo_error err = {.code = FO_END};
	char *owned = NULL;

	fo_buf_init(&enc);
	for (;;) {
		if (credits == 0 && (credits = child_credits(fd, &tx, &rx)) == 0)
			return 0;
		/* Send what we have before every pull: a source may block for
		 * long (even in a "try"), and the reader must not wait behind it
		 * for items already made.  One send per item, amortised when the
		 * reader's grant lets several items queue while it works. */
		if (fo__tx_flush(fd, &tx) != FO_OK)
			return 0;
		void *item;
		int rc = fo_iter_next(p->src, &item);
		if (rc == FO_END)
			break;
		if (rc != FO_OK) {
			const fo_error *e = fo_iter_error(p->src);
			err = e ? *e : (fo_error){.code = rc, .message = fo_strerror(rc)};
			break;
		}
		fo_buf_reset(&enc);
		fo__cb_begin();
		rc = fo_codec_encode(&p->codec, item, &enc);
		if (rc != FO_OK)
			fo__cb_capture(rc, &err, &owned);
		fo_iter_release(p->src, item);
		if (rc != FO_OK)
			break;
		if (fo__tx_frame(&tx, FO__F_OK, enc.data, enc.len) != FO_OK)
			return 3;
		credits--;
	}
	if (fo__tx_err(&tx, err.code, err.sys_errno, err.message) != FO_OK)
		return 3;
	fo__tx_flush(fd, &tx);
	while (child_credits(fd, &tx, &rx) != 0) /* until the reader closes or stops us */
		;
	return 0;
}

/* ---- the helper thread ------------------------------------------------------------------ */

static void *proxy_main(void *arg)
{
	struct preload *p = arg;
	int rc = fo__child_spawn(&p->ch, child_main, p);
	int e = errno;

	pthread_mutex_lock(&p->mu);
	p->spawn_rc = rc;
	p->spawn_errno = e;
	p->stage = 1;
	pthread_cond_broadcast(&p->cv);
	while (p->stage != 2) /* the child dies with this thread: live as long as the iterator */
		pthread_cond_wait(&p->cv, &p->mu);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static void proxy_quit(struct preload *p)
{
	pthread_mutex_lock(&p->mu);
	p->stage = 2;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->proxy, NULL);
}

/* ---- the reader ------------------------------------------------------------------------- */

/* The child is gone or misbehaved: stop it, reap it, and fail with the cause. */
static int child_lost(struct preload *p, const char *why)
{
	struct fo__exit ex;
	char msg[256];

	p->over = true;
	fo__child_kill(&p->ch, SIGKILL);
	fo__child_reap(&p->ch, &ex);
	if (why)
		snprintf(msg, sizeof(msg), "preload child: %s", why);
	else
		fo__exit_describe(&ex, "preload child", msg, sizeof(msg));
	return fo__iter_fail(&p->it, FO_FAILED, 0, msg);
}

/* Top the grant up to `ahead` once half of it is used, and send it. */
static int grant(struct preload *p)
{
	if (p->over || p->granted > p->ahead / 2)
		return FO_OK;
	uint32_t n = (uint32_t)(p->ahead - p->granted);
	int rc = fo__tx_frame(&p->tx, FO__F_ITEM, &n, sizeof(n));
	if (rc != FO_OK)
		return rc;
	p->granted = p->ahead;
	rc = fo__child_io(&p->ch, &p->tx, &p->rx, false); /* 12 bytes: never waits long */
	return rc == FO_ECLOSED ? FO_OK : rc;             /* a dead child shows at the read */
}

/* One complete frame from rx: FO_OK (*item), FO_END, FO_FAILED, or FO_EMPTY (none yet). */
static int take_frame(struct preload *p, void **item)
{
	uint32_t type, len;
	const unsigned char *d;
	int r = fo__rx_frame(&p->rx, &type, &d, &len);
	if (r == 0)
		return FO_EMPTY;
	if (r < 0 || (type != FO__F_OK && type != FO__F_ERR))
		return child_lost(p, "corrupt frame");
	if (type == FO__F_OK) {
		if (p->granted == 0) /* more items than credits: not our child's protocol */
			return child_lost(p, "item without a credit");
		p->granted--;
		fo_error e;
		char *owned;
		fo__cb_begin();
		int rc = fo_codec_decode(&p->codec, d, len, item);
		if (rc != FO_OK) {
			fo__cb_capture(rc, &e, &owned);
			p->over = true;
			rc = fo__iter_fail_from(&p->it, &e);
			fo__free(owned);
			return rc;
		}
		return FO_OK;
	}
	int code, sys_errno;
	char *msg;
	if (fo__err_parse(d, len, &code, &sys_errno, &msg) != FO_OK)
		return child_lost(p, "corrupt error frame");
	p->over = true;
	if (code == FO_END) {
		fo__free(msg);
		return FO_END;
	}
	int rc = fo__iter_fail(&p->it, code, sys_errno, msg);
	fo__free(msg);
	return rc;
}

static int pl_next(fo_iter *it, void **item, uint64_t deadline)
{
	struct preload *p = (struct preload *)it;
	for (;;) {
		int rc = take_frame(p, item);
		if (rc != FO_EMPTY) {
			if (rc == FO_OK && (rc = grant(p)) != FO_OK) {
				fo_codec_free_item(&p->codec, *item);
				return fo__iter_fail(it, rc, rc == FO_ESYS ? errno : 0, NULL);
			}
			return rc;
		}
		if ((rc = grant(p)) != FO_OK)
			return fo__iter_fail(it, rc, rc == FO_ESYS ? errno : 0, NULL);
		rc = fo__rx_try_fill(p->ch.fd, &p->rx);
		if (rc == FO_OK)
			continue;
		if (rc == FO_END) /* EOF with no complete frame left: it died */
			return child_lost(p, NULL);
		if (rc != FO_EMPTY)
			return fo__iter_fail(it, rc, rc == FO_ESYS ? errno : 0, NULL);
		if (deadline == 0)
			return FO_EMPTY;
		int ms = -1;
		if (deadline != FO__NO_DEADLINE) {
			int64_t left = fo__remaining(deadline);
			if (left == 0)
				return FO_TIMEDOUT;
			ms = (int)((left + 999999) / 1000000 > 1000000 ? 1000000
			                                               : (left + 999999) / 1000000);
		}
		struct pollfd pfd = {.fd = p->ch.fd, .events = POLLIN};
		if (poll(&pfd, 1, ms) < 0 && errno != EINTR)
			return fo__iter_fail(it, FO_ESYS, errno, "poll");
	}
}

static int pl_fd(fo_iter *it)
{
	return ((struct preload *)it)->ch.fd;
}

static int pl_arm(fo_iter *it)
{
	struct preload *p = (struct preload *)it;
	if (grant(p) != FO_OK)
		return 1; /* the read reports it */
	for (;;) {
		if (fo__rx_ready(&p->rx))
			return 1; /* a frame (or garbage) to read: peeked, not taken */
		int rc = fo__rx_try_fill(p->ch.fd, &p->rx);
		if (rc == FO_EMPTY)
			return 0; /* the socket turns readable when more comes, or at EOF */
		if (rc != FO_OK)
			return 1;
	}
}

static void pl_close(fo_iter *it)
{
	struct preload *p = (struct preload *)it;
	struct fo__exit ex;
	if (p->ch.pid > 0) {
		if (!p->over)
			fo__child_kill(&p->ch, SIGKILL); /* it may be blocked in the source */
		else
			shutdown(p->ch.fd, SHUT_RDWR); /* it waits for our end to close */
		fo__child_reap(&p->ch, &ex);
	}
	proxy_quit(p);
	if (p->src)
		fo_iter_close(p->src); /* the parent's copy, never read */
	/* Items still in rx were never decoded: nothing to free but bytes. */
	fo__tx_fini(&p->tx);
	fo__rx_fini(&p->rx);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	fo__iter_fini(it);
	fo__free(p);
}

static const struct fo__iter_vt preload_vt = {
    .name = "process_preload",
    .next = pl_next,
    .close = pl_close,
    .fd = pl_fd,
    .arm = pl_arm,
};

int fo_process_preload(fo_iter **out, fo_iter *src, size_t ahead, const fo_codec *codec)
{
	if (!out || !src || !ahead || ahead > UINT32_MAX || !codec || !codec->encode ||
	    !codec->decode || fo_iter_emits_errors(src))
		return FO_EINVAL;
	struct preload *p = fo__zalloc(sizeof(*p));
	if (!p)
		return FO_ENOMEM;
	p->codec = *codec;
	p->src = src;
	p->ahead = ahead;
	p->ch.pid = -1;
	p->ch.fd = p->ch.pidfd = -1;
	fo__iter_init(&p->it, &preload_vt, codec->item_free, codec->ctx);
	if (pthread_mutex_init(&p->mu, NULL) != 0 || fo__cond_init(&p->cv) != FO_OK) {
		fo__free(p);
		return FO_ENOMEM;
	}
	int e = pthread_create(&p->proxy, NULL, proxy_main, p);
	if (e != 0) {
		pthread_cond_destroy(&p->cv);
		pthread_mutex_destroy(&p->mu);
		fo__free(p);
		errno = e;
		return FO_ESYS;
	}
	pthread_mutex_lock(&p->mu);
	while (p->stage == 0) /* the child copies our memory now: src untouched meanwhile */
		pthread_cond_wait(&p->cv, &p->mu);
	pthread_mutex_unlock(&p->mu);
	if (p->spawn_rc != FO_OK) {
		e = p->spawn_errno;
		proxy_quit(p);
		pthread_cond_destroy(&p->cv);
		pthread_mutex_destroy(&p->mu);
		fo__free(p);
		errno = e;
		return FO_ESYS;
	}
	*out = &p->it;
	return FO_OK;
}

fo_iter *fo__preload_undo(fo_iter *it)
{
	struct preload *p = (struct preload *)it;
	fo_iter *src = p->src;
	p->src = NULL;
	p->over = false; /* kill it: it may be blocked in the source */
	pl_close(it);
	return src;
}

int fo_pipeline_buffer_process(fo_pipeline *p, fo_iter **out, fo_iter *src, size_t n,
                               const fo_codec *codec)
{
	if (!p || !out || !src || !n)
		return FO_EINVAL;
	fo_iter *pre;
	int rc = fo_process_preload(&pre, src, 1, codec);
	if (rc != FO_OK)
		return rc;
	rc = fo_pipeline_buffer(p, out, pre, n);
	if (rc != FO_OK)
		fo__preload_undo(pre); /* the caller keeps src, unread */
	return rc;
}
