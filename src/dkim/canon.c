/*
 * canon.c: the simple and relaxed canonicalizations of RFC 6376 3.4.
 *
 * Owns dkim__canon_body_* and dkim__canon_header.
 *
 * The body canonicalizer is a streaming state machine: input may be cut
 * anywhere and the output is the same.  Lines end only at CRLF; a bare CR
 * or LF is ordinary content (the signer sets strict mode to refuse them
 * instead).  Empty lines are counted, not written, until content follows,
 * which is how trailing empty lines disappear without buffering the body.
 * Output is collected in a stage buffer and handed to every digest that
 * wants this canonicalization, each cut at its own l= limit, so a message
 * signed or verified several times is canonicalized once per mode.
 */
#include "dkim_int.h"

#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

void
dkim__canon_body_init(dkim__canon_body *body, sp_dkim_canon mode, bool strict)
{
    body->mode = mode;
    body->strict = strict;
    body->failed = false;
    body->failed_at = 0;
    body->at_line_start = true;
    body->cr_held = false;
    body->wsp_pending = false;
    body->empty_lines = 0;
    body->consumed = 0;
    body->produced = 0;
    body->any_output = false;
    body->hash_count = 0;
    body->staged = 0;
}

/* Hand the staged output to every digest, each up to its limit. */
static int
body_flush(dkim__canon_body *body)
{
    for (size_t i = 0; i < body->hash_count; i++) {
        dkim__body_hash *hash = body->hashes[i];
        uint64_t room = hash->limit - hash->hashed;
        size_t take = body->staged < room ? body->staged : (size_t)room;

        if (take == 0)
            continue;
        if (EVP_DigestUpdate(hash->md, body->stage, take) != 1)
            return SP_ECRYPTO;
        hash->hashed += take;
    }
    body->staged = 0;
    return SP_OK;
}

/* Append canonical output. */
static int
body_emit(dkim__canon_body *body, const char *data, size_t len)
{
    body->produced += len;
    body->any_output = true;
    while (len > 0) {
        size_t room = sizeof(body->stage) - body->staged;
        size_t take = len < room ? len : room;

        memcpy(body->stage + body->staged, data, take);
        body->staged += take;
        data += take;
        len -= take;
        if (body->staged == sizeof(body->stage) && body_flush(body) != SP_OK)
            return SP_ECRYPTO;
    }
    return SP_OK;
}

/*
 * Write line content: first the empty lines it proves were not trailing,
 * then a whitespace run it follows (relaxed), then the bytes.
 */
static int
body_content(dkim__canon_body *body, const char *data, size_t len)
{
    if (body->at_line_start) {
        for (; body->empty_lines > 0; body->empty_lines--)
            if (body_emit(body, "\r\n", 2) != SP_OK)
                return SP_ECRYPTO;
        body->at_line_start = false;
    }
    if (body->wsp_pending) {
        body->wsp_pending = false;
        if (body_emit(body, " ", 1) != SP_OK)
            return SP_ECRYPTO;
    }
    return body_emit(body, data, len);
}

/* A CRLF ended the current line. */
static int
body_line_end(dkim__canon_body *body)
{
    body->wsp_pending = false; /* relaxed drops whitespace at line end */
    if (body->at_line_start) {
        body->empty_lines++;
        return SP_OK;
    }
    body->at_line_start = true;
    return body_emit(body, "\r\n", 2);
}

/* Record a bare CR or LF; in strict mode it fails the message. */
static void
body_bare(dkim__canon_body *body, uint64_t offset)
{
    if (body->strict && !body->failed) {
        body->failed = true;
        body->failed_at = offset;
    }
}

/*
 * The bytes relaxed mode may change: SP, TAB, CR and LF; it copies all
 * others.  A table, because this test runs once per body byte.
 */
static const unsigned char relaxed_special[256] = {
    [' '] = 1,
    ['\t'] = 1,
    ['\r'] = 1,
    ['\n'] = 1,
};

/*
 * Where the next CR and LF are, found with memchr and remembered: every
 * byte is searched at most once per kind, so a body of bare LFs, or of
 * bare CRs, costs no more than one of CRLF lines.
 */
struct body_scan {
    const char *cr; /* next CR at or after the cursor; NULL: not looked */
    const char *lf; /* next LF likewise */
};

static const char *
scan_next(const char **cached, const char *p, const char *end, char byte)
{
    if (*cached == NULL || *cached < p) {
        const char *found = memchr(p, byte, (size_t)(end - p));

        *cached = found ? found : end;
    }
    return *cached;
}

/*
 * Simple mode: the length of the run at p that goes out unchanged, up to
 * the next CR or LF.
 */
