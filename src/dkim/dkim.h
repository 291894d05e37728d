/*
 * dkim.h: the public face of sealpost's DKIM engine (RFC 6376, with the
 * algorithm rules of RFC 8301 and Ed25519 from RFC 8463).
 *
 * Three parts:
 *   keys      sp_dkim_key_* (key.c): private signing keys, parsed once and
 *             kept in memory; sp_dkim_keyrec_* (keyrec.c): the public key
 *             records published in DNS.
 *   signing   sp_dkim_sign_* (sign.c): one pass over a message produces any
 *             number of signatures; the body is canonicalized and hashed once
 *             per distinct canonicalization.
 *   verifying sp_dkim_verify_* (verify.c): every DKIM-Signature up to a
 *             limit, each with an RFC 8601 result and a reason a person can
 *             act on.
 *
 * The engine does no I/O: messages arrive in chunks of any size, DNS
 * answers through a callback, the time as an argument.  It never logs and
 * never exits; functions return SP_OK or an SP_E* code (base.h) and fill an
 * sp_error with the sentence to show.  Allocation failures are reported as
 * SP_ENOMEM and leave objects safe to free.
 *
 * Objects are not shared between threads; give each thread its own signer
 * or verifier.  A parsed sp_dkim_key may be shared by any number of signers.
 */
#ifndef SP_DKIM_H
#define SP_DKIM_H

#include "base/base.h"

/* Signature algorithms.  rsa-sha1 is recognized only to be judged. */
typedef enum sp_dkim_alg {
    SP_DKIM_RSA_SHA256,
    SP_DKIM_ED25519_SHA256,
    SP_DKIM_RSA_SHA1,
} sp_dkim_alg;

/* Canonicalization of the header or of the body (RFC 6376 3.4). */
typedef enum sp_dkim_canon {
    SP_DKIM_SIMPLE,
    SP_DKIM_RELAXED,
} sp_dkim_canon;

/* Key types, as in the k= tag of a key record. */
typedef enum sp_dkim_keytype {
    SP_DKIM_KEY_RSA,
    SP_DKIM_KEY_ED25519,
} sp_dkim_keytype;

/* Smallest RSA key sealpost signs with, and the size below which it warns. */
#define SP_DKIM_RSA_MIN_BITS     1024
#define SP_DKIM_RSA_WARN_BITS    2048
#define SP_DKIM_MAX_SIGNATURES   8 /* default verification limit */
#define SP_DKIM_MAX_HEADER_BYTES (1024 * 1024)
/*
 * Header sections are limited to SP_DKIM_MAX_HEADER_BYTES octets of fields
 * (the empty line after them not counted) when signing.  A verifier takes
 * SP_DKIM_HEADER_SLACK more, for the signatures and trace fields a message
 * gathers after it was signed.
 */
#define SP_DKIM_HEADER_SLACK (64 * 1024)

/* Name of an algorithm as written in a= ("rsa-sha256"). */
const char *sp_dkim_alg_name(sp_dkim_alg alg);

/*
 * Whether text is a domain name DKIM can sign for or a selector: ASCII
 * labels of letters, digits, '-' and '_', at most 63 octets each and 253
 * in all (internationalized names as A-labels).
 */
bool sp_dkim_valid_name(const char *text);

/* Name of a canonicalization ("simple", "relaxed"). */
const char *sp_dkim_canon_name(sp_dkim_canon canon);

/*
 * Parse "relaxed/simple", "relaxed" (body simple, as RFC 6376 says) and the
 * like into header and body canonicalizations.  Returns SP_OK or
 * SP_ESYNTAX.
 */
int sp_dkim_canon_parse(const char *text, sp_dkim_canon *header,
                        sp_dkim_canon *body, sp_error *err);

/* ------------------------------------------------------------------------
 * Private keys
 */

typedef struct sp_dkim_key sp_dkim_key;

