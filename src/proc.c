/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * proc.c - spawning, watching and reaping children; frames over the
 * socketpair between a parent and its child (see proc.h and docs/design.md
 * §13 for the fork-safety rules).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proc.h"

/* ---- children ------------------------------------------------------------------------------ */

/*
 * AddressSanitizer before LLVM 16 does not lock its allocator around fork()
 * as glibc does for its malloc: a child forked while another thread was
 * inside malloc deadlocks in its first allocation (seen in test_pmap_proc).
 * In ASan builds we take its allocator lock around the fork ourselves (weak:
 * newer runtimes may not export it, and lock in their own atfork handler).
 */
#if defined(__SANITIZE_ADDRESS__)
#define FO__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FO__ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define FO__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FO__TSAN 1
#endif
#endif
#ifdef FO__ASAN
void _ZN6__asan18asan_mz_force_lockEv(void) __attribute__((weak));
void _ZN6__asan20asan_mz_force_unlockEv(void) __attribute__((weak));
static void fork_lock(void)
{
	if (_ZN6__asan18asan_mz_force_lockEv && _ZN6__asan20asan_mz_force_unlockEv)
		_ZN6__asan18asan_mz_force_lockEv();
}
static void fork_unlock(void)
{
	if (_ZN6__asan18asan_mz_force_lockEv && _ZN6__asan20asan_mz_force_unlockEv)
		_ZN6__asan20asan_mz_force_unlockEv();
}
#elif defined(FO__TSAN)
/*
 * ThreadSanitizer before LLVM 19 leaves its allocator unusable in the child
 * of a multithreaded fork: a child forked while another thread refilled a
 * size class waits forever in its first allocation of that class (seen:
 * test_pmap_proc, 1 run in 6 at load 20, the child in
 * SizeClassAllocator64::GetFromAllocator; fixed upstream by "[tsan]
 * Lock/Unlock allocator and stacks on fork").  The child runs on the forking
 * thread's allocator cache, so we fill that cache right before the fork with
 * a block of every size a child allocates (frame buffers up to 64 KiB, codec
 * items): its allocations are then served without the shared lock.
 */
static void fork_lock(void)
{
	void *warm[16];
	size_t n = 0;
	for (size_t size = 16; size <= ((size_t)64 << 10) && n < 16; size *= 2)
		warm[n++] = malloc(size);
	while (n)
		free(warm[--n]);
}
static void fork_unlock(void)
{
}
#else
static void fork_lock(void)
{
}
static void fork_unlock(void)
{
}
#endif

/* In the child, right after fork(): close every fd but 0-2 and @keep (moved to 3). */
static int child_fds(int keep)
{
	if (keep != 3) {
		if (dup2(keep, 3) < 0)
			return -1;
		keep = 3;
	}
	if (close_range(4, ~0U, 0) == 0)
		return keep;
	/* Kernels before 5.9: close them one by one. */
	long max = sysconf(_SC_OPEN_MAX);
	for (long fd = 4; fd < (max > 0 ? max : 1024); fd++)
		close((int)fd);
	return keep;
}

/*
 * Lazy binding: the first call of a libc function through the PLT resolves
 * it (a symbol search through libc's tables, then a write to the GOT).  A
 * function that only children call is never resolved in the parent, so every
 * child resolves it again after its fork: a search and a copy-on-write fault
 * of the GOT page, per function, per spawn (six functions, ~11 page faults of
 * a task child's ~55, measured with perf).  So the parent resolves them once:
 * each call below fails harmlessly (errno restored), and the child's own exit
 * goes through a pointer, which is bound when the program is loaded.
 */
static void (*volatile const child_exit)(int) = _exit;
static pthread_once_t child_calls_once = PTHREAD_ONCE_INIT;
static void bind_child_calls(void)
{
	int saved = errno, sig = 0;
	(void)prctl(PR_GET_PDEATHSIG, &sig); /* reads only */
	(void)getppid();
	(void)dup2(-1, -1);                    /* EBADF */
	(void)close_range(1, 0, 0);            /* first > last: EINVAL */
	(void)send(-1, NULL, 0, MSG_NOSIGNAL); /* EBADF */
	errno = saved;
}

