/*
 * lifecycle.c: moving keys through pending, active, retiring and retired.
 *
 * Owns keys__plan (the decisions, a pure function of the keys, what DNS
 * showed, the queue and the clock), sp_keys_wanted, sp_keys_step,
 * sp_keys_activate and sp_keys_report_free.
 *
 * Each algorithm of a domain has its own lifecycle.  A key becomes active
 * only once DNS shows its record and the record holds the key: signing
 * with a key nobody can look up fails every message.  The key it replaces
 * keeps its record while it retires, and retires only when no queued
 * message carries its signatures and the latest x= among them has passed,
 * so nothing signed with it stops verifying before it expires.
 */
#include "keys_int.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

void
sp_keys_report_free(sp_keys_report *report)
{
    sp_free(report->changes);
    report->changes = NULL;
    report->count = 0;
}

/* Append an entry to the report. */
static int
report_add(sp_keys_report *report, const sp_store_key *row,
           sp_store_key_state to, bool made, const char *why)
{
    sp_keys_change *grown =
        sp_realloc(report->changes, (report->count + 1) * sizeof(*grown));
    sp_keys_change *change;

    if (grown == NULL)
        return SP_ENOMEM;
    report->changes = grown;
    change = &report->changes[report->count++];
    memset(change, 0, sizeof(*change));
    change->key_id = row->id;
    snprintf(change->domain, sizeof(change->domain), "%s", row->domain);
    snprintf(change->selector, sizeof(change->selector), "%s", row->selector);
    snprintf(change->algorithm, sizeof(change->algorithm), "%s",
             row->algorithm);
    change->from = made ? SP_STORE_KEY_PENDING : row->state;
    change->to = to;
    change->made = made;
    snprintf(change->why, sizeof(change->why), "%s", why);
    return SP_OK;
}

/* A date for people: 2027-03-01 12:00 UTC. */
static const char *
plan_date(int64_t when, char *out, size_t size)
{
    time_t t = (time_t)when;
    struct tm utc;

    gmtime_r(&t, &utc);
    strftime(out, size, "%Y-%m-%d %H:%M UTC", &utc);
    return out;
}

/* What DNS showed for a key, from the facts; NULL when not looked up. */
static const keys__fact *
plan_fact(const keys__facts *facts, int64_t id)
{
    for (size_t i = 0; i < facts->count; i++)
        if (facts->items[i].key_id == id)
            return &facts->items[i];
    return NULL;
}

/* Pending keys of one algorithm: activate the one DNS shows. */
static int
plan_pending(const keys__plan_input *in, const char *algorithm,
             sp_keys_report *plan, bool *activated)
{
    int rc = SP_OK;

    for (size_t i = 0; i < in->count && rc == SP_OK; i++) {
        const sp_store_key *row = &in->rows[i];
        const keys__fact *fact = plan_fact(in->facts, row->id);
        char why[300];

        if (row->state != SP_STORE_KEY_PENDING ||
            strcmp(row->algorithm, algorithm) != 0)
            continue;
        if (row->testing && !in->testing_allowed) {
            rc = report_add(plan, row, row->state, false,
                            "made with t=y for testing, but the domain is "
                            "not in dkim_testing_domains; it will not sign");
        } else if (*activated) {
            rc = report_add(plan, row, row->state, false,
                            "another key of this algorithm became active "
                            "in the same step");
        } else if (fact != NULL && fact->seen == SP_KEYS_SEEN_MATCH) {
            rc = report_add(plan, row, SP_STORE_KEY_ACTIVE, false,
                            "its record is visible in DNS and holds the "
                            "key");
            *activated = true;
        } else {
            snprintf(why, sizeof(why), "%s",
                     fact ? fact->why : "not looked up in DNS yet");
            rc = report_add(plan, row, row->state, false, why);
        }
    }

    /* The active key the new one replaces starts retiring. */
    for (size_t i = 0; i < in->count && rc == SP_OK && *activated; i++) {
        const sp_store_key *row = &in->rows[i];

        if (row->state == SP_STORE_KEY_ACTIVE &&
            strcmp(row->algorithm, algorithm) == 0)
            rc = report_add(plan, row, SP_STORE_KEY_RETIRING, false,
                            "replaced by a new key; its record stays "
                            "published while mail signed with it may "
                            "still be checked");
    }
    return rc;
}

