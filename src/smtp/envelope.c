/*
 * envelope.c: MAIL FROM and RCPT TO, the transaction they build, and its
 * end.
 *
 * Owns smtp__envelope_mail, smtp__envelope_rcpt and smtp__envelope_reset.
 * MAIL takes the parameters this server offers: SIZE (RFC 1870), BODY=
 * 7BIT or 8BITMIME (RFC 6152; BINARYMIME is not offered and is refused
 * with 555), SMTPUTF8 (RFC 6531) and, while AUTH is offered, AUTH= (RFC
 * 4954 section 5, accepted and ignored: the submitter's identity is the
 * authenticated one).  RCPT takes none.  Any other parameter is 555
 * 5.5.4; a malformed or repeated one is 501 5.5.4.
 *
 * Checks run in a fixed order, cheapest and most certain first: session
 * state, syntax, limits, then the owner's callback, which sees only
 * addresses that passed them.  Sequence and syntax errors count towards
 * max_errors; the limits (552, 452) and the owner's refusals do not.
 */
#include "smtp_int.h"

#include <string.h>

/* The MAIL parameters seen so far. */
typedef struct envelope_params {
    bool size_seen; /* SIZE= given */
    bool body_seen; /* BODY= given */
    bool utf8_seen; /* SMTPUTF8 given */
    bool auth_seen; /* AUTH= given */
    bool too_big;   /* SIZE over max_message (or over size_t) */
    bool eightbit;  /* BODY=8BITMIME */
    size_t size;    /* the SIZE value, when given and not too_big */
} envelope_params;

void
smtp__envelope_reset(sp_smtp_session *s)
{
    sp_smtp_envelope *e = &s->envelope;

    sp_free(e->sender);
    e->sender = NULL;
    for (size_t i = 0; i < e->recipient_count; i++)
        sp_free(e->recipients[i]);
    sp_free(e->recipients);
    e->recipients = NULL;
    e->recipient_count = 0;
    e->eightbit = false;
    e->declared_size = 0;
    e->smtputf8 = false;
    s->recipient_cap = 0;
    s->rcpt_tried = false;
    sp_buf_free(&s->body.data);
    memset(&s->body, 0, sizeof(s->body));
}

/*
 * "FROM:" or "TO:" (any case) and optional spaces before the path, which
 * some clients send although RFC 5321 has none.  Returns the offset of
 * the path, or 0 when the keyword is missing.
 */
static size_t
envelope_keyword(const char *args, size_t len, const char *keyword)
{
    size_t at = strlen(keyword);

    if (len < at || !smtp__command_is(args, at, keyword))
        return 0;
    while (at < len && args[at] == ' ')
        at++;
    return at;
}

/*
 * A decimal SIZE value into *size; *over when it exceeds limit or size_t.
 */
static bool
envelope_size(const char *value, size_t len, size_t limit, size_t *out,
              bool *over)
{
    size_t size = 0;

    if (len == 0 || len > 20)
        return false;
    *over = false;
    for (size_t i = 0; i < len; i++) {
        if (value[i] < '0' || value[i] > '9')
            return false;
        if (size > (SIZE_MAX - 9) / 10)
            *over = true;
        else
            size = size * 10 + (size_t)(value[i] - '0');
    }
    *over = *over || size > limit;
    *out = size;
    return true;
}

/* The flag of a MAIL keyword this session takes, or NULL. */
static bool *
envelope_param_slot(const sp_smtp_session *s, envelope_params *p,
                    const char *word, size_t klen)
{
    if (smtp__command_is(word, klen, "SIZE"))
        return &p->size_seen;
    if (smtp__command_is(word, klen, "BODY"))
        return &p->body_seen;
    if (smtp__command_is(word, klen, "SMTPUTF8"))
        return &p->utf8_seen;
    if (smtp__command_is(word, klen, "AUTH") &&
        (s->auth_allowed || s->authenticated))
        return &p->auth_seen;
    return NULL;
}

/*
 * The value of the parameter whose flag is seen (value NULL when there
 * is no "=").  Returns NULL when it is good, else the refusal's text and
 * *code.
 */
static const char *
envelope_param_value(const sp_smtp_session *s, envelope_params *p,
                     const bool *seen, const char *value, size_t vlen,
                     int *code)
{
    *code = 501;
    if (seen == &p->size_seen)
        return envelope_size(value, vlen, s->limits.max_message, &p->size,
                             &p->too_big)
                   ? NULL
                   : "Bad SIZE parameter";
    if (seen == &p->body_seen) {
        p->eightbit =
            value != NULL && smtp__command_is(value, vlen, "8BITMIME");
        if (value != NULL && smtp__command_is(value, vlen, "BINARYMIME")) {
            *code = 555;
            return "BODY=BINARYMIME is not supported";
        }
        if (!p->eightbit &&
            (value == NULL || !smtp__command_is(value, vlen, "7BIT")))
            return "Bad BODY parameter; use 7BIT or 8BITMIME";
        return NULL;
    }
    if (seen == &p->utf8_seen)
        return value != NULL ? "Bad SMTPUTF8 parameter" : NULL;
    return vlen == 0 ? "Bad AUTH parameter" : NULL;
}