/*
 * Parse a private key: PEM (PKCS#8, or PKCS#1 "RSA PRIVATE KEY"), or the
 * base64 of a 32-octet Ed25519 seed as dkimpy writes it.  Keys that are not
 * RSA or Ed25519 are SP_EKEY; RSA keys under SP_DKIM_RSA_MIN_BITS are
 * SP_EPOLICY, with the reason, because receivers that follow RFC 8301 treat
 * their signatures as invalid.  On success *out owns the key; free it with
 * sp_dkim_key_free.  The bytes need not outlive the call.
 */
int sp_dkim_key_parse(const void *data, size_t len, sp_dkim_key **out,
                      sp_error *err);

/*
 * Make a new private key: RSA of the given size (1024 to 8192 bits), or
 * Ed25519 when type is SP_DKIM_KEY_ED25519 (bits ignored).
 */
int sp_dkim_key_generate(sp_dkim_keytype type, unsigned bits, sp_dkim_key **out,
                         sp_error *err);

void sp_dkim_key_free(sp_dkim_key *key);

sp_dkim_keytype sp_dkim_key_type(const sp_dkim_key *key);

/* Size in bits: the modulus for RSA, 256 for Ed25519. */
unsigned sp_dkim_key_bits(const sp_dkim_key *key);

/*
 * A warning about a key that signs but is weaker than it should be (RSA
 * under SP_DKIM_RSA_WARN_BITS), or NULL.  The text is static.
 */
const char *sp_dkim_key_warning(const sp_dkim_key *key);

/*
 * Append the DNS TXT value that publishes key's public half to out:
 * "v=DKIM1; k=rsa; p=..." (SubjectPublicKeyInfo for RSA, the raw 32 octets
 * for Ed25519, RFC 8463), with "t=y" when testing is set.
 */
int sp_dkim_key_record(const sp_dkim_key *key, bool testing, sp_buf *out);

/* Append the private key as PKCS#8 PEM to out. */
int sp_dkim_key_pem(const sp_dkim_key *key, sp_buf *out);

/* ------------------------------------------------------------------------
 * Key records (the TXT value at selector._domainkey.domain)
 */

/* Hash algorithms a key record allows (h=); all when the tag is absent. */
#define SP_DKIM_HASH_SHA1   0x1u
#define SP_DKIM_HASH_SHA256 0x2u

typedef struct sp_dkim_keyrec {
    bool has_version;     /* v= present (it must then be DKIM1) */
    sp_dkim_keytype type; /* k=, RSA when absent */
    unsigned hashes;      /* SP_DKIM_HASH_* allowed by h= */
    bool testing;         /* t=y: the domain is testing DKIM */
    bool strict;          /* t=s: i= must be exactly d= */
    bool revoked;         /* p= is empty */
    bool has_granularity; /* g= present (RFC 4871, see keyrec.c) */
    char granularity[64]; /* g= value, cut at 63 octets */
    sp_buf public_key;    /* decoded p=, owned */
} sp_dkim_keyrec;

/*
 * Parse a key record.  Unknown tags are ignored; v= other than DKIM1, an
 * unknown k=, an s= without "email" or "*", p= missing or not base64, and
 * an Ed25519 p= that is not 32 octets are SP_ESYNTAX, with the text naming
 * the tag.  A revoked key (empty p=) parses successfully with revoked set.
 * On success the caller owns rec->public_key (sp_dkim_keyrec_free); on
 * failure nothing is left to free.
 */
int sp_dkim_keyrec_parse(const char *text, size_t len, sp_dkim_keyrec *rec,
                         sp_error *err);

void sp_dkim_keyrec_free(sp_dkim_keyrec *rec);

/*
 * Whether two parsed records publish the same public key: Ed25519 as the
 * same 32 octets, RSA as the same key whichever form each record uses
 * (SubjectPublicKeyInfo or bare PKCS#1).  Revoked records hold no key and
 * match nothing.
 */
bool sp_dkim_keyrec_same_key(const sp_dkim_keyrec *a, const sp_dkim_keyrec *b);

