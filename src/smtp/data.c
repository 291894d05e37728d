/*
 * data.c: receiving the message, by DATA or by BDAT chunks.
 *
 * Owns smtp__data_command (DATA), smtp__data_bdat (BDAT, RFC 3030),
 * smtp__data_feed and smtp__data_chunk, which read the octets, and the
 * hand-over of the finished message to the owner.
 *
 * One scanner reads both.  In DATA it undoes dot-stuffing and ends the
 * data at CRLF "." CRLF and nowhere else (RFC 5321 4.1.1.4): a "." after
 * a bare CR or LF is not at the start of a line, so the LF.LF, CR.CR,
 * LF.CRLF and similar sequences that other servers took for the end of
 * data never end it, and no second message can be smuggled behind one.
 * A BDAT chunk is exactly its announced octets, with no dot-stuffing.
 *
 * A bare CR or LF refuses the message with 550 5.6.11 once the data has
 * ended, or, with normalize_eol, is stored as CRLF.  A NUL octet refuses
 * it with 550 5.6.0 under either policy: RFC 5322 text excludes NUL, and
 * BINARYMIME, which would carry it, is not offered.  A line longer than
 * max_text_line is 500 5.5.6 and a message over max_message is 552
 * 5.3.4, also after the data has ended (or, for BDAT, after the chunk),
 * so the session stays in step with the client.  The first problem found
 * decides the reply.  Once a message is refused its data is freed and
 * the rest is read without being stored, so no more than max_message
 * octets are ever held.
 *
 * A refused BDAT chunk ends the transaction; RFC 3030 has the client
 * stop sending chunks, and those already pipelined are read and answered
 * 503 until RSET or MAIL.  A BDAT command whose size does not parse is
 * answered 501 without reading anything, since its end is unknowable.
 *
 * The finished message always ends with CRLF: a BDAT message whose last
 * line lacks one gets it.
 */
#include "smtp_int.h"

#include <string.h>

/* Refuse the message for why, unless an earlier reason stands. */
static void
body_refuse(smtp__body *b, smtp__refusal why)
{
    if (b->refusal != SMTP__FINE)
        return;
    b->refusal = why;
    sp_buf_free(&b->data);
}

/* Store octets of the message, within max_message. */
static void
body_emit(sp_smtp_session *s, const char *p, size_t n)
{
    smtp__body *b = &s->body;

    if (b->refusal != SMTP__FINE)
        return;
    if (n > s->limits.max_message - b->data.len)
        body_refuse(b, SMTP__TOO_BIG);
    else if (sp_buf_append(&b->data, p, n) != SP_OK)
        body_refuse(b, SMTP__NOMEM);
}

/* A bare CR or LF: a line end when normalizing, else a refusal. */
static void
body_bare(sp_smtp_session *s)
{
    if (!s->limits.normalize_eol) {
        body_refuse(&s->body, SMTP__BARE_EOL);
        return;
    }
    body_emit(s, "\r\n", 2);
    s->body.line_len = 0;
}

/*
 * The fast path, for the common case: whole ordinary lines ("text" CRLF,
 * within max_text_line, no bare CR, LF or NUL), one after the other,
 * stored with one append.  It stops before a line that starts with a dot
 * (the state machine reads those) and before anything else it does not
 * take; the caller goes on there.  Returns the octets used, possibly 0.
 */
static size_t
body_lines(sp_smtp_session *s, const char *p, size_t len)
{
    smtp__body *b = &s->body;
    size_t limit = s->limits.max_text_line;
    size_t at = 0;

    while (at < len) {
        const char *cr = memchr(p + at, '\r', len - at);
        size_t line;

        if (cr == NULL || (size_t)(cr - p) + 1 >= len || cr[1] != '\n')
            break;
        line = (size_t)(cr - (p + at));
        if (b->line_len + line + 2 > limit ||
            memchr(p + at, '\n', line) != NULL ||
            memchr(p + at, '\0', line) != NULL)
            break;
        at += line + 2;
        b->line_len = 0;
        b->scan = SMTP__SCAN_BOL;
        if (b->dotted && at < len && p[at] == '.')
            break;
    }
    if (at > 0)
        body_emit(s, p, at);
    return at;
}

