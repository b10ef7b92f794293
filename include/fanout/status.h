/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/**
 * fanout/status.h - status codes shared by every fanout call.
 *
 * Every function that can fail returns an int holding one of the codes
 * below (never errno).  The codes are generated from the one list
 * FO_STATUS_MAP, so the enum, fo_strerror() and fo_status_name() cannot
 * disagree.  FO_OK is 0; informational outcomes (FO_END ... FO_NEED_WORK)
 * are positive, errors (FO_E*) are negative, so `rc < 0` means "the call
 * was refused and nothing changed".
 *
 * Three disjoint ranges:
 *   library codes   0, 1001..1007 (informational), -1001..-1099 (errors)
 *   user codes      FO_USER(n) = -100000 - n, n in 0..FO_USER_MAX
 *   anything else   a foreign value (a callback returned -1, 1, -EIO ...):
 *                   kept as it is and named "FO_UNKNOWN(value)", never
 *                   reinterpreted as a library code.
 * Library codes stay away from small integers on purpose: a callback that
 * returns C's usual -1 or 1 must not read as FO_ECLOSED or FO_END.  Always
 * compare against the names; the numbers are not part of the API.
 *
 * Timeouts, one convention for every public timed call (fo_*_timed_*,
 * fo_stream_wait_room): an int64_t timeout_ns, relative, in nanoseconds
 * (CLOCK_MONOTONIC); 0 = do not wait (answer at once: FO_TIMEDOUT, or
 * FO_FULL for fo_stream_wait_room, when nothing is ready); negative = no
 * limit, exactly as the call without a timeout.  Options that bound work
 * rather than a wait (fo_pmap_opts.timeout_ns: 0 = none) and the source
 * callback fo_iter_next_fn (an absolute deadline, shared by nested pulls)
 * say so where they are declared.
 *
 * Values that are not status codes, in one place:
 *   - fo_*_fd() (fo_cursor_fd, fo_iter_fd, fo_future_fd, fo_waitfor_fd)
 *     return a file descriptor (>= 0) or a negative FO_E* code.
 *   - fo_*_arm() (fo_cursor_arm, fo_iter_arm, fo_future_arm,
 *     fo_waitfor_arm) return 1: something is ready, read again (nothing was
 *     armed); 0: armed, sleep until the descriptor polls readable (or the
 *     notify hook runs); or a negative FO_E* code.  1 is not FO_END and 0
 *     means "armed", not "done".
 *   - Counts (size_t, uint64_t, int64_t credits) and bool predicates are
 *     never codes.
 *   - FO_END from fo_future_cancel() means "already resolved, nothing
 *     changed": the status of a future that has ended, not an error.
 */
#ifndef FANOUT_STATUS_H
#define FANOUT_STATUS_H

#include <fanout/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, value, message) */
#define FO_STATUS_MAP(X)                                                  \
	X(FO_OK, 0, "success")                                            \
	X(FO_END, 1001, "end of stream")                                  \
	X(FO_EMPTY, 1002, "nothing ready now")                            \
	X(FO_FULL, 1003, "stream is full")                                \
	X(FO_TIMEDOUT, 1004, "timed out")                                 \
	X(FO_LAGGED, 1005, "passive cursor was lapped and skipped items") \
	X(FO_FAILED, 1006, "source ended with an error")                  \
	X(FO_NEED_WORK, 1007, "completion set asks for more work")        \
	X(FO_ECLOSED, -1001, "object already closed")                     \
	X(FO_EINVAL, -1002, "invalid argument")                           \
	X(FO_ENOMEM, -1003, "out of memory")                              \
	X(FO_ECANCELED, -1004, "operation canceled")                      \
	X(FO_ESYS, -1005, "system call failed")                           \
	X(FO_EBUSY, -1006, "object is busy")

enum fo_status {
#define FO__STATUS_ENUM(name, value, msg) name = (value),
	FO_STATUS_MAP(FO__STATUS_ENUM)
#undef FO__STATUS_ENUM
};

/**
 * FO_USER() - user error code number @n (0 <= n <= FO_USER_MAX).
 *
 * For user callbacks (iterator sources, map and pmap functions, tasks,
 * codecs) that fail with a reason of their own: `return FO_USER(3);`, or
 * with a message, `return fo_fail(FO_USER(3), "line %zu: bad field", n);`.
 * The code reaches the reader unchanged, in the fo_error at that item's
 * place (also across a process boundary).  User codes are negative (an
 * error, like FO_E*) and never equal a library code.
 */
#define FO_USER_MAX       999999999
#define FO_USER(n)        (-100000 - (int)(n))
#define FO_IS_USER(code)  ((code) <= -100000 && (code) >= -100000 - FO_USER_MAX)
#define FO_USER_NUM(code) (-100000 - (code))

/**
 * fo_error - a failure that travels with a stream, a result or a future.
 * @code:      an FO_* status (for stream failures, the code given to
 *             fo_stream_fail()).
 * @sys_errno: errno when @code is FO_ESYS (also when a user callback
 *             returned FO_ESYS: errno as the callback left it), else 0.
 * @message:   human-readable text, owned by the object the error came
 *             from; valid as long as that object (or the cursor that
 *             reported it) is open.  Never NULL.  For a callback's
 *             failure: the text it gave fo_fail(), else fo_strerror(code).
 */
typedef struct fo_error {
	int code;
	int sys_errno;
	const char *message;
} fo_error;

/**
 * fo_strerror() - a short English description of a status code.
 * @code: any int.
 * Returns: a static string; FO_USER(n) gives "user-defined error", other
 * unknown codes "unknown status".
 * Threads: any thread, any time.  Never fails.
 */
FO_API const char *fo_strerror(int code);

/**
 * fo_status_name() - the code's identifier, e.g. "FO_ECLOSED".
 * @code: any int.
 * Returns: a static string for library codes; "FO_USER(n)" for user codes
 * and "FO_UNKNOWN(v)" for any other value, formatted into a thread-local
 * buffer that stays valid until this thread's next fo_status_name() call.
 * Threads: any thread, any time.  Never fails.
 */
FO_API const char *fo_status_name(int code);

/**
 * fo_fail() - fail the current callback with @code and a message.
 * @code: the code to return: FO_USER(n) or a library error code.
 * @fmt:  printf-style message (NULL: no message); formatted and copied
 *        (up to 1023 bytes) into a thread-local slot.
 *
 * Call from inside a user callback that the library invokes (an iterator
 * source, a map/filter/pmap function, a task, a codec) and return its
 * result: `return fo_fail(FO_USER(2), "row %d: bad id", row);`.  The
 * library attaches the message to the fo_error it records for that call
 * (the failing item's place in a map, the future of a task, the end of a
 * source), also across a process boundary.  A message recorded outside a
 * callback, or for a different code than the callback returns, is ignored.
 * errno is preserved, so `return fo_fail(FO_ESYS, "open %s", path);`
 * after a failed open() keeps its errno in the error's sys_errno.
 * Returns: @code.
 * Threads: any thread; the message belongs to the calling thread.
 */
FO_API int fo_fail(int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#ifdef __cplusplus
}
#endif
#endif /* FANOUT_STATUS_H */