int fo__child_spawn(struct fo__child *c, int (*main)(void *arg, int fd), void *arg)
{
	*c = (struct fo__child){.pid = -1, .pidfd = -1, .fd = -1};
	pthread_once(&child_calls_once, bind_child_calls);
	int sv[2];
	/* CLOEXEC: a child exec'd by another thread of the program never inherits it. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return FO_ESYS;
	pid_t parent = getpid();
	fork_lock();
	pid_t pid = fork();
	fork_unlock(); /* in both processes */
	if (pid < 0) {
		int e = errno;
		close(sv[0]);
		close(sv[1]);
		errno = e;
		return FO_ESYS;
	}
	if (pid == 0) {
		/* The child: die with the thread that forked us (our proxy, which
		 * lives as long as we do), and check that it did not die already. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			child_exit(127);
		int fd = child_fds(sv[1]);
		if (fd < 0)
			child_exit(127);
		child_exit(main(arg, fd) & 0xff); /* never returns into the caller's code */
		_exit(127);                       /* unreachable: tells the compiler so */
	}
	close(sv[1]);
	int pidfd = pidfd_open(pid, 0); /* close-on-exec by definition */
	if (pidfd < 0) {
		int e = errno;
		kill(pid, SIGKILL); /* unreaped: the pid is still ours */
		waitpid(pid, NULL, 0);
		close(sv[0]);
		errno = e;
		return FO_ESYS;
	}
	if (fcntl(sv[0], F_SETFL, O_NONBLOCK) != 0) {
		int e = errno;
		pidfd_send_signal(pidfd, SIGKILL, NULL, 0);
		waitpid(pid, NULL, 0);
		close(pidfd);
		close(sv[0]);
		errno = e;
		return FO_ESYS;
	}
	c->pid = pid;
	c->pidfd = pidfd;
	c->fd = sv[0];
	return FO_OK;
}

void fo__child_kill(const struct fo__child *c, int sig)
{
	if (c->pidfd >= 0)
		pidfd_send_signal(c->pidfd, sig, NULL, 0);
}

void fo__child_reap(struct fo__child *c, struct fo__exit *e)
{
	*e = (struct fo__exit){0};
	if (c->pidfd >= 0) {
		siginfo_t si;
		memset(&si, 0, sizeof(si));
		int r;
		do
			r = waitid(P_PIDFD, (id_t)c->pidfd, &si, WEXITED);
		while (r < 0 && errno == EINTR);
		if (r == 0 && si.si_pid != 0) {
			e->known = true;
			e->signal = si.si_code == CLD_KILLED || si.si_code == CLD_DUMPED;
			e->value = si.si_status;
		}
		close(c->pidfd);
	}
	if (c->fd >= 0)
		close(c->fd);
	c->pidfd = c->fd = -1;
	c->pid = -1;
}

void fo__exit_describe(const struct fo__exit *e, const char *who, char *buf, size_t n)
{
	if (!e->known) {
		snprintf(buf, n, "%s ended (exit status unknown: reaped elsewhere)", who);
	} else if (e->signal) {
		const char *abbrev = sigabbrev_np(e->value);
		snprintf(buf, n, "%s killed by signal %d (SIG%s)", who, e->value,
		         abbrev ? abbrev : "?");
	} else {
		snprintf(buf, n, "%s exited with status %d", who, e->value);
	}
}

/* ---- byte buffers ---------------------------------------------------------------------------- */

