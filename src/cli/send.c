/*
 * send.c: "sealpost send": transmissions through sealpostd's HTTP API,
 * from a file, or a stored template and a CSV file of recipients.
 *
 * Owns cli_send.  The API key comes from SEALPOST_API_KEY (not an
 * option, so it stays out of the process list); the API's address from
 * --api (SEALPOST_API), else the configured http_listen.  With a CSV
 * file, whose first row names the columns ("email" needed, "name"
 * optional; each a substitution variable too), recipients go in
 * transmissions of --batch each, and a progress bar (a line per batch
 * when standard error is not a terminal) shows how far it got.  Each
 * transmission's id and counts are printed on standard output.
 *
 * Exit status: 0 when every recipient was accepted, 1 when some were
 * rejected, 2 for usage or a bad file, 3 when the API could not be
 * reached or refused a request.
 */
#include "cli.h"

#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SEND_BATCH     1000
#define SEND_BATCH_MAX 100000
#define SEND_BAR_WIDTH 30

/* What the transmissions of one run came to. */
struct send_totals {
    size_t sent, accepted, rejected, total;
};

/* The body of an answer, gathered by libcurl. */
static size_t
send_gather(char *data, size_t size, size_t count, void *arg)
{
    return sp_buf_append(arg, data, size * count) == SP_OK ? size * count : 0;
}

/*
 * POST body to url with key; the status and the answer's JSON (NULL when
 * it has none).  SP_EIO with err when the API cannot be reached.
 */
static int
send_post(const char *url, const char *key, const char *body, long *status,
          json_t **answer, sp_error *err)
{
    CURL *curl = curl_easy_init();
    struct curl_slist *headers = NULL;
    char authorization[300];
    sp_buf got = SP_BUF_INIT;
    CURLcode rc;

    *answer = NULL;
    if (curl == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    snprintf(authorization, sizeof(authorization), "Authorization: %s", key);
    headers = curl_slist_append(headers, authorization);
    headers = curl_slist_append(headers, "Content-Type: application/json");
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, send_gather);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &got);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    rc = curl_easy_perform(curl);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
        *answer = json_loadb(got.data ? got.data : "", got.len, 0, NULL);
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    sp_buf_free(&got);
    if (rc != CURLE_OK)
        return sp_err_set(err, SP_EIO, "%s: %s", url, curl_easy_strerror(rc));
    return SP_OK;
}

/* Print why the API refused a request, from its errors array. */
static void
send_refused(long status, const json_t *answer)
{
    const json_t *error = json_array_get(json_object_get(answer, "errors"), 0);
    const char *message = json_string_value(json_object_get(error, "message"));
    const char *description =
        json_string_value(json_object_get(error, "description"));

    fprintf(stderr, "sealpost: the API answered %ld: %s%s%s\n", status,
            message ? message : "(no message)", description ? ": " : "",
            description ? description : "");
}

/* Show how far the run got: a bar on a terminal, else a line a batch. */
static void
send_progress(const struct send_totals *totals, bool done)
{
    size_t filled = totals->total
                        ? SEND_BAR_WIDTH * totals->sent / totals->total
                        : SEND_BAR_WIDTH;
    char bar[SEND_BAR_WIDTH + 1];

    if (!isatty(STDERR_FILENO)) {
        fprintf(stderr,
                "sealpost: sent %zu of %zu (accepted %zu, rejected "
                "%zu)\n",
                totals->sent, totals->total, totals->accepted,
                totals->rejected);
        return;
    }
    memset(bar, '=', filled);
    memset(bar + filled, ' ', SEND_BAR_WIDTH - filled);
    bar[SEND_BAR_WIDTH] = '\0';
    fprintf(stderr, "\r[%s] %zu/%zu  accepted %zu  rejected %zu%s", bar,
            totals->sent, totals->total, totals->accepted, totals->rejected,
            done ? "\n" : "");
}

/* POST one transmission; add its counts to totals.  A CLI status. */
static int
send_one(const char *url, const char *key, json_t *transmission,
         size_t recipients, struct send_totals *totals)
{
    char *body = json_dumps(transmission, JSON_COMPACT);
    json_t *answer = NULL, *results;
    long status = 0;
    sp_error err;
    int rc;

    if (body == NULL) {
        fprintf(stderr, "sealpost: out of memory\n");
        return CLI_RUNTIME;
    }
    rc = send_post(url, key, body, &status, &answer, &err);
    free(body);
    if (rc != SP_OK) {
        fprintf(stderr, "sealpost: %s\n", err.text);
        return CLI_RUNTIME;
    }
    results = json_object_get(answer, "results");
    if (status != 200 || !json_is_object(results)) {
        send_refused(status, answer);
        json_decref(answer);
        return CLI_RUNTIME;
    }
    totals->sent += recipients;
    totals->accepted += (size_t)json_integer_value(
        json_object_get(results, "total_accepted_recipients"));
    totals->rejected += (size_t)json_integer_value(
        json_object_get(results, "total_rejected_recipients"));
    printf("transmission %s accepted %lld rejected %lld\n",
           json_string_value(json_object_get(results, "id")),
           (long long)json_integer_value(
               json_object_get(results, "total_accepted_recipients")),
           (long long)json_integer_value(
               json_object_get(results, "total_rejected_recipients")));
    fflush(stdout);
    json_decref(answer);
    return CLI_OK;
}

