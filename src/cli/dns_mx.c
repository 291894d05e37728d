/*
 * dns_mx.c: "sealpost dns mx DOMAIN", the mail exchangers delivery would
 * use for a domain, in the order it would try them.
 *
 * Owns cli_dns_mx.  The operator's way to see what sealpost's resolver
 * makes of a domain: its MX hosts by preference, the domain itself when
 * it has no MX (RFC 5321 5.1), or that it takes no mail at all (a null
 * MX, RFC 7505).  The work is sp_dns_resolver_mx.
 *
 * Exit status: 0 exchangers found, 1 the domain takes no mail or does
 * not exist, 2 usage, 3 DNS failed; the message on standard error says
 * which.
 */
#include "cli.h"
#include "dns/dns.h"
#include "mail/mail.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void
mx_usage(FILE *out)
{
    fprintf(out, "usage: sealpost dns mx DOMAIN [--resolver ADDR@PORT]\n\n"
                 "The mail exchangers of DOMAIN in the order delivery "
                 "tries them: MX hosts by\npreference, the domain itself "
                 "when it has no MX, or a null MX (no mail).\n");
}

int
cli_dns_mx(const cli_globals *globals, int argc, char **argv)
{
    static const struct option options[] = {
        {"resolver", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *server = NULL;
    sp_dns_resolver *resolver = NULL;
    sp_dns_mx_answer answer;
    sp_config config;
    sp_error err;
    int option, rc;

    optind = 0;
    while ((option = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        if (option == 'r') {
            server = optarg;
        } else if (option == 'h') {
            mx_usage(stdout);
            return CLI_OK;
        } else {
            mx_usage(stderr);
            return CLI_USAGE;
        }
    }
    if (optind + 1 != argc) {
        mx_usage(stderr);
        return CLI_USAGE;
    }
    if (!sp_mail_domain_valid(argv[optind], strlen(argv[optind]), 0)) {
        fprintf(stderr, "sealpost: %.200s is not a domain name\n",
                argv[optind]);
        return CLI_USAGE;
    }

    rc = cli_config(globals, &config);
    if (rc != CLI_OK)
        return rc;
    if (sp_dns_resolver_new(cli_resolver(&config, server), &resolver, &err) !=
        SP_OK) {
        fprintf(stderr, "sealpost: %s\n", err.text);
        sp_config_free(&config);
        return CLI_USAGE;
    }
    sp_dns_resolver_mx(resolver, argv[optind], &answer);

    if (answer.status == SP_DNS_NXDOMAIN) {
        fprintf(stderr, "sealpost: %s does not exist (NXDOMAIN)\n",
                argv[optind]);
        rc = CLI_NEGATIVE;
    } else if (answer.status != SP_DNS_OK) {
        fprintf(stderr, "sealpost: %s: DNS failed (%s)\n", argv[optind],
                answer.status == SP_DNS_TIMEOUT ? "timeout" : "SERVFAIL");
        rc = CLI_RUNTIME;
    } else if (answer.null_mx) {
        printf("%s takes no mail (null MX, RFC 7505)\n", argv[optind]);
        rc = CLI_NEGATIVE;
    } else {
        for (size_t i = 0; i < answer.count; i++)
            printf("%u %s%s\n", answer.hosts[i].preference,
                   answer.hosts[i].host,
                   answer.implicit ? " (no MX: the domain itself)" : "");
    }
    sp_dns_resolver_free(resolver);
    sp_config_free(&config);
    return rc;
}
