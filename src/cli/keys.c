/*
 * keys.c: "sealpost keys import|list|remove": the directory of the keys
 * that mail to a recipient is encrypted with, S/MIME certificates and
 * OpenPGP public keys.
 *
 * Owns cli_keys_import, cli_keys_list and cli_keys_remove.  A key is read
 * and checked before it is stored (crypt/seal.h: validity now, chain and
 * key usage for a certificate, revocation and an encryption subkey for an
 * OpenPGP key), and stored for the addresses it names, or for the one
 * given, which it must name; --domain makes it the key of every address
 * of a domain that has none of its own.  What is refused is said with the
 * reason, and nothing is stored.
 */
#include "cli.h"
#include "crypt/seal.h"
#include "mail/mail.h"
#include "store/store.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static void
keys_date(int64_t when, char *out, size_t size)
{
    time_t t = (time_t)when;
    struct tm tm;

    if (when == 0 || gmtime_r(&t, &tm) == NULL)
        snprintf(out, size, "never");
    else
        strftime(out, size, "%Y-%m-%d", &tm);
}

static int
import_usage(FILE *out, int status)
{
    fprintf(out,
            "usage: sealpost keys import [--address A | --domain D] "
            "[--ca FILE] [--json] FILE\n"
            "\n"
            "Store a recipient's S/MIME certificate (PEM or DER, its chain "
            "after it)\nor OpenPGP public key (armored or binary), after "
            "checking it: valid\nnow; a certificate chained to a trusted "
            "root (the system's, and\n--ca FILE) with key usage for "
            "encryption; an OpenPGP key not revoked,\nwith a key that may "
            "encrypt.  Stored for every address the key names,\nor for "
            "--address A alone (which it must name), or as the default of\n"
            "every address of domain D that has no key of its own.\n"
            "Exit: 0 stored, 1 refused (the reason is printed), 2 usage, 3 "
            "store failure.\n");
    return status;
}

/* Store key's bytes for address; prints what happened. */
static int
import_one(sp_store *store, const sp_seal_key *key, const sp_buf *data,
           const char *address, bool json)
{
    sp_store_rkey row;
    char until[16];
    sp_error err;
    int rc;

    rc = sp_store_rkey_put(store, key, data, address, (int64_t)time(NULL), &row,
                           &err);
    if (rc != SP_OK) {
        fprintf(stderr, "sealpost: %s\n", err.text);
        return rc == SP_EINVAL ? CLI_NEGATIVE : CLI_RUNTIME;
    }
    keys_date(key->not_after, until, sizeof(until));
    if (json) {
        json_t *line = json_pack(
            "{s:s, s:s, s:s, s:s, s:I}", "address", row.address, "method",
            row.method, "fingerprint", row.fingerprint, "subject", row.subject,
            "not_after", (json_int_t)row.not_after);

        json_dumpf(line, stdout, JSON_COMPACT);
        putchar('\n');
        json_decref(line);
    } else {
        printf("stored %s key %s for %s (%s, valid until %s)\n", row.method,
               row.fingerprint, row.address, row.subject, until);
    }
    return CLI_OK;
}

