/*
 * config.c: sealpost's configuration file, its defaults and its rules.
 *
 * Owns sp_config_*.  Each setting is a row of config_table: its key, its
 * type, where it lives in sp_config and its default, so a new setting is
 * one row and one struct field.  The cross-setting rules live in
 * sp_config_check, where each refusal names the settings and the values.
 */
#include "config.h"
#include "dmarc/summary.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum config_type {
    CONFIG_STRING,
    CONFIG_LIST,
    CONFIG_DURATION,
    CONFIG_INTEGER,
    CONFIG_SIZE,
    CONFIG_BOOL,
};

struct config_row {
    const char *key;
    enum config_type type;
    size_t offset;        /* of the field in sp_config */
    const char *fallback; /* default, as the file would write it */
};

#define ROW(key, type, fallback)                                               \
    {                                                                          \
#key, type, offsetof(sp_config, key), fallback                         \
    }

static const struct config_row config_table[] = {
    ROW(data_dir, CONFIG_STRING, "/var/lib/sealpost"),
    ROW(master_key_file, CONFIG_STRING, ""),
    ROW(resolver, CONFIG_STRING, ""),
    ROW(dkim_domains, CONFIG_LIST, ""),
    ROW(dkim_testing_domains, CONFIG_LIST, ""),
    ROW(dkim_algorithms, CONFIG_LIST, "rsa, ed25519"),
    ROW(dkim_rsa_bits, CONFIG_INTEGER, "2048"),
    ROW(dkim_rotation_period, CONFIG_DURATION, "90d"),
    ROW(dkim_signature_expiry, CONFIG_DURATION, "100d"),
    ROW(dkim_check_interval, CONFIG_DURATION, "1h"),
    ROW(dkim_record_ttl, CONFIG_DURATION, "1h"),
    ROW(queue_max_lifetime, CONFIG_DURATION, "3d"),
    ROW(queue_min_free, CONFIG_SIZE, "100M"),
    ROW(smtp_listen, CONFIG_LIST, "127.0.0.1:2525"),
    ROW(smtp_hostname, CONFIG_STRING, ""),
    ROW(smtp_require_auth, CONFIG_BOOL, "no"),
    ROW(smtp_plain_auth_loopback, CONFIG_BOOL, "yes"),
    ROW(smtp_max_message, CONFIG_SIZE, "25M"),
    ROW(smtp_max_recipients, CONFIG_INTEGER, "1000"),
    ROW(smtp_max_command, CONFIG_INTEGER, "512"),
    ROW(smtp_max_text_line, CONFIG_INTEGER, "1000"),
    ROW(smtp_max_errors, CONFIG_INTEGER, "10"),
    ROW(smtp_max_connections, CONFIG_INTEGER, "2000"),
    ROW(smtp_max_per_client, CONFIG_INTEGER, "200"),
    ROW(smtp_min_data_rate, CONFIG_SIZE, "500"),
    ROW(smtp_bare_eol, CONFIG_STRING, "reject"),
    ROW(smtp_command_timeout, CONFIG_DURATION, "5m"),
    ROW(smtp_data_start_timeout, CONFIG_DURATION, "2m"),
    ROW(smtp_data_timeout, CONFIG_DURATION, "3m"),
    ROW(tls_cert_file, CONFIG_STRING, ""),
    ROW(tls_key_file, CONFIG_STRING, ""),
    ROW(delivery_hold, CONFIG_BOOL, "no"),
    ROW(delivery_smarthost, CONFIG_STRING, ""),
    ROW(delivery_routes, CONFIG_LIST, ""),
    ROW(delivery_port, CONFIG_INTEGER, "25"),
    ROW(delivery_max_connections, CONFIG_INTEGER, "500"),
    ROW(delivery_connections_per_destination, CONFIG_INTEGER, "10"),
    ROW(delivery_messages_per_connection, CONFIG_INTEGER, "100"),
    ROW(delivery_rules, CONFIG_STRING, ""),
    ROW(delivery_retry_schedule, CONFIG_LIST, "5m 10m 20m 40m 1h 2h 4h"),
    ROW(delivery_connect_timeout, CONFIG_DURATION, "30s"),
    ROW(delivery_idle_time, CONFIG_DURATION, "5s"),
    ROW(delivery_tls, CONFIG_STRING, "may"),
    ROW(delivery_tls_ca_file, CONFIG_STRING, ""),
    ROW(delivery_source, CONFIG_STRING, ""),
    ROW(delivery_bounce_messages, CONFIG_BOOL, "yes"),
    ROW(delivery_reply_timeout, CONFIG_DURATION, "0"),
    ROW(http_listen, CONFIG_STRING, "127.0.0.1:8025"),
    ROW(events_retention, CONFIG_DURATION, "30d"),
    ROW(events_subject, CONFIG_BOOL, "yes"),
    ROW(webhook_retry_max, CONFIG_DURATION, "1h"),
    ROW(dns_update_server, CONFIG_STRING, ""),
    ROW(dns_update_tsig, CONFIG_STRING, ""),
    ROW(dns_update_zone, CONFIG_STRING, ""),
    ROW(dmarc_own_sources, CONFIG_LIST, ""),
    ROW(dmarc_report_addresses, CONFIG_LIST, ""),
};

