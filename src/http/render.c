/*
 * render.c: substitution in a transmission's content, in the template
 * language SparkPost's senders already write.
 *
 * Owns http__render.  The language:
 *
 *   {{name}}         the value, HTML-escaped when rendering HTML
 *   {{{name}}}       the value as it is
 *   {{a.b.c}}        a member of a member
 *   {{#if name}} ... {{else}} ... {{/if}}
 *                    the first part when the value is true: present and
 *                    not false, null, 0, "", [] or {}; "not name" turns
 *                    the test round
 *   {{#each name}} ... {{/each}}
 *                    the part once per element of an array; inside,
 *                    loop_var (or this) is the element and loop_index its
 *                    position, and names are looked up in the element
 *                    first
 *
 * Strings render as they are, numbers in decimal, true and false as
 * words, null as nothing, arrays and objects as compact JSON.  A name
 * with no value renders empty and is reported through the unknown list.
 * Blocks nest up to RENDER_MAX_DEPTH (16); a block not closed, or
 * closed by the wrong word, is an error that names the offset.  One
 * rendering takes at most RENDER_MAX_STEPS tags and loop turns and
 * writes at most the caller's limit of octets: nested loops over
 * data cannot make it run or grow for ever.
 */
#include "http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RENDER_MAX_DEPTH 16
#define RENDER_MAX_NAME  128
#define RENDER_MAX_STEPS 100000 /* tags and loop turns, per rendering */

/* Where names are looked up: the innermost scope first. */
struct render_scope {
    const json_t *value; /* an object, or an #each element */
    long long index;     /* loop_index; -1 outside #each */
    const struct render_scope *outer;
};

struct render {
    const char *text, *end;
    bool html;
    json_t *unknown; /* names with no value, each once */
    sp_buf *out;
    size_t max_out; /* octets the output may reach; 0 for no limit */
    unsigned steps; /* tags met and loop turns taken so far */
    char error[160];
    int rc;
};

/* The value of a dotted name in one scope; NULL when it has none. */
static const json_t *
render_lookup_in(const struct render_scope *scope, const char *name)
{
    char segment[RENDER_MAX_NAME];
    const json_t *value = scope->value;
    const char *at = name;

    /* The loop's own names come first. */
    if (scope->index >= 0) {
        size_t len = strcspn(name, ".");

        if ((len == 8 && strncmp(name, "loop_var", 8) == 0) ||
            (len == 4 && strncmp(name, "this", 4) == 0))
            at = name + len + (name[len] == '.');
        if (at != name && *at == '\0')
            return value;
    }
    while (value != NULL && *at != '\0') {
        size_t len = strcspn(at, ".");

        if (len == 0 || len >= sizeof(segment))
            return NULL;
        memcpy(segment, at, len);
        segment[len] = '\0';
        value = json_object_get(value, segment);
        at += len + (at[len] == '.');
    }
    return value;
}

/* The value of name in scope or any outer one; NULL when it has none. */
static const json_t *
render_lookup(const struct render_scope *scope, const char *name,
              long long *index)
{
    for (; scope != NULL; scope = scope->outer) {
        const json_t *value;

        if (scope->index >= 0 && strcmp(name, "loop_index") == 0) {
            *index = scope->index;
            return NULL;
        }
        value = render_lookup_in(scope, name);
        if (value != NULL)
            return value;
    }
    return NULL;
}

static void
render_fail(struct render *render, const char *at, const char *what)
{
    if (render->rc != SP_OK)
        return;
    render->rc = SP_EINVAL;
    snprintf(render->error, sizeof(render->error), "%s at offset %zu", what,
             (size_t)(at - render->text));
}

/* A limit passed: the rendering stops with SP_ELIMIT and says which. */
static void
render_too_much(struct render *render, const char *what)
{
    if (render->rc != SP_OK)
        return;
    render->rc = SP_ELIMIT;
    snprintf(render->error, sizeof(render->error), "%s", what);
}

/* Count one step; false (and the rendering stopped) past the budget. */
static bool
render_step(struct render *render)
{
    if (++render->steps <= RENDER_MAX_STEPS)
        return true;
    render_too_much(render, "the template takes over 100000 steps (tags "
                            "and loop turns) to render");
    return false;
}

static void
render_put(struct render *render, const char *text, size_t len, bool escape)
{
    if (render->max_out != 0 &&
        render->out->len + (escape ? 6 * len : len) > render->max_out) {
        char what[100];

        snprintf(what, sizeof(what), "the rendered text is over %zu octets",
                 render->max_out);
        render_too_much(render, what);
        return;
    }
    for (size_t i = 0; render->rc == SP_OK && escape && i < len; i++) {
        const char *entity = NULL;

        switch (text[i]) {
        case '&':
            entity = "&amp;";
            break;
        case '<':
            entity = "&lt;";
            break;
        case '>':
            entity = "&gt;";
            break;
        case '"':
            entity = "&quot;";
            break;
        case '\'':
            entity = "&#39;";
            break;
        default:
            break;
        }
        render->rc = entity != NULL ? sp_buf_append_str(render->out, entity)
                                    : sp_buf_append(render->out, &text[i], 1);
    }
    if (render->rc == SP_OK && !escape)
        render->rc = sp_buf_append(render->out, text, len);
}

