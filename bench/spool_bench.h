/*
 * spool_bench.h: names shared by the files of the spool benchmark.
 *
 *   spool_bench.c   main: the submitting threads, the writer thread that
 *                   groups their messages, the timing and the table
 *   spool_stores.c  the three designs compared, behind one table of
 *                   functions each: SQLite, an append-only log of our
 *                   own, and one file per message
 *   spool_library.c the spool that was built from the choice, through
 *                   its public interface (queue.h)
 *
 * Every store function returns 0, or -1 with a sentence in
 * why[SPOOL_WHY_SIZE]; the benchmark stops at the first failure, so no
 * figure is printed for work that did not reach the disk.
 */
#ifndef SPOOL_BENCH_H
#define SPOOL_BENCH_H

#include <stddef.h>
#include <stdint.h>

#define SPOOL_WHY_SIZE 400

/* One message as a submitting session hands it over. */
typedef struct spool_msg {
    uint64_t number;               /* unique in the run, the queue id */
    int64_t created_ms;            /* when it was submitted */
    const char *sender;            /* reverse-path */
    const char *const *recipients; /* forward-paths */
    size_t recipient_count;
    const char *client_ip;
    const void *data; /* the message, len bytes; owned by the caller */
    size_t len;
} spool_msg;

/*
 * A design.  prepare (may be NULL) runs in the submitting thread before
 * the message joins the writer's queue, as a Postfix smtpd writes and
 * flushes its own queue file; commit runs in the one writer thread with
 * every message waiting at that moment, and returns only when all of them
 * are durable.  A store with no commit does the whole submission in
 * prepare (sealpost's spool, which groups on its own writer thread).
 */
typedef struct spool_store_ops {
    const char *name; /* as printed: design=sqlite */
    int (*open)(const char *dir, void **store, char *why);
    int (*prepare)(void *store, const spool_msg *msg, char *why);
    int (*commit)(void *store, const spool_msg *const *msgs, size_t count,
                  char *why);
    void (*close)(void *store);
    uint64_t (*flushes)(void *store); /* groups, when the store makes them
                                         itself; NULL: the harness's */
} spool_store_ops;

extern const spool_store_ops spool_sqlite_ops;
extern const spool_store_ops spool_sqlite_ckpt_ops;
extern const spool_store_ops spool_log_ops;
extern const spool_store_ops spool_files_ops;
extern const spool_store_ops spool_library_ops;

#endif /* SPOOL_BENCH_H */
