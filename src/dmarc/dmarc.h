/*
 * dmarc.h: the public face of sealpost's DMARC module (RFC 7489).
 *
 * What it owns today: the policy record published at _dmarc.DOMAIN
 * (record.c): parsing it into its tags with a sentence for each fault,
 * checking report addresses (rua=, ruf=), and making a record for a
 * domain.  Aggregate report parsing will join it here.
 *
 * The module does no I/O: records arrive as bytes, the caller looks them
 * up.  It never logs and never exits; functions return SP_OK or an SP_E*
 * code (base.h) and fill an sp_error with the sentence to show.
 */
#ifndef SP_DMARC_H
#define SP_DMARC_H

#include "base/base.h"

/* What a domain asks receivers to do with mail failing DMARC (p=). */
typedef enum sp_dmarc_policy {
    SP_DMARC_NONE,       /* monitor only: deliver, and report */
    SP_DMARC_QUARANTINE, /* treat as suspicious (the spam folder) */
    SP_DMARC_REJECT,     /* refuse during the SMTP dialogue */
} sp_dmarc_policy;

/* "none", "quarantine" or "reject". */
const char *sp_dmarc_policy_name(sp_dmarc_policy policy);

/*
 * The policy named by len bytes of text, without regard to case, as the
 * record's grammar allows.  SP_ESYNTAX for anything else.
 */
int sp_dmarc_policy_parse(const char *text, size_t len, sp_dmarc_policy *out);

/*
 * A parsed record.  Text values point into the parsed text, which must
 * outlive the record; nothing is allocated.
 */
typedef struct sp_dmarc_record {
    bool has_policy;        /* p= present with a known value */
    sp_dmarc_policy policy; /* p= */
    bool has_subdomain_policy;
    sp_dmarc_policy subdomain_policy; /* sp=, p= applies when absent */
    unsigned pct;                     /* pct=, percent of failing mail the
                                         policy applies to; 100 if absent */
    bool strict_dkim;                 /* adkim=s (relaxed when absent) */
    bool strict_spf;                  /* aspf=s (relaxed when absent) */
    uint32_t interval;                /* ri=, seconds between aggregate
                                         reports; 86400 if absent */
    const char *rua;                  /* rua= value, or NULL if absent */
    size_t rua_len;
    const char *ruf; /* ruf= value, or NULL if absent */
    size_t ruf_len;
    size_t tags; /* tags read, v= included */
} sp_dmarc_record;

/*
 * Parse a record: "v=DMARC1" first (exactly so: the grammar makes the
 * version case-sensitive), then tags separated by ';', each at most once.
 * p= is required, as are known values for p=, sp=, np=, adkim=, aspf=,
 * pct=, ri=, fo=, rf=, psd= and t=, and mailto: lists for rua= and ruf=
 * (see sp_dmarc_uri_list_check).  Tag names are read without regard to
 * case.
 *
 * Unknown tags are refused too.  RFC 7489 tells receivers to ignore them,
 * so they do not break a record, but a publisher who writes one almost
 * always misspelled a tag that therefore has no effect.
 *
 * Returns SP_OK, or SP_ESYNTAX with err naming the first fault and the tag.
 * Either way rec holds every tag that could be read, so a report can show
 * p= and rua= of a faulty record.
 */
int sp_dmarc_record_parse(const char *text, size_t len, sp_dmarc_record *rec,
                          sp_error *err);

/*
 * Check a report address list as rua= and ruf= hold it: comma-separated
 * "mailto:" URIs, each an address local@domain with an optional size
 * limit ("!10m"), spaces allowed around the commas.  Other URI schemes are
 * refused: mailto: is the only one receivers must support (RFC 7489 6.2),
 * so reports sent elsewhere are lost.  Returns SP_OK or SP_ESYNTAX with err
 * naming the faulty URI.
 */
int sp_dmarc_uri_list_check(const char *text, size_t len, sp_error *err);

/*
 * Walk a checked URI list: each call gives the next URI, without the
 * spaces around it, and returns false after the last.  *pos starts at 0.
 */
bool sp_dmarc_uri_next(const char *text, size_t len, size_t *pos,
                       const char **uri, size_t *uri_len);

/*
 * The domain of a checked mailto: URI (after '@', before any '!'), for
 * deciding whether reports leave the domain (RFC 7489 7.1).
 */
void sp_dmarc_uri_domain(const char *uri, size_t len, const char **domain,
                         size_t *domain_len);

/*
 * Append a record to out: "v=DMARC1; p=POLICY", then "; pct=N" when pct
 * is below 100, then "; rua=RUA".  rua must pass sp_dmarc_uri_list_check;
 * pct below 100 is only for quarantine and reject, where it means
 * something.  SP_EINVAL with the reason for either fault, SP_ENOMEM; out
 * is unchanged after a failure.
 */
int sp_dmarc_record_make(sp_dmarc_policy policy, unsigned pct, const char *rua,
                         sp_buf *out, sp_error *err);

#endif /* SP_DMARC_H */
