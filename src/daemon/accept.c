/*
 * accept.c: the accept path of a finished SMTP message: the trace field,
 * the fields RFC 6409 says a submission server adds when they are missing,
 * the spool, the session's verdict and the log line.
 *
 * Owns smtp__accept.  The message goes to the signer's threads, which
 * add its DKIM signatures and submit it to the spool, whose writer thread
 * answers once it is durable; the answer crosses to the loop through the
 * mailbox, and only then does the client hear 250 and delivery hear of
 * the message.  A storage failure
 * answers 451 or 452, a message that cannot be signed (no From, or two)
 * 550, and the session goes on.  Also owns smtp__conn_refused: the
 * policy_rejection events of sealpost's own refusals.
 *
 * Mail to the DMARC report addresses takes another way: unsigned and
 * unqueued, it goes to the report thread (reports.c), and the client
 * hears 250 once the store has the reports, or 451 if it could not.
 */
#include "smtp_int.h"

#include "mail/mail.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The spool's answer, carried from its thread to the loop. */
struct accept_result {
    struct smtp_conn *conn;
    int rc;
    bool refused; /* sealpost's own 553 for this key: why says it */
    bool report;  /* mail to the report addresses: why says what it held */
    char id[SP_QUEUE_ID_SIZE];
    char why[320];
};

void
daemon_date(int64_t ms, char *out, size_t size)
{
    time_t when = (time_t)(ms / 1000);
    struct tm utc;

    gmtime_r(&when, &utc);
    strftime(out, size, "%a, %d %b %Y %H:%M:%S +0000", &utc);
}

/* A HELO name fit for a trace field: printable, no spaces, cut. */
static void
accept_helo(const char *helo, char *out, size_t size)
{
    size_t used = 0;

    for (; *helo != '\0' && used + 1 < size && used < 100; helo++)
        out[used++] =
            (*helo > 32 && *helo < 127 && *helo != '(' && *helo != ')') ? *helo
                                                                        : '?';
    out[used] = '\0';
    if (used == 0)
        snprintf(out, size, "unknown");
}

/*
 * Write the fields to prepend: Received (RFC 5321 4.4, with the protocol
 * words of RFC 3848), then Message-ID and Date if the message lacks them.
 */
static int
accept_fields(const struct smtp_conn *conn, const sp_smtp_envelope *envelope,
              const sp_buf *data, const sp_mail_header *header, const char *id,
              sp_buf *out)
{
    const char *hostname = conn->smtp->deps.hostname;
    char date[64], helo[128];
    int rc;

    daemon_date((int64_t)time(NULL) * 1000, date, sizeof(date));
    accept_helo(envelope->helo, helo, sizeof(helo));
    rc = sp_buf_printf(out,
                       "Received: from %s (%s)\r\n\tby %s (sealpost) with "
                       "ESMTP%s%s id %s",
                       helo, conn->ip, hostname, envelope->tls ? "S" : "",
                       envelope->identity[0] ? "A" : "", id);
    if (rc == SP_OK && envelope->recipient_count == 1)
        rc = sp_buf_printf(out, "\r\n\tfor <%s>", envelope->recipients[0]);
    if (rc == SP_OK)
        rc = sp_buf_printf(out, ";\r\n\t%s\r\n", date);

    /* RFC 6409 8.3: the fields a submission server adds when missing. */
    if (rc == SP_OK &&
        sp_mail_header_count(header, data->data, "message-id") == 0)
        rc = sp_buf_printf(out, "Message-ID: <%s.%lld@%s>\r\n", id,
                           (long long)time(NULL), hostname);
    if (rc == SP_OK && sp_mail_header_count(header, data->data, "date") == 0)
        rc = sp_buf_printf(out, "Date: %s\r\n", date);
    return rc;
}

