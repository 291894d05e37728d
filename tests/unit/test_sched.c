/*
 * test_sched.c: the delivery scheduler: jobs fall due in time order,
 * ready queues per destination, connection limits, messages per
 * connection, a rate over a sliding window, retry delays, and the rules
 * that set limits per destination.
 */
#include "testlib.h"

#include "queue/queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const sp_sched_limits roomy = {
    .max_connections = 4,
    .messages_per_connection = 100,
};

static sp_sched *
sched_make(const sp_sched_limits *limits, const char *rule_text)
{
    sp_sched_rule rule;
    sp_sched *sched = NULL;

    if (rule_text != NULL)
        assert_int_equal(sp_sched_rule_parse(rule_text, limits, &rule, NULL),
                         SP_OK);
    assert_int_equal(sp_sched_new(limits, rule_text ? &rule : NULL,
                                  rule_text ? 1 : 0, &sched, NULL),
                     SP_OK);
    return sched;
}

static void
add(sp_sched *sched, const char *dest, const char *id, int64_t due, int64_t now)
{
    size_t position = 0;

    assert_int_equal(
        sp_sched_add(sched, dest, dest, id, &position, 1, due, now, NULL),
        SP_OK);
}

static void
jobs_fall_due_in_time_order(void **state)
{
    sp_sched *sched = sched_make(&roomy, NULL);
    sp_sched_dest *dest;
    sp_sched_job *job;

    (void)state;
    add(sched, "example.org", "LATE", 5000, 0);
    add(sched, "example.org", "SOON", 2000, 0);
    add(sched, "Example.ORG", "NOW", 0, 0);

    /* Only the due one is ready; the next change is at 2000. */
    assert_int_equal(sp_sched_advance(sched, 0), 2000);
    dest = sp_sched_dest_find(sched, "example.org");
    assert_non_null(dest);
    assert_int_equal(sp_sched_dest_ready(dest), 1);
    assert_string_equal(sp_sched_dest_name(dest), "example.org");

    assert_int_equal(sp_sched_advance(sched, 6000), INT64_MAX);
    assert_int_equal(sp_sched_dest_ready(dest), 3);
    job = sp_sched_take(sched, dest, 0, 6000);
    assert_string_equal(job->id, "NOW");
    sp_sched_done(sched, job);
    job = sp_sched_take(sched, dest, 1, 6000);
    assert_string_equal(job->id, "SOON");
    sp_sched_done(sched, job);
    job = sp_sched_take(sched, dest, 2, 6000);
    assert_string_equal(job->id, "LATE");
    sp_sched_done(sched, job);
    assert_null(sp_sched_take(sched, dest, 3, 6000));
    assert_int_equal(sp_sched_jobs(sched), 0);
    sp_sched_free(sched);
}

static void
connections_follow_ready_jobs_up_to_the_limit(void **state)
{
    sp_sched_limits two = {.max_connections = 2, .messages_per_connection = 2};
    sp_sched *sched = sched_make(&two, NULL);
    sp_sched_dest *dest, *other;
    char id[16];

    (void)state;

    /* One ready job: one connection, however often asked. */
    add(sched, "a.example", "A0", 0, 0);
    sp_sched_advance(sched, 0);
    dest = sp_sched_connect_next(sched, 0);
    assert_non_null(dest);
    assert_null(sp_sched_connect_next(sched, 0));

    /* Five more, more than one connection sends: a second one, then the
     * limit of two holds. */
    for (int i = 1; i <= 5; i++) {
        snprintf(id, sizeof(id), "A%d", i);
        add(sched, "a.example", id, 0, 0);
    }
    sp_sched_advance(sched, 0);
    assert_ptr_equal(sp_sched_connect_next(sched, 0), dest);
    assert_null(sp_sched_connect_next(sched, 0));

    /* Another destination has limits of its own. */
    add(sched, "b.example", "B0", 0, 0);
    sp_sched_advance(sched, 0);
    other = sp_sched_connect_next(sched, 0);
    assert_non_null(other);
    assert_ptr_not_equal(other, dest);

    /* A closed connection makes room for a new one. */
    sp_sched_disconnected(dest, true);
    assert_ptr_equal(sp_sched_connect_next(sched, 0), dest);
    sp_sched_free(sched);
}

