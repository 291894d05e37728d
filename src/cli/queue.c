/*
 * queue.c: "sealpost queue list | show | delete": the messages waiting in
 * the spool of the data directory.
 *
 * Owns cli_queue_list, cli_queue_show and cli_queue_delete.  The spool is
 * opened without a writer (it may belong to a running sealpostd, which
 * keeps writing meanwhile).  list --json prints one object per line per
 * message: id, sender, recipients (the addresses), size, state, created,
 * client_ip, identity, and deliveries: per recipient its address, state
 * (pending, delivered, failed), attempts, next_try (ms since the epoch)
 * and the last reply.  The table shows each recipient with its state
 * below the message's line.
 */
#include "queue/queue.h"
#include "cli.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/*
 * The usage of a queue command: to stdout with CLI_OK when help was asked
 * for (--help or -h anywhere), else to stderr with CLI_USAGE.  Returns -1
 * when neither applies and the command goes on.
 */
static int
queue_usage(int argc, char **argv, bool wrong, const char *text)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(text, stdout);
            return CLI_OK;
        }
    if (!wrong)
        return -1;
    fputs(text, stderr);
    return CLI_USAGE;
}

/* The exit status for a failed read or delete: 1 unknown, 2 not an id. */
static int
queue_status(int code)
{
    return code == SP_ENOTFOUND ? CLI_NEGATIVE
           : code == SP_EINVAL  ? CLI_USAGE
                                : CLI_RUNTIME;
}

/* Open the spool of the configured data directory, reading only. */
static int
queue_open(const cli_globals *globals, sp_config *config, sp_queue **queue)
{
    sp_queue_options options = {.no_writer = true};
    char dir[4200];
    sp_error err;
    int rc = cli_config(globals, config);

    if (rc != CLI_OK)
        return rc;
    snprintf(dir, sizeof(dir), "%s/spool", config->data_dir);
    if (access(dir, F_OK) != 0) {
        fprintf(stderr, "sealpost: no spool in %s yet\n", config->data_dir);
        return CLI_NEGATIVE;
    }
    if (sp_queue_open(dir, &options, queue, &err) != SP_OK) {
        fprintf(stderr, "sealpost: %s\n", err.text);
        return CLI_RUNTIME;
    }
    return CLI_OK;
}

/* Where each recipient of a message stands, as a JSON array. */
static json_t *
queue_json_deliveries(const sp_queue_info *info)
{
    json_t *deliveries = json_array();

    for (size_t i = 0; info->rcpt != NULL && i < info->recipient_count; i++) {
        const sp_queue_rcpt *rcpt = &info->rcpt[i];

        json_array_append_new(
            deliveries,
            json_pack("{s:s, s:s, s:I, s:I, s:s}", "address",
                      info->recipients[i], "state",
                      sp_queue_rcpt_state_name(rcpt->state), "attempts",
                      (json_int_t)rcpt->attempts, "next_try",
                      (json_int_t)rcpt->next_try_ms, "reply", rcpt->reply));
    }
    return deliveries;
}

/* A message's description as one JSON object. */
static json_t *
queue_json(const sp_queue_info *info)
{
    json_t *message = json_object();
    json_t *recipients = json_array();

    for (size_t i = 0; i < info->recipient_count; i++)
        json_array_append_new(recipients, json_string(info->recipients[i]));
    json_object_set_new(message, "id", json_string(info->id));
    json_object_set_new(message, "sender", json_string(info->sender));
    json_object_set_new(message, "recipients", recipients);
    json_object_set_new(message, "size", json_integer((json_int_t)info->size));
    json_object_set_new(message, "state",
                        json_string(sp_queue_state_name(info->state)));
    json_object_set_new(message, "created",
                        json_integer((json_int_t)info->created_ms));
    json_object_set_new(message, "client_ip", json_string(info->client_ip));
    json_object_set_new(message, "identity", json_string(info->identity));
    json_object_set_new(message, "deliveries", queue_json_deliveries(info));
    return message;
}

/* The table's lines under a message: a recipient and where it stands. */
static void
queue_print_deliveries(const sp_queue_info *info)
{
    for (size_t i = 0; info->rcpt != NULL && i < info->recipient_count; i++) {
        const sp_queue_rcpt *rcpt = &info->rcpt[i];
        time_t next = (time_t)(rcpt->next_try_ms / 1000);
        char when[32] = "";

        if (rcpt->state == SP_QUEUE_RCPT_PENDING && rcpt->next_try_ms > 0)
            strftime(when, sizeof(when), " next %Y-%m-%d %H:%M:%S",
                     gmtime(&next));
        printf("    %-9s <%s> attempts %u%s%s%s\n",
               sp_queue_rcpt_state_name(rcpt->state), info->recipients[i],
               rcpt->attempts, when, rcpt->reply[0] ? ": " : "", rcpt->reply);
    }
}

