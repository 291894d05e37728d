/*
 * verify.c: reading a message for verification: finding and parsing its
 * DKIM-Signature fields, streaming the body through the digests they need,
 * and reporting the results, Authentication-Results included.
 *
 * Owns sp_dkim_verify_* and dkim__sig_decide.  judge.c owns the verdict of
 * each signature once the message has been read.
 *
 * Signatures are parsed as soon as the header is complete, so the body is
 * canonicalized once per canonicalization the signatures use and hashed
 * once per (canonicalization, hash, l=) combination.  A signature that is
 * malformed is decided at once (permerror) and costs nothing more.  At
 * most opts.max_signatures fields are verified; the rest are reported as
 * not checked, so a message with a thousand signatures costs no more than
 * one with eight.
 */
#include "dkim_int.h"

#include <stdio.h>
#include <string.h>

void
dkim__sig_decide(dkim__sig *sig, sp_dkim_status status, sp_dkim_reason reason,
                 const char *fmt, ...)
{
    va_list args;

    sig->decided = true;
    sig->result.status = status;
    sig->result.reason = reason;
    va_start(args, fmt);
    vsnprintf(sig->result.detail, sizeof(sig->result.detail), fmt, args);
    va_end(args);
}

int
sp_dkim_verify_new(const sp_dkim_verify_opts *opts, sp_dkim_verify **out,
                   sp_error *err)
{
    sp_dkim_verify *verify;

    *out = NULL;
    if (opts == NULL || opts->lookup == NULL)
        return sp_err_set(err, SP_EINVAL,
                          "verification needs a key lookup function");
    verify = sp_calloc(1, sizeof(*verify));
    if (verify == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    verify->opts = *opts;
    verify->msg.limit = SP_DKIM_MAX_HEADER_BYTES + SP_DKIM_HEADER_SLACK;
    if (verify->opts.max_signatures == 0)
        verify->opts.max_signatures = SP_DKIM_MAX_SIGNATURES;
    if (verify->opts.max_signatures > DKIM__MAX_BODY_HASHES)
        verify->opts.max_signatures = DKIM__MAX_BODY_HASHES;
    *out = verify;
    return SP_OK;
}

/* Copy a tag value into a result field, escaped for display. */
static void
verify_show(char *dst, size_t size, const dkim__tag *tag)
{
    if (tag == NULL) {
        dst[0] = '\0';
        return;
    }
    sp_log_escape(dst, size, tag->value, tag->value_len);
}

/*
 * Parse a decimal tag value of up to 76 digits (RFC 6376's bound for l=).
 * Values beyond int64 saturate at INT64_MAX, which no body length or clock
 * reaches, so they are judged rather than called malformed.
 */
static bool
verify_number(const dkim__tag *tag, int64_t *out)
{
    int64_t value = 0;

    if (tag->value_len == 0 || tag->value_len > 76)
        return false;
    for (size_t i = 0; i < tag->value_len; i++) {
        int digit = tag->value[i] - '0';

        if (digit < 0 || digit > 9)
            return false;
        value =
            value > (INT64_MAX - digit) / 10 ? INT64_MAX : value * 10 + digit;
    }
    *out = value;
    return true;
}

/* Value of a hexadecimal digit as dkim-quoted-printable writes it. */
static int
verify_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * Decode i=, which is dkim-quoted-printable (RFC 6376 2.11), and find its
 * local part and domain.  Returns NULL, or what is wrong with it.
 */
static const char *
verify_identity(dkim__sig *sig, const dkim__tag *i)
{
    size_t out = 0, k;
    char *at;

    for (k = 0; k < i->value_len && out < sizeof(sig->identity) - 1; k++) {
        if (i->value[k] == '=' && k + 2 < i->value_len &&
            verify_hex(i->value[k + 1]) >= 0 &&
            verify_hex(i->value[k + 2]) >= 0) {
            sig->identity[out++] = (char)(verify_hex(i->value[k + 1]) << 4 |
                                          verify_hex(i->value[k + 2]));
            k += 2;
        } else if (i->value[k] != ' ' && i->value[k] != '\t' &&
                   i->value[k] != '\r' && i->value[k] != '\n') {
            sig->identity[out++] = i->value[k];
        }
    }
    sig->identity[out] = '\0';
    if (k < i->value_len)
        return "is too long to be an address";

    at = memrchr(sig->identity, '@', out);
    if (at == NULL)
        return "has no '@'";
    sig->local_len = (size_t)(at - sig->identity);
    sig->id_domain = at + 1;
    sig->id_domain_len = out - sig->local_len - 1;
    return NULL;
}

/*
 * The first characters of b=, for header.b (RFC 6008): whitespace skipped,
 * and nothing outside the base64 alphabet, which a report could not carry.
 */
static void
verify_b_prefix(dkim__sig *sig, const dkim__tag *b)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                   "abcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t out = 0;

    for (size_t i = 0; b && i < b->value_len; i++) {
        char c = b->value[i];

        if (out == sizeof(sig->result.b_prefix) - 1)
            break;
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            continue;
        if (c == '\0' || strchr(alphabet, c) == NULL)
            break;
        sig->result.b_prefix[out++] = c;
    }
    sig->result.b_prefix[out] = '\0';
}

