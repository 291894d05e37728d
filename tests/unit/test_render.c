/*
 * test_render.c: substitution in transmission content: values escaped
 * for HTML or not, nested names, #if with else and not, #each with
 * loop_var and loop_index, unknown names reported once, malformed
 * templates refused with the offset of the tag at fault, and limits on
 * the work and the output of one rendering.
 */
#include "testlib.h"

#include "http/http_int.h"

#include <stdlib.h>
#include <string.h>

/* Render text with data (JSON) into a NUL-terminated string, or fail. */
static char *
render(const char *text, const char *data, bool html, json_t *unknown)
{
    json_t *values = json_loads(data, 0, NULL);
    sp_buf out = SP_BUF_INIT;
    char error[160];
    int rc;

    assert_non_null(values);
    rc = http__render(text, strlen(text), values, html, 0, unknown, &out, error,
                      sizeof(error));
    json_decref(values);
    if (rc != SP_OK)
        fail_msg("render %s: %s", text, error);
    if (out.data == NULL)
        return calloc(1, 1);
    return out.data;
}

static void
expect(const char *text, const char *data, bool html, const char *want)
{
    json_t *unknown = json_array();
    char *got = render(text, data, html, unknown);

    assert_string_equal(got, want);
    free(got);
    json_decref(unknown);
}

static void
values_escaped_in_html_only(void **state)
{
    const char *data = "{\"name\": \"Tom & <Jerry>\", \"n\": 42, "
                       "\"ok\": true, \"none\": null, \"r\": 1.5}";

    (void)state;
    expect("Hi {{name}}!", data, false, "Hi Tom & <Jerry>!");
    expect("Hi {{name}}!", data, true, "Hi Tom &amp; &lt;Jerry&gt;!");
    expect("Hi {{{name}}}!", data, true, "Hi Tom & <Jerry>!");
    expect("{{ n }}/{{ok}}/{{none}}/{{r}}", data, false, "42/true//1.5");
    expect("no tags at all", data, false, "no tags at all");
    expect("{ single } braces }}", data, false, "{ single } braces }}");
}

static void
nested_names_and_unknown_ones(void **state)
{
    json_t *unknown = json_array();
    char *got;

    (void)state;
    got = render("{{a.b.c}} {{a.x}} {{zz}} {{zz}}",
                 "{\"a\": {\"b\": {\"c\": \"deep\"}}}", false, unknown);
    assert_string_equal(got, "deep   ");
    assert_int_equal(json_array_size(unknown), 2);
    assert_string_equal(json_string_value(json_array_get(unknown, 0)), "a.x");
    assert_string_equal(json_string_value(json_array_get(unknown, 1)), "zz");
    free(got);
    json_decref(unknown);
}

static void
if_blocks_with_else_and_not(void **state)
{
    const char *data = "{\"gold\": true, \"empty\": \"\", \"zero\": 0, "
                       "\"list\": [1], \"none\": []}";

    (void)state;
    expect("{{#if gold}}G{{else}}S{{/if}}", data, false, "G");
    expect("{{#if empty}}x{{else}}y{{/if}}", data, false, "y");
    expect("{{#if zero}}x{{/if}}.", data, false, ".");
    expect("{{#if list}}L{{/if}}{{#if none}}N{{/if}}", data, false, "L");
    expect("{{#if not gold}}a{{else}}b{{/if}}", data, false, "b");
    expect("{{#if gold}}{{#if empty}}1{{else}}2{{/if}}{{/if}}", data, false,
           "2");
}

static void
each_blocks_with_loop_names(void **state)
{
    const char *data = "{\"items\": [{\"sku\": \"A\", \"qty\": 2}, "
                       "{\"sku\": \"B\", \"qty\": 1}], \"tags\": [\"x\", "
                       "\"y\"], \"currency\": \"EUR\"}";

    (void)state;
    expect("{{#each items}}{{loop_index}}:{{sku}}x{{qty}} {{currency}};"
           "{{/each}}",
           data, false, "0:Ax2 EUR;1:Bx1 EUR;");
    expect("{{#each tags}}[{{loop_var}}]{{/each}}", data, false, "[x][y]");
    expect("{{#each items}}{{this.sku}}{{/each}}", data, false, "AB");
    expect("{{#each missing}}x{{/each}}done", data, false, "done");
    expect("{{#each items}}{{#each tags}}{{/each}}{{/each}}-", data, false,
           "-");
}

