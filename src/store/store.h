/*
 * store.h: the public face of sealpost's storage: what must survive a
 * restart and, past one machine, be shared between nodes (keys, API keys,
 * webhooks, templates, events, DMARC reports).  The message spool is not
 * here; it lives in queue/.
 *
 * One interface, a table of functions per backend (store.c dispatches):
 * SQLite under the data directory is the embedded default (sqlite.c);
 * PostgreSQL, for several nodes, implements the same table later.
 *
 * Every function returns SP_OK or an SP_E* code with err filled: SP_EIO
 * for the database failing, SP_ENOTFOUND for a missing row, SP_EINVAL for
 * a duplicate.  Nothing here logs.
 */
#ifndef SP_STORE_H
#define SP_STORE_H

#include "base/base.h"
#include "dmarc/report.h"

typedef struct sp_store sp_store;

/*
 * Open the embedded store in data_dir (the file sealpost.db), creating it
 * and its schema when absent.  A store written by a newer sealpost is
 * refused (its schema version is checked), never altered.
 */
int sp_store_open(const char *data_dir, sp_store **out, sp_error *err);

void sp_store_close(sp_store *store);

/* ------------------------------------------------------------------------
 * DKIM keys.  Rows are never deleted: a retired key keeps its selector, so
 * no selector of a domain is ever used twice.
 */

typedef enum sp_store_key_state {
    SP_STORE_KEY_PENDING,  /* made, not yet seen in DNS */
    SP_STORE_KEY_ACTIVE,   /* signing */
    SP_STORE_KEY_RETIRING, /* no longer signing, still published */
    SP_STORE_KEY_RETIRED,  /* may be unpublished; revocation offered */
} sp_store_key_state;

typedef struct sp_store_key {
    int64_t id;       /* assigned by the store */
    char domain[254]; /* signing domain, lower case */
    char selector[64];
    char algorithm[16]; /* "rsa" or "ed25519" */
    unsigned bits;      /* key size */
    bool testing;       /* published with t=y */
    sp_store_key_state state;
    bool unconfirmed;    /* made active without being seen in DNS */
    int64_t created;     /* seconds since the epoch */
    int64_t activated;   /* 0 until active */
    int64_t retiring;    /* 0 until retiring */
    int64_t retired;     /* 0 until retired */
    int64_t last_expiry; /* latest x= of its signatures, 0 if none */
    int64_t signatures;  /* how many it has made */
    char *public_record; /* TXT value publishing it; owned */
    sp_buf sealed;       /* private key, encrypted; owned */
} sp_store_key;

/* Name of a state ("pending"), and the state of a name. */
const char *sp_store_key_state_name(sp_store_key_state state);
int sp_store_key_state_parse(const char *name, sp_store_key_state *out);

/*
 * Add a key; key->id is set.  SP_EINVAL when the domain already has the
 * selector (selectors are never reused).
 */
int sp_store_key_insert(sp_store *store, sp_store_key *key, sp_error *err);

/*
 * The keys of one domain (or all, when domain is NULL), ordered by domain
 * then creation.  *keys is an owned array; free it with sp_store_keys_free.
 */
int sp_store_key_list(sp_store *store, const char *domain, sp_store_key **keys,
                      size_t *count, sp_error *err);

void sp_store_keys_free(sp_store_key *keys, size_t count);

/* Free the parts of one key row (its record and sealed key), wiping the
 * sealed bytes. */
void sp_store_key_clear(sp_store_key *key);

/* Move a key to state at time at (which also records that time). */
int sp_store_key_set_state(sp_store *store, int64_t id,
                           sp_store_key_state state, int64_t at,
                           bool unconfirmed, sp_error *err);

/*
 * Record that the key made count signatures, the latest expiring at
 * expiry (0: no x=), and that message (a queue id, or NULL) carries one
 * until sp_store_key_released; the key cannot retire while one does.
 */
int sp_store_key_signed(sp_store *store, int64_t id, int64_t count,
                        int64_t expiry, const char *message, sp_error *err);

/* The message no longer waits in the queue (delivered, bounced, gone). */
int sp_store_key_released(sp_store *store, const char *message, sp_error *err);

