/*
 * records.c: DKIM key records as DNS sees them: what to publish, in
 * zone-file syntax, and whether what DNS shows is our key.
 *
 * Owns sp_keys_zone, sp_keys_zone_line, sp_keys_seen, sp_keys_name and
 * sp_keys_publish.
 * TXT values over 255 octets are split into several quoted strings, which
 * DNS joins (RFC 7208 3.3 describes the same for SPF; RFC 6376 3.6.2.2 for
 * DKIM).
 */
#include "keys_int.h"

#include <stdio.h>
#include <string.h>

#define RECORD_STRING 255 /* octets in one character-string */

const char *
sp_keys_name(const sp_store_key *row, char *out, size_t size)
{
    snprintf(out, size, "%s._domainkey.%s", row->selector, row->domain);
    return out;
}

int
sp_keys_zone_line(const char *name, int64_t ttl, const char *value, sp_buf *out)
{
    size_t len = strlen(value);
    int rc;

    rc = sp_buf_printf(out, "%s %lld IN TXT (", name, (long long)ttl);

    /* Quoted strings of at most 255 octets, one per line. */
    for (size_t pos = 0; rc == SP_OK && (pos < len || pos == 0);) {
        size_t take = len - pos < RECORD_STRING ? len - pos : RECORD_STRING;

        rc = sp_buf_append_str(out, pos == 0 ? " \"" : "\n\t\"");
        for (size_t i = 0; rc == SP_OK && i < take; i++) {
            char c = value[pos + i];

            if (c == '"' || c == '\\')
                rc = sp_buf_append(out, "\\", 1);
            if (rc == SP_OK)
                rc = sp_buf_append(out, &c, 1);
        }
        if (rc == SP_OK)
            rc = sp_buf_append(out, "\"", 1);
        pos += take;
        if (len == 0)
            break;
    }
    return rc == SP_OK ? sp_buf_append_str(out, " )\n") : rc;
}

/* The record that revokes a key: its type and an empty p= (RFC 6376). */
static void
records_revocation(const sp_store_key *row, char *out, size_t size)
{
    snprintf(out, size, "v=DKIM1; k=%s; p=", row->algorithm);
}

int
sp_keys_zone(sp_keys *keys, const char *domain, bool relative, sp_buf *out,
             sp_error *err)
{
    sp_store_key *rows = NULL;
    size_t count = 0;
    int rc;

    rc = sp_store_key_list(keys->store, domain, &rows, &count, err);
    if (rc != SP_OK)
        return rc;
    if (relative)
        rc = sp_buf_printf(out, "$ORIGIN %s.\n", domain);

    for (size_t i = 0; i < count && rc == SP_OK; i++) {
        const sp_store_key *row = &rows[i];
        char name[400], revoked[64];

        if (relative)
            snprintf(name, sizeof(name), "%s._domainkey", row->selector);
        else
            snprintf(name, sizeof(name), "%s._domainkey.%s.", row->selector,
                     row->domain);
        rc = sp_buf_printf(out, "; %s %s-%u %s%s\n", row->selector,
                           row->algorithm, row->bits,
                           sp_store_key_state_name(row->state),
                           row->state == SP_STORE_KEY_RETIRED
                               ? ": revoked, nothing may depend on it"
                               : "");
        if (rc != SP_OK)
            break;
        if (row->state == SP_STORE_KEY_RETIRED) {
            records_revocation(row, revoked, sizeof(revoked));
            rc = sp_keys_zone_line(name, keys->config->dkim_record_ttl, revoked,
                                   out);
        } else {
            rc = sp_keys_zone_line(name, keys->config->dkim_record_ttl,
                                   row->public_record, out);
        }
    }
    sp_store_keys_free(rows, count);
    if (rc == SP_ENOMEM)
        return sp_err_set(err, rc, "out of memory");
    return rc;
}

/* Judge one TXT record against our key; true when it is ours. */
static bool
seen_record(const sp_dkim_keyrec *ours, const char *text, size_t len,
            sp_keys_seen_state *state, char *why, size_t why_size)
{
    sp_dkim_keyrec theirs;
    sp_error err;

    if (sp_dkim_keyrec_parse(text, len, &theirs, &err) != SP_OK) {
        *state = SP_KEYS_SEEN_MISMATCH;
        snprintf(why, why_size, "the published record is unusable: %s",
                 err.text);
        return false;
    }
    if (theirs.revoked) {
        *state = SP_KEYS_SEEN_REVOKED;
        snprintf(why, why_size,
                 "the published record revokes the key "
                 "(empty p=)");
    } else if (!sp_dkim_keyrec_same_key(ours, &theirs)) {
        *state = SP_KEYS_SEEN_MISMATCH;
        snprintf(why, why_size,
                 "the published record holds another key "
                 "than the one sealpost made");
    } else {
        *state = SP_KEYS_SEEN_MATCH;
        snprintf(why, why_size, "the published record holds the key");
    }
    sp_dkim_keyrec_free(&theirs);
    return *state == SP_KEYS_SEEN_MATCH;
}