static void
malformed_templates_are_refused(void **state)
{
    static const char *const bad[] = {
        "{{name",
        "{{{name}}",
        "{{#if a}}no end",
        "{{#each a}}x",
        "{{#if a}}x{{/each}}",
        "{{else}}",
        "{{/if}}",
        "{{#unless a}}{{/unless}}",
        "{{}}",
    };
    json_t *data = json_pack("{s:s}", "a", "v");
    json_t *unknown = json_array();

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sp_buf out = SP_BUF_INIT;
        char error[160] = "";

        assert_int_equal(http__render(bad[i], strlen(bad[i]), data, false, 0,
                                      unknown, &out, error, sizeof(error)),
                         SP_EINVAL);
        assert_non_null(strstr(error, "offset"));
        sp_buf_free(&out);
    }
    json_decref(data);
    json_decref(unknown);
}

/* Nested loops over data cannot make a rendering run or grow for ever. */
static void
limits_stop_runaway_renderings(void **state)
{
    json_t *data = json_loads("{\"a\": [0,1,2,3,4,5,6,7,8,9]}", 0, NULL);
    json_t *unknown = json_array();
    char text[512] = "", error[160];
    sp_buf out = SP_BUF_INIT;

    (void)state;
    for (int i = 0; i < 16; i++)
        strcat(text, "{{#each a}}");
    for (int i = 0; i < 16; i++)
        strcat(text, "{{/each}}");
    assert_int_equal(http__render(text, strlen(text), data, false, 0, unknown,
                                  &out, error, sizeof(error)),
                     SP_ELIMIT);
    assert_non_null(strstr(error, "steps"));
    sp_buf_free(&out);

    snprintf(text, sizeof(text),
             "{{#each a}}{{#each a}}0123456789"
             "{{/each}}{{/each}}");
    assert_int_equal(http__render(text, strlen(text), data, false, 500, unknown,
                                  &out, error, sizeof(error)),
                     SP_ELIMIT);
    assert_non_null(strstr(error, "over 500 octets"));
    assert_true(out.len <= 500);
    sp_buf_free(&out);
    assert_int_equal(http__render(text, strlen(text), data, false, 1000,
                                  unknown, &out, error, sizeof(error)),
                     SP_OK);
    assert_int_equal(out.len, 1000);
    sp_buf_free(&out);
    json_decref(data);
    json_decref(unknown);
}

/* An error names where the offending tag starts. */
static void
errors_name_the_tag_that_is_wrong(void **state)
{
    static const struct {
        const char *text, *words;
    } cases[] = {
        {"abc{{/if}}", "closes nothing at offset 3"},
        {"ab{{else}}", "outside {{#if}} at offset 2"},
        {"{{#if a}}x{{/each}}", "closed by another word than {{/if}} at "
                                "offset 10"},
        {"x{{ a b }}", "a name with a blank in it at offset 1"},
    };
    json_t *data = json_pack("{s:s}", "a", "v");
    json_t *unknown = json_array();

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sp_buf out = SP_BUF_INIT;
        char error[160] = "";

        assert_int_equal(http__render(cases[i].text, strlen(cases[i].text),
                                      data, false, 0, unknown, &out, error,
                                      sizeof(error)),
                         SP_EINVAL);
        if (strstr(error, cases[i].words) == NULL)
            fail_msg("%s: %s", cases[i].text, error);
        sp_buf_free(&out);
    }
    json_decref(data);
    json_decref(unknown);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(values_escaped_in_html_only),
        cmocka_unit_test(nested_names_and_unknown_ones),
        cmocka_unit_test(if_blocks_with_else_and_not),
        cmocka_unit_test(each_blocks_with_loop_names),
        cmocka_unit_test(malformed_templates_are_refused),
        cmocka_unit_test(limits_stop_runaway_renderings),
        cmocka_unit_test(errors_name_the_tag_that_is_wrong),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
