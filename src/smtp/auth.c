/*
 * auth.c: SMTP AUTH (RFC 4954) with the PLAIN (RFC 4616) and LOGIN
 * mechanisms.
 *
 * Owns smtp__auth_command, smtp__auth_line and smtp__auth_abort.  The
 * engine decodes the credentials; the owner's authenticate callback
 * checks them and names the identity (without a callback, any
 * credentials pass and the user name is the identity).
 *
 * Replies: 334 challenges; 235 2.7.0 on success; 535 5.7.8 for wrong
 * credentials; 501 5.5.2 for a response that is not base64 or not well
 * formed; 501 5.7.0 when the client cancels with "*"; 504 5.5.4 for
 * another mechanism; 538 5.7.11 when AUTH is not allowed before TLS, 503
 * 5.5.1 when it is not allowed at all, during a transaction, before EHLO
 * or a second time.  Failures other than the cancel count towards
 * max_errors, which bounds password guessing on one connection.
 *
 * PLAIN's authorization identity must be empty or equal to the user: one
 * user acting for another is not offered.  User names with control
 * octets are refused, since the identity reaches logs and Received
 * fields.  Decoded credentials are wiped from memory once used.
 */
#include "smtp_int.h"

#include <stdio.h>
#include <string.h>

/* The base64 challenges of AUTH LOGIN: "Username:", "Password:". */
#define AUTH_USER_PROMPT     "VXNlcm5hbWU6"
#define AUTH_PASSWORD_PROMPT "UGFzc3dvcmQ6"

void
smtp__auth_abort(sp_smtp_session *s)
{
    if (s->auth_user != NULL) {
        explicit_bzero(s->auth_user, strlen(s->auth_user));
        sp_free(s->auth_user);
        s->auth_user = NULL;
    }
    if (s->state == SMTP__AUTH)
        smtp__server_enter(s, SMTP__IDLE);
}

/*
 * Decode a SASL response into raw ("=" is the empty response).  Returns
 * true; or ends the exchange with a reply and returns false.
 */
static bool
auth_decode(sp_smtp_session *s, const char *text, size_t len, sp_buf *raw,
            sp_buf *out)
{
    int rc = SP_OK;

    if (len != 1 || text[0] != '=')
        rc = sp_b64_decode(raw, text, len, NULL);
    if (rc == SP_OK)
        rc = sp_buf_append(raw, "", 0); /* a C string even when empty */
    if (rc == SP_OK)
        return true;

    smtp__server_wipe(raw);
    sp_buf_free(raw);
    smtp__auth_abort(s);
    if (rc == SP_ENOMEM)
        smtp__reply(s, out, 451, "4.3.0", "Out of memory; try again later");
    else
        smtp__reply_error(s, out, 501, "5.5.2",
                          "Cannot decode the response; send base64");
    return false;
}

