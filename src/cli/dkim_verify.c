/*
 * dkim_verify.c: "sealpost dkim verify", which verifies the DKIM
 * signatures of messages and says, per signature, what a person can do.
 *
 * Owns cli_dkim_verify.  Keys come from a file of records (--dns-file, the
 * format of sealpost's test material) or from live DNS (the servers of
 * /etc/resolv.conf, or --resolver ADDR@PORT).
 *
 * Files on disk usually end lines with LF alone.  A message that holds no
 * CR at all is read as if each LF were CRLF, which is what it was on the
 * wire; --raw verifies the bytes exactly as they are.
 *
 * Exit status: 0 when a signature of every message passes, 1 when one
 * fails, 3 when DNS could not answer (try again) or a file is unreadable,
 * 4 when a message carries no DKIM signature; the highest wins.
 */
#include "cli.h"
#include "dkim/dkim.h"
#include "dns/dns.h"
#include "mail/mail.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct verify_options {
    sp_dns_table *table;        /* --dns-file, owned */
    sp_dns_resolver *resolver;  /* live DNS otherwise, owned */
    sp_dkim_keycache *keycache; /* parsed keys shared by the messages */
    const char *server;         /* --resolver */
    bool legacy;
    bool json;
    bool raw;
    bool add_header;
    const char *authserv_id;
    unsigned max_signatures;
    int64_t now;
};

/* Answers for one message, kept until its verification is finished. */
struct verify_dns {
    struct verify_options *opt;
};

static void
verify_usage(FILE *out)
{
    fprintf(out,
            "usage: sealpost dkim verify [--dns-file F | --resolver A@P]\n"
            "           [--legacy] [--json] [--raw] [--add-header]\n"
            "           [--authserv-id ID] [--max-signatures N]\n"
            "           [--time EPOCH] [FILE ...]\n"
            "\n"
            "Verifies every DKIM-Signature (standard input without FILE).\n"
            "--legacy also accepts rsa-sha1 and RSA keys under 1024 bits,\n"
            "for diagnosis only.  --add-header writes the message with an\n"
            "Authentication-Results field (one message only).  --raw keeps\n"
            "LF-only line endings instead of reading them as CRLF.\n"
            "Exit: 0 pass, 1 fail, 2 usage, 3 DNS or I/O failure, 4 no\n"
            "signature.\n");
}

/* The engine's DNS callback: a table or live DNS. */
static void
verify_lookup(void *arg, const char *name, sp_dkim_txt *txt)
{
    struct verify_dns *dns = arg;
    sp_dns_answer answer;

    if (dns->opt->table != NULL)
        sp_dns_table_txt(dns->opt->table, name, &answer);
    else
        sp_dns_resolver_txt(dns->opt->resolver, name, &answer);

    switch (answer.status) {
    case SP_DNS_OK:
        txt->status = SP_DKIM_DNS_OK;
        break;
    case SP_DNS_NXDOMAIN:
        txt->status = SP_DKIM_DNS_NXDOMAIN;
        break;
    case SP_DNS_SERVFAIL:
        txt->status = SP_DKIM_DNS_SERVFAIL;
        break;
    case SP_DNS_TIMEOUT:
        txt->status = SP_DKIM_DNS_TIMEOUT;
        break;
    }
    txt->count =
        answer.count < SP_DKIM_MAX_TXT ? answer.count : SP_DKIM_MAX_TXT;
    for (size_t i = 0; i < txt->count; i++) {
        txt->record[i] = answer.records[i].text;
        txt->length[i] = answer.records[i].len;
    }
}

/*
 * Exit status for one verified message.  The live resolver's answers only
 * live until its next query, so each message is finished before the next.
 */
static int
verify_status(const sp_dkim_verify *verify)
{
    size_t count = sp_dkim_verify_count(verify);
    bool temporary = false;

    if (count == 0)
        return CLI_NOTHING;
    for (size_t i = 0; i < count; i++) {
        const sp_dkim_result *res = sp_dkim_verify_result(verify, i);

        if (res->status == SP_DKIM_PASS)
            return CLI_OK;
        if (res->status == SP_DKIM_TEMPERROR)
            temporary = true;
    }
    return temporary ? CLI_RUNTIME : CLI_NEGATIVE;
}

