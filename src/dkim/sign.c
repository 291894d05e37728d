/*
 * sign.c: adding DKIM signatures to a message in one pass.
 *
 * Owns sp_dkim_sign_* and sp_dkim_default_names.
 *
 * A signer holds up to SIGN_MAX_SPECS signatures to make (say RSA-2048 and
 * Ed25519 for one domain).  The body is canonicalized once per distinct
 * body canonicalization and hashed once per canonicalization, whatever the
 * number of signatures.  Keys and OpenSSL contexts are prepared when the
 * signer is made and reused for every message (sp_dkim_sign_reset).
 *
 * What the signer refuses, so that no caller can sign what receivers
 * reject: a bare CR or LF anywhere, a NUL or a line that is not a field in
 * the header, no From field or more than one.  It always writes t= and
 * never l=, and oversigns: each name in its list appears in h= once more
 * than the message has such fields, so a field added later breaks the
 * signature instead of riding on it.
 */
#include "dkim_int.h"

#include <string.h>

#define SIGN_MAX_SPECS    8
#define SIGN_MAX_NAMES    64
#define SIGN_MAX_IDENTITY 320
#define SIGN_MAX_EXPIRE   ((int64_t)100 * 366 * 86400)
#define SIGN_MAX_TIME     ((int64_t)100000000000) /* year 5138 */
#define SIGN_LINE         76 /* fold signature fields before this column */

const char *const sp_dkim_default_names[] = {
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "In-Reply-To",
    "References",
    "Sender",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    NULL,
};

/* One signature to make, copied from the caller's spec. */
struct sign_spec {
    char domain[254];                 /* d= */
    char selector[254];               /* s= */
    char identity[SIGN_MAX_IDENTITY]; /* i=, "" when absent */
    sp_dkim_canon header_canon;
    sp_dkim_canon body_canon;
    int64_t expire_after;        /* seconds, 0 for no x= */
    char *names[SIGN_MAX_NAMES]; /* lower-cased copies, owned */
    size_t name_count;
    dkim__signer_key key; /* contexts for the borrowed key */
};

struct sp_dkim_sign {
    struct sign_spec spec[SIGN_MAX_SPECS];
    size_t spec_count;
    int64_t now; /* t= of the current message */

    dkim__message msg; /* header collected, body streamed */
    int failed;        /* SP_OK, or the error that stopped it */
    sp_error failure;  /* its text, repeated on later calls */

    bool canon_used[2]; /* indexed by sp_dkim_canon */
    dkim__canon_body canon[2];
    dkim__body_hash body_hash[2];

    EVP_MD_CTX *header_md; /* reused for every signature */
    sp_buf scratch;        /* canonical fields, one at a time */
    sp_buf field;          /* the signature field being built */
    sp_buf sig;            /* raw signature bytes */
};

/*
 * Errors: internal steps fill sign->failure; the public functions mark the
 * signer failed and copy the text to the caller, so every later call on
 * the same message reports the same error.
 */
static int
sign_report(sp_dkim_sign *sign, int code, sp_error *err)
{
    sign->failed = code;
    if (sign->failure.text[0] == '\0')
        sp_err_set(&sign->failure, code, "%s", sp_err_describe(code));
    return sp_err_set(err, code, "%s", sign->failure.text);
}

/* Check a field name: printable ASCII without ':' (RFC 5322 ftext). */
static bool
sign_valid_name(const char *name, size_t len)
{
    if (len == 0 || len > 128)
        return false;
    for (size_t i = 0; i < len; i++)
        if (name[i] < 33 || name[i] > 126 || name[i] == ':')
            return false;
    return true;
}

