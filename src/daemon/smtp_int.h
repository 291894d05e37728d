/*
 * smtp_int.h: names shared by the files of sealpostd's SMTP service:
 * smtp_server.c (listeners, limits), smtp_conn.c (one connection),
 * accept.c (what happens to a finished message) and event_fields.c (what
 * its events carry).
 */
#ifndef SP_DAEMON_SMTP_INT_H
#define SP_DAEMON_SMTP_INT_H

#include "daemon.h"
#include "mail/mail.h"

#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <time.h>

#define SMTP_CLIENT_BUCKETS 1024

/* How many connections one client address has open. */
struct smtp_client {
    char ip[64];
    size_t open;
    struct smtp_client *next; /* in its bucket */
};

struct smtp_listener {
    struct evconnlistener *listener;
    struct daemon_smtp *smtp;
    char address[80];     /* as configured, for logs */
    bool loopback;        /* bound to a loopback address */
    struct event *resume; /* re-enables accepting after running out of
                             descriptors; owned */
};

struct smtp_conn;

struct daemon_smtp {
    struct daemon_smtp_deps deps;
    SSL_CTX *tls;                    /* owned, STARTTLS */
    sp_smtp_limits limits;           /* from the configuration */
    struct smtp_listener *listeners; /* owned array */
    size_t listener_count;
    size_t connections; /* open now */
    struct smtp_client *clients[SMTP_CLIENT_BUCKETS];
    struct smtp_conn *conns; /* every open connection */
};

/* One client connection and its session. */
struct smtp_conn {
    struct daemon_smtp *smtp;         /* gone with the service at stop */
    struct daemon_mailbox *mailbox;   /* outlives the service: the spool's
                                         answers arrive through it */
    struct smtp_conn *prev, *next;    /* in smtp->conns */
    struct bufferevent *bev;          /* owned; the TLS filter once up */
    sp_smtp_session *session;         /* owned */
    char ip[64];                      /* the client's address */
    bool loopback;                    /* came in on a loopback listener */
    bool tls;                         /* TLS is up */
    bool submitting;                  /* a message is with the spool */
    bool gone;                        /* the socket is closed; the struct
                                         waits for the spool's answer */
    bool closing;                     /* close once the replies are out */
    bool tls_pending;                 /* start TLS once the 220 is out */
    sp_buf out;                       /* replies not yet written */
    char identity[64];                /* API key name after AUTH */
    char domains[512];                /* sender domains the key allows */
    uint64_t data_bytes;              /* received while in data */
    time_t data_since;                /* when the data began, or 0 */
    char queue_id[SP_QUEUE_ID_SIZE];  /* of the message being stored */
    const sp_smtp_envelope *envelope; /* its envelope, the session's until
                                         sp_smtp_session_done */
    size_t size;                      /* of that message, for the log */
    size_t messages;                  /* accepted in this session */
};

/* Open a connection on fd from ip; refuses over the limits. */
/*
 * Whether an API key limited to domains (comma-separated; "" for any)
 * may send as domain (an envelope sender's or the From field's).
 */
bool smtp__conn_domain_allowed(const char *domains, const char *domain);

void smtp__conn_open(struct smtp_listener *listener, evutil_socket_t fd,
                     const char *ip);

/* Close a connection now (the spool's answer may still come). */
void smtp__conn_close(struct smtp_conn *conn);

/* Send what the session wrote to conn->out. */
void smtp__conn_flush(struct smtp_conn *conn);

/* Act on what the session asked for after input or a verdict. */
void smtp__conn_next(struct smtp_conn *conn, sp_smtp_next next);

/* Count a client in or out; false when it has too many connections. */
bool smtp__client_enter(struct daemon_smtp *smtp, const char *ip);
void smtp__client_leave(struct daemon_smtp *smtp, const char *ip);

/*
 * The fields every event of a message carries (doc/events.md), as the
 * text of a JSON object (free() it): transmission_id (queue_id), the
 * subject when subject is set, and campaign_id and metadata from an
 * X-MSYS-API field of header (indexed over block).  NULL with why set
 * when X-MSYS-API is not as documented (the message is refused), NULL
 * with why "" when memory ran out.
 */
char *smtp__event_fields(const char *block, const sp_mail_header *header,
                         bool subject, const char *queue_id, char *why,
                         size_t why_size);

/* Whether field is X-MSYS-API, which leaves the message at intake. */
bool smtp__is_api_field(const sp_mail_field *field, const char *block);

/* Where a message came from, for its events. */
struct smtp_origin {
    const char *queue_id; /* "" or NULL when it has none */
    const char *sender;
    const char *const *recipients;
    size_t recipient_count;
    const char *client_ip;
    const char *identity; /* the API key's name, or "" */
};

/*
 * The injection events of a stored message of size octets, one line per
 * recipient, for the spool to commit with it: the message's event fields
 * (a JSON object's text, or NULL), and the domain and selector of each
 * signature made.  NULL when memory runs out (the message goes on
 * without them: losing mail over an event would be worse).  free() it.
 */
char *smtp__injection_events(const struct smtp_origin *origin, size_t size,
                             const char *event_fields,
                             const daemon_signed *made);

/*
 * A permanent refusal (reply, 5xx) of a message from origin: one
 * policy_rejection event per recipient (one without rcpt_to when it has
 * none), stored through queue with the writer's next commit.  A failure
 * is logged.
 */
void smtp__refused_events(sp_queue *queue, const struct smtp_origin *origin,
                          const sp_smtp_reply *reply);

/*
 * A permanent refusal of sealpost's own (reply, 5xx) of the message of
 * envelope: one policy_rejection event per recipient (one without
 * rcpt_to before RCPT), stored through the spool; queue_id is the id
 * the message would have had, or NULL.  A failure is logged.
 */
void smtp__conn_refused(const struct smtp_conn *conn,
                        const sp_smtp_envelope *envelope, const char *queue_id,
                        const sp_smtp_reply *reply);

/*
 * The session's message callback: add the trace fields, submit to the
 * spool, and give the session its verdict once the message is durable.
 */
void smtp__accept(void *arg, const sp_smtp_envelope *envelope,
                  const sp_buf *data);

#endif /* SP_DAEMON_SMTP_INT_H */
