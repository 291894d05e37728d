/*
 * test_dkim_verify.c: the verifier's results and reasons, its limits, its
 * independence from chunking, Authentication-Results, and its behaviour
 * when memory runs out.  The corpora are covered by the integration tests;
 * these tests build the exact situations they need.
 */
#include "testlib.h"

#include <pthread.h>

#include <string.h>

static const char body_message[] = "From: a@example.com\r\n"
                                   "To: b@example.org\r\n"
                                   "Subject: hello\r\n"
                                   "\r\n"
                                   "Hello.\r\n";

static sp_dkim_key *ed_key;
static testlib_dns dns;

static int
setup(void **state)
{
    (void)state;
    ed_key = testlib_ed25519_key();
    testlib_dns_load(&dns, "cases/keys/dns-all.txt");
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    sp_dkim_key_free(ed_key);
    testlib_dns_free(&dns);
    return 0;
}

/* Sign body_message (or text) with ed1 and the given options. */
static void
sign_ed1(const char *text, const char *selector, int64_t expire, sp_buf *out)
{
    sp_dkim_sign_spec spec = {.domain = "example.com",
                              .selector = selector,
                              .key = ed_key,
                              .header_canon = SP_DKIM_RELAXED,
                              .body_canon = SP_DKIM_RELAXED,
                              .expire_after = expire};
    sp_error err;

    if (testlib_sign(&spec, 1, text, strlen(text), 0, out, &err) != SP_OK)
        fail_msg("sign: %s", err.text);
}

static const sp_dkim_result *
only(sp_dkim_verify *verify)
{
    assert_int_equal(sp_dkim_verify_count(verify), 1);
    return sp_dkim_verify_result(verify, 0);
}

static void
pass_reports_who_signed(void **state)
{
    sp_buf signed_text = SP_BUF_INIT;
    sp_dkim_verify *verify;
    const sp_dkim_result *res;

    (void)state;
    sign_ed1(body_message, "ed1", 0, &signed_text);
    verify = testlib_verify(&dns, signed_text.data, signed_text.len, 0, false);
    res = only(verify);
    assert_int_equal(res->status, SP_DKIM_PASS);
    assert_string_equal(res->domain, "example.com");
    assert_string_equal(res->selector, "ed1");
    assert_string_equal(res->algorithm, "ed25519-sha256");
    assert_int_equal(res->key_bits, 256);
    assert_int_equal(res->timestamp, 1700000000);
    assert_int_equal(res->expires, -1);
    assert_int_equal(res->body_octets, 8);
    assert_int_equal(sp_dkim_verify_from_count(verify), 1);
    sp_dkim_verify_free(verify);
    sp_buf_free(&signed_text);
}

static void
results_do_not_depend_on_chunking(void **state)
{
    sp_buf text = SP_BUF_INIT;

    (void)state;
    testlib_read("corpus/dkim/mail-dkim/corpus/multiple_2.txt", &text);
    {
        sp_dkim_verify *whole =
            testlib_verify(&dns, text.data, text.len, 0, true);

        for (size_t chunk = 1; chunk < 40; chunk += 3) {
            sp_dkim_verify *cut =
                testlib_verify(&dns, text.data, text.len, chunk, true);

            assert_int_equal(sp_dkim_verify_count(cut),
                             sp_dkim_verify_count(whole));
            for (size_t i = 0; i < sp_dkim_verify_count(whole); i++) {
                const sp_dkim_result *a = sp_dkim_verify_result(whole, i);
                const sp_dkim_result *b = sp_dkim_verify_result(cut, i);

                assert_int_equal(a->status, b->status);
                assert_int_equal(a->reason, b->reason);
                assert_int_equal(a->body_octets, b->body_octets);
            }
            sp_dkim_verify_free(cut);
        }
        sp_dkim_verify_free(whole);
    }
    sp_buf_free(&text);
}

