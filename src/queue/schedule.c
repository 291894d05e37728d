/*
 * schedule.c: the scheduler's ready queues, limits and retry times.
 *
 * Owns sp_sched_*.  The scheduler holds, in memory, what is waiting to
 * be delivered: one job per message and destination (the recipients of
 * the message at that destination).  A job not yet due waits in a heap
 * ordered by time; a due one waits in its destination's ready queue, in
 * the order it became due.  Per destination the scheduler counts the
 * connections the owner has open and keeps the send times of the last
 * messages, so that a connection limit and a rate (messages per minute
 * or hour, over a sliding window) hold exactly.  Rules also carry what
 * the owner needs per destination beyond scheduling: the TLS policy and
 * the source addresses.
 *
 * It does no I/O and reads no clock: the owner passes the time, opens
 * and closes the connections, and records outcomes in the spool.  The
 * spool stays the truth; after a restart the owner adds every pending
 * recipient again.
 */
#include "queue.h"

#include "config/config.h"

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SCHED_MAX_RATE 100000 /* send times kept per destination */

struct sp_sched_dest {
    char *name;
    char *route; /* the domain whose servers it connects to */
    sp_sched_limits limits;
    sp_sched_job *head, *tail; /* ready jobs, first due first */
    size_t ready;              /* jobs in that queue */
    unsigned connections;      /* open or opening */
    unsigned waiting;          /* of those, able to take a job now
                                  without a new connection */
    int64_t *sent;             /* ring of the last send times */
    size_t sent_used, sent_next;
    bool listed;                       /* in the scheduler's busy list */
    struct sp_sched_dest *next_listed; /* that list */
};

struct sp_sched {
    sp_sched_limits defaults;
    sp_sched_rule *rules; /* owned copies */
    size_t rule_count;

    sp_sched_dest **table; /* open addressing by name */
    size_t table_size;     /* a power of two */
    size_t dest_count;

    sp_sched_job **heap; /* jobs not yet due, earliest first */
    size_t heap_used, heap_size;

    sp_sched_dest *listed; /* destinations with ready jobs */
    size_t jobs;           /* jobs held, due or not */
};

/* ------------------------------------------------------------------------
 * Destinations by name
 */

static size_t
sched_hash(const char *name)
{
    size_t hash = 5381;

    for (; *name != '\0'; name++)
        hash = hash * 33 + (unsigned char)tolower((unsigned char)*name);
    return hash;
}

/* Whether a rule's pattern covers name: exact, or "*.suffix". */
static bool
sched_rule_matches(const char *pattern, const char *name)
{
    size_t name_len = strlen(name), suffix_len;

    if (strcasecmp(pattern, name) == 0)
        return true; /* a shared destination is named by its pattern */

    if (strncmp(pattern, "*.", 2) != 0)
        return strcasecmp(pattern, name) == 0;
    suffix_len = strlen(pattern + 1); /* ".suffix" */
    return name_len > suffix_len &&
           strcasecmp(name + name_len - suffix_len, pattern + 1) == 0;
}

static int
sched_table_grow(sp_sched *sched)
{
    size_t size = sched->table_size ? sched->table_size * 2 : 64;
    sp_sched_dest **table = sp_calloc(size, sizeof(*table));

    if (table == NULL)
        return SP_ENOMEM;
    for (size_t i = 0; i < sched->table_size; i++) {
        sp_sched_dest *dest = sched->table[i];
        size_t slot;

        if (dest == NULL)
            continue;
        slot = sched_hash(dest->name) & (size - 1);
        while (table[slot] != NULL)
            slot = (slot + 1) & (size - 1);
        table[slot] = dest;
    }
    sp_free(sched->table);
    sched->table = table;
    sched->table_size = size;
    return SP_OK;
}

