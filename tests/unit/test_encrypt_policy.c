/*
 * test_encrypt_policy.c: the encryption policy: modes, per-domain rules
 * (exact beats suffix, longest suffix wins, bad rules refused), the
 * request a message carries (the header field and the Subject tag, both
 * removed, every other byte kept; a header naming no mode refused), and
 * the decision: a rule that encrypts is a floor, auto prefers S/MIME,
 * then OpenPGP, then the portal, and nothing asked for is sent in
 * plaintext when it cannot be done.
 */
#include "policy/encrypt.h"
#include "testlib.h"

#include <string.h>

static void
modes_parse_in_any_case(void **state)
{
    sp_encrypt_mode mode;

    (void)state;
    assert_int_equal(sp_encrypt_mode_parse("SMime", 5, &mode), SP_OK);
    assert_int_equal(mode, SP_ENCRYPT_SMIME);
    assert_int_equal(sp_encrypt_mode_parse("auto", 4, &mode), SP_OK);
    assert_string_equal(sp_encrypt_mode_name(mode), "auto");
    assert_int_equal(sp_encrypt_mode_parse("", 0, &mode), SP_ESYNTAX);
    assert_int_equal(sp_encrypt_mode_parse("pgpx", 4, &mode), SP_ESYNTAX);
}

static void
rules_match_the_most_specific(void **state)
{
    sp_encrypt_rules *rules;
    sp_error err;

    (void)state;
    assert_int_equal(sp_encrypt_rules_parse("*.example.org=auto; "
                                            "*.health.example.org=smime, "
                                            "open.health.example.org=none",
                                            &rules, &err),
                     SP_OK);
    assert_int_equal(sp_encrypt_rules_find(rules, "a.example.org"),
                     SP_ENCRYPT_AUTO);
    assert_int_equal(sp_encrypt_rules_find(rules, "x.Health.example.org"),
                     SP_ENCRYPT_SMIME);
    assert_int_equal(sp_encrypt_rules_find(rules, "open.health.example.org"),
                     SP_ENCRYPT_NONE);
    assert_int_equal(sp_encrypt_rules_find(rules, "example.org"),
                     SP_ENCRYPT_UNSET);
    assert_int_equal(sp_encrypt_rules_find(rules, "badexample.org"),
                     SP_ENCRYPT_UNSET);
    sp_encrypt_rules_free(rules);

    assert_int_equal(sp_encrypt_rules_parse("", &rules, &err), SP_OK);
    assert_int_equal(sp_encrypt_rules_find(rules, "a.b"), SP_ENCRYPT_UNSET);
    sp_encrypt_rules_free(rules);

    assert_int_equal(sp_encrypt_rules_parse("example.org", &rules, &err),
                     SP_ESYNTAX);
    assert_non_null(strstr(err.text, "DOMAIN=MODE"));
    assert_int_equal(sp_encrypt_rules_parse("example.org=yes", &rules, &err),
                     SP_ESYNTAX);
    assert_non_null(strstr(err.text, "mode"));
    assert_int_equal(sp_encrypt_rules_parse("ex ample=auto", &rules, &err),
                     SP_ESYNTAX);
    assert_int_equal(sp_encrypt_rules_parse("*example=auto", &rules, &err),
                     SP_ESYNTAX);
}

/* take_request over text: the mode and the message without the request. */
static int
take(const char *text, const char *tag, sp_encrypt_mode *mode, sp_buf *out,
     sp_error *err)
{
    sp_buf_reset(out);
    return sp_encrypt_take_request(text, strlen(text), tag, mode, out, err);
}

