/*
 * dkim_audit.c: "sealpost dkim audit", which looks a domain's DKIM key
 * records, its DomainKeys policy and its DMARC record up in DNS and says,
 * per record, what is wrong and what to do.
 *
 * Owns cli_dkim_audit.  The judging is the DKIM module's
 * (sp_dkim_audit_*) and the DMARC module's (sp_dmarc_record_parse); this
 * file does the DNS (sealpost's resolver, or --dns-file), reads sealpost's
 * own keys from the store, and prints.
 *
 * Selectors audited: those given with --selector, sealpost's own for the
 * domain (compared with the published key), and a built-in list of
 * selectors that well-known senders use, of which only the ones found are
 * reported: DNS cannot list a domain's selectors, so probing the usual
 * names is the only way to see keys others publish for it.
 *
 * The store is only read: a data directory without sealpost.db means no
 * keys of ours, never a store created by an audit.
 *
 * Exit status: 0 nothing to fix, 1 a warning or an error found, 2 usage
 * or configuration, 3 a DNS lookup failed or the store cannot be read
 * (the audit is incomplete; try again).
 */
#include "cli.h"
#include "dkim/dkim.h"
#include "dmarc/dmarc.h"
#include "dns/dns.h"
#include "store/store.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define AUDIT_MAX_GIVEN 32  /* --selector options */
#define AUDIT_SHOWN     120 /* record bytes shown in the readable report */

/*
 * Selectors that well-known senders publish in their customers' domains,
 * with the sender.  Only a guide: anyone may pick any selector, and newer
 * services often use per-customer names (Amazon SES's Easy DKIM tokens,
 * Postmark's dated selectors) that no list can guess.
 */
static const struct audit_known {
    const char *selector;
    const char *sender;
} audit_known[] = {
    {"google", "Google Workspace"},
    {"selector1", "Microsoft 365"},
    {"selector2", "Microsoft 365"},
    {"k1", "Mailchimp"},
    {"k2", "Mailchimp"},
    {"k3", "Mailchimp"},
    {"mandrill", "Mandrill (Mailchimp Transactional)"},
    {"s1", "SendGrid"},
    {"s2", "SendGrid"},
    {"smtpapi", "SendGrid (older accounts)"},
    {"mxvault", "Global Micro"},
    {"dkim", "Hetzner and other hosting"},
    {"default", "cPanel, OpenDKIM and other defaults"},
    {"mail", "Brevo (Sendinblue) and other hosting"},
    {"pm", "Postmark"},
    {"zendesk1", "Zendesk"},
    {"zendesk2", "Zendesk"},
    {"amazonses", "Amazon SES (manual setup)"},
    {"mailjet", "Mailjet"},
    {"smtp", "Mailgun"},
    {"mailo", "Mailgun"},
    {"zoho", "Zoho Mail"},
    {"protonmail", "Proton Mail"},
    {"protonmail2", "Proton Mail"},
    {"protonmail3", "Proton Mail"},
    {"fm1", "Fastmail"},
    {"fm2", "Fastmail"},
    {"fm3", "Fastmail"},
    {"sig1", "Apple iCloud custom domains"},
    {"cm", "Campaign Monitor"},
    {"ctct1", "Constant Contact"},
    {"ctct2", "Constant Contact"},
    {"litesrv", "MailerLite"},
    {"everlytickey1", "Everlytic"},
    {"everlytickey2", "Everlytic"},
    {"turbo-smtp", "turboSMTP"},
};

#define AUDIT_KNOWN_COUNT (sizeof(audit_known) / sizeof(audit_known[0]))

/* Why a selector is audited; the first that applies wins. */
enum audit_source {
    AUDIT_OURS,        /* sealpost holds a key of this selector */
    AUDIT_GIVEN,       /* --selector */
    AUDIT_THIRD_PARTY, /* from audit_known, reported only when found */
};

/* One selector and what was found at it. */
struct audit_selector {
    char name[64];
    enum audit_source source;
    const char *sender;       /* third party: who uses the selector */
    const sp_store_key *ours; /* our key of this selector, or NULL */
    bool reported;            /* something to say: shown in the report */
    sp_buf record;            /* the TXT value evaluated, owned */
    sp_dkim_audit audit;
};