static size_t
body_run(struct body_scan *scan, const char *p, const char *end)
{
    const char *cr = scan_next(&scan->cr, p, end, '\r');
    const char *lf = scan_next(&scan->lf, p, end, '\n');

    return (size_t)((cr < lf ? cr : lf) - p);
}

#if defined(__SSE2__)
/*
 * Relaxed mode sixteen bytes at a time.  A single space between plain
 * bytes is already canonical, so a block is copied as it is up to the
 * first byte that needs a decision: a TAB, CR or LF, or the first of two
 * spaces.  A space just before that byte, or at the end of a block, is
 * left pending, as it may start a run.  Returns the input bytes consumed;
 * *written gets the output bytes, at most room.
 */
static size_t
relaxed_blocks(const char *p, const char *end, char *dst, size_t room,
               size_t *written, bool *space)
{
    const __m128i sp = _mm_set1_epi8(' ');
    const __m128i tab = _mm_set1_epi8('\t');
    const __m128i cr = _mm_set1_epi8('\r');
    const __m128i lf = _mm_set1_epi8('\n');
    const char *start = p;
    size_t out = 0;

    while (end - p >= 16 && room - out >= 17) {
        __m128i block = _mm_loadu_si128((const __m128i *)p);
        unsigned spaces =
            (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(block, sp));
        unsigned stops = (unsigned)_mm_movemask_epi8(
            _mm_or_si128(_mm_cmpeq_epi8(block, tab),
                         _mm_or_si128(_mm_cmpeq_epi8(block, cr),
                                      _mm_cmpeq_epi8(block, lf))));
        unsigned bad = stops | (spaces & (spaces >> 1)) |
                       (*space && (spaces & 1u) ? 1u : 0u);
        size_t clean = bad ? (size_t)__builtin_ctz(bad) : 16;

        if (clean == 0)
            break;
        if (*space) {
            dst[out++] = ' ';
            *space = false;
        }
        _mm_storeu_si128((__m128i *)(dst + out), block);
        p += clean;
        out += clean;
        if (p[-1] == ' ') {
            out--; /* the space waits to see what follows it */
            *space = true;
        }
        if (clean < 16)
            break;
    }
    *written = out;
    return (size_t)(p - start);
}
#else
/* Without SSE2 the byte loop of relaxed_inline does all the work. */
static size_t
relaxed_blocks(const char *p, const char *end, char *dst, size_t room,
               size_t *written, bool *space)
{
    (void)p;
    (void)end;
    (void)dst;
    (void)room;
    (void)space;
    *written = 0;
    return 0;
}
#endif

/*
 * The common case of relaxed mode, straight into the stage: inside a line,
 * with no CR held, plain bytes are copied and each whitespace run becomes
 * one space, whole blocks at a time where they allow it and a byte at a
 * time through the whitespace runs between them.  Stops at a CR or LF, at
 * the end of the input, or when the stage fills (after flushing it); the
 * general path takes over from there.  *cursor advances past what was
 * consumed.
 */
static int
relaxed_inline(dkim__canon_body *body, const char **cursor, const char *end)
{
    const char *p = *cursor;
    char *start = body->stage + body->staged;
    char *dst = start;
    char *full = body->stage + sizeof(body->stage) - 1; /* room for two */
    bool space = body->wsp_pending;

    while (p < end && dst < full) {
        size_t written;
        unsigned char c;

        p += relaxed_blocks(p, end, dst, (size_t)(full + 1 - dst), &written,
                            &space);
        dst += written;
        if (p == end || dst >= full)
            break;

        /* One byte the blocks stopped at, or one near the end. */
        c = (unsigned char)*p;
        if (c == '\r' || c == '\n')
            break;
        if (c == ' ' || c == '\t') {
            space = true;
        } else {
            if (space) {
                *dst++ = ' ';
                space = false;
            }
            *dst++ = (char)c;
        }
        p++;
    }

    body->wsp_pending = space;
    body->staged += (size_t)(dst - start);
    body->produced += (size_t)(dst - start);
    body->any_output = body->any_output || dst != start;
    *cursor = p;
    if (dst >= full)
        return body_flush(body);
    return SP_OK;
}

