/*
 * dns_update.c: "sealpost dns update", which publishes or deletes the TXT
 * record at one name with an RFC 2136 dynamic update, signed with TSIG.
 *
 * Owns cli_dns_update.  The operator's way to publish a DKIM key record
 * by hand, or to check that sealpost may publish on a zone at all; the
 * work is sp_dns_update_txt and sp_dns_update_delete.  The key is best
 * read from a file (--tsig-file): a secret on the command line shows in
 * the process list.  Neither the key's secret nor the file's contents
 * are ever printed.
 *
 * Exit status: 0 done, 2 usage (options, server, key or names unusable),
 * 3 the server refused the update, could not be reached or did not
 * answer; the message on standard error says which.
 */
#include "cli.h"
#include "dns/dns.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#define UPDATE_TTL_DEFAULT 3600
#define UPDATE_TTL_MAX     2147483647 /* RFC 2181, section 8 */

struct update_options {
    const char *server; /* --server ADDR[@PORT] */
    const char *tsig;   /* --tsig, or the text of --tsig-file */
    const char *zone;   /* --zone */
    const char *name;   /* the one operand */
    const char *value;  /* --txt, NULL with --delete */
    sp_buf tsig_file;   /* contents of --tsig-file, owned; wiped */
    int64_t ttl;        /* --ttl, seconds */
    bool ttl_given;     /* --ttl appeared */
    bool delete;        /* --delete */
    bool help;          /* --help was printed: nothing to do */
};

static void
update_usage(FILE *out)
{
    fprintf(out,
            "usage: sealpost dns update --server ADDR[@PORT]\n"
            "           [--tsig ALG:NAME:SECRET | --tsig-file FILE]\n"
            "           --zone ZONE NAME (--txt VALUE [--ttl SECONDS] |"
            " --delete)\n"
            "\n"
            "Sends one dynamic update (RFC 2136) to the zone's primary\n"
            "server: --txt replaces the TXT records at NAME with one\n"
            "holding VALUE (TTL 3600 unless --ttl), --delete removes them.\n"
            "The key (hmac-sha256 or hmac-sha512; the secret in base64)\n"
            "signs the update with TSIG; --tsig-file reads it from FILE,\n"
            "which keeps the secret out of the process list.\n"
            "Exit: 0 done, 2 usage, 3 refused by the server or no answer.\n");
}

/* The key from a file: its first line, spaces around it dropped. */
static int
update_read_tsig(struct update_options *opt, const char *path)
{
    sp_error err;
    char *text;
    size_t len;

    if (cli_read_file(path, &opt->tsig_file, &err) != SP_OK) {
        fprintf(stderr, "sealpost: dns update: --tsig-file %s: %s\n", path,
                err.text);
        return CLI_USAGE;
    }
    text = opt->tsig_file.data;
    if (text != NULL) {
        text += strspn(text, " \t\r\n");
        len = strcspn(text, "\r\n");
        while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t'))
            len--;
        text[len] = '\0';
    }
    if (text == NULL || *text == '\0') {
        fprintf(stderr, "sealpost: dns update: --tsig-file %s holds no key\n",
                path);
        return CLI_USAGE;
    }
    opt->tsig = text;
    return CLI_OK;
}

/* The rules between options, checked once all are read. */
static int
update_check(const struct update_options *opt)
{
    const char *missing = NULL;

    if (opt->server == NULL)
        missing = "--server";
    else if (opt->zone == NULL)
        missing = "--zone";
    else if (opt->name == NULL)
        missing = "NAME";
    else if (opt->value == NULL && !opt->delete)
        missing = "--txt or --delete";
    if (missing != NULL) {
        fprintf(stderr, "sealpost: dns update: %s is required\n", missing);
        return CLI_USAGE;
    }
    if (opt->value != NULL && opt->delete) {
        fprintf(stderr, "sealpost: dns update: --txt and --delete exclude "
                        "each other\n");
        return CLI_USAGE;
    }
    if (opt->ttl_given && opt->delete) {
        fprintf(stderr, "sealpost: dns update: --ttl goes with --txt\n");
        return CLI_USAGE;
    }
    return CLI_OK;
}

