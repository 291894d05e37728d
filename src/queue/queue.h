/*
 * queue.h: the public face of sealpost's queue: the spool that keeps every
 * accepted message until it is delivered, and the scheduler, which
 * decides what is delivered when.
 *
 * What it owns: the spool (spool.c and the files it names) and the
 * scheduler (schedule.c).  A message is durable before its submission
 * completes: written and flushed to stable storage.  Submissions from
 * many sessions, and the outcomes of delivery attempts, are committed in
 * groups by one writer thread, so one flush serves many of them.  After a
 * crash at any instant, opening the spool again finds every message whose
 * submission completed, intact, with its state; nothing half written is
 * ever returned.
 *
 * The storage behind the spool was chosen by measurement; doc/spool.md
 * gives the figures.  The daemon and the command line may open one spool
 * at the same time (the command line to list, show and delete).
 *
 * Errors: SP_EIO when storage fails (the message is not accepted; the
 * server answers 4xx and keeps serving), SP_ELIMIT when free space is
 * under the configured threshold, SP_ENOTFOUND for an unknown id.
 *
 * With a threshold, the spool also keeps a reserve file, so that deleting
 * messages still works when something else has filled the filesystem.
 */
#ifndef SP_QUEUE_H
#define SP_QUEUE_H

#include "base/base.h"

#define SP_QUEUE_ID_SIZE 24 /* a queue id with its NUL */

typedef struct sp_queue sp_queue;

typedef struct sp_queue_options {
    uint64_t min_free_bytes; /* refuse submissions below this free space
                                on the spool's filesystem (0: none) */
    unsigned max_batch;      /* most messages in one commit (0: default) */
    bool no_writer;          /* open for reading and deleting only (the
                                command line): no writer thread */
} sp_queue_options;

/* What a message carries besides its bytes. */
typedef struct sp_queue_envelope {
    const char *sender;            /* reverse-path, "" for <> */
    const char *const *recipients; /* forward-paths */
    size_t recipient_count;
    const char *client_ip;    /* where it came from */
    const char *identity;     /* authenticated identity, or "" */
    const int64_t *dkim_keys; /* store ids of the DKIM keys that signed
                                 the message (sp_queue_key_count) */
    size_t dkim_key_count;
    const char *event;        /* an event (JSON) stored in the same commit, for
                                 sp_queue_events_take; NULL for none */
    const char *event_fields; /* a JSON object of the fields each event of
                                 the message carries; NULL or "" for none */
    int64_t not_before_ms;    /* no delivery before (ms since the epoch:
                                 each recipient's first next_try_ms); 0
                                 for at once */
} sp_queue_envelope;

/* States of a message in the spool. */
typedef enum sp_queue_state {
    SP_QUEUE_QUEUED, /* accepted; some recipient is still pending */
} sp_queue_state;

const char *sp_queue_state_name(sp_queue_state state);

/* Where one recipient of a message stands. */
typedef enum sp_queue_rcpt_state {
    SP_QUEUE_RCPT_PENDING,   /* to be delivered, from next_try_ms on */
    SP_QUEUE_RCPT_DELIVERED, /* the receiver took it (2xx) */
    SP_QUEUE_RCPT_FAILED,    /* given up: refused (5xx) or expired */
} sp_queue_rcpt_state;

const char *sp_queue_rcpt_state_name(sp_queue_rcpt_state state);

/* A recipient's delivery state; reply owned by the queue call. */
typedef struct sp_queue_rcpt {
    sp_queue_rcpt_state state;
    unsigned attempts;   /* delivery attempts recorded */
    int64_t next_try_ms; /* pending: not before this (ms since the
                            epoch; 0 at acceptance: at once) */
    const char *reply;   /* the last reply or verdict, "" before any */
} sp_queue_rcpt;

/* A stored message's description; strings owned by the queue call. */
typedef struct sp_queue_info {
    char id[SP_QUEUE_ID_SIZE];
    const char *sender;
    const char *const *recipients;
    size_t recipient_count;
    const char *client_ip;
    const char *identity;
    uint64_t size;            /* octets of the message */
    int64_t created_ms;       /* when it was accepted, ms since the epoch */
    const char *event_fields; /* as submitted; "" for none */
    sp_queue_state state;
    const sp_queue_rcpt *rcpt; /* recipient_count states, in the order
                                  of recipients */
} sp_queue_info;

/*
 * Open the spool in dir (made if missing, mode 0700), recovering it after
 * a crash, and start its writer thread unless options->no_writer.
 * options may be NULL (defaults, with a writer).  SP_ESTATE when another
 * process holds the spool's writer lock; SP_EINVAL for a spool written by
 * a newer sealpost; SP_EIO; SP_ENOMEM.
 */