static void
a_connection_sends_its_share_then_stops(void **state)
{
    sp_sched_limits three = {.max_connections = 1,
                             .messages_per_connection = 3};
    sp_sched *sched = sched_make(&three, NULL);
    sp_sched_dest *dest;
    unsigned sent = 0;
    sp_sched_job *job;

    (void)state;
    for (int i = 0; i < 5; i++)
        add(sched, "c.example", "C", 0, 0);
    sp_sched_advance(sched, 0);
    dest = sp_sched_dest_find(sched, "c.example");
    while ((job = sp_sched_take(sched, dest, sent, 0)) != NULL) {
        sent++;
        sp_sched_done(sched, job);
    }
    assert_int_equal(sent, 3);
    assert_int_equal(sp_sched_dest_ready(dest), 2);

    /* A fresh connection (sent_here 0) goes on. */
    job = sp_sched_take(sched, dest, 0, 0);
    assert_non_null(job);
    sp_sched_done(sched, job);
    sp_sched_free(sched);
}

static void
the_rate_holds_over_a_sliding_window(void **state)
{
    sp_sched *sched = sched_make(&roomy, "rated.example rate=3/m");
    sp_sched_dest *dest;
    sp_sched_job *job;
    int64_t now = 1000000;
    unsigned taken = 0;

    (void)state;
    for (int i = 0; i < 10; i++)
        add(sched, "rated.example", "R", 0, now);
    sp_sched_advance(sched, now);
    dest = sp_sched_dest_find(sched, "rated.example");
    assert_int_equal(sp_sched_dest_limits(dest)->rate, 3);

    /* Three at 0 s, 10 s and 20 s; the fourth must wait for 60 s. */
    for (int64_t t = 0; t <= 30000; t += 10000) {
        job = sp_sched_take(sched, dest, 0, now + t);
        if (job != NULL) {
            taken++;
            sp_sched_done(sched, job);
        }
    }
    assert_int_equal(taken, 3);
    assert_int_equal(sp_sched_advance(sched, now + 30000), now + 60000);
    assert_null(sp_sched_connect_next(sched, now + 59999));
    assert_null(sp_sched_take(sched, dest, 0, now + 59999));
    job = sp_sched_take(sched, dest, 0, now + 60000);
    assert_non_null(job);
    sp_sched_done(sched, job);

    /* The next opening follows the second send, at 70 s. */
    assert_null(sp_sched_take(sched, dest, 0, now + 69999));
    job = sp_sched_take(sched, dest, 0, now + 70000);
    assert_non_null(job);
    sp_sched_done(sched, job);

    /* Other destinations keep the defaults: no rate. */
    add(sched, "other.example", "O", 0, now);
    sp_sched_advance(sched, now);
    assert_int_equal(
        sp_sched_dest_limits(sp_sched_dest_find(sched, "other.example"))->rate,
        0);
    sp_sched_free(sched);
}

static void
retried_jobs_wait_their_turn(void **state)
{
    sp_sched *sched = sched_make(&roomy, NULL);
    sp_sched_dest *dest;
    sp_sched_job *job;

    (void)state;
    add(sched, "d.example", "D", 0, 0);
    sp_sched_advance(sched, 0);
    dest = sp_sched_dest_find(sched, "d.example");
    job = sp_sched_take(sched, dest, 0, 0);
    assert_int_equal(sp_sched_retry(sched, job, 300000, 0), SP_OK);
    assert_int_equal(sp_sched_advance(sched, 1000), 300000);
    assert_int_equal(sp_sched_dest_ready(dest), 0);
    assert_int_equal(sp_sched_jobs(sched), 1);
    sp_sched_advance(sched, 300000);
    assert_int_equal(sp_sched_dest_ready(dest), 1);

    /* A destination that cannot be reached gives up all its ready jobs. */
    add(sched, "d.example", "E", 0, 0);
    sp_sched_advance(sched, 300000);
    job = sp_sched_take_all(sched, dest);
    assert_non_null(job);
    assert_non_null(job->next);
    assert_null(job->next->next);
    assert_int_equal(sp_sched_dest_ready(dest), 0);
    sp_sched_done(sched, job->next);
    sp_sched_done(sched, job);
    sp_sched_free(sched);
}

static void
retry_delays_follow_the_schedule(void **state)
{
    const int64_t schedule[] = {300, 600, 3600};

    (void)state;
    assert_int_equal(sp_sched_retry_delay(schedule, 3, 1), 300);
    assert_int_equal(sp_sched_retry_delay(schedule, 3, 2), 600);
    assert_int_equal(sp_sched_retry_delay(schedule, 3, 3), 3600);
    assert_int_equal(sp_sched_retry_delay(schedule, 3, 50), 3600);
    assert_int_equal(sp_sched_retry_delay(schedule, 3, 0), 300);
    assert_true(sp_sched_retry_delay(NULL, 0, 1) > 0);
}

