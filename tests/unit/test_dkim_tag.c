/*
 * test_dkim_tag.c: the tag=value list parser of RFC 6376 section 3.2.
 */
#include "dkim/dkim_int.h"
#include "testlib.h"

#include <string.h>

static void
parse(const char *text, dkim__tags *tags, int want)
{
    sp_error err;

    assert_int_equal(dkim__tag_parse(text, strlen(text), tags, &err), want);
}

static void
tags_with_whitespace_and_folding(void **state)
{
    const char *text =
        " v=1;a = rsa-sha256 ;\r\n\th=from :\r\n to; b= ab\r\n cd ;";
    dkim__tags tags;
    const dkim__tag *tag;

    (void)state;
    parse(text, &tags, SP_OK);
    assert_int_equal(tags.count, 4);
    tag = dkim__tag_find(&tags, "a");
    assert_true(dkim__tag_is(tag, "rsa-sha256"));
    tag = dkim__tag_find(&tags, "h");
    assert_int_equal(tag->value_len, strlen("from :\r\n to"));
    tag = dkim__tag_find(&tags, "b");
    assert_int_equal(tag->value_len, strlen("ab\r\n cd"));
    /* The b= value region runs from after '=' to the ';'. */
    assert_int_equal(text[tag->after_equals - 1], '=');
    assert_int_equal(text[tag->spec_end], ';');
}

static void
tags_without_trailing_semicolon_and_empty_values(void **state)
{
    dkim__tags tags;

    (void)state;
    parse("p=;k=rsa", &tags, SP_OK);
    assert_int_equal(tags.count, 2);
    assert_int_equal(dkim__tag_find(&tags, "p")->value_len, 0);
    parse("", &tags, SP_OK);
    assert_int_equal(tags.count, 0);
    parse("a=1;;b=2;", &tags, SP_OK);
    assert_int_equal(tags.count, 2);
}

static void
tags_names_are_case_sensitive(void **state)
{
    dkim__tags tags;

    (void)state;
    parse("V=1; v=2", &tags, SP_OK);
    assert_true(dkim__tag_is(dkim__tag_find(&tags, "v"), "2"));
    assert_true(dkim__tag_is(dkim__tag_find(&tags, "V"), "1"));
}

static void
tags_refuse_malformed_lists(void **state)
{
    static const char *const bad[] = {
        "a=1; a=2",      /* duplicate */
        "k=rsa; t; p=x", /* no '=' */
        "=x",            /* no name */
        "1a=x",          /* name starts with a digit */
        "a b=1",         /* space inside a name */
    };
    dkim__tags tags;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sp_error err;

        assert_int_equal(dkim__tag_parse(bad[i], strlen(bad[i]), &tags, &err),
                         SP_ESYNTAX);
        assert_int_equal(tags.count, 0);
        assert_true(strlen(err.text) > 0);
    }
}

static void
tags_refuse_more_than_the_limit(void **state)
{
    sp_buf text = SP_BUF_INIT;
    dkim__tags tags;

    (void)state;
    for (int i = 0; i <= DKIM__MAX_TAGS; i++)
        assert_int_equal(sp_buf_printf(&text, "t%d=x;", i), SP_OK);
    parse(text.data, &tags, SP_ESYNTAX);
    sp_buf_free(&text);
}

static void
tag_lists_split_on_colons(void **state)
{
    dkim__tags tags;
    const dkim__tag *h;
    const char *item;
    size_t pos = 0, len, count = 0;

    (void)state;
    parse("h=From : to :\r\n\tSUBJECT: from", &tags, SP_OK);
    h = dkim__tag_find(&tags, "h");
    while (dkim__tag_list_next(h, &pos, &item, &len)) {
        static const char *const want[] = {"From", "to", "SUBJECT", "from"};

        assert_int_equal(len, strlen(want[count]));
        assert_memory_equal(item, want[count], len);
        count++;
    }
    assert_int_equal(count, 4);
    assert_true(dkim__tag_list_has(h, "to"));
    assert_false(dkim__tag_list_has(h, "To"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tags_with_whitespace_and_folding),
        cmocka_unit_test(tags_without_trailing_semicolon_and_empty_values),
        cmocka_unit_test(tags_names_are_case_sensitive),
        cmocka_unit_test(tags_refuse_malformed_lists),
        cmocka_unit_test(tags_refuse_more_than_the_limit),
        cmocka_unit_test(tag_lists_split_on_colons),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
