/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/* fanout/fanout.h - umbrella header: includes every module header. */
#ifndef FANOUT_FANOUT_H
#define FANOUT_FANOUT_H

#include <fanout/export.h>
#include <fanout/status.h>
#include <fanout/alloc.h>
#include <fanout/stream.h>

#endif /* FANOUT_FANOUT_H */
