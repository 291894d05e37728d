/*
 * summary.h: what the aggregate reports of a period say, per domain: how
 * receivers judged the mail of each source and each DKIM selector, why
 * they overrode the policy, and whether the domain looks ready to move
 * from p=none to p=quarantine.
 *
 * Owns sp_dmarc_summary_* and sp_dmarc_sources_*.  Records are added one
 * at a time (the store hands them over); the summary is a JSON document.
 * Whether a source address or a selector is the operator's own is asked
 * of the caller, who knows the configuration and the key store.  No I/O.
 * The maps are GLib's, which end the process when memory runs out, so
 * the summary functions do not report it.
 */
#ifndef SP_DMARC_SUMMARY_H
#define SP_DMARC_SUMMARY_H

#include "dmarc/report.h"

#include <jansson.h>

/* Addresses and networks ("192.0.2.0/24", "2001:db8::1"). */
typedef struct sp_dmarc_sources sp_dmarc_sources;

/*
 * Parse count items, each an IPv4 or IPv6 address with an optional
 * prefix length.  SP_EINVAL naming the bad item; SP_ENOMEM.
 */
int sp_dmarc_sources_parse(const char *const *items, size_t count,
                           sp_dmarc_sources **out, sp_error *err);

/* Whether ip (text) is one of the addresses or inside one of the networks. */
bool sp_dmarc_sources_match(const sp_dmarc_sources *sources, const char *ip);

void sp_dmarc_sources_free(sp_dmarc_sources *sources);

/* What the caller says is the operator's own. */
typedef struct sp_dmarc_ownership {
    /* Whether mail from ip is sent by the operator; NULL: none is. */
    bool (*own_source)(void *arg, const char *ip);
    /* Whether selector of domain is one of the operator's keys. */
    bool (*own_selector)(void *arg, const char *domain, const char *selector);
    void *arg;
} sp_dmarc_ownership;

typedef struct sp_dmarc_summary sp_dmarc_summary;

/* An empty summary; own is copied. */
sp_dmarc_summary *sp_dmarc_summary_new(const sp_dmarc_ownership *own);

/* Count one record, a record of a report of its domain.  SP_OK. */
int sp_dmarc_summary_add(sp_dmarc_summary *summary,
                         const sp_dmarc_record_view *record);

/*
 * The summary: {"domains": [...]}, one object per domain in name order
 * with its reports, receivers, messages, rates, dispositions, sources
 * (most messages first), selectors, overrides and advice.  See
 * doc/dmarc.md for every field.
 */
json_t *sp_dmarc_summary_json(const sp_dmarc_summary *summary);

void sp_dmarc_summary_free(sp_dmarc_summary *summary);

#endif /* SP_DMARC_SUMMARY_H */