/*
 * The next CSV record of text at *at (RFC 4180: fields quoted with '"'
 * may hold commas, line breaks and doubled quotes) as an array of
 * strings; NULL at the end.  *bad is set for a quote left open.
 */
static json_t *
send_csv_row(const char **at, const char *end, bool *bad)
{
    json_t *row = json_array();
    sp_buf field = SP_BUF_INIT;
    const char *p = *at;
    bool more = true;

    if (p >= end) {
        json_decref(row);
        return NULL;
    }
    while (more && row != NULL) {
        sp_buf_reset(&field);
        if (p < end && *p == '"') {
            for (p++;; p++) {
                if (p >= end) {
                    *bad = true;
                    break;
                }
                if (*p == '"' && p + 1 < end && p[1] == '"')
                    sp_buf_append(&field, p++, 1);
                else if (*p == '"') {
                    p++;
                    break;
                } else
                    sp_buf_append(&field, p, 1);
            }
        }
        while (p < end && *p != ',' && *p != '\n' && *p != '\r')
            sp_buf_append(&field, p++, 1);
        json_array_append_new(
            row, json_stringn(field.data ? field.data : "", field.len));
        if (p < end && *p == ',')
            p++;
        else {
            more = false;
            if (p < end && *p == '\r')
                p++;
            if (p < end && *p == '\n')
                p++;
        }
    }
    sp_buf_free(&field);
    *at = p;
    return row;
}

/* The recipients of a CSV file, as the API takes them; NULL after saying
 * why. */
static json_t *
send_csv(const char *path)
{
    sp_buf text = SP_BUF_INIT;
    json_t *header, *row, *recipients = json_array();
    const char *at, *end;
    size_t email = SIZE_MAX, name = SIZE_MAX, index, line = 1;
    json_t *column;
    bool bad = false;
    sp_error err;

    if (cli_read_file(path, &text, &err) != SP_OK) {
        fprintf(stderr, "sealpost: %s: %s\n", path, err.text);
        json_decref(recipients);
        return NULL;
    }
    at = text.data ? text.data : "";
    end = at + text.len;
    header = send_csv_row(&at, end, &bad);
    json_array_foreach(header, index, column) {
        if (strcmp(json_string_value(column), "email") == 0)
            email = index;
        else if (strcmp(json_string_value(column), "name") == 0)
            name = index;
    }
    if (email == SIZE_MAX)
        fprintf(stderr,
                "sealpost: %s: the first row names no \"email\" "
                "column\n",
                path);
    while (email != SIZE_MAX && recipients != NULL &&
           (row = send_csv_row(&at, end, &bad)) != NULL) {
        json_t *address, *data = json_object();

        line++;
        if (json_array_size(row) == 1 &&
            json_string_length(json_array_get(row, 0)) == 0) {
            json_decref(row);
            json_decref(data);
            continue; /* an empty line */
        }
        if (bad || json_array_size(row) != json_array_size(header)) {
            fprintf(stderr, "sealpost: %s: record %zu: %s\n", path, line,
                    bad ? "a quoted field is not closed"
                        : "not as many fields as the first row");
            json_decref(row);
            json_decref(data);
            json_decref(recipients);
            recipients = NULL;
            break;
        }
        address = json_pack("{s:O}", "email", json_array_get(row, email));
        if (name != SIZE_MAX)
            json_object_set(address, "name", json_array_get(row, name));
        json_array_foreach(header, index, column) {
            json_object_set(data, json_string_value(column),
                            json_array_get(row, index));
        }
        json_array_append_new(recipients,
                              json_pack("{s:o, s:o}", "address", address,
                                        "substitution_data", data));
        json_decref(row);
    }
    json_decref(header);
    sp_buf_free(&text);
    if (email == SIZE_MAX) {
        json_decref(recipients);
        return NULL;
    }
    return recipients;
}

