/* tokenizer: CLIP's byte-level BPE tokenizer, turning prompts into rows
 * of token ids for the text encoder.
 *
 * Encoding a text: clean it (HTML entities unescaped twice, curly quotes,
 * fullwidth ASCII and Latin ligatures replaced as ftfy does, whitespace
 * runs collapsed to one space and stripped, lower-cased), split it with CLIP's
 * pre-tokenizer pattern (<|startoftext|>, <|endoftext|>, the contractions
 * 's 't 're 've 'm 'll 'd, runs of letters, single digits, runs of other
 * non-space characters), map each piece's bytes to GPT-2's printable
 * alphabet, append "</w>" to its last symbol and apply the merges in rank
 * order. A row is SOT, the ids, EOT, then 0 up to the context length.
 *
 * Vocabularies:
 *   - OpenAI's bpe_simple_vocab_16e6.txt.gz (or any merges list in that
 *     format, gzip or plain): the header line is skipped and at most
 *     48894 merges are used. Ids: the 256 byte symbols, the same with
 *     "</w>", one per merge, then <|startoftext|> and <|endoftext|> (49406
 *     and 49407 with the full list).
 *   - Hugging Face vocab.json + merges.txt, given as the folder holding
 *     both or as the vocab.json path (merges.txt next to it).
 *   - No file: the byte-level vocabulary of 512 symbols, SOT = 512 and
 *     EOT = 513 (514 tokens), for randomly initialised models.
 * The end-of-text id is the largest id in every vocabulary dmnsp builds,
 * because the text encoder reads its output at the argmax position.
 *
 * A loaded tokenizer is read-only, so one may be shared by threads.
 *
 * NOTE: beyond ASCII, letters, digits, spaces and lower case come from
 * built-in tables of the common scripts (Latin, Greek, Cyrillic, CJK, ...)
 * rather than the full Unicode database, and of ftfy's repairs only the
 * ones above are done (no mojibake repair, no NFC normalisation). Rare
 * non-ASCII text may therefore split differently from CLIP's Python
 * tokenizer.
 */
#ifndef DMNSP_TOKENIZER_H
#define DMNSP_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct tokenizer tokenizer;

/* Loads the vocabulary at PATH (see above; NULL or "" = byte-level).
 * *TOKENIZER is owned by the caller (tokenizer_free). Errors name the file
 * and line: unreadable or corrupt gzip, a merge whose parts or result are
 * not in the vocabulary, a missing special token. */
int tokenizer_load(const char *path, tokenizer **tokenizer);
void tokenizer_free(tokenizer *tokenizer);

/* Number of ids (largest id + 1); must equal the model's vocab_size. */
int tokenizer_vocab_size(const tokenizer *tokenizer);
int tokenizer_sot(const tokenizer *tokenizer);
int tokenizer_eot(const tokenizer *tokenizer);
/* Short description such as "bpe_simple_vocab_16e6.txt.gz (48894 merges)". */
const char *tokenizer_description(const tokenizer *tokenizer);

/* Encodes TEXT without SOT/EOT into *IDS (malloc'd, *COUNT ids; the caller
 * frees it). */
int tokenizer_encode_ids(const tokenizer *tokenizer, const char *text, int32_t **ids, int *count);

/* Encodes TEXT into ROW[CONTEXT_LENGTH]: SOT, ids, EOT, zeros. When the
 * ids do not fit, TRUNCATE = 0 is an error quoting the text and giving both
 * lengths; TRUNCATE = 1 keeps the first CONTEXT_LENGTH - 2 ids and EOT. */
int tokenizer_encode(const tokenizer *tokenizer, const char *text, int context_length, int truncate, int32_t *row);

/* Encodes COUNT texts into ROWS[COUNT][CONTEXT_LENGTH] (threaded with
 * OpenMP); the first failure is reported, naming the text's index. */
int tokenizer_encode_batch(const tokenizer *tokenizer, const char *const *texts, int count, int context_length,
                           int truncate, int32_t *rows);

/* Decodes IDS back to text: "</w>" becomes a space, SOT is skipped and
 * decoding stops at EOT, so a padded row decodes to its cleaned text plus
 * a trailing space. *TEXT is malloc'd; the caller frees it. */
int tokenizer_decode(const tokenizer *tokenizer, const int32_t *ids, int count, char **text);

/* Cleans TEXT as the encoder does (unescape, whitespace, lower case) into
 * a malloc'd string; exposed for tests and for printing prompts. */
int tokenizer_clean_text(const char *text, char **cleaned);

#endif
