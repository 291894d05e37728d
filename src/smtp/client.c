/*
 * client.c: the delivery client's protocol engine, the other side of
 * server.c: it speaks to a recipient's mail server, bytes in and bytes
 * out, with no socket of its own.
 *
 * Owns sp_smtp_client_*.  A connection goes greeting, EHLO (HELO when
 * EHLO is refused), STARTTLS when offered and the owner can run TLS (the
 * owner does the handshake; EHLO again afterwards), then any number of
 * transactions, then QUIT.  A transaction is MAIL, one RCPT per
 * recipient and DATA, written in one go when the server offers
 * PIPELINING (RFC 2920) and one at a time otherwise; the replies are
 * matched to the commands in order.  The message is dot-stuffed on the
 * way out; it must already have CRLF line endings (the spool's do).
 *
 * Nothing is downgraded: a message over the server's SIZE, or needing
 * 8BITMIME or SMTPUTF8 that the server lacks, is refused here with a
 * local 5xx (a changed message would break its DKIM signatures).  With
 * TLS required, a server without STARTTLS ends the session.
 *
 * Every result keeps the server's reply (code, enhanced code, text) and
 * its class from classify.c; whether to retry is the owner's, by the
 * code.  Nothing here does I/O, logs or exits.
 */
#include "smtp.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CLIENT_MAX_REPLY 8192 /* octets of one reply, all its lines */
#define CLIENT_MAX_LINE  4096 /* octets of one reply line */

/* What the next reply answers. */
typedef enum client_expect {
    EXPECT_GREETING,
    EXPECT_EHLO,
    EXPECT_HELO,
    EXPECT_STARTTLS,
    EXPECT_RSET,
    EXPECT_MAIL,
    EXPECT_RCPT,
    EXPECT_DATA,
    EXPECT_DOT,
    EXPECT_QUIT,
} client_expect;

struct sp_smtp_client {
    sp_smtp_client_options options;
    sp_smtp_client_ext ext; /* what the server offered in EHLO */
    bool tls_active;
    bool closed;
    bool dirty;       /* the last transaction did not end; RSET first */
    uint64_t replies; /* whole replies read */

    /* Replies awaited, in the order of the commands sent. */
    client_expect *expect;
    size_t expect_head, expect_count, expect_capacity;

    /* The reply being read. */
    sp_buf line;  /* a partial line */
    sp_buf reply; /* its lines so far, without codes, '\n'-joined */
    size_t reply_lines;
    int reply_code;

    /* The transaction in hand. */
    const char *data; /* borrowed until the transaction ends */
    size_t len;
    const char *const *recipients; /* borrowed likewise */
    size_t rcpt_sent;              /* RCPTs written so far */
    size_t rcpt_count, rcpt_replied, rcpt_accepted;
    sp_smtp_client_result mail;
    sp_smtp_client_result *rcpts;
    sp_smtp_client_result final;

    sp_smtp_client_result failure; /* why the session ended early */
};

/* ------------------------------------------------------------------------
 * Results
 */

/* Fill result from a reply; its text's leading enhanced code is taken. */
static void
result_set(sp_smtp_client_result *result, int code, const char *text)
{
    int klass, subject, detail, used = 0;

    memset(result, 0, sizeof(*result));
    result->code = code;
    if (sscanf(text, "%1d.%3d.%3d%n", &klass, &subject, &detail, &used) == 3 &&
        (text[used] == ' ' || text[used] == '\0') && klass == code / 100) {
        snprintf(result->enhanced, sizeof(result->enhanced), "%.*s", used,
                 text);
        text += used;
        while (*text == ' ')
            text++;
    }
    snprintf(result->text, sizeof(result->text), "%s", text);
    result->class = sp_smtp_classify(code, result->enhanced, result->text);
}