/*
 * Inside a line: store the run of ordinary octets at p, or act on the CR,
 * LF or NUL that stops it.  Returns the octets used (at least one).
 */
static size_t
body_text(sp_smtp_session *s, const char *p, size_t len)
{
    smtp__body *b = &s->body;
    size_t limit = s->limits.max_text_line;
    size_t run = body_lines(s, p, len);

    if (run > 0)
        return run;

    while (run < len && p[run] != '\r' && p[run] != '\n' && p[run] != '\0')
        run++;
    if (run > 0) {
        /* max_text_line counts the CRLF too. */
        b->line_len += run;
        if (b->line_len + 2 > limit)
            body_refuse(b, SMTP__LONG_LINE);
        body_emit(s, p, run);
        return run;
    }

    if (p[0] == '\r')
        b->scan = SMTP__SCAN_CR;
    else if (p[0] == '\n')
        body_bare(s);
    else
        body_refuse(b, SMTP__NUL);
    return 1;
}

/*
 * Read message octets from p[0..len).  In DATA, *ended is set when
 * CRLF.CRLF has been read, and the octets after it are left unread.
 * Returns the octets used.
 */
static size_t
body_scan(sp_smtp_session *s, const char *p, size_t len, bool *ended)
{
    smtp__body *b = &s->body;
    size_t i = 0;

    *ended = false;
    b->started = b->started || len > 0;
    while (i < len) {
        switch (b->scan) {
        case SMTP__SCAN_BOL:
            b->scan = SMTP__SCAN_TEXT;
            if (b->dotted && p[i] == '.') {
                b->scan = SMTP__SCAN_DOT;
                b->line_len = 1;
                i++;
            }
            break;
        case SMTP__SCAN_TEXT:
            i += body_text(s, p + i, len - i);
            break;
        case SMTP__SCAN_CR:
            b->scan = SMTP__SCAN_TEXT;
            if (p[i] != '\n') {
                body_bare(s); /* and read p[i] again, inside the line */
                break;
            }
            body_emit(s, "\r\n", 2);
            b->scan = SMTP__SCAN_BOL;
            b->line_len = 0;
            i++;
            break;
        case SMTP__SCAN_DOT:
            /* Unless CRLF follows, the dot was stuffing: dropped. */
            b->scan = p[i] == '\r' ? SMTP__SCAN_DOT_CR : SMTP__SCAN_TEXT;
            i += p[i] == '\r';
            break;
        case SMTP__SCAN_DOT_CR:
            if (p[i] == '\n') {
                *ended = true;
                return i + 1;
            }
            b->scan = SMTP__SCAN_TEXT;
            body_bare(s);
            break;
        }
    }
    return i;
}

/* A new message: nothing stored yet, at the start of a line. */
static void
body_start(sp_smtp_session *s, bool dotted)
{
    sp_buf_free(&s->body.data);
    memset(&s->body, 0, sizeof(s->body));
    s->body.scan = SMTP__SCAN_BOL;
    s->body.dotted = dotted;
}

/* The last BDAT chunk has been read: settle a CR left at its end. */
static void
body_close(sp_smtp_session *s)
{
    sp_buf *data = &s->body.data;

    if (s->body.scan == SMTP__SCAN_CR) {
        s->body.scan = SMTP__SCAN_TEXT;
        body_bare(s);
    }
    if (data->len > 0 &&
        (data->len < 2 || memcmp(data->data + data->len - 2, "\r\n", 2) != 0))
        body_emit(s, "\r\n", 2);
}