/* ------------------------------------------------------------------------
 * Signing
 */

/* One signature to add to each message. */
typedef struct sp_dkim_sign_spec {
    const char *domain;     /* d=, an ASCII domain name */
    const char *selector;   /* s= */
    const sp_dkim_key *key; /* borrowed; must outlive the signer */
    sp_dkim_canon header_canon;
    sp_dkim_canon body_canon;
    const char *identity;     /* i=, NULL to leave it out */
    int64_t expire_after;     /* seconds from t= to x=; 0: no x= */
    const char *const *names; /* NULL-terminated names to sign, each
                                 oversigned; NULL for the default list */
} sp_dkim_sign_spec;

typedef struct sp_dkim_sign sp_dkim_sign;

/*
 * Make a signer that adds one signature per spec (at most 8) to each
 * message.  The specs are copied; the keys are borrowed.  Specs with a bad
 * domain or selector, a key under SP_DKIM_RSA_MIN_BITS, or the same
 * selector twice for one domain are refused.  The signer is ready for a
 * first message signed at time now (seconds since the epoch).
 */
int sp_dkim_sign_new(const sp_dkim_sign_spec *specs, size_t count, int64_t now,
                     sp_dkim_sign **out, sp_error *err);

/*
 * Begin a new message on an existing signer, signed at time now, keeping
 * its keys, contexts and buffers.  Any previous message is forgotten.
 */
void sp_dkim_sign_reset(sp_dkim_sign *sign, int64_t now);

/*
 * Feed the next bytes of the message, header and body, CRLF line endings.
 * Chunks may split anywhere.  Refused (SP_ESYNTAX, the signer then stays
 * failed until reset): a bare CR or LF (normalize with sp_mail_eol_*
 * first), a NUL or a line without a colon in the header, a header section
 * over SP_DKIM_MAX_HEADER_BYTES (SP_ELIMIT).  Signatures that would take the
 * header past SP_DKIM_MAX_HEADER_BYTES + SP_DKIM_HEADER_SLACK, which
 * verifiers would refuse, are SP_ELIMIT at finish.
 */
int sp_dkim_sign_feed(sp_dkim_sign *sign, const void *data, size_t len,
                      sp_error *err);

/*
 * End the message and append the DKIM-Signature fields to out, folded and
 * CRLF-terminated, in the order they are to be prepended to the message.
 * Refused: a message with no From field or more than one (SP_EPOLICY).
 */
int sp_dkim_sign_finish(sp_dkim_sign *sign, sp_buf *out, sp_error *err);

void sp_dkim_sign_free(sp_dkim_sign *sign);

/* The names signed by default, each listed once more than it occurs. */
extern const char *const sp_dkim_default_names[];

/* ------------------------------------------------------------------------
 * Verifying
 */

/* Results of RFC 8601 section 2.7.1, plus "policy" as it defines it. */
#define SP_DKIM_STATUSES(X)                                                    \
    X(SP_DKIM_PASS, "pass")                                                    \
    X(SP_DKIM_FAIL, "fail")                                                    \
    X(SP_DKIM_NEUTRAL, "neutral")                                              \
    X(SP_DKIM_POLICY, "policy")                                                \
    X(SP_DKIM_TEMPERROR, "temperror")                                          \
    X(SP_DKIM_PERMERROR, "permerror")

typedef enum sp_dkim_status {
#define SP_DKIM_STATUS_ENUM(name, text) name,
    SP_DKIM_STATUSES(SP_DKIM_STATUS_ENUM)
#undef SP_DKIM_STATUS_ENUM
} sp_dkim_status;

