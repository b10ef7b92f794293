/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/**
 * fanout/codec.h - one way to turn an item into bytes and back.
 *
 * Process backends (pmap, tasks, preload), the bridges to Redis and NATS and
 * the `fanout` command move items across a boundary as bytes.  A codec is a
 * pair of callbacks plus the destructor of the items its decode creates:
 *
 *     fo_buf b;
 *     fo_buf_init(&b);
 *     fo_codec c = fo_codec_cstr();
 *     fo_codec_encode(&c, "hello", &b);          // appends 5 bytes
 *     char *copy;
 *     fo_codec_decode(&c, b.data, b.len, (void **)&copy);
 *     fo_codec_free_item(&c, copy);
 *     fo_buf_fini(&b);
 *
 * Built-ins: fo_codec_bytes() (items are fo_bytes), fo_codec_cstr()
 * (NUL-terminated strings), fo_codec_pod(size) (fixed-size structs copied
 * byte for byte: plain data only, no pointers).  A decode of bad or
 * truncated bytes returns FO_EINVAL: it never crashes and never reads past
 * @len.  Decoded items are allocated with fanout's allocator (alloc.h),
 * 64-byte aligned, inside a larger block: release them with the codec's
 * item_free (fo_codec_free_item()) or fo_bytes_free(), never with free().
 *
 * Threads: the built-ins are stateless and may be used from any number of
 * threads at once; an fo_buf is used by one thread at a time.
 */
#ifndef FANOUT_CODEC_H
#define FANOUT_CODEC_H

#include <stddef.h>
#include <fanout/export.h>
#include <fanout/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * fo_buf - a growable byte buffer, in caller storage.
 * @data: the bytes (NULL while empty and never grown).
 * @len:  bytes in use.
 * @cap:  bytes allocated.
 * Initialise with fo_buf_init() (or `fo_buf b = {0};`), release with
 * fo_buf_fini().  Growth goes through fanout's allocator.
 */
typedef struct fo_buf {
	unsigned char *data;
	size_t len;
	size_t cap;
} fo_buf;

/** fo_buf_init() - an empty buffer.  @b must not be NULL.  Never fails. */
FO_API void fo_buf_init(fo_buf *b);

/** fo_buf_fini() - release @b's memory; @b is empty afterwards.  NULL: no-op. */
FO_API void fo_buf_fini(fo_buf *b);

/** fo_buf_reset() - set @len to 0, keeping the memory.  NULL: no-op. */
FO_API void fo_buf_reset(fo_buf *b);

/**
 * fo_buf_reserve() - make room for @extra more bytes after @len.
 * Returns: FO_OK; FO_EINVAL (@b NULL, or len + extra overflows);
 * FO_ENOMEM (the buffer is unchanged).
 */
FO_API int fo_buf_reserve(fo_buf *b, size_t extra);

/**
 * fo_buf_append() - append @n bytes from @p.
 * Returns: FO_OK; FO_EINVAL (@b NULL, or @p NULL with @n > 0, or overflow);
 * FO_ENOMEM (the buffer is unchanged).
 */
FO_API int fo_buf_append(fo_buf *b, const void *p, size_t n);

/**
 * fo_codec - how items become bytes and back.
 * @encode:    append the bytes of @item to @out; return FO_OK or an error
 *             (FO_USER(n), FO_EINVAL, FO_ENOMEM ...; fo_fail() may add a
 *             message).  Must not shrink @out.
 * @decode:    build a new item from @data[0..@len) into *@item; return
 *             FO_OK or an error (FO_EINVAL for bad bytes).  Must never read
 *             outside @data[0..@len).
 * @item_free: destroys an item @decode made (NULL: items need no freeing).
 * @ctx:       passed to all three.
 */
typedef struct fo_codec {
	int (*encode)(void *ctx, const void *item, fo_buf *out);
	int (*decode)(void *ctx, const void *data, size_t len, void **item);
	void (*item_free)(void *item, void *ctx);
	void *ctx;
} fo_codec;

/**
 * fo_bytes - a byte string item (fo_codec_bytes()).
 * @len:  number of bytes in @data.
 * @data: the bytes (not NUL-terminated).
 */
typedef struct fo_bytes {
	size_t len;
	FO__FLEX_BEGIN
	unsigned char data[];
	FO__FLEX_END
} fo_bytes;

/**
 * fo_bytes_new() - a new fo_bytes holding a copy of @data[0..@len).
 * Returns: FO_OK (*@out set; free it with fo_bytes_free()); FO_EINVAL
 * (@out NULL, or @data NULL with @len > 0); FO_ENOMEM.
 */
FO_API int fo_bytes_new(fo_bytes **out, const void *data, size_t len);

/** fo_bytes_free() - free an fo_bytes from fo_bytes_new() or a decode.  NULL: no-op. */
FO_API void fo_bytes_free(fo_bytes *b);

/** fo_codec_bytes() - items are fo_bytes *; the encoding is the raw bytes. */
FO_API fo_codec fo_codec_bytes(void);

/** fo_codec_cstr() - items are char * (NUL-terminated); the encoding is the
 * characters without the NUL.  Decoding bytes that contain a NUL: FO_EINVAL. */
FO_API fo_codec fo_codec_cstr(void);

/**
 * fo_codec_pod() - items are @size-byte structs copied with memcpy.
 * Decoding any length other than @size: FO_EINVAL.  @size 0 gives a codec
 * whose encode and decode return FO_EINVAL.
 */
FO_API fo_codec fo_codec_pod(size_t size);

/**
 * fo_codec_encode() - append @item's bytes to @out through @c.
 * Returns: FO_OK; FO_EINVAL (@c, @c->encode, @item or @out NULL); the
 * codec's own error.  On an error @out is as it was before the call.
 * Threads: as the codec allows (the built-ins: any).
 */
FO_API int fo_codec_encode(const fo_codec *c, const void *item, fo_buf *out);

/**
 * fo_codec_decode() - a new item from @data[0..@len) through @c.
 * Returns: FO_OK (*@item set: release it with fo_codec_free_item());
 * FO_EINVAL (@c, @c->decode or @item NULL, @data NULL with @len > 0, bad
 * bytes); FO_ENOMEM; the codec's own error.  On an error *@item is NULL.
 */
FO_API int fo_codec_decode(const fo_codec *c, const void *data, size_t len, void **item);

/** fo_codec_free_item() - destroy @item (from a decode) with @c's item_free.
 * NULL @c or @item: no-op. */
FO_API void fo_codec_free_item(const fo_codec *c, void *item);

#ifdef __cplusplus
}
#endif
#endif /* FANOUT_CODEC_H */
