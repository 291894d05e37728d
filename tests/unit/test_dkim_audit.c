/*
 * test_dkim_audit.c: the findings of sp_dkim_audit_* for published key
 * records, DomainKeys policies and the comparison with sealpost's keys.
 * Records come from the mail-dkim corpus and dns-all.txt, so each fault
 * is the one published in the wild.
 */
#include "dkim/dkim.h"
#include "testlib.h"

#include <stdio.h>
#include <string.h>

#define ED1_RAW  "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
#define ED1_SPKI "MCowBQYDK2VwAyEA" ED1_RAW
/* RSA keys of the mail-dkim corpus: 512 bits (test1), 768 (shan). */
#define RSA512                                                                 \
    "MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBALgSoqXVSEmfcIsOzw7oRuCCOwsmtX/SJnTWxYy"  \
    "j2leFxfS/AVJ+dYfY+hXqMsT7l+MZvvh/R1WzN4MO/kI/7XsCAwEAAQ=="
#define RSA768                                                                 \
    "MHwwDQYJKoZIhvcNAQEBBQADawAwaAJhALSQ1y/+tHT1d9XvpiVap4Z+GFaydEmDgfC48m3"  \
    "wLLmDqfKBADWYIqrCnfKPvZPzGYzo+aJMEiAOTtiNxPWYToiTfJlTpn2YyEEz6OUIXw0uc+"  \
    "NfEQviN4QQr0jVX9yRjwIDAQAB"

/* Audit one record; fails the test on anything but SP_OK. */
static void
audit(const char *text, sp_dkim_audit *out)
{
    sp_dkim_audit_init(out);
    assert_int_equal(sp_dkim_audit_record(out, text, strlen(text)), SP_OK);
}

/* The finding with code, or NULL. */
static const sp_dkim_audit_finding *
finding(const sp_dkim_audit *audit, const char *code)
{
    for (size_t i = 0; i < audit->count; i++)
        if (strcmp(audit->findings[i].code, code) == 0)
            return &audit->findings[i];
    return NULL;
}

/* Assert a finding of code with severity whose text holds words. */
static void
expect(const sp_dkim_audit *audit, const char *code,
       sp_dkim_audit_severity severity, const char *words)
{
    const sp_dkim_audit_finding *f = finding(audit, code);

    if (f == NULL)
        fail_msg("no finding %s (have %zu)", code, audit->count);
    assert_int_equal(f->severity, severity);
    if (words != NULL && strstr(f->text, words) == NULL)
        fail_msg("%s: \"%s\" lacks \"%s\"", code, f->text, words);
}

/* A record of a line of a test data table: the text between quotes. */
static void
table_record(const char *relative, const char *name, sp_buf *out)
{
    sp_buf table = SP_BUF_INIT;
    const char *line, *start, *end;

    testlib_read(relative, &table);
    line = strstr(table.data, name);
    assert_non_null(line);
    start = strchr(line, '"') + 1;
    end = strchr(start, '"');
    sp_buf_reset(out);
    assert_int_equal(sp_buf_append(out, start, (size_t)(end - start)), SP_OK);
    sp_buf_free(&table);
}

static void
rsa_2048_and_ed25519_keys_are_good(void **state)
{
    sp_dkim_key *rsa = testlib_rsa_key(2048);
    sp_buf record = SP_BUF_INIT;
    sp_dkim_audit a;

    (void)state;
    assert_int_equal(sp_dkim_key_record(rsa, false, &record), SP_OK);
    audit(record.data, &a);
    expect(&a, "key_size", SP_DKIM_AUDIT_OK, "2048 bits: good");
    assert_int_equal(sp_dkim_audit_verdict(&a), SP_DKIM_AUDIT_OK);
    assert_true(a.has_key);
    assert_int_equal(a.key_type, SP_DKIM_KEY_RSA);
    assert_int_equal(a.key_bits, 2048);

    audit("v=DKIM1; k=ed25519; p=" ED1_RAW, &a);
    expect(&a, "key_size", SP_DKIM_AUDIT_OK, "Ed25519");
    assert_int_equal(sp_dkim_audit_verdict(&a), SP_DKIM_AUDIT_OK);
    assert_int_equal(a.key_type, SP_DKIM_KEY_ED25519);
    assert_int_equal(a.key_bits, 256);
    assert_int_equal(a.count, 1);
    sp_buf_free(&record);
    sp_dkim_key_free(rsa);
}

