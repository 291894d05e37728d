/*
 * dkim_int.h: names shared between the files of the DKIM module and its
 * tests.  Nothing outside src/dkim/ and its tests includes this file.
 *
 *   tag.c    dkim__tag_*     tag=value lists (RFC 6376 3.2)
 *   canon.c  dkim__canon_*   header and body canonicalization (3.4)
 *   key.c    dkim__key_*     signing with a parsed private key
 *   keyrec.c dkim__keyrec_*  the public key of a parsed record
 *   keycache.c dkim__keycache_* parsed public keys kept between messages
 *   names.c  dkim__name_*    domain and selector syntax, h= lists
 *   message.c dkim__message_* splitting a message into header and body
 */
#ifndef SP_DKIM_INT_H
#define SP_DKIM_INT_H

#include "dkim.h"
#include "mail/mail.h"

#include <openssl/evp.h>

/* ------------------------------------------------------------------------
 * Tag lists.  Values point into the parsed text, which must outlive them.
 */

#define DKIM__MAX_TAGS 64

typedef struct dkim__tag {
    const char *name; /* tag name, not NUL-terminated */
    size_t name_len;
    const char *value; /* value without surrounding whitespace */
    size_t value_len;
    size_t after_equals; /* offset in the text just after '=' */
    size_t spec_end;     /* offset of the ';' ending the tag, or the end */
} dkim__tag;

typedef struct dkim__tags {
    dkim__tag tag[DKIM__MAX_TAGS];
    size_t count;
} dkim__tags;

/*
 * Parse a tag list.  Whitespace (SP, TAB, CR, LF) around names, '=' and
 * values is ignored; empty specs between ';' are skipped.  SP_ESYNTAX for a
 * tag without '=', a bad tag name, a duplicate tag, or more than
 * DKIM__MAX_TAGS tags; err names the tag.
 */
int dkim__tag_parse(const char *text, size_t len, dkim__tags *tags,
                    sp_error *err);

/* The tag called name (case-sensitive, as RFC 6376 says), or NULL. */
const dkim__tag *dkim__tag_find(const dkim__tags *tags, const char *name);

/* Whether tag's value equals text exactly. */
bool dkim__tag_is(const dkim__tag *tag, const char *text);

/*
 * Walk a colon-separated list value (h=, s=, t=, q=): each call gives the
 * next element, trimmed of whitespace, and returns false after the last.
 * *pos starts at 0.
 */
bool dkim__tag_list_next(const dkim__tag *tag, size_t *pos, const char **item,
                         size_t *item_len);

/* Whether the list value holds word exactly. */
bool dkim__tag_list_has(const dkim__tag *tag, const char *word);

/*
 * Write tag's value into dst for a sentence shown to a person: control and
 * non-ASCII bytes escaped, cut to fit size.  Values come from strangers'
 * mail and DNS, so no value reaches a report any other way.  Returns dst.
 */
const char *dkim__tag_show(const dkim__tag *tag, char *dst, size_t size);

/* ------------------------------------------------------------------------
 * Body hashing.  A canonicalizer produces one canonical body stream and
 * feeds it to several digests, each stopping at its own length limit.
 */

#define DKIM__MAX_BODY_HASHES 32 /* also the most signatures verified */

typedef struct dkim__body_hash {
    EVP_MD_CTX *md;     /* owned digest context */
    const EVP_MD *type; /* SHA-256 or SHA-1 */
    uint64_t limit;     /* octets to hash (l=), UINT64_MAX for all */
    uint64_t hashed;    /* octets hashed so far */
    sp_dkim_canon mode; /* the canonicalization it hashes */
    unsigned char digest[EVP_MAX_MD_SIZE]; /* the result, once finished */
    unsigned digest_len;
} dkim__body_hash;

