/*
 * command.c: the verbs of the submission server.
 *
 * Owns smtp__command_run, which splits a command line into verb and
 * arguments and calls the verb's handler, smtp__command_is, and the
 * handlers of the verbs that touch no transaction: EHLO, HELO, RSET,
 * NOOP, QUIT, VRFY, HELP and STARTTLS.  MAIL and RCPT live in
 * envelope.c, DATA and BDAT in data.c, AUTH in auth.c.
 *
 * Verbs are matched without regard to case.  Spaces after the verb and at
 * the end of the line are tolerated, as clients in the field send them.
 * EXPN, TURN and the other verbs RFC 5321 retired are known and answered
 * 502; anything else is 500.  Both count as client errors.
 *
 * The EHLO and HELO replies carry no enhanced status code (RFC 2034
 * section 3); the EHLO keywords depend on the session: STARTTLS while TLS
 * is available and not active, AUTH while the owner allows it.
 */
#include "smtp_int.h"

#include <stdio.h>
#include <string.h>

typedef void command_handler(sp_smtp_session *s, const char *args, size_t len,
                             sp_buf *out);

bool
smtp__command_is(const char *text, size_t len, const char *word)
{
    size_t i = 0;

    for (; i < len && word[i] != '\0'; i++) {
        char a = text[i], b = word[i];

        if (a >= 'A' && a <= 'Z')
            a = (char)(a - 'A' + 'a');
        if (b >= 'A' && b <= 'Z')
            b = (char)(b - 'A' + 'a');
        if (a != b)
            return false;
    }
    return i == len && word[i] == '\0';
}

/*
 * The first word of the EHLO/HELO argument, copied into the envelope:
 * printable ASCII or well-formed UTF-8, at most 255 octets.
 */
static bool
command_helo_name(sp_smtp_session *s, const char *args, size_t len)
{
    const unsigned char *a = (const unsigned char *)args;
    size_t end = 0;

    while (end < len && a[end] != ' ') {
        if (a[end] >= 0x80) {
            size_t n = smtp__path_utf8(a + end, len - end);

            if (n == 0)
                return false;
            end += n;
        } else {
            end++;
        }
    }
    if (end == 0 || end >= SMTP__NAME_SIZE)
        return false;
    memcpy(s->envelope.helo, args, end);
    s->envelope.helo[end] = '\0';
    return true;
}

/* EHLO and HELO: a greeting resets any transaction (RFC 5321 4.1.4). */
static bool
command_greet(sp_smtp_session *s, const char *verb, const char *args,
              size_t len, sp_buf *out)
{
    char keep[SMTP__NAME_SIZE];

    memcpy(keep, s->envelope.helo, sizeof(keep));
    if (len == 0 || !command_helo_name(s, args, len)) {
        memcpy(s->envelope.helo, keep, sizeof(keep));
        smtp__reply_error(s, out, 501, "5.5.4", "Syntax: %s hostname", verb);
        return false;
    }
    smtp__envelope_reset(s);
    s->bdat_failed = false;
    smtp__server_enter(s, SMTP__IDLE);
    return true;
}

static void
command_ehlo(sp_smtp_session *s, const char *args, size_t len, sp_buf *out)
{
    const char *lines[12];
    size_t count = 0;
    char size[32];

    if (!command_greet(s, "EHLO", args, len, out))
        return;
    s->esmtp = true;

    /* The keywords this session offers, one per line. */
    snprintf(size, sizeof(size), "SIZE %zu", s->limits.max_message);
    lines[count++] = s->hostname;
    lines[count++] = "PIPELINING";
    lines[count++] = size;
    lines[count++] = "8BITMIME";
    lines[count++] = "SMTPUTF8";
    lines[count++] = "ENHANCEDSTATUSCODES";
    lines[count++] = "CHUNKING";
    if (s->tls_available && !s->tls_active)
        lines[count++] = "STARTTLS";
    if (s->auth_allowed)
        lines[count++] = "AUTH PLAIN LOGIN";
    for (size_t i = 0; i < count; i++)
        smtp__reply_line(s, out, 250, i + 1 < count, NULL, "%s", lines[i]);
}

static void
command_helo(sp_smtp_session *s, const char *args, size_t len, sp_buf *out)
{
    if (!command_greet(s, "HELO", args, len, out))
        return;
    s->esmtp = false;
    smtp__reply(s, out, 250, NULL, "%s", s->hostname);
}