void
sp_keys_seen(const sp_store_key *row, const sp_dns_answer *answer,
             sp_keys_seen_state *state, char *why, size_t why_size)
{
    sp_dkim_keyrec ours;
    char name[400];

    sp_keys_name(row, name, sizeof(name));
    if (answer->status == SP_DNS_SERVFAIL || answer->status == SP_DNS_TIMEOUT) {
        *state = SP_KEYS_SEEN_FAILED;
        snprintf(why, why_size, "DNS gave no answer for %s (%s)", name,
                 answer->status == SP_DNS_TIMEOUT ? "timeout" : "SERVFAIL");
        return;
    }
    if (answer->status == SP_DNS_NXDOMAIN || answer->count == 0) {
        *state = SP_KEYS_SEEN_MISSING;
        snprintf(why, why_size,
                 "no record at %s yet; publish it (sealpost "
                 "dkim dns %s)",
                 name, row->domain);
        return;
    }
    if (sp_dkim_keyrec_parse(row->public_record, strlen(row->public_record),
                             &ours, NULL) != SP_OK) {
        *state = SP_KEYS_SEEN_FAILED;
        snprintf(why, why_size, "the stored record of %s does not parse", name);
        return;
    }

    /* Several records at one name: ours is there if any of them is it. */
    for (size_t i = 0; i < answer->count; i++)
        if (seen_record(&ours, answer->records[i].text, answer->records[i].len,
                        state, why, why_size))
            break;
    sp_dkim_keyrec_free(&ours);
}

/* The record a change publishes: the key's, or its revocation. */
static int
publish_one(sp_keys *keys, const sp_keys_change *change, sp_error *err)
{
    const sp_config *config = keys->config;
    sp_store_key *rows = NULL;
    size_t count = 0;
    char name[400], revoked[64];
    const char *value = NULL;
    int rc;

    rc = sp_store_key_list(keys->store, change->domain, &rows, &count, err);
    for (size_t i = 0; rc == SP_OK && i < count && value == NULL; i++) {
        if (rows[i].id != change->key_id)
            continue;
        sp_keys_name(&rows[i], name, sizeof(name));
        records_revocation(&rows[i], revoked, sizeof(revoked));
        value = change->to == SP_STORE_KEY_RETIRED ? revoked
                                                   : rows[i].public_record;
        rc = sp_dns_update_txt(
            config->dns_update_server, config->dns_update_tsig,
            config->dns_update_zone[0] ? config->dns_update_zone
                                       : change->domain,
            name, value, (uint32_t)config->dkim_record_ttl, err);
    }
    sp_store_keys_free(rows, count);
    return rc;
}

/*
 * No update server: the record of each key made, for the operator to
 * publish, one line each (the first start shows it; "sealpost dkim dns"
 * prints it again in zone-file syntax).
 */
static void
publish_by_hand(sp_keys *keys, const sp_keys_report *report, sp_buf *notes)
{
    for (size_t i = 0; i < report->count; i++) {
        const sp_keys_change *change = &report->changes[i];
        sp_store_key *rows = NULL;
        size_t count = 0;
        char name[400];

        if (!change->made || sp_store_key_list(keys->store, change->domain,
                                               &rows, &count, NULL) != SP_OK)
            continue;
        for (size_t k = 0; k < count; k++)
            if (rows[k].id == change->key_id) {
                sp_keys_name(&rows[k], name, sizeof(name));
                sp_buf_printf(notes,
                              "publish the TXT record %s with the value %s "
                              "(sealpost dkim dns %s --zone prints it for a "
                              "zone file)\n",
                              name, rows[k].public_record, change->domain);
            }
        sp_store_keys_free(rows, count);
    }
}

void
sp_keys_publish(sp_keys *keys, const sp_keys_report *report, sp_buf *notes)
{
    if (keys->config->dns_update_server[0] == '\0') {
        publish_by_hand(keys, report, notes);
        return;
    }
    for (size_t i = 0; i < report->count; i++) {
        const sp_keys_change *change = &report->changes[i];
        sp_error err;

        if (!change->made && change->to != SP_STORE_KEY_RETIRED)
            continue;
        if (change->to == SP_STORE_KEY_RETIRED && change->from == change->to)
            continue;
        if (publish_one(keys, change, &err) == SP_OK)
            sp_buf_printf(notes,
                          "published %s._domainkey.%s by DNS "
                          "update\n",
                          change->selector, change->domain);
        else
            sp_buf_printf(notes, "could not publish %s._domainkey.%s: %s\n",
                          change->selector, change->domain, err.text);
    }
}