int sp_queue_open(const char *dir, const sp_queue_options *options,
                  sp_queue **out, sp_error *err);

/*
 * Called once per submission, from the writer thread, when the message is
 * durable (rc SP_OK) or could not be stored (rc and err say why).  The
 * callee must not call back into the queue from this thread for longer
 * than it takes to hand the result over (a daemon posts it to its loop).
 */
typedef void (*sp_queue_done_fn)(void *arg, int rc, const char *id,
                                 const sp_error *err);

/*
 * A new queue id, for a message about to be submitted: the server writes
 * it into the Received field it adds before submitting.
 */
void sp_queue_new_id(sp_queue *queue, char id[SP_QUEUE_ID_SIZE]);

/*
 * Submit a message: envelope and data are copied before this returns.
 * When id holds one from sp_queue_new_id, the message gets it; when id is
 * "", a new one is written there.  done runs later.  SP_ELIMIT
 * (free space under the threshold) and SP_EIO (the writer stopped) are
 * returned at once, without calling done.
 * Also returned at once: SP_EINVAL (no sender or recipient, no done, or
 * an id not from sp_queue_new_id), SP_ESTATE (opened with no_writer),
 * SP_ENOMEM.  An id submitted twice fails the second time through done,
 * with SP_EINVAL.
 */
int sp_queue_submit(sp_queue *queue, const sp_queue_envelope *envelope,
                    const void *data, size_t len, sp_queue_done_fn done,
                    void *arg, char id[SP_QUEUE_ID_SIZE], sp_error *err);

/*
 * Whether a message of octets (0 when the size is not known yet) would
 * leave the spool's free space above the threshold; MAIL answers 452 if
 * not.  Always true without a threshold.  The free space counted is the
 * filesystem's, plus free pages inside the spool, minus what the spool
 * has written but not yet settled; see spool_room.c.
 */
bool sp_queue_has_room(sp_queue *queue, uint64_t octets);

/*
 * Call each for every message, oldest first.  each may call
 * sp_queue_read, but deletes must wait until the list has returned.
 */
int sp_queue_list(sp_queue *queue,
                  void (*each)(void *arg, const sp_queue_info *info), void *arg,
                  sp_error *err);

/*
 * One message: its description to each (as list does) and its bytes
 * appended to data (when data is not NULL).
 */
int sp_queue_read(sp_queue *queue, const char *id,
                  void (*each)(void *arg, const sp_queue_info *info), void *arg,
                  sp_buf *data, sp_error *err);

/* One delivery attempt's outcome for one recipient of a message. */
typedef struct sp_queue_outcome {
    size_t position;           /* index into the message's recipients */
    sp_queue_rcpt_state state; /* DELIVERED, FAILED, or PENDING again */
    int64_t next_try_ms;       /* PENDING: when to try again */
    const char *reply;         /* the reply or verdict, copied */
    const char *event;         /* an event (JSON) stored in the same
                                  commit, copied; NULL for none */
} sp_queue_outcome;

/*
 * Called once per sp_queue_record, from the writer thread, when the
 * outcomes are durable (rc SP_OK) or could not be stored.  finished: no
 * recipient is pending any more and the message has left the spool.  The
 * same rules as for sp_queue_done_fn apply.
 */
typedef void (*sp_queue_recorded_fn)(void *arg, int rc, const char *id,
                                     bool finished, const sp_error *err);

/*
 * Record the outcomes of a delivery attempt for message id: each named
 * recipient takes the outcome's state, next try and reply, and one more
 * attempt.  Outcomes are committed by the writer thread together with
 * submissions and other outcomes (one flush for many).  When no
 * recipient of the message is left pending, the message is deleted in
 * the same transaction.  Returned at once: SP_EINVAL (no outcomes, a
 * text that is not a queue id, no done), SP_ESTATE (no writer),
 * SP_ENOMEM.  Through done: SP_ENOTFOUND for a message not in the spool,
 * SP_EINVAL for a position out of range (nothing of it is recorded),
 * SP_EIO.
 */
int sp_queue_record(sp_queue *queue, const char *id,
                    const sp_queue_outcome *outcomes, size_t count,
                    sp_queue_recorded_fn done, void *arg, sp_error *err);

/*
 * Events stored with submissions and outcomes, in the order they were
 * committed: the oldest up to max, each through each(arg, seq, text),
 * where seq orders them.  They stay until sp_queue_events_forget, so a
 * crash between taking and storing them elsewhere loses none (the next
 * take gives them again).  SP_EIO, SP_ENOMEM.
 */
int sp_queue_events_take(sp_queue *queue, size_t max,
                         void (*each)(void *arg, int64_t seq,
                                      const char *event),
                         void *arg, sp_error *err);