/* Make room for @more bytes after len, moving the unsent/unparsed part to the front. */
static int make_room(unsigned char **data, size_t *off, size_t *len, size_t *cap, size_t more)
{
	size_t live = *len - *off;
	if (*off && (*off == *len || *len + more > *cap)) {
		memmove(*data, *data + *off, live);
		*off = 0;
		*len = live;
	}
	if (*len + more <= *cap)
		return FO_OK;
	size_t c = *cap ? *cap : 4096;
	while (c < *len + more)
		c *= 2;
	unsigned char *d = fo__alloc(c);
	if (!d)
		return FO_ENOMEM;
	if (*len)
		memcpy(d, *data, *len);
	fo__free(*data);
	*data = d;
	*cap = c;
	return FO_OK;
}

int fo__tx_frame(struct fo__tx *tx, uint32_t type, const void *data, size_t len)
{
	if (len > FO__FRAME_MAX)
		return FO_EINVAL;
	if (tx->off == tx->len)
		tx->off = tx->len = 0;
	int rc = make_room(&tx->data, &tx->off, &tx->len, &tx->cap, FO__FRAME_HDR + len);
	if (rc != FO_OK)
		return rc;
	uint32_t hdr[2] = {(uint32_t)len, type};
	memcpy(tx->data + tx->len, hdr, sizeof(hdr));
	if (data && len)
		memcpy(tx->data + tx->len + FO__FRAME_HDR, data, len);
	tx->len += FO__FRAME_HDR + len;
	return FO_OK;
}

int fo__tx_err(struct fo__tx *tx, int code, int sys_errno, const char *msg)
{
	size_t mlen = msg ? strnlen(msg, FO__MSG_MAX) : 0;
	int rc = fo__tx_frame(tx, FO__F_ERR, NULL, 8 + mlen);
	if (rc != FO_OK)
		return rc;
	size_t at = tx->len - (8 + mlen); /* the payload is last (after any compaction) */
	int32_t v[2] = {code, sys_errno};
	memcpy(tx->data + at, v, sizeof(v));
	if (mlen)
		memcpy(tx->data + at + 8, msg, mlen);
	return FO_OK;
}

void fo__tx_fini(struct fo__tx *tx)
{
	fo__free(tx->data);
	*tx = (struct fo__tx){0};
}

void fo__rx_fini(struct fo__rx *rx)
{
	fo__free(rx->data);
	*rx = (struct fo__rx){0};
}

int fo__rx_frame(struct fo__rx *rx, uint32_t *type, const unsigned char **data, uint32_t *len)
{
	size_t avail = rx->len - rx->off;
	if (avail < FO__FRAME_HDR)
		return 0;
	uint32_t hdr[2];
	memcpy(hdr, rx->data + rx->off, sizeof(hdr));
	/* Validate before trusting: a crashed or hostile child must not make us
	 * read past the buffer or allocate without bound. */
	if (hdr[0] > FO__FRAME_MAX || hdr[1] == 0 || hdr[1] > FO__F_MAXTYPE)
		return FO_EINVAL;
	if (avail - FO__FRAME_HDR < hdr[0])
		return 0;
	*len = hdr[0];
	*type = hdr[1];
	*data = rx->data + rx->off + FO__FRAME_HDR;
	rx->off += FO__FRAME_HDR + hdr[0];
	return 1;
}

/* Bytes still missing for the frame at off (0 when a complete one is there). */
static size_t rx_missing(const struct fo__rx *rx)
{
	size_t avail = rx->len - rx->off;
	if (avail < FO__FRAME_HDR)
		return FO__FRAME_HDR - avail;
	uint32_t hdr[2];
	memcpy(hdr, rx->data + rx->off, sizeof(hdr));
	uint32_t plen = hdr[0];
	if (plen > FO__FRAME_MAX || hdr[1] == 0 || hdr[1] > FO__F_MAXTYPE)
		return 0; /* corrupt: fo__rx_frame() reports it (without waiting for a payload) */
	return avail - FO__FRAME_HDR >= plen ? 0 : plen - (avail - FO__FRAME_HDR);
}