static void
short_rsa_keys_are_errors_naming_rfc8301(void **state)
{
    sp_dkim_audit a;

    (void)state;
    audit("v=DKIM1; p=" RSA512, &a);
    expect(&a, "key_too_short", SP_DKIM_AUDIT_ERROR,
           "512 bits: under 1024 bits, rejected by the major mailbox "
           "providers (RFC 8301)");
    assert_int_equal(a.key_bits, 512);
    assert_int_equal(sp_dkim_audit_verdict(&a), SP_DKIM_AUDIT_ERROR);

    /* The corpus's 768-bit key allows sha1:sha256:sha512: size only. */
    audit("v=DKIM1; k=rsa; h=sha1:sha256:sha512; g=*; s=*; p=" RSA768, &a);
    expect(&a, "key_too_short", SP_DKIM_AUDIT_ERROR, "768 bits");
    assert_null(finding(&a, "hash_sha1_only"));
    assert_null(finding(&a, "granularity"));
    assert_null(finding(&a, "service"));
    assert_int_equal(a.count, 1);
}

static void
rsa_1024_is_a_warning(void **state)
{
    sp_buf record = SP_BUF_INIT;
    sp_dkim_audit a;

    (void)state;
    table_record("cases/keys/dns-all.txt", "rsa1._domainkey", &record);
    audit(record.data, &a);
    expect(&a, "key_weak", SP_DKIM_AUDIT_WARNING, "1024 bits: weak");
    assert_int_equal(sp_dkim_audit_verdict(&a), SP_DKIM_AUDIT_WARNING);

    /* The bare PKCS#1 form is measured the same way. */
    table_record("cases/keys/dns-all.txt", "rsa1pkcs1._domainkey", &record);
    audit(record.data, &a);
    expect(&a, "key_weak", SP_DKIM_AUDIT_WARNING, "1024 bits");
    sp_buf_free(&record);
}

static void
testing_and_sha1_only_are_reported_together(void **state)
{
    sp_dkim_audit a;

    (void)state;
    /* test2 of the corpus: h=md5:sha1, t=y among unknown flags. */
    audit("v=DKIM1; s=email:web:fine; x1 = extra ; t = y:n:extra; "
          "h=md5:sha1; p=" RSA512 " ;",
          &a);
    expect(&a, "hash_sha1_only", SP_DKIM_AUDIT_ERROR, "h=md5:sha1");
    expect(&a, "testing", SP_DKIM_AUDIT_WARNING, "t=y");
    expect(&a, "key_too_short", SP_DKIM_AUDIT_ERROR, NULL);
    assert_null(finding(&a, "service"));

    audit("v=DKIM1; h=bad; p=" RSA512, &a);
    expect(&a, "hash_none", SP_DKIM_AUDIT_ERROR, "h=bad");
}

static void
record_faults_name_their_tag(void **state)
{
    sp_dkim_audit a;

    (void)state;
    audit("v=DKIM3; t=y; p=" RSA512, &a);
    expect(&a, "version", SP_DKIM_AUDIT_ERROR, "v=DKIM3");
    expect(&a, "testing", SP_DKIM_AUDIT_WARNING, NULL);

    audit("k=rsa; t; p=" RSA512, &a);
    expect(&a, "syntax", SP_DKIM_AUDIT_ERROR, "\"t\"");
    assert_int_equal(a.count, 1);
    assert_false(a.has_key);

    audit("k=foobar; t=y; p=" RSA512, &a);
    expect(&a, "key_type", SP_DKIM_AUDIT_ERROR, "k=foobar");
    expect(&a, "testing", SP_DKIM_AUDIT_WARNING, NULL);
    assert_false(a.has_key);

    audit("v=DKIM1; s=chat; p=" RSA512, &a);
    expect(&a, "service", SP_DKIM_AUDIT_ERROR, "s=chat");

    audit("v=DKIM1; k=rsa", &a);
    expect(&a, "syntax", SP_DKIM_AUDIT_ERROR, "no p=");

    audit("v=DKIM1; p=@@@@", &a);
    expect(&a, "syntax", SP_DKIM_AUDIT_ERROR, "base64");

    audit("k=rsa; v=DKIM1; p=" ED1_RAW, &a);
    expect(&a, "version_position", SP_DKIM_AUDIT_WARNING, "first tag");
    expect(&a, "key_unreadable", SP_DKIM_AUDIT_ERROR, "k=ed25519?");

    audit("v=DKIM1; g=jl*g; p=" RSA512, &a);
    expect(&a, "granularity", SP_DKIM_AUDIT_WARNING, "g=jl*g");
}

