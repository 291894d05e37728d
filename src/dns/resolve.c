/*
 * resolve.c: live DNS through libunbound.
 *
 * Owns sp_dns_resolver_*.  One resolver holds one libunbound context, which
 * caches answers between queries.  Queries here wait for their answer; the
 * daemon's event loop will use libunbound's asynchronous interface behind
 * the same answer type.
 *
 * Limits: no DNSSEC trust anchor is configured yet, so answers are not
 * validated; DANE, which needs validation, will add one.
 */
#include "dns.h"

#include <string.h>
#include <unbound.h>

#define RESOLVE_TYPE_TXT 16
#define RESOLVE_CLASS_IN 1

struct sp_dns_resolver {
    struct ub_ctx *ctx;               /* owned */
    sp_buf texts[SP_DNS_MAX_RECORDS]; /* joined strings of the last
                                         answer */
};

int
sp_dns_resolver_new(const char *server, sp_dns_resolver **out, sp_error *err)
{
    sp_dns_resolver *resolver = sp_calloc(1, sizeof(*resolver));
    int rc;

    *out = NULL;
    if (resolver == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    resolver->ctx = ub_ctx_create();
    if (resolver->ctx == NULL) {
        sp_free(resolver);
        return sp_err_set(err, SP_ENOMEM, "cannot create a DNS resolver");
    }

    /*
     * A named server is used as a forwarder; unbound refuses to ask
     * 127.0.0.1 unless told, and a local server is the usual choice.
     */
    if (server != NULL) {
        rc = ub_ctx_set_option(resolver->ctx, "do-not-query-localhost:", "no");
        if (rc == 0)
            rc = ub_ctx_set_fwd(resolver->ctx, server);
    } else {
        rc = ub_ctx_resolvconf(resolver->ctx, NULL);
    }
    if (rc != 0) {
        sp_err_set(err, SP_EINVAL, "DNS server %s: %s",
                   server ? server : "from /etc/resolv.conf", ub_strerror(rc));
        sp_dns_resolver_free(resolver);
        return SP_EINVAL;
    }
    *out = resolver;
    return SP_OK;
}

/* Join the character-strings of one TXT rdata into text. */
static bool
resolve_join(const unsigned char *rdata, size_t len, sp_buf *text)
{
    size_t pos = 0;

    sp_buf_reset(text);
    while (pos < len) {
        size_t part = rdata[pos++];

        if (part > len - pos || sp_buf_append(text, rdata + pos, part))
            return false;
        pos += part;
    }
    return sp_buf_append(text, "", 0) == SP_OK;
}

void
sp_dns_resolver_txt(sp_dns_resolver *resolver, const char *name,
                    sp_dns_answer *answer)
{
    struct ub_result *result = NULL;
    int rc;

    answer->count = 0;
    answer->status = SP_DNS_SERVFAIL;
    rc = ub_resolve(resolver->ctx, name, RESOLVE_TYPE_TXT, RESOLVE_CLASS_IN,
                    &result);
    if (rc != 0 || result == NULL) {
        ub_resolve_free(result);
        return;
    }

    if (result->nxdomain) {
        answer->status = SP_DNS_NXDOMAIN;
    } else if (result->rcode == 0 && !result->bogus) {
        answer->status = SP_DNS_OK;
        for (size_t i = 0; result->havedata && result->data[i] != NULL &&
                           answer->count < SP_DNS_MAX_RECORDS;
             i++) {
            sp_buf *text = &resolver->texts[answer->count];

            if (!resolve_join((const unsigned char *)result->data[i],
                              (size_t)result->len[i], text))
                continue;
            answer->records[answer->count].text = text->data;
            answer->records[answer->count].len = text->len;
            answer->count++;
        }
    }
    ub_resolve_free(result);
}

void
sp_dns_resolver_free(sp_dns_resolver *resolver)
{
    if (resolver == NULL)
        return;
    ub_ctx_delete(resolver->ctx);
    for (size_t i = 0; i < SP_DNS_MAX_RECORDS; i++)
        sp_buf_free(&resolver->texts[i]);
    sp_free(resolver);
}
