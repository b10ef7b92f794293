/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/* status.c - fo_strerror() and fo_status_name(), generated from FO_STATUS_MAP. */
#include <fanout/status.h>

const char *fo_strerror(int code)
{
	switch (code) {
#define FO__STATUS_MSG(name, value, msg) \
	case value:                      \
		return msg;
		FO_STATUS_MAP(FO__STATUS_MSG)
#undef FO__STATUS_MSG
	}
	return "unknown status";
}

const char *fo_status_name(int code)
{
	switch (code) {
#define FO__STATUS_NAME(name, value, msg) \
	case value:                       \
		return #name;
		FO_STATUS_MAP(FO__STATUS_NAME)
#undef FO__STATUS_NAME
	}
	return "FO_UNKNOWN";
}
