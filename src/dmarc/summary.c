/*
 * summary.c: summaries of stored aggregate reports, and the address
 * lists that say which sources are the operator's own.
 *
 * Owns sp_dmarc_summary_* and sp_dmarc_sources_*.  Per domain it counts
 * messages by the verdicts the receivers gave (policy_evaluated: DMARC
 * passes when aligned DKIM or aligned SPF passes), by source address, by
 * DKIM selector (from auth_results, with alignment judged here against
 * the header From by organizational domain, which needs the Public
 * Suffix List: libpsl), by SPF check and by the reasons receivers gave
 * for overriding the policy.
 *
 * A selector that a receiver could not verify (permerror, temperror,
 * neutral, policy) while another signature of the same message passed
 * is counted as "unsupported", not as a failure: that is how receivers
 * without Ed25519 report a message signed with both RSA and Ed25519.
 *
 * Maps are GLib hash tables (GLib comes with GMime).
 */
#include "summary.h"

#include <arpa/inet.h>
#include <glib.h>
#include <libpsl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SUMMARY_MAX_FOREIGN 20 /* failing foreign sources listed */
#define SUMMARY_KEY_SEP     "\x1f"

/* ------------------------------------------------------------------------
 * Address lists.
 */

typedef struct source_net {
    int family;
    unsigned char address[16];
    unsigned prefix; /* bits that must match */
} source_net;

struct sp_dmarc_sources {
    source_net *nets;
    size_t count;
};

int
sp_dmarc_sources_parse(const char *const *items, size_t count,
                       sp_dmarc_sources **out, sp_error *err)
{
    sp_dmarc_sources *sources = sp_calloc(1, sizeof(*sources));

    *out = NULL;
    if (sources == NULL ||
        (count > 0 &&
         (sources->nets = sp_calloc(count, sizeof(*sources->nets))) == NULL)) {
        sp_dmarc_sources_free(sources);
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    }

    for (size_t i = 0; i < count; i++) {
        source_net *net = &sources->nets[i];
        char text[64];
        char *slash, *end;
        unsigned long prefix;

        snprintf(text, sizeof(text), "%s", items[i]);
        slash = strchr(text, '/');
        if (slash != NULL)
            *slash = '\0';
        net->family = strchr(text, ':') != NULL ? AF_INET6 : AF_INET;
        if (strlen(items[i]) >= sizeof(text) ||
            inet_pton(net->family, text, net->address) != 1) {
            sp_dmarc_sources_free(sources);
            return sp_err_set(err, SP_EINVAL,
                              "\"%.64s\" is not an IP address or network",
                              items[i]);
        }
        net->prefix = net->family == AF_INET ? 32 : 128;
        if (slash != NULL) {
            prefix = strtoul(slash + 1, &end, 10);
            if (slash[1] < '0' || slash[1] > '9' || *end != '\0' ||
                prefix > net->prefix) {
                sp_dmarc_sources_free(sources);
                return sp_err_set(err, SP_EINVAL,
                                  "\"%.64s\": the prefix length is out of "
                                  "range",
                                  items[i]);
            }
            net->prefix = (unsigned)prefix;
        }
        sources->count++;
    }
    *out = sources;
    return SP_OK;
}

bool
sp_dmarc_sources_match(const sp_dmarc_sources *sources, const char *ip)
{
    unsigned char address[16];
    int family;

    if (sources == NULL || ip == NULL)
        return false;
    family = strchr(ip, ':') != NULL ? AF_INET6 : AF_INET;
    if (inet_pton(family, ip, address) != 1)
        return false;

    for (size_t i = 0; i < sources->count; i++) {
        const source_net *net = &sources->nets[i];
        unsigned whole = net->prefix / 8, rest = net->prefix % 8;

        if (net->family != family || memcmp(net->address, address, whole) != 0)
            continue;
        if (rest == 0 ||
            ((net->address[whole] ^ address[whole]) & (0xFF00 >> rest)) == 0)
            return true;
    }
    return false;
}

void
sp_dmarc_sources_free(sp_dmarc_sources *sources)
{
    if (sources == NULL)
        return;
    sp_free(sources->nets);
    sp_free(sources);
}

