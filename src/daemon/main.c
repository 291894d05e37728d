/*
 * main.c: sealpostd, the sealpost daemon: options, start-up, the event
 * loop and shutdown.
 *
 * Owns main.  Start-up reads the configuration (embedded defaults, the
 * file, then options) and refuses one that breaks its rules, prepares the
 * data directory, opens key management and the event log, and checks the
 * keys.  Then one libevent loop runs: the stop signals, the SMTP
 * listeners and connections, the resolver's descriptor, the mailbox that
 * brings the spool's answers from its writer thread, and the DKIM
 * lifecycle timer, and delivery.  The HTTP API will attach to this loop;
 * options that configure parts not yet built are refused rather than
 * ignored.
 */
#include "daemon.h"
#include "http/http.h"

#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef SEALPOST_VERSION
#define SEALPOST_VERSION "unknown"
#endif

struct daemon_options {
    const char *config;      /* --config or SEALPOST_CONFIG */
    const char *data_dir;    /* --data-dir or SEALPOST_DATA_DIR */
    const char *resolver;    /* --resolver */
    const char *smtp_listen; /* --smtp-listen */
    const char *http_listen; /* --http-listen */
    const char *smarthost;   /* --smarthost */
};

/* Everything the running daemon holds. */
struct daemon {
    sp_config config;
    struct event_base *base;
    struct event *stop_term;  /* SIGTERM */
    struct event *stop_int;   /* SIGINT */
    struct event *dns_ready;  /* the resolver's descriptor */
    struct event *dkim_timer; /* the lifecycle schedule */
    sp_keys *keys;
    sp_events *events;
    sp_dns_resolver *resolver;
    struct daemon_dkim dkim;
    sp_queue *queue;                       /* the spool */
    struct daemon_signer *signer;          /* DKIM signing threads */
    struct daemon_reports *reports;        /* DMARC report mail thread */
    struct event *tally_timer;             /* writes the signer's tally */
    struct daemon_mailbox mailbox;         /* answers from the spool's thread */
    struct daemon_smtp *smtp;              /* the submission server */
    struct daemon_inject inject;           /* the API's way in */
    struct daemon_deliver *deliver;        /* delivery to recipients' servers */
    struct daemon_event_pump *events_pump; /* spool events to the store */
    sp_http *http;                         /* the HTTP API, or NULL */
    struct daemon_webhooks *webhooks;      /* events to endpoints */
    char hostname[256];                    /* smtp_hostname, or the host's */
};

static void
usage(FILE *out)
{
    fprintf(out, "usage: sealpostd [--config FILE] [--data-dir DIR]\n"
                 "                 [--resolver ADDR@PORT] "
                 "[--smtp-listen ADDR:PORT[,...]]\n"
                 "                 [--http-listen ADDR:PORT] "
                 "[--smarthost HOST:PORT]\n"
                 "\n"
                 "Runs on embedded defaults without a configuration file;\n"
                 "options override the file, which overrides the defaults.\n"
                 "Stops cleanly on SIGTERM or SIGINT.\n");
}

