/*
 * deliver.c: delivery on the event loop: from the spool, through the
 * scheduler, over SMTP to each recipient's mail server.
 *
 * Owns daemon_deliver_*.  At start every pending recipient in the spool
 * becomes a scheduler job (one per message and recipient domain); each
 * message accepted later is added as its 250 goes out.  When the
 * scheduler calls for a connection to a destination, the route is found
 * (a smart host, a static route, or the domain's MX hosts by preference,
 * then their A and AAAA addresses), and the connection is tried address
 * after address.  A connection speaks through the client engine
 * (smtp/client.c): STARTTLS when offered, then as many ready jobs of its
 * destination as the limits allow, then it waits briefly for more before
 * it says QUIT.
 *
 * Each attempt's outcome is recorded in the spool for each recipient:
 * delivered (2xx), failed (5xx, or a local refusal such as SMTPUTF8 that
 * the server lacks), or pending again with the next try from the retry
 * schedule (4xx, connection failures, timeouts).  A recipient still
 * failing when queue_max_lifetime has passed expires (failed).  The
 * spool deletes a message once no recipient is pending.  One log line per
 * recipient and attempt.
 *
 * TLS per destination (delivery_tls, rules' tls=): "may" takes any
 * certificate and, when the handshake fails, connects again in
 * plaintext; "encrypt" needs STARTTLS; "verify" also needs a certificate
 * from a trusted authority naming the host (the MX name, or the route's
 * host or address).  Failures of "encrypt" and "verify" defer.  Source
 * addresses (delivery_source, rules' source=) are taken in turn per
 * connection, per address family.
 *
 * Limits: the bounce message to the sender and grouping destinations by
 * MX host are not built yet.  Message bytes are read
 * from the spool on the loop thread (SQLite's page cache makes this a
 * copy, but a cold read of a large message stalls the loop briefly).
 */
#include "daemon.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DELIVER_MAX_ADDRESSES 8 /* addresses tried per connection */
#define DELIVER_READ_CHUNK    16384
#define DELIVER_WRITE_TIMEOUT 300 /* seconds for output to drain */

struct out_conn;

struct daemon_deliver {
    struct daemon_deliver_deps deps;
    sp_sched *sched;
    struct daemon_mxgroups *groups; /* when rules group by MX host */
    struct daemon_dsn *dsn;         /* bounce messages, unless turned off */
    SSL_CTX *tls;         /* for tls=may and encrypt: no verification */
    SSL_CTX *tls_verify;  /* for tls=verify: trusted authorities */
    unsigned source_turn; /* the next source address, round robin */
    int64_t retry_schedule[32];
    size_t retry_count;
    unsigned connections;   /* open or opening, all destinations */
    struct out_conn *conns; /* every connection */
    struct event *kick;     /* runs deliver_run once per loop turn */
    struct event *timer;    /* the scheduler's next change */
    bool stopping;
};

enum conn_stage {
    CONN_RESOLVING, /* waiting for DNS */
    CONN_CONNECTING,
    CONN_TALKING, /* the SMTP session runs */
    CONN_IDLE,    /* ready, waiting for a job */
    CONN_CLOSING, /* QUIT said or failure; closes when output drains */
};

/* One host to try, with the addresses found for it. */
struct conn_host {
    char name[254];
    unsigned port;
};

struct out_conn {
    struct daemon_deliver *deliver;
    struct out_conn *prev, *next;
    sp_sched_dest *dest;
    enum conn_stage stage;
    bool waiting; /* counted as waiting by the scheduler */

    /* The route: hosts in order, the one being tried, its addresses. */
    struct conn_host hosts[SP_DNS_MAX_MX];
    size_t host_count, host_index;
    sp_dns_addr addrs[SP_DNS_MAX_ADDRS];
    size_t addr_count, addr_index, tried;
    unsigned lookups; /* A and AAAA queries still out */
    char peer[80];    /* address:port being talked to */
    char local[48];   /* the address it is talked to from, once connected */

    struct bufferevent *bev;
    sp_smtp_client *client;
    sp_buf out;
    bool tls;               /* the session runs over TLS */
    bool verified;          /* and the certificate was verified */
    bool tls_handshaking;   /* STARTTLS said, handshake not finished */
    bool plaintext;         /* this address failed TLS: no STARTTLS */
    unsigned sent;          /* messages on this connection */
    bool ever_idle;         /* the session reached IDLE once */
    struct event *idle;     /* closes the connection when idle too long */
    struct event *deadline; /* a whole reply must come within the read
                               timeout: a server dripping octets does not
                               restart it */

    /* The job in flight and what it needs while the server answers. */
    sp_sched_job *job;
    sp_buf data;                /* the message */
    sp_buf strings;             /* sender and recipients, NUL separated */
    sp_buf event_fields;        /* what each event of the message carries */
    const char **recipients;    /* into strings, job->count of them */
    const char *sender;         /* into strings */
    int64_t created_ms;         /* when the message was accepted */
    uint64_t size;              /* octets of the message */
    sp_smtp_client_message msg; /* what was sent */
};

static void deliver_schedule_run(struct daemon_deliver *deliver);
static bool conn_load_job(struct out_conn *conn, sp_buf *data);
static void conn_try_next(struct out_conn *conn, const char *why);
static bool conn_connect(struct out_conn *conn);
static void conn_next_step(struct out_conn *conn, sp_smtp_client_next next);

static int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The domain of an address: after its last '@'; "" for none. */
static const char *
address_domain(const char *address)
{
    const char *at = strrchr(address, '@');

    return at != NULL ? at + 1 : "";
}

/* ------------------------------------------------------------------------
 * Recording outcomes
 */

/* The spool's answer to a record, on its writer thread. */
static void
deliver_recorded(void *arg, int rc, const char *id, bool finished,
                 const sp_error *err)
{
    (void)arg;
    if (rc != SP_OK)
        sp_log_error("record queue_id=%s error=\"%s\"", id, err->text);
    else if (finished)
        sp_log_info("removed queue_id=%s reason=\"every recipient done\"", id);
}

/* When a deferred recipient tries again, or 0 when its time is up. */
static int64_t
deliver_next_try(const struct daemon_deliver *deliver, unsigned attempts,
                 int64_t created_ms, int64_t now)
{
    int64_t lifetime_end =
        created_ms + deliver->deps.config->queue_max_lifetime * 1000;
    int64_t delay = sp_sched_retry_delay(deliver->retry_schedule,
                                         deliver->retry_count, attempts);

    if (now >= lifetime_end)
        return 0;
    return now + delay * 1000 < lifetime_end ? now + delay * 1000
                                             : lifetime_end;
}

/* Log one recipient's outcome of an attempt. */
static void
deliver_log(const struct out_conn *conn, const sp_sched_job *job,
            const char *recipient, const char *status,
            const sp_smtp_client_result *result)
{
    char rcpt[300], reply[400];

    sp_log_escape(rcpt, sizeof(rcpt), recipient, strlen(recipient));
    sp_log_escape(reply, sizeof(reply), result->text, strlen(result->text));
    sp_log_info("delivery queue_id=%s rcpt=<%s> dest=%s relay=%s tls=%s "
                "status=%s code=%d enhanced=%s class=%s attempt=%u "
                "reply=\"%s\"",
                job->id, rcpt, sp_sched_dest_name(job->dest),
                conn->peer[0] ? conn->peer : "none",
                conn->tls ? (conn->verified ? "verified" : "yes") : "no",
                status, result->code,
                result->enhanced[0] ? result->enhanced : "-",
                sp_smtp_class_name(result->class), job->attempts + 1, reply);
}

