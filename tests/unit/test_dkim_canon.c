/*
 * test_dkim_canon.c: simple and relaxed canonicalization (RFC 6376 3.4),
 * checked against the RFC's own example, the empty-body hashes of erratum
 * 1376, and against themselves cut at every possible chunk boundary.
 */
#include "dkim/dkim_int.h"
#include "testlib.h"

#include <openssl/evp.h>
#include <string.h>

/* Canonicalize body split into two chunks at split; return SHA-256. */
static void
canon_body(sp_dkim_canon mode, const char *body, size_t len, size_t split,
           unsigned char digest[32], uint64_t *produced)
{
    dkim__canon_body canon;
    dkim__body_hash hash = {.limit = UINT64_MAX};
    unsigned digest_len = 0;

    hash.md = EVP_MD_CTX_new();
    assert_non_null(hash.md);
    assert_int_equal(EVP_DigestInit_ex(hash.md, EVP_sha256(), NULL), 1);
    dkim__canon_body_init(&canon, mode, false);
    canon.hashes[0] = &hash;
    canon.hash_count = 1;
    assert_int_equal(dkim__canon_body_feed(&canon, body, split), SP_OK);
    assert_int_equal(dkim__canon_body_feed(&canon, body + split, len - split),
                     SP_OK);
    assert_int_equal(dkim__canon_body_finish(&canon), SP_OK);
    assert_int_equal(EVP_DigestFinal_ex(hash.md, digest, &digest_len), 1);
    if (produced)
        *produced = canon.produced;
    EVP_MD_CTX_free(hash.md);
}

static void
sha256(const char *text, size_t len, unsigned char digest[32])
{
    unsigned digest_len = 0;

    assert_int_equal(
        EVP_Digest(text, len, digest, &digest_len, EVP_sha256(), NULL), 1);
}

/* Check body canonicalizes to want, whatever the split point. */
static void
expect_body(sp_dkim_canon mode, const char *body, const char *want)
{
    unsigned char got[32], expected[32];
    size_t len = strlen(body);
    uint64_t produced = 0;

    sha256(want, strlen(want), expected);
    for (size_t split = 0; split <= len; split++) {
        canon_body(mode, body, len, split, got, &produced);
        if (memcmp(got, expected, 32) != 0)
            fail_msg("%s body \"%s\" split at %zu differs from \"%s\"",
                     sp_dkim_canon_name(mode), body, split, want);
        assert_int_equal(produced, strlen(want));
    }
}

static void
rfc6376_example_body(void **state)
{
    const char *body = " C \r\nD \t E\r\n\r\n\r\n";

    (void)state;
    expect_body(SP_DKIM_RELAXED, body, " C\r\nD E\r\n");
    expect_body(SP_DKIM_SIMPLE, body, " C \r\nD \t E\r\n");
}

static void
empty_bodies_follow_erratum_1376(void **state)
{
    (void)state;
    expect_body(SP_DKIM_SIMPLE, "", "\r\n");
    expect_body(SP_DKIM_RELAXED, "", "");
    expect_body(SP_DKIM_SIMPLE, "\r\n\r\n", "\r\n");
    expect_body(SP_DKIM_RELAXED, " \r\n\t\r\n\r\n", "");
}

static void
last_line_without_crlf_gets_one(void **state)
{
    (void)state;
    expect_body(SP_DKIM_SIMPLE, "abc", "abc\r\n");
    expect_body(SP_DKIM_RELAXED, "abc \t", "abc\r\n");
    expect_body(SP_DKIM_RELAXED, "a\r\n\r\nb", "a\r\n\r\nb\r\n");
}

static void
bare_cr_and_lf_are_content(void **state)
{
    (void)state;
    expect_body(SP_DKIM_SIMPLE, "a\nb\r\n", "a\nb\r\n");
    expect_body(SP_DKIM_RELAXED, "a \rb\r\n", "a \rb\r\n");
    expect_body(SP_DKIM_SIMPLE, "a\r", "a\r\r\n");
    expect_body(SP_DKIM_RELAXED, "x\r\n\r\n\r\r\n", "x\r\n\r\n\r\r\n");
}

static void
relaxed_squeezes_every_whitespace_run(void **state)
{
    (void)state;
    expect_body(SP_DKIM_RELAXED, "a  b\t\tc \t d\r\n", "a b c d\r\n");
    expect_body(SP_DKIM_RELAXED, "  lead\r\n", " lead\r\n");
    expect_body(SP_DKIM_RELAXED, "\xc3\xa9 \xc3\xa9\r\n",
                "\xc3\xa9 \xc3\xa9\r\n");
}

