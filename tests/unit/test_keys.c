/*
 * test_keys.c: DKIM key management: the store, the master key that seals
 * private keys, default selectors, and the lifecycle planner, whose every
 * decision is checked against the situation that must produce it.
 */
#include "testlib.h"

#include "crypt/crypt.h"
#include "keys/keys_int.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DAY 86400

static void
store_rows_and_rules(void **state)
{
    char dir[256];
    sp_store *store = NULL;
    sp_store_key key = {0}, *rows = NULL;
    size_t count = 0;
    int64_t queued = -1;
    sp_error err;

    (void)state;
    testlib_temp_dir("keys", dir, sizeof(dir));
    assert_int_equal(sp_store_open(dir, &store, &err), SP_OK);
    snprintf(key.domain, sizeof(key.domain), "example.com");
    snprintf(key.selector, sizeof(key.selector), "s1");
    snprintf(key.algorithm, sizeof(key.algorithm), "rsa");
    key.bits = 2048;
    key.created = 100;
    key.public_record = "v=DKIM1; k=rsa; p=AAAA";
    assert_int_equal(sp_buf_append(&key.sealed, "sealed", 6), SP_OK);
    assert_int_equal(sp_store_key_insert(store, &key, &err), SP_OK);
    assert_true(key.id > 0);

    /* The same selector again, in any case, is refused. */
    snprintf(key.selector, sizeof(key.selector), "S1");
    assert_int_equal(sp_store_key_insert(store, &key, &err), SP_EINVAL);
    assert_non_null(strstr(err.text, "never reused"));

    /* State changes record their time; signatures their x=. */
    assert_int_equal(sp_store_key_set_state(store, key.id, SP_STORE_KEY_ACTIVE,
                                            200, false, &err),
                     SP_OK);
    assert_int_equal(sp_store_key_signed(store, key.id, 1, 5000, "q1", &err),
                     SP_OK);
    assert_int_equal(sp_store_key_signed(store, key.id, 2, 4000, "q2", &err),
                     SP_OK);
    assert_int_equal(sp_store_key_queued(store, key.id, &queued, &err), SP_OK);
    assert_int_equal(queued, 2);
    assert_int_equal(sp_store_key_released(store, "q1", &err), SP_OK);
    assert_int_equal(sp_store_key_queued(store, key.id, &queued, &err), SP_OK);
    assert_int_equal(queued, 1);

    assert_int_equal(
        sp_store_key_list(store, "EXAMPLE.COM", &rows, &count, &err), SP_OK);
    assert_int_equal(count, 1);
    assert_int_equal(rows[0].state, SP_STORE_KEY_ACTIVE);
    assert_int_equal(rows[0].activated, 200);
    assert_int_equal(rows[0].last_expiry, 5000);
    assert_int_equal(rows[0].signatures, 3);
    assert_int_equal(rows[0].sealed.len, 6);
    assert_string_equal(rows[0].public_record, "v=DKIM1; k=rsa; p=AAAA");
    sp_store_keys_free(rows, count);
    assert_int_equal(
        sp_store_key_set_state(store, 999, SP_STORE_KEY_ACTIVE, 1, false, &err),
        SP_ENOTFOUND);
    sp_buf_free(&key.sealed);
    sp_store_close(store);
    testlib_remove_dir(dir);
}

