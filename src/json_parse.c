/* json_parse: strict recursive-descent JSON parser (see
 * include/dmnsp/json_parse.h). */
#include "dmnsp/json_parse.h"

#include "dmnsp/error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *text;
    size_t length;
    size_t pos;
} parser;

static void free_value(json_value *value);

static int fail_at(const parser *p, const char *expected)
{
    if (p->pos >= p->length)
        return dmnsp_fail("JSON byte %zu: expected %s, found the end of the text", p->pos, expected);
    unsigned char c = (unsigned char)p->text[p->pos];
    if (c >= 0x20 && c < 0x7f)
        return dmnsp_fail("JSON byte %zu: expected %s, found '%c'", p->pos, expected, c);
    return dmnsp_fail("JSON byte %zu: expected %s, found byte 0x%02x", p->pos, expected, c);
}

static void skip_whitespace(parser *p)
{
    while (p->pos < p->length) {
        char c = p->text[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

static int match_literal(parser *p, const char *literal)
{
    size_t n = strlen(literal);
    if (p->length - p->pos < n || memcmp(p->text + p->pos, literal, n) != 0)
        return fail_at(p, literal);
    p->pos += n;
    return 0;
}

/* ---- strings ----------------------------------------------------------- */

typedef struct {
    char *data;
    size_t length;
    size_t capacity;
} byte_buffer;

static int buffer_push(byte_buffer *b, const char *bytes, size_t n)
{
    if (b->length + n + 1 > b->capacity) {
        size_t capacity = b->capacity ? b->capacity : 16;
        while (b->length + n + 1 > capacity)
            capacity *= 2;
        char *grown = realloc(b->data, capacity);
        if (grown == NULL)
            return dmnsp_fail("JSON: out of memory for a string of %zu bytes", capacity);
        b->data = grown;
        b->capacity = capacity;
    }
    memcpy(b->data + b->length, bytes, n);
    b->length += n;
    b->data[b->length] = '\0';
    return 0;
}

static int push_code_point(byte_buffer *b, uint32_t cp)
{
    char out[4];
    size_t n;
    if (cp < 0x80) {
        out[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        out[0] = (char)(0xf0 | (cp >> 18));
        out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    return buffer_push(b, out, n);
}

static int parse_hex4(parser *p, uint32_t *value)
{
    if (p->length - p->pos < 4)
        return fail_at(p, "4 hex digits after \\u");
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->text[p->pos];
        int digit;
        if (c >= '0' && c <= '9')
            digit = c - '0';
        else if (c >= 'a' && c <= 'f')
            digit = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            digit = c - 'A' + 10;
        else
            return fail_at(p, "a hex digit in a \\u escape");
        v = v * 16 + (uint32_t)digit;
        p->pos++;
    }
    *value = v;
    return 0;
}

/* Length of the well-formed UTF-8 sequence starting at S (at most AVAIL
 * bytes), or 0 when it is malformed, overlong or a surrogate. */
static size_t utf8_sequence_length(const unsigned char *s, size_t avail)
{
    size_t n;
    uint32_t cp;
    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xe0) == 0xc0) {
        n = 2;
        cp = s[0] & 0x1f;
    } else if ((s[0] & 0xf0) == 0xe0) {
        n = 3;
        cp = s[0] & 0x0f;
    } else if ((s[0] & 0xf8) == 0xf0) {
        n = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    static const uint32_t minimum[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < minimum[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

static int parse_string(parser *p, char **out, size_t *out_length)
{
    byte_buffer b = {0};
    *out = NULL;
    if (p->pos >= p->length || p->text[p->pos] != '"')
        return fail_at(p, "'\"' starting a string");
    p->pos++;
    if (buffer_push(&b, "", 0) != 0)
        return -1;

    for (;;) {
        if (p->pos >= p->length) {
            free(b.data);
            return fail_at(p, "'\"' closing the string");
        }
        unsigned char c = (unsigned char)p->text[p->pos];
        if (c == '"') {
            p->pos++;
            break;
        }
        if (c < 0x20) {
            free(b.data);
            return fail_at(p, "an escaped control character");
        }
        if (c != '\\') {
            size_t n = utf8_sequence_length((const unsigned char *)p->text + p->pos, p->length - p->pos);
            if (n == 0) {
                free(b.data);
                return fail_at(p, "valid UTF-8 in a string");
            }
            if (buffer_push(&b, p->text + p->pos, n) != 0) {
                free(b.data);
                return -1;
            }
            p->pos += n;
            continue;
        }

        /* An escape sequence. */
        p->pos++;
        if (p->pos >= p->length) {
            free(b.data);
            return fail_at(p, "an escape character after '\\'");
        }
        char e = p->text[p->pos++];
        const char *simple = NULL;
        switch (e) {
        case '"': simple = "\""; break;
        case '\\': simple = "\\"; break;
        case '/': simple = "/"; break;
        case 'b': simple = "\b"; break;
        case 'f': simple = "\f"; break;
        case 'n': simple = "\n"; break;
        case 'r': simple = "\r"; break;
        case 't': simple = "\t"; break;
        case 'u': break;
        default:
            p->pos--;
            free(b.data);
            return fail_at(p, "one of \" \\ / b f n r t u after '\\'");
        }
        int status;
        if (simple != NULL) {
            status = buffer_push(&b, simple, 1);
        } else {
            uint32_t cp;
            status = parse_hex4(p, &cp);
            if (status == 0 && cp >= 0xdc00 && cp <= 0xdfff)
                status = fail_at(p, "a high surrogate (D800-DBFF) before a low surrogate");
            if (status == 0 && cp >= 0xd800 && cp <= 0xdbff) {
                uint32_t low = 0;
                if (p->length - p->pos < 2 || p->text[p->pos] != '\\' || p->text[p->pos + 1] != 'u')
                    status = fail_at(p, "a \\u low surrogate after a high surrogate");
                if (status == 0) {
                    p->pos += 2;
                    status = parse_hex4(p, &low);
                }
                if (status == 0 && (low < 0xdc00 || low > 0xdfff))
                    status = fail_at(p, "a low surrogate (DC00-DFFF) after a high surrogate");
                if (status == 0)
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
            }
            if (status == 0)
                status = push_code_point(&b, cp);
        }
        if (status != 0) {
            free(b.data);
            return -1;
        }
    }
    *out = b.data;
    *out_length = b.length;
    return 0;
}

/* ---- numbers ----------------------------------------------------------- */

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int parse_number(parser *p, json_value *value)
{
    size_t start = p->pos;
    int integral = 1;

    if (p->pos < p->length && p->text[p->pos] == '-')
        p->pos++;
    if (p->pos >= p->length || !is_digit(p->text[p->pos]))
        return fail_at(p, "a digit");
    if (p->text[p->pos] == '0') {
        p->pos++;
        if (p->pos < p->length && is_digit(p->text[p->pos]))
            return fail_at(p, "a number without leading zeros");
    } else {
        while (p->pos < p->length && is_digit(p->text[p->pos]))
            p->pos++;
    }
    if (p->pos < p->length && p->text[p->pos] == '.') {
        integral = 0;
        p->pos++;
        if (p->pos >= p->length || !is_digit(p->text[p->pos]))
            return fail_at(p, "a digit after the decimal point");
        while (p->pos < p->length && is_digit(p->text[p->pos]))
            p->pos++;
    }
    if (p->pos < p->length && (p->text[p->pos] == 'e' || p->text[p->pos] == 'E')) {
        integral = 0;
        p->pos++;
        if (p->pos < p->length && (p->text[p->pos] == '+' || p->text[p->pos] == '-'))
            p->pos++;
        if (p->pos >= p->length || !is_digit(p->text[p->pos]))
            return fail_at(p, "a digit in the exponent");
        while (p->pos < p->length && is_digit(p->text[p->pos]))
            p->pos++;
    }

    /* strtod/strtoll need a terminated copy: the text may not be. */
    size_t n = p->pos - start;
    char small[64];
    char *copy = n < sizeof small ? small : malloc(n + 1);
    if (copy == NULL)
        return dmnsp_fail("JSON: out of memory for a number of %zu characters", n);
    memcpy(copy, p->text + start, n);
    copy[n] = '\0';

    value->type = JSON_NUMBER;
    value->number = strtod(copy, NULL);
    if (integral) {
        errno = 0;
        long long v = strtoll(copy, NULL, 10);
        if (errno == 0) {
            value->is_integer = 1;
            value->integer = v;
        }
    }
    if (copy != small)
        free(copy);
    return 0;
}

/* ---- values, arrays, objects ------------------------------------------ */

static int parse_value(parser *p, json_value *value, int depth);

static int grow_items(json_value *value, size_t *capacity, int with_keys)
{
    if (value->count < *capacity)
        return 0;
    size_t grown_capacity = *capacity ? 2 * *capacity : 8;
    json_value *items = realloc(value->items, grown_capacity * sizeof *items);
    if (items == NULL)
        return dmnsp_fail("JSON: out of memory for %zu items", grown_capacity);
    value->items = items;
    if (with_keys) {
        char **keys = realloc(value->keys, grown_capacity * sizeof *keys);
        if (keys == NULL)
            return dmnsp_fail("JSON: out of memory for %zu keys", grown_capacity);
        value->keys = keys;
    }
    *capacity = grown_capacity;
    return 0;
}

static int parse_array(parser *p, json_value *value, int depth)
{
    size_t capacity = 0;
    value->type = JSON_ARRAY;
    p->pos++; /* '[' */
    skip_whitespace(p);
    if (p->pos < p->length && p->text[p->pos] == ']') {
        p->pos++;
        return 0;
    }
    for (;;) {
        DMNSP_TRY(grow_items(value, &capacity, 0));
        json_value *item = &value->items[value->count];
        memset(item, 0, sizeof *item);
        value->count++;
        DMNSP_TRY(parse_value(p, item, depth + 1));
        skip_whitespace(p);
        if (p->pos < p->length && p->text[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->length && p->text[p->pos] == ']') {
            p->pos++;
            return 0;
        }
        return fail_at(p, "',' or ']' in an array");
    }
}

/* Duplicate keys are checked with a sort after parsing, so large objects
 * (a 49408-entry vocab.json) stay O(n log n). */
typedef struct {
    const char *key;
    size_t index;
} key_ref;

static int compare_key_refs(const void *a, const void *b)
{
    return strcmp(((const key_ref *)a)->key, ((const key_ref *)b)->key);
}

static int check_duplicate_keys(const json_value *object, size_t object_start)
{
    if (object->count < 2)
        return 0;
    key_ref *refs = malloc(object->count * sizeof *refs);
    if (refs == NULL)
        return dmnsp_fail("JSON: out of memory checking %zu keys", object->count);
    for (size_t i = 0; i < object->count; i++) {
        refs[i].key = object->keys[i];
        refs[i].index = i;
    }
    qsort(refs, object->count, sizeof *refs, compare_key_refs);
    int status = 0;
    for (size_t i = 1; i < object->count; i++) {
        if (strcmp(refs[i - 1].key, refs[i].key) == 0) {
            status = dmnsp_fail("JSON byte %zu: the object starting here has the key \"%s\" twice", object_start,
                                refs[i].key);
            break;
        }
    }
    free(refs);
    return status;
}

static int parse_object(parser *p, json_value *value, int depth)
{
    size_t capacity = 0;
    size_t start = p->pos;
    value->type = JSON_OBJECT;
    p->pos++; /* '{' */
    skip_whitespace(p);
    if (p->pos < p->length && p->text[p->pos] == '}') {
        p->pos++;
        return 0;
    }
    for (;;) {
        DMNSP_TRY(grow_items(value, &capacity, 1));
        json_value *item = &value->items[value->count];
        memset(item, 0, sizeof *item);
        char *key = NULL;
        size_t key_length;
        skip_whitespace(p);
        DMNSP_TRY(parse_string(p, &key, &key_length));
        value->keys[value->count] = key;
        value->count++;
        skip_whitespace(p);
        if (p->pos >= p->length || p->text[p->pos] != ':')
            return fail_at(p, "':' after an object key");
        p->pos++;
        DMNSP_TRY(parse_value(p, item, depth + 1));
        skip_whitespace(p);
        if (p->pos < p->length && p->text[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->length && p->text[p->pos] == '}') {
            p->pos++;
            return check_duplicate_keys(value, start);
        }
        return fail_at(p, "',' or '}' in an object");
    }
}

static int parse_value(parser *p, json_value *value, int depth)
{
    if (depth > JSON_MAX_DEPTH)
        return dmnsp_fail("JSON byte %zu: nesting deeper than %d levels", p->pos, JSON_MAX_DEPTH);
    skip_whitespace(p);
    if (p->pos >= p->length)
        return fail_at(p, "a value");
    switch (p->text[p->pos]) {
    case '{':
        return parse_object(p, value, depth);
    case '[':
        return parse_array(p, value, depth);
    case '"':
        value->type = JSON_STRING;
        return parse_string(p, &value->string, &value->length);
    case 't':
        value->type = JSON_BOOL;
        value->boolean = 1;
        return match_literal(p, "true");
    case 'f':
        value->type = JSON_BOOL;
        return match_literal(p, "false");
    case 'n':
        value->type = JSON_NULL;
        return match_literal(p, "null");
    default:
        return parse_number(p, value);
    }
}

int json_parse(const char *text, size_t length, json_value **root)
{
    parser p = {text, length, 0};
    *root = NULL;
    json_value *value = calloc(1, sizeof *value);
    if (value == NULL)
        return dmnsp_fail("JSON: out of memory");
    if (parse_value(&p, value, 0) != 0) {
        json_free(value);
        return -1;
    }
    skip_whitespace(&p);
    if (p.pos != p.length) {
        json_free(value);
        return fail_at(&p, "the end of the text after the value");
    }
    *root = value;
    return 0;
}

static void free_value(json_value *value)
{
    free(value->string);
    for (size_t i = 0; i < value->count; i++) {
        free_value(&value->items[i]);
        if (value->keys != NULL)
            free(value->keys[i]);
    }
    free(value->items);
    free(value->keys);
}

void json_free(json_value *root)
{
    if (root == NULL)
        return;
    free_value(root);
    free(root);
}

const json_value *json_object_get(const json_value *object, const char *key)
{
    if (object == NULL || object->type != JSON_OBJECT)
        return NULL;
    for (size_t i = 0; i < object->count; i++) {
        if (strcmp(object->keys[i], key) == 0)
            return &object->items[i];
    }
    return NULL;
}

const char *json_type_name(json_type type)
{
    switch (type) {
    case JSON_NULL: return "null";
    case JSON_BOOL: return "boolean";
    case JSON_NUMBER: return "number";
    case JSON_STRING: return "string";
    case JSON_ARRAY: return "array";
    case JSON_OBJECT: return "object";
    }
    return "unknown";
}