sp_sched_dest *
sp_sched_dest_find(sp_sched *sched, const char *name)
{
    size_t slot;

    if (sched->table_size == 0)
        return NULL;
    slot = sched_hash(name) & (sched->table_size - 1);
    for (; sched->table[slot] != NULL;
         slot = (slot + 1) & (sched->table_size - 1))
        if (strcasecmp(sched->table[slot]->name, name) == 0)
            return sched->table[slot];
    return NULL;
}

/* The destination called name, made with its rule's limits if new. */
static sp_sched_dest *
sched_dest(sp_sched *sched, const char *name, const char *route)
{
    sp_sched_dest *dest = sp_sched_dest_find(sched, name);
    size_t slot;

    if (dest != NULL)
        return dest;
    if ((sched->dest_count + 1) * 2 > sched->table_size &&
        sched_table_grow(sched) != SP_OK)
        return NULL;
    dest = sp_calloc(1, sizeof(*dest));
    if (dest == NULL || (dest->name = sp_strndup(name, strlen(name))) == NULL ||
        (dest->route = sp_strndup(route, strlen(route))) == NULL) {
        if (dest != NULL)
            sp_free(dest->name);
        sp_free(dest);
        return NULL;
    }
    for (char *p = dest->name; *p != '\0'; p++)
        *p = (char)tolower((unsigned char)*p);
    dest->limits = sched->defaults;
    for (size_t i = 0; i < sched->rule_count; i++)
        if (sched_rule_matches(sched->rules[i].pattern, name)) {
            dest->limits = sched->rules[i].limits;
            break;
        }
    if (dest->limits.rate > SCHED_MAX_RATE)
        dest->limits.rate = SCHED_MAX_RATE;
    if (dest->limits.rate > 0) {
        dest->sent = sp_calloc(dest->limits.rate, sizeof(*dest->sent));
        if (dest->sent == NULL) {
            sp_free(dest->name);
            sp_free(dest->route);
            sp_free(dest);
            return NULL;
        }
    }
    slot = sched_hash(dest->name) & (sched->table_size - 1);
    while (sched->table[slot] != NULL)
        slot = (slot + 1) & (sched->table_size - 1);
    sched->table[slot] = dest;
    sched->dest_count++;
    return dest;
}

/* Put dest on the busy list, once. */
static void
sched_list(sp_sched *sched, sp_sched_dest *dest)
{
    if (dest->listed)
        return;
    dest->listed = true;
    dest->next_listed = sched->listed;
    sched->listed = dest;
}

/* ------------------------------------------------------------------------
 * The heap of jobs not yet due
 */

static void
heap_swap(sp_sched_job **heap, size_t a, size_t b)
{
    sp_sched_job *job = heap[a];

    heap[a] = heap[b];
    heap[b] = job;
}