static void
rules_parse_or_say_why(void **state)
{
    sp_sched_rule rule;
    sp_error err;

    (void)state;
    assert_int_equal(sp_sched_rule_parse("*.example.net connections=2 "
                                         "messages=50 rate=1000/h",
                                         &roomy, &rule, &err),
                     SP_OK);
    assert_string_equal(rule.pattern, "*.example.net");
    assert_int_equal(rule.limits.max_connections, 2);
    assert_int_equal(rule.limits.messages_per_connection, 50);
    assert_int_equal(rule.limits.rate, 1000);
    assert_int_equal(rule.limits.rate_window_ms, 3600000);
    assert_int_equal(rule.limits.tls, SP_SCHED_TLS_MAY);
    assert_string_equal(rule.limits.source, "");

    assert_int_equal(sp_sched_rule_parse("bank.example tls=verify "
                                         "source=192.0.2.1,2001:db8::1",
                                         &roomy, &rule, &err),
                     SP_OK);
    assert_int_equal(rule.limits.tls, SP_SCHED_TLS_VERIFY);
    assert_string_equal(rule.limits.source, "192.0.2.1,2001:db8::1");
    assert_string_equal(sp_sched_tls_name(rule.limits.tls), "verify");
    assert_int_equal(
        sp_sched_rule_parse("x.example tls=maybe", &roomy, &rule, &err),
        SP_ESYNTAX);
    assert_non_null(strstr(err.text, "tls=may|encrypt|verify"));
    assert_int_equal(
        sp_sched_rule_parse("x.example source=192.0.2.1,mx.example", &roomy,
                            &rule, &err),
        SP_ESYNTAX);

    assert_int_equal(
        sp_sched_rule_parse("x.example speed=3", &roomy, &rule, &err),
        SP_ESYNTAX);
    assert_non_null(strstr(err.text, "speed=3"));
    assert_int_equal(
        sp_sched_rule_parse("x.example rate=5/s", &roomy, &rule, &err),
        SP_ESYNTAX);
    assert_int_equal(
        sp_sched_rule_parse("x.example connections=0", &roomy, &rule, &err),
        SP_ESYNTAX);
    assert_int_equal(sp_sched_rule_parse("a*b.example", &roomy, &rule, &err),
                     SP_ESYNTAX);
    assert_int_equal(sp_sched_rule_parse("", &roomy, &rule, &err), SP_ESYNTAX);
}

/*
 * Shared rules and MX rules name one destination for many domains; it
 * keeps the route of the domain that made it and the rule's limits.
 */
static void
shared_and_mx_rules_group_domains(void **state)
{
    sp_sched *sched = sched_make(&roomy, "*.grp.example shared connections=1");
    sp_sched_rule rules[3];
    sp_sched_job *job = NULL;
    sp_error err;

    (void)state;
    assert_string_equal(sp_sched_dest_for(sched, "a.grp.example", NULL),
                        "*.grp.example");
    assert_string_equal(sp_sched_dest_for(sched, "grp.example", NULL),
                        "grp.example");
    assert_false(sp_sched_groups_by_mx(sched));
    assert_int_equal(sp_sched_add(sched, "*.grp.example", "a.grp.example", "A",
                                  (size_t[]){0}, 1, 0, 0, &job),
                     SP_OK);
    assert_int_equal(sp_sched_add(sched, "*.grp.example", "b.grp.example", "B",
                                  (size_t[]){0}, 1, 0, 0, NULL),
                     SP_OK);
    assert_string_equal(sp_sched_dest_route(job->dest), "a.grp.example");
    assert_int_equal(sp_sched_dest_limits(job->dest)->max_connections, 1);
    sp_sched_advance(sched, 0);
    assert_int_equal(sp_sched_dest_ready(job->dest), 2);
    sp_sched_free(sched);

    assert_int_equal(sp_sched_rule_parse("mx:*.mail.example.net messages=7",
                                         &roomy, &rules[0], &err),
                     SP_OK);
    assert_true(rules[0].shared);
    assert_int_equal(
        sp_sched_rule_parse("example.com", &roomy, &rules[1], &err), SP_OK);
    assert_false(rules[1].shared);
    assert_int_equal(sp_sched_rule_parse("mx:", &roomy, &rules[2], &err),
                     SP_ESYNTAX);
    assert_int_equal(sp_sched_new(&roomy, rules, 2, &sched, &err), SP_OK);
    assert_true(sp_sched_groups_by_mx(sched));
    assert_string_equal(
        sp_sched_dest_for(sched, "shop.example", "in1.mail.example.net"),
        "mx:*.mail.example.net");
    assert_string_equal(
        sp_sched_dest_for(sched, "shop.example", "mx.shop.example"),
        "shop.example");
    assert_string_equal(sp_sched_dest_for(sched, "shop.example", NULL),
                        "shop.example");
    assert_int_equal(sp_sched_add(sched, "mx:*.mail.example.net",
                                  "shop.example", "S", (size_t[]){0}, 1, 0, 0,
                                  &job),
                     SP_OK);
    assert_int_equal(sp_sched_dest_limits(job->dest)->messages_per_connection,
                     7);
    sp_sched_free(sched);
}