typedef struct dkim__canon_body {
    sp_dkim_canon mode;
    bool strict;          /* bare CR or LF is an error (signing) */
    bool failed;          /* a strict violation was seen */
    uint64_t failed_at;   /* input offset of that violation */
    bool at_line_start;   /* no content yet on the current line */
    bool cr_held;         /* last input byte was a CR, not yet resolved */
    bool wsp_pending;     /* relaxed: whitespace seen, not yet written */
    uint64_t empty_lines; /* empty lines withheld, written only if
                             content follows them */
    uint64_t consumed;    /* input octets seen */
    uint64_t produced;    /* canonical octets produced */
    bool any_output;      /* something was produced (simple: empty body
                             is a single CRLF) */
    dkim__body_hash *hashes[DKIM__MAX_BODY_HASHES]; /* borrowed */
    size_t hash_count;
    size_t staged;    /* bytes waiting in stage */
    char stage[8192]; /* output collected before hashing */
} dkim__canon_body;

void dkim__canon_body_init(dkim__canon_body *body, sp_dkim_canon mode,
                           bool strict);

/* Canonicalize the next body bytes; SP_ECRYPTO if a digest update fails. */
int dkim__canon_body_feed(dkim__canon_body *body, const char *data, size_t len);

/* End the body: apply the rules for the last line and the empty body. */
int dkim__canon_body_finish(dkim__canon_body *body);

/*
 * Append the canonical form of one header field (name, colon, value,
 * CRLF) to out.  field is the whole field as it appears, folded, with or
 * without its final CRLF.
 */
int dkim__canon_header(sp_dkim_canon mode, const char *field, size_t len,
                       sp_buf *out);

/* ------------------------------------------------------------------------
 * Messages.  The header section is collected whole (signatures need all of
 * it); the body streams through.
 */

typedef struct dkim__message {
    size_t limit;         /* most octets of fields the header may hold */
    sp_buf header;        /* the header section, blank line included */
    size_t scanned;       /* how far the end has been looked for */
    bool in_body;         /* the header section is complete */
    sp_mail_header index; /* fields of the header, once complete */
} dkim__message;

/* Forget the previous message, keeping the buffers. */
void dkim__message_reset(dkim__message *msg);

/*
 * Take the next bytes.  While the header is incomplete they are collected;
 * the call that completes it sets *header_done and indexes the fields.
 * *body and *body_len get the part of data that belongs to the body (none
 * before the header is complete).  SP_ELIMIT when the header section grows
 * past msg->limit octets of fields, SP_ENOMEM.
 */
int dkim__message_feed(dkim__message *msg, const char *data, size_t len,
                       bool *header_done, const char **body, size_t *body_len,
                       sp_error *err);

/*
 * End of input.  A message that never reached an empty line is all header
 * and no body: *header_done is set if the header completes only now.
 */
int dkim__message_end(dkim__message *msg, bool *header_done, sp_error *err);

void dkim__message_free(dkim__message *msg);

/* ------------------------------------------------------------------------
 * Keys
 */

/*
 * Signing state of one key for one signer: contexts are made once, then
 * reused for every message.
 */
typedef struct dkim__signer_key {
    const sp_dkim_key *key; /* borrowed */
    EVP_PKEY_CTX *rsa;      /* RSA: initialized for PKCS#1 v1.5 SHA-256;
                               NULL for Ed25519, which needs none */
} dkim__signer_key;

int dkim__key_signer_init(dkim__signer_key *signer, const sp_dkim_key *key,
                          sp_error *err);

/* Sign a SHA-256 digest of the header data; sig gets the raw signature. */
int dkim__key_sign(dkim__signer_key *signer, const unsigned char *digest,
                   size_t digest_len, sp_buf *sig, sp_error *err);

void dkim__key_signer_free(dkim__signer_key *signer);

/*
 * Make the public key of a parsed record, for verification.  SP_ESYNTAX
 * with a reason when p= does not hold a key of the record's type.
 */
int dkim__keyrec_pkey(const sp_dkim_keyrec *rec, EVP_PKEY **out, sp_error *err);

/* ------------------------------------------------------------------------
 * Verification state, shared by verify.c (parsing the signatures and
 * streaming the body) and judge.c (keys, cryptography, the verdict).
 */

