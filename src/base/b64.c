/*
 * b64.c: base64 encoding and a decoder that skips folding whitespace.
 *
 * Owns sp_b64_encoded_len, sp_b64_encode and sp_b64_decode.  DKIM values
 * (b=, bh=, p=) may be folded across lines, so the decoder ignores SP, TAB,
 * CR and LF wherever they appear.  It is strict about everything else:
 * bytes outside the alphabet, padding anywhere but the end, and a final
 * group of one character are errors, never silently dropped.
 */
#include "base.h"

#include <string.h>

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Decoding table: 0-63 for the alphabet, these markers for the rest. */
enum {
    B64_SKIP = 64, /* folding whitespace */
    B64_PAD = 65,  /* '=' */
    B64_BAD = 66,  /* anything else */
};

static unsigned char b64_value[256];
static bool b64_table_ready;

static void
b64_table_init(void)
{
    memset(b64_value, B64_BAD, sizeof(b64_value));
    for (int i = 0; i < 64; i++)
        b64_value[(unsigned char)b64_alphabet[i]] = (unsigned char)i;
    b64_value[' '] = B64_SKIP;
    b64_value['\t'] = B64_SKIP;
    b64_value['\r'] = B64_SKIP;
    b64_value['\n'] = B64_SKIP;
    b64_value['='] = B64_PAD;
    b64_table_ready = true;
}

size_t
sp_b64_encoded_len(size_t len)
{
    return (len + 2) / 3 * 4;
}

int
sp_b64_encode(sp_buf *out, const void *data, size_t len)
{
    const unsigned char *in = data;
    size_t full = len / 3 * 3;
    char *dst;

    if (sp_buf_reserve(out, sp_b64_encoded_len(len)) != SP_OK)
        return SP_ENOMEM;
    dst = out->data + out->len;

    for (size_t i = 0; i < full; i += 3) {
        uint32_t group =
            (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *dst++ = b64_alphabet[group >> 18];
        *dst++ = b64_alphabet[(group >> 12) & 63];
        *dst++ = b64_alphabet[(group >> 6) & 63];
        *dst++ = b64_alphabet[group & 63];
    }

    /* One or two bytes left over become a padded final group. */
    if (len - full == 1) {
        uint32_t group = (uint32_t)in[full] << 16;
        *dst++ = b64_alphabet[group >> 18];
        *dst++ = b64_alphabet[(group >> 12) & 63];
        *dst++ = '=';
        *dst++ = '=';
    } else if (len - full == 2) {
        uint32_t group = (uint32_t)in[full] << 16 | (uint32_t)in[full + 1] << 8;
        *dst++ = b64_alphabet[group >> 18];
        *dst++ = b64_alphabet[(group >> 12) & 63];
        *dst++ = b64_alphabet[(group >> 6) & 63];
        *dst++ = '=';
    }

    out->len = (size_t)(dst - out->data);
    out->data[out->len] = '\0';
    return SP_OK;
}

int
sp_b64_decode(sp_buf *out, const char *text, size_t len, sp_error *err)
{
    size_t start = out->len;
    uint32_t group = 0;
    int in_group = 0;
    int padding = 0;
    char *dst;

    if (!b64_table_ready)
        b64_table_init();
    if (sp_buf_reserve(out, len / 4 * 3 + 3) != SP_OK)
        return sp_err_set(err, SP_ENOMEM, "out of memory decoding base64");
    dst = out->data + start;

    for (size_t i = 0; i < len; i++) {
        unsigned char value = b64_value[(unsigned char)text[i]];

        if (value == B64_SKIP)
            continue;
        if (value == B64_BAD) {
            out->len = start;
            out->data[start] = '\0';
            return sp_err_set(err, SP_ESYNTAX,
                              "base64: byte 0x%02x at offset %zu is not in "
                              "the alphabet",
                              (unsigned char)text[i], i);
        }
        if (value == B64_PAD) {
            padding++;
            continue;
        }
        if (padding > 0) {
            out->len = start;
            out->data[start] = '\0';
            return sp_err_set(err, SP_ESYNTAX,
                              "base64: data after '=' padding");
        }

        group = group << 6 | value;
        if (++in_group == 4) {
            *dst++ = (char)(group >> 16);
            *dst++ = (char)(group >> 8);
            *dst++ = (char)group;
            group = 0;
            in_group = 0;
        }
    }

    /* A final group of 2 or 3 characters carries 1 or 2 bytes. */
    if (in_group == 1 || padding > 2 ||
        (padding > 0 && in_group + padding != 4)) {
        out->len = start;
        out->data[start] = '\0';
        return sp_err_set(err, SP_ESYNTAX,
                          "base64: truncated final group or wrong padding");
    }
    if (in_group == 2) {
        *dst++ = (char)(group >> 4);
    } else if (in_group == 3) {
        *dst++ = (char)(group >> 10);
        *dst++ = (char)(group >> 2);
    }

    out->len = (size_t)(dst - out->data);
    out->data[out->len] = '\0';
    return SP_OK;
}