/*
 * One MAIL parameter, keyword[=value].  Returns true when taken; else
 * the refusal has been sent.
 */
static bool
envelope_param(sp_smtp_session *s, envelope_params *p, const char *word,
               size_t len, sp_buf *out)
{
    const char *eq = memchr(word, '=', len);
    size_t klen = eq != NULL ? (size_t)(eq - word) : len;
    int shown = (int)(klen < 32 ? klen : 32);
    bool *seen = envelope_param_slot(s, p, word, klen);
    const char *why;
    int code;

    if (seen == NULL) {
        smtp__reply_error(s, out, 555, "5.5.4",
                          "Unsupported MAIL parameter %.*s", shown, word);
        return false;
    }
    if (*seen) {
        smtp__reply_error(s, out, 501, "5.5.4", "Repeated MAIL parameter %.*s",
                          shown, word);
        return false;
    }
    *seen = true;
    why = envelope_param_value(s, p, seen, eq != NULL ? eq + 1 : NULL,
                               eq != NULL ? len - klen - 1 : 0, &code);
    if (why != NULL)
        smtp__reply_error(s, out, code, "5.5.4", "%s", why);
    return why == NULL;
}

/*
 * The parameters after the path, separated by spaces.  Returns true when
 * all were taken; else the refusal has been sent.
 */
static bool
envelope_params_parse(sp_smtp_session *s, envelope_params *p, const char *text,
                      size_t len, sp_buf *out)
{
    size_t at = 0;

    memset(p, 0, sizeof(*p));
    if (len > 0 && text[0] != ' ') {
        smtp__reply_error(s, out, 501, "5.5.4",
                          "Syntax: MAIL FROM:<address> [parameters]");
        return false;
    }
    while (at < len) {
        size_t word;

        while (at < len && text[at] == ' ')
            at++;
        for (word = at; at < len && text[at] != ' '; at++)
            ;
        if (at > word && !envelope_param(s, p, text + word, at - word, out))
            return false;
    }
    return true;
}

/*
 * The owner's verdict on a sender or recipient: true to accept.  The
 * reply is sent here, the owner's or dflt.
 */
static bool
envelope_verdict(sp_smtp_session *s, const sp_smtp_reply *reply,
                 const char *dflt_enhanced, const char *dflt_text, sp_buf *out)
{
    if (reply->code == 0) {
        smtp__reply(s, out, 250, dflt_enhanced, "%s", dflt_text);
        return true;
    }
    return smtp__reply_owner(s, out, reply) / 100 == 2;
}

/* Whether MAIL may start now; else the refusal has been sent. */
static bool
envelope_mail_allowed(sp_smtp_session *s, sp_buf *out)
{
    if (s->state == SMTP__GREETED) {
        smtp__reply_error(s, out, 503, "5.5.1", "Error: send HELO/EHLO first");
        return false;
    }
    if (s->state != SMTP__IDLE) {
        smtp__reply_error(s, out, 503, "5.5.1", "Error: nested MAIL command");
        return false;
    }
    if (s->auth_required && !s->authenticated &&
        s->callbacks.open_recipient == NULL) {
        smtp__reply_error(s, out, 530, "5.7.0",
                          s->auth_allowed ? "Authentication required; send "
                                            "AUTH with an API key"
                          : s->tls_available && !s->tls_active
                              ? "Authentication required; send STARTTLS, "
                                "then AUTH"
                              : "Authentication required");
        return false;
    }
    return true;
}

/*
 * MAIL's arguments: "FROM:", the path, the parameters, then what they
 * allow.  Returns true with path and params filled; else the refusal has
 * been sent.
 */
static bool
envelope_mail_parse(sp_smtp_session *s, const char *args, size_t len,
                    smtp__path *path, envelope_params *params, sp_buf *out)
{
    size_t at = envelope_keyword(args, len, "FROM:");

    if (at == 0) {
        smtp__reply_error(s, out, 501, "5.5.4", "Syntax: MAIL FROM:<address>");
        return false;
    }
    if (smtp__path_parse(args + at, len - at, SMTP__PATH_NULL, path) != SP_OK) {
        smtp__reply_error(s, out, 501, "5.1.7", "Bad sender address syntax");
        return false;
    }
    at += path->end;
    if (!envelope_params_parse(s, params, args + at, len - at, out))
        return false;

    /* Limits, then what the declared parameters allow. */
    if (params->too_big) {
        smtp__reply(s, out, 552, "5.3.4",
                    "Message size exceeds the limit of %zu octets",
                    s->limits.max_message);
        return false;
    }
    if (path->utf8 && !params->utf8_seen) {
        smtp__reply_error(s, out, 553, "5.6.7",
                          "Non-ASCII address needs the SMTPUTF8 parameter");
        return false;
    }
    return true;
}

