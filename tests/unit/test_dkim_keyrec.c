/*
 * test_dkim_keyrec.c: key records (RFC 6376 3.6.1, RFC 8463) and the
 * private keys sealpost signs with.
 */
#include "dkim/dkim_int.h"
#include "testlib.h"

#include <string.h>

#define ED1_RAW "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="

static int
keyrec(const char *text, sp_dkim_keyrec *rec, sp_error *err)
{
    return sp_dkim_keyrec_parse(text, strlen(text), rec, err);
}

static void
ed25519_raw_key_parses(void **state)
{
    sp_dkim_keyrec rec;
    EVP_PKEY *pkey = NULL;

    (void)state;
    assert_int_equal(keyrec("v=DKIM1; k=ed25519; p=" ED1_RAW, &rec, NULL),
                     SP_OK);
    assert_int_equal(rec.type, SP_DKIM_KEY_ED25519);
    assert_int_equal(rec.public_key.len, 32);
    assert_int_equal(dkim__keyrec_pkey(&rec, &pkey, NULL), SP_OK);
    EVP_PKEY_free(pkey);
    sp_dkim_keyrec_free(&rec);
}

static void
ed25519_spki_form_is_refused_with_the_reason(void **state)
{
    sp_dkim_keyrec rec;
    sp_error err;

    (void)state;
    assert_int_equal(
        keyrec("v=DKIM1; k=ed25519; p=MCowBQYDK2VwAyEA" ED1_RAW, &rec, &err),
        SP_ESYNTAX);
    assert_non_null(strstr(err.text, "44 octets"));
}

static void
rsa_spki_and_pkcs1_forms_both_work(void **state)
{
    sp_buf dns = SP_BUF_INIT;
    const char *names[] = {"rsa1._domainkey", "rsa1pkcs1._domainkey"};

    (void)state;
    testlib_read("cases/keys/dns-all.txt", &dns);
    for (size_t i = 0; i < 2; i++) {
        char *line = strstr(dns.data, names[i]);
        char *start = strchr(line, '"') + 1;
        char *end = strchr(start, '"');
        sp_dkim_keyrec rec;
        EVP_PKEY *pkey = NULL;

        assert_int_equal(
            sp_dkim_keyrec_parse(start, (size_t)(end - start), &rec, NULL),
            SP_OK);
        assert_int_equal(dkim__keyrec_pkey(&rec, &pkey, NULL), SP_OK);
        assert_int_equal(EVP_PKEY_get_bits(pkey), 1024);
        EVP_PKEY_free(pkey);
        sp_dkim_keyrec_free(&rec);
    }
    sp_buf_free(&dns);
}

static void
record_flags_are_read(void **state)
{
    sp_dkim_keyrec rec;

    (void)state;
    assert_int_equal(keyrec("v=DKIM1; s=email:web; x1 = extra ; t = y:s:z; "
                            "h=sha256; g=jl*g; p=" ED1_RAW "; k=ed25519",
                            &rec, NULL),
                     SP_OK);
    assert_true(rec.testing);
    assert_true(rec.strict);
    assert_int_equal(rec.hashes, SP_DKIM_HASH_SHA256);
    assert_true(rec.has_granularity);
    assert_string_equal(rec.granularity, "jl*g");
    sp_dkim_keyrec_free(&rec);
}

static void
revoked_key_is_reported(void **state)
{
    sp_dkim_keyrec rec;

    (void)state;
    assert_int_equal(keyrec("k=rsa; t=y; p=", &rec, NULL), SP_OK);
    assert_true(rec.revoked);
    sp_dkim_keyrec_free(&rec);
}

