/*
 * buf.c: a growable byte buffer that keeps a NUL after its contents.
 *
 * Owns the sp_buf_* functions.  Growth doubles the allocation, so appending
 * n bytes one at a time costs O(n).  On allocation failure a buffer keeps
 * its previous contents and the function returns SP_ENOMEM.
 */
#include "base.h"

#include <stdio.h>
#include <string.h>

int
sp_buf_reserve(sp_buf *buf, size_t extra)
{
    size_t needed, size;
    char *grown;

    /* The NUL after the contents needs one more byte. */
    if (extra > SIZE_MAX - buf->len - 1)
        return SP_ENOMEM;
    needed = buf->len + extra + 1;
    if (needed <= buf->size)
        return SP_OK;

    size = buf->size ? buf->size : 64;
    while (size < needed)
        size = size > SIZE_MAX / 2 ? needed : size * 2;
    grown = sp_realloc(buf->data, size);
    if (grown == NULL)
        return SP_ENOMEM;
    buf->data = grown;
    buf->size = size;
    return SP_OK;
}

int
sp_buf_append(sp_buf *buf, const void *data, size_t len)
{
    if (sp_buf_reserve(buf, len) != SP_OK)
        return SP_ENOMEM;
    if (len > 0)
        memcpy(buf->data + buf->len, data, len);
    buf->len += len;
    buf->data[buf->len] = '\0';
    return SP_OK;
}

int
sp_buf_append_str(sp_buf *buf, const char *text)
{
    return sp_buf_append(buf, text, strlen(text));
}

int
sp_buf_printf(sp_buf *buf, const char *fmt, ...)
{
    va_list args;
    int needed;

    /* Measure first, so the buffer grows once. */
    va_start(args, fmt);
    needed = vsnprintf(NULL, 0, fmt, args);
    va_end(args);
    if (needed < 0)
        return SP_EINVAL;
    if (sp_buf_reserve(buf, (size_t)needed) != SP_OK)
        return SP_ENOMEM;

    va_start(args, fmt);
    vsnprintf(buf->data + buf->len, (size_t)needed + 1, fmt, args);
    va_end(args);
    buf->len += (size_t)needed;
    return SP_OK;
}

void
sp_buf_reset(sp_buf *buf)
{
    buf->len = 0;
    if (buf->data != NULL)
        buf->data[0] = '\0';
}

void
sp_buf_free(sp_buf *buf)
{
    sp_free(buf->data);
    buf->data = NULL;
    buf->len = 0;
    buf->size = 0;
}