/* Check i=: local-part@domain with the domain at or under d=. */
static int
sign_check_identity(const char *identity, const char *domain, sp_error *err)
{
    const char *at = strrchr(identity, '@');
    size_t local_len, domain_len = strlen(domain);

    if (at == NULL || !dkim__name_valid_domain(at + 1, strlen(at + 1)) ||
        !dkim__name_within(at + 1, strlen(at + 1), domain, domain_len))
        return sp_err_set(err, SP_EINVAL,
                          "identity \"%.80s\" must be local@domain with the "
                          "domain equal to or under d=%s",
                          identity, domain);

    /* Printable, no ';' (ends the tag) and no '=' (quoted-printable). */
    local_len = (size_t)(at - identity);
    for (size_t i = 0; i < local_len; i++)
        if (identity[i] < 33 || identity[i] > 126 || identity[i] == ';' ||
            identity[i] == '=')
            return sp_err_set(err, SP_EINVAL,
                              "identity \"%.80s\": the local part holds a "
                              "byte DKIM would have to encode",
                              identity);
    return SP_OK;
}

/* Check the scalar parts of a caller's spec. */
static int
sign_check_spec(const sp_dkim_sign_spec *in, sp_error *err)
{
    if (in->domain == NULL || in->selector == NULL || in->key == NULL)
        return sp_err_set(err, SP_EINVAL,
                          "a signature needs a domain, a selector and a key");
    if (!dkim__name_valid_domain(in->domain, strlen(in->domain)))
        return sp_err_set(err, SP_EINVAL,
                          "domain \"%.80s\" is not a valid domain name "
                          "(internationalized names must be A-labels)",
                          in->domain);
    if (!dkim__name_valid_domain(in->selector, strlen(in->selector)))
        return sp_err_set(err, SP_EINVAL,
                          "selector \"%.80s\" is not valid: letters, "
                          "digits, '-' and dots only",
                          in->selector);
    if (in->identity != NULL && strlen(in->identity) >= SIGN_MAX_IDENTITY)
        return sp_err_set(err, SP_EINVAL,
                          "identity longer than %d octets is not an address",
                          SIGN_MAX_IDENTITY - 1);
    if (in->identity != NULL &&
        sign_check_identity(in->identity, in->domain, err) != SP_OK)
        return SP_EINVAL;
    if (in->expire_after < 0 || in->expire_after > SIGN_MAX_EXPIRE)
        return sp_err_set(err, SP_EINVAL,
                          "expiry must be 0 to %lld seconds (100 years)",
                          (long long)SIGN_MAX_EXPIRE);
    if ((in->header_canon != SP_DKIM_SIMPLE &&
         in->header_canon != SP_DKIM_RELAXED) ||
        (in->body_canon != SP_DKIM_SIMPLE && in->body_canon != SP_DKIM_RELAXED))
        return sp_err_set(err, SP_EINVAL, "unknown canonicalization");
    return SP_OK;
}

/* Whether spec already lists name (kept in lower case). */
static bool
sign_has_name(const struct sign_spec *spec, const char *name, size_t len)
{
    for (size_t i = 0; i < spec->name_count; i++)
        if (dkim__name_equal(spec->names[i], strlen(spec->names[i]), name, len))
            return true;
    return false;
}

/*
 * Copy the names to sign, in lower case (h= compares without case), each
 * once.  From must be there (RFC 6376 5.4).  DKIM-Signature must not: at
 * verification its extra oversigned slot would select this very field.
 */
static int
sign_copy_names(struct sign_spec *spec, const char *const *names, sp_error *err)
{
    for (size_t i = 0; names[i] != NULL; i++) {
        size_t len = strlen(names[i]);
        char *copy;

        if (!sign_valid_name(names[i], len))
            return sp_err_set(err, SP_EINVAL, "\"%.80s\" is not a field name",
                              names[i]);
        if (dkim__name_equal(names[i], len, "dkim-signature", 14))
            return sp_err_set(err, SP_EINVAL,
                              "DKIM-Signature cannot be in the fields to "
                              "sign: each signature covers itself already");
        if (sign_has_name(spec, names[i], len))
            continue;
        if (spec->name_count == SIGN_MAX_NAMES)
            return sp_err_set(err, SP_EINVAL, "more than %d names to sign",
                              SIGN_MAX_NAMES);
        copy = sp_strndup(names[i], len);
        if (copy == NULL)
            return sp_err_set(err, SP_ENOMEM, "out of memory");
        for (size_t c = 0; c < len; c++)
            if (copy[c] >= 'A' && copy[c] <= 'Z')
                copy[c] = (char)(copy[c] + ('a' - 'A'));
        spec->names[spec->name_count++] = copy;
    }
    if (!sign_has_name(spec, "from", 4))
        return sp_err_set(err, SP_EINVAL,
                          "the fields to sign must include From "
                          "(RFC 6376 5.4)");
    return SP_OK;
}

