/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/**
 * cli/cli.h - shared helpers of the `fanout` command: usage errors, number
 * parsing, whole writes, child processes started with posix_spawn().
 */
#ifndef FANOUT_CLI_H
#define FANOUT_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Exit status for bad flags and bad values (one line on stderr). */
#define CLI_EXIT_USAGE 2

int cli_tee(int argc, char **argv);
int cli_map(int argc, char **argv);
int cli_pub(int argc, char **argv); /* cli/bridge.c, with the Redis or NATS bridge */
int cli_sub(int argc, char **argv);

/* Prints "fanout SUB: <message>  (see 'fanout SUB --help')" and exits 2. */
_Noreturn void cli_usage_error(const char *sub, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints "fanout: <message>" on stderr (errno text appended when @err != 0). */
void cli_warn(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parse an integer in [lo, hi] or a positive number of seconds; usage error otherwise. */
long long cli_parse_int(const char *sub, const char *flag, const char *s, long long lo,
                        long long hi);
double cli_parse_seconds(const char *sub, const char *flag, const char *s);

/* Make sure descriptors 0, 1 and 2 are open (on /dev/null if they are not). */
void cli_std_fds(void);

/* Write all of @iov (updated in place); retries EINTR and short writes.
 * Returns 0, or an errno value (EPIPE when the reader is gone). */
int cli_writev_all(int fd, struct iovec *iov, int cnt);
/* Step *@iov past @n written bytes (the partly written entry is updated in place).
 * Returns the entries left of @cnt. */
int cli_iov_advance(struct iovec **iov, int cnt, size_t n);
int cli_write_all(int fd, const void *buf, size_t len);

/* A growable byte buffer. */
typedef struct cli_buf {
	char *p;
	size_t len, cap;
} cli_buf;
/* Make room for @more bytes after len; false when out of memory. */
bool cli_buf_reserve(cli_buf *b, size_t more);
bool cli_buf_add(cli_buf *b, const void *p, size_t n);

/**
 * cli_spawn() - start @argv as posix_spawnp() would (PATH search, no shell), with
 * @in/@out/@err as descriptors 0/1/2 (-1: inherit), in a new process group when
 * @pgroup, with every caught signal and SIGPIPE (fanout ignores it) back to its
 * default disposition and an empty mask.  On Linux a CLONE_VM|CLONE_VFORK child on
 * a buffer of the caller's stack, the command's path looked up once (util.c says
 * why); posix_spawnp() elsewhere and under ThreadSanitizer.  Handlers installed
 * after the first call are not reset in the child before its exec.
 * Returns 0 and sets *@pid, or the errno value of the exec (ENOENT: not found;
 * EACCES: not executable) or of clone().  Threads: any; blocks until the child
 * has exec'd.
 */
int cli_spawn(pid_t *pid, char *const argv[], int in, int out, int err, bool pgroup);

/* Shell status of a wait status: the exit code, or 128 + the signal. */
int cli_wait_code(int wstatus);

/* The version string of the library. */
const char *cli_version(void);

#endif /* FANOUT_CLI_H */
