/*
 * eol.c: normalization of line endings to CRLF.
 *
 * Owns sp_mail_eol_*.  Mail on the wire ends every line with CRLF, but
 * clients and files on disk often use bare LF; a signature computed over
 * mixed endings is one no receiver can reproduce once a relay fixes them.
 * Callers that take careless input normalize first, then sign.
 */
#include "mail.h"

#include <string.h>

void
sp_mail_eol_init(sp_mail_eol *eol)
{
    eol->cr_pending = false;
    eol->rewrote = 0;
}

int
sp_mail_eol_feed(sp_mail_eol *eol, const void *data, size_t len, sp_buf *out)
{
    const char *in = data;
    const char *end = in + len;

    /* Normalized output is at most twice the input. */
    if (sp_buf_reserve(out, len * 2 + 2) != SP_OK)
        return SP_ENOMEM;

    while (in < end) {
        const char *stop;
        size_t run;

        /* A CR held from the previous byte: CRLF, or a bare CR. */
        if (eol->cr_pending) {
            eol->cr_pending = false;
            out->data[out->len++] = '\r';
            out->data[out->len++] = '\n';
            if (*in == '\n') {
                in++;
                continue;
            }
            eol->rewrote++;
        }

        /* Copy the run up to the next CR or LF unchanged. */
        stop = in;
        while (stop < end && *stop != '\r' && *stop != '\n')
            stop++;
        run = (size_t)(stop - in);
        memcpy(out->data + out->len, in, run);
        out->len += run;
        in = stop;
        if (in == end)
            break;

        if (*in == '\r') {
            eol->cr_pending = true;
        } else {
            out->data[out->len++] = '\r';
            out->data[out->len++] = '\n';
            eol->rewrote++;
        }
        in++;
    }
    out->data[out->len] = '\0';
    return SP_OK;
}

int
sp_mail_eol_finish(sp_mail_eol *eol, sp_buf *out)
{
    if (!eol->cr_pending)
        return SP_OK;
    eol->cr_pending = false;
    eol->rewrote++;
    return sp_buf_append(out, "\r\n", 2);
}