/* Rules are plain values: moved or overwritten, the scheduler's copy holds. */
static void
rules_are_values(void **state)
{
    sp_sched_rule rules[2], *moved = malloc(sizeof(rules));
    sp_sched *sched = NULL;
    sp_error err;

    (void)state;
    assert_non_null(moved);
    assert_int_equal(
        sp_sched_rule_parse("a.example connections=1", &roomy, &rules[0], &err),
        SP_OK);
    assert_int_equal(
        sp_sched_rule_parse("b.example connections=2", &roomy, &rules[1], &err),
        SP_OK);
    memcpy(moved, rules, sizeof(rules));
    memset(rules, 0, sizeof(rules));
    assert_int_equal(sp_sched_new(&roomy, moved, 2, &sched, &err), SP_OK);
    memset(moved, 0, sizeof(rules));
    free(moved);
    add(sched, "b.example", "B", 0, 0);
    assert_int_equal(
        sp_sched_dest_limits(sp_sched_dest_find(sched, "b.example"))
            ->max_connections,
        2);
    sp_sched_free(sched);
}

static void
wildcard_rules_cover_subdomains_only(void **state)
{
    sp_sched *sched = sched_make(&roomy, "*.example.net connections=1");

    (void)state;
    add(sched, "mx.example.net", "W", 0, 0);
    add(sched, "example.net", "X", 0, 0);
    add(sched, "badexample.net", "Y", 0, 0);
    assert_int_equal(
        sp_sched_dest_limits(sp_sched_dest_find(sched, "mx.example.net"))
            ->max_connections,
        1);
    assert_int_equal(
        sp_sched_dest_limits(sp_sched_dest_find(sched, "example.net"))
            ->max_connections,
        4);
    assert_int_equal(
        sp_sched_dest_limits(sp_sched_dest_find(sched, "badexample.net"))
            ->max_connections,
        4);
    sp_sched_free(sched);
}

static void
many_destinations_are_found_again(void **state)
{
    sp_sched *sched = sched_make(&roomy, NULL);
    char name[64];

    (void)state;
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof(name), "d%d.example", i);
        add(sched, name, "M", i % 7 == 0 ? 0 : 1000 + i, 0);
    }
    for (int i = 0; i < 5000; i += 37) {
        snprintf(name, sizeof(name), "D%d.EXAMPLE", i);
        assert_non_null(sp_sched_dest_find(sched, name));
    }
    assert_null(sp_sched_dest_find(sched, "d5000.example"));
    assert_int_equal(sp_sched_jobs(sched), 5000);
    sp_sched_free(sched); /* frees ready and waiting jobs alike */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(jobs_fall_due_in_time_order),
        cmocka_unit_test(connections_follow_ready_jobs_up_to_the_limit),
        cmocka_unit_test(a_connection_sends_its_share_then_stops),
        cmocka_unit_test(the_rate_holds_over_a_sliding_window),
        cmocka_unit_test(retried_jobs_wait_their_turn),
        cmocka_unit_test(retry_delays_follow_the_schedule),
        cmocka_unit_test(rules_parse_or_say_why),
        cmocka_unit_test(rules_are_values),
        cmocka_unit_test(shared_and_mx_rules_group_domains),
        cmocka_unit_test(wildcard_rules_cover_subdomains_only),
        cmocka_unit_test(many_destinations_are_found_again),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