/* The message has been read and refused: say why, end the transaction. */
static void
data_refuse(sp_smtp_session *s, sp_buf *out)
{
    switch (s->body.refusal) {
    case SMTP__NOMEM:
        smtp__reply(s, out, 451, "4.3.0",
                    "Out of memory while receiving the message; try again "
                    "later");
        break;
    case SMTP__TOO_BIG:
        smtp__reply(s, out, 552, "5.3.4",
                    "Message size exceeds the limit of %zu octets",
                    s->limits.max_message);
        break;
    case SMTP__BARE_EOL:
        smtp__reply(s, out, 550, "5.6.11",
                    "Message refused: bare CR or LF in the data; end every "
                    "line with CRLF");
        break;
    case SMTP__LONG_LINE:
        smtp__reply(s, out, 500, "5.5.6",
                    "Message refused: line too long (over %zu octets with "
                    "CRLF); wrap it or encode the body",
                    s->limits.max_text_line);
        break;
    default:
        smtp__reply(s, out, 550, "5.6.0",
                    "Message refused: NUL octet in the data; encode binary "
                    "content");
        break;
    }
    smtp__envelope_reset(s);
    smtp__server_enter(s, SMTP__IDLE);
}

/*
 * The message is complete: hand it to the owner and wait for its verdict
 * (sp_smtp_session_done), or accept it at once when there is no message
 * callback.
 */
static void
data_finish(sp_smtp_session *s, sp_buf *out)
{
    /* The owner gets a buffer, even for an empty message. */
    if (s->body.refusal == SMTP__FINE &&
        sp_buf_reserve(&s->body.data, 0) != SP_OK)
        body_refuse(&s->body, SMTP__NOMEM);
    if (s->body.refusal != SMTP__FINE) {
        data_refuse(s, out);
        return;
    }
    if (s->callbacks.message == NULL) {
        smtp__reply(s, out, 250, "2.0.0", "Message accepted");
        smtp__envelope_reset(s);
        smtp__server_enter(s, SMTP__IDLE);
        return;
    }
    /* The owner may give its verdict inside the callback, or later. */
    smtp__server_enter(s, SMTP__WAIT);
    s->in_callback = true;
    s->callbacks.message(s->callbacks.arg, &s->envelope, &s->body.data);
    s->in_callback = false;
}

/* MAIL without any accepted RCPT, to DATA or a BDAT chunk. */
static void
data_no_rcpt(sp_smtp_session *s, sp_buf *out)
{
    if (s->rcpt_tried)
        smtp__reply_error(s, out, 554, "5.5.1", "Error: no valid recipients");
    else
        smtp__reply_error(s, out, 503, "5.5.1", "Error: need RCPT command");
}

void
smtp__data_command(sp_smtp_session *s, const char *args, size_t len,
                   sp_buf *out)
{
    (void)args;
    if (len > 0) {
        smtp__reply_error(s, out, 501, "5.5.4", "Syntax: DATA");
    } else if (s->state == SMTP__GREETED) {
        smtp__reply_error(s, out, 503, "5.5.1", "Error: send HELO/EHLO first");
    } else if (s->state == SMTP__CHUNKED) {
        smtp__reply_error(s, out, 503, "5.5.1", "Error: DATA after BDAT");
    } else if (s->state != SMTP__MAIL) {
        smtp__reply_error(s, out, 503, "5.5.1", "Error: need MAIL command");
    } else if (s->envelope.recipient_count == 0) {
        data_no_rcpt(s, out);
    } else {
        smtp__reply(s, out, 354, NULL, "End data with <CR><LF>.<CR><LF>");
        body_start(s, true);
        smtp__server_enter(s, SMTP__DATA);
    }
}

size_t
smtp__data_feed(sp_smtp_session *s, const char *p, size_t len, sp_buf *out)
{
    bool ended;
    size_t used = body_scan(s, p, len, &ended);

    if (ended)
        data_finish(s, out);
    return used;
}