/* How many queued messages carry a signature made with the key. */
int sp_store_key_queued(sp_store *store, int64_t id, int64_t *count,
                        sp_error *err);

/* ------------------------------------------------------------------------
 * API keys: the secrets applications authenticate with (SMTP AUTH, the
 * HTTP API).  Only a hash of each key is stored; the key is shown once,
 * when made.
 */

typedef struct sp_store_apikey {
    int64_t id;             /* assigned by the store */
    char name[64];          /* the operator's name for it, unique */
    char prefix[16];        /* the key's first characters, to tell
                               keys apart in lists and logs */
    unsigned char hash[32]; /* SHA-256 of the whole key */
    char domains[512];      /* sender domains it may use, separated
                               by commas; "" for any */
    int64_t created;        /* seconds since the epoch */
    int64_t revoked;        /* 0 while valid */
    char scopes[64];        /* what it may do: "send" (SMTP AUTH, and
                               later the transmissions API), "read"
                               (events and metrics), comma-separated;
                               "" when adding means both */
} sp_store_apikey;

/* Whether key may do scope ("send", "read"). */
bool sp_store_apikey_allows(const sp_store_apikey *key, const char *scope);

/* Add a key; SP_EINVAL when the name is taken. */
int sp_store_apikey_insert(sp_store *store, sp_store_apikey *key,
                           sp_error *err);

/* Every key, oldest first; *keys is owned (sp_free). */
int sp_store_apikey_list(sp_store *store, sp_store_apikey **keys, size_t *count,
                         sp_error *err);

/* The valid key with this hash; SP_ENOTFOUND when none (or revoked). */
int sp_store_apikey_find(sp_store *store, const unsigned char hash[32],
                         sp_store_apikey *out, sp_error *err);

/* Revoke the key named name at time at; SP_ENOTFOUND if none is valid. */
int sp_store_apikey_revoke(sp_store *store, const char *name, int64_t at,
                           sp_error *err);

/* ------------------------------------------------------------------------
 * Webhooks: endpoints that are sent the events as they come.  Each keeps
 * a cursor into the event store: the events up to it were taken (2xx).
 */

typedef struct sp_store_webhook {
    int64_t id;            /* assigned by the store */
    char name[64];         /* unique */
    char url[512];         /* http:// or https:// */
    char events[256];      /* types sent, comma-separated; "" for all */
    sp_buf sealed;         /* the signing secret, sealed; owned */
    int64_t cursor;        /* the last event taken */
    int64_t failing_since; /* ms since the epoch; 0 while it takes them */
    char last_error[256];  /* "" while it takes them */
    int64_t created;       /* seconds since the epoch */
} sp_store_webhook;

/* Add a webhook; hook->id is set.  SP_EINVAL when the name is taken. */
int sp_store_webhook_insert(sp_store *store, sp_store_webhook *hook,
                            sp_error *err);

/* Every webhook, oldest first; free with sp_store_webhooks_free. */
int sp_store_webhook_list(sp_store *store, sp_store_webhook **hooks,
                          size_t *count, sp_error *err);

void sp_store_webhooks_free(sp_store_webhook *hooks, size_t count);

/* Remove the webhook called name; SP_ENOTFOUND when there is none. */
int sp_store_webhook_remove(sp_store *store, const char *name, sp_error *err);

/* Record how sending went: the cursor, and the failure (or none). */
int sp_store_webhook_progress(sp_store *store, int64_t id, int64_t cursor,
                              int64_t failing_since, const char *last_error,
                              sp_error *err);

/* ------------------------------------------------------------------------
 * Templates: the stored content of transmissions, by id.
 */

typedef struct sp_store_template {
    char id[65]; /* unique */
    char name[256];
    char description[256];
    char *content;   /* a JSON object's text; owned (malloc'd) */
    int64_t created; /* seconds since the epoch */
    int64_t updated;
} sp_store_template;

/*
 * Store tpl (created and updated are set here): a new one when create is
 * set (SP_EINVAL when its id is taken), else over the one with its id,
 * keeping its created time (SP_ENOTFOUND when there is none).
 */
