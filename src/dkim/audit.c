/*
 * audit.c: what is wrong with a published key record, in findings a
 * person can act on, for "sealpost dkim audit".
 *
 * Owns sp_dkim_audit_*.  Pure: the caller looks the records up and hands
 * their text in.  Keys are compared with sp_dkim_keyrec_same_key
 * (keyrec.c), once both records are known to hold a readable key.
 *
 * The verifier (keyrec.c) stops at the first fault, because one is enough
 * to refuse a key.  An audit reads every tag on its own instead, so a
 * record with t=y left on and an unknown k= shows both, and the key is
 * still measured where it can be.  As a last step a record with no error
 * found is also parsed the verifier's way, so the audit never passes a
 * record the verifier refuses.
 *
 * Severity: error when receivers discard the record or fail every
 * signature made with it; warning when it works but should be fixed (weak
 * key, testing left on, revoked, restricting g=); ok for a check passed;
 * info for a note.  Limits: at most SP_DKIM_AUDIT_MAX_FINDINGS findings
 * are kept (the rest are counted); tag-list syntax errors stop the
 * evaluation, since receivers then discard the whole record.
 */
#include "dkim_int.h"

#include <openssl/err.h>
#include <stdio.h>
#include <string.h>

/* DER prefix of an Ed25519 SubjectPublicKeyInfo, before the raw key. */
static const unsigned char audit_ed25519_spki[] = {
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};

#define AUDIT_SHOW 48 /* bytes of a tag value quoted in a finding */

void
sp_dkim_audit_init(sp_dkim_audit *audit)
{
    memset(audit, 0, sizeof(*audit));
}

void
sp_dkim_audit_add(sp_dkim_audit *audit, sp_dkim_audit_severity severity,
                  const char *code, const char *fmt, ...)
{
    sp_dkim_audit_finding *finding;
    va_list ap;

    if (audit->count == SP_DKIM_AUDIT_MAX_FINDINGS) {
        audit->dropped++;
        return;
    }
    finding = &audit->findings[audit->count++];
    finding->severity = severity;
    finding->code = code;
    va_start(ap, fmt);
    vsnprintf(finding->text, sizeof(finding->text), fmt, ap);
    va_end(ap);
}

sp_dkim_audit_severity
sp_dkim_audit_verdict(const sp_dkim_audit *audit)
{
    sp_dkim_audit_severity worst = SP_DKIM_AUDIT_OK;

    for (size_t i = 0; i < audit->count; i++)
        if (audit->findings[i].severity > worst)
            worst = audit->findings[i].severity;
    return worst == SP_DKIM_AUDIT_INFO ? SP_DKIM_AUDIT_OK : worst;
}

const char *
sp_dkim_audit_severity_name(sp_dkim_audit_severity severity)
{
    switch (severity) {
    case SP_DKIM_AUDIT_INFO:
        return "info";
    case SP_DKIM_AUDIT_WARNING:
        return "warning";
    case SP_DKIM_AUDIT_ERROR:
        return "error";
    default:
        return "ok";
    }
}

/* Whether the audit holds an error finding so far. */
static bool
audit_has_error(const sp_dkim_audit *audit)
{
    return sp_dkim_audit_verdict(audit) == SP_DKIM_AUDIT_ERROR;
}

/* v=: receivers discard a record whose version is not DKIM1. */
static void
audit_version(sp_dkim_audit *audit, const dkim__tags *tags)
{
    const dkim__tag *tag = dkim__tag_find(tags, "v");
    char shown[AUDIT_SHOW];

    if (tag == NULL)
        return;
    if (!dkim__tag_is(tag, "DKIM1"))
        sp_dkim_audit_add(audit, SP_DKIM_AUDIT_ERROR, "version",
                          "version v=%s is not DKIM1: receivers discard the "
                          "record (RFC 6376 3.6.1)",
                          dkim__tag_show(tag, shown, sizeof(shown)));
    else if (tag != &tags->tag[0])
        sp_dkim_audit_add(audit, SP_DKIM_AUDIT_WARNING, "version_position",
                          "v=DKIM1 is not the first tag, as RFC 6376 3.6.1 "
                          "requires; strict receivers discard the record");
}

