/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/* cli/util.c - helpers shared by the subcommands of `fanout`. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
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

int cli_iov_advance(struct iovec **iov, int cnt, size_t n)
{
	struct iovec *v = *iov;
	while (cnt > 0 && n >= v->iov_len) {
		n -= v->iov_len;
		v++;
		cnt--;
	}
	if (cnt > 0) {
		v->iov_base = (char *)v->iov_base + n;
		v->iov_len -= n;
	}
	*iov = v;
	return cnt;
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
		cnt = cli_iov_advance(&iov, cnt, (size_t)n);
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

/* ThreadSanitizer's runtime cannot follow a child that shares our memory on its own
 * stack (its CHECKs fail in the child): those builds keep posix_spawn. */
#if defined(__SANITIZE_THREAD__)
#define CLI_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CLI_TSAN 1
#endif
#endif

#if defined(__linux__) && defined(SYS_clone3) && !defined(FANOUT_CLI_POSIX_SPAWN) && \
    !defined(CLI_TSAN)
/*
 * Jobs start the way posix_spawn() starts them (a child sharing our memory,
 * we wait until it has exec'd), minus three costs that glibc's posix_spawnp
 * pays per call and that showed in `fanout map`'s profile (bench B17):
 *  - a fresh mmap'd stack for the child, then its munmap: page faults in the
 *    child and a TLB shoot-down across our threads' CPUs per job.  Here the
 *    child runs on a buffer in the caller's (already mapped) stack frame;
 *  - the PATH search: one failing execve per directory before the command's
 *    own.  Here the path is resolved once (cached) and the child exec's it;
 *  - 64 sigaction calls to find handlers to reset.  Here the caught signals
 *    are listed once, at the first spawn (cli installs its handlers first).
 * The child only makes raw system calls (no libc state, no sanitizer
 * interceptor runs in it) and reports a failure through spawn_args.err,
 * which the caller reads when clone() returns (CLONE_VFORK).
 */
#include <pthread.h>
#include <sys/stat.h>

#define SPAWN_STACK  ((size_t)16 * 1024) /* the child's: a PATH_MAX buffer and little else */
#define SIGSET_BYTES (_NSIG / 8)         /* the kernel's sigset_t */
#define PATH_CACHE   16                  /* command names resolved once */

struct spawn_args {
	const char *path; /* resolved file, or NULL: search pathenv */
	char *const *argv;
	const char *pathenv; /* $PATH, for the search in the child */
	int fd[3];
	bool pgroup;
	volatile int err; /* written by the child when it could not exec */
};

static struct {
	pthread_once_t once;
	int caught[_NSIG];
	int ncaught;
	pthread_mutex_t mu;
	int n;
	char *name[PATH_CACHE], *full[PATH_CACHE];
} g_spawn = {.once = PTHREAD_ONCE_INIT, .mu = PTHREAD_MUTEX_INITIALIZER};

static void spawn_init(void)
{
	/* Signals with a handler: a handler must not run in the child (it shares our memory)
	 * between the unblocking of signals and the exec.  SIGPIPE: ignored here, and an
	 * ignored signal stays ignored across exec. */
	for (int sig = 1; sig < _NSIG; sig++) {
		struct sigaction sa;
		if (sigaction(sig, NULL, &sa) == 0 &&
		    (sig == SIGPIPE || (sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN)))
			g_spawn.caught[g_spawn.ncaught++] = sig;
	}
}

/* The file execvp() would run for @name (cached), or NULL: let the child search. */
static const char *spawn_resolve(const char *name, const char *pathenv)
{
	const char *found = NULL;

	if (strchr(name, '/'))
		return name;
	if (!pathenv || strlen(name) > NAME_MAX)
		return NULL;
	pthread_mutex_lock(&g_spawn.mu);
	for (int i = 0; i < g_spawn.n && !found; i++)
		if (!strcmp(g_spawn.name[i], name))
			found = g_spawn.full[i];
	for (const char *d = pathenv; !found && g_spawn.n < PATH_CACHE;) {
		const char *e = strchrnul(d, ':');
		char buf[PATH_MAX];
		struct stat st;
		int len =
		    snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(e - d), d, e > d ? "/" : "", name);
		if (len > 0 && (size_t)len < sizeof(buf) && access(buf, X_OK) == 0 &&
		    stat(buf, &st) == 0 && S_ISREG(st.st_mode)) {
			char *n = strdup(name), *f = strdup(buf);
			if (n && f) {
				g_spawn.name[g_spawn.n] = n;
				g_spawn.full[g_spawn.n++] = f;
				found = f;
			} else {
				free(n);
				free(f);
			}
			break;
		}
		if (!*e)
			break;
		d = e + 1;
	}
	pthread_mutex_unlock(&g_spawn.mu);
	return found;
}

