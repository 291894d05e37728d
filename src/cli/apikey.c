/*
 * apikey.c: "sealpost apikey create | list | revoke": the keys
 * applications authenticate with, by SMTP AUTH (the key as the password)
 * and the HTTP API.
 *
 * Owns cli_apikey_create, cli_apikey_list and cli_apikey_revoke.  A new
 * key is printed once; the store keeps its hash, a short prefix to tell
 * keys apart, and the sender domains it is limited to.
 */
#include "cli.h"
#include "crypt/crypt.h"
#include "mail/mail.h"
#include "store/store.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Append domain to the comma list, checking it; false after saying why. */
static bool
apikey_add_domain(char *list, size_t size, const char *domain)
{
    size_t used = strlen(list);

    if (!sp_mail_domain_valid(domain, strlen(domain), SP_MAIL_DOMAIN_DOTTED)) {
        fprintf(stderr, "sealpost: --domain %s is not a domain name\n", domain);
        return false;
    }
    if (used + strlen(domain) + 2 > size) {
        fprintf(stderr, "sealpost: too many --domain values\n");
        return false;
    }
    snprintf(list + used, size - used, "%s%s", used ? "," : "", domain);
    return true;
}

int
cli_apikey_create(const cli_globals *globals, int argc, char **argv)
{
    static const struct option options[] = {
        {"name", required_argument, NULL, 'n'},
        {"domain", required_argument, NULL, 'd'},
        {"scope", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    sp_store_apikey key = {0};
    char secret[SP_CRYPT_APIKEY_SIZE];
    sp_store *store = NULL;
    sp_config config;
    sp_error err;
    int option, rc;

    optind = 0; /* 0, not 1: glibc then re-reads the option string */
    while ((option = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        if (option == 'n') {
            snprintf(key.name, sizeof(key.name), "%s", optarg);
        } else if (option == 'd') {
            if (!apikey_add_domain(key.domains, sizeof(key.domains), optarg))
                return CLI_USAGE;
        } else if (option == 's') {
            if (strcmp(optarg, "send") != 0 && strcmp(optarg, "read") != 0 &&
                strcmp(optarg, "webhooks") != 0 &&
                strcmp(optarg, "templates") != 0 &&
                strcmp(optarg, "keys") != 0) {
                fprintf(stderr,
                        "sealpost: --scope %s: send (SMTP AUTH, "
                        "transmissions), read (events, metrics), webhooks, "
                        "templates or keys (managing them)\n",
                        optarg);
                return CLI_USAGE;
            }
            if (strstr(key.scopes, optarg) == NULL)
                snprintf(key.scopes + strlen(key.scopes),
                         sizeof(key.scopes) - strlen(key.scopes), "%s%s",
                         key.scopes[0] ? "," : "", optarg);
        } else {
            fprintf(option == 'h' ? stdout : stderr,
                    "usage: sealpost apikey create --name NAME "
                    "[--domain D ...]\n       [--scope "
                    "send|read|webhooks|templates|keys "
                    "...]\n\n"
                    "Prints a new API key once: keep it, sealpost stores "
                    "only its hash.  With\n--domain, the key may send only "
                    "from those domains.  With --scope, it may\ndo only "
                    "what the scopes name: send (SMTP AUTH, transmissions), "
                    "read (events\nand metrics), webhooks, templates and "
                    "keys (recipients' keys: manage them\nover the API).  "
                    "Without --scope: send and read.\n");
            return option == 'h' ? CLI_OK : CLI_USAGE;
        }
    }
    if (key.name[0] == '\0' || optind != argc) {
        fprintf(stderr, "sealpost: apikey create needs --name NAME\n");
        return CLI_USAGE;
    }

    rc = cli_store(globals, &config, &store);
    if (rc == CLI_OK && sp_crypt_apikey_new(secret, &err) != SP_OK) {
        fprintf(stderr, "sealpost: %s\n", err.text);
        rc = CLI_RUNTIME;
    }
    if (rc == CLI_OK) {
        snprintf(key.prefix, sizeof(key.prefix), "%.11s", secret);
        sp_crypt_apikey_hash(secret, strlen(secret), key.hash);
        key.created = (int64_t)time(NULL);
        if (sp_store_apikey_insert(store, &key, &err) != SP_OK) {
            fprintf(stderr, "sealpost: %s\n", err.text);
            rc = err.code == SP_EINVAL ? CLI_USAGE : CLI_RUNTIME;
        }
    }
    if (rc == CLI_OK) {
        printf("%s\n", secret);
        fprintf(stderr,
                "sealpost: API key %s made%s%s; it is shown this once\n",
                key.name, key.domains[0] ? " for " : "", key.domains);
    }
    memset(secret, 0, sizeof(secret));
    sp_store_close(store);
    sp_config_free(&config);
    return rc;
}

int
cli_apikey_list(const cli_globals *globals, int argc, char **argv)
{
    bool json = argc == 2 && strcmp(argv[1], "--json") == 0;
    sp_store_apikey *keys = NULL;
    sp_store *store = NULL;
    size_t count = 0;
    sp_config config;
    sp_error err;
    int rc;

    if (argc > 2 || (argc == 2 && !json)) {
        fprintf(stderr, "usage: sealpost apikey list [--json]\n");
        return CLI_USAGE;
    }
    rc = cli_store(globals, &config, &store);
    if (rc == CLI_OK &&
        sp_store_apikey_list(store, &keys, &count, &err) != SP_OK) {
        fprintf(stderr, "sealpost: %s\n", err.text);
        rc = CLI_RUNTIME;
    }
    for (size_t i = 0; rc == CLI_OK && i < count; i++) {
        const sp_store_apikey *key = &keys[i];

        if (json) {
            json_t *row =
                json_pack("{s:s, s:s, s:s, s:I, s:I, s:s}", "name", key->name,
                          "prefix", key->prefix, "domains", key->domains,
                          "created", (json_int_t)key->created, "revoked",
                          (json_int_t)key->revoked, "scopes", key->scopes);
            char *text = json_dumps(row, JSON_COMPACT);

            printf("%s\n", text ? text : "{}");
            free(text);
            json_decref(row);
        } else {
            printf("%-20s %-12s %-8s %-10s %s\n", key->name, key->prefix,
                   key->revoked ? "revoked" : "valid", key->scopes,
                   key->domains[0] ? key->domains : "(any domain)");
        }
    }
    if (rc == CLI_OK && count == 0 && !json)
        printf("no API keys; make one with sealpost apikey create\n");
    sp_free(keys);
    sp_store_close(store);
    sp_config_free(&config);
    return rc;
}

int
cli_apikey_revoke(const cli_globals *globals, int argc, char **argv)
{
    sp_store *store = NULL;
    sp_config config;
    sp_error err;
    int rc;

    if (argc != 2) {
        fprintf(stderr, "usage: sealpost apikey revoke NAME\n");
        return CLI_USAGE;
    }
    rc = cli_store(globals, &config, &store);
    if (rc == CLI_OK &&
        sp_store_apikey_revoke(store, argv[1], (int64_t)time(NULL), &err) !=
            SP_OK) {
        fprintf(stderr, "sealpost: %s\n", err.text);
        rc = err.code == SP_ENOTFOUND ? CLI_NEGATIVE : CLI_RUNTIME;
    }
    if (rc == CLI_OK)
        fprintf(stderr, "sealpost: API key %s revoked\n", argv[1]);
    sp_store_close(store);
    sp_config_free(&config);
    return rc;
}
