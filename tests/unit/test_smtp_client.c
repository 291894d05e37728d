/*
 * test_smtp_client.c: the delivery client's engine byte by byte: what it
 * writes for each reply a server gives, pipelined and not, STARTTLS,
 * refusals and their classes, no downgrade, no bare CR or LF sent,
 * broken servers.
 */
#include "testlib.h"

#include "smtp/smtp.h"

#include <string.h>

typedef struct harness {
    sp_smtp_client *client;
    sp_buf out;
    sp_smtp_client_next next;
} harness;

static void
h_start(harness *h, bool tls_possible, bool tls_required)
{
    sp_smtp_client_options options = {
        .helo = "mta.example.net",
        .tls_possible = tls_possible,
        .tls_required = tls_required,
    };
    sp_error err;

    memset(h, 0, sizeof(*h));
    assert_int_equal(sp_smtp_client_new(&options, &h->client, &err), SP_OK);
}

static void
h_end(harness *h)
{
    sp_smtp_client_free(h->client);
    sp_buf_free(&h->out);
}

/* Check what was written since the last check, and forget it. */
static void
h_expect(harness *h, const char *expected)
{
    const char *got = h->out.data ? h->out.data : "";

    if (h->out.len != strlen(expected) ||
        memcmp(got, expected, h->out.len) != 0)
        fail_msg("written differs\n--- expected\n%s--- got\n%.*s---", expected,
                 (int)h->out.len, got);
    sp_buf_reset(&h->out);
}

/* Feed the server's bytes, one at a time when split is set. */
static sp_smtp_client_next
h_server(harness *h, const char *bytes, bool split)
{
    size_t len = strlen(bytes);

    if (!split)
        return h->next = sp_smtp_client_input(h->client, bytes, len, &h->out);
    for (size_t i = 0; i < len; i++) {
        h->next = sp_smtp_client_input(h->client, bytes + i, 1, &h->out);
        if (h->next != SP_SMTP_CLIENT_READ && i + 1 < len)
            fail_msg("stopped early at %zu of %s", i, bytes);
    }
    return h->next;
}

#define EHLO_PIPELINED                                                         \
    "250-mx.example.org hello\r\n250-PIPELINING\r\n250-SIZE 100000\r\n"        \
    "250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n"

/* Greeting and EHLO with the given reply; ends IDLE. */
static void
h_ready(harness *h, const char *ehlo_reply)
{
    assert_int_equal(h_server(h, "220 mx.example.org ESMTP\r\n", false),
                     SP_SMTP_CLIENT_READ);
    h_expect(h, "EHLO mta.example.net\r\n");
    assert_int_equal(h_server(h, ehlo_reply, false), SP_SMTP_CLIENT_IDLE);
}

static const char *const two[] = {"b@example.org", "c@example.org"};

static sp_smtp_client_next
h_send(harness *h, const char *data, bool eightbit)
{
    sp_smtp_client_message m = {
        .sender = "a@example.com",
        .recipients = two,
        .recipient_count = 2,
        .data = data,
        .len = strlen(data),
        .eightbit = eightbit,
    };

    return h->next = sp_smtp_client_send(h->client, &m, &h->out);
}

/* ------------------------------------------------------------------ */