/* Whether a user name may become an identity: no control octets. */
static bool
auth_user_ok(const char *user)
{
    if (user[0] == '\0')
        return false;
    for (const char *p = user; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

/* Check user and password with the owner and end the exchange. */
static void
auth_verify(sp_smtp_session *s, const char *user, const char *password,
            sp_buf *out)
{
    char *identity = s->envelope.identity;
    bool ok = auth_user_ok(user) && password[0] != '\0';

    memset(identity, 0, SMTP__NAME_SIZE);
    if (ok && s->callbacks.authenticate != NULL)
        ok = s->callbacks.authenticate(s->callbacks.arg, user, password,
                                       identity, SMTP__NAME_SIZE);
    identity[SMTP__NAME_SIZE - 1] = '\0';
    if (ok && identity[0] == '\0')
        snprintf(identity, SMTP__NAME_SIZE, "%s", user);
    if (!ok)
        memset(identity, 0, SMTP__NAME_SIZE);

    s->authenticated = ok;
    smtp__auth_abort(s);
    if (ok)
        smtp__reply(s, out, 235, "2.7.0", "Authentication successful");
    else
        smtp__reply_error(s, out, 535, "5.7.8",
                          "Authentication credentials invalid");
}

/*
 * Split "authzid NUL user NUL password" (RFC 4616 section 2): false
 * unless there are exactly two NULs, so that each part is a C string
 * (the buffer's own NUL ends the password).
 */
static bool
auth_plain_split(const sp_buf *raw, const char **user, const char **password)
{
    const char *end = raw->data + raw->len;
    const char *first = memchr(raw->data, '\0', raw->len);
    const char *second;

    if (first == NULL)
        return false;
    second = memchr(first + 1, '\0', (size_t)(end - first - 1));
    if (second == NULL ||
        memchr(second + 1, '\0', (size_t)(end - second - 1)) != NULL)
        return false;
    *user = first + 1;
    *password = second + 1;
    return true;
}

/* PLAIN: the credentials in one response. */
static void
auth_plain(sp_smtp_session *s, const char *text, size_t len, sp_buf *out)
{
    sp_buf raw = SP_BUF_INIT;
    const char *user, *password;

    if (!auth_decode(s, text, len, &raw, out))
        return;
    if (!auth_plain_split(&raw, &user, &password)) {
        smtp__auth_abort(s);
        smtp__reply_error(s, out, 501, "5.5.2",
                          "Malformed PLAIN response; send "
                          "authzid NUL user NUL password");
    } else if (raw.data[0] != '\0' && strcmp(raw.data, user) != 0) {
        /* The authorization identity names someone else. */
        smtp__auth_abort(s);
        smtp__reply_error(s, out, 535, "5.7.8",
                          "Authentication credentials invalid");
    } else {
        auth_verify(s, user, password, out);
    }
    smtp__server_wipe(&raw);
    sp_buf_free(&raw);
}

/*
 * One LOGIN response, which must not hold a NUL.  Returns the decoded
 * text in raw, or false after ending the exchange with a reply.
 */
static bool
auth_login_decode(sp_smtp_session *s, const char *text, size_t len, sp_buf *raw,
                  sp_buf *out)
{
    if (!auth_decode(s, text, len, raw, out))
        return false;
    if (memchr(raw->data, '\0', raw->len) == NULL)
        return true;
    smtp__server_wipe(raw);
    sp_buf_free(raw);
    smtp__auth_abort(s);
    smtp__reply_error(s, out, 501, "5.5.2", "Malformed LOGIN response");
    return false;
}

/* Wait for the next response line at step, after a 334 challenge. */
static void
auth_challenge(sp_smtp_session *s, smtp__auth_step step, const char *prompt,
               sp_buf *out)
{
    s->auth_step = step;
    smtp__server_enter(s, SMTP__AUTH);
    smtp__reply(s, out, 334, NULL, "%s", prompt);
}

/* LOGIN's user name: kept until the password comes. */
static void
auth_login_user(sp_smtp_session *s, const char *text, size_t len, sp_buf *out)
{
    sp_buf raw = SP_BUF_INIT;

    if (!auth_login_decode(s, text, len, &raw, out))
        return;
    /* The decoded buffer becomes the kept name. */
    smtp__auth_abort(s);
    s->auth_user = raw.data;
    auth_challenge(s, SMTP__AUTH_PASSWORD, AUTH_PASSWORD_PROMPT, out);
}

/* LOGIN's password: the exchange ends. */
static void
auth_login_password(sp_smtp_session *s, const char *text, size_t len,
                    sp_buf *out)
{
    sp_buf raw = SP_BUF_INIT;
    char *user = s->auth_user;

    if (!auth_login_decode(s, text, len, &raw, out))
        return;
    s->auth_user = NULL;
    auth_verify(s, user, raw.data, out);
    explicit_bzero(user, strlen(user));
    sp_free(user);
    smtp__server_wipe(&raw);
    sp_buf_free(&raw);
}

void
smtp__auth_line(sp_smtp_session *s, const char *line, size_t len, sp_buf *out)
{
    /* RFC 4954 section 4: "*" cancels, answered 501. */
    if (len == 1 && line[0] == '*') {
        smtp__auth_abort(s);
        smtp__reply(s, out, 501, "5.7.0", "Authentication cancelled");
        return;
    }
    switch (s->auth_step) {
    case SMTP__AUTH_PLAIN:
        auth_plain(s, line, len, out);
        break;
    case SMTP__AUTH_USER:
        auth_login_user(s, line, len, out);
        break;
    case SMTP__AUTH_PASSWORD:
        auth_login_password(s, line, len, out);
        break;
    }
}

/* Whether AUTH may start now; else the refusal has been sent. */
static bool
auth_allowed_now(sp_smtp_session *s, sp_buf *out)
{
    if (s->state == SMTP__GREETED) {
        smtp__reply_error(s, out, 503, "5.5.1", "Error: send EHLO first");
    } else if (!s->auth_allowed && s->tls_available && !s->tls_active) {
        smtp__reply_error(s, out, 538, "5.7.11",
                          "Encryption required for requested authentication "
                          "mechanism; send STARTTLS first");
    } else if (!s->auth_allowed) {
        smtp__reply_error(s, out, 503, "5.5.1",
                          "Error: authentication not enabled");
    } else if (s->authenticated) {
        smtp__reply_error(s, out, 503, "5.5.1", "Error: already authenticated");
    } else if (s->state != SMTP__IDLE) {
        smtp__reply_error(s, out, 503, "5.5.1",
                          "Error: MAIL transaction in progress");
    } else {
        return true;
    }
    return false;
}

void
smtp__auth_command(sp_smtp_session *s, const char *args, size_t len,
                   sp_buf *out)
{
    size_t mech = 0, resp;

    if (!auth_allowed_now(s, out))
        return;

    /* The mechanism, then the optional initial response. */
    while (mech < len && args[mech] != ' ')
        mech++;
    for (resp = mech; resp < len && args[resp] == ' '; resp++)
        ;
    if (smtp__command_is(args, mech, "PLAIN")) {
        if (resp < len)
            auth_plain(s, args + resp, len - resp, out);
        else
            auth_challenge(s, SMTP__AUTH_PLAIN, "", out);
    } else if (smtp__command_is(args, mech, "LOGIN")) {
        if (resp < len)
            auth_login_user(s, args + resp, len - resp, out);
        else
            auth_challenge(s, SMTP__AUTH_USER, AUTH_USER_PROMPT, out);
    } else if (mech == 0) {
        smtp__reply_error(s, out, 501, "5.5.4",
                          "Syntax: AUTH mechanism [initial-response]");
    } else {
        smtp__reply_error(s, out, 504, "5.5.4",
                          "Unrecognized authentication type");
    }
}