static void
requests_are_read_and_removed(void **state)
{
    sp_encrypt_mode mode;
    sp_buf out = SP_BUF_INIT;
    sp_error err;

    (void)state;
    assert_int_equal(take("From: a@example.com\r\n"
                          "X-Sealpost-Encrypt:  PGP \r\n"
                          "Subject: [secure] Statement\r\n\r\nbody\r\n",
                          "[secure]", &mode, &out, &err),
                     SP_OK);
    assert_int_equal(mode, SP_ENCRYPT_PGP);
    assert_string_equal(out.data, "From: a@example.com\r\n"
                                  "Subject: Statement\r\n\r\nbody\r\n");

    /* The tag alone asks for auto; it may end the Subject. */
    assert_int_equal(take("Subject: Statement [SECURE]\r\n"
                          "To: b@example.org\r\n\r\nx",
                          "[secure]", &mode, &out, &err),
                     SP_OK);
    assert_int_equal(mode, SP_ENCRYPT_AUTO);
    assert_string_equal(out.data,
                        "Subject: Statement\r\nTo: b@example.org\r\n\r\nx");

    /* Nothing asked: every byte kept, folding included. */
    assert_int_equal(take("Subject: a\r\n folded [secure]-less\r\n\r\nx", "",
                          &mode, &out, &err),
                     SP_OK);
    assert_int_equal(mode, SP_ENCRYPT_UNSET);
    assert_string_equal(out.data,
                        "Subject: a\r\n folded [secure]-less\r\n\r\nx");

    /* A request that cannot be read is refused, never ignored. */
    assert_int_equal(take("X-Sealpost-Encrypt: yes please\r\n\r\nx", NULL,
                          &mode, &out, &err),
                     SP_ESYNTAX);
    assert_non_null(strstr(err.text, "yes please"));
    assert_int_equal(take("no header end", NULL, &mode, &out, &err),
                     SP_ESYNTAX);
    sp_buf_free(&out);
}

static sp_encrypt_outcome
decide(sp_encrypt_mode request, sp_encrypt_mode rule, bool smime, bool pgp,
       sp_encrypt_decision *decision)
{
    sp_encrypt_recipient recipient = {
        .address = "c@example.net", .has_smime = smime, .has_pgp = pgp};

    sp_encrypt_decide(request, rule, &recipient, decision);
    return decision->outcome;
}

static void
decisions_never_fall_back_to_plaintext(void **state)
{
    sp_encrypt_decision d;

    (void)state;
    assert_int_equal(decide(SP_ENCRYPT_UNSET, SP_ENCRYPT_UNSET, true, true, &d),
                     SP_ENCRYPT_PLAIN);
    assert_int_equal(decide(SP_ENCRYPT_AUTO, SP_ENCRYPT_UNSET, true, true, &d),
                     SP_ENCRYPT_AS_SMIME);
    assert_int_equal(decide(SP_ENCRYPT_AUTO, SP_ENCRYPT_UNSET, false, true, &d),
                     SP_ENCRYPT_AS_PGP);
    assert_int_equal(decide(SP_ENCRYPT_PGP, SP_ENCRYPT_UNSET, true, true, &d),
                     SP_ENCRYPT_AS_PGP);

    /* No key, no portal: refused with the reason. */
    assert_int_equal(
        decide(SP_ENCRYPT_AUTO, SP_ENCRYPT_UNSET, false, false, &d),
        SP_ENCRYPT_REFUSED);
    assert_non_null(strstr(d.reason, "c@example.net"));
    assert_non_null(strstr(d.reason, "not sent in plaintext"));
    assert_int_equal(
        decide(SP_ENCRYPT_SMIME, SP_ENCRYPT_UNSET, false, true, &d),
        SP_ENCRYPT_REFUSED);
    assert_non_null(strstr(d.reason, "certificate"));
    assert_int_equal(
        decide(SP_ENCRYPT_PORTAL, SP_ENCRYPT_UNSET, true, true, &d),
        SP_ENCRYPT_REFUSED);

    /* A rule that encrypts is a floor: "none" does not lift it. */
    assert_int_equal(decide(SP_ENCRYPT_NONE, SP_ENCRYPT_SMIME, true, false, &d),
                     SP_ENCRYPT_AS_SMIME);
    assert_int_equal(d.mode, SP_ENCRYPT_SMIME);
    assert_int_equal(decide(SP_ENCRYPT_PGP, SP_ENCRYPT_SMIME, true, true, &d),
                     SP_ENCRYPT_AS_PGP);
    assert_int_equal(decide(SP_ENCRYPT_UNSET, SP_ENCRYPT_NONE, true, true, &d),
                     SP_ENCRYPT_PLAIN);
    assert_int_equal(decide(SP_ENCRYPT_AUTO, SP_ENCRYPT_NONE, false, true, &d),
                     SP_ENCRYPT_AS_PGP);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(modes_parse_in_any_case),
        cmocka_unit_test(rules_match_the_most_specific),
        cmocka_unit_test(requests_are_read_and_removed),
        cmocka_unit_test(decisions_never_fall_back_to_plaintext),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
