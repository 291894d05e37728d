/*
 * test_smtp_server.c: the SMTP submission server engine (src/smtp/),
 * driven byte by byte without sockets.
 *
 * A harness plays the owner: it feeds client octets, collects the
 * replies, records each finished message and answers it with "250 2.0.0
 * Queued as Q<n>" unless a test holds it.  Replies are compared byte for
 * byte.  The smuggling probes (cases/BR-013), the mixed line endings
 * (cases/BR-012) and the STARTTLS injection (cases/BR-014) come from
 * tests/data.
 */
#include "testlib.h"

#include "smtp/smtp_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOST     "mx.example.org"
#define GREETING "220 " HOST " ESMTP\r\n"
#define EHLO_HEAD                                                              \
    "250-" HOST "\r\n"                                                         \
    "250-PIPELINING\r\n"                                                       \
    "250-SIZE 10485760\r\n"                                                    \
    "250-8BITMIME\r\n"                                                         \
    "250-SMTPUTF8\r\n"                                                         \
    "250-ENHANCEDSTATUSCODES\r\n"
#define EHLO_REPLY EHLO_HEAD "250-CHUNKING\r\n250 AUTH PLAIN LOGIN\r\n"
#define SENDER_OK  "250 2.1.0 Sender OK\r\n"
#define RCPT_OK    "250 2.1.5 Recipient OK\r\n"
#define GO_AHEAD   "354 End data with <CR><LF>.<CR><LF>\r\n"
#define QUEUED1    "250 2.0.0 Queued as Q1\r\n"
#define QUEUED2    "250 2.0.0 Queued as Q2\r\n"
#define BYE        "221 2.0.0 " HOST " closing connection\r\n"
#define BARE                                                                   \
    "550 5.6.11 Message refused: bare CR or LF in the data; end every "        \
    "line with CRLF\r\n"
#define NUL_OCTET                                                              \
    "550 5.6.0 Message refused: NUL octet in the data; encode binary "         \
    "content\r\n"
#define TOO_BIG "552 5.3.4 Message size exceeds the limit of 100 octets\r\n"

/* A byte string grown with the C library, so the failing allocator that
 * tests the engine never fails the harness. */
typedef struct bytes {
    char *data;
    size_t len;
} bytes;

static void
bytes_set(bytes *b, const char *data, size_t len)
{
    b->data = realloc(b->data, len + 1);
    assert_non_null(b->data);
    memcpy(b->data, data, len);
    b->data[len] = '\0';
    b->len = len;
}

/* The owner: callbacks, what they saw, and the engine's output. */
typedef struct harness {
    sp_smtp_session *session; /* the engine under test */
    sp_buf out;               /* replies not yet checked */
    sp_smtp_next next;        /* what the last call returned */
    bool hold;                /* leave finished messages waiting */
    bool inline_verdict;      /* answer inside the message callback */
    int messages;             /* message callbacks so far */
    int queued;               /* messages answered 250 by the harness */
    bytes data;               /* the last message's data */
    char envelope[1024];      /* the last message's envelope, as text */
    char rcpt_text[64];       /* text of the RCPT refusal, if set */
} harness;

static bool
cb_authenticate(void *arg, const char *user, const char *password,
                char *identity, size_t size)
{
    (void)arg;
    if (strcmp(user, "alice") != 0 || strcmp(password, "secret") != 0)
        return false;
    snprintf(identity, size, "alice@example.com");
    return true;
}

static void
cb_mail(void *arg, const sp_smtp_envelope *envelope, sp_smtp_reply *reply)
{
    (void)arg;
    if (strcmp(envelope->sender, "refused@example.com") == 0)
        sp_smtp_reply_set(reply, 550, "5.7.1", "Sender %s refused",
                          envelope->sender);
}

static void
cb_rcpt(void *arg, const sp_smtp_envelope *envelope, const char *recipient,
        sp_smtp_reply *reply)
{
    harness *h = arg;

    (void)envelope;
    if (strncmp(recipient, "nobody@", 7) == 0)
        sp_smtp_reply_set(reply, 550, "5.1.1", "%s",
                          h->rcpt_text[0] ? h->rcpt_text : "No such user");
}

static void
cb_message(void *arg, const sp_smtp_envelope *e, const sp_buf *data)
{
    harness *h = arg;
    int n;

    h->messages++;
    assert_non_null(data->data);
    bytes_set(&h->data, data->data, data->len);
    n = snprintf(h->envelope, sizeof(h->envelope), "from=<%s> to=", e->sender);
    for (size_t i = 0; i < e->recipient_count; i++)
        n += snprintf(h->envelope + n, sizeof(h->envelope) - (size_t)n,
                      "%s<%s>", i ? "," : "", e->recipients[i]);
    snprintf(h->envelope + n, sizeof(h->envelope) - (size_t)n,
             " 8bit=%d utf8=%d helo=%s id=%s tls=%d", e->eightbit, e->smtputf8,
             e->helo, e->identity, e->tls);

    /* An owner that stores synchronously answers right here. */
    if (h->inline_verdict) {
        sp_smtp_reply reply;
        sp_buf unused = SP_BUF_INIT;

        sp_smtp_reply_set(&reply, 250, "2.0.0", "Stored inline %d",
                          h->messages);
        assert_int_equal(sp_smtp_session_done(h->session, &reply, &unused),
                         SP_SMTP_READ);
        assert_null(unused.data);
    }
}

static const sp_smtp_limits default_limits = {
    .max_message = 10485760,
    .max_recipients = 100,
    .max_command = 512,
    .max_text_line = 1000,
    .max_errors = 10,
};

static const sp_smtp_context default_context = {
    .hostname = HOST,
    .client_ip = "192.0.2.7",
    .auth_allowed = true,
};

/* Answer every waiting message, as the owner would once it is stored. */
static void
h_settle(harness *h)
{
    while (h->next == SP_SMTP_WAIT && !h->hold) {
        sp_smtp_reply reply;

        sp_smtp_reply_set(&reply, 250, "2.0.0", "Queued as Q%d", ++h->queued);
        h->next = sp_smtp_session_done(h->session, &reply, &h->out);
    }
}

/* Recipients that take mail without AUTH: those at "reports.". */
static bool
cb_open_recipient(void *arg, const char *recipient)
{
    (void)arg;
    return strstr(recipient, "@reports.") != NULL;
}

/* Sessions started from now on have cb_open_recipient. */
static bool h_open_recipients;

static void
h_start(harness *h, const sp_smtp_limits *limits,
        const sp_smtp_context *context)
{
    sp_smtp_callbacks callbacks = {
        .arg = h,
        .authenticate = cb_authenticate,
        .mail = cb_mail,
        .rcpt = cb_rcpt,
        .message = cb_message,
        .open_recipient = h_open_recipients ? cb_open_recipient : NULL,
    };
    sp_error err;

    memset(h, 0, sizeof(*h));
    assert_int_equal(sp_smtp_session_new(limits ? limits : &default_limits,
                                         context ? context : &default_context,
                                         &callbacks, &h->session, &h->out,
                                         &err),
                     SP_OK);
    h->next = SP_SMTP_READ;
}

static void
h_end(harness *h)
{
    sp_smtp_session_free(h->session);
    sp_buf_free(&h->out);
    free(h->data.data);
}

static void
h_feed(harness *h, const void *data, size_t len)
{
    h->next = sp_smtp_session_input(h->session, data, len, &h->out);
    h_settle(h);
}

