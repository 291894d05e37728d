/*
 * fuzz_smtp_client.c: the delivery client's engine against a hostile or
 * broken server.  The first byte chooses the options and how the input is
 * cut; the rest is what the server says.  Whenever the engine is ready it
 * is given a message, and STARTTLS is "done" when asked.  Checked: no
 * crash or leak; every result has a class that fits its code; what the
 * client writes outside message data is whole command lines, each at most
 * 512 octets with its CRLF (RFC 5321 4.5.3.1.4); and once CLOSE is said,
 * nothing more is written.
 */
#include "fuzz.h"
#include "smtp/smtp.h"

#include <string.h>

static const char message[] = "From: a@example.com\r\n\r\n.line\r\nend\r\n";
static const char *const recipients[] = {"b@example.org", "c@example.org",
                                         "d@example.org"};

/* Check the results of a finished transaction. */
static void
check_results(const sp_smtp_client *client)
{
    for (size_t i = 0; i < 3; i++) {
        const sp_smtp_client_result *r = sp_smtp_client_result_for(client, i);

        CHECK(r != NULL);
        CHECK(memchr(r->text, '\0', sizeof(r->text)) != NULL);
        CHECK((r->code >= 200 && r->code < 400) ==
              (r->class == SP_SMTP_CLASS_NONE));
    }
}

/* Command lines the client wrote (no message data in them). */
static void
check_commands(const sp_buf *out, size_t from)
{
    size_t start = from;

    for (size_t i = from; i < out->len; i++)
        if (out->data[i] == '\n') {
            CHECK(i > start && out->data[i - 1] == '\r');
            CHECK(i + 1 - start <= 512);
            start = i + 1;
        }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sp_smtp_client_options options = {.helo = "mta.example.net"};
    sp_smtp_client_message m = {
        .sender = "a@example.com",
        .recipients = recipients,
        .recipient_count = 3,
        .data = message,
        .len = sizeof(message) - 1,
    };
    sp_smtp_client *client;
    sp_buf out = SP_BUF_INIT;
    size_t chunk, sent = 0;
    sp_smtp_client_next next = SP_SMTP_CLIENT_READ;

    if (size < 1)
        return 0;
    options.tls_possible = data[0] & 1;
    options.tls_required = data[0] & 2;
    m.eightbit = data[0] & 4;
    chunk = (size_t)(data[0] >> 3) + 1;
    data++;
    size--;
    CHECK(sp_smtp_client_new(&options, &client, NULL) == SP_OK);

    for (size_t at = 0; at < size && next != SP_SMTP_CLIENT_CLOSE;) {
        size_t n = size - at < chunk ? size - at : chunk;
        size_t before = out.len;
        bool data_sent = false;

        next = sp_smtp_client_input(client, data + at, n, &out);
        at += n;
        if (next == SP_SMTP_CLIENT_STARTTLS)
            sp_smtp_client_tls_started(client, &out);
        if (next == SP_SMTP_CLIENT_SENT)
            check_results(client);
        if ((next == SP_SMTP_CLIENT_IDLE || next == SP_SMTP_CLIENT_SENT) &&
            sent < 3) {
            sent++;
            next = sp_smtp_client_send(client, &m, &out);
            if (next == SP_SMTP_CLIENT_SENT)
                check_results(client);
        }
        data_sent =
            out.len > before &&
            memmem(out.data + before, out.len - before, ".line", 5) != NULL;
        if (!data_sent)
            check_commands(&out, before);
        sp_buf_reset(&out);
        (void)sp_smtp_client_timeout(client);
    }
    if (next == SP_SMTP_CLIENT_CLOSE) {
        size_t before = out.len;

        sp_smtp_client_quit(client, &out);
        CHECK(out.len == before);
    }
    sp_smtp_client_free(client);
    sp_buf_free(&out);
    return 0;
}
