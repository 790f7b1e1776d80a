/* json_parse: values, escapes and the strictness the safetensors header
 * and vocab.json readers rely on. */
#include "dmnsp/json_parse.h"
#include "test_util.h"

#include <string.h>

static json_value *parse(const char *text)
{
    json_value *root = NULL;
    CHECK_OK(json_parse(text, strlen(text), &root));
    return root;
}

static void check_rejects(const char *text, const char *needle)
{
    json_value *root = NULL;
    CHECK_FAILS_WITH(json_parse(text, strlen(text), &root), needle);
    CHECK(root == NULL);
    json_free(root);
}

int main(void)
{
    json_value *root = parse(" {\"a\": [1, -2.5e3, true, false, null], \"b\\u00e9\": \"x\\ny\\\"\\ud83d\\ude00\","
                             " \"big\": 9007199254740993, \"c\": {}} ");
    CHECK(root != NULL);
    if (root != NULL) {
        CHECK_EQ_INT(root->type, JSON_OBJECT);
        CHECK_EQ_INT(root->count, 4);
        const json_value *a = json_object_get(root, "a");
        CHECK(a != NULL);
        if (a != NULL)
            CHECK_EQ_INT(a->count, 5);
        if (a != NULL && a->type == JSON_ARRAY && a->count == 5) {
            CHECK(a->items[0].is_integer);
            CHECK_EQ_INT(a->items[0].integer, 1);
            CHECK(!a->items[1].is_integer);
            CHECK(a->items[1].number == -2500.0);
            CHECK_EQ_INT(a->items[2].type, JSON_BOOL);
            CHECK_EQ_INT(a->items[2].boolean, 1);
            CHECK_EQ_INT(a->items[3].type, JSON_BOOL);
            CHECK_EQ_INT(a->items[3].boolean, 0);
            CHECK_EQ_INT(a->items[4].type, JSON_NULL);
        }
        /* Escapes decode to UTF-8: e-acute is C3 A9, U+1F600 is F0 9F 98 80. */
        const json_value *b = json_object_get(root, "b\xc3\xa9");
        CHECK(b != NULL);
        if (b != NULL && b->type == JSON_STRING) {
            CHECK_EQ_INT(b->length, 8);
            CHECK(memcmp(b->string, "x\ny\"\xf0\x9f\x98\x80", 8) == 0);
        }
        const json_value *big = json_object_get(root, "big");
        CHECK(big != NULL);
        if (big != NULL) {
            CHECK(big->is_integer);
            CHECK(big->integer == 9007199254740993LL);
        }
        CHECK(json_object_get(root, "missing") == NULL);
    }
    json_free(root);

    /* Raw UTF-8 is kept as is. */
    root = parse("\"\xc4\xa0the</w>\"");
    CHECK(root != NULL);
    if (root != NULL)
        CHECK_EQ_INT(root->length, 9);
    json_free(root);

    check_rejects("{\"a\":1,}", "JSON byte 7");
    check_rejects("[1 2]", "',' or ']'");
    check_rejects("{\"a\":1,\"a\":2}", "key \"a\" twice");
    check_rejects("01", "without leading zeros");
    check_rejects("\"\\ud800\"", "low surrogate");
    check_rejects("\"\\udc00\"", "high surrogate");
    check_rejects("\"tab\there\"", "control character");
    check_rejects("\"\xc0\xaf\"", "valid UTF-8");
    check_rejects("tru", "true");
    check_rejects("{} {}", "end of the text");
    check_rejects("", "expected a value");
    char deep[200];
    memset(deep, '[', sizeof deep - 1);
    deep[sizeof deep - 1] = '\0';
    check_rejects(deep, "nesting deeper");
    return test_finish("test_json_parse");
}
