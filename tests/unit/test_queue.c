/*
 * test_queue.c: the spool: messages go in and come back byte for byte,
 * ids are unique and ordered, every submission gets exactly one done
 * call, concurrent submissions share flushes, closing drains, a second
 * opener reads and deletes while the writer works, storage errors fail
 * only their group, and every allocation failure is reported.  Delivery
 * outcomes are recorded per recipient, survive a reopen, and remove the
 * message with its last pending recipient.  Events committed with them
 * come out in order until forgotten.
 *
 * Crash safety under SIGKILL and a full filesystem are proved by the
 * integration tests test_spool_crash.py and test_spool_full.py.
 */
#include "testlib.h"

#include "queue/queue_int.h"

#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#define MANY_THREADS 16
#define PER_THREAD   100

/* Done calls counted for a set of submissions. */
struct tally {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    size_t calls; /* done calls so far */
    size_t ok;    /* of which SP_OK */
    int last_rc;  /* the rc of the last call */
    char last_text[320];
};

/* One submission's record, the arg of its done. */
struct record {
    struct tally *tally;
    int calls; /* must end at exactly 1 */
    int rc;
    char id[SP_QUEUE_ID_SIZE]; /* as done reported it */
};

static const char *const two_recipients[] = {"a@example.org", "b@example.net"};

static void
tally_init(struct tally *tally)
{
    memset(tally, 0, sizeof(*tally));
    pthread_mutex_init(&tally->lock, NULL);
    pthread_cond_init(&tally->cond, NULL);
}

static void
tally_wait(struct tally *tally, size_t calls)
{
    pthread_mutex_lock(&tally->lock);
    while (tally->calls < calls)
        pthread_cond_wait(&tally->cond, &tally->lock);
    pthread_mutex_unlock(&tally->lock);
}

static void
tally_free(struct tally *tally)
{
    pthread_mutex_destroy(&tally->lock);
    pthread_cond_destroy(&tally->cond);
}

static void
on_done(void *arg, int rc, const char *id, const sp_error *err)
{
    struct record *record = arg;
    struct tally *tally = record->tally;

    pthread_mutex_lock(&tally->lock);
    record->calls++;
    record->rc = rc;
    snprintf(record->id, sizeof(record->id), "%s", id);
    tally->calls++;
    tally->ok += rc == SP_OK;
    tally->last_rc = rc;
    snprintf(tally->last_text, sizeof(tally->last_text), "%s", err->text);
    pthread_cond_broadcast(&tally->cond);
    pthread_mutex_unlock(&tally->lock);
}

static sp_queue *
open_queue(const char *dir, bool no_writer)
{
    sp_queue_options options = {.no_writer = no_writer};
    sp_queue *queue = NULL;
    sp_error err;

    if (sp_queue_open(dir, &options, &queue, &err) != SP_OK)
        fail_msg("open %s: %s", dir, err.text);
    return queue;
}

/*
 * Submit text for rcpt_count of two_recipients, with a new id written to
 * id; returns the rc.
 */
static int
submit(sp_queue *queue, const char *sender, const char *text, size_t len,
       size_t rcpt_count, struct record *record, char id[SP_QUEUE_ID_SIZE])
{
    sp_queue_envelope envelope = {
        .sender = sender,
        .recipients = two_recipients,
        .recipient_count = rcpt_count,
        .client_ip = "192.0.2.1",
        .identity = "user@example.com",
    };
    sp_error err;

    id[0] = '\0'; /* a new id, not one from sp_queue_new_id */
    return sp_queue_submit(queue, &envelope, text, len, on_done, record, id,
                           &err);
}

/* What list saw. */
struct listing {
    char ids[64][SP_QUEUE_ID_SIZE];
    char senders[64][64];
    size_t recipients[64];
    uint64_t sizes[64];
    size_t count;
};

static void
on_list(void *arg, const sp_queue_info *info)
{
    struct listing *listing = arg;

    assert_true(listing->count < 64);
    snprintf(listing->ids[listing->count], SP_QUEUE_ID_SIZE, "%s", info->id);
    snprintf(listing->senders[listing->count], 64, "%s", info->sender);
    listing->recipients[listing->count] = info->recipient_count;
    listing->sizes[listing->count] = info->size;
    assert_int_equal(info->state, SP_QUEUE_QUEUED);
    assert_true(info->created_ms > 1600000000000);
    listing->count++;
}

static void
on_read_check(void *arg, const sp_queue_info *info)
{
    int *seen = arg;

    assert_string_equal(info->client_ip, "192.0.2.1");
    assert_string_equal(info->identity, "user@example.com");
    assert_string_equal(info->recipients[0], "a@example.org");
    if (info->recipient_count == 2)
        assert_string_equal(info->recipients[1], "b@example.net");
    (*seen)++;
}

/* Submit with the DKIM key ids given; waits for the commit. */
static void
submit_signed(sp_queue *queue, const int64_t *keys, size_t key_count,
              char id[SP_QUEUE_ID_SIZE])
{
    sp_queue_envelope envelope = {
        .sender = "s@example.com",
        .recipients = two_recipients,
        .recipient_count = 1,
        .dkim_keys = keys,
        .dkim_key_count = key_count,
    };
    struct record record = {0};
    struct tally tally;
    sp_error err;

    tally_init(&tally);
    record.tally = &tally;
    id[0] = '\0';
    assert_int_equal(sp_queue_submit(queue, &envelope, "m\r\n", 3, on_done,
                                     &record, id, &err),
                     SP_OK);
    tally_wait(&tally, 1);
    assert_int_equal(record.rc, SP_OK);
    tally_free(&tally);
}