/* k=: the key type; *known tells whether the key can be measured. */
static void
audit_key_type(sp_dkim_audit *audit, const dkim__tags *tags, bool *known)
{
    const dkim__tag *tag = dkim__tag_find(tags, "k");
    char shown[AUDIT_SHOW];

    *known = true;
    audit->key_type = SP_DKIM_KEY_RSA;
    if (tag == NULL || dkim__tag_is(tag, "rsa"))
        return;
    if (dkim__tag_is(tag, "ed25519")) {
        audit->key_type = SP_DKIM_KEY_ED25519;
        return;
    }
    *known = false;
    sp_dkim_audit_add(audit, SP_DKIM_AUDIT_ERROR, "key_type",
                      "unknown key type k=%s: receivers ignore the record; "
                      "use k=rsa or k=ed25519",
                      dkim__tag_show(tag, shown, sizeof(shown)));
}

/* h=, s=, t= and g=: what the record allows. */
static void
audit_flags(sp_dkim_audit *audit, const dkim__tags *tags)
{
    const dkim__tag *tag;
    char shown[AUDIT_SHOW];

    tag = dkim__tag_find(tags, "h");
    if (tag != NULL && !dkim__tag_list_has(tag, "sha256"))
        sp_dkim_audit_add(
            audit, SP_DKIM_AUDIT_ERROR,
            dkim__tag_list_has(tag, "sha1") ? "hash_sha1_only" : "hash_none",
            "h=%s %s: no signature made with this key can pass; allow "
            "sha256 or remove h=",
            dkim__tag_show(tag, shown, sizeof(shown)),
            dkim__tag_list_has(tag, "sha1")
                ? "allows only sha1, which receivers no longer accept "
                  "(RFC 8301)"
                : "names no hash algorithm receivers use");

    tag = dkim__tag_find(tags, "s");
    if (tag != NULL && !dkim__tag_list_has(tag, "email") &&
        !dkim__tag_list_has(tag, "*"))
        sp_dkim_audit_add(audit, SP_DKIM_AUDIT_ERROR, "service",
                          "service type s=%s does not include email: "
                          "receivers must not use this key for mail",
                          dkim__tag_show(tag, shown, sizeof(shown)));

    tag = dkim__tag_find(tags, "t");
    if (tag != NULL && dkim__tag_list_has(tag, "y"))
        sp_dkim_audit_add(audit, SP_DKIM_AUDIT_WARNING, "testing",
                          "t=y: testing mode is left on, so receivers may "
                          "treat signed mail as unsigned (RFC 6376 3.6.1); "
                          "remove it once signing works");

    tag = dkim__tag_find(tags, "g");
    if (tag != NULL && !dkim__tag_is(tag, "*"))
        sp_dkim_audit_add(audit, SP_DKIM_AUDIT_WARNING, "granularity",
                          "g=%s restricts the addresses the key signs for "
                          "(RFC 4871); RFC 6376 dropped the tag but some "
                          "verifiers still enforce it: remove it",
                          dkim__tag_show(tag, shown, sizeof(shown)));
}

/* The size of an RSA key, against RFC 8301 and the providers' rules. */
static void
audit_rsa_size(sp_dkim_audit *audit, unsigned bits)
{
    audit->has_key = true;
    audit->key_bits = bits;
    if (bits < SP_DKIM_RSA_MIN_BITS)
        sp_dkim_audit_add(audit, SP_DKIM_AUDIT_ERROR, "key_too_short",
                          "RSA key of %u bits: under %u bits, rejected by "
                          "the major mailbox providers (RFC 8301); publish a "
                          "key of %u bits",
                          bits, SP_DKIM_RSA_MIN_BITS, SP_DKIM_RSA_WARN_BITS);
    else if (bits < SP_DKIM_RSA_WARN_BITS)
        sp_dkim_audit_add(audit, SP_DKIM_AUDIT_WARNING, "key_weak",
                          "RSA key of %u bits: weak; move to %u bits", bits,
                          SP_DKIM_RSA_WARN_BITS);
    else
        sp_dkim_audit_add(audit, SP_DKIM_AUDIT_OK, "key_size",
                          "RSA key of %u bits: good", bits);
}

