/* config: experiment configuration from YAML files and key=value overrides.
 *
 * Every key dmnsp knows is listed once, with its type, default and meaning,
 * in the schema table of src/config_schema.c; anything else is an error.
 * Loading merges, in order: the schema defaults, the YAML file (nested
 * mappings become dotted keys: `nullspace: {solver: slepc}` is
 * `nullspace.solver`), then the command-line overrides. After merging,
 * `${key}` references are replaced by the referenced key's resolved value
 * (cycles are errors) and every value is checked against its type and
 * range. Errors name the file (or "command line"), the key, and the
 * line:column libyaml reports.
 *
 * Relative input paths (class_order, class_names, weights, vocab,
 * dataset_root) written in a config file are taken relative to that file's
 * folder; relative paths from overrides and output paths (output_dir,
 * log_path) are taken relative to the current directory.
 */
#ifndef DMNSP_CONFIG_H
#define DMNSP_CONFIG_H

#include <stddef.h>

typedef struct config config;

typedef enum {
    CONFIG_STRING,
    CONFIG_INT,
    CONFIG_FLOAT,
    CONFIG_BOOL,
    CONFIG_CHOICE, /* a string from a fixed list */
    CONFIG_PATH,   /* an input file or folder; relative to the config file */
} config_type;

/* One schema entry (see src/config_schema.c). */
typedef struct {
    const char *key;
    config_type type;
    const char *default_value;
    const char *choices; /* "a|b|c" for CONFIG_CHOICE, else NULL */
    double min, max;     /* inclusive range for numbers (min > max: unchecked) */
    const char *help;
} config_key;

/* The schema: every known key, in the order `dmnsp config` prints them. */
const config_key *config_schema(int *count);
/* Case-insensitive Levenshtein distance of A and B (99 when either is
 * longer than 63 characters); the "did you mean" suggestions use it. */
int config_edit_distance(const char *a, const char *b);

/* Loads PATH (may be NULL: defaults only) and applies the OVERRIDES
 * ("key=value" strings). Returns 0 and a new config, or -1 with a message. */
int config_load(const char *path, int override_count, char *const *overrides, config **out);
void config_free(config *c);

/* Typed getters of resolved values. KEY must be in the schema and of the
 * matching type; anything else is a programming error and aborts. */
const char *config_get_string(const config *c, const char *key);
long config_get_int(const config *c, const char *key);
double config_get_float(const config *c, const char *key);
int config_get_bool(const config *c, const char *key);

/* Where a key's value came from: "defaults", the file path or "command line". */
const char *config_source(const config *c, const char *key);

/* Writes the resolved config as YAML (nested sections indented) to a newly
 * malloc'd string. Returns NULL with a message on failure. */
char *config_to_yaml(const config *c);

/* Reads "KEY: [int, int, ...]" (a flow or block sequence of integers) from
 * the YAML file PATH. *VALUES is malloc'd. Used for class orders. */
int config_read_int_list(const char *path, const char *key, int **values, int *count);

/* The path of the config file the values came from (NULL for defaults only). */
const char *config_file(const config *c);

#endif