/* A result that sealpost itself decided, without asking the server. */
static void
result_local(sp_smtp_client_result *result, int code, const char *enhanced,
             const char *text)
{
    char line[300];

    snprintf(line, sizeof(line), "%s %s", enhanced, text);
    result_set(result, code, line);
    result->local = true;
}

/* ------------------------------------------------------------------------
 * Output
 */

static bool
client_expect_push(sp_smtp_client *c, client_expect what)
{
    if (c->expect_head + c->expect_count == c->expect_capacity) {
        size_t capacity = c->expect_capacity * 2 + 8;
        client_expect *grown;

        /* Slide the waiting ones to the front before growing. */
        if (c->expect != NULL)
            memmove(c->expect, c->expect + c->expect_head,
                    c->expect_count * sizeof(*c->expect));
        c->expect_head = 0;
        grown = sp_realloc(c->expect, capacity * sizeof(*grown));
        if (grown == NULL)
            return false;
        c->expect = grown;
        c->expect_capacity = capacity;
    }
    c->expect[c->expect_head + c->expect_count++] = what;
    return true;
}

/* Write a command line and await its reply; false when out of memory. */
static bool
client_command(sp_smtp_client *c, sp_buf *out, client_expect what,
               const char *fmt, const char *arg)
{
    return sp_buf_printf(out, fmt, arg) == SP_OK &&
           sp_buf_append(out, "\r\n", 2) == SP_OK &&
           client_expect_push(c, what);
}

/* The message, dot-stuffed, ending in CRLF.CRLF. */
static int
client_write_data(const char *data, size_t len, sp_buf *out)
{
    size_t start = 0;
    int rc = SP_OK;

    while (rc == SP_OK && start < len) {
        const char *lf = memchr(data + start, '\n', len - start);
        size_t end = lf != NULL ? (size_t)(lf - data) + 1 : len;

        if (data[start] == '.')
            rc = sp_buf_append(out, ".", 1);
        if (rc == SP_OK)
            rc = sp_buf_append(out, data + start, end - start);
        start = end;
    }
    if (rc == SP_OK && len > 0 && data[len - 1] != '\n')
        rc = sp_buf_append(out, "\r\n", 2);
    if (rc == SP_OK)
        rc = sp_buf_append(out, ".\r\n", 3);
    return rc;
}

/* End the session: QUIT if the server may still listen, then close. */
static sp_smtp_client_next
client_fail(sp_smtp_client *c, const sp_smtp_client_result *why, sp_buf *out,
            bool say_quit)
{
    c->failure = *why;
    if (say_quit && !c->closed)
        (void)sp_buf_append(out, "QUIT\r\n", 6);
    c->closed = true;
    c->expect_count = 0;
    return SP_SMTP_CLIENT_CLOSE;
}

static sp_smtp_client_next
client_out_of_memory(sp_smtp_client *c, sp_buf *out)
{
    sp_smtp_client_result why;

    result_local(&why, 451, "4.3.0", "sealpost ran out of memory");
    return client_fail(c, &why, out, false);
}

/* ------------------------------------------------------------------------
 * Replies
 */

/* Whether the EHLO line is the keyword alone or with parameters. */
static bool
client_keyword(const char *line, size_t len, const char *keyword)
{
    size_t klen = strlen(keyword);

    return len >= klen && strncasecmp(line, keyword, klen) == 0 &&
           (len == klen || line[klen] == ' ');
}

