/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/* version.c - fo_version(): the version this library was built as (fanout/version.h). */
#include <fanout/version.h>

const char *fo_version(void)
{
	return FO_VERSION_STRING;
}