/* One word for the whole message, for people and scripts. */
static const char *
verify_word(int status)
{
    switch (status) {
    case CLI_OK:
        return "pass";
    case CLI_NOTHING:
        return "none";
    case CLI_RUNTIME:
        return "temperror";
    default:
        return "fail";
    }
}

static void
verify_print_text(const char *name, const sp_dkim_verify *verify,
                  bool converted, int status)
{
    size_t count = sp_dkim_verify_count(verify);
    size_t domainkeys = sp_dkim_verify_domainkeys(verify);

    printf("%s:%s\n", name, converted ? " (LF line endings read as CRLF)" : "");
    for (size_t i = 0; i < count; i++) {
        const sp_dkim_result *res = sp_dkim_verify_result(verify, i);

        if (res->reason == SP_DKIM_R_NOT_CHECKED) {
            printf("  signature %zu: %s\n", i + 1, res->detail);
            continue;
        }
        printf("  signature %zu: %-9s d=%s s=%s a=%s", i + 1,
               sp_dkim_status_name(res->status),
               res->domain[0] ? res->domain : "?",
               res->selector[0] ? res->selector : "?",
               res->algorithm[0] ? res->algorithm : "?");
        if (res->key_bits > 0)
            printf(" key=%u", res->key_bits);
        printf("\n    %s\n", res->detail);
    }
    if (domainkeys > 0)
        printf("  %zu DomainKey-Signature field%s: DomainKeys is a "
               "deprecated protocol (RFC 4870, historic); not evaluated\n",
               domainkeys, domainkeys == 1 ? "" : "s");
    if (count == 0)
        printf("  no DKIM-Signature field\n");
    printf("  result: %s\n", verify_word(status));
}

/*
 * A JSON string for text that should be ASCII already; anything jansson
 * refuses (not UTF-8) is escaped rather than dropped from the report.
 */
static json_t *
verify_json_text(const char *text)
{
    json_t *string = json_string(text);
    char escaped[1024];

    if (string != NULL)
        return string;
    return json_string(
        sp_log_escape(escaped, sizeof(escaped), text, strlen(text)));
}

static json_t *
verify_json_result(const sp_dkim_result *res)
{
    json_t *sig = json_object();

    json_object_set_new(sig, "status",
                        json_string(sp_dkim_status_name(res->status)));
    json_object_set_new(sig, "reason",
                        json_string(sp_dkim_reason_word(res->reason)));
    json_object_set_new(sig, "detail", verify_json_text(res->detail));
    json_object_set_new(sig, "crypto_valid", json_boolean(res->crypto_valid));
    json_object_set_new(sig, "domain", verify_json_text(res->domain));
    json_object_set_new(sig, "selector", verify_json_text(res->selector));
    json_object_set_new(sig, "identity", verify_json_text(res->identity));
    json_object_set_new(sig, "algorithm", verify_json_text(res->algorithm));
    json_object_set_new(sig, "canonicalization",
                        json_sprintf("%s/%s",
                                     sp_dkim_canon_name(res->header_canon),
                                     sp_dkim_canon_name(res->body_canon)));
    json_object_set_new(sig, "key_bits", json_integer(res->key_bits));
    json_object_set_new(sig, "testing", json_boolean(res->testing));
    json_object_set_new(sig, "timestamp",
                        res->timestamp >= 0 ? json_integer(res->timestamp)
                                            : json_null());
    json_object_set_new(sig, "expires",
                        res->expires >= 0 ? json_integer(res->expires)
                                          : json_null());
    json_object_set_new(sig, "body_length",
                        res->body_limit >= 0 ? json_integer(res->body_limit)
                                             : json_null());
    json_object_set_new(sig, "body_octets",
                        json_integer((json_int_t)res->body_octets));
    return sig;
}