/* ------------------------------------------------------------------------
 * Alignment.
 */

static const psl_ctx_t *summary_psl;
static pthread_once_t summary_psl_once = PTHREAD_ONCE_INIT;

/* The newest list: Debian's file when newer than the built-in one. */
static void
summary_load_psl(void)
{
    summary_psl = psl_latest(NULL);
    if (summary_psl == NULL)
        summary_psl = psl_builtin();
}

/* The organizational domain of name, lower-cased into out. */
static void
organizational(const char *name, char *out, size_t size)
{
    const char *registrable;
    size_t i;

    for (i = 0; name[i] != '\0' && i + 1 < size; i++)
        out[i] =
            (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
    out[i] = '\0';
    while (i > 0 && out[i - 1] == '.')
        out[--i] = '\0';

    pthread_once(&summary_psl_once, summary_load_psl);
    registrable =
        summary_psl != NULL ? psl_registrable_domain(summary_psl, out) : NULL;
    if (registrable != NULL && registrable != out)
        memmove(out, registrable, strlen(registrable) + 1);
}

/* Relaxed alignment (RFC 7489 3.1): the same organizational domain. */
static bool
aligned(const char *domain, const char *header_from)
{
    char a[256], b[256];

    if (domain == NULL || header_from == NULL || domain[0] == '\0' ||
        header_from[0] == '\0')
        return false;
    organizational(domain, a, sizeof(a));
    organizational(header_from, b, sizeof(b));
    return strcmp(a, b) == 0;
}

/* ------------------------------------------------------------------------
 * The tallies.
 */

/*
 * Add n to a tally without passing INT64_MAX: counts come from receivers,
 * and the document holds them as signed 64-bit numbers.
 */
#define TALLY(field, n)                                                        \
    ((field) = (uint64_t)INT64_MAX - (field) < (uint64_t)(n)                   \
                   ? (uint64_t)INT64_MAX                                       \
                   : (field) + (uint64_t)(n))

/* Messages judged, passing, and passing aligned. */
typedef struct tally {
    uint64_t messages, pass, aligned;
} tally;

static const char *const result_names[] = {"none",      "pass",    "fail",
                                           "policy",    "neutral", "temperror",
                                           "permerror", "other"};
#define RESULTS (sizeof(result_names) / sizeof(result_names[0]))

static const char *const disposition_names[] = {"none", "pass", "quarantine",
                                                "reject", "other"};
#define DISPOSITIONS 5

typedef struct selector_entry {
    char *domain;
    char *selector;
    bool own;
    tally dkim;
    uint64_t unsupported; /* not verified while another signature passed */
    uint64_t results[RESULTS];
} selector_entry;

typedef struct source_entry {
    char *ip;
    bool own;
    uint64_t messages, dmarc_pass, dkim_aligned, spf_aligned;
    uint64_t dispositions[DISPOSITIONS];
    tally spf;
    GHashTable *selectors; /* "domain\x1fselector" -> selector_entry */
} source_entry;

typedef struct reporter_entry {
    char *org_name;
    uint64_t reports, messages;
} reporter_entry;

typedef struct override_entry {
    char *type;
    char *comment;
    uint64_t messages;
} override_entry;

typedef struct domain_entry {
    char *domain;
    uint64_t reports, messages, dmarc_pass, dkim_aligned, spf_aligned;
    uint64_t dispositions[DISPOSITIONS];
    int64_t first, last;
    GHashTable *seen;      /* "org\x1freport_id" of the reports counted */
    GHashTable *reporters; /* org_name -> reporter_entry */
    GHashTable *sources;   /* ip -> source_entry */
    GHashTable *selectors; /* "domain\x1fselector" -> selector_entry */
    GHashTable *overrides; /* "type\x1fcomment" -> override_entry */
} domain_entry;

struct sp_dmarc_summary {
    sp_dmarc_ownership own;
    GHashTable *domains; /* domain -> domain_entry */
};

static void
selector_free(gpointer data)
{
    selector_entry *entry = data;

    g_free(entry->domain);
    g_free(entry->selector);
    g_free(entry);
}

static void
source_free(gpointer data)
{
    source_entry *entry = data;

    g_free(entry->ip);
    g_hash_table_destroy(entry->selectors);
    g_free(entry);
}

static void
reporter_free(gpointer data)
{
    reporter_entry *entry = data;

    g_free(entry->org_name);
    g_free(entry);
}

static void
override_free(gpointer data)
{
    override_entry *entry = data;

    g_free(entry->type);
    g_free(entry->comment);
    g_free(entry);
}

static void
domain_free(gpointer data)
{
    domain_entry *entry = data;

    g_free(entry->domain);
    g_hash_table_destroy(entry->seen);
    g_hash_table_destroy(entry->reporters);
    g_hash_table_destroy(entry->sources);
    g_hash_table_destroy(entry->selectors);
    g_hash_table_destroy(entry->overrides);
    g_free(entry);
}

static GHashTable *
table_new(GDestroyNotify free_value)
{
    return g_hash_table_new_full(g_str_hash, g_str_equal, g_free, free_value);
}

sp_dmarc_summary *
sp_dmarc_summary_new(const sp_dmarc_ownership *own)
{
    sp_dmarc_summary *summary = g_new0(sp_dmarc_summary, 1);

    if (own != NULL)
        summary->own = *own;
    summary->domains = table_new(domain_free);
    return summary;
}

void
sp_dmarc_summary_free(sp_dmarc_summary *summary)
{
    if (summary == NULL)
        return;
    g_hash_table_destroy(summary->domains);
    g_free(summary);
}

static domain_entry *
domain_get(sp_dmarc_summary *summary, const char *name)
{
    domain_entry *entry = g_hash_table_lookup(summary->domains, name);

    if (entry != NULL)
        return entry;
    entry = g_new0(domain_entry, 1);
    entry->domain = g_strdup(name); /* lower case already: see the caller */
    entry->first = INT64_MAX;
    entry->seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    entry->reporters = table_new(reporter_free);
    entry->sources = table_new(source_free);
    entry->selectors = table_new(selector_free);
    entry->overrides = table_new(override_free);
    g_hash_table_insert(summary->domains, g_strdup(name), entry);
    return entry;
}

/*
 * The entry of the source at written; an address is known by its usual
 * form (inet_ntop), so "2001:DB8:0::1" and "2001:db8::1" are one source.
 */
static source_entry *
source_get(sp_dmarc_summary *summary, domain_entry *domain, const char *written)
{
    char ip[INET6_ADDRSTRLEN];
    unsigned char address[16];
    int family = strchr(written, ':') != NULL ? AF_INET6 : AF_INET;
    source_entry *entry;

    if (inet_pton(family, written, address) != 1 ||
        inet_ntop(family, address, ip, sizeof(ip)) == NULL)
        snprintf(ip, sizeof(ip), "%.45s", written);
    entry = g_hash_table_lookup(domain->sources, ip);
    if (entry != NULL)
        return entry;
    entry = g_new0(source_entry, 1);
    entry->ip = g_strdup(ip);
    entry->own = summary->own.own_source != NULL &&
                 summary->own.own_source(summary->own.arg, ip);
    entry->selectors = table_new(selector_free);
    g_hash_table_insert(domain->sources, g_strdup(ip), entry);
    return entry;
}

static selector_entry *
selector_get(sp_dmarc_summary *summary, GHashTable *table, const char *domain,
             const char *selector)
{
    char *lower = g_ascii_strdown(domain, -1);
    char *key = g_strconcat(lower, SUMMARY_KEY_SEP, selector, NULL);
    selector_entry *entry = g_hash_table_lookup(table, key);

    if (entry != NULL) {
        g_free(key);
        g_free(lower);
        return entry;
    }
    entry = g_new0(selector_entry, 1);
    entry->domain = lower;
    entry->selector = g_strdup(selector);
    entry->own =
        selector[0] != '\0' && summary->own.own_selector != NULL &&
        summary->own.own_selector(summary->own.arg, entry->domain, selector);
    g_hash_table_insert(table, key, entry);
    return entry;
}

static size_t
result_index(const char *result)
{
    for (size_t i = 0; result != NULL && i + 1 < RESULTS; i++)
        if (strcmp(result, result_names[i]) == 0)
            return i;
    return RESULTS - 1;
}

static size_t
disposition_index(const char *disposition)
{
    for (size_t i = 0; disposition != NULL && i + 1 < DISPOSITIONS; i++)
        if (strcmp(disposition, disposition_names[i]) == 0)
            return i;
    return DISPOSITIONS - 1;
}

/* A result that says the receiver could not judge the signature. */
static bool
unjudged(const char *result)
{
    return result != NULL &&
           (strcmp(result, "permerror") == 0 ||
            strcmp(result, "temperror") == 0 ||
            strcmp(result, "neutral") == 0 || strcmp(result, "policy") == 0);
}

/* The DKIM results of a record, into the domain's and the source's. */
static void
count_dkim(sp_dmarc_summary *summary, domain_entry *domain,
           source_entry *source, const sp_dmarc_record_view *record,
           uint64_t count)
{
    bool any_pass = false;

    for (size_t i = 0; i < record->n_dkim; i++)
        any_pass |= record->dkim_results[i].result != NULL &&
                    strcmp(record->dkim_results[i].result, "pass") == 0;

    for (size_t i = 0; i < record->n_dkim; i++) {
        const sp_dmarc_dkim *dkim = &record->dkim_results[i];
        const char *selector = dkim->selector != NULL ? dkim->selector : "";
        const char *name = dkim->domain != NULL ? dkim->domain : "";
        bool pass = dkim->result != NULL && strcmp(dkim->result, "pass") == 0;
        bool in_line = pass && aligned(name, record->header_from);
        selector_entry *entries[2] = {
            selector_get(summary, domain->selectors, name, selector),
            selector_get(summary, source->selectors, name, selector)};

        for (size_t k = 0; k < 2; k++) {
            TALLY(entries[k]->dkim.messages, count);
            TALLY(entries[k]->dkim.pass, pass ? count : 0);
            TALLY(entries[k]->dkim.aligned, in_line ? count : 0);
            TALLY(entries[k]->results[result_index(dkim->result)], count);
            if (any_pass && unjudged(dkim->result))
                TALLY(entries[k]->unsupported, count);
        }
    }
}

/* The SPF check of a record: the MAIL FROM one when there are several. */
static void
count_spf(source_entry *source, const sp_dmarc_record_view *record,
          uint64_t count)
{
    const sp_dmarc_spf *chosen = NULL;

    for (size_t i = 0; i < record->n_spf; i++)
        if (chosen == NULL ||
            (record->spf_results[i].scope != NULL &&
             strcmp(record->spf_results[i].scope, "mfrom") == 0))
            chosen = &record->spf_results[i];
    if (chosen == NULL)
        return;
    TALLY(source->spf.messages, count);
    if (chosen->result != NULL && strcmp(chosen->result, "pass") == 0) {
        TALLY(source->spf.pass, count);
        if (aligned(chosen->domain, record->header_from))
            TALLY(source->spf.aligned, count);
    }
}

/* The reasons receivers gave for another disposition than the policy's. */
static void
count_overrides(domain_entry *domain, const char *reasons_json, uint64_t count)
{
    json_t *reasons =
        reasons_json != NULL ? json_loads(reasons_json, 0, NULL) : NULL;
    size_t i;
    json_t *reason;

    json_array_foreach(reasons, i, reason) {
        const char *type = json_string_value(json_object_get(reason, "type"));
        const char *comment =
            json_string_value(json_object_get(reason, "comment"));
        char *key;
        override_entry *entry;

        type = type != NULL ? type : "";
        comment = comment != NULL ? comment : "";
        key = g_strconcat(type, SUMMARY_KEY_SEP, comment, NULL);
        entry = g_hash_table_lookup(domain->overrides, key);
        if (entry == NULL) {
            entry = g_new0(override_entry, 1);
            entry->type = g_strdup(type);
            entry->comment = g_strdup(comment);
            g_hash_table_insert(domain->overrides, key, entry);
        } else {
            g_free(key);
        }
        TALLY(entry->messages, count);
    }
    json_decref(reasons);
}

int
sp_dmarc_summary_add(sp_dmarc_summary *summary,
                     const sp_dmarc_record_view *record)
{
    uint64_t count = record->count > 0 ? (uint64_t)record->count : 0;
    const char *org = record->org_name != NULL ? record->org_name : "";
    domain_entry *domain;
    source_entry *source;
    reporter_entry *reporter;
    char *report_key, *lower;
    bool dkim_pass, spf_pass;
    size_t disposition;

    lower = g_ascii_strdown(record->domain != NULL ? record->domain : "", -1);
    domain = domain_get(summary, lower);
    g_free(lower);
    reporter = g_hash_table_lookup(domain->reporters, org);
    if (reporter == NULL) {
        reporter = g_new0(reporter_entry, 1);
        reporter->org_name = g_strdup(org);
        g_hash_table_insert(domain->reporters, g_strdup(org), reporter);
    }

    /* A report is counted once, at its first record. */
    report_key =
        g_strconcat(org, SUMMARY_KEY_SEP,
                    record->report_id != NULL ? record->report_id : "", NULL);
    if (g_hash_table_add(domain->seen, report_key)) {
        domain->reports++;
        reporter->reports++;
    }
    if (record->begin < domain->first)
        domain->first = record->begin;
    if (record->end > domain->last)
        domain->last = record->end;

    /* The receivers' verdicts. */
    dkim_pass = record->dkim != NULL && strcmp(record->dkim, "pass") == 0;
    spf_pass = record->spf != NULL && strcmp(record->spf, "pass") == 0;
    disposition = disposition_index(record->disposition);
    source = source_get(summary, domain,
                        record->source_ip != NULL ? record->source_ip : "");
    TALLY(reporter->messages, count);
    TALLY(domain->messages, count);
    TALLY(source->messages, count);
    TALLY(domain->dmarc_pass, dkim_pass || spf_pass ? count : 0);
    TALLY(source->dmarc_pass, dkim_pass || spf_pass ? count : 0);
    TALLY(domain->dkim_aligned, dkim_pass ? count : 0);
    TALLY(source->dkim_aligned, dkim_pass ? count : 0);
    TALLY(domain->spf_aligned, spf_pass ? count : 0);
    TALLY(source->spf_aligned, spf_pass ? count : 0);
    TALLY(domain->dispositions[disposition], count);
    TALLY(source->dispositions[disposition], count);

    count_dkim(summary, domain, source, record, count);
    count_spf(source, record, count);
    count_overrides(domain, record->reasons_json, count);
    return SP_OK;
}

/* ------------------------------------------------------------------------
 * The document.
 */

static json_t *
dispositions_json(const uint64_t *counts)
{
    json_t *object = json_object();

    for (size_t i = 0; i < DISPOSITIONS; i++)
        if (counts[i] > 0)
            json_object_set_new(object, disposition_names[i],
                                json_integer((json_int_t)counts[i]));
    return object;
}

static json_t *
tally_json(const tally *t)
{
    return json_pack("{s:I, s:I, s:I}", "messages", (json_int_t)t->messages,
                     "pass", (json_int_t)t->pass, "aligned_pass",
                     (json_int_t)t->aligned);
}

/* Most messages first, then by name, so the output is stable. */
static gint
by_selector(gconstpointer a, gconstpointer b)
{
    const selector_entry *x = *(selector_entry *const *)a;
    const selector_entry *y = *(selector_entry *const *)b;

    if (x->dkim.messages != y->dkim.messages)
        return x->dkim.messages > y->dkim.messages ? -1 : 1;
    if (strcmp(x->domain, y->domain) != 0)
        return strcmp(x->domain, y->domain);
    return strcmp(x->selector, y->selector);
}

static gint
by_source(gconstpointer a, gconstpointer b)
{
    const source_entry *x = *(source_entry *const *)a;
    const source_entry *y = *(source_entry *const *)b;

    if (x->messages != y->messages)
        return x->messages > y->messages ? -1 : 1;
    return strcmp(x->ip, y->ip);
}

static gint
by_reporter(gconstpointer a, gconstpointer b)
{
    const reporter_entry *x = *(reporter_entry *const *)a;
    const reporter_entry *y = *(reporter_entry *const *)b;

    if (x->messages != y->messages)
        return x->messages > y->messages ? -1 : 1;
    return strcmp(x->org_name, y->org_name);
}

static gint
by_override(gconstpointer a, gconstpointer b)
{
    const override_entry *x = *(override_entry *const *)a;
    const override_entry *y = *(override_entry *const *)b;

    if (x->messages != y->messages)
        return x->messages > y->messages ? -1 : 1;
    return strcmp(x->type, y->type) != 0 ? strcmp(x->type, y->type)
                                         : strcmp(x->comment, y->comment);
}

static gint
by_domain(gconstpointer a, gconstpointer b)
{
    return strcmp((*(domain_entry *const *)a)->domain,
                  (*(domain_entry *const *)b)->domain);
}

/* The values of table, sorted. */
static GPtrArray *
sorted(GHashTable *table, GCompareFunc compare)
{
    GPtrArray *list = g_ptr_array_new();
    GHashTableIter iter;
    gpointer value;

    g_hash_table_iter_init(&iter, table);
    while (g_hash_table_iter_next(&iter, NULL, &value))
        g_ptr_array_add(list, value);
    g_ptr_array_sort(list, compare);
    return list;
}

static json_t *
selectors_json(GHashTable *table)
{
    GPtrArray *list = sorted(table, by_selector);
    json_t *array = json_array();

    for (guint i = 0; i < list->len; i++) {
        const selector_entry *entry = g_ptr_array_index(list, i);
        json_t *results = json_object();

        for (size_t k = 0; k < RESULTS; k++)
            if (entry->results[k] > 0)
                json_object_set_new(
                    results, result_names[k],
                    json_integer((json_int_t)entry->results[k]));
        json_array_append_new(
            array,
            json_pack("{s:s, s:o, s:b, s:I, s:I, s:I, s:I, s:o}", "domain",
                      entry->domain, "selector",
                      entry->selector[0] != '\0' ? json_string(entry->selector)
                                                 : json_null(),
                      "own", entry->own, "messages",
                      (json_int_t)entry->dkim.messages, "pass",
                      (json_int_t)entry->dkim.pass, "aligned_pass",
                      (json_int_t)entry->dkim.aligned, "unsupported",
                      (json_int_t)entry->unsupported, "results", results));
    }
    g_ptr_array_free(list, TRUE);
    return array;
}

static json_t *
sources_json(GPtrArray *list)
{
    json_t *array = json_array();

    for (guint i = 0; i < list->len; i++) {
        const source_entry *entry = g_ptr_array_index(list, i);

        json_array_append_new(
            array,
            json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:o, s:o, s:o}", "ip",
                      entry->ip, "own", entry->own, "messages",
                      (json_int_t)entry->messages, "dmarc_pass",
                      (json_int_t)entry->dmarc_pass, "dkim_aligned_pass",
                      (json_int_t)entry->dkim_aligned, "spf_aligned_pass",
                      (json_int_t)entry->spf_aligned, "dispositions",
                      dispositions_json(entry->dispositions), "spf",
                      tally_json(&entry->spf), "selectors",
                      selectors_json(entry->selectors)));
    }
    return array;
}

