/*
 * test_mail.c: line-ending normalization and the header index.
 */
#include "mail/mail.h"
#include "testlib.h"

#include <string.h>

/* Normalize text fed in chunks of chunk bytes. */
static void
normalize(const char *text, size_t len, size_t chunk, sp_buf *out)
{
    sp_mail_eol eol;

    sp_mail_eol_init(&eol);
    sp_buf_reset(out);
    for (size_t pos = 0; pos < len; pos += chunk) {
        size_t take = len - pos < chunk ? len - pos : chunk;

        assert_int_equal(sp_mail_eol_feed(&eol, text + pos, take, out), SP_OK);
    }
    assert_int_equal(sp_mail_eol_finish(&eol, out), SP_OK);
}

static void
eol_turns_bare_cr_and_lf_into_crlf(void **state)
{
    const char in[] = "a\nb\r\nc\rd\r\r\ne\r";
    const char want[] = "a\r\nb\r\nc\r\nd\r\n\r\ne\r\n";
    sp_buf out = SP_BUF_INIT;

    (void)state;
    for (size_t chunk = 1; chunk <= sizeof(in); chunk++) {
        normalize(in, sizeof(in) - 1, chunk, &out);
        assert_int_equal(out.len, sizeof(want) - 1);
        assert_memory_equal(out.data, want, out.len);
    }
    sp_buf_free(&out);
}

static void
eol_matches_the_normalized_case_file(void **state)
{
    sp_buf in = SP_BUF_INIT, want = SP_BUF_INIT, out = SP_BUF_INIT;

    (void)state;
    testlib_read("cases/BR-012/input-mixed-eol.eml", &in);
    testlib_read("cases/BR-012/expected-normalized.eml", &want);
    normalize(in.data, in.len, 7, &out);
    assert_int_equal(out.len, want.len);
    assert_memory_equal(out.data, want.data, want.len);
    sp_buf_free(&in);
    sp_buf_free(&want);
    sp_buf_free(&out);
}

static void
header_end_is_found_across_chunks(void **state)
{
    const char msg[] = "A: 1\r\nB: 2\r\n\r\nbody";
    size_t scanned = 0;

    (void)state;
    /* Grow the visible length one byte at a time, as chunks arrive. */
    for (size_t len = 1; len <= sizeof(msg) - 1; len++) {
        size_t end = sp_mail_header_end(msg, len, &scanned);

        if (len < 14)
            assert_int_equal(end, 0);
        else
            assert_int_equal(end, 14);
        if (end)
            break;
    }
    scanned = 0;
    assert_int_equal(sp_mail_header_end("\r\nbody", 6, &scanned), 2);
}

static void
header_index_keeps_folds_and_finds_names(void **state)
{
    const char block[] = "Subject: a\r\n b\r\nFROM :x\r\nno colon here\r\n"
                         "from: y\r\n\r\n";
    sp_mail_header header = SP_MAIL_HEADER_INIT;

    (void)state;
    assert_int_equal(sp_mail_header_index(&header, block, sizeof(block) - 1),
                     SP_OK);
    assert_int_equal(header.count, 4);
    assert_int_equal(header.fields[0].length, strlen("Subject: a\r\n b\r\n"));
    assert_int_equal(header.fields[1].name_length, 4);
    assert_int_equal(header.fields[2].name_length, 0);
    assert_int_equal(sp_mail_header_count(&header, block, "from"), 2);
    assert_int_equal(sp_mail_header_count(&header, block, "SUBJECT"), 1);
    assert_true(sp_mail_field_is(&header.fields[3], block, "From", 4));
    sp_mail_header_free(&header);
}

static void
header_index_treats_bare_lf_as_content(void **state)
{
    const char block[] = "To: a\nCc: b\r\n\r\n";
    sp_mail_header header = SP_MAIL_HEADER_INIT;

    (void)state;
    assert_int_equal(sp_mail_header_index(&header, block, sizeof(block) - 1),
                     SP_OK);
    assert_int_equal(header.count, 1);
    assert_int_equal(header.fields[0].length, sizeof(block) - 3);
    sp_mail_header_free(&header);
}