/* An Ed25519 p=: the raw 32 octets, or the SPKI form RFC 8463 forbids. */
static int
audit_ed25519(sp_dkim_audit *audit, const sp_buf *key)
{
    sp_buf raw = SP_BUF_INIT;

    if (key->len == 32) {
        audit->has_key = true;
        audit->key_bits = 256;
        sp_dkim_audit_add(audit, SP_DKIM_AUDIT_OK, "key_size",
                          "Ed25519 key: good (RFC 8463)");
        return SP_OK;
    }
    if (key->len != sizeof(audit_ed25519_spki) + 32 ||
        memcmp(key->data, audit_ed25519_spki, sizeof(audit_ed25519_spki))) {
        sp_dkim_audit_add(audit, SP_DKIM_AUDIT_ERROR, "key_unreadable",
                          "k=ed25519 but p= decodes to %zu octets, not the "
                          "raw 32-octet key RFC 8463 specifies",
                          key->len);
        return SP_OK;
    }

    /* Name the fix: the same key in the form receivers accept. */
    if (sp_b64_encode(&raw, key->data + sizeof(audit_ed25519_spki), 32) !=
        SP_OK)
        return SP_ENOMEM;
    sp_dkim_audit_add(audit, SP_DKIM_AUDIT_ERROR, "ed25519_spki",
                      "Ed25519 key published in SPKI form "
                      "(SubjectPublicKeyInfo, 44 octets): RFC 8463 wants the "
                      "raw 32 octets and receivers reject this record; "
                      "publish p=%s",
                      raw.data);
    sp_buf_free(&raw);
    return SP_OK;
}

/* An RSA p=: SubjectPublicKeyInfo or PKCS#1, measured. */
static void
audit_rsa(sp_dkim_audit *audit, const sp_buf *key)
{
    sp_dkim_keyrec rec = {.type = SP_DKIM_KEY_RSA, .public_key = *key};
    EVP_PKEY *pkey = NULL;
    sp_error err;

    if (dkim__keyrec_pkey(&rec, &pkey, &err) != SP_OK) {
        sp_dkim_audit_add(audit, SP_DKIM_AUDIT_ERROR, "key_unreadable", "%s%s",
                          err.text,
                          key->len == 32 ? " (32 octets: an Ed25519 key "
                                           "without k=ed25519?)"
                                         : "");
        return;
    }
    audit_rsa_size(audit, (unsigned)EVP_PKEY_get_bits(pkey));
    EVP_PKEY_free(pkey);
}

/* p=: present, revoked, decodable, and the key it holds. */
static int
audit_key(sp_dkim_audit *audit, const dkim__tags *tags, bool type_known)
{
    const dkim__tag *tag = dkim__tag_find(tags, "p");
    sp_buf key = SP_BUF_INIT;
    sp_error err;
    int rc;

    if (tag == NULL) {
        sp_dkim_audit_add(audit, SP_DKIM_AUDIT_ERROR, "syntax",
                          "no p= tag: the record holds no key");
        return SP_OK;
    }
    if (tag->value_len == 0) {
        sp_dkim_audit_add(audit, SP_DKIM_AUDIT_WARNING, "revoked",
                          "p= is empty: the key is revoked, and every "
                          "signature made with this selector fails");
        return SP_OK;
    }
    rc = sp_b64_decode(&key, tag->value, tag->value_len, &err);
    if (rc == SP_ENOMEM)
        return rc;
    if (rc != SP_OK)
        sp_dkim_audit_add(audit, SP_DKIM_AUDIT_ERROR, "syntax",
                          "p= is not valid base64: %s", err.text);
    else if (type_known && audit->key_type == SP_DKIM_KEY_ED25519)
        rc = audit_ed25519(audit, &key);
    else if (type_known)
        audit_rsa(audit, &key);
    sp_buf_free(&key);
    return rc == SP_ENOMEM ? rc : SP_OK;
}

int
sp_dkim_audit_record(sp_dkim_audit *audit, const char *text, size_t len)
{
    dkim__tags tags;
    sp_dkim_keyrec rec;
    sp_error err;
    bool type_known;
    int rc;

    /* A tag list receivers cannot read is discarded whole. */
    if (dkim__tag_parse(text, len, &tags, &err) != SP_OK) {
        sp_dkim_audit_add(audit, SP_DKIM_AUDIT_ERROR, "syntax",
                          "syntax error: %s; receivers discard the whole "
                          "record",
                          err.text);
        return SP_OK;
    }

    audit_version(audit, &tags);
    audit_key_type(audit, &tags, &type_known);
    audit_flags(audit, &tags);
    rc = audit_key(audit, &tags, type_known);
    if (rc != SP_OK)
        return rc;

    /* What the verifier refuses must not pass the audit. */
    if (audit_has_error(audit))
        return SP_OK;
    rc = sp_dkim_keyrec_parse(text, len, &rec, &err);
    if (rc == SP_ENOMEM)
        return rc;
    if (rc != SP_OK)
        sp_dkim_audit_add(audit, SP_DKIM_AUDIT_ERROR, "syntax", "%s", err.text);
    else
        sp_dkim_keyrec_free(&rec);
    return SP_OK;
}