/* The replies so far must be expected, byte for byte; then forget them. */
static void
h_expect(harness *h, const char *expected)
{
    const char *got = h->out.data ? h->out.data : "";

    if (strcmp(got, expected) != 0)
        fail_msg("replies differ\n--- expected\n%s--- got\n%s---", expected,
                 got);
    sp_buf_reset(&h->out);
}

/* Send input, then check the replies to it. */
static void
h_talk(harness *h, const char *input, const char *expected)
{
    h_feed(h, input, strlen(input));
    h_expect(h, expected);
}

/* A session past the greeting and EHLO. */
static void
h_ready(harness *h, const sp_smtp_limits *limits,
        const sp_smtp_context *context)
{
    h_start(h, limits, context);
    h_expect(h, GREETING);
    h_feed(h, "EHLO client.example.com\r\n", 25);
    sp_buf_reset(&h->out);
}

/* ------------------------------------------------------------------ */

static void
full_transaction_is_byte_exact(void **state)
{
    harness h;

    (void)state;
    h_start(&h, NULL, NULL);
    h_expect(&h, GREETING);
    h_talk(&h, "EHLO client.example.com\r\n", EHLO_REPLY);
    h_talk(&h, "MAIL FROM:<alice@example.com> BODY=8BITMIME SIZE=120\r\n",
           SENDER_OK);
    h_talk(&h, "RCPT TO:<bob@example.net>\r\n", RCPT_OK);
    h_talk(&h, "RCPT TO:<carol@example.net>\r\n", RCPT_OK);
    h_talk(&h, "DATA\r\n", GO_AHEAD);
    h_talk(&h, "Subject: hi\r\n\r\n..leading dot\r\n.\r\n", QUEUED1);
    assert_int_equal(h.messages, 1);
    assert_string_equal(h.data.data, "Subject: hi\r\n\r\n.leading dot\r\n");
    assert_string_equal(h.envelope,
                        "from=<alice@example.com> to=<bob@example.net>,"
                        "<carol@example.net> 8bit=1 utf8=0 "
                        "helo=client.example.com id= tls=0");
    h_talk(&h, "QUIT\r\n", BYE);
    assert_int_equal(h.next, SP_SMTP_CLOSE);
    h_end(&h);
}

static void
pipelined_transactions_are_answered_in_order(void **state)
{
    harness h;

    (void)state;
    h_ready(&h, NULL, NULL);
    h.hold = true;
    h_talk(&h,
           "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\n"
           "RCPT TO:<nobody@example.net>\r\nDATA\r\nfirst\r\n.\r\n"
           "MAIL FROM:<c@example.com>\r\nRCPT TO:<d@example.net>\r\n"
           "DATA\r\nsecond\r\n.\r\nNOOP\r\n",
           SENDER_OK RCPT_OK "550 5.1.1 No such user\r\n" GO_AHEAD);

    /* The first message waits; what follows is kept, not read. */
    assert_int_equal(h.next, SP_SMTP_WAIT);
    assert_int_equal(h.messages, 1);
    assert_string_equal(h.data.data, "first\r\n");
    h_talk(&h, "QUIT\r\n", "");
    assert_int_equal(h.next, SP_SMTP_WAIT);
    assert_int_equal(sp_smtp_session_timeout(h.session), 600);

    /* Each verdict releases the commands behind its message. */
    h.hold = false;
    h_settle(&h);
    h_expect(&h,
             QUEUED1 SENDER_OK RCPT_OK GO_AHEAD QUEUED2 "250 2.0.0 OK\r\n" BYE);
    assert_int_equal(h.messages, 2);
    assert_string_equal(h.data.data, "second\r\n");
    assert_string_equal(h.envelope, "from=<c@example.com> to=<d@example.net> "
                                    "8bit=0 utf8=0 helo=client.example.com "
                                    "id= tls=0");
    assert_int_equal(h.next, SP_SMTP_CLOSE);
    h_end(&h);
}

static void
verdict_inside_the_callback_goes_on_reading(void **state)
{
    harness h;

    (void)state;
    h_ready(&h, NULL, NULL);
    h.inline_verdict = true;
    h_talk(&h,
           "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\n"
           "DATA\r\none\r\n.\r\nMAIL FROM:<c@example.com>\r\n"
           "RCPT TO:<d@example.net>\r\nBDAT 5 LAST\r\ntwo\r\nQUIT\r\n",
           SENDER_OK RCPT_OK GO_AHEAD
           "250 2.0.0 Stored inline 1\r\n" SENDER_OK RCPT_OK
           "250 2.0.0 Stored inline 2\r\n" BYE);
    assert_int_equal(h.messages, 2);
    assert_int_equal(h.next, SP_SMTP_CLOSE);
    h_end(&h);
}

static void
dot_stuffing_is_undone_only_at_line_starts(void **state)
{
    harness h;

    (void)state;
    h_ready(&h, NULL, NULL);
    h_talk(&h, "MAIL FROM:<>\r\nRCPT TO:<Postmaster>\r\nDATA\r\n",
           SENDER_OK RCPT_OK GO_AHEAD);
    h_talk(&h, ".\r\n", QUEUED1);
    assert_int_equal(h.data.len, 0);
    assert_string_equal(h.envelope, "from=<> to=<Postmaster> 8bit=0 utf8=0 "
                                    "helo=client.example.com id= tls=0");

    h_talk(&h,
           "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\n"
           "DATA\r\n",
           SENDER_OK RCPT_OK GO_AHEAD);
    h_talk(&h, "..\r\n...\r\na.b\r\n. x\r\n.\r\n", QUEUED2);
    assert_string_equal(h.data.data, ".\r\n..\r\na.b\r\n x\r\n");
    h_end(&h);
}

/* ------------------------------------------------------------------ */

static const char *const probes[] = {
    "client-01-lf-dot-lf",        "client-02-lf-dot-cr",
    "client-03-cr-dot-lf",        "client-04-cr-dot-cr",
    "client-05-lf-dot-crlf",      "client-06-cr-dot-crlf",
    "client-07-crlf-dot-lf",      "client-08-crlf-nul-dot-crlf",
    "client-09-crlf-dot-cr-crlf", "client-10-cr-crlf-dot-cr-crlf",
};

static void
read_case(const char *probe, const char *ext, sp_buf *buf)
{
    char path[256];

    snprintf(path, sizeof(path), "cases/BR-013/%s.%s", probe, ext);
    testlib_read(path, buf);
}

/* Whether every CR is followed by LF and every LF preceded by CR. */
static bool
only_crlf(const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\r' && (i + 1 == len || data[i + 1] != '\n'))
            return false;
        if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
            return false;
    }
    return true;
}

/*
 * One probe as the case's harness convention says: commands line by
 * line, the data in one write, exactly one reply, then QUIT.
 */
