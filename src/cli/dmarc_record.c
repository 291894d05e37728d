/*
 * dmarc_record.c: "sealpost dmarc record", which prints a DMARC record
 * for _dmarc.DOMAIN in zone-file syntax, with advice on tightening it.
 *
 * Owns cli_dmarc_record.  The record is made by the DMARC module
 * (sp_dmarc_record_make), which also checks the report addresses; this
 * file parses options and prints.  The advice is written as zone-file
 * comments, so the whole output can be pasted into a zone.
 *
 * Exit status: 0 printed, 2 usage (a bad domain, address, policy or
 * percentage: nothing is printed on standard output then).
 */
#include "cli.h"
#include "dmarc/dmarc.h"
#include "mail/mail.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define RECORD_TTL        3600 /* seconds; a policy changes rarely */
#define RECORD_STRING_MAX 255  /* octets in one TXT character-string */

struct record_options {
    char domain[254]; /* lower case, no final dot */
    const char *rua;
    sp_dmarc_policy policy;
    int64_t pct; /* 100 unless --pct */
};

static void
record_usage(FILE *out)
{
    fprintf(out,
            "usage: sealpost dmarc record DOMAIN --rua mailto:ADDRESS[,...]\n"
            "           [--policy none|quarantine|reject] [--pct N]\n"
            "\n"
            "Prints a DMARC record for _dmarc.DOMAIN in zone-file syntax,\n"
            "p=none (monitoring) by default, with advice on tightening it.\n"
            "--rua takes comma-separated mailto: URIs for aggregate reports;\n"
            "--pct (0 to 100) applies quarantine or reject to part of the\n"
            "failing mail.\n"
            "Exit: 0 printed, 2 usage.\n");
}

/* The TXT value as zone-file strings: quoted, cut at 255 octets. */
static void
record_print_strings(const char *value, size_t len)
{
    for (size_t at = 0; at < len; at += RECORD_STRING_MAX) {
        size_t part =
            len - at < RECORD_STRING_MAX ? len - at : RECORD_STRING_MAX;

        printf("%s\"%.*s\"", at == 0 ? "" : " ", (int)part, value + at);
    }
}

/* Whether domain is name or within it, ignoring case. */
static bool
record_within(const char *domain, size_t len, const char *name)
{
    size_t name_len = strlen(name);

    if (len == name_len)
        return strncasecmp(domain, name, len) == 0;
    return len > name_len && domain[len - name_len - 1] == '.' &&
           strncasecmp(domain + len - name_len, name, name_len) == 0;
}

/*
 * Reports addressed outside the domain reach their receiver only when
 * that domain agrees to take them (RFC 7489 7.1).
 */
static void
record_print_external(const struct record_options *opt)
{
    const char *uri, *domain;
    size_t pos = 0, len, domain_len;

    while (sp_dmarc_uri_next(opt->rua, strlen(opt->rua), &pos, &uri, &len)) {
        sp_dmarc_uri_domain(uri, len, &domain, &domain_len);
        if (record_within(domain, domain_len, opt->domain))
            continue;
        printf(";\n; Reports to %.*s leave %s:\n"
               "; receivers send them only if %.*s publishes,\n"
               "; in its own zone:\n"
               ";   %s._report._dmarc.%.*s. IN TXT \"v=DMARC1\"\n",
               (int)len, uri, opt->domain, (int)domain_len, domain, opt->domain,
               (int)domain_len, domain);
    }
}