/* A record at a fixed name: the DomainKeys policy, DMARC. */
struct audit_name {
    char name[300]; /* _domainkey.DOMAIN, _dmarc.DOMAIN */
    bool present;   /* a record of the kind was found */
    sp_buf record;  /* the one evaluated, owned */
    sp_dkim_audit audit;
};

struct audit_run {
    char domain[254]; /* lower case, no final dot */
    bool json;
    const char *server;   /* --resolver */
    const char *dns_file; /* --dns-file */
    const char *given[AUDIT_MAX_GIVEN];
    size_t given_count;

    sp_config config;          /* data_dir and resolver */
    sp_dns_table *table;       /* --dns-file, owned */
    sp_dns_resolver *resolver; /* live DNS otherwise, owned */

    bool have_store;    /* the store was read */
    char store[400];    /* a sentence on the store, for the report */
    sp_store_key *keys; /* our keys of the domain, owned */
    size_t key_count;

    struct audit_selector *selectors; /* owned array */
    size_t count;
    size_t probed; /* built-in selectors looked up */
    size_t found;  /* of which found */

    struct audit_name domainkeys;
    struct audit_name dmarc;
    sp_dkim_audit general; /* findings about the domain as a whole */
    bool failed;           /* DNS or the store failed: exit 3 */
};

static void
audit_usage(FILE *out)
{
    fprintf(out,
            "usage: sealpost dkim audit DOMAIN [--selector S ...] [--json]\n"
            "           [--resolver ADDR@PORT | --dns-file F]\n"
            "\n"
            "Looks up DOMAIN's DKIM key records and reports, per selector,\n"
            "what receivers will make of them: missing, key size, testing\n"
            "mode, hashes, revocation, syntax, and whether the key is the\n"
            "one sealpost signs with.  Selectors: those given, sealpost's\n"
            "own (from the data directory), and %zu that well-known senders\n"
            "use (reported when found).  Also checks the DomainKeys policy\n"
            "record and _dmarc.DOMAIN.\n"
            "Exit: 0 nothing to fix, 1 problems found, 2 usage, 3 DNS or\n"
            "store failure.\n",
            AUDIT_KNOWN_COUNT);
}

/* TXT records at name, from the table or live DNS. */
static void
audit_lookup(struct audit_run *run, const char *name, sp_dns_answer *answer)
{
    if (run->table != NULL)
        sp_dns_table_txt(run->table, name, answer);
    else
        sp_dns_resolver_txt(run->resolver, name, answer);
}

/* A DNS failure is a finding and makes the audit incomplete. */
static bool
audit_dns_failed(struct audit_run *run, const char *name,
                 const sp_dns_answer *answer, sp_dkim_audit *audit)
{
    if (answer->status != SP_DNS_SERVFAIL && answer->status != SP_DNS_TIMEOUT)
        return false;
    run->failed = true;
    if (answer->status == SP_DNS_SERVFAIL)
        sp_dkim_audit_add(audit, SP_DKIM_AUDIT_ERROR, "dns_servfail",
                          "DNS failure looking up %s: SERVFAIL (the server "
                          "could not answer); try again",
                          name);
    else
        sp_dkim_audit_add(audit, SP_DKIM_AUDIT_ERROR, "dns_timeout",
                          "DNS failure looking up %s: no answer in time; "
                          "try again",
                          name);
    return true;
}

/* Keep a copy of a record: the resolver's answer lives one query. */
static void
audit_keep(sp_buf *buf, const sp_dns_txt_record *record)
{
    sp_buf_reset(buf);
    if (sp_buf_append(buf, record->text, record->len) != SP_OK)
        sp_log_fatal(CLI_RUNTIME, "out of memory keeping a DNS record");
}

/* No record at a selector: how much that matters depends on whose it is. */
static void
audit_missing(struct audit_selector *sel, const char *name,
              const sp_dns_answer *answer)
{
    const char *why =
        answer->status == SP_DNS_NXDOMAIN ? "NXDOMAIN" : "no TXT record";
    sp_store_key_state state =
        sel->ours ? sel->ours->state : SP_STORE_KEY_ACTIVE;

    if (sel->ours != NULL && state == SP_STORE_KEY_RETIRED)
        sp_dkim_audit_add(&sel->audit, SP_DKIM_AUDIT_INFO, "missing",
                          "no key record at %s (%s): sealpost's key of this "
                          "selector is retired, so this is expected",
                          name, why);
    else if (sel->ours != NULL && state == SP_STORE_KEY_PENDING)
        sp_dkim_audit_add(&sel->audit, SP_DKIM_AUDIT_WARNING, "missing",
                          "no key record at %s (%s): sealpost's pending key "
                          "waits for it to be published ('sealpost dkim dns' "
                          "prints it)",
                          name, why);
    else
        sp_dkim_audit_add(&sel->audit, SP_DKIM_AUDIT_ERROR, "missing",
                          "no key record at %s (%s)%s", name, why,
                          sel->ours ? ": sealpost signs with this selector, "
                                      "so every signature fails"
                                    : "");
}