/* Whether a new key of algorithm is due, and why. */
static bool
plan_due(const keys__plan_input *in, const char *algorithm, bool activated,
         char *why, size_t size)
{
    const sp_store_key *active = NULL;
    char when[40];

    for (size_t i = 0; i < in->count; i++) {
        const sp_store_key *row = &in->rows[i];

        if (strcmp(row->algorithm, algorithm) != 0)
            continue;
        if (row->state == SP_STORE_KEY_PENDING)
            return false; /* one new key at a time */
        if (row->state == SP_STORE_KEY_ACTIVE)
            active = row;
    }
    if (activated || !sp_config_list_has(in->rotating, algorithm))
        return false; /* only configured algorithms get new keys */
    if (active == NULL) {
        snprintf(why, size, "the domain has no %s key yet", algorithm);
        return true;
    }
    if (in->force) {
        snprintf(why, size, "rotation asked for now");
        return true;
    }
    if (in->now - active->activated >= in->rotation_period) {
        snprintf(why, size, "%s has signed since %s, a full rotation period",
                 active->selector,
                 plan_date(active->activated, when, sizeof(when)));
        return true;
    }
    return false;
}

/* Retiring keys: retired once nothing can depend on them any more. */
static int
plan_retiring(const keys__plan_input *in, sp_keys_report *plan)
{
    int rc = SP_OK;

    for (size_t i = 0; i < in->count && rc == SP_OK; i++) {
        const sp_store_key *row = &in->rows[i];
        const keys__fact *fact = plan_fact(in->facts, row->id);
        int64_t horizon = row->last_expiry;
        char why[300], when[40];

        if (row->state != SP_STORE_KEY_RETIRING)
            continue;

        /* Signatures without x= stay valid; wait one expiry period. */
        if (horizon == 0 && row->signatures > 0)
            horizon = row->retiring + in->signature_expiry;
        if (fact != NULL && fact->queued > 0) {
            snprintf(why, sizeof(why), "%lld queued message%s its signature",
                     (long long)fact->queued,
                     fact->queued == 1 ? " carries" : "s carry");
            rc = report_add(plan, row, row->state, false, why);
        } else if (horizon > in->now) {
            snprintf(why, sizeof(why),
                     "its signatures stay valid until %s (x=)",
                     plan_date(horizon, when, sizeof(when)));
            rc = report_add(plan, row, row->state, false, why);
        } else {
            rc = report_add(plan, row, SP_STORE_KEY_RETIRED, false,
                            "no queued message carries its signature and "
                            "every signature has expired; publish the "
                            "revocation record");
        }
    }
    return rc;
}

int
keys__plan(const keys__plan_input *in, sp_keys_report *plan, char due[][24],
           size_t *due_count, size_t due_max)
{
    int rc = SP_OK;

    *due_count = 0;
    for (size_t a = 0; a < in->algorithm_count && rc == SP_OK; a++) {
        const char *algorithm = in->algorithms[a];
        bool activated = false;
        char why[300];

        rc = plan_pending(in, algorithm, plan, &activated);
        if (rc == SP_OK && *due_count < due_max &&
            plan_due(in, algorithm, activated, why, sizeof(why))) {
            snprintf(due[*due_count], 24, "%s", algorithm);
            (*due_count)++;
        }
    }
    if (rc == SP_OK)
        rc = plan_retiring(in, plan);
    return rc;
}

int
sp_keys_wanted(sp_keys *keys, const char *domain, char ***names, size_t *count,
               sp_error *err)
{
    sp_store_key *rows = NULL;
    size_t total = 0, used = 0;
    int rc;

    *names = NULL;
    *count = 0;
    rc = sp_store_key_list(keys->store, domain, &rows, &total, err);
    if (rc != SP_OK)
        return rc;
    *names = sp_calloc(total + 1, sizeof(**names));
    if (*names == NULL)
        rc = sp_err_set(err, SP_ENOMEM, "out of memory");
    for (size_t i = 0; rc == SP_OK && i < total; i++) {
        char name[400];

        if (rows[i].state != SP_STORE_KEY_PENDING)
            continue;
        sp_keys_name(&rows[i], name, sizeof(name));
        (*names)[used] = sp_strndup(name, strlen(name));
        if ((*names)[used++] == NULL)
            rc = sp_err_set(err, SP_ENOMEM, "out of memory");
    }
    sp_store_keys_free(rows, total);
    *count = used;
    return rc;
}