/* The algorithm tag: rsa-sha256, ed25519-sha256, or rsa-sha1 to judge. */
static bool
verify_alg(dkim__sig *sig, const dkim__tag *a)
{
    if (dkim__tag_is(a, "rsa-sha256"))
        sig->alg = SP_DKIM_RSA_SHA256;
    else if (dkim__tag_is(a, "ed25519-sha256"))
        sig->alg = SP_DKIM_ED25519_SHA256;
    else if (dkim__tag_is(a, "rsa-sha1"))
        sig->alg = SP_DKIM_RSA_SHA1;
    else
        return false;
    return true;
}

/* Check that the tags every signature must carry are there and sane. */
static bool
verify_required(dkim__sig *sig)
{
    static const char *const required[] = {"a", "b", "bh", "d", "h", "s"};
    const dkim__tags *tags = &sig->tags;
    const dkim__tag *tag;

    tag = dkim__tag_find(tags, "v");
    if (tag == NULL) {
        dkim__sig_decide(sig, SP_DKIM_PERMERROR, SP_DKIM_R_VERSION,
                         "no v= tag: a pre-standard (draft) signature, "
                         "which RFC 6376 verifiers do not accept");
        return false;
    }
    if (!dkim__tag_is(tag, "1")) {
        char shown[48];

        dkim__sig_decide(sig, SP_DKIM_PERMERROR, SP_DKIM_R_VERSION,
                         "version v=%s is not 1",
                         dkim__tag_show(tag, shown, sizeof(shown)));
        return false;
    }
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        if (dkim__tag_find(tags, required[i]) != NULL)
            continue;
        dkim__sig_decide(sig, SP_DKIM_PERMERROR, SP_DKIM_R_SIG_SYNTAX,
                         "the required tag %s= is missing", required[i]);
        return false;
    }
    if (!verify_alg(sig, dkim__tag_find(tags, "a"))) {
        dkim__sig_decide(sig, SP_DKIM_PERMERROR, SP_DKIM_R_UNKNOWN_ALG,
                         "algorithm a=%s is not one DKIM verifiers support "
                         "(rsa-sha256, ed25519-sha256)",
                         sig->result.algorithm);
        return false;
    }
    return true;
}

/* Decode b= and bh= and check bh= against the hash size. */
static bool
verify_decode(dkim__sig *sig)
{
    const dkim__tag *b = dkim__tag_find(&sig->tags, "b");
    const dkim__tag *bh = dkim__tag_find(&sig->tags, "bh");
    size_t want = sig->alg == SP_DKIM_RSA_SHA1 ? 20 : 32;
    sp_error err;
    int rc;

    rc = sp_b64_decode(&sig->signature, b->value, b->value_len, &err);
    if (rc != SP_OK || sig->signature.len == 0) {
        dkim__sig_decide(sig, SP_DKIM_PERMERROR, SP_DKIM_R_SIG_SYNTAX,
                         "b= is not a signature: %s",
                         rc != SP_OK ? err.text : "the value is empty");
        return false;
    }
    if (sp_b64_decode(&sig->body_hash, bh->value, bh->value_len, &err) !=
            SP_OK ||
        sig->body_hash.len != want) {
        dkim__sig_decide(sig, SP_DKIM_PERMERROR, SP_DKIM_R_SIG_SYNTAX,
                         "bh= is not a %zu-octet body hash in base64", want);
        return false;
    }
    return true;
}