static void
pipelined_transaction_and_results(void **state)
{
    static const char data[] = "Subject: x\r\n\r\n.dot\r\nend\r\n";
    const sp_smtp_client_ext *ext;
    harness h;

    (void)state;
    h_start(&h, false, false);
    h_ready(&h, EHLO_PIPELINED);
    ext = sp_smtp_client_extensions(h.client);
    assert_true(ext->pipelining && ext->eightbit && ext->enhanced);
    assert_true(ext->size_known && ext->size == 100000);

    assert_int_equal(h_send(&h, data, false), SP_SMTP_CLIENT_READ);
    h_expect(&h, "MAIL FROM:<a@example.com> SIZE=25\r\n"
                 "RCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\n"
                 "DATA\r\n");
    assert_int_equal(sp_smtp_client_timeout(h.client), 300);
    assert_int_equal(h_server(&h,
                              "250 2.1.0 ok\r\n250 2.1.5 ok\r\n"
                              "550 5.1.1 <c@example.org>: no such user\r\n"
                              "354 go ahead\r\n",
                              true),
                     SP_SMTP_CLIENT_READ);
    h_expect(&h, "Subject: x\r\n\r\n..dot\r\nend\r\n.\r\n");
    assert_int_equal(sp_smtp_client_timeout(h.client), 600);
    assert_int_equal(h_server(&h, "250 2.0.0 queued as 12345\r\n", false),
                     SP_SMTP_CLIENT_SENT);

    assert_int_equal(sp_smtp_client_result_for(h.client, 0)->code, 250);
    assert_string_equal(sp_smtp_client_result_for(h.client, 0)->text,
                        "queued as 12345");
    assert_int_equal(sp_smtp_client_result_for(h.client, 1)->code, 550);
    assert_string_equal(sp_smtp_client_result_for(h.client, 1)->enhanced,
                        "5.1.1");
    assert_int_equal(sp_smtp_client_result_for(h.client, 1)->class,
                     SP_SMTP_CLASS_INVALID_RECIPIENT);
    assert_null(sp_smtp_client_failure(h.client));

    /* The next message on the same connection needs no RSET. */
    assert_int_equal(h_send(&h, "x", false), SP_SMTP_CLIENT_READ);
    h_expect(&h, "MAIL FROM:<a@example.com> SIZE=1\r\n"
                 "RCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\n"
                 "DATA\r\n");
    h_server(&h, "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", false);
    h_expect(&h, "x\r\n.\r\n"); /* the missing final CRLF is added */
    assert_int_equal(h_server(&h, "250 ok\r\n", false), SP_SMTP_CLIENT_SENT);

    sp_smtp_client_quit(h.client, &h.out);
    h_expect(&h, "QUIT\r\n");
    assert_int_equal(h_server(&h, "221 bye\r\n", false), SP_SMTP_CLIENT_CLOSE);
    h_end(&h);
}

static void
one_step_at_a_time_without_pipelining(void **state)
{
    harness h;

    (void)state;
    h_start(&h, false, false);
    h_ready(&h, "250-mx.example.org\r\n250 8BITMIME\r\n");
    h_send(&h, "m\r\n", false);
    h_expect(&h, "MAIL FROM:<a@example.com>\r\n");
    h_server(&h, "250 ok\r\n", false);
    h_expect(&h, "RCPT TO:<b@example.org>\r\n");
    h_server(&h, "250 ok\r\n", false);
    h_expect(&h, "RCPT TO:<c@example.org>\r\n");
    h_server(&h, "250 ok\r\n", false);
    h_expect(&h, "DATA\r\n");
    assert_int_equal(sp_smtp_client_timeout(h.client), 120);
    h_server(&h, "354 go\r\n", false);
    h_expect(&h, "m\r\n.\r\n");
    assert_int_equal(h_server(&h, "250 ok\r\n", false), SP_SMTP_CLIENT_SENT);

    /* Every recipient refused: no DATA, and RSET before the next one. */
    h_send(&h, "m\r\n", false);
    h_expect(&h, "MAIL FROM:<a@example.com>\r\n");
    h_server(&h, "250 ok\r\n", false);
    h_server(&h, "550 5.1.1 unknown\r\n", false);
    h_expect(&h, "RCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\n");
    assert_int_equal(h_server(&h, "450 4.2.1 try later\r\n", false),
                     SP_SMTP_CLIENT_SENT);
    assert_int_equal(sp_smtp_client_result_for(h.client, 0)->code, 550);
    assert_int_equal(sp_smtp_client_result_for(h.client, 1)->code, 450);
    h_send(&h, "m\r\n", false);
    h_expect(&h, "RSET\r\nMAIL FROM:<a@example.com>\r\n");

    /* A refused sender ends the transaction at once. */
    h_server(&h, "250 ok\r\n", false);
    assert_int_equal(h_server(&h, "553 5.7.1 sender rejected\r\n", false),
                     SP_SMTP_CLIENT_SENT);
    assert_int_equal(sp_smtp_client_result_for(h.client, 1)->code, 553);
    h_end(&h);
}