static uint64_t
key_count(sp_queue *queue, int64_t key)
{
    uint64_t count = UINT64_MAX;
    sp_error err;

    assert_int_equal(sp_queue_key_count(queue, key, &count, &err), SP_OK);
    return count;
}

/* A message keeps its keys counted until it is deleted. */
static void
messages_count_the_keys_that_signed_them(void **state)
{
    static const int64_t both[] = {7, 9}, one[] = {9};
    char dir[256], first[SP_QUEUE_ID_SIZE], second[SP_QUEUE_ID_SIZE];
    char third[SP_QUEUE_ID_SIZE];
    sp_queue *queue, *reader;
    sp_error err;

    (void)state;
    testlib_temp_dir("queue", dir, sizeof(dir));
    queue = open_queue(dir, false);
    submit_signed(queue, both, 2, first);
    submit_signed(queue, one, 1, second);
    submit_signed(queue, NULL, 0, third);
    assert_int_equal(key_count(queue, 7), 1);
    assert_int_equal(key_count(queue, 9), 2);
    assert_int_equal(key_count(queue, 5), 0);

    /* Another process (the command line) sees the same. */
    reader = open_queue(dir, true);
    assert_int_equal(key_count(reader, 9), 2);
    assert_int_equal(sp_queue_delete(reader, first, &err), SP_OK);
    sp_queue_close(reader);
    assert_int_equal(key_count(queue, 7), 0);
    assert_int_equal(key_count(queue, 9), 1);
    assert_int_equal(sp_queue_delete(queue, second, &err), SP_OK);
    assert_int_equal(key_count(queue, 9), 0);
    sp_queue_close(queue);
    testlib_remove_dir(dir);
}

/* What a record's done call reported. */
struct recorded {
    struct tally tally;
    int rc;
    bool finished;
    char text[320];
};

static void
on_recorded(void *arg, int rc, const char *id, bool finished,
            const sp_error *err)
{
    struct recorded *recorded = arg;

    (void)id;
    pthread_mutex_lock(&recorded->tally.lock);
    recorded->rc = rc;
    recorded->finished = finished;
    snprintf(recorded->text, sizeof(recorded->text), "%s",
             rc == SP_OK ? "" : err->text);
    recorded->tally.calls++;
    pthread_cond_broadcast(&recorded->tally.cond);
    pthread_mutex_unlock(&recorded->tally.lock);
}

/* Record outcomes for id and wait for the writer; returns the done rc. */
static int
record_outcomes(sp_queue *queue, const char *id,
                const sp_queue_outcome *outcomes, size_t count, bool *finished)
{
    struct recorded recorded;
    sp_error err;

    memset(&recorded, 0, sizeof(recorded));
    tally_init(&recorded.tally);
    assert_int_equal(sp_queue_record(queue, id, outcomes, count, on_recorded,
                                     &recorded, &err),
                     SP_OK);
    tally_wait(&recorded.tally, 1);
    tally_free(&recorded.tally);
    if (finished != NULL)
        *finished = recorded.finished;
    if (recorded.rc != SP_OK)
        assert_non_null(strstr(recorded.text, id));
    return recorded.rc;
}

/* A copy of the recipients' states that sp_queue_read described. */
struct states {
    size_t count;
    sp_queue_rcpt rcpt[2];
    char replies[2][64];
};

static void
on_states(void *arg, const sp_queue_info *info)
{
    struct states *states = arg;

    assert_non_null(info->rcpt);
    assert_true(info->recipient_count <= 2);
    states->count = info->recipient_count;
    for (size_t i = 0; i < info->recipient_count; i++) {
        states->rcpt[i] = info->rcpt[i];
        snprintf(states->replies[i], sizeof(states->replies[i]), "%s",
                 info->rcpt[i].reply);
        states->rcpt[i].reply = states->replies[i];
    }
}

/* Fill states (its replies point into itself) from message id. */
static void
read_states(sp_queue *queue, const char *id, struct states *states)
{
    sp_error err;

    memset(states, 0, sizeof(*states));
    assert_int_equal(sp_queue_read(queue, id, on_states, states, NULL, &err),
                     SP_OK);
}

