/* tokenizer: vocabulary loading, text cleaning, pre-tokenizing and BPE
 * (see include/dmnsp/tokenizer.h). */
#include "dmnsp/tokenizer.h"

#include "dmnsp/error.h"
#include "dmnsp/json_parse.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

/* Merges used from OpenAI's list: 49152 - 256 - 2, as in CLIP's
 * SimpleTokenizer, so the vocabulary has 49408 ids. */
#define OPENAI_MERGE_LIMIT 48894

static const char sot_text[] = "<|startoftext|>";
static const char eot_text[] = "<|endoftext|>";

/* ---- hash maps ---------------------------------------------------------- */

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static uint64_t hash_pair(uint64_t key)
{
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdull;
    key ^= key >> 33;
    return key;
}

typedef struct {
    int rank;
    int result;
    uint64_t key; /* left << 32 | right */
} merge_entry;

struct tokenizer {
    int vocab_size;
    char **tokens;      /* id -> symbol string (UTF-8, owned) */
    int *vocab_slots;   /* open addressing over ids, -1 = empty */
    size_t vocab_capacity;
    merge_entry *merges; /* open addressing, rank -1 = empty */
    size_t merge_capacity;
    int merge_count;
    int byte_ids[256];     /* byte -> id of its symbol */
    int byte_end_ids[256]; /* byte -> id of its symbol + "</w>" */
    unsigned char symbol_bytes[512]; /* code point of a byte symbol (< 512) -> byte */
    int sot;
    int eot;
    char description[256];
};

static int vocab_find_n(const tokenizer *t, const char *s, size_t n)
{
    size_t mask = t->vocab_capacity - 1;
    size_t slot = (size_t)hash_bytes(s, n) & mask;
    while (t->vocab_slots[slot] >= 0) {
        const char *token = t->tokens[t->vocab_slots[slot]];
        if (strncmp(token, s, n) == 0 && token[n] == '\0')
            return t->vocab_slots[slot];
        slot = (slot + 1) & mask;
    }
    return -1;
}

static int vocab_find(const tokenizer *t, const char *s)
{
    return vocab_find_n(t, s, strlen(s));
}

/* Allocates an empty index with room for CAPACITY_FOR ids. */
static int vocab_index_create(tokenizer *t, size_t capacity_for)
{
    free(t->vocab_slots);
    t->vocab_capacity = 16;
    while (t->vocab_capacity < 2 * capacity_for)
        t->vocab_capacity *= 2;
    t->vocab_slots = malloc(t->vocab_capacity * sizeof *t->vocab_slots);
    if (t->vocab_slots == NULL)
        return dmnsp_fail("out of memory for the vocabulary index");
    for (size_t i = 0; i < t->vocab_capacity; i++)
        t->vocab_slots[i] = -1;
    return 0;
}

/* Adds tokens[ID] to the index; a token already present is an error. */
static int vocab_index_add(tokenizer *t, int id)
{
    if (t->tokens[id] == NULL)
        return dmnsp_fail("vocabulary has no token with id %d (ids must be 0..%d without gaps)", id,
                          t->vocab_size - 1);
    if (vocab_find(t, t->tokens[id]) >= 0)
        return dmnsp_fail("token '%s' appears twice in the vocabulary", t->tokens[id]);
    size_t slot = (size_t)hash_bytes(t->tokens[id], strlen(t->tokens[id])) & (t->vocab_capacity - 1);
    while (t->vocab_slots[slot] >= 0)
        slot = (slot + 1) & (t->vocab_capacity - 1);
    t->vocab_slots[slot] = id;
    return 0;
}

/* Indexes tokens[0 .. vocab_size). */
static int build_vocab_index(tokenizer *t)
{
    DMNSP_TRY(vocab_index_create(t, (size_t)t->vocab_size));
    for (int id = 0; id < t->vocab_size; id++)
        DMNSP_TRY(vocab_index_add(t, id));
    return 0;
}

static const merge_entry *merge_find(const tokenizer *t, int left, int right)
{
    if (t->merge_capacity == 0)
        return NULL;
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    size_t mask = t->merge_capacity - 1;
    size_t slot = (size_t)hash_pair(key) & mask;
    while (t->merges[slot].rank >= 0) {
        if (t->merges[slot].key == key)
            return &t->merges[slot];
        slot = (slot + 1) & mask;
    }
    return NULL;
}

static int merge_table_create(tokenizer *t, int count)
{
    t->merge_capacity = 16;
    while (t->merge_capacity < 2 * (size_t)count)
        t->merge_capacity *= 2;
    t->merges = malloc(t->merge_capacity * sizeof *t->merges);
    if (t->merges == NULL)
        return dmnsp_fail("out of memory for %d merges", count);
    for (size_t i = 0; i < t->merge_capacity; i++)
        t->merges[i].rank = -1;
    return 0;
}

/* Adds merge LEFT + RIGHT of rank RANK. CLIP's merge lists have no
 * repeated pairs; a repeat would keep its first rank. */