/* A signed message verified against a table that fails in a given way. */
static const sp_dkim_result *
verify_with_table(const char *table_text, sp_dkim_verify **verify)
{
    sp_buf signed_text = SP_BUF_INIT;
    testlib_dns local;

    sign_ed1(body_message, "ed1", 0, &signed_text);
    assert_int_equal(
        sp_dns_table_parse(table_text, strlen(table_text), &local.table, NULL),
        SP_OK);
    *verify =
        testlib_verify(&local, signed_text.data, signed_text.len, 0, false);
    testlib_dns_free(&local);
    sp_buf_free(&signed_text);
    return only(*verify);
}

static void
dns_failures_have_their_own_reasons(void **state)
{
    static const struct {
        const char *table;
        sp_dkim_status status;
        sp_dkim_reason reason;
        const char *words;
    } rows[] = {
        {"ed1._domainkey.example.com TIMEOUT\n", SP_DKIM_TEMPERROR,
         SP_DKIM_R_DNS_TIMEOUT, "timed out"},
        {"ed1._domainkey.example.com SERVFAIL\n", SP_DKIM_TEMPERROR,
         SP_DKIM_R_DNS_SERVFAIL, "SERVFAIL"},
        {"# nothing\n", SP_DKIM_PERMERROR, SP_DKIM_R_NO_KEY, "NXDOMAIN"},
        {"ed1._domainkey.example.com TXT \"v=DKIM1; k=ed25519; p=\"\n",
         SP_DKIM_PERMERROR, SP_DKIM_R_KEY_REVOKED, "revoked"},
        {"ed1._domainkey.example.com TXT \"v=DKIM1; k=rsa; p=\"\n",
         SP_DKIM_PERMERROR, SP_DKIM_R_KEY_REVOKED, "revoked"},
        {"ed1._domainkey.example.com TXT \"v=DKIM1; k=ed25519; h=sha1; "
         "p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\"\n",
         SP_DKIM_PERMERROR, SP_DKIM_R_KEY_MISMATCH, "h="},
        {"ed1._domainkey.example.com TXT \"v=DKIM1; p=MFwwDQYJKoZIhvcNAQEBBQA"
         "DSwAwSAJBALgSoqXVSEmfcIsOzw7oRuCCOwsmtX/SJnTWxYyj2leFxfS/AVJ+dYfY+h"
         "XqMsT7l+MZvvh/R1WzN4MO/kI/7XsCAwEAAQ==\"\n",
         SP_DKIM_PERMERROR, SP_DKIM_R_KEY_MISMATCH, "k=rsa"},
        {"ed1._domainkey.example.com TXT \"v=DKIM1; k=ed25519; t=y; "
         "p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\"\n",
         SP_DKIM_PASS, SP_DKIM_R_OK, "t=y"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        sp_dkim_verify *verify;
        const sp_dkim_result *res = verify_with_table(rows[i].table, &verify);

        if (res->status != rows[i].status || res->reason != rows[i].reason ||
            strstr(res->detail, rows[i].words) == NULL)
            fail_msg("row %zu: %s %s: %s", i, sp_dkim_status_name(res->status),
                     sp_dkim_reason_word(res->reason), res->detail);
        sp_dkim_verify_free(verify);
    }
}

static void
expired_signature_is_permerror(void **state)
{
    sp_buf signed_text = SP_BUF_INIT;
    sp_dkim_verify_opts opts = {
        .lookup = testlib_dns_lookup,
        .lookup_arg = &dns,
        .now = 1700000000 + 3601,
    };
    sp_dkim_verify *verify = NULL;

    (void)state;
    sign_ed1(body_message, "ed1", 3600, &signed_text);
    assert_int_equal(sp_dkim_verify_new(&opts, &verify, NULL), SP_OK);
    assert_int_equal(
        sp_dkim_verify_feed(verify, signed_text.data, signed_text.len, NULL),
        SP_OK);
    assert_int_equal(sp_dkim_verify_finish(verify, NULL), SP_OK);
    assert_int_equal(only(verify)->status, SP_DKIM_PERMERROR);
    assert_int_equal(only(verify)->reason, SP_DKIM_R_EXPIRED);
    assert_non_null(strstr(only(verify)->detail, "expired 1 seconds ago"));
    sp_dkim_verify_free(verify);
    sp_buf_free(&signed_text);
}

static void
signature_limit_leaves_the_rest_unchecked(void **state)
{
    sp_buf text = SP_BUF_INIT, one = SP_BUF_INIT;
    sp_dkim_verify *verify;
    const char *field_end;

    (void)state;
    sign_ed1(body_message, "ed1", 0, &one);
    /* Ten copies of the same signature field. */
    field_end = strstr(one.data, "\r\nFrom:") + 2;
    for (int i = 0; i < 10; i++)
        sp_buf_append(&text, one.data, (size_t)(field_end - one.data));
    sp_buf_append_str(&text, body_message);

    verify = testlib_verify(&dns, text.data, text.len, 0, false);
    assert_int_equal(sp_dkim_verify_count(verify), 10);
    for (size_t i = 0; i < 10; i++) {
        const sp_dkim_result *res = sp_dkim_verify_result(verify, i);

        if (i < SP_DKIM_MAX_SIGNATURES)
            assert_int_equal(res->status, SP_DKIM_PASS);
        else
            assert_int_equal(res->reason, SP_DKIM_R_NOT_CHECKED);
    }
    sp_dkim_verify_free(verify);
    sp_buf_free(&text);
    sp_buf_free(&one);
}

static void
from_must_be_signed(void **state)
{
    sp_dkim_sign_spec spec = {
        .domain = "example.com", .selector = "ed1", .key = ed_key};
    const char *names[] = {"Subject", "To", NULL};
    static const char crafted[] =
        "DKIM-Signature: v=1; a=ed25519-sha256; d=example.com; s=ed1;\r\n"
        "\th=to:subject; bh=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=;\r\n"
        "\tb=AAAA\r\n"
        "From: a@example.com\r\nTo: b@example.org\r\n\r\nx\r\n";
    sp_buf out = SP_BUF_INIT;
    sp_dkim_verify *verify;
    sp_error err;

    (void)state;
    /* The signer will not leave From out... */
    spec.names = names;
    assert_int_equal(testlib_sign(&spec, 1, body_message, strlen(body_message),
                                  0, &out, &err),
                     SP_EINVAL);
    assert_non_null(strstr(err.text, "must include From"));

    /* ...and the verifier refuses a signature that does. */
    verify = testlib_verify(&dns, crafted, sizeof(crafted) - 1, 0, false);
    assert_int_equal(only(verify)->reason, SP_DKIM_R_FROM_NOT_SIGNED);
    assert_int_equal(only(verify)->status, SP_DKIM_PERMERROR);
    sp_dkim_verify_free(verify);
    sp_buf_free(&out);
}

static void
changed_header_and_body_are_told_apart(void **state)
{
    sp_buf out = SP_BUF_INIT;
    sp_dkim_verify *verify;
    char *hit;

    (void)state;
    sign_ed1(body_message, "ed1", 0, &out);
    hit = strstr(out.data, "Hello.");
    hit[0] = 'J';
    verify = testlib_verify(&dns, out.data, out.len, 0, false);
    assert_int_equal(only(verify)->reason, SP_DKIM_R_BODY_HASH);
    assert_true(only(verify)->crypto_valid);
    sp_dkim_verify_free(verify);

    hit[0] = 'H';
    hit = strstr(out.data, "Subject: hello");
    hit[9] = 'j';
    verify = testlib_verify(&dns, out.data, out.len, 0, false);
    assert_int_equal(only(verify)->reason, SP_DKIM_R_BAD_SIGNATURE);
    assert_false(only(verify)->crypto_valid);
    sp_dkim_verify_free(verify);
    sp_buf_free(&out);
}

static void
legacy_accepts_rsa_sha1_and_short_keys(void **state)
{
    testlib_dns corpus;
    sp_buf text = SP_BUF_INIT;
    sp_dkim_verify *verify;

    (void)state;
    testlib_dns_load(&corpus, "corpus/dkim/mail-dkim/dns.txt");
    testlib_read("corpus/dkim/mail-dkim/corpus/goodkey_1.txt", &text);
    verify = testlib_verify(&corpus, text.data, text.len, 0, false);
    assert_int_equal(only(verify)->status, SP_DKIM_POLICY);
    assert_true(only(verify)->crypto_valid);
    assert_non_null(
        strstr(only(verify)->detail, "cryptographically valid, but"));
    assert_non_null(strstr(only(verify)->detail, "512-bit key"));
    sp_dkim_verify_free(verify);

    verify = testlib_verify(&corpus, text.data, text.len, 0, true);
    assert_int_equal(only(verify)->status, SP_DKIM_PASS);
    sp_dkim_verify_free(verify);
    testlib_dns_free(&corpus);
    sp_buf_free(&text);
}

static void
domainkeys_are_counted_not_judged(void **state)
{
    testlib_dns corpus;
    sp_buf text = SP_BUF_INIT;
    sp_dkim_verify *verify;

    (void)state;
    testlib_dns_load(&corpus, "corpus/dkim/mail-dkim/dns.txt");
    testlib_read("corpus/dkim/mail-dkim/corpus/good_dk_1.txt", &text);
    verify = testlib_verify(&corpus, text.data, text.len, 0, false);
    assert_int_equal(sp_dkim_verify_count(verify), 0);
    assert_int_equal(sp_dkim_verify_domainkeys(verify), 1);
    sp_dkim_verify_free(verify);
    testlib_dns_free(&corpus);
    sp_buf_free(&text);
}

static void
authentication_results_field(void **state)
{
    sp_buf out = SP_BUF_INIT, field = SP_BUF_INIT;
    sp_dkim_verify *verify;

    (void)state;
    sign_ed1(body_message, "ed1", 0, &out);
    verify = testlib_verify(&dns, out.data, out.len, 0, false);
    assert_int_equal(
        sp_dkim_verify_auth_results(verify, "mx.example.net", &field), SP_OK);
    assert_non_null(strstr(field.data, "Authentication-Results: "
                                       "mx.example.net;\r\n\tdkim=pass"));
    assert_non_null(strstr(field.data, "header.d=example.com header.s=ed1 "
                                       "header.a=ed25519-sha256 header.b="));
    assert_int_equal(strcmp(field.data + field.len - 2, "\r\n"), 0);
    sp_dkim_verify_free(verify);

    sp_buf_reset(&field);
    verify = testlib_verify(&dns, body_message, strlen(body_message), 0, false);
    assert_int_equal(sp_dkim_verify_auth_results(verify, "mx", &field), SP_OK);
    assert_string_equal(field.data,
                        "Authentication-Results: mx; dkim=none\r\n");
    sp_dkim_verify_free(verify);
    sp_buf_free(&out);
    sp_buf_free(&field);
}

/* Verify with the given cache; return the status of the one signature. */
static sp_dkim_status
verify_cached(sp_dkim_keycache *cache, testlib_dns *keys, const sp_buf *text)
{
    sp_dkim_verify_opts opts = {.lookup = testlib_dns_lookup,
                                .lookup_arg = keys,
                                .keycache = cache,
                                .now = 1700000000};
    sp_dkim_verify *verify = NULL;
    sp_dkim_status status;

    assert_int_equal(sp_dkim_verify_new(&opts, &verify, NULL), SP_OK);
    assert_int_equal(sp_dkim_verify_feed(verify, text->data, text->len, NULL),
                     SP_OK);
    assert_int_equal(sp_dkim_verify_finish(verify, NULL), SP_OK);
    status = only(verify)->status;
    sp_dkim_verify_free(verify);
    return status;
}

static void
key_cache_gives_the_same_verdicts(void **state)
{
    testlib_dns corpus;
    sp_buf ed = SP_BUF_INIT, rsa = SP_BUF_INIT, own = SP_BUF_INIT;
    sp_dkim_keycache *cache = NULL;

    (void)state;
    testlib_dns_load(&corpus, "corpus/dkim/mail-dkim/dns.txt");
    testlib_read("corpus/dkim/mail-dkim/corpus/goodkey_ed25519.txt", &ed);
    testlib_read("corpus/dkim/mail-dkim/corpus/goodkey_1.txt", &rsa);
    sign_ed1(body_message, "ed1", 0, &own);
    assert_int_equal(sp_dkim_keycache_new(1, &cache, NULL), SP_OK);

    /* One slot, three keys in turn: every lookup misses or evicts. */
    for (int round = 0; round < 3; round++) {
        assert_int_equal(verify_cached(cache, &corpus, &ed), SP_DKIM_PASS);
        assert_int_equal(verify_cached(cache, &dns, &own), SP_DKIM_PASS);
        assert_int_not_equal(verify_cached(cache, &corpus, &rsa), SP_DKIM_PASS);
    }
    sp_dkim_keycache_free(cache);

    /* With room for all, the second pass hits the cache. */
    assert_int_equal(sp_dkim_keycache_new(8, &cache, NULL), SP_OK);
    for (int round = 0; round < 2; round++) {
        assert_int_equal(verify_cached(cache, &corpus, &ed), SP_DKIM_PASS);
        assert_int_equal(verify_cached(cache, &dns, &own), SP_DKIM_PASS);
    }
    sp_dkim_keycache_free(cache);
    assert_int_equal(sp_dkim_keycache_new(0, &cache, NULL), SP_EINVAL);
    testlib_dns_free(&corpus);
    sp_buf_free(&ed);
    sp_buf_free(&rsa);
    sp_buf_free(&own);
}

struct cache_thread {
    sp_dkim_keycache *cache;
    const sp_buf *text;
    int passes;
};

static void *
cache_thread_run(void *arg)
{
    struct cache_thread *job = arg;

    for (int i = 0; i < 50; i++)
        if (verify_cached(job->cache, &dns, job->text) == SP_DKIM_PASS)
            job->passes++;
    return NULL;
}

static void
key_cache_is_shared_between_threads(void **state)
{
    sp_buf text = SP_BUF_INIT;
    sp_dkim_keycache *cache = NULL;
    struct cache_thread jobs[4];
    pthread_t threads[4];

    (void)state;
    sign_ed1(body_message, "ed1", 0, &text);
    assert_int_equal(sp_dkim_keycache_new(2, &cache, NULL), SP_OK);
    for (int i = 0; i < 4; i++) {
        jobs[i] = (struct cache_thread){cache, &text, 0};
        assert_int_equal(
            pthread_create(&threads[i], NULL, cache_thread_run, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(jobs[i].passes, 50);
    }
    sp_dkim_keycache_free(cache);
    sp_buf_free(&text);
}

static void
survives_allocation_failure_at_every_step(void **state)
{
    sp_buf text = SP_BUF_INIT;
    int rc = SP_ENOMEM;

    (void)state;
    testlib_read("corpus/dkim/dkimpy/ed25519test2.msg", &text);
    for (long allowed = 0; rc != SP_OK && allowed < 1000; allowed++) {
        sp_dkim_verify_opts opts = {.lookup = testlib_dns_lookup,
                                    .lookup_arg = &dns};
        sp_dkim_verify *verify = NULL;

        sp_alloc_fail_after(allowed);
        rc = sp_dkim_verify_new(&opts, &verify, NULL);
        if (rc == SP_OK)
            rc = sp_dkim_verify_feed(verify, text.data, text.len, NULL);
        if (rc == SP_OK)
            rc = sp_dkim_verify_finish(verify, NULL);
        sp_alloc_fail_after(-1);
        assert_true(rc == SP_OK || rc == SP_ENOMEM);
        sp_dkim_verify_free(verify);
    }
    assert_int_equal(rc, SP_OK);
    sp_buf_free(&text);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pass_reports_who_signed),
        cmocka_unit_test(results_do_not_depend_on_chunking),
        cmocka_unit_test(dns_failures_have_their_own_reasons),
        cmocka_unit_test(expired_signature_is_permerror),
        cmocka_unit_test(signature_limit_leaves_the_rest_unchecked),
        cmocka_unit_test(from_must_be_signed),
        cmocka_unit_test(changed_header_and_body_are_told_apart),
        cmocka_unit_test(legacy_accepts_rsa_sha1_and_short_keys),
        cmocka_unit_test(domainkeys_are_counted_not_judged),
        cmocka_unit_test(authentication_results_field),
        cmocka_unit_test(key_cache_gives_the_same_verdicts),
        cmocka_unit_test(key_cache_is_shared_between_threads),
        cmocka_unit_test(survives_allocation_failure_at_every_step),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