/* A spool written by the first schema opens, upgraded, messages kept. */
static void
first_schema_is_upgraded(void **state)
{
    char dir[256], path[300], id[SP_QUEUE_ID_SIZE];
    struct states states;
    sqlite3 *db;
    sp_queue *queue;
    uint64_t count = 0;
    sp_error err;

    (void)state;
    testlib_temp_dir("queue", dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/spool.db", dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     "CREATE TABLE messages (id INTEGER PRIMARY KEY,"
                     " created_ms INTEGER NOT NULL, state TEXT NOT NULL,"
                     " sender TEXT NOT NULL, client_ip TEXT NOT NULL,"
                     " identity TEXT NOT NULL, size INTEGER NOT NULL);"
                     "CREATE TABLE recipients (message INTEGER NOT NULL,"
                     " position INTEGER NOT NULL, address TEXT NOT NULL,"
                     " PRIMARY KEY (message, position)) WITHOUT ROWID;"
                     "CREATE TABLE bodies (id INTEGER PRIMARY KEY,"
                     " data BLOB NOT NULL);"
                     "INSERT INTO messages VALUES (1835008, 1, 'queued',"
                     " 'a@example.com', '', '', 1);"
                     "INSERT INTO recipients VALUES (1835008, 0,"
                     " 'b@example.org');"
                     "INSERT INTO bodies VALUES (1835008, x'41');"
                     "PRAGMA user_version = 1;",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);

    queue = open_queue(dir, false);
    assert_int_equal(sp_queue_count(queue, &count, &err), SP_OK);
    assert_int_equal(count, 1);
    assert_int_equal(key_count(queue, 1), 0);
    read_states(queue, "000000001R000", &states);
    assert_int_equal(states.count, 1);
    assert_int_equal(states.rcpt[0].state, SP_QUEUE_RCPT_PENDING);
    assert_int_equal(states.rcpt[0].attempts, 0);
    submit_signed(queue, (const int64_t[]){1}, 1, id);
    assert_int_equal(key_count(queue, 1), 1);
    sp_queue_close(queue);
    testlib_remove_dir(dir);
}

static void
round_trip_submit_list_read_delete(void **state)
{
    static const char *texts[] = {"first message\r\n", "",
                                  "third\r\nwith\0nul\r\n"};
    static const size_t lens[] = {15, 0, 18};
    char dir[256], ids[3][SP_QUEUE_ID_SIZE];
    struct record records[3] = {{0}};
    struct listing listing = {0};
    struct tally tally;
    sp_buf data = SP_BUF_INIT;
    sp_queue *queue;
    uint64_t count = 0;
    int seen = 0;
    sp_error err;

    (void)state;
    testlib_temp_dir("queue", dir, sizeof(dir));
    tally_init(&tally);
    queue = open_queue(dir, false);
    for (int i = 0; i < 3; i++) {
        records[i].tally = &tally;
        assert_int_equal(submit(queue, i == 1 ? "" : "s@example.com", texts[i],
                                lens[i], (size_t)(i % 2 + 1), &records[i],
                                ids[i]),
                         SP_OK);
        assert_int_equal(strlen(ids[i]), QUEUE_ID_CHARS);
    }
    tally_wait(&tally, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(records[i].calls, 1);
        assert_int_equal(records[i].rc, SP_OK);
        assert_string_equal(records[i].id, ids[i]);
    }

    /* Listed oldest first, with their envelopes. */
    assert_int_equal(sp_queue_list(queue, on_list, &listing, &err), SP_OK);
    assert_int_equal(listing.count, 3);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(listing.ids[i], ids[i]);
        assert_int_equal(listing.sizes[i], lens[i]);
        assert_int_equal(listing.recipients[i], (size_t)(i % 2 + 1));
    }
    assert_string_equal(listing.senders[1], "");

    /* Bytes come back exactly, NUL included, appended to data. */
    for (int i = 0; i < 3; i++) {
        sp_buf_reset(&data);
        assert_int_equal(sp_buf_append(&data, "x", 1), SP_OK);
        assert_int_equal(
            sp_queue_read(queue, ids[i], on_read_check, &seen, &data, &err),
            SP_OK);
        assert_int_equal(data.len, lens[i] + 1);
        assert_memory_equal(data.data + 1, texts[i], lens[i]);
    }
    assert_int_equal(seen, 3);

    /* Deleted is gone; unknown and malformed ids are told apart. */
    assert_int_equal(sp_queue_delete(queue, ids[1], &err), SP_OK);
    assert_int_equal(sp_queue_count(queue, &count, &err), SP_OK);
    assert_int_equal(count, 2);
    assert_int_equal(sp_queue_read(queue, ids[1], NULL, NULL, &data, &err),
                     SP_ENOTFOUND);
    assert_int_equal(sp_queue_delete(queue, ids[1], &err), SP_ENOTFOUND);
    assert_int_equal(sp_queue_delete(queue, "not-an-id", &err), SP_EINVAL);
    assert_int_equal(
        sp_queue_read(queue, "ZZZZZZZZZZZZZ", NULL, NULL, NULL, &err),
        SP_EINVAL);
    sp_queue_close(queue);
    sp_buf_free(&data);
    tally_free(&tally);
    testlib_remove_dir(dir);
}

static void
ids_unique_ordered_and_parse_back(void **state)
{
    enum { COUNT = 2000 };
    static char ids[COUNT][SP_QUEUE_ID_SIZE];
    static struct record records[COUNT];
    struct tally tally;
    char dir[256], again[SP_QUEUE_ID_SIZE];
    sp_queue *queue;
    uint64_t number;

    (void)state;
    testlib_temp_dir("queue", dir, sizeof(dir));
    tally_init(&tally);
    queue = open_queue(dir, false);
    for (int i = 0; i < COUNT; i++) {
        records[i] = (struct record){.tally = &tally};
        assert_int_equal(
            submit(queue, "s@example.com", "m", 1, 1, &records[i], ids[i]),
            SP_OK);
        if (i > 0)
            assert_true(strcmp(ids[i - 1], ids[i]) < 0);
        assert_int_equal(queue__id_parse(ids[i], &number), SP_OK);
        queue__id_format(number, again);
        assert_string_equal(again, ids[i]);
    }
    tally_wait(&tally, COUNT);
    for (int i = 0; i < COUNT; i++) {
        assert_int_equal(records[i].calls, 1);
        assert_string_equal(records[i].id, ids[i]);
    }
    sp_queue_close(queue);

    /* After a reopen, ids go on above the highest stored. */
    queue = open_queue(dir, false);
    records[0] = (struct record){.tally = &tally};
    assert_int_equal(
        submit(queue, "s@example.com", "m", 1, 1, &records[0], again), SP_OK);
    assert_true(strcmp(again, ids[COUNT - 1]) > 0);
    sp_queue_close(queue);
    tally_free(&tally);
    testlib_remove_dir(dir);
}