int
dkim__canon_body_feed(dkim__canon_body *body, const char *data, size_t len)
{
    struct body_scan scan = {NULL, NULL};
    const char *end = data + len;
    const char *p = data;

    while (p < end) {
        size_t run;

        /* Resolve a CR held from the previous byte or chunk. */
        if (body->cr_held) {
            body->cr_held = false;
            if (*p == '\n') {
                p++;
                if (body_line_end(body) != SP_OK)
                    return SP_ECRYPTO;
                continue;
            }
            body_bare(body, body->consumed + (uint64_t)(p - data) - 1);
            if (body_content(body, "\r", 1) != SP_OK)
                return SP_ECRYPTO;
        }

        /*
         * Relaxed: once a line has content, the inline path does the work;
         * the first byte of a line goes the general way, which writes the
         * empty lines it proves were not trailing.
         */
        if (body->mode == SP_DKIM_RELAXED && !relaxed_special[(uint8_t)*p]) {
            if (body->at_line_start) {
                if (body_content(body, p, 1) != SP_OK)
                    return SP_ECRYPTO;
                p++;
            }
            if (relaxed_inline(body, &p, end) != SP_OK)
                return SP_ECRYPTO;
            continue;
        }

        /* Simple: ordinary content goes out in one piece. */
        run = body->mode == SP_DKIM_SIMPLE ? body_run(&scan, p, end) : 0;
        if (run > 0) {
            if (body_content(body, p, run) != SP_OK)
                return SP_ECRYPTO;
            p += run;
            continue;
        }

        /* One byte that needs a decision. */
        if (*p == '\r') {
            body->cr_held = true;
        } else if (*p == '\n') {
            body_bare(body, body->consumed + (uint64_t)(p - data));
            if (body_content(body, "\n", 1) != SP_OK)
                return SP_ECRYPTO;
        } else {
            body->wsp_pending = true; /* relaxed SP or TAB */
        }
        p++;
    }
    body->consumed += len;
    return SP_OK;
}

int
dkim__canon_body_finish(dkim__canon_body *body)
{
    /* A CR at the very end is content, not half a line break. */
    if (body->cr_held) {
        body->cr_held = false;
        body_bare(body, body->consumed - 1);
        if (body_content(body, "\r", 1) != SP_OK)
            return SP_ECRYPTO;
    }

    /*
     * A last line without CRLF gets one.  Trailing whitespace of that line
     * and the withheld empty lines are dropped.  The simple empty body is
     * a single CRLF; the relaxed one is empty (RFC 6376 3.4.3, 3.4.4).
     */
    body->wsp_pending = false;
    if (!body->at_line_start ||
        (body->mode == SP_DKIM_SIMPLE && !body->any_output)) {
        body->at_line_start = true;
        if (body_emit(body, "\r\n", 2) != SP_OK)
            return SP_ECRYPTO;
    }
    body->empty_lines = 0;
    return body_flush(body);
}

/*
 * Relaxed header canonicalization of one field (RFC 6376 3.4.2), in one
 * pass over the whole field, name included: CRLF pairs are folds and go,
 * whitespace runs become one SP, whitespace on either side of the first
 * colon and at the end goes, and the name is lower-cased.  Names with
 * whitespace inside are not valid field names, but a verifier still gives
 * them the RFC's reading, as Mail::DKIM does.
 */
static int
canon_header_relaxed(const char *field, size_t len, sp_buf *out)
{
    bool in_name = true, space = false, after_colon = false;
    char *dst;

    if (memchr(field, ':', len) == NULL)
        return SP_EINVAL;
    if (sp_buf_reserve(out, len + 3) != SP_OK)
        return SP_ENOMEM;
    dst = out->data + out->len;

    for (size_t pos = 0; pos < len; pos++) {
        char c = field[pos];

        if (c == '\r' && pos + 1 < len && field[pos + 1] == '\n') {
            pos++; /* a fold; the whitespace after it separates */
            continue;
        }
        if (c == ' ' || c == '\t') {
            space = !after_colon;
            continue;
        }
        if (c == ':' && in_name) {
            *dst++ = ':';
            in_name = false;
            after_colon = true;
            space = false;
            continue;
        }
        if (space)
            *dst++ = ' ';
        space = after_colon = false;
        if (in_name && c >= 'A' && c <= 'Z')
            c = (char)(c + ('a' - 'A'));
        *dst++ = c;
    }
    *dst++ = '\r';
    *dst++ = '\n';
    out->len = (size_t)(dst - out->data);
    out->data[out->len] = '\0';
    return SP_OK;
}

int
dkim__canon_header(sp_dkim_canon mode, const char *field, size_t len,
                   sp_buf *out)
{
    if (mode == SP_DKIM_RELAXED)
        return canon_header_relaxed(field, len, out);

    /* simple: the field exactly as it is, ending in CRLF. */
    if (sp_buf_append(out, field, len) != SP_OK)
        return SP_ENOMEM;
    if (len < 2 || field[len - 2] != '\r' || field[len - 1] != '\n')
        return sp_buf_append(out, "\r\n", 2);
    return SP_OK;
}
