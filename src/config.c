/* config: YAML loading, overrides, ${key} interpolation and validation
 * (see include/dmnsp/config.h). */
#include "dmnsp/config.h"

#include "dmnsp/error.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

#define INTERPOLATION_DEPTH_MAX 32

typedef struct {
    char *raw;      /* value as written, before interpolation */
    char *resolved; /* after interpolation and path resolution */
    const char *source; /* "defaults", the file path or "command line" */
    int line, column;   /* in the file (0 when not from a file) */
    int state;          /* interpolation: 0 pending, 1 in progress, 2 done */
} config_entry;

struct config {
    const config_key *schema;
    int count;
    config_entry *entries;
    char *file;       /* config file path as given, or NULL */
    char *file_dir;   /* its folder */
};

static const char source_defaults[] = "defaults";
static const char source_command_line[] = "command line";

/* ---- helpers --------------------------------------------------------- */

static char *copy_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *copy = malloc(n);
    if (copy != NULL)
        memcpy(copy, s, n);
    return copy;
}

static int set_value(config_entry *e, const char *value, const char *source, int line, int column)
{
    char *copy = copy_string(value);
    if (copy == NULL)
        return dmnsp_fail("config: out of memory");
    free(e->raw);
    e->raw = copy;
    e->source = source;
    e->line = line;
    e->column = column;
    return 0;
}

static int find_key(const config *c, const char *key)
{
    for (int i = 0; i < c->count; i++) {
        if (strcmp(c->schema[i].key, key) == 0)
            return i;
    }
    return -1;
}

/* True when KEY names a section ("nullspace" for "nullspace.solver"). */
static int is_section(const config *c, const char *key)
{
    size_t n = strlen(key);
    for (int i = 0; i < c->count; i++) {
        if (strncmp(c->schema[i].key, key, n) == 0 && c->schema[i].key[n] == '.')
            return 1;
    }
    return 0;
}

int config_edit_distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    if (n > 63 || m > 63)
        return 99;
    int row[64];
    for (size_t j = 0; j <= m; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= n; i++) {
        int diagonal = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= m; j++) {
            int above = row[j];
            int cost = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]) ? 0 : 1;
            int best = diagonal + cost;
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diagonal = above;
        }
    }
    return row[m];
}

/* Writes " (did you mean 'x'?)" for the closest known key, or "". */
static void suggest_key(const config *c, const char *key, char *out, size_t size)
{
    int best = 3, best_index = -1;
    for (int i = 0; i < c->count; i++) {
        const char *known = c->schema[i].key;
        int distance = config_edit_distance(key, known);
        const char *dot = strchr(known, '.');
        if (dot != NULL) {
            int tail = config_edit_distance(key, dot + 1);
            if (tail < distance)
                distance = tail;
        }
        if (distance < best) {
            best = distance;
            best_index = i;
        }
    }
    if (best_index >= 0)
        snprintf(out, size, " (did you mean '%s'?)", c->schema[best_index].key);
    else
        out[0] = '\0';
}

static int fail_at(const char *source, int line, int column, const char *fmt, ...) DMNSP_PRINTF(4, 5);

/* Records "SOURCE:LINE:COLUMN: message" (or "SOURCE: message" without a line). */
static int fail_at(const char *source, int line, int column, const char *fmt, ...)
{
    char text[1600];
    va_list args;
    va_start(args, fmt);
    vsnprintf(text, sizeof text, fmt, args);
    va_end(args);
    if (line > 0)
        return dmnsp_fail("%s:%d:%d: %s", source, line, column, text);
    return dmnsp_fail("%s: %s", source, text);
}

/* ---- YAML file ------------------------------------------------------- */

static int load_mapping(config *c, yaml_document_t *doc, yaml_node_t *mapping, const char *prefix,
                        unsigned char *seen);