/* Submit "m" under the id id holds (from sp_queue_new_id, or not). */
static int
submit_given(sp_queue *queue, struct record *record, char id[SP_QUEUE_ID_SIZE])
{
    sp_queue_envelope envelope = {
        .sender = "s@example.com",
        .recipients = two_recipients,
        .recipient_count = 1,
    };
    sp_error err;

    return sp_queue_submit(queue, &envelope, "m", 1, on_done, record, id, &err);
}

static void
ids_from_new_id_are_kept_and_used_once(void **state)
{
    char dir[256], given[SP_QUEUE_ID_SIZE], unused[SP_QUEUE_ID_SIZE];
    char id[SP_QUEUE_ID_SIZE], later[SP_QUEUE_ID_SIZE] = "";
    struct record records[4] = {{0}};
    struct listing listing = {0};
    struct tally tally;
    sp_queue *queue;
    sp_error err;

    (void)state;
    testlib_temp_dir("queue", dir, sizeof(dir));
    tally_init(&tally);
    for (int i = 0; i < 4; i++)
        records[i].tally = &tally;
    queue = open_queue(dir, false);

    /* An id given before the submission is the one the message gets. */
    sp_queue_new_id(queue, given);
    sp_queue_new_id(queue, unused);
    assert_true(strcmp(given, unused) < 0);
    memcpy(id, given, sizeof(id));
    assert_int_equal(submit_given(queue, &records[0], id), SP_OK);
    assert_string_equal(id, given);
    assert_int_equal(submit_given(queue, &records[1], later), SP_OK);
    assert_true(strcmp(later, unused) > 0);
    tally_wait(&tally, 2);
    assert_int_equal(records[0].rc, SP_OK);
    assert_string_equal(records[0].id, given);

    /* Given twice: the second fails alone, through its done call. */
    memcpy(id, given, sizeof(id));
    assert_int_equal(submit_given(queue, &records[2], id), SP_OK);
    later[0] = '\0';
    assert_int_equal(submit_given(queue, &records[3], later), SP_OK);
    tally_wait(&tally, 4);
    assert_int_equal(records[2].rc, SP_EINVAL);
    assert_int_equal(records[3].rc, SP_OK);

    /* Ids this spool never gave are refused at once. */
    memcpy(id, "7ZZZZZZZZZZZZ", 14);
    assert_int_equal(submit_given(queue, &records[0], id), SP_EINVAL);
    memcpy(id, "garbage", 8);
    assert_int_equal(submit_given(queue, &records[0], id), SP_EINVAL);
    assert_int_equal(records[0].calls, 1);

    assert_int_equal(sp_queue_list(queue, on_list, &listing, &err), SP_OK);
    assert_int_equal(listing.count, 3);
    assert_string_equal(listing.ids[0], given);
    sp_queue_close(queue);
    tally_free(&tally);
    testlib_remove_dir(dir);
}

/* One of MANY_THREADS submitters. */
struct submitter {
    pthread_t thread;
    sp_queue *queue;
    struct tally *tally;
    struct record records[PER_THREAD];
};

static void *
submitter_main(void *arg)
{
    struct submitter *self = arg;
    char id[SP_QUEUE_ID_SIZE], text[4096];

    memset(text, 'q', sizeof(text));
    for (int i = 0; i < PER_THREAD; i++) {
        self->records[i].tally = self->tally;
        if (submit(self->queue, "s@example.com", text, sizeof(text), 2,
                   &self->records[i], id) != SP_OK)
            return "submit failed";

        /* Wait for this one, as an SMTP session waits to answer 250. */
        pthread_mutex_lock(&self->tally->lock);
        while (self->records[i].calls == 0)
            pthread_cond_wait(&self->tally->cond, &self->tally->lock);
        pthread_mutex_unlock(&self->tally->lock);
    }
    return NULL;
}

static void
concurrent_submissions_share_flushes(void **state)
{
    static struct submitter subs[MANY_THREADS];
    struct tally tally;
    sp_queue *queue;
    char dir[256];
    uint64_t count = 0, flushes;
    sp_error err;

    (void)state;
    testlib_temp_dir("queue", dir, sizeof(dir));
    tally_init(&tally);
    queue = open_queue(dir, false);
    for (int t = 0; t < MANY_THREADS; t++) {
        subs[t] = (struct submitter){.queue = queue, .tally = &tally};
        assert_int_equal(
            pthread_create(&subs[t].thread, NULL, submitter_main, &subs[t]), 0);
    }
    for (int t = 0; t < MANY_THREADS; t++) {
        void *failed = NULL;

        pthread_join(subs[t].thread, &failed);
        assert_null(failed);
        for (int i = 0; i < PER_THREAD; i++) {
            assert_int_equal(subs[t].records[i].calls, 1);
            assert_int_equal(subs[t].records[i].rc, SP_OK);
        }
    }

    /* Group commit: many messages per flush. */
    flushes = queue__flush_count(queue);
    assert_int_equal(tally.ok, MANY_THREADS * PER_THREAD);
    assert_true(flushes > 0);
    assert_true(flushes < MANY_THREADS * PER_THREAD / 2);
    assert_int_equal(sp_queue_count(queue, &count, &err), SP_OK);
    assert_int_equal(count, MANY_THREADS * PER_THREAD);
    sp_queue_close(queue);
    tally_free(&tally);
    testlib_remove_dir(dir);
}