/* Compare with our key, or say why not. */
static void
audit_compare(struct audit_run *run, struct audit_selector *sel)
{
    int rc = SP_OK;

    if (sel->ours != NULL)
        rc = sp_dkim_audit_match(&sel->audit, sel->record.data, sel->record.len,
                                 sel->ours->public_record,
                                 strlen(sel->ours->public_record));
    else if (!run->have_store)
        sp_dkim_audit_add(&sel->audit, SP_DKIM_AUDIT_INFO, "not_compared",
                          "not compared with a key of ours: %s", run->store);
    else
        sp_dkim_audit_add(&sel->audit, SP_DKIM_AUDIT_INFO, "not_compared",
                          "not compared with a key of ours: sealpost holds "
                          "no key of %s for this selector",
                          run->domain);
    if (rc != SP_OK)
        sp_log_fatal(CLI_RUNTIME, "out of memory comparing keys");
}

/* Look one selector up and judge what is there. */
static void
audit_selector(struct audit_run *run, struct audit_selector *sel)
{
    char name[330];
    sp_dns_answer answer;

    snprintf(name, sizeof(name), "%s._domainkey.%s", sel->name, run->domain);
    audit_lookup(run, name, &answer);
    if (sel->source == AUDIT_THIRD_PARTY)
        run->probed++;
    if (audit_dns_failed(run, name, &answer, &sel->audit)) {
        sel->reported = true;
        return;
    }
    if (answer.status != SP_DNS_OK || answer.count == 0) {
        sel->reported = sel->source != AUDIT_THIRD_PARTY;
        if (sel->reported)
            audit_missing(sel, name, &answer);
        return;
    }

    /* A key was found: judge the first record, as most verifiers do. */
    sel->reported = true;
    if (sel->source == AUDIT_THIRD_PARTY)
        run->found++;
    audit_keep(&sel->record, &answer.records[0]);
    if (answer.count > 1)
        sp_dkim_audit_add(&sel->audit, SP_DKIM_AUDIT_WARNING,
                          "multiple_records",
                          "%zu TXT records at %s: receivers pick one at "
                          "random or fail (RFC 6376 3.6.2.2); keep one",
                          answer.count, name);
    if (sp_dkim_audit_record(&sel->audit, sel->record.data, sel->record.len) !=
        SP_OK)
        sp_log_fatal(CLI_RUNTIME, "out of memory auditing a record");
    if (sel->source == AUDIT_THIRD_PARTY)
        sp_dkim_audit_add(&sel->audit, SP_DKIM_AUDIT_INFO, "third_party",
                          "a selector %s uses: the key is theirs to keep "
                          "strong and rotated",
                          sel->sender);
    audit_compare(run, sel);
}

/* The legacy DomainKeys policy at _domainkey.DOMAIN (RFC 4870). */
static void
audit_domainkeys(struct audit_run *run)
{
    struct audit_name *dk = &run->domainkeys;
    sp_dns_answer answer;

    snprintf(dk->name, sizeof(dk->name), "_domainkey.%s", run->domain);
    audit_lookup(run, dk->name, &answer);
    if (audit_dns_failed(run, dk->name, &answer, &dk->audit))
        return;
    for (size_t i = 0; answer.status == SP_DNS_OK && i < answer.count; i++) {
        if (!dk->present)
            audit_keep(&dk->record, &answer.records[i]);
        dk->present = true;
        sp_dkim_audit_domainkeys(&dk->audit, answer.records[i].text,
                                 answer.records[i].len);
    }
}

/* Whether a TXT value means to be a DMARC record: it starts "v=". */
static bool
audit_dmarc_candidate(const sp_dns_txt_record *record)
{
    size_t i = 0;

    while (i < record->len &&
           (record->text[i] == ' ' || record->text[i] == '\t'))
        i++;
    if (i == record->len || (record->text[i] != 'v' && record->text[i] != 'V'))
        return false;
    for (i++; i < record->len && record->text[i] == ' '; i++)
        continue;
    return i < record->len && record->text[i] == '=';
}

