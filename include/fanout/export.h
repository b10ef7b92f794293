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

/* A flexible array member in a public struct (fo_zip_tuple, fo_bytes) is standard C99/C11
 * but a GNU extension in C++, where -Wpedantic would warn in every consumer that includes
 * the header: the member is wrapped in FO__FLEX_BEGIN / FO__FLEX_END, which silence that
 * one warning for that one declaration in C++ and are empty in C. */
#if defined(__cplusplus) && defined(__GNUC__)
#define FO__FLEX_BEGIN \
	_Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wpedantic\"")
#define FO__FLEX_END _Pragma("GCC diagnostic pop")
#else
#define FO__FLEX_BEGIN
#define FO__FLEX_END
#endif

#endif /* FANOUT_EXPORT_H */