static int load_pair(config *c, yaml_document_t *doc, yaml_node_t *key_node, yaml_node_t *value_node,
                     const char *prefix, unsigned char *seen)
{
    int line = (int)key_node->start_mark.line + 1;
    int column = (int)key_node->start_mark.column + 1;
    if (key_node->type != YAML_SCALAR_NODE)
        return fail_at(c->file, line, column, "keys must be plain names");

    char key[256];
    snprintf(key, sizeof key, "%s%s", prefix, (const char *)key_node->data.scalar.value);

    if (value_node->type == YAML_MAPPING_NODE) {
        if (!is_section(c, key)) {
            char hint[160];
            suggest_key(c, key, hint, sizeof hint);
            return fail_at(c->file, line, column, "unknown section '%s'%s", key, hint);
        }
        char nested_prefix[260];
        snprintf(nested_prefix, sizeof nested_prefix, "%s.", key);
        return load_mapping(c, doc, value_node, nested_prefix, seen);
    }

    int index = find_key(c, key);
    if (index < 0) {
        char hint[160];
        suggest_key(c, key, hint, sizeof hint);
        if (is_section(c, key))
            return fail_at(c->file, line, column, "'%s' is a section and needs nested keys", key);
        return fail_at(c->file, line, column, "unknown key '%s'%s", key, hint);
    }
    if (seen[index])
        return fail_at(c->file, line, column, "key '%s' is given twice", key);
    seen[index] = 1;
    if (value_node->type != YAML_SCALAR_NODE)
        return fail_at(c->file, (int)value_node->start_mark.line + 1, (int)value_node->start_mark.column + 1,
                       "key '%s' needs a single value, found a list", key);

    const char *value = (const char *)value_node->data.scalar.value;
    /* A bare `key:` or `key: ~` is YAML null: the key's empty value. */
    if (value_node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
        (strcmp(value, "~") == 0 || strcmp(value, "null") == 0))
        value = "";
    return set_value(&c->entries[index], value, c->file, (int)value_node->start_mark.line + 1,
                     (int)value_node->start_mark.column + 1);
}

static int load_mapping(config *c, yaml_document_t *doc, yaml_node_t *mapping, const char *prefix,
                        unsigned char *seen)
{
    for (yaml_node_pair_t *pair = mapping->data.mapping.pairs.start; pair < mapping->data.mapping.pairs.top;
         pair++) {
        yaml_node_t *key_node = yaml_document_get_node(doc, pair->key);
        yaml_node_t *value_node = yaml_document_get_node(doc, pair->value);
        DMNSP_TRY(load_pair(c, doc, key_node, value_node, prefix, seen));
    }
    return 0;
}

/* Parses PATH into a document. Messages call the file DESCRIPTION ("config
 * file"); a parse error is recorded as "PATH:line:col: problem". */
static int parse_yaml_file(const char *path, const char *description, yaml_document_t *doc)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return dmnsp_fail("%s: cannot open %s: %s", path, description, strerror(errno));

    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        return dmnsp_fail("%s: cannot initialise the YAML parser", path);
    }
    yaml_parser_set_input_file(&parser, f);
    int ok = yaml_parser_load(&parser, doc);
    int status = 0;
    if (!ok) {
        status = dmnsp_fail("%s:%d:%d: malformed YAML: %s%s%s", path, (int)parser.problem_mark.line + 1,
                            (int)parser.problem_mark.column + 1, parser.problem ? parser.problem : "parse error",
                            parser.context ? " " : "", parser.context ? parser.context : "");
    }
    yaml_parser_delete(&parser);
    fclose(f);
    return status;
}

static int load_file(config *c, const char *path)
{
    yaml_document_t doc;
    DMNSP_TRY(parse_yaml_file(path, "config file", &doc));

    int status = 0;
    unsigned char *seen = calloc((size_t)c->count, 1);
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (seen == NULL) {
        status = dmnsp_fail("config: out of memory");
    } else if (root == NULL) {
        /* an empty file sets nothing */
    } else if (root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0) {
        /* a file holding only comments */
    } else if (root->type != YAML_MAPPING_NODE) {
        status = fail_at(path, (int)root->start_mark.line + 1, (int)root->start_mark.column + 1,
                         "the top level must be a mapping of keys to values");
    } else {
        status = load_mapping(c, &doc, root, "", seen);
    }
    free(seen);
    yaml_document_delete(&doc);
    return status;
}

/* ---- overrides -------------------------------------------------------- */