static void
run_probe(const char *probe, bool normalize)
{
    static const char *const replies[] = {EHLO_REPLY, SENDER_OK, RCPT_OK,
                                          GO_AHEAD};
    sp_smtp_limits limits = default_limits;
    sp_buf commands = SP_BUF_INIT, data = SP_BUF_INIT, after = SP_BUF_INIT;
    bool nul = strstr(probe, "nul") != NULL;
    const char *line;
    harness h;

    limits.normalize_eol = normalize;
    read_case(probe, "commands", &commands);
    read_case(probe, "data", &data);
    read_case(probe, "after", &after);
    h_start(&h, &limits, NULL);
    h_expect(&h, GREETING);

    line = commands.data;
    for (size_t i = 0; i < 4; i++) {
        const char *end = strstr(line, "\r\n");

        assert_non_null(end);
        h_feed(&h, line, (size_t)(end + 2 - line));
        h_expect(&h, replies[i]);
        line = end + 2;
    }

    /* Exactly one reply to the whole data, and at most one message. */
    h_feed(&h, data.data, data.len);
    if (nul || !normalize) {
        h_expect(&h, nul ? NUL_OCTET : BARE);
        assert_int_equal(h.messages, 0);
    } else {
        h_expect(&h, QUEUED1);
        assert_int_equal(h.messages, 1);
        assert_true(only_crlf(h.data.data, h.data.len));
        assert_true(strncmp(h.data.data, "From: Alice Example", 19) == 0);
        assert_non_null(strstr(h.data.data, "\r\nMAIL FROM:<ceo@example.com>"
                                            "\r\n"));
        assert_non_null(strstr(h.data.data, "smuggled second message\r\n"
                                            "\r\n"));
    }
    h_feed(&h, after.data, after.len);
    h_expect(&h, BYE);
    assert_int_equal(h.next, SP_SMTP_CLOSE);
    assert_true(h.messages <= 1);

    h_end(&h);
    sp_buf_free(&commands);
    sp_buf_free(&data);
    sp_buf_free(&after);
}

static void
smuggling_probes_are_refused_by_default(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
        run_probe(probes[i], false);
}

static void
smuggling_probes_stay_one_message_when_normalizing(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
        run_probe(probes[i], true);
}

/* A probe's sequence fed one octet at a time gives the same verdict. */
static void
smuggling_verdict_does_not_depend_on_chunking(void **state)
{
    sp_buf data = SP_BUF_INIT;
    harness h;

    (void)state;
    read_case(probes[4], "data", &data);
    h_ready(&h, NULL, NULL);
    h_talk(&h,
           "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\n"
           "DATA\r\n",
           SENDER_OK RCPT_OK GO_AHEAD);
    for (size_t i = 0; i < data.len; i++)
        h_feed(&h, data.data + i, 1);
    h_expect(&h, BARE);
    assert_int_equal(h.messages, 0);
    h_end(&h);
    sp_buf_free(&data);
}

static void
bare_lf_normalization_matches_br012(void **state)
{
    sp_smtp_limits limits = default_limits;
    sp_buf input = SP_BUF_INIT, expected = SP_BUF_INIT;
    harness h;

    (void)state;
    testlib_read("cases/BR-012/input-mixed-eol.eml", &input);
    testlib_read("cases/BR-012/expected-normalized.eml", &expected);

    /* Normalizing: the stored bytes are the expected file exactly. */
    limits.normalize_eol = true;
    h_ready(&h, &limits, NULL);
    h_talk(&h,
           "MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.net>"
           "\r\nDATA\r\n",
           SENDER_OK RCPT_OK GO_AHEAD);
    h_feed(&h, input.data, input.len);
    h_talk(&h, ".\r\n", QUEUED1);
    assert_int_equal(h.data.len, expected.len);
    assert_memory_equal(h.data.data, expected.data, expected.len);
    h_end(&h);

    /* By default the same message is refused after its end. */
    h_ready(&h, NULL, NULL);
    h_talk(&h,
           "MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.net>"
           "\r\nDATA\r\n",
           SENDER_OK RCPT_OK GO_AHEAD);
    h_feed(&h, input.data, input.len);
    h_talk(&h, ".\r\nNOOP\r\n", BARE "250 2.0.0 OK\r\n");
    assert_int_equal(h.messages, 0);
    h_end(&h);
    sp_buf_free(&input);
    sp_buf_free(&expected);
}

static void
starttls_discards_pipelined_plaintext(void **state)
{
    sp_smtp_context context = default_context;
    harness h;

    (void)state;
    context.tls_available = true;
    context.auth_allowed = false;
    h_start(&h, NULL, &context);
    h_expect(&h, GREETING);
    h_talk(&h, "EHLO client.example.com\r\n",
           EHLO_HEAD "250-CHUNKING\r\n250 STARTTLS\r\n");
    h_talk(&h, "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n",
           "538 5.7.11 Encryption required for requested authentication "
           "mechanism; send STARTTLS first\r\n");

    /* cases/BR-014: one write, STARTTLS and an injected command. */
    h_talk(&h, "STARTTLS\r\nMAIL FROM:<injected@example.net>\r\n",
           "220 2.0.0 Ready to start TLS\r\n");
    assert_int_equal(h.next, SP_SMTP_STARTTLS);
    h_talk(&h, "RCPT TO:<x@example.net>\r\n", "");
    assert_int_equal(h.next, SP_SMTP_STARTTLS);

    /* Inside TLS: a fresh session, no STARTTLS offered, AUTH now is. */
    sp_smtp_session_tls_started(h.session, true);
    h_talk(&h, "NOOP\r\n", "250 2.0.0 OK\r\n");
    h_talk(&h, "MAIL FROM:<a@example.com>\r\n",
           "503 5.5.1 Error: send HELO/EHLO first\r\n");
    h_talk(&h, "EHLO client.example.com\r\n", EHLO_REPLY);
    h_talk(&h, "STARTTLS\r\n", "503 5.5.1 Error: TLS already active\r\n");
    h_talk(&h, "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n",
           "235 2.7.0 Authentication successful\r\n");
    h_talk(&h,
           "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\n"
           "DATA\r\nx\r\n.\r\n",
           SENDER_OK RCPT_OK GO_AHEAD QUEUED1);
    assert_string_equal(h.envelope,
                        "from=<a@example.com> to=<b@example.net> 8bit=0 "
                        "utf8=0 helo=client.example.com "
                        "id=alice@example.com tls=1");
    h_end(&h);
}

/* ------------------------------------------------------------------ */

static void
bdat_chunks_make_one_message(void **state)
{
    harness h;

    (void)state;
    h_ready(&h, NULL, NULL);

    /* One chunk; its content is not dot-unstuffed and does not end. */
    h_talk(&h,
           "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\n"
           "BDAT 11 LAST\r\nab\r\n.\r\n..\r\n",
           SENDER_OK RCPT_OK QUEUED1);
    assert_int_equal(h.data.len, 11);
    assert_memory_equal(h.data.data, "ab\r\n.\r\n..\r\n", 11);

    /* Several chunks pipelined, a CRLF split between two of them. */
    h_talk(&h,
           "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\n"
           "BDAT 4\r\nabc\rBDAT 5\r\n\nde\r\nBDAT 0 LAST\r\nNOOP\r\n",
           SENDER_OK RCPT_OK "250 2.0.0 4 octets received\r\n"
                             "250 2.0.0 5 octets received\r\n" QUEUED2
                             "250 2.0.0 OK\r\n");
    assert_string_equal(h.data.data, "abc\r\nde\r\n");
    assert_int_equal(h.messages, 2);
    h_end(&h);
}

static void
bdat_last_zero_and_missing_final_crlf(void **state)
{
    harness h;

    (void)state;
    h_ready(&h, NULL, NULL);
    h_talk(&h,
           "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\n"
           "BDAT 0 LAST\r\n",
           SENDER_OK RCPT_OK QUEUED1);
    assert_int_equal(h.data.len, 0);

    /* A last line without CRLF gets one. */
    h_talk(&h,
           "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\n"
           "BDAT 7 last\r\nSubj: x",
           SENDER_OK RCPT_OK QUEUED2);
    assert_string_equal(h.data.data, "Subj: x\r\n");
    h_end(&h);
}

