/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/* cli/util.c - helpers shared by the subcommands of `fanout`. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fanout/version.h>

extern char **environ;

void cli_usage_error(const char *sub, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (sub)
		fprintf(stderr, "fanout %s: %s (see 'fanout %s --help')\n", sub, msg, sub);
	else
		fprintf(stderr, "fanout: %s (see 'fanout --help')\n", msg);
	exit(CLI_EXIT_USAGE);
}

void cli_warn(int err, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (err)
		fprintf(stderr, "fanout: %s: %s\n", msg, strerror(err));
	else
		fprintf(stderr, "fanout: %s\n", msg);
}

long long cli_parse_int(const char *sub, const char *flag, const char *s, long long lo,
                        long long hi)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (!*s || *end || errno || v < lo || v > hi)
		cli_usage_error(sub, "%s wants an integer from %lld to %lld, not '%s'", flag, lo,
		                hi, s);
	return v;
}

double cli_parse_seconds(const char *sub, const char *flag, const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (!*s || *end || errno || !isfinite(v) || v <= 0 || v > 1e9)
		cli_usage_error(sub, "%s wants a positive number of seconds, not '%s'", flag, s);
	return v;
}

void cli_std_fds(void)
{
	for (int fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) >= 0)
			continue;
		int n = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
		if (n >= 0 && n != fd) {
			dup2(n, fd);
			close(n);
		}
	}
}

int cli_writev_all(int fd, struct iovec *iov, int cnt)
{
	while (cnt > 0) {
		ssize_t n = writev(fd, iov, cnt > IOV_MAX ? IOV_MAX : cnt);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		while (cnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

int cli_write_all(int fd, const void *buf, size_t len)
{
	struct iovec iov = {(void *)buf, len};
	return len ? cli_writev_all(fd, &iov, 1) : 0;
}

bool cli_buf_reserve(cli_buf *b, size_t more)
{
	if (b->cap - b->len >= more)
		return true;
	size_t cap = b->cap ? b->cap : 256;
	while (cap - b->len < more) {
		if (cap > SIZE_MAX / 2)
			return false;
		cap *= 2;
	}
	char *p = realloc(b->p, cap);
	if (!p)
		return false;
	b->p = p;
	b->cap = cap;
	return true;
}

bool cli_buf_add(cli_buf *b, const void *p, size_t n)
{
	if (n == 0)
		return true;
	if (!cli_buf_reserve(b, n))
		return false;
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return true;
}

int cli_spawn(pid_t *pid, char *const argv[], int in, int out, int err, bool pgroup)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, dfl;
	short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
	int rc;

	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE); /* ignored in fanout; ignored signals survive exec */
	if ((rc = posix_spawn_file_actions_init(&fa)))
		return rc;
	if ((rc = posix_spawnattr_init(&at))) {
		posix_spawn_file_actions_destroy(&fa);
		return rc;
	}
	/* Every other descriptor of fanout is close-on-exec, so the child gets just these. */
	if (in >= 0)
		rc = posix_spawn_file_actions_adddup2(&fa, in, 0);
	if (!rc && out >= 0)
		rc = posix_spawn_file_actions_adddup2(&fa, out, 1);
	if (!rc && err >= 0)
		rc = posix_spawn_file_actions_adddup2(&fa, err, 2);
	if (pgroup) {
		flags |= POSIX_SPAWN_SETPGROUP;
		if (!rc)
			rc = posix_spawnattr_setpgroup(&at, 0);
	}
	if (!rc)
		rc = posix_spawnattr_setflags(&at, flags);
	if (!rc)
		rc = posix_spawnattr_setsigmask(&at, &none);
	if (!rc)
		rc = posix_spawnattr_setsigdefault(&at, &dfl);
	if (!rc)
		rc = posix_spawnp(pid, argv[0], &fa, &at, argv, environ);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	return rc;
}

int cli_wait_code(int wstatus)
{
	if (WIFEXITED(wstatus))
		return WEXITSTATUS(wstatus);
	if (WIFSIGNALED(wstatus))
		return 128 + WTERMSIG(wstatus);
	return 1;
}

const char *cli_version(void)
{
	return fo_version(); /* the library's own version, not the command's build */
}