#undef ROW

static void
list_clear(sp_config_list *list)
{
    for (size_t i = 0; i < list->count; i++)
        free(list->items[i]);
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

/* Split on commas and whitespace into list, replacing what it held. */
static void
list_parse(sp_config_list *list, const char *value)
{
    char *copy = sp_xstrdup(value);
    char *save = NULL;

    list_clear(list);
    for (char *item = strtok_r(copy, ", \t", &save); item != NULL;
         item = strtok_r(NULL, ", \t", &save)) {
        char **grown =
            realloc(list->items, (list->count + 1) * sizeof(*list->items));

        if (grown == NULL)
            sp_log_fatal(3, "out of memory reading the configuration");
        list->items = grown;
        list->items[list->count++] = sp_xstrdup(item);
    }
    free(copy);
}

/*
 * A number with an optional one-letter unit from units, each unit worth
 * the factor at its index: "90d", "25M".  False for anything else or for
 * a value over INT64_MAX.
 */
static bool
parse_scaled(const char *text, const char *units, const int64_t *factors,
             int64_t *out)
{
    int64_t value = 0, factor = 1;
    const char *p = text;

    if (!isdigit((unsigned char)*p))
        return false;
    for (; isdigit((unsigned char)*p); p++) {
        if (value > (INT64_MAX - 9) / 10)
            return false;
        value = value * 10 + (*p - '0');
    }
    if (*p != '\0') {
        const char *unit = strchr(units, *p);

        if (unit == NULL || p[1] != '\0')
            return false;
        factor = factors[unit - units];
    }
    if (value > INT64_MAX / factor)
        return false;
    *out = value * factor;
    return true;
}

bool
sp_config_parse_duration(const char *text, int64_t *out)
{
    static const int64_t seconds[] = {1, 60, 3600, 86400, 604800};

    return parse_scaled(text, "smhdw", seconds, out);
}

/* Parse a size: digits with an optional K, M or G (powers of 1024). */
static bool
parse_size(const char *text, int64_t *out)
{
    static const int64_t octets[] = {1024, 1024 * 1024, 1024 * 1024 * 1024};

    return parse_scaled(text, "KMG", octets, out);
}

/* Apply value to the setting a row describes. */
static int
row_apply(sp_config *config, const struct config_row *row, const char *value,
          sp_error *err)
{
    void *field = (char *)config + row->offset;
    char *end;
    long long number;

    switch (row->type) {
    case CONFIG_STRING:
        free(*(char **)field);
        *(char **)field = sp_xstrdup(value);
        return SP_OK;
    case CONFIG_LIST:
        list_parse(field, value);
        return SP_OK;
    case CONFIG_DURATION:
        if (!sp_config_parse_duration(value, field))
            return sp_err_set(err, SP_ESYNTAX,
                              "%s = %.40s: expected a duration such as 90d, "
                              "12h or 3600",
                              row->key, value);
        return SP_OK;
    case CONFIG_SIZE:
        if (!parse_size(value, field))
            return sp_err_set(err, SP_ESYNTAX,
                              "%s = %.40s: expected a size such as 25M, 512K "
                              "or 1000",
                              row->key, value);
        return SP_OK;
    case CONFIG_BOOL:
        if (strcmp(value, "yes") != 0 && strcmp(value, "no") != 0)
            return sp_err_set(err, SP_ESYNTAX, "%s = %.40s: expected yes or no",
                              row->key, value);
        *(bool *)field = strcmp(value, "yes") == 0;
        return SP_OK;
    case CONFIG_INTEGER:
        errno = 0;
        number = strtoll(value, &end, 10);
        if (errno != 0 || end == value || *end != '\0')
            return sp_err_set(err, SP_ESYNTAX, "%s = %.40s: expected a number",
                              row->key, value);
        *(int64_t *)field = number;
        return SP_OK;
    }
    return SP_EINVAL;
}

void
sp_config_defaults(sp_config *config)
{
    memset(config, 0, sizeof(*config));
    for (size_t i = 0; i < sizeof(config_table) / sizeof(config_table[0]); i++)
        if (row_apply(config, &config_table[i], config_table[i].fallback,
                      NULL) != SP_OK)
            sp_log_panic("default of %s does not parse", config_table[i].key);
}

int
sp_config_set(sp_config *config, const char *key, const char *value,
              sp_error *err)
{
    for (size_t i = 0; i < sizeof(config_table) / sizeof(config_table[0]); i++)
        if (strcmp(key, config_table[i].key) == 0)
            return row_apply(config, &config_table[i], value, err);
    return sp_err_set(err, SP_ESYNTAX, "unknown setting \"%.60s\"", key);
}

/* Trim whitespace from both ends of text in place. */
static char *
config_trim(char *text)
{
    char *end;

    while (*text == ' ' || *text == '\t')
        text++;
    end = text + strlen(text);
    while (end > text && strchr(" \t\r\n", end[-1]))
        *--end = '\0';
    return text;
}

int
sp_config_read(sp_config *config, const char *path, sp_error *err)
{
    FILE *file = fopen(path, "r");
    char line[4096];
    size_t number = 0;
    int rc = SP_OK;

    if (file == NULL)
        return sp_err_set(err, SP_EIO, "%s: %s", path, strerror(errno));
    while (rc == SP_OK && fgets(line, sizeof(line), file) != NULL) {
        char *text = config_trim(line);
        char *equals = strchr(text, '=');
        sp_error line_err;

        number++;
        if (*text == '\0' || *text == '#')
            continue;
        if (equals == NULL) {
            rc = sp_err_set(err, SP_ESYNTAX,
                            "%s line %zu: expected key = value", path, number);
            break;
        }
        *equals = '\0';
        rc = sp_config_set(config, config_trim(text), config_trim(equals + 1),
                           &line_err);
        if (rc != SP_OK)
            sp_err_set(err, rc, "%s line %zu: %s", path, number, line_err.text);
    }
    if (rc == SP_OK && ferror(file))
        rc = sp_err_set(err, SP_EIO, "%s: read error", path);
    fclose(file);
    return rc;
}

const char *
sp_config_duration_text(int64_t seconds, char *buf, size_t size)
{
    static const struct {
        char unit;
        int64_t seconds;
    } units[] = {{'w', 604800}, {'d', 86400}, {'h', 3600}, {'m', 60}};

    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (seconds > 0 && seconds % units[i].seconds == 0) {
            snprintf(buf, size, "%lld%c",
                     (long long)(seconds / units[i].seconds), units[i].unit);
            return buf;
        }
    snprintf(buf, size, "%llds", (long long)seconds);
    return buf;
}

int
sp_config_check(const sp_config *config, sp_error *err)
{
    char a[32], b[32];

    if (config->dkim_signature_expiry <= config->dkim_rotation_period)
        return sp_err_set(
            err, SP_EINVAL,
            "dkim_signature_expiry (%s) must be longer than "
            "dkim_rotation_period (%s): a signature must outlive the key's "
            "time as the signing key",
            sp_config_duration_text(config->dkim_signature_expiry, a,
                                    sizeof(a)),
            sp_config_duration_text(config->dkim_rotation_period, b,
                                    sizeof(b)));
    if (config->dkim_signature_expiry <= config->queue_max_lifetime)
        return sp_err_set(
            err, SP_EINVAL,
            "dkim_signature_expiry (%s) must be longer than "
            "queue_max_lifetime (%s): a queued message must still verify "
            "when it is finally delivered",
            sp_config_duration_text(config->dkim_signature_expiry, a,
                                    sizeof(a)),
            sp_config_duration_text(config->queue_max_lifetime, b, sizeof(b)));
    if (config->dkim_rotation_period <= 0 || config->dkim_check_interval <= 0)
        return sp_err_set(err, SP_EINVAL,
                          "dkim_rotation_period and dkim_check_interval "
                          "must be longer than zero");
    if (config->dkim_rsa_bits < 1024)
        return sp_err_set(err, SP_EINVAL,
                          "dkim_rsa_bits = %lld: RSA keys under 1024 bits are "
                          "refused (RFC 8301: receivers treat them as "
                          "invalid); use 2048",
                          (long long)config->dkim_rsa_bits);
    if (config->dkim_rsa_bits > 4096)
        return sp_err_set(err, SP_EINVAL,
                          "dkim_rsa_bits = %lld: more than 4096 bits does not "
                          "fit DNS records well; use 2048",
                          (long long)config->dkim_rsa_bits);
    for (size_t i = 0; i < config->dkim_algorithms.count; i++)
        if (strcmp(config->dkim_algorithms.items[i], "rsa") != 0 &&
            strcmp(config->dkim_algorithms.items[i], "ed25519") != 0)
            return sp_err_set(err, SP_EINVAL,
                              "dkim_algorithms: \"%.40s\" is not rsa or "
                              "ed25519 (rsa-sha1 is never used)",
                              config->dkim_algorithms.items[i]);
    if (strcmp(config->smtp_bare_eol, "reject") != 0 &&
        strcmp(config->smtp_bare_eol, "normalize") != 0)
        return sp_err_set(err, SP_EINVAL,
                          "smtp_bare_eol = %.40s: use reject (5xx) or "
                          "normalize (to CRLF)",
                          config->smtp_bare_eol);
    if (config->smtp_max_command < 512 || config->smtp_max_text_line < 1000)
        return sp_err_set(err, SP_EINVAL,
                          "smtp_max_command must be at least 512 and "
                          "smtp_max_text_line at least 1000 (RFC 5321 "
                          "4.5.3.1)");
    if (config->smtp_max_message < 1024 || config->smtp_max_recipients < 1 ||
        config->smtp_max_errors < 1 || config->smtp_max_connections < 1 ||
        config->smtp_max_per_client < 1)
        return sp_err_set(err, SP_EINVAL,
                          "smtp limits must allow at least one message of "
                          "1K, one recipient, one error and one connection");
    if (config->smtp_command_timeout < 1 ||
        config->smtp_data_start_timeout < 1 || config->smtp_data_timeout < 1 ||
        config->smtp_command_timeout > 3600 ||
        config->smtp_data_start_timeout > 3600 ||
        config->smtp_data_timeout > 3600)
        return sp_err_set(err, SP_EINVAL,
                          "smtp timeouts must be from 1s to 1h (RFC 5321 "
                          "4.5.3.2 asks for 5m, 2m and 3m)");
    for (size_t i = 0; i < config->delivery_retry_schedule.count; i++) {
        int64_t seconds;

        if (!sp_config_parse_duration(config->delivery_retry_schedule.items[i],
                                      &seconds) ||
            seconds < 1)
            return sp_err_set(err, SP_EINVAL,
                              "delivery_retry_schedule: \"%.40s\" is not a "
                              "duration such as 5m or 1h",
                              config->delivery_retry_schedule.items[i]);
    }
    if (config->delivery_retry_schedule.count > 32)
        return sp_err_set(err, SP_EINVAL,
                          "delivery_retry_schedule: at most 32 steps (the "
                          "last one repeats)");
    if (config->delivery_port < 1 || config->delivery_port > 65535)
        return sp_err_set(err, SP_EINVAL,
                          "delivery_port = %lld: a TCP port from 1 to 65535",
                          (long long)config->delivery_port);
    if (config->delivery_max_connections < 1 ||
        config->delivery_connections_per_destination < 1 ||
        config->delivery_messages_per_connection < 1)
        return sp_err_set(err, SP_EINVAL,
                          "delivery_max_connections, "
                          "delivery_connections_per_destination and "
                          "delivery_messages_per_connection must be at "
                          "least 1");
    if (config->delivery_connect_timeout < 1 ||
        config->delivery_connect_timeout > 600 ||
        config->delivery_idle_time > 300)
        return sp_err_set(err, SP_EINVAL,
                          "delivery_connect_timeout must be from 1s to 10m "
                          "and delivery_idle_time at most 5m");
    for (size_t i = 0; i < config->delivery_routes.count; i++) {
        const char *equals = strchr(config->delivery_routes.items[i], '=');

        if (equals == NULL || equals == config->delivery_routes.items[i] ||
            equals[1] == '\0')
            return sp_err_set(err, SP_EINVAL,
                              "delivery_routes: \"%.80s\" is not "
                              "domain=host:port",
                              config->delivery_routes.items[i]);
    }
    if ((config->tls_cert_file[0] == '\0') != (config->tls_key_file[0] == '\0'))
        return sp_err_set(err, SP_EINVAL,
                          "tls_cert_file and tls_key_file go together");
    if (config->dkim_algorithms.count == 0)
        return sp_err_set(err, SP_EINVAL,
                          "dkim_algorithms must name rsa, ed25519 or both");
    for (size_t i = 0; i < config->dkim_testing_domains.count; i++)
        if (!sp_config_list_has(&config->dkim_domains,
                                config->dkim_testing_domains.items[i]))
            return sp_err_set(err, SP_EINVAL,
                              "dkim_testing_domains: %.80s is not in "
                              "dkim_domains",
                              config->dkim_testing_domains.items[i]);
    if (config->dmarc_own_sources.count > 0) {
        sp_dmarc_sources *sources;
        sp_error why;

        if (sp_dmarc_sources_parse(
                (const char *const *)config->dmarc_own_sources.items,
                config->dmarc_own_sources.count, &sources, &why) != SP_OK)
            return sp_err_set(err, SP_EINVAL, "dmarc_own_sources: %s",
                              why.text);
        sp_dmarc_sources_free(sources);
    }
    for (size_t i = 0; i < config->dmarc_report_addresses.count; i++) {
        const char *address = config->dmarc_report_addresses.items[i];
        const char *at = strrchr(address, '@');

        if (at == NULL || at == address || at[1] == '\0' ||
            strpbrk(address, "<>\" ") != NULL)
            return sp_err_set(err, SP_EINVAL,
                              "dmarc_report_addresses: \"%.80s\" is not an "
                              "address (local@domain)",
                              address);
    }
    return SP_OK;
}

const char *
sp_config_master_key(const sp_config *config, char *buf, size_t size)
{
    if (config->master_key_file[0] != '\0')
        snprintf(buf, size, "%s", config->master_key_file);
    else
        snprintf(buf, size, "%s/master.key", config->data_dir);
    return buf;
}

bool
sp_config_list_has(const sp_config_list *list, const char *item)
{
    for (size_t i = 0; i < list->count; i++)
        if (strcasecmp(list->items[i], item) == 0)
            return true;
    return false;
}

void
sp_config_free(sp_config *config)
{
    for (size_t i = 0; i < sizeof(config_table) / sizeof(config_table[0]);
         i++) {
        void *field = (char *)config + config_table[i].offset;

        if (config_table[i].type == CONFIG_STRING) {
            free(*(char **)field);
            *(char **)field = NULL;
        } else if (config_table[i].type == CONFIG_LIST) {
            list_clear(field);
        }
    }
}
