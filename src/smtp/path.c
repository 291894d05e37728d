/*
 * path.c: the syntax of the paths in MAIL FROM and RCPT TO.
 *
 * Owns smtp__path_parse, smtp__path_utf8 and sp_smtp_mailbox_valid.  The
 * grammar is RFC 5321 section 4.1.2, widened by RFC 6531 section 3.3 to UTF-8
 * in atoms, quoted strings and domain labels; the caller refuses UTF-8 unless
 * the client declared SMTPUTF8.  Source routes ("@a,@b:") are checked and
 * dropped, as RFC 5321 4.1.1.3 asks of a server.
 *
 * Limits: a mailbox over 254 octets is refused (the 256-octet path of
 * RFC 5321 4.5.3.1.3 less its brackets); local parts are not held to 64
 * octets, as 4.5.3.1 asks servers to be liberal there.  Address literals
 * are checked as RFC 5321's dcontent only, not as IP addresses: the
 * owner's recipient policy decides what it delivers to.
 */
#include "smtp_int.h"

#include <stdio.h>
#include <string.h>

#define PATH_MAX_MAILBOX 254
#define PATH_MAX_DOMAIN  255
#define PATH_MAX_LABEL   63

size_t
smtp__path_utf8(const unsigned char *text, size_t len)
{
    unsigned char c = text[0];
    size_t need;
    unsigned long cp;

    /* The lead octet gives the length and the first bits. */
    if (c >= 0xc2 && c <= 0xdf) {
        need = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len < need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((text[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (text[i] & 0x3f);
    }

    /* Overlong forms, surrogates and values past Unicode are invalid. */
    if ((need == 3 && cp < 0x800) || (need == 4 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0;
    return need;
}

/* RFC 5321 atext, less the UTF-8 that the caller checks separately. */
static bool
path_atext(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

static bool
path_letdig(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9');
}

/*
 * Consume one UTF-8 sequence at text[*at] (which is >= 0x80), flagging
 * path->utf8; false when it is malformed.
 */
static bool
path_take_utf8(const unsigned char *text, size_t len, size_t *at,
               smtp__path *path)
{
    size_t n = smtp__path_utf8(text + *at, len - *at);

    if (n == 0)
        return false;
    *at += n;
    path->utf8 = true;
    return true;
}

/*
 * A domain at text[*at]: sub-domains of letters, digits and inner
 * hyphens (UTF-8 counting as letters), or an address literal in
 * brackets.  Stops before the first octet that cannot continue it.
 */
static bool
path_domain(const unsigned char *text, size_t len, size_t *at, smtp__path *path)
{
    size_t start = *at, i = *at, label = 0;

    /* "[" 1*dcontent "]": dcontent is %d33-90 / %d94-126. */
    if (i < len && text[i] == '[') {
        for (i++; i < len && text[i] >= 33 && text[i] <= 126 &&
                  text[i] != '[' && text[i] != '\\' && text[i] != ']';
             i++)
            ;
        if (i == start + 1 || i >= len || text[i] != ']')
            return false;
        *at = i + 1;
        return true;
    }

    while (i < len) {
        if (text[i] == '.') {
            if (label == 0 || text[i - 1] == '-')
                return false;
            label = 0;
            i++;
        } else if (text[i] >= 0x80) {
            size_t before = i;

            if (!path_take_utf8(text, len, &i, path))
                return false;
            label += i - before;
        } else if (path_letdig(text[i]) || (text[i] == '-' && label > 0)) {
            label++;
            i++;
        } else {
            break;
        }
        if (label > PATH_MAX_LABEL)
            return false;
    }
    if (label == 0 || text[i - 1] == '-' || i - start > PATH_MAX_DOMAIN)
        return false;
    *at = i;
    return true;
}

/* A source route "@a,@b:" at text[*at]: checked, then skipped. */
static bool
path_route(const unsigned char *text, size_t len, size_t *at, smtp__path *path)
{
    size_t i = *at;

    for (;;) {
        if (i >= len || text[i] != '@')
            return false;
        i++;
        if (!path_domain(text, len, &i, path))
            return false;
        if (i < len && text[i] == ':') {
            *at = i + 1;
            return true;
        }
        if (i >= len || text[i] != ',')
            return false;
        i++;
    }
}

/* A quoted local part at text[*at] == '"'. */
static bool
path_quoted(const unsigned char *text, size_t len, size_t *at, smtp__path *path)
{
    size_t i = *at + 1;

    while (i < len && text[i] != '"') {
        unsigned char c = text[i];

        /* quoted-pairSMTP: a backslash and one printable ASCII octet. */
        if (c == '\\') {
            if (i + 1 >= len || text[i + 1] < 32 || text[i + 1] > 126)
                return false;
            i += 2;
        } else if (c >= 0x80) {
            if (!path_take_utf8(text, len, &i, path))
                return false;
        } else if (c >= 32 && c <= 126) {
            i++;
        } else {
            return false;
        }
    }
    if (i >= len)
        return false;
    *at = i + 1;
    return true;
}

/* A dot-string local part at text[*at]: atoms between single dots. */
static bool
path_dot_string(const unsigned char *text, size_t len, size_t *at,
                smtp__path *path)
{
    size_t i = *at, atom = 0;

    while (i < len) {
        if (text[i] == '.') {
            if (atom == 0)
                return false;
            atom = 0;
            i++;
        } else if (text[i] >= 0x80) {
            if (!path_take_utf8(text, len, &i, path))
                return false;
            atom++;
        } else if (path_atext(text[i])) {
            atom++;
            i++;
        } else {
            break;
        }
    }
    if (atom == 0)
        return false;
    *at = i;
    return true;
}

int
smtp__path_parse(const char *text, size_t len, unsigned flags, smtp__path *path)
{
    const unsigned char *t = (const unsigned char *)text;
    size_t at = 1, local_at;

    memset(path, 0, sizeof(*path));
    if (len < 2 || t[0] != '<')
        return SP_ESYNTAX;

    /* The null reverse-path. */
    if (t[1] == '>') {
        path->mailbox = text + 1;
        path->end = 2;
        return (flags & SMTP__PATH_NULL) ? SP_OK : SP_ESYNTAX;
    }

    /* Source route: checked, then dropped from what the owner sees. */
    if (t[at] == '@' && !path_route(t, len, &at, path))
        return SP_ESYNTAX;
    if (at >= len)
        return SP_ESYNTAX;

    /* Local part, then "@" domain, or Postmaster alone. */
    local_at = at;
    if (t[at] == '"' ? !path_quoted(t, len, &at, path)
                     : !path_dot_string(t, len, &at, path))
        return SP_ESYNTAX;
    if (at < len && t[at] == '@') {
        at++;
        if (!path_domain(t, len, &at, path))
            return SP_ESYNTAX;
    } else if (!(flags & SMTP__PATH_POSTMASTER) ||
               !smtp__command_is(text + local_at, at - local_at,
                                 "postmaster")) {
        return SP_ESYNTAX;
    }
    if (at >= len || t[at] != '>' || at - local_at > PATH_MAX_MAILBOX)
        return SP_ESYNTAX;

    path->mailbox = text + local_at;
    path->mailbox_len = at - local_at;
    path->end = at + 1;
    return SP_OK;
}

bool
sp_smtp_mailbox_valid(const char *text)
{
    char path[PATH_MAX_MAILBOX + 3];
    size_t len = strlen(text);
    smtp__path parsed;

    if (len == 0 || len > PATH_MAX_MAILBOX)
        return false;
    snprintf(path, sizeof(path), "<%s>", text);
    return smtp__path_parse(path, len + 2, 0, &parsed) == SP_OK &&
           parsed.end == len + 2 && parsed.mailbox_len == len;
}