static void
close_drains_and_reopen_finds_everything(void **state)
{
    enum { COUNT = 300 };
    static struct record records[COUNT];
    char dir[256], id[SP_QUEUE_ID_SIZE];
    struct tally tally;
    sp_queue *queue;
    uint64_t count = 0;
    sp_error err;

    (void)state;
    testlib_temp_dir("queue", dir, sizeof(dir));
    tally_init(&tally);
    queue = open_queue(dir, false);
    for (int i = 0; i < COUNT; i++) {
        records[i] = (struct record){.tally = &tally};
        assert_int_equal(
            submit(queue, "s@example.com", "drain", 5, 1, &records[i], id),
            SP_OK);
    }

    /* No wait: close itself must see every submission through. */
    sp_queue_close(queue);
    assert_int_equal(tally.calls, COUNT);
    assert_int_equal(tally.ok, COUNT);
    queue = open_queue(dir, true);
    assert_int_equal(sp_queue_count(queue, &count, &err), SP_OK);
    assert_int_equal(count, COUNT);
    sp_queue_close(queue);
    tally_free(&tally);
    testlib_remove_dir(dir);
}

/* Keeps submitting until told to stop. */
struct busy_writer {
    sp_queue *queue;
    struct tally *tally;
    struct record records[400];
    atomic_bool stop;
    int submitted;
};

static void *
busy_writer_main(void *arg)
{
    struct busy_writer *self = arg;
    char id[SP_QUEUE_ID_SIZE];

    while (!atomic_load(&self->stop) && self->submitted < 400) {
        struct record *record = &self->records[self->submitted];

        record->tally = self->tally;
        if (submit(self->queue, "s@example.com", "busy", 4, 1, record, id) !=
            SP_OK)
            return "submit failed";
        self->submitted++;
        tally_wait(self->tally, (size_t)self->submitted);
    }
    return NULL;
}

static void
on_count(void *arg, const sp_queue_info *info)
{
    (void)info;
    (*(size_t *)arg)++;
}

static void
second_opener_reads_and_deletes_while_the_writer_works(void **state)
{
    static struct busy_writer busy;
    char dir[256], first[SP_QUEUE_ID_SIZE];
    sp_queue *writer, *reader, *intruder = NULL;
    struct tally tally;
    pthread_t thread;
    uint64_t count = 0, before = 0;
    void *failed = NULL;
    sp_error err;

    (void)state;
    testlib_temp_dir("queue", dir, sizeof(dir));
    tally_init(&tally);
    writer = open_queue(dir, false);
    busy = (struct busy_writer){.queue = writer, .tally = &tally};
    assert_int_equal(pthread_create(&thread, NULL, busy_writer_main, &busy), 0);

    /* A second daemon is refused; the command line is not. */
    assert_int_equal(sp_queue_open(dir, NULL, &intruder, &err), SP_ESTATE);
    assert_null(intruder);
    assert_non_null(strstr(err.text, "in use"));
    reader = open_queue(dir, true);
    assert_int_equal(submit(reader, "s@example.com", "x", 1, 1, NULL, first),
                     SP_ESTATE);
    tally_wait(&tally, 20);
    for (int round = 0; round < 20; round++) {
        size_t listed = 0;

        assert_int_equal(sp_queue_count(reader, &count, &err), SP_OK);
        assert_true(count >= before);
        before = count;
        assert_int_equal(sp_queue_list(reader, on_count, &listed, &err), SP_OK);
        assert_true(listed >= count);
    }

    /* A delete from the command line is seen by the daemon's side. */
    atomic_store(&busy.stop, true);
    pthread_join(thread, &failed);
    assert_null(failed);
    assert_int_equal(sp_queue_count(writer, &before, &err), SP_OK);
    assert_int_equal(sp_queue_delete(reader, busy.records[0].id, &err), SP_OK);
    assert_int_equal(sp_queue_count(writer, &count, &err), SP_OK);
    assert_int_equal(count, before - 1);
    sp_queue_close(reader);
    sp_queue_close(writer);
    tally_free(&tally);
    testlib_remove_dir(dir);
}

static void
free_space_threshold_refuses_at_once(void **state)
{
    sp_queue_options options = {.min_free_bytes = UINT64_MAX};
    char dir[256], id[SP_QUEUE_ID_SIZE];
    struct record record = {0};
    struct tally tally;
    sp_queue *queue = NULL;
    sp_error err;

    (void)state;
    testlib_temp_dir("queue", dir, sizeof(dir));
    tally_init(&tally);
    record.tally = &tally;
    assert_int_equal(sp_queue_open(dir, &options, &queue, &err), SP_OK);
    assert_false(sp_queue_has_room(queue, 0));
    assert_int_equal(submit(queue, "s@example.com", "m", 1, 1, &record, id),
                     SP_ELIMIT);
    sp_queue_close(queue);
    assert_int_equal(record.calls, 0);
    tally_free(&tally);
    testlib_remove_dir(dir);
}

/*
 * A file size limit makes the log's writes fail as a full disk does
 * (EFBIG for ENOSPC): the group fails with SP_EIO, and the spool works
 * again as soon as the limit is lifted.
 */
