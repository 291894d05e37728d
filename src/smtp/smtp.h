/*
 * smtp.h: the public face of sealpost's SMTP module.
 *
 * What it owns: the submission server's protocol engine (server.c and
 * the files it names), a state machine kept apart from sockets: bytes in,
 * reply bytes out, and calls to its owner at the points where the owner
 * decides (authentication, sender, recipients, the finished message,
 * STARTTLS).  It can be tested byte by byte, and the daemon drives it
 * from libevent.  The delivery client's engine (client.c) is the same
 * kind of machine for the other side, and classify.c gives the remote
 * server's refusals their bounce class.
 *
 * ESMTP (RFC 5321) with PIPELINING (2920), SIZE (1870), 8BITMIME (6152),
 * SMTPUTF8 (6531), ENHANCEDSTATUSCODES (2034, 3463), CHUNKING and BDAT
 * (3030), STARTTLS (3207), AUTH PLAIN and LOGIN (4954).
 *
 * Data ends only at CRLF.CRLF.  A bare CR or LF inside DATA or BDAT never
 * ends the data: it is refused with a 5xx (the default) or normalized to
 * CRLF, as configured, so no smuggled second message can start there.
 *
 * Nothing here does I/O, logs or exits.  Text from the client reaches the
 * owner's callbacks only after the engine has checked its length.
 */
#ifndef SP_SMTP_H
#define SP_SMTP_H

#include "base/base.h"

/* What the engine enforces; each limit answers with its own reply. */
typedef struct sp_smtp_limits {
    size_t max_message;    /* octets of message data (SIZE) */
    size_t max_recipients; /* RCPT per message */
    size_t max_command;    /* octets of a command line, CRLF included
                              (512 in RFC 5321 4.5.3.1.4) */
    size_t max_text_line;  /* octets of a DATA line, CRLF included
                              (1000 in RFC 5321 4.5.3.1.6) */
    unsigned max_errors;   /* errors in a session before it is closed */
    bool normalize_eol;    /* bare CR or LF in data: CRLF instead of 5xx */

    /* Seconds of waiting for the client (RFC 5321 4.5.3.2). */
    unsigned command_timeout;    /* for a command (300) */
    unsigned data_start_timeout; /* after 354, for the first octet (120) */
    unsigned data_timeout;       /* for each block of data (180) */
} sp_smtp_limits;

/* The session's situation, as the owner sets it. */
typedef struct sp_smtp_context {
    const char *hostname;  /* our name, in the greeting and EHLO */
    const char *client_ip; /* the peer's address, for the owner's logs */
    bool tls_available;    /* STARTTLS may be offered */
    bool tls_active;       /* the session already runs over TLS */
    bool auth_allowed;     /* AUTH may be offered now (TLS, or a loopback
                              listener configured to allow plain) */
    bool auth_required;    /* MAIL is refused until AUTH succeeds */
} sp_smtp_context;

/* A reply the owner chooses: code, enhanced code and text (one line). */
typedef struct sp_smtp_reply {
    int code;          /* 250, 451, 550 ... */
    char enhanced[16]; /* "2.1.0", "4.3.1" ...; "" for none */
    char text[256];    /* without code and CRLF */
} sp_smtp_reply;

/* The envelope of a finished message. */
typedef struct sp_smtp_envelope {
    char *sender;      /* reverse-path, "" for <>; owned by engine */
    char **recipients; /* forward-paths, owned by the engine */
    size_t recipient_count;
    bool eightbit;        /* BODY=8BITMIME (or BINARYMIME refused) */
    bool smtputf8;        /* SMTPUTF8 given with MAIL */
    size_t declared_size; /* SIZE= given with MAIL, 0 when none */
    char helo[256];       /* the name the client gave in EHLO/HELO */
    char identity[256];   /* authenticated identity, "" if none */
    bool tls;             /* the message came over TLS */
} sp_smtp_envelope;

/* The owner's decisions.  Every function may be NULL (accept). */
typedef struct sp_smtp_callbacks {
    void *arg;

    /*
     * Check credentials from AUTH PLAIN or LOGIN.  Return true and write
     * the identity (what logs and Received show) to identity, or false.
     */
    bool (*authenticate)(void *arg, const char *user, const char *password,
                         char *identity, size_t size);

    /* MAIL FROM: fill reply with a refusal (4xx/5xx), or leave it 0. */
    void (*mail)(void *arg, const sp_smtp_envelope *envelope,
                 sp_smtp_reply *reply);

    /* RCPT TO: the same, for one recipient. */
    void (*rcpt)(void *arg, const sp_smtp_envelope *envelope,
                 const char *recipient, sp_smtp_reply *reply);

    /*
     * Where AUTH is required: whether recipient takes mail without it (an
     * address receiving reports from other mail servers).  When set, MAIL
     * is accepted before AUTH and each RCPT of an unauthenticated client
     * to another recipient is refused with 530; when NULL, MAIL itself
     * needs AUTH.
     */
    bool (*open_recipient)(void *arg, const char *recipient);

    /*
     * The message is complete (after CRLF.CRLF or BDAT LAST): data holds
     * it with dot-stuffing undone and line endings CRLF.  The engine then
     * waits: no reply is sent and no further command is read until the
     * owner calls sp_smtp_session_done, which may be much later (once the
     * message is on disk).  The envelope and data stay valid until then.
     */
    void (*message)(void *arg, const sp_smtp_envelope *envelope,
                    const sp_buf *data);
} sp_smtp_callbacks;

