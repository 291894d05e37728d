/*
 * dkim_sign.c: "sealpost dkim sign", which signs one message read from
 * standard input and writes it, signatures first, to standard output.
 *
 * Owns cli_dkim_sign.  Each --key makes one signature with the --domain
 * and --selector given before it, so RSA and Ed25519 for one domain read:
 *   --domain example.com --selector r1 --key rsa.pem --selector e1 --key
 *   ed.pem
 * The engine refuses bare CR or LF; --fix-eol normalizes them first, and
 * the output then carries the normalized bytes, which are what was signed.
 *
 * With --domain and no --key, the domain's active keys from sealpost's
 * store sign, as sealpostd would, with x= from dkim_signature_expiry; each
 * signature is recorded, so the key's retirement waits for its x=.
 */
#include "cli.h"
#include "dkim/dkim.h"
#include "keys/keys.h"
#include "mail/mail.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SIGN_MAX_KEYS  8
#define SIGN_MAX_TIME  ((int64_t)100000000000) /* year 5138 */
#define SIGN_MAX_NAMES 64

struct sign_options {
    sp_dkim_sign_spec specs[SIGN_MAX_KEYS];
    sp_dkim_key *keys[SIGN_MAX_KEYS]; /* owned */
    size_t count;
    sp_dkim_canon header_canon;
    sp_dkim_canon body_canon;
    int64_t expire_after;
    int64_t now;
    const char *identity;
    const char
        *names[SIGN_MAX_NAMES + 1]; /* --fields, pointing into names_text */
    char *names_text;               /* owned */
    bool custom_names;
    bool fix_eol;
    bool expire_given;              /* --expire was given */
    const char *store_domain;       /* sign with this domain's stored keys */
    int64_t key_ids[SIGN_MAX_KEYS]; /* their store ids */
};

static void
sign_usage(FILE *out)
{
    fprintf(out,
            "usage: sealpost dkim sign --domain D --selector S --key FILE\n"
            "           [--selector S2 --key FILE2 ...] [--canon H/B]\n"
            "           [--expire DURATION] [--identity I] [--fields A,B]\n"
            "           [--fix-eol] [--time EPOCH] < message > signed\n"
            "\n"
            "Each --key adds a signature with the domain and selector given\n"
            "before it.  Keys are PEM (RSA of 1024 bits or more, Ed25519) or\n"
            "the base64 of an Ed25519 seed.  --canon defaults to\n"
            "relaxed/relaxed; --expire sets x= (90d, 12h, 3600); --fields\n"
            "replaces the default list of fields to sign, each oversigned;\n"
            "--fix-eol turns bare CR and LF into CRLF before signing.\n"
            "Exit: 0 signed, 1 refused (no From, bare LF, ...), 2 usage,\n"
            "3 I/O.\n");
}

/* Load the key in path and add a signature spec for it. */
static int
sign_add_key(struct sign_options *opt, const char *path, const char *domain,
             const char *selector)
{
    sp_buf text = SP_BUF_INIT;
    sp_error err;
    sp_dkim_key *key = NULL;
    const char *warning;
    int rc;

    if (domain == NULL || selector == NULL) {
        fprintf(stderr,
                "sealpost: --key %s needs --domain and --selector "
                "before it\n",
                path);
        return CLI_USAGE;
    }
    if (opt->count == SIGN_MAX_KEYS) {
        fprintf(stderr, "sealpost: at most %d keys\n", SIGN_MAX_KEYS);
        return CLI_USAGE;
    }
    rc = cli_read_file(path, &text, &err);
    if (rc == SP_OK)
        rc = sp_dkim_key_parse(text.data, text.len, &key, &err);
    sp_buf_free(&text);
    if (rc != SP_OK) {
        fprintf(stderr, "sealpost: %s: %s\n", path, err.text);
        return rc == SP_EIO ? CLI_RUNTIME : CLI_USAGE;
    }
    warning = sp_dkim_key_warning(key);
    if (warning != NULL)
        fprintf(stderr, "sealpost: warning: %s: %s\n", path, warning);

    opt->keys[opt->count] = key;
    opt->specs[opt->count] = (sp_dkim_sign_spec){
        .domain = domain,
        .selector = selector,
        .key = key,
    };
    opt->count++;
    return CLI_OK;
}

/* --fields A,B,C (commas or colons) replaces the default names. */
static int
sign_set_names(struct sign_options *opt, const char *list)
{
    size_t count = 0;
    char *save = NULL;

    free(opt->names_text);
    opt->names_text = sp_xstrdup(list);
    for (char *name = strtok_r(opt->names_text, ",:", &save); name != NULL;
         name = strtok_r(NULL, ",:", &save)) {
        if (count == SIGN_MAX_NAMES) {
            fprintf(stderr, "sealpost: --fields: at most %d names\n",
                    SIGN_MAX_NAMES);
            return CLI_USAGE;
        }
        opt->names[count++] = name;
    }
    opt->names[count] = NULL;
    opt->custom_names = true;
    return CLI_OK;
}