/* Append the client's data to out, without its X-MSYS-API fields. */
static int
accept_copy(const sp_buf *data, const sp_mail_header *header, sp_buf *out)
{
    size_t from = 0;
    int rc = SP_OK;

    for (size_t i = 0; rc == SP_OK && i < header->count; i++) {
        const sp_mail_field *field = &header->fields[i];

        if (!smtp__is_api_field(field, data->data))
            continue;
        rc = sp_buf_append(out, data->data + from, field->offset - from);
        from = field->offset + field->length;
    }
    if (rc == SP_OK)
        rc = sp_buf_append(out, data->data + from, data->len - from);
    return rc;
}

/* Log a stored message: one line with what an operator tracks. */
static void
accept_log(const struct smtp_conn *conn, const sp_smtp_envelope *envelope,
           const char *id, size_t size)
{
    char sender[300], helo[128];

    sp_log_escape(sender, sizeof(sender), envelope->sender,
                  strlen(envelope->sender));
    accept_helo(envelope->helo, helo, sizeof(helo));
    sp_log_info("accepted queue_id=%s client=%s helo=%s identity=%s "
                "sender=<%s> size=%zu recipients=%zu tls=%s",
                id, conn->ip, helo,
                envelope->identity[0] ? envelope->identity : "-", sender, size,
                envelope->recipient_count, envelope->tls ? "yes" : "no");
}

/* Hand a stored message to delivery (every recipient pending). */
static void
accept_deliver(const struct smtp_conn *conn, const sp_smtp_envelope *envelope,
               const char *id)
{
    sp_queue_info info = {
        .sender = envelope->sender,
        .recipients = (const char *const *)envelope->recipients,
        .recipient_count = envelope->recipient_count,
        .client_ip = conn->ip,
        .identity = envelope->identity,
        .size = conn->size,
    };

    if (conn->smtp->deps.deliver == NULL)
        return;
    snprintf(info.id, sizeof(info.id), "%s", id);
    daemon_deliver_queued(conn->smtp->deps.deliver, &info);
}

void
smtp__refused_events(sp_queue *queue, const struct smtp_origin *origin,
                     const sp_smtp_reply *reply)
{
    size_t count = origin->recipient_count ? origin->recipient_count : 1;
    sp_error err;

    for (size_t i = 0; i < count; i++) {
        json_t *fields = json_pack(
            "{s:s, s:s, s:s, s:i, s:s, s:s}", "msg_from", origin->sender,
            "ip_address", origin->client_ip, "identity", origin->identity,
            "error_code", reply->code, "enhanced_code", reply->enhanced,
            "raw_reason", reply->text);
        char *text;

        if (fields != NULL && origin->recipient_count > 0)
            json_object_set_new(fields, "rcpt_to",
                                json_string(origin->recipients[i]));
        if (fields != NULL && origin->queue_id != NULL &&
            origin->queue_id[0] != '\0') {
            json_object_set_new(fields, "queue_id",
                                json_string(origin->queue_id));
            json_object_set_new(fields, "message_id",
                                json_string(origin->queue_id));
        }
        text = sp_event_text("policy_rejection", fields);
        if (text == NULL || sp_queue_event(queue, text, &err) != SP_OK)
            sp_log_warning("event type=policy_rejection client=%s "
                           "error=\"%s\"",
                           origin->client_ip,
                           text ? err.text : "out of memory");
        free(text);
    }
}

void
smtp__conn_refused(const struct smtp_conn *conn,
                   const sp_smtp_envelope *envelope, const char *queue_id,
                   const sp_smtp_reply *reply)
{
    struct smtp_origin origin = {
        .queue_id = queue_id,
        .sender = envelope->sender,
        .recipients = (const char *const *)envelope->recipients,
        .recipient_count = envelope->recipient_count,
        .client_ip = conn->ip,
        .identity = envelope->identity,
    };

    smtp__refused_events(conn->smtp->deps.queue, &origin, reply);
}