/* Why a signature got its result: one code per thing a person can fix. */
#define SP_DKIM_REASONS(X)                                                     \
    X(SP_DKIM_R_OK, "ok", "signature verified")                                \
    X(SP_DKIM_R_BODY_HASH, "body_hash", "body hash mismatch")                  \
    X(SP_DKIM_R_BAD_SIGNATURE, "signature", "signature mismatch")              \
    X(SP_DKIM_R_KEY_TOO_SHORT, "key_too_short", "RSA key too short")           \
    X(SP_DKIM_R_RSA_SHA1, "rsa_sha1", "rsa-sha1 signature")                    \
    X(SP_DKIM_R_KEY_REVOKED, "key_revoked", "key revoked")                     \
    X(SP_DKIM_R_NO_KEY, "no_key", "no key record")                             \
    X(SP_DKIM_R_KEY_SYNTAX, "key_syntax", "key record syntax")                 \
    X(SP_DKIM_R_KEY_MISMATCH, "key_mismatch",                                  \
      "key record does not fit the signature")                                 \
    X(SP_DKIM_R_SIG_SYNTAX, "signature_syntax", "signature field syntax")      \
    X(SP_DKIM_R_VERSION, "version", "missing or unknown v=")                   \
    X(SP_DKIM_R_EXPIRED, "expired", "signature expired")                       \
    X(SP_DKIM_R_FROM_NOT_SIGNED, "from_not_signed", "From not signed")         \
    X(SP_DKIM_R_FROM_COUNT, "from_count", "not exactly one From field")        \
    X(SP_DKIM_R_BODY_LENGTH, "body_length",                                    \
      "l= leaves part of the body "                                            \
      "unsigned")                                                              \
    X(SP_DKIM_R_BODY_LENGTH_LONG, "body_length_long",                          \
      "l= is longer than the body")                                            \
    X(SP_DKIM_R_UNKNOWN_ALG, "unknown_algorithm", "unknown algorithm")         \
    X(SP_DKIM_R_IDENTITY, "identity", "i= outside d=")                         \
    X(SP_DKIM_R_DNS_TIMEOUT, "dns_timeout", "DNS timeout")                     \
    X(SP_DKIM_R_DNS_SERVFAIL, "dns_servfail", "DNS server failure")            \
    X(SP_DKIM_R_NOT_CHECKED, "not_checked", "over the signature limit")        \
    X(SP_DKIM_R_INTERNAL, "internal", "internal error")

typedef enum sp_dkim_reason {
#define SP_DKIM_REASON_ENUM(name, word, text) name,
    SP_DKIM_REASONS(SP_DKIM_REASON_ENUM)
#undef SP_DKIM_REASON_ENUM
} sp_dkim_reason;

/* "pass", "fail", ... as RFC 8601 writes them. */
const char *sp_dkim_status_name(sp_dkim_status status);

/* Short machine word for a reason ("body_hash"), stable for scripts. */
const char *sp_dkim_reason_word(sp_dkim_reason reason);

/* The outcome of one DKIM-Signature field. */
typedef struct sp_dkim_result {
    sp_dkim_status status;
    sp_dkim_reason reason;
    char detail[400];   /* a sentence for a person; never empty */
    bool crypto_valid;  /* the signature itself verified, whatever the
                           status; lets "policy" say "valid, but" */
    bool testing;       /* the key record says t=y */
    char domain[256];   /* d=, escaped, possibly cut */
    char selector[128]; /* s=, escaped, possibly cut */
    char identity[256]; /* i=, escaped, possibly cut; "" when absent */
    char algorithm[32]; /* a= as written, escaped, possibly cut */
    char b_prefix[16];  /* first 8+ characters of b=, for header.b */
    sp_dkim_canon header_canon;
    sp_dkim_canon body_canon;
    unsigned key_bits;    /* size of the key found, 0 if none */
    int64_t timestamp;    /* t=, -1 when absent */
    int64_t expires;      /* x=, -1 when absent */
    int64_t body_limit;   /* l=, -1 when absent */
    uint64_t body_octets; /* canonical body length */
} sp_dkim_result;

/* Outcome of a DNS query, as the lookup callback reports it. */
typedef enum sp_dkim_dns {
    SP_DKIM_DNS_OK,       /* records follows (possibly none) */
    SP_DKIM_DNS_NXDOMAIN, /* the name does not exist */
    SP_DKIM_DNS_SERVFAIL, /* the server could not answer */
    SP_DKIM_DNS_TIMEOUT,  /* no answer in time */
} sp_dkim_dns;

