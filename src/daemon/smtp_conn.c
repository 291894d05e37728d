/*
 * smtp_conn.c: one SMTP connection on the event loop: bytes from the
 * socket into the protocol engine, its replies back out, STARTTLS, the
 * per-state timeouts, the minimum data rate, and the owner's decisions
 * (AUTH against API keys, the sender domains a key allows, free space).
 *
 * Owns smtp__conn_open, smtp__conn_close, smtp__conn_flush and
 * smtp__conn_next.  A connection whose message is being committed when the
 * client goes away is kept (gone) until the spool answers, so the answer
 * never lands on freed memory.
 */
#include "smtp_int.h"

#include "crypt/crypt.h"

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define CONN_READ_CHUNK 16384
#define CONN_RATE_GRACE 30 /* seconds of data before the rate counts */

static void conn_on_read(struct bufferevent *bev, void *arg);
static void conn_on_event(struct bufferevent *bev, short what, void *arg);
static void conn_start_tls(struct smtp_conn *conn);

/* The read timeout for the session's current state. */
static void
conn_timeouts(struct smtp_conn *conn)
{
    struct timeval read = {
        .tv_sec = (time_t)sp_smtp_session_timeout(conn->session),
    };
    struct timeval write = {.tv_sec = 300};

    bufferevent_set_timeouts(conn->bev, &read, &write);
}

void
smtp__conn_flush(struct smtp_conn *conn)
{
    if (conn->out.len > 0 && conn->bev != NULL)
        bufferevent_write(conn->bev, conn->out.data, conn->out.len);
    sp_buf_reset(&conn->out);
}

/* Free the connection's memory; the socket is already closed. */
static void
conn_free(struct smtp_conn *conn)
{
    sp_smtp_session_free(conn->session);
    sp_buf_free(&conn->out);
    sp_free(conn);
}

/*
 * Send TLS close_notify, so the client can tell a finished session from a
 * cut one.  The socket is non-blocking and the alert is a few dozen
 * octets: if the kernel cannot take it now, the close goes without it.
 */
static void
conn_tls_goodbye(struct smtp_conn *conn)
{
    SSL *ssl = bufferevent_openssl_get_ssl(conn->bev);

    if (ssl != NULL && SSL_is_init_finished(ssl))
        (void)SSL_shutdown(ssl);
    ERR_clear_error();
}

void
smtp__conn_close(struct smtp_conn *conn)
{
    struct daemon_smtp *smtp = conn->smtp;

    if (conn->gone)
        return;
    if (conn->prev != NULL)
        conn->prev->next = conn->next;
    else
        smtp->conns = conn->next;
    if (conn->next != NULL)
        conn->next->prev = conn->prev;
    smtp->connections--;
    smtp__client_leave(smtp, conn->ip);
    if (conn->bev != NULL && conn->tls)
        conn_tls_goodbye(conn);
    if (conn->bev != NULL)
        bufferevent_free(conn->bev);
    conn->bev = NULL;
    conn->gone = true;

    /* The spool's answer frees it; see accept.c. */
    if (!conn->submitting)
        conn_free(conn);
}

/* Once the replies are out, close: QUIT, a fatal error, a timeout. */
static void
conn_on_drained(struct bufferevent *bev, void *arg)
{
    struct smtp_conn *conn = arg;

    (void)bev;
    if (conn->tls_pending)
        conn_start_tls(conn);
    else if (conn->closing)
        smtp__conn_close(conn);
}

static void
conn_close_after_output(struct smtp_conn *conn)
{
    conn->closing = true;
    bufferevent_disable(conn->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_output(conn->bev)) == 0)
        smtp__conn_close(conn);
}

/*
 * Move the socket from the plain bufferevent to a TLS one.  The STARTTLS
 * 220 must reach the kernel first, so until the plain output is empty this
 * only waits (conn_on_drained calls back).  Plaintext the client sent
 * behind STARTTLS is dropped, never read (RFC 3207).
 */
static void
conn_start_tls(struct smtp_conn *conn)
{
    struct evbuffer *unread = bufferevent_get_input(conn->bev);
    evutil_socket_t fd;
    struct bufferevent *tls;
    SSL *ssl;

    evbuffer_drain(unread, evbuffer_get_length(unread));
    bufferevent_disable(conn->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_output(conn->bev)) > 0) {
        conn->tls_pending = true;
        return;
    }
    conn->tls_pending = false;

    /* Detach the descriptor so freeing the plain side leaves it open. */
    fd = bufferevent_getfd(conn->bev);
    bufferevent_setfd(conn->bev, -1);
    bufferevent_free(conn->bev);
    conn->bev = NULL;

    ssl = SSL_new(conn->smtp->tls);
    if (ssl == NULL) {
        ERR_clear_error();
        evutil_closesocket(fd);
        sp_log_error("starttls client=%s error=\"out of memory\"", conn->ip);
        smtp__conn_close(conn);
        return;
    }
    tls = bufferevent_openssl_socket_new(
        conn->smtp->deps.base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
        BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (tls == NULL) {
        /*
         * Whether libevent has already freed ssl and closed fd depends on
         * how far it got, so neither is touched again: out of memory, a
         * leak is the lesser harm than a double close.
         */
        ERR_clear_error();
        sp_log_error("starttls client=%s error=\"out of memory\"", conn->ip);
        smtp__conn_close(conn);
        return;
    }
    conn->bev = tls;
    conn->tls = true;
    bufferevent_setcb(tls, conn_on_read, conn_on_drained, conn_on_event, conn);
    bufferevent_enable(tls, EV_READ | EV_WRITE);
    sp_smtp_session_tls_started(conn->session, true);
    conn_timeouts(conn);
}