static void
pipelined_refusals_reach_every_recipient(void **state)
{
    harness h;

    (void)state;
    h_start(&h, false, false);
    h_ready(&h, EHLO_PIPELINED);

    /* MAIL refused: the RCPTs and DATA fail behind it. */
    h_send(&h, "m\r\n", false);
    sp_buf_reset(&h.out);
    assert_int_equal(h_server(&h,
                              "550 5.7.1 blocked using zen.spamhaus.org\r\n"
                              "503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n"
                              "503 5.5.1 need RCPT\r\n",
                              false),
                     SP_SMTP_CLIENT_SENT);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(sp_smtp_client_result_for(h.client, i)->code, 550);
        assert_int_equal(sp_smtp_client_result_for(h.client, i)->class,
                         SP_SMTP_CLASS_SPAM_BLOCK);
    }

    /* Every RCPT refused, yet 354: the data ends empty at once. */
    h_send(&h, "m\r\n", false);
    h_expect(&h, "RSET\r\nMAIL FROM:<a@example.com> SIZE=3\r\n"
                 "RCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\n"
                 "DATA\r\n");
    h_server(&h, "250 ok\r\n250 ok\r\n550 no\r\n550 no\r\n354 go\r\n", false);
    h_expect(&h, ".\r\n");
    assert_int_equal(h_server(&h, "554 5.5.1 no valid recipients\r\n", false),
                     SP_SMTP_CLIENT_SENT);
    assert_int_equal(sp_smtp_client_result_for(h.client, 0)->code, 550);
    h_end(&h);
}

static void
starttls_then_ehlo_again(void **state)
{
    harness h;

    (void)state;
    h_start(&h, true, false);
    h_server(&h, "220 mx ESMTP\r\n", false);
    h_expect(&h, "EHLO mta.example.net\r\n");
    assert_int_equal(
        h_server(&h, "250-mx\r\n250-STARTTLS\r\n250 PIPELINING\r\n", false),
        SP_SMTP_CLIENT_READ);
    h_expect(&h, "STARTTLS\r\n");
    assert_int_equal(h_server(&h, "220 2.0.0 ready\r\n", false),
                     SP_SMTP_CLIENT_STARTTLS);
    sp_smtp_client_tls_started(h.client, &h.out);
    h_expect(&h, "EHLO mta.example.net\r\n");
    assert_false(sp_smtp_client_extensions(h.client)->pipelining);
    assert_int_equal(h_server(&h, "250-mx\r\n250 SIZE\r\n", false),
                     SP_SMTP_CLIENT_IDLE);
    assert_true(sp_smtp_client_extensions(h.client)->size_known);
    assert_int_equal(sp_smtp_client_extensions(h.client)->size, 0);
    h_end(&h);

    /* STARTTLS refused: opportunistic TLS goes on in plain text. */
    h_start(&h, true, false);
    h_server(&h, "220 mx\r\n", false);
    h_server(&h, "250-mx\r\n250 STARTTLS\r\n", false);
    sp_buf_reset(&h.out);
    assert_int_equal(h_server(&h, "454 4.7.0 TLS not available\r\n", false),
                     SP_SMTP_CLIENT_IDLE);
    h_end(&h);
}

static void
required_tls_missing_ends_the_session(void **state)
{
    const sp_smtp_client_result *why;
    harness h;

    (void)state;
    h_start(&h, true, true);
    h_server(&h, "220 mx\r\n", false);
    sp_buf_reset(&h.out);
    assert_int_equal(h_server(&h, "250-mx\r\n250 PIPELINING\r\n", false),
                     SP_SMTP_CLIENT_CLOSE);
    h_expect(&h, "QUIT\r\n");
    why = sp_smtp_client_failure(h.client);
    assert_non_null(why);
    assert_true(why->local);
    assert_int_equal(why->class, SP_SMTP_CLASS_TLS_FAILURE);
    h_end(&h);
}