/* Whether a parsed record holds a key that can be compared. */
static bool
audit_readable(const sp_dkim_keyrec *rec)
{
    EVP_PKEY *pkey = NULL;
    bool readable;

    if (rec->revoked)
        return false;
    readable = dkim__keyrec_pkey(rec, &pkey, NULL) == SP_OK;
    EVP_PKEY_free(pkey);
    return readable;
}

int
sp_dkim_audit_match(sp_dkim_audit *audit, const char *published,
                    size_t published_len, const char *ours, size_t ours_len)
{
    sp_dkim_keyrec mine, theirs;
    sp_error err;
    int rc;

    rc = sp_dkim_keyrec_parse(ours, ours_len, &mine, &err);
    if (rc == SP_ENOMEM)
        return rc;
    if (rc != SP_OK || !audit_readable(&mine)) {
        sp_dkim_audit_add(audit, SP_DKIM_AUDIT_WARNING, "our_record",
                          "not compared: sealpost's own record for this "
                          "selector holds no readable key (%s)",
                          rc != SP_OK ? err.text : "revoked or malformed");
        if (rc == SP_OK)
            sp_dkim_keyrec_free(&mine);
        return SP_OK;
    }
    rc = sp_dkim_keyrec_parse(published, published_len, &theirs, &err);
    if (rc == SP_ENOMEM) {
        sp_dkim_keyrec_free(&mine);
        return rc;
    }

    /* A revoked or broken record was reported above; it holds no key. */
    if (rc != SP_OK || !audit_readable(&theirs))
        sp_dkim_audit_add(audit, SP_DKIM_AUDIT_INFO, "not_compared",
                          "not compared with sealpost's key: the published "
                          "record holds no readable key");
    else if (sp_dkim_keyrec_same_key(&theirs, &mine))
        sp_dkim_audit_add(audit, SP_DKIM_AUDIT_OK, "key_match",
                          "the published key is the one sealpost holds for "
                          "this selector");
    else
        sp_dkim_audit_add(audit, SP_DKIM_AUDIT_ERROR, "key_mismatch",
                          "the published key does not match sealpost's "
                          "private key for this selector: signatures "
                          "sealpost makes with it fail; publish the record "
                          "sealpost holds");
    if (rc == SP_OK)
        sp_dkim_keyrec_free(&theirs);
    sp_dkim_keyrec_free(&mine);
    return SP_OK;
}

/* Whether every tag is one of RFC 4870's policy tags, and one is there. */
static bool
audit_is_domainkeys(const dkim__tags *tags)
{
    static const char *const known[] = {"o", "t", "r", "n"};

    for (size_t i = 0; i < tags->count; i++) {
        bool found = false;

        for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++)
            found = found || (tags->tag[i].name_len == 1 &&
                              tags->tag[i].name[0] == known[k][0]);
        if (!found)
            return false;
    }
    return tags->count > 0;
}

void
sp_dkim_audit_domainkeys(sp_dkim_audit *audit, const char *text, size_t len)
{
    const dkim__tag *o, *t, *r;
    char shown[3][AUDIT_SHOW];
    dkim__tags tags;

    if (dkim__tag_parse(text, len, &tags, NULL) != SP_OK ||
        !audit_is_domainkeys(&tags)) {
        sp_dkim_audit_add(audit, SP_DKIM_AUDIT_INFO, "domainkeys_other",
                          "a TXT record that is not a DomainKeys policy: %s",
                          sp_log_escape(shown[0], sizeof(shown[0]), text, len));
        return;
    }
    sp_dkim_audit_add(audit, SP_DKIM_AUDIT_WARNING, "domainkeys",
                      "DomainKeys policy record (RFC 4870): a deprecated "
                      "protocol, historic since 2007, that receivers no "
                      "longer read; DKIM and DMARC replaced it: remove the "
                      "record and say the policy with DMARC's p=");

    o = dkim__tag_find(&tags, "o");
    t = dkim__tag_find(&tags, "t");
    r = dkim__tag_find(&tags, "r");
    sp_dkim_audit_add(
        audit, SP_DKIM_AUDIT_INFO, "domainkeys_policy", "o=%s (%s), t=%s, r=%s",
        o ? dkim__tag_show(o, shown[0], sizeof(shown[0])) : "~",
        o && dkim__tag_is(o, "-") ? "all mail signed" : "some mail signed",
        t ? dkim__tag_show(t, shown[1], sizeof(shown[1])) : "n",
        r ? dkim__tag_show(r, shown[2], sizeof(shown[2])) : "(none)");
}