static void
bad_records_name_the_tag(void **state)
{
    static const char *const bad[][2] = {
        {"v=DKIM3; p=" ED1_RAW, "v=DKIM3"},
        {"k=foobar; p=" ED1_RAW, "k=foobar"},
        {"s=chat; p=" ED1_RAW, "s=chat"},
        {"v=DKIM1; k=rsa", "p="},
        {"k=rsa; t; p=" ED1_RAW, "no '='"},
        {"p=!!!", "base64"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sp_dkim_keyrec rec;
        sp_error err;

        assert_int_equal(keyrec(bad[i][0], &rec, &err), SP_ESYNTAX);
        if (strstr(err.text, bad[i][1]) == NULL)
            fail_msg("\"%s\": \"%s\" lacks \"%s\"", bad[i][0], err.text,
                     bad[i][1]);
    }
}

static void
short_rsa_private_key_is_refused(void **state)
{
    sp_dkim_key *key = NULL;
    sp_buf pem = SP_BUF_INIT;
    sp_error err;

    (void)state;
    /* RFC 6376 Appendix C's key is 1024 bits: accepted with a warning. */
    testlib_read("cases/keys/rsa1024-rfc6376-appendixC.private.pem", &pem);
    assert_int_equal(sp_dkim_key_parse(pem.data, pem.len, &key, &err), SP_OK);
    assert_int_equal(sp_dkim_key_bits(key), 1024);
    assert_non_null(sp_dkim_key_warning(key));
    sp_dkim_key_free(key);
    sp_buf_free(&pem);

    assert_int_equal(sp_dkim_key_generate(SP_DKIM_KEY_RSA, 768, &key, &err),
                     SP_EPOLICY);
    assert_non_null(strstr(err.text, "RFC 8301"));
    assert_null(key);
}

static void
generated_keys_publish_parseable_records(void **state)
{
    sp_dkim_keytype types[] = {SP_DKIM_KEY_RSA, SP_DKIM_KEY_ED25519};

    (void)state;
    for (size_t i = 0; i < 2; i++) {
        sp_dkim_key *key = NULL, *again = NULL;
        sp_buf record = SP_BUF_INIT, pem = SP_BUF_INIT;
        sp_dkim_keyrec rec;

        assert_int_equal(sp_dkim_key_generate(types[i], 2048, &key, NULL),
                         SP_OK);
        assert_null(sp_dkim_key_warning(key));
        assert_int_equal(sp_dkim_key_record(key, true, &record), SP_OK);
        assert_int_equal(
            sp_dkim_keyrec_parse(record.data, record.len, &rec, NULL), SP_OK);
        assert_int_equal(rec.type, types[i]);
        assert_true(rec.testing);
        sp_dkim_keyrec_free(&rec);

        /* The PEM form reads back as the same key. */
        assert_int_equal(sp_dkim_key_pem(key, &pem), SP_OK);
        assert_int_equal(sp_dkim_key_parse(pem.data, pem.len, &again, NULL),
                         SP_OK);
        assert_int_equal(sp_dkim_key_bits(again), sp_dkim_key_bits(key));
        sp_dkim_key_free(key);
        sp_dkim_key_free(again);
        sp_buf_free(&record);
        sp_buf_free(&pem);
    }
}

static void
ed25519_seed_gives_the_rfc8463_public_key(void **state)
{
    sp_dkim_key *key = testlib_ed25519_key();
    sp_buf record = SP_BUF_INIT;

    (void)state;
    assert_int_equal(sp_dkim_key_record(key, false, &record), SP_OK);
    assert_string_equal(record.data, "v=DKIM1; k=ed25519; p=" ED1_RAW);
    sp_buf_free(&record);
    sp_dkim_key_free(key);
}

static void
not_a_key_is_refused(void **state)
{
    sp_dkim_key *key = NULL;
    sp_error err;

    (void)state;
    assert_int_equal(sp_dkim_key_parse("hello", 5, &key, &err), SP_EKEY);
    assert_null(key);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ed25519_raw_key_parses),
        cmocka_unit_test(ed25519_spki_form_is_refused_with_the_reason),
        cmocka_unit_test(rsa_spki_and_pkcs1_forms_both_work),
        cmocka_unit_test(record_flags_are_read),
        cmocka_unit_test(revoked_key_is_reported),
        cmocka_unit_test(bad_records_name_the_tag),
        cmocka_unit_test(short_rsa_private_key_is_refused),
        cmocka_unit_test(generated_keys_publish_parseable_records),
        cmocka_unit_test(ed25519_seed_gives_the_rfc8463_public_key),
        cmocka_unit_test(not_a_key_is_refused),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