int sp_store_template_save(sp_store *store, sp_store_template *tpl, bool create,
                           sp_error *err);

/* The template with id into out; SP_ENOTFOUND.  Free with _clear. */
int sp_store_template_get(sp_store *store, const char *id,
                          sp_store_template *out, sp_error *err);

/* Every template, by id; free with sp_store_templates_free. */
int sp_store_template_list(sp_store *store, sp_store_template **out,
                           size_t *count, sp_error *err);

/* Delete the template with id; SP_ENOTFOUND when there is none. */
int sp_store_template_delete(sp_store *store, const char *id, sp_error *err);

void sp_store_template_clear(sp_store_template *tpl);
void sp_store_templates_free(sp_store_template *list, size_t count);

/* ------------------------------------------------------------------------
 * Events: what happened to each message and recipient, one JSON object
 * each (events.h says what they hold).  The SQLite backend keeps them in
 * data_dir/events.db, apart from the keys, indexed by recipient, queue
 * id, type and time.
 */

typedef struct sp_store_event {
    const char *id;          /* event_id: unique; a second add is ignored */
    int64_t timestamp_ms;    /* when it happened */
    const char *type;        /* "delivery", "bounce" ... */
    const char *recipient;   /* or "" */
    const char *queue_id;    /* or "" */
    const char *campaign_id; /* or "" */
    const char *json;        /* the whole event */
} sp_store_event;

/* Add events[0..count) in one transaction, durable when this returns. */
int sp_store_events_add(sp_store *store, const sp_store_event *events,
                        size_t count, sp_error *err);

/*
 * Which events sp_store_events_find gives; "" or 0 for any.  The text
 * filters take one value or several separated by commas (at most 100).
 */
typedef struct sp_store_event_filter {
    const char *type;
    const char *recipient;
    const char *queue_id;
    const char *campaign_id;
    int64_t from_ms, to_ms; /* timestamp_ms in [from_ms, to_ms) */
    int64_t after;          /* only events stored after this cursor */
    size_t limit;           /* at most this many; 0 for 1000 */
} sp_store_event_filter;

/*
 * The events filter lets through, in the order they were stored, each
 * through each(arg, cursor, json); the last cursor given is where the next
 * page starts (filter.after).
 */
int sp_store_events_find(sp_store *store, const sp_store_event_filter *filter,
                         void (*each)(void *arg, int64_t cursor,
                                      const char *json),
                         void *arg, sp_error *err);

/*
 * Count the events of [from_ms, to_ms) (to_ms 0: up to now) by type, and
 * by bucket_ms-long time buckets (0: one for all) or, with by_domain, by
 * recipient domain instead; each(arg, bucket start, domain or "", type,
 * count) per group.
 */
int sp_store_events_count(sp_store *store, int64_t from_ms, int64_t to_ms,
                          int64_t bucket_ms, bool by_domain,
                          void (*each)(void *arg, int64_t bucket,
                                       const char *domain, const char *type,
                                       int64_t count),
                          void *arg, sp_error *err);

/*
 * Delete up to max events older than before_ms (their timestamp), oldest
 * first, in one transaction; *deleted says how many went.  Call again
 * while it deletes max: short transactions keep writers waiting briefly.
 */
int sp_store_events_prune(sp_store *store, int64_t before_ms, size_t max,
                          size_t *deleted, sp_error *err);

/* ------------------------------------------------------------------------
 * DMARC aggregate reports: what receivers said of the mail sent in the
 * name of a domain, one row per record of a report, with the DKIM and
 * SPF results under it (dmarc/report.h reads them).  A report is known by
 * its org_name and report_id and stored once.  Input that could not be
 * read as a report is kept apart, with the reason, so an operator can
 * count and look into it.
 */

/*
 * Store report in one transaction: the report, all its records and their
 * DKIM and SPF results.  source says where it came from (a file name, a
 * message id); imported is when, in seconds since the epoch.  *id_out
 * (when id_out is not NULL) gets the report's row id.  SP_EINVAL when a
 * report with the same org_name and report_id is stored, err saying
 * "duplicate report: ORG report id ID (imported TIME from SOURCE)", or
 * when report has no org_name or report_id; SP_EIO; SP_ENOMEM.  After any
 * failure nothing of the report is stored.
 */