static void
store_refuses_a_newer_schema(void **state)
{
    char dir[256], path[300];
    sp_store *store = NULL;
    sqlite3 *db;
    sp_error err;

    (void)state;
    testlib_temp_dir("keys", dir, sizeof(dir));
    assert_int_equal(sp_store_open(dir, &store, &err), SP_OK);
    sp_store_close(store);
    snprintf(path, sizeof(path), "%s/sealpost.db", dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(sp_store_open(dir, &store, &err), SP_EINVAL);
    assert_non_null(strstr(err.text, "newer"));
    assert_null(store);
    testlib_remove_dir(dir);
}

static void
master_key_seals_and_guards_itself(void **state)
{
    char dir[256], path[300];
    sp_crypt_master master, again;
    sp_buf sealed = SP_BUF_INIT, plain = SP_BUF_INIT;
    struct stat st;
    sp_error err;

    (void)state;
    testlib_temp_dir("keys", dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/master.key", dir);
    assert_int_equal(sp_crypt_master_load(path, false, &master, &err), SP_EIO);
    assert_int_equal(sp_crypt_master_load(path, true, &master, &err), SP_OK);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, SP_CRYPT_MASTER_BYTES);
    assert_int_equal(sp_crypt_master_load(path, false, &again, &err), SP_OK);
    assert_memory_equal(master.key, again.key, SP_CRYPT_MASTER_BYTES);

    assert_int_equal(
        sp_crypt_seal(&master, "dkim a s", "secret", 6, &sealed, &err), SP_OK);
    assert_null(memmem(sealed.data, sealed.len, "secret", 6));
    assert_int_equal(sp_crypt_open(&again, "dkim a s", sealed.data, sealed.len,
                                   &plain, &err),
                     SP_OK);
    assert_string_equal(plain.data, "secret");

    /* Another row's context, or one altered octet, does not open. */
    sp_buf_reset(&plain);
    assert_int_equal(sp_crypt_open(&again, "dkim a t", sealed.data, sealed.len,
                                   &plain, &err),
                     SP_ECRYPTO);
    sealed.data[sealed.len - 20] ^= 1;
    assert_int_equal(sp_crypt_open(&again, "dkim a s", sealed.data, sealed.len,
                                   &plain, &err),
                     SP_ECRYPTO);

    /* A key others may read is refused. */
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(sp_crypt_master_load(path, false, &again, &err),
                     SP_EINVAL);
    assert_non_null(strstr(err.text, "0600"));
    sp_buf_free(&sealed);
    sp_buf_free(&plain);
    sp_crypt_master_wipe(&master);
    sp_crypt_master_wipe(&again);
    testlib_remove_dir(dir);
}

static void
generate_names_selectors_and_refuses_weak_keys(void **state)
{
    char dir[256];
    sp_config config;
    sp_keys *keys = NULL;
    sp_store_key made;
    sp_dkim_key *key = NULL;
    const char *warning = NULL;
    sp_error err;
    int64_t when = 1796300000; /* 2026-12-03, the fourth quarter */

    (void)state;
    testlib_temp_dir("keys", dir, sizeof(dir));
    sp_config_defaults(&config);
    sp_config_set(&config, "data_dir", dir, NULL);
    assert_int_equal(sp_keys_open(&config, true, &keys, &err), SP_OK);

    assert_int_equal(sp_keys_generate(keys, "Example.COM", NULL, "ed25519", 0,
                                      false, when, &made, &warning, &err),
                     SP_OK);
    assert_string_equal(made.selector, "sp2026q4e");
    assert_string_equal(made.domain, "example.com");
    assert_non_null(strstr(made.public_record, "k=ed25519"));
    sp_store_key_clear(&made);
    assert_int_equal(sp_keys_generate(keys, "example.com", NULL, "ed25519", 0,
                                      true, when, &made, &warning, &err),
                     SP_OK);
    assert_string_equal(made.selector, "sp2026q4e2");
    assert_non_null(strstr(made.public_record, "t=y"));

    /* The sealed key opens to the key the record publishes. */
    assert_int_equal(sp_keys_private(keys, &made, &key, &err), SP_OK);
    assert_int_equal(sp_dkim_key_type(key), SP_DKIM_KEY_ED25519);
    sp_dkim_key_free(key);
    sp_store_key_clear(&made);

    assert_int_equal(sp_keys_generate(keys, "example.com", "weak", "rsa", 768,
                                      false, when, NULL, &warning, &err),
                     SP_EPOLICY);
    assert_non_null(strstr(err.text, "RFC 8301"));
    assert_int_equal(sp_keys_generate(keys, "example.com", "ok1024", "rsa",
                                      1024, false, when, NULL, &warning, &err),
                     SP_OK);
    assert_non_null(warning);
    sp_keys_close(keys);
    sp_config_free(&config);
    testlib_remove_dir(dir);
}

/* ------------------------------------------------------------------------
 * The planner
 */

static sp_store_key
row(int64_t id, const char *algorithm, sp_store_key_state state,
    int64_t activated)
{
    sp_store_key key = {.id = id, .state = state, .activated = activated};

    snprintf(key.domain, sizeof(key.domain), "example.com");
    snprintf(key.selector, sizeof(key.selector), "k%lld", (long long)id);
    snprintf(key.algorithm, sizeof(key.algorithm), "%s", algorithm);
    return key;
}

struct plan_case {
    sp_store_key rows[4];
    size_t count;
    keys__fact facts[4];
    size_t fact_count;
    bool force;
    bool testing_allowed;
    int64_t now;
};

/* Plan one case; return the report and what is due. */
static void
plan(struct plan_case *c, sp_keys_report *report, char due[][24],
     size_t *due_count)
{
    static const char *const algorithms[] = {"rsa"};
    sp_config_list rotating = {(char *[]){"rsa"}, 1};
    keys__facts facts = {c->facts, c->fact_count};
    keys__plan_input in = {
        .rows = c->rows,
        .count = c->count,
        .facts = &facts,
        .algorithms = algorithms,
        .algorithm_count = 1,
        .rotating = &rotating,
        .now = c->now,
        .force = c->force,
        .rotation_period = 90 * DAY,
        .signature_expiry = 100 * DAY,
        .testing_allowed = c->testing_allowed,
    };

    report->changes = NULL;
    report->count = 0;
    assert_int_equal(keys__plan(&in, report, due, due_count, 4), SP_OK);
}

/* The move (or stay) the plan gives key id; fails when absent. */
static const sp_keys_change *
change_of(const sp_keys_report *report, int64_t id)
{
    for (size_t i = 0; i < report->count; i++)
        if (report->changes[i].key_id == id)
            return &report->changes[i];
    fail_msg("no entry for key %lld", (long long)id);
    return NULL;
}

static void
plan_first_key_is_due(void **state)
{
    struct plan_case c = {.now = 1000};
    sp_keys_report report;
    char due[4][24];
    size_t due_count;

    (void)state;
    plan(&c, &report, due, &due_count);
    assert_int_equal(due_count, 1);
    assert_string_equal(due[0], "rsa");
    sp_keys_report_free(&report);
}

static void
plan_activates_what_dns_shows_and_retires_the_old_key(void **state)
{
    struct plan_case c = {
        .rows = {row(1, "rsa", SP_STORE_KEY_ACTIVE, 10),
                 row(2, "rsa", SP_STORE_KEY_PENDING, 0)},
        .count = 2,
        .facts = {{.key_id = 2, .seen = SP_KEYS_SEEN_MATCH}},
        .fact_count = 1,
        .now = 100 * DAY,
    };
    sp_keys_report report;
    char due[4][24];
    size_t due_count;

    (void)state;
    plan(&c, &report, due, &due_count);
    assert_int_equal(change_of(&report, 2)->to, SP_STORE_KEY_ACTIVE);
    assert_int_equal(change_of(&report, 1)->to, SP_STORE_KEY_RETIRING);
    assert_int_equal(due_count, 0); /* no second rotation in one step */
    sp_keys_report_free(&report);
}

static void
plan_waits_for_dns_and_says_why(void **state)
{
    struct plan_case c = {
        .rows = {row(1, "rsa", SP_STORE_KEY_ACTIVE, 10),
                 row(2, "rsa", SP_STORE_KEY_PENDING, 0)},
        .count = 2,
        .facts = {{.key_id = 2,
                   .seen = SP_KEYS_SEEN_MISMATCH,
                   .why = "another key"}},
        .fact_count = 1,
        .force = true,
        .now = 200 * DAY,
    };
    sp_keys_report report;
    char due[4][24];
    size_t due_count;

    (void)state;
    plan(&c, &report, due, &due_count);
    assert_int_equal(change_of(&report, 2)->to, SP_STORE_KEY_PENDING);
    assert_string_equal(change_of(&report, 2)->why, "another key");
    for (size_t i = 0; i < report.count; i++)
        assert_int_not_equal(report.changes[i].key_id, 1);
    assert_int_equal(due_count, 0); /* one pending key at a time */
    sp_keys_report_free(&report);
}

static void
plan_rotates_after_the_period_or_when_forced(void **state)
{
    struct plan_case c = {
        .rows = {row(1, "rsa", SP_STORE_KEY_ACTIVE, 10 * DAY)},
        .count = 1,
        .now = 99 * DAY,
    };
    sp_keys_report report;
    char due[4][24];
    size_t due_count;

    (void)state;
    plan(&c, &report, due, &due_count);
    assert_int_equal(due_count, 0);
    sp_keys_report_free(&report);

    c.now = 100 * DAY;
    plan(&c, &report, due, &due_count);
    assert_int_equal(due_count, 1);
    sp_keys_report_free(&report);

    c.now = 11 * DAY;
    c.force = true;
    plan(&c, &report, due, &due_count);
    assert_int_equal(due_count, 1);
    sp_keys_report_free(&report);
}

static void
plan_retires_only_when_nothing_depends(void **state)
{
    struct plan_case c = {
        .rows = {row(1, "rsa", SP_STORE_KEY_RETIRING, 10),
                 row(2, "rsa", SP_STORE_KEY_ACTIVE, 50)},
        .count = 2,
        .facts = {{.key_id = 1, .queued = 3}},
        .fact_count = 1,
        .now = 60 * DAY,
    };
    sp_keys_report report;
    char due[4][24];
    size_t due_count;

    (void)state;
    c.rows[0].last_expiry = 50 * DAY;
    plan(&c, &report, due, &due_count);
    assert_int_equal(change_of(&report, 1)->to, SP_STORE_KEY_RETIRING);
    assert_non_null(strstr(change_of(&report, 1)->why, "3 queued messages"));
    sp_keys_report_free(&report);

    c.facts[0].queued = 0;
    c.rows[0].last_expiry = 70 * DAY;
    plan(&c, &report, due, &due_count);
    assert_int_equal(change_of(&report, 1)->to, SP_STORE_KEY_RETIRING);
    assert_non_null(strstr(change_of(&report, 1)->why, "valid until"));
    sp_keys_report_free(&report);

    c.now = 70 * DAY;
    plan(&c, &report, due, &due_count);
    assert_int_equal(change_of(&report, 1)->to, SP_STORE_KEY_RETIRED);
    sp_keys_report_free(&report);

    /* Signatures without x= keep the key one expiry past its retiring. */
    c.rows[0].last_expiry = 0;
    c.rows[0].signatures = 5;
    c.rows[0].retiring = 65 * DAY;
    plan(&c, &report, due, &due_count);
    assert_int_equal(change_of(&report, 1)->to, SP_STORE_KEY_RETIRING);
    sp_keys_report_free(&report);
}

static void
plan_keeps_testing_keys_out_unless_allowed(void **state)
{
    struct plan_case c = {
        .rows = {row(1, "rsa", SP_STORE_KEY_PENDING, 0)},
        .count = 1,
        .facts = {{.key_id = 1, .seen = SP_KEYS_SEEN_MATCH}},
        .fact_count = 1,
        .now = DAY,
    };
    sp_keys_report report;
    char due[4][24];
    size_t due_count;

    (void)state;
    c.rows[0].testing = true;
    plan(&c, &report, due, &due_count);
    assert_int_equal(change_of(&report, 1)->to, SP_STORE_KEY_PENDING);
    assert_non_null(strstr(change_of(&report, 1)->why, "t=y"));
    sp_keys_report_free(&report);

    c.testing_allowed = true;
    plan(&c, &report, due, &due_count);
    assert_int_equal(change_of(&report, 1)->to, SP_STORE_KEY_ACTIVE);
    sp_keys_report_free(&report);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(store_rows_and_rules),
        cmocka_unit_test(store_refuses_a_newer_schema),
        cmocka_unit_test(master_key_seals_and_guards_itself),
        cmocka_unit_test(generate_names_selectors_and_refuses_weak_keys),
        cmocka_unit_test(plan_first_key_is_due),
        cmocka_unit_test(plan_activates_what_dns_shows_and_retires_the_old_key),
        cmocka_unit_test(plan_waits_for_dns_and_says_why),
        cmocka_unit_test(plan_rotates_after_the_period_or_when_forced),
        cmocka_unit_test(plan_retires_only_when_nothing_depends),
        cmocka_unit_test(plan_keeps_testing_keys_out_unless_allowed),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