/* Copy one caller spec into the signer, checking it. */
static int
sign_copy_spec(struct sign_spec *spec, const sp_dkim_sign_spec *in,
               sp_error *err)
{
    int rc = sign_check_spec(in, err);

    if (rc != SP_OK)
        return rc;
    snprintf(spec->domain, sizeof(spec->domain), "%s", in->domain);
    snprintf(spec->selector, sizeof(spec->selector), "%s", in->selector);
    snprintf(spec->identity, sizeof(spec->identity), "%s",
             in->identity ? in->identity : "");
    spec->header_canon = in->header_canon;
    spec->body_canon = in->body_canon;
    spec->expire_after = in->expire_after;

    rc = sign_copy_names(spec, in->names ? in->names : sp_dkim_default_names,
                         err);
    if (rc != SP_OK)
        return rc;
    return dkim__key_signer_init(&spec->key, in->key, err);
}

/* Refuse two signatures that would claim the same key record. */
static int
sign_check_unique(const sp_dkim_sign *sign, sp_error *err)
{
    for (size_t i = 0; i < sign->spec_count; i++)
        for (size_t j = i + 1; j < sign->spec_count; j++)
            if (dkim__name_equal(
                    sign->spec[i].domain, strlen(sign->spec[i].domain),
                    sign->spec[j].domain, strlen(sign->spec[j].domain)) &&
                dkim__name_equal(
                    sign->spec[i].selector, strlen(sign->spec[i].selector),
                    sign->spec[j].selector, strlen(sign->spec[j].selector)))
                return sp_err_set(err, SP_EINVAL,
                                  "two keys share selector %s of %s; each "
                                  "key needs its own selector",
                                  sign->spec[i].selector, sign->spec[i].domain);
    return SP_OK;
}