/* "BDAT" SP chunk-size [SP "LAST"], the size fitting in size_t. */
static bool
data_bdat_parse(const char *args, size_t len, size_t *size, bool *last)
{
    size_t at = 0, value = 0;

    for (; at < len && args[at] >= '0' && args[at] <= '9'; at++) {
        if (value > (SIZE_MAX - 9) / 10)
            return false;
        value = value * 10 + (size_t)(args[at] - '0');
    }
    if (at == 0)
        return false;
    *size = value;
    *last = false;
    if (at == len)
        return true;
    while (at < len && args[at] == ' ')
        at++;
    *last = smtp__command_is(args + at, len - at, "LAST");
    return *last && args[at - 1] == ' ';
}

/* How a BDAT chunk arriving now will be answered. */
static smtp__chunk
data_bdat_verdict(const sp_smtp_session *s)
{
    switch (s->state) {
    case SMTP__CHUNKED:
        return SMTP__CHUNK_TAKE;
    case SMTP__MAIL:
        return s->envelope.recipient_count > 0 ? SMTP__CHUNK_TAKE
                                               : SMTP__CHUNK_NO_RCPT;
    default:
        return s->bdat_failed ? SMTP__CHUNK_AFTER_BAD : SMTP__CHUNK_NO_MAIL;
    }
}

/* Every octet of the chunk has been read: answer it. */
static void
data_chunk_end(sp_smtp_session *s, sp_buf *out)
{
    /* A chunk outside a message was read only to stay in step. */
    if (s->chunk_verdict != SMTP__CHUNK_TAKE) {
        smtp__server_enter(s, s->chunk_from);
        if (s->chunk_verdict == SMTP__CHUNK_NO_RCPT)
            data_no_rcpt(s, out);
        else if (s->chunk_verdict == SMTP__CHUNK_NO_MAIL)
            smtp__reply_error(s, out, 503, "5.5.1", "Error: need MAIL command");
        else
            smtp__reply(s, out, 503, "5.5.1",
                        "Error: an earlier chunk was refused; send RSET");
        return;
    }

    if (s->chunk_last)
        body_close(s);
    if (s->body.refusal != SMTP__FINE) {
        data_refuse(s, out);
        s->bdat_failed = !s->chunk_last;
    } else if (s->chunk_last) {
        data_finish(s, out);
    } else {
        smtp__server_enter(s, SMTP__CHUNKED);
        smtp__reply(s, out, 250, "2.0.0", "%zu octets received", s->chunk_size);
    }
}

void
smtp__data_bdat(sp_smtp_session *s, const char *args, size_t len, sp_buf *out)
{
    size_t size;
    bool last;

    if (!data_bdat_parse(args, len, &size, &last)) {
        smtp__reply_error(s, out, 501, "5.5.4", "Syntax: BDAT count [LAST]");
        return;
    }
    s->chunk_size = size;
    s->chunk_left = size;
    s->chunk_last = last;
    s->chunk_from = s->state;
    s->chunk_verdict = data_bdat_verdict(s);

    /* The first chunk starts the message; a chunk too big is refused. */
    if (s->chunk_verdict == SMTP__CHUNK_TAKE) {
        if (s->state == SMTP__MAIL)
            body_start(s, false);
        if (size > s->limits.max_message - s->body.data.len)
            body_refuse(&s->body, SMTP__TOO_BIG);
    }
    smtp__server_enter(s, SMTP__CHUNK);
    if (size == 0)
        data_chunk_end(s, out);
}

size_t
smtp__data_chunk(sp_smtp_session *s, const char *p, size_t len, sp_buf *out)
{
    size_t n = len < s->chunk_left ? len : s->chunk_left;
    bool ended;

    if (s->chunk_verdict == SMTP__CHUNK_TAKE)
        body_scan(s, p, n, &ended);
    s->chunk_left -= n;
    if (s->chunk_left == 0)
        data_chunk_end(s, out);
    return n;
}