void
smtp__conn_next(struct smtp_conn *conn, sp_smtp_next next)
{
    smtp__conn_flush(conn);
    switch (next) {
    case SP_SMTP_READ:
        bufferevent_enable(conn->bev, EV_READ);
        conn_timeouts(conn);
        break;
    case SP_SMTP_WAIT:
        bufferevent_disable(conn->bev, EV_READ);
        break;
    case SP_SMTP_STARTTLS:
        conn_start_tls(conn);
        break;
    case SP_SMTP_CLOSE:
        conn_close_after_output(conn);
        break;
    }
}

/*
 * The minimum data rate: after CONN_RATE_GRACE seconds of data, a client
 * sending less than smtp_min_data_rate octets a second is cut off.
 */
static bool
conn_too_slow(struct smtp_conn *conn, size_t got)
{
    time_t now = time(NULL);
    int64_t floor = conn->smtp->deps.config->smtp_min_data_rate;

    if (!sp_smtp_session_receiving(conn->session)) {
        conn->data_since = 0;
        conn->data_bytes = 0;
        return false;
    }
    if (conn->data_since == 0)
        conn->data_since = now;
    conn->data_bytes += got;
    return now - conn->data_since > CONN_RATE_GRACE &&
           (int64_t)conn->data_bytes <
               floor * (int64_t)(now - conn->data_since);
}

static void
conn_on_read(struct bufferevent *bev, void *arg)
{
    struct smtp_conn *conn = arg;
    struct evbuffer *input = bufferevent_get_input(bev);
    char chunk[CONN_READ_CHUNK];
    sp_smtp_next next = SP_SMTP_READ;

    /* Feed until the session waits or wants something else done. */
    while (next == SP_SMTP_READ && evbuffer_get_length(input) > 0) {
        int got = evbuffer_remove(input, chunk, sizeof(chunk));

        if (got <= 0)
            break;
        if (conn_too_slow(conn, (size_t)got)) {
            sp_buf_append_str(&conn->out, "421 4.4.2 data too slow; "
                                          "closing\r\n");
            next = SP_SMTP_CLOSE;
            break;
        }
        next = sp_smtp_session_input(conn->session, chunk, (size_t)got,
                                     &conn->out);
    }
    smtp__conn_next(conn, next);
}

static void
conn_on_event(struct bufferevent *bev, short what, void *arg)
{
    struct smtp_conn *conn = arg;

    (void)bev;
    if (what & BEV_EVENT_TIMEOUT) {
        sp_log_info("timeout client=%s", conn->ip);
        sp_buf_append_str(&conn->out, "421 4.4.2 timeout; closing\r\n");
        smtp__conn_flush(conn);
        conn_close_after_output(conn);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        if (what & BEV_EVENT_ERROR)
            ERR_clear_error();
        smtp__conn_close(conn);
    }
}

/* AUTH: the password is an API key; the identity is the key's name. */
static bool
conn_authenticate(void *arg, const char *user, const char *password,
                  char *identity, size_t size)
{
    struct smtp_conn *conn = arg;
    unsigned char hash[32];
    sp_store_apikey key;
    sp_error err;

    (void)user;
    sp_crypt_apikey_hash(password, strlen(password), hash);
    if (sp_store_apikey_find(conn->smtp->deps.store, hash, &key, &err) !=
        SP_OK) {
        if (err.code != SP_ENOTFOUND)
            sp_log_warning("auth client=%s error=\"%s\"", conn->ip, err.text);
        sp_log_info("auth client=%s result=failed", conn->ip);
        return false;
    }
    if (!sp_store_apikey_allows(&key, "send")) {
        sp_log_info("auth client=%s identity=%s result=failed "
                    "reason=\"the key may not send\"",
                    conn->ip, key.name);
        return false;
    }
    snprintf(identity, size, "%s", key.name);
    snprintf(conn->identity, sizeof(conn->identity), "%s", key.name);
    snprintf(conn->domains, sizeof(conn->domains), "%s", key.domains);
    return true;
}