#define DELIVER_REPLY_SIZE 160 /* octets of a reply kept in the spool */

/*
 * Tell the sender about the recipients of job that outcomes mark failed
 * (bounced, or expired after 4xx replies: status 4.4.7 then).
 */
static void
deliver_bounce(const struct out_conn *conn, const sp_sched_job *job,
               const sp_smtp_client *client, const sp_smtp_client_result *one,
               const char *const *recipients, const sp_queue_outcome *outcomes)
{
    struct daemon_dsn_rcpt *failed = sp_calloc(job->count, sizeof(*failed));
    const char *remote =
        conn->peer[0] ? conn->hosts[conn->host_index].name : "";
    size_t count = 0;

    for (size_t i = 0; failed != NULL && i < job->count; i++) {
        const sp_smtp_client_result *result =
            client ? sp_smtp_client_result_for(client, i) : one;

        if (outcomes[i].state != SP_QUEUE_RCPT_FAILED)
            continue;
        failed[count].address = recipients[i];
        failed[count].status = result->code < 500    ? "4.4.7"
                               : result->enhanced[0] ? result->enhanced
                                                     : "5.0.0";
        failed[count].diagnostic = outcomes[i].reply;
        failed[count].remote = result->local ? "" : remote;
        count++;
    }
    if (failed == NULL)
        sp_log_error("bounce for=%s error=\"out of memory\"", job->id);
    else if (count > 0)
        daemon_dsn_send(conn->deliver->dsn, job->id, failed, count);
    sp_free(failed);
}

/* The event type of a delivery status in the log. */
static const char *
deliver_event_type(const char *status)
{
    if (strcmp(status, "delivered") == 0)
        return "delivery";
    if (strcmp(status, "deferred") == 0)
        return "delay";
    if (strcmp(status, "bounced") == 0)
        return "bounce";
    return "expired";
}

/*
 * The event of one recipient's outcome (doc/events.md); NULL when memory
 * runs out.  The connection's TLS and addresses when it got that far.
 */
static char *
deliver_event(const struct out_conn *conn, const sp_sched_job *job,
              const char *recipient, const char *status,
              const sp_smtp_client_result *result)
{
    json_t *fields = json_pack(
        "{s:s, s:s, s:s, s:s, s:I, s:s, s:i, s:s, s:s, s:I}", "queue_id",
        job->id, "message_id", job->id, "rcpt_to", recipient, "msg_from",
        conn->sender ? conn->sender : "", "msg_size", (json_int_t)conn->size,
        "routing_domain", sp_sched_dest_name(job->dest), "error_code",
        result->code, "enhanced_code", result->enhanced, "raw_reason",
        result->text, "num_retries", (json_int_t)job->attempts);

    if (fields == NULL)
        return NULL;
    if (conn->event_fields.len > 0) {
        json_t *common = json_loads(conn->event_fields.data, 0, NULL);

        json_object_update_missing(fields, common);
        json_decref(common);
    }
    if (strcmp(status, "delivered") != 0)
        json_object_set_new(fields, "bounce_class",
                            json_string(sp_smtp_class_name(result->class)));
    if (conn->peer[0] != '\0' && !result->local) {
        SSL *ssl = conn->tls ? bufferevent_openssl_get_ssl(conn->bev) : NULL;

        json_object_set_new(fields, "mx_host",
                            json_string(conn->hosts[conn->host_index].name));
        json_object_set_new(fields, "mx_ip", json_string(conn->peer));
        if (conn->local[0] != '\0')
            json_object_set_new(fields, "sending_ip", json_string(conn->local));
        json_object_set_new(
            fields, "tls",
            json_string(conn->tls ? (conn->verified ? "verified" : "yes")
                                  : "no"));
        if (ssl != NULL) {
            json_object_set_new(fields, "tls_version",
                                json_string(SSL_get_version(ssl)));
            json_object_set_new(fields, "tls_cipher",
                                json_string(SSL_get_cipher_name(ssl)));
        }
    }
    return sp_event_text(deliver_event_type(status), fields);
}

/*
 * Record a job's attempt: the client's result for each recipient, or
 * (client NULL) the same result one for all.  Recipients still pending go
 * back to the scheduler; the job is finished otherwise.  recipients may
 * be NULL (the job was never loaded): the positions are logged instead.
 */
static void
deliver_outcome(struct out_conn *conn, sp_sched_job *job,
                const sp_smtp_client *client, const sp_smtp_client_result *one,
                const char *const *recipients, int64_t created_ms)
{
    struct daemon_deliver *deliver = conn->deliver;
    sp_queue_outcome *outcomes = sp_calloc(job->count, sizeof(*outcomes));
    char *replies = sp_malloc(job->count * DELIVER_REPLY_SIZE);
    int64_t now = now_ms(), next_try = 0;
    size_t pending = 0;
    sp_error err;

    if (outcomes == NULL || replies == NULL) {
        sp_free(outcomes);
        sp_free(replies);
        sp_log_error("record queue_id=%s error=\"out of memory; the "
                     "message waits for a restart\"",
                     job->id);
        sp_sched_done(deliver->sched, job);
        return;
    }
    for (size_t i = 0; i < job->count; i++) {
        const sp_smtp_client_result *result =
            client ? sp_smtp_client_result_for(client, i) : one;
        char *reply = replies + i * DELIVER_REPLY_SIZE;
        const char *status;
        char position[32];

        outcomes[i].position = job->positions[i];
        snprintf(reply, DELIVER_REPLY_SIZE, "%d %s%s%.120s", result->code,
                 result->enhanced, result->enhanced[0] ? " " : "",
                 result->text);
        outcomes[i].reply = reply;
        if (result->code >= 200 && result->code < 300) {
            outcomes[i].state = SP_QUEUE_RCPT_DELIVERED;
            status = "delivered";
        } else if (result->code >= 500) {
            outcomes[i].state = SP_QUEUE_RCPT_FAILED;
            status = "bounced";
        } else {
            next_try =
                deliver_next_try(deliver, job->attempts + 1, created_ms, now);
            outcomes[i].state =
                next_try ? SP_QUEUE_RCPT_PENDING : SP_QUEUE_RCPT_FAILED;
            outcomes[i].next_try_ms = next_try;
            status = next_try ? "deferred" : "expired";
        }
        snprintf(position, sizeof(position), "#%zu", job->positions[i]);
        deliver_log(conn, job, recipients ? recipients[i] : position, status,
                    result);
        outcomes[i].event = deliver_event(
            conn, job, recipients ? recipients[i] : position, status, result);
    }

    /* The bounce goes to the spool before the outcome that causes it. */
    if (deliver->dsn != NULL && recipients != NULL)
        deliver_bounce(conn, job, client, one, recipients, outcomes);
    if (sp_queue_record(deliver->deps.queue, job->id, outcomes, job->count,
                        deliver_recorded, NULL, &err) != SP_OK)
        sp_log_error("record queue_id=%s error=\"%s\"", job->id, err.text);

    /* Keep the pending ones, in place, for the next try. */
    for (size_t i = 0; i < job->count; i++) {
        if (outcomes[i].state == SP_QUEUE_RCPT_PENDING)
            job->positions[pending++] = job->positions[i];
        free((char *)outcomes[i].event);
    }
    sp_free(outcomes);
    sp_free(replies);
    if (pending == 0) {
        sp_sched_done(deliver->sched, job);
        return;
    }
    job->count = pending;
    job->attempts++;
    if (sp_sched_retry(deliver->sched, job, next_try, now) != SP_OK) {
        sp_log_error("schedule queue_id=%s error=\"out of memory; the "
                     "message waits for a restart\"",
                     job->id);
        sp_sched_done(deliver->sched, job);
    }
}

