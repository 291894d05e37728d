/*
 * dns.h: the public face of sealpost's DNS module.
 *
 * What it owns today: record tables (table.c), a fixed set of answers read
 * from a file in the format of sealpost's test material
 * ("name TXT \"string\" ...", "name NXDOMAIN|SERVFAIL|TIMEOUT"), used by
 * the CLI's --dns-file and by tests, and the live resolver (resolve.c) on
 * libunbound.  Both answer through the same sp_dns_answer, so callers
 * cannot tell a table from the network.
 *
 * Dynamic updates (update.c, RFC 2136 signed with TSIG) publish and
 * withdraw TXT records on a zone's primary server.
 */
#ifndef SP_DNS_H
#define SP_DNS_H

#include "base/base.h"

typedef enum sp_dns_status {
    SP_DNS_OK,       /* records holds the answer, possibly empty */
    SP_DNS_NXDOMAIN, /* the name does not exist */
    SP_DNS_SERVFAIL, /* the server failed, or DNSSEC validation did */
    SP_DNS_TIMEOUT,  /* no answer in time */
} sp_dns_status;

#define SP_DNS_MAX_RECORDS 8

/* One TXT record, its character-strings joined. */
typedef struct sp_dns_txt_record {
    const char *text; /* borrowed from the answer's owner */
    size_t len;
} sp_dns_txt_record;

typedef struct sp_dns_answer {
    sp_dns_status status;
    size_t count; /* records in use */
    sp_dns_txt_record records[SP_DNS_MAX_RECORDS];
} sp_dns_answer;

/* ------------------------------------------------------------------------
 * Mail exchangers (mx.c; looked up by the resolver below)
 */

#define SP_DNS_MAX_MX 16

typedef struct sp_dns_mx {
    unsigned preference;
    char host[254]; /* lowercase, no final dot */
} sp_dns_mx;

typedef struct sp_dns_mx_answer {
    sp_dns_status status;
    bool null_mx;  /* RFC 7505 "0 .": the domain takes no mail */
    bool implicit; /* no MX: the domain itself (RFC 5321 5.1) */
    size_t count;  /* hosts in use, lowest preference first */
    sp_dns_mx hosts[SP_DNS_MAX_MX];
} sp_dns_mx_answer;

/*
 * Turn the rdata of an MX answer for domain (count records; none for an
 * answer without MX) into hosts in order of preference; a null MX or an
 * implicit one as the flags say.  Records that are malformed are skipped;
 * when nothing else is left, the status is SP_DNS_SERVFAIL.
 */
void sp_dns_mx_parse(const char *domain, const unsigned char *const *rdata,
                     const size_t *len, size_t count, sp_dns_mx_answer *answer);

/* ------------------------------------------------------------------------
 * Record tables
 */

typedef struct sp_dns_table sp_dns_table;

/*
 * Parse a table.  Lines: "name TXT \"string\" [\"string\" ...]" (the
 * strings are joined, as DNS does with a record split into strings; \" \\
 * and \DDD escapes are understood), "name NXDOMAIN", "name SERVFAIL",
 * "name TIMEOUT"; '#' starts a comment.  Several TXT lines for one name are
 * several records.  SP_ESYNTAX names the line at fault.
 */
int sp_dns_table_parse(const char *text, size_t len, sp_dns_table **out,
                       sp_error *err);

/*
 * Answer a TXT query from the table: names compare without case and
 * without a final dot; a name not in the table is NXDOMAIN.  The record
 * texts live as long as the table.
 */
void sp_dns_table_txt(const sp_dns_table *table, const char *name,
                      sp_dns_answer *answer);

void sp_dns_table_free(sp_dns_table *table);

/* ------------------------------------------------------------------------
 * Live resolver
 */

typedef struct sp_dns_resolver sp_dns_resolver;

/*
 * Make a resolver.  server is "ADDR" or "ADDR@PORT" of a recursive server
 * to ask, or NULL for the servers in /etc/resolv.conf.
 */
int sp_dns_resolver_new(const char *server, sp_dns_resolver **out,
                        sp_error *err);

/*
 * Ask for the TXT records at name, waiting for the answer (the daemon will
 * use libunbound's asynchronous calls through the same resolver).  The
 * record texts live until the next query on this resolver or its free.
 */
void sp_dns_resolver_txt(sp_dns_resolver *resolver, const char *name,
                         sp_dns_answer *answer);