/* Whether p=quarantine would spare the operator's own mail. */
static json_t *
advice_json(GPtrArray *sources)
{
    json_t *own_failing = json_array(), *foreign_failing = json_array();
    uint64_t own_messages = 0, own_failed = 0, foreign_failed = 0;
    size_t own_count = 0;
    char sentence[400];
    bool ready;

    for (guint i = 0; i < sources->len; i++) {
        const source_entry *entry = g_ptr_array_index(sources, i);
        uint64_t failed = entry->messages - entry->dkim_aligned;

        if (entry->own) {
            own_count++;
            TALLY(own_messages, entry->messages);
            TALLY(own_failed, failed);
            if (failed > 0)
                json_array_append_new(
                    own_failing,
                    json_pack("{s:s, s:I, s:I}", "ip", entry->ip, "messages",
                              (json_int_t)entry->messages, "dkim_aligned_fail",
                              (json_int_t)failed));
        } else if (entry->messages > entry->dmarc_pass) {
            TALLY(foreign_failed, entry->messages - entry->dmarc_pass);
            if (json_array_size(foreign_failing) < SUMMARY_MAX_FOREIGN)
                json_array_append_new(
                    foreign_failing,
                    json_pack(
                        "{s:s, s:I, s:I}", "ip", entry->ip, "messages",
                        (json_int_t)entry->messages, "dmarc_fail",
                        (json_int_t)(entry->messages - entry->dmarc_pass)));
        }
    }

    ready = own_count > 0 && own_failed == 0;
    if (own_count == 0)
        snprintf(sentence, sizeof(sentence),
                 "no source in these reports is marked as ours "
                 "(dmarc_own_sources, delivery_source), so own mail cannot "
                 "be told from others'");
    else if (ready)
        snprintf(sentence, sizeof(sentence),
                 "every own source passed aligned DKIM for all %llu "
                 "messages of the period: p=quarantine would spare them",
                 (unsigned long long)own_messages);
    else
        snprintf(sentence, sizeof(sentence),
                 "%llu of %llu messages from own sources failed aligned "
                 "DKIM: p=quarantine would send them to the spam folder",
                 (unsigned long long)own_failed,
                 (unsigned long long)own_messages);

    return json_pack("{s:b, s:s, s:o, s:I, s:o}", "quarantine_ready", ready,
                     "reason", sentence, "own_failing", own_failing,
                     "foreign_dmarc_fail", (json_int_t)foreign_failed,
                     "foreign_failing", foreign_failing);
}