/*
 * Store an event that belongs to nothing in the spool (a refusal: no
 * message was accepted) with the writer's next commit, for
 * sp_queue_events_take.  Returned at once, nothing waits for the flush:
 * an event of a commit that fails is lost with it.  SP_EINVAL (no
 * event), SP_ESTATE (no writer), SP_EIO (closing), SP_ENOMEM.
 */
int sp_queue_event(sp_queue *queue, const char *event, sp_error *err);

/* Forget the events up to seq, once they are kept elsewhere.  SP_EIO. */
int sp_queue_events_forget(sp_queue *queue, int64_t seq, sp_error *err);

/*
 * Remove a message for good (durable when this returns).  read and
 * delete return SP_EINVAL for text that is not a queue id.  On a full
 * filesystem, delete gives up the reserve file and tries again.
 */
int sp_queue_delete(sp_queue *queue, const char *id, sp_error *err);

/* Messages in the spool. */
int sp_queue_count(sp_queue *queue, uint64_t *count, sp_error *err);

/*
 * Messages in the spool that carry a signature of the DKIM key whose
 * store id is key (given in their envelope's dkim_keys): while there are
 * any, the key must stay published.
 */
int sp_queue_key_count(sp_queue *queue, int64_t key, uint64_t *count,
                       sp_error *err);

/*
 * The same, in the shape of sp_keys_queued_fn (keys/keys.h), for
 * sp_keys_set_queued(keys, sp_queue_keys_queued, queue).
 */
int sp_queue_keys_queued(void *queue, int64_t key, int64_t *count,
                         sp_error *err);

/*
 * Finish the submissions in hand (each gets its done call), stop the
 * writer and close the spool.
 */
void sp_queue_close(sp_queue *queue);

/* ------------------------------------------------------------------------
 * The scheduler (schedule.c): what waits to be delivered, per destination
 *
 * A job is one message's recipients at one destination (for now the
 * recipient domain).  Jobs not yet due wait for their time; due ones wait
 * in their destination's ready queue.  The owner opens connections when
 * sp_sched_connect_next says so, takes jobs for them with sp_sched_take,
 * and after each attempt records the outcome in the spool, then either
 * drops the job (sp_sched_done) or sets it to try again (sp_sched_retry).
 * No I/O, no clock: every call that needs the time is given it (ms).
 */

typedef struct sp_sched sp_sched;
typedef struct sp_sched_dest sp_sched_dest;

/* How a destination's connections use TLS. */
typedef enum sp_sched_tls {
    SP_SCHED_TLS_MAY,     /* STARTTLS when offered, any certificate;
                             plaintext when the handshake fails */
    SP_SCHED_TLS_ENCRYPT, /* STARTTLS or no delivery; any certificate */
    SP_SCHED_TLS_VERIFY,  /* STARTTLS with a certificate that a trusted
                             authority issued for the host's name */
} sp_sched_tls;

const char *sp_sched_tls_name(sp_sched_tls tls);

/* Limits and policy of one destination. */
typedef struct sp_sched_limits {
    unsigned max_connections;         /* open at once */
    unsigned messages_per_connection; /* then a new connection */
    unsigned rate;                    /* messages per window; 0: none */
    int64_t rate_window_ms;           /* 60000 or 3600000 */
    sp_sched_tls tls;
    char source[256]; /* local addresses to connect from, comma-separated
                         and taken in turn; "" for the kernel's choice */
} sp_sched_limits;

/*
 * Limits for the destinations a pattern covers: "example.com", or
 * "*.example.com" for its subdomains, each its own destination; with
 * shared, all the domains it covers are one destination, named by the
 * pattern.  "mx:" before the pattern matches the most preferred MX host
 * instead of the domain ("mx:*.mail.example.net": every domain whose mail
 * that provider takes), and is always shared.
 */
typedef struct sp_sched_rule {
    char pattern[256];
    bool shared;
    sp_sched_limits limits;
} sp_sched_rule;

typedef struct sp_sched_job {
    struct sp_sched_job *next; /* the scheduler's */
    sp_sched_dest *dest;
    char id[SP_QUEUE_ID_SIZE]; /* the message's queue id */
    int64_t due_ms;            /* not before */
    unsigned attempts;         /* the owner's: attempts made so far */
    size_t count;              /* recipients, as positions in the
                                  message's envelope */
    size_t positions[];
} sp_sched_job;

/*
 * Parse a rule: "[mx:]PATTERN [shared] [connections=N] [messages=N]
 * [rate=N/m|N/h] [tls=may|encrypt|verify] [source=ADDR[,ADDR...]]"; what
 * it leaves out comes from defaults.  SP_ESYNTAX saying what is wrong.
 */