static void
bdat_sequence_errors_keep_the_stream_in_step(void **state)
{
    sp_smtp_limits limits = default_limits;
    harness h;

    (void)state;
    h_ready(&h, NULL, NULL);

    /* Chunks outside a transaction are read, never run as commands. */
    h_talk(&h, "BDAT 6\r\nQUIT\r\nNOOP\r\n",
           "503 5.5.1 Error: need MAIL command\r\n250 2.0.0 OK\r\n");
    h_talk(&h, "BDAT 6 LAST X\r\n", "501 5.5.4 Syntax: BDAT count [LAST]\r\n");
    h_talk(&h, "BDAT\r\n", "501 5.5.4 Syntax: BDAT count [LAST]\r\n");
    h_talk(&h, "BDAT 99999999999999999999999\r\n",
           "501 5.5.4 Syntax: BDAT count [LAST]\r\n");
    h_talk(&h, "MAIL FROM:<a@example.com>\r\nBDAT 2\r\nxy",
           SENDER_OK "503 5.5.1 Error: need RCPT command\r\n");
    h_talk(&h, "RCPT TO:<nobody@example.net>\r\nBDAT 2\r\nxy",
           "550 5.1.1 No such user\r\n"
           "554 5.5.1 Error: no valid recipients\r\n");

    /* DATA and RCPT cannot join a BDAT transaction; RSET ends it. */
    h_talk(&h,
           "RCPT TO:<b@example.net>\r\nBDAT 3\r\nabcDATA\r\n"
           "RCPT TO:<c@example.net>\r\nRSET\r\nBDAT 1 LAST\r\nz",
           RCPT_OK "250 2.0.0 3 octets received\r\n"
                   "503 5.5.1 Error: DATA after BDAT\r\n"
                   "503 5.5.1 Error: RCPT after BDAT\r\n250 2.0.0 OK\r\n"
                   "503 5.5.1 Error: need MAIL command\r\n");
    assert_int_equal(h.messages, 0);
    h_end(&h);

    /* A refused chunk ends the transaction; pipelined ones are skipped. */
    limits.max_errors = 100;
    h_ready(&h, &limits, NULL);
    h_talk(&h,
           "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\n"
           "BDAT 4\r\nab\ncBDAT 2 LAST\r\nxyRSET\r\nBDAT 1\r\nx",
           SENDER_OK RCPT_OK BARE
           "503 5.5.1 Error: an earlier chunk was refused; send RSET\r\n"
           "250 2.0.0 OK\r\n503 5.5.1 Error: need MAIL command\r\n");
    assert_int_equal(h.messages, 0);
    h_end(&h);
}

static void
bdat_bare_cr_is_normalized_across_chunks(void **state)
{
    sp_smtp_limits limits = default_limits;
    harness h;

    (void)state;
    limits.normalize_eol = true;
    h_ready(&h, &limits, NULL);
    h_talk(&h,
           "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\n"
           "BDAT 3\r\na\r\rBDAT 4 LAST\r\nb\nc\r",
           SENDER_OK RCPT_OK "250 2.0.0 3 octets received\r\n" QUEUED1);
    assert_string_equal(h.data.data, "a\r\n\r\nb\r\nc\r\n");
    h_end(&h);
}

/* ------------------------------------------------------------------ */

static void
size_is_refused_at_mail_and_after_data(void **state)
{
    sp_smtp_limits limits = default_limits;
    char big[160];
    size_t before;
    harness h;

    (void)state;
    limits.max_message = 100;
    h_ready(&h, &limits, NULL);
    h_talk(&h, "MAIL FROM:<a@example.com> SIZE=101\r\n", TOO_BIG);
    h_talk(&h, "MAIL FROM:<a@example.com> SIZE=99999999999999999999\r\n",
           TOO_BIG);
    h_talk(&h, "MAIL FROM:<a@example.com> SIZE=100\r\n", SENDER_OK);
    h_talk(&h, "RCPT TO:<b@example.net>\r\nDATA\r\n", RCPT_OK GO_AHEAD);

    /* The data is read to its end but never kept past the limit. */
    before = smtp__server_memory(h.session);
    memset(big, 'x', sizeof(big));
    for (int i = 0; i < 3; i++) {
        h_feed(&h, big, 50);
        h_feed(&h, "\r\n", 2);
    }
    assert_int_equal(smtp__server_memory(h.session), before);
    h_talk(&h, ".\r\n", TOO_BIG);

    /* Exactly the limit passes. */
    h_talk(&h,
           "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\n"
           "DATA\r\n",
           SENDER_OK RCPT_OK GO_AHEAD);
    for (int i = 0; i < 2; i++) {
        h_feed(&h, big, 48);
        h_feed(&h, "\r\n", 2);
    }
    h_talk(&h, ".\r\n", QUEUED1);
    assert_int_equal(h.data.len, 100);

    /* A chunk over the limit is read to stay in step, then refused. */
    h_talk(&h,
           "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\n"
           "BDAT 150 LAST\r\n",
           SENDER_OK RCPT_OK);
    h_feed(&h, big, 150);
    h_talk(&h, "NOOP\r\n", TOO_BIG "250 2.0.0 OK\r\n");
    assert_int_equal(h.messages, 1);
    h_end(&h);
}

static void
too_many_recipients_get_452(void **state)
{
    sp_smtp_limits limits = default_limits;
    harness h;

    (void)state;
    limits.max_recipients = 2;
    h_ready(&h, &limits, NULL);
    h_talk(&h,
           "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\n"
           "RCPT TO:<c@example.net>\r\nRCPT TO:<d@example.net>\r\n"
           "DATA\r\nx\r\n.\r\n",
           SENDER_OK RCPT_OK RCPT_OK
           "452 4.5.3 Too many recipients\r\n" GO_AHEAD QUEUED1);
    assert_string_equal(h.envelope, "from=<a@example.com> to=<b@example.net>,"
                                    "<c@example.net> 8bit=0 utf8=0 "
                                    "helo=client.example.com id= tls=0");
    h_end(&h);
}

static void
overlong_command_lines_are_refused_and_skipped(void **state)
{
    char line[700];
    harness h;

    (void)state;
    h_ready(&h, NULL, NULL);

    /* 512 octets with CRLF pass; 513 do not, and the tail is skipped. */
    memset(line, 'x', sizeof(line));
    memcpy(line, "NOOP ", 5);
    memcpy(line + 510, "\r\n", 2);
    h_feed(&h, line, 512);
    h_expect(&h, "250 2.0.0 OK\r\n");
    memcpy(line + 511, "\r\n", 2);
    h_feed(&h, line, 513);
    h_expect(&h, "500 5.5.6 Error: line too long (over 512 octets with "
                 "CRLF)\r\n");

    /* In pieces: the refusal comes once, the tail's QUIT is not run. */
    memset(line, 'x', sizeof(line));
    memcpy(line + 600, "QUIT\r\nNOOP\r\n", 12);
    h_feed(&h, line, 300);
    h_feed(&h, line + 300, 300);
    h_expect(&h, "500 5.5.6 Error: line too long (over 512 octets with "
                 "CRLF)\r\n");
    h_feed(&h, line + 600, 12);
    h_expect(&h, "250 2.0.0 OK\r\n");
    assert_int_equal(h.next, SP_SMTP_READ);
    h_end(&h);
}

