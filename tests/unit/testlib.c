/*
 * testlib.c: helpers shared by the unit tests; see testlib.h.
 */
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
testlib_temp_dir(const char *what, char *path, size_t size)
{
    snprintf(path, size, "/tmp/sealpost-test-%s-XXXXXX", what);
    assert_non_null(mkdtemp(path));
}

void
testlib_remove_dir(const char *path)
{
    char command[600];

    assert_true(strlen(path) < 500 && strchr(path, '\'') == NULL);
    snprintf(command, sizeof(command), "rm -rf '%s'", path);
    assert_int_equal(system(command), 0);
}

void
testlib_read(const char *relative, sp_buf *buf)
{
    const char *root = getenv("SEALPOST_TESTDATA");
    char path[1024];
    FILE *file;
    char chunk[65536];
    size_t got;

    snprintf(path, sizeof(path), "%s/%s", root ? root : "tests/data", relative);
    file = fopen(path, "rb");
    if (file == NULL)
        fail_msg("cannot open %s", path);
    sp_buf_reset(buf);
    while ((got = fread(chunk, 1, sizeof(chunk), file)) > 0)
        assert_int_equal(sp_buf_append(buf, chunk, got), SP_OK);
    assert_int_equal(sp_buf_append(buf, "", 0), SP_OK);
    fclose(file);
}

void
testlib_dns_load(testlib_dns *dns, const char *relative)
{
    sp_buf text = SP_BUF_INIT;
    sp_error err;

    testlib_read(relative, &text);
    if (sp_dns_table_parse(text.data, text.len, &dns->table, &err) != SP_OK)
        fail_msg("%s: %s", relative, err.text);
    sp_buf_free(&text);
}

void
testlib_dns_free(testlib_dns *dns)
{
    sp_dns_table_free(dns->table);
    dns->table = NULL;
}

void
testlib_dns_lookup(void *arg, const char *name, sp_dkim_txt *answer)
{
    testlib_dns *dns = arg;
    sp_dns_answer found;

    sp_dns_table_txt(dns->table, name, &found);
    answer->status = found.status == SP_DNS_OK         ? SP_DKIM_DNS_OK
                     : found.status == SP_DNS_NXDOMAIN ? SP_DKIM_DNS_NXDOMAIN
                     : found.status == SP_DNS_TIMEOUT  ? SP_DKIM_DNS_TIMEOUT
                                                       : SP_DKIM_DNS_SERVFAIL;
    answer->count =
        found.count < SP_DKIM_MAX_TXT ? found.count : SP_DKIM_MAX_TXT;
    for (size_t i = 0; i < answer->count; i++) {
        answer->record[i] = found.records[i].text;
        answer->length[i] = found.records[i].len;
    }
}

sp_dkim_verify *
testlib_verify(testlib_dns *dns, const char *message, size_t len, size_t chunk,
               bool legacy)
{
    sp_dkim_verify_opts opts = {
        .lookup = testlib_dns_lookup,
        .lookup_arg = dns,
        .now = 1700000000,
        .legacy = legacy,
    };
    sp_dkim_verify *verify = NULL;
    sp_error err;

    assert_int_equal(sp_dkim_verify_new(&opts, &verify, &err), SP_OK);
    if (chunk == 0)
        chunk = len ? len : 1;
    for (size_t pos = 0; pos < len; pos += chunk) {
        size_t take = len - pos < chunk ? len - pos : chunk;

        if (sp_dkim_verify_feed(verify, message + pos, take, &err) != SP_OK)
            fail_msg("feed: %s", err.text);
    }
    if (sp_dkim_verify_finish(verify, &err) != SP_OK)
        fail_msg("finish: %s", err.text);
    return verify;
}

int
testlib_sign(const sp_dkim_sign_spec *specs, size_t count, const char *message,
             size_t len, size_t chunk, sp_buf *out, sp_error *err)
{
    sp_dkim_sign *sign = NULL;
    int rc;

    rc = sp_dkim_sign_new(specs, count, 1700000000, &sign, err);
    if (rc != SP_OK)
        return rc;
    if (chunk == 0)
        chunk = len ? len : 1;
    for (size_t pos = 0; pos < len && rc == SP_OK; pos += chunk) {
        size_t take = len - pos < chunk ? len - pos : chunk;

        rc = sp_dkim_sign_feed(sign, message + pos, take, err);
    }
    if (rc == SP_OK)
        rc = sp_dkim_sign_finish(sign, out, err);
    if (rc == SP_OK)
        rc = sp_buf_append(out, message, len);
    sp_dkim_sign_free(sign);
    return rc;
}

sp_dkim_key *
testlib_ed25519_key(void)
{
    sp_buf seed = SP_BUF_INIT;
    sp_dkim_key *key = NULL;
    sp_error err;

    testlib_read("cases/keys/ed25519-rfc8032-test1.seed.b64", &seed);
    if (sp_dkim_key_parse(seed.data, seed.len, &key, &err) != SP_OK)
        fail_msg("ed25519 seed: %s", err.text);
    sp_buf_free(&seed);
    return key;
}

sp_dkim_key *
testlib_rsa_key(unsigned bits)
{
    sp_dkim_key *key = NULL;
    sp_error err;

    if (sp_dkim_key_generate(SP_DKIM_KEY_RSA, bits, &key, &err) != SP_OK)
        fail_msg("RSA-%u: %s", bits, err.text);
    return key;
}
