/*
 * test_dns_table.c: DNS answers from a record table.
 */
#include "testlib.h"

#include <string.h>

static const char table_text[] =
    "# comment\n"
    "\n"
    "Sel._domainkey.Example.COM. TXT \"v=DKIM1; \" \"p=abc\"\n"
    "two.example TXT \"first\"\n"
    "two.example TXT \"second \\\"quoted\\\" \\059\"\n"
    "gone.example NXDOMAIN\n"
    "slow.example TIMEOUT\n"
    "broken.example SERVFAIL\n";

static void
strings_join_and_names_ignore_case(void **state)
{
    sp_dns_table *table = NULL;
    sp_dns_answer answer;

    (void)state;
    assert_int_equal(
        sp_dns_table_parse(table_text, sizeof(table_text) - 1, &table, NULL),
        SP_OK);
    sp_dns_table_txt(table, "sel._domainkey.example.com", &answer);
    assert_int_equal(answer.status, SP_DNS_OK);
    assert_int_equal(answer.count, 1);
    assert_string_equal(answer.records[0].text, "v=DKIM1; p=abc");

    sp_dns_table_txt(table, "TWO.example.", &answer);
    assert_int_equal(answer.count, 2);
    assert_string_equal(answer.records[1].text, "second \"quoted\" ;");
    sp_dns_table_free(table);
}

static void
failures_and_unknown_names(void **state)
{
    sp_dns_table *table = NULL;
    sp_dns_answer answer;

    (void)state;
    assert_int_equal(
        sp_dns_table_parse(table_text, sizeof(table_text) - 1, &table, NULL),
        SP_OK);
    sp_dns_table_txt(table, "gone.example", &answer);
    assert_int_equal(answer.status, SP_DNS_NXDOMAIN);
    sp_dns_table_txt(table, "slow.example", &answer);
    assert_int_equal(answer.status, SP_DNS_TIMEOUT);
    sp_dns_table_txt(table, "broken.example", &answer);
    assert_int_equal(answer.status, SP_DNS_SERVFAIL);
    sp_dns_table_txt(table, "never.example", &answer);
    assert_int_equal(answer.status, SP_DNS_NXDOMAIN);
    assert_int_equal(answer.count, 0);
    sp_dns_table_free(table);
}

static void
malformed_lines_are_named(void **state)
{
    static const char *const bad[] = {
        "name TXT unquoted\n",
        "name TXT \"unterminated\n",
        "name MX \"x\"\n",
        "a TXT \"ok\"\nname\n",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sp_dns_table *table = NULL;
        sp_error err;

        assert_int_equal(
            sp_dns_table_parse(bad[i], strlen(bad[i]), &table, &err),
            SP_ESYNTAX);
        assert_null(table);
        assert_non_null(strstr(err.text, i == 3 ? "line 2" : "line 1"));
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(strings_join_and_names_ignore_case),
        cmocka_unit_test(failures_and_unknown_names),
        cmocka_unit_test(malformed_lines_are_named),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