static void merge_insert(tokenizer *t, int left, int right, int result, int rank)
{
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    size_t mask = t->merge_capacity - 1;
    size_t slot = (size_t)hash_pair(key) & mask;
    while (t->merges[slot].rank >= 0) {
        if (t->merges[slot].key == key)
            return;
        slot = (slot + 1) & mask;
    }
    t->merges[slot].key = key;
    t->merges[slot].rank = rank;
    t->merges[slot].result = result;
    t->merge_count++;
}

/* ---- GPT-2 byte alphabet -------------------------------------------------- */

/* Byte b maps to code point b when printable (! to ~, ¡ to ¬, ® to ÿ) and
 * otherwise to 256 + n, n counting the unprintable bytes in order. ORDER
 * lists the bytes in vocabulary order: printable ones first. */
static void byte_alphabet(uint32_t code_points[256], int order[256])
{
    int printable[256] = {0};
    int n = 0;
    for (int b = '!'; b <= '~'; b++)
        printable[b] = 1;
    for (int b = 0xa1; b <= 0xac; b++)
        printable[b] = 1;
    for (int b = 0xae; b <= 0xff; b++)
        printable[b] = 1;
    for (int b = 0; b < 256; b++) {
        if (printable[b]) {
            code_points[b] = (uint32_t)b;
            order[n++] = b;
        }
    }
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        if (!printable[b]) {
            code_points[b] = 256u + (uint32_t)extra++;
            order[n++] = b;
        }
    }
}

static size_t encode_utf8(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Decodes one code point at S (N bytes available). Malformed input yields
 * the byte itself with *LENGTH 1 and *VALID 0. */
static uint32_t decode_utf8(const unsigned char *s, size_t n, size_t *length, int *valid)
{
    *valid = 1;
    *length = 1;
    if (s[0] < 0x80)
        return s[0];
    size_t need;
    uint32_t cp;
    if ((s[0] & 0xe0) == 0xc0) {
        need = 2;
        cp = s[0] & 0x1f;
    } else if ((s[0] & 0xf0) == 0xe0) {
        need = 3;
        cp = s[0] & 0x0f;
    } else if ((s[0] & 0xf8) == 0xf0) {
        need = 4;
        cp = s[0] & 0x07;
    } else {
        *valid = 0;
        return s[0];
    }
    if (n < need) {
        *valid = 0;
        return s[0];
    }
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            *valid = 0;
            return s[0];
        }
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    static const uint32_t minimum[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < minimum[need] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        *valid = 0;
        return s[0];
    }
    *length = need;
    return cp;
}

/* ---- character classes (Unicode approximated by tables) ----------------- */

static int is_space(uint32_t cp)
{
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x1f))
        return 1;
    return cp == 0x85 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

typedef struct {
    uint32_t first;
    uint32_t last;
} code_range;

static int in_ranges(uint32_t cp, const code_range *ranges, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (cp >= ranges[i].first && cp <= ranges[i].last)
            return 1;
    }
    return 0;
}

/* Letter blocks of the common scripts (Unicode category L, approximately). */
static const code_range letter_ranges[] = {
    {0xaa, 0xaa},       {0xb5, 0xb5},       {0xba, 0xba},       {0xc0, 0xd6},       {0xd8, 0xf6},
    {0xf8, 0x2c1},      {0x2c6, 0x2d1},     {0x2e0, 0x2e4},     {0x370, 0x374},     {0x376, 0x377},
    {0x37a, 0x37d},     {0x386, 0x386},     {0x388, 0x3f5},     {0x3f7, 0x481},     {0x48a, 0x52f},
    {0x531, 0x556},     {0x561, 0x587},     {0x5d0, 0x5ea},     {0x620, 0x64a},     {0x671, 0x6d3},
    {0x904, 0x939},     {0xe01, 0xe30},     {0x10a0, 0x10ff},   {0x1100, 0x11ff},   {0x1e00, 0x1fbc},
    {0x1fc2, 0x1ffc},   {0x3041, 0x3096},   {0x309d, 0x309f},   {0x30a1, 0x30fa},   {0x30fc, 0x30ff},
    {0x3105, 0x312f},   {0x3131, 0x318e},   {0x3400, 0x4dbf},   {0x4e00, 0x9fff},   {0xa000, 0xa48c},
    {0xac00, 0xd7a3},   {0xf900, 0xfaff},   {0xff21, 0xff3a},   {0xff41, 0xff5a},   {0xff66, 0xffdc},
    {0x20000, 0x2fa1f},
};

/* Number characters (Unicode category N, approximately). */
static const code_range number_ranges[] = {
    {'0', '9'},       {0xb2, 0xb3},     {0xb9, 0xb9},     {0xbc, 0xbe},     {0x660, 0x669},
    {0x6f0, 0x6f9},   {0x966, 0x96f},   {0xe50, 0xe59},   {0x2070, 0x2070}, {0x2074, 0x2079},
    {0x2080, 0x2089}, {0x2150, 0x2189}, {0x2460, 0x249b}, {0x24ea, 0x24ff}, {0x3007, 0x3007},
    {0x3021, 0x3029}, {0xff10, 0xff19},
};

static int is_letter(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
    return in_ranges(cp, letter_ranges, sizeof letter_ranges / sizeof letter_ranges[0]);
}

