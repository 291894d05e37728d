/*
 * cli.h: names shared by the files of the sealpost command line tool.
 *
 *   main.c      global options, the command table, usage
 *   io.c        cli_read_*, cli_write_all: whole files and streams
 *   dkim_sign.c cli_dkim_sign
 *   dkim_verify.c cli_dkim_verify
 *   dkim_audit.c cli_dkim_audit
 *   dmarc_record.c cli_dmarc_record
 *   dmarc_reports.c cli_dmarc_parse, _import, _summary: aggregate reports
 *   keys.c      cli_keys_import, _list, _remove: recipients' keys
 *   apikey.c    cli_apikey_create, _list, _revoke
 *   queue.c     cli_queue_list, _show, _delete
 *   events.c    cli_events: the event store
 *   webhooks.c  cli_webhooks_add, _list, _remove, _status
 *   send.c      cli_send: transmissions through the HTTP API
 *   config_check.c cli_config_check: a configuration checked whole
 *   dkim_keys.c cli_dkim_keygen, _dns, _rotate, _activate, _status,
 *               _export: the key lifecycle
 *   dns_update.c cli_dns_update: dynamic updates of TXT records
 *   dns_mx.c     cli_dns_mx: a domain's mail exchangers
 *
 * Exit statuses are those of the design: 0 success, 1 a negative answer,
 * 2 usage or configuration, 3 runtime failure; commands add finer ones.
 */
#ifndef SP_CLI_H
#define SP_CLI_H

#include "base/base.h"
#include "config/config.h"
#include "store/store.h"

enum cli_exit {
    CLI_OK = 0,
    CLI_NEGATIVE = 1,
    CLI_USAGE = 2,
    CLI_RUNTIME = 3,
    CLI_NOTHING = 4, /* dkim verify: the message carries no signature */
};

/* Settings every command sees, from options or the environment. */
typedef struct cli_globals {
    const char *config;   /* --config, SEALPOST_CONFIG */
    const char *data_dir; /* --data-dir, SEALPOST_DATA_DIR */
    const char *api;      /* --api, SEALPOST_API */
} cli_globals;

/*
 * Read a whole file ("-" for standard input) into buf.  Returns SP_OK, or
 * SP_EIO with the system's reason in err (the caller names the file).
 */
int cli_read_file(const char *path, sp_buf *buf, sp_error *err);

/* Write all of data to fd; SP_EIO on a failed or short write. */
int cli_write_all(int fd, const void *data, size_t len, sp_error *err);

/*
 * Parse a duration: a number with an optional unit s, m, h, d or w
 * ("90d"); seconds when there is none.  Returns false when malformed.
 */
bool cli_parse_duration(const char *text, int64_t *seconds);

/*
 * Parse a decimal number of digits only, min <= value <= max; false when
 * anything else, so "12x", "-1" and "" are refused, not half-read.
 */
bool cli_parse_number(const char *text, int64_t min, int64_t max, int64_t *out);

/*
 * The configuration a command runs with: embedded defaults, then the file
 * (--config, SEALPOST_CONFIG), then --data-dir or SEALPOST_DATA_DIR; the
 * rules between settings checked.  Returns CLI_OK (free config with
 * sp_config_free), or the exit status after printing why (config freed).
 */
int cli_config(const cli_globals *globals, sp_config *config);

/*
 * cli_config, then the store of its data directory into *store.  Returns
 * CLI_OK (close the store, free config), or the exit status after
 * printing why (config freed, no store).
 */
int cli_store(const cli_globals *globals, sp_config *config, sp_store **store);

/* The DNS source of a command: --resolver, else the configured one. */
const char *cli_resolver(const sp_config *config, const char *option);

int cli_apikey_create(const cli_globals *globals, int argc, char **argv);
int cli_apikey_list(const cli_globals *globals, int argc, char **argv);
int cli_apikey_revoke(const cli_globals *globals, int argc, char **argv);
int cli_queue_list(const cli_globals *globals, int argc, char **argv);
int cli_queue_show(const cli_globals *globals, int argc, char **argv);
int cli_queue_delete(const cli_globals *globals, int argc, char **argv);
int cli_events(const cli_globals *globals, int argc, char **argv);
int cli_webhooks_add(const cli_globals *globals, int argc, char **argv);
int cli_webhooks_list(const cli_globals *globals, int argc, char **argv);
int cli_webhooks_remove(const cli_globals *globals, int argc, char **argv);
int cli_webhooks_status(const cli_globals *globals, int argc, char **argv);
int cli_send(const cli_globals *globals, int argc, char **argv);
int cli_config_check(const cli_globals *globals, int argc, char **argv);
int cli_dkim_sign(const cli_globals *globals, int argc, char **argv);
int cli_dkim_verify(const cli_globals *globals, int argc, char **argv);
int cli_dkim_keygen(const cli_globals *globals, int argc, char **argv);
int cli_dkim_dns(const cli_globals *globals, int argc, char **argv);
int cli_dkim_rotate(const cli_globals *globals, int argc, char **argv);
int cli_dkim_activate(const cli_globals *globals, int argc, char **argv);
int cli_dkim_status(const cli_globals *globals, int argc, char **argv);
int cli_dkim_export(const cli_globals *globals, int argc, char **argv);
int cli_dns_update(const cli_globals *globals, int argc, char **argv);
int cli_dns_mx(const cli_globals *globals, int argc, char **argv);
int cli_dkim_audit(const cli_globals *globals, int argc, char **argv);
int cli_dmarc_record(const cli_globals *globals, int argc, char **argv);
int cli_dmarc_parse(const cli_globals *globals, int argc, char **argv);
int cli_dmarc_import(const cli_globals *globals, int argc, char **argv);
int cli_dmarc_summary(const cli_globals *globals, int argc, char **argv);
int cli_keys_import(const cli_globals *globals, int argc, char **argv);
int cli_keys_list(const cli_globals *globals, int argc, char **argv);
int cli_keys_remove(const cli_globals *globals, int argc, char **argv);

#endif /* SP_CLI_H */
