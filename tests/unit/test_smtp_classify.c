/*
 * test_smtp_classify.c: the bounce class of remote replies, on replies
 * shaped like those large receivers send, and on the edges of the table
 * in doc/bounces.md.
 */
#include "testlib.h"

#include "smtp/smtp.h"

#include <string.h>

struct reply_case {
    int code;
    const char *enhanced;
    const char *text;
    sp_smtp_class class;
};

static const struct reply_case cases[] = {
    /* Not refusals. */
    {250, "2.0.0", "OK", SP_SMTP_CLASS_NONE},
    {354, NULL, "go ahead", SP_SMTP_CLASS_NONE},

    /* The enhanced code decides when it is specific. */
    {550, "5.1.1", "The account you tried to reach does not exist",
     SP_SMTP_CLASS_INVALID_RECIPIENT},
    {550, "5.1.10", "Null MX: this domain takes no mail",
     SP_SMTP_CLASS_DNS_FAILURE},
    {452, "4.2.2", "The account you tried to reach is over quota",
     SP_SMTP_CLASS_MAILBOX_FULL},
    {552, "5.2.2", "Mailbox full", SP_SMTP_CLASS_MAILBOX_FULL},
    {552, "5.3.4", "Message size exceeds fixed limit", SP_SMTP_CLASS_TOO_LARGE},
    {550, "5.7.26",
     "Unauthenticated mail is not accepted due to the "
     "domain's DMARC policy",
     SP_SMTP_CLASS_POLICY},
    {421, "4.7.28", "Unusual rate of unsolicited mail from your IP",
     SP_SMTP_CLASS_RATE_LIMITED},
    {530, "5.7.10", "Must issue a STARTTLS command first",
     SP_SMTP_CLASS_TLS_FAILURE},
    {451, "4.4.2", "Connection dropped", SP_SMTP_CLASS_TIMEOUT},
    {550, "5.4.4", "Unable to route", SP_SMTP_CLASS_DNS_FAILURE},
    /* ... even against a text that says something else. */
    {550, "5.1.1", "blocked: user unknown in spam list",
     SP_SMTP_CLASS_INVALID_RECIPIENT},

    /* Generic enhanced codes: the text decides. */
    {550, "5.4.1", "Recipient address rejected: Access denied",
     SP_SMTP_CLASS_INVALID_RECIPIENT},
    {554, "5.7.1",
     "Service unavailable; client host blocked using "
     "zen.spamhaus.org",
     SP_SMTP_CLASS_SPAM_BLOCK},
    {550, "5.7.1", "Part of their network is on our block list",
     SP_SMTP_CLASS_SPAM_BLOCK},
    {550, "5.7.1",
     "This message is likely unsolicited mail; to reduce "
     "spam it has been blocked",
     SP_SMTP_CLASS_SPAM_BLOCK},
    {554, "5.7.1", "Message content rejected", SP_SMTP_CLASS_SPAM_CONTENT},
    {554, "5.7.1", "Relay access denied", SP_SMTP_CLASS_RELAY_DENIED},
    {421, "4.7.0", "Messages temporarily deferred due to unexpected volume",
     SP_SMTP_CLASS_RATE_LIMITED},
    {550, "5.7.1", "Sender failed the SPF check", SP_SMTP_CLASS_POLICY},
    {550, "5.0.0", "MAILBOX FULL", SP_SMTP_CLASS_MAILBOX_FULL},
    {451, "4.3.0", "Temporary local problem", SP_SMTP_CLASS_TRANSIENT},
    /* Greylisting is a first-contact delay, not a listing. */
    {451, "4.7.1", "Greylisted, please try again later",
     SP_SMTP_CLASS_TRANSIENT},
    {450, NULL,
     "4.2.0 <a@example.org>: Recipient address rejected: "
     "Graylisted for 300 seconds",
     SP_SMTP_CLASS_TRANSIENT},

    /* No enhanced code at all, or a broken one. */
    {550, NULL, "No such user here", SP_SMTP_CLASS_INVALID_RECIPIENT},
    {550, "", "<x@example.com>: Recipient address rejected: User unknown",
     SP_SMTP_CLASS_INVALID_RECIPIENT},
    {421, "5.1.1", "too many connections from your host",
     SP_SMTP_CLASS_RATE_LIMITED},
    {550, "5.1.1x", "whatever", SP_SMTP_CLASS_UNDETERMINED},
    {550, NULL, NULL, SP_SMTP_CLASS_UNDETERMINED},
    {554, NULL, "Transaction failed", SP_SMTP_CLASS_UNDETERMINED},
    {450, NULL, "Requested action not taken", SP_SMTP_CLASS_TRANSIENT},
};

static void
replies_get_their_class(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sp_smtp_class got =
            sp_smtp_classify(cases[i].code, cases[i].enhanced, cases[i].text);

        if (got != cases[i].class)
            fail_msg("%d %s %s: %s, expected %s", cases[i].code,
                     cases[i].enhanced ? cases[i].enhanced : "-",
                     cases[i].text ? cases[i].text : "-",
                     sp_smtp_class_name(got),
                     sp_smtp_class_name(cases[i].class));
    }
}

/* Every class has a distinct name and a number. */
static void
classes_have_names_and_numbers(void **state)
{
    (void)state;
    for (int a = SP_SMTP_CLASS_NONE; a <= SP_SMTP_CLASS_TRANSIENT; a++) {
        assert_true(strlen(sp_smtp_class_name((sp_smtp_class)a)) > 0);
        assert_true(sp_smtp_class_number((sp_smtp_class)a) >= 0);
        for (int b = a + 1; b <= SP_SMTP_CLASS_TRANSIENT; b++)
            assert_string_not_equal(sp_smtp_class_name((sp_smtp_class)a),
                                    sp_smtp_class_name((sp_smtp_class)b));
    }
    assert_string_equal(sp_smtp_class_name(SP_SMTP_CLASS_INVALID_RECIPIENT),
                        "invalid_recipient");
    assert_int_equal(sp_smtp_class_number(SP_SMTP_CLASS_INVALID_RECIPIENT), 10);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(replies_get_their_class),
        cmocka_unit_test(classes_have_names_and_numbers),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