/* A verdict of sealpost's own, in the client's result shape. */
static void
deliver_verdict(sp_smtp_client_result *result, int code, const char *enhanced,
                const char *text)
{
    memset(result, 0, sizeof(*result));
    result->code = code;
    result->local = true;
    snprintf(result->enhanced, sizeof(result->enhanced), "%s", enhanced);
    snprintf(result->text, sizeof(result->text), "%s", text);
    result->class = sp_smtp_classify(code, enhanced, text);
}

/* ------------------------------------------------------------------------
 * Connections
 */

static void
conn_free(struct out_conn *conn)
{
    struct daemon_deliver *deliver = conn->deliver;

    if (conn->lookups > 0)
        sp_dns_resolver_cancel(deliver->deps.resolver, conn);
    if (conn->bev != NULL)
        bufferevent_free(conn->bev);
    if (conn->idle != NULL)
        event_free(conn->idle);
    if (conn->deadline != NULL)
        event_free(conn->deadline);
    sp_smtp_client_free(conn->client);
    sp_buf_free(&conn->out);
    sp_buf_free(&conn->data);
    sp_buf_free(&conn->strings);
    sp_buf_free(&conn->event_fields);
    sp_free(conn->recipients);
    if (conn->prev != NULL)
        conn->prev->next = conn->next;
    else
        deliver->conns = conn->next;
    if (conn->next != NULL)
        conn->next->prev = conn->prev;
    sp_sched_disconnected(conn->dest, conn->waiting);
    deliver->connections--;
    sp_free(conn);
    deliver_schedule_run(deliver);
}

/* The job in flight did not get its answer: try it again later. */
static void
conn_defer_job(struct out_conn *conn, const char *why)
{
    sp_smtp_client_result result;
    sp_sched_job *job = conn->job;

    if (job == NULL)
        return;
    conn->job = NULL;
    deliver_verdict(&result, 451, "4.4.2", why);

    /* The envelope is known unless loading it is what failed. */
    deliver_outcome(conn, job, NULL, &result,
                    conn->sender ? conn->recipients : NULL,
                    conn->sender ? conn->created_ms : now_ms());
}

/*
 * The connection ends.  A failure before the session was ever ready
 * moves on to the next address; otherwise the connection closes (its job,
 * if any, deferred).
 */
static void
conn_fail(struct out_conn *conn, const char *why)
{
    const sp_smtp_client_result *failure =
        conn->client ? sp_smtp_client_failure(conn->client) : NULL;
    char text[600];

    if (failure != NULL && failure->code != 0)
        snprintf(text, sizeof(text), "%.300s: %d %s%s%.250s", why,
                 failure->code, failure->enhanced,
                 failure->enhanced[0] ? " " : "", failure->text);
    else
        snprintf(text, sizeof(text), "%s", why);
    if (conn->job != NULL) {
        conn_defer_job(conn, text);
        conn_free(conn);
        return;
    }

    /* Opportunistic TLS that fails goes on in plaintext, as senders do. */
    if ((conn->tls_handshaking || (conn->tls && !conn->ever_idle)) &&
        !conn->plaintext &&
        sp_sched_dest_limits(conn->dest)->tls == SP_SCHED_TLS_MAY &&
        !conn->deliver->stopping) {
        sp_log_info("connect dest=%s relay=%s result=tls_failed error=\"%s\" "
                    "next=plaintext",
                    sp_sched_dest_name(conn->dest), conn->peer, text);
        conn->plaintext = true;
        if (conn_connect(conn))
            return;
    }
    if (!conn->ever_idle && !conn->deliver->stopping) {
        conn_try_next(conn, text);
        return;
    }
    conn_free(conn);
}

static void
conn_flush(struct out_conn *conn)
{
    if (conn->out.len > 0 && conn->bev != NULL)
        bufferevent_write(conn->bev, conn->out.data, conn->out.len);
    sp_buf_reset(&conn->out);
}

/*
 * Wait read_seconds (0: no limit) for the server.  The bufferevent's read
 * timeout starts again with every octet; the deadline does not, so the
 * whole reply must come within the time RFC 5321 4.5.3.2 gives it.
 */
static void
conn_timeouts(struct out_conn *conn, unsigned read_seconds)
{
    struct timeval read = {.tv_sec = read_seconds};
    struct timeval write = {.tv_sec = DELIVER_WRITE_TIMEOUT};

    bufferevent_set_timeouts(conn->bev, read_seconds ? &read : NULL, &write);
    if (read_seconds > 0)
        event_add(conn->deadline, &read);
    else
        event_del(conn->deadline);
}

/* Wait for the client engine's next reply: its RFC 5321 time, or less
 * when delivery_reply_timeout says so. */
static void
conn_wait_reply(struct out_conn *conn)
{
    unsigned seconds = sp_smtp_client_timeout(conn->client);
    int64_t most = conn->deliver->deps.config->delivery_reply_timeout;

    conn_timeouts(conn, most > 0 && most < seconds ? (unsigned)most : seconds);
}

/* The whole reply did not come in time. */
static void
conn_on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct out_conn *conn = arg;
    char why[160];

    (void)fd;
    (void)what;
    if (conn->stage == CONN_CLOSING) {
        conn_free(conn);
        return;
    }
    snprintf(why, sizeof(why), "%s: no whole reply in time", conn->peer);
    conn_fail(conn, why);
}

static void
conn_on_read(struct bufferevent *bev, void *arg)
{
    struct out_conn *conn = arg;
    struct evbuffer *input = bufferevent_get_input(bev);
    char chunk[DELIVER_READ_CHUNK];
    int len;

    while (conn->stage == CONN_TALKING &&
           (len = evbuffer_remove(input, chunk, sizeof(chunk))) > 0) {
        uint64_t replies = sp_smtp_client_replies(conn->client);
        sp_smtp_client_next next =
            sp_smtp_client_input(conn->client, chunk, (size_t)len, &conn->out);

        /* Part of a reply: its deadline runs on. */
        if (next == SP_SMTP_CLIENT_READ &&
            sp_smtp_client_replies(conn->client) == replies) {
            conn_flush(conn);
            continue;
        }
        conn_next_step(conn, next);
        if (next == SP_SMTP_CLIENT_CLOSE || next == SP_SMTP_CLIENT_STARTTLS)
            return; /* conn may be gone, or the bufferevent replaced */
    }
}

/* Output drained: a closing connection can go now. */
static void
conn_on_write(struct bufferevent *bev, void *arg)
{
    struct out_conn *conn = arg;

    (void)bev;
    if (conn->stage == CONN_CLOSING)
        conn_free(conn);
}

