/*
 * daemon.h: names shared by the files of sealpostd.
 *
 *   main.c        options, start-up, the event loop, shutdown
 *   dkim_task.c   daemon_dkim_*: the DKIM key lifecycle on a schedule
 *   mailbox.c     daemon_mailbox_*: work handed from threads to the loop
 *   signer.c      daemon_signer_*: DKIM signing on worker threads
 *   tls.c         daemon_tls_context: the STARTTLS certificate
 *   smtp_server.c daemon_smtp_*: listeners, connection limits
 *   smtp_conn.c   one SMTP connection on the loop
 *   accept.c      the accept path: trace fields, the spool, the log
 *   deliver.c     daemon_deliver_*: delivery to the recipients' servers
 *   mxgroup.c     daemon_mxgroups_*: destinations chosen by MX host
 *   dsn.c         daemon_dsn_*: bounce messages to senders (RFC 3464)
 *   event_pump.c  daemon_event_pump_*: events from the spool to the store
 *   webhooks.c    daemon_webhooks_*: events POSTed to their endpoints
 *   reports.c     daemon_reports_*: DMARC reports taken in by mail
 */
#ifndef SP_DAEMON_H
#define SP_DAEMON_H

#include "base/base.h"
#include "config/config.h"
#include "dns/dns.h"
#include "events/events.h"
#include "http/http.h"
#include "keys/keys.h"
#include "queue/queue.h"
#include "smtp/smtp.h"
#include "store/store.h"

#include <openssl/ssl.h>
#include <pthread.h>
#include <sys/socket.h>

struct event;
struct event_base;

struct dkim_domain_check;

/* The lifecycle task: what it uses, borrowed from the daemon. */
struct daemon_dkim {
    const sp_config *config;
    sp_keys *keys;
    sp_events *events;
    sp_dns_resolver *resolver;        /* driven by the event loop */
    struct dkim_domain_check *checks; /* domains waiting for DNS */
    struct daemon_signer *signer;     /* told when keys change, or NULL */
};

/*
 * Refuse to start on keys that break the rules: an active t=y key of a
 * domain not in dkim_testing_domains.  Warns about keys that sign
 * unconfirmed.
 */
int daemon_dkim_startup(struct daemon_dkim *task, sp_error *err);

/* Start a lifecycle check of every configured domain. */
void daemon_dkim_check(struct daemon_dkim *task);

/* Drop checks still waiting for DNS, before the resolver goes. */
void daemon_dkim_stop(struct daemon_dkim *task);

/* ------------------------------------------------------------------------
 * The mailbox: other threads post work, the loop runs it in order.
 */

struct mailbox_item;

struct daemon_mailbox {
    int fd;                    /* eventfd the loop watches */
    pthread_mutex_t lock;      /* guards the list */
    struct mailbox_item *head; /* posted, not yet run */
    struct mailbox_item *tail;
    struct event *event; /* the loop's watch on fd */
};

int daemon_mailbox_init(struct daemon_mailbox *box, struct event_base *base,
                        sp_error *err);

/* From any thread: run(arg) on the loop, soon, in posting order. */
void daemon_mailbox_post(struct daemon_mailbox *box, void (*run)(void *arg),
                         void *arg);

/* On the loop, at shutdown, after the threads stopped: run what is left,
 * then free. */
void daemon_mailbox_free(struct daemon_mailbox *box);

/* ------------------------------------------------------------------------
 * TLS and SMTP
 */

/*
 * Parse "ADDR:PORT" or "[ADDR6]:PORT" (a port other than 0) into out;
 * *loopback when the address is one.  False for anything else.
 */
bool daemon_parse_address(const char *text, struct sockaddr_storage *out,
                          int *length, bool *loopback);

/*
 * The TLS server context: the configured certificate, or a self-signed
 * one made under data_dir/tls on first start.
 */
int daemon_tls_context(const sp_config *config, const char *hostname,
                       SSL_CTX **out, sp_error *err);

/* ------------------------------------------------------------------------
 * The signer: DKIM signatures made on worker threads.
 */

struct daemon_signer;

/* What signing one message made; valid only during the callback. */
typedef struct daemon_signed {
    const char *domain;           /* its From address's domain */
    const sp_buf *fields;         /* DKIM-Signature fields to prepend;
                                     empty when the domain has no key */
    const int64_t *key_ids;       /* store ids of the keys that signed */
    const char *const *selectors; /* their selectors, in the same order */
    size_t key_count;
} daemon_signed;

/*
 * A signed (or unsigned) message, on a worker thread.  rc SP_OK: made
 * says what signing made.  Otherwise err says why the message cannot be
 * signed (no From, two From fields, no domain in it, or the engine's
 * refusal) and made->domain is "".
 */
typedef void (*daemon_signer_done_fn)(void *arg, int rc,
                                      const daemon_signed *made,
                                      const sp_error *err);