static json_t *
domain_json(const domain_entry *domain)
{
    GPtrArray *reporters = sorted(domain->reporters, by_reporter);
    GPtrArray *sources = sorted(domain->sources, by_source);
    GPtrArray *overrides = sorted(domain->overrides, by_override);
    json_t *reporter_list = json_array(), *override_list = json_array();
    json_t *object;

    for (guint i = 0; i < reporters->len; i++) {
        const reporter_entry *entry = g_ptr_array_index(reporters, i);

        json_array_append_new(reporter_list,
                              json_pack("{s:s, s:I, s:I}", "org_name",
                                        entry->org_name, "reports",
                                        (json_int_t)entry->reports, "messages",
                                        (json_int_t)entry->messages));
    }
    for (guint i = 0; i < overrides->len; i++) {
        const override_entry *entry = g_ptr_array_index(overrides, i);

        json_array_append_new(override_list,
                              json_pack("{s:s, s:s, s:I}", "type", entry->type,
                                        "comment", entry->comment, "messages",
                                        (json_int_t)entry->messages));
    }

    object = json_pack(
        "{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:o, "
        "s:o}",
        "domain", domain->domain, "reports", (json_int_t)domain->reports,
        "first", (json_int_t)domain->first, "last", (json_int_t)domain->last,
        "messages", (json_int_t)domain->messages, "dmarc_pass",
        (json_int_t)domain->dmarc_pass, "dkim_aligned_pass",
        (json_int_t)domain->dkim_aligned, "spf_aligned_pass",
        (json_int_t)domain->spf_aligned, "dispositions",
        dispositions_json(domain->dispositions), "reporters", reporter_list,
        "sources", sources_json(sources), "selectors",
        selectors_json(domain->selectors), "overrides", override_list, "advice",
        advice_json(sources));

    g_ptr_array_free(reporters, TRUE);
    g_ptr_array_free(sources, TRUE);
    g_ptr_array_free(overrides, TRUE);
    return object;
}

json_t *
sp_dmarc_summary_json(const sp_dmarc_summary *summary)
{
    GPtrArray *domains = sorted(summary->domains, by_domain);
    json_t *list = json_array();

    for (guint i = 0; i < domains->len; i++)
        json_array_append_new(list, domain_json(g_ptr_array_index(domains, i)));
    g_ptr_array_free(domains, TRUE);
    return json_pack("{s:o}", "domains", list);
}
