/*
 * config.c: sealpostd's configuration file.
 *
 * Owns daemon_config_*.  The format is deliberately small: one
 * "key = value" per line, '#' comments, no sections.  Each key is a row of
 * config_keys, so a new setting is one line of table and one struct field.
 */
#include "daemon.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_DATA_DIR "/var/lib/sealpost"

struct config_key {
    const char *name;
    size_t offset; /* of the char * setting in daemon_config */
};

static const struct config_key config_keys[] = {
    {"data_dir", offsetof(daemon_config, data_dir)},
};

void
daemon_config_set(char **setting, const char *value)
{
    free(*setting);
    *setting = sp_xstrdup(value);
}

void
daemon_config_defaults(daemon_config *config)
{
    config->data_dir = NULL;
    daemon_config_set(&config->data_dir, DEFAULT_DATA_DIR);
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

/* Apply one "key = value" line. */
static int
config_line(daemon_config *config, char *line, size_t number, sp_error *err)
{
    char *equals = strchr(line, '=');
    char *key, *value;

    if (equals == NULL)
        return sp_err_set(err, SP_ESYNTAX, "line %zu: expected key = value",
                          number);
    *equals = '\0';
    key = config_trim(line);
    value = config_trim(equals + 1);
    for (size_t i = 0; i < sizeof(config_keys) / sizeof(config_keys[0]); i++) {
        if (strcmp(key, config_keys[i].name) != 0)
            continue;
        daemon_config_set((char **)((char *)config + config_keys[i].offset),
                          value);
        return SP_OK;
    }
    return sp_err_set(err, SP_ESYNTAX, "line %zu: unknown setting \"%.60s\"",
                      number, key);
}

int
daemon_config_read(daemon_config *config, const char *path, sp_error *err)
{
    FILE *file = fopen(path, "r");
    char line[4096];
    size_t number = 0;
    int rc = SP_OK;

    if (file == NULL)
        return sp_err_set(err, SP_EIO, "%s: %s", path, strerror(errno));
    while (rc == SP_OK && fgets(line, sizeof(line), file) != NULL) {
        char *text = config_trim(line);

        number++;
        if (*text == '\0' || *text == '#')
            continue;
        rc = config_line(config, text, number, err);
    }
    if (rc == SP_OK && ferror(file))
        rc = sp_err_set(err, SP_EIO, "%s: read error", path);
    fclose(file);
    return rc;
}

void
daemon_config_free(daemon_config *config)
{
    free(config->data_dir);
    config->data_dir = NULL;
}
