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
 */
#ifndef FANOUT_STATUS_H
#define FANOUT_STATUS_H

#include <fanout/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, value, message) */
#define FO_STATUS_MAP(X)                                               \
	X(FO_OK, 0, "success")                                         \
	X(FO_END, 1, "end of stream")                                  \
	X(FO_EMPTY, 2, "nothing ready now")                            \
	X(FO_FULL, 3, "stream is full")                                \
	X(FO_TIMEDOUT, 4, "timed out")                                 \
	X(FO_LAGGED, 5, "passive cursor was lapped and skipped items") \
	X(FO_FAILED, 6, "source ended with an error")                  \
	X(FO_NEED_WORK, 7, "completion set asks for more work")        \
	X(FO_ECLOSED, -1, "object already closed")                     \
	X(FO_EINVAL, -2, "invalid argument")                           \
	X(FO_ENOMEM, -3, "out of memory")                              \
	X(FO_ECANCELED, -4, "operation canceled")                      \
	X(FO_ESYS, -5, "system call failed")                           \
	X(FO_EBUSY, -6, "object is busy")

enum fo_status {
#define FO__STATUS_ENUM(name, value, msg) name = (value),
	FO_STATUS_MAP(FO__STATUS_ENUM)
#undef FO__STATUS_ENUM
};

/**
 * fo_error - a failure that travels with a stream, a result or a future.
 * @code:      an FO_* status (for stream failures, the code given to
 *             fo_stream_fail()).
 * @sys_errno: errno when @code is FO_ESYS, else 0.
 * @message:   human-readable text, owned by the object the error came
 *             from; valid as long as that object (or the cursor that
 *             reported it) is open.  Never NULL.
 */
typedef struct fo_error {
	int code;
	int sys_errno;
	const char *message;
} fo_error;

/**
 * fo_strerror() - a short English description of a status code.
 * @code: any int.
 * Returns: a static string; unknown codes give "unknown status".
 * Threads: any thread, any time.  Never fails.
 */
FO_API const char *fo_strerror(int code);

/**
 * fo_status_name() - the code's identifier, e.g. "FO_ECLOSED".
 * @code: any int.
 * Returns: a static string; unknown codes give "FO_UNKNOWN".
 * Threads: any thread, any time.  Never fails.
 */
FO_API const char *fo_status_name(int code);

#ifdef __cplusplus
}
#endif
#endif /* FANOUT_STATUS_H */