typedef struct sp_smtp_session sp_smtp_session;

/*
 * Make a session; limits and context are copied (strings too).  The
 * greeting (220) is appended to out.
 */
int sp_smtp_session_new(const sp_smtp_limits *limits,
                        const sp_smtp_context *context,
                        const sp_smtp_callbacks *callbacks,
                        sp_smtp_session **out, sp_buf *greeting, sp_error *err);

/* What the owner must do after feeding input. */
typedef enum sp_smtp_next {
    SP_SMTP_READ,     /* keep reading and sending */
    SP_SMTP_WAIT,     /* a message is with the owner: stop reading until
                         sp_smtp_session_done */
    SP_SMTP_STARTTLS, /* send the replies, then start TLS, then call
                         sp_smtp_session_tls_started */
    SP_SMTP_CLOSE,    /* send the replies, then close (QUIT, too many
                         errors, a fatal protocol error) */
} sp_smtp_next;

/*
 * Feed bytes from the client; replies are appended to out.  Pipelined
 * commands are answered in order.  Input that arrives while the engine
 * waits is kept and processed after sp_smtp_session_done.  Plaintext that
 * follows STARTTLS is discarded (RFC 3207 section 6), never processed.
 */
sp_smtp_next sp_smtp_session_input(sp_smtp_session *session, const void *data,
                                   size_t len, sp_buf *out);

/*
 * The owner's verdict on the message handed over: reply is its reply
 * (250 with the queue id, or 4xx when it could not be stored).  Kept
 * input is processed; replies go to out.
 */
sp_smtp_next sp_smtp_session_done(sp_smtp_session *session,
                                  const sp_smtp_reply *reply, sp_buf *out);

/*
 * TLS is up: the session starts over as RFC 3207 says (no EHLO, no AUTH,
 * no transaction), with tls_active set and auth_allowed as given.
 */
void sp_smtp_session_tls_started(sp_smtp_session *session, bool auth_allowed);

/*
 * The session's limit on one state, for the owner's timers: seconds to
 * wait for the next input in the current state (RFC 5321 4.5.3.2: 5
 * minutes for commands, 3 for data blocks, 10 after the final dot...).
 */
unsigned sp_smtp_session_timeout(const sp_smtp_session *session);

/*
 * Whether the session is receiving message data (inside DATA or between
 * BDAT chunks), for the owner's minimum data rate.
 */
bool sp_smtp_session_receiving(const sp_smtp_session *session);

void sp_smtp_session_free(sp_smtp_session *session);

/* ------------------------------------------------------------------------
 * Classifying a remote server's replies (classify.c, doc/bounces.md)
 */

typedef enum sp_smtp_class {
    SP_SMTP_CLASS_NONE,              /* not a refusal (2xx, 3xx) */
    SP_SMTP_CLASS_UNDETERMINED,      /* a 5xx that says nothing more */
    SP_SMTP_CLASS_INVALID_RECIPIENT, /* no such mailbox */
    SP_SMTP_CLASS_DNS_FAILURE,       /* the domain cannot take mail */
    SP_SMTP_CLASS_MAILBOX_FULL,
    SP_SMTP_CLASS_TOO_LARGE,    /* the message is over a limit */
    SP_SMTP_CLASS_TIMEOUT,      /* connection or delivery time */
    SP_SMTP_CLASS_POLICY,       /* DMARC, SPF, reverse DNS, rules */
    SP_SMTP_CLASS_SPAM_BLOCK,   /* the sender's address or IP */
    SP_SMTP_CLASS_SPAM_CONTENT, /* the message itself */
    SP_SMTP_CLASS_RELAY_DENIED, /* the server is not the domain's */
    SP_SMTP_CLASS_RATE_LIMITED, /* slow down, try later */
    SP_SMTP_CLASS_TLS_FAILURE,  /* encryption needed or failed */
    SP_SMTP_CLASS_AUTH_FAILURE, /* the server wanted credentials */
    SP_SMTP_CLASS_TRANSIENT,    /* a 4xx that says nothing more */
} sp_smtp_class;

/*
 * The class of a reply: its code (250, 452, 550 ...), its enhanced code
 * ("5.1.1", or NULL or "" when it had none) and its text (NULL allowed).
 * NONE for 2xx and 3xx.  Retrying is the code's business, not the
 * class's: 4xx are retried, 5xx are not.
 */
sp_smtp_class sp_smtp_classify(int code, const char *enhanced,
                               const char *text);

/* The class's name in events and reports ("invalid_recipient"). */
const char *sp_smtp_class_name(sp_smtp_class class);

