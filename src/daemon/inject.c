/*
 * inject.c: messages the HTTP API builds, taken in as SMTP's are: signed
 * by the signer's threads, checked against the API key's domains, stored
 * by the spool's writer with their injection events, then handed to
 * delivery on the loop.
 *
 * Owns daemon_inject_*.  The API's threads call the injector's
 * functions (http.h): begin a batch per transmission, add each message,
 * finish.  add waits while INJECT_WINDOW messages of the batch are
 * still on their way, so one transmission holds at most that many
 * messages in memory however many recipients it has; finish waits until
 * none is, and tells how many were stored and refused.  A message the
 * key may not send (its author's domain is not one of the key's) is
 * refused with a policy_rejection event, as over SMTP; one the API could
 * not make is a generation_failure event.
 */
#include "smtp_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INJECT_WINDOW 64 /* messages of one batch on their way at once */

struct sp_http_batch {
    struct daemon_inject *inject;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    size_t in_flight, accepted, refused; /* under lock */
    char why[256];                       /* the first refusal's reason */
    char identity[64], domains[512], client_ip[48];
};

/* One message on its way; freed on the loop once stored, else at once. */
struct inject_job {
    struct sp_http_batch *batch; /* NULL once it has been told */
    struct daemon_inject *inject;
    char queue_id[SP_QUEUE_ID_SIZE];
    sp_buf message;
    char *sender, *recipient, *event_fields;
    char identity[64], client_ip[48];
    size_t size;           /* as stored, signatures included */
    int64_t not_before_ms; /* no delivery before; 0 for at once */
};

static void
inject_job_free(struct inject_job *job)
{
    sp_buf_free(&job->message);
    free(job->sender);
    free(job->recipient);
    free(job->event_fields);
    sp_free(job);
}

/* Tell job's batch how it ended; the job no longer refers to it. */
static void
inject_tell(struct inject_job *job, bool stored, const char *why)
{
    struct sp_http_batch *batch = job->batch;

    pthread_mutex_lock(&batch->lock);
    if (stored)
        batch->accepted++;
    else {
        batch->refused++;
        if (batch->why[0] == '\0')
            snprintf(batch->why, sizeof(batch->why), "%.250s", why);
    }
    batch->in_flight--;
    job->batch = NULL;
    pthread_cond_broadcast(&batch->changed);
    pthread_mutex_unlock(&batch->lock);
}

/* On the loop: log the stored message and hand it to delivery. */
static void
inject_queued(void *arg)
{
    struct inject_job *job = arg;
    const char *recipients[1] = {job->recipient};
    sp_queue_rcpt pending = {
        .state = SP_QUEUE_RCPT_PENDING,
        .next_try_ms = job->not_before_ms,
    };
    sp_queue_info info = {
        .sender = job->sender,
        .recipients = recipients,
        .recipient_count = 1,
        .rcpt = &pending,
        .client_ip = job->client_ip,
        .identity = job->identity,
        .size = job->size,
    };
    char sender[300];

    sp_log_escape(sender, sizeof(sender), job->sender, strlen(job->sender));
    sp_log_info("accepted queue_id=%s client=%s identity=%s sender=<%s> "
                "size=%zu recipients=1 via=http",
                job->queue_id, job->client_ip,
                job->identity[0] ? job->identity : "-", sender, job->size);
    if (job->inject->deps.deliver != NULL) {
        snprintf(info.id, sizeof(info.id), "%s", job->queue_id);
        daemon_deliver_queued(job->inject->deps.deliver, &info);
    }
    inject_job_free(job);
}

/* The spool's answer, on its writer thread. */
static void
inject_stored(void *arg, int rc, const char *id, const sp_error *err)
{
    struct inject_job *job = arg;

    (void)id;
    inject_tell(job, rc == SP_OK, rc == SP_OK ? "" : err->text);
    if (rc == SP_OK)
        daemon_mailbox_post(job->inject->deps.mailbox, inject_queued, job);
    else
        inject_job_free(job);
}

/* Signed, on a signer thread: check the domain, then store. */
static void
inject_signed(void *arg, int rc, const daemon_signed *made,
              const sp_error *sign_err)
{
    struct inject_job *job = arg;
    struct daemon_inject *inject = job->inject;
    const char *recipients[1] = {job->recipient};
    struct smtp_origin origin = {
        .queue_id = job->queue_id,
        .sender = job->sender,
        .recipients = recipients,
        .recipient_count = 1,
        .client_ip = job->client_ip,
        .identity = job->identity,
    };
    sp_queue_envelope spool = {
        .sender = job->sender,
        .recipients = recipients,
        .recipient_count = 1,
        .client_ip = job->client_ip,
        .identity = job->identity,
        .dkim_keys = made->key_ids,
        .dkim_key_count = made->key_count,
        .event_fields = job->event_fields,
        .not_before_ms = job->not_before_ms,
    };
    sp_buf whole = SP_BUF_INIT;
    char *events = NULL;
    sp_smtp_reply refusal;
    sp_error err;

    if (rc == SP_OK &&
        !smtp__conn_domain_allowed(job->batch->domains, made->domain)) {
        sp_smtp_reply_set(&refusal, 553, "5.7.1",
                          "this API key may not send from %.200s",
                          made->domain);
        smtp__refused_events(inject->deps.queue, &origin, &refusal);
        inject_tell(job, false, refusal.text);
        inject_job_free(job);
        return;
    }
    if (rc != SP_OK) {
        sp_smtp_reply_set(&refusal, 550, "5.6.0", "%.200s", sign_err->text);
        smtp__refused_events(inject->deps.queue, &origin, &refusal);
        inject_tell(job, false, sign_err->text);
        inject_job_free(job);
        return;
    }

    rc = sp_buf_append(&whole, made->fields->data, made->fields->len);
    if (rc == SP_OK)
        rc = sp_buf_append(&whole, job->message.data, job->message.len);
    job->size = whole.len;
    sp_buf_free(&job->message);
    if (rc == SP_OK)
        spool.event = events =
            smtp__injection_events(&origin, whole.len, job->event_fields, made);
    if (rc == SP_OK)
        rc = sp_queue_submit(inject->deps.queue, &spool, whole.data, whole.len,
                             inject_stored, job, job->queue_id, &err);
    else
        sp_err_set(&err, rc, "out of memory");
    sp_buf_free(&whole);
    free(events);
    if (rc != SP_OK) {
        inject_tell(job, false, err.text);
        inject_job_free(job);
    }
}

