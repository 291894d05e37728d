/*
 * dmarc_reports.c: "sealpost dmarc parse" and "sealpost dmarc import":
 * DMARC aggregate reports from files into the store.
 *
 * Owns cli_dmarc_parse, cli_dmarc_import and cli_dmarc_summary.  The
 * first two take files and
 * directories (walked recursively, in name order) holding reports as XML,
 * gzip, zip or whole report mails; the module dmarc/ finds the reports.
 * parse only reads and prints, one report at a time; import stores each
 * report once (a report already stored, by reporting organization and
 * report id, is a duplicate and skipped) and puts what it refuses, with
 * the reason, in the store's bucket of invalid reports.  A progress line
 * is drawn on a terminal.
 *
 * summary reads the stored reports back through dmarc/summary.c, with
 * the sources named in dmarc_own_sources and delivery_source and the
 * selectors of the key store counted as the operator's own.
 *
 * Exit status: 0 when every payload was read (or skipped as a duplicate),
 * 1 when any was refused (the rest is still read), 2 usage, 3 when the
 * store fails.
 */
#include "cli.h"
#include "dmarc/report.h"
#include "dmarc/summary.h"
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define REPORTS_MAX_FILE   ((size_t)64 << 20) /* octets read from one file */
#define REPORTS_PROGRESS_S 0.1                /* between progress lines */
#define REPORTS_BATCH      1000 /* reports per store transaction */
#define REPORTS_BATCH_S    1.0  /* seconds a transaction stays open */

/* One run over the files. */
struct reports_run {
    bool json;
    sp_store *store; /* import: where reports go; parse: NULL */
    sp_dmarc_limits limits;
    const char *file; /* the file being read */
    size_t file_size;

    size_t files, files_total;
    uint64_t bytes_done, bytes_total;
    size_t read, duplicates, refused;
    uint64_t records, messages;
    bool store_failed;
    bool batch_open;      /* a store transaction holds what came since */
    size_t batch_reports; /* reports and refusals in it */
    double batch_since;   /* when it began */
    bool progress;        /* stderr is a terminal */
    double progress_at;
};

/* The files to read, with their sizes, walked in name order. */
struct reports_files {
    char **paths;
    size_t count;
    uint64_t bytes;
};