/*
 * Asynchronous lookups, for an event loop: start one with
 * sp_dns_resolver_txt_async; watch sp_dns_resolver_fd for reading and call
 * sp_dns_resolver_process when it is readable; callback then runs with
 * the answer, whose texts live only during the call.
 */
typedef void (*sp_dns_callback)(void *arg, const sp_dns_answer *answer);

int sp_dns_resolver_txt_async(sp_dns_resolver *resolver, const char *name,
                              sp_dns_callback callback, void *arg,
                              sp_error *err);

/* The mail exchangers of domain, waiting for the answer. */
void sp_dns_resolver_mx(sp_dns_resolver *resolver, const char *domain,
                        sp_dns_mx_answer *answer);

/*
 * The same, asynchronously: callback runs from sp_dns_resolver_process
 * with the answer, valid only during the call.
 */
typedef void (*sp_dns_mx_callback)(void *arg, const sp_dns_mx_answer *answer);

int sp_dns_resolver_mx_async(sp_dns_resolver *resolver, const char *domain,
                             sp_dns_mx_callback callback, void *arg,
                             sp_error *err);

/* The addresses of a host, of one family (A or AAAA records). */
#define SP_DNS_MAX_ADDRS 16

typedef struct sp_dns_addr {
    int family;              /* 4 or 6 */
    unsigned char bytes[16]; /* 4 used for IPv4, network order */
} sp_dns_addr;

typedef struct sp_dns_addr_answer {
    sp_dns_status status;
    size_t count; /* addresses in use, in the order received */
    sp_dns_addr addrs[SP_DNS_MAX_ADDRS];
} sp_dns_addr_answer;

typedef void (*sp_dns_addr_callback)(void *arg,
                                     const sp_dns_addr_answer *answer);

/*
 * Ask for the addresses of host of family 4 (A) or 6 (AAAA); callback
 * as above.  SP_EINVAL for another family.
 */
int sp_dns_resolver_addr_async(sp_dns_resolver *resolver, const char *host,
                               int family, sp_dns_addr_callback callback,
                               void *arg, sp_error *err);

/*
 * Forget every query started with arg: their callbacks never run.  For an
 * owner that goes away before its answers come.
 */
void sp_dns_resolver_cancel(sp_dns_resolver *resolver, const void *arg);

/* The descriptor to watch for reading; -1 on failure. */
int sp_dns_resolver_fd(sp_dns_resolver *resolver);

/* Run the callbacks of the answers that have arrived. */
int sp_dns_resolver_process(sp_dns_resolver *resolver, sp_error *err);

void sp_dns_resolver_free(sp_dns_resolver *resolver);

/* ------------------------------------------------------------------------
 * Dynamic updates (update.c): publishing records on a zone's primary
 *
 * server is "ADDR" or "ADDR@PORT" (an IPv4 or IPv6 literal; port 53 by
 * default) of the zone's primary.  tsig is "ALGORITHM:NAME:BASE64SECRET",
 * ALGORITHM hmac-sha256 or hmac-sha512 (others are refused, saying why),
 * or NULL or "" to send the update unsigned.  zone is the zone that holds
 * name.  Both calls wait for the server's answer, at most 5 seconds, and
 * return SP_OK once it applied the update; otherwise:
 *   SP_EINVAL  server, tsig, zone, name or ttl unusable (the text names
 *              the part, never the secret);
 *   SP_ELIMIT  value longer than 8192 octets;
 *   SP_EIO     the server refused (the RCODE name, e.g. REFUSED, NOTAUTH
 *              when it rejects the TSIG key or does not serve the zone,
 *              NOTZONE, SERVFAIL, and what to change), its answer could
 *              not be trusted, or it could not be reached or did not
 *              answer in time (the text says which);
 *   SP_ENOMEM, SP_ECRYPTO.
 * After a failure the zone is as it was, except after a timeout, when the
 * server may still have applied the update.
 */

/*
 * Replace the TXT RRset at name with one record holding value (cut into
 * character-strings of 255 octets), in one atomic update: the old records
 * and the new one are never both, or neither, published.
 */
int sp_dns_update_txt(const char *server, const char *tsig, const char *zone,
                      const char *name, const char *value, uint32_t ttl,
                      sp_error *err);

/* Delete the TXT RRset at name; deleting what is not there succeeds. */
int sp_dns_update_delete(const char *server, const char *tsig, const char *zone,
                         const char *name, sp_error *err);

#endif /* SP_DNS_H */