int fo__err_parse(const unsigned char *data, uint32_t len, int *code, int *sys_errno, char **msg)
{
	*msg = NULL;
	if (len < 8)
		return FO_EINVAL;
	int32_t v[2];
	memcpy(v, data, sizeof(v));
	if (v[0] == FO_OK)
		return FO_EINVAL;
	*code = v[0];
	*sys_errno = v[1];
	size_t mlen = len - 8;
	if (mlen > FO__MSG_MAX)
		mlen = FO__MSG_MAX;
	if (mlen) {
		char *m = fo__alloc(mlen + 1);
		if (m) {
			memcpy(m, data + 8, mlen);
			m[mlen] = '\0';
		}
		*msg = m;
	}
	return FO_OK;
}

/* One receive into @rx.  > 0 bytes, 0 at EOF, -1 with errno. */
static ssize_t rx_recv(int fd, struct fo__rx *rx, int flags)
{
	size_t want = rx_missing(rx);
	if (want < 65536)
		want = 65536;
	if (make_room(&rx->data, &rx->off, &rx->len, &rx->cap, want) != FO_OK) {
		errno = ENOMEM;
		return -1;
	}
	ssize_t n;
	do
		n = recv(fd, rx->data + rx->len, rx->cap - rx->len, flags);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		rx->len += (size_t)n;
	return n;
}

int fo__rx_fill(int fd, struct fo__rx *rx)
{
	ssize_t n = rx_recv(fd, rx, 0);
	if (n > 0)
		return FO_OK;
	if (n == 0)
		return FO_END;
	return errno == ENOMEM ? FO_ENOMEM : FO_ESYS;
}