static void
revoked_key_is_a_warning(void **state)
{
    sp_dkim_audit a;

    (void)state;
    audit("k=rsa; t=y; p=", &a);
    expect(&a, "revoked", SP_DKIM_AUDIT_WARNING, "revoked");
    assert_false(a.has_key);
    assert_int_equal(sp_dkim_audit_verdict(&a), SP_DKIM_AUDIT_WARNING);
}

static void
ed25519_spki_form_is_its_own_finding_with_the_fix(void **state)
{
    sp_dkim_audit a;

    (void)state;
    audit("v=DKIM1; k=ed25519; p=" ED1_SPKI, &a);
    expect(&a, "ed25519_spki", SP_DKIM_AUDIT_ERROR, "SPKI form");
    expect(&a, "ed25519_spki", SP_DKIM_AUDIT_ERROR, "p=" ED1_RAW);
    assert_int_equal(a.count, 1);

    /* Other wrong lengths are not called SPKI. */
    audit("v=DKIM1; k=ed25519; p=AAAA", &a);
    expect(&a, "key_unreadable", SP_DKIM_AUDIT_ERROR, "3 octets");
    assert_null(finding(&a, "ed25519_spki"));
}

static void
published_keys_are_compared_with_ours(void **state)
{
    sp_dkim_key *other_rsa = testlib_rsa_key(1024);
    sp_dkim_key *ed = testlib_ed25519_key();
    sp_dkim_key *other_ed = NULL;
    sp_buf spki = SP_BUF_INIT, pkcs1 = SP_BUF_INIT, other = SP_BUF_INIT;
    sp_buf ed_rec = SP_BUF_INIT, other_ed_rec = SP_BUF_INIT;
    sp_dkim_audit a;

    (void)state;
    assert_int_equal(
        sp_dkim_key_generate(SP_DKIM_KEY_ED25519, 0, &other_ed, NULL), SP_OK);
    table_record("cases/keys/dns-all.txt", "rsa1._domainkey", &spki);
    table_record("cases/keys/dns-all.txt", "rsa1pkcs1._domainkey", &pkcs1);
    assert_int_equal(sp_dkim_key_record(other_rsa, false, &other), SP_OK);
    assert_int_equal(sp_dkim_key_record(ed, false, &ed_rec), SP_OK);
    assert_int_equal(sp_dkim_key_record(other_ed, false, &other_ed_rec), SP_OK);

    /* RSA: the same key in PKCS#1 and SPKI form matches. */
    sp_dkim_audit_init(&a);
    assert_int_equal(
        sp_dkim_audit_match(&a, pkcs1.data, pkcs1.len, spki.data, spki.len),
        SP_OK);
    expect(&a, "key_match", SP_DKIM_AUDIT_OK, NULL);

    sp_dkim_audit_init(&a);
    assert_int_equal(
        sp_dkim_audit_match(&a, spki.data, spki.len, other.data, other.len),
        SP_OK);
    expect(&a, "key_mismatch", SP_DKIM_AUDIT_ERROR, "does not match");

    /* Ed25519: the raw octets. */
    sp_dkim_audit_init(&a);
    assert_int_equal(
        sp_dkim_audit_match(&a, "v=DKIM1; k=ed25519; p=" ED1_RAW,
                            strlen("v=DKIM1; k=ed25519; p=" ED1_RAW),
                            ed_rec.data, ed_rec.len),
        SP_OK);
    expect(&a, "key_match", SP_DKIM_AUDIT_OK, NULL);

    sp_dkim_audit_init(&a);
    assert_int_equal(sp_dkim_audit_match(&a, ed_rec.data, ed_rec.len,
                                         other_ed_rec.data, other_ed_rec.len),
                     SP_OK);
    expect(&a, "key_mismatch", SP_DKIM_AUDIT_ERROR, NULL);

    /* Across types: an Ed25519 record is not our RSA key. */
    sp_dkim_audit_init(&a);
    assert_int_equal(
        sp_dkim_audit_match(&a, ed_rec.data, ed_rec.len, spki.data, spki.len),
        SP_OK);
    expect(&a, "key_mismatch", SP_DKIM_AUDIT_ERROR, NULL);

    /* Nothing to compare: revoked, SPKI Ed25519, our record unreadable. */
    sp_dkim_audit_init(&a);
    assert_int_equal(sp_dkim_audit_match(&a, "p=", 2, spki.data, spki.len),
                     SP_OK);
    expect(&a, "not_compared", SP_DKIM_AUDIT_INFO, NULL);
    sp_dkim_audit_init(&a);
    assert_int_equal(sp_dkim_audit_match(&a, "k=ed25519; p=" ED1_SPKI,
                                         strlen("k=ed25519; p=" ED1_SPKI),
                                         ed_rec.data, ed_rec.len),
                     SP_OK);
    expect(&a, "not_compared", SP_DKIM_AUDIT_INFO, NULL);
    sp_dkim_audit_init(&a);
    assert_int_equal(sp_dkim_audit_match(&a, spki.data, spki.len, "p=AAAA", 6),
                     SP_OK);
    expect(&a, "our_record", SP_DKIM_AUDIT_WARNING, NULL);

    sp_buf_free(&spki);
    sp_buf_free(&pkcs1);
    sp_buf_free(&other);
    sp_buf_free(&ed_rec);
    sp_buf_free(&other_ed_rec);
    sp_dkim_key_free(other_rsa);
    sp_dkim_key_free(ed);
    sp_dkim_key_free(other_ed);
}