static void
nothing_is_downgraded(void **state)
{
    static char big[200001];
    const sp_smtp_client_result *why;
    harness h;

    (void)state;
    memset(big, 'x', sizeof(big) - 1);
    h_start(&h, false, false);
    h_ready(&h, "250-mx\r\n250 SIZE 100000\r\n");
    assert_int_equal(h_send(&h, big, false), SP_SMTP_CLIENT_SENT);
    h_expect(&h, "");
    why = sp_smtp_client_result_for(h.client, 0);
    assert_int_equal(why->code, 552);
    assert_true(why->local);
    assert_int_equal(why->class, SP_SMTP_CLASS_TOO_LARGE);

    assert_int_equal(h_send(&h, "8bit \xc3\xa9\r\n", true),
                     SP_SMTP_CLIENT_SENT);
    h_expect(&h, "");
    why = sp_smtp_client_result_for(h.client, 1);
    assert_int_equal(why->code, 554);
    assert_string_equal(why->enhanced, "5.6.3");
    h_end(&h);
}

/* Bare CR or LF never goes out, nor is it mended after signing. */
static void
bare_line_ends_are_refused(void **state)
{
    static const char *const bare[] = {
        "a\nb\r\n", "\nb\r\n", "a\rb\r\n", "a\r\nb\r", "a\r\r\n",
    };
    const sp_smtp_client_result *why;
    harness h;

    (void)state;
    h_start(&h, false, false);
    h_ready(&h, EHLO_PIPELINED);
    for (size_t i = 0; i < sizeof(bare) / sizeof(bare[0]); i++) {
        assert_int_equal(h_send(&h, bare[i], false), SP_SMTP_CLIENT_SENT);
        h_expect(&h, "");
        why = sp_smtp_client_result_for(h.client, 0);
        assert_int_equal(why->code, 554);
        assert_string_equal(why->enhanced, "5.6.0");
        assert_true(why->local);
    }
    assert_int_equal(h_send(&h, "a\r\n\r\nb", false), SP_SMTP_CLIENT_READ);
    h_expect(&h, "MAIL FROM:<a@example.com> SIZE=6\r\n"
                 "RCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\n"
                 "DATA\r\n");
    h_end(&h);
}

/* What a server out of step or outside SMTP says never means delivered. */
static void
hostile_replies_are_never_delivered(void **state)
{
    const sp_smtp_client_result *why;
    harness h;

    (void)state;

    /* A code SMTP does not have is no reply. */
    h_start(&h, false, false);
    assert_int_equal(h_server(&h, "000 what\r\n", false), SP_SMTP_CLIENT_CLOSE);
    assert_int_equal(sp_smtp_client_failure(h.client)->code, 451);
    assert_non_null(
        strstr(sp_smtp_client_failure(h.client)->text, "outside SMTP"));
    h_end(&h);

    /* DATA answered 250: the message was never sent. */
    h_start(&h, false, false);
    h_ready(&h, "250 mx\r\n");
    h_send(&h, "m\r\n", false);
    h_expect(&h, "MAIL FROM:<a@example.com>\r\n");
    h_server(&h, "250 ok\r\n", false);
    h_expect(&h, "RCPT TO:<b@example.org>\r\n");
    h_server(&h, "250 ok\r\n", false);
    h_expect(&h, "RCPT TO:<c@example.org>\r\n");
    h_server(&h, "250 ok\r\n", false);
    h_expect(&h, "DATA\r\n");
    assert_int_equal(h_server(&h, "250 sure\r\n", false), SP_SMTP_CLIENT_CLOSE);
    h_expect(&h, "QUIT\r\n");
    why = sp_smtp_client_failure(h.client);
    assert_int_equal(why->code, 451);
    assert_non_null(strstr(why->text, "instead of 354"));
    h_end(&h);

    /* A reply before its command: out of step, the session ends. */
    h_start(&h, false, false);
    assert_int_equal(h_server(&h, "220 hi\r\n250 early\r\n", false),
                     SP_SMTP_CLIENT_CLOSE);
    h_expect(&h, "EHLO mta.example.net\r\nQUIT\r\n");
    assert_non_null(
        strstr(sp_smtp_client_failure(h.client)->text, "out of step"));
    h_end(&h);

    /* Control characters and 8-bit octets never leave the client. */
    h_start(&h, false, false);
    h_ready(&h, "250 mx\r\n");
    h_send(&h, "m\r\n", false);
    h_expect(&h, "MAIL FROM:<a@example.com>\r\n");
    assert_int_equal(h_server(&h, "550 5.7.1 no\x1b[31m\xff\r\n", false),
                     SP_SMTP_CLIENT_SENT);
    assert_string_equal(sp_smtp_client_result_for(h.client, 0)->text,
                        "no?[31m?");
    h_end(&h);
}