/* A connection whose client left, once its message is answered. */
static void
accept_free_gone(struct smtp_conn *conn, struct accept_result *result)
{
    sp_smtp_session_free(conn->session);
    sp_buf_free(&conn->out);
    sp_free(conn);
    sp_free(result);
}

/* On the loop: the verdict on mail to the report addresses. */
static void
accept_report_finish(struct smtp_conn *conn, struct accept_result *result)
{
    sp_smtp_reply reply;

    if (conn->gone) {
        accept_free_gone(conn, result);
        return;
    }
    if (result->rc == SP_OK) {
        sp_smtp_reply_set(&reply, 250, "2.0.0",
                          "Ok: DMARC report mail %s taken: %.200s", result->id,
                          result->why);
        conn->messages++;
        sp_log_info("dmarc_mail queue_id=%s client=%s size=%zu result=\"%s\"",
                    result->id, conn->ip, conn->size, result->why);
    } else {
        sp_smtp_reply_set(&reply, 451, "4.3.0",
                          "could not store the report; try again later");
    }
    sp_free(result);
    smtp__conn_next(conn,
                    sp_smtp_session_done(conn->session, &reply, &conn->out));
}

/* On the loop: give the session its verdict, or free a gone connection. */
static void
accept_finish(void *arg)
{
    struct accept_result *result = arg;
    struct smtp_conn *conn = result->conn;
    sp_smtp_reply reply;

    conn->submitting = false;
    if (result->report) {
        accept_report_finish(conn, result);
        return;
    }
    if (conn->gone) {
        /* The client left; a message stored is ours all the same. */
        if (result->rc == SP_OK) {
            accept_log(conn, conn->envelope, result->id, conn->size);
            accept_deliver(conn, conn->envelope, result->id);
        }
        accept_free_gone(conn, result);
        return;
    }
    if (result->rc == SP_OK) {
        sp_smtp_reply_set(&reply, 250, "2.0.0", "Ok: queued as %s", result->id);
        conn->messages++;
        accept_log(conn, conn->envelope, result->id, conn->size);
        accept_deliver(conn, conn->envelope, result->id);
    } else if (result->rc == SP_ELIMIT) {
        sp_smtp_reply_set(&reply, 452, "4.3.1",
                          "insufficient system storage; try again later");
    } else if (result->refused) {
        sp_smtp_reply_set(&reply, 553, "5.7.1", "%.200s", result->why);
    } else if (result->rc == SP_EPOLICY || result->rc == SP_ESYNTAX) {
        sp_smtp_reply_set(&reply, 550, "5.6.0", "message refused: %.200s",
                          result->why);
    } else {
        sp_smtp_reply_set(&reply, 451, "4.3.0",
                          "could not store the message; try again later");
    }
    if (result->rc != SP_OK)
        sp_log_warning("refused queue_id=%s client=%s reason=\"%s\"",
                       result->id, conn->ip, result->why);
    if (reply.code >= 500)
        smtp__conn_refused(conn, conn->envelope, result->id, &reply);
    sp_free(result);
    smtp__conn_next(conn,
                    sp_smtp_session_done(conn->session, &reply, &conn->out));
}

/*
 * Hand a result over to the loop, from any thread: report for mail to
 * the report addresses (why then says what it held).
 */
static void
accept_post(struct smtp_conn *conn, int rc, bool refused, bool report,
            const char *id, const char *why)
{
    struct accept_result *result = sp_calloc(1, sizeof(*result));

    if (result == NULL)
        return; /* logged by the session's timeout; see mailbox.c */
    result->conn = conn;
    result->rc = rc;
    result->refused = refused;
    result->report = report;
    snprintf(result->id, sizeof(result->id), "%s", id);
    snprintf(result->why, sizeof(result->why), "%s", why);
    daemon_mailbox_post(conn->mailbox, accept_finish, result);
}

/* The report thread's answer: hand over to the loop. */
static void
accept_report_taken(void *arg, int rc, const char *summary)
{
    struct smtp_conn *conn = arg;

    accept_post(conn, rc, false, true, conn->queue_id, summary);
}