static int apply_override(config *c, const char *text)
{
    const char *equals = strchr(text, '=');
    if (equals == NULL || equals == text)
        return dmnsp_fail("command line: '%s' is not a key=value override", text);

    char key[256];
    size_t key_length = (size_t)(equals - text);
    if (key_length >= sizeof key)
        return dmnsp_fail("command line: key in '%s' is too long", text);
    memcpy(key, text, key_length);
    key[key_length] = '\0';

    int index = find_key(c, key);
    if (index < 0) {
        char hint[160];
        suggest_key(c, key, hint, sizeof hint);
        if (is_section(c, key))
            return dmnsp_fail("command line: '%s' is a section; override its keys as %s.NAME=VALUE", key, key);
        return dmnsp_fail("command line: unknown key '%s' in '%s'%s", key, text, hint);
    }
    return set_value(&c->entries[index], equals + 1, source_command_line, 0, 0);
}

/* ---- interpolation ----------------------------------------------------- */

typedef struct {
    char *text;
    size_t length, capacity;
} string_builder;

static int append(string_builder *b, const char *s, size_t n)
{
    if (b->length + n + 1 > b->capacity) {
        size_t capacity = (b->capacity ? b->capacity : 64);
        while (capacity < b->length + n + 1)
            capacity *= 2;
        char *grown = realloc(b->text, capacity);
        if (grown == NULL)
            return dmnsp_fail("config: out of memory");
        b->text = grown;
        b->capacity = capacity;
    }
    memcpy(b->text + b->length, s, n);
    b->length += n;
    b->text[b->length] = '\0';
    return 0;
}

static int resolve_entry(config *c, int index, int depth);

static int interpolate(config *c, int index, int depth, string_builder *out)
{
    config_entry *e = &c->entries[index];
    const char *key = c->schema[index].key;
    const char *p = e->raw;
    DMNSP_TRY(append(out, "", 0));
    while (*p != '\0') {
        const char *start = strstr(p, "${");
        if (start == NULL)
            return append(out, p, strlen(p));
        DMNSP_TRY(append(out, p, (size_t)(start - p)));
        const char *end = strchr(start + 2, '}');
        if (end == NULL)
            return fail_at(e->source, e->line, e->column, "key '%s': unterminated '${' in '%s'", key, e->raw);

        char name[256];
        size_t name_length = (size_t)(end - start - 2);
        if (name_length == 0 || name_length >= sizeof name)
            return fail_at(e->source, e->line, e->column, "key '%s': empty or too long reference in '%s'", key,
                           e->raw);
        memcpy(name, start + 2, name_length);
        name[name_length] = '\0';

        int target = find_key(c, name);
        if (target < 0) {
            return fail_at(e->source, e->line, e->column, "key '%s' refers to unknown key '${%s}'", key, name);
        }
        if (c->entries[target].state == 1) {
            return fail_at(e->source, e->line, e->column, "key '%s' takes part in a reference cycle through '${%s}'", key, name);
        }
        DMNSP_TRY(resolve_entry(c, target, depth + 1));
        DMNSP_TRY(append(out, c->entries[target].resolved, strlen(c->entries[target].resolved)));
        p = end + 1;
    }
    return 0;
}

static int is_absolute(const char *path)
{
    return path[0] == '/';
}

static int resolve_path(config *c, int index, char **value)
{
    config_entry *e = &c->entries[index];
    if ((*value)[0] == '\0' || is_absolute(*value))
        return 0;

    char base[PATH_MAX];
    if (e->source != source_defaults && e->source != source_command_line && c->file_dir != NULL) {
        snprintf(base, sizeof base, "%s", c->file_dir);
    } else if (getcwd(base, sizeof base) == NULL) {
        return dmnsp_fail("config: cannot read the current directory: %s", strerror(errno));
    }
    size_t n = strlen(base) + strlen(*value) + 2;
    char *joined = malloc(n);
    if (joined == NULL)
        return dmnsp_fail("config: out of memory");
    snprintf(joined, n, "%s/%s", base, *value);
    free(*value);
    *value = joined;

    /* Drop "dir/../" steps when the path exists; keep it as written otherwise. */
    char canonical[PATH_MAX];
    if (realpath(joined, canonical) != NULL) {
        char *copy = copy_string(canonical);
        if (copy == NULL)
            return dmnsp_fail("config: out of memory");
        free(*value);
        *value = copy;
    }
    return 0;
}