static void
verify_print_json(const char *name, const sp_dkim_verify *verify,
                  bool converted, int status)
{
    json_t *root = json_object();
    json_t *sigs = json_array();
    char *text;

    for (size_t i = 0; i < sp_dkim_verify_count(verify); i++)
        json_array_append_new(
            sigs, verify_json_result(sp_dkim_verify_result(verify, i)));
    json_object_set_new(root, "file", verify_json_text(name));
    json_object_set_new(root, "result", json_string(verify_word(status)));
    json_object_set_new(root, "eol_converted", json_boolean(converted));
    json_object_set_new(root, "signatures", sigs);
    json_object_set_new(
        root, "domainkeys",
        json_integer((json_int_t)sp_dkim_verify_domainkeys(verify)));
    json_object_set_new(
        root, "from_fields",
        json_integer((json_int_t)sp_dkim_verify_from_count(verify)));
    text = json_dumps(root, JSON_COMPACT);
    printf("%s\n", text ? text : "{}");
    free(text);
    json_decref(root);
}

/* Read LF-only files as they were on the wire; true when converted. */
static bool
verify_prepare(const struct verify_options *opt, sp_buf *message)
{
    sp_buf converted = SP_BUF_INIT;
    sp_mail_eol eol;

    if (opt->raw || message->len == 0 ||
        memchr(message->data, '\r', message->len) != NULL ||
        memchr(message->data, '\n', message->len) == NULL)
        return false;
    sp_mail_eol_init(&eol);
    if (sp_mail_eol_feed(&eol, message->data, message->len, &converted) !=
        SP_OK) {
        sp_buf_free(&converted);
        return false;
    }
    sp_buf_free(message);
    *message = converted;
    return true;
}

/* Verify one message; returns its exit status. */
static int
verify_one(struct verify_options *opt, const char *path)
{
    struct verify_dns dns = {.opt = opt};
    sp_dkim_verify_opts engine = {
        .lookup = verify_lookup,
        .lookup_arg = &dns,
        .now = opt->now,
        .max_signatures = opt->max_signatures,
        .legacy = opt->legacy,
        .keycache = opt->keycache,
    };
    sp_dkim_verify *verify = NULL;
    sp_buf message = SP_BUF_INIT, header = SP_BUF_INIT;
    const char *name = strcmp(path, "-") == 0 ? "(stdin)" : path;
    bool converted;
    sp_error err;
    int rc, status;

    rc = cli_read_file(path, &message, &err);
    if (rc != SP_OK) {
        fprintf(stderr, "sealpost: %s: %s\n", name, err.text);
        sp_buf_free(&message);
        return CLI_RUNTIME;
    }
    converted = verify_prepare(opt, &message);

    rc = sp_dkim_verify_new(&engine, &verify, &err);
    if (rc == SP_OK)
        rc = sp_dkim_verify_feed(verify, message.data, message.len, &err);
    if (rc == SP_OK)
        rc = sp_dkim_verify_finish(verify, &err);
    if (rc != SP_OK) {
        fprintf(stderr, "sealpost: %s: cannot verify: %s\n", name, err.text);
        sp_dkim_verify_free(verify);
        sp_buf_free(&message);
        return rc == SP_ELIMIT || rc == SP_ESYNTAX ? CLI_NEGATIVE : CLI_RUNTIME;
    }

    status = verify_status(verify);
    if (opt->add_header) {
        rc = sp_dkim_verify_auth_results(verify, opt->authserv_id, &header);
        if (rc == SP_OK)
            rc = cli_write_all(STDOUT_FILENO, header.data, header.len, &err);
        if (rc == SP_OK)
            rc = cli_write_all(STDOUT_FILENO, message.data, message.len, &err);
        if (rc != SP_OK) {
            fprintf(stderr, "sealpost: writing the message failed\n");
            status = CLI_RUNTIME;
        }
    } else if (opt->json) {
        verify_print_json(name, verify, converted, status);
    } else {
        verify_print_text(name, verify, converted, status);
    }
    sp_buf_free(&header);
    sp_buf_free(&message);
    sp_dkim_verify_free(verify);
    return status;
}

/* Load the key source: the record file, else a live resolver. */
static int
verify_dns_source(struct verify_options *opt, const char *dns_file)
{
    sp_buf text = SP_BUF_INIT;
    sp_error err;
    int rc;

    if (dns_file == NULL) {
        rc = sp_dns_resolver_new(opt->server, &opt->resolver, &err);
        if (rc != SP_OK)
            fprintf(stderr, "sealpost: %s\n", err.text);
        return rc == SP_OK ? CLI_OK : CLI_USAGE;
    }
    rc = cli_read_file(dns_file, &text, &err);
    if (rc == SP_OK)
        rc = sp_dns_table_parse(text.data, text.len, &opt->table, &err);
    sp_buf_free(&text);
    if (rc != SP_OK) {
        fprintf(stderr, "sealpost: --dns-file %s: %s\n", dns_file, err.text);
        return rc == SP_EIO ? CLI_RUNTIME : CLI_USAGE;
    }
    return CLI_OK;
}