static void
parse_options(struct daemon_options *opt, int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"data-dir", required_argument, NULL, 'd'},
        {"resolver", required_argument, NULL, 'R'},
        {"smtp-listen", required_argument, NULL, 'S'},
        {"http-listen", required_argument, NULL, 'H'},
        {"smarthost", required_argument, NULL, 'M'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int option, index = 0;

    while ((option = getopt_long(argc, argv, "h", options, &index)) != -1) {
        switch (option) {
        case 'c':
            opt->config = optarg;
            break;
        case 'd':
            opt->data_dir = optarg;
            break;
        case 'R':
            opt->resolver = optarg;
            break;
        case 'S':
            opt->smtp_listen = optarg;
            break;
        case 'M':
            opt->smarthost = optarg;
            break;
        case 'H':
            opt->http_listen = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case 'V':
            printf("sealpostd %s\n", SEALPOST_VERSION);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (optind != argc) {
        usage(stderr);
        exit(2);
    }
    if (opt->config == NULL)
        opt->config = getenv("SEALPOST_CONFIG");
    if (opt->data_dir == NULL)
        opt->data_dir = getenv("SEALPOST_DATA_DIR");
}

/* Embedded defaults, then the file, then the options; then the rules. */
static void
load_config(struct daemon *daemon, const struct daemon_options *opt)
{
    const char *source = opt->config ? opt->config : "embedded-defaults";
    sp_error err;

    sp_config_defaults(&daemon->config);
    if (opt->config != NULL && *opt->config != '\0' &&
        sp_config_read(&daemon->config, opt->config, &err) != SP_OK)
        sp_log_fatal(2, "config=%s error=\"%s\"", source, err.text);
    if (opt->data_dir != NULL && *opt->data_dir != '\0')
        sp_config_set(&daemon->config, "data_dir", opt->data_dir, NULL);
    if (opt->resolver != NULL)
        sp_config_set(&daemon->config, "resolver", opt->resolver, NULL);
    if (opt->smtp_listen != NULL)
        sp_config_set(&daemon->config, "smtp_listen", opt->smtp_listen, NULL);
    if (opt->http_listen != NULL)
        sp_config_set(&daemon->config, "http_listen", opt->http_listen, NULL);
    if (opt->smarthost != NULL)
        sp_config_set(&daemon->config, "delivery_smarthost", opt->smarthost,
                      NULL);
    if (sp_config_check(&daemon->config, &err) != SP_OK)
        sp_log_fatal(2, "config=%s error=\"%s\"", source, err.text);
}

/* Make the data directory (one level) and check it is usable. */
static void
prepare_data_dir(const char *path)
{
    struct stat st;

    if (mkdir(path, 0750) != 0 && errno != EEXIST)
        sp_log_fatal(3, "data_dir=%s error=\"%s\"", path, strerror(errno));
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        sp_log_fatal(3, "data_dir=%s error=\"not a directory\"", path);
    if (access(path, R_OK | W_OK | X_OK) != 0)
        sp_log_fatal(3, "data_dir=%s error=\"%s\"", path, strerror(errno));
}

static void
on_stop(evutil_socket_t signal_number, short what, void *arg)
{
    struct daemon *daemon = arg;

    (void)what;
    sp_log_info("stopping signal=%s",
                signal_number == SIGTERM ? "TERM" : "INT");
    event_base_loopbreak(daemon->base);
}

static void
on_dns(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *daemon = arg;
    sp_error err;

    (void)fd;
    (void)what;
    if (sp_dns_resolver_process(daemon->resolver, &err) != SP_OK)
        sp_log_warning("dns error=\"%s\"", err.text);
}

static void
on_dkim_timer(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *daemon = arg;

    (void)fd;
    (void)what;
    daemon_dkim_check(&daemon->dkim);
}

#define TALLY_INTERVAL_S 60 /* how often signatures made are recorded */

static void
on_tally_timer(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *daemon = arg;
    sp_error err;

    (void)fd;
    (void)what;
    if (daemon_signer_flush(daemon->signer, sp_keys_store(daemon->keys),
                            &err) != SP_OK)
        sp_log_error("dkim_tally error=\"%s\"", err.text);
}

/* Open what the daemon keeps: keys, events, resolver; check the keys. */
static void
open_services(struct daemon *daemon)
{
    const sp_config *config = &daemon->config;
    sp_error err;

    if (sp_keys_open(config, true, &daemon->keys, &err) != SP_OK ||
        sp_events_open(config->data_dir, true, &daemon->events, &err) !=
            SP_OK ||
        sp_dns_resolver_new(config->resolver[0] ? config->resolver : NULL,
                            &daemon->resolver, &err) != SP_OK)
        sp_log_fatal(3, "startup error=\"%s\"", err.text);
    sp_events_set_store(daemon->events, sp_keys_store(daemon->keys));
    daemon->dkim = (struct daemon_dkim){
        .config = config,
        .keys = daemon->keys,
        .events = daemon->events,
        .resolver = daemon->resolver,
    };
    if (daemon_dkim_startup(&daemon->dkim, &err) != SP_OK)
        sp_log_fatal(2, "config error=\"%s\"", err.text);
}

/*
 * Every SMTP session holds a descriptor, so take the whole hard limit on
 * open files; the soft limit is often 1024.  Below what the connection
 * limits need, accepting fails early and the listeners pause (see
 * smtp_server.c): worth a warning at start-up rather than a surprise.
 */
static void
raise_file_limit(const sp_config *config)
{
    const rlim_t margin = 64; /* spool, logs, resolver, key store */
    struct rlimit limit;

    if (getrlimit(RLIMIT_NOFILE, &limit) != 0)
        return;
    if (limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &limit);
        (void)getrlimit(RLIMIT_NOFILE, &limit);
    }
    if (limit.rlim_cur != RLIM_INFINITY &&
        limit.rlim_cur < (rlim_t)config->smtp_max_connections + margin)
        sp_log_warning("open_files=%llu smtp_max_connections=%lld "
                       "warning=\"the open-file limit is below the "
                       "connection limit; raise it (ulimit -n, LimitNOFILE=)\"",
                       (unsigned long long)limit.rlim_cur,
                       (long long)config->smtp_max_connections);
}

/*
 * The spool, the mailbox its answers come through, the signer, the
 * report thread, and the listeners.
 */
static void
start_smtp(struct daemon *daemon)
{
    const sp_config *config = &daemon->config;
    sp_queue_options options = {
        .min_free_bytes = (uint64_t)config->queue_min_free,
    };
    struct daemon_smtp_deps deps;
    char spool[4096];
    sp_error err;

    snprintf(spool, sizeof(spool), "%s/spool", config->data_dir);
    if (sp_queue_open(spool, &options, &daemon->queue, &err) != SP_OK ||
        (daemon->events_pump = daemon_event_pump_start(
             config->data_dir, config->events_retention, &err)) == NULL ||
        daemon_mailbox_init(&daemon->mailbox, daemon->base, &err) != SP_OK ||
        daemon_signer_start(config, daemon->keys, &daemon->signer, &err) !=
            SP_OK ||
        daemon_reports_start(config, &daemon->reports, &err) != SP_OK)
        sp_log_fatal(3, "startup error=\"%s\"", err.text);
    for (size_t i = 0; i < config->dmarc_report_addresses.count; i++)
        sp_log_info("dmarc_report_address address=%s note=\"its mail is "
                    "stored as DMARC reports, never relayed\"",
                    config->dmarc_report_addresses.items[i]);

    /* A key retires only once no spooled message carries its signature. */
    sp_keys_set_queued(daemon->keys, sp_queue_keys_queued, daemon->queue);
    daemon->dkim.signer = daemon->signer;
    daemon->tally_timer =
        event_new(daemon->base, -1, EV_PERSIST, on_tally_timer, daemon);
    if (daemon->tally_timer == NULL ||
        event_add(daemon->tally_timer,
                  &(struct timeval){.tv_sec = TALLY_INTERVAL_S}) != 0)
        sp_log_fatal(3, "startup error=\"cannot schedule the DKIM tally\"");
    for (size_t i = 0; i < config->dkim_domains.count; i++)
        sp_log_info("dkim_signing domain=%s keys=%zu",
                    config->dkim_domains.items[i],
                    daemon_signer_key_count(daemon->signer,
                                            config->dkim_domains.items[i]));
    if (daemon_deliver_start(
            &(struct daemon_deliver_deps){
                .config = config,
                .base = daemon->base,
                .queue = daemon->queue,
                .resolver = daemon->resolver,
                .hostname = daemon->hostname,
                .mailbox = &daemon->mailbox,
            },
            &daemon->deliver, &err) != SP_OK)
        sp_log_fatal(err.code == SP_ESYNTAX ? 2 : 3, "startup error=\"%s\"",
                     err.text);
    deps = (struct daemon_smtp_deps){
        .config = config,
        .base = daemon->base,
        .queue = daemon->queue,
        .store = sp_keys_store(daemon->keys),
        .mailbox = &daemon->mailbox,
        .signer = daemon->signer,
        .hostname = daemon->hostname,
        .deliver = daemon->deliver,
        .reports = daemon->reports,
    };
    if (daemon_smtp_start(&deps, &daemon->smtp, &err) != SP_OK)
        sp_log_fatal(3, "startup error=\"%s\"", err.text);
    daemon_inject_init(&daemon->inject, &deps);
}

/* The loop's events: stop signals, DNS answers, the lifecycle timer. */
static void
add_events(struct daemon *daemon)
{
    struct timeval interval = {
        .tv_sec = (time_t)daemon->config.dkim_check_interval,
    };

    daemon->base = event_base_new();
    if (daemon->base == NULL)
        sp_log_fatal(3, "cannot make the event loop");
    daemon->stop_term = evsignal_new(daemon->base, SIGTERM, on_stop, daemon);
    daemon->stop_int = evsignal_new(daemon->base, SIGINT, on_stop, daemon);
    daemon->dns_ready =
        event_new(daemon->base, sp_dns_resolver_fd(daemon->resolver),
                  EV_READ | EV_PERSIST, on_dns, daemon);
    daemon->dkim_timer =
        event_new(daemon->base, -1, EV_PERSIST, on_dkim_timer, daemon);
    if (daemon->stop_term == NULL || daemon->stop_int == NULL ||
        daemon->dns_ready == NULL || daemon->dkim_timer == NULL ||
        event_add(daemon->stop_term, NULL) != 0 ||
        event_add(daemon->stop_int, NULL) != 0 ||
        event_add(daemon->dns_ready, NULL) != 0 ||
        event_add(daemon->dkim_timer, &interval) != 0)
        sp_log_fatal(3, "cannot set up the event loop");
}

/*
 * The HTTP API on http_listen ("" for none): loopback only, since it
 * speaks plain HTTP.  A configuration error is fatal at start.
 */
static void
start_http(struct daemon *daemon)
{
    const char *address = daemon->config.http_listen;
    struct sockaddr_storage where;
    bool loopback = false;
    int length;
    sp_error err;

    if (address[0] == '\0')
        return;
    if (!daemon_parse_address(address, &where, &length, &loopback))
        sp_log_fatal(2,
                     "config error=\"http_listen %s: expected ADDR:PORT "
                     "or [ADDR6]:PORT\"",
                     address);
    if (!loopback)
        sp_log_fatal(2,
                     "config error=\"http_listen %s: the API speaks plain "
                     "HTTP, so only a loopback address; put a TLS proxy in "
                     "front for others\"",
                     address);
    if (sp_http_start(
            &(sp_http_options){
                .address = (struct sockaddr *)&where,
                .store = sp_keys_store(daemon->keys),
                .config = &daemon->config,
                .hostname = daemon->hostname,
                .injector = &daemon->inject.ops,
            },
            &daemon->http, &err) != SP_OK)
        sp_log_fatal(3, "startup error=\"%s: %s\"", address, err.text);
    sp_log_info("listening service=http address=%s note=\"try: curl -H "
                "'Authorization: KEY' http://%s/api/v1/events/message\"",
                address, address);
}

static void
shutdown_daemon(struct daemon *daemon)
{
    /*
     * Listeners and sessions first; then the spool finishes what it holds
     * and its answers, through the mailbox, free the sessions that waited.
     */
    sp_http_stop(daemon->http);
    daemon_webhooks_stop(daemon->webhooks);
    daemon_smtp_stop(daemon->smtp);
    daemon_deliver_stop(daemon->deliver);
    event_free(daemon->tally_timer);
    daemon_signer_stop(daemon->signer, sp_keys_store(daemon->keys));
    daemon_reports_stop(daemon->reports);
    sp_queue_close(daemon->queue);
    daemon_event_pump_stop(daemon->events_pump);
    daemon_mailbox_free(&daemon->mailbox);
    daemon_dkim_stop(&daemon->dkim);
    event_free(daemon->dkim_timer);
    event_free(daemon->dns_ready);
    event_free(daemon->stop_int);
    event_free(daemon->stop_term);
    event_base_free(daemon->base);
    sp_dns_resolver_free(daemon->resolver);
    sp_events_close(daemon->events);
    sp_keys_close(daemon->keys);
    sp_config_free(&daemon->config);
}

int
main(int argc, char **argv)
{
    struct daemon_options opt = {0};
    struct daemon daemon = {0};
    char interval[32];
    sp_error err;

    sp_log_init("sealpostd");
    parse_options(&opt, argc, argv);
    load_config(&daemon, &opt);
    prepare_data_dir(daemon.config.data_dir);
    if (daemon.config.smtp_hostname[0] != '\0')
        snprintf(daemon.hostname, sizeof(daemon.hostname), "%s",
                 daemon.config.smtp_hostname);
    else if (gethostname(daemon.hostname, sizeof(daemon.hostname) - 1) != 0)
        snprintf(daemon.hostname, sizeof(daemon.hostname), "localhost");
    open_services(&daemon);
    add_events(&daemon);
    raise_file_limit(&daemon.config);
    start_smtp(&daemon);
    start_http(&daemon);
    if ((daemon.webhooks = daemon_webhooks_start(&daemon.config, &err)) == NULL)
        sp_log_fatal(3, "startup error=\"%s\"", err.text);

    sp_log_info("ready version=%s pid=%ld data_dir=%s config=%s "
                "dkim_domains=%zu dkim_check_interval=%s",
                SEALPOST_VERSION, (long)getpid(), daemon.config.data_dir,
                opt.config ? opt.config : "embedded-defaults",
                daemon.config.dkim_domains.count,
                sp_config_duration_text(daemon.config.dkim_check_interval,
                                        interval, sizeof(interval)));

    /* A first lifecycle check at once, then on the schedule. */
    daemon_dkim_check(&daemon.dkim);
    if (event_base_dispatch(daemon.base) < 0)
        sp_log_fatal(3, "the event loop failed");

    shutdown_daemon(&daemon);
    sp_log_info("stopped");
    return 0;
}