/* Remember a name that had no value (once). */
static void
render_unknown(struct render *render, const char *name)
{
    size_t index;
    json_t *seen;

    json_array_foreach(render->unknown, index, seen)
        if (strcmp(json_string_value(seen), name) == 0)
            return;
    json_array_append_new(render->unknown, json_string(name));
}

/* Write the value of name (a {{ }} or {{{ }}} tag). */
static void
render_value(struct render *render, const struct render_scope *scope,
             const char *name, bool raw)
{
    long long index = -1;
    const json_t *value = render_lookup(scope, name, &index);
    char number[64];
    char *json;

    if (index >= 0) {
        snprintf(number, sizeof(number), "%lld", index);
        render_put(render, number, strlen(number), false);
        return;
    }
    if (value == NULL) {
        render_unknown(render, name);
        return;
    }
    switch (json_typeof(value)) {
    case JSON_STRING:
        render_put(render, json_string_value(value), json_string_length(value),
                   render->html && !raw);
        break;
    case JSON_INTEGER:
        snprintf(number, sizeof(number), "%lld",
                 (long long)json_integer_value(value));
        render_put(render, number, strlen(number), false);
        break;
    case JSON_REAL:
        snprintf(number, sizeof(number), "%.17g", json_real_value(value));
        render_put(render, number, strlen(number), false);
        break;
    case JSON_TRUE:
        render_put(render, "true", 4, false);
        break;
    case JSON_FALSE:
        render_put(render, "false", 5, false);
        break;
    case JSON_NULL:
        break;
    default:
        json = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
        if (json == NULL)
            render->rc = SP_ENOMEM;
        else
            render_put(render, json, strlen(json), render->html && !raw);
        free(json);
        break;
    }
}

/* Whether a value counts as true for {{#if}}. */
static bool
render_true(const json_t *value)
{
    if (value == NULL || json_is_null(value) || json_is_false(value))
        return false;
    if (json_is_string(value))
        return json_string_length(value) > 0;
    if (json_is_integer(value))
        return json_integer_value(value) != 0;
    if (json_is_real(value))
        return json_real_value(value) != 0.0;
    if (json_is_array(value))
        return json_array_size(value) > 0;
    if (json_is_object(value))
        return json_object_size(value) > 0;
    return true;
}

/* A tag read: its kind, its name (trimmed), and where the text resumes. */
struct render_tag {
    enum { TAG_VALUE, TAG_RAW, TAG_IF, TAG_EACH, TAG_ELSE, TAG_END } kind;
    char name[RENDER_MAX_NAME];
    bool negate;       /* #if not name */
    const char *start; /* its "{{" */
    const char *after; /* past the closing braces */
};

/* Read the tag at "{{"; false (with render's error) when malformed. */
static bool
render_tag(struct render *render, const char *at, struct render_tag *tag)
{
    bool raw = at + 2 < render->end && at[2] == '{';
    const char *inside = at + (raw ? 3 : 2);
    const char *close = NULL;
    size_t len;

    for (const char *scan = inside; scan + 1 < render->end; scan++)
        if (scan[0] == '}' && scan[1] == '}') {
            close = scan;
            break;
        }
    if (close == NULL ||
        (raw && (close + 2 >= render->end || close[2] != '}'))) {
        render_fail(render, at, "a {{ without its }}");
        return false;
    }
    tag->start = at;
    tag->after = close + (raw ? 3 : 2);
    while (inside < close && (*inside == ' ' || *inside == '\t'))
        inside++;
    while (close > inside && (close[-1] == ' ' || close[-1] == '\t'))
        close--;

    tag->kind = raw ? TAG_RAW : TAG_VALUE;
    tag->negate = false;
    if (!raw && *inside == '#') {
        size_t word = strcspn(inside + 1, " \t}");

        if (word == 2 && strncmp(inside + 1, "if", 2) == 0)
            tag->kind = TAG_IF;
        else if (word == 4 && strncmp(inside + 1, "each", 4) == 0)
            tag->kind = TAG_EACH;
        else {
            render_fail(render, at, "an unknown block");
            return false;
        }
        inside += 1 + word;
        while (inside < close && (*inside == ' ' || *inside == '\t'))
            inside++;
        if (tag->kind == TAG_IF && close - inside > 4 &&
            strncmp(inside, "not ", 4) == 0) {
            tag->negate = true;
            inside += 4;
            while (inside < close && *inside == ' ')
                inside++;
        }
    } else if (!raw && *inside == '/') {
        tag->kind = TAG_END;
        inside++;
    } else if (!raw && close - inside == 4 && strncmp(inside, "else", 4) == 0)
        tag->kind = TAG_ELSE;

    len = (size_t)(close - inside);
    if (len >= sizeof(tag->name)) {
        render_fail(render, at, "a name over 127 characters");
        return false;
    }
    memcpy(tag->name, inside, len);
    tag->name[len] = '\0';
    if (tag->kind != TAG_ELSE && tag->kind != TAG_END && len == 0) {
        render_fail(render, at, "a tag without a name");
        return false;
    }
    if (strpbrk(tag->name, " \t\r\n") != NULL) {
        render_fail(render, at, "a name with a blank in it");
        return false;
    }
    return true;
}

