/*
 * test_dns_mx.c: mail exchangers from MX rdata: preference order, the
 * implicit MX of RFC 5321 5.1, the null MX of RFC 7505, and malformed
 * records skipped.
 */
#include "testlib.h"

#include "dns/dns.h"

#include <string.h>

/* MX rdata for preference and a dotted name ("" for the root). */
static size_t
rdata_make(unsigned char *out, unsigned preference, const char *name)
{
    size_t at = 2;

    out[0] = (unsigned char)(preference >> 8);
    out[1] = (unsigned char)preference;
    while (*name != '\0') {
        const char *dot = strchr(name, '.');
        size_t label = dot ? (size_t)(dot - name) : strlen(name);

        out[at++] = (unsigned char)label;
        memcpy(out + at, name, label);
        at += label;
        name += label + (dot != NULL);
    }
    out[at++] = 0;
    return at;
}

struct records {
    unsigned char data[8][300];
    const unsigned char *rdata[8];
    size_t len[8];
    size_t count;
};

static void
add(struct records *r, unsigned preference, const char *name)
{
    r->len[r->count] = rdata_make(r->data[r->count], preference, name);
    r->rdata[r->count] = r->data[r->count];
    r->count++;
}

static void
exchangers_in_order_of_preference(void **state)
{
    struct records r = {0};
    sp_dns_mx_answer answer;

    (void)state;
    add(&r, 20, "backup.example.org");
    add(&r, 10, "MX1.Example.org");
    add(&r, 20, "backup2.example.org");
    add(&r, 5, "first.example.org");
    sp_dns_mx_parse("example.org", r.rdata, r.len, r.count, &answer);
    assert_int_equal(answer.status, SP_DNS_OK);
    assert_false(answer.null_mx || answer.implicit);
    assert_int_equal(answer.count, 4);
    assert_string_equal(answer.hosts[0].host, "first.example.org");
    assert_string_equal(answer.hosts[1].host, "mx1.example.org");
    assert_int_equal(answer.hosts[1].preference, 10);
    assert_string_equal(answer.hosts[2].host, "backup.example.org");
    assert_string_equal(answer.hosts[3].host, "backup2.example.org");
}

static void
no_mx_means_the_domain_itself(void **state)
{
    sp_dns_mx_answer answer;

    (void)state;
    sp_dns_mx_parse("Mail.Example.COM", NULL, NULL, 0, &answer);
    assert_int_equal(answer.status, SP_DNS_OK);
    assert_true(answer.implicit);
    assert_int_equal(answer.count, 1);
    assert_string_equal(answer.hosts[0].host, "mail.example.com");
}

static void
null_mx_takes_no_mail(void **state)
{
    struct records r = {0};
    sp_dns_mx_answer answer;

    (void)state;
    add(&r, 0, "");
    sp_dns_mx_parse("nomail.example", r.rdata, r.len, r.count, &answer);
    assert_int_equal(answer.status, SP_DNS_OK);
    assert_true(answer.null_mx);
    assert_false(answer.implicit);
    assert_int_equal(answer.count, 0);

    /* A root exchange beside real ones breaks RFC 7505: it is skipped. */
    add(&r, 10, "mx.nomail.example");
    sp_dns_mx_parse("nomail.example", r.rdata, r.len, r.count, &answer);
    assert_false(answer.null_mx);
    assert_int_equal(answer.count, 1);
    assert_string_equal(answer.hosts[0].host, "mx.nomail.example");
}

static void
malformed_records_are_skipped(void **state)
{
    static const unsigned char short_one[] = {0, 10};
    static const unsigned char no_end[] = {0, 10, 2, 'm', 'x'};
    static const unsigned char overrun[] = {0, 10, 9, 'm', 'x', 0};
    static const unsigned char trailing[] = {0, 10, 2, 'm', 'x', 0, 7};
    struct records r = {0};
    sp_dns_mx_answer answer;
    const unsigned char *bad[] = {short_one, no_end, overrun, trailing};
    size_t bad_len[] = {sizeof(short_one), sizeof(no_end), sizeof(overrun),
                        sizeof(trailing)};

    (void)state;
    sp_dns_mx_parse("example.net", bad, bad_len, 4, &answer);
    assert_int_equal(answer.status, SP_DNS_SERVFAIL);
    assert_int_equal(answer.count, 0);
    assert_false(answer.implicit || answer.null_mx);

    /* With a good record among them, the good one is used. */
    for (size_t i = 0; i < 4; i++) {
        r.rdata[r.count] = bad[i];
        r.len[r.count++] = bad_len[i];
    }
    add(&r, 30, "mx.example.net");
    sp_dns_mx_parse("example.net", r.rdata, r.len, r.count, &answer);
    assert_int_equal(answer.status, SP_DNS_OK);
    assert_int_equal(answer.count, 1);
    assert_string_equal(answer.hosts[0].host, "mx.example.net");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(exchangers_in_order_of_preference),
        cmocka_unit_test(no_mx_means_the_domain_itself),
        cmocka_unit_test(null_mx_takes_no_mail),
        cmocka_unit_test(malformed_records_are_skipped),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
