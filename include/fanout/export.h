/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/* fanout/export.h - the one visibility macro.  The library is built with
 * -fvisibility=hidden; only declarations marked FO_API are exported. */
#ifndef FANOUT_EXPORT_H
#define FANOUT_EXPORT_H

#if defined(FO_BUILDING_LIBRARY) && defined(__GNUC__)
#define FO_API __attribute__((visibility("default")))
#else
#define FO_API
#endif

#endif /* FANOUT_EXPORT_H */