static void
storage_error_fails_the_group_and_the_spool_recovers(void **state)
{
    enum { BIG = 2 << 20 };
    char dir[256], id[SP_QUEUE_ID_SIZE];
    struct record records[3] = {{0}};
    struct rlimit saved, limited;
    struct tally tally;
    sp_queue *queue;
    uint64_t count = 0;
    char *big = malloc(BIG);
    sp_error err;

    (void)state;
    assert_non_null(big);
    memset(big, 'b', BIG);
    testlib_temp_dir("queue", dir, sizeof(dir));
    tally_init(&tally);
    queue = open_queue(dir, false);
    for (int i = 0; i < 3; i++)
        records[i].tally = &tally;
    assert_int_equal(
        submit(queue, "s@example.com", "small", 5, 1, &records[0], id), SP_OK);
    tally_wait(&tally, 1);
    assert_int_equal(records[0].rc, SP_OK);

    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    limited = saved;
    limited.rlim_cur = 1 << 20;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &limited), 0);
    assert_int_equal(
        submit(queue, "s@example.com", big, BIG, 1, &records[1], id), SP_OK);
    tally_wait(&tally, 2);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
    assert_int_equal(records[1].calls, 1);
    assert_int_equal(records[1].rc, SP_EIO);
    assert_non_null(strstr(tally.last_text, "spool"));

    assert_int_equal(
        submit(queue, "s@example.com", big, BIG, 1, &records[2], id), SP_OK);
    tally_wait(&tally, 3);
    assert_int_equal(records[2].rc, SP_OK);
    assert_int_equal(sp_queue_count(queue, &count, &err), SP_OK);
    assert_int_equal(count, 2);
    sp_queue_close(queue);
    tally_free(&tally);
    free(big);
    testlib_remove_dir(dir);
}

static void
allocation_failures_are_reported(void **state)
{
    char dir[256], id[SP_QUEUE_ID_SIZE];
    struct record record = {0};
    struct listing listing = {0};
    sp_buf data = SP_BUF_INIT;
    struct tally tally;
    sp_queue *queue = NULL;
    sp_error err;
    int rc = SP_ENOMEM;

    (void)state;
    testlib_temp_dir("queue", dir, sizeof(dir));
    tally_init(&tally);
    record.tally = &tally;

    /* Open fails cleanly at every allocation until it succeeds. */
    for (long allowed = 0; rc == SP_ENOMEM && allowed < 50; allowed++) {
        sp_alloc_fail_after(allowed);
        rc = sp_queue_open(dir, NULL, &queue, &err);
        sp_alloc_fail_after(-1);
        if (rc != SP_OK)
            assert_null(queue);
    }
    assert_int_equal(rc, SP_OK);

    /* A submission that cannot be copied is refused, with no done. */
    sp_alloc_fail_after(0);
    rc = submit(queue, "s@example.com", "m", 1, 2, &record, id);
    sp_alloc_fail_after(-1);
    assert_int_equal(rc, SP_ENOMEM);
    assert_int_equal(submit(queue, "s@example.com", "m", 1, 2, &record, id),
                     SP_OK);
    tally_wait(&tally, 1);
    assert_int_equal(record.calls, 1);

    /* Reading and listing need memory for recipients and bytes. */
    sp_alloc_fail_after(0);
    assert_int_equal(sp_queue_list(queue, on_list, &listing, &err), SP_ENOMEM);
    assert_int_equal(sp_queue_read(queue, id, NULL, NULL, &data, &err),
                     SP_ENOMEM);
    sp_alloc_fail_after(-1);
    assert_int_equal(listing.count, 0);
    assert_int_equal(data.len, 0);
    assert_int_equal(sp_queue_read(queue, id, NULL, NULL, &data, &err), SP_OK);
    assert_memory_equal(data.data, "m", 1);
    sp_queue_close(queue);
    sp_buf_free(&data);
    tally_free(&tally);
    testlib_remove_dir(dir);
}

/*
 * Outcomes land per recipient, are there after a reopen, and the last
 * pending recipient's outcome takes the message (and its key ids) away.
 */