/* Read one EHLO keyword line (len octets) into the extensions. */
static void
client_ehlo_line(sp_smtp_client *c, const char *line, size_t len)
{
    if (client_keyword(line, len, "PIPELINING"))
        c->ext.pipelining = true;
    else if (client_keyword(line, len, "8BITMIME"))
        c->ext.eightbit = true;
    else if (client_keyword(line, len, "SMTPUTF8"))
        c->ext.smtputf8 = true;
    else if (client_keyword(line, len, "STARTTLS"))
        c->ext.starttls = true;
    else if (client_keyword(line, len, "ENHANCEDSTATUSCODES"))
        c->ext.enhanced = true;
    else if (client_keyword(line, len, "SIZE")) {
        uint64_t size = 0;
        size_t i = len > 4 ? 5 : len; /* "SIZE" alone: no limit */

        for (; i < len && isdigit((unsigned char)line[i]); i++)
            size = size < UINT64_MAX / 10
                       ? size * 10 + (uint64_t)(line[i] - '0')
                       : UINT64_MAX;

        /* Digits only (RFC 1870); anything else is no known limit. */
        c->ext.size_known = i == len;
        c->ext.size = i == len ? size : 0; /* 0: no fixed limit */
    }
}

/* After EHLO or HELO: STARTTLS if we should, else ready. */
static sp_smtp_client_next
client_greeted(sp_smtp_client *c, sp_buf *out)
{
    sp_smtp_client_result why;

    if (!c->tls_active && c->ext.starttls && c->options.tls_possible) {
        if (!client_command(c, out, EXPECT_STARTTLS, "%s", "STARTTLS"))
            return client_out_of_memory(c, out);
        return SP_SMTP_CLIENT_READ;
    }
    if (!c->tls_active && c->options.tls_required) {
        result_local(&why, 530, "5.7.10",
                     "TLS is required for this destination and the server "
                     "does not offer STARTTLS");
        return client_fail(c, &why, out, true);
    }
    return SP_SMTP_CLIENT_IDLE;
}

/* The transaction is over; its results stay until the next one. */
static sp_smtp_client_next
client_sent(sp_smtp_client *c, const sp_smtp_client_result *final)
{
    c->final = *final;
    c->data = NULL;
    c->recipients = NULL;
    return SP_SMTP_CLIENT_SENT;
}

/* Without PIPELINING: the next command once the last one is answered. */
static sp_smtp_client_next
client_step(sp_smtp_client *c, sp_buf *out)
{
    if (c->rcpt_sent < c->rcpt_count) {
        if (sp_buf_printf(out, "RCPT TO:<%s>\r\n",
                          c->recipients[c->rcpt_sent]) != SP_OK ||
            !client_expect_push(c, EXPECT_RCPT))
            return client_out_of_memory(c, out);
        c->rcpt_sent++;
        return SP_SMTP_CLIENT_READ;
    }
    if (c->rcpt_accepted == 0)
        return client_sent(c, &c->rcpts[c->rcpt_count - 1]);
    if (!client_command(c, out, EXPECT_DATA, "%s", "DATA"))
        return client_out_of_memory(c, out);
    return SP_SMTP_CLIENT_READ;
}

/* A reply to a step of the transaction; DATA's 354 sends the message. */
static sp_smtp_client_next
client_transaction_reply(sp_smtp_client *c, client_expect what,
                         const sp_smtp_client_result *result, sp_buf *out)
{
    int rc;

    switch (what) {
    case EXPECT_MAIL:
        c->mail = *result;
        if (!c->ext.pipelining)
            return result->code / 100 == 2 ? client_step(c, out)
                                           : client_sent(c, result);
        return SP_SMTP_CLIENT_READ;
    case EXPECT_RCPT:
        c->rcpts[c->rcpt_replied++] = *result;
        if (result->code / 100 == 2)
            c->rcpt_accepted++;
        return c->ext.pipelining ? SP_SMTP_CLIENT_READ : client_step(c, out);
    case EXPECT_DATA:
        if (result->code / 100 == 4 || result->code / 100 == 5)
            return client_sent(c, result);
        if (result->code != 354) {
            /* A 2xx here would take the message unsent: nothing went. */
            sp_smtp_client_result wrong;
            char text[80];

            snprintf(text, sizeof(text),
                     "the server answered DATA with %d instead of 354",
                     result->code);
            result_local(&wrong, 451, "4.5.0", text);
            return client_fail(c, &wrong, out, true);
        }

        /* Nobody to deliver to (pipelined): end the data at once. */
        rc = c->rcpt_accepted > 0 && c->mail.code / 100 == 2
                 ? client_write_data(c->data, c->len, out)
                 : sp_buf_append(out, ".\r\n", 3);
        if (rc != SP_OK || !client_expect_push(c, EXPECT_DOT))
            return client_out_of_memory(c, out);
        return SP_SMTP_CLIENT_READ;
    case EXPECT_DOT:
        c->dirty = false;
        return client_sent(c, result);
    default:
        return SP_SMTP_CLIENT_READ;
    }
}

