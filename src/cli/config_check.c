/*
 * config_check.c: "sealpost config check": whether sealpostd would take
 * a configuration, before it is asked to.
 *
 * Owns cli_config_check.  It reads the file as sealpostd does (each
 * mistake named with its line), checks the rules between settings, and
 * parses what only the daemon's parts otherwise read: the delivery
 * settings (delivery_tls, delivery_source, delivery_rules) and the
 * listening addresses.  Exit status 0 when all is well, 2 when something
 * is not (said on standard error).
 */
#include "cli.h"

#include "queue/queue.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Whether text is ADDR:PORT or [ADDR6]:PORT with a numeric address and a
 * port from 1 to 65535.
 */
static bool
check_address(const char *text)
{
    const char *colon = strrchr(text, ':');
    char host[64];
    unsigned char ip[16];
    int64_t port;
    size_t len;

    if (colon == NULL || !cli_parse_number(colon + 1, 1, 65535, &port))
        return false;
    len = (size_t)(colon - text);
    if (len >= 2 && text[0] == '[' && text[len - 1] == ']') {
        if (len - 2 >= sizeof(host))
            return false;
        memcpy(host, text + 1, len - 2);
        host[len - 2] = '\0';
        return inet_pton(AF_INET6, host, ip) == 1;
    }
    if (len >= sizeof(host))
        return false;
    memcpy(host, text, len);
    host[len] = '\0';
    return inet_pton(AF_INET, host, ip) == 1;
}

/* The listening addresses; false after saying which is wrong. */
static bool
check_listeners(const sp_config *config)
{
    for (size_t i = 0; i < config->smtp_listen.count; i++)
        if (!check_address(config->smtp_listen.items[i])) {
            fprintf(stderr,
                    "sealpost: smtp_listen: %s: expected ADDR:PORT or "
                    "[ADDR6]:PORT\n",
                    config->smtp_listen.items[i]);
            return false;
        }
    if (config->http_listen[0] != '\0' && !check_address(config->http_listen)) {
        fprintf(stderr,
                "sealpost: http_listen: %s: expected ADDR:PORT or "
                "[ADDR6]:PORT\n",
                config->http_listen);
        return false;
    }
    return true;
}

int
cli_config_check(const cli_globals *globals, int argc, char **argv)
{
    sp_sched_limits defaults;
    sp_sched_rule *rules = NULL;
    size_t count = 0;
    sp_config config;
    sp_error err;
    int rc;

    if (argc > 1) {
        bool help = strcmp(argv[1], "--help") == 0;

        fprintf(help ? stdout : stderr,
                "usage: sealpost [--config FILE] config check\n\n"
                "Reads the configuration as sealpostd would and says what "
                "is wrong, naming\nthe line; with no --config, the "
                "embedded defaults (and SEALPOST_CONFIG).\n");
        return help ? CLI_OK : CLI_USAGE;
    }
    rc = cli_config(globals, &config);
    if (rc != CLI_OK)
        return rc;
    if (sp_sched_settings(&config, &defaults, &rules, &count, &err) != SP_OK) {
        fprintf(stderr, "sealpost: %s\n", err.text);
        rc = err.code == SP_ENOMEM ? CLI_RUNTIME : CLI_USAGE;
    } else if (!check_listeners(&config))
        rc = CLI_USAGE;
    sp_free(rules);
    if (rc == CLI_OK)
        printf("%s: the configuration is good (%zu delivery rules)\n",
               globals->config ? globals->config : "embedded defaults", count);
    sp_config_free(&config);
    return rc;
}
