/*
 * test_dmarc_record.c: DMARC policy records (RFC 7489 6.3, 6.4): parsing
 * with a sentence per fault, report address lists, and the records
 * sp_dmarc_record_make writes, which must parse back.
 */
#include "dmarc/dmarc.h"
#include "testlib.h"

#include <string.h>

static int
parse(const char *text, sp_dmarc_record *rec, sp_error *err)
{
    return sp_dmarc_record_parse(text, strlen(text), rec, err);
}

/* Assert that text is refused with words in the reason. */
static void
refused(const char *text, const char *words)
{
    sp_dmarc_record rec;
    sp_error err;

    if (parse(text, &rec, &err) != SP_ESYNTAX)
        fail_msg("accepted: %s", text);
    if (strstr(err.text, words) == NULL)
        fail_msg("%s: \"%s\" lacks \"%s\"", text, err.text, words);
}

static void
minimal_record_takes_the_defaults(void **state)
{
    sp_dmarc_record rec;

    (void)state;
    assert_int_equal(parse("v=DMARC1; p=none", &rec, NULL), SP_OK);
    assert_true(rec.has_policy);
    assert_int_equal(rec.policy, SP_DMARC_NONE);
    assert_false(rec.has_subdomain_policy);
    assert_int_equal(rec.pct, 100);
    assert_int_equal(rec.interval, 86400);
    assert_false(rec.strict_dkim);
    assert_false(rec.strict_spf);
    assert_null(rec.rua);
    assert_null(rec.ruf);
    assert_int_equal(rec.tags, 2);
}

static void
every_tag_is_read(void **state)
{
    const char *text =
        "v=DMARC1;p=reject; sp=quarantine; np=reject; adkim=s; aspf=r; "
        "pct=25; ri=3600; fo=0:1:d:s; rf=afrf; psd=n; t=n; "
        "rua=mailto:agg@example.com, mailto:dmarc@reports.example.net!10m; "
        "ruf=mailto:forensic@example.com;";
    sp_dmarc_record rec;
    sp_error err;

    (void)state;
    if (parse(text, &rec, &err) != SP_OK)
        fail_msg("%s", err.text);
    assert_int_equal(rec.policy, SP_DMARC_REJECT);
    assert_true(rec.has_subdomain_policy);
    assert_int_equal(rec.subdomain_policy, SP_DMARC_QUARANTINE);
    assert_true(rec.strict_dkim);
    assert_false(rec.strict_spf);
    assert_int_equal(rec.pct, 25);
    assert_int_equal(rec.interval, 3600);
    assert_int_equal(rec.rua_len, strlen("mailto:agg@example.com, "
                                         "mailto:dmarc@reports.example.net!"
                                         "10m"));
    assert_memory_equal(rec.ruf, "mailto:forensic@example.com", 27);
    assert_int_equal(rec.tags, 14);
}

static void
names_and_policy_words_ignore_case_but_the_version_does_not(void **state)
{
    sp_dmarc_record rec;

    (void)state;
    assert_int_equal(parse("v=DMARC1; P=Reject; ADKIM=S", &rec, NULL), SP_OK);
    assert_int_equal(rec.policy, SP_DMARC_REJECT);
    assert_true(rec.strict_dkim);
    refused("v=dmarc1; p=none", "v=dmarc1 is not DMARC1");
    refused("v=DMARC2; p=none", "v=DMARC2 is not DMARC1");
}

static void
version_first_and_policy_required(void **state)
{
    (void)state;
    refused("p=none; v=DMARC1", "must start with v=DMARC1");
    refused("v=DMARC1; rua=mailto:a@example.com", "no p= tag");
    refused("", "empty");
    refused("v=DMARC1; p=none; v=DMARC1", "appears twice");
    refused("v=DMARC1; p=none; p=reject", "\"p\" appears twice");
}

static void
bad_values_name_their_tag(void **state)
{
    (void)state;
    refused("v=DMARC1; p=block", "p=block is not none, quarantine or reject");
    refused("v=DMARC1; p=none; sp=maybe", "sp=maybe");
    refused("v=DMARC1; p=reject; pct=101", "pct=101");
    refused("v=DMARC1; p=reject; pct=ten", "pct=ten");
    refused("v=DMARC1; p=none; ri=99999999999", "ri=");
    refused("v=DMARC1; p=none; adkim=x", "adkim=x");
    refused("v=DMARC1; p=none; fo=2", "fo=2");
    refused("v=DMARC1; p=none; rf=iodef", "rf=iodef");
    refused("v=DMARC1; p", "not a tag=value pair");
    refused("v=DMARC1 p=none", "not DMARC1");
}

static void
unknown_tag_is_refused_but_the_rest_is_read(void **state)
{
    sp_dmarc_record rec;
    sp_error err;

    (void)state;
    assert_int_equal(parse("v=DMARC1; p=quarantine; rue=mailto:a@example.com; "
                           "rua=mailto:b@example.com",
                           &rec, &err),
                     SP_ESYNTAX);
    assert_non_null(strstr(err.text, "unknown tag \"rue\""));
    assert_true(rec.has_policy);
    assert_int_equal(rec.policy, SP_DMARC_QUARANTINE);
    assert_non_null(rec.rua);
    assert_memory_equal(rec.rua, "mailto:b@example.com", rec.rua_len);
}

