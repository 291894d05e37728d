/*
 * bench.h: names shared by the files of the DKIM benchmark.
 *
 *   bench_msg.c       bench_msg_*       the test messages and their fields
 *   bench_time.c      bench_time_*      interleaved timing rounds
 *   bench_sealpost.c  bench_sealpost_*  sealpost's signer and verifier
 *   bench_opendkim.c  bench_opendkim_*  the same work done by libopendkim
 *   bench_bare.c      bench_bare_*      the bare signature, for reference
 *   dkim_bench.c      main: keys, cases, checks and the result lines
 *
 * Every per-message function returns 0 on success or -1 with a sentence
 * in why[BENCH_WHY_SIZE]; the benchmark stops at the first failure, so no
 * figure is ever printed for work that did not verify.
 */
#ifndef BENCH_H
#define BENCH_H

#include "dkim/dkim.h"

#include <stddef.h>

#define BENCH_WHY_SIZE   400
#define BENCH_MAX_FIELDS 64
#define BENCH_MAX_ROUNDS 32
#define BENCH_CHUNK      65536 /* bytes per call, as a milter gets them */
#define BENCH_DOMAIN     "example.com"

/* ------------------------------------------------------------------------
 * Messages
 */

/* One header field inside a message, without its final CRLF. */
typedef struct bench_field {
    size_t offset; /* first byte of the name */
    size_t length; /* up to, not including, the CRLF that ends it */
} bench_field;

typedef struct bench_message {
    char *data;  /* owned, CRLF line endings, NUL-terminated */
    size_t len;  /* bytes, not counting the NUL */
    size_t body; /* offset of the body, after the empty line */
    bench_field fields[BENCH_MAX_FIELDS];
    size_t field_count;
} bench_message;

/*
 * Make a plain-text message of about target bytes: the usual header fields
 * and a body of prose with normal line lengths, quoted lines, double
 * spaces and trailing whitespace.  The same target always gives the same
 * bytes.  Returns 0, or -1 when memory runs out.
 */
int bench_msg_make(size_t target, bench_message *msg);

/*
 * Make msg hold prefix (whole header fields, CRLF-terminated) followed by
 * the bytes of base.  Returns 0, or -1 with why filled.
 */
int bench_msg_prepend(const bench_message *base, const char *prefix,
                      size_t prefix_len, bench_message *msg, char *why);

void bench_msg_free(bench_message *msg);

/* ------------------------------------------------------------------------
 * Keys: one per algorithm, generated for the run.
 */

typedef struct bench_key {
    sp_dkim_key *key;   /* owned */
    const char *alg;    /* "rsa-sha256" or "ed25519-sha256" */
    const char *label;  /* "rsa2048" or "ed25519", also the selector */
    sp_buf pem;         /* PKCS#8 PEM text, for libopendkim */
    sp_buf record;      /* the TXT value publishing the public half */
    char dns_name[128]; /* selector._domainkey.BENCH_DOMAIN */
} bench_key;

/* ------------------------------------------------------------------------
 * Timing.  Each job does one message per call; the jobs of one case are
 * timed in turns, so a slow second on a shared machine hits all of them.
 */

typedef int (*bench_step_fn)(void *state, char *why);

typedef struct bench_job {
    const char *impl;              /* "sealpost", "libopendkim" */
    bench_step_fn step;            /* one message */
    void *state;                   /* passed to step */
    double rate[BENCH_MAX_ROUNDS]; /* messages per second, per round */
    unsigned long messages;        /* messages done in all timed rounds */
    double median;                 /* median of rate[], once timed */
} bench_job;

typedef struct bench_plan {
    unsigned rounds;      /* rounds per job, at most BENCH_MAX_ROUNDS */
    double round_seconds; /* length of one round of one job */
} bench_plan;

/*
 * Warm every job up, then time plan->rounds rounds of each, in turns.
 * Fills rate[], messages and median.  Returns 0, or -1 with why filled
 * (prefixed with the job's impl) when a step fails.
 */
int bench_time_jobs(bench_job *jobs, size_t count, const bench_plan *plan,
                    char *why);

/* ------------------------------------------------------------------------
 * sealpost
 */

typedef struct bench_sealpost_signer bench_sealpost_signer;
typedef struct bench_sealpost_verifier bench_sealpost_verifier;

/* A signer for msg with key, relaxed/relaxed; NULL with why filled. */
bench_sealpost_signer *bench_sealpost_signer_new(const bench_key *key,
                                                 const bench_message *msg,
                                                 char *why);

/* Sign the message once; the field stays in the signer until the next. */
int bench_sealpost_sign_step(void *signer, char *why);

/* The DKIM-Signature field made by the last step, CRLF-terminated. */
const char *bench_sealpost_signature(const bench_sealpost_signer *signer,
                                     size_t *len);

void bench_sealpost_signer_free(bench_sealpost_signer *signer);

/*
 * A verifier for msg (which must carry one signature) that answers key
 * lookups from keys[0..count) in memory.  NULL with why filled.
 */
bench_sealpost_verifier *bench_sealpost_verifier_new(const bench_key *keys,
                                                     size_t count,
                                                     const bench_message *msg,
                                                     char *why);

/* Verify the message once; anything but one "pass" is a failure. */
int bench_sealpost_verify_step(void *verifier, char *why);

void bench_sealpost_verifier_free(bench_sealpost_verifier *verifier);

/* ------------------------------------------------------------------------
 * libopendkim
 */

typedef struct bench_opendkim bench_opendkim;
typedef struct bench_opendkim_signer bench_opendkim_signer;
typedef struct bench_opendkim_verifier bench_opendkim_verifier;

/*
 * Start the library once, with the key records read from query_file
 * (lines "name record", libopendkim's file query method).  NULL with why
 * filled.
 */
bench_opendkim *bench_opendkim_new(const char *query_file, char *why);

void bench_opendkim_free(bench_opendkim *lib);

bench_opendkim_signer *bench_opendkim_signer_new(bench_opendkim *lib,
                                                 const bench_key *key,
                                                 const bench_message *msg,
                                                 char *why);

/* Sign the message once, as OpenDKIM's filter does: a handle per message. */
int bench_opendkim_sign_step(void *signer, char *why);

/* The DKIM-Signature field made by the last step, CRLF-terminated. */
const char *bench_opendkim_signature(const bench_opendkim_signer *signer,
                                     size_t *len);

void bench_opendkim_signer_free(bench_opendkim_signer *signer);

bench_opendkim_verifier *bench_opendkim_verifier_new(bench_opendkim *lib,
                                                     const bench_message *msg,
                                                     char *why);

/* Verify the message once; anything but a good signature is a failure. */
int bench_opendkim_verify_step(void *verifier, char *why);

void bench_opendkim_verifier_free(bench_opendkim_verifier *verifier);

/* ------------------------------------------------------------------------
 * The bare signature operation, as openssl speed times it
 */

typedef struct bench_bare bench_bare;

/*
 * A job that signs, or verifies, one SHA-256 digest with key per step.
 * NULL with why filled.
 */
bench_bare *bench_bare_new(const bench_key *key, bool verifying, char *why);

int bench_bare_step(void *bare, char *why);

void bench_bare_free(bench_bare *bare);

#endif /* BENCH_H */