static int is_number(uint32_t cp)
{
    if (cp < 0x80)
        return cp >= '0' && cp <= '9';
    return in_ranges(cp, number_ranges, sizeof number_ranges / sizeof number_ranges[0]);
}

/* Lower case for ASCII, Latin-1, Latin Extended-A, Greek, Cyrillic and
 * fullwidth Latin; other code points are returned unchanged. */
static uint32_t to_lower(uint32_t cp)
{
    if (cp >= 'A' && cp <= 'Z')
        return cp + 32;
    if (cp < 0xc0)
        return cp;
    if (cp <= 0xde && cp != 0xd7)
        return cp + 32;
    if (cp >= 0x100 && cp <= 0x137 && cp != 0x130 && (cp & 1) == 0)
        return cp + 1;
    if (cp >= 0x139 && cp <= 0x148 && (cp & 1) == 1)
        return cp + 1;
    if (cp >= 0x14a && cp <= 0x177 && (cp & 1) == 0)
        return cp + 1;
    if (cp == 0x178)
        return 0xff;
    if (cp >= 0x179 && cp <= 0x17e && (cp & 1) == 1)
        return cp + 1;
    if ((cp >= 0x391 && cp <= 0x3a1) || (cp >= 0x3a3 && cp <= 0x3ab))
        return cp + 32;
    if (cp >= 0x410 && cp <= 0x42f)
        return cp + 32;
    if (cp >= 0x400 && cp <= 0x40f)
        return cp + 80;
    if (cp >= 0xff21 && cp <= 0xff3a)
        return cp + 32;
    return cp;
}

/* ---- text cleaning ------------------------------------------------------ */

/* The part of ftfy's fix_text (which CLIP runs first) that changes common
 * prompts: curly quotes become ASCII quotes, fullwidth ASCII forms become
 * ASCII and Latin ligatures are spelled out. Writes 1 to 3 code points to
 * OUT and returns the count. */
static int repair_code_point(uint32_t cp, uint32_t out[3])
{
    static const char *const ligatures[7] = {"ff", "fi", "fl", "ffi", "ffl", "st", "st"};
    if (cp == 0x2bc || (cp >= 0x2018 && cp <= 0x201b)) {
        out[0] = '\'';
        return 1;
    }
    if (cp >= 0x201c && cp <= 0x201f) {
        out[0] = '"';
        return 1;
    }
    if (cp >= 0xff01 && cp <= 0xff5e) {
        out[0] = cp - 0xfee0;
        return 1;
    }
    if (cp >= 0xfb00 && cp <= 0xfb06) {
        const char *spelled = ligatures[cp - 0xfb00];
        int n = (int)strlen(spelled);
        for (int i = 0; i < n; i++)
            out[i] = (unsigned char)spelled[i];
        return n;
    }
    out[0] = cp;
    return 1;
}

typedef struct {
    char *data;
    size_t length;
    size_t capacity;
} text_buffer;

static int text_reserve(text_buffer *b, size_t extra)
{
    if (b->length + extra + 1 <= b->capacity)
        return 0;
    size_t capacity = b->capacity ? b->capacity : 64;
    while (b->length + extra + 1 > capacity)
        capacity *= 2;
    char *grown = realloc(b->data, capacity);
    if (grown == NULL)
        return dmnsp_fail("tokenizer: out of memory for %zu bytes of text", capacity);
    b->data = grown;
    b->capacity = capacity;
    return 0;
}

static int text_append(text_buffer *b, const char *bytes, size_t n)
{
    DMNSP_TRY(text_reserve(b, n));
    memcpy(b->data + b->length, bytes, n);
    b->length += n;
    b->data[b->length] = '\0';
    return 0;
}

/* Named entities handled besides numeric ones (&#39; &#x27;). */
static const struct {
    const char *name;
    const char *text;
} html_entities[] = {
    {"amp", "&"}, {"lt", "<"}, {"gt", ">"}, {"quot", "\""}, {"apos", "'"}, {"nbsp", "\xc2\xa0"},
};

/* Replaces HTML character references in IN by their characters. */
static int html_unescape(const char *in, text_buffer *out)
{
    out->length = 0;
    DMNSP_TRY(text_reserve(out, strlen(in)));
    out->data[0] = '\0';
    const char *p = in;
    while (*p) {
        if (*p != '&') {
            DMNSP_TRY(text_append(out, p, 1));
            p++;
            continue;
        }
        const char *semicolon = strchr(p, ';');
        size_t span = semicolon ? (size_t)(semicolon - p) : 0;
        int replaced = 0;
        if (semicolon != NULL && span >= 2 && span <= 10) {
            if (p[1] == '#') {
                int hex = p[2] == 'x' || p[2] == 'X';
                const char *digits = p + (hex ? 3 : 2);
                char *end;
                unsigned long cp = strtoul(digits, &end, hex ? 16 : 10);
                if (end == semicolon && end > digits && cp > 0 && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff)) {
                    char utf8[4];
                    DMNSP_TRY(text_append(out, utf8, encode_utf8((uint32_t)cp, utf8)));
                    replaced = 1;
                }
            } else {
                for (size_t i = 0; i < sizeof html_entities / sizeof html_entities[0]; i++) {
                    size_t n = strlen(html_entities[i].name);
                    if (n == span - 1 && strncmp(p + 1, html_entities[i].name, n) == 0) {
                        DMNSP_TRY(text_append(out, html_entities[i].text, strlen(html_entities[i].text)));
                        replaced = 1;
                        break;
                    }
                }
            }
        }
        if (replaced) {
            p = semicolon + 1;
        } else {
            DMNSP_TRY(text_append(out, p, 1));
            p++;
        }
    }
    return 0;
}