static void
outcomes_are_recorded_until_the_message_is_finished(void **state)
{
    static const int64_t keys[] = {4};
    char dir[256], id[SP_QUEUE_ID_SIZE];
    sp_queue_outcome deferred = {
        .position = 1,
        .state = SP_QUEUE_RCPT_PENDING,
        .next_try_ms = 1234567,
        .reply = "451 4.3.0 try again later",
    };
    sp_queue_outcome final[] = {
        {.position = 0, .state = SP_QUEUE_RCPT_DELIVERED, .reply = "250 ok"},
        {.position = 1, .state = SP_QUEUE_RCPT_FAILED, .reply = "550 5.1.1"},
    };
    sp_queue_envelope envelope = {
        .sender = "s@example.com",
        .recipients = two_recipients,
        .recipient_count = 2,
        .dkim_keys = keys,
        .dkim_key_count = 1,
    };
    struct record record = {0};
    struct tally tally;
    struct states states;
    sp_queue *queue;
    uint64_t count = 9;
    bool finished = true;
    sp_error err;

    (void)state;
    testlib_temp_dir("queue", dir, sizeof(dir));
    tally_init(&tally);
    record.tally = &tally;
    queue = open_queue(dir, false);
    id[0] = '\0';
    assert_int_equal(sp_queue_submit(queue, &envelope, "m\r\n", 3, on_done,
                                     &record, id, &err),
                     SP_OK);
    tally_wait(&tally, 1);
    read_states(queue, id, &states);
    assert_int_equal(states.count, 2);
    assert_int_equal(states.rcpt[0].state, SP_QUEUE_RCPT_PENDING);
    assert_int_equal(states.rcpt[0].attempts, 0);
    assert_int_equal(states.rcpt[0].next_try_ms, 0);
    assert_string_equal(states.rcpt[0].reply, "");

    /* A deferral touches only its recipient. */
    assert_int_equal(record_outcomes(queue, id, &deferred, 1, &finished),
                     SP_OK);
    assert_false(finished);
    sp_queue_close(queue);
    queue = open_queue(dir, false);
    read_states(queue, id, &states);
    assert_int_equal(states.rcpt[0].attempts, 0);
    assert_int_equal(states.rcpt[1].state, SP_QUEUE_RCPT_PENDING);
    assert_int_equal(states.rcpt[1].attempts, 1);
    assert_int_equal(states.rcpt[1].next_try_ms, 1234567);
    assert_string_equal(states.rcpt[1].reply, "451 4.3.0 try again later");

    /* A position the message lacks refuses the whole record. */
    final[1].position = 2;
    assert_int_equal(record_outcomes(queue, id, final, 2, &finished),
                     SP_EINVAL);
    assert_false(finished);
    read_states(queue, id, &states);
    assert_int_equal(states.rcpt[0].state, SP_QUEUE_RCPT_PENDING);
    assert_int_equal(states.rcpt[0].attempts, 0);

    /* The last pending recipient finishes the message. */
    final[1].position = 1;
    assert_int_equal(record_outcomes(queue, id, final, 2, &finished), SP_OK);
    assert_true(finished);
    assert_int_equal(sp_queue_count(queue, &count, &err), SP_OK);
    assert_int_equal(count, 0);
    assert_int_equal(key_count(queue, 4), 0);
    assert_int_equal(sp_queue_read(queue, id, NULL, NULL, NULL, &err),
                     SP_ENOTFOUND);
    assert_int_equal(record_outcomes(queue, id, final, 1, &finished),
                     SP_ENOTFOUND);
    sp_queue_close(queue);
    tally_free(&tally);
    testlib_remove_dir(dir);
}

/* Events taken from the spool, in order. */
struct taken {
    int64_t last_seq;
    char events[8][64];
    size_t count;
};

static void
on_event(void *arg, int64_t seq, const char *event)
{
    struct taken *taken = arg;

    assert_true(seq > taken->last_seq);
    assert_true(taken->count < 8);
    taken->last_seq = seq;
    snprintf(taken->events[taken->count++], 64, "%s", event);
}

static void
on_info_fields(void *arg, const sp_queue_info *info)
{
    snprintf(arg, 64, "%s", info->event_fields);
}

/*
 * Events go into the spool with the submission or outcome they describe,
 * or alone, come out in commit order until forgotten, and a refused
 * record stores none.
 */
static void
events_are_kept_with_what_they_describe(void **state)
{
    sp_queue_outcome outcome = {
        .state = SP_QUEUE_RCPT_DELIVERED,
        .reply = "250 ok",
        .event = "{\"type\":\"delivery\"}",
    };
    sp_queue_envelope envelope = {
        .sender = "s@example.com",
        .recipients = two_recipients,
        .recipient_count = 1,
        .event = "{\"type\":\"injection\"}",
        .event_fields = "{\"campaign_id\":\"c1\"}",
    };
    char dir[256], id[SP_QUEUE_ID_SIZE] = "", fields[64] = "";
    struct record record = {0};
    struct taken taken = {0};
    struct tally tally;
    sp_queue *queue;
    sp_error err;

    (void)state;
    testlib_temp_dir("queue", dir, sizeof(dir));
    tally_init(&tally);
    record.tally = &tally;
    queue = open_queue(dir, false);
    assert_int_equal(sp_queue_submit(queue, &envelope, "m\r\n", 3, on_done,
                                     &record, id, &err),
                     SP_OK);
    tally_wait(&tally, 1);
    assert_int_equal(
        sp_queue_read(queue, id, on_info_fields, fields, NULL, &err), SP_OK);
    assert_string_equal(fields, "{\"campaign_id\":\"c1\"}");
    assert_int_equal(record_outcomes(queue, id, &outcome, 1, NULL), SP_OK);
    outcome.event = "{\"type\":\"lost\"}";
    assert_int_equal(record_outcomes(queue, id, &outcome, 1, NULL),
                     SP_ENOTFOUND);
    assert_int_equal(sp_queue_event(queue, "", &err), SP_EINVAL);
    assert_int_equal(sp_queue_event(queue, NULL, &err), SP_EINVAL);
    assert_int_equal(
        sp_queue_event(queue, "{\"type\":\"policy_rejection\"}", &err), SP_OK);

    /* After a restart (closing drains the writer), as committed. */
    sp_queue_close(queue);
    queue = open_queue(dir, true);
    assert_int_equal(sp_queue_event(queue, "{}", &err), SP_ESTATE);
    assert_int_equal(sp_queue_events_take(queue, 10, on_event, &taken, &err),
                     SP_OK);
    assert_int_equal(taken.count, 3);
    assert_string_equal(taken.events[0], "{\"type\":\"injection\"}");
    assert_string_equal(taken.events[1], "{\"type\":\"delivery\"}");
    assert_string_equal(taken.events[2], "{\"type\":\"policy_rejection\"}");

    /* Forgotten up to a point, the rest stays. */
    assert_int_equal(sp_queue_events_forget(queue, taken.last_seq - 1, &err),
                     SP_OK);
    memset(&taken, 0, sizeof(taken));
    assert_int_equal(sp_queue_events_take(queue, 10, on_event, &taken, &err),
                     SP_OK);
    assert_int_equal(taken.count, 1);
    assert_string_equal(taken.events[0], "{\"type\":\"policy_rejection\"}");
    assert_int_equal(sp_queue_events_forget(queue, taken.last_seq, &err),
                     SP_OK);
    memset(&taken, 0, sizeof(taken));
    assert_int_equal(sp_queue_events_take(queue, 10, on_event, &taken, &err),
                     SP_OK);
    assert_int_equal(taken.count, 0);
    sp_queue_close(queue);
    tally_free(&tally);
    testlib_remove_dir(dir);
}