static void
report_addresses_are_mailto_lists(void **state)
{
    static const char *const good[] = {
        "mailto:a@example.com",
        "MAILTO:a.b+c@sub.example.com",
        "mailto:a@example.com!10m, mailto:b@example.org!500",
        "mailto:dmarc%2Breports@example.com",
    };
    static const char *const bad[][2] = {
        {"https://example.com/dmarc", "not a mailto: URI"},
        {"mailto:nobody", "local@domain"},
        {"mailto:@example.com", "local@domain"},
        {"mailto:a@localhost", "local@domain"},
        {"mailto:a..b@example.com", "local@domain"},
        {"mailto:a@example.com!10x", "size limit"},
        {"mailto:a@example.com,", "empty URI"},
        {"mailto:a@example.com?subject=x", "local@domain"},
        {"", "empty"},
    };
    sp_error err;

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (sp_dmarc_uri_list_check(good[i], strlen(good[i]), &err) != SP_OK)
            fail_msg("%s: %s", good[i], err.text);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (sp_dmarc_uri_list_check(bad[i][0], strlen(bad[i][0]), &err) !=
            SP_ESYNTAX)
            fail_msg("accepted: %s", bad[i][0]);
        if (strstr(err.text, bad[i][1]) == NULL)
            fail_msg("%s: \"%s\" lacks \"%s\"", bad[i][0], err.text, bad[i][1]);
    }
}

static void
uri_list_walk_and_domains(void **state)
{
    const char *list = "mailto:a@example.com ,  mailto:b@r.example.net!5m";
    const char *uri, *domain;
    size_t pos = 0, len, domain_len;

    (void)state;
    assert_true(sp_dmarc_uri_next(list, strlen(list), &pos, &uri, &len));
    assert_int_equal(len, strlen("mailto:a@example.com"));
    sp_dmarc_uri_domain(uri, len, &domain, &domain_len);
    assert_memory_equal(domain, "example.com", domain_len);
    assert_true(sp_dmarc_uri_next(list, strlen(list), &pos, &uri, &len));
    assert_memory_equal(uri, "mailto:b@r.example.net!5m", len);
    sp_dmarc_uri_domain(uri, len, &domain, &domain_len);
    assert_int_equal(domain_len, strlen("r.example.net"));
    assert_memory_equal(domain, "r.example.net", domain_len);
    assert_false(sp_dmarc_uri_next(list, strlen(list), &pos, &uri, &len));
}

static void
made_records_parse_back(void **state)
{
    sp_buf out = SP_BUF_INIT;
    sp_dmarc_record rec;
    sp_error err;

    (void)state;
    assert_int_equal(sp_dmarc_record_make(SP_DMARC_NONE, 100,
                                          "mailto:d@example.com", &out, &err),
                     SP_OK);
    assert_string_equal(out.data, "v=DMARC1; p=none; rua=mailto:d@example.com");
    assert_int_equal(parse(out.data, &rec, &err), SP_OK);
    assert_int_equal(rec.policy, SP_DMARC_NONE);

    sp_buf_reset(&out);
    assert_int_equal(
        sp_dmarc_record_make(SP_DMARC_QUARANTINE, 10,
                             " mailto:a@example.com , mailto:b@example.org",
                             &out, &err),
        SP_OK);
    assert_string_equal(out.data, "v=DMARC1; p=quarantine; pct=10; "
                                  "rua=mailto:a@example.com,"
                                  "mailto:b@example.org");
    if (parse(out.data, &rec, &err) != SP_OK)
        fail_msg("%s", err.text);
    assert_int_equal(rec.policy, SP_DMARC_QUARANTINE);
    assert_int_equal(rec.pct, 10);
    sp_buf_free(&out);
}

static void
make_refuses_bad_input_and_leaves_out_alone(void **state)
{
    sp_buf out = SP_BUF_INIT;
    sp_error err;

    (void)state;
    assert_int_equal(sp_buf_append_str(&out, "kept"), SP_OK);
    assert_int_equal(sp_dmarc_record_make(SP_DMARC_NONE, 100,
                                          "dmarc@example.com", &out, &err),
                     SP_EINVAL);
    assert_non_null(strstr(err.text, "mailto:"));
    assert_int_equal(sp_dmarc_record_make(SP_DMARC_NONE, 50,
                                          "mailto:d@example.com", &out, &err),
                     SP_EINVAL);
    assert_non_null(strstr(err.text, "quarantine or reject"));
    assert_int_equal(sp_dmarc_record_make(SP_DMARC_REJECT, 101,
                                          "mailto:d@example.com", &out, &err),
                     SP_EINVAL);
    assert_string_equal(out.data, "kept");
    sp_buf_free(&out);
}

static void
policy_names_round_trip(void **state)
{
    sp_dmarc_policy policy;

    (void)state;
    for (int p = SP_DMARC_NONE; p <= SP_DMARC_REJECT; p++) {
        const char *name = sp_dmarc_policy_name((sp_dmarc_policy)p);

        assert_int_equal(sp_dmarc_policy_parse(name, strlen(name), &policy),
                         SP_OK);
        assert_int_equal(policy, p);
    }
    assert_int_equal(sp_dmarc_policy_parse("nones", 5, &policy), SP_ESYNTAX);
    assert_int_equal(sp_dmarc_policy_parse("", 0, &policy), SP_ESYNTAX);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(minimal_record_takes_the_defaults),
        cmocka_unit_test(every_tag_is_read),
        cmocka_unit_test(
            names_and_policy_words_ignore_case_but_the_version_does_not),
        cmocka_unit_test(version_first_and_policy_required),
        cmocka_unit_test(bad_values_name_their_tag),
        cmocka_unit_test(unknown_tag_is_refused_but_the_rest_is_read),
        cmocka_unit_test(report_addresses_are_mailto_lists),
        cmocka_unit_test(uri_list_walk_and_domains),
        cmocka_unit_test(made_records_parse_back),
        cmocka_unit_test(make_refuses_bad_input_and_leaves_out_alone),
        cmocka_unit_test(policy_names_round_trip),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
