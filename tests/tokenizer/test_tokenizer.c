/* tokenizer with hand-made vocabularies: a gzip merges list in OpenAI's
 * format, a Hugging Face vocab.json + merges.txt with its own id order,
 * the byte-level fallback, text cleaning, context-length handling and
 * corrupt files. Expected ids are derived by hand in the comments. */
#include "dmnsp/tokenizer.h"
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

/* Merge ranks 0..3: "c a", "ca t</w>", "t h", "th e</w>". With 512 byte
 * symbols first, the merge results get ids 512 ("ca"), 513 ("cat</w>"),
 * 514 ("th"), 515 ("the</w>"); SOT = 516, EOT = 517.
 * Byte symbol ids: printable ASCII b has id b - 33 ('a' 64, 'c' 66, 'e' 68,
 * 'h' 71, 'i' 72, 's' 82, 't' 83, '.' 13, '\'' 6, '2' 17, '4' 19) and
 * id + 256 with "</w>". */
static const char merges_text[] = "\"test merges#version: 0.2\nc a\nca t</w>\nt h\nth e</w>\n";

enum { SMALL_SOT = 516, SMALL_EOT = 517 };

static void write_gzip(const char *path, const char *text, size_t n)
{
    gzFile out = gzopen(path, "wb");
    CHECK(out != NULL);
    if (out == NULL)
        return;
    CHECK_EQ_INT(gzwrite(out, text, (unsigned)n), n);
    CHECK_EQ_INT(gzclose(out), Z_OK);
}

static void check_row(const tokenizer *t, const char *text, int context_length, const int32_t *expected, int count)
{
    int32_t row[16];
    CHECK_OK(tokenizer_encode(t, text, context_length, 0, row));
    for (int i = 0; i < context_length; i++) {
        int32_t want = i < count ? expected[i] : 0;
        if (row[i] != want)
            test_report_failure(__FILE__, __LINE__, "\"%s\": id %d is %d, expected %d", text, i, row[i], want);
    }
}

static void test_openai_format(void)
{
    write_gzip("merges.txt.gz", merges_text, strlen(merges_text));
    tokenizer *t = NULL;
    CHECK_OK(tokenizer_load("merges.txt.gz", &t));
    if (t == NULL)
        return;
    CHECK_EQ_INT(tokenizer_vocab_size(t), 518);
    CHECK_EQ_INT(tokenizer_sot(t), SMALL_SOT);
    CHECK_EQ_INT(tokenizer_eot(t), SMALL_EOT);

    /* "the": t h e</w> -> (t,h) rank 2 -> th e</w> -> rank 3 -> 515.
     * "cat": c a t</w> -> (c,a) rank 0 -> ca t</w> -> rank 1 -> 513. */
    const int32_t the_cat[] = {SMALL_SOT, 515, 513, 13 + 256, SMALL_EOT};
    check_row(t, "The cat.", 8, the_cat, 5);
    /* "cats": c a t s</w> -> ca t s</w>; no merge for (ca,t) or (t,s</w>). */
    const int32_t cats[] = {SMALL_SOT, 512, 83, 82 + 256, SMALL_EOT};
    check_row(t, "cats", 8, cats, 5);
    /* Contraction and single digits: "it" "'s" "4" "2". */
    const int32_t its[] = {SMALL_SOT, 72, 83 + 256, 6, 82 + 256, 19 + 256, 17 + 256, SMALL_EOT};
    check_row(t, "it's 42", 8, its, 8);
    /* e-acute is bytes C3 A9; 0xC3 is symbol 106 + (0xC3 - 0xAE) = 127 and
     * 0xA9 is symbol 94 + (0xA9 - 0xA1) = 102. Capital E-acute lower-cases. */
    const int32_t e_acute[] = {SMALL_SOT, 127, 102 + 256, SMALL_EOT};
    check_row(t, "\xc3\x89", 8, e_acute, 4);
    /* The special tokens in text map to their ids. */
    const int32_t special[] = {SMALL_SOT, 515, SMALL_EOT, SMALL_EOT};
    check_row(t, "the<|endoftext|>", 8, special, 4);

    /* Texts longer than the context are rejected unless truncated. */
    int32_t row[5];
    CHECK_OK(tokenizer_encode(t, "the cat.", 5, 0, row));
    CHECK_FAILS_WITH(tokenizer_encode(t, "the cat. the", 5, 0, row), "has 4 tokens plus start and end");
    CHECK_FAILS_WITH(tokenizer_encode(t, "the cat. the", 5, 0, row), "\"the cat. the\"");
    CHECK_OK(tokenizer_encode(t, "the cat. the", 5, 1, row));
    const int32_t truncated[5] = {SMALL_SOT, 515, 513, 13 + 256, SMALL_EOT};
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(row[i], truncated[i]);

    /* Batch encoding equals row-by-row encoding and names a failing text. */
    const char *texts[3] = {"The cat.", "cats", "it's 42"};
    int32_t rows[3 * 8];
    CHECK_OK(tokenizer_encode_batch(t, texts, 3, 8, 0, rows));
    for (int i = 0; i < 8; i++) {
        CHECK_EQ_INT(rows[i], i < 5 ? the_cat[i] : 0);
        CHECK_EQ_INT(rows[16 + i], its[i]);
    }
    const char *too_long[2] = {"cats", "the cat. the cat. the cat."};
    CHECK_FAILS_WITH(tokenizer_encode_batch(t, too_long, 2, 8, 0, rows), "(text 1 of 2)");

    char *decoded = NULL;
    CHECK_OK(tokenizer_decode(t, the_cat, 5, &decoded));
    if (decoded != NULL)
        CHECK(strcmp(decoded, "the cat . ") == 0);
    free(decoded);
    tokenizer_free(t);
}