static sp_http_batch *
inject_begin(void *arg, const char *identity, const char *domains,
             const char *client_ip, char id[32])
{
    struct daemon_inject *inject = arg;
    sp_http_batch *batch = sp_calloc(1, sizeof(*batch));
    char queue_id[SP_QUEUE_ID_SIZE];

    if (batch == NULL)
        return NULL;
    batch->inject = inject;
    pthread_mutex_init(&batch->lock, NULL);
    pthread_cond_init(&batch->changed, NULL);
    snprintf(batch->identity, sizeof(batch->identity), "%s", identity);
    snprintf(batch->domains, sizeof(batch->domains), "%s", domains);
    snprintf(batch->client_ip, sizeof(batch->client_ip), "%s", client_ip);

    /* The transmission's id: a queue id no message will have. */
    sp_queue_new_id(inject->deps.queue, queue_id);
    snprintf(id, 32, "%s", queue_id);
    return batch;
}

/* A copy of text; NULL when memory runs out. */
static char *
inject_copy(const char *text)
{
    return strdup(text != NULL ? text : "");
}

static int
inject_add(sp_http_batch *batch, const char *sender, const char *recipient,
           const char *data, size_t len, const char *event_fields,
           int64_t not_before_ms, sp_error *err)
{
    struct daemon_inject *inject = batch->inject;
    struct inject_job *job = sp_calloc(1, sizeof(*job));
    int rc;

    if (job == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    job->batch = batch;
    job->inject = inject;
    job->not_before_ms = not_before_ms;
    job->message = (sp_buf)SP_BUF_INIT;
    job->sender = inject_copy(sender);
    job->recipient = inject_copy(recipient);
    job->event_fields = inject_copy(event_fields);
    snprintf(job->identity, sizeof(job->identity), "%s", batch->identity);
    snprintf(job->client_ip, sizeof(job->client_ip), "%s", batch->client_ip);
    rc = sp_buf_append(&job->message, data, len);
    if (rc != SP_OK || job->sender == NULL || job->recipient == NULL ||
        job->event_fields == NULL) {
        inject_job_free(job);
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    }

    /* Wait for room in the window, then send it on its way. */
    pthread_mutex_lock(&batch->lock);
    while (batch->in_flight >= INJECT_WINDOW)
        pthread_cond_wait(&batch->changed, &batch->lock);
    batch->in_flight++;
    pthread_mutex_unlock(&batch->lock);
    sp_queue_new_id(inject->deps.queue, job->queue_id);
    rc = daemon_signer_submit(inject->deps.signer, job->message.data,
                              job->message.len, inject_signed, job);
    if (rc != SP_OK) {
        pthread_mutex_lock(&batch->lock);
        batch->in_flight--;
        pthread_mutex_unlock(&batch->lock);
        inject_job_free(job);
        return sp_err_set(err, rc, "out of memory");
    }
    return SP_OK;
}

static void
inject_fail(sp_http_batch *batch, const char *sender, const char *recipient,
            const char *event_fields, const char *reason)
{
    json_t *fields = json_loads(event_fields ? event_fields : "{}", 0, NULL);
    json_t *more = json_pack("{s:s, s:s, s:s, s:s, s:s}", "rcpt_to", recipient,
                             "msg_from", sender, "ip_address", batch->client_ip,
                             "identity", batch->identity, "raw_reason", reason);
    char *text;
    sp_error err;

    if (fields == NULL || more == NULL || json_object_update(fields, more)) {
        json_decref(fields);
        fields = NULL;
    }
    json_decref(more);
    text = sp_event_text("generation_failure", fields);
    if (text == NULL ||
        sp_queue_event(batch->inject->deps.queue, text, &err) != SP_OK)
        sp_log_warning("event type=generation_failure error=\"%s\"",
                       text ? err.text : "out of memory");
    free(text);

    pthread_mutex_lock(&batch->lock);
    batch->refused++;
    if (batch->why[0] == '\0')
        snprintf(batch->why, sizeof(batch->why), "%.250s", reason);
    pthread_mutex_unlock(&batch->lock);
}

static void
inject_finish(sp_http_batch *batch, size_t *accepted, size_t *refused,
              char *why, size_t why_size)
{
    pthread_mutex_lock(&batch->lock);
    while (batch->in_flight > 0)
        pthread_cond_wait(&batch->changed, &batch->lock);
    *accepted = batch->accepted;
    *refused = batch->refused;
    snprintf(why, why_size, "%s", batch->why);
    pthread_mutex_unlock(&batch->lock);
    pthread_cond_destroy(&batch->changed);
    pthread_mutex_destroy(&batch->lock);
    sp_free(batch);
}

void
daemon_inject_init(struct daemon_inject *inject,
                   const struct daemon_smtp_deps *deps)
{
    inject->deps = *deps;
    inject->ops = (sp_http_injector){
        .arg = inject,
        .begin = inject_begin,
        .add = inject_add,
        .fail = inject_fail,
        .finish = inject_finish,
    };
}