static void conn_on_event(struct bufferevent *bev, short what, void *arg);

/* Wrap the connection in TLS after the server's 220 to STARTTLS. */
static void
conn_start_tls(struct out_conn *conn)
{
    struct conn_host *host = &conn->hosts[conn->host_index];
    bool verify = sp_sched_dest_limits(conn->dest)->tls == SP_SCHED_TLS_VERIFY;
    SSL *ssl = SSL_new(verify ? conn->deliver->tls_verify : conn->deliver->tls);
    unsigned char literal[16];
    bool is_address = inet_pton(AF_INET, host->name, literal) == 1 ||
                      inet_pton(AF_INET6, host->name, literal) == 1;
    struct bufferevent *tls;

    conn->tls_handshaking = true;
    if (ssl == NULL) {
        ERR_clear_error();
        conn_fail(conn, "TLS: out of memory");
        return;
    }
    if (!is_address)
        SSL_set_tlsext_host_name(ssl, host->name);

    /* verify: the certificate must name the host we meant to reach. */
    if (verify && (is_address ? X509_VERIFY_PARAM_set1_ip_asc(
                                    SSL_get0_param(ssl), host->name) != 1
                              : SSL_set1_host(ssl, host->name) != 1)) {
        SSL_free(ssl);
        ERR_clear_error();
        conn_fail(conn, "TLS: cannot set the name to verify");
        return;
    }
    tls = bufferevent_openssl_filter_new(
        conn->deliver->deps.base, conn->bev, ssl, BUFFEREVENT_SSL_CONNECTING,
        BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (tls == NULL) {
        ERR_clear_error();
        conn_fail(conn, "TLS: out of memory");
        return;
    }
    conn->bev = tls;
    bufferevent_setcb(tls, conn_on_read, conn_on_write, conn_on_event, conn);
    bufferevent_enable(tls, EV_READ | EV_WRITE);
    conn_timeouts(conn, 60);
}

/* Idle too long: QUIT. */
static void
conn_on_idle(evutil_socket_t fd, short what, void *arg)
{
    struct out_conn *conn = arg;

    (void)fd;
    (void)what;
    if (conn->stage != CONN_IDLE)
        return;
    conn->stage = CONN_TALKING;
    sp_smtp_client_quit(conn->client, &conn->out);
    conn_flush(conn);
    conn_wait_reply(conn);
}

/* Fill conn's copy of the job's envelope from the spool's description. */
static void
conn_take_info(void *arg, const sp_queue_info *info)
{
    struct out_conn *conn = arg;
    sp_sched_job *job = conn->job;
    const char *next;

    conn->created_ms = info->created_ms;
    conn->size = info->size;
    sp_buf_reset(&conn->event_fields);
    if (sp_buf_append_str(&conn->event_fields, info->event_fields) != SP_OK)
        return;
    sp_buf_reset(&conn->strings);
    if (sp_buf_append(&conn->strings, info->sender, strlen(info->sender) + 1))
        return;
    for (size_t i = 0; i < job->count; i++) {
        const char *address = job->positions[i] < info->recipient_count
                                  ? info->recipients[job->positions[i]]
                                  : "";

        if (sp_buf_append(&conn->strings, address, strlen(address) + 1))
            return;
    }

    /* The strings lie one after the other, each with its NUL. */
    conn->sender = conn->strings.data;
    next = conn->sender + strlen(conn->sender) + 1;
    for (size_t i = 0; i < job->count; i++) {
        conn->recipients[i] = next;
        next += strlen(next) + 1;
    }
}

/*
 * Every ready job of the connection's destination gets the same verdict
 * (the destination cannot be reached, or takes no mail).  Each job's
 * envelope is read for the log and its lifetime; a job whose message has
 * gone is dropped.
 */
static void
deliver_all_ready(struct out_conn *conn, int code, const char *enhanced,
                  const char *text)
{
    struct daemon_deliver *deliver = conn->deliver;
    sp_sched_job *job = sp_sched_take_all(deliver->sched, conn->dest), *next;
    sp_smtp_client_result result;

    deliver_verdict(&result, code, enhanced, text);
    for (; job != NULL; job = next) {
        next = job->next;
        conn->job = job;
        if (conn_load_job(conn, NULL))
            deliver_outcome(conn, job, NULL, &result, conn->recipients,
                            conn->created_ms);
        conn->job = NULL;
    }
}

/* Whether any octet of text[0..len) is outside ASCII. */
static bool
has_eight_bit(const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)text[i] >= 0x80)
            return true;
    return false;
}

/*
 * Read the envelope of conn's job (and with data, its message) from the
 * spool into conn.  false when it could not be read: the job was dropped
 * (deleted by the operator, or unreadable: a restart tries again) or, out
 * of memory, deferred; conn->job is NULL then.
 */
static bool
conn_load_job(struct out_conn *conn, sp_buf *data)
{
    sp_sched_job *job = conn->job;
    const char **grown;
    sp_error err;
    int rc;

    conn->sender = NULL;
    grown = sp_realloc(conn->recipients, job->count * sizeof(*grown));
    if (grown == NULL) {
        conn_defer_job(conn, "out of memory");
        return false;
    }
    conn->recipients = grown;
    if (data != NULL)
        sp_buf_reset(data);
    rc = sp_queue_read(conn->deliver->deps.queue, job->id, conn_take_info, conn,
                       data, &err);
    if (rc != SP_OK || conn->sender == NULL) {
        sp_log_warning("delivery queue_id=%s error=\"%s\"", job->id,
                       rc != SP_OK ? err.text : "out of memory");
        conn->job = NULL;
        sp_sched_done(conn->deliver->sched, job);
        return false;
    }
    return true;
}

/*
 * Read the job's message and start its transaction.  false when the
 * message could not be read (the job was dealt with).
 */
static bool
conn_send_job(struct out_conn *conn)
{
    sp_sched_job *job = conn->job;
    bool utf8 = false;

    if (!conn_load_job(conn, &conn->data))
        return false;
    utf8 = has_eight_bit(conn->sender, strlen(conn->sender));
    for (size_t i = 0; i < job->count; i++)
        utf8 = utf8 ||
               has_eight_bit(conn->recipients[i], strlen(conn->recipients[i]));
    conn->msg = (sp_smtp_client_message){
        .sender = conn->sender,
        .recipients = conn->recipients,
        .recipient_count = job->count,
        .data = conn->data.data,
        .len = conn->data.len,
        .eightbit = has_eight_bit(conn->data.data, conn->data.len),
        .smtputf8 = utf8,
    };
    conn_next_step(conn,
                   sp_smtp_client_send(conn->client, &conn->msg, &conn->out));
    return true;
}

/* The session is ready: the next job, or wait for one. */
static void
conn_ready(struct out_conn *conn)
{
    struct daemon_deliver *deliver = conn->deliver;

    if (!conn->waiting) {
        conn->waiting = true;
        sp_sched_waiting(conn->dest, +1);
    }
    while (!deliver->stopping) {
        conn->job =
            sp_sched_take(deliver->sched, conn->dest, conn->sent, now_ms());
        if (conn->job == NULL)
            break;
        conn->waiting = false;
        sp_sched_waiting(conn->dest, -1);
        conn->stage = CONN_TALKING;
        conn->sent++;
        if (conn_send_job(conn))
            return;
        conn->waiting = true;
        sp_sched_waiting(conn->dest, +1);
    }

    /* Nothing to send: close when this connection has had its share. */
    conn->stage = CONN_IDLE;
    if (deliver->stopping ||
        conn->sent >=
            sp_sched_dest_limits(conn->dest)->messages_per_connection) {
        conn_on_idle(-1, 0, conn);
        return;
    }
    bufferevent_set_timeouts(conn->bev, NULL, NULL);
    event_del(conn->deadline);
    event_add(conn->idle,
              &(struct timeval){
                  .tv_sec = (time_t)deliver->deps.config->delivery_idle_time});
}