/* GPT-2's byte alphabet, written independently of the library: printable
 * bytes map to themselves, the rest to 256, 257, ... in byte order. */
static void symbol_utf8(int b, char *out)
{
    int printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    int cp = b;
    if (!printable) {
        cp = 256;
        for (int x = 0; x < b; x++) {
            int x_printable = (x >= '!' && x <= '~') || (x >= 0xa1 && x <= 0xac) || (x >= 0xae && x <= 0xff);
            cp += !x_printable;
        }
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = '\0';
    } else {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        out[2] = '\0';
    }
}

/* A Hugging Face vocabulary that lists the byte symbols in reverse: the
 * symbol of byte b gets id 255 - b and its "</w>" form 511 - b. */
static void write_hugging_face_files(const char *folder)
{
    mkdir(folder, 0755);
    char path[512];
    snprintf(path, sizeof path, "%s/vocab.json", folder);
    FILE *vocab = fopen(path, "w");
    CHECK(vocab != NULL);
    if (vocab == NULL)
        return;
    fprintf(vocab, "{");
    for (int b = 0; b < 256; b++) {
        char symbol[4];
        symbol_utf8(b, symbol);
        const char *escaped = strcmp(symbol, "\"") == 0 ? "\\\"" : strcmp(symbol, "\\") == 0 ? "\\\\" : symbol;
        fprintf(vocab, "\"%s\": %d, \"%s</w>\": %d, ", escaped, 255 - b, escaped, 511 - b);
    }
    fprintf(vocab, "\"ca\": 512, \"cat</w>\": 513, \"th\": 514, \"the</w>\": 515, \"<|startoftext|>\": 516, "
                   "\"<|endoftext|>\": 517}\n");
    fclose(vocab);

    snprintf(path, sizeof path, "%s/merges.txt", folder);
    const char merges[] = "#version: 0.2\nc a\nca t</w>\nt h\nth e</w>\n";
    CHECK_OK(test_write_file(path, merges, strlen(merges)));
}

static void test_hugging_face_format(void)
{
    write_hugging_face_files("hf_tokenizer");
    const char *paths[2] = {"hf_tokenizer", "hf_tokenizer/vocab.json"};
    for (int p = 0; p < 2; p++) {
        tokenizer *t = NULL;
        CHECK_OK(tokenizer_load(paths[p], &t));
        if (t == NULL)
            continue;
        CHECK_EQ_INT(tokenizer_vocab_size(t), 518);
        /* "." is byte 46: its "</w>" symbol has id 511 - 46 = 465. */
        const int32_t the_cat[] = {SMALL_SOT, 515, 513, 465, SMALL_EOT};
        check_row(t, "The cat.", 8, the_cat, 5);
        /* "cats": "ca", then 't' (255 - 116 = 139), "s</w>" (511 - 115 = 396). */
        const int32_t cats[] = {SMALL_SOT, 512, 139, 396, SMALL_EOT};
        check_row(t, "cats", 8, cats, 5);
        tokenizer_free(t);
    }

    /* A merge whose result is missing from vocab.json is reported. */
    mkdir("hf_bad", 0755);
    const char merges[] = "#version: 0.2\nc a\nc t\n";
    CHECK_OK(test_write_file("hf_bad/merges.txt", merges, strlen(merges)));
    char command[256];
    snprintf(command, sizeof command, "cp hf_tokenizer/vocab.json hf_bad/vocab.json");
    CHECK_EQ_INT(system(command), 0);
    tokenizer *t = NULL;
    CHECK_FAILS_WITH(tokenizer_load("hf_bad", &t), "line 3: merged token 'ct' is not in the vocabulary");
    CHECK_FAILS_WITH(tokenizer_load("hf_bad", &t), "hf_bad/merges.txt");
    CHECK_FAILS_WITH(tokenizer_load("hf_bad/tokenizer.json", &t), "a Hugging Face tokenizer.json is not read");
}

