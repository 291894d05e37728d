/*
 * keys.h: the public face of sealpost's DKIM key management: the store,
 * the master key, the DKIM engine and DNS answers put together, for the
 * command line and the daemon alike.
 *
 *   manager.c   sp_keys_open/close, sp_keys_generate, selectors, loading
 *               signing keys
 *   lifecycle.c sp_keys_plan (pure) and sp_keys_step: rotation through new
 *               selectors, activation once DNS shows the record,
 *               retirement once nothing depends on the key
 *   records.c   sp_keys_zone: the TXT records to publish, in zone-file
 *               syntax; sp_keys_seen: what DNS shows against our key
 *
 * Keys live per domain, one lifecycle per algorithm (RSA and Ed25519 by
 * default, as some large receivers still verify only RSA).  A key goes
 * pending (made, not yet seen in DNS), active (signing), retiring (no
 * longer signing, still published) and retired (may be unpublished; its
 * revocation record is offered).  A rotation never replaces a key in
 * place: the new key gets a new selector, so mail already signed and still
 * queued verifies until it is delivered.
 *
 * Private keys are sealed with the master key in the store and opened only
 * to sign or on explicit request; nothing here logs.
 */
#ifndef SP_KEYS_H
#define SP_KEYS_H

#include "base/base.h"
#include "config/config.h"
#include "dkim/dkim.h"
#include "dns/dns.h"
#include "store/store.h"

typedef struct sp_keys sp_keys;

/*
 * Open key management for config: the store in config->data_dir and the
 * master key (made on first use when create is set, as keygen does).
 * Refuses a master key file others can read.
 */
int sp_keys_open(const sp_config *config, bool create, sp_keys **out,
                 sp_error *err);

void sp_keys_close(sp_keys *keys);

/* The store behind keys, for listing and recording signatures. */
sp_store *sp_keys_store(sp_keys *keys);

/*
 * Seal a secret other than a DKIM key (a webhook's) with the master key,
 * bound to context; append it to out.  sp_keys_unseal opens it, appending
 * the plain text to out (which the caller wipes after use).  Errors of
 * the master key (missing, readable by others) and SP_ECRYPTO.
 */
int sp_keys_seal(sp_keys *keys, const char *context, const void *plain,
                 size_t len, sp_buf *out, sp_error *err);
int sp_keys_unseal(sp_keys *keys, const char *context, const sp_buf *sealed,
                   sp_buf *out, sp_error *err);

/*
 * How many queued messages carry a signature of the key whose store id
 * is key_id.  The spool keeps that record for the messages it holds.
 */
typedef int (*sp_keys_queued_fn)(void *arg, int64_t key_id, int64_t *count,
                                 sp_error *err);

/*
 * Let lifecycle steps ask fn as well as the store's own records before a
 * key retires (the daemon and the command line pass the spool's count).
 */
void sp_keys_set_queued(sp_keys *keys, sp_keys_queued_fn fn, void *arg);

/*
 * The default selector for a new key of domain: "sp" year "q" quarter and
 * "r" or "e" (sp2027q1r), with a number added when that selector was used
 * before (sp2027q1r2): selectors are never reused.
 */
int sp_keys_selector(sp_keys *keys, const char *domain, const char *algorithm,
                     int64_t now, char *out, size_t size, sp_error *err);

/*
 * Make a pending key for domain: algorithm "rsa" (bits 1024 to 4096;
 * under 1024 refused with the reason, 1024 accepted with *warning set) or
 * "ed25519"; selector NULL for the default; testing publishes t=y.  The
 * made key's row goes to *made, whose parts the caller frees with
 * sp_store_key_clear (or pass NULL).
 */
int sp_keys_generate(sp_keys *keys, const char *domain, const char *selector,
                     const char *algorithm, unsigned bits, bool testing,
                     int64_t now, sp_store_key *made, const char **warning,
                     sp_error *err);

/*
 * Open the private key of a stored key (the explicit request: signing, or
 * an operator's export).  *out is the caller's, to free with
 * sp_dkim_key_free.
 */
int sp_keys_private(sp_keys *keys, const sp_store_key *row, sp_dkim_key **out,
                    sp_error *err);

/* ------------------------------------------------------------------------
 * What DNS shows
 */

