/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * proc.h - child processes for the process backends (proc.c): spawning,
 * watching, killing and reaping children, and the length-prefixed frames
 * that cross the socketpair between a parent and its child.
 *
 * Fork safety (docs/design.md §13): fo__child_spawn() calls fork() on the
 * calling thread, so the child is a copy of the caller's memory at that
 * moment (init_args pointers, inparallel's "memory as at the call").  The
 * child holds only the forking thread: it never touches a lock or a fanout
 * object of the parent, sets PR_SET_PDEATHSIG (SIGKILL) and re-checks
 * getppid(), keeps fds 0-2 and its end of the socketpair (moved to fd 3) and
 * closes every other inherited fd, runs the given main and leaves with
 * _exit() - it never returns into the caller's code.  The parent opens a
 * pidfd (readable when the child exits: no polling, no SIGCHLD) and reaps
 * with waitid(P_PIDFD).  Every parent-side fd is close-on-exec.
 */
#ifndef FO_PROC_H
#define FO_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "internal.h"

/* A frame: u32 payload length, u32 type, then the payload (host order: both
 * ends are the same program on the same machine). */
#define FO__FRAME_HDR 8u
#define FO__FRAME_MAX (1u << 30) /* payload bytes; longer frames are corrupt */
#define FO__MSG_MAX   4096u      /* bytes of an error message kept */

enum fo__frame_type {
	FO__F_ITEM = 1,  /* parent -> child: an encoded input that ends its unit */
	FO__F_STOP,      /* parent -> child: run fini and exit */
	FO__F_READY,     /* child -> parent: init succeeded */
	FO__F_OK,        /* child -> parent: an encoded output */
	FO__F_ERR,       /* child -> parent: i32 code, i32 errno, message bytes */
	FO__F_ITEM_MORE, /* parent -> child: an encoded input, and more of its unit
	                  * (chunk) follows: its output may wait for the unit's end */
	FO__F_MAXTYPE = FO__F_ITEM_MORE,
};

/* Bytes to send (off: sent so far). */
struct fo__tx {
	unsigned char *data;
	size_t off, len, cap;
};

/* Bytes received (off: parsed so far). */
struct fo__rx {
	unsigned char *data;
	size_t off, len, cap;
};

/*
 * Shared-memory rings (design.md §13, "Rings"): an optional byte stream each
 * way in a MAP_SHARED mapping made before the fork.  The frames are the
 * socket's, byte for byte; the socketpair then carries only the child's
 * doorbell bytes (one when the parent said it sleeps) and EOF; the parent
 * wakes a sleeping child through a futex word in the page (cbell).  Each index is written
 * by one side only; the parent keeps its own copies and checks the child's
 * (a crashed or hostile child can write anything there).
 */
#define FO__RING_BYTES (64u << 10) /* per direction; a power of two */

struct fo__ring {
	FO_ALIGNED _Atomic uint64_t head; /* bytes taken, by the consumer */
	FO_ALIGNED _Atomic uint64_t tail; /* bytes published, by the producer */
};

struct fo__shm {
	struct fo__ring down, up;           /* parent -> child, child -> parent */
	FO_ALIGNED _Atomic uint32_t psleep; /* the parent sleeps (or is about to) */
	/* The child's doorbell, a shared futex word: gen << 2 | it waits for
	 * room (not input) << 1 | it sleeps (or is about to).  The child sets
	 * the bits, the parent clears them and moves gen (then FUTEX_WAKE);
	 * design.md §13, "The child's doorbell is a futex". */
	FO_ALIGNED _Atomic uint32_t cbell;
	FO_ALIGNED unsigned char down_data[FO__RING_BYTES];
	unsigned char up_data[FO__RING_BYTES];
};

struct fo__child {
	pid_t pid;
	int pidfd; /* readable once the child exited; -1 when none */
	int fd;    /* the parent's end of the socketpair (non-blocking); -1 when none */
	/* With rings (set by the caller after the spawn; NULL: frames go through
	 * the socket): the parent's own copies of its indices. */
	struct fo__shm *shm;
	uint64_t down_tail, up_head;
};

/* The child's end of the rings: its socket (fd) and its own indices. */
struct fo__cend {
	int fd;
	struct fo__shm *shm;
	uint64_t down_head, up_tail;
};

/* Zero @s's indices and flags (before the fork of the child that uses it). */
void fo__shm_reset(struct fo__shm *s);
/* Child side, blocking, over the rings: send all of @tx (FO_OK); receive
 * more bytes (FO_OK, FO_ENOMEM).  Both sleep on the futex doorbell (cbell)
 * until the parent moves the ring; the parent ends a child by STOP or
 * SIGKILL, and its death by PR_SET_PDEATHSIG (the socket's EOF is not
 * watched: the child never reads its socket). */
int fo__cend_flush(struct fo__cend *e, struct fo__tx *tx);
int fo__cend_fill(struct fo__cend *e, struct fo__rx *rx);

/* The end of a child, from waitid(). */
struct fo__exit {
	bool known;  /* false: reaped elsewhere (SIGCHLD ignored, a waitpid(-1)) */
	bool signal; /* killed by a signal (else exited) */
	int value;   /* the signal or the exit status */
};

/*
 * Fork a child that runs @main(@arg, fd) and _exit()s with its return value
 * (fd: the child's end of the socketpair, blocking).  On FO_OK @c holds the
 * pid, the pidfd and the parent's end.  Returns FO_OK, FO_ESYS (errno kept:
 * nothing is left behind).
 */
int fo__child_spawn(struct fo__child *c, int (*main)(void *arg, int fd), void *arg);
/* Send @sig through the pidfd (safe against pid reuse).  No-op without one. */
void fo__child_kill(const struct fo__child *c, int sig);
/* Wait for the child's exit (blocking), reap it, close its fds. */
void fo__child_reap(struct fo__child *c, struct fo__exit *e);
/* "<who> killed by signal 9 (SIGKILL)", "<who> exited with status 3", ... */
void fo__exit_describe(const struct fo__exit *e, const char *who, char *buf, size_t n);

/*
 * Parent side: send all of @tx while receiving into @rx, until @rx holds a
 * complete frame (or, with @want_frame false, until @tx is sent).  Returns
 * FO_OK; FO_ECLOSED (the child is gone - exited, or closed its end - and no
 * complete frame is buffered; unsent bytes are dropped); FO_EINVAL (a
 * corrupt frame header, or with rings a ring index out of bounds); FO_ENOMEM;
 * FO_ESYS.  Never polls on a timer: it sleeps in poll() on the socket and
 * the pidfd.  With @c->shm, the bytes go through the rings.
 */
int fo__child_io(struct fo__child *c, struct fo__tx *tx, struct fo__rx *rx, bool want_frame);

/*
 * Parent side, pipelined: send what the socket takes of @tx now and receive
 * what is there into @rx; with @block, sleep (poll on the socket and the
 * pidfd, no timer) until @rx holds at least one complete frame.  @tx need
 * not be sent completely on return (the next call goes on).  Returns FO_OK;
 * FO_ECLOSED (the child is gone and no complete frame is buffered; unsent
 * bytes are dropped); FO_EINVAL (with rings: a ring index out of bounds);
 * FO_ENOMEM; FO_ESYS.  With @c->shm, the bytes go through the rings.
 */
int fo__child_pump(struct fo__child *c, struct fo__tx *tx, struct fo__rx *rx, bool block);

/* Child side, blocking: send all of @tx (FO_OK or FO_ESYS); receive more bytes
 * (FO_OK, FO_END at EOF, FO_ENOMEM, FO_ESYS). */
int fo__tx_flush(int fd, struct fo__tx *tx);
int fo__rx_fill(int fd, struct fo__rx *rx);
/* Either side, non-blocking: FO_OK (bytes came), FO_EMPTY (none now), FO_END
 * (EOF), FO_ENOMEM, FO_ESYS. */
int fo__rx_try_fill(int fd, struct fo__rx *rx);

/* Is a complete frame (or a corrupt header, which fo__rx_frame() reports)
 * buffered?  Consumes nothing. */
bool fo__rx_ready(const struct fo__rx *rx);
/* Append a frame: header and @len payload bytes (@data may be NULL: reserve). */
int fo__tx_frame(struct fo__tx *tx, uint32_t type, const void *data, size_t len);
/* Append an FO__F_ERR frame (message truncated to FO__MSG_MAX). */
int fo__tx_err(struct fo__tx *tx, int code, int sys_errno, const char *msg);
void fo__tx_fini(struct fo__tx *tx);
void fo__rx_fini(struct fo__rx *rx);

/*
 * The next complete frame of @rx: 1 (*type, *data, *len set; the payload
 * stays valid until the next receive), 0 (none complete yet), FO_EINVAL (a
 * corrupt header: length over FO__FRAME_MAX or unknown type).
 */
int fo__rx_frame(struct fo__rx *rx, uint32_t *type, const unsigned char **data, uint32_t *len);
/* Parse an FO__F_ERR payload: FO_OK (*msg: a fo__alloc'ed NUL-terminated copy,
 * NULL when empty or no memory) or FO_EINVAL (too short, or code FO_OK). */
int fo__err_parse(const unsigned char *data, uint32_t len, int *code, int *sys_errno, char **msg);

#endif /* FO_PROC_H */
