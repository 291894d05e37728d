/*
 * encrypt.c: the encryption policy: modes, per-domain rules, the request
 * a message carries, and the decision for one recipient.
 *
 * Owns sp_encrypt_*.  Messages are read with the mail module's header
 * index, so every field that is not removed keeps its bytes.
 */
#include "encrypt.h"
#include "mail/mail.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const mode_names[] = {"",    "none", "smime",
                                         "pgp", "auto", "portal"};

const char *
sp_encrypt_mode_name(sp_encrypt_mode mode)
{
    return (size_t)mode < sizeof(mode_names) / sizeof(mode_names[0])
               ? mode_names[mode]
               : "";
}

int
sp_encrypt_mode_parse(const char *text, size_t len, sp_encrypt_mode *out)
{
    for (size_t i = 1; i < sizeof(mode_names) / sizeof(mode_names[0]); i++)
        if (strlen(mode_names[i]) == len &&
            strncasecmp(text, mode_names[i], len) == 0) {
            *out = (sp_encrypt_mode)i;
            return SP_OK;
        }
    return SP_ESYNTAX;
}

static bool
blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* ------------------------------------------------------------------------
 * Rules.
 */

typedef struct encrypt_rule {
    char *pattern; /* "domain" or "*.suffix", lower case */
    sp_encrypt_mode mode;
} encrypt_rule;

struct sp_encrypt_rules {
    encrypt_rule *rules;
    size_t count;
};

void
sp_encrypt_rules_free(sp_encrypt_rules *rules)
{
    if (rules == NULL)
        return;
    for (size_t i = 0; i < rules->count; i++)
        sp_free(rules->rules[i].pattern);
    sp_free(rules->rules);
    sp_free(rules);
}

