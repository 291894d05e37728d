/*
 * main.c: the sealpost command line tool: global options, the table of
 * commands, and usage.
 *
 * Owns main.  Global options come before the command and fall back to the
 * environment (SEALPOST_CONFIG, SEALPOST_DATA_DIR, SEALPOST_API); each
 * command parses its own options.
 */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef SEALPOST_VERSION
#define SEALPOST_VERSION "unknown"
#endif

struct cli_command {
    const char *group; /* "dkim", or the command of one word ("events") */
    const char *name;  /* NULL for a command of one word */
    int (*run)(const cli_globals *globals, int argc, char **argv);
    const char *summary;
};

static const struct cli_command commands[] = {
    {"apikey", "create", cli_apikey_create,
     "make an API key for SMTP AUTH and the API (shown once)"},
    {"apikey", "list", cli_apikey_list, "the API keys and their limits"},
    {"apikey", "revoke", cli_apikey_revoke, "revoke an API key"},
    {"queue", "list", cli_queue_list, "the messages in the spool"},
    {"queue", "show", cli_queue_show, "one message: envelope and bytes"},
    {"queue", "delete", cli_queue_delete, "remove messages from the spool"},
    {"events", NULL, cli_events,
     "what happened to the messages (--follow, --json)"},
    {"webhooks", "add", cli_webhooks_add,
     "send events to an endpoint (its secret shown once)"},
    {"webhooks", "list", cli_webhooks_list, "the endpoints events go to"},
    {"webhooks", "remove", cli_webhooks_remove, "stop sending to one"},
    {"webhooks", "status", cli_webhooks_status,
     "each endpoint's backlog and last error"},
    {"config", "check", cli_config_check,
     "say whether sealpostd would take the configuration"},
    {"send", NULL, cli_send,
     "send a transmission, or a template to a CSV of recipients"},
    {"dkim", "sign", cli_dkim_sign,
     "add DKIM signatures to a message (stdin to stdout)"},
    {"dkim", "verify", cli_dkim_verify,
     "verify the DKIM signatures of messages"},
    {"dkim", "keygen", cli_dkim_keygen,
     "make a domain's keys (pending until DNS shows them)"},
    {"dkim", "dns", cli_dkim_dns, "print the TXT records to publish"},
    {"dkim", "rotate", cli_dkim_rotate,
     "move a domain's keys along their lifecycle"},
    {"dkim", "activate", cli_dkim_activate,
     "make a pending key sign without seeing its record"},
    {"dkim", "status", cli_dkim_status,
     "each key, its state and what blocks it"},
    {"dkim", "export", cli_dkim_export,
     "print a private key (explicit request only)"},
    {"dns", "update", cli_dns_update,
     "publish or delete a TXT record (RFC 2136, TSIG)"},
    {"dns", "mx", cli_dns_mx,
     "a domain's mail exchangers, in the order delivery tries them"},
    {"dkim", "audit", cli_dkim_audit,
     "check a domain's published DKIM, DomainKeys and DMARC records"},
    {"keys", "import", cli_keys_import,
     "store a recipient's S/MIME certificate or OpenPGP key"},
    {"keys", "list", cli_keys_list, "the recipients' keys"},
    {"keys", "remove", cli_keys_remove, "remove a recipient's keys"},
    {"dmarc", "record", cli_dmarc_record,
     "print a DMARC record for a domain, with advice"},
    {"dmarc", "parse", cli_dmarc_parse,
     "read aggregate reports and print them"},
    {"dmarc", "import", cli_dmarc_import,
     "store aggregate reports (XML, gzip, zip, mails)"},
    {"dmarc", "summary", cli_dmarc_summary,
     "how receivers judged each domain's mail, with advice"},
};

static void
usage(FILE *out)
{
    fprintf(out, "usage: sealpost [--config FILE] [--data-dir DIR] [--api URL] "
                 "COMMAND ...\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        char label[40];

        snprintf(label, sizeof(label), "%s%s%s", commands[i].group,
                 commands[i].name ? " " : "",
                 commands[i].name ? commands[i].name : "");
        fprintf(out, "  %-16s %s\n", label, commands[i].summary);
    }
    fprintf(out, "  version          print the version\n"
                 "\n'sealpost COMMAND --help' describes a command.\n");
}

/* Global option, else the environment variable, else NULL. */
static const char *
from_env(const char *option, const char *variable)
{
    const char *value = getenv(variable);

    return option ? option : (value && *value ? value : NULL);
}

int
main(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"data-dir", required_argument, NULL, 'd'},
        {"api", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'v'},
        {NULL, 0, NULL, 0},
    };
    cli_globals globals = {0};
    int option;

    sp_log_init("sealpost");
    /* '+': stop at the command, whose options are its own. */
    while ((option = getopt_long(argc, argv, "+h", options, NULL)) != -1) {
        switch (option) {
        case 'c':
            globals.config = optarg;
            break;
        case 'd':
            globals.data_dir = optarg;
            break;
        case 'a':
            globals.api = optarg;
            break;
        case 'h':
            usage(stdout);
            return CLI_OK;
        case 'v':
            printf("sealpost %s\n", SEALPOST_VERSION);
            return CLI_OK;
        default:
            usage(stderr);
            return CLI_USAGE;
        }
    }
    globals.config = from_env(globals.config, "SEALPOST_CONFIG");
    globals.data_dir = from_env(globals.data_dir, "SEALPOST_DATA_DIR");
    globals.api = from_env(globals.api, "SEALPOST_API");

    if (optind >= argc) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (strcmp(argv[optind], "version") == 0) {
        printf("sealpost %s\n", SEALPOST_VERSION);
        return CLI_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[optind], commands[i].group) != 0)
            continue;
        if (commands[i].name == NULL) /* a command of one word */
            return commands[i].run(&globals, argc - optind, argv + optind);
        if (optind + 1 >= argc || strcmp(argv[optind + 1], commands[i].name))
            continue;
        /* The command sees its name as argv[0], like a program. */
        return commands[i].run(&globals, argc - optind - 1, argv + optind + 1);
    }
    /* A group without a known command: list what it has. */
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        bool help;

        if (strcmp(argv[optind], commands[i].group) != 0)
            continue;
        help = optind + 1 < argc && (strcmp(argv[optind + 1], "--help") == 0 ||
                                     strcmp(argv[optind + 1], "-h") == 0);
        if (!help)
            fprintf(stderr, "sealpost: %s: unknown or missing command\n",
                    argv[optind]);
        fprintf(help ? stdout : stderr, "commands of sealpost %s:\n",
                argv[optind]);
        for (size_t k = i; k < sizeof(commands) / sizeof(commands[0]); k++)
            if (strcmp(commands[k].group, argv[optind]) == 0)
                fprintf(help ? stdout : stderr, "  %-10s %s\n",
                        commands[k].name, commands[k].summary);
        return help ? CLI_OK : CLI_USAGE;
    }
    fprintf(stderr, "sealpost: unknown command \"%s%s%s\"\n", argv[optind],
            optind + 1 < argc ? " " : "",
            optind + 1 < argc ? argv[optind + 1] : "");
    usage(stderr);
    return CLI_USAGE;
}
