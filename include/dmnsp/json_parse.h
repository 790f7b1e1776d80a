/* json_parse: a strict JSON (RFC 8259) parser into a value tree, for the
 * small JSON documents dmnsp reads: safetensors headers and Hugging Face
 * tokenizer vocabularies (vocab.json).
 *
 * The whole document is parsed at once; json_free() releases the tree.
 * Strings are decoded to UTF-8 (\uXXXX escapes and surrogate pairs
 * included) and keep an explicit length, because they may contain NUL.
 * Duplicate object keys, trailing commas, comments, leading zeros, lone
 * surrogates and nesting deeper than JSON_MAX_DEPTH are rejected.
 */
#ifndef DMNSP_JSON_PARSE_H
#define DMNSP_JSON_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 64

typedef enum { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } json_type;

typedef struct json_value {
    json_type type;
    int boolean;          /* JSON_BOOL */
    double number;        /* JSON_NUMBER */
    int is_integer;       /* JSON_NUMBER written without fraction or exponent and fits in int64 */
    int64_t integer;      /* exact value when is_integer */
    char *string;         /* JSON_STRING: UTF-8, NUL-terminated */
    size_t length;        /* JSON_STRING: bytes, without the terminator */
    size_t count;         /* JSON_ARRAY / JSON_OBJECT: number of items */
    struct json_value *items; /* JSON_ARRAY elements / JSON_OBJECT values, in document order */
    char **keys;          /* JSON_OBJECT: UTF-8 keys, parallel to items */
} json_value;

/* Parses TEXT[0..LENGTH) (whitespace around the value is allowed).
 * On success *ROOT is a malloc'd tree the caller frees with json_free().
 * On failure returns -1 with a message "JSON byte OFFSET: what was expected
 * and what was found" and *ROOT is NULL. */
int json_parse(const char *text, size_t length, json_value **root);

/* Frees a tree from json_parse() (NULL is allowed). */
void json_free(json_value *root);

/* The value stored under KEY in OBJECT, or NULL when OBJECT is not an
 * object or has no such key. Linear in the number of keys. */
const json_value *json_object_get(const json_value *object, const char *key);

/* "null", "boolean", "number", "string", "array" or "object". */
const char *json_type_name(json_type type);

#endif
