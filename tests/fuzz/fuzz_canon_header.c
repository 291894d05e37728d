/*
 * fuzz_canon_header.c: libFuzzer target for the canonicalization of one
 * header field, simple and relaxed (dkim__canon_header in
 * src/dkim/canon.c, RFC 6376 3.4.1 and 3.4.2).
 *
 * The input is one field as the header index hands it over: it has a
 * colon, and every CRLF in it but a final one is a fold, followed by SP
 * or TAB (header.c ends a field at any other CRLF, so no field holds
 * one); other inputs are skipped.  Checked:
 *   simple   the field unchanged, plus CRLF when it did not end in one;
 *   relaxed  one CRLF, at the end; the name (before the first colon) in
 *            lower case; no SP on either side of the colon or before the
 *            final CRLF; no TAB and no run of two SP anywhere; the
 *            same result with or without the field's final CRLF; and
 *            canonicalizing the result again changes nothing.
 * Output is appended to a buffer that already holds bytes, which must be
 * left alone.  A broken invariant aborts, so libFuzzer keeps the input.
 */
#include "dkim/dkim_int.h"
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes already in the output buffer, to catch writes before its end. */
static const char prefix[] = "x-prefix:kept\r\n";
#define PREFIX_LEN (sizeof(prefix) - 1)

static bool
ends_crlf(const char *p, size_t len)
{
    return len >= 2 && p[len - 2] == '\r' && p[len - 1] == '\n';
}

/* Whether the header index could hand this text over as one field. */
static bool
field_shaped(const char *p, size_t len)
{
    if (memchr(p, ':', len) == NULL)
        return false;
    for (size_t i = 0; i + 1 < len; i++)
        if (p[i] == '\r' && p[i + 1] == '\n' && i + 2 < len &&
            p[i + 2] != ' ' && p[i + 2] != '\t')
            return false;
    return true;
}

/* Canonicalize into a buffer that already holds prefix; return the rest. */
static void
canon(sp_dkim_canon mode, const char *field, size_t len, sp_buf *out)
{
    sp_buf_reset(out);
    CHECK(sp_buf_append(out, prefix, PREFIX_LEN) == SP_OK);
    CHECK(dkim__canon_header(mode, field, len, out) == SP_OK);
    CHECK(out->len >= PREFIX_LEN && memcmp(out->data, prefix, PREFIX_LEN) == 0);
    CHECK(out->data[out->len] == '\0');
}

static void
check_simple(const char *field, size_t len, const sp_buf *out)
{
    const char *got = out->data + PREFIX_LEN;
    size_t got_len = out->len - PREFIX_LEN;

    if (ends_crlf(field, len)) {
        CHECK(got_len == len && memcmp(got, field, len) == 0);
        return;
    }
    CHECK(got_len == len + 2 && memcmp(got, field, len) == 0);
    CHECK(ends_crlf(got, got_len));
}

/* The shape RFC 6376 3.4.2 gives a relaxed field. */
static void
check_relaxed_shape(const char *got, size_t len)
{
    const char *colon;
    size_t name_len;

    CHECK(ends_crlf(got, len));
    for (size_t i = 0; i + 2 < len; i++)
        CHECK(got[i] != '\r' || got[i + 1] != '\n');
    colon = memchr(got, ':', len);
    CHECK(colon != NULL);
    name_len = (size_t)(colon - got);
    for (size_t i = 0; i < name_len; i++)
        CHECK(got[i] < 'A' || got[i] > 'Z');
    CHECK(name_len == 0 || got[name_len - 1] != ' ');
    CHECK(colon[1] != ' ');
    CHECK(got[len - 3] != ' ');
    for (size_t i = 0; i + 2 < len; i++)
        CHECK(got[i] != '\t' && (got[i] != ' ' || got[i + 1] != ' '));
}

static void
check_relaxed(const char *field, size_t len, sp_buf *out, sp_buf *again)
{
    const char *got = out->data + PREFIX_LEN;
    size_t got_len = out->len - PREFIX_LEN;

    check_relaxed_shape(got, got_len);

    /* The final CRLF of the field is optional (dkim_int.h). */
    if (!ends_crlf(field, len)) {
        char *with_crlf = malloc(len + 2);

        CHECK(with_crlf != NULL);
        memcpy(with_crlf, field, len);
        memcpy(with_crlf + len, "\r\n", 2);
        canon(SP_DKIM_RELAXED, with_crlf, len + 2, again);
        free(with_crlf);
        CHECK(again->len == out->len &&
              memcmp(again->data, out->data, out->len) == 0);
    }

    /* Canonical text is its own canonical form. */
    canon(SP_DKIM_RELAXED, got, got_len, again);
    CHECK(again->len == out->len &&
          memcmp(again->data, out->data, out->len) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *field = (const char *)data;
    sp_buf out = SP_BUF_INIT, again = SP_BUF_INIT;

    if (!field_shaped(field, size))
        return 0;

    canon(SP_DKIM_SIMPLE, field, size, &out);
    check_simple(field, size, &out);

    canon(SP_DKIM_RELAXED, field, size, &out);
    check_relaxed(field, size, &out, &again);

    sp_buf_free(&out);
    sp_buf_free(&again);
    return 0;
}