/* The API's transmissions URL: --api, else http_listen. */
static int
send_url(const cli_globals *globals, char *url, size_t size)
{
    sp_config config;
    int rc;

    if (globals->api != NULL) {
        snprintf(url, size, "%s/api/v1/transmissions", globals->api);
        return CLI_OK;
    }
    rc = cli_config(globals, &config);
    if (rc != CLI_OK)
        return rc;
    if (config.http_listen[0] == '\0') {
        fprintf(stderr, "sealpost: http_listen is off; give --api URL\n");
        sp_config_free(&config);
        return CLI_USAGE;
    }
    snprintf(url, size, "http://%s/api/v1/transmissions", config.http_listen);
    sp_config_free(&config);
    return CLI_OK;
}

/* Send recipients in transmissions of batch, each naming template. */
static int
send_batches(const char *url, const char *key, json_t *recipients,
             const char *template_id, const char *campaign, size_t batch)
{
    struct send_totals totals = {.total = json_array_size(recipients)};
    int rc = CLI_OK;

    for (size_t from = 0; rc == CLI_OK && from < totals.total; from += batch) {
        size_t count =
            totals.total - from < batch ? totals.total - from : batch;
        json_t *slice = json_array();
        json_t *transmission;

        for (size_t i = 0; i < count; i++)
            json_array_append(slice, json_array_get(recipients, from + i));
        transmission = json_pack("{s:o, s:{s:s}}", "recipients", slice,
                                 "content", "template_id", template_id);
        if (campaign != NULL)
            json_object_set_new(transmission, "campaign_id",
                                json_string(campaign));
        rc = send_one(url, key, transmission, count, &totals);
        json_decref(transmission);
        if (rc == CLI_OK)
            send_progress(&totals, totals.sent == totals.total);
    }
    if (rc != CLI_OK)
        return rc;
    return totals.rejected > 0 ? CLI_NEGATIVE : CLI_OK;
}

int
cli_send(const cli_globals *globals, int argc, char **argv)
{
    static const struct option options[] = {
        {"file", required_argument, NULL, 'f'},
        {"template", required_argument, NULL, 't'},
        {"recipients", required_argument, NULL, 'r'},
        {"campaign", required_argument, NULL, 'c'},
        {"batch", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *file = NULL, *template_id = NULL, *csv = NULL;
    const char *campaign = NULL, *key = getenv("SEALPOST_API_KEY");
    int64_t batch = SEND_BATCH;
    char url[600];
    int option, rc;

    optind = 0; /* 0, not 1: glibc then re-reads the option string */
    while ((option = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        if (option == 'f')
            file = optarg;
        else if (option == 't')
            template_id = optarg;
        else if (option == 'r')
            csv = optarg;
        else if (option == 'c')
            campaign = optarg;
        else if (option == 'b' &&
                 cli_parse_number(optarg, 1, SEND_BATCH_MAX, &batch))
            continue;
        else {
            fprintf(option == 'h' ? stdout : stderr,
                    "usage: sealpost send --file TRANSMISSION.json\n"
                    "       sealpost send --template ID --recipients "
                    "FILE.csv [--campaign C]\n"
                    "                     [--batch N]\n\n"
                    "Sends through sealpostd's HTTP API with the key in "
                    "SEALPOST_API_KEY.  A CSV\nfile's first row names "
                    "its columns: email (needed), name, and others; each "
                    "is a substitution\nvariable.  Recipients go %d to a "
                    "transmission "
                    "unless --batch says.\n",
                    SEND_BATCH);
            return option == 'h' ? CLI_OK : CLI_USAGE;
        }
    }
    if (optind != argc || (file == NULL) == (template_id == NULL) ||
        (template_id != NULL) != (csv != NULL)) {
        fprintf(stderr, "sealpost: send needs --file, or --template and "
                        "--recipients\n");
        return CLI_USAGE;
    }
    if (key == NULL || key[0] == '\0') {
        fprintf(stderr, "sealpost: set SEALPOST_API_KEY to an API key with "
                        "the send scope\n");
        return CLI_USAGE;
    }
    rc = send_url(globals, url, sizeof(url));
    if (rc != CLI_OK)
        return rc;

    if (file != NULL) {
        json_error_t error;
        json_t *transmission = json_load_file(file, 0, &error);
        struct send_totals totals = {0};

        if (transmission == NULL) {
            fprintf(stderr, "sealpost: %s: line %d: %s\n", file, error.line,
                    error.text);
            return CLI_USAGE;
        }
        rc = send_one(
            url, key, transmission,
            json_array_size(json_object_get(transmission, "recipients")),
            &totals);
        json_decref(transmission);
        return rc != CLI_OK ? rc : totals.rejected ? CLI_NEGATIVE : CLI_OK;
    } else {
        json_t *recipients = send_csv(csv);

        if (recipients == NULL)
            return CLI_USAGE;
        rc = send_batches(url, key, recipients, template_id, campaign,
                          (size_t)batch);
        json_decref(recipients);
        return rc;
    }
}
