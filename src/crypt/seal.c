/*
 * seal.c: what S/MIME and OpenPGP sealing share: telling a certificate
 * from an OpenPGP key by its bytes, the addresses a key names, and the
 * split of a message into the fields that stay outside and the MIME
 * entity that is encrypted.
 *
 * Owns sp_seal_key_read, sp_seal_key_names, sp_seal_key_free,
 * sp_seal_message, sp_seal_split and sp_seal_base64_lines.  The split
 * keeps every byte of the entity as it came: the Content-* fields in
 * their order and folding, then the body, so what the recipient decrypts
 * equals what the sender wrote.
 */
#include "seal.h"
#include "mail/mail.h"

#include <string.h>
#include <strings.h>

#define SEAL_LINE 76 /* base64 characters per line (RFC 2045) */

const char *
sp_seal_method_name(sp_seal_method method)
{
    return method == SP_SEAL_SMIME ? "smime" : "pgp";
}

/* Whether the bytes start an OpenPGP key: armor, or a key packet. */
static bool
seal_is_pgp(const unsigned char *data, size_t len)
{
    static const char armor[] = "-----BEGIN PGP PUBLIC KEY BLOCK-----";
    size_t i = 0;

    while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' ||
                       data[i] == '\n'))
        i++;
    if (len - i >= sizeof(armor) - 1 &&
        memcmp(data + i, armor, sizeof(armor) - 1) == 0)
        return true;

    /* Binary: a public key packet (tag 6), old or new format. */
    if (len < 2 || (data[0] & 0x80) == 0)
        return false;
    if (data[0] & 0x40)
        return (data[0] & 0x3F) == 6;
    return ((data[0] >> 2) & 0x0F) == 6;
}

/*
 * Whether address is one to store and match: local@domain, the local part
 * of visible characters (no blank, control or quote), the domain a valid
 * name.  Keys may name anything; only such addresses are kept.
 */
static bool
seal_address_ok(const char *address)
{
    const char *at = strrchr(address, '@');

    if (at == NULL || at == address || at - address > 64)
        return false;
    for (const unsigned char *c = (const unsigned char *)address;
         c < (const unsigned char *)at; c++)
        if (*c <= ' ' || *c == 0x7F || *c == '@' || *c == '"' || *c == '<' ||
            *c == '>' || *c == '\\')
            return false;
    return sp_mail_domain_valid(at + 1, strlen(at + 1), 0);
}

int
sp_seal_key_read(const void *data, size_t len, const sp_seal_check *check,
                 sp_seal_key **out, sp_error *err)
{
    sp_seal_key *key;
    size_t kept = 0;
    int rc;

    *out = NULL;
    if (len == 0)
        return sp_err_set(err, SP_ESYNTAX, "the key file is empty");
    if (len > SP_SEAL_MAX_KEY_BYTES)
        return sp_err_set(err, SP_ELIMIT,
                          "the key file has %zu octets; keys are taken up to "
                          "%d",
                          len, SP_SEAL_MAX_KEY_BYTES);
    rc = seal_is_pgp(data, len)
             ? sp_seal_pgp_read(data, len, check, &key, err)
             : sp_seal_smime_read(data, len, check, &key, err);
    if (rc != SP_OK)
        return rc;

    /* Only addresses fit to match mail are kept. */
    for (size_t i = 0; i < key->n_addresses; i++) {
        if (seal_address_ok(key->addresses[i]))
            key->addresses[kept++] = key->addresses[i];
        else
            sp_free(key->addresses[i]);
    }
    key->n_addresses = kept;
    sp_text_clean(key->subject);
    *out = key;
    return SP_OK;
}

bool
sp_seal_key_names(const sp_seal_key *key, const char *address)
{
    for (size_t i = 0; i < key->n_addresses; i++)
        if (strcasecmp(key->addresses[i], address) == 0)
            return true;
    return false;
}

