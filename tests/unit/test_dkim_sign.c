/*
 * test_dkim_sign.c: the signer: round trips through the verifier in every
 * canonicalization and chunking, oversigning, the tags it writes and the
 * messages it refuses, and its behaviour when memory runs out.
 */
#include "dkim/dkim_int.h"
#include "testlib.h"

#include <openssl/pem.h>
#include <string.h>

static const char message[] = "From: Alice <alice@example.com>\r\n"
                              "To: Bob <bob@example.org>\r\n"
                              "Subject:  Quarterly   statement\r\n"
                              "Date: Thu, 3 Dec 2026 10:00:00 +0000\r\n"
                              "Message-ID: <1@example.com>\r\n"
                              "Received: from somewhere\r\n"
                              "\r\n"
                              "Dear Bob,  \r\n"
                              "\r\n"
                              "\tyour statement is attached.\r\n"
                              "\r\n\r\n";

struct fixture {
    sp_dkim_key *rsa;
    sp_dkim_key *ed25519;
    testlib_dns dns;
};

static int
setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    sp_buf table = SP_BUF_INIT;
    sp_error err;

    fx->rsa = testlib_rsa_key(2048);
    fx->ed25519 = testlib_ed25519_key();
    assert_int_equal(sp_buf_append_str(&table, "r1._domainkey.example.com "
                                               "TXT \""),
                     SP_OK);
    assert_int_equal(sp_dkim_key_record(fx->rsa, false, &table), SP_OK);
    assert_int_equal(sp_buf_append_str(&table, "\"\ne1._domainkey.example.com "
                                               "TXT \""),
                     SP_OK);
    assert_int_equal(sp_dkim_key_record(fx->ed25519, false, &table), SP_OK);
    assert_int_equal(sp_buf_append_str(&table, "\"\n"), SP_OK);
    if (sp_dns_table_parse(table.data, table.len, &fx->dns.table, &err))
        fail_msg("%s", err.text);
    sp_buf_free(&table);
    *state = fx;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *fx = *state;

    sp_dkim_key_free(fx->rsa);
    sp_dkim_key_free(fx->ed25519);
    testlib_dns_free(&fx->dns);
    free(fx);
    return 0;
}

static void
two_specs(struct fixture *fx, sp_dkim_sign_spec specs[2], sp_dkim_canon hc,
          sp_dkim_canon bc)
{
    specs[0] = (sp_dkim_sign_spec){.domain = "example.com",
                                   .selector = "r1",
                                   .key = fx->rsa,
                                   .header_canon = hc,
                                   .body_canon = bc};
    specs[1] = specs[0];
    specs[1].selector = "e1";
    specs[1].key = fx->ed25519;
}

static void
round_trip_every_canonicalization_and_chunking(void **state)
{
    struct fixture *fx = *state;
    static const size_t chunks[] = {0, 1, 2, 7, 64};

    for (int hc = 0; hc < 2; hc++) {
        for (int bc = 0; bc < 2; bc++) {
            sp_dkim_sign_spec specs[2];
            sp_buf first = SP_BUF_INIT;

            two_specs(fx, specs, (sp_dkim_canon)hc, (sp_dkim_canon)bc);
            for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
                sp_buf out = SP_BUF_INIT;
                sp_dkim_verify *verify;
                sp_error err;

                if (testlib_sign(specs, 2, message, sizeof(message) - 1,
                                 chunks[c], &out, &err) != SP_OK)
                    fail_msg("sign: %s", err.text);

                /* Ed25519 is deterministic, RSA PKCS#1 v1.5 too. */
                if (c == 0)
                    assert_int_equal(sp_buf_append(&first, out.data, out.len),
                                     SP_OK);
                else
                    assert_memory_equal(out.data, first.data, out.len);

                verify = testlib_verify(&fx->dns, out.data, out.len, 3, false);
                assert_int_equal(sp_dkim_verify_count(verify), 2);
                for (size_t i = 0; i < 2; i++) {
                    const sp_dkim_result *res =
                        sp_dkim_verify_result(verify, i);

                    if (res->status != SP_DKIM_PASS)
                        fail_msg("c=%d/%d chunk %zu sig %zu: %s", hc, bc,
                                 chunks[c], i, res->detail);
                }
                sp_dkim_verify_free(verify);
                sp_buf_free(&out);
            }
            sp_buf_free(&first);
        }
    }
}

/* Unfolded value of tag in the first DKIM-Signature of signed. */
static void
tag_value(const char *signed_text, const char *tag, char *out, size_t size)
{
    sp_buf unfolded = SP_BUF_INIT;
    const char *end = strstr(signed_text, "\r\nFrom:");
    const char *pos;
    size_t len = 0;
    char needle[16];

    /* Folds become one space, as relaxed canonicalization sees them. */
    for (const char *p = signed_text; p < end; p++)
        if (*p == '\t')
            sp_buf_append(&unfolded, " ", 1);
        else if (*p != '\r' && *p != '\n')
            sp_buf_append(&unfolded, p, 1);
    snprintf(needle, sizeof(needle), " %s=", tag);
    pos = strstr(unfolded.data, needle);
    out[0] = '\0';
    if (pos != NULL) {
        pos += strlen(needle);
        while (pos[len] && pos[len] != ';' && len < size - 1)
            len++;
        memcpy(out, pos, len);
        out[len] = '\0';
    }
    sp_buf_free(&unfolded);
}