static void
helo_when_ehlo_is_refused(void **state)
{
    harness h;

    (void)state;
    h_start(&h, false, false);
    h_server(&h, "220 old server\r\n", false);
    h_expect(&h, "EHLO mta.example.net\r\n");
    h_server(&h, "502 command not implemented\r\n", false);
    h_expect(&h, "HELO mta.example.net\r\n");
    assert_int_equal(h_server(&h, "250 hi\r\n", false), SP_SMTP_CLIENT_IDLE);
    h_send(&h, "m\r\n", false);
    h_expect(&h, "MAIL FROM:<a@example.com>\r\n");
    h_end(&h);
}

static void
broken_or_closing_servers(void **state)
{
    harness h;

    (void)state;

    /* A refusing greeting. */
    h_start(&h, false, false);
    assert_int_equal(h_server(&h, "554 no service\r\n", false),
                     SP_SMTP_CLIENT_CLOSE);
    h_expect(&h, "QUIT\r\n");
    assert_int_equal(sp_smtp_client_failure(h.client)->code, 554);
    h_end(&h);

    /* Garbage, a changed code inside a reply, an endless line. */
    static const char *const broken[] = {
        "hello there\r\n",
        "220-first\r\n221 second\r\n",
        "22\r\n",
    };
    for (size_t i = 0; i < 3; i++) {
        h_start(&h, false, false);
        assert_int_equal(h_server(&h, broken[i], false), SP_SMTP_CLIENT_CLOSE);
        assert_int_equal(sp_smtp_client_failure(h.client)->code, 451);
        h_end(&h);
    }
    h_start(&h, false, false);
    for (int i = 0; i < 5000 && h.next != SP_SMTP_CLIENT_CLOSE; i++)
        h_server(&h, "2", false);
    assert_int_equal(h.next, SP_SMTP_CLIENT_CLOSE);
    h_end(&h);

    /* Bare LF line ends are read; 421 in a transaction ends it all. */
    h_start(&h, false, false);
    h_server(&h, "220 mx\n", false);
    h_server(&h, "250-mx\n250 PIPELINING\n", false);
    assert_int_equal(h.next, SP_SMTP_CLIENT_IDLE);
    h_send(&h, "m\r\n", false);
    assert_int_equal(h_server(&h, "421 4.7.0 closing, too many\r\n", false),
                     SP_SMTP_CLIENT_SENT);
    assert_int_equal(sp_smtp_client_result_for(h.client, 0)->code, 421);
    assert_int_equal(sp_smtp_client_result_for(h.client, 0)->class,
                     SP_SMTP_CLASS_RATE_LIMITED);
    assert_non_null(sp_smtp_client_failure(h.client));
    assert_int_equal(h_send(&h, "m\r\n", false), SP_SMTP_CLIENT_SENT);
    assert_true(sp_smtp_client_result_for(h.client, 0)->local);
    h_end(&h);
}

static void
bad_options_are_refused(void **state)
{
    sp_smtp_client_options options = {.helo = "has space"};
    sp_smtp_client *client = NULL;
    sp_error err;

    (void)state;
    assert_int_equal(sp_smtp_client_new(&options, &client, &err), SP_EINVAL);
    options.helo = "";
    assert_int_equal(sp_smtp_client_new(&options, &client, &err), SP_EINVAL);
    assert_null(client);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pipelined_transaction_and_results),
        cmocka_unit_test(one_step_at_a_time_without_pipelining),
        cmocka_unit_test(pipelined_refusals_reach_every_recipient),
        cmocka_unit_test(starttls_then_ehlo_again),
        cmocka_unit_test(required_tls_missing_ends_the_session),
        cmocka_unit_test(nothing_is_downgraded),
        cmocka_unit_test(bare_line_ends_are_refused),
        cmocka_unit_test(hostile_replies_are_never_delivered),
        cmocka_unit_test(helo_when_ehlo_is_refused),
        cmocka_unit_test(broken_or_closing_servers),
        cmocka_unit_test(bad_options_are_refused),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
