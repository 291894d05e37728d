/*
 * daemon.h: names shared by the files of sealpostd.
 *
 *   main.c    options, start-up, the wait for a stop signal
 *   config.c  daemon_config_*: the configuration file
 */
#ifndef SP_DAEMON_H
#define SP_DAEMON_H

#include "base/base.h"

/* The daemon's settings: embedded defaults, then the file, then options. */
typedef struct daemon_config {
    char *data_dir; /* where SQLite files and the spool live; owned */
} daemon_config;

/* Set the embedded defaults. */
void daemon_config_defaults(daemon_config *config);

/*
 * Read a configuration file: "key = value" lines, '#' comments.  Unknown
 * keys and malformed lines are errors (SP_ESYNTAX naming the line), so a
 * mistyped setting never silently keeps its default.
 */
int daemon_config_read(daemon_config *config, const char *path, sp_error *err);

/* Replace a string setting with a copy of value. */
void daemon_config_set(char **setting, const char *value);

void daemon_config_free(daemon_config *config);

#endif /* SP_DAEMON_H */