/* One option; CLI_OK to go on. */
static int
update_option(struct update_options *opt, int option)
{
    switch (option) {
    case 's':
        opt->server = optarg;
        return CLI_OK;
    case 'k':
    case 'K':
        if (opt->tsig != NULL) {
            fprintf(stderr, "sealpost: dns update: one --tsig or "
                            "--tsig-file only\n");
            return CLI_USAGE;
        }
        if (option == 'K')
            return update_read_tsig(opt, optarg);
        if (*optarg != '\0') {
            opt->tsig = optarg;
            return CLI_OK;
        }
        fprintf(stderr, "sealpost: dns update: --tsig is empty; leave it "
                        "out to send the update unsigned\n");
        return CLI_USAGE;
    case 'z':
        opt->zone = optarg;
        return CLI_OK;
    case 't':
        opt->value = optarg;
        return CLI_OK;
    case 'l':
        opt->ttl_given = true;
        if (cli_parse_number(optarg, 0, UPDATE_TTL_MAX, &opt->ttl))
            return CLI_OK;
        fprintf(stderr, "sealpost: dns update: --ttl: seconds from 0 to "
                        "2147483647 expected\n");
        return CLI_USAGE;
    case 'd':
        opt->delete = true;
        return CLI_OK;
    default:
        update_usage(stderr);
        return CLI_USAGE;
    }
}

static int
update_parse(struct update_options *opt, int argc, char **argv)
{
    static const struct option options[] = {
        {"server", required_argument, NULL, 's'},
        {"tsig", required_argument, NULL, 'k'},
        {"tsig-file", required_argument, NULL, 'K'},
        {"zone", required_argument, NULL, 'z'},
        {"txt", required_argument, NULL, 't'},
        {"ttl", required_argument, NULL, 'l'},
        {"delete", no_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int option;
    int rc;

    optind = 0; /* 0, not 1: glibc then re-reads the option string */
    while ((option = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        if (option == 'h') {
            update_usage(stdout);
            opt->help = true;
            return CLI_OK;
        }
        rc = update_option(opt, option);
        if (rc != CLI_OK)
            return rc;
    }
    if (optind + 1 != argc) {
        fprintf(stderr, "sealpost: dns update: one NAME expected\n");
        return CLI_USAGE;
    }
    opt->name = argv[optind];
    return update_check(opt);
}

/* Send the update the options describe and say how it went. */
static int
update_send(const struct update_options *opt)
{
    sp_error err;
    int rc;

    if (opt->delete)
        rc = sp_dns_update_delete(opt->server, opt->tsig, opt->zone, opt->name,
                                  &err);
    else
        rc = sp_dns_update_txt(opt->server, opt->tsig, opt->zone, opt->name,
                               opt->value, (uint32_t)opt->ttl, &err);
    if (rc == SP_OK) {
        printf("%s: TXT %s\n", opt->name,
               opt->delete ? "deleted" : "published");
        return CLI_OK;
    }
    fprintf(stderr, "sealpost: dns update: %s\n", err.text);
    return rc == SP_EINVAL || rc == SP_ELIMIT ? CLI_USAGE : CLI_RUNTIME;
}

int
cli_dns_update(const cli_globals *globals, int argc, char **argv)
{
    struct update_options opt = {.ttl = UPDATE_TTL_DEFAULT};
    int status;

    (void)globals;
    status = update_parse(&opt, argc, argv);
    if (status == CLI_OK && !opt.help)
        status = update_send(&opt);
    if (opt.tsig_file.data != NULL)
        explicit_bzero(opt.tsig_file.data, opt.tsig_file.size);
    sp_buf_free(&opt.tsig_file);
    return status;
}
