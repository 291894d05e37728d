/*
 * keyrec.c: DKIM key records, the TXT values published at
 * selector._domainkey.domain (RFC 6376 3.6.1, RFC 8463).
 *
 * Owns sp_dkim_keyrec_* and dkim__keyrec_pkey.
 *
 * RSA keys are accepted as SubjectPublicKeyInfo (what RFC 6376 specifies)
 * and as a bare PKCS#1 RSAPublicKey, which some publishers use and most
 * verifiers accept.  Ed25519 keys must be the raw 32 octets: RFC 8463 says
 * so, and accepting the SubjectPublicKeyInfo form would hide a publishing
 * mistake that other receivers punish.
 *
 * The g= tag of RFC 4871 is parsed and kept.  RFC 6376 dropped it, but
 * records restricting it still exist and OpenDKIM still enforces it, so the
 * verifier honours a restricting g= rather than pass what others fail.
 */
#include "dkim_int.h"

#include <openssl/err.h>
#include <openssl/x509.h>
#include <string.h>

/* The tags that describe the key: k=, h=, s=, t=, g=. */
static int
keyrec_flags(const dkim__tags *tags, sp_dkim_keyrec *rec, sp_error *err)
{
    const dkim__tag *tag;
    char shown[48];

    tag = dkim__tag_find(tags, "k");
    if (tag != NULL && dkim__tag_is(tag, "ed25519"))
        rec->type = SP_DKIM_KEY_ED25519;
    else if (tag != NULL && !dkim__tag_is(tag, "rsa"))
        return sp_err_set(err, SP_ESYNTAX, "key record: unknown key type k=%s",
                          dkim__tag_show(tag, shown, sizeof(shown)));

    tag = dkim__tag_find(tags, "h");
    if (tag != NULL) {
        rec->hashes = 0;
        if (dkim__tag_list_has(tag, "sha1"))
            rec->hashes |= SP_DKIM_HASH_SHA1;
        if (dkim__tag_list_has(tag, "sha256"))
            rec->hashes |= SP_DKIM_HASH_SHA256;
    }

    tag = dkim__tag_find(tags, "s");
    if (tag != NULL && !dkim__tag_list_has(tag, "email") &&
        !dkim__tag_list_has(tag, "*"))
        return sp_err_set(err, SP_ESYNTAX,
                          "key record: service type s=%s does not include "
                          "email",
                          dkim__tag_show(tag, shown, sizeof(shown)));

    tag = dkim__tag_find(tags, "t");
    if (tag != NULL) {
        rec->testing = dkim__tag_list_has(tag, "y");
        rec->strict = dkim__tag_list_has(tag, "s");
    }

    tag = dkim__tag_find(tags, "g");
    if (tag != NULL) {
        size_t len = tag->value_len < sizeof(rec->granularity) - 1
                         ? tag->value_len
                         : sizeof(rec->granularity) - 1;

        rec->has_granularity = true;
        memcpy(rec->granularity, tag->value, len);
        rec->granularity[len] = '\0';
    }
    return SP_OK;
}