/* The spool's callback, on its writer thread: hand over to the loop. */
static void
accept_stored(void *arg, int rc, const char *id, const sp_error *err)
{
    accept_post(arg, rc, false, false, id, rc == SP_OK ? "" : err->text);
}

char *
smtp__injection_events(const struct smtp_origin *origin, size_t size,
                       const char *event_fields, const daemon_signed *made)
{
    json_t *common = json_loads(event_fields ? event_fields : "{}", 0, NULL);
    json_t *signatures = json_array();
    sp_buf lines = SP_BUF_INIT;
    int rc = common != NULL && signatures != NULL ? SP_OK : SP_ENOMEM;

    for (size_t i = 0; rc == SP_OK && i < made->key_count; i++)
        rc = json_array_append_new(
                 signatures, json_pack("{s:s, s:s}", "domain", made->domain,
                                       "selector", made->selectors[i]))
                 ? SP_ENOMEM
                 : SP_OK;
    if (rc == SP_OK && made->key_count > 0) {
        json_object_set_new(common, "dkim_domain", json_string(made->domain));
        json_object_set(common, "dkim_signatures", signatures);
    }

    for (size_t i = 0; rc == SP_OK && i < origin->recipient_count; i++) {
        json_t *fields = json_pack(
            "{s:s, s:s, s:s, s:s, s:I, s:s, s:s}", "queue_id", origin->queue_id,
            "message_id", origin->queue_id, "rcpt_to", origin->recipients[i],
            "msg_from", origin->sender, "msg_size", (json_int_t)size,
            "ip_address", origin->client_ip, "identity", origin->identity);
        char *text;

        if (fields != NULL)
            json_object_update(fields, common);
        text = sp_event_text("injection", fields);
        rc = text == NULL ? SP_ENOMEM : sp_buf_printf(&lines, "%s\n", text);
        free(text);
    }
    json_decref(common);
    json_decref(signatures);
    if (rc != SP_OK) {
        sp_buf_free(&lines);
        return NULL;
    }
    return (char *)lines.data; /* the buffer's bytes, NUL-terminated */
}

/* A message on its way through the signer to the spool. */
struct accept_job {
    struct smtp_conn *conn;
    sp_buf message;     /* the added fields, then the client's data */
    char *event_fields; /* smtp__event_fields' text */
};

static void
accept_job_free(struct accept_job *job)
{
    if (job == NULL)
        return;
    sp_buf_free(&job->message);
    free(job->event_fields);
    sp_free(job);
}

/*
 * On a signing thread: prepend the signatures and submit; the spool's
 * answer (or this failure) reaches the loop through accept_stored.
 */
static void
accept_signed(void *arg, int rc, const daemon_signed *made,
              const sp_error *sign_err)
{
    struct accept_job *job = arg;
    struct smtp_conn *conn = job->conn;
    const sp_smtp_envelope *envelope = conn->envelope;
    sp_queue_envelope spool = {
        .sender = envelope->sender,
        .recipients = (const char *const *)envelope->recipients,
        .recipient_count = envelope->recipient_count,
        .client_ip = conn->ip,
        .identity = envelope->identity,
        .dkim_keys = made->key_ids,
        .dkim_key_count = made->key_count,
        .event_fields = job->event_fields,
    };
    sp_buf whole = SP_BUF_INIT;
    char *events = NULL;
    sp_error err;

    /* A key limited to domains: the author's domain too, not only the
     * envelope's, since that is the domain the message is signed for. */
    if (rc == SP_OK &&
        !smtp__conn_domain_allowed(conn->domains, made->domain)) {
        snprintf(err.text, sizeof(err.text),
                 "this API key may not send from %s", made->domain);
        accept_post(conn, SP_EPOLICY, true, false, conn->queue_id, err.text);
    } else if (rc != SP_OK) {
        accept_stored(conn, rc, conn->queue_id, sign_err);
    } else {
        rc = sp_buf_append(&whole, made->fields->data, made->fields->len);
        if (rc == SP_OK)
            rc = sp_buf_append(&whole, job->message.data, job->message.len);
        conn->size = whole.len;
        if (rc == SP_OK)
            spool.event = events = smtp__injection_events(
                &(struct smtp_origin){
                    .queue_id = conn->queue_id,
                    .sender = envelope->sender,
                    .recipients = (const char *const *)envelope->recipients,
                    .recipient_count = envelope->recipient_count,
                    .client_ip = conn->ip,
                    .identity = envelope->identity,
                },
                whole.len, job->event_fields, made);
        if (rc == SP_OK)
            rc = sp_queue_submit(conn->smtp->deps.queue, &spool, whole.data,
                                 whole.len, accept_stored, conn, conn->queue_id,
                                 &err);
        else
            sp_err_set(&err, rc, "out of memory");
        if (rc != SP_OK)
            accept_stored(conn, rc, conn->queue_id, &err);
    }
    sp_buf_free(&whole);
    sp_free(events);
    accept_job_free(job);
}