/* What a valid or faulty DMARC record says, as findings. */
static void
audit_dmarc_findings(struct audit_name *dm, const sp_dmarc_record *rec, int rc,
                     const sp_error *err)
{
    if (rc != SP_OK)
        sp_dkim_audit_add(&dm->audit, SP_DKIM_AUDIT_ERROR, "dmarc_invalid",
                          "%s", err->text);
    if (rec->has_policy && rec->policy == SP_DMARC_NONE)
        sp_dkim_audit_add(&dm->audit, SP_DKIM_AUDIT_INFO, "dmarc_policy",
                          "p=none: monitoring only; tighten to quarantine, "
                          "then reject, once the reports show every "
                          "legitimate source aligned");
    else if (rec->has_policy)
        sp_dkim_audit_add(&dm->audit, SP_DKIM_AUDIT_OK, "dmarc_policy",
                          "p=%s applies to %u%% of failing mail",
                          sp_dmarc_policy_name(rec->policy), rec->pct);
    if (rec->rua == NULL && rc == SP_OK)
        sp_dkim_audit_add(&dm->audit, SP_DKIM_AUDIT_WARNING, "dmarc_no_rua",
                          "no rua=: nobody receives aggregate reports, so "
                          "failures go unseen; add rua=mailto:...");
    else if (rec->rua != NULL)
        sp_dkim_audit_add(&dm->audit, SP_DKIM_AUDIT_OK, "dmarc_rua",
                          "aggregate reports go to %.*s",
                          (int)(rec->rua_len > 200 ? 200 : rec->rua_len),
                          rec->rua);
}

/* The DMARC record at _dmarc.DOMAIN. */
static void
audit_dmarc(struct audit_run *run)
{
    struct audit_name *dm = &run->dmarc;
    sp_dns_answer answer;
    sp_dmarc_record rec;
    size_t candidates = 0;
    sp_error err;
    int rc;

    snprintf(dm->name, sizeof(dm->name), "_dmarc.%s", run->domain);
    audit_lookup(run, dm->name, &answer);
    if (audit_dns_failed(run, dm->name, &answer, &dm->audit))
        return;
    for (size_t i = 0; answer.status == SP_DNS_OK && i < answer.count; i++)
        if (audit_dmarc_candidate(&answer.records[i]) && candidates++ == 0)
            audit_keep(&dm->record, &answer.records[i]);

    if (candidates == 0) {
        sp_dkim_audit_add(&dm->audit, SP_DKIM_AUDIT_WARNING, "dmarc_missing",
                          "no DMARC record at %s: receivers apply no policy "
                          "and send no reports; 'sealpost dmarc record' "
                          "makes one",
                          dm->name);
        return;
    }
    dm->present = true;
    if (candidates > 1)
        sp_dkim_audit_add(&dm->audit, SP_DKIM_AUDIT_ERROR, "dmarc_multiple",
                          "%zu DMARC records at %s: receivers then apply "
                          "none of them (RFC 7489 6.6.3); keep one",
                          candidates, dm->name);
    rc = sp_dmarc_record_parse(dm->record.data, dm->record.len, &rec, &err);
    audit_dmarc_findings(dm, &rec, rc, &err);
}

/* Add a selector unless listed; returns it either way. */
static struct audit_selector *
audit_add(struct audit_run *run, const char *name, enum audit_source source)
{
    struct audit_selector *sel;

    for (size_t i = 0; i < run->count; i++)
        if (strcasecmp(run->selectors[i].name, name) == 0)
            return &run->selectors[i];
    sel = &run->selectors[run->count++];
    memset(sel, 0, sizeof(*sel));
    snprintf(sel->name, sizeof(sel->name), "%s", name);
    for (char *c = sel->name; *c != '\0'; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + ('a' - 'A') : *c);
    sel->source = source;
    sp_dkim_audit_init(&sel->audit);
    return sel;
}