static void
domainkeys_policy_is_a_deprecated_protocol(void **state)
{
    const char *policy = "t=y; o=~; r=postmaster@example.com";
    sp_dkim_audit a;

    (void)state;
    sp_dkim_audit_init(&a);
    sp_dkim_audit_domainkeys(&a, policy, strlen(policy));
    expect(&a, "domainkeys", SP_DKIM_AUDIT_WARNING, "deprecated protocol");
    expect(&a, "domainkeys", SP_DKIM_AUDIT_WARNING, "RFC 4870");
    expect(&a, "domainkeys_policy", SP_DKIM_AUDIT_INFO, "o=~");
    expect(&a, "domainkeys_policy", SP_DKIM_AUDIT_INFO,
           "r=postmaster@example.com");

    sp_dkim_audit_init(&a);
    sp_dkim_audit_domainkeys(&a, "v=spf1 -all", 11);
    expect(&a, "domainkeys_other", SP_DKIM_AUDIT_INFO, "v=spf1");
    assert_null(finding(&a, "domainkeys"));
    assert_int_equal(sp_dkim_audit_verdict(&a), SP_DKIM_AUDIT_OK);
}

static void
findings_past_the_limit_are_counted(void **state)
{
    sp_dkim_audit a;

    (void)state;
    sp_dkim_audit_init(&a);
    for (int i = 0; i < SP_DKIM_AUDIT_MAX_FINDINGS + 4; i++)
        sp_dkim_audit_add(&a, SP_DKIM_AUDIT_INFO, "note", "note %d", i);
    assert_int_equal(a.count, SP_DKIM_AUDIT_MAX_FINDINGS);
    assert_int_equal(a.dropped, 4);
    assert_string_equal(a.findings[3].text, "note 3");
    assert_int_equal(sp_dkim_audit_verdict(&a), SP_DKIM_AUDIT_OK);
    assert_string_equal(sp_dkim_audit_severity_name(SP_DKIM_AUDIT_WARNING),
                        "warning");
}

static void
allocation_failures_are_reported(void **state)
{
    const char *records[] = {"v=DKIM1; k=ed25519; p=" ED1_SPKI,
                             "v=DKIM1; p=" RSA512};
    sp_dkim_audit a;
    int rc;

    (void)state;
    for (size_t r = 0; r < 2; r++) {
        long n = 0;

        do {
            sp_dkim_audit_init(&a);
            sp_alloc_fail_after(n++);
            rc = sp_dkim_audit_record(&a, records[r], strlen(records[r]));
            sp_alloc_fail_after(-1);
            assert_true(rc == SP_OK || rc == SP_ENOMEM);
        } while (rc != SP_OK && n < 100);
        assert_int_equal(rc, SP_OK);
        assert_int_equal(sp_dkim_audit_verdict(&a), SP_DKIM_AUDIT_ERROR);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rsa_2048_and_ed25519_keys_are_good),
        cmocka_unit_test(short_rsa_keys_are_errors_naming_rfc8301),
        cmocka_unit_test(rsa_1024_is_a_warning),
        cmocka_unit_test(testing_and_sha1_only_are_reported_together),
        cmocka_unit_test(record_faults_name_their_tag),
        cmocka_unit_test(revoked_key_is_a_warning),
        cmocka_unit_test(ed25519_spki_form_is_its_own_finding_with_the_fix),
        cmocka_unit_test(published_keys_are_compared_with_ours),
        cmocka_unit_test(domainkeys_policy_is_a_deprecated_protocol),
        cmocka_unit_test(findings_past_the_limit_are_counted),
        cmocka_unit_test(allocation_failures_are_reported),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
