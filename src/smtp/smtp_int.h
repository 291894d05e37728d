/*
 * smtp_int.h: names shared between the files of the SMTP server engine
 * and its tests.  Nothing outside src/smtp/ and its tests includes this
 * file.
 *
 *   server.c   sp_smtp_session_*, smtp__server_*  the session, its input
 *                                  loop, command-line framing, the state
 *                                  check and the timeout table
 *   command.c  smtp__command_*     verbs: dispatch, EHLO, HELO, RSET,
 *                                  NOOP, QUIT, VRFY, HELP, STARTTLS
 *   envelope.c smtp__envelope_*    MAIL and RCPT with their parameters,
 *                                  the transaction's reset
 *   path.c     smtp__path_*        reverse- and forward-path syntax
 *   data.c     smtp__data_*        DATA and BDAT: reception, limits, the
 *                                  bare CR/LF policy, the finished message
 *   auth.c     smtp__auth_*        AUTH PLAIN and LOGIN (RFC 4954)
 *   reply.c    smtp__reply_*       reply lines, error counting, the
 *                                  owner's replies; sp_smtp_reply_set
 */
#ifndef SP_SMTP_INT_H
#define SP_SMTP_INT_H

#include "smtp.h"

/* Limits that a zero in sp_smtp_limits stands for. */
#define SMTP__DEFAULT_MESSAGE    (10 * 1024 * 1024)
#define SMTP__DEFAULT_RECIPIENTS 100  /* RFC 5321 4.5.3.1.8 minimum */
#define SMTP__DEFAULT_COMMAND    512  /* RFC 5321 4.5.3.1.4 */
#define SMTP__DEFAULT_TEXT_LINE  1000 /* RFC 5321 4.5.3.1.6 */
#define SMTP__DEFAULT_ERRORS     10
#define SMTP__DEFAULT_COMMAND_S  300 /* RFC 5321 4.5.3.2.7 */
#define SMTP__DEFAULT_START_S    120 /* RFC 5321 4.5.3.2.3 */
#define SMTP__DEFAULT_DATA_S     180 /* RFC 5321 4.5.3.2.5 */

/* Room in the envelope's helo and identity fields, NUL included. */
#define SMTP__NAME_SIZE 256

/*
 * Where the session stands.  The transaction states (MAIL, DATA, CHUNK,
 * CHUNKED, WAIT) hold a sender; the others hold none.  Closing is a flag
 * beside the state (see closed), because a reply that cannot be written
 * must stop the session whatever the handler was about to do next.
 */
typedef enum smtp__state {
    SMTP__GREETED, /* greeting sent (or TLS started): EHLO/HELO expected */
    SMTP__IDLE,    /* EHLO/HELO done, no transaction */
    SMTP__AUTH,    /* AUTH started: the next line is a SASL response */
    SMTP__MAIL,    /* MAIL accepted, RCPT being collected */
    SMTP__DATA,    /* 354 sent: reading message text up to CRLF.CRLF */
    SMTP__CHUNK,   /* reading the octets of a BDAT chunk */
    SMTP__CHUNKED, /* between two BDAT chunks of one message */
    SMTP__WAIT,    /* the message is with the owner's message callback */
    SMTP__TLS,     /* 220 sent to STARTTLS: waiting for the handshake */
} smtp__state;

/* Why a message will be refused once its data has ended. */
typedef enum smtp__refusal {
    SMTP__FINE,      /* nothing wrong so far */
    SMTP__NOMEM,     /* the data could not be stored: 451 4.3.0 */
    SMTP__TOO_BIG,   /* over max_message: 552 5.3.4 */
    SMTP__BARE_EOL,  /* bare CR or LF, normalize_eol off: 550 5.6.11 */
    SMTP__LONG_LINE, /* a line over max_text_line: 500 5.5.6 */
    SMTP__NUL,       /* a NUL octet (RFC 5322 text excludes it): 550 5.6.0 */
} smtp__refusal;

/* Where the data scanner stands inside the current line. */
typedef enum smtp__scan {
    SMTP__SCAN_BOL,    /* at the start of a line (after a CRLF) */
    SMTP__SCAN_TEXT,   /* inside a line */
    SMTP__SCAN_CR,     /* a CR seen, its LF not yet */
    SMTP__SCAN_DOT,    /* DATA only: "." at the start of a line */
    SMTP__SCAN_DOT_CR, /* DATA only: ".\r" at the start of a line */
} smtp__scan;

/* How a BDAT chunk will be answered once its octets have been read. */
typedef enum smtp__chunk {
    SMTP__CHUNK_TAKE,      /* part of the message */
    SMTP__CHUNK_NO_MAIL,   /* no transaction: 503 5.5.1 */
    SMTP__CHUNK_NO_RCPT,   /* no recipient yet: 503 or 554 5.5.1 */
    SMTP__CHUNK_AFTER_BAD, /* an earlier chunk was refused: 503 5.5.1 */
} smtp__chunk;