#if defined(__clang__) || defined(__GNUC__)
__attribute__((no_sanitize("address", "thread", "undefined")))
#endif
static int
spawn_child(void *arg)
{
	struct spawn_args *a = arg;
	long zero_act[8] = {0}; /* a kernel sigaction: SIG_DFL, no flags, empty mask */
	uint64_t none[2] = {0, 0};
	long r = 0;

	for (int i = 0; i < g_spawn.ncaught; i++)
		syscall(SYS_rt_sigaction, g_spawn.caught[i], zero_act, NULL, SIGSET_BYTES);
	if (a->pgroup && syscall(SYS_setpgid, 0, 0) < 0)
		goto fail;
	for (int fd = 0; fd < 3; fd++)
		if (a->fd[fd] >= 0 && syscall(SYS_dup3, a->fd[fd], fd, 0) < 0)
			goto fail;
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, none, NULL, SIGSET_BYTES);
	if (a->path) {
		syscall(SYS_execve, a->path, a->argv, environ);
		if (errno != ENOENT || a->path == a->argv[0])
			goto fail;
	}
	/* execvp's search (no libc calls here): EACCES if a candidate was not executable. */
	const char *name = a->argv[0], *d = a->pathenv ? a->pathenv : "/bin:/usr/bin";
	char buf[PATH_MAX];
	bool eacces = false;
	size_t nlen = 0;
	while (name[nlen])
		nlen++;
	errno = ENOENT;
	while (nlen && nlen <= NAME_MAX) {
		size_t dlen = 0, k = 0;
		while (d[dlen] && d[dlen] != ':')
			dlen++;
		if (dlen + nlen + 2 <= sizeof(buf)) {
			for (; k < dlen; k++)
				buf[k] = d[k];
			if (dlen)
				buf[k++] = '/';
			for (size_t i = 0; i <= nlen; i++)
				buf[k + i] = name[i];
			syscall(SYS_execve, buf, a->argv, environ);
			eacces |= errno == EACCES;
			if (errno != ENOENT && errno != ENOTDIR && errno != EACCES)
				goto fail;
		}
		if (!d[dlen])
			break;
		d += dlen + 1;
	}
	if (eacces)
		errno = EACCES;
fail:
	a->err = errno ? errno : ENOEXEC;
	for (;;)
		r = syscall(SYS_exit, 127);
	return (int)r;
}

int cli_spawn(pid_t *pid, char *const argv[], int in, int out, int err, bool pgroup)
{
	/* The child's stack: in this frame, which waits (CLONE_VFORK) until the child exec's. */
	_Alignas(64) char stack[SPAWN_STACK];
	uint64_t all[2] = {~(uint64_t)0, ~(uint64_t)0}, old[2];
	const char *pathenv = getenv("PATH");
	struct spawn_args a = {
	    .argv = argv, .pathenv = pathenv, .fd = {in, out, err}, .pgroup = pgroup, .err = 0};

	pthread_once(&g_spawn.once, spawn_init);
	a.path = spawn_resolve(argv[0], pathenv);
	/* Every signal blocked (glibc's own included) until the child has reset the caught
	 * ones: no handler of ours may run in the child. */
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, all, old, SIGSET_BYTES);
	int saved = errno;
	pid_t p = clone(spawn_child, stack + sizeof(stack), CLONE_VM | CLONE_VFORK | SIGCHLD, &a);
	int cerr = p < 0 ? errno : a.err;
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, old, NULL, SIGSET_BYTES);
	errno = saved;
	if (p < 0)
		return cerr;
	if (cerr) {
		while (waitpid(p, NULL, 0) < 0 && errno == EINTR)
			;
		return cerr;
	}
	*pid = p;
	return 0;
}
#else
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
#endif

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