static void
oversigns_writes_t_and_never_l(void **state)
{
    struct fixture *fx = *state;
    sp_dkim_sign_spec spec = {.domain = "example.com",
                              .selector = "e1",
                              .key = fx->ed25519,
                              .expire_after = 7776000};
    sp_buf out = SP_BUF_INIT;
    char value[600];

    assert_int_equal(
        testlib_sign(&spec, 1, message, sizeof(message) - 1, 0, &out, NULL),
        SP_OK);
    tag_value(out.data, "h", value, sizeof(value));
    assert_non_null(strstr(value, "from:from:"));
    assert_non_null(strstr(value, "to:to:"));
    assert_non_null(strstr(value, "subject:subject:"));
    assert_non_null(strstr(value, "cc"));
    assert_null(strstr(value, "received"));
    tag_value(out.data, "t", value, sizeof(value));
    assert_string_equal(value, "1700000000");
    tag_value(out.data, "x", value, sizeof(value));
    assert_string_equal(value, "1707776000");
    tag_value(out.data, "l", value, sizeof(value));
    assert_string_equal(value, "");
    tag_value(out.data, "a", value, sizeof(value));
    assert_string_equal(value, "ed25519-sha256");

    /* Every line of the signature field stays within 78 columns. */
    for (const char *line = out.data; line < strstr(out.data, "\r\nFrom:");) {
        const char *eol = strstr(line, "\r\n");

        assert_true(eol - line <= 78);
        line = eol + 2;
    }
    sp_buf_free(&out);
}

static void
refuse(struct fixture *fx, const char *text, int want, const char *why)
{
    sp_dkim_sign_spec spec = {
        .domain = "example.com", .selector = "e1", .key = fx->ed25519};
    sp_buf out = SP_BUF_INIT;
    sp_error err;

    assert_int_equal(testlib_sign(&spec, 1, text, strlen(text), 5, &out, &err),
                     want);
    if (strstr(err.text, why) == NULL)
        fail_msg("\"%s\" does not mention \"%s\"", err.text, why);
    assert_int_equal(out.len, 0);
    sp_buf_free(&out);
}

static void
refuses_what_receivers_reject(void **state)
{
    struct fixture *fx = *state;

    refuse(fx, "To: b@example.org\r\n\r\nx\r\n", SP_EPOLICY, "no From");
    refuse(fx, "From: a@example.com\r\nFrom: c@example.com\r\n\r\nx\r\n",
           SP_EPOLICY, "2 From");
    refuse(fx, "From: a@example.com\nTo: b\r\n\r\nx\r\n", SP_ESYNTAX,
           "bare LF");
    refuse(fx, "From: a@example.com\r\n\r\nx\ry\r\n", SP_ESYNTAX, "bare CR");
    refuse(fx, "From: a@example.com\r\n\r\nx\r\ny\n", SP_ESYNTAX, "octet 27");
    refuse(fx, "From: a@example.com\r\nnot a field\r\n\r\nx\r\n", SP_ESYNTAX,
           "not \"name: value\"");
}

static void
refuses_nul_in_the_header(void **state)
{
    struct fixture *fx = *state;
    const char text[] = "From: a@example.com\r\nX: a\0b\r\n\r\nx\r\n";
    sp_dkim_sign_spec spec = {
        .domain = "example.com", .selector = "e1", .key = fx->ed25519};
    sp_buf out = SP_BUF_INIT;
    sp_error err;

    assert_int_equal(
        testlib_sign(&spec, 1, text, sizeof(text) - 1, 0, &out, &err),
        SP_ESYNTAX);
    assert_non_null(strstr(err.text, "NUL"));
    sp_buf_free(&out);
}

static void
refuses_header_over_the_limit(void **state)
{
    struct fixture *fx = *state;
    sp_dkim_sign_spec spec = {
        .domain = "example.com", .selector = "e1", .key = fx->ed25519};
    sp_buf text = SP_BUF_INIT, out = SP_BUF_INIT;
    sp_error err;

    sp_buf_append_str(&text, "From: a@example.com\r\nX-Long: ");
    for (int i = 0; i < SP_DKIM_MAX_HEADER_BYTES / 64 + 1; i++)
        sp_buf_append_str(&text, "0123456789012345678901234567890123456789"
                                 "012345678901234567890123");
    sp_buf_append_str(&text, "\r\n\r\nbody\r\n");
    assert_int_equal(
        testlib_sign(&spec, 1, text.data, text.len, 65536, &out, &err),
        SP_ELIMIT);
    assert_non_null(strstr(err.text, "header section larger"));
    sp_buf_free(&text);
    sp_buf_free(&out);
}