/* The steps of an AUTH exchange that wait for a client line. */
typedef enum smtp__auth_step {
    SMTP__AUTH_PLAIN,    /* 334 sent to AUTH PLAIN: the credentials */
    SMTP__AUTH_USER,     /* 334 "Username:" sent to AUTH LOGIN */
    SMTP__AUTH_PASSWORD, /* 334 "Password:" sent */
} smtp__auth_step;

/* The message being received, by DATA or by BDAT chunks. */
typedef struct smtp__body {
    sp_buf data;           /* stored octets: dot-stuffing undone, CRLF
                              endings; NULL until the first octet, freed
                              once the message is refused */
    smtp__scan scan;       /* the scanner's place in the current line */
    size_t line_len;       /* octets of the current line so far, as sent */
    smtp__refusal refusal; /* the first reason to refuse, or FINE */
    bool dotted;           /* DATA (dot-stuffing, CRLF.CRLF ends it), not
                              BDAT */
    bool started;          /* an octet has arrived (for the timeout) */
} smtp__body;

struct sp_smtp_session {
    /* What the owner set; fixed for the life of the session. */
    sp_smtp_limits limits;       /* zeros replaced by the defaults */
    sp_smtp_callbacks callbacks; /* NULL members accept */
    char *hostname;              /* owned copy */
    char *client_ip;             /* owned copy, or NULL */
    bool tls_available;          /* STARTTLS may be offered */
    bool tls_active;             /* the session runs over TLS */
    bool auth_allowed;           /* AUTH may be offered */
    bool auth_required;          /* MAIL needs a successful AUTH */

    /* Where the session stands. */
    smtp__state state;  /* see smtp__state; changed by smtp__server_enter */
    bool closed;        /* QUIT, too many errors or a lost reply: nothing
                           more is read */
    bool lost_input;    /* input kept during WAIT could not be stored: the
                           session closes once the owner answers */
    bool in_callback;   /* inside the message callback, which may call
                           sp_smtp_session_done but nothing else */
    sp_buf *run_out;    /* out of the input or done call running, where a
                           verdict given inside the callback goes */
    unsigned errors;    /* client errors so far (see smtp__reply_error) */
    bool esmtp;         /* greeted by EHLO rather than HELO */
    bool authenticated; /* AUTH succeeded; envelope.identity is set */

    /* Command-line framing. */
    sp_buf line;     /* a command line split across inputs; allocated only
                        when one is, under max_command octets */
    bool discarding; /* skipping the rest of a refused line up to LF */
    sp_buf pending;  /* input that arrived behind a finished message,
                        read after sp_smtp_session_done */

    /* The transaction. */
    sp_smtp_envelope envelope; /* sender and recipients owned here */
    size_t recipient_cap;      /* slots allocated in envelope.recipients */
    bool rcpt_tried;           /* a RCPT was sent in this transaction */
    bool bdat_failed;          /* a BDAT chunk was refused: later chunks
                                  are read and answered 503 until RSET or
                                  MAIL */
    smtp__body body;           /* the message being received */

    /* The BDAT chunk being read (state CHUNK). */
    size_t chunk_left;         /* octets of the chunk still to come */
    size_t chunk_size;         /* octets the BDAT command announced */
    bool chunk_last;           /* BDAT ... LAST */
    smtp__chunk chunk_verdict; /* how the chunk will be answered */
    smtp__state chunk_from;    /* the state to go back to when the chunk
                                  is not part of a message */

    /* The AUTH exchange (state AUTH). */
    smtp__auth_step auth_step; /* what the next line carries */
    char *auth_user;           /* AUTH LOGIN's user name between its two
                                  steps; wiped before it is freed */
};

/* ------------------------------------------------------------------------
 * server.c
 */

/* Move to state and assert the session's invariants there. */
void smtp__server_enter(sp_smtp_session *s, smtp__state state);

/*
 * Assert every invariant of the session (the state check).  Called at
 * each state change; aborts on a broken one, which is sealpost's bug.
 */
void smtp__server_check(const sp_smtp_session *s);

/*
 * Octets the session holds on the heap, its own structure included (not
 * counting the allocator's overhead): what an idle session costs.
 */
size_t smtp__server_memory(const sp_smtp_session *s);

/* Wipe and empty a buffer that may have held credentials. */
void smtp__server_wipe(sp_buf *buf);

/* ------------------------------------------------------------------------
 * command.c
 */

/*
 * Run one command line (without its CRLF; no control octets in it) in
 * states GREETED, IDLE, MAIL and CHUNKED, appending its reply.
 */
void smtp__command_run(sp_smtp_session *s, const char *line, size_t len,
                       sp_buf *out);

/* Whether text[0..len) equals word, ignoring ASCII case. */
bool smtp__command_is(const char *text, size_t len, const char *word);

/* ------------------------------------------------------------------------
 * envelope.c
 */

/* MAIL FROM: with args the text after "MAIL". */
void smtp__envelope_mail(sp_smtp_session *s, const char *args, size_t len,
                         sp_buf *out);

