/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * fuzz_common.h - helpers shared by the libFuzzer harnesses (tests/fuzz/).
 *
 *   fz_in       a byte decoder: u8/u16/pick, 0 once the input is used up
 *   FZ_CHECK    a failed check prints the step and aborts (libFuzzer saves
 *               the input as crash-*; replay: ./fuzz_x crash-*)
 *   fz_trace()  FO_FUZZ_TRACE=1: the harness prints each operation
 *   fz_known()  FO_FUZZ_KNOWN="1,6,7" turns off the checks that find the
 *               listed bugs of issue 12 while their fixes are not merged
 *               (each check names its bug; see docs/testing.md)
 *
 * Without libFuzzer (FZ_REPLAY_MAIN) the harness gets a main() that runs
 * each file or directory given on the command line once: the corpus as a
 * regression test in every build (gcc, TSan).
 */
#ifndef FO_FUZZ_COMMON_H
#define FO_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fanout/fanout.h>

typedef struct fz_in {
	const uint8_t *p;
	size_t n;
} fz_in;

static inline uint8_t fz_u8(fz_in *in)
{
	if (in->n == 0)
		return 0;
	in->n--;
	return *in->p++;
}

static inline uint16_t fz_u16(fz_in *in)
{
	uint16_t lo = fz_u8(in);
	return (uint16_t)(lo | (uint16_t)fz_u8(in) << 8);
}

/* A value in [0, n). */
static inline unsigned fz_pick(fz_in *in, unsigned n)
{
	return n ? fz_u8(in) % n : 0;
}

static const char *fz_step = "";
static unsigned long fz_nstep;

#define FZ_CHECK(cond, ...)                                                                 \
	do {                                                                                \
		if (!(cond)) {                                                              \
			fprintf(stderr,                                                     \
			        "FUZZ CHECK FAILED %s:%d: %s\n  step %lu (%s): ", __FILE__, \
			        __LINE__, #cond, fz_nstep, fz_step);                        \
			fprintf(stderr, __VA_ARGS__);                                       \
			fprintf(stderr, "\n");                                              \
			abort();                                                            \
		}                                                                           \
	} while (0)

/* Is known bug @n of issue 12 listed in FO_FUZZ_KNOWN (its check skipped)? */
static inline bool fz_known(int n)
{
	static int cached = -1;
	static char list[64];
	if (cached < 0) {
		const char *e = getenv("FO_FUZZ_KNOWN");
		snprintf(list, sizeof(list), ",%s,", e ? e : "");
		cached = 1;
	}
	char key[16];
	snprintf(key, sizeof(key), ",%d,", n);
	return strstr(list, key) != NULL;
}

static inline bool fz_trace(void)
{
	static int on = -1;
	if (on < 0)
		on = getenv("FO_FUZZ_TRACE") != NULL;
	return on;
}

#ifdef FZ_REPLAY_MAIN
#include <dirent.h>
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fz_run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		return 1;
	}
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (len == cap) {
			cap = cap ? cap * 2 : 4096;
			buf = realloc(buf, cap);
			if (!buf)
				abort();
		}
		size_t r = fread(buf + len, 1, cap - len, f);
		if (r == 0)
			break;
		len += r;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(buf, len);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	int runs = 0, bad = 0;
	for (int i = 1; i < argc; i++) {
		DIR *d = opendir(argv[i]);
		if (!d) {
			bad |= fz_run_file(argv[i]);
			runs++;
			continue;
		}
		struct dirent *e;
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			char p[4096];
			snprintf(p, sizeof(p), "%s/%s", argv[i], e->d_name);
			bad |= fz_run_file(p);
			runs++;
		}
		closedir(d);
	}
	printf("%s: replayed %d input(s)\n", argv[0], runs);
	return bad || runs == 0;
}
#endif

#endif /* FO_FUZZ_COMMON_H */