/* How to print the messages, and how many were. */
struct queue_out {
    bool json;
    size_t printed;
};

/* Print one message: a JSON line, or a table row. */
static void
queue_print(void *arg, const sp_queue_info *info)
{
    struct queue_out *out = arg;
    bool json = out->json;
    time_t created = (time_t)(info->created_ms / 1000);
    char when[32];

    out->printed++;
    if (json) {
        json_t *message = queue_json(info);
        char *text = json_dumps(message, JSON_COMPACT);

        printf("%s\n", text ? text : "{}");
        free(text);
        json_decref(message);
        return;
    }
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", gmtime(&created));
    printf("%-20s %-8s %9llu %s <%s> -> %zu recipient%s\n", info->id,
           sp_queue_state_name(info->state), (unsigned long long)info->size,
           when, info->sender, info->recipient_count,
           info->recipient_count == 1 ? "" : "s");
    queue_print_deliveries(info);
}

int
cli_queue_list(const cli_globals *globals, int argc, char **argv)
{
    struct queue_out out = {
        .json = argc == 2 && strcmp(argv[1], "--json") == 0,
    };
    bool json = out.json;
    sp_queue *queue = NULL;
    sp_config config;
    sp_error err;
    int rc;

    rc = queue_usage(argc, argv, argc > 2 || (argc == 2 && !json),
                     "usage: sealpost queue list [--json]\n\n"
                     "The messages in the spool, oldest first; --json prints "
                     "one object a line.\n");
    if (rc >= 0)
        return rc;
    rc = queue_open(globals, &config, &queue);
    if (rc == CLI_OK &&
        sp_queue_list(queue, queue_print, &out, &err) != SP_OK) {
        fprintf(stderr, "sealpost: %s\n", err.text);
        rc = CLI_RUNTIME;
    }

    /* Said to the person, not to a script reading the list. */
    if (rc == CLI_OK && out.printed == 0 && !json)
        fprintf(stderr, "sealpost: the spool is empty\n");
    sp_queue_close(queue);
    sp_config_free(&config);
    return rc;
}

int
cli_queue_show(const cli_globals *globals, int argc, char **argv)
{
    bool raw = argc == 3 && strcmp(argv[2], "--raw") == 0;
    bool json = argc == 3 && strcmp(argv[2], "--json") == 0;
    struct queue_out out = {.json = json};
    sp_buf data = SP_BUF_INIT;
    sp_queue *queue = NULL;
    sp_config config;
    sp_error err;
    int rc;

    rc = queue_usage(argc, argv,
                     argc < 2 || argc > 3 || (argc == 3 && !raw && !json),
                     "usage: sealpost queue show ID [--raw | --json]\n\n"
                     "Prints the message's envelope, then its bytes; --raw "
                     "prints only the bytes.\n");
    if (rc >= 0)
        return rc;
    rc = queue_open(globals, &config, &queue);
    if (rc == CLI_OK && sp_queue_read(queue, argv[1], raw ? NULL : queue_print,
                                      &out, &data, &err) != SP_OK) {
        fprintf(stderr, "sealpost: %s\n", err.text);
        rc = queue_status(err.code);
    }
    if (rc == CLI_OK && !json) {
        /* The envelope went through stdio: out before the bytes. */
        if (!raw)
            printf("\n");
        fflush(stdout);
        rc = cli_write_all(1, data.data, data.len, &err) == SP_OK ? CLI_OK
                                                                  : CLI_RUNTIME;
    }
    sp_buf_free(&data);
    sp_queue_close(queue);
    sp_config_free(&config);
    return rc;
}

int
cli_queue_delete(const cli_globals *globals, int argc, char **argv)
{
    sp_queue *queue = NULL;
    sp_config config;
    sp_error err;
    int rc;

    rc = queue_usage(argc, argv, argc < 2,
                     "usage: sealpost queue delete ID [ID ...]\n\n"
                     "Removes messages from the spool for good.\n");
    if (rc >= 0)
        return rc;
    rc = queue_open(globals, &config, &queue);
    for (int i = 1; rc == CLI_OK && i < argc; i++) {
        if (sp_queue_delete(queue, argv[i], &err) == SP_OK) {
            fprintf(stderr, "sealpost: %s deleted\n", argv[i]);
            continue;
        }
        fprintf(stderr, "sealpost: %s: %s\n", argv[i], err.text);
        rc = queue_status(err.code);
    }
    sp_queue_close(queue);
    sp_config_free(&config);
    return rc;
}
