/*
 * encrypt.h: when a message is encrypted for its recipient, and how.
 *
 * Owns sp_encrypt_*: the modes (smime, pgp, auto, portal, none), the
 * per-domain rules of the configuration, the request a submitted message
 * carries (a header field, a tag in its Subject, both removed before it
 * is sent), the decision for one recipient, and the choice of the key to
 * seal with.  Pure: the caller looks keys up and seals (crypt/seal.h).
 *
 * The rule that matters most: encryption that was asked for never falls
 * back to plaintext.  When it cannot be done, the decision is a refusal
 * with a reason, for a policy_rejection.
 */
#ifndef SP_POLICY_ENCRYPT_H
#define SP_POLICY_ENCRYPT_H

#include "base/base.h"

typedef enum sp_encrypt_mode {
    SP_ENCRYPT_UNSET,  /* nothing said: the next source decides */
    SP_ENCRYPT_NONE,   /* plaintext */
    SP_ENCRYPT_SMIME,  /* S/MIME, or refused */
    SP_ENCRYPT_PGP,    /* OpenPGP, or refused */
    SP_ENCRYPT_AUTO,   /* S/MIME, else OpenPGP, else the portal */
    SP_ENCRYPT_PORTAL, /* the secure web portal */
} sp_encrypt_mode;

/* "none", "smime", "pgp", "auto", "portal" ("" for UNSET). */
const char *sp_encrypt_mode_name(sp_encrypt_mode mode);

/* The mode named by len bytes of text, any case; SP_ESYNTAX else. */
int sp_encrypt_mode_parse(const char *text, size_t len, sp_encrypt_mode *out);

/* The header field a submitted message asks with. */
#define SP_ENCRYPT_HEADER "X-Sealpost-Encrypt"

/*
 * Per-domain rules, "DOMAIN=MODE" separated by ';' (or commas): a domain
 * matches itself; "*.SUFFIX" matches the domains under SUFFIX.  The most
 * specific rule wins.  A rule is a floor: a message asking for none
 * cannot send plaintext to a domain whose rule says to encrypt.
 */
typedef struct sp_encrypt_rules sp_encrypt_rules;

/* Parse text (may be empty); SP_ESYNTAX naming the bad rule; SP_ENOMEM. */
int sp_encrypt_rules_parse(const char *text, sp_encrypt_rules **out,
                           sp_error *err);

/* The mode of the rule that matches domain, or SP_ENCRYPT_UNSET. */
sp_encrypt_mode sp_encrypt_rules_find(const sp_encrypt_rules *rules,
                                      const char *domain);

void sp_encrypt_rules_free(sp_encrypt_rules *rules);

/*
 * The request message (len bytes, CRLF) carries, written into out
 * without it: the SP_ENCRYPT_HEADER field (removed; the last one counts
 * if there are several) and, when tag is not NULL or empty, the tag in
 * the Subject (removed with one space beside it; it asks for auto).  A
 * header field naming no mode is SP_ESYNTAX with the reason: a request
 * that cannot be read must not be sent as plaintext.  *mode is UNSET
 * when the message asks for nothing.  Only an unencoded Subject is
 * searched for the tag (not RFC 2047 encoded words).
 */
int sp_encrypt_take_request(const char *message, size_t len, const char *tag,
                            sp_encrypt_mode *mode, sp_buf *out, sp_error *err);

/* What is known of one recipient when deciding. */
typedef struct sp_encrypt_recipient {
    const char *address;
    bool has_smime;        /* a valid S/MIME certificate is on file */
    bool has_pgp;          /* a valid OpenPGP key is on file */
    bool portal_available; /* the secure portal can take the message */
} sp_encrypt_recipient;

typedef enum sp_encrypt_outcome {
    SP_ENCRYPT_PLAIN,     /* send as it is */
    SP_ENCRYPT_AS_SMIME,  /* seal with the S/MIME certificate */
    SP_ENCRYPT_AS_PGP,    /* seal with the OpenPGP key */
    SP_ENCRYPT_AS_PORTAL, /* hand to the portal */
    SP_ENCRYPT_REFUSED,   /* a policy rejection: reason says why */
} sp_encrypt_outcome;

typedef struct sp_encrypt_decision {
    sp_encrypt_mode mode; /* what was asked, after the rules */
    sp_encrypt_outcome outcome;
    char reason[384]; /* for REFUSED */
} sp_encrypt_decision;

/*
 * Decide for one recipient: request (from the API or the message) and
 * rule (the recipient domain's) combine as described above; then the keys
 * on file decide the method, or the refusal.
 */
void sp_encrypt_decide(sp_encrypt_mode request, sp_encrypt_mode rule,
                       const sp_encrypt_recipient *recipient,
                       sp_encrypt_decision *out);

#endif /* SP_POLICY_ENCRYPT_H */