int sp_sched_rule_parse(const char *text, const sp_sched_limits *defaults,
                        sp_sched_rule *rule, sp_error *err);

struct sp_config;

/*
 * The delivery settings of config (delivery_tls, delivery_source, the
 * per-destination limits, delivery_rules) as the defaults and the rules
 * of a scheduler; *rules is the caller's (sp_free).  SP_ESYNTAX naming
 * the setting that is wrong, SP_ENOMEM.
 */
int sp_sched_settings(const struct sp_config *config, sp_sched_limits *defaults,
                      sp_sched_rule **rules, size_t *count, sp_error *err);

/*
 * Set one limit from a rule's "key=value" (connections, messages, rate,
 * tls, source); false, limits unchanged, for an unknown key or a value
 * out of its range.
 */
bool sp_sched_limits_set(sp_sched_limits *limits, const char *key,
                         const char *value);

/*
 * A scheduler: destinations take the limits of the first rule that
 * covers them, or defaults.  Rules are copied.
 */
int sp_sched_new(const sp_sched_limits *defaults, const sp_sched_rule *rules,
                 size_t rule_count, sp_sched **out, sp_error *err);

/*
 * The destination for mail to domain: the pattern of the first shared
 * rule that covers domain, or (mx_host given) of the first "mx:" rule
 * that covers mx_host, else domain itself.
 */
const char *sp_sched_dest_for(const sp_sched *sched, const char *domain,
                              const char *mx_host);

/* Whether any rule matches MX hosts (the owner must look them up). */
bool sp_sched_groups_by_mx(const sp_sched *sched);

/*
 * Add a job for message id's recipients at positions[0..count) at
 * destination dest_name, due at due_ms (ready at once when not after
 * now_ms).  route is the domain whose servers the destination's
 * connections go to: kept from the job that made the destination.
 * *out (when not NULL) is the job, still the scheduler's.  SP_ENOMEM.
 */
int sp_sched_add(sp_sched *sched, const char *dest_name, const char *route,
                 const char *id, const size_t *positions, size_t count,
                 int64_t due_ms, int64_t now_ms, sp_sched_job **out);

/*
 * Make the jobs due by now_ms ready.  Returns when something may next
 * change without a call from the owner (a job falls due, a rate window
 * lets another message go), or INT64_MAX.
 */
int64_t sp_sched_advance(sp_sched *sched, int64_t now_ms);

/*
 * A destination whose ready jobs call for one more connection (more
 * ready jobs than its open connections wait for and carry in their
 * messages_per_connection, under its connection limit and rate), or NULL.  The
 * connection is counted from here, as waiting.
 */
sp_sched_dest *sp_sched_connect_next(sp_sched *sched, int64_t now_ms);

/* A connection of dest stops (-1) or starts again (+1) to wait for a
 * job: sending one, or ready again after it. */
void sp_sched_waiting(sp_sched_dest *dest, int delta);

/* A connection of dest closed; was_waiting as counted last. */
void sp_sched_disconnected(sp_sched_dest *dest, bool was_waiting);

/*
 * The next ready job of dest for a connection that has sent sent_here
 * messages, or NULL when none may go now (none ready, the connection has
 * sent its share, or the rate is spent).  Counts against the rate.
 */
sp_sched_job *sp_sched_take(sp_sched *sched, sp_sched_dest *dest,
                            unsigned sent_here, int64_t now_ms);

/* Every ready job of dest, as a list through next (the destination
 * cannot be reached: the owner records them all as deferred). */
sp_sched_job *sp_sched_take_all(sp_sched *sched, sp_sched_dest *dest);

/* A taken job is finished: freed. */
void sp_sched_done(sp_sched *sched, sp_sched_job *job);

/* A taken job, to try again at due_ms (its positions may have been
 * narrowed by the owner to those still pending). */
int sp_sched_retry(sp_sched *sched, sp_sched_job *job, int64_t due_ms,
                   int64_t now_ms);

/* Seconds to wait after attempts failed attempts: schedule[attempts-1],
 * its last value after that. */
int64_t sp_sched_retry_delay(const int64_t *schedule, size_t count,
                             unsigned attempts);

sp_sched_dest *sp_sched_dest_find(sp_sched *sched, const char *name);
const char *sp_sched_dest_name(const sp_sched_dest *dest);
const char *sp_sched_dest_route(const sp_sched_dest *dest);
const sp_sched_limits *sp_sched_dest_limits(const sp_sched_dest *dest);
size_t sp_sched_dest_ready(const sp_sched_dest *dest);

/* Jobs held, due or not, taken or not. */
size_t sp_sched_jobs(const sp_sched *sched);

void sp_sched_free(sp_sched *sched);

#endif /* SP_QUEUE_H */
