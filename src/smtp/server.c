/*
 * server.c: the submission server's session, without sockets.
 *
 * Owns sp_smtp_session_* (see smtp.h) and smtp__server_*: making and
 * freeing a session, the input loop that hands each octet to the reader
 * of the current state (command lines, SASL lines, DATA text, BDAT
 * chunks), command-line framing, the input kept while the owner holds a
 * message, the STARTTLS reset, the timeout table, whether data is
 * flowing (for the owner's minimum data rate) and the state check.
 *
 * Command lines end at LF, with the CR before it stripped.  A line whose
 * LF has no CR is refused (500 5.5.2) unless normalize_eol is set, as the
 * same careless clients send it in commands and in data.  A line longer
 * than max_command octets, CRLF included, is refused with 500 5.5.6 as
 * soon as that is certain, and its tail is discarded up to the next LF
 * without being read as a command; so is a line of SASL credentials
 * (RFC 4954's 12288-octet allowance is not made: PLAIN and LOGIN
 * credentials fit in 512).
 *
 * Out of memory: the session never crashes or leaks, and answers
 * according to what was lost.
 *   - a reply that cannot be appended to out: the session closes
 *     (SP_SMTP_CLOSE), as the client would wait for it forever;
 *   - a command line split across inputs that cannot be kept: 451 4.3.0,
 *     the rest of the line is discarded, the session goes on;
 *   - a sender, recipient or AUTH step: 451 4.3.0 to that command;
 *   - message data: the data is read to its end, then 451 4.3.0;
 *   - input behind a finished message that cannot be kept: the owner's
 *     reply, then 421 4.3.0 and close, since the lost octets broke the
 *     command stream.
 *
 * Memory: an idle session holds its structure and the owner's two
 * strings, about 850 octets on x86-64; the line buffer exists only while
 * a command line is split across inputs, message data only during a
 * message, and both are freed when done with.  smtp__server_memory
 * counts it, and the unit tests hold it under 4 KiB.  Input fed while a
 * message waits is kept whole: the owner bounds it by not reading on
 * SP_SMTP_WAIT, as smtp.h asks.
 *
 * The other files of the engine, and what each owns, are listed in
 * smtp_int.h.
 *
 * Callbacks run inside sp_smtp_session_input and sp_smtp_session_done
 * and must not call back into the session, except that the message
 * callback may give its verdict at once with sp_smtp_session_done.  A
 * broken invariant aborts (see smtp__server_check), which is sealpost's
 * bug, never the client's.
 */
#include "smtp_int.h"

#include <assert.h>
#include <string.h>

/* A zero limit stands for its default; none may stay zero. */
static void
server_limits(sp_smtp_limits *limits)
{
    if (limits->max_message == 0)
        limits->max_message = SMTP__DEFAULT_MESSAGE;
    if (limits->max_recipients == 0)
        limits->max_recipients = SMTP__DEFAULT_RECIPIENTS;
    if (limits->max_command == 0)
        limits->max_command = SMTP__DEFAULT_COMMAND;
    if (limits->max_text_line == 0)
        limits->max_text_line = SMTP__DEFAULT_TEXT_LINE;
    if (limits->max_errors == 0)
        limits->max_errors = SMTP__DEFAULT_ERRORS;
    if (limits->command_timeout == 0)
        limits->command_timeout = SMTP__DEFAULT_COMMAND_S;
    if (limits->data_start_timeout == 0)
        limits->data_start_timeout = SMTP__DEFAULT_START_S;
    if (limits->data_timeout == 0)
        limits->data_timeout = SMTP__DEFAULT_DATA_S;
}

/* Whether our own name can go into a reply line as it is. */
static bool
server_name_ok(const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || len >= SMTP__NAME_SIZE)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] <= ' ' || name[i] == 0x7f)
            return false;
    return true;
}

