/*
 * test_store_rkeys.c: the directory of recipients' keys in the store:
 * keys come back as stored, per address without regard to case and per
 * "@domain"; the same key twice for an address is refused; removal takes
 * one key by fingerprint or all of an address's.
 */
#include "testlib.h"

#include "store/store.h"

#include <stdio.h>
#include <string.h>

static void
key_set(sp_store_rkey *key, const char *address, const char *method,
        const char *fingerprint, const char *bytes, size_t len)
{
    memset(key, 0, sizeof(*key));
    snprintf(key->address, sizeof(key->address), "%s", address);
    snprintf(key->method, sizeof(key->method), "%s", method);
    snprintf(key->fingerprint, sizeof(key->fingerprint), "%s", fingerprint);
    snprintf(key->subject, sizeof(key->subject), "subject of %s", address);
    key->not_before = 1700000000;
    key->not_after = 1900000000;
    key->imported = 1800000000;
    assert_int_equal(sp_buf_append(&key->data, bytes, len), SP_OK);
}

static void
keys_are_kept_per_address(void **state)
{
    char dir[256];
    sp_store *store;
    sp_store_rkey key, *keys;
    size_t count, removed;
    sp_error err;

    (void)state;
    testlib_temp_dir("rkeys", dir, sizeof(dir));
    assert_int_equal(sp_store_open(dir, &store, &err), SP_OK);

    key_set(&key, "Alice@Example.COM", "smime", "ab01", "cert\0bytes",
            sizeof("cert\0bytes"));
    assert_int_equal(sp_store_rkey_add(store, &key, &err), SP_OK);
    assert_true(key.id > 0);
    assert_int_equal(sp_store_rkey_add(store, &key, &err), SP_EINVAL);
    assert_non_null(strstr(err.text, "already has"));
    sp_buf_free(&key.data);
    key_set(&key, "alice@example.com", "pgp", "CD02", "pgp key", 7);
    assert_int_equal(sp_store_rkey_add(store, &key, &err), SP_OK);
    sp_buf_free(&key.data);
    key_set(&key, "@example.com", "smime", "ef03", "gateway", 7);
    assert_int_equal(sp_store_rkey_add(store, &key, &err), SP_OK);
    sp_buf_free(&key.data);

    assert_int_equal(
        sp_store_rkey_list(store, "ALICE@example.com", &keys, &count, &err),
        SP_OK);
    assert_int_equal(count, 2);
    assert_string_equal(keys[0].address, "alice@example.com");
    assert_string_equal(keys[0].method, "pgp");
    assert_string_equal(keys[1].method, "smime");
    assert_string_equal(keys[1].subject, "subject of Alice@Example.COM");
    assert_int_equal(keys[1].not_after, 1900000000);
    assert_int_equal(keys[1].data.len, sizeof("cert\0bytes"));
    assert_memory_equal(keys[1].data.data, "cert\0bytes", keys[1].data.len);
    sp_store_rkeys_free(keys, count);

    assert_int_equal(sp_store_rkey_list(store, NULL, &keys, &count, &err),
                     SP_OK);
    assert_int_equal(count, 3);
    assert_string_equal(keys[0].address, "@example.com");
    sp_store_rkeys_free(keys, count);

    assert_int_equal(sp_store_rkey_remove(store, "alice@example.com", "cd02",
                                          &removed, &err),
                     SP_OK);
    assert_int_equal(removed, 1);
    assert_int_equal(
        sp_store_rkey_remove(store, "alice@example.com", NULL, &removed, &err),
        SP_OK);
    assert_int_equal(removed, 1);
    assert_int_equal(
        sp_store_rkey_list(store, "alice@example.com", &keys, &count, &err),
        SP_OK);
    assert_int_equal(count, 0);
    sp_store_rkeys_free(keys, count);

    sp_store_close(store);
    testlib_remove_dir(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keys_are_kept_per_address),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