static int resolve_entry(config *c, int index, int depth)
{
    config_entry *e = &c->entries[index];
    if (e->state == 2)
        return 0;
    if (depth > INTERPOLATION_DEPTH_MAX)
        return fail_at(e->source, e->line, e->column, "key '%s': references nest too deeply",
                       c->schema[index].key);
    e->state = 1;
    string_builder out = {0};
    if (interpolate(c, index, depth, &out) != 0) {
        free(out.text);
        return -1;
    }
    if (c->schema[index].type == CONFIG_PATH && resolve_path(c, index, &out.text) != 0) {
        free(out.text);
        return -1;
    }
    free(e->resolved);
    e->resolved = out.text;
    e->state = 2;
    return 0;
}

/* ---- validation ---------------------------------------------------------- */

static int parse_bool(const char *text, int *value)
{
    static const char *truthy[] = {"true", "yes", "on", "1"};
    static const char *falsy[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(text, truthy[i]) == 0) {
            *value = 1;
            return 0;
        }
        if (strcasecmp(text, falsy[i]) == 0) {
            *value = 0;
            return 0;
        }
    }
    return -1;
}

static int parse_long(const char *text, long *value)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (text[0] == '\0' || *end != '\0' || errno != 0)
        return -1;
    *value = v;
    return 0;
}

static int parse_double(const char *text, double *value)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (text[0] == '\0' || *end != '\0' || errno != 0 || !isfinite(v))
        return -1;
    *value = v;
    return 0;
}

static int choice_matches(const char *choices, const char *value)
{
    size_t n = strlen(value);
    const char *p = choices;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t length = bar ? (size_t)(bar - p) : strlen(p);
        if (length == n && strncmp(p, value, n) == 0)
            return 1;
        if (bar == NULL)
            break;
        p = bar + 1;
    }
    return 0;
}

static int validate_entry(const config *c, int index)
{
    const config_key *k = &c->schema[index];
    const config_entry *e = &c->entries[index];
    const char *v = e->resolved;

    double number = 0;

    switch (k->type) {
    case CONFIG_INT: {
        long value;
        if (parse_long(v, &value) != 0) {
            return fail_at(e->source, e->line, e->column, "key '%s': expected an integer, found '%s'", k->key, v);
        }
        number = (double)value;
        break;
    }
    case CONFIG_FLOAT:
        if (parse_double(v, &number) != 0) {
            return fail_at(e->source, e->line, e->column, "key '%s': expected a number, found '%s'", k->key, v);
        }
        break;
    case CONFIG_BOOL: {
        int value;
        if (parse_bool(v, &value) != 0) {
            return fail_at(e->source, e->line, e->column, "key '%s': expected true or false, found '%s'", k->key, v);
        }
        return 0;
    }
    case CONFIG_CHOICE:
        if (!choice_matches(k->choices, v)) {
            return fail_at(e->source, e->line, e->column, "key '%s': '%s' is not one of %s", k->key, v, k->choices);
        }
        return 0;
    case CONFIG_STRING:
    case CONFIG_PATH:
        return 0;
    }

    if (k->min <= k->max && (number < k->min || number > k->max)) {
        return fail_at(e->source, e->line, e->column, "key '%s': %s is outside the allowed range [%.10g, %.10g]",
                       k->key, v, k->min, k->max);
    }
    return 0;
}

/* Checks that involve more than one key or open intervals. */
static int validate_relations(const config *c)
{
    double ratio = config_get_float(c, "top_k_ratio");
    if (!(ratio > 0 && ratio <= 1)) {
        int i = find_key(c, "top_k_ratio");
        return fail_at(c->entries[i].source, c->entries[i].line, c->entries[i].column,
                       "key 'top_k_ratio': %s is outside (0, 1]", c->entries[i].resolved);
    }
    double scale = config_get_float(c, "lambda_scale");
    if (!(scale > 0)) {
        int i = find_key(c, "lambda_scale");
        return fail_at(c->entries[i].source, c->entries[i].line, c->entries[i].column,
                       "key 'lambda_scale': %s must be positive", c->entries[i].resolved);
    }
    const char *template = config_get_string(c, "prompt_template");
    if (strstr(template, "{}") == NULL) {
        int i = find_key(c, "prompt_template");
        return fail_at(c->entries[i].source, c->entries[i].line, c->entries[i].column,
                       "key 'prompt_template': '%s' has no {} for the class name", template);
    }
    return 0;
}

