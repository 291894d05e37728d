/*
 * test_dmarc_summary.c: summaries of aggregate report records: the own
 * address lists, counts by source and selector, alignment by
 * organizational domain, a selector a receiver could not verify while
 * another passed, the overrides, and the advice on p=quarantine.
 */
#include "dmarc/summary.h"
#include "testlib.h"

#include <string.h>

static void
sources_match_addresses_and_networks(void **state)
{
    const char *items[] = {"192.0.2.0/24", "198.51.100.7", "2001:db8::/33"};
    const char *bad[] = {"192.0.2.0/33", "example.com", "10.0.0.1/x"};
    sp_dmarc_sources *sources;
    sp_error err;

    (void)state;
    assert_int_equal(sp_dmarc_sources_parse(items, 3, &sources, &err), SP_OK);
    assert_true(sp_dmarc_sources_match(sources, "192.0.2.200"));
    assert_false(sp_dmarc_sources_match(sources, "192.0.3.1"));
    assert_true(sp_dmarc_sources_match(sources, "198.51.100.7"));
    assert_false(sp_dmarc_sources_match(sources, "198.51.100.8"));
    assert_true(sp_dmarc_sources_match(sources, "2001:db8:7fff::1"));
    assert_false(sp_dmarc_sources_match(sources, "2001:db8:8000::1"));
    assert_false(sp_dmarc_sources_match(sources, "not an address"));
    sp_dmarc_sources_free(sources);

    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(sp_dmarc_sources_parse(&bad[i], 1, &sources, &err),
                         SP_EINVAL);
        assert_null(sources);
        assert_non_null(strstr(err.text, bad[i]));
    }
}

static bool
own_source(void *arg, const char *ip)
{
    (void)arg;
    return strcmp(ip, "192.0.2.10") == 0;
}

static bool
own_selector(void *arg, const char *domain, const char *selector)
{
    (void)arg;
    return strcmp(domain, "example.co.uk") == 0 &&
           strncmp(selector, "sp", 2) == 0;
}

/* A record of example.co.uk from ip, its DKIM results given as pairs. */
static void
add(sp_dmarc_summary *summary, const char *report_id, const char *ip,
    int64_t count, const char *verdict, const sp_dmarc_dkim *dkim,
    size_t n_dkim, const char *reasons)
{
    sp_dmarc_record_view view = {
        .domain = "Example.CO.UK",
        .org_name = "rx.example",
        .report_id = report_id,
        .begin = 1700000000,
        .end = 1700086399,
        .source_ip = ip,
        .count = count,
        .disposition = "none",
        .dkim = verdict,
        .spf = "fail",
        .header_from = "example.co.uk",
        .reasons_json = reasons,
        .dkim_results = dkim,
        .n_dkim = n_dkim,
    };

    assert_int_equal(sp_dmarc_summary_add(summary, &view), SP_OK);
}

static json_t *
find(json_t *array, const char *key, const char *value)
{
    size_t i;
    json_t *item;

    json_array_foreach(array, i, item) {
        const char *have = json_string_value(json_object_get(item, key));

        if (have != NULL && strcmp(have, value) == 0)
            return item;
    }
    fail_msg("no %s %s", key, value);
    return NULL;
}

static json_int_t
number(json_t *object, const char *key)
{
    return json_integer_value(json_object_get(object, key));
}

static void
summary_counts_sources_selectors_and_advice(void **state)
{
    sp_dmarc_dkim both[] = {
        {"example.co.uk", "sp2027q1e", "permerror", "no ed25519"},
        {"example.co.uk", "sp2027q1r", "pass", NULL},
    };
    sp_dmarc_dkim other_org[] = {
        {"mail.example.co.uk", "sp2027q1r", "pass", NULL},
        {"co.uk", "x", "pass", NULL}};
    sp_dmarc_dkim failing[] = {{"example.co.uk", "sp2027q1r", "fail", NULL}};
    sp_dmarc_ownership own = {own_source, own_selector, NULL};
    sp_dmarc_summary *summary = sp_dmarc_summary_new(&own);
    json_t *doc, *domain, *source, *selector, *advice;

    (void)state;
    add(summary, "r1", "192.0.2.10", 5, "pass", both, 2, "[]");
    add(summary, "r1", "203.0.113.9", 2, "fail", NULL, 0,
        "[{\"type\": \"forwarded\", \"comment\": \"list\"}]");
    add(summary, "r2", "192.0.2.10", 3, "pass", other_org, 2, NULL);
    doc = sp_dmarc_summary_json(summary);

    domain = json_array_get(json_object_get(doc, "domains"), 0);
    assert_string_equal(json_string_value(json_object_get(domain, "domain")),
                        "example.co.uk");
    assert_int_equal(number(domain, "reports"), 2);
    assert_int_equal(number(domain, "messages"), 10);
    assert_int_equal(number(domain, "dmarc_pass"), 8);

    source = find(json_object_get(domain, "sources"), "ip", "192.0.2.10");
    assert_true(json_is_true(json_object_get(source, "own")));
    assert_int_equal(number(source, "messages"), 8);
    source = find(json_object_get(domain, "sources"), "ip", "203.0.113.9");
    assert_false(json_is_true(json_object_get(source, "own")));

    /* Ed25519 unverifiable beside a passing RSA signature. */
    selector =
        find(json_object_get(domain, "selectors"), "selector", "sp2027q1e");
    assert_int_equal(number(selector, "messages"), 5);
    assert_int_equal(number(selector, "pass"), 0);
    assert_int_equal(number(selector, "unsupported"), 5);
    assert_true(json_is_true(json_object_get(selector, "own")));

    /* A subdomain aligns; a public suffix does not. */
    selector = find(json_object_get(domain, "selectors"), "domain",
                    "mail.example.co.uk");
    assert_int_equal(number(selector, "aligned_pass"), 3);
    selector = find(json_object_get(domain, "selectors"), "domain", "co.uk");
    assert_int_equal(number(selector, "pass"), 3);
    assert_int_equal(number(selector, "aligned_pass"), 0);

    assert_int_equal(
        number(find(json_object_get(domain, "overrides"), "type", "forwarded"),
               "messages"),
        2);
    advice = json_object_get(domain, "advice");
    assert_true(json_is_true(json_object_get(advice, "quarantine_ready")));
    assert_int_equal(number(advice, "foreign_dmarc_fail"), 2);
    json_decref(doc);

    /* One failing message from an own source: not ready, and it is named. */
    add(summary, "r3", "192.0.2.10", 1, "fail", failing, 1, NULL);
    doc = sp_dmarc_summary_json(summary);
    domain = json_array_get(json_object_get(doc, "domains"), 0);
    advice = json_object_get(domain, "advice");
    assert_false(json_is_true(json_object_get(advice, "quarantine_ready")));
    source = find(json_object_get(advice, "own_failing"), "ip", "192.0.2.10");
    assert_int_equal(number(source, "dkim_aligned_fail"), 1);
    json_decref(doc);
    sp_dmarc_summary_free(summary);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sources_match_addresses_and_networks),
        cmocka_unit_test(summary_counts_sources_selectors_and_advice),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