/* The selectors: ours first, then those given, then the built-in ones. */
static void
audit_plan(struct audit_run *run)
{
    size_t most = run->key_count + run->given_count + AUDIT_KNOWN_COUNT;

    run->selectors = sp_xmalloc(most * sizeof(*run->selectors));
    for (size_t i = 0; i < run->key_count; i++)
        audit_add(run, run->keys[i].selector, AUDIT_OURS)->ours = &run->keys[i];
    for (size_t i = 0; i < run->given_count; i++)
        audit_add(run, run->given[i], AUDIT_GIVEN);
    for (size_t i = 0; i < AUDIT_KNOWN_COUNT; i++) {
        struct audit_selector *sel =
            audit_add(run, audit_known[i].selector, AUDIT_THIRD_PARTY);

        if (sel->source == AUDIT_THIRD_PARTY)
            sel->sender = audit_known[i].sender;
    }
}

/*
 * Read our keys of the domain, if there is a store.  Returns false when a
 * store exists but cannot be read.
 */
static bool
audit_store(struct audit_run *run)
{
    const char *dir = run->config.data_dir;
    sp_store *store = NULL;
    char path[1024];
    struct stat st;
    sp_error err;

    snprintf(path, sizeof(path), "%s/sealpost.db", dir);
    if (stat(path, &st) != 0) {
        snprintf(run->store, sizeof(run->store),
                 "no store in %s (set --data-dir or SEALPOST_DATA_DIR)", dir);
        return true;
    }
    if (sp_store_open(dir, &store, &err) != SP_OK ||
        sp_store_key_list(store, run->domain, &run->keys, &run->key_count,
                          &err) != SP_OK) {
        sp_store_close(store);
        fprintf(stderr, "sealpost: %s\n", err.text);
        snprintf(run->store, sizeof(run->store),
                 "the store in %s cannot be read", dir);
        return false;
    }
    sp_store_close(store);
    run->have_store = true;
    snprintf(run->store, sizeof(run->store), "%zu key%s of %s in %s",
             run->key_count, run->key_count == 1 ? "" : "s", run->domain, dir);
    return true;
}

/* ------------------------------------------------------------------------
 * Reports
 */

static const char *
audit_source_name(enum audit_source source)
{
    switch (source) {
    case AUDIT_OURS:
        return "ours";
    case AUDIT_GIVEN:
        return "given";
    default:
        return "third-party";
    }
}

static const char *
audit_key_type(const sp_dkim_audit *audit)
{
    if (!audit->has_key)
        return NULL;
    return audit->key_type == SP_DKIM_KEY_ED25519 ? "ed25519" : "rsa";
}

/* Severity counts over every audit of the run. */
static void
audit_count(const struct audit_run *run, size_t *errors, size_t *warnings)
{
    const sp_dkim_audit *all[3] = {&run->general, &run->domainkeys.audit,
                                   &run->dmarc.audit};

    *errors = *warnings = 0;
    for (size_t i = 0; i < run->count + 3; i++) {
        const sp_dkim_audit *audit =
            i < run->count ? &run->selectors[i].audit : all[i - run->count];

        if (i < run->count && !run->selectors[i].reported)
            continue;
        for (size_t f = 0; f < audit->count; f++) {
            *errors += audit->findings[f].severity == SP_DKIM_AUDIT_ERROR;
            *warnings += audit->findings[f].severity == SP_DKIM_AUDIT_WARNING;
        }
    }
}

static void
audit_print_findings(const sp_dkim_audit *audit)
{
    for (size_t i = 0; i < audit->count; i++)
        printf("  %-7s %-17s %s\n",
               sp_dkim_audit_severity_name(audit->findings[i].severity),
               audit->findings[i].code, audit->findings[i].text);
    if (audit->dropped > 0)
        printf("  (%zu more findings not shown)\n", audit->dropped);
}

/* The record as a person may see it: escaped, cut. */
static void
audit_print_record(const sp_buf *record)
{
    char shown[AUDIT_SHOWN];

    if (record->data != NULL)
        printf("  record: \"%s\"\n",
               sp_log_escape(shown, sizeof(shown), record->data, record->len));
}