int sp_store_dmarc_add(sp_store *store, const sp_dmarc_report *report,
                       const char *source, int64_t imported, int64_t *id_out,
                       sp_error *err);

/*
 * A batch: the adds between begin and end go into one transaction, one
 * flush for many reports (an import of thousands of files).  Inside a
 * batch a refused report (a duplicate) leaves the others; nothing of the
 * batch is durable before end with commit set, and end without it gives
 * the batch up.  SP_ESTATE when a batch is open already (begin) or none
 * is (end); SP_EIO.
 */
int sp_store_dmarc_batch_begin(sp_store *store, sp_error *err);
int sp_store_dmarc_batch_end(sp_store *store, bool commit, sp_error *err);

/*
 * Record that source (size octets) was refused as a report, for reason,
 * at refused (seconds since the epoch), keeping its bytes when content is
 * not NULL (mail taken in by sealpostd: nowhere else holds it).  SP_EIO.
 */
int sp_store_dmarc_refuse(sp_store *store, const char *source,
                          const char *reason, const void *content, int64_t size,
                          int64_t refused, sp_error *err);

/* One stored record with its report's context (dmarc/report.h). */
typedef sp_dmarc_record_view sp_store_dmarc_row;

typedef void sp_store_dmarc_row_fn(void *arg, const sp_store_dmarc_row *row);

/*
 * Call fn(arg, row) once per stored record of the reports of domain (all
 * when NULL) whose date range ends at since or later (all when since is
 * 0), ordered by domain, org_name, begin, then the order the records were
 * stored in.  fn must not call back into the store.  SP_EIO; SP_ENOMEM,
 * after which fn may have seen some of the rows.
 */
int sp_store_dmarc_rows(sp_store *store, const char *domain, int64_t since,
                        sp_store_dmarc_row_fn *fn, void *arg, sp_error *err);

/* How many reports, records and refusals are stored.  SP_EIO. */
int sp_store_dmarc_counts(sp_store *store, int64_t *reports, int64_t *records,
                          int64_t *refused, sp_error *err);

/* ------------------------------------------------------------------------
 * Recipients' keys: the S/MIME certificates and OpenPGP public keys that
 * mail to an address may be encrypted with, kept as imported (crypt/
 * seal.h reads and checks them), per address, or per "@domain" for the
 * key a whole domain takes when its address has none.
 */

typedef struct sp_store_rkey {
    int64_t id;            /* assigned by the store */
    char address[256];     /* lower case; "@domain" for a default */
    char method[8];        /* "smime" or "pgp" */
    char fingerprint[129]; /* as sp_seal_key gives it */
    char subject[256];     /* certificate subject or first user id */
    int64_t not_before;    /* seconds since the epoch */
    int64_t not_after;     /* seconds since the epoch; 0: no expiry */
    int64_t imported;      /* seconds since the epoch */
    sp_buf data;           /* the key's bytes as imported; owned */
} sp_store_rkey;

/*
 * Add key (its id is set).  SP_EINVAL when the address already has this
 * key (same method and fingerprint); SP_EIO.
 */
int sp_store_rkey_add(sp_store *store, sp_store_rkey *key, sp_error *err);

/*
 * Add key, read and checked (crypt/seal.h), with its bytes data, for
 * address, imported at now; *row (when not NULL) gets what was stored,
 * its address lower case, its data left empty.  As sp_store_rkey_add.
 */
struct sp_seal_key;
int sp_store_rkey_put(sp_store *store, const struct sp_seal_key *key,
                      const sp_buf *data, const char *address, int64_t now,
                      sp_store_rkey *row, sp_error *err);

/*
 * The keys of address (exactly, without regard to case; "@domain" for a
 * domain's), or of every address when NULL, by address, method and age.
 * Free with sp_store_rkeys_free.  SP_EIO, SP_ENOMEM.
 */
int sp_store_rkey_list(sp_store *store, const char *address,
                       sp_store_rkey **keys, size_t *count, sp_error *err);

