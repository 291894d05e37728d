/*
 * smtp_server.c: sealpostd's SMTP listeners and the limits on connections.
 *
 * Owns daemon_smtp_start, daemon_smtp_stop and the per-client counts.
 * Every address of smtp_listen gets a listener on the event loop; a new
 * connection over smtp_max_connections in all, or over
 * smtp_max_per_client from one address, is told 421 and closed.  When
 * the process runs out of descriptors, accepting pauses for a second
 * instead of spinning; connections already open carry on.
 */
#include "smtp_int.h"

#include "mail/mail.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static unsigned
client_bucket(const char *ip)
{
    return sp_mail_name_hash(ip, strlen(ip)) % SMTP_CLIENT_BUCKETS;
}

bool
smtp__client_enter(struct daemon_smtp *smtp, const char *ip)
{
    struct smtp_client **bucket = &smtp->clients[client_bucket(ip)];
    struct smtp_client *client = *bucket;

    while (client != NULL && strcmp(client->ip, ip) != 0)
        client = client->next;
    if (client != NULL &&
        client->open >= (size_t)smtp->deps.config->smtp_max_per_client)
        return false;
    if (client == NULL) {
        client = sp_calloc(1, sizeof(*client));
        if (client == NULL)
            return false;
        snprintf(client->ip, sizeof(client->ip), "%s", ip);
        client->next = *bucket;
        *bucket = client;
    }
    client->open++;
    return true;
}

void
smtp__client_leave(struct daemon_smtp *smtp, const char *ip)
{
    struct smtp_client **link = &smtp->clients[client_bucket(ip)];

    while (*link != NULL && strcmp((*link)->ip, ip) != 0)
        link = &(*link)->next;
    if (*link == NULL)
        return;
    if (--(*link)->open == 0) {
        struct smtp_client *gone = *link;

        *link = gone->next;
        sp_free(gone);
    }
}

/* The listener's callback: one accepted socket. */
static void
on_accept(struct evconnlistener *listener, evutil_socket_t fd,
          struct sockaddr *address, int length, void *arg)
{
    char ip[64] = "unknown";

    (void)listener;
    (void)length;
    if (address->sa_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)address)->sin_addr, ip,
                  sizeof(ip));
    else if (address->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)address)->sin6_addr, ip,
                  sizeof(ip));
    smtp__conn_open(arg, fd, ip);
}

#define SMTP_ACCEPT_PAUSE_S 1 /* seconds without accepting after EMFILE */

/* The pause is over: accept again. */
static void
on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct smtp_listener *slot = arg;

    (void)fd;
    (void)what;
    evconnlistener_enable(slot->listener);
}

/*
 * accept() failed for a reason other than a client giving up.  Out of
 * descriptors (or kernel memory), the listening socket stays readable, so
 * retrying at once would spin: stop accepting for a moment.  The waiting
 * clients stay in the backlog and are served when descriptors free up.
 */
static void
on_accept_error(struct evconnlistener *listener, void *arg)
{
    struct smtp_listener *slot = arg;
    struct timeval pause = {.tv_sec = SMTP_ACCEPT_PAUSE_S};
    int error = EVUTIL_SOCKET_ERROR();

    sp_log_warning("accept address=%s error=\"%s\" connections=%zu "
                   "note=\"not accepting for %d s\"",
                   slot->address, strerror(error), slot->smtp->connections,
                   SMTP_ACCEPT_PAUSE_S);
    evconnlistener_disable(listener);
    if (evtimer_add(slot->resume, &pause) != 0)
        evconnlistener_enable(listener);
}

bool
daemon_parse_address(const char *text, struct sockaddr_storage *out,
                     int *length, bool *loopback)
{
    int len = (int)sizeof(*out);

    memset(out, 0, sizeof(*out));
    if (evutil_parse_sockaddr_port(text, (struct sockaddr *)out, &len) != 0)
        return false;
    *length = len;
    if (out->ss_family == AF_INET)
        *loopback =
            (ntohl(((struct sockaddr_in *)out)->sin_addr.s_addr) >> 24) == 127;
    else
        *loopback =
            IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)out)->sin6_addr);
    return ((struct sockaddr_in *)out)->sin_port != 0;
}