/* What to do next, for the policy printed. */
static void
record_print_advice(const struct record_options *opt)
{
    const char *d = opt->domain;

    printf(";\n");
    if (opt->policy == SP_DMARC_NONE) {
        printf("; p=none only monitors: receivers deliver as before and send\n"
               "; daily aggregate reports to the rua= address.  To tighten:\n"
               ";  1. Read the aggregate reports for a few weeks (four is a\n"
               ";     good start) and list every service that sends as %s.\n"
               ";  2. Make every legitimate source pass DKIM or SPF aligned\n"
               ";     with %s: a DKIM d= or an envelope sender\n"
               ";     (Return-Path) in %s.\n"
               ";  3. Move to p=quarantine with pct=10 (--policy quarantine\n"
               ";     --pct 10), and raise pct to 100 while the reports stay\n"
               ";     clean.\n"
               ";  4. Then move to p=reject.\n",
               d, d, d);
    } else if (opt->policy == SP_DMARC_QUARANTINE && opt->pct < 100) {
        printf("; p=quarantine applies to %d%% of the mail failing DMARC.\n"
               "; Raise pct step by step (25, 50, 100) while the aggregate\n"
               "; reports show every legitimate source aligned, then move\n"
               "; to p=reject.\n",
               (int)opt->pct);
    } else if (opt->policy == SP_DMARC_QUARANTINE) {
        printf("; p=quarantine sends mail failing DMARC to the spam folder.\n"
               "; When the aggregate reports have stayed clean for a few\n"
               "; weeks, move to p=reject (--policy reject), with pct if\n"
               "; you want to go in steps.\n");
    } else {
        printf("; p=reject%s: receivers refuse mail failing DMARC.  Keep\n"
               "; reading the aggregate reports: a new service must pass\n"
               "; DKIM or SPF aligned with %s before it starts sending.\n",
               opt->pct < 100 ? " with pct below 100" : "", d);
    }
    record_print_external(opt);
}

/* Options and the domain; CLI_OK, or the status to exit with (-1: help). */
static int
record_parse(struct record_options *opt, int argc, char **argv)
{
    static const struct option options[] = {
        {"rua", required_argument, NULL, 'r'},
        {"policy", required_argument, NULL, 'p'},
        {"pct", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    size_t len;
    int option;

    /* 0, not 1: glibc then forgets main's "+" and lets options follow
     * the domain, as the usage line shows them. */
    optind = 0;
    while ((option = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (option) {
        case 'r':
            opt->rua = optarg;
            break;
        case 'p':
            if (sp_dmarc_policy_parse(optarg, strlen(optarg), &opt->policy) !=
                SP_OK) {
                fprintf(stderr,
                        "sealpost: --policy %s: expected none, "
                        "quarantine or reject\n",
                        optarg);
                return CLI_USAGE;
            }
            break;
        case 'c':
            if (!cli_parse_number(optarg, 0, 100, &opt->pct)) {
                fprintf(stderr,
                        "sealpost: --pct %s: expected a number from "
                        "0 to 100\n",
                        optarg);
                return CLI_USAGE;
            }
            break;
        case 'h':
            record_usage(stdout);
            return -1;
        default:
            record_usage(stderr);
            return CLI_USAGE;
        }
    }
    if (optind + 1 != argc || opt->rua == NULL) {
        if (optind + 1 == argc)
            fprintf(stderr, "sealpost: --rua is required: without report "
                            "addresses a p=none record tells you nothing\n");
        record_usage(stderr);
        return CLI_USAGE;
    }

    len = strlen(argv[optind]);
    if (len > 0 && argv[optind][len - 1] == '.')
        len--;
    if (len >= sizeof(opt->domain) ||
        !sp_mail_domain_valid(argv[optind], len, SP_MAIL_DOMAIN_DOTTED)) {
        fprintf(stderr, "sealpost: \"%s\" is not a domain name\n",
                argv[optind]);
        return CLI_USAGE;
    }
    for (size_t i = 0; i < len; i++) {
        char c = argv[optind][i];

        opt->domain[i] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
    }
    opt->domain[len] = '\0';
    return CLI_OK;
}

int
cli_dmarc_record(const cli_globals *globals, int argc, char **argv)
{
    struct record_options opt = {.policy = SP_DMARC_NONE, .pct = 100};
    sp_buf value = SP_BUF_INIT;
    sp_error err;
    int rc;

    (void)globals;
    rc = record_parse(&opt, argc, argv);
    if (rc != CLI_OK)
        return rc < 0 ? CLI_OK : rc;
    rc = sp_dmarc_record_make(opt.policy, (unsigned)opt.pct, opt.rua, &value,
                              &err);
    if (rc == SP_ENOMEM)
        sp_log_fatal(CLI_RUNTIME, "%s", err.text);
    if (rc != SP_OK) {
        fprintf(stderr, "sealpost: %s\n", err.text);
        return CLI_USAGE;
    }

    printf("; DMARC policy for %s (RFC 7489), for the zone of %s\n", opt.domain,
           opt.domain);
    printf("_dmarc.%s. %d IN TXT ", opt.domain, RECORD_TTL);
    record_print_strings(value.data, value.len);
    printf("\n");
    record_print_advice(&opt);
    sp_buf_free(&value);
    fflush(stdout);
    return CLI_OK;
}