void
sp_seal_key_free(sp_seal_key *key)
{
    if (key == NULL)
        return;
    if (key->method == SP_SEAL_SMIME)
        sp_seal_smime_free(key);
    else
        sp_seal_pgp_free(key);
    for (size_t i = 0; i < key->n_addresses; i++)
        sp_free(key->addresses[i]);
    sp_free(key->addresses);
    sp_free(key);
}

void
sp_seal_parts_free(sp_seal_parts *parts)
{
    sp_buf_free(&parts->outer);
    sp_buf_free(&parts->entity);
}

/* Whether the field named at name (len octets) begins with prefix. */
static bool
seal_name_starts(const char *name, size_t len, const char *prefix)
{
    size_t prefix_len = strlen(prefix);

    return len >= prefix_len && strncasecmp(name, prefix, prefix_len) == 0;
}

int
sp_seal_split(const char *message, size_t len, const char *subject,
              sp_seal_parts *parts, sp_error *err)
{
    sp_mail_header header = SP_MAIL_HEADER_INIT;
    size_t scanned = 0, body = sp_mail_header_end(message, len, &scanned);
    int rc;

    memset(parts, 0, sizeof(*parts));
    if (body == 0)
        return sp_err_set(err, SP_ESYNTAX,
                          "the message has no empty line after its header");
    rc = sp_mail_header_index(&header, message, body);

    /*
     * Content-* fields go inside, MIME-Version is written anew, the rest
     * stays outside; a replaced Subject travels inside too.
     */
    for (size_t i = 0; rc == SP_OK && i < header.count; i++) {
        const sp_mail_field *field = &header.fields[i];
        const char *at = message + field->offset;
        size_t name_len = field->name_length;

        if (seal_name_starts(at, name_len, "Content-") ||
            (subject != NULL && name_len == 7 &&
             strncasecmp(at, "Subject", 7) == 0))
            rc = sp_buf_append(&parts->entity, at, field->length);
        else if (!(name_len == 12 && strncasecmp(at, "MIME-Version", 12) == 0))
            rc = sp_buf_append(&parts->outer, at, field->length);
    }
    if (rc == SP_OK && subject != NULL)
        rc = sp_buf_printf(&parts->outer, "Subject: %s\r\n", subject);
    if (rc == SP_OK)
        rc = sp_buf_append(&parts->entity, "\r\n", 2);
    if (rc == SP_OK)
        rc = sp_buf_append(&parts->entity, message + body, len - body);
    sp_mail_header_free(&header);
    if (rc != SP_OK) {
        sp_seal_parts_free(parts);
        return sp_err_set(err, rc, "out of memory");
    }
    return SP_OK;
}

int
sp_seal_base64_lines(sp_buf *out, const void *data, size_t len)
{
    sp_buf text = SP_BUF_INIT;
    int rc = sp_b64_encode(&text, data, len);

    for (size_t at = 0; rc == SP_OK && at < text.len; at += SEAL_LINE) {
        size_t line = text.len - at < SEAL_LINE ? text.len - at : SEAL_LINE;

        rc = sp_buf_append(out, text.data + at, line);
        if (rc == SP_OK)
            rc = sp_buf_append(out, "\r\n", 2);
    }
    sp_buf_free(&text);
    return rc;
}

int
sp_seal_message(const sp_seal_key *key, const char *message, size_t len,
                const sp_seal_options *options, sp_buf *out, sp_error *err)
{
    sp_seal_parts parts;
    sp_buf sealed = SP_BUF_INIT;
    int rc;

    rc = sp_seal_split(message, len, options->subject, &parts, err);
    if (rc != SP_OK)
        return rc;
    rc = key->method == SP_SEAL_SMIME
             ? sp_seal_smime_wrap(key, &parts, options->cipher, &sealed, err)
             : sp_seal_pgp_wrap(key, &parts, &sealed, err);
    sp_seal_parts_free(&parts);
    if (rc == SP_OK)
        rc = sp_buf_append(out, sealed.data, sealed.len) == SP_OK
                 ? SP_OK
                 : sp_err_set(err, SP_ENOMEM, "out of memory");
    sp_buf_free(&sealed);
    return rc;
}
