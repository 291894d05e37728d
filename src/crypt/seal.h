/*
 * seal.h: messages encrypted for their recipient, whole and with their
 * attachments: S/MIME (RFC 8551, OpenSSL's CMS) for a recipient with a
 * certificate, PGP/MIME (RFC 3156, librnp) for one with an OpenPGP key.
 *
 * Owns sp_seal_*: reading and checking a recipient's key (seal.c picks
 * the kind, smime.c and pgp.c read them), and sealing a message: its
 * MIME entity (the Content-* fields and the body) is encrypted, and a new
 * message is made around it with the routing fields of the old one
 * (seal.c splits, smime.c and pgp.c wrap).
 *
 * No I/O: keys and messages come as bytes, results go into buffers.
 * Encryption asked for never falls back to plaintext: every failure is an
 * error with its reason, and the caller must not send the message.
 */
#ifndef SP_SEAL_H
#define SP_SEAL_H

#include "base/base.h"

typedef enum sp_seal_method {
    SP_SEAL_SMIME, /* an X.509 certificate */
    SP_SEAL_PGP,   /* an OpenPGP public key */
} sp_seal_method;

/* "smime" or "pgp". */
const char *sp_seal_method_name(sp_seal_method method);

/* A recipient's key, read and checked.  Opaque handles inside. */
typedef struct sp_seal_key {
    sp_seal_method method;
    char fingerprint[129]; /* S/MIME: SHA-256 of the certificate (hex);
                              OpenPGP: the primary key's fingerprint */
    char subject[256];     /* the certificate's subject, or the first
                              user id */
    int64_t not_before;    /* seconds since the epoch */
    int64_t not_after;     /* seconds since the epoch; 0: no expiry */
    char **addresses;      /* the addresses the key names, lower case */
    size_t n_addresses;
    void *impl; /* X509 and its chain, or an rnp ffi holding the key */
} sp_seal_key;

/*
 * The most addresses a key is stored for at once: each is a copy of the
 * key in the directory.  A key naming more is stored for one address.
 */
#define SP_SEAL_MAX_ADDRESSES 32

/* The largest key file taken: real certificates and keys are a few KiB. */
#define SP_SEAL_MAX_KEY_BYTES (1024 * 1024)

/* What reading a key checks against. */
typedef struct sp_seal_check {
    int64_t now;         /* the time keys must be valid at */
    const char *ca_file; /* S/MIME: PEM trust anchors beside the system's;
                            NULL for the system's alone */
} sp_seal_check;

/*
 * Read a key from len bytes: a certificate (PEM, DER; a PEM file may carry
 * the chain after it) or an OpenPGP public key (armored or binary), told
 * apart by their bytes.  Checked: validity at check->now; for a
 * certificate, a chain to a trusted root, key usage that allows
 * encryption (keyEncipherment or keyAgreement) and, where present, the
 * extended key usage emailProtection; for an OpenPGP key, not revoked,
 * not expired, and a valid key or subkey that may encrypt.  Addresses
 * that are not local@domain with a valid domain are dropped; the subject
 * is cleaned of controls and bytes that are not UTF-8.  Input over
 * SP_SEAL_MAX_KEY_BYTES is SP_ELIMIT.
 * SP_EKEY with the reason for a key that fails a check, SP_ESYNTAX for
 * bytes that are no key, SP_EIO when check->ca_file cannot be read,
 * SP_ENOMEM.  Free *out with sp_seal_key_free.
 *
 * Not checked: certificate revocation (CRL, OCSP), which needs the
 * network; a revoked certificate passes until it expires.
 */
int sp_seal_key_read(const void *data, size_t len, const sp_seal_check *check,
                     sp_seal_key **out, sp_error *err);

/* Whether the key names address (case-insensitive in the domain). */
bool sp_seal_key_names(const sp_seal_key *key, const char *address);

void sp_seal_key_free(sp_seal_key *key);

typedef enum sp_seal_cipher {
    SP_SEAL_AES256_CBC, /* S/MIME EnvelopedData: what every client reads */
    SP_SEAL_AES256_GCM, /* S/MIME AuthEnvelopedData (RFC 5083, 5084) */
} sp_seal_cipher;

typedef struct sp_seal_options {
    sp_seal_cipher cipher; /* S/MIME only; OpenPGP is always
                              integrity-protected */
    const char *subject;   /* the outer Subject in place of the real one
                              (which then travels inside), or NULL to
                              keep it outside */
} sp_seal_options;

/*
 * Seal message (len bytes, CRLF line endings) for key into out: the MIME
 * entity (every Content-* field and the body, bytes unchanged, and the
 * Subject when options->subject replaces it outside) is encrypted; every
 * other field (From, To, Date, Message-ID, trace fields, ...) stays
 * outside, MIME-Version is written anew, and the new Content-* fields
 * describe the encrypted part.  The result has CRLF line endings only.
 * SP_ESYNTAX for a message without a header section, SP_ECRYPTO with the
 * library's reason, SP_ENOMEM; out is unchanged after a failure.
 */
int sp_seal_message(const sp_seal_key *key, const char *message, size_t len,
                    const sp_seal_options *options, sp_buf *out, sp_error *err);

/* ------------------------------------------------------------------------
 * What seal.c shares with smime.c and pgp.c.
 */

/* A message split for sealing. */
typedef struct sp_seal_parts {
    sp_buf outer;  /* the fields that stay outside, CRLF-ended */
    sp_buf entity; /* the MIME entity to encrypt */
} sp_seal_parts;

/*
 * Split message as sp_seal_message describes, subject being the outer
 * Subject's replacement or NULL; SP_ESYNTAX, SP_ENOMEM.  Free with
 * sp_seal_parts_free.  The wrappers write outer, then MIME-Version and
 * their Content-* fields, an empty line and the encrypted body.
 */
int sp_seal_split(const char *message, size_t len, const char *subject,
                  sp_seal_parts *parts, sp_error *err);

void sp_seal_parts_free(sp_seal_parts *parts);

/* Append data as base64 in lines of 76 characters, each ended by CRLF. */
int sp_seal_base64_lines(sp_buf *out, const void *data, size_t len);

int sp_seal_smime_read(const void *data, size_t len, const sp_seal_check *check,
                       sp_seal_key **out, sp_error *err);
int sp_seal_smime_wrap(const sp_seal_key *key, const sp_seal_parts *parts,
                       sp_seal_cipher cipher, sp_buf *out, sp_error *err);
void sp_seal_smime_free(sp_seal_key *key);

int sp_seal_pgp_read(const void *data, size_t len, const sp_seal_check *check,
                     sp_seal_key **out, sp_error *err);
int sp_seal_pgp_wrap(const sp_seal_key *key, const sp_seal_parts *parts,
                     sp_buf *out, sp_error *err);
void sp_seal_pgp_free(sp_seal_key *key);

#endif /* SP_SEAL_H */