/* One whole reply: act on it. */
static sp_smtp_client_next
client_reply(sp_smtp_client *c, sp_buf *out)
{
    sp_smtp_client_result result;
    client_expect what;

    result_set(&result, c->reply_code, c->reply.data ? c->reply.data : "");
    if (c->expect_count == 0) {
        /* Unasked (a 421 before closing): the session is over. */
        return client_fail(c, &result, out, false);
    }
    what = c->expect[c->expect_head];
    c->expect_head++;
    c->expect_count--;
    if (c->expect_count == 0)
        c->expect_head = 0;

    switch (what) {
    case EXPECT_GREETING:
        if (result.code != 220)
            return client_fail(c, &result, out, true);
        if (!client_command(c, out, EXPECT_EHLO, "EHLO %s", c->options.helo))
            return client_out_of_memory(c, out);
        return SP_SMTP_CLIENT_READ;
    case EXPECT_EHLO:
        if (result.code / 100 == 2)
            return client_greeted(c, out);
        if (result.code == 421)
            return client_fail(c, &result, out, false);
        if (!client_command(c, out, EXPECT_HELO, "HELO %s", c->options.helo))
            return client_out_of_memory(c, out);
        return SP_SMTP_CLIENT_READ;
    case EXPECT_HELO:
        if (result.code / 100 != 2)
            return client_fail(c, &result, out, true);
        return client_greeted(c, out);
    case EXPECT_STARTTLS:
        if (result.code == 220)
            return SP_SMTP_CLIENT_STARTTLS;
        if (c->options.tls_required)
            return client_fail(c, &result, out, true);
        c->ext.starttls = false;
        return SP_SMTP_CLIENT_IDLE;
    case EXPECT_RSET:
        if (result.code / 100 != 2)
            return client_fail(c, &result, out, true);
        c->dirty = false;
        return SP_SMTP_CLIENT_READ;
    case EXPECT_QUIT:
        c->closed = true;
        return SP_SMTP_CLIENT_CLOSE;
    default:
        break;
    }
    if (result.code == 421) {
        /* The server is closing: what is left of the transaction fails. */
        c->closed = true;
        c->expect_count = 0;
        c->failure = result;
        return client_sent(c, &result);
    }
    return client_transaction_reply(c, what, &result, out);
}

/*
 * Append a reply's text keeping printable ASCII only: anything else (NUL,
 * control characters, 8-bit octets) becomes '?'.  A reply's text goes to
 * the log, the spool, events and bounce messages, and to terminals.
 */
static int
client_append_printable(sp_buf *reply, const char *text, size_t len)
{
    int rc = sp_buf_reserve(reply, len);

    for (size_t i = 0; rc == SP_OK && i < len; i++) {
        char octet = text[i] >= 0x20 && text[i] < 0x7f ? text[i] : '?';

        reply->data[reply->len++] = octet;
    }
    if (rc == SP_OK)
        reply->data[reply->len] = '\0';
    return rc;
}

/*
 * Add one reply line, "ddd-text" or "ddd text" (or "ddd"); *complete
 * when it was the last line of its reply.  Fills bad on failure.
 */
