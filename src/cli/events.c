/*
 * events.c: "sealpost events": what happened to the messages, from the
 * event store of the data directory.
 *
 * Owns cli_events.  Events are read in the order they were stored, with
 * the filters given, as a table (time, type, recipient, queue id, and the
 * reply or reason) or with --json as one event object a line, exactly as
 * stored.  --follow keeps reading what arrives, twice a second, until
 * interrupted.  The store is opened beside a running sealpostd, which
 * keeps adding events meanwhile.
 */
#include "events/events.h"
#include "cli.h"
#include "store/store.h"

#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EVENTS_PAGE      500
#define EVENTS_FOLLOW_MS 500

/* What printing the events needs. */
struct events_out {
    bool json;
    int64_t cursor; /* the last event printed */
    size_t printed;
};

static volatile sig_atomic_t events_interrupted;

static void
events_on_signal(int sig)
{
    (void)sig;
    events_interrupted = 1;
}

/* A string field of event, or "". */
static const char *
events_field(json_t *event, const char *name)
{
    const char *value = json_string_value(json_object_get(event, name));

    return value ? value : "";
}

/* One event: as stored (--json), or a table row. */
static void
events_print(void *arg, int64_t cursor, const char *text)
{
    struct events_out *out = arg;
    json_t *event;
    char reason[200] = "";
    json_int_t code;

    out->cursor = cursor;
    out->printed++;
    if (out->json) {
        printf("%s\n", text);
        return;
    }
    event = json_loads(text, 0, NULL);
    code = json_integer_value(json_object_get(event, "error_code"));
    if (code != 0)
        snprintf(reason, sizeof(reason), "%lld %s %.150s", (long long)code,
                 events_field(event, "enhanced_code"),
                 events_field(event, "raw_reason"));
    printf("%-24s %-10s %-32s %-14s %s\n", events_field(event, "timestamp"),
           events_field(event, "type"), events_field(event, "rcpt_to"),
           events_field(event, "queue_id"), reason);
    json_decref(event);
}

/* --since: a duration back from now ("2h"), or a timestamp. */
static bool
events_since(const char *text, int64_t *from_ms)
{
    int64_t seconds;

    if (cli_parse_duration(text, &seconds)) {
        *from_ms = ((int64_t)time(NULL) - seconds) * 1000;
        return true;
    }
    *from_ms = sp_event_time_ms(text);
    return *from_ms >= 0;
}

static int
events_usage(FILE *out, int status)
{
    fputs("usage: sealpost events [--type T] [--recipient R] "
          "[--queue-id ID]\n"
          "                       [--campaign C] [--since TIME] "
          "[--limit N] [--follow] [--json]\n\n"
          "What happened to the messages: injection, delivery, delay, "
          "bounce, expired.\n"
          "TIME is a duration back from now (2h, 3d) or a timestamp "
          "(2026-12-04T10:00:00.000Z).\n"
          "--json prints one event object a line; --follow waits for "
          "more.\n",
          out);
    return status;
}

int
cli_events(const cli_globals *globals, int argc, char **argv)
{
    static const struct option options[] = {
        {"type", required_argument, NULL, 't'},
        {"recipient", required_argument, NULL, 'r'},
        {"queue-id", required_argument, NULL, 'q'},
        {"campaign", required_argument, NULL, 'C'},
        {"since", required_argument, NULL, 's'},
        {"limit", required_argument, NULL, 'n'},
        {"follow", no_argument, NULL, 'f'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    sp_store_event_filter filter = {0};
    struct events_out out = {0};
    int64_t limit = 0;
    bool follow = false;
    sp_store *store = NULL;
    sp_config config;
    sp_error err;
    int option, rc;

    optind = 0; /* 0, not 1: glibc then re-reads the option string */
    while ((option = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (option) {
        case 't':
            filter.type = optarg;
            break;
        case 'r':
            filter.recipient = optarg;
            break;
        case 'q':
            filter.queue_id = optarg;
            break;
        case 'C':
            filter.campaign_id = optarg;
            break;
        case 's':
            if (!events_since(optarg, &filter.from_ms)) {
                fprintf(stderr,
                        "sealpost: --since %s: a duration (2h) or a "
                        "timestamp (2026-12-04T10:00:00.000Z)\n",
                        optarg);
                return CLI_USAGE;
            }
            break;
        case 'n':
            if (!cli_parse_number(optarg, 1, 10000000, &limit)) {
                fprintf(stderr, "sealpost: --limit %s: a number from 1\n",
                        optarg);
                return CLI_USAGE;
            }
            break;
        case 'f':
            follow = true;
            break;
        case 'j':
            out.json = true;
            break;
        case 'h':
            return events_usage(stdout, CLI_OK);
        default:
            return events_usage(stderr, CLI_USAGE);
        }
    }
    if (optind != argc)
        return events_usage(stderr, CLI_USAGE);

    rc = cli_config(globals, &config);
    if (rc != CLI_OK)
        return rc;
    if (sp_store_open(config.data_dir, &store, &err) != SP_OK) {
        fprintf(stderr, "sealpost: %s\n", err.text);
        sp_config_free(&config);
        return CLI_RUNTIME;
    }
    signal(SIGINT, events_on_signal);
    signal(SIGTERM, events_on_signal);

    /* Page by page, then (--follow) whatever arrives. */
    for (;;) {
        size_t before = out.printed;

        filter.after = out.cursor;
        filter.limit = EVENTS_PAGE;
        if (limit > 0 && (size_t)limit - out.printed < EVENTS_PAGE)
            filter.limit = (size_t)limit - out.printed;
        if (sp_store_events_find(store, &filter, events_print, &out, &err) !=
            SP_OK) {
            fprintf(stderr, "sealpost: %s\n", err.text);
            rc = CLI_RUNTIME;
            break;
        }
        fflush(stdout);
        if ((limit > 0 && out.printed >= (size_t)limit) || events_interrupted)
            break;
        if (out.printed - before == EVENTS_PAGE)
            continue;
        if (!follow)
            break;
        usleep(EVENTS_FOLLOW_MS * 1000);
        if (events_interrupted)
            break;
    }
    sp_store_close(store);
    sp_config_free(&config);
    return rc;
}