#define SP_DKIM_MAX_TXT 4

/* TXT records at one name, each with its strings already joined. */
typedef struct sp_dkim_txt {
    sp_dkim_dns status;
    size_t count;                        /* records, at most MAX_TXT */
    const char *record[SP_DKIM_MAX_TXT]; /* borrowed, see lookup below */
    size_t length[SP_DKIM_MAX_TXT];
} sp_dkim_txt;

/*
 * The DNS callback: fill answer for the TXT records at name
 * ("sel._domainkey.example.com").  The record bytes must stay valid until
 * sp_dkim_verify_finish returns.  Called only from sp_dkim_verify_finish,
 * once per distinct name.
 */
typedef void (*sp_dkim_lookup_fn)(void *arg, const char *name,
                                  sp_dkim_txt *answer);

/*
 * Parsed public keys kept between verifications, shared by any number of
 * verifiers in any number of threads.  Parsing a key record costs more than
 * checking an RSA signature with it, and a receiver sees the same keys over
 * and over.  capacity is the number of keys kept (least recently used go
 * first).
 */
typedef struct sp_dkim_keycache sp_dkim_keycache;

int sp_dkim_keycache_new(size_t capacity, sp_dkim_keycache **out,
                         sp_error *err);

/* Free the cache; no verifier may still be using it. */
void sp_dkim_keycache_free(sp_dkim_keycache *cache);

typedef struct sp_dkim_verify_opts {
    sp_dkim_lookup_fn lookup;   /* required */
    sp_dkim_keycache *keycache; /* optional, borrowed: parsed keys kept
                                   between messages */
    void *lookup_arg;           /* passed to lookup */
    int64_t now;                /* seconds since the epoch, for x= */
    unsigned max_signatures;    /* 0: SP_DKIM_MAX_SIGNATURES */
    bool legacy;                /* accept rsa-sha1 and short RSA keys, for
                                   diagnosis only */
} sp_dkim_verify_opts;

typedef struct sp_dkim_verify sp_dkim_verify;

/* Make a verifier for one message; the options are copied. */
int sp_dkim_verify_new(const sp_dkim_verify_opts *opts, sp_dkim_verify **out,
                       sp_error *err);

/*
 * Feed the next bytes of the message.  Bytes are verified as they are,
 * bare CR and LF included.  SP_ELIMIT when the header section exceeds
 * SP_DKIM_MAX_HEADER_BYTES + SP_DKIM_HEADER_SLACK; SP_ENOMEM.
 */
int sp_dkim_verify_feed(sp_dkim_verify *verify, const void *data, size_t len,
                        sp_error *err);

/*
 * End the message: look up keys and judge every signature.  Afterwards
 * sp_dkim_verify_count and sp_dkim_verify_result describe them, in the
 * order the fields appear (top first).
 */
int sp_dkim_verify_finish(sp_dkim_verify *verify, sp_error *err);

size_t sp_dkim_verify_count(const sp_dkim_verify *verify);

const sp_dkim_result *sp_dkim_verify_result(const sp_dkim_verify *verify,
                                            size_t index);

/* DomainKey-Signature fields seen: a dead protocol, reported, not judged. */
size_t sp_dkim_verify_domainkeys(const sp_dkim_verify *verify);

/* From fields seen in the header. */
size_t sp_dkim_verify_from_count(const sp_dkim_verify *verify);

/*
 * Append an Authentication-Results field (RFC 8601), CRLF-terminated, for
 * the results of a finished verification to out: "dkim=none" when the
 * message carried no signature.
 */
int sp_dkim_verify_auth_results(const sp_dkim_verify *verify,
                                const char *authserv_id, sp_buf *out);

void sp_dkim_verify_free(sp_dkim_verify *verify);

