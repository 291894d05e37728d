/*
 * dsn.c: bounce messages: telling a sender that delivery to some of a
 * message's recipients failed for good.
 *
 * Owns daemon_dsn_*.  A bounce is a multipart/report (RFC 6522) of
 * report-type delivery-status (RFC 3464): a short text for people, the
 * machine-readable status of each failed recipient, and the original
 * message's header section (text/rfc822-headers; the body is not sent
 * back).  It comes from the null reverse-path, so that it can never be
 * bounced in turn, and carries Auto-Submitted: auto-replied (RFC 3834).
 * It is stored in the spool like any accepted message, then scheduled.
 *
 * The bounce is submitted before the outcome that caused it is recorded:
 * both go through the spool's writer in that order, so a crash never
 * keeps the outcome and loses the bounce (it may, rarely, send a bounce
 * twice).
 *
 * Known limits: bounces are not DKIM-signed (the hostname's domain has
 * no key unless the operator makes one), and there is no "delayed"
 * notice while a message is still being retried.  The original is read
 * whole from the spool on the loop to take its header section.
 */
#include "daemon.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define DSN_MAX_HEADER (64 * 1024) /* of the original, sent back */

struct daemon_dsn {
    sp_queue *queue;
    struct daemon_mailbox *mailbox;
    char hostname[256];
    daemon_queued_fn queued;
    void *arg;
    unsigned in_flight; /* stored or not yet: answers still to come */
    bool freed;         /* daemon_dsn_free was called */
};

/* One bounce on its way through the spool. */
struct dsn_submission {
    struct daemon_dsn *dsn;
    int rc;
    char id[SP_QUEUE_ID_SIZE];
    char original[SP_QUEUE_ID_SIZE];
    char sender[]; /* the original's sender: the bounce's recipient */
};

/* What daemon_dsn_send needs of the original message. */
struct dsn_original {
    char sender[320];
    int64_t created_ms;
    bool found;
};

struct daemon_dsn *
daemon_dsn_new(sp_queue *queue, struct daemon_mailbox *mailbox,
               const char *hostname, daemon_queued_fn queued, void *arg)
{
    struct daemon_dsn *dsn = sp_calloc(1, sizeof(*dsn));

    if (dsn == NULL)
        return NULL;
    dsn->queue = queue;
    dsn->mailbox = mailbox;
    snprintf(dsn->hostname, sizeof(dsn->hostname), "%s", hostname);
    dsn->queued = queued;
    dsn->arg = arg;
    return dsn;
}

void
daemon_dsn_free(struct daemon_dsn *dsn)
{
    if (dsn == NULL)
        return;
    dsn->freed = true;
    if (dsn->in_flight == 0)
        sp_free(dsn);
}

/* On the loop: a bounce is stored (or not); schedule it. */
static void
dsn_stored_on_loop(void *arg)
{
    struct dsn_submission *submission = arg;
    struct daemon_dsn *dsn = submission->dsn;
    const char *recipients[1] = {submission->sender};
    sp_queue_info info = {
        .sender = "",
        .recipients = recipients,
        .recipient_count = 1,
        .client_ip = "",
        .identity = "",
    };

    dsn->in_flight--;
    if (submission->rc != SP_OK)
        sp_log_error("bounce for=%s error=\"could not store it (%s)\"",
                     submission->original, sp_err_describe(submission->rc));
    else if (!dsn->freed) {
        snprintf(info.id, sizeof(info.id), "%s", submission->id);
        info.created_ms = (int64_t)time(NULL) * 1000;
        dsn->queued(dsn->arg, &info);
    }
    if (dsn->freed && dsn->in_flight == 0)
        sp_free(dsn);
    sp_free(submission);
}

/* The spool's answer, on its writer thread: over to the loop. */
static void
dsn_stored(void *arg, int rc, const char *id, const sp_error *err)
{
    struct dsn_submission *submission = arg;

    (void)err;
    submission->rc = rc;
    snprintf(submission->id, sizeof(submission->id), "%s", id);
    daemon_mailbox_post(submission->dsn->mailbox, dsn_stored_on_loop,
                        submission);
}

static void
dsn_take_original(void *arg, const sp_queue_info *info)
{
    struct dsn_original *original = arg;

    snprintf(original->sender, sizeof(original->sender), "%s", info->sender);
    original->created_ms = info->created_ms;
    original->found = true;
}

/* The header section of message data: up to its first empty line. */
static size_t
dsn_header_length(const char *data, size_t len)
{
    const char *end = NULL;

    if (len >= 2 && memcmp(data, "\r\n", 2) == 0)
        return 0;
    if (len > 0)
        end = memmem(data, len, "\r\n\r\n", 4);
    len = end != NULL ? (size_t)(end - data) + 2 : len;
    return len < DSN_MAX_HEADER ? len : DSN_MAX_HEADER;
}

/* A printable copy of text on one line, for a report field. */
static void
dsn_field_text(char *out, size_t size, const char *text)
{
    size_t used = 0;

    for (; *text != '\0' && used + 1 < size; text++)
        out[used++] = (*text >= 32 && *text < 127) ? *text : ' ';
    out[used] = '\0';
}

