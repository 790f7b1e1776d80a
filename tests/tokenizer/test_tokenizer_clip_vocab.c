/* tokenizer with OpenAI's released vocabulary: known token ids of CLIP
 * prompts, agreement with a Python reference on 159 prompts, decoding,
 * and encoding speed. Skipped when
 * $DMNSP_SHARED_DATA/clip/bpe_simple_vocab_16e6.txt.gz is absent. */
#include "dmnsp/json_parse.h"
#include "dmnsp/tokenizer.h"
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void check_ids(const tokenizer *t, const char *text, const int32_t *expected, int count)
{
    int32_t row[77];
    CHECK_OK(tokenizer_encode(t, text, 77, 0, row));
    for (int i = 0; i < count; i++) {
        if (row[i] != expected[i])
            test_report_failure(__FILE__, __LINE__, "\"%s\": id %d is %d, expected %d", text, i, row[i], expected[i]);
    }
    for (int i = count; i < 77; i++) {
        if (row[i] != 0)
            test_report_failure(__FILE__, __LINE__, "\"%s\": padding id %d is %d, expected 0", text, i, row[i]);
    }
}

/* Prompts encoded by an independent Python implementation of CLIP's rules
 * with the full Unicode database (tests/tokenizer/make_clip_ids.py). */
static void check_python_reference(const tokenizer *t)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer/clip_ids.json", test_env("DMNSP_TEST_DATA", "."));
    FILE *in = fopen(path, "rb");
    CHECK(in != NULL);
    if (in == NULL)
        return;
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof text, in);
    fclose(in);
    CHECK(n < sizeof text);

    json_value *root = NULL;
    CHECK_OK(json_parse(text, n, &root));
    const json_value *texts = json_object_get(root, "texts");
    const json_value *ids = json_object_get(root, "ids");
    CHECK(texts != NULL);
    CHECK(ids != NULL);
    if (texts == NULL || ids == NULL) {
        json_free(root);
        return;
    }
    CHECK_EQ_INT(texts->count, ids->count);
    int mismatches = 0;
    for (size_t i = 0; i < texts->count && i < ids->count; i++) {
        int32_t row[77];
        CHECK_OK(tokenizer_encode(t, texts->items[i].string, 77, 0, row));
        const json_value *expected = &ids->items[i];
        int same = 1;
        for (size_t k = 0; k < 77; k++) {
            int64_t want = k < expected->count ? expected->items[k].integer : 0;
            same = same && row[k] == want;
        }
        if (!same) {
            mismatches++;
            char *decoded = NULL;
            tokenizer_decode(t, row, 77, &decoded);
            test_report_failure(__FILE__, __LINE__, "\"%s\" encodes differently from the Python reference (C decodes "
                                "to \"%s\")", texts->items[i].string, decoded ? decoded : "");
            free(decoded);
        }
    }
    printf("%zu prompts compared with the Python reference, %d differ\n", texts->count, mismatches);
    json_free(root);
}

int main(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/clip/bpe_simple_vocab_16e6.txt.gz", test_env("DMNSP_SHARED_DATA", "."));
    if (access(path, R_OK) != 0) {
        char reason[4200];
        snprintf(reason, sizeof reason, "CLIP's vocabulary is not at %s (set the CMake variable DMNSP_SHARED_DATA)",
                 path);
        test_skip(reason);
    }

    clock_t start = clock();
    tokenizer *t = NULL;
    CHECK_OK(tokenizer_load(path, &t));
    if (t == NULL)
        return test_finish("test_tokenizer_clip_vocab");
    printf("loaded %s in %.3f s\n", tokenizer_description(t), (double)(clock() - start) / CLOCKS_PER_SEC);
    CHECK_EQ_INT(tokenizer_vocab_size(t), 49408);
    CHECK_EQ_INT(tokenizer_sot(t), 49406);
    CHECK_EQ_INT(tokenizer_eot(t), 49407);

    const int32_t cat[] = {49406, 320, 2103, 1125, 539, 320, 2368, 269, 49407};
    check_ids(t, "a bad photo of a cat.", cat, 9);
    const int32_t shirt[] = {49406, 320, 2103, 1125, 539, 320, 339, 268, 2523, 270, 1253, 269, 49407};
    check_ids(t, "a bad photo of a T-shirt/top.", shirt, 13);
    const int32_t fish[] = {49406, 320, 2103, 1125, 539, 320, 16814, 318, 2759, 269, 49407};
    check_ids(t, "a bad photo of a aquarium_fish.", fish, 11);
    const int32_t boot[] = {49406, 14777, 8087, 49407};
    check_ids(t, "Ankle boot", boot, 4);
    /* Cleaning: entities, case and whitespace do not change the ids. */
    check_ids(t, "  A bad photo of a CAT&#46;\n", cat, 9);
    check_python_reference(t);

    int32_t row[77];
    CHECK_OK(tokenizer_encode(t, "a bad photo of a T-shirt/top.", 77, 0, row));
    char *decoded = NULL;
    CHECK_OK(tokenizer_decode(t, row, 77, &decoded));
    /* Every pre-token ends a word, so decoding puts a space after each. */
    if (decoded != NULL)
        CHECK(strcmp(decoded, "a bad photo of a t - shirt / top . ") == 0);
    free(decoded);

    /* Speed: ten thousand prompts, as a large class list would need. */
    enum { PROMPTS = 10000 };
    static char storage[PROMPTS][64];
    static const char *texts[PROMPTS];
    static int32_t rows[PROMPTS * 77];
    for (int i = 0; i < PROMPTS; i++) {
        snprintf(storage[i], sizeof storage[i], "a bad photo of a class_%d thing number %d.", i, i * 7);
        texts[i] = storage[i];
    }
    start = clock();
    CHECK_OK(tokenizer_encode_batch(t, texts, PROMPTS, 77, 0, rows));
    double seconds = (double)(clock() - start) / CLOCKS_PER_SEC;
    printf("encoded %d prompts in %.3f s CPU\n", PROMPTS, seconds);
    CHECK(seconds < 2.0);
    tokenizer_free(t);
    return test_finish("test_tokenizer_clip_vocab");
}
