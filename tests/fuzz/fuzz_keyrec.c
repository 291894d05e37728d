/*
 * fuzz_keyrec.c: libFuzzer target for DKIM key records, the TXT values
 * published at selector._domainkey.domain (sp_dkim_keyrec_parse,
 * sp_dkim_keyrec_free and dkim__keyrec_pkey in src/dkim/keyrec.c).
 *
 * The input is one record.  Besides the memory errors and leaks the
 * sanitizers catch, it checks the promises of dkim.h: a failed parse says
 * why, in printable text, and leaves nothing to free; a parsed record agrees
 * with its own tags (v=, k=, p=); a revoked record holds no key; an Ed25519
 * record holds the raw 32 octets RFC 8463 requires; and a key made from a
 * record is of the record's type.  A broken invariant aborts, so libFuzzer
 * keeps the input.
 */
#include "dkim/dkim_int.h"
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Whether an error was filled as base.h describes, its text printable:
 * the verifier shows it to people, so record bytes must come escaped.
 */
static bool
error_filled(const sp_error *err, int code)
{
    if (err->code != code || err->text[0] == '\0' ||
        memchr(err->text, '\0', sizeof(err->text)) == NULL)
        return false;
    for (const char *p = err->text; *p != '\0'; p++)
        if (*p < 0x20 || *p > 0x7e)
            return false;
    return true;
}

/*
 * The record against its own tags, parsed again: the parser must not
 * have read a value other than the one the tag list holds.
 */
static void
check_against_tags(const char *text, size_t size, const sp_dkim_keyrec *rec)
{
    const dkim__tag *v, *k, *p;
    dkim__tags tags;

    CHECK(dkim__tag_parse(text, size, &tags, NULL) == SP_OK);
    v = dkim__tag_find(&tags, "v");
    k = dkim__tag_find(&tags, "k");
    p = dkim__tag_find(&tags, "p");
    CHECK(rec->has_version == (v != NULL));
    CHECK(v == NULL || dkim__tag_is(v, "DKIM1"));
    CHECK((rec->type == SP_DKIM_KEY_ED25519) ==
          (k != NULL && dkim__tag_is(k, "ed25519")));
    CHECK(p != NULL);
    CHECK(rec->revoked == (p->value_len == 0));
}

/* What every parsed record must look like, whatever the input. */
static void
check_record(const sp_dkim_keyrec *rec)
{
    CHECK(rec->type == SP_DKIM_KEY_RSA || rec->type == SP_DKIM_KEY_ED25519);
    CHECK((rec->hashes & ~(SP_DKIM_HASH_SHA1 | SP_DKIM_HASH_SHA256)) == 0);
    CHECK(memchr(rec->granularity, '\0', sizeof(rec->granularity)) != NULL);
    CHECK(rec->has_granularity || rec->granularity[0] == '\0');
    if (rec->revoked) {
        CHECK(rec->public_key.len == 0 && rec->public_key.data == NULL);
        return;
    }
    CHECK(rec->public_key.len > 0 && rec->public_key.data != NULL);
    if (rec->type == SP_DKIM_KEY_ED25519)
        CHECK(rec->public_key.len == 32);
}

/* Make the verification key; it must be what the record claims. */
static void
check_pkey(const sp_dkim_keyrec *rec)
{
    EVP_PKEY *pkey = (EVP_PKEY *)&pkey; /* must be reset on failure */
    sp_error err;
    int rc = dkim__keyrec_pkey(rec, &pkey, &err);

    if (rc != SP_OK) {
        CHECK(pkey == NULL);
        CHECK(error_filled(&err, SP_ESYNTAX));

        /* OpenSSL takes any 32 octets as a raw Ed25519 public key. */
        CHECK(rec->type != SP_DKIM_KEY_ED25519);
        return;
    }
    CHECK(pkey != NULL);
    if (rec->type == SP_DKIM_KEY_ED25519)
        CHECK(EVP_PKEY_is_a(pkey, "ED25519"));
    else
        CHECK(EVP_PKEY_is_a(pkey, "RSA") && EVP_PKEY_get_bits(pkey) > 0);
    EVP_PKEY_free(pkey);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    sp_dkim_keyrec rec;
    sp_error err;
    int rc;

    /* Garbage in rec first: the parser must set every field itself. */
    memset(&rec, 0xa5, sizeof(rec));
    rc = sp_dkim_keyrec_parse(text, size, &rec, &err);
    if (rc != SP_OK) {
        CHECK(rc == SP_ESYNTAX || rc == SP_ENOMEM);
        CHECK(error_filled(&err, rc));
        CHECK(rec.public_key.data == NULL);
        return 0;
    }
    check_record(&rec);
    check_against_tags(text, size, &rec);
    if (!rec.revoked)
        check_pkey(&rec);
    sp_dkim_keyrec_free(&rec);
    CHECK(rec.public_key.data == NULL);
    return 0;
}