/*
 * Start one worker per core, with the active keys of every domain in
 * config->dkim_domains opened.  config and keys are borrowed.
 */
int daemon_signer_start(const sp_config *config, sp_keys *keys,
                        struct daemon_signer **out, sp_error *err);

/*
 * Read the active keys again (after a lifecycle step); messages being
 * signed finish with the keys they started with.  On failure the old
 * keys stay.
 */
int daemon_signer_reload(struct daemon_signer *signer, sp_error *err);

/*
 * Sign data[0..len) (the whole message, CRLF line endings), which must
 * stay valid until done has run; done runs once, on a worker thread.
 * SP_ENOMEM when the job cannot be queued (done does not run).
 */
int daemon_signer_submit(struct daemon_signer *signer, const char *data,
                         size_t len, daemon_signer_done_fn done, void *arg);

/* Active keys the signer holds for domain (for logs and tests). */
size_t daemon_signer_key_count(struct daemon_signer *signer,
                               const char *domain);

/*
 * Write the signatures made since the last flush to the key store: per
 * key, how many and the latest x=.  What cannot be written is kept for
 * the next flush.  On the loop thread.
 */
int daemon_signer_flush(struct daemon_signer *signer, sp_store *store,
                        sp_error *err);

/*
 * Finish the jobs in hand, stop the workers, flush to store (when not
 * NULL), close the keys.
 */
void daemon_signer_stop(struct daemon_signer *signer, sp_store *store);

/* ------------------------------------------------------------------------
 * Delivery: the spool's messages out to the recipients' servers.
 */

struct daemon_deliver_deps {
    const sp_config *config;
    struct event_base *base;
    sp_queue *queue;
    sp_dns_resolver *resolver;      /* driven by the loop */
    const char *hostname;           /* our name in EHLO and bounces */
    struct daemon_mailbox *mailbox; /* the spool's answers, to the loop */
};

struct daemon_deliver;

/*
 * Start delivering: every pending recipient in the spool is scheduled.
 * SP_ESYNTAX for delivery_rules that do not parse (err names the rule),
 * SP_EIO when the spool cannot be listed, SP_ENOMEM.
 */
int daemon_deliver_start(const struct daemon_deliver_deps *deps,
                         struct daemon_deliver **out, sp_error *err);

/* A message just stored: schedule its recipients.  On the loop. */
void daemon_deliver_queued(struct daemon_deliver *deliver,
                           const sp_queue_info *info);

/*
 * Close every connection at once; messages being sent stay pending in
 * the spool and go again at the next start (at most a duplicate).
 */
void daemon_deliver_stop(struct daemon_deliver *deliver);

/*
 * A job waiting to be placed in the scheduler: a message's recipients at
 * one domain (positions in its envelope), due at due_ms.
 */
typedef struct daemon_pending_job {
    struct daemon_pending_job *next;
    char id[SP_QUEUE_ID_SIZE];
    int64_t due_ms;
    unsigned attempts;
    size_t count;
    size_t positions[];
} daemon_pending_job;

/* Place job (it becomes the callee's) at destination dest, for domain. */
typedef void (*daemon_place_fn)(void *arg, const char *domain, const char *dest,
                                daemon_pending_job *job);

struct daemon_mxgroups;

/* ------------------------------------------------------------------------
 * Bounce messages
 */

/* An RFC 5322 date (UTC) for ms since the epoch; accept.c. */
void daemon_date(int64_t ms, char *out, size_t size);

/* One recipient that delivery gave up on. */
struct daemon_dsn_rcpt {
    const char *address;
    const char *status;     /* enhanced code, "5.1.1" */
    const char *diagnostic; /* the reply: "550 5.1.1 no such user" */
    const char *remote;     /* the server that said it, or "" */
};

/* A message the spool took, to be scheduled (on the loop). */
typedef void (*daemon_queued_fn)(void *arg, const sp_queue_info *info);

struct daemon_dsn;

/*
 * Bounce messages for messages of queue, from MAILER-DAEMON@hostname;
 * stored ones are handed to queued(arg, ...) through mailbox.  NULL when
 * memory runs out.
 */
struct daemon_dsn *daemon_dsn_new(sp_queue *queue,
                                  struct daemon_mailbox *mailbox,
                                  const char *hostname, daemon_queued_fn queued,
                                  void *arg);

/*
 * Tell the sender of message id that delivery to rcpts[0..count) failed:
 * a multipart/report (RFC 3464) with the original header section, from
 * the null reverse-path, submitted to the spool.  Nothing for a message
 * whose sender is already null (a bounce is never bounced) or that is
 * gone.  On the loop; logs what it does.
 */
void daemon_dsn_send(struct daemon_dsn *dsn, const char *id,
                     const struct daemon_dsn_rcpt *rcpts, size_t count);

/*
 * Stop handing bounces over (those still being stored stay in the spool
 * for the next start), and free dsn once none is in flight.
 */