/* Build the bounce for original (its bytes in data) into out. */
static int
dsn_build(const struct daemon_dsn *dsn, const char *id,
          const struct dsn_original *original, const sp_buf *data,
          const struct daemon_dsn_rcpt *rcpts, size_t count, sp_buf *out)
{
    char now[64], arrival[64], boundary[80], text[600];
    int64_t now_ms = (int64_t)time(NULL) * 1000;
    int rc;

    daemon_date(now_ms, now, sizeof(now));
    daemon_date(original->created_ms, arrival, sizeof(arrival));
    snprintf(boundary, sizeof(boundary), "=_sealpost_dsn_%s", id);
    rc = sp_buf_printf(
        out,
        "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n"
        "To: <%s>\r\n"
        "Subject: Undelivered mail returned to sender\r\n"
        "Date: %s\r\n"
        "Message-ID: <%s.bounce@%s>\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status;\r\n"
        "\tboundary=\"%s\"\r\n"
        "\r\n"
        "--%s\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "\r\n"
        "This is the mail system at %s.\r\n"
        "\r\n"
        "Your message (queue id %s, accepted %s) could not be\r\n"
        "delivered to the recipients below. The receiving servers'\r\n"
        "answers follow.\r\n"
        "\r\n",
        dsn->hostname, original->sender, now, id, dsn->hostname, boundary,
        boundary, dsn->hostname, id, arrival);
    for (size_t i = 0; rc == SP_OK && i < count; i++) {
        dsn_field_text(text, sizeof(text), rcpts[i].diagnostic);
        rc = sp_buf_printf(out, "<%s>: %s\r\n", rcpts[i].address, text);
    }

    if (rc == SP_OK)
        rc = sp_buf_printf(out,
                           "\r\n--%s\r\n"
                           "Content-Type: message/delivery-status\r\n"
                           "\r\n"
                           "Reporting-MTA: dns; %s\r\n"
                           "X-Sealpost-Queue-ID: %s\r\n"
                           "Arrival-Date: %s\r\n",
                           boundary, dsn->hostname, id, arrival);
    for (size_t i = 0; rc == SP_OK && i < count; i++) {
        dsn_field_text(text, sizeof(text), rcpts[i].diagnostic);
        rc = sp_buf_printf(out,
                           "\r\nFinal-Recipient: rfc822; %s\r\n"
                           "Action: failed\r\n"
                           "Status: %s\r\n",
                           rcpts[i].address, rcpts[i].status);
        if (rc == SP_OK && rcpts[i].remote[0] != '\0')
            rc = sp_buf_printf(out, "Remote-MTA: dns; %s\r\n", rcpts[i].remote);
        if (rc == SP_OK)
            rc = sp_buf_printf(out, "Diagnostic-Code: smtp; %s\r\n", text);
    }

    if (rc == SP_OK)
        rc = sp_buf_printf(out,
                           "\r\n--%s\r\n"
                           "Content-Type: text/rfc822-headers\r\n"
                           "\r\n",
                           boundary);
    if (rc == SP_OK)
        rc = sp_buf_append(out, data->data,
                           dsn_header_length(data->data, data->len));
    if (rc == SP_OK)
        rc = sp_buf_printf(out, "\r\n--%s--\r\n", boundary);
    return rc;
}

void
daemon_dsn_send(struct daemon_dsn *dsn, const char *id,
                const struct daemon_dsn_rcpt *rcpts, size_t count)
{
    struct dsn_original original = {0};
    sp_buf data = SP_BUF_INIT, bounce = SP_BUF_INIT;
    struct dsn_submission *submission = NULL;
    sp_queue_envelope envelope = {.sender = "", .recipient_count = 1};
    const char *recipients[1];
    char bounce_id[SP_QUEUE_ID_SIZE] = "";
    sp_error err;
    int rc;

    rc = sp_queue_read(dsn->queue, id, dsn_take_original, &original, &data,
                       &err);
    if (rc != SP_OK || !original.found || original.sender[0] == '\0') {
        sp_buf_free(&data);
        return; /* gone, or a bounce itself: nothing to tell anyone */
    }

    rc = dsn_build(dsn, id, &original, &data, rcpts, count, &bounce);
    if (rc == SP_OK) {
        size_t sender_len = strlen(original.sender) + 1;

        submission = sp_calloc(1, sizeof(*submission) + sender_len);
        if (submission == NULL)
            rc = SP_ENOMEM;
    }
    if (rc == SP_OK) {
        submission->dsn = dsn;
        memcpy(submission->sender, original.sender, strlen(original.sender));
        snprintf(submission->original, sizeof(submission->original), "%s", id);
        recipients[0] = submission->sender;
        envelope.recipients = recipients;
        rc = sp_queue_submit(dsn->queue, &envelope, bounce.data, bounce.len,
                             dsn_stored, submission, bounce_id, &err);
        if (rc != SP_OK)
            sp_free(submission);
    } else
        sp_err_set(&err, rc, "out of memory");
    if (rc == SP_OK) {
        dsn->in_flight++;
        sp_log_info("bounce queue_id=%s for=%s rcpt=<%s> failed=%zu", bounce_id,
                    id, original.sender, count);
    } else
        sp_log_error("bounce for=%s error=\"%s\"", id, err.text);
    sp_buf_free(&data);
    sp_buf_free(&bounce);
}