int
sp_dkim_keyrec_parse(const char *text, size_t len, sp_dkim_keyrec *rec,
                     sp_error *err)
{
    dkim__tags tags;
    const dkim__tag *tag;
    sp_error tag_err;
    char shown[48];
    int rc;

    memset(rec, 0, sizeof(*rec));
    rec->type = SP_DKIM_KEY_RSA;
    rec->hashes = SP_DKIM_HASH_SHA1 | SP_DKIM_HASH_SHA256;

    if (dkim__tag_parse(text, len, &tags, &tag_err) != SP_OK)
        return sp_err_set(err, SP_ESYNTAX, "key record: %s", tag_err.text);

    tag = dkim__tag_find(&tags, "v");
    if (tag != NULL) {
        if (!dkim__tag_is(tag, "DKIM1"))
            return sp_err_set(err, SP_ESYNTAX,
                              "key record: version v=%s is not DKIM1",
                              dkim__tag_show(tag, shown, sizeof(shown)));
        rec->has_version = true;
    }

    rc = keyrec_flags(&tags, rec, err);
    if (rc != SP_OK)
        return rc;

    /* p= is required; empty means the key was revoked. */
    tag = dkim__tag_find(&tags, "p");
    if (tag == NULL)
        return sp_err_set(err, SP_ESYNTAX, "key record: no p= tag");
    if (tag->value_len == 0) {
        rec->revoked = true;
        return SP_OK;
    }
    rc = sp_b64_decode(&rec->public_key, tag->value, tag->value_len, &tag_err);
    if (rc == SP_ENOMEM)
        return sp_err_set(err, rc, "out of memory reading a key record");
    if (rc != SP_OK) {
        sp_buf_free(&rec->public_key);
        return sp_err_set(err, SP_ESYNTAX, "key record: p= is not valid %s",
                          tag_err.text);
    }

    if (rec->type == SP_DKIM_KEY_ED25519 && rec->public_key.len != 32) {
        size_t got = rec->public_key.len;

        sp_buf_free(&rec->public_key);
        return sp_err_set(err, SP_ESYNTAX,
                          "key record: k=ed25519 needs p= to be the raw "
                          "32-octet key (RFC 8463), but it decodes to %zu "
                          "octets%s",
                          got,
                          got == 44 ? " (SubjectPublicKeyInfo form; "
                                      "publish the raw key)"
                                    : "");
    }
    return SP_OK;
}

void
sp_dkim_keyrec_free(sp_dkim_keyrec *rec)
{
    sp_buf_free(&rec->public_key);
}

int
dkim__keyrec_pkey(const sp_dkim_keyrec *rec, EVP_PKEY **out, sp_error *err)
{
    const unsigned char *der = (const unsigned char *)rec->public_key.data;
    long der_len = (long)rec->public_key.len;
    const unsigned char *cursor = der;
    EVP_PKEY *pkey;

    *out = NULL;
    if (rec->type == SP_DKIM_KEY_ED25519) {
        pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, der,
                                           rec->public_key.len);
        ERR_clear_error();
        if (pkey == NULL)
            return sp_err_set(err, SP_ESYNTAX,
                              "key record: p= is not an Ed25519 key");
        *out = pkey;
        return SP_OK;
    }

    /* SubjectPublicKeyInfo, the standard form, then bare PKCS#1. */
    pkey = d2i_PUBKEY(NULL, &cursor, der_len);
    if (pkey == NULL || cursor != der + der_len) {
        EVP_PKEY_free(pkey);
        cursor = der;
        pkey = d2i_PublicKey(EVP_PKEY_RSA, NULL, &cursor, der_len);
        if (pkey != NULL && cursor != der + der_len) {
            EVP_PKEY_free(pkey);
            pkey = NULL;
        }
    }
    ERR_clear_error();
    if (pkey == NULL)
        return sp_err_set(err, SP_ESYNTAX,
                          "key record: p= holds neither a "
                          "SubjectPublicKeyInfo nor a PKCS#1 RSA key");
    if (!EVP_PKEY_is_a(pkey, "RSA")) {
        EVP_PKEY_free(pkey);
        return sp_err_set(err, SP_ESYNTAX,
                          "key record: k=rsa but p= holds another key "
                          "type");
    }
    *out = pkey;
    return SP_OK;
}

bool
sp_dkim_keyrec_same_key(const sp_dkim_keyrec *a, const sp_dkim_keyrec *b)
{
    EVP_PKEY *left = NULL, *right = NULL;
    bool same;

    if (a->revoked || b->revoked || a->type != b->type)
        return false;
    if (a->type == SP_DKIM_KEY_ED25519)
        return a->public_key.len == b->public_key.len &&
               memcmp(a->public_key.data, b->public_key.data,
                      a->public_key.len) == 0;
    same = dkim__keyrec_pkey(a, &left, NULL) == SP_OK &&
           dkim__keyrec_pkey(b, &right, NULL) == SP_OK &&
           EVP_PKEY_eq(left, right) == 1;
    EVP_PKEY_free(left);
    EVP_PKEY_free(right);
    ERR_clear_error();
    return same;
}