static void
audit_print_text(const struct audit_run *run, int status)
{
    size_t errors, warnings;

    printf("DKIM audit of %s\n", run->domain);
    printf("  our keys: %s\n", run->store);
    printf("  well-known selectors: %zu probed, %zu found\n", run->probed,
           run->found);
    audit_print_findings(&run->general);
    for (size_t i = 0; i < run->count; i++) {
        const struct audit_selector *sel = &run->selectors[i];

        if (!sel->reported)
            continue;
        printf("\nselector %s (%s%s%s)", sel->name,
               audit_source_name(sel->source), sel->sender ? ": " : "",
               sel->sender ? sel->sender : "");
        if (sel->audit.has_key)
            printf("  %s %u bits", audit_key_type(&sel->audit),
                   sel->audit.key_bits);
        printf("  verdict: %s\n",
               sp_dkim_audit_severity_name(sp_dkim_audit_verdict(&sel->audit)));
        audit_print_record(&sel->record);
        audit_print_findings(&sel->audit);
    }

    printf("\n%s (DomainKeys policy): %s\n", run->domainkeys.name,
           run->domainkeys.present || run->domainkeys.audit.count > 0
               ? sp_dkim_audit_severity_name(
                     sp_dkim_audit_verdict(&run->domainkeys.audit))
               : "none published (good)");
    audit_print_record(&run->domainkeys.record);
    audit_print_findings(&run->domainkeys.audit);

    printf(
        "\n%s (DMARC)  verdict: %s\n", run->dmarc.name,
        sp_dkim_audit_severity_name(sp_dkim_audit_verdict(&run->dmarc.audit)));
    audit_print_record(&run->dmarc.record);
    audit_print_findings(&run->dmarc.audit);

    audit_count(run, &errors, &warnings);
    printf("\nresult: %s (%zu error%s, %zu warning%s)\n",
           status == CLI_RUNTIME    ? "incomplete, a lookup failed"
           : status == CLI_NEGATIVE ? "problems found"
                                    : "no problems",
           errors, errors == 1 ? "" : "s", warnings, warnings == 1 ? "" : "s");
}

/*
 * A JSON string for text that may come from DNS: as it is when it is
 * UTF-8 (jansson escapes control bytes), escaped when jansson refuses it,
 * so nothing is dropped from the report.
 */
static json_t *
audit_json_text(const char *text, size_t len)
{
    json_t *string = json_stringn(text, len);
    size_t size = len * 4 + 8;
    char *shown;

    if (string != NULL)
        return string;
    shown = sp_xmalloc(size);
    string = json_string(sp_log_escape(shown, size, text, len));
    free(shown);
    return string;
}

static json_t *
audit_json_findings(const sp_dkim_audit *audit)
{
    json_t *list = json_array();

    for (size_t i = 0; i < audit->count; i++) {
        const sp_dkim_audit_finding *f = &audit->findings[i];

        json_array_append_new(
            list,
            json_pack("{s:s, s:s, s:o}", "severity",
                      sp_dkim_audit_severity_name(f->severity), "code", f->code,
                      "text", audit_json_text(f->text, strlen(f->text))));
    }
    return list;
}

/* Add the fields every audited record shares to obj; returns obj. */
static json_t *
audit_json_record(json_t *obj, const sp_buf *record, const sp_dkim_audit *audit)
{
    json_object_set_new(obj, "record",
                        record->data
                            ? audit_json_text(record->data, record->len)
                            : json_null());
    json_object_set_new(
        obj, "status",
        json_string(sp_dkim_audit_severity_name(sp_dkim_audit_verdict(audit))));
    json_object_set_new(obj, "findings", audit_json_findings(audit));
    return obj;
}

static json_t *
audit_json_selector(const struct audit_run *run,
                    const struct audit_selector *sel)
{
    json_t *obj = json_object();
    const char *type = audit_key_type(&sel->audit);
    char name[330];

    snprintf(name, sizeof(name), "%s._domainkey.%s", sel->name, run->domain);
    json_object_set_new(obj, "selector", json_string(sel->name));
    json_object_set_new(obj, "name", json_string(name));
    json_object_set_new(obj, "source",
                        json_string(audit_source_name(sel->source)));
    json_object_set_new(obj, "sender",
                        sel->sender ? json_string(sel->sender) : json_null());
    audit_json_record(obj, &sel->record, &sel->audit);
    json_object_set_new(obj, "key_type",
                        type ? json_string(type) : json_null());
    json_object_set_new(obj, "key_bits",
                        sel->audit.has_key ? json_integer(sel->audit.key_bits)
                                           : json_null());
    return obj;
}