/* d=, s=, i=, q= and the From rule. */
static bool
verify_names(dkim__sig *sig)
{
    const dkim__tag *d = dkim__tag_find(&sig->tags, "d");
    const dkim__tag *s = dkim__tag_find(&sig->tags, "s");
    const dkim__tag *i = dkim__tag_find(&sig->tags, "i");
    const dkim__tag *q = dkim__tag_find(&sig->tags, "q");
    const dkim__tag *h = dkim__tag_find(&sig->tags, "h");
    const char *name, *problem;
    size_t pos = 0, name_len;

    if (!dkim__name_valid_domain(d->value, d->value_len) ||
        !dkim__name_valid_domain(s->value, s->value_len)) {
        dkim__sig_decide(sig, SP_DKIM_PERMERROR, SP_DKIM_R_SIG_SYNTAX,
                         "d= or s= is not a valid domain name");
        return false;
    }

    /* i= defaults to "@d"; when present its domain must be d or under. */
    if (i != NULL && (problem = verify_identity(sig, i)) != NULL) {
        dkim__sig_decide(sig, SP_DKIM_PERMERROR, SP_DKIM_R_IDENTITY, "i=%s %s",
                         sig->result.identity, problem);
        return false;
    }
    if (i != NULL && !dkim__name_within(sig->id_domain, sig->id_domain_len,
                                        d->value, d->value_len)) {
        dkim__sig_decide(sig, SP_DKIM_PERMERROR, SP_DKIM_R_IDENTITY,
                         "i=%s is not at d=%s or a subdomain of it",
                         sig->result.identity, sig->result.domain);
        return false;
    }

    if (q != NULL && !dkim__tag_list_has(q, "dns/txt")) {
        char shown[48];

        dkim__sig_decide(sig, SP_DKIM_PERMERROR, SP_DKIM_R_SIG_SYNTAX,
                         "query method q=%s is not dns/txt",
                         dkim__tag_show(q, shown, sizeof(shown)));
        return false;
    }

    /* RFC 6376 5.4: From must be signed.  Names compare without case. */
    while (dkim__tag_list_next(h, &pos, &name, &name_len))
        if (dkim__name_equal(name, name_len, "from", 4))
            return true;
    dkim__sig_decide(sig, SP_DKIM_PERMERROR, SP_DKIM_R_FROM_NOT_SIGNED,
                     "h= does not include From, which RFC 6376 requires "
                     "every signature to cover");
    return false;
}

/* c=, t=, x= and l=. */
static bool
verify_numbers(sp_dkim_verify *verify, dkim__sig *sig)
{
    const dkim__tag *c = dkim__tag_find(&sig->tags, "c");
    const dkim__tag *t = dkim__tag_find(&sig->tags, "t");
    const dkim__tag *x = dkim__tag_find(&sig->tags, "x");
    const dkim__tag *l = dkim__tag_find(&sig->tags, "l");
    char shown[48];

    if (c != NULL &&
        dkim__canon_parse(c->value, c->value_len, &sig->result.header_canon,
                          &sig->result.body_canon) != SP_OK) {
        dkim__sig_decide(sig, SP_DKIM_PERMERROR, SP_DKIM_R_SIG_SYNTAX,
                         "canonicalization c=%s is unknown",
                         dkim__tag_show(c, shown, sizeof(shown)));
        return false;
    }
    if ((t && !verify_number(t, &sig->result.timestamp)) ||
        (x && !verify_number(x, &sig->result.expires)) ||
        (l && !verify_number(l, &sig->result.body_limit))) {
        dkim__sig_decide(sig, SP_DKIM_PERMERROR, SP_DKIM_R_SIG_SYNTAX,
                         "t=, x= or l= is not a decimal number");
        return false;
    }
    if (t && x && sig->result.expires < sig->result.timestamp) {
        dkim__sig_decide(sig, SP_DKIM_PERMERROR, SP_DKIM_R_SIG_SYNTAX,
                         "x= (expiry) is earlier than t= (signing time)");
        return false;
    }
    if (x && sig->result.expires < verify->opts.now) {
        dkim__sig_decide(sig, SP_DKIM_PERMERROR, SP_DKIM_R_EXPIRED,
                         "the signature expired %lld seconds ago (x=%lld)",
                         (long long)(verify->opts.now - sig->result.expires),
                         (long long)sig->result.expires);
        return false;
    }
    return true;
}