static void
strict_mode_reports_the_first_bare_line_ending(void **state)
{
    dkim__canon_body canon;

    (void)state;
    dkim__canon_body_init(&canon, SP_DKIM_SIMPLE, true);
    assert_int_equal(dkim__canon_body_feed(&canon, "ok\r\nbad\nmore\r", 13),
                     SP_OK);
    assert_int_equal(dkim__canon_body_feed(&canon, "x", 1), SP_OK);
    assert_true(canon.failed);
    assert_int_equal(canon.failed_at, 7);
}

static void
length_limit_cuts_each_digest(void **state)
{
    dkim__canon_body canon;
    dkim__body_hash all = {.limit = UINT64_MAX}, first = {.limit = 3};
    unsigned char got[32], want[32];
    unsigned len = 0;

    (void)state;
    all.md = EVP_MD_CTX_new();
    first.md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(all.md, EVP_sha256(), NULL);
    EVP_DigestInit_ex(first.md, EVP_sha256(), NULL);
    dkim__canon_body_init(&canon, SP_DKIM_SIMPLE, false);
    canon.hashes[0] = &all;
    canon.hashes[1] = &first;
    canon.hash_count = 2;
    dkim__canon_body_feed(&canon, "abcdef\r\n", 8);
    dkim__canon_body_finish(&canon);
    EVP_DigestFinal_ex(first.md, got, &len);
    sha256("abc", 3, want);
    assert_memory_equal(got, want, 32);
    assert_int_equal(all.hashed, 8);
    assert_int_equal(first.hashed, 3);
    EVP_MD_CTX_free(all.md);
    EVP_MD_CTX_free(first.md);
}

static void
expect_header(sp_dkim_canon mode, const char *field, const char *want)
{
    sp_buf out = SP_BUF_INIT;

    assert_int_equal(dkim__canon_header(mode, field, strlen(field), &out),
                     SP_OK);
    assert_string_equal(out.data, want);
    sp_buf_free(&out);
}

static void
rfc6376_example_header(void **state)
{
    (void)state;
    expect_header(SP_DKIM_RELAXED, "A: X\r\n", "a:X\r\n");
    expect_header(SP_DKIM_RELAXED, "B : Y\t\r\n\tZ  \r\n", "b:Y Z\r\n");
    expect_header(SP_DKIM_SIMPLE, "B : Y\t\r\n\tZ  \r\n",
                  "B : Y\t\r\n\tZ  \r\n");
}

static void
relaxed_header_folded_right_after_colon(void **state)
{
    (void)state;
    expect_header(SP_DKIM_RELAXED,
                  "List-Unsubscribe:\r\n <mailto:unsubscribe@example.com>\r\n",
                  "list-unsubscribe:<mailto:unsubscribe@example.com>\r\n");
    expect_header(SP_DKIM_RELAXED, "Subject:\r\n\r\n", "subject:\r\n");
    expect_header(SP_DKIM_RELAXED, "X:   \r\n \r\n", "x:\r\n");
}

static void
relaxed_header_treats_the_name_like_the_value(void **state)
{
    (void)state;
    /* RFC 6376 3.4.2 unfolds and squeezes the whole field. */
    expect_header(SP_DKIM_RELAXED, "a b:c", "a b:c\r\n");
    expect_header(SP_DKIM_RELAXED, "a\r\n b:c\r\n", "a b:c\r\n");
    expect_header(SP_DKIM_RELAXED, "A\t\tB :c", "a b:c\r\n");
    expect_header(SP_DKIM_RELAXED, "X: a:B\r\n", "x:a:B\r\n");
}

static void
header_without_final_crlf_gets_one(void **state)
{
    (void)state;
    expect_header(SP_DKIM_SIMPLE, "A: b", "A: b\r\n");
    expect_header(SP_DKIM_RELAXED, "A: b ", "a:b\r\n");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rfc6376_example_body),
        cmocka_unit_test(empty_bodies_follow_erratum_1376),
        cmocka_unit_test(last_line_without_crlf_gets_one),
        cmocka_unit_test(bare_cr_and_lf_are_content),
        cmocka_unit_test(relaxed_squeezes_every_whitespace_run),
        cmocka_unit_test(strict_mode_reports_the_first_bare_line_ending),
        cmocka_unit_test(length_limit_cuts_each_digest),
        cmocka_unit_test(rfc6376_example_header),
        cmocka_unit_test(relaxed_header_folded_right_after_colon),
        cmocka_unit_test(relaxed_header_treats_the_name_like_the_value),
        cmocka_unit_test(header_without_final_crlf_gets_one),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
