/*
 * tokenizer.h - byte-level BPE tokenizer read from a Hugging Face tokenizer.json
 * (docs/model.md §8): DeepSeek-V3's own file and the default model's
 * models/mtp-mini/tokenizer.json both load, and give the ids the Python
 * `tokenizers` library gives (tests/test_tokenizer.c checks this against
 * golden ids written by training/make_tokenizer_golden.py).
 *
 * Supported tokenizer.json subset (anything else fails to load, naming the part):
 *   model         BPE with vocab and merges ("a b" strings or ["a", "b"] pairs),
 *                 no dropout, no subword prefix/suffix; ignore_merges honoured.
 *   normalizer    null or an empty Sequence.
 *   pre_tokenizer Split {Regex|String, Isolated, invert false} steps, then one
 *                 ByteLevel {add_prefix_space, use_regex}; alone or in a Sequence.
 *                 Regexes run under PCRE2 (UTF + UCP, JIT when available).
 *   decoder       ByteLevel.
 *   added_tokens  matched first on the raw text (leftmost, then longest).
 * post_processor is ignored: callers ask for BOS explicitly (add_bos).
 *
 * Known difference: `tokenizers` runs the regexes under Oniguruma, this code
 * under PCRE2, whose Unicode tables are those of its version (10.42 on Debian
 * 12: Unicode 14). A character assigned after that (e.g. U+31E4, a CJK stroke
 * from Unicode 16) has category Cn here and may be split differently. Fuzzing
 * with 4000 random strings over many scripts found no other difference.
 *
 * A loaded tokenizer is immutable; encode and decode may run concurrently on it.
 */
#ifndef MTP_TOKENIZER_H
#define MTP_TOKENIZER_H

#include <stdbool.h> /* defines: bool */
#include <stddef.h>  /* defines: size_t */
#include <stdint.h>  /* defines: int32_t */

struct mtp_tokenizer;

/* Load PATH (a tokenizer.json). On success *OUT owns the tokenizer (free with
 * mtp_tokenizer_free) and MTP_OK is returned; on failure MTP_ERR with a message
 * naming the file and the part (e.g. "pre_tokenizer.pretokenizers[2].pattern"). */
int mtp_tokenizer_load(const char *path, struct mtp_tokenizer **out);

/* Free a tokenizer (NULL is ignored). */
void mtp_tokenizer_free(struct mtp_tokenizer *tok);

/* Encode LEN bytes of UTF-8 TEXT (need not be NUL-terminated). Added and special
 * tokens written in the text are recognised. With ADD_BOS the BOS id comes first
 * (MTP_ERR if the tokenizer has none). On success *IDS is a new array (free()
 * it; non-NULL even when *N is 0) of *N ids. Fails with MTP_ERR on invalid
 * UTF-8, naming the byte offset. */
int mtp_tokenizer_encode(const struct mtp_tokenizer *tok, const char *text, size_t len,
                         bool add_bos, int32_t **ids, int *n);

/* Decode N ids to a new NUL-terminated string (free() it). Special tokens are
 * written as their content unless SKIP_SPECIAL. The bytes are returned as the
 * tokens spell them: if IDS cut a multi-byte character, the result ends or starts
 * with part of it (stream decoders join pieces before printing). If LEN_OUT is
 * not NULL it receives the byte length (the text may contain NUL bytes).
 * Returns NULL with a message for an id outside the vocabulary. */
char *mtp_tokenizer_decode(const struct mtp_tokenizer *tok, const int32_t *ids, int n,
                           bool skip_special, size_t *len_out);

/* The bytes token ID decodes to (not NUL-terminated; owned by TOK), or NULL for
 * an unknown id. *LEN receives the length. */
const char *mtp_tokenizer_token_bytes(const struct mtp_tokenizer *tok, int32_t id, size_t *len);

/* Id of the added token whose content is exactly CONTENT, else of the model
 * token with that (byte-level) spelling; -1 if none. */
int32_t mtp_tokenizer_token_id(const struct mtp_tokenizer *tok, const char *content);

/* True if ID is an added token marked special. */
bool mtp_tokenizer_is_special(const struct mtp_tokenizer *tok, int32_t id);

/* BOS / EOS ids, found among the added tokens by name ("begin▁of▁sentence",
 * "<s>", ... / "end▁of▁sentence", "</s>", "<|endoftext|>", ...); -1 if absent. */
int32_t mtp_tokenizer_bos_id(const struct mtp_tokenizer *tok);
int32_t mtp_tokenizer_eos_id(const struct mtp_tokenizer *tok);

/* Number of ids: one more than the largest id in the vocabulary or added tokens. */
int mtp_tokenizer_vocab_size(const struct mtp_tokenizer *tok);

#endif