/* Find or make the body digest for this signature. */
static void
verify_attach_body(sp_dkim_verify *verify, dkim__sig *sig)
{
    const EVP_MD *type =
        sig->alg == SP_DKIM_RSA_SHA1 ? dkim__sha1() : dkim__sha256();
    uint64_t limit = sig->result.body_limit >= 0
                         ? (uint64_t)sig->result.body_limit
                         : UINT64_MAX;
    sp_dkim_canon mode = sig->result.body_canon;
    dkim__body_hash *hash;

    for (size_t i = 0; i < verify->hash_count; i++) {
        hash = &verify->hashes[i];
        if (hash->type == type && hash->limit == limit && hash->mode == mode) {
            sig->body = hash;
            return;
        }
    }

    hash = &verify->hashes[verify->hash_count];
    hash->md = EVP_MD_CTX_new();
    if (hash->md == NULL || EVP_DigestInit_ex(hash->md, type, NULL) != 1) {
        EVP_MD_CTX_free(hash->md);
        hash->md = NULL;
        dkim__sig_decide(sig, SP_DKIM_TEMPERROR, SP_DKIM_R_INTERNAL,
                         "cannot start a digest (out of memory?)");
        return;
    }
    verify->hash_count++;
    hash->type = type;
    hash->limit = limit;
    hash->mode = mode;
    sig->body = hash;

    if (!verify->canon_used[mode]) {
        verify->canon_used[mode] = true;
        dkim__canon_body_init(&verify->canon[mode], mode, false);
    }
    verify->canon[mode].hashes[verify->canon[mode].hash_count++] = hash;
}

/* Parse one DKIM-Signature field into sig. */
static void
verify_parse(sp_dkim_verify *verify, dkim__sig *sig)
{
    const sp_mail_field *field = &verify->msg.index.fields[sig->field];
    const char *text = verify->msg.header.data + field->offset;
    size_t len = field->length;
    sp_error err;

    sig->result.timestamp = -1;
    sig->result.expires = -1;
    sig->result.body_limit = -1;
    sig->result.header_canon = SP_DKIM_SIMPLE;
    sig->result.body_canon = SP_DKIM_SIMPLE;

    /* The value runs from after the colon to before the final CRLF. */
    if (len >= 2 && text[len - 2] == '\r' && text[len - 1] == '\n')
        len -= 2;
    sig->value_start = field->colon + 1;
    if (dkim__tag_parse(text + sig->value_start, len - sig->value_start,
                        &sig->tags, &err) != SP_OK) {
        dkim__sig_decide(sig, SP_DKIM_PERMERROR, SP_DKIM_R_SIG_SYNTAX,
                         "the DKIM-Signature field is malformed: %s", err.text);
        return;
    }
    verify_show(sig->result.domain, sizeof(sig->result.domain),
                dkim__tag_find(&sig->tags, "d"));
    verify_show(sig->result.selector, sizeof(sig->result.selector),
                dkim__tag_find(&sig->tags, "s"));
    verify_show(sig->result.identity, sizeof(sig->result.identity),
                dkim__tag_find(&sig->tags, "i"));
    verify_show(sig->result.algorithm, sizeof(sig->result.algorithm),
                dkim__tag_find(&sig->tags, "a"));
    verify_b_prefix(sig, dkim__tag_find(&sig->tags, "b"));

    if (verify_required(sig) && verify_decode(sig) && verify_names(sig) &&
        verify_numbers(verify, sig))
        verify_attach_body(verify, sig);
}

