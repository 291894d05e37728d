/*
 * dkim_keys.c: the DKIM key lifecycle on the command line: keygen, dns,
 * rotate, activate, status and export.
 *
 * Owns cli_dkim_keygen, cli_dkim_dns, cli_dkim_rotate, cli_dkim_activate,
 * cli_dkim_status and cli_dkim_export.  Each opens key management on the
 * configuration (keys/), does one thing, and writes each key's state
 * change as an event (events.jsonl in the data directory, and stderr).
 * Private keys are printed by export alone.
 */
#include "cli.h"
#include "events/events.h"
#include "keys/keys.h"
#include "queue/queue.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* What every key command holds while it runs. */
struct keys_run {
    sp_config config;
    sp_keys *keys;
    sp_events *events;
    sp_queue *spool; /* the daemon's spool, read only; NULL if none yet */
};

/* Open configuration, key management and the event log; CLI status. */
static int
keys_start(const cli_globals *globals, bool create, struct keys_run *run)
{
    sp_queue_options options = {.no_writer = true};
    char spool[4200];
    sp_error err;
    int rc;

    memset(run, 0, sizeof(*run));
    rc = cli_config(globals, &run->config);
    if (rc != CLI_OK)
        return rc;
    if (create && mkdir(run->config.data_dir, 0750) != 0 &&
        access(run->config.data_dir, W_OK) != 0) {
        fprintf(stderr, "sealpost: data directory %s is not usable\n",
                run->config.data_dir);
        return CLI_RUNTIME;
    }
    if (sp_keys_open(&run->config, create, &run->keys, &err) != SP_OK ||
        sp_events_open(run->config.data_dir, false, &run->events, &err) !=
            SP_OK) {
        fprintf(stderr, "sealpost: %s\n", err.text);
        return CLI_RUNTIME;
    }
    sp_events_set_store(run->events, sp_keys_store(run->keys));

    /* Keys that queued messages carry must not retire. */
    snprintf(spool, sizeof(spool), "%s/spool", run->config.data_dir);
    if (access(spool, F_OK) == 0) {
        if (sp_queue_open(spool, &options, &run->spool, &err) != SP_OK) {
            fprintf(stderr, "sealpost: %s\n", err.text);
            return CLI_RUNTIME;
        }
        sp_keys_set_queued(run->keys, sp_queue_keys_queued, run->spool);
    }
    return CLI_OK;
}

static void
keys_stop(struct keys_run *run)
{
    sp_queue_close(run->spool);
    sp_events_close(run->events);
    sp_keys_close(run->keys);
    sp_config_free(&run->config);
}

/* One dkim_key event for a change; failures to write are reported. */
static void
keys_event(struct keys_run *run, const sp_keys_change *change, int64_t now)
{
    json_t *fields = json_object();
    sp_error err;

    json_object_set_new(fields, "domain", json_string(change->domain));
    json_object_set_new(fields, "selector", json_string(change->selector));
    json_object_set_new(fields, "algorithm", json_string(change->algorithm));
    json_object_set_new(fields, "state",
                        json_string(sp_store_key_state_name(change->to)));
    json_object_set_new(
        fields, "previous_state",
        change->made ? json_null()
                     : json_string(sp_store_key_state_name(change->from)));
    json_object_set_new(fields, "reason", json_string(change->why));
    json_object_set_new(fields, "at", json_integer(now));
    if (sp_events_emit(run->events, "dkim_key", fields, &err) != SP_OK)
        fprintf(stderr, "sealpost: warning: %s\n", err.text);
}

