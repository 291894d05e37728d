/*
 * dkim_task.c: sealpostd's DKIM key lifecycle on a schedule.
 *
 * Owns daemon_dkim_*.  Every dkim_check_interval, for each domain of
 * dkim_domains: the names of its pending keys are looked up through the
 * event loop's resolver, then, when every answer is in, one lifecycle step
 * runs on those answers (keys/lifecycle.c): the same step as "sealpost
 * dkim rotate", so the command and the daemon never disagree.  Each move
 * is an event in the log and in events.jsonl.
 *
 * One check runs at a time; a timer that fires while one is running is
 * skipped, not queued.
 */
#include "daemon.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* What one lookup's callback needs to find its place. */
struct dkim_answer_slot {
    struct dkim_domain_check *check;
    size_t index; /* into names and answers */
};

/* One domain's answers while its lookups are under way. */
struct dkim_domain_check {
    struct daemon_dkim *task;       /* owner */
    struct dkim_domain_check *next; /* in task->checks */
    char *domain;                   /* borrowed from the configuration */
    char **names;                   /* owned, from sp_keys_wanted */
    struct dkim_answer_slot *slots; /* one per name */
    sp_dns_answer *answers;         /* one per name; texts owned below */
    sp_buf *texts;                  /* SP_DNS_MAX_RECORDS per name */
    size_t count;
    size_t waiting; /* lookups not answered yet */
};

/* Take a check off the task's list and free it. */
static void
check_free(struct dkim_domain_check *check)
{
    struct dkim_domain_check **link = &check->task->checks;

    while (*link != NULL && *link != check)
        link = &(*link)->next;
    if (*link == check)
        *link = check->next;
    for (size_t i = 0; i < check->count; i++)
        sp_free(check->names[i]);
    for (size_t i = 0; i < check->count * SP_DNS_MAX_RECORDS; i++)
        sp_buf_free(&check->texts[i]);
    sp_free(check->names);
    sp_free(check->slots);
    sp_free(check->answers);
    sp_free(check->texts);
    sp_free(check);
}

/* The step's lookups, answered from what arrived. */
static void
check_lookup(void *arg, const char *name, sp_dns_answer *answer)
{
    struct dkim_domain_check *check = arg;

    answer->status = SP_DNS_SERVFAIL;
    answer->count = 0;
    for (size_t i = 0; i < check->count; i++)
        if (strcmp(check->names[i], name) == 0)
            *answer = check->answers[i];
}

/* Every answer is in: take the step, log the moves. */
static void
check_step(struct dkim_domain_check *check)
{
    struct daemon_dkim *task = check->task;
    sp_keys_report report = {NULL, 0};
    int64_t now = (int64_t)time(NULL);
    sp_buf notes = SP_BUF_INIT;
    bool changed = false;
    sp_error err;

    if (sp_keys_step(task->keys, check->domain, now, false, check_lookup, check,
                     &report, &err) != SP_OK)
        sp_log_error("dkim_check domain=%s error=\"%s\"", check->domain,
                     err.text);
    for (size_t i = 0; i < report.count; i++) {
        const sp_keys_change *change = &report.changes[i];
        json_t *fields;

        if (!change->made && change->from == change->to)
            continue;
        changed = true;
        fields = json_pack(
            "{s:s, s:s, s:s, s:s, s:s?, s:s, s:I}", "domain", change->domain,
            "selector", change->selector, "algorithm", change->algorithm,
            "state", sp_store_key_state_name(change->to), "previous_state",
            change->made ? NULL : sp_store_key_state_name(change->from),
            "reason", change->why, "at", (json_int_t)now);
        if (sp_events_emit(task->events, "dkim_key", fields, &err) != SP_OK)
            sp_log_warning("dkim_event error=\"%s\"", err.text);
    }
    /*
     * Publishing by DNS update blocks the loop, up to a few seconds per
     * record; it happens once per key and rotation.  It moves to the
     * worker pool when the daemon has one.
     */
    sp_keys_publish(task->keys, &report, &notes);
    for (char *line = notes.data, *end; line != NULL && *line != '\0';
         line = end + 1) {
        end = strchr(line, '\n');
        *end = '\0';
        sp_log_info("dkim_publish domain=%s note=\"%s\"", check->domain, line);
    }
    sp_buf_free(&notes);
    sp_keys_report_free(&report);

    /* New active keys sign from the next message on. */
    if (changed && task->signer != NULL &&
        daemon_signer_reload(task->signer, &err) != SP_OK)
        sp_log_error("dkim_signer domain=%s error=\"%s\"", check->domain,
                     err.text);
    check_free(check);
}