/* Records the spool cannot take are refused at once, with no call. */
static void
bad_records_are_refused(void **state)
{
    sp_queue_outcome outcome = {.state = SP_QUEUE_RCPT_DELIVERED};
    char dir[256], id[SP_QUEUE_ID_SIZE];
    sp_queue *queue, *reader;
    sp_error err;

    (void)state;
    testlib_temp_dir("queue", dir, sizeof(dir));
    queue = open_queue(dir, false);
    submit_signed(queue, NULL, 0, id);
    assert_int_equal(
        sp_queue_record(queue, id, &outcome, 0, on_recorded, NULL, &err),
        SP_EINVAL);
    assert_int_equal(
        sp_queue_record(queue, "nope", &outcome, 1, on_recorded, NULL, &err),
        SP_EINVAL);
    assert_int_equal(sp_queue_record(queue, id, &outcome, 1, NULL, NULL, &err),
                     SP_EINVAL);
    outcome.state = (sp_queue_rcpt_state)7;
    assert_int_equal(
        sp_queue_record(queue, id, &outcome, 1, on_recorded, NULL, &err),
        SP_EINVAL);
    outcome.state = SP_QUEUE_RCPT_DELIVERED;
    reader = open_queue(dir, true);
    assert_int_equal(
        sp_queue_record(reader, id, &outcome, 1, on_recorded, NULL, &err),
        SP_ESTATE);
    sp_queue_close(reader);
    sp_alloc_fail_after(0);
    assert_int_equal(
        sp_queue_record(queue, id, &outcome, 1, on_recorded, NULL, &err),
        SP_ENOMEM);
    sp_alloc_fail_after(-1);
    assert_string_equal(sp_queue_rcpt_state_name(SP_QUEUE_RCPT_FAILED),
                        "failed");
    sp_queue_close(queue);
    testlib_remove_dir(dir);
}

static void
bad_arguments_are_refused(void **state)
{
    sp_queue_envelope envelope = {.sender = "s@example.com"};
    char dir[256], id[SP_QUEUE_ID_SIZE] = "";
    sp_queue *queue = NULL;
    sp_error err;

    (void)state;
    assert_int_equal(sp_queue_open("", NULL, &queue, &err), SP_EINVAL);
    assert_int_equal(sp_queue_open("/proc/no/such/dir", NULL, &queue, &err),
                     SP_EIO);
    assert_null(queue);
    testlib_temp_dir("queue", dir, sizeof(dir));
    queue = open_queue(dir, false);
    assert_int_equal(
        sp_queue_submit(queue, &envelope, "m", 1, on_done, NULL, id, &err),
        SP_EINVAL);
    assert_string_equal(id, "");
    assert_string_equal(sp_queue_state_name(SP_QUEUE_QUEUED), "queued");
    sp_queue_close(queue);
    testlib_remove_dir(dir);
}

static void
spool_directory_is_private(void **state)
{
    char dir[256], spool[300];
    struct stat st;
    sp_queue *queue;

    (void)state;
    testlib_temp_dir("queue", dir, sizeof(dir));
    snprintf(spool, sizeof(spool), "%s/spool", dir);
    queue = open_queue(spool, false);
    assert_int_equal(stat(spool, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    sp_queue_close(queue);
    testlib_remove_dir(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip_submit_list_read_delete),
        cmocka_unit_test(messages_count_the_keys_that_signed_them),
        cmocka_unit_test(first_schema_is_upgraded),
        cmocka_unit_test(ids_unique_ordered_and_parse_back),
        cmocka_unit_test(ids_from_new_id_are_kept_and_used_once),
        cmocka_unit_test(concurrent_submissions_share_flushes),
        cmocka_unit_test(close_drains_and_reopen_finds_everything),
        cmocka_unit_test(
            second_opener_reads_and_deletes_while_the_writer_works),
        cmocka_unit_test(free_space_threshold_refuses_at_once),
        cmocka_unit_test(storage_error_fails_the_group_and_the_spool_recovers),
        cmocka_unit_test(allocation_failures_are_reported),
        cmocka_unit_test(outcomes_are_recorded_until_the_message_is_finished),
        cmocka_unit_test(bad_records_are_refused),
        cmocka_unit_test(events_are_kept_with_what_they_describe),
        cmocka_unit_test(bad_arguments_are_refused),
        cmocka_unit_test(spool_directory_is_private),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