static int
heap_push(sp_sched *sched, sp_sched_job *job)
{
    size_t i;

    if (sched->heap_used == sched->heap_size) {
        size_t size = sched->heap_size ? sched->heap_size * 2 : 256;
        sp_sched_job **grown = sp_realloc(sched->heap, size * sizeof(*grown));

        if (grown == NULL)
            return SP_ENOMEM;
        sched->heap = grown;
        sched->heap_size = size;
    }
    i = sched->heap_used++;
    sched->heap[i] = job;
    while (i > 0 && sched->heap[(i - 1) / 2]->due_ms > sched->heap[i]->due_ms) {
        heap_swap(sched->heap, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    return SP_OK;
}

static sp_sched_job *
heap_pop(sp_sched *sched)
{
    sp_sched_job *top = sched->heap[0];
    size_t i = 0;

    sched->heap[0] = sched->heap[--sched->heap_used];
    for (;;) {
        size_t left = 2 * i + 1, right = left + 1, least = i;

        if (left < sched->heap_used &&
            sched->heap[left]->due_ms < sched->heap[least]->due_ms)
            least = left;
        if (right < sched->heap_used &&
            sched->heap[right]->due_ms < sched->heap[least]->due_ms)
            least = right;
        if (least == i)
            break;
        heap_swap(sched->heap, i, least);
        i = least;
    }
    return top;
}

/* ------------------------------------------------------------------------
 * The scheduler
 */

int
sp_sched_new(const sp_sched_limits *defaults, const sp_sched_rule *rules,
             size_t rule_count, sp_sched **out, sp_error *err)
{
    sp_sched *sched = sp_calloc(1, sizeof(*sched));

    *out = NULL;
    if (sched == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    sched->defaults = *defaults;
    if (rule_count > 0) {
        sched->rules = sp_calloc(rule_count, sizeof(*sched->rules));
        if (sched->rules == NULL) {
            sp_sched_free(sched);
            return sp_err_set(err, SP_ENOMEM, "out of memory");
        }
    }
    for (size_t i = 0; i < rule_count; i++)
        sched->rules[i] = rules[i];
    sched->rule_count = rule_count;
    *out = sched;
    return SP_OK;
}

/* Put a due job at the end of its destination's ready queue. */
static void
sched_ready(sp_sched *sched, sp_sched_job *job)
{
    sp_sched_dest *dest = job->dest;

    job->next = NULL;
    if (dest->tail != NULL)
        dest->tail->next = job;
    else
        dest->head = job;
    dest->tail = job;
    dest->ready++;
    sched_list(sched, dest);
}

const char *
sp_sched_dest_for(const sp_sched *sched, const char *domain,
                  const char *mx_host)
{
    for (size_t i = 0; i < sched->rule_count; i++) {
        const sp_sched_rule *rule = &sched->rules[i];
        bool by_mx = strncasecmp(rule->pattern, "mx:", 3) == 0;

        if (!by_mx && rule->shared && sched_rule_matches(rule->pattern, domain))
            return rule->pattern;
        if (by_mx && mx_host != NULL &&
            sched_rule_matches(rule->pattern + 3, mx_host))
            return rule->pattern;
    }
    return domain;
}

bool
sp_sched_groups_by_mx(const sp_sched *sched)
{
    for (size_t i = 0; i < sched->rule_count; i++)
        if (strncasecmp(sched->rules[i].pattern, "mx:", 3) == 0)
            return true;
    return false;
}

int
sp_sched_add(sp_sched *sched, const char *dest_name, const char *route,
             const char *id, const size_t *positions, size_t count,
             int64_t due_ms, int64_t now_ms, sp_sched_job **out)
{
    sp_sched_dest *dest = sched_dest(sched, dest_name, route);
    sp_sched_job *job;

    if (out != NULL)
        *out = NULL;
    if (dest == NULL)
        return SP_ENOMEM;
    job = sp_calloc(1, sizeof(*job) + count * sizeof(job->positions[0]));
    if (job == NULL)
        return SP_ENOMEM;
    job->dest = dest;
    snprintf(job->id, sizeof(job->id), "%s", id);
    job->due_ms = due_ms;
    job->count = count;
    memcpy(job->positions, positions, count * sizeof(positions[0]));
    if (due_ms > now_ms && heap_push(sched, job) != SP_OK) {
        sp_free(job);
        return SP_ENOMEM;
    }
    if (due_ms <= now_ms)
        sched_ready(sched, job);
    sched->jobs++;
    if (out != NULL)
        *out = job;
    return SP_OK;
}

/* The time dest's rate allows its next message; 0 for now or no rate. */
static int64_t
sched_rate_open(const sp_sched_dest *dest, int64_t now_ms)
{
    int64_t oldest;

    if (dest->limits.rate == 0 || dest->sent_used < dest->limits.rate)
        return 0;
    oldest = dest->sent[dest->sent_next]; /* the ring is full */
    return oldest + dest->limits.rate_window_ms > now_ms
               ? oldest + dest->limits.rate_window_ms
               : 0;
}

int64_t
sp_sched_advance(sp_sched *sched, int64_t now_ms)
{
    int64_t next = INT64_MAX;

    while (sched->heap_used > 0 && sched->heap[0]->due_ms <= now_ms)
        sched_ready(sched, heap_pop(sched));
    if (sched->heap_used > 0)
        next = sched->heap[0]->due_ms;

    /* Forget destinations with nothing ready; note rate openings. */
    for (sp_sched_dest **link = &sched->listed; *link != NULL;) {
        sp_sched_dest *dest = *link;
        int64_t open = sched_rate_open(dest, now_ms);

        if (dest->ready == 0) {
            dest->listed = false;
            *link = dest->next_listed;
            continue;
        }
        if (open > 0 && open < next)
            next = open;
        link = &dest->next_listed;
    }
    return next;
}

sp_sched_dest *
sp_sched_connect_next(sp_sched *sched, int64_t now_ms)
{
    for (sp_sched_dest *dest = sched->listed; dest != NULL;
         dest = dest->next_listed) {
        /*
         * A new connection only for jobs the open ones cannot carry:
         * more ready than are waiting for a job, and more than the open
         * connections send in their share.  A backlog spreads over
         * parallel connections; a few messages share one.
         */
        if (dest->ready <= dest->waiting ||
            dest->ready <= (size_t)dest->connections *
                               dest->limits.messages_per_connection ||
            dest->connections >= dest->limits.max_connections ||
            sched_rate_open(dest, now_ms) > 0)
            continue;
        dest->connections++;
        dest->waiting++;
        return dest;
    }
    return NULL;
}

void
sp_sched_waiting(sp_sched_dest *dest, int delta)
{
    assert(delta >= 0 || dest->waiting >= (unsigned)-delta);
    dest->waiting = (unsigned)((int)dest->waiting + delta);
}

void
sp_sched_disconnected(sp_sched_dest *dest, bool was_waiting)
{
    assert(dest->connections > 0 && (!was_waiting || dest->waiting > 0));
    dest->connections--;
    if (was_waiting)
        dest->waiting--;
}

sp_sched_job *
sp_sched_take(sp_sched *sched, sp_sched_dest *dest, unsigned sent_here,
              int64_t now_ms)
{
    sp_sched_job *job = dest->head;

    if (job == NULL || sent_here >= dest->limits.messages_per_connection ||
        sched_rate_open(dest, now_ms) > 0)
        return NULL;
    dest->head = job->next;
    if (dest->head == NULL)
        dest->tail = NULL;
    dest->ready--;
    job->next = NULL;
    if (dest->limits.rate > 0) {
        dest->sent[dest->sent_next] = now_ms;
        dest->sent_next = (dest->sent_next + 1) % dest->limits.rate;
        if (dest->sent_used < dest->limits.rate)
            dest->sent_used++;
    }
    (void)sched;
    return job;
}

sp_sched_job *
sp_sched_take_all(sp_sched *sched, sp_sched_dest *dest)
{
    sp_sched_job *jobs = dest->head;

    (void)sched;
    dest->head = dest->tail = NULL;
    dest->ready = 0;
    return jobs;
}

void
sp_sched_done(sp_sched *sched, sp_sched_job *job)
{
    assert(sched->jobs > 0);
    sched->jobs--;
    sp_free(job);
}

int
sp_sched_retry(sp_sched *sched, sp_sched_job *job, int64_t due_ms,
               int64_t now_ms)
{
    job->due_ms = due_ms;
    if (due_ms > now_ms)
        return heap_push(sched, job);
    sched_ready(sched, job);
    return SP_OK;
}

const char *
sp_sched_dest_name(const sp_sched_dest *dest)
{
    return dest->name;
}

const char *
sp_sched_dest_route(const sp_sched_dest *dest)
{
    return dest->route;
}

const sp_sched_limits *
sp_sched_dest_limits(const sp_sched_dest *dest)
{
    return &dest->limits;
}

size_t
sp_sched_dest_ready(const sp_sched_dest *dest)
{
    return dest->ready;
}

size_t
sp_sched_jobs(const sp_sched *sched)
{
    return sched->jobs;
}

void
sp_sched_free(sp_sched *sched)
{
    if (sched == NULL)
        return;
    for (size_t i = 0; i < sched->heap_used; i++)
        sp_free(sched->heap[i]);
    for (size_t i = 0; i < sched->table_size; i++) {
        sp_sched_dest *dest = sched->table[i];

        if (dest == NULL)
            continue;
        for (sp_sched_job *job = dest->head, *next; job != NULL; job = next) {
            next = job->next;
            sp_free(job);
        }
        sp_free(dest->sent);
        sp_free(dest->name);
        sp_free(dest->route);
        sp_free(dest);
    }
    sp_free(sched->rules);
    sp_free(sched->table);
    sp_free(sched->heap);
    sp_free(sched);
}

/* ------------------------------------------------------------------------
 * Retry times and rules from text
 */

int64_t
sp_sched_retry_delay(const int64_t *schedule, size_t count, unsigned attempts)
{
    if (count == 0)
        return 600; /* ten minutes, when no schedule is given */
    if (attempts == 0)
        attempts = 1;
    return schedule[attempts - 1 < count ? attempts - 1 : count - 1];
}

static const char *const sched_tls_names[] = {"may", "encrypt", "verify"};

const char *
sp_sched_tls_name(sp_sched_tls tls)
{
    return (size_t)tls < 3 ? sched_tls_names[tls] : "unknown";
}

/* Whether text is a list of IP addresses separated by commas. */
static bool
sched_address_list(const char *text)
{
    char copy[256], *save = NULL, *address;
    unsigned char bytes[16];
    size_t count = 0;

    if (strlen(text) >= sizeof(copy))
        return false;
    snprintf(copy, sizeof(copy), "%s", text);
    for (address = strtok_r(copy, ",", &save); address != NULL;
         address = strtok_r(NULL, ",", &save), count++)
        if (inet_pton(AF_INET, address, bytes) != 1 &&
            inet_pton(AF_INET6, address, bytes) != 1)
            return false;
    return count > 0;
}

bool
sp_sched_limits_set(sp_sched_limits *limits, const char *key, const char *value)
{
    char *end;
    long long number;

    if (strcmp(key, "tls") == 0) {
        for (size_t i = 0; i < 3; i++)
            if (strcmp(value, sched_tls_names[i]) == 0) {
                limits->tls = (sp_sched_tls)i;
                return true;
            }
        return false;
    }
    if (strcmp(key, "source") == 0) {
        if (!sched_address_list(value))
            return false;
        snprintf(limits->source, sizeof(limits->source), "%s", value);
        return true;
    }
    number = strtoll(value, &end, 10);
    if (end == value || number < 0 || number > 1000000)
        return false;
    if (strcmp(key, "connections") == 0 && *end == '\0' && number > 0) {
        limits->max_connections = (unsigned)number;
        return true;
    }
    if (strcmp(key, "messages") == 0 && *end == '\0' && number > 0) {
        limits->messages_per_connection = (unsigned)number;
        return true;
    }
    if (strcmp(key, "rate") == 0 && number <= SCHED_MAX_RATE &&
        (strcmp(end, "/m") == 0 || strcmp(end, "/h") == 0)) {
        limits->rate = (unsigned)number;
        limits->rate_window_ms = end[1] == 'm' ? 60000 : 3600000;
        return true;
    }
    return false;
}

int
sp_sched_rule_parse(const char *text, const sp_sched_limits *defaults,
                    sp_sched_rule *rule, sp_error *err)
{
    char copy[512], *save = NULL, *word, *pattern;

    if (strlen(text) >= sizeof(copy))
        return sp_err_set(err, SP_ESYNTAX, "destination rule too long");
    snprintf(copy, sizeof(copy), "%s", text);
    word = strtok_r(copy, " \t", &save);
    pattern = word;
    if (pattern != NULL && strncasecmp(pattern, "mx:", 3) == 0)
        pattern += 3;
    if (pattern == NULL || *pattern == '\0' || strchr(pattern, '=') != NULL ||
        strchr(pattern, ':') != NULL ||
        (strchr(pattern, '*') != NULL && strncmp(pattern, "*.", 2) != 0) ||
        strchr(pattern + 1, '*') != NULL)
        return sp_err_set(err, SP_ESYNTAX,
                          "destination rule \"%.80s\": start with a domain, "
                          "*.suffix, or mx: and one of those",
                          text);
    memset(rule, 0, sizeof(*rule));
    if (strlen(word) >= sizeof(rule->pattern))
        return sp_err_set(err, SP_ESYNTAX,
                          "destination rule \"%.80s\": the pattern is too "
                          "long",
                          text);
    snprintf(rule->pattern, sizeof(rule->pattern), "%s", word);
    rule->shared = pattern != word; /* an MX group is one destination */
    rule->limits = *defaults;
    while ((word = strtok_r(NULL, " \t", &save)) != NULL) {
        char *equals = strchr(word, '=');

        if (strcmp(word, "shared") == 0) {
            rule->shared = true;
            continue;
        }
        if (equals != NULL)
            *equals = '\0';
        if (equals == NULL ||
            !sp_sched_limits_set(&rule->limits, word, equals + 1))
            return sp_err_set(err, SP_ESYNTAX,
                              "destination rule \"%.80s\": \"%.40s\" is not "
                              "shared, connections=N, messages=N, "
                              "rate=N/m|N/h, tls=may|encrypt|verify or "
                              "source=ADDRESS[,ADDRESS...]",
                              text, word);
    }
    return SP_OK;
}

/* ------------------------------------------------------------------------
 * The delivery settings, for the daemon and for "sealpost config check"
 */

/* The defaults of every destination; SP_ESYNTAX naming the setting. */
static int
sched_defaults(const sp_config *config, sp_sched_limits *defaults,
               sp_error *err)
{
    *defaults = (sp_sched_limits){
        .max_connections =
            (unsigned)config->delivery_connections_per_destination,
        .messages_per_connection =
            (unsigned)config->delivery_messages_per_connection,
    };
    if (!sp_sched_limits_set(defaults, "tls", config->delivery_tls))
        return sp_err_set(err, SP_ESYNTAX,
                          "delivery_tls = %.40s: use may, encrypt or verify",
                          config->delivery_tls);
    if (config->delivery_source[0] != '\0' &&
        !sp_sched_limits_set(defaults, "source", config->delivery_source))
        return sp_err_set(err, SP_ESYNTAX,
                          "delivery_source = %.80s: IP addresses separated "
                          "by commas",
                          config->delivery_source);
    return SP_OK;
}

int
sp_sched_settings(const sp_config *config, sp_sched_limits *defaults,
                  sp_sched_rule **rules, size_t *count, sp_error *err)
{
    char *copy = NULL, *save = NULL;
    int rc = sched_defaults(config, defaults, err);

    *rules = NULL;
    *count = 0;
    if (rc != SP_OK)
        return rc;
    copy = sp_strndup(config->delivery_rules, strlen(config->delivery_rules));
    if (copy == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    for (char *text = strtok_r(copy, ";", &save); rc == SP_OK && text != NULL;
         text = strtok_r(NULL, ";", &save)) {
        sp_sched_rule *grown;

        while (*text == ' ' || *text == '\t')
            text++;
        if (*text == '\0')
            continue;
        grown = sp_realloc(*rules, (*count + 1) * sizeof(*grown));
        if (grown == NULL) {
            rc = sp_err_set(err, SP_ENOMEM, "out of memory");
            break;
        }
        *rules = grown;
        rc = sp_sched_rule_parse(text, defaults, &grown[*count], err);
        if (rc == SP_OK)
            (*count)++;
        else {
            char why[sizeof(err->text)];

            snprintf(why, sizeof(why), "%s", err->text);
            sp_err_set(err, rc, "delivery_rules: %.200s", why);
        }
    }
    sp_free(copy);
    if (rc != SP_OK) {
        sp_free(*rules);
        *rules = NULL;
        *count = 0;
    }
    return rc;
}