int tokenizer_clean_text(const char *text, char **cleaned)
{
    text_buffer once = {0}, twice = {0}, out = {0};
    *cleaned = NULL;

    /* CLIP unescapes twice, so "&amp;amp;" becomes "&". */
    int status = html_unescape(text, &once);
    if (status == 0)
        status = html_unescape(once.data, &twice);
    if (status == 0)
        status = text_reserve(&out, twice.length);
    if (status == 0)
        out.data[0] = '\0';

    /* Repair quotes, widths and ligatures, collapse whitespace runs to one
     * space, strip both ends, lower-case. */
    int pending_space = 0;
    const unsigned char *s = (const unsigned char *)(twice.data ? twice.data : "");
    size_t n = twice.length;
    for (size_t i = 0; i < n && status == 0;) {
        size_t length;
        int valid;
        uint32_t cp = decode_utf8(s + i, n - i, &length, &valid);
        if (valid && is_space(cp)) {
            pending_space = out.length > 0;
            i += length;
            continue;
        }
        if (pending_space) {
            status = text_append(&out, " ", 1);
            pending_space = 0;
        }
        if (status != 0)
            break;
        if (valid) {
            uint32_t repaired[3];
            int count = repair_code_point(cp, repaired);
            for (int k = 0; k < count && status == 0; k++) {
                char utf8[4];
                status = text_append(&out, utf8, encode_utf8(to_lower(repaired[k]), utf8));
            }
        } else {
            status = text_append(&out, (const char *)s + i, 1);
        }
        i += length;
    }

    free(once.data);
    free(twice.data);
    if (status != 0) {
        free(out.data);
        return -1;
    }
    *cleaned = out.data;
    return 0;
}

/* ---- vocabulary loading --------------------------------------------------- */

static void free_tokens(tokenizer *t)
{
    if (t->tokens != NULL) {
        for (int i = 0; i < t->vocab_size; i++)
            free(t->tokens[i]);
    }
    free(t->tokens);
    t->tokens = NULL;
}

void tokenizer_free(tokenizer *t)
{
    if (t == NULL)
        return;
    free_tokens(t);
    free(t->vocab_slots);
    free(t->merges);
    free(t);
}

static char *string_copy(const char *s, size_t n)
{
    char *copy = malloc(n + 1);
    if (copy != NULL) {
        memcpy(copy, s, n);
        copy[n] = '\0';
    }
    return copy;
}

/* Fills ids 0..511 with the byte symbols and the same with "</w>", in the
 * order CLIP's vocabulary lists them. */
static int add_byte_symbols(tokenizer *t)
{
    uint32_t code_points[256];
    int order[256];
    byte_alphabet(code_points, order);
    for (int i = 0; i < 256; i++) {
        int b = order[i];
        char symbol[16];
        size_t n = encode_utf8(code_points[b], symbol);
        t->tokens[i] = string_copy(symbol, n);
        memcpy(symbol + n, "</w>", 5);
        t->tokens[256 + i] = string_copy(symbol, n + 4);
        if (t->tokens[i] == NULL || t->tokens[256 + i] == NULL)
            return dmnsp_fail("out of memory for the byte symbols");
    }
    return 0;
}

/* Looks up the byte symbols by text (valid for every vocabulary, including
 * a vocab.json that orders them differently). */
static int index_byte_symbols(tokenizer *t)
{
    uint32_t code_points[256];
    int order[256];
    byte_alphabet(code_points, order);
    for (int b = 0; b < 256; b++) {
        char symbol[16];
        size_t n = encode_utf8(code_points[b], symbol);
        t->symbol_bytes[code_points[b]] = (unsigned char)b;
        symbol[n] = '\0';
        t->byte_ids[b] = vocab_find(t, symbol);
        memcpy(symbol + n, "</w>", 5);
        t->byte_end_ids[b] = vocab_find(t, symbol);
        if (t->byte_ids[b] < 0 || t->byte_end_ids[b] < 0)
            return dmnsp_fail("vocabulary lacks the symbol for byte 0x%02x ('%s')", b, symbol);
    }
    return 0;
}

/* Reads a whole file, gzip-compressed or plain, into a NUL-terminated
 * buffer. zlib reads plain files through unchanged. */