void
smtp__envelope_mail(sp_smtp_session *s, const char *args, size_t len,
                    sp_buf *out)
{
    sp_smtp_envelope *e = &s->envelope;
    sp_smtp_reply reply = {0};
    envelope_params params;
    smtp__path path;

    if (!envelope_mail_allowed(s, out) ||
        !envelope_mail_parse(s, args, len, &path, &params, out))
        return;
    e->sender = sp_strndup(path.mailbox, path.mailbox_len);
    if (e->sender == NULL) {
        smtp__reply(s, out, 451, "4.3.0", "Out of memory; try again later");
        return;
    }
    e->eightbit = params.eightbit;
    e->declared_size = params.size;
    e->smtputf8 = params.utf8_seen;

    /* The owner decides. */
    if (s->callbacks.mail != NULL)
        s->callbacks.mail(s->callbacks.arg, e, &reply);
    if (!envelope_verdict(s, &reply, "2.1.0", "Sender OK", out)) {
        smtp__envelope_reset(s);
        return;
    }
    smtp__server_enter(s, SMTP__MAIL);
}

/* Room for one more recipient; false when memory ran out. */
static bool
envelope_grow(sp_smtp_session *s)
{
    sp_smtp_envelope *e = &s->envelope;
    size_t cap = s->recipient_cap ? s->recipient_cap * 2 : 4;
    char **grown;

    if (e->recipient_count < s->recipient_cap)
        return true;
    grown = sp_realloc(e->recipients, cap * sizeof(*grown));
    if (grown == NULL)
        return false;
    e->recipients = grown;
    s->recipient_cap = cap;
    return true;
}

/* Whether RCPT may come now; else the refusal has been sent. */
static bool
envelope_rcpt_allowed(sp_smtp_session *s, sp_buf *out)
{
    const char *why = NULL;

    if (s->state == SMTP__GREETED)
        why = "Error: send HELO/EHLO first";
    else if (s->state == SMTP__CHUNKED)
        why = "Error: RCPT after BDAT";
    else if (s->state != SMTP__MAIL)
        why = "Error: need MAIL command";
    if (why != NULL)
        smtp__reply_error(s, out, 503, "5.5.1", "%s", why);
    return why == NULL;
}

/*
 * RCPT's arguments: "TO:" and the path, nothing after it.  Returns true
 * with path filled; else the refusal has been sent.
 */
static bool
envelope_rcpt_parse(sp_smtp_session *s, const char *args, size_t len,
                    smtp__path *path, sp_buf *out)
{
    size_t at = envelope_keyword(args, len, "TO:");

    if (at == 0) {
        smtp__reply_error(s, out, 501, "5.5.4", "Syntax: RCPT TO:<address>");
        return false;
    }
    if (smtp__path_parse(args + at, len - at, SMTP__PATH_POSTMASTER, path) !=
        SP_OK) {
        smtp__reply_error(s, out, 501, "5.1.3", "Bad recipient address syntax");
        return false;
    }
    if (at + path->end < len) {
        smtp__reply_error(s, out, 555, "5.5.4",
                          "RCPT parameters are not supported");
        return false;
    }
    if (path->utf8 && !s->envelope.smtputf8) {
        smtp__reply_error(s, out, 553, "5.6.7",
                          "Non-ASCII address needs SMTPUTF8 in MAIL FROM");
        return false;
    }
    return true;
}

void
smtp__envelope_rcpt(sp_smtp_session *s, const char *args, size_t len,
                    sp_buf *out)
{
    sp_smtp_envelope *e = &s->envelope;
    sp_smtp_reply reply = {0};
    smtp__path path;
    char *recipient;

    if (!envelope_rcpt_allowed(s, out) ||
        !envelope_rcpt_parse(s, args, len, &path, out))
        return;

    /* The recipient limit: RFC 5321 4.5.3.1.10 asks for 452. */
    s->rcpt_tried = true;
    if (e->recipient_count >= s->limits.max_recipients) {
        smtp__reply(s, out, 452, "4.5.3", "Too many recipients");
        return;
    }
    recipient = sp_strndup(path.mailbox, path.mailbox_len);
    if (recipient == NULL || !envelope_grow(s)) {
        sp_free(recipient);
        smtp__reply(s, out, 451, "4.3.0", "Out of memory; try again later");
        return;
    }

    /* Without AUTH where it is required, only the open recipients. */
    if (s->auth_required && !s->authenticated &&
        !s->callbacks.open_recipient(s->callbacks.arg, recipient)) {
        sp_free(recipient);
        smtp__reply_error(s, out, 530, "5.7.0",
                          "Authentication required for this recipient");
        return;
    }

    /* The owner decides. */
    if (s->callbacks.rcpt != NULL)
        s->callbacks.rcpt(s->callbacks.arg, e, recipient, &reply);
    if (!envelope_verdict(s, &reply, "2.1.5", "Recipient OK", out)) {
        sp_free(recipient);
        return;
    }
    e->recipients[e->recipient_count++] = recipient;
    smtp__server_check(s);
}