/* ---- public API -------------------------------------------------------- */

static char *folder_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    if (slash == NULL) {
        char cwd[PATH_MAX];
        if (getcwd(cwd, sizeof cwd) == NULL)
            return NULL;
        return copy_string(cwd);
    }
    size_t n = (size_t)(slash - path);
    if (n == 0)
        return copy_string("/");
    if (path[0] == '/') {
        dir = malloc(n + 1);
        if (dir == NULL)
            return NULL;
        memcpy(dir, path, n);
        dir[n] = '\0';
        return dir;
    }
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd) == NULL)
        return NULL;
    dir = malloc(strlen(cwd) + n + 2);
    if (dir == NULL)
        return NULL;
    sprintf(dir, "%s/%.*s", cwd, (int)n, path);
    return dir;
}

int config_load(const char *path, int override_count, char *const *overrides, config **out)
{
    *out = NULL;
    config *c = calloc(1, sizeof *c);
    if (c == NULL)
        return dmnsp_fail("config: out of memory");
    c->schema = config_schema(&c->count);
    c->entries = calloc((size_t)c->count, sizeof *c->entries);
    if (c->entries == NULL) {
        config_free(c);
        return dmnsp_fail("config: out of memory");
    }

    int status = 0;
    for (int i = 0; i < c->count && status == 0; i++)
        status = set_value(&c->entries[i], c->schema[i].default_value, source_defaults, 0, 0);

    if (status == 0 && path != NULL) {
        c->file = copy_string(path);
        c->file_dir = folder_of(path);
        if (c->file == NULL || c->file_dir == NULL)
            status = dmnsp_fail("config: out of memory");
        else
            status = load_file(c, c->file);
    }
    for (int i = 0; i < override_count && status == 0; i++)
        status = apply_override(c, overrides[i]);
    for (int i = 0; i < c->count && status == 0; i++)
        status = resolve_entry(c, i, 0);
    for (int i = 0; i < c->count && status == 0; i++)
        status = validate_entry(c, i);
    if (status == 0)
        status = validate_relations(c);

    if (status != 0) {
        config_free(c);
        return -1;
    }
    *out = c;
    return 0;
}

void config_free(config *c)
{
    if (c == NULL)
        return;
    for (int i = 0; c->entries != NULL && i < c->count; i++) {
        free(c->entries[i].raw);
        free(c->entries[i].resolved);
    }
    free(c->entries);
    free(c->file);
    free(c->file_dir);
    free(c);
}

static const config_entry *entry_of_type(const config *c, const char *key, config_type type)
{
    int index = find_key(c, key);
    if (index < 0 || c->entries[index].state != 2) {
        fprintf(stderr, "dmnsp: internal error: config key '%s' is not in the schema\n", key);
        abort();
    }
    config_type actual = c->schema[index].type;
    int string_like = actual == CONFIG_STRING || actual == CONFIG_PATH || actual == CONFIG_CHOICE;
    if (!(actual == type || (type == CONFIG_STRING && string_like))) {
        fprintf(stderr, "dmnsp: internal error: config key '%s' read with the wrong type\n", key);
        abort();
    }
    return &c->entries[index];
}

const char *config_get_string(const config *c, const char *key)
{
    return entry_of_type(c, key, CONFIG_STRING)->resolved;
}

long config_get_int(const config *c, const char *key)
{
    long value = 0;
    parse_long(entry_of_type(c, key, CONFIG_INT)->resolved, &value);
    return value;
}

double config_get_float(const config *c, const char *key)
{
    double value = 0;
    parse_double(entry_of_type(c, key, CONFIG_FLOAT)->resolved, &value);
    return value;
}

int config_get_bool(const config *c, const char *key)
{
    int value = 0;
    parse_bool(entry_of_type(c, key, CONFIG_BOOL)->resolved, &value);
    return value;
}

const char *config_source(const config *c, const char *key)
{
    int index = find_key(c, key);
    return index < 0 ? "" : c->entries[index].source;
}