typedef enum sp_keys_seen_state {
    SP_KEYS_SEEN_MATCH,    /* the record publishes our key */
    SP_KEYS_SEEN_MISSING,  /* no record (NXDOMAIN or no TXT) */
    SP_KEYS_SEEN_MISMATCH, /* a record, but not of our key */
    SP_KEYS_SEEN_REVOKED,  /* the record revokes the key (empty p=) */
    SP_KEYS_SEEN_FAILED,   /* DNS did not answer */
} sp_keys_seen_state;

/*
 * Compare what DNS answered at the key's name with the key: *state, and
 * the reason a person can act on in why (say "the record holds the
 * SubjectPublicKeyInfo form of the Ed25519 key").
 */
void sp_keys_seen(const sp_store_key *row, const sp_dns_answer *answer,
                  sp_keys_seen_state *state, char *why, size_t why_size);

/* selector._domainkey.domain of a key. */
const char *sp_keys_name(const sp_store_key *row, char *out, size_t size);

/* ------------------------------------------------------------------------
 * Lifecycle
 */

/*
 * How a step asks DNS for the TXT records at name: the answer's texts must
 * stay valid until the next call (a synchronous resolver's do; the daemon
 * answers from what it looked up beforehand, see sp_keys_wanted).
 */
typedef void (*sp_keys_lookup_fn)(void *arg, const char *name,
                                  sp_dns_answer *answer);

/* What a step did to one key, or why it could not move. */
typedef struct sp_keys_change {
    int64_t key_id;
    char domain[254];
    char selector[64];
    char algorithm[16];
    sp_store_key_state from; /* equal to to when the key did not move */
    sp_store_key_state to;
    bool made;     /* the key was made by this step */
    char why[300]; /* what happened, or what blocks the key */
} sp_keys_change;

typedef struct sp_keys_report {
    sp_keys_change *changes; /* owned; moves and blockers, in order */
    size_t count;
} sp_keys_report;

void sp_keys_report_free(sp_keys_report *report);

/*
 * The names a step on domain will look up: those of its pending keys (a
 * key made by the step is looked up at the next one).  *names is an owned
 * array of *count owned strings; free each and the array with sp_free.
 */
int sp_keys_wanted(sp_keys *keys, const char *domain, char ***names,
                   size_t *count, sp_error *err);

/*
 * One lifecycle step for domain at time now, looking up its pending keys
 * through lookup: make a new pending key per algorithm when the active one
 * is older than the rotation period (or at once with force, or when the
 * algorithm has no key), activate a pending key whose record DNS shows
 * (and retire the active key it replaces), retire a retiring key once no
 * queued message carries its signatures and the latest x= among them has
 * passed.  Every move and every blocker goes to report; the caller emits
 * the moves as events.
 */
int sp_keys_step(sp_keys *keys, const char *domain, int64_t now, bool force,
                 sp_keys_lookup_fn lookup, void *lookup_arg,
                 sp_keys_report *report, sp_error *err);

/*
 * Make a pending key active without seeing its record (the operator knows
 * it is published where sealpost's resolver cannot look); it is marked
 * unconfirmed, and the key it replaces starts retiring.
 */
int sp_keys_activate(sp_keys *keys, const char *domain, const char *selector,
                     int64_t now, sp_keys_report *report, sp_error *err);

/* ------------------------------------------------------------------------
 * Records to publish
 */

/*
 * Append to out the TXT records to publish for domain, in zone-file
 * syntax, values split into quoted strings of at most 255 octets: one per
 * pending, active and retiring key, and for each retired key the record
 * that revokes it (empty p=).  With relative, names are relative to the
 * domain under an $ORIGIN line, ready to paste into its zone.
 */
int sp_keys_zone(sp_keys *keys, const char *domain, bool relative, sp_buf *out,
                 sp_error *err);

/*
 * Publish what a report asks for by RFC 2136 dynamic update, when the
 * configuration names an update server (dns_update_server, with
 * dns_update_tsig and dns_update_zone): the record of each key made, the
 * revocation record of each key retired.  Each record that could not be
 * published is appended to notes, one line each, and the step goes on:
 * the key then waits, pending, as if the operator had not published yet.
 * Without an update server, the record of each key made is appended to
 * notes for the operator to publish.
 */
void sp_keys_publish(sp_keys *keys, const sp_keys_report *report,
                     sp_buf *notes);

/* One record in zone-file syntax: name, ttl, TXT, quoted strings. */
int sp_keys_zone_line(const char *name, int64_t ttl, const char *value,
                      sp_buf *out);

#endif /* SP_KEYS_H */