static int
client_reply_line(sp_smtp_client *c, const char *line, size_t len,
                  bool *complete, sp_smtp_client_result *bad)
{
    size_t text = len > 4 ? len - 4 : 0;
    int code;

    *complete = false;
    if (len < 3 || !isdigit((unsigned char)line[0]) ||
        !isdigit((unsigned char)line[1]) || !isdigit((unsigned char)line[2]) ||
        (len > 3 && line[3] != ' ' && line[3] != '-')) {
        result_local(bad, 451, "4.5.0", "the server sent a malformed reply");
        return SP_ESYNTAX;
    }
    code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');

    /* RFC 5321 4.2: 2 to 5, then 0 to 5; anything else is no reply. */
    if (line[0] < '2' || line[0] > '5' || line[1] > '5') {
        result_local(bad, 451, "4.5.0",
                     "the server sent a reply code outside SMTP's");
        return SP_ESYNTAX;
    }
    if (c->reply_lines > 0 && code != c->reply_code) {
        result_local(bad, 451, "4.5.0",
                     "the server changed its reply code inside a reply");
        return SP_ESYNTAX;
    }
    if (c->reply.len + len > CLIENT_MAX_REPLY) {
        result_local(bad, 451, "4.5.0", "the server's reply is too long");
        return SP_ELIMIT;
    }
    c->reply_code = code;

    /* EHLO keywords: every line after the first. */
    if (c->reply_lines > 0 && c->expect_count > 0 &&
        c->expect[c->expect_head] == EXPECT_EHLO && text > 0)
        client_ehlo_line(c, line + 4, text);
    if ((c->reply_lines > 0 && sp_buf_append(&c->reply, "\n", 1) != SP_OK) ||
        client_append_printable(&c->reply, line + 4, text) != SP_OK) {
        result_local(bad, 451, "4.3.0", "sealpost ran out of memory");
        return SP_ENOMEM;
    }
    c->reply_lines++;
    *complete = len == 3 || line[3] == ' ';
    return SP_OK;
}

/* ------------------------------------------------------------------------
 * The public functions
 */

/* Our name fits an EHLO line: printable, no spaces, not too long. */
static bool
client_name_ok(const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || len > 255)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] <= ' ' || (unsigned char)name[i] >= 0x7f)
            return false;
    return true;
}