/* Gather the facts a plan needs: DNS verdicts and queued counts. */
static int
step_facts(sp_keys *keys, const sp_store_key *rows, size_t count,
           sp_keys_lookup_fn lookup, void *lookup_arg, keys__facts *facts,
           sp_error *err)
{
    facts->items = sp_calloc(count + 1, sizeof(*facts->items));
    facts->count = 0;
    if (facts->items == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");

    for (size_t i = 0; i < count; i++) {
        keys__fact *fact = &facts->items[facts->count];
        int rc;

        fact->key_id = rows[i].id;
        fact->seen = SP_KEYS_SEEN_FAILED;
        snprintf(fact->why, sizeof(fact->why), "not looked up in DNS yet");

        /* Judged at once: the answer lives until the next lookup. */
        if (rows[i].state == SP_STORE_KEY_PENDING && lookup != NULL) {
            sp_dns_answer answer = {.status = SP_DNS_SERVFAIL};
            char name[400];

            lookup(lookup_arg, sp_keys_name(&rows[i], name, sizeof(name)),
                   &answer);
            sp_keys_seen(&rows[i], &answer, &fact->seen, fact->why,
                         sizeof(fact->why));
        }
        if (rows[i].state == SP_STORE_KEY_RETIRING) {
            int64_t spooled = 0;

            rc = sp_store_key_queued(keys->store, rows[i].id, &fact->queued,
                                     err);
            if (rc == SP_OK && keys->queued != NULL)
                rc = keys->queued(keys->queued_arg, rows[i].id, &spooled, err);
            if (rc != SP_OK)
                return rc;
            fact->queued += spooled;
        }
        facts->count++;
    }
    return SP_OK;
}

/* Carry out the moves of a plan; entries that stay are blockers. */
static int
step_apply(sp_keys *keys, const sp_keys_report *plan, int64_t now,
           sp_error *err)
{
    for (size_t i = 0; i < plan->count; i++) {
        const sp_keys_change *change = &plan->changes[i];
        int rc;

        if (change->from == change->to)
            continue;
        rc = sp_store_key_set_state(keys->store, change->key_id, change->to,
                                    now, false, err);
        if (rc != SP_OK)
            return rc;
    }
    return SP_OK;
}

/* Make the keys the plan found due, and report each as made. */
static int
step_make(sp_keys *keys, const char *domain, int64_t now,
          const sp_config_list *testing, char due[][24], size_t due_count,
          sp_keys_report *report, sp_error *err)
{
    for (size_t i = 0; i < due_count; i++) {
        sp_store_key made;
        const char *warning = NULL;
        bool is_rsa = strcmp(due[i], "rsa") == 0;
        int rc;

        rc = sp_keys_generate(
            keys, domain, NULL, due[i],
            is_rsa ? (unsigned)keys->config->dkim_rsa_bits : 0,
            sp_config_list_has(testing, domain), now, &made, &warning, err);
        if (rc != SP_OK)
            return rc;
        rc = report_add(report, &made, SP_STORE_KEY_PENDING, true,
                        "made for the rotation; publish its record");
        sp_store_key_clear(&made);
        if (rc != SP_OK)
            return sp_err_set(err, rc, "out of memory");
    }
    return SP_OK;
}

/* The algorithms a domain's plan covers: configured and present. */
static size_t
step_algorithms(const sp_config *config, const sp_store_key *rows, size_t count,
                const char *out[8])
{
    size_t used = 0;

    for (size_t i = 0; i < config->dkim_algorithms.count && used < 8; i++)
        out[used++] = config->dkim_algorithms.items[i];
    for (size_t i = 0; i < count && used < 8; i++) {
        bool known = false;

        for (size_t k = 0; k < used; k++)
            known = known || strcmp(out[k], rows[i].algorithm) == 0;
        if (!known)
            out[used++] = rows[i].algorithm;
    }
    return used;
}

int
sp_keys_step(sp_keys *keys, const char *domain, int64_t now, bool force,
             sp_keys_lookup_fn lookup, void *lookup_arg, sp_keys_report *report,
             sp_error *err)
{
    const sp_config *config = keys->config;
    sp_store_key *rows = NULL;
    keys__facts facts = {NULL, 0};
    const char *algorithms[8];
    char due[8][24];
    size_t count = 0, due_count = 0;
    keys__plan_input in;
    int rc;

    report->changes = NULL;
    report->count = 0;
    rc = sp_store_key_list(keys->store, domain, &rows, &count, err);
    if (rc == SP_OK)
        rc = step_facts(keys, rows, count, lookup, lookup_arg, &facts, err);
    if (rc == SP_OK) {
        in = (keys__plan_input){
            .rows = rows,
            .count = count,
            .facts = &facts,
            .algorithms = algorithms,
            .algorithm_count = step_algorithms(config, rows, count, algorithms),
            .now = now,
            .force = force,
            .rotating = &config->dkim_algorithms,
            .rotation_period = config->dkim_rotation_period,
            .signature_expiry = config->dkim_signature_expiry,
            .testing_allowed =
                sp_config_list_has(&config->dkim_testing_domains, domain),
        };
        rc = keys__plan(&in, report, due, &due_count, 8);
        if (rc == SP_ENOMEM)
            sp_err_set(err, rc, "out of memory");
    }
    if (rc == SP_OK)
        rc = step_apply(keys, report, now, err);

    if (rc == SP_OK)
        rc = step_make(keys, domain, now, &config->dkim_testing_domains, due,
                       due_count, report, err);

    sp_free(facts.items);
    sp_store_keys_free(rows, count);
    return rc;
}

int
sp_keys_activate(sp_keys *keys, const char *domain, const char *selector,
                 int64_t now, sp_keys_report *report, sp_error *err)
{
    sp_store_key *rows = NULL, *target = NULL;
    size_t count = 0;
    int rc;

    report->changes = NULL;
    report->count = 0;
    rc = sp_store_key_list(keys->store, domain, &rows, &count, err);
    for (size_t i = 0; rc == SP_OK && i < count; i++)
        if (strcasecmp(rows[i].selector, selector) == 0)
            target = &rows[i];
    if (rc == SP_OK && target == NULL)
        rc = sp_err_set(err, SP_ENOTFOUND, "%s has no key with selector %s",
                        domain, selector);
    if (rc == SP_OK && target->state != SP_STORE_KEY_PENDING)
        rc = sp_err_set(err, SP_EINVAL,
                        "%s of %s is %s; only a pending key can be made "
                        "active",
                        selector, domain,
                        sp_store_key_state_name(target->state));
    if (rc == SP_OK && target->testing &&
        !sp_config_list_has(&keys->config->dkim_testing_domains, domain))
        rc = sp_err_set(err, SP_EPOLICY,
                        "%s was made with t=y for testing; add %s to "
                        "dkim_testing_domains to let it sign",
                        selector, domain);

    /* The active key of the same algorithm retires; this one signs. */
    for (size_t i = 0; rc == SP_OK && i < count; i++) {
        if (rows[i].state != SP_STORE_KEY_ACTIVE ||
            strcmp(rows[i].algorithm, target->algorithm) != 0)
            continue;
        rc = sp_store_key_set_state(keys->store, rows[i].id,
                                    SP_STORE_KEY_RETIRING, now, false, err);
        if (rc == SP_OK &&
            report_add(report, &rows[i], SP_STORE_KEY_RETIRING, false,
                       "replaced by a key activated by the operator") != SP_OK)
            rc = sp_err_set(err, SP_ENOMEM, "out of memory");
    }
    if (rc == SP_OK)
        rc = sp_store_key_set_state(keys->store, target->id,
                                    SP_STORE_KEY_ACTIVE, now, true, err);
    if (rc == SP_OK &&
        report_add(report, target, SP_STORE_KEY_ACTIVE, false,
                   "activated by the operator without seeing its record; "
                   "it signs unconfirmed") != SP_OK)
        rc = sp_err_set(err, SP_ENOMEM, "out of memory");
    sp_store_keys_free(rows, count);
    return rc;
}