/* A number option; false after saying what is wrong with it. */
static bool
verify_number_option(const char *name, const char *text, int64_t min,
                     int64_t max, int64_t *out)
{
    if (cli_parse_number(text, min, max, out))
        return true;
    fprintf(stderr, "sealpost: --%s %s: expected a number from %lld\n", name,
            text, (long long)min);
    return false;
}

/*
 * Parse the options into opt and *dns_file; CLI_OK, or the status to exit
 * with (-1 after --help).
 */
static int
verify_parse(struct verify_options *opt, const char **dns_file, int argc,
             char **argv)
{
    static const struct option options[] = {
        {"dns-file", required_argument, NULL, 'f'},
        {"resolver", required_argument, NULL, 'r'},
        {"legacy", no_argument, NULL, 'l'},
        {"json", no_argument, NULL, 'j'},
        {"raw", no_argument, NULL, 'w'},
        {"add-header", no_argument, NULL, 'a'},
        {"authserv-id", required_argument, NULL, 'i'},
        {"max-signatures", required_argument, NULL, 'm'},
        {"time", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int64_t number;
    int option;

    optind = 0; /* 0, not 1: glibc then re-reads the option string */
    while ((option = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (option) {
        case 'f':
            *dns_file = optarg;
            break;
        case 'r':
            opt->server = optarg;
            break;
        case 'l':
            opt->legacy = true;
            break;
        case 'j':
            opt->json = true;
            break;
        case 'w':
            opt->raw = true;
            break;
        case 'a':
            opt->add_header = true;
            break;
        case 'i':
            opt->authserv_id = optarg;
            break;
        case 'm':
            if (!verify_number_option("max-signatures", optarg, 1, 1000000,
                                      &number))
                return CLI_USAGE;
            opt->max_signatures = (unsigned)number;
            break;
        case 't':
            if (!verify_number_option("time", optarg, 0, INT64_MAX, &opt->now))
                return CLI_USAGE;
            break;
        case 'h':
            verify_usage(stdout);
            return -1;
        default:
            verify_usage(stderr);
            return CLI_USAGE;
        }
    }
    if (opt->add_header && argc - optind > 1) {
        fprintf(stderr, "sealpost: --add-header takes one message\n");
        return CLI_USAGE;
    }
    return CLI_OK;
}

int
cli_dkim_verify(const cli_globals *globals, int argc, char **argv)
{
    struct verify_options opt = {
        .authserv_id = "sealpost",
        .now = (int64_t)time(NULL),
    };
    const char *dns_file = NULL;
    char hostname[256];
    int worst = CLI_OK, rc;

    (void)globals;
    if (gethostname(hostname, sizeof(hostname)) == 0) {
        hostname[sizeof(hostname) - 1] = '\0';
        opt.authserv_id = hostname;
    }
    rc = verify_parse(&opt, &dns_file, argc, argv);
    if (rc != CLI_OK)
        return rc < 0 ? CLI_OK : rc;

    /* Keys from the record file or live DNS, parsed keys kept per run. */
    rc = verify_dns_source(&opt, dns_file);
    if (rc == CLI_OK && sp_dkim_keycache_new(64, &opt.keycache, NULL) != SP_OK)
        rc = CLI_RUNTIME;

    if (rc == CLI_OK && optind == argc)
        worst = verify_one(&opt, "-");
    for (int i = optind; rc == CLI_OK && i < argc; i++) {
        int status = verify_one(&opt, argv[i]);

        worst = status > worst ? status : worst;
    }
    fflush(stdout);
    sp_dns_table_free(opt.table);
    sp_dns_resolver_free(opt.resolver);
    sp_dkim_keycache_free(opt.keycache);
    return rc != CLI_OK ? rc : worst;
}