/* The client engine's step, carried out. */
static void
conn_next_step(struct out_conn *conn, sp_smtp_client_next next)
{
    conn_flush(conn);
    switch (next) {
    case SP_SMTP_CLIENT_READ:
        conn_wait_reply(conn);
        return;
    case SP_SMTP_CLIENT_STARTTLS:
        conn_start_tls(conn);
        return;
    case SP_SMTP_CLIENT_SENT: {
        sp_sched_job *job = conn->job;

        conn->job = NULL;
        deliver_outcome(conn, job, conn->client, NULL, conn->recipients,
                        conn->created_ms);
        if (conn->client != NULL &&
            sp_smtp_client_failure(conn->client) == NULL) {
            conn_ready(conn);
            return;
        }
        conn_fail(conn, "the session ended");
        return;
    }
    case SP_SMTP_CLIENT_IDLE:
        conn->ever_idle = true;
        conn_ready(conn);
        return;
    case SP_SMTP_CLIENT_CLOSE:
        conn->stage = CONN_CLOSING;

        /* Ended before it was ever ready: a failure, whatever it said,
         * so that the destination waits its retry time. */
        if (sp_smtp_client_failure(conn->client) != NULL || !conn->ever_idle) {
            conn->stage = CONN_TALKING;
            conn_fail(conn, "the server ended the session");
            return;
        }
        bufferevent_disable(conn->bev, EV_READ);
        if (evbuffer_get_length(bufferevent_get_output(conn->bev)) == 0)
            conn_free(conn);
        return;
    }
}

/*
 * Say why the connection failed: a timeout, the server closing, TLS
 * (OpenSSL's reason, and the certificate's when verification failed), or
 * the socket's error.  TLS errors are queued on the bufferevent, not in
 * the thread's OpenSSL error queue.
 */
static void
conn_describe_failure(struct out_conn *conn, short what, char *why, size_t size)
{
    SSL *ssl = conn->tls || conn->tls_handshaking
                   ? bufferevent_openssl_get_ssl(conn->bev)
                   : NULL;
    unsigned long tls_code = ssl ? bufferevent_get_openssl_error(conn->bev) : 0;
    long verify = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    char tls_error[120] = "the handshake failed";
    int socket_error = EVUTIL_SOCKET_ERROR();

    ERR_clear_error();
    if (tls_code != 0)
        ERR_error_string_n(tls_code, tls_error, sizeof(tls_error));
    if (what & BEV_EVENT_TIMEOUT)
        snprintf(why, size, "%s: timed out", conn->peer);
    else if (verify != X509_V_OK)
        snprintf(why, size, "%.80s: TLS: %.60s: %.50s", conn->peer, tls_error,
                 X509_verify_cert_error_string(verify));
    else if (tls_code != 0 || conn->tls_handshaking)
        snprintf(why, size, "%.80s: TLS: %.110s", conn->peer, tls_error);
    else if ((what & BEV_EVENT_EOF) || socket_error == 0)
        snprintf(why, size, "%s: connection closed by the server", conn->peer);
    else
        snprintf(why, size, "%s: %s", conn->peer,
                 evutil_socket_error_to_string(socket_error));
}

/* Note the local address of conn's new connection (sending_ip). */
static void
conn_note_local(struct out_conn *conn)
{
    struct sockaddr_storage local;
    socklen_t len = sizeof(local);
    int fd = (int)bufferevent_getfd(conn->bev);

    conn->local[0] = '\0';
    if (getsockname(fd, (struct sockaddr *)&local, &len) != 0)
        return;
    if (local.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&local)->sin_addr,
                  conn->local, sizeof(conn->local));
    else if (local.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&local)->sin6_addr,
                  conn->local, sizeof(conn->local));
}

static void
conn_on_event(struct bufferevent *bev, short what, void *arg)
{
    struct out_conn *conn = arg;
    char why[200];

    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        if (conn->stage == CONN_CONNECTING) {
            conn_note_local(conn);
            conn->stage = CONN_TALKING;
            conn_wait_reply(conn);
            return;
        }
        conn->tls = true; /* the TLS handshake is done */
        conn->tls_handshaking = false;
        conn->verified =
            sp_sched_dest_limits(conn->dest)->tls == SP_SCHED_TLS_VERIFY;
        sp_smtp_client_tls_started(conn->client, &conn->out);
        conn_next_step(conn, SP_SMTP_CLIENT_READ);
        return;
    }
    if (conn->stage == CONN_CLOSING) {
        conn_free(conn);
        return;
    }
    conn_describe_failure(conn, what, why, sizeof(why));
    conn_fail(conn, why);
}

/*
 * A non-blocking socket of family (4 or 6) for the next connection,
 * bound to the next address of sources ("a,b,c", taken in turn over all
 * connections) of that family; unbound when sources has none of it.  -1
 * when it cannot be made or bound (logged).
 */
static int
conn_socket(struct out_conn *conn, int family, const char *sources)
{
    char copy[256], *save = NULL, *text;
    char *found[16];
    size_t count = 0;
    struct sockaddr_storage local = {0};
    socklen_t local_len = 0;
    int fd;

    snprintf(copy, sizeof(copy), "%s", sources);
    for (text = strtok_r(copy, ",", &save); text != NULL && count < 16;
         text = strtok_r(NULL, ",", &save))
        if ((strchr(text, ':') != NULL) == (family == 6))
            found[count++] = text;
    if (count > 0) {
        text = found[conn->deliver->source_turn++ % count];
        if (family == 4) {
            struct sockaddr_in *in = (struct sockaddr_in *)&local;

            in->sin_family = AF_INET;
            inet_pton(AF_INET, text, &in->sin_addr);
            local_len = sizeof(*in);
        } else {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&local;

            in6->sin6_family = AF_INET6;
            inet_pton(AF_INET6, text, &in6->sin6_addr);
            local_len = sizeof(*in6);
        }
    }

    fd = socket(family == 4 ? AF_INET : AF_INET6,
                SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0 && local_len > 0 &&
        bind(fd, (struct sockaddr *)&local, local_len) != 0) {
        sp_log_error("connect dest=%s source=%s result=failed error=\"cannot "
                     "bind: %s\"",
                     sp_sched_dest_name(conn->dest), text, strerror(errno));
        close(fd);
        return -1;
    }
    if (fd < 0)
        sp_log_error("connect dest=%s result=failed error=\"socket: %s\"",
                     sp_sched_dest_name(conn->dest), strerror(errno));
    return fd;
}