static void
overlong_text_lines_refuse_the_message(void **state)
{
    char line[1100];
    harness h;

    (void)state;
    h_ready(&h, NULL, NULL);
    memset(line, 'y', sizeof(line));
    memcpy(line + 998, "\r\n", 2);
    h_talk(&h,
           "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\n"
           "DATA\r\n",
           SENDER_OK RCPT_OK GO_AHEAD);
    h_feed(&h, line, 1000);
    h_talk(&h, ".\r\n", QUEUED1);

    /* One octet more, for a dot-stuffed line counts its dot. */
    h_talk(&h,
           "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\n"
           "DATA\r\n",
           SENDER_OK RCPT_OK GO_AHEAD);
    memset(line, 'y', sizeof(line));
    line[0] = '.';
    h_feed(&h, line, 999);
    h_feed(&h, "\r\n.\r\nNOOP\r\n", 11);
    h_expect(&h, "500 5.5.6 Message refused: line too long (over 1000 octets "
                 "with CRLF); wrap it or encode the body\r\n250 2.0.0 OK\r\n");
    assert_int_equal(h.messages, 1);
    h_end(&h);
}

static void
bare_lf_in_commands_depends_on_the_policy(void **state)
{
    sp_smtp_limits limits = default_limits;
    harness h;

    (void)state;
    h_ready(&h, NULL, NULL);
    h_talk(&h, "NOOP\n",
           "500 5.5.2 Line ends with a bare LF; end lines "
           "with CRLF\r\n");
    h_talk(&h, "NO\rOP\r\n",
           "500 5.5.2 Control character in command "
           "line\r\n");
    h_end(&h);

    limits.normalize_eol = true;
    h_ready(&h, &limits, NULL);
    h_talk(&h, "NOOP\nRSET\n", "250 2.0.0 OK\r\n250 2.0.0 OK\r\n");
    h_end(&h);
}

static void
too_many_errors_close_the_session(void **state)
{
    sp_smtp_limits limits = default_limits;
    harness h;

    (void)state;
    limits.max_errors = 3;
    h_ready(&h, &limits, NULL);
    h_talk(&h, "FOO\r\nRCPT TO:<a@example.com>\r\nNOOP\r\nBAR\r\nNOOP\r\n",
           "500 5.5.2 Error: command not recognized\r\n"
           "503 5.5.1 Error: need MAIL command\r\n250 2.0.0 OK\r\n"
           "500 5.5.2 Error: command not recognized\r\n"
           "421 4.7.0 " HOST " Too many errors; closing the connection\r\n");
    assert_int_equal(h.next, SP_SMTP_CLOSE);
    h_talk(&h, "NOOP\r\n", "");
    assert_int_equal(h.next, SP_SMTP_CLOSE);
    assert_int_equal(sp_smtp_session_timeout(h.session), 0);
    h_end(&h);
}

/* ------------------------------------------------------------------ */

static void
auth_plain_and_login_succeed_fail_and_cancel(void **state)
{
    harness h;

    (void)state;
    h_ready(&h, NULL, NULL);
    h_talk(&h, "AUTH PLAIN AGFsaWNlAHdyb25n\r\n",
           "535 5.7.8 Authentication credentials invalid\r\n");
    h_talk(&h, "AUTH PLAIN\r\n*\r\n",
           "334 \r\n501 5.7.0 Authentication cancelled\r\n");
    h_talk(&h, "AUTH PLAIN\r\nnot base64!\r\n",
           "334 \r\n501 5.5.2 Cannot decode the response; send base64\r\n");
    h_talk(&h, "AUTH PLAIN AGFsaWNl\r\n",
           "501 5.5.2 Malformed PLAIN response; send authzid NUL user NUL "
           "password\r\n");
    h_talk(&h, "AUTH PLAIN Ym9iAGFsaWNlAHNlY3JldA==\r\n",
           "535 5.7.8 Authentication credentials invalid\r\n");
    h_talk(&h, "AUTH PLAIN AGFsCmljZQBzZWNyZXQ=\r\n",
           "535 5.7.8 Authentication credentials invalid\r\n");
    h_talk(&h, "AUTH CRAM-MD5\r\n",
           "504 5.5.4 Unrecognized authentication type\r\n");
    h_talk(&h, "AUTH LOGIN\r\nYWxpY2U=\r\nd3Jvbmc=\r\n",
           "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n"
           "535 5.7.8 Authentication credentials invalid\r\n");
    h_talk(&h, "AUTH LOGIN YWxpY2U=\r\n*\r\n",
           "334 UGFzc3dvcmQ6\r\n501 5.7.0 Authentication cancelled\r\n");
    h_talk(&h, "AUTH LOGIN\r\nYWxpY2U=\r\nc2VjcmV0\r\n",
           "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n"
           "235 2.7.0 Authentication successful\r\n");
    h_talk(&h, "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n",
           "503 5.5.1 Error: already authenticated\r\n");
    h_end(&h);

    /* PLAIN after a 334, with the authorization identity equal. */
    h_ready(&h, NULL, NULL);
    h_talk(&h, "MAIL FROM:<a@example.com>\r\nAUTH PLAIN\r\nRSET\r\n",
           SENDER_OK "503 5.5.1 Error: MAIL transaction in progress\r\n"
                     "250 2.0.0 OK\r\n");
    h_talk(&h, "AUTH LOGIN\r\nYWxpY2U=\r\n=\r\nAUTH PLAIN =\r\n",
           "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n"
           "535 5.7.8 Authentication credentials invalid\r\n"
           "501 5.5.2 Malformed PLAIN response; send authzid NUL user NUL "
           "password\r\n");
    h_talk(&h, "AUTH PLAIN\r\nYWxpY2UAYWxpY2UAc2VjcmV0\r\n",
           "334 \r\n235 2.7.0 Authentication successful\r\n");
    h_end(&h);
}

static void
auth_policy_is_enforced(void **state)
{
    sp_smtp_context context = default_context;
    harness h;

    (void)state;
    context.auth_required = true;
    h_ready(&h, NULL, &context);
    h_talk(&h, "MAIL FROM:<a@example.com>\r\n",
           "530 5.7.0 Authentication required; send AUTH with an API "
           "key\r\n");
    h_talk(&h,
           "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"
           "MAIL FROM:<a@example.com> AUTH=<>\r\n",
           "235 2.7.0 Authentication successful\r\n" SENDER_OK);
    h_end(&h);

    /* Not allowed here and no TLS to get it from: 503. */
    context.auth_allowed = false;
    context.auth_required = false;
    h_start(&h, NULL, &context);
    h_expect(&h, GREETING);
    h_talk(&h, "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n",
           "503 5.5.1 Error: send EHLO first\r\n");
    h_talk(&h, "HELO client.example.com\r\n", "250 " HOST "\r\n");
    h_talk(&h, "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n",
           "503 5.5.1 Error: authentication not enabled\r\n");
    h_talk(&h, "MAIL FROM:<a@example.com> AUTH=<>\r\n",
           "555 5.5.4 Unsupported MAIL parameter AUTH\r\n");
    h_end(&h);
}

/* Open recipients: MAIL before AUTH, then only they are taken. */
static void
open_recipients_need_no_auth(void **state)
{
    sp_smtp_context context = default_context;
    harness h;

    (void)state;
    context.auth_required = true;
    h_open_recipients = true;
    h_ready(&h, NULL, &context);
    h_open_recipients = false;
    h_talk(&h,
           "MAIL FROM:<rx@receiver.example>\r\n"
           "RCPT TO:<bob@example.net>\r\n"
           "RCPT TO:<dmarc@reports.example.com>\r\n"
           "DATA\r\nreport\r\n.\r\n",
           SENDER_OK
           "530 5.7.0 Authentication required for this recipient\r\n" RCPT_OK
           "354 End data with <CR><LF>.<CR><LF>\r\n"
           "250 2.0.0 Queued as Q1\r\n");
    assert_string_equal(h.envelope,
                        "from=<rx@receiver.example> "
                        "to=<dmarc@reports.example.com> 8bit=0 utf8=0 "
                        "helo=client.example.com id= tls=0");

    /* After AUTH every recipient is taken. */
    h_talk(&h,
           "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"
           "MAIL FROM:<a@example.com>\r\nRCPT TO:<bob@example.net>\r\n",
           "235 2.7.0 Authentication successful\r\n" SENDER_OK RCPT_OK);
    h_end(&h);
}

