/*
 * config.h: the public face of sealpost's configuration: the file that
 * sealpostd and the sealpost command both read, its embedded defaults and
 * the rules that tie settings together.
 *
 * The file is one "key = value" per line, '#' comments.  Every setting is
 * a row of one table (config.c), with its type and default; unknown keys
 * and malformed values are errors naming the line, so a typo never passes
 * silently.  Lists are written with commas or spaces.  Durations take the
 * units s, m, h, d and w ("90d"); sizes K, M and G (powers of 1024);
 * booleans yes or no.
 *
 * Precedence: embedded defaults, then the file, then options (each program
 * applies its options with sp_config_set after reading the file).
 *
 * Out-of-memory policy: this module serves the programs only and stops the
 * process when memory runs out, as they do.
 */
#ifndef SP_CONFIG_H
#define SP_CONFIG_H

#include "base/base.h"

/* A list setting: owned strings. */
typedef struct sp_config_list {
    char **items;
    size_t count;
} sp_config_list;

typedef struct sp_config {
    char *data_dir;        /* SQLite files and the spool */
    char *master_key_file; /* key that seals private keys at rest; ""
                              means data_dir/master.key */
    char *resolver;        /* "ADDR@PORT", or "" for /etc/resolv.conf */

    sp_config_list dkim_domains;         /* domains that sign */
    sp_config_list dkim_testing_domains; /* domains allowed t=y keys */
    sp_config_list dkim_algorithms;      /* "rsa", "ed25519" */
    int64_t dkim_rsa_bits;               /* size of new RSA keys */
    int64_t dkim_rotation_period;        /* seconds between new keys */
    int64_t dkim_signature_expiry;       /* seconds from t= to x= */
    int64_t dkim_check_interval;         /* seconds between lifecycle
                                            checks in the daemon */
    int64_t dkim_record_ttl;             /* TTL of published records */
    int64_t queue_max_lifetime;          /* seconds a message may wait */

    sp_config_list smtp_listen;    /* "ADDR:PORT" of each SMTP listener */
    char *smtp_hostname;           /* our name in replies; "" for the host's */
    bool smtp_require_auth;        /* MAIL only after AUTH */
    bool smtp_plain_auth_loopback; /* AUTH without TLS on loopback
                                      listeners */
    int64_t smtp_max_message;      /* octets (SIZE) */
    int64_t smtp_max_recipients;   /* per message */
    int64_t smtp_max_command;      /* octets of a command line */
    int64_t smtp_max_text_line;    /* octets of a message line */
    int64_t smtp_max_errors;       /* per session, then 421 */
    int64_t smtp_max_connections;  /* in total */
    int64_t smtp_max_per_client;   /* from one address */
    int64_t smtp_min_data_rate;    /* octets a second while receiving
                                      a message, after the first 30 s */
    char *smtp_bare_eol;           /* "reject" (5xx) or "normalize" */
    int64_t smtp_command_timeout;  /* seconds waiting for a command */
    int64_t smtp_data_start_timeout; /* after 354, for the first octet */
    int64_t smtp_data_timeout;       /* for each block of message data */
    char *tls_cert_file;             /* PEM chain; "" makes a self-signed one */
    char *tls_key_file;              /* its private key */
    int64_t queue_min_free;          /* free octets on the spool's filesystem
                                        under which MAIL gets 452 */

    bool delivery_hold;               /* deliver nothing, keep all queued */
    char *delivery_smarthost;         /* "host:port" taking every message,
                                         or "" for MX delivery */
    sp_config_list delivery_routes;   /* "domain=host:port" static routes */
    int64_t delivery_port;            /* port of MX hosts (25) */
    int64_t delivery_max_connections; /* outbound, in total */
    int64_t delivery_connections_per_destination;
    int64_t delivery_messages_per_connection;
    char *delivery_rules; /* "PATTERN key=value ...; ..." limits of
                             destinations (queue/schedule.c) */
    sp_config_list delivery_retry_schedule; /* durations between tries */
    int64_t delivery_connect_timeout;       /* seconds */
    int64_t delivery_idle_time;     /* seconds a connection waits for more */
    char *delivery_tls;             /* may, encrypt or verify: the default
                                       TLS policy of destinations */
    char *delivery_tls_ca_file;     /* authorities trusted by "verify" (PEM);
                                       "": the system's */
    char *delivery_source;          /* addresses to connect from by default,
                                       comma-separated; "": the kernel's */
    bool delivery_bounce_messages;  /* tell senders of failed recipients */
    int64_t delivery_reply_timeout; /* seconds, the longest wait for one
                                       whole reply; 0: RFC 5321's */
    char *http_listen; /* "ADDR:PORT" of the HTTP API, loopback; "" off */
    int64_t events_retention;  /* seconds events are kept; 0: for ever */
    bool events_subject;       /* events carry the Subject */
    int64_t webhook_retry_max; /* seconds, the longest pause between tries
                                  of a failing webhook endpoint */

    char *dns_update_server; /* "ADDR@PORT" taking RFC 2136 updates, or "" */
    char *dns_update_tsig;   /* "ALGORITHM:NAME:BASE64SECRET", or "" */
    char *dns_update_zone;   /* zone to update; "" means the domain */
    sp_config_list dmarc_own_sources;      /* addresses and networks whose mail
                                              is ours in DMARC summaries */
    sp_config_list dmarc_report_addresses; /* mail to these is read as
                                              aggregate reports */
} sp_config;

/*
 * Parse a duration: digits with an optional unit s, m, h, d or w, into
 * seconds.  False for anything else.
 */
bool sp_config_parse_duration(const char *text, int64_t *out);

/* Fill config with the embedded defaults. */
void sp_config_defaults(sp_config *config);

/*
 * Read a file over the current settings.  SP_EIO when it cannot be read,
 * SP_ESYNTAX naming the line for anything malformed or unknown.
 */
int sp_config_read(sp_config *config, const char *path, sp_error *err);

/*
 * Set one setting from text, as a line of the file would.  SP_ESYNTAX
 * (unknown key, malformed value) with the reason in err.
 */
int sp_config_set(sp_config *config, const char *key, const char *value,
                  sp_error *err);

/*
 * The rules between settings, checked when a program starts: signature
 * expiry longer than the rotation period and than the queue's lifetime;
 * RSA keys of 1024 to 4096 bits; known algorithms; testing domains among
 * the signing domains.  SP_EINVAL naming the settings and their values.
 */
int sp_config_check(const sp_config *config, sp_error *err);

/* The master key file's path: the setting, or data_dir/master.key. */
const char *sp_config_master_key(const sp_config *config, char *buf,
                                 size_t size);

/* Whether a list holds item (case-insensitive, for domain names). */
bool sp_config_list_has(const sp_config_list *list, const char *item);

/* Format a duration for people: "90d", "12h", "45s". */
const char *sp_config_duration_text(int64_t seconds, char *buf, size_t size);

void sp_config_free(sp_config *config);

#endif /* SP_CONFIG_H */