int
sp_dkim_sign_new(const sp_dkim_sign_spec *specs, size_t count, int64_t now,
                 sp_dkim_sign **out, sp_error *err)
{
    sp_dkim_sign *sign;
    int rc = SP_OK;

    *out = NULL;
    if (count == 0 || count > SIGN_MAX_SPECS)
        return sp_err_set(err, SP_EINVAL,
                          "a signer makes 1 to %d signatures, not %zu",
                          SIGN_MAX_SPECS, count);
    if (now < 0 || now > SIGN_MAX_TIME)
        return sp_err_set(err, SP_EINVAL,
                          "signing time %lld is not a time sealpost signs at",
                          (long long)now);
    sign = sp_calloc(1, sizeof(*sign));
    if (sign == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    sign->msg.limit = SP_DKIM_MAX_HEADER_BYTES;

    /* Copy and check every spec, then the body digests they need. */
    for (size_t i = 0; i < count && rc == SP_OK; i++) {
        rc = sign_copy_spec(&sign->spec[i], &specs[i], err);
        sign->spec_count = i + 1;
        if (rc == SP_OK)
            sign->canon_used[specs[i].body_canon] = true;
    }
    if (rc == SP_OK)
        rc = sign_check_unique(sign, err);
    for (int mode = 0; mode < 2 && rc == SP_OK; mode++) {
        if (!sign->canon_used[mode])
            continue;
        sign->body_hash[mode].md = EVP_MD_CTX_new();
        if (sign->body_hash[mode].md == NULL)
            rc = sp_err_set(err, SP_ENOMEM, "out of memory");
    }
    if (rc == SP_OK && (sign->header_md = EVP_MD_CTX_new()) == NULL)
        rc = sp_err_set(err, SP_ENOMEM, "out of memory");
    if (rc != SP_OK) {
        sp_dkim_sign_free(sign);
        return rc;
    }

    sp_dkim_sign_reset(sign, now);
    *out = sign;
    return SP_OK;
}

void
sp_dkim_sign_reset(sp_dkim_sign *sign, int64_t now)
{
    sign->now = now;
    sign->failed = SP_OK;
    sp_err_clear(&sign->failure);
    dkim__message_reset(&sign->msg);
    if (now < 0 || now > SIGN_MAX_TIME) {
        sign->failed = SP_EINVAL;
        sp_err_set(&sign->failure, SP_EINVAL,
                   "signing time %lld is not a time sealpost signs at",
                   (long long)now);
    }

    for (int mode = 0; mode < 2; mode++) {
        dkim__body_hash *hash = &sign->body_hash[mode];

        if (!sign->canon_used[mode])
            continue;
        dkim__canon_body_init(&sign->canon[mode], (sp_dkim_canon)mode, true);
        hash->type = dkim__sha256();
        hash->limit = UINT64_MAX;
        hash->hashed = 0;
        if (EVP_DigestInit_ex(hash->md, hash->type, NULL) != 1) {
            sign->failed = SP_ECRYPTO;
            sp_err_set(&sign->failure, SP_ECRYPTO, "cannot start a digest");
        }
        sign->canon[mode].hashes[0] = hash;
        sign->canon[mode].hash_count = 1;
    }
}

/*
 * The header is complete: refuse what must not be signed.  Only CRLF may
 * end lines, no NUL, and every line is a field or a continuation.
 */
static int
sign_check_header(sp_dkim_sign *sign)
{
    const char *head = sign->msg.header.data;
    size_t len = sign->msg.header.len;

    for (size_t i = 0; i < len; i++) {
        const char *problem = NULL;
        const char *advice = "line endings must be CRLF (normalize them "
                             "first)";

        if (head[i] == '\0') {
            problem = "a NUL byte";
            advice = "header fields cannot carry NUL";
        } else if (head[i] == '\r' && (i + 1 == len || head[i + 1] != '\n')) {
            problem = "a bare CR";
        } else if (head[i] == '\n' && (i == 0 || head[i - 1] != '\r')) {
            problem = "a bare LF";
        }
        if (problem == NULL)
            continue;
        return sp_err_set(&sign->failure, SP_ESYNTAX,
                          "the header holds %s at octet %zu; %s", problem, i,
                          advice);
    }

    for (size_t i = 0; i < sign->msg.index.count; i++) {
        const sp_mail_field *field = &sign->msg.index.fields[i];

        if (sign_valid_name(head + field->offset, field->name_length))
            continue;
        return sp_err_set(&sign->failure, SP_ESYNTAX,
                          "header field %zu is not \"name: value\"", i + 1);
    }
    return SP_OK;
}

/* Canonicalize body bytes for every mode in use. */
static int
sign_body(sp_dkim_sign *sign, const char *data, size_t len)
{
    for (int mode = 0; mode < 2; mode++) {
        dkim__canon_body *canon = &sign->canon[mode];

        if (!sign->canon_used[mode])
            continue;
        if (dkim__canon_body_feed(canon, data, len) != SP_OK)
            return sp_err_set(&sign->failure, SP_ECRYPTO,
                              "digest update failed");
        if (canon->failed)
            return sp_err_set(
                &sign->failure, SP_ESYNTAX,
                "the body holds a bare CR or LF at octet %llu "
                "of the message; line endings must be CRLF "
                "(normalize them first)",
                (unsigned long long)(sign->msg.header.len + canon->failed_at));
    }
    return SP_OK;
}

int
sp_dkim_sign_feed(sp_dkim_sign *sign, const void *data, size_t len,
                  sp_error *err)
{
    const char *body;
    size_t body_len;
    bool header_done;
    int rc;

    if (sign->failed != SP_OK)
        return sp_err_set(err, sign->failed, "%s", sign->failure.text);
    rc = dkim__message_feed(&sign->msg, data, len, &header_done, &body,
                            &body_len, &sign->failure);
    if (rc == SP_OK && header_done)
        rc = sign_check_header(sign);
    if (rc == SP_OK && body_len > 0)
        rc = sign_body(sign, body, body_len);
    return rc == SP_OK ? SP_OK : sign_report(sign, rc, err);
}

/* Append text to the field, folding before it if the line would be long. */
static int
sign_token(sp_buf *field, size_t *column, const char *text, size_t len)
{
    if (*column + len > SIGN_LINE && *column > 1) {
        if (sp_buf_append(field, "\r\n\t", 3) != SP_OK)
            return SP_ENOMEM;
        *column = 1;
        while (len > 0 && text[0] == ' ') {
            text++;
            len--;
        }
    }
    *column += len;
    return sp_buf_append(field, text, len);
}

/* The h= value: each name once more than the message has such fields. */
static int
sign_names(const sp_dkim_sign *sign, const struct sign_spec *spec,
           sp_buf *field, size_t *column)
{
    const char *head = sign->msg.header.data;
    bool first = true;

    if (sign_token(field, column, " h=", 3) != SP_OK)
        return SP_ENOMEM;
    for (size_t n = 0; n < spec->name_count; n++) {
        size_t times =
            sp_mail_header_count(&sign->msg.index, head, spec->names[n]) + 1;

        for (size_t t = 0; t < times; t++) {
            char word[136];
            int len = snprintf(word, sizeof(word), "%s%s", first ? "" : ":",
                               spec->names[n]);

            first = false;
            if (sign_token(field, column, word, (size_t)len) != SP_OK)
                return SP_ENOMEM;
        }
    }
    return sign_token(field, column, ";", 1);
}

/* Write the signature field up to and including "b=". */
static int
sign_field_start(sp_dkim_sign *sign, const struct sign_spec *spec,
                 const char *body_hash, sp_buf *field)
{
    size_t column = 0;
    char word[400];
    int len;

#define SIGN_WORD(...)                                                         \
    do {                                                                       \
        len = snprintf(word, sizeof(word), __VA_ARGS__);                       \
        if (sign_token(field, &column, word, (size_t)len) != SP_OK)            \
            return SP_ENOMEM;                                                  \
    } while (0)

    SIGN_WORD("DKIM-Signature: v=1;");
    SIGN_WORD(" a=%s;", sp_dkim_key_type(spec->key.key) == SP_DKIM_KEY_RSA
                            ? "rsa-sha256"
                            : "ed25519-sha256");
    SIGN_WORD(" c=%s/%s;", sp_dkim_canon_name(spec->header_canon),
              sp_dkim_canon_name(spec->body_canon));
    SIGN_WORD(" d=%s;", spec->domain);
    SIGN_WORD(" s=%s;", spec->selector);
    if (spec->identity[0] != '\0')
        SIGN_WORD(" i=%s;", spec->identity);
    SIGN_WORD(" t=%lld;", (long long)sign->now);
    if (spec->expire_after > 0)
        SIGN_WORD(" x=%lld;", (long long)(sign->now + spec->expire_after));
    if (sign_names(sign, spec, field, &column) != SP_OK)
        return SP_ENOMEM;
    SIGN_WORD(" bh=%s;", body_hash);
#undef SIGN_WORD

    /* b= starts a line of its own, so its value folds predictably. */
    return sp_buf_append(field, "\r\n\tb=", 5);
}

/* Hash the signed fields, bottom-most instance first for repeated names. */
static int
sign_hash_fields(sp_dkim_sign *sign, const struct sign_spec *spec)
{
    const sp_mail_header *index = &sign->msg.index;
    const char *head = sign->msg.header.data;

    for (size_t n = 0; n < spec->name_count; n++) {
        size_t name_len = strlen(spec->names[n]);
        uint32_t hash = sp_mail_name_hash(spec->names[n], name_len);

        for (size_t i = index->count; i-- > 0;) {
            const sp_mail_field *field = &index->fields[i];

            if (field->name_hash != hash ||
                !sp_mail_field_is(field, head, spec->names[n], name_len))
                continue;
            sp_buf_reset(&sign->scratch);
            if (dkim__canon_header(spec->header_canon, head + field->offset,
                                   field->length, &sign->scratch) != SP_OK)
                return SP_ENOMEM;
            if (EVP_DigestUpdate(sign->header_md, sign->scratch.data,
                                 sign->scratch.len) != 1)
                return SP_ECRYPTO;
        }
    }
    return SP_OK;
}

/* Append the base64 signature to the field, folded, and end the field. */
static int
sign_field_finish(sp_buf *field, const sp_buf *sig)
{
    sp_buf b64 = SP_BUF_INIT;
    size_t column = 3; /* after TAB "b=" */
    size_t pos = 0;
    int rc;

    rc = sp_b64_encode(&b64, sig->data, sig->len);
    while (rc == SP_OK && pos < b64.len) {
        size_t take = SIGN_LINE - column;

        take = take < b64.len - pos ? take : b64.len - pos;
        rc = sp_buf_append(field, b64.data + pos, take);
        pos += take;
        if (rc == SP_OK && pos < b64.len)
            rc = sp_buf_append(field, "\r\n\t", 3);
        column = 1;
    }
    if (rc == SP_OK)
        rc = sp_buf_append(field, "\r\n", 2);
    sp_buf_free(&b64);
    return rc;
}

/* Make one signature field and append it to out. */
static int
sign_one(sp_dkim_sign *sign, struct sign_spec *spec, const char *body_hash,
         sp_buf *out)
{
    sp_error *err = &sign->failure;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned digest_len = 0;
    int rc;

    sp_buf_reset(&sign->field);
    if (sign_field_start(sign, spec, body_hash, &sign->field) != SP_OK)
        return sp_err_set(err, SP_ENOMEM, "out of memory");

    /* Signed fields, then this field without its b= value or CRLF. */
    if (EVP_DigestInit_ex(sign->header_md, dkim__sha256(), NULL) != 1)
        return sp_err_set(err, SP_ECRYPTO, "cannot start a digest");
    rc = sign_hash_fields(sign, spec);
    if (rc == SP_OK) {
        sp_buf_reset(&sign->scratch);
        rc = dkim__canon_header(spec->header_canon, sign->field.data,
                                sign->field.len, &sign->scratch);
    }
    if (rc == SP_OK &&
        (EVP_DigestUpdate(sign->header_md, sign->scratch.data,
                          sign->scratch.len - 2) != 1 ||
         EVP_DigestFinal_ex(sign->header_md, digest, &digest_len) != 1))
        rc = SP_ECRYPTO;
    if (rc != SP_OK)
        return sp_err_set(err, rc, "hashing the header failed: %s",
                          sp_err_describe(rc));

    rc = dkim__key_sign(&spec->key, digest, digest_len, &sign->sig, err);
    if (rc != SP_OK)
        return rc;
    if (sign_field_finish(&sign->field, &sign->sig) != SP_OK ||
        sp_buf_append(out, sign->field.data, sign->field.len) != SP_OK)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    return SP_OK;
}

/* Finish the body digests and encode them, per canonicalization. */
static int
sign_body_hashes(sp_dkim_sign *sign, char body_hash[2][64])
{
    sp_error *err = &sign->failure;

    for (int mode = 0; mode < 2; mode++) {
        unsigned char digest[EVP_MAX_MD_SIZE];
        unsigned digest_len = 0;
        sp_buf b64 = SP_BUF_INIT;

        if (!sign->canon_used[mode])
            continue;
        if (dkim__canon_body_finish(&sign->canon[mode]) != SP_OK ||
            EVP_DigestFinal_ex(sign->body_hash[mode].md, digest, &digest_len) !=
                1)
            return sp_err_set(err, SP_ECRYPTO, "body digest failed");
        if (sp_b64_encode(&b64, digest, digest_len) != SP_OK)
            return sp_err_set(err, SP_ENOMEM, "out of memory");
        snprintf(body_hash[mode], 64, "%s", b64.data);
        sp_buf_free(&b64);
    }
    return SP_OK;
}

int
sp_dkim_sign_finish(sp_dkim_sign *sign, sp_buf *out, sp_error *err)
{
    char body_hash[2][64];
    size_t from_count, out_len = out->len;
    bool header_done;
    int rc;

    if (sign->failed != SP_OK)
        return sp_err_set(err, sign->failed, "%s", sign->failure.text);

    /* A message without an empty line is all header. */
    rc = dkim__message_end(&sign->msg, &header_done, &sign->failure);
    if (rc == SP_OK && header_done)
        rc = sign_check_header(sign);
    if (rc != SP_OK)
        return sign_report(sign, rc, err);

    from_count =
        sp_mail_header_count(&sign->msg.index, sign->msg.header.data, "from");
    if (from_count != 1) {
        if (from_count == 0)
            sp_err_set(&sign->failure, SP_EPOLICY,
                       "the message has no From field; RFC 5322 requires "
                       "one and DKIM must sign it");
        else
            sp_err_set(&sign->failure, SP_EPOLICY,
                       "the message has %zu From fields; RFC 5322 allows "
                       "one and receivers reject such mail",
                       from_count);
        return sign_report(sign, SP_EPOLICY, err);
    }

    rc = sign_body_hashes(sign, body_hash);
    for (size_t i = 0; i < sign->spec_count && rc == SP_OK; i++)
        rc = sign_one(sign, &sign->spec[i], body_hash[sign->spec[i].body_canon],
                      out);

    /* What is signed must stay within what verifiers read. */
    if (rc == SP_OK && sign->msg.header.len + (out->len - out_len) >
                           SP_DKIM_MAX_HEADER_BYTES + SP_DKIM_HEADER_SLACK)
        rc = sp_err_set(&sign->failure, SP_ELIMIT,
                        "with its signatures the header section would be "
                        "%zu octets, more than verifiers accept (%d)",
                        sign->msg.header.len + (out->len - out_len),
                        SP_DKIM_MAX_HEADER_BYTES + SP_DKIM_HEADER_SLACK);
    if (rc != SP_OK) {
        out->len = out_len;
        if (out->data != NULL)
            out->data[out_len] = '\0';
        return sign_report(sign, rc, err);
    }
    sign->failed = SP_ESTATE;
    sp_err_set(&sign->failure, SP_ESTATE,
               "message already signed; reset the signer for the next one");
    return SP_OK;
}

void
sp_dkim_sign_free(sp_dkim_sign *sign)
{
    if (sign == NULL)
        return;
    for (size_t i = 0; i < sign->spec_count; i++) {
        for (size_t n = 0; n < sign->spec[i].name_count; n++)
            sp_free(sign->spec[i].names[n]);
        dkim__key_signer_free(&sign->spec[i].key);
    }
    for (int mode = 0; mode < 2; mode++)
        EVP_MD_CTX_free(sign->body_hash[mode].md);
    EVP_MD_CTX_free(sign->header_md);
    dkim__message_free(&sign->msg);
    sp_buf_free(&sign->scratch);
    sp_buf_free(&sign->field);
    sp_buf_free(&sign->sig);
    sp_free(sign);
}