/* Print a report: moves and blockers, one line each; emit the moves. */
static void
keys_print_report(struct keys_run *run, const sp_keys_report *report,
                  int64_t now)
{
    for (size_t i = 0; i < report->count; i++) {
        const sp_keys_change *change = &report->changes[i];
        bool moved = change->made || change->from != change->to;

        if (moved)
            printf("%s %s (%s): %s -> %s: %s\n", change->domain,
                   change->selector, change->algorithm,
                   change->made ? "new" : sp_store_key_state_name(change->from),
                   sp_store_key_state_name(change->to), change->why);
        else
            printf("%s %s (%s): stays %s: %s\n", change->domain,
                   change->selector, change->algorithm,
                   sp_store_key_state_name(change->to), change->why);
        if (moved)
            keys_event(run, change, now);
    }
}

/* Publish by DNS update what the report made or retired, if configured. */
static void
keys_publish(struct keys_run *run, const sp_keys_report *report)
{
    sp_buf notes = SP_BUF_INIT;

    sp_keys_publish(run->keys, report, &notes);
    if (notes.len > 0)
        fputs(notes.data, stdout);
    sp_buf_free(&notes);
}

/* Parse "--time EPOCH" style clocks for tests and diagnosis. */
static bool
keys_time(const char *text, int64_t *now)
{
    if (cli_parse_number(text, 0, (int64_t)100000000000, now))
        return true;
    fprintf(stderr, "sealpost: --time %s: expected seconds since 1970\n", text);
    return false;
}

/* ------------------------------------------------------------------------
 * keygen
 */

static void
keygen_usage(FILE *out)
{
    fprintf(out,
            "usage: sealpost dkim keygen DOMAIN [--selector S]\n"
            "           [--rsa BITS | --ed25519] [--testing] [--time EPOCH]\n"
            "\n"
            "Makes pending keys for DOMAIN and prints the TXT records to\n"
            "publish.  Without --rsa or --ed25519 it makes both an RSA key\n"
            "(dkim_rsa_bits, 2048 by default) and an Ed25519 key, since some\n"
            "receivers still verify only RSA.  RSA keys of 1024 to 4096\n"
            "bits are allowed, 1024 with a warning.  Selectors default to\n"
            "the date (sp2027q1r, sp2027q1e) and are never reused.\n"
            "--testing publishes t=y (testing mode).\n");
}

