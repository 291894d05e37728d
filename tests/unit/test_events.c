/*
 * test_events.c: the event store: events added in batches come back in
 * the order they were stored, by each filter and across pages; an event
 * id given twice is kept once; the store survives a reopen; old events
 * are pruned oldest first.
 */
#include "testlib.h"

#include "store/store.h"

#include <stdio.h>
#include <string.h>

/* What sp_store_events_find gave. */
struct found {
    int64_t cursors[16];
    char json[16][96];
    size_t count;
};

static void
on_found(void *arg, int64_t cursor, const char *json)
{
    struct found *found = arg;

    assert_true(found->count < 16);
    assert_true(found->count == 0 || cursor > found->cursors[found->count - 1]);
    found->cursors[found->count] = cursor;
    snprintf(found->json[found->count++], 96, "%s", json);
}

static struct found
find(sp_store *store, const sp_store_event_filter *filter)
{
    struct found found = {0};
    sp_error err;

    assert_int_equal(
        sp_store_events_find(store, filter, on_found, &found, &err), SP_OK);
    return found;
}

static void
events_by_filter_and_page(void **state)
{
    static const sp_store_event batch[] = {
        {"e1", 1000, "injection", "a@example.org", "Q1", "", "{\"n\":1}"},
        {"e2", 2000, "delivery", "a@example.org", "Q1", "", "{\"n\":2}"},
        {"e3", 3000, "injection", "b@example.org", "Q2", "spring", "{\"n\":3}"},
        {"e4", 4000, "bounce", "b@example.org", "Q2", "spring", "{\"n\":4}"},
    };
    sp_store_event_filter filter = {0};
    struct found found;
    char dir[256];
    sp_store *store = NULL;
    sp_error err;

    (void)state;
    testlib_temp_dir("events", dir, sizeof(dir));
    assert_int_equal(sp_store_open(dir, &store, &err), SP_OK);
    assert_int_equal(sp_store_events_add(store, batch, 4, &err), SP_OK);
    /* Moved again after a crash: the same ids are kept once. */
    assert_int_equal(sp_store_events_add(store, batch + 2, 2, &err), SP_OK);
    sp_store_close(store);
    assert_int_equal(sp_store_open(dir, &store, &err), SP_OK);

    found = find(store, &filter);
    assert_int_equal(found.count, 4);
    assert_string_equal(found.json[0], "{\"n\":1}");
    assert_string_equal(found.json[3], "{\"n\":4}");

    filter.recipient = "b@example.org";
    found = find(store, &filter);
    assert_int_equal(found.count, 2);
    assert_string_equal(found.json[0], "{\"n\":3}");

    filter = (sp_store_event_filter){.type = "injection"};
    found = find(store, &filter);
    assert_int_equal(found.count, 2);
    assert_string_equal(found.json[1], "{\"n\":3}");

    /* Several values of one filter: any of them. */
    filter = (sp_store_event_filter){.type = "delivery,bounce"};
    found = find(store, &filter);
    assert_int_equal(found.count, 2);
    assert_string_equal(found.json[1], "{\"n\":4}");
    filter = (sp_store_event_filter){.recipient = "a@example.org,b@example.org",
                                     .type = "injection"};
    assert_int_equal(find(store, &filter).count, 2);

    filter = (sp_store_event_filter){.queue_id = "Q1", .type = "delivery"};
    assert_int_equal(find(store, &filter).count, 1);
    filter = (sp_store_event_filter){.campaign_id = "spring"};
    assert_int_equal(find(store, &filter).count, 2);
    filter = (sp_store_event_filter){.from_ms = 2000, .to_ms = 4000};
    found = find(store, &filter);
    assert_int_equal(found.count, 2);
    assert_string_equal(found.json[0], "{\"n\":2}");

    /* Pages: the last cursor of one is where the next starts. */
    filter = (sp_store_event_filter){.limit = 3};
    found = find(store, &filter);
    assert_int_equal(found.count, 3);
    filter.after = found.cursors[2];
    found = find(store, &filter);
    assert_int_equal(found.count, 1);
    assert_string_equal(found.json[0], "{\"n\":4}");
    filter.after = found.cursors[0];
    assert_int_equal(find(store, &filter).count, 0);

    sp_store_close(store);
    testlib_remove_dir(dir);
}

/* Pruning takes the oldest events first, a bounded number at a time. */
static void
old_events_are_pruned(void **state)
{
    static const sp_store_event batch[] = {
        {"p1", 1000, "injection", "a@example.org", "Q1", "", "{\"n\":1}"},
        {"p2", 2000, "delivery", "a@example.org", "Q1", "", "{\"n\":2}"},
        {"p3", 3000, "injection", "b@example.org", "Q2", "", "{\"n\":3}"},
    };
    sp_store_event_filter all = {0};
    struct found found;
    size_t deleted = 9;
    char dir[256];
    sp_store *store = NULL;
    sp_error err;

    (void)state;
    testlib_temp_dir("events", dir, sizeof(dir));
    assert_int_equal(sp_store_open(dir, &store, &err), SP_OK);
    assert_int_equal(sp_store_events_add(store, batch, 3, &err), SP_OK);
    assert_int_equal(sp_store_events_prune(store, 3000, 1, &deleted, &err),
                     SP_OK);
    assert_int_equal(deleted, 1);
    found = find(store, &all);
    assert_int_equal(found.count, 2);
    assert_string_equal(found.json[0], "{\"n\":2}");
    assert_int_equal(sp_store_events_prune(store, 3000, 10, &deleted, &err),
                     SP_OK);
    assert_int_equal(deleted, 1);
    assert_int_equal(sp_store_events_prune(store, 3000, 10, &deleted, &err),
                     SP_OK);
    assert_int_equal(deleted, 0);
    found = find(store, &all);
    assert_int_equal(found.count, 1);
    assert_string_equal(found.json[0], "{\"n\":3}");
    sp_store_close(store);
    testlib_remove_dir(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(events_by_filter_and_page),
        cmocka_unit_test(old_events_are_pruned),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