static void test_byte_level(void)
{
    tokenizer *t = NULL;
    CHECK_OK(tokenizer_load(NULL, &t));
    if (t == NULL)
        return;
    CHECK_EQ_INT(tokenizer_vocab_size(t), 514);
    CHECK_EQ_INT(tokenizer_sot(t), 512);
    CHECK_EQ_INT(tokenizer_eot(t), 513);
    /* "a" -> "a</w>" 320; "cat" -> c a t</w> = 66 64 339. */
    const int32_t a_cat[] = {512, 320, 66, 64, 83 + 256, 513};
    check_row(t, "A  cat", 8, a_cat, 6);
    const int32_t empty[] = {512, 513};
    check_row(t, "", 8, empty, 2);
    check_row(t, " \t\n", 8, empty, 2);
    /* Curly quotes, fullwidth letters and ligatures are repaired first:
     * "\u2019s" is the contraction "'s" (6, 338) and "\uff21" is "a</w>". */
    const int32_t repaired[] = {512, 6, 82 + 256, 320, 69, 72, 75 + 256, 513};
    check_row(t, "\xe2\x80\x99s \xef\xbc\xa1 \xef\xac\x81l", 8, repaired, 8);
    tokenizer_free(t);
}

static void check_clean(const char *text, const char *expected)
{
    char *cleaned = NULL;
    CHECK_OK(tokenizer_clean_text(text, &cleaned));
    if (cleaned != NULL && strcmp(cleaned, expected) != 0)
        test_report_failure(__FILE__, __LINE__, "clean(\"%s\") = \"%s\", expected \"%s\"", text, cleaned, expected);
    free(cleaned);
}

static void test_cleaning(void)
{
    check_clean("  Tom &amp; Jerry\t\n ", "tom & jerry");
    check_clean("&amp;amp; &lt;b&gt; &quot;x&quot; &#39;y&#39; &#x41;", "& <b> \"x\" 'y' a");
    check_clean("a\xc2\xa0\xe3\x80\x80" "b", "a b"); /* no-break space, ideographic space */
    check_clean("\xc3\x84RGER \xd0\x9c\xd0\x98\xd0\xa0", "\xc3\xa4rger \xd0\xbc\xd0\xb8\xd1\x80");
    check_clean("&unknown; & &#xZZ;", "&unknown; & &#xzz;");
    check_clean("", "");
}

static void test_corrupt_files(void)
{
    tokenizer *t = NULL;
    /* gzip magic followed by garbage. */
    const unsigned char garbage[] = {0x1f, 0x8b, 0x08, 0x00, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x03, 0x12, 0x34, 0x56};
    CHECK_OK(test_write_file("garbage.txt.gz", garbage, sizeof garbage));
    CHECK_FAILS_WITH(tokenizer_load("garbage.txt.gz", &t), "garbage.txt.gz");
    CHECK_FAILS_WITH(tokenizer_load("garbage.txt.gz", &t), "gzip");
    CHECK(t == NULL);

    /* A valid gzip file cut in half. */
    write_gzip("full.txt.gz", merges_text, strlen(merges_text));
    FILE *in = fopen("full.txt.gz", "rb");
    unsigned char buffer[512];
    size_t n = in ? fread(buffer, 1, sizeof buffer, in) : 0;
    if (in != NULL)
        fclose(in);
    CHECK(n > 20);
    CHECK_OK(test_write_file("cut.txt.gz", buffer, n / 2));
    CHECK_FAILS_WITH(tokenizer_load("cut.txt.gz", &t), "gzip");

    const char bad_line[] = "header\nc a\nthree parts here\n";
    write_gzip("bad_line.txt.gz", bad_line, strlen(bad_line));
    CHECK_FAILS_WITH(tokenizer_load("bad_line.txt.gz", &t), "line 3: expected two symbols separated by one space");

    const char unknown_part[] = "header\nc a\nxy z\n";
    write_gzip("unknown_part.txt.gz", unknown_part, strlen(unknown_part));
    CHECK_FAILS_WITH(tokenizer_load("unknown_part.txt.gz", &t), "line 3: merge part 'xy' is not in the vocabulary");

    CHECK_FAILS_WITH(tokenizer_load("missing.txt.gz", &t), "cannot open");
    CHECK_FAILS_WITH(tokenizer_load("missing_folder/vocab.json", &t), "cannot open");
}

int main(void)
{
    test_openai_format();
    test_hugging_face_format();
    test_byte_level();
    test_cleaning();
    test_corrupt_files();
    return test_finish("test_tokenizer");
}