const char *config_file(const config *c)
{
    return c->file;
}

static int append_quoted(string_builder *b, const char *s)
{
    DMNSP_TRY(append(b, "\"", 1));
    for (const char *p = s; *p; p++) {
        if (*p == '"' || *p == '\\')
            DMNSP_TRY(append(b, "\\", 1));
        DMNSP_TRY(append(b, p, 1));
    }
    return append(b, "\"", 1);
}

char *config_to_yaml(const config *c)
{
    string_builder b = {0};
    char section[64] = "";
    int status = append(&b, "", 0);

    for (int i = 0; i < c->count && status == 0; i++) {
        const config_key *k = &c->schema[i];
        const char *dot = strchr(k->key, '.');
        const char *name = k->key;
        if (dot != NULL) {
            size_t n = (size_t)(dot - k->key);
            if (strlen(section) != n || strncmp(section, k->key, n) != 0) {
                snprintf(section, sizeof section, "%.*s", (int)n, k->key);
                status |= append(&b, section, strlen(section));
                status |= append(&b, ":\n", 2);
            }
            status |= append(&b, "  ", 2);
            name = dot + 1;
        } else {
            section[0] = '\0';
        }
        status |= append(&b, name, strlen(name));
        status |= append(&b, ": ", 2);
        const char *v = c->entries[i].resolved;
        if (k->type == CONFIG_INT || k->type == CONFIG_FLOAT)
            status |= append(&b, v, strlen(v));
        else if (k->type == CONFIG_BOOL)
            status |= append(&b, config_get_bool(c, k->key) ? "true" : "false",
                             config_get_bool(c, k->key) ? 4 : 5);
        else
            status |= append_quoted(&b, v);
        status |= append(&b, "\n", 1);
    }
    if (status != 0) {
        free(b.text);
        return NULL;
    }
    return b.text;
}

int config_read_int_list(const char *path, const char *key, int **values, int *count)
{
    *values = NULL;
    *count = 0;
    yaml_document_t doc;
    char description[128];
    snprintf(description, sizeof description,
             "the %s file (a relative path in a config file starts from that file's folder)", key);
    DMNSP_TRY(parse_yaml_file(path, description, &doc));

    int status = 0;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    yaml_node_t *list = NULL;
    if (root == NULL || root->type != YAML_MAPPING_NODE) {
        status = dmnsp_fail("%s: expected a mapping with the key '%s'", path, key);
    } else {
        for (yaml_node_pair_t *pair = root->data.mapping.pairs.start; pair < root->data.mapping.pairs.top; pair++) {
            yaml_node_t *k = yaml_document_get_node(&doc, pair->key);
            if (k->type == YAML_SCALAR_NODE && strcmp((const char *)k->data.scalar.value, key) == 0)
                list = yaml_document_get_node(&doc, pair->value);
        }
        if (list == NULL)
            status = dmnsp_fail("%s: key '%s' not found", path, key);
        else if (list->type != YAML_SEQUENCE_NODE)
            status = dmnsp_fail("%s:%d:%d: key '%s' must be a list of integers", path,
                                (int)list->start_mark.line + 1, (int)list->start_mark.column + 1, key);
    }

    if (status == 0) {
        int n = (int)(list->data.sequence.items.top - list->data.sequence.items.start);
        int *out = malloc((size_t)(n > 0 ? n : 1) * sizeof *out);
        if (out == NULL)
            status = dmnsp_fail("%s: out of memory", path);
        for (int i = 0; i < n && status == 0; i++) {
            yaml_node_t *item = yaml_document_get_node(&doc, list->data.sequence.items.start[i]);
            long value;
            if (item->type != YAML_SCALAR_NODE || parse_long((const char *)item->data.scalar.value, &value) != 0 ||
                value < INT_MIN || value > INT_MAX) {
                status = dmnsp_fail("%s:%d:%d: item %d of '%s' is not an integer", path,
                                    (int)item->start_mark.line + 1, (int)item->start_mark.column + 1, i, key);
                break;
            }
            out[i] = (int)value;
        }
        if (status == 0) {
            *values = out;
            *count = n;
        } else {
            free(out);
        }
    }
    yaml_document_delete(&doc);
    return status;
}