static int read_maybe_gzip(const char *path, char **data, size_t *size)
{
    *data = NULL;
    errno = 0;
    gzFile in = gzopen(path, "rb");
    if (in == NULL)
        return dmnsp_fail("cannot open: %s", errno ? strerror(errno) : "out of memory");
    size_t capacity = 1 << 20, length = 0;
    char *buffer = malloc(capacity);
    int status = buffer ? 0 : dmnsp_fail("out of memory");
    while (status == 0) {
        if (capacity - length < (1 << 16)) {
            char *grown = realloc(buffer, capacity * 2);
            if (grown == NULL) {
                status = dmnsp_fail("out of memory reading %zu bytes", capacity * 2);
                break;
            }
            buffer = grown;
            capacity *= 2;
        }
        int got = gzread(in, buffer + length, (unsigned)(capacity - length - 1));
        if (got < 0) {
            int code;
            const char *message = gzerror(in, &code);
            status = dmnsp_fail("corrupt or unreadable gzip data: %s", message);
            break;
        }
        if (got == 0)
            break;
        length += (size_t)got;
    }
    int close_status = gzclose_r(in);
    if (status == 0 && close_status == Z_BUF_ERROR)
        status = dmnsp_fail("corrupt or truncated gzip data: the compressed stream ends before its end marker");
    else if (status == 0 && close_status != Z_OK)
        status = dmnsp_fail("closing failed (zlib error %d)", close_status);
    if (status != 0) {
        free(buffer);
        return -1;
    }
    buffer[length] = '\0';
    *data = buffer;
    *size = length;
    return 0;
}

/* Splits a merges line "left right" (right may not contain a space). */
static int split_merge_line(char *line, char **left, char **right)
{
    char *space = strchr(line, ' ');
    if (space == NULL || space == line || space[1] == '\0' || strchr(space + 1, ' ') != NULL)
        return -1;
    *space = '\0';
    *left = line;
    *right = space + 1;
    return 0;
}

/* Adds the merges listed in TEXT (one "left right" per line, from line
 * FIRST_LINE, at most LIMIT merges). When ADD_TOKENS is set, each merge also
 * appends its result as a new id (OpenAI's format); otherwise the results
 * must already be in the vocabulary (Hugging Face). */
static int add_merges(tokenizer *t, char *text, int first_line, int limit, int add_tokens, int *used)
{
    int line_number = 0, rank = 0;
    char *p = text;
    while (*p && rank < limit) {
        char *end = strchr(p, '\n');
        if (end != NULL)
            *end = '\0';
        line_number++;
        size_t n = strlen(p);
        if (n > 0 && p[n - 1] == '\r')
            p[--n] = '\0';
        char *next = end ? end + 1 : p + n;

        if (line_number < first_line || n == 0 || strncmp(p, "#version", 8) == 0) {
            p = next;
            continue;
        }
        char *left, *right;
        if (split_merge_line(p, &left, &right) != 0)
            return dmnsp_fail("line %d: expected two symbols separated by one space, found '%.60s'", line_number, p);
        int left_id = vocab_find(t, left), right_id = vocab_find(t, right);
        if (left_id < 0 || right_id < 0)
            return dmnsp_fail("line %d: merge part '%s' is not in the vocabulary", line_number,
                              left_id < 0 ? left : right);

        size_t left_length = strlen(left), right_length = strlen(right);
        char *merged = malloc(left_length + right_length + 1);
        if (merged == NULL)
            return dmnsp_fail("out of memory for merges");
        memcpy(merged, left, left_length);
        memcpy(merged + left_length, right, right_length + 1);
        int result = vocab_find(t, merged);
        if (add_tokens && result < 0) {
            result = t->vocab_size;
            t->tokens[t->vocab_size++] = merged;
            DMNSP_TRY(vocab_index_add(t, result));
        } else {
            free(merged);
            if (result < 0)
                return dmnsp_fail("line %d: merged token '%s%s' is not in the vocabulary", line_number, left, right);
        }
        merge_insert(t, left_id, right_id, result, rank);
        rank++;
        p = next;
    }
    *used = rank;
    return 0;
}

static int count_lines(const char *text)
{
    int lines = 1;
    for (const char *p = text; *p; p++)
        lines += *p == '\n';
    return lines;
}

static int add_special_tokens(tokenizer *t)
{
    t->sot = t->vocab_size;
    t->tokens[t->vocab_size++] = string_copy(sot_text, strlen(sot_text));
    t->eot = t->vocab_size;
    t->tokens[t->vocab_size++] = string_copy(eot_text, strlen(eot_text));
    if (t->tokens[t->sot] == NULL || t->tokens[t->eot] == NULL)
        return dmnsp_fail("out of memory");
    return 0;
}