/*
 * Whether text is a mailbox a forward-path may carry (RFC 5321 4.1.2,
 * UTF-8 allowed as RFC 6531 allows it): "local@domain", no brackets.
 */
bool sp_smtp_mailbox_valid(const char *text);

/* SparkPost's bounce class number for it, where one fits (doc/bounces.md). */
int sp_smtp_class_number(sp_smtp_class class);

/* ------------------------------------------------------------------------
 * The delivery client (client.c): sealpost speaking to a recipient's mail
 * server.  The owner connects, feeds the server's bytes to
 * sp_smtp_client_input, writes what lands in out, and follows the
 * returned next step.
 */

typedef struct sp_smtp_client sp_smtp_client;

typedef struct sp_smtp_client_options {
    const char *helo;  /* our name in EHLO and HELO */
    bool tls_possible; /* the owner can run TLS: STARTTLS when offered */
    bool tls_required; /* no message goes without TLS */
} sp_smtp_client_options;

/* What the server offered in its EHLO reply. */
typedef struct sp_smtp_client_ext {
    bool pipelining, eightbit, smtputf8, starttls, enhanced;
    bool size_known; /* SIZE was offered */
    uint64_t size;   /* its limit; 0 for none */
} sp_smtp_client_ext;

/* One reply, or sealpost's own verdict in the same shape (local). */
typedef struct sp_smtp_client_result {
    int code;          /* 250, 451, 550 ... */
    char enhanced[16]; /* "5.1.1", or "" */
    char text[512];    /* the reply's text, lines joined by '\n' */
    sp_smtp_class class;
    bool local; /* decided by sealpost, not said by the server */
} sp_smtp_client_result;

/* A message to send; everything is borrowed until SENT. */
typedef struct sp_smtp_client_message {
    const char *sender;            /* reverse-path, "" for <> */
    const char *const *recipients; /* forward-paths */
    size_t recipient_count;
    const char *data; /* CRLF line endings; dot-stuffed on the way */
    size_t len;
    bool eightbit; /* needs 8BITMIME */
    bool smtputf8; /* needs SMTPUTF8 */
} sp_smtp_client_message;

typedef enum sp_smtp_client_next {
    SP_SMTP_CLIENT_READ,     /* write out, then read the server */
    SP_SMTP_CLIENT_STARTTLS, /* write out, run the TLS handshake, then
                                sp_smtp_client_tls_started */
    SP_SMTP_CLIENT_IDLE,     /* ready: send a message, or quit */
    SP_SMTP_CLIENT_SENT,     /* a message is done: read its results; then
                                ready as IDLE (unless the session closed) */
    SP_SMTP_CLIENT_CLOSE,    /* write out, then close; failure says why
                                when the session ended early */
} sp_smtp_client_next;

/* A client for one connection, waiting for the greeting. */
int sp_smtp_client_new(const sp_smtp_client_options *options,
                       sp_smtp_client **out, sp_error *err);

/* The server's bytes, in any chunks; replies to write go to out. */
sp_smtp_client_next sp_smtp_client_input(sp_smtp_client *client,
                                         const void *data, size_t len,
                                         sp_buf *out);

/* The TLS handshake is done: EHLO again (RFC 3207), into out. */
void sp_smtp_client_tls_started(sp_smtp_client *client, sp_buf *out);

/*
 * Start a transaction for message (only when IDLE or after SENT).  A
 * message the server cannot take as it is (over SIZE; 8BITMIME or
 * SMTPUTF8 missing) is refused at once: SENT with a local 5xx.
 */
sp_smtp_client_next sp_smtp_client_send(sp_smtp_client *client,
                                        const sp_smtp_client_message *message,
                                        sp_buf *out);

/*
 * After SENT: the result for recipient i of the message (its RCPT
 * refusal, the MAIL refusal, or the reply to the data).
 */
const sp_smtp_client_result *
sp_smtp_client_result_for(const sp_smtp_client *client, size_t i);

/* Why the session ended early, or NULL. */
const sp_smtp_client_result *
sp_smtp_client_failure(const sp_smtp_client *client);

const sp_smtp_client_ext *
sp_smtp_client_extensions(const sp_smtp_client *client);

/* Say QUIT (when IDLE); CLOSE follows the server's reply. */
void sp_smtp_client_quit(sp_smtp_client *client, sp_buf *out);

/* Seconds to wait for the server's next reply (RFC 5321 4.5.3.2). */
unsigned sp_smtp_client_timeout(const sp_smtp_client *client);

/* Whole replies read so far: the owner's deadline for a reply starts
 * again only when this moves. */
uint64_t sp_smtp_client_replies(const sp_smtp_client *client);

void sp_smtp_client_free(sp_smtp_client *client);

/* Fill reply with code, enhanced code and formatted text. */
void sp_smtp_reply_set(sp_smtp_reply *reply, int code, const char *enhanced,
                       const char *fmt, ...) SP_PRINTF(4, 5);

#endif /* SP_SMTP_H */