void daemon_dsn_free(struct daemon_dsn *dsn);

/*
 * Which destination a domain's mail waits in when rules group domains by
 * their MX host: its MX is looked up once an hour (five minutes after a
 * failed lookup) and jobs wait for the answer.  NULL when memory runs
 * out.
 */
struct daemon_mxgroups *daemon_mxgroups_new(sp_sched *sched,
                                            sp_dns_resolver *resolver,
                                            daemon_place_fn place, void *arg);

/*
 * Place job for domain through place: at once when domain's group is
 * known, else when its MX answer comes.  job becomes the groups'.
 */
void daemon_mxgroups_place(struct daemon_mxgroups *groups, const char *domain,
                           daemon_pending_job *job, int64_t now_ms);

/* Forget everything, cancelling lookups; jobs still waiting are freed. */
void daemon_mxgroups_free(struct daemon_mxgroups *groups);

/* ------------------------------------------------------------------------
 * Events: moved from the spool, where they are committed with what they
 * describe, to the event store, on a thread of their own.
 */

struct daemon_event_pump;

/* The wall clock in milliseconds since the epoch (event_pump.c). */
int64_t daemon_now_ms(void);

/*
 * A worker thread's pause: wait on wake (with lock) up to ms, or less when
 * *stopping is set; returns *stopping.  Shared by the daemon's threads.
 */
bool daemon_thread_wait(pthread_mutex_t *lock, pthread_cond_t *wake,
                        const bool *stopping, int64_t ms);

/*
 * Start moving the events of data_dir's spool, and pruning the store of
 * events older than retention_seconds (0: none); NULL with err on failure.
 */
struct daemon_event_pump *daemon_event_pump_start(const char *data_dir,
                                                  int64_t retention_seconds,
                                                  sp_error *err);

/* Move what is left (after the spool's writer has stopped), then stop. */
void daemon_event_pump_stop(struct daemon_event_pump *pump);

struct daemon_webhooks;

/* Start sending events to the webhooks of the store; NULL with err. */
struct daemon_webhooks *daemon_webhooks_start(const sp_config *config,
                                              sp_error *err);

/* Stop: a POST in progress ends first (at most its timeout). */
void daemon_webhooks_stop(struct daemon_webhooks *hooks);

/* What the SMTP service uses, borrowed from the daemon. */
/*
 * DMARC aggregate reports by mail (reports.c): mail to the addresses of
 * dmarc_report_addresses is stored as reports by a thread of its own.
 */
struct daemon_reports;

/* Whether recipient is one of dmarc_report_addresses (any case). */
bool daemon_reports_address(const sp_config *config, const char *recipient);

/* Start the thread, with its own store connection; SP_OK or err. */
int daemon_reports_start(const sp_config *config, struct daemon_reports **out,
                         sp_error *err);

/*
 * The answer for one message, on the report thread: rc is SP_OK once the
 * store has it (reports, or the message in the invalid bucket), summary
 * says what it held.
 */
typedef void daemon_reports_done_fn(void *arg, int rc, const char *summary);

/*
 * Hand over a message (copied) received for report addresses; source
 * names it in the store.  done is called exactly once, on the report
 * thread.  SP_ENOMEM, and then done is not called.
 */
int daemon_reports_submit(struct daemon_reports *reports, const char *data,
                          size_t len, const char *source,
                          daemon_reports_done_fn *done, void *arg);

/* Take the messages in hand, then stop the thread.  NULL is ignored. */
void daemon_reports_stop(struct daemon_reports *reports);

struct daemon_smtp_deps {
    const sp_config *config;
    struct event_base *base;
    sp_queue *queue;
    sp_store *store; /* API keys */
    struct daemon_mailbox *mailbox;
    struct daemon_signer *signer; /* DKIM at acceptance */
    const char *hostname;
    struct daemon_deliver *deliver; /* told of each stored message */
    struct daemon_reports *reports; /* mail to the report addresses */
};

struct daemon_smtp;

/*
 * The HTTP API's way in (inject.c): its injector's functions take
 * messages through the signer and the spool as SMTP's are taken.
 */
struct daemon_inject {
    struct daemon_smtp_deps deps;
    sp_http_injector ops; /* for sp_http_options.injector */
};

/* Fill inject (deps copied, their objects borrowed). */
void daemon_inject_init(struct daemon_inject *inject,
                        const struct daemon_smtp_deps *deps);

/*
 * Listen on every address of smtp_listen; log one line per listener.
 * SP_EIO naming the address when one cannot be bound.
 */
int daemon_smtp_start(const struct daemon_smtp_deps *deps,
                      struct daemon_smtp **out, sp_error *err);

/*
 * Stop listening and close every connection; messages being committed
 * finish first (their sessions are then closed without a reply).
 */
void daemon_smtp_stop(struct daemon_smtp *smtp);

#endif /* SP_DAEMON_H */