int
sp_smtp_client_new(const sp_smtp_client_options *options, sp_smtp_client **out,
                   sp_error *err)
{
    sp_smtp_client *c;

    *out = NULL;
    if (options == NULL || options->helo == NULL ||
        !client_name_ok(options->helo))
        return sp_err_set(err, SP_EINVAL,
                          "smtp client: our name for EHLO is missing or "
                          "has spaces or control characters");
    c = sp_calloc(1, sizeof(*c));
    if (c == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    c->options = *options;
    if (!client_expect_push(c, EXPECT_GREETING)) {
        sp_free(c);
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    }
    *out = c;
    return SP_OK;
}

sp_smtp_client_next
sp_smtp_client_input(sp_smtp_client *c, const void *data, size_t len,
                     sp_buf *out)
{
    const char *bytes = data;
    sp_smtp_client_next next = SP_SMTP_CLIENT_READ;
    size_t written;

    for (size_t i = 0; i < len && !c->closed; i++) {
        sp_smtp_client_result bad;
        bool complete;
        size_t line_len;

        if (bytes[i] != '\n') {
            if (c->line.len >= CLIENT_MAX_LINE) {
                result_local(&bad, 451, "4.5.0",
                             "the server sent a reply line that is too long");
                return client_fail(c, &bad, out, true);
            }
            if (sp_buf_append(&c->line, &bytes[i], 1) != SP_OK)
                return client_out_of_memory(c, out);
            continue;
        }

        /* A line: CRLF, or a bare LF, which servers do send. */
        line_len = c->line.len;
        if (line_len > 0 && c->line.data[line_len - 1] == '\r')
            line_len--;
        if (client_reply_line(c, c->line.data ? c->line.data : "", line_len,
                              &complete, &bad) != SP_OK)
            return client_fail(c, &bad, out, true);
        sp_buf_reset(&c->line);
        if (!complete)
            continue;
        written = out->len;
        c->replies++;
        next = client_reply(c, out);
        sp_buf_reset(&c->reply);
        c->reply_lines = 0;

        /*
         * Bytes after a reply that called for our next command (or ended
         * a step) came before the server could have read that command: a
         * server out of step, whose later replies would answer the wrong
         * commands.  After STARTTLS's 220 they are plaintext that must
         * not count (RFC 3207): dropped with the rest of this input.
         */
        if (i + 1 < len && !c->closed && next != SP_SMTP_CLIENT_STARTTLS &&
            (next != SP_SMTP_CLIENT_READ || out->len > written)) {
            result_local(&bad, 451, "4.5.0",
                         "the server replied before it was asked "
                         "(out of step)");
            if (next != SP_SMTP_CLIENT_SENT)
                return client_fail(c, &bad, out, true);
            (void)client_fail(c, &bad, out, true);
            return next; /* the transaction's own replies stand */
        }
        if (next != SP_SMTP_CLIENT_READ)
            return next;
    }
    return c->closed ? SP_SMTP_CLIENT_CLOSE : next;
}

void
sp_smtp_client_tls_started(sp_smtp_client *c, sp_buf *out)
{
    /* RFC 3207 4.2: forget what was learnt before TLS, and ask again. */
    memset(&c->ext, 0, sizeof(c->ext));
    c->tls_active = true;
    if (!client_command(c, out, EXPECT_EHLO, "EHLO %s", c->options.helo))
        (void)client_out_of_memory(c, out);
}

const sp_smtp_client_ext *
sp_smtp_client_extensions(const sp_smtp_client *c)
{
    return &c->ext;
}

/*
 * Whether data holds a CR not followed by LF or an LF not after a CR.
 * Such a message cannot go out as it is (RFC 5321 2.3.8), and mending it
 * here would change signed bytes: the accept path never stores one.
 */
static bool
client_bare_line_end(const char *data, size_t len)
{
    const char *at = data, *end = data + len;

    if (len == 0)
        return false;
    while ((at = memchr(at, '\n', (size_t)(end - at))) != NULL) {
        if (at == data || at[-1] != '\r')
            return true;
        at++;
    }
    for (at = data; (at = memchr(at, '\r', (size_t)(end - at))) != NULL; at++)
        if (at + 1 == end || at[1] != '\n')
            return true;
    return false;
}

/* Check the message against what the server offers; fill why if not. */
static bool
client_can_send(const sp_smtp_client *c, const sp_smtp_client_message *m,
                sp_smtp_client_result *why)
{
    if (client_bare_line_end(m->data, m->len)) {
        result_local(why, 554, "5.6.0",
                     "the message holds a bare CR or LF; sending it would "
                     "change it in transit");
        return false;
    }
    if (c->ext.size_known && c->ext.size > 0 && m->len > c->ext.size) {
        result_local(why, 552, "5.3.4",
                     "the message is larger than the server's SIZE limit");
        return false;
    }
    if (m->eightbit && !c->ext.eightbit) {
        result_local(why, 554, "5.6.3",
                     "the message needs 8BITMIME, which the server does "
                     "not offer; converting it would break its signatures");
        return false;
    }
    if (m->smtputf8 && !c->ext.smtputf8) {
        result_local(why, 553, "5.6.7",
                     "the message needs SMTPUTF8, which the server does "
                     "not offer");
        return false;
    }
    return true;
}

sp_smtp_client_next
sp_smtp_client_send(sp_smtp_client *c, const sp_smtp_client_message *m,
                    sp_buf *out)
{
    char size[32] = "";
    sp_smtp_client_result why;
    bool ok = true;

    sp_free(c->rcpts);
    c->rcpts = sp_calloc(m->recipient_count + 1, sizeof(*c->rcpts));
    if (c->rcpts == NULL)
        return client_out_of_memory(c, out);
    c->rcpt_count = m->recipient_count;
    c->rcpt_replied = c->rcpt_accepted = 0;
    memset(&c->mail, 0, sizeof(c->mail));
    memset(&c->final, 0, sizeof(c->final));
    c->data = m->data;
    c->len = m->len;

    /* Refused here: every recipient gets the same local result. */
    if (c->closed || c->expect_count > 0 || m->recipient_count == 0 ||
        m->sender == NULL || (m->data == NULL && m->len > 0)) {
        result_local(&why, 451, "4.3.0",
                     "smtp client: not ready for a message, or an empty "
                     "envelope");
        return client_sent(c, &why);
    }
    if (!client_can_send(c, m, &why))
        return client_sent(c, &why);

    if (c->dirty)
        ok = client_command(c, out, EXPECT_RSET, "%s", "RSET");
    c->dirty = true;
    c->recipients = m->recipients;
    c->rcpt_sent = 0;
    if (c->ext.size_known)
        snprintf(size, sizeof(size), " SIZE=%zu", m->len);
    ok = ok &&
         sp_buf_printf(out, "MAIL FROM:<%s>%s%s%s\r\n", m->sender, size,
                       m->eightbit ? " BODY=8BITMIME" : "",
                       m->smtputf8 ? " SMTPUTF8" : "") == SP_OK &&
         client_expect_push(c, EXPECT_MAIL);

    /* With PIPELINING, everything up to DATA goes at once (RFC 2920). */
    while (ok && c->ext.pipelining && c->rcpt_sent < m->recipient_count)
        ok = sp_buf_printf(out, "RCPT TO:<%s>\r\n",
                           m->recipients[c->rcpt_sent++]) == SP_OK &&
             client_expect_push(c, EXPECT_RCPT);
    if (ok && c->ext.pipelining)
        ok = client_command(c, out, EXPECT_DATA, "%s", "DATA");
    if (!ok)
        return client_out_of_memory(c, out);
    return SP_SMTP_CLIENT_READ;
}

void
sp_smtp_client_quit(sp_smtp_client *c, sp_buf *out)
{
    if (!c->closed && !client_command(c, out, EXPECT_QUIT, "%s", "QUIT"))
        (void)client_out_of_memory(c, out);
}

/*
 * The result for recipient i of the last transaction: its RCPT refusal,
 * or the MAIL refusal, or the message's final reply.
 */
const sp_smtp_client_result *
sp_smtp_client_result_for(const sp_smtp_client *c, size_t i)
{
    if (c->final.local || c->mail.code == 0)
        return &c->final;
    if (c->mail.code / 100 != 2)
        return &c->mail;
    if (i < c->rcpt_replied && c->rcpts[i].code / 100 != 2)
        return &c->rcpts[i];
    return &c->final;
}

const sp_smtp_client_result *
sp_smtp_client_failure(const sp_smtp_client *c)
{
    return c->failure.code != 0 ? &c->failure : NULL;
}

uint64_t
sp_smtp_client_replies(const sp_smtp_client *c)
{
    return c->replies;
}

unsigned
sp_smtp_client_timeout(const sp_smtp_client *c)
{
    /* RFC 5321 4.5.3.2: what the next reply answers decides. */
    if (c->expect_count == 0)
        return 300;
    switch (c->expect[c->expect_head]) {
    case EXPECT_DATA:
        return 120;
    case EXPECT_DOT:
        return 600;
    default:
        return 300;
    }
}

void
sp_smtp_client_free(sp_smtp_client *c)
{
    if (c == NULL)
        return;
    sp_buf_free(&c->line);
    sp_buf_free(&c->reply);
    sp_free(c->expect);
    sp_free(c->rcpts);
    sp_free(c);
}