/* One answer arrived: keep a copy, step when it was the last. */
static void
check_answer(void *arg, const sp_dns_answer *answer)
{
    struct dkim_answer_slot *slot = arg;
    struct dkim_domain_check *check = slot->check;
    sp_dns_answer *kept = &check->answers[slot->index];
    sp_buf *texts = &check->texts[slot->index * SP_DNS_MAX_RECORDS];

    kept->status = answer->status;
    kept->count = 0;
    for (size_t i = 0; i < answer->count; i++) {
        if (sp_buf_append(&texts[i], answer->records[i].text,
                          answer->records[i].len) != SP_OK)
            break;
        kept->records[i].text = texts[i].data;
        kept->records[i].len = texts[i].len;
        kept->count++;
    }
    if (--check->waiting == 0)
        check_step(check);
}

/* Start one domain's check: its lookups, or the step at once. */
static void
check_domain(struct daemon_dkim *task, char *domain)
{
    struct dkim_domain_check *check = sp_calloc(1, sizeof(*check));
    sp_error err;

    if (check == NULL) {
        sp_log_error("dkim_check domain=%s error=\"out of memory\"", domain);
        return;
    }
    check->task = task;
    check->domain = domain;
    check->next = task->checks;
    task->checks = check;
    if (sp_keys_wanted(task->keys, domain, &check->names, &check->count,
                       &err) != SP_OK) {
        sp_log_error("dkim_check domain=%s error=\"%s\"", domain, err.text);
        check_free(check);
        return;
    }
    check->slots = sp_calloc(check->count + 1, sizeof(*check->slots));
    check->answers = sp_calloc(check->count + 1, sizeof(*check->answers));
    check->texts =
        sp_calloc(check->count * SP_DNS_MAX_RECORDS + 1, sizeof(*check->texts));
    if (check->slots == NULL || check->answers == NULL ||
        check->texts == NULL) {
        sp_log_error("dkim_check domain=%s error=\"out of memory\"", domain);
        check_free(check);
        return;
    }

    /* Counted before any query starts, so no answer steps too early. */
    check->waiting = check->count + 1;
    for (size_t i = 0; i < check->count; i++) {
        check->slots[i] = (struct dkim_answer_slot){check, i};
        check->answers[i].status = SP_DNS_SERVFAIL;
        if (sp_dns_resolver_txt_async(task->resolver, check->names[i],
                                      check_answer, &check->slots[i],
                                      &err) != SP_OK) {
            sp_log_warning("dkim_check name=%s error=\"%s\"", check->names[i],
                           err.text);
            check->waiting--;
        }
    }
    if (--check->waiting == 0)
        check_step(check);
}

void
daemon_dkim_check(struct daemon_dkim *task)
{
    const sp_config_list *domains = &task->config->dkim_domains;
    sp_error err;

    if (task->checks != NULL) {
        sp_log_warning("dkim_check skipped=yes reason=\"the previous check "
                       "is still waiting for DNS\"");
        return;
    }

    /* The lifecycle judges retiring keys by their latest x=. */
    if (task->signer != NULL &&
        daemon_signer_flush(task->signer, sp_keys_store(task->keys), &err) !=
            SP_OK)
        sp_log_error("dkim_tally error=\"%s\"", err.text);
    for (size_t i = 0; i < domains->count; i++)
        check_domain(task, domains->items[i]);
}

int
daemon_dkim_startup(struct daemon_dkim *task, sp_error *err)
{
    sp_store_key *rows = NULL;
    size_t count = 0;
    int rc;

    /* No t=y key signs unless its domain is explicitly in testing. */
    rc = sp_store_key_list(sp_keys_store(task->keys), NULL, &rows, &count, err);
    for (size_t i = 0; rc == SP_OK && i < count; i++) {
        const sp_store_key *row = &rows[i];

        if (row->state != SP_STORE_KEY_ACTIVE)
            continue;
        if (row->testing &&
            !sp_config_list_has(&task->config->dkim_testing_domains,
                                row->domain))
            rc = sp_err_set(err, SP_EINVAL,
                            "dkim_testing_domains: the active key %s of %s "
                            "publishes t=y (testing), but %s is not in "
                            "dkim_testing_domains",
                            row->selector, row->domain, row->domain);
        else if (row->unconfirmed)
            sp_log_warning("dkim_key domain=%s selector=%s unconfirmed=yes "
                           "note=\"signs although its record was never seen "
                           "in DNS\"",
                           row->domain, row->selector);
    }
    sp_store_keys_free(rows, count);
    return rc;
}

void
daemon_dkim_stop(struct daemon_dkim *task)
{
    /* Checks still waiting for DNS are dropped; the next start redoes them. */
    while (task->checks != NULL)
        check_free(task->checks);
}