/*
 * A finished message from the session: add the fields, then hand it to
 * the signer; the client hears back once the spool has it.
 */
void
smtp__accept(void *arg, const sp_smtp_envelope *envelope, const sp_buf *data)
{
    struct smtp_conn *conn = arg;
    struct accept_job *job = sp_calloc(1, sizeof(*job));
    sp_mail_header header = SP_MAIL_HEADER_INIT;
    size_t scanned = 0, end;
    char why[200] = "";
    sp_error err;
    int rc = job == NULL ? SP_ENOMEM : SP_OK;

    conn->submitting = true;
    conn->envelope = envelope;
    conn->size = data->len;
    sp_queue_new_id(conn->smtp->deps.queue, conn->queue_id);

    /* Report mail: every recipient is a report address (see smtp_conn.c). */
    if (envelope->recipient_count > 0 &&
        daemon_reports_address(conn->smtp->deps.config,
                               envelope->recipients[0])) {
        char source[160];

        sp_free(job);
        snprintf(source, sizeof(source), "mail %s from <%.60s> [%.45s]",
                 conn->queue_id, envelope->sender, conn->ip);
        if (daemon_reports_submit(conn->smtp->deps.reports, data->data,
                                  data->len, source, accept_report_taken,
                                  conn) != SP_OK)
            accept_report_taken(conn, SP_ENOMEM, "out of memory");
        return;
    }

    /* The header once, for the fields to add and what events carry. */
    end = sp_mail_header_end(data->data, data->len, &scanned);
    if (rc == SP_OK)
        rc = sp_mail_header_index(&header, data->data, end ? end : data->len);
    if (rc == SP_OK) {
        job->conn = conn;
        job->event_fields = smtp__event_fields(
            data->data, &header, conn->smtp->deps.config->events_subject,
            conn->queue_id, why, sizeof(why));
        if (job->event_fields == NULL)
            rc = why[0] != '\0' ? SP_ESYNTAX : SP_ENOMEM;
    }
    if (rc == SP_OK)
        rc = accept_fields(conn, envelope, data, &header, conn->queue_id,
                           &job->message);
    if (rc == SP_OK)
        rc = accept_copy(data, &header, &job->message);
    sp_mail_header_free(&header);
    if (rc == SP_OK)
        rc = daemon_signer_submit(conn->smtp->deps.signer, job->message.data,
                                  job->message.len, accept_signed, job);

    /* The answer comes through the mailbox, or at once on failure. */
    if (rc != SP_OK) {
        accept_job_free(job);
        if (rc == SP_ESYNTAX)
            accept_post(conn, rc, false, false, conn->queue_id, why);
        else {
            sp_err_set(&err, rc, "out of memory");
            accept_stored(conn, rc, conn->queue_id, &err);
        }
    }
}