static void
command_rset(sp_smtp_session *s, const char *args, size_t len, sp_buf *out)
{
    (void)args;
    if (len > 0) {
        smtp__reply_error(s, out, 501, "5.5.4", "Syntax: RSET");
        return;
    }
    smtp__envelope_reset(s);
    s->bdat_failed = false;
    if (s->state != SMTP__GREETED)
        smtp__server_enter(s, SMTP__IDLE);
    smtp__reply(s, out, 250, "2.0.0", "OK");
}

static void
command_noop(sp_smtp_session *s, const char *args, size_t len, sp_buf *out)
{
    (void)args;
    (void)len;
    smtp__reply(s, out, 250, "2.0.0", "OK");
}

/* QUIT ends the session whatever follows it on the line. */
static void
command_quit(sp_smtp_session *s, const char *args, size_t len, sp_buf *out)
{
    (void)args;
    (void)len;
    smtp__reply(s, out, 221, "2.0.0", "%s closing connection", s->hostname);
    s->closed = true;
}

/* RFC 5321 3.5.3: 252 says neither yes nor no, which leaks nothing. */
static void
command_vrfy(sp_smtp_session *s, const char *args, size_t len, sp_buf *out)
{
    (void)args;
    if (len == 0) {
        smtp__reply_error(s, out, 501, "5.5.4", "Syntax: VRFY address");
        return;
    }
    smtp__reply(s, out, 252, "2.0.0",
                "Cannot VRFY user; send the message and delivery will be "
                "attempted");
}

static void
command_help(sp_smtp_session *s, const char *args, size_t len, sp_buf *out)
{
    (void)args;
    (void)len;
    smtp__reply(s, out, 214, "2.0.0",
                "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT "
                "VRFY HELP STARTTLS AUTH");
}

/*
 * STARTTLS: 220, then the state in which input is discarded until the
 * owner reports the handshake done (sp_smtp_session_tls_started).
 */
static void
command_starttls(sp_smtp_session *s, const char *args, size_t len, sp_buf *out)
{
    (void)args;
    if (len > 0) {
        smtp__reply_error(s, out, 501, "5.5.4", "Syntax: STARTTLS");
    } else if (s->tls_active) {
        smtp__reply_error(s, out, 503, "5.5.1", "Error: TLS already active");
    } else if (!s->tls_available) {
        smtp__reply_error(s, out, 502, "5.5.1",
                          "Error: STARTTLS not available");
    } else if (s->state == SMTP__GREETED) {
        smtp__reply_error(s, out, 503, "5.5.1", "Error: send EHLO first");
    } else if (s->state != SMTP__IDLE) {
        smtp__reply_error(s, out, 503, "5.5.1",
                          "Error: MAIL transaction in progress");
    } else {
        smtp__reply(s, out, 220, "2.0.0", "Ready to start TLS");
        smtp__server_enter(s, SMTP__TLS);
    }
}

static void
command_not_implemented(sp_smtp_session *s, const char *args, size_t len,
                        sp_buf *out)
{
    (void)args;
    (void)len;
    smtp__reply_error(s, out, 502, "5.5.1", "Error: command not implemented");
}

static const struct command_verb {
    const char *name;     /* the verb, upper case */
    command_handler *run; /* its handler */
} command_verbs[] = {
    {"EHLO", command_ehlo},
    {"HELO", command_helo},
    {"MAIL", smtp__envelope_mail},
    {"RCPT", smtp__envelope_rcpt},
    {"DATA", smtp__data_command},
    {"BDAT", smtp__data_bdat},
    {"RSET", command_rset},
    {"NOOP", command_noop},
    {"QUIT", command_quit},
    {"VRFY", command_vrfy},
    {"HELP", command_help},
    {"STARTTLS", command_starttls},
    {"AUTH", smtp__auth_command},
    {"EXPN", command_not_implemented},
    {"TURN", command_not_implemented},
    {"ETRN", command_not_implemented},
    {"ATRN", command_not_implemented},
    {"SEND", command_not_implemented},
    {"SOML", command_not_implemented},
    {"SAML", command_not_implemented},
};

void
smtp__command_run(sp_smtp_session *s, const char *line, size_t len, sp_buf *out)
{
    size_t verb = 0, args;

    /* The verb ends at the first space; arguments are trimmed. */
    while (verb < len && line[verb] != ' ')
        verb++;
    args = verb;
    while (args < len && line[args] == ' ')
        args++;
    while (len > args && line[len - 1] == ' ')
        len--;

    for (size_t i = 0; i < sizeof(command_verbs) / sizeof(command_verbs[0]);
         i++) {
        if (smtp__command_is(line, verb, command_verbs[i].name)) {
            command_verbs[i].run(s, line + args, len - args, out);
            return;
        }
    }
    smtp__reply_error(s, out, 500, "5.5.2", "Error: command not recognized");
}