/* ------------------------------------------------------------------------
 * Auditing published records (audit.c): findings a person can act on,
 * for "sealpost dkim audit".  The caller does the DNS.
 */

/* How much a finding matters; a record's verdict is the worst of them. */
typedef enum sp_dkim_audit_severity {
    SP_DKIM_AUDIT_OK,      /* a check passed */
    SP_DKIM_AUDIT_INFO,    /* a note; nothing to fix */
    SP_DKIM_AUDIT_WARNING, /* works, but should be fixed */
    SP_DKIM_AUDIT_ERROR,   /* receivers discard the record or fail the
                              signatures made with it */
} sp_dkim_audit_severity;

#define SP_DKIM_AUDIT_MAX_FINDINGS 16

typedef struct sp_dkim_audit_finding {
    sp_dkim_audit_severity severity;
    const char *code; /* static word, stable for scripts ("key_weak") */
    char text[320];   /* a sentence for a person; peer text escaped */
} sp_dkim_audit_finding;

/*
 * The findings about one record.  Codes of sp_dkim_audit_record: syntax,
 * version, version_position, key_type, hash_sha1_only, hash_none, service,
 * testing, granularity, revoked, key_unreadable, ed25519_spki,
 * key_too_short, key_weak, key_size; of sp_dkim_audit_match: key_match,
 * key_mismatch, not_compared, our_record; of sp_dkim_audit_domainkeys:
 * domainkeys, domainkeys_policy, domainkeys_other.
 */
typedef struct sp_dkim_audit {
    sp_dkim_audit_finding findings[SP_DKIM_AUDIT_MAX_FINDINGS];
    size_t count;             /* findings in use */
    size_t dropped;           /* findings past the array, counted only */
    bool has_key;             /* key_type and key_bits were measured */
    sp_dkim_keytype key_type; /* k=, RSA when absent */
    unsigned key_bits;        /* RSA modulus, 256 for Ed25519; 0 unknown */
} sp_dkim_audit;

/* Empty audit, ready for findings. */
void sp_dkim_audit_init(sp_dkim_audit *audit);

/*
 * Add a finding; code must be a static string.  Past
 * SP_DKIM_AUDIT_MAX_FINDINGS the finding is only counted in dropped.
 */
void sp_dkim_audit_add(sp_dkim_audit *audit, sp_dkim_audit_severity severity,
                       const char *code, const char *fmt, ...) SP_PRINTF(4, 5);

/*
 * Evaluate the key record text (len bytes, the TXT strings joined) and add
 * its findings: every tag is judged on its own, the key measured (RSA
 * under SP_DKIM_RSA_MIN_BITS an error, under SP_DKIM_RSA_WARN_BITS a
 * warning), and an Ed25519 key in SubjectPublicKeyInfo form named as such.
 * Returns SP_OK, or SP_ENOMEM with the findings made so far kept.
 */
int sp_dkim_audit_record(sp_dkim_audit *audit, const char *text, size_t len);

/*
 * Compare the published record with ours, the record sealpost holds for
 * the same selector (sp_dkim_keyrec_same_key), and add key_match (ok),
 * key_mismatch (error), or why they were not compared.  Returns SP_OK or
 * SP_ENOMEM.
 */
int sp_dkim_audit_match(sp_dkim_audit *audit, const char *published,
                        size_t published_len, const char *ours,
                        size_t ours_len);

/*
 * Evaluate a TXT record found at _domainkey.DOMAIN: a DomainKeys policy
 * (RFC 4870: o=, t=, r=, n=) is reported as a deprecated protocol, with
 * what it says; anything else as a note.
 */
void sp_dkim_audit_domainkeys(sp_dkim_audit *audit, const char *text,
                              size_t len);

/* The worst severity of the findings; info counts as ok. */
sp_dkim_audit_severity sp_dkim_audit_verdict(const sp_dkim_audit *audit);

/* "ok", "info", "warning" or "error". */
const char *sp_dkim_audit_severity_name(sp_dkim_audit_severity severity);

#endif /* SP_DKIM_H */
