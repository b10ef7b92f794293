/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/* fanout/fanout.h - umbrella header: includes every module header. */
#ifndef FANOUT_FANOUT_H
#define FANOUT_FANOUT_H

#include <fanout/export.h>
#include <fanout/version.h>
#include <fanout/status.h>
#include <fanout/alloc.h>
#include <fanout/codec.h>
#include <fanout/stream.h>
#include <fanout/iter.h>
#include <fanout/adapt.h>
#include <fanout/gate.h>
#include <fanout/feed.h>
#include <fanout/join.h>
#include <fanout/pmap.h>
#include <fanout/pipeline.h>
#include <fanout/preload.h>
#include <fanout/task.h>

#endif /* FANOUT_FANOUT_H */