/* ------------------------------------------------------------------ */

static const struct exchange {
    const char *input;    /* what the client sends */
    const char *expected; /* the replies, byte for byte */
} syntax_cases[] = {
    {"RCPT TO:<b@example.net>\r\n", "503 5.5.1 Error: need MAIL command\r\n"},
    {"DATA\r\n", "503 5.5.1 Error: need MAIL command\r\n"},
    {"MAIL FROM:a@example.com\r\n", "501 5.1.7 Bad sender address syntax\r\n"},
    {"MAIL TO:<a@example.com>\r\n",
     "501 5.5.4 Syntax: MAIL FROM:<address>\r\n"},
    {"MAIL FROM:<a@example.com> BODY=BINARYMIME\r\n",
     "555 5.5.4 BODY=BINARYMIME is not supported\r\n"},
    {"MAIL FROM:<a@example.com> BODY=9BIT\r\n",
     "501 5.5.4 Bad BODY parameter; use 7BIT or 8BITMIME\r\n"},
    {"MAIL FROM:<a@example.com> RET=FULL\r\n",
     "555 5.5.4 Unsupported MAIL parameter RET\r\n"},
    {"MAIL FROM:<a@example.com> SIZE=12k\r\n",
     "501 5.5.4 Bad SIZE parameter\r\n"},
    {"MAIL FROM:<a@example.com> SIZE=1 SIZE=2\r\n",
     "501 5.5.4 Repeated MAIL parameter SIZE\r\n"},
    {"MAIL FROM:<a@example.com> SMTPUTF8=yes\r\n",
     "501 5.5.4 Bad SMTPUTF8 parameter\r\n"},
    {"MAIL FROM:<j\xc3\xb6rg@example.com>\r\n",
     "553 5.6.7 Non-ASCII address needs the SMTPUTF8 parameter\r\n"},
    {"MAIL FROM:<j\xc3rg@example.com> SMTPUTF8\r\n",
     "501 5.1.7 Bad sender address syntax\r\n"},
    {"MAIL FROM:<a..b@example.com>\r\n",
     "501 5.1.7 Bad sender address syntax\r\n"},
    {"MAIL FROM:<a@-example.com>\r\n",
     "501 5.1.7 Bad sender address syntax\r\n"},
    {"MAIL FROM:<@relay.example,@b.example:\"j d\"@[192.0.2.1]> SMTPUTF8\r\n"
     "RCPT TO:<>\r\nRCPT TO:<postmaster@example.net> NOTIFY=NEVER\r\n"
     "RCPT TO:<b@example.net\r\nRCPT TO:<\xe7\x94\xb0@\xe4\xbe\x8b.jp>\r\n"
     "DATA extra\r\nDATA\r\n",
     SENDER_OK "501 5.1.3 Bad recipient address syntax\r\n"
               "555 5.5.4 RCPT parameters are not supported\r\n"
               "501 5.1.3 Bad recipient address syntax\r\n" RCPT_OK
               "501 5.5.4 Syntax: DATA\r\n" GO_AHEAD},
    {"MAIL FROM:<refused@example.com>\r\nMAIL FROM: <a@example.com>\r\n"
     "MAIL FROM:<a@example.com>\r\nDATA\r\nRCPT TO:<nobody@example.net>\r\n"
     "DATA\r\n",
     "550 5.7.1 Sender refused@example.com refused\r\n" SENDER_OK
     "503 5.5.1 Error: nested MAIL command\r\n"
     "503 5.5.1 Error: need RCPT command\r\n550 5.1.1 No such user\r\n"
     "554 5.5.1 Error: no valid recipients\r\n"},
    {"VRFY\r\nVRFY bob\r\nHELP\r\nEXPN list\r\nfrobnicate\r\n\r\n",
     "501 5.5.4 Syntax: VRFY address\r\n"
     "252 2.0.0 Cannot VRFY user; send the message and delivery will be "
     "attempted\r\n"
     "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY "
     "HELP STARTTLS AUTH\r\n"
     "502 5.5.1 Error: command not implemented\r\n"
     "500 5.5.2 Error: command not recognized\r\n"
     "500 5.5.2 Error: command not recognized\r\n"},
    {"STARTTLS\r\nRSET x\r\nEHLO\r\nnoop  \r\nquit now\r\n",
     "502 5.5.1 Error: STARTTLS not available\r\n501 5.5.4 Syntax: RSET\r\n"
     "501 5.5.4 Syntax: EHLO hostname\r\n250 2.0.0 OK\r\n" BYE},
};

static void
syntax_and_sequence_errors(void **state)
{
    sp_smtp_limits limits = default_limits;
    harness h;

    (void)state;
    limits.max_errors = 100;
    for (size_t i = 0; i < sizeof(syntax_cases) / sizeof(syntax_cases[0]);
         i++) {
        h_ready(&h, &limits, NULL);
        h_talk(&h, syntax_cases[i].input, syntax_cases[i].expected);
        h_end(&h);
    }

    /* A UTF-8 transaction keeps its addresses as given. */
    h_ready(&h, NULL, NULL);
    h_talk(&h,
           "MAIL FROM:<@a.example:j\xc3\xb6rg@example.com> SMTPUTF8\r\n"
           "RCPT TO:<\xe7\x94\xb0@\xe4\xbe\x8b.jp>\r\nDATA\r\nx\r\n.\r\n",
           SENDER_OK RCPT_OK GO_AHEAD QUEUED1);
    assert_string_equal(h.envelope, "from=<j\xc3\xb6rg@example.com> "
                                    "to=<\xe7\x94\xb0@\xe4\xbe\x8b.jp> 8bit=0 "
                                    "utf8=1 helo=client.example.com id= "
                                    "tls=0");
    h_end(&h);
}

static void
owner_replies_are_checked(void **state)
{
    harness h;

    (void)state;
    h_ready(&h, NULL, NULL);
    snprintf(h.rcpt_text, sizeof(h.rcpt_text), "no\r\n250 fake");
    h_talk(&h, "MAIL FROM:<a@example.com>\r\nRCPT TO:<nobody@example.net>\r\n",
           SENDER_OK "550 5.1.1 no  250 fake\r\n");
    h_end(&h);

    /* A verdict with a bad code or enhanced code is made safe. */
    h_ready(&h, NULL, NULL);
    h.hold = true;
    h_talk(&h,
           "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\n"
           "DATA\r\nx\r\n.\r\nMAIL FROM:<a@example.com>\r\n"
           "RCPT TO:<b@example.net>\r\nDATA\r\nx\r\n.\r\n",
           SENDER_OK RCPT_OK GO_AHEAD);
    {
        sp_smtp_reply reply;

        sp_smtp_reply_set(&reply, 451, "5.1.1", "later");
        h.next = sp_smtp_session_done(h.session, &reply, &h.out);
        h_expect(&h, "451 4.0.0 later\r\n" SENDER_OK RCPT_OK GO_AHEAD);
        assert_int_equal(h.next, SP_SMTP_WAIT);
        sp_smtp_reply_set(&reply, 0, NULL, "nothing");
        h.next = sp_smtp_session_done(h.session, &reply, &h.out);
        h_expect(&h, "451 4.3.0 Local error; try again later\r\n");
        assert_int_equal(h.next, SP_SMTP_READ);
        h.next = sp_smtp_session_done(h.session, &reply, &h.out);
        h_expect(&h, "");
    }
    h_end(&h);
}