/* Connect to the current address. */
static bool
conn_connect(struct out_conn *conn)
{
    const sp_dns_addr *addr = &conn->addrs[conn->addr_index];
    unsigned port = conn->hosts[conn->host_index].port;
    struct sockaddr_storage sa = {0};
    socklen_t sa_len;
    char text[INET6_ADDRSTRLEN];
    const sp_sched_limits *limits = sp_sched_dest_limits(conn->dest);
    sp_smtp_client_options options = {
        .helo = conn->deliver->deps.hostname,
        .tls_possible =
            !conn->plaintext && (limits->tls == SP_SCHED_TLS_VERIFY
                                     ? conn->deliver->tls_verify != NULL
                                     : conn->deliver->tls != NULL),
        .tls_required = limits->tls != SP_SCHED_TLS_MAY,
    };
    int fd;

    if (addr->family == 4) {
        struct sockaddr_in *in = (struct sockaddr_in *)&sa;

        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        memcpy(&in->sin_addr, addr->bytes, 4);
        sa_len = sizeof(*in);
        inet_ntop(AF_INET, addr->bytes, text, sizeof(text));
        snprintf(conn->peer, sizeof(conn->peer), "%s:%u", text, port);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&sa;

        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        memcpy(&in6->sin6_addr, addr->bytes, 16);
        sa_len = sizeof(*in6);
        inet_ntop(AF_INET6, addr->bytes, text, sizeof(text));
        snprintf(conn->peer, sizeof(conn->peer), "[%s]:%u", text, port);
    }
    sp_smtp_client_free(conn->client);
    conn->client = NULL;
    if (conn->bev != NULL)
        bufferevent_free(conn->bev);
    conn->tls = conn->verified = conn->tls_handshaking = false;
    event_del(conn->deadline); /* the connect timeout governs for now */
    fd = conn_socket(conn, addr->family, limits->source);
    if (fd < 0)
        return false;
    conn->bev = bufferevent_socket_new(conn->deliver->deps.base, fd,
                                       BEV_OPT_CLOSE_ON_FREE);
    if (conn->bev == NULL)
        close(fd);
    if (conn->bev == NULL ||
        sp_smtp_client_new(&options, &conn->client, NULL) != SP_OK)
        return false;
    bufferevent_setcb(conn->bev, conn_on_read, conn_on_write, conn_on_event,
                      conn);
    bufferevent_set_timeouts(
        conn->bev, NULL,
        &(struct timeval){
            .tv_sec =
                (time_t)conn->deliver->deps.config->delivery_connect_timeout});
    conn->stage = CONN_CONNECTING;
    conn->tried++;
    bufferevent_enable(conn->bev, EV_READ | EV_WRITE);
    /* A failure here is reported through conn_on_event. */
    bufferevent_socket_connect(conn->bev, (struct sockaddr *)&sa, (int)sa_len);
    return true;
}

static void conn_resolve_host(struct out_conn *conn);

/*
 * Move on: the next address of this host, or the next host.  When none is
 * left, every ready job of the destination is deferred with why.
 */
static void
conn_try_next(struct out_conn *conn, const char *why)
{
    if (conn->stage != CONN_RESOLVING)
        sp_log_info("connect dest=%s relay=%s result=failed error=\"%s\"",
                    sp_sched_dest_name(conn->dest),
                    conn->peer[0] ? conn->peer : "none", why);
    conn->peer[0] = '\0';
    conn->local[0] = '\0';
    conn->plaintext = conn->tls = conn->verified = false;
    if (conn->tried < DELIVER_MAX_ADDRESSES &&
        conn->addr_index + 1 < conn->addr_count) {
        conn->addr_index++;
        if (conn_connect(conn))
            return;
    }
    if (conn->tried < DELIVER_MAX_ADDRESSES &&
        conn->host_index + 1 < conn->host_count) {
        conn->host_index++;
        conn_resolve_host(conn);
        return;
    }
    deliver_all_ready(conn, 451, "4.4.1", why);
    conn->stage = CONN_TALKING; /* nothing to drain */
    conn_free(conn);
}

/* An A or AAAA answer for the current host. */
static void
conn_on_addresses(void *arg, const sp_dns_addr_answer *answer)
{
    struct out_conn *conn = arg;
    char why[400];

    conn->lookups--;
    for (size_t i = 0; i < answer->count && conn->addr_count < SP_DNS_MAX_ADDRS;
         i++)
        conn->addrs[conn->addr_count++] = answer->addrs[i];
    if (conn->lookups > 0)
        return;
    if (conn->addr_count == 0) {
        snprintf(why, sizeof(why), "%s: no address found (A, AAAA)",
                 conn->hosts[conn->host_index].name);
        conn_try_next(conn, why);
        return;
    }
    conn->addr_index = 0;
    if (!conn_connect(conn))
        conn_fail(conn, "cannot open a connection (the log says why)");
}

/* Find the current host's addresses (at once for an address literal). */
static void
conn_resolve_host(struct out_conn *conn)
{
    struct conn_host *host = &conn->hosts[conn->host_index];
    sp_dns_resolver *resolver = conn->deliver->deps.resolver;
    sp_dns_addr *addr = &conn->addrs[0];
    sp_error err;

    conn->stage = CONN_RESOLVING;
    conn->addr_count = 0;
    conn->addr_index = 0;
    if (inet_pton(AF_INET, host->name, addr->bytes) == 1 ||
        inet_pton(AF_INET6, host->name, addr->bytes) == 1) {
        addr->family = strchr(host->name, ':') ? 6 : 4;
        conn->addr_count = 1;
        if (!conn_connect(conn))
            conn_fail(conn, "cannot open a connection (the log says why)");
        return;
    }
    conn->lookups = 2;
    if (sp_dns_resolver_addr_async(resolver, host->name, 4, conn_on_addresses,
                                   conn, &err) != SP_OK)
        conn->lookups--;
    if (sp_dns_resolver_addr_async(resolver, host->name, 6, conn_on_addresses,
                                   conn, &err) != SP_OK)
        conn->lookups--;
    if (conn->lookups == 0)
        conn_try_next(conn, err.text);
}

/* The destination's mail exchangers. */
static void
conn_on_mx(void *arg, const sp_dns_mx_answer *answer)
{
    struct out_conn *conn = arg;
    const char *domain = sp_sched_dest_route(conn->dest);
    bool shared = strcasecmp(domain, sp_sched_dest_name(conn->dest)) != 0;
    char why[400];

    conn->lookups--;

    /*
     * A domain that takes no mail bounces its jobs; a shared destination
     * holds other domains' jobs too, so they wait for a route instead.
     */
    if (shared && (answer->status == SP_DNS_NXDOMAIN || answer->null_mx)) {
        snprintf(why, sizeof(why), "%s, the route of %s, takes no mail (%s)",
                 domain, sp_sched_dest_name(conn->dest),
                 answer->null_mx ? "null MX" : "no such domain");
        conn_try_next(conn, why);
        return;
    }
    if (answer->status == SP_DNS_NXDOMAIN || answer->null_mx) {
        snprintf(why, sizeof(why),
                 answer->null_mx ? "%s does not accept mail (null MX, RFC 7505)"
                                 : "the domain %s does not exist",
                 domain);
        deliver_all_ready(conn, 550, answer->null_mx ? "5.1.10" : "5.1.2", why);
        conn->stage = CONN_TALKING;
        conn_free(conn);
        return;
    }
    if (answer->status != SP_DNS_OK || answer->count == 0) {
        snprintf(why, sizeof(why), "MX lookup for %s failed (%s)", domain,
                 answer->status == SP_DNS_TIMEOUT ? "timeout"
                                                  : "server failure");
        conn_try_next(conn, why);
        return;
    }
    for (size_t i = 0; i < answer->count; i++) {
        snprintf(conn->hosts[i].name, sizeof(conn->hosts[i].name), "%s",
                 answer->hosts[i].host);
        conn->hosts[i].port =
            (unsigned)conn->deliver->deps.config->delivery_port;
    }
    conn->host_count = answer->count;
    conn->host_index = 0;
    conn_resolve_host(conn);
}

