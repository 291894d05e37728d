/*
 * test_base.c: the base module: error vocabulary, buffers, base64, log
 * escaping, and the failing-allocator hook itself.
 */
#include "testlib.h"

#include <string.h>

static void
error_names_come_from_one_table(void **state)
{
    (void)state;
    assert_string_equal(sp_err_name(SP_ENOMEM), "SP_ENOMEM");
    assert_string_equal(sp_err_name(SP_ENOTFOUND), "SP_ENOTFOUND");
    assert_string_equal(sp_err_name(12345), "SP_UNKNOWN");
    assert_string_equal(sp_err_describe(SP_ESYNTAX), "malformed input");
}

static void
error_set_formats_and_returns_code(void **state)
{
    sp_error err;

    (void)state;
    assert_int_equal(sp_err_set(&err, SP_ELIMIT, "over by %d", 7), SP_ELIMIT);
    assert_int_equal(err.code, SP_ELIMIT);
    assert_string_equal(err.text, "over by 7");
    assert_int_equal(sp_err_set(NULL, SP_EIO, "ignored"), SP_EIO);
    sp_err_clear(&err);
    assert_int_equal(err.code, SP_OK);
    assert_string_equal(err.text, "");
}

static void
buffer_grows_and_stays_terminated(void **state)
{
    sp_buf buf = SP_BUF_INIT;

    (void)state;
    for (int i = 0; i < 1000; i++)
        assert_int_equal(sp_buf_append(&buf, "abc", 3), SP_OK);
    assert_int_equal(buf.len, 3000);
    assert_int_equal(buf.data[buf.len], '\0');
    assert_int_equal(sp_buf_printf(&buf, "-%d-", 42), SP_OK);
    assert_string_equal(buf.data + 3000, "-42-");
    sp_buf_reset(&buf);
    assert_int_equal(buf.len, 0);
    assert_string_equal(buf.data, "");
    sp_buf_free(&buf);
    assert_null(buf.data);
}

static void
buffer_keeps_contents_when_allocation_fails(void **state)
{
    sp_buf buf = SP_BUF_INIT;

    (void)state;
    assert_int_equal(sp_buf_append_str(&buf, "kept"), SP_OK);
    sp_alloc_fail_after(0);
    assert_int_equal(sp_buf_reserve(&buf, 1 << 20), SP_ENOMEM);
    sp_alloc_fail_after(-1);
    assert_string_equal(buf.data, "kept");
    assert_int_equal(buf.len, 4);
    sp_buf_free(&buf);
}

/* RFC 4648 section 10 test vectors. */
static void
base64_matches_rfc4648_vectors(void **state)
{
    static const char *const vectors[][2] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        sp_buf enc = SP_BUF_INIT, dec = SP_BUF_INIT;
        sp_error err;

        assert_int_equal(
            sp_b64_encode(&enc, vectors[i][0], strlen(vectors[i][0])), SP_OK);
        assert_string_equal(enc.data ? enc.data : "", vectors[i][1]);
        assert_int_equal(
            sp_b64_decode(&dec, vectors[i][1], strlen(vectors[i][1]), &err),
            SP_OK);
        assert_int_equal(dec.len, strlen(vectors[i][0]));
        assert_memory_equal(dec.data, vectors[i][0], dec.len);
        sp_buf_free(&enc);
        sp_buf_free(&dec);
    }
}

static void
base64_skips_folding_whitespace(void **state)
{
    sp_buf dec = SP_BUF_INIT;
    const char *folded = "Zm9v\r\n\tYm Fy";

    (void)state;
    assert_int_equal(sp_b64_decode(&dec, folded, strlen(folded), NULL), SP_OK);
    assert_string_equal(dec.data, "foobar");
    sp_buf_free(&dec);
}

static void
base64_refuses_junk(void **state)
{
    static const char *const junk[] = {
        "Zm9v!", "Zg=a", "Z", "Zm9vY", "Zg===", "Zg=\x80", "Zm\0v",
    };
    (void)state;

    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        sp_buf dec = SP_BUF_INIT;
        sp_error err;
        size_t len = i == 6 ? 4 : strlen(junk[i]);

        assert_int_equal(sp_b64_decode(&dec, junk[i], len, &err), SP_ESYNTAX);
        assert_true(strlen(err.text) > 0);
        assert_true(dec.len == 0);
        sp_buf_free(&dec);
    }
}

static void
log_escape_neutralizes_peer_text(void **state)
{
    char out[32];

    (void)state;
    sp_log_escape(out, sizeof(out), "a\r\nb\"\\", 6);
    assert_string_equal(out, "a\\x0d\\x0ab\\\"\\\\");
    sp_log_escape(out, 10, "0123456789abcdef", 16);
    assert_string_equal(out, "012345...");
    assert_true(strlen(out) < 10);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(error_names_come_from_one_table),
        cmocka_unit_test(error_set_formats_and_returns_code),
        cmocka_unit_test(buffer_grows_and_stays_terminated),
        cmocka_unit_test(buffer_keeps_contents_when_allocation_fails),
        cmocka_unit_test(base64_matches_rfc4648_vectors),
        cmocka_unit_test(base64_skips_folding_whitespace),
        cmocka_unit_test(base64_refuses_junk),
        cmocka_unit_test(log_escape_neutralizes_peer_text),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