/* The DMARC object: the record's fields as well as the findings. */
static json_t *
audit_json_dmarc(const struct audit_name *dm)
{
    json_t *obj = json_object();
    json_t *rua = json_array();
    sp_dmarc_record rec;
    sp_error err;
    const char *uri;
    size_t pos = 0, len;
    int rc = SP_ESYNTAX;

    if (dm->present)
        rc = sp_dmarc_record_parse(dm->record.data, dm->record.len, &rec, &err);
    json_object_set_new(obj, "name", json_string(dm->name));
    json_object_set_new(obj, "present", json_boolean(dm->present));
    audit_json_record(obj, &dm->record, &dm->audit);
    json_object_set_new(obj, "valid", json_boolean(rc == SP_OK));
    json_object_set_new(obj, "error",
                        dm->present && rc != SP_OK ? json_string(err.text)
                                                   : json_null());
    json_object_set_new(obj, "policy",
                        dm->present && rec.has_policy
                            ? json_string(sp_dmarc_policy_name(rec.policy))
                            : json_null());
    json_object_set_new(
        obj, "subdomain_policy",
        dm->present && rec.has_subdomain_policy
            ? json_string(sp_dmarc_policy_name(rec.subdomain_policy))
            : json_null());
    json_object_set_new(obj, "pct",
                        dm->present ? json_integer(rec.pct) : json_null());
    while (dm->present && rec.rua != NULL &&
           sp_dmarc_uri_next(rec.rua, rec.rua_len, &pos, &uri, &len))
        json_array_append_new(rua, audit_json_text(uri, len));
    json_object_set_new(obj, "rua", rua);
    return obj;
}

static void
audit_print_json(const struct audit_run *run, int status)
{
    json_t *root = json_object(), *list = json_array(), *dk;
    size_t errors, warnings;
    char *text;

    for (size_t i = 0; i < run->count; i++)
        if (run->selectors[i].reported)
            json_array_append_new(list,
                                  audit_json_selector(run, &run->selectors[i]));
    dk = json_object();
    json_object_set_new(dk, "name", json_string(run->domainkeys.name));
    json_object_set_new(dk, "present", json_boolean(run->domainkeys.present));
    audit_json_record(dk, &run->domainkeys.record, &run->domainkeys.audit);

    audit_count(run, &errors, &warnings);
    json_object_set_new(root, "domain", json_string(run->domain));
    json_object_set_new(root, "result",
                        json_string(status == CLI_RUNTIME    ? "incomplete"
                                    : status == CLI_NEGATIVE ? "problems"
                                                             : "ok"));
    json_object_set_new(root, "errors", json_integer((json_int_t)errors));
    json_object_set_new(root, "warnings", json_integer((json_int_t)warnings));
    json_object_set_new(root, "store", json_string(run->store));
    json_object_set_new(root, "probed", json_integer((json_int_t)run->probed));
    json_object_set_new(root, "selectors", list);
    json_object_set_new(root, "findings", audit_json_findings(&run->general));
    json_object_set_new(root, "domainkeys", dk);
    json_object_set_new(root, "dmarc", audit_json_dmarc(&run->dmarc));
    text = json_dumps(root, JSON_COMPACT);
    printf("%s\n", text ? text : "{}");
    free(text);
    json_decref(root);
}

/* ------------------------------------------------------------------------
 * The command
 */

/*
 * The domain to audit, in lower case without a final dot, as names compare
 * without case and reports show them so.  CLI_OK or CLI_USAGE.
 */
static int
audit_domain(struct audit_run *run, const char *arg)
{
    size_t len = strlen(arg);
    bool ok;

    if (len > 0 && arg[len - 1] == '.')
        len--;
    ok = len > 0 && len < sizeof(run->domain);
    for (size_t i = 0; ok && i < len; i++)
        run->domain[i] =
            (char)(arg[i] >= 'A' && arg[i] <= 'Z' ? arg[i] + ('a' - 'A')
                                                  : arg[i]);
    if (ok) {
        run->domain[len] = '\0';
        ok = sp_dkim_valid_name(run->domain);
    }
    if (!ok)
        fprintf(stderr, "sealpost: \"%s\" is not a domain name\n", arg);
    return ok ? CLI_OK : CLI_USAGE;
}

