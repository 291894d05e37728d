/*
 * main.c: sealpostd, the sealpost daemon: options, start-up and shutdown.
 *
 * Owns main.  Today the daemon prepares its data directory, says it is
 * ready and waits for SIGTERM or SIGINT, then stops cleanly; the SMTP
 * server, the queue and the HTTP API attach to this skeleton as they are
 * built.  Options that configure parts not yet built are refused with a
 * clear message rather than accepted and ignored.
 */
#include "daemon.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef SEALPOST_VERSION
#define SEALPOST_VERSION "unknown"
#endif

struct daemon_options {
    const char *config;   /* --config or SEALPOST_CONFIG */
    const char *data_dir; /* --data-dir or SEALPOST_DATA_DIR */
};

static void
usage(FILE *out)
{
    fprintf(out, "usage: sealpostd [--config FILE] [--data-dir DIR]\n"
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
        {"smtp-listen", required_argument, NULL, 'S'},
        {"http-listen", required_argument, NULL, 'H'},
        {"smarthost", required_argument, NULL, 'M'},
        {"resolver", required_argument, NULL, 'R'},
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
        case 'S':
        case 'H':
        case 'M':
        case 'R':
            sp_log_fatal(2,
                         "option --%s: that part of sealpostd is not "
                         "built yet",
                         options[index].name);
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

int
main(int argc, char **argv)
{
    struct daemon_options opt = {0};
    daemon_config config;
    sigset_t stop_signals;
    int signal_number = 0;
    sp_error err;

    sp_log_init("sealpostd");
    parse_options(&opt, argc, argv);

    /* Embedded defaults, then the file, then the options. */
    daemon_config_defaults(&config);
    if (opt.config != NULL && *opt.config != '\0' &&
        daemon_config_read(&config, opt.config, &err) != SP_OK)
        sp_log_fatal(2, "config=%s error=\"%s\"", opt.config, err.text);
    if (opt.data_dir != NULL && *opt.data_dir != '\0')
        daemon_config_set(&config.data_dir, opt.data_dir);

    /*
     * Block the stop signals before anything else starts, so they are
     * taken only by sigwait below and never interrupt start-up midway.
     */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    if (sigprocmask(SIG_BLOCK, &stop_signals, NULL) != 0)
        sp_log_fatal(3, "cannot block signals: %s", strerror(errno));
    prepare_data_dir(config.data_dir);

    sp_log_info("ready version=%s pid=%ld data_dir=%s config=%s",
                SEALPOST_VERSION, (long)getpid(), config.data_dir,
                opt.config ? opt.config : "embedded-defaults");
    if (sigwait(&stop_signals, &signal_number) != 0)
        sp_log_fatal(3, "sigwait failed");
    sp_log_info("stopping signal=%s",
                signal_number == SIGTERM ? "TERM" : "INT");
    sp_log_info("stopped");
    daemon_config_free(&config);
    return 0;
}