/* The header is complete: find and parse the signatures. */
static int
verify_header(sp_dkim_verify *verify, sp_error *err)
{
    const sp_mail_header *index = &verify->msg.index;
    const char *head = verify->msg.header.data;
    size_t found = 0;

    verify->from_count = sp_mail_header_count(index, head, "from");
    verify->domainkeys =
        sp_mail_header_count(index, head, "domainkey-signature");
    found = sp_mail_header_count(index, head, "dkim-signature");
    if (found == 0)
        return SP_OK;

    /* Only the checked signatures cost memory; the rest share a result. */
    verify->sig_count = found;
    verify->checked = found < verify->opts.max_signatures
                          ? found
                          : verify->opts.max_signatures;
    verify->unchecked.status = SP_DKIM_NEUTRAL;
    verify->unchecked.reason = SP_DKIM_R_NOT_CHECKED;
    verify->unchecked.timestamp = -1;
    verify->unchecked.expires = -1;
    verify->unchecked.body_limit = -1;
    snprintf(verify->unchecked.detail, sizeof(verify->unchecked.detail),
             "not checked: only the first %u signatures of a message are "
             "verified",
             verify->opts.max_signatures);

    verify->sigs = sp_calloc(verify->checked, sizeof(*verify->sigs));
    verify->lookups = sp_calloc(verify->checked, sizeof(*verify->lookups));
    if (verify->sigs == NULL || verify->lookups == NULL) {
        verify->sig_count = verify->checked = 0;
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    }

    for (size_t i = 0, n = 0; i < index->count && n < verify->checked; i++) {
        if (!sp_mail_field_is(&index->fields[i], head, "dkim-signature", 14))
            continue;
        verify->sigs[n].field = i;
        verify_parse(verify, &verify->sigs[n++]);
    }
    return SP_OK;
}

int
sp_dkim_verify_feed(sp_dkim_verify *verify, const void *data, size_t len,
                    sp_error *err)
{
    const char *body;
    size_t body_len;
    bool header_done;
    int rc;

    if (verify->finished)
        return sp_err_set(err, SP_ESTATE, "verification already finished");
    if (verify->failed != SP_OK)
        return sp_err_set(err, verify->failed,
                          "reading the message already failed");
    rc = dkim__message_feed(&verify->msg, data, len, &header_done, &body,
                            &body_len, err);
    if (rc == SP_OK && header_done)
        rc = verify_header(verify, err);
    for (int mode = 0; mode < 2 && rc == SP_OK && body_len > 0; mode++)
        if (verify->canon_used[mode] &&
            dkim__canon_body_feed(&verify->canon[mode], body, body_len) !=
                SP_OK)
            rc = sp_err_set(err, SP_ECRYPTO, "digest update failed");
    verify->failed = rc;
    return rc;
}

int
sp_dkim_verify_finish(sp_dkim_verify *verify, sp_error *err)
{
    bool header_done;
    int rc;

    if (verify->finished)
        return sp_err_set(err, SP_ESTATE, "verification already finished");
    if (verify->failed != SP_OK)
        return sp_err_set(err, verify->failed,
                          "reading the message failed; nothing to judge");
    rc = dkim__message_end(&verify->msg, &header_done, err);
    if (rc == SP_OK && header_done)
        rc = verify_header(verify, err);
    if (rc != SP_OK)
        return rc;

    /* Close the body digests, then judge each signature. */
    for (int mode = 0; mode < 2; mode++)
        if (verify->canon_used[mode] &&
            dkim__canon_body_finish(&verify->canon[mode]) != SP_OK)
            return sp_err_set(err, SP_ECRYPTO, "digest update failed");
    for (size_t i = 0; i < verify->hash_count; i++) {
        dkim__body_hash *hash = &verify->hashes[i];

        if (EVP_DigestFinal_ex(hash->md, hash->digest, &hash->digest_len) != 1)
            return sp_err_set(err, SP_ECRYPTO, "digest failed");
    }
    for (size_t i = 0; i < verify->checked; i++) {
        dkim__sig *sig = &verify->sigs[i];

        if (sig->body != NULL)
            sig->result.body_octets = verify->canon[sig->body->mode].produced;
        if (!sig->decided)
            dkim__judge(verify, sig);
    }
    verify->finished = true;
    return SP_OK;
}

