/*
 * webhooks.c: "sealpost webhooks add | list | remove | status": the
 * endpoints that sealpostd sends the events to.
 *
 * Owns cli_webhooks_add, _list, _remove and _status.  add makes the
 * endpoint's signing secret, prints it once and keeps it sealed with the
 * master key (as DKIM private keys are); sealpostd signs each batch it
 * POSTs with it (doc/events.md says how to check).  status counts each
 * endpoint's backlog: the events past its cursor that it takes.
 */
#include "cli.h"
#include "events/events.h"
#include "keys/keys.h"
#include "store/store.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WEBHOOK_BACKLOG_CAP 100000 /* counted exactly up to this */

/* Configuration and key management; CLI status. */
static int
webhooks_start(const cli_globals *globals, bool create, sp_config *config,
               sp_keys **keys)
{
    sp_error err;
    int rc = cli_config(globals, config);

    if (rc != CLI_OK)
        return rc;
    if (sp_keys_open(config, create, keys, &err) != SP_OK) {
        fprintf(stderr, "sealpost: %s\n", err.text);
        sp_config_free(config);
        return CLI_RUNTIME;
    }
    return CLI_OK;
}

static void
webhooks_end(sp_config *config, sp_keys *keys)
{
    sp_keys_close(keys);
    sp_config_free(config);
}

int
cli_webhooks_add(const cli_globals *globals, int argc, char **argv)
{
    static const struct option options[] = {
        {"name", required_argument, NULL, 'n'},
        {"url", required_argument, NULL, 'u'},
        {"events", required_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    sp_store_webhook hook = {.sealed = SP_BUF_INIT};
    char secret[SP_WEBHOOK_SECRET_SIZE];
    sp_config config;
    sp_keys *keys = NULL;
    sp_error err;
    int option, rc;

    optind = 0; /* 0, not 1: glibc then re-reads the option string */
    while ((option = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        if (option == 'n')
            snprintf(hook.name, sizeof(hook.name), "%s", optarg);
        else if (option == 'u')
            snprintf(hook.url, sizeof(hook.url), "%s", optarg);
        else if (option == 'e')
            snprintf(hook.events, sizeof(hook.events), "%s", optarg);
        else {
            fprintf(option == 'h' ? stdout : stderr,
                    "usage: sealpost webhooks add --name NAME --url URL "
                    "[--events TYPE,...]\n\nPrints the new endpoint's "
                    "signing secret once.  Without --events it is sent\n"
                    "every event.\n");
            return option == 'h' ? CLI_OK : CLI_USAGE;
        }
    }
    if (hook.name[0] == '\0' || optind != argc || hook.url[0] == '\0') {
        fprintf(stderr, "sealpost: webhooks add needs --name NAME and --url "
                        "http(s)://...\n");
        return CLI_USAGE;
    }

    rc = webhooks_start(globals, true, &config, &keys);
    if (rc != CLI_OK)
        return rc;
    rc = sp_webhook_add(keys, &hook, secret, &err);
    if (rc == SP_OK) {
        printf("%s\n", secret);
        fprintf(stderr,
                "sealpost: webhook %s added; its secret is shown this "
                "once\n",
                hook.name);
    } else
        fprintf(stderr, "sealpost: %s\n", err.text);
    memset(secret, 0, sizeof(secret));
    sp_buf_free(&hook.sealed);
    webhooks_end(&config, keys);
    return rc == SP_OK ? CLI_OK : rc == SP_EINVAL ? CLI_USAGE : CLI_RUNTIME;
}

static void
webhooks_count(void *arg, int64_t cursor, const char *json)
{
    (void)cursor;
    (void)json;
    (*(size_t *)arg)++;
}

/* One webhook as a table row or a JSON line; with backlog (status). */
static int
webhooks_print(sp_store *store, const sp_store_webhook *hook, bool json,
               bool status)
{
    sp_store_event_filter filter = {
        .type = hook->events,
        .after = hook->cursor,
        .limit = WEBHOOK_BACKLOG_CAP,
    };
    size_t backlog = 0;
    sp_error err;

    if (status && sp_store_events_find(store, &filter, webhooks_count, &backlog,
                                       &err) != SP_OK) {
        fprintf(stderr, "sealpost: %s\n", err.text);
        return CLI_RUNTIME;
    }
    if (json) {
        json_t *row = sp_webhook_json(hook);
        char *text;

        if (status)
            json_object_set_new(row, "backlog",
                                json_integer((json_int_t)backlog));
        text = json_dumps(row, JSON_COMPACT);
        printf("%s\n", text ? text : "{}");
        free(text);
        json_decref(row);
        return CLI_OK;
    }
    if (!status)
        printf("%-16s %-40s %s\n", hook->name, hook->url,
               hook->events[0] ? hook->events : "(every event)");
    else
        printf("%-16s backlog %zu%s  %s%s\n", hook->name, backlog,
               backlog == WEBHOOK_BACKLOG_CAP ? "+" : "",
               hook->failing_since ? "failing: " : "taking events",
               hook->failing_since ? hook->last_error : "");
    return CLI_OK;
}

/* list and status: every webhook. */
static int
webhooks_show(const cli_globals *globals, int argc, char **argv, bool status)
{
    bool json = argc == 2 && strcmp(argv[1], "--json") == 0;
    sp_store_webhook *hooks = NULL;
    size_t count = 0;
    sp_config config;
    sp_keys *keys = NULL;
    sp_error err;
    int rc;

    if (argc > 2 || (argc == 2 && !json)) {
        fprintf(stderr, "usage: sealpost webhooks %s [--json]\n",
                status ? "status" : "list");
        return CLI_USAGE;
    }
    rc = webhooks_start(globals, false, &config, &keys);
    if (rc != CLI_OK)
        return rc;
    if (sp_store_webhook_list(sp_keys_store(keys), &hooks, &count, &err) !=
        SP_OK) {
        fprintf(stderr, "sealpost: %s\n", err.text);
        rc = CLI_RUNTIME;
    }
    for (size_t i = 0; rc == CLI_OK && i < count; i++)
        rc = webhooks_print(sp_keys_store(keys), &hooks[i], json, status);
    if (rc == CLI_OK && count == 0 && !json)
        fprintf(stderr, "sealpost: no webhooks; add one with sealpost "
                        "webhooks add\n");
    sp_store_webhooks_free(hooks, count);
    webhooks_end(&config, keys);
    return rc;
}

int
cli_webhooks_list(const cli_globals *globals, int argc, char **argv)
{
    return webhooks_show(globals, argc, argv, false);
}

int
cli_webhooks_status(const cli_globals *globals, int argc, char **argv)
{
    return webhooks_show(globals, argc, argv, true);
}

int
cli_webhooks_remove(const cli_globals *globals, int argc, char **argv)
{
    sp_config config;
    sp_keys *keys = NULL;
    sp_error err;
    int rc;

    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: sealpost webhooks remove NAME\n");
        return CLI_USAGE;
    }
    rc = webhooks_start(globals, false, &config, &keys);
    if (rc != CLI_OK)
        return rc;
    if (sp_store_webhook_remove(sp_keys_store(keys), argv[1], &err) != SP_OK) {
        fprintf(stderr, "sealpost: %s\n", err.text);
        rc = err.code == SP_ENOTFOUND ? CLI_NEGATIVE : CLI_RUNTIME;
    } else
        fprintf(stderr, "sealpost: webhook %s removed\n", argv[1]);
    webhooks_end(&config, keys);
    return rc;
}