/* ------------------------------------------------------------------ */

static const char transaction[] = "EHLO client.example.com\r\n"
                                  "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"
                                  "MAIL FROM:<alice@example.com> SIZE=64\r\n"
                                  "RCPT TO:<bob@example.net>\r\n"
                                  "RCPT TO:<nobody@example.net>\r\n"
                                  "RCPT TO:<carol@example.net>\r\n"
                                  "DATA\r\n"
                                  "Subject: split\r\n\r\n..dot\r\nline\r\n.\r\n"
                                  "MAIL FROM:<alice@example.com>\r\n"
                                  "RCPT TO:<bob@example.net>\r\n"
                                  "BDAT 5\r\nab\r\ncBDAT 3 LAST\r\nd\r\n"
                                  "AUTH LOGIN\r\nYWxpY2U=\r\nc2VjcmV0\r\n"
                                  "QUIT\r\n";

static const char transaction_replies[] = GREETING EHLO_REPLY
    "235 2.7.0 Authentication successful\r\n" SENDER_OK RCPT_OK
    "550 5.1.1 No such user\r\n" RCPT_OK GO_AHEAD QUEUED1 SENDER_OK RCPT_OK
    "250 2.0.0 5 octets received\r\n" QUEUED2
    "503 5.5.1 Error: already authenticated\r\n"
    "500 5.5.2 Error: command not recognized\r\n"
    "500 5.5.2 Error: command not recognized\r\n" BYE;

/* Feed the transaction in pieces of the given sizes (0 ends the list). */
static void
run_in_pieces(const size_t *cuts, size_t ncuts, harness *h)
{
    size_t at = 0, len = sizeof(transaction) - 1;

    h_start(h, NULL, NULL);
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : len;

        h_feed(h, transaction + at, end - at);
        at = end;
    }
    h_expect(h, transaction_replies);
    assert_int_equal(h->messages, 2);
    assert_string_equal(h->data.data, "ab\r\ncd\r\n");
    assert_int_equal(h->next, SP_SMTP_CLOSE);
    h_end(h);
}

static void
results_do_not_depend_on_chunking(void **state)
{
    size_t len = sizeof(transaction) - 1;
    size_t *cuts = calloc(len, sizeof(*cuts));
    harness h;

    (void)state;
    assert_non_null(cuts);
    run_in_pieces(NULL, 0, &h);

    /* Cut once at every position, then everywhere: octet by octet. */
    for (size_t k = 1; k < len; k++)
        run_in_pieces(&k, 1, &h);
    for (size_t k = 1; k < len; k++)
        cuts[k - 1] = k;
    run_in_pieces(cuts, len - 1, &h);
    free(cuts);
}

/* Every reply line is "ddd" then SP or "-", text, CRLF. */
static void
check_reply_lines(const sp_buf *out)
{
    const char *p = out->data ? out->data : "";
    const char *end = p + out->len;

    while (p < end) {
        const char *crlf = strstr(p, "\r\n");

        assert_non_null(crlf);
        assert_true(crlf - p >= 4);
        assert_true(p[0] >= '2' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9' &&
                    p[2] >= '0' && p[2] <= '9');
        assert_true(p[3] == ' ' || p[3] == '-');
        assert_null(memchr(p, '\n', (size_t)(crlf - p)));

        /* Running out of memory only ever says 451 or 421 4.3.0. */
        if (p[0] == '4' && strncmp(p, "452 4.5.3", 9) != 0)
            assert_true(strncmp(p + 3, " 4.3.0", 6) == 0);
        p = crlf + 2;
    }
}

/* The owner of the failing-allocator runs: takes every message. */
static void
cb_message_ignored(void *arg, const sp_smtp_envelope *envelope,
                   const sp_buf *data)
{
    (void)arg;
    (void)envelope;
    (void)data;
}

/*
 * The whole transaction with the Nth allocation failing, for every N
 * until none fails: no crash, no leak (the sanitizer checks), replies
 * well formed, and every failure answered 451 4.3.0 or 421 4.3.0.
 */
static void
allocation_failures_are_answered_not_fatal(void **state)
{
    size_t len = sizeof(transaction) - 1;
    bool clean = false;

    (void)state;
    for (long n = 0; !clean; n++) {
        sp_smtp_callbacks callbacks = {.message = cb_message_ignored};
        sp_smtp_reply stored;
        sp_buf out = SP_BUF_INIT;
        sp_smtp_session *s = NULL;
        sp_smtp_next next = SP_SMTP_READ;
        int rc;

        /* Half the runs leave room in out, half let it fail too. */
        assert_int_equal(sp_buf_reserve(&out, n % 2 ? 4096 : 0), SP_OK);
        sp_alloc_fail_after(n / 2);
        rc = sp_smtp_session_new(&default_limits, &default_context, &callbacks,
                                 &s, &out, NULL);
        for (size_t at = 0; rc == SP_OK && at < len && next != SP_SMTP_CLOSE;
             at += 7) {
            size_t piece = len - at < 7 ? len - at : 7;

            next = sp_smtp_session_input(s, transaction + at, piece, &out);
            while (next == SP_SMTP_WAIT) {
                sp_smtp_reply_set(&stored, 250, "2.0.0", "Stored");
                next = sp_smtp_session_done(s, &stored, &out);
            }
        }
        sp_alloc_fail_after(-1);
        if (rc != SP_OK) {
            assert_int_equal(rc, SP_ENOMEM);
            assert_null(s);
        } else {
            check_reply_lines(&out);
            clean = n % 2 == 1 && strstr(out.data, "4.3.0") == NULL &&
                    strstr(out.data, BYE) != NULL;
        }
        sp_smtp_session_free(s);
        sp_buf_free(&out);
        assert_true(n < 2000);
    }
}

/* ------------------------------------------------------------------ */

/* Also whether data is flowing, which the owner's rate limit uses. */
static void
timeouts_follow_rfc5321(void **state)
{
    harness h;

    (void)state;
    h_ready(&h, NULL, NULL);
    h.hold = true;
    assert_int_equal(sp_smtp_session_timeout(h.session), 300);
    h_talk(&h, "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\n",
           SENDER_OK RCPT_OK);
    assert_false(sp_smtp_session_receiving(h.session));
    h_talk(&h, "DATA\r\n", GO_AHEAD);
    assert_true(sp_smtp_session_receiving(h.session));
    assert_int_equal(sp_smtp_session_timeout(h.session), 120);
    h_talk(&h, "x", "");
    assert_int_equal(sp_smtp_session_timeout(h.session), 180);
    h_talk(&h, "\r\n.\r\n", "");
    assert_int_equal(sp_smtp_session_timeout(h.session), 600);
    assert_false(sp_smtp_session_receiving(h.session));
    h.hold = false;
    h_settle(&h);
    h_talk(&h,
           "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\n"
           "BDAT 5\r\nab",
           QUEUED1 SENDER_OK RCPT_OK);
    assert_int_equal(sp_smtp_session_timeout(h.session), 180);
    assert_true(sp_smtp_session_receiving(h.session));
    h_talk(&h, "cde", "250 2.0.0 5 octets received\r\n");
    assert_int_equal(sp_smtp_session_timeout(h.session), 300);
    assert_true(sp_smtp_session_receiving(h.session));
    h_talk(&h, "RSET\r\n", "250 2.0.0 OK\r\n");
    assert_false(sp_smtp_session_receiving(h.session));
    h_end(&h);
}