size_t
sp_dkim_verify_count(const sp_dkim_verify *verify)
{
    return verify->sig_count;
}

const sp_dkim_result *
sp_dkim_verify_result(const sp_dkim_verify *verify, size_t index)
{
    if (index < verify->checked)
        return &verify->sigs[index].result;
    return index < verify->sig_count ? &verify->unchecked : NULL;
}

size_t
sp_dkim_verify_domainkeys(const sp_dkim_verify *verify)
{
    return verify->domainkeys;
}

size_t
sp_dkim_verify_from_count(const sp_dkim_verify *verify)
{
    return verify->from_count;
}

/* Short reason text for an Authentication-Results comment. */
static const char *
verify_reason_text(sp_dkim_reason reason)
{
    static const char *const texts[] = {
#define SP_DKIM_REASON_TEXT(name, word, text) text,
        SP_DKIM_REASONS(SP_DKIM_REASON_TEXT)
#undef SP_DKIM_REASON_TEXT
    };

    return (size_t)reason < sizeof(texts) / sizeof(texts[0]) ? texts[reason]
                                                             : "unknown";
}

int
sp_dkim_verify_auth_results(const sp_dkim_verify *verify,
                            const char *authserv_id, sp_buf *out)
{
    int rc = sp_buf_printf(out, "Authentication-Results: %s;", authserv_id);

    if (verify->sig_count == 0)
        return rc == SP_OK ? sp_buf_append_str(out, " dkim=none\r\n") : rc;

    /* One resinfo per signature; values that are not tokens are left out. */
    /* Signatures over the limit were not judged and add nothing here. */
    for (size_t i = 0; i < verify->checked && rc == SP_OK; i++) {
        const sp_dkim_result *res = sp_dkim_verify_result(verify, i);
        bool named = dkim__name_valid_domain(res->domain, strlen(res->domain));

        rc = sp_buf_printf(out, "%s\r\n\tdkim=%s (%s)", i ? ";" : "",
                           sp_dkim_status_name(res->status),
                           res->crypto_valid && res->status != SP_DKIM_PASS
                               ? "valid signature, refused by policy"
                               : verify_reason_text(res->reason));
        if (rc == SP_OK && named)
            rc = sp_buf_printf(
                out, " header.d=%s header.s=%s", res->domain,
                dkim__name_valid_domain(res->selector, strlen(res->selector))
                    ? res->selector
                    : "invalid");
        if (rc == SP_OK && named && res->algorithm[0] &&
            strspn(res->algorithm, "abcdefghijklmnopqrstuvwxyz0123456789-") ==
                strlen(res->algorithm))
            rc = sp_buf_printf(out, " header.a=%s", res->algorithm);
        if (rc == SP_OK && res->b_prefix[0] &&
            strspn(res->b_prefix,
                   "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopq"
                   "rstuvwxyz0123456789+/") == strlen(res->b_prefix))
            rc = sp_buf_printf(out, " header.b=%.8s", res->b_prefix);
    }
    return rc == SP_OK ? sp_buf_append(out, "\r\n", 2) : rc;
}

void
sp_dkim_verify_free(sp_dkim_verify *verify)
{
    if (verify == NULL)
        return;
    for (size_t i = 0; i < verify->checked; i++) {
        sp_buf_free(&verify->sigs[i].signature);
        sp_buf_free(&verify->sigs[i].body_hash);
    }
    for (size_t i = 0; i < verify->hash_count; i++)
        EVP_MD_CTX_free(verify->hashes[i].md);
    sp_free(verify->sigs);
    sp_free(verify->lookups);
    sp_free(verify->order);
    sp_free(verify->taken);
    dkim__message_free(&verify->msg);
    EVP_MD_CTX_free(verify->header_md);
    sp_buf_free(&verify->scratch);
    sp_free(verify);
}