/* RCPT TO: with args the text after "RCPT". */
void smtp__envelope_rcpt(sp_smtp_session *s, const char *args, size_t len,
                         sp_buf *out);

/*
 * End the transaction: free the sender, the recipients and the message
 * data; keep helo, identity and tls.  Leaves the state to the caller.
 */
void smtp__envelope_reset(sp_smtp_session *s);

/* ------------------------------------------------------------------------
 * path.c
 */

/* What smtp__path_parse accepts beyond a mailbox. */
enum {
    SMTP__PATH_NULL = 1,       /* "<>" (MAIL only) */
    SMTP__PATH_POSTMASTER = 2, /* "<Postmaster>" without domain (RCPT) */
};

/* A parsed path: the mailbox lies inside the parsed text. */
typedef struct smtp__path {
    const char *mailbox; /* without brackets and source route */
    size_t mailbox_len;  /* 0 for "<>" */
    size_t end;          /* offset just after '>' */
    bool utf8;           /* the mailbox has non-ASCII (UTF-8) octets */
} smtp__path;

/*
 * Parse a Reverse-path or Forward-path (RFC 5321 4.1.2) at the start of
 * text[0..len): "<", an optional source route (skipped, 4.1.1.3), a
 * mailbox (dot-string or quoted local part, "@", domain or address
 * literal), ">".  UTF-8 is accepted and flagged (RFC 6531); the caller
 * refuses it without SMTPUTF8.  Returns SP_OK or SP_ESYNTAX.
 */
int smtp__path_parse(const char *text, size_t len, unsigned flags,
                     smtp__path *path);

/*
 * Length of the well-formed UTF-8 sequence at text[0..len) (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF), or 0.
 */
size_t smtp__path_utf8(const unsigned char *text, size_t len);

/* ------------------------------------------------------------------------
 * data.c
 */

/* DATA: with args the text after "DATA". */
void smtp__data_command(sp_smtp_session *s, const char *args, size_t len,
                        sp_buf *out);

/* BDAT: with args the text after "BDAT". */
void smtp__data_bdat(sp_smtp_session *s, const char *args, size_t len,
                     sp_buf *out);

/*
 * Read message text in state DATA, up to and including CRLF.CRLF;
 * returns the octets used (at least one when len > 0).
 */
size_t smtp__data_feed(sp_smtp_session *s, const char *p, size_t len,
                       sp_buf *out);

/*
 * Read chunk octets in state CHUNK; returns the octets used (at least
 * one when len > 0 and the chunk is not complete).
 */
size_t smtp__data_chunk(sp_smtp_session *s, const char *p, size_t len,
                        sp_buf *out);

/* ------------------------------------------------------------------------
 * auth.c
 */

/* AUTH: with args the text after "AUTH". */
void smtp__auth_command(sp_smtp_session *s, const char *args, size_t len,
                        sp_buf *out);

/* A SASL response line in state AUTH (without CRLF). */
void smtp__auth_line(sp_smtp_session *s, const char *line, size_t len,
                     sp_buf *out);

/* End an AUTH exchange without a reply (the caller gives one). */
void smtp__auth_abort(sp_smtp_session *s);

/* ------------------------------------------------------------------------
 * reply.c
 */

/*
 * Append one reply line: code, enhanced code (NULL for none: greeting,
 * EHLO, HELO, 334 and 354 carry none, RFC 2034 section 3), text, CRLF.
 * more makes it a continuation line ("250-").  When out cannot grow, the
 * session is closed: the client would wait for a reply that never comes.
 */
void smtp__reply_line(sp_smtp_session *s, sp_buf *out, int code, bool more,
                      const char *enhanced, const char *fmt, ...)
    SP_PRINTF(6, 7);

/* smtp__reply_line for the common single-line reply. */
void smtp__reply(sp_smtp_session *s, sp_buf *out, int code,
                 const char *enhanced, const char *fmt, ...) SP_PRINTF(5, 6);

/*
 * A reply to a client error (syntax, sequence, unknown command, failed
 * authentication): the reply, then, at max_errors, 421 4.7.0 and close.
 */
void smtp__reply_error(sp_smtp_session *s, sp_buf *out, int code,
                       const char *enhanced, const char *fmt, ...)
    SP_PRINTF(5, 6);

/*
 * Memory ran out where the session cannot go on (a lost line of input):
 * 421 4.3.0 and close.
 */
void smtp__reply_fatal(sp_smtp_session *s, sp_buf *out);

/*
 * Append the owner's reply.  An unusable code (not 2xx, 4xx or 5xx)
 * becomes 451 4.3.0; a missing or mismatched enhanced code becomes
 * class.0.0; control octets in the text become spaces.  Returns the code
 * sent.
 */
int smtp__reply_owner(sp_smtp_session *s, sp_buf *out,
                      const sp_smtp_reply *reply);

#endif /* SP_SMTP_INT_H */