int fo__tx_flush(int fd, struct fo__tx *tx)
{
	while (tx->off < tx->len) {
		ssize_t n = send(fd, tx->data + tx->off, tx->len - tx->off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return FO_ESYS;
		tx->off += (size_t)n;
	}
	tx->off = tx->len = 0;
	return FO_OK;
}

/* Sleep (no timer) until the child's socket is readable - or writable, with
 * bytes of @tx unsent - or the child exits.  Returns 0 (look again), 1 (it
 * exited with nothing readable: its fds were closed before the pidfd turned
 * readable, so whatever it sent is in our socket already) or -1 (poll failed). */
static int child_wait(const struct fo__child *c, const struct fo__tx *tx)
{
	struct pollfd p[2] = {{.fd = c->fd, .events = POLLIN}, {.fd = c->pidfd, .events = POLLIN}};
	if (tx->len)
		p[0].events |= POLLOUT;
	int r = poll(p, 2, -1);
	if (r < 0 && errno != EINTR)
		return -1;
	return r > 0 && (p[1].revents & POLLIN) && !(p[0].revents & (POLLIN | POLLHUP));
}

/* Send what the socket takes now: 0, or -1 when the child closed its end
 * (the unsent bytes are dropped: nobody will read them). */
static int tx_send_some(int fd, struct fo__tx *tx)
{
	while (tx->off < tx->len) {
		ssize_t n =
		    send(fd, tx->data + tx->off, tx->len - tx->off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			tx->off += (size_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			return 0;
		} else {
			tx->off = tx->len = 0; /* EPIPE, ECONNRESET */
			return -1;
		}
	}
	tx->off = tx->len = 0;
	return 0;
}

/* ---- rings (design.md §13, "Rings") ---------------------------------------------------------- */

void fo__shm_reset(struct fo__shm *s)
{
	/* relaxed (all): no child uses @s now; fork() orders them before its reads. */
	atomic_store_explicit(&s->down.head, 0, memory_order_relaxed);
	atomic_store_explicit(&s->down.tail, 0, memory_order_relaxed);
	atomic_store_explicit(&s->up.head, 0, memory_order_relaxed);
	atomic_store_explicit(&s->up.tail, 0, memory_order_relaxed);
	atomic_store_explicit(&s->psleep, 0, memory_order_relaxed);
	atomic_store_explicit(&s->cbell, 0, memory_order_relaxed);
}

static void ring_in(unsigned char *ring, uint64_t pos, const unsigned char *src, size_t n)
{
	size_t at = (size_t)(pos & (FO__RING_BYTES - 1)), first = FO__RING_BYTES - at;
	if (first > n)
		first = n;
	memcpy(ring + at, src, first);
	memcpy(ring, src + first, n - first);
}

static void ring_out(unsigned char *dst, const unsigned char *ring, uint64_t pos, size_t n)
{
	size_t at = (size_t)(pos & (FO__RING_BYTES - 1)), first = FO__RING_BYTES - at;
	if (first > n)
		first = n;
	memcpy(dst, ring + at, first);
	memcpy(dst + first, ring, n - first);
}

/* The child moved an index: ring the parent's doorbell if it sleeps (or is
 * about to).  Dekker with the sleeper (ring_sleep): it stores its flag,
 * fences, then re-reads our index; we store the index, fence, then read its
 * flag - at least one of us sees the other.  One byte per sleep: the
 * exchange lets only one waker send it, and the byte stays in the socket
 * until the parent's poll sees it, however late it sleeps. */
static void doorbell(_Atomic uint32_t *sleeping, int fd)
{
	atomic_thread_fence(memory_order_seq_cst); /* our index store before the flag load */
	/* relaxed: the fence above orders the load; the exchange only elects one waker. */
	if (atomic_load_explicit(sleeping, memory_order_relaxed) &&
	    atomic_exchange_explicit(sleeping, 0, memory_order_relaxed))
		(void)send(fd, "", 1,
		           MSG_DONTWAIT | MSG_NOSIGNAL); /* full or gone: it wakes anyway */
}

/* Shared futexes (no FUTEX_PRIVATE_FLAG): the word is in a MAP_SHARED page
 * that the parent and the child map at the same place. */
static void cbell_sleep(_Atomic uint32_t *word, uint32_t expect)
{
	(void)syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, expect, NULL, NULL, 0);
}

/* cbell: gen << 2 | CB_ROOM (the child waits for room in the up ring, not
 * for input) | CB_ASLEEP (it sleeps, or is about to). */
#define CB_ASLEEP 1u
#define CB_ROOM   2u
#define CB_GEN    4u

/* The parent moved an index: wake the child if it sleeps (or is about to) on
 * cbell for that index - @input: the down ring's tail moved; @room: the up
 * ring's head moved (design.md §13, "futex").  Dekker with cend_wait(): it
 * sets its bits (CAS), fences, then re-reads the index it waits on; we store
 * the index, fence, then read the word.  The CAS that clears the bits also
 * moves gen, so a FUTEX_WAIT that starts after it returns at once; one wake
 * per sleep, and none for an index the child does not wait on. */
static void cbell_ring(_Atomic uint32_t *word, bool input, bool room)
{
	atomic_thread_fence(memory_order_seq_cst); /* our index store before the word load */
	/* relaxed: the fence above orders the load; the CAS decides alone. */
	uint32_t v = atomic_load_explicit(word, memory_order_relaxed);
	if (!(v & CB_ASLEEP) || !((v & CB_ROOM) ? room : input))
		return; /* awake (it re-reads the index before it sleeps), or waits
		         * for the other index */
	/* relaxed: the word carries no data (the ring's indices do, with their own
	 * release/acquire); the CAS only elects the one waker per sleep. */
	if (atomic_compare_exchange_strong_explicit(word, &v, (v + CB_GEN) & ~(CB_ASLEEP | CB_ROOM),
	                                            memory_order_relaxed, memory_order_relaxed))
		(void)syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* Parent: move what can move now (tx into the down ring, the up ring into
 * rx).  FO_OK; FO_EINVAL (an index of the child's out of bounds: corrupt);
 * FO_ENOMEM. */
static int ring_xfer(struct fo__child *c, struct fo__tx *tx, struct fo__rx *rx)
{
	struct fo__shm *s = c->shm;
	bool moved_in = false, moved_room = false;
	if (tx->off < tx->len) {
		/* acquire: the child's reads of the bytes it freed are done. */
		uint64_t used =
		    c->down_tail - atomic_load_explicit(&s->down.head, memory_order_acquire);
		if (used > FO__RING_BYTES)
			return FO_EINVAL;
		size_t n = FO__RING_BYTES - (size_t)used;
		if (n > tx->len - tx->off)
			n = tx->len - tx->off;
		if (n) {
			ring_in(s->down_data, c->down_tail, tx->data + tx->off, n);
			c->down_tail += n;
			tx->off += n;
			if (tx->off == tx->len)
				tx->off = tx->len = 0;
			/* release: the bytes before the index that shows them. */
			atomic_store_explicit(&s->down.tail, c->down_tail, memory_order_release);
			moved_in = true;
		}
	}
	/* acquire: the child's bytes before its index. */
	uint64_t tail = atomic_load_explicit(&s->up.tail, memory_order_acquire);
	uint64_t avail = tail - c->up_head;
	if (avail > FO__RING_BYTES)
		return FO_EINVAL;
	if (avail) {
		/* Copied once, then parsed from rx: the child cannot change what we check. */
		if (make_room(&rx->data, &rx->off, &rx->len, &rx->cap, (size_t)avail) != FO_OK)
			return FO_ENOMEM;
		ring_out(rx->data + rx->len, s->up_data, c->up_head, (size_t)avail);
		rx->len += (size_t)avail;
		c->up_head = tail;
		/* release: our reads of those bytes before the child reuses them. */
		atomic_store_explicit(&s->up.head, c->up_head, memory_order_release);
		moved_room = true;
	}
	if (moved_in || moved_room)
		cbell_ring(&s->cbell, moved_in, moved_room);
	return FO_OK;
}

/* Parent: sleep until the child moved an index we wait on, rang, closed its
 * end or exited (*@dead).  Returns 0, or -1 when poll failed. */
static int ring_sleep(struct fo__child *c, const struct fo__tx *tx, bool *dead)
{
	struct fo__shm *s = c->shm;
	/* relaxed + fence: Dekker with doorbell() (see there). */
	atomic_store_explicit(&s->psleep, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
	/* relaxed: only "did it move"; ring_xfer() reads them again with acquire. */
	bool go =
	    atomic_load_explicit(&s->up.tail, memory_order_relaxed) != c->up_head ||
	    (tx->len && c->down_tail - atomic_load_explicit(&s->down.head, memory_order_relaxed) <
	                    FO__RING_BYTES);
	int rc = 0;
	if (!go) {
		struct pollfd p[2] = {{.fd = c->fd, .events = POLLIN},
		                      {.fd = c->pidfd, .events = POLLIN}};
		int r = poll(p, 2, -1);
		if (r < 0 && errno != EINTR) {
			rc = -1;
		} else if (r > 0) {
			if (p[0].revents) { /* doorbell bytes, or EOF */
				char b[64];
				ssize_t n = recv(c->fd, b, sizeof(b), MSG_DONTWAIT);
				if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
				               errno != EINTR))
					*dead = true;
			}
			if (p[1].revents & POLLIN)
				*dead = true; /* its bytes, written before it exited, are in the
				                 rings */
		}
	}
	/* relaxed: a late doorbell after this only costs a spurious wake-up. */
	atomic_store_explicit(&s->psleep, 0, memory_order_relaxed);
	return rc;
}

enum ring_want { W_PASS, W_FRAME, W_FRAME_SENT, W_SENT };

/* Parent over the rings: fo__child_pump (W_PASS, W_FRAME) and fo__child_io
 * (W_FRAME_SENT, W_SENT). */
static int ring_io(struct fo__child *c, struct fo__tx *tx, struct fo__rx *rx, enum ring_want want)
{
	bool dead = false;
	for (;;) {
		int rc = ring_xfer(c, tx, rx);
		if (rc != FO_OK)
			return rc;
		bool ready = fo__rx_ready(rx), sent = tx->len == 0;
		if (want == W_PASS || (want == W_FRAME && ready) ||
		    (want == W_FRAME_SENT && ready && sent) || (want == W_SENT && sent))
			return FO_OK;
		if (dead) {
			tx->off = tx->len = 0; /* nobody will read them */
			return ready && want != W_SENT ? FO_OK : FO_ECLOSED;
		}
		if (ring_sleep(c, tx, &dead) < 0)
			return FO_ESYS;
	}
}

/* Child: sleep until the parent moved the index we wait on (@data: the down
 * ring's tail, else the up ring's head) and rang (design.md §13, "futex").
 * The caller looks again (a wake-up is only a hint). */
static void cend_wait(struct fo__cend *e, bool data)
{
	struct fo__shm *s = e->shm;
	/* relaxed: only the CAS below decides. */
	uint32_t v = atomic_load_explicit(&s->cbell, memory_order_relaxed), bits;
	do /* relaxed + the fence below: Dekker with cbell_ring(). */
		bits = (v & ~(CB_ASLEEP | CB_ROOM)) | CB_ASLEEP | (data ? 0 : CB_ROOM);
	while (!atomic_compare_exchange_weak_explicit(&s->cbell, &v, bits, memory_order_relaxed,
	                                              memory_order_relaxed));
	atomic_thread_fence(memory_order_seq_cst); /* our bits before the index re-read */
	/* relaxed: only "did it move"; the caller reads it again with acquire. */
	bool go = data ? atomic_load_explicit(&s->down.tail, memory_order_relaxed) != e->down_head
	               : e->up_tail - atomic_load_explicit(&s->up.head, memory_order_relaxed) <
	                     FO__RING_BYTES;
	if (!go)
		cbell_sleep(&s->cbell, bits); /* returns at once if the parent moved gen */
	/* Lower our bits if the parent did not (it then moved gen and woke us or
	 * will: a wake that finds nobody is a spurious wake-up of a later wait).
	 * relaxed: the word carries no data. */
	uint32_t now = bits;
	(void)atomic_compare_exchange_strong_explicit(&s->cbell, &now,
	                                              bits & ~(CB_ASLEEP | CB_ROOM),
	                                              memory_order_relaxed, memory_order_relaxed);
}

int fo__cend_flush(struct fo__cend *e, struct fo__tx *tx)
{
	struct fo__shm *s = e->shm;
	while (tx->off < tx->len) {
		/* acquire: the parent's reads of the bytes it freed are done. */
		uint64_t used =
		    e->up_tail - atomic_load_explicit(&s->up.head, memory_order_acquire);
		size_t n = FO__RING_BYTES - (size_t)used;
		if (n == 0) {
			cend_wait(e, false);
			continue;
		}
		if (n > tx->len - tx->off)
			n = tx->len - tx->off;
		ring_in(s->up_data, e->up_tail, tx->data + tx->off, n);
		e->up_tail += n;
		tx->off += n;
		/* release: the bytes before the index that shows them. */
		atomic_store_explicit(&s->up.tail, e->up_tail, memory_order_release);
		doorbell(&s->psleep, e->fd);
	}
	tx->off = tx->len = 0;
	return FO_OK;
}

int fo__cend_fill(struct fo__cend *e, struct fo__rx *rx)
{
	struct fo__shm *s = e->shm;
	for (;;) {
		/* acquire: the parent's bytes before its index. */
		uint64_t tail = atomic_load_explicit(&s->down.tail, memory_order_acquire);
		size_t avail = (size_t)(tail - e->down_head);
		if (avail) {
			if (make_room(&rx->data, &rx->off, &rx->len, &rx->cap, avail) != FO_OK)
				return FO_ENOMEM;
			ring_out(rx->data + rx->len, s->down_data, e->down_head, avail);
			rx->len += avail;
			e->down_head = tail;
			/* release: our reads of those bytes before the parent reuses them. */
			atomic_store_explicit(&s->down.head, tail, memory_order_release);
			doorbell(&s->psleep, e->fd); /* it may wait for room */
			return FO_OK;
		}
		cend_wait(e, true);
	}
}

int fo__child_io(struct fo__child *c, struct fo__tx *tx, struct fo__rx *rx, bool want_frame)
{
	if (c->shm)
		return ring_io(c, tx, rx, want_frame ? W_FRAME_SENT : W_SENT);
	bool dead = false, eof = false;
	for (;;) {
		if (!dead && tx_send_some(c->fd, tx) < 0)
			dead = true; /* EPIPE, ECONNRESET: the child closed its end */
		if (dead)
			tx->off = tx->len = 0;
		size_t miss = rx_missing(rx);
		if (miss == 0 && rx->len - rx->off >= FO__FRAME_HDR && tx->len == 0)
			return FO_OK; /* a complete (or corrupt: the parser says) frame */
		if (!want_frame && tx->len == 0)
			return FO_OK;
		if (eof)
			return FO_ECLOSED;
		ssize_t n = rx_recv(c->fd, rx, MSG_DONTWAIT);
		if (n > 0)
			continue;
		if (n == 0) {
			eof = true; /* unsent bytes cannot be delivered any more */
			tx->off = tx->len = 0;
			continue;
		}
		if (errno == ENOMEM)
			return FO_ENOMEM;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			eof = true;
			continue;
		}
		if (dead) {
			/* The child is gone and nothing more is buffered. */
			return FO_ECLOSED;
		}
		int r = child_wait(c, tx);
		if (r < 0)
			return FO_ESYS;
		if (r > 0) {
			/* Exited: its fds were closed before the pidfd turned readable,
			 * so everything it sent is in our socket.  One more receive
			 * (above) finds it, then EOF or nothing. */
			dead = true;
			n = rx_recv(c->fd, rx, MSG_DONTWAIT);
			if (n > 0) {
				continue;
			}
			if (n < 0 && errno == ENOMEM)
				return FO_ENOMEM;
			tx->off = tx->len = 0;
			eof = true;
		}
	}
}

int fo__child_pump(struct fo__child *c, struct fo__tx *tx, struct fo__rx *rx, bool block)
{
	if (c->shm)
		return ring_io(c, tx, rx, block ? W_FRAME : W_PASS);
	bool dead = false;
	for (;;) {
		if (!dead && tx_send_some(c->fd, tx) < 0)
			dead = true;
		if (block && fo__rx_ready(rx))
			return FO_OK; /* buffered already: no receive needed */
		ssize_t n = rx_recv(c->fd, rx, MSG_DONTWAIT);
		if (n > 0) {
			if (!block || fo__rx_ready(rx))
				return FO_OK;
			continue;
		}
		if (n < 0 && errno == ENOMEM)
			return FO_ENOMEM;
		if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) || dead)
			return fo__rx_ready(rx) ? FO_OK : FO_ECLOSED;
		if (!block)
			return FO_OK;
		int r = child_wait(c, tx);
		if (r < 0)
			return FO_ESYS;
		/* Exited: the next receive drains what it sent, then `dead` ends
		 * the wait (a grandchild may still hold its end open). */
		if (r > 0)
			dead = true;
	}
}

int fo__rx_try_fill(int fd, struct fo__rx *rx)
{
	ssize_t n = rx_recv(fd, rx, MSG_DONTWAIT);
	if (n > 0)
		return FO_OK;
	if (n == 0 || errno == ECONNRESET) /* reset: it closed with our bytes unread */
		return FO_END;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return FO_EMPTY;
	return errno == ENOMEM ? FO_ENOMEM : FO_ESYS;
}

bool fo__rx_ready(const struct fo__rx *rx)
{
	return rx->len - rx->off >= FO__FRAME_HDR && rx_missing(rx) == 0;
}