/*
 * Remove the keys of address, or only the one with fingerprint when that
 * is not NULL; *removed says how many went.  SP_EIO.
 */
int sp_store_rkey_remove(sp_store *store, const char *address,
                         const char *fingerprint, size_t *removed,
                         sp_error *err);

void sp_store_rkeys_free(sp_store_rkey *keys, size_t count);

/* ------------------------------------------------------------------------
 * The table every backend fills (store.c, sqlite.c).
 */
struct sp_store_backend {
    const char *name;
    void (*close)(void *impl);
    int (*key_insert)(void *impl, sp_store_key *key, sp_error *err);
    int (*key_list)(void *impl, const char *domain, sp_store_key **keys,
                    size_t *count, sp_error *err);
    int (*key_set_state)(void *impl, int64_t id, sp_store_key_state state,
                         int64_t at, bool unconfirmed, sp_error *err);
    int (*key_signed)(void *impl, int64_t id, int64_t count, int64_t expiry,
                      const char *message, sp_error *err);
    int (*key_released)(void *impl, const char *message, sp_error *err);
    int (*key_queued)(void *impl, int64_t id, int64_t *count, sp_error *err);
    int (*apikey_insert)(void *impl, sp_store_apikey *key, sp_error *err);
    int (*apikey_list)(void *impl, sp_store_apikey **keys, size_t *count,
                       sp_error *err);
    int (*apikey_find)(void *impl, const unsigned char hash[32],
                       sp_store_apikey *out, sp_error *err);
    int (*apikey_revoke)(void *impl, const char *name, int64_t at,
                         sp_error *err);
    int (*webhook_insert)(void *impl, sp_store_webhook *hook, sp_error *err);
    int (*webhook_list)(void *impl, sp_store_webhook **hooks, size_t *count,
                        sp_error *err);
    int (*webhook_remove)(void *impl, const char *name, sp_error *err);
    int (*webhook_progress)(void *impl, int64_t id, int64_t cursor,
                            int64_t failing_since, const char *last_error,
                            sp_error *err);
    int (*template_save)(void *impl, sp_store_template *tpl, bool create,
                         sp_error *err);
    int (*template_get)(void *impl, const char *id, sp_store_template *out,
                        sp_error *err);
    int (*template_list)(void *impl, sp_store_template **out, size_t *count,
                         sp_error *err);
    int (*template_delete)(void *impl, const char *id, sp_error *err);
    int (*events_add)(void *impl, const sp_store_event *events, size_t count,
                      sp_error *err);
    int (*events_find)(void *impl, const sp_store_event_filter *filter,
                       void (*each)(void *arg, int64_t cursor,
                                    const char *json),
                       void *arg, sp_error *err);
    int (*events_prune)(void *impl, int64_t before_ms, size_t max,
                        size_t *deleted, sp_error *err);
    int (*events_count)(void *impl, int64_t from_ms, int64_t to_ms,
                        int64_t bucket_ms, bool by_domain,
                        void (*each)(void *arg, int64_t bucket,
                                     const char *domain, const char *type,
                                     int64_t count),
                        void *arg, sp_error *err);
    int (*dmarc_add)(void *impl, const sp_dmarc_report *report,
                     const char *source, int64_t imported, int64_t *id_out,
                     sp_error *err);
    int (*rkey_add)(void *impl, sp_store_rkey *key, sp_error *err);
    int (*rkey_list)(void *impl, const char *address, sp_store_rkey **keys,
                     size_t *count, sp_error *err);
    int (*rkey_remove)(void *impl, const char *address, const char *fingerprint,
                       size_t *removed, sp_error *err);
    int (*dmarc_batch)(void *impl, bool begin, bool commit, sp_error *err);
    int (*dmarc_refuse)(void *impl, const char *source, const char *reason,
                        const void *content, int64_t size, int64_t refused,
                        sp_error *err);
    int (*dmarc_rows)(void *impl, const char *domain, int64_t since,
                      sp_store_dmarc_row_fn *fn, void *arg, sp_error *err);
    int (*dmarc_counts)(void *impl, int64_t *reports, int64_t *records,
                        int64_t *refused, sp_error *err);
};

#endif /* SP_STORE_H */
