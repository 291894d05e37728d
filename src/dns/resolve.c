/*
 * resolve.c: live DNS through libunbound.
 *
 * Owns sp_dns_resolver_*: TXT records (DKIM keys, DMARC), mail
 * exchangers (MX, read by mx.c) and the addresses of hosts (A, AAAA).  One
 * resolver holds one libunbound context, which caches answers between queries.
 * The command line waits for each answer (sp_dns_resolver_txt); the daemon's
 * event loop starts queries and takes their answers as they come
 * (sp_dns_resolver_txt_async): libunbound then resolves in a thread of its own
 * and signals through a descriptor.
 *
 * Limits: no DNSSEC trust anchor is configured yet, so answers are not
 * validated; DANE, which needs validation, will add one.
 */
#include "dns.h"

#include <stdio.h>
#include <string.h>
#include <unbound.h>

#define RESOLVE_TYPE_A       1
#define RESOLVE_TYPE_MX      15
#define RESOLVE_TYPE_TXT     16
#define RESOLVE_TYPE_AAAA    28
#define RESOLVE_CLASS_IN     1
#define RESOLVE_NEGATIVE_TTL "5" /* seconds a "no such name" is kept */

struct resolve_query;

struct sp_dns_resolver {
    struct ub_ctx *ctx;               /* owned */
    struct resolve_query *waiting;    /* asynchronous queries not answered
                                         yet, freed with the resolver */
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
    /*
     * Asynchronous queries run in a thread, never a forked process.  A
     * name that did not exist is asked again after a few seconds: a key
     * record published after a check must not wait out the zone's
     * negative TTL (often an hour) before its key can sign.
     */
    rc = ub_ctx_async(resolver->ctx, 1);
    if (rc == 0)
        rc = ub_ctx_set_option(resolver->ctx,
                               "cache-max-negative-ttl:", RESOLVE_NEGATIVE_TTL);
    if (rc == 0 && server != NULL) {
        rc = ub_ctx_set_option(resolver->ctx, "do-not-query-localhost:", "no");
        if (rc == 0)
            rc = ub_ctx_set_fwd(resolver->ctx, server);
    } else if (rc == 0) {
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

/* Turn a libunbound result into an answer; texts go into texts[]. */
static void
resolve_answer(struct ub_result *result, sp_buf *texts, sp_dns_answer *answer)
{
    answer->count = 0;
    answer->status = SP_DNS_SERVFAIL;
    if (result == NULL)
        return;

    if (result->nxdomain) {
        answer->status = SP_DNS_NXDOMAIN;
    } else if (result->rcode == 0 && !result->bogus) {
        answer->status = SP_DNS_OK;
        for (size_t i = 0; result->havedata && result->data[i] != NULL &&
                           answer->count < SP_DNS_MAX_RECORDS;
             i++) {
            sp_buf *text = &texts[answer->count];

            if (!resolve_join((const unsigned char *)result->data[i],
                              (size_t)result->len[i], text))
                continue;
            answer->records[answer->count].text = text->data;
            answer->records[answer->count].len = text->len;
            answer->count++;
        }
    }
}

void
sp_dns_resolver_txt(sp_dns_resolver *resolver, const char *name,
                    sp_dns_answer *answer)
{
    struct ub_result *result = NULL;

    if (ub_resolve(resolver->ctx, name, RESOLVE_TYPE_TXT, RESOLVE_CLASS_IN,
                   &result) != 0) {
        ub_resolve_free(result);
        result = NULL;
    }
    resolve_answer(result, resolver->texts, answer);
    ub_resolve_free(result);
}

/* The mail exchangers in a libunbound result for domain. */
static void
resolve_mx_answer(const char *domain, struct ub_result *result,
                  sp_dns_mx_answer *answer)
{
    const unsigned char *rdata[SP_DNS_MAX_MX];
    size_t len[SP_DNS_MAX_MX], count = 0;

    memset(answer, 0, sizeof(*answer));
    answer->status = SP_DNS_SERVFAIL;
    if (result == NULL)
        return;
    if (result->nxdomain) {
        answer->status = SP_DNS_NXDOMAIN;
        return;
    }
    if (result->rcode != 0 || result->bogus)
        return;
    for (size_t i = 0;
         result->havedata && result->data[i] != NULL && count < SP_DNS_MAX_MX;
         i++) {
        rdata[count] = (const unsigned char *)result->data[i];
        len[count++] = (size_t)result->len[i];
    }
    sp_dns_mx_parse(domain, rdata, len, count, answer);
}

void
sp_dns_resolver_mx(sp_dns_resolver *resolver, const char *domain,
                   sp_dns_mx_answer *answer)
{
    struct ub_result *result = NULL;

    if (ub_resolve(resolver->ctx, domain, RESOLVE_TYPE_MX, RESOLVE_CLASS_IN,
                   &result) != 0) {
        ub_resolve_free(result);
        result = NULL;
    }
    resolve_mx_answer(domain, result, answer);
    ub_resolve_free(result);
}

/* One asynchronous query waiting for its answer. */
struct resolve_query {
    int type; /* RESOLVE_TYPE_*: which callback and answer */
    union {
        sp_dns_callback txt;
        sp_dns_mx_callback mx;
        sp_dns_addr_callback addr;
    } callback;
    void *arg;
    int async_id;              /* libunbound's, for ub_cancel */
    char name[254];            /* what was asked, for the MX answer */
    sp_dns_resolver *resolver; /* whose list holds it */
    struct resolve_query *prev, *next;
};

static void
query_unlink(struct resolve_query *query)
{
    if (query->prev != NULL)
        query->prev->next = query->next;
    else
        query->resolver->waiting = query->next;
    if (query->next != NULL)
        query->next->prev = query->prev;
}

/* The addresses in a libunbound result of type A or AAAA. */
static void
resolve_addr_answer(int type, struct ub_result *result,
                    sp_dns_addr_answer *answer)
{
    size_t want = type == RESOLVE_TYPE_A ? 4 : 16;

    memset(answer, 0, sizeof(*answer));
    answer->status = SP_DNS_SERVFAIL;
    if (result == NULL)
        return;
    if (result->nxdomain) {
        answer->status = SP_DNS_NXDOMAIN;
        return;
    }
    if (result->rcode != 0 || result->bogus)
        return;
    answer->status = SP_DNS_OK;
    for (size_t i = 0; result->havedata && result->data[i] != NULL &&
                       answer->count < SP_DNS_MAX_ADDRS;
         i++) {
        sp_dns_addr *addr = &answer->addrs[answer->count];

        if ((size_t)result->len[i] != want)
            continue; /* malformed rdata: skipped */
        addr->family = want == 4 ? 4 : 6;
        memcpy(addr->bytes, result->data[i], want);
        answer->count++;
    }
}

/* libunbound's callback: convert, hand over, forget. */
static void
resolve_done(void *data, int status, struct ub_result *result)
{
    struct resolve_query *query = data;
    sp_buf texts[SP_DNS_MAX_RECORDS];
    sp_dns_answer answer;
    sp_dns_mx_answer mx;
    sp_dns_addr_answer addrs;

    query_unlink(query);
    if (status != 0) {
        ub_resolve_free(result);
        result = NULL;
    }
    switch (query->type) {
    case RESOLVE_TYPE_MX:
        resolve_mx_answer(query->name, result, &mx);
        query->callback.mx(query->arg, &mx);
        break;
    case RESOLVE_TYPE_A:
    case RESOLVE_TYPE_AAAA:
        resolve_addr_answer(query->type, result, &addrs);
        query->callback.addr(query->arg, &addrs);
        break;
    default:
        memset(texts, 0, sizeof(texts));
        resolve_answer(result, texts, &answer);
        query->callback.txt(query->arg, &answer);
        for (size_t i = 0; i < SP_DNS_MAX_RECORDS; i++)
            sp_buf_free(&texts[i]);
    }
    ub_resolve_free(result);
    sp_free(query);
}

/*
 * Start a query of type for name, answered to callback (which the caller
 * set in a zeroed query); the query is the resolver's until done.
 */
static int
resolve_start(sp_dns_resolver *resolver, struct resolve_query *query,
              const char *name, int type, sp_error *err)
{
    int rc;

    query->type = type;
    snprintf(query->name, sizeof(query->name), "%s", name);
    query->resolver = resolver;
    query->next = resolver->waiting;
    if (query->next != NULL)
        query->next->prev = query;
    resolver->waiting = query;
    rc = ub_resolve_async(resolver->ctx, name, type, RESOLVE_CLASS_IN, query,
                          resolve_done, &query->async_id);
    if (rc != 0) {
        query_unlink(query);
        sp_free(query);
        return sp_err_set(err, SP_EIO, "DNS query for %.200s: %s", name,
                          ub_strerror(rc));
    }
    return SP_OK;
}

/* A zeroed query for arg; NULL (err set) when memory ran out. */
static struct resolve_query *
resolve_query_new(void *arg, sp_error *err)
{
    struct resolve_query *query = sp_calloc(1, sizeof(*query));

    if (query == NULL)
        sp_err_set(err, SP_ENOMEM, "out of memory");
    else
        query->arg = arg;
    return query;
}

int
sp_dns_resolver_txt_async(sp_dns_resolver *resolver, const char *name,
                          sp_dns_callback callback, void *arg, sp_error *err)
{
    struct resolve_query *query = resolve_query_new(arg, err);

    if (query == NULL)
        return SP_ENOMEM;
    query->callback.txt = callback;
    return resolve_start(resolver, query, name, RESOLVE_TYPE_TXT, err);
}

int
sp_dns_resolver_mx_async(sp_dns_resolver *resolver, const char *domain,
                         sp_dns_mx_callback callback, void *arg, sp_error *err)
{
    struct resolve_query *query = resolve_query_new(arg, err);

    if (query == NULL)
        return SP_ENOMEM;
    query->callback.mx = callback;
    return resolve_start(resolver, query, domain, RESOLVE_TYPE_MX, err);
}

int
sp_dns_resolver_addr_async(sp_dns_resolver *resolver, const char *host,
                           int family, sp_dns_addr_callback callback, void *arg,
                           sp_error *err)
{
    struct resolve_query *query;

    if (family != 4 && family != 6)
        return sp_err_set(err, SP_EINVAL, "address family %d", family);
    query = resolve_query_new(arg, err);
    if (query == NULL)
        return SP_ENOMEM;
    query->callback.addr = callback;
    return resolve_start(resolver, query, host,
                         family == 4 ? RESOLVE_TYPE_A : RESOLVE_TYPE_AAAA, err);
}

void
sp_dns_resolver_cancel(sp_dns_resolver *resolver, const void *arg)
{
    struct resolve_query *query = resolver->waiting, *next;

    for (; query != NULL; query = next) {
        next = query->next;
        if (query->arg != arg)
            continue;
        ub_cancel(resolver->ctx, query->async_id);
        query_unlink(query);
        sp_free(query);
    }
}

int
sp_dns_resolver_fd(sp_dns_resolver *resolver)
{
    return ub_fd(resolver->ctx);
}

int
sp_dns_resolver_process(sp_dns_resolver *resolver, sp_error *err)
{
    int rc = ub_process(resolver->ctx);

    if (rc != 0)
        return sp_err_set(err, SP_EIO, "DNS: %s", ub_strerror(rc));
    return SP_OK;
}

void
sp_dns_resolver_free(sp_dns_resolver *resolver)
{
    if (resolver == NULL)
        return;
    ub_ctx_delete(resolver->ctx); /* cancels what is still waiting */
    while (resolver->waiting != NULL) {
        struct resolve_query *query = resolver->waiting;

        resolver->waiting = query->next;
        sp_free(query);
    }
    for (size_t i = 0; i < SP_DNS_MAX_RECORDS; i++)
        sp_buf_free(&resolver->texts[i]);
    sp_free(resolver);
}