static void
header_index_reports_allocation_failure(void **state)
{
    sp_mail_header header = SP_MAIL_HEADER_INIT;

    (void)state;
    sp_alloc_fail_after(0);
    assert_int_equal(sp_mail_header_index(&header, "A: b\r\n\r\n", 8),
                     SP_ENOMEM);
    sp_alloc_fail_after(-1);
    assert_int_equal(header.count, 0);
    sp_mail_header_free(&header);
}

static void
domain_names_are_checked(void **state)
{
    static const char *const good[] = {"example.com", "a-b.example.co.uk",
                                       "xn--bcher-kva.example"};
    static const char *const bad[] = {"localhost",
                                      "-a.example.com",
                                      "a-.example.com",
                                      "a..example.com",
                                      "_dmarc.example.com",
                                      "example.com.",
                                      "",
                                      "exa mple.com"};
    char long_label[80];

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(sp_mail_domain_valid(good[i], strlen(good[i]),
                                         SP_MAIL_DOMAIN_DOTTED));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (sp_mail_domain_valid(bad[i], strlen(bad[i]), SP_MAIL_DOMAIN_DOTTED))
            fail_msg("accepted %s", bad[i]);
    memset(long_label, 'a', 64);
    memcpy(long_label + 64, ".com", 5);
    assert_false(sp_mail_domain_valid(long_label, strlen(long_label), 0));

    /* Selectors and _dmarc names need '_'; single labels may be allowed. */
    assert_true(sp_mail_domain_valid("_dmarc.example.com", 18,
                                     SP_MAIL_DOMAIN_UNDERSCORE));
    assert_true(sp_mail_domain_valid("sp2027q1r", 9, 0));
    assert_false(sp_mail_domain_valid("sp2027q1r", 9, SP_MAIL_DOMAIN_DOTTED));
}

/* The author domain of From values as mail clients write them. */
static void
from_domain_is_found(void **state)
{
    static const struct {
        const char *value, *domain; /* NULL: refused */
    } cases[] = {
        {" a@example.com\r\n", "example.com"},
        {" Bank <Statements@Example.COM>\r\n", "example.com"},
        {" \"Doe, John\" <j@mail.example.org>\r\n", "mail.example.org"},
        {" \"x@evil.test\" <real@good.example>\r\n", "good.example"},
        {" (x@evil.test) real@good.example (comment)\r\n", "good.example"},
        {" \"odd\\\"@\"@quoted.example\r\n", "quoted.example"},
        {" first@one.example, second@two.example\r\n", NULL},
        {" \"Doe, J\" <a@x.example>, b@y.example\r\n", NULL},
        {" Name\r\n\t<folded@fold.example>\r\n", "fold.example"},
        {" <@route.example:a@final.example>\r\n", "final.example"},
        {" a@ spaced.example \r\n", "spaced.example"},
        {" no address here\r\n", NULL},
        {" a@[192.0.2.1]\r\n", NULL},
        {" \"unclosed <a@example.com>\r\n", NULL},
        {" (unclosed a@example.com\r\n", NULL},
        {" Name <a@example.com\r\n", NULL},
        {" a@bad..example\r\n", NULL},
        {"", NULL},
    };
    char domain[256];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = sp_mail_from_domain(cases[i].value, strlen(cases[i].value),
                                     domain, sizeof(domain));

        if (cases[i].domain == NULL) {
            if (rc != SP_EINVAL)
                fail_msg("%s: took %s", cases[i].value, domain);
        } else if (rc != SP_OK || strcmp(domain, cases[i].domain) != 0) {
            fail_msg("%s: got %s (%d)", cases[i].value, domain, rc);
        }
    }

    /* Too small a buffer is refused, not cut. */
    assert_int_equal(sp_mail_from_domain(" a@example.com", 14, domain, 5),
                     SP_EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(eol_turns_bare_cr_and_lf_into_crlf),
        cmocka_unit_test(eol_matches_the_normalized_case_file),
        cmocka_unit_test(header_end_is_found_across_chunks),
        cmocka_unit_test(header_index_keeps_folds_and_finds_names),
        cmocka_unit_test(header_index_treats_bare_lf_as_content),
        cmocka_unit_test(header_index_reports_allocation_failure),
        cmocka_unit_test(domain_names_are_checked),
        cmocka_unit_test(from_domain_is_found),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
