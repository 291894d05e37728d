/*
 * io.c: reading and writing whole files for the command line tool.
 *
 * Owns cli_read_file, cli_write_all, cli_parse_duration, cli_parse_number,
 * cli_config, cli_store and cli_resolver.  Commands work
 * on messages that fit in memory; the daemon streams, the CLI need not.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int
cli_read_file(const char *path, sp_buf *buf, sp_error *err)
{
    bool is_stdin = strcmp(path, "-") == 0;
    int fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    int rc = SP_OK;

    if (fd < 0)
        return sp_err_set(err, SP_EIO, "%s", strerror(errno));
    for (;;) {
        ssize_t got;

        if (sp_buf_reserve(buf, 65536) != SP_OK) {
            rc = sp_err_set(err, SP_ENOMEM, "out of memory");
            break;
        }
        got = read(fd, buf->data + buf->len, 65536);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            rc = sp_err_set(err, SP_EIO, "%s", strerror(errno));
            break;
        }
        if (got == 0)
            break;
        buf->len += (size_t)got;
        buf->data[buf->len] = '\0';
    }
    if (!is_stdin)
        close(fd);
    return rc;
}

int
cli_write_all(int fd, const void *data, size_t len, sp_error *err)
{
    const char *pos = data;

    while (len > 0) {
        ssize_t put = write(fd, pos, len);

        if (put < 0 && errno == EINTR)
            continue;
        if (put <= 0)
            return sp_err_set(err, SP_EIO, "write failed: %s",
                              put < 0 ? strerror(errno) : "no progress");
        pos += put;
        len -= (size_t)put;
    }
    return SP_OK;
}

bool
cli_parse_duration(const char *text, int64_t *seconds)
{
    static const struct {
        char unit;
        int64_t seconds;
    } units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}, {'w', 604800}};
    char *end;
    long long value;

    errno = 0;
    value = strtoll(text, &end, 10);
    if (errno != 0 || end == text || value < 0 || text[0] == '-')
        return false;
    if (*end == '\0') {
        *seconds = value;
        return true;
    }
    if (end[1] != '\0')
        return false;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (*end != units[i].unit)
            continue;
        if (value > INT64_MAX / units[i].seconds)
            return false;
        *seconds = value * units[i].seconds;
        return true;
    }
    return false;
}

bool
cli_parse_number(const char *text, int64_t min, int64_t max, int64_t *out)
{
    int64_t value = 0;

    if (*text == '\0')
        return false;
    for (const char *p = text; *p != '\0'; p++) {
        if (*p < '0' || *p > '9' || value > (max - (*p - '0')) / 10)
            return false;
        value = value * 10 + (*p - '0');
    }
    if (value < min)
        return false;
    *out = value;
    return true;
}

int
cli_config(const cli_globals *globals, sp_config *config)
{
    sp_error err;

    sp_config_defaults(config);
    if (globals->config != NULL &&
        sp_config_read(config, globals->config, &err) != SP_OK) {
        fprintf(stderr, "sealpost: %s\n", err.text);
        sp_config_free(config);
        return err.code == SP_EIO ? CLI_RUNTIME : CLI_USAGE;
    }
    if (globals->data_dir != NULL)
        sp_config_set(config, "data_dir", globals->data_dir, NULL);
    if (sp_config_check(config, &err) != SP_OK) {
        fprintf(stderr, "sealpost: configuration: %s\n", err.text);
        sp_config_free(config);
        return CLI_USAGE;
    }
    return CLI_OK;
}

int
cli_store(const cli_globals *globals, sp_config *config, sp_store **store)
{
    sp_error err;
    int rc = cli_config(globals, config);

    *store = NULL;
    if (rc != CLI_OK)
        return rc;
    if (sp_store_open(config->data_dir, store, &err) != SP_OK) {
        fprintf(stderr, "sealpost: %s\n", err.text);
        sp_config_free(config);
        return CLI_RUNTIME;
    }
    return CLI_OK;
}

const char *
cli_resolver(const sp_config *config, const char *option)
{
    if (option != NULL)
        return option;
    return config->resolver[0] != '\0' ? config->resolver : NULL;
}