/*
 * A static route for domain (delivery_routes, "domain=host:port" or
 * "domain=[address]:port"), or the smart host: true with host filled.
 */
static bool
conn_static_route(const sp_config *config, const char *domain,
                  struct conn_host *host)
{
    const char *target = NULL;
    const char *colon;
    size_t domain_len = strlen(domain);

    for (size_t i = 0; i < config->delivery_routes.count && !target; i++) {
        const char *route = config->delivery_routes.items[i];

        if (strncasecmp(route, domain, domain_len) == 0 &&
            route[domain_len] == '=')
            target = route + domain_len + 1;
    }
    if (target == NULL && config->delivery_smarthost[0] != '\0')
        target = config->delivery_smarthost;
    if (target == NULL)
        return false;
    host->port = 25;
    if (*target == '[') {
        const char *close = strchr(target, ']');
        size_t len = close ? (size_t)(close - target - 1) : 0;

        snprintf(host->name, sizeof(host->name), "%.*s", (int)len, target + 1);
        colon = close ? strchr(close, ':') : NULL;
    } else {
        colon = strrchr(target, ':');
        snprintf(host->name, sizeof(host->name), "%.*s",
                 (int)(colon ? (size_t)(colon - target) : strlen(target)),
                 target);
    }
    if (colon != NULL)
        host->port = (unsigned)atoi(colon + 1);
    return true;
}

/* Open a connection for dest: find its route first. */
static void
deliver_open(struct daemon_deliver *deliver, sp_sched_dest *dest)
{
    struct out_conn *conn = sp_calloc(1, sizeof(*conn));
    const char *domain = sp_sched_dest_route(dest);
    sp_error err;

    if (conn == NULL) {
        sp_sched_disconnected(dest, true);
        return;
    }
    conn->deliver = deliver;
    conn->dest = dest;
    conn->waiting = true;
    conn->stage = CONN_RESOLVING;
    conn->next = deliver->conns;
    if (conn->next != NULL)
        conn->next->prev = conn;
    deliver->conns = conn;
    deliver->connections++;
    conn->idle = event_new(deliver->deps.base, -1, 0, conn_on_idle, conn);
    conn->deadline =
        event_new(deliver->deps.base, -1, 0, conn_on_deadline, conn);
    if (conn->idle == NULL || conn->deadline == NULL) {
        conn_free(conn);
        return;
    }
    if (conn_static_route(deliver->deps.config, domain, &conn->hosts[0])) {
        conn->host_count = 1;
        conn_resolve_host(conn);
        return;
    }
    conn->lookups = 1;
    if (sp_dns_resolver_mx_async(deliver->deps.resolver, domain, conn_on_mx,
                                 conn, &err) != SP_OK) {
        conn->lookups = 0;
        conn_try_next(conn, err.text);
    }
}

/* ------------------------------------------------------------------------
 * The scheduler's turn
 */

static void
deliver_run(evutil_socket_t fd, short what, void *arg)
{
    struct daemon_deliver *deliver = arg;
    int64_t now = now_ms(), next;
    sp_sched_dest *dest;

    (void)fd;
    (void)what;
    if (deliver->stopping || deliver->deps.config->delivery_hold)
        return;
    next = sp_sched_advance(deliver->sched, now);

    /* Idle connections take what became ready for them. */
    for (struct out_conn *conn = deliver->conns, *after; conn; conn = after) {
        after = conn->next;
        if (conn->stage == CONN_IDLE && sp_sched_dest_ready(conn->dest) > 0) {
            event_del(conn->idle);
            conn_ready(conn);
        }
    }

    /* New connections where the ready jobs call for them. */
    while (deliver->connections <
               (unsigned)deliver->deps.config->delivery_max_connections &&
           (dest = sp_sched_connect_next(deliver->sched, now)) != NULL)
        deliver_open(deliver, dest);

    if (next != INT64_MAX) {
        int64_t wait = next > now ? next - now : 0;

        event_add(
            deliver->timer,
            &(struct timeval){.tv_sec = (time_t)(wait / 1000),
                              .tv_usec = (suseconds_t)(wait % 1000) * 1000});
    }
}

/* Run the scheduler once the current callbacks are done. */
static void
deliver_schedule_run(struct daemon_deliver *deliver)
{
    if (!deliver->stopping)
        event_active(deliver->kick, EV_TIMEOUT, 0);
}

/* Put a job in the scheduler at dest, for domain (daemon_place_fn). */
static void
deliver_place(void *arg, const char *domain, const char *dest,
              daemon_pending_job *pending)
{
    struct daemon_deliver *deliver = arg;
    sp_sched_job *job;

    if (sp_sched_add(deliver->sched, dest, domain, pending->id,
                     pending->positions, pending->count, pending->due_ms,
                     now_ms(), &job) != SP_OK)
        sp_log_error("schedule queue_id=%s error=\"out of memory; the "
                     "message waits for a restart\"",
                     pending->id);
    else
        job->attempts = pending->attempts;
    sp_free(pending);
    deliver_schedule_run(deliver);
}

/* Order recipient positions by their domain (for qsort_r). */
static int
deliver_by_domain(const void *left, const void *right, void *arg)
{
    const char *const *recipients = arg;

    return strcasecmp(address_domain(recipients[*(const size_t *)left]),
                      address_domain(recipients[*(const size_t *)right]));
}

/* A job for message info's recipients at order[0..count). */
static daemon_pending_job *
deliver_job(const sp_queue_info *info, const size_t *order, size_t count)
{
    daemon_pending_job *job =
        sp_calloc(1, sizeof(*job) + count * sizeof(job->positions[0]));

    if (job == NULL)
        return NULL;
    snprintf(job->id, sizeof(job->id), "%s", info->id);
    for (size_t k = 0; k < count; k++) {
        const sp_queue_rcpt *rcpt = info->rcpt ? &info->rcpt[order[k]] : NULL;

        job->positions[job->count++] = order[k];
        if (rcpt != NULL && rcpt->next_try_ms > job->due_ms)
            job->due_ms = rcpt->next_try_ms;
        if (rcpt != NULL && rcpt->attempts > job->attempts)
            job->attempts = rcpt->attempts;
    }
    return job;
}

/*
 * Add message info's pending recipients as jobs, one per domain, each at
 * the destination its rules give (after an MX lookup when rules group
 * domains by MX host).  Recipients are sorted by domain first, so a
 * message for many domains costs n log n, not n times its domains.
 */
