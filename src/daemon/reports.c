/*
 * reports.c: DMARC aggregate reports arriving by mail.  Mail to an
 * address of dmarc_report_addresses (the rua= target of the domains) is
 * read and stored as reports, never relayed.
 *
 * Owns daemon_reports_*.  One thread, with its own connection to the
 * store, takes the messages in the order they came: it finds the reports
 * (dmarc/unpack.c), stores each once, and keeps what is not a report,
 * with the reason and the message itself, in the store's bucket of
 * invalid reports.  Either way the message was taken: the client hears
 * 250 once the store has committed, and only a store failure makes it
 * try again later (451).
 */
#include "daemon.h"

#include "dmarc/report.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* One message waiting for the thread. */
struct report_job {
    struct report_job *next;
    char *data; /* owned */
    size_t len;
    char source[160];
    daemon_reports_done_fn *done;
    void *arg;
};

struct daemon_reports {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct report_job *head, *tail; /* under lock */
    bool stopping;                  /* under lock */
    sp_store *store;                /* the thread's own */
    sp_dmarc_limits limits;
};

/* What one message held. */
struct report_tally {
    struct daemon_reports *reports;
    const struct report_job *job;
    size_t read, duplicates, refused;
    int rc; /* SP_OK until the store fails */
    sp_error err;
};

bool
daemon_reports_address(const sp_config *config, const char *recipient)
{
    for (size_t i = 0; i < config->dmarc_report_addresses.count; i++)
        if (strcasecmp(config->dmarc_report_addresses.items[i], recipient) == 0)
            return true;
    return false;
}

/* text made safe for a log line (it comes from senders and reports). */
static const char *
report_escape(char *out, size_t size, const char *text)
{
    return sp_log_escape(out, size, text, strlen(text));
}

/* Keep what could not be read, with the message, in the invalid bucket. */
static void
report_refuse(struct report_tally *tally, const char *part, const char *reason)
{
    char source[400], shown[2][400];

    tally->refused++;
    snprintf(source, sizeof(source), "%s%s%s", tally->job->source,
             part[0] ? ": " : "", part);
    sp_log_warning("dmarc_report source=\"%s\" refused=\"%s\"",
                   report_escape(shown[0], sizeof(shown[0]), source),
                   report_escape(shown[1], sizeof(shown[1]), reason));
    if (tally->rc == SP_OK &&
        sp_store_dmarc_refuse(tally->reports->store, source, reason,
                              tally->job->data, (int64_t)tally->job->len,
                              (int64_t)time(NULL), &tally->err) != SP_OK)
        tally->rc = tally->err.code;
}

/* sp_dmarc_found_fn: one payload of the message. */
static void
report_found(void *arg, const char *part, sp_dmarc_report *report,
             const sp_error *refusal)
{
    struct report_tally *tally = arg;
    sp_error err;
    int rc;

    if (report == NULL) {
        report_refuse(tally, part, refusal->text);
        return;
    }
    rc = tally->rc != SP_OK
             ? tally->rc
             : sp_store_dmarc_add(tally->reports->store, report,
                                  tally->job->source, (int64_t)time(NULL), NULL,
                                  &err);
    if (rc == SP_OK) {
        char shown[4][200];

        tally->read++;
        sp_log_info("dmarc_report source=\"%s\" org=\"%s\" report_id=\"%s\" "
                    "domain=\"%s\" records=%zu",
                    report_escape(shown[0], 200, tally->job->source),
                    report_escape(shown[1], 200, report->org_name),
                    report_escape(shown[2], 200, report->report_id),
                    report_escape(shown[3], 200, report->domain),
                    report->n_rows);
    } else if (rc == SP_EINVAL) {
        tally->duplicates++;
    } else if (tally->rc == SP_OK) {
        tally->rc = rc;
        tally->err = err;
    }
    sp_dmarc_report_free(report);
}