bool
smtp__conn_domain_allowed(const char *domains, const char *domain)
{
    char list[512], *save = NULL;

    if (domains[0] == '\0')
        return true;
    if (domain == NULL || domain[0] == '\0')
        return false;
    snprintf(list, sizeof(list), "%s", domains);
    for (char *allowed = strtok_r(list, ",", &save); allowed != NULL;
         allowed = strtok_r(NULL, ",", &save))
        if (strcasecmp(allowed, domain) == 0)
            return true;
    return false;
}

static void
conn_mail(void *arg, const sp_smtp_envelope *envelope, sp_smtp_reply *reply)
{
    struct smtp_conn *conn = arg;
    const char *at = strrchr(envelope->sender, '@');

    if (!sp_queue_has_room(conn->smtp->deps.queue, envelope->declared_size))
        sp_smtp_reply_set(reply, 452, "4.3.1",
                          "insufficient system storage; try again later");
    else if (!smtp__conn_domain_allowed(conn->domains,
                                        at != NULL ? at + 1 : NULL)) {
        sp_smtp_reply_set(reply, 553, "5.7.1",
                          "this API key may not send from that domain");
        smtp__conn_refused(conn, envelope, NULL, reply);
    }
}

/*
 * A report address takes a message of its own: its mail is stored as
 * reports, the rest is relayed, and one message cannot be both.  The
 * client is told to send the other recipients again (RFC 5321 3.3).
 */
static void
conn_rcpt(void *arg, const sp_smtp_envelope *envelope, const char *recipient,
          sp_smtp_reply *reply)
{
    struct smtp_conn *conn = arg;
    const sp_config *config = conn->smtp->deps.config;

    if (envelope->recipient_count > 0 &&
        daemon_reports_address(config, envelope->recipients[0]) !=
            daemon_reports_address(config, recipient))
        sp_smtp_reply_set(reply, 452, "4.5.3",
                          "a DMARC report address takes mail of its own; "
                          "send to this recipient separately");
}

/* Report addresses take mail without AUTH: other servers send reports. */
static bool
conn_open_recipient(void *arg, const char *recipient)
{
    struct smtp_conn *conn = arg;

    return daemon_reports_address(conn->smtp->deps.config, recipient);
}

void
smtp__conn_open(struct smtp_listener *listener, evutil_socket_t fd,
                const char *ip)
{
    struct daemon_smtp *smtp = listener->smtp;
    const sp_config *config = smtp->deps.config;
    sp_smtp_callbacks callbacks;
    sp_smtp_context context;
    struct smtp_conn *conn;
    sp_error err;

    /* Over a limit: one line, then close. */
    if (smtp->connections >= (size_t)config->smtp_max_connections ||
        !smtp__client_enter(smtp, ip)) {
        static const char busy[] = "421 4.7.0 too many connections; try "
                                   "again later\r\n";

        if (send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
            (void)0; /* the client learns from the close as well */
        evutil_closesocket(fd);
        sp_log_info("refused client=%s reason=too-many-connections", ip);
        return;
    }

    conn = sp_calloc(1, sizeof(*conn));
    if (conn != NULL)
        conn->bev =
            bufferevent_socket_new(smtp->deps.base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (conn == NULL || conn->bev == NULL) {
        sp_free(conn);
        evutil_closesocket(fd);
        smtp__client_leave(smtp, ip);
        sp_log_error("connection client=%s error=\"out of memory\"", ip);
        return;
    }
    conn->smtp = smtp;
    conn->mailbox = smtp->deps.mailbox;
    conn->loopback = listener->loopback;
    snprintf(conn->ip, sizeof(conn->ip), "%s", ip);
    conn->next = smtp->conns;
    if (conn->next != NULL)
        conn->next->prev = conn;
    smtp->conns = conn;
    smtp->connections++;

    context = (sp_smtp_context){
        .hostname = smtp->deps.hostname,
        .client_ip = conn->ip,
        .tls_available = smtp->tls != NULL,
        .auth_allowed = conn->loopback && config->smtp_plain_auth_loopback,
        .auth_required = config->smtp_require_auth,
    };
    callbacks = (sp_smtp_callbacks){
        .arg = conn,
        .authenticate = conn_authenticate,
        .mail = conn_mail,
        .rcpt = conn_rcpt,
        .message = smtp__accept,
        .open_recipient = config->dmarc_report_addresses.count > 0
                              ? conn_open_recipient
                              : NULL,
    };
    if (sp_smtp_session_new(&smtp->limits, &context, &callbacks, &conn->session,
                            &conn->out, &err) != SP_OK) {
        sp_log_error("connection client=%s error=\"%s\"", ip, err.text);
        smtp__conn_close(conn);
        return;
    }
    bufferevent_setcb(conn->bev, conn_on_read, conn_on_drained, conn_on_event,
                      conn);
    smtp__conn_next(conn, SP_SMTP_READ);
}