static double
reports_now(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

static int
reports_usage(FILE *out, const char *command, int status)
{
    fprintf(out,
            "usage: sealpost dmarc %s [--json] FILE|DIR...\n"
            "\n"
            "%s DMARC aggregate reports: XML, .xml.gz, .zip, or report "
            "mails (.eml),\ntold apart by their bytes, not their names. "
            "Directories are read\nrecursively.\n"
            "\n"
            "  --json   one JSON object per report%s\n"
            "\n"
            "Exit status: 0 every report read, 1 some refused (the rest "
            "still read),\n2 usage, 3 store failure.\n",
            command,
            strcmp(command, "parse") == 0
                ? "Read and print"
                : "Store (once: duplicates are skipped)",
            strcmp(command, "parse") == 0 ? ", the whole report"
                                          : ", with its outcome");
    return status;
}

/* ------------------------------------------------------------------------
 * Finding the files.
 */

static int
reports_add_path(struct reports_files *files, const char *path, uint64_t size)
{
    char **grown =
        sp_realloc(files->paths, (files->count + 1) * sizeof(*grown));

    if (grown == NULL)
        return SP_ENOMEM;
    files->paths = grown;
    files->paths[files->count] = sp_strndup(path, strlen(path));
    if (files->paths[files->count] == NULL)
        return SP_ENOMEM;
    files->count++;
    files->bytes += size;
    return SP_OK;
}

/* path and, for a directory, everything under it. */
static int
reports_walk(struct reports_files *files, const char *path, int depth)
{
    struct dirent **entries;
    struct stat info;
    int count, rc = SP_OK;

    if (stat(path, &info) != 0) {
        fprintf(stderr, "sealpost: %s: %s\n", path, strerror(errno));
        return SP_EIO;
    }
    if (!S_ISDIR(info.st_mode))
        return reports_add_path(files, path, (uint64_t)info.st_size);
    if (depth > 16)
        return SP_OK;

    count = scandir(path, &entries, NULL, alphasort);
    if (count < 0) {
        fprintf(stderr, "sealpost: %s: %s\n", path, strerror(errno));
        return SP_EIO;
    }
    for (int i = 0; i < count; i++) {
        const char *name = entries[i]->d_name;
        char *child;

        if (rc == SP_OK && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 &&
            asprintf(&child, "%s/%s", path, name) >= 0) {
            rc = reports_walk(files, child, depth + 1);
            free(child);
        }
        free(entries[i]);
    }
    free(entries);
    return rc;
}

/* ------------------------------------------------------------------------
 * Store transactions: many reports to one commit, for speed, and none
 * open for long, since sealpostd writes to the same store.
 */

/* Commit what the open batch holds; then open the next when again. */
static void
reports_commit(struct reports_run *run, bool again)
{
    sp_error err;

    if (run->batch_open &&
        sp_store_dmarc_batch_end(run->store, true, &err) != SP_OK) {
        fprintf(stderr,
                "sealpost: %s; the last %zu reports read were not stored\n",
                err.text, run->batch_reports);
        run->store_failed = true;
    }
    run->batch_open = false;
    run->batch_reports = 0;
    if (!again || run->store_failed)
        return;
    if (sp_store_dmarc_batch_begin(run->store, &err) != SP_OK) {
        fprintf(stderr, "sealpost: %s\n", err.text);
        run->store_failed = true;
        return;
    }
    run->batch_open = true;
    run->batch_since = reports_now();
}

/* After each file: commit once the batch is big or old enough. */
static void
reports_maybe_commit(struct reports_run *run)
{
    if (run->store != NULL &&
        (run->batch_reports >= REPORTS_BATCH ||
         reports_now() - run->batch_since >= REPORTS_BATCH_S))
        reports_commit(run, true);
}

/* ------------------------------------------------------------------------
 * Reporting what happened.
 */

static void
reports_progress(struct reports_run *run, bool last)
{
    double now;

    if (!run->progress)
        return;
    now = reports_now();
    if (!last && now - run->progress_at < REPORTS_PROGRESS_S)
        return;
    run->progress_at = now;
    fprintf(stderr, "\r%zu/%zu files, %.1f of %.1f MiB, %zu reports%s",
            run->files, run->files_total, (double)run->bytes_done / 1048576.0,
            (double)run->bytes_total / 1048576.0, run->read, last ? "\n" : "");
}

/* Clear the progress line before a line of output. */
static void
reports_clear_progress(const struct reports_run *run)
{
    if (run->progress)
        fprintf(stderr, "\r\033[K");
}

/* A line for one payload: JSON or words. */
static void
reports_say(struct reports_run *run, const char *part, const char *status,
            const sp_dmarc_report *report, const char *reason)
{
    reports_clear_progress(run);
    if (run->json) {
        json_t *line = json_pack("{s:s, s:s, s:s}", "file", run->file, "part",
                                 part, "status", status);

        if (reason != NULL)
            json_object_set_new(line, "reason", json_string(reason));
        if (report != NULL && run->store == NULL)
            json_object_set_new(line, "report", sp_dmarc_report_json(report));
        if (report != NULL && run->store != NULL) {
            json_object_set_new(line, "org_name",
                                json_string(report->org_name));
            json_object_set_new(line, "report_id",
                                json_string(report->report_id));
            json_object_set_new(line, "records",
                                json_integer((json_int_t)report->n_rows));
            json_object_set_new(line, "messages",
                                json_integer((json_int_t)report->messages));
        }
        json_dumpf(line, stdout, JSON_COMPACT);
        fputc('\n', stdout);
        json_decref(line);
        return;
    }

    printf("%s%s%s: %s", run->file, part[0] ? ": " : "", part, status);
    if (report != NULL)
        printf(", %s report %s for %s, %zu records, %llu messages",
               report->org_name, report->report_id, report->domain,
               report->n_rows, (unsigned long long)report->messages);
    if (reason != NULL)
        printf(": %s", reason);
    putchar('\n');
    if (report != NULL)
        for (size_t i = 0; i < report->n_notes; i++)
            printf("    note: %s\n", report->notes[i]);
}

/* A refusal, and in import its entry in the invalid reports. */
static void
reports_refuse(struct reports_run *run, const char *part, const char *reason)
{
    sp_error err;
    char source[1024];

    run->refused++;
    reports_say(run, part, "refused", NULL, reason);
    if (run->store == NULL)
        return;
    run->batch_reports++;
    snprintf(source, sizeof(source), "%s%s%s", run->file, part[0] ? ": " : "",
             part);
    if (sp_store_dmarc_refuse(run->store, source, reason, NULL,
                              (int64_t)run->file_size, (int64_t)time(NULL),
                              &err) != SP_OK) {
        fprintf(stderr, "sealpost: %s\n", err.text);
        run->store_failed = true;
    }
}

/* sp_dmarc_found_fn: one payload of the file being read. */
static void
reports_found(void *arg, const char *part, sp_dmarc_report *report,
              const sp_error *refusal)
{
    struct reports_run *run = arg;
    sp_error err;
    int rc;

    if (report == NULL) {
        reports_refuse(run, part, refusal->text);
        return;
    }
    if (run->store == NULL) {
        run->read++;
        reports_say(run, part, "read", report, NULL);
        sp_dmarc_report_free(report);
        return;
    }

    run->batch_reports++;
    rc = sp_store_dmarc_add(run->store, report, run->file, (int64_t)time(NULL),
                            NULL, &err);
    if (rc == SP_OK) {
        run->read++;
        run->records += report->n_rows;
        run->messages += report->messages;
        reports_say(run, part, "imported", report, NULL);
    } else if (rc == SP_EINVAL) {
        run->duplicates++;
        reports_say(run, part, "duplicate", report, err.text);
    } else {
        fprintf(stderr, "sealpost: %s\n", err.text);
        run->store_failed = true;
    }
    sp_dmarc_report_free(report);
}

/* One file, whole. */
static void
reports_file(struct reports_run *run, const char *path)
{
    sp_buf data = SP_BUF_INIT;
    sp_error err;
    struct stat info;

    run->file = path;
    run->file_size = 0;
    if (stat(path, &info) == 0 && (size_t)info.st_size > REPORTS_MAX_FILE) {
        char reason[128];

        snprintf(reason, sizeof(reason),
                 "the file is larger than %zu MiB, the limit on one "
                 "report file",
                 REPORTS_MAX_FILE >> 20);
        reports_refuse(run, "", reason);
        return;
    }
    if (cli_read_file(path, &data, &err) != SP_OK) {
        reports_refuse(run, "", err.text);
        return;
    }
    run->file_size = data.len;
    if (sp_dmarc_read(data.data, data.len, &run->limits, reports_found, run,
                      &err) != SP_OK)
        reports_refuse(run, "", err.text);
    sp_buf_free(&data);
}

/* ------------------------------------------------------------------------
 * The commands.
 */

static int
reports_main(const cli_globals *globals, int argc, char **argv, bool import)
{
    static const struct option options[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *command = import ? "import" : "parse";
    struct reports_run run = {0};
    struct reports_files files = {0};
    sp_config config;
    sp_error err;
    int option, rc = CLI_OK;

    optind = 0;
    while ((option = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (option) {
        case 'j':
            run.json = true;
            break;
        case 'h':
            return reports_usage(stdout, command, CLI_OK);
        default:
            return reports_usage(stderr, command, CLI_USAGE);
        }
    }
    if (optind == argc)
        return reports_usage(stderr, command, CLI_USAGE);

    /* The files first, so the progress line knows the whole. */
    for (int i = optind; i < argc; i++) {
        int walked = reports_walk(&files, argv[i], 0);

        if (walked == SP_ENOMEM) {
            fprintf(stderr, "sealpost: out of memory\n");
            rc = CLI_RUNTIME;
        } else if (walked != SP_OK) {
            run.refused++; /* named above, with the system's reason */
        }
    }

    if (rc == CLI_OK && import) {
        rc = cli_config(globals, &config);
        if (rc == CLI_OK &&
            sp_store_open(config.data_dir, &run.store, &err) != SP_OK) {
            fprintf(stderr, "sealpost: %s\n", err.text);
            sp_config_free(&config);
            rc = CLI_RUNTIME;
        }
    }

    sp_dmarc_limits_default(&run.limits);
    run.files_total = files.count;
    run.bytes_total = files.bytes;
    run.progress = !run.json && isatty(STDERR_FILENO);
    if (run.store != NULL)
        reports_commit(&run, true);
    for (size_t i = 0; rc == CLI_OK && i < files.count && !run.store_failed;
         i++) {
        struct stat info;

        reports_file(&run, files.paths[i]);
        run.files++;
        if (stat(files.paths[i], &info) == 0)
            run.bytes_done += (uint64_t)info.st_size;
        reports_progress(&run, false);
        reports_maybe_commit(&run);
    }
    if (run.store != NULL)
        reports_commit(&run, false);
    reports_progress(&run, true);

    if (import && run.store != NULL) {
        if (!run.json)
            printf("%zu imported (%llu records, %llu messages), %zu "
                   "duplicates, %zu refused\n",
                   run.read, (unsigned long long)run.records,
                   (unsigned long long)run.messages, run.duplicates,
                   run.refused);
        sp_store_close(run.store);
        sp_config_free(&config);
    }
    for (size_t i = 0; i < files.count; i++)
        sp_free(files.paths[i]);
    sp_free(files.paths);

    if (rc != CLI_OK)
        return rc;
    if (run.store_failed)
        return CLI_RUNTIME;
    return run.refused > 0 || files.count == 0 ? CLI_NEGATIVE : CLI_OK;
}

int
cli_dmarc_parse(const cli_globals *globals, int argc, char **argv)
{
    return reports_main(globals, argc, argv, false);
}

int
cli_dmarc_import(const cli_globals *globals, int argc, char **argv)
{
    return reports_main(globals, argc, argv, true);
}

/* ------------------------------------------------------------------------
 * The summary.
 */

/* What decides ownership: the configured sources, the key store's keys. */
struct summary_owner {
    sp_dmarc_sources *sources;
    sp_store_key *keys;
    size_t n_keys;
};

static bool
summary_own_source(void *arg, const char *ip)
{
    const struct summary_owner *owner = arg;

    return sp_dmarc_sources_match(owner->sources, ip);
}

static bool
summary_own_selector(void *arg, const char *domain, const char *selector)
{
    const struct summary_owner *owner = arg;

    for (size_t i = 0; i < owner->n_keys; i++)
        if (strcasecmp(owner->keys[i].domain, domain) == 0 &&
            strcmp(owner->keys[i].selector, selector) == 0)
            return true;
    return false;
}

/* sp_store_dmarc_row_fn: into the summary. */
static void
summary_take(void *arg, const sp_store_dmarc_row *row)
{
    sp_dmarc_summary_add(arg, row);
}

static int
summary_usage(FILE *out, int status)
{
    fprintf(out,
            "usage: sealpost dmarc summary [--since DATE|DURATION] [--top N] "
            "[--json] [DOMAIN]\n"
            "\n"
            "What the stored aggregate reports say of each domain (or of "
            "DOMAIN):\nmessages by receiver and by source address, DKIM "
            "results by selector,\naligned DKIM and SPF, dispositions and "
            "the reasons for overrides, and\nwhether p=quarantine would "
            "spare the mail of the own sources\n(dmarc_own_sources, "
            "delivery_source).\n"
            "\n"
            "  --since T  reports ending at T or later: 2026-11-01, or a "
            "duration\n             back from now (30d)\n"
            "  --top N    sources shown per domain (20; 0: all; JSON has "
            "all)\n"
            "  --json     the summary as one JSON document\n");
    return status;
}

/* --since: YYYY-MM-DD (UTC) or a duration back from now. */
static bool
summary_since(const char *text, int64_t *since)
{
    struct tm date = {0};
    const char *end = strptime(text, "%Y-%m-%d", &date);
    int64_t back;

    if (end != NULL && *end == '\0') {
        *since = (int64_t)timegm(&date);
        return true;
    }
    if (!cli_parse_duration(text, &back))
        return false;
    *since = (int64_t)time(NULL) - back;
    return true;
}

/*
 * A string of the summary, fit for a terminal: reports and receivers
 * choose these names, so control characters (a line break in a selector,
 * a C1 escape) are shown as '?'.  Eight calls share rotating buffers.
 */
static const char *
summary_text(json_t *value)
{
    static char buffers[8][512];
    static size_t next;
    char *out = buffers[next++ % 8];
    const char *text = json_string_value(value);

    if (text == NULL)
        return NULL;
    snprintf(out, sizeof(buffers[0]), "%s", text);
    sp_text_clean(out);
    for (unsigned char *c = (unsigned char *)out; *c != '\0'; c++)
        if (c[0] == 0xC2 && c[1] >= 0x80 && c[1] < 0xA0)
            c[0] = '?', c[1] = '?'; /* C1 controls, U+0080 to U+009F */
    return out;
}

static double
summary_rate(json_t *object, const char *part, const char *whole)
{
    json_int_t of = json_integer_value(json_object_get(object, whole));

    return of > 0
               ? 100.0 *
                     (double)json_integer_value(json_object_get(object, part)) /
                     (double)of
               : 0.0;
}

static void
summary_print_counts(const char *label, json_t *counts)
{
    const char *key;
    json_t *value;

    printf("%s", label);
    json_object_foreach(counts, key, value)
        printf(" %s %" JSON_INTEGER_FORMAT, key, json_integer_value(value));
    putchar('\n');
}

static void
summary_print_selector(const char *indent, json_t *selector)
{
    json_int_t unsupported =
        json_integer_value(json_object_get(selector, "unsupported"));
    const char *name = summary_text(json_object_get(selector, "selector"));

    printf("%s%s %s (%s): %" JSON_INTEGER_FORMAT
           " messages, pass %.1f%%, aligned pass %.1f%%",
           indent, summary_text(json_object_get(selector, "domain")),
           name != NULL ? name : "(no selector)",
           json_is_true(json_object_get(selector, "own")) ? "ours"
                                                          : "third party",
           json_integer_value(json_object_get(selector, "messages")),
           summary_rate(selector, "pass", "messages"),
           summary_rate(selector, "aligned_pass", "messages"));
    if (unsupported > 0)
        printf(", not verifiable while another signature passed: "
               "%" JSON_INTEGER_FORMAT " (a receiver without its algorithm)",
               unsupported);
    putchar('\n');
}

static void
summary_print_domain(json_t *domain, size_t top)
{
    char first[16] = "?", last[16] = "?";
    time_t from = (time_t)json_integer_value(json_object_get(domain, "first"));
    time_t to = (time_t)json_integer_value(json_object_get(domain, "last"));
    json_t *advice = json_object_get(domain, "advice");
    json_t *item;
    struct tm tm;
    size_t i;

    if (gmtime_r(&from, &tm) != NULL)
        strftime(first, sizeof(first), "%Y-%m-%d", &tm);
    if (gmtime_r(&to, &tm) != NULL)
        strftime(last, sizeof(last), "%Y-%m-%d", &tm);
    printf("%s: %" JSON_INTEGER_FORMAT " reports from %zu receivers, %s to "
           "%s (UTC)\n",
           summary_text(json_object_get(domain, "domain")),
           json_integer_value(json_object_get(domain, "reports")),
           json_array_size(json_object_get(domain, "reporters")), first, last);
    printf("  %" JSON_INTEGER_FORMAT " messages: DMARC pass %.1f%%, aligned "
           "DKIM %.1f%%, aligned SPF %.1f%%\n",
           json_integer_value(json_object_get(domain, "messages")),
           summary_rate(domain, "dmarc_pass", "messages"),
           summary_rate(domain, "dkim_aligned_pass", "messages"),
           summary_rate(domain, "spf_aligned_pass", "messages"));
    summary_print_counts("  dispositions:",
                         json_object_get(domain, "dispositions"));
    json_array_foreach(json_object_get(domain, "reporters"), i, item)
        printf("  receiver %s: %" JSON_INTEGER_FORMAT " reports, "
               "%" JSON_INTEGER_FORMAT " messages\n",
               summary_text(json_object_get(item, "org_name")),
               json_integer_value(json_object_get(item, "reports")),
               json_integer_value(json_object_get(item, "messages")));

    printf("  sources, most messages first:\n");
    json_array_foreach(json_object_get(domain, "sources"), i, item) {
        json_t *selector;
        size_t k;

        if (top > 0 && i == top) {
            printf("    and %zu more (--top 0 shows every source)\n",
                   json_array_size(json_object_get(domain, "sources")) - top);
            break;
        }
        printf("    %-39s %-7s %8" JSON_INTEGER_FORMAT
               " messages, DMARC %5.1f%%, aligned DKIM %5.1f%%, aligned SPF "
               "%5.1f%%\n",
               summary_text(json_object_get(item, "ip")),
               json_is_true(json_object_get(item, "own")) ? "ours" : "foreign",
               json_integer_value(json_object_get(item, "messages")),
               summary_rate(item, "dmarc_pass", "messages"),
               summary_rate(item, "dkim_aligned_pass", "messages"),
               summary_rate(item, "spf_aligned_pass", "messages"));
        json_array_foreach(json_object_get(item, "selectors"), k, selector)
            summary_print_selector("      ", selector);
    }
    printf("  DKIM selectors:\n");
    json_array_foreach(json_object_get(domain, "selectors"), i, item)
        summary_print_selector("    ", item);
    json_array_foreach(json_object_get(domain, "overrides"), i, item)
        printf("  override %s%s%s: %" JSON_INTEGER_FORMAT " messages\n",
               json_string_length(json_object_get(item, "type"))
                   ? summary_text(json_object_get(item, "type"))
                   : "(no type)",
               json_string_length(json_object_get(item, "comment")) ? ", " : "",
               summary_text(json_object_get(item, "comment")),
               json_integer_value(json_object_get(item, "messages")));
    printf("  advice: %s\n", summary_text(json_object_get(advice, "reason")));
    json_array_foreach(json_object_get(advice, "own_failing"), i, item)
        printf("    own source %s failed aligned DKIM for "
               "%" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT
               " messages\n",
               summary_text(json_object_get(item, "ip")),
               json_integer_value(json_object_get(item, "dkim_aligned_fail")),
               json_integer_value(json_object_get(item, "messages")));
    json_array_foreach(json_object_get(advice, "foreign_failing"), i, item)
        if (top == 0 || i < top)
            printf(
                "    foreign source %s failed DMARC for %" JSON_INTEGER_FORMAT
                " messages: p=quarantine would quarantine them\n",
                summary_text(json_object_get(item, "ip")),
                json_integer_value(json_object_get(item, "dmarc_fail")));
}

/* delivery_source and dmarc_own_sources, as one list. */
static int
summary_sources(const sp_config *config, sp_dmarc_sources **out, sp_error *err)
{
    const char **items;
    size_t count = 0;
    char *copy =
        sp_strndup(config->delivery_source, strlen(config->delivery_source));
    char *word, *rest = NULL;
    int rc;

    items = sp_calloc(config->dmarc_own_sources.count + 64, sizeof(*items));
    if (items == NULL || copy == NULL) {
        sp_free(items);
        sp_free(copy);
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < config->dmarc_own_sources.count; i++)
        items[count++] = config->dmarc_own_sources.items[i];
    for (word = strtok_r(copy, ", \t", &rest);
         word != NULL && count < config->dmarc_own_sources.count + 64;
         word = strtok_r(NULL, ", \t", &rest))
        items[count++] = word;
    rc = sp_dmarc_sources_parse(items, count, out, err);
    sp_free(items);
    sp_free(copy);
    return rc;
}

int
cli_dmarc_summary(const cli_globals *globals, int argc, char **argv)
{
    static const struct option options[] = {
        {"since", required_argument, NULL, 's'},
        {"json", no_argument, NULL, 'j'},
        {"top", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct summary_owner owner = {0};
    int64_t top = 20;
    sp_dmarc_ownership ownership = {summary_own_source, summary_own_selector,
                                    &owner};
    sp_dmarc_summary *summary = NULL;
    sp_store *store = NULL;
    const char *domain = NULL;
    int64_t since = 0;
    bool json = false;
    sp_config config;
    json_t *document;
    sp_error err;
    int option, rc;

    optind = 0;
    while ((option = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (option) {
        case 's':
            if (!summary_since(optarg, &since)) {
                fprintf(stderr,
                        "sealpost: --since %s: a date (2026-11-01) "
                        "or a duration (30d)\n",
                        optarg);
                return CLI_USAGE;
            }
            break;
        case 'j':
            json = true;
            break;
        case 't':
            if (!cli_parse_number(optarg, 0, 1000000000, &top)) {
                fprintf(stderr, "sealpost: --top %s: a number\n", optarg);
                return CLI_USAGE;
            }
            break;
        case 'h':
            return summary_usage(stdout, CLI_OK);
        default:
            return summary_usage(stderr, CLI_USAGE);
        }
    }
    if (argc - optind > 1)
        return summary_usage(stderr, CLI_USAGE);
    if (optind < argc)
        domain = argv[optind];

    rc = cli_config(globals, &config);
    if (rc != CLI_OK)
        return rc;
    if (summary_sources(&config, &owner.sources, &err) != SP_OK ||
        sp_store_open(config.data_dir, &store, &err) != SP_OK ||
        sp_store_key_list(store, NULL, &owner.keys, &owner.n_keys, &err) !=
            SP_OK ||
        (summary = sp_dmarc_summary_new(&ownership)) == NULL ||
        sp_store_dmarc_rows(store, domain, since, summary_take, summary,
                            &err) != SP_OK) {
        fprintf(stderr, "sealpost: %s\n", err.text);
        rc = CLI_RUNTIME;
    }

    if (rc == CLI_OK) {
        document = sp_dmarc_summary_json(summary);
        if (json) {
            json_dumpf(document, stdout, JSON_INDENT(2));
            putchar('\n');
        } else if (json_array_size(json_object_get(document, "domains")) == 0) {
            printf("no aggregate report stored%s%s\n", domain ? " for " : "",
                   domain ? domain : "");
        } else {
            json_t *item;
            size_t i;

            json_array_foreach(json_object_get(document, "domains"), i, item)
                summary_print_domain(item, (size_t)top);
        }
        if (json_array_size(json_object_get(document, "domains")) == 0)
            rc = CLI_NEGATIVE;
        json_decref(document);
    }
    sp_dmarc_summary_free(summary);
    sp_store_keys_free(owner.keys, owner.n_keys);
    sp_dmarc_sources_free(owner.sources);
    if (store != NULL)
        sp_store_close(store);
    sp_config_free(&config);
    return rc;
}