/* One message, whole; then its sender's answer. */
static void
report_take(struct daemon_reports *reports, struct report_job *job)
{
    struct report_tally tally = {.reports = reports, .job = job};
    char summary[200];
    sp_error err;

    if (sp_dmarc_read(job->data, job->len, &reports->limits, report_found,
                      &tally, &err) != SP_OK)
        report_refuse(&tally, "", err.text);

    if (tally.rc != SP_OK) {
        char shown[2][400];

        sp_log_error("dmarc_report source=\"%s\" error=\"%s\"",
                     report_escape(shown[0], 400, job->source),
                     report_escape(shown[1], 400, tally.err.text));
    }
    snprintf(summary, sizeof(summary),
             "%zu report%s read, %zu duplicate%s, %zu refused", tally.read,
             tally.read == 1 ? "" : "s", tally.duplicates,
             tally.duplicates == 1 ? "" : "s", tally.refused);
    job->done(job->arg, tally.rc, summary);
}

static void *
report_thread(void *arg)
{
    struct daemon_reports *reports = arg;

    for (;;) {
        struct report_job *job;

        pthread_mutex_lock(&reports->lock);
        while (reports->head == NULL && !reports->stopping)
            pthread_cond_wait(&reports->wake, &reports->lock);
        job = reports->head;
        if (job != NULL) {
            reports->head = job->next;
            if (reports->head == NULL)
                reports->tail = NULL;
        }
        pthread_mutex_unlock(&reports->lock);
        if (job == NULL)
            return NULL; /* stopping, and nothing is left */

        report_take(reports, job);
        sp_free(job->data);
        sp_free(job);
    }
}

int
daemon_reports_start(const sp_config *config, struct daemon_reports **out,
                     sp_error *err)
{
    struct daemon_reports *reports = sp_calloc(1, sizeof(*reports));

    *out = NULL;
    if (reports == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    if (sp_store_open(config->data_dir, &reports->store, err) != SP_OK) {
        sp_free(reports);
        return err->code;
    }
    sp_dmarc_limits_default(&reports->limits);
    pthread_mutex_init(&reports->lock, NULL);
    pthread_cond_init(&reports->wake, NULL);
    if (pthread_create(&reports->thread, NULL, report_thread, reports) != 0) {
        sp_store_close(reports->store);
        pthread_mutex_destroy(&reports->lock);
        pthread_cond_destroy(&reports->wake);
        sp_free(reports);
        return sp_err_set(err, SP_ENOMEM, "cannot start the report thread");
    }
    *out = reports;
    return SP_OK;
}

int
daemon_reports_submit(struct daemon_reports *reports, const char *data,
                      size_t len, const char *source,
                      daemon_reports_done_fn *done, void *arg)
{
    struct report_job *job = sp_calloc(1, sizeof(*job));

    if (job == NULL || (job->data = sp_malloc(len > 0 ? len : 1)) == NULL) {
        sp_free(job);
        return SP_ENOMEM;
    }
    memcpy(job->data, data, len);
    job->len = len;
    snprintf(job->source, sizeof(job->source), "%s", source);
    job->done = done;
    job->arg = arg;

    pthread_mutex_lock(&reports->lock);
    if (reports->tail != NULL)
        reports->tail->next = job;
    else
        reports->head = job;
    reports->tail = job;
    pthread_cond_signal(&reports->wake);
    pthread_mutex_unlock(&reports->lock);
    return SP_OK;
}

void
daemon_reports_stop(struct daemon_reports *reports)
{
    if (reports == NULL)
        return;
    pthread_mutex_lock(&reports->lock);
    reports->stopping = true;
    pthread_cond_signal(&reports->wake);
    pthread_mutex_unlock(&reports->lock);
    pthread_join(reports->thread, NULL);

    sp_store_close(reports->store);
    pthread_mutex_destroy(&reports->lock);
    pthread_cond_destroy(&reports->wake);
    sp_free(reports);
}
