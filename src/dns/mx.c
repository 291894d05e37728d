/*
 * mx.c: a domain's mail exchangers, from the MX records DNS gives.
 *
 * Owns sp_dns_mx_parse.  RFC 5321 5.1: the exchangers in order of
 * preference, lowest first; no MX at all means the domain's own address
 * is the one exchanger (the "implicit MX"); RFC 7505: a single MX of
 * preference 0 whose exchange is the root ("0 .") says the domain takes
 * no mail, so a message to it bounces at once.  A root exchange among
 * other records breaks RFC 7505; it is skipped and the others are used.
 *
 * Equal preferences keep the order DNS gave them; RFC 5321 asks senders
 * to spread their connections over such hosts, which is the scheduler's
 * business, since it knows which of them it is already talking to.
 */
#include "dns.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/*
 * The exchange of one MX rdata (a 16-bit preference, then a name in
 * uncompressed wire form) as lowercase dotted text; "" for the root.
 * False when the rdata is malformed.
 */
static bool
mx_name(const unsigned char *rdata, size_t len, char *out, size_t size)
{
    size_t at = 2, used = 0;

    while (at < len && rdata[at] != 0) {
        size_t label = rdata[at++];

        if (label > 63 || label > len - at || used + label + 2 > size)
            return false;
        if (used > 0)
            out[used++] = '.';
        for (size_t i = 0; i < label; i++)
            out[used++] = (char)tolower(rdata[at + i]);
        at += label;
    }
    if (at >= len || at + 1 != len)
        return false; /* no final zero label, or bytes after it */
    out[used] = '\0';
    return true;
}

void
sp_dns_mx_parse(const char *domain, const unsigned char *const *rdata,
                const size_t *len, size_t count, sp_dns_mx_answer *answer)
{
    size_t roots = 0;

    answer->status = SP_DNS_OK;
    answer->null_mx = false;
    answer->implicit = false;
    answer->count = 0;

    for (size_t i = 0; i < count && answer->count < SP_DNS_MAX_MX; i++) {
        sp_dns_mx *mx = &answer->hosts[answer->count];
        size_t at;

        if (len[i] < 3 ||
            !mx_name(rdata[i], len[i], mx->host, sizeof(mx->host)))
            continue;
        mx->preference = (unsigned)(rdata[i][0] << 8 | rdata[i][1]);
        if (mx->host[0] == '\0') {
            roots++;
            continue;
        }

        /* Insertion by preference; equal ones stay in the given order. */
        at = answer->count;
        while (at > 0 && answer->hosts[at - 1].preference > mx->preference)
            at--;
        if (at < answer->count) {
            sp_dns_mx moved = *mx;

            memmove(&answer->hosts[at + 1], &answer->hosts[at],
                    (answer->count - at) * sizeof(*mx));
            answer->hosts[at] = moved;
        }
        answer->count++;
    }

    if (answer->count == 0 && roots > 0) {
        answer->null_mx = true;
    } else if (answer->count == 0 && count > 0) {
        answer->status = SP_DNS_SERVFAIL; /* only malformed records */
    } else if (answer->count == 0 && count == 0) {
        answer->implicit = true;
        answer->count = 1;
        answer->hosts[0].preference = 0;
        snprintf(answer->hosts[0].host, sizeof(answer->hosts[0].host), "%s",
                 domain);
        for (char *c = answer->hosts[0].host; *c != '\0'; c++)
            *c = (char)tolower((unsigned char)*c);
    }
}