/* Options and the domain; CLI_OK, or the status to exit with (-1: help). */
static int
audit_parse(struct audit_run *run, int argc, char **argv)
{
    static const struct option options[] = {
        {"selector", required_argument, NULL, 's'},
        {"json", no_argument, NULL, 'j'},
        {"resolver", required_argument, NULL, 'r'},
        {"dns-file", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int option;

    /* 0, not 1: glibc then forgets main's "+" and lets options follow
     * the domain, as the usage line shows them. */
    optind = 0;
    while ((option = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (option) {
        case 's':
            if (!sp_dkim_valid_name(optarg) || strlen(optarg) >= 64 ||
                run->given_count == AUDIT_MAX_GIVEN) {
                fprintf(stderr,
                        "sealpost: --selector %s: not a selector (letters, "
                        "digits, '-', '.'; at most %d)\n",
                        optarg, AUDIT_MAX_GIVEN);
                return CLI_USAGE;
            }
            run->given[run->given_count++] = optarg;
            break;
        case 'j':
            run->json = true;
            break;
        case 'r':
            run->server = optarg;
            break;
        case 'f':
            run->dns_file = optarg;
            break;
        case 'h':
            audit_usage(stdout);
            return -1;
        default:
            audit_usage(stderr);
            return CLI_USAGE;
        }
    }
    if (optind + 1 != argc) {
        audit_usage(stderr);
        return CLI_USAGE;
    }
    return audit_domain(run, argv[optind]);
}

/* The DNS source: the record file, else a live resolver. */
static int
audit_dns_source(struct audit_run *run)
{
    sp_buf text = SP_BUF_INIT;
    sp_error err;
    int rc;

    if (run->dns_file == NULL) {
        rc = sp_dns_resolver_new(cli_resolver(&run->config, run->server),
                                 &run->resolver, &err);
        if (rc != SP_OK)
            fprintf(stderr, "sealpost: %s\n", err.text);
        return rc == SP_OK ? CLI_OK : CLI_USAGE;
    }
    rc = cli_read_file(run->dns_file, &text, &err);
    if (rc == SP_OK)
        rc = sp_dns_table_parse(text.data, text.len, &run->table, &err);
    sp_buf_free(&text);
    if (rc != SP_OK) {
        fprintf(stderr, "sealpost: --dns-file %s: %s\n", run->dns_file,
                err.text);
        return rc == SP_EIO ? CLI_RUNTIME : CLI_USAGE;
    }
    return CLI_OK;
}

/* Look everything up and judge it; the exit status. */
static int
audit_all(struct audit_run *run)
{
    size_t reported = 0, errors, warnings;

    sp_dkim_audit_init(&run->general);
    sp_dkim_audit_init(&run->domainkeys.audit);
    sp_dkim_audit_init(&run->dmarc.audit);
    if (!audit_store(run))
        run->failed = true;
    audit_plan(run);

    /* Selectors before the names above them, which some servers answer
     * NXDOMAIN that a cache would then apply below. */
    for (size_t i = 0; i < run->count; i++) {
        audit_selector(run, &run->selectors[i]);
        reported += run->selectors[i].reported;
    }
    if (reported == 0)
        sp_dkim_audit_add(&run->general, SP_DKIM_AUDIT_WARNING, "no_keys",
                          "no DKIM key found: none of the %zu well-known "
                          "selectors is published and none was given; DNS "
                          "cannot list selectors, so name yours with "
                          "--selector",
                          run->probed);
    audit_domainkeys(run);
    audit_dmarc(run);

    if (run->failed)
        return CLI_RUNTIME;
    audit_count(run, &errors, &warnings);
    return errors + warnings > 0 ? CLI_NEGATIVE : CLI_OK;
}

int
cli_dkim_audit(const cli_globals *globals, int argc, char **argv)
{
    struct audit_run run;
    int rc;

    memset(&run, 0, sizeof(run));
    rc = audit_parse(&run, argc, argv);
    if (rc != CLI_OK)
        return rc < 0 ? CLI_OK : rc;
    rc = cli_config(globals, &run.config);
    if (rc == CLI_OK)
        rc = audit_dns_source(&run);
    if (rc == CLI_OK) {
        rc = audit_all(&run);
        if (run.json)
            audit_print_json(&run, rc);
        else
            audit_print_text(&run, rc);
        fflush(stdout);
    }

    for (size_t i = 0; i < run.count; i++)
        sp_buf_free(&run.selectors[i].record);
    free(run.selectors);
    sp_buf_free(&run.domainkeys.record);
    sp_buf_free(&run.dmarc.record);
    sp_store_keys_free(run.keys, run.key_count);
    sp_dns_table_free(run.table);
    sp_dns_resolver_free(run.resolver);
    sp_config_free(&run.config);
    return rc;
}