static void
deliver_add(struct daemon_deliver *deliver, const sp_queue_info *info,
            int64_t now)
{
    size_t *order = sp_calloc(info->recipient_count + 1, sizeof(*order));
    size_t count = 0, end;

    for (size_t i = 0; order != NULL && i < info->recipient_count; i++)
        if (info->rcpt == NULL || info->rcpt[i].state == SP_QUEUE_RCPT_PENDING)
            order[count++] = i;
    if (order != NULL)
        qsort_r(order, count, sizeof(*order), deliver_by_domain,
                (void *)info->recipients);

    for (size_t start = 0; order != NULL && start < count; start = end) {
        const char *domain = address_domain(info->recipients[order[start]]);
        daemon_pending_job *job;

        for (end = start + 1; end < count; end++)
            if (strcasecmp(address_domain(info->recipients[order[end]]),
                           domain) != 0)
                break;
        job = deliver_job(info, order + start, end - start);
        if (job == NULL) {
            sp_free(order);
            order = NULL;
        } else if (deliver->groups != NULL)
            daemon_mxgroups_place(deliver->groups, domain, job, now);
        else
            deliver_place(deliver, domain,
                          sp_sched_dest_for(deliver->sched, domain, NULL), job);
    }
    if (order == NULL)
        sp_log_error("schedule queue_id=%s error=\"out of memory; the "
                     "message waits for a restart\"",
                     info->id);
    sp_free(order);
    deliver_schedule_run(deliver);
}

static void
deliver_add_stored(void *arg, const sp_queue_info *info)
{
    deliver_add(arg, info, now_ms());
}

void
daemon_deliver_queued(struct daemon_deliver *deliver, const sp_queue_info *info)
{
    deliver_add(deliver, info, now_ms());
}

/* A bounce the spool took (daemon_queued_fn). */
static void
deliver_queued_info(void *arg, const sp_queue_info *info)
{
    daemon_deliver_queued(arg, info);
}

/*
 * The client TLS contexts: one that takes any certificate (tls=may and
 * encrypt, as opportunistic TLS does, RFC 7435), one that verifies
 * against delivery_tls_ca_file or the system's authorities.  A context
 * that cannot be made leaves its policy unable to start TLS: "may" then
 * delivers in plaintext, "encrypt" and "verify" defer.  A CA file that
 * cannot be read is SP_ESYNTAX.
 */
static int
deliver_tls_contexts(struct daemon_deliver *deliver, const sp_config *config,
                     sp_error *err)
{
    deliver->tls = SSL_CTX_new(TLS_client_method());
    if (deliver->tls != NULL) {
        SSL_CTX_set_min_proto_version(deliver->tls, TLS1_2_VERSION);
        SSL_CTX_set_verify(deliver->tls, SSL_VERIFY_NONE, NULL);
    }
    deliver->tls_verify = SSL_CTX_new(TLS_client_method());
    if (deliver->tls_verify == NULL) {
        ERR_clear_error();
        return SP_OK;
    }
    SSL_CTX_set_min_proto_version(deliver->tls_verify, TLS1_2_VERSION);
    SSL_CTX_set_verify(deliver->tls_verify, SSL_VERIFY_PEER, NULL);
    if (config->delivery_tls_ca_file[0] == '\0') {
        SSL_CTX_set_default_verify_paths(deliver->tls_verify);
        ERR_clear_error();
        return SP_OK;
    }
    if (SSL_CTX_load_verify_locations(
            deliver->tls_verify, config->delivery_tls_ca_file, NULL) != 1) {
        ERR_clear_error();
        return sp_err_set(err, SP_ESYNTAX,
                          "delivery_tls_ca_file = %.200s: cannot read "
                          "certificates (PEM) from it",
                          config->delivery_tls_ca_file);
    }
    return SP_OK;
}

int
daemon_deliver_start(const struct daemon_deliver_deps *deps,
                     struct daemon_deliver **out, sp_error *err)
{
    const sp_config *config = deps->config;
    struct daemon_deliver *deliver = sp_calloc(1, sizeof(*deliver));
    sp_sched_limits defaults;
    sp_sched_rule *rules = NULL;
    size_t rule_count = 0;
    int rc;

    *out = NULL;
    if (deliver == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    deliver->deps = *deps;
    for (size_t i = 0; i < config->delivery_retry_schedule.count &&
                       i < sizeof(deliver->retry_schedule) /
                               sizeof(deliver->retry_schedule[0]);
         i++)
        if (sp_config_parse_duration(config->delivery_retry_schedule.items[i],
                                     &deliver->retry_schedule[i]))
            deliver->retry_count++;
    rc = sp_sched_settings(config, &defaults, &rules, &rule_count, err);
    if (rc == SP_OK)
        rc = sp_sched_new(&defaults, rules, rule_count, &deliver->sched, err);
    sp_free(rules);
    if (rc == SP_OK)
        rc = deliver_tls_contexts(deliver, config, err);
    if (rc == SP_OK && config->delivery_bounce_messages &&
        (deliver->dsn =
             daemon_dsn_new(deps->queue, deps->mailbox, deps->hostname,
                            deliver_queued_info, deliver)) == NULL)
        rc = sp_err_set(err, SP_ENOMEM, "out of memory");
    if (rc == SP_OK && sp_sched_groups_by_mx(deliver->sched) &&
        (deliver->groups = daemon_mxgroups_new(deliver->sched, deps->resolver,
                                               deliver_place, deliver)) == NULL)
        rc = sp_err_set(err, SP_ENOMEM, "out of memory");
    deliver->kick = event_new(deps->base, -1, 0, deliver_run, deliver);
    deliver->timer = event_new(deps->base, -1, 0, deliver_run, deliver);
    if (rc == SP_OK && (deliver->kick == NULL || deliver->timer == NULL))
        rc = sp_err_set(err, SP_ENOMEM, "out of memory");

    /* Every pending recipient in the spool, from the start. */
    if (rc == SP_OK)
        rc = sp_queue_list(deps->queue, deliver_add_stored, deliver, err);
    if (rc != SP_OK) {
        daemon_deliver_stop(deliver);
        return rc;
    }
    if (config->delivery_smarthost[0] != '\0')
        sp_log_info("delivery jobs=%zu route=smarthost relay=%s hold=%s",
                    sp_sched_jobs(deliver->sched), config->delivery_smarthost,
                    config->delivery_hold ? "yes" : "no");
    else
        sp_log_info("delivery jobs=%zu route=mx port=%lld hold=%s",
                    sp_sched_jobs(deliver->sched),
                    (long long)config->delivery_port,
                    config->delivery_hold ? "yes" : "no");
    *out = deliver;
    return SP_OK;
}

void
daemon_deliver_stop(struct daemon_deliver *deliver)
{
    if (deliver == NULL)
        return;
    deliver->stopping = true;

    /* Jobs in flight stay pending in the spool: tried again at start. */
    while (deliver->conns != NULL) {
        struct out_conn *conn = deliver->conns;

        if (conn->job != NULL) {
            sp_sched_done(deliver->sched, conn->job);
            conn->job = NULL;
        }
        conn->stage = CONN_CLOSING;
        conn_free(conn);
    }
    daemon_mxgroups_free(deliver->groups);
    daemon_dsn_free(deliver->dsn);
    if (deliver->kick != NULL)
        event_free(deliver->kick);
    if (deliver->timer != NULL)
        event_free(deliver->timer);
    if (deliver->tls != NULL)
        SSL_CTX_free(deliver->tls);
    if (deliver->tls_verify != NULL)
        SSL_CTX_free(deliver->tls_verify);
    sp_sched_free(deliver->sched);
    sp_free(deliver);
}