/*
 * Contract beyond smtp.h: limits may be NULL, and any zero limit takes
 * its default (10 MiB, 100 recipients, 512 and 1000 octets, 10 errors);
 * callbacks may be NULL.  The hostname must be 1 to 255 printable octets
 * without spaces, since it goes into replies as it is.  Errors:
 * SP_EINVAL for a missing or unusable hostname, SP_ENOMEM.  On failure
 * *out is NULL, greeting is as it was, and nothing is left allocated.
 */
int
sp_smtp_session_new(const sp_smtp_limits *limits,
                    const sp_smtp_context *context,
                    const sp_smtp_callbacks *callbacks, sp_smtp_session **out,
                    sp_buf *greeting, sp_error *err)
{
    sp_smtp_session *s;
    size_t before = greeting->len;

    *out = NULL;
    if (context == NULL || context->hostname == NULL ||
        !server_name_ok(context->hostname))
        return sp_err_set(err, SP_EINVAL,
                          "the SMTP server needs a hostname of printable "
                          "characters without spaces, under 256 octets");
    s = sp_calloc(1, sizeof(*s));
    if (s == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");

    /* Copy what the owner gave: it need not outlive this call. */
    if (limits != NULL)
        s->limits = *limits;
    server_limits(&s->limits);
    if (callbacks != NULL)
        s->callbacks = *callbacks;
    s->hostname = sp_strndup(context->hostname, strlen(context->hostname));
    if (context->client_ip != NULL)
        s->client_ip =
            sp_strndup(context->client_ip, strlen(context->client_ip));
    s->tls_available = context->tls_available;
    s->tls_active = context->tls_active;
    s->auth_allowed = context->auth_allowed;
    s->auth_required = context->auth_required;
    s->envelope.tls = context->tls_active;
    if (s->hostname == NULL ||
        (context->client_ip != NULL && s->client_ip == NULL))
        goto nomem;

    smtp__reply(s, greeting, 220, NULL, "%s ESMTP", s->hostname);
    if (s->closed)
        goto nomem;
    smtp__server_enter(s, SMTP__GREETED);
    *out = s;
    return SP_OK;

nomem:
    greeting->len = before;
    if (greeting->data != NULL)
        greeting->data[before] = '\0';
    sp_smtp_session_free(s);
    return sp_err_set(err, SP_ENOMEM, "out of memory");
}

/* Free the session, a waiting message included; NULL is allowed. */
void
sp_smtp_session_free(sp_smtp_session *s)
{
    if (s == NULL)
        return;
    smtp__auth_abort(s);
    smtp__envelope_reset(s);
    smtp__server_wipe(&s->line);
    sp_buf_free(&s->line);
    sp_buf_free(&s->pending);
    sp_free(s->hostname);
    sp_free(s->client_ip);
    sp_free(s);
}

void
smtp__server_wipe(sp_buf *buf)
{
    if (buf->data != NULL)
        explicit_bzero(buf->data, buf->len);
    sp_buf_reset(buf);
}

void
smtp__server_enter(sp_smtp_session *s, smtp__state state)
{
    s->state = state;
    smtp__server_check(s);
}

void
smtp__server_check(const sp_smtp_session *s)
{
    const sp_smtp_envelope *e = &s->envelope;
    bool in_txn =
        s->state == SMTP__MAIL || s->state == SMTP__DATA ||
        s->state == SMTP__CHUNKED || s->state == SMTP__WAIT ||
        (s->state == SMTP__CHUNK && s->chunk_verdict == SMTP__CHUNK_TAKE);

    /* Framing: a kept line is always shorter than the command limit. */
    assert(s->state <= SMTP__TLS);
    assert(s->line.len < s->limits.max_command);
    assert(s->pending.len == 0 || s->state == SMTP__WAIT);

    /* The transaction exists exactly in the transaction states. */
    assert(in_txn == (e->sender != NULL) || s->state == SMTP__CHUNK);
    assert(e->recipient_count <= s->recipient_cap);
    assert(e->recipient_count <= s->limits.max_recipients);
    assert(e->recipient_count == 0 || e->sender != NULL);
    assert(e->recipients != NULL || s->recipient_cap == 0);
    assert(s->body.data.len <= s->limits.max_message);
    assert(s->body.refusal == SMTP__FINE || s->body.data.data == NULL);

    /* Message states need a recipient; idle states hold no data. */
    if (s->state == SMTP__DATA || s->state == SMTP__CHUNKED ||
        s->state == SMTP__WAIT || (in_txn && s->state == SMTP__CHUNK))
        assert(e->recipient_count > 0);
    if (!in_txn)
        assert(s->body.data.data == NULL || s->state == SMTP__CHUNK);

    /* Greeting, authentication and TLS. */
    assert((s->state == SMTP__GREETED) == (e->helo[0] == '\0') ||
           s->state == SMTP__CHUNK || s->state == SMTP__TLS);
    assert(s->authenticated == (e->identity[0] != '\0'));
    assert((s->auth_user != NULL) <= (s->state == SMTP__AUTH));
    assert(s->state != SMTP__AUTH || !s->authenticated);
    assert(s->state != SMTP__TLS || (!s->tls_active && s->line.len == 0));
    assert(e->tls == s->tls_active);
    assert(s->errors <= s->limits.max_errors || s->closed);
}

size_t
smtp__server_memory(const sp_smtp_session *s)
{
    const sp_smtp_envelope *e = &s->envelope;
    size_t total = sizeof(*s) + strlen(s->hostname) + 1;

    if (s->client_ip != NULL)
        total += strlen(s->client_ip) + 1;
    total += s->line.size + s->pending.size + s->body.data.size;
    if (e->sender != NULL)
        total += strlen(e->sender) + 1;
    total += s->recipient_cap * sizeof(char *);
    for (size_t i = 0; i < e->recipient_count; i++)
        total += strlen(e->recipients[i]) + 1;
    if (s->auth_user != NULL)
        total += strlen(s->auth_user) + 1;
    return total;
}

/* What the owner must do now. */
static sp_smtp_next
server_next(const sp_smtp_session *s)
{
    if (s->closed)
        return SP_SMTP_CLOSE;
    if (s->state == SMTP__TLS)
        return SP_SMTP_STARTTLS;
    if (s->state == SMTP__WAIT)
        return SP_SMTP_WAIT;
    return SP_SMTP_READ;
}

/* Whether line[0..len) holds an octet no command may carry. */
static bool
server_has_control(const char *line, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
            return true;
    return false;
}

/*
 * One complete line, LF included: check its ending and its octets, then
 * hand it to the AUTH exchange or the command dispatcher.
 */
static void
server_line_run(sp_smtp_session *s, const char *line, size_t len, sp_buf *out)
{
    bool in_auth = s->state == SMTP__AUTH;

    /* Strip LF and the CR before it; a bare LF only when normalizing. */
    len--;
    if (len > 0 && line[len - 1] == '\r') {
        len--;
    } else if (!s->limits.normalize_eol) {
        smtp__auth_abort(s);
        smtp__reply_error(s, out, 500, "5.5.2",
                          "Line ends with a bare LF; end lines with CRLF");
        return;
    }
    if (server_has_control(line, len)) {
        smtp__auth_abort(s);
        smtp__reply_error(s, out, 500, "5.5.2",
                          "Control character in command line");
        return;
    }

    if (in_auth)
        smtp__auth_line(s, line, len, out);
    else
        smtp__command_run(s, line, len, out);
}

/*
 * The line being read has reached max_command octets: refuse it now and
 * discard its tail (unless its LF is already here).
 */
static void
server_line_too_long(sp_smtp_session *s, bool ended, sp_buf *out)
{
    smtp__server_wipe(&s->line);
    s->discarding = !ended;
    smtp__auth_abort(s);
    smtp__reply_error(s, out, 500, "5.5.6",
                      "Error: line too long (over %zu octets with CRLF)",
                      s->limits.max_command);
}

/*
 * Read command-line octets from p[0..len): complete lines are run where
 * they lie, a partial one is kept in s->line.  Returns the octets used.
 */
static size_t
server_line_feed(sp_smtp_session *s, const char *p, size_t len, sp_buf *out)
{
    const char *lf = memchr(p, '\n', len);
    size_t n = lf != NULL ? (size_t)(lf - p) + 1 : len;
    size_t total = s->line.len + n;

    /* The tail of a refused line, up to its LF. */
    if (s->discarding) {
        s->discarding = lf == NULL;
        return n;
    }

    /* Without its LF, a line of max_command octets can only grow. */
    if (total > s->limits.max_command ||
        (lf == NULL && total >= s->limits.max_command)) {
        server_line_too_long(s, lf != NULL, out);
        return n;
    }

    /* The common case: the whole line is in this input. */
    if (s->line.len == 0 && lf != NULL) {
        server_line_run(s, p, n, out);
        return n;
    }

    if (sp_buf_append(&s->line, p, n) != SP_OK) {
        smtp__server_wipe(&s->line);
        s->discarding = lf == NULL;
        smtp__auth_abort(s);
        smtp__reply(s, out, 451, "4.3.0",
                    "Out of memory; command dropped, try again later");
        return n;
    }
    if (lf != NULL) {
        sp_buf line = s->line;

        /*
         * Detach the line while it runs; then free it, as split lines
         * are rare and an idle session should hold no buffer.
         */
        s->line = (sp_buf)SP_BUF_INIT;
        server_line_run(s, line.data, line.len, out);
        smtp__server_wipe(&line);
        sp_buf_free(&line);
    }
    return n;
}

/*
 * Keep input that follows a finished message, for after
 * sp_smtp_session_done.  When it cannot be kept, the command stream is
 * broken: the session will close after the owner's reply.
 */
static void
server_keep(sp_smtp_session *s, const char *p, size_t len)
{
    if (s->lost_input)
        return;
    if (sp_buf_append(&s->pending, p, len) != SP_OK) {
        sp_buf_free(&s->pending);
        s->lost_input = true;
    }
}

/* Run input through the reader of each state in turn. */
static sp_smtp_next
server_run(sp_smtp_session *s, const char *p, size_t len, sp_buf *out)
{
    s->run_out = out;
    while (len > 0 && !s->closed && s->state != SMTP__WAIT &&
           s->state != SMTP__TLS) {
        size_t used;

        if (s->state == SMTP__DATA)
            used = smtp__data_feed(s, p, len, out);
        else if (s->state == SMTP__CHUNK)
            used = smtp__data_chunk(s, p, len, out);
        else
            used = server_line_feed(s, p, len, out);
        p += used;
        len -= used;
    }

    /*
     * Behind a finished message: kept.  Behind STARTTLS: dropped, as
     * RFC 3207 section 6 requires, so no plaintext reaches the TLS
     * session.  Behind QUIT: dropped.
     */
    if (len > 0 && !s->closed && s->state == SMTP__WAIT)
        server_keep(s, p, len);
    if (s->state == SMTP__TLS || s->closed) {
        smtp__server_wipe(&s->line);
        sp_buf_free(&s->line);
    }
    return server_next(s);
}

/*
 * Contract beyond smtp.h: after SP_SMTP_CLOSE and before
 * sp_smtp_session_tls_started, input is dropped and nothing is appended;
 * while a message waits, input is kept (see server_keep).
 */
sp_smtp_next
sp_smtp_session_input(sp_smtp_session *s, const void *data, size_t len,
                      sp_buf *out)
{
    assert(!s->in_callback);
    if (s->closed || s->state == SMTP__TLS)
        return server_next(s);
    if (s->state == SMTP__WAIT) {
        server_keep(s, data, len);
        return server_next(s);
    }
    return server_run(s, data, len, out);
}

/* The owner's verdict ends the transaction. */
static void
server_verdict(sp_smtp_session *s, const sp_smtp_reply *reply, sp_buf *out)
{
    smtp__reply_owner(s, out, reply);
    smtp__envelope_reset(s);
    smtp__server_enter(s, SMTP__IDLE);
    if (s->lost_input && !s->closed)
        smtp__reply_fatal(s, out);
}

/*
 * Contract beyond smtp.h: the reply is checked as smtp__reply_owner
 * says.  Called when no message waits, it does nothing and returns what
 * the owner must do now.  Called from inside the message callback (an
 * owner that stores messages synchronously), the verdict is sent at once
 * to the out of the call that is running the callback, which then goes
 * on reading; this call's out is not used, and what that call returns
 * is what counts.
 */
sp_smtp_next
sp_smtp_session_done(sp_smtp_session *s, const sp_smtp_reply *reply,
                     sp_buf *out)
{
    sp_buf kept = s->pending;

    if (s->state != SMTP__WAIT)
        return server_next(s);
    if (s->in_callback) {
        server_verdict(s, reply, s->run_out);
        return server_next(s);
    }
    s->pending = (sp_buf)SP_BUF_INIT;
    server_verdict(s, reply, out);

    /* Then what the client pipelined behind the message. */
    if (kept.len > 0 && !s->closed)
        server_run(s, kept.data, kept.len, out);
    sp_buf_free(&kept);
    return server_next(s);
}

/* Ignored unless the session has answered STARTTLS and is not closed. */
void
sp_smtp_session_tls_started(sp_smtp_session *s, bool auth_allowed)
{
    if (s->state != SMTP__TLS || s->closed)
        return;

    /* RFC 3207 section 4.2: forget everything learnt in plaintext. */
    s->tls_active = true;
    s->envelope.tls = true;
    s->auth_allowed = auth_allowed;
    s->authenticated = false;
    s->esmtp = false;
    s->bdat_failed = false;
    memset(s->envelope.helo, 0, sizeof(s->envelope.helo));
    memset(s->envelope.identity, 0, sizeof(s->envelope.identity));
    smtp__server_enter(s, SMTP__GREETED);
}

/*
 * Seconds to wait for input, by state (RFC 5321 4.5.3.2):
 *
 *   commands, SASL lines, between BDAT chunks    300  4.5.3.2.7
 *   after 354, before the first octet of text    120  4.5.3.2.3
 *   inside DATA text, or reading a BDAT chunk    180  4.5.3.2.5
 *   message with the owner (after the final dot) 600  4.5.3.2.6
 *   after 220 to STARTTLS, for the handshake     300  4.5.3.2.7
 *   closed                                         0
 *
 * The first three are the limits' command_timeout, data_start_timeout
 * and data_timeout, shown here at their defaults.
 *
 * While the owner holds a message, 600 is how long the client waits for
 * the reply to its final dot: the owner's deadline, not a read timeout.
 */
unsigned
sp_smtp_session_timeout(const sp_smtp_session *s)
{
    if (s->closed)
        return 0;
    switch (s->state) {
    case SMTP__DATA:
        return s->body.started ? s->limits.data_timeout
                               : s->limits.data_start_timeout;
    case SMTP__CHUNK:
        return s->limits.data_timeout;
    case SMTP__WAIT:
        return 600;
    default:
        return s->limits.command_timeout;
    }
}

/*
 * Message data is flowing: DATA text, a BDAT chunk (even one read only
 * to stay in step), or the BDAT commands between chunks.  Not while the
 * owner holds the message: nothing is read then.
 */
bool
sp_smtp_session_receiving(const sp_smtp_session *s)
{
    return !s->closed && (s->state == SMTP__DATA || s->state == SMTP__CHUNK ||
                          s->state == SMTP__CHUNKED);
}