/*
 * Render from *at until the end of the text or a tag that closes a block
 * ({{else}} or {{/...}}), which is left in *stop; write only when emit.
 */
static void render_part(struct render *render, const struct render_scope *scope,
                        const char **at, bool emit, int depth,
                        struct render_tag *stop);

/* One {{#if}} or {{#each}} block whose opening tag is open. */
static void
render_block(struct render *render, const struct render_scope *scope,
             const struct render_tag *open, const char *open_at,
             const char **at, bool emit, int depth)
{
    long long ignored = -1;
    const json_t *value = render_lookup(scope, open->name, &ignored);
    const char *body = open->after;
    struct render_tag stop;
    bool truth = render_true(value) != open->negate;
    const char *word = open->kind == TAG_IF ? "if" : "each";

    if (depth >= RENDER_MAX_DEPTH) {
        render_fail(render, open_at, "blocks nested too deep");
        return;
    }
    if (value == NULL && ignored < 0 && emit)
        render_unknown(render, open->name);

    if (open->kind == TAG_EACH && json_is_array(value) && emit) {
        size_t index;
        const json_t *element;

        /* Once per element, then once more (not written) to find the end. */
        json_array_foreach(value, index, element) {
            struct render_scope inner = {element, (long long)index, scope};

            *at = body;
            if (!render_step(render))
                return;
            render_part(render, &inner, at, true, depth + 1, &stop);
            if (render->rc != SP_OK)
                return;
        }
    }
    *at = body;
    render_part(render, scope, at, emit && open->kind == TAG_IF && truth,
                depth + 1, &stop);
    if (render->rc == SP_OK && stop.kind == TAG_ELSE && open->kind == TAG_IF)
        render_part(render, scope, at, emit && !truth, depth + 1, &stop);
    if (render->rc != SP_OK)
        return;
    if (stop.kind == TAG_END && strcmp(stop.name, word) != 0)
        render_fail(render, stop.start,
                    open->kind == TAG_IF ? "an {{#if}} closed by another "
                                           "word than {{/if}}"
                                         : "an {{#each}} closed by another "
                                           "word than {{/each}}");
    else if (stop.kind != TAG_END)
        render_fail(render, open_at,
                    open->kind == TAG_IF ? "an {{#if}} without its {{/if}}"
                                         : "an {{#each}} without its "
                                           "{{/each}}");
}

static void
render_part(struct render *render, const struct render_scope *scope,
            const char **at, bool emit, int depth, struct render_tag *stop)
{
    stop->kind = TAG_VALUE; /* none: the text ended */
    while (render->rc == SP_OK && *at < render->end) {
        const char *tag_at = *at;
        struct render_tag tag;

        while (tag_at + 1 < render->end &&
               !(tag_at[0] == '{' && tag_at[1] == '{'))
            tag_at++;
        if (tag_at + 1 >= render->end)
            tag_at = render->end;
        if (emit)
            render_put(render, *at, (size_t)(tag_at - *at), false);
        *at = tag_at;
        if (tag_at == render->end || !render_tag(render, tag_at, &tag))
            return;
        *at = tag.after;
        if (!render_step(render))
            return;
        if (tag.kind == TAG_ELSE || tag.kind == TAG_END) {
            *stop = tag;
            return;
        }
        if (tag.kind == TAG_IF || tag.kind == TAG_EACH)
            render_block(render, scope, &tag, tag_at, at, emit, depth);
        else if (emit)
            render_value(render, scope, tag.name, tag.kind == TAG_RAW);
    }
}

int
http__render(const char *text, size_t len, const json_t *data, bool html,
             size_t max_out, json_t *unknown, sp_buf *out, char *error,
             size_t error_size)
{
    struct render render = {
        .text = text,
        .end = text + len,
        .html = html,
        .unknown = unknown,
        .out = out,
        .max_out = max_out,
        .rc = SP_OK,
    };
    struct render_scope top = {data, -1, NULL};
    struct render_tag stop;
    const char *at = text;

    render_part(&render, &top, &at, true, 0, &stop);
    if (render.rc == SP_OK && stop.kind == TAG_ELSE)
        render_fail(&render, stop.start, "an {{else}} outside {{#if}}");
    else if (render.rc == SP_OK && stop.kind == TAG_END)
        render_fail(&render, stop.start, "a {{/...}} that closes nothing");
    if (render.rc == SP_EINVAL || render.rc == SP_ELIMIT)
        snprintf(error, error_size, "%s", render.error);
    else if (render.rc != SP_OK)
        snprintf(error, error_size, "out of memory");
    return render.rc;
}