static int load_byte_level(tokenizer *t)
{
    t->tokens = calloc(514, sizeof *t->tokens);
    if (t->tokens == NULL)
        return dmnsp_fail("out of memory");
    t->vocab_size = 512;
    DMNSP_TRY(add_byte_symbols(t));
    DMNSP_TRY(add_special_tokens(t));
    DMNSP_TRY(build_vocab_index(t));
    snprintf(t->description, sizeof t->description, "byte-level (no merges, 514 tokens)");
    return 0;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static int load_openai(tokenizer *t, const char *path)
{
    char *text = NULL;
    size_t size = 0;
    DMNSP_TRY(read_maybe_gzip(path, &text, &size));
    if (memchr(text, '\0', size) != NULL) {
        free(text);
        return dmnsp_fail("contains NUL bytes: not a BPE merges list");
    }

    /* Room for the byte symbols, every merge and the two special tokens. */
    int lines = count_lines(text);
    int limit = lines < OPENAI_MERGE_LIMIT ? lines : OPENAI_MERGE_LIMIT;
    t->tokens = calloc((size_t)512 + (size_t)limit + 2, sizeof *t->tokens);
    int status = t->tokens ? 0 : dmnsp_fail("out of memory");
    if (status == 0) {
        t->vocab_size = 512;
        status = add_byte_symbols(t);
    }
    /* Index the byte symbols with room for every token to come. */
    if (status == 0)
        status = vocab_index_create(t, (size_t)512 + (size_t)limit + 2);
    for (int id = 0; id < 512 && status == 0; id++)
        status = vocab_index_add(t, id);
    int used = 0;
    if (status == 0)
        status = merge_table_create(t, limit);
    /* Line 1 is the header ("bpe_simple_vocab_16e6.txt#version: 0.2"). */
    if (status == 0)
        status = add_merges(t, text, 2, limit, 1, &used);
    free(text);
    DMNSP_TRY(status);
    if (used == 0)
        return dmnsp_fail("no merges found after the header line");

    /* The special tokens follow the merges, so EOT is the largest id. */
    DMNSP_TRY(add_special_tokens(t));
    DMNSP_TRY(vocab_index_add(t, t->sot));
    DMNSP_TRY(vocab_index_add(t, t->eot));
    snprintf(t->description, sizeof t->description, "%.200s (%d merges, %d tokens)", base_name(path), used,
             t->vocab_size);
    return 0;
}

static int read_plain_file(const char *path, char **data, size_t *size)
{
    FILE *in = fopen(path, "rb");
    if (in == NULL)
        return dmnsp_fail("%s: cannot open: %s", path, strerror(errno));
    int status = 0;
    char *buffer = NULL;
    long length = -1;
    if (fseek(in, 0, SEEK_END) == 0)
        length = ftell(in);
    if (length < 0 || fseek(in, 0, SEEK_SET) != 0)
        status = dmnsp_fail("%s: cannot determine the size: %s", path, strerror(errno));
    if (status == 0) {
        buffer = malloc((size_t)length + 1);
        if (buffer == NULL)
            status = dmnsp_fail("%s: out of memory for %ld bytes", path, length);
    }
    if (status == 0 && fread(buffer, 1, (size_t)length, in) != (size_t)length)
        status = dmnsp_fail("%s: read failed", path);
    fclose(in);
    if (status != 0) {
        free(buffer);
        return -1;
    }
    buffer[length] = '\0';
    *data = buffer;
    *size = (size_t)length;
    return 0;
}

static int load_hugging_face(tokenizer *t, const char *vocab_path, const char *merges_path)
{
    char *text = NULL;
    size_t size = 0;
    json_value *root = NULL;
    DMNSP_TRY(read_plain_file(vocab_path, &text, &size));
    int status = json_parse(text, size, &root);
    free(text);
    if (status != 0)
        return dmnsp_fail_prefix("%s", vocab_path);
    if (root->type != JSON_OBJECT) {
        json_free(root);
        return dmnsp_fail("%s: expected a JSON object {token: id}, found a %s", vocab_path,
                          json_type_name(root->type));
    }

    /* Ids must be 0..n-1, each once. */
    int count = (int)root->count;
    t->tokens = calloc((size_t)count + 1, sizeof *t->tokens);
    if (t->tokens == NULL)
        status = dmnsp_fail("out of memory");
    for (int i = 0; i < count && status == 0; i++) {
        const json_value *id = &root->items[i];
        if (id->type != JSON_NUMBER || !id->is_integer || id->integer < 0 || id->integer >= count)
            status = dmnsp_fail("%s: token '%s' has id outside 0..%d", vocab_path, root->keys[i], count - 1);
        else if (t->tokens[id->integer] != NULL)
            status = dmnsp_fail("%s: id %lld is given to both '%s' and '%s'", vocab_path, (long long)id->integer,
                                t->tokens[id->integer], root->keys[i]);
        else if ((t->tokens[id->integer] = string_copy(root->keys[i], strlen(root->keys[i]))) == NULL)
            status = dmnsp_fail("out of memory");
    }
    json_free(root);
    t->vocab_size = count;
    if (status == 0 && build_vocab_index(t) != 0)
        status = dmnsp_fail_prefix("%s", vocab_path);
    DMNSP_TRY(status);

    t->sot = vocab_find(t, sot_text);
    t->eot = vocab_find(t, eot_text);
    if (t->sot < 0 || t->eot < 0)
        return dmnsp_fail("%s: the special token %s is missing", vocab_path, t->sot < 0 ? sot_text : eot_text);
    if (t->eot != t->vocab_size - 1)
        return dmnsp_fail("%s: %s has id %d, expected the largest id %d (the text encoder reads the output at the "
                          "position of the largest id)",
                          vocab_path, eot_text, t->eot, t->vocab_size - 1);

    DMNSP_TRY(read_plain_file(merges_path, &text, &size));
    int used = 0;
    status = merge_table_create(t, count_lines(text));
    if (status == 0)
        status = add_merges(t, text, 1, INT_MAX, 0, &used);
    free(text);
    if (status != 0)
        return dmnsp_fail_prefix("%s", merges_path);
    snprintf(t->description, sizeof t->description, "%.200s (%d merges, %d tokens)", vocab_path, used,
             t->vocab_size);
    return 0;
}

static int is_directory(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

int tokenizer_load(const char *path, tokenizer **out)
{
    *out = NULL;
    tokenizer *t = calloc(1, sizeof *t);
    if (t == NULL)
        return dmnsp_fail("tokenizer: out of memory");

    int status;
    const char *name = path != NULL ? strrchr(path, '/') : NULL;
    name = name != NULL ? name + 1 : path;
    if (path == NULL || path[0] == '\0') {
        status = load_byte_level(t);
    } else if (strcmp(name, "tokenizer.json") == 0) {
        status = dmnsp_fail("tokenizer: %s: a Hugging Face tokenizer.json is not read; pass the folder that holds "
                            "vocab.json and merges.txt, or vocab.json itself",
                            path);
    } else if (is_directory(path) || ends_with(path, ".json")) {
        char vocab_path[4096], merges_path[4096];
        if (is_directory(path)) {
            snprintf(vocab_path, sizeof vocab_path, "%s/vocab.json", path);
            snprintf(merges_path, sizeof merges_path, "%s/merges.txt", path);
        } else {
            const char *slash = strrchr(path, '/');
            int folder_length = slash ? (int)(slash - path) : 1;
            snprintf(vocab_path, sizeof vocab_path, "%s", path);
            snprintf(merges_path, sizeof merges_path, "%.*s/merges.txt", folder_length, slash ? path : ".");
        }
        status = load_hugging_face(t, vocab_path, merges_path);
        if (status != 0)
            dmnsp_fail_prefix("tokenizer");
    } else {
        status = load_openai(t, path);
        if (status != 0)
            dmnsp_fail_prefix("tokenizer: %s", path);
    }
    if (status == 0)
        status = index_byte_symbols(t) != 0 ? dmnsp_fail_prefix("tokenizer: %s", path ? path : "byte-level") : 0;
    if (status != 0) {
        tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

int tokenizer_vocab_size(const tokenizer *t)
{
    return t->vocab_size;
}

int tokenizer_sot(const tokenizer *t)
{
    return t->sot;
}

int tokenizer_eot(const tokenizer *t)
{
    return t->eot;
}

const char *tokenizer_description(const tokenizer *t)
{
    return t->description;
}

/* ---- encoding --------------------------------------------------------------- */

typedef struct {
    int32_t *ids;
    int count;
    int capacity;
} id_list;

static int id_push(id_list *list, int32_t id)
{
    if (list->count == list->capacity) {
        int capacity = list->capacity ? 2 * list->capacity : 32;
        int32_t *grown = realloc(list->ids, (size_t)capacity * sizeof *grown);
        if (grown == NULL)
            return dmnsp_fail("tokenizer: out of memory for %d ids", capacity);
        list->ids = grown;
        list->capacity = capacity;
    }
    list->ids[list->count++] = id;
    return 0;
}

/* Applies the merges to one pre-token of N bytes and appends its ids.
 * SYMBOLS has room for N ids. */
static int encode_piece(const tokenizer *t, const unsigned char *piece, size_t n, int *symbols, id_list *out)
{
    int count = (int)n;
    for (size_t i = 0; i < n; i++)
        symbols[i] = i + 1 == n ? t->byte_end_ids[piece[i]] : t->byte_ids[piece[i]];

    /* Repeatedly merge every occurrence of the lowest-ranked adjacent pair,
     * scanning left to right, until no adjacent pair has a merge. */
    while (count > 1) {
        const merge_entry *best = NULL;
        for (int i = 0; i + 1 < count; i++) {
            const merge_entry *m = merge_find(t, symbols[i], symbols[i + 1]);
            if (m != NULL && (best == NULL || m->rank < best->rank))
                best = m;
        }
        if (best == NULL)
            break;
        int left = (int)(best->key >> 32), right = (int)(uint32_t)best->key;
        int kept = 0;
        for (int i = 0; i < count;) {
            if (i + 1 < count && symbols[i] == left && symbols[i + 1] == right) {
                symbols[kept++] = best->result;
                i += 2;
            } else {
                symbols[kept++] = symbols[i++];
            }
        }
        count = kept;
    }
    for (int i = 0; i < count; i++)
        DMNSP_TRY(id_push(out, symbols[i]));
    return 0;
}

static const char *const contractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};

/* Length in bytes of the pre-token starting at S[0] (not a space), by
 * CLIP's pattern; *SPECIAL is set to the id of a special token match. */
static size_t next_piece(const tokenizer *t, const unsigned char *s, size_t n, int *special)
{
    *special = -1;
    if (n >= sizeof sot_text - 1 && memcmp(s, sot_text, sizeof sot_text - 1) == 0) {
        *special = t->sot;
        return sizeof sot_text - 1;
    }
    if (n >= sizeof eot_text - 1 && memcmp(s, eot_text, sizeof eot_text - 1) == 0) {
        *special = t->eot;
        return sizeof eot_text - 1;
    }
    for (size_t i = 0; i < sizeof contractions / sizeof contractions[0]; i++) {
        size_t m = strlen(contractions[i]);
        if (n >= m && memcmp(s, contractions[i], m) == 0)
            return m;
    }

    size_t length;
    int valid;
    uint32_t cp = decode_utf8(s, n, &length, &valid);
    if (valid && is_number(cp))
        return length;
    int letters = valid && is_letter(cp);
    size_t end = length;
    while (end < n) {
        uint32_t next = decode_utf8(s + end, n - end, &length, &valid);
        int next_letter = valid && is_letter(next);
        if (letters ? !next_letter : (next_letter || (valid && (is_number(next) || is_space(next)))))
            break;
        end += length;
    }
    return end;
}

int tokenizer_encode_ids(const tokenizer *t, const char *text, int32_t **ids, int *count)
{
    *ids = NULL;
    *count = 0;
    char *cleaned;
    DMNSP_TRY(tokenizer_clean_text(text, &cleaned));

    size_t n = strlen(cleaned);
    int *symbols = malloc((n ? n : 1) * sizeof *symbols);
    id_list out = {0};
    int status = symbols ? 0 : dmnsp_fail("tokenizer: out of memory");
    const unsigned char *s = (const unsigned char *)cleaned;
    for (size_t i = 0; i < n && status == 0;) {
        if (s[i] == ' ') {
            i++; /* cleaning left single spaces only */
            continue;
        }
        int special;
        size_t length = next_piece(t, s + i, n - i, &special);
        if (special >= 0)
            status = id_push(&out, special);
        else
            status = encode_piece(t, s + i, length, symbols, &out);
        i += length;
    }
    free(symbols);
    free(cleaned);
    if (status != 0) {
        free(out.ids);
        return -1;
    }
    *ids = out.ids;
    *count = out.count;
    return 0;
}

int tokenizer_encode(const tokenizer *t, const char *text, int context_length, int truncate, int32_t *row)
{
    if (context_length < 2)
        return dmnsp_fail("tokenizer: context length %d leaves no room for the start and end tokens", context_length);
    int32_t *ids;
    int count;
    DMNSP_TRY(tokenizer_encode_ids(t, text, &ids, &count));
    if (count > context_length - 2 && !truncate) {
        free(ids);
        return dmnsp_fail("tokenizer: text \"%.80s%s\" has %d tokens plus start and end, more than the context length "
                          "%d (shorten it, or enable truncation)",
                          text, strlen(text) > 80 ? "..." : "", count, context_length);
    }
    int kept = count < context_length - 2 ? count : context_length - 2;
    row[0] = t->sot;
    if (kept > 0)
        memcpy(row + 1, ids, (size_t)kept * sizeof *row);
    row[kept + 1] = t->eot;
    for (int i = kept + 2; i < context_length; i++)
        row[i] = 0;
    free(ids);
    return 0;
}

int tokenizer_encode_batch(const tokenizer *t, const char *const *texts, int count, int context_length, int truncate,
                           int32_t *rows)
{
    int first_failure = count;
    char message[1024] = "";
#pragma omp parallel for schedule(dynamic, 16)
    for (int i = 0; i < count; i++) {
        if (tokenizer_encode(t, texts[i], context_length, truncate, rows + (size_t)i * context_length) != 0) {
#pragma omp critical(tokenizer_batch_failure)
            {
                if (i < first_failure) {
                    first_failure = i;
                    snprintf(message, sizeof message, "%s", dmnsp_last_error());
                }
            }
        }
    }
    if (first_failure < count)
        return dmnsp_fail("%s (text %d of %d)", message, first_failure, count);
    return 0;
}

/* ---- decoding --------------------------------------------------------------- */

int tokenizer_decode(const tokenizer *t, const int32_t *ids, int count, char **text)
{
    text_buffer out = {0};
    *text = NULL;
    DMNSP_TRY(text_append(&out, "", 0));
    for (int i = 0; i < count; i++) {
        int id = ids[i];
        if (id == t->eot)
            break;
        if (id == t->sot)
            continue;
        if (id < 0 || id >= t->vocab_size) {
            free(out.data);
            return dmnsp_fail("tokenizer: id %d at position %d is outside the vocabulary of %d", id, i, t->vocab_size);
        }
        /* Map each symbol code point back to its byte; "</w>" ends a word. */
        const unsigned char *s = (const unsigned char *)t->tokens[id];
        size_t n = strlen(t->tokens[id]);
        for (size_t j = 0; j < n;) {
            if (n - j >= 4 && memcmp(s + j, "</w>", 4) == 0) {
                if (text_append(&out, " ", 1) != 0)
                    goto fail;
                j += 4;
                continue;
            }
            size_t length;
            int valid;
            uint32_t cp = decode_utf8(s + j, n - j, &length, &valid);
            char byte = (char)(valid && cp < 512 ? t->symbol_bytes[cp] : '?');
            if (text_append(&out, &byte, 1) != 0)
                goto fail;
            j += length;
        }
    }
    *text = out.data;
    return 0;
fail:
    free(out.data);
    return -1;
}
