/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * status.c - fo_strerror() and fo_status_name(), generated from
 * FO_STATUS_MAP; fo_fail() and the capture of a user callback's failure
 * (code, errno, message) into an fo_error.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#include "internal.h"

const char *fo_strerror(int code)
{
	switch (code) {
#define FO__STATUS_MSG(name, value, msg) \
	case value:                      \
		return msg;
		FO_STATUS_MAP(FO__STATUS_MSG)
#undef FO__STATUS_MSG
	}
	return FO_IS_USER(code) ? "user-defined error" : "unknown status";
}

const char *fo_status_name(int code)
{
	static _Thread_local char buf[32];

	switch (code) {
#define FO__STATUS_NAME(name, value, msg) \
	case value:                       \
		return #name;
		FO_STATUS_MAP(FO__STATUS_NAME)
#undef FO__STATUS_NAME
	}
	if (FO_IS_USER(code))
		snprintf(buf, sizeof(buf), "FO_USER(%d)", FO_USER_NUM(code));
	else
		snprintf(buf, sizeof(buf), "FO_UNKNOWN(%d)", code);
	return buf;
}

/* The message fo_fail() recorded on this thread, for the callback the
 * library is running now (fo__cb_begin() clears it before each call). */
static _Thread_local struct {
	bool set;
	int code;
	char msg[FO__FAIL_MSG_MAX];
} pending;

int fo_fail(int code, const char *fmt, ...)
{
	int saved = errno; /* so `return fo_fail(FO_ESYS, ...)` keeps errno */
	va_list ap;

	pending.set = fmt != NULL;
	pending.code = code;
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(pending.msg, sizeof(pending.msg), fmt, ap);
		va_end(ap);
	}
	errno = saved;
	return code;
}

void fo__cb_begin(void)
{
	pending.set = false;
}

const char *fo__cb_message(int code)
{
	return pending.set && pending.code == code ? pending.msg : NULL;
}

int fo__cb_capture(int code, fo_error *e, char **owned)
{
	int err = errno; /* first: nothing below may run before it is read */
	const char *msg = fo__cb_message(code);

	e->code = code;
	e->sys_errno = code == FO_ESYS ? err : 0;
	e->message = fo_strerror(code);
	*owned = NULL;
	if (msg && (*owned = fo__strdup(msg)) != NULL)
		e->message = *owned;
	pending.set = false;
	return code;
}
