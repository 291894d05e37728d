/*
 * reply.c: the lines the server engine sends.
 *
 * Owns smtp__reply_*, which write every reply the engine sends, count
 * client errors and close the session at max_errors, and
 * sp_smtp_reply_set, with which the owner fills its own replies.
 *
 * Every 2xx, 4xx and 5xx reply carries an enhanced status code (RFC 2034
 * section 3, RFC 3463); the greeting, the EHLO and HELO replies and the
 * 3xx continuations carry none, as RFC 2034 says.  The owner's replies
 * are checked before they are sent: the owner may quote client text in
 * them, and a CR or LF there would forge a second reply.
 *
 * When the output buffer cannot grow, the session closes: a client whose
 * reply was lost would otherwise wait for it until its timeout.
 */
#include "smtp_int.h"

#include <stdio.h>
#include <string.h>

/* Append one formatted line, CRLF included; close when out is full. */
static void
reply_vline(sp_smtp_session *s, sp_buf *out, int code, bool more,
            const char *enhanced, const char *fmt, va_list args)
{
    char text[512];
    int rc;

    /* The text is cut at 511 octets, well inside RFC 5321's 512. */
    vsnprintf(text, sizeof(text), fmt, args);
    if (enhanced != NULL)
        rc = sp_buf_printf(out, "%03d%c%s %s\r\n", code, more ? '-' : ' ',
                           enhanced, text);
    else
        rc = sp_buf_printf(out, "%03d%c%s\r\n", code, more ? '-' : ' ', text);
    if (rc != SP_OK)
        s->closed = true;
}

void
smtp__reply_line(sp_smtp_session *s, sp_buf *out, int code, bool more,
                 const char *enhanced, const char *fmt, ...)
{
    va_list args;

    va_start(args, fmt);
    reply_vline(s, out, code, more, enhanced, fmt, args);
    va_end(args);
}

void
smtp__reply(sp_smtp_session *s, sp_buf *out, int code, const char *enhanced,
            const char *fmt, ...)
{
    va_list args;

    va_start(args, fmt);
    reply_vline(s, out, code, false, enhanced, fmt, args);
    va_end(args);
}

void
smtp__reply_error(sp_smtp_session *s, sp_buf *out, int code,
                  const char *enhanced, const char *fmt, ...)
{
    va_list args;

    va_start(args, fmt);
    reply_vline(s, out, code, false, enhanced, fmt, args);
    va_end(args);

    /* A client that keeps getting it wrong is a probe or a broken loop. */
    if (++s->errors >= s->limits.max_errors && !s->closed) {
        smtp__reply(s, out, 421, "4.7.0",
                    "%s Too many errors; closing the connection", s->hostname);
        s->closed = true;
    }
}

void
smtp__reply_fatal(sp_smtp_session *s, sp_buf *out)
{
    smtp__reply(s, out, 421, "4.3.0",
                "%s Out of memory; closing the connection", s->hostname);
    s->closed = true;
}

/*
 * Whether enhanced is "class.subject.detail" (RFC 3463 section 2) with
 * the class of code: 1 to 3 digits each after the class digit.
 */
static bool
reply_enhanced_fits(const char *enhanced, int code)
{
    const char *p = enhanced;

    if (p[0] != '0' + code / 100 || p[1] != '.')
        return false;
    p += 2;
    for (int part = 0; part < 2; part++) {
        size_t digits = 0;

        while (*p >= '0' && *p <= '9' && digits < 4) {
            p++;
            digits++;
        }
        if (digits == 0 || digits > 3)
            return false;
        if (part == 0 && *p++ != '.')
            return false;
    }
    return *p == '\0';
}

int
smtp__reply_owner(sp_smtp_session *s, sp_buf *out, const sp_smtp_reply *reply)
{
    char enhanced[sizeof(reply->enhanced)];
    char text[sizeof(reply->text) + 1];
    size_t len = strnlen(reply->text, sizeof(reply->text));
    int code = reply->code;

    /* Only a final reply class can answer a command. */
    if (code / 100 != 2 && code / 100 != 4 && code / 100 != 5) {
        smtp__reply(s, out, 451, "4.3.0", "Local error; try again later");
        return 451;
    }

    /* The fields may lack their NUL: copy within their size. */
    memcpy(enhanced, reply->enhanced, sizeof(enhanced));
    enhanced[sizeof(enhanced) - 1] = '\0';
    if (!reply_enhanced_fits(enhanced, code))
        snprintf(enhanced, sizeof(enhanced), "%d.0.0", code / 100);
    memcpy(text, reply->text, len);
    text[len] = '\0';
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f)
            text[i] = ' ';
    if (len == 0)
        snprintf(text, sizeof(text), "%s", code < 400 ? "OK" : "Refused");

    smtp__reply(s, out, code, enhanced, "%s", text);
    return code;
}

void
sp_smtp_reply_set(sp_smtp_reply *reply, int code, const char *enhanced,
                  const char *fmt, ...)
{
    va_list args;

    reply->code = code;
    snprintf(reply->enhanced, sizeof(reply->enhanced), "%s",
             enhanced != NULL ? enhanced : "");
    va_start(args, fmt);
    vsnprintf(reply->text, sizeof(reply->text), fmt, args);
    va_end(args);
}