int
cli_keys_import(const cli_globals *globals, int argc, char **argv)
{
    static const struct option options[] = {
        {"address", required_argument, NULL, 'a'},
        {"domain", required_argument, NULL, 'd'},
        {"ca", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *address = NULL, *domain = NULL;
    sp_seal_check check = {.now = (int64_t)time(NULL)};
    sp_buf data = SP_BUF_INIT;
    sp_seal_key *key = NULL;
    sp_store *store = NULL;
    sp_config config;
    bool json = false;
    char target[256];
    sp_error err;
    int option, rc;

    optind = 0;
    while ((option = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (option) {
        case 'a':
            address = optarg;
            break;
        case 'd':
            domain = optarg;
            break;
        case 'c':
            check.ca_file = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 'h':
            return import_usage(stdout, CLI_OK);
        default:
            return import_usage(stderr, CLI_USAGE);
        }
    }
    if (argc - optind != 1 || (address != NULL && domain != NULL) ||
        (address != NULL && strchr(address, '@') == NULL) ||
        (domain != NULL && !sp_mail_domain_valid(domain, strlen(domain), 0)))
        return import_usage(stderr, CLI_USAGE);

    /* Read and check before anything is stored. */
    if (cli_read_file(argv[optind], &data, &err) != SP_OK) {
        fprintf(stderr, "sealpost: %s: %s\n", argv[optind], err.text);
        return CLI_NEGATIVE;
    }
    rc = sp_seal_key_read(data.data, data.len, &check, &key, &err);
    if (rc != SP_OK) {
        fprintf(stderr, "sealpost: %s: refused: %s\n", argv[optind], err.text);
        sp_buf_free(&data);
        return rc == SP_ENOMEM ? CLI_RUNTIME : CLI_NEGATIVE;
    }
    if (address != NULL && !sp_seal_key_names(key, address)) {
        fprintf(stderr,
                "sealpost: %s: refused: the key does not name %s (it names "
                "%s%s)\n",
                argv[optind], address,
                key->n_addresses ? key->addresses[0] : "no address",
                key->n_addresses > 1 ? " and others" : "");
        rc = CLI_NEGATIVE;
    } else if (address == NULL && domain == NULL &&
               key->n_addresses > SP_SEAL_MAX_ADDRESSES) {
        fprintf(stderr,
                "sealpost: %s: refused: the key names %zu addresses, more "
                "than the %d stored at once; give --address\n",
                argv[optind], key->n_addresses, SP_SEAL_MAX_ADDRESSES);
        rc = CLI_NEGATIVE;
    } else if (address == NULL && domain == NULL && key->n_addresses == 0) {
        fprintf(stderr,
                "sealpost: %s: refused: the key names no address; give "
                "--domain to make it a domain's default\n",
                argv[optind]);
        rc = CLI_NEGATIVE;
    } else {
        rc = cli_store(globals, &config, &store);
    }

    if (rc == CLI_OK && domain != NULL) {
        snprintf(target, sizeof(target), "@%s", domain);
        rc = import_one(store, key, &data, target, json);
    } else if (rc == CLI_OK && address != NULL) {
        rc = import_one(store, key, &data, address, json);
    } else {
        for (size_t i = 0; rc == CLI_OK && i < key->n_addresses; i++)
            rc = import_one(store, key, &data, key->addresses[i], json);
    }

    if (store != NULL) {
        sp_store_close(store);
        sp_config_free(&config);
    }
    sp_seal_key_free(key);
    sp_buf_free(&data);
    return rc;
}

static int
list_usage(FILE *out, int status)
{
    fprintf(out, "usage: sealpost keys list [--json] [ADDRESS | @DOMAIN]\n"
                 "\n"
                 "The recipients' keys: address, method, fingerprint, "
                 "subject and the end\nof validity (\"EXPIRED\" once "
                 "past).\n");
    return status;
}

int
cli_keys_list(const cli_globals *globals, int argc, char **argv)
{
    static const struct option options[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int64_t now = (int64_t)time(NULL);
    sp_store_rkey *keys = NULL;
    sp_store *store = NULL;
    sp_config config;
    bool json = false;
    size_t count = 0;
    sp_error err;
    int option, rc;

    optind = 0;
    while ((option = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        if (option == 'j')
            json = true;
        else
            return list_usage(option == 'h' ? stdout : stderr,
                              option == 'h' ? CLI_OK : CLI_USAGE);
    }
    if (argc - optind > 1)
        return list_usage(stderr, CLI_USAGE);
    rc = cli_store(globals, &config, &store);
    if (rc != CLI_OK)
        return rc;
    if (sp_store_rkey_list(store, optind < argc ? argv[optind] : NULL, &keys,
                           &count, &err) != SP_OK) {
        fprintf(stderr, "sealpost: %s\n", err.text);
        rc = CLI_RUNTIME;
    }

    for (size_t i = 0; rc == CLI_OK && i < count; i++) {
        const sp_store_rkey *key = &keys[i];
        bool expired = key->not_after != 0 && key->not_after < now;
        char until[16];

        keys_date(key->not_after, until, sizeof(until));
        if (json) {
            json_t *line =
                json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:b}", "address",
                          key->address, "method", key->method, "fingerprint",
                          key->fingerprint, "subject", key->subject,
                          "not_before", (json_int_t)key->not_before,
                          "not_after", (json_int_t)key->not_after, "imported",
                          (json_int_t)key->imported, "expired", expired);

            json_dumpf(line, stdout, JSON_COMPACT);
            putchar('\n');
            json_decref(line);
        } else {
            printf("%-32s %-5s %-20.20s %s %s\n", key->address, key->method,
                   key->fingerprint, expired ? "EXPIRED" : until, key->subject);
        }
    }
    if (rc == CLI_OK && count == 0 && !json)
        printf("no recipient keys%s%s\n", optind < argc ? " for " : "",
               optind < argc ? argv[optind] : "");
    sp_store_rkeys_free(keys, count);
    sp_store_close(store);
    sp_config_free(&config);
    return rc == CLI_OK && count == 0 ? CLI_NEGATIVE : rc;
}

int
cli_keys_remove(const cli_globals *globals, int argc, char **argv)
{
    sp_store *store = NULL;
    sp_config config;
    size_t removed = 0;
    sp_error err;
    int rc;

    if (argc >= 2 && strcmp(argv[1], "--help") == 0) {
        printf("usage: sealpost keys remove ADDRESS|@DOMAIN [FINGERPRINT]\n"
               "\nRemove an address's keys, or only the one with "
               "FINGERPRINT.\n");
        return CLI_OK;
    }
    if (argc < 2 || argc > 3 || argv[1][0] == '-') {
        fprintf(stderr, "usage: sealpost keys remove ADDRESS|@DOMAIN "
                        "[FINGERPRINT]\n");
        return CLI_USAGE;
    }
    rc = cli_store(globals, &config, &store);
    if (rc != CLI_OK)
        return rc;
    if (sp_store_rkey_remove(store, argv[1], argc == 3 ? argv[2] : NULL,
                             &removed, &err) != SP_OK) {
        fprintf(stderr, "sealpost: %s\n", err.text);
        rc = CLI_RUNTIME;
    } else if (removed == 0) {
        fprintf(stderr, "sealpost: no such key for %s\n", argv[1]);
        rc = CLI_NEGATIVE;
    } else {
        printf("removed %zu key%s of %s\n", removed, removed == 1 ? "" : "s",
               argv[1]);
    }
    sp_store_close(store);
    sp_config_free(&config);
    return rc;
}