/* One DKIM-Signature field being verified. */
typedef struct dkim__sig {
    sp_dkim_result result; /* what the caller will read */
    bool decided;          /* result is final (an early permerror) */
    size_t field;          /* index of the field in the header index */
    size_t value_start;    /* offset of the value from the field start */
    dkim__tags tags;       /* point into the header buffer */
    sp_dkim_alg alg;
    sp_buf signature;      /* decoded b=, owned */
    sp_buf body_hash;      /* decoded bh=, owned */
    dkim__body_hash *body; /* the digest this signature compares with */
    char identity[320];    /* i=, quoted-printable decoded */
    size_t local_len;      /* length of its local part, before '@' */
    const char *id_domain; /* its domain (into identity), or NULL */
    size_t id_domain_len;
} dkim__sig;

/* A key record answer, looked up once per name. */
typedef struct dkim__lookup {
    char name[520]; /* selector._domainkey.domain */
    sp_dkim_txt answer;
} dkim__lookup;

struct sp_dkim_verify {
    sp_dkim_verify_opts opts; /* copied from the caller */
    dkim__message msg;
    dkim__sig *sigs;   /* owned array of the checked signatures */
    size_t sig_count;  /* DKIM-Signature fields, checked or not */
    size_t domainkeys; /* DomainKey-Signature fields */
    size_t from_count; /* From fields */
    int failed;        /* SP_OK, or the error that stopped reading;
                          finish then reports it */
    bool finished;
    bool canon_used[2];
    dkim__canon_body canon[2];
    dkim__body_hash hashes[DKIM__MAX_BODY_HASHES];
    size_t hash_count;
    dkim__lookup *lookups; /* owned array, one per checked signature */
    size_t lookup_count;
    size_t checked;           /* signatures judged: the first ones, up
                                 to opts.max_signatures */
    sp_dkim_result unchecked; /* the result all the others share */
    size_t *order;            /* fields sorted by name, for h= */
    size_t *taken;            /* per run of one name in order: how many
                                 the current h= has selected */
    EVP_MD_CTX *header_md;    /* owned, made on first use, reused for each
                                 signature's header digest */
    sp_buf scratch;           /* canonical text being hashed */
};

/* Record a final result for sig; fmt fills its detail. */
void dkim__sig_decide(dkim__sig *sig, sp_dkim_status status,
                      sp_dkim_reason reason, const char *fmt, ...)
    SP_PRINTF(4, 5);

/* Judge one parsed signature after the whole message was read. */
void dkim__judge(sp_dkim_verify *verify, dkim__sig *sig);

/*
 * The public key of a record through cache (which may be NULL): a cached
 * key, or one parsed by dkim__keyrec_pkey and then kept.  *out is the
 * caller's reference to free.
 */
int dkim__keycache_pkey(sp_dkim_keycache *cache, const sp_dkim_keyrec *rec,
                        EVP_PKEY **out, sp_error *err);

/* ------------------------------------------------------------------------
 * Names
 */

/* Whether text is a usable domain name or selector (LDH labels, dots). */
bool dkim__name_valid_domain(const char *text, size_t len);

/* Parse c= ("relaxed/simple") from len bytes; SP_ESYNTAX if unknown. */
int dkim__canon_parse(const char *text, size_t len, sp_dkim_canon *header,
                      sp_dkim_canon *body);

/* Case-insensitive ordering of two byte strings, like strcmp. */
int dkim__name_compare(const char *a, size_t a_len, const char *b,
                       size_t b_len);

/* Case-insensitive equality of two byte strings. */
bool dkim__name_equal(const char *a, size_t a_len, const char *b, size_t b_len);

/*
 * Whether domain a equals b or is a subdomain of it (case-insensitive),
 * as i= must be to d=.
 */
bool dkim__name_within(const char *a, size_t a_len, const char *b,
                       size_t b_len);

/* libsodium initialized once per process; false if it cannot be. */
bool dkim__sodium_ready(void);

/* The shared EVP digest types, fetched once. */
const EVP_MD *dkim__sha256(void);
const EVP_MD *dkim__sha1(void);

#endif /* SP_DKIM_INT_H */