/* One "pattern=mode" of len bytes into rules. */
static int
rules_add(sp_encrypt_rules *rules, const char *text, size_t len, sp_error *err)
{
    const char *equals = memchr(text, '=', len);
    size_t name_len, at;
    encrypt_rule *grown, *rule;
    sp_encrypt_mode mode;
    const char *name;

    if (equals == NULL)
        return sp_err_set(err, SP_ESYNTAX, "\"%.*s\" is not DOMAIN=MODE",
                          (int)len, text);
    name = text;
    name_len = (size_t)(equals - text);
    while (name_len > 0 && blank(name[name_len - 1]))
        name_len--;
    at = (size_t)(equals - text) + 1;
    while (at < len && blank(text[at]))
        at++;
    if (sp_encrypt_mode_parse(text + at, len - at, &mode) != SP_OK)
        return sp_err_set(err, SP_ESYNTAX,
                          "\"%.*s\": the mode is not one of none, smime, "
                          "pgp, auto, portal",
                          (int)len, text);
    if (name_len == 0 ||
        !sp_mail_domain_valid(
            name[0] == '*' && name_len > 2 ? name + 2 : name,
            name[0] == '*' && name_len > 2 ? name_len - 2 : name_len, 0) ||
        (name[0] == '*' && (name_len < 3 || name[1] != '.')))
        return sp_err_set(err, SP_ESYNTAX, "\"%.*s\": not a domain or *.domain",
                          (int)len, text);

    grown = sp_realloc(rules->rules, (rules->count + 1) * sizeof(*grown));
    if (grown == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    rules->rules = grown;
    rule = &rules->rules[rules->count];
    rule->pattern = sp_strndup(name, name_len);
    if (rule->pattern == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    for (char *c = rule->pattern; *c != '\0'; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c + ('a' - 'A'));
    rule->mode = mode;
    rules->count++;
    return SP_OK;
}

int
sp_encrypt_rules_parse(const char *text, sp_encrypt_rules **out, sp_error *err)
{
    sp_encrypt_rules *rules = sp_calloc(1, sizeof(*rules));
    size_t at = 0, len = text != NULL ? strlen(text) : 0;
    int rc =
        rules != NULL ? SP_OK : sp_err_set(err, SP_ENOMEM, "out of memory");

    *out = NULL;
    while (rc == SP_OK && at < len) {
        size_t end = at;

        while (end < len && text[end] != ';' && text[end] != ',')
            end++;
        while (at < end && blank(text[at]))
            at++;
        if (end > at)
            rc = rules_add(rules, text + at, end - at, err);
        at = end + 1;
    }
    if (rc != SP_OK) {
        sp_encrypt_rules_free(rules);
        return rc;
    }
    *out = rules;
    return SP_OK;
}

sp_encrypt_mode
sp_encrypt_rules_find(const sp_encrypt_rules *rules, const char *domain)
{
    size_t domain_len = strlen(domain), best = 0;
    sp_encrypt_mode found = SP_ENCRYPT_UNSET;

    for (size_t i = 0; rules != NULL && i < rules->count; i++) {
        const encrypt_rule *rule = &rules->rules[i];
        size_t len = strlen(rule->pattern);

        if (rule->pattern[0] != '*') {
            if (strcasecmp(rule->pattern, domain) == 0)
                return rule->mode; /* an exact rule beats any suffix */
            continue;
        }
        /* "*.suffix": the domain ends in ".suffix". */
        if (domain_len > len - 1 &&
            strcasecmp(domain + domain_len - (len - 1), rule->pattern + 1) ==
                0 &&
            len > best) {
            best = len;
            found = rule->mode;
        }
    }
    return found;
}

/* ------------------------------------------------------------------------
 * The request a message carries.
 */

/* The unfolded, trimmed value of a field into out (at most size). */
static void
field_value(const char *field, size_t length, size_t colon, char *out,
            size_t size)
{
    size_t n = 0;

    for (size_t i = colon + 1; i < length && n + 1 < size; i++)
        if (field[i] != '\r' && field[i] != '\n')
            out[n++] = field[i];
    while (n > 0 && blank(out[n - 1]))
        n--;
    out[n] = '\0';
    while (blank(out[0]))
        memmove(out, out + 1, strlen(out));
}

/*
 * Write the Subject field without tag (and one space beside it) into out;
 * false, writing nothing, when the value does not hold the tag.
 */
static bool
subject_untagged(const char *field, size_t length, size_t colon,
                 const char *tag, sp_buf *out, int *rc)
{
    size_t tag_len = strlen(tag), start, end;

    for (start = colon + 1; start + tag_len <= length; start++)
        if (strncasecmp(field + start, tag, tag_len) == 0)
            break;
    if (start + tag_len > length)
        return false;
    end = start + tag_len;
    if (end < length && field[end] == ' ')
        end++;
    else if (start > colon + 1 && field[start - 1] == ' ')
        start--;
    *rc = sp_buf_append(out, field, start);
    if (*rc == SP_OK)
        *rc = sp_buf_append(out, field + end, length - end);
    return true;
}

int
sp_encrypt_take_request(const char *message, size_t len, const char *tag,
                        sp_encrypt_mode *mode, sp_buf *out, sp_error *err)
{
    sp_mail_header header = SP_MAIL_HEADER_INIT;
    size_t scanned = 0, body = sp_mail_header_end(message, len, &scanned);
    sp_encrypt_mode asked = SP_ENCRYPT_UNSET;
    bool tagged = false;
    sp_buf rewritten = SP_BUF_INIT;
    int rc;

    *mode = SP_ENCRYPT_UNSET;
    if (body == 0)
        return sp_err_set(err, SP_ESYNTAX,
                          "the message has no empty line after its header");
    rc = sp_mail_header_index(&header, message, body);

    for (size_t i = 0; rc == SP_OK && i < header.count; i++) {
        const sp_mail_field *field = &header.fields[i];
        const char *at = message + field->offset;
        char value[64];

        if (sp_mail_field_is(field, message, SP_ENCRYPT_HEADER,
                             strlen(SP_ENCRYPT_HEADER))) {
            field_value(at, field->length, field->colon, value, sizeof(value));
            if (sp_encrypt_mode_parse(value, strlen(value), &asked) != SP_OK)
                rc = sp_err_set(err, SP_ESYNTAX,
                                "%s: \"%.40s\" is not one of smime, pgp, "
                                "auto, portal, none",
                                SP_ENCRYPT_HEADER, value);
            continue;
        }
        if (tag != NULL && tag[0] != '\0' && !tagged &&
            sp_mail_field_is(field, message, "Subject", 7) &&
            subject_untagged(at, field->length, field->colon, tag, &rewritten,
                             &rc)) {
            tagged = true;
            continue;
        }
        rc = sp_buf_append(&rewritten, at, field->length);
    }
    if (rc == SP_OK)
        rc = sp_buf_append(&rewritten, "\r\n", 2);
    if (rc == SP_OK)
        rc = sp_buf_append(&rewritten, message + body, len - body);
    if (rc == SP_OK)
        rc = sp_buf_append(out, rewritten.data, rewritten.len);
    sp_mail_header_free(&header);
    sp_buf_free(&rewritten);
    if (rc == SP_ENOMEM)
        return sp_err_set(err, rc, "out of memory");
    if (rc != SP_OK)
        return rc;

    /* The field says exactly; a tag alone asks for auto. */
    *mode = asked != SP_ENCRYPT_UNSET ? asked
            : tagged                  ? SP_ENCRYPT_AUTO
                                      : SP_ENCRYPT_UNSET;
    return SP_OK;
}

/* ------------------------------------------------------------------------
 * The decision.
 */

static bool
encrypting(sp_encrypt_mode mode)
{
    return mode != SP_ENCRYPT_UNSET && mode != SP_ENCRYPT_NONE;
}

void
sp_encrypt_decide(sp_encrypt_mode request, sp_encrypt_mode rule,
                  const sp_encrypt_recipient *recipient,
                  sp_encrypt_decision *out)
{
    sp_encrypt_mode mode;

    /* A rule that encrypts is a floor; otherwise the request decides. */
    if (encrypting(rule) && !encrypting(request))
        mode = rule;
    else if (request != SP_ENCRYPT_UNSET)
        mode = request;
    else if (rule != SP_ENCRYPT_UNSET)
        mode = rule;
    else
        mode = SP_ENCRYPT_NONE;

    memset(out, 0, sizeof(*out));
    out->mode = mode;
    switch (mode) {
    case SP_ENCRYPT_SMIME:
        out->outcome =
            recipient->has_smime ? SP_ENCRYPT_AS_SMIME : SP_ENCRYPT_REFUSED;
        break;
    case SP_ENCRYPT_PGP:
        out->outcome =
            recipient->has_pgp ? SP_ENCRYPT_AS_PGP : SP_ENCRYPT_REFUSED;
        break;
    case SP_ENCRYPT_AUTO:
        out->outcome = recipient->has_smime          ? SP_ENCRYPT_AS_SMIME
                       : recipient->has_pgp          ? SP_ENCRYPT_AS_PGP
                       : recipient->portal_available ? SP_ENCRYPT_AS_PORTAL
                                                     : SP_ENCRYPT_REFUSED;
        break;
    case SP_ENCRYPT_PORTAL:
        out->outcome = recipient->portal_available ? SP_ENCRYPT_AS_PORTAL
                                                   : SP_ENCRYPT_REFUSED;
        break;
    default:
        out->outcome = SP_ENCRYPT_PLAIN;
        return;
    }
    if (out->outcome != SP_ENCRYPT_REFUSED)
        return;

    if (mode == SP_ENCRYPT_SMIME || mode == SP_ENCRYPT_PGP)
        snprintf(out->reason, sizeof(out->reason),
                 "encryption with %s was asked for, and %.100s has no valid "
                 "%s on file; not sent in plaintext",
                 mode == SP_ENCRYPT_SMIME ? "S/MIME" : "OpenPGP",
                 recipient->address,
                 mode == SP_ENCRYPT_SMIME ? "certificate" : "OpenPGP key");
    else if (mode == SP_ENCRYPT_PORTAL)
        snprintf(out->reason, sizeof(out->reason),
                 "delivery through the secure portal was asked for %.100s, "
                 "and the portal is not available; not sent in plaintext",
                 recipient->address);
    else
        snprintf(out->reason, sizeof(out->reason),
                 "encryption was asked for, %.100s has neither a "
                 "certificate nor an OpenPGP key on file, and the secure "
                 "portal is not available; not sent in plaintext",
                 recipient->address);
}