/* Parse the options; CLI_OK or the status to exit with. */
static int
sign_parse(struct sign_options *opt, int argc, char **argv)
{
    static const struct option options[] = {
        {"domain", required_argument, NULL, 'd'},
        {"selector", required_argument, NULL, 's'},
        {"key", required_argument, NULL, 'k'},
        {"canon", required_argument, NULL, 'c'},
        {"expire", required_argument, NULL, 'x'},
        {"identity", required_argument, NULL, 'i'},
        {"fields", required_argument, NULL, 'f'},
        {"fix-eol", no_argument, NULL, 'e'},
        {"time", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *domain = NULL, *selector = NULL;
    sp_error err;
    int option, rc = CLI_OK;

    optind = 0; /* 0, not 1: glibc then re-reads the option string */
    while (rc == CLI_OK &&
           (option = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (option) {
        case 'd':
            domain = optarg;
            break;
        case 's':
            selector = optarg;
            break;
        case 'k':
            rc = sign_add_key(opt, optarg, domain, selector);
            break;
        case 'c':
            if (sp_dkim_canon_parse(optarg, &opt->header_canon,
                                    &opt->body_canon, &err) != SP_OK) {
                fprintf(stderr, "sealpost: --canon: %s\n", err.text);
                rc = CLI_USAGE;
            }
            break;
        case 'x':
            opt->expire_given = true;
            if (!cli_parse_duration(optarg, &opt->expire_after)) {
                fprintf(stderr,
                        "sealpost: --expire %s: expected a number "
                        "with s, m, h, d or w\n",
                        optarg);
                rc = CLI_USAGE;
            }
            break;
        case 'i':
            opt->identity = optarg;
            break;
        case 'f':
            rc = sign_set_names(opt, optarg);
            break;
        case 'e':
            opt->fix_eol = true;
            break;
        case 't':
            if (!cli_parse_number(optarg, 0, SIGN_MAX_TIME, &opt->now)) {
                fprintf(stderr,
                        "sealpost: --time %s: expected seconds "
                        "since 1970\n",
                        optarg);
                rc = CLI_USAGE;
            }
            break;
        case 'h':
            sign_usage(stdout);
            return -1;
        default:
            sign_usage(stderr);
            return CLI_USAGE;
        }
    }
    if (rc == CLI_OK && opt->count == 0 && domain != NULL && selector == NULL)
        opt->store_domain = domain;
    if (rc == CLI_OK &&
        ((opt->count == 0 && opt->store_domain == NULL) || optind != argc)) {
        sign_usage(stderr);
        rc = CLI_USAGE;
    }
    return rc;
}

/* Read the message, normalizing line endings when asked. */
static int
sign_read(const struct sign_options *opt, sp_buf *message)
{
    sp_buf raw = SP_BUF_INIT;
    sp_mail_eol eol;
    sp_error err;

    if (cli_read_file("-", opt->fix_eol ? &raw : message, &err) != SP_OK) {
        fprintf(stderr, "sealpost: reading the message: %s\n", err.text);
        sp_buf_free(&raw);
        return CLI_RUNTIME;
    }
    if (!opt->fix_eol)
        return CLI_OK;
    sp_mail_eol_init(&eol);
    if (sp_mail_eol_feed(&eol, raw.data, raw.len, message) != SP_OK ||
        sp_mail_eol_finish(&eol, message) != SP_OK) {
        fprintf(stderr, "sealpost: out of memory\n");
        sp_buf_free(&raw);
        return CLI_RUNTIME;
    }
    sp_buf_free(&raw);
    return CLI_OK;
}

/* Sign message and write signatures and message to standard output. */
static int
sign_run(struct sign_options *opt, const sp_buf *message)
{
    sp_buf fields = SP_BUF_INIT;
    sp_dkim_sign *sign = NULL;
    sp_error err;
    int rc;

    for (size_t i = 0; i < opt->count; i++) {
        opt->specs[i].header_canon = opt->header_canon;
        opt->specs[i].body_canon = opt->body_canon;
        opt->specs[i].expire_after = opt->expire_after;
        opt->specs[i].identity = opt->identity;
        opt->specs[i].names = opt->custom_names ? opt->names : NULL;
    }
    rc = sp_dkim_sign_new(opt->specs, opt->count, opt->now, &sign, &err);
    if (rc != SP_OK) {
        fprintf(stderr, "sealpost: %s\n", err.text);
        return CLI_USAGE;
    }

    rc = sp_dkim_sign_feed(sign, message->data, message->len, &err);
    if (rc == SP_OK)
        rc = sp_dkim_sign_finish(sign, &fields, &err);
    sp_dkim_sign_free(sign);
    if (rc != SP_OK) {
        fprintf(stderr, "sealpost: message refused: %s%s\n", err.text,
                rc == SP_ESYNTAX && strstr(err.text, "line endings")
                    ? "; --fix-eol does that"
                    : "");
        sp_buf_free(&fields);
        return rc == SP_ENOMEM || rc == SP_ECRYPTO ? CLI_RUNTIME : CLI_NEGATIVE;
    }

    rc = cli_write_all(STDOUT_FILENO, fields.data, fields.len, &err);
    if (rc == SP_OK)
        rc = cli_write_all(STDOUT_FILENO, message->data, message->len, &err);
    sp_buf_free(&fields);
    if (rc != SP_OK) {
        fprintf(stderr, "sealpost: writing the signed message: %s\n", err.text);
        return CLI_RUNTIME;
    }
    return CLI_OK;
}

/*
 * Take the active keys of opt->store_domain from the store as the
 * signatures to make.  Unconfirmed keys (activated by hand) sign with a
 * warning.  Returns a CLI status.
 */
static int
sign_store_keys(struct sign_options *opt, sp_keys *keys,
                const sp_config *config)
{
    sp_store_key *rows = NULL;
    size_t count = 0;
    sp_error err;
    int rc = CLI_OK;

    if (sp_store_key_list(sp_keys_store(keys), opt->store_domain, &rows, &count,
                          &err) != SP_OK) {
        fprintf(stderr, "sealpost: %s\n", err.text);
        return CLI_RUNTIME;
    }
    for (size_t i = 0; i < count && rc == CLI_OK; i++) {
        if (rows[i].state != SP_STORE_KEY_ACTIVE)
            continue;
        if (opt->count == SIGN_MAX_KEYS ||
            sp_keys_private(keys, &rows[i], &opt->keys[opt->count], &err) !=
                SP_OK) {
            fprintf(stderr, "sealpost: %s\n", err.text);
            rc = CLI_RUNTIME;
            break;
        }
        if (rows[i].unconfirmed)
            fprintf(stderr,
                    "sealpost: warning: %s signs unconfirmed: sealpost has "
                    "not seen its record in DNS\n",
                    rows[i].selector);
        opt->key_ids[opt->count] = rows[i].id;
        opt->specs[opt->count] = (sp_dkim_sign_spec){
            .domain = opt->store_domain,
            .selector = sp_xstrdup(rows[i].selector),
            .key = opt->keys[opt->count],
        };
        opt->count++;
    }
    sp_store_keys_free(rows, count);
    if (rc == CLI_OK && opt->count == 0) {
        fprintf(stderr,
                "sealpost: %s has no active key; see sealpost dkim status "
                "%s\n",
                opt->store_domain, opt->store_domain);
        rc = CLI_NEGATIVE;
    }
    if (rc == CLI_OK && !opt->expire_given)
        opt->expire_after = config->dkim_signature_expiry;
    return rc;
}

/* Record each stored key's signature, with its x=, for its lifecycle. */
static void
sign_record(const struct sign_options *opt, sp_keys *keys)
{
    int64_t expiry = opt->expire_after ? opt->now + opt->expire_after : 0;
    sp_error err;

    for (size_t i = 0; i < opt->count; i++)
        if (sp_store_key_signed(sp_keys_store(keys), opt->key_ids[i], 1, expiry,
                                NULL, &err) != SP_OK)
            fprintf(stderr, "sealpost: warning: %s\n", err.text);
}

int
cli_dkim_sign(const cli_globals *globals, int argc, char **argv)
{
    struct sign_options opt = {
        .header_canon = SP_DKIM_RELAXED,
        .body_canon = SP_DKIM_RELAXED,
        .now = (int64_t)time(NULL),
    };
    sp_buf message = SP_BUF_INIT;
    sp_config config;
    sp_keys *keys = NULL;
    sp_error err;
    int rc;

    sp_config_defaults(&config);
    rc = sign_parse(&opt, argc, argv);
    if (rc == CLI_OK && opt.store_domain != NULL) {
        sp_config_free(&config);
        rc = cli_config(globals, &config);
        if (rc == CLI_OK &&
            sp_keys_open(&config, false, &keys, &err) != SP_OK) {
            fprintf(stderr, "sealpost: %s\n", err.text);
            rc = CLI_RUNTIME;
        }
        if (rc == CLI_OK)
            rc = sign_store_keys(&opt, keys, &config);
    }
    if (rc == CLI_OK)
        rc = sign_read(&opt, &message);
    if (rc == CLI_OK)
        rc = sign_run(&opt, &message);
    if (rc == CLI_OK && keys != NULL)
        sign_record(&opt, keys);

    sp_buf_free(&message);
    for (size_t i = 0; i < opt.count; i++) {
        sp_dkim_key_free(opt.keys[i]);
        if (opt.store_domain != NULL)
            free((char *)opt.specs[i].selector);
    }
    free(opt.names_text);
    sp_keys_close(keys);
    sp_config_free(&config);
    return rc < 0 ? CLI_OK : rc;
}