int
cli_dkim_keygen(const cli_globals *globals, int argc, char **argv)
{
    static const struct option options[] = {
        {"selector", required_argument, NULL, 's'},
        {"rsa", required_argument, NULL, 'r'},
        {"ed25519", no_argument, NULL, 'e'},
        {"testing", no_argument, NULL, 't'},
        {"time", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *selector = NULL, *algorithms[2];
    size_t algorithm_count = 0;
    int64_t bits = -1, now = (int64_t)time(NULL);
    bool testing = false, ed25519 = false;
    struct keys_run run;
    int option, rc;

    optind = 0; /* 0, not 1: glibc then re-reads the option string */
    while ((option = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (option) {
        case 's':
            selector = optarg;
            break;
        case 'r':
            if (!cli_parse_number(optarg, 0, 1000000, &bits)) {
                fprintf(stderr, "sealpost: --rsa %s: expected bits\n", optarg);
                return CLI_USAGE;
            }
            break;
        case 'e':
            ed25519 = true;
            break;
        case 't':
            testing = true;
            break;
        case 'T':
            if (!keys_time(optarg, &now))
                return CLI_USAGE;
            break;
        case 'h':
            keygen_usage(stdout);
            return CLI_OK;
        default:
            keygen_usage(stderr);
            return CLI_USAGE;
        }
    }
    if (optind + 1 != argc || (bits >= 0 && ed25519)) {
        keygen_usage(stderr);
        return CLI_USAGE;
    }
    if (bits >= 0 || !ed25519)
        algorithms[algorithm_count++] = "rsa";
    if (ed25519 || bits < 0)
        algorithms[algorithm_count++] = "ed25519";
    if (selector != NULL && algorithm_count > 1) {
        fprintf(stderr, "sealpost: --selector names one key; add --rsa BITS "
                        "or --ed25519\n");
        return CLI_USAGE;
    }

    rc = keys_start(globals, true, &run);
    if (rc != CLI_OK) {
        keys_stop(&run);
        return rc;
    }
    if (bits < 0)
        bits = run.config.dkim_rsa_bits;
    if (!sp_config_list_has(&run.config.dkim_domains, argv[optind]))
        fprintf(stderr,
                "sealpost: note: %s is not in dkim_domains; sealpostd will "
                "not sign or rotate for it until it is\n",
                argv[optind]);

    for (size_t i = 0; i < algorithm_count && rc == CLI_OK; i++) {
        const char *warning = NULL;
        sp_keys_change change = {0};
        sp_store_key made;
        sp_buf line = SP_BUF_INIT;
        sp_error err;
        char name[400], absolute[404];

        if (sp_keys_generate(run.keys, argv[optind], selector, algorithms[i],
                             (unsigned)bits, testing, now, &made, &warning,
                             &err) != SP_OK) {
            fprintf(stderr, "sealpost: %s\n", err.text);
            rc = err.code == SP_EIO ? CLI_RUNTIME : CLI_USAGE;
            break;
        }
        if (warning != NULL)
            fprintf(stderr, "sealpost: warning: %s\n", warning);
        printf("; %s %s-%u pending%s: publish this record\n", made.selector,
               made.algorithm, made.bits, testing ? " (t=y, testing)" : "");
        snprintf(absolute, sizeof(absolute), "%s.",
                 sp_keys_name(&made, name, sizeof(name)));
        sp_keys_zone_line(absolute, run.config.dkim_record_ttl,
                          made.public_record, &line);
        fputs(line.data ? line.data : "", stdout);
        sp_buf_free(&line);

        change.key_id = made.id;
        snprintf(change.domain, sizeof(change.domain), "%s", made.domain);
        snprintf(change.selector, sizeof(change.selector), "%s", made.selector);
        snprintf(change.algorithm, sizeof(change.algorithm), "%s",
                 made.algorithm);
        change.to = SP_STORE_KEY_PENDING;
        change.made = true;
        snprintf(change.why, sizeof(change.why), "made by keygen");
        keys_event(&run, &change, now);
        keys_publish(&run, &(sp_keys_report){&change, 1});
        sp_store_key_clear(&made);
    }
    keys_stop(&run);
    return rc;
}

/* ------------------------------------------------------------------------
 * dns
 */

int
cli_dkim_dns(const cli_globals *globals, int argc, char **argv)
{
    bool relative = false;
    struct keys_run run;
    sp_buf zone = SP_BUF_INIT;
    sp_error err;
    int rc;

    if (argc == 3 && strcmp(argv[2], "--zone") == 0)
        relative = true;
    if (argc == 2 && strcmp(argv[1], "--help") == 0) {
        printf("usage: sealpost dkim dns DOMAIN [--zone]\n\nThe TXT records "
               "to publish for DOMAIN's pending, active and retiring keys,\n"
               "and the revocation records of its retired keys, in zone-file "
               "syntax.\n--zone writes names relative to DOMAIN under an "
               "$ORIGIN line.\n");
        return CLI_OK;
    }
    if (argc != 2 && !relative) {
        fprintf(stderr, "usage: sealpost dkim dns DOMAIN [--zone]\n");
        return CLI_USAGE;
    }
    rc = keys_start(globals, false, &run);
    if (rc == CLI_OK &&
        sp_keys_zone(run.keys, argv[1], relative, &zone, &err) != SP_OK) {
        fprintf(stderr, "sealpost: %s\n", err.text);
        rc = CLI_RUNTIME;
    }
    if (rc == CLI_OK && zone.len == 0) {
        fprintf(stderr,
                "sealpost: %s has no keys; make them with sealpost "
                "dkim keygen\n",
                argv[1]);
        rc = CLI_NEGATIVE;
    }
    if (rc == CLI_OK)
        fputs(zone.data, stdout);
    sp_buf_free(&zone);
    keys_stop(&run);
    return rc;
}

/* ------------------------------------------------------------------------
 * rotate
 */

/* The step's DNS: sealpost's resolver, waiting for each answer. */
static void
rotate_lookup(void *arg, const char *name, sp_dns_answer *answer)
{
    sp_dns_resolver_txt(arg, name, answer);
}

static void
rotate_usage(FILE *out)
{
    fprintf(out,
            "usage: sealpost dkim rotate DOMAIN [--now] [--resolver A@P]\n"
            "           [--time EPOCH]\n"
            "\n"
            "One lifecycle step, as sealpostd takes on its schedule: a new\n"
            "pending key when the active one is older than\n"
            "dkim_rotation_period (at once with --now); a pending key\n"
            "becomes active once DNS shows its record, and the key it\n"
            "replaces starts retiring; a retiring key retires once no\n"
            "queued message carries its signature and its signatures have\n"
            "expired.  Prints every move and what blocks each key.\n");
}

int
cli_dkim_rotate(const cli_globals *globals, int argc, char **argv)
{
    static const struct option options[] = {
        {"now", no_argument, NULL, 'n'},
        {"resolver", required_argument, NULL, 'r'},
        {"time", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *server = NULL;
    int64_t now = (int64_t)time(NULL);
    bool force = false;
    sp_dns_resolver *resolver = NULL;
    sp_keys_report report = {NULL, 0};
    struct keys_run run;
    sp_error err;
    int option, rc;

    optind = 0; /* 0, not 1: glibc then re-reads the option string */
    while ((option = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (option) {
        case 'n':
            force = true;
            break;
        case 'r':
            server = optarg;
            break;
        case 'T':
            if (!keys_time(optarg, &now))
                return CLI_USAGE;
            break;
        case 'h':
            rotate_usage(stdout);
            return CLI_OK;
        default:
            rotate_usage(stderr);
            return CLI_USAGE;
        }
    }
    if (optind + 1 != argc) {
        rotate_usage(stderr);
        return CLI_USAGE;
    }

    /* New keys may be made, so the master key may be made too. */
    rc = keys_start(globals, true, &run);
    if (rc == CLI_OK && sp_dns_resolver_new(cli_resolver(&run.config, server),
                                            &resolver, &err) != SP_OK) {
        fprintf(stderr, "sealpost: %s\n", err.text);
        rc = CLI_USAGE;
    }
    if (rc == CLI_OK &&
        sp_keys_step(run.keys, argv[optind], now, force, rotate_lookup,
                     resolver, &report, &err) != SP_OK) {
        fprintf(stderr, "sealpost: %s\n", err.text);
        rc = CLI_RUNTIME;
    }
    if (rc == CLI_OK) {
        keys_print_report(&run, &report, now);
        keys_publish(&run, &report);
    }
    sp_keys_report_free(&report);
    sp_dns_resolver_free(resolver);
    keys_stop(&run);
    return rc;
}

/* ------------------------------------------------------------------------
 * activate
 */

int
cli_dkim_activate(const cli_globals *globals, int argc, char **argv)
{
    sp_keys_report report = {NULL, 0};
    int64_t now = (int64_t)time(NULL);
    struct keys_run run;
    sp_error err;
    int rc;

    if (argc == 2 && strcmp(argv[1], "--help") == 0) {
        printf("usage: sealpost dkim activate DOMAIN SELECTOR\n\nMakes a "
               "pending key sign without seeing its record, for a record\n"
               "published where sealpost's resolver cannot look (split\n"
               "horizon).  sealpostd warns while it signs with such a key.\n");
        return CLI_OK;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: sealpost dkim activate DOMAIN SELECTOR\n");
        return CLI_USAGE;
    }
    rc = keys_start(globals, false, &run);
    if (rc == CLI_OK && sp_keys_activate(run.keys, argv[1], argv[2], now,
                                         &report, &err) != SP_OK) {
        fprintf(stderr, "sealpost: %s\n", err.text);
        rc = err.code == SP_EIO ? CLI_RUNTIME : CLI_USAGE;
    }
    if (rc == CLI_OK) {
        keys_print_report(&run, &report, now);
        fprintf(stderr,
                "sealpost: warning: %s signs although sealpost has not seen "
                "its record; check it with sealpost dkim audit %s\n",
                argv[2], argv[1]);
    }
    sp_keys_report_free(&report);
    keys_stop(&run);
    return rc;
}

/* ------------------------------------------------------------------------
 * status
 */

/* Days between two times, for people. */
static long long
status_days(int64_t from, int64_t to)
{
    return from > 0 && to > from ? (long long)((to - from) / 86400) : 0;
}

/* What a key waits for, in one phrase; "" when nothing. */
static void
status_blocker(struct keys_run *run, const sp_store_key *row, int64_t now,
               char *out, size_t size)
{
    int64_t queued = 0, spooled = 0, next;
    char when[40];
    time_t t;

    out[0] = '\0';
    switch (row->state) {
    case SP_STORE_KEY_PENDING:
        snprintf(out, size,
                 "waits for its record in DNS (sealpost dkim dns "
                 "%s; then sealpost dkim rotate %s)",
                 row->domain, row->domain);
        break;
    case SP_STORE_KEY_ACTIVE:
        next = row->activated + run->config.dkim_rotation_period;
        t = (time_t)next;
        strftime(when, sizeof(when), "%Y-%m-%d", gmtime(&t));
        snprintf(out, size, "%snext rotation %s%s",
                 row->unconfirmed ? "UNCONFIRMED (activated by hand); " : "",
                 when, next <= now ? " (due)" : "");
        break;
    case SP_STORE_KEY_RETIRING:
        sp_store_key_queued(sp_keys_store(run->keys), row->id, &queued, NULL);
        if (run->spool != NULL &&
            sp_queue_keys_queued(run->spool, row->id, &spooled, NULL) == SP_OK)
            queued += spooled;
        t = (time_t)row->last_expiry;
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M", gmtime(&t));
        if (queued > 0)
            snprintf(out, size, "%lld queued message(s) carry its signature",
                     (long long)queued);
        else if (row->last_expiry > now)
            snprintf(out, size, "its signatures are valid until %s UTC", when);
        else
            snprintf(out, size, "ready to retire at the next rotate");
        break;
    case SP_STORE_KEY_RETIRED:
        snprintf(out, size, "publish its revocation record");
        break;
    }
}

static json_t *
status_json(struct keys_run *run, const sp_store_key *row, int64_t now)
{
    json_t *key = json_object();
    char blocker[700];

    status_blocker(run, row, now, blocker, sizeof(blocker));
    json_object_set_new(key, "domain", json_string(row->domain));
    json_object_set_new(key, "selector", json_string(row->selector));
    json_object_set_new(key, "algorithm", json_string(row->algorithm));
    json_object_set_new(key, "bits", json_integer(row->bits));
    json_object_set_new(key, "state",
                        json_string(sp_store_key_state_name(row->state)));
    json_object_set_new(key, "testing", json_boolean(row->testing));
    json_object_set_new(key, "unconfirmed", json_boolean(row->unconfirmed));
    json_object_set_new(key, "created", json_integer(row->created));
    json_object_set_new(key, "activated", json_integer(row->activated));
    json_object_set_new(key, "retiring", json_integer(row->retiring));
    json_object_set_new(key, "retired", json_integer(row->retired));
    json_object_set_new(key, "signatures", json_integer(row->signatures));
    json_object_set_new(key, "last_expiry", json_integer(row->last_expiry));
    json_object_set_new(key, "note", json_string(blocker));
    return key;
}

int
cli_dkim_status(const cli_globals *globals, int argc, char **argv)
{
    const char *domain = NULL;
    bool json = false;
    int64_t now = (int64_t)time(NULL);
    sp_store_key *rows = NULL;
    size_t count = 0;
    struct keys_run run;
    sp_error err;
    int rc;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (argv[i][0] != '-' && domain == NULL) {
            domain = argv[i];
        } else {
            fprintf(stderr, "usage: sealpost dkim status [DOMAIN] [--json]\n");
            return strcmp(argv[i], "--help") == 0 ? CLI_OK : CLI_USAGE;
        }
    }
    rc = keys_start(globals, false, &run);
    if (rc == CLI_OK && sp_store_key_list(sp_keys_store(run.keys), domain,
                                          &rows, &count, &err) != SP_OK) {
        fprintf(stderr, "sealpost: %s\n", err.text);
        rc = CLI_RUNTIME;
    }
    if (rc == CLI_OK && !json)
        printf("%-24s %-14s %-12s %-9s %6s  %s\n", "domain", "selector", "key",
               "state", "age", "note");
    for (size_t i = 0; rc == CLI_OK && i < count; i++) {
        char blocker[700], key[24];

        if (json) {
            json_t *object = status_json(&run, &rows[i], now);
            char *text = json_dumps(object, JSON_COMPACT);

            printf("%s\n", text ? text : "{}");
            free(text);
            json_decref(object);
            continue;
        }
        status_blocker(&run, &rows[i], now, blocker, sizeof(blocker));
        snprintf(key, sizeof(key), "%s-%u%s", rows[i].algorithm, rows[i].bits,
                 rows[i].testing ? " t=y" : "");
        printf("%-24s %-14s %-12s %-9s %5lldd  %s\n", rows[i].domain,
               rows[i].selector, key, sp_store_key_state_name(rows[i].state),
               status_days(rows[i].created, now), blocker);
    }
    if (rc == CLI_OK && count == 0 && !json)
        printf("no keys%s%s; make them with sealpost dkim keygen\n",
               domain ? " for " : "", domain ? domain : "");
    sp_store_keys_free(rows, count);
    keys_stop(&run);
    return rc;
}

/* ------------------------------------------------------------------------
 * export
 */

int
cli_dkim_export(const cli_globals *globals, int argc, char **argv)
{
    sp_store_key *rows = NULL;
    sp_dkim_key *key = NULL;
    sp_buf pem = SP_BUF_INIT;
    size_t count = 0;
    struct keys_run run;
    sp_error err;
    int rc;

    if (argc != 3) {
        fprintf(stderr, "usage: sealpost dkim export DOMAIN SELECTOR\n\n"
                        "Prints the private key as PKCS#8 PEM.  Handle the "
                        "output as the secret it is.\n");
        return argc == 2 && strcmp(argv[1], "--help") == 0 ? CLI_OK : CLI_USAGE;
    }
    rc = keys_start(globals, false, &run);
    if (rc == CLI_OK && sp_store_key_list(sp_keys_store(run.keys), argv[1],
                                          &rows, &count, &err) != SP_OK) {
        fprintf(stderr, "sealpost: %s\n", err.text);
        rc = CLI_RUNTIME;
    }
    for (size_t i = 0; rc == CLI_OK && i < count && key == NULL; i++) {
        if (strcasecmp(rows[i].selector, argv[2]) != 0)
            continue;
        if (sp_keys_private(run.keys, &rows[i], &key, &err) != SP_OK) {
            fprintf(stderr, "sealpost: %s\n", err.text);
            rc = CLI_RUNTIME;
        }
    }
    if (rc == CLI_OK && key == NULL) {
        fprintf(stderr, "sealpost: %s has no key %s\n", argv[1], argv[2]);
        rc = CLI_NEGATIVE;
    }
    if (rc == CLI_OK && sp_dkim_key_pem(key, &pem) == SP_OK)
        fputs(pem.data, stdout);
    if (pem.data != NULL)
        memset(pem.data, 0, pem.len);
    sp_buf_free(&pem);
    sp_dkim_key_free(key);
    sp_store_keys_free(rows, count);
    keys_stop(&run);
    return rc;
}