/*
 * The stored message and every reply are the same however the input is
 * cut: whole, one octet at a time, or in chunks of every size up to 97.
 * The input mixes what the fast path for whole lines takes with what it
 * leaves to the state machine: stuffed dots, the end dot, a line at the
 * length limit and one over it, bare CR and LF, and a NUL.
 */
static void
cutting_the_input_changes_nothing(void **state)
{
#define BODY(text)                                                             \
    {                                                                          \
        text, sizeof(text) - 1                                                 \
    }
    static const struct {
        const char *text;
        size_t len;
    } bodies[] = {
        BODY("Subject: a\r\n\r\nline one\r\n..stuffed\r\n.\r\n"),
        BODY("Subject: b\r\n\r\nok\r\nbare\nlf\r\n.\r\n"),
        BODY("Subject: c\r\n\r\nx\r\nbare\rcr\r\n.\r\n"),
        BODY("Subject: d\r\n\r\nnul\0here\r\n.\r\n"),
        BODY("Subject: e\r\n\r\n.\r\n"),
        BODY("Subject: f\r\n\r\n...\r\n.x\r\n\r\n\r\n.\r\n"),
    };
#undef BODY
    static const char head[] = "MAIL FROM:<a@example.com>\r\n"
                               "RCPT TO:<b@example.net>\r\nDATA\r\n";
    char input[4096], line[1200];
    sp_buf whole_out = SP_BUF_INIT;
    bytes whole_data = {0};

    (void)state;
    for (size_t k = 0; k < 8; k++) {
        size_t len = 0;

        /* A body of the kind k picks, then lines at and over the limit. */
        memcpy(input, head, sizeof(head) - 1);
        len = sizeof(head) - 1;
        if (k < 6) {
            memcpy(input + len, bodies[k].text, bodies[k].len);
            len += bodies[k].len;
        } else {
            memset(line, 'y', sizeof(line));
            memcpy(input + len, "Subject: g\r\n\r\n", 14);
            len += 14;
            memcpy(input + len, line, 998 + (k == 7));
            len += 998 + (k == 7);
            memcpy(input + len, "\r\n.\r\n", 5);
            len += 5;
        }

        for (size_t chunk = 0; chunk <= 97; chunk++) {
            harness h;

            h_ready(&h, NULL, NULL);
            if (chunk == 0) {
                h_feed(&h, input, len);
            } else {
                for (size_t at = 0; at < len; at += chunk)
                    h_feed(&h, input + at, len - at < chunk ? len - at : chunk);
            }
            if (chunk == 0) {
                sp_buf_reset(&whole_out);
                assert_int_equal(
                    sp_buf_append(&whole_out, h.out.data, h.out.len), SP_OK);
                bytes_set(&whole_data, h.data.data ? h.data.data : "",
                          h.data.len);
            } else {
                assert_int_equal(h.out.len, whole_out.len);
                assert_memory_equal(h.out.data, whole_out.data, h.out.len);
                assert_int_equal(h.data.len, whole_data.len);
                if (h.data.len > 0)
                    assert_memory_equal(h.data.data, whole_data.data,
                                        h.data.len);
            }
            h_end(&h);
        }
    }
    sp_buf_free(&whole_out);
    free(whole_data.data);
}

/* The owner's limits set the three waits; the owner's own stays. */
static void
timeouts_follow_the_limits(void **state)
{
    sp_smtp_limits limits = {
        .command_timeout = 7,
        .data_start_timeout = 5,
        .data_timeout = 9,
    };
    harness h;

    (void)state;
    h_ready(&h, &limits, NULL);
    h.hold = true;
    assert_int_equal(sp_smtp_session_timeout(h.session), 7);
    h_talk(&h, "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\n",
           SENDER_OK RCPT_OK);
    h_talk(&h, "DATA\r\n", GO_AHEAD);
    assert_int_equal(sp_smtp_session_timeout(h.session), 5);
    h_talk(&h, "x", "");
    assert_int_equal(sp_smtp_session_timeout(h.session), 9);
    h_talk(&h, "\r\n.\r\n", "");
    assert_int_equal(sp_smtp_session_timeout(h.session), 600);
    h.hold = false;
    h_settle(&h);
    h_expect(&h, QUEUED1);
    h_end(&h);
}

static void
idle_sessions_are_small(void **state)
{
    char line[400];
    size_t greeted, idle, after;
    harness h;

    (void)state;
    h_start(&h, NULL, NULL);
    greeted = smtp__server_memory(h.session);
    h_talk(&h, "EHLO client.example.com\r\n", GREETING EHLO_REPLY);
    idle = smtp__server_memory(h.session);

    /* A line split across inputs needs a buffer only while it is. */
    memset(line, 'z', sizeof(line));
    memcpy(line, "NOOP ", 5);
    h_feed(&h, line, sizeof(line));
    assert_true(smtp__server_memory(h.session) > idle);
    h_talk(&h,
           "\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\n"
           "DATA\r\nbody\r\n.\r\n",
           "250 2.0.0 OK\r\n" SENDER_OK RCPT_OK GO_AHEAD QUEUED1);
    after = smtp__server_memory(h.session);
    print_message("idle session: %zu octets greeted, %zu after EHLO, %zu "
                  "after a message\n",
                  greeted, idle, after);
    assert_true(greeted < 4096 && idle < 4096);
    assert_int_equal(after, idle);
    h_end(&h);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(full_transaction_is_byte_exact),
        cmocka_unit_test(pipelined_transactions_are_answered_in_order),
        cmocka_unit_test(verdict_inside_the_callback_goes_on_reading),
        cmocka_unit_test(dot_stuffing_is_undone_only_at_line_starts),
        cmocka_unit_test(smuggling_probes_are_refused_by_default),
        cmocka_unit_test(smuggling_probes_stay_one_message_when_normalizing),
        cmocka_unit_test(smuggling_verdict_does_not_depend_on_chunking),
        cmocka_unit_test(bare_lf_normalization_matches_br012),
        cmocka_unit_test(starttls_discards_pipelined_plaintext),
        cmocka_unit_test(bdat_chunks_make_one_message),
        cmocka_unit_test(bdat_last_zero_and_missing_final_crlf),
        cmocka_unit_test(bdat_sequence_errors_keep_the_stream_in_step),
        cmocka_unit_test(bdat_bare_cr_is_normalized_across_chunks),
        cmocka_unit_test(size_is_refused_at_mail_and_after_data),
        cmocka_unit_test(too_many_recipients_get_452),
        cmocka_unit_test(overlong_command_lines_are_refused_and_skipped),
        cmocka_unit_test(overlong_text_lines_refuse_the_message),
        cmocka_unit_test(bare_lf_in_commands_depends_on_the_policy),
        cmocka_unit_test(too_many_errors_close_the_session),
        cmocka_unit_test(auth_plain_and_login_succeed_fail_and_cancel),
        cmocka_unit_test(auth_policy_is_enforced),
        cmocka_unit_test(open_recipients_need_no_auth),
        cmocka_unit_test(syntax_and_sequence_errors),
        cmocka_unit_test(owner_replies_are_checked),
        cmocka_unit_test(results_do_not_depend_on_chunking),
        cmocka_unit_test(allocation_failures_are_answered_not_fatal),
        cmocka_unit_test(timeouts_follow_rfc5321),
        cmocka_unit_test(timeouts_follow_the_limits),
        cmocka_unit_test(cutting_the_input_changes_nothing),
        cmocka_unit_test(idle_sessions_are_small),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