static void
refuses_bad_specs(void **state)
{
    struct fixture *fx = *state;
    sp_dkim_sign_spec specs[2];
    sp_dkim_sign *sign = NULL;
    sp_error err;

    two_specs(fx, specs, SP_DKIM_RELAXED, SP_DKIM_RELAXED);
    specs[1].selector = "R1";
    assert_int_equal(sp_dkim_sign_new(specs, 2, 0, &sign, &err), SP_EINVAL);
    assert_non_null(strstr(err.text, "share selector"));

    two_specs(fx, specs, SP_DKIM_RELAXED, SP_DKIM_RELAXED);
    specs[0].domain = "bad domain";
    assert_int_equal(sp_dkim_sign_new(specs, 1, 0, &sign, &err), SP_EINVAL);

    two_specs(fx, specs, SP_DKIM_RELAXED, SP_DKIM_RELAXED);
    specs[0].identity = "user@elsewhere.org";
    assert_int_equal(sp_dkim_sign_new(specs, 1, 0, &sign, &err), SP_EINVAL);
    assert_null(sign);
}

static void
refuses_short_rsa_keys_with_the_reason(void **state)
{
    EVP_PKEY *weak = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)768);
    BIO *bio = BIO_new(BIO_s_mem());
    sp_dkim_key *key = NULL;
    char *pem;
    long len;
    sp_error err;

    (void)state;
    assert_non_null(weak);
    assert_int_equal(
        PEM_write_bio_PrivateKey(bio, weak, NULL, NULL, 0, NULL, NULL), 1);
    len = BIO_get_mem_data(bio, &pem);
    assert_int_equal(sp_dkim_key_parse(pem, (size_t)len, &key, &err),
                     SP_EPOLICY);
    assert_non_null(strstr(err.text, "768 bits"));
    assert_non_null(strstr(err.text, "RFC 8301"));
    assert_null(key);
    BIO_free(bio);
    EVP_PKEY_free(weak);
}

static void
reset_signs_the_next_message_alike(void **state)
{
    struct fixture *fx = *state;
    sp_dkim_sign_spec specs[2];
    sp_dkim_sign *sign = NULL;
    sp_buf once = SP_BUF_INIT, again = SP_BUF_INIT;

    two_specs(fx, specs, SP_DKIM_RELAXED, SP_DKIM_SIMPLE);
    assert_int_equal(
        testlib_sign(specs, 2, message, sizeof(message) - 1, 0, &once, NULL),
        SP_OK);
    assert_int_equal(sp_dkim_sign_new(specs, 2, 1700000000, &sign, NULL),
                     SP_OK);
    for (int round = 0; round < 3; round++) {
        sp_buf_reset(&again);
        sp_dkim_sign_reset(sign, 1700000000);
        assert_int_equal(
            sp_dkim_sign_feed(sign, message, sizeof(message) - 1, NULL), SP_OK);
        assert_int_equal(sp_dkim_sign_finish(sign, &again, NULL), SP_OK);
        sp_buf_append(&again, message, sizeof(message) - 1);
        assert_int_equal(again.len, once.len);
        assert_memory_equal(again.data, once.data, once.len);
        /* Finishing twice is a state error, not a second signature. */
        assert_int_equal(sp_dkim_sign_finish(sign, &again, NULL), SP_ESTATE);
    }
    sp_dkim_sign_free(sign);
    sp_buf_free(&once);
    sp_buf_free(&again);
}

/* Every allocation, failed in turn: SP_ENOMEM, never a crash or a leak. */
static void
survives_allocation_failure_at_every_step(void **state)
{
    struct fixture *fx = *state;
    sp_dkim_sign_spec specs[2];
    int rc = SP_ENOMEM;

    two_specs(fx, specs, SP_DKIM_RELAXED, SP_DKIM_RELAXED);
    for (long allowed = 0; rc == SP_ENOMEM && allowed < 1000; allowed++) {
        sp_buf out = SP_BUF_INIT;

        sp_alloc_fail_after(allowed);
        rc =
            testlib_sign(specs, 2, message, sizeof(message) - 1, 9, &out, NULL);
        sp_alloc_fail_after(-1);
        assert_true(rc == SP_OK || rc == SP_ENOMEM);
        sp_buf_free(&out);
    }
    assert_int_equal(rc, SP_OK);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip_every_canonicalization_and_chunking),
        cmocka_unit_test(oversigns_writes_t_and_never_l),
        cmocka_unit_test(refuses_what_receivers_reject),
        cmocka_unit_test(refuses_nul_in_the_header),
        cmocka_unit_test(refuses_header_over_the_limit),
        cmocka_unit_test(refuses_bad_specs),
        cmocka_unit_test(refuses_short_rsa_keys_with_the_reason),
        cmocka_unit_test(reset_signs_the_next_message_alike),
        cmocka_unit_test(survives_allocation_failure_at_every_step),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
