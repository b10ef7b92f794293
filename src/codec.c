/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/* codec.c - fo_buf and the built-in codecs (bytes, C strings, plain structs). */
#include <stdint.h>
#include <string.h>

#include <fanout/codec.h>

#include "internal.h"

void fo_buf_init(fo_buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void fo_buf_fini(fo_buf *b)
{
	if (!b)
		return;
	fo__free(b->data);
	fo_buf_init(b);
}

void fo_buf_reset(fo_buf *b)
{
	if (b)
		b->len = 0;
}

int fo_buf_reserve(fo_buf *b, size_t extra)
{
	if (!b || extra > SIZE_MAX / 2 - b->len)
		return FO_EINVAL;
	size_t need = b->len + extra;
	if (need <= b->cap)
		return FO_OK;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	unsigned char *d = fo__alloc(cap);
	if (!d)
		return FO_ENOMEM;
	if (b->len)
		memcpy(d, b->data, b->len);
	fo__free(b->data);
	b->data = d;
	b->cap = cap;
	return FO_OK;
}

int fo_buf_append(fo_buf *b, const void *p, size_t n)
{
	if (!b || (!p && n))
		return FO_EINVAL;
	int rc = fo_buf_reserve(b, n);
	if (rc != FO_OK)
		return rc;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	return FO_OK;
}

int fo_bytes_new(fo_bytes **out, const void *data, size_t len)
{
	if (!out || (!data && len) || len > SIZE_MAX - sizeof(fo_bytes))
		return FO_EINVAL;
	fo_bytes *b = fo__item_alloc(sizeof(*b) + len);
	if (!b)
		return FO_ENOMEM;
	b->len = len;
	if (len)
		memcpy(b->data, data, len);
	*out = b;
	return FO_OK;
}

void fo_bytes_free(fo_bytes *b)
{
	fo__item_free(b);
}

/* Built-ins.  Their item_free ignores ctx: every decoded item is one block
 * from fo__item_alloc() (alloc.c: no posix_memalign per item). */
static void block_free(void *item, void *ctx)
{
	(void)ctx;
	fo__item_free(item);
}

static int bytes_encode(void *ctx, const void *item, fo_buf *out)
{
	const fo_bytes *b = item;
	(void)ctx;
	return fo_buf_append(out, b->data, b->len);
}

static int bytes_decode(void *ctx, const void *data, size_t len, void **item)
{
	(void)ctx;
	return fo_bytes_new((fo_bytes **)item, data, len);
}

fo_codec fo_codec_bytes(void)
{
	return (fo_codec){.encode = bytes_encode, .decode = bytes_decode, .item_free = block_free};
}

static int cstr_encode(void *ctx, const void *item, fo_buf *out)
{
	(void)ctx;
	return fo_buf_append(out, item, strlen(item));
}

static int cstr_decode(void *ctx, const void *data, size_t len, void **item)
{
	(void)ctx;
	if ((len && memchr(data, '\0', len)) || len == SIZE_MAX)
		return FO_EINVAL; /* an embedded NUL would truncate the string */
	char *s = fo__item_alloc(len + 1);
	if (!s)
		return FO_ENOMEM;
	if (len)
		memcpy(s, data, len);
	s[len] = '\0';
	*item = s;
	return FO_OK;
}

fo_codec fo_codec_cstr(void)
{
	return (fo_codec){.encode = cstr_encode, .decode = cstr_decode, .item_free = block_free};
}

/* ctx holds the struct size. */
static int pod_encode(void *ctx, const void *item, fo_buf *out)
{
	size_t size = (size_t)(uintptr_t)ctx;
	return size ? fo_buf_append(out, item, size) : FO_EINVAL;
}

static int pod_decode(void *ctx, const void *data, size_t len, void **item)
{
	size_t size = (size_t)(uintptr_t)ctx;
	if (!size || len != size)
		return FO_EINVAL;
	void *p = fo__item_alloc(size);
	if (!p)
		return FO_ENOMEM;
	memcpy(p, data, size);
	*item = p;
	return FO_OK;
}

fo_codec fo_codec_pod(size_t size)
{
	return (fo_codec){.encode = pod_encode,
	                  .decode = pod_decode,
	                  .item_free = block_free,
	                  .ctx = (void *)(uintptr_t)size};
}

int fo_codec_encode(const fo_codec *c, const void *item, fo_buf *out)
{
	if (!c || !c->encode || !item || !out)
		return FO_EINVAL;
	size_t len = out->len;
	int rc = c->encode(c->ctx, item, out);
	if (rc != FO_OK)
		out->len = len; /* a failed encode leaves nothing behind */
	return rc;
}

int fo_codec_decode(const fo_codec *c, const void *data, size_t len, void **item)
{
	if (!item)
		return FO_EINVAL;
	*item = NULL;
	if (!c || !c->decode || (!data && len))
		return FO_EINVAL;
	static const unsigned char empty[1];
	int rc = c->decode(c->ctx, data ? data : empty, len, item);
	if (rc != FO_OK)
		*item = NULL;
	else if (!*item)
		return FO_EINVAL; /* a decode that reports success must produce an item */
	return rc;
}

void fo_codec_free_item(const fo_codec *c, void *item)
{
	if (c && item && c->item_free)
		c->item_free(item, c->ctx);
}