/* Bind one listener. */
static int
listen_on(struct daemon_smtp *smtp, struct smtp_listener *slot,
          const char *address, sp_error *err)
{
    struct sockaddr_storage where;
    int length;

    if (!daemon_parse_address(address, &where, &length, &slot->loopback))
        return sp_err_set(err, SP_EINVAL,
                          "smtp_listen %s: expected ADDR:PORT or [ADDR6]:PORT",
                          address);
    slot->smtp = smtp;
    snprintf(slot->address, sizeof(slot->address), "%s", address);
    slot->listener = evconnlistener_new_bind(
        smtp->deps.base, on_accept, slot,
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 1024,
        (struct sockaddr *)&where, length);
    if (slot->listener == NULL)
        return sp_err_set(err, SP_EIO, "smtp_listen %s: %s", address,
                          strerror(errno));
    slot->resume = evtimer_new(smtp->deps.base, on_resume, slot);
    if (slot->resume == NULL) {
        evconnlistener_free(slot->listener);
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    }
    evconnlistener_set_error_cb(slot->listener, on_accept_error);
    return SP_OK;
}

/* The engine's limits, from the configuration. */
static void
smtp_limits(const sp_config *config, sp_smtp_limits *limits)
{
    *limits = (sp_smtp_limits){
        .max_message = (size_t)config->smtp_max_message,
        .max_recipients = (size_t)config->smtp_max_recipients,
        .max_command = (size_t)config->smtp_max_command,
        .max_text_line = (size_t)config->smtp_max_text_line,
        .max_errors = (unsigned)config->smtp_max_errors,
        .normalize_eol = strcmp(config->smtp_bare_eol, "normalize") == 0,
        .command_timeout = (unsigned)config->smtp_command_timeout,
        .data_start_timeout = (unsigned)config->smtp_data_start_timeout,
        .data_timeout = (unsigned)config->smtp_data_timeout,
    };
}

int
daemon_smtp_start(const struct daemon_smtp_deps *deps, struct daemon_smtp **out,
                  sp_error *err)
{
    const sp_config_list *addresses = &deps->config->smtp_listen;
    struct daemon_smtp *smtp = sp_calloc(1, sizeof(*smtp));
    int rc = SP_OK;

    *out = NULL;
    if (smtp == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    smtp->deps = *deps;
    smtp_limits(deps->config, &smtp->limits);
    smtp->listeners = sp_calloc(addresses->count + 1, sizeof(*smtp->listeners));
    if (smtp->listeners == NULL)
        rc = sp_err_set(err, SP_ENOMEM, "out of memory");
    if (rc == SP_OK)
        rc = daemon_tls_context(deps->config, deps->hostname, &smtp->tls, err);

    for (size_t i = 0; rc == SP_OK && i < addresses->count; i++) {
        rc = listen_on(smtp, &smtp->listeners[i], addresses->items[i], err);
        if (rc == SP_OK) {
            smtp->listener_count++;
            sp_log_info("listening service=smtp address=%s hostname=%s "
                        "auth=%s note=\"try: swaks --server %s --to "
                        "someone@example.com%s\"",
                        addresses->items[i], deps->hostname,
                        deps->config->smtp_require_auth ? "required"
                                                        : "optional",
                        addresses->items[i],
                        deps->config->smtp_require_auth
                            ? " --tls --auth PLAIN --auth-user NAME "
                              "--auth-password KEY (sealpost apikey create)"
                            : "");
        }
    }
    if (rc != SP_OK) {
        daemon_smtp_stop(smtp);
        return rc;
    }
    *out = smtp;
    return SP_OK;
}

void
daemon_smtp_stop(struct daemon_smtp *smtp)
{
    if (smtp == NULL)
        return;
    for (size_t i = 0; i < smtp->listener_count; i++) {
        evconnlistener_free(smtp->listeners[i].listener);
        event_free(smtp->listeners[i].resume);
    }
    smtp->listener_count = 0;
    while (smtp->conns != NULL)
        smtp__conn_close(smtp->conns);
    for (size_t i = 0; i < SMTP_CLIENT_BUCKETS; i++)
        while (smtp->clients[i] != NULL) {
            struct smtp_client *next = smtp->clients[i]->next;

            sp_free(smtp->clients[i]);
            smtp->clients[i] = next;
        }
    SSL_CTX_free(smtp->tls);
    sp_free(smtp->listeners);
    sp_free(smtp);
}
