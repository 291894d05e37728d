/*
 * queue.h: the public face of sealpost's queue: the spool that keeps every
 * accepted message until it is delivered, and (later) the scheduler.
 *
 * What it owns today: the spool (spool.c and the files it names).  A
 * message is durable before its submission completes: written and flushed
 * to stable storage.  Submissions from many sessions are committed in
 * groups by one writer thread, so one flush serves many messages.  After a
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
} sp_queue_envelope;

/* States of a message in the spool. */
typedef enum sp_queue_state {
    SP_QUEUE_QUEUED, /* accepted, waiting for delivery */
} sp_queue_state;

const char *sp_queue_state_name(sp_queue_state state);

/* A stored message's description; strings owned by the queue call. */
typedef struct sp_queue_info {
    char id[SP_QUEUE_ID_SIZE];
    const char *sender;
    const char *const *recipients;
    size_t recipient_count;
    const char *client_ip;
    const char *identity;
    uint64_t size;      /* octets of the message */
    int64_t created_ms; /* when it was accepted, ms since the epoch */
    sp_queue_state state;
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

#endif /* SP_QUEUE_H */
